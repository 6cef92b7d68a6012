#!/usr/bin/env bash
# The quickstart and the mixture rare-mode experiment at reduced size through
# the binary and the plot script: the pictures are written, are PNGs, and the
# script refuses a folder without metrics.csv with exit code 2. The default
# panels leave out a metric that is constant over the run (data_age is 0 when
# every point replaces its data) and a requested one is drawn. A run with plot.scatter (the tests' cloud family,
# through ouroboros_test_families, the third argument) gets the scatter block below its curves: a panel per sweep
# point and scatter generation, titled, equal aspect, the same limits across a point's generations, no label over
# another; a run without scatter.csv is drawn as before. Under a python without numpy or matplotlib the script says
# what to install and exits 1.
set -euo pipefail
bin=$1
src=$2
families=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" run "$src/experiments/quickstart.yaml" --set chains=50 --set generations=20 --set data.regime=replace \
  --no-progress --out "$dir/run" >/dev/null
png=$(/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/run" 2>"$dir/plot.err")
[ "$png" = "$dir/run/collapse.png" ] || { echo "unexpected output path: $png"; exit 1; }
grep -q "^plot_collapse: no panel for metric(s) constant over every point and generation: data_age " "$dir/plot.err" ||
  { echo "the constant data_age was not left out:"; cat "$dir/plot.err"; exit 1; }
! grep -q scatter "$dir/plot.err" || { echo "a scatter block without scatter.csv:"; cat "$dir/plot.err"; exit 1; }
# The panels themselves: every metric of the run but the constant one by default, and what is asked for when asked.
panels=$(cd "$src/scripts" && /usr/bin/python3 -c '
import sys
import plot_collapse as p
t = p.read_metrics(sys.argv[1])
names = sorted(set(t["metric"]))
drawn, skipped = p.panel_metrics(t, None)
assert skipped == ["data_age"], skipped
assert sorted(drawn) == [m for m in names if m != "data_age"], (drawn, names)
assert "var_ratio" in drawn and "synthetic_share" in drawn, drawn  # synthetic_share varies with real_fraction
asked, skipped = p.panel_metrics(t, ["data_age", "var_ratio"])
assert asked == ["data_age", "var_ratio"] and skipped == [], (asked, skipped)
print(len(drawn))
' "$dir/run/metrics.csv")
[ "$panels" -ge 8 ] || { echo "too few default panels: $panels"; exit 1; }
png=$(/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/run" --metrics data_age,var_ratio --out "$dir/asked.png" 2>"$dir/plot.err")
[ -s "$png" ] && [ ! -s "$dir/plot.err" ] || { echo "a requested constant metric was not drawn quietly:"; cat "$dir/plot.err"; exit 1; }
head -c 8 "$png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || { echo "not a PNG: $png"; exit 1; }
[ "$(stat -c %s "$png")" -gt 20000 ] || { echo "suspiciously small PNG"; exit 1; }
# A mixture run whose config asks for medians of chosen metrics (plot section).
"$bin" run "$src/experiments/gmm/rare_mode.yaml" --set chains=20 --set generations=3 --no-progress --out "$dir/gmm" >/dev/null
png=$(/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/gmm")
head -c 8 "$png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || { echo "not a PNG: $png"; exit 1; }
# The scatter block: 2-D and 1-D clouds, with and without real data; the 1-D points drawn as histograms.
cat >"$dir/cloud.yaml" <<'EOF'
name: cloud
seed: 5
chains: 6
generations: 8
model: {family: cloud, dim: 2}
data: {samples: 8}
plot: {scatter: {chains: 3, generations: [0, 4, 8], points: 300}}
sweep:
  model.dim: [2, 1]
  data.real_fraction: [0, 0.5]
EOF
"$families" run "$dir/cloud.yaml" --no-progress --out "$dir/cloud" >/dev/null
png=$(/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/cloud" 2>"$dir/plot.err")
[ "$png" = "$dir/cloud/collapse.png" ] || { echo "unexpected output path: $png"; exit 1; }
grep -qx "plot_collapse: scatter: 12 panels from $dir/cloud/scatter.csv" "$dir/plot.err" ||
  { echo "no scatter block of 12 panels:"; cat "$dir/plot.err"; exit 1; }
head -c 8 "$png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" || { echo "not a PNG: $png"; exit 1; }
/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/cloud" --no-scatter --out "$dir/curves.png" >/dev/null 2>"$dir/plot.err"
! grep -q scatter "$dir/plot.err" || { echo "--no-scatter drew a scatter block"; exit 1; }
(cd "$src/scripts" && /usr/bin/python3 -c '
import sys
import matplotlib.pyplot as plt
import plot_collapse as p
with_block, curves = plt.imread(sys.argv[2]), plt.imread(sys.argv[3])
assert with_block.shape[0] > curves.shape[0] + 600, (with_block.shape, curves.shape)  # 4 rows of panels below
fig, panels = p.scatter_figure(sys.argv[1], 12.6)
assert panels == 12, panels
fig.canvas.draw()
renderer = fig.canvas.get_renderer()
rows = [[ax for ax in sub.axes if ax.get_visible()] for sub in fig.subfigs[:-1]]
assert [len(r) for r in rows] == [3, 3, 3, 3], [len(r) for r in rows]
assert [sub._suptitle.get_text() for sub in fig.subfigs[:-1]] == [
    "dim=2, real_fraction=0", "dim=2, real_fraction=0.5", "dim=1, real_fraction=0", "dim=1, real_fraction=0.5"]
for r, axes in enumerate(rows):
    assert [ax.get_title() for ax in axes] == ["generation 0", "generation 4", "generation 8"], r
    assert len({ax.get_xlim() for ax in axes}) == 1, (r, [ax.get_xlim() for ax in axes])  # shared limits
    assert len({ax.get_ylim() for ax in axes}) == 1, (r, [ax.get_ylim() for ax in axes])
    if r < 2:  # 2-D: three chains of 300 points, equal aspect
        assert all(ax.get_aspect() == 1.0 for ax in axes), r
        assert [len(c.get_offsets()) for c in axes[0].collections] == [300, 300, 300], r
    else:  # 1-D: a histogram per chain
        assert len(axes[0].patches) == 3, (r, len(axes[0].patches))
# Without real data the cloud shrinks: its points at generation 8 spread less than at generation 0.
spread = [max(c.get_offsets()[:, 0].std() for c in ax.collections) for ax in rows[0]]
assert spread[2] < spread[0], spread
# No label, title or tick label over another: the panels with their decorations, and the row titles, are apart.
boxes = [ax.get_tightbbox(renderer) for axes in rows for ax in axes]
boxes += [sub._suptitle.get_window_extent(renderer) for sub in fig.subfigs[:-1]]
for i, a in enumerate(boxes):
    for b in boxes[i + 1:]:
        assert not a.overlaps(b), (a, b)
' "$dir/cloud/scatter.csv" "$dir/cloud/collapse.png" "$dir/curves.png") ||
  { echo "the scatter block is not as drawn"; exit 1; }
mkdir "$dir/empty"
set +e
/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/empty" 2>/dev/null
code=$?
set -e
[ "$code" -eq 2 ] || { echo "expected exit 2 for a folder without metrics.csv, got $code"; exit 1; }
# A python without the packages: -S leaves out every site-packages folder (where numpy and matplotlib live
# whatever the installation), and an import hook hides matplotlib alone (numpy then imports).
missing() {  # missing WHAT PYTHON-ARGS...: exit 1, what to install on stderr, no traceback
  local what=$1
  shift
  set +e
  /usr/bin/python3 "$@" "$dir/run" >"$dir/out" 2>"$dir/err"
  code=$?
  set -e
  [ "$code" -eq 1 ] || { echo "without $what: expected exit 1, got $code"; cat "$dir/err"; exit 1; }
  grep -q "^plot_collapse.py needs numpy and matplotlib (No module named '$what'): apt-get install python3-numpy python3-matplotlib, or pip install numpy matplotlib$" "$dir/err" ||
    { echo "without $what: no clear message:"; cat "$dir/err"; exit 1; }
  ! grep -q Traceback "$dir/err" || { echo "without $what: a traceback"; exit 1; }
  [ ! -s "$dir/out" ] || { echo "without $what: output on stdout"; exit 1; }
}
missing numpy -I -S "$src/scripts/plot_collapse.py"
missing matplotlib -I -c '
import runpy, sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "matplotlib":
            raise ModuleNotFoundError("No module named %r" % name, name=name)
sys.meta_path.insert(0, Hide())
import numpy  # still there
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
' "$src/scripts/plot_collapse.py"
echo "plot ok"
