/*
 * check_stats_format.c - unit tests of the statistics output (stats_format.c).
 *
 * core    the text table and the JSON object of a filled snapshot; each
 *         advice fires on its figures and none on a healthy snapshot
 * limits  all 64 classes (several buffer flushes), an empty snapshot, huge
 *         figures, a slow pipe interrupted by signals (short writes, EINTR)
 * errors  write failures, advice that must not fire, the max of stats_advice
 * output  the SEGSHIM_STATS path: %p expansion without truncation, a file
 *         opened without following a link or truncating another's file
 *
 * The JSON is checked by a small validating scanner below, and by
 * `python3 -m json.tool` as well when python3 is installed.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "stats.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)
#define OUT_MAX (64 * 1024)

/* ---- Helpers -------------------------------------------------------------- */

/* A healthy snapshot: no advice should fire. */
static void fill_healthy(segpool_stats_t *s) {
    memset(s, 0, sizeof(*s));
    s->segment_size = 32 * KIB;
    s->pool_size = GIB;
    s->capacity = 32768;
    s->hugepage_mode = "thp";
    s->hugepage_note = "";
    s->segments_in_use = 120;
    s->segments_cached = 8;
    s->segments_free = 32640;
    s->segments_peak = 140;
    s->segments_user = 4;
    s->regions_committed = 3;
    s->regions_peak = 5;
    s->regions_purged = 12;
    s->arena_rss = 48 * MIB;  /* above the 32M below which huge pages get no advice */
    s->arena_huge = 32 * MIB; /* 66.7% */
    s->pool_requests = 95000;
    s->pool_frees = 94000;
    s->remote_frees = 321;
    s->remote_contended = 7;
    s->remote_queued = 40;
    s->remote_collects = 38;
    s->remote_kept = 200;
    s->fallback_too_large = 4000;
    s->fallback_aligned = 500;
    s->fallback_exhausted = 0;
    s->fallback_other = 500;
    s->large_sizes[16] = 900;  /* [32K, 64K): just above the segment, a minority */
    s->large_sizes[19] = 3000; /* [256K, 512K) */
    s->large_sizes[23] = 100;  /* >= 4M */
    s->class_count = 3;
    s->class_size[0] = 16;
    s->class_size[1] = 32;
    s->class_size[2] = 48;
    s->class_requests[0] = 70001;
    s->class_requests[1] = 0;
    s->class_requests[2] = 24999;
    s->class_segments[0] = 77;
    s->class_segments[1] = 0;
    s->class_segments[2] = 43;
    s->threads_live = 2;
    s->threads_total = 5;
    s->pool_shards = 4;
    s->pool_lock_acquired = 2000;
    s->pool_lock_contended = 50;
    s->pool_recycles_deferred = 7;
    s->pool_runs_cached = 900;
    s->pool_runs_reused = 880;
    s->heap_lock_acquired = 300;
    s->heap_lock_contended = 3;
    s->heap_list_lock_acquired = 12;
    s->heap_list_lock_contended = 0;
    s->pid = 4242;
    strcpy(s->program, "server");
    s->version = "0.2.0";
    s->start_time = 1700000000;
    s->elapsed_ms = 12345;
    s->peak_rss = 256 * MIB;
    s->bytes_in_use = 7 * MIB / 2;
    s->bytes_committed = 6 * MIB;
}

/* stats_write into a temporary file; return its contents in out. */
static int write_capture(const segpool_stats_t *s, int json, char *out, size_t out_len) {
    char path[] = "/tmp/check_stats_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    int rc = stats_write(fd, s, json);
    off_t end = lseek(fd, 0, SEEK_CUR);
    ck_assert_int_ge(end, 0);
    ck_assert_int_lt(end, (off_t)out_len);
    ck_assert_int_eq(pread(fd, out, (size_t)end, 0), end);
    out[end] = '\0';
    close(fd);
    return rc;
}

static int count_advice(const segpool_stats_t *s, char lines[][160], int max) {
    memset(lines, 0, (size_t)max * 160);
    return stats_advice(s, lines, max);
}

/* ---- A validating JSON scanner (RFC 8259 grammar, no semantics) ----------- */

typedef struct json_s {
    const char *p;
    int depth;
} json_t;

static void json_ws(json_t *j) {
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static int json_value(json_t *j);

static int json_string(json_t *j) {
    if (*j->p != '"')
        return 0;
    for (j->p++; *j->p != '"'; j->p++) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '\0' || c < 0x20)
            return 0;
        if (c == '\\') {
            j->p++;
            if (*j->p == 'u') {
                for (int k = 1; k <= 4; k++) {
                    char h = j->p[k];
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
                        return 0;
                }
                j->p += 4;
            } else if (!strchr("\"\\/bfnrt", *j->p) || *j->p == '\0') {
                return 0;
            }
        }
    }
    j->p++;
    return 1;
}

static int json_number(json_t *j) {
    const char *p = j->p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    return 1;
}

static int json_container(json_t *j, char open, char close, int object) {
    if (*j->p != open || ++j->depth > 64)
        return 0;
    j->p++;
    json_ws(j);
    if (*j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        json_ws(j);
        if (object) {
            if (!json_string(j))
                return 0;
            json_ws(j);
            if (*j->p++ != ':')
                return 0;
        }
        if (!json_value(j))
            return 0;
        json_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p++ != close)
            return 0;
        j->depth--;
        return 1;
    }
}

