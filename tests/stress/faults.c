/*
 * faults.c - every failure the OS layer can report, injected before the
 * pool's first call (os_inject_failure, os.h), one TCase per fault.
 *
 * Check runs each test in a fresh forked process, so each test sets its
 * SEGSHIM_* variables with setenv() and injects the fault before anything
 * touches the pool.  Every test ends with the pool either serving data
 * intact or refusing cleanly (NULL, errno untouched by the malloc family,
 * ENOMEM from segpool_local_create), and its statistics consistent.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "os.h"
#include "segpool.h"

/* ---- Helpers ---------------------------------------------------------------- */

static void env(const char *pool_size, const char *segment_size) {
    setenv("SEGSHIM_POOL_SIZE", pool_size, 1);
    setenv("SEGSHIM_SEGMENT_SIZE", segment_size, 1);
}

static void fill(void *p, size_t n, unsigned seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(i * 31 + seed);
}

static int intact(const void *p, size_t n, unsigned seed) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(i * 31 + seed)) return 0;
    return 1;
}

static void stats(segpool_stats_t *st) {
    segpool_stats_get(st);
    ck_assert_uint_eq(st->segments_in_use + st->segments_cached + st->segments_free, st->capacity);
}

static void report(const char *test, const segpool_stats_t *st) {
    fprintf(stderr, "faults.%s: capacity %zu, in use %zu, regions committed %zu purged %llu, arena rss %zu KiB, mode %s%s%s\n",
            test, st->capacity, st->segments_in_use, st->regions_committed, (unsigned long long)st->regions_purged,
            st->arena_rss >> 10, st->hugepage_mode, st->hugepage_note[0] ? ", note: " : "", st->hugepage_note);
}

/* A malloc that must fail cleanly: NULL and errno left alone. */
static void assert_refused_malloc(size_t size) {
    errno = 4321;
    ck_assert_ptr_null(segpool_malloc(size));
    ck_assert_int_eq(errno, 4321);
}

/* A short round of every allocator entry point that must succeed. */
static void assert_pool_works(void) {
    void *p[64];
    for (unsigned i = 0; i < 64; i++) {
        size_t n = 16u << (i % 11);
        if (n > segpool_segment_size()) n = segpool_segment_size();
        p[i] = segpool_malloc(n);
        ck_assert_ptr_nonnull(p[i]);
        fill(p[i], n, i);
    }
    void *c = segpool_calloc(10, 100);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(((unsigned char *)c)[999], 0);
    void *a = segpool_aligned_alloc(4096, 100);
    ck_assert_ptr_nonnull(a);
    ck_assert_uint_eq((uintptr_t)a & 4095, 0);
    for (unsigned i = 0; i < 64; i++) {
        size_t n = 16u << (i % 11);
        if (n > segpool_segment_size()) n = segpool_segment_size();
        ck_assert_msg(intact(p[i], n, i), "block %u corrupted", i);
        segpool_free(p[i]);
    }
    segpool_free(c);
    segpool_free(a);
}

/* ---- OS_RESERVE: the arena reservation --------------------------------------- */

START_TEST(reserve_once_halves_the_pool) {
    env("64M", "32K");
    os_inject_failure(OS_RESERVE, 0, 1);
    ck_assert_uint_eq(segpool_segment_size(), 32768);
    ck_assert_uint_eq(segpool_capacity(), 1024); /* 32 MiB / 32 KiB */
    assert_pool_works();
    segpool_stats_t st;
    stats(&st);
    ck_assert_uint_eq(st.pool_size, 32u << 20);
    report("reserve_once", &st);
}
END_TEST

START_TEST(reserve_down_to_one_region) {
    env("16M", "32K");
    os_inject_failure(OS_RESERVE, 0, 3); /* 16M, 8M, 4M fail; 2M succeeds */
    ck_assert_uint_eq(segpool_capacity(), 64);
    assert_pool_works();
}
END_TEST

