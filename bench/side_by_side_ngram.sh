#!/usr/bin/env bash
# bench/side_by_side_ngram.sh [REPEATS]: the n-gram family against the numpy
# peer on the KJV bigram loop (experiments/ngram/bench_kjv_bigram.yaml: one
# chain, 10^6 tokens per generation, 5 generations, replace, mle), whole-process
# wall time, alternating. Needs build/ouroboros and data/kjv.txt
# (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source bench/timing.sh
run_ours() { build/ouroboros run experiments/ngram/bench_kjv_bigram.yaml --backend cpu --no-progress --force --out "$tmp/o" >/dev/null; }
run_peer() { /usr/bin/python3 bench/peers/numpy_ngram.py --samples 1000000 --generations 5 >"$tmp/peer.json"; }
alternate "$repeats" ouroboros numpy
mo=$(median "${ours[@]}") mp=$(median "${peer[@]}")
printf 'median: ouroboros %.3f s   numpy %.3f s   ratio %.2fx  (%s, %s threads)\n' "$mo" "$mp" \
  "$(awk "BEGIN {print $mp / $mo}")" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)"
