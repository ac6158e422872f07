/*
 * check.c - the invariant checkers (invariants.h): a heap's segments and the
 * global segment pool, as types.h and pool.h state them, and the assertion
 * report.
 *
 * Owns nothing.  Every check reads; none writes, allocates or takes a lock
 * except check_pool (every shard lock).  A walk is bounded by what the structure
 * may hold, so a cycle is reported, not followed for ever.
 */
#include "invariants.h"

#include <stdlib.h>

#include "alloc.h"
#include "lock.h"
#include "text.h"

#define CHECK_REPORT_LEN 512 /* an assertion's text can be long */

void check_failed(const char *expr, const char *file, int line) {
    char buf[CHECK_REPORT_LEN];
    text_t t;
    text_init(&t, buf, sizeof buf - 1); /* room for the '\n' */
    text_str(&t, "segshim: assertion failed: ");
    text_str(&t, expr);
    text_str(&t, " (");
    text_str(&t, file);
    text_char(&t, ':');
    text_i64(&t, line);
    text_char(&t, ')');
    buf[t.len++] = '\n';
    (void)text_write_all(2, buf, t.len);
    abort();
}

/* ---- A heap ------------------------------------------------------------------ */

/* s is an entry of the side table. */
static void check_in_table(const segment_t *s) {
    CHECK_THAT(s >= pool.segments && s < pool.segments + pool.capacity);
}

/* s is a formatted head of class c owned by h, its slab tails point back,
 * and its free list holds exactly the formatted blocks that are not live,
 * each a block start of the formatted part carrying the free tag. */
static void check_segment(const heap_t *h, const segment_t *s, unsigned c) {
    check_in_table(s);
    const sizeclass_t *cls = &sizeclass_table[c];
    CHECK_THAT(s->kind == SEGMENT_BLOCKS);
    CHECK_THAT(s->heap == h);
    CHECK_THAT(s->class_index == c);
    CHECK_THAT(s->head_distance == 0);
    CHECK_THAT(s->slab_count == cls->slab || (s->slab_count % cls->slab_first == 0 && s->slab_count < cls->slab));
    CHECK_THAT(s->capacity == ((size_t)s->slab_count << pool.segment_shift) / cls->size);
    CHECK_THAT(s->block_size == cls->size);
    CHECK_THAT(alloc_owner(s) == h->owner_tp);
    CHECK_THAT(s->block_start == (uintptr_t)segment_address(segment_index(s)));
    for (unsigned i = 1; i < s->slab_count; i++) {
        CHECK_THAT(s[i].kind == SEGMENT_SLAB_TAIL);
        CHECK_THAT(segment_slab_offset(&s[i]) == i);
    }
    size_t span = __atomic_load_n(&s->span, __ATOMIC_RELAXED);
    CHECK_THAT(span <= (size_t)s->capacity * cls->size);
    CHECK_THAT(span % cls->size == 0);
    size_t formatted = span / cls->size, on_list = 0;
    CHECK_THAT(s->block_limit == formatted * cls->div_step);
    for (const block_t *b = s->free; b != NULL; b = alloc_link_next(s, b)) {
        CHECK_THAT(alloc_in_slab(s, b));
        CHECK_THAT(((uintptr_t)b - s->block_start) % cls->size == 0);
        CHECK_THAT(b->free_tag == ALLOC_FREE_TAG);
        CHECK_THAT(++on_list <= formatted); /* else a cycle */
    }
    CHECK_THAT(on_list + (s->used & SEGMENT_LIVE_MASK) == formatted);
}

static const segment_link_t *check_link(const segment_t *s) { return &pool.links[segment_index(s)]; }

/* The full list: each segment full, formatted whole, linked both ways.
 * Counts each class's segments into per_class. */
static uint64_t check_full_list(const heap_t *h, uint32_t per_class[]) {
    uint64_t owned = 0, seen = 0;
    const segment_t *prev = NULL;
    for (const segment_t *s = h->full; s != NULL; prev = s, s = check_link(s)->next) {
        check_in_table(s);
        CHECK_THAT(++seen <= pool.capacity);
        CHECK_THAT(check_link(s)->prev == prev);
        CHECK_THAT(s->class_index < sizeclass_count);
        check_segment(h, s, s->class_index);
        CHECK_THAT((s->used & (SEGMENT_FULL | SEGMENT_CURRENT)) == SEGMENT_FULL);
        CHECK_THAT(s->free == NULL);
        CHECK_THAT(s->span == (size_t)s->capacity * s->block_size);
        per_class[s->class_index]++;
        owned += s->slab_count;
    }
    return owned;
}

