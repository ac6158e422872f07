/*
 * local.c - whole segments for programs (Flink's NetworkBufferPool API) and
 * bounded local pools on top of the global pool (Flink's LocalBufferPool).
 *
 * A local pool owns `owned` segments of the global pool: the `min` it
 * reserved at creation, plus any it fetched since, never more than `max`.
 * Those not handed out are on its free stack (linked through their first
 * word: the memory is ours while it sits there).  Handed-out segments are on
 * a list through their metadata so that destroy can return them all.  A
 * recycle wakes one waiter; a segment beyond `min` with nobody waiting goes
 * back to the global pool.
 *
 * Lock order: a local pool's lock -> a pool shard's lock (through segment_*).
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "lock.h"
#include "os.h"

struct segpool_local_s {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t min, max;
    size_t owned;        /* free + out */
    size_t out;          /* handed out */
    size_t waiters;
    void *free;          /* stack of free segments */
    segment_t *out_list; /* handed out, through segment_t next/prev */
};

/* ---- Whole segments ----------------------------------------------------------- */

static void *local_take_global(segpool_local_t *owner) {
    if (!pool_ready() && pool_init() != 0) return NULL;
    segment_t *s = segment_request(1, 1); /* whole segments, used densely: huge pages pay */
    if (!s) return NULL;
    s->kind = SEGMENT_USER;
    s->local = owner;
    __atomic_add_fetch(&pool.segments_user, 1, __ATOMIC_RELAXED);
    return segment_address(segment_index(s));
}

static void local_give_global(segment_t *s) {
    __atomic_sub_fetch(&pool.segments_user, 1, __ATOMIC_RELAXED);
    segment_recycle(s, 1);
}

/* The metadata of a whole user segment, or a report and abort. */
static segment_t *local_check(const void *segment, segpool_local_t *owner, const char *who) {
    if (!segment || !alloc_owns(segment) || ((uintptr_t)segment & (pool.segment_size - 1)) != 0)
        alloc_report(who, segment);
    segment_t *s = &pool.segments[((uintptr_t)segment - pool.base) >> pool.segment_shift];
    if (s->kind != SEGMENT_USER || s->local != owner) alloc_report(who, segment);
    return s;
}

SEGPOOL_API size_t segpool_segment_size(void) {
    return (pool_ready() || pool_init() == 0) ? pool.segment_size : 0;
}

SEGPOOL_API size_t segpool_capacity(void) { return (pool_ready() || pool_init() == 0) ? pool.capacity : 0; }

SEGPOOL_API void *segpool_segment_request(void) { return local_take_global(NULL); }

SEGPOOL_API void segpool_segment_recycle(void *segment) {
    local_give_global(local_check(segment, NULL, "segpool_segment_recycle(): not a segment from segpool_segment_request"));
}

/* ---- Local pools ------------------------------------------------------------------- */

static segment_link_t *local_link(const segment_t *s) { return &pool.links[segment_index(s)]; }

static void local_out_push(segpool_local_t *lp, void *segment) {
    segment_t *s = local_check(segment, lp, "local pool: segment of another pool");
    local_link(s)->prev = NULL;
    local_link(s)->next = lp->out_list;
    if (lp->out_list) local_link(lp->out_list)->prev = s;
    lp->out_list = s;
    lp->out++;
}

static void local_out_remove(segpool_local_t *lp, segment_t *s) {
    segment_link_t *l = local_link(s);
    if (l->prev) local_link(l->prev)->next = l->next;
    else lp->out_list = l->next;
    if (l->next) local_link(l->next)->prev = l->prev;
    l->next = l->prev = NULL;
    lp->out--;
}

