/*
 * arena.c - the arena: one reservation, committed in 2 MiB regions.
 *
 * A region is committed the first time the segment pool needs it, in the
 * huge-page mode in force (pool.page_kind):
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
 * Under a finite RLIMIT_AS a purged region still counts against the limit:
 * when glibc runs out of address space the pool unmaps purged regions too
 * (arena_release_region, from segment_release_space), and reserves each
 * again, where it was, before its next commit.
 *
 * Limits.  The pool is at most RLIMIT_DATA (arena_init).  With RLIMIT_AS
 * infinite the arena is one reservation (the pool
 * size) that never changes.  With a finite limit it starts small and grows in
 * pieces (arena_grow_locked) up to min(pool size, limit); a glibc allocation
 * that fails for lack of address space makes it give its never-used tail
 * back (arena_give_back); and every commit checks the limit as it is now, so
 * one lowered after start-up holds.
 *
 * Locks: arena_commit_region and arena_purge_region run with no lock held,
 * on a region that is on no list (REGION_COMMITTING, REGION_PURGING), so
 * several run at once; pool.arena_lock guards growth (arena_grow_locked's
 * callers hold it), give-back and the huge-page mode's degradation.  The
 * region count changes in pool.regions_claim, beside the fresh index that
 * segment.c claims from without a lock.
 */
#include <stdatomic.h>
#include <string.h>

#include "lock.h"
#include "os.h"
#include "pool.h"

uint8_t *arena_region_start(const region_t *r) {
    return (uint8_t *)(pool.base + ((size_t)(r - pool.regions) << SEGPOOL_REGION_SHIFT));
}

/* The name of a page kind, as SEGSHIM_HUGEPAGES spells the mode. */
static const char *arena_page_kind_name(page_kind_t kind) {
    return kind == PAGES_HUGETLB ? "hugetlb" : kind == PAGES_THP ? "thp" : "off";
}

static page_kind_t arena_page_kind(void) { return __atomic_load_n(&pool.page_kind, __ATOMIC_RELAXED); }

/* Start-up, or with pool.arena_lock held. */
void arena_set_page_kind(page_kind_t kind, const char *why) {
    __atomic_store_n(&pool.page_kind, kind, __ATOMIC_RELAXED);
    pool.hugepage_mode = arena_page_kind_name(kind);
    if (why == NULL) return;
    size_t n = strlen(why);
    if (n >= sizeof pool.hugepage_note) n = sizeof pool.hugepage_note - 1;
    memcpy(pool.hugepage_note, why, n);
    pool.hugepage_note[n] = '\0';
}

/* Set the region count in pool.regions_claim, keeping the fresh index that
 * claims may move meanwhile. */
static void arena_set_claim_count(size_t count) {
    uint64_t claim = atomic_load(&pool.regions_claim);
    while (!atomic_compare_exchange_weak(&pool.regions_claim, &claim, pool_claim_make(pool_claim_fresh(claim), count))) {
    }
}

/* A commit of kind failed: new regions get kind at best from now on.
 * Commits run concurrently: the first to degrade the mode names the reason. */
static void arena_degrade(page_kind_t kind, const char *why) {
    lock_acquire(&pool.arena_lock);
    if (arena_page_kind() > kind) arena_set_page_kind(kind, why);
    lock_release(&pool.arena_lock);
}

/* Under a finite RLIMIT_AS the arena starts small and grows in pieces, placed
 * where nothing else maps, so that the space above it stays free: at a random
 * GiB in [64, 80) TiB.  Programs map near the top of the 128 TiB user space
 * (top-down mmap) and near their executable (0x55... for PIE, low for
 * non-PIE); the sanitizers' shadow areas lie below 48 TiB.  A machine with a
 * smaller address space takes the fallback: wherever the kernel puts it. */
#define ARENA_HINT_BASE ((uintptr_t)64 << 40)
#define ARENA_HINT_SLOTS 16384u /* GiB steps */
#define ARENA_HINT_TRIES 4

#define ARENA_FIRST_SHARE 64 /* a growable arena starts at limit / 64 */
#define ARENA_PIECE_SHARE 16 /* and grows by at most limit / 16 at a time */
#define ARENA_REFUSED_MS 10  /* a commit refused for RLIMIT_AS is not retried sooner */

