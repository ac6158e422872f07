/*
 * heap.c - thread heaps: the slow paths of allocation and free, frees from
 * other threads, thread exit, adoption, and fork.
 *
 * A heap serves one thread (see types.h).  Per class it has a current segment
 * (the fast path pops its free list), partly used segments, and cached ones
 * (no live block, kept formatted); full segments are on h->full
 * (SEGMENT_FULL).  Cached segments, up to SEGSHIM_TCACHE of them, are the
 * thread cache: reused for
 * their class, or reformatted for another, before a segment is requested
 * from the global pool; beyond that they go back to it.
 *
 * Remote frees.  A thread that frees a block of a segment it does not own
 * pushes the block on the owner heap's remote stack with one CAS; the owner
 * takes the whole stack in its next slow path and frees each block locally.
 * When the owner thread exits, its heap becomes dead: bit 0 of the remote word
 * is set in the same atomic exchange that takes the stack, so every block is
 * either taken by the exiting thread or sees the bit; a thread that sees it
 * takes the heap's lock and frees the block itself, acting for the heap.
 * Heaps are never unmapped; a new thread adopts a dead heap (its segments and
 * all) before making a new one, so exited threads' memory is reused.
 *
 * Double frees.  A free of a block that carries the free tag and whose first
 * word decodes to a link of its slab is a suspect; the owner checks it
 * exactly against the segment's free list after taking its remote stack.  A
 * remote thread cannot walk another thread's lists, nor write into a block
 * that may still be the program's, so it hands the owner a note naming the
 * block (heap_suspect_t, from a metadata chunk): nothing is dropped, however
 * many there are.  Data that merely equals the tag costs one decode.
 *
 * Lock order: pool.heaps_lock -> heap_t.lock -> a pool shard's lock.
 */
#include <string.h>

#include "alloc.h"
#include "invariants.h"
#include "lock.h"
#include "os.h"

segment_t segment_none = {.free = NULL, .span = 0};
heap_t heap_none = {.direct = {[0 ... HEAP_DIRECT_STEPS - 1] = &segment_none},
                     .current = {[0 ... SEGPOOL_MAX_CLASSES - 1] = &segment_none}};
SEGPOOL_TLS heap_t *tls_heap = &heap_none;
static SEGPOOL_TLS int tls_thread_done;

/* ---- Free lists --------------------------------------------------------------------- */

/* The head of s's free list, checked: NULL when empty; a head outside the
 * slab was decoded from a link that something overwrote. */
static block_t *heap_free_head(const segment_t *s) {
    block_t *b = s->free;
    if (b && !alloc_in_slab(s, b)) alloc_report("malloc(): corrupted free list", b);
    return b;
}

/* The block after f on s's free list, checked the same way. */
static block_t *heap_free_next(const segment_t *s, const block_t *f) {
    block_t *next = alloc_link_decode(f->next);
    if (next && !alloc_in_slab(s, next)) alloc_report("malloc(): corrupted free list", f);
    return next;
}

/* ---- Lists (the heap's own thread, or its lock holder) --------------------------- */

SEGPOOL_INLINE segment_link_t *heap_link(const segment_t *s) { return &pool.links[segment_index(s)]; }

static void heap_partial_push(heap_t *h, segment_t *s) { segment_list_push(&h->partial[s->class_index], s); }
static void heap_partial_remove(heap_t *h, segment_t *s) { segment_list_remove(&h->partial[s->class_index], s); }

static segment_t *heap_cached_pop(heap_t *h, unsigned c) {
    segment_t *s = h->cached[c];
    if (s) {
        h->cached[c] = heap_link(s)->next;
        h->cached_count -= s->slab_count;
        heap_link(s)->next = NULL;
    }
    return s;
}

/* ---- Segments in and out of a heap ----------------------------------------------- */

/* s leaves its class: its allocation count goes to the heap's. */
static void heap_segment_unclass(heap_t *h, segment_t *s) {
    h->requests[s->class_index] += s->allocs;
    h->class_segments[s->class_index]--;
    s->allocs = 0;
}

/* Format more of s's blocks onto its empty free list: a page's worth (at
 * least one block) the first time, then as many again as are formatted
 * already, so that a slab is touched only as far as it is used (a thread
 * that allocates one block of a class costs one page, not a slab).  Each
 * block is tagged free, so that a free of a block never handed out is caught
 * like a double free; blocks past the formatted part fail alloc_is_block_of.
 * Returns 0 when the slab is formatted whole. */
