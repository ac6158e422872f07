/*
 * stats_format.c - a segpool_stats_t snapshot as a text table or as JSON, and
 * the one-line advice drawn from it.
 *
 * Owns: nothing mutable; every function works on the caller's snapshot.
 *
 * Constraints: this runs at exit and from inside the allocator, so it must
 * not allocate: no malloc, no stdio (printf may allocate, and its locks may be
 * held by a thread that died in fork).  Output is formatted into a 1 KiB
 * stack buffer (stats_out_t) that is flushed with write(2), retrying short
 * writes and EINTR.  The same builder, given no fd, fills a fixed line and
 * truncates: that is how the advice lines are made.
 *
 * Size bins: large_sizes[i] counts fallbacks whose size has bit length i,
 * that is sizes in [2^(i-1), 2^i) (bin 0 holds size 0); the last bin also
 * holds everything larger.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "stats.h"

#define STATS_BUF_SIZE 1024
#define STATS_LINE_LEN 160 /* the line length of stats_advice's interface */
#define STATS_ADVICE_MAX 8
#define STATS_REGION_SIZE ((size_t)2 << 20) /* 2 MiB, one arena region */
#define STATS_ADVICE_MIN_REQUESTS 100       /* below this a pool share says nothing */
#define STATS_BAR_WIDTH 40

_Static_assert(SEGPOOL_STATS_SIZE_BINS >= 2 && SEGPOOL_STATS_SIZE_BINS <= 64, "size bins are bit lengths of a size_t");

/* ---- Output builder ------------------------------------------------------- */

typedef struct stats_out_s {
    char *p;
    size_t cap; /* bytes of text p may hold */
    size_t len;
    int fd;     /* >= 0: flush there when full; < 0: truncate */
    int failed; /* a write failed: drop the rest */
} stats_out_t;

static void stats_out_flush(stats_out_t *o) {
    const char *p = o->p;
    size_t left = o->len;
    if (o->fd < 0)
        return;
    while (left > 0 && !o->failed) {
        ssize_t n = write(o->fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            o->failed = 1;
        } else if (n == 0) {
            o->failed = 1; /* no progress: give up rather than spin */
        } else {
            p += n;
            left -= (size_t)n;
        }
    }
    o->len = 0;
}

