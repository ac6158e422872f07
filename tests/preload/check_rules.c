/*
 * check_rules.c - the glibc malloc rules that real programs depend on.
 *
 * Run by CTest twice: under LD_PRELOAD=libsegshim.so and without it.  Every
 * check must hold for glibc itself, so a check that passes only under the
 * shim (or only without it) points at a bug in the test or in the shim.
 *
 * Rules checked (docs/design.md, "glibc rules"; the README's list):
 *   - free() preserves errno, for pool, libc-fallback and libc-internal blocks
 *   - malloc_usable_size(NULL) == 0, and >= the request otherwise
 *   - overflow and huge requests return NULL with errno == ENOMEM
 *   - posix_memalign: EINVAL for bad alignments, *memptr untouched on failure
 *   - every aligned entry point honours every power of two from 8 to 64 KiB
 *   - malloc(0) returns unique, freeable pointers, also after this thread
 *     freed small blocks of another thread
 *   - realloc: NULL pointer, size 0, growth past one segment, shrinking,
 *     moves across the pool/libc boundary, all without losing data
 *   - blocks allocated inside glibc (strdup, getline, asprintf, ...) and
 *     blocks from __libc_malloc are freed by the program through free()
 *   - calloc returns zeroed memory, even where freed blocks were dirty
 *   - cfree, when some library exports it
 *
 * Failures print what failed and the program exits 1; it never stops at the
 * first failure so one run shows everything.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <glob.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* glibc's own allocator: a pointer from here was never seen by the shim. */
extern void *__libc_malloc(size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_calloc(size_t count, size_t size);

static int failures;
static int checks;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        checks++;                                                                                            \
        if (!(cond)) {                                                                                       \
            failures++;                                                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

/* Sizes pass through a volatile so the compiler neither folds nor warns about
 * requests it can see are too large. */
static volatile size_t vsize_max = SIZE_MAX;
/* Called through volatile pointers where a failed resize is expected, so the
 * compiler does not treat the old block as freed. */
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static void *(*volatile reallocarray_v)(void *, size_t, size_t) = reallocarray;

static size_t opaque(size_t n)
{
    volatile size_t v = n;
    return v;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131u + seed);
}

/* Index of the first byte that differs from fill(seed), or n. */
static size_t verify(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 131u + seed))
            return i;
    return n;
}

/* Sizes around every power of two from 1 to 2 MiB, whatever the segment size. */
static size_t sizes[256];
static int nsizes;

static void sizes_init(void)
{
    sizes[nsizes++] = 0;
    for (size_t p = 1; p <= ((size_t)2 << 20); p <<= 1) {
        if (p > 2)
            sizes[nsizes++] = p - 1;
        sizes[nsizes++] = p;
        sizes[nsizes++] = p + 1;
        if (p >= 64)
            sizes[nsizes++] = p + p / 2 + 8;
    }
}

static int is_aligned(const void *p, size_t alignment)
{
    return ((uintptr_t)p & (alignment - 1)) == 0;
}

/* ---- errno ------------------------------------------------------------- */

static void check_free_errno(void)
{
    const size_t req[] = {1, 16, 100, 4096, 32768, 65536, 1 << 20, 8 << 20};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        void *p = malloc(opaque(req[i]));
        CHECK(p != NULL, "malloc(%zu) failed", req[i]);
        errno = 1234;
        free(p);
        CHECK(errno == 1234, "free of a malloc(%zu) block changed errno to %d", req[i], errno);
    }
    void *lp = __libc_malloc(opaque(100));
    errno = 1234;
    free(lp);
    CHECK(errno == 1234, "free of a __libc_malloc block changed errno to %d", errno);

    lp = __libc_malloc(opaque(4 << 20)); /* mmapped by glibc */
    errno = 1234;
    free(lp);
    CHECK(errno == 1234, "free of a big __libc_malloc block changed errno to %d", errno);

    char *s = strdup("errno survives free");
    errno = 1234;
    free(s);
    CHECK(errno == 1234, "free of a strdup block changed errno to %d", errno);

    errno = 1234;
    free(NULL);
    CHECK(errno == 1234, "free(NULL) changed errno to %d", errno);

    void *a = aligned_alloc(4096, opaque(4096));
    errno = 1234;
    free(a);
    CHECK(errno == 1234, "free of an aligned_alloc block changed errno to %d", errno);
}

