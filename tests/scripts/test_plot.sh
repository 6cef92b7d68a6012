#!/usr/bin/env bash
# The quickstart and the mixture rare-mode experiment at reduced size through
# the binary and the plot script: the pictures are written, are PNGs, and the
# script refuses a folder without metrics.csv with exit code 2.
set -euo pipefail
bin=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" run "$src/experiments/quickstart.yaml" --set chains=50 --set generations=20 --no-progress --out "$dir/run" >/dev/null
png=$(/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/run")
[ "$png" = "$dir/run/collapse.png" ] || { echo "unexpected output path: $png"; exit 1; }
head -c 8 "$png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || { echo "not a PNG: $png"; exit 1; }
[ "$(stat -c %s "$png")" -gt 20000 ] || { echo "suspiciously small PNG"; exit 1; }
# A mixture run whose config asks for medians of chosen metrics (plot section).
"$bin" run "$src/experiments/gmm/rare_mode.yaml" --set chains=20 --set generations=3 --no-progress --out "$dir/gmm" >/dev/null
png=$(/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/gmm")
head -c 8 "$png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || { echo "not a PNG: $png"; exit 1; }
mkdir "$dir/empty"
set +e
/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/empty" 2>/dev/null
code=$?
set -e
[ "$code" -eq 2 ] || { echo "expected exit 2 for a folder without metrics.csv, got $code"; exit 1; }
echo "plot ok"
