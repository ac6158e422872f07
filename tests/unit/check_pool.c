/*
 * check_pool.c - the global segment pool, the arena and local pools.
 *
 * The pool is a process-wide singleton configured from the environment at
 * its first use, and Check runs every test in a forked child: each test sets
 * its SEGSHIM_* variables first and so gets a fresh pool.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "expect_abort.h"
#include "lock.h"
#include "os.h"
#include "pool.h"
#include "segpool.h"

/* Sanitizer runs set SEGPOOL_TEST_SCALE to divide the heavy loops. */
static long test_scale(void) {
    const char *s = getenv("SEGPOOL_TEST_SCALE");
    long v = s ? atol(s) : 1;
    return v > 0 ? v : 1;
}

static void env(const char *segment, const char *pool_size) {
    setenv("SEGSHIM_SEGMENT_SIZE", segment, 1);
    setenv("SEGSHIM_POOL_SIZE", pool_size, 1);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- core ------------------------------------------------------------------ */

static const struct {
    const char *segment, *pool;
    size_t expect;
} capacity_cases[] = {
    {"32K", "64M", 2048}, {"4K", "8M", 2048},  {"1M", "64M", 64},
    {"64k", "1g", 16384}, {"16K", "2M", 128}, {"32K", "3M", 64}, /* 3M rounds down to one region */
};

START_TEST(test_capacity_formula) {
    env(capacity_cases[_i].segment, capacity_cases[_i].pool);
    ck_assert_uint_eq(segpool_capacity(), capacity_cases[_i].expect);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.capacity, capacity_cases[_i].expect);
    ck_assert_uint_eq(st.capacity, st.pool_size / st.segment_size);
    ck_assert_uint_eq(st.segments_free, st.capacity);
}
END_TEST

START_TEST(test_exhaustion_and_recycle) {
    env("32K", "4M");
    size_t cap = segpool_capacity();
    ck_assert_uint_eq(cap, 128);
    void **segs = calloc(cap, sizeof *segs);
    for (size_t i = 0; i < cap; i++) {
        segs[i] = segpool_segment_request();
        ck_assert_ptr_nonnull(segs[i]);
        ck_assert_uint_eq((uintptr_t)segs[i] % segpool_segment_size(), 0);
        memset(segs[i], (int)i, segpool_segment_size());
        for (size_t j = 0; j < i; j++) ck_assert_ptr_ne(segs[i], segs[j]);
    }
    ck_assert_ptr_null(segpool_segment_request());
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_user, cap);
    ck_assert_uint_eq(st.segments_free, 0);
    for (size_t i = 0; i < cap; i++) {
        unsigned char *p = segs[i];
        ck_assert_int_eq(p[0], (unsigned char)i);
        ck_assert_int_eq(p[segpool_segment_size() - 1], (unsigned char)i);
    }
    segpool_segment_recycle(segs[7]);
    void *again = segpool_segment_request();
    ck_assert_ptr_eq(again, segs[7]);
    for (size_t i = 0; i < cap; i++) segpool_segment_recycle(segs[i]);
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_free, cap);
    ck_assert_uint_eq(st.segments_user, 0);
    free(segs);
}
END_TEST

START_TEST(test_fullest_region_first) {
    env("32K", "8M"); /* 4 regions of 64 segments */
    void *a[64 * 3];
    for (int i = 0; i < 64 * 3; i++) a[i] = segpool_segment_request();
    /* Free most of region 0 and a little of region 1: once the run cache
     * has gone back to the regions (segpool_collect), the next request must
     * come from region 1, the fuller one. */
    for (int i = 0; i < 60; i++) segpool_segment_recycle(a[i]);
    segpool_segment_recycle(a[64 + 5]);
    segpool_collect();
    void *next = segpool_segment_request();
    ck_assert_ptr_eq(next, a[64 + 5]);
    segpool_segment_recycle(next);
    for (int i = 60; i < 64 * 3; i++)
        if (i != 64 + 5) segpool_segment_recycle(a[i]);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_free, st.capacity);
}
END_TEST

/* 8 threads request and recycle 1M segments in total; each writes its id over
 * the whole segment and checks it before recycling. */
