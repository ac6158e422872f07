/*
 * types.h - the data structures of libsegpool, with their invariants.
 *
 * Glossary
 *   arena     one reserved virtual range (PROT_NONE, MAP_NORESERVE), 2 MiB
 *             aligned, holding every segment.  A pointer belongs to the pool
 *             iff it lies inside the arena: one range compare.
 *   region    2 MiB of the arena: the unit of commit (mprotect + madvise or
 *             a hugetlb mapping) and of giving memory back (decommit),
 *             so that huge pages are never split.
 *   segment   SEGSHIM_SEGMENT_SIZE bytes (32 KiB by default), aligned to its
 *             size: the unit of the global segment pool (Flink's
 *             MemorySegment).  Its metadata lives in a side table indexed by
 *             segment number, so all its bytes are usable.
 *   slab      1..32 contiguous segments of one region that hold blocks of one
 *             size class together: enough for at least 32 blocks and at most
 *             12.5% unused (sizeclass.h).  The first segment's entry (the
 *             head) describes the slab; the others point back to it.
 *   class     a block size; SEGSHIM_SEGMENT_SIZE is the largest class.
 *   block     what malloc returns: one slot of a class in a segment or slab.
 *   heap      per-thread allocation state (Flink's LocalBufferPool): for each
 *             class the segment it allocates from, its partly free segments,
 *             its cached segments (no live block, kept formatted, up to
 *             SEGSHIM_TCACHE in all), and a stack of its segments into which
 *             other threads freed blocks (heap.remote).
 *
 * Ownership: a segment holding blocks belongs to exactly one heap.  Only the
 * heap's thread (or, once the thread has exited, whoever holds the heap's
 * lock) touches the segment's free list; other threads hand blocks back
 * through the segment's remote list (segment_link_t.remote) with one atomic
 * operation, and queue the segment on its heap when the list was idle.
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
#ifndef SEGPOOL_MAX_SLAB
#define SEGPOOL_MAX_SLAB 32
#endif
#define SEGPOOL_BLOCK_ALIGN 16
#define SEGPOOL_FALLBACK_REASONS (SEGPOOL_FALLBACK_OTHER + 1) /* segpool_fallback_t values */

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

/* Contention of one lock (or of a family of locks, one counter each): how
 * often it was taken, and how often of those its first try failed and the
 * thread may have slept.  The counters are written only by the holder of the
 * lock they count, so they cost no atomic operation and share the lock's
 * cache line traffic; readers (statistics) take the lock or read racily. */
typedef struct lock_count_s {
    uint64_t acquired;
    uint64_t contended;
} lock_count_t;

/* A heap's life (heap_t.state).  A live heap serves its thread.  A dead
 * heap's thread has exited: whoever holds its lock acts for it, and a new
 * thread may adopt it.  An orphan heap belonged to another thread of the
 * parent of a fork: its lists may have been caught mid-update, so the child
 * never touches them again; frees into it are dropped (a bounded leak). */
typedef enum heap_state_e { HEAP_LIVE = 0, HEAP_DEAD, HEAP_ORPHAN } heap_state_t;

/* The pages a region is committed on (region_t.pages), and the best kind the
 * huge-page mode in force still gives (pool.page_kind): it only degrades. */
typedef enum page_kind_e { PAGES_SMALL = 0, PAGES_THP, PAGES_HUGETLB } page_kind_t;

/* A free block.  The first word links the list it is on, encoded under its
 * list's key and the block's own address (alloc.h: alloc_link_encode); the
 * second holds ALLOC_FREE_TAG while the block is free, and malloc clears
 * both.  A free of a block that carries the tag is checked against the
 * lists its link names (heap.c, "Double frees").  Every block is at least
 * 16 bytes. */
typedef struct block_s {
    uintptr_t next;
    uintptr_t free_tag;
} block_t;

typedef enum segment_kind_e {
    SEGMENT_FREE = 0,  /* in the global pool */
    SEGMENT_BLOCKS,    /* head of a segment or slab serving a size class */
    SEGMENT_SLAB_TAIL, /* a later segment of a slab: head_distance > 0 */
    SEGMENT_USER,      /* handed out whole by segpool_segment_request */
    SEGMENT_KEPT,      /* a heap's kept list of a class (heap_t.kept), in no side table */
} segment_kind_t;

/* The used field counts live blocks.  SEGMENT_FULL marks a segment that its
 * heap moved to its full list because it had no free block; SEGMENT_CURRENT is
 * added while the segment is its class's current one.  So a free makes used
 * 0 only for a segment that is neither (it just lost its last live block) and negative
 * only for a full one: the fast path tests both with one signed compare, and
 * freeing into the current segment never takes the slow path. */