/* ---- malloc_usable_size ------------------------------------------------ */

static void check_usable_size(void)
{
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
    for (int i = 0; i < nsizes; i++) {
        size_t n = sizes[i];
        unsigned char *p = malloc(opaque(n));
        CHECK(p != NULL, "malloc(%zu) failed", n);
        if (!p)
            continue;
        size_t u = malloc_usable_size(p);
        CHECK(u >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, u);
        /* The whole usable size is the program's to write. */
        memset(p, 0x5a, u);
        free(p);
    }
    void *lp = __libc_malloc(opaque(300));
    CHECK(malloc_usable_size(lp) >= 300, "usable size of a __libc_malloc(300) block = %zu", malloc_usable_size(lp));
    free(lp);
}

/* ---- overflow and huge requests ---------------------------------------- */

#define CHECK_ENOMEM(expr, what)                                                                             \
    do {                                                                                                     \
        errno = 0;                                                                                           \
        void *r_ = (expr);                                                                                   \
        int e_ = errno;                                                                                      \
        CHECK(r_ == NULL, "%s returned %p", what, r_);                                                       \
        CHECK(e_ == ENOMEM, "%s set errno %d (%s), not ENOMEM", what, e_, strerror(e_));                    \
        if (r_)                                                                                              \
            free(r_);                                                                                        \
    } while (0)

static void check_overflow(void)
{
    const size_t max = vsize_max;
    const size_t huge = opaque((size_t)1 << 62);
    const size_t half = opaque(((size_t)1 << 32) + 1);

    CHECK_ENOMEM(malloc(max), "malloc(SIZE_MAX)");
    CHECK_ENOMEM(malloc(max - 4096), "malloc(SIZE_MAX - 4096)");
    CHECK_ENOMEM(malloc(opaque(PTRDIFF_MAX) + 1), "malloc(PTRDIFF_MAX + 1)");
    CHECK_ENOMEM(malloc(huge), "malloc(1 << 62)");
    CHECK_ENOMEM(calloc(half, half), "calloc(2^32 + 1, 2^32 + 1)");
    CHECK_ENOMEM(calloc(max / 2 + 2, 2), "calloc(SIZE_MAX / 2 + 2, 2)");
    CHECK_ENOMEM(calloc(2, max), "calloc(2, SIZE_MAX)");
    CHECK_ENOMEM(calloc(1, huge), "calloc(1, 1 << 62)");
    CHECK_ENOMEM(reallocarray(NULL, half, half), "reallocarray(NULL, 2^32 + 1, 2^32 + 1)");
    CHECK_ENOMEM(memalign(64, max), "memalign(64, SIZE_MAX)");
    CHECK_ENOMEM(memalign(64, huge), "memalign(64, 1 << 62)");
    CHECK_ENOMEM(aligned_alloc(64, max), "aligned_alloc(64, SIZE_MAX)");
    CHECK_ENOMEM(aligned_alloc(4096, huge), "aligned_alloc(4096, 1 << 62)");
    CHECK_ENOMEM(valloc(max), "valloc(SIZE_MAX)");
    CHECK_ENOMEM(pvalloc(max), "pvalloc(SIZE_MAX)");
    CHECK_ENOMEM(pvalloc(max - 100), "pvalloc(SIZE_MAX - 100)");

    /* A failed realloc or reallocarray leaves the block alone. */
    const size_t starts[] = {40, 20000, 32768, 300000};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        size_t n = starts[i];
        unsigned char *p = malloc(opaque(n));
        CHECK(p != NULL, "malloc(%zu) failed", n);
        if (!p)
            continue;
        fill(p, n, 7);
        CHECK_ENOMEM(realloc_v(p, max), "realloc(p, SIZE_MAX)");
        CHECK_ENOMEM(realloc_v(p, huge), "realloc(p, 1 << 62)");
        CHECK_ENOMEM(reallocarray_v(p, max / 2, 3), "reallocarray(p, SIZE_MAX / 2, 3)");
        CHECK_ENOMEM(reallocarray_v(p, half, half), "reallocarray(p, 2^32 + 1, 2^32 + 1)");
        CHECK(verify(p, n, 7) == n, "a %zu-byte block changed after failed reallocs (byte %zu)", n, verify(p, n, 7));
        free(p);
    }

    void *m = (void *)0x1234;
    int rc = posix_memalign(&m, 64, max);
    CHECK(rc == ENOMEM, "posix_memalign(64, SIZE_MAX) returned %d", rc);
    CHECK(m == (void *)0x1234, "posix_memalign(64, SIZE_MAX) wrote *memptr = %p", m);
    rc = posix_memalign(&m, 4096, huge);
    CHECK(rc == ENOMEM, "posix_memalign(4096, 1 << 62) returned %d", rc);
    CHECK(m == (void *)0x1234, "posix_memalign(4096, 1 << 62) wrote *memptr = %p", m);
}