/* Class c's current segment, partial list and cached stack; returns the
 * segments found, adds their slab segments to *owned and the cached ones'
 * to *cached. */
static uint32_t check_class(const heap_t *h, unsigned c, uint64_t *owned, uint64_t *cached) {
    const segment_t *cur = h->current[c];
    const segment_t *kept = &h->kept[c];
    uint32_t found = 0;
    /* The kept list serves while it holds blocks (it may have just run dry). */
    CHECK_THAT(h->serving[c] == cur || h->serving[c] == kept);
    CHECK_THAT(kept->free == NULL || h->serving[c] == kept);
    CHECK_THAT(kept->free == NULL ? kept->used == sizeclass_table[c].keep_max : kept->used < sizeclass_table[c].keep_max);
    for (unsigned step = sizeclass_table[c].step_first; step <= sizeclass_table[c].step_last; step++)
        CHECK_THAT(h->direct[step] == h->serving[c]);
    if (cur != &segment_none) {
        check_segment(h, cur, c);
        CHECK_THAT((cur->used & (SEGMENT_FULL | SEGMENT_CURRENT)) == SEGMENT_CURRENT);
        found++;
        *owned += cur->slab_count;
    }
    const segment_t *prev = NULL;
    for (const segment_t *s = h->partial[c]; s != NULL; prev = s, s = check_link(s)->next) {
        check_in_table(s);
        CHECK_THAT(found < pool.capacity);
        CHECK_THAT(check_link(s)->prev == prev);
        check_segment(h, s, c);
        CHECK_THAT((s->used & ~SEGMENT_LIVE_MASK) == 0);
        CHECK_THAT(s->used > 0 && s->used < s->capacity);
        found++;
        *owned += s->slab_count;
    }
    for (const segment_t *s = h->cached[c]; s != NULL; s = check_link(s)->next) {
        check_in_table(s);
        CHECK_THAT(found < pool.capacity);
        check_segment(h, s, c);
        CHECK_THAT(s->used == 0);
        found++;
        *owned += s->slab_count;
        *cached += s->slab_count;
    }
    return found;
}

void check_heap(const heap_t *h) {
    if (h == &heap_none || h->state == HEAP_ORPHAN) return;
    CHECK_THAT(h->state == HEAP_LIVE || h->state == HEAP_DEAD);
    uint32_t per_class[SEGPOOL_MAX_CLASSES] = {0};
    uint64_t owned = check_full_list(h, per_class), cached = 0;
    for (unsigned c = 0; c < sizeclass_count; c++)
        CHECK_THAT(check_class(h, c, &owned, &cached) + per_class[c] == h->class_segments[c]);
    for (unsigned c = sizeclass_count; c < SEGPOOL_MAX_CLASSES; c++) CHECK_THAT(h->class_segments[c] == 0);
    CHECK_THAT(h->serving[SIZECLASS_NONE] == &segment_none); /* malloc's fast path pops it for sizes above a segment */
    CHECK_THAT(cached == h->cached_count);
    CHECK_THAT(h->cached_count <= h->cache_limit);
    CHECK_THAT(owned == h->segments_owned);
}

/* ---- The segment pool ---------------------------------------------------------------- */

static unsigned check_popcount(const region_t *r) {
    unsigned n = 0;
    for (size_t w = 0; w < SEGPOOL_MAX_REGION_SEGMENTS / 64; w++) n += (unsigned)__builtin_popcountll(r->free_map[w]);
    return n;
}

static int check_region_committed(const region_t *r) {
    return r->state == REGION_COMMITTED || r->state == REGION_PURGING;
}

/* r is one of p's regions ever handed to a shard. */
static void check_region_in(const pool_t *p, const region_t *r) {
    CHECK_THAT(r >= p->regions && r < p->regions + pool_claim_fresh(p->regions_claim));
}

/* r, after prev on one of shard i's lists of committed regions, with
 * free_count free segments. */
