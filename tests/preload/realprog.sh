#!/usr/bin/env bash
# realprog.sh - run a real program with and without libsegshim.so and compare.
#
#   realprog.sh --lib LIBSEGSHIM --case NAME --workdir DIR [--badconfig] [--no-stats]
#
# Each case is a workload function (wl_NAME) that runs the program under test
# through `run` and prints a deterministic summary on stdout.  The workload
# runs twice, in fresh directories: once without the shim (the baseline) and
# once with LD_PRELOAD=LIBSEGSHIM.  The case passes when both give the same
# exit status and the same output, and, under the shim, when the statistics
# written through SEGSHIM_STATS show that the pool served requests (every
# process of the workload writes its own file; pool_requests must be > 0 in
# at least one and no file may be malformed).
#
# --badconfig sets every SEGSHIM_* variable to junk instead: the output must
# still match the baseline, and each process must print exactly one warning
# line ("segshim: SEGSHIM_NAME...") per variable on stderr.
# --no-stats skips the statistics check (to try the harness with another
# preloaded allocator such as jemalloc).
#
# Exit: 0 pass, 1 fail, 77 skip (the program, or its test data, is missing).
set -u -o pipefail

SKIP=77
LIB=""
CASE=""
WORK=""
BADCONFIG=0
CHECK_STATS=1

while [ $# -gt 0 ]; do
    case "$1" in
    --lib) LIB=$2; shift 2 ;;
    --case) CASE=$2; shift 2 ;;
    --workdir) WORK=$2; shift 2 ;;
    --badconfig) BADCONFIG=1; shift ;;
    --no-stats) CHECK_STATS=0; shift ;;
    *) echo "realprog.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ -z "$LIB" ] || [ -z "$CASE" ] || [ -z "$WORK" ]; then
    echo "usage: realprog.sh --lib LIB --case NAME --workdir DIR [--badconfig] [--no-stats]" >&2
    exit 2
fi
if [ ! -f "$LIB" ]; then
    echo "realprog.sh: no library at $LIB" >&2
    exit 1
fi

# The bad values, one per variable.  SEGSHIM_STATS is empty: any other
# value but 0 and 1 is a path, a valid value.
BAD_VARS=(
    SEGSHIM_SEGMENT_SIZE=48K
    SEGSHIM_POOL_SIZE=lots
    SEGSHIM_HUGEPAGES=maybe
    SEGSHIM_PREFAULT=-1
    SEGSHIM_TCACHE=x
    SEGSHIM_DECAY_MS=9q
    SEGSHIM_STATS=
    SEGSHIM_STATS_SIGNAL=SIGFOO
    SEGSHIM_VERBOSE=yes
    SEGSHIM_DISABLE=2
)

PER_CMD_TIMEOUT=${REALPROG_TIMEOUT:-150}
MODE=""     # base | shim | bad, set by run_mode
RUN_DIR=""  # per-mode scratch directory

log() { printf 'realprog[%s/%s]: %s\n' "$CASE" "${MODE:-setup}" "$*" >&2; }
skip() { log "SKIP: $*"; echo "SKIP: $*"; exit $SKIP; }

# run [--single] CMD ARGS...: run the program under test in the current mode,
# bounded in time.  Its stderr goes to $RUN_DIR/stderr.N (and is shown when
# the case fails); --single marks a command that spawns no other process of
# its own, so exactly one warning per bad variable is expected from it.
run() {
    local single=0
    if [ "$1" = "--single" ]; then single=1; shift; fi
    # A counter in a file: run is often called in a pipeline's subshell.
    local n
    n=$(($(cat "$RUN_DIR/.nrun") + 1))
    echo $n >"$RUN_DIR/.nrun"
    local NRUN
    NRUN=$(printf '%03d' $n)
    local err="$RUN_DIR/stderr.$NRUN"
    local -a envs=()
    case "$MODE" in
    shim) envs=("LD_PRELOAD=$LIB${LD_PRELOAD:+:$LD_PRELOAD}" "SEGSHIM_STATS=$RUN_DIR/stats.$NRUN.json") ;;
    bad) envs=("LD_PRELOAD=$LIB${LD_PRELOAD:+:$LD_PRELOAD}" "${BAD_VARS[@]}") ;;
    esac
    echo "$single $*" >"$RUN_DIR/cmd.$NRUN"
    local rc=0
    timeout -k 5 "$PER_CMD_TIMEOUT" env "${envs[@]}" "$@" 2>"$err" || rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "TIMEOUT after ${PER_CMD_TIMEOUT}s: $*" >>"$RUN_DIR/timeouts"
    fi
    return $rc
}

