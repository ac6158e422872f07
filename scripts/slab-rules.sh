#!/usr/bin/env bash
# slab-rules.sh - re-measures the size-class slab rules (pool/src/sizeclass.c)
# and the lazy formatting of slabs (heap_segment_extend): builds the shim once
# per variant and prints, as Markdown, peak RSS, wall and CPU time (medians of
# interleaved repetitions) and instructions (callgrind, short runs).
#
#   rule       the rule in force: slabs of at least 32 blocks with at most
#              12.5% unused, at most 32 segments; formatted a page at a time
#   doubling   the former formatting: a page, then as much again as is formatted
#   waste25    at most 25% unused
#   min16      at least 16 blocks a slab
#   max8       at most 8 segments a slab
#   max16      at most 16 segments a slab
#   min64      at least 64 blocks a slab, at most 64 segments (a region)
#
#   scripts/slab-rules.sh [--reps N] [--out FILE] [--variants "rule min16 ..."]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=3
out=/dev/stdout
variants="rule doubling waste25 min16 max8 max16"
while [ $# -gt 0 ]; do
    case $1 in
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    --variants) variants=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "slab-rules.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

declare -A flags=([rule]="" [doubling]="-DHEAP_FORMAT_DOUBLING=1" [waste25]="-DSIZECLASS_WASTE_DIV=4"
    [min16]="-DSIZECLASS_MIN_BLOCKS=16" [max8]="-DSEGPOOL_MAX_SLAB=8" [max16]="-DSEGPOOL_MAX_SLAB=16"
    [min64]="-DSIZECLASS_MIN_BLOCKS=64 -DSEGPOOL_MAX_SLAB=64")
jobs=$(nproc); [ "$jobs" -gt 2 ] && jobs=2
for v in $variants; do
    [ -n "${flags[$v]+x}" ] || { echo "slab-rules.sh: unknown variant $v" >&2; exit 2; }
    cmake -S "$root" -B "$root/build/rules-$v" -DCMAKE_BUILD_TYPE=Release -DSEGSHIM_BUILD_TESTS=ON \
        -DCMAKE_C_FLAGS="${flags[$v]}" >/dev/null
    cmake --build "$root/build/rules-$v" -j"$jobs" --target segshim >/dev/null