#define HANDOUT_THREADS 8
static long handout_rounds;

static void *handout_worker(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg + 1;
    size_t words = segpool_segment_size() / sizeof(uint64_t);
    void *held[4] = {0};
    long failures = 0;
    for (long r = 0; r < handout_rounds; r++) {
        int slot = (int)(r & 3);
        if (held[slot]) {
            uint64_t *w = held[slot];
            for (size_t i = 0; i < words; i++)
                if (w[i] != id) failures++;
            segpool_segment_recycle(held[slot]);
            held[slot] = NULL;
        }
        uint64_t *w = segpool_segment_request();
        if (!w) continue; /* exhausted for a moment: not an error */
        for (size_t i = 0; i < words; i++) w[i] = id;
        held[slot] = w;
    }
    for (int slot = 0; slot < 4; slot++)
        if (held[slot]) segpool_segment_recycle(held[slot]);
    return (void *)failures;
}

START_TEST(test_threads_never_share_a_segment) {
    env("4K", "16M");
    handout_rounds = 1000000 / HANDOUT_THREADS / test_scale();
    pthread_t t[HANDOUT_THREADS];
    for (uintptr_t i = 0; i < HANDOUT_THREADS; i++) pthread_create(&t[i], NULL, handout_worker, (void *)i);
    long failures = 0;
    for (int i = 0; i < HANDOUT_THREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        failures += (long)rc;
    }
    ck_assert_int_eq(failures, 0);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_user, 0);
    ck_assert_uint_eq(st.segments_in_use + st.segments_free + st.segments_cached, st.capacity);
    ck_assert_uint_eq(st.segments_free, st.capacity);
}
END_TEST

/* ---- hugepages and memory given back ----------------------------------------- */

/* Commit and touch one whole region through whole segments; return them. */
static void **fill_region(size_t *count) {
    size_t n = (2u << 20) / segpool_segment_size();
    void **segs = calloc(n, sizeof *segs);
    for (size_t i = 0; i < n; i++) {
        segs[i] = segpool_segment_request();
        ck_assert_ptr_nonnull(segs[i]);
        memset(segs[i], 0x5a, segpool_segment_size());
    }
    *count = n;
    return segs;
}

/* Threads of this process (/proc/self/task entries): segshim starts none. */
static int count_threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    if (f) fclose(f);
    return n;
}

static void region_residency(void *any, size_t *rss, size_t *huge) {
    void *region = (void *)((uintptr_t)any & ~(uintptr_t)((2u << 20) - 1));
    ck_assert_int_eq(os_smaps_range(region, 2u << 20, rss, huge), 0);
}

START_TEST(test_thp_region_is_huge) {
    if (!os_thp_available()) {
        fprintf(stderr, "note: THP unavailable here; checking the degraded mode instead\n");
        env("32K", "64M");
        setenv("SEGSHIM_HUGEPAGES", "thp", 1);
        segpool_stats_t st;
        segpool_stats_get(&st);
        ck_assert_str_eq(st.hugepage_mode, "off");
        ck_assert_str_ne(st.hugepage_note, "");
        return;
    }
    env("32K", "64M");
    setenv("SEGSHIM_HUGEPAGES", "thp", 1);
    size_t n, rss, huge;
    void **segs = fill_region(&n);
    region_residency(segs[0], &rss, &huge);
    fprintf(stderr, "thp: region rss %zu KiB, huge %zu KiB\n", rss >> 10, huge >> 10);
    ck_assert_uint_ge(rss, 2u << 20);
    ck_assert_uint_ge(huge * 10, (size_t)(2u << 20) * 9); /* at least 90% */
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_str_eq(st.hugepage_mode, "thp");
    for (size_t i = 0; i < n; i++) segpool_segment_recycle(segs[i]);
    free(segs);
}
END_TEST

