/*
 * init.c - start-up and exit: reads the configuration, sets up the arena,
 * the segment pool, the size classes and the heaps, prints the
 * configuration in force when asked (SEGSHIM_VERBOSE), registers the fork
 * handlers as the library loads and calls the statistics module at exit.
 *
 * The first call may come from any thread, before any constructor has run (a
 * library's constructor, the dynamic loader), or from several threads at
 * once: one thread initializes, the others (and a fork) wait; a call that
 * the initialization itself makes is refused, and the shim serves it from
 * glibc.  Nothing here allocates through the pool.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "os.h"
#include "stats.h"
#include "text.h"

extern char **environ;

pool_t pool;

#define POOL_VERBOSE_LEN 2048 /* the configuration printout: a line an option, and notes */
static SEGPOOL_TLS int tls_in_init;

/* Decide the huge-page mode: auto prefers THP, then reserved hugetlb pages. */
static void pool_choose_hugepages(void) {
    int64_t mode = pool.config.hugepages;
    pool.hugepage_note[0] = '\0';
    const char *why = NULL;
    if (mode == HUGEPAGES_HUGETLB || (mode == HUGEPAGES_AUTO && !os_thp_available())) {
        if (os_hugetlb_free_pages() > 0) {
            arena_set_page_kind(PAGES_HUGETLB, NULL);
            return;
        }
        if (mode == HUGEPAGES_HUGETLB) why = "hugetlb: no free reserved 2 MiB pages (vm.nr_hugepages), using THP";
    }
    if (mode != HUGEPAGES_OFF && os_thp_available()) {
        arena_set_page_kind(PAGES_THP, why);
        return;
    }
    if (mode != HUGEPAGES_OFF && why == NULL)
        why = "transparent huge pages are disabled (transparent_hugepage/enabled = never)";
    arena_set_page_kind(PAGES_SMALL, why);
}

/* The huge-page mode actually used, as the option's value. */
static int64_t pool_hugepages_in_force(void) {
    switch (pool.page_kind) {
    case PAGES_HUGETLB: return HUGEPAGES_HUGETLB;
    case PAGES_THP: return HUGEPAGES_THP;
    case PAGES_SMALL: break;
    }
    return HUGEPAGES_OFF;
}

/* SEGSHIM_VERBOSE=1: the configuration in force once set-up is over (rc: its
 * result), each line prefixed "segshim: ", with the requested value where
 * the pool settled on another. */
static void pool_verbose(int rc) {
    char buf[POOL_VERBOSE_LEN];
    text_t t;
    text_init(&t, buf, sizeof buf);
    config_t in_force = pool.config;
    if (pool.config.disable) {
        text_str(&t, "segshim: SEGSHIM_DISABLE=1: every call goes to libc\n");
    } else if (rc != 0) {
        text_str(&t, "segshim: the pool could not be set up: every call goes to libc\n");
    } else {
        in_force.pool_size = (int64_t)pool.size;
        in_force.hugepages = pool_hugepages_in_force();
        in_force.shards = (int64_t)pool.shard_count;
    }
    text_str(&t, "segshim: configuration in force:\n");
    t.len += config_format_lines(&in_force, &pool.config, "segshim: ", buf + t.len, sizeof buf - t.len);
    if (rc == 0 && pool.hugepage_note[0] != '\0') {
        text_str(&t, "segshim: huge pages: ");
        text_str(&t, pool.hugepage_note);
        text_str(&t, "\n");
    }
    (void)text_write_all(2, buf, t.len);
}

/* The free-list link encoding: a random key and a random odd multiplier with
 * its inverse modulo 2^64 (Newton's iteration doubles the correct low bits
 * each step, from 3 for any odd number). */
static void pool_choose_link_encoding(void) {
    uint64_t mul = os_random() | 1, inverse = mul;
    for (int i = 0; i < 5; i++) inverse *= 2 - mul * inverse; /* 3 -> 6 -> 12 -> 24 -> 48 -> 96 bits */
    pool.link_key = (uintptr_t)os_random();
    pool.link_mul = (uintptr_t)mul;
    pool.link_mul_inverse = (uintptr_t)inverse;
    pool.kept_key = (uintptr_t)os_random();
}

/* SEGSHIM_PREFAULT, capped to three quarters of the memory that can be had
 * (MemAvailable, a memory cgroup's room): touching more gets the process
 * OOM-killed, at once or at its next allocation, and a child that inherits
 * the variable would do the same. */
