/*
 * check_alloc.c - the general allocator on the pool: every size class, the
 * aligned and resizing entry points, cross-thread frees, thread exit, the
 * misuse that must abort (with the README's message), data that looks like a
 * free block, and the block-start test at every offset of every class.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"
#include "expect_abort.h"
#include "pool.h"
#include "segpool.h"
#include "sizeclass.h"

/* Run fn(arg) on a thread of its own and wait for it. */
static void on_new_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    pthread_create(&t, NULL, fn, arg);
    pthread_join(t, NULL);
}

static void setup(void) {
    setenv("SEGSHIM_SEGMENT_SIZE", "32K", 1);
    setenv("SEGSHIM_POOL_SIZE", "256M", 1);
}

/* The byte at offset i of a block, derived from the block address and a serial. */
static unsigned char pattern(const void *block, size_t i, unsigned serial) {
    uintptr_t a = (uintptr_t)block;
    return (unsigned char)((a >> 4) * 31 + i * 7 + serial * 13);
}

static void fill(void *p, size_t n, unsigned serial) {
    for (size_t i = 0; i < n; i++) ((unsigned char *)p)[i] = pattern(p, i, serial);
}

static int intact(const void *p, size_t n, unsigned serial) {
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != pattern(p, i, serial)) return 0;
    return 1;
}

/* ---- core ---------------------------------------------------------------------- */

/* Every class: usable size, alignment, data kept across neighbours' churn. */
START_TEST(test_every_class) {
    (void)segpool_segment_size(); /* set the pool up */
    if ((unsigned)_i >= sizeclass_count) return;
    size_t size = sizeclass_table[_i].size;
    size_t smaller = _i == 0 ? 1 : sizeclass_table[_i - 1].size + 1;
    enum { N = 40 };
    void *keep[N], *churn[N];
    for (int k = 0; k < N; k++) {
        size_t want = (k & 1) ? size : smaller;
        keep[k] = segpool_malloc(want);
        ck_assert_ptr_nonnull(keep[k]);
        ck_assert_uint_eq((uintptr_t)keep[k] % 16, 0);
        size_t usable = segpool_usable_size(keep[k]);
        ck_assert_uint_ge(usable, want);
        ck_assert_uint_eq(usable, size);
        ck_assert(segpool_owns(keep[k]));
        fill(keep[k], usable, (unsigned)k);
        if (size >= 4096 && (size & (size - 1)) == 0) ck_assert_uint_eq((uintptr_t)keep[k] % size, 0);
    }
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < N; k++) {
            churn[k] = segpool_malloc(size);
            ck_assert_ptr_nonnull(churn[k]);
            memset(churn[k], 0xff, size);
        }
        for (int k = 0; k < N; k++) segpool_free(churn[k]);
    }
    for (int k = 0; k < N; k++) {
        ck_assert_msg(intact(keep[k], size, (unsigned)k), "class %u block %d corrupted", _i, k);
        segpool_free(keep[k]);
    }
}
END_TEST

START_TEST(test_one_segment_request_takes_a_segment) {
    size_t seg = segpool_segment_size();
    void *p = segpool_malloc(seg);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % seg, 0);
    ck_assert_uint_eq(segpool_usable_size(p), seg);
    memset(p, 7, seg);
    ck_assert_ptr_null(segpool_malloc(seg + 1)); /* above one segment: caller falls back */
    segpool_free(p);
}
END_TEST

START_TEST(test_zero_size_is_unique) {
    void *a = segpool_malloc(0), *b = segpool_malloc(0);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    segpool_free(a);
    segpool_free(b);
    segpool_free(NULL);
}
END_TEST