#define SEGMENT_FULL 0x80000000u
#define SEGMENT_CURRENT 0x40000000u
#define SEGMENT_LIVE_MASK 0x3fffffffu

/* Metadata of one segment, in the side table (pool.segments), 64 bytes.
 * Invariants for a SEGMENT_BLOCKS head s of class c, owned by heap h:
 *   used & SEGMENT_LIVE_MASK == blocks handed out and not yet freed to s
 *                               (blocks on s's remote list still count);
 *   |s->free| + live == span / block_size (the formatted blocks); the list ends in NULL, and
 *   every link on it is encoded and lies in [block_start, block_start+span);
 *   exactly one of: s == h->current[c] (SEGMENT_CURRENT set), s on
 *   h->partial[c] (some blocks free, some live), s on h->cached[c] (live 0),
 *   or SEGMENT_FULL (no free block and nothing left to format; on h->full);
 *   every block lies in the segment (the slab), at a multiple of block_size
 *   from its start, in the formatted part [block_start, block_start + span),
 *   which is what alloc_is_block_of tests; the slab is formatted lazily
 *   (heap_segment_extend), so span grows up to capacity * block_size.
 * heap is NULL and owner 0 for every other kind and for slab tails, so a free
 * of a pointer into them leaves the fast path and is checked.  owner is the
 * owning thread's thread pointer (%fs:0 on x86-64): free compares it with its
 * own in one instruction, where loading the heap from TLS takes two.  It is
 * cleared when the heap's thread exits (before a new thread can be given the
 * same thread pointer) and set again when a thread adopts the heap. */
typedef struct segment_s {
    /* Read by every free, remote ones included; written only when the segment
     * is formatted, formats more of its slab (span) or changes owner, so
     * other threads' reads stay shared: a remote free reads nothing the
     * owner writes per allocation. */
    uintptr_t owner;          /* thread pointer of the owning heap's thread; 0 if none */
    uint64_t div_magic;       /* floor(2^64 / block_size) + 1 (sizeclass.c) */
    uintptr_t block_start;    /* address of its first block */
    uintptr_t span;           /* bytes of the slab formatted so far; 0 when it holds none (a full word: one compare) */
    uint64_t block_limit;     /* blocks formatted so far * sizeclass_t.div_step: alloc_is_block_of */
    heap_t *heap;             /* owner while kind == SEGMENT_BLOCKS */
    /* Bytes from the slab head's entry to this one: entries back to the head
     * (segment_slab_offset) times the entry size, 0 for a head and for every
     * entry never formatted.  free subtracts it with one instruction, so a
     * block of a slab's later segment takes the fast path too. */
    uint64_t head_distance;
    uint32_t block_size;      /* class size in bytes */
    uint8_t slab_count;       /* segments in the slab (head only) */
    uint8_t class_index;
    uint8_t kind;             /* segment_kind_t */
    uint8_t pad0;

    /* Written by the owner on every allocation and local free. */
    block_t *free;            /* head of the free list (decoded; checked before use) */
    uint32_t used;            /* live blocks | SEGMENT_FULL | SEGMENT_CURRENT */
    uint32_t capacity;        /* blocks the slab holds (head only; a class's first slab in a heap is smaller) */
    uint64_t allocs;          /* blocks handed out since it was formatted (statistics) */
    uintptr_t link_key;       /* its list's link key: pool.link_key for a slab, pool.kept_key for a kept list */
    struct segpool_local_s *local; /* SEGMENT_USER: the local pool it came from, or NULL */
    /* What calloc knows to be zero (heap.c, "Zeroed blocks").  dirty (every
     * entry): the segment's bytes may not be zero; set when it is formatted
     * for blocks or handed out whole, cleared when its region is given back.
     * zero_tail (a slab's head): none of the slab's segments was dirty when
     * it was formatted, so every byte past its formatted part is zero. */
    uint8_t dirty;
    uint8_t zero_tail;
    uint8_t pad2[22];
} segment_t;

_Static_assert(sizeof(segment_t) == 128, "segment metadata is two cache lines");
_Static_assert(offsetof(segment_t, free) == 64, "the owner-written fields have a line of their own");