static size_t heap_segment_whole(const segment_t *s) {
    return (size_t)sizeclass_table[s->class_index].capacity * s->block_size;
}

static int heap_segment_extend(segment_t *s) {
    size_t size = s->block_size, whole = heap_segment_whole(s);
    if (s->span >= whole) return 0; /* also segment_none, whose sizes are 0 */
    size_t chunk = s->span ? s->span : HEAP_FORMAT_FIRST;
    size_t count = (chunk + size - 1) / size;
    if (s->span + count * size > whole) count = (whole - s->span) / size;
    uint8_t *first = (uint8_t *)s->block_start + s->span;
    block_t *link = s->free; /* NULL: only an empty list is extended */
    for (size_t i = count; i-- > 0;) {
        block_t *b = (block_t *)(first + i * size);
        b->next = alloc_link_encode(link);
        b->free_tag = ALLOC_FREE_TAG;
        link = b;
    }
    s->free = link;
    __atomic_store_n(&s->span, s->span + count * size, __ATOMIC_RELAXED); /* read by remote frees */
    return 1;
}

/* Format s (count segments) for class c, owned by h. */
static void heap_segment_format(heap_t *h, segment_t *s, unsigned c) {
    const sizeclass_t *cls = &sizeclass_table[c];
    uint8_t *start = segment_address(segment_index(s));
    for (unsigned i = 1; i < cls->slab; i++) {
        s[i].kind = SEGMENT_SLAB_TAIL;
        s[i].slab_offset = (uint16_t)i;
        s[i].heap = NULL;
        alloc_set_owner(&s[i], 0);
    }
    s->free = NULL;
    s->block_start = (uintptr_t)start;
    __atomic_store_n(&s->span, 0, __ATOMIC_RELAXED);
    s->used = 0;
    s->block_size = cls->size;
    s->div_magic = cls->div_magic;
    s->allocs = 0;
    s->slab_offset = 0;
    s->slab_count = (uint8_t)cls->slab;
    s->class_index = (uint8_t)c;
    s->kind = SEGMENT_BLOCKS;
    s->heap = h;
    alloc_set_owner(s, h->owner_tp);
    h->class_segments[c]++;
    heap_segment_extend(s);
}

/* A fresh segment for class c: a cached one of another class reformatted,
 * else one from the global pool; NULL when the pool is exhausted. */
static segment_t *heap_segment_new(heap_t *h, unsigned c) {
    unsigned slab = sizeclass_table[c].slab;
    segment_t *s = NULL;
    if (h->cached_count) {
        for (unsigned other = 0; other < sizeclass_count && !s; other++)
            if (h->cached[other] && sizeclass_table[other].slab == slab) {
                s = heap_cached_pop(h, other);
                heap_segment_unclass(h, s);
            }
    }
    if (!s) {
        s = segment_request(slab, (h->segments_owned << pool.segment_shift) >= HEAP_HUGE_MIN_BYTES);
        if (!s) return NULL;
        h->segments_owned += slab;
    }
    heap_segment_format(h, s, c);
    return s;
}

/* s has no live block and is on no list: keep it formatted, or give it back. */
static void heap_segment_idle(heap_t *h, segment_t *s) {
    SEGPOOL_ASSERT(s->heap == h && s->used == 0);
    if (h->cached_count + s->slab_count <= h->cache_limit) {
        heap_link(s)->next = h->cached[s->class_index];
        h->cached[s->class_index] = s;
        h->cached_count += s->slab_count;
        return;
    }
    h->segments_owned -= s->slab_count;
    heap_segment_unclass(h, s);
    segment_recycle(s, s->slab_count);
}

/* Give every cached segment back to the global pool. */
static void heap_cached_flush(heap_t *h) {
    uint32_t limit = h->cache_limit;
    h->cache_limit = 0;
    for (unsigned c = 0; c < sizeclass_count; c++) {
        segment_t *s;
        while ((s = heap_cached_pop(h, c)) != NULL) heap_segment_idle(h, s);
    }
    h->cache_limit = limit;
}