# ---- workloads -----------------------------------------------------------

# python3 and a few modules of its own regression suite.
PYTHON=""
find_python() {
    command -v python3 >/dev/null 2>&1 || skip "python3 is not installed"
    # The real interpreter, not a pyenv shim script.
    PYTHON=$(python3 -c 'import sys; print(sys.executable)') || skip "python3 does not run"
    if ! "$PYTHON" -c 'import test.support, test.libregrtest, test.test_dict' >/dev/null 2>&1; then
        local ver pkg
        ver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        pkg="libpython$ver-testsuite"
        if [ "$PYTHON" = "/usr/bin/python$ver" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            log "installing $pkg for the regression suite"
            timeout 300 apt-get install -y -q "$pkg" >"$WORK/apt.log" 2>&1 ||
                { timeout 120 apt-get update -q >>"$WORK/apt.log" 2>&1 &&
                    timeout 300 apt-get install -y -q "$pkg" >>"$WORK/apt.log" 2>&1; }
        fi
        "$PYTHON" -c 'import test.support, test.libregrtest, test.test_dict' >/dev/null 2>&1 ||
            skip "the regression suite of $PYTHON is not installed ($pkg could not be installed)"
    fi
}

PY_MODULES=(test_dict test_list test_set test_re test_json test_threading)
# In --badconfig mode every child interpreter prints the warnings on its
# stderr, which tests that spawn one and expect a clean stderr take for a
# failure (test_threading throughout, json.tool's TestTool): those are left
# out of that mode, in the baseline run too so that the totals compare.
PY_MODULES_BAD=(test_dict test_list test_set test_re test_json)
wl_python() {
    local -a mods=("${PY_MODULES[@]}") ignore=(-i test_import_from_another_thread)
    if [ "$BADCONFIG" = 1 ]; then
        mods=("${PY_MODULES_BAD[@]}")
        ignore+=(-i TestTool)
    fi
    local rc=0
    # test_import_from_another_thread fails on this interpreter with or
    # without the shim (threading is imported at start-up by site).
    run "$PYTHON" -m test "${ignore[@]}" "${mods[@]}" >"$RUN_DIR/py.out" || rc=$?
    # Only what does not depend on timing: the totals and the failed names.
    grep -E '^(Result:|Total tests:|Total test files:)|^ *[0-9]+ tests? (OK|failed)|^    test_' "$RUN_DIR/py.out"
    [ $rc = 0 ] || tail -n 60 "$RUN_DIR/py.out" >&2
    echo "exit $rc"
}

# sqlite3 on a generated database of 150k rows with indexes and queries.
wl_sqlite() {
    command -v sqlite3 >/dev/null 2>&1 || skip "sqlite3 is not installed"
    cat >"$RUN_DIR/load.sql" <<'EOF'
PRAGMA journal_mode = WAL;
PRAGMA cache_size = -16000;
CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT NOT NULL, grp INTEGER, price REAL, note TEXT);
CREATE TABLE grp(id INTEGER PRIMARY KEY, label TEXT);
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 150000)
INSERT INTO item SELECT x, 'item-' || ((x * 7919) % 150001), x % 97, ((x * 31) % 1000) / 7.0,
                        substr(printf('%.*c', 1 + x % 700, 'n'), 1) || x FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 96)
