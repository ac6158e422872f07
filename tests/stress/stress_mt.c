/*
 * stress_mt.c - multi-threaded randomized stress of the pool allocator.
 *
 * usage: stress_mt [seconds [threads]]      (default 4 s, 4 threads)
 *
 * Each thread keeps a table of live blocks and, at random, allocates one
 * (segpool_malloc, segpool_calloc, segpool_aligned_alloc or segpool_realloc
 * of NULL) of a random size up to one segment, resizes one (segpool_realloc),
 * or frees one.  Every block is filled with a pattern derived from its
 * address and a serial and verified before every free and realloc.  A third
 * of the frees are handed to another thread's inbox (a mutex-protected ring)
 * and freed there: remote frees.  When the pool returns NULL the block comes
 * from libc and the reason is recorded with segpool_note_fallback.
 *
 * At the end each thread frees half of its blocks itself and leaves the other
 * half to the main thread, which frees them after every worker has exited
 * (frees into dead heaps).  Then, after segpool_collect(), the statistics
 * must show no segment in use and counters that agree with what the test
 * itself counted.
 */
#include <pthread.h>

#include "stress_common.h"

#define SLOTS 512
#define INBOX 1024

typedef struct worker_s {
    pthread_t thread;
    unsigned id;
    uint64_t rng;
    stress_block_t slots[SLOTS];

    pthread_mutex_t inbox_lock;
    stress_block_t inbox[INBOX];
    unsigned inbox_head, inbox_len;

    /* What this thread saw; summed by main at the end. */
    uint64_t pool_allocs;   /* blocks the pool handed out (its pool_requests) */
    uint64_t fallback[4];   /* by segpool_fallback_t */
    uint64_t ops, remote_sent, remote_freed, reallocs_moved;
} worker_t;

static worker_t *workers;
static unsigned nthreads;
static size_t segment_size;
static atomic_int stop;
static pthread_barrier_t done_barrier;

static pthread_mutex_t leftover_lock = PTHREAD_MUTEX_INITIALIZER;
static stress_block_t *leftovers;
static size_t leftover_count, leftover_cap;

static void note_fallback(worker_t *w, segpool_fallback_t why, size_t size) {
    segpool_note_fallback(why, size);
    w->fallback[why]++;
}

static void check_block_shape(const stress_block_t *b, size_t align) {
    if (((uintptr_t)b->p & (align - 1)) != 0) STRESS_FAIL("block %p not aligned to %zu", b->p, align);
    if (b->libc) return;
    STRESS_CHECK(segpool_owns(b->p), "pool block %p not owned by the pool", b->p);
    size_t usable = segpool_usable_size(b->p);
    STRESS_CHECK(usable >= b->size, "usable %zu < size %zu for %p", usable, b->size, b->p);
    STRESS_CHECK(((uintptr_t)b->p & 15) == 0, "pool block %p not 16-byte aligned", b->p);
}

/* Allocate a new block into *b with a random entry point. */
static void alloc_block(worker_t *w, stress_block_t *b) {
    size_t size = stress_size(&w->rng, segment_size);
    size_t align = 1;
    unsigned how = (unsigned)(stress_rand(&w->rng) % 10);
    void *p = NULL;
    int zeroed = 0;
    if (how < 4) {
        p = segpool_malloc(size);
    } else if (how < 6) {
        size_t count = 1 + (size_t)(stress_rand(&w->rng) % 8);
        size = size / count ? size / count : 1; /* count * size stays within one segment */
        p = segpool_calloc(count, size);
        size *= count;
        zeroed = 1;
    } else if (how < 8) {
        unsigned shift = (unsigned)(stress_rand(&w->rng) % 13); /* 1 .. 4096 */
        if (stress_rand(&w->rng) % 16 == 0) shift = (unsigned)__builtin_ctzll(segment_size);
        align = (size_t)1 << shift;
        p = segpool_aligned_alloc(align, size);
        if (!p) {
            note_fallback(w, align > 16 ? SEGPOOL_FALLBACK_ALIGNED : SEGPOOL_FALLBACK_EXHAUSTED, size);
            if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size) != 0) p = NULL;
            STRESS_CHECK(p != NULL, "libc posix_memalign(%zu, %zu)", align, size);
            b->libc = 1;
            goto filled;
        }
    } else {
        p = segpool_realloc(NULL, size);
    }
    b->libc = 0;
    if (!p) {
        note_fallback(w, SEGPOOL_FALLBACK_EXHAUSTED, size);
        p = zeroed ? calloc(1, size) : malloc(size);
        STRESS_CHECK(p != NULL, "libc malloc(%zu)", size);
        b->libc = 1;
    } else {
        w->pool_allocs++;
    }
