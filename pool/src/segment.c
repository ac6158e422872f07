/*
 * segment.c - the global segment pool (Flink's NetworkBufferPool).
 *
 * Capacity: pool size / segment size segments, in region_count regions of
 * region_segments each.  Every region's free segments are a bitmap.
 *
 * Two kinds of region: small ones, on 4 KiB pages, and huge ones (on huge
 * pages where the mode allows).  A heap asks for huge ones only once it owns
 * HEAP_HUGE_MIN_BYTES (types.h), and whole segments handed to the API are
 * huge: huge pages go where they pay (a big heap walked often), and a small
 * program or a thread that holds a few blocks per class is not charged 2 MiB
 * per touched region.  With SEGSHIM_HUGEPAGES=off every region is small, with
 * hugetlb every region is huge.  Regions are kept where a request finds
 * them in this order of preference:
 *
 *   1. bins[kind][k], 0 < k < region_segments: partly used regions of the
 *      kind with k free segments; the lowest k is taken first (the fullest
 *      region), so that frees concentrate in few regions and whole regions
 *      come free;
 *   2. the free-region list: committed, wholly free regions, newest first (still
 *      warm), of the kind if there is one; the oldest is purged after
 *      SEGSHIM_DECAY_MS or past SEGSHIM_RETAIN;
 *   3. the purged stack: given back to the OS, reusable without a syscall;
 *   4. never-used regions, in address order (committed on first use).
 *
 * Shards.  The pool is split into pool.shard_count shards (about one per 8
 * CPUs, SEGSHIM_SHARDS), each with its own lock, its own lists above and a
 * run cache in front of them that needs no lock ("Run cache" below); a
 * region is on the lists of one shard (region_t.shard), the one that
 * committed it or, for a wholly free one, the one that stole it last.  A
 * request goes to its CPU's shard (sched_getcpu at each request: glibc reads
 * it from rseq, a load), takes 1-3 there and otherwise claims a never-used
 * region (4) with one compare-and-swap on pool.regions_claim, no lock.  Only
 * when all of that fails does it steal: partly used regions of other shards
 * whose lock is free (trylock), then any shard's partly used, wholly free and
 * purged regions (a wholly free one moves to the thief's shard), then the
 * other kind's partly used ones.  NULL means no shard could serve: a request
 * that found nothing while a region was off every list (being committed,
 * purged or moved: pool.moves_started != moves_finished) looks again.
 * A recycle goes to the shard of its segment's region.
 *
 * No lock is held across a system call: a region to commit or purge is taken
 * off its lists first (REGION_COMMITTING, REGION_PURGING), the lock dropped,
 * and the region put back under the lock afterwards.
 *
 * Giving memory back.  segshim has no thread of its own: memory goes back to
 * the OS from the allocator's own calls.  At most pool.retain_regions wholly
 * free regions stay committed (SEGSHIM_RETAIN, capped by a sixteenth of the
 * memory available: segment_retain_update); the region that comes free past
 * that budget sends the oldest of its shard back at once.  A shard within
 * its share of the budget (retain / shard_count) looks no further; one past
 * it adds up the shards' counts (plain reads, no shared write).  The ones within the budget go back once they have been free for
 * SEGSHIM_DECAY_MS, checked on every request and recycle (and by
 * segpool_collect and malloc_trim).  A purge (decommit: the region's pages
 * are dropped and it stops being writable, so it no longer counts against
 * RLIMIT_DATA) runs with the lock dropped, on a region taken off every list
 * (REGION_PURGING).  Nothing here calls into glibc beyond system calls, so a
 * free made from inside glibc (a thread's exit, pthread_join) is safe.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>

#include "invariants.h"
#include "lock.h"
#include "os.h"
#include "pool.h"

/* Regions a request for a run of segments looks at in the bins before it
 * takes a wholly free one instead. */
#define SEGMENT_RUN_SEARCH_MAX 64
/* Times a request that found nothing looks again while regions are off every
 * list; each is a full search after a sched_yield. */
#define SEGMENT_RETRY_MAX 100

static SEGPOOL_TLS unsigned tls_shard_pin; /* shard + 1; 0: the CPU's */

/* ---- Shards ------------------------------------------------------------------ */

void segment_shard_pin(int shard) { tls_shard_pin = shard < 0 ? 0u : (unsigned)shard + 1; }

static unsigned segment_home_index(void) {
    unsigned n = pool.shard_count;
    if (n == 1) return 0;
    unsigned i = tls_shard_pin ? tls_shard_pin - 1 : os_cpu_current() / pool.shard_cpus;
    return i % n;
}

static segment_shard_t *segment_region_shard(const region_t *r) {
    return &pool.shards[__atomic_load_n(&r->shard, __ATOMIC_RELAXED)];
}

/* Taking a shard's lock also takes in the runs recycled while it was busy,
 * and letting go of it looks for more (see "Recycle"). */
static void segment_pending_take_locked(segment_shard_t *sh);

static void segment_shard_lock(segment_shard_t *sh) {
    lock_acquire_counted(&sh->lock, &sh->lock_count);
    segment_pending_take_locked(sh);
}

static int segment_shard_trylock(segment_shard_t *sh) {
    if (!lock_try_counted(&sh->lock, &sh->lock_count)) return 0;
    segment_pending_take_locked(sh);
    return 1;
}

/* sh's lock was just released: if runs were pushed on its pending stack by
 * recycles that found it busy, take the lock if it is free, and them.
 * Returns 1 with the lock held again.  The fence pairs with the one after
 * a push: of a pusher and the releasing holder, at least one sees the other
 * (the push, or the lock free). */
static int segment_pending_claim(segment_shard_t *sh) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&sh->pending, memory_order_relaxed) == 0) return 0;
    return segment_shard_trylock(sh);
}

static void segment_shard_unlock(segment_shard_t *sh) {
    do lock_release(&sh->lock);
    while (segment_pending_claim(sh));
}

/* A region leaves every list (with its shard's lock held, or before anyone
 * can see it) and comes back: a search that saw neither end may have missed
 * it (segment_request). */
