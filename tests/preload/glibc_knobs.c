/*
 * glibc_knobs.c - the glibc knobs the shim sets at start-up, and the user's
 * environment winning over them.
 *
 *   glibc_knobs heap|mmap kept|trimmed|-
 *
 * A 1 MiB block must come from glibc's heap ("heap": the shim's 32 MiB mmap
 * threshold) or be mmapped ("mmap": glibc's default, or a threshold the user
 * set), seen as glibc's count of mmapped chunks (mallinfo2 hblks).  An 8 MiB
 * block at the top of the heap, once freed, must stay with glibc ("kept": the
 * shim's 64 MiB trim threshold) or go back to the OS at once ("trimmed": a
 * threshold the user set), seen as the top chunk's size (keepcost), and
 * then be given back by malloc_trim(0) either way.  "-"
 * skips the second check.  Exit 0 when both hold.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((size_t)1 << 20)

static void *(*volatile malloc_v)(size_t) = malloc;

static int glibc_knobs_fail(const char *what) {
    fprintf(stderr, "glibc_knobs: %s\n", what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) return glibc_knobs_fail("usage: glibc_knobs heap|mmap kept|trimmed|-");
    size_t before = mallinfo2().hblks;
    char *p = malloc_v(MIB);
    if (p == NULL) return glibc_knobs_fail("malloc(1 MiB) failed");
    memset(p, 1, MIB);
    int mmapped = mallinfo2().hblks > before;
    free(p);
    if (mmapped != (strcmp(argv[1], "mmap") == 0))
        return glibc_knobs_fail(mmapped ? "a 1 MiB block was mmapped" : "a 1 MiB block came from the heap");
    if (strcmp(argv[2], "-") == 0) return 0;

    char *q = malloc_v(8 * MIB);
    if (q == NULL) return glibc_knobs_fail("malloc(8 MiB) failed");
    memset(q, 2, 8 * MIB);
    free(q);
    int kept = mallinfo2().keepcost >= 8 * MIB;
    if (kept != (strcmp(argv[2], "kept") == 0))
        return glibc_knobs_fail(kept ? "a freed 8 MiB top stayed with glibc" : "a freed 8 MiB top was trimmed");
    /* What the threshold keeps, malloc_trim gives back (8 MiB freed to
     * glibc is past the shim's rule for a trim worth making). */
    malloc_trim(0);
    if (mallinfo2().keepcost >= 8 * MIB) return glibc_knobs_fail("malloc_trim left a freed 8 MiB top with glibc");
    return 0;
}
