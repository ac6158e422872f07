/*
 * cgroup_memory.c - case 8 of issue 9: in a 200 MB memory cgroup, 150 MiB
 * of small blocks freed and then 150 MiB of 1 MiB blocks must fit: memory
 * the allocator freed has to go back to the kernel soon enough that the
 * cgroup does not OOM-kill the process.
 *
 * The test makes a child group under its own cgroup (v2 with the memory
 * controller enabled for children, or the v1 memory hierarchy), limits it
 * to 200 MB with no swap, and runs the workload in a child moved into it.
 * Without a writable memory cgroup it exits 77 and says why.
 *
 * Usage: cgroup_memory shim|glibc
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SMALL = 1024, LARGE = 1 << 20, TIMEOUT_S = 60 };
#define CG_LIMIT "200000000"
#define CG_PHASE_BYTES ((size_t)150 << 20)

static char cg_dir[PATH_MAX];
static int cg_v2;

/* Mount point of the cgroup2 hierarchy (v2) or of the v1 one carrying the
 * memory controller; 0 when none. */
static int cg_find_mount(int v2, char *mnt, size_t len) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char point[512], type[64], src[256], opts[512] = "";
        const char *sep = strstr(line, " - ");
        if (!sep || sscanf(line, "%*s %*s %*s %*s %511s", point) != 1) continue;
        if (sscanf(sep + 3, "%63s %255s %511s", type, src, opts) < 2) continue;
        if (v2 ? strcmp(type, "cgroup2") == 0
               : strcmp(type, "cgroup") == 0 && strstr(opts, "memory") != NULL) {
            snprintf(mnt, len, "%s", point);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* This process's path in the hierarchy: "0::/x" (v2) or "N:...memory...:/x". */
static int cg_own_path(int v2, char *path, size_t len) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        int match = v2 ? strcmp(line, "0:") == 0 && c1[1] == '\0' : strstr(c1 + 1, "memory") != NULL;
        if (match) {
            snprintf(path, len, "%s", c2 + 1);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

static int cg_write(const char *file, const char *value) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", cg_dir, file);
    FILE *f = fopen(p, "w");
    if (!f) return errno;
    int rc = fputs(value, f) < 0 ? errno : 0;
    if (fclose(f) != 0 && !rc) rc = errno;
    return rc;
}

static int cg_exists(const char *file) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", cg_dir, file);
    return access(p, F_OK) == 0;
}

/* cg_dir/file contains word. */
static int cg_file_has(const char *file, const char *word) {
    char p[PATH_MAX + 64], buf[512] = "";
    snprintf(p, sizeof p, "%s/%s", cg_dir, file);
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    int has = fgets(buf, sizeof buf, f) && strstr(buf, word);
    fclose(f);
    return has;
}

/* Make the 200 MB group; a reason on failure. */
static const char *cg_create(void) {
    static char reason[PATH_MAX + 128];
    char mnt[512], path[512];
    int have = 0;
    for (int v2 = 1; v2 >= 0 && !have; v2--)
        if (cg_find_mount(v2, mnt, sizeof mnt) && cg_own_path(v2, path, sizeof path)) {
            snprintf(cg_dir, sizeof cg_dir, "%s%s", mnt, strcmp(path, "/") ? path : "");
            /* v2: memory must already be enabled for children; not ours to change. */
            if (v2 && !cg_file_has("cgroup.subtree_control", "memory")) continue;
            size_t len = strlen(cg_dir);
            snprintf(cg_dir + len, sizeof cg_dir - len, "/segshim-hardening-%d", (int)getpid());
            cg_v2 = v2;
            have = mkdir(cg_dir, 0755) == 0;
        }
    if (!have) {
        snprintf(reason, sizeof reason, "no writable memory cgroup (v2 with memory delegated, or v1 memory)");
        return reason;
    }
    int e = cg_write(cg_v2 ? "memory.max" : "memory.limit_in_bytes", CG_LIMIT);
    if (e) {
        snprintf(reason, sizeof reason, "cannot set the limit in %s: %s", cg_dir, strerror(e));
        rmdir(cg_dir);
        return reason;
    }
    /* No swap: an OOM must be an OOM, not a slow swap-out. */
    if (cg_v2 && cg_exists("memory.swap.max")) cg_write("memory.swap.max", "0");
    if (!cg_v2 && cg_exists("memory.memsw.limit_in_bytes")) cg_write("memory.memsw.limit_in_bytes", CG_LIMIT);
    if (!cg_v2 && cg_exists("memory.swappiness")) cg_write("memory.swappiness", "0");
    return NULL;
}

static void cg_remove(void) {
    for (int i = 0; i < 50 && rmdir(cg_dir) != 0 && errno == EBUSY; i++) usleep(20000);
}

static int cg_phase(size_t size, void **slots) {
    size_t n = CG_PHASE_BYTES / size;
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "FAIL: malloc(%zu) failed after %zu MiB\n", size, i * size >> 20);
            return 1;
        }
        memset(p, 1, size);
        slots[i] = p;
    }
    for (size_t i = 0; i < n; i++) free(slots[i]);
    return 0;
}

static int cg_body(void *unused) {
    (void)unused;
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    int e = cg_write("cgroup.procs", pid);
    if (e) {
        fprintf(stderr, "cannot join %s: %s\n", cg_dir, strerror(e));
        return 3;
    }
    void **slots = malloc(CG_PHASE_BYTES / SMALL * sizeof *slots);
    if (!slots || cg_phase(SMALL, slots) || cg_phase(LARGE, slots)) return 1;
    printf("150 MiB of small blocks freed, then 150 MiB of 1 MiB blocks, in a 200 MB cgroup: ok\n");
    return 0;
}

int main(int argc, char **argv) {
    hardening_mode_shim(argc, argv);
    const char *why = cg_create();
    if (why) hardening_skip("%s", why);
    hardening_result_t res;
    hardening_run("memory cgroup", cg_body, NULL, TIMEOUT_S, &res);
    cg_remove();
    if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 3) hardening_skip("cannot move a process into the group");
    if (WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGKILL && !res.hung)
        fprintf(stderr, "FAIL: killed by SIGKILL in a 200 MB cgroup: the OOM killer\n");
    return hardening_expect_exit0("memory cgroup 200 MB", &res) ? 0 : 1;
}
