#!/usr/bin/env bash
# bench/side_by_side.sh [REPEATS]: whole-process wall time of `ouroboros run`
# and of the numpy peer on the same experiment (10^4 chains, n = 100,
# 100 generations, replace, mle), alternating, on this machine. Prints each
# run and the ratio of the medians. Needs build/ouroboros (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-5}
chains=10000 samples=100 generations=100
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source bench/timing.sh
run_ours() {
  build/ouroboros run experiments/gaussian/replace.yaml --backend cpu --no-progress --force --out "$tmp/o" \
    --set chains=$chains --set data.samples=$samples --set generations=$generations >/dev/null
}
run_peer() {
  /usr/bin/python3 bench/peers/numpy_gaussian.py --chains $chains --samples $samples --generations $generations \
    --seed 1 --out "$tmp/peer.csv" >/dev/null
}
alternate "$repeats" ouroboros numpy
mo=$(median "${ours[@]}") mp=$(median "${peer[@]}")
printf 'median: ouroboros %.3f s   numpy %.3f s   ratio %.2fx  (%s, %s threads)\n' "$mo" "$mp" \
  "$(awk "BEGIN {print $mp / $mo}")" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)"
