/*
 * trim - a loop in the manner of stress-ng's malloc stressor, calling
 * malloc_trim(0) one step in eight.
 *
 *   trim [OPS] [THREADS] [SLOTS] [MAXBYTES]
 *
 * Each of THREADS (default 4) threads owns SLOTS (default 1024) slots and
 * does its share of OPS (default 40k) steps on a random slot: a full slot is
 * freed or realloc'ed to a new size (half each), an empty one gets a block
 * from malloc or calloc (half each); sizes are uniform in 16 .. MAXBYTES
 * (default 64 KiB, so about half are above segshim's 32 KiB segment).  Every
 * eighth step of each thread calls glibc's malloc_trim(0), as the stressor
 * does: a program that trims often must not pay for blocks the allocator
 * keeps elsewhere (under the peers, which do not define malloc_trim, the call
 * reaches glibc's own, nearly empty, arenas).
 *
 * Checksum: the tags of the blocks freed and their number.  Prints "ops".
 */
#include "bench_common.h"

#include <malloc.h>

typedef struct trim_arg_s {
    long long ops;
    size_t slots, maxbytes;
    unsigned id;
    uint64_t tags, frees, calls, allocated;
} trim_arg_t;

typedef struct trim_slot_s {
    unsigned char *p;
    size_t size;
} trim_slot_t;

/* Tag, size and tail (bench_block_fill) and a word on each page. */
static void trim_fill(trim_slot_t *s, uint64_t tag)
{
    bench_block_fill(s->p, s->size, tag);
    for (size_t off = 4096; off + 16 <= s->size; off += 4096)
        memcpy(s->p + off, &tag, 8);
}

static void *trim_thread(void *varg)
{
    trim_arg_t *a = varg;
    bench_rng_t rng = {0x7219e000u + a->id};
    trim_slot_t *slots = calloc(a->slots, sizeof *slots);
    if (slots == NULL)
        bench_fail("trim: calloc failed");
    uint64_t tag = ((uint64_t)a->id + 1) << 40;
    for (long long op = 0; op < a->ops; op++) {
        trim_slot_t *s = &slots[bench_rng_below(&rng, a->slots)];
        size_t size = 16 + (size_t)bench_rng_below(&rng, a->maxbytes - 15);
        int half = (int)(bench_rng_next(&rng) & 1);
        if (s->p != NULL && half) {
            a->tags += bench_block_check(s->p, "trim: block overwritten");
            a->frees++;
            free(s->p);
            s->p = NULL;
        } else if (s->p != NULL) {
            uint64_t t = bench_block_check(s->p, "trim: block overwritten before realloc");
            unsigned char *q = bench_escape(realloc(s->p, size));
            if (q == NULL)
                bench_fail("trim: realloc failed");
            if (memcmp(q, &t, 8) != 0)
                bench_fail("trim: realloc lost the block's head");
            s->p = q;
            s->size = size;
            trim_fill(s, t);
        } else {
            s->p = half ? bench_escape(calloc(1, size)) : bench_xmalloc(size);
            if (s->p == NULL)
                bench_fail("trim: calloc failed");
            if (half && (s->p[0] != 0 || s->p[size - 1] != 0))
                bench_fail("trim: calloc returned dirty memory");
            s->size = size;
            trim_fill(s, ++tag);
        }
        a->calls++;
        if (op % 8 == 7)
            malloc_trim(0);
    }
    for (size_t i = 0; i < a->slots; i++)
        if (slots[i].p != NULL) {
            a->tags += bench_block_check(slots[i].p, "trim: block overwritten");
            a->frees++;
            free(slots[i].p);
        }
    free(slots);
    a->allocated = tag - (((uint64_t)a->id + 1) << 40);
    return NULL;
}

int main(int argc, char **argv)
{
    long long ops = bench_arg(argc, argv, 1, 40000);
    unsigned n = (unsigned)bench_arg(argc, argv, 2, 4);
    size_t slots = (size_t)bench_arg(argc, argv, 3, 1024);
    size_t maxbytes = (size_t)bench_arg(argc, argv, 4, 65536);
    if (maxbytes < 16)
        bench_fail("trim: MAXBYTES below 16");
    trim_arg_t *args = bench_xmalloc(n * sizeof *args);
    for (unsigned i = 0; i < n; i++)
        args[i] = (trim_arg_t){.ops = ops / n, .slots = slots, .maxbytes = maxbytes, .id = i};
    bench_run_threads(n, trim_thread, args, sizeof *args);
    uint64_t tags = 0, frees = 0, calls = 0;
    for (unsigned i = 0; i < n; i++) {
        if (args[i].tags != bench_tag_sum(((uint64_t)i + 1) << 40, args[i].allocated) ||
            args[i].frees != args[i].allocated)
            bench_fail("trim: blocks freed differ from blocks allocated");
        tags += args[i].tags;
        frees += args[i].frees;
        calls += args[i].calls;
    }
    free(args);
    bench_print_value("ops", calls);
    bench_print_checksum(bench_mix(bench_mix(tags, frees), calls));
    return 0;
}
