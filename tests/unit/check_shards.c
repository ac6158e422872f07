/*
 * check_shards.c - the segment pool in shards (segment.c): capacity and
 * exhaustion across shards, stealing from a dry shard, the run cache (no lock
 * in the steady state, bounded), no segment handed out twice under threads
 * spread over the shards, fork with shards, and the shard locks' counters.
 *
 * This machine may have fewer CPUs than shards: each test sets
 * SEGSHIM_SHARDS=4 and places threads on shards with segment_shard_pin (as
 * if they ran on CPUs of those shards).  Check runs every test in a forked
 * child, so each gets a fresh pool.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"
#include "segpool.h"

#define SHARDS 4

/* Sanitizer runs set SEGPOOL_TEST_SCALE to divide the heavy loops. */
static long test_scale(void) {
    const char *s = getenv("SEGPOOL_TEST_SCALE");
    long v = s ? atol(s) : 1;
    return v > 0 ? v : 1;
}

static void env(const char *pool_size) {
    setenv("SEGSHIM_SEGMENT_SIZE", "32K", 1);
    setenv("SEGSHIM_POOL_SIZE", pool_size, 1);
    setenv("SEGSHIM_SHARDS", "4", 1);
    setenv("SEGSHIM_HUGEPAGES", "off", 1);
}

static segpool_stats_t stats(void) {
    segpool_stats_t st;
    segpool_stats_get(&st);
    return st;
}

static int ptr_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* ---- capacity and exhaustion ----------------------------------------------- */

START_TEST(test_shard_count_from_option) {
    env("8M");
    ck_assert_uint_eq(segpool_capacity(), 256);
    segpool_stats_t st = stats();
    ck_assert_uint_eq(st.pool_shards, SHARDS);
    ck_assert_uint_eq(st.segments_free, st.capacity);
}
END_TEST

/* Requests spread over every shard get exactly the capacity, distinct
 * segments, and NULL only once all of it is out, from every shard. */
START_TEST(test_exhaustion_across_shards) {
    env("8M"); /* 4 regions of 64 segments */
    size_t cap = segpool_capacity();
    void **segs = calloc(cap, sizeof *segs);
    for (size_t i = 0; i < cap; i++) {
        segment_shard_pin((int)(i % SHARDS));
        segs[i] = segpool_segment_request();
        ck_assert_msg(segs[i] != NULL, "NULL at %zu of %zu from shard %zu", i, cap, i % SHARDS);
        memset(segs[i], (int)i, 64);
    }
    for (int shard = 0; shard < SHARDS; shard++) {
        segment_shard_pin(shard);
        ck_assert_ptr_null(segpool_segment_request());
    }
    segpool_stats_t st = stats();
    ck_assert_uint_eq(st.segments_user, cap);
    ck_assert_uint_eq(st.segments_free, 0);
    qsort(segs, cap, sizeof *segs, ptr_cmp);
    for (size_t i = 1; i < cap; i++) ck_assert_ptr_ne(segs[i], segs[i - 1]);
    /* One back, in any shard's region: any shard gets it again. */
    segpool_segment_recycle(segs[cap / 2]);
    segment_shard_pin(3);
    void *again = segpool_segment_request();
    ck_assert_ptr_eq(again, segs[cap / 2]);
    ck_assert_ptr_null(segpool_segment_request());
    for (size_t i = 0; i < cap; i++) segpool_segment_recycle(segs[i]);
    st = stats();
    ck_assert_uint_eq(st.segments_user, 0);
    ck_assert_uint_eq(st.segments_free, cap);
    free(segs);
}
END_TEST

/* ---- stealing --------------------------------------------------------------- */

/* Every region belongs to shard 0; a thread of shard 2 gets the segments
 * shard 0 has free, partly used regions first, then wholly free ones. */
