#!/usr/bin/env bash
# bench.sh - run the benchmark workloads under glibc, jemalloc, mimalloc,
# tcmalloc and segshim, side by side, and write results/.
#
#   scripts/bench.sh [--quick] [--only NAME[,NAME...]] [--reps N]
#                    [--allocators LIST] [--out DIR] [--instructions]
#                    [--no-install] [--list]
#
#   --quick          tiny sizes, one repetition: a smoke test (under 2 minutes);
#                    writes to a scratch directory unless --out is given
#   --only NAMES     run only these workloads (comma separated; see --list)
#   --reps N         repetitions (default 3); allocators are interleaved within
#                    each repetition, in a rotated order
#   --allocators L   comma separated, from: glibc jemalloc mimalloc tcmalloc
#                    segshim segshim-nohuge (default: all that are installed;
#                    segshim-nohuge is segshim with SEGSHIM_HUGEPAGES=off)
#   --out DIR        where the results go (default results/, or a scratch
#                    directory with --quick)
#   --instructions   instead of the workloads, count instructions per
#                    malloc+free pair with callgrind (tests/bench/pairs.c) and
#                    write instructions.md and instructions.csv
#   --no-install     do not apt-get install missing packages
#   --no-warm        skip the memory warm-up (tests/bench/warm.c: touch 4 GiB on
#                    huge pages once before measuring, so that a freshly booted
#                    VM's one-time first-touch cost does not land on whichever
#                    allocator uses huge pages; see machine.txt for what ran)
#   --list           print the workloads and exit
#
# Every workload prints a checksum that depends only on its input: the script
# compares them across allocators and repetitions and fails loudly on a
# mismatch.  Wall time, CPU time (user+sys) and peak RSS are measured from
# outside by tests/bench/bench_runner (wait4).  The figures in bench.md are
# medians with min-max and ratios to jemalloc measured in the same run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0
only=""
reps=3
allocators=""
out=""
instructions=0
install=1
warm=1
list=0

die() { echo "bench.sh: $*" >&2; exit 1; }
note() { echo "bench.sh: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --only) only=${2:?--only needs a name}; shift ;;
    --only=*) only=${1#*=} ;;
    --reps) reps=${2:?--reps needs a number}; shift ;;
    --reps=*) reps=${1#*=} ;;
    --allocators) allocators=${2:?--allocators needs a list}; shift ;;
    --allocators=*) allocators=${1#*=} ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --out=*) out=${1#*=} ;;
    --instructions) instructions=1 ;;
    --no-install) install=0 ;;
    --no-warm) warm=0 ;;
    --list) list=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
    shift
done
case $reps in '' | *[!0-9]* | 0) die "--reps wants a positive number, not '$reps'" ;; esac
[ $quick = 1 ] && reps=1

# ---- the workloads ---------------------------------------------------------
# name|kind|arguments at full size|arguments with --quick
# kind: bin (a tests/bench executable), real (tests/bench/real.sh),
#       segpool (only under segshim: the segpool.h API).
# Default sizes run 1-15 s each on the 2-core reference machine.
workloads_table() {
    cat <<'EOF'
small-one|bin|bench_small one|bench_small one 20000
small-many|bin|bench_small many|bench_small many 5000
random|bin|bench_random|bench_random 200000 20
larson|bin|bench_larson|bench_larson 200000 4 2000
xmalloc|bin|bench_xmalloc|bench_xmalloc 200000
flink-malloc|bin|bench_flink malloc|bench_flink malloc 3000
flink-segpool|segpool|bench_flink_segpool segpool|bench_flink_segpool segpool 3000
cache-thrash|bin|bench_falseshare thrash|bench_falseshare thrash 1000
cache-scratch|bin|bench_falseshare scratch|bench_falseshare scratch 1000
tlb|bin|bench_tlb 1024|bench_tlb 32
phases|bin|bench_phases 1024 3000 @CSV@|bench_phases 32 300 @CSV@
sqlite|real|sqlite 1|sqlite 0.02
python|real|python 1|python 0.02
gcc|real|gcc 1|gcc 0.1
redis|real|redis 1|redis 0.02
EOF
}

if [ $list = 1 ]; then
    workloads_table | awk -F'|' '{ printf "%-14s %-8s %s\n", $1, $2, $3 }'
    exit 0
fi

selected=()
while IFS='|' read -r name kind full small; do
    if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
    selected+=("$name|$kind|$full|$small")
