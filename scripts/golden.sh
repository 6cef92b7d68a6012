#!/usr/bin/env bash
# scripts/golden.sh: golden outputs, so that a change meant to leave behaviour
# alone can prove it did.
#
#   scripts/golden.sh check [BINARY]   runs the matrix below with BINARY (default build/ouroboros) and compares
#                                      every output file's checksum with tests/golden/outputs.sha256
#   scripts/golden.sh record           builds the reference commit below (cpu only, in build-golden/base) and
#                                      writes its checksums to tests/golden/outputs.sha256
#   scripts/golden.sh outputs BINARY DIR [ROOT]   only runs the matrix into DIR (for a diff of two trees' files);
#                                      ROOT: the tree whose experiments/ to run (default: this one)
#
# The matrix: every config under experiments/ (record: the reference commit's own configs) with --set chains=64 --set generations=5 (the papers/ configs at
# their reproduction.reduced size instead), each at --threads 1, at --threads 2 and under `mpirun -n 2` when the
# binary was built with MPI and mpirun is installed; every run with --per-chain, then `ouroboros report`.
# Compared: metrics.csv, summary.csv, summary_chains.csv, early_warning.csv, per_chain.csv, scatter.csv, report.md and
# manifest.json less the fields that name a time, a commit or a path (run_id, git_commit, wall_seconds,
# stage_seconds, command.config, inputs[].path) and the memory that happened to be free
# (run_options.max_memory_bytes).
#
# The checksums hold on one machine: the cpu model and the dependency versions are in manifest.json. On another
# machine, `record` first (it rebuilds the reference commit there), then `check`. A deliberate change of output
# moves REFERENCE to the commit that makes it and says so in its commit message. A config added since the
# reference (a new family's experiments) has no recorded files: `check` lists its files as new and compares the
# rest.
set -euo pipefail
cd "$(dirname "$0")/.."
REFERENCE=c2a9e254e0aa62880294d6497a0716cb0a9d093d
sums=tests/golden/outputs.sha256

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=PASSIVE

# The --set arguments of one config: the papers' reduced size, else 64 chains x 5 generations.
size_args() {
  /usr/bin/python3 - "$1" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
reduced = (cfg.get("reproduction") or {}).get("reduced")
if reduced is None:
    reduced = {"chains": 64, "generations": 5}
for k, v in reduced.items():
    print(f"--set\n{k}={v}")
EOF
}

# manifest.json without the fields that differ between two runs of the same code.
normalize_manifest() {
  /usr/bin/python3 - "$1" <<'EOF'
import json, sys
path = sys.argv[1]
m = json.load(open(path))
for k in ("run_id", "git_commit", "wall_seconds", "stage_seconds"):
    m.pop(k, None)
m.get("command", {}).pop("config", None)
m.get("run_options", {}).pop("max_memory_bytes", None)  # 80% of the memory free at the start
for f in m.get("inputs", []):
    f.pop("path", None)  # where this machine keeps the corpus; its size and hash stay
json.dump(m, open(path, "w"), indent=1, sort_keys=True)
open(path, "a").write("\n")
EOF
}

# Runs are written to DIR/NAME.MODE, named relative to DIR (report.md names its folder).
outputs() {
  local bin dir=$2 root
  bin=$(realpath "$1")
  root=$(realpath "${3:-.}")
  rm -rf "$dir"
  mkdir -p "$dir"
  local modes=(t1 t2)
  # (grep without -q reads all of ldd's output: -q would end the pipe early, and under pipefail ldd's SIGPIPE would
  # drop the MPI runs now and then.)
  if "$bin" --version >/dev/null && command -v mpirun >/dev/null && ldd "$bin" | grep libmpi >/dev/null; then
    modes+=(mpi2)
  fi
  local config
  while read -r config; do
    local name=${config#experiments/}
    name=${name%.yaml}
    name=${name//\//_}
    mapfile -t size < <(size_args "$root/$config")
    local mode
    for mode in "${modes[@]}"; do
      local out=$name.$mode
      local cmd=("$bin" run "$root/$config" "${size[@]}" --per-chain --no-progress --out "$out")
      case $mode in
        t1) cmd+=(--threads 1) ;;
        t2) cmd+=(--threads 2) ;;
        mpi2) cmd=(mpirun -n 2 "${cmd[@]}" --threads 1) ;;
      esac
      (cd "$dir" && "${cmd[@]}" </dev/null >/dev/null 2>"$out.log" && "$bin" report "$out" </dev/null >/dev/null) ||
        { echo "golden: $config ($mode) failed:" >&2; cat "$dir/$out.log" >&2; exit 1; }
      normalize_manifest "$dir/$out/manifest.json"
      rm -f "$dir/$out.log"
      echo "golden: $config ($mode)" >&2
    done
  done < <(cd "$root" && find experiments -name '*.yaml' | LC_ALL=C sort)
}

checksums() {
  (cd "$1" && find . -type f \( -name '*.csv' -o -name '*.md' -o -name manifest.json \) | LC_ALL=C sort |
     xargs sha256sum)
}

case ${1:-} in
  outputs)
    [ $# -ge 3 ] && [ $# -le 4 ] || { echo "usage: scripts/golden.sh outputs BINARY DIR [ROOT]" >&2; exit 2; }
    outputs "$2" "$3" "${4:-.}"
    ;;
  record)
    base=build-golden/base
    if [ ! -x "$base/build/ouroboros" ] || [ "$(git -C "$base" rev-parse HEAD 2>/dev/null)" != "$REFERENCE" ]; then
      rm -rf "$base"
      git worktree prune
      git worktree add --detach "$base" "$REFERENCE" >/dev/null
      (cd "$base" && OUROBOROS_BUILD_DIR=build scripts/setup.sh -DOUROBOROS_CUDA=OFF -DOUROBOROS_TESTS=OFF \
        -DOUROBOROS_BENCH=OFF)
    fi
    outputs "$base/build/ouroboros" build-golden/expected "$base"
    mkdir -p "$(dirname "$sums")"
    checksums build-golden/expected > "$sums"
    echo "golden: $(wc -l < "$sums") files recorded from $REFERENCE in $sums"
    ;;
  check)
    bin=${2:-build/ouroboros}
    outputs "$bin" build-golden/actual
    # Files of configs the reference did not have are new, not different: listed, and left out of the comparison.
    checksums build-golden/actual > build-golden/actual.sha256
    new=$(awk 'NR == FNR { known[$2] = 1; next } !($2 in known) { print $2 }' "$sums" build-golden/actual.sha256)
    if [ -n "$new" ]; then
      echo "golden: $(printf '%s\n' "$new" | wc -l) files of configs added since $REFERENCE, not compared:"
      printf '%s\n' "$new" | sed 's|^\./||; s|/.*||' | sort -u | sed 's/^/  /'
    fi
    if diff <(awk 'NR == FNR { known[$2] = 1; next } $2 in known' "$sums" build-golden/actual.sha256) "$sums" \
      > build-golden/check.diff; then
      echo "golden: $(wc -l < "$sums") files identical to $REFERENCE's"
    else
      echo "golden: outputs differ from $REFERENCE's (< this tree, > reference):" >&2
      cat build-golden/check.diff >&2
      echo "golden: scripts/golden.sh record writes the reference's files to build-golden/expected for a diff" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: scripts/golden.sh check [BINARY] | record | outputs BINARY DIR" >&2
    exit 2
    ;;
esac
