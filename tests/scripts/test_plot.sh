#!/usr/bin/env bash
# The quickstart and the mixture rare-mode experiment at reduced size through
# the binary and the plot script: the pictures are written, are PNGs, and the
# script refuses a folder without metrics.csv with exit code 2. The default
# panels leave out a metric that is constant over the run (data_age is 0 when
# every point replaces its data) and a requested one is drawn. Under a python without
# numpy or matplotlib the script says what to install and exits 1.
set -euo pipefail
bin=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" run "$src/experiments/quickstart.yaml" --set chains=50 --set generations=20 --set data.regime=replace \
  --no-progress --out "$dir/run" >/dev/null
png=$(/usr/bin/python3 "$src/scripts/plot_collapse.py" "$dir/run" 2>"$dir/plot.err")
[ "$png" = "$dir/run/collapse.png" ] || { echo "unexpected output path: $png"; exit 1; }
grep -q "^plot_collapse: no panel for metric(s) constant over every point and generation: data_age " "$dir/plot.err" ||
  { echo "the constant data_age was not left out:"; cat "$dir/plot.err"; exit 1; }
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