/* ---- posix_memalign argument checks ------------------------------------ */

/* aligned_alloc with an alignment that is not a power of two: glibc 2.38
 * and later fail it with EINVAL; before, it was memalign and rounded the
 * alignment up.  Whichever glibc runs this, the shim must do the same. */
static void check_aligned_alloc_odd_alignment(void)
{
    unsigned major = 0, minor = 0;
    sscanf(gnu_get_libc_version(), "%u.%u", &major, &minor);
    int strict = major > 2 || (major == 2 && minor >= 38);
    static const size_t odd[] = {24, 48, 100, 3000, 40000};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        errno = 0;
        void *p = aligned_alloc(opaque(odd[i]), opaque(100));
        int e = errno;
        if (strict) {
            CHECK(p == NULL && e == EINVAL, "aligned_alloc(%zu, 100) under glibc %s: %p, errno %d, not NULL and EINVAL",
                  odd[i], gnu_get_libc_version(), p, e);
        } else {
            size_t pow = 1;
            while (pow < odd[i]) pow <<= 1;
            CHECK(p != NULL && is_aligned(p, pow), "aligned_alloc(%zu, 100) under glibc %s: %p, not aligned to %zu",
                  odd[i], gnu_get_libc_version(), p, pow);
        }
        free(p);
    }
}

static void check_posix_memalign_einval(void)
{
    const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4095, 4097, (size_t)3 << 20, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *m = (void *)0x5678;
        int rc = posix_memalign(&m, opaque(bad[i]), 16);
        CHECK(rc == EINVAL, "posix_memalign(alignment %zu) returned %d, not EINVAL", bad[i], rc);
        CHECK(m == (void *)0x5678, "posix_memalign(alignment %zu) wrote *memptr = %p", bad[i], m);
        if (rc == 0 && m != (void *)0x5678)
            free(m);
    }
    /* Size 0 with a good alignment is fine and gives a freeable pointer (or NULL). */
    void *m = (void *)0x5678;
    int rc = posix_memalign(&m, 64, 0);
    CHECK(rc == 0, "posix_memalign(64, 0) returned %d", rc);
    if (rc == 0)
        free(m);
}

/* ---- alignment of every aligned entry point ---------------------------- */