static void segment_move_start(void) { atomic_fetch_add_explicit(&pool.moves_started, 1, memory_order_acq_rel); }
static void segment_move_end(void) { atomic_fetch_add_explicit(&pool.moves_finished, 1, memory_order_acq_rel); }

static void segment_committed_add(long n) {
    size_t now = __atomic_add_fetch(&pool.regions_committed, (size_t)n, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&pool.regions_peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&pool.regions_peak, &peak, now, 1, __ATOMIC_RELAXED,
                                                      __ATOMIC_RELAXED)) {
    }
}

/* ---- Region lists (the shard's lock held) ------------------------------------------ */

#define REGION_NEXT(r) ((r)->next)
#define REGION_PREV(r) ((r)->prev)
LIST_DEFINE(region_list, region_t, REGION_NEXT, REGION_PREV)

/* The bins of r's kind: on huge pages or not. */
static unsigned segment_region_kind(const region_t *r) {
    return r->pages != PAGES_SMALL ? POOL_REGION_HUGE : POOL_REGION_SMALL;
}

/* free_regions_count is read by other shards without the lock (the budget). */
static void segment_free_regions_add(segment_shard_t *sh, long d) {
    __atomic_store_n(&sh->free_regions_count, sh->free_regions_count + (size_t)d, __ATOMIC_RELAXED);
}

/* Put r on the list its free count says; a full region is on none. */
static void segment_region_insert_locked(segment_shard_t *sh, region_t *r) {
    size_t k = r->free_count;
    if (k == 0) return;
    if (k == pool.region_segments) {
        r->freed_at_ms = os_now_ms();
        region_list_push(&sh->free_regions_head, r);
        if (!sh->free_regions_tail) sh->free_regions_tail = r;
        segment_free_regions_add(sh, 1);
        return;
    }
    unsigned kind = segment_region_kind(r);
    region_list_push(&sh->bins[kind][k], r);
    sh->bins_nonempty[kind][k / 64] |= (uint64_t)1 << (k % 64);
}

static void segment_region_remove_locked(segment_shard_t *sh, region_t *r) {
    size_t k = r->free_count;
    if (k == 0) return;
    if (k == pool.region_segments) {
        if (sh->free_regions_tail == r) sh->free_regions_tail = r->prev;
        region_list_remove(&sh->free_regions_head, r);
        segment_free_regions_add(sh, -1);
        return;
    }
    unsigned kind = segment_region_kind(r);
    region_list_remove(&sh->bins[kind][k], r);
    if (!sh->bins[kind][k]) sh->bins_nonempty[kind][k / 64] &= ~((uint64_t)1 << (k % 64));
}

/* First free run of count segments in r, or -1. */
static long segment_find_run(const region_t *r, unsigned count) {
    size_t n = pool.region_segments;
    if (count == 1) {
        for (size_t w = 0; w * 64 < n; w++)
            if (r->free_map[w]) return (long)(w * 64 + (size_t)__builtin_ctzll(r->free_map[w]));
        return -1;
    }
    for (size_t i = 0; i + count <= n; i++) {
        unsigned len = 0;
        while (len < count && (r->free_map[(i + len) / 64] >> ((i + len) % 64) & 1)) len++;
        if (len == count) return (long)i;
        i += len; /* the run broke at i + len */
    }
    return -1;
}

static void segment_mark(region_t *r, size_t first, unsigned count, int free) {
    for (size_t i = first; i < first + count; i++) {
        uint64_t bit = (uint64_t)1 << (i % 64);
        if (free) r->free_map[i / 64] |= bit;
        else r->free_map[i / 64] &= ~bit;
    }
}

static void segment_mark_all_free(region_t *r) {
    r->free_count = (uint32_t)pool.region_segments;
    memset(r->free_map, 0, sizeof r->free_map);
    segment_mark(r, 0, (unsigned)pool.region_segments, 1);
}

/* ---- Run cache ---------------------------------------------------------------- */

/* A recycled run goes first to its shard's run cache, a lock-free stack for
 * its region kind and length, and a request of that kind and length takes
 * one from its CPU's shard's cache before anything else: a thread that hands
 * segments back and asks for them again (the steady state of a heap that
 * churns slabs, or of the segment API) takes no lock and searches no bitmap.
 * The runs stay marked handed out in their regions (so a region that holds
 * one is not wholly free, cannot move to another shard and is not purged),
 * and a shard's cache holds about segment_cache_max() segments at most: a
 * region's worth, less in a small pool, and at most half the shard's share
 * of the retention budget, in which the budget counts them (so none with
 * SEGSHIM_RETAIN=0 or SEGSHIM_DECAY_MS=0).  They go back to their regions at
 * segpool_collect and malloc_trim, and whenever a request finds nothing
 * else (segment_request), so the capacity holds.
 *
 * A head is the top run's index + 1 in its low half and a tag in its high
 * half, bumped at every change: a pop that read a head, then lost the race
 * to a pop and a push of the same run, fails its compare-and-swap (ABA).  A
 * stale pop reads run_next of a run no longer on the stack: a word of the
 * side table, always mapped, and the compare-and-swap fails. */

static uint64_t segment_run_head(uint64_t old, uint32_t top) { return ((old >> 32) + 1) << 32 | top; }

/* Segments a shard's cache may hold now: pool.run_cache_max, and at most
 * half its share of the retention budget (segment_over_budget counts them). */
static uint32_t segment_cache_max(void) {
    size_t budget = __atomic_load_n(&pool.retain_regions, __ATOMIC_RELAXED) * pool.region_segments / 2 / pool.shard_count;
    return budget < pool.run_cache_max ? (uint32_t)budget : pool.run_cache_max;
}

/* The regions' worth of segments in sh's cache, rounded up. */
static size_t segment_cache_regions(const segment_shard_t *sh) {
    size_t held = atomic_load_explicit(&sh->runs_held, memory_order_relaxed);
    return (held + pool.region_segments - 1) / pool.region_segments;
}

/* Whether the wholly free regions and the run caches (in whole regions) of
 * every shard, plus extra, are past the retention budget: the shards'
 * counts read without their locks, the sum stopped once it is past. */