/* List links of a segment, in their own side table (pool.links, same index):
 * only slow paths walk lists, so they stay out of the fast path's line.
 *
 * remote: blocks other threads freed into the segment (a slab's head), not
 * yet taken by its heap: a Treiber stack whose links are encoded like free
 * lists (alloc_link_encode, under pool.link_key) and whose blocks carry ALLOC_FREE_TAG.  The word
 * packs SEGMENT_REMOTE_QUEUED (bit 0: the segment is on its heap's queue, or
 * about to be, or watched; see heap.c), the head as a byte offset from
 * block_start (bits 1..31; a slab is at most 32 MiB) and the number of blocks
 * on the list (bits 32..63: at most a slab's capacity, so it cannot
 * overflow).  An offset rather than a pointer needs no assumption about how
 * many address bits the arena uses.  One entry per cache line: freeing
 * threads CAS it, and neighbouring segments belong to other heaps. */
typedef struct segment_link_s {
    segment_t *next, *prev;               /* partial[c], full, empty[c] lists (owner) */
    _Atomic(uint64_t) remote;             /* see above */
    segment_t *queue_next;                /* next on the heap's queue (heap_t.remote), or on a
                                           * shard's pending stack (segment.c) */
    uint8_t watched;                      /* owner only: QUEUED kept, off the queue (heap.c) */
    uint8_t pad0[3];
    uint32_t run_count;                   /* on a shard's pending stack: segments in the run */
    _Atomic(uint32_t) run_next;           /* on a shard's run cache: the next run's index + 1, or 0 */
    uint8_t pad[20];
} segment_link_t;

_Static_assert(sizeof(segment_link_t) == 64, "one segment's links and remote list per cache line");

#define SEGMENT_REMOTE_QUEUED ((uint64_t)1)
#define SEGMENT_REMOTE_OFFSET_MASK ((uint64_t)0xfffffffe)
#define SEGMENT_REMOTE_COUNT_SHIFT 32
_Static_assert(((uint64_t)SEGPOOL_MAX_SLAB << SEGPOOL_MAX_SEGMENT_SHIFT) <= SEGMENT_REMOTE_OFFSET_MASK,
               "a slab's byte offsets fit the remote word");

/* A 2 MiB region of the arena. */
typedef enum region_state_e {
    REGION_RESERVED = 0, /* never committed: PROT_NONE */
    REGION_COMMITTED,    /* readable, writable, possibly resident */
    REGION_PURGING,      /* being given back; on no list */
    REGION_PURGED,       /* given back (decommitted): no RSS, committed again on reuse */
    REGION_COMMITTING,   /* being committed, with no lock held; on no list */
} region_state_t;

typedef struct region_s {
    uint64_t free_map[SEGPOOL_MAX_REGION_SEGMENTS / 64]; /* bit set = segment free */
    uint32_t free_count;                                /* popcount of free_map */
    uint8_t state;                                      /* region_state_t */
    uint8_t pages;                                      /* page_kind_t, once committed */
    uint8_t huge_wanted;                                /* its next commit asks for huge pages: 1, or small: 0 */
    uint8_t shard;                                      /* the segment shard whose lists it is on (segment.c) */
    uint8_t unmapped;  /* purged and its address space given back (RLIMIT_AS): reserved again before its commit */
    uint8_t lost;      /* unmapped, and something else maps there now: never used again */
    struct region_s *next, *prev; /* bin list, free-region list, or purged stack */
    uint64_t freed_at_ms;         /* when it became wholly free (free-region list) */
} region_t;

/* Per-thread heap.  The first two arrays are the fast path's; everything
 * after them is touched only on slow paths.  serving[c] and direct[i] are
 * never NULL: a heap starts with every entry at segment_none (the sentinel
 * segment: no blocks, span 0), so the fast path needs no NULL test.
 *
 * serving[c] is what malloc pops blocks of class c from: the class's current
 * segment, or, while it holds blocks, the class's kept list (kept[c]): blocks
 * of other heaps that this thread freed and hands out again itself before
 * anything of its own (heap.c, "Kept blocks").  A kept list is a segment_t
 * whose bounds are the whole arena, so the fast path pops it like any
 * segment; it is in no side table, and nothing frees into it by address. */
#define HEAP_FORMAT_FIRST 4096 /* bytes of a slab formatted at a time (heap_segment_extend) */
/* A heap that owns this much asks for segments on huge pages (segment.c):
 * below it, a huge page would mostly hold memory the thread never touches,
 * and the last, partly used huge region (up to 2 MiB resident ahead of use)
 * costs at most an eighth of the threshold. */
