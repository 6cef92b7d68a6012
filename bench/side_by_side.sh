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

now() { date +%s.%N; }
ours=() peer=()
for ((i = 1; i <= repeats; i++)); do
  t0=$(now)
  build/ouroboros run experiments/gaussian/replace.yaml --backend cpu --no-progress --force --out "$tmp/o" \
    --set chains=$chains --set data.samples=$samples --set generations=$generations >/dev/null
  t1=$(now)
  /usr/bin/python3 bench/peers/numpy_gaussian.py --chains $chains --samples $samples --generations $generations \
    --seed 1 --out "$tmp/peer.csv" >/dev/null
  t2=$(now)
  ours+=("$(awk "BEGIN {print $t1 - $t0}")")
  peer+=("$(awk "BEGIN {print $t2 - $t1}")")
  printf 'run %d: ouroboros %.3f s   numpy %.3f s\n' "$i" "${ours[-1]}" "${peer[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
mo=$(median "${ours[@]}") mp=$(median "${peer[@]}")
printf 'median: ouroboros %.3f s   numpy %.3f s   ratio %.2fx  (%s, %s threads)\n' "$mo" "$mp" \
  "$(awk "BEGIN {print $mp / $mo}")" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)"
