/*
 * introspect.c - glibc's introspection calls answer for the whole heap:
 * malloc_trim, mallinfo2, mallinfo, malloc_stats (also on a thread's least
 * stack) and malloc_info.
 *
 * Run under the shim (with SEGSHIM_DECAY_MS=-1, so that only malloc_trim can
 * give the pool's free regions back) and without it: what a program may rely
 * on holds both ways; what only the shim adds (its part of malloc_stats and
 * malloc_info, malloc_trim's return value for the pool) is checked when
 * segshim_stats_print is found.  Exit 0 when every check holds.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCKS (64 * 1024)
#define BLOCK_SIZE 1000 /* served by the pool under the shim */
#define MIB ((size_t)1 << 20)

static int failures;
static int under_shim;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fputc('\n', stderr);                           \
            failures++;                                    \
        }                                                  \
    } while (0)

static void *blocks[BLOCKS];

static void fill(void) {
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        if (blocks[i] == NULL) abort();
        memset(blocks[i], i & 0xff, BLOCK_SIZE);
    }
}

static void empty(void) {
    for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
}

/* VmRSS in bytes. */
static size_t rss(void) {
    char line[256];
    size_t kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %zu", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

static void test_mallinfo(void) {
    struct mallinfo2 before = mallinfo2();
    fill();
    struct mallinfo2 full = mallinfo2();
    /* mallinfo is deprecated (int fields), but programs still call it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
    size_t live = (size_t)BLOCKS * BLOCK_SIZE;
    CHECK(full.uordblks >= before.uordblks + live, "mallinfo2 uordblks %zu, was %zu, %zu allocated", full.uordblks,
          before.uordblks, live);
    CHECK(full.arena >= full.uordblks, "mallinfo2 arena %zu below uordblks %zu", full.arena, full.uordblks);
    CHECK(full.arena == full.uordblks + full.fordblks, "arena %zu != uordblks %zu + fordblks %zu", full.arena,
          full.uordblks, full.fordblks);
    CHECK(old.uordblks >= 0 && (size_t)old.uordblks >= live, "mallinfo uordblks %d, %zu allocated", old.uordblks, live);
    empty();
    struct mallinfo2 freed = mallinfo2();
    CHECK(freed.uordblks + live * 9 / 10 <= full.uordblks, "mallinfo2 uordblks %zu after freeing, %zu before",
          freed.uordblks, full.uordblks);
}

static void test_trim(void) {
    fill();
    size_t full = rss();
    empty();
    size_t freed = rss();
    struct mallinfo2 kept = mallinfo2();
    int released = malloc_trim(0);
    size_t trimmed = rss();
    struct mallinfo2 given = mallinfo2();
    fprintf(stderr, "rss: full %zu MiB, freed %zu MiB, trimmed %zu MiB; malloc_trim returned %d\n", full / MIB,
            freed / MIB, trimmed / MIB, released);
    /* Most of the 64 MB is given back, at the latest by malloc_trim. */
    CHECK(trimmed + 40 * MIB <= full, "rss %zu MiB after malloc_trim, %zu MiB full", trimmed / MIB, full / MIB);
    if (under_shim) {
        /* SEGSHIM_DECAY_MS=-1: free kept the regions; malloc_trim gave them back */
        CHECK(freed + 40 * MIB > full, "rss fell to %zu MiB before malloc_trim (decay disabled)", freed / MIB);
        CHECK(released == 1, "malloc_trim returned %d after giving back the pool's regions", released);
        /* and mallinfo2's arena counts the pool's committed regions */
        CHECK(given.arena + 40 * MIB <= kept.arena, "mallinfo2 arena %zu MiB after malloc_trim, %zu MiB before",
              given.arena / MIB, kept.arena / MIB);
    }
}

/* What fn writes on stderr, in buf. */
static void capture_stderr(void (*fn)(void), char *buf, size_t len) {
    char path[] = "/tmp/introspect_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

static void test_malloc_stats(void) {
    static char out[64 * 1024];
    fill();
    capture_stderr(malloc_stats, out, sizeof(out));
    empty();
    const char *glibc = strstr(out, "Total (incl. mmap):");
    CHECK(glibc != NULL, "malloc_stats lacks glibc's part:\n%s", out);
    if (under_shim) {
        const char *ours = strstr(out, "segshim pool");
        CHECK(ours != NULL && (glibc == NULL || ours < glibc), "malloc_stats lacks segshim's part first:\n%s", out);
        const char *in_use = strstr(out, "in use bytes     = ");
        size_t bytes = in_use != NULL ? strtoull(in_use + 19, NULL, 10) : 0;
        CHECK(bytes >= (size_t)BLOCKS * BLOCK_SIZE, "segshim's in use bytes %zu with %d blocks live:\n%s", bytes,
              BLOCKS, out);
    }
}

/* malloc_stats from a thread on the least stack a thread may have: glibc's
 * part alone needs most of it (it crashed when the shim's statistics were
 * still on the stack under it). */
static void *stats_on_small_stack(void *arg) {
    (void)arg;
    free(malloc(100));
    malloc_stats();
    return (void *)1;
}

static void quiet_stats_on_small_stack(void) {
    pthread_attr_t attr;
    pthread_t t;
    void *rv = NULL;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN);
    int rc = pthread_create(&t, &attr, stats_on_small_stack, NULL);
    CHECK(rc == 0, "pthread_create with a %zu-byte stack: %s", (size_t)PTHREAD_STACK_MIN, strerror(rc));
    if (rc == 0) pthread_join(t, &rv);
    CHECK(rc != 0 || rv == (void *)1, "malloc_stats on a %zu-byte stack did not return", (size_t)PTHREAD_STACK_MIN);
    pthread_attr_destroy(&attr);
}

static void test_malloc_stats_small_stack(void) {
    static char out[64 * 1024];
    capture_stderr(quiet_stats_on_small_stack, out, sizeof(out));
    CHECK(strstr(out, "Total (incl. mmap):") != NULL, "malloc_stats on a small stack printed:\n%s", out);
}

/* Elements well nested, one root, nothing after it: enough of XML for a
 * document without text, comments or CDATA, as malloc_info's. */
static int xml_well_formed(const char *p, char *why, size_t why_len) {
    char stack[32][32];
    int depth = 0, roots = 0;
    while (*p != '\0') {
        if (*p == '\n' || *p == ' ') {
            p++;
            continue;
        }
        if (*p != '<') return snprintf(why, why_len, "text outside a tag: %.20s", p), 0;
        const char *end = strchr(p, '>');
        if (end == NULL) return snprintf(why, why_len, "unclosed tag"), 0;
        int closing = p[1] == '/', empty_tag = end[-1] == '/';
        const char *name = p + 1 + closing;
        size_t n = strcspn(name, " />");
        if (n == 0 || n >= sizeof(stack[0])) return snprintf(why, why_len, "bad name"), 0;
        for (const char *q = name; q < end; q++)
            if (*q == '<') return snprintf(why, why_len, "'<' inside a tag"), 0;
        if (closing) {
            if (depth == 0 || strncmp(stack[depth - 1], name, n) != 0 || stack[depth - 1][n] != '\0')
                return snprintf(why, why_len, "</%.*s> closes nothing open", (int)n, name), 0;
            depth--;
        } else {
            if (depth == 0 && ++roots > 1) return snprintf(why, why_len, "a second root <%.*s>", (int)n, name), 0;
            if (!empty_tag) {
                if (depth == 32) return snprintf(why, why_len, "too deep"), 0;
                memcpy(stack[depth], name, n);
                stack[depth++][n] = '\0';
            }
        }
        p = end + 1;
    }
    if (depth != 0) return snprintf(why, why_len, "<%s> left open", stack[depth - 1]), 0;
    return roots == 1 ? 1 : (snprintf(why, why_len, "no root"), 0);
}

static void test_malloc_info(void) {
    char *text = NULL;
    size_t len = 0;
    fill();
    FILE *f = open_memstream(&text, &len);
    int rc = malloc_info(0, f);
    fclose(f);
    empty();
    CHECK(rc == 0, "malloc_info returned %d", rc);
    char why[128] = "";
    CHECK(xml_well_formed(text, why, sizeof(why)), "malloc_info's XML: %s\n%s", why, text);
    CHECK(strncmp(text, "<malloc version=", 16) == 0, "malloc_info does not start with glibc's root:\n%s", text);
    if (under_shim) {
        const char *ours = strstr(text, "<segshim version=");
        CHECK(ours != NULL, "malloc_info lacks the <segshim> element:\n%s", text);
        const char *in_use = strstr(text, "<total type=\"in_use\" size=\"");
        size_t bytes = in_use != NULL ? strtoull(in_use + 27, NULL, 10) : 0;
        CHECK(bytes >= (size_t)BLOCKS * BLOCK_SIZE, "<segshim> in_use %zu with %d blocks live", bytes, BLOCKS);
    }
    free(text);
    /* glibc's rule: options must be 0, else EINVAL is returned */
    f = open_memstream(&text, &len);
    rc = malloc_info(1, f);
    fclose(f);
    free(text);
    CHECK(rc == EINVAL, "malloc_info(1) returned %d", rc);
}

int main(void) {
    under_shim = dlsym(RTLD_DEFAULT, "segshim_stats_print") != NULL;
    fprintf(stderr, "introspect: %s\n", under_shim ? "under the shim" : "glibc alone");
    test_mallinfo();
    test_trim();
    test_malloc_stats();
    test_malloc_stats_small_stack();
    test_malloc_info();
    if (failures != 0) fprintf(stderr, "introspect: %d check(s) failed\n", failures);
    return failures != 0;
}