START_TEST(test_off_has_no_huge_pages) {
    env("32K", "64M");
    setenv("SEGSHIM_HUGEPAGES", "off", 1);
    size_t n, rss, huge;
    void **segs = fill_region(&n);
    region_residency(segs[0], &rss, &huge);
    fprintf(stderr, "off: region rss %zu KiB, huge %zu KiB\n", rss >> 10, huge >> 10);
    ck_assert_uint_ge(rss, 2u << 20);
    ck_assert_uint_eq(huge, 0);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_str_eq(st.hugepage_mode, "off");
    free(segs);
}
END_TEST

/* Allocate blocks of 64 B through this thread's heap until it holds bytes
 * more; each block written, so that its page is resident.  Returns the last. */
static void *heap_fill(size_t bytes) {
    void *last = NULL;
    for (size_t done = 0; done < bytes; done += 64) {
        last = segpool_malloc(64);
        ck_assert_ptr_nonnull(last);
        memset(last, 0x3c, 64);
    }
    return last;
}

/* A heap below HEAP_HUGE_MIN_BYTES stays on 4 KiB pages: a huge page would
 * be resident whole for a few segments (a small program's peak RSS); a heap
 * past it gets huge regions (the TLB). */
START_TEST(test_small_heap_stays_on_small_pages) {
    env("32K", "256M");
    setenv("SEGSHIM_HUGEPAGES", "thp", 1);
    size_t rss, huge;
    void *first = heap_fill(64); /* sets the pool up */
    if (!os_thp_available()) {
        fprintf(stderr, "note: THP unavailable here; nothing to check\n");
        return;
    }
    void *last = heap_fill((size_t)(HEAP_HUGE_MIN_BYTES / 2));
    region_residency(first, &rss, &huge);
    ck_assert_uint_eq(huge, 0);
    region_residency(last, &rss, &huge);
    ck_assert_uint_eq(huge, 0);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.arena_huge, 0);
    last = heap_fill((size_t)HEAP_HUGE_MIN_BYTES + (4u << 20));
    region_residency(last, &rss, &huge);
    fprintf(stderr, "big heap: last region rss %zu KiB, huge %zu KiB\n", rss >> 10, huge >> 10);
    ck_assert_uint_ge(huge * 10, (size_t)(2u << 20) * 9); /* at least 90% */
}
END_TEST

/* A slab is formatted a page at a time as it is used: after n blocks of a
 * class, its region holds at most n blocks and one page more resident. */
START_TEST(test_slab_formatted_as_used) {
    env("32K", "64M");
    setenv("SEGSHIM_HUGEPAGES", "off", 1);
    void *first = segpool_malloc(64); /* class 64 B: one 32 KiB segment */
    ck_assert_ptr_nonnull(first);
    size_t n = 4096 / 64 * 4 + 1; /* four pages and one block */
    for (size_t i = 1; i < n; i++) ck_assert_ptr_nonnull(segpool_malloc(64));
    size_t rss, huge;
    region_residency(first, &rss, &huge);
    fprintf(stderr, "%zu blocks of 64 B: region rss %zu KiB\n", n, rss >> 10);
    ck_assert_uint_ge(rss, 5 * 4096);
    ck_assert_uint_le(rss, 6 * 4096); /* doubling formatted 8 pages */
}
END_TEST

/* n blocks of size bytes from segpool_malloc; each fully written when full,
 * else only its first word (a buffer sized for more than it holds). */
static void **malloc_blocks(size_t n, size_t size, int full) {
    void **b = calloc(n, sizeof *b);
    for (size_t i = 0; i < n; i++) {
        b[i] = segpool_malloc(size);
        ck_assert_ptr_nonnull(b[i]);
        if (full) memset(b[i], 0x5a, size);
        else *(volatile uint64_t *)b[i] = i;
    }
    return b;
}

/* Once a heap owns HEAP_HUGE_MIN_BYTES its small blocks move to huge pages,
 * but blocks of a page or more stay on 4 KiB pages: a program that writes
 * one word of each 8 KiB block must not have whole 2 MiB pages of them
 * resident. */
