/*
 * fallback.h - what the shim does when the pool does not serve a request:
 * glibc's own allocator through its exported __libc_* entry points, with the
 * reason counted for the statistics.  Everything here is out of line: the
 * fast paths stay in interpose.c.
 */
#ifndef SEGSHIM_FALLBACK_H
#define SEGSHIM_FALLBACK_H

#include <stddef.h>

/* glibc's allocator (exported by libc.so.6; the shim never defines these). */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

void *fallback_malloc(size_t size);
void *fallback_calloc(size_t count, size_t size);
void *fallback_realloc(void *ptr, size_t size);
void *fallback_memalign(size_t alignment, size_t size);
void fallback_free(void *ptr);
size_t fallback_usable_size(void *ptr);

#endif
