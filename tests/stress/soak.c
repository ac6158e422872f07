/*
 * soak.c - a bounded soak: every pool entry point at once, with fork and
 * thread churn, while RSS is watched.
 *
 * usage: soak [seconds [threads]]     (default 120 s, 4 threads)
 *
 * Running together until the time is up:
 *   - workers: random malloc/calloc/aligned_alloc/realloc/free of sizes up to
 *     one segment with pattern checks, usable_size and owns checks, blocks
 *     handed to other threads through an exchange of atomic slots, whole
 *     segments requested and recycled, a shared bounded local pool (request
 *     and request with timeout), private local pools created and destroyed
 *     with segments still out, segpool_collect and segpool_stats_get; every
 *     so often a worker frees everything it holds (a phase change);
 *   - a churn thread starting short-lived threads that allocate, publish
 *     some blocks to the exchange and exit;
 *   - the main thread forking children that allocate, free and exit 0, and
 *     sampling VmRSS against the bytes the test holds live.
 * Checks: no block is ever corrupted; every child exits 0; RSS stays under
 * 2 x the peak live bytes + 64 MiB over the start; at the end every segment
 * is back and, once SEGSHIM_DECAY_MS has passed, the arena's resident memory
 * has been given back.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>

#include "stress_common.h"

#define SLOTS 4096

/* GCC's AddressSanitizer allocator is not fork-safe: a child can hang on an
 * allocator lock another parent thread held at fork (seen here: 2 children
 * in 200).  Under ASan the child leaves libc malloc (and pthread_create,
 * which allocates through it) alone; the pool is still exercised fully. */
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_USES_LIBC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHILD_USES_LIBC 0
#endif
#endif
#ifndef CHILD_USES_LIBC
#define CHILD_USES_LIBC 1
#endif

/* Sanitizer shadow memory makes RSS meaningless: the bound is only printed. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SOAK_CHECK_RSS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SOAK_CHECK_RSS 0
#endif
#endif
#ifndef SOAK_CHECK_RSS
#define SOAK_CHECK_RSS 1
#endif
#define EXCHANGE 256
#define LIVE_CAP ((size_t)24 << 20) /* per worker */

static size_t segment_size;
static atomic_int stop;
static atomic_llong live_bytes;      /* pool and libc blocks the test holds */
static _Atomic(stress_block_t *) exchange[EXCHANGE];
static segpool_local_t *shared_local;
static atomic_ullong ops_total, segments_total, local_total, local_timeouts, private_pools, churned, exchanged;

static stress_block_t *record_new(uint64_t *rng, uint64_t serial) {
    stress_block_t *b = malloc(sizeof *b);
    STRESS_CHECK(b != NULL, "out of memory");
    size_t size = stress_size(rng, segment_size);
    b->p = segpool_malloc(size);
    b->libc = 0;
    if (!b->p) {
        segpool_note_fallback(SEGPOOL_FALLBACK_EXHAUSTED, size);
        b->p = malloc(size);
        STRESS_CHECK(b->p != NULL, "libc malloc");
        b->libc = 1;
    }
    b->size = size;
    b->seed = (uintptr_t)b->p;
    b->serial = serial;
    stress_fill(b->p, size, b->seed, b->serial);
    atomic_fetch_add(&live_bytes, (long long)size);
    return b;
}

static void record_delete(stress_block_t *b, const char *where) {
    stress_check_block(b, where);
    atomic_fetch_sub(&live_bytes, (long long)b->size);
    stress_release(b);
    free(b);
}

/* Put b in a random exchange slot; free whatever was there. */
static void exchange_swap(uint64_t *rng, stress_block_t *b) {
    stress_block_t *old = atomic_exchange(&exchange[stress_rand(rng) % EXCHANGE], b);
    if (old) {
        record_delete(old, "exchange");
        atomic_fetch_add(&exchanged, 1);
    }
}

/* ---- Workers ------------------------------------------------------------------- */

