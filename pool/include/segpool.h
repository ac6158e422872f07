/*
 * segpool.h - the public interface of libsegpool.
 *
 * libsegpool manages memory the way Apache Flink manages its network buffers:
 * one reserved virtual range (the arena) is cut into fixed-size segments
 * (SEGSHIM_SEGMENT_SIZE, 32 KiB by default), kept in one global segment pool
 * whose capacity is pool size / segment size.  On top of it:
 *
 *   - whole segments can be requested and recycled directly (Flink's
 *     NetworkBufferPool), and bounded local pools can be created on top of
 *     the global one (Flink's LocalBufferPool);
 *   - a general allocator serves every request of at most one segment from
 *     per-thread heaps (segpool_malloc and friends).  It returns NULL where it
 *     cannot serve (too large, over-aligned, pool exhausted) so that the
 *     caller can fall back to another allocator; libsegshim.so does exactly
 *     that with glibc.
 *
 * Configuration is read once from the SEGSHIM_* environment variables at the
 * first call (see README.md).  Every function here is thread-safe.
 */
#ifndef SEGPOOL_H
#define SEGPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "segpool_version.h" /* SEGPOOL_VERSION_MAJOR/MINOR/PATCH, SEGPOOL_VERSION_STRING */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SEGPOOL_API __attribute__((visibility("default")))
#else
#define SEGPOOL_API
#endif

/* ---- Version ------------------------------------------------------------- */

/* The library's version, "MAJOR.MINOR.PATCH" (SEGPOOL_VERSION_STRING of the
 * build that produced it; the macros give the header's). */
SEGPOOL_API const char *segpool_version(void);

/* ---- The global segment pool --------------------------------------------- */

/* The segment size in bytes (a power of two, 4 KiB to 1 MiB). */
SEGPOOL_API size_t segpool_segment_size(void);

/* The pool's capacity in segments: pool size / segment size. */
SEGPOOL_API size_t segpool_capacity(void);

/* A free segment of segpool_segment_size() bytes, aligned to its size, or
 * NULL when the pool is exhausted (or could not be set up).  Its contents are
 * unspecified. */
SEGPOOL_API void *segpool_segment_request(void);

/* Give back a segment obtained from segpool_segment_request() or from a
 * local pool's owner.  Recycling anything else is reported and aborts. */
SEGPOOL_API void segpool_segment_recycle(void *segment);

/* ---- Bounded local pools (Flink's LocalBufferPool) ----------------------- */

typedef struct segpool_local_s segpool_local_t;

/* A local pool that reserves min_segments from the global pool up front and
 * never hands out more than max_segments at once.  NULL (errno ENOMEM) when
 * the reservation cannot be made, EINVAL when min > max or max == 0. */
SEGPOOL_API segpool_local_t *segpool_local_create(size_t min_segments, size_t max_segments);

/* A segment, or NULL at once when max_segments are out or the global pool is
 * exhausted. */
SEGPOOL_API void *segpool_local_request(segpool_local_t *pool);

/* As segpool_local_request, but waits up to timeout_ms milliseconds for a
 * recycle (from any thread) when none is available.  timeout_ms < 0 waits
 * forever.  NULL (errno ETIMEDOUT) when the time ran out. */
SEGPOOL_API void *segpool_local_request_timeout(segpool_local_t *pool, long timeout_ms);

/* Give a segment back to the local pool it came from; wakes one waiter. */
SEGPOOL_API void segpool_local_recycle(segpool_local_t *pool, void *segment);

/* Segments of this local pool currently handed out. */
SEGPOOL_API size_t segpool_local_in_use(const segpool_local_t *pool);

/* Destroy the pool: every segment it holds, and every segment still handed
 * out from it, goes back to the global pool.  Segments still in use by the
 * caller must not be touched afterwards. */
SEGPOOL_API void segpool_local_destroy(segpool_local_t *pool);

/* ---- The general allocator ----------------------------------------------- */

/* Blocks are at least 16-byte aligned.  Each returns NULL when the pool cannot
 * serve the request (size above one segment, alignment it cannot give, pool
 * exhausted) without touching errno, so the caller can fall back. */
SEGPOOL_API void *segpool_malloc(size_t size);
SEGPOOL_API void *segpool_calloc(size_t count, size_t size);
SEGPOOL_API void *segpool_aligned_alloc(size_t alignment, size_t size);

/* Resize a pool block.  NULL means "cannot be served here"; the block is then
 * untouched and still valid (unlike realloc).  ptr may be NULL. */
SEGPOOL_API void *segpool_realloc(void *ptr, size_t size);

/* Free a block of this pool (NULL is ignored).  A pointer inside the pool
 * that is not the start of a live block, or a block already freed, is
 * reported on stderr and aborts. */
SEGPOOL_API void segpool_free(void *ptr);

/* The usable size of a pool block (at least the size requested). */
SEGPOOL_API size_t segpool_usable_size(const void *ptr);

/* Nonzero when ptr lies inside the pool's arena. One range compare. */
SEGPOOL_API int segpool_owns(const void *ptr);

/* Return the calling thread's cached free segments to the global pool and
 * collect blocks other threads freed to it. */
SEGPOOL_API void segpool_collect(void);

/* segpool_collect, then give every wholly free committed region back to the
 * OS now, whatever SEGSHIM_DECAY_MS says.  Returns the bytes given back (0
 * when there was nothing to give).  libsegshim.so's malloc_trim calls it. */
