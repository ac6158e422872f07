/*
 * segment.c - the global segment pool (Flink's NetworkBufferPool).
 *
 * Capacity: pool size / segment size segments, in region_count regions of
 * region_segments each.  Every region's free segments are a bitmap.  Regions
 * are kept where a request finds them in this order of preference:
 *
 *   1. bins[k], 0 < k < region_segments: partly used regions with k free
 *      segments; the lowest k is taken first (the fullest region), so that
 *      frees concentrate in few regions and whole regions come free;
 *   2. the empty list: committed, wholly free regions, newest first (still
 *      warm); the oldest is purged after SEGSHIM_DECAY_MS;
 *   3. the purged stack: given back to the OS, reusable without a syscall;
 *   4. never-used regions, in address order (committed on first use).
 *
 * All of it is guarded by pool.lock.  Purging (MADV_DONTNEED of a whole
 * region) runs with the lock dropped, on a region taken off every list
 * (REGION_PURGING), either in the purger thread, started the first time a
 * region comes free, or lazily on the next request or recycle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "os.h"
#include "pool.h"

/* ---- Region lists (pool.lock held) ------------------------------------------ */

static void segment_list_push(region_t **head, region_t *r) {
    r->prev = NULL;
    r->next = *head;
    if (*head) (*head)->prev = r;
    *head = r;
}

static void segment_list_remove(region_t **head, region_t *r) {
    if (r->prev) r->prev->next = r->next;
    else *head = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* Put r on the list its free count says; a full region is on none. */
static void segment_region_insert_locked(region_t *r) {
    size_t k = r->free_count;
    if (k == 0) return;
    if (k == pool.region_segments) {
        r->freed_at_ms = os_now_ms();
        segment_list_push(&pool.empty_head, r);
        if (!pool.empty_tail) pool.empty_tail = r;
        return;
    }
    segment_list_push(&pool.bins[k], r);
    pool.bins_nonempty[k / 64] |= (uint64_t)1 << (k % 64);
}

static void segment_region_remove_locked(region_t *r) {
    size_t k = r->free_count;
    if (k == 0) return;
    if (k == pool.region_segments) {
        if (pool.empty_tail == r) pool.empty_tail = r->prev;
        segment_list_remove(&pool.empty_head, r);
        return;
    }
    segment_list_remove(&pool.bins[k], r);
    if (!pool.bins[k]) pool.bins_nonempty[k / 64] &= ~((uint64_t)1 << (k % 64));
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

/* Give r (wholly free, on the empty list) back to the OS.  Drops and retakes
 * pool.lock around the system call.  If the OS refuses, r stays committed
 * and goes back on the empty list, to be tried again after another decay. */
static int segment_purge_locked(region_t *r) {
    segment_region_remove_locked(r);
    r->state = REGION_PURGING;
    pthread_mutex_unlock(&pool.lock);
    int rc = arena_purge_region(r);
    pthread_mutex_lock(&pool.lock);
    if (rc != 0) {
        r->state = REGION_COMMITTED;
        segment_region_insert_locked(r); /* with a new timestamp */
        return -1;
    }
    r->state = REGION_PURGED;
    pool.regions_committed--;
    segment_list_push(&pool.purged, r);
    pool.regions_purged++;
    return 0;
}

/* Purge every region that has been wholly free for the decay time. */
static void segment_purge_expired_locked(void) {
    int64_t decay = pool.config.decay_ms;
    if (decay < 0) return;
    uint64_t now = os_now_ms();
    region_t *r;
    while ((r = pool.empty_tail) != NULL && now - r->freed_at_ms >= (uint64_t)decay)
        if (segment_purge_locked(r) != 0) break;
}

void segment_purge_expired(void) {
    pthread_mutex_lock(&pool.lock);
    segment_purge_expired_locked();
    pthread_mutex_unlock(&pool.lock);
}

static void *segment_purger_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        region_t *oldest = pool.empty_tail;
        if (!oldest) {
            pthread_cond_wait(&pool.purge_cond, &pool.lock);
            continue;
        }
        uint64_t deadline = oldest->freed_at_ms + (uint64_t)pool.config.decay_ms;
        uint64_t now = os_now_ms();
        if (now < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait_ms = deadline - now + 5; /* the coarse clock lags a tick */
            ts.tv_sec += (time_t)(wait_ms / 1000);
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&pool.purge_cond, &pool.lock, &ts);
            continue;
        }
        segment_purge_expired_locked();
    }
    return NULL;
}

/* Start the purger once, with every signal blocked so that none of the
 * program's signals is delivered to it.  pthread_create allocates, so this
 * runs only where the caller holds no allocator lock: segment_recycle just
 * sets pool.purger_wanted, and segment_purger_poll, called at such points,
 * starts it.  If it fails, purging stays lazy. */