static int json_value(json_t *j) {
    json_ws(j);
    switch (*j->p) {
    case '{':
        return json_container(j, '{', '}', 1);
    case '[':
        return json_container(j, '[', ']', 0);
    case '"':
        return json_string(j);
    case 't':
        return strncmp(j->p, "true", 4) == 0 ? (j->p += 4, 1) : 0;
    case 'f':
        return strncmp(j->p, "false", 5) == 0 ? (j->p += 5, 1) : 0;
    case 'n':
        return strncmp(j->p, "null", 4) == 0 ? (j->p += 4, 1) : 0;
    default:
        return json_number(j);
    }
}

/* One JSON object and nothing after it but white space. */
static int json_valid_object(const char *text) {
    json_t j = {text, 0};
    json_ws(&j);
    if (*j.p != '{' || !json_value(&j))
        return 0;
    json_ws(&j);
    return *j.p == '\0';
}

/* Also ask python's parser, when there is one: 1 valid, 0 invalid, -1 n/a. */
static int json_python_valid(const char *text) {
    if (system("command -v python3 >/dev/null 2>&1") != 0)
        return -1;
    char path[] = "/tmp/check_stats_json_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "python3 -m json.tool %s >/dev/null 2>&1", path);
    int rc = system(cmd);
    unlink(path);
    return rc == 0;
}

/* The field names of segpool_stats_t, in declaration order. */
static const char *const stats_keys[] = {
    "pid", "program", "version", "start_time", "elapsed_ms", "peak_rss", "bytes_in_use", "bytes_committed",
    "segment_size",      "pool_size",          "capacity",         "hugepage_mode",      "hugepage_note",
    "segments_in_use",   "segments_cached",    "segments_free",    "segments_peak",      "segments_user",
    "regions_committed", "regions_peak",       "regions_purged",   "arena_rss",          "arena_huge",
    "pool_requests",     "pool_frees",         "remote_frees",     "remote_contended",   "remote_queued",
    "remote_collects",   "remote_kept",        "fallback_too_large", "fallback_aligned",
    "fallback_exhausted", "fallback_other",    "large_sizes",      "class_count",        "class_size",
    "class_requests",    "class_segments",     "threads_live",     "threads_total",      "pool_shards",
    "pool_lock_acquired", "pool_lock_contended", "pool_recycles_deferred", "pool_runs_cached", "pool_runs_reused",
    "heap_lock_acquired", "heap_lock_contended",
    "heap_list_lock_acquired", "heap_list_lock_contended", "advice",
};

/* ---- core ----------------------------------------------------------------- */

START_TEST(test_text_healthy) {
    segpool_stats_t s;
    static char out[OUT_MAX];
    fill_healthy(&s);
    ck_assert_int_eq(write_capture(&s, 0, out, sizeof(out)), 0);
    static const char *const want[] = {
        "segshim statistics\n  process\n",
        "    program             server\n",
        "    pid                 4242\n",
        "    version             0.2.0\n",
        "    started             1700000000 (seconds since the epoch)\n",
        "    elapsed             12.345 s\n",
        "    peak RSS            256M (the whole process)\n",
        "    pool bytes in use   3.5M of 6M committed\n",
        "    segment size        32K\n",
        "    pool size           1G (32768 segments)\n",
        "    huge pages          thp\n",
        "    threads             2 live, 5 total\n",
        "    in use              120\n",
        "    cached              8\n",
        "    free                32640\n",
        "    peak                140\n",
        "    handed out whole    4\n",
        "    committed           3 (peak 5)\n",
        "    purged              12\n",
        "    arena resident      48M\n",
        "    on huge pages       32M (66.7% of resident)\n",
        "    served by the pool  95000 (95.0%)\n",
        "    served by libc      5000 (5.0%)\n",
        "      too large         4000\n",
        "      over-aligned      500\n",
        "      pool exhausted    0\n",
        "      other             500\n",
        "    pool frees          94000\n",
        "    remote frees        321\n",
        "      contended         7\n",
        "      segments queued   40\n",
        "      lists collected   38\n",
        "      kept by the freer 200\n",
        "  locks\n    pool shards         2000 taken, 50 contended (2.5%) in 4 shards, 7 recycles left to the holder; run cache: 900 recycles, 880 requests, no lock\n"
        "    thread heaps        300 taken, 3 contended (1.0%)\n"
        "    heap list           12 taken, 0 contended (0.0%)\n",
        "    class     size      requests  segments\n",
        "        0       16         70001        77\n",
        "        2       48         24999        43\n",
        "    [32K, 64K)             900  ",
        "    [256K, 512K)          3000  ########################################\n",
        "    >= 4M                  100  ##\n",
        "  advice\n    (none)\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(out, want[i]) != NULL, "text lacks \"%s\":\n%s", want[i], out);
    /* class 1 has nothing to show; empty bins are left out */
    ck_assert_ptr_null(strstr(out, "        1       32"));
    ck_assert_ptr_null(strstr(out, "[64K, 128K)"));
    ck_assert_ptr_null(strstr(out, "{"));
}
END_TEST

