/*
 * stats_format.c - a segpool_stats_t snapshot as a text table, as JSON, or as
 * the short summary of malloc_stats.
 *
 * Owns: nothing mutable; every function works on the caller's snapshot.
 *
 * Constraints: this runs at exit and from inside the allocator, so it must
 * not allocate: no malloc, no stdio (printf may allocate, and its locks may be
 * held by a thread that died in fork).  Output goes through a text_t stream
 * (text.h) over a 1 KiB stack buffer, flushed with write(2).
 *
 * Size bins: large_sizes[i] counts fallbacks whose size has bit length i,
 * that is sizes in [2^(i-1), 2^i) (bin 0 holds size 0); the last bin also
 * holds everything larger.
 */
#include <stdint.h>
#include <string.h>

#include "stats.h"
#include "text.h"

#define STATS_BUF_SIZE 1024
#define STATS_ADVICE_MAX 8
#define STATS_BAR_WIDTH 40

_Static_assert(SEGPOOL_STATS_SIZE_BINS >= 2 && SEGPOOL_STATS_SIZE_BINS <= 64, "size bins are bit lengths of a size_t");

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes
 * (UTF-8 included) as they are.  NULL is written as "". */
static void stats_out_json_str(text_t *o, const char *s) {
    text_char(o, '"');
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            text_char(o, '\\');
            text_char(o, (char)c);
        } else if (c == '\n') {
            text_str(o, "\\n");
        } else if (c == '\t') {
            text_str(o, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            text_str(o, "\\u00");
            text_char(o, "0123456789abcdef"[c >> 4]);
            text_char(o, "0123456789abcdef"[c & 15]);
        } else {
            text_char(o, (char)c);
        }
    }
    text_char(o, '"');
}

/* ---- Derived figures ------------------------------------------------------ */

static const char *stats_str(const char *s) { return s != NULL ? s : ""; }

static unsigned stats_class_count(const segpool_stats_t *s) {
    return s->class_count < SEGPOOL_STATS_CLASSES ? s->class_count : SEGPOOL_STATS_CLASSES;
}

/* ---- Text ----------------------------------------------------------------- */

#define STATS_LABEL_WIDTH 24

static void stats_text_label(text_t *o, const char *indent, const char *label) {
    text_str(o, indent);
    text_field(o, label, STATS_LABEL_WIDTH - strlen(indent), 0);
}

static void stats_text_u64_at(text_t *o, const char *indent, const char *label, uint64_t v) {
    stats_text_label(o, indent, label);
    text_u64(o, v);
    text_str(o, "\n");
}

static void stats_text_u64(text_t *o, const char *label, uint64_t v) { stats_text_u64_at(o, "    ", label, v); }

/* "label  A<mid>B<end>": two figures on a line, as bytes when bytes != 0. */
static void stats_text_two(text_t *o, const char *label, uint64_t a, const char *mid, uint64_t b, const char *end,
                           int bytes) {
    stats_text_label(o, "    ", label);
    if (bytes) text_bytes(o, a);
    else text_u64(o, a);
    text_str(o, mid);
    if (bytes) text_bytes(o, b);
    else text_u64(o, b);
    text_str(o, end);
}

/* "label  A taken, C contended (P%)", without the end of the line. */
static void stats_text_lock(text_t *o, const char *label, uint64_t acquired, uint64_t contended) {
    stats_text_two(o, label, acquired, " taken, ", contended, " contended (", 0);
    text_pct(o, contended, acquired);
    text_str(o, ")");
}

/* "label  V (P%)": v and its share of total. */
static void stats_text_share(text_t *o, const char *label, uint64_t v, uint64_t total) {
    stats_text_label(o, "    ", label);
    text_u64(o, v);
    text_str(o, " (");
    text_pct(o, v, total);
    text_str(o, ")\n");
}

/* v right-aligned in width columns. */
static void stats_u64_field(text_t *o, uint64_t v, size_t width) {
    char num[TEXT_NUM_LEN];
    text_t t;
    text_init(&t, num, sizeof(num));
    text_u64(&t, v);
    text_field(o, num, width, 1);
}

