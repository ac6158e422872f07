/*
 * tiny - a small program: a few MiB of heap, a short run; peak RSS matters.
 *
 *   tiny [HEAP_KB] [OPS] [THREADS]
 *
 * Most processes on a machine are small (shells' helpers, build tools, CLI
 * utilities): an allocator that reserves a huge page or a slab per size class
 * and thread before the program has used any of it doubles their footprint.
 * Each of THREADS (default 1) threads builds a chained hash table of
 * string keys (8-64 B) and values (16-512 B), with a 1-16 KiB "read buffer"
 * every 64 entries, until its share of HEAP_KB (default 4096) is live, then
 * does its share of OPS (default 200k) steps: replace a value, delete and
 * re-insert a key, or look one up; at the end it frees everything.  The
 * whole run takes a few milliseconds: the figure to read is peak RSS.
 *
 * Checksum: the bytes of the values looked up and freed.  Prints "ops".
 */
#include "bench_common.h"

typedef struct tiny_entry_s {
    struct tiny_entry_s *next;
    char *key;
    unsigned char *value;
    size_t vlen;
    unsigned char *buffer; /* every 64th entry holds a buffer too */
} tiny_entry_t;

typedef struct tiny_arg_s {
    size_t bytes;
    long long ops;
    unsigned id;
    uint64_t sum, calls;
} tiny_arg_t;

#define TINY_BUCKETS 4096

static uint64_t tiny_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void tiny_set_value(tiny_entry_t *e, bench_rng_t *r, uint64_t *calls)
{
    e->vlen = bench_size_between(r, 16, 512);
    e->value = bench_xmalloc(e->vlen);
    memset(e->value, (int)(bench_rng_next(r) & 0xff), e->vlen);
    ++*calls;
}

static uint64_t tiny_drop_value(tiny_entry_t *e, uint64_t *calls)
{
    uint64_t h = bench_mix(e->vlen, e->value[0]) + e->value[e->vlen - 1];
    free(e->value);
    ++*calls;
    return h;
}

static tiny_entry_t *tiny_new(bench_rng_t *r, uint64_t serial, size_t *bytes, uint64_t *calls)
{
    tiny_entry_t *e = bench_xmalloc(sizeof *e);
    size_t klen = bench_size_between(r, 16, 64) - 8;
    e->key = bench_xmalloc(klen + 1);
    int n = snprintf(e->key, klen + 1, "k%" PRIu64 "-", serial);
    for (size_t i = (size_t)n; i < klen; i++)
        e->key[i] = (char)('a' + (serial + i) % 26);
    e->key[klen] = '\0';
    tiny_set_value(e, r, calls);
    e->buffer = NULL;
    *bytes += sizeof *e + klen + 1 + e->vlen;
    if (serial % 64 == 0) {
        size_t blen = bench_size_between(r, 1024, 16384);
        e->buffer = bench_xmalloc(blen);
        memset(e->buffer, 1, blen);
        *bytes += blen;
        ++*calls;
    }
    *calls += 2;
    return e;
}

static uint64_t tiny_drop(tiny_entry_t *e, uint64_t *calls)
{
    uint64_t h = tiny_hash(e->key) ^ tiny_drop_value(e, calls);
    if (e->buffer != NULL) {
        free(e->buffer);
        ++*calls;
    }
    free(e->key);
    free(e);
    *calls += 2;
    return h;
}

/* With several threads, all start allocating together: the workload is
 * threads that run at once, whatever the machine's load.  Without this, a
 * loaded machine could run them one after the other, and glibc would give
 * the second the first one's arena (a fifth less peak RSS: the reference
 * of preload.small_rss moved with the load). */
static pthread_barrier_t tiny_start;
static unsigned tiny_threads;

static void *tiny_thread(void *varg)
{
    tiny_arg_t *a = varg;
    if (tiny_threads > 1)
        pthread_barrier_wait(&tiny_start);
    bench_rng_t rng = {0x7171e000u + a->id};
    tiny_entry_t **table = calloc(TINY_BUCKETS, sizeof *table);
    if (table == NULL)
        bench_fail("tiny: calloc failed");
    size_t bytes = 0;
    uint64_t serial = 0, h = 0;
    while (bytes < a->bytes) {
        tiny_entry_t *e = tiny_new(&rng, ++serial, &bytes, &a->calls);
        tiny_entry_t **b = &table[tiny_hash(e->key) % TINY_BUCKETS];
        e->next = *b;
        *b = e;
    }
    for (long long op = 0; op < a->ops; op++) {
        tiny_entry_t **b = &table[bench_rng_below(&rng, TINY_BUCKETS)];
        if (*b == NULL)
            continue;
        switch (bench_rng_below(&rng, 3)) {
        case 0: /* replace the value */
            h = bench_mix(h, tiny_drop_value(*b, &a->calls));
            tiny_set_value(*b, &rng, &a->calls);
            break;
        case 1: { /* delete the head of the chain, insert a new key */
            tiny_entry_t *e = *b;
            *b = e->next;
            h = bench_mix(h, tiny_drop(e, &a->calls));
            e = tiny_new(&rng, ++serial, &bytes, &a->calls);
            tiny_entry_t **nb = &table[tiny_hash(e->key) % TINY_BUCKETS];
            e->next = *nb;
            *nb = e;
            break;
        }
        default: /* look up */
            h = bench_mix(h, (*b)->value[(*b)->vlen / 2]);
            break;
        }
    }
    for (size_t i = 0; i < TINY_BUCKETS; i++)
        while (table[i] != NULL) {
            tiny_entry_t *e = table[i];
            table[i] = e->next;
            h = bench_mix(h, tiny_drop(e, &a->calls));
        }
    free(table);
    a->sum = h;
    return NULL;
}

int main(int argc, char **argv)
{
    long long heap_kb = bench_arg(argc, argv, 1, 4096);
    long long ops = bench_arg(argc, argv, 2, 200000);
    unsigned n = (unsigned)bench_arg(argc, argv, 3, 1);
    tiny_arg_t *args = bench_xmalloc(n * sizeof *args);
    for (unsigned i = 0; i < n; i++)
        args[i] = (tiny_arg_t){.bytes = (size_t)heap_kb * 1024 / n, .ops = ops / n, .id = i};
    tiny_threads = n;
    if (n > 1 && pthread_barrier_init(&tiny_start, NULL, n) != 0)
        bench_fail("tiny: pthread_barrier_init");
    bench_run_threads(n, tiny_thread, args, sizeof *args);
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
