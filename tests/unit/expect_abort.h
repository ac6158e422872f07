/*
 * expect_abort.h - run a piece of a test in a forked child whose stderr is
 * captured, and check that it aborts with the message the README documents
 * (not merely any SIGABRT).
 */
#ifndef TESTS_EXPECT_ABORT_H
#define TESTS_EXPECT_ABORT_H

#include <check.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXPECT_ABORT_OUT 8192

/* Run fn(arg) in a child; its stderr goes to out (NUL-terminated).
 * Returns the child's wait status. */
static inline int expect_run_child(void (*fn)(void *), void *arg, char *out, size_t len) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t have = 0;
    char spill[512];
    for (;;) { /* read to the end, keeping the first len - 1 bytes */
        int room = have < len - 1;
        ssize_t n = read(fds[0], room ? out + have : spill, room ? len - 1 - have : sizeof spill);
        if (n <= 0) break;
        if (room) have += (size_t)n;
    }
    out[have] = '\0';
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* fn(arg) must abort (SIGABRT) and print a line starting with want. */
static inline void expect_abort(void (*fn)(void *), void *arg, const char *want) {
    char out[EXPECT_ABORT_OUT];
    int status = expect_run_child(fn, arg, out, sizeof out);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "expected an abort with \"%s\"; status %#x, stderr: %s", want, status, out);
    const char *line = strstr(out, want);
    ck_assert_msg(line != NULL && (line == out || line[-1] == '\n'), "expected \"%s\" on stderr, got: %s", want,
                  out);
}

#endif /* TESTS_EXPECT_ABORT_H */