START_TEST(reserve_always_fails_disables) {
    env("64M", "32K");
    os_inject_failure(OS_RESERVE, 0, 1000);
    assert_refused_malloc(100);
    os_inject_reset(); /* the decision is made once: the pool stays off */
    assert_refused_malloc(100);
    ck_assert_uint_eq(segpool_segment_size(), 0);
    ck_assert_uint_eq(segpool_capacity(), 0);
    ck_assert_ptr_null(segpool_calloc(1, 1));
    ck_assert_ptr_null(segpool_aligned_alloc(64, 64));
    ck_assert_ptr_null(segpool_realloc(NULL, 64));
    ck_assert_ptr_null(segpool_segment_request());
    errno = 0;
    ck_assert_ptr_null(segpool_local_create(1, 2));
    ck_assert_int_eq(errno, ENOMEM);
    int x;
    ck_assert_int_eq(segpool_owns(&x), 0);
    ck_assert_uint_eq(segpool_usable_size(&x), 0);
    segpool_free(NULL);
    segpool_collect();
    segpool_note_fallback(SEGPOOL_FALLBACK_OTHER, 10);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.capacity, 0);
    ck_assert_uint_eq(st.fallback_other, 1);
    int fd = open("/dev/null", O_WRONLY);
    ck_assert_int_eq(segpool_stats_print(fd, 0), 0);
    ck_assert_int_eq(segpool_stats_print(fd, 1), 0);
    close(fd);
}
END_TEST

/* ---- OS_COMMIT: making a region writable -------------------------------------- */

START_TEST(commit_fails_on_first_region) {
    env("64M", "32K");
    os_inject_failure(OS_COMMIT, 0, 1);
    assert_refused_malloc(100); /* the pool is up but cannot commit: exhausted */
    ck_assert_uint_eq(segpool_capacity(), 2048);
    void *p = segpool_malloc(100); /* the injection is over */
    ck_assert_ptr_nonnull(p);
    fill(p, 100, 7);
    ck_assert(intact(p, 100, 7));
    segpool_free(p);
    segpool_stats_t st;
    stats(&st);
    ck_assert_uint_eq(st.regions_committed, 1);
    report("commit_first", &st);
}
END_TEST

START_TEST(commit_fails_on_a_later_region) {
    env("64M", "32K");
    setenv("SEGSHIM_TCACHE", "0", 1);
    size_t seg = segpool_segment_size();
    enum { PER_REGION = 64 }; /* 2 MiB / 32 KiB */
    void *blocks[PER_REGION];
    for (unsigned i = 0; i < PER_REGION; i++) { /* whole segments: fill region 0 */
        blocks[i] = segpool_segment_request();
        ck_assert_ptr_nonnull(blocks[i]);
        fill(blocks[i], seg, i);
    }
    segpool_stats_t before;
    stats(&before);
    ck_assert_uint_eq(before.regions_committed, 1);
    os_inject_failure(OS_COMMIT, 0, 3);
    assert_refused_malloc(seg);                  /* needs region 1 */
    ck_assert_ptr_null(segpool_segment_request()); /* so does a whole segment */
    errno = 0;
    ck_assert_ptr_null(segpool_local_create(1, 4));
    ck_assert_int_eq(errno, ENOMEM);
    void *small = segpool_malloc(64); /* the injection is over: commits succeed again */
    ck_assert_ptr_nonnull(small);
    void *more = segpool_malloc(seg);
    ck_assert_ptr_nonnull(more);
    fill(more, seg, 99);
    for (unsigned i = 0; i < PER_REGION; i++) {
        ck_assert_msg(intact(blocks[i], seg, i), "segment %u corrupted", i);
        segpool_segment_recycle(blocks[i]);
    }
    ck_assert(intact(more, seg, 99));
    segpool_free(more);
    segpool_free(small);
    segpool_collect();
    segpool_stats_t st;
    stats(&st);
    ck_assert_uint_eq(st.segments_in_use, 0);
    report("commit_later", &st);
}
END_TEST

START_TEST(commit_fails_during_prefault) {
    env("64M", "32K");
    setenv("SEGSHIM_PREFAULT", "8M", 1);
    os_inject_failure(OS_COMMIT, 0, 1);
    ck_assert_uint_eq(segpool_capacity(), 2048);
    segpool_stats_t st;
    stats(&st);
    ck_assert_uint_eq(st.regions_committed, 0); /* prefault stopped at the first failure */
    assert_pool_works();
}
END_TEST

/* Commits fail now and then while threads allocate. */
static void *flaky_worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    void *blocks[256] = {0};
    size_t seg = segpool_segment_size();
    unsigned served = 0;
    for (unsigned round = 0; round < 2000; round++) {
        unsigned i = (round * 7919u + id) % 256;
        size_t n = 1 + (round * 131u) % seg;
        if (blocks[i]) {
            ck_assert(intact(blocks[i], 16, i));
            segpool_free(blocks[i]);
            blocks[i] = NULL;
        } else if ((blocks[i] = segpool_malloc(n)) != NULL) {
            fill(blocks[i], 16, i);
            served++;
        }
    }
    for (unsigned i = 0; i < 256; i++) segpool_free(blocks[i]);
    return (void *)(uintptr_t)served;
}

