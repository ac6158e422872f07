/*
 * alloc.h - the allocation and free fast paths, inline so that the shim's
 * malloc and free are one function each with no call on the fast path.
 *
 * malloc: 25 instructions (gcc 12, x86-64) and one branch to a slow path:
 * load the thread's heap, find the segment of the size (for up to 1 KiB one
 * load from the heap's direct array, else through the class map: 9 more,
 * with sizes above the segment mapped to a class never served), check that
 * the head of its free list lies in the segment (which also catches the end
 * of the list, NULL) and carries the free tag, pop it and decode the next
 * link.  Everything rare (empty or corrupted free list, a thread's first
 * call, the pool not yet set up) is heap_alloc_slow.
 *
 * free: 29 instructions: find the segment from the address (side table)
 * and step back to its slab's head (one subtract: head_distance is 0 for a
 * head), check it is this thread's, check the pointer is a formatted block
 * (one multiply by a per-class magic and one compare, alloc_is_block_in)
 * and that the block does not carry the free tag (else heap_free_suspect
 * decides exactly whether it is a double free), push on the segment's free
 * list, and take the slow path only when a segment that is not current
 * became empty or was full.
 *
 * Free lists that cannot be steered.  A link stored in a free block is
 * encoded under the block's own address, ((next ^ key) * mul) ^ at modulo
 * 2^64, with a random key and a random odd multiplier drawn per process
 * (pool.link_key for slabs' lists, pool.kept_key for kept lists, and
 * pool.link_mul with its inverse).  Decoding undoes it: a write into a
 * freed block, whole or partial, decodes to an address that, but for a
 * chance of about one in 2^48, lies outside the segment, which the next pop
 * checks before handing it out (one subtract and one compare against the
 * slab's bounds, shared with the end-of-list test): malloc then aborts with
 * "malloc(): corrupted free list".  Every slow path that follows a link
 * checks it the same way.  The address makes a link good only where the
 * allocator wrote it: the words of one free block copied into another (a
 * program that reads freed memory and writes it elsewhere) decode there to
 * a scattered address too, since the difference of the two addresses goes
 * through the multiply.  A list's key is in its segment_t (link_key), on
 * the line the fast path reads anyway: loading it costs what loading the
 * global would.
 *
 * The free tag (see block_t) is a constant that fits an instruction's 32-bit
 * immediate: no load to store or compare it.  It only selects the frees that
 * need a closer look (heap_free_suspect): which list a tagged block is on,
 * if any, its link tells, decoded under each key (heap.c, "Double frees").
 */
#ifndef SEGPOOL_ALLOC_H
#define SEGPOOL_ALLOC_H

#include <string.h>

#include "pool.h"
#include "sizeclass.h"

/* Sign-extended 0xa110cf4e: a kernel address, an unlikely integer. */
#define ALLOC_FREE_TAG ((uintptr_t)(intptr_t)(int32_t)0xa110cf4e)

/* Lists end with NULL, which is outside every segment's bounds. */
SEGPOOL_INLINE int alloc_is_end(const block_t *b) { return b == NULL; }

/* The link to next as stored in the free block at, under key, and back (see
 * "Free lists" above). */
SEGPOOL_INLINE uintptr_t alloc_link_encode(uintptr_t key, const block_t *at, const block_t *next) {
    return (((uintptr_t)next ^ key) * pool.link_mul) ^ (uintptr_t)at;
}
SEGPOOL_INLINE block_t *alloc_link_decode(uintptr_t key, const block_t *at) {
    return (block_t *)(((at->next ^ (uintptr_t)at) * pool.link_mul_inverse) ^ key);
}

/* b's link to next on a list of s (a slab, or a kept list), and back. */
SEGPOOL_INLINE void alloc_link_set(const segment_t *s, block_t *b, const block_t *next) {
    b->next = alloc_link_encode(s->link_key, b, next);
}
SEGPOOL_INLINE block_t *alloc_link_next(const segment_t *s, const block_t *b) {
    return alloc_link_decode(s->link_key, b);
}

