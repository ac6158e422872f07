/*
 * falseshare - false sharing caused by the allocator (cache-thrash and
 * cache-scratch, after the Hoard benchmarks).
 *
 *   falseshare thrash|scratch [ROUNDS] [THREADS] [WRITES] [OBJSIZE]
 *
 *   thrash   each of THREADS (default 2) threads, ROUNDS (default 25000)
 *            times, allocates an OBJSIZE-byte object (default 8), writes
 *            every byte of it WRITES (default 4000) times, and frees it.  An
 *            allocator that hands objects of different threads out of one
 *            cache line makes the threads fight over it ("active" false
 *            sharing);
 *   scratch  as thrash, but the main thread first allocates one object per
 *            thread, all together, and each thread starts by freeing the one
 *            it was given: an allocator that reuses a freed block for the
 *            thread that freed it keeps the line shared ("passive" false
 *            sharing).
 */
#include "bench_common.h"

#include <pthread.h>

typedef struct fs_arg_s {
    long long rounds, writes;
    size_t objsize;
    unsigned id;
    void *given;
    uint64_t sum;
} fs_arg_t;

static void *fs_thread(void *varg)
{
    fs_arg_t *a = varg;
    if (a->given != NULL)
        free(a->given);
    uint64_t h = 0;
    for (long long r = 0; r < a->rounds; r++) {
        volatile unsigned char *p = bench_xmalloc(a->objsize);
        for (size_t b = 0; b < a->objsize; b++)
            p[b] = (unsigned char)(a->id + r);
        for (long long w = 0; w < a->writes; w++)
            for (size_t b = 0; b < a->objsize; b++)
                p[b]++;
        for (size_t b = 0; b < a->objsize; b++)
            h += p[b];
        free((void *)p);
    }
    a->sum = h;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "thrash") != 0 && strcmp(argv[1], "scratch") != 0)) {
        fprintf(stderr, "usage: falseshare thrash|scratch [ROUNDS] [THREADS] [WRITES] [OBJSIZE]\n");
        return 2;
    }
    int scratch = strcmp(argv[1], "scratch") == 0;
    long long rounds = bench_arg(argc, argv, 2, 25000);
    unsigned threads = (unsigned)bench_arg(argc, argv, 3, 2);
    long long writes = bench_arg(argc, argv, 4, 4000);
    size_t objsize = (size_t)bench_arg(argc, argv, 5, 8);

    fs_arg_t *args = bench_xmalloc(threads * sizeof *args);
    pthread_t *tids = bench_xmalloc(threads * sizeof *tids);
    for (unsigned t = 0; t < threads; t++)
        args[t] = (fs_arg_t){.rounds = rounds, .writes = writes, .objsize = objsize, .id = t};
    if (scratch)
        for (unsigned t = 0; t < threads; t++)
            args[t].given = bench_xmalloc(objsize);
    for (unsigned t = 0; t < threads; t++)
        if (pthread_create(&tids[t], NULL, fs_thread, &args[t]) != 0)
            bench_fail("pthread_create");
    uint64_t h = 0;
    for (unsigned t = 0; t < threads; t++) {
        pthread_join(tids[t], NULL);
        h = bench_mix(h, args[t].sum);
    }
    free(tids);
    free(args);
    bench_print_checksum(h);
    return 0;
}
