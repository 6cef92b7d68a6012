#!/usr/bin/env bash
# bench/side_by_side_regression.sh [OUROBOROS [REPEATS]]: whole-process wall
# time of `ouroboros run` and of the numpy peer on the same linear regression
# experiment (experiments/regression/bench.yaml: 10^4 chains, d = 10, n = 100,
# 100 generations, replace, ols, fixed label noise, fresh inputs every
# generation), alternating, on this machine. Prints each run and the ratio of
# the medians. OUROBOROS is the binary (default build/ouroboros, from
# scripts/setup.sh).
set -euo pipefail
bin=${1:-build/ouroboros}
if [ $# -ge 1 ] && [[ $1 != /* ]]; then bin=$PWD/$1; fi   # a path given is relative to the caller
cd "$(dirname "$0")/.."
[ -x "$bin" ] || { echo "side_by_side_regression.sh: no ouroboros binary at $bin" >&2; exit 2; }
repeats=${2:-5}
chains=10000 samples=100 dim=10 generations=100
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

source bench/timing.sh
run_ours() { "$bin" run experiments/regression/bench.yaml --backend cpu --no-progress --force --out "$tmp/o" >/dev/null; }
run_peer() {
  /usr/bin/python3 bench/peers/numpy_regression.py --chains $chains --samples $samples --dim $dim \
    --generations $generations --noise fixed --regime replace --design fresh --seed 1 --out "$tmp/peer.csv" >/dev/null
}
alternate "$repeats" ouroboros numpy
mo=$(median "${ours[@]}") mp=$(median "${peer[@]}")
printf 'median: ouroboros %.3f s   numpy %.3f s   ratio %.2fx  (%s, %s threads)\n' "$mo" "$mp" \
  "$(awk "BEGIN {print $mp / $mo}")" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)"
