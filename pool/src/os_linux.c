/*
 * os_linux.c - the OS layer on Linux (see os.h for the contract).
 *
 * Nothing here allocates: /proc and /sys files are read with open/read into
 * stack buffers.  Every function saves and restores errno, because the
 * allocator's callers (free in particular) must not see it change.
 */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

/* ---- Fault injection ------------------------------------------------------ */

static struct {
    atomic_int skip[OS_OP_COUNT];
    atomic_int fail[OS_OP_COUNT];
} os_faults;

void os_inject_failure(os_op_t op, int skip, int count) {
    atomic_store(&os_faults.skip[op], skip);
    atomic_store(&os_faults.fail[op], count);
}

void os_inject_reset(void) {
    for (int op = 0; op < OS_OP_COUNT; op++) os_inject_failure((os_op_t)op, 0, 0);
}

/* True when this call of op must fail.  Costs one load when nothing is set. */
static int os_injected(os_op_t op) {
    if (atomic_load_explicit(&os_faults.fail[op], memory_order_relaxed) <= 0) return 0;
    if (atomic_load(&os_faults.skip[op]) > 0) {
        atomic_fetch_sub(&os_faults.skip[op], 1);
        return 0;
    }
    return atomic_fetch_sub(&os_faults.fail[op], 1) > 0;
}

/* ---- Mappings -------------------------------------------------------------- */

void *os_reserve(size_t size, size_t align) {
    int saved = errno;
    void *result = NULL;
    if (os_injected(OS_RESERVE)) goto out;
    /* Over-reserve by align and trim both ends to get the alignment. */
    size_t span = size + align;
    if (span < size) goto out;
    uint8_t *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) goto out;
    uintptr_t aligned = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = aligned - (uintptr_t)p;
    size_t tail = span - head - size;
    if (head) munmap(p, head);
    if (tail) munmap((uint8_t *)aligned + size, tail);
    result = (void *)aligned;
out:
    errno = saved;
    return result;
}

int os_release(void *addr, size_t size) {
    int saved = errno;
    int rc = munmap(addr, size);
    errno = saved;
    return rc == 0 ? 0 : -1;
}

static int os_protect_rw(void *addr, size_t size) {
    int saved = errno;
    int rc = mprotect(addr, size, PROT_READ | PROT_WRITE);
    errno = saved;
    return rc == 0 ? 0 : -1;
}

int os_commit(void *addr, size_t size) { return os_injected(OS_COMMIT) ? -1 : os_protect_rw(addr, size); }