/* current[c] and the direct[] entries of class c become s. */
static void heap_set_current(heap_t *h, unsigned c, segment_t *s) {
    h->current[c] = s;
    for (unsigned step = sizeclass_table[c].step_first; step <= sizeclass_table[c].step_last; step++)
        h->direct[step] = s;
}

static void heap_install(heap_t *h, unsigned c, segment_t *s) {
    SEGPOOL_ASSERT(s->heap == h && s->class_index == c && (s->used & ~SEGMENT_LIVE_MASK) == 0);
    s->used += SEGMENT_CURRENT;
    heap_set_current(h, c, s);
}

/* Class c's current segment stops being current: to the list its state says. */
static void heap_uninstall(heap_t *h, unsigned c) {
    segment_t *s = h->current[c];
    if (s == &segment_none) return;
    heap_set_current(h, c, &segment_none);
    s->used -= SEGMENT_CURRENT;
    if (heap_free_head(s) == NULL && s->span == heap_segment_whole(s)) {
        s->used |= SEGMENT_FULL;
        segment_list_push(&h->full, s);
    } else if (s->used == 0) {
        heap_segment_idle(h, s);
    } else {
        heap_partial_push(h, s);
    }
}

/* The free of a block emptied s (not current), or s was full. */
void heap_free_slow(segment_t *s) {
    heap_t *h = s->heap;
    if (s->used & SEGMENT_FULL) {
        s->used &= ~SEGMENT_FULL;
        segment_list_remove(&h->full, s);
        if (s->used != 0) {
            heap_partial_push(h, s);
            return;
        }
    } else {
        heap_partial_remove(h, s);
    }
    heap_segment_idle(h, s);
}

/* ---- Remote frees ---------------------------------------------------------------- */

/* The segment of b, a block on h's remote stack: checked to be a block of
 * one of h's segments, since the link that led here was read from freed
 * memory. */
static segment_t *heap_remote_segment(heap_t *h, block_t *b, const block_t *from) {
    if (!alloc_owns(b)) alloc_report("free(): corrupted list of blocks freed by other threads", from);
    segment_t *s = segment_of(b);
    if (s->kind != SEGMENT_BLOCKS || s->heap != h || !alloc_is_block_of(s, b))
        alloc_report("free(): corrupted list of blocks freed by other threads", from);
    return s;
}

/* Free every block of a taken remote stack locally (acting for h). */
static void heap_free_list(heap_t *h, uintptr_t list) {
    block_t *b = (block_t *)list;
    while (b) {
        segment_t *s = heap_remote_segment(h, b, b);
        block_t *next = alloc_link_decode(b->next);
        if (next) heap_remote_segment(h, next, b);
        alloc_free_local(s, b);
        b = next;
    }
}

/* Take the blocks other threads freed to h (a live heap). */
static void heap_drain_remote(heap_t *h) {
    if (atomic_load_explicit(&h->remote, memory_order_relaxed) == 0) return;
    uintptr_t list = atomic_exchange_explicit(&h->remote, 0, memory_order_acquire);
    heap_free_list(h, list);
}

/* b lies in s's slab: is it one of the blocks handed out?  A block past the
 * formatted part was never handed out, so freeing it is freeing a free block. */
static void heap_check_block(const segment_t *s, const block_t *b) {
    if (alloc_is_block_of_shared(s, b)) return; /* also called by threads that do not own s */
    uintptr_t n = (uintptr_t)b - s->block_start;
    if (n >= __atomic_load_n(&s->span, __ATOMIC_RELAXED) && n % s->block_size == 0)
        alloc_report("free(): double free detected", b);
    alloc_report("free(): invalid pointer (inside a block)", b);
}

/* b (in s) carries the free tag: is it plausibly on a free list?  Its first
 * word then decodes to NULL or to a block of the slab.  Program data passes
 * only if it was written with the secret key. */
static int heap_block_seems_free(const segment_t *s, const block_t *b) {
    if (!alloc_looks_free(b)) return 0;
    block_t *next = alloc_link_decode(b->next);
    return next == NULL || alloc_in_slab(s, next);
}

/* Is b on s's free list?  Two O(1) answers first, for a copy of a freed
 * block's words put back into a live one (a program that reads freed memory):
 * if b were on the list, the block its link names would be free too, and
 * would not be the head (nothing links to the head).  Otherwise a walk of at
 * most the slab's capacity. */