void segment_purger_start(void) {
    atomic_store_explicit(&pool.purger_wanted, 0, memory_order_relaxed);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pool.purger_started, &expected, 1)) return;
    int saved = errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_t thread;
    if (pthread_create(&thread, &attr, segment_purger_main, NULL) == 0) {
#ifdef __GLIBC__
        pthread_setname_np(thread, "segshim-purge");
#endif
    } else {
        atomic_store(&pool.purger_started, 2);
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
}

/* ---- Request and recycle ---------------------------------------------------------- */

/* pool.lock, and the purger's condition on the monotonic clock. */
static void segment_locks_init(void) {
    pthread_mutex_init(&pool.lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool.purge_cond, &attr);
    pthread_condattr_destroy(&attr);
}

int segment_pool_init(void) {
    pool.capacity = pool.region_count * pool.region_segments;
    pool.segments = os_alloc_meta(pool.capacity * sizeof(segment_t));
    pool.links = os_alloc_meta(pool.capacity * sizeof(segment_link_t));
    pool.regions = os_alloc_meta(pool.region_count * sizeof(region_t));
    if (!pool.segments || !pool.links || !pool.regions) return -1;
    segment_locks_init();
    return 0;
}

/* A region with a free run of count segments, taken off its list. */
static region_t *segment_pick_region_locked(unsigned count) {
    if (count == 1) {
        for (size_t w = 0; w < SEGPOOL_MAX_REGION_SEGMENTS / 64; w++) {
            if (pool.bins_nonempty[w]) {
                region_t *r = pool.bins[w * 64 + (size_t)__builtin_ctzll(pool.bins_nonempty[w])];
                segment_region_remove_locked(r);
                return r;
            }
        }
    } else {
        unsigned looked = 0;
        for (size_t k = count; k < pool.region_segments && looked < 64; k++) {
            for (region_t *r = pool.bins[k]; r && looked < 64; r = r->next, looked++) {
                if (segment_find_run(r, count) >= 0) {
                    segment_region_remove_locked(r);
                    return r;
                }
            }
        }
    }
    region_t *r = pool.empty_head;
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
        if (arena_commit_region(r) != 0) return NULL; /* counted as exhaustion */
        if (fresh) pool.regions_fresh++;
        else segment_list_remove(&pool.purged, r);
        if (r->state != REGION_COMMITTED) pool.regions_committed++;
        r->state = REGION_COMMITTED;
        if (pool.regions_committed > pool.regions_peak) pool.regions_peak = pool.regions_committed;
        return r;
    }
    return NULL;
}

segment_t *segment_request(unsigned count) {
    pthread_mutex_lock(&pool.lock);
    segment_purge_expired_locked();
    region_t *r = segment_pick_region_locked(count);
    segment_t *s = NULL;
    if (r) {
        long first = segment_find_run(r, count);
        segment_mark(r, (size_t)first, count, 0);
        r->free_count -= count;
        segment_region_insert_locked(r);
        pool.segments_out += count;
        if (pool.segments_out > pool.segments_peak) pool.segments_peak = pool.segments_out;
        s = &pool.segments[(size_t)(r - pool.regions) * pool.region_segments + (size_t)first];
    }
    pthread_mutex_unlock(&pool.lock);
    return s;
}

void segment_recycle(segment_t *s, unsigned count) {
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
    pthread_mutex_lock(&pool.lock);
    segment_region_remove_locked(r);
    segment_mark(r, index % pool.region_segments, count, 1);
    r->free_count += count;
    segment_region_insert_locked(r);
    pool.segments_out -= count;
    if (r->free_count == pool.region_segments) {
        if (pool.config.decay_ms == 0) segment_purge_locked(r);
        else if (pool.config.decay_ms > 0) {
            if (atomic_load_explicit(&pool.purger_started, memory_order_relaxed) == 0)
                atomic_store_explicit(&pool.purger_wanted, 1, memory_order_relaxed);
            pthread_cond_signal(&pool.purge_cond);
        }
    }
    segment_purge_expired_locked();
    pthread_mutex_unlock(&pool.lock);
}

/* In the child of fork: the locks were held by the forking thread, and the
 * purger is gone.  A region the purger was purging is simply treated as
 * purged. */
void segment_fork_child(void) {
    segment_locks_init();
    atomic_store(&pool.purger_started, 0);
    atomic_store(&pool.purger_wanted, pool.empty_tail != NULL && pool.config.decay_ms > 0);
    for (size_t i = 0; i < pool.regions_fresh; i++) {
        region_t *r = &pool.regions[i];
        if (r->state == REGION_PURGING) {
            r->state = REGION_PURGED;
            pool.regions_committed--;
            segment_list_push(&pool.purged, r);
        }
    }
}