START_TEST(test_dry_shard_steals) {
    env("4M"); /* 2 regions of 64 */
    size_t cap = segpool_capacity();
    ck_assert_uint_eq(cap, 128);
    void **segs = calloc(cap, sizeof *segs);
    segment_shard_pin(0);
    for (size_t i = 0; i < cap; i++) ck_assert_ptr_nonnull(segs[i] = segpool_segment_request());
    /* 10 free in the first region (partly used), the second wholly free. */
    char *first = segs[0];
    for (size_t i = 0; i < cap; i++) {
        size_t region = (size_t)((char *)segs[i] - first) >> 21;
        if (region == 1 || (region == 0 && i % 6 == 1 && i < 60)) {
            segpool_segment_recycle(segs[i]);
            segs[i] = NULL;
        }
    }
    segpool_stats_t st = stats();
    size_t free_now = st.segments_free;
    ck_assert_uint_eq(free_now, 64 + 10);
    segment_shard_pin(2); /* dry: it never had a region, and none is fresh */
    void *stolen = segpool_segment_request();
    ck_assert_ptr_nonnull(stolen);
    ck_assert_uint_eq((size_t)((char *)stolen - first) >> 21, 0); /* the partly used region first */
    segpool_segment_recycle(stolen);
    /* A heap of shard 2 serves malloc from a stolen region too. */
    void *block = segpool_malloc(20000);
    ck_assert_ptr_nonnull(block);
    ck_assert(segpool_owns(block));
    segpool_free(block);
    segpool_collect();
    /* Everything free can be had from shard 3, then the pool is exhausted. */
    segment_shard_pin(3);
    size_t got = 0;
    void *s;
    void **more = calloc(cap, sizeof *more);
    while ((s = segpool_segment_request()) != NULL) more[got++] = s;
    ck_assert_uint_eq(got, free_now);
    for (size_t i = 0; i < got; i++) segpool_segment_recycle(more[i]);
    for (size_t i = 0; i < cap; i++)
        if (segs[i]) segpool_segment_recycle(segs[i]);
    st = stats();
    ck_assert_uint_eq(st.segments_free, cap);
    free(more);
    free(segs);
}
END_TEST

/* ---- the run cache -------------------------------------------------------------- */

/* A thread that recycles segments and asks for them again takes no shard
 * lock once the run cache holds them, gets back the very segments it gave
 * (still warm), and the statistics count them as free meanwhile. */
START_TEST(test_run_cache_steady_state_takes_no_lock) {
    env("64M");
    segment_shard_pin(1);
    void *held[4];
    for (int i = 0; i < 4; i++) ck_assert_ptr_nonnull(held[i] = segpool_segment_request());
    segpool_stats_t before = stats();
    for (int round = 0; round < 10000; round++) {
        int i = round % 4;
        void *was = held[i];
        segpool_segment_recycle(was);
        ck_assert_uint_eq(stats().segments_free, before.segments_free + 1);
        held[i] = segpool_segment_request();
        ck_assert_ptr_eq(held[i], was);
    }
    segpool_stats_t after = stats();
    /* stats() itself takes each shard's lock once per call. */
    ck_assert_uint_eq(after.pool_lock_acquired - before.pool_lock_acquired, (uint64_t)SHARDS * (1 + 10000));
    ck_assert_uint_eq(after.pool_runs_cached - before.pool_runs_cached, 10000);
    ck_assert_uint_eq(after.pool_runs_reused - before.pool_runs_reused, 10000);
    for (int i = 0; i < 4; i++) segpool_segment_recycle(held[i]);
    segpool_collect();
    after = stats();
    ck_assert_uint_eq(after.segments_free, after.capacity);
    ck_assert_uint_eq(after.segments_user, 0);
}
END_TEST

/* The cache holds at most a region's worth per shard and at most half the
 * shard's share of SEGSHIM_RETAIN; with SEGSHIM_RETAIN=0 it holds nothing,
 * so a free region goes back at once as the budget says. */
static void run_cache_fill(size_t n, uint64_t *cached) {
    void **segs = calloc(n, sizeof *segs);
    segment_shard_pin(0);
    for (size_t i = 0; i < n; i++) ck_assert_ptr_nonnull(segs[i] = segpool_segment_request());
    uint64_t before = stats().pool_runs_cached;
    for (size_t i = 0; i < n; i++) segpool_segment_recycle(segs[i]);
    *cached = stats().pool_runs_cached - before;
    free(segs);
}

