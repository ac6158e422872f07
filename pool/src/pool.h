/*
 * pool.h - the process-wide state of libsegpool and the internal interface
 * between its modules.
 *
 * Modules, from the fast paths down (docs/design.md, "Tiers, and who calls
 * whom", has every call): alloc (alloc.h, alloc.c) -> heap (heap.c) ->
 * segment (segment.c, the global segment pool) -> arena (arena.c) -> os.
 * This is not a strict layering: heap.c calls up into pool_init (a thread's
 * first call) and alloc_report (misuse); local.c uses segment.c directly;
 * stats.c reads the heaps' counters and the segment table; the shim's
 * fallback.c calls segment.c and arena.c directly.
 * config, sizeclass and text are leaves; init.c wires the rest together.
 *
 * Lock order (outer first): pool.heaps_lock -> heap_t.lock -> a pool shard's
 * lock (segment_shard_t.lock; a thread holds at most one at a time).
 * pool.heaps_lock guards adding a heap to the list (which is read without
 * it); a heap's lock is taken by its exiting thread, by whoever acts for a
 * dead heap, and to adopt one (only tried, never waited for, by remote frees
 * and starting threads, except to check a suspected double free); a shard's
 * lock guards
 * its lists of regions (segment.c); pool.arena_lock, a leaf taken with no
 * other pool lock held, guards the arena's growth and give-back and the
 * huge-page mode (arena.c).  No lock is held across a call that may allocate
 * nor across a system call that commits or purges a region.
 */
#ifndef SEGPOOL_POOL_H
#define SEGPOOL_POOL_H

#include "config.h"
#include "list.h"
#include "lock.h"
#include "types.h"

#define POOL_NOTE_LEN 120 /* pool.hugepage_note, with its NUL */
/* Region kinds: regions on small pages and regions on huge pages have bins
 * of their own (segment.c). */
enum { POOL_REGION_SMALL = 0, POOL_REGION_HUGE = 1, POOL_REGION_KINDS = 2 };

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
    uintptr_t kept_key;       /* kept lists' link encoding (alloc.h), random */

    _Atomic int state;        /* pool_state_t */
    config_t config;
    const char *hugepage_mode; /* effective mode name */
    char hugepage_note[POOL_NOTE_LEN]; /* why a mode degraded */
    page_kind_t page_kind;     /* the pages new regions get (degrades, never improves) */
    /* Set once a memory limit is seen (a finite RLIMIT_DATA or RLIMIT_AS at
     * start-up, a commit refused, glibc failing under a limit), never
     * cleared: heaps then start each class with a small slab (heap_slab_for). */
    _Atomic int slabs_small;

    /* The global segment pool (segment.c), in shards, and the regions (arena.c). */
    struct segment_shard_s *shards;
    unsigned shard_count;
    unsigned shard_cpus;           /* CPU numbers per shard: cpu / shard_cpus % shard_count */
    uint32_t run_cache_max;        /* segments a shard's run cache holds; 0: none (segment.c) */
    region_t *regions;
    /* regions_fresh | region_count << 32, changed by compare-and-swap only:
     * regions [regions_fresh, region_count) were never handed to a shard.
     * A fresh region is claimed with no lock; the arena's growth and give-back
     * change the count in the same word, so no claim can race them. */
    _Atomic uint64_t regions_claim;
    pthread_mutex_t arena_lock;
    size_t retain_regions;         /* wholly free regions kept, all shards (segment_retain_update) */
    uint64_t retain_checked_ms;    /* when the budget was last read */
    size_t retain_raised;          /* regions added to the budget by repeated bursts (segment_retain_raise) */
    uint64_t retain_raised_ms;     /* when it was last raised */
    size_t retain_room;            /* the budget's cap in regions: a sixteenth of the memory available */
    /* Region events, rare: atomic read-modify-writes. */
    size_t regions_committed, regions_peak;
    uint64_t regions_purged;
    size_t regions_unmapped;       /* purged regions whose address space went back (region_t.unmapped), lost ones too */
    /* Regions that left every list (to be committed, purged or moved to
     * another shard) and came back: equal when none is in transit. */
    _Atomic uint64_t moves_started, moves_finished;
    size_t segments_user;          /* of which handed out whole to the API */

    /* Heaps (heap.c). */
    pthread_mutex_t heaps_lock;    /* the heap list's: taken to add a heap */
    lock_count_t heaps_lock_count;
    heap_t *heaps;                 /* read without the lock (published with release) */
    unsigned heaps_live, heaps_total; /* atomic read-modify-writes: at thread start and exit */
    pthread_key_t thread_key;

    /* Requests served elsewhere, by reason (segpool_note_fallback). */
    _Atomic uint64_t fallback[SEGPOOL_FALLBACK_REASONS];
    _Atomic uint64_t large_sizes[SEGPOOL_STATS_SIZE_BINS];
    _Atomic uint64_t fallback_taken, fallback_freed; /* of threads with no heap (heap.c) */
} pool_t;

