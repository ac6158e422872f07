/*
 * tlb - TLB pressure: a large linked structure of small nodes walked in
 * random order, where huge pages decide the speed.
 *
 *   tlb [MEGABYTES] [PASSES]
 *
 * Allocates MEGABYTES (default 1024) worth of 64-byte nodes one malloc each,
 * links them into one cycle in a random order, and follows the cycle PASSES
 * times (default 1).  Every step is a dependent load from a random page:
 * with 4 KiB pages nearly every step misses the TLB, with 2 MiB pages most
 * hit it.  The nodes are not freed (the process exits), so the figure is
 * allocation, linking and walking.  The walk alone is timed inside and
 * printed as walk_ns_per_step (informational: not part of the checksum).
 */
#include "bench_common.h"

#include <time.h>

static double tlb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef struct tlb_node_s {
    struct tlb_node_s *next;
    uint64_t id;
    uint64_t pad[6];
} tlb_node_t;

_Static_assert(sizeof(tlb_node_t) == 64, "a node is 64 bytes");

int main(int argc, char **argv)
{
    long long mb = bench_arg(argc, argv, 1, 1024);
    long long passes = bench_arg(argc, argv, 2, 1);
    size_t n = (size_t)mb * 1024 * 1024 / sizeof(tlb_node_t);

    tlb_node_t **order = bench_xmalloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) {
        order[i] = bench_xmalloc(sizeof(tlb_node_t));
        order[i]->id = i;
    }
    bench_rng_t rng = {0x71b};
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)bench_rng_below(&rng, i);
        tlb_node_t *t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        order[i]->next = order[(i + 1) % n];
    tlb_node_t *p = order[0];
    free(order);

    uint64_t h = 0;
    double t0 = tlb_now();
    for (long long pass = 0; pass < passes; pass++)
        for (size_t i = 0; i < n; i++) {
            h = h * 31 + p->id;
            p = p->next;
        }
    double t1 = tlb_now();
    printf("walk_ns_per_step: %.2f\n", (t1 - t0) / ((double)n * (double)passes));
    bench_print_checksum(h);
    return 0;
}