START_TEST(test_thp_only_for_blocks_below_a_page) {
    if (!os_thp_available()) {
        fprintf(stderr, "note: THP unavailable here; nothing to check\n");
        return;
    }
    env("32K", "256M");
    setenv("SEGSHIM_HUGEPAGES", "thp", 1);
    size_t nsmall = (size_t)(HEAP_HUGE_MIN_BYTES + (4u << 20)) / 256, nlarge = (3u << 20) / 8192, rss, huge;
    void **small = malloc_blocks(nsmall, 256, 1);
    region_residency(small[nsmall - 1], &rss, &huge);
    fprintf(stderr, "256 B blocks past HEAP_HUGE_MIN_BYTES: region rss %zu KiB, huge %zu KiB\n", rss >> 10,
            huge >> 10);
    ck_assert_uint_ge(huge * 10, (size_t)(2u << 20) * 9);
    void **large = malloc_blocks(nlarge, 8192, 0);
    region_residency(large[nlarge - 1], &rss, &huge);
    fprintf(stderr, "8 KiB blocks, one word written: region rss %zu KiB, huge %zu KiB\n", rss >> 10, huge >> 10);
    ck_assert_uint_eq(huge, 0);
    ck_assert_uint_lt(rss, 2u << 20);
    for (size_t i = 0; i < nsmall; i++) segpool_free(small[i]);
    for (size_t i = 0; i < nlarge; i++) segpool_free(large[i]);
    free(small);
    free(large);
}
END_TEST

START_TEST(test_hugetlb_without_pages_falls_back) {
    if (os_hugetlb_free_pages() > 0) {
        fprintf(stderr, "note: reserved huge pages exist; injecting the hugetlb mapping failure instead\n");
        os_inject_failure(OS_HUGETLB, 0, 1000000);
    }
    env("32K", "64M");
    setenv("SEGSHIM_HUGEPAGES", "hugetlb", 1);
    size_t n;
    void **segs = fill_region(&n); /* must work, on THP or 4 KiB pages */
    segpool_stats_t st;
    segpool_stats_get(&st);
    fprintf(stderr, "hugetlb without pages: mode %s (%s)\n", st.hugepage_mode, st.hugepage_note);
    ck_assert_str_ne(st.hugepage_mode, "hugetlb");
    ck_assert_ptr_nonnull(strstr(st.hugepage_note, "hugetlb"));
    ck_assert_uint_ge(st.arena_rss, 2u << 20);
    free(segs);
}
END_TEST

/* Within the retention budget a free region stays until the decay has passed
 * and the allocator is next called: no thread of its own gives it back. */
START_TEST(test_decay_returns_whole_regions) {
    int threads = count_threads(); /* a sanitizer's runtime may have one of its own */
    env("32K", "64M");
    setenv("SEGSHIM_DECAY_MS", "100", 1);
    size_t n, rss, huge;
    void **segs = fill_region(&n);
    region_residency(segs[0], &rss, &huge);
    ck_assert_uint_ge(rss, 2u << 20);
    double start = now_ms(); /* before the region comes free: a preemption cannot shorten took */
    for (size_t i = 0; i < n; i++) segpool_segment_recycle(segs[i]);
    region_residency(segs[0], &rss, &huge);
    ck_assert_uint_ge(rss, 2u << 20); /* kept: within SEGSHIM_RETAIN, not yet decayed */
    do {
        usleep(20000);
        segpool_collect(); /* an allocator call: where the decay is checked */
        region_residency(segs[0], &rss, &huge);
    } while (rss > 0 && now_ms() - start < 3000);
    double took = now_ms() - start;
    fprintf(stderr, "decay 100 ms: region returned after %.0f ms (rss %zu KiB)\n", took, rss >> 10);
    ck_assert_uint_eq(rss, 0);
    ck_assert(took >= 80);
    ck_assert_int_eq(count_threads(), threads); /* and no thread was started for it */
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_ge(st.regions_purged, 1);
    ck_assert_uint_eq(st.regions_committed, 0);
    /* A purged region is reused without trouble. */
    void *again = segpool_segment_request();
    ck_assert_ptr_nonnull(again);
    memset(again, 1, segpool_segment_size());
    free(segs);
}
END_TEST

