/*
 * larson - a server simulation in the manner of Larson and Krishnan's test.
 *
 *   larson [OPS] [THREADS] [SLOTS]
 *
 * SLOTS (default 20000) blocks of 16 B .. 1 KiB (log-uniform) live in one
 * shared array.  THREADS (default 4) threads each do their share of OPS
 * (default 12M) steps: allocate a block, write it, swap it into a random slot
 * with one atomic exchange, check and free the block that was there.  With
 * T threads about (T-1)/T of all frees are of blocks another thread
 * allocated, the pattern of a server whose connections migrate between
 * worker threads.
 *
 * The checksum is the sum of the tags of every block freed, which equals the
 * sum of the tags of every block allocated whatever the interleaving, plus
 * the number of frees.
 */
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct larson_arg_s {
    long long ops;
    unsigned id;
    uint64_t tags;
    uint64_t frees;
} larson_arg_t;

static _Atomic(unsigned char *) *larson_slots;
static size_t larson_nslots;

static unsigned char *larson_new(bench_rng_t *rng, uint64_t tag)
{
    uint64_t size = bench_size_logu(rng, 1024);
    unsigned char *p = bench_xmalloc(size);
    uint64_t inv = ~tag;
    memcpy(p, &tag, 8);
    memcpy(p + 8, &size, 8);
    if (size >= 24)
        memcpy(p + size - 8, &inv, 8);
    return p;
}

static uint64_t larson_free(unsigned char *p)
{
    uint64_t tag, size, inv;
    memcpy(&tag, p, 8);
    memcpy(&size, p + 8, 8);
    if (size < 16 || size > 1024)
        bench_fail("larson: block header overwritten");
    if (size >= 24) {
        memcpy(&inv, p + size - 8, 8);
        if (inv != ~tag)
            bench_fail("larson: block tail overwritten");
    }
    free(p);
    return tag;
}

static void *larson_thread(void *varg)
{
    larson_arg_t *a = varg;
    bench_rng_t rng = {0x1a250000u + a->id};
    uint64_t tag = ((uint64_t)a->id + 1) << 40;
    for (long long i = 0; i < a->ops; i++) {
        unsigned char *p = larson_new(&rng, ++tag);
        size_t slot = (size_t)bench_rng_below(&rng, larson_nslots);
        unsigned char *old = atomic_exchange_explicit(&larson_slots[slot], p, memory_order_acq_rel);
        a->tags += larson_free(old);
        a->frees++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long long ops = bench_arg(argc, argv, 1, 12000000);
    unsigned threads = (unsigned)bench_arg(argc, argv, 2, 4);
    larson_nslots = (size_t)bench_arg(argc, argv, 3, 20000);

    larson_slots = bench_xmalloc(larson_nslots * sizeof *larson_slots);
    bench_rng_t rng = {42};
    uint64_t sum = 0;
    for (size_t i = 0; i < larson_nslots; i++) {
        atomic_init(&larson_slots[i], larson_new(&rng, i + 1));
        sum += i + 1; /* tags allocated by main */
    }

    larson_arg_t *args = bench_xmalloc(threads * sizeof *args);
    pthread_t *tids = bench_xmalloc(threads * sizeof *tids);
    for (unsigned t = 0; t < threads; t++) {
        args[t] = (larson_arg_t){.ops = ops / threads, .id = t};
        if (pthread_create(&tids[t], NULL, larson_thread, &args[t]) != 0)
            bench_fail("pthread_create");
    }
    uint64_t freed = 0, frees = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        freed += args[t].tags;
        frees += args[t].frees;
    }
    for (size_t i = 0; i < larson_nslots; i++) {
        freed += larson_free(atomic_load(&larson_slots[i]));
        frees++;
    }
    /* What was allocated by the threads: their tag sequences, known in
     * closed form; it must match what was freed. */
    for (unsigned t = 0; t < threads; t++) {
        uint64_t base = ((uint64_t)t + 1) << 40, n = (uint64_t)args[t].ops;
        sum += base * n + n * (n + 1) / 2;
    }
    if (sum != freed)
        bench_fail("larson: tags freed differ from tags allocated");
    free(tids);
    free(args);
    free(larson_slots);
    bench_print_value("ops", frees);
    bench_print_checksum(bench_mix(freed, frees));
    return 0;
}
