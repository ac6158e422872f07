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
 * All of it is guarded by pool.lock.
 *
 * Giving memory back.  segshim has no thread of its own: memory goes back to
 * the OS from the allocator's own calls.  At most pool.retain_regions wholly
 * free regions stay committed (SEGSHIM_RETAIN, capped by a sixteenth of the
 * memory available: segment_retain_update); the region that comes free past
 * that budget sends the oldest back at once.  The ones within the budget go back once they have been free for
 * SEGSHIM_DECAY_MS, checked on every request and recycle (and by
 * segpool_collect and malloc_trim).  A purge (decommit: the region's pages
 * are dropped and it stops being writable, so it no longer counts against
 * RLIMIT_DATA) runs with the lock dropped, on a region taken off every list
 * (REGION_PURGING).  Nothing here calls into glibc beyond system calls, so a
 * free made from inside glibc (a thread's exit, pthread_join) is safe.
 */
#define _GNU_SOURCE
#include <string.h>

#include "invariants.h"
#include "lock.h"
#include "os.h"
#include "pool.h"

/* Regions a request for a run of segments looks at in the bins before it
 * takes a wholly free one instead. */
#define SEGMENT_RUN_SEARCH_MAX 64

/* ---- Region lists (pool.lock held) ------------------------------------------ */

#define REGION_NEXT(r) ((r)->next)
#define REGION_PREV(r) ((r)->prev)
LIST_DEFINE(region_list, region_t, REGION_NEXT, REGION_PREV)

/* The bins of r's kind: on huge pages or not. */
static unsigned segment_region_kind(const region_t *r) { return r->pages != PAGES_SMALL ? POOL_REGION_HUGE : POOL_REGION_SMALL; }

/* Put r on the list its free count says; a full region is on none. */
static void segment_region_insert_locked(region_t *r) {
    size_t k = r->free_count;
    if (k == 0) return;
    if (k == pool.region_segments) {
        r->freed_at_ms = os_now_ms();
        region_list_push(&pool.free_regions_head, r);
        if (!pool.free_regions_tail) pool.free_regions_tail = r;
        pool.free_regions_count++;
        return;
    }
    unsigned kind = segment_region_kind(r);
    region_list_push(&pool.bins[kind][k], r);
    pool.bins_nonempty[kind][k / 64] |= (uint64_t)1 << (k % 64);
}

static void segment_region_remove_locked(region_t *r) {
    size_t k = r->free_count;
    if (k == 0) return;
    if (k == pool.region_segments) {
        if (pool.free_regions_tail == r) pool.free_regions_tail = r->prev;
        region_list_remove(&pool.free_regions_head, r);
        pool.free_regions_count--;
        return;
    }
    unsigned kind = segment_region_kind(r);
    region_list_remove(&pool.bins[kind][k], r);
    if (!pool.bins[kind][k]) pool.bins_nonempty[kind][k / 64] &= ~((uint64_t)1 << (k % 64));
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

/* ---- Purging ----------------------------------------------------------------- */

/* Give r (wholly free, on the free-region list) back to the OS.  Drops and retakes
 * pool.lock around the system call.  If the OS refuses, r stays committed
 * and goes back on the free-region list, to be tried again after another decay. */
static int segment_purge_locked(region_t *r) {
    segment_region_remove_locked(r);
    r->state = REGION_PURGING;
    lock_release(&pool.lock);
    int rc = arena_purge_region(r);
    lock_acquire(&pool.lock);
    if (rc != 0) {
        r->state = REGION_COMMITTED;
        segment_region_insert_locked(r); /* with a new timestamp */
        return -1;
    }
    r->state = REGION_PURGED;
    pool.regions_committed--;
    region_list_push(&pool.purged, r);
    pool.regions_purged++;
    return 0;
}

/* Purge the wholly free regions past the retention budget, and those that
 * have been free for the decay time.  A region the OS refused to purge goes
 * back on the list with a new time stamp: the loop then stops at it. */
static void segment_purge_expired_locked(void) {
    int64_t decay = pool.config.decay_ms;
    if (decay < 0 || !pool.free_regions_tail) return;
    while (pool.free_regions_count > __atomic_load_n(&pool.retain_regions, __ATOMIC_RELAXED))
        if (segment_purge_locked(pool.free_regions_tail) != 0) return;
    uint64_t now = os_now_ms();
    region_t *r;
    while ((r = pool.free_regions_tail) != NULL && now - r->freed_at_ms >= (uint64_t)decay)
        if (segment_purge_locked(r) != 0) return;
}

void segment_purge_expired(void) {
    if (!pool.free_regions_tail) return; /* racy peek: nothing to do is the common case */
    lock_acquire(&pool.lock);
    segment_purge_expired_locked();
    lock_release(&pool.lock);
}

/* ---- Request and recycle ---------------------------------------------------------- */


int segment_pool_init(void) {
    pool.capacity = pool.region_count * pool.region_segments;
    pool.segments = os_alloc_meta(pool.capacity * sizeof(segment_t));
    pool.links = os_alloc_meta(pool.capacity * sizeof(segment_link_t));
    pool.regions = os_alloc_meta(pool.region_count * sizeof(region_t));
    if (!pool.segments || !pool.links || !pool.regions) return -1;
    pthread_mutex_init(&pool.lock, NULL);
    return 0;
}

/* The kind of region for a request that wants huge pages or not, in the
 * huge-page mode in force: with hugetlb every region is huge, with none every
 * region is small. */
static unsigned segment_kind(int huge) {
    if (pool.page_kind == PAGES_HUGETLB) return POOL_REGION_HUGE;
    if (pool.page_kind == PAGES_SMALL) return POOL_REGION_SMALL;
    return huge ? POOL_REGION_HUGE : POOL_REGION_SMALL;
}

/* A partly used region of the kind with a free run of count segments, the
 * fullest first, taken off its list; NULL if none. */
static region_t *segment_pick_partial_locked(unsigned count, unsigned kind) {
    if (count == 1) {
        for (size_t w = 0; w < SEGPOOL_MAX_REGION_SEGMENTS / 64; w++) {
            if (pool.bins_nonempty[kind][w]) {
                region_t *r = pool.bins[kind][w * 64 + (size_t)__builtin_ctzll(pool.bins_nonempty[kind][w])];
                segment_region_remove_locked(r);
                return r;
            }
        }
        return NULL;
    }
    unsigned looked = 0; /* bounded: past that many, a fresh region is cheaper than the search */
    for (size_t k = count; k < pool.region_segments && looked < SEGMENT_RUN_SEARCH_MAX; k++) {
        for (region_t *r = pool.bins[kind][k]; r && looked < SEGMENT_RUN_SEARCH_MAX; r = r->next, looked++) {
            if (segment_find_run(r, count) >= 0) {
                segment_region_remove_locked(r);
                return r;
            }
        }
    }
    return NULL;
}

/* A region with a free run of count segments, taken off its list.  The
 * other kind's partly used regions come last: the kinds are a preference, and
 * the pool is exhausted only when its capacity is. */
static region_t *segment_pick_region_locked(unsigned count, int huge) {
    unsigned kind = segment_kind(huge);
    region_t *r = segment_pick_partial_locked(count, kind);
    if (r) return r;
    /* A wholly free region, of the kind if one is (the list is short: at most
     * SEGSHIM_RETAIN's worth), else any. */
    r = pool.free_regions_head;
    for (region_t *e = r; e; e = e->next)
        if (segment_region_kind(e) == kind) {
            r = e;
            break;
        }
    if (r) {
        segment_region_remove_locked(r);
        return r;
    }
    if ((r = pool.purged) != NULL || pool.regions_fresh < pool.region_count || arena_grow_locked() == 0) {
        int fresh = r == NULL;
        if (fresh) {
            r = &pool.regions[pool.regions_fresh];
            r->free_count = (uint32_t)pool.region_segments;
            memset(r->free_map, 0, sizeof r->free_map);
            segment_mark(r, 0, (unsigned)pool.region_segments, 1);
        }
        r->huge_wanted = kind == POOL_REGION_HUGE;
        if (arena_commit_region(r) == 0) {
            if (fresh) pool.regions_fresh++;
            else region_list_remove(&pool.purged, r);
            if (r->state != REGION_COMMITTED) pool.regions_committed++;
            r->state = REGION_COMMITTED;
            if (pool.regions_committed > pool.regions_peak) pool.regions_peak = pool.regions_committed;
            return r;
        }
    }
    return segment_pick_partial_locked(count, !kind);
}

segment_t *segment_request(unsigned count, int huge) {
    lock_acquire(&pool.lock);
    segment_purge_expired_locked();
    region_t *r = segment_pick_region_locked(count, huge);
    segment_t *s = NULL;
    if (r) {
        long first = segment_find_run(r, count);
        SEGPOOL_ASSERT(first >= 0 && r->free_count >= count);
        segment_mark(r, (size_t)first, count, 0);
        r->free_count -= count;
        segment_region_insert_locked(r);
        pool.segments_out += count;
        if (pool.segments_out > pool.segments_peak) pool.segments_peak = pool.segments_out;
        s = &pool.segments[(size_t)(r - pool.regions) * pool.region_segments + (size_t)first];
    }
    lock_release(&pool.lock);
    return s;
}

/* The retention budget: SEGSHIM_RETAIN, and at most a sixteenth of the
 * memory available now (MemAvailable, a memory cgroup's room), so that a
 * program near its cgroup's limit is not killed for memory the pool holds.
 * Read again at most every SEGMENT_RETAIN_RECHECK_MS, as regions come free
 * and as glibc serves requests above one segment (segment_retain_poll). */
#define SEGMENT_RETAIN_RECHECK_MS 100
#define SEGMENT_RETAIN_SHARE 16 /* of the memory available */

void segment_retain_update(void) {
    uint64_t retain = (uint64_t)pool.config.retain, room = os_available_memory() / SEGMENT_RETAIN_SHARE;
    if (retain > room) retain = room;
    if (pool.config.decay_ms == 0) retain = 0;
    __atomic_store_n(&pool.retain_regions, (size_t)(retain >> SEGPOOL_REGION_SHIFT), __ATOMIC_RELAXED);
    __atomic_store_n(&pool.retain_checked_ms, os_now_ms(), __ATOMIC_RELAXED);
}

static int segment_retain_stale(void) {
    return os_now_ms() - __atomic_load_n(&pool.retain_checked_ms, __ATOMIC_RELAXED) >= SEGMENT_RETAIN_RECHECK_MS;
}

void segment_retain_poll(void) {
    if (!__atomic_load_n(&pool.free_regions_tail, __ATOMIC_RELAXED) || !segment_retain_stale()) return;
    segment_retain_update();
    segment_purge_expired();
}

void segment_recycle(segment_t *s, unsigned count) {
    if (segment_retain_stale()) segment_retain_update(); /* outside the lock: it reads /proc */
    for (unsigned i = 0; i < count; i++) {
        s[i].kind = SEGMENT_FREE;
        s[i].heap = NULL;
        s[i].slab_offset = 0;
        s[i].slab_count = 0;
        s[i].free = NULL;
        s[i].used = 0;
        __atomic_store_n(&s[i].owner, 0, __ATOMIC_RELAXED);
        s[i].allocs = 0;
    }
    size_t index = segment_index(s);
    region_t *r = &pool.regions[index / pool.region_segments];
    lock_acquire(&pool.lock);
    SEGPOOL_ASSERT(pool.segments_out >= count && r->free_count + count <= pool.region_segments);
    segment_region_remove_locked(r);
    segment_mark(r, index % pool.region_segments, count, 1);
    r->free_count += count;
    segment_region_insert_locked(r);
    pool.segments_out -= count;
    segment_purge_expired_locked();
    lock_release(&pool.lock);
}

/* In the child of fork: the lock was held by the forking thread.  A region
 * another thread of the parent was purging is treated as purged: committing
 * it again makes it writable whatever state the purge left it in. */
void segment_fork_child(void) {
    pthread_mutex_init(&pool.lock, NULL);
    for (size_t i = 0; i < pool.regions_fresh; i++) {
        region_t *r = &pool.regions[i];
        if (r->state == REGION_PURGING) {
            r->state = REGION_PURGED;
            pool.regions_committed--;
            region_list_push(&pool.purged, r);
        }
    }
}

/* ---- Trim (malloc_trim, segpool_trim) ---------------------------------------- */

/* Give every wholly free committed region back to the OS now, whatever the
 * decay; stops at the first the OS refuses.  Returns the bytes given back. */
size_t segment_trim(void) {
    size_t given = 0;
    region_t *r;
    lock_acquire(&pool.lock);
    while ((r = pool.free_regions_tail) != NULL && segment_purge_locked(r) == 0) given += SEGPOOL_REGION_SIZE;
    lock_release(&pool.lock);
    return given;
}