START_TEST(commit_flaky_under_threads) {
    env("256M", "16K");
    setenv("SEGSHIM_DECAY_MS", "0", 1); /* regions purged at once, so fresh ones are committed often */
    os_inject_failure(OS_COMMIT, 1, 1000000); /* after the first region, every commit fails */
    pthread_t t[4];
    uintptr_t total = 0;
    for (unsigned i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, flaky_worker, (void *)(uintptr_t)i), 0);
    for (unsigned i = 0; i < 4; i++) {
        void *served;
        pthread_join(t[i], &served);
        total += (uintptr_t)served; /* a thread may get nothing: the others hold the one region */
    }
    ck_assert_uint_gt(total, 0);
    os_inject_reset();
    segpool_collect();
    segpool_stats_t st;
    stats(&st);
    ck_assert_uint_eq(st.segments_in_use, 0);
    ck_assert_uint_le(st.regions_peak, 1);
    report("commit_flaky", &st);
}
END_TEST

/* ---- OS_HUGETLB: mapping reserved huge pages ---------------------------------- */

START_TEST(hugetlb_fails_degrades) {
    env("64M", "32K");
    setenv("SEGSHIM_HUGEPAGES", "hugetlb", 1);
    os_inject_failure(OS_HUGETLB, 0, 1000);
    assert_pool_works();
    segpool_stats_t st;
    stats(&st);
    report("hugetlb", &st);
    ck_assert_str_ne(st.hugepage_mode, "hugetlb");
    ck_assert_msg(strcmp(st.hugepage_mode, "thp") == 0 || strcmp(st.hugepage_mode, "off") == 0, "mode %s",
                  st.hugepage_mode);
    ck_assert_msg(st.hugepage_note[0] != '\0', "no note says why hugetlb was not used");
    ck_assert_uint_eq(st.regions_committed, 1);
}
END_TEST

/* ---- OS_ADVISE_HUGE: madvise(MADV_HUGEPAGE) ------------------------------------ */

static void advise_fails(const char *mode) {
    env("64M", "32K");
    setenv("SEGSHIM_HUGEPAGES", mode, 1);
    os_inject_failure(OS_ADVISE_HUGE, 0, 1000);
    assert_pool_works(); /* a small heap: its regions are on 4 KiB pages, never advised */
    /* Whole segments come from huge regions: the advice fails, the mode
     * degrades, and the next region is committed without trouble. */
    size_t seg = segpool_segment_size();
    void *p[70];
    for (unsigned i = 0; i < 70; i++) {
        p[i] = segpool_segment_request();
        ck_assert_ptr_nonnull(p[i]);
        memset(p[i], (int)i, seg);
    }
    segpool_stats_t st;
    stats(&st);
    report(mode, &st);
    ck_assert_str_eq(st.hugepage_mode, "off");
    ck_assert_msg(st.hugepage_note[0] != '\0', "no note says why huge pages are off");
    for (unsigned i = 0; i < 70; i++) segpool_segment_recycle(p[i]);
    stats(&st);
    ck_assert_uint_ge(st.regions_committed, 2);
}

START_TEST(advise_fails_thp) { advise_fails("thp"); }
END_TEST

START_TEST(advise_fails_auto) { advise_fails("auto"); }
END_TEST

/* ---- OS_PURGE: MADV_DONTNEED ---------------------------------------------------- */

/* Fill one whole region with user segments, give them all back (DECAY_MS=0
 * purges at once) and return the arena's RSS afterwards. */
static size_t region_cycle(void) {
    size_t seg = segpool_segment_size();
    size_t n = (2u << 20) / seg;
    void *p[64];
    ck_assert_uint_le(n, 64);
    for (size_t i = 0; i < n; i++) {
        p[i] = segpool_segment_request();
        ck_assert_ptr_nonnull(p[i]);
        fill(p[i], seg, (unsigned)i);
    }
    for (size_t i = 0; i < n; i++) {
        ck_assert(intact(p[i], seg, (unsigned)i));
        segpool_segment_recycle(p[i]);
    }
    segpool_stats_t st;
    stats(&st);
    ck_assert_uint_eq(st.segments_in_use, 0);
    return st.arena_rss;
}

