/*
 * memalign_errno.c - case 13 of issue 9: a posix_memalign that fails for
 * lack of memory returns ENOMEM and also sets errno to ENOMEM, as glibc
 * does (glibc's tst-malloc-thread-fail aborts otherwise).  *memptr is left
 * alone.  Several alignments (pool-served and not) and impossible sizes.
 *
 * Usage: memalign_errno shim|glibc
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    hardening_mode_shim(argc, argv);
    static const size_t aligns[] = {sizeof(void *), 16, 64, 4096, (size_t)1 << 20};
    static const size_t sizes[] = {SIZE_MAX / 2, SIZE_MAX - 4096, SIZE_MAX / 2 + 1, (size_t)1 << 62};
    int failures = 0;
    for (unsigned a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
        for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            void *p = &failures; /* a sentinel: must not change */
            errno = 0;
            int rc = posix_memalign(&p, aligns[a], sizes[s]);
            int e = errno;
            if (rc != ENOMEM || e != ENOMEM || p != &failures) {
                fprintf(stderr,
                        "FAIL: posix_memalign(align %zu, size %#zx): returned %d, errno %d, memptr %s "
                        "(expected ENOMEM=%d, errno ENOMEM, memptr untouched)\n",
                        aligns[a], sizes[s], rc, e, p == &failures ? "untouched" : "changed", ENOMEM);
                failures++;
            }
        }
    if (!failures) printf("every failing posix_memalign returned ENOMEM and set errno\n");
    return failures ? 1 : 0;
}