static void check_alignment(void)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t asizes[] = {0, 1, 8, 15, 16, 24, 100, 512, 1000, 4095, 4096, 5000, 16384,
                             32767, 32768, 32769, 40000, 65536, 65537, 100000, 300000};
    void *keep[16];
    int nkeep = 0;

    for (size_t al = 8; al <= 65536; al <<= 1) {
        for (size_t i = 0; i < sizeof asizes / sizeof asizes[0]; i++) {
            size_t n = asizes[i];
            void *p[3] = {NULL, NULL, NULL};
            const char *name[3] = {"aligned_alloc", "memalign", "posix_memalign"};

            p[0] = aligned_alloc(opaque(al), opaque(n));
            p[1] = memalign(opaque(al), opaque(n));
            int rc = posix_memalign(&p[2], opaque(al), opaque(n));
            CHECK(rc == 0, "posix_memalign(%zu, %zu) returned %d", al, n, rc);

            for (int k = 0; k < 3; k++) {
                if (n > 0 || p[k]) {
                    CHECK(p[k] != NULL, "%s(%zu, %zu) returned NULL", name[k], al, n);
                }
                if (!p[k])
                    continue;
                CHECK(is_aligned(p[k], al), "%s(%zu, %zu) = %p is misaligned", name[k], al, n, p[k]);
                CHECK(malloc_usable_size(p[k]) >= n, "%s(%zu, %zu): usable size %zu", name[k], al, n,
                      malloc_usable_size(p[k]));
                if (n)
                    fill(p[k], n, (unsigned)(al + n + k));
            }
            for (int k = 0; k < 3; k++) {
                if (p[k] && n)
                    CHECK(verify(p[k], n, (unsigned)(al + n + k)) == n, "%s(%zu, %zu) block overlaps another",
                          name[k], al, n);
            }
            /* Keep a few alive so later blocks do not reuse the same addresses. */
            for (int k = 0; k < 3; k++) {
                if (p[k] && nkeep < 16 && (n & 1))
                    keep[nkeep++] = p[k];
                else
                    free(p[k]);
            }
        }
    }
    for (int i = 0; i < nkeep; i++)
        free(keep[i]);

    for (size_t i = 0; i < sizeof asizes / sizeof asizes[0]; i++) {
        size_t n = asizes[i];
        void *v = valloc(opaque(n));
        CHECK(v != NULL, "valloc(%zu) returned NULL", n);
        CHECK(is_aligned(v, page), "valloc(%zu) = %p is not page aligned", n, v);
        CHECK(malloc_usable_size(v) >= n, "valloc(%zu): usable size %zu", n, malloc_usable_size(v));
        if (v)
            memset(v, 1, n);
        free(v);

        void *pv = pvalloc(opaque(n));
        size_t rounded = (n + page - 1) & ~(page - 1);
        /* glibc 2.36 rounds pvalloc(0) to 1 byte, not a page (its mask is
         * -(pagesize - 1)): expect only what glibc gives. */
        CHECK(pv != NULL, "pvalloc(%zu) returned NULL", n);
        CHECK(is_aligned(pv, page), "pvalloc(%zu) = %p is not page aligned", n, pv);
        CHECK(malloc_usable_size(pv) >= rounded, "pvalloc(%zu): usable size %zu < %zu", n, malloc_usable_size(pv),
              rounded);
        if (pv)
            memset(pv, 2, rounded); /* pvalloc rounds the request up to whole pages */
        free(pv);
    }
}

/* ---- malloc(0) --------------------------------------------------------- */

static int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* Blocks of 1-16 bytes that another thread allocated, freed here: under the
 * shim this thread keeps them for its next allocations of that class, which
 * malloc(0) and calloc(0, n) are too. */
enum { FOREIGN_N = 8 };
static void *foreign_blocks[FOREIGN_N];
static void *foreign_alloc(void *arg)
{
    (void)arg;
    for (int i = 0; i < FOREIGN_N; i++)
        foreign_blocks[i] = malloc(opaque(1 + i));
    return NULL;
}

static void free_foreign_blocks(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, foreign_alloc, NULL) != 0 || pthread_join(t, NULL) != 0) {
        CHECK(0, "could not run a thread");
        return;
    }
    for (int i = 0; i < FOREIGN_N; i++)
        free(foreign_blocks[i]);
}

static void check_malloc_zero(void)
{
    enum { N = 1000 };
    void *p[N];
    free_foreign_blocks(); /* before: malloc(0) once aborted with "corrupted free list" here */
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0: p[i] = malloc(opaque(0)); break;
        case 1: p[i] = calloc(opaque(0), 16); break;
        case 2: p[i] = calloc(16, opaque(0)); break;
        default: p[i] = realloc(NULL, opaque(0)); break;
        }
        CHECK(p[i] != NULL, "zero-size request %d (kind %d) returned NULL", i, i % 4);
    }
    qsort(p, N, sizeof p[0], ptr_cmp);
    for (int i = 1; i < N; i++)
        CHECK(p[i] == NULL || p[i] != p[i - 1], "zero-size requests returned %p twice", p[i]);
    for (int i = 0; i < N; i++)
        free(p[i]);
}

