/*
 * heap.c - thread heaps: the slow paths of allocation and free, frees from
 * other threads, thread exit, adoption, and fork.
 *
 * A heap serves one thread (see types.h).  Per class it has a current segment
 * (the fast path pops its free list), partly used segments, and empty ones
 * kept formatted; full segments are on no list (SEGMENT_FULL).  Empty
 * segments, up to SEGSHIM_TCACHE of them, are the thread cache: reused for
 * their class, or reformatted for another, before a segment is requested
 * from the global pool; beyond that they go back to it.
 *
 * Remote frees.  A thread that frees a block of a segment it does not own
 * pushes the block on the segment's remote list (segment_link_t.remote: head,
 * count and a QUEUED bit in one word) with one CAS.  The free that sets
 * QUEUED (the list was idle) also pushes the segment on its heap's queue
 * (heap_t.remote, a Treiber stack of segments).  The owner takes its queue in
 * its slow paths and each segment's list in O(1), with one exchange that also
 * clears QUEUED: the list becomes the free list, and its count leaves the
 * live count.  So the owner touches one word per segment, not one block per
 * free, and a freeing thread writes one line per free and its heap's queue
 * once per segment and collection.  A segment that still has free blocks
 * when it comes off the queue keeps QUEUED and its list (watched): nobody
 * queues it again, and the owner takes the list when the segment is current
 * and its free list runs dry (see heap_remote_collect).
 *
 * Invariants: QUEUED is set iff the segment is on its heap's queue, or its
 * queuer is about to push it, or it is watched; only the heap's thread (or
 * its lock holder) clears it, and only with the exchange that takes the list
 * (so a segment is never on a queue twice); a QUEUED segment has a nonempty
 * list or is watched, so it has live blocks and never leaves its heap (it is
 * neither recycled nor adopted away) while a queuer may still push it.
 *
 * Races considered:
 *  - two freers of one segment: the CAS orders them; only the one that saw
 *    QUEUED clear queues it, the other's block is on the list it queues;
 *  - a freer and the owner's exchange: the block is either in the list taken
 *    or pushed after it, on a word with QUEUED clear, and queued again;
 *  - the owner reads queue_next before its exchange clears QUEUED (release),
 *    the next queuer writes it after its CAS saw QUEUED clear (acquire);
 *  - the owner exits: heap_abandon_locked marks the queue dead in the
 *    exchange that takes it, and takes every list on it and every watched
 *    one; a queuer that finds the mark still pushes (keeping it), and
 *    whoever holds the lock next takes the list (see "Dead heaps"); a freer
 *    that found QUEUED set relies on that queuer, whose push comes after its
 *    CAS;
 *  - adoption, under the lock: the mark is cleared and what was queued on
 *    the dead heap stays queued for its new thread;
 *  - fork: a parent thread that set QUEUED and had not yet queued is gone in
 *    the child; heap_fork_child takes such lists (orphans are left alone);
 *  - a double free racing the first free on another thread: the count then
 *    exceeds the live blocks, reported when the list is taken.
 * Counting: the owner counts the blocks it takes (heap_t.remote_frees),
 * the lists and queued segments; freers count only failed CASes, in the
 * owner's heap (a line they write anyway), so no thread writes a
 * process-wide counter per free.
 *
 * Kept blocks.  A thread that frees another heap's block first tries to keep
 * it: up to sizeclass_t.keep_max blocks per class go on its heap's kept list
 * of the class (heap_t.kept[c]), which then serves the class (serving[c])
 * until it runs dry, so the thread's next allocations of that size get the
 * blocks it just freed, still in its cache.  Sending each one home instead
 * moves its cache line twice (the freer writes the link, the owner's pop
 * reads it) and, when the owner hands it to a thread on another core, a
 * third time: on a workload where threads free each other's blocks (larson)
 * that is most of the allocator's time.  jemalloc's and tcmalloc's thread
 * caches do the same.  A kept block stays live for its segment, which so
 * stays with its heap; the list is its thread's alone (no atomic operation),
 * and goes home (as remote frees) when its heap is collected and when its
 * thread exits, so a heap that is not live keeps nothing, and no thread ever
 * keeps a block of its own heap (a thread adopts a heap only when it has
 * none).  The list is a segment_t whose bounds are the arena: the fast path
 * pops it like a segment, checking that each link decodes into the arena.
 * A kept block carries the free tag like any free block, and its link is
 * encoded under a key of its own (pool.kept_key): a free of it again, by
 * its owner or by any other thread, finds a good link under that key and is
 * reported (see "Double frees").
 *
 * Double frees.  A free of a block that carries the free tag is checked
 * (heap_free_suspect, heap_free_remote) by decoding its link under each
 * key.  Links are encoded under the block's own address (alloc.h), and
 * handing a block out clears its link, so a link that decodes to NULL or to
 * a block of the class was written there by the allocator, or is a freed
 * block's first 16 bytes that the program read and wrote back into the same
 * block once it had it again:
 *  - under the slabs' key: the block is on its slab's free or remote list,
 *    or it is such a copy.  The owner checks it exactly against both lists
 *    (in place).  A remote thread cannot walk another thread's lists, nor
 *    write into a block that may still be the program's, so it hands the
 *    owner a note naming the block (heap_suspect_t, from a metadata chunk):
 *    nothing is dropped, however many there are;
 *  - under the kept key: the block is on a thread's kept list, which no
 *    other thread may walk: reported at once (a copy of a kept block's words
 *    written back into it is the one false report left);
 *  - under neither: the tag is the program's data, or the block was freed
 *    and its link overwritten (a write after free) before this second free.
 *    The first HEAP_OVERWRITE_SEARCH blocks of the lists it may be on (for
 *    the owner its slab's two lists, for another thread its own kept list)
 *    are searched, which finds a block freed, written and freed again soon
 *    after; a search of whole lists would make every free of data equal to
 *    the tag cost a walk.
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
                     .serving = {[0 ... SEGPOOL_MAX_CLASSES - 1] = &segment_none},
                     .current = {[0 ... SEGPOOL_MAX_CLASSES - 1] = &segment_none}};
SEGPOOL_TLS heap_t *tls_heap = &heap_none;
static SEGPOOL_TLS int tls_thread_done;

/* ---- Free lists --------------------------------------------------------------------- */

/* The head of s's free list, checked: NULL when empty; a head outside the
 * slab was decoded from a link that something overwrote, and one without
 * the free tag was handed out already (alloc_can_pop). */
static block_t *heap_free_head(const segment_t *s) {
    block_t *b = s->free;
    if (b && !alloc_can_pop(s)) alloc_report("malloc(): corrupted free list", b);
    return b;
}

/* The block after f on s's free list, checked the same way. */
static block_t *heap_free_next(const segment_t *s, const block_t *f) {
    block_t *next = alloc_link_next(s, f);
    if (next && !alloc_in_slab(s, next)) alloc_report("malloc(): corrupted free list", f);
    return next;
}

/* ---- Lists (the heap's own thread, or its lock holder) --------------------------- */

SEGPOOL_INLINE segment_link_t *heap_link(const segment_t *s) { return &pool.links[segment_index(s)]; }