static size_t pool_prefault_bytes(void) {
    uint64_t want = (uint64_t)pool.config.prefault;
    uint64_t avail = os_available_memory();
    uint64_t cap = (avail - avail / 4) & ~(uint64_t)(SEGPOOL_REGION_SIZE - 1);
    if (avail == 0 || want <= cap) return (size_t)want;
    char line[TEXT_LINE_MAX];
    text_t t;
    text_init(&t, line, sizeof line - 1); /* room for the '\n' */
    text_str(&t, "segshim: SEGSHIM_PREFAULT=");
    text_size_exact(&t, (int64_t)want);
    text_str(&t, " exceeds available memory; using ");
    text_size_exact(&t, (int64_t)cap);
    line[t.len++] = '\n';
    (void)text_write_all(2, line, t.len);
    return (size_t)cap;
}

static int pool_setup(void) {
    config_defaults(&pool.config);
    config_load(&pool.config, environ, os_is_secure(), 2);
    stats_start();
    if (pool.config.disable) return -1;
    pool_choose_link_encoding();

    pool.segment_size = (size_t)pool.config.segment_size;
    pool.segment_shift = (unsigned)__builtin_ctzll(pool.segment_size);
    pool.region_segments = SEGPOOL_REGION_SIZE >> pool.segment_shift;
    uint64_t want = pool.config.pool_size ? (uint64_t)pool.config.pool_size : os_physical_memory();
    if (want < SEGPOOL_REGION_SIZE) want = SEGPOOL_REGION_SIZE;
    want &= ~(uint64_t)(SEGPOOL_REGION_SIZE - 1);
    if (arena_init((size_t)want) != 0) return -1;
    /* The side tables are sized from region_count: for the most the arena
     * may grow to, while only what is mapped now is usable. */
    size_t usable = pool.region_count;
    pool.region_count = pool.region_max;
    if (segment_pool_init() != 0) return -1;
    pool.region_count = usable;
    atomic_store(&pool.regions_claim, pool_claim_make(0, usable));
    unsigned max_slab = pool.region_segments < SEGPOOL_MAX_SLAB ? (unsigned)pool.region_segments : SEGPOOL_MAX_SLAB;
    sizeclass_init(pool.segment_size, max_slab);
    pool_choose_hugepages();
    segment_retain_update();
    if (heap_init_once() != 0) return -1;
    if (pool.config.prefault) arena_prefault(pool_prefault_bytes());
    /* Publish: from here on pointers in the arena are ours. */
    pool.size = pool.region_count << SEGPOOL_REGION_SHIFT;
    __atomic_store_n(&pool.small_max, pool.segment_size, __ATOMIC_RELEASE);
    if (pool.config.stats_signal) stats_signal_install((int)pool.config.stats_signal);
    return 0;
}

int pool_init(void) {
    int state = atomic_load_explicit(&pool.state, memory_order_acquire);
    if (state == POOL_READY) return 0;
    if (state == POOL_DISABLED || tls_in_init) return -1;
    int expected = POOL_UNINIT;
    if (atomic_compare_exchange_strong(&pool.state, &expected, POOL_INITIALIZING)) {
        tls_in_init = 1;
        int rc = pool_setup();
        if (pool.config.verbose) pool_verbose(rc);
        tls_in_init = 0;
        atomic_store_explicit(&pool.state, rc == 0 ? POOL_READY : POOL_DISABLED, memory_order_release);
        return rc;
    }
    while ((state = atomic_load_explicit(&pool.state, memory_order_acquire)) == POOL_INITIALIZING) sched_yield();
    return state == POOL_READY ? 0 : -1;
}

/* Fork handlers are registered once, as the library loads, not by the
 * setup.  A fork while another thread sets the pool up waits for it: the
 * child would inherit POOL_INITIALIZING with no thread left to finish it,
 * and its first allocation would wait for ever (test_fork_with_shards hung
 * so under ASan, whose setup outlasts the test's 2 ms before its first
 * fork).  Registering from inside the setup could not work with that wait:
 * glibc holds its atfork lock while the handlers run, and pthread_atfork
 * takes it.  The initializing thread itself (a signal handler's fork) does
 * not wait. */
static void pool_fork_prepare(void) {
    while (!tls_in_init && atomic_load_explicit(&pool.state, memory_order_acquire) == POOL_INITIALIZING) sched_yield();
    heap_fork_prepare();
}

__attribute__((constructor)) static void pool_fork_handlers_install(void) {
    pthread_atfork(pool_fork_prepare, heap_fork_parent, heap_fork_child);
}

/* SEGSHIM_STATS: the statistics module writes them (stats_output.c). */
__attribute__((destructor)) static void pool_exit_report(void) { stats_exit_report(); }
