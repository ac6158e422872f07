#!/usr/bin/env bash
# install_test.sh - install segshim into a temporary prefix, move the tree
# (the paths must not depend on where it was installed), then build a small
# program against it with pkg-config and with find_package(segpool), run it
# with and without the shim, and run the installed wrapper.
#
#   install_test.sh BUILD_DIR WORKDIR VERSION CC CMAKE_GENERATOR SOURCE_DIR \
#                   LIBDIR BINDIR INCLUDEDIR LIBEXECDIR MANDIR
# (the directories as CMake's GNUInstallDirs, relative to the prefix)
set -u
BUILD=$1 WORK=$2 VERSION=$3 CC=$4 GENERATOR=$5 SRC=$6
LIBDIR=$7 BINDIR=$8 INCLUDEDIR=$9 LIBEXECDIR=${10} MANDIR=${11}
CONSUMER=$SRC/tests/install/consumer

fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
step() { echo "--- $*"; }
# The test itself runs under the build's environment, not a user's.
unset LD_PRELOAD LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH
for v in $(compgen -e | grep '^SEGSHIM_'); do unset "$v"; done

rm -rf "$WORK"
mkdir -p "$WORK"
first=$WORK/first-prefix
P=$WORK/prefix

step "cmake --install into $first, then moved to $P"
if ! cmake --install "$BUILD" --prefix "$first" >"$WORK/install.log" 2>&1; then
    echo "FAIL: cmake --install: $(tail -5 "$WORK/install.log")"
    exit 1
fi
mv "$first" "$P"
for f in "$INCLUDEDIR/segpool.h" "$INCLUDEDIR/segpool_version.h" "$INCLUDEDIR/segshim.h" "$LIBDIR/libsegpool.a" \
    "$LIBDIR/libsegpool.so" "$LIBDIR/libsegshim.so" "$LIBDIR/pkgconfig/segpool.pc" \
    "$LIBDIR/cmake/segpool/segpoolConfig.cmake" "$BINDIR/segshim" "$LIBEXECDIR/segshim/segshim-config" \
    "$MANDIR/man1/segshim.1" "$MANDIR/man3/segpool.3"; do
    [ -e "$P/$f" ] || bad "not installed: $f"
done
grep -rq -- "$first" "$P" && bad "an installed file names the first prefix: $(grep -rl -- "$first" "$P" | head -3)"

# ---- pkg-config ----------------------------------------------------------------
if command -v pkg-config >/dev/null; then
    step "pkg-config: build and run"
    export PKG_CONFIG_PATH=$P/$LIBDIR/pkgconfig
    got=$(pkg-config --modversion segpool)
    [ "$got" = "$VERSION" ] && ok "pkg-config --modversion: $got" || bad "pkg-config --modversion gave '$got'"
    libdir=$(pkg-config --variable=libdir segpool)
    [ "$(readlink -f "$libdir")" = "$(readlink -f "$P/$LIBDIR")" ] && ok "libdir is the moved prefix's" ||
        bad "libdir '$libdir' is not $P/$LIBDIR"
    # shellcheck disable=SC2046 # word splitting of the flags is intended
    if "$CC" -Wall -Wextra -o "$WORK/consumer_pc" "$CONSUMER/consumer.c" $(pkg-config --cflags --libs segpool) \
        -Wl,-rpath,"$libdir" 2>"$WORK/cc.log"; then
        ok "compiled with pkg-config --cflags --libs segpool"
        if "$WORK/consumer_pc" "$VERSION" noshim >"$WORK/pc.out" 2>&1; then ok "consumer (pkg-config) runs"
        else bad "consumer (pkg-config) failed: $(cat "$WORK/pc.out")"; fi
        # The program uses the installed libsegpool.so (through its rpath),
        # not one from the build tree.
        ldd "$WORK/consumer_pc" | grep -q "$P/.*libsegpool.so" && ok "loads the installed libsegpool.so" ||
            bad "libsegpool.so not from the prefix: $(ldd "$WORK/consumer_pc" | grep segpool)"
        shim=$(pkg-config --variable=shimlib segpool)
        if LD_PRELOAD=$shim "$WORK/consumer_pc" "$VERSION" shim >"$WORK/pc-shim.out" 2>&1 &&
            grep -q '"pool_requests"' "$WORK/pc-shim.out"; then
            ok "under LD_PRELOAD=\$(pkg-config --variable=shimlib segpool): segshim_stats_print writes JSON"
        else
            bad "consumer under the shim: $(tail -5 "$WORK/pc-shim.out")"
        fi
    else
        bad "compiling with pkg-config: $(cat "$WORK/cc.log")"
    fi
    unset PKG_CONFIG_PATH
else
    bad "pkg-config is not installed"
fi

