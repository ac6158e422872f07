#!/bin/bash
# prefault.sh - SEGSHIM_PREFAULT larger than the memory available is capped,
# with one warning line, and the program runs with its RSS near the cap, not
# OOM-killed.  Usage: prefault.sh /path/to/libsegshim.so
#
# 1. A 64 TiB prefault (the largest value the option takes), with the pool
#    bounded to 256 MiB so that the test does not take the machine's memory:
#    the warning names a cap of at most MemAvailable, the pool is still
#    prefaulted (RSS of at least 200 MiB, at most 320 MiB).
# 2. When a memory cgroup can be created here (root, cgroup v1 or v2 with
#    the memory controller): the same prefault with the default pool size in
#    a 256 MiB cgroup: the cap is within the cgroup's room and the program
#    exits normally.  Otherwise this part is skipped, with a note.
set -u
lib=$1
fail() { echo "FAIL: $*"; exit 1; }
warn_re='^segshim: SEGSHIM_PREFAULT=65536G exceeds available memory; using ([0-9]+)([GMK]?)$'

# bytes of a "<n>[GMK]" capture
cap_bytes() {
  case $2 in G) echo $(($1 << 30)) ;; M) echo $(($1 << 20)) ;; K) echo $(($1 << 10)) ;; *) echo "$1" ;; esac
}

# run_prefault ENV... : runs cat under the shim; sets rss_kb and cap
run_prefault() {
  local out err
  err=$(mktemp)
  out=$(env "$@" SEGSHIM_PREFAULT=65536G LD_PRELOAD="$lib" cat /proc/self/status 2>"$err") ||
    fail "the program failed ($?): $(cat "$err")"
  local lines
  lines=$(grep -c . "$err")
  [[ $lines == 1 && $(cat "$err") =~ $warn_re ]] || fail "expected one warning line, got: $(cat "$err")"
  cap=$(cap_bytes "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
  rss_kb=$(awk '/^VmRSS:/ {print $2}' <<<"$out")
  rm -f "$err"
  [[ -n $rss_kb ]] || fail "no VmRSS in the program's output"
}

avail=$(awk '/^MemAvailable:/ {printf "%.0f\n", $2 * 1024}' /proc/meminfo)
run_prefault SEGSHIM_POOL_SIZE=256M
echo "pool 256M: cap $((cap >> 20)) MiB (MemAvailable $((avail >> 20)) MiB), RSS $((rss_kb >> 10)) MiB"
((cap > 0 && cap <= avail + avail / 10)) || fail "the cap $cap is not within MemAvailable ($avail)"
((rss_kb >= 200 << 10)) || fail "RSS $rss_kb kB: the pool was not prefaulted"
((rss_kb <= 320 << 10)) || fail "RSS $rss_kb kB: more than the pool was prefaulted"

# Part 2: a memory cgroup of our own, if one can be made.
cg=""
v1=$(grep -m1 -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' /proc/self/cgroup | cut -d: -f3-)
v2=$(grep -m1 '^0::' /proc/self/cgroup | cut -d: -f3-)
if [[ -n $v1 && -w /sys/fs/cgroup/memory$v1 ]]; then
  cg=/sys/fs/cgroup/memory$v1/segshim-prefault-$$
  limit_file=memory.limit_in_bytes
elif [[ -n $v2 && -w /sys/fs/cgroup$v2 ]] && grep -qw memory "/sys/fs/cgroup$v2/cgroup.subtree_control" 2>/dev/null; then
  cg=/sys/fs/cgroup$v2/segshim-prefault-$$
  limit_file=memory.max
fi
if [[ -z $cg ]] || ! mkdir "$cg" 2>/dev/null; then
  echo "cgroup part skipped: no writable memory cgroup here"
  exit 0
fi
trap 'rmdir "$cg" 2>/dev/null' EXIT
echo $((256 << 20)) >"$cg/$limit_file" || fail "cannot set $cg/$limit_file"
# The subshell moves itself into the cgroup, then runs the program there.
result=$(
  echo $BASHPID >"$cg/cgroup.procs" || exit 3
  run_prefault
  echo "$cap $rss_kb"
) || fail "in the 256 MiB cgroup: $result"
read -r cap rss_kb <<<"$result"
echo "cgroup 256M, default pool: cap $((cap >> 20)) MiB, RSS $((rss_kb >> 10)) MiB"
((cap > 0 && cap <= 256 << 20)) || fail "the cap $cap is not within the cgroup's 256 MiB"
((rss_kb <= 256 << 10)) || fail "RSS $rss_kb kB above the cgroup limit"