/* One shard of the segment pool (segment.c), under its lock.  A region is on
 * the lists of the shard it belongs to (region_t.shard): bins of partly used
 * regions, the free-region list, the purged stack; segments_out counts the
 * segments handed out of its regions. */
typedef struct segment_shard_s {
    pthread_mutex_t lock;
    lock_count_t lock_count;
    region_t *bins[POOL_REGION_KINDS][SEGPOOL_MAX_REGION_SEGMENTS]; /* bins[kind][k]: small/huge regions with k free segments, 0 < k < all */
    uint64_t bins_nonempty[POOL_REGION_KINDS][SEGPOOL_MAX_REGION_SEGMENTS / 64];
    region_t *free_regions_head, *free_regions_tail; /* the free-region list: committed, wholly free; head newest */
    size_t free_regions_count;     /* on the free-region list; read by other shards without the lock */
    region_t *purged;              /* given back, reusable */
    size_t segments_out, segments_peak;
    /* Runs recycled while the lock was busy (segment.c, "Recycle"): a stack
     * of segment_t through segment_link_t.queue_next, pushed with a CAS and
     * taken whole by the lock's holder. */
    _Alignas(64) _Atomic(uintptr_t) pending;
    uint64_t pending_runs;         /* runs that went through it (statistics), by the holder */
    /* Free runs kept out of the regions, served with no lock (segment.c,
     * "Run cache"): a Treiber stack per region kind and run length, each
     * head the top run's index + 1 | a tag, bumped at every change, << 32.
     * Its runs count as handed out (segments_out) until they go back. */
    _Alignas(64) _Atomic(uint64_t) runs[POOL_REGION_KINDS][SEGPOOL_MAX_SLAB];
    _Atomic(uint32_t) runs_held;   /* segments on them: about pool.run_cache_max at most */
    _Atomic(uint64_t) runs_cached, runs_reused; /* recycles they took, requests they served (statistics) */
} __attribute__((aligned(64))) segment_shard_t;

extern pool_t pool SEGPOOL_HIDDEN;
extern segment_t segment_none SEGPOOL_HIDDEN;
extern heap_t heap_none SEGPOOL_HIDDEN;
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
int arena_commit_region(region_t *r);     /* with no shard lock held */
int arena_purge_region(region_t *r);      /* 0, or -1: still resident */
uint8_t *arena_region_start(const region_t *r);
/* New regions get pages of kind (pool.page_kind, pool.hugepage_mode); why,
 * when not NULL, becomes pool.hugepage_note. */
void arena_set_page_kind(page_kind_t kind, const char *why);
void arena_prefault(size_t bytes);
/* Map the next piece of the arena after region_count (pool.arena_lock held,
 * or during start-up); 0 when region_count grew. */
int arena_grow_locked(void);
/* A glibc allocation of want bytes failed: under a finite RLIMIT_AS, unmap the
 * arena's never-used tail if that leaves room for it; 0 when something was
 * given back (worth a retry).  Takes pool.arena_lock. */
int arena_give_back(size_t want);
/* Unmap purged region r (off every list, no lock held), or refuse (-1): only
 * under a finite RLIMIT_AS and when the arena lies where the kernel places
 * nothing by itself, so that no other mapping takes the hole meanwhile. */
int arena_release_region(region_t *r);
/* arena_release_region would do it (a finite RLIMIT_AS, the arena at its hint). */
int arena_may_release(void);

/* The fields of pool.regions_claim. */
SEGPOOL_INLINE size_t pool_claim_fresh(uint64_t claim) { return (size_t)(claim & 0xffffffffu); }
SEGPOOL_INLINE size_t pool_claim_count(uint64_t claim) { return (size_t)(claim >> 32); }
SEGPOOL_INLINE uint64_t pool_claim_make(size_t fresh, size_t count) { return (uint64_t)fresh | (uint64_t)count << 32; }
/* Regions ever handed to a shard: [0, this) may hold segments. */
SEGPOOL_INLINE size_t pool_regions_fresh(void) {
    return pool_claim_fresh(atomic_load_explicit(&pool.regions_claim, memory_order_acquire));
}

/* segment.c: the global segment pool, in shards.  Segments of a run are
 * contiguous and within one region; count is 1 except for slabs.  The shard
 * is the calling thread's CPU's (segment_shard_pin overrides it). */
int segment_pool_init(void);
/* The arena will never hold more than regions regions: the side tables'
 * entries past them go back (arena.c, as it gives up address space). */