START_TEST(test_json_healthy) {
    segpool_stats_t s;
    static char out[OUT_MAX];
    fill_healthy(&s);
    ck_assert_int_eq(write_capture(&s, 1, out, sizeof(out)), 0);
    ck_assert_msg(json_valid_object(out), "invalid JSON:\n%s", out);
    ck_assert_int_ne(json_python_valid(out), 0);
    for (size_t i = 0; i < sizeof(stats_keys) / sizeof(stats_keys[0]); i++) {
        char key[64];
        snprintf(key, sizeof(key), "\"%s\": ", stats_keys[i]);
        ck_assert_msg(strstr(out, key) != NULL, "JSON lacks key %s", key);
    }
    static const char *const want[] = {
        "{\n  \"pid\": 4242,",
        "\"program\": \"server\"",
        "\"version\": \"0.2.0\"",
        "\"start_time\": 1700000000",
        "\"elapsed_ms\": 12345",
        "\"peak_rss\": 268435456",
        "\"bytes_in_use\": 3670016",
        "\"bytes_committed\": 6291456",
        "\"segment_size\": 32768",
        "\"pool_size\": 1073741824",
        "\"capacity\": 32768",
        "\"hugepage_mode\": \"thp\"",
        "\"hugepage_note\": \"\"",
        "\"segments_in_use\": 120",
        "\"segments_cached\": 8",
        "\"segments_free\": 32640",
        "\"segments_peak\": 140",
        "\"segments_user\": 4",
        "\"regions_committed\": 3",
        "\"regions_peak\": 5",
        "\"regions_purged\": 12",
        "\"arena_rss\": 50331648",
        "\"arena_huge\": 33554432",
        "\"pool_requests\": 95000",
        "\"pool_frees\": 94000",
        "\"remote_frees\": 321",
        "\"remote_contended\": 7",
        "\"remote_queued\": 40",
        "\"remote_collects\": 38",
        "\"remote_kept\": 200",
        "\"fallback_too_large\": 4000",
        "\"fallback_aligned\": 500",
        "\"fallback_exhausted\": 0",
        "\"fallback_other\": 500",
        "\"large_sizes\": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 900, 0, 0, 3000, 0, 0, 0, 100]",
        "\"class_count\": 3",
        "\"class_size\": [16, 32, 48]",
        "\"class_requests\": [70001, 0, 24999]",
        "\"class_segments\": [77, 0, 43]",
        "\"threads_live\": 2",
        "\"threads_total\": 5",
        "\"pool_shards\": 4",
        "\"pool_lock_acquired\": 2000",
        "\"pool_lock_contended\": 50",
        "\"pool_recycles_deferred\": 7",
        "\"pool_runs_cached\": 900",
        "\"pool_runs_reused\": 880",
        "\"heap_lock_acquired\": 300",
        "\"heap_list_lock_acquired\": 12",
        "\"advice\": []",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_msg(strstr(out, want[i]) != NULL, "JSON lacks %s:\n%s", want[i], out);
}
END_TEST

START_TEST(test_advice_healthy) {
    segpool_stats_t s;
    char lines[8][160];
    fill_healthy(&s);
    int n = count_advice(&s, lines, 8);
    ck_assert_msg(n == 0, "healthy snapshot got advice: %s", lines[0]);
    /* huge pages off by choice: nothing to say either */
    s.hugepage_mode = "off";
    s.arena_huge = 0;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
}
END_TEST

START_TEST(test_advice_exhausted) {
    segpool_stats_t s;
    char lines[8][160];
    fill_healthy(&s);
    s.fallback_exhausted = 2000;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_str_eq(lines[0], "the pool ran out 2000 times with SEGSHIM_POOL_SIZE=1G: raise SEGSHIM_POOL_SIZE, for "
                               "example to 2G");
    s.fallback_exhausted = 1100; /* 1.04% of 106100 requests */
    s.pool_size = 0; /* unknown: no figure to suggest */
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_str_eq(lines[0], "the pool ran out 1100 times: raise SEGSHIM_POOL_SIZE");
}
END_TEST

START_TEST(test_advice_just_above) {
    segpool_stats_t s;
    char lines[8][160];
    fill_healthy(&s);
    s.large_sizes[16] = 3000; /* [32K, 64K) */
    s.large_sizes[19] = 900;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_str_eq(lines[0], "75.0% of fallbacks were between 32K and 64K: SEGSHIM_SEGMENT_SIZE=64K would serve "
                               "them from the pool");
    /* the same with another segment size names another value */
    s.segment_size = 256 * KIB;
    memset(s.large_sizes, 0, sizeof(s.large_sizes));
    s.large_sizes[19] = 1000; /* [256K, 512K) */
    s.large_sizes[2] = 100;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_ptr_nonnull(strstr(lines[0], "SEGSHIM_SEGMENT_SIZE=512K"));
    ck_assert_ptr_nonnull(strstr(lines[0], "90.9%"));
}
END_TEST

START_TEST(test_advice_hugepages_off) {
    segpool_stats_t s;
    char lines[8][160];
    fill_healthy(&s);
    s.hugepage_mode = "off";
    s.hugepage_note = "THP is disabled (transparent_hugepage/enabled = never)";
    s.arena_huge = 0;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_ptr_nonnull(strstr(lines[0], "huge pages are unavailable"));
    ck_assert_ptr_nonnull(strstr(lines[0], "THP is disabled (transparent_hugepage/enabled = never)"));
}
END_TEST

START_TEST(test_advice_hugepages_low) {
    segpool_stats_t s;
    char lines[8][160];
    fill_healthy(&s);
    s.arena_rss = 64 * MIB;
    s.arena_huge = 16 * MIB;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_ptr_nonnull(strstr(lines[0], "only 25.0% of the arena is on huge pages"));
    ck_assert_ptr_nonnull(strstr(lines[0], "transparent_hugepage"));
    s.hugepage_note = "khugepaged is slow";
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_str_eq(lines[0], "only 25.0% of the arena is on huge pages (khugepaged is slow)");
}
END_TEST

START_TEST(test_advice_low_share) {
    segpool_stats_t s;
    char lines[8][160];
    fill_healthy(&s);
    s.pool_requests = 300;
    s.fallback_too_large = 0;
    s.fallback_aligned = 0;
    s.fallback_other = 700; /* e.g. SEGSHIM_DISABLE=1 for part of the run */
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_ptr_nonnull(strstr(lines[0], "only 30.0% of requests were served by the pool"));
    ck_assert_ptr_nonnull(strstr(lines[0], "before start-up, disabled or after thread exit"));
    s.fallback_other = 0;
    s.fallback_aligned = 700;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_ptr_nonnull(strstr(lines[0], "over-aligned"));
}
END_TEST

START_TEST(test_advice_in_output) {
    /* every advice, in the text and as a JSON array of strings */
    segpool_stats_t s;
    static char out[OUT_MAX];
    char lines[8][160];
    fill_healthy(&s);
    s.fallback_exhausted = 200;
    s.large_sizes[16] = 100000;
    s.hugepage_mode = "off";
    s.hugepage_note = "no \"hugetlb\" pages\\reserved";
    s.pool_requests = 10;
    ck_assert_int_eq(count_advice(&s, lines, 8), 4);
    ck_assert_int_eq(write_capture(&s, 0, out, sizeof(out)), 0);
    for (int i = 0; i < 4; i++) {
        char want[sizeof(lines) + 8];
        snprintf(want, sizeof(want), "    - %s\n", lines[i]);
        ck_assert_msg(strstr(out, want) != NULL, "text lacks advice \"%s\"", lines[i]);
    }
    ck_assert_ptr_nonnull(strstr(out, "    huge pages          off (no \"hugetlb\" pages\\reserved)\n"));
    ck_assert_int_eq(write_capture(&s, 1, out, sizeof(out)), 0);
    ck_assert_msg(json_valid_object(out), "invalid JSON:\n%s", out);
    ck_assert_int_ne(json_python_valid(out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"hugepage_note\": \"no \\\"hugetlb\\\" pages\\\\reserved\""));
    ck_assert_ptr_nonnull(strstr(out, "\"advice\": [\"the pool ran out 200 times"));
    ck_assert_ptr_nonnull(strstr(out, "\", \"huge pages are unavailable (no \\\"hugetlb\\\" pages\\\\reserved)"));
    ck_assert_ptr_nonnull(strstr(out, "of requests were served by the pool; most fallbacks: too large for a segment\"]"));
}
END_TEST

/* ---- limits --------------------------------------------------------------- */

START_TEST(test_all_classes) {
    /* 64 classes and every bin: several flushes of the 1 KiB buffer */
    segpool_stats_t s;
    static char out[OUT_MAX];
    fill_healthy(&s);
    s.class_count = SEGPOOL_STATS_CLASSES;
    for (unsigned c = 0; c < SEGPOOL_STATS_CLASSES; c++) {
        s.class_size[c] = 16 * (c + 1);
        s.class_requests[c] = 1000000 + c;
        s.class_segments[c] = 500 + c;
    }
    for (int i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++)
        s.large_sizes[i] = 10 + (uint64_t)i;
    ck_assert_int_eq(write_capture(&s, 0, out, sizeof(out)), 0);
    ck_assert_uint_gt(strlen(out), 4096);
    for (unsigned c = 0; c < SEGPOOL_STATS_CLASSES; c++) {
        char row[80];
        snprintf(row, sizeof(row), "\n%9u%9u%14u%10u\n", c, 16 * (c + 1), 1000000 + c, 500 + c);
        ck_assert_msg(strstr(out, row) != NULL, "text lacks class row %u", c);
    }
    static const char *const bins[] = {"0", "[1, 2)", "[2, 4)", "[4, 8)", "[8, 16)", "[16, 32)", "[32, 64)",
                                       "[64, 128)", "[128, 256)", "[256, 512)", "[512, 1K)", "[1K, 2K)",
                                       "[2K, 4K)", "[4K, 8K)", "[8K, 16K)", "[16K, 32K)", "[32K, 64K)",
                                       "[64K, 128K)", "[128K, 256K)", "[256K, 512K)", "[512K, 1M)", "[1M, 2M)",
                                       "[2M, 4M)", ">= 4M"};
    _Static_assert(sizeof(bins) / sizeof(bins[0]) == SEGPOOL_STATS_SIZE_BINS, "one label per bin");
    for (int i = 0; i < SEGPOOL_STATS_SIZE_BINS; i++) {
        char row[80];
        snprintf(row, sizeof(row), "\n    %-14s%12d  #", bins[i], 10 + i);
        ck_assert_msg(strstr(out, row) != NULL, "text lacks bin row \"%s\"", row + 1);
    }
    /* the bars scale to the largest bin: 33 -> 40, 10 -> ceil(400 / 33) = 13 */
    ck_assert_ptr_nonnull(strstr(out, "    33  ########################################\n"));
    ck_assert_ptr_nonnull(strstr(out, "    10  #############\n"));
    ck_assert_ptr_nonnull(strstr(out, "  advice\n"));

    ck_assert_int_eq(write_capture(&s, 1, out, sizeof(out)), 0);
    ck_assert_msg(json_valid_object(out), "invalid JSON");
    ck_assert_int_ne(json_python_valid(out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"class_size\": [16, 32, 48, "));
    ck_assert_ptr_nonnull(strstr(out, ", 1008, 1024],"));
    ck_assert_ptr_nonnull(strstr(out, ", 563]"));
}
END_TEST

START_TEST(test_class_count_clamped) {
    segpool_stats_t s;
    static char out[OUT_MAX];
    fill_healthy(&s);
    s.class_count = 1000; /* corrupt: must not read past the arrays */
    for (unsigned c = 0; c < SEGPOOL_STATS_CLASSES; c++)
        s.class_size[c] = 7;
    ck_assert_int_eq(write_capture(&s, 1, out, sizeof(out)), 0);
    ck_assert(json_valid_object(out));
    const char *p = strstr(out, "\"class_size\": [");
    ck_assert_ptr_nonnull(p);
    int sevens = 0;
    for (; *p != ']'; p++)
        sevens += *p == '7';
    ck_assert_int_eq(sevens, SEGPOOL_STATS_CLASSES);
}
END_TEST

START_TEST(test_empty_snapshot) {
    /* all zero, NULL strings: no division by zero, still valid JSON */
    segpool_stats_t s;
    static char out[OUT_MAX];
    char lines[8][160];
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
    ck_assert_int_eq(write_capture(&s, 0, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "    served by the pool  0 (-)\n"));
    ck_assert_ptr_nonnull(strstr(out, "    arena resident      unknown\n"));
    ck_assert_ptr_nonnull(strstr(out, "  size classes\n    (none)\n"));
    ck_assert_ptr_nonnull(strstr(out, "  fallback sizes\n    (none)\n"));
    ck_assert_ptr_nonnull(strstr(out, "    program             unknown\n"));
    ck_assert_ptr_nonnull(strstr(out, "    started             never (the pool did not start)\n"));
    ck_assert_ptr_nonnull(strstr(out, "    peak RSS            unknown (the whole process)\n"));
    ck_assert_int_eq(write_capture(&s, 1, out, sizeof(out)), 0);
    ck_assert(json_valid_object(out));
    ck_assert_int_ne(json_python_valid(out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"hugepage_mode\": \"\""));
    ck_assert_ptr_nonnull(strstr(out, "\"class_size\": []"));
}
END_TEST

START_TEST(test_huge_figures) {
    segpool_stats_t s;
    static char out[OUT_MAX];
    fill_healthy(&s);
    s.pool_requests = UINT64_MAX;
    s.fallback_other = 0;
    s.fallback_aligned = 0;
    s.fallback_too_large = 0;
    s.pool_frees = UINT64_MAX - 1;
    s.pool_size = (size_t)64 << 40;
    s.arena_rss = SIZE_MAX;
    s.arena_huge = SIZE_MAX / 2;
    s.large_sizes[23] = UINT64_MAX;
    ck_assert_int_eq(write_capture(&s, 0, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "18446744073709551615 (100.0%)"));
    ck_assert_ptr_nonnull(strstr(out, "    pool frees          18446744073709551614\n"));
    ck_assert_ptr_nonnull(strstr(out, "    pool size           64T ("));
    ck_assert_ptr_nonnull(strstr(out, "    arena resident      16.0E\n"));
    ck_assert_ptr_nonnull(strstr(out, "(50.0% of resident)"));
    ck_assert_int_eq(write_capture(&s, 1, out, sizeof(out)), 0);
    ck_assert(json_valid_object(out));
    ck_assert_ptr_nonnull(strstr(out, "\"pool_requests\": 18446744073709551615,"));
}
END_TEST

START_TEST(test_units) {
    segpool_stats_t s;
    static char out[OUT_MAX];
    fill_healthy(&s);
    s.segment_size = 4 * KIB;
    s.pool_size = 3 * GIB / 2;     /* 1.5G */
    s.arena_rss = 5 * MIB + 1;     /* rounds to 5.0M */
    s.arena_huge = 5 * MIB / 3;    /* 33.3% */
    s.hugepage_mode = "hugetlb";
    ck_assert_int_eq(write_capture(&s, 0, out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, "    segment size        4K\n"));
    ck_assert_ptr_nonnull(strstr(out, "    pool size           1.5G (32768 segments)\n"));
    ck_assert_ptr_nonnull(strstr(out, "    arena resident      5.0M\n"));
    ck_assert_ptr_nonnull(strstr(out, "    on huge pages       1.7M (33.3% of resident)\n"));
}
END_TEST

/* A slow reader on a small pipe while SIGALRM (no SA_RESTART) interrupts the
 * writer: write(2) returns short counts and EINTR, and the output must still
 * arrive whole. */
static volatile sig_atomic_t alarms;

static void on_alarm(int sig) {
    (void)sig;
    alarms++;
}

typedef struct reader_s {
    int fd;
    char *buf;
    size_t len;
} reader_t;

static void *slow_reader(void *arg) {
    reader_t *r = arg;
    usleep(20000);
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->len, 97);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        r->len += (size_t)n;
        usleep(300);
    }
    return NULL;
}