INSERT INTO grp SELECT x, 'group ' || x FROM n;
COMMIT;
CREATE INDEX item_name ON item(name);
CREATE INDEX item_grp_price ON item(grp, price);
CREATE UNIQUE INDEX grp_label ON grp(label);
ANALYZE;
EOF
    cat >"$RUN_DIR/query.sql" <<'EOF'
.mode list
SELECT count(*), sum(grp), round(sum(price), 3), sum(length(note)) FROM item;
SELECT g.label, count(*), round(avg(i.price), 4), max(i.name)
  FROM item i JOIN grp g ON g.id = i.grp GROUP BY g.label ORDER BY g.label LIMIT 20;
SELECT name FROM item WHERE name BETWEEN 'item-1000' AND 'item-1010' ORDER BY name;
SELECT id, price FROM item WHERE grp = 42 AND price > 140 ORDER BY price DESC, id LIMIT 10;
SELECT length(group_concat(name, ',')) FROM (SELECT name FROM item ORDER BY name LIMIT 20000);
BEGIN;
UPDATE item SET price = price * 2, note = note || '-updated' WHERE id % 10 = 0;
DELETE FROM item WHERE id % 13 = 0;
INSERT INTO item(name, grp, price, note) SELECT name || '-copy', grp, price, upper(note) FROM item WHERE id % 50 = 1;
COMMIT;
SELECT count(*), round(sum(price), 3), sum(length(note)) FROM item;
SELECT grp, count(*) c FROM item GROUP BY grp HAVING c > 1540 ORDER BY c DESC, grp LIMIT 5;
WITH RECURSIVE fib(a, b, k) AS (SELECT 0, 1, 0 UNION ALL SELECT b, a + b, k + 1 FROM fib WHERE k < 80)
SELECT max(a) FROM fib;
PRAGMA integrity_check;
VACUUM;
SELECT count(*) FROM item INDEXED BY item_name WHERE name LIKE 'item-99%';
EOF
    local rc=0
    run --single sqlite3 "$RUN_DIR/db.sqlite" <"$RUN_DIR/load.sql" || rc=$?
    echo "load exit $rc"
    rc=0
    run --single sqlite3 "$RUN_DIR/db.sqlite" <"$RUN_DIR/query.sql" || rc=$?
    echo "query exit $rc"
}

# git: init, commit many files over several commits, gc, log, fsck.
wl_git() {
    command -v git >/dev/null 2>&1 || skip "git is not installed"
    local repo="$RUN_DIR/repo"
    mkdir -p "$repo"
    export HOME="$RUN_DIR" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=segshim GIT_AUTHOR_EMAIL=segshim@example.org
    export GIT_COMMITTER_NAME=segshim GIT_COMMITTER_EMAIL=segshim@example.org
    export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
    local d f rc=0
    for d in $(seq 0 9); do
        mkdir -p "$repo/dir$d"
        for f in $(seq 0 49); do
            printf 'file %d/%d\n%s\n' "$d" "$f" "$(seq -s ' ' 1 $((f * 3 + d)))" >"$repo/dir$d/f$f.txt"
        done
    done
    (
        cd "$repo" || exit 1
        run git init -q -b main . || echo "init failed $?"
        run git add -A || echo "add failed $?"
        run git commit -q -m "initial: 500 files" || echo "commit failed $?"
        local c
        for c in $(seq 1 8); do
            for f in $(seq 0 40); do
                echo "change $c $f" >>"dir$((c % 10))/f$f.txt"
            done
            echo "new $c" >"dir$((c % 10))/new$c.txt"
            run git add -A || echo "add $c failed $?"
            run git commit -q -m "change $c" || echo "commit $c failed $?"
        done
        run git mv dir3 renamed3 && run git commit -q -m "rename" || echo "rename failed"
        run git gc -q --prune=now || echo "gc failed $?"
        run git log --stat --format='%H %s' | md5sum
        run git log --format='%H %T %s' | head -5
        run git rev-list --count --all
        run git diff --stat HEAD~10 HEAD | tail -1
        run git fsck --strict 2>&1 | wc -l
        run git count-objects -v | grep -E '^(count|in-pack|garbage):'
        run git grep -c 'change 7' | wc -l
        run git archive --format=tar HEAD | tar -tf - | wc -l
    )
    rc=$?
    echo "git exit $rc"
}