typedef struct worker_s {
    pthread_t thread;
    unsigned id;
    uint64_t rng;
    stress_block_t slots[SLOTS];
    size_t live;
    void *segments[8];
    void *local_held[4];
} worker_t;

static void worker_alloc(worker_t *w, stress_block_t *b) {
    size_t size = stress_size(&w->rng, segment_size);
    size_t align = 16;
    int zero = 0;
    void *p;
    switch (stress_rand(&w->rng) % 4) {
    case 0:
        p = segpool_malloc(size);
        break;
    case 1:
        p = segpool_calloc(1, size);
        zero = 1;
        break;
    case 2:
        align = (size_t)1 << (4 + stress_rand(&w->rng) % 9);
        p = segpool_aligned_alloc(align, size);
        break;
    default:
        p = segpool_realloc(NULL, size);
        break;
    }
    b->libc = 0;
    if (!p) {
        segpool_note_fallback(align > 16 ? SEGPOOL_FALLBACK_ALIGNED : SEGPOOL_FALLBACK_EXHAUSTED, size);
        STRESS_CHECK(posix_memalign(&p, align, size) == 0, "libc posix_memalign");
        if (zero) memset(p, 0, size);
        b->libc = 1;
    } else {
        STRESS_CHECK(segpool_owns(p), "pool block %p not owned", p);
        STRESS_CHECK(segpool_usable_size(p) >= size, "usable %zu < %zu", segpool_usable_size(p), size);
    }
    STRESS_CHECK(((uintptr_t)p & (align - 1)) == 0, "%p not aligned to %zu", p, align);
    if (zero)
        for (size_t i = 0; i < size; i += 13) STRESS_CHECK(((uint8_t *)p)[i] == 0, "calloc byte %zu", i);
    b->p = p;
    b->size = size;
    b->seed = (uintptr_t)p;
    b->serial = ((uint64_t)w->id << 48) | (w->rng & 0xffffffff);
    stress_fill(p, size, b->seed, b->serial);
    w->live += size;
    atomic_fetch_add(&live_bytes, (long long)size);
}

static void worker_free(worker_t *w, stress_block_t *b) {
    stress_check_block(b, "worker free");
    w->live -= b->size;
    atomic_fetch_sub(&live_bytes, (long long)b->size);
    stress_release(b);
}

static void worker_realloc(worker_t *w, stress_block_t *b) {
    stress_check_block(b, "worker realloc");
    size_t size = stress_size(&w->rng, segment_size);
    size_t keep = size < b->size ? size : b->size;
    void *q = b->libc ? realloc(b->p, size) : segpool_realloc(b->p, size);
    if (!q) {
        STRESS_CHECK(!b->libc, "libc realloc failed");
        segpool_note_fallback(SEGPOOL_FALLBACK_EXHAUSTED, size);
        q = malloc(size);
        STRESS_CHECK(q != NULL, "libc malloc");
        memcpy(q, b->p, keep);
        segpool_free(b->p);
        b->libc = 1;
    }
    long off = stress_verify(q, keep, b->seed, b->serial);
    if (off >= 0) STRESS_FAIL("realloc %zu -> %zu lost data at %ld", b->size, size, off);
    w->live += size - b->size;
    atomic_fetch_add(&live_bytes, (long long)size - (long long)b->size);
    b->p = q;
    b->size = size;
    b->seed = (uintptr_t)q;
    stress_fill(q, size, b->seed, b->serial);
}

