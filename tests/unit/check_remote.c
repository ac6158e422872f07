/*
 * check_remote.c - frees by a thread that does not own the block (heap.c,
 * "Remote frees"): the block comes back to its owner, nothing is lost or
 * handed out twice while many threads free into one owner, nor when the
 * owner exits or the process forks with blocks still on remote lists.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool.h"
#include "segpool.h"
#include "sizeclass.h"

static void setup(void) {
    setenv("SEGSHIM_SEGMENT_SIZE", "32K", 1);
    setenv("SEGSHIM_POOL_SIZE", "256M", 1);
    (void)segpool_segment_size(); /* set the pool up: the class table is read before any malloc */
}

static segpool_stats_t remote_stats(void) {
    segpool_stats_t s;
    segpool_stats_get(&s);
    return s;
}

/* Blocks carry their id in every 8-byte word: a block handed out twice while
 * live is overwritten with another id, which its freer sees. */
static void remote_fill(void *p, size_t size, uint64_t id) {
    for (size_t i = 0; i + 8 <= size; i += 8) memcpy((char *)p + i, &id, 8);
}

static int remote_intact(const void *p, size_t size, uint64_t id) {
    for (size_t i = 0; i + 8 <= size; i += 8) {
        uint64_t v;
        memcpy(&v, (const char *)p + i, 8);
        if (v != id) return 0;
    }
    return 1;
}

/* 16 B .. 2 KiB, spread over the classes. */
static size_t remote_size(uint64_t id) { return 16 + (size_t)((id * 2654435761u) % 2033); }

static void *remote_free_one(void *p) {
    segpool_free(p);
    return NULL;
}

static void remote_free_on_thread(void *p) {
    pthread_t t;
    pthread_create(&t, NULL, remote_free_one, p);
    pthread_join(t, NULL);
}

/* ---- A block freed by another thread is reused by its owner -------------------- */

START_TEST(test_block_freed_elsewhere_is_reused) {
    segpool_stats_t before = remote_stats();
    void *p = segpool_malloc(64);
    ck_assert_ptr_nonnull(p);
    remote_free_on_thread(p);
    segpool_stats_t freed = remote_stats();
    ck_assert_uint_eq(freed.remote_frees, before.remote_frees + 1); /* still on the segment's list */
    ck_assert_uint_eq(freed.remote_queued, before.remote_queued);
    /* The owner takes the list when its current segment runs dry: within one
     * slab's worth of allocations p comes back. */
    uint32_t capacity = sizeclass_table[sizeclass_of(64)].capacity;
    void **got = calloc(capacity + 1, sizeof *got);
    int found = 0;
    uint32_t n = 0;
    while (n <= capacity && !found) {
        got[n] = segpool_malloc(64);
        found = got[n] == p;
        n++;
    }
    ck_assert_msg(found, "the block freed by another thread never came back in %u allocations", n);
    segpool_stats_t after = remote_stats();
    ck_assert_uint_ge(after.remote_queued, before.remote_queued + 1);
    ck_assert_uint_ge(after.remote_collects, before.remote_collects + 1);
    ck_assert_uint_eq(after.segments_in_use, freed.segments_in_use); /* no new segment for it */
    for (uint32_t i = 0; i < n; i++) segpool_free(got[i]);
    free(got);
    segpool_collect();
    ck_assert_uint_eq(remote_stats().segments_in_use, before.segments_in_use);
}
END_TEST

/* ---- A thread keeps what it frees of other heaps, and reuses it first ------------- */

typedef struct remote_keeper_s {
    void **blocks; /* another heap's, to free here */
    uint32_t count, keep_max;
    uint32_t reused;       /* of the keeper's next allocations, how many were blocks it freed */
    int next_was_own;      /* the allocation after keep_max of them came from its own segment */
    uint64_t kept_during;  /* remote_kept while the keeper was alive, after its frees */
    size_t bytes_before_frees, bytes_after_frees;
} remote_keeper_t;

static int remote_is_one_of(void *p, void **blocks, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (blocks[i] == p) return 1;
    return 0;
}