#define HEAP_HUGE_MIN_BYTES ((uint64_t)16 << 20) // 16 MiB
/* Only blocks of at most this size go on huge pages, however much the heap
 * owns.  From a page up, a program may write only the start of a block (a
 * buffer sized for the worst case; stress-ng's malloc stressor writes one
 * word of each), and a huge page would make all of it resident.  Between
 * 256 B and a page, measured on this project's machine (docs/design.md,
 * "Huge pages"): bench_random (16 B-32 KiB, 200 MB live) ran 1.75x longer
 * in user time with those classes on huge pages, while the workloads that
 * gain from huge pages (bench_tlb, bench_phases: 16-256 B nodes) keep it. */
#define HEAP_HUGE_MAX_BLOCK 256
#define HEAP_DIRECT_MAX 1024                     /* sizes served through direct[] */
#define HEAP_DIRECT_STEPS (HEAP_DIRECT_MAX >> 4) // 64

struct heap_s {
    /* direct[(size - 1) / 16] == current[class of size] for 1 <= size <= 1 KiB:
     * the fast path of small sizes needs no class map. */
    segment_t *direct[HEAP_DIRECT_STEPS];
    segment_t *serving[SEGPOOL_MAX_CLASSES];
    segment_t *current[SEGPOOL_MAX_CLASSES]; /* the class's current segment (SEGMENT_CURRENT) */
    uintptr_t owner_tp;                      /* thread pointer of its thread; 0 when dead */
    uint64_t requests[SEGPOOL_MAX_CLASSES];  /* allocs of segments no longer in the class */
    segment_t *full;                         /* segments with no free block */

    segment_t *partial[SEGPOOL_MAX_CLASSES]; /* some blocks free, some live (doubly linked) */
    segment_t *cached[SEGPOOL_MAX_CLASSES];  /* no live block, still formatted (stack) */
    uint32_t cached_count, cache_limit;      /* segments on cached[]; at most SEGSHIM_TCACHE */
    uint32_t evict_next;                     /* the class whose cached segments make room next */
    uint64_t segments_owned;                 /* heads of class segments (a slab counts once) */
    uint32_t class_segments[SEGPOOL_MAX_CLASSES];
    uint64_t fallback[SEGPOOL_FALLBACK_REASONS]; /* requests this thread sent elsewhere, by reason */
    uint64_t large_sizes[SEGPOOL_STATS_SIZE_BINS];
    /* Bytes its thread took from and gave back to the fallback allocator
     * (glibc), for the shim's malloc_trim rule: written by its thread with
     * relaxed stores, summed by whoever trims (heap_fallback_bytes). */
    uint64_t fallback_taken, fallback_freed;
    uint64_t remote_frees;                   /* blocks other threads freed to it, taken in */
    uint64_t remote_collects;                /* remote lists taken whole (O(1) each) */
    uint64_t remote_queued;                  /* segments taken off its queue */
    uint64_t kept_reused;                    /* blocks its kept lists handed out (up to their last serving) */
    heap_t *next_heap;                       /* pool.heaps list, never unlinked */
    pthread_mutex_t lock;                    /* its exiting thread, whoever acts for it dead, an adopter */
    lock_count_t lock_count;                 /* its acquisitions, by the holder */
    heap_state_t state;                      /* under lock */
    /* For threads looking for a heap to adopt, read without the lock:
     * HEAP_ADOPT_NONE (live or orphan), _EMPTY (dead, owns no segment) or
     * _OWNS (dead, owns segments: preferred, its memory is reused). */
    _Atomic(uint8_t) adoptable;

    /* Frees from other threads of blocks that looked already free, each in
     * a note of its own (the block may be the program's data, so it is not
     * written): checked exactly by the owner at its next slow path. */
    _Atomic(struct heap_suspect_s *) suspects;

    /* Its segments with blocks other threads freed (heap.c, "Remote frees"):
     * a Treiber stack of segment_t linked through segment_link_t.queue_next.
     * Bit 0 set: the heap is dead; pushes keep the bit, and whoever holds or
     * next takes its lock takes the lists of the segments queued (heap.c,
     * "Dead heaps"). */
    _Alignas(64) _Atomic(uintptr_t) remote;
    _Atomic(uint64_t) remote_contended;      /* remote-free CASes that failed, by any thread */

    /* Kept lists by class, its own thread's only (heap.c, "Kept blocks"). */
    _Alignas(64) segment_t kept[SEGPOOL_MAX_CLASSES];
};

#define HEAP_REMOTE_DEAD ((uintptr_t)1)
enum { HEAP_ADOPT_NONE = 0, HEAP_ADOPT_EMPTY, HEAP_ADOPT_OWNS };

/* A block another thread freed that looked free already (heap.suspects). */
typedef struct heap_suspect_s {
    struct heap_suspect_s *next;
    block_t *block;
} heap_suspect_t;


#endif /* SEGPOOL_TYPES_H */