int os_commit_hugetlb(void *addr, size_t size) {
    int saved = errno, rc = -1;
    if (!os_injected(OS_HUGETLB)) {
        void *p = mmap(addr, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
        if (p == addr) {
            rc = 0;
        } else {
            /* A failed MAP_FIXED may have dropped the reservation: put it back. */
            mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
        }
    }
    errno = saved;
    return rc;
}

int os_advise_huge(void *addr, size_t size, int huge) {
    int saved = errno;
    int rc = (huge && os_injected(OS_ADVISE_HUGE)) ? -1
                                                    : madvise(addr, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    errno = saved;
    return rc == 0 ? 0 : -1;
}

/* A fresh inaccessible, uncharged mapping in place: the pages are freed and
 * the range stops counting against RLIMIT_DATA (MADV_DONTNEED would leave it
 * writable, and so charged, for ever). */
int os_purge(void *addr, size_t size) {
    int saved = errno, rc = -1;
    if (!os_injected(OS_PURGE)) {
        void *p = mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
        rc = p == addr ? 0 : -1;
    }
    errno = saved;
    return rc;
}

void os_touch(void *addr, size_t size) {
    int saved = errno;
#ifdef MADV_POPULATE_WRITE
    if (madvise(addr, size, MADV_POPULATE_WRITE) == 0) {
        errno = saved;
        return;
    }
#endif
    size_t page = os_page_size();
    for (size_t off = 0; off < size; off += page) ((volatile uint8_t *)addr)[off] = 0;
    errno = saved;
}

/* Metadata between two guard pages.  The kernel places mappings next to
 * each other, so without them a block glibc mmapped for the program (or any
 * mapping of its own) could end where a heap's or the side tables' pages
 * begin, and a linear overflow past its end would rewrite the pointers the
 * next malloc follows.  With them it faults at the first byte past the end
 * (and before the start, for an underflow).  The guards are PROT_NONE:
 * address space only, charged to neither RLIMIT_DATA nor memory. */
static size_t os_meta_span(size_t size) {
    size_t page = os_page_size();
    return ((size + page - 1) & ~(page - 1)) + 2 * page;
}

static void *os_map_meta(size_t size, int prot) {
    int saved = errno;
    void *p = NULL;
    size_t page = os_page_size(), span = os_meta_span(size);
    if (!os_injected(OS_META) && span > size) {
        uint8_t *g = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (g != MAP_FAILED) {
            if (mprotect(g + page, span - 2 * page, prot) == 0) p = g + page;
            else munmap(g, span);
        }
    }
    errno = saved;
    return p;
}

void *os_alloc_meta(size_t size) { return os_map_meta(size, PROT_READ | PROT_WRITE); }

void *os_reserve_meta(size_t size) { return os_map_meta(size, PROT_READ); }

void os_free_meta(void *addr, size_t size) {
    if (addr) os_release((uint8_t *)addr - os_page_size(), os_meta_span(size));
}

int os_commit_meta(void *addr, size_t size) {
    uintptr_t page = os_page_size(), start = (uintptr_t)addr & ~(page - 1);
    uintptr_t end = ((uintptr_t)addr + size + page - 1) & ~(page - 1);
    return os_protect_rw((void *)start, end - start);
}

void os_release_meta(void *addr, size_t size) {
    uintptr_t page = os_page_size(), start = ((uintptr_t)addr + page - 1) & ~(page - 1);
    uintptr_t end = (uintptr_t)addr + size;
    if (start < end) os_release((void *)start, end - start); /* munmap takes the last part-page */
}

/* ---- Facts ------------------------------------------------------------------ */

size_t os_page_size(void) {
    static size_t page; /* threads may race to fill it, with the same value */
    size_t p = __atomic_load_n(&page, __ATOMIC_RELAXED);
    if (!p) {
        long v = sysconf(_SC_PAGESIZE);
        p = v > 0 ? (size_t)v : 4096;
        __atomic_store_n(&page, p, __ATOMIC_RELAXED);
    }
    return p;
}

uint64_t os_physical_memory(void) {
    int saved = errno;
    struct sysinfo si;
    uint64_t bytes = 0;
    if (sysinfo(&si) == 0) bytes = (uint64_t)si.totalram * si.mem_unit;
    errno = saved;
    return bytes;
}

/* Read a small file into buf (NUL-terminated); returns its length or -1. */
/* CPUs this process may run on at start-up (its affinity mask; the online
 * count when that cannot be read), at least 1. */
unsigned os_cpu_count(void) {
    int saved = errno;
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
    errno = saved;
    return n > 0 ? (unsigned)n : 1u;
}

/* Highest CPU number + 1 that the kernel may report (configured CPUs). */
unsigned os_cpu_ids(void) {
    int saved = errno;
    long n = sysconf(_SC_NPROCESSORS_CONF);
    errno = saved;
    return n > 0 ? (unsigned)n : 1u;
}

/* The CPU the caller runs on now: glibc reads it from rseq without a system
 * call where the kernel has rseq (the vDSO getcpu otherwise); 0 unknown. */
unsigned os_cpu_current(void) {
    int saved = errno;
    int cpu = sched_getcpu();
    errno = saved;
    return cpu > 0 ? (unsigned)cpu : 0u;
}

static ssize_t os_read_small(const char *path, char *buf, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n, total = 0;
    while ((size_t)total < len - 1 && (n = read(fd, buf + total, len - 1 - total)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            total = -1;
            break;
        }
        total += n;
    }
    close(fd);
    if (total >= 0) buf[total] = '\0';
    return total;
}

int os_thp_available(void) {
    int saved = errno;
    char buf[128];
    int ok = os_read_small("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) > 0 &&
             strstr(buf, "[never]") == NULL;
    errno = saved;
    return ok;
}

/* Value in kB of "key:" in a /proc text, or -1. */
static long os_field_kb(const char *text, const char *key) {
    const char *p = strstr(text, key);
    if (!p) return -1;
    p += strlen(key);
    while (*p == ' ' || *p == '\t') p++;
    long v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    return v;
}

long os_hugetlb_free_pages(void) {
    int saved = errno;
    char buf[4096];
    long pages = -1;
    if (os_read_small("/proc/meminfo", buf, sizeof buf) > 0 && os_field_kb(buf, "Hugepagesize:") == 2048)
        pages = os_field_kb(buf, "HugePages_Free:");
    errno = saved;
    return pages;
}

uint64_t os_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int os_is_secure(void) {
    int saved = errno;
    int secure = getauxval(AT_SECURE) != 0;
    errno = saved;
    return secure;
}

uint64_t os_random(void) {
    int saved = errno;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&r ^ ((uint64_t)getpid() << 32);
    }
    errno = saved;
    return r | 1;
}

/* ---- /proc/self/smaps ------------------------------------------------------- */

static uintptr_t os_parse_hex(const char **p) {
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else return v;
    }
}

static int os_starts(const char *line, const char *key) { return strncmp(line, key, strlen(key)) == 0; }

int os_smaps_range(const void *addr, size_t size, size_t *rss, size_t *huge) {
    int saved = errno;
    *rss = *huge = 0;
    int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        errno = saved;
        return -1;
    }
    uintptr_t lo = (uintptr_t)addr, hi = lo + size;
    char buf[4096];
    size_t have = 0;
    int inside = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', have - (size_t)(line - buf))) != NULL) {
            *nl = '\0';
            if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
                const char *p = line;
                uintptr_t start = os_parse_hex(&p);
                if (*p == '-') {
                    p++;
                    uintptr_t end = os_parse_hex(&p);
                    if (*p == ' ') inside = start < hi && end > lo;
                }
            } else if (inside) {
                long kb;
                if (os_starts(line, "Rss:")) {
                    kb = os_field_kb(line, "Rss:");
                    *rss += (size_t)kb << 10;
                } else if (os_starts(line, "AnonHugePages:")) {
                    kb = os_field_kb(line, "AnonHugePages:");
                    *huge += (size_t)kb << 10;
                } else if (os_starts(line, "Private_Hugetlb:") || os_starts(line, "Shared_Hugetlb:")) {
                    kb = os_field_kb(line, line[0] == 'P' ? "Private_Hugetlb:" : "Shared_Hugetlb:");
                    *huge += (size_t)kb << 10; /* hugetlb pages are not in Rss */
                    *rss += (size_t)kb << 10;
                }
            }
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
        if (have == sizeof buf - 1) have = 0; /* an absurd line: drop it */
    }
    close(fd);
    errno = saved;
    return 0;
}

