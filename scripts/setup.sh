#!/usr/bin/env bash
# scripts/setup.sh [--sanitize] [CMAKE_OPTION...]: installs what ouroboros needs from Debian (only what is missing),
# then configures and builds. Shared by scripts/run.sh, scripts/test.sh and scripts/fuzz.sh.
#
#   (default)   build/ (or $OUROBOROS_BUILD_DIR): g++, Release, the cuda backend whenever nvcc is found, MPI when
#               it is found, the tests and the benchmarks.
#   --sanitize  build-sanitize/: the cpu-only build, with clang under AddressSanitizer and
#               UndefinedBehaviorSanitizer, without MPI (whose library's own allocations the leak checker would
#               report), the unit tests and the libFuzzer targets (ouro_core compiled once for both).
#
# Extra arguments go to cmake's configure.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake git pkg-config libeigen3-dev librandom123-dev libyaml-cpp-dev libcli11-dev
          nlohmann-json3-dev libfmt-dev libgtest-dev libbenchmark-dev libopenmpi-dev openmpi-bin python3-numpy python3-matplotlib python3-yaml
          python3-pandas bible-kjv)
build=${OUROBOROS_BUILD_DIR:-build}
preset=()
if [ "${1:-}" = "--sanitize" ]; then
  shift
  # libFuzzer and the sanitizer runtimes come with clang's compiler-rt; clang's OpenMP is libomp.
  packages+=(clang libclang-rt-dev libomp-dev)
  build=${OUROBOROS_BUILD_DIR:-build-sanitize}
  export CC=clang CXX=clang++
  # RelWithDebInfo: line numbers in a finding's stack trace.
  preset=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DOUROBOROS_CUDA=OFF -DOUROBOROS_MPI=OFF -DOUROBOROS_BENCH=OFF
          -DOUROBOROS_SCRIPT_TESTS=OFF -DOUROBOROS_SANITIZE=ON -DOUROBOROS_FUZZ=ON)
fi
scripts/install_packages.sh "${packages[@]}"

# The King James text for the n-gram family, cached once as one verse per line
# (a fixed line width, so the text never depends on the terminal; chapter
# headings dropped). data/ is never committed.
if [ ! -s data/kjv.txt ]; then
  mkdir -p data
  bible -l100000 gen1:1-rev22:21 | sed -n 's/^  *[0-9][0-9]* //p' > data/kjv.txt.partial
  [ "$(wc -l < data/kjv.txt.partial)" -eq 31102 ] || { echo "setup: expected 31102 verses from bible-kjv" >&2; exit 1; }
  mv data/kjv.txt.partial data/kjv.txt
fi

mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${preset[@]}" "$@" >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log" >&2
  exit 1
}
cmake --build "$build" -j"$(nproc)" >&2