done < <(workloads_table)
if [ -n "$only" ]; then
    for n in ${only//,/ }; do
        workloads_table | cut -d'|' -f1 | grep -qx -- "$n" || die "unknown workload '$n' (see --list)"
    done
fi
[ $instructions = 1 ] || [ ${#selected[@]} -gt 0 ] || die "no workload selected"

# ---- what must be installed --------------------------------------------------
apt_updated=0
apt_install() { # packages...; returns non-zero when any could not be installed
    [ $install = 1 ] || return 1
    command -v apt-get >/dev/null || return 1
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || return 1
        sudo="sudo -n"
    fi
    if [ $apt_updated = 0 ]; then
        note "apt-get update"
        $sudo apt-get update -qq >/dev/null 2>&1 || true
        apt_updated=1
    fi
    note "installing $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

# The first of several candidate package names that apt knows (Debian renames
# library packages across releases: libtcmalloc-minimal4t64, libmimalloc3...).
apt_pick() {
    local p
    for p in "$@"; do
        if apt-cache show "$p" >/dev/null 2>&1; then echo "$p"; return 0; fi
    done
    return 1
}

# A shared library by soname pattern, from the linker cache or the usual dirs.
find_lib() { # name-glob...
    local g f
    for g in "$@"; do
        f=$(ldconfig -p 2>/dev/null | awk -v g="$g" '$1 ~ g { print $NF; exit }')
        if [ -n "$f" ] && [ -e "$f" ]; then echo "$f"; return 0; fi
        for f in /usr/lib/x86_64-linux-gnu/$g /usr/lib/aarch64-linux-gnu/$g /usr/lib64/$g /usr/lib/$g /usr/local/lib/$g; do
            if [ -e "$f" ]; then echo "$f"; return 0; fi
        done
    done
    return 1
}

need_cmd() { # command package
    command -v "$1" >/dev/null && return 0
    apt_install "$2" || true
    command -v "$1" >/dev/null
}

need_cmd cmake cmake || die "cmake is missing and could not be installed"
need_cmd cc gcc || die "a C compiler is missing and could not be installed"
need_cmd python3 python3 || die "python3 is missing (needed for the report)"
need_cmd pkg-config pkg-config || true
# the tree's CMake wants Check (the unit tests) even to build the workloads
pkg-config --exists check 2>/dev/null || apt_install check || note "NOTE: Check is missing: the tree may not configure"

libjemalloc=$(find_lib 'libjemalloc.so.2' 'libjemalloc.so') || {
    apt_install libjemalloc2 || true
    libjemalloc=$(find_lib 'libjemalloc.so.2' 'libjemalloc.so') || die "jemalloc is required: apt-get install libjemalloc2"
}
libmimalloc=$(find_lib 'libmimalloc.so.2' 'libmimalloc.so.3' 'libmimalloc.so') || {
    pkg=$(apt_pick libmimalloc2.0 libmimalloc3 libmimalloc2 2>/dev/null) && apt_install "$pkg" || true
    libmimalloc=$(find_lib 'libmimalloc.so.2' 'libmimalloc.so.3' 'libmimalloc.so') || libmimalloc=""
}
libtcmalloc=$(find_lib 'libtcmalloc_minimal.so.4' 'libtcmalloc_minimal.so') || {
    pkg=$(apt_pick libtcmalloc-minimal4t64 libtcmalloc-minimal4 libgoogle-perftools4 2>/dev/null) && apt_install "$pkg" || true
    libtcmalloc=$(find_lib 'libtcmalloc_minimal.so.4' 'libtcmalloc_minimal.so') || libtcmalloc=""
}
[ -n "$libmimalloc" ] || note "NOTE: mimalloc not available: its column is skipped"
[ -n "$libtcmalloc" ] || note "NOTE: tcmalloc not available: its column is skipped"

if [ $instructions = 1 ]; then
    need_cmd valgrind valgrind || die "valgrind is needed for --instructions and could not be installed"
else
    need_cmd gnuplot gnuplot-nox || note "NOTE: gnuplot not available: no plots"
    for w in "${selected[@]}"; do
        case ${w%%|*} in
        sqlite) need_cmd sqlite3 sqlite3 || note "NOTE: sqlite3 not available: sqlite skipped" ;;
        gcc) need_cmd objdump binutils || true ;;
        redis) { need_cmd redis-server redis-server && need_cmd redis-benchmark redis-tools; } ||
            note "NOTE: redis not available: redis skipped" ;;
        esac
    done
fi

# ---- build ---------------------------------------------------------------------
build=$root/build-bench
blog=$root/build-bench/bench-build.log
mkdir -p "$build"
jobs=$(nproc 2>/dev/null || echo 2)
note "building segshim and the workloads (Release) in ${build#$root/}"
if cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEGSHIM_BUILD_BENCH=ON >"$blog" 2>&1 &&
    cmake --build "$build" -j"$jobs" >>"$blog" 2>&1; then
    benchbin=$build/tests/bench
    libsegshim=$build/shim/libsegshim.so
else
    note "the whole tree did not build (see $blog); building the workloads alone"
    build=$root/build-bench-standalone
    cmake -S "$root/tests/bench" -B "$build" -DCMAKE_BUILD_TYPE=Release >>"$blog" 2>&1 &&
        cmake --build "$build" -j"$jobs" >>"$blog" 2>&1 || die "the workloads do not build (see $blog)"
    benchbin=$build
    libsegshim=""
fi

# ---- allocators ----------------------------------------------------------------
if [ -z "$allocators" ]; then
    allocators=glibc,jemalloc
    [ -n "$libmimalloc" ] && allocators+=,mimalloc
    [ -n "$libtcmalloc" ] && allocators+=,tcmalloc
    allocators+=,segshim,segshim-nohuge
fi
alloc_names=()
declare -A alloc_lib alloc_env
for a in ${allocators//,/ }; do
    case $a in
    glibc) alloc_lib[$a]="" ;;
    jemalloc) alloc_lib[$a]=$libjemalloc ;;
    mimalloc) [ -n "$libmimalloc" ] || { note "NOTE: skipping mimalloc (not installed)"; continue; }; alloc_lib[$a]=$libmimalloc ;;
    tcmalloc) [ -n "$libtcmalloc" ] || { note "NOTE: skipping tcmalloc (not installed)"; continue; }; alloc_lib[$a]=$libtcmalloc ;;
    segshim | segshim-nohuge)
        [ -n "$libsegshim" ] && [ -e "$libsegshim" ] ||
            die "libsegshim.so was not built (see $blog); use --allocators to leave segshim out"
        alloc_lib[$a]=$libsegshim
        [ $a = segshim-nohuge ] && alloc_env[$a]="SEGSHIM_HUGEPAGES=off"
        ;;
    *) die "unknown allocator '$a'" ;;
    esac
    alloc_names+=("$a")
