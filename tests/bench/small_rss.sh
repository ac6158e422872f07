#!/usr/bin/env bash
# small_rss.sh - a small program's peak RSS under the shim is within 1.2x of
# glibc's (issue 11): the tiny workload (a 3 MiB heap in one thread, 8 MiB in
# two), measured by bench_runner (wait4's maxrss), medians of 5 interleaved
# runs each, checksums equal.  What it guards: huge pages and slab formatting
# ahead of use, which cost such programs 1.3-1.5x glibc's footprint.
#
#   small_rss.sh LIBSEGSHIM BENCH_RUNNER BENCH_TINY
set -euo pipefail
lib=$1 runner=$2 tiny=$3
reps=5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median_rss() { grep -o '"maxrss_kb": [0-9]*' "$1" | cut -d' ' -f2 | sort -n | sed -n "$(((reps + 1) / 2))p"; }

status=0
for args in "3072 200000 1" "8192 200000 2"; do
    : >"$tmp/glibc"; : >"$tmp/shim"
    for _ in $(seq $reps); do
        # shellcheck disable=SC2086
        "$runner" -o "$tmp/one" -- "$tiny" $args >"$tmp/out.glibc"
        cat "$tmp/one" >>"$tmp/glibc"
        # shellcheck disable=SC2086
        "$runner" -p "$lib" -o "$tmp/one" -- "$tiny" $args >"$tmp/out.shim"
        cat "$tmp/one" >>"$tmp/shim"
        cmp -s "$tmp/out.glibc" "$tmp/out.shim" || { echo "FAIL tiny $args: output differs"; exit 1; }
    done
    g=$(median_rss "$tmp/glibc") s=$(median_rss "$tmp/shim")
    verdict=ok
    if [ $((s * 10)) -gt $((g * 12)) ]; then verdict=FAIL; status=1; fi
    echo "$verdict tiny $args: peak RSS $s KiB under the shim, $g KiB under glibc (limit 1.2x)"
done
exit $status
