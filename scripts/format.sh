#!/usr/bin/env bash
# scripts/format.sh [--check]: formats every C++ and CUDA file of the repository in place with clang-format-14 and
# the project's .clang-format (Google's style, 120 columns), or with --check only says which files differ (exit 1).
# The version is pinned: clang-format's versions format the same code differently.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_packages.sh clang-format-14
mapfile -t files < <(git ls-files '*.h' '*.cc' '*.cu' '*.cuh')
if [ "${1:-}" = "--check" ]; then
  if ! report=$(clang-format-14 --style=file --dry-run --Werror "${files[@]}" 2>&1); then
    printf '%s\n' "$report" | sed -n 's/^\([^ :]*\):[0-9]*:[0-9]*: error: .*/format: not formatted: \1/p' | sort -u >&2
    echo "format: scripts/format.sh formats them" >&2
    exit 1
  fi
  echo "format: ${#files[@]} files formatted"
else
  clang-format-14 --style=file -i "${files[@]}"
fi
