/*
 * hardening.h - what every hardening test shares: the run mode (under the
 * shim or plain glibc), a supervised child (its stderr captured, a watchdog
 * that kills it and reports a hang), and readings of the process (RSS, time).
 *
 * Every test program takes its mode as argv[1] ("shim" or "glibc") and,
 * where it has several cases, the case as argv[2].  In "shim" mode the
 * program checks that libsegshim.so is really loaded, so a broken
 * LD_PRELOAD cannot turn a shim test into a glibc one that passes.
 */
#ifndef HARDENING_H
#define HARDENING_H

#include <stddef.h>
#include <sys/types.h>

#define HARDENING_SKIP 77

/* Outcome of a supervised child. */
typedef struct hardening_result_s {
    int status;       /* as waitpid gives it; meaningless when hung */
    int hung;         /* the watchdog killed it */
    char err[16384];  /* its stderr (truncated), NUL-terminated */
} hardening_result_t;

/* Nonzero when the mode argument is "shim"; exits 2 on a bad argument and
 * fails when "shim" is asked and the shim is not loaded. */
int hardening_mode_shim(int argc, char **argv);

/* Run fn(arg) in a forked child (its own process group), its return value
 * being the exit status; capture its stderr (also echoed to ours, prefixed
 * with what) and kill the whole group after timeout_s seconds. */
void hardening_run(const char *what, int (*fn)(void *), void *arg, unsigned timeout_s,
                   hardening_result_t *res);

/* The child exited with status 0; else print why, naming what. */
int hardening_expect_exit0(const char *what, const hardening_result_t *res);

/* The child died of SIGABRT and, when shim is nonzero, its stderr holds
 * prefix (glibc's messages differ, so only the signal is checked there). */
int hardening_expect_abort(const char *what, const hardening_result_t *res, int shim,
                           const char *prefix);

/* The child died of SIGABRT with prefix on stderr (prefix checked under the
 * shim only), or exited 0: the two outcomes a check may choose between. */
int hardening_expect_abort_or_exit0(const char *what, const hardening_result_t *res, int shim,
                                    const char *prefix);

/* Print "what: <how the child ended> -> ok|FAIL" and return ok. */
int hardening_report(const char *what, const hardening_result_t *res, int ok);

/* One line describing a wait status ("exited 1", "killed by SIGSEGV"). */
const char *hardening_describe(const hardening_result_t *res, char *buf, size_t len);

/* VmRSS of this process in KiB, or -1. */
long hardening_rss_kib(void);

/* Monotonic seconds. */
double hardening_now(void);

/* Print "SKIP: reason" and exit 77. */
void hardening_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Hide a pointer's origin from the compiler, so that reads after free and
 * writes past a block (what these tests do on purpose) are not folded away
 * or warned about. */
static inline void *hardening_launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

#endif /* HARDENING_H */