static size_t arena_piece_max;  /* regions added at most per growth */
static int arena_at_hint;       /* the growable arena lies at ARENA_HINT_BASE and above */
static uint64_t arena_refused_ms; /* when a commit was last refused for RLIMIT_AS (relaxed atomic) */
static int arena_refused;         /* relaxed atomic: commits run concurrently */

/* Reserve size bytes for a growable arena: at a hint with room above it, or
 * anywhere.  NULL when not even that works. */
static void *arena_place(size_t size) {
    for (int i = 0; i < ARENA_HINT_TRIES; i++) {
        uintptr_t hint = ARENA_HINT_BASE + (uintptr_t)((os_random() >> 1) % ARENA_HINT_SLOTS) * ((uintptr_t)1 << 30);
        if (os_reserve_at((void *)hint, size) == 0) {
            arena_at_hint = 1;
            return (void *)hint;
        }
    }
    return os_reserve(size, SEGPOOL_REGION_SIZE);
}

/* The arena under RLIMIT_AS: never more than the limit, and only a small part
 * reserved at first (limit / ARENA_FIRST_SHARE, at least two regions), so that address space
 * stays for what the program maps itself: thread stacks, large blocks. */
static int arena_init_limited(size_t size, uint64_t limit) {
    size_t max = (size_t)(size < limit ? size : limit) & ~(SEGPOOL_REGION_SIZE - 1);
    size_t first = (size_t)(limit / ARENA_FIRST_SHARE) & ~(SEGPOOL_REGION_SIZE - 1);
    if (first < 2 * SEGPOOL_REGION_SIZE) first = 2 * SEGPOOL_REGION_SIZE;
    if (first > max) first = max;
    arena_piece_max = (size_t)(limit / ARENA_PIECE_SHARE) >> SEGPOOL_REGION_SHIFT;
    if (arena_piece_max < 2) arena_piece_max = 2;
    for (; first >= SEGPOOL_REGION_SIZE; first = (first / 2) & ~(SEGPOOL_REGION_SIZE - 1)) {
        void *p = arena_place(first);
        if (p) {
            pool.base = (uintptr_t)p;
            pool.region_count = first >> SEGPOOL_REGION_SHIFT;
            pool.region_max = pool.region_limit = max >> SEGPOOL_REGION_SHIFT;
            return 0;
        }
    }
    return -1;
}

int arena_init(size_t size) {
    /* Under RLIMIT_DATA no more than the limit can ever be committed, and the
     * side tables (writable, so counted against it) are sized for the pool:
     * a pool of the machine's RAM would take their ~0.6% of it from the
     * program's limit before it allocated anything. */
    uint64_t data = os_data_limit();
    if (data < size) size = (size_t)data & ~(SEGPOOL_REGION_SIZE - 1);
    uint64_t limit = os_as_limit();
    if (limit != UINT64_MAX) return arena_init_limited(size, limit);
    /* No limit: one reservation, which never grows.  Halve the request until
     * the address space can be had (a small vm.max_map_count...); below one
     * region the pool is unusable. */
    for (; size >= SEGPOOL_REGION_SIZE; size = (size / 2) & ~(SEGPOOL_REGION_SIZE - 1)) {
        void *p = os_reserve(size, SEGPOOL_REGION_SIZE);
        if (p) {
            pool.base = (uintptr_t)p;
            pool.region_count = pool.region_max = pool.region_limit = size >> SEGPOOL_REGION_SHIFT;
            return 0;
        }
    }
    return -1;
}

int arena_grow_locked(void) {
    size_t have = pool.region_count;
    if (have >= pool.region_limit) return -1;
    /* Double, in pieces of at most limit / ARENA_PIECE_SHARE; near the limit, less. */
    size_t piece = have < arena_piece_max ? have : arena_piece_max;
    if (piece < 2) piece = 2;
    if (piece > pool.region_limit - have) piece = pool.region_limit - have;
    for (; piece >= 1; piece /= 2) {
        int rc = os_reserve_at((void *)(pool.base + (have << SEGPOOL_REGION_SHIFT)), piece << SEGPOOL_REGION_SHIFT);
        if (rc == 0) {
            pool.region_count = have + piece;
            arena_set_claim_count(pool.region_count);
            /* Published only now that the range is mapped: a pointer is the
             * pool's once it is below pool.size. */
            __atomic_store_n(&pool.size, pool.region_count << SEGPOOL_REGION_SHIFT, __ATOMIC_RELEASE);
            return 0;
        }
        if (rc == -2 && piece == 1) pool.region_limit = have; /* someone else maps there now: stop for good */
    }
    return -1;
}