# perl: hashes, regexes, sort, sprintf, closures, big strings and arrays.
wl_perl() {
    command -v perl >/dev/null 2>&1 || skip "perl is not installed"
    cat >"$RUN_DIR/work.pl" <<'EOF'
use strict; use warnings;
my %h; my @a;
for my $i (1 .. 200000) {
    my $k = sprintf("key-%06d-%s", ($i * 7919) % 200003, "x" x ($i % 40));
    $h{$k} = [$i, $i * 2, "v$i"];
    push @a, $k if $i % 7 == 0;
}
my $n = scalar keys %h;
my $sum = 0; $sum += $h{$_}[1] for keys %h;
print "hash $n $sum\n";
my @s = sort { $h{$a}[0] <=> $h{$b}[0] } @a;
print "sorted ", scalar(@s), " $s[0] $s[-1]\n";
my $text = join("\n", map { "line $_: " . ("abc" x ($_ % 50)) } 1 .. 50000);
my $m = () = $text =~ /(?:abc){10,}/g;
(my $t2 = $text) =~ s/(\d+):/<$1>/g;
print "regex $m ", length($text), " ", length($t2), "\n";
my @subs = map { my $x = $_; sub { $x * $_[0] } } 1 .. 10000;
my $acc = 0; $acc += $_->(3) for @subs;
print "closures $acc\n";
my $big = ""; $big .= chr(65 + $_ % 26) for 1 .. 2_000_000;
print "big ", length($big), " ", substr($big, 1_000_000, 10), "\n";
delete @h{ grep { /7-/ } keys %h };
print "after delete ", scalar(keys %h), "\n";
my %w; $w{$_}++ for split /\s+/, $text;
print "words ", scalar(keys %w), "\n";
EOF
    local rc=0
    run --single perl "$RUN_DIR/work.pl" || rc=$?
    echo "perl exit $rc"
}

# gcc: compile a generated C file (driver, cc1, as, collect2, ld all run
# under the shim), compare the assembly and run the program.
wl_gcc() {
    command -v gcc >/dev/null 2>&1 || skip "gcc is not installed"
    local src="$RUN_DIR/prog.c" i
    {
        echo '#include <stdio.h>'
        echo '#include <string.h>'
        echo 'struct rec { int id; double w; char name[24]; };'
        for i in $(seq 0 119); do
            cat <<EOF
static int f$i(int x) {
    struct rec r[8]; int s = 0;
    for (int k = 0; k < 8; k++) { r[k].id = x + k * $i; r[k].w = k * 0.5 + $i; snprintf(r[k].name, sizeof r[k].name, "r%d-%d", $i, k); }
    for (int k = 0; k < 8; k++) s += r[k].id ^ (int)r[k].w + (int)strlen(r[k].name);
    switch (x % 5) { case 0: return s + $i; case 1: return s * 3; case 2: return s - x; default: return s ^ $i; }
}
EOF
        done
        echo 'int main(void) { long t = 0;'
        for i in $(seq 0 119); do echo "    t += f$i($i * 3);"; done
        echo '    printf("%ld\n", t); return 0; }'
    } >"$src"
    local rc=0
    (cd "$RUN_DIR" && run gcc -O2 -S -o prog.s prog.c) || rc=$?
    echo "gcc -S exit $rc"
    grep -v -E '^\s*\.(ident|file)' "$RUN_DIR/prog.s" | md5sum
    rc=0
    (cd "$RUN_DIR" && run gcc -O2 -g -Wall -o prog prog.c) || rc=$?
    echo "gcc exit $rc"
    "$RUN_DIR/prog"
    echo "prog exit $?"
}

