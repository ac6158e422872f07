#!/usr/bin/env python3
"""bench.py - run the benchmark workloads under glibc, jemalloc, mimalloc,
tcmalloc and segshim side by side, and write the results.

Usually started by scripts/bench.sh, which installs what is missing, builds
segshim and the workloads (Release, in build/bench) and then runs this
program with the same arguments.

  scripts/bench.sh [--quick] [--only NAMES] [--reps N] [--allocators LIST]
                   [--out DIR] [--no-install] [--no-warm] [--list]
  scripts/bench.sh --instructions [--quick] [--allocators LIST] [--out DIR]
  scripts/bench.sh --scaling [--quick] [--threads LIST] [--only NAMES] ...

modes:
  (default)        every workload of tests/bench (and a few real programs)
                   under every allocator, interleaved in a rotated order,
                   N repetitions: wall time, CPU time (user+sys) and peak RSS
                   measured from outside by bench_runner (wait4), checksums
                   compared across allocators; writes bench.csv, bench.md,
                   time.png, rss.png and phases.png
  --instructions   instructions per malloc+free pair (callgrind, on
                   tests/bench/pairs.c) at each size, one block live and 100
                   live; writes instructions.csv and instructions.md
  --scaling        workloads that churn segments and free across threads at
                   1, 2, 4, 8, 16, 32 and 64 threads: throughput, CPU time and
                   futex system calls (a second run under strace -f -c);
                   writes scaling.csv, scaling.md and scaling.png

options:
  --quick          tiny sizes, one repetition, output to a scratch directory
                   (unless --out): a smoke test, run by scripts/test.sh
  --only NAMES     only these workloads, comma separated (see --list)
  --reps N         repetitions (default 3; 1 with --quick)
  --allocators L   comma separated, from glibc jemalloc mimalloc tcmalloc
                   segshim segshim-nohuge (segshim with SEGSHIM_HUGEPAGES=off);
                   default: every one installed (segshim-nohuge only in the
                   default mode)
  --threads LIST   thread counts for --scaling (default 1,2,4,8,16,32,64)
  --out DIR        where the results go (default results/)
  --build DIR      the build holding the workloads and libsegshim.so
                   (default build/bench, as scripts/bench.sh builds it)
  --no-warm        skip the memory warm-up (tests/bench/warm.c touches 4 GiB
                   on huge pages once, so that a fresh VM's first-touch cost
                   does not land on whichever allocator ran first)
  --no-install     (scripts/bench.sh) install nothing; accepted and ignored here
  --list           print the workloads and exit
  --validate       check the arguments and exit (scripts/bench.sh does this
                   before it installs and builds)
  -h, --help       this text

Exit status: 0, or 1 when a run failed or a checksum differed between
allocators or repetitions, or 2 for a bad argument.
"""
import argparse
import csv
import json
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict, defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "segshim", "segshim-nohuge"]
PEERS = ["glibc", "jemalloc", "mimalloc", "tcmalloc"]
REF = "jemalloc"
# One colour per allocator in every plot, whichever of them ran.
COLORS = {"glibc": "#808080", "jemalloc": "#1b9e77", "mimalloc": "#377eb8", "tcmalloc": "#ff7f00",
          "segshim": "#e41a1c", "segshim-nohuge": "#984ea3"}
DEFAULT_THREADS = [1, 2, 4, 8, 16, 32, 64]


class Workload:
    """One benchmark: its name, its command at full size and with --quick
    (a tests/bench program and its arguments, or real.sh's), what it does."""

    def __init__(self, name, kind, full, quick, note):
        self.name, self.kind, self.note = name, kind, note
        self.full, self.quick = full.split(), quick.split()


# kind: bin (a tests/bench program), real (tests/bench/real.sh NAME SCALE),
# segpool (the segpool.h API: only under segshim).  Full sizes run 1-15 s
# each on the 2-core reference machine; --quick sizes a fraction of a second.
WORKLOADS = [
    Workload("small-one", "bin", "bench_small one", "bench_small one 20000",
             "16 B..32 KiB, one block live"),
    Workload("small-many", "bin", "bench_small many", "bench_small many 5000",
             "16 B..32 KiB, up to 1000 live, random free order"),
    Workload("random", "bin", "bench_random", "bench_random 200000 20",
             "16 B..32 KiB log-uniform, skewed lifetimes, 200 MB live"),
    Workload("sizemix-1t", "bin", "bench_sizemix 4000000 64 1", "bench_sizemix 50000 8 1",
             "realistic mix: 98% up to 32 KiB, 2% 32 KiB..1 MiB; 64 MB live, 1 thread"),
    Workload("sizemix-2t", "bin", "bench_sizemix 4000000 64 2", "bench_sizemix 50000 8 2",
             "the same mix in 2 threads"),
    Workload("larson", "bin", "bench_larson", "bench_larson 200000 4 2000",
             "4 threads swap blocks in a shared array (3/4 of frees remote)"),
    Workload("batched", "bin", "bench_batched 8000000 4", "bench_batched 100000 4",
             "4 threads hand 16 B..16 KiB blocks to each other in batches of 64"),
    Workload("handoff", "bin", "bench_handoff 8000000 4", "bench_handoff 100000 4",
             "4 threads allocate, free and hand 32 B..8 KiB blocks at random"),
    Workload("xmalloc", "bin", "bench_xmalloc", "bench_xmalloc 200000",
             "1 producer allocates, 2 consumers free batches (all frees remote)"),
    Workload("prodcons", "bin", "bench_prodcons 4000000 5", "bench_prodcons 100000 5",
             "1 producer, 4 consumers that only free, one block at a time"),
    Workload("flink-malloc", "bin", "bench_flink malloc", "bench_flink malloc 3000",
             "32 KiB buffers through a bounded queue, malloc/free"),
    Workload("flink-segpool", "segpool", "bench_flink_segpool segpool", "bench_flink_segpool segpool 3000",
             "the same through segpool local pools (segshim only)"),
    Workload("large", "bin", "bench_large 40000 64 1", "bench_large 400 16 1",
             "64 KiB..4 MiB blocks; realloc from 1-16 KiB past 64 KiB and back"),
    Workload("tiny-1t", "bin", "bench_tiny 3072 200000 1", "bench_tiny 3072 20000 1",
             "a small program: 3 MiB heap, short run (peak RSS is the figure)"),
    Workload("tiny-2t", "bin", "bench_tiny 8192 200000 2", "bench_tiny 8192 20000 2",
             "a small program with 2 threads: 8 MiB heap"),
    Workload("trim", "bin", "bench_trim 40000 4", "bench_trim 800 4",
             "stress-ng-like loop, 4 threads, malloc_trim(0) every 8th call"),
    Workload("cache-thrash", "bin", "bench_falseshare thrash", "bench_falseshare thrash 1000",
             "2 threads, 8-byte objects, active false sharing"),
    Workload("cache-scratch", "bin", "bench_falseshare scratch", "bench_falseshare scratch 1000",
             "2 threads, 8-byte objects, passive false sharing"),
    Workload("tlb", "bin", "bench_tlb 1024", "bench_tlb 16",
             "1 GiB of 64-byte nodes walked in random order"),
    Workload("phases", "bin", "bench_phases 1024 3000 @CSV@", "bench_phases 32 100 @CSV@",
             "grow 1 GiB, free 90%, idle 3 s, grow again"),
    Workload("sqlite", "real", "sqlite 1", "sqlite 0.02",
             "sqlite3 :memory:, 300k rows, indexes, group by, update"),
    Workload("python", "real", "python 1", "python 0.02",
             "python3 churning objects (PYTHONMALLOC=malloc)"),
    Workload("gcc", "real", "gcc 1", "gcc 0.03", "gcc -O2 on a generated 300-function file"),
    Workload("redis", "real", "redis 1", "redis 0.02",
             "redis-server + redis-benchmark, 7 commands x 100k requests"),
    Workload("redis-lpush", "real", "redis-lpush 1", "redis-lpush 0.02",
             "redis-server, LPUSH of 1 KB values onto one list, 100k requests, 50 clients"),
    Workload("redis-lrange", "real", "redis-lrange 1", "redis-lrange 0.02",
             "redis-server, 3k LPUSH of 10 KB values then 3k LRANGE_100 (1 MB replies)"),
    Workload("stress-malloc-1", "real", "stress-malloc 1 1", "stress-malloc 0.02 1",
             "stress-ng --malloc 1 --verify, 60k ops: blocks up to 64 KiB, malloc_trim calls"),
    Workload("stress-malloc-4", "real", "stress-malloc 2 4", "stress-malloc 0.04 4",
             "the same with 4 worker processes, 120k ops in all"),
]
# Only some allocators can run these: outside the geometric means.
NOT_IN_MEANS = {"flink-segpool"}
# The small programs, whose peak RSS has a target against glibc's.
SMALL_PROGRAMS = ["tiny-1t", "tiny-2t"]
# The commands real.sh needs, by workload.
REDIS_NEEDS = ["redis-server", "redis-benchmark", "redis-cli"]
REAL_NEEDS = {"sqlite": ["sqlite3"], "redis": REDIS_NEEDS, "redis-lpush": REDIS_NEEDS, "redis-lrange": REDIS_NEEDS,
              "gcc": ["gcc"], "python": ["python3"], "stress-malloc-1": ["stress-ng"], "stress-malloc-4": ["stress-ng"]}
