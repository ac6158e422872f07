/*
 * pairs - the malloc+free pair, for counting instructions with callgrind.
 *
 *   pairs one|hundred|none-one|none-hundred SIZE [PAIRS]
 *
 *   one           PAIRS (default 1M) times: p = malloc(SIZE); free(p);
 *   hundred       PAIRS/100 times: 100 mallocs, then the 100 frees in the
 *                 same order (100 blocks live);
 *   none-*        the same loops with the calls replaced by an opaque
 *                 pointer, to measure the loop's own cost.
 *
 * Each loop is a noinline function named pairs_loop_<mode>, so that
 *
 *   valgrind --tool=callgrind --toggle-collect=pairs_loop_* ./pairs one 64
 *
 * counts only the loop and what it calls.  scripts/bench.py --instructions
 * divides the collected Ir by PAIRS.  A warm-up of 1000 pairs (100 live)
 * runs first outside those functions, so the allocator's initialisation and
 * first-touch slow paths are outside the count, as in a long-running
 * program.
 */
#include "bench_common.h"

static char pairs_dummy[64];

__attribute__((noinline)) void pairs_loop_one(size_t size, long n)
{
    for (long i = 0; i < n; i++) {
        void *p = bench_escape(malloc(size));
        free(p);
    }
}

__attribute__((noinline)) void pairs_loop_hundred(size_t size, long n)
{
    void *live[100];
    for (long i = 0; i < n / 100; i++) {
        for (int j = 0; j < 100; j++)
            live[j] = bench_escape(malloc(size));
        for (int j = 0; j < 100; j++)
            free(live[j]);
    }
}

__attribute__((noinline)) void pairs_loop_none_one(size_t size, long n)
{
    for (long i = 0; i < n; i++) {
        void *p = bench_escape(pairs_dummy + (size & 1));
        bench_escape(p);
    }
}

__attribute__((noinline)) void pairs_loop_none_hundred(size_t size, long n)
{
    void *live[100];
    for (long i = 0; i < n / 100; i++) {
        for (int j = 0; j < 100; j++)
            live[j] = bench_escape(pairs_dummy + (size & 1));
        for (int j = 0; j < 100; j++)
            bench_escape(live[j]);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pairs one|hundred|none-one|none-hundred SIZE [PAIRS]\n");
        return 2;
    }
    size_t size = (size_t)bench_arg(argc, argv, 2, 64);
    long n = (long)bench_arg(argc, argv, 3, 1000000);
    void (*loop)(size_t, long);
    if (strcmp(argv[1], "one") == 0)
        loop = pairs_loop_one;
    else if (strcmp(argv[1], "hundred") == 0)
        loop = pairs_loop_hundred;
    else if (strcmp(argv[1], "none-one") == 0)
        loop = pairs_loop_none_one;
    else if (strcmp(argv[1], "none-hundred") == 0)
        loop = pairs_loop_none_hundred;
    else {
        fprintf(stderr, "pairs: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    /* warm-up outside the counted functions: 100 live blocks, 10 rounds */
    void *warm[100];
    for (int r = 0; r < 10; r++) {
        for (int j = 0; j < 100; j++)
            warm[j] = bench_escape(malloc(size));
        for (int j = 0; j < 100; j++)
            free(warm[j]);
    }
    loop(size, n);
    printf("checksum: %016" PRIx64 "\n", (uint64_t)size * 1000003u + (uint64_t)n);
    return 0;
}