/* ---- realloc ----------------------------------------------------------- */

static void check_realloc(void)
{
    /* realloc(NULL, n) is malloc(n). */
    unsigned char *p = realloc(NULL, opaque(100));
    CHECK(p != NULL, "realloc(NULL, 100) returned NULL");
    CHECK(malloc_usable_size(p) >= 100, "realloc(NULL, 100): usable size %zu", malloc_usable_size(p));
    free(p);

    /* realloc(p, 0) frees p and returns NULL (glibc). */
    const size_t zs[] = {10, 32768, 1 << 20};
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        p = malloc(opaque(zs[i]));
        void *r = realloc(p, opaque(0));
        CHECK(r == NULL, "realloc(malloc(%zu), 0) returned %p, glibc frees and returns NULL", zs[i], r);
        if (r)
            free(r);
    }

    /* Grow one block step by step from 1 byte to 4 MiB, through every
     * power-of-two boundary (and so past one segment, whatever its size),
     * then shrink it back; the data must survive every move. */
    size_t cur = 1;
    p = malloc(cur);
    fill(p, cur, 3);
    for (int i = 0; i < nsizes; i++) {
        size_t n = sizes[i];
        if (n <= cur)
            continue;
        unsigned char *q = realloc(p, n);
        CHECK(q != NULL, "realloc grow %zu -> %zu returned NULL", cur, n);
        if (!q)
            break;
        size_t bad = verify(q, cur, 3);
        CHECK(bad == cur, "realloc grow %zu -> %zu lost byte %zu", cur, n, bad);
        fill(q, n, 3);
        p = q;
        cur = n;
    }
    for (int i = nsizes - 1; i >= 0; i--) {
        size_t n = sizes[i];
        if (n >= cur || n == 0)
            continue;
        unsigned char *q = realloc(p, n);
        CHECK(q != NULL, "realloc shrink %zu -> %zu returned NULL", cur, n);
        if (!q)
            break;
        size_t bad = verify(q, n, 3);
        CHECK(bad == n, "realloc shrink %zu -> %zu lost byte %zu", cur, n, bad);
        CHECK(malloc_usable_size(q) >= n, "realloc shrink to %zu: usable size %zu", n, malloc_usable_size(q));
        p = q;
        cur = n;
    }
    free(p);

    /* Jumps straight across the boundary in both directions. */
    const size_t pairs[][2] = {{16, 1 << 20},    {1 << 20, 16},     {32768, 32769}, {32769, 32768},
                               {100, 65536},     {65536, 100},      {4000, 2 << 20}, {2 << 20, 4000},
                               {32767, 1 << 16}, {(1 << 16) + 1, 32767}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t a = pairs[i][0], b = pairs[i][1];
        unsigned char *x = malloc(opaque(a));
        fill(x, a, (unsigned)i);
        unsigned char *y = realloc(x, opaque(b));
        CHECK(y != NULL, "realloc %zu -> %zu returned NULL", a, b);
        if (!y)
            continue;
        size_t keep = a < b ? a : b;
        CHECK(verify(y, keep, (unsigned)i) == keep, "realloc %zu -> %zu lost data at byte %zu", a, b,
              verify(y, keep, (unsigned)i));
        memset(y, 0, b); /* the whole new size is writable */
        free(y);
    }

    /* Blocks from glibc itself, resized and freed through the shim. */
    const size_t lsz[] = {24, 5000, 200000};
    for (size_t i = 0; i < sizeof lsz / sizeof lsz[0]; i++) {
        unsigned char *l = __libc_malloc(opaque(lsz[i]));
        fill(l, lsz[i], 11);
        unsigned char *s = realloc(l, 8);
        CHECK(s != NULL && verify(s, 8, 11) == 8, "realloc(__libc_malloc(%zu), 8) lost data", lsz[i]);
        unsigned char *g = realloc(s, opaque(3 << 20));
        CHECK(g != NULL && verify(g, 8, 11) == 8, "realloc of a former libc block to 3 MiB lost data");
        free(g);
    }
    void *lm = __libc_memalign(256, opaque(1000));
    CHECK(malloc_usable_size(lm) >= 1000, "usable size of __libc_memalign(256, 1000) = %zu", malloc_usable_size(lm));
    free(lm);
    void *lc = __libc_calloc(10, 10);
    free(lc);

    /* reallocarray with good arguments. */
    int *arr = reallocarray(NULL, 10, sizeof(int));
    CHECK(arr != NULL, "reallocarray(NULL, 10, 4) returned NULL");
    for (int i = 0; i < 10; i++)
        arr[i] = i * i;
    arr = reallocarray(arr, 100000, sizeof(int));
    CHECK(arr != NULL, "reallocarray(arr, 100000, 4) returned NULL");
    for (int i = 0; arr && i < 10; i++)
        CHECK(arr[i] == i * i, "reallocarray lost element %d", i);
    free(arr);
}