filled:
    if (zeroed) {
        const uint8_t *z = p;
        for (size_t i = 0; i < size; i++)
            if (z[i] != 0) STRESS_FAIL("calloc block %p size %zu: byte %zu is %#x", p, size, i, z[i]);
    }
    b->p = p;
    b->size = size;
    b->seed = (uint64_t)(uintptr_t)p;
    b->serial = ((uint64_t)w->id << 40) | w->ops;
    check_block_shape(b, align);
    stress_fill(p, size, b->seed, b->serial);
}

/* Resize b: data up to the smaller size must survive. */
static void realloc_block(worker_t *w, stress_block_t *b) {
    stress_check_block(b, "before realloc");
    size_t size = stress_size(&w->rng, segment_size);
    size_t keep = size < b->size ? size : b->size;
    void *q;
    if (b->libc) {
        q = realloc(b->p, size);
        STRESS_CHECK(q != NULL, "libc realloc(%zu)", size);
    } else {
        q = segpool_realloc(b->p, size);
        if (q == NULL) {
            /* The old block is untouched and still ours: move it to libc. */
            stress_check_block(b, "after a refused segpool_realloc");
            note_fallback(w, SEGPOOL_FALLBACK_EXHAUSTED, size);
            q = malloc(size);
            STRESS_CHECK(q != NULL, "libc malloc(%zu)", size);
            memcpy(q, b->p, keep);
            segpool_free(b->p);
            b->libc = 1;
        } else if (q != b->p) {
            w->pool_allocs++;
            w->reallocs_moved++;
        }
    }
    b->p = q;
    long off = stress_verify(q, keep, b->seed, b->serial);
    if (off >= 0) STRESS_FAIL("realloc %zu -> %zu lost data at offset %ld (%p)", b->size, size, off, q);
    b->size = size;
    b->seed = (uint64_t)(uintptr_t)q;
    b->serial = ((uint64_t)w->id << 40) | w->ops;
    check_block_shape(b, 1);
    stress_fill(q, size, b->seed, b->serial);
}

/* Hand b to another thread to free, or free it here when its inbox is full. */
static void free_block(worker_t *w, stress_block_t *b) {
    stress_check_block(b, "before free");
    if (nthreads > 1 && stress_rand(&w->rng) % 3 == 0) {
        worker_t *to = &workers[(w->id + 1 + stress_rand(&w->rng) % (nthreads - 1)) % nthreads];
        pthread_mutex_lock(&to->inbox_lock);
        int sent = 0;
        if (to->inbox_len < INBOX) {
            to->inbox[(to->inbox_head + to->inbox_len) % INBOX] = *b;
            to->inbox_len++;
            sent = 1;
        }
        pthread_mutex_unlock(&to->inbox_lock);
        if (sent) {
            w->remote_sent++;
            b->p = NULL;
            return;
        }
    }
    stress_release(b);
}

