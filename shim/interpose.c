/*
 * interpose.c - the exported malloc family of libsegshim.so.
 *
 * Each entry point tries the pool's inline fast path and otherwise forwards
 * to fallback.c.  Ownership is one range compare: a pointer inside the arena
 * is the pool's, anything else is glibc's.  Rules kept from glibc: free and
 * a pool free preserve errno; malloc(0) is a unique pointer; realloc(p, 0)
 * frees p and returns NULL; failures return NULL with errno ENOMEM;
 * posix_memalign returns EINVAL for a bad alignment and leaves *memptr alone,
 * and on failure returns ENOMEM with errno ENOMEM too (glibc sets both).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "fallback.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

static int shim_power_of_two(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* Fast path: a pop of alloc.h (small sizes without the class map); anything
 * else is one tail call. */
SHIM_EXPORT void *malloc(size_t size) {
    void *p;
    if (likely(size - 1 < HEAP_DIRECT_MAX)) { /* 1 .. 1 KiB; 0 wraps around */
        if (likely((p = alloc_pop_direct(tls_heap, (size - 1) >> 4)) != NULL)) return p;
    } else if (size <= pool_small_max()) {
        if (likely((p = alloc_pop(tls_heap, sizeclass_of(size))) != NULL)) return p;
    }
    return fallback_malloc(size);
}

SHIM_EXPORT void free(void *ptr) {
    uintptr_t off = (uintptr_t)ptr - pool.base;
    if (likely(off < pool.size)) {
        alloc_free_at(ptr, off);
        return;
    }
    fallback_free(ptr);
}

SHIM_EXPORT void cfree(void *ptr) { free(ptr); }

SHIM_EXPORT void *calloc(size_t count, size_t size) { return fallback_calloc(count, size); }

SHIM_EXPORT void *realloc(void *ptr, size_t size) {
    if (!ptr) return malloc(size);
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return fallback_realloc(ptr, size);
}

SHIM_EXPORT void *reallocarray(void *ptr, size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(ptr, bytes);
}

/* glibc's memalign: an alignment that is not a power of two is rounded up. */
SHIM_EXPORT void *memalign(size_t alignment, size_t size) {
    if (alignment <= SEGPOOL_BLOCK_ALIGN) return malloc(size);
    if (!shim_power_of_two(alignment)) {
        if (alignment > SIZE_MAX / 2 + 1) {
            errno = EINVAL;
            return NULL;
        }
        size_t a = SEGPOOL_BLOCK_ALIGN;
        while (a < alignment) a <<= 1;
        alignment = a;
    }
    return fallback_memalign(alignment, size);
}

/* C11: the alignment must be a power of two (EINVAL otherwise, as glibc 2.38). */
SHIM_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
    if (!shim_power_of_two(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return memalign(alignment, size);
}

SHIM_EXPORT int posix_memalign(void **memptr, size_t alignment, size_t size) {
    if (!shim_power_of_two(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    int saved = errno;
    void *p = memalign(alignment, size);
    if (!p) {
        errno = ENOMEM; /* as glibc: the return value and errno */
        return ENOMEM;
    }
    errno = saved;
    *memptr = p;
    return 0;
}

SHIM_EXPORT void *valloc(size_t size) { return memalign((size_t)sysconf(_SC_PAGESIZE), size); }

SHIM_EXPORT void *pvalloc(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX - page) {
        errno = ENOMEM;
        return NULL;
    }
    return memalign(page, (size + page - 1) & ~(page - 1));
}

SHIM_EXPORT size_t malloc_usable_size(void *ptr) {
    if (!ptr) return 0;
    if (alloc_owns(ptr)) return segpool_usable_size(ptr);
    return fallback_usable_size(ptr);
}

/* The documented statistics call (segpool.h): also exported by the shim so
 * that a program run under it can print the figures at any moment. */
SHIM_EXPORT int segshim_stats_print(int fd, int json) { return segpool_stats_print(fd, json); }
