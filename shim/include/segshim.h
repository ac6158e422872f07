/*
 * segshim.h - what libsegshim.so offers a program besides the malloc family.
 *
 * The shim is usually not linked but preloaded (LD_PRELOAD=libsegshim.so), so
 * the functions here are declared weak: a program includes this header, links
 * as usual (without -lsegshim), and checks the function's address before the
 * call.  It is non-NULL exactly when the shim is loaded:
 *
 *     #include <segshim.h>
 *     if (segshim_stats_print != NULL)
 *         segshim_stats_print(2, 0);      // the table on stderr
 *
 * Define SEGSHIM_NO_WEAK before the include to get ordinary declarations
 * (for a program linked with -lsegshim).
 */
#ifndef SEGSHIM_H
#define SEGSHIM_H

#include "segpool_version.h" /* the version the shim was built as */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(SEGSHIM_NO_WEAK)
#define SEGSHIM_WEAK __attribute__((weak))
#else
#define SEGSHIM_WEAK
#endif

/* Write the pool's statistics to fd: the text table (json == 0) or the JSON
 * document that SEGSHIM_STATS=path writes at exit.  Allocates nothing, so it
 * may be called from any point of the program.  Returns 0, or -1 when the
 * write failed. */
SEGSHIM_WEAK int segshim_stats_print(int fd, int json);

#ifdef __cplusplus
}
#endif

#endif /* SEGSHIM_H */