/* ---- The process (for the statistics) --------------------------------------- */

/* The peak resident set, VmHWM in /proc/self/status; 8 KiB holds the file
 * up to that line even with a long Groups line. */
size_t os_peak_rss(void) {
    int saved = errno;
    char buf[8192];
    long kb = -1;
    if (os_read_small("/proc/self/status", buf, sizeof buf) > 0) kb = os_field_kb(buf, "VmHWM:");
    errno = saved;
    return kb > 0 ? (size_t)kb << 10 : 0;
}

/* ---- Limits: RLIMIT_AS, address space in use, memory available --------------- */

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

int os_reserve_at(void *addr, size_t size) {
    int saved = errno, rc = -1;
    if (!os_injected(OS_RESERVE)) {
        void *p = mmap(addr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == addr) {
            rc = 0;
        } else if (p != MAP_FAILED) {
            munmap(p, size); /* a kernel before 4.17 took the address as a hint */
            rc = -2;
        } else {
            rc = errno == EEXIST ? -2 : -1;
        }
    }
    errno = saved;
    return rc;
}

/* The soft limit of resource in bytes, UINT64_MAX if none. */
static uint64_t os_limit(int resource) {
    int saved = errno;
    struct rlimit rl;
    uint64_t limit = UINT64_MAX;
    if (getrlimit(resource, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) limit = (uint64_t)rl.rlim_cur;
    errno = saved;
    return limit;
}

uint64_t os_as_limit(void) { return os_limit(RLIMIT_AS); }
uint64_t os_data_limit(void) { return os_limit(RLIMIT_DATA); }

/* First decimal number of a text, or 0. */
static uint64_t os_first_number(const char *p) {
    while (*p && (*p < '0' || *p > '9')) p++;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

uint64_t os_vm_size(void) {
    int saved = errno;
    char buf[128];
    uint64_t bytes = 0;
    if (os_read_small("/proc/self/statm", buf, sizeof buf) > 0) bytes = os_first_number(buf) * os_page_size();
    errno = saved;
    return bytes;
}

/* Room left in one memory cgroup directory: limit - usage, or UINT64_MAX when
 * it sets no limit (v2 "max", v1's huge sentinel) or cannot be read. */
static uint64_t os_cgroup_room_at(const char *dir, const char *limit_name, const char *usage_name) {
    char path[512], buf[64];
    size_t n = strlen(dir);
    if (n + 32 > sizeof path) return UINT64_MAX;
    memcpy(path, dir, n);
    strcpy(path + n, limit_name);
    if (os_read_small(path, buf, sizeof buf) <= 0 || buf[0] < '0' || buf[0] > '9') return UINT64_MAX;
    uint64_t limit = os_first_number(buf);
    if (limit >= ((uint64_t)1 << 62)) return UINT64_MAX; /* v1: no limit */
    strcpy(path + n, usage_name);
    uint64_t usage = os_read_small(path, buf, sizeof buf) > 0 ? os_first_number(buf) : 0;
    return usage < limit ? limit - usage : 0;
}

/* The tightest room of a cgroup directory and its ancestors up to root
 * (dir starts with root; it is cut in place). */
static uint64_t os_cgroup_room_up(char *dir, size_t root_len, int v2) {
    uint64_t room = UINT64_MAX;
    for (;;) {
        size_t n = strlen(dir);
        while (n > root_len && dir[n - 1] == '/') dir[--n] = '\0';
        uint64_t r = v2 ? os_cgroup_room_at(dir, "/memory.max", "/memory.current")
                        : os_cgroup_room_at(dir, "/memory.limit_in_bytes", "/memory.usage_in_bytes");
        if (r < room) room = r;
        char *slash = strrchr(dir + root_len, '/');
        if (!slash) return room;
        *slash = '\0';
    }
}

/* The least room in the memory cgroup of this process and its ancestors:
 * v2 (the "0::" line of /proc/self/cgroup) and v1 (the line whose
 * controllers include "memory"), at the usual mount points. */
static uint64_t os_cgroup_room(void) {
    static const struct {
        const char *root;
        int v2;
    } mounts[] = {{"/sys/fs/cgroup", 1}, {"/sys/fs/cgroup/unified", 1}, {"/sys/fs/cgroup/memory", 0}};
    char text[2048];
    if (os_read_small("/proc/self/cgroup", text, sizeof text) <= 0) return UINT64_MAX;
    uint64_t room = UINT64_MAX;
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        *c2 = '\0';
        int v2 = strcmp(line, "0:") == 0;
        if (!v2 && !strstr(c1 + 1, "memory")) continue;
        const char *path = c2 + 1;
        for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
            if (mounts[i].v2 != v2) continue;
            char dir[512];
            size_t rl = strlen(mounts[i].root), pl = strlen(path);
            if (rl + pl + 1 > sizeof dir) continue;
            memcpy(dir, mounts[i].root, rl);
            memcpy(dir + rl, path, pl + 1);
            uint64_t r = os_cgroup_room_up(dir, rl, v2);
            if (r < room) room = r;
        }
    }
    return room;
}

uint64_t os_available_memory(void) {
    int saved = errno;
    char buf[4096];
    uint64_t avail = 0;
    if (os_read_small("/proc/meminfo", buf, sizeof buf) > 0) {
        long kb = os_field_kb(buf, "MemAvailable:");
        if (kb >= 0) avail = (uint64_t)kb << 10;
    }
    uint64_t room = os_cgroup_room();
    if (room != UINT64_MAX && (avail == 0 || room < avail)) avail = room;
    errno = saved;
    return avail;
}