START_TEST(test_calloc_zeroes_and_checks_overflow) {
    for (int round = 0; round < 2; round++) {
        unsigned char *p = segpool_calloc(100, 37);
        ck_assert_ptr_nonnull(p);
        for (int i = 0; i < 3700; i++) ck_assert_int_eq(p[i], 0);
        memset(p, 0xab, 3700); /* the next round gets this block again: still zero */
        segpool_free(p);
    }
    ck_assert_ptr_null(segpool_calloc(SIZE_MAX / 2, 3));
}
END_TEST

/* Pages of [p, p + n) that are resident. */
static size_t resident_pages(const void *p, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)p & ~(page - 1), end = ((uintptr_t)p + n + page - 1) & ~(page - 1);
    size_t count = (end - start) / page, resident = 0;
    unsigned char *vec = malloc(count);
    ck_assert_int_eq(mincore((void *)start, end - start, vec), 0);
    for (size_t i = 0; i < count; i++) resident += vec[i] & 1;
    free(vec);
    return resident;
}

/* calloc of memory that nothing used since the kernel gave it (a fresh pool)
 * writes none of it: a buffer the program fills only in part stays out of
 * the resident set, as under glibc.  At most the header page of the slab's
 * first block is touched (when it was formatted). */
START_TEST(test_calloc_of_fresh_memory_leaves_it_untouched) {
    setenv("SEGSHIM_HUGEPAGES", "off", 1); /* a huge page would be resident whole */
    enum { N = 24, SIZE = 16384 };
    unsigned char *b[N];
    size_t resident = 0;
    for (int i = 0; i < N; i++) {
        b[i] = segpool_calloc(1, SIZE);
        ck_assert_ptr_nonnull(b[i]);
        resident += resident_pages(b[i], SIZE);
    }
    ck_assert_msg(resident <= 1, "%zu pages of %d fresh calloc'ed blocks of %d bytes are resident", resident, N, SIZE);
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < SIZE; k++) ck_assert_int_eq(b[i][k], 0);
    for (int i = 0; i < N; i++) segpool_free(b[i]);
}
END_TEST

/* calloc clears memory the program wrote: blocks of two classes filled and
 * freed, their slabs back in the pool (no thread cache), then calloc'ed
 * over the same segments, as the same class and as another. */
START_TEST(test_calloc_clears_memory_the_program_wrote) {
    setenv("SEGSHIM_TCACHE", "0", 1); /* an empty slab goes back to the pool at once */
    enum { N = 200 };
    static const size_t sizes[] = {20480, 12288, 20480, 1024};
    unsigned char *b[N];
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < N; i++) {
        b[i] = segpool_malloc(sizes[i % 2]);
        ck_assert_ptr_nonnull(b[i]);
        memset(b[i], 0xa5, sizes[i % 2]);
        if ((uintptr_t)b[i] < lo) lo = (uintptr_t)b[i];
        if ((uintptr_t)b[i] + sizes[i % 2] > hi) hi = (uintptr_t)b[i] + sizes[i % 2];
    }
    for (int i = 0; i < N; i++) segpool_free(b[i]);
    int reused = 0;
    for (int i = 0; i < N; i++) {
        size_t size = sizes[2 + i % 2];
        b[i] = segpool_calloc(1, size);
        ck_assert_ptr_nonnull(b[i]);
        reused |= (uintptr_t)b[i] >= lo && (uintptr_t)b[i] < hi;
        for (size_t k = 0; k < size; k++) ck_assert_msg(b[i][k] == 0, "calloc'ed block %d: byte %zu is %#x", i, k, b[i][k]);
        memset(b[i], 0x5a, size);
    }
    ck_assert_msg(reused, "no calloc'ed block reused the freed memory: the test tests nothing");
    for (int i = 0; i < N; i++) segpool_free(b[i]);
}
END_TEST

static void *first_block_written(void *arg) {
    unsigned char **out = arg;
    *out = segpool_malloc(4096); /* the first block of a fresh slab */
    memset(*out, 0xa5, 4096);
    return NULL;
}

/* A block another thread's slab handed out first, which this thread freed
 * and keeps (kept list): calloc gets it back, cleared. */