static int heap_list_holds(const segment_t *s, const block_t *b) {
    block_t *next = alloc_link_decode(b->next);
    if (next && (next == s->free || !alloc_looks_free(next))) return 0;
    uint32_t limit = sizeclass_table[s->class_index].capacity;
    for (block_t *f = heap_free_head(s); f; f = heap_free_next(s, f)) {
        if (f == b) return 1;
        if (limit-- == 0) alloc_report("malloc(): corrupted free list (a cycle)", f);
    }
    return 0;
}

/* The exact check of a free of b, a block of h's segment s, by whoever acts
 * for h; then the free. */
static void heap_free_exact(heap_t *h, segment_t *s, block_t *b) {
    heap_check_block(s, b);
    if (heap_block_seems_free(s, b)) {
        if (h->state == HEAP_LIVE) heap_drain_remote(h); /* b may be on the remote stack */
        if (heap_list_holds(s, b)) alloc_report("free(): double free detected", b);
    }
    alloc_free_local(s, b);
}

/* The fast path of free found b not at a block start, or carrying the tag. */
void heap_free_suspect(block_t *b, segment_t *s) { heap_free_exact(s->heap, s, b); }

/* Notes for suspects come from metadata chunks and are reused through a
 * free list: nothing here allocates through the pool. */
#define HEAP_NOTE_CHUNK ((size_t)64 << 10) /* bytes of notes mapped at a time */
static pthread_mutex_t heap_note_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_suspect_t *heap_note_free;

static heap_suspect_t *heap_note_new(block_t *b) {
    lock_acquire(&heap_note_lock);
    if (!heap_note_free) {
        size_t bytes = HEAP_NOTE_CHUNK;
        heap_suspect_t *chunk = os_alloc_meta(bytes);
        for (size_t i = 0; chunk && i < bytes / sizeof *chunk; i++) {
            chunk[i].next = heap_note_free;
            heap_note_free = &chunk[i];
        }
    }
    heap_suspect_t *n = heap_note_free;
    if (n) heap_note_free = n->next;
    lock_release(&heap_note_lock);
    if (!n) alloc_report("free(): out of memory for the double-free check of", b);
    n->block = b;
    return n;
}

static void heap_note_release(heap_suspect_t *n) {
    lock_acquire(&heap_note_lock);
    n->next = heap_note_free;
    heap_note_free = n;
    lock_release(&heap_note_lock);
}

/* Check the blocks other threads named as suspects (h's thread or lock). */
static SEGPOOL_NOINLINE void heap_check_suspects(heap_t *h) {
    heap_suspect_t *n = atomic_exchange_explicit(&h->suspects, NULL, memory_order_acquire);
    while (n) {
        heap_suspect_t *next = n->next;
        block_t *b = n->block;
        heap_note_release(n);
        segment_t *s = segment_of(b);
        /* It looked free when the other thread freed it.  If it no longer
         * does, h handed it out again since: that free was a second one, and
         * freeing the block now would hand it out twice. */
        if (!heap_block_seems_free(s, b)) alloc_report("free(): double free detected", b);
        heap_free_exact(h, s, b);
        n = next;
    }
}

/* Hand b to h's owner to check (h is live). */
static void heap_suspect_push(heap_t *h, block_t *b) {
    heap_suspect_t *n = heap_note_new(b);
    heap_suspect_t *old = atomic_load_explicit(&h->suspects, memory_order_relaxed);
    do n->next = old;
    while (!atomic_compare_exchange_weak_explicit(&h->suspects, &old, n, memory_order_release, memory_order_relaxed));
}

static void heap_free_dead(heap_t *owner, segment_t *s, block_t *b);

/* b lies in a segment this thread does not own, a slab tail, or no block
 * segment at all. */
