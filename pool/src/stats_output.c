/*
 * stats_output.c - where the statistics go: SEGSHIM_STATS at exit, and the
 * statistics of a running process on SEGSHIM_STATS_SIGNAL.
 *
 * Owns: stats_requested (the signal's flag).
 *
 * The file: SEGSHIM_STATS's path with each "%p" replaced by the pid (so
 * that every process of a program that forks writes its own), relative to
 * the working directory when it does not start with '/'.  Its directory is
 * often shared (/tmp), so the file is opened without following a symbolic
 * link and a file this process did not create is truncated only when it is
 * safe to (stats_open_output).  Any failure gives one line naming the path
 * and the reason, and the table goes to stderr instead.
 *
 * The signal: its handler only sets stats_requested.  The figures are
 * written at the next safe point (stats_poll, called from the allocator's
 * slow paths where no allocator lock is held: the shim's fallback malloc and
 * segpool_collect), never from the handler, which may have interrupted the
 * allocator itself.  A program that stops allocating writes nothing until it
 * allocates again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "stats.h"
#include "text.h"

_Atomic int stats_requested;

int stats_path_expand(const char *pattern, long pid, char *out, size_t len) {
    text_t t;
    text_init(&t, out, len);
    for (const char *c = pattern; *c != '\0'; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            text_i64(&t, pid);
            c++;
        } else {
            text_char(&t, *c);
        }
    }
    return t.truncated || len == 0 ? -1 : 0;
}

int stats_open_output(const char *path, int *err, const char **why) {
    *err = 0;
    *why = NULL;
    /* A new file: O_EXCL fails on anything already there, a dangling
     * symbolic link included. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    if (errno != EEXIST) {
        *err = errno;
        return -1;
    }
    /* It exists.  Rewrite it only if it is a regular file of this user with
     * no other name: the output of an earlier run, or of an earlier signal.
     * A symbolic link or another user's file is what an attacker plants; a
     * second hard link may be another file of ours.  O_NONBLOCK: a FIFO
     * must not block the open. */
    fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP)
            *why = "it is a symbolic link (not followed)";
        else
            *err = errno;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        *err = errno;
    else if (!S_ISREG(st.st_mode))
        *why = "it exists and is not a regular file";
    else if (st.st_uid != geteuid())
        *why = "it exists and belongs to another user";
    else if (st.st_nlink != 1)
        *why = "it exists and has other hard links";
    else if (ftruncate(fd, 0) != 0)
        *err = errno;
    if (*err == 0 && *why == NULL) return fd;
    close(fd);
    return -1;
}

/* "segshim: SEGSHIM_STATS: cannot write PATH: REASON; statistics on stderr" */
static void stats_output_error(const char *path, int err, const char *why) {
    char line[CONFIG_PATH_MAX * 2 + 160];
    text_t t;
    text_init(&t, line, sizeof(line) - 1); /* room for the '\n' */
    text_str(&t, "segshim: SEGSHIM_STATS: cannot write ");
    text_printable(&t, path, strlen(path), CONFIG_PATH_MAX * 2);
    text_str(&t, ": ");
    if (why != NULL)
        text_str(&t, why);
    else
        text_errno(&t, err);
    text_str(&t, "; statistics on stderr");
    line[t.len++] = '\n';
    (void)text_write_all(2, line, t.len);
}

/* JSON at the path, or the table on stderr when that fails. */
static void stats_write_path(void) {
    char path[STATS_PATH_MAX];
    int err = 0;
    const char *why = NULL;
    int fd = -1;
    if (stats_path_expand(pool.config.stats_path, (long)getpid(), path, sizeof(path)) != 0) {
        why = "the path is too long once %p is expanded";
        memcpy(path, pool.config.stats_path, strlen(pool.config.stats_path) + 1);
    } else {
        fd = stats_open_output(path, &err, &why);
    }
    if (fd >= 0) {
        int rc = segpool_stats_print(fd, 1);
        err = errno;
        close(fd);
        if (rc == 0) return;
    }
    stats_output_error(path, err, why);
    segpool_stats_print(2, 0);
}

/* SEGSHIM_STATS's destination: a path, or stderr for 1 (and for 0 when the
 * signal asked). */
static void stats_emit(void) {
    int saved = errno;
    if (pool.config.stats == CONFIG_STATS_PATH)
        stats_write_path();
    else
        segpool_stats_print(2, 0);
    errno = saved;
}

void stats_exit_report(void) {
    int state = atomic_load(&pool.state);
    if ((state != POOL_READY && state != POOL_DISABLED) || pool.config.stats == CONFIG_STATS_OFF) return;
    stats_emit();
}

static void stats_signal_handler(int signo) {
    (void)signo;
    atomic_store_explicit(&stats_requested, 1, memory_order_relaxed);
}

void stats_signal_install(int signo) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = stats_signal_handler;
    sa.sa_flags = SA_RESTART; /* the program's own system calls go on */
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, NULL) != 0) {
        static const char msg[] = "segshim: SEGSHIM_STATS_SIGNAL: the handler could not be installed\n";
        (void)text_write_all(2, msg, sizeof(msg) - 1);
    }
}

void stats_poll_slow(void) {
    /* One writer per signal: the first thread to reach a safe point. */
    if (atomic_exchange_explicit(&stats_requested, 0, memory_order_acq_rel) == 0) return;
    if (!pool_ready()) return;
    stats_emit();
}
