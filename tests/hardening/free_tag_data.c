/*
 * free_tag_data.c - case 5 of issue 9: blocks whose data equals what the
 * allocator writes into a free block are legal data, and freeing them must
 * neither abort, nor leak, nor cost much more than a normal free:
 *   tag    the second word holds 0xffffffffa110cf4e (the free tag of the
 *          allocator before the fix: bytes 4e cf 10 a1 ff ff ff ff at 8);
 *   copy   the whole block repeats the first 16 bytes of a freed block,
 *          read after free (whatever the allocator keeps there now).
 * Each is freed millions of times, by the allocating thread ("own") or by
 * another thread ("remote"), 1 GiB in all.  Checks: exit 0, RSS growth
 * under 64 MiB, and the best chunk's time per pair at most 10 times the same
 * loop with zeroed blocks measured in the same process.
 *
 * Usage: free_tag_data shim|glibc own|remote
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    RING = 256,                 /* live blocks of the own-thread loop */
    CHUNK = 1 << 18,            /* pairs between checks */
    QUEUE = 4096,               /* remote hand-over ring */
    TIMEOUT_S = 90,
};
#define TAG_BYTES_FREED ((size_t)1 << 30)
#define TAG_RSS_GROWTH_KIB (64L << 10)
#define TAG_MAX_RATIO 10.0
#define TAG_MAX_RATIO_COPY 60.0 /* a list walk: see tag_run */

typedef enum { FILL_ZERO, FILL_TAG, FILL_COPY } tag_fill_t;

static const char *tag_fill_name[] = {"zeroed", "free tag at offset 8", "copy of a freed block's first 16 bytes"};

static unsigned char tag_pattern[16];

/* The first 16 bytes of a block of size just freed: what a free block of
 * that class holds now. */
static void tag_capture_pattern(size_t size) {
    void *p = malloc(size);
    memset(p, 0x5a, size);
    free(p);
    memcpy(tag_pattern, hardening_launder(p), sizeof tag_pattern);
}

/* Fill the block with a 16-byte pattern (zeros, zeros with the tag at 8,
 * or the captured free block), the same loop for every kind of data so
 * that the time compared is the allocator's. */
static void tag_fill(void *p, size_t size, tag_fill_t fill) {
    static const unsigned char tag[8] = {0x4e, 0xcf, 0x10, 0xa1, 0xff, 0xff, 0xff, 0xff};
    uint64_t w[2] = {0, 0};
    if (fill == FILL_TAG) memcpy(&w[1], tag, sizeof tag);
    if (fill == FILL_COPY) memcpy(w, tag_pattern, sizeof w);
    uint64_t *q = p;
    for (size_t i = 0; i + 1 < size / sizeof *q; i += 2) q[i] = w[0], q[i + 1] = w[1];
}

/* --- own thread: a ring of live blocks, one freed and replaced per pair --- */

static void *tag_ring[RING];

static double tag_own_chunk(size_t size, tag_fill_t fill, size_t pairs) {
    double t0 = hardening_now();
    for (size_t i = 0; i < pairs; i++) {
        size_t k = i % RING;
        free(tag_ring[k]);
        tag_ring[k] = malloc(size);
        if (!tag_ring[k]) abort();
        tag_fill(tag_ring[k], size, fill);
    }
    return hardening_now() - t0;
}

/* --- remote: a producer allocates and fills, this thread frees --- */

static struct {
    _Atomic size_t head, tail; /* head: next to write (producer), tail: next to read */
    void *slot[QUEUE];
    size_t size, pairs;
    tag_fill_t fill;
} tag_q;

static void *tag_producer(void *unused) {
    (void)unused;
    for (size_t i = 0; i < tag_q.pairs; i++) {
        void *p = malloc(tag_q.size);
        if (!p) abort();
        tag_fill(p, tag_q.size, tag_q.fill);
        size_t h = atomic_load_explicit(&tag_q.head, memory_order_relaxed);
        while (h - atomic_load_explicit(&tag_q.tail, memory_order_acquire) == QUEUE) sched_yield();
        tag_q.slot[h % QUEUE] = p;
        atomic_store_explicit(&tag_q.head, h + 1, memory_order_release);
    }
    return NULL;
}