/* Free what other threads sent here. */
static void drain_inbox(worker_t *w) {
    stress_block_t batch[64];
    for (;;) {
        unsigned n = 0;
        pthread_mutex_lock(&w->inbox_lock);
        while (n < 64 && w->inbox_len > 0) {
            batch[n++] = w->inbox[w->inbox_head];
            w->inbox_head = (w->inbox_head + 1) % INBOX;
            w->inbox_len--;
        }
        pthread_mutex_unlock(&w->inbox_lock);
        if (n == 0) return;
        for (unsigned i = 0; i < n; i++) {
            stress_check_block(&batch[i], "remote free");
            stress_release(&batch[i]);
            w->remote_freed++;
        }
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 256; i++) {
            stress_block_t *b = &w->slots[stress_rand(&w->rng) % SLOTS];
            w->ops++;
            if (!b->p) alloc_block(w, b);
            else if (stress_rand(&w->rng) % 5 == 0) realloc_block(w, b);
            else free_block(w, b);
        }
        drain_inbox(w);
        if (stress_rand(&w->rng) % 64 == 0) segpool_collect();
    }
    /* Free half here; leave the rest to main, to be freed after this thread
     * has exited. */
    unsigned left = 0;
    for (unsigned i = 0; i < SLOTS; i++) {
        stress_block_t *b = &w->slots[i];
        if (!b->p) continue;
        stress_check_block(b, "at shutdown");
        if (i % 2 == 0) {
            stress_release(b);
            continue;
        }
        pthread_mutex_lock(&leftover_lock);
        if (leftover_count == leftover_cap) {
            leftover_cap = leftover_cap ? 2 * leftover_cap : 1024;
            leftovers = realloc(leftovers, leftover_cap * sizeof *leftovers);
            STRESS_CHECK(leftovers != NULL, "out of memory");
        }
        leftovers[leftover_count++] = *b;
        pthread_mutex_unlock(&leftover_lock);
        b->p = NULL;
        left++;
    }
    (void)left;
    /* Nobody sends after this barrier: empty the inbox for good. */
    pthread_barrier_wait(&done_barrier);
    drain_inbox(w);
    return NULL;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 4.0;
    nthreads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    if (seconds <= 0 || nthreads == 0 || nthreads > 256) {
        fprintf(stderr, "usage: %s [seconds [threads]]\n", argv[0]);
        return 2;
    }
    segment_size = segpool_segment_size();
    STRESS_CHECK(segment_size != 0, "the pool did not come up");

    workers = calloc(nthreads, sizeof *workers);
    STRESS_CHECK(workers != NULL, "out of memory");
    pthread_barrier_init(&done_barrier, NULL, nthreads);
    for (unsigned i = 0; i < nthreads; i++) {
        workers[i].id = i;
        workers[i].rng = stress_seed(i + 1);
        pthread_mutex_init(&workers[i].inbox_lock, NULL);
    }
    for (unsigned i = 0; i < nthreads; i++)
        STRESS_CHECK(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) == 0, "pthread_create");

    double end = stress_now() + seconds;
    while (stress_now() < end) {
        /* Snapshots while threads run must not disturb them. */
        segpool_stats_t live;
        segpool_stats_get(&live);
        STRESS_CHECK(live.segments_in_use <= live.capacity, "in_use %zu > capacity %zu", live.segments_in_use,
                     live.capacity);
        usleep(200 * 1000);
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < nthreads; i++) pthread_join(workers[i].thread, NULL);

    /* Frees into the heaps of exited threads, from a thread with no heap. */
    for (size_t i = 0; i < leftover_count; i++) {
        stress_check_block(&leftovers[i], "leftover");
        stress_release(&leftovers[i]);
    }
    segpool_collect();

    uint64_t allocs = 0, fallback[4] = {0}, ops = 0, sent = 0, freed = 0, moved = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        worker_t *w = &workers[i];
        allocs += w->pool_allocs;
        for (int r = 0; r < 4; r++) fallback[r] += w->fallback[r];
        ops += w->ops;
        sent += w->remote_sent;
        freed += w->remote_freed;
        moved += w->reallocs_moved;
    }
    segpool_stats_t st;
    segpool_stats_get(&st);
    stress_print_stats("stress_mt", &st);
    fprintf(stderr,
            "stress_mt: %u threads, %.1f s, %llu ops, %llu pool blocks, %llu realloc moves, %llu handed to other "
            "threads, %zu freed after exit; fallback aligned %llu exhausted %llu\n",
            nthreads, seconds, (unsigned long long)ops, (unsigned long long)allocs, (unsigned long long)moved,
            (unsigned long long)sent, leftover_count, (unsigned long long)fallback[SEGPOOL_FALLBACK_ALIGNED],
            (unsigned long long)fallback[SEGPOOL_FALLBACK_EXHAUSTED]);

    STRESS_CHECK(sent == freed, "sent %llu blocks to other threads, they freed %llu", (unsigned long long)sent,
                 (unsigned long long)freed);
    stress_check_quiet_stats(&st, 0);
    STRESS_CHECK(st.segments_cached == 0, "%zu segments still cached after every thread exited", st.segments_cached);
    STRESS_CHECK(st.segments_free == st.capacity, "free %zu != capacity %zu", st.segments_free, st.capacity);
    STRESS_CHECK(st.segments_user == 0, "segments_user %zu", st.segments_user);
    STRESS_CHECK(st.pool_requests == allocs, "pool_requests %llu, the test got %llu blocks from the pool",
                 (unsigned long long)st.pool_requests, (unsigned long long)allocs);
    STRESS_CHECK(st.pool_frees == st.pool_requests, "pool_frees %llu != pool_requests %llu",
                 (unsigned long long)st.pool_frees, (unsigned long long)st.pool_requests);
    STRESS_CHECK(st.fallback_aligned == fallback[SEGPOOL_FALLBACK_ALIGNED], "fallback_aligned %llu, counted %llu",
                 (unsigned long long)st.fallback_aligned, (unsigned long long)fallback[SEGPOOL_FALLBACK_ALIGNED]);
    STRESS_CHECK(st.fallback_exhausted == fallback[SEGPOOL_FALLBACK_EXHAUSTED],
                 "fallback_exhausted %llu, counted %llu", (unsigned long long)st.fallback_exhausted,
                 (unsigned long long)fallback[SEGPOOL_FALLBACK_EXHAUSTED]);
    STRESS_CHECK(st.fallback_too_large == 0 && st.fallback_other == 0, "unexpected fallbacks");
    if (nthreads > 1) STRESS_CHECK(st.remote_frees > 0, "no remote free was counted");
    for (unsigned c = 0; c < st.class_count; c++)
        STRESS_CHECK(st.class_segments[c] == 0, "class %u (%u bytes) still holds %llu segments", c, st.class_size[c],
                     (unsigned long long)st.class_segments[c]);
    STRESS_CHECK(st.threads_live == 0, "threads_live %u after every worker exited", st.threads_live);
    STRESS_CHECK(st.threads_total <= nthreads, "threads_total %u > %u threads", st.threads_total, nthreads);
    fprintf(stderr, "stress_mt: OK\n");
    free(leftovers);
    free(workers);
    return 0;
}
