#!/usr/bin/env bash
# scripts/gpu_check.sh: on a machine with a GPU, run the test suite on the
# cuda backend (the cuda instances of every backend-parameterised test and
# the cpu-vs-cuda comparisons first, then the whole suite), then the
# benchmarks, the whole-process timings and the PyTorch peer.
#
# Two ways to use it:
#   - on a GPU machine with our Debian packages: it builds into build/ first;
#   - on a GPU machine without them (a machine reached for a short time): on the build
#     machine, `scripts/gpu_check.sh --bundle` builds a portable copy
#     (build-gpu/: -march=x86-64-v3 instead of -march=native, since the GPU
#     machine's processor is not ours) and stages its binaries, the shared
#     libraries they need and nothing else in .gpu/build (about 35 MB); carry
#     .gpu and data/ (the King James text) and run
#     `OUROBOROS_PREBUILT=.gpu/build scripts/gpu_check.sh` there.
# Results go to stdout and, when $OUT is set, to $OUT/gpu_check.txt (the
# test logs beside it). Non-zero when a test fails or the cuda tests skip.
#
# Parts, in order of importance (GPU time may be minutes, and a
# command at most ten of them): `tests` (the cuda tests), `bench` (Google
# Benchmark cases and the whole-process runs with the PyTorch peer), `suite`
# (the rest of the test suite, which CI also runs on the cpu). Name some to
# run only those, e.g. `scripts/gpu_check.sh tests`; the default is all
# three. Each part prints its wall time.
set -euo pipefail
cd "$(dirname "$0")/.."

binaries=(ouroboros bench_gaussian bench_gmm bench_ngram bench_regression bench_kde tests/test_sim tests/test_kernels)

if [ "${1:-}" = "--bundle" ]; then
  OUROBOROS_BUILD_DIR=build-gpu scripts/setup.sh -DOUROBOROS_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3
  rm -rf .gpu/build
  mkdir -p .gpu/build/tests .gpu/build/lib
  for bin in "${binaries[@]}"; do
    cp "build-gpu/$bin" ".gpu/build/$bin"
    strip ".gpu/build/$bin"
    # Every shared library but the C library itself and the GPU driver (Open
    # MPI's included: they load without mpirun, which then runs one rank).
    ldd "build-gpu/$bin" | awk '/=> \// {print $3}' \
      | grep -vE '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libcuda)\.so' \
      | sort -u | xargs -r -I{} cp -L {} .gpu/build/lib/
  done
  du -sh .gpu
  exit 0
fi

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(tests bench suite)
for part in "${parts[@]}"; do
  case $part in tests | bench | suite) ;; *) echo "gpu_check: unknown part '$part' (tests, bench, suite)" >&2; exit 2 ;; esac
done
wants() { [[ " ${parts[*]} " == *" $1 "* ]]; }
part_start=0
begin_part() { part_start=$(date +%s); echo "== part $1"; }
end_part() { echo "== part $1 took $(($(date +%s) - part_start)) s"; }

build=${OUROBOROS_PREBUILT:-build}
if [ -z "${OUROBOROS_PREBUILT:-}" ]; then
  scripts/setup.sh
fi
export LD_LIBRARY_PATH="$PWD/$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The CLI tests find the binary and the sources here, not where they were built.
export OUROBOROS_BINARY="$PWD/$build/ouroboros" OUROBOROS_SOURCE_DIR="$PWD"
logs=${OUT:-/tmp}
exec > >(tee "$logs/gpu_check.txt") 2>&1
tee_pid=$!
# Let tee write the last lines before the script's exit status is returned.
finish() { local rc=$?; exec >&- 2>&-; wait "$tee_pid" 2>/dev/null || true; exit "$rc"; }
trap finish EXIT

echo "== $(date -u +%F) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
echo "== host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
status=0
cuda_filter='*cuda*:*Cuda*'  # Suite.Test/cuda instances and the CpuVsCuda comparisons
build_tests="$build/tests"
if wants tests; then
begin_part tests
echo "== cuda tests (must run, not skip)"
"$build_tests/test_sim" --gtest_filter="$cuda_filter" >"$logs/cuda_tests.txt" 2>&1 || status=1
grep -E '^\[ *(PASSED|FAILED|SKIPPED) *\]|tests? ran|Skipped' "$logs/cuda_tests.txt" || true
grep -B2 -A12 'Failure' "$logs/cuda_tests.txt" | head -80 || true
# A skip for want of a device or a cuda build is a failure here.
if grep -qE 'no CUDA device on this machine|this build has no cuda backend' "$logs/cuda_tests.txt"; then
  echo "FAIL: cuda tests were skipped on a GPU machine"
  status=1
fi
end_part tests
fi

if wants bench; then
begin_part bench
echo "== benchmarks"
"$build/bench_gaussian" --benchmark_min_time=0.5 2>&1 | grep -E 'cuda|cpu|Benchmark' || status=1
"$build/bench_gmm" --benchmark_min_time=0.5 2>&1 | grep -E 'Generation|Benchmark' || status=1
# (BM_Generation is the host's cores; BM_GenerationCuda the device.)
"$build/bench_ngram" --benchmark_min_time=0.5 2>&1 | grep -E 'BM_|Benchmark' || status=1
"$build/bench_regression" --benchmark_min_time=0.5 2>&1 | grep -E 'BM_|Benchmark' || status=1
"$build/bench_kde" --benchmark_min_time=0.5 2>&1 | grep -E 'BM_|Benchmark' || status=1

