/*
 * config.h - the SEGSHIM_* options, declared once.
 *
 * SEGPOOL_OPTIONS is the single table of options: it generates the fields of
 * config_t, the defaults, the parser entries and the printout (config.c).
 * Parsing is a pure function (config_parse_value) so that every bad value has
 * a unit test; config_load walks an environment array without allocating.
 */
#ifndef SEGPOOL_CONFIG_H
#define SEGPOOL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* How a value is parsed:
 *   SIZE   bytes with an optional K/M/G suffix (any case), no sign
 *   POW2   a SIZE that must be a power of two
 *   INT    a decimal integer, may be negative
 *   BOOL   0 or 1
 *   MODE   one of the hugepage mode names
 *   STATS  0, 1, or a path to write JSON to (any other non-empty value)
 *   SIGNAL 0 (none), a signal name (SIGUSR2, USR2, any case) or number
 */
typedef enum config_kind_e {
    CONFIG_SIZE,
    CONFIG_POW2,
    CONFIG_INT,
    CONFIG_BOOL,
    CONFIG_MODE,
    CONFIG_STATS,
    CONFIG_SIGNAL
} config_kind_t;

/* config_t.stats: where the statistics go. */
typedef enum config_stats_e { CONFIG_STATS_OFF, CONFIG_STATS_STDERR, CONFIG_STATS_PATH } config_stats_t;

typedef enum hugepage_mode_e { HUGEPAGES_AUTO, HUGEPAGES_THP, HUGEPAGES_HUGETLB, HUGEPAGES_OFF } hugepage_mode_t;

#define CONFIG_KIB ((int64_t)1 << 10)
#define CONFIG_MIB ((int64_t)1 << 20)
#define CONFIG_GIB ((int64_t)1 << 30)
#define CONFIG_TIB ((int64_t)1 << 40)

/* X(NAME, field, kind, default, min, max, help)
 * NAME is the part after SEGSHIM_.  A SIZE/POW2/INT outside [min, max] is
 * rejected.  pool_size 0 means "physical RAM".  The defaults of tcache and
 * decay_ms come from the measurements in results/tuning.md. */
#define SEGPOOL_OPTIONS(X)                                                                                   \
    X(SEGMENT_SIZE, segment_size, CONFIG_POW2, 32 * CONFIG_KIB, 4 * CONFIG_KIB, CONFIG_MIB,                    \
      "segment size, a power of two from 4K to 1M")                                                          \
    X(POOL_SIZE, pool_size, CONFIG_SIZE, 0, 2 * CONFIG_MIB, 64 * CONFIG_TIB, "pool capacity in bytes (default: physical RAM)") \
    X(HUGEPAGES, hugepages, CONFIG_MODE, HUGEPAGES_AUTO, 0, 3, "auto, thp, hugetlb or off")                  \
    X(PREFAULT, prefault, CONFIG_SIZE, 0, 0, 64 * CONFIG_TIB, "bytes of the pool to commit and touch at start-up") \
    X(TCACHE, tcache, CONFIG_INT, 128, 0, 1024, "whole free segments a thread keeps (0 disables)")             \
    X(DECAY_MS, decay_ms, CONFIG_INT, 1000, -1, 3600000, "ms a wholly free region stays before it is returned (-1 never)") \
    X(RETAIN, retain, CONFIG_SIZE, 32 * CONFIG_MIB, 0, 64 * CONFIG_TIB, "bytes of wholly free regions kept for reuse; past it they are returned at once") \
    X(SHARDS, shards, CONFIG_INT, 0, 0, 64, "segment pool shards, each with its own lock (0: one per 8 CPUs)") \
    X(STATS, stats, CONFIG_STATS, CONFIG_STATS_OFF, 0, 2,                                                       \
      "1: statistics on stderr at exit; a path (%p: the pid): JSON written there")                          \
    X(STATS_SIGNAL, stats_signal, CONFIG_SIGNAL, 0, 0, 64,                                                   \
      "a signal (e.g. SIGUSR2) that writes the statistics of the running process; 0: none")                \
    X(VERBOSE, verbose, CONFIG_BOOL, 0, 0, 1, "1: print the effective configuration at start-up")           \
    X(DISABLE, disable, CONFIG_BOOL, 0, 0, 1, "1: pass every call to libc")

#define CONFIG_PATH_MAX 256

typedef struct config_s {
#define CONFIG_FIELD(NAME, field, kind, def, lo, hi, help) int64_t field;
    SEGPOOL_OPTIONS(CONFIG_FIELD)
#undef CONFIG_FIELD
    char stats_path[CONFIG_PATH_MAX]; /* set when SEGSHIM_STATS is a path (CONFIG_STATS_PATH) */
} config_t;

/* Every field at its default. */
void config_defaults(config_t *cfg);

/* Parse one value for the option named name (without the SEGSHIM_ prefix)
 * into cfg.  Pure: no I/O, no allocation.  Returns 0 on success; on failure
 * returns -1, leaves the field at its previous value and writes a short
 * reason ("not a power of two", "trailing junk", ...) into why. */
int config_parse_value(config_t *cfg, const char *name, const char *value, char *why, size_t why_len);

/* Read every SEGSHIM_* variable from envp (a NULL-terminated environment).
 * When secure is nonzero (AT_SECURE: set-uid) nothing is read.  Each bad value
 * writes one line to errfd naming the variable, the value and the default
 * used.  Unknown SEGSHIM_* names are reported the same way.  Returns the
 * number of bad values. */
int config_load(config_t *cfg, char *const *envp, int secure, int errfd);

/* The effective configuration as "SEGSHIM_NAME=value" lines; returns the
 * length written (truncated to len - 1). */
size_t config_format(const config_t *cfg, char *buf, size_t len);

/* As config_format, each line starting with prefix; where requested is not
 * NULL and its value differs, the line ends with "  (requested VALUE)".
 * Used for the configuration in force (SEGSHIM_VERBOSE). */
size_t config_format_lines(const config_t *cfg, const config_t *requested, const char *prefix, char *buf,
                           size_t len);

/* "SIGUSR2" for 12; NULL for a number without a name. */
const char *config_signal_name(int64_t signo);

/* "auto", "thp", "hugetlb", "off". */
const char *config_hugepage_name(int64_t mode);

#endif /* SEGPOOL_CONFIG_H */