#define INTERRUPTED_COPIES 8 /* several times the pipe's capacity */

START_TEST(test_interrupted_pipe) {
    segpool_stats_t s;
    static char want[OUT_MAX], got[INTERRUPTED_COPIES * OUT_MAX];
    fill_healthy(&s);
    s.class_count = SEGPOOL_STATS_CLASSES;
    for (unsigned c = 0; c < SEGPOOL_STATS_CLASSES; c++) {
        s.class_size[c] = 16 * (c + 1);
        s.class_requests[c] = 1 + c;
    }
    ck_assert_int_eq(write_capture(&s, 0, want, sizeof(want)), 0);

    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    (void)fcntl(fds[1], F_SETPIPE_SZ, 4096); /* smaller than the output */

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocked writes see EINTR */
    ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);

    /* the reader blocks SIGALRM, so the signal lands in the writer */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    reader_t r = {fds[0], got, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, slow_reader, &r), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    struct itimerval it = {{0, 500}, {0, 500}};
    alarms = 0;
    setitimer(ITIMER_REAL, &it, NULL);
    int rc = 0;
    for (int k = 0; k < INTERRUPTED_COPIES; k++)
        rc |= stats_write(fds[1], &s, 0);
    memset(&it, 0, sizeof(it));
    setitimer(ITIMER_REAL, &it, NULL);
    close(fds[1]);
    pthread_join(th, NULL);
    close(fds[0]);
    got[r.len] = '\0';

    ck_assert_int_eq(rc, 0);
    ck_assert_int_gt(alarms, 0);
    size_t one = strlen(want);
    ck_assert_uint_eq(r.len, one * INTERRUPTED_COPIES);
    for (int k = 0; k < INTERRUPTED_COPIES; k++)
        ck_assert_msg(memcmp(got + k * one, want, one) == 0, "copy %d differs", k);
}
END_TEST

