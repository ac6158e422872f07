/*
 * after_peak.c - under RLIMIT_AS 1 GiB, and again under RLIMIT_DATA 1 GiB,
 * memory the pool held at its peak is room the program gets back: 600 MiB
 * of small blocks (64 B to 16 KiB) are allocated and freed, then 1 MiB
 * blocks (glibc's, above one segment) are allocated until malloc fails or
 * 1100 MiB are held.  The shim must get at least as many as glibc alone
 * gets less 16 MiB.  Under RLIMIT_AS, before the pool gave its purged
 * regions' address space back, it got 358 MiB of glibc's 900: the regions
 * stayed reserved (PROT_NONE), which the limit counts.  Under both limits
 * the wholly free regions the pool keeps committed (SEGSHIM_RETAIN) and the
 * thread's cached segments were in the way too (about 34 MiB less than
 * glibc): they go back as well.  Then the large blocks are freed and the
 * small ones allocated again, written and checked: the regions given back
 * are reserved again where they were.
 *
 * The child (`after_peak run`) prints the MiB of 1 MiB blocks it got; the
 * parent runs it under glibc alone and under the shim.
 */
#include "limits_common.h"

#define LIMIT (1 * LIMITS_GIB)
#define SMALL_BYTES (600 * LIMITS_MIB)
#define LARGE_MAX 1100
#define SLACK_MIB 16

static size_t block_size(size_t i) { return 64 + (i * 2654435761u) % 16320; } /* 64 B - 16 KiB */

/* SMALL_BYTES of small blocks, written, checked and freed; 0 on success. */
static int small_round(void) {
    size_t max = SMALL_BYTES / 64, count = 0, bytes = 0;
    unsigned char **small = malloc(max * sizeof *small);
    if (!small) return 2;
    for (; bytes < SMALL_BYTES && count < max; count++) {
        size_t n = block_size(count);
        small[count] = malloc(n);
        if (!small[count]) {
            fprintf(stderr, "FAIL: small block %zu of %zu bytes failed after %zu MiB\n", count, n, bytes >> 20);
            return 1;
        }
        memset(small[count], (int)count, n);
        bytes += n;
    }
    for (size_t i = 0; i < count; i++) {
        size_t n = block_size(i);
        if (small[i][0] != (unsigned char)i || small[i][n - 1] != (unsigned char)i) {
            fprintf(stderr, "FAIL: small block %zu changed\n", i);
            return 3;
        }
        free(small[i]);
    }
    free(small);
    return 0;
}

static int run(void) {
    int rc = small_round();
    if (rc) return rc;
    static void *large[LARGE_MAX];
    int got = 0;
    for (; got < LARGE_MAX; got++) {
        large[got] = malloc(LIMITS_MIB);
        if (!large[got]) break;
        memset(large[got], got, LIMITS_MIB);
    }
    for (int i = 0; i < got; i++) free(large[i]);
    rc = small_round();
    if (rc) return rc;
    printf("%d\n", got);
    return 0;
}

/* Under one limit: glibc's and the shim's MiB of 1 MiB blocks; 0 when the
 * shim got at least glibc's less SLACK_MIB. */
static int compare(const char *name, int resource) {
    char out[256];
    char *argv_run[] = {"after_peak", "run", NULL};
    int glibc = -1, shim = -1;
    int rc = limits_run_with(0, resource, LIMIT, argv_run, out, sizeof out);
    if (rc != 0 || sscanf(out, "%d", &glibc) != 1) {
        fprintf(stderr, "FAIL: %s: glibc: the child exited %d (output \"%s\")\n", name, rc, out);
        return 1;
    }
    rc = limits_run_with(1, resource, LIMIT, argv_run, out, sizeof out);
    if (rc != 0 || sscanf(out, "%d", &shim) != 1) {
        fprintf(stderr, "FAIL: %s: shim: the child exited %d (output \"%s\")\n", name, rc, out);
        return 1;
    }
    printf("%s 1G, after 600 MiB of small blocks freed: 1 MiB blocks got: glibc %d MiB, shim %d MiB\n", name, glibc,
           shim);
    if (shim < glibc - SLACK_MIB) {
        fprintf(stderr, "FAIL: %s: the shim got %d MiB of 1 MiB blocks, glibc alone %d (at most %d less allowed)\n",
                name, shim, glibc, SLACK_MIB);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "run") == 0) return run();
    limits_shim();
    int failures = compare("RLIMIT_AS", RLIMIT_AS);
    failures += compare("RLIMIT_DATA", RLIMIT_DATA);
    return failures ? 1 : 0;
}
