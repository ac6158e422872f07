/*
 * stats.h - statistics: per-thread counters (in heap_t), the merged snapshot
 * (segpool_stats_t in segpool.h) and its text/JSON output.
 *
 * Nothing here allocates: output is formatted into a stack buffer and written
 * with write(2), so it is safe at exit and from inside the allocator.
 */
#ifndef SEGPOOL_STATS_H
#define SEGPOOL_STATS_H

#include "segpool.h"

/* Write *s to fd as a text table (json == 0) or as one JSON object (json != 0).
 * JSON keys are the field names of segpool_stats_t; arrays for the per-class
 * and size-bin figures; an "advice" array of strings.  Returns 0, or -1 when a
 * write failed.  Pure apart from write(2). */
int stats_write(int fd, const segpool_stats_t *s, int json);

/* One-line advice where the figures call for it, for example the pool was
 * exhausted, or most fallbacks were just above the segment size.  Writes up to
 * max lines (each at most line_len bytes) into lines; returns how many. */
int stats_advice(const segpool_stats_t *s, char lines[][160], int max);

#endif /* SEGPOOL_STATS_H */
