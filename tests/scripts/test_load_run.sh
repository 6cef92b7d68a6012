#!/usr/bin/env bash
# scripts/load_run.py on real (small) runs: every table's shape follows from
# the run's points, generations, chains, metrics and detectors; values are the
# CSV's own to the bit; the swept keys stay text; empty cells are NaN; the
# tables agree with each other (a chain's last value in summary_chains.csv is
# its value at the last generation in per_chain.csv). As a program it
# describes the run; it refuses a folder that is not a run with exit 2, and
# under a python without pandas says what to install and exits 1. scatter.csv
# is read from a run of the tests' cloud family (ouroboros_test_families, the
# third argument).
set -euo pipefail
bin=$1
src=$2
families=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/full.yaml" <<'EOF'
name: load
seed: 4
chains: 6
generations: 3
model: {family: gaussian, dim: 1}
truth: {mean: [0.0], cov: [[1.0]]}
data: {samples: 10}
summary: {metric: var_ratio, threshold: 0.5}
early_warning: {false_alarm: 0.2, horizon: 1}
sweep:
  data.regime: [replace, accumulate]
  data.real_fraction: [0, 0.5]
EOF
"$bin" run "$dir/full.yaml" --per-chain --no-progress --out "$dir/full" >/dev/null
"$bin" run "$src/experiments/quickstart.yaml" --set chains=5 --set generations=2 --no-progress --out "$dir/plain" >/dev/null

/usr/bin/python3 - "$src/scripts" "$dir/full" "$dir/plain" <<'EOF'
import csv
import math
import sys

sys.path.insert(0, sys.argv[1])
from load_run import load_run  # noqa: E402

run = load_run(sys.argv[2])
P, G, N = 4, 3, 6
assert run.axes == ["data.regime", "data.real_fraction"], run.axes
assert run.status == "complete" and run.manifest["status"] == "complete"
assert run.config["chains"] == N and run.config["early_warning"]["horizon"] == 1, run.config
with open(sys.argv[2] + "/per_chain.csv") as f:
    metric_names = next(csv.reader(f))[len(run.axes) + 2:]
M = len(metric_names)
assert M >= 10 and "var_ratio" in metric_names, metric_names
assert sorted(run.metrics["metric"].unique()) == sorted(metric_names)
assert run.metrics.shape[0] == P * (G + 1) * M, run.metrics.shape
assert run.summary.shape[0] == P, run.summary.shape
assert run.summary_chains.shape[0] == P * N, run.summary_chains.shape
assert run.per_chain.shape == (P * (G + 1) * N, len(run.axes) + 2 + M), run.per_chain.shape
detectors = run.early_warning["detector"].unique()
assert len(detectors) >= 1 and run.early_warning.shape[0] == P * len(detectors), run.early_warning.shape

# The swept keys as the run wrote them, as text; the numbers as numbers.
assert set(run.metrics["data.regime"]) == {"replace", "accumulate"}
assert set(run.metrics["data.real_fraction"]) == {"0", "0.5"}, set(run.metrics["data.real_fraction"])
assert run.metrics["mean"].dtype.kind == "f" and run.metrics["generation"].dtype.kind == "i"

# A value against the CSV, to the bit.
with open(sys.argv[2] + "/metrics.csv") as f:
    rows = [r for r in csv.DictReader(f)
            if (r["data.regime"], r["data.real_fraction"], r["generation"], r["metric"])
            == ("accumulate", "0.5", "2", "var_ratio")]
assert len(rows) == 1, rows
m = run.metrics
got = m[(m["data.regime"] == "accumulate") & (m["data.real_fraction"] == "0.5") & (m["generation"] == 2)
        & (m["metric"] == "var_ratio")]
assert len(got) == 1 and got["mean"].iloc[0] == float(rows[0]["mean"]), (got, rows)
assert got["q95"].iloc[0] == float(rows[0]["q95"])

# Empty cells are NaN (the theory column of a metric without one, the summary's collapse generation when never).
with open(sys.argv[2] + "/metrics.csv") as f:
    empty = [i for i, r in enumerate(csv.DictReader(f)) if r["theory"] == ""]
assert empty and all(math.isnan(run.metrics["theory"].iloc[i]) for i in empty)

# The tables agree: a chain's last value is its value at the last generation.
pc = run.per_chain
for _, s in run.summary_chains.iterrows():
    v = pc[(pc["data.regime"] == s["data.regime"]) & (pc["data.real_fraction"] == s["data.real_fraction"])
           & (pc["generation"] == G) & (pc["chain"] == s["chain"])]["var_ratio"]
    assert len(v) == 1 and v.iloc[0] == s["last"], (s, v)

plain = load_run(sys.argv[3])
assert plain.early_warning is None and plain.per_chain is None
assert plain.metrics.shape[0] == 6 * 3 * M and plain.summary_chains.shape[0] == 6 * 5
print("load_run: tables ok")
EOF