/* ---- blocks allocated inside glibc, freed by the program ---------------- */

static int scandir_filter(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static int format_alloc(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(out, fmt, ap);
    va_end(ap);
    return r;
}

static void check_libc_internal(void)
{
    char *s = strdup("hello, world");
    CHECK(s && strcmp(s, "hello, world") == 0, "strdup");
    free(s);
    s = strndup("abcdefgh", 3);
    CHECK(s && strcmp(s, "abc") == 0, "strndup");
    free(s);

    char *a = NULL;
    int n = asprintf(&a, "%d-%s-%0*d", 42, "x", 40000, 7); /* 40 KB: past one segment */
    CHECK(n == 40005 && a && strlen(a) == 40005, "asprintf gave %d", n);
    free(a);
    n = format_alloc(&a, "%s %s", "small", "string");
    CHECK(n == 12 && a && strcmp(a, "small string") == 0, "vasprintf gave %d", n);
    free(a);

    /* getline/getdelim through an in-memory stream; one line longer than a segment. */
    char tmpl[] = "/tmp/segshim-rules-XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
    FILE *f = fdopen(fd, "w+");
    for (int i = 0; i < 100; i++)
        fprintf(f, "line %d\n", i);
    for (int i = 0; i < 70000; i++)
        fputc('a' + i % 26, f);
    fputc('\n', f);
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lines = 0;
    size_t longest = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lines++;
        if ((size_t)len > longest)
            longest = (size_t)len;
    }
    CHECK(lines == 101 && longest == 70001, "getline read %d lines, longest %zu", lines, longest);
    free(line);
    rewind(f);
    line = NULL;
    cap = 0;
    len = getdelim(&line, &cap, ' ', f);
    CHECK(len == 5 && strcmp(line, "line ") == 0, "getdelim gave %zd", len);
    free(line);
    fclose(f);

    char *ms = NULL;
    size_t mslen = 0;
    FILE *m = open_memstream(&ms, &mslen);
    CHECK(m != NULL, "open_memstream");
    for (int i = 0; i < 20000; i++)
        fprintf(m, "%05d", i);
    fclose(m);
    CHECK(mslen == 100000 && ms && memcmp(ms + 99995, "19999", 5) == 0, "open_memstream gave %zu bytes", mslen);
    free(ms);

    char *rp = realpath("/tmp/../tmp/.", NULL);
    CHECK(rp && strcmp(rp, "/tmp") == 0, "realpath(NULL) gave %s", rp ? rp : "(null)");
    free(rp);
    rp = canonicalize_file_name(tmpl);
    CHECK(rp && strcmp(rp, tmpl) == 0, "canonicalize_file_name gave %s", rp ? rp : "(null)");
    free(rp);
    char *cwd = getcwd(NULL, 0);
    CHECK(cwd != NULL, "getcwd(NULL, 0)");
    free(cwd);
    cwd = get_current_dir_name();
    CHECK(cwd != NULL, "get_current_dir_name");
    free(cwd);

    /* scandir: the array and every entry come from glibc's malloc. */
    char dir[] = "/tmp/segshim-scan-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    char path[128];
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof path, "%s/f%03d", dir, i);
        FILE *t = fopen(path, "w");
        if (t)
            fclose(t);
    }
    struct dirent **list = NULL;
    int count = scandir(dir, &list, scandir_filter, alphasort);
    CHECK(count == 300, "scandir found %d entries", count);
    for (int i = 0; i < count; i++) {
        if (i == 0)
            CHECK(strcmp(list[i]->d_name, "f000") == 0, "scandir first entry %s", list[i]->d_name);
        free(list[i]);
    }
    free(list);

    glob_t g;
    snprintf(path, sizeof path, "%s/f1*", dir);
    CHECK(glob(path, 0, NULL, &g) == 0 && g.gl_pathc == 100, "glob found %zu", g.gl_pathc);
    globfree(&g);
    for (int i = 0; i < 300; i++) {
        snprintf(path, sizeof path, "%s/f%03d", dir, i);
        unlink(path);
    }
    rmdir(dir);
    unlink(tmpl);

    regex_t re;
    CHECK(regcomp(&re, "^(a|b)+[0-9]{2,}$", REG_EXTENDED) == 0, "regcomp");
    CHECK(regexec(&re, "abba123", 0, NULL, 0) == 0, "regexec");
    regfree(&re);
}