START_TEST(test_calloc_clears_a_kept_block) {
    void *own = segpool_malloc(64); /* this thread has a heap, so it keeps what it frees */
    unsigned char *given = NULL;
    pthread_t t;
    pthread_create(&t, NULL, first_block_written, &given);
    pthread_join(t, NULL);
    ck_assert_ptr_nonnull(given);
    segpool_free(given);
    unsigned char *p = segpool_calloc(1, 4096);
    ck_assert_ptr_eq(p, given); /* kept, and handed out again first */
    for (size_t k = 0; k < 4096; k++) ck_assert_msg(p[k] == 0, "byte %zu of the kept block is %#x", k, p[k]);
    segpool_free(p);
    segpool_free(own);
}
END_TEST

START_TEST(test_aligned_every_power_of_two) {
    size_t seg = segpool_segment_size();
    for (size_t align = 1; align <= seg; align <<= 1) {
        size_t sizes[] = {1, 24, align, align + 1, 3 * align / 2, seg / 2};
        for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            if (sizes[k] > seg) continue;
            void *p = segpool_aligned_alloc(align, sizes[k]);
            ck_assert_msg(p != NULL, "align %zu size %zu", align, sizes[k]);
            ck_assert_uint_eq((uintptr_t)p % align, 0);
            ck_assert_uint_ge(segpool_usable_size(p), sizes[k]);
            memset(p, 1, sizes[k]);
            segpool_free(p);
        }
    }
    ck_assert_ptr_null(segpool_aligned_alloc(seg * 2, 16)); /* more than the pool can align */
    ck_assert_ptr_null(segpool_aligned_alloc(48, 16));      /* not a power of two */
}
END_TEST

START_TEST(test_realloc_keeps_data) {
    size_t seg = segpool_segment_size();
    unsigned char *p = segpool_realloc(NULL, 10);
    fill(p, 10, 1);
    size_t sizes[] = {100, 1000, 5000, 20000, seg, 3000, 40, 8};
    size_t have = 10;
    for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        unsigned char *q = segpool_realloc(p, sizes[k]);
        ck_assert_ptr_nonnull(q);
        size_t keep = have < sizes[k] ? have : sizes[k];
        for (size_t i = 0; i < keep; i++) ck_assert_int_eq(q[i], pattern(p, i, 1));
        /* Re-fill under the new address. */
        for (size_t i = 0; i < sizes[k]; i++) q[i] = pattern(p, i, 1);
        p = q;
        have = sizes[k];
    }
    /* Past one segment: NULL, and the block is untouched. */
    ck_assert_ptr_null(segpool_realloc(p, seg + 1));
    for (size_t i = 0; i < have; i++) ck_assert_int_eq(p[i], pattern(p, i, 1));
    segpool_free(p);
}
END_TEST

/* Blocks freed by another thread come back to their owner's segments. */
static void *free_all(void *arg) {
    void **blocks = arg;
    for (int i = 0; blocks[i]; i++) segpool_free(blocks[i]);
    return NULL;
}

START_TEST(test_remote_frees_are_reused) {
    enum { N = 5000 };
    void **blocks = calloc(N + 1, sizeof *blocks);
    for (int i = 0; i < N; i++) {
        blocks[i] = segpool_malloc(64);
        fill(blocks[i], 64, (unsigned)i);
    }
    segpool_stats_t before;
    segpool_stats_get(&before);
    on_new_thread(free_all, blocks);
    segpool_stats_t after;
    segpool_stats_get(&after);
    ck_assert_uint_ge(after.remote_frees, N);
    /* Allocating again collects the remote frees: no new segments needed. */
    for (int i = 0; i < N; i++) blocks[i] = segpool_malloc(64);
    segpool_stats_t again;
    segpool_stats_get(&again);
    ck_assert_uint_le(again.segments_in_use, before.segments_in_use);
    for (int i = 0; i < N; i++) segpool_free(blocks[i]);
    segpool_collect();
    segpool_stats_get(&again);
    ck_assert_uint_eq(again.segments_in_use, 0);
    free(blocks);
}
END_TEST

