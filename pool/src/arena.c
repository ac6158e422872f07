/*
 * arena.c - the arena: one reservation, committed in 2 MiB regions.
 *
 * A region is committed the first time the segment pool needs it, in the
 * huge-page mode in force (pool.huge_kind):
 *   hugetlb  mapped in place from reserved hugetlbfs pages (MAP_HUGETLB);
 *   thp      made writable and advised MADV_HUGEPAGE;
 *   off      made writable and advised MADV_NOHUGEPAGE.
 * Each failure degrades to the next mode for the rest of the run, with the
 * reason kept in pool.hugepage_note for the statistics; only a failure to
 * make the region writable at all makes the commit fail (and the pool then
 * reports itself exhausted, so callers fall back).
 *
 * A region is purged whole (decommitted: mapped PROT_NONE again), so a huge
 * page is never split, and a purged region is committed again before reuse.
 * Callers hold pool.lock for arena_commit_region; arena_purge_region is called
 * without it, on a region that is on no list (REGION_PURGING).
 */
#include <string.h>

#include "os.h"
#include "pool.h"

uint8_t *arena_region_start(const region_t *r) {
    return (uint8_t *)(pool.base + ((size_t)(r - pool.regions) << SEGPOOL_REGION_SHIFT));
}

static void arena_degrade(int kind, const char *mode, const char *why) {
    if (pool.huge_kind <= kind) return;
    pool.huge_kind = kind;
    pool.hugepage_mode = mode;
    size_t n = strlen(why);
    if (n >= sizeof pool.hugepage_note) n = sizeof pool.hugepage_note - 1;
    memcpy(pool.hugepage_note, why, n);
    pool.hugepage_note[n] = '\0';
}

int arena_init(size_t size) {
    /* Halve the request until the address space can be had (RLIMIT_AS, a
     * small vm.max_map_count...); below one region the pool is unusable. */
    for (; size >= SEGPOOL_REGION_SIZE; size = (size / 2) & ~(SEGPOOL_REGION_SIZE - 1)) {
        void *p = os_reserve(size, SEGPOOL_REGION_SIZE);
        if (p) {
            pool.base = (uintptr_t)p;
            pool.region_count = size >> SEGPOOL_REGION_SHIFT;
            return 0;
        }
    }
    return -1;
}

int arena_commit_region(region_t *r) {
    uint8_t *start = arena_region_start(r);
    if (r->state == REGION_COMMITTED) return 0; /* writable already */
    int kind = pool.huge_kind == 2 ? 2 : r->huge_wanted ? pool.huge_kind : 0; /* see segment.c: two kinds */
    if (kind == 2) {
        if (os_commit_hugetlb(start, SEGPOOL_REGION_SIZE) == 0) {
            r->huge = 2;
            return 0;
        }
        arena_degrade(os_thp_available() ? 1 : 0, os_thp_available() ? "thp" : "off",
                      "hugetlb: no reserved 2 MiB page left (vm.nr_hugepages)");
        kind = pool.huge_kind;
    }
    if (os_commit(start, SEGPOOL_REGION_SIZE) != 0) return -1;
    if (kind == 1 && pool.huge_kind == 1) {
        if (os_advise_huge(start, SEGPOOL_REGION_SIZE, 1) == 0) {
            r->huge = 1;
            return 0;
        }
        arena_degrade(0, "off", "thp: madvise(MADV_HUGEPAGE) failed");
    }
    os_advise_huge(start, SEGPOOL_REGION_SIZE, 0);
    r->huge = 0;
    return 0;
}

int arena_purge_region(region_t *r) { return os_purge(arena_region_start(r), SEGPOOL_REGION_SIZE); }

void arena_prefault(size_t bytes) {
    /* The first regions are committed and touched now and stay at the front
     * of the never-used ones, so the segment pool takes them first; they are
     * subject to the decay only once they have been used and freed. */
    size_t want = (bytes + SEGPOOL_REGION_SIZE - 1) >> SEGPOOL_REGION_SHIFT;
    if (want > pool.region_count) want = pool.region_count;
    for (size_t i = 0; i < want; i++) {
        region_t *r = &pool.regions[i];
        r->huge_wanted = 1; /* a pool asked to be resident up front is a big one */
        if (arena_commit_region(r) != 0) break;
        r->state = REGION_COMMITTED;
        pool.regions_committed++;
        os_touch(arena_region_start(r), SEGPOOL_REGION_SIZE);
    }
    if (pool.regions_committed > pool.regions_peak) pool.regions_peak = pool.regions_committed;
}
