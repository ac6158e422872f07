/*
 * heap.c - thread heaps: the slow paths of allocation and free, frees from
 * other threads, thread exit, adoption, and fork.
 *
 * A heap serves one thread (see types.h).  Per class it has a current segment
 * (the fast path pops its free list), a list of partly free segments, and
 * full segments on no list (SEGMENT_FULL).  Whole free segments wait in the
 * heap's cache (up to SEGSHIM_TCACHE) before going back to the global pool.
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
 * Lock order: pool.heaps_lock -> heap_t.lock -> pool.lock.
 */
#include <string.h>

#include "alloc.h"
#include "os.h"

segment_t segment_empty;
heap_t heap_empty = {.current = {[0 ... SEGPOOL_MAX_CLASSES - 1] = &segment_empty}};
SEGPOOL_TLS heap_t *tls_heap = &heap_empty;
static SEGPOOL_TLS int tls_thread_done;

/* ---- Partial lists (the heap's own thread, or its lock holder) ---------------- */

static void heap_partial_push(heap_t *h, segment_t *s) {
    segment_t **head = &h->partial[s->class_index];
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

static void heap_partial_remove(heap_t *h, segment_t *s) {
    if (s->prev) s->prev->next = s->next;
    else h->partial[s->class_index] = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/* ---- Segments in and out of a heap ----------------------------------------------- */

/* A segment (or slab) formatted for class c, owned by h; NULL when the pool
 * is exhausted. */
static segment_t *heap_segment_new(heap_t *h, unsigned c) {
    const sizeclass_t *cls = &sizeclass_table[c];
    segment_t *s;
    if (cls->slab == 1 && h->cache) {
        s = h->cache;
        h->cache = s->next;
        h->cache_count--;
    } else {
        s = segment_request(cls->slab);
        if (!s) return NULL;
    }
    size_t index = segment_index(s);
    uint8_t *start = segment_address(index);
    for (unsigned i = 1; i < cls->slab; i++) {
        s[i].kind = SEGMENT_SLAB_TAIL;
        s[i].slab_offset = (uint16_t)i;
        s[i].heap = NULL;
    }
    /* Thread the free list through the blocks in address order. */
    uintptr_t link = alloc_encode(NULL);
    for (uint32_t i = cls->capacity; i-- > 0;) {
        block_t *b = (block_t *)(start + (size_t)i * cls->size);
        b->next_encoded = link;
        link = alloc_encode(b);
    }
    s->free = (block_t *)start;
    s->used = 0;
    s->block_size = cls->size;
    s->div_magic = cls->div_magic;
    s->start = start;
    s->slab_offset = 0;
    s->slab_count = (uint8_t)cls->slab;
    s->class_index = (uint8_t)c;
    s->next = s->prev = NULL;
    s->kind = SEGMENT_BLOCKS;
    s->heap = h;
    h->segments_owned++;
    h->class_segments[c]++;
    return s;
}

/* s has no live block and is on no list: to the cache, or to the pool. */
static void heap_segment_retire(heap_t *h, segment_t *s) {
    h->segments_owned--;
    h->class_segments[s->class_index]--;
    if (s->slab_count == 1 && h->cache_count < h->cache_limit) {
        s->kind = SEGMENT_CACHED;
        s->heap = NULL;
        s->free = NULL;
        s->next = h->cache;
        h->cache = s;
        h->cache_count++;
        return;
    }
    segment_recycle(s, s->slab_count);
}

static void heap_cache_flush(heap_t *h) {
    while (h->cache) {
        segment_t *s = h->cache;
        h->cache = s->next;
        h->cache_count--;
        segment_recycle(s, 1);
    }
}

/* The free of a block emptied s, or s was full. */
void heap_free_slow(heap_t *h, segment_t *s) {
    unsigned c = s->class_index;
    if (s->used & SEGMENT_FULL) {
        s->used &= ~SEGMENT_FULL;
        if (s->used == 0) heap_segment_retire(h, s);
        else heap_partial_push(h, s);
        return;
    }
    /* Empty.  Keep the current segment of a live heap: the next malloc of the
     * class would otherwise fetch a segment again at once. */
    if (h->current[c] == s) {
        if (h->dead == HEAP_LIVE) return;
        h->current[c] = &segment_empty;
    } else {
        heap_partial_remove(h, s);
    }
    heap_segment_retire(h, s);
}

/* ---- Remote frees ---------------------------------------------------------------- */

/* Free every block of a taken remote stack locally (acting for h). */
static void heap_free_list(heap_t *h, uintptr_t list) {
    block_t *b = (block_t *)list;
    while (b) {
        block_t *next = alloc_decode(b->next_encoded);
        alloc_free_local(h, segment_of(b), b);
        h->remote_received++;
        b = next;
    }
}

/* Take the blocks other threads freed to h. */
static void heap_drain_remote(heap_t *h) {
    if (atomic_load_explicit(&h->remote, memory_order_relaxed) == 0) return;
    uintptr_t list = atomic_exchange_explicit(&h->remote, 0, memory_order_acquire);
    heap_free_list(h, list);
}

/* Take remote frees, give back empty current segments and the cache. */
void heap_collect(heap_t *h) {
    if (h == &heap_empty) return;
    heap_drain_remote(h);
    for (unsigned c = 0; c < sizeclass_count; c++) {
        segment_t *s = h->current[c];
        if (s != &segment_empty && s->used == 0) {
            h->current[c] = &segment_empty;
            heap_segment_retire(h, s);
        }
    }
    heap_cache_flush(h);
}

static void heap_free_dead(heap_t *owner, segment_t *s, block_t *b);

/* b lies in a segment this thread does not own (or in no block segment). */
void heap_free_remote(segment_t *s, block_t *b) {
    if (s->kind != SEGMENT_BLOCKS) alloc_report("free(): invalid pointer (not an allocated block)", b);
    uint64_t offset = (uint64_t)((uint8_t *)b - s->start);
    if (offset * s->div_magic > s->div_magic - 1) alloc_report("free(): invalid pointer (inside a block)", b);
    if (alloc_looks_free(b)) alloc_report("free(): double free detected", b);
    heap_t *owner = s->heap;
    uintptr_t old = atomic_load_explicit(&owner->remote, memory_order_relaxed);
    do {
        if (old & HEAP_REMOTE_DEAD) {
            heap_free_dead(owner, s, b);
            return;
        }
        b->next_encoded = old ^ pool.key;
    } while (!atomic_compare_exchange_weak_explicit(&owner->remote, &old, (uintptr_t)b, memory_order_release,
                                                    memory_order_relaxed));
    heap_t *self = tls_heap;
    if (self != &heap_empty) self->remote_frees++;
    else atomic_fetch_add_explicit(&pool.remote_frees_heapless, 1, memory_order_relaxed);
}

/* Exact double-free check for a block of h's own segment s, then the free. */
static void heap_free_verified(heap_t *h, segment_t *s, block_t *b) {
    uint64_t offset = (uint64_t)((uint8_t *)b - s->start);
    if (offset * s->div_magic > s->div_magic - 1) alloc_report("free(): invalid pointer (inside a block)", b);
    if (alloc_looks_free(b)) {
        if (h->dead == HEAP_LIVE) heap_drain_remote(h); /* b may have been freed remotely before */
        uint32_t limit = sizeclass_table[s->class_index].capacity;
        for (block_t *f = s->free; f; f = alloc_decode(f->next_encoded)) {
            if (f == b) alloc_report("free(): double free detected", b);
            if (limit-- == 0 || !alloc_owns(f)) alloc_report("free(): corrupted free list", b);
        }
    }
    alloc_free_local(h, s, b);
}

void heap_free_checked(heap_t *h, segment_t *s, block_t *b) { heap_free_verified(h, s, b); }

/* A free into a dead heap: act for it under its lock. */
static void heap_free_dead(heap_t *owner, segment_t *s, block_t *b) {
    pthread_mutex_lock(&owner->lock);
    uintptr_t word = atomic_load(&owner->remote);
    if (!(word & HEAP_REMOTE_DEAD)) {
        /* Adopted meanwhile: it is a live heap again. */
        pthread_mutex_unlock(&owner->lock);
        heap_free_remote(s, b);
        return;
    }
    if (owner->dead != HEAP_ORPHAN) {
        heap_free_list(owner, word & ~HEAP_REMOTE_DEAD);
        atomic_store(&owner->remote, HEAP_REMOTE_DEAD);
        heap_free_verified(owner, s, b);
    }
    pthread_mutex_unlock(&owner->lock);
}

/* ---- The allocation slow path --------------------------------------------------------- */

static heap_t *heap_acquire(void);

void *heap_alloc_slow(heap_t *h, unsigned c) {
    if (unlikely(h == &heap_empty)) {
        h = heap_acquire();
        if (!h) return NULL;
        return alloc_class(h, c);
    }
    heap_drain_remote(h);
    segment_t *s = h->current[c];
    if (!s->free) {
        if (s != &segment_empty) s->used |= SEGMENT_FULL;
        s = h->partial[c];
        if (s) heap_partial_remove(h, s);
        else s = heap_segment_new(h, c);
        if (!s) {
            h->current[c] = &segment_empty;
            return NULL;
        }
        h->current[c] = s;
    }
    return alloc_class(h, c);
}

/* ---- Heaps: creation, adoption, thread exit -------------------------------------------- */

/* Heaps are carved from metadata chunks and never unmapped. */
static heap_t *heap_new_locked(void) {
    static uint8_t *chunk;
    static size_t left;
    size_t need = (sizeof(heap_t) + 63) & ~(size_t)63;
    if (left < need) {
        size_t bytes = need * 32;
        chunk = os_alloc_meta(bytes);
        if (!chunk) return NULL;
        left = bytes;
    }
    heap_t *h = (heap_t *)chunk;
    chunk += need;
    left -= need;
    for (unsigned c = 0; c < SEGPOOL_MAX_CLASSES; c++) h->current[c] = &segment_empty;
    pthread_mutex_init(&h->lock, NULL);
    h->next_heap = pool.heaps;
    pool.heaps = h;
    pool.heaps_total++;
    return h;
}

/* A heap for the calling thread: a dead one adopted, else a new one. */
static heap_t *heap_acquire(void) {
    if (tls_thread_done || pool_init() != 0) return NULL;
    pthread_mutex_lock(&pool.heaps_lock);
    heap_t *h = NULL, *any_dead = NULL;
    for (heap_t *d = pool.heaps; d; d = d->next_heap) {
        if (d->dead != HEAP_DEAD) continue; /* racy peek; confirmed below */
        if (d->segments_owned) {
            h = d;
            break;
        }
        if (!any_dead) any_dead = d;
    }
    if (!h) h = any_dead;
    if (h) {
        pthread_mutex_lock(&h->lock);
        uintptr_t word = atomic_exchange(&h->remote, 0);
        heap_free_list(h, word & ~HEAP_REMOTE_DEAD);
        h->dead = HEAP_LIVE;
        pthread_mutex_unlock(&h->lock);
    } else {
        h = heap_new_locked();
    }
    if (h) {
        h->cache_limit = (uint32_t)pool.config.tcache;
        pool.heaps_live++;
    }
    pthread_mutex_unlock(&pool.heaps_lock);
    if (!h) return NULL;
    tls_heap = h;
    /* May allocate (through this heap, already installed). */
    pthread_setspecific(pool.thread_key, h);
    return h;
}

/* Make h dead: take its remote stack for good, empty its cache, and leave its
 * segments on its lists for whoever frees into them or adopts it. */
static void heap_abandon_locked(heap_t *h) {
    uintptr_t word = atomic_exchange(&h->remote, HEAP_REMOTE_DEAD);
    h->dead = HEAP_DEAD;
    h->cache_limit = 0;
    heap_free_list(h, word & ~HEAP_REMOTE_DEAD);
    heap_cache_flush(h);
    for (unsigned c = 0; c < sizeclass_count; c++) {
        segment_t *s = h->current[c];
        if (s == &segment_empty) continue;
        h->current[c] = &segment_empty;
        if ((s->used & ~SEGMENT_FULL) == 0) heap_segment_retire(h, s);
        else if (s->free) heap_partial_push(h, s);
        else s->used |= SEGMENT_FULL;
    }
}

static void heap_thread_done(void *arg) {
    heap_t *h = arg;
    tls_heap = &heap_empty;
    tls_thread_done = 1;
    pthread_mutex_lock(&pool.heaps_lock);
    pthread_mutex_lock(&h->lock);
    heap_abandon_locked(h);
    pthread_mutex_unlock(&h->lock);
    pool.heaps_live--;
    pthread_mutex_unlock(&pool.heaps_lock);
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
    if (h != &heap_empty) {
        h->fallback[why]++;
        h->large_sizes[bin]++;
    } else {
        atomic_fetch_add_explicit(&pool.fallback[why], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&pool.large_sizes[bin], 1, memory_order_relaxed);
    }
}

/* ---- fork -------------------------------------------------------------------------- */

void heap_fork_prepare(void) {
    if (atomic_load(&pool.state) != POOL_READY) return;
    pthread_mutex_lock(&pool.heaps_lock);
    for (heap_t *h = pool.heaps; h; h = h->next_heap) pthread_mutex_lock(&h->lock);
    pthread_mutex_lock(&pool.lock);
}

void heap_fork_parent(void) {
    if (atomic_load(&pool.state) != POOL_READY) return;
    pthread_mutex_unlock(&pool.lock);
    for (heap_t *h = pool.heaps; h; h = h->next_heap) pthread_mutex_unlock(&h->lock);
    pthread_mutex_unlock(&pool.heaps_lock);
}

/* Only the forking thread lives on in the child.  Every other live heap is
 * orphaned (see HEAP_ORPHAN); dead heaps stay dead and adoptable. */
void heap_fork_child(void) {
    if (atomic_load(&pool.state) != POOL_READY) return;
    segment_fork_child();
    pthread_mutex_init(&pool.heaps_lock, NULL);
    heap_t *self = tls_heap;
    unsigned live = 0;
    for (heap_t *h = pool.heaps; h; h = h->next_heap) {
        pthread_mutex_init(&h->lock, NULL);
        if (h == self) {
            live++;
        } else if (h->dead == HEAP_LIVE) {
            atomic_store(&h->remote, HEAP_REMOTE_DEAD);
            h->dead = HEAP_ORPHAN;
        }
    }
    pool.heaps_live = live;
}
