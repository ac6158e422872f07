/*
 * fork_threads.c - fork while threads allocate and free.
 *
 * usage: fork_threads [forks [threads]]     (default 200 forks, 4 threads)
 *
 * Worker threads allocate, fill, verify and free pool blocks without pause
 * (some through a shared exchange, so frees are also remote), and whole
 * segments now and then, while the main thread forks.  Each child, with an
 * alarm so that a deadlock kills it instead of hanging the test:
 *   - verifies and frees the blocks the main thread allocated before fork;
 *   - takes a block a worker published and frees it (the worker's heap is an
 *     orphan in the child: the free must be accepted, and is dropped);
 *   - allocates and frees with segpool_malloc/calloc/realloc/aligned_alloc
 *     and with plain malloc, requests and recycles a segment;
 *   - starts a thread that allocates and frees, and joins it;
 *   - exits 0, or a code saying which step failed.
 * The parent checks every child's status, then stops the workers and checks
 * that every segment came back.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "stress_common.h"

#define EXCHANGE 64

/* GCC's AddressSanitizer allocator is not fork-safe: a child can hang on an
 * allocator lock another parent thread held at fork (seen here: 2 children
 * in 200).  Under ASan the child leaves libc malloc (and pthread_create,
 * which allocates through it) alone; the pool is still exercised fully. */
/* ThreadSanitizer cannot follow a thread the child starts on a stack a parent
 * thread had ("dup thread with used id"): the same applies under it. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHILD_USES_LIBC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CHILD_USES_LIBC 0
#endif
#endif
#ifndef CHILD_USES_LIBC
#define CHILD_USES_LIBC 1
#endif

static size_t segment_size;
static atomic_int stop;
/* Blocks published by workers: a libc-allocated record, swapped atomically
 * so that a child never needs a lock another thread might have held. */
static _Atomic(stress_block_t *) exchange[EXCHANGE];
static atomic_ullong worker_ops;

static stress_block_t *block_new(uint64_t *rng, uint64_t serial) {
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
    b->seed = (uint64_t)(uintptr_t)b->p;
    b->serial = serial;
    stress_fill(b->p, size, b->seed, b->serial);
    return b;
}

static void block_delete(stress_block_t *b, const char *where) {
    stress_check_block(b, where);
    stress_release(b);
    free(b);
}

static void *worker_main(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t rng = stress_seed(id + 7);
    stress_block_t *mine[128] = {0};
    uint64_t serial = id << 48;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned i = (unsigned)(stress_rand(&rng) % 128);
        if (mine[i]) {
            if (stress_rand(&rng) % 4 == 0) {
                /* Swap through the exchange: the block another thread left
                 * there (if any) is freed here, remotely. */
                stress_block_t *other = atomic_exchange(&exchange[stress_rand(&rng) % EXCHANGE], mine[i]);
                if (other) block_delete(other, "worker (exchange)");
            } else {
                block_delete(mine[i], "worker");
            }
            mine[i] = NULL;
        } else {
            mine[i] = block_new(&rng, ++serial);
        }
        if (stress_rand(&rng) % 512 == 0) {
            void *seg = segpool_segment_request();
            if (seg) {
                memset(seg, 0x5a, segment_size);
                segpool_segment_recycle(seg);
            }
        }
        atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
    }
    for (unsigned i = 0; i < 128; i++)
        if (mine[i]) block_delete(mine[i], "worker shutdown");
    return NULL;
}

/* ---- The child ---------------------------------------------------------------- */

static void *child_thread(void *arg) {
    uint64_t rng = stress_seed((uint64_t)(uintptr_t)arg);
    for (int i = 0; i < 200; i++) block_delete(block_new(&rng, (uint64_t)i), "child thread");
    return (void *)1;
}