/* A thread exits holding blocks; they are freed later by another thread. */
static void *alloc_and_exit(void *arg) {
    void **blocks = arg;
    for (int i = 0; i < 3000; i++) {
        blocks[i] = segpool_malloc((size_t)(i % 700) + 1);
        fill(blocks[i], (size_t)(i % 700) + 1, (unsigned)i);
    }
    return NULL;
}

START_TEST(test_thread_exit_leaks_nothing) {
    void **blocks = calloc(3001, sizeof *blocks);
    void *mine = segpool_malloc(8); /* this thread has a heap too */
    for (int round = 0; round < 5; round++) {
        on_new_thread(alloc_and_exit, blocks);
        for (int i = 0; i < 3000; i++) {
            ck_assert(intact(blocks[i], (size_t)(i % 700) + 1, (unsigned)i));
            segpool_free(blocks[i]);
        }
    }
    segpool_free(mine);
    segpool_collect();
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_in_use, 0);
    ck_assert_uint_eq(st.threads_live, 1);
    ck_assert_uint_le(st.threads_total, 2); /* the dead heap was adopted each round */
    free(blocks);
}
END_TEST

/* ---- limits ------------------------------------------------------------------------ */

START_TEST(test_slab_classes_waste_little) {
    (void)segpool_segment_size();
    for (unsigned c = 0; c < sizeclass_count; c++) {
        const sizeclass_t *k = &sizeclass_table[c];
        size_t bytes = (size_t)k->slab * segpool_segment_size();
        ck_assert_uint_eq(k->capacity, bytes / k->size);
        ck_assert_msg((bytes - k->capacity * k->size) * 8 <= bytes, "class %u wastes too much", c);
        ck_assert_msg(k->capacity >= 8, "class %u holds only %u blocks a slab", c, k->capacity);
    }
    ck_assert_uint_eq(sizeclass_table[sizeclass_count - 1].size, segpool_segment_size());
    ck_assert_uint_eq(sizeclass_count, 40); /* 8 of 16 B, then 4 per power of two to 32K */
}
END_TEST

START_TEST(test_classes_for_each_segment_size) {
    const char *sizes[] = {"4K", "8K", "32K", "64K", "256K", "1M"};
    setenv("SEGSHIM_SEGMENT_SIZE", sizes[_i], 1);
    size_t seg = segpool_segment_size();
    ck_assert_uint_eq(sizeclass_table[sizeclass_count - 1].size, seg);
    /* A region filled with one class's slabs leaves at most 1/16 unused
     * (slab tails, segments too few for one more slab), where a region
     * holds at least 8 segments. */
    size_t per_region = SEGPOOL_REGION_SIZE / seg;
    for (unsigned c = 0; c < sizeclass_count && per_region >= 8; c++) {
        const sizeclass_t *k = &sizeclass_table[c];
        size_t slab = (size_t)k->slab * seg;
        size_t unused = per_region / k->slab * (slab - (size_t)k->capacity * k->size) + per_region % k->slab * seg;
        ck_assert_msg(unused * 16 <= SEGPOOL_REGION_SIZE, "segment %zu, class %u (%u B, slab of %u): %zu B of a region unused",
                      seg, c, k->size, k->slab, unused);
    }
    for (size_t size = 1; size <= seg; size += 1 + size / 7) {
        void *p = segpool_malloc(size);
        ck_assert_ptr_nonnull(p);
        size_t usable = segpool_usable_size(p);
        ck_assert_uint_ge(usable, size);
        ck_assert_msg(size <= 128 || usable * 4 <= size * 5 + 4, "size %zu got %zu", size, usable);
        memset(p, 3, usable);
        segpool_free(p);
        ck_assert_uint_eq(sizeclass_of_less_one(size - 1), sizeclass_of(size));
    }
    /* Above the segment, up to the map's end, the class no heap serves. */
    for (size_t size = seg + 1; size <= SIZECLASS_MAP_MAX; size += 1 + size / 7)
        ck_assert_uint_eq(sizeclass_of_less_one(size - 1), SIZECLASS_NONE);
    ck_assert_uint_eq(sizeclass_of_less_one(SIZECLASS_MAP_MAX - 1), seg == SIZECLASS_MAP_MAX ? sizeclass_count - 1 : SIZECLASS_NONE);
    ck_assert_uint_lt(sizeclass_count, SIZECLASS_NONE);
}
END_TEST

