/*
 * lowered.c - RLIMIT_AS lowered by the program after start-up (a sandbox
 * capping itself) holds under the shim as under glibc.
 *
 * The child (`lowered run`) sets its own limit to the address space it uses
 * now plus 200 MiB, counting only mappings in use (the shim's arena is a
 * PROT_NONE reservation and its side tables are read-only zeros until used;
 * glibc has none worth counting),
 * then allocates 1 KiB blocks, pool-served under the shim, until malloc
 * fails.  It must fail (no crash) with NULL and errno ENOMEM, after at least
 * 150 MiB and at most 250 MiB.  The child gives up at 600 MiB, so that a
 * limit that does not hold cannot take the machine's memory.
 *
 * Run twice: with no limit at start (the arena is one large reservation) and
 * with 8 GiB at start (the arena grows in pieces).
 */
#include "limits_common.h"

#define ROOM (200 * LIMITS_MIB)
#define GIVE_UP (600 * LIMITS_MIB)

/* Bytes of mappings in use: all but PROT_NONE ones and read-only anonymous
 * ones (the shim's side tables, zeros until a region is first used). */
static uint64_t accessible_bytes(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 0;
    char line[512], perm[8];
    unsigned long start, end, inode;
    uint64_t total = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx %7s %*s %*s %lu", &start, &end, perm, &inode) != 4) continue;
        if (strcmp(perm, "---p") == 0 || (strcmp(perm, "r--p") == 0 && inode == 0)) continue;
        total += end - start;
    }
    fclose(f);
    return total;
}

static int run(void) {
    void *warm = malloc(100);
    uint64_t limit = accessible_bytes() + ROOM;
    struct rlimit rl = {limit, limit};
    if (!warm || limit == ROOM || setrlimit(RLIMIT_AS, &rl) != 0) return 2;
    uint64_t total = 0;
    unsigned char *p;
    errno = 0;
    while ((p = malloc(1024)) != NULL) {
        memset(p, 0xa5, 1024);
        total += 1024;
        if (total >= GIVE_UP) break;
    }
    printf("%llu %d\n", (unsigned long long)(total >> 20), p ? -1 : errno);
    free(warm);
    return 0;
}

static int check(int shim, uint64_t start_limit) {
    char out[64];
    char *argv[] = {"lowered", "run", NULL};
    const char *who = shim ? "shim" : "glibc";
    int rc = limits_run(shim, start_limit, argv, out, sizeof out);
    unsigned long long mib = 0;
    int err = 0;
    if (rc != 0 || sscanf(out, "%llu %d", &mib, &err) != 2) {
        fprintf(stderr, "FAIL: %s: the child exited %d (output \"%s\")\n", who, rc, out);
        return 1;
    }
    printf("%s, limit %s at start: %llu MiB of 1 KiB blocks before malloc failed (errno %d)\n", who,
           start_limit ? "8G" : "none", mib, err);
    if (err == -1) {
        fprintf(stderr, "FAIL: %s: %d MiB allocated under a limit of 200 MiB more\n", who, (int)(GIVE_UP >> 20));
        return 1;
    }
    if (err != ENOMEM) {
        fprintf(stderr, "FAIL: %s: malloc failed with errno %d, not ENOMEM\n", who, err);
        return 1;
    }
    if (mib > 250 || mib < 150) {
        fprintf(stderr, "FAIL: %s: %llu MiB allocated, expected 150-250 MiB under the lowered limit\n", who, mib);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "run") == 0) return run();
    limits_shim();
    int failed = check(0, 0);
    failed |= check(1, 0);
    failed |= check(1, 8 * LIMITS_GIB);
    return failed;
}
