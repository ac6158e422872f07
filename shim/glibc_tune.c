/*
 * glibc_tune.c - glibc's own malloc knobs, set by the shim for the blocks it
 * hands to glibc, and the rule for when malloc_trim reaches glibc.
 *
 * Under the shim, glibc serves only requests above one segment (and the few
 * calls made before the pool is ready), so its defaults, tuned for a heap of
 * mostly small blocks, misjudge it:
 *
 *   M_MMAP_THRESHOLD 32 MiB (4 MiB x sizeof(long), glibc's own ceiling for
 *       its dynamic threshold).  glibc starts at 128 KiB and raises the
 *       threshold to the size of each mmapped block freed; until it has
 *       climbed, every large block is a fresh mmap whose every page faults
 *       and is zeroed, then munmapped.  Measured on tests/bench/large.c,
 *       mmap for blocks of 128 KiB-4 MiB costs 5-10x the CPU time of serving
 *       them from glibc's heap, where freed memory is reused as it is.
 *   M_TRIM_THRESHOLD 64 MiB (twice the above, as glibc's dynamic rule pairs
 *       them).  Setting the mmap threshold turns glibc's dynamic rule off, and
 *       with it the raised trim threshold: the default 128 KiB would give the
 *       top of the heap back at nearly every free of a large block and fault
 *       it in again at the next allocation.  Memory is still given back by
 *       malloc_trim, and the peak resident set does not change (large.c).
 *
 * Each is set only when the user has not set it, by glibc's environment
 * (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) or by GLIBC_TUNABLES
 * (glibc.malloc.mmap_threshold, glibc.malloc.trim_threshold): glibc has read
 * those by the time mallopt returns, and they win.  A program's own mallopt
 * calls come later and win too.
 *
 * malloc_trim: glibc's trim walks every free chunk of every arena and
 * madvises each one, whether or not it was already given back, so a program
 * that trims often (stress-ng's malloc stressor: one call in eight) pays for
 * it over and over.  Anything glibc can newly give back was freed to it since
 * its last trim, so the shim counts the bytes it frees to glibc and calls
 * glibc's trim only once they reach GLIBC_TUNE_TRIM_WORTH and a
 * GLIBC_TUNE_TRIM_SHARE of the bytes the shim's glibc blocks hold: a trim
 * costs in proportion to glibc's heap, so trimming once per fixed share of it
 * freed keeps the cost per freed byte bounded however large the heap grows.
 *
 * Under a memory limit (a finite RLIMIT_DATA or RLIMIT_AS) glibc keeps its
 * defaults: its brk heap counts against both limits, and with the raised
 * thresholds the large blocks a program frees stay in it as holes that a
 * larger block cannot use (python3 growing a dict of 200,000 entries needed
 * 47.8 MB of RLIMIT_DATA with them, 43.0 MB without, 39.9 MB without the
 * shim).  A limit set after the knobs were raised puts the defaults back
 * the first time glibc fails a request (glibc_tune_limit_reached).
 *
 * M_ARENA_MAX is left alone: with the trim so gated, limiting glibc to one or
 * two arenas changed neither trim.c nor large.c with 2 threads beyond the
 * noise, and glibc's per-thread arenas keep threads that allocate large
 * blocks apart.  M_TOP_PAD too: a 4-16 MiB pad gained nothing measurable on
 * large.c once the trim threshold is raised.
 */
#define _GNU_SOURCE
#include "glibc_tune.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fallback.h"
#include "pool.h"

/* Below this much freed to glibc since its last trim, a trim is skipped: at
 * most two of the pool's 2 MiB regions' worth stays with glibc.  Measured on
 * tests/bench/trim.c (4 threads, CPU seconds / peak RSS): trimming at every
 * call 3.0 s / 122 MB, from 1 MiB 0.8 s / 123 MB, from 4 MiB 0.4 s / 125 MB,
 * from 16 MiB 0.3 s / 128 MB, never 0.2 s / 134 MB; glibc alone 3.6 s / 95 MB
 * (the difference in RSS is the pool's, not glibc's). */
#define GLIBC_TUNE_TRIM_WORTH ((size_t)4 << 20)
/* ... and at least half of the bytes glibc holds for the shim.  stress-ng
 * --malloc 1 --malloc-ops 60000 (half its blocks above one segment, about
 * 80 MB of them live): 0.52 s of CPU with the fixed 4 MiB alone, 0.28 s with
 * trims that rare (jemalloc 0.26 s); its peak RSS did not change (170 MB). */
#define GLIBC_TUNE_TRIM_SHARE 2
/* A program that trims again and again (stress-ng: one call in eight) while
 * its heap keeps its size gets nothing from glibc's trim: what it gives back
 * is faulted in again within a few calls.  So after a trim, the calls that
 * follow also sample what glibc holds for the shim, and the next trim is
 * due only once that fell to 1/GLIBC_TUNE_TRIM_SHRINK of the most sampled
 * since: the heap shrank.  The first call after a trim (a program that
 * trims once after freeing a burst) goes by the rules above alone.
 * tests/bench/trim.c, 4 threads: 19 glibc trims of 5,000 calls took 0.56 s
 * of wall time against 0.22 s with none, and the same peak RSS (110 MB). */
