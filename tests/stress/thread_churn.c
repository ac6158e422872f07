/*
 * thread_churn.c - many short-lived threads, one long-lived freer.
 *
 * usage: thread_churn [threads [concurrent]]     (default 1000, 8)
 *
 * Each short-lived thread allocates a few dozen blocks of random sizes from
 * the pool, frees a quarter of them itself and hands the rest to one
 * long-lived thread that verifies and frees them, often after the allocating
 * thread has exited (frees into a dead heap, which a later thread may adopt).
 * At the end the pool's segments in use must be back at the baseline measured
 * before the first thread, nothing may stay cached, and the heaps of exited
 * threads must have been reused rather than one made per thread.
 */
#include <pthread.h>

#include "stress_common.h"

#define BLOCKS_PER_THREAD 48
#define QUEUE_CAP 65536

static size_t segment_size;

/* The freer's queue: a mutex-protected ring with a condition variable. */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static stress_block_t queue[QUEUE_CAP];
static size_t q_head, q_len;
static int q_closed;

static atomic_ullong pool_allocs, fallbacks, freed_by_freer, freed_by_owner;

static void queue_push(const stress_block_t *b) {
    pthread_mutex_lock(&q_lock);
    while (q_len == QUEUE_CAP) {
        pthread_mutex_unlock(&q_lock);
        usleep(100);
        pthread_mutex_lock(&q_lock);
    }
    queue[(q_head + q_len) % QUEUE_CAP] = *b;
    q_len++;
    pthread_cond_signal(&q_cond);
    pthread_mutex_unlock(&q_lock);
}

static void *freer_main(void *arg) {
    (void)arg;
    uint64_t rng = stress_seed(99);
    for (;;) {
        pthread_mutex_lock(&q_lock);
        while (q_len == 0 && !q_closed) pthread_cond_wait(&q_cond, &q_lock);
        if (q_len == 0 && q_closed) {
            pthread_mutex_unlock(&q_lock);
            break;
        }
        /* Sometimes let the queue fill up so that owners exit before their
         * blocks come back. */
        int linger = stress_rand(&rng) % 8 == 0;
        stress_block_t b = queue[q_head];
        q_head = (q_head + 1) % QUEUE_CAP;
        q_len--;
        pthread_mutex_unlock(&q_lock);
        stress_check_block(&b, "freer");
        stress_release(&b);
        atomic_fetch_add(&freed_by_freer, 1);
        if (linger) usleep(50);
    }
    return NULL;
}

static void *short_main(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t rng = stress_seed(id + 1000);
    stress_block_t blocks[BLOCKS_PER_THREAD];
    for (unsigned i = 0; i < BLOCKS_PER_THREAD; i++) {
        stress_block_t *b = &blocks[i];
        size_t size = stress_size(&rng, segment_size);
        b->p = segpool_malloc(size);
        b->libc = 0;
        if (!b->p) {
            segpool_note_fallback(SEGPOOL_FALLBACK_EXHAUSTED, size);
            atomic_fetch_add(&fallbacks, 1);
            b->p = malloc(size);
            STRESS_CHECK(b->p != NULL, "libc malloc(%zu)", size);
            b->libc = 1;
        } else {
            atomic_fetch_add(&pool_allocs, 1);
        }
        b->size = size;
        b->seed = (uint64_t)(uintptr_t)b->p;
        b->serial = (id << 32) | i;
        stress_fill(b->p, size, b->seed, b->serial);
    }
    for (unsigned i = 0; i < BLOCKS_PER_THREAD; i++) {
        stress_block_t *b = &blocks[i];
        stress_check_block(b, "owner");
        if (i % 4 == 0) {
            stress_release(b);
            atomic_fetch_add(&freed_by_owner, 1);
        } else {
            queue_push(b);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    unsigned total = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
    unsigned concurrent = argc > 2 ? (unsigned)atoi(argv[2]) : 8;
    if (total == 0 || concurrent == 0 || concurrent > 256) {
        fprintf(stderr, "usage: %s [threads [concurrent]]\n", argv[0]);
        return 2;
    }
    segment_size = segpool_segment_size();
    STRESS_CHECK(segment_size != 0, "the pool did not come up");
    segpool_collect();
    segpool_stats_t before;
    segpool_stats_get(&before);

    pthread_t freer;
    STRESS_CHECK(pthread_create(&freer, NULL, freer_main, NULL) == 0, "pthread_create");
    pthread_t *wave = calloc(concurrent, sizeof *wave);
    STRESS_CHECK(wave != NULL, "out of memory");
    double t0 = stress_now();
    unsigned started = 0;
    while (started < total) {
        unsigned n = total - started < concurrent ? total - started : concurrent;
        for (unsigned i = 0; i < n; i++)
            STRESS_CHECK(pthread_create(&wave[i], NULL, short_main, (void *)(uintptr_t)(started + i)) == 0,
                         "pthread_create %u", started + i);
        for (unsigned i = 0; i < n; i++) pthread_join(wave[i], NULL);
        started += n;
    }
    pthread_mutex_lock(&q_lock);
    q_closed = 1;
    pthread_cond_signal(&q_cond);
    pthread_mutex_unlock(&q_lock);
    pthread_join(freer, NULL);
    segpool_collect();

    segpool_stats_t st;
    segpool_stats_get(&st);
    stress_print_stats("thread_churn", &st);
    unsigned long long made = (unsigned long long)total * BLOCKS_PER_THREAD;
    fprintf(stderr,
            "thread_churn: %u threads (%u at a time) in %.2f s, %llu blocks (%llu pool, %llu libc), freed by owner "
            "%llu, by the freer %llu; baseline in use %zu\n",
            total, concurrent, stress_now() - t0, made, (unsigned long long)pool_allocs,
            (unsigned long long)fallbacks, (unsigned long long)freed_by_owner, (unsigned long long)freed_by_freer,
            before.segments_in_use);

    STRESS_CHECK(freed_by_owner + freed_by_freer == made, "%llu blocks made, %llu freed", made,
                 (unsigned long long)(freed_by_owner + freed_by_freer));
    stress_check_quiet_stats(&st, before.segments_in_use);
    STRESS_CHECK(st.segments_cached == 0, "%zu segments cached with no thread left", st.segments_cached);
    STRESS_CHECK(st.pool_requests - before.pool_requests == pool_allocs, "pool_requests grew by %llu, expected %llu",
                 (unsigned long long)(st.pool_requests - before.pool_requests), (unsigned long long)pool_allocs);
    STRESS_CHECK(st.pool_frees == st.pool_requests, "pool_frees %llu != pool_requests %llu",
                 (unsigned long long)st.pool_frees, (unsigned long long)st.pool_requests);
    STRESS_CHECK(st.fallback_exhausted == fallbacks, "fallback_exhausted %llu, counted %llu",
                 (unsigned long long)st.fallback_exhausted, (unsigned long long)fallbacks);
    STRESS_CHECK(st.threads_live == 0, "threads_live %u", st.threads_live);
    /* Heaps of exited threads are adopted: far fewer heaps than threads. */
    STRESS_CHECK(st.threads_total <= 4 * concurrent + 4, "%u heaps made for %u threads, %u at a time",
                 st.threads_total, total, concurrent);
    fprintf(stderr, "thread_churn: OK\n");
    free(wave);
    return 0;
}
