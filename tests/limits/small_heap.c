/*
 * small_heap.c - a small program under a tight RLIMIT_DATA set before it
 * starts (`ulimit -d 20000; prog`) needs little more of it under the shim
 * than under glibc.
 *
 * The child (`small_heap run`) does what an interpreter's start-up and its
 * first data structures do: a few blocks of every size from 16 B to 32 KiB,
 * kept; 20,000 blocks of 100 B; and a table grown by doubling from 64 KiB
 * to 8 MiB, each step a new block, the old one copied and freed (a hash
 * table's growth: the freed tables are holes the next, larger one cannot
 * use).  It prints "done" and exits 0, or exits 1 when malloc fails.
 *
 * The parent finds, for glibc and for the shim, the least RLIMIT_DATA in
 * MiB under which the child completes (a binary search), and requires the
 * shim's to be at most glibc's + SMALL_HEAP_SLACK_MIB: one 2 MiB region of
 * the pool, plus a partly used segment per size class.  Before the shim,
 * under a limit, started each class with a small slab and left glibc's
 * thresholds alone, the child needed 11 MiB more (27 MiB against 16).
 */
#include "limits_common.h"

#define SMALL_HEAP_SLACK_MIB 4
#define SMALL_HEAP_MAX_MIB 256

static int run(void) {
    size_t kept = 0;
    for (size_t size = 16; size <= 32768; size += size < 256 ? 16 : size / 8)
        for (int k = 0; k < 3; k++) {
            char *p = malloc(size);
            if (!p) return 1;
            memset(p, 1, size);
            kept += size;
        }
    for (int i = 0; i < 20000; i++) {
        char *p = malloc(100);
        if (!p) return 1;
        memset(p, 2, 100);
    }
    size_t have = 64 << 10;
    char *table = calloc(1, have);
    if (!table) return 1;
    while (have < ((size_t)8 << 20)) {
        char *bigger = malloc(have * 2);
        if (!bigger) return 1;
        memcpy(bigger, table, have);
        memset(bigger + have, 3, have);
        free(table);
        table = bigger;
        have *= 2;
    }
    printf("done %zu\n", kept + have);
    return 0;
}

/* The child completes under RLIMIT_DATA = mib MiB. */
static int completes(int shim, unsigned mib) {
    char out[64];
    char *argv[] = {"small_heap", "run", NULL};
    int rc = limits_run_with(shim, RLIMIT_DATA, (uint64_t)mib * LIMITS_MIB, argv, out, sizeof out);
    if (rc != 0 && rc != 1) {
        fprintf(stderr, "FAIL: %s under RLIMIT_DATA %u MiB: the child exited %d\n", shim ? "shim" : "glibc", mib, rc);
        exit(1);
    }
    return rc == 0 && strncmp(out, "done", 4) == 0;
}

/* The least limit in MiB the child completes under, or 0 if none up to the most. */
static unsigned least(int shim) {
    unsigned lo = 0, hi = SMALL_HEAP_MAX_MIB; /* fails at lo, completes at hi */
    if (!completes(shim, hi)) return 0;
    while (hi - lo > 1) {
        unsigned mid = (lo + hi) / 2;
        if (completes(shim, mid)) hi = mid;
        else lo = mid;
    }
    return hi;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "run") == 0) return run();
    limits_shim();
    unsigned glibc = least(0), shim = least(1);
    if (glibc == 0 || shim == 0) {
        printf("FAIL: the child did not complete under RLIMIT_DATA %u MiB (glibc %u, shim %u)\n", SMALL_HEAP_MAX_MIB,
               glibc, shim);
        return 1;
    }
    int ok = shim <= glibc + SMALL_HEAP_SLACK_MIB;
    printf("%s least RLIMIT_DATA: shim %u MiB, glibc %u MiB (at most %u MiB more allowed)\n", ok ? "ok:  " : "FAIL:",
           shim, glibc, SMALL_HEAP_SLACK_MIB);
    return !ok;
}
