/*
 * libcmalloc.so - glibc's malloc behind LD_PRELOAD.
 *
 * A program linked against another allocator (Debian's redis-server links
 * libjemalloc) runs on that allocator even in the "glibc" column of the
 * benchmarks.  Preloading this library sends its malloc family back to
 * glibc's own implementation through the exported __libc_* entry points.
 * Used only where needed: everywhere else the glibc column preloads nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

void *malloc(size_t n) { return __libc_malloc(n); }
void free(void *p) { __libc_free(p); }
void *calloc(size_t c, size_t n) { return __libc_calloc(c, n); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void *memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
void *aligned_alloc(size_t a, size_t n) { return __libc_memalign(a, n); }
void *valloc(size_t n) { return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n); }

void *pvalloc(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return __libc_memalign(page, (n + page - 1) & ~(page - 1));
}

int posix_memalign(void **out, size_t a, size_t n)
{
    if (a < sizeof(void *) || (a & (a - 1)) != 0)
        return EINVAL;
    void *p = __libc_memalign(a, n);
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

size_t malloc_usable_size(void *p)
{
    static size_t (*libc_usable)(void *);
    if (libc_usable == NULL) {
        void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
        if (h != NULL)
            libc_usable = (size_t (*)(void *))dlsym(h, "malloc_usable_size");
        if (libc_usable == NULL)
            return 0;
    }
    return libc_usable(p);
}