static void *remote_keeper(void *arg) {
    remote_keeper_t *k = arg;
    segpool_free(segpool_malloc(64)); /* a heap, and a current segment of the class */
    k->bytes_before_frees = remote_stats().bytes_in_use;
    for (uint32_t i = 0; i < k->count; i++) segpool_free(k->blocks[i]);
    k->bytes_after_frees = remote_stats().bytes_in_use;
    void **got = calloc(k->keep_max + 1, sizeof *got);
    for (uint32_t i = 0; i <= k->keep_max; i++) {
        got[i] = segpool_malloc(64);
        if (i < k->keep_max) k->reused += remote_is_one_of(got[i], k->blocks, k->count);
        else k->next_was_own = !remote_is_one_of(got[i], k->blocks, k->count);
    }
    /* Free them again: the other heap's are kept again, until this thread exits. */
    for (uint32_t i = 0; i <= k->keep_max; i++) segpool_free(got[i]);
    k->kept_during = remote_stats().remote_kept;
    free(got);
    return NULL;
}

/* A thread with a heap keeps up to keep_max blocks of a class that it frees
 * of another heap and hands them out before anything of its own; the rest go
 * home.  bytes_in_use does not count kept blocks, and when the thread exits
 * every block is back with its owner: nothing lost, nothing handed out twice. */
START_TEST(test_freeing_thread_reuses_blocks_it_kept) {
    segpool_collect();
    segpool_stats_t before = remote_stats();
    remote_keeper_t k = {.keep_max = sizeclass_table[sizeclass_of(64)].keep_max};
    ck_assert_uint_ge(k.keep_max, 2);
    k.count = k.keep_max + 16; /* 16 more than it may keep: those go home */
    k.blocks = calloc(k.count, sizeof *k.blocks);
    for (uint32_t i = 0; i < k.count; i++) k.blocks[i] = segpool_malloc(64);
    pthread_t t;
    pthread_create(&t, NULL, remote_keeper, &k);
    pthread_join(t, NULL);
    ck_assert_uint_eq(k.reused, k.keep_max);
    ck_assert_msg(k.next_was_own, "the allocation after the kept ones came from another heap's segment");
    ck_assert_uint_eq(k.bytes_after_frees, k.bytes_before_frees - (size_t)k.count * 64);
    ck_assert_uint_ge(k.kept_during, before.remote_kept + 2 * (uint64_t)k.keep_max);
    /* The keeper's exit sent its kept blocks home: the owner gets every one
     * back, so all its blocks are free and its segments go back on collect. */
    segpool_stats_t after = remote_stats();
    ck_assert_uint_eq(after.bytes_in_use, before.bytes_in_use);
    /* Each of the keeper's frees of the owner's blocks counts once, kept or not. */
    ck_assert_uint_eq(after.remote_frees - before.remote_frees, (uint64_t)k.count + k.keep_max);
    segpool_collect();
    ck_assert_uint_eq(remote_stats().segments_in_use, before.segments_in_use);
    free(k.blocks);
}
END_TEST

/* A thread that holds kept blocks forks: in the child the blocks' owner is
 * an orphan (its thread is gone), and the child's kept list still serves
 * them; handing them out, freeing and collecting must neither hand a block
 * out twice nor crash. */
enum { KEPT_FORK_BLOCKS = 100 };

static int remote_kept_fork_child(void) {
    void *got[2 * KEPT_FORK_BLOCKS];
    for (int i = 0; i < 2 * KEPT_FORK_BLOCKS; i++) {
        got[i] = segpool_malloc(64);
        if (!got[i]) return 1;
        remote_fill(got[i], 64, (uint64_t)i);
    }
    for (int i = 0; i < 2 * KEPT_FORK_BLOCKS; i++)
        if (!remote_intact(got[i], 64, (uint64_t)i)) return 2; /* handed out twice */
    for (int i = 0; i < 2 * KEPT_FORK_BLOCKS; i++) segpool_free(got[i]);
    segpool_collect();
    return 0;
}

