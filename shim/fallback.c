/*
 * fallback.c - the slow side of the shim: first-call initialization, the
 * glibc fallback with its reason, realloc across the pool boundary, aligned
 * requests.  errno follows glibc: ENOMEM on every allocation failure, EINVAL
 * for a bad alignment; a pool free never changes it.
 */
#define _GNU_SOURCE
#include "fallback.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "glibc_tune.h"
#include "stats.h"

/* Why the pool did not serve a request of this size. */
static segpool_fallback_t fallback_reason(size_t size) {
    if (!pool_ready()) return SEGPOOL_FALLBACK_OTHER;
    if (size > pool_small_max()) return SEGPOOL_FALLBACK_TOO_LARGE;
    /* No heap: the thread is past its exit destructor, or this is a call
     * made while the pool was being set up. */
    if (tls_heap == &heap_none) return SEGPOOL_FALLBACK_OTHER;
    return SEGPOOL_FALLBACK_EXHAUSTED;
}

/* glibc failed to serve want bytes.  Under RLIMIT_AS the arena's never-used
 * reserve, and the regions the pool used and gave back (still reserved),
 * may be what is in the way; under RLIMIT_AS or RLIMIT_DATA, the free
 * memory the pool keeps (this thread's cached segments, the wholly free
 * regions it retains) and glibc's raised thresholds (glibc_tune.c).  When
 * some went back, a retry is worth it (nonzero).  errno stays glibc's
 * ENOMEM. */
static int fallback_make_room(size_t want) {
    int tail = arena_give_back(want) == 0;
    if (!pool_ready() || !segment_space_limited()) return tail;
    int knobs = glibc_tune_limit_reached(); /* a limit set after start-up */
    heap_collect(tls_heap); /* its cached segments may leave regions wholly free */
    return segment_release_space() == 0 || tail || knobs;
}

/* Before the first request that reaches glibc: its knobs (glibc_tune.c). */
static void fallback_glibc_first(void) {
    if (unlikely(!glibc_tune_ready())) glibc_tune_init();
}

/* The bytes of the glibc chunk at ptr, for malloc_trim's gate, read from its
 * header: the word before it, which glibc's free and realloc read first
 * (the size, with flags in its low 3 bits).  0 when glibc would refuse ptr
 * as it begins: misaligned, a size below glibc's least chunk or reaching
 * past the address space.  glibc's malloc_usable_size would also read the
 * next chunk's header at an offset taken from this one, a wild read for a
 * bad pointer: a program that frees one gets glibc's own message, as
 * without the shim, not a SIGSEGV in the shim. */
#define FALLBACK_CHUNK_MIN 32
#define FALLBACK_CHUNK_MMAPPED 2
static size_t fallback_chunk_bytes(const void *ptr) {
    if (((uintptr_t)ptr & 15) != 0) return 0;
    size_t bytes = ((const size_t *)ptr)[-1] & ~(size_t)7;
    if (bytes < FALLBACK_CHUNK_MIN || bytes > -(uintptr_t)ptr) return 0;
    return bytes;
}

/* p (or NULL) came from glibc: its bytes count for malloc_trim's gate. */
static void *fallback_taken(void *p) {
    if (p) glibc_tune_note_taken(fallback_chunk_bytes(p));
    return p;
}

/* Out of line: inlined, it made fallback_malloc, which every fast-path miss
 * goes through to heap_alloc_slow, save two more registers (0.18
 * instructions a pair at 1-32 KiB with 100 blocks live). */
static SEGPOOL_NOINLINE void *fallback_libc_malloc(size_t size) {
    fallback_glibc_first();
    void *p = __libc_malloc(size);
    if (unlikely(!p) && fallback_make_room(size)) p = __libc_malloc(size);
    return fallback_taken(p);
}

/* malloc when the fast path could not: the first call, or the pool could
 * not serve (too large, exhausted, after thread exit). */
void *fallback_malloc(size_t size) {
    stats_poll(); /* a safe point for SEGSHIM_STATS_SIGNAL: no allocator lock held */
    if (likely(size <= pool_small_max())) {
        /* the fast path just missed (or was not taken: malloc(0)) */
        void *p = heap_alloc_slow(tls_heap, sizeclass_of(size));
        if (p) return p;
    } else if (!pool_ready() && pool_init() == 0 && size <= pool_small_max()) {
        void *p = alloc_small(size);
        if (p) return p;
    }
    heap_note_fallback(fallback_reason(size), size);
    if (pool_ready()) segment_retain_poll(); /* memory the pool freed may be needed for this */
    return fallback_libc_malloc(size);
}

void *fallback_calloc(size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    if (!pool_ready()) pool_init();
    if (bytes <= pool_small_max()) {
        void *p = alloc_small_zeroed(bytes);
        if (p) return p;
    }
    heap_note_fallback(fallback_reason(bytes), bytes);
    fallback_glibc_first();
    void *p = __libc_calloc(count, size);
    if (unlikely(!p) && fallback_make_room(bytes)) p = __libc_calloc(count, size);
    return fallback_taken(p);
}

