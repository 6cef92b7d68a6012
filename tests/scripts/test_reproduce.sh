#!/usr/bin/env bash
# The paper reproductions at reduced size (scripts/reproduce.py --reduced): every
# claim declared in experiments/papers/ must hold. Then the checker's own power:
# a false claim (replace's error held to accumulate's pi^2/6 bound) and a false
# disagreement must fail with exit code 1, and a reproduction file without
# claims is refused with 2.
set -euo pipefail
bin=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
reproduce() { /usr/bin/python3 "$src/scripts/reproduce.py" --reduced --no-plot --binary "$bin" --out-dir "$dir/runs" "$@"; }
reproduce

# fails NAME SOURCE SED CLAIM: experiments/papers/SOURCE.yaml edited by the sed
# script SED, run as NAME, must exit 1 and report CLAIM (its source) as failed.
fails() {
  local name=$1 source=$2 edit=$3 claim=$4 out code
  mkdir "$dir/$name"
  sed -e "$edit" "$src/experiments/papers/$source.yaml" > "$dir/$name/$name.yaml"
  ! cmp -s "$src/experiments/papers/$source.yaml" "$dir/$name/$name.yaml" || { echo "$name: the edit changed nothing"; exit 1; }
  set +e
  out=$(reproduce --papers "$dir/$name" 2>&1)
  code=$?
  set -e
  [ "$code" -eq 1 ] || { echo "$name gave exit $code, expected 1:"; echo "$out"; exit 1; }
  echo "$out" | grep -q "^FAIL $name: $claim" || { echo "$name: the false claim was not reported:"; echo "$out"; exit 1; }
}
# Replace's error held to accumulate's bound.
fails planted gerstgrasser2024_accumulate 's/at: {data.regime: accumulate}/at: {data.regime: replace}/' \
  "Abstract (accumulate is bounded); the pi^2/6 factor"
# A documented disagreement turned around (the paper saying what ouroboros finds).
fails turned feng2024_verifier 's/      expect: {above: 1.0}/      expect: {below: 1.0}/' \
  "phi > psi delays collapse (the variance)"

mkdir "$dir/bad"
printf 'name: bad\nseed: 1\nchains: 10\ngenerations: 2\nmodel: {family: gaussian, dim: 1}\n' > "$dir/bad/bad.yaml"
printf 'truth: {mean: [0.0], cov: [[1.0]]}\ndata: {samples: 10}\nreproduction: {paper: x}\n' >> "$dir/bad/bad.yaml"
set +e
reproduce --papers "$dir/bad" 2>/dev/null
code=$?
set -e
[ "$code" -eq 2 ] || { echo "a reproduction without claims gave exit $code, expected 2"; exit 1; }
echo "reproductions ok"
