#!/usr/bin/env bash
# scripts/fuzz.sh: the hostile-input check. Builds the libFuzzer targets
# (clang, AddressSanitizer + UndefinedBehaviorSanitizer, tests/fuzz/) in the
# sanitizer build (build-sanitize/, scripts/setup.sh --sanitize) and runs each
# for a fixed number of executions on a copy of its seed corpus
# (tests/fuzz/corpus/, never written to), all at once (one process each). Non-zero on any crash, sanitizer finding, unexpected exception, leak,
# timeout or out-of-memory, and when a target stops short of its executions.
#
#   OUROBOROS_FUZZ_RUNS      executions per target (default 100000)
#   OUROBOROS_FUZZ_MAX_TIME  seconds per target before it is stopped, a safety cap (default 600)
#   OUROBOROS_FUZZ_SEED      libFuzzer's random seed (default 1, so a CI run is reproducible; 0 picks one)
#
# A finding is written as build-sanitize/fuzz-run/<target>/crash-* (or
# timeout-, oom-, leak-); rerun it with build-sanitize/<target> FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${OUROBOROS_FUZZ_RUNS:-100000}
max_time=${OUROBOROS_FUZZ_MAX_TIME:-600}
seed=${OUROBOROS_FUZZ_SEED:-1}

scripts/setup.sh --sanitize

work=build-sanitize/fuzz-run
rm -rf "$work"
mkdir -p "$work"
export UBSAN_OPTIONS=print_stacktrace=1

# run TARGET SEEDS [libFuzzer flags...]: in the background, into $work/TARGET.
# The corpus the fuzzer grows is the copy; -timeout is per input (the slowest
# the targets run take well under a second; fuzz_config leaves out accepted
# sweeps of more than 64 points, see tests/fuzz/fuzz_config.cc).
run() {
  local target=$1 seeds=$2
  shift 2
  mkdir -p "$work/$target"
  cp -r "$seeds" "$work/$target/corpus"
  (
    start=$(date +%s.%N)
    rc=0
    "build-sanitize/$target" -runs="$runs" -max_total_time="$max_time" -seed="$seed" -max_len=4096 -timeout=30 \
      -print_final_stats=1 -artifact_prefix="$work/$target/" "$@" "$work/$target/corpus" \
      </dev/null >"$work/$target.log" 2>&1 || rc=$?
    echo "$rc $(date +%s.%N) $start" >"$work/$target.status"
  ) &
}

run fuzz_config tests/fuzz/corpus/config -dict=tests/fuzz/config.dict
run fuzz_corpus tests/fuzz/corpus/corpus
run fuzz_report tests/fuzz/corpus/report -dict=tests/fuzz/report.dict
run fuzz_resume tests/fuzz/corpus/resume
wait

failed=0
for target in fuzz_config fuzz_corpus fuzz_report fuzz_resume; do
  read -r rc end start <"$work/$target.status"
  log=$work/$target.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log")
  printf 'fuzz: %s: %s executions in %.0f s, %s exec/s, %s new inputs (rc %s)\n' \
    "$target" "${execs:-?}" "$(awk "BEGIN { print $end - $start }")" "${rate:-?}" "${added:-?}" "$rc"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz: $target FAILED; the end of $log:" >&2
    tail -n 40 "$log" >&2
    ls "$work/$target"/{crash,timeout,oom,leak,slow-unit}-* 2>/dev/null >&2 || true
    failed=1
  elif [ "${execs:-0}" -lt "$runs" ]; then
    echo "fuzz: $target stopped after ${execs:-0} of $runs executions (OUROBOROS_FUZZ_MAX_TIME=$max_time s)" >&2
    failed=1
  fi
done
exit "$failed"
