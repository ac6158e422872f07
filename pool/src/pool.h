/*
 * pool.h - the process-wide state of libsegpool and the internal interface
 * between its modules.
 *
 * Layers, each calling only those below it:
 *   alloc (fast paths, alloc.h/alloc.c) -> heap (heap.c: thread heaps, slow
 *   paths, remote frees, fork) -> segment (segment.c: the global segment
 *   pool) -> arena (arena.c: reservation, regions, huge pages, purge) -> os.
 *   config, sizeclass and stats are leaves; init.c wires them together.
 *
 * Lock order (outer first): pool.heaps_lock -> heap_t.lock -> pool.lock.
 * pool.heaps_lock guards the heap list and heap adoption; a heap's lock is
 * taken only for a dead heap (its thread has exited); pool.lock guards the
 * global segment pool and the arena's regions.  No lock is held across a
 * call that may allocate.
 */
#ifndef SEGPOOL_POOL_H
#define SEGPOOL_POOL_H

#include "config.h"
#include "types.h"

typedef enum pool_state_e { POOL_UNINIT = 0, POOL_INITIALIZING, POOL_READY, POOL_DISABLED } pool_state_t;

typedef struct pool_s {
    /* Read on every call; written once by pool_init. */
    uintptr_t base;           /* arena start, 2 MiB aligned */
    uintptr_t link_key;       /* free-list link encoding (alloc.h), random */
    uintptr_t link_mul, link_mul_inverse; /* random odd multiplier and its inverse mod 2^64 */
    size_t size;              /* arena bytes; 0 until ready, so nothing is owned */
    size_t small_max;         /* largest request served: the segment size; 0 until ready */
    segment_t *segments;      /* side table, one entry per segment */
    segment_link_t *links;    /* list links, one per segment (slow paths) */
    unsigned segment_shift;
    size_t segment_size;
    size_t capacity;          /* segments */
    size_t region_segments;   /* segments per region */
    size_t region_count;
    /* Under a finite RLIMIT_AS the arena grows (arena.c): region_count
     * regions are mapped and usable now; growth stops at region_limit; the
     * side tables hold region_max.  Otherwise all three are equal. */
    size_t region_max;
    size_t region_limit;

    _Atomic int state;        /* pool_state_t */
    config_t config;
    const char *hugepage_mode; /* effective mode name */
    char hugepage_note[120];   /* why a mode degraded */
    int huge_kind;             /* region_t.huge for new regions: 2 hugetlb, 1 thp, 0 off */

    /* The global segment pool (segment.c) and the regions (arena.c). */
    pthread_mutex_t lock;
    region_t *regions;
    size_t regions_fresh;          /* regions [regions_fresh, region_count) never committed */
    region_t *bins[2][SEGPOOL_MAX_REGION_SEGMENTS]; /* bins[kind][k]: small/huge regions with k free segments, 0 < k < all */
    uint64_t bins_nonempty[2][SEGPOOL_MAX_REGION_SEGMENTS / 64];
    region_t *empty_head, *empty_tail; /* committed, wholly free; head newest */
    size_t regions_empty;          /* on the empty list */
    size_t retain_regions;         /* at most this many stay there (segment_retain_update) */
    uint64_t retain_checked_ms;    /* when the budget was last read */
    region_t *purged;              /* given back, reusable */
    size_t segments_out;           /* handed out of the global pool */
    size_t segments_user;          /* of which handed out whole to the API */
    size_t segments_peak;
    size_t regions_committed, regions_peak;
    uint64_t regions_purged;

    /* Heaps (heap.c). */
    pthread_mutex_t heaps_lock;
    heap_t *heaps;
    unsigned heaps_live, heaps_total;
    pthread_key_t thread_key;

    /* Requests served elsewhere, by reason (segpool_note_fallback). */
    _Atomic uint64_t fallback[4];
    _Atomic uint64_t large_sizes[SEGPOOL_STATS_SIZE_BINS];
} pool_t;

extern pool_t pool SEGPOOL_HIDDEN;
extern segment_t segment_empty SEGPOOL_HIDDEN;
extern heap_t heap_empty SEGPOOL_HIDDEN;
extern SEGPOOL_TLS heap_t *tls_heap SEGPOOL_HIDDEN;

/* init.c */
int pool_init(void);                 /* 0 when the pool is ready */
/* The largest request the pool serves, 0 until it is ready.  Read on every
 * malloc: relaxed (a plain load); a thread that sees it nonzero before it has
 * synchronized with pool_init gets there through heap_acquire anyway. */
SEGPOOL_INLINE size_t pool_small_max(void) { return __atomic_load_n(&pool.small_max, __ATOMIC_RELAXED); }
SEGPOOL_INLINE int pool_ready(void) { return __atomic_load_n(&pool.small_max, __ATOMIC_ACQUIRE) != 0; }

/* arena.c: regions are committed on first use and purged whole. */
int arena_init(size_t size);         /* reserve; may shrink size on failure */
int arena_commit_region(region_t *r);
int arena_purge_region(region_t *r);      /* 0, or -1: still resident */
uint8_t *arena_region_start(const region_t *r);
void arena_prefault(size_t bytes);
/* Map the next piece of the arena after region_count (pool.lock held, or
 * during start-up); 0 when region_count grew. */
int arena_grow_locked(void);
/* A glibc allocation of want bytes failed: under a finite RLIMIT_AS, unmap the
 * arena's never-used tail if that leaves room for it; 0 when something was
 * given back (worth a retry).  Takes pool.lock. */
int arena_give_back(size_t want);

/* segment.c: the global segment pool.  Segments of a run are contiguous and
 * within one region; count is 1 except for slabs. */
int segment_pool_init(void);
segment_t *segment_request(unsigned count, int huge); /* huge: from a region on huge pages if the mode has them */
void segment_recycle(segment_t *s, unsigned count);
/* Give back the wholly free regions past the budget or the decay time. */
void segment_purge_expired(void);
void segment_retain_update(void);    /* the budget of wholly free regions kept */
/* Before glibc serves a large request: read the budget again if it is old and
 * give back what is past it, so that memory the pool freed can serve it. */
void segment_retain_poll(void);
size_t segment_trim(void);           /* purge every wholly free region now; bytes given back */
void segment_fork_child(void);

SEGPOOL_INLINE size_t segment_index(const segment_t *s) { return (size_t)(s - pool.segments); }
SEGPOOL_INLINE uint8_t *segment_address(size_t index) {
    return (uint8_t *)(pool.base + (index << pool.segment_shift));
}
/* The segment entry of a pointer known to be in the arena (a slab's head). */
SEGPOOL_INLINE segment_t *segment_of(const void *p) {
    segment_t *s = &pool.segments[((uintptr_t)p - pool.base) >> pool.segment_shift];
    return s - s->slab_offset;
}

/* heap.c */
void *heap_alloc_slow(heap_t *h, unsigned cls);
void heap_free_slow(segment_t *s);
void heap_free_remote(block_t *b, segment_t *s);
void heap_free_suspect(block_t *b, segment_t *s);
void heap_collect(heap_t *h);
void heap_note_fallback(segpool_fallback_t why, size_t size);
void heap_fork_prepare(void);
void heap_fork_parent(void);
void heap_fork_child(void);
int heap_init_once(void);

/* alloc.c: misuse reports (never return).  Each names the call and the
 * fault, glibc's way: "free(): double free detected", "malloc(): corrupted
 * free list", "free(): invalid pointer ...". */
SEGPOOL_COLD __attribute__((noreturn)) void alloc_report(const char *what, const void *p);

#endif /* SEGPOOL_POOL_H */