/* Past SEGSHIM_RETAIN, a region that comes free goes back at once. */
START_TEST(test_retain_budget_returns_at_once) {
    int threads = count_threads();
    env("32K", "64M");
    setenv("SEGSHIM_DECAY_MS", "3600000", 1);
    setenv("SEGSHIM_RETAIN", "4M", 1); /* two regions */
    size_t per = segpool_capacity() / 32; /* segments per 2 MiB region */
    size_t total = per * 5;
    void **segs = calloc(total, sizeof *segs);
    for (size_t i = 0; i < total; i++) {
        segs[i] = segpool_segment_request();
        ck_assert_ptr_nonnull(segs[i]);
        memset(segs[i], 7, segpool_segment_size());
    }
    for (size_t i = 0; i < total; i++) segpool_segment_recycle(segs[i]);
    segpool_stats_t st;
    segpool_stats_get(&st);
    fprintf(stderr, "retain 4M: %zu regions committed, %llu purged after freeing 5\n", st.regions_committed,
            (unsigned long long)st.regions_purged);
    ck_assert_uint_eq(st.regions_committed, 2);
    ck_assert_uint_ge(st.regions_purged, 3);
    ck_assert_int_eq(count_threads(), threads);
    free(segs);
}
END_TEST

/* Bursts past SEGSHIM_RETAIN, again and again: the regions the first burst
 * gave back and the next committed again raise the budget, so that later
 * bursts keep their regions instead of faulting them in each time. */
START_TEST(test_retain_raised_by_repeated_bursts) {
    env("32K", "64M");
    setenv("SEGSHIM_DECAY_MS", "3600000", 1);
    setenv("SEGSHIM_RETAIN", "4M", 1); /* two regions */
    segment_shard_pin(0); /* every burst from the shard that holds the purged regions */
    size_t per = segpool_capacity() / 32, total = per * 5;
    void **segs = calloc(total, sizeof *segs);
    unsigned long long purged_before = 0, purged[4];
    for (int burst = 0; burst < 4; burst++) {
        for (size_t i = 0; i < total; i++) {
            segs[i] = segpool_segment_request();
            ck_assert_ptr_nonnull(segs[i]);
            memset(segs[i], burst, segpool_segment_size());
        }
        for (size_t i = 0; i < total; i++) segpool_segment_recycle(segs[i]);
        segpool_stats_t st;
        segpool_stats_get(&st);
        purged[burst] = st.regions_purged - purged_before;
        purged_before = st.regions_purged;
    }
    fprintf(stderr, "retain 4M, bursts of 5 regions: %llu, %llu, %llu, %llu purged\n", purged[0], purged[1],
            purged[2], purged[3]);
    ck_assert_uint_ge(purged[0], 3);
    ck_assert_uint_eq(purged[3], 0);
    free(segs);
}
END_TEST

START_TEST(test_decay_never_keeps_regions) {
    env("32K", "64M");
    setenv("SEGSHIM_DECAY_MS", "-1", 1);
    size_t n, rss, huge;
    void **segs = fill_region(&n);
    for (size_t i = 0; i < n; i++) segpool_segment_recycle(segs[i]);
    usleep(300000);
    region_residency(segs[0], &rss, &huge);
    ck_assert_uint_ge(rss, 2u << 20);
    free(segs);
}
END_TEST

START_TEST(test_prefault_commits_up_front) {
    env("32K", "64M");
    setenv("SEGSHIM_PREFAULT", "8M", 1);
    segpool_stats_t st;
    ck_assert_uint_eq(segpool_capacity(), 2048);
    segpool_stats_get(&st);
    fprintf(stderr, "prefault 8M: arena rss %zu KiB, %zu regions committed\n", st.arena_rss >> 10,
            st.regions_committed);
    ck_assert_uint_ge(st.arena_rss, 8u << 20);
    ck_assert_uint_eq(st.regions_committed, 4);
}
END_TEST

/* ---- local pools --------------------------------------------------------------- */