/* ---- calloc ------------------------------------------------------------ */

static void check_calloc(void)
{
    const size_t cs[] = {1, 8, 16, 24, 100, 1000, 4096, 10000, 32767, 32768, 32769, 100000, 1 << 20};
    enum { NCS = sizeof cs / sizeof cs[0], ROUNDS = 4 };
    for (int round = 0; round < ROUNDS; round++) {
        /* Dirty blocks of every size, free them, then calloc the same sizes:
         * an allocator that reuses them must clear them. */
        void *dirty[NCS * 8];
        for (int i = 0; i < NCS * 8; i++) {
            dirty[i] = malloc(cs[i % NCS]);
            memset(dirty[i], 0xA5, cs[i % NCS]);
        }
        for (int i = 0; i < NCS * 8; i++)
            free(dirty[i]);
        for (int i = 0; i < NCS * 8; i++) {
            size_t n = cs[i % NCS];
            size_t count = (i & 1) ? n : 1, each = (i & 1) ? 1 : n;
            unsigned char *c = calloc(count, each);
            CHECK(c != NULL, "calloc(%zu, %zu) returned NULL", count, each);
            if (!c)
                continue;
            size_t nz = 0;
            while (nz < n && c[nz] == 0)
                nz++;
            CHECK(nz == n, "calloc(%zu, %zu): byte %zu is %#x, not zero", count, each, nz, nz < n ? c[nz] : 0);
            memset(c, 0xA5, n);
            dirty[i] = c;
        }
        for (int i = 0; i < NCS * 8; i++)
            free(dirty[i]);
    }
}

/* ---- cfree ------------------------------------------------------------- */

static void check_cfree(void)
{
    /* glibc 2.26+ no longer declares cfree or links new programs to it; when
     * a preloaded allocator exports it, it must free. */
    void (*cf)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    if (!cf) {
        printf("cfree: not exported, skipped\n");
        return;
    }
    for (int i = 0; i < 100; i++) {
        void *p = malloc(opaque((size_t)i * 700));
        errno = 1234;
        cf(p);
        CHECK(errno == 1234, "cfree changed errno to %d", errno);
    }
    printf("cfree: checked\n");
}

int main(void)
{
    sizes_init();
    const char *pre = getenv("LD_PRELOAD");
    printf("check_rules: LD_PRELOAD=%s\n", pre ? pre : "(unset)");
    /* Under the shim, make sure it really is the allocator in this process
     * (a misspelt LD_PRELOAD only prints a loader warning). */
    if (pre && strstr(pre, "segshim")) {
        void *sym = dlsym(RTLD_DEFAULT, "segshim_stats_print");
        CHECK(sym != NULL, "LD_PRELOAD names segshim but segshim_stats_print is not loaded");
    }

    check_free_errno();
    check_usable_size();
    check_overflow();
    check_posix_memalign_einval();
    check_aligned_alloc_odd_alignment();
    check_alignment();
    check_malloc_zero();
    check_realloc();
    check_libc_internal();
    check_calloc();
    check_cfree();

    printf("check_rules: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
