#!/usr/bin/env bash
# scripts/test.sh: sets up, builds and runs every test, then the fuzzers;
# non-zero on failure. Three builds of the test suite: build/ with the cuda backend whenever nvcc is found (its tests
# are reported as skipped where no device exists), build-cpu/ with CUDA
# switched off, proving the cpu-only build a researcher's laptop would make,
# and build-sanitize/, the cpu build under AddressSanitizer and
# UndefinedBehaviorSanitizer (any finding aborts its test; without MPI, whose
# library's own allocations the leak checker would report). The first two
# run the MPI tests (K = 1, 2, 3 ranks) when mpirun is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

# Formatting first: it takes seconds and fails fast.
scripts/format.sh --check

scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$jobs"

OUROBOROS_BUILD_DIR=build-cpu scripts/setup.sh -DOUROBOROS_CUDA=OFF -DOUROBOROS_BENCH=OFF
ctest --test-dir build-cpu --output-on-failure -j"$jobs"

OUROBOROS_BUILD_DIR=build-sanitize scripts/setup.sh -DOUROBOROS_CUDA=OFF -DOUROBOROS_BENCH=OFF -DOUROBOROS_MPI=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
ctest --test-dir build-sanitize --output-on-failure -j"$jobs"

# Hostile input: the config parser and the corpus reader under libFuzzer (clang,
# ASan + UBSan), at least 10^5 executions each.
scripts/fuzz.sh