static int segment_retained_past_budget(size_t extra) {
    size_t retain = __atomic_load_n(&pool.retain_regions, __ATOMIC_RELAXED), total = extra;
    for (unsigned i = 0; i < pool.shard_count && total <= retain; i++) {
        const segment_shard_t *other = &pool.shards[i];
        total += __atomic_load_n(&other->free_regions_count, __ATOMIC_RELAXED) + segment_cache_regions(other);
    }
    return total > retain;
}

/* A cached run may keep one more region from coming free: it is cached only
 * while that stays within the budget. */
static int segment_cache_push(segment_shard_t *sh, const region_t *r, segment_t *s, unsigned count) {
    uint32_t max = segment_cache_max();
    if (count > max || count > SEGPOOL_MAX_SLAB ||
        atomic_load_explicit(&sh->runs_held, memory_order_relaxed) + count > max || segment_retained_past_budget(1))
        return 0;
    atomic_fetch_add_explicit(&sh->runs_held, count, memory_order_relaxed);
    _Atomic(uint64_t) *head = &sh->runs[segment_region_kind(r)][count - 1];
    uint32_t top = (uint32_t)segment_index(s) + 1;
    _Atomic(uint32_t) *link = &pool.links[top - 1].run_next;
    uint64_t old = atomic_load_explicit(head, memory_order_relaxed);
    do atomic_store_explicit(link, (uint32_t)old, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(head, &old, segment_run_head(old, top), memory_order_release,
                                                  memory_order_relaxed));
    atomic_fetch_add_explicit(&sh->runs_cached, 1, memory_order_relaxed);
    return 1;
}

static segment_t *segment_cache_pop(segment_shard_t *sh, unsigned count, unsigned kind) {
    if (count > SEGPOOL_MAX_SLAB) return NULL;
    _Atomic(uint64_t) *head = &sh->runs[kind][count - 1];
    uint64_t old = atomic_load_explicit(head, memory_order_acquire);
    for (;;) {
        uint32_t top = (uint32_t)old;
        if (top == 0) return NULL;
        uint32_t next = atomic_load_explicit(&pool.links[top - 1].run_next, memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(head, &old, segment_run_head(old, next), memory_order_acquire,
                                                  memory_order_acquire)) {
            atomic_fetch_sub_explicit(&sh->runs_held, count, memory_order_relaxed);
            atomic_fetch_add_explicit(&sh->runs_reused, 1, memory_order_relaxed);
            return &pool.segments[top - 1];
        }
    }
}

/* Take a whole stack off sh's cache: its top run's index + 1, or 0. */
static uint32_t segment_cache_take(segment_shard_t *sh, unsigned kind, unsigned len) {
    _Atomic(uint64_t) *head = &sh->runs[kind][len - 1];
    uint64_t old = atomic_load_explicit(head, memory_order_relaxed);
    while ((uint32_t)old != 0 && !atomic_compare_exchange_weak_explicit(head, &old, segment_run_head(old, 0),
                                                                        memory_order_acquire, memory_order_relaxed)) {
    }
    return (uint32_t)old;
}

static void segment_return_locked(segment_shard_t *sh, segment_t *s, unsigned count);

/* Every run of sh's cache back in its region (sh's lock held); the segments
 * returned. */
static size_t segment_cache_drain_locked(segment_shard_t *sh) {
    size_t returned = 0;
    if (atomic_load_explicit(&sh->runs_held, memory_order_relaxed) == 0) return 0;
    for (unsigned kind = 0; kind < POOL_REGION_KINDS; kind++)
        for (unsigned len = 1; len <= SEGPOOL_MAX_SLAB; len++)
            for (uint32_t top = segment_cache_take(sh, kind, len); top != 0;) {
                segment_t *s = &pool.segments[top - 1];
                top = atomic_load_explicit(&pool.links[top - 1].run_next, memory_order_relaxed);
                segment_return_locked(sh, s, len);
                atomic_fetch_sub_explicit(&sh->runs_held, len, memory_order_relaxed);
                returned += len;
            }
    return returned;
}

/* Every shard's cache drained (segment_request, when nothing else is left). */
static size_t segment_cache_drain_all(void) {
    size_t returned = 0;
    for (unsigned i = 0; i < pool.shard_count; i++) {
        segment_shard_t *sh = &pool.shards[i];
        if (atomic_load_explicit(&sh->runs_held, memory_order_relaxed) == 0) continue;
        segment_shard_lock(sh);
        returned += segment_cache_drain_locked(sh);
        segment_shard_unlock(sh);
    }
    return returned;
}

/* ---- Purging ----------------------------------------------------------------- */

/* Give r (wholly free, on sh's free-region list) back to the OS.  Drops and retakes
 * sh's lock around the system call.  If the OS refuses, r stays committed
 * and goes back on the free-region list, to be tried again after another decay. */
static int segment_purge_locked(segment_shard_t *sh, region_t *r) {
    segment_region_remove_locked(sh, r);
    r->state = REGION_PURGING;
    segment_move_start();
    segment_shard_unlock(sh);
    int rc = arena_purge_region(r);
    segment_shard_lock(sh);
    if (rc != 0) {
        r->state = REGION_COMMITTED;
        segment_region_insert_locked(sh, r); /* with a new timestamp */
    } else {
        /* Its pages come back zero: calloc need not clear them (heap.c). */
        segment_t *first = &pool.segments[(size_t)(r - pool.regions) * pool.region_segments];
        for (size_t i = 0; i < pool.region_segments; i++) first[i].dirty = 0;
        r->state = REGION_PURGED;
        r->freed_at_ms = os_now_ms(); /* on the purged stack: when it went back (segment_retain_raise) */
        segment_committed_add(-1);
        region_list_push(&sh->purged, r);
        __atomic_add_fetch(&pool.regions_purged, 1, __ATOMIC_RELAXED);
    }
    segment_move_end();
    return rc;
}

/* Whether the wholly free regions, and the run caches counted in whole
 * regions, are past the budget, sh's lock held.  A shard within its share
 * looks at nothing else (the common case); one past it adds up every
 * shard's counts, read without their locks. */
