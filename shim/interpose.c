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
 *
 * glibc's introspection calls (malloc_trim, mallinfo2, mallinfo,
 * malloc_stats, malloc_info) answer for both allocators: the pool's part,
 * then glibc's own, found in libc.so.6 itself (shim_libc).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "fallback.h"
#include "glibc_tune.h"
#include "stats.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

static int shim_power_of_two(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* Fast path: a pop of alloc.h (small sizes without the class map); anything
 * else is one tail call. */
SHIM_EXPORT void *malloc(size_t size) {
    void *p;
    if (likely(size - 1 < HEAP_DIRECT_MAX)) { /* 1 .. 1 KiB; 0 wraps around */
        if (likely((p = alloc_pop_direct(tls_heap, (size - 1) >> 4)) != NULL)) return p;
    } else if (likely(size - 1 < SIZECLASS_MAP_MAX)) { /* above the segment: SIZECLASS_NONE, never popped */
        if (likely((p = alloc_pop(tls_heap, sizeclass_of_less_one(size - 1))) != NULL)) return p;
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

/* Does the running glibc refuse aligned_alloc with an alignment that is not
 * a power of two (2.38 and later: EINVAL, as C17 asks)?  Before 2.38 its
 * aligned_alloc was memalign, which rounds the alignment up.  The shim does
 * what the glibc it runs on does, so a program behaves the same with it and
 * without it.  Read once; a race reads the same answer twice. */
static int shim_aligned_alloc_strict(void) {
    static atomic_int strict = -1;
    int s = atomic_load_explicit(&strict, memory_order_relaxed);
    if (s < 0) {
        const char *v = gnu_get_libc_version();
        unsigned major = 0, minor = 0;
        for (; *v >= '0' && *v <= '9'; v++) major = major * 10 + (unsigned)(*v - '0');
        if (*v == '.')
            for (v++; *v >= '0' && *v <= '9'; v++) minor = minor * 10 + (unsigned)(*v - '0');
        s = major > 2 || (major == 2 && minor >= 38);
        atomic_store_explicit(&strict, s, memory_order_relaxed);
    }
    return s;
}

SHIM_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
    if (!shim_power_of_two(alignment) && alignment != 0 && shim_aligned_alloc_strict()) {
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

/* ---- glibc's introspection ---------------------------------------------------- */

/* glibc's own definition of name, looked up once in libc.so.6 (not
 * RTLD_NEXT: a program linked with another allocator would give us that
 * one's).  NULL when libc does not define it. */
static void *shim_libc(const char *name, _Atomic(void *) *cache) {
    void *fn = atomic_load_explicit(cache, memory_order_acquire);
    if (fn == NULL) {
        void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        if (libc != NULL) fn = dlsym(libc, name);
        if (fn != NULL) atomic_store_explicit(cache, fn, memory_order_release);
    }
    return fn;
}

/* libc_NAME: glibc's NAME, of type NAME_fn. */
#define SHIM_LIBC(name)                         \
    static _Atomic(void *) shim_libc_##name;   \
    name##_fn libc_##name = (name##_fn)shim_libc(#name, &shim_libc_##name)

typedef int (*malloc_trim_fn)(size_t);
typedef struct mallinfo2 (*mallinfo2_fn)(void);
typedef void (*malloc_stats_fn)(void);
typedef int (*malloc_info_fn)(int, FILE *);

/* The pool's wholly free regions go back to the OS now (whatever
 * SEGSHIM_DECAY_MS says), then glibc trims its heap when enough was freed to
 * it since its last trim (glibc_tune.c).  1 when either gave memory back, as
 * glibc's. */
SHIM_EXPORT int malloc_trim(size_t pad) {
    SHIM_LIBC(malloc_trim);
    size_t released = segpool_trim();
    int libc_released = libc_malloc_trim != NULL && glibc_tune_trim_due() ? libc_malloc_trim(pad) : 0;
    return released != 0 || libc_released != 0;
}

/* Fields: arena = glibc's sbrk'd bytes + the pool's committed regions;
 * uordblks = glibc's bytes in use + the pool's live blocks (at their class
 * size) and whole segments; fordblks = glibc's free bytes + the committed
 * pool bytes not in use; hblks and hblkhd stay glibc's mmapped chunks (the
 * large requests); usmblks stays 0; ordblks, smblks, fsmblks and keepcost
 * are glibc's alone.  So uordblks + hblkhd is still "in use", and arena +
 * hblkhd still "taken from the OS", for both allocators together. */
SHIM_EXPORT struct mallinfo2 mallinfo2(void) {
    SHIM_LIBC(mallinfo2);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof(mi));
    if (libc_mallinfo2 != NULL) mi = libc_mallinfo2();
    size_t committed, in_use;
    stats_pool_bytes(&committed, &in_use);
    if (in_use > committed) in_use = committed; /* a racy walk: keep the sum sane */
    mi.arena += committed;
    mi.uordblks += in_use;
    mi.fordblks += committed - in_use;
    return mi;
}

static int shim_int(size_t v) { return v > (size_t)INT_MAX ? INT_MAX : (int)v; }

/* mallinfo2 in int fields, stuck at INT_MAX rather than wrapping (glibc
 * wraps: a figure past 2 GiB would read negative). */
SHIM_EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 w = mallinfo2();
    struct mallinfo mi = {
        .arena = shim_int(w.arena),       .ordblks = shim_int(w.ordblks), .smblks = shim_int(w.smblks),
        .hblks = shim_int(w.hblks),       .hblkhd = shim_int(w.hblkhd),   .usmblks = shim_int(w.usmblks),
        .fsmblks = shim_int(w.fsmblks),   .uordblks = shim_int(w.uordblks), .fordblks = shim_int(w.fordblks),
        .keepcost = shim_int(w.keepcost),
    };
    return mi;
}

/* The pool's part of malloc_stats, out of line: its statistics (about 2 KB)
 * are off the stack before glibc's part runs, which needs most of a 16 KiB
 * one (PTHREAD_STACK_MIN) by itself. */
static SEGPOOL_NOINLINE void shim_stats_summary(void) {
    segpool_stats_t s;
    segpool_stats_get(&s);
    fflush(stderr);
    stats_write_summary(2, &s);
}

/* segshim's summary, then glibc's, both on stderr as glibc's. */
SHIM_EXPORT void malloc_stats(void) {
    SHIM_LIBC(malloc_stats);
    shim_stats_summary();
    if (libc_malloc_stats != NULL) libc_malloc_stats();
}

/* The pool as one element in the manner of glibc's own. */
static void shim_info_element(FILE *fp) {
    segpool_stats_t s;
    segpool_stats_get(&s);
    fprintf(fp,
            "<segshim version=\"%s\" segment_size=\"%zu\" pool_size=\"%zu\">\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%llu\"/>\n"
            "<total type=\"in_use\" size=\"%zu\"/>\n"
            "<total type=\"resident\" size=\"%zu\"/>\n"
            "<requests type=\"pool\" count=\"%llu\"/>\n"
            "<requests type=\"glibc\" count=\"%llu\"/>\n"
            "</segshim>\n",
            s.version != NULL ? s.version : "", s.segment_size, s.pool_size, s.bytes_committed,
            (unsigned long long)s.regions_peak * STATS_REGION_BYTES, s.bytes_in_use, s.arena_rss,
            (unsigned long long)s.pool_requests, (unsigned long long)stats_fallbacks(&s));
}

/* glibc's XML with a <segshim> element inside, just before glibc's closing
 * </malloc>: the document keeps one root.  glibc's part is captured in
 * memory first to find that tag. */
SHIM_EXPORT int malloc_info(int options, FILE *fp) {
    SHIM_LIBC(malloc_info);
    static const char close_tag[] = "</malloc>\n";
    if (libc_malloc_info == NULL) {
        errno = ENOSYS;
        return -1;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL) return libc_malloc_info(options, fp);
    int rc = libc_malloc_info(options, mem);
    fclose(mem);
    if (rc == 0) {
        size_t tail = sizeof(close_tag) - 1;
        int closed = len >= tail && memcmp(text + len - tail, close_tag, tail) == 0;
        fwrite(text, 1, closed ? len - tail : len, fp);
        if (closed) {
            shim_info_element(fp);
            fputs(close_tag, fp);
        }
    }
    free(text);
    return rc;
}
