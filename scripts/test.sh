#!/usr/bin/env bash
# scripts/test.sh - build segshim and run every test (the one CI command).
#
#   1. installs what is missing (Debian: cmake, pkg-config, check, gcc, clang,
#      and the real programs the preload tests run) when run as root;
#   2. configures and builds in build/test with -Werror (SEGSHIM_WERROR=ON),
#      runs ctest (all labels: unit, stress, preload, realprog, install,
#      fuzz, bench smoke);
#   3. builds the pool and its unit tests under ThreadSanitizer and under
#      AddressSanitizer+UBSan in separate folders and runs them;
#   4. runs the libFuzzer targets briefly (clang).
# Exits non-zero on any failure, 2 for a bad argument.  See usage() below.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/test.sh [--fast] [--help]

Build segshim and run every test: installs missing Debian packages (as root),
builds in build/test with warnings as errors, runs the whole CTest suite, a
smoke run of the benchmarks, the pool's tests under ThreadSanitizer and under
AddressSanitizer+UBSan, and a short libFuzzer run.  About 6 minutes on 2 cores
once the packages are installed.

  --fast      stop after the main CTest suite (no benchmarks, sanitizers, fuzz)
  -h, --help  print this help and exit

Exit status: 0 when every test passed, 1 on a failure, 2 for a bad argument.
EOF
}

fast=0
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg'" >&2
       echo "Try 'scripts/test.sh --help' for more information." >&2
       exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

say() { printf '\n=== %s (%ds)\n' "$*" $(($(date +%s) - start)); }

# Configure quietly (the log stays in the build folder; shown on failure),
# then build.
configure_and_build() { # dir cmake-args...
  local dir=$1
  shift
  mkdir -p "$dir"
  if ! cmake -S . -B "$dir" -DSEGSHIM_WERROR=ON "$@" >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log"
    exit 1
  fi
  cmake --build "$dir" -j"$jobs"
}

# ---- 1. dependencies -------------------------------------------------------
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in cmake make pkg-config check gcc g++ clang libclang-rt-14-dev python3 sqlite3 git perl \
           redis-server redis-tools libjemalloc2 valgrind gnuplot-nox; do
  have_pkg "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || true
    # One at a time, so that a package this Debian lacks does not stop the rest.
    for pkg in "${need[@]}"; do
      apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 || echo "note: could not install $pkg"
    done
  else
    echo "note: missing packages (${need[*]}); run as root to install them"
  fi
fi
for tool in cmake pkg-config cc; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required"; exit 1; }
done

# ---- 2. the main build and every test -------------------------------------
say "configure and build in build/test (RelWithDebInfo, -Werror, every test and benchmark program)"
configure_and_build build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEGSHIM_BUILD_TESTS=ON
say "ctest in build/test: every label (unit, stress, preload, realprog, install, bench smoke)"
(cd build/test && ctest --output-on-failure -j"$jobs" --timeout 600)

[ $fast = 1 ] && { say "done (fast)"; exit 0; }

# ---- 2b. the benchmarks, as a smoke test ------------------------------------------
if [ -x scripts/bench.sh ]; then
  say "benchmark smoke test (scripts/bench.sh --quick)"
  bash scripts/bench.sh --quick --no-install
fi

# ---- 3. sanitizers on the pool's own tests -----------------------------------
for san in thread address,undefined; do
  dir=build/san-${san//,/-}
  say "configure and build under sanitizer $san in $dir (Debug)"
  configure_and_build "$dir" -DCMAKE_BUILD_TYPE=Debug -DSEGSHIM_SANITIZE="$san" -DSEGSHIM_BUILD_BENCH=OFF
  say "ctest under sanitizer $san: labels unit and stress-short"
  (cd "$dir" && SEGPOOL_TEST_SCALE=8 TSAN_OPTIONS="halt_on_error=1" \
     ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
     ctest --output-on-failure -j"$jobs" -L 'unit|stress-short' --timeout 900)
done

# ---- 4. fuzzing, briefly -----------------------------------------------------
if command -v clang >/dev/null && [ -f tests/fuzz/CMakeLists.txt ] && grep -q add_ tests/fuzz/CMakeLists.txt; then
  say "configure and build the fuzz targets in build/fuzz (clang)"
  CC=clang configure_and_build build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSEGSHIM_BUILD_FUZZ=ON -DSEGSHIM_BUILD_BENCH=OFF
  say "fuzz: each target for a short bounded run (label fuzz)"
  (cd build/fuzz && ctest --output-on-failure -L fuzz --timeout 300)
fi

say "all tests passed"
