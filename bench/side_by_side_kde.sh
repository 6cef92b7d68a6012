#!/usr/bin/env bash
# bench/side_by_side_kde.sh [OUROBOROS [REPEATS]]: the kernel density family
# against scikit-learn's KernelDensity (bench/peers/sklearn_kde.py) on the same
# recursive loop (experiments/kde/bench.yaml: Gaussian kernel, h = 0.5, n = 1000
# points per generation, replace, truth the two moons with noise 0.1,
# heldout_nll over M = 2000 held-out real points), whole-process wall time,
# alternating. The peer is much slower, so it runs fewer chains over the same
# generations (its time per chain-generation does not depend on the chain
# count). Reports each program's chain-generations per second (chains x
# generations / median wall seconds), their ratio, and both programs'
# last-generation means of var_ratio and heldout_nll with their standard errors
# (they should agree within about 3 combined se; heldout_nll may differ by a few
# thousandths more, since each program draws its own held-out set).
# OUROBOROS is the binary (default build/ouroboros, from scripts/setup.sh);
# installs Debian's python3-sklearn if missing.
set -euo pipefail
bin=${1:-build/ouroboros}
if [ $# -ge 1 ] && [[ $1 != /* ]]; then bin=$PWD/$1; fi   # a path given is relative to the caller
cd "$(dirname "$0")/.."
[ -x "$bin" ] || { echo "side_by_side_kde.sh: no ouroboros binary at $bin" >&2; exit 2; }
repeats=${2:-3}
[[ $repeats =~ ^[1-9][0-9]*$ ]] || { echo "side_by_side_kde.sh: REPEATS must be a positive integer, not '$repeats'" >&2; exit 2; }
config=experiments/kde/bench.yaml
chains_ours=$(awk '$1 == "chains:" {print $2}' "$config")
generations=$(awk '$1 == "generations:" {print $2}' "$config")
chains_peer=12   # 12 x 20 chain-generations: 20-40 s on a 2-core machine
samples=1000 bandwidth=0.5 heldout=2000 noise=0.1
if ! /usr/bin/python3 -c "import sklearn" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-sklearn >&2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source bench/timing.sh
run_ours() { "$bin" run "$config" --backend cpu --no-progress --force --out "$tmp/o" >/dev/null; }
run_peer() {
  /usr/bin/python3 bench/peers/sklearn_kde.py --chains $chains_peer --generations "$generations" \
    --samples $samples --bandwidth $bandwidth --heldout $heldout --noise $noise --seed 1 >"$tmp/peer.json"
}
alternate "$repeats" ouroboros scikit-learn
mo=$(median "${ours[@]}") mp=$(median "${peer[@]}")
cg_ours=$((chains_ours * generations)) cg_peer=$((chains_peer * generations))
rate_ours=$(awk "BEGIN {print $cg_ours / $mo}") rate_peer=$(awk "BEGIN {print $cg_peer / $mp}")
printf 'median: ouroboros %.3f s for %d x %d (%.1f chain-generations/s)   scikit-learn %.3f s for %d x %d (%.2f chain-generations/s)   ratio %.1fx\n' \
  "$mo" "$chains_ours" "$generations" "$rate_ours" "$mp" "$chains_peer" "$generations" "$rate_peer" \
  "$(awk "BEGIN {print $rate_ours / $rate_peer}")"
last_ours() { awk -F, -v g="$generations" -v m="$1" '$1 == g && $2 == m {printf "%.4f +- %.4f", $3, $4}' "$tmp/o/metrics.csv"; }
last_peer() {
  /usr/bin/python3 -c "import json,sys; j = json.load(open(sys.argv[1])); print('%.4f +- %.4f' % (j['last_' + sys.argv[2] + '_mean'], j['last_' + sys.argv[2] + '_se']))" \
    "$tmp/peer.json" "$1"
}
/usr/bin/python3 -c "import json,sys; j = json.load(open(sys.argv[1])); print('scikit-learn, last run, timed inside: %.3f s from its first line (imports %.3f s), %.2f s from process start' % (j['wall_seconds'], j['import_seconds'], j['since_process_start'] or float('nan')))" "$tmp/peer.json"
for metric in var_ratio heldout_nll; do
  printf 'generation %d mean %s: ouroboros %s   scikit-learn %s\n' "$generations" "$metric" "$(last_ours $metric)" "$(last_peer $metric)"
done
printf '(%s, %s threads)\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)"
