#!/usr/bin/env bash
# scripts/gpu_check.sh: on a machine with a GPU, run the full test suite on the
# cuda backend (the cuda instances of every backend-parameterised test and
# the cpu-vs-cuda comparison), then the benchmarks with the PyTorch peer.
#
# Two ways to use it:
#   - on a GPU machine with our Debian packages: it builds into build/ first;
#   - on a GPU machine without them (the lent device machine): build here with
#     scripts/setup.sh, carry build/ and data/kjv.txt along, and run it there with
#     OUROBOROS_PREBUILT=1; shared libraries the binaries need that the machine
#     lacks are looked up in build/lib (scripts/gpu_check.sh --bundle fills it).
# Results go to stdout and, when $OUT is set, to $OUT/gpu_check.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--bundle" ]; then
  # Copy the shared libraries of our Debian dependencies into build/lib.
  mkdir -p build/lib
  for bin in build/ouroboros build/bench_gaussian build/bench_gmm build/tests/test_sim build/tests/test_kernels; do
    # Everything but the C library itself and the GPU driver (Open MPI's
    # libraries included: they load without mpirun, which then runs one rank).
    ldd "$bin" | awk '/=> \// {print $3}' | grep -vE '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*|libcuda)\.so' \
      | sort -u | xargs -r -I{} cp -L {} build/lib/
  done
  ls build/lib
  exit 0
fi

if [ -z "${OUROBOROS_PREBUILT:-}" ]; then
  scripts/setup.sh
fi
export LD_LIBRARY_PATH="$PWD/build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The CLI tests find the binary and the sources here, not where they were built.
export OUROBOROS_BINARY="$PWD/build/ouroboros" OUROBOROS_SOURCE_DIR="$PWD"
log=${OUT:-/tmp}/gpu_check.txt
exec > >(tee "$log") 2>&1

echo "== $(date -u +%F) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
echo "== tests (cuda instances must run, not skip)"
status=0
build/tests/test_kernels || status=1
build/tests/test_sim || status=1
if build/tests/test_sim --gtest_filter='*cuda*:CpuVsCuda*:GmmCpuVsCuda*' 2>&1 | grep -q SKIPPED; then
  echo "FAIL: cuda tests were skipped on a GPU machine"
  status=1
fi

echo "== benchmarks"
build/bench_gaussian --benchmark_min_time=0.5 || status=1
build/bench_gmm --benchmark_min_time=0.5 || status=1

echo "== the benchmark experiment, whole process, cuda vs cpu vs PyTorch on the GPU"
for backend in cuda cpu; do
  /usr/bin/time -f "ouroboros --backend $backend: %e s wall" build/ouroboros run experiments/gaussian/replace.yaml \
    --backend "$backend" --no-progress --force --out "/tmp/gpu_check_$backend" || status=1
done
if python3 -c 'import torch' 2>/dev/null; then
  /usr/bin/time -f "torch peer: %e s wall" python3 bench/peers/torch_gaussian.py --chains 10000 --samples 100 \
    --generations 100 --seed 1 --out /tmp/gpu_check_torch.csv || status=1
  /usr/bin/time -f "torch peer (10^5 chains, n=1000): %e s wall" python3 bench/peers/torch_gaussian.py --chains 100000 \
    --samples 1000 --generations 20 --seed 1 --out /tmp/gpu_check_torch_big.csv || status=1
  /usr/bin/time -f "ouroboros cuda (10^5 chains, n=1000): %e s wall" build/ouroboros run experiments/gaussian/replace.yaml \
    --backend cuda --no-progress --force --out /tmp/gpu_check_big --set chains=100000 --set data.samples=1000 \
    --set generations=20 || status=1
else
  echo "torch not importable: peer skipped"
fi
exit $status