/* Whole segments, the shared local pool and a private one. */
static void worker_segments(worker_t *w) {
    unsigned i = (unsigned)(stress_rand(&w->rng) % 8);
    if (w->segments[i]) {
        STRESS_CHECK(*(uint64_t *)w->segments[i] == (uintptr_t)w->segments[i], "segment %p overwritten",
                     w->segments[i]);
        segpool_segment_recycle(w->segments[i]);
        w->segments[i] = NULL;
    } else if ((w->segments[i] = segpool_segment_request()) != NULL) {
        STRESS_CHECK(((uintptr_t)w->segments[i] & (segment_size - 1)) == 0, "segment misaligned");
        memset(w->segments[i], 0x77, segment_size);
        *(uint64_t *)w->segments[i] = (uintptr_t)w->segments[i];
        atomic_fetch_add(&segments_total, 1);
    }
    unsigned j = (unsigned)(stress_rand(&w->rng) % 4);
    if (w->local_held[j]) {
        STRESS_CHECK(*(uint64_t *)w->local_held[j] == (uintptr_t)w->local_held[j] + 1, "local segment overwritten");
        segpool_local_recycle(shared_local, w->local_held[j]);
        w->local_held[j] = NULL;
    } else {
        errno = 0;
        void *s = stress_rand(&w->rng) % 2 ? segpool_local_request(shared_local)
                                           : segpool_local_request_timeout(shared_local, 2);
        if (s) {
            memset(s, 0x33, segment_size);
            *(uint64_t *)s = (uintptr_t)s + 1;
            w->local_held[j] = s;
            atomic_fetch_add(&local_total, 1);
        } else {
            atomic_fetch_add(&local_timeouts, 1);
        }
    }
    if (stress_rand(&w->rng) % 64 == 0) {
        segpool_local_t *lp = segpool_local_create(1, 3);
        if (lp) {
            void *a = segpool_local_request(lp), *b = segpool_local_request(lp);
            if (a) memset(a, 1, segment_size);
            if (b) memset(b, 2, segment_size);
            STRESS_CHECK(segpool_local_in_use(lp) == (size_t)(a != NULL) + (b != NULL), "local in use");
            if (a) segpool_local_recycle(lp, a);
            segpool_local_destroy(lp); /* b still out: destroy takes it back */
            atomic_fetch_add(&private_pools, 1);
        }
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    double next_phase = stress_now() + 5 + (double)(stress_rand(&w->rng) % 10);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int n = 0; n < 256; n++) {
            stress_block_t *b = &w->slots[stress_rand(&w->rng) % SLOTS];
            unsigned r = (unsigned)(stress_rand(&w->rng) % 16);
            if (!b->p) {
                if (w->live < LIVE_CAP) worker_alloc(w, b);
            } else if (r < 3) {
                worker_realloc(w, b);
            } else if (r < 5) {
                /* Hand it over: a record in the exchange, freed by whoever
                 * swaps it out. */
                stress_block_t *rec = malloc(sizeof *rec);
                STRESS_CHECK(rec != NULL, "out of memory");
                *rec = *b;
                w->live -= b->size;
                b->p = NULL;
                exchange_swap(&w->rng, rec);
            } else {
                worker_free(w, b);
            }
        }
        worker_segments(w);
        atomic_fetch_add_explicit(&ops_total, 257, memory_order_relaxed);
        unsigned r = (unsigned)(stress_rand(&w->rng) % 256);
        if (r == 0) segpool_collect();
        if (r == 1) {
            segpool_stats_t st;
            segpool_stats_get(&st);
            STRESS_CHECK(st.segments_in_use <= st.capacity, "in use %zu > capacity", st.segments_in_use);
        }
        if (stress_now() >= next_phase) {
            for (unsigned i = 0; i < SLOTS; i++)
                if (w->slots[i].p) worker_free(w, &w->slots[i]);
            segpool_collect();
            next_phase = stress_now() + 5 + (double)(stress_rand(&w->rng) % 10);
        }
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (w->slots[i].p) worker_free(w, &w->slots[i]);
    for (unsigned i = 0; i < 8; i++)
        if (w->segments[i]) segpool_segment_recycle(w->segments[i]);
    for (unsigned i = 0; i < 4; i++)
        if (w->local_held[i]) segpool_local_recycle(shared_local, w->local_held[i]);
    return NULL;
}

