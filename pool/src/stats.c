/*
 * stats.c - the statistics snapshot: merges the per-thread counters kept in
 * every heap (written only by their thread, so the fast path shares no cache
 * line) with the global pool's figures and the arena's residency from
 * /proc/self/smaps, and the process's identity (pid, program, version,
 * start time, peak RSS).  Output formatting is in stats_format.c, where it
 * goes in stats_output.c.
 *
 * Owns: the start time (stats_start).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "lock.h"
#include "os.h"
#include "stats.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STATS_RACY __attribute__((no_sanitize("thread")))
#endif
#elif defined(__SANITIZE_THREAD__)
#define STATS_RACY __attribute__((no_sanitize("thread")))
#endif
#ifndef STATS_RACY
#define STATS_RACY
#endif

#ifndef SEGPOOL_VERSION_STRING
#define SEGPOOL_VERSION_STRING "0.2.0"
#endif

/* segpool_version() once version.c provides it; the macro until then. */
extern const char *segpool_version(void) __attribute__((weak));

static const char *stats_version(void) { return segpool_version != NULL ? segpool_version() : SEGPOOL_VERSION_STRING; }

static uint64_t stats_start_wall;     /* seconds since the epoch; 0: the pool never started */
static uint64_t stats_start_mono_ms;  /* CLOCK_MONOTONIC */

/* The elapsed time is whole ms: the coarse clock (a few ms of resolution)
 * the pool reads everywhere else would do, but the exact one costs nothing
 * here and keeps short runs from reporting 0. */
static uint64_t stats_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void stats_start(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    stats_start_wall = (uint64_t)ts.tv_sec;
    stats_start_mono_ms = stats_mono_ms();
}

/* Who wrote the figures: cheap, and filled even when the pool never started. */
static void stats_process(segpool_stats_t *out) {
    int saved = errno;
    out->pid = (int)getpid();
    const char *name = program_invocation_short_name != NULL ? program_invocation_short_name : "";
    size_t n = strlen(name);
    if (n > sizeof(out->program) - 1) n = sizeof(out->program) - 1;
    memcpy(out->program, name, n);
    out->program[n] = '\0';
    out->version = stats_version();
    out->start_time = stats_start_wall;
    out->elapsed_ms = stats_start_wall != 0 ? stats_mono_ms() - stats_start_mono_ms : 0;
    out->peak_rss = os_peak_rss();
    errno = saved;
}

/* Blocks on a kept list: its room (used) counts down from keep_max. */
STATS_RACY static uint32_t stats_kept_held(const heap_t *h, unsigned c) {
    uint32_t room = __atomic_load_n(&h->kept[c].used, __ATOMIC_RELAXED);
    return room < sizeclass_table[c].keep_max ? sizeclass_table[c].keep_max - room : 0;
}

/* Other threads' counters are read while they run: approximate by design. */
STATS_RACY static void stats_merge_heaps(segpool_stats_t *out, size_t *cached) {
    for (heap_t *h = __atomic_load_n(&pool.heaps, __ATOMIC_ACQUIRE); h; h = h->next_heap) {
        *cached += h->cached_count;
        out->heap_lock_acquired += h->lock_count.acquired;
        out->heap_lock_contended += h->lock_count.contended;
        out->remote_frees += h->remote_frees;
        out->remote_contended += atomic_load_explicit(&h->remote_contended, memory_order_relaxed);
        out->remote_queued += h->remote_queued;
        out->remote_collects += h->remote_collects;
        out->remote_kept += h->kept_reused;
        for (unsigned c = 0; c < sizeclass_count; c++) {
            out->class_requests[c] += h->requests[c] + h->kept[c].allocs;
            out->remote_kept += h->kept[c].allocs + stats_kept_held(h, c);
            out->class_segments[c] += h->class_segments[c];
        }
        out->fallback_too_large += h->fallback[SEGPOOL_FALLBACK_TOO_LARGE];
        out->fallback_aligned += h->fallback[SEGPOOL_FALLBACK_ALIGNED];
        out->fallback_exhausted += h->fallback[SEGPOOL_FALLBACK_EXHAUSTED];
        out->fallback_other += h->fallback[SEGPOOL_FALLBACK_OTHER];
        for (unsigned i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++) out->large_sizes[i] += h->large_sizes[i];
    }
    out->threads_live = __atomic_load_n(&pool.heaps_live, __ATOMIC_RELAXED);
    out->threads_total = __atomic_load_n(&pool.heaps_total, __ATOMIC_RELAXED);
    out->heap_list_lock_acquired = pool.heaps_lock_count.acquired;
    out->heap_list_lock_contended = pool.heaps_lock_count.contended;
}

/* Blocks on threads' kept lists, and their bytes: live for their segments,
 * free for the program. */
STATS_RACY static uint64_t stats_kept(size_t *bytes) {
    uint64_t blocks = 0;
    *bytes = 0;
    for (const heap_t *h = __atomic_load_n(&pool.heaps, __ATOMIC_ACQUIRE); h; h = h->next_heap)
        for (unsigned c = 0; c < sizeclass_count; c++) {
            uint32_t held = stats_kept_held(h, c);
            blocks += held;
            *bytes += (size_t)held * sizeclass_table[c].size;
        }
    return blocks;
}