START_TEST(test_local_min_reserved_max_enforced) {
    env("32K", "16M");
    segpool_local_t *lp = segpool_local_create(3, 5);
    ck_assert_ptr_nonnull(lp);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_user, 3); /* reserved up front */
    void *s[5];
    for (int i = 0; i < 5; i++) {
        s[i] = segpool_local_request(lp);
        ck_assert_ptr_nonnull(s[i]);
        memset(s[i], i, segpool_segment_size());
    }
    ck_assert_uint_eq(segpool_local_in_use(lp), 5);
    ck_assert_ptr_null(segpool_local_request(lp));
    segpool_local_recycle(lp, s[0]);
    ck_assert_uint_eq(segpool_local_in_use(lp), 4);
    s[0] = segpool_local_request(lp);
    ck_assert_ptr_nonnull(s[0]);
    for (int i = 0; i < 5; i++) segpool_local_recycle(lp, s[i]);
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_user, 3); /* the surplus went back, the minimum stays */
    segpool_local_destroy(lp);
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_user, 0);
    ck_assert_uint_eq(st.segments_free, st.capacity);
}
END_TEST

START_TEST(test_local_timeout_honoured) {
    env("32K", "16M");
    segpool_local_t *lp = segpool_local_create(0, 1);
    void *a = segpool_local_request(lp);
    ck_assert_ptr_nonnull(a);
    double t0 = now_ms();
    errno = 0;
    ck_assert_ptr_null(segpool_local_request_timeout(lp, 150));
    double took = now_ms() - t0;
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert(took >= 145);
    ck_assert(took < 1500);
    t0 = now_ms();
    ck_assert_ptr_null(segpool_local_request_timeout(lp, 0));
    ck_assert(now_ms() - t0 < 100);
    segpool_local_recycle(lp, a);
    segpool_local_destroy(lp);
}
END_TEST

struct recycler {
    segpool_local_t *lp;
    void *seg;
};

static void *recycle_later(void *arg) {
    struct recycler *r = arg;
    usleep(100000);
    segpool_local_recycle(r->lp, r->seg);
    return NULL;
}

START_TEST(test_local_waiter_woken_by_recycle) {
    env("32K", "16M");
    segpool_local_t *lp = segpool_local_create(1, 1);
    struct recycler r = {lp, segpool_local_request(lp)};
    ck_assert_ptr_nonnull(r.seg);
    pthread_t t;
    double t0 = now_ms(); /* before the recycler's sleep starts: a loaded machine cannot shorten took */
    pthread_create(&t, NULL, recycle_later, &r);
    void *got = segpool_local_request_timeout(lp, 5000);
    double took = now_ms() - t0;
    pthread_join(t, NULL);
    ck_assert_ptr_eq(got, r.seg);
    ck_assert(took >= 90);
    ck_assert(took < 2000);
    segpool_local_recycle(lp, got);
    segpool_local_destroy(lp);
}
END_TEST

START_TEST(test_local_destroy_returns_everything) {
    env("32K", "16M");
    segpool_local_t *lp = segpool_local_create(2, 10);
    for (int i = 0; i < 7; i++) ck_assert_ptr_nonnull(segpool_local_request(lp)); /* never recycled */
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_user, 7);
    segpool_local_destroy(lp);
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_user, 0);
    ck_assert_uint_eq(st.segments_free, st.capacity);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------ */

START_TEST(test_local_create_rejects_bad_bounds) {
    env("32K", "4M");
    errno = 0;
    ck_assert_ptr_null(segpool_local_create(5, 2));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(segpool_local_create(0, 0));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(segpool_local_create(1000, 1000)); /* more than the pool holds */
    ck_assert_int_eq(errno, ENOMEM);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.segments_free, st.capacity); /* the partial reservation went back */
}
END_TEST

#define MSG_NOT_REQUESTED "segshim: segpool_segment_recycle(): not a segment from segpool_segment_request at 0x"

static void recycle_foreign_pointer(void *arg) {
    (void)arg;
    void *s = segpool_segment_request();
    segpool_segment_recycle((char *)s + 64);
}

static void recycle_twice(void *arg) {
    (void)arg;
    void *s = segpool_segment_request();
    segpool_segment_recycle(s);
    segpool_segment_recycle(s);
}

START_TEST(test_recycle_misuse_aborts) {
    env("32K", "4M");
    expect_abort(recycle_foreign_pointer, NULL, MSG_NOT_REQUESTED);
    expect_abort(recycle_twice, NULL, MSG_NOT_REQUESTED);
}
END_TEST