/* realloc of a glibc block: one that now fits a segment moves back into the
 * pool (one copy of at most a segment); a larger one stays in glibc, whose
 * realloc grows a heap chunk in place when it can, and mremaps an mmapped
 * one.  Moving back was measured against shrinking in glibc on
 * tests/bench/large.c (grow by realloc past the segment size, shrink back,
 * free): 1.7 s against 2.2 s of CPU time and 140 MB against 160 MB of peak
 * RSS in one thread, 2.0 s / 250 MB against 2.5 s / 287 MB in two: a small
 * remainder left in glibc's heap keeps the memory around it from
 * coalescing, and frees and reuse of small blocks are the pool's to do. */
static void *fallback_glibc_realloc(void *ptr, size_t size) {
    size_t have = fallback_chunk_bytes(ptr);
    void *p = NULL, *q;
    if (size <= pool_small_max() && pool_ready()) p = alloc_small(size);
    /* glibc's realloc first, in place when it shrinks: it checks ptr (a bad
     * one gets glibc's message, as without the shim), and what is copied
     * into the pool then lies inside a block glibc vouched for. */
    q = __libc_realloc(ptr, size);
    if (unlikely(!q) && fallback_make_room(size)) q = __libc_realloc(ptr, size);
    if (q == NULL) {
        if (p) alloc_free(p);
        return NULL;
    }
    size_t now = fallback_chunk_bytes(q);
    if (q != ptr) { /* moved: the old block is freed, a new one taken */
        glibc_tune_note_freed(have);
        glibc_tune_note_taken(now);
    } else if (now < have) {
        glibc_tune_note_freed(have - now);
    } else {
        glibc_tune_note_taken(now - have);
    }
    if (p == NULL) return q;
    memcpy(p, q, size);
    fallback_free(q);
    return p;
}

/* realloc of a non-NULL pointer to a nonzero size.  segpool_realloc checks
 * ptr first (an invalid or freed block aborts), and fails for a size above
 * one segment. */
void *fallback_realloc(void *ptr, size_t size) {
    if (!alloc_owns(ptr)) return fallback_glibc_realloc(ptr, size);
    void *q = segpool_realloc(ptr, size);
    if (q) return q;
    /* Grown past one segment, or the pool is exhausted: move to glibc. */
    heap_note_fallback(fallback_reason(size), size);
    q = fallback_libc_malloc(size);
    if (!q) return NULL; /* errno is ENOMEM; ptr is untouched */
    size_t have = segpool_usable_size(ptr);
    memcpy(q, ptr, have < size ? have : size);
    int saved = errno;
    alloc_free(ptr);
    errno = saved;
    return q;
}

/* alignment is a power of two. */
void *fallback_memalign(size_t alignment, size_t size) {
    if (!pool_ready()) pool_init();
    if (pool_ready() && size <= pool_small_max()) {
        void *p = segpool_aligned_alloc(alignment, size);
        if (p) return p;
        heap_note_fallback(alignment > pool_small_max() ? SEGPOOL_FALLBACK_ALIGNED : SEGPOOL_FALLBACK_EXHAUSTED, size);
    } else {
        heap_note_fallback(fallback_reason(size), size);
    }
    fallback_glibc_first();
    void *p = __libc_memalign(alignment, size);
    if (unlikely(!p) && size <= SIZE_MAX - alignment && fallback_make_room(size + alignment))
        p = __libc_memalign(alignment, size);
    return fallback_taken(p);
}

/* The bytes are counted for malloc_trim (glibc_tune_trim_due). */
void fallback_free(void *ptr) {
    if (ptr) {
        glibc_tune_note_freed(fallback_chunk_bytes(ptr));
        __libc_free(ptr);
    }
}

/* glibc exports no __libc_ name for malloc_usable_size: look it up once, in
 * libc itself.  Not RTLD_NEXT: a program linked with another allocator (the
 * Debian redis-server links jemalloc) would give us that allocator's.  Only
 * the program's own malloc_usable_size calls it: free and realloc read the
 * chunk header (fallback_chunk_bytes). */
typedef size_t (*fallback_usable_fn)(void *);
static _Atomic(fallback_usable_fn) fallback_libc_usable;

static fallback_usable_fn fallback_usable_lookup(void) {
    fallback_usable_fn fn = atomic_load_explicit(&fallback_libc_usable, memory_order_acquire);
    if (!fn) {
        void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        if (libc) fn = (fallback_usable_fn)dlsym(libc, "malloc_usable_size");
        if (fn) atomic_store_explicit(&fallback_libc_usable, fn, memory_order_release);
    }
    return fn;
}

/* Resolved as the shim is loaded, where dlopen is safe.  glibc's knobs are
 * set there too, and with them glibc's malloc initialized in the loading
 * thread: glibc's initialization makes main_arena the arena of whichever
 * thread runs it, and main_arena starts counted as attached to one thread,
 * the main one.  Under the shim the main thread may never call glibc's
 * malloc, so two other threads could each take main_arena that way and the
 * second to exit failed glibc's "a->attached_threads > 0" assertion (3 runs
 * in 60 of hardening.threads_many). */
__attribute__((constructor)) static void fallback_usable_init(void) {
    (void)fallback_usable_lookup();
    fallback_glibc_first();
}

size_t fallback_usable_size(void *ptr) {
    fallback_usable_fn fn = fallback_usable_lookup();
    return fn ? fn(ptr) : 0;
}
