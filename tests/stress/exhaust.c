/*
 * exhaust.c - a small pool under a load that wants ten times more.
 *
 * usage: exhaust [seconds [threads [live_mb_per_thread]]]   (default 3, 4, 10)
 *
 * Run with a small SEGSHIM_POOL_SIZE (4M in CTest).  Each thread keeps up to
 * live_mb of blocks of random sizes up to one segment alive, allocating,
 * resizing and freeing at random.  When the pool returns NULL the request is
 * served by libc and recorded with segpool_note_fallback(EXHAUSTED): every
 * request must be served, no block may be corrupted, and at the end the
 * statistics must count exactly the fallbacks the test made (more than zero)
 * and every pool segment must be back.  Whole segments and a local pool are
 * requested meanwhile: they must come back NULL (ETIMEDOUT for the timed
 * request) rather than block or crash when the pool is empty.
 */
#include <errno.h>
#include <pthread.h>

#include "stress_common.h"

typedef struct worker_s {
    pthread_t thread;
    unsigned id;
    size_t live_target;
    uint64_t pool_allocs, fallbacks, ops;
} worker_t;

static size_t segment_size;
static atomic_int stop;
static atomic_ullong segment_nulls, segment_gets, local_timeouts, local_gets;

static void *worker_main(void *arg) {
    worker_t *w = arg;
    uint64_t rng = stress_seed(w->id + 31);
    /* A slot is occupied 60% of the time (alloc when empty; free or resize
     * when full, two thirds of them frees), holding half a segment on average. */
    size_t nslots = w->live_target * 10 / (3 * segment_size) + 1;
    stress_block_t *slots = calloc(nslots, sizeof *slots);
    STRESS_CHECK(slots != NULL, "out of memory");
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int n = 0; n < 128; n++) {
            stress_block_t *b = &slots[stress_rand(&rng) % nslots];
            w->ops++;
            /* Sizes uniform up to one segment: the live set is about
             * nslots * segment / 2 = live_target. */
            size_t size = 1 + (size_t)(stress_rand(&rng) % segment_size);
            if (!b->p) {
                int zero = stress_rand(&rng) % 4 == 0;
                b->p = zero ? segpool_calloc(1, size) : segpool_malloc(size);
                b->libc = 0;
                if (!b->p) {
                    segpool_note_fallback(SEGPOOL_FALLBACK_EXHAUSTED, size);
                    w->fallbacks++;
                    b->p = zero ? calloc(1, size) : malloc(size);
                    STRESS_CHECK(b->p != NULL, "libc malloc(%zu)", size);
                    b->libc = 1;
                } else {
                    w->pool_allocs++;
                }
                if (zero)
                    for (size_t i = 0; i < size; i += 61)
                        STRESS_CHECK(((uint8_t *)b->p)[i] == 0, "calloc byte %zu not zero", i);
            } else if (stress_rand(&rng) % 3 == 0) {
                stress_check_block(b, "before realloc");
                size_t keep = size < b->size ? size : b->size;
                void *q;
                if (b->libc) {
                    q = realloc(b->p, size);
                    STRESS_CHECK(q != NULL, "libc realloc");
                } else {
                    q = segpool_realloc(b->p, size);
                    if (!q) {
                        stress_check_block(b, "after refused realloc");
                        segpool_note_fallback(SEGPOOL_FALLBACK_EXHAUSTED, size);
                        w->fallbacks++;
                        q = malloc(size);
                        STRESS_CHECK(q != NULL, "libc malloc");
                        memcpy(q, b->p, keep);
                        segpool_free(b->p);
                        b->libc = 1;
                    } else if (q != b->p) {
                        w->pool_allocs++;
                    }
                }
                long off = stress_verify(q, keep, b->seed, b->serial);
                if (off >= 0) STRESS_FAIL("realloc lost data at %ld", off);
                b->p = q;
            } else {
                stress_check_block(b, "before free");
                stress_release(b);
                continue;
            }
            b->size = size;
            b->seed = (uint64_t)(uintptr_t)b->p;
            b->serial = ((uint64_t)w->id << 40) | w->ops;
            stress_fill(b->p, size, b->seed, b->serial);
        }
    }
    for (size_t i = 0; i < nslots; i++)
        if (slots[i].p) {
            stress_check_block(&slots[i], "at the end");
            stress_release(&slots[i]);
        }
    free(slots);
    return NULL;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    unsigned nthreads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    size_t live_mb = argc > 3 ? (size_t)atoi(argv[3]) : 10;
    if (seconds <= 0 || nthreads == 0 || nthreads > 64 || live_mb == 0) {
        fprintf(stderr, "usage: %s [seconds [threads [live_mb_per_thread]]]\n", argv[0]);
        return 2;
    }
    segment_size = segpool_segment_size();
    STRESS_CHECK(segment_size != 0, "the pool did not come up");
    size_t pool_bytes = segpool_capacity() * segment_size;
    size_t wanted = nthreads * live_mb << 20;
    fprintf(stderr, "exhaust: pool %zu KiB, load wants %zu KiB (%.1fx)\n", pool_bytes >> 10, wanted >> 10,
            (double)wanted / (double)pool_bytes);

    worker_t w[64];
    memset(w, 0, sizeof w);
    for (unsigned i = 0; i < nthreads; i++) {
        w[i].id = i;
        w[i].live_target = live_mb << 20;
        STRESS_CHECK(pthread_create(&w[i].thread, NULL, worker_main, &w[i]) == 0, "pthread_create");
    }
    /* Meanwhile: whole segments and a local pool against an empty pool. */
    double end = stress_now() + seconds;
    while (stress_now() < end) {
        void *seg = segpool_segment_request();
        if (seg) {
            atomic_fetch_add(&segment_gets, 1);
            memset(seg, 0xee, segment_size);
            segpool_segment_recycle(seg);
        } else {
            atomic_fetch_add(&segment_nulls, 1);
        }
        segpool_local_t *lp = segpool_local_create(0, 2);
        if (lp) {
            errno = 0;
            void *a = segpool_local_request_timeout(lp, 20);
            if (a) {
                atomic_fetch_add(&local_gets, 1);
                memset(a, 0x11, segment_size);
                segpool_local_recycle(lp, a);
            } else {
                STRESS_CHECK(errno == ETIMEDOUT, "local request failed with errno %d, not ETIMEDOUT", errno);
                atomic_fetch_add(&local_timeouts, 1);
            }
            segpool_local_destroy(lp);
        }
        usleep(5000);
    }
    atomic_store(&stop, 1);
    uint64_t allocs = 0, fallbacks = 0, ops = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(w[i].thread, NULL);
        allocs += w[i].pool_allocs;
        fallbacks += w[i].fallbacks;
        ops += w[i].ops;
    }
    segpool_collect();
    segpool_stats_t st;
    segpool_stats_get(&st);
    stress_print_stats("exhaust", &st);
    fprintf(stderr,
            "exhaust: %llu ops, %llu served by the pool, %llu by libc (%.1f%%); whole segments %llu got, %llu NULL; "
            "local pool %llu got, %llu timed out\n",
            (unsigned long long)ops, (unsigned long long)allocs, (unsigned long long)fallbacks,
            100.0 * (double)fallbacks / (double)(allocs + fallbacks + 1), (unsigned long long)segment_gets,
            (unsigned long long)segment_nulls, (unsigned long long)local_gets, (unsigned long long)local_timeouts);
    STRESS_CHECK(fallbacks > 0, "the load never exhausted the pool");
    STRESS_CHECK(allocs > 0, "the pool served nothing");
    STRESS_CHECK(st.fallback_exhausted == fallbacks, "fallback_exhausted %llu, the test counted %llu",
                 (unsigned long long)st.fallback_exhausted, (unsigned long long)fallbacks);
    STRESS_CHECK(st.pool_requests == allocs, "pool_requests %llu, the test got %llu from the pool",
                 (unsigned long long)st.pool_requests, (unsigned long long)allocs);
    STRESS_CHECK(st.segments_peak <= st.capacity, "peak %zu above capacity %zu", st.segments_peak, st.capacity);
    STRESS_CHECK(st.segments_peak * 10 >= st.capacity * 9, "peak %zu: the pool was never nearly full (capacity %zu)",
                 st.segments_peak, st.capacity);
    stress_check_quiet_stats(&st, 0);
    STRESS_CHECK(st.segments_user == 0, "segments_user %zu", st.segments_user);
    STRESS_CHECK(st.pool_frees == st.pool_requests, "pool_frees %llu != pool_requests %llu",
                 (unsigned long long)st.pool_frees, (unsigned long long)st.pool_requests);
    fprintf(stderr, "exhaust: OK\n");
    return 0;
}
