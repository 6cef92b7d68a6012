#!/usr/bin/env bash
# bench/side_by_side_gmm.sh [REPEATS]: the mixture family against scikit-learn
# on the same recursive loop (experiments/gmm/bench_k4.yaml: K = 4, d = 2,
# n = 1000, replace, warm-started EM with scikit-learn's defaults), 200 chains
# x 10 generations, whole-process wall time, alternating. Reports
# chain-generations per second of each, their ratio, and the mean EM
# iterations of each (a faster time must not come from fewer iterations).
# Needs build/ouroboros (scripts/setup.sh); installs Debian's python3-sklearn
# if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-3}
chains=200 generations=10
if ! /usr/bin/python3 -c "import sklearn" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-sklearn >&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source bench/timing.sh
run_ours() {
  build/ouroboros run experiments/gmm/bench_k4.yaml --backend cpu --no-progress --force --out "$tmp/o" \
    --set chains=$chains --set generations=$generations >/dev/null
}
run_peer() { /usr/bin/python3 bench/peers/sklearn_gmm.py --chains $chains --generations $generations >"$tmp/peer.json"; }
alternate "$repeats" ouroboros scikit-learn
mo=$(median "${ours[@]}") mp=$(median "${peer[@]}")
cg=$((chains * generations))
iters_ours=$(awk -F, '$2 == "em_iters" && $1 > 0 {s += $3; n++} END {printf "%.3f", s / n}' "$tmp/o/metrics.csv")
iters_peer=$(/usr/bin/python3 -c "import json,sys; print('%.3f' % json.load(open(sys.argv[1]))['mean_em_iters'])" "$tmp/peer.json")
printf 'median: ouroboros %.3f s (%.0f chain-generations/s)   scikit-learn %.3f s (%.0f chain-generations/s)   ratio %.1fx\n' \
  "$mo" "$(awk "BEGIN {print $cg / $mo}")" "$mp" "$(awk "BEGIN {print $cg / $mp}")" "$(awk "BEGIN {print $mp / $mo}")"
printf 'mean EM iterations per fit: ouroboros %s   scikit-learn %s\n' "$iters_ours" "$iters_peer"
printf '(%s, %s threads)\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)"
