/*
 * advice.c - the tuning advice drawn from a statistics snapshot: one line
 * per thing worth changing, written into the statistics (stats_format.c).
 *
 * Owns: nothing mutable; stats_advice works on the caller's snapshot.
 *
 * Thresholds (also in README.md, Statistics).  Advice on a handful of events
 * is noise (12 fallbacks among 1,199 requests said nothing), so:
 *   - advice about requests (the pool ran out, fallbacks just above the
 *     segment size, a low pool share) needs at least
 *     STATS_ADVICE_MIN_REQUESTS requests in all, and the fallbacks it is
 *     about must number at least STATS_ADVICE_MIN_FALLBACKS and be at least
 *     STATS_ADVICE_MIN_PERMILLE / 1000 of the requests;
 *   - "most fallbacks just above the segment size" also needs them to be
 *     more than half of all fallbacks;
 *   - "low pool share" fires when the pool served less than half;
 *   - advice about huge pages needs STATS_ADVICE_MIN_HUGE_RSS bytes of the
 *     arena resident: below that the arena spans few 2 MiB pages and the TLB
 *     gains little from them.
 * The option limits an advice may suggest come from the option table
 * (config.h), so no advice names a value the parser would reject.
 */
#include <string.h>

#include "config.h"
#include "stats.h"
#include "text.h"

#define STATS_ADVICE_MIN_REQUESTS 1000
#define STATS_ADVICE_MIN_FALLBACKS 100
#define STATS_ADVICE_MIN_PERMILLE 10 /* 1% */
#define STATS_ADVICE_MIN_HUGE_RSS ((uint64_t)32 << 20)

/* The upper bound of every option, by name: ADVICE_LIMIT(POOL_SIZE). */
enum advice_option_e {
#define ADVICE_INDEX(NAME, field, kind, def, lo, hi, help) ADVICE_OPT_##NAME,
    SEGPOOL_OPTIONS(ADVICE_INDEX)
#undef ADVICE_INDEX
};
static const int64_t advice_limits[] = {
#define ADVICE_HI(NAME, field, kind, def, lo, hi, help) (int64_t)(hi),
    SEGPOOL_OPTIONS(ADVICE_HI)
#undef ADVICE_HI
};
#define ADVICE_LIMIT(NAME) advice_limits[ADVICE_OPT_##NAME]

/* count events of a kind among requests: enough to be worth a line? */
static int advice_enough(uint64_t count, uint64_t requests) {
    return requests >= STATS_ADVICE_MIN_REQUESTS && count >= STATS_ADVICE_MIN_FALLBACKS &&
           (unsigned __int128)count * 1000 >= (unsigned __int128)requests * STATS_ADVICE_MIN_PERMILLE;
}

static uint64_t advice_requests(const segpool_stats_t *s) { return stats_add(s->pool_requests, stats_fallbacks(s)); }

/* The bin that counts sizes in [segment_size, 2 * segment_size), or -1. */
static int advice_bin_above_segment(const segpool_stats_t *s) {
    size_t seg = s->segment_size;
    if (seg == 0 || (seg & (seg - 1)) != 0) return -1;
    int bin = 1; /* bit length of seg */
    while ((seg >> bin) != 0) bin++;
    return bin;
}

static const char *advice_fallback_reason(const segpool_stats_t *s) {
    uint64_t best = s->fallback_too_large;
    const char *why = "too large for a segment";
    if (s->fallback_aligned > best) {
        best = s->fallback_aligned;
        why = "over-aligned";
    }
    if (s->fallback_exhausted > best) {
        best = s->fallback_exhausted;
        why = "pool exhausted";
    }
    if (s->fallback_other > best) why = "before start-up, disabled or after thread exit";
    return why;
}

/* Each advice_* appends its line to o and returns 1, or returns 0 when the
 * figures do not call for it. */

