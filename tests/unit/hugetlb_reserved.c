/*
 * hugetlb_reserved - SEGSHIM_HUGEPAGES=hugetlb with reserved hugetlbfs pages
 * uses them.
 *
 * Reserving pages needs root: the test raises /proc/sys/vm/nr_hugepages by a
 * few pages, runs the pool in a child process, and restores the old value.
 * Where it cannot reserve them (not root, no hugetlb support, the kernel
 * found no free 2 MiB page) it exits 77, which CTest reports as a skip.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "os.h"
#include "segpool.h"

#define SKIP 77

static long read_long(const char *path) {
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? atol(buf) : -1;
}

static int write_long(const char *path, long v) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", v);
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -1;
    int ok = write(fd, buf, (size_t)n) == n;
    close(fd);
    return ok ? 0 : -1;
}

/* In the child: one region of segments on hugetlb pages. */
static int run_pool(void) {
    setenv("SEGSHIM_HUGEPAGES", "hugetlb", 1);
    setenv("SEGSHIM_POOL_SIZE", "64M", 1);
    setenv("SEGSHIM_SEGMENT_SIZE", "32K", 1);
    size_t seg = segpool_segment_size(), n = (2u << 20) / seg;
    void *first = NULL;
    for (size_t i = 0; i < n; i++) {
        char *p = segpool_segment_request();
        if (!p) {
            fprintf(stderr, "hugetlb: segment request failed\n");
            return 1;
        }
        memset(p, 0x3c, seg);
        if (!first) first = p;
    }
    segpool_stats_t st;
    segpool_stats_get(&st);
    size_t rss = 0, huge = 0;
    os_smaps_range((void *)((uintptr_t)first & ~(uintptr_t)((2u << 20) - 1)), 2u << 20, &rss, &huge);
    fprintf(stderr, "hugetlb: mode %s, region rss %zu KiB, on huge pages %zu KiB\n", st.hugepage_mode, rss >> 10,
            huge >> 10);
    if (strcmp(st.hugepage_mode, "hugetlb") != 0) return 1;
    if (huge * 10 < (size_t)(2u << 20) * 9) return 1;
    return 0;
}

int main(void) {
    const char *knob = "/proc/sys/vm/nr_hugepages";
    long old = read_long(knob);
    if (old < 0 || geteuid() != 0) {
        fprintf(stderr, "SKIP: cannot reserve hugetlb pages here (need root and %s)\n", knob);
        return SKIP;
    }
    if (write_long(knob, old + 4) != 0 || os_hugetlb_free_pages() < 1) {
        write_long(knob, old);
        fprintf(stderr, "SKIP: the kernel reserved no free 2 MiB page\n");
        return SKIP;
    }
    pid_t pid = fork();
    if (pid == 0) _exit(run_pool());
    int status = 0;
    waitpid(pid, &status, 0);
    write_long(knob, old);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL: the pool did not use the reserved pages\n");
        return 1;
    }
    fprintf(stderr, "PASS: reserved hugetlb pages used; nr_hugepages restored to %ld\n", old);
    return 0;
}
