/*
 * hardening.c - the supervised child and process readings shared by the
 * hardening tests (see hardening.h).
 *
 * The watchdog lives in the parent, not in the child under test: a child
 * that hangs inside the allocator may hold locks or block signals, so only
 * another process can be trusted to notice and kill it.  The parent also
 * sets alarm() as a last resort, should its own loop ever stall.
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int hardening_mode_shim(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "shim") != 0 && strcmp(argv[1], "glibc") != 0)) {
        fprintf(stderr, "usage: %s shim|glibc [case]\n", argc > 0 ? argv[0] : "test");
        exit(2);
    }
    int shim = strcmp(argv[1], "shim") == 0;
    int loaded = dlsym(RTLD_DEFAULT, "segshim_stats_print") != NULL;
    if (shim && !loaded) {
        fprintf(stderr, "FAIL: mode shim but libsegshim.so is not loaded (LD_PRELOAD=%s)\n",
                getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
        exit(1);
    }
    if (!shim && loaded) {
        fprintf(stderr, "FAIL: mode glibc but libsegshim.so is loaded\n");
        exit(1);
    }
    return shim;
}

double hardening_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

long hardening_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

void hardening_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
    exit(HARDENING_SKIP);
}

/* Child side: own process group (so the watchdog can kill grandchildren),
 * stderr into the pipe, stdout unbuffered-safe, then the test body. */
static void hardening_child(int pipe_w, int (*fn)(void *), void *arg) {
    setpgid(0, 0);
    dup2(pipe_w, STDERR_FILENO);
    close(pipe_w);
    setvbuf(stderr, NULL, _IONBF, 0);
    int rc = fn(arg);
    fflush(stdout);
    _exit(rc);
}

/* Append what the pipe holds to res->err and echo it; 0 at end of file. */
static int hardening_drain(int fd, hardening_result_t *res, size_t *len) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return n < 0 && (errno == EAGAIN || errno == EINTR) ? 1 : 0;
    size_t room = sizeof res->err - 1 - *len;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(res->err + *len, buf, take);
    *len += take;
    res->err[*len] = '\0';
    if (write(STDERR_FILENO, buf, (size_t)n) < 0) { /* the echo is only for the log */ }
    return 1;
}

void hardening_run(const char *what, int (*fn)(void *), void *arg, unsigned timeout_s,
                   hardening_result_t *res) {
    memset(res, 0, sizeof *res);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        hardening_child(fds[1], fn, arg);
    }
    close(fds[1]);
    setpgid(pid, pid); /* also from here: no race with the child's own call */
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    alarm(timeout_s + 30); /* last resort: this loop itself stalled */
    double deadline = hardening_now() + timeout_s;
    size_t len = 0;
    int open = 1, reaped = 0;
    while (!reaped) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (open && poll(&p, 1, 20) > 0) open = hardening_drain(fds[0], res, &len);
        else if (!open) usleep(20000);
        pid_t w = waitpid(pid, &res->status, WNOHANG);
        if (w == pid) {
            reaped = 1;
        } else if (hardening_now() > deadline) {
            res->hung = 1;
            fprintf(stderr, "FAIL: %s: still running after %u s (a hang); killing it\n", what, timeout_s);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &res->status, 0);
            reaped = 1;
        }
    }
    while (open && hardening_drain(fds[0], res, &len) && len < sizeof res->err - 1) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (poll(&p, 1, 0) <= 0) break; /* a grandchild may still hold the pipe */
    }
    kill(-pid, SIGKILL); /* grandchildren the test left behind */
    alarm(0);
    close(fds[0]);
}

const char *hardening_describe(const hardening_result_t *res, char *buf, size_t len) {
    if (res->hung) snprintf(buf, len, "hung (killed by the watchdog)");
    else if (WIFEXITED(res->status)) snprintf(buf, len, "exited %d", WEXITSTATUS(res->status));
    else if (WIFSIGNALED(res->status)) snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(res->status),
                                                strsignal(WTERMSIG(res->status)));
    else snprintf(buf, len, "wait status 0x%x", (unsigned)res->status);
    return buf;
}

int hardening_expect_exit0(const char *what, const hardening_result_t *res) {
    if (!res->hung && WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0) return 1;
    char d[128];
    fprintf(stderr, "FAIL: %s: expected exit 0, %s\n", what, hardening_describe(res, d, sizeof d));
    return 0;
}

static int hardening_aborted(const hardening_result_t *res) {
    return !res->hung && WIFSIGNALED(res->status) && WTERMSIG(res->status) == SIGABRT;
}

int hardening_expect_abort(const char *what, const hardening_result_t *res, int shim, const char *prefix) {
    char d[128];
    if (!hardening_aborted(res)) {
        fprintf(stderr, "FAIL: %s: expected SIGABRT%s%s, %s\n", what, shim ? " with " : "",
                shim ? prefix : "", hardening_describe(res, d, sizeof d));
        return 0;
    }
    if (shim && !strstr(res->err, prefix)) {
        fprintf(stderr, "FAIL: %s: aborted, but stderr lacks \"%s\"\n", what, prefix);
        return 0;
    }
    return 1;
}

int hardening_expect_abort_or_exit0(const char *what, const hardening_result_t *res, int shim,
                                    const char *prefix) {
    if (!res->hung && WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0) return 1;
    return hardening_expect_abort(what, res, shim, prefix);
}

int hardening_report(const char *what, const hardening_result_t *res, int ok) {
    char d[128];
    printf("%s: %s -> %s\n", what, hardening_describe(res, d, sizeof d), ok ? "ok" : "FAIL");
    return ok;
}