static int child_main(stress_block_t **before, unsigned nbefore) {
    alarm(20);
    uint64_t rng = stress_seed((uint64_t)getpid());
    /* 1: blocks the forking thread allocated before fork. */
    for (unsigned i = 0; i < nbefore; i++) {
        if (stress_verify(before[i]->p, before[i]->size, before[i]->seed, before[i]->serial) >= 0) return 11;
        stress_release(before[i]);
    }
    /* 2: a block of another thread of the parent (an orphan heap here). */
    stress_block_t *other = atomic_exchange(&exchange[stress_rand(&rng) % EXCHANGE], NULL);
    if (other) {
        if (stress_verify(other->p, other->size, other->seed, other->serial) >= 0) return 12;
        stress_release(other);
    }
    /* 3: every entry point, and plain malloc. */
    for (int i = 0; i < 300; i++) {
        size_t size = stress_size(&rng, segment_size);
        void *p = segpool_malloc(size);
        if (!p) return 13;
        stress_fill(p, size, (uintptr_t)p, (uint64_t)i);
        size_t n2 = stress_size(&rng, segment_size);
        void *q = segpool_realloc(p, n2);
        if (!q) return 14;
        size_t keep = size < n2 ? size : n2;
        if (stress_verify(q, keep, (uintptr_t)p, (uint64_t)i) >= 0) return 15;
        segpool_free(q);
        void *z = segpool_calloc(4, size / 4 + 1 > segment_size / 4 ? segment_size / 4 : size / 4 + 1);
        if (!z) return 16;
        if (((uint8_t *)z)[0] != 0) return 17;
        segpool_free(z);
        void *a = segpool_aligned_alloc(256, size > 256 ? size - 256 : size);
        if (!a || ((uintptr_t)a & 255) != 0) return 18;
        segpool_free(a);
        if (CHILD_USES_LIBC) {
            char *m = malloc(size + 100);
            if (!m) return 19;
            memset(m, 1, size + 100);
            free(m);
        }
    }
    void *seg = segpool_segment_request();
    if (!seg) return 20;
    memset(seg, 0, segment_size);
    segpool_segment_recycle(seg);
    /* 4: a thread started in the child. */
    if (!CHILD_USES_LIBC) return 0;
    pthread_t t;
    void *ret = NULL;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)getpid()) != 0) return 21;
    if (pthread_join(t, &ret) != 0 || ret != (void *)1) return 22;
    segpool_collect();
    return 0;
}

int main(int argc, char **argv) {
    unsigned forks = argc > 1 ? (unsigned)atoi(argv[1]) : 200;
    unsigned nthreads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    if (nthreads == 0 || nthreads > 64) {
        fprintf(stderr, "usage: %s [forks [threads]]\n", argv[0]);
        return 2;
    }
    segment_size = segpool_segment_size();
    STRESS_CHECK(segment_size != 0, "the pool did not come up");
    pthread_t threads[64];
    for (unsigned i = 0; i < nthreads; i++)
        STRESS_CHECK(pthread_create(&threads[i], NULL, worker_main, (void *)(uintptr_t)i) == 0, "pthread_create");

    uint64_t rng = stress_seed(4242);
    double t0 = stress_now();
    unsigned failed = 0;
    for (unsigned f = 0; f < forks; f++) {
        stress_block_t *before[8];
        for (unsigned i = 0; i < 8; i++) before[i] = block_new(&rng, ((uint64_t)f << 8) | i);
        usleep((useconds_t)(stress_rand(&rng) % 2000)); /* fork at varied moments */
        pid_t pid = fork();
        STRESS_CHECK(pid >= 0, "fork");
        if (pid == 0) _exit(child_main(before, 8));
        int status = 0;
        STRESS_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            failed++;
            if (WIFSIGNALED(status))
                fprintf(stderr, "fork %u: child killed by signal %d%s\n", f, WTERMSIG(status),
                        WTERMSIG(status) == SIGALRM ? " (deadlock: alarm)" : "");
            else
                fprintf(stderr, "fork %u: child exited with %d\n", f, WEXITSTATUS(status));
        }
        for (unsigned i = 0; i < 8; i++) block_delete(before[i], "parent after fork");
    }
    double elapsed = stress_now() - t0;
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
    for (unsigned i = 0; i < EXCHANGE; i++) {
        stress_block_t *b = atomic_exchange(&exchange[i], NULL);
        if (b) block_delete(b, "exchange at exit");
    }
    segpool_collect();
    segpool_stats_t st;
    segpool_stats_get(&st);
    stress_print_stats("fork_threads", &st);
    fprintf(stderr, "fork_threads: %u forks in %.2f s with %u threads (%llu worker ops), %u children failed\n", forks,
            elapsed, nthreads, (unsigned long long)worker_ops, failed);
    STRESS_CHECK(failed == 0, "%u of %u children failed", failed, forks);
    stress_check_quiet_stats(&st, 0);
    fprintf(stderr, "fork_threads: OK\n");
    return 0;
}
