/*
 * large - blocks above one segment, and realloc across the segment size.
 *
 *   large [OPS] [LIVE] [THREADS]
 *
 * Each of THREADS (default 1) threads keeps LIVE (default 64) blocks and
 * does its share of OPS (default 40k) steps, alternating two kinds:
 *
 *   replace  free a random slot's block and allocate 64 KiB .. 4 MiB
 *            (log-uniform) in its place, writing a word on each 4 KiB page;
 *   grow     start a buffer at 1-16 KiB, grow it by realloc (x1.5 to x2 a
 *            step) past 64 KiB-1 MiB, then shrink it by realloc back below
 *            16 KiB and free it, checking at each step that what was written
 *            survived: a string builder or a list node that grows past the
 *            32 KiB segment size and back (the redis list case).
 *
 * Checksum: the words read back.  Prints "ops" (allocator calls made).
 */
#include "bench_common.h"

typedef struct large_arg_s {
    long long ops;
    size_t live;
    unsigned id;
    uint64_t sum, calls;
} large_arg_t;

typedef struct large_slot_s {
    unsigned char *p;
    size_t size;
} large_slot_t;

/* One word at the start of each 4 KiB page, derived from tag and the
 * offset: the words that fit in [0, to) and did not fit in [0, from). */
static void large_write(unsigned char *p, size_t from, size_t to, uint64_t tag)
{
    size_t off = from >= 8 ? (from - 8) & ~(size_t)4095 : 0;
    for (; off + 8 <= to; off += 4096) {
        if (off + 8 <= from)
            continue;
        uint64_t v = tag ^ off;
        memcpy(p + off, &v, 8);
    }
}

static uint64_t large_read(const unsigned char *p, size_t to, uint64_t tag)
{
    uint64_t h = 0;
    for (size_t off = 0; off + 8 <= to; off += 4096) {
        uint64_t v;
        memcpy(&v, p + off, 8);
        if (v != (tag ^ off))
            bench_fail("large: a word did not survive");
        h = bench_mix(h, v);
    }
    return h;
}

static void *large_realloc(void *p, size_t size)
{
    void *q = bench_escape(realloc(p, size));
    if (q == NULL)
        bench_fail("large: realloc failed");
    return q;
}

static uint64_t large_grow(bench_rng_t *r, uint64_t tag, uint64_t *calls)
{
    size_t size = bench_size_between(r, 1024, 16384);
    size_t top = bench_size_between(r, 65536, 1 << 20);
    size_t bottom = bench_size_between(r, 1024, 16384);
    unsigned char *p = bench_xmalloc(size);
    large_write(p, 0, size, tag);
    *calls += 2; /* the malloc and the free */
    while (size < top) {
        size_t next = size + size / 2 + (size_t)bench_rng_below(r, size / 2 + 1);
        p = large_realloc(p, next);
        large_write(p, size, next, tag);
        size = next;
        ++*calls;
    }
    uint64_t h = large_read(p, size, tag);
    while (size > bottom) {
        size_t next = size / 2 > bottom ? size / 2 : bottom;
        p = large_realloc(p, next);
        size = next;
        ++*calls;
    }
    h = bench_mix(h, large_read(p, size, tag));
    free(p);
    return h;
}

static void *large_thread(void *varg)
{
    large_arg_t *a = varg;
    bench_rng_t rng = {0x1a29e000u + a->id};
    large_slot_t *slots = bench_xmalloc(a->live * sizeof *slots);
    uint64_t tag = (uint64_t)a->id << 48, h = 0;
    for (size_t i = 0; i < a->live; i++) {
        slots[i].size = bench_size_between(&rng, 65536, 4 << 20);
        slots[i].p = bench_xmalloc(slots[i].size);
        large_write(slots[i].p, 0, slots[i].size, ++tag);
    }
    for (long long op = 0; op < a->ops; op++) {
        if (op & 1) {
            h = bench_mix(h, large_grow(&rng, ++tag, &a->calls));
            continue;
        }
        large_slot_t *s = &slots[bench_rng_below(&rng, a->live)];
        uint64_t old;
        memcpy(&old, s->p, 8);
        h = bench_mix(h, large_read(s->p, s->size, old));
        free(s->p);
        s->size = bench_size_between(&rng, 65536, 4 << 20);
        s->p = bench_xmalloc(s->size);
        large_write(s->p, 0, s->size, ++tag);
        a->calls += 2;
    }
    for (size_t i = 0; i < a->live; i++) {
        uint64_t old;
        memcpy(&old, slots[i].p, 8);
        h = bench_mix(h, large_read(slots[i].p, slots[i].size, old));
        free(slots[i].p);
    }
    free(slots);
    a->sum = h;
    return NULL;
}

int main(int argc, char **argv)
{
    long long ops = bench_arg(argc, argv, 1, 40000);
    size_t live = (size_t)bench_arg(argc, argv, 2, 64);
    unsigned n = (unsigned)bench_arg(argc, argv, 3, 1);
    large_arg_t *args = bench_xmalloc(n * sizeof *args);
    for (unsigned i = 0; i < n; i++)
        args[i] = (large_arg_t){.ops = ops / n, .live = live, .id = i};
    bench_run_threads(n, large_thread, args, sizeof *args);
    uint64_t h = 0, calls = 0;
    for (unsigned i = 0; i < n; i++) {
        h = bench_mix(h, args[i].sum);
        calls += args[i].calls;
    }
    free(args);
    bench_print_value("ops", calls);
    bench_print_checksum(h);
    return 0;
}