static void *remote_keep_and_fork(void *arg) {
    void **blocks = arg;
    segpool_free(segpool_malloc(64)); /* a heap */
    for (int i = 0; i < KEPT_FORK_BLOCKS; i++) segpool_free(blocks[i]);
    pid_t pid = fork();
    if (pid == 0) _exit(remote_kept_fork_child());
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) status = -1;
    return (void *)(intptr_t)status;
}

START_TEST(test_fork_with_kept_blocks) {
    segpool_collect();
    size_t in_use = remote_stats().segments_in_use;
    void *blocks[KEPT_FORK_BLOCKS];
    for (int i = 0; i < KEPT_FORK_BLOCKS; i++) blocks[i] = segpool_malloc(64);
    pthread_t t;
    void *status;
    pthread_create(&t, NULL, remote_keep_and_fork, blocks);
    pthread_join(t, &status);
    int st = (int)(intptr_t)status;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %#x", st);
    segpool_collect();
    ck_assert_uint_le(remote_stats().segments_in_use, in_use);
}
END_TEST

/* A full segment (not current) gets its blocks back through the queue. */
START_TEST(test_full_segment_comes_back) {
    segpool_stats_t before = remote_stats();
    uint32_t capacity = sizeclass_table[sizeclass_of(512)].capacity;
    uint32_t n = capacity * 3; /* three slabs: the first two are full */
    void **blocks = calloc(n, sizeof *blocks);
    for (uint32_t i = 0; i < n; i++) blocks[i] = segpool_malloc(512);
    size_t in_use = remote_stats().segments_in_use;
    for (uint32_t i = 0; i < capacity; i++) remote_free_on_thread(blocks[i]);
    /* Any allocation's slow path takes the queue: the emptied slab is empty
     * again, kept or given back, not in use. */
    void *trigger = segpool_malloc(16); /* a class of its own: a slow path, a new segment */
    segpool_stats_t after = remote_stats();
    ck_assert_uint_ge(after.remote_collects, before.remote_collects + 1);
    ck_assert_uint_eq(after.segments_in_use,
                      in_use - sizeclass_table[sizeclass_of(512)].slab + sizeclass_table[sizeclass_of(16)].slab);
    segpool_free(trigger);
    for (uint32_t i = capacity; i < n; i++) segpool_free(blocks[i]);
    free(blocks);
    segpool_collect();
    ck_assert_uint_eq(remote_stats().segments_in_use, before.segments_in_use);
}
END_TEST

/* ---- Many threads free into one owner while it allocates ------------------------ */

enum { RING = 1024, FREERS = 4, BLOCKS = 200000 };

typedef struct remote_ring_s {
    _Atomic(void *) slot[RING];
    _Atomic uint64_t head, tail; /* head: next to fill (owner); tail: next to take (freer) */
    uint64_t bad, freed;
    _Atomic int done;
} remote_ring_t;

static remote_ring_t remote_rings[FREERS];

static void *remote_freer(void *arg) {
    remote_ring_t *r = arg;
    for (;;) {
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        if (tail == atomic_load_explicit(&r->head, memory_order_acquire)) {
            if (atomic_load(&r->done) && tail == atomic_load(&r->head)) break;
            sched_yield();
            continue;
        }
        void *p = atomic_load_explicit(&r->slot[tail % RING], memory_order_relaxed);
        uint64_t id;
        memcpy(&id, p, 8);
        size_t size = remote_size(id);
        if (id >= BLOCKS || !remote_intact(p, size, id) || segpool_usable_size(p) < size) r->bad++;
        segpool_free(p);
        r->freed++;
        atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    }
    return NULL;
}