static int segment_over_budget(const segment_shard_t *sh) {
    size_t retain = __atomic_load_n(&pool.retain_regions, __ATOMIC_RELAXED);
    if ((sh->free_regions_count + segment_cache_regions(sh)) * pool.shard_count <= retain) return 0;
    return segment_retained_past_budget(0);
}

/* Purge sh's wholly free regions past the retention budget, and those that
 * have been free for the decay time.  A region the OS refused to purge goes
 * back on the list with a new time stamp: the loop then stops at it. */
static void segment_purge_expired_locked(segment_shard_t *sh) {
    int64_t decay = pool.config.decay_ms;
    if (decay < 0 || !sh->free_regions_tail) return;
    while (sh->free_regions_tail && segment_over_budget(sh))
        if (segment_purge_locked(sh, sh->free_regions_tail) != 0) return;
    uint64_t now = os_now_ms();
    region_t *r;
    while ((r = sh->free_regions_tail) != NULL && now - r->freed_at_ms >= (uint64_t)decay)
        if (segment_purge_locked(sh, r) != 0) return;
}

/* A shard with a wholly free region: a racy peek at a count kept atomic. */
static int segment_shard_has_free_regions(const segment_shard_t *sh) {
    return __atomic_load_n(&sh->free_regions_count, __ATOMIC_RELAXED) != 0;
}

/* segpool_collect: the run caches go back to their regions too. */
void segment_purge_expired(void) {
    for (unsigned i = 0; i < pool.shard_count; i++) {
        segment_shard_t *sh = &pool.shards[i];
        if (!segment_shard_has_free_regions(sh) && atomic_load_explicit(&sh->runs_held, memory_order_relaxed) == 0)
            continue; /* nothing to do is the common case */
        segment_shard_lock(sh);
        segment_cache_drain_locked(sh);
        segment_purge_expired_locked(sh);
        segment_shard_unlock(sh);
    }
}

/* ---- Set-up ------------------------------------------------------------------------ */

/* SEGSHIM_SHARDS, or one shard per 8 CPUs of the affinity mask at start-up. */
static unsigned segment_shard_count(void) {
    unsigned n = pool.config.shards > 0 ? (unsigned)pool.config.shards : (os_cpu_count() + 7) / 8;
    if (n < 1) n = 1;
    if (n > 64) n = 64;
    return n;
}

int segment_pool_init(void) {
    pool.capacity = pool.region_count * pool.region_segments;
    /* Sized for the whole arena, writable region by region as regions are
     * first claimed (segment_tables_commit). */
    pool.segments = os_reserve_meta(pool.capacity * sizeof(segment_t));
    pool.links = os_reserve_meta(pool.capacity * sizeof(segment_link_t));
    pool.regions = os_alloc_meta(pool.region_count * sizeof(region_t));
    pool.shard_count = segment_shard_count();
    pool.shards = os_alloc_meta(pool.shard_count * sizeof(segment_shard_t));
    if (!pool.segments || !pool.links || !pool.regions || !pool.shards) return -1;
    /* CPU numbers in groups of consecutive ones, one group per shard (cores
     * of a socket are mostly numbered together). */
    unsigned ids = os_cpu_ids();
    pool.shard_cpus = ids / pool.shard_count ? ids / pool.shard_count : 1;
    for (unsigned i = 0; i < pool.shard_count; i++) pthread_mutex_init(&pool.shards[i].lock, NULL);
    pthread_mutex_init(&pool.arena_lock, NULL);
    /* A region's worth of segments per shard's run cache, at most a
     * sixteenth of the capacity over all shards (and half the retention
     * budget: segment_cache_max).  Indices + 1 fit the heads' low half. */
    size_t max = pool.capacity / 16 / pool.shard_count;
    if (max > pool.region_segments) max = pool.region_segments;
    if (pool.region_max * pool.region_segments >= UINT32_MAX) max = 0;
    pool.run_cache_max = (uint32_t)max;
    if (segment_space_limited()) segment_limit_seen();
    return 0;
}

/* ---- Request ------------------------------------------------------------------- */

/* The kind of region (0 small, 1 huge) for a request that wants huge pages
 * or not, in the huge-page mode in force. */
static unsigned segment_kind(int huge) {
    page_kind_t mode = __atomic_load_n(&pool.page_kind, __ATOMIC_RELAXED);
    if (mode == PAGES_HUGETLB) return POOL_REGION_HUGE;
    if (mode == PAGES_SMALL) return POOL_REGION_SMALL;
    return huge ? POOL_REGION_HUGE : POOL_REGION_SMALL;
}

/* A partly used region of sh of the kind with a free run of count segments,
 * the fullest first, taken off its list; NULL if none. */
static region_t *segment_pick_partial_locked(segment_shard_t *sh, unsigned count, unsigned kind) {
    if (count == 1) {
        for (size_t w = 0; w < SEGPOOL_MAX_REGION_SEGMENTS / 64; w++) {
            if (sh->bins_nonempty[kind][w]) {
                region_t *r = sh->bins[kind][w * 64 + (size_t)__builtin_ctzll(sh->bins_nonempty[kind][w])];
                segment_region_remove_locked(sh, r);
                return r;
            }
        }
        return NULL;
    }
    unsigned looked = 0; /* bounded: past that many, a fresh region is cheaper than the search */
    for (size_t k = count; k < pool.region_segments && looked < SEGMENT_RUN_SEARCH_MAX; k++) {
        for (region_t *r = sh->bins[kind][k]; r && looked < SEGMENT_RUN_SEARCH_MAX; r = r->next, looked++) {
            if (segment_find_run(r, count) >= 0) {
                segment_region_remove_locked(sh, r);
                return r;
            }
        }
    }
    return NULL;
}

/* A wholly free region of sh, of the kind if one is (the list is short: at
 * most SEGSHIM_RETAIN's worth), else any, taken off the list; NULL if none. */