/* Unmap regions [keep, region_count): none was ever handed out (keep is at
 * least regions_fresh), so no pointer the pool gave lies there.  The arena may
 * then grow again by spare regions only: the rest of the room is glibc's.
 * pool.size shrinks before the unmap: a thread that reads the old value can
 * only misjudge an address it cannot have been given yet. */
static void arena_release_tail_locked(size_t keep, size_t spare) {
    size_t old = pool.region_count;
    for (size_t i = keep; i < old; i++) {
        region_t *r = &pool.regions[i];
        if (r->state == REGION_COMMITTED) /* prefaulted, never used */
            __atomic_sub_fetch(&pool.regions_committed, 1, __ATOMIC_RELAXED);
        r->state = REGION_RESERVED;
        r->pages = PAGES_SMALL;
    }
    pool.region_count = keep;
    if (pool.region_limit > keep + spare) pool.region_limit = keep + spare;
    __atomic_store_n(&pool.size, keep << SEGPOOL_REGION_SHIFT, __ATOMIC_RELEASE);
    os_release((void *)(pool.base + (keep << SEGPOOL_REGION_SHIFT)), (old - keep) << SEGPOOL_REGION_SHIFT);
    segment_tables_release(pool.region_limit);
}

int arena_give_back(size_t want) {
    if (!pool_ready()) return -1;
    uint64_t limit = os_as_limit();
    if (limit == UINT64_MAX || want > limit) return -1;
    int rc = -1;
    lock_acquire(&pool.arena_lock);
    /* No region can be claimed from here on: the count is set to the fresh
     * index, in the word claims compare against. */
    uint64_t claim = atomic_load(&pool.regions_claim);
    while (!atomic_compare_exchange_weak(&pool.regions_claim, &claim,
                                         pool_claim_make(pool_claim_fresh(claim), pool_claim_fresh(claim)))) {
    }
    size_t keep = pool_claim_fresh(claim);
    if (keep < pool.region_count) {
        /* The tail: its regions, and the side tables' entries for every
         * region past keep, up to the most the arena could have grown to. */
        size_t per_region = SEGPOOL_REGION_SIZE + segment_tables_per_region();
        uint64_t tail = ((uint64_t)(pool.region_count - keep) << SEGPOOL_REGION_SHIFT) +
                        (uint64_t)(pool.region_max - keep) * segment_tables_per_region();
        uint64_t vm = os_vm_size();
        uint64_t rest = vm - (vm < tail ? vm : tail); /* in use once the tail is gone */
        /* Only when the limit is what stopped glibc, and the tail is what it
         * lacks: otherwise the pool would lose its room for nothing.  Without
         * /proc (vm 0) that cannot be told: give it back. */
        if (vm == 0 || (vm > limit - want && rest <= limit - want)) {
            arena_release_tail_locked(keep, (size_t)((limit - want - rest) / per_region));
            rc = 0;
        }
    }
    arena_set_claim_count(pool.region_count);
    lock_release(&pool.arena_lock);
    return rc;
}

/* RLIMIT_AS, read at each commit, so that a limit lowered after start-up
 * holds as it would for glibc: the process's address space, counting the
 * arena's regions as glibc would count its memory (committed ones only: the
 * reserved rest and purged regions are not in use), plus this region, must
 * fit.  A refusal is remembered for a few ms, so that a program at its limit
 * does not read /proc on every request that falls back. */
static int arena_within_limit(void) {
    uint64_t limit = os_as_limit();
    if (limit == UINT64_MAX) return 1;
    uint64_t now = os_now_ms();
    if (__atomic_load_n(&arena_refused, __ATOMIC_RELAXED) &&
        now - __atomic_load_n(&arena_refused_ms, __ATOMIC_RELAXED) < ARENA_REFUSED_MS)
        return 0;
    uint64_t vm = os_vm_size();
    if (vm == 0) return 1;
    /* The arena's regions that are in vm: unmapped ones are not. */
    uint64_t mapped = (uint64_t)(pool_claim_count(atomic_load(&pool.regions_claim)) -
                                 __atomic_load_n(&pool.regions_unmapped, __ATOMIC_RELAXED))
                      << SEGPOOL_REGION_SHIFT;
    uint64_t committed = (uint64_t)__atomic_load_n(&pool.regions_committed, __ATOMIC_RELAXED) << SEGPOOL_REGION_SHIFT;
    uint64_t idle = mapped > committed ? mapped - committed : 0;
    uint64_t used = vm > idle ? vm - idle : 0;
    int refused = used + SEGPOOL_REGION_SIZE > limit;
    if (refused) __atomic_store_n(&arena_refused_ms, now, __ATOMIC_RELAXED);
    __atomic_store_n(&arena_refused, refused, __ATOMIC_RELAXED);
    return !refused;
}

