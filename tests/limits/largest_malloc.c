/*
 * largest_malloc.c - under RLIMIT_AS 4 GiB (`ulimit -v 4G`), the largest
 * single malloc that succeeds under the shim is at least 90% of glibc's.
 *
 * Each probe is a fresh child (`largest_malloc probe SIZE`) that starts as a
 * program does (small blocks first, so the pool is in use), then asks for
 * SIZE bytes and writes its first and last byte; the parent binary-searches
 * the largest SIZE that works, to 1 MiB, with the shim and without it.
 */
#include "limits_common.h"

#define LIMIT (4 * LIMITS_GIB)

static int probe(size_t size) {
    void *small[256];
    for (int i = 0; i < 256; i++) {
        small[i] = malloc(16 + (size_t)i * 64);
        if (!small[i]) return 2;
        memset(small[i], i, 16);
    }
    unsigned char *p = malloc(size);
    if (!p) return errno == ENOMEM ? 1 : 3;
    p[0] = 1;
    p[size - 1] = 1;
    free(p);
    for (int i = 0; i < 256; i++) free(small[i]);
    return 0;
}

/* Largest size (MiB granularity) whose probe exits 0. */
static uint64_t largest(int shim) {
    uint64_t lo = 0, hi = LIMIT; /* lo works (0: nothing yet), hi does not */
    while (hi - lo > LIMITS_MIB) {
        uint64_t mid = (lo + (hi - lo) / 2) & ~(LIMITS_MIB - 1);
        char arg[32], out[256];
        snprintf(arg, sizeof arg, "%llu", (unsigned long long)mid);
        char *argv[] = {"largest_malloc", "probe", arg, NULL};
        int rc = limits_run(shim, LIMIT, argv, out, sizeof out);
        if (rc == 0) {
            lo = mid;
        } else if (rc == 1) {
            hi = mid;
        } else {
            fprintf(stderr, "FAIL: probe of %llu bytes (%s) exited %d\n", (unsigned long long)mid,
                    shim ? "shim" : "glibc", rc);
            exit(1);
        }
    }
    return lo;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "probe") == 0) return probe((size_t)strtoull(argv[2], NULL, 10));
    limits_shim();
    uint64_t glibc = largest(0), shim = largest(1);
    printf("largest malloc under RLIMIT_AS 4G: glibc %llu MiB, shim %llu MiB (%.1f%%)\n",
           (unsigned long long)(glibc >> 20), (unsigned long long)(shim >> 20), 100.0 * (double)shim / (double)glibc);
    if (glibc < LIMITS_GIB) {
        fprintf(stderr, "FAIL: glibc's largest malloc is only %llu MiB: the limit is not what the test expects\n",
                (unsigned long long)(glibc >> 20));
        return 1;
    }
    if (shim * 10 < glibc * 9) {
        fprintf(stderr, "FAIL: the shim's largest malloc is below 90%% of glibc's\n");
        return 1;
    }
    return 0;
}
