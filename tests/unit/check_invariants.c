/*
 * check_invariants.c - the invariant checkers (pool/src/check.c) and
 * SEGPOOL_ASSERT's report: a sound heap and pool pass; each corruption of a
 * copy (the memory of a forked child, or a copy of pool_t) is caught with
 * "segshim: assertion failed: <expr> (file:line)" and an abort.  In builds
 * without NDEBUG the slow paths run the checkers themselves.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "expect_abort.h"
#include "invariants.h"
#include "pool.h"
#include "segpool.h"
#include "sizeclass.h"

#define MSG_ASSERT "segshim: assertion failed: "

static void setup(void) {
    setenv("SEGSHIM_SEGMENT_SIZE", "32K", 1);
    setenv("SEGSHIM_POOL_SIZE", "256M", 1);
    setenv("SEGSHIM_TCACHE", "64", 1);
}

enum { LIVE = 3000 };
static void *live[LIVE];

/* A heap with segments in every state: current, partial, cached, full, in
 * several classes, and a pool with partly used regions. */
static void workload(void) {
    for (int i = 0; i < LIVE; i++) live[i] = segpool_malloc((size_t)(i % 9) * 120 + 8);
    for (int i = 0; i < LIVE; i += 3) segpool_free(live[i]);
    void *big[8];
    for (int i = 0; i < 8; i++) big[i] = segpool_malloc(16384);
    for (int i = 0; i < 8; i++) segpool_free(big[i]);
}

START_TEST(test_sound_heap_and_pool_pass) {
    workload();
    check_heap(tls_heap);
    check_pool();
    segpool_collect();
    check_heap(tls_heap);
    check_pool();
}
END_TEST

/* The current segment of the class of size 8 (installed by workload). */
static segment_t *current_of_8(void) { return tls_heap->current[sizeclass_of(8)]; }

static void corrupt_cached_count(void *arg) {
    (void)arg;
    workload();
    tls_heap->cached_count++;
    check_heap(tls_heap);
}

static void corrupt_used(void *arg) {
    (void)arg;
    workload();
    current_of_8()->used++;
    check_heap(tls_heap);
}

/* The current segment also on the partial list: on two lists at once. */
static void corrupt_two_lists(void *arg) {
    (void)arg;
    workload();
    segment_t *s = current_of_8();
    segment_list_push(&tls_heap->partial[s->class_index], s);
    check_heap(tls_heap);
}

/* A free block's link overwritten: it leads out of the slab. */
static void corrupt_free_link(void *arg) {
    (void)arg;
    workload();
    segment_t *s = current_of_8();
    ck_assert_ptr_nonnull(s->free);
    alloc_link_set(s, s->free, (block_t *)(uintptr_t)0x1000);
    check_heap(tls_heap);
}

static void corrupt_direct(void *arg) {
    (void)arg;
    workload();
    tls_heap->direct[0] = &segment_none;
    check_heap(tls_heap);
}

START_TEST(test_heap_corruptions_are_caught) {
    expect_abort(corrupt_cached_count, NULL, MSG_ASSERT "cached == h->cached_count (");
    expect_abort(corrupt_used, NULL, MSG_ASSERT "on_list + (s->used & SEGMENT_LIVE_MASK) == formatted (");
    expect_abort(corrupt_two_lists, NULL, MSG_ASSERT "(s->used & ~SEGMENT_LIVE_MASK) == 0 (");
    expect_abort(corrupt_free_link, NULL, MSG_ASSERT "alloc_in_slab(s, b) (");
    expect_abort(corrupt_direct, NULL, MSG_ASSERT "h->direct[step] == h->serving[c] (");
}
END_TEST

/* A copy of the pool's state, corrupted one way, checked. */
static pool_t copy;

static void check_copy(void *arg) {
    int which = (int)(intptr_t)arg;
    workload();
    memcpy(&copy, &pool, sizeof copy);
    switch (which) {
    /* The copy shares the shard array: this runs in a child. */
    case 0: copy.shards[0].segments_out++; break;
    case 1: copy.shards[0].free_regions_count++; break;
    case 2: copy.shards[0].bins_nonempty[POOL_REGION_SMALL][3] ^= 1; break;
    case 3: copy.regions_committed--; break;
    default: break;
    }
    check_pool_state(&copy);
}

START_TEST(test_pool_corruptions_are_caught) {
    workload();
    memcpy(&copy, &pool, sizeof copy);
    check_pool_state(&copy); /* the copy itself is sound */
    expect_abort(check_copy, (void *)0, MSG_ASSERT "out == shard_out (");
    expect_abort(check_copy, (void *)1, MSG_ASSERT "listed == sh->free_regions_count (");
    expect_abort(check_copy, (void *)2, MSG_ASSERT "bit == (sh->bins[kind][k] != NULL) (");
    expect_abort(check_copy, (void *)3, MSG_ASSERT "committed == p->regions_committed (");
}
END_TEST

static void fail_assertion(void *arg) {
    (void)arg;
    check_failed("x == y", "heap.c", 42);
}

START_TEST(test_assertion_report) {
    expect_abort(fail_assertion, NULL, "segshim: assertion failed: x == y (heap.c:42)\n");
}
END_TEST

#if SEGPOOL_CHECK_LEVEL >= 2
/* Without NDEBUG, segpool_collect runs the checkers itself. */
static void collect_corrupted(void *arg) {
    (void)arg;
    workload();
    tls_heap->segments_owned += 5;
    segpool_collect();
}

START_TEST(test_slow_path_runs_checker) {
    expect_abort(collect_corrupted, NULL, MSG_ASSERT "owned == h->segments_owned (");
}
END_TEST
#endif

static Suite *invariants_suite(void) {
    Suite *s = suite_create("invariants");
    TCase *tc = tcase_create("checkers");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sound_heap_and_pool_pass);
    tcase_add_test(tc, test_heap_corruptions_are_caught);
    tcase_add_test(tc, test_pool_corruptions_are_caught);
    tcase_add_test(tc, test_assertion_report);
#if SEGPOOL_CHECK_LEVEL >= 2
    tcase_add_test(tc, test_slow_path_runs_checker);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(invariants_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
