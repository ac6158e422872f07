/*
 * grow.c - under RLIMIT_AS 1 GiB the arena starts small and grows: 4
 * threads allocate 400 MiB of small blocks between them, all served by the
 * pool (no "pool exhausted" fallback), and every block stays intact and can
 * be freed by another thread, in pieces mapped after the threads started.
 *
 * The child (`grow run`) does the work and reads the shim's statistics
 * through segshim_stats_print; the parent also runs it without the shim, as a
 * check of the test itself.
 */
#include "limits_common.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>

#define LIMIT (1 * LIMITS_GIB)
#define THREADS 4
#define PER_THREAD (100 * LIMITS_MIB)
#define MAX_BLOCKS (PER_THREAD / 64)

typedef struct set_s {
    unsigned char **blocks;
    size_t count;
    unsigned tag;
} set_t;

static set_t sets[THREADS];

static size_t block_size(size_t i) { return 64 + (i * 2654435761u) % 16320; } /* 64 B - 16 KiB */

static void *fill(void *arg) {
    set_t *s = arg;
    size_t bytes = 0;
    s->blocks = mmap(NULL, MAX_BLOCKS * sizeof *s->blocks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->blocks == MAP_FAILED) return "mmap";
    for (size_t i = 0; bytes < PER_THREAD && i < MAX_BLOCKS; i++) {
        size_t n = block_size(i);
        unsigned char *p = malloc(n);
        if (!p) return "malloc failed";
        memset(p, (int)(s->tag + i), n);
        s->blocks[s->count++] = p;
        bytes += n;
    }
    return NULL;
}

/* Check and free another thread's blocks. */
static void *drain(void *arg) {
    set_t *s = arg;
    for (size_t i = 0; i < s->count; i++) {
        unsigned char *p = s->blocks[i];
        size_t n = block_size(i);
        if (p[0] != (unsigned char)(s->tag + i) || p[n - 1] != (unsigned char)(s->tag + i)) return "block changed";
        free(p);
    }
    return NULL;
}

/* A number after "key": in the statistics JSON, or -1. */
static long long stats_field(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *p = strstr(json, pattern);
    if (!p) return -1;
    p += strlen(pattern);
    while (*p == ' ' || *p == ':') p++;
    return strtoll(p, NULL, 10);
}

static int run(void) {
    pthread_t t[THREADS];
    void *why;
    for (int phase = 0; phase < 2; phase++) {
        for (int i = 0; i < THREADS; i++) {
            sets[i].tag = (unsigned)i * 37u;
            if (pthread_create(&t[i], NULL, phase ? drain : fill, &sets[phase ? (i + 1) % THREADS : i]) != 0) return 2;
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], &why);
            if (why) {
                fprintf(stderr, "FAIL: thread %d: %s\n", i, (const char *)why);
                return 1;
            }
        }
    }
    typedef int (*print_fn)(int, int);
    print_fn print = (print_fn)dlsym(RTLD_DEFAULT, "segshim_stats_print");
    if (!print) {
        printf("glibc\n");
        return 0;
    }
    int fd = memfd_create("stats", 0);
    static char json[1 << 16];
    if (fd < 0 || print(fd, 1) != 0 || pread(fd, json, sizeof json - 1, 0) <= 0) return 2;
    printf("pool_size %lld fallback_exhausted %lld\n", stats_field(json, "pool_size"),
           stats_field(json, "fallback_exhausted"));
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "run") == 0) return run();
    limits_shim();
    char out[256];
    char *argv_run[] = {"grow", "run", NULL};
    int rc = limits_run(0, LIMIT, argv_run, out, sizeof out);
    if (rc != 0) {
        fprintf(stderr, "FAIL: glibc: the child exited %d\n", rc);
        return 1;
    }
    rc = limits_run(1, LIMIT, argv_run, out, sizeof out);
    long long pool_size = -1, exhausted = -1;
    if (rc != 0 || sscanf(out, "pool_size %lld fallback_exhausted %lld", &pool_size, &exhausted) != 2) {
        fprintf(stderr, "FAIL: shim: the child exited %d (output \"%s\")\n", rc, out);
        return 1;
    }
    printf("shim under RLIMIT_AS 1G: arena grew to %lld MiB, %lld requests fell back for exhaustion\n",
           pool_size >> 20, exhausted);
    if (exhausted != 0 || pool_size < (long long)(THREADS * PER_THREAD)) {
        fprintf(stderr, "FAIL: the arena did not grow to serve 400 MiB of small blocks\n");
        return 1;
    }
    return 0;
}
