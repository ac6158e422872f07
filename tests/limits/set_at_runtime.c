/*
 * set_at_runtime.c - a program that sets its own RLIMIT_AS or RLIMIT_DATA
 * to a fixed value after start-up (a shell's `ulimit -v 200000; cmd`
 * builtins, a sandbox capping itself) gets about as much memory under the
 * shim as under glibc, in blocks served by the pool and by glibc alike.
 *
 * The child (`set_at_runtime run as|data MIB SIZE`) makes one allocation,
 * sets the limit to MIB MiB, then allocates SIZE-byte blocks, writing each,
 * until malloc fails with ENOMEM; it prints the MiB it got.  Under the shim
 * it must get at least 75% of what glibc got in the same run (and no more
 * than the limit).  The pool's side tables and its arena are sized for the
 * machine's memory at start-up: unless they count only as they are used, a
 * limit lowered later leaves the program little or nothing.
 */
#include "limits_common.h"

#define KEEP_MAX 4000000

static int run(const char *which, const char *mib_arg, const char *size_arg) {
    int resource = strcmp(which, "data") == 0 ? RLIMIT_DATA : RLIMIT_AS;
    uint64_t limit = strtoull(mib_arg, NULL, 10) * LIMITS_MIB;
    size_t size = strtoull(size_arg, NULL, 10);
    void **keep = malloc(KEEP_MAX * sizeof *keep); /* before the limit */
    struct rlimit rl = {limit, RLIM_INFINITY};
    if (!keep || setrlimit(resource, &rl) != 0) return 2;
    size_t n = 0;
    char *p;
    errno = 0;
    while (n < KEEP_MAX && (p = malloc(size)) != NULL) {
        memset(p, 0x5a, size);
        keep[n++] = p;
    }
    int err = n < KEEP_MAX ? errno : -1;
    printf("%llu %d\n", (unsigned long long)(((uint64_t)n * size) >> 20), err);
    return 0;
}

/* MiB the child got under the limit, or -1 on a failure (reported). */
static long got(int shim, const char *which, const char *mib, const char *size) {
    char out[64];
    char *argv[] = {"set_at_runtime", "run", (char *)which, (char *)mib, (char *)size, NULL};
    const char *who = shim ? "shim" : "glibc";
    int rc = limits_run_with(shim, RLIMIT_AS, 0, argv, out, sizeof out);
    unsigned long long got_mib = 0;
    int err = 0;
    if (rc != 0 || sscanf(out, "%llu %d", &got_mib, &err) != 2) {
        fprintf(stderr, "FAIL: %s, %s %s MiB, %s B blocks: the child exited %d (output \"%s\")\n", who, which, mib,
                size, rc, out);
        return -1;
    }
    if (err != ENOMEM) {
        fprintf(stderr, "FAIL: %s, %s %s MiB, %s B blocks: malloc ended with errno %d after %llu MiB, not ENOMEM\n",
                who, which, mib, size, err, got_mib);
        return -1;
    }
    return (long)got_mib;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "run") == 0) return run(argv[2], argv[3], argv[4]);
    limits_shim();
    static const char *const cases[][2] = {{"as", "256"}, {"data", "128"}};
    static const char *const sizes[] = {"64", "1000", "20000", "100000"};
    int failed = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            long glibc = got(0, cases[c][0], cases[c][1], sizes[z]);
            long shim = got(1, cases[c][0], cases[c][1], sizes[z]);
            if (glibc < 0 || shim < 0) {
                failed = 1;
                continue;
            }
            int ok = shim * 4 >= glibc * 3 && shim <= atol(cases[c][1]);
            printf("%s RLIMIT_%s %s MiB, %s B blocks: shim %ld MiB, glibc %ld MiB\n", ok ? "ok:  " : "FAIL:",
                   c == 0 ? "AS" : "DATA", cases[c][1], sizes[z], shim, glibc);
            failed |= !ok;
        }
    }
    return failed;
}