static region_t *segment_pick_empty_locked(segment_shard_t *sh, unsigned kind) {
    region_t *r = sh->free_regions_head;
    for (region_t *e = r; e; e = e->next)
        if (segment_region_kind(e) == kind) {
            r = e;
            break;
        }
    if (r) segment_region_remove_locked(sh, r);
    return r;
}

/* Hand out a run of count segments of r (off every list, with a free run)
 * and put r back on sh's lists. */
static segment_t *segment_take_run_locked(segment_shard_t *sh, region_t *r, unsigned count) {
    long first = segment_find_run(r, count);
    segment_mark(r, (size_t)first, count, 0);
    r->free_count -= count;
    segment_region_insert_locked(sh, r);
    sh->segments_out += count;
    if (sh->segments_out > sh->segments_peak) sh->segments_peak = sh->segments_out;
    return &pool.segments[(size_t)(r - pool.regions) * pool.region_segments + (size_t)first];
}

/* A run from sh's own partly used regions of the kind, or from one of its
 * wholly free ones (when whole); NULL if none. */
static segment_t *segment_take_listed_locked(segment_shard_t *sh, unsigned count, unsigned kind, int whole) {
    region_t *r = segment_pick_partial_locked(sh, count, kind);
    if (!r && whole) r = segment_pick_empty_locked(sh, kind);
    return r ? segment_take_run_locked(sh, r, count) : NULL;
}

/* A purged region of sh taken off its stack for a commit (a move starts). */
static region_t *segment_pop_purged_locked(segment_shard_t *sh) {
    region_t *r = sh->purged;
    if (!r) return NULL;
    region_list_remove(&sh->purged, r);
    r->state = REGION_COMMITTING;
    segment_move_start();
    return r;
}

/* r (wholly free, committed, off every list, moving) joins home's lists and
 * serves the request there. */
static segment_t *segment_adopt(segment_shard_t *home, region_t *r, unsigned count) {
    __atomic_store_n(&r->shard, (uint8_t)(home - pool.shards), __ATOMIC_RELAXED);
    segment_shard_lock(home);
    segment_t *s = segment_take_run_locked(home, r, count);
    segment_move_end();
    segment_shard_unlock(home);
    return s;
}

/* Commit r (off every list, moving: a purged region or a fresh one) with no
 * lock held, then serve the request from it in home.  If the commit fails, r
 * goes on home's purged stack, to be tried again later (unless it is lost:
 * an unmapped region whose place another mapping took); NULL. */
static void segment_retain_raise(const region_t *r);

static segment_t *segment_commit_adopt(segment_shard_t *home, region_t *r, unsigned count, unsigned kind) {
    r->huge_wanted = (uint8_t)kind;
    if (r->state == REGION_COMMITTING) segment_retain_raise(r); /* a purged one (segment_pop_purged_locked) */
    if (r->state != REGION_COMMITTED) { /* prefaulted fresh regions are */
        r->state = REGION_COMMITTING;
        if (arena_commit_region(r) != 0) {
            r->state = REGION_PURGED;
            __atomic_store_n(&r->shard, (uint8_t)(home - pool.shards), __ATOMIC_RELAXED);
            segment_shard_lock(home);
            if (!r->lost) region_list_push(&home->purged, r);
            segment_move_end();
            segment_shard_unlock(home);
            return NULL;
        }
        r->state = REGION_COMMITTED;
        segment_committed_add(1);
    }
    return segment_adopt(home, r, count);
}

/* The side tables' entries for region i, writable.  The tables are mapped
 * read-only (zeros) for the whole arena and count against RLIMIT_DATA only
 * once written: a program that lowers its limit after start-up keeps it for
 * its own memory, as under glibc.  Done before the claim that may take i (a
 * lost race leaves them writable for the next); making writable pages
 * writable again changes nothing, so no lock is needed. */
static int segment_tables_commit(size_t i) {
    size_t first = i * pool.region_segments, n = pool.region_segments;
    if (os_commit_meta(&pool.segments[first], n * sizeof(segment_t)) != 0) return -1;
    return os_commit_meta(&pool.links[first], n * sizeof(segment_link_t));
}

size_t segment_tables_per_region(void) { return pool.region_segments * (sizeof(segment_t) + sizeof(segment_link_t)); }

void segment_tables_release(size_t regions) {
    if (regions >= pool.region_max) return;
    size_t first = regions * pool.region_segments, rest = pool.capacity - first;
    os_release_meta(&pool.segments[first], rest * sizeof(segment_t));
    os_release_meta(&pool.links[first], rest * sizeof(segment_link_t));
}

/* Claim a never-used region, with no lock: a compare-and-swap on the fresh
 * index, bounded by the region count in the same word.  When none is left the
 * arena may grow (under a finite RLIMIT_AS), under pool.arena_lock.  The move
 * starts before the claim, so that no search misses the region. */
static region_t *segment_claim_fresh(void) {
    uint64_t claim = atomic_load_explicit(&pool.regions_claim, memory_order_acquire);
    for (;;) {
        size_t fresh = pool_claim_fresh(claim), count = pool_claim_count(claim);
        if (fresh < count) {
            if (segment_tables_commit(fresh) != 0) return NULL;
            segment_move_start();
            if (atomic_compare_exchange_weak_explicit(&pool.regions_claim, &claim, pool_claim_make(fresh + 1, count),
                                                      memory_order_acq_rel, memory_order_acquire)) {
                region_t *r = &pool.regions[fresh];
                __atomic_store_n(&r->shard, 0, __ATOMIC_RELAXED);
                segment_mark_all_free(r);
                return r;
            }
            segment_move_end();
            continue;
        }
        lock_acquire(&pool.arena_lock);
        claim = atomic_load_explicit(&pool.regions_claim, memory_order_acquire);
        int grown = pool_claim_fresh(claim) < pool_claim_count(claim) || arena_grow_locked() == 0;
        lock_release(&pool.arena_lock);
        if (!grown) return NULL;
        claim = atomic_load_explicit(&pool.regions_claim, memory_order_acquire);
    }
}

/* Another shard's segments, when home is dry: first partly used regions of
 * the kind in shards whose lock is free, then (waiting for each lock) partly
 * used, wholly free and, if *may_commit, purged regions.  A wholly free or
 * purged region moves to home.  A failed commit clears *may_commit. */
