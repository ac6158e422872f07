/*
 * sizeclass.h - size classes, derived from the segment size at start-up.
 *
 * Classes run from 16 bytes in steps of 16 up to 128, then four per power of
 * two (at most 20% internal waste) up to the segment size, which is the top
 * class: a request of exactly one segment takes one whole segment.  Classes
 * are served from slabs of contiguous segments holding at least 32 blocks
 * (so a class near the segment size does not need a new segment for every
 * allocation) and leaving at most 12.5% unused; small classes fit in one
 * segment.  Under a memory limit a heap's first slab of a class is the
 * smallest that leaves at most 12.5% unused (slab_first: one segment for
 * most classes; heap_slab_for): a program that allocates a few blocks of
 * each large class does not commit a slab of 16-32 segments for each.
 *
 * The map from size to class is one table load: sizeclass_map[(size+15)/16].
 * It covers every size up to the largest segment size, 1 MiB: sizes above
 * this segment size map to SIZECLASS_NONE, a class no heap ever serves
 * (serving[] holds segment_none for it), so malloc's fast path tests the
 * constant 1 MiB rather than loading the pool's limit.
 */
#ifndef SEGPOOL_SIZECLASS_H
#define SEGPOOL_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#include "types.h"

#define SIZECLASS_MAP_MAX ((size_t)1 << SEGPOOL_MAX_SEGMENT_SHIFT) /* the largest size mapped */
#define SIZECLASS_MAP_LEN ((SIZECLASS_MAP_MAX >> 4) + 1)          // 65537
#define SIZECLASS_NONE (SEGPOOL_MAX_CLASSES - 1) /* sizes above the segment: never served */

typedef struct sizeclass_s {
    uint32_t size;      /* block size */
    uint32_t capacity;  /* blocks per segment or slab */
    uint32_t slab;      /* segments per slab (1 = a single segment) */
    uint32_t slab_first; /* segments of a heap's first slab of the class (at most slab) */
    uint16_t step_first, step_last; /* heap_t.direct[] entries of this class; first > last if none */
    uint32_t keep_max;  /* blocks of other heaps a thread may keep for reuse (heap.c, "Kept blocks") */
    uint64_t div_magic; /* see segment_t.div_magic */
    uint64_t div_step;  /* size * div_magic mod 2^64: 0 < div_step <= size (alloc.h) */
} sizeclass_t;

extern uint8_t sizeclass_map[SIZECLASS_MAP_LEN] SEGPOOL_HIDDEN;
extern sizeclass_t sizeclass_table[SEGPOOL_MAX_CLASSES] SEGPOOL_HIDDEN;
extern unsigned sizeclass_count SEGPOOL_HIDDEN;

/* Build the table for this segment size; max_slab bounds slabs (segments per
 * region, at most SEGPOOL_MAX_SLAB).  Returns the number of classes. */
unsigned sizeclass_init(size_t segment_size, unsigned max_slab);

/* Class of a request of size bytes, size <= segment size. */
SEGPOOL_INLINE unsigned sizeclass_of(size_t size) { return sizeclass_map[(size + 15) >> 4]; }

/* The same from size - 1, for 0 <= size_less_one < SIZECLASS_MAP_MAX (the
 * fast path has it in a register already); SIZECLASS_NONE above the
 * segment size. */
SEGPOOL_INLINE unsigned sizeclass_of_less_one(size_t size_less_one) {
    return sizeclass_map[(size_less_one >> 4) + 1];
}

/* The smallest class of at least size bytes whose blocks are all aligned to
 * alignment (a power of two), or sizeclass_count when there is none. */
unsigned sizeclass_aligned(size_t size, size_t alignment);

#endif /* SEGPOOL_SIZECLASS_H */
