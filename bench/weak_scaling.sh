#!/usr/bin/env bash
# Weak scaling across MPI ranks: a fixed number of chains per rank (one
# OpenMP thread each), K = 1, 2, ... ranks, whole processes timed alternately.
# Efficiency = time(K = 1) / time(K): 1 is perfect (K times the chains in the
# same time). That a split never changes a bit is tested, not timed
# (tests/sim/engine/test_scaleout.cc).
#   bench/weak_scaling.sh [CONFIG] [CHAINS_PER_RANK] [MAX_RANKS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/timing.sh
config=${1:-experiments/gaussian/replace.yaml}
per_rank=${2:-5000}
max_ranks=${3:-$(nproc)}
repeats=${4:-5}
bin=${OUROBOROS_BINARY:-build/ouroboros}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run_k() {
  mpirun --oversubscribe -n "$1" "$bin" run "$config" --set chains=$((per_rank * $1)) --threads 1 --no-progress \
    --force --out "$out/k$1" > /dev/null
}
echo "weak scaling: $config, $per_rank chains per rank, 1 thread per rank, $(nproc) cores, $repeats runs each"
declare -A times
for ((i = 1; i <= repeats; i++)); do
  for ((k = 1; k <= max_ranks; k++)); do
    t0=$(now)
    run_k "$k"
    t1=$(now)
    times[$k]+="$(awk "BEGIN {print $t1 - $t0}") "
  done
done
t1=$(median ${times[1]})
for ((k = 1; k <= max_ranks; k++)); do
  tk=$(median ${times[$k]})
  awk -v k="$k" -v t="$tk" -v t1="$t1" -v n="$per_rank" -v s="${times[$k]}" 'BEGIN {
    printf "K = %d: %d chains, median %.3f s (runs: %s), %.0f chains/s, efficiency %.2f\n", k, n * k, t, s, n * k / t, t1 / t }'
done