# per_chain.h5 (when the binary has HDF5): the same table as per_chain.csv, value for value.
if "$bin" run "$dir/full.yaml" --per-chain-format hdf5 --no-progress --out "$dir/h5" >/dev/null 2>"$dir/err"; then
  /usr/bin/python3 - "$src/scripts" "$dir/full" "$dir/h5" <<'EOF'
import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
from load_run import load_run  # noqa: E402

csv_run, h5_run = load_run(sys.argv[2]), load_run(sys.argv[3])
a, b = csv_run.per_chain, h5_run.per_chain
assert list(a.columns) == list(b.columns), (list(a.columns), list(b.columns))
assert a.shape == b.shape, (a.shape, b.shape)
for c in a.columns:
    x, y = a[c].to_numpy(), b[c].to_numpy()
    if x.dtype.kind == "f" or y.dtype.kind == "f":
        assert np.array_equal(x.astype(float), y.astype(float), equal_nan=True), c
    else:
        assert (x.astype(str) == y.astype(str)).all(), c
print("load_run: per_chain.h5 matches per_chain.csv")
EOF
else
  grep -q "built without HDF5" "$dir/err" || { cat "$dir/err"; exit 1; }
fi

# scatter.csv (plot.scatter; the tests' cloud family through ouroboros_test_families): the coordinates as numbers to
# the bit, empty cells NaN (a 1-D point has no x_2), the swept keys as text, one row per drawn point.
cat >"$dir/cloud.yaml" <<'EOF'
name: cloud
seed: 5
chains: 4
generations: 3
model: {family: cloud, dim: 2}
data: {samples: 8}
plot: {scatter: {chains: 3, generations: [1, 3], points: 20}}
sweep:
  model.dim: [2, 1]
EOF
"$families" run "$dir/cloud.yaml" --no-progress --out "$dir/cloud" >/dev/null
/usr/bin/python3 - "$src/scripts" "$dir/cloud" "$dir/full" <<'EOF'
import csv
import math
import sys

sys.path.insert(0, sys.argv[1])
from load_run import load_run  # noqa: E402

run = load_run(sys.argv[2])
s = run.scatter
assert list(s.columns) == ["model.dim", "point", "generation", "chain", "x_1", "x_2"], list(s.columns)
assert s.shape[0] == 2 * 2 * 3 * 20, s.shape
assert set(s["model.dim"]) == {"2", "1"}, set(s["model.dim"])
assert s["x_1"].dtype.kind == "f" and s["generation"].dtype.kind == "i" and s["chain"].dtype.kind == "i"
assert sorted(set(s["generation"])) == [1, 3] and sorted(set(s["chain"])) == [0, 1, 2]
one = s[s["model.dim"] == "1"]
assert len(one) == 120 and one["x_2"].isna().all() and not one["x_1"].isna().any()
assert not s[s["model.dim"] == "2"][["x_1", "x_2"]].isna().any().any()
with open(sys.argv[2] + "/scatter.csv") as f:
    rows = list(csv.DictReader(f))
assert len(rows) == len(s)
for i in (0, 7, 61, len(rows) - 1):
    for c in ("x_1", "x_2"):
        want = float(rows[i][c]) if rows[i][c] else math.nan
        got = s[c].iloc[i]
        assert (math.isnan(want) and math.isnan(got)) or got == want, (i, c, got, rows[i][c])
assert load_run(sys.argv[3]).scatter is None
print("load_run: scatter ok")
EOF
/usr/bin/python3 "$src/scripts/load_run.py" "$dir/cloud" | grep -qx "  scatter.csv: 240 rows" ||
  { echo "no scatter.csv in the description:"; /usr/bin/python3 "$src/scripts/load_run.py" "$dir/cloud"; exit 1; }

out=$(/usr/bin/python3 "$src/scripts/load_run.py" "$dir/full")
metrics=$(head -n 1 "$dir/full/per_chain.csv" | tr ',' '\n' | tail -n +5 | wc -l)  # after the 2 keys, generation, chain
echo "$out" | grep -q "^  metrics.csv: $((4 * 4 * metrics)) rows (4 points x 4 generations x $metrics metrics)$" ||
  { echo "unexpected description:"; echo "$out"; exit 1; }
echo "$out" | grep -q "^  per_chain.csv: 96 rows$" || { echo "unexpected description:"; echo "$out"; exit 1; }

set +e
/usr/bin/python3 "$src/scripts/load_run.py" "$dir" >/dev/null 2>"$dir/err"
code=$?
set -e
[ "$code" -eq 2 ] && grep -q "is not an ouroboros run folder (no manifest.json)" "$dir/err" ||
  { echo "a folder that is not a run: exit $code"; cat "$dir/err"; exit 1; }

# Without pandas (-S: no site-packages folder, where pandas lives whatever the installation).
set +e
/usr/bin/python3 -I -S "$src/scripts/load_run.py" "$dir/full" >/dev/null 2>"$dir/err"
code=$?
set -e
[ "$code" -eq 1 ] && grep -q "^load_run.py needs pandas (No module named 'pandas'): apt-get install python3-pandas, or pip install pandas$" "$dir/err" ||
  { echo "without pandas: exit $code"; cat "$dir/err"; exit 1; }
echo "load_run ok"
