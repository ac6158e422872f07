/*
 * small - fixed-size small objects, 16 B to 32 KiB.
 *
 *   small one|many [PAIRS_PER_SIZE] [THREADS]
 *
 * For each size 16, 32, ..., 32768 (12 sizes) the program does
 * PAIRS_PER_SIZE malloc+free pairs (default 4M for one, 500K for many):
 *
 *   one   one block live: malloc, touch, free (the allocator's fast path);
 *   many  rounds of LIVE blocks allocated, touched, then freed in a random
 *         order (LIVE = min(1000, 4 MiB / size)), so free lists grow long
 *         and interleave.
 *
 * Each block gets its first and last 8 bytes written and read back; the
 * allocator's cost dominates, not memset.  THREADS (default 1) copies run
 * independently, one per thread.
 */
#include "bench_common.h"

#include <pthread.h>

static const size_t small_sizes[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
#define SMALL_NSIZES (sizeof small_sizes / sizeof small_sizes[0])

typedef struct small_arg_s {
    int many;
    long long pairs;
    unsigned id;
    uint64_t sum;
} small_arg_t;

static inline void small_touch(void *p, size_t size, uint64_t v)
{
    memcpy(p, &v, 8);
    memcpy((char *)p + size - 8, &v, 8);
}

static inline uint64_t small_read(const void *p, size_t size)
{
    uint64_t a, b;
    memcpy(&a, p, 8);
    memcpy(&b, (const char *)p + size - 8, 8);
    if (a != b)
        bench_fail("small: block head and tail disagree");
    return a;
}

static uint64_t small_one(size_t size, long long pairs)
{
    uint64_t h = 0;
    for (long long i = 0; i < pairs; i++) {
        void *p = bench_xmalloc(size);
        small_touch(p, size, (uint64_t)i);
        h += small_read(p, size);
        free(p);
    }
    return h;
}

static uint64_t small_many(size_t size, long long pairs, bench_rng_t *rng)
{
    size_t live = (4u << 20) / size;
    if (live > 1000)
        live = 1000;
    void **blocks = bench_xmalloc(live * sizeof *blocks);
    size_t *order = bench_xmalloc(live * sizeof *order);
    uint64_t h = 0;
    long long done = 0;
    while (done < pairs) {
        size_t n = live;
        if ((long long)n > pairs - done)
            n = (size_t)(pairs - done);
        for (size_t i = 0; i < n; i++) {
            blocks[i] = bench_xmalloc(size);
            small_touch(blocks[i], size, (uint64_t)(done + (long long)i));
            order[i] = i;
        }
        for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)bench_rng_below(rng, i);
            size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        for (size_t i = 0; i < n; i++) {
            void *p = blocks[order[i]];
            h = bench_mix(h, small_read(p, size));
            free(p);
        }
        done += (long long)n;
    }
    free(order);
    free(blocks);
    return h;
}

static void *small_thread(void *varg)
{
    small_arg_t *a = varg;
    bench_rng_t rng = {0x5eed0000u + a->id};
    uint64_t h = 0;
    for (size_t s = 0; s < SMALL_NSIZES; s++) {
        uint64_t r = a->many ? small_many(small_sizes[s], a->pairs, &rng) : small_one(small_sizes[s], a->pairs);
        h = bench_mix(h, r);
    }
    a->sum = h;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "one") != 0 && strcmp(argv[1], "many") != 0)) {
        fprintf(stderr, "usage: small one|many [PAIRS_PER_SIZE] [THREADS]\n");
        return 2;
    }
    int many = strcmp(argv[1], "many") == 0;
    long long pairs = bench_arg(argc, argv, 2, many ? 500000 : 4000000);
    unsigned threads = (unsigned)bench_arg(argc, argv, 3, 1);

    small_arg_t *args = bench_xmalloc(threads * sizeof *args);
    pthread_t *tids = bench_xmalloc(threads * sizeof *tids);
    for (unsigned t = 0; t < threads; t++) {
        args[t] = (small_arg_t){.many = many, .pairs = pairs, .id = t};
        if (threads == 1)
            small_thread(&args[t]);
        else if (pthread_create(&tids[t], NULL, small_thread, &args[t]) != 0)
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