/* ---- Thread churn ----------------------------------------------------------------- */

static void *short_main(void *arg) {
    uint64_t rng = stress_seed((uint64_t)(uintptr_t)arg);
    stress_block_t *mine[64];
    for (unsigned i = 0; i < 64; i++) mine[i] = record_new(&rng, i);
    for (unsigned i = 0; i < 64; i++) {
        if (i % 3 == 0) exchange_swap(&rng, mine[i]); /* freed later, often after this thread exits */
        else record_delete(mine[i], "short-lived thread");
    }
    return NULL;
}

static void *churn_main(void *arg) {
    (void)arg;
    uint64_t n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        pthread_t t[4];
        for (unsigned i = 0; i < 4; i++)
            STRESS_CHECK(pthread_create(&t[i], NULL, short_main, (void *)(uintptr_t)(++n)) == 0, "pthread_create");
        for (unsigned i = 0; i < 4; i++) pthread_join(t[i], NULL);
        atomic_fetch_add(&churned, 4);
        usleep(20 * 1000);
    }
    return NULL;
}

/* ---- Fork --------------------------------------------------------------------------- */

static int child_main(void) {
    alarm(20);
    uint64_t rng = stress_seed((uint64_t)getpid());
    for (int i = 0; i < 500; i++) {
        size_t size = stress_size(&rng, segment_size);
        void *p = segpool_malloc(size);
        int libc = p == NULL; /* a small pool may be exhausted: fall back */
        if (libc && (!CHILD_USES_LIBC || (p = malloc(size)) == NULL)) return 3;
        stress_fill(p, size, (uintptr_t)p, (uint64_t)i);
        if (stress_verify(p, size, (uintptr_t)p, (uint64_t)i) >= 0) return 4;
        if (libc) free(p);
        else segpool_free(p);
        if (CHILD_USES_LIBC) {
            void *m = malloc(size);
            if (!m) return 5;
            free(m);
        }
    }
    /* A block of the exchange (any thread's heap, an orphan here). */
    stress_block_t *b = atomic_exchange(&exchange[stress_rand(&rng) % EXCHANGE], NULL);
    if (b) {
        if (stress_verify(b->p, b->size, b->seed, b->serial) >= 0) return 6;
        stress_release(b);
    }
    void *seg = segpool_segment_request();
    if (seg) segpool_segment_recycle(seg);
    return 0;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 120.0;
    unsigned nthreads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    if (seconds <= 0 || nthreads == 0 || nthreads > 64) {
        fprintf(stderr, "usage: %s [seconds [threads]]\n", argv[0]);
        return 2;
    }
    segment_size = segpool_segment_size();
    STRESS_CHECK(segment_size != 0, "the pool did not come up");
    shared_local = segpool_local_create(4, 4 * nthreads);
    STRESS_CHECK(shared_local != NULL, "segpool_local_create");
    size_t rss_start = stress_rss();

    worker_t *w = calloc(nthreads, sizeof *w);
    STRESS_CHECK(w != NULL, "out of memory");
    for (unsigned i = 0; i < nthreads; i++) {
        w[i].id = i;
        w[i].rng = stress_seed(i + 500);
        STRESS_CHECK(pthread_create(&w[i].thread, NULL, worker_main, &w[i]) == 0, "pthread_create");
    }
    pthread_t churn;
    STRESS_CHECK(pthread_create(&churn, NULL, churn_main, NULL) == 0, "pthread_create");

    double t0 = stress_now(), end = t0 + seconds, next_fork = t0 + 0.5, next_report = t0 + 10;
    long long live_peak = 0;
    size_t rss_peak = 0;
    unsigned forks = 0, failed = 0;
    while (stress_now() < end) {
        usleep(100 * 1000);
        long long live = atomic_load(&live_bytes);
        if (live > live_peak) live_peak = live;
        size_t rss = stress_rss();
        if (rss > rss_peak) rss_peak = rss;
        size_t bound = rss_start + 2 * (size_t)live_peak + ((size_t)64 << 20);
        if (SOAK_CHECK_RSS && rss > bound)
            STRESS_FAIL("RSS %zu MiB above the bound %zu MiB (start %zu MiB, live now %lld MiB, peak %lld MiB)",
                        rss >> 20, bound >> 20, rss_start >> 20, live >> 20, live_peak >> 20);
        if (stress_now() >= next_fork) {
            pid_t pid = fork();
            STRESS_CHECK(pid >= 0, "fork");
            if (pid == 0) _exit(child_main());
            int status;
            STRESS_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
            forks++;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                failed++;
                fprintf(stderr, "soak: child %u: %s %d\n", forks, WIFEXITED(status) ? "exit" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            }
            next_fork = stress_now() + 0.5;
        }
        if (stress_now() >= next_report) {
            fprintf(stderr, "soak: %.0f s: rss %zu MiB, live %lld MiB (peak %lld), ops %llu, %u forks, %llu threads\n",
                    stress_now() - t0, rss >> 20, live >> 20, live_peak >> 20, (unsigned long long)ops_total, forks,
                    (unsigned long long)churned);
            next_report += 10;
        }
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < nthreads; i++) pthread_join(w[i].thread, NULL);
    pthread_join(churn, NULL);
    for (unsigned i = 0; i < EXCHANGE; i++) {
        stress_block_t *b = atomic_exchange(&exchange[i], NULL);
        if (b) record_delete(b, "exchange at the end");
    }
    STRESS_CHECK(segpool_local_in_use(shared_local) == 0, "shared local pool still has %zu out",
                 segpool_local_in_use(shared_local));
    segpool_local_destroy(shared_local);
    segpool_collect();
    STRESS_CHECK(atomic_load(&live_bytes) == 0, "the test lost track of %lld live bytes", atomic_load(&live_bytes));

    segpool_stats_t st;
    segpool_stats_get(&st);
    stress_print_stats("soak", &st);
    fprintf(stderr,
            "soak: %.0f s, %u workers, %llu ops, %llu whole segments, %llu local (%llu refused), %llu private pools, "
            "%llu short threads, %llu exchanged, %u forks (%u failed); rss start %zu MiB peak %zu MiB, live peak "
            "%lld MiB\n",
            seconds, nthreads, (unsigned long long)ops_total, (unsigned long long)segments_total,
            (unsigned long long)local_total, (unsigned long long)local_timeouts, (unsigned long long)private_pools,
            (unsigned long long)churned, (unsigned long long)exchanged, forks, failed, rss_start >> 20, rss_peak >> 20,
            live_peak >> 20);
    STRESS_CHECK(failed == 0, "%u of %u children failed", failed, forks);
    stress_check_quiet_stats(&st, 0);
    STRESS_CHECK(st.segments_user == 0, "segments_user %zu", st.segments_user);

    /* Memory given back: wait for the decay, then the arena's RSS is small. */
    const char *decay = getenv("SEGSHIM_DECAY_MS");
    long decay_ms = decay ? atol(decay) : 1000;
    if (decay_ms >= 0) {
        usleep((useconds_t)(decay_ms + 1000) * 1000);
        segpool_collect();
        segpool_stats_get(&st);
        fprintf(stderr, "soak: after the decay: regions committed %zu, arena rss %zu KiB, process rss %zu MiB\n",
                st.regions_committed, st.arena_rss >> 10, stress_rss() >> 20);
        STRESS_CHECK(st.regions_committed == 0, "%zu regions still committed with nothing live",
                     st.regions_committed);
        STRESS_CHECK(!SOAK_CHECK_RSS || st.arena_rss <= ((size_t)4 << 20), "arena rss %zu KiB with nothing live", st.arena_rss >> 10);
    }
    free(w);
    fprintf(stderr, "soak: OK\n");
    return 0;
}