# A shell pipeline that spawns many short processes.
wl_pipeline() {
    cat >"$RUN_DIR/pipe.sh" <<'EOF'
set -o pipefail
for i in $(seq 1 250); do
    echo "item $i $((i * i))" | sed -e 's/item/ITEM/' | tr 'A-Z' 'a-z' | cut -d' ' -f1,3
done | sort -t' ' -k2,2n | uniq -c | awk '{ n += $1; s += $3 } END { print n, s }'
seq 1 20000 | xargs -n 500 -P 2 echo | awk '{ n += NF } END { print n }'
seq 1 100000 | grep -v 7 | sort -r | head -3
for i in $(seq 1 60); do (echo sub $i | wc -c); done | sort -n | uniq -c | wc -l
mkdir -p tree && for i in $(seq 1 40); do mkdir -p tree/d$((i % 7)) && touch tree/d$((i % 7))/f$i; done
find tree -type f | wc -l
printf '%s\n' $(seq 1 3000) | paste -sd+ | bc
EOF
    command -v bc >/dev/null 2>&1 || sed -i '$d' "$RUN_DIR/pipe.sh"
    local rc=0
    run bash "$RUN_DIR/pipe.sh" "$RUN_DIR" || rc=$?
    echo "pipeline exit $rc"
}

# redis-server under the shim, driven by redis-benchmark, with keys written,
# reloaded through DEBUG RELOAD and read back.
wl_redis() {
    command -v redis-server >/dev/null 2>&1 || skip "redis-server is not installed"
    command -v redis-cli >/dev/null 2>&1 || skip "redis-cli is not installed"
    command -v redis-benchmark >/dev/null 2>&1 || skip "redis-benchmark is not installed"
    local port="" pid="" try cli
    for try in 1 2 3 4 5 6; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        rm -f "$RUN_DIR/redis.log"
        run --single redis-server --port "$port" --bind 127.0.0.1 --dir "$RUN_DIR" --dbfilename dump.rdb \
            --save '' --appendonly no --daemonize no --logfile "$RUN_DIR/redis.log" \
            --enable-debug-command yes --protected-mode yes --pidfile "$RUN_DIR/redis.pid" &
        pid=$!
        local up=0 i
        for i in $(seq 1 100); do
            if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then up=1; break; fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        [ $up = 1 ] && break
        # Not up: it exited (port taken) or hangs; stop the server itself.
        [ -s "$RUN_DIR/redis.pid" ] && kill "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null
        wait "$pid" 2>/dev/null
        pid=""
        log "redis-server did not come up on port $port (try $try)"
    done
    if [ -z "$pid" ]; then
        echo "redis-server could not start"
        cat "$RUN_DIR/redis.log" >&2 2>/dev/null
        return 1
    fi
    cli=(timeout 60 redis-cli -p "$port")
    timeout 120 redis-benchmark -p "$port" -n 20000 -c 16 -q -d 200 -r 5000 \
        -t set,get,incr,lpush,rpop,sadd,hset,spop,lrange_100,mset >"$RUN_DIR/bench1.out" 2>&1
    echo "benchmark small exit $?"
    timeout 120 redis-benchmark -p "$port" -n 2000 -c 8 -q -d 50000 -r 500 -t set,get >"$RUN_DIR/bench2.out" 2>&1
    echo "benchmark large exit $?"
    "${cli[@]}" flushall

    # Keys of every size, lists, hashes and sets; values are deterministic.
    # (mawk's sprintf stops at 8 KiB, so long values are built by doubling.)
    local zeros='function zeros(n,   s, r) { r = ""; s = "0"; while (n > 0) { if (n % 2) r = r s; s = s s; n = int(n / 2) } return r }'
    awk "$zeros"'function cmd(n, a,   i, s) { s = "*" n "\r\n"; for (i = 1; i <= n; i++) s = s "$" length(a[i]) "\r\n" a[i] "\r\n"; printf "%s", s }
    BEGIN {
        for (i = 1; i <= 4000; i++) {
            n = (i * 7919) % 60000; if (i % 3) n = n % 300;
            a[1] = "SET"; a[2] = "str:" i; a[3] = zeros(n) i; cmd(3, a);
            if (i % 4 == 0) { a[1] = "RPUSH"; a[2] = "list:" (i % 97); a[3] = "a" i; a[4] = "b" i; cmd(4, a) }
            if (i % 5 == 0) { a[1] = "HSET"; a[2] = "hash:" (i % 89); a[3] = "f" i; a[4] = i * i; cmd(4, a) }
            if (i % 6 == 0) { a[1] = "SADD"; a[2] = "set:" (i % 83); a[3] = "m" i; cmd(3, a) }
        }
    }' >"$RUN_DIR/write.txt"
    "${cli[@]}" --pipe <"$RUN_DIR/write.txt" >"$RUN_DIR/pipe.out" 2>&1
    echo "write exit $? $(grep -o 'errors: .*' "$RUN_DIR/pipe.out")"
    echo "reload $("${cli[@]}" debug reload)"
    echo "dbsize $("${cli[@]}" dbsize)"
    awk 'BEGIN { for (i = 1; i <= 4000; i++) printf "GET str:%d\n", i;
                 for (i = 0; i < 97; i++) printf "LRANGE list:%d 0 -1\n", i;
                 for (i = 0; i < 89; i++) printf "HLEN hash:%d\n", i;
                 for (i = 0; i < 83; i++) printf "SCARD set:%d\n", i; }' |
        "${cli[@]}" >"$RUN_DIR/read.out"
    echo "read exit $? $(md5sum <"$RUN_DIR/read.out")"
    # The values must be exactly what was written (not only the same as the baseline).
    awk "$zeros"'BEGIN { for (i = 1; i <= 4000; i++) { n = (i * 7919) % 60000; if (i % 3) n = n % 300;
                 print zeros(n) i } }' >"$RUN_DIR/expect.out"
    if head -4000 "$RUN_DIR/read.out" | cmp -s - "$RUN_DIR/expect.out"; then echo "values ok"; else echo "values differ"; fi
    echo "info $("${cli[@]}" info keyspace | tr -d '\r' | grep '^db0' | sed 's/,expires.*//')"
    "${cli[@]}" shutdown nosave >/dev/null 2>&1
    local rc=0
    wait "$pid" || rc=$?
    echo "redis-server exit $rc"
}