START_TEST(test_commit_failure_is_exhaustion) {
    env("32K", "64M");
    os_inject_failure(OS_COMMIT, 0, 1);
    ck_assert_ptr_null(segpool_segment_request()); /* the first region cannot be committed */
    void *s = segpool_segment_request();           /* the fault is over */
    ck_assert_ptr_nonnull(s);
    memset(s, 1, segpool_segment_size());
}
END_TEST

START_TEST(test_reserve_failure_shrinks_pool) {
    env("32K", "64M");
    os_inject_failure(OS_RESERVE, 0, 2); /* 64M and 32M fail, 16M works */
    ck_assert_uint_eq(segpool_capacity(), 512);
}
END_TEST

/* ---- fork while the pool is set up ----------------------------------------- */

static void *first_malloc(void *unused) {
    (void)unused;
    segpool_free(segpool_malloc(64));
    return NULL;
}

/* One process: a thread makes the first allocation (the pool's set-up) while
 * the main thread forks as soon as it sees the set-up begin.  The child must
 * allocate at once: the fork waits for the set-up to finish, as a child that
 * inherited it half done would wait for ever for a thread it does not have.
 * Exits 0 (fork made during the set-up), 1 (the set-up was over first) or
 * with a failure code. */
static int fork_during_setup_once(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, first_malloc, NULL) != 0) return 2;
    int state;
    while ((state = atomic_load(&pool.state)) == POOL_UNINIT) {
    }
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGALRM, SIG_DFL); /* not Check's timeout handler, which kills the test */
        alarm(20);
        void *p = segpool_malloc(64);
        _exit(p && atomic_load(&pool.state) == POOL_READY ? 0 : 3);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return 4;
    pthread_join(t, NULL);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) return 5; /* the child hung */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 6;
    return state == POOL_INITIALIZING ? 0 : 1;
}

START_TEST(test_fork_during_setup) {
    env("32K", "64M");
    setenv("SEGSHIM_PREFAULT", "32M", 1); /* a set-up of milliseconds, not microseconds */
    int during = 0, rounds = 0;
    for (; rounds < 50 && during < 3; rounds++) {
        pid_t pid = fork(); /* a process whose pool is not set up yet */
        ck_assert_int_ge(pid, 0);
        if (pid == 0) _exit(fork_during_setup_once());
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) <= 1,
                      "round %d: status %#x (exit 5: the child of a fork during the set-up hung; 6: it failed)",
                      rounds, status);
        during += WEXITSTATUS(status) == 0;
    }
    ck_assert_msg(during > 0, "no fork landed during the set-up in %d rounds", rounds);
}
END_TEST

/* ---- a signal handler that takes a lock its thread holds ------------------- */

static pthread_mutex_t gap_lock = PTHREAD_MUTEX_INITIALIZER;

static void gap_handler(int sig) {
    (void)sig;
    lock_acquire(&gap_lock);
    lock_release(&gap_lock);
}

/* The thread takes and releases the lock for ever under a 50 us timer whose
 * handler takes it too: the handler must abort as soon as it lands while the
 * thread holds the lock or is taking or releasing it.  A handler that landed
 * between the mutex call and the held-set bookkeeping waited for ever (the
 * test then times out). */
static void lock_loop_under_timer(void *unused) {
    (void)unused;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = gap_handler;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);
    for (;;) {
        lock_acquire(&gap_lock);
        lock_release(&gap_lock);
    }
}

START_TEST(test_handler_taking_a_held_lock_aborts) {
    expect_abort(lock_loop_under_timer, NULL, "segshim: malloc(): re-entered from a signal handler");
}
END_TEST

/* The permissions ("rw-p", "---p"...) of the mapping holding addr, from
 * /proc/self/maps; "" when none does. */
static void maps_perms_at(uintptr_t addr, char perms[5]) {
    perms[0] = '\0';
    FILE *f = fopen("/proc/self/maps", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && addr >= lo && addr < hi) {
            memcpy(perms, p, 5);
            break;
        }
    }
    fclose(f);
}