/* ---- errors: each aborts with the line README.md ("Heap misuse") gives ---------- */

#define MSG_DOUBLE_FREE "segshim: free(): double free detected at 0x"
#define MSG_INSIDE_BLOCK "segshim: free(): invalid pointer (inside a block) at 0x"
#define MSG_NOT_A_BLOCK "segshim: free(): invalid pointer (not an allocated block) at 0x"
#define MSG_CORRUPTED "segshim: malloc(): corrupted free list at 0x"
#define MSG_NOT_FROM_POOL "segshim: segpool_free(): pointer not from the pool at 0x"

static void interior_pointer(void *arg) {
    (void)arg;
    char *p = segpool_malloc(100);
    segpool_free(p + 16);
}

static void double_free(void *arg) {
    (void)arg;
    void *p = segpool_malloc(100);
    void *q = segpool_malloc(100);
    segpool_free(p);
    segpool_free(q);
    segpool_free(p);
}

static void *free_one(void *arg) {
    segpool_free(arg);
    return NULL;
}

static void remote_double_free(void *arg) {
    (void)arg;
    void *p = segpool_malloc(100);
    segpool_free(p);
    on_new_thread(free_one, p);
    /* The other thread cannot check this thread's lists: it leaves a note
     * and the owner reports it at its next slow path. */
    segpool_collect();
}

/* A thread with a heap keeps a block of another heap that it frees (heap.c,
 * "Kept blocks"): its second free, by the same thread or by a third one, is
 * reported at once. */
static void get_a_heap(void) { segpool_free(segpool_malloc(16)); }

static void *free_twice(void *arg) {
    get_a_heap();
    segpool_free(arg);
    segpool_free(arg);
    return NULL;
}

static void *free_keep(void *arg) {
    get_a_heap();
    segpool_free(arg);
    return NULL;
}

static void kept_double_free_same_thread(void *arg) {
    (void)arg;
    on_new_thread(free_twice, segpool_malloc(100));
}

/* The keeper is still alive (it waits) when the third thread frees p again. */
static pthread_barrier_t kept_barrier;

static void *free_keep_and_wait(void *arg) {
    free_keep(arg);
    pthread_barrier_wait(&kept_barrier);
    pthread_barrier_wait(&kept_barrier);
    return NULL;
}

static void kept_double_free_other_thread(void *arg) {
    (void)arg;
    void *p = segpool_malloc(100);
    pthread_barrier_init(&kept_barrier, NULL, 2);
    pthread_t keeper;
    pthread_create(&keeper, NULL, free_keep_and_wait, p);
    pthread_barrier_wait(&kept_barrier);
    on_new_thread(free_keep, p); /* the second free of p */
    pthread_barrier_wait(&kept_barrier);
    pthread_join(keeper, NULL);
}

/* A write after free into a kept block (another heap's, kept by the thread
 * that freed it): the keeper's next malloc but one follows the overwritten
 * link, which no longer decodes into the arena. */
static void *write_after_free_kept_thread(void *arg) {
    get_a_heap();
    uintptr_t *p = arg;
    segpool_free(p);
    p[0] = 0x4141414141414141u;
    (void)segpool_malloc(48); /* p itself */
    (void)segpool_malloc(48); /* the link read from p */
    return NULL;
}