/* b lies in the blocks of s (a head); false for NULL and for segment_none,
 * whose span is 0. */
SEGPOOL_INLINE int alloc_in_slab(const segment_t *s, const block_t *b) {
    return (uintptr_t)b - s->block_start < s->span;
}

/* This thread's identity as segment_t.owner holds it: one load of %fs:0. */
SEGPOOL_INLINE uintptr_t alloc_thread_id(void) { return (uintptr_t)__builtin_thread_pointer(); }

/* segment_t.owner is read by every thread's free and written by the owning
 * thread (or for a dead heap): relaxed atomics, plain moves on x86-64.  No
 * reader can mistake it: it is either its own thread pointer or not. */
SEGPOOL_INLINE uintptr_t alloc_owner(const segment_t *s) { return __atomic_load_n(&s->owner, __ATOMIC_RELAXED); }
SEGPOOL_INLINE void alloc_set_owner(segment_t *s, uintptr_t tp) { __atomic_store_n(&s->owner, tp, __ATOMIC_RELAXED); }

/* Nonzero when p is inside the arena. */
SEGPOOL_INLINE int alloc_owns(const void *p) { return (uintptr_t)p - pool.base < pool.size; }

/* p, which lies in s's slab, is the start of one of the blocks formatted so
 * far (handed out or not): at a multiple k of block_size d from block_start,
 * with k below the count formatted.  One multiply and one compare test both.
 * With M = div_magic = floor(2^64 / d) + 1 and n = p - block_start = k*d + r
 * (0 <= r < d; n is below a slab, far below 2^32):
 *  - r == 0: n * M mod 2^64 = k * (d*M - 2^64) = k * div_step, and div_step
 *    is in (0, d], so this is below block_limit = count * div_step exactly
 *    when k < count (and never above a slab's bytes);
 *  - r > 0: n * M mod 2^64 >= M > 2^44, above any block_limit (the bound of
 *    Lemire, Kaser and Kurz for exact divisibility tests).
 * The range keeps out the blocks past the formatted part, which carry no tag. */
SEGPOOL_INLINE int alloc_is_block_in(const segment_t *s, const void *p, uint64_t limit) {
    return ((uintptr_t)p - s->block_start) * s->div_magic < limit;
}

/* For the thread acting for s's heap, the only writer of block_limit. */
SEGPOOL_INLINE int alloc_is_block_of(const segment_t *s, const void *p) { return alloc_is_block_in(s, p, s->block_limit); }

/* For any other thread: the limit grows while it reads it, a relaxed load (a
 * plain move on x86-64); the handout of the block it frees made that part
 * visible. */
SEGPOOL_INLINE int alloc_is_block_of_shared(const segment_t *s, const void *p) {
    return alloc_is_block_in(s, p, __atomic_load_n(&s->block_limit, __ATOMIC_RELAXED));
}

/* b carries the free tag: it may be free already (heap_free_suspect decides). */
SEGPOOL_INLINE int alloc_looks_free(const block_t *b) { return b->free_tag == ALLOC_FREE_TAG; }

/* s's free list has a head a pop may hand out: it lies in s (which also
 * fails for NULL, the end) and carries the free tag.  Handing a block out
 * clears its tag, so a block that a heap bug put on a list twice (a second
 * free missed: a cycle through it, or two lists that hold it) fails this
 * the second time: malloc aborts rather than hand it out again. */
SEGPOOL_INLINE int alloc_can_pop(const segment_t *s) { return alloc_in_slab(s, s->free) && alloc_looks_free(s->free); }

/* Take the head of s's free list (alloc_can_pop).  The next link is decoded
 * but not yet checked: the next pop checks it. */
