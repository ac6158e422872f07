#!/bin/bash
# data_limit.sh - under `ulimit -d 400M` (RLIMIT_DATA, set before the program
# starts), python3 builds 220 MiB of 1 KiB objects with the shim as it does
# with glibc.  The pool's side tables are private writable mappings and count
# against RLIMIT_DATA: sized for a pool of the machine's RAM they took about
# 150 MiB of the limit before the program allocated anything, and Python
# raised MemoryError.  Skips (77) without python3.
# Usage: data_limit.sh /path/to/libsegshim.so
set -u
lib=$1
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }
code='l = [bytes(1000) for _ in range(220000)]; print(len(l))'
limit_kib=$((400 << 10))
if ! (ulimit -d $limit_kib && python3 -c "$code") >/dev/null; then
  echo "FAIL: python3 fails under ulimit -d 400M even without the shim"
  exit 1
fi
if ! out=$(ulimit -d $limit_kib && LD_PRELOAD=$lib python3 -c "$code" 2>&1); then
  echo "FAIL: under the shim: ${out: -300}"
  exit 1
fi
echo "220 MiB of 1 KiB objects under ulimit -d 400M: ok with glibc and with the shim"
