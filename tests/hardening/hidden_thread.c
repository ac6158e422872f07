/*
 * hidden_thread.c - case 2 of issue 9: the allocator starts no thread of its
 * own.  A program that frees whole regions must stay single-threaded:
 *   tasks    /proc/self/task holds exactly one entry after tens of MiB were
 *            allocated and freed (and again after the decay period);
 *   unshare  unshare(CLONE_NEWUSER), which the kernel refuses (EINVAL) to a
 *            multi-threaded process, still works after that;
 *   seccomp  a filter that kills the process on clone/clone3, installed
 *            early, survives a loop of allocating and freeing many MiB.
 *
 * Usage: hidden_thread shim|glibc tasks|unshare|seccomp
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <dirent.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { BLOCK = 1024, TIMEOUT_S = 60 };

/* Allocate mib MiB in small blocks, write them, free them all: whole
 * regions become free. */
static void hidden_churn(size_t mib) {
    size_t n = (mib << 20) / BLOCK;
    char **p = malloc(n * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) {
        p[i] = malloc(BLOCK);
        if (!p[i]) abort();
        memset(p[i], 1, BLOCK);
    }
    for (size_t i = 0; i < n; i++) free(p[i]);
    free(p);
}

static int hidden_task_count(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int hidden_expect_one_task(const char *when) {
    int n = hidden_task_count();
    if (n == 1) return 1;
    fprintf(stderr, "FAIL: %s: /proc/self/task has %d entries, expected 1 (a hidden thread)\n", when, n);
    return 0;
}

static int hidden_tasks(void *unused) {
    (void)unused;
    int ok = hidden_expect_one_task("before allocating");
    hidden_churn(48);
    ok &= hidden_expect_one_task("after freeing 48 MiB");
    usleep(1200 * 1000); /* past the default decay (1 s) */
    hidden_churn(16);
    ok &= hidden_expect_one_task("after 1.2 s idle and 16 MiB more");
    return ok ? 0 : 1;
}

/* unshare in this process; the errno, or 0. */
static int hidden_unshare_body(void *churn) {
    if (churn) {
        hidden_churn(48);
        usleep(1200 * 1000);
        hidden_churn(16);
    }
    if (unshare(CLONE_NEWUSER) != 0) {
        int e = errno;
        fprintf(stderr, "unshare(CLONE_NEWUSER): %s\n", strerror(e));
        return e == EINVAL ? 3 : 4;
    }
    return 0;
}

static int hidden_unshare(void) {
    hardening_result_t res;
    /* Baseline: before any churn, can this process unshare at all? */
    hardening_run("unshare baseline", hidden_unshare_body, NULL, TIMEOUT_S, &res);
    if (!WIFEXITED(res.status) || WEXITSTATUS(res.status) != 0)
        hardening_skip("unshare(CLONE_NEWUSER) fails here before any allocation (%s)", res.err);
    hardening_run("unshare after churn", hidden_unshare_body, (void *)1, TIMEOUT_S, &res);
    if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 3)
        fprintf(stderr, "FAIL: unshare(CLONE_NEWUSER) gave EINVAL after freeing memory: "
                        "the process is no longer single-threaded\n");
    return hardening_expect_exit0("unshare after churn", &res) ? 0 : 1;
}

/* Kill the process on clone or clone3 (x86-64 only; elsewhere allow all). */
static int hidden_install_seccomp(void) {
#ifdef __x86_64__
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 435 /* __NR_clone3 */, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return errno;
    return 0;
#else
    return ENOSYS;
#endif
}

static int hidden_seccomp_body(void *unused) {
    (void)unused;
    free(malloc(100)); /* the allocator is set up before the filter */
    int e = hidden_install_seccomp();
    if (e) {
        fprintf(stderr, "cannot install a seccomp filter: %s\n", strerror(e));
        return 5;
    }
    for (int i = 0; i < 12; i++) {
        hidden_churn(32);
        if (i == 5) usleep(1200 * 1000); /* past the default decay */
    }
    return 0;
}

static int hidden_seccomp(void) {
    hardening_result_t res;
    hardening_run("seccomp", hidden_seccomp_body, NULL, TIMEOUT_S, &res);
    if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 5)
        hardening_skip("seccomp filters unavailable here: %s", res.err);
    if (WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGSYS)
        fprintf(stderr, "FAIL: killed by SIGSYS: something called clone (a thread was started)\n");
    return hardening_expect_exit0("seccomp", &res) ? 0 : 1;
}

static int hidden_tasks_supervised(void) {
    hardening_result_t res;
    hardening_run("tasks", hidden_tasks, NULL, TIMEOUT_S, &res);
    return hardening_expect_exit0("tasks", &res) ? 0 : 1;
}

int main(int argc, char **argv) {
    hardening_mode_shim(argc, argv);
    const char *which = argc > 2 ? argv[2] : "tasks";
    if (strcmp(which, "unshare") == 0) return hidden_unshare();
    if (strcmp(which, "seccomp") == 0) return hidden_seccomp();
    return hidden_tasks_supervised();
}
