/*
 * remote_churn - frees across threads while threads come and go.
 *
 *   remote_churn SECONDS THREADS
 *
 * THREADS threads at a time swap blocks (16 B .. 4 KiB, each filled with a
 * pattern of its address and serial) into a shared array of slots with one
 * atomic exchange, check the block they took out and free it: most frees
 * are of blocks another thread allocated, so they go through the segments'
 * remote lists.  Each thread exits after a few thousand swaps and a new one
 * takes its place, so heaps die with blocks still on remote lists, are
 * freed into while dead, and are adopted.  Checks: every block is intact
 * when freed (a block handed out twice while live would be overwritten), and
 * once every slot is freed and the pool collected, no segment is left in use
 * (nothing lost on a remote list) and the statistics saw the remote frees.
 */
#include "stress_common.h"

#include <pthread.h>
#include <stdatomic.h>

enum { SLOTS = 4096, SWAPS_PER_THREAD = 3000, MAX_SIZE = 4096 };

static _Atomic(stress_block_t *) churn_slots[SLOTS];
static _Atomic uint64_t churn_serial, churn_frees;
static _Atomic int churn_stop;

static void churn_free(stress_block_t *blk) {
    stress_check_block(blk, "freed by another thread");
    stress_release(blk);
    free(blk);
    atomic_fetch_add_explicit(&churn_frees, 1, memory_order_relaxed);
}

static void *churn_thread(void *arg) {
    uint64_t rng = stress_seed((uint64_t)(uintptr_t)arg);
    for (int i = 0; i < SWAPS_PER_THREAD && !atomic_load_explicit(&churn_stop, memory_order_relaxed); i++) {
        stress_block_t *blk = malloc(sizeof *blk);
        STRESS_CHECK(blk != NULL, "out of memory");
        blk->size = stress_size(&rng, MAX_SIZE);
        blk->p = segpool_malloc(blk->size);
        STRESS_CHECK(blk->p != NULL, "pool exhausted at %zu bytes", blk->size);
        blk->libc = 0;
        blk->seed = (uint64_t)(uintptr_t)blk->p;
        blk->serial = atomic_fetch_add_explicit(&churn_serial, 1, memory_order_relaxed);
        stress_fill(blk->p, blk->size, blk->seed, blk->serial);
        stress_block_t *old = atomic_exchange(&churn_slots[stress_rand(&rng) % SLOTS], blk);
        if (old) churn_free(old);
    }
    return NULL;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 5;
    unsigned nthreads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    if (nthreads < 2) nthreads = 2;
    STRESS_CHECK(segpool_segment_size() != 0, "the pool did not come up");
    segpool_stats_t st;
    segpool_stats_get(&st);
    size_t baseline = st.segments_in_use;

    pthread_t *t = calloc(nthreads, sizeof *t);
    STRESS_CHECK(t != NULL, "out of memory");
    uint64_t started = 0;
    for (unsigned i = 0; i < nthreads; i++)
        STRESS_CHECK(pthread_create(&t[i], NULL, churn_thread, (void *)(uintptr_t)++started) == 0, "pthread_create");
    double end = stress_now() + seconds;
    for (unsigned i = 0; stress_now() < end; i = (i + 1) % nthreads) {
        pthread_join(t[i], NULL); /* a thread done with its swaps: another takes its place */
        STRESS_CHECK(pthread_create(&t[i], NULL, churn_thread, (void *)(uintptr_t)++started) == 0, "pthread_create");
    }
    atomic_store(&churn_stop, 1);
    for (unsigned i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    free(t);

    for (unsigned i = 0; i < SLOTS; i++) {
        stress_block_t *blk = atomic_exchange(&churn_slots[i], NULL);
        if (blk) churn_free(blk);
    }
    uint64_t allocated = atomic_load(&churn_serial), freed = atomic_load(&churn_frees);
    STRESS_CHECK(freed == allocated, "%llu blocks allocated, %llu freed", (unsigned long long)allocated,
                 (unsigned long long)freed);
    segpool_collect();
    segpool_stats_get(&st);
    stress_print_stats("remote_churn", &st);
    stress_check_quiet_stats(&st, baseline);
    STRESS_CHECK(st.remote_frees > 0 && st.remote_queued > 0 && st.remote_collects > 0,
                 "remote frees %llu, queued %llu, collected %llu", (unsigned long long)st.remote_frees,
                 (unsigned long long)st.remote_queued, (unsigned long long)st.remote_collects);
    fprintf(stderr, "remote_churn: %llu threads, %llu blocks, remote frees %llu (%llu contended), %llu segments queued, "
                    "%llu lists collected: OK\n",
            (unsigned long long)started, (unsigned long long)allocated, (unsigned long long)st.remote_frees,
            (unsigned long long)st.remote_contended, (unsigned long long)st.remote_queued,
            (unsigned long long)st.remote_collects);
    return 0;
}