/* [start, start + size) of metadata has an inaccessible page just before
 * it and just after its last page. */
static void assert_guarded(const char *what, const void *start, size_t size) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)start, hi = (lo + size + page - 1) & ~(page - 1);
    char before[5], after[5], inside[5];
    maps_perms_at(lo - 1, before);
    maps_perms_at(hi, after);
    maps_perms_at(lo, inside);
    ck_assert_msg(strcmp(before, "---p") == 0 && strcmp(after, "---p") == 0,
                  "%s (%s): the page before is \"%s\", the page after \"%s\", not guards", what, inside, before,
                  after);
}

/* Every metadata mapping sits between guard pages, so that an overflow from
 * a neighbouring mapping (a block glibc mmapped, a thread's stack) faults
 * rather than rewrite the pointers malloc follows: the side tables, the
 * regions and shards, a chunk of heaps and a local pool. */
START_TEST(test_metadata_between_guard_pages) {
    env("32K", "64M");
    void *p = segpool_malloc(64); /* the pool, and this thread's heap: the first of its chunk */
    ck_assert_ptr_nonnull(p);
    assert_guarded("pool.segments", pool.segments, pool.capacity * sizeof(segment_t));
    assert_guarded("pool.links", pool.links, pool.capacity * sizeof(segment_link_t));
    assert_guarded("pool.regions", pool.regions, pool.region_count * sizeof(region_t));
    assert_guarded("pool.shards", pool.shards, pool.shard_count * sizeof(segment_shard_t));
    char before[5];
    maps_perms_at((uintptr_t)tls_heap - 1, before);
    ck_assert_msg(strcmp(before, "---p") == 0, "the heap chunk: the page before is \"%s\"", before);
    segpool_local_t *lp = segpool_local_create(0, 4);
    ck_assert_ptr_nonnull(lp);
    maps_perms_at((uintptr_t)lp - 1, before);
    ck_assert_msg(strcmp(before, "---p") == 0, "a local pool: the page before is \"%s\"", before);
    segpool_local_destroy(lp);
    segpool_free(p);
}
END_TEST

static Suite *pool_suite(void) {
    Suite *s = suite_create("pool");
    TCase *core = tcase_create("core");
    tcase_set_timeout(core, 120);
    tcase_add_loop_test(core, test_capacity_formula, 0, sizeof capacity_cases / sizeof capacity_cases[0]);
    tcase_add_test(core, test_exhaustion_and_recycle);
    tcase_add_test(core, test_fullest_region_first);
    tcase_add_test(core, test_threads_never_share_a_segment);
    tcase_add_test(core, test_local_min_reserved_max_enforced);
    tcase_add_test(core, test_local_timeout_honoured);
    tcase_add_test(core, test_local_waiter_woken_by_recycle);
    tcase_add_test(core, test_local_destroy_returns_everything);
    tcase_add_test(core, test_fork_during_setup);
    tcase_add_test(core, test_metadata_between_guard_pages);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_set_timeout(limits, 60);
    tcase_add_test(limits, test_thp_region_is_huge);
    tcase_add_test(limits, test_small_heap_stays_on_small_pages);
    tcase_add_test(limits, test_slab_formatted_as_used);
    tcase_add_test(limits, test_off_has_no_huge_pages);
    tcase_add_test(limits, test_thp_only_for_blocks_below_a_page);
    tcase_add_test(limits, test_hugetlb_without_pages_falls_back);
    tcase_add_test(limits, test_decay_returns_whole_regions);
    tcase_add_test(limits, test_decay_never_keeps_regions);
    tcase_add_test(limits, test_retain_budget_returns_at_once);
    tcase_add_test(limits, test_retain_raised_by_repeated_bursts);
    tcase_add_test(limits, test_prefault_commits_up_front);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_local_create_rejects_bad_bounds);
    tcase_add_test(errors, test_recycle_misuse_aborts);
    tcase_add_test(errors, test_commit_failure_is_exhaustion);
    tcase_add_test(errors, test_reserve_failure_shrinks_pool);
    tcase_add_test(errors, test_handler_taking_a_held_lock_aborts);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(pool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