void segment_tables_release(size_t regions);
/* The side tables' bytes for one region's segments. */
size_t segment_tables_per_region(void);
segment_t *segment_request(unsigned count, int huge); /* huge: from a huge region (POOL_REGION_HUGE) */
void segment_recycle(segment_t *s, unsigned count);
/* Give back the wholly free regions past the budget or the decay time. */
void segment_purge_expired(void);
void segment_retain_update(void);    /* the budget of wholly free regions kept */
/* Before glibc serves a large request: read the budget again if it is old and
 * give back what is past it, so that memory the pool freed can serve it. */
void segment_retain_poll(void);
size_t segment_trim(void);           /* purge every wholly free region now; bytes given back */
/* A finite RLIMIT_AS or RLIMIT_DATA is set. */
int segment_space_limited(void);
/* A memory limit is in force, or a commit was refused: pool.slabs_small. */
void segment_limit_seen(void);
/* A glibc allocation failed: under a finite RLIMIT_AS or RLIMIT_DATA, purge
 * the wholly free regions, and under RLIMIT_AS unmap every purged one (each
 * is reserved again when reused); 0 when something went back (worth a
 * retry). */
int segment_release_space(void);
/* Sums over the shards, each read under its lock (segment_counts). */
typedef struct segment_counts_s {
    size_t out;                /* handed out, runs in the run caches not counted */
    size_t peak;               /* the sum of the shards' peaks, at most the capacity */
    lock_count_t locks;        /* the shard locks' */
    uint64_t deferred;         /* recycles left to a lock's holder */
    uint64_t runs_cached;      /* recycles that went to a run cache */
    uint64_t runs_reused;      /* requests a run cache served */
} segment_counts_t;
void segment_counts(segment_counts_t *out);
/* Tests: requests of the calling thread use shard (mod the count); -1: its CPU's. */
void segment_shard_pin(int shard);
void segment_fork_prepare(void);     /* take every shard lock and the arena lock */
void segment_fork_parent(void);
void segment_fork_child(void);

SEGPOOL_INLINE size_t segment_index(const segment_t *s) { return (size_t)(s - pool.segments); }
SEGPOOL_INLINE uint8_t *segment_address(size_t index) {
    return (uint8_t *)(pool.base + (index << pool.segment_shift));
}
/* The entry of the segment p lies in, p known to be in the arena. */
SEGPOOL_INLINE segment_t *segment_at(const void *p) {
    return &pool.segments[((uintptr_t)p - pool.base) >> pool.segment_shift];
}
/* The entry of the head of s's slab (s itself for a head or a segment of no slab). */
SEGPOOL_INLINE segment_t *segment_head(segment_t *s) { return (segment_t *)((uintptr_t)s - s->head_distance); }
/* Entries from the head of s's slab to s. */
SEGPOOL_INLINE size_t segment_slab_offset(const segment_t *s) { return s->head_distance / sizeof(segment_t); }
/* The same as segment_at, for a slab: its head's entry. */
SEGPOOL_INLINE segment_t *segment_of(const void *p) { return segment_head(segment_at(p)); }

/* Lists of segments (a heap's partial and full lists, a local pool's handed
 * out segments) link through the side table pool.links. */
#define SEGMENT_LINK_NEXT(s) (pool.links[segment_index(s)].next)
#define SEGMENT_LINK_PREV(s) (pool.links[segment_index(s)].prev)
LIST_DEFINE(segment_list, segment_t, SEGMENT_LINK_NEXT, SEGMENT_LINK_PREV)

/* heap.c */
/* A block of class cls, usually once alloc_pop(h, cls) returned NULL; a
 * head that can pop still is popped. */
void *heap_alloc_slow(heap_t *h, unsigned cls);
void heap_free_slow(segment_t *s);
/* A zeroed block of class cls, bytes of it requested (calloc), usually once
 * alloc_pop(h, cls) returned NULL; NULL when the pool cannot serve it. */
void *heap_alloc_zeroed(heap_t *h, unsigned cls, size_t bytes);
void heap_free_remote(block_t *b, segment_t *s);
void heap_free_suspect(block_t *b, segment_t *s);
void heap_check_live(const void *p);
void heap_collect(heap_t *h);
void heap_note_fallback(segpool_fallback_t why, size_t size);
/* Bytes taken from and given back to the fallback allocator by the calling
 * thread; and the process's totals (a walk of the heaps). */
void heap_note_fallback_bytes(size_t taken, size_t freed);
void heap_fallback_bytes(uint64_t *taken, uint64_t *freed);
void heap_fork_prepare(void);
void heap_fork_parent(void);
void heap_fork_child(void);
int heap_init_once(void);

/* alloc.c: misuse reports (never return).  Each names the call and the
 * fault, glibc's way: "free(): double free detected", "malloc(): corrupted
 * free list", "free(): invalid pointer ...". */
SEGPOOL_COLD __attribute__((noreturn)) void alloc_report(const char *what, const void *p);

#endif /* SEGPOOL_POOL_H */
