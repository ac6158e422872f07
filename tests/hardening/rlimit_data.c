/*
 * rlimit_data.c - case 7 of issue 9: under `ulimit -d 1G` (RLIMIT_DATA),
 * memory the allocator gave back must stop counting against the limit.
 * A child limited to 1 GiB allocates 600 MiB of 1 KiB blocks, frees them
 * all, then allocates 600 MiB in 1 MiB blocks (served by glibc's mmap under
 * the shim): every allocation must succeed.
 *
 * Usage: rlimit_data shim|glibc
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

enum { SMALL = 1024, LARGE = 1 << 20, TIMEOUT_S = 60 };
#define DATA_LIMIT ((rlim_t)1 << 30)
#define PHASE_BYTES ((size_t)600 << 20)

/* Allocate PHASE_BYTES in blocks of size, touching each page, then free
 * them all.  0 on success, else prints which allocation failed. */
static int data_phase(size_t size, void **slots) {
    size_t n = PHASE_BYTES / size;
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "FAIL: malloc(%zu) failed after %zu MiB under RLIMIT_DATA 1 GiB\n", size,
                    i * size >> 20);
            return 1;
        }
        for (size_t off = 0; off < size; off += 4096) p[off] = 1;
        slots[i] = p;
    }
    for (size_t i = 0; i < n; i++) free(slots[i]);
    return 0;
}

static int data_body(void *unused) {
    (void)unused;
    size_t n = PHASE_BYTES / SMALL;
    /* The slot array is taken before the limit, outside the allocator. */
    void **slots = mmap(NULL, n * sizeof *slots, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED) return 2;
    memset(slots, 0, n * sizeof *slots);
    struct rlimit rl = {DATA_LIMIT, DATA_LIMIT};
    if (setrlimit(RLIMIT_DATA, &rl) != 0) {
        perror("setrlimit");
        return 2;
    }
    if (data_phase(SMALL, slots)) return 1;
    if (data_phase(LARGE, slots)) return 1;
    printf("600 MiB of 1 KiB blocks freed, then 600 MiB of 1 MiB blocks: all succeeded\n");
    return 0;
}

int main(int argc, char **argv) {
    hardening_mode_shim(argc, argv);
    hardening_result_t res;
    hardening_run("RLIMIT_DATA", data_body, NULL, TIMEOUT_S, &res);
    return hardening_expect_exit0("RLIMIT_DATA 1 GiB", &res) ? 0 : 1;
}