static void remote_hand(remote_ring_t *r, void *p) {
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    while (head - atomic_load_explicit(&r->tail, memory_order_acquire) == RING) sched_yield();
    atomic_store_explicit(&r->slot[head % RING], p, memory_order_relaxed);
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

START_TEST(test_many_threads_free_into_one_owner) {
    segpool_stats_t before = remote_stats();
    pthread_t t[FREERS];
    for (int i = 0; i < FREERS; i++) pthread_create(&t[i], NULL, remote_freer, &remote_rings[i]);
    /* The owner keeps some blocks of its own live and frees them locally too,
     * so that its segments are current, partial and full in turn. */
    enum { KEEP = 512 };
    void *keep[KEEP] = {0};
    uint64_t local_bad = 0;
    for (uint64_t id = 0; id < BLOCKS; id++) {
        size_t size = remote_size(id);
        void *p = segpool_malloc(size);
        ck_assert_ptr_nonnull(p);
        remote_fill(p, size, id);
        if (id % 5 == 0) {
            void **k = &keep[(id / 5) % KEEP];
            if (*k) {
                uint64_t old;
                memcpy(&old, *k, 8);
                local_bad += !remote_intact(*k, remote_size(old), old);
                segpool_free(*k);
            }
            *k = p;
        } else {
            remote_hand(&remote_rings[id % FREERS], p);
        }
    }
    for (int i = 0; i < FREERS; i++) atomic_store(&remote_rings[i].done, 1);
    uint64_t bad = local_bad, freed = 0;
    for (int i = 0; i < FREERS; i++) {
        pthread_join(t[i], NULL);
        bad += remote_rings[i].bad;
        freed += remote_rings[i].freed;
    }
    ck_assert_uint_eq(bad, 0);
    ck_assert_uint_eq(freed, BLOCKS - BLOCKS / 5);
    for (int i = 0; i < KEEP; i++) segpool_free(keep[i]);
    segpool_stats_t after = remote_stats();
    ck_assert_uint_ge(after.remote_frees - before.remote_frees, freed);
    /* No block lost: once the owner collects, every segment is free again. */
    segpool_collect();
    after = remote_stats();
    ck_assert_uint_eq(after.segments_in_use, before.segments_in_use);
    ck_assert_uint_eq(after.bytes_in_use, before.bytes_in_use);
}
END_TEST

/* ---- The owner exits with blocks on its remote lists ----------------------------- */

enum { EXIT_BLOCKS = 6000 };

static struct {
    void *blocks[EXIT_BLOCKS];
    pthread_barrier_t ready, go;
} remote_exit;

static void *remote_owner_exits(void *unused) {
    (void)unused;
    for (int i = 0; i < EXIT_BLOCKS; i++) {
        remote_exit.blocks[i] = segpool_malloc(remote_size((uint64_t)i));
        remote_fill(remote_exit.blocks[i], remote_size((uint64_t)i), (uint64_t)i);
    }
    pthread_barrier_wait(&remote_exit.ready); /* blocks published */
    pthread_barrier_wait(&remote_exit.go);    /* some are on remote lists; others being freed */
    return NULL;                              /* exits while they are */
}

static void *remote_free_range(void *arg) {
    int part = (int)(intptr_t)arg; /* 1..3: a third each */
    for (int i = part; i < EXIT_BLOCKS; i += 4) {
        if (!remote_intact(remote_exit.blocks[i], remote_size((uint64_t)i), (uint64_t)i)) abort();
        segpool_free(remote_exit.blocks[i]);
    }
    return NULL;
}

START_TEST(test_owner_exits_with_remote_frees_pending) {
    segpool_stats_t before = remote_stats();
    pthread_barrier_init(&remote_exit.ready, NULL, 2);
    pthread_barrier_init(&remote_exit.go, NULL, 2);
    pthread_t owner, freers[3];
    pthread_create(&owner, NULL, remote_owner_exits, NULL);
    pthread_barrier_wait(&remote_exit.ready);
    /* A quarter freed before the exit: they wait on the owner's lists. */
    for (int i = 0; i < EXIT_BLOCKS; i += 4) segpool_free(remote_exit.blocks[i]);
    ck_assert_uint_ge(remote_stats().remote_frees, before.remote_frees + EXIT_BLOCKS / 4);
    /* The rest freed by three threads while the owner exits. */
    for (int k = 0; k < 3; k++) pthread_create(&freers[k], NULL, remote_free_range, (void *)(intptr_t)(k + 1));
    pthread_barrier_wait(&remote_exit.go);
    pthread_join(owner, NULL);
    for (int k = 0; k < 3; k++) pthread_join(freers[k], NULL);
    segpool_stats_t after = remote_stats();
    ck_assert_uint_eq(after.segments_in_use, before.segments_in_use);
    ck_assert_uint_eq(after.bytes_in_use, before.bytes_in_use);
    ck_assert_uint_ge(after.remote_frees - before.remote_frees, EXIT_BLOCKS);
    pthread_barrier_destroy(&remote_exit.ready);
    pthread_barrier_destroy(&remote_exit.go);
}
END_TEST

/* ---- Many threads free into heaps whose threads exited, while others adopt them ---- */

enum { DEAD_OWNERS = 4, DEAD_BLOCKS = 3000, DEAD_FREERS = 6, DEAD_ADOPTERS = 4 };

static struct {
    void *blocks[DEAD_OWNERS][DEAD_BLOCKS];
} remote_dead;

static void *remote_dead_owner(void *arg) {
    int o = (int)(intptr_t)arg;
    for (int i = 0; i < DEAD_BLOCKS; i++) {
        uint64_t id = (uint64_t)(o * DEAD_BLOCKS + i);
        remote_dead.blocks[o][i] = segpool_malloc(remote_size(id));
        remote_fill(remote_dead.blocks[o][i], remote_size(id), id);
    }
    return NULL; /* exits with every block live: its heap is dead */
}

static void *remote_dead_freer(void *arg) {
    int k = (int)(intptr_t)arg;
    for (int o = 0; o < DEAD_OWNERS; o++)
        for (int i = k; i < DEAD_BLOCKS; i += DEAD_FREERS) {
            uint64_t id = (uint64_t)(o * DEAD_BLOCKS + i);
            if (!remote_intact(remote_dead.blocks[o][i], remote_size(id), id)) abort();
            segpool_free(remote_dead.blocks[o][i]);
        }
    return NULL;
}

/* Starts while the frees go on, so it may adopt a dead heap with segments
 * queued on it; allocates and frees blocks of its own, then exits. */
static void *remote_dead_adopter(void *arg) {
    uint64_t base = 1000000u * (uint64_t)(intptr_t)arg;
    void *own[200];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 200; i++) {
            own[i] = segpool_malloc(remote_size(base + (uint64_t)i));
            remote_fill(own[i], remote_size(base + (uint64_t)i), base + (uint64_t)i);
        }
        for (int i = 0; i < 200; i++) {
            if (!remote_intact(own[i], remote_size(base + (uint64_t)i), base + (uint64_t)i)) abort();
            segpool_free(own[i]);
        }
    }
    return NULL;
}