START_TEST(test_run_cache_bounded) {
    env("256M"); /* 8192 segments: a region's worth (64) per shard */
    uint64_t cached;
    run_cache_fill(500, &cached);
    ck_assert_uint_eq(cached, 64);
    segpool_stats_t st = stats();
    ck_assert_uint_eq(st.segments_free, st.capacity);
}
END_TEST

START_TEST(test_run_cache_off_without_retention) {
    env("256M");
    setenv("SEGSHIM_RETAIN", "0", 1);
    uint64_t cached;
    run_cache_fill(500, &cached);
    ck_assert_uint_eq(cached, 0);
    segpool_stats_t st = stats();
    ck_assert_uint_eq(st.regions_committed, 0);
}
END_TEST

/* ---- threads ------------------------------------------------------------------ */

/* 8 threads, two per shard, request and recycle 1M segments in total from a
 * pool small enough that they steal from each other.  Each writes its id and
 * a sequence number in every 4 KiB page of a segment and checks them before
 * recycling: a segment handed out twice is overwritten by its other holder.
 * The threads hold at most 240 of the 256 segments: no request may fail. */
#define HANDOUT_THREADS 8
#define HANDOUT_HELD 30
static long handout_rounds;

typedef struct handout_s {
    long failures, nulls;
} handout_t;

static void handout_fill(uint64_t *w, uint64_t tag) {
    for (size_t i = 0; i < segpool_segment_size() / 8; i += 512) w[i] = tag;
}

static long handout_check(const uint64_t *w, uint64_t tag) {
    long bad = 0;
    for (size_t i = 0; i < segpool_segment_size() / 8; i += 512) bad += w[i] != tag;
    return bad;
}

static void *handout_worker(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    segment_shard_pin((int)(id % SHARDS));
    handout_t *res = calloc(1, sizeof *res);
    uint64_t *held[HANDOUT_HELD] = {0};
    uint64_t tags[HANDOUT_HELD] = {0};
    for (long r = 0; r < handout_rounds; r++) {
        int slot = (int)(r % HANDOUT_HELD);
        if (held[slot]) {
            res->failures += handout_check(held[slot], tags[slot]);
            segpool_segment_recycle(held[slot]);
        }
        held[slot] = segpool_segment_request();
        if (!held[slot]) {
            res->nulls++;
            continue;
        }
        tags[slot] = (uint64_t)(id + 1) << 48 | (uint64_t)r;
        handout_fill(held[slot], tags[slot]);
    }
    for (int slot = 0; slot < HANDOUT_HELD; slot++)
        if (held[slot]) {
            res->failures += handout_check(held[slot], tags[slot]);
            segpool_segment_recycle(held[slot]);
        }
    return res;
}

START_TEST(test_million_requests_no_segment_twice) {
    env("8M");
    ck_assert_uint_eq(segpool_capacity(), 256);
    ck_assert_uint_le(HANDOUT_THREADS * HANDOUT_HELD, 256);
    handout_rounds = 1000000 / HANDOUT_THREADS / test_scale();
    pthread_t t[HANDOUT_THREADS];
    for (uintptr_t i = 0; i < HANDOUT_THREADS; i++) pthread_create(&t[i], NULL, handout_worker, (void *)i);
    long failures = 0, nulls = 0;
    for (int i = 0; i < HANDOUT_THREADS; i++) {
        handout_t *res;
        pthread_join(t[i], (void **)&res);
        failures += res->failures;
        nulls += res->nulls;
        free(res);
    }
    ck_assert_int_eq(failures, 0);
    ck_assert_int_eq(nulls, 0);
    segpool_stats_t st = stats();
    fprintf(stderr,
            "shards: %ld requests, pool locks taken %llu, contended %llu, recycles deferred %llu, "
            "run cache %llu recycles %llu requests\n",
            handout_rounds * HANDOUT_THREADS, (unsigned long long)st.pool_lock_acquired,
            (unsigned long long)st.pool_lock_contended, (unsigned long long)st.pool_recycles_deferred,
            (unsigned long long)st.pool_runs_cached, (unsigned long long)st.pool_runs_reused);
    ck_assert_uint_eq(st.segments_user, 0);
    ck_assert_uint_eq(st.segments_free, st.capacity);
    ck_assert_uint_le(st.segments_peak, st.capacity);
    /* Every request takes a run from its shard's run cache or takes a shard
     * lock; every recycle leaves its run in the cache, takes a lock, or
     * finds it busy and leaves its run to the holder. */
    ck_assert_uint_ge(st.pool_lock_acquired + st.pool_recycles_deferred + st.pool_runs_cached + st.pool_runs_reused,
                      (uint64_t)handout_rounds * HANDOUT_THREADS * 2);
    ck_assert_uint_le(st.pool_lock_contended, st.pool_lock_acquired);
}
END_TEST