SEGPOOL_API segpool_local_t *segpool_local_create(size_t min_segments, size_t max_segments) {
    if (max_segments == 0 || min_segments > max_segments) {
        errno = EINVAL;
        return NULL;
    }
    if (!pool_ready() && pool_init() != 0) {
        errno = ENOMEM;
        return NULL;
    }
    segpool_local_t *lp = os_alloc_meta(sizeof *lp);
    if (!lp) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&lp->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&lp->cond, &attr);
    pthread_condattr_destroy(&attr);
    lp->min = min_segments;
    lp->max = max_segments;
    for (size_t i = 0; i < min_segments; i++) {
        void *seg = local_take_global(lp);
        if (!seg) {
            segpool_local_destroy(lp);
            errno = ENOMEM;
            return NULL;
        }
        *(void **)seg = lp->free;
        lp->free = seg;
        lp->owned++;
    }
    return lp;
}

/* A segment or NULL; lp->lock held. */
static void *local_request_locked(segpool_local_t *lp) {
    void *seg = lp->free;
    if (seg) {
        lp->free = *(void **)seg;
    } else if (lp->owned < lp->max) {
        seg = local_take_global(lp);
        if (!seg) return NULL;
        lp->owned++;
    } else {
        return NULL;
    }
    local_out_push(lp, seg);
    return seg;
}

SEGPOOL_API void *segpool_local_request(segpool_local_t *lp) {
    lock_acquire(&lp->lock);
    void *seg = local_request_locked(lp);
    lock_release(&lp->lock);
    return seg;
}

SEGPOOL_API void *segpool_local_request_timeout(segpool_local_t *lp, long timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    lock_acquire(&lp->lock);
    void *seg;
    while ((seg = local_request_locked(lp)) == NULL) {
        if (timeout_ms == 0) break;
        /* Below max the global pool was exhausted: nothing signals us when
         * another program part recycles there, so look again every 10 ms. */
        struct timespec until = deadline;
        if (lp->owned < lp->max || timeout_ms < 0) {
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += 10000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            if (timeout_ms > 0 && (until.tv_sec > deadline.tv_sec ||
                                   (until.tv_sec == deadline.tv_sec && until.tv_nsec > deadline.tv_nsec)))
                until = deadline;
        }
        lp->waiters++;
        int rc = pthread_cond_timedwait(&lp->cond, &lp->lock, &until);
        lp->waiters--;
        if (rc == ETIMEDOUT && timeout_ms > 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
                seg = local_request_locked(lp);
                break;
            }
        }
    }
    lock_release(&lp->lock);
    if (!seg) errno = ETIMEDOUT;
    return seg;
}

SEGPOOL_API void segpool_local_recycle(segpool_local_t *lp, void *segment) {
    lock_acquire(&lp->lock);
    segment_t *s = local_check(segment, lp, "segpool_local_recycle(): segment not handed out by this pool");
    if (local_link(s)->next == NULL && local_link(s)->prev == NULL && lp->out_list != s)
        alloc_report("segpool_local_recycle(): segment recycled twice", segment);
    local_out_remove(lp, s);
    if (lp->waiters == 0 && lp->owned > lp->min) {
        lp->owned--;
        s->local = NULL;
        local_give_global(s);
    } else {
        *(void **)segment = lp->free;
        lp->free = segment;
        pthread_cond_signal(&lp->cond);
    }
    lock_release(&lp->lock);
}

SEGPOOL_API size_t segpool_local_in_use(const segpool_local_t *lp) {
    return __atomic_load_n(&lp->out, __ATOMIC_RELAXED);
}

SEGPOOL_API void segpool_local_destroy(segpool_local_t *lp) {
    if (!lp) return;
    lock_acquire(&lp->lock);
    while (lp->free) {
        void *seg = lp->free;
        lp->free = *(void **)seg;
        segment_t *s = &pool.segments[((uintptr_t)seg - pool.base) >> pool.segment_shift];
        s->local = NULL;
        local_give_global(s);
    }
    while (lp->out_list) {
        segment_t *s = lp->out_list;
        local_out_remove(lp, s);
        s->local = NULL;
        local_give_global(s);
    }
    lock_release(&lp->lock);
    pthread_mutex_destroy(&lp->lock);
    pthread_cond_destroy(&lp->cond);
    os_release(lp, sizeof *lp);
}