START_TEST(test_frees_into_dead_heaps_while_others_adopt) {
    segpool_stats_t before = remote_stats();
    pthread_t owners[DEAD_OWNERS], freers[DEAD_FREERS], adopters[DEAD_ADOPTERS];
    for (int o = 0; o < DEAD_OWNERS; o++) pthread_create(&owners[o], NULL, remote_dead_owner, (void *)(intptr_t)o);
    for (int o = 0; o < DEAD_OWNERS; o++) pthread_join(owners[o], NULL);
    for (int k = 0; k < DEAD_FREERS; k++) pthread_create(&freers[k], NULL, remote_dead_freer, (void *)(intptr_t)k);
    for (int a = 0; a < DEAD_ADOPTERS; a++)
        pthread_create(&adopters[a], NULL, remote_dead_adopter, (void *)(intptr_t)(a + 1));
    for (int k = 0; k < DEAD_FREERS; k++) pthread_join(freers[k], NULL);
    for (int a = 0; a < DEAD_ADOPTERS; a++) pthread_join(adopters[a], NULL);
    segpool_stats_t after = remote_stats();
    /* Every block came back, to a dead heap or to the heap's new thread, and
     * every segment they emptied went back to the pool. */
    ck_assert_uint_eq(after.bytes_in_use, before.bytes_in_use);
    ck_assert_uint_eq(after.segments_in_use, before.segments_in_use);
    ck_assert_uint_ge(after.remote_frees - before.remote_frees, DEAD_OWNERS * DEAD_BLOCKS);
    /* Exits and frees into dead heaps took heap locks; no thread was created
     * past the owners and adopters, so the heap list grew by at most those. */
    ck_assert_uint_gt(after.heap_lock_acquired, before.heap_lock_acquired);
    ck_assert_uint_le(after.threads_total - before.threads_total, DEAD_OWNERS + DEAD_ADOPTERS + DEAD_FREERS);
    ck_assert_uint_le(after.heap_list_lock_acquired - before.heap_list_lock_acquired,
                      after.threads_total - before.threads_total);
}
END_TEST

