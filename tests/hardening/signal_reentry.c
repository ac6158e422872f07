/*
 * signal_reentry.c - case 15 of issue 9: a SIGALRM handler that calls
 * malloc while its thread is inside the allocator must not hang.  malloc is
 * not async-signal-safe, so the allowed outcomes are: the run completes, or
 * (under the shim) it aborts with "segshim: malloc(): re-entered from a
 * signal handler".  A hang is what fails; the watchdog kills the child after
 * 20 s and says so.
 *
 * The interrupted loop keeps slow paths frequent: blocks of 20-24 KiB (few
 * per slab) and of many distinct sizes, freed in a shuffled order; an
 * interval timer fires every 100 microseconds.
 *
 * Usage: signal_reentry shim|glibc
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define REENTRY_MSG "segshim: malloc(): re-entered from a signal handler"
#define RUN_SECONDS 8.0
enum { LIVE = 2048, TIMEOUT_S = 20 };

static volatile sig_atomic_t re_calls;

static void re_handler(int sig) {
    (void)sig;
    int saved = errno;
    /* 25-32 KiB: classes the interrupted loop never uses (so the handler
     * cannot land in the middle of a fast path of its own class, which no
     * allocator can detect cheaply), each holding few blocks per slab so
     * that the handler often needs the slow path and its locks too. */
    size_t size = 25600 + (size_t)(re_calls % 64) * 112;
    char *p = malloc(size), *q = malloc(size);
    if (p) p[0] = 1;
    if (q) q[0] = 1;
    free(p);
    free(q);
    re_calls++;
    errno = saved;
}

static size_t re_size(unsigned x) {
    return x % 2 ? 20480 + x % 4096 /* 20-24 KiB */ : 16 + x % 16000;
}

static int re_body(void *unused) {
    (void)unused;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = re_handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    static void *live[LIVE];
    struct itimerval it = {{0, 100}, {0, 100}};
    setitimer(ITIMER_REAL, &it, NULL);
    double end = hardening_now() + RUN_SECONDS;
    unsigned x = 12345;
    long pairs = 0;
    /* Waves: LIVE blocks (about 24 MiB, more than a thread keeps cached)
     * allocated, then freed in a shuffled order, so that segments keep going
     * to and from the shared pool under its lock. */
    while (hardening_now() < end) {
        for (int k = 0; k < LIVE; k++) {
            x = x * 1103515245u + 12345u;
            live[k] = malloc(re_size(x >> 4));
        }
        for (int k = 0; k < LIVE; k++, pairs++) {
            x = x * 1103515245u + 12345u;
            unsigned j = k + (x >> 8) % (LIVE - k);
            free(live[j]);
            live[j] = live[k];
        }
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("%ld pairs, %d mallocs from the handler, no hang\n", pairs, (int)re_calls);
    return 0;
}

int main(int argc, char **argv) {
    int shim = hardening_mode_shim(argc, argv);
    hardening_result_t res;
    hardening_run("malloc in a SIGALRM handler", re_body, NULL, TIMEOUT_S, &res);
    if (res.hung) return 1; /* already reported by the watchdog */
    if (!shim) return 0;    /* glibc may crash here: only a hang fails */
    return hardening_expect_abort_or_exit0("malloc in a SIGALRM handler", &res, 1, REENTRY_MSG) ? 0 : 1;
}