/* Doubly linked lists through pool.links: partial[c] and full. */
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
 * least one block) each time, so that a slab is touched only as far as it is
 * used (a thread that allocates one block of a class costs one page, not a
 * slab).  Not doubling: with one partly used slab per class and thread, the
 * formatted but unused half of each cost small programs 0.3-0.9 MiB of peak
 * RSS (results/small-rss.md) for at most 0.2% more instructions.  Each
 * block is tagged free, so that a free of a block never handed out is caught
 * like a double free; blocks past the formatted part fail alloc_is_block_of.
 * Returns 0 when the slab is formatted whole. */
static size_t heap_segment_whole(const segment_t *s) { return (size_t)s->capacity * s->block_size; }

/* s's formatted part becomes span bytes: span, and block_limit with it
 * (alloc_is_block_of), both read by remote frees.  A part dropped (span
 * made smaller) held the program's data: what lies past span is no longer
 * known to be zero (zero_tail). */
static void heap_segment_set_span(segment_t *s, uintptr_t span) {
    if (span < s->span) s->zero_tail = 0;
    __atomic_store_n(&s->span, span, __ATOMIC_RELAXED);
    __atomic_store_n(&s->block_limit, span ? span / s->block_size * sizeclass_table[s->class_index].div_step : 0,
                     __ATOMIC_RELAXED);
}

#ifndef HEAP_FORMAT_DOUBLING /* 1: the former rule, as much again as is formatted (scripts/slab-rules.sh) */
#define HEAP_FORMAT_DOUBLING 0
#endif
static int heap_segment_extend(segment_t *s) {
    size_t size = s->block_size, whole = heap_segment_whole(s);
    if (s->span >= whole) return 0; /* also segment_none, whose sizes are 0 */
    size_t chunk = HEAP_FORMAT_DOUBLING && s->span ? s->span : HEAP_FORMAT_FIRST;
    size_t count = (chunk + size - 1) / size;
    if (s->span + count * size > whole) count = (whole - s->span) / size;
    uint8_t *first = (uint8_t *)s->block_start + s->span;
    block_t *link = s->free; /* NULL: only an empty list is extended */
    for (size_t i = count; i-- > 0;) {
        block_t *b = (block_t *)(first + i * size);
        alloc_link_set(s, b, link);
        b->free_tag = ALLOC_FREE_TAG;
        link = b;
    }
    s->free = link;
    heap_segment_set_span(s, s->span + count * size);
    return 1;
}

/* Format s, a run of slab segments, for class c, owned by h. */
static void heap_segment_format(heap_t *h, segment_t *s, unsigned c, unsigned slab) {
    const sizeclass_t *cls = &sizeclass_table[c];
    uint8_t *start = segment_address(segment_index(s));
    uint8_t dirty = 0;
    for (unsigned i = 0; i < slab; i++) {
        dirty |= s[i].dirty;
        s[i].dirty = 1;
    }
    for (unsigned i = 1; i < slab; i++) {
        s[i].kind = SEGMENT_SLAB_TAIL;
        s[i].head_distance = i * sizeof(segment_t);
        s[i].heap = NULL;
        alloc_set_owner(&s[i], 0);
    }
    s->free = NULL;
    s->block_start = (uintptr_t)start;
    s->block_size = cls->size;
    s->class_index = (uint8_t)c;
    heap_segment_set_span(s, 0);
    s->zero_tail = !dirty;
    s->used = 0;
    s->div_magic = cls->div_magic;
    s->link_key = pool.link_key;
    s->allocs = 0;
    s->head_distance = 0;
    s->slab_count = (uint8_t)slab;
    s->capacity = (uint32_t)(((size_t)slab << pool.segment_shift) / cls->size);
    s->kind = SEGMENT_BLOCKS;
    s->heap = h;
    alloc_set_owner(s, h->owner_tp);
    h->class_segments[c]++;
    heap_segment_extend(s);
}

/* s (no live block, on no list) goes back to the global pool. */
static void heap_segment_release(heap_t *h, segment_t *s) {
    h->segments_owned -= s->slab_count;
    heap_segment_unclass(h, s);
    segment_recycle(s, s->slab_count);
}

/* Class c has segments cached and not one live block: every segment it
 * holds is cached, or its current one, empty. */
static int heap_class_cold(const heap_t *h, unsigned c) {
    const segment_t *cur = h->current[c];
    if (!h->cached[c] || h->partial[c] || (cur->used & SEGMENT_LIVE_MASK) != 0) return 0;
    uint32_t held = cur != &segment_none;
    for (const segment_t *s = h->cached[c]; s; s = heap_link(s)->next) held++;
    return held == h->class_segments[c]; /* else some are full */
}

/* Give back one cached segment of a cold class other than keep, taking the
 * classes in turn.  0 when there is none. */
static int heap_cached_evict_cold(heap_t *h, unsigned keep) {
    for (unsigned i = 0; i < sizeclass_count; i++) {
        unsigned c = (h->evict_next + i) % sizeclass_count;
        if (c == keep || !heap_class_cold(h, c)) continue;
        h->evict_next = c + 1;
        heap_segment_release(h, heap_cached_pop(h, c));
        return 1;
    }
    return 0;
}

/* Segments of h's next slab of class c: the class's full slab, or under a
 * memory limit (pool.slabs_small) a small one first (sizeclass_t.slab_first)
 * and each further one twice the one before, up to the full slab.  The
 * pool commits 2 MiB regions, and RLIMIT_DATA counts what is committed: a
 * program that allocates a few blocks of many large classes would commit a
 * slab of 16-32 segments for each.  Without a limit the full slab is kept:
 * blocks freed into a class's earlier slabs wait there while the current
 * one formats more, which cost the tiny workload 3-6% of peak RSS.  A
 * multiple of slab_first leaves no more of itself unused than it does. */
static unsigned heap_slab_for(const heap_t *h, unsigned c) {
    const sizeclass_t *cls = &sizeclass_table[c];
    uint32_t held = h->class_segments[c]; /* slabs of the class in h */
    if (!atomic_load_explicit(&pool.slabs_small, memory_order_relaxed) || held >= 8 ||
        (cls->slab_first << held) >= cls->slab)
        return cls->slab;
    return cls->slab_first << held;
}

/* A fresh segment for class c: an empty one of another class reformatted,
 * else one from the global pool; NULL when the pool is exhausted. */
static segment_t *heap_segment_new(heap_t *h, unsigned c) {
    unsigned slab = heap_slab_for(h, c);
    segment_t *s = NULL;
    if (h->cached_count) {
        for (unsigned other = 0; other < sizeclass_count && !s; other++)
            if (h->cached[other] && h->cached[other]->slab_count == slab) {
                s = heap_cached_pop(h, other);
                heap_segment_unclass(h, s);
            }
    }
    if (!s) {
        int huge = (h->segments_owned << pool.segment_shift) >= HEAP_HUGE_MIN_BYTES &&
                   sizeclass_table[c].size <= HEAP_HUGE_MAX_BLOCK;
        s = segment_request(slab, huge);
        if (!s) return NULL;
        h->segments_owned += slab;
    }
    heap_segment_format(h, s, c, slab);
    return s;
}