/* ---- fork with remote frees pending ---------------------------------------------- */

enum { FORK_BLOCKS = 20000 };

static struct {
    void *blocks[FORK_BLOCKS];
    _Atomic int next; /* blocks[0..next) were freed (or are being freed) */
} remote_fork;

static void *remote_fork_freer(void *unused) {
    (void)unused;
    for (int i; (i = atomic_fetch_add(&remote_fork.next, 1)) < FORK_BLOCKS;) segpool_free(remote_fork.blocks[i]);
    return NULL;
}

/* In the child: allocate as many blocks again, each once, intact, then free
 * them; the segments in use end where they started (what the parent's
 * threads freed before the fork is reused, not lost). */
static int remote_fork_child(void) {
    size_t start = remote_stats().segments_in_use;
    void **p = calloc(FORK_BLOCKS, sizeof *p);
    if (!p) return 2;
    for (int i = 0; i < FORK_BLOCKS; i++) {
        p[i] = segpool_malloc(remote_size((uint64_t)i));
        if (!p[i]) return 3;
        remote_fill(p[i], remote_size((uint64_t)i), (uint64_t)i + FORK_BLOCKS);
    }
    for (int i = 0; i < FORK_BLOCKS; i++)
        if (!remote_intact(p[i], remote_size((uint64_t)i), (uint64_t)i + FORK_BLOCKS)) return 4;
    for (int i = 0; i < FORK_BLOCKS; i++) segpool_free(p[i]);
    free(p);
    segpool_collect();
    return remote_stats().segments_in_use <= start ? 0 : 5;
}

static void remote_fork_run(int racing) {
    atomic_store(&remote_fork.next, 0);
    for (int i = 0; i < FORK_BLOCKS; i++) remote_fork.blocks[i] = segpool_malloc(remote_size((uint64_t)i));
    size_t in_use = remote_stats().segments_in_use;
    pthread_t t[2];
    for (int k = 0; k < 2; k++) pthread_create(&t[k], NULL, remote_fork_freer, NULL);
    if (!racing)
        for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    else
        while (atomic_load(&remote_fork.next) < FORK_BLOCKS / 3) sched_yield();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) _exit(remote_fork_child());
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: status %#x", status);
    if (racing)
        for (int k = 0; k < 2; k++) pthread_join(t[k], NULL);
    segpool_collect();
    ck_assert_uint_le(remote_stats().segments_in_use, in_use);
}

START_TEST(test_fork_with_remote_frees_pending) { remote_fork_run(0); }
END_TEST

START_TEST(test_fork_while_threads_free) {
    for (int round = 0; round < 5; round++) remote_fork_run(1);
}
END_TEST

static Suite *remote_suite(void) {
    Suite *s = suite_create("remote");
    TCase *core = tcase_create("core");
    tcase_add_checked_fixture(core, setup, NULL);
    tcase_set_timeout(core, 120);
    tcase_add_test(core, test_block_freed_elsewhere_is_reused);
    tcase_add_test(core, test_full_segment_comes_back);
    tcase_add_test(core, test_freeing_thread_reuses_blocks_it_kept);
    tcase_add_test(core, test_fork_with_kept_blocks);
    tcase_add_test(core, test_many_threads_free_into_one_owner);
    tcase_add_test(core, test_owner_exits_with_remote_frees_pending);
    tcase_add_test(core, test_frees_into_dead_heaps_while_others_adopt);
    tcase_add_test(core, test_fork_with_remote_frees_pending);
    tcase_add_test(core, test_fork_while_threads_free);
    suite_add_tcase(s, core);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(remote_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
