#!/usr/bin/env bash
# scripts/test.sh: sets up, builds and runs every test, then the fuzzers; non-zero on failure.
#
#   1. the formatting (scripts/format.sh --check, clang-format-14);
#   2. build/: g++ with the cuda backend whenever nvcc is found (its tests report as skipped where no device
#      exists) and MPI (the tests for K = 1, 2, 3 ranks when mpirun is installed): every test binary and the
#      end-to-end script tests (the plot script, the paper reproductions at reduced size);
#   3. build-sanitize/: the cpu-only build, proving the build without CUDA compiles and runs, with clang under
#      AddressSanitizer and UndefinedBehaviorSanitizer (any finding aborts its test): every test binary again (the
#      script tests, which only drive the binary, run in build/);
#   4. the libFuzzer targets of the same build (scripts/fuzz.sh): the config and corpus readers on hostile input.
#
# docs/developing.md lists which test binaries hold what.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/format.sh --check

scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$jobs"

scripts/setup.sh --sanitize
ctest --test-dir build-sanitize --output-on-failure -j"$jobs"

scripts/fuzz.sh