START_TEST(purge_fails_region_stays_resident) {
    env("64M", "32K");
    setenv("SEGSHIM_DECAY_MS", "0", 1);
    /* Fails for the purge at recycle and for the retry right after it. */
    os_inject_failure(OS_PURGE, 0, 2);
    size_t rss = region_cycle();
    segpool_stats_t st;
    stats(&st);
    report("purge_fails", &st);
    ck_assert_uint_ge(rss, 2u << 20); /* the failed purge left it resident */
    /* ... and the statistics say so. */
    ck_assert_uint_eq(st.regions_committed, 1);
    ck_assert_uint_eq(st.regions_purged, 0);
    /* The region is reused, and purged for real the next time. */
    rss = region_cycle();
    ck_assert_uint_lt(rss, 2u << 20);
    assert_pool_works();
}
END_TEST

START_TEST(purge_control) {
    env("64M", "32K");
    setenv("SEGSHIM_DECAY_MS", "0", 1);
    size_t rss = region_cycle();
    ck_assert_uint_lt(rss, 2u << 20);
}
END_TEST

/* ---- OS_META: metadata mappings --------------------------------------------------- */

START_TEST(meta_fails_at_start) {
    env("64M", "32K");
    os_inject_failure(OS_META, 0, 1); /* the segment side table */
    assert_refused_malloc(100);
    ck_assert_ptr_null(segpool_segment_request());
    ck_assert_uint_eq(segpool_capacity(), 0);
    segpool_stats_t st;
    segpool_stats_get(&st);
    ck_assert_uint_eq(st.capacity, 0);
}
END_TEST

START_TEST(meta_fails_for_the_heap) {
    env("64M", "32K");
    /* Start-up maps the segment, link and region tables and the pool's
     * shards; the fifth mapping is the first chunk of thread heaps. */
    os_inject_failure(OS_META, 4, 1);
    assert_refused_malloc(100);
    ck_assert_uint_eq(segpool_capacity(), 2048);
    /* Whole segments need no heap. */
    void *seg = segpool_segment_request();
    ck_assert_ptr_nonnull(seg);
    segpool_segment_recycle(seg);
    /* The injection is over: the next call makes the heap. */
    assert_pool_works();
    segpool_stats_t st;
    stats(&st);
    ck_assert_uint_eq(st.threads_live, 1);
}
END_TEST

START_TEST(meta_fails_for_a_local_pool) {
    env("64M", "32K");
    ck_assert_uint_eq(segpool_capacity(), 2048);
    os_inject_failure(OS_META, 0, 1);
    errno = 0;
    ck_assert_ptr_null(segpool_local_create(2, 4));
    ck_assert_int_eq(errno, ENOMEM);
    segpool_stats_t st;
    stats(&st);
    ck_assert_uint_eq(st.segments_in_use, 0); /* nothing reserved for it */
    segpool_local_t *lp = segpool_local_create(2, 4);
    ck_assert_ptr_nonnull(lp);
    void *a = segpool_local_request(lp);
    ck_assert_ptr_nonnull(a);
    segpool_local_recycle(lp, a);
    segpool_local_destroy(lp);
}
END_TEST

static TCase *faults_tcase(Suite *s, const char *name) {
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *faults_suite(void) {
    Suite *s = suite_create("faults");
    TCase *tc = faults_tcase(s, "reserve");
    tcase_add_test(tc, reserve_once_halves_the_pool);
    tcase_add_test(tc, reserve_down_to_one_region);
    tcase_add_test(tc, reserve_always_fails_disables);
    tc = faults_tcase(s, "commit");
    tcase_add_test(tc, commit_fails_on_first_region);
    tcase_add_test(tc, commit_fails_on_a_later_region);
    tcase_add_test(tc, commit_fails_during_prefault);
    tcase_add_test(tc, commit_flaky_under_threads);
    tc = faults_tcase(s, "hugetlb");
    tcase_add_test(tc, hugetlb_fails_degrades);
    tc = faults_tcase(s, "advise_huge");
    tcase_add_test(tc, advise_fails_thp);
    tcase_add_test(tc, advise_fails_auto);
    tc = faults_tcase(s, "purge");
    tcase_add_test(tc, purge_fails_region_stays_resident);
    tcase_add_test(tc, purge_control);
    tc = faults_tcase(s, "meta");
    tcase_add_test(tc, meta_fails_at_start);
    tcase_add_test(tc, meta_fails_for_the_heap);
    tcase_add_test(tc, meta_fails_for_a_local_pool);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(faults_suite());
    /* Every test needs a process whose pool has never been touched. */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
