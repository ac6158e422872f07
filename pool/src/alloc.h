/*
 * alloc.h - the allocation and free fast paths, inline so that the shim's
 * malloc and free are one function each with no call on the fast path.
 *
 * malloc: budget about 10 instructions and one branch to a slow path: load
 * the thread's heap, map the size to its class (one table load), pop the
 * class's current segment's free list.  Everything rare (empty free list, a
 * thread's first call, the pool not yet set up) is heap_alloc_slow.
 *
 * free: budget about 20 instructions: find the segment from the address (side
 * table, a slab's tail points back to its head), check the pointer is a block
 * start (multiply by a per-class magic), check the block's first word is not
 * a free-list link (then it may be a double free: heap_free_checked decides
 * exactly), push on the segment's free list, and take the slow path only when
 * the segment became empty or was full.  A block of another thread's segment
 * goes to heap_free_remote.
 */
#ifndef SEGPOOL_ALLOC_H
#define SEGPOOL_ALLOC_H

#include "pool.h"
#include "sizeclass.h"

SEGPOOL_INLINE block_t *alloc_decode(uintptr_t link) { return (block_t *)(link ^ pool.key); }
SEGPOOL_INLINE uintptr_t alloc_encode(const block_t *b) { return (uintptr_t)b ^ pool.key; }

/* Nonzero when p is inside the arena. */
SEGPOOL_INLINE int alloc_owns(const void *p) { return (uintptr_t)p - pool.base < pool.size; }

/* A block of class c from heap h, or NULL when the pool cannot serve it. */
SEGPOOL_INLINE void *alloc_class(heap_t *h, unsigned c) {
    segment_t *s = h->current[c];
    block_t *b = s->free;
    if (unlikely(b == NULL)) return heap_alloc_slow(h, c);
    s->free = alloc_decode(b->next_encoded);
    b->next_encoded = 0; /* no stale link left for alloc_looks_free to see */
    s->used++;
    h->requests[c]++;
    return b;
}

/* A block of at least size bytes; size <= pool.small_max. */
SEGPOOL_INLINE void *alloc_small(size_t size) { return alloc_class(tls_heap, sizeclass_of(size)); }

/* A block first word that decodes to NULL or to an address in the block's own
 * region is (almost surely) on a free list: a free of it would be a double
 * free.  User data matches only by chance against a random 64-bit key. */
SEGPOOL_INLINE int alloc_looks_free(const block_t *b) {
    uintptr_t link = b->next_encoded ^ pool.key;
    return link == 0 || ((link ^ (uintptr_t)b) >> SEGPOOL_REGION_SHIFT) == 0;
}

/* Push b on s's free list; s belongs to h and the caller acts for h. */
SEGPOOL_INLINE void alloc_free_local(heap_t *h, segment_t *s, block_t *b) {
    b->next_encoded = alloc_encode(s->free);
    s->free = b;
    /* --used is 0 (segment empty) or has SEGMENT_FULL: one compare for both */
    if (unlikely(--s->used - 1u >= SEGMENT_FULL - 1u)) heap_free_slow(h, s);
}

/* Free p, which lies inside the arena. */
SEGPOOL_INLINE void alloc_free(void *p) {
    segment_t *s = segment_of(p);
    heap_t *h = tls_heap;
    block_t *b = (block_t *)p;
    if (unlikely(s->heap != h)) {
        heap_free_remote(s, b);
        return;
    }
    uint64_t offset = (uint64_t)((uint8_t *)p - s->start);
    if (unlikely(offset * s->div_magic > s->div_magic - 1 || alloc_looks_free(b))) {
        heap_free_checked(h, s, b);
        return;
    }
    alloc_free_local(h, s, b);
}

#endif /* SEGPOOL_ALLOC_H */
