#!/usr/bin/env bash
# stats_file_test.sh - SEGSHIM_STATS and SEGSHIM_VERBOSE as a user meets them:
#   - a relative path (stats.json) is written in the working directory, with
#     the pid and program in it; %p gives one file per process;
#   - a symbolic link at the path is not followed and its target is left
#     alone; an unwritable path and a path too long once %p is expanded each
#     give exactly one line naming the path and the reason, then the table
#     on stderr;
#   - SEGSHIM_VERBOSE=1 prints the configuration in force, every line
#     prefixed "segshim: ".
#
#   stats_file_test.sh LIBSEGSHIM PROGRAM WORKDIR
# PROGRAM is stats_live, run as "PROGRAM alloc" (allocates, exits 0).
set -u
LIB=$1 PROG=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
run() { env LD_PRELOAD="$LIB" "$@" "$PROG" alloc; }

# A relative path.
run SEGSHIM_STATS=stats.json 2>err.txt || fail "relative path: exit status $?"
[ -s stats.json ] || fail "relative path: no stats.json in $(pwd)"
grep -q '"program": "stats_live"' stats.json || fail "stats.json lacks the program"
grep -q '"pid": [1-9]' stats.json || fail "stats.json lacks the pid"
[ -s err.txt ] && fail "relative path: stderr not empty: $(cat err.txt)"
# The same path again: our own file is rewritten, not refused.
run SEGSHIM_STATS=stats.json 2>err.txt
[ -s err.txt ] && fail "rewriting our own stats.json: $(cat err.txt)"

# %p: the pid in the name, and the same pid inside.
run SEGSHIM_STATS=run-%p.json 2>/dev/null
f=$(ls run-*.json 2>/dev/null | head -n 1)
if [ -z "$f" ]; then
    fail "%p: no run-PID.json"
else
    pid=${f#run-}; pid=${pid%.json}
    grep -q "\"pid\": $pid," "$f" || fail "%p: $f does not hold pid $pid"
fi

# A symbolic link planted at the path.
echo keep >target
ln -s target link.json
run SEGSHIM_STATS=link.json 2>err.txt
[ "$(cat target)" = keep ] || fail "the link's target was overwritten"
n=$(grep -c '^segshim: SEGSHIM_STATS' err.txt)
[ "$n" = 1 ] || fail "symlink: $n message lines, want 1: $(cat err.txt)"
grep -q '^segshim: SEGSHIM_STATS: cannot write link.json: it is a symbolic link (not followed); statistics on stderr$' err.txt ||
    fail "symlink message: $(head -n 1 err.txt)"
grep -q '^segshim statistics$' err.txt || fail "symlink: no table on stderr"

# A directory that does not exist: the path and the system's reason.
run SEGSHIM_STATS="$WORK/no/such/s.json" 2>err.txt
grep -qx "segshim: SEGSHIM_STATS: cannot write $WORK/no/such/s.json: No such file or directory; statistics on stderr" err.txt ||
    fail "missing directory message: $(head -n 1 err.txt)"

# A path that fits SEGSHIM_STATS but not once each %p is a pid: refused whole.
# 100 bytes and 77 "%p": 254 bytes, over 320 once every pid has 3 digits.
long=$(printf 'x%.0s' $(seq 1 100))$(printf '%%p%.0s' $(seq 1 77))
[ ${#long} = 254 ] || fail "the test's long path has ${#long} bytes"
run SEGSHIM_STATS="$long" 2>err.txt
grep -q '^segshim: SEGSHIM_STATS: cannot write xxx.*: the path is too long once %p is expanded; statistics on stderr$' err.txt ||
    fail "long path message: $(head -n 1 err.txt)"
ls | grep -q '^xxxx' && fail "a truncated long path was created"

# SEGSHIM_VERBOSE=1: the configuration in force, each line prefixed.
run SEGSHIM_VERBOSE=1 SEGSHIM_POOL_SIZE=64M SEGSHIM_HUGEPAGES=off 2>err.txt
grep -vq '^segshim: ' err.txt && fail "verbose: a line without the prefix: $(grep -v '^segshim: ' err.txt | head -n 1)"
grep -qx 'segshim: SEGSHIM_POOL_SIZE=64M' err.txt || fail "verbose: pool size in force: $(cat err.txt)"
grep -qx 'segshim: SEGSHIM_HUGEPAGES=off' err.txt || fail "verbose: huge pages in force: $(cat err.txt)"
run SEGSHIM_VERBOSE=1 2>err.txt
grep -q '^segshim: SEGSHIM_POOL_SIZE=[1-9][0-9]*[MG]  (requested 0)$' err.txt ||
    fail "verbose: the automatic pool size in force: $(cat err.txt)"
grep -q '^segshim: SEGSHIM_HUGEPAGES=\(thp\|hugetlb\|off\)  (requested auto)$' err.txt ||
    fail "verbose: the huge-page mode in force: $(cat err.txt)"
grep -q '^segshim: SEGSHIM_SHARDS=[1-9][0-9]*  (requested 0)$' err.txt ||
    fail "verbose: the shard count in force: $(cat err.txt)"
run SEGSHIM_VERBOSE=1 SEGSHIM_SHARDS=3 2>err.txt
grep -qx 'segshim: SEGSHIM_SHARDS=3' err.txt || fail "verbose: shards in force: $(cat err.txt)"

[ $fails = 0 ] && echo "stats_file_test: every check holds"
exit $((fails != 0))
