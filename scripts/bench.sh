#!/usr/bin/env bash
# bench.sh - install what the benchmarks need, build them, and run
# scripts/bench.py, which runs them and writes the results.
#
#   scripts/bench.sh [--no-install] [OPTIONS]     (--help lists the options)
#
#   1. checks the arguments (bench.py --validate), so that a typo fails
#      before anything is installed or built;
#   2. unless --no-install: installs the Debian packages that are missing
#      (apt-get, as root or through sudo -n): the build tools, Check, the
#      peers (libjemalloc2, libmimalloc, libtcmalloc-minimal4), gnuplot-nox,
#      and valgrind for --instructions, strace for --scaling, the real
#      programs (sqlite3, redis, stress-ng) otherwise;
#   3. builds segshim and the workloads (Release) in build/bench;
#   4. runs python3 scripts/bench.py with the same arguments.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=$root/scripts/bench.py
build=$root/build/bench   # bench.py's default --build

say() { echo "bench.sh: $*" >&2; }
die() { say "$*"; exit 1; }

install=1 mode=default
for a in "$@"; do
    case $a in
    -h | --help) exec python3 "$py" --help ;;
    --no-install) install=0 ;;
    --instructions) mode=instructions ;;
    --scaling) mode=scaling ;;
    --list) exec python3 "$py" "$@" ;;
    esac
done

# ---- packages ------------------------------------------------------------------
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_ready=0
apt() { # apt-get ARGS..., as root or through sudo -n
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get "$@"
    else
        sudo -n env DEBIAN_FRONTEND=noninteractive apt-get "$@"
    fi
}

# need PKG[|ALT...]: install the first candidate apt knows, unless one is installed.
need() {
    local p alts
    IFS='|' read -r -a alts <<<"$1"
    for p in "${alts[@]}"; do have_pkg "$p" && return 0; done
    [ $install = 1 ] || { say "NOTE: ${alts[0]} is not installed (--no-install)"; return 0; }
    command -v apt-get >/dev/null || { say "NOTE: no apt-get: ${alts[0]} not installed"; return 0; }
    if [ $apt_ready = 0 ]; then
        say "updating the package lists (apt-get update)"
        apt update -qq >/dev/null 2>&1 || say "NOTE: apt-get update failed"
        apt_ready=1
    fi
    for p in "${alts[@]}"; do
        apt-cache show "$p" >/dev/null 2>&1 || continue
        say "installing $p"
        apt install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 && return 0
        say "NOTE: could not install $p"
        return 0
    done
    say "NOTE: this Debian has none of: ${alts[*]}"
}

command -v python3 >/dev/null || need python3
command -v python3 >/dev/null || die "python3 is required"
python3 "$py" --validate "$@" || exit 2

for p in cmake make gcc pkg-config check gnuplot-nox libjemalloc2 'libmimalloc2.0|libmimalloc3' \
    'libtcmalloc-minimal4|libtcmalloc-minimal4t64|libgoogle-perftools4'; do
    need "$p"
done
case $mode in
instructions) need valgrind ;;
scaling) need strace ;;
default) for p in sqlite3 redis-server redis-tools stress-ng; do need "$p"; done ;;
esac

# ---- build -----------------------------------------------------------------------
log=$build/build.log
rel_log=build/bench/build.log
mkdir -p "$build"
say "building segshim and the workloads (Release) in build/bench; log in $rel_log"
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSEGSHIM_BUILD_TESTS=ON \
    -DSEGSHIM_BUILD_BENCH=ON && cmake --build "$build" -j"$(nproc)" --target bench_all; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "the build failed (see $rel_log)"
fi

export SEGSHIM_BENCH_WRAPPER=scripts/bench.sh
exec python3 "$py" "$@"
