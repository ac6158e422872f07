/*
 * bench_common.h - helpers shared by the benchmark workloads in tests/bench.
 *
 * Every workload is a plain C program that allocates through the ordinary
 * malloc family (so that LD_PRELOAD decides the allocator), takes its size
 * and thread count as arguments, and ends by printing one line
 *
 *     checksum: <16 hex digits>
 *
 * computed from the data it wrote and read back.  The checksum depends only
 * on the arguments, never on the allocator, the addresses it returned or the
 * interleaving of threads, so scripts/bench.sh can compare it across
 * allocators: a mismatch means a block was corrupted.
 *
 * Timing is not done here: scripts/bench.sh measures every workload from the
 * outside with bench_runner (wall, user+sys, peak RSS).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: one state word per thread, good enough for picking sizes and
 * slots, and identical on every run for the same seed. */
typedef struct bench_rng_s {
    uint64_t s;
} bench_rng_t;

static inline uint64_t bench_rng_next(bench_rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0); the modulo bias is irrelevant here. */
static inline uint64_t bench_rng_below(bench_rng_t *r, uint64_t n)
{
    return bench_rng_next(r) % n;
}

/* A mixing function for checksums: order-sensitive accumulation. */
static inline uint64_t bench_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

/* A size of 16 B .. max bytes, log-uniform: as many requests between 16 and
 * 32 bytes as between 16 and 32 KiB, the shape real programs have. */
static inline size_t bench_size_logu(bench_rng_t *r, size_t max)
{
    unsigned maxbits = 63 - (unsigned)__builtin_clzll((unsigned long long)max);
    unsigned bits = 4 + (unsigned)bench_rng_below(r, maxbits - 4 + 1);
    size_t lo = (size_t)1 << bits;
    size_t hi = lo << 1;
    if (hi > max + 1)
        hi = max + 1;
    return lo + (size_t)bench_rng_below(r, hi - lo);
}

/* Argument i as a positive integer, or dflt when absent or "-".  K, M and G
 * suffixes multiply by 1024, 1024^2 and 1024^3. */
static inline long long bench_arg(int argc, char **argv, int i, long long dflt)
{
    if (i >= argc || argv[i][0] == '\0' || strcmp(argv[i], "-") == 0)
        return dflt;
    char *end;
    long long v = strtoll(argv[i], &end, 10);
    switch (*end) {
    case 'k': case 'K': v *= 1024; end++; break;
    case 'm': case 'M': v *= 1024 * 1024; end++; break;
    case 'g': case 'G': v *= 1024LL * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end != '\0' || v <= 0) {
        fprintf(stderr, "bad argument %d: '%s'\n", i, argv[i]);
        exit(2);
    }
    return v;
}

/* Hide a pointer from the optimizer, so that a malloc+free pair whose block
 * does not escape is not elided (GCC and Clang may remove such pairs). */
static inline void *bench_escape(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

static inline void *bench_xmalloc(size_t n)
{
    void *p = bench_escape(malloc(n));
    if (p == NULL) {
        fprintf(stderr, "malloc(%zu) failed\n", n);
        abort();
    }
    return p;
}

static inline void bench_print_checksum(uint64_t h)
{
    printf("checksum: %016" PRIx64 "\n", h);
    fflush(stdout);
}

static inline void bench_fail(const char *what)
{
    fprintf(stderr, "CORRUPTION: %s\n", what);
    fflush(stderr);
    abort();
}

#endif /* BENCH_COMMON_H */