/* This program's own write(): the one stats_format.c calls, since the test
 * links it in.  When armed for one fd it makes the kernel's rare answers
 * common: every third call fails with EINTR, the others write at most 7
 * bytes; or every call returns 0.  Everything else goes straight to the
 * system call. */
static int fake_fd = -1;
static int fake_zero;
static unsigned fake_calls;

ssize_t write(int fd, const void *buf, size_t n) {
    if (fd == fake_fd) {
        fake_calls++;
        if (fake_zero)
            return 0;
        if (fake_calls % 3 == 0) {
            errno = EINTR;
            return -1;
        }
        if (n > 7)
            n = 7;
    }
    return syscall(SYS_write, fd, buf, n);
}

START_TEST(test_short_writes) {
    segpool_stats_t s;
    static char want[OUT_MAX], got[OUT_MAX];
    fill_healthy(&s);
    s.fallback_exhausted = 3; /* some advice too */
    for (int json = 0; json <= 1; json++) {
        ck_assert_int_eq(write_capture(&s, json, want, sizeof(want)), 0);
        char path[] = "/tmp/check_stats_short_XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        unlink(path);
        fake_fd = fd;
        fake_calls = 0;
        int rc = stats_write(fd, &s, json);
        fake_fd = -1;
        ck_assert_int_eq(rc, 0);
        size_t len = strlen(want);
        ck_assert_uint_ge(fake_calls, len / 7); /* the fake really was in the way */
        ck_assert_int_eq(pread(fd, got, sizeof(got) - 1, 0), (ssize_t)len);
        got[len] = '\0';
        ck_assert_str_eq(got, want);
        close(fd);
    }
}
END_TEST

