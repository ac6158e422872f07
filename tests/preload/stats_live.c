/*
 * stats_live.c - the statistics of a running process (SEGSHIM_STATS_SIGNAL),
 * and a small allocating program for stats_file_test.sh.
 *
 *   stats_live               the test: starts itself as a child under the
 *                            shim with SEGSHIM_STATS=DIR/live-%p.json and
 *                            SEGSHIM_STATS_SIGNAL=SIGUSR2, sends SIGUSR2 while
 *                            it runs, and checks the file appears with the
 *                            child's pid and name, twice; then kills the child
 *                            with SIGKILL (so no exit report can have written
 *                            the file) and checks SIGUSR2 never killed it.
 *   stats_live child FD      allocates until killed; writes one byte to FD
 *                            once its allocator is set up.
 *   stats_live alloc         allocates a little and exits 0.
 *
 * Run under LD_PRELOAD=libsegshim.so only.  Exit 0 when every check holds.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 20000

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Requests above the segment size reach the allocator's slow path every
 * time: the safe point where the statistics are written. */
static void churn(void) {
    void *p = malloc(64 * 1024);
    if (p == NULL) abort();
    memset(p, 1, 64);
    free(p);
    void *q = malloc(100);
    free(q);
}

static int child(int fd) {
    churn();
    if (write(fd, "r", 1) != 1) return 1;
    close(fd);
    for (long i = 0; i < 60L * 1000; i++) { /* a minute at most */
        churn();
        sleep_ms(1);
    }
    return 0;
}

/* The whole JSON object at path (it ends with "}\n"), in buf; 0 on time out. */
static int wait_json(const char *path, char *buf, size_t len) {
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            size_t n = fread(buf, 1, len - 1, f);
            fclose(f);
            buf[n] = '\0';
            if (n >= 2 && strcmp(buf + n - 2, "}\n") == 0) return 1;
        }
        sleep_ms(10);
    }
    return 0;
}

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "FAIL: %s%s%s\n", what, detail ? "\n" : "", detail ? detail : "");
    return 1;
}

/* Signal the child, wait for its file, check it names the child. */
static int dump_once(pid_t pid, const char *path, char *json, size_t len) {
    char want[64];
    if (kill(pid, SIGUSR2) != 0) return fail("kill(SIGUSR2)", strerror(errno));
    if (!wait_json(path, json, len)) return fail("no statistics file after SIGUSR2", path);
    snprintf(want, sizeof(want), "{\n  \"pid\": %d,\n", (int)pid);
    if (strstr(json, want) == NULL) return fail("the file does not start with the child's pid", json);
    if (strstr(json, "\"program\": \"stats_live\"") == NULL) return fail("the file lacks the program name", json);
    if (strstr(json, "\"elapsed_ms\": ") == NULL || strstr(json, "\"peak_rss\": ") == NULL)
        return fail("the file lacks elapsed_ms or peak_rss", json);
    return 0;
}

static int parent(const char *self) {
    static char json[256 * 1024];
    char dir[] = "/tmp/stats_live_XXXXXX", pattern[128], path[128], fdarg[16];
    int fds[2];
    if (dlsym(RTLD_DEFAULT, "segshim_stats_print") == NULL) return fail("not run under libsegshim.so", NULL);
    if (mkdtemp(dir) == NULL || pipe(fds) != 0) return fail("set-up", strerror(errno));
    snprintf(pattern, sizeof(pattern), "%s/live-%%p.json", dir);
    pid_t pid = fork();
    if (pid < 0) return fail("fork", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        setenv("SEGSHIM_STATS", pattern, 1);
        setenv("SEGSHIM_STATS_SIGNAL", "SIGUSR2", 1);
        snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
        execl(self, "stats_live", "child", fdarg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char ready;
    int rc = read(fds[0], &ready, 1) == 1 ? 0 : fail("the child did not start", NULL);
    snprintf(path, sizeof(path), "%s/live-%d.json", dir, (int)pid);
    if (rc == 0) rc = dump_once(pid, path, json, sizeof(json));
    /* again: a running program can be asked any number of times */
    if (rc == 0 && unlink(path) != 0) rc = fail("unlink", strerror(errno));
    if (rc == 0) rc = dump_once(pid, path, json, sizeof(json));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (rc == 0 && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        rc = fail("the child ended before SIGKILL (SIGUSR2 not handled?)", NULL);
    if (rc == 0) printf("stats_live: the running child wrote %s on SIGUSR2, twice\n", path);
    unlink(path);
    rmdir(dir);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "child") == 0) return child(atoi(argv[2]));
    if (argc == 2 && strcmp(argv[1], "alloc") == 0) {
        for (int i = 0; i < 100; i++) churn();
        return 0;
    }
    return parent("/proc/self/exe");
}