/* "[32K, 64K)" for bin i, ">= 4M" for the last, in a 14-column field. */
static void stats_text_bin(text_t *o, int i) {
    char label[2 * TEXT_NUM_LEN];
    text_t t;
    text_init(&t, label, sizeof(label));
    if (i == 0) {
        text_str(&t, "0");
    } else if (i == SEGPOOL_STATS_SIZE_BINS - 1) {
        text_str(&t, ">= ");
        text_bytes(&t, (uint64_t)1 << (i - 1));
    } else {
        text_str(&t, "[");
        text_bytes(&t, (uint64_t)1 << (i - 1));
        text_str(&t, ", ");
        text_bytes(&t, (uint64_t)1 << i);
        text_str(&t, ")");
    }
    text_str(o, "    ");
    text_field(o, label, 14, 0);
}

/* Who wrote the figures, and the memory the pool holds. */
static void stats_text_process(text_t *o, const segpool_stats_t *s) {
    text_str(o, "  process\n");
    stats_text_label(o, "    ", "program");
    text_str(o, s->program[0] != '\0' ? s->program : "unknown");
    text_str(o, "\n");
    stats_text_u64(o, "pid", (uint64_t)(s->pid > 0 ? s->pid : 0));
    stats_text_label(o, "    ", "version");
    text_str(o, s->version != NULL ? s->version : "unknown");
    text_str(o, "\n");
    stats_text_label(o, "    ", "started");
    if (s->start_time != 0) {
        text_u64(o, s->start_time);
        text_str(o, " (seconds since the epoch)\n");
        stats_text_label(o, "    ", "elapsed");
        text_fixed(o, s->elapsed_ms, 3);
        text_str(o, " s\n");
    } else {
        text_str(o, "never (the pool did not start)\n");
    }
    stats_text_label(o, "    ", "peak RSS");
    if (s->peak_rss != 0)
        text_bytes(o, s->peak_rss);
    else
        text_str(o, "unknown");
    text_str(o, " (the whole process)\n");
    stats_text_two(o, "pool bytes in use", s->bytes_in_use, " of ", s->bytes_committed, " committed\n", 1);
}

