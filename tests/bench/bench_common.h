/*
 * bench_common.h - helpers shared by the benchmark workloads in tests/bench.
 *
 * Every workload is a plain C program that allocates through the ordinary
 * malloc family (so that LD_PRELOAD decides the allocator), takes its size
 * and thread count as arguments, and ends by printing one line
 *
 *     checksum: <16 hex digits>
 *
 * (and, for some, more "key: value" lines such as "ops: N", the number of
 * malloc+free pairs, which scripts/bench.py turns into a throughput).
 * computed from the data it wrote and read back.  The checksum depends only
 * on the arguments, never on the allocator, the addresses it returned or the
 * interleaving of threads, so scripts/bench.py can compare it across
 * allocators: a mismatch means a block was corrupted.
 *
 * Timing is not done here: scripts/bench.py measures every workload from the
 * outside with bench_runner (wall, user+sys, peak RSS).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* A size of lo .. hi bytes (16 <= lo <= hi), log-uniform like
 * bench_size_logu: each power-of-two band between them equally likely. */
static inline size_t bench_size_between(bench_rng_t *r, size_t lo, size_t hi)
{
    unsigned lobits = 63 - (unsigned)__builtin_clzll((unsigned long long)lo);
    unsigned hibits = 63 - (unsigned)__builtin_clzll((unsigned long long)hi);
    for (;;) {
        unsigned bits = lobits + (unsigned)bench_rng_below(r, hibits - lobits + 1);
        size_t band = (size_t)1 << bits;
        size_t s = band + (size_t)bench_rng_below(r, band);
        if (s >= lo && s <= hi)
            return s;
    }
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

static inline void bench_print_value(const char *key, uint64_t v)
{
    printf("%s: %" PRIu64 "\n", key, v);
    fflush(stdout);
}

/* A block of size >= 16 carries a tag at its head and its size in the next
 * word and, from 24 bytes on, the tag inverted in its last word;
 * bench_block_check verifies them (so an overwrite by the allocator or a
 * neighbour is caught) and returns the tag.  Bytes 16 .. size-8 are free for
 * the workload's own use (a link word, for instance). */
static inline void bench_block_fill(unsigned char *p, uint64_t size, uint64_t tag)
{
    uint64_t inv = ~tag;
    memcpy(p, &tag, 8);
    memcpy(p + 8, &size, 8);
    if (size >= 24)
        memcpy(p + size - 8, &inv, 8);
}

static inline uint64_t bench_block_check(const unsigned char *p, const char *who)
{
    uint64_t tag, size, inv;
    memcpy(&tag, p, 8);
    memcpy(&size, p + 8, 8);
    if (size < 16 || size > ((uint64_t)1 << 32))
        bench_fail(who);
    if (size >= 24) {
        memcpy(&inv, p + size - 8, 8);
        if (inv != ~tag)
            bench_fail(who);
    }
    return tag;
}

/* The sum of the tags base+1 .. base+n: what a thread that tagged its n
 * blocks in sequence must see freed, whatever the interleaving. */
static inline uint64_t bench_tag_sum(uint64_t base, uint64_t n)
{
    return base * n + n * (n + 1) / 2;
}

/* Run fn on n threads, argument i at args + i * stride, and join them all;
 * with one thread, call fn on the main thread (no thread is created). */
static inline void bench_run_threads(unsigned n, void *(*fn)(void *), void *args, size_t stride)
{
    if (n == 1) {
        fn(args);
        return;
    }
    pthread_t *tids = bench_xmalloc(n * sizeof *tids);
    for (unsigned i = 0; i < n; i++)
        if (pthread_create(&tids[i], NULL, fn, (char *)args + i * stride) != 0)
            bench_fail("pthread_create");
    for (unsigned i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
    free(tids);
}

/* Waiting for another thread without a futex: yield the CPU a few times,
 * then sleep 50 us at a time, so that idle threads do not steal the CPUs
 * from working ones when threads outnumber cores.  *spins counts the
 * fruitless tries; the caller resets it to 0 when it made progress. */
static inline void bench_backoff(unsigned *spins)
{
    if (++*spins < 16) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
}

/* A mailbox between threads: a lock-free stack of nodes that any thread
 * pushes onto and only its owner empties, all at once (so no ABA).  No
 * mutex: the workloads must not add futex calls of their own to what
 * scripts/bench.py --scaling counts. */
typedef struct bench_node_s {
    struct bench_node_s *next;
} bench_node_t;

typedef struct bench_mailbox_s {
    _Alignas(64) bench_node_t *head; /* only through __atomic builtins */
} bench_mailbox_t;

static inline void bench_mailbox_push(bench_mailbox_t *m, bench_node_t *n)
{
    bench_node_t *old = __atomic_load_n(&m->head, __ATOMIC_RELAXED);
    do
        n->next = old;
    while (!__atomic_compare_exchange_n(&m->head, &old, n, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

static inline bench_node_t *bench_mailbox_take(bench_mailbox_t *m)
{
    if (__atomic_load_n(&m->head, __ATOMIC_RELAXED) == NULL)
        return NULL;
    return __atomic_exchange_n(&m->head, NULL, __ATOMIC_ACQUIRE);
}

#endif /* BENCH_COMMON_H */
