/*
 * types.h - the data structures of libsegpool, with their invariants.
 *
 * Glossary
 *   arena     one reserved virtual range (PROT_NONE, MAP_NORESERVE), 2 MiB
 *             aligned, holding every segment.  A pointer belongs to the pool
 *             iff it lies inside the arena: one range compare.
 *   region    2 MiB of the arena: the unit of commit (mprotect + madvise or
 *             a hugetlb mapping) and of giving memory back (MADV_DONTNEED),
 *             so that huge pages are never split.
 *   segment   SEGSHIM_SEGMENT_SIZE bytes (32 KiB by default), aligned to its
 *             size: the unit of the global segment pool (Flink's
 *             MemorySegment).  Its metadata lives in a side table indexed by
 *             segment number, so all its bytes are usable.
 *   slab      1..8 contiguous segments of one region that hold blocks of one
 *             size class together, for classes that would waste more than
 *             12.5% of a single segment.  The first segment's entry (the head)
 *             describes the slab; the others point back to it.
 *   class     a block size; SEGSHIM_SEGMENT_SIZE is the largest class.
 *   block     what malloc returns: one slot of a class in a segment or slab.
 *   heap      per-thread allocation state (Flink's LocalBufferPool): for each
 *             class the segment it allocates from, its partly free segments,
 *             a cache of whole free segments, and an MPSC queue of blocks that
 *             other threads freed.
 *
 * Ownership: a segment holding blocks belongs to exactly one heap.  Only the
 * heap's thread (or, once the thread has exited, whoever holds the heap's
 * lock) touches the segment's free list; other threads hand blocks back
 * through the heap's remote queue with one atomic operation.
 */
#ifndef SEGPOOL_TYPES_H
#define SEGPOOL_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "segpool.h"

#define SEGPOOL_REGION_SHIFT 21
#define SEGPOOL_REGION_SIZE ((size_t)1 << SEGPOOL_REGION_SHIFT) // 2 MiB
#define SEGPOOL_MIN_SEGMENT_SHIFT 12                             // 4 KiB
#define SEGPOOL_MAX_SEGMENT_SHIFT 20                             // 1 MiB
#define SEGPOOL_MAX_REGION_SEGMENTS (SEGPOOL_REGION_SIZE >> SEGPOOL_MIN_SEGMENT_SHIFT) // 512
#define SEGPOOL_MAX_CLASSES 64
#define SEGPOOL_MAX_SLAB 8
#define SEGPOOL_BLOCK_ALIGN 16

_Static_assert(SEGPOOL_MAX_CLASSES == SEGPOOL_STATS_CLASSES, "stats arrays must cover every class");
_Static_assert(SEGPOOL_MAX_REGION_SEGMENTS == 512, "region bitmaps are eight 64-bit words");

#if defined(__GNUC__)
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define SEGPOOL_NOINLINE __attribute__((noinline))
#define SEGPOOL_INLINE static inline __attribute__((always_inline))
#define SEGPOOL_COLD __attribute__((cold))
#define SEGPOOL_TLS __thread __attribute__((tls_model("initial-exec")))
#define SEGPOOL_HIDDEN __attribute__((visibility("hidden")))
#endif

typedef struct heap_s heap_t;

/* A free block: its first word is the link of the list it is on, stored
 * encoded (link ^ pool.key) so that a free of a block already on a list can be
 * noticed from its first word (see alloc.h). */
typedef struct block_s {
    uintptr_t next_encoded;
} block_t;

typedef enum segment_kind_e {
    SEGMENT_FREE = 0,  /* in the global pool */
    SEGMENT_CACHED,    /* in a heap's cache of whole free segments */
    SEGMENT_BLOCKS,    /* head of a segment or slab serving a size class */
    SEGMENT_SLAB_TAIL, /* a later segment of a slab: slab_offset > 0 */
    SEGMENT_USER,      /* handed out whole by segpool_segment_request */
} segment_kind_t;

/* The used field counts live blocks; SEGMENT_FULL marks a segment that its
 * heap took off every list because it had no free block.  Keeping the flag in
 * the counter lets free() test "now empty, or was full" with one compare. */
#define SEGMENT_FULL 0x80000000u