# ---- find_package ---------------------------------------------------------------
step "find_package(segpool): configure and build a consumer project"
if cmake -S "$CONSUMER" -B "$WORK/consumer-build" -G "$GENERATOR" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_PREFIX_PATH="$P" -DSEGPOOL_EXPECT_VERSION="$VERSION" >"$WORK/cmake.log" 2>&1 &&
    cmake --build "$WORK/consumer-build" >>"$WORK/cmake.log" 2>&1; then
    ok "find_package(segpool $VERSION) and both targets build"
    for kind in shared static; do
        exe=$WORK/consumer-build/consumer_$kind
        if "$exe" "$VERSION" noshim >"$WORK/$kind.out" 2>&1; then ok "consumer_$kind runs"
        else bad "consumer_$kind failed: $(cat "$WORK/$kind.out")"; fi
    done
    ldd "$WORK/consumer-build/consumer_shared" | grep -q "$P/.*libsegpool.so" &&
        ok "segpool::segpool links the installed libsegpool.so" || bad "consumer_shared does not load the prefix's libsegpool.so"
    ldd "$WORK/consumer-build/consumer_static" | grep -q libsegpool &&
        bad "segpool::segpool_static needs libsegpool.so" || ok "segpool::segpool_static needs no libsegpool.so"
    mapfile -t shim_info <"$WORK/consumer-build/shim.txt"
    want=$(readlink -f "$P/$LIBDIR/libsegshim.so")
    [ "$(readlink -f "${shim_info[0]}")" = "$want" ] && ok "SEGPOOL_SHIM_LIBRARY = ${shim_info[0]}" ||
        bad "SEGPOOL_SHIM_LIBRARY is '${shim_info[0]}', expected $want"
    [ "$(readlink -f "${shim_info[1]}")" = "$want" ] && ok "segpool::segshim is libsegshim.so" ||
        bad "segpool::segshim is '${shim_info[1]}'"
    [ "${shim_info[2]}" = "$VERSION" ] && ok "segpool_VERSION = $VERSION" || bad "segpool_VERSION is '${shim_info[2]}'"
    if LD_PRELOAD=${shim_info[0]} "$WORK/consumer-build/consumer_shared" "$VERSION" shim >"$WORK/cm-shim.out" 2>&1 &&
        grep -q '"pool_requests"' "$WORK/cm-shim.out"; then
        ok "consumer_shared under LD_PRELOAD=\${SEGPOOL_SHIM_LIBRARY}"
    else
        bad "consumer_shared under the shim: $(tail -5 "$WORK/cm-shim.out")"
    fi
    # A version the package does not satisfy is refused.
    if cmake -S "$CONSUMER" -B "$WORK/consumer-build-old" -G "$GENERATOR" -DCMAKE_C_COMPILER="$CC" \
        -DCMAKE_PREFIX_PATH="$P" -DSEGPOOL_EXPECT_VERSION=9.0 >"$WORK/cmake-old.log" 2>&1; then
        bad "find_package(segpool 9.0) succeeded against $VERSION"
    else
        ok "find_package(segpool 9.0) is refused"
    fi
else
    bad "find_package consumer: $(tail -15 "$WORK/cmake.log")"
fi

# ---- the installed wrapper and man pages ----------------------------------------
step "the installed segshim wrapper"
got=$("$P/$BINDIR/segshim" --version 2>&1)
[ "$got" = "segshim $VERSION" ] && ok "segshim --version: $got" || bad "segshim --version gave '$got'"
# The value check runs the installed segshim-config (libexec).
"$P/$BINDIR/segshim" --tcache 5000 -- true 2>"$WORK/wrapper.err"
rc=$?
[ $rc = 2 ] && grep -q "maximum" "$WORK/wrapper.err" && ok "installed wrapper checks values" ||
    bad "segshim --tcache 5000: exit $rc, $(cat "$WORK/wrapper.err")"
if [ -x "$WORK/consumer-build/consumer_shared" ]; then
    "$P/$BINDIR/segshim" -- "$WORK/consumer-build/consumer_shared" "$VERSION" shim >"$WORK/wrapped.out" 2>&1 &&
        ok "a program through the installed wrapper sees the shim" || bad "through the wrapper: $(tail -3 "$WORK/wrapped.out")"
fi
step "the installed man pages"
if command -v groff >/dev/null; then
    for page in "$MANDIR/man1/segshim.1" "$MANDIR/man3/segpool.3"; do
        warn=$(groff -man -ww -z "$P/$page" 2>&1)
        [ -z "$warn" ] && ok "$page renders without warnings" || bad "$page: $warn"
    done
    # segshim(1) documents every option of the library's table, by its
    # wrapper option and its variable; segpool(3) every function of segpool.h.
    text=$(groff -man -Tascii -P-cbou "$P/$MANDIR/man1/segshim.1")
    while IFS=$'\t' read -r name _kind _help; do
        o=--$(tr 'A-Z_' 'a-z-' <<<"$name")
        grep -q -- "$o" <<<"$text" && grep -q -- "SEGSHIM_$name" <<<"$text" ||
            bad "segshim(1) does not document $o [SEGSHIM_$name]"
    done < <("$P/$LIBEXECDIR/segshim/segshim-config" --list)
    text=$(groff -man -Tascii -P-cbou "$P/$MANDIR/man3/segpool.3")
    n=0
    for fn in $(grep -o 'segpool_[a-z_]*(' "$P/$INCLUDEDIR/segpool.h" | sort -u | tr -d '('); do
        n=$((n + 1))
        grep -q -- "$fn" <<<"$text" || bad "segpool(3) does not document $fn"
    done
    [ $n -ge 20 ] && ok "man pages checked ($n functions of segpool.h)" || bad "only $n functions found in segpool.h"
else
    echo "note: groff not installed, man pages not rendered"
fi

echo "install: $fails failure(s)"
[ $fails = 0 ]