void heap_free_remote(block_t *b, segment_t *s) {
    if (s->kind == SEGMENT_SLAB_TAIL) s -= s->slab_offset;
    if (s->kind == SEGMENT_FREE) /* its segment went back to the pool: freed already, or never a block */
        alloc_report("free(): double free detected", b);
    if (s->kind != SEGMENT_BLOCKS) alloc_report("free(): invalid pointer (not an allocated block)", b);
    heap_check_block(s, b);
    heap_t *owner = s->heap;
    heap_t *self = tls_heap;
    if (self != &heap_none) self->remote_frees++;
    else atomic_fetch_add_explicit(&pool.remote_frees_heapless, 1, memory_order_relaxed);
    if (unlikely(heap_block_seems_free(s, b))) {
        /* Maybe a double free: the owner decides. */
        lock_acquire(&owner->lock);
        int live = owner->state == HEAP_LIVE;
        if (live) heap_suspect_push(owner, b);
        lock_release(&owner->lock);
        if (!live) heap_free_dead(owner, s, b);
        return;
    }
    uintptr_t old = atomic_load_explicit(&owner->remote, memory_order_relaxed);
    do {
        if (old & HEAP_REMOTE_DEAD) {
            heap_free_dead(owner, s, b);
            return;
        }
        b->next = alloc_link_encode((block_t *)old);
        b->free_tag = ALLOC_FREE_TAG;
    } while (!atomic_compare_exchange_weak_explicit(&owner->remote, &old, (uintptr_t)b, memory_order_release,
                                                    memory_order_relaxed));
}

/* A free into a dead heap: act for it under its lock. */
static void heap_free_dead(heap_t *owner, segment_t *s, block_t *b) {
    lock_acquire(&owner->lock);
    uintptr_t word = atomic_load(&owner->remote);
    if (!(word & HEAP_REMOTE_DEAD)) {
        /* Adopted meanwhile: it is a live heap again. */
        lock_release(&owner->lock);
        heap_free_remote(b, s);
        return;
    }
    if (owner->state != HEAP_ORPHAN) {
        heap_free_list(owner, word & ~HEAP_REMOTE_DEAD);
        atomic_store(&owner->remote, HEAP_REMOTE_DEAD);
        heap_free_exact(owner, s, b);
    }
    lock_release(&owner->lock);
}

/* Take remote frees and suspects, give back current segments with no live
 * block and every cached segment. */
void heap_collect(heap_t *h) {
    if (h == &heap_none) return;
    heap_drain_remote(h);
    heap_check_suspects(h);
    for (unsigned c = 0; c < sizeclass_count; c++) {
        segment_t *s = h->current[c];
        if (s != &segment_none && (s->used & SEGMENT_LIVE_MASK) == 0) heap_uninstall(h, c);
    }
    heap_cached_flush(h);
    SEGPOOL_CHECK_HEAP(h);
}

/* ---- The allocation slow path --------------------------------------------------------- */

static heap_t *heap_acquire(void);

/* Class c's current segment ran out: the next one, installed; NULL when the
 * pool is exhausted. */
static SEGPOOL_NOINLINE segment_t *heap_next_segment(heap_t *h, unsigned c) {
    heap_uninstall(h, c);
    segment_t *s = h->partial[c];
    if (s) heap_partial_remove(h, s);
    else if ((s = heap_cached_pop(h, c)) == NULL && (s = heap_segment_new(h, c)) == NULL) return NULL;
    heap_install(h, c, s);
    return s;
}

void *heap_alloc_slow(heap_t *h, unsigned c) {
    if (unlikely(h == &heap_none)) {
        h = heap_acquire();
        if (!h) return NULL;
        return alloc_class(h, c);
    }
    heap_drain_remote(h);
    if (unlikely(atomic_load_explicit(&h->suspects, memory_order_relaxed) != NULL)) heap_check_suspects(h);
    segment_t *s = h->current[c];
    while (heap_free_head(s) == NULL && !heap_segment_extend(s))
        if ((s = heap_next_segment(h, c)) == NULL) return NULL;
    return alloc_take(s);
}

/* ---- Heaps: creation, adoption, thread exit -------------------------------------------- */

/* Heaps are carved from metadata chunks, HEAP_CHUNK_HEAPS at a time, each on
 * its own cache lines, and never unmapped. */
