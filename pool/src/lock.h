/*
 * lock.h - the allocator's mutexes, taken through lock_acquire and
 * lock_release so that a thread can never wait for a lock it holds itself.
 *
 * That happens when a signal handler calls malloc or free while its thread
 * is inside one of the allocator's locked slow paths: glibc's malloc may
 * crash there, and a plain mutex would hang the program for ever.  Each
 * thread keeps the few locks it holds (at most LOCK_HELD_MAX: the deepest
 * nesting is pool.heaps_lock -> heap lock -> a pool shard's lock); taking one of them
 * again aborts with "segshim: malloc(): re-entered from a signal handler".
 * A lock is in the set from before it is taken to after it is released
 * (lock_note_held): a handler that lands between the mutex call and the
 * bookkeeping found the set without it and waited for ever (a 100 us
 * SIGALRM did so once in CI, hardening.signal_reentry).  So a handler that
 * interrupts its thread while it waits for the lock aborts too.
 * Only slow paths take locks, so the bookkeeping costs the fast paths nothing.
 *
 * The fork handlers (heap.c) take and reset the locks directly: in the child
 * every lock is initialized afresh.
 */
#ifndef SEGPOOL_LOCK_H
#define SEGPOOL_LOCK_H

#include <pthread.h>

#include "types.h"

#define LOCK_HELD_MAX 8

typedef struct lock_held_s {
    pthread_mutex_t *held[LOCK_HELD_MAX];
    unsigned count;
} lock_held_t;

extern SEGPOOL_TLS lock_held_t tls_locks_held SEGPOOL_HIDDEN;

SEGPOOL_COLD __attribute__((noreturn)) void lock_reentered(pthread_mutex_t *m);

/* lock_count_t, the counters of a lock or a family of locks: types.h. */

/* m joins the set before the mutex is taken and leaves it only after it is
 * released, so that the set is a superset of the mutexes the thread holds
 * at every instruction: a signal handler that interrupts the thread anywhere
 * in lock_acquire or lock_release finds m and aborts rather than waiting on
 * it for ever.  The slot is reserved (count) before it is written and
 * cleared on removal, so that a handler's own acquire and release, which use
 * the slots above count and give them back, never overwrite it. */
static inline void lock_note_held(lock_held_t *t, pthread_mutex_t *m) {
    unsigned i = t->count;
    t->count = i + 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (i < LOCK_HELD_MAX) t->held[i] = m;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void lock_forget_held(lock_held_t *t, pthread_mutex_t *m) {
    unsigned n = t->count < LOCK_HELD_MAX ? t->count : LOCK_HELD_MAX;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    for (unsigned i = n; i-- > 0;) {
        if (t->held[i] == m) {
            t->held[i] = t->held[n - 1]; /* there twice for a moment: still a superset */
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            t->held[n - 1] = NULL;
            break;
        }
    }
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->count--;
}

/* Take m, counting in c (NULL: not counted).  A trylock first tells a
 * contended acquisition from a free one at no extra cost when it is free. */
static inline void lock_acquire_counted(pthread_mutex_t *m, lock_count_t *c) {
    lock_held_t *t = &tls_locks_held;
    for (unsigned i = 0; i < t->count && i < LOCK_HELD_MAX; i++)
        if (unlikely(t->held[i] == m)) lock_reentered(m);
    lock_note_held(t, m); /* first: see lock_note_held */
    int contended = pthread_mutex_trylock(m) != 0;
    if (contended) pthread_mutex_lock(m);
    if (c) {
        c->acquired++;
        c->contended += (uint64_t)contended;
    }
}

static inline void lock_acquire(pthread_mutex_t *m) { lock_acquire_counted(m, NULL); }

/* Take m only if it is free now: 1 when taken (counted in c), 0 when busy.
 * A held lock of the calling thread counts as busy (never re-entered). */
static inline int lock_try_counted(pthread_mutex_t *m, lock_count_t *c) {
    lock_held_t *t = &tls_locks_held;
    for (unsigned i = 0; i < t->count && i < LOCK_HELD_MAX; i++)
        if (t->held[i] == m) return 0;
    lock_note_held(t, m);
    if (pthread_mutex_trylock(m) != 0) {
        lock_forget_held(t, m);
        return 0;
    }
    if (c) c->acquired++;
    return 1;
}

static inline void lock_release(pthread_mutex_t *m) {
    /* Unlocked first, forgotten after (see lock_note_held); locks are
     * released in any order. */
    pthread_mutex_unlock(m);
    lock_forget_held(&tls_locks_held, m);
}

/* The calling thread holds no allocator lock (the child of fork starts so). */
static inline void lock_forget_all(void) { tls_locks_held.count = 0; }

#endif /* SEGPOOL_LOCK_H */