static void stats_out_mem(stats_out_t *o, const char *s, size_t n) {
    while (n > 0 && !o->failed) {
        if (o->len == o->cap) {
            if (o->fd < 0)
                return;
            stats_out_flush(o);
            continue;
        }
        size_t k = o->cap - o->len;
        if (k > n)
            k = n;
        memcpy(o->p + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

static void stats_out_str(stats_out_t *o, const char *s) { stats_out_mem(o, s, strlen(s)); }

static void stats_out_spaces(stats_out_t *o, size_t n) {
    static const char spaces[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        stats_out_mem(o, spaces, k);
        n -= k;
    }
}

/* s padded to width: right-aligned when right != 0. */
static void stats_out_field(stats_out_t *o, const char *s, size_t width, int right) {
    size_t n = strlen(s);
    if (right && n < width)
        stats_out_spaces(o, width - n);
    stats_out_mem(o, s, n);
    if (!right && n < width)
        stats_out_spaces(o, width - n);
}

/* ---- Number formatting into small fixed buffers --------------------------- */

#define STATS_NUM_LEN 32

static char *stats_fmt_u64(char buf[STATS_NUM_LEN], uint64_t v) {
    char *p = buf + STATS_NUM_LEN - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

/* Copy the NUL-terminated src to the end of buf (bounded). */
static void stats_fmt_cat(char buf[STATS_NUM_LEN], const char *src) {
    size_t n = strlen(buf);
    while (*src && n < STATS_NUM_LEN - 1)
        buf[n++] = *src++;
    buf[n] = '\0';
}

/* A whole number followed by one decimal: tenths 667 -> "66.7". */
static void stats_fmt_tenths(char buf[STATS_NUM_LEN], uint64_t tenths) {
    char tmp[STATS_NUM_LEN];
    char digit[2] = {(char)('0' + tenths % 10), '\0'};
    buf[0] = '\0';
    stats_fmt_cat(buf, stats_fmt_u64(tmp, tenths / 10));
    stats_fmt_cat(buf, ".");
    stats_fmt_cat(buf, digit);
}

/* Bytes in the largest unit that fits: exact ("32K", "2M", "512") when the
 * unit divides v, else with one decimal ("1.5M"). */
static const char *stats_fmt_bytes(char buf[STATS_NUM_LEN], uint64_t v) {
    static const char units[] = "KMGTPE";
    char tmp[STATS_NUM_LEN];
    int u = -1;
    while (u + 1 < (int)sizeof(units) - 1 && v >= ((uint64_t)1 << (10 * (u + 2))))
        u++;
    if (u < 0)
        return stats_fmt_u64(buf, v);
    unsigned shift = 10u * (unsigned)(u + 1);
    uint64_t unit = (uint64_t)1 << shift;
    char suffix[2] = {units[u], '\0'};
    if ((v & (unit - 1)) == 0) {
        buf[0] = '\0';
        stats_fmt_cat(buf, stats_fmt_u64(tmp, v >> shift));
    } else {
        /* round to tenths without overflowing: whole * 10 + rounded fraction */
        uint64_t frac = v & (unit - 1);
        uint64_t tenths = (v >> shift) * 10 + (uint64_t)(((unsigned __int128)frac * 10 + unit / 2) >> shift);
        stats_fmt_tenths(buf, tenths);
    }
    stats_fmt_cat(buf, suffix);
    return buf;
}

/* num / den as a percentage with one decimal ("66.7%"), or "-" when den is 0. */
static const char *stats_fmt_pct(char buf[STATS_NUM_LEN], uint64_t num, uint64_t den) {
    if (den == 0) {
        buf[0] = '-';
        buf[1] = '\0';
        return buf;
    }
    uint64_t tenths = (uint64_t)(((unsigned __int128)num * 1000 + den / 2) / den);
    stats_fmt_tenths(buf, tenths);
    stats_fmt_cat(buf, "%");
    return buf;
}

static void stats_out_u64(stats_out_t *o, uint64_t v) {
    char tmp[STATS_NUM_LEN];
    stats_out_str(o, stats_fmt_u64(tmp, v));
}

static void stats_out_bytes(stats_out_t *o, uint64_t v) {
    char tmp[STATS_NUM_LEN];
    stats_out_str(o, stats_fmt_bytes(tmp, v));
}

static void stats_out_pct(stats_out_t *o, uint64_t num, uint64_t den) {
    char tmp[STATS_NUM_LEN];
    stats_out_str(o, stats_fmt_pct(tmp, num, den));
}

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes
 * (UTF-8 included) as they are.  NULL is written as "". */
static void stats_out_json_str(stats_out_t *o, const char *s) {
    static const char hex[] = "0123456789abcdef";
    stats_out_mem(o, "\"", 1);
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            stats_out_mem(o, esc, 2);
        } else if (c == '\n') {
            stats_out_mem(o, "\\n", 2);
        } else if (c == '\t') {
            stats_out_mem(o, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            stats_out_mem(o, esc, 6);
        } else {
            stats_out_mem(o, (const char *)&c, 1);
        }
    }
    stats_out_mem(o, "\"", 1);
}

/* ---- Derived figures ------------------------------------------------------ */

static const char *stats_str(const char *s) { return s != NULL ? s : ""; }

/* a + b, stuck at UINT64_MAX rather than wrapping */
static uint64_t stats_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

static uint64_t stats_fallbacks(const segpool_stats_t *s) {
    return stats_add(stats_add(s->fallback_too_large, s->fallback_aligned),
                     stats_add(s->fallback_exhausted, s->fallback_other));
}

static unsigned stats_class_count(const segpool_stats_t *s) {
    return s->class_count < SEGPOOL_STATS_CLASSES ? s->class_count : SEGPOOL_STATS_CLASSES;
}

/* The bin that counts sizes in [segment_size, 2 * segment_size), or -1. */
static int stats_bin_above_segment(const segpool_stats_t *s) {
    size_t seg = s->segment_size;
    if (seg == 0 || (seg & (seg - 1)) != 0)
        return -1;
    int bin = 1; /* bit length of seg */
    while ((seg >> bin) != 0)
        bin++;
    return bin; /* bit length of sizes in [seg, 2 seg) is bin */
}

/* The upper bound of an option, from the one option table. */
static int64_t stats_option_max(const char *name) {
#define STATS_OPTION_MAX(NAME, field, kind, def, lo, hi, help) \
    if (strcmp(#NAME, name) == 0)                              \
        return (int64_t)(hi);
    SEGPOOL_OPTIONS(STATS_OPTION_MAX)
#undef STATS_OPTION_MAX
    return 0;
}

/* ---- Advice --------------------------------------------------------------- */

static void stats_advice_exhausted(const segpool_stats_t *s, stats_out_t *o) {
    stats_out_str(o, "the pool ran out ");
    stats_out_u64(o, s->fallback_exhausted);
    stats_out_str(o, s->fallback_exhausted == 1 ? " time" : " times");
    if (s->pool_size != 0) {
        stats_out_str(o, " with SEGSHIM_POOL_SIZE=");
        stats_out_bytes(o, s->pool_size);
    }
    stats_out_str(o, ": raise SEGSHIM_POOL_SIZE");
    if (s->pool_size != 0 && (uint64_t)s->pool_size <= (uint64_t)stats_option_max("POOL_SIZE") / 2) {
        stats_out_str(o, ", for example to ");
        stats_out_bytes(o, (uint64_t)s->pool_size * 2);
    }
}

static const char *stats_fallback_reason(const segpool_stats_t *s) {
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
    if (s->fallback_other > best)
        why = "before start-up, disabled or after thread exit";
    return why;
}

int stats_advice(const segpool_stats_t *s, char lines[][STATS_LINE_LEN], int max) {
    int n = 0;
    stats_out_t o;
#define STATS_ADVICE_BEGIN() (o = (stats_out_t){lines[n], STATS_LINE_LEN - 1, 0, -1, 0})
#define STATS_ADVICE_END() (lines[n][o.len] = '\0', n++)

    /* the pool ran out */
    if (n < max && s->fallback_exhausted > 0) {
        STATS_ADVICE_BEGIN();
        stats_advice_exhausted(s, &o);
        STATS_ADVICE_END();
    }

    /* most fallbacks just above the segment size */
    int bin = stats_bin_above_segment(s);
    if (n < max && bin > 0 && bin < SEGPOOL_STATS_SIZE_BINS - 1) {
        uint64_t total = 0; /* saturating: counters are wide, but trust nothing */
        for (int i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++)
            total = stats_add(total, s->large_sizes[i]);
        uint64_t above = s->large_sizes[bin];
        uint64_t larger = (uint64_t)s->segment_size * 2;
        if (above > 0 && above > total - above && larger <= (uint64_t)stats_option_max("SEGMENT_SIZE")) {
            STATS_ADVICE_BEGIN();
            stats_out_pct(&o, above, total);
            stats_out_str(&o, " of fallbacks were between ");
            stats_out_bytes(&o, s->segment_size);
            stats_out_str(&o, " and ");
            stats_out_bytes(&o, larger);
            stats_out_str(&o, ": SEGSHIM_SEGMENT_SIZE=");
            stats_out_bytes(&o, larger);
            stats_out_str(&o, " would serve them from the pool");
            STATS_ADVICE_END();
        }
    }

    /* huge pages: degraded to off, or covering little of the arena */
    const char *mode = s->hugepage_mode;
    const char *note = stats_str(s->hugepage_note);
    if (n < max && mode != NULL && strcmp(mode, "off") == 0 && note[0] != '\0') {
        /* The snapshot has the effective mode only; a note is set exactly
         * when a requested mode degraded, so off + note = unavailable. */
        STATS_ADVICE_BEGIN();
        stats_out_str(&o, "huge pages are unavailable (");
        stats_out_str(&o, note);
        stats_out_str(&o, "): the arena uses 4K pages");
        STATS_ADVICE_END();
    } else if (n < max && mode != NULL && strcmp(mode, "off") != 0 && s->arena_rss >= STATS_REGION_SIZE &&
               (uint64_t)s->arena_huge * 2 < (uint64_t)s->arena_rss) {
        STATS_ADVICE_BEGIN();
        stats_out_str(&o, "only ");
        stats_out_pct(&o, s->arena_huge, s->arena_rss);
        stats_out_str(&o, " of the arena is on huge pages (");
        if (note[0] != '\0')
            stats_out_str(&o, note);
        else if (strcmp(mode, "thp") == 0)
            stats_out_str(&o, "check /sys/kernel/mm/transparent_hugepage/enabled and defrag");
        else
            stats_out_str(&o, "check vm.nr_hugepages");
        stats_out_str(&o, ")");
        STATS_ADVICE_END();
    }

    /* a low pool share */
    uint64_t fallbacks = stats_fallbacks(s);
    uint64_t requests = stats_add(s->pool_requests, fallbacks);
    if (n < max && requests >= STATS_ADVICE_MIN_REQUESTS && s->pool_requests < requests - s->pool_requests) {
        STATS_ADVICE_BEGIN();
        stats_out_str(&o, "only ");
        stats_out_pct(&o, s->pool_requests, requests);
        stats_out_str(&o, " of requests were served by the pool; most fallbacks: ");
        stats_out_str(&o, stats_fallback_reason(s));
        STATS_ADVICE_END();
    }
#undef STATS_ADVICE_BEGIN
#undef STATS_ADVICE_END
    return n;
}

/* ---- Text ----------------------------------------------------------------- */

#define STATS_LABEL_WIDTH 24

static void stats_text_label(stats_out_t *o, const char *indent, const char *label) {
    stats_out_str(o, indent);
    stats_out_field(o, label, STATS_LABEL_WIDTH - strlen(indent), 0);
}

static void stats_text_u64(stats_out_t *o, const char *label, uint64_t v) {
    stats_text_label(o, "    ", label);
    stats_out_u64(o, v);
    stats_out_str(o, "\n");
}

/* "[32K, 64K)" for bin i, ">= 4M" for the last. */
static void stats_text_bin(stats_out_t *o, int i) {
    char num[STATS_NUM_LEN], label[STATS_NUM_LEN];
    label[0] = '\0';
    if (i == 0) {
        stats_fmt_cat(label, "0");
    } else if (i == SEGPOOL_STATS_SIZE_BINS - 1) {
        stats_fmt_cat(label, ">= ");
        stats_fmt_cat(label, stats_fmt_bytes(num, (uint64_t)1 << (i - 1)));
    } else {
        stats_fmt_cat(label, "[");
        stats_fmt_cat(label, stats_fmt_bytes(num, (uint64_t)1 << (i - 1)));
        stats_fmt_cat(label, ", ");
        stats_fmt_cat(label, stats_fmt_bytes(num, (uint64_t)1 << i));
        stats_fmt_cat(label, ")");
    }
    stats_out_str(o, "    ");
    stats_out_field(o, label, 14, 0);
}

static void stats_text(stats_out_t *o, const segpool_stats_t *s) {
    uint64_t fallbacks = stats_fallbacks(s);
    uint64_t requests = stats_add(s->pool_requests, fallbacks);

    stats_out_str(o, "segshim statistics\n  configuration\n");
    stats_text_label(o, "    ", "segment size");
    stats_out_bytes(o, s->segment_size);
    stats_out_str(o, "\n");
    stats_text_label(o, "    ", "pool size");
    stats_out_bytes(o, s->pool_size);
    stats_out_str(o, " (");
    stats_out_u64(o, s->capacity);
    stats_out_str(o, " segments)\n");
    stats_text_label(o, "    ", "huge pages");
    stats_out_str(o, s->hugepage_mode != NULL ? s->hugepage_mode : "unknown");
    if (stats_str(s->hugepage_note)[0] != '\0') {
        stats_out_str(o, " (");
        stats_out_str(o, s->hugepage_note);
        stats_out_str(o, ")");
    }
    stats_out_str(o, "\n");
    stats_text_label(o, "    ", "threads");
    stats_out_u64(o, s->threads_live);
    stats_out_str(o, " live, ");
    stats_out_u64(o, s->threads_total);
    stats_out_str(o, " total\n");

    stats_out_str(o, "  segments\n");
    stats_text_u64(o, "in use", s->segments_in_use);
    stats_text_u64(o, "cached", s->segments_cached);
    stats_text_u64(o, "free", s->segments_free);
    stats_text_u64(o, "peak", s->segments_peak);
    stats_text_u64(o, "handed out whole", s->segments_user);

    stats_out_str(o, "  regions (2M)\n");
    stats_text_label(o, "    ", "committed");
    stats_out_u64(o, s->regions_committed);
    stats_out_str(o, " (peak ");
    stats_out_u64(o, s->regions_peak);
    stats_out_str(o, ")\n");
    stats_text_u64(o, "purged", s->regions_purged);
    stats_text_label(o, "    ", "arena resident");
    if (s->arena_rss != 0) {
        stats_out_bytes(o, s->arena_rss);
        stats_out_str(o, "\n");
        stats_text_label(o, "    ", "on huge pages");
        stats_out_bytes(o, s->arena_huge);
        stats_out_str(o, " (");
        stats_out_pct(o, s->arena_huge, s->arena_rss);
        stats_out_str(o, " of resident)\n");
    } else {
        stats_out_str(o, "unknown\n");
    }

    stats_out_str(o, "  requests\n");
    stats_text_label(o, "    ", "served by the pool");
    stats_out_u64(o, s->pool_requests);
    stats_out_str(o, " (");
    stats_out_pct(o, s->pool_requests, requests);
    stats_out_str(o, ")\n");
    stats_text_label(o, "    ", "served by libc");
    stats_out_u64(o, fallbacks);
    stats_out_str(o, " (");
    stats_out_pct(o, fallbacks, requests);
    stats_out_str(o, ")\n");
    static const char *const indent = "      ";
    stats_text_label(o, indent, "too large");
    stats_out_u64(o, s->fallback_too_large);
    stats_out_str(o, "\n");
    stats_text_label(o, indent, "over-aligned");
    stats_out_u64(o, s->fallback_aligned);
    stats_out_str(o, "\n");
    stats_text_label(o, indent, "pool exhausted");
    stats_out_u64(o, s->fallback_exhausted);
    stats_out_str(o, "\n");
    stats_text_label(o, indent, "other");
    stats_out_u64(o, s->fallback_other);
    stats_out_str(o, "\n");
    stats_text_u64(o, "pool frees", s->pool_frees);
    stats_text_u64(o, "remote frees", s->remote_frees);

    /* size classes with anything to show */
    unsigned classes = stats_class_count(s);
    int shown = 0;
    stats_out_str(o, "  size classes\n");
    for (unsigned c = 0; c < classes; c++) {
        if (s->class_requests[c] == 0 && s->class_segments[c] == 0)
            continue;
        char tmp[STATS_NUM_LEN];
        if (!shown)
            stats_out_str(o, "    class     size      requests  segments\n");
        shown = 1;
        stats_out_field(o, stats_fmt_u64(tmp, c), 9, 1);
        stats_out_field(o, stats_fmt_u64(tmp, s->class_size[c]), 9, 1);
        stats_out_field(o, stats_fmt_u64(tmp, s->class_requests[c]), 14, 1);
        stats_out_field(o, stats_fmt_u64(tmp, s->class_segments[c]), 10, 1);
        stats_out_str(o, "\n");
    }
    if (!shown)
        stats_out_str(o, "    (none)\n");

    /* fallback sizes, a bar per nonzero bin scaled to the largest */
    uint64_t top = 0;
    for (int i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++)
        if (s->large_sizes[i] > top)
            top = s->large_sizes[i];
    stats_out_str(o, "  fallback sizes\n");
    if (top == 0)
        stats_out_str(o, "    (none)\n");
    for (int i = 0; i < SEGPOOL_STATS_SIZE_BINS && top != 0; i++) {
        char tmp[STATS_NUM_LEN];
        if (s->large_sizes[i] == 0)
            continue;
        stats_text_bin(o, i);
        stats_out_field(o, stats_fmt_u64(tmp, s->large_sizes[i]), 12, 1);
        stats_out_str(o, "  ");
        uint64_t bar = (uint64_t)(((unsigned __int128)s->large_sizes[i] * STATS_BAR_WIDTH + top - 1) / top);
        for (uint64_t b = 0; b < bar; b++)
            stats_out_mem(o, "#", 1);
        stats_out_str(o, "\n");
    }

    char advice[STATS_ADVICE_MAX][STATS_LINE_LEN];
    int n = stats_advice(s, advice, STATS_ADVICE_MAX);
    stats_out_str(o, "  advice\n");
    if (n == 0)
        stats_out_str(o, "    (none)\n");
    for (int i = 0; i < n; i++) {
        stats_out_str(o, "    - ");
        stats_out_str(o, advice[i]);
        stats_out_str(o, "\n");
    }
}

/* ---- JSON ----------------------------------------------------------------- */

static void stats_json_key(stats_out_t *o, const char *key) {
    stats_out_str(o, ",\n  \"");
    stats_out_str(o, key);
    stats_out_str(o, "\": ");
}

static void stats_json_u64(stats_out_t *o, const char *key, uint64_t v) {
    stats_json_key(o, key);
    stats_out_u64(o, v);
}

static void stats_json_str(stats_out_t *o, const char *key, const char *v) {
    stats_json_key(o, key);
    stats_out_json_str(o, v);
}

/* The element type varies (uint32_t, uint64_t), hence a macro. */
#define STATS_JSON_ARRAY(o, key, arr, count)       \
    do {                                           \
        stats_json_key(o, key);                    \
        stats_out_str(o, "[");                     \
        for (unsigned i_ = 0; i_ < (count); i_++) { \
            if (i_)                                \
                stats_out_str(o, ", ");            \
            stats_out_u64(o, (uint64_t)(arr)[i_]); \
        }                                          \
        stats_out_str(o, "]");                     \
    } while (0)

static void stats_json(stats_out_t *o, const segpool_stats_t *s) {
    unsigned classes = stats_class_count(s);
    /* the first key has no leading comma */
    stats_out_str(o, "{\n  \"segment_size\": ");
    stats_out_u64(o, s->segment_size);
    stats_json_u64(o, "pool_size", s->pool_size);
    stats_json_u64(o, "capacity", s->capacity);
    stats_json_str(o, "hugepage_mode", s->hugepage_mode);
    stats_json_str(o, "hugepage_note", s->hugepage_note);
    stats_json_u64(o, "segments_in_use", s->segments_in_use);
    stats_json_u64(o, "segments_cached", s->segments_cached);
    stats_json_u64(o, "segments_free", s->segments_free);
    stats_json_u64(o, "segments_peak", s->segments_peak);
    stats_json_u64(o, "segments_user", s->segments_user);
    stats_json_u64(o, "regions_committed", s->regions_committed);
    stats_json_u64(o, "regions_peak", s->regions_peak);
    stats_json_u64(o, "regions_purged", s->regions_purged);
    stats_json_u64(o, "arena_rss", s->arena_rss);
    stats_json_u64(o, "arena_huge", s->arena_huge);
    stats_json_u64(o, "pool_requests", s->pool_requests);
    stats_json_u64(o, "pool_frees", s->pool_frees);
    stats_json_u64(o, "remote_frees", s->remote_frees);
    stats_json_u64(o, "fallback_too_large", s->fallback_too_large);
    stats_json_u64(o, "fallback_aligned", s->fallback_aligned);
    stats_json_u64(o, "fallback_exhausted", s->fallback_exhausted);
    stats_json_u64(o, "fallback_other", s->fallback_other);
    STATS_JSON_ARRAY(o, "large_sizes", s->large_sizes, SEGPOOL_STATS_SIZE_BINS);
    stats_json_u64(o, "class_count", s->class_count);
    STATS_JSON_ARRAY(o, "class_size", s->class_size, classes);
    STATS_JSON_ARRAY(o, "class_requests", s->class_requests, classes);
    STATS_JSON_ARRAY(o, "class_segments", s->class_segments, classes);
    stats_json_u64(o, "threads_live", s->threads_live);
    stats_json_u64(o, "threads_total", s->threads_total);

    char advice[STATS_ADVICE_MAX][STATS_LINE_LEN];
    int n = stats_advice(s, advice, STATS_ADVICE_MAX);
    stats_json_key(o, "advice");
    stats_out_str(o, "[");
    for (int i = 0; i < n; i++) {
        if (i)
            stats_out_str(o, ", ");
        stats_out_json_str(o, advice[i]);
    }
    stats_out_str(o, "]\n}\n");
}

int stats_write(int fd, const segpool_stats_t *s, int json) {
    char buf[STATS_BUF_SIZE];
    stats_out_t o = {buf, sizeof(buf), 0, fd, 0};
    if (fd < 0 || s == NULL)
        return -1;
    if (json)
        stats_json(&o, s);
    else
        stats_text(&o, s);
    stats_out_flush(&o);
    return o.failed ? -1 : 0;
}
