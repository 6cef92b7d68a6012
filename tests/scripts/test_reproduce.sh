#!/usr/bin/env bash
# The paper reproductions at reduced size (scripts/reproduce.py --reduced): every
# claim declared in experiments/papers/ must hold. Then the checker's own power:
# a false claim (replace's error held to accumulate's pi^2/6 bound) must fail
# with exit code 1, and a reproduction file without claims is refused with 2.
set -euo pipefail
bin=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 "$src/scripts/reproduce.py" --reduced --no-plot --binary "$bin" --out-dir "$dir/runs"

mkdir "$dir/false" "$dir/bad"
sed -e 's/at: {data.regime: accumulate}/at: {data.regime: replace}/' \
  "$src/experiments/papers/gerstgrasser2024_accumulate.yaml" > "$dir/false/planted.yaml"
set +e
out=$(/usr/bin/python3 "$src/scripts/reproduce.py" --reduced --no-plot --binary "$bin" --out-dir "$dir/runs" \
  --papers "$dir/false" 2>&1)
code=$?
set -e
[ "$code" -eq 1 ] || { echo "a false claim gave exit $code, expected 1:"; echo "$out"; exit 1; }
echo "$out" | grep -q "^FAIL planted: Abstract (accumulate is bounded); the pi^2/6 factor" \
  || { echo "the false claim was not reported:"; echo "$out"; exit 1; }

printf 'name: bad\nseed: 1\nchains: 10\ngenerations: 2\nmodel: {family: gaussian, dim: 1}\n' > "$dir/bad/bad.yaml"
printf 'truth: {mean: [0.0], cov: [[1.0]]}\ndata: {samples: 10}\nreproduction: {paper: x}\n' >> "$dir/bad/bad.yaml"
set +e
/usr/bin/python3 "$src/scripts/reproduce.py" --reduced --no-plot --binary "$bin" --out-dir "$dir/runs" \
  --papers "$dir/bad" 2>/dev/null
code=$?
set -e
[ "$code" -eq 2 ] || { echo "a reproduction without claims gave exit $code, expected 2"; exit 1; }
echo "reproductions ok"