SEGPOOL_API size_t segpool_trim(void);

/* ---- Statistics ---------------------------------------------------------- */

#define SEGPOOL_STATS_CLASSES 64
#define SEGPOOL_STATS_SIZE_BINS 24

typedef struct segpool_stats_s {
    /* configuration in force */
    size_t segment_size;
    size_t pool_size;             /* bytes reserved for the arena */
    size_t capacity;              /* segments = pool_size / segment_size */
    const char *hugepage_mode;    /* effective: "hugetlb", "thp" or "off" */
    const char *hugepage_note;    /* why a mode degraded, or "" */

    /* segments */
    size_t segments_in_use;       /* holding blocks, or handed out whole */
    size_t segments_cached;       /* whole free segments in thread caches */
    size_t segments_free;         /* in the global pool */
    size_t segments_peak;         /* peak of in_use + cached (sum of the shards' peaks, at most capacity) */
    size_t segments_user;         /* handed out by segpool_segment_request/local pools */

    /* regions (2 MiB) */
    size_t regions_committed;     /* resident now */
    size_t regions_peak;
    uint64_t regions_purged;      /* times a region was given back */
    size_t arena_rss;             /* from /proc/self/smaps, 0 if unread */
    size_t arena_huge;            /* AnonHugePages + hugetlb part of arena_rss */

    /* requests (malloc family) */
    uint64_t pool_requests;       /* served by the pool */
    uint64_t pool_frees;
    uint64_t remote_frees;        /* frees from a thread that does not own the block */
    uint64_t remote_contended;    /* of which pushes retried because another thread freed into the segment at once */
    uint64_t remote_queued;       /* segments queued on their heap by the first remote free since it last looked */
    uint64_t remote_collects;     /* remote lists taken whole by the owner (one exchange, no walk) */
    uint64_t remote_kept;         /* remote frees the freeing thread kept and hands out itself (never sent home) */
    uint64_t fallback_too_large;  /* counted by the caller through segpool_note_fallback */
    uint64_t fallback_aligned;
    uint64_t fallback_exhausted;
    uint64_t fallback_other;      /* before init, disabled, after thread exit */
    uint64_t large_sizes[SEGPOOL_STATS_SIZE_BINS]; /* fallbacks by log2 of size */

    /* per size class */
    unsigned class_count;
    uint32_t class_size[SEGPOOL_STATS_CLASSES];
    uint64_t class_requests[SEGPOOL_STATS_CLASSES];
    uint64_t class_segments[SEGPOOL_STATS_CLASSES]; /* segments holding this class now */

    unsigned threads_live;
    unsigned threads_total;

    /* contention of the allocator's locks, by family: how often taken, and
     * of those how often another thread held the lock at the first try */
    unsigned pool_shards;         /* SEGSHIM_SHARDS in force */
    uint64_t pool_lock_acquired;  /* the segment pool's shard locks, all shards together */
    uint64_t pool_lock_contended;
    uint64_t pool_recycles_deferred; /* recycles that found the shard lock busy and left the segments to its holder (no wait) */
    uint64_t pool_runs_cached;    /* recycles that left their segments in the shard's run cache (no lock) */
    uint64_t pool_runs_reused;    /* requests the run caches served (no lock) */
    uint64_t heap_lock_acquired;  /* thread heaps' locks: thread exit, frees into exited threads' heaps, adoption */
    uint64_t heap_lock_contended;
    uint64_t heap_list_lock_acquired; /* the heap list's lock: a heap created for a new thread */
    uint64_t heap_list_lock_contended;

    /* the process, so that the files of many processes can be told apart */
    int pid;
    char program[32];             /* program_invocation_short_name, cut to fit */
    const char *version;          /* segpool's version, "0.2.0" */
    uint64_t start_time;          /* wall clock when the pool started, seconds since the epoch; 0: never */
    uint64_t elapsed_ms;          /* since the pool started */
    size_t peak_rss;              /* the process's peak resident set (VmHWM), 0 if unread */
    size_t bytes_in_use;          /* live pool blocks at their class size + segments handed out whole */
    size_t bytes_committed;       /* regions_committed * 2 MiB */
} segpool_stats_t;

/* Why a request went to the fallback allocator. */
typedef enum segpool_fallback_e {
    SEGPOOL_FALLBACK_TOO_LARGE,
    SEGPOOL_FALLBACK_ALIGNED,
    SEGPOOL_FALLBACK_EXHAUSTED,
    SEGPOOL_FALLBACK_OTHER,
} segpool_fallback_t;

/* Fill *out with a snapshot.  Counters of running threads are read without
 * stopping them, so a snapshot taken while threads allocate is approximate. */
SEGPOOL_API void segpool_stats_get(segpool_stats_t *out);

/* Write the statistics to fd as a text table (json == 0) or a JSON document.
 * Allocates nothing.  Returns 0, or -1 when the write failed. */
SEGPOOL_API int segpool_stats_print(int fd, int json);

/* Record a request the caller served elsewhere (for the statistics). */
SEGPOOL_API void segpool_note_fallback(segpool_fallback_t why, size_t size);

/* segshim_stats_print, exported by libsegshim.so only, is declared in
 * <segshim.h>. */

#ifdef __cplusplus
}
#endif

#endif /* SEGPOOL_H */