# ---- driver --------------------------------------------------------------

# The statistics files of the shim run: every one must parse; pool_requests
# must be > 0 in at least one.  Prints a summary line.
check_stats() {
    local dir=$1
    if ! command -v python3 >/dev/null 2>&1; then
        # No JSON parser: the keys must be there and pool_requests positive.
        local f total=0 n
        for f in "$dir"/stats.*.json; do
            [ -f "$f" ] || continue
            for k in pool_requests fallback_too_large fallback_aligned fallback_exhausted fallback_other; do
                grep -q "\"$k\"" "$f" || { echo "stats: $f has no $k"; return 1; }
            done
            n=$(grep -o '"pool_requests": *[0-9]*' "$f" | grep -o '[0-9]*$')
            total=$((total + ${n:-0}))
        done
        echo "stats: pool_requests $total (grep)"
        [ "$total" -gt 0 ]
        return
    fi
    python3 - "$dir" <<'EOF'
import glob, json, sys
files = sorted(glob.glob(sys.argv[1] + "/stats.*.json"))
if not files:
    print("stats: no SEGSHIM_STATS file was written"); sys.exit(1)
bad, total, fb = [], 0, {}
for f in files:
    try:
        with open(f) as fh:
            d = json.load(fh)
        total += int(d["pool_requests"])
        for k in ("fallback_too_large", "fallback_aligned", "fallback_exhausted", "fallback_other"):
            fb[k] = fb.get(k, 0) + int(d[k])
    except Exception as e:
        bad.append("%s: %s" % (f, e))
print("stats: %d files, pool_requests %d, %s" % (len(files), total, " ".join("%s %d" % kv for kv in sorted(fb.items()))))
for b in bad:
    print("stats: malformed " + b)
sys.exit(1 if bad or total <= 0 else 0)
EOF
}

