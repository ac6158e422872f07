#!/usr/bin/env bash
# real.sh - the real-program workloads of scripts/bench.py.
#
#   real.sh sqlite|python|gcc|redis|redis-lpush|redis-lrange WORKDIR [SCALE]
#   real.sh stress-malloc WORKDIR [SCALE [WORKERS]]
#
# Runs one real program on a generated, deterministic input and prints
# "checksum: ..." computed from its output.  The allocator under test is
# preloaded into the program itself only (BENCH_PRELOAD), not into this
# script or helper tools.  SCALE (default 1) multiplies the input size;
# --quick uses a fraction.  WORKDIR holds the generated inputs.
#
#   sqlite  sqlite3 :memory: on a generated SQL script (inserts, indexes,
#           group by, update, delete, sorts)
#   python  python3 churning dicts, lists, strings and small objects, with
#           PYTHONMALLOC=malloc so every object goes through malloc
#   gcc     gcc -O2 compiling a large generated C file
#   redis   redis-server on 127.0.0.1 at a free high port, driven by
#           redis-benchmark with a bounded request count; the checksum is
#           DEBUG DIGEST of a dataset made with DEBUG POPULATE
#   redis-lpush   redis-benchmark -t lpush -d 1024: one list grown by 1 KB
#           values, 50 clients; the checksum is the list's length and DEBUG
#           DIGEST
#   redis-lrange  redis-benchmark -t lrange_100 -d 10240: the list filled with
#           10 KB values by LPUSH, then LRANGE of its first 100 (1 MB replies);
#           the checksum is DEBUG DIGEST and the md5 of one such reply
#   stress-malloc stress-ng --malloc WORKERS (default 1) with --verify: random
#           malloc, calloc, realloc and free of blocks up to 64 KiB, with
#           malloc_trim calls; the checksum is the bogo-op count it reports
#
# The redis workloads also print, for the server alone (the preloaded
# process): rps (requests per second of the case), server_cpu_s and
# server_rss_kb (its peak resident set), read from /proc before it exits.
set -euo pipefail

name=${1:?usage: real.sh WORKLOAD WORKDIR [SCALE [WORKERS]]}
work=${2:?WORKDIR}
scale=${3:-1}
workers=${4:-1}
mkdir -p "$work"
pre=${BENCH_PRELOAD:-}

# The integer part of N * scale, at least 1.
scaled() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s); print (v < 1 ? 1 : v) }'; }

# ---- redis-server, the preloaded process of the redis workloads ----------------
redis_log=$work/redis.log
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }

# Starts redis-server on 127.0.0.1 (port, srv).  A port below the kernel's
# ephemeral range (32768 and up), so that no client socket holds it; a port
# taken anyway costs one more try.  redis links jemalloc: with no allocator
# to preload, glibc's is forced (BENCH_LIBCMALLOC).
redis_start() {
    [ -z "$pre" ] && pre=${BENCH_LIBCMALLOC:-}
    srv=
    trap '[ -n "$srv" ] && kill $srv 2>/dev/null || true' EXIT
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 12000))
        LD_PRELOAD=$pre redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --enable-debug-command local --dir "$work" --logfile "$redis_log" &
        srv=$!
        for _ in $(seq 100); do
            cli ping >/dev/null 2>&1 && break
            kill -0 $srv 2>/dev/null || break
            sleep 0.05
        done
        cli ping >/dev/null 2>&1 && return 0
        grep -q 'Address already in use' "$redis_log" 2>/dev/null || break
        wait $srv 2>/dev/null || true
    done
    echo "real.sh: redis-server did not start or died; its log:" >&2
    tail -n 40 "$redis_log" >&2 || true
    exit 1
}

# redis-benchmark against the server; its figures go to redis-bench.txt and,
# as comments, to stdout.
redis_bench() {
    redis-benchmark -h 127.0.0.1 -p "$port" -q "$@" >"$work/redis-bench.txt" 2>&1
    tr '\r' '\n' <"$work/redis-bench.txt" | grep -E 'requests per second' | sed 's/^/# /' || true
}

# rps: the requests per second of the test named $1 in redis-bench.txt.
# One redis-benchmark list case (TEST, its report LABEL, value SIZE, N
# requests) against a fresh server; the checksum covers the list's length,
# its first 100 values and the dataset's digest.
redis_list_case() {
    redis_start
    redis_bench -n "$4" -d "$3" -t "$1"
    redis_rps "$2"
    local sum
    sum="$(cli llen mylist) $(cli lrange mylist 0 99 | md5sum) $(cli debug digest)"
    redis_stop
    echo "checksum: $(printf '%s\n' "$sum" | md5sum | cut -c1-16)"
}

redis_rps() {
    tr '\r' '\n' <"$work/redis-bench.txt" |
        awk -v t="$1" 'index($0, t) == 1 && /requests per second/ { sub(/.*: /, ""); print "rps: " $1 }'
}

# The server's CPU time and peak RSS (read from /proc while it runs), then
# its shutdown.
redis_stop() {
    local tck
    tck=$(getconf CLK_TCK)
    awk -v t="$tck" '{ printf "server_cpu_s: %.2f\n", ($14 + $15) / t }' "/proc/$srv/stat"
    awk '/^VmHWM:/ { print "server_rss_kb: " $2 }' "/proc/$srv/status"
    cli shutdown nosave >/dev/null 2>&1 || true
    wait $srv || true
    srv=
    trap - EXIT
}

case $name in
sqlite)
    rows=$(scaled 300000)
    sql=$work/sqlite-$rows.sql
    cat >"$sql" <<SQL
PRAGMA cache_size = -400000;
CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < $rows)
INSERT INTO t SELECT x, (x * 7919) % 10007,
  printf('%x-%s', (x * 2654435761) % 4294967296,
         substr('the quick brown fox jumps over the lazy dog and keeps running far away', 1 + x % 37, 10 + (x * 13) % 60)),
  x * 0.5 FROM n;