static void stats_text(text_t *o, const segpool_stats_t *s) {
    uint64_t fallbacks = stats_fallbacks(s);
    uint64_t requests = stats_add(s->pool_requests, fallbacks);

    text_str(o, "segshim statistics\n");
    stats_text_process(o, s);
    text_str(o, "  configuration\n");
    stats_text_label(o, "    ", "segment size");
    text_bytes(o, s->segment_size);
    text_str(o, "\n");
    stats_text_label(o, "    ", "pool size");
    text_bytes(o, s->pool_size);
    text_str(o, " (");
    text_u64(o, s->capacity);
    text_str(o, " segments)\n");
    stats_text_label(o, "    ", "huge pages");
    text_str(o, s->hugepage_mode != NULL ? s->hugepage_mode : "unknown");
    if (stats_str(s->hugepage_note)[0] != '\0') {
        text_str(o, " (");
        text_str(o, s->hugepage_note);
        text_str(o, ")");
    }
    text_str(o, "\n");
    stats_text_two(o, "threads", s->threads_live, " live, ", s->threads_total, " total\n", 0);

    text_str(o, "  segments\n");
    stats_text_u64(o, "in use", s->segments_in_use);
    stats_text_u64(o, "cached", s->segments_cached);
    stats_text_u64(o, "free", s->segments_free);
    stats_text_u64(o, "peak", s->segments_peak);
    stats_text_u64(o, "handed out whole", s->segments_user);

    text_str(o, "  regions (2M)\n");
    stats_text_two(o, "committed", s->regions_committed, " (peak ", s->regions_peak, ")\n", 0);
    stats_text_u64(o, "purged", s->regions_purged);
    stats_text_label(o, "    ", "arena resident");
    if (s->arena_rss != 0) {
        text_bytes(o, s->arena_rss);
        text_str(o, "\n");
        stats_text_label(o, "    ", "on huge pages");
        text_bytes(o, s->arena_huge);
        text_str(o, " (");
        text_pct(o, s->arena_huge, s->arena_rss);
        text_str(o, " of resident)\n");
    } else {
        text_str(o, "unknown\n");
    }

    text_str(o, "  requests\n");
    stats_text_share(o, "served by the pool", s->pool_requests, requests);
    stats_text_share(o, "served by libc", fallbacks, requests);
    static const char *const indent = "      ";
    stats_text_u64_at(o, indent, "too large", s->fallback_too_large);
    stats_text_u64_at(o, indent, "over-aligned", s->fallback_aligned);
    stats_text_u64_at(o, indent, "pool exhausted", s->fallback_exhausted);
    stats_text_u64_at(o, indent, "other", s->fallback_other);
    stats_text_u64(o, "pool frees", s->pool_frees);
    stats_text_u64(o, "remote frees", s->remote_frees);
    stats_text_u64_at(o, indent, "contended", s->remote_contended);
    stats_text_u64_at(o, indent, "segments queued", s->remote_queued);
    stats_text_u64_at(o, indent, "lists collected", s->remote_collects);
    stats_text_u64_at(o, indent, "kept by the freer", s->remote_kept);

    /* Slow-path locks: how often taken, and how often another thread held
     * the lock at the first try (the thread may have slept). */
    text_str(o, "  locks\n");
    stats_text_lock(o, "pool shards", s->pool_lock_acquired, s->pool_lock_contended);
    text_str(o, " in ");
    text_u64(o, s->pool_shards);
    text_str(o, s->pool_shards == 1 ? " shard" : " shards");
    if (s->pool_recycles_deferred) {
        text_str(o, ", ");
        text_u64(o, s->pool_recycles_deferred);
        text_str(o, " recycles left to the holder");
    }
    if (s->pool_runs_cached || s->pool_runs_reused) {
        text_str(o, "; run cache: ");
        text_u64(o, s->pool_runs_cached);
        text_str(o, " recycles, ");
        text_u64(o, s->pool_runs_reused);
        text_str(o, " requests, no lock");
    }
    text_str(o, "\n");
    stats_text_lock(o, "thread heaps", s->heap_lock_acquired, s->heap_lock_contended);
    text_str(o, "\n");
    stats_text_lock(o, "heap list", s->heap_list_lock_acquired, s->heap_list_lock_contended);
    text_str(o, "\n");

    /* size classes with anything to show */
    unsigned classes = stats_class_count(s);
    int shown = 0;
    text_str(o, "  size classes\n");
    for (unsigned c = 0; c < classes; c++) {
        if (s->class_requests[c] == 0 && s->class_segments[c] == 0)
            continue;
        if (!shown)
            text_str(o, "    class     size      requests  segments\n");
        shown = 1;
        stats_u64_field(o, c, 9);
        stats_u64_field(o, s->class_size[c], 9);
        stats_u64_field(o, s->class_requests[c], 14);
        stats_u64_field(o, s->class_segments[c], 10);
        text_str(o, "\n");
    }
    if (!shown)
        text_str(o, "    (none)\n");

    /* fallback sizes, a bar per nonzero bin scaled to the largest */
    uint64_t top = 0;
    for (int i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++)
        if (s->large_sizes[i] > top)
            top = s->large_sizes[i];
    text_str(o, "  fallback sizes\n");
    if (top == 0)
        text_str(o, "    (none)\n");
    for (int i = 0; i < SEGPOOL_STATS_SIZE_BINS && top != 0; i++) {
        if (s->large_sizes[i] == 0)
            continue;
        stats_text_bin(o, i);
        stats_u64_field(o, s->large_sizes[i], 12);
        text_str(o, "  ");
        uint64_t bar = (uint64_t)(((unsigned __int128)s->large_sizes[i] * STATS_BAR_WIDTH + top - 1) / top);
        for (uint64_t b = 0; b < bar; b++)
            text_char(o, '#');
        text_str(o, "\n");
    }

    char advice[STATS_ADVICE_MAX][STATS_LINE_LEN];
    int n = stats_advice(s, advice, STATS_ADVICE_MAX);
    text_str(o, "  advice\n");
    if (n == 0)
        text_str(o, "    (none)\n");
    for (int i = 0; i < n; i++) {
        text_str(o, "    - ");
        text_str(o, advice[i]);
        text_str(o, "\n");
    }
}

/* ---- JSON ----------------------------------------------------------------- */

static void stats_json_key(text_t *o, const char *key) {
    text_str(o, ",\n  \"");
    text_str(o, key);
    text_str(o, "\": ");
}

static void stats_json_u64(text_t *o, const char *key, uint64_t v) {
    stats_json_key(o, key);
    text_u64(o, v);
}

static void stats_json_str(text_t *o, const char *key, const char *v) {
    stats_json_key(o, key);
    stats_out_json_str(o, v);
}

