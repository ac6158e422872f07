/*
 * stats.h - statistics: per-thread counters (in heap_t), the merged snapshot
 * (segpool_stats_t in segpool.h, stats.c), its text/JSON rendering
 * (stats_format.c), the tuning advice drawn from it (advice.c) and where it
 * is written: at exit, on a signal, for glibc's introspection calls
 * (stats_output.c).
 *
 * Nothing here allocates: output is formatted with text.h into a stack
 * buffer and written with write(2), so it is safe at exit and from inside
 * the allocator.
 */
#ifndef SEGPOOL_STATS_H
#define SEGPOOL_STATS_H

#include <stdatomic.h>

#include "config.h"
#include "segpool.h"
#include "text.h"

#define STATS_REGION_BYTES ((uint64_t)2 << 20) /* one arena region */

/* ---- Rendering (stats_format.c) ------------------------------------------ */

/* Write *s to fd as a text table (json == 0) or as one JSON object (json != 0).
 * JSON keys are the field names of segpool_stats_t; arrays for the per-class
 * and size-bin figures; an "advice" array of strings.  Returns 0, or -1 when a
 * write failed.  Pure apart from write(2). */
int stats_write(int fd, const segpool_stats_t *s, int json);

/* A few lines in the manner of glibc's malloc_stats ("system bytes", "in
 * use bytes"), for the shim's malloc_stats.  0, or -1 when a write failed. */
int stats_write_summary(int fd, const segpool_stats_t *s);

/* ---- Advice (advice.c) ---------------------------------------------------- */

#define STATS_LINE_LEN TEXT_LINE_MAX /* the line length of stats_advice's interface */

/* One-line advice where the figures call for it, above the thresholds
 * documented in advice.c (and README.md, Statistics).  Writes up to max lines
 * (each at most STATS_LINE_LEN - 1 bytes) into lines; returns how many. */
int stats_advice(const segpool_stats_t *s, char lines[][STATS_LINE_LEN], int max);

/* a + b, stuck at UINT64_MAX rather than wrapping */
static inline uint64_t stats_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

/* Requests served by glibc, all reasons. */
static inline uint64_t stats_fallbacks(const segpool_stats_t *s) {
    return stats_add(stats_add(s->fallback_too_large, s->fallback_aligned),
                     stats_add(s->fallback_exhausted, s->fallback_other));
}

/* ---- The snapshot (stats.c) ----------------------------------------------- */

/* Note the start time (wall and monotonic clocks); called once by pool_init. */
void stats_start(void);

/* The pool's committed bytes and the bytes of its live blocks, cheaper than
 * a snapshot (no /proc read): for mallinfo. */
void stats_pool_bytes(size_t *committed, size_t *in_use);

/* ---- Output (stats_output.c) ---------------------------------------------- */

/* The longest statistics path once "%p" is expanded: SEGSHIM_STATS's
 * longest value with room for a dozen pids. */
#define STATS_PATH_MAX (CONFIG_PATH_MAX + 64)

/* pattern with every "%p" replaced by pid, into out (len bytes).  0, or -1
 * when it does not fit: a path is never cut short. */
int stats_path_expand(const char *pattern, long pid, char *out, size_t len);

/* Open path for writing the statistics: a new file (O_CREAT | O_EXCL |
 * O_NOFOLLOW), or an existing regular file of this user with one link,
 * truncated.  Anything else (a symbolic link, a FIFO, another user's file) is
 * refused.  Returns the fd, or -1 with either *err an errno value or *why a
 * reason in words. */
int stats_open_output(const char *path, int *err, const char **why);

/* SEGSHIM_STATS at exit: the table on stderr, or JSON at the path. */
void stats_exit_report(void);

/* Install the SEGSHIM_STATS_SIGNAL handler (which only sets a flag); called
 * once by pool_init when the option is set. */
void stats_signal_install(int signo);

/* The statistics were asked for by the signal: write them now.  Only from a
 * safe point (no allocator lock held), through stats_poll. */
void stats_poll_slow(void);

extern _Atomic int stats_requested __attribute__((visibility("hidden")));

/* The safe-point hook of the slow paths: one relaxed load when no signal
 * came. */
static inline void stats_poll(void) {
    if (__builtin_expect(atomic_load_explicit(&stats_requested, memory_order_relaxed) != 0, 0)) stats_poll_slow();
}

#endif /* SEGPOOL_STATS_H */