static int advice_exhausted(const segpool_stats_t *s, text_t *o) {
    if (!advice_enough(s->fallback_exhausted, advice_requests(s))) return 0;
    text_str(o, "the pool ran out ");
    text_u64(o, s->fallback_exhausted);
    text_str(o, s->fallback_exhausted == 1 ? " time" : " times");
    if (s->pool_size != 0) {
        text_str(o, " with SEGSHIM_POOL_SIZE=");
        text_bytes(o, s->pool_size);
    }
    text_str(o, ": raise SEGSHIM_POOL_SIZE");
    if (s->pool_size != 0 && (uint64_t)s->pool_size <= (uint64_t)ADVICE_LIMIT(POOL_SIZE) / 2) {
        text_str(o, ", for example to ");
        text_bytes(o, (uint64_t)s->pool_size * 2);
    }
    return 1;
}

static int advice_just_above(const segpool_stats_t *s, text_t *o) {
    int bin = advice_bin_above_segment(s);
    if (bin <= 0 || bin >= SEGPOOL_STATS_SIZE_BINS - 1) return 0;
    uint64_t total = 0; /* saturating: counters are wide, but trust nothing */
    for (int i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++) total = stats_add(total, s->large_sizes[i]);
    uint64_t above = s->large_sizes[bin];
    uint64_t larger = (uint64_t)s->segment_size * 2;
    if (above <= total - above || larger > (uint64_t)ADVICE_LIMIT(SEGMENT_SIZE) ||
        !advice_enough(above, advice_requests(s)))
        return 0;
    text_pct(o, above, total);
    text_str(o, " of fallbacks were between ");
    text_bytes(o, s->segment_size);
    text_str(o, " and ");
    text_bytes(o, larger);
    text_str(o, ": SEGSHIM_SEGMENT_SIZE=");
    text_bytes(o, larger);
    text_str(o, " would serve them from the pool");
    return 1;
}

/* Huge pages degraded to off, or covering little of the arena. */
static int advice_hugepages(const segpool_stats_t *s, text_t *o) {
    const char *mode = s->hugepage_mode;
    const char *note = s->hugepage_note != NULL ? s->hugepage_note : "";
    if (mode == NULL || s->arena_rss < STATS_ADVICE_MIN_HUGE_RSS) return 0;
    if (strcmp(mode, "off") == 0) {
        /* The snapshot has the effective mode only; a note is set exactly
         * when a requested mode degraded, so off + note = unavailable. */
        if (note[0] == '\0') return 0;
        text_str(o, "huge pages are unavailable (");
        text_str(o, note);
        text_str(o, "): the arena uses 4K pages");
        return 1;
    }
    if ((uint64_t)s->arena_huge * 2 >= (uint64_t)s->arena_rss) return 0;
    text_str(o, "only ");
    text_pct(o, s->arena_huge, s->arena_rss);
    text_str(o, " of the arena is on huge pages (");
    if (note[0] != '\0')
        text_str(o, note);
    else if (strcmp(mode, "thp") == 0)
        text_str(o, "check /sys/kernel/mm/transparent_hugepage/enabled and defrag");
    else
        text_str(o, "check vm.nr_hugepages");
    text_str(o, ")");
    return 1;
}

static int advice_low_share(const segpool_stats_t *s, text_t *o) {
    uint64_t fallbacks = stats_fallbacks(s);
    uint64_t requests = advice_requests(s);
    if (s->pool_requests >= fallbacks || !advice_enough(fallbacks, requests)) return 0;
    text_str(o, "only ");
    text_pct(o, s->pool_requests, requests);
    text_str(o, " of requests were served by the pool; most fallbacks: ");
    text_str(o, advice_fallback_reason(s));
    return 1;
}

int stats_advice(const segpool_stats_t *s, char lines[][STATS_LINE_LEN], int max) {
    static int (*const advisers[])(const segpool_stats_t *, text_t *) = {
        advice_exhausted, advice_just_above, advice_hugepages, advice_low_share,
    };
    int n = 0;
    for (size_t i = 0; i < sizeof(advisers) / sizeof(advisers[0]) && n < max; i++) {
        char line[STATS_LINE_LEN]; /* lines[n] stays untouched unless advice fires */
        text_t o;
        text_init(&o, line, sizeof(line));
        if (advisers[i](s, &o)) memcpy(lines[n++], line, o.len + 1);
    }
    return n;
}