static void check_listed_region(const pool_t *p, const region_t *r, const region_t *prev, unsigned i,
                                size_t free_count) {
    check_region_in(p, r);
    CHECK_THAT(r->prev == prev);
    CHECK_THAT(r->shard == i);
    CHECK_THAT(r->free_count == free_count);
    CHECK_THAT(r->state == REGION_COMMITTED);
}

/* Walk the bins of shard sh (number i): each list linked both ways, its
 * regions committed, of the shard, of the bin's kind and free count; a bin's
 * bit set iff it holds a region.  Returns the regions on them. */
static size_t check_bins(const pool_t *p, const segment_shard_t *sh, unsigned i) {
    size_t on_bins = 0, fresh = pool_claim_fresh(p->regions_claim);
    for (unsigned kind = 0; kind < POOL_REGION_KINDS; kind++) {
        for (size_t k = 0; k < SEGPOOL_MAX_REGION_SEGMENTS; k++) {
            int bit = (sh->bins_nonempty[kind][k / 64] >> (k % 64)) & 1;
            CHECK_THAT(bit == (sh->bins[kind][k] != NULL));
            CHECK_THAT(sh->bins[kind][k] == NULL || (k > 0 && k < p->region_segments));
            const region_t *prev = NULL;
            for (const region_t *r = sh->bins[kind][k]; r != NULL; prev = r, r = r->next) {
                check_listed_region(p, r, prev, i, k);
                CHECK_THAT(++on_bins <= fresh);
                CHECK_THAT((r->pages != PAGES_SMALL) == (kind == POOL_REGION_HUGE));
            }
        }
    }
    return on_bins;
}

/* Shard i's free-region list and purged stack; returns the regions on the
 * free-region list. */
static size_t check_shard_free(const pool_t *p, const segment_shard_t *sh, unsigned i) {
    size_t per = p->region_segments, fresh = pool_claim_fresh(p->regions_claim), listed = 0, purged = 0;
    const region_t *prev = NULL;
    for (const region_t *r = sh->free_regions_head; r != NULL; prev = r, r = r->next) {
        check_listed_region(p, r, prev, i, per);
        CHECK_THAT(++listed <= fresh);
    }
    CHECK_THAT(sh->free_regions_tail == prev);
    CHECK_THAT(listed == sh->free_regions_count);
    for (const region_t *r = sh->purged; r != NULL; r = r->next) {
        check_region_in(p, r);
        CHECK_THAT(++purged <= fresh);
        CHECK_THAT(r->state == REGION_PURGED);
        CHECK_THAT(r->free_count == per);
    }
    return listed;
}

/* p's state, every shard's lock held and no region in transit (a region
 * being committed, purged or moved is on no list). */
void check_pool_state(const pool_t *p) {
    size_t per = p->region_segments, fresh = pool_claim_fresh(p->regions_claim);
    CHECK_THAT(fresh <= p->region_count && p->region_count <= p->region_max);
    size_t committed = 0, out = 0, partly = 0, wholly = 0;
    for (size_t i = 0; i < p->region_count; i++) committed += check_region_committed(&p->regions[i]);
    for (size_t i = 0; i < fresh; i++) {
        const region_t *r = &p->regions[i];
        CHECK_THAT(r->free_count <= per);
        CHECK_THAT(check_popcount(r) == r->free_count);
        out += per - r->free_count;
        if (r->state != REGION_COMMITTED) continue;
        if (r->free_count == per) wholly++;
        else if (r->free_count > 0) partly++;
    }
    size_t on_bins = 0, listed = 0, shard_out = 0;
    for (unsigned i = 0; i < p->shard_count; i++) {
        const segment_shard_t *sh = &p->shards[i];
        on_bins += check_bins(p, sh, i);
        listed += check_shard_free(p, sh, i);
        shard_out += sh->segments_out;
    }
    CHECK_THAT(on_bins == partly);
    CHECK_THAT(listed == wholly);
    CHECK_THAT(out == shard_out);
    CHECK_THAT(__atomic_load_n(&p->segments_user, __ATOMIC_RELAXED) <= shard_out);
    CHECK_THAT(committed == p->regions_committed);
    CHECK_THAT(p->regions_committed <= p->regions_peak);
}

void check_pool(void) {
    if (!pool_ready()) return;
    segment_fork_prepare(); /* every shard lock and the arena lock */
    if (atomic_load(&pool.moves_started) == atomic_load(&pool.moves_finished)) check_pool_state(&pool);
    segment_fork_parent();
}
