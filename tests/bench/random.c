/*
 * random - random sizes up to 32 KiB with random lifetimes.
 *
 *   random [OPS] [WORKING_SET_MB] [THREADS]
 *
 * Each thread fills an array of slots with blocks of log-uniform size
 * (16 B .. 32 KiB) until its share of the working set (default 200 MB in
 * all) is live, then does its share of OPS (default 8M) replacements: pick
 * a slot, check and free its block, allocate a new one.  Slots are picked
 * with a skew (low slots much more often than high ones), so lifetimes range
 * from a few operations to the whole run.  Every block gets a word written
 * at its head, its tail and every 512 bytes between, so its pages are
 * touched as a real program's would be.
 */
#include "bench_common.h"

#include <pthread.h>

typedef struct random_arg_s {
    long long ops;
    size_t bytes;
    unsigned id;
    uint64_t sum;
} random_arg_t;

typedef struct random_slot_s {
    unsigned char *p;
    size_t size;
} random_slot_t;

static void random_fill(random_slot_t *s, uint64_t tag)
{
    for (size_t off = 0; off + 8 <= s->size; off += 512)
        memcpy(s->p + off, &tag, 8);
    memcpy(s->p + s->size - 8, &tag, 8);
}

static uint64_t random_check(const random_slot_t *s)
{
    uint64_t a, b;
    memcpy(&a, s->p, 8);
    memcpy(&b, s->p + s->size - 8, 8);
    if (a != b)
        bench_fail("random: head and tail of a block disagree");
    return a;
}

static void *random_thread(void *varg)
{
    random_arg_t *a = varg;
    bench_rng_t rng = {0xabcdef00u + a->id};
    const size_t mean = 4466; /* mean of the log-uniform sizes 16..32K */
    size_t n = a->bytes / mean;
    if (n < 16)
        n = 16;
    random_slot_t *slots = bench_xmalloc(n * sizeof *slots);
    uint64_t tag = (uint64_t)a->id << 48, h = 0;

    for (size_t i = 0; i < n; i++) {
        slots[i].size = bench_size_logu(&rng, 32768);
        slots[i].p = bench_xmalloc(slots[i].size);
        random_fill(&slots[i], ++tag);
    }
    for (long long op = 0; op < a->ops; op++) {
        /* skewed: the slot is uniform below a uniform bound */
        size_t bound = 1 + (size_t)bench_rng_below(&rng, n);
        random_slot_t *s = &slots[bench_rng_below(&rng, bound)];
        h = bench_mix(h, random_check(s));
        free(s->p);
        s->size = bench_size_logu(&rng, 32768);
        s->p = bench_xmalloc(s->size);
        random_fill(s, ++tag);
    }
    for (size_t i = 0; i < n; i++) {
        h = bench_mix(h, random_check(&slots[i]));
        free(slots[i].p);
    }
    free(slots);
    a->sum = h;
    return NULL;
}

int main(int argc, char **argv)
{
    long long ops = bench_arg(argc, argv, 1, 8000000);
    long long ws_mb = bench_arg(argc, argv, 2, 200);
    unsigned threads = (unsigned)bench_arg(argc, argv, 3, 1);

    random_arg_t *args = bench_xmalloc(threads * sizeof *args);
    pthread_t *tids = bench_xmalloc(threads * sizeof *tids);
    for (unsigned t = 0; t < threads; t++) {
        args[t] = (random_arg_t){.ops = ops / threads, .bytes = (size_t)ws_mb * 1000000 / threads, .id = t};
        if (threads == 1)
            random_thread(&args[t]);
        else if (pthread_create(&tids[t], NULL, random_thread, &args[t]) != 0)
            bench_fail("pthread_create");
    }
    uint64_t h = 0;
    for (unsigned t = 0; t < threads; t++) {
        if (threads > 1)
            pthread_join(tids[t], NULL);
        h = bench_mix(h, args[t].sum);
    }
    free(tids);
    free(args);
    bench_print_checksum(h);
    return 0;
}
