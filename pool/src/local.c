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
    segment_t *out_list; /* handed out, linked through pool.links (segment_list_*) */
};

/* ---- Whole segments ----------------------------------------------------------- */

static void *local_take_global(segpool_local_t *owner) {
    if (!pool_ready() && pool_init() != 0) return NULL;
    segment_t *s = segment_request(1, 1); /* whole segments, used densely: huge pages pay */
    if (!s) return NULL;
    s->kind = SEGMENT_USER;
    s->dirty = 1;
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
    segment_t *s = segment_at(segment);
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
    segment_list_push(&lp->out_list, local_check(segment, lp, "local pool: segment of another pool"));
    lp->out++;
}

static void local_out_remove(segpool_local_t *lp, segment_t *s) {
    segment_list_remove(&lp->out_list, s);
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

/* ---- Deadlines (CLOCK_MONOTONIC, which the condition variable waits on) ---- */

#define LOCAL_NS_PER_S 1000000000L
#define LOCAL_NS_PER_MS 1000000L
/* Below max a waiter looks at the global pool again this often: nothing
 * signals it when another part of the program recycles there. */
#define LOCAL_POLL_MS 10

/* Now plus ms. */
static struct timespec local_deadline(long ms) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * LOCAL_NS_PER_MS;
    if (t.tv_nsec >= LOCAL_NS_PER_S) {
        t.tv_sec++;
        t.tv_nsec -= LOCAL_NS_PER_S;
    }
    return t;
}

static int local_before(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

SEGPOOL_API void *segpool_local_request_timeout(segpool_local_t *lp, long timeout_ms) {
    struct timespec deadline = local_deadline(timeout_ms > 0 ? timeout_ms : 0);
    lock_acquire(&lp->lock);
    void *seg;
    while ((seg = local_request_locked(lp)) == NULL) {
        if (timeout_ms == 0) break;
        struct timespec until = deadline;
        if (lp->owned < lp->max || timeout_ms < 0) {
            until = local_deadline(LOCAL_POLL_MS);
            if (timeout_ms > 0 && local_before(&deadline, &until)) until = deadline;
        }
        lp->waiters++;
        int rc = pthread_cond_timedwait(&lp->cond, &lp->lock, &until);
        lp->waiters--;
        if (rc == ETIMEDOUT && timeout_ms > 0) {
            struct timespec now = local_deadline(0);
            if (!local_before(&now, &deadline)) {
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
        segment_t *s = segment_at(seg);
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
    os_free_meta(lp, sizeof *lp);
}
