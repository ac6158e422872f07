/*
 * prodcons - one producer, several consumers that only free.
 *
 *   prodcons [BLOCKS] [THREADS] [MAXSIZE]
 *
 * One producer allocates BLOCKS (default 8M) blocks of 16 B .. MAXSIZE
 * (default 4 KiB, log-uniform), tags them and hands them one at a time
 * to THREADS-1 consumers (THREADS default 5; at least one), 32 in a row to
 * each in turn, through a single-producer single-consumer ring per consumer.  The consumers check
 * and free; they never allocate, so an allocator that charges a thread
 * without a heap for its frees (a shared counter, a lock) shows here.
 * Unlike xmalloc (batches through a mutex and a condition variable), blocks
 * cross one by one and no futex is involved: a thread facing a full or empty
 * ring yields the CPU, then naps (bench_backoff).
 *
 * Checksum: the sum of the tags freed and their number.  Prints "ops".
 */
#include "bench_common.h"

#include <stdatomic.h>

#define PC_RING 1024 /* slots per consumer ring, a power of two */
#define PC_CHUNK 32  /* consecutive blocks to one consumer, then the next */

typedef struct pc_ring_s {
    _Alignas(64) atomic_size_t head; /* written by the consumer */
    _Alignas(64) atomic_size_t tail; /* written by the producer */
    unsigned char *slot[PC_RING];
    uint64_t tags, frees;
} pc_ring_t;

static atomic_int pc_done;

static void *pc_consumer(void *varg)
{
    pc_ring_t *r = varg;
    unsigned spins = 0;
    for (;;) {
        size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head == tail) {
            if (atomic_load_explicit(&pc_done, memory_order_acquire) &&
                atomic_load_explicit(&r->tail, memory_order_acquire) == head)
                return NULL;
            bench_backoff(&spins);
            continue;
        }
        spins = 0;
        for (; head != tail; head++) {
            unsigned char *p = r->slot[head % PC_RING];
            r->tags += bench_block_check(p, "prodcons: block overwritten");
            r->frees++;
            free(p);
        }
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
}

static void pc_put(pc_ring_t *r, unsigned char *p)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    unsigned spins = 0;
    while (tail - atomic_load_explicit(&r->head, memory_order_acquire) == PC_RING)
        bench_backoff(&spins);
    r->slot[tail % PC_RING] = p;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
}

int main(int argc, char **argv)
{
    long long blocks = bench_arg(argc, argv, 1, 8000000);
    unsigned threads = (unsigned)bench_arg(argc, argv, 2, 5);
    size_t maxsize = (size_t)bench_arg(argc, argv, 3, 4096);
    unsigned nc = threads > 1 ? threads - 1 : 1;
    if (maxsize < 16)
        bench_fail("prodcons: MAXSIZE below 16");

    pc_ring_t *rings = aligned_alloc(64, nc * sizeof *rings);
    pthread_t *tids = bench_xmalloc(nc * sizeof *tids);
    if (rings == NULL)
        bench_fail("prodcons: no memory for the rings");
    for (unsigned c = 0; c < nc; c++) {
        memset(&rings[c], 0, sizeof rings[c]);
        if (pthread_create(&tids[c], NULL, pc_consumer, &rings[c]) != 0)
            bench_fail("pthread_create");
    }
    bench_rng_t rng = {0x9c0d5u};
    for (long long i = 0; i < blocks; i++) {
        size_t size = bench_size_between(&rng, 16, maxsize);
        unsigned char *p = bench_xmalloc(size);
        bench_block_fill(p, size, (uint64_t)i + 1);
        pc_put(&rings[(size_t)(i / PC_CHUNK) % nc], p);
    }
    atomic_store_explicit(&pc_done, 1, memory_order_release);

    uint64_t tags = 0, frees = 0;
    for (unsigned c = 0; c < nc; c++) {
        pthread_join(tids[c], NULL);
        tags += rings[c].tags;
        frees += rings[c].frees;
    }
    if (frees != (uint64_t)blocks || tags != bench_tag_sum(0, (uint64_t)blocks))
        bench_fail("prodcons: blocks freed differ from blocks allocated");
    free(tids);
    free(rings);
    bench_print_value("ops", frees);
    bench_print_checksum(bench_mix(tags, frees));
    return 0;
}