/* The element type varies (uint32_t, uint64_t), hence a macro. */
#define STATS_JSON_ARRAY(o, key, arr, count)       \
    do {                                           \
        stats_json_key(o, key);                    \
        text_str(o, "[");                     \
        for (unsigned i_ = 0; i_ < (count); i_++) { \
            if (i_)                                \
                text_str(o, ", ");            \
            text_u64(o, (uint64_t)(arr)[i_]); \
        }                                          \
        text_str(o, "]");                     \
    } while (0)

static void stats_json(text_t *o, const segpool_stats_t *s) {
    unsigned classes = stats_class_count(s);
    /* the first key has no leading comma */
    text_str(o, "{\n  \"pid\": ");
    text_i64(o, s->pid);
    stats_json_str(o, "program", s->program);
    stats_json_str(o, "version", s->version);
    stats_json_u64(o, "start_time", s->start_time);
    stats_json_u64(o, "elapsed_ms", s->elapsed_ms);
    stats_json_u64(o, "peak_rss", s->peak_rss);
    stats_json_u64(o, "bytes_in_use", s->bytes_in_use);
    stats_json_u64(o, "bytes_committed", s->bytes_committed);
    stats_json_u64(o, "segment_size", s->segment_size);
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
    stats_json_u64(o, "remote_contended", s->remote_contended);
    stats_json_u64(o, "remote_queued", s->remote_queued);
    stats_json_u64(o, "remote_collects", s->remote_collects);
    stats_json_u64(o, "remote_kept", s->remote_kept);
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
    stats_json_u64(o, "pool_shards", s->pool_shards);
    stats_json_u64(o, "pool_lock_acquired", s->pool_lock_acquired);
    stats_json_u64(o, "pool_lock_contended", s->pool_lock_contended);
    stats_json_u64(o, "pool_recycles_deferred", s->pool_recycles_deferred);
    stats_json_u64(o, "pool_runs_cached", s->pool_runs_cached);
    stats_json_u64(o, "pool_runs_reused", s->pool_runs_reused);
    stats_json_u64(o, "heap_lock_acquired", s->heap_lock_acquired);
    stats_json_u64(o, "heap_lock_contended", s->heap_lock_contended);
    stats_json_u64(o, "heap_list_lock_acquired", s->heap_list_lock_acquired);
    stats_json_u64(o, "heap_list_lock_contended", s->heap_list_lock_contended);

    char advice[STATS_ADVICE_MAX][STATS_LINE_LEN];
    int n = stats_advice(s, advice, STATS_ADVICE_MAX);
    stats_json_key(o, "advice");
    text_str(o, "[");
    for (int i = 0; i < n; i++) {
        if (i)
            text_str(o, ", ");
        stats_out_json_str(o, advice[i]);
    }
    text_str(o, "]\n}\n");
}

int stats_write(int fd, const segpool_stats_t *s, int json) {
    char buf[STATS_BUF_SIZE];
    text_t o;
    if (fd < 0 || s == NULL)
        return -1;
    text_init_fd(&o, buf, sizeof(buf), fd);
    if (json)
        stats_json(&o, s);
    else
        stats_text(&o, s);
    text_flush(&o);
    return o.failed ? -1 : 0;
}

/* One "label = value" line, aligned as glibc's malloc_stats aligns them. */
static void stats_summary_line(text_t *o, const char *label, uint64_t v) {
    text_field(o, label, 17, 0);
    text_str(o, "= ");
    stats_u64_field(o, v, 10);
    text_str(o, "\n");
}

int stats_write_summary(int fd, const segpool_stats_t *s) {
    char buf[STATS_BUF_SIZE];
    text_t o;
    if (fd < 0 || s == NULL)
        return -1;
    text_init_fd(&o, buf, sizeof(buf), fd);
    text_str(&o, "segshim pool (blocks up to ");
    text_bytes(&o, s->segment_size);
    text_str(&o, "; glibc's figures follow):\n");
    stats_summary_line(&o, "system bytes", s->bytes_committed);
    stats_summary_line(&o, "in use bytes", s->bytes_in_use);
    stats_summary_line(&o, "max system bytes", (uint64_t)s->regions_peak * STATS_REGION_BYTES);
    stats_summary_line(&o, "pool requests", s->pool_requests);
    stats_summary_line(&o, "glibc requests", stats_fallbacks(s));
    text_flush(&o);
    return o.failed ? -1 : 0;
}