SEGPOOL_INLINE block_t *alloc_take(segment_t *s) {
    block_t *b = s->free;
    s->used++;
    s->allocs++;
    s->free = alloc_link_next(s, b);
    b->next = 0; /* a stale link and a tag the program writes must not pass for free */
    b->free_tag = 0;
    return b;
}

/* Pop a block of class c from what h serves it from (its current segment or
 * its kept list); NULL when that has none or its list is corrupted
 * (heap_alloc_slow tells which). */
SEGPOOL_INLINE void *alloc_pop(heap_t *h, unsigned c) {
    segment_t *s = h->serving[c];
    if (unlikely(!alloc_can_pop(s))) return NULL;
    return alloc_take(s);
}

/* The same without the class map, for step = (size - 1) / 16 where
 * 1 <= size <= HEAP_DIRECT_MAX (direct[] is indexed from 16-byte steps of
 * size - 1, so that the range test and the index share one subtraction). */
SEGPOOL_INLINE void *alloc_pop_direct(heap_t *h, size_t step) {
    segment_t *s = h->direct[step];
    if (unlikely(!alloc_can_pop(s))) return NULL;
    return alloc_take(s);
}

/* A block of class c, or NULL when the pool cannot serve it. */
SEGPOOL_INLINE void *alloc_class(heap_t *h, unsigned c) {
    void *p = alloc_pop(h, c);
    if (likely(p != NULL)) return p;
    return heap_alloc_slow(h, c);
}

/* A block of at least size bytes; size <= pool_small_max(). */
SEGPOOL_INLINE void *alloc_small(size_t size) { return alloc_class(tls_heap, sizeclass_of(size)); }

/* The same, zeroed (calloc).  A block popped here was free before, so it is
 * cleared; when the list is empty, heap_alloc_zeroed takes one that is zero
 * already if it can (heap.c, "Zeroed blocks"). */
SEGPOOL_INLINE void *alloc_small_zeroed(size_t size) {
    heap_t *h = tls_heap;
    unsigned c = sizeclass_of(size);
    void *p = alloc_pop(h, c);
    if (likely(p != NULL)) return memset(p, 0, size);
    return heap_alloc_zeroed(h, c, size);
}

/* --s->used, and whether it became <= 0 as a signed number.  On x86-64 one
 * read-modify-write and a flag, where compilers otherwise load, subtract,
 * store and test. */
SEGPOOL_INLINE int alloc_release_one(segment_t *s) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__) && !defined(__SANITIZE_THREAD__)
    int le;
    __asm__("subl $1, %0" : "+m"(s->used), "=@ccle"(le));
    return le;
#else
    return (int32_t)--s->used <= 0;
#endif
}

/* Push b on s's free list; the caller acts for s's heap.  The current
 * segment carries SEGMENT_CURRENT in used, so only a segment that is not
 * current reaches 0, and a full one is negative: one test for both. */
SEGPOOL_INLINE void alloc_free_local(segment_t *s, block_t *b) {
    alloc_link_set(s, b, s->free);
    b->free_tag = ALLOC_FREE_TAG;
    s->free = b;
    if (unlikely(alloc_release_one(s))) heap_free_slow(s);
}

/* Free p, at arena offset off (< pool.size). */
SEGPOOL_INLINE void alloc_free_at(void *p, uintptr_t off) {
    segment_t *s = segment_head(&pool.segments[off >> pool.segment_shift]);
    block_t *b = (block_t *)p;
    if (unlikely(alloc_owner(s) != alloc_thread_id())) {
        heap_free_remote(b, s);
        return;
    }
    if (unlikely(!alloc_is_block_of(s, p) || alloc_looks_free(b))) {
        heap_free_suspect(b, s);
        return;
    }
    alloc_free_local(s, b);
}

/* Free p, which lies inside the arena. */
SEGPOOL_INLINE void alloc_free(void *p) { alloc_free_at(p, (uintptr_t)p - pool.base); }

#endif /* SEGPOOL_ALLOC_H */