/* s has no live block and is on no list: keep it formatted, or give it
 * back.  When the cache is full, segments of classes the program no longer
 * uses (not one live block) make room: a program that moves on from one
 * block size to the next would otherwise send its idle slabs back to the
 * pool and ask for them again.  Otherwise the segments kept are the first to
 * come idle, not the last: those of a phase that frees most of a heap still
 * in use lie in few regions, which can then go back whole. */
static void heap_segment_idle(heap_t *h, segment_t *s) {
    SEGPOOL_ASSERT(s->heap == h && s->used == 0);
    unsigned c = s->class_index;
    while (h->cached_count + s->slab_count > h->cache_limit && heap_cached_evict_cold(h, c)) {
    }
    if (h->cached_count + s->slab_count <= h->cache_limit) {
        heap_link(s)->next = h->cached[c];
        h->cached[c] = s;
        h->cached_count += s->slab_count;
        return;
    }
    heap_segment_release(h, s);
}

/* Give every kept empty segment back to the global pool. */
static void heap_cached_flush(heap_t *h) {
    for (unsigned c = 0; c < sizeclass_count; c++) {
        segment_t *s;
        while ((s = heap_cached_pop(h, c)) != NULL) heap_segment_release(h, s);
    }
}

/* serving[c] and the direct[] entries of class c become s. */
static void heap_set_serving(heap_t *h, unsigned c, segment_t *s) {
    h->serving[c] = s;
    for (unsigned step = sizeclass_table[c].step_first; step <= sizeclass_table[c].step_last; step++)
        h->direct[step] = s;
}

/* Class c's kept list serves it (it holds blocks). */
static int heap_kept_serving(const heap_t *h, unsigned c) { return h->serving[c] == &h->kept[c]; }

/* current[c] becomes s, which also serves the class unless its kept list does. */
static void heap_set_current(heap_t *h, unsigned c, segment_t *s) {
    h->current[c] = s;
    if (!heap_kept_serving(h, c)) heap_set_serving(h, c, s);
}

static void heap_install(heap_t *h, unsigned c, segment_t *s) {
    SEGPOOL_ASSERT(s->heap == h && s->class_index == c && (s->used & ~SEGMENT_LIVE_MASK) == 0);
    s->used += SEGMENT_CURRENT;
    heap_set_current(h, c, s);
}

static int heap_remote_refill(heap_t *h, segment_t *s);

/* Class c's current segment stops being current: to the list its state says.
 * Its remote list, if it was watched, is taken first (while it is current,
 * so that the take moves it nowhere). */
