/*
 * sizeclass.c - builds the class table and the size-to-class map (see
 * sizeclass.h for the scheme).
 */
#include "sizeclass.h"

uint8_t sizeclass_map[SIZECLASS_MAP_LEN];
sizeclass_t sizeclass_table[SEGPOOL_MAX_CLASSES];
unsigned sizeclass_count;

/* Segments per slab for a class: enough for SIZECLASS_MIN_BLOCKS blocks, so
 * that the classes near the segment size do not change segment on every
 * allocation, and then the fewest that leave at most 1/SIZECLASS_WASTE_DIV
 * (12.5%) of the slab unused and at most 1/SIZECLASS_REGION_WASTE_DIV
 * (6.25%) of a region filled with such slabs (the slabs' tails and the
 * segments too few for one more slab); failing that, the one that leaves
 * the region least; never more than max_slab.  The first two bounds are macros so
 * that scripts/slab-rules.sh can build the variants it compares (the rule
 * stays because no variant was better on both time and memory:
 * results/slab-rules.md).  The region bound came later: 24 KiB blocks had
 * slabs of 24 segments, two a region and 16 segments over, so a program of
 * such blocks under a memory limit got 25% less than glibc's (now 30
 * segments, 94% of a region used). */
#ifndef SIZECLASS_MIN_BLOCKS
#define SIZECLASS_MIN_BLOCKS 32
#endif
#ifndef SIZECLASS_WASTE_DIV
#define SIZECLASS_WASTE_DIV 8
#endif
/* -DSIZECLASS_SLABS=0 builds every class in single segments: only for
 * measuring what slabs buy (results/slabs.md). */
#ifndef SIZECLASS_SLABS
#define SIZECLASS_SLABS 1
#endif

#define SIZECLASS_REGION_WASTE_DIV 16

/* Bytes of a region left unused when it is filled with slabs of n segments
 * of blocks of block bytes. */
static size_t sizeclass_region_waste(size_t block, size_t segment, unsigned n) {
    size_t per_region = SEGPOOL_REGION_SIZE / segment, bytes = n * segment;
    return (per_region / n) * (bytes % block) + (per_region % n) * segment;
}

static unsigned sizeclass_slab_for(size_t block, size_t segment, unsigned max_slab) {
    unsigned n = (unsigned)((SIZECLASS_MIN_BLOCKS * block + segment - 1) / segment), best = 0;
    if (n < 1) n = 1;
    for (; n <= max_slab; n++) {
        size_t bytes = n * segment, waste = sizeclass_region_waste(block, segment, n);
        if ((bytes % block) * SIZECLASS_WASTE_DIV > bytes) continue;
        if (waste * SIZECLASS_REGION_WASTE_DIV <= SEGPOOL_REGION_SIZE) return n;
        if (!best || waste < sizeclass_region_waste(block, segment, best)) best = n;
    }
    return best ? best : max_slab;
}

/* Segments of a heap's first slab of a class: the fewest that hold a block
 * and leave at most 1/SIZECLASS_WASTE_DIV unused, at most slab.  The region
 * bound does not apply: a heap has one first slab per class. */
static unsigned sizeclass_slab_first(size_t block, size_t segment, unsigned slab) {
    for (unsigned n = (unsigned)((block + segment - 1) / segment); n < slab; n++)
        if ((n * segment % block) * SIZECLASS_WASTE_DIV <= n * segment) return n;
    return slab;
}

/* Classes are SIZECLASS_STEP bytes apart up to SIZECLASS_LINEAR_MAX, then
 * SIZECLASS_PER_DOUBLING per power of two (at most 25% rounding). */
#define SIZECLASS_STEP SEGPOOL_BLOCK_ALIGN
#define SIZECLASS_LINEAR_MAX 128
#define SIZECLASS_PER_DOUBLING 4

/* A thread keeps at most this many bytes, and this many blocks, of other
 * heaps' blocks it freed, per class (heap.c, "Kept blocks"): enough to serve
 * a thread's next allocations from what is warm in its cache, little enough
 * that the blocks held stay a small part of what a heap holds. */
#define SIZECLASS_KEEP_BYTES ((size_t)32 << 10)
#define SIZECLASS_KEEP_MAX 64

unsigned sizeclass_init(size_t segment_size, unsigned max_slab) {
    if (!SIZECLASS_SLABS) max_slab = 1;
    unsigned count = 0;
    size_t size = SIZECLASS_STEP;
    while (size <= segment_size && count < SIZECLASS_NONE) {
        sizeclass_t *c = &sizeclass_table[count++];
        c->size = (uint32_t)size;
        c->slab = sizeclass_slab_for(size, segment_size, max_slab);
        c->slab_first = sizeclass_slab_first(size, segment_size, c->slab);
        c->capacity = (uint32_t)(c->slab * segment_size / size);
        /* floor(2^64 / size) + 1: ceil(2^64 / size), or one more for a power
         * of two, so that size * div_magic mod 2^64 is never 0 (alloc.h). */
        c->div_magic = UINT64_MAX / size + 1 + ((size & (size - 1)) == 0);
        c->div_step = (uint64_t)size * c->div_magic;
        c->keep_max = (uint32_t)(SIZECLASS_KEEP_BYTES / size < SIZECLASS_KEEP_MAX ? SIZECLASS_KEEP_BYTES / size
                                                                                  : SIZECLASS_KEEP_MAX);
        if (size < SIZECLASS_LINEAR_MAX) {
            size += SIZECLASS_STEP;
        } else {
            size_t pow = (size_t)1 << (63 - __builtin_clzll(size)); /* power of two at or below */
            size += pow / SIZECLASS_PER_DOUBLING;
        }
    }
    sizeclass_count = count;
    /* Map every SIZECLASS_STEP-byte step to the first class that holds it. */
    unsigned cls = 0;
    for (unsigned c = 0; c < count; c++) {
        sizeclass_table[c].step_first = 1;
        sizeclass_table[c].step_last = 0;
    }
    for (size_t i = 0; i <= segment_size / SIZECLASS_STEP; i++) {
        while (sizeclass_table[cls].size < i * SIZECLASS_STEP) cls++;
        sizeclass_map[i] = (uint8_t)cls;
        /* direct[] step d holds sizes 16d+1 .. 16d+16, which map to step d+1 here */
        if (i >= 1 && i <= HEAP_DIRECT_STEPS) {
            uint16_t d = (uint16_t)(i - 1);
            if (sizeclass_table[cls].step_first > sizeclass_table[cls].step_last) sizeclass_table[cls].step_first = d;
            sizeclass_table[cls].step_last = d;
        }
    }
    for (size_t i = segment_size / SIZECLASS_STEP + 1; i < SIZECLASS_MAP_LEN; i++) sizeclass_map[i] = SIZECLASS_NONE;
    return count;
}

unsigned sizeclass_aligned(size_t size, size_t alignment) {
    for (unsigned c = sizeclass_of(size); c < sizeclass_count; c++)
        if ((sizeclass_table[c].size & (alignment - 1)) == 0) return c;
    return sizeclass_count;
}