# What the redis workloads report of the server alone (real.sh).
SERVER_FIGURES = [("rps", "Requests per second of the case (redis-benchmark); above 1 is better here"),
                  ("server_cpu_s", "CPU seconds of redis-server alone, the preloaded process"),
                  ("server_rss_kb", "Peak RSS of redis-server alone (VmHWM), MiB")]

# --scaling: {t} is the thread count; the total work is the same at every
# count, so throughput is comparable along a row.
SCALING = [
    Workload("remote-batch", "bin", "bench_batched 2000000 {t} 64 16384 16", "bench_batched 20000 {t} 64 16384 16",
             "batched cross-thread frees, 16 B..16 KiB"),
    Workload("segment-churn", "bin", "bench_batched 400000 {t} 16 32768 16384",
             "bench_batched 4000 {t} 16 32768 16384",
             "16-32 KiB blocks (about one segment) allocated and freed by different threads"),
    Workload("larson", "bin", "bench_larson 2000000 {t} 20000", "bench_larson 20000 {t} 2000",
             "threads swap 16 B..1 KiB blocks in a shared array"),
    Workload("prodcons", "bin", "bench_prodcons 2000000 {t} 4096", "bench_prodcons 20000 {t} 4096",
             "1 producer, threads-1 consumers that only free"),
]


def note(msg):
    sys.stderr.write("bench.py: %s\n" % msg)
    sys.stderr.flush()


# ---- arguments ---------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench.py", add_help=False, allow_abbrev=False,
                                usage=argparse.SUPPRESS)
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--allocators", default="")
    p.add_argument("--threads", default="")
    p.add_argument("--out", default="")
    p.add_argument("--build", default=os.path.join(ROOT, "build", "bench"))
    p.add_argument("--instructions", action="store_true")
    p.add_argument("--scaling", action="store_true")
    p.add_argument("--no-warm", action="store_true")
    p.add_argument("--no-install", action="store_true")
    p.add_argument("--list", action="store_true")
    p.add_argument("--validate", action="store_true")

    def error(msg):
        sys.stderr.write("bench.py: %s (see --help)\n" % msg)
        sys.exit(2)

    p.error = error
    a = p.parse_args(argv)
    if a.help:
        sys.stdout.write(__doc__)
        sys.exit(0)
    if a.instructions and a.scaling:
        error("--instructions and --scaling are separate runs")
    if a.reps is not None and a.reps < 1:
        error("--reps wants a positive number")
    a.reps = 1 if a.quick else (a.reps or 3)
    try:
        a.threads = [int(t) for t in a.threads.split(",")] if a.threads else (
            [1, 4] if a.quick else DEFAULT_THREADS)
    except ValueError:
        error("--threads wants numbers separated by commas, not '%s'" % a.threads)
    if any(t < 1 for t in a.threads):
        error("--threads wants positive numbers")
    a.only = [n for n in a.only.split(",") if n]
    table = SCALING if a.scaling else WORKLOADS
    for n in a.only:
        if n not in [w.name for w in table]:
            error("unknown workload '%s' (see --list)" % n)
    a.allocators = [x for x in a.allocators.split(",") if x]
    for x in a.allocators:
        if x not in ORDER:
            error("unknown allocator '%s' (from: %s)" % (x, " ".join(ORDER)))
    return a


# ---- allocators ----------------------------------------------------------------

def find_lib(*names):
    """A shared library by file name, from the linker cache or the usual dirs."""
    try:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        cache = ""
    for n in names:
        for line in cache.splitlines():
            fields = line.split()
            if fields and fields[0] == n and os.path.exists(fields[-1]):
                return fields[-1]
        for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                  "/usr/lib64", "/usr/lib", "/usr/local/lib"):
            if os.path.exists(os.path.join(d, n)):
                return os.path.join(d, n)
    return None


