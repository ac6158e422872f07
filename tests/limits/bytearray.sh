#!/bin/bash
# bytearray.sh - under `ulimit -v 4G`, python3 -c 'bytearray(1536<<20)'
# succeeds with the shim as it does with glibc (the arena used to take most of
# the address space, and Python raised MemoryError).  Skips (77) without
# python3.  Usage: bytearray.sh /path/to/libsegshim.so
set -u
lib=$1
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }
code='b = bytearray(1536 << 20); b[-1] = 1; print("ok")'
if ! (ulimit -v $((4 << 20)) && python3 -c "$code") >/dev/null; then
  echo "FAIL: python3 fails under ulimit -v 4G even without the shim"
  exit 1
fi
if ! out=$(ulimit -v $((4 << 20)) && LD_PRELOAD=$lib python3 -c "$code" 2>&1); then
  echo "FAIL: under the shim: $out"
  exit 1
fi
echo "bytearray(1536<<20) under ulimit -v 4G: ok with glibc and with the shim"