static segment_t *segment_steal(segment_shard_t *home, unsigned count, unsigned kind, int *may_commit) {
    unsigned n = pool.shard_count, h = (unsigned)(home - pool.shards);
    segment_t *s = NULL;
    for (unsigned i = 1; i < n && !s; i++) {
        segment_shard_t *sh = &pool.shards[(h + i) % n];
        if (!segment_shard_trylock(sh)) continue;
        s = segment_take_listed_locked(sh, count, kind, 0);
        segment_shard_unlock(sh);
    }
    for (unsigned i = 1; i < n && !s; i++) {
        segment_shard_t *sh = &pool.shards[(h + i) % n];
        segment_shard_lock(sh);
        s = segment_take_listed_locked(sh, count, kind, 0);
        region_t *whole = NULL, *purged = NULL;
        if (!s && (whole = segment_pick_empty_locked(sh, kind)) != NULL) segment_move_start();
        if (!s && !whole && *may_commit) purged = segment_pop_purged_locked(sh);
        segment_shard_unlock(sh);
        if (whole) s = segment_adopt(home, whole, count);
        if (purged && (s = segment_commit_adopt(home, purged, count, kind)) == NULL) *may_commit = 0;
    }
    return s;
}

/* The other kind's partly used regions, home's first: the kinds are a
 * preference, and the pool is exhausted only when its capacity is. */
static segment_t *segment_take_other_kind(segment_shard_t *home, unsigned count, unsigned kind) {
    unsigned n = pool.shard_count, h = (unsigned)(home - pool.shards);
    segment_t *s = NULL;
    for (unsigned i = 0; i < n && !s; i++) {
        segment_shard_t *sh = &pool.shards[(h + i) % n];
        segment_shard_lock(sh);
        s = segment_take_listed_locked(sh, count, !kind, 0);
        segment_shard_unlock(sh);
    }
    return s;
}

/* One search: home's lists, a purged region of home or a fresh one (one
 * commit at most per request: *may_commit), other shards, the other kind. */
static segment_t *segment_search(segment_shard_t *home, unsigned count, unsigned kind, int *may_commit, int purge) {
    region_t *r = NULL;
    segment_shard_lock(home);
    if (purge) segment_purge_expired_locked(home);
    segment_t *s = segment_take_listed_locked(home, count, kind, 1);
    if (!s && *may_commit) r = segment_pop_purged_locked(home);
    segment_shard_unlock(home);
    if (s) return s;
    if (!r && *may_commit) r = segment_claim_fresh();
    if (r) {
        if ((s = segment_commit_adopt(home, r, count, kind)) != NULL) return s;
        *may_commit = 0; /* committing failed: the pool is exhausted for this request */
        segment_limit_seen();
    }
    if ((s = segment_steal(home, count, kind, may_commit)) != NULL) return s;
    return segment_take_other_kind(home, count, kind);
}

segment_t *segment_request(unsigned count, int huge) {
    unsigned kind = segment_kind(huge);
    segment_shard_t *home = &pool.shards[segment_home_index()];
    segment_t *s = segment_cache_pop(home, count, kind);
    if (s) return s;
    int may_commit = 1;
    for (unsigned attempt = 0;; attempt++) {
        /* A region off every list from before this search to after it may
         * have been missed: then look again (it is back on a list soon). */
        uint64_t finished = atomic_load_explicit(&pool.moves_finished, memory_order_acquire);
        if ((s = segment_search(home, count, kind, &may_commit, attempt == 0)) != NULL) return s;
        if (attempt >= SEGMENT_RETRY_MAX) return NULL;
        /* Runs in the caches are free too: back in their regions, and again. */
        if (segment_cache_drain_all() != 0) continue;
        if (atomic_load_explicit(&pool.moves_started, memory_order_acquire) == finished) return NULL;
        sched_yield();
    }
}

/* ---- Retention budget --------------------------------------------------------------- */

/* The retention budget: SEGSHIM_RETAIN, and at most a sixteenth of the
 * memory available now (MemAvailable, a memory cgroup's room), so that a
 * program near its cgroup's limit is not killed for memory the pool holds.
 * Read again at most every SEGMENT_RETAIN_RECHECK_MS, as regions come free
 * and as glibc serves requests above one segment (segment_retain_poll). */
#define SEGMENT_RETAIN_RECHECK_MS 100

void segment_retain_update(void) {
    uint64_t now = os_now_ms();
    size_t room = (size_t)((os_available_memory() / 16) >> SEGPOOL_REGION_SHIFT);
    size_t retain = (size_t)((uint64_t)pool.config.retain >> SEGPOOL_REGION_SHIFT);
    size_t raised = __atomic_load_n(&pool.retain_raised, __ATOMIC_RELAXED);
    if (raised && now - __atomic_load_n(&pool.retain_raised_ms, __ATOMIC_RELAXED) >= (uint64_t)pool.config.decay_ms)
        __atomic_store_n(&pool.retain_raised, raised = 0, __ATOMIC_RELAXED); /* the bursts stopped */
    retain += raised;
    if (retain > room) retain = room;
    if (pool.config.decay_ms == 0) retain = 0;
    __atomic_store_n(&pool.retain_room, room, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.retain_regions, retain, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.retain_checked_ms, now, __ATOMIC_RELAXED);
}

/* Repeated bursts.  A region given back and committed again within the decay
 * time was given back for nothing: a program that allocates and frees more
 * than the budget, again and again, would fault every page of its bursts in
 * anew each time (3-5x glibc's time).  Each such commit raises the budget by
 * one region, up to its cap; the raise lapses once no commit has needed it
 * for the decay time (segment_retain_update), after which what the last
 * burst left goes back as the decay gives it back.  Not with SEGSHIM_RETAIN=0
 * or SEGSHIM_DECAY_MS=0 (keep nothing) nor -1 (nothing goes back anyway). */
