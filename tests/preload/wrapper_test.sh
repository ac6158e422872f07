#!/usr/bin/env bash
# wrapper_test.sh - the scripts/segshim wrapper: help, version, option
# syntax, values checked by the library's own parser (segshim-config), errors
# for a missing program, library and checker lookup, LD_PRELOAD prepending, the
# variables it sets, and a program run through it with --stats whose JSON
# shows the pool served requests.
#
#   wrapper_test.sh WRAPPER LIBSEGSHIM PROGRAM WORKDIR SEGSHIM_CONFIG
set -u
WRAPPER=$1
LIB=$2
PROGRAM=$3
WORK=$4
CONFIG_TOOL=$5
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK" || exit 1
unset SEGSHIM_LIB LD_PRELOAD
for v in $(compgen -e | grep '^SEGSHIM_'); do unset "$v"; done

fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# --help documents every option and exits 0.
out=$(bash "$WRAPPER" --help 2>&1)
rc=$?
[ $rc = 0 ] && ok "--help exits 0" || bad "--help exited $rc"
for o in --stats --stats=FILE --segment-size --pool-size --hugepages --prefault --tcache --decay-ms --verbose \
    --disable --lib --help; do
    grep -q -- "$o" <<<"$out" || bad "--help does not mention $o"
done
for v in SEGSHIM_STATS SEGSHIM_SEGMENT_SIZE SEGSHIM_POOL_SIZE SEGSHIM_HUGEPAGES SEGSHIM_PREFAULT SEGSHIM_TCACHE \
    SEGSHIM_DECAY_MS SEGSHIM_VERBOSE SEGSHIM_DISABLE; do
    grep -q -- "$v" <<<"$out" || bad "--help does not name $v"
done
grep -q -- '%p' <<<"$out" && ok "--help explains %p" || bad "--help does not mention %p"
grep -q -- '--version' <<<"$out" || bad "--help does not mention --version"

# Every option of the library's table (segshim-config --list, generated from
# SEGPOOL_OPTIONS) has a wrapper option, documented in --help and accepted
# with a value of its kind, that sets the variable.
sample_value() { # kind
    case $1 in pow2) echo 64K ;; size) echo 4M ;; int) echo 0 ;; mode) echo off ;; signal) echo USR2 ;; *) echo "" ;; esac
}
n_opts=0
while IFS=$'\t' read -r name kind _help; do
    n_opts=$((n_opts + 1))
    o=--$(tr 'A-Z_' 'a-z-' <<<"$name")
    grep -q -- "SEGSHIM_$name" <<<"$out" && grep -q -- "$o" <<<"$out" || bad "--help does not document $o [SEGSHIM_$name]"
    val=$(sample_value "$kind")
    if [ -n "$val" ]; then
        got=$(bash "$WRAPPER" --lib "$LIB" "$o" "$val" -- printenv "SEGSHIM_$name" 2>/dev/null)
    else
        got=$(bash "$WRAPPER" --lib "$LIB" "$o" -- printenv "SEGSHIM_$name" 2>/dev/null)
        val=1
    fi
    [ "$got" = "$val" ] && ok "$o sets SEGSHIM_$name=$val" || bad "$o: SEGSHIM_$name is '$got', expected '$val'"
done < <("$CONFIG_TOOL" --list)
[ $n_opts -ge 9 ] && ok "segshim-config --list names $n_opts options" || bad "segshim-config --list gave $n_opts options"