#define GLIBC_TUNE_TRIM_SHRINK 2

typedef struct glibc_tune_knob_s {
    int param;           /* mallopt's M_ name */
    const char *env;     /* glibc's environment variable */
    const char *tunable; /* its GLIBC_TUNABLES name */
    size_t value;        /* the shim's */
    size_t glibc_value;  /* glibc's default (its start, for the dynamic mmap threshold) */
} glibc_tune_knob_t;

#define GLIBC_TUNE_KNOBS 2
static const glibc_tune_knob_t glibc_tune_knobs[GLIBC_TUNE_KNOBS] = {
    {M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold", ((size_t)4 << 20) * sizeof(long),
     (size_t)128 << 10},
    {M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold", ((size_t)8 << 20) * sizeof(long),
     (size_t)128 << 10},
};

static atomic_int glibc_tune_state; /* 0: not yet, 1: done or under way */
/* Bit i: the shim set knob i to its value (and has not put glibc's back). */
static atomic_uint glibc_tune_raised;
/* The bytes freed to glibc in all when it was last trimmed.  The counts
 * themselves are per thread (heap_note_fallback_bytes), so that no call
 * that reaches glibc writes a line all threads write; malloc_trim, which is
 * not such a call, adds them up. */
static _Atomic uint64_t glibc_tune_freed_at_trim;
/* Since glibc's last trim: the malloc_trim calls, and the most bytes glibc
 * held for the shim at any of them. */
static _Atomic uint64_t glibc_tune_calls_since_trim, glibc_tune_held_max;

/* name=... appears in GLIBC_TUNABLES as a whole name (colon separated). */
static int glibc_tune_in_tunables(const char *tunables, const char *name) {
    size_t len = strlen(name);
    for (const char *p = tunables; (p = strstr(p, name)) != NULL; p += len) {
        if ((p == tunables || p[-1] == ':') && p[len] == '=') return 1;
    }
    return 0;
}

/* The user set this knob through glibc's environment. */
static int glibc_tune_user_set(const glibc_tune_knob_t *k) {
    const char *tunables = getenv("GLIBC_TUNABLES");
    return getenv(k->env) != NULL || (tunables != NULL && glibc_tune_in_tunables(tunables, k->tunable));
}

void glibc_tune_init(void) {
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&glibc_tune_state, &expected, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return;
    if (segment_space_limited()) return;
    for (unsigned i = 0; i < GLIBC_TUNE_KNOBS; i++) {
        const glibc_tune_knob_t *k = &glibc_tune_knobs[i];
        if (!glibc_tune_user_set(k) && mallopt(k->param, (int)k->value) == 1)
            atomic_fetch_or_explicit(&glibc_tune_raised, 1u << i, memory_order_relaxed);
    }
}

int glibc_tune_ready(void) { return atomic_load_explicit(&glibc_tune_state, memory_order_relaxed) != 0; }

int glibc_tune_limit_reached(void) {
    unsigned raised = atomic_exchange_explicit(&glibc_tune_raised, 0, memory_order_relaxed);
    for (unsigned i = 0; i < GLIBC_TUNE_KNOBS; i++)
        if (raised & (1u << i)) mallopt(glibc_tune_knobs[i].param, (int)glibc_tune_knobs[i].glibc_value);
    return raised != 0;
}

void glibc_tune_note_freed(size_t bytes) { heap_note_fallback_bytes(0, bytes); }

void glibc_tune_note_taken(size_t bytes) { heap_note_fallback_bytes(bytes, 0); }

int glibc_tune_trim_due(void) {
    uint64_t taken, freed_total;
    heap_fallback_bytes(&taken, &freed_total);
    uint64_t at_trim = atomic_load_explicit(&glibc_tune_freed_at_trim, memory_order_relaxed);
    uint64_t freed = freed_total - at_trim;
    /* Bytes of the glibc blocks the shim holds (their chunks' sizes); a
     * block glibc handed out without the shim (libc's own calls) counts
     * only when the program frees it, so the difference may go below 0. */
    int64_t held = (int64_t)(taken - freed_total);
    uint64_t now = held > 0 ? (uint64_t)held : 0;
    uint64_t calls = atomic_fetch_add_explicit(&glibc_tune_calls_since_trim, 1, memory_order_relaxed) + 1;
    uint64_t most = atomic_load_explicit(&glibc_tune_held_max, memory_order_relaxed);
    while (now > most && !atomic_compare_exchange_weak_explicit(&glibc_tune_held_max, &most, now,
                                                                memory_order_relaxed, memory_order_relaxed)) {
    }
    if (freed < GLIBC_TUNE_TRIM_WORTH) return 0;
    if (now > 0 && freed < now / GLIBC_TUNE_TRIM_SHARE) return 0;
    if (calls > 1 && now > most / GLIBC_TUNE_TRIM_SHRINK) return 0;
    /* Two threads may both find a trim due: the second's trim finds little. */
    atomic_store_explicit(&glibc_tune_freed_at_trim, freed_total, memory_order_relaxed);
    atomic_store_explicit(&glibc_tune_calls_since_trim, 0, memory_order_relaxed);
    atomic_store_explicit(&glibc_tune_held_max, 0, memory_order_relaxed);
    return 1;
}