/* ---- errors --------------------------------------------------------------- */

START_TEST(test_write_returns_zero) {
    /* a write that makes no progress is a failure, not an endless loop */
    segpool_stats_t s;
    fill_healthy(&s);
    int fd = open("/dev/null", O_WRONLY);
    ck_assert_int_ge(fd, 0);
    fake_fd = fd;
    fake_zero = 1;
    fake_calls = 0;
    int rc = stats_write(fd, &s, 1);
    fake_fd = -1;
    fake_zero = 0;
    close(fd);
    ck_assert_int_eq(rc, -1);
    ck_assert_uint_eq(fake_calls, 1); /* gave up at once, and wrote no more */
}
END_TEST

START_TEST(test_write_errors) {
    segpool_stats_t s;
    fill_healthy(&s);
    ck_assert_int_eq(stats_write(-1, &s, 0), -1);
    int fd = open("/dev/full", O_WRONLY);
    if (fd >= 0) {
        ck_assert_int_eq(stats_write(fd, &s, 0), -1);
        ck_assert_int_eq(stats_write(fd, &s, 1), -1);
        close(fd);
    }
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    ck_assert_int_eq(stats_write(fds[1], &s, 1), -1); /* EBADF */
    fd = open("/dev/null", O_WRONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(stats_write(fd, &s, 0), 0);
    ck_assert_int_eq(stats_write(fd, &s, 1), 0);
    close(fd);
}
END_TEST

START_TEST(test_advice_quiet) {
    /* figures near each threshold that must not call for advice */
    segpool_stats_t s;
    char lines[8][160];

    fill_healthy(&s); /* just above: exactly half is not "most" */
    memset(s.large_sizes, 0, sizeof(s.large_sizes));
    s.large_sizes[16] = 500;
    s.large_sizes[20] = 500;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);

    fill_healthy(&s); /* just above, but the segment size is already the largest */
    s.segment_size = MIB;
    memset(s.large_sizes, 0, sizeof(s.large_sizes));
    s.large_sizes[21] = 5000; /* [1M, 2M) */
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);

    fill_healthy(&s); /* fallbacks one bin higher are not "just above" */
    memset(s.large_sizes, 0, sizeof(s.large_sizes));
    s.large_sizes[17] = 5000; /* [64K, 128K) */
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);

    fill_healthy(&s); /* exactly half the arena on huge pages */
    s.arena_rss = 8 * MIB;
    s.arena_huge = 4 * MIB;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);

    fill_healthy(&s); /* an arena smaller than one region cannot be huge */
    s.arena_rss = MIB;
    s.arena_huge = 0;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);

    fill_healthy(&s); /* coverage not read (arena_rss 0) */
    s.arena_rss = 0;
    s.arena_huge = 0;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);

    fill_healthy(&s); /* too few requests to judge the pool share */
    s.pool_requests = 10;
    s.fallback_too_large = 80;
    s.fallback_aligned = 0;
    s.fallback_other = 0;
    memset(s.large_sizes, 0, sizeof(s.large_sizes));
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);

    fill_healthy(&s); /* exactly half served by the pool */
    s.pool_requests = 5000;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
}
END_TEST

