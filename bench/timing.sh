# Sourced by the side-by-side scripts: alternate two programs on this machine
# and time their whole processes.
#   alternate REPEATS NAME_OURS NAME_PEER
# calls the caller's functions run_ours and run_peer REPEATS times each,
# alternating, prints each pair's wall times, and leaves them in the arrays
# ours and peer; median prints the median of its arguments.
now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
alternate() {
  local repeats=$1 name_ours=$2 name_peer=$3 i t0 t1 t2
  ours=() peer=()
  for ((i = 1; i <= repeats; i++)); do
    t0=$(now)
    run_ours
    t1=$(now)
    run_peer
    t2=$(now)
    ours+=("$(awk "BEGIN {print $t1 - $t0}")")
    peer+=("$(awk "BEGIN {print $t2 - $t1}")")
    printf 'run %d: %s %.3f s   %s %.3f s\n' "$i" "$name_ours" "${ours[-1]}" "$name_peer" "${peer[-1]}"
  done
}