#define HEAP_CHUNK_HEAPS 32
#define HEAP_LINE 64
static heap_t *heap_new_locked(void) {
    static uint8_t *chunk;
    static size_t left;
    size_t need = (sizeof(heap_t) + HEAP_LINE - 1) & ~(size_t)(HEAP_LINE - 1);
    if (left < need) {
        size_t bytes = need * HEAP_CHUNK_HEAPS;
        chunk = os_alloc_meta(bytes);
        if (!chunk) return NULL;
        left = bytes;
    }
    heap_t *h = (heap_t *)chunk;
    chunk += need;
    left -= need;
    for (unsigned c = 0; c < SEGPOOL_MAX_CLASSES; c++) h->current[c] = &segment_none;
    for (unsigned i = 0; i < HEAP_DIRECT_STEPS; i++) h->direct[i] = &segment_none;
    pthread_mutex_init(&h->lock, NULL);
    h->next_heap = pool.heaps;
    pool.heaps = h;
    pool.heaps_total++;
    return h;
}

/* Every segment h owns gets owner tp (h's lists must be whole). */
static void heap_set_owner(heap_t *h, uintptr_t tp) {
    h->owner_tp = tp;
    for (unsigned c = 0; c < sizeclass_count; c++) {
        if (h->current[c] != &segment_none) alloc_set_owner(h->current[c], tp);
        for (segment_t *s = h->partial[c]; s; s = heap_link(s)->next) alloc_set_owner(s, tp);
        for (segment_t *s = h->cached[c]; s; s = heap_link(s)->next) alloc_set_owner(s, tp);
    }
    for (segment_t *s = h->full; s; s = heap_link(s)->next) alloc_set_owner(s, tp);
}

/* A heap for the calling thread: a dead one adopted, else a new one. */
static heap_t *heap_acquire(void) {
    if (tls_thread_done || pool_init() != 0) return NULL;
    lock_acquire(&pool.heaps_lock);
    /* Prefer a dead heap that still owns segments: its memory is reused. */
    heap_t *h = NULL, *any_dead = NULL;
    for (heap_t *d = pool.heaps; d && !h; d = d->next_heap) {
        if (d->state != HEAP_DEAD) continue;
        lock_acquire(&d->lock); /* others may be freeing into it */
        if (d->segments_owned) h = d;
        lock_release(&d->lock);
        if (!any_dead) any_dead = d;
    }
    if (!h) h = any_dead;
    if (h) {
        lock_acquire(&h->lock);
        uintptr_t word = atomic_exchange(&h->remote, HEAP_REMOTE_DEAD);
        heap_free_list(h, word & ~HEAP_REMOTE_DEAD);
        heap_set_owner(h, alloc_thread_id());
        h->state = HEAP_LIVE;
        atomic_store(&h->remote, 0);
        lock_release(&h->lock);
    } else {
        h = heap_new_locked();
        if (h) h->owner_tp = alloc_thread_id();
    }
    if (h) {
        h->cache_limit = (uint32_t)pool.config.tcache;
        pool.heaps_live++;
    }
    lock_release(&pool.heaps_lock);
    if (!h) return NULL;
    tls_heap = h;
    /* May allocate (through this heap, already installed). */
    pthread_setspecific(pool.thread_key, h);
    return h;
}

/* Make h dead: take its remote stack for good, give back its cached segments,
 * and leave the others on its lists for whoever frees into them or adopts it. */
static void heap_abandon_locked(heap_t *h) {
    uintptr_t word = atomic_exchange(&h->remote, HEAP_REMOTE_DEAD);
    h->state = HEAP_DEAD;
    h->cache_limit = 0;
    heap_free_list(h, word & ~HEAP_REMOTE_DEAD);
    heap_check_suspects(h);
    for (unsigned c = 0; c < sizeclass_count; c++) heap_uninstall(h, c);
    heap_cached_flush(h);
    heap_set_owner(h, 0); /* before the thread pointer can be reused */
}

static void heap_thread_done(void *arg) {
    heap_t *h = arg;
    tls_heap = &heap_none;
    tls_thread_done = 1;
    lock_acquire(&pool.heaps_lock);
    lock_acquire(&h->lock);
    heap_abandon_locked(h);
    SEGPOOL_CHECK_HEAP(h);
    lock_release(&h->lock);
    pool.heaps_live--;
    lock_release(&pool.heaps_lock);
}

int heap_init_once(void) {
    pthread_mutex_init(&pool.heaps_lock, NULL);
    return pthread_key_create(&pool.thread_key, heap_thread_done) == 0 ? 0 : -1;
}