static void write_after_free_kept(void *arg) {
    (void)arg;
    on_new_thread(write_after_free_kept_thread, segpool_malloc(48));
}

static void free_of_whole_segment(void *arg) {
    (void)arg;
    segpool_free(segpool_segment_request());
}

static void free_of_foreign_pointer(void *arg) {
    (void)arg;
    static char not_ours[64];
    (void)segpool_segment_size();
    segpool_free(not_ours);
}

/* A write after free into the first word: the next malloc but one follows
 * the overwritten link. */
static void write_after_free(void *arg) {
    (void)arg;
    uintptr_t *p = segpool_malloc(48);
    segpool_free(p);
    p[0] = 0x4141414141414141u;
    (void)segpool_malloc(48); /* p itself */
    (void)segpool_malloc(48); /* the link read from p */
}

START_TEST(test_misuse_messages) {
    expect_abort(interior_pointer, NULL, MSG_INSIDE_BLOCK);
    expect_abort(double_free, NULL, MSG_DOUBLE_FREE);
    expect_abort(remote_double_free, NULL, MSG_DOUBLE_FREE);
    expect_abort(kept_double_free_same_thread, NULL, MSG_DOUBLE_FREE);
    expect_abort(kept_double_free_other_thread, NULL, MSG_DOUBLE_FREE);
    expect_abort(free_of_whole_segment, NULL, MSG_NOT_A_BLOCK);
    expect_abort(free_of_foreign_pointer, NULL, MSG_NOT_FROM_POOL);
    expect_abort(write_after_free, NULL, MSG_CORRUPTED);
    expect_abort(write_after_free_kept, NULL, MSG_CORRUPTED);
}
END_TEST

/* ---- data that looks free is freed, never reported ---------------------------------- */

/* The free tag as a program may write it: the second word of a live block. */
#define TAG_DATA UINT64_C(0xffffffffa110cf4e)

/* Write the tag into b's second word and a first word of the kind given:
 * 0 zero, 1 a pointer into its own slab, 2 a link to another block of the
 * slab encoded with the pool's secrets but at another address (the words
 * of a free block copied into this one, as a program that reads freed
 * memory may write them). */
static void looks_free(uint64_t *b, const void *neighbour, int first) {
    block_t elsewhere;
    uint64_t copied = alloc_link_encode(pool.link_key, &elsewhere, neighbour);
    b[0] = first == 0 ? 0 : first == 1 ? (uint64_t)(uintptr_t)neighbour : copied;
    b[1] = TAG_DATA;
}

/* Within a slab's worth of allocations of size, p is handed out again:
 * it went back on a free list (not leaked, not reported). */
static void assert_reused(void *p, size_t size) {
    unsigned cap = sizeclass_table[sizeclass_of(size)].capacity;
    void **got = calloc(cap + 1, sizeof *got);
    int found = 0;
    unsigned n = 0;
    for (; n <= cap && !found; n++) {
        got[n] = segpool_malloc(size);
        found = got[n] == p;
    }
    ck_assert_msg(found, "the block freed with tag data was not handed out again");
    while (n-- > 0) segpool_free(got[n]);
    free(got);
}

START_TEST(test_tag_data_is_no_double_free_own_thread) {
    for (int first = 0; first < 3; first++) {
        uint64_t *p = segpool_malloc(64);
        void *q = segpool_malloc(64);
        looks_free(p, q, first);
        segpool_free(p);
        assert_reused(p, 64);
        segpool_free(q);
    }
}
END_TEST

START_TEST(test_tag_data_is_no_double_free_other_thread) {
    for (int first = 0; first < 3; first++) {
        uint64_t *p = segpool_malloc(64);
        void *q = segpool_malloc(64);
        looks_free(p, q, first);
        on_new_thread(free_one, p);
        segpool_collect(); /* the owner takes the remote free */
        assert_reused(p, 64);
        segpool_free(q);
    }
}
END_TEST