done
cmake -S "$root" -B "$root/build/rules-bin" -DCMAKE_BUILD_TYPE=Release -DSEGSHIM_BUILD_TESTS=ON >/dev/null
cmake --build "$root/build/rules-bin" -j"$jobs" --target bench_runner bench_sizemix bench_tiny bench_pairs >/dev/null
bin=$root/build/rules-bin/tests/bench
lib() { echo "$root/build/rules-$1/shim/libsegshim.so"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name|timed command|short command for callgrind
workloads=(
    "sizemix-1t|bench_sizemix 4000000 64 1|bench_sizemix 200000 16 1"
    "sizemix-2t|bench_sizemix 4000000 64 2|bench_sizemix 200000 16 2"
    "tiny-1t|bench_tiny 3072 200000 1|bench_tiny 3072 200000 1"
    "tiny-2t|bench_tiny 8192 200000 2|bench_tiny 8192 200000 2"
)
for r in $(seq 1 "$reps"); do
    echo "slab-rules.sh: repetition $r/$reps" >&2
    for w in "${workloads[@]}"; do
        IFS='|' read -r name cmd _ <<<"$w"
        for v in glibc $variants; do
            pre=(); [ "$v" = glibc ] || pre=(-p "$(lib "$v")")
            # shellcheck disable=SC2086
            "$bin/bench_runner" "${pre[@]}" -o "$tmp/one" -- $bin/$cmd >"$tmp/stdout" 2>/dev/null || true
            grep -q '"status": 0' "$tmp/one" || { echo "slab-rules.sh: $name failed under $v" >&2; exit 1; }
            cat "$tmp/one" >>"$tmp/$name-$v"
            grep checksum "$tmp/stdout" >>"$tmp/sum-$name"
        done
    done
done
for w in "${workloads[@]}"; do
    IFS='|' read -r name _ short <<<"$w"
    [ "$(sort -u "$tmp/sum-$name" | wc -l)" = 1 ] || { echo "slab-rules.sh: checksums differ on $name" >&2; exit 1; }
    for v in $variants; do
        # shellcheck disable=SC2086
        LD_PRELOAD=$(lib "$v") valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            --soname-synonyms=somalloc=NONE $bin/$short 2>&1 >/dev/null |
            grep -o 'Collected : [0-9]*' | tail -1 | cut -d' ' -f3 >"$tmp/ir-$name-$v"
    done
done

# Instructions per malloc+free pair with 100 blocks live (bench.py --instructions's
# "hundred" mode) at the sizes whose slabs the rules change.
pair_sizes="2048 4096 8192 16384 32768"
npairs=100000
for v in $variants; do
    for size in $pair_sizes; do
        LD_PRELOAD=$(lib "$v") valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            --soname-synonyms=somalloc=NONE --toggle-collect='pairs_loop_*' "$bin/bench_pairs" hundred "$size" $npairs \
            2>&1 >/dev/null | grep -o 'Collected : [0-9]*' | tail -1 | cut -d' ' -f3 >"$tmp/pair-$v-$size"
    done
done

# (bench_runner writes one JSON line a run: "wall_s": 1.23, "maxrss_kb": 4567, ...)
median() { grep -o "\"$1\": [0-9.]*" "$2" | cut -d' ' -f2 | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cpu() { paste <(grep -o '"user_s": [0-9.]*' "$1" | cut -d' ' -f2) <(grep -o '"sys_s": [0-9.]*' "$1" | cut -d' ' -f2) |
    awk '{print $1 + $2}' | sort -g | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
{
    echo "Medians of $reps interleaved repetitions at commit $(git -C "$root" rev-parse --short HEAD)" \
        "($(date -u '+%Y-%m-%d %H:%M UTC')); instructions: callgrind, whole short run, millions."
    echo
    echo "| workload | variant | peak RSS KiB | vs glibc | wall s | CPU s | instructions (M) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
    for w in "${workloads[@]}"; do
        IFS='|' read -r name _ short <<<"$w"
        g=$(median maxrss_kb "$tmp/$name-glibc")
        printf '| %s | glibc | %s | 1.00 | %s | %s | |\n' "$name" "$g" "$(median wall_s "$tmp/$name-glibc")" "$(cpu "$tmp/$name-glibc")"
        for v in $variants; do
            k=$(median maxrss_kb "$tmp/$name-$v")
            printf '| %s | %s | %s | %.2f | %s | %s | %.1f |\n' "$name" "$v" "$k" "$(awk -v a="$k" -v b="$g" 'BEGIN{print a/b}')" \
                "$(median wall_s "$tmp/$name-$v")" "$(cpu "$tmp/$name-$v")" "$(awk -v i="$(cat "$tmp/ir-$name-$v")" 'BEGIN{print i/1e6}')"
        done
    done
    echo
    echo "Instructions per malloc+free pair, 100 blocks live (\`bench_pairs hundred SIZE $npairs\`, loop included):"
    echo
    printf '| variant |'; for size in $pair_sizes; do printf ' %s B |' "$size"; done; echo
    printf '| --- |'; for _ in $pair_sizes; do printf ' ---: |'; done; echo
    for v in $variants; do
        printf '| %s |' "$v"
        for size in $pair_sizes; do printf ' %.1f |' "$(awk -v i="$(cat "$tmp/pair-$v-$size")" -v n=$npairs 'BEGIN{print i/n}')"; done
        echo
    done
    echo
    echo "Callgrind runs: $(for w in "${workloads[@]}"; do IFS='|' read -r n _ s <<<"$w"; printf '%s: `%s`; ' "$n" "$s"; done)"
} >"$out"
echo "slab-rules.sh: done" >&2