/* Record a request served elsewhere; per thread when the thread has a heap. */
void heap_note_fallback(segpool_fallback_t why, size_t size) {
    unsigned bin = size ? 64u - (unsigned)__builtin_clzll(size) : 0;
    if (bin >= SEGPOOL_STATS_SIZE_BINS) bin = SEGPOOL_STATS_SIZE_BINS - 1;
    heap_t *h = tls_heap;
    if (h != &heap_none) {
        h->fallback[why]++;
        h->large_sizes[bin]++;
    } else {
        atomic_fetch_add_explicit(&pool.fallback[why], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool.large_sizes[bin], 1, memory_order_relaxed);
    }
}

/* ---- fork -------------------------------------------------------------------------- */

/* Across fork every allocator lock is held by the forking thread, so that the
 * child finds the heaps and the pool whole.  Two cases must not deadlock:
 *  - fork from a signal handler that interrupted fork (or the allocator) in
 *    the same thread: the nested prepare takes nothing (tls_fork_depth), and
 *    a process with one thread takes nothing at all: no other thread can
 *    hold a lock, and its own may be held by the interrupted frame;
 *  - stdio: glibc's fork takes stdio's list lock after the prepare handlers,
 *    and fflush(NULL) holds it while it waits for a stream's lock, whose
 *    holder (getline) may be waiting for an allocator lock.  So the prepare
 *    handler takes the list lock first (it is recursive; glibc's fork takes
 *    it again), then the allocator's, the order glibc keeps for its own
 *    malloc (glibc bug 19431). */
extern char __libc_single_threaded __attribute__((weak));
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));

static SEGPOOL_TLS unsigned tls_fork_depth;
static SEGPOOL_TLS int tls_fork_locked;

static int heap_process_single_threaded(void) { return &__libc_single_threaded != NULL && __libc_single_threaded; }

void heap_fork_prepare(void) {
    if (tls_fork_depth++ != 0 || atomic_load(&pool.state) != POOL_READY || heap_process_single_threaded()) return;
    if (_IO_list_lock) _IO_list_lock();
    pthread_mutex_lock(&pool.heaps_lock);
    for (heap_t *h = pool.heaps; h; h = h->next_heap) pthread_mutex_lock(&h->lock);
    pthread_mutex_lock(&heap_note_lock);
    segment_fork_prepare();
    tls_fork_locked = 1;
}

void heap_fork_parent(void) {
    if (--tls_fork_depth != 0 || !tls_fork_locked) return;
    tls_fork_locked = 0;
    segment_fork_parent();
    pthread_mutex_unlock(&heap_note_lock);
    for (heap_t *h = pool.heaps; h; h = h->next_heap) pthread_mutex_unlock(&h->lock);
    pthread_mutex_unlock(&pool.heaps_lock);
    if (_IO_list_unlock) _IO_list_unlock();
}

/* Only the forking thread lives on in the child.  Every other live heap is
 * orphaned (see HEAP_ORPHAN); dead heaps stay dead and adoptable. */
void heap_fork_child(void) {
    /* glibc reset stdio's list lock in the child: nothing of it to release. */
    tls_fork_depth--;
    tls_fork_locked = 0;
    lock_forget_all();
    if (atomic_load(&pool.state) != POOL_READY) return;
    segment_fork_child();
    pthread_mutex_init(&heap_note_lock, NULL);
    pthread_mutex_init(&pool.heaps_lock, NULL);
    heap_t *self = tls_heap;
    unsigned live = 0, orphans = 0;
    for (heap_t *h = pool.heaps; h; h = h->next_heap) {
        pthread_mutex_init(&h->lock, NULL);
        if (h == self) {
            live++;
        } else if (h->state == HEAP_LIVE) {
            atomic_store(&h->remote, HEAP_REMOTE_DEAD);
            h->state = HEAP_ORPHAN;
            h->owner_tp = 0;
            orphans++;
        }
    }
    pool.heaps_live = live;
    /* A thread the child starts may get the thread pointer of a parent thread
     * that is gone here: no segment may still name one.  The side table is
     * walked, not the orphans' lists, which may have been caught mid-update. */
    if (orphans) {
        size_t end = pool_regions_fresh() * pool.region_segments;
        for (size_t i = 0; i < end; i++) {
            segment_t *s = &pool.segments[i];
            if (s->owner && s->heap && s->heap->state == HEAP_ORPHAN) alloc_set_owner(s, 0);
        }
    }
}
