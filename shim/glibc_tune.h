/*
 * glibc_tune.h - glibc's malloc knobs as the shim sets them at start-up, and
 * the bytes freed to and held in glibc that decide whether malloc_trim
 * reaches it (see glibc_tune.c for what is set and why).
 */
#ifndef SEGSHIM_GLIBC_TUNE_H
#define SEGSHIM_GLIBC_TUNE_H

#include <stddef.h>

/* Once, before the shim's first request to glibc: mallopt for each knob the
 * user did not set in glibc's environment, unless a finite RLIMIT_DATA or
 * RLIMIT_AS is in force.  Later calls return at once. */
void glibc_tune_init(void);
int glibc_tune_ready(void);

/* glibc failed a request under a memory limit: the knobs the shim raised go
 * back to glibc's default values.  Nonzero when they did (a retry may
 * succeed: large blocks are mmapped and given back whole again). */
int glibc_tune_limit_reached(void);

/* bytes were given back to glibc (a free, a realloc that moved or shrank). */
void glibc_tune_note_freed(size_t bytes);
/* bytes were taken from glibc (an allocation, a realloc that moved or grew). */
void glibc_tune_note_taken(size_t bytes);

/* Whether glibc's malloc_trim is worth calling now; when it is, the count of
 * freed bytes starts again from zero. */
int glibc_tune_trim_due(void);

#endif