# --version: the library's version, from segshim-config next to the library.
version=$("$CONFIG_TOOL" --version)
got=$(bash "$WRAPPER" --lib "$LIB" --version 2>&1)
rc=$?
if [ $rc = 0 ] && [ "$got" = "segshim $version" ] && [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    ok "--version: $got"
else
    bad "--version exited $rc with '$got' (segshim-config --version: '$version')"
fi

# Bad options: exit 2 and a message naming the problem, program not run.
expect_usage_error() { # pattern args...
    local pattern=$1
    shift
    local err rc
    err=$(bash "$WRAPPER" --lib "$LIB" "$@" 2>&1 >/dev/null)
    rc=$?
    if [ $rc != 2 ]; then
        bad "segshim $* exited $rc, expected 2"
    elif ! grep -q -- "$pattern" <<<"$err"; then
        bad "segshim $*: message '$err' does not mention '$pattern'"
    else
        ok "segshim $* -> 2: $(head -1 <<<"$err")"
    fi
}
expect_usage_error "--bogus" --bogus -- true
expect_usage_error "--bogus" --bogus=3 -- true
expect_usage_error "takes no value" --help=1
expect_usage_error "maybe" --hugepages maybe -- true
expect_usage_error "48K" --segment-size 48K -- true
expect_usage_error "2M" --segment-size 2M -- true
expect_usage_error "lots" --pool-size lots -- true
expect_usage_error "x" --tcache x -- true
expect_usage_error "9q" --decay-ms 9q -- true
expect_usage_error "-5" --prefault -5 -- true
expect_usage_error "needs a value" --segment-size
expect_usage_error "no program" --stats
expect_usage_error "takes no value" --verbose=1 -- true
expect_usage_error "-z" -z true

# Values are judged by the library's own parser (segshim-config), with its
# reason: what the library accepts passes, what it rejects at run time is
# refused here.
expect_usage_error "above the maximum 1024" --tcache 5000 -- true
expect_usage_error "below the minimum" --pool-size 1K -- true
expect_usage_error "not a power of two" --segment-size=48K -- true
expect_usage_error "empty" --tcache= -- true
for v in 64KiB 64kb 65536 64K; do
    got=$(bash "$WRAPPER" --lib "$LIB" --segment-size "$v" -- printenv SEGSHIM_SEGMENT_SIZE 2>&1)
    [ "$got" = "$v" ] && ok "--segment-size $v accepted" || bad "--segment-size $v: '$got'"
done
# Both spellings give the same variable; -- ends the options (a later
# --version is the program's argument).
a=$(bash "$WRAPPER" --lib "$LIB" --decay-ms -1 --hugepages off -- printenv SEGSHIM_DECAY_MS SEGSHIM_HUGEPAGES)
b=$(bash "$WRAPPER" --lib "$LIB" --decay-ms=-1 --hugepages=off -- printenv SEGSHIM_DECAY_MS SEGSHIM_HUGEPAGES)
[ "$a" = "$b" ] && [ "$a" = $'-1\noff' ] && ok "--opt VALUE == --opt=VALUE" || bad "'$a' vs '$b'"
got=$(bash "$WRAPPER" --lib "$LIB" -- sh -c 'echo "$0 $1"' --stats --version 2>&1)
[ "$got" = "--stats --version" ] && ok "-- ends the options" || bad "after --: '$got'"

# A program that is not there: segshim's own words, the shell's status.
err=$(bash "$WRAPPER" --lib "$LIB" -- segshim-no-such-program-x 2>&1)
rc=$?
[ $rc = 127 ] && [ "$err" = "segshim: segshim-no-such-program-x: command not found" ] &&
    ok "missing program -> 127: $err" || bad "missing program: exit $rc, '$err'"
err=$(bash "$WRAPPER" --lib "$LIB" -- "$WORK/none/prog" 2>&1)
rc=$?
[ $rc = 127 ] && grep -q "^segshim: $WORK/none/prog: No such file or directory" <<<"$err" &&
    ok "missing path -> 127" || bad "missing path: exit $rc, '$err'"
touch "$WORK/not-exec"
err=$(bash "$WRAPPER" --lib "$LIB" -- "$WORK/not-exec" 2>&1)
rc=$?
[ $rc = 126 ] && grep -q "^segshim: $WORK/not-exec: Permission denied" <<<"$err" &&
    ok "not executable -> 126" || bad "not executable: exit $rc, '$err'"

# --stats: alone (or before -- or another option) the table on stderr; with a
# FILE, as the next argument or after =, JSON in FILE.
got=$(bash "$WRAPPER" --lib "$LIB" --stats -- printenv SEGSHIM_STATS)
[ "$got" = 1 ] && ok "--stats -- PROGRAM: 1" || bad "--stats --: '$got'"
got=$(bash "$WRAPPER" --lib "$LIB" --stats --verbose -- printenv SEGSHIM_STATS 2>/dev/null)
[ "$got" = 1 ] && ok "--stats --verbose: 1" || bad "--stats --verbose: '$got'"
got=$(bash "$WRAPPER" --lib "$LIB" --stats "$WORK/s-%p.json" -- printenv SEGSHIM_STATS)
[ "$got" = "$WORK/s-%p.json" ] && ok "--stats FILE: FILE" || bad "--stats FILE: '$got'"
got=$(bash "$WRAPPER" --lib "$LIB" --stats out.json -- printenv SEGSHIM_STATS)
[ "$got" = ./out.json ] && ok "--stats out.json: ./out.json" || bad "--stats out.json: '$got'"
expect_usage_error "took './prog' as its FILE" --stats ./prog

# Running true, and the exit status passing through.
bash "$WRAPPER" --lib "$LIB" -- true && ok "true runs" || bad "segshim -- true failed"
bash "$WRAPPER" --lib "$LIB" sh -c 'exit 3'
rc=$?
[ $rc = 3 ] && ok "exit status passes through" || bad "exit status $rc, expected 3"

# LD_PRELOAD is prepended, SEGSHIM_LIB is not passed on.
libreal=$(readlink -f "$LIB")
got=$(LD_PRELOAD=libm.so.6 SEGSHIM_LIB="$LIB" bash "$WRAPPER" -- printenv LD_PRELOAD)
[ "$got" = "$libreal:libm.so.6" ] && ok "LD_PRELOAD prepended" || bad "LD_PRELOAD is '$got'"
got=$(SEGSHIM_LIB="$LIB" bash "$WRAPPER" -- sh -c 'echo "${SEGSHIM_LIB-unset}"')
[ "$got" = unset ] && ok "SEGSHIM_LIB not passed on" || bad "SEGSHIM_LIB passed on as '$got'"

# The variables the options set, and the library accepting all of them
# without a warning.
got=$(bash "$WRAPPER" --lib "$LIB" --segment-size 64K --pool-size=1G --hugepages off --prefault 2M --tcache 4 \
    --decay-ms -1 --verbose -- sh -c 'env | grep "^SEGSHIM_" | sort' 2>"$WORK/verbose.err")
want="SEGSHIM_DECAY_MS=-1
SEGSHIM_HUGEPAGES=off
SEGSHIM_POOL_SIZE=1G
SEGSHIM_PREFAULT=2M
SEGSHIM_SEGMENT_SIZE=64K
SEGSHIM_TCACHE=4
SEGSHIM_VERBOSE=1"
[ "$got" = "$want" ] && ok "variables set" || bad "variables: $got"
if grep -q 'rejected\|unknown' "$WORK/verbose.err"; then
    bad "the library rejected a value the wrapper set: $(cat "$WORK/verbose.err")"
else
    ok "no warnings from the library"
fi
grep -q 'SEGMENT_SIZE' "$WORK/verbose.err" && ok "--verbose prints the configuration" ||
    bad "--verbose printed nothing naming SEGMENT_SIZE: $(head -3 "$WORK/verbose.err")"
got=$(bash "$WRAPPER" --lib "$LIB" --disable -- printenv SEGSHIM_DISABLE)
[ "$got" = 1 ] && ok "--disable" || bad "--disable set '$got'"

# A program through the wrapper with --stats=FILE (an absolute path and a
# bare file name, which the wrapper turns into a path).
if bash "$WRAPPER" --lib "$LIB" --stats="$WORK/stats.json" -- "$PROGRAM" >"$WORK/program.out" 2>&1; then
    ok "$PROGRAM runs through the wrapper"
else
    bad "$PROGRAM failed through the wrapper: $(tail -5 "$WORK/program.out")"
fi
# (A program that allocates: one that never calls malloc, like true, never
# starts the pool and writes no statistics.)
bash "$WRAPPER" --lib "$LIB" --stats=bare.json -- "$PROGRAM" >/dev/null 2>&1
bash "$WRAPPER" --lib "$LIB" --stats "$WORK/separate.json" -- "$PROGRAM" >/dev/null 2>&1
for f in "$WORK/stats.json" "$WORK/bare.json" "$WORK/separate.json"; do
    if python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if int(d["pool_requests"]) > 0 else 1)' "$f" 2>/dev/null; then
        ok "$f: pool_requests > 0"
    else
        bad "$f: missing, malformed or pool_requests == 0"
    fi