/* ---- every block start of a slab is freed; every other offset is refused ------------------- */

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void free_arg(void *p) { segpool_free(p); }

/* One slab of class c, of slab segments, filled whole by the cap blocks at
 * blocks (sorted here): it holds exactly the blocks at multiples of the
 * size; the block test accepts every one of them and no other offset of the
 * slab; a sample of offsets (in the first block, in the middle, in the last
 * segment of the slab) freed in a child aborts with the invalid pointer
 * message. */
static void check_slab_blocks(unsigned c, uintptr_t *blocks, size_t cap, unsigned slab) {
    size_t size = sizeclass_table[c].size;
    qsort(blocks, cap, sizeof *blocks, cmp_ptr);
    const segment_t *s = segment_of((void *)blocks[0]);
    ck_assert_uint_eq(s->slab_count, slab);
    ck_assert_uint_eq(s->capacity, cap);
    ck_assert_uint_eq(s->span, cap * size); /* formatted whole */
    for (size_t k = 0; k < cap; k++) ck_assert_uint_eq(blocks[k], s->block_start + k * size);
    size_t slab_bytes = (size_t)slab * segpool_segment_size();
    ck_assert_uint_le(cap * size, slab_bytes);
    for (size_t off = 0; off < slab_bytes; off++) {
        int start = off < cap * size && off % size == 0;
        if (alloc_is_block_of(s, (void *)(s->block_start + off)) != start)
            ck_abort_msg("class %u (%zu B): offset %zu %s", c, size, off, start ? "refused" : "accepted");
    }
    size_t samples[] = {1, SEGPOOL_BLOCK_ALIGN, size - 1, (cap / 2) * size + size / 2, slab_bytes - size + 8};
    for (size_t k = 0; k < sizeof samples / sizeof samples[0]; k++) {
        size_t off = samples[k];
        if (off % size == 0 || off >= cap * size) continue;
        expect_abort(free_arg, (void *)(s->block_start + off), MSG_INSIDE_BLOCK);
    }
}

/* Class c in a fresh heap: the slabs it is served from, filled one after
 * the other, each checked by check_slab_blocks; every block frees.  Without
 * a memory limit one slab of the class's full size (slab); under one
 * (pool.slabs_small), a first slab of slab_first segments, then slabs twice
 * the one before up to the full size. */
static void check_slabs_of_class(unsigned c, int limited) {
    const sizeclass_t *cls = &sizeclass_table[c];
    size_t size = cls->size, seg = segpool_segment_size();
    ck_assert_int_eq(atomic_load(&pool.slabs_small), limited);
    ck_assert_uint_le(cls->slab_first, cls->slab);
    ck_assert_uint_le(((size_t)cls->slab_first * seg % size) * 8, (size_t)cls->slab_first * seg);
    unsigned slabs[16], count = 0;
    size_t total = 0;
    for (unsigned n = limited ? cls->slab_first : cls->slab;; n *= 2) {
        slabs[count++] = n < cls->slab ? n : cls->slab;
        total += slabs[count - 1] * seg / size;
        if (n >= cls->slab) break;
    }
    uintptr_t *blocks = calloc(total, sizeof *blocks);
    for (size_t k = 0; k < total; k++) {
        blocks[k] = (uintptr_t)segpool_malloc(size);
        ck_assert(blocks[k] != 0);
    }
    size_t at = 0;
    for (unsigned i = 0; i < count; i++) {
        size_t cap = slabs[i] * seg / size;
        check_slab_blocks(c, blocks + at, cap, slabs[i]);
        at += cap;
    }
    for (size_t k = 0; k < total; k++) segpool_free((void *)blocks[k]);
    free(blocks);
}

