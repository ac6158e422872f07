/*
 * alloc.c - the pool-level allocator API (segpool_malloc and friends) and the
 * misuse report.  The fast paths are inline in alloc.h; everything here
 * returns NULL where the pool cannot serve, so a caller can fall back.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "invariants.h"
#include "lock.h"
#include "stats.h"
#include "text.h"

/* "segshim: <what> at 0x...": formatted on the stack, never allocates. */
void alloc_report(const char *what, const void *p) {
    text_report_at(what, p);
    abort();
}

SEGPOOL_TLS lock_held_t tls_locks_held;

void lock_reentered(pthread_mutex_t *m) {
    alloc_report("malloc(): re-entered from a signal handler while this thread held the allocator lock", m);
}

SEGPOOL_API void *segpool_malloc(size_t size) {
    if (unlikely(size > pool_small_max())) {
        if (pool_ready() || pool_init() != 0 || size > pool_small_max()) return NULL;
    }
    return alloc_small(size);
}

SEGPOOL_API void *segpool_calloc(size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) return NULL;
    if (unlikely(bytes > pool_small_max())) {
        if (pool_ready() || pool_init() != 0 || bytes > pool_small_max()) return NULL;
    }
    return alloc_small_zeroed(bytes);
}

SEGPOOL_API void *segpool_aligned_alloc(size_t alignment, size_t size) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) return NULL;
    if (alignment <= SEGPOOL_BLOCK_ALIGN) return segpool_malloc(size);
    if (!pool_ready() && pool_init() != 0) return NULL;
    if (size > pool_small_max() || alignment > pool_small_max()) return NULL;
    unsigned c = sizeclass_aligned(size, alignment);
    if (c >= sizeclass_count) return NULL;
    return alloc_class(tls_heap, c);
}

SEGPOOL_API void segpool_free(void *ptr) {
    if (!ptr) return;
    if (unlikely(!alloc_owns(ptr))) alloc_report("segpool_free(): pointer not from the pool", ptr);
    alloc_free(ptr);
}

SEGPOOL_API size_t segpool_usable_size(const void *ptr) {
    if (!ptr || !alloc_owns(ptr)) return 0;
    const segment_t *s = segment_of(ptr);
    return s->kind == SEGMENT_BLOCKS ? s->block_size : 0;
}

SEGPOOL_API void *segpool_realloc(void *ptr, size_t size) {
    if (!ptr) return segpool_malloc(size);
    if (!alloc_owns(ptr)) return NULL;
    heap_check_live(ptr);
    if (size > pool_small_max()) return NULL;
    size_t have = segpool_usable_size(ptr);
    /* Stay in place unless the block would be less than half used. */
    if (size <= have && size >= have / 2) return ptr;
    void *q = segpool_malloc(size);
    if (!q) return NULL;
    memcpy(q, ptr, size < have ? size : have);
    alloc_free(ptr);
    return q;
}

SEGPOOL_API int segpool_owns(const void *ptr) { return alloc_owns(ptr); }

SEGPOOL_API void segpool_collect(void) {
    stats_poll(); /* a safe point for SEGSHIM_STATS_SIGNAL */
    heap_collect(tls_heap);
    if (pool_ready()) segment_purge_expired();
    SEGPOOL_CHECK_POOL();
}

SEGPOOL_API size_t segpool_trim(void) {
    if (!pool_ready()) return 0;
    heap_collect(tls_heap);
    size_t given = segment_trim();
    SEGPOOL_CHECK_POOL();
    return given;
}

SEGPOOL_API void segpool_note_fallback(segpool_fallback_t why, size_t size) {
    if ((unsigned)why > SEGPOOL_FALLBACK_OTHER) why = SEGPOOL_FALLBACK_OTHER;
    heap_note_fallback(why, size);
}
