/*
 * invariants.h - checked invariants: SEGPOOL_ASSERT and the structure checkers.
 *
 * SEGPOOL_ASSERT(cond) states a fact a slow path relies on; when it does not
 * hold the process prints "segshim: assertion failed: <cond> (file:line)"
 * and aborts, without allocating (text.h, write(2)).  It compiles to nothing
 * when NDEBUG is defined (Release, RelWithDebInfo), so the shipped library
 * pays nothing; Debug builds and the sanitizer builds of scripts/test.sh
 * (Debug) check.  SEGPOOL_ASSERT_EXPENSIVE is for checks that walk whole
 * structures: on in the same builds unless SEGPOOL_CHECK_LEVEL is set to 1.
 *
 * check_heap and check_pool verify the invariants types.h states for a
 * heap's segments and for the global segment pool.  They are compiled in
 * every build (the unit tests call them on purpose-made corruptions) but
 * called from the slow paths (heap_collect, thread exit, segpool_collect,
 * segpool_trim) only through SEGPOOL_CHECK_HEAP / SEGPOOL_CHECK_POOL, which
 * are SEGPOOL_ASSERT_EXPENSIVE-level.
 */
#ifndef SEGPOOL_INVARIANTS_H
#define SEGPOOL_INVARIANTS_H

#include "pool.h"

#ifndef SEGPOOL_CHECK_LEVEL
#ifdef NDEBUG
#define SEGPOOL_CHECK_LEVEL 0
#else
#define SEGPOOL_CHECK_LEVEL 2
#endif
#endif

/* Report "segshim: assertion failed: expr (file:line)" and abort. */
SEGPOOL_COLD __attribute__((noreturn)) void check_failed(const char *expr, const char *file, int line);

/* Always checked: for the checkers themselves. */
#define CHECK_THAT(cond) (likely(cond) ? (void)0 : check_failed(#cond, __FILE__, __LINE__))

#if SEGPOOL_CHECK_LEVEL >= 1
#define SEGPOOL_ASSERT(cond) CHECK_THAT(cond)
#else
#define SEGPOOL_ASSERT(cond) ((void)0)
#endif

#if SEGPOOL_CHECK_LEVEL >= 2
#define SEGPOOL_ASSERT_EXPENSIVE(cond) CHECK_THAT(cond)
#define SEGPOOL_CHECK_HEAP(h) check_heap(h)
#define SEGPOOL_CHECK_POOL() check_pool()
#else
#define SEGPOOL_ASSERT_EXPENSIVE(cond) ((void)0)
#define SEGPOOL_CHECK_HEAP(h) ((void)0)
#define SEGPOOL_CHECK_POOL() ((void)0)
#endif

/* Every invariant of h's segments (types.h); the caller is h's thread or
 * holds h's lock.  heap_none and orphan heaps pass unchecked. */
void check_heap(const heap_t *h);

/* Every invariant of the segment pool p (the regions, bins, free-region list
 * and purged stack, and the counts); the caller holds every shard lock when p is
 * &pool. */
void check_pool_state(const pool_t *p);

/* check_pool_state(&pool) under every shard lock, once the pool is ready and no region is in transit. */
void check_pool(void);

#endif /* SEGPOOL_INVARIANTS_H */
