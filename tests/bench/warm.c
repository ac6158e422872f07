/*
 * warm - touch GIB gibibytes of memory on transparent huge pages, then exit.
 *
 *   warm [GIB]   (default 4)
 *
 * On a freshly booted virtual machine, the first touch of each page of the
 * guest's memory is a fault in the hypervisor too: measured here, faulting a
 * never-used GiB in 2 MiB pages takes about 4 s, and about 0.15 s once the
 * memory has been used before (0.7 s in 4 KiB pages either way).  An
 * allocator that uses huge pages would pay that one-time cost for the whole
 * machine in whichever run came first.  scripts/bench.py runs this once
 * before measuring (unless --no-warm) so that every allocator finds memory as
 * it is on a machine that has been up for a while.
 */
#include "bench_common.h"

#include <sys/mman.h>

int main(int argc, char **argv)
{
    size_t gib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 4;
    size_t bytes = gib << 30;
    unsigned char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        perror("warm: mmap");
        return 1;
    }
    madvise(p, bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < bytes; i += 4096)
        p[i] = 1;
    munmap(p, bytes);
    printf("warmed %zu GiB\n", gib);
    return 0;
}