CREATE INDEX ta ON t(a);
CREATE INDEX tb ON t(b);
SELECT count(*), sum(a), sum(length(b)) FROM t;
SELECT a, count(*), max(b) FROM t GROUP BY a ORDER BY count(*) DESC, a LIMIT 5;
UPDATE t SET b = b || '-updated' WHERE a % 3 = 0;
DELETE FROM t WHERE a % 7 = 0;
SELECT count(*), sum(length(b)) FROM t;
SELECT b FROM t ORDER BY b DESC LIMIT 3;
CREATE TABLE u AS SELECT a, group_concat(b, ',') AS g FROM t GROUP BY a;
SELECT count(*), sum(length(g)) FROM u;
SELECT substr(g, 1, 40) FROM u ORDER BY length(g) DESC, a LIMIT 3;
SQL
    out=$(LD_PRELOAD=$pre sqlite3 :memory: <"$sql")
    printf '%s\n' "$out" | tail -n 3
    echo "checksum: $(printf '%s\n' "$out" | md5sum | cut -c1-16)"
    ;;
python)
    py=$(command -v /usr/bin/python3 || command -v python3)
    n=$(scaled 100000)
    cat >"$work/churn.py" <<'PY'
import sys

class Node:
    def __init__(self, key, payload):
        self.key = key
        self.payload = payload
        self.children = []

def run(n):
    total = 0
    for rnd in range(6):
        table = {}
        for i in range(n):
            table["k%d-%d" % (rnd, i)] = [i, str(i) * (1 + i % 5), (i, rnd)]
        total += sum(len(v[1]) for v in table.values())
        nodes = [Node(i, "p" * (i % 40)) for i in range(n // 2)]
        for i, node in enumerate(nodes[1:], 1):
            nodes[(i * 7) % i].children.append(node)
        total += sum(len(x.children) + len(x.payload) for x in nodes)
        words = " ".join(str(i * 31 % 1000) for i in range(n)).split()
        counts = {}
        for w in words:
            counts[w] = counts.get(w, 0) + 1
        total += len(counts) + max(counts.values())
        del table, nodes, words, counts
        total %= 1 << 61
    return total

print(run(int(sys.argv[1])))
PY
    out=$(LD_PRELOAD=$pre PYTHONMALLOC=malloc PYTHONHASHSEED=0 "$py" "$work/churn.py" "$n")
    echo "$out"
    echo "checksum: $(printf '%s\n' "$out" | md5sum | cut -c1-16)"
    ;;
gcc)
    nf=$(scaled 300)
    src=$work/big-$nf.c
    awk -v n="$nf" 'BEGIN {
        print "#include <stddef.h>";
        print "struct rec { int a; long b; const char *s; double d; };";
        for (i = 0; i < n; i++) {
            printf "static struct rec tab%d[] = {", i;
            for (j = 0; j < 8; j++) printf "{%d, %dL, \"s%d_%d\", %d.5},", i + j, i * j, i, j, j;
            print "};";
            printf "long f%d(long x, int k) {\n  long acc = %d;\n", i, i;
            print "  for (int i = 0; i < k; i++) {";
            print "    switch ((x + i) & 7) {";
            for (j = 0; j < 8; j++) printf "    case %d: acc += tab%d[%d].b * x + (long)tab%d[%d].d; x ^= acc >> %d; break;\n", j, i, j, i, j, j + 1;
            print "    }";
            print "    if (acc > 1000000) acc = acc % 9973 + i;";
            print "  }";
            if (i > 0) printf "  return acc + f%d(x & 3, k > 2 ? k - 2 : 0);\n}\n", i - 1;
            else print "  return acc;\n}";
        }
    }' >"$src"
    LD_PRELOAD=$pre gcc -O2 -frandom-seed=1 -w -c "$src" -o "$work/big.o"
    echo "checksum: $(objdump -d "$work/big.o" | tail -n +4 | md5sum | cut -c1-16)"
    ;;
redis)
    n=$(scaled 100000)
    keys=$(scaled 200000)
    redis_start
    redis_bench -n "$n" -r 100000 -d 256 -c 16 -P 8 -t set,get,lpush,lpop,sadd,hset,zadd
    cli flushall >/dev/null
    cli debug populate "$keys" seg 200 >/dev/null
    digest=$(cli debug digest)
    redis_stop
    echo "checksum: ${digest:0:16}"
    ;;
redis-lpush)
    redis_list_case lpush LPUSH 1024 "$(scaled 100000)"
    ;;
redis-lrange)
    redis_list_case lrange_100 LRANGE_100 10240 "$(scaled 3000)"
    ;;
stress-malloc)
    ops=$(scaled 60000)
    # Every worker is preloaded; --verify checks each block's stamp and fails
    # the run on a mismatch.  The bogo-op count is the requested one when the
    # run completes.
    LD_PRELOAD=$pre stress-ng --malloc "$workers" --malloc-ops "$ops" --verify --metrics-brief \
        --temp-path "$work" >"$work/stress.txt" 2>&1 || { cat "$work/stress.txt" >&2; exit 1; }
    grep -q 'successful run completed' "$work/stress.txt" || { cat "$work/stress.txt" >&2; exit 1; }
    done_ops=$(awk '$4 == "malloc" { print $5 }' "$work/stress.txt")
    echo "# malloc bogo ops: $done_ops (asked $ops, $workers workers)"
    echo "checksum: $(printf 'malloc %s\n' "$done_ops" | md5sum | cut -c1-16)"
    ;;
*)
    echo "real.sh: unknown workload '$name'" >&2
    exit 2
    ;;
esac