int arena_may_release(void) { return arena_at_hint && os_as_limit() != UINT64_MAX; }

/* unmapped is set before the unmap: a fork in between leaves the child a
 * region marked unmapped that may still be mapped, which its fork handler
 * unmaps (segment_fork_child); the other order would leave it one marked
 * mapped that is not, whose commits would all fail. */
int arena_release_region(region_t *r) {
    if (!arena_may_release()) return -1;
    r->unmapped = 1;
    __atomic_add_fetch(&pool.regions_unmapped, 1, __ATOMIC_RELAXED);
    if (os_release(arena_region_start(r), SEGPOOL_REGION_SIZE) != 0) {
        __atomic_sub_fetch(&pool.regions_unmapped, 1, __ATOMIC_RELAXED);
        r->unmapped = 0;
        return -1;
    }
    return 0;
}

int arena_commit_region(region_t *r) {
    uint8_t *start = arena_region_start(r);
    if (r->state == REGION_COMMITTED) return 0; /* writable already */
    if (!arena_within_limit()) return -1;
    if (r->unmapped) {
        int rc = os_reserve_at(start, SEGPOOL_REGION_SIZE);
        if (rc == -2) r->lost = 1; /* stays counted in regions_unmapped: not the pool's space */
        if (rc != 0) return -1;
        r->unmapped = 0;
        __atomic_sub_fetch(&pool.regions_unmapped, 1, __ATOMIC_RELAXED);
    }
    /* With hugetlb every region is huge; otherwise the region's kind says
     * (segment.c). */
    page_kind_t mode = arena_page_kind();
    page_kind_t kind = mode == PAGES_HUGETLB || r->huge_wanted ? mode : PAGES_SMALL;
    if (kind == PAGES_HUGETLB) {
        if (os_commit_hugetlb(start, SEGPOOL_REGION_SIZE) == 0) {
            r->pages = PAGES_HUGETLB;
            return 0;
        }
        arena_degrade(os_thp_available() ? PAGES_THP : PAGES_SMALL, "hugetlb: no reserved 2 MiB page left (vm.nr_hugepages)");
        kind = arena_page_kind();
    }
    if (os_commit(start, SEGPOOL_REGION_SIZE) != 0) return -1;
    if (kind == PAGES_THP && arena_page_kind() == PAGES_THP) {
        if (os_advise_huge(start, SEGPOOL_REGION_SIZE, 1) == 0) {
            r->pages = PAGES_THP;
            return 0;
        }
        arena_degrade(PAGES_SMALL, "thp: madvise(MADV_HUGEPAGE) failed");
    }
    os_advise_huge(start, SEGPOOL_REGION_SIZE, 0);
    r->pages = PAGES_SMALL;
    return 0;
}

int arena_purge_region(region_t *r) { return os_purge(arena_region_start(r), SEGPOOL_REGION_SIZE); }

void arena_prefault(size_t bytes) {
    /* The first regions are committed and touched now and stay at the front
     * of the never-used ones, so the segment pool takes them first; they are
     * subject to the decay only once they have been used and freed. */
    size_t want = (bytes + SEGPOOL_REGION_SIZE - 1) >> SEGPOOL_REGION_SHIFT;
    /* Under RLIMIT_AS, at most half the address space left: thread stacks
     * and the program's own mappings cannot take it back from the pool. */
    uint64_t limit = os_as_limit(), vm = os_vm_size();
    if (limit != UINT64_MAX && vm < limit && want > ((limit - vm) / 2) >> SEGPOOL_REGION_SHIFT)
        want = (size_t)(((limit - vm) / 2) >> SEGPOOL_REGION_SHIFT);
    while (want > pool.region_count && arena_grow_locked() == 0) {
    }
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