/* Metadata of one segment, in the side table (pool.segments), 64 bytes.
 * Invariants for a SEGMENT_BLOCKS head s of class c:
 *   used & ~SEGMENT_FULL == blocks handed out and not yet freed to s
 *                           (blocks in the heap's remote queue still count);
 *   |s->free| + used == capacity of class c;
 *   SEGMENT_FULL set   <=> s is on no list of its heap and is not current;
 *   s->heap != NULL, and every block lies in [start, start + slab bytes).
 * For any other kind, heap == NULL, so free() of a pointer into it takes the
 * checked path and is reported. */
typedef struct segment_s {
    block_t *free;            /* decoded head of the free list */
    uint32_t used;            /* live blocks | SEGMENT_FULL */
    uint32_t block_size;      /* class size in bytes */
    heap_t *heap;             /* owner while kind == SEGMENT_BLOCKS */
    uint64_t div_magic;       /* offset % block_size == 0 <=> offset * magic <= magic - 1 */
    union {
        uint8_t *start;              /* SEGMENT_BLOCKS: first byte of the segment or slab */
        struct segpool_local_s *local; /* SEGMENT_USER: the local pool it came from, or NULL */
    };
    struct segment_s *next;   /* heap partial list, cache stack */
    struct segment_s *prev;
    uint16_t slab_offset;     /* entries back to the slab head (0 for a head) */
    uint8_t slab_count;       /* segments in the slab (head only) */
    uint8_t class_index;
    uint8_t kind;             /* segment_kind_t */
    uint8_t pad[3];
} segment_t;

_Static_assert(sizeof(segment_t) == 64, "segment metadata is one cache line");

/* A 2 MiB region of the arena. */
typedef enum region_state_e {
    REGION_RESERVED = 0, /* never committed: PROT_NONE */
    REGION_COMMITTED,    /* readable, writable, possibly resident */
    REGION_PURGING,      /* being given back; on no list */
    REGION_PURGED,       /* given back (MADV_DONTNEED); no RSS, reusable at once */
} region_state_t;

typedef struct region_s {
    uint64_t free_map[SEGPOOL_MAX_REGION_SEGMENTS / 64]; /* bit set = segment free */
    uint32_t free_count;                                /* popcount of free_map */
    uint8_t state;                                      /* region_state_t */
    uint8_t huge;                                       /* 2 = hugetlb, 1 = THP advised, 0 = 4 KiB */
    uint8_t pad[2];
    struct region_s *next, *prev; /* bin list, empty list, or purged stack */
    uint64_t freed_at_ms;         /* when it became wholly free (empty list) */
} region_t;

/* Per-thread heap.  The first two arrays are the fast path's; everything
 * after them is touched only on slow paths.  current[c] is never NULL: a
 * heap starts with every entry at segment_empty, whose free list is empty. */
struct heap_s {
    segment_t *current[SEGPOOL_MAX_CLASSES];
    uint64_t requests[SEGPOOL_MAX_CLASSES]; /* blocks handed out, per class */

    segment_t *partial[SEGPOOL_MAX_CLASSES]; /* segments with free blocks, not current */
    segment_t *cache;                        /* whole free segments (stack via next) */
    uint32_t cache_count, cache_limit;
    uint64_t segments_owned;                 /* heads of class segments (a slab counts once) */
    uint32_t class_segments[SEGPOOL_MAX_CLASSES];
    uint64_t fallback[4];                    /* requests this thread sent elsewhere, by reason */
    uint64_t large_sizes[SEGPOOL_STATS_SIZE_BINS];
    uint64_t remote_frees;                   /* frees this thread sent to other heaps */
    uint64_t remote_received;
    heap_t *next_heap;                       /* pool.heaps list, never unlinked */
    pthread_mutex_t lock;                    /* held by whoever acts for a dead heap */
    int dead;                                /* HEAP_LIVE, HEAP_DEAD or HEAP_ORPHAN; under lock */

    /* Blocks freed by other threads: a Treiber stack of block_t, links encoded
     * like free lists.  Bit 0 set: the heap is dead, push nothing, take lock. */
    _Alignas(64) _Atomic(uintptr_t) remote;
};

#define HEAP_REMOTE_DEAD ((uintptr_t)1)

/* A dead heap's thread has exited: whoever holds its lock acts for it, and a
 * new thread may adopt it.  An orphan heap belonged to another thread of the
 * parent of a fork: its lists may have been caught mid-update, so the child
 * never touches them again; frees into it are dropped (a bounded leak). */
enum { HEAP_LIVE = 0, HEAP_DEAD = 1, HEAP_ORPHAN = 2 };

#endif /* SEGPOOL_TYPES_H */
