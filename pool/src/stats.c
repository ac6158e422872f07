/*
 * stats.c - the statistics snapshot: merges the per-thread counters kept in
 * every heap (written only by their thread, so the fast path shares no cache
 * line) with the global pool's figures and the arena's residency from
 * /proc/self/smaps.  Output formatting is in stats_format.c.
 */
#include <fcntl.h>
#include <string.h>
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

/* Other threads' counters are read while they run: approximate by design. */
STATS_RACY static void stats_merge_heaps(segpool_stats_t *out, size_t *cached) {
    lock_acquire(&pool.heaps_lock);
    for (heap_t *h = pool.heaps; h; h = h->next_heap) {
        *cached += h->empty_count;
        out->remote_frees += h->remote_frees;
        for (unsigned c = 0; c < sizeclass_count; c++) {
            out->class_requests[c] += h->requests[c];
            out->class_segments[c] += h->class_segments[c];
        }
        out->fallback_too_large += h->fallback[SEGPOOL_FALLBACK_TOO_LARGE];
        out->fallback_aligned += h->fallback[SEGPOOL_FALLBACK_ALIGNED];
        out->fallback_exhausted += h->fallback[SEGPOOL_FALLBACK_EXHAUSTED];
        out->fallback_other += h->fallback[SEGPOOL_FALLBACK_OTHER];
        for (unsigned i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++) out->large_sizes[i] += h->large_sizes[i];
    }
    out->threads_live = pool.heaps_live;
    out->threads_total = pool.heaps_total;
    lock_release(&pool.heaps_lock);
}

/* Blocks live now, and the allocations of segments still in their class. */
STATS_RACY static uint64_t stats_walk_segments(segpool_stats_t *out) {
    uint64_t live = 0;
    size_t end = pool.regions_fresh * pool.region_segments;
    for (size_t i = 0; i < end; i++) {
        const segment_t *s = &pool.segments[i];
        if (s->kind != SEGMENT_BLOCKS) continue;
        live += s->used & SEGMENT_LIVE_MASK;
        out->class_requests[s->class_index] += s->allocs;
    }
    return live;
}

SEGPOOL_API void segpool_stats_get(segpool_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->segment_size = pool.config.segment_size;
    out->hugepage_mode = pool.hugepage_mode ? pool.hugepage_mode : "off";
    out->hugepage_note = pool.hugepage_note;
    out->fallback_too_large = atomic_load(&pool.fallback[SEGPOOL_FALLBACK_TOO_LARGE]);
    out->fallback_aligned = atomic_load(&pool.fallback[SEGPOOL_FALLBACK_ALIGNED]);
    out->fallback_exhausted = atomic_load(&pool.fallback[SEGPOOL_FALLBACK_EXHAUSTED]);
    out->fallback_other = atomic_load(&pool.fallback[SEGPOOL_FALLBACK_OTHER]);
    for (unsigned i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++) out->large_sizes[i] = atomic_load(&pool.large_sizes[i]);
    out->remote_frees = atomic_load(&pool.remote_frees_heapless);
    if (!pool_ready()) return;

    out->segment_size = pool.segment_size;
    out->pool_size = pool.size;
    out->capacity = pool.capacity;
    out->class_count = sizeclass_count;
    for (unsigned c = 0; c < sizeclass_count; c++) out->class_size[c] = sizeclass_table[c].size;

    size_t cached = 0;
    stats_merge_heaps(out, &cached);
    uint64_t live = stats_walk_segments(out);
    for (unsigned c = 0; c < sizeclass_count; c++) out->pool_requests += out->class_requests[c];

    lock_acquire(&pool.lock);
    size_t handed_out = pool.segments_out;
    out->segments_user = __atomic_load_n(&pool.segments_user, __ATOMIC_RELAXED);
    out->segments_peak = pool.segments_peak;
    out->regions_committed = pool.regions_committed;
    out->regions_peak = pool.regions_peak;
    out->regions_purged = pool.regions_purged;
    lock_release(&pool.lock);

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
