/*
 * limits_common.h - running a test program's child mode under a resource
 * limit, with the shim or without it, so that each test compares segshim
 * with glibc in the same run on the same machine.
 *
 * The tests are started with LD_PRELOAD=libsegshim.so (CTest's ENVIRONMENT);
 * limits_shim() remembers that path and limits_run() starts a child with
 * LD_PRELOAD set to it (shim) or removed (glibc).  The limit is set with
 * setrlimit in the forked child before exec, so that the shim starts under it
 * as it would under `ulimit -v`.
 */
#ifndef LIMITS_COMMON_H
#define LIMITS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* first: the tests include this before anything else */
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define LIMITS_MIB ((uint64_t)1 << 20)
#define LIMITS_GIB ((uint64_t)1 << 30)

/* The shim's path from LD_PRELOAD; the test is skipped (77) without it. */
static const char *limits_shim(void) {
    static char path[4096];
    if (!path[0]) {
        const char *p = getenv("LD_PRELOAD");
        if (!p || !*p || strlen(p) >= sizeof path) {
            fprintf(stderr, "SKIP: run this test with LD_PRELOAD=libsegshim.so\n");
            exit(77);
        }
        strcpy(path, p);
    }
    return path;
}

/* Run argv with resource (RLIMIT_AS, RLIMIT_DATA) = limit (0: unchanged),
 * under the shim when shim is nonzero; the child's stdout goes to out
 * (NUL-terminated).  Returns the exit status, or 128 + the signal that
 * killed it. */
static inline int limits_run_with(int shim, int resource, uint64_t limit, char *const argv[], char *out, size_t out_len) {
    const char *lib = limits_shim();
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        if (shim) setenv("LD_PRELOAD", lib, 1);
        else unsetenv("LD_PRELOAD");
        if (limit) {
            struct rlimit rl = {limit, limit};
            if (setrlimit(resource, &rl) != 0) _exit(3);
        }
        execv("/proc/self/exe", argv);
        _exit(4);
    }
    close(fds[1]);
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + have, out_len - 1 - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        if (have == out_len - 1) have = 0; /* keep only the tail of a flood */
    }
    out[have] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The same with RLIMIT_AS = as_limit. */
static inline int limits_run(int shim, uint64_t as_limit, char *const argv[], char *out, size_t out_len) {
    return limits_run_with(shim, RLIMIT_AS, as_limit, argv, out, out_len);
}

#endif /* LIMITS_COMMON_H */