/* Blocks live now and their bytes (those on remote lists are free, though
 * their segments count them until taken), and (when out is not NULL) the
 * allocations of segments still in their class and the remote frees not yet
 * taken by their heap. */
STATS_RACY static uint64_t stats_walk_segments(segpool_stats_t *out, size_t *live_bytes) {
    uint64_t live = 0;
    size_t bytes = 0;
    size_t end = pool_regions_fresh() * pool.region_segments;
    for (size_t i = 0; i < end; i++) {
        const segment_t *s = &pool.segments[i];
        if (s->kind != SEGMENT_BLOCKS) continue;
        uint32_t blocks = s->used & SEGMENT_LIVE_MASK;
        uint32_t remote = (uint32_t)(atomic_load_explicit(&pool.links[i].remote, memory_order_relaxed) >>
                                     SEGMENT_REMOTE_COUNT_SHIFT);
        blocks = blocks > remote ? blocks - remote : 0;
        live += blocks;
        bytes += (size_t)blocks * s->block_size;
        if (out == NULL) continue;
        out->class_requests[s->class_index] += s->allocs;
        out->remote_frees += remote;
    }
    *live_bytes = bytes;
    return live;
}

void stats_pool_bytes(size_t *committed, size_t *in_use) {
    *committed = 0;
    *in_use = 0;
    if (!pool_ready()) return;
    *committed = __atomic_load_n(&pool.regions_committed, __ATOMIC_RELAXED) * SEGPOOL_REGION_SIZE;
    size_t whole = __atomic_load_n(&pool.segments_user, __ATOMIC_RELAXED) * pool.segment_size;
    stats_walk_segments(NULL, in_use);
    size_t kept;
    stats_kept(&kept);
    *in_use = (*in_use > kept ? *in_use - kept : 0) + whole;
}

SEGPOOL_API void segpool_stats_get(segpool_stats_t *out) {
    memset(out, 0, sizeof *out);
    stats_process(out);
    out->segment_size = pool.config.segment_size;
    out->hugepage_mode = pool.hugepage_mode ? pool.hugepage_mode : "off";
    out->hugepage_note = pool.hugepage_note;
    out->fallback_too_large = atomic_load(&pool.fallback[SEGPOOL_FALLBACK_TOO_LARGE]);
    out->fallback_aligned = atomic_load(&pool.fallback[SEGPOOL_FALLBACK_ALIGNED]);
    out->fallback_exhausted = atomic_load(&pool.fallback[SEGPOOL_FALLBACK_EXHAUSTED]);
    out->fallback_other = atomic_load(&pool.fallback[SEGPOOL_FALLBACK_OTHER]);
    for (unsigned i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++) out->large_sizes[i] = atomic_load(&pool.large_sizes[i]);
    if (!pool_ready()) return;

    out->segment_size = pool.segment_size;
    out->pool_size = pool.size;
    out->capacity = pool.capacity;
    out->class_count = sizeclass_count;
    for (unsigned c = 0; c < sizeclass_count; c++) out->class_size[c] = sizeclass_table[c].size;

    size_t cached = 0;
    stats_merge_heaps(out, &cached);
    size_t live_bytes, kept_bytes;
    uint64_t live = stats_walk_segments(out, &live_bytes);
    uint64_t kept = stats_kept(&kept_bytes);
    live = live > kept ? live - kept : 0;
    live_bytes = live_bytes > kept_bytes ? live_bytes - kept_bytes : 0;
    for (unsigned c = 0; c < sizeclass_count; c++) out->pool_requests += out->class_requests[c];

    segment_counts_t counts;
    segment_counts(&counts);
    size_t handed_out = counts.out;
    out->segments_peak = counts.peak;
    out->pool_shards = pool.shard_count;
    out->pool_lock_acquired = counts.locks.acquired;
    out->pool_lock_contended = counts.locks.contended;
    out->pool_recycles_deferred = counts.deferred;
    out->pool_runs_cached = counts.runs_cached;
    out->pool_runs_reused = counts.runs_reused;
    out->segments_user = __atomic_load_n(&pool.segments_user, __ATOMIC_RELAXED);
    out->regions_committed = __atomic_load_n(&pool.regions_committed, __ATOMIC_RELAXED);
    out->regions_peak = __atomic_load_n(&pool.regions_peak, __ATOMIC_RELAXED);
    out->regions_purged = __atomic_load_n(&pool.regions_purged, __ATOMIC_RELAXED);
    out->bytes_committed = out->regions_committed * SEGPOOL_REGION_SIZE;
    out->bytes_in_use = live_bytes + out->segments_user * pool.segment_size;
    out->remote_frees += out->remote_kept;

    out->segments_cached = cached < handed_out ? cached : handed_out;
    out->segments_in_use = handed_out - out->segments_cached;
    out->segments_free = pool.capacity - handed_out;
    out->pool_frees = out->pool_requests > live ? out->pool_requests - live : 0;
    os_smaps_range((void *)pool.base, pool.size, &out->arena_rss, &out->arena_huge);
}

SEGPOOL_API int segpool_stats_print(int fd, int json) {
    segpool_stats_t s;
    segpool_stats_get(&s);
    return stats_write(fd, &s, json);
}
