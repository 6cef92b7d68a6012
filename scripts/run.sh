#!/usr/bin/env bash
# scripts/run.sh CONFIG [ouroboros run options...]
# Sets up (Debian packages, build into build/), runs the experiment with
# build/ouroboros, plots its collapse curves, writes the ranked report and
# says where the table, the picture and the report are.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ]; then
  echo "usage: scripts/run.sh CONFIG [--set key=value]... [--out DIR] [--backend auto|cpu|cuda] [--threads N]" >&2
  exit 2
fi
scripts/setup.sh
summary=$(build/ouroboros run "$@")
echo "$summary"
out=$(printf '%s\n' "$summary" | sed -n 's/.* -> \(.*\)\/metrics\.csv$/\1/p' | tail -n 1)
[ -n "$out" ] || { echo "run.sh: could not find the output folder in the summary" >&2; exit 1; }
picture=$(/usr/bin/python3 scripts/plot_collapse.py "$out")
build/ouroboros report "$out" > /dev/null
echo "table:   $out/metrics.csv"
echo "picture: $picture"
echo "report:  $out/report.md"