static double tag_remote_chunk(size_t size, tag_fill_t fill, size_t pairs) {
    double t0 = hardening_now();
    tag_q.size = size, tag_q.fill = fill, tag_q.pairs = pairs;
    pthread_t t;
    if (pthread_create(&t, NULL, tag_producer, NULL) != 0) abort();
    for (size_t i = 0; i < pairs; i++) {
        size_t tl = atomic_load_explicit(&tag_q.tail, memory_order_relaxed);
        while (atomic_load_explicit(&tag_q.head, memory_order_acquire) == tl) sched_yield();
        free(tag_q.slot[tl % QUEUE]);
        atomic_store_explicit(&tag_q.tail, tl + 1, memory_order_release);
    }
    pthread_join(t, NULL);
    return hardening_now() - t0;
}

typedef double (*tag_chunk_fn)(size_t, tag_fill_t, size_t);

/* Best of three short runs with zeroed blocks: the reference pair time. */
static double tag_baseline(tag_chunk_fn chunk, size_t size) {
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t = chunk(size, FILL_ZERO, CHUNK) / CHUNK;
        if (t < best) best = t;
    }
    return best;
}

/* 1 GiB of pairs with the given data, checked chunk by chunk so that a
 * failing allocator fails in seconds, not minutes. */
static int tag_run(tag_chunk_fn chunk, size_t size, tag_fill_t fill, const char *who) {
    double base = tag_baseline(chunk, size);
    long rss0 = hardening_rss_kib();
    size_t total = TAG_BYTES_FREED / size, done = 0;
    double spent = 0, best = 1e9;
    while (done < total) {
        if (fill == FILL_COPY) tag_capture_pattern(size);
        double t = chunk(size, fill, CHUNK);
        spent += t;
        if (t / CHUNK < best) best = t / CHUNK;
        done += CHUNK;
        long growth = hardening_rss_kib() - rss0;
        /* The best chunk against the best baseline: a loaded machine only
         * makes some chunks slower, a list walk makes every one slower. */
        double ratio = best / base;
        /* A copy of a freed block's words is data only a program that reads
         * freed memory can write: segshim then checks the block against its
         * slab's free list, a walk of at most the slab's free blocks (the
         * limit the README states), so the bound there is looser. */
        double max_ratio = fill == FILL_COPY ? TAG_MAX_RATIO_COPY : TAG_MAX_RATIO;
        if (growth > TAG_RSS_GROWTH_KIB || (done >= 4 * CHUNK && ratio > max_ratio) || done >= total) {
            printf("%s, %zu-byte blocks, %s: %zu pairs, %.1f ns a pair (zeroed: %.1f, x%.1f), RSS +%ld KiB\n", who,
                   size, tag_fill_name[fill], done, spent / (double)done * 1e9, base * 1e9, ratio, growth);
            if (growth > TAG_RSS_GROWTH_KIB) {
                fprintf(stderr, "FAIL: %s %s: RSS grew %ld KiB after %zu MiB freed (limit %ld KiB): a leak\n",
                        who, tag_fill_name[fill], growth, done * size >> 20, TAG_RSS_GROWTH_KIB);
                return 1;
            }
            if (ratio > max_ratio) {
                fprintf(stderr, "FAIL: %s %s: a pair costs %.1fx a pair with zeroed blocks (limit %.0fx)\n",
                        who, tag_fill_name[fill], ratio, max_ratio);
                return 1;
            }
        }
    }
    return 0;
}

static int tag_own(void *unused) {
    (void)unused;
    int failures = 0;
    static const size_t sizes[] = {48, 1024};
    for (unsigned s = 0; s < 2; s++) {
        for (int i = 0; i < RING; i++) tag_ring[i] = malloc(sizes[s]);
        failures += tag_run(tag_own_chunk, sizes[s], FILL_TAG, "own thread");
        failures += tag_run(tag_own_chunk, sizes[s], FILL_COPY, "own thread");
        for (int i = 0; i < RING; i++) free(tag_ring[i]);
    }
    return failures ? 1 : 0;
}

static int tag_remote(void *unused) {
    (void)unused;
    int failures = 0;
    failures += tag_run(tag_remote_chunk, 1024, FILL_TAG, "other thread");
    failures += tag_run(tag_remote_chunk, 1024, FILL_COPY, "other thread");
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    hardening_mode_shim(argc, argv);
    int remote = argc > 2 && strcmp(argv[2], "remote") == 0;
    hardening_result_t res;
    hardening_run(remote ? "remote" : "own", remote ? tag_remote : tag_own, NULL, TIMEOUT_S, &res);
    return hardening_expect_exit0(remote ? "freed by another thread" : "freed by their own thread", &res) ? 0 : 1;
}