echo "== whole process: the benchmark experiment, cuda vs cpu vs PyTorch on the GPU"
timed() {  # timed LABEL COMMAND...: wall seconds of one run (the command's output is kept in $logs/last_run.txt)
  local label=$1 start end
  shift
  start=$(date +%s.%N)
  "$@" >"$logs/last_run.txt" 2>&1 || { status=1; tail -n 5 "$logs/last_run.txt"; }
  end=$(date +%s.%N)
  printf '%s: %.3f s wall\n' "$label" "$(awk "BEGIN { print $end - $start }")"
}
stages() {  # stages DIR: the stage times the run recorded in its manifest
  python3 -c 'import json, sys; m = json.load(open(sys.argv[1] + "/manifest.json"))
print("   stages (s):", ", ".join(f"{k} {v:.3f}" for k, v in m["stage_seconds"].items()))' "$1" || true
}
exp() {  # exp LABEL DIR ARGS...: one timed ouroboros run into DIR, then its stage times
  local label=$1 dir=$2
  shift 2
  timed "$label" "$build/ouroboros" run "$@" --no-progress --force --out "$dir"
  stages "$dir"
}
for backend in cuda cpu; do
  exp "ouroboros --backend $backend, experiments/gaussian/replace.yaml (10^4 chains, n = 100, 100 generations)" \
    "/tmp/gpu_check_$backend" experiments/gaussian/replace.yaml --backend "$backend"
done
exp "ouroboros --backend cuda, 10^5 chains, n = 1000, 20 generations" /tmp/gpu_check_big \
  experiments/gaussian/replace.yaml --backend cuda --set chains=100000 --set data.samples=1000 --set generations=20
exp "ouroboros --backend cuda, 10^6 chains, n = 100, 20 generations" /tmp/gpu_check_huge \
  experiments/gaussian/replace.yaml --backend cuda --set chains=1000000 --set generations=20
for backend in cuda cpu; do
  exp "ouroboros --backend $backend, experiments/gmm/bench_k4.yaml" "/tmp/gpu_check_gmm_$backend" \
    experiments/gmm/bench_k4.yaml --backend "$backend"
done
for backend in cuda cpu; do
  exp "ouroboros --backend $backend, experiments/regression/bench.yaml (10^4 chains, d = 10, T = 100, 100 generations)" \
    "/tmp/gpu_check_regression_$backend" experiments/regression/bench.yaml --backend "$backend"
done
exp "ouroboros --backend cuda, regression d = 100, T = 400, 10^3 chains, 20 generations" /tmp/gpu_check_regression_big \
  experiments/regression/bench.yaml --backend cuda --set chains=1000 --set data.samples=400 \
  --set "truth.weights={dim: 100, norm: 1.0}" --set generations=20
for backend in cuda cpu; do
  exp "ouroboros --backend $backend, experiments/kde/bench.yaml (moons, n = 1000, h = 0.5, 2000 held-out points)" \
    "/tmp/gpu_check_kde_$backend" experiments/kde/bench.yaml --backend "$backend"
done
# The n-gram speed benchmark (one chain, 10^6 tokens, 5 generations), then
# 10^3 chains of 10^5 tokens on the device.
for backend in cuda cpu; do
  exp "ouroboros --backend $backend, experiments/ngram/bench_kjv_bigram.yaml" "/tmp/gpu_check_ngram_$backend" \
    experiments/ngram/bench_kjv_bigram.yaml --backend "$backend"
done
exp "ouroboros --backend cuda, KJV mle bigram, 10^3 chains, n = 10^5, 5 generations" /tmp/gpu_check_ngram_big \
  experiments/ngram/bench_kjv_bigram.yaml --backend cuda --set chains=1000 --set data.samples=100000
if python3 -c 'import torch' 2>/dev/null; then
  timed "torch peer, 10^4 chains, n = 100, 100 generations" python3 bench/peers/torch_gaussian.py --chains 10000 \
    --samples 100 --generations 100 --seed 1 --out /tmp/gpu_check_torch.csv
  echo "   $(cat "$logs/last_run.txt")"
  timed "torch peer, 10^5 chains, n = 1000, 20 generations" python3 bench/peers/torch_gaussian.py --chains 100000 \
    --samples 1000 --generations 20 --seed 1 --out /tmp/gpu_check_torch_big.csv
  echo "   $(cat "$logs/last_run.txt")"
else
  echo "torch not importable: peer skipped"
fi
end_part bench
fi

if wants suite; then
begin_part suite
echo "== the rest of the suite (cpu instances, CLI, kernels)"
"$build_tests/test_kernels" --gtest_brief=1 >"$logs/test_kernels.txt" 2>&1 || status=1
tail -n 3 "$logs/test_kernels.txt"
"$build_tests/test_sim" --gtest_filter="-$cuda_filter" --gtest_brief=1 >"$logs/test_sim.txt" 2>&1 || status=1
grep -E '^\[  FAILED  \]|tests? ran|PASSED' "$logs/test_sim.txt" || true
end_part suite
fi

exit $status
