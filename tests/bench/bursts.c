/*
 * bursts - the same burst again and again: allocate MIB MiB of SIZE-byte
 * blocks, write every page of each, free them all, CYCLES times.  An
 * allocator that gives a burst's memory back as soon as it is freed faults
 * all of it in anew on the next burst.
 *
 *   bursts [MIB] [SIZE] [CYCLES]     (defaults 100, 1000, 20)
 *
 * Checksum: the tags of the blocks freed.
 */
#include "bench_common.h"

int main(int argc, char **argv)
{
    size_t mib = (size_t)bench_arg(argc, argv, 1, 100);
    size_t size = (size_t)bench_arg(argc, argv, 2, 1000);
    long long cycles = bench_arg(argc, argv, 3, 20);
    if (size < 16)
        size = 16;
    size_t n = (mib << 20) / size;
    unsigned char **blocks = bench_xmalloc(n * sizeof *blocks);
    uint64_t sum = 0, tag = 0;
    for (long long c = 0; c < cycles; c++) {
        for (size_t i = 0; i < n; i++) {
            blocks[i] = bench_xmalloc(size);
            bench_block_fill(blocks[i], size, ++tag);
            for (size_t off = 4096; off + 16 <= size; off += 4096)
                blocks[i][off] = (unsigned char)tag;
        }
        for (size_t i = 0; i < n; i++) {
            sum = bench_mix(sum, bench_block_check(blocks[i], "bursts: block overwritten"));
            free(blocks[i]);
        }
    }
    free(blocks);
    bench_print_checksum(sum);
    return 0;
}