# Every process must print one line per bad variable, and nothing else
# starting with "segshim:".  Commands marked --single count as one process.
check_warnings() {
    local dir=$1 n ok=0 f
    for f in "$dir"/cmd.*; do
        n=${f##*.}
        local single err="$dir/stderr.$n"
        read -r single _ <"$f"
        local first="" v count
        for v in "${BAD_VARS[@]}"; do
            v=${v%%=*}
            count=$(grep -c "^segshim: $v[=: ]" "$err")
            [ -z "$first" ] && first=$count
            if [ "$count" != "$first" ] || [ "$count" -lt 1 ] || { [ "$single" = 1 ] && [ "$count" != 1 ]; }; then
                echo "warnings: command $n ($(cut -d' ' -f2- "$f")): $count line(s) for $v (first variable: $first)"
                ok=1
            fi
        done
        local all want
        all=$(grep -c '^segshim:' "$err")
        want=$((first * ${#BAD_VARS[@]}))
        if [ "$all" != "$want" ]; then
            echo "warnings: command $n: $all 'segshim:' lines on stderr, expected $want"
            ok=1
        fi
    done
    [ $ok = 0 ] && echo "warnings: one line per bad variable in every process"
    return $ok
}

run_mode() {
    MODE=$1
    RUN_DIR="$WORK/$MODE"
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    echo 0 >"$RUN_DIR/.nrun"
    local rc=0
    (cd "$RUN_DIR" && "wl_$CASE") >"$WORK/$MODE.out" 2>"$WORK/$MODE.err" || rc=$?
    echo "workload exit $rc" >>"$WORK/$MODE.out"
    if [ $rc -eq $SKIP ]; then
        cat "$WORK/$MODE.out"
        exit $SKIP
    fi
}

show_stderr() {
    local f
    for f in "$WORK/$1"/stderr.*; do
        [ -s "$f" ] || continue
        echo "--- $f: $(cut -d' ' -f2- "${f/stderr/cmd}")"
        tail -n 30 "$f"
    done
    [ -f "$WORK/$1/timeouts" ] && cat "$WORK/$1/timeouts"
    [ -s "$WORK/$1.err" ] && { echo "--- workload stderr"; tail -n 30 "$WORK/$1.err"; }
}

if ! declare -F "wl_$CASE" >/dev/null; then
    echo "realprog.sh: unknown case '$CASE'" >&2
    exit 2
fi
rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
[ "$CASE" = python ] && find_python
export LC_ALL=C TZ=UTC

other=shim
[ $BADCONFIG = 1 ] && other=bad
start=$SECONDS
run_mode base
t_base=$((SECONDS - start))
start=$SECONDS
run_mode $other
t_other=$((SECONDS - start))

status=0
echo "== $CASE: baseline ${t_base}s, $other ${t_other}s (lib $LIB)"
if cmp -s "$WORK/base.out" "$WORK/$other.out"; then
    echo "output: same with and without the shim ($(wc -l <"$WORK/base.out") lines; the first 25:)"
    head -n 25 "$WORK/base.out" | sed 's/^/  /'
else
    echo "output: DIFFERS (diff baseline $other)"
    diff "$WORK/base.out" "$WORK/$other.out"
    status=1
fi
if [ $BADCONFIG = 1 ]; then
    check_warnings "$WORK/bad" || status=1
elif [ $CHECK_STATS = 1 ]; then
    check_stats "$WORK/shim" || status=1
fi
if [ $status != 0 ]; then
    echo "== stderr of the $other run"
    show_stderr "$other"
    echo "== stderr of the baseline run"
    show_stderr base
    echo "FAIL: $CASE"
else
    echo "PASS: $CASE"
    # Keep the outputs, drop the scratch trees (repositories, databases).
    rm -rf "${WORK:?}/base" "${WORK:?}/$other"
fi
exit $status
