/*
 * stress_common.h - helpers shared by the stress programs: a per-thread
 * random generator, the block pattern (derived from the block's address and
 * a serial, so that a block moved, overlapped or handed out twice is caught),
 * allocation through the pool with a counted fallback to libc, VmRSS, and a
 * failure macro that names the file and line.
 *
 * Every program here is a plain C program that returns nonzero (or aborts)
 * on failure; they are registered in CTest from CMakeLists.txt.
 */
#ifndef STRESS_COMMON_H
#define STRESS_COMMON_H

#define _GNU_SOURCE
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "segpool.h"

/* ---- Failure reports ------------------------------------------------------- */

/* Print and abort: a stress failure must stop the run where it happened,
 * with a core if enabled, rather than cascade. */
__attribute__((noreturn, format(printf, 3, 4))) static inline void stress_fail(const char *file, int line,
                                                                             const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(buf, sizeof buf, "FAIL %s:%d: ", file, line);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof buf) vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strnlen(buf, sizeof buf - 1);
    buf[len++] = '\n';
    ssize_t rc = write(2, buf, len);
    (void)rc;
    abort();
}

#define STRESS_FAIL(...) stress_fail(__FILE__, __LINE__, __VA_ARGS__)
#define STRESS_CHECK(cond, ...)                                                                              \
    do {                                                                                                     \
        if (!(cond)) STRESS_FAIL("check failed: " #cond ": " __VA_ARGS__);                                  \
    } while (0)

/* ---- Random numbers (xorshift64*) ------------------------------------------ */

static inline uint64_t stress_rand(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t stress_seed(uint64_t salt) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (salt * 0x9E3779B97F4A7C15ull);
    return s ? s : 0x1234567;
}

/* A size in [1, max], log-uniform so that small sizes dominate as in real
 * programs but every class up to max is reached. */
static inline size_t stress_size(uint64_t *rng, size_t max) {
    unsigned bits = 64u - (unsigned)__builtin_clzll(max);
    unsigned b = 1u + (unsigned)(stress_rand(rng) % bits);
    size_t hi = (size_t)1 << b;
    size_t n = 1 + (size_t)(stress_rand(rng) % hi);
    return n > max ? max : n;
}

/* ---- Time ------------------------------------------------------------------- */

static inline double stress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- The pattern ------------------------------------------------------------ */

static inline uint64_t stress_mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Fill [p, p+size) from (seed, serial).  The seed is normally the block's
 * address; after a realloc that moved the block the caller keeps the old
 * seed for the preserved prefix (see stress_check). */
static inline void stress_fill(void *p, size_t size, uint64_t seed, uint64_t serial) {
    uint64_t k = stress_mix(seed ^ (serial << 1));
    uint8_t *b = p;
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t v = k + i * 0x9E3779B97F4A7C15ull;
        memcpy(b + i * 8, &v, 8);
    }
    uint64_t tail = k + words * 0x9E3779B97F4A7C15ull; /* the same word, cut short: prefixes verify */
    for (size_t i = words * 8; i < size; i++) b[i] = (uint8_t)(tail >> ((i & 7) * 8));
}

/* Offset of the first byte that differs from the pattern, or -1. */
static inline long stress_verify(const void *p, size_t size, uint64_t seed, uint64_t serial) {
    uint64_t k = stress_mix(seed ^ (serial << 1));
    const uint8_t *b = p;
    size_t words = size / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t v = k + i * 0x9E3779B97F4A7C15ull, got;
        memcpy(&got, b + i * 8, 8);
        if (got != v) return (long)(i * 8);
    }
    uint64_t tail = k + words * 0x9E3779B97F4A7C15ull;
    for (size_t i = words * 8; i < size; i++)
        if (b[i] != (uint8_t)(tail >> ((i & 7) * 8))) return (long)i;
    return -1;
}

/* ---- A block and how it was obtained ---------------------------------------- */

typedef struct stress_block_s {
    void *p;
    size_t size;
    uint64_t seed;   /* pattern seed: the address it was filled at */
    uint64_t serial;
    int libc;        /* served by the fallback: free with free() */
} stress_block_t;

#define stress_check_block(blk, what)                                                                      \
    do {                                                                                                     \
        long off_ = stress_verify((blk)->p, (blk)->size, (blk)->seed, (blk)->serial);                       \
        if (off_ >= 0)                                                                                       \
            STRESS_FAIL("%s: block %p size %zu serial %llu (%s) corrupted at offset %ld", what, (blk)->p,     \
                        (blk)->size, (unsigned long long)(blk)->serial, (blk)->libc ? "libc" : "pool", off_); \
    } while (0)

static inline void stress_release(stress_block_t *blk) {
    if (blk->libc) free(blk->p);
    else segpool_free(blk->p);
    blk->p = NULL;
}

/* ---- Process facts ---------------------------------------------------------- */

/* VmRSS of this process in bytes (0 if unreadable).  Reads with stdio: the
 * stress programs link libsegpool, not the shim, so stdio uses glibc. */
static inline size_t stress_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = (size_t)strtoull(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}

/* Stats consistency after every thread has finished and freed everything. */
static inline void stress_check_quiet_stats(const segpool_stats_t *st, size_t baseline_in_use) {
    STRESS_CHECK(st->segments_in_use == baseline_in_use, "segments_in_use %zu, baseline %zu", st->segments_in_use,
                 baseline_in_use);
    STRESS_CHECK(st->segments_in_use + st->segments_cached + st->segments_free == st->capacity,
                 "in_use %zu + cached %zu + free %zu != capacity %zu", st->segments_in_use, st->segments_cached,
                 st->segments_free, st->capacity);
    STRESS_CHECK(st->segments_peak <= st->capacity, "peak %zu > capacity %zu", st->segments_peak, st->capacity);
    STRESS_CHECK(st->pool_frees <= st->pool_requests, "frees %llu > requests %llu",
                 (unsigned long long)st->pool_frees, (unsigned long long)st->pool_requests);
}

static inline void stress_print_stats(const char *who, const segpool_stats_t *st) {
    fprintf(stderr,
            "%s: capacity %zu in_use %zu cached %zu free %zu peak %zu user %zu | regions committed %zu peak %zu "
            "purged %llu | requests %llu frees %llu remote %llu | fallback large %llu aligned %llu exhausted "
            "%llu other %llu | threads live %u total %u | huge %s%s%s\n",
            who, st->capacity, st->segments_in_use, st->segments_cached, st->segments_free, st->segments_peak,
            st->segments_user, st->regions_committed, st->regions_peak, (unsigned long long)st->regions_purged,
            (unsigned long long)st->pool_requests, (unsigned long long)st->pool_frees,
            (unsigned long long)st->remote_frees, (unsigned long long)st->fallback_too_large,
            (unsigned long long)st->fallback_aligned, (unsigned long long)st->fallback_exhausted,
            (unsigned long long)st->fallback_other, st->threads_live, st->threads_total, st->hugepage_mode,
            st->hugepage_note[0] ? " / " : "", st->hugepage_note);
}

#endif /* STRESS_COMMON_H */
