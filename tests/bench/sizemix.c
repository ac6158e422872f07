/*
 * sizemix - a realistic size mix: mostly small, a tail above one segment.
 *
 *   sizemix [OPS] [LIVE_MB] [THREADS]
 *
 * Sizes are drawn as measured programs draw them (many small objects, a few
 * buffers): 70% 16-128 B, 20% 128 B-1 KiB, 8% 1-32 KiB and 2% 32 KiB-1 MiB,
 * each band log-uniform.  The last band is above segshim's 32 KiB segment, so
 * it leaves the per-thread heaps (today for glibc): the boundary is part of
 * the workload, as it is of real programs.
 *
 * Each of THREADS (default 1) threads fills slots until its share of LIVE_MB
 * (default 64 MB) is live, then does its share of OPS (default 4M)
 * replacements of a slot picked with a skew (low slots far more often), so
 * lifetimes range from a few steps to the whole run.  A block gets a word
 * written at its head, its tail and on each of its 4 KiB pages.
 *
 * Checksum: the tags read back from every block freed.  Prints "ops".
 */
#include "bench_common.h"

typedef struct sizemix_arg_s {
    long long ops;
    size_t bytes;
    unsigned id;
    uint64_t sum;
} sizemix_arg_t;

typedef struct sizemix_slot_s {
    unsigned char *p;
    size_t size;
} sizemix_slot_t;

#define SIZEMIX_MEAN 7000 /* about the mean of the mix, to size the slot array */

static size_t sizemix_size(bench_rng_t *r)
{
    unsigned band = (unsigned)bench_rng_below(r, 100);
    if (band < 70)
        return bench_size_between(r, 16, 128);
    if (band < 90)
        return bench_size_between(r, 129, 1024);
    if (band < 98)
        return bench_size_between(r, 1025, 32768);
    return bench_size_between(r, 32769, 1 << 20);
}

static void sizemix_new(sizemix_slot_t *s, bench_rng_t *r, uint64_t tag)
{
    s->size = sizemix_size(r);
    s->p = bench_xmalloc(s->size);
    bench_block_fill(s->p, s->size, tag);
    for (size_t off = 4096; off + 16 <= s->size; off += 4096)
        memcpy(s->p + off, &tag, 8);
}

static uint64_t sizemix_free(sizemix_slot_t *s)
{
    uint64_t tag = bench_block_check(s->p, "sizemix: block overwritten");
    for (size_t off = 4096; off + 16 <= s->size; off += 4096)
        if (memcmp(s->p + off, &tag, 8) != 0)
            bench_fail("sizemix: page of a block overwritten");
    free(s->p);
    return tag;
}

static void *sizemix_thread(void *varg)
{
    sizemix_arg_t *a = varg;
    bench_rng_t rng = {0x51ce0000u + a->id};
    size_t n = a->bytes / SIZEMIX_MEAN;
    if (n < 16)
        n = 16;
    sizemix_slot_t *slots = bench_xmalloc(n * sizeof *slots);
    uint64_t tag = (uint64_t)a->id << 48, h = 0;
    for (size_t i = 0; i < n; i++)
        sizemix_new(&slots[i], &rng, ++tag);
    for (long long op = 0; op < a->ops; op++) {
        size_t bound = 1 + (size_t)bench_rng_below(&rng, n);
        sizemix_slot_t *s = &slots[bench_rng_below(&rng, bound)];
        h = bench_mix(h, sizemix_free(s));
        sizemix_new(s, &rng, ++tag);
    }
    for (size_t i = 0; i < n; i++)
        h = bench_mix(h, sizemix_free(&slots[i]));
    free(slots);
    a->sum = h;
    return NULL;
}

int main(int argc, char **argv)
{
    long long ops = bench_arg(argc, argv, 1, 4000000);
    long long live_mb = bench_arg(argc, argv, 2, 64);
    unsigned n = (unsigned)bench_arg(argc, argv, 3, 1);
    sizemix_arg_t *args = bench_xmalloc(n * sizeof *args);
    for (unsigned i = 0; i < n; i++)
        args[i] = (sizemix_arg_t){.ops = ops / n, .bytes = (size_t)live_mb * 1000000 / n, .id = i};
    bench_run_threads(n, sizemix_thread, args, sizeof *args);
    uint64_t h = 0;
    for (unsigned i = 0; i < n; i++)
        h = bench_mix(h, args[i].sum);
    free(args);
    bench_print_value("ops", (uint64_t)(ops / n) * n);
    bench_print_checksum(h);
    return 0;
}
