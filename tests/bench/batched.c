/*
 * batched - cross-thread frees in batches: every thread allocates, another
 * frees.
 *
 *   batched [BLOCKS] [THREADS] [BATCH] [MAXSIZE] [MINSIZE]
 *
 * THREADS (default 4) threads each allocate their share of BLOCKS (default
 * 8M) blocks of MINSIZE .. MAXSIZE bytes (default 16 B .. 16 KiB,
 * log-uniform), tag them, and hand them in batches of BATCH (default 64) to
 * the other threads in turn, through a lock-free mailbox per thread.  Between
 * batches a thread empties its own mailbox, checking and freeing what it
 * received, so every block is freed by a thread that did not allocate it
 * (with one thread, by itself).  The batch array is malloc'ed by the sender
 * and freed by the receiver too.  A sender with 8 batches in flight waits
 * (freeing what it receives) until its receivers catch up, so the heap stays
 * bounded whatever the scheduling.
 *
 * With MINSIZE 16K and MAXSIZE 32K the blocks are near the segment size:
 * scripts/bench.py --scaling uses that to churn segments across threads.
 *
 * Checksum: the sum of the tags freed (equal to the sum allocated, known in
 * closed form) and the number of blocks.  Prints "ops: BLOCKS" too.
 */
#include "bench_common.h"

#include <stdatomic.h>

#define BATCHED_INFLIGHT 8 /* batches a thread may have sent and not seen freed */

typedef struct batched_batch_s {
    bench_node_t node;
    atomic_uint *sender_inflight;
    size_t n;
    unsigned char *blocks[];
} batched_batch_t;

typedef struct batched_thread_s {
    _Alignas(64) bench_mailbox_t box;
    atomic_uint inflight;
    unsigned id;
    long long blocks;
    uint64_t tags, frees;
} batched_thread_t;

static struct {
    batched_thread_t *threads;
    unsigned nthreads;
    size_t batch, minsize, maxsize;
    atomic_uint finished;
} batched;

/* Free every batch in t's mailbox; returns how many there were. */
static unsigned batched_drain(batched_thread_t *t)
{
    unsigned n = 0;
    for (bench_node_t *node = bench_mailbox_take(&t->box); node != NULL; n++) {
        batched_batch_t *b = (batched_batch_t *)node;
        node = node->next;
        for (size_t i = 0; i < b->n; i++) {
            t->tags += bench_block_check(b->blocks[i], "batched: block overwritten");
            t->frees++;
            free(b->blocks[i]);
        }
        atomic_fetch_sub_explicit(b->sender_inflight, 1, memory_order_release);
        free(b);
    }
    return n;
}

static batched_thread_t *batched_destination(const batched_thread_t *t, uint64_t k)
{
    unsigned n = batched.nthreads;
    if (n == 1)
        return batched.threads;
    return &batched.threads[(t->id + 1 + (unsigned)(k % (n - 1))) % n];
}

static void *batched_thread(void *varg)
{
    batched_thread_t *t = varg;
    bench_rng_t rng = {0xba7c4000u + t->id};
    uint64_t tag = ((uint64_t)t->id + 1) << 40;
    uint64_t k = 0;
    for (long long done = 0; done < t->blocks; k++) {
        size_t n = batched.batch;
        if ((long long)n > t->blocks - done)
            n = (size_t)(t->blocks - done);
        batched_batch_t *b = bench_xmalloc(sizeof *b + n * sizeof b->blocks[0]);
        b->n = n;
        b->sender_inflight = &t->inflight;
        for (size_t i = 0; i < n; i++) {
            size_t size = bench_size_between(&rng, batched.minsize, batched.maxsize);
            b->blocks[i] = bench_xmalloc(size);
            bench_block_fill(b->blocks[i], size, ++tag);
        }
        atomic_fetch_add_explicit(&t->inflight, 1, memory_order_relaxed);
        bench_mailbox_push(&batched_destination(t, k)->box, &b->node);
        done += (long long)n;
        batched_drain(t);
        unsigned spins = 0;
        while (atomic_load_explicit(&t->inflight, memory_order_acquire) >= BATCHED_INFLIGHT)
            if (batched_drain(t) == 0)
                bench_backoff(&spins);
    }
    atomic_fetch_add(&batched.finished, 1);
    unsigned spins = 0;
    while (atomic_load(&batched.finished) < batched.nthreads)
        if (batched_drain(t) == 0)
            bench_backoff(&spins);
    batched_drain(t); /* every sender is done: the last batches */
    return NULL;
}

int main(int argc, char **argv)
{
    long long blocks = bench_arg(argc, argv, 1, 8000000);
    unsigned n = (unsigned)bench_arg(argc, argv, 2, 4);
    batched.batch = (size_t)bench_arg(argc, argv, 3, 64);
    batched.maxsize = (size_t)bench_arg(argc, argv, 4, 16384);
    batched.minsize = (size_t)bench_arg(argc, argv, 5, 16);
    if (batched.minsize < 16 || batched.minsize > batched.maxsize)
        bench_fail("batched: want 16 <= MINSIZE <= MAXSIZE");
    batched.nthreads = n;
    batched.threads = aligned_alloc(64, n * sizeof *batched.threads);
    if (batched.threads == NULL)
        bench_fail("batched: no memory for the threads");

    for (unsigned i = 0; i < n; i++)
        batched.threads[i] = (batched_thread_t){.id = i, .blocks = blocks / n};
    bench_run_threads(n, batched_thread, batched.threads, sizeof *batched.threads);

    uint64_t tags = 0, frees = 0, want = 0;
    for (unsigned i = 0; i < n; i++) {
        tags += batched.threads[i].tags;
        frees += batched.threads[i].frees;
        want += bench_tag_sum(((uint64_t)i + 1) << 40, (uint64_t)(blocks / n));
    }
    if (tags != want || frees != (uint64_t)(blocks / n) * n)
        bench_fail("batched: blocks freed differ from blocks allocated");
    free(batched.threads);
    bench_print_value("ops", frees);
    bench_print_checksum(bench_mix(tags, frees));
    return 0;
}
