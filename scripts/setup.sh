#!/usr/bin/env bash
# Installs what ouroboros needs from Debian (only what is missing), then
# configures and builds into build/ (or $OUROBOROS_BUILD_DIR). Shared by
# scripts/run.sh and scripts/test.sh. Extra arguments go to cmake's configure.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake git pkg-config libeigen3-dev librandom123-dev libyaml-cpp-dev libcli11-dev
          nlohmann-json3-dev libfmt-dev libgtest-dev libbenchmark-dev libopenmpi-dev openmpi-bin python3-numpy python3-matplotlib python3-yaml bible-kjv)
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

build=${OUROBOROS_BUILD_DIR:-build}
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log" >&2
  exit 1
}
cmake --build "$build" -j"$(nproc)" >&2