done
# (Not a coreutils program: gnulib's close_stdout closes stderr at exit,
# before the library's destructor could print.)
bash "$WRAPPER" --lib "$LIB" --stats -- "$PROGRAM" >/dev/null 2>"$WORK/stats.txt"
grep -q pool "$WORK/stats.txt" && ok "--stats prints to stderr" || bad "--stats printed nothing naming the pool"

# Lookup without --lib: the installed layout (bin/segshim, lib/libsegshim.so,
# libexec/segshim/segshim-config).
mkdir -p "$WORK/prefix/bin" "$WORK/prefix/lib" "$WORK/prefix/libexec/segshim"
cp "$WRAPPER" "$WORK/prefix/bin/segshim"
cp "$LIB" "$WORK/prefix/lib/libsegshim.so"
cp "$CONFIG_TOOL" "$WORK/prefix/libexec/segshim/segshim-config"
got=$("$WORK/prefix/bin/segshim" -- printenv LD_PRELOAD)
[ "$got" = "$WORK/prefix/lib/libsegshim.so" ] && ok "finds ../lib/libsegshim.so" || bad "installed lookup gave '$got'"
got=$("$WORK/prefix/bin/segshim" --version 2>&1)
[ "$got" = "segshim $version" ] && ok "finds ../libexec/segshim/segshim-config" || bad "installed --version gave '$got'"
# Without the checker a value cannot be checked: refused, not passed blindly;
# a run without values still works.
rm "$WORK/prefix/libexec/segshim/segshim-config"
err=$(PATH=/usr/bin:/bin "$WORK/prefix/bin/segshim" --tcache 4 -- true 2>&1)
rc=$?
[ $rc = 127 ] && grep -q "cannot find segshim-config" <<<"$err" && ok "no checker -> 127" ||
    bad "no checker: exit $rc, '$err'"
PATH=/usr/bin:/bin "$WORK/prefix/bin/segshim" -- true && ok "no checker, no values: runs" ||
    bad "no checker, no values: failed"
rm "$WORK/prefix/lib/libsegshim.so"
"$WORK/prefix/bin/segshim" -- true 2>/dev/null
rc=$?
[ $rc = 127 ] && ok "no library -> 127" || bad "no library: exit $rc"

echo "wrapper: $fails failure(s)"
[ $fails = 0 ]