static void segment_retain_raise(const region_t *r) {
    int64_t decay = pool.config.decay_ms;
    if (pool.config.retain == 0 || decay <= 0) return;
    uint64_t now = os_now_ms();
    if (now - r->freed_at_ms >= (uint64_t)decay) return;
    __atomic_store_n(&pool.retain_raised_ms, now, __ATOMIC_RELAXED);
    size_t budget = __atomic_load_n(&pool.retain_regions, __ATOMIC_RELAXED);
    if (budget >= __atomic_load_n(&pool.retain_room, __ATOMIC_RELAXED)) return;
    __atomic_add_fetch(&pool.retain_raised, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.retain_regions, budget + 1, __ATOMIC_RELAXED);
}

static int segment_retain_stale(void) {
    return os_now_ms() - __atomic_load_n(&pool.retain_checked_ms, __ATOMIC_RELAXED) >= SEGMENT_RETAIN_RECHECK_MS;
}

void segment_retain_poll(void) {
    int any = 0;
    for (unsigned i = 0; i < pool.shard_count && !any; i++) any = segment_shard_has_free_regions(&pool.shards[i]);
    if (!any || !segment_retain_stale()) return;
    segment_retain_update();
    segment_purge_expired();
}

/* ---- Recycle ------------------------------------------------------------------------ */

/* A recycle never waits for its shard's lock.  When the lock is busy the
 * run (its segments already marked free) goes on the shard's pending stack
 * with one CAS, and whoever holds the lock returns it to its region when it
 * takes or lets go of the lock (segment_shard_lock, segment_shard_unlock).
 * Until then the run's segments still count as handed out: a region on the
 * stack is not wholly free, so it cannot move to another shard or be purged.
 * A request that holds the lock has taken every run pushed before it. */

/* The run of count segments at s (of a region of sh) back in its bitmap. */
static void segment_return_locked(segment_shard_t *sh, segment_t *s, unsigned count) {
    size_t index = segment_index(s);
    region_t *r = &pool.regions[index / pool.region_segments];
    segment_region_remove_locked(sh, r);
    segment_mark(r, index % pool.region_segments, count, 1);
    r->free_count += count;
    segment_region_insert_locked(sh, r);
    sh->segments_out -= count;
}

static void segment_pending_take_locked(segment_shard_t *sh) {
    if (atomic_load_explicit(&sh->pending, memory_order_relaxed) == 0) return;
    segment_t *s = (segment_t *)atomic_exchange_explicit(&sh->pending, 0, memory_order_acquire);
    while (s) {
        segment_link_t *l = &pool.links[segment_index(s)];
        segment_t *next = l->queue_next;
        segment_return_locked(sh, s, l->run_count);
        sh->pending_runs++;
        s = next;
    }
}

static void segment_pending_push(segment_shard_t *sh, segment_t *s, unsigned count) {
    segment_link_t *l = &pool.links[segment_index(s)];
    l->run_count = count;
    uintptr_t old = atomic_load_explicit(&sh->pending, memory_order_relaxed);
    do l->queue_next = (segment_t *)old;
    while (!atomic_compare_exchange_weak_explicit(&sh->pending, &old, (uintptr_t)s, memory_order_release,
                                                  memory_order_relaxed));
}

void segment_recycle(segment_t *s, unsigned count) {
    if (segment_retain_stale()) segment_retain_update(); /* outside the lock: it reads /proc */
    for (unsigned i = 0; i < count; i++) {
        s[i].kind = SEGMENT_FREE;
        s[i].heap = NULL;
        s[i].head_distance = 0;
        s[i].slab_count = 0;
        s[i].free = NULL;
        s[i].used = 0;
        __atomic_store_n(&s[i].owner, 0, __ATOMIC_RELAXED);
        s[i].allocs = 0;
    }
    region_t *r = &pool.regions[segment_index(s) / pool.region_segments];
    /* r holds these segments, so it is not wholly free and cannot move to
     * another shard: its shard, read before the lock, is still its own. */
    segment_shard_t *sh = segment_region_shard(r);
    if (segment_cache_push(sh, r, s, count)) return;
    if (!segment_shard_trylock(sh)) {
        segment_pending_push(sh, s, count);
        /* The holder takes it, or it let go already and the claim did. */
        if (segment_pending_claim(sh)) segment_shard_unlock(sh);
        return;
    }
    segment_return_locked(sh, s, count);
    segment_purge_expired_locked(sh);
    segment_shard_unlock(sh);
}

/* ---- Statistics -------------------------------------------------------------- */

/* Segments handed out, the sum of the shards' peaks (an upper bound of the
 * pool's peak when shards peak at different times, at most the capacity), and
 * the shard locks' contention; each shard read under its lock. */
void segment_counts(segment_counts_t *out) {
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < pool.shard_count; i++) {
        segment_shard_t *sh = &pool.shards[i];
        segment_shard_lock(sh);
        size_t cached = atomic_load_explicit(&sh->runs_held, memory_order_relaxed);
        out->out += sh->segments_out > cached ? sh->segments_out - cached : 0;
        out->peak += sh->segments_peak;
        out->locks.acquired += sh->lock_count.acquired;
        out->locks.contended += sh->lock_count.contended;
        out->deferred += sh->pending_runs;
        out->runs_cached += atomic_load_explicit(&sh->runs_cached, memory_order_relaxed);
        out->runs_reused += atomic_load_explicit(&sh->runs_reused, memory_order_relaxed);
        segment_shard_unlock(sh);
    }
    if (out->peak > pool.capacity) out->peak = pool.capacity;
}

/* ---- fork ---------------------------------------------------------------------- */

void segment_fork_prepare(void) {
    for (unsigned i = 0; i < pool.shard_count; i++) pthread_mutex_lock(&pool.shards[i].lock);
    pthread_mutex_lock(&pool.arena_lock);
}

void segment_fork_parent(void) {
    pthread_mutex_unlock(&pool.arena_lock);
    for (unsigned i = pool.shard_count; i-- > 0;) {
        segment_shard_t *sh = &pool.shards[i];
        pthread_mutex_unlock(&sh->lock);
        if (segment_pending_claim(sh)) segment_shard_unlock(sh); /* runs recycled meanwhile */
    }
}

