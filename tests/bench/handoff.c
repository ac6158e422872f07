/*
 * handoff - threads allocate, free and hand blocks to each other at random.
 *
 *   handoff [OPS] [THREADS] [LIVE]
 *
 * THREADS (default 4) threads each keep LIVE (default 2000) blocks of
 * 32 B .. 8 KiB (log-uniform) and do their share of OPS (default 8M) steps.
 * A step allocates one block into a random slot; the block the slot held is
 * freed there (60%) or handed to another thread picked at random (40%),
 * through that thread's lock-free mailbox.  Every 16 steps a thread empties
 * its mailbox: half of what it received it frees at once, the other half it
 * adopts into a random slot (freeing the block there), to be freed or handed
 * on later, so a block may cross several threads before it dies.  This is the
 * pattern of a work-stealing runtime or a server whose requests migrate.
 *
 * Checksum: the sum of the tags freed (equal to the sum allocated: each
 * thread allocates LIVE + its share of OPS tags in sequence) and the number
 * of blocks.  The random choices about received blocks use a stream of their
 * own, so what each thread allocates does not depend on the interleaving.
 */
#include "bench_common.h"

#include <stdatomic.h>

#define HANDOFF_DRAIN_EVERY 16
#define HANDOFF_MIN 32 /* tag, size and the mailbox link */
#define HANDOFF_MAX 8192

typedef struct handoff_thread_s {
    _Alignas(64) bench_mailbox_t box;
    unsigned id;
    long long ops;
    size_t live;
    uint64_t tags, frees;
} handoff_thread_t;

static struct {
    handoff_thread_t *threads;
    unsigned nthreads;
    atomic_uint finished;
} handoff;

static void handoff_free(handoff_thread_t *t, unsigned char *p)
{
    t->tags += bench_block_check(p, "handoff: block overwritten");
    t->frees++;
    free(p);
}

static void handoff_send(handoff_thread_t *t, bench_rng_t *rng, unsigned char *p)
{
    unsigned to = (unsigned)bench_rng_below(rng, handoff.nthreads - 1);
    if (to >= t->id)
        to++;
    /* the link word lives at byte 16, past the tag and the size */
    bench_mailbox_push(&handoff.threads[to].box, (bench_node_t *)(p + 16));
}

static unsigned handoff_drain(handoff_thread_t *t, unsigned char **slots, bench_rng_t *rng)
{
    unsigned n = 0;
    for (bench_node_t *node = bench_mailbox_take(&t->box); node != NULL; n++) {
        unsigned char *p = (unsigned char *)node - 16;
        node = node->next;
        if (slots == NULL || (bench_rng_next(rng) & 1) == 0) {
            handoff_free(t, p);
        } else {
            size_t s = (size_t)bench_rng_below(rng, t->live);
            handoff_free(t, slots[s]);
            slots[s] = p;
        }
    }
    return n;
}

static void *handoff_thread(void *varg)
{
    handoff_thread_t *t = varg;
    bench_rng_t rng = {0x4a0d0f00u + t->id};      /* sizes, slots, sends */
    bench_rng_t recv_rng = {0x4ece1700u + t->id}; /* what to do with received blocks */
    uint64_t tag = ((uint64_t)t->id + 1) << 40;
    unsigned char **slots = bench_xmalloc(t->live * sizeof *slots);
    for (size_t i = 0; i < t->live; i++) {
        size_t size = bench_size_between(&rng, HANDOFF_MIN, HANDOFF_MAX);
        slots[i] = bench_xmalloc(size);
        bench_block_fill(slots[i], size, ++tag);
    }
    for (long long op = 0; op < t->ops; op++) {
        size_t size = bench_size_between(&rng, HANDOFF_MIN, HANDOFF_MAX);
        size_t s = (size_t)bench_rng_below(&rng, t->live);
        unsigned char *old = slots[s];
        slots[s] = bench_xmalloc(size);
        bench_block_fill(slots[s], size, ++tag);
        if (handoff.nthreads > 1 && bench_rng_below(&rng, 10) < 4)
            handoff_send(t, &rng, old);
        else
            handoff_free(t, old);
        if (op % HANDOFF_DRAIN_EVERY == 0)
            handoff_drain(t, slots, &recv_rng);
    }
    for (size_t i = 0; i < t->live; i++)
        handoff_free(t, slots[i]);
    free(slots);
    /* Others may still send until they are done; free whatever comes. */
    atomic_fetch_add(&handoff.finished, 1);
    unsigned spins = 0;
    while (atomic_load(&handoff.finished) < handoff.nthreads)
        if (handoff_drain(t, NULL, &recv_rng) == 0)
            bench_backoff(&spins);
    handoff_drain(t, NULL, &recv_rng);
    return NULL;
}

int main(int argc, char **argv)
{
    long long ops = bench_arg(argc, argv, 1, 8000000);
    unsigned n = (unsigned)bench_arg(argc, argv, 2, 4);
    size_t live = (size_t)bench_arg(argc, argv, 3, 2000);
    handoff.nthreads = n;
    handoff.threads = aligned_alloc(64, n * sizeof *handoff.threads);
    if (handoff.threads == NULL)
        bench_fail("handoff: no memory for the threads");
    for (unsigned i = 0; i < n; i++)
        handoff.threads[i] = (handoff_thread_t){.id = i, .ops = ops / n, .live = live};
    bench_run_threads(n, handoff_thread, handoff.threads, sizeof *handoff.threads);

    uint64_t tags = 0, frees = 0, want = 0;
    for (unsigned i = 0; i < n; i++) {
        tags += handoff.threads[i].tags;
        frees += handoff.threads[i].frees;
        want += bench_tag_sum(((uint64_t)i + 1) << 40, live + (uint64_t)(ops / n));
    }
    if (tags != want || frees != (live + (uint64_t)(ops / n)) * n)
        bench_fail("handoff: blocks freed differ from blocks allocated");
    free(handoff.threads);
    bench_print_value("ops", (uint64_t)(ops / n) * n);
    bench_print_checksum(bench_mix(tags, frees));
    return 0;
}