def allocators(args, bench_dir):
    """name -> (library to preload or "", extra environment), in ORDER."""
    segshim = os.path.join(bench_dir, "..", "..", "shim", "libsegshim.so")
    segshim = os.path.normpath(segshim) if os.path.exists(segshim) else None
    found = {
        "glibc": ("", {}),
        "jemalloc": (find_lib("libjemalloc.so.2", "libjemalloc.so"), {}),
        "mimalloc": (find_lib("libmimalloc.so.2", "libmimalloc.so.3", "libmimalloc.so"), {}),
        "tcmalloc": (find_lib("libtcmalloc_minimal.so.4", "libtcmalloc_minimal.so"), {}),
        "segshim": (segshim, {}),
        "segshim-nohuge": (segshim, {"SEGSHIM_HUGEPAGES": "off"}),
    }
    wanted = args.allocators or [a for a in ORDER if not (
        a == "segshim-nohuge" and (args.instructions or args.scaling))]
    out = OrderedDict()
    for a in ORDER:
        if a not in wanted:
            continue
        lib, env = found[a]
        if lib is None:
            if args.allocators:
                sys.exit("bench.py: %s is not installed or not built (%s)" % (
                    a, "scripts/bench.sh builds it" if a.startswith("segshim") else "scripts/bench.sh installs it"))
            note("NOTE: %s is not available: its column is skipped" % a)
            continue
        out[a] = (lib, env)
    if not out:
        sys.exit("bench.py: no allocator to run")
    return out


# ---- provenance ------------------------------------------------------------------

def git(*argv):
    r = subprocess.run(["git", "-C", ROOT] + list(argv), capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def commit_id():
    c = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if git("status", "--porcelain", "--", "pool", "shim", "tests/bench", "CMakeLists.txt"):
        c += " (with uncommitted changes to the allocator or the workloads)"
    return c


def command_line(argv):
    wrapper = os.environ.get("SEGSHIM_BENCH_WRAPPER", "scripts/bench.py")
    return " ".join([wrapper] + [shlex.quote(x) for x in argv])


def machine_lines(allocs, argv):
    lines = ["date: " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             "commit: " + commit_id(),
             "command: " + command_line(argv)]
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for l in f:
            if l.startswith("model name"):
                model = l.split(":", 1)[1].strip()
                break
    lines.append("cpu: %s (%d online CPUs)" % (model, os.cpu_count() or 0))
    with open("/proc/meminfo") as f:
        mem = dict(l.split(":", 1) for l in f)
    lines.append("memory: %.0f GiB total, %.0f GiB available" % (
        int(mem["MemTotal"].split()[0]) / 2**20, int(mem.get("MemAvailable", "0 kB").split()[0]) / 2**20))
    thp = "n/a"
    if os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"):
        thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read().strip()
    lines.append("kernel: %s %s; THP: %s" % (os.uname().sysname, os.uname().release, thp))
    lines.append("glibc: " + os.confstr("CS_GNU_LIBC_VERSION").split()[-1])
    for pkg in ("libjemalloc2", "libmimalloc2.0", "libmimalloc3", "libtcmalloc-minimal4",
                "libtcmalloc-minimal4t64", "libgoogle-perftools4"):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}|${Package} ${Version}", pkg],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.startswith("install ok installed|"):
            lines.append("package: " + r.stdout.split("|", 1)[1].strip())
    for a, (lib, env) in allocs.items():
        if lib and lib.startswith(ROOT + os.sep):
            lib = os.path.relpath(lib, ROOT)  # the build tree, as a path in the repository
        lines.append("lib %s: %s %s" % (a, lib or "(none: glibc malloc)",
                                        " ".join("%s=%s" % kv for kv in env.items())))
    return lines


def provenance(ctx):
    """The line under every table: which commit and which command made it."""
    return "_Commit `%s`, produced by `%s`._\n" % (ctx["commit"], ctx["command"])


# ---- running one command ------------------------------------------------------------

def run_measured(ctx, cmd, lib, env, stdout_path, timeout):
    """Run cmd under bench_runner; returns the runner's JSON measurement plus
    the "key: value" lines the workload printed (checksum, ops, ...)."""
    meas = os.path.join(ctx["scratch"], "rusage.json")
    runner = [os.path.join(ctx["bin"], "bench_runner"), "-o", meas, "-t", str(timeout)]
    for k, v in env.items():
        runner += ["-e", "%s=%s" % (k, v)]
    if lib:
        runner += ["-p", lib]
    if os.path.exists(meas):
        os.unlink(meas)
    with open(stdout_path, "w") as out, open(stdout_path + ".err", "w") as err:
        subprocess.run(runner + ["--"] + cmd, stdout=out, stderr=err)
    try:
        with open(meas) as f:
            m = json.loads(f.readline())
    except (OSError, ValueError):
        m = {"wall_s": 0.0, "user_s": 0.0, "sys_s": 0.0, "maxrss_kb": 0, "status": 127}
    with open(stdout_path) as f:
        for line in f:
            k = re.match(r"^([a-z_]+): (\S+)$", line.strip())
            if k:
                m[k.group(1)] = k.group(2)
    m["cpu_s"] = m["user_s"] + m["sys_s"]
    m["ok"] = m["status"] == 0 and "checksum" in m
    return m


def workload_cmd(ctx, w, args_list, alloc, rep, lib):
    """The command line and the extra environment of one run."""
    args_list = [x.replace("@CSV@", os.path.join(ctx["out"], "phases", "%s-rep%d.csv" % (alloc, rep)))
                 for x in args_list]
    if w.kind == "real":
        env = {"BENCH_PRELOAD": lib, "BENCH_LIBCMALLOC": os.path.join(ctx["bin"], "libbench_libcmalloc.so")}
        cmd = [os.path.join(ROOT, "tests", "bench", "real.sh"), args_list[0],
               os.path.join(ctx["scratch"], "work")] + args_list[1:]
        return cmd, env, ""
    return [os.path.join(ctx["bin"], args_list[0])] + args_list[1:], {}, lib