/* In the child of fork: the locks were held by the forking thread, and other
 * threads of the parent may have had regions off every list (committing,
 * purging, moving to another shard).  Every shard's lists are rebuilt from
 * the regions themselves.  A region being committed or purged is treated as
 * purged: committing it again makes it writable whatever state the system
 * call left it in.  A region claimed fresh a moment before the fork, before
 * its bitmap was set, looks full and stays unused in the child. */
void segment_fork_child(void) {
    pthread_mutex_init(&pool.arena_lock, NULL);
    for (unsigned i = 0; i < pool.shard_count; i++) {
        segment_shard_t *sh = &pool.shards[i];
        /* Runs recycled while the parent held the lock go back to their
         * bitmaps first: the lists are rebuilt from those below. */
        segment_t *s = (segment_t *)atomic_exchange(&sh->pending, 0);
        for (segment_t *next; s; s = next) {
            segment_link_t *l = &pool.links[segment_index(s)];
            size_t index = segment_index(s);
            region_t *r = &pool.regions[index / pool.region_segments];
            next = l->queue_next;
            segment_mark(r, index % pool.region_segments, l->run_count, 1);
            r->free_count += l->run_count;
        }
        /* So do the runs in its cache (the stacks are whole: a push or a
         * pop is one compare-and-swap; a run a thread of the parent had
         * just popped stays out, a bounded leak). */
        for (unsigned kind = 0; kind < POOL_REGION_KINDS; kind++)
            for (unsigned len = 1; len <= SEGPOOL_MAX_SLAB; len++)
                for (uint32_t top = segment_cache_take(sh, kind, len); top != 0;) {
                    size_t index = top - 1;
                    region_t *r = &pool.regions[index / pool.region_segments];
                    top = atomic_load(&pool.links[index].run_next);
                    segment_mark(r, index % pool.region_segments, len, 1);
                    r->free_count += len;
                }
        atomic_store(&sh->runs_held, 0);
        pthread_mutex_init(&sh->lock, NULL);
        memset(sh->bins, 0, sizeof sh->bins);
        memset(sh->bins_nonempty, 0, sizeof sh->bins_nonempty);
        sh->free_regions_head = sh->free_regions_tail = sh->purged = NULL;
        sh->free_regions_count = 0;
        sh->segments_out = 0;
    }
    size_t fresh = pool_regions_fresh();
    for (size_t i = 0; i < fresh; i++) {
        region_t *r = &pool.regions[i];
        segment_shard_t *sh = segment_region_shard(r);
        if (r->state == REGION_PURGING) segment_committed_add(-1);
        if (r->state == REGION_RESERVED || r->state == REGION_COMMITTING) segment_mark_all_free(r);
        /* A parent thread may have marked it unmapped and not yet unmapped
         * it, or reserved it again and not yet cleared the mark: unmapped
         * it is, as marked (a no-op if it is gone already). */
        if (r->unmapped && !r->lost) os_release(arena_region_start(r), SEGPOOL_REGION_SIZE);
        if (r->state != REGION_COMMITTED) {
            r->state = REGION_PURGED;
            if (!r->lost) region_list_push(&sh->purged, r);
            continue;
        }
        segment_region_insert_locked(sh, r);
        sh->segments_out += pool.region_segments - r->free_count;
    }
    atomic_store(&pool.moves_started, atomic_load(&pool.moves_finished));
}

/* ---- Address space back under RLIMIT_AS ----------------------------------------- */

/* Unmap up to want of sh's purged regions that are still mapped: taken off
 * the stack under the lock, unmapped without it, put back.  Returns how many. */
static size_t segment_release_purged(segment_shard_t *sh, size_t want) {
    region_t *taken = NULL;
    size_t count = 0;
    segment_shard_lock(sh);
    for (region_t *r = sh->purged, *next; r != NULL && count < want; r = next) {
        next = r->next;
        if (r->unmapped) continue;
        region_list_remove(&sh->purged, r);
        segment_move_start(); /* still REGION_PURGED: not committed, for a fork child too */
        r->next = taken;
        taken = r;
        count++;
    }
    segment_shard_unlock(sh);
    size_t released = 0;
    for (region_t *r = taken, *next; r != NULL; r = next) {
        next = r->next;
        released += arena_release_region(r) == 0;
        segment_shard_lock(sh);
        region_list_push(&sh->purged, r);
        segment_move_end();
        segment_shard_unlock(sh);
    }
    return released;
}

int segment_space_limited(void) { return os_as_limit() != UINT64_MAX || os_data_limit() != UINT64_MAX; }

void segment_limit_seen(void) { atomic_store_explicit(&pool.slabs_small, 1, memory_order_relaxed); }

int segment_release_space(void) {
    if (!pool_ready() || !segment_space_limited()) return -1;
    segment_limit_seen();
    /* The wholly free regions the pool keeps committed count against both
     * limits: purged first. */
    size_t given = segment_trim();
    /* Under RLIMIT_AS a purged region counts too: every one is unmapped (a
     * program that ran out of address space once is likely to again, and one
     * region at a time would cost a trim and a failed glibc call per 2 MiB). */
    size_t released = 0;
    if (os_as_limit() != UINT64_MAX && arena_may_release())
        for (unsigned i = 0; i < pool.shard_count; i++) released += segment_release_purged(&pool.shards[i], SIZE_MAX);
    return given || released ? 0 : -1;
}

/* ---- Trim (malloc_trim, segpool_trim) ---------------------------------------- */

/* Give every wholly free committed region back to the OS now, whatever the
 * decay; stops at the first the OS refuses.  Returns the bytes given back. */
size_t segment_trim(void) {
    size_t given = 0;
    for (unsigned i = 0; i < pool.shard_count; i++) {
        segment_shard_t *sh = &pool.shards[i];
        region_t *r;
        segment_shard_lock(sh);
        segment_cache_drain_locked(sh);
        while ((r = sh->free_regions_tail) != NULL && segment_purge_locked(sh, r) == 0) given += SEGPOOL_REGION_SIZE;
        segment_shard_unlock(sh);
    }
    return given;
}
