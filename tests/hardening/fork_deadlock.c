/*
 * fork_deadlock.c - case 12 of issue 9: fork must not deadlock.
 *   signal  a single-threaded program forks in a loop while SIGALRM (an
 *           interval timer) and SIGUSR1 (sent by a helper process) handlers
 *           fork too, so that a handler's fork lands inside the main
 *           thread's fork (glibc's tst-mallocfork);
 *   stdio   one thread forks in a loop, one calls fflush(NULL) in a loop,
 *           two read long lines with getline (glibc bug 19431,
 *           tst-malloc-fork-deadlock): atfork handlers that take the
 *           allocator's locks before stdio's list lock deadlock here.
 * Each runs for a few seconds in a child that a watchdog kills after 30 s.
 *
 * Usage: fork_deadlock shim|glibc signal|stdio
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

enum { TIMEOUT_S = 30, READERS = 2 };
#define RUN_SECONDS 3.0

/* fork, the child leaving at once; the parent reaps it. */
static void fk_fork_and_reap(void) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
}

static volatile sig_atomic_t fk_handler_forks, fk_loop_forks;

/* At most two handler forks per fork of the main loop: where a fork takes
 * longer than the signals' interval (a slow virtual machine), unbounded
 * handlers would fork back to back and the loop would never finish one (a
 * livelock of the test, under glibc too, not the deadlock it looks for). */
static void fk_handler(int sig) {
    (void)sig;
    if (fk_handler_forks > 2 * fk_loop_forks + 2) return;
    int saved = errno;
    fk_handler_forks++;
    fk_fork_and_reap();
    errno = saved;
}

static int fk_signal(void *unused) {
    (void)unused;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fk_handler;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    free(malloc(100)); /* the allocator is set up and has its atfork handlers */
    pid_t me = getpid(), sender = fork();
    if (sender == 0) {
        while (kill(me, SIGUSR1) == 0) usleep(2000);
        _exit(0);
    }
    /* Not more often: a fork takes a few hundred microseconds, and the main
     * loop must still run for the handlers to land inside its forks. */
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    double end = hardening_now() + RUN_SECONDS;
    long forks = 0;
    while (hardening_now() < end) {
        fk_fork_and_reap();
        free(malloc(1000 + (size_t)(forks % 3000)));
        forks++;
        fk_loop_forks = (sig_atomic_t)forks;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    kill(sender, SIGKILL);
    waitpid(sender, NULL, 0);
    printf("%ld forks in the loop, %d from signal handlers\n", forks, (int)fk_handler_forks);
    return 0;
}

/* --- stdio: forker, flusher, readers --- */

static double fk_end;

static void *fk_forker(void *unused) {
    (void)unused;
    long n = 0;
    while (hardening_now() < fk_end) fk_fork_and_reap(), n++;
    return (void *)n;
}

static void *fk_flusher(void *unused) {
    (void)unused;
    while (hardening_now() < fk_end) fflush(NULL);
    return NULL;
}

/* A temporary file of lines from 1 KiB to about 200 KiB (past the pool's
 * segment size too), read with getline into a fresh buffer each time, so
 * that malloc and realloc run while the FILE's lock is held. */
static void *fk_reader(void *arg) {
    FILE *f = tmpfile();
    if (!f) abort();
    unsigned seed = (unsigned)(size_t)arg * 7919u + 1;
    for (int i = 0; i < 64; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = 1024 + seed % (200 << 10);
        for (size_t k = 0; k < len; k++) putc('a' + (int)(k % 26), f);
        putc('\n', f);
    }
    rewind(f);
    long lines = 0;
    while (hardening_now() < fk_end) {
        char *line = NULL;
        size_t cap = 0;
        if (getline(&line, &cap, f) < 0) rewind(f);
        else lines++;
        free(line);
    }
    fclose(f);
    return (void *)lines;
}

static int fk_stdio(void *unused) {
    (void)unused;
    fk_end = hardening_now() + RUN_SECONDS;
    pthread_t forker, flusher, reader[READERS];
    pthread_create(&forker, NULL, fk_forker, NULL);
    pthread_create(&flusher, NULL, fk_flusher, NULL);
    for (int i = 0; i < READERS; i++) pthread_create(&reader[i], NULL, fk_reader, (void *)(size_t)i);
    void *forks, *lines;
    pthread_join(forker, &forks);
    pthread_join(flusher, NULL);
    long total = 0;
    for (int i = 0; i < READERS; i++) pthread_join(reader[i], &lines), total += (long)lines;
    printf("%ld forks, %ld long lines read, with fflush(NULL) throughout\n", (long)forks, total);
    return 0;
}

int main(int argc, char **argv) {
    hardening_mode_shim(argc, argv);
    int stdio = argc > 2 && strcmp(argv[2], "stdio") == 0;
    const char *what = stdio ? "fork with fflush and getline in other threads" : "fork from signal handlers during fork";
    hardening_result_t res;
    hardening_run(what, stdio ? fk_stdio : fk_signal, NULL, TIMEOUT_S, &res);
    return hardening_expect_exit0(what, &res) ? 0 : 1;
}