class Progress:
    """One labelled line per run, with the time left."""

    def __init__(self, total):
        self.total, self.k, self.start = total, 0, time.time()

    def line(self, text):
        self.k += 1
        el = time.time() - self.start
        eta = el * (self.total - self.k) / self.k
        sys.stderr.write("[%d/%d] %s  (%dm%02ds left)\n" % (self.k, self.total, text, eta // 60, eta % 60))
        sys.stderr.flush()


# ---- statistics -----------------------------------------------------------------

def median(xs):
    return statistics.median(xs) if xs else None


def gmean(xs):
    xs = [x for x in xs if x is not None and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def fmt_time(s):
    return "%.3f" % s if s < 1 else ("%.2f" % s if s < 100 else "%.0f" % s)


def fmt_mib(kb):
    return "%.0f" % (kb / 1024.0) if kb >= 10240 else "%.1f" % (kb / 1024.0)


def fmt_ratio(r):
    return "–" if r is None else "%.2f" % r


class Results:
    """The rows of one run, grouped by (workload, allocator)."""

    def __init__(self, rows, allocs):
        self.rows = rows
        self.workloads = list(OrderedDict.fromkeys(r["workload"] for r in rows))
        self.allocs = [a for a in allocs if any(r["allocator"] == a for r in rows)]
        self.runs = defaultdict(list)
        for r in rows:
            self.runs[(r["workload"], r["allocator"])].append(r)

    def values(self, w, a, key):
        return [float(r[key]) for r in self.runs.get((w, a), []) if r["ok"] and r.get(key) not in (None, "")]

    def med(self, w, a, key):
        return median(self.values(w, a, key))

    def ratio(self, w, a, key, ref=REF):
        m, r = self.med(w, a, key), self.med(w, ref, key)
        return m / r if m is not None and r else None

    def best_peer(self, w, key):
        peers = [(self.med(w, a, key), a) for a in PEERS if a in self.allocs and self.med(w, a, key)]
        return min(peers) if peers else (None, None)

    def verdict(self, w):
        """(text, bad): the checksum verdict of one workload."""
        sums, failed = defaultdict(set), []
        for a in self.allocs:
            for r in self.runs.get((w, a), []):
                if not r["ok"]:
                    failed.append("%s rep %s (status %s)" % (a, r["rep"], r["status"]))
                else:
                    sums[r["checksum"]].add(a)
        if len(sums) > 1:
            return "**MISMATCH**: " + "; ".join("%s: %s" % (s, ", ".join(sorted(v))) for s, v in sums.items()), True
        if failed:
            # A peer that crashes (Debian's mimalloc 2.0.9 does, about one run
            # in a hundred of trim) is reported, not fatal: only a failed
            # segshim run or a mismatch fails the run.
            ours = any(f.startswith("segshim") for f in failed)
            return ("**FAILED**: " if ours else "peer failed: ") + ", ".join(failed), ours
        return ("ok (`%s`)" % next(iter(sums)) if sums else "no run"), False


# ---- the default mode ---------------------------------------------------------------

def tools_missing(w):
    return [c for c in REAL_NEEDS.get(w.name, []) if shutil.which(c) is None] if w.kind == "real" else []


def plan_runs(ctx, selected, allocs):
    """(rep, workload, allocator) in the order they run: every allocator of a
    workload back to back, the allocator order rotated each repetition."""
    names = list(allocs)
    runs = []
    for rep in range(1, ctx["reps"] + 1):
        for w in selected:
            for i in range(len(names)):
                a = names[(i + rep - 1) % len(names)]
                if w.kind == "segpool" and (not a.startswith("segshim") or
                                            not os.path.exists(os.path.join(ctx["bin"], w.full[0]))):
                    continue
                runs.append((rep, w, a))
    return runs


def run_bench(ctx, args, allocs):
    selected = [w for w in WORKLOADS if not args.only or w.name in args.only]
    for w in selected:
        miss = tools_missing(w)
        if miss:
            note("NOTE: %s skipped: %s not installed" % (w.name, ", ".join(miss)))
    selected = [w for w in selected if not tools_missing(w)]
    out = ctx["out"]
    logs = os.path.join(out, "logs")
    for d in (logs, os.path.join(out, "phases")):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    warm = not args.no_warm and not args.quick
    if warm and os.path.exists(os.path.join(ctx["bin"], "bench_warm")):
        note("warming 4 GiB of memory on huge pages (once; --no-warm skips it)")
        if subprocess.run([os.path.join(ctx["bin"], "bench_warm"), "4"], stdout=subprocess.DEVNULL).returncode:
            note("the warm-up failed; going on")
    machine = ctx["machine"] + ["repetitions: %d" % ctx["reps"]]
    if warm:
        machine.append("memory warm-up: 4 GiB touched on huge pages before the runs (--no-warm skips it)")
    with open(os.path.join(out, "machine.txt"), "w") as f:
        f.write("\n".join(machine) + "\n")

    runs = plan_runs(ctx, selected, allocs)
    note("%d runs: %d workloads x %d allocators x %d repetitions -> %s" % (
        len(runs), len(selected), len(allocs), ctx["reps"], out))
    prog, rows = Progress(len(runs)), []
    timeout = 60 if args.quick else 300
    for rep, w, a in runs:
        lib, env = allocs[a]
        cmd, wenv, preload = workload_cmd(ctx, w, w.quick if args.quick else w.full, a, rep, lib)
        log = os.path.join(logs, "%s-%s-rep%d.out" % (w.name, a, rep))
        m = run_measured(ctx, cmd, preload, dict(env, **wenv), log, timeout)
        m.update(workload=w.name, allocator=a, rep=rep)
        rows.append(m)
        flag = ""
        if m["ok"]:
            os.unlink(log)
            os.unlink(log + ".err")
        else:
            flag = "  FAILED (status %s, see %s.err)" % (m["status"], os.path.relpath(log, out))
        prog.line("rep %d  %-14s %-15s wall %7.2f s  cpu %7.2f s  peak RSS %6.1f MiB%s" % (
            rep, w.name, a, m["wall_s"], m["cpu_s"], m["maxrss_kb"] / 1024.0, flag))
    try:
        os.rmdir(logs)
    except OSError:
        pass
    write_csv(os.path.join(out, "bench.csv"), rows,
              ["workload", "allocator", "rep", "wall_s", "user_s", "sys_s", "cpu_s", "maxrss_kb", "status",
               "checksum", "ops", "rss_idle_kb", "walk_ns_per_step"] + [k for k, _ in SERVER_FIGURES])
    res = Results(rows, list(allocs))
    text, bad = bench_report(ctx, res, machine)
    with open(os.path.join(out, "bench.md"), "w") as f:
        f.write(text)
    bench_plots(ctx, res)
    note("done in %s: %s/bench.md, bench.csv and plots" % (elapsed(prog.start), out))
    if bad:
        note("CHECKSUM MISMATCH OR FAILED RUN: see %s/bench.md" % out)
    return 1 if bad else 0


def elapsed(start):
    s = int(time.time() - start)
    return "%dm%02ds" % (s // 60, s % 60)


def write_csv(path, rows, fields):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(fields)
        for r in rows:
            wr.writerow([fmt_csv(r.get(k, "")) for k in fields])


def fmt_csv(v):
    return "%.6f" % v if isinstance(v, float) else v


def bench_report(ctx, res, machine):
    out = []
    p = out.append
    p("# segshim benchmarks\n")
    p("Every figure is in `bench.csv`. Times are medians over the repetitions with min–max, and the "
      "ratio to jemalloc measured in the same run (below 1 is better). Allocators ran interleaved, "
      "in a rotated order each repetition; wall time, CPU time and peak RSS are measured from outside "
      "by `tests/bench/bench_runner` (wait4).\n")
    p(provenance(ctx))
    p("```")
    out.extend(machine)
    p("```\n")
    mean_w = [w for w in res.workloads if w not in NOT_IN_MEANS and
              all(res.med(w, a, "wall_s") is not None for a in res.allocs)]
    summary = {}
    if REF in res.allocs:
        summary = bench_summary(ctx, res, mean_w, p)
    for title, key, fmt, explain in (
            ("Wall time (s)", "wall_s", fmt_time, "Median seconds (min–max) and ×ratio to jemalloc."),
            ("CPU time, user + sys (s)", "cpu_s", fmt_time,
             "Median seconds (min–max) and ×ratio to jemalloc. Includes every process of a real-program "
             "workload (redis-benchmark, the gcc driver and assembler)."),
            ("Peak RSS (MiB)", "maxrss_kb", fmt_mib,
             "Median of the peak resident set (largest process of the tree), min–max, and ×ratio to jemalloc.")):
        bench_table(ctx, res, title, key, fmt, explain, p)
    bench_extras(ctx, res, p)
    if "segshim" in res.allocs and summary:
        bench_targets(ctx, res, mean_w, summary, p)
    bad = False
    p("## Checksums\n")
    p("Each workload prints a checksum of the data it wrote and read back, which must be the same "
      "under every allocator and in every repetition.\n")
    p(provenance(ctx))
    p("| workload | what it does | checksum |")
    p("| --- | --- | --- |")
    notes = {w.name: w.note for w in WORKLOADS}
    for w in res.workloads:
        v, b = res.verdict(w)
        bad |= b
        p("| %s | %s | %s |" % (w, notes.get(w, ""), v))
    p("")
    p("## Notes\n")
    p("- `segshim-nohuge` is segshim with `SEGSHIM_HUGEPAGES=off`: the difference is what huge pages buy.")
    p("- Debian's redis-server links libjemalloc; its glibc column preloads `libbench_libcmalloc.so`, "
      "which sends malloc back to glibc. Under the other allocators the preloaded malloc wins as usual.")
    p("- python runs with `PYTHONMALLOC=malloc`, so its small objects reach the allocator instead of pymalloc.")
    p("- Plots: `time.png` (wall seconds) and `rss.png` (peak RSS, MiB), medians with min–max whiskers "
      "on a log axis; `phases.png` (RSS over time of the phases workload, phases numbered).")
    p("- Reproduce: `scripts/bench.sh` (all), `scripts/bench.sh --only tlb,phases --reps 5`, "
      "`scripts/bench.sh --instructions`, `scripts/bench.sh --scaling`.")
    return "\n".join(out) + "\n", bad


def bench_summary(ctx, res, mean_w, p):
    p("## Summary: geometric means of the ratios to jemalloc\n")
    left = [w for w in res.workloads if w not in mean_w]
    p("Over the %d workloads every allocator completed (left out: %s). Wall time on a shared machine "
      "is noisy (see the min–max ranges below); CPU time is steadier.\n" % (len(mean_w), ", ".join(left) or "none"))
    p(provenance(ctx))
    p("| allocator | wall time | CPU time | peak RSS | worst wall ratio |")
    p("| --- | ---: | ---: | ---: | --- |")
    summary = {}
    for a in res.allocs:
        gw, gc, gr = (gmean([res.ratio(w, a, k) for w in mean_w]) for k in ("wall_s", "cpu_s", "maxrss_kb"))
        worst = max(((res.ratio(w, a, "wall_s") or 0, w) for w in mean_w), default=(None, "-"))
        summary[a] = (gw, gc, gr, worst)
        p("| %s | %s | %s | %s | %s (%s) |" % (a, fmt_ratio(gw), fmt_ratio(gc), fmt_ratio(gr),
                                              fmt_ratio(worst[0]), worst[1]))
    p("")
    return summary


def bench_table(ctx, res, title, key, fmt, explain, p, workloads=None):
    p("## %s\n" % title)
    p(explain + "\n")
    p(provenance(ctx))
    p("| workload | " + " | ".join(res.allocs) + " |")
    p("| --- | " + " | ".join("---:" for _ in res.allocs) + " |")
    for w in workloads or res.workloads:
        cells = []
        for a in res.allocs:
            xs = res.values(w, a, key)
            if not xs:
                cells.append("")
                continue
            c = fmt(median(xs))
            if len(xs) > 1:
                c += " (%s–%s)" % (fmt(min(xs)), fmt(max(xs)))
            r = res.ratio(w, a, key)
            if r is not None and a != REF:
                c += " ×%s" % fmt_ratio(r)
            cells.append(c)
        p("| %s | %s |" % (w, " | ".join(cells)))
    p("")


def bench_extras(ctx, res, p):
    """The figures some workloads report from inside."""
    server_w = [w for w in res.workloads if any(res.values(w, a, "server_cpu_s") for a in res.allocs)]
    for key, explain in SERVER_FIGURES if server_w else []:
        fmt = fmt_mib if key == "server_rss_kb" else (lambda x: "%.0f" % x) if key == "rps" else fmt_time
        rows = [w for w in server_w if any(res.values(w, a, key) for a in res.allocs)]
        bench_table(ctx, res, "redis-server alone: " + key, key, fmt,
                    explain + ": median (min–max) and ×ratio to jemalloc.", p, rows)
    if "phases" in res.workloads:
        p("## RSS after freeing 90% (phases)\n")
        p("RSS at the end of the idle phase: the oldest 10% of a 1 GiB heap of small blocks is still "
          "live (docs/design.md sets segshim's target: below 220 MB). See `phases.png` for RSS over time.\n")
        p(provenance(ctx))
        inner_table(res, "phases", "rss_idle_kb", "RSS after idle (MiB)", fmt_mib, p)
    if "tlb" in res.workloads:
        p("## TLB walk alone (tlb)\n")
        p("Nanoseconds per step of the random walk over the 64-byte nodes, timed inside the program "
          "(allocation and linking excluded): what huge pages buy shows here.\n")
        p(provenance(ctx))
        inner_table(res, "tlb", "walk_ns_per_step", "ns per step", lambda x: "%.1f" % x, p)
    if "flink-segpool" in res.workloads:
        p("## Flink buffers: malloc versus the segpool.h API\n")
        p("The same producer/consumer pipeline of 32 KiB buffers, through `malloc`/`free` and through "
          "segpool local pools (`segpool_local_request_timeout`/`segpool_local_recycle`).\n")
        p(provenance(ctx))
        p("| allocator | flink-malloc wall (s) | flink-segpool wall (s) | flink-segpool peak RSS (MiB) |")
        p("| --- | ---: | ---: | ---: |")
        for a in res.allocs:
            m, s, rss = (res.med("flink-malloc", a, "wall_s"), res.med("flink-segpool", a, "wall_s"),
                         res.med("flink-segpool", a, "maxrss_kb"))
            p("| %s | %s | %s | %s |" % (a, fmt_time(m) if m is not None else "", fmt_time(s) if s is not None else "",
                                          fmt_mib(rss) if rss is not None else ""))
        p("")


def inner_table(res, w, key, label, fmt, p):
    p("| allocator | %s, median | min–max |" % label)
    p("| --- | ---: | --- |")
    for a in res.allocs:
        xs = res.values(w, a, key)
        if xs:
            p("| %s | %s | %s–%s |" % (a, fmt(median(xs)), fmt(min(xs)), fmt(max(xs))))
    p("")


def bench_targets(ctx, res, mean_w, summary, p):
    gw, gc, gr, worst = summary["segshim"]
    peers = [a for a in PEERS if a in summary]
    p("## segshim against its targets\n")
    p("The targets of issue 11, as docs/design.md states them, measured side by side in this run.\n")
    p(provenance(ctx))
    p("| target | measured | met |")
    p("| --- | --- | --- |")
    yes = lambda ok: "yes" if ok else "**no**"
    p("| wall-time geomean ≤ 0.70 × jemalloc | %s | %s |" % (fmt_ratio(gw), yes(gw is not None and gw <= 0.70)))
    if "tcmalloc" in summary:
        tw = summary["tcmalloc"][0]
        p("| wall-time geomean below tcmalloc's (%s) | %s | %s |" % (fmt_ratio(tw), fmt_ratio(gw),
                                                                    yes(gw is not None and tw and gw < tw)))
    over = []
    for w in mean_w:
        best, who = res.best_peer(w, "wall_s")
        m = res.med(w, "segshim", "wall_s")
        if best and m and m > 1.2 * best:
            over.append("%s %.2f× %s" % (w, m / best, who))
    p("| no workload above 1.2 × the best peer's wall time | %s | %s |" % (
        "; ".join(over) if over else "none above", yes(not over)))
    p("| peak-RSS geomean ≤ jemalloc | %s | %s |" % (fmt_ratio(gr), yes(gr is not None and gr <= 1.0)))
    for w in SMALL_PROGRAMS:
        r = res.ratio(w, "segshim", "maxrss_kb", ref="glibc") if "glibc" in res.allocs else None
        if r is not None:
            p("| %s: peak RSS within 1.2 × glibc's | %s | %s |" % (w, fmt_ratio(r), yes(r <= 1.2)))
    xs = res.values("phases", "segshim", "rss_idle_kb")
    if xs:
        mb = median(xs) * 1024 / 1e6
        p("| phases: RSS after freeing 90%% < 220 MB | %.0f MB | %s |" % (mb, yes(mb < 220)))
    bad = [w for w in res.workloads if res.verdict(w)[1]]
    p("| every checksum equal | %s | %s |" % (", ".join(bad) if bad else "all equal", yes(not bad)))
    p("")


def bench_plots(ctx, res):
    """Data files for scripts/plot.gnuplot, then gnuplot itself."""
    out = ctx["out"]
    ranges = {}
    for key, name, scale in (("wall_s", "plot-time.dat", 1.0), ("maxrss_kb", "plot-rss.dat", 1 / 1024.0)):
        lo, hi = float("inf"), 0.0
        with open(os.path.join(out, name), "w") as f:
            f.write("# workload, then median min max of: " + " ".join(res.allocs) + "\n")
            for w in res.workloads:
                if w in NOT_IN_MEANS:
                    continue
                cells = []
                for a in res.allocs:
                    xs = [x * scale for x in res.values(w, a, key)]
                    if xs:
                        cells.append("%.6g %.6g %.6g" % (median(xs), min(xs), max(xs)))
                        lo, hi = min(lo, min(xs)), max(hi, max(xs))
                    else:
                        cells.append("NaN NaN NaN")
                f.write(w + " " + " ".join(cells) + "\n")
        ranges[key] = log_range(lo, hi)
    marks = phase_marks(out, res.allocs)
    with open(os.path.join(out, "plot-vars.gp"), "w") as f:
        f.write('allocs = "%s"\nnallocs = %d\n' % (" ".join(res.allocs), len(res.allocs)))
        f.write('colors = "%s"\n' % " ".join(COLORS.get(a, "black") for a in res.allocs))
        f.write('phase_colors = "%s"\n' % " ".join(COLORS.get(a, "black") for a in marks))
        f.write("time_min = %g\ntime_max = %g\n" % ranges["wall_s"])
        f.write("rss_min = %g\nrss_max = %g\n" % ranges["maxrss_kb"])
        f.write('phase_allocs = "%s"\n' % " ".join(marks))
    gnuplot(ctx, "plot.gnuplot")


def log_range(lo, hi):
    """A log axis just around [lo, hi], so that every bar and whisker shows
    and none is lost in empty decades."""
    if not (0 < lo <= hi < float("inf")):
        return (0.001, 1000)
    return (lo / 1.5, hi * 1.5)


def phase_marks(out, allocs):
    """Where each allocator's phases start: phases/marks.dat (seconds, MiB,
    phase number, comma separated like the samples), one block per allocator;
    returns the allocators with samples."""
    have = []
    with open(os.path.join(out, "phases", "marks.dat"), "w") as f:
        for a in allocs:
            path = os.path.join(out, "phases", "%s-rep1.csv" % a)
            if not os.path.exists(path):
                continue
            have.append(a)
            last = None
            for r in csv.DictReader(open(path)):
                ph = int(r["phase"])
                if ph != last:
                    f.write("%.3f,%.1f,%d\n" % (int(r["ms"]) / 1000.0, int(r["rss_kb"]) / 1024.0, ph))
                    last = ph
            f.write("\n\n")
    return have


def gnuplot(ctx, script):
    if shutil.which("gnuplot") is None:
        note("NOTE: gnuplot is not installed: no plots (scripts/bench.sh installs gnuplot-nox)")
        return
    r = subprocess.run(["gnuplot", "-e", "outdir='%s'" % ctx["out"], os.path.join(ROOT, "scripts", script)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        note("gnuplot failed on %s:\n%s" % (script, r.stderr))


# ---- --instructions ----------------------------------------------------------------

INS_SIZES = [16, 64, 256, 1024, 4096, 16384, 32768]


def count_ir(ctx, lib, mode, size, npairs):
    """Instructions collected in the pairs_loop_* functions of one run."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", "--soname-synonyms=somalloc=NONE",
           "--toggle-collect=pairs_loop_*", os.path.join(ctx["bin"], "bench_pairs"), mode, str(size), str(npairs)]
    env = dict(os.environ)
    if lib:
        env["LD_PRELOAD"] = lib
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    hits = re.findall(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or not hits:
        sys.stderr.write(r.stderr)
        sys.exit("bench.py: callgrind failed: %s %d under %s" % (mode, size, lib or "glibc"))
    return int(hits[-1])


def run_instructions(ctx, args, allocs):
    if shutil.which("valgrind") is None:
        sys.exit("bench.py: valgrind is needed for --instructions (scripts/bench.sh installs it)")
    npairs = 100000 if args.quick else 1000000
    loop = {}
    for mode in ("one", "hundred"):
        loop[mode] = count_ir(ctx, "", "none-" + mode, 64, npairs) / npairs
        note("the loop alone (%s): %.2f instructions per pair" % (mode, loop[mode]))
    rows = []
    prog = Progress(len(allocs) * 2 * len(INS_SIZES))
    for a, (lib, _env) in allocs.items():
        for mode in ("one", "hundred"):
            for size in INS_SIZES:
                ir = count_ir(ctx, lib, mode, size, npairs)
                rows.append({"allocator": a, "mode": mode, "size": size, "pairs": npairs, "ir": ir,
                             "ir_per_pair": ir / npairs, "loop_per_pair": loop[mode],
                             "net_per_pair": ir / npairs - loop[mode]})
                prog.line("%-9s %-8s %6d B  %.1f instructions per pair" % (a, mode, size, ir / npairs))
    write_csv(os.path.join(ctx["out"], "instructions.csv"), rows,
              ["allocator", "mode", "size", "pairs", "ir", "ir_per_pair", "loop_per_pair", "net_per_pair"])
    with open(os.path.join(ctx["out"], "instructions.md"), "w") as f:
        f.write(instructions_report(ctx, rows, loop, list(allocs)))
    note("wrote %s/instructions.md and instructions.csv" % ctx["out"])
    return 0


def instructions_report(ctx, rows, loop, allocs):
    val = {(r["allocator"], r["mode"], r["size"]): r["ir_per_pair"] for r in rows}
    best_peers = [a for a in allocs if a in ("jemalloc", "mimalloc", "tcmalloc")]
    has_seg = "segshim" in allocs and best_peers
    out = []
    p = out.append
    p("# Instructions per malloc+free pair\n")
    p("Counted with `valgrind --tool=callgrind --toggle-collect='pairs_loop_*'` on "
      "`tests/bench/pairs.c` (%d pairs after a warm-up), each allocator preloaded. Figures include "
      "the loop itself; the loop alone (the same code with the calls replaced by an opaque pointer) "
      "costs %.1f (one live) and %.1f (100 live) instructions per pair. Callgrind counts "
      "instructions, not time, so the figures do not drift on a noisy machine.\n" % (
          rows[0]["pairs"] if rows else 0, loop["one"], loop["hundred"]))
    p(provenance(ctx))
    p("```")
    out.extend(ctx["machine"])
    p("```\n")
    same = []
    for mode, title in (("one", "One block live (malloc, free)"),
                        ("hundred", "100 blocks live (100 mallocs, then 100 frees)")):
        p("## %s\n" % title)
        p(provenance(ctx))
        cols = allocs + (["best peer", "segshim − best"] if has_seg else [])
        p("| size | " + " | ".join(cols) + " |")
        p("| ---: | " + " | ".join("---:" for _ in cols) + " |")
        for s in INS_SIZES:
            cells = ["%.1f" % val[(a, mode, s)] for a in allocs]
            if has_seg:
                bp = min(best_peers, key=lambda a: val[(a, mode, s)])
                d = val[("segshim", mode, s)] - val[(bp, mode, s)]
                cells.append("%.1f (%s)" % (val[(bp, mode, s)], bp))
                cells.append("**%+.1f**" % d if d >= 0 else "%+.1f" % d)
            p("| %d | %s |" % (s, " | ".join(cells)))
            vs = [val[(a, mode, s)] for a in allocs if a in PEERS]
            if len(set(vs)) < len(vs):
                same.append("%s/%d" % (mode, s))
        p("")
    if has_seg:
        p("`segshim − best` is negative where segshim is below the best of jemalloc, mimalloc and "
          "tcmalloc (the target in docs/design.md); bold where it is not.\n")
    if same:
        p("Warning: some peers have identical counts (%s): check that valgrind did not replace "
          "malloc.\n" % ", ".join(same))
    return "\n".join(out) + "\n"


# ---- --scaling ---------------------------------------------------------------------

def futex_calls(ctx, cmd, lib, env, timeout):
    """The futex system calls of one run, counted by strace -f -c."""
    trace = os.path.join(ctx["scratch"], "strace.txt")
    strace = ["strace", "-f", "-c", "-e", "trace=futex", "-o", trace]
    if lib:
        strace += ["-E", "LD_PRELOAD=" + lib]  # into the program, not into strace
    log = os.path.join(ctx["scratch"], "strace-run.out")
    m = run_measured(ctx, strace + cmd, "", env, log, timeout)
    if not m["ok"]:
        return None
    calls = 0
    with open(trace) as f:
        for line in f:
            fields = line.split()
            if fields and fields[-1] == "futex":
                calls = int(fields[3])
    return calls


def run_scaling(ctx, args, allocs):
    if shutil.which("strace") is None:
        sys.exit("bench.py: strace is needed for --scaling (scripts/bench.sh installs it)")
    selected = [w for w in SCALING if not args.only or w.name in args.only]
    names = list(allocs)
    runs = []
    for rep in range(1, ctx["reps"] + 1):
        for w in selected:
            for t in args.threads:
                for i in range(len(names)):
                    runs.append((rep, w, t, names[(i + rep - 1) % len(names)]))
    total = len(runs) + len(selected) * len(args.threads) * len(names)
    note("%d runs: %d workloads x %d thread counts x %d allocators x %d repetitions, then one strace "
         "run each for the futex count -> %s" % (total, len(selected), len(args.threads), len(names),
                                                 ctx["reps"], ctx["out"]))
    prog, rows = Progress(total), []
    timeout = 60 if args.quick else 600
    for rep, w, t, a in runs:
        lib, env = allocs[a]
        cmd = [x.replace("{t}", str(t)) for x in (w.quick if args.quick else w.full)]
        m = run_measured(ctx, [os.path.join(ctx["bin"], cmd[0])] + cmd[1:], lib, env,
                         os.path.join(ctx["scratch"], "run.out"), timeout)
        m.update(workload=w.name, allocator=a, threads=t, rep=rep)
        m["mops_s"] = float(m.get("ops", 0)) / m["wall_s"] / 1e6 if m["ok"] and m["wall_s"] > 0 else ""
        rows.append(m)
        prog.line("rep %d  %-13s %2d threads  %-9s wall %6.2f s  cpu %6.2f s%s" % (
            rep, w.name, t, a, m["wall_s"], m["cpu_s"], "" if m["ok"] else "  FAILED (status %s)" % m["status"]))
    futex = {}
    for w in selected:
        for t in args.threads:
            for a in names:
                lib, env = allocs[a]
                cmd = [x.replace("{t}", str(t)) for x in (w.quick if args.quick else w.full)]
                futex[(w.name, t, a)] = futex_calls(ctx, [os.path.join(ctx["bin"], cmd[0])] + cmd[1:], lib, env,
                                                    timeout)
                prog.line("strace %-13s %2d threads  %-9s futex calls %s" % (w.name, t, a, futex[(w.name, t, a)]))
    for r in rows:
        r["futex_calls"] = futex.get((r["workload"], r["threads"], r["allocator"]))
    write_csv(os.path.join(ctx["out"], "scaling.csv"), rows,
              ["workload", "allocator", "threads", "rep", "wall_s", "user_s", "sys_s", "cpu_s", "maxrss_kb",
               "status", "checksum", "ops", "mops_s", "futex_calls"])
    text, bad = scaling_report(ctx, rows, selected, args.threads, names)
    with open(os.path.join(ctx["out"], "scaling.md"), "w") as f:
        f.write(text)
    scaling_plot(ctx, rows, selected, args.threads, names)
    note("done in %s: %s/scaling.md, scaling.csv and scaling.png" % (elapsed(prog.start), ctx["out"]))
    return 1 if bad else 0


def scaling_report(ctx, rows, selected, threads, names):
    out = []
    p = out.append
    p("# Scaling: throughput, CPU time and futex calls by thread count\n")
    p("Workloads that churn segments and free across threads, at each thread count under each "
      "allocator (interleaved, medians over the repetitions). Throughput is million malloc+free "
      "pairs per second of wall time; CPU is user+sys seconds; futex is the number of futex system "
      "calls in a separate run of the same command under `strace -f -c -e trace=futex` (threads "
      "sleeping on a lock or a condition variable). The total work is the same at every thread count; "
      "this machine has %d CPUs, so beyond that, threads only add contention.\n" % (os.cpu_count() or 0))
    p(provenance(ctx))
    p("```")
    out.extend(ctx["machine"])
    p("```\n")
    by = defaultdict(list)
    for r in rows:
        by[(r["workload"], r["threads"], r["allocator"])].append(r)
    bad = False
    for w in selected:
        p("## %s\n" % w.name)
        p("%s: `%s`.\n" % (w.note, " ".join(w.quick if ctx["quick"] else w.full)))
        p(provenance(ctx))
        p("| threads | " + " | ".join("%s Mops/s · CPU s · futex" % a for a in names) + " |")
        p("| ---: | " + " | ".join("---:" for _ in names) + " |")
        for t in threads:
            cells = []
            for a in names:
                rs = [r for r in by[(w.name, t, a)] if r["ok"]]
                if len(rs) < len(by[(w.name, t, a)]):
                    bad = True
                if not rs:
                    cells.append("FAILED")
                    continue
                f = by[(w.name, t, a)][0]["futex_calls"]
                cells.append("%.2f · %s · %s" % (median([r["mops_s"] for r in rs]),
                                                 fmt_time(median([r["cpu_s"] for r in rs])),
                                                 "–" if f is None else f))
            p("| %d | %s |" % (t, " | ".join(cells)))
        # the checksum depends on the thread count, not on the allocator
        mixed = [t for t in threads if len(set(r["checksum"] for a in names for r in by[(w.name, t, a)]
                                               if r["ok"])) > 1]
        if mixed:
            bad = True
            p("\n**CHECKSUM MISMATCH** between allocators at %s threads." % ", ".join(map(str, mixed)))
        else:
            p("\nChecksums equal under every allocator at each thread count.")
        p("")
    tmax = max(threads)
    if "segshim" in names:
        p("## segshim at %d threads against the target\n" % tmax)
        p("Target (issue 10, docs/design.md): at most 100 futex calls in each workload, with CPU time no "
          "worse than jemalloc's.\n")
        p(provenance(ctx))
        p("| workload | segshim futex | segshim CPU s | jemalloc CPU s | met |")
        p("| --- | ---: | ---: | ---: | --- |")
        for w in selected:
            seg = [r for r in by[(w.name, tmax, "segshim")] if r["ok"]]
            jem = [r for r in by[(w.name, tmax, "jemalloc")] if r["ok"]]
            if not seg:
                continue
            f = seg[0]["futex_calls"]
            sc = median([r["cpu_s"] for r in seg])
            jc = median([r["cpu_s"] for r in jem]) if jem else None
            met = f is not None and f <= 100 and (jc is None or sc <= jc)
            p("| %s | %s | %s | %s | %s |" % (w.name, "–" if f is None else f, fmt_time(sc),
                                             fmt_time(jc) if jc is not None else "–", "yes" if met else "**no**"))
        p("")
    return "\n".join(out) + "\n", bad


def scaling_plot(ctx, rows, selected, threads, names):
    """scaling.dat: one block per workload (threads, then the median
    throughput of each allocator); scripts/plot-scaling.gnuplot draws it."""
    out = ctx["out"]
    by = defaultdict(list)
    for r in rows:
        if r["ok"]:
            by[(r["workload"], r["threads"], r["allocator"])].append(r["mops_s"])
    lo, hi = float("inf"), 0.0
    with open(os.path.join(out, "scaling.dat"), "w") as f:
        for w in selected:
            f.write("# %s\nthreads %s\n" % (w.name, " ".join(names)))
            for t in threads:
                vals = [median(by[(w.name, t, a)]) for a in names]
                for v in vals:
                    if v:
                        lo, hi = min(lo, v), max(hi, v)
                f.write("%d %s\n" % (t, " ".join("%.6g" % v if v else "NaN" for v in vals)))
            f.write("\n\n")
    with open(os.path.join(out, "scaling-vars.gp"), "w") as f:
        f.write('workloads = "%s"\nnworkloads = %d\nnallocs = %d\n' % (
            " ".join(w.name for w in selected), len(selected), len(names)))
        f.write('colors = "%s"\n' % " ".join(COLORS.get(a, "black") for a in names))
        f.write("y_min = %g\ny_max = %g\n" % log_range(lo, hi))
    gnuplot(ctx, "plot-scaling.gnuplot")


# ---- main ----------------------------------------------------------------------------

def list_workloads():
    print("default mode:")
    for w in WORKLOADS:
        print("  %-14s %-8s %-34s %s" % (w.name, w.kind, " ".join(w.full), w.note))
    print("--scaling ({t} = threads):")
    for w in SCALING:
        print("  %-14s %-44s %s" % (w.name, " ".join(w.full), w.note))


def main(argv):
    args = parse_args(argv)
    if args.validate:
        return 0
    if args.list:
        list_workloads()
        return 0
    bench_dir = os.path.join(os.path.abspath(args.build), "tests", "bench")
    if not os.path.exists(os.path.join(bench_dir, "bench_runner")):
        sys.exit("bench.py: no workloads in %s: run scripts/bench.sh, which builds them" % bench_dir)
    allocs = allocators(args, bench_dir)
    if args.out:
        out = args.out
    elif args.quick:
        out = tempfile.mkdtemp(prefix="segshim-bench-quick.")
    else:
        out = os.path.join(ROOT, "results")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segshim-bench.") as scratch:
        ctx = {"bin": bench_dir, "out": os.path.abspath(out), "scratch": scratch, "reps": args.reps, "quick": args.quick,
               "commit": commit_id(), "command": command_line(argv),
               "machine": machine_lines(allocs, argv)}
        if args.instructions:
            return run_instructions(ctx, args, allocs)
        if args.scaling:
            return run_scaling(ctx, args, allocs)
        return run_bench(ctx, args, allocs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