START_TEST(test_block_starts_every_class) {
    (void)segpool_segment_size();
    if ((unsigned)_i < sizeclass_count) check_slabs_of_class((unsigned)_i, 0);
}
END_TEST

/* The same once a memory limit was seen (segment_limit_seen: what a refused
 * commit or glibc failing under a limit does). */
START_TEST(test_block_starts_every_class_limited) {
    (void)segpool_segment_size();
    segment_limit_seen();
    if ((unsigned)_i < sizeclass_count) check_slabs_of_class((unsigned)_i, 1);
}
END_TEST

/* A finite RLIMIT_DATA when the pool starts is a limit seen: small slabs
 * from the first.  (Not under a sanitizer: the shadow memory of ASan and
 * TSan counts terabytes against RLIMIT_DATA, so nothing runs under one.) */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CHECK_ALLOC_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define CHECK_ALLOC_SANITIZED 1
#endif
START_TEST(test_data_limit_at_start_means_small_slabs) {
#if !defined(CHECK_ALLOC_SANITIZED)
    struct rlimit rl = {(rlim_t)16 << 30, RLIM_INFINITY};
    ck_assert_int_eq(setrlimit(RLIMIT_DATA, &rl), 0);
    (void)segpool_segment_size();
    ck_assert_int_eq(atomic_load(&pool.slabs_small), 1);
    unsigned c = sizeclass_of(segpool_segment_size());
    void *p = segpool_malloc(segpool_segment_size());
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(segment_of(p)->slab_count, sizeclass_table[c].slab_first);
    segpool_free(p);
#endif
}
END_TEST

START_TEST(test_data_that_looks_like_a_link_is_no_double_free) {
    /* A block whose first word is a pointer into its own region, written by
     * the program, must free normally (the check is exact for the owner). */
    void **p = segpool_malloc(64);
    void *q = segpool_malloc(64);
    *p = q;
    segpool_free(p);
    assert_reused(p, 64);
    segpool_free(q);
}
END_TEST

static Suite *alloc_suite(void) {
    Suite *s = suite_create("alloc");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup, NULL);
    tcase_set_timeout(core, 120);
    tcase_add_loop_test(core, test_every_class, 0, SEGPOOL_MAX_CLASSES);
    tcase_add_test(core, test_one_segment_request_takes_a_segment);
    tcase_add_test(core, test_zero_size_is_unique);
    tcase_add_test(core, test_calloc_zeroes_and_checks_overflow);
    tcase_add_test(core, test_calloc_of_fresh_memory_leaves_it_untouched);
    tcase_add_test(core, test_calloc_clears_memory_the_program_wrote);
    tcase_add_test(core, test_calloc_clears_a_kept_block);
    tcase_add_test(core, test_aligned_every_power_of_two);
    tcase_add_test(core, test_realloc_keeps_data);
    tcase_add_test(core, test_remote_frees_are_reused);
    tcase_add_test(core, test_thread_exit_leaks_nothing);
    tcase_add_test(core, test_data_that_looks_like_a_link_is_no_double_free);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_checked_fixture(limits, setup, NULL);
    tcase_add_test(limits, test_slab_classes_waste_little);
    tcase_add_loop_test(limits, test_classes_for_each_segment_size, 0, 6);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_checked_fixture(errors, setup, NULL);
    tcase_set_timeout(errors, 120);
    tcase_add_test(errors, test_misuse_messages);
    tcase_add_test(errors, test_tag_data_is_no_double_free_own_thread);
    tcase_add_test(errors, test_tag_data_is_no_double_free_other_thread);
    tcase_add_loop_test(errors, test_block_starts_every_class, 0, SEGPOOL_MAX_CLASSES);
    tcase_add_loop_test(errors, test_block_starts_every_class_limited, 0, SEGPOOL_MAX_CLASSES);
    tcase_add_test(errors, test_data_limit_at_start_means_small_slabs);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(alloc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