/* ---- fork ---------------------------------------------------------------------- */

static volatile int churn_stop;

static void *churn_worker(void *arg) {
    segment_shard_pin((int)(uintptr_t)arg);
    void *held[8] = {0};
    for (unsigned r = 0; !__atomic_load_n(&churn_stop, __ATOMIC_RELAXED); r++) {
        unsigned slot = r % 8;
        if (held[slot]) segpool_segment_recycle(held[slot]);
        held[slot] = segpool_segment_request();
        void *b = segpool_malloc(100 + r % 20000);
        segpool_free(b);
    }
    for (unsigned slot = 0; slot < 8; slot++)
        if (held[slot]) segpool_segment_recycle(held[slot]);
    return NULL;
}

/* Fork while threads of every shard request and recycle: the child finds the
 * pool whole (every segment that was free at the fork can be had, from any
 * shard) and can allocate. */
START_TEST(test_fork_with_shards) {
    env("16M");
    setenv("SEGSHIM_DECAY_MS", "0", 1); /* regions purged all the time: some mid-purge at the fork */
    pthread_t t[SHARDS];
    for (uintptr_t i = 0; i < SHARDS; i++) pthread_create(&t[i], NULL, churn_worker, (void *)i);
    int forks = (int)(40 / test_scale()) + 2;
    for (int f = 0; f < forks; f++) {
        usleep(2000);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            size_t got = 0;
            for (int shard = 0; shard < SHARDS; shard++) {
                segment_shard_pin(shard);
                void *b = segpool_malloc(1000);
                if (!b) _exit(2);
                memset(b, 1, 1000);
                segpool_free(b);
            }
            segpool_collect();
            size_t free_at_fork = stats().segments_free;
            segment_shard_pin(f % SHARDS);
            char *s;
            while ((s = segpool_segment_request()) != NULL) {
                memset(s, 2, 4096);
                got++;
            }
            if (got != free_at_fork) {
                fprintf(stderr, "child %d: %zu segments of %zu free\n", f, got, free_at_fork);
                _exit(3);
            }
            _exit(0);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %#x", f, status);
    }
    __atomic_store_n(&churn_stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < SHARDS; i++) pthread_join(t[i], NULL);
    segpool_collect();
    segpool_stats_t st = stats();
    ck_assert_uint_eq(st.segments_user, 0);
}
END_TEST

static Suite *shards_suite(void) {
    Suite *s = suite_create("shards");
    TCase *core = tcase_create("core");
    tcase_set_timeout(core, 240);
    tcase_add_test(core, test_shard_count_from_option);
    tcase_add_test(core, test_exhaustion_across_shards);
    tcase_add_test(core, test_dry_shard_steals);
    tcase_add_test(core, test_run_cache_steady_state_takes_no_lock);
    tcase_add_test(core, test_run_cache_bounded);
    tcase_add_test(core, test_run_cache_off_without_retention);
    tcase_add_test(core, test_million_requests_no_segment_twice);
    tcase_add_test(core, test_fork_with_shards);
    suite_add_tcase(s, core);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(shards_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