START_TEST(test_advice_max) {
    segpool_stats_t s;
    char lines[8][160];
    fill_healthy(&s);
    s.fallback_exhausted = 200;
    s.large_sizes[16] = 100000;
    s.hugepage_mode = "off";
    s.hugepage_note = "no hugetlb pages reserved";
    s.pool_requests = 10;
    ck_assert_int_eq(count_advice(&s, lines, 8), 4);
    ck_assert_ptr_nonnull(strstr(lines[0], "ran out"));
    ck_assert_ptr_nonnull(strstr(lines[1], "SEGSHIM_SEGMENT_SIZE=64K"));
    ck_assert_ptr_nonnull(strstr(lines[2], "huge pages are unavailable"));
    ck_assert_ptr_nonnull(strstr(lines[3], "of requests were served by the pool"));
    memset(lines, 'x', sizeof(lines));
    ck_assert_int_eq(stats_advice(&s, lines, 2), 2);
    ck_assert_ptr_nonnull(strstr(lines[1], "SEGSHIM_SEGMENT_SIZE=64K"));
    ck_assert_int_eq(lines[2][0], 'x'); /* untouched past max */
    memset(lines, 'x', sizeof(lines));
    ck_assert_int_eq(stats_advice(&s, lines, 0), 0);
    ck_assert_int_eq(lines[0][0], 'x');
}
END_TEST

START_TEST(test_advice_long_note) {
    /* a long note is cut at the line length, NUL-terminated */
    segpool_stats_t s;
    char lines[8][160];
    char note[400];
    memset(note, 'n', sizeof(note) - 1);
    note[sizeof(note) - 1] = '\0';
    fill_healthy(&s);
    s.hugepage_mode = "off";
    s.hugepage_note = note;
    memset(lines, 'x', sizeof(lines));
    ck_assert_int_eq(stats_advice(&s, lines, 8), 1);
    ck_assert_uint_eq(strlen(lines[0]), 159);
    ck_assert_int_eq(lines[1][0], 'x');
}
END_TEST

/* The documented thresholds (advice.c, README.md): each advice just below
 * and just at its threshold. */
START_TEST(test_advice_thresholds) {
    segpool_stats_t s;
    char lines[8][160];
    /* the case that once gave advice: 12 fallbacks of 1,199 requests, all
     * just above the segment size, and fewer than half served by the pool */
    memset(&s, 0, sizeof(s));
    s.segment_size = 32 * KIB;
    s.pool_requests = 1187;
    s.fallback_too_large = 12;
    s.large_sizes[16] = 12;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
    /* 100 such fallbacks among 1,000 requests: enough */
    s.pool_requests = 900;
    s.fallback_too_large = 100;
    s.large_sizes[16] = 100;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_ptr_nonnull(strstr(lines[0], "SEGSHIM_SEGMENT_SIZE=64K"));
    /* 999 requests: too few */
    s.pool_requests = 899;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
    /* 99 fallbacks: too few */
    s.pool_requests = 901;
    s.fallback_too_large = 99;
    s.large_sizes[16] = 99;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
    /* 100 fallbacks under 1% of the requests (10,001): too rare; at 1%: enough */
    s.fallback_too_large = 100;
    s.large_sizes[16] = 100;
    s.pool_requests = 9901;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
    s.pool_requests = 9900;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    /* exhaustion follows the same rule */
    memset(s.large_sizes, 0, sizeof(s.large_sizes));
    s.fallback_too_large = 0;
    s.fallback_exhausted = 99;
    s.pool_requests = 5000;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
    s.fallback_exhausted = 100;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
    ck_assert_ptr_nonnull(strstr(lines[0], "ran out 100 times"));
    /* huge pages: no word below 32M of resident arena */
    fill_healthy(&s);
    s.hugepage_mode = "off";
    s.hugepage_note = "THP is disabled";
    s.arena_rss = 32 * MIB - 4096;
    s.arena_huge = 0;
    ck_assert_int_eq(count_advice(&s, lines, 8), 0);
    s.arena_rss = 32 * MIB;
    ck_assert_int_eq(count_advice(&s, lines, 8), 1);
}
END_TEST

/* ---- output (stats_output.c) ---------------------------------------------- */