done
[ ${#alloc_names[@]} -gt 0 ] || die "no allocator to run"
[[ " ${alloc_names[*]} " == *" jemalloc "* ]] || note "NOTE: jemalloc is not in the run: no ratios"

# ---- output ----------------------------------------------------------------------
if [ -z "$out" ]; then
    if [ $quick = 1 ]; then out=$(mktemp -d "${TMPDIR:-/tmp}/segshim-bench-quick.XXXXXX"); else out=$root/results; fi
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/segshim-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

machine_description() {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    local commit
    commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    # only what is measured: the allocator, the shim and the workloads
    if [ -n "$(git -C "$root" status --porcelain -- pool shim tests/bench CMakeLists.txt 2>/dev/null)" ]; then
        commit+=" (with uncommitted changes to the allocator or the workloads)"
    fi
    echo "commit: $commit"
    echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) ($(nproc) online CPUs)"
    echo "memory: $(free -h | awk '/^Mem:/ { print $2 " total, " $7 " available" }')"
    echo "kernel: $(uname -sr); THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo n/a)"
    echo "glibc: $(ldd --version 2>/dev/null | head -n1 | awk '{ print $NF }')"
    local p
    for p in libjemalloc2 libmimalloc2.0 libmimalloc3 libtcmalloc-minimal4 libtcmalloc-minimal4t64; do
        dpkg-query -W -f='${Package} ${Version}\n' "$p" 2>/dev/null | sed 's/^/package: /' || true
    done
    echo "allocators: ${alloc_names[*]}"
    for a in "${alloc_names[@]}"; do echo "lib $a: ${alloc_lib[$a]:-(none: glibc malloc)} ${alloc_env[$a]:-}"; done
}

# ---- --instructions ----------------------------------------------------------------
if [ $instructions = 1 ]; then
    sizes="16 64 256 1024 4096 16384 32768"
    npairs=1000000
    [ $quick = 1 ] && npairs=100000
    ins_allocs=()
    for a in "${alloc_names[@]}"; do [ $a = segshim-nohuge ] || ins_allocs+=("$a"); done
    csv=$out/instructions.csv
    echo "allocator,mode,size,pairs,ir,ir_per_pair,loop_per_pair,net_per_pair" >"$csv.tmp"
    count_ir() { # lib mode size -> collected Ir of the pairs_loop_* functions
        local lib=$1 mode=$2 size=$3 log=$scratch/cg.log
        env ${lib:+LD_PRELOAD=$lib} valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            --soname-synonyms=somalloc=NONE --toggle-collect='pairs_loop_*' \
            "$benchbin/bench_pairs" "$mode" "$size" "$npairs" >/dev/null 2>"$log" ||
            { cat "$log" >&2; die "callgrind failed: $mode $size under ${lib:-glibc}"; }
        awk '/Collected :/ { print $NF }' "$log" | tail -n1
    }
    declare -A loopcost
    for mode in one hundred; do
        ir=$(count_ir "" none-$mode 64)
        loopcost[$mode]=$(awk -v i="$ir" -v n=$npairs 'BEGIN { printf "%.2f", i / n }')
        note "loop alone ($mode): ${loopcost[$mode]} instructions per pair"
    done
    total=$((${#ins_allocs[@]} * 2 * 7)) k=0
    for a in "${ins_allocs[@]}"; do
        for mode in one hundred; do
            for size in $sizes; do
                k=$((k + 1))
                ir=$(count_ir "${alloc_lib[$a]}" $mode $size)
                line=$(awk -v a=$a -v m=$mode -v s=$size -v n=$npairs -v i="$ir" -v l="${loopcost[$mode]}" \
                    'BEGIN { printf "%s,%s,%s,%d,%s,%.2f,%.2f,%.2f", a, m, s, n, i, i / n, l, i / n - l }')
                echo "$line" >>"$csv.tmp"
                printf '[%d/%d] %-9s %-8s %6s B  %s instructions per pair\n' $k $total $a $mode $size \
                    "$(echo "$line" | cut -d, -f6)" >&2
            done
        done
    done
    mv "$csv.tmp" "$csv"
    machine_description >"$out/instructions-machine.txt"
    python3 "$root/tests/bench/report.py" instructions "$csv" "$out/instructions-machine.txt" >"$out/instructions.md"
    rm -f "$out/instructions-machine.txt"
    note "wrote $out/instructions.md and $csv"
    exit 0
fi

# ---- the runs ------------------------------------------------------------------------
csv=$out/bench.csv
logs=$out/logs
rm -rf "$logs" "$out/phases"
mkdir -p "$logs" "$out/phases"
if [ $warm = 1 ] && [ $quick = 0 ] && [ -x "$benchbin/bench_warm" ]; then
    note "warming 4 GiB of memory on huge pages (once; --no-warm to skip)"
    "$benchbin/bench_warm" 4 >/dev/null || note "warm-up failed; going on"
fi
machine_description >"$out/machine.txt"
[ $warm = 1 ] && [ $quick = 0 ] && echo "memory warm-up: 4 GiB touched on huge pages before the runs (scripts/bench.sh --no-warm skips it)" >>"$out/machine.txt"
echo "workload,allocator,rep,wall_s,user_s,sys_s,cpu_s,maxrss_kb,status,checksum,rss_idle_kb,walk_ns" >"$csv"

runs=()  # "rep|workload|kind|args|allocator"
for ((r = 1; r <= reps; r++)); do
    for w in "${selected[@]}"; do
        IFS='|' read -r name kind full small <<<"$w"
        case $name in
        sqlite) command -v sqlite3 >/dev/null || continue ;;
        redis) command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || continue ;;
        esac
        args=$full
        [ $quick = 1 ] && args=$small
        # rotate the allocator order from one repetition to the next
        n=${#alloc_names[@]}
        for ((i = 0; i < n; i++)); do
            a=${alloc_names[$(((i + r - 1) % n))]}
            if [ $kind = segpool ]; then
                [[ $a == segshim* ]] || continue
                [ -x "$benchbin/bench_flink_segpool" ] || continue
            fi
            runs+=("$r|$name|$kind|$args|$a")
        done
    done
done

total=${#runs[@]}
timeout=300
[ $quick = 1 ] && timeout=60
note "$total runs: ${#selected[@]} workloads x ${#alloc_names[@]} allocators x $reps repetitions -> $out"
start=$(date +%s)
k=0
failures=0
for run in "${runs[@]}"; do
    IFS='|' read -r r name kind args a <<<"$run"
    k=$((k + 1))
    lib=${alloc_lib[$a]}
    runner=("$benchbin/bench_runner" -o "$scratch/rusage" -t $timeout)
    [ -n "${alloc_env[$a]:-}" ] && runner+=(-e "${alloc_env[$a]}")
    args=${args//@CSV@/$out/phases/$a-rep$r.csv}
    if [ $kind = real ]; then
        runner+=(-e "BENCH_PRELOAD=$lib" -e "BENCH_LIBCMALLOC=$benchbin/libbench_libcmalloc.so")
        read -r -a argv <<<"$args"
        cmd=("$root/tests/bench/real.sh" "${argv[0]}" "$scratch/work" "${argv[@]:1}")
    else
        [ -n "$lib" ] && runner+=(-p "$lib")
        read -r -a argv <<<"$args"
        cmd=("$benchbin/${argv[0]}" "${argv[@]:1}")
    fi
    log=$logs/$name-$a-rep$r
    rm -f "$scratch/rusage"
    "${runner[@]}" -- "${cmd[@]}" >"$log.out" 2>"$log.err" || true
    m=$(cat "$scratch/rusage" 2>/dev/null || echo "wall=0 user=0 sys=0 maxrss_kb=0 status=127")
    wall=$(sed -n 's/.*wall=\([^ ]*\).*/\1/p' <<<"$m")
    user=$(sed -n 's/.*user=\([^ ]*\).*/\1/p' <<<"$m")
    sys=$(sed -n 's/.*sys=\([^ ]*\).*/\1/p' <<<"$m")
    rss=$(sed -n 's/.*maxrss_kb=\([^ ]*\).*/\1/p' <<<"$m")
    status=$(sed -n 's/.*status=\([^ ]*\).*/\1/p' <<<"$m")
    sum=$(awk '/^checksum:/ { print $2 }' "$log.out" | tail -n1)
    idle=$(awk '/^rss_idle_kb:/ { print $2 }' "$log.out" | tail -n1)
    walk=$(awk '/^walk_ns_per_step:/ { print $2 }' "$log.out" | tail -n1)
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.6f", u + s }')
    echo "$name,$a,$r,$wall,$user,$sys,$cpu,$rss,$status,${sum:-none},${idle:-},${walk:-}" >>"$csv"
    flag=""
    if [ "$status" != 0 ] || [ -z "$sum" ]; then
        flag="  FAILED (status $status, see ${log#$out/}.err)"
        failures=$((failures + 1))
    else
        rm -f "$log.out" "$log.err"
    fi
    now=$(date +%s)
    eta=$(((now - start) * (total - k) / k))
    printf '[%3d/%d] rep %d %-14s %-15s %7.2fs cpu %7.2fs rss %7d MiB  eta %dm%02ds%s\n' \
        $k $total $r $name $a "$wall" "$cpu" $((rss / 1024)) $((eta / 60)) $((eta % 60)) "$flag" >&2
done
rmdir "$logs" 2>/dev/null || true

# ---- the report ----------------------------------------------------------------------
rc=0
python3 "$root/tests/bench/report.py" bench "$csv" "$out/machine.txt" "$out" >"$out/bench.md" || rc=$?
if command -v gnuplot >/dev/null; then
    (cd "$out" && gnuplot -e "outdir='$out'" "$root/scripts/plot.gnuplot") 2>"$scratch/gnuplot.err" ||
        { note "gnuplot failed:"; cat "$scratch/gnuplot.err" >&2; }
fi
elapsed=$(($(date +%s) - start))
note "done in $((elapsed / 60))m$((elapsed % 60))s: $out/bench.md, bench.csv and plots"
if [ $failures -gt 0 ]; then
    note "FAILED: $failures runs did not finish cleanly (logs in $out/logs)"
    rc=1
fi
if [ $rc != 0 ]; then
    grep -E 'MISMATCH' "$out/bench.md" >&2 || true
    note "CHECKSUM MISMATCH OR FAILURE: see $out/bench.md"
fi
exit $rc