static void heap_uninstall(heap_t *h, unsigned c) {
    segment_t *s = h->current[c];
    if (s == &segment_none) return;
    heap_remote_refill(h, s);
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

/* The head of the remote list in word (a segment_link_t.remote of s), not
 * checked; NULL when the list is empty. */
static block_t *heap_remote_head(const segment_t *s, uint64_t word) {
    if ((word >> SEGMENT_REMOTE_COUNT_SHIFT) == 0) return NULL;
    return (block_t *)(s->block_start + (word & SEGMENT_REMOTE_OFFSET_MASK));
}

/* The same, checked by whoever takes the list: the head is a block of s and
 * the list holds no more blocks than s has live (each block on it is live
 * until taken; more means a block was freed twice at once). */
static block_t *heap_remote_checked_head(const segment_t *s, uint64_t word) {
    block_t *head = heap_remote_head(s, word);
    if (head && ((word >> SEGMENT_REMOTE_COUNT_SHIFT) > (s->used & SEGMENT_LIVE_MASK) || !alloc_is_block_of(s, head)))
        alloc_report("free(): corrupted list of blocks freed by other threads", head);
    return head;
}

/* The n-th block of the list that starts at f (n >= 1), which must end
 * there; each link checked. */
static block_t *heap_list_tail(const segment_t *s, block_t *f, size_t n) {
    while (--n > 0)
        if ((f = heap_free_next(s, f)) == NULL) alloc_report("malloc(): corrupted free list", s->free);
    if (heap_free_next(s, f) != NULL) alloc_report("malloc(): corrupted free list", f);
    return f;
}

/* Join a remote list (head, count blocks) to s's free list.  An empty free
 * list (the common case: s ran dry, or was full) just becomes the remote
 * list.  Otherwise one of the two must be walked to its tail: the shorter,
 * whose length is known (the free list holds the formatted blocks that are
 * not live).  This walk is the price of taking a partly free segment's list
 * now rather than keeping a second list on every segment, which every check
 * of "no free block" would then have to read; a current segment avoids it
 * (watched, see heap_remote_collect). */
static void heap_remote_splice(segment_t *s, block_t *head, uint32_t count) {
    if (s->free == NULL) {
        s->free = head;
        return;
    }
    size_t free_len = s->span / s->block_size - (s->used & SEGMENT_LIVE_MASK);
    if (free_len <= count) {
        alloc_link_set(s, heap_list_tail(s, s->free, free_len), head);
    } else {
        alloc_link_set(s, heap_list_tail(s, head, count), s->free);
        s->free = head;
    }
}

/* Take word, the remote list just exchanged out of s, into s (acting for h):
 * its blocks join the free list and leave the live count, and s moves to the
 * list its state says, as for local frees (heap_free_slow). */
static void heap_remote_take(heap_t *h, segment_t *s, uint64_t word) {
    block_t *head = heap_remote_checked_head(s, word);
    if (!head) return;
    uint32_t count = (uint32_t)(word >> SEGMENT_REMOTE_COUNT_SHIFT);
    heap_remote_splice(s, head, count);
    h->remote_frees += count;
    h->remote_collects++;
    s->used -= count;
    if ((int32_t)s->used <= 0) heap_free_slow(s);
}

/* If s was left watched, take its list and clear its QUEUED bit in one
 * exchange, so that the next remote free queues it again.  Returns 1 when s
 * is current and has free blocks now (a segment that is not current may
 * have gone back to the pool: it is not read again). */
static int heap_remote_refill(heap_t *h, segment_t *s) {
    if (s == &segment_none) return 0;
    segment_link_t *l = heap_link(s);
    if (!l->watched) return 0;
    l->watched = 0;
    int current = (s->used & SEGMENT_CURRENT) != 0;
    heap_remote_take(h, s, atomic_exchange_explicit(&l->remote, 0, memory_order_acq_rel));
    return current && s->free != NULL;
}

/* Every live block of s (not current) is on its remote list, just exchanged
 * out as word: s is empty.  Its lists are dropped with its formatting (span
 * 0: formatted again lazily if it serves its class again), so that neither
 * list is walked; a block freed after this is past the formatted part, which
 * heap_check_block reports as a double free. */
static void heap_remote_take_all(heap_t *h, segment_t *s, uint64_t word) {
    heap_remote_checked_head(s, word);
    uint32_t count = (uint32_t)(word >> SEGMENT_REMOTE_COUNT_SHIFT);
    s->free = NULL;
    heap_segment_set_span(s, 0);
    h->remote_frees += count;
    h->remote_collects++;
    s->used -= count; /* 0 */
    heap_free_slow(s);
}

/* Does s's remote list hold every live block of s (and at least one)? */
static int heap_remote_holds_all(const segment_t *s, segment_link_t *l) {
    uint64_t count = atomic_load_explicit(&l->remote, memory_order_relaxed) >> SEGMENT_REMOTE_COUNT_SHIFT;
    return count != 0 && count == (s->used & SEGMENT_LIVE_MASK);
}

/* s came off h's queue: its QUEUED bit is h's to clear.
 *  - s has no free block (it ran dry, or is full): its list is taken now and
 *    becomes its free list, and the exchange clears the bit;
 *  - the list holds every live block of a segment that is not current: s is
 *    empty (heap_remote_take_all);
 *  - otherwise s keeps the bit and its list (watched): no thread queues it
 *    again, and the list is taken in O(1) when s is current and its free
 *    list runs dry (heap_alloc_slow), or joined to the free list by
 *    heap_uninstall, heap_collect and thread exit.  A partly free segment
 *    that is not current is not needed before it is current again, and this
 *    spares a walk of either list (one cache miss per block) to join them. */
static void heap_remote_dequeued(heap_t *h, segment_t *s) {
    if (s->kind != SEGMENT_BLOCKS || s->heap != h)
        alloc_report("free(): corrupted queue of segments freed into by other threads", s);
    h->remote_queued++;
}

static void heap_remote_collect(heap_t *h, segment_t *s) {
    heap_remote_dequeued(h, s);
    segment_link_t *l = heap_link(s);
    if (s->free == NULL) {
        heap_remote_take(h, s, atomic_exchange_explicit(&l->remote, 0, memory_order_acq_rel));
    } else if (!(s->used & SEGMENT_CURRENT) && heap_remote_holds_all(s, l)) {
        /* No live block is left to free: the count cannot change before the exchange. */
        heap_remote_take_all(h, s, atomic_exchange_explicit(&l->remote, 0, memory_order_acq_rel));
    } else {
        l->watched = 1;
    }
}

/* Take the lists of h's watched segments that are not current (heap_collect,
 * thread exit): joined to their free lists, walking the shorter. */
static void heap_remote_refill_partial(heap_t *h) {
    for (unsigned c = 0; c < sizeclass_count; c++) {
        segment_t *next;
        for (segment_t *s = h->partial[c]; s; s = next) {
            next = heap_link(s)->next; /* s may leave the list */
            heap_remote_refill(h, s);
        }
    }
}

/* Collect every segment of a queue taken from h. */
static void heap_remote_collect_all(heap_t *h, segment_t *s) {
    while (s) {
        /* Read before the bit is cleared: from then on s may be queued again. */
        segment_t *next = heap_link(s)->queue_next;
        heap_remote_collect(h, s);
        s = next;
    }
}

/* Take h's queue (a live heap, its thread). */
static void heap_drain_remote(heap_t *h) {
    if (atomic_load_explicit(&h->remote, memory_order_relaxed) == 0) return;
    uintptr_t list = atomic_exchange_explicit(&h->remote, 0, memory_order_acquire);
    heap_remote_collect_all(h, (segment_t *)list);
}

/* What a bad pointer is called in the report of the call it was given to. */
typedef struct heap_misuse_s {
    const char *freed;     /* freed already, or never handed out */
    const char *inside;    /* inside a block, not at its start */
    const char *not_block; /* in a segment that serves no class */
} heap_misuse_t;

static const heap_misuse_t heap_misuse_free = {"free(): double free detected",
                                               "free(): invalid pointer (inside a block)",
                                               "free(): invalid pointer (not an allocated block)"};
static const heap_misuse_t heap_misuse_realloc = {"realloc(): invalid pointer (freed already)",
                                                  "realloc(): invalid pointer (inside a block)",
                                                  "realloc(): invalid pointer (not an allocated block)"};

/* b lies in s's slab: is it one of the blocks handed out?  A block past the
 * formatted part was never handed out, so giving it back is giving back a
 * free block.  m names the call in the report. */
static void heap_check_block_as(const segment_t *s, const block_t *b, const heap_misuse_t *m) {
    if (alloc_is_block_of_shared(s, b)) return; /* also called by threads that do not own s */
    uintptr_t n = (uintptr_t)b - s->block_start;
    if (n >= __atomic_load_n(&s->span, __ATOMIC_RELAXED) && n % s->block_size == 0) alloc_report(m->freed, b);
    alloc_report(m->inside, b);
}

static void heap_check_block(const segment_t *s, const block_t *b) { heap_check_block_as(s, b, &heap_misuse_free); }

/* b lies in s, which serves no class. */
static SEGPOOL_NOINLINE void heap_not_blocks(const segment_t *s, const block_t *b, const heap_misuse_t *m) {
    if (s->kind == SEGMENT_FREE) /* its segment went back to the pool: freed already, or never a block */
        alloc_report(m->freed, b);
    alloc_report(m->not_block, b);
}

/* b (in s) carries the free tag: is its link good under the slabs' key,
 * NULL or a block of the slab?  Then it is on one of s's lists, or a copy
 * written back (see "Double frees").  Read by any thread: the key is the
 * global's, not s's copy on the owner's line. */
static int heap_block_seems_free(const segment_t *s, const block_t *b) {
    if (!alloc_looks_free(b)) return 0;
    block_t *next = alloc_link_decode(pool.link_key, b);
    return next == NULL || alloc_in_slab(s, next);
}

/* b (in s) carries the free tag: is its link good under the kept lists'
 * key, NULL or a block of s's class (in any segment)?  Then it is on a
 * thread's kept list.  Other heaps' segments are read with relaxed loads. */
static int heap_block_seems_kept(const segment_t *s, const block_t *b) {
    const block_t *next = alloc_link_decode(pool.kept_key, b);
    if (next == NULL) return 1;
    uintptr_t off = (uintptr_t)next - pool.base;
    if (off >= __atomic_load_n(&pool.size, __ATOMIC_ACQUIRE)) return 0;
    const segment_t *ns = segment_head(&pool.segments[off >> pool.segment_shift]);
    return __atomic_load_n(&ns->kind, __ATOMIC_RELAXED) == SEGMENT_BLOCKS && ns->class_index == s->class_index &&
           alloc_is_block_of_shared(ns, next);
}

/* How many blocks at the head of a list a tagged block whose link is good
 * under no key is looked for (see "Double frees"): each costs a free of
 * data equal to the tag one decode. */
#define HEAP_OVERWRITE_SEARCH 8

/* Is b among the first HEAP_OVERWRITE_SEARCH (and count) blocks of the list
 * of r that starts at f?  Each link is checked to lie in r's bounds (a slab,
 * or for a kept list the arena). */
static int heap_list_head_holds(const segment_t *r, const block_t *f, const block_t *b, uint64_t count) {
    for (unsigned i = 0; f != NULL && i < HEAP_OVERWRITE_SEARCH && i < count; i++) {
        if (f == b) return 1;
        const block_t *next = alloc_link_next(r, f);
        if (next && !alloc_in_slab(r, next)) alloc_report("malloc(): corrupted free list", f);
        f = next;
    }
    return 0;
}

/* Is b near the head of s's free list or of its remote list (s's thread or
 * its heap's lock holder; the remote list read in place, as below)? */
static int heap_lists_head_hold(const segment_t *s, const block_t *b) {
    if (heap_list_head_holds(s, heap_free_head(s), b, UINT64_MAX)) return 1;
    uint64_t word = atomic_load_explicit(&heap_link(s)->remote, memory_order_acquire);
    const block_t *f = heap_remote_head(s, word);
    if (f && !alloc_is_block_of(s, f)) alloc_report("free(): corrupted list of blocks freed by other threads", f);
    return heap_list_head_holds(s, f, b, word >> SEGMENT_REMOTE_COUNT_SHIFT);
}

/* Is b free in s: on its free list or on its remote list?  One O(1) answer
 * first, for a freed block's words written back into it once it is live
 * again (a program that reads freed memory): if b were on a list, the block
 * its link names would not be the free list's head (nothing links to it; a
 * remote list never links into the free list).  (That block's own tag says
 * nothing: a write after free may have cleared it.)  Otherwise a walk of
 * each list, at most the slab's capacity.  The remote list is walked
 * in place: its blocks are only ever taken by whoever calls this (h's thread,
 * or its lock holder); other threads only push in front of the head read. */
static int heap_list_holds(const segment_t *s, const block_t *b) {
    block_t *next = alloc_link_next(s, b);
    if (next && next == s->free) return 0;
    uint32_t capacity = s->capacity;
    uint32_t limit = capacity;
    for (block_t *f = heap_free_head(s); f; f = heap_free_next(s, f)) {
        if (f == b) return 1;
        if (limit-- == 0) alloc_report("malloc(): corrupted free list (a cycle)", f);
    }
    uint64_t word = atomic_load_explicit(&heap_link(s)->remote, memory_order_acquire);
    uint64_t count = word >> SEGMENT_REMOTE_COUNT_SHIFT;
    if (count > capacity) alloc_report("free(): corrupted list of blocks freed by other threads", b);
    block_t *f = heap_remote_head(s, word);
    if (f && !alloc_is_block_of(s, f)) alloc_report("free(): corrupted list of blocks freed by other threads", f);
    for (; f && count > 0; f = heap_free_next(s, f), count--)
        if (f == b) return 1;
    return 0;
}

/* What b, a block of s that carries the free tag, is (see "Double
 * frees"), as seen by whoever acts for s's heap (owner nonzero) or by
 * another thread, which leaves a link good under the slabs' key to the
 * owner. */
typedef enum heap_tagged_e { HEAP_TAGGED_LIVE, HEAP_TAGGED_FREED, HEAP_TAGGED_OWNER_DECIDES } heap_tagged_t;

static heap_tagged_t heap_tagged_block(const segment_t *s, const block_t *b, int owner) {
    if (heap_block_seems_free(s, b)) {
        if (!owner) return HEAP_TAGGED_OWNER_DECIDES;
        return heap_list_holds(s, b) ? HEAP_TAGGED_FREED : HEAP_TAGGED_LIVE;
    }
    if (heap_block_seems_kept(s, b)) return HEAP_TAGGED_FREED;
    const segment_t *k = &tls_heap->kept[s->class_index];
    int near = owner ? heap_lists_head_hold(s, b) : heap_list_head_holds(k, k->free, b, UINT64_MAX);
    return near ? HEAP_TAGGED_FREED : HEAP_TAGGED_LIVE;
}

/* The check of a free of b, a block of h's segment s, by whoever acts for
 * h; then the free. */
static void heap_free_exact(segment_t *s, block_t *b) {
    heap_check_block(s, b);
    if (alloc_looks_free(b) && heap_tagged_block(s, b, 1) == HEAP_TAGGED_FREED)
        alloc_report("free(): double free detected", b);
    alloc_free_local(s, b);
}

/* The fast path of free found b not at a block start, or carrying the tag. */
void heap_free_suspect(block_t *b, segment_t *s) { heap_free_exact(s, b); }

/* Notes for suspects come from metadata chunks and are reused through a
 * free list: nothing here allocates through the pool. */
static pthread_mutex_t heap_note_lock = PTHREAD_MUTEX_INITIALIZER;
static heap_suspect_t *heap_note_free;

#define HEAP_NOTE_CHUNK ((size_t)64 << 10) /* bytes of notes mapped at a time */

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
        h->remote_frees++;
        heap_free_exact(s, b);
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

/* ---- Dead heaps --------------------------------------------------------------------- */

/* A dead heap's thread has exited, and whoever holds its lock acts for it.
 * Remote frees go on as for a live heap: a free that finds a segment's list
 * idle queues the segment on the heap (the push keeps the DEAD mark), then
 * tries the lock.  The thread that gets it takes the lists of every segment
 * queued (heap_dead_collect); a thread that finds it busy just leaves, for
 * the holder looks at the queue again after it lets go (heap_unlock), and
 * so on until the queue is empty when the lock is free.  So no free waits on
 * a dead heap's lock, and none of its blocks is left behind: a push and the
 * holder's release are each followed by a full fence, so at least one of
 * the two threads sees the other's write.  Adoption clears the mark and
 * leaves the queue to the heap's new thread. */

static void heap_lock(heap_t *h) { lock_acquire_counted(&h->lock, &h->lock_count); }
static int heap_trylock(heap_t *h) { return lock_try_counted(&h->lock, &h->lock_count); }

/* Segments queued on h while it is dead, not yet taken. */
static int heap_dead_pending(heap_t *h) {
    uintptr_t queue = atomic_load_explicit(&h->remote, memory_order_acquire);
    return (queue & HEAP_REMOTE_DEAD) && queue != HEAP_REMOTE_DEAD;
}

/* Take dead h's queue and the list of each segment on it (h's lock held).
 * An orphan's lists may be torn: its blocks stay where they are. */
static void heap_dead_collect(heap_t *h) {
    uintptr_t queue = atomic_exchange_explicit(&h->remote, HEAP_REMOTE_DEAD, memory_order_acquire);
    if (h->state == HEAP_ORPHAN) return;
    segment_t *next;
    for (segment_t *s = (segment_t *)(queue & ~HEAP_REMOTE_DEAD); s; s = next) {
        next = heap_link(s)->queue_next; /* read before the exchange lets s be queued again */
        heap_remote_dequeued(h, s);
        heap_remote_take(h, s, atomic_exchange_explicit(&heap_link(s)->remote, 0, memory_order_acq_rel));
    }
}

/* h's lock was just released: if segments were queued on h, dead, by threads
 * that found the lock busy, take the lock if it is free, and them.  Returns
 * 1 with the lock held again. */
static int heap_dead_claim(heap_t *h) {
    atomic_thread_fence(memory_order_seq_cst);
    if (!heap_dead_pending(h) || !heap_trylock(h)) return 0;
    if (heap_dead_pending(h)) heap_dead_collect(h); /* unless adopted meanwhile */
    return 1;
}

static void heap_unlock(heap_t *h) {
    do lock_release(&h->lock);
    while (heap_dead_claim(h));
}

/* Queue s on h: a remote free set s's QUEUED bit, so s is on no queue. */
static SEGPOOL_NOINLINE void heap_remote_queue(heap_t *h, segment_t *s) {
    segment_link_t *l = heap_link(s);
    uintptr_t old = atomic_load_explicit(&h->remote, memory_order_relaxed);
    do l->queue_next = (segment_t *)(old & ~HEAP_REMOTE_DEAD);
    while (!atomic_compare_exchange_weak_explicit(&h->remote, &old, (uintptr_t)s | (old & HEAP_REMOTE_DEAD),
                                                  memory_order_release, memory_order_relaxed));
    if (unlikely(old & HEAP_REMOTE_DEAD) && heap_dead_claim(h)) heap_unlock(h);
}

static void heap_free_dead(heap_t *owner, segment_t *s, block_t *b);

/* A remote free of b that looks free already: maybe a double free, which
 * the owner decides (or, for a dead heap, whoever acts for it). */
static SEGPOOL_NOINLINE void heap_free_remote_suspect(heap_t *owner, segment_t *s, block_t *b) {
    heap_lock(owner);
    int live = owner->state == HEAP_LIVE;
    if (live) heap_suspect_push(owner, b);
    heap_unlock(owner);
    if (!live) heap_free_dead(owner, s, b);
}

/* Push b (checked) on its segment s's remote list, owned by owner: one CAS;
 * the free that finds the list idle (QUEUED clear) also queues the segment
 * on its heap.  Nothing is counted here: the owner counts the blocks it
 * takes in (heap_t.remote_frees), the statistics add those still on remote
 * lists. */
static void heap_free_home(heap_t *owner, segment_t *s, block_t *b) {
    segment_link_t *l = heap_link(s);
    uint64_t offset = (uintptr_t)b - s->block_start, failed = 0;
    uint64_t old = atomic_load_explicit(&l->remote, memory_order_relaxed), word;
    for (;;) {
        /* s's own key is pool.link_key: read there, not on the owner's line. */
        b->next = alloc_link_encode(pool.link_key, b, heap_remote_head(s, old));
        b->free_tag = ALLOC_FREE_TAG;
        word = (((old >> SEGMENT_REMOTE_COUNT_SHIFT) + 1) << SEGMENT_REMOTE_COUNT_SHIFT) | offset | SEGMENT_REMOTE_QUEUED;
        /* acq_rel: b's words go out with it, and the owner's read of
         * queue_next before it cleared QUEUED comes before our write of it. */
        if (atomic_compare_exchange_weak_explicit(&l->remote, &old, word, memory_order_acq_rel, memory_order_relaxed))
            break;
        failed++;
    }
    if (unlikely(failed)) atomic_fetch_add_explicit(&owner->remote_contended, failed, memory_order_relaxed);
    if (!(old & SEGMENT_REMOTE_QUEUED)) heap_remote_queue(owner, s);
}

/* ---- Kept blocks (see the top of this file) ---------------------------------------- */

/* Keep b, a block of class c that the calling thread frees (its heap h, which
 * does not own b): 0 when h's kept list of c is full (and always for
 * heap_none, whose lists have no room).  A kept list's used is
 * its room: keep_max when empty, one less for each block kept, one more for
 * each handed out (alloc_take), so the fast path needs no other counter. */
static int heap_keep(heap_t *h, unsigned c, block_t *b) {
    segment_t *r = &h->kept[c];
    if (r->used == 0) return 0;
    r->used--;
    alloc_link_set(r, b, r->free);
    b->free_tag = ALLOC_FREE_TAG;
    r->free = b;
    if (!heap_kept_serving(h, c)) heap_set_serving(h, c, r);
    return 1;
}

/* Class c's kept list stops serving it (it ran dry, or is sent home): its
 * current segment serves again, and its allocations go to the class's. */
static void heap_kept_unserve(heap_t *h, unsigned c) {
    segment_t *r = &h->kept[c];
    h->requests[c] += r->allocs;
    h->kept_reused += r->allocs;
    r->allocs = 0;
    heap_set_serving(h, c, h->current[c]);
}

/* p, in the arena, is to be used as a live block (realloc): report what its
 * free would, without freeing it.  A tagged block whose link is good under
 * the slabs' key is checked against its lists by the owner; another thread
 * cannot walk them and reports it (only a freed block's words written back
 * into it pass for that, see "Double frees"). */
void heap_check_live(const void *p) {
    const segment_t *s = segment_of(p);
    const block_t *b = p;
    if (__atomic_load_n(&s->kind, __ATOMIC_RELAXED) != SEGMENT_BLOCKS) heap_not_blocks(s, b, &heap_misuse_realloc);
    heap_check_block_as(s, b, &heap_misuse_realloc);
    if (alloc_looks_free(b) && heap_tagged_block(s, b, alloc_owner(s) == alloc_thread_id()) != HEAP_TAGGED_LIVE)
        alloc_report(heap_misuse_realloc.freed, p);
}

/* Send h's kept blocks home, with their lists (heap_collect, thread exit). */
static void heap_kept_return(heap_t *h) {
    for (unsigned c = 0; c < sizeclass_count; c++) {
        segment_t *r = &h->kept[c];
        if (heap_kept_serving(h, c)) heap_kept_unserve(h, c);
        while (r->free != NULL) {
            if (!alloc_can_pop(r)) alloc_report("malloc(): corrupted free list", r->free);
            block_t *b = alloc_take(r);
            r->allocs--; /* not handed out */
            segment_t *s = segment_of(b);
            heap_free_home(s->heap, s, b);
        }
        SEGPOOL_ASSERT(r->used == sizeclass_table[c].keep_max);
    }
}

/* b lies in a segment this thread does not own, or in no block segment at
 * all; s is the head of its slab (alloc_free_at resolved it, and
 * heap_free_dead passes on what it was given).  Checked (see "Double
 * frees"), then kept by the calling thread (see "Kept blocks") or sent
 * home. */
void heap_free_remote(block_t *b, segment_t *s) {
    SEGPOOL_ASSERT(s->head_distance == 0);
    if (unlikely(s->kind != SEGMENT_BLOCKS)) heap_not_blocks(s, b, &heap_misuse_free);
    heap_check_block(s, b);
    heap_t *owner = s->heap;
    if (unlikely(alloc_looks_free(b))) {
        heap_tagged_t seen = heap_tagged_block(s, b, 0);
        if (seen == HEAP_TAGGED_FREED) alloc_report("free(): double free detected", b);
        if (seen == HEAP_TAGGED_OWNER_DECIDES) {
            heap_free_remote_suspect(owner, s, b);
            return;
        }
    }
    /* Never h's own block: its segments carry h's thread pointer, which sent
     * the free to the local path.  heap_none's kept lists have no room. */
    heap_t *h = tls_heap;
    SEGPOOL_ASSERT(h != owner || h == &heap_none);
    if (heap_keep(h, s->class_index, b)) return;
    heap_free_home(owner, s, b);
}

/* A suspect free into a dead heap: act for it under its lock. */
static void heap_free_dead(heap_t *owner, segment_t *s, block_t *b) {
    heap_lock(owner);
    if (!(atomic_load(&owner->remote) & HEAP_REMOTE_DEAD)) {
        /* Adopted meanwhile: it is a live heap again. */
        heap_unlock(owner);
        heap_free_remote(b, s);
        return;
    }
    if (owner->state != HEAP_ORPHAN) {
        owner->remote_frees++;
        heap_free_exact(s, b);
    }
    heap_unlock(owner);
}

/* Take remote frees and suspects, give back current segments with no live
 * block and every cached segment. */
void heap_collect(heap_t *h) {
    if (h == &heap_none) return;
    heap_kept_return(h);
    heap_drain_remote(h);
    heap_check_suspects(h);
    heap_remote_refill_partial(h);
    for (unsigned c = 0; c < sizeclass_count; c++) {
        segment_t *s = h->current[c];
        heap_remote_refill(h, s);
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
    if (heap_kept_serving(h, c)) {
        /* The kept list ran dry, or its head failed the fast path's check.
         * A thread that keeps blocks comes here often: the current segment
         * serves again at once, the rest of the slow path when it runs dry.
         * heap_free_head tells a head that fails the check (reported) from
         * one the caller did not try to pop (malloc(0), which skips the
         * fast path) or that a signal handler's free kept since it tried. */
        if (heap_free_head(&h->kept[c]) != NULL) return alloc_take(&h->kept[c]);
        heap_kept_unserve(h, c);
        void *p = alloc_pop(h, c);
        if (p) return p;
    }
    heap_drain_remote(h);
    if (unlikely(atomic_load_explicit(&h->suspects, memory_order_relaxed) != NULL)) heap_check_suspects(h);
    segment_t *s = h->current[c];
    /* Blocks other threads freed into s come before formatting more of it. */
    while (heap_free_head(s) == NULL && !heap_remote_refill(h, s) && !heap_segment_extend(s))
        if ((s = heap_next_segment(h, c)) == NULL) return NULL;
    return alloc_take(s);
}

/* ---- Zeroed blocks (calloc) -------------------------------------------------------------- */

/* calloc clears only what may not be zero.  A slab formatted from segments
 * that nothing used since their region was committed (none dirty: a fresh
 * region, or one given back, whose pages the kernel zeroes) has zero_tail
 * set: every byte past its formatted part is zero.  So when the current
 * segment of the class has no free block (and no remote frees to take), a
 * zeroed block is carved from there: the formatted part grows by one block,
 * which is handed out without its header written, and calloc neither writes
 * nor touches a page of it (glibc's calloc skips a fresh top chunk the same
 * way).  The first block handed out of such a slab since it was formatted
 * (allocs 1) is zero too: only its header was written (free list link and
 * tag), and handing it out cleared both.  That count says nothing of a
 * block of another thread's slab (a kept one, which the program had).
 * Anything else is cleared.  A large calloc'ed buffer that the program fills
 * only in part so stays out of the resident set. */

/* One more block of s's slab, past its formatted part, handed out as is;
 * NULL when the slab is formatted whole. */
static block_t *heap_segment_carve(segment_t *s) {
    uintptr_t span = s->span;
    if (span + s->block_size > heap_segment_whole(s)) return NULL;
    heap_segment_set_span(s, span + s->block_size);
    s->used++;
    s->allocs++;
    return (block_t *)(s->block_start + span);
}

/* calloc once alloc_pop(h, c) found no block (alloc_small_zeroed). */
void *heap_alloc_zeroed(heap_t *h, unsigned c, size_t bytes) {
    segment_t *s = h->serving[c];
    if (s->zero_tail && s == h->current[c] && s->free == NULL && !heap_remote_refill(h, s)) {
        block_t *b = heap_segment_carve(s);
        if (b) return b;
    }
    void *p = heap_alloc_slow(h, c);
    if (p == NULL) return NULL;
    /* A block of another thread's slab (a kept one) was the program's. */
    const segment_t *from = segment_of(p);
    if (!(alloc_owner(from) == alloc_thread_id() && from->zero_tail && from->allocs == 1)) memset(p, 0, bytes);
    return p;
}

/* ---- Heaps: creation, adoption, thread exit -------------------------------------------- */

/* Heaps are carved from metadata chunks, HEAP_CHUNK_HEAPS at a time, each on
 * its own cache lines, and never unmapped.  pool.heaps_lock, the heap list's,
 * is taken only here: the list is read without it (heaps are published with
 * a release store and never unlinked). */
#define HEAP_CHUNK_HEAPS 32
#define HEAP_LINE 64
static heap_t *heap_new(void) {
    static uint8_t *chunk;
    static size_t left;
    size_t need = (sizeof(heap_t) + HEAP_LINE - 1) & ~(size_t)(HEAP_LINE - 1);
    lock_acquire_counted(&pool.heaps_lock, &pool.heaps_lock_count);
    if (left < need) {
        size_t bytes = need * HEAP_CHUNK_HEAPS;
        uint8_t *fresh = os_alloc_meta(bytes);
        if (!fresh) {
            lock_release(&pool.heaps_lock);
            return NULL;
        }
        chunk = fresh;
        left = bytes;
    }
    heap_t *h = (heap_t *)chunk;
    chunk += need;
    left -= need;
    for (unsigned c = 0; c < SEGPOOL_MAX_CLASSES; c++) {
        h->current[c] = h->serving[c] = &segment_none;
        /* A kept list's bounds are the arena's reserve: its blocks lie anywhere in it. */
        h->kept[c].kind = SEGMENT_KEPT;
        h->kept[c].class_index = (uint8_t)c;
        h->kept[c].block_start = pool.base;
        h->kept[c].link_key = pool.kept_key;
        h->kept[c].span = pool.region_max << SEGPOOL_REGION_SHIFT;
        h->kept[c].used = c < sizeclass_count ? sizeclass_table[c].keep_max : 0; /* its room */
    }
    for (unsigned i = 0; i < HEAP_DIRECT_STEPS; i++) h->direct[i] = &segment_none;
    pthread_mutex_init(&h->lock, NULL);
    h->owner_tp = alloc_thread_id();
    h->next_heap = pool.heaps;
    __atomic_store_n(&pool.heaps, h, __ATOMIC_RELEASE);
    __atomic_add_fetch(&pool.heaps_total, 1, __ATOMIC_RELAXED);
    lock_release(&pool.heaps_lock);
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

/* Adopt h for the calling thread if its lock is free and it is still dead.
 * Segments queued on it while it was dead stay queued: the mark goes, and
 * its new thread takes them in its next slow path. */
static int heap_try_adopt(heap_t *h) {
    if (!heap_trylock(h)) return 0;
    int dead = h->state == HEAP_DEAD;
    if (dead) {
        heap_set_owner(h, alloc_thread_id());
        h->state = HEAP_LIVE;
        atomic_store_explicit(&h->adoptable, HEAP_ADOPT_NONE, memory_order_relaxed);
        atomic_fetch_and_explicit(&h->remote, ~HEAP_REMOTE_DEAD, memory_order_acq_rel);
    }
    heap_unlock(h);
    return dead;
}

/* A dead heap, adopted; one that still owns segments first (its memory is
 * reused).  Nothing here waits: a heap whose lock is busy is passed over. */
static heap_t *heap_adopt(void) {
    for (uint8_t want = HEAP_ADOPT_OWNS; want >= HEAP_ADOPT_EMPTY; want--)
        for (heap_t *h = __atomic_load_n(&pool.heaps, __ATOMIC_ACQUIRE); h; h = h->next_heap)
            if (atomic_load_explicit(&h->adoptable, memory_order_relaxed) == want && heap_try_adopt(h)) return h;
    return NULL;
}

/* A heap for the calling thread: a dead one adopted, else a new one. */
static heap_t *heap_acquire(void) {
    if (tls_thread_done || pool_init() != 0) return NULL;
    heap_t *h = heap_adopt();
    if (!h && (h = heap_new()) == NULL) return NULL;
    h->cache_limit = (uint32_t)pool.config.tcache;
    __atomic_add_fetch(&pool.heaps_live, 1, __ATOMIC_RELAXED);
    tls_heap = h;
    /* May allocate (through this heap, already installed). */
    pthread_setspecific(pool.thread_key, h);
    return h;
}

/* Make h dead: take its queue (the same exchange marks it dead: later
 * queuers keep the mark, see "Dead heaps"), take every watched list
 * (heap_uninstall), give back its empty segments, and leave the others on
 * its lists for whoever frees into them or adopts it. */
static void heap_abandon_locked(heap_t *h) {
    uintptr_t queue = atomic_exchange(&h->remote, HEAP_REMOTE_DEAD);
    h->state = HEAP_DEAD;
    h->cache_limit = 0;
    heap_remote_collect_all(h, (segment_t *)queue);
    heap_check_suspects(h);
    heap_remote_refill_partial(h);
    for (unsigned c = 0; c < sizeclass_count; c++) heap_uninstall(h, c);
    heap_cached_flush(h);
    heap_set_owner(h, 0); /* before the thread pointer can be reused */
    atomic_store_explicit(&h->adoptable, h->segments_owned ? HEAP_ADOPT_OWNS : HEAP_ADOPT_EMPTY,
                          memory_order_relaxed);
}

static void heap_thread_done(void *arg) {
    heap_t *h = arg;
    tls_heap = &heap_none;
    tls_thread_done = 1;
    heap_kept_return(h);
    heap_lock(h);
    heap_abandon_locked(h);
    SEGPOOL_CHECK_HEAP(h);
    heap_unlock(h);
    __atomic_sub_fetch(&pool.heaps_live, 1, __ATOMIC_RELAXED);
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

/* Per thread, so that no call that reaches glibc writes a line every thread
 * writes: the heap's counters grow by relaxed stores from its own thread
 * only (a plain add, no lock prefix); a thread with no heap counts in the
 * pool's atomics. */
static void heap_count_add(uint64_t *counter, size_t bytes) {
    __atomic_store_n(counter, *counter + bytes, __ATOMIC_RELAXED);
}

void heap_note_fallback_bytes(size_t taken, size_t freed) {
    heap_t *h = tls_heap;
    if (h != &heap_none) {
        if (taken) heap_count_add(&h->fallback_taken, taken);
        if (freed) heap_count_add(&h->fallback_freed, freed);
        return;
    }
    if (taken) atomic_fetch_add_explicit(&pool.fallback_taken, taken, memory_order_relaxed);
    if (freed) atomic_fetch_add_explicit(&pool.fallback_freed, freed, memory_order_relaxed);
}

void heap_fallback_bytes(uint64_t *taken, uint64_t *freed) {
    *taken = atomic_load_explicit(&pool.fallback_taken, memory_order_relaxed);
    *freed = atomic_load_explicit(&pool.fallback_freed, memory_order_relaxed);
    for (heap_t *h = __atomic_load_n(&pool.heaps, __ATOMIC_ACQUIRE); h; h = h->next_heap) {
        *taken += __atomic_load_n(&h->fallback_taken, __ATOMIC_RELAXED);
        *freed += __atomic_load_n(&h->fallback_freed, __ATOMIC_RELAXED);
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
static SEGPOOL_TLS int tls_fork_alone; /* the outermost fork found no other thread, ever */

static int heap_process_single_threaded(void) { return &__libc_single_threaded != NULL && __libc_single_threaded; }

void heap_fork_prepare(void) {
    if (tls_fork_depth++ != 0) return;
    tls_fork_alone = heap_process_single_threaded();
    if (tls_fork_alone || atomic_load(&pool.state) != POOL_READY) return;
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
    /* The heaps locked by the prepare handler: no heap was added since, as
     * heaps_lock is still held. */
    for (heap_t *h = pool.heaps; h; h = h->next_heap) {
        pthread_mutex_unlock(&h->lock);
        if (heap_dead_claim(h)) heap_unlock(h); /* what frees queued on it meanwhile */
    }
    pthread_mutex_unlock(&pool.heaps_lock);
    if (_IO_list_unlock) _IO_list_unlock();
}

/* Only the forking thread lives on in the child.  Every other live heap is
 * orphaned (see HEAP_ORPHAN); dead heaps stay dead and adoptable. */
void heap_fork_child(void) {
    /* glibc reset stdio's list lock in the child: nothing of it to release. */
    tls_fork_depth--;
    /* A process that never had another thread forked: the child is the
     * parent as it was, every lock either free or held by a frame of this
     * thread that will release it.  Nothing to repair, and nothing written:
     * each page the child writes is a copy-on-write fault. */
    if (tls_fork_depth == 0 && tls_fork_alone) return;
    tls_fork_locked = 0;
    lock_forget_all();
    if (atomic_load(&pool.state) != POOL_READY) return;
    segment_fork_child();
    pthread_mutex_init(&heap_note_lock, NULL);
    pthread_mutex_init(&pool.heaps_lock, NULL);
    heap_t *self = tls_heap;
    unsigned live = 0;
    for (heap_t *h = pool.heaps; h; h = h->next_heap) {
        pthread_mutex_init(&h->lock, NULL);
        if (h == self) {
            live++;
        } else if (h->state == HEAP_LIVE) {
            atomic_store(&h->remote, HEAP_REMOTE_DEAD);
            h->state = HEAP_ORPHAN;
            h->owner_tp = 0;
        } else if (h->state == HEAP_DEAD) {
            heap_dead_collect(h); /* segments a parent thread queued on it */
        }
    }
    __atomic_store_n(&pool.heaps_live, live, __ATOMIC_RELAXED); /* atomic like its other writes */
    if (self != &heap_none) heap_drain_remote(self);
    /* Walk the side table, not the heaps' lists (an orphan's may have been
     * caught mid-update):
     *  - a thread the child starts may get the thread pointer of a parent
     *    thread that is gone here: no segment may still name one;
     *  - a parent thread that set a segment's QUEUED bit but had not queued it
     *    yet is gone: take that list now (self's queue is drained, so a
     *    QUEUED segment of self that is not watched is one of these; dead
     *    heaps have no queue), else the segment would never be queued again. */
    size_t end = pool_regions_fresh() * pool.region_segments;
    for (size_t i = 0; i < end; i++) {
        segment_t *s = &pool.segments[i];
        if (s->kind != SEGMENT_BLOCKS || !s->heap) continue;
        if (s->heap->state == HEAP_ORPHAN) {
            if (s->owner) alloc_set_owner(s, 0);
            continue;
        }
        segment_link_t *l = heap_link(s);
        if ((atomic_load_explicit(&l->remote, memory_order_relaxed) & SEGMENT_REMOTE_QUEUED) && !l->watched)
            heap_remote_take(s->heap, s, atomic_exchange(&l->remote, 0));
    }
}