START_TEST(test_path_expand) {
    char out[32];
    ck_assert_int_eq(stats_path_expand("/tmp/s-%p.json", 42, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/tmp/s-42.json");
    ck_assert_int_eq(stats_path_expand("%p/%p", 7, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "7/7");
    ck_assert_int_eq(stats_path_expand("100%%q%", 7, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "100%%q%");
    ck_assert_int_eq(stats_path_expand("stats.json", 7, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "stats.json");
    /* 31 bytes fit a 32-byte buffer; 32 do not, and nothing is cut short */
    ck_assert_int_eq(stats_path_expand("aaaaaaaaaaaaaaaaaaaaaaaaaaaa%p", 123, out, sizeof(out)), 0);
    ck_assert_uint_eq(strlen(out), 31);
    ck_assert_int_eq(stats_path_expand("aaaaaaaaaaaaaaaaaaaaaaaaaaaa%p", 1234, out, sizeof(out)), -1);
    ck_assert_int_eq(stats_path_expand("x", 1, out, 0), -1);
}
END_TEST

static char out_dir[64];

static void out_setup(void) {
    strcpy(out_dir, "/tmp/check_stats_out_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(out_dir));
}

static void out_teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", out_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void out_path(char *buf, size_t len, const char *name) { snprintf(buf, len, "%s/%s", out_dir, name); }

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void assert_file(const char *path, const char *text) {
    char buf[256] = {0};
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_str_eq(buf, text);
}

/* Open: -1 and the reason (words or errno), the target left as it was. */
static void assert_refused(const char *path, const char *why_part, int want_err) {
    int err = -1;
    const char *why = "unset";
    ck_assert_int_eq(stats_open_output(path, &err, &why), -1);
    if (why_part != NULL) {
        ck_assert_ptr_nonnull(why);
        ck_assert_msg(strstr(why, why_part) != NULL, "%s: why \"%s\"", path, why);
    } else {
        ck_assert_ptr_null(why);
        ck_assert_int_eq(err, want_err);
    }
}

START_TEST(test_open_new_and_own) {
    char path[128];
    int err;
    const char *why;
    out_path(path, sizeof(path), "new.json");
    int fd = stats_open_output(path, &err, &why);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "first", 5), 5);
    close(fd);
    assert_file(path, "first");
    /* a regular file of ours is rewritten from the start (a later run, a
     * second signal) */
    fd = stats_open_output(path, &err, &why);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "2", 1), 1);
    close(fd);
    assert_file(path, "2");
}
END_TEST

START_TEST(test_open_refuses) {
    char path[128], target[128], other[128];
    out_path(target, sizeof(target), "target");
    write_file(target, "keep");
    /* a symbolic link planted at the path: neither followed nor truncated */
    out_path(path, sizeof(path), "link.json");
    ck_assert_int_eq(symlink(target, path), 0);
    assert_refused(path, "symbolic link", 0);
    assert_file(target, "keep");
    /* a dangling one: the file it names is not created */
    out_path(path, sizeof(path), "dangling.json");
    out_path(other, sizeof(other), "created-through-link");
    ck_assert_int_eq(symlink(other, path), 0);
    assert_refused(path, "symbolic link", 0);
    ck_assert_int_ne(access(other, F_OK), 0);
    /* a second name of another file */
    out_path(path, sizeof(path), "hardlink.json");
    ck_assert_int_eq(link(target, path), 0);
    assert_refused(path, "other hard links", 0);
    assert_file(target, "keep");
    /* a FIFO: refused at once, not waited on */
    out_path(path, sizeof(path), "fifo.json");
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    assert_refused(path, NULL, ENXIO); /* no reader */
    /* a directory, and a missing directory: errno */
    out_path(path, sizeof(path), "");
    assert_refused(path, NULL, EISDIR);
    out_path(path, sizeof(path), "no/such/dir.json");
    assert_refused(path, NULL, ENOENT);
    /* another user's file, where this test may give one away (as root) */
    if (geteuid() == 0) {
        out_path(path, sizeof(path), "theirs.json");
        write_file(path, "theirs");
        ck_assert_int_eq(chown(path, 65534, 65534), 0);
        assert_refused(path, "belongs to another user", 0);
        assert_file(path, "theirs");
    }
}
END_TEST

static Suite *stats_format_suite(void) {
    Suite *s = suite_create("stats_format");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_text_healthy);
    tcase_add_test(core, test_json_healthy);
    tcase_add_test(core, test_advice_healthy);
    tcase_add_test(core, test_advice_exhausted);
    tcase_add_test(core, test_advice_just_above);
    tcase_add_test(core, test_advice_hugepages_off);
    tcase_add_test(core, test_advice_hugepages_low);
    tcase_add_test(core, test_advice_low_share);
    tcase_add_test(core, test_advice_in_output);
    tcase_add_test(core, test_advice_thresholds);
    suite_add_tcase(s, core);

    TCase *output = tcase_create("output");
    tcase_add_checked_fixture(output, out_setup, out_teardown);
    tcase_add_test(output, test_path_expand);
    tcase_add_test(output, test_open_new_and_own);
    tcase_add_test(output, test_open_refuses);
    suite_add_tcase(s, output);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_all_classes);
    tcase_add_test(limits, test_class_count_clamped);
    tcase_add_test(limits, test_empty_snapshot);
    tcase_add_test(limits, test_huge_figures);
    tcase_add_test(limits, test_units);
    tcase_add_test(limits, test_interrupted_pipe);
    tcase_add_test(limits, test_short_writes);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, test_write_errors);
    tcase_add_test(errors, test_write_returns_zero);
    tcase_add_test(errors, test_advice_quiet);
    tcase_add_test(errors, test_advice_max);
    tcase_add_test(errors, test_advice_long_note);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(stats_format_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
