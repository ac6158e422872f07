/*
 * double_free.c - case 4 of issue 9: a block freed twice, or a block that
 * was never handed out, must abort with
 * "segshim: free(): double free detected at 0x" whoever frees it:
 *   a         free(p) twice on one thread (also with another free between);
 *   b         free of the block next to freshly allocated ones (never handed out);
 *   c-alive   the second free comes from another thread, owner alive;
 *   c-exited  the same after the owner exited;
 *   kept      another thread B frees the owner's block first (B's cache keeps
 *             it), then the owner frees it (variant 0), or a third thread
 *             does (variant 1), while B lives; or the owner after B exited
 *             (variant 2);
 *   written   the block is written after its first free (its first word
 *             set to 0, or to a pointer), then freed again: by its owner
 *             (variants 0, 1; 1 with three other frees between), or freed
 *             by another thread both times (variant 2);
 *   twice     a second free that a write after the first hides, or that
 *             comes through a block whose neighbour was written: it may be
 *             caught at the free ("double free detected") or when malloc
 *             reaches the block again ("segshim: malloc(): corrupted free
 *             list"), but malloc must never hand the block out twice
 *             (every block malloc returns is checked against all live
 *             ones, across threads, before the next call).  Variants: 0 the
 *             tag word (the second) cleared after the first free; 1 only a
 *             freed neighbour's tag cleared; 2 the first word written with
 *             eleven frees between; 3 both words cleared; 4 and 5 the block
 *             in another thread's cache with its first word written, then
 *             freed by its owner (4) or by a third thread (5); 6 the tag
 *             cleared, then realloc;
 *   realloc   realloc of a freed block (to the same size, smaller, and past
 *             one segment) must abort with
 *             "segshim: realloc(): invalid pointer (freed already) at 0x",
 *             and of a pointer inside a block with
 *             "segshim: realloc(): invalid pointer (inside a block) at 0x";
 *   large     blocks above one segment are glibc's: a double free, a free
 *             of a pointer inside a block, and a realloc of a pointer
 *             glibc never returned, abort with glibc's message (checked by
 *             the signal only), never a SIGSEGV in the shim.
 * A free from another thread may be checked late, at the owner's next slow
 * path: after the misuse each child allocates thousands of blocks of the
 * size (and calls malloc_trim).  If it did not abort, the child checks that
 * no block was handed out twice (part d) so the report says which it was.
 *
 * Usage: double_free shim|glibc a|b|c-alive|c-exited|kept|written|twice|realloc|large
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DOUBLE_FREE_MSG "segshim: free(): double free detected at 0x"
#define REALLOC_FREED_MSG "segshim: realloc(): invalid pointer (freed already) at 0x"
#define REALLOC_INSIDE_MSG "segshim: realloc(): invalid pointer (inside a block) at 0x"

enum { COLLECT = 10000, TIMEOUT_S = 30 };

typedef struct df_case_s {
    size_t size;
    int variant; /* meaning depends on the case */
} df_case_t;

static int df_cmp(const void *a, const void *b) {
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Part d: malloc size COLLECT times (all kept live); 1 if a block came
 * back twice. */
static int df_handed_twice(size_t size) {
    uintptr_t *p = calloc(COLLECT, sizeof *p);
    if (!p) abort();
    for (int i = 0; i < COLLECT; i++) p[i] = (uintptr_t)malloc(size);
    malloc_trim(0);
    qsort(p, COLLECT, sizeof *p, df_cmp);
    for (int i = 1; i < COLLECT; i++)
        if (p[i] == p[i - 1] && p[i]) {
            fprintf(stderr, "FAIL: malloc(%zu) handed out %#lx twice\n", size, (unsigned long)p[i]);
            return 1;
        }
    return 0;
}

static int df_same_thread(void *arg) {
    const df_case_t *c = arg;
    char *p = malloc(c->size), *q = malloc(c->size);
    free(p);
    if (c->variant) free(q); /* p is no longer the list head */
    free(hardening_launder(p));
    return df_handed_twice(c->size);
}

/* Two blocks from a fresh segment show the direction malloc walks it; the
 * block after them in that direction was never handed out. */
static int df_never_handed_out(void *arg) {
    const df_case_t *c = arg;
    char *a = malloc(c->size), *b = malloc(c->size);
    size_t u = malloc_usable_size(a);
    char *next = b == a - u ? b - u : (a < b ? b : a) + u;
    free(hardening_launder(next));
    return df_handed_twice(c->size);
}

/* c: the owner thread allocates (and, variant 0, frees) p; the main thread
 * frees p (variant 1: twice); then the owner, alive or a new thread after
 * it exited, allocates thousands of blocks of the size. */
static struct {
    pthread_barrier_t step;
    char *p;
    const df_case_t *c;
    int exited;
    int dup;
} df_remote;

static void *df_owner(void *unused) {
    (void)unused;
    df_remote.p = malloc(df_remote.c->size);
    if (df_remote.c->variant == 0) free(df_remote.p);
    if (df_remote.exited) return NULL;
    pthread_barrier_wait(&df_remote.step); /* p ready */
    pthread_barrier_wait(&df_remote.step); /* main freed it */
    df_remote.dup = df_handed_twice(df_remote.c->size);
    return NULL;
}

static void *df_adopter(void *unused) {
    (void)unused;
    df_remote.dup = df_handed_twice(df_remote.c->size);
    return NULL;
}

static int df_other_thread(void *arg) {
    df_remote.c = arg;
    pthread_barrier_init(&df_remote.step, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, df_owner, NULL);
    if (df_remote.exited) pthread_join(t, NULL);
    else pthread_barrier_wait(&df_remote.step);
    free(hardening_launder(df_remote.p));
    if (df_remote.c->variant) free(hardening_launder(df_remote.p));
    if (df_remote.exited) {
        pthread_create(&t, NULL, df_adopter, NULL);
        pthread_join(t, NULL);
        df_remote.dup |= df_handed_twice(df_remote.c->size);
    } else {
        pthread_barrier_wait(&df_remote.step);
        pthread_join(t, NULL);
    }
    return df_remote.dup;
}

/* kept: B frees the owner's (the main thread's) block p and waits; then the
 * owner frees p (variant 0) or thread C does (variant 1); variant 2: B
 * exits first, and the owner frees p. */
static struct {
    pthread_barrier_t step;
    char *p;
    size_t size;
    int wait;
} df_kept;

static void *df_kept_b(void *unused) {
    (void)unused;
    free(malloc(df_kept.size)); /* B has a heap, so it keeps what it frees */
    free(df_kept.p);
    if (df_kept.wait) {
        pthread_barrier_wait(&df_kept.step); /* p freed */
        pthread_barrier_wait(&df_kept.step); /* the second free was made */
    }
    return NULL;
}

static void *df_kept_c(void *unused) {
    (void)unused;
    free(hardening_launder(df_kept.p));
    return NULL;
}

static int df_kept_case(void *arg) {
    const df_case_t *c = arg;
    df_kept.size = c->size;
    df_kept.p = malloc(c->size);
    df_kept.wait = c->variant != 2;
    pthread_barrier_init(&df_kept.step, NULL, 2);
    pthread_t b, t;
    pthread_create(&b, NULL, df_kept_b, NULL);
    if (df_kept.wait) pthread_barrier_wait(&df_kept.step);
    else pthread_join(b, NULL);
    if (c->variant == 1) {
        pthread_create(&t, NULL, df_kept_c, NULL);
        pthread_join(t, NULL);
    } else {
        free(hardening_launder(df_kept.p));
    }
    if (df_kept.wait) {
        pthread_barrier_wait(&df_kept.step);
        pthread_join(b, NULL);
    }
    return df_handed_twice(c->size);
}

/* written: free p, write its first word, free it again. */
static struct {
    pthread_barrier_t step;
    char *p;
    size_t size;
} df_written;

/* Variant 2's freeing thread: frees p, waits for the write, frees it again. */
static void *df_written_other(void *unused) {
    (void)unused;
    free(malloc(df_written.size)); /* a heap of its own, as any thread that allocates */
    free(df_written.p);
    pthread_barrier_wait(&df_written.step); /* freed */
    pthread_barrier_wait(&df_written.step); /* written */
    free(hardening_launder(df_written.p));
    return NULL;
}

static int df_written_case(void *arg) {
    const df_case_t *c = arg;
    char *p = malloc(c->size), *others[3];
    for (int i = 0; i < 3; i++) others[i] = malloc(c->size);
    uintptr_t word = c->variant == 0 ? 0 : (uintptr_t)others[0];
    if (c->variant == 2) {
        df_written.p = p;
        df_written.size = c->size;
        pthread_barrier_init(&df_written.step, NULL, 2);
        pthread_t t;
        pthread_create(&t, NULL, df_written_other, NULL);
        pthread_barrier_wait(&df_written.step);
        *(uintptr_t *)hardening_launder(p) = word;
        pthread_barrier_wait(&df_written.step);
        pthread_join(t, NULL);
        return df_handed_twice(c->size);
    }
    free(p);
    if (c->variant == 1)
        for (int i = 0; i < 3; i++) free(others[i]);
    *(uintptr_t *)hardening_launder(p) = word;
    free(hardening_launder(p));
    return df_handed_twice(c->size);
}

/* twice: every block handed out while the case runs, across threads; a
 * block handed out while it is still live fails the case at once. */
static struct {
    pthread_mutex_t lock;
    uintptr_t live[4096];
    int count;
    size_t size;
    char *b;
    pthread_barrier_t step;
    int variant;
} df_twice = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *df_twice_take(size_t size) {
    void *p = malloc(size);
    pthread_mutex_lock(&df_twice.lock);
    for (int i = 0; i < df_twice.count; i++)
        if (df_twice.live[i] == (uintptr_t)p) {
            fprintf(stderr, "FAIL: malloc(%zu) handed out %p while it was live\n", size, p);
            _exit(1);
        }
    if (df_twice.count < 4096) df_twice.live[df_twice.count++] = (uintptr_t)p;
    pthread_mutex_unlock(&df_twice.lock);
    return p;
}

static void df_twice_takes(size_t size, int n) {
    for (int i = 0; i < n; i++) df_twice_take(size);
}

/* Variants 4, 5: T2 keeps main's block b, then (after the write and the
 * second free) allocates from its cache; variant 5's third thread frees. */
static void *df_twice_keeper(void *unused) {
    (void)unused;
    free(malloc(df_twice.size));
    free(df_twice.b);
    pthread_barrier_wait(&df_twice.step); /* kept */
    pthread_barrier_wait(&df_twice.step); /* written and freed again */
    df_twice_takes(df_twice.size, 4);
    return NULL;
}

static void *df_twice_third(void *unused) {
    (void)unused;
    free(malloc(df_twice.size));
    free(hardening_launder(df_twice.b));
    df_twice_takes(df_twice.size, 4);
    return NULL;
}

static int df_twice_case(void *arg) {
    const df_case_t *c = arg;
    size_t size = df_twice.size = c->size;
    char *b = df_twice.b = malloc(size), *n = malloc(size), *others[11];
    for (int i = 0; i < 11; i++) others[i] = malloc(size);
    uint64_t *w = hardening_launder(b);
    switch (c->variant) {
    case 0: case 3: case 6:
        free(b);
        w[1] = 0;
        if (c->variant == 3) w[0] = 0;
        if (c->variant == 6) {
            char *q = realloc(hardening_launder(b), size * 2 > 32768 ? 100000 : size * 2);
            (void)q;
        } else {
            free(hardening_launder(b));
        }
        break;
    case 1:
        free(n);
        free(b);
        ((uint64_t *)hardening_launder(n))[1] = 0;
        free(hardening_launder(b));
        break;
    case 2:
        free(b);
        for (int i = 0; i < 11; i++) free(others[i]);
        w[0] = 0x4141414141414141u;
        free(hardening_launder(b));
        break;
    default: { /* 4, 5 */
        pthread_barrier_init(&df_twice.step, NULL, 2);
        pthread_t keeper, third;
        pthread_create(&keeper, NULL, df_twice_keeper, NULL);
        pthread_barrier_wait(&df_twice.step);
        w[0] = 0x4141414141414141u;
        if (c->variant == 4) {
            free(hardening_launder(b));
            df_twice_takes(size, 4);
        } else {
            pthread_create(&third, NULL, df_twice_third, NULL);
            pthread_join(third, NULL);
        }
        pthread_barrier_wait(&df_twice.step);
        pthread_join(keeper, NULL);
        break;
    }
    }
    df_twice_takes(size, 64);
    return 0;
}

/* realloc: variant 0 same size, 1 half, 2 past one segment (100000 bytes);
 * variant 3: a pointer 16 bytes into a live block. */
static int df_realloc_case(void *arg) {
    const df_case_t *c = arg;
    char *p = malloc(c->size), *keep = malloc(c->size);
    (void)keep;
    if (c->variant == 3) {
        char *q = realloc(hardening_launder(p + (c->size > 16 ? 16 : 8)), c->size);
        fprintf(stderr, "realloc of an inside pointer returned %p\n", (void *)q);
        return 1;
    }
    free(p);
    size_t to = c->variant == 0 ? c->size : c->variant == 1 ? c->size / 2 : 100000;
    char *q = realloc(hardening_launder(p), to);
    fprintf(stderr, "realloc of a freed block returned %p\n", (void *)q);
    return 1;
}

/* large: variant 0 a double free, 1 a free of a pointer 64 bytes into a
 * block whose bytes are all 0x41 (the header glibc reads is garbage), 2 a
 * realloc to a small size of a pointer malloc never returned, 64 bytes
 * before unmapped memory, whose preceding word claims a 1 MiB chunk. */
static int df_large_case(void *arg) {
    const df_case_t *c = arg;
    if (c->variant == 2) {
        char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 2;
        munmap(m + 4096, 4096);
        uint64_t *fake = (uint64_t *)(m + 4096 - 64);
        fake[-1] = 0x100001;
        char *q = realloc(hardening_launder(fake), 100);
        fprintf(stderr, "realloc of a pointer malloc never returned gave %p\n", (void *)q);
        return 1;
    }
    char *p = malloc(c->size), *keep = malloc(c->size);
    (void)keep;
    if (c->variant == 0) {
        free(p);
        free(hardening_launder(p));
    } else {
        memset(p, 0x41, c->size);
        free(hardening_launder(p + 64));
    }
    fprintf(stderr, "the bad free returned\n");
    return 1;
}

/* One case, each size and variant, in a supervised child each. */
static int df_run_cases(const char *which, int (*fn)(void *), int shim, const size_t *sizes, unsigned nsizes,
                        int variants, int check_shim, const char *msg, const char *msg_last) {
    int failures = 0;
    for (unsigned i = 0; i < nsizes; i++)
        for (int variant = 0; variant < variants; variant++) {
            df_case_t c = {sizes[i], variant};
            char what[96];
            snprintf(what, sizeof what, "case %s, %zu bytes, variant %d", which, c.size, variant);
            hardening_result_t res;
            hardening_run(what, fn, &c, TIMEOUT_S, &res);
            const char *m = variant == variants - 1 && msg_last ? msg_last : msg;
            failures += !hardening_report(what, &res, hardening_expect_abort(what, &res, shim && check_shim, m));
        }
    return failures;
}

int main(int argc, char **argv) {
    int shim = hardening_mode_shim(argc, argv);
    const char *which = argc > 2 ? argv[2] : "a";
    static const size_t pool_sizes[] = {16, 48, 1024, 3000, 20000};
    static const size_t large_sizes[] = {40000, 100000, 1 << 20};
    const unsigned npool = sizeof pool_sizes / sizeof pool_sizes[0];
    if (strcmp(which, "kept") == 0)
        return df_run_cases(which, df_kept_case, shim, pool_sizes, npool, 3, 1, DOUBLE_FREE_MSG, NULL) ? 1 : 0;
    if (strcmp(which, "written") == 0)
        return df_run_cases(which, df_written_case, shim, pool_sizes, npool, 3, 1, DOUBLE_FREE_MSG, NULL) ? 1 : 0;
    if (strcmp(which, "twice") == 0)
        return df_run_cases(which, df_twice_case, shim, pool_sizes, npool, 7, 1, "segshim: ", NULL) ? 1 : 0;
    if (strcmp(which, "realloc") == 0)
        return df_run_cases(which, df_realloc_case, shim, pool_sizes, npool, 4, 1, REALLOC_FREED_MSG,
                            REALLOC_INSIDE_MSG)
                   ? 1
                   : 0;
    if (strcmp(which, "large") == 0)
        /* glibc alone takes a SIGSEGV on its own 1 MiB block freed twice
         * (mmapped, then unmapped): that size under the shim only. */
        return df_run_cases(which, df_large_case, shim, large_sizes, shim ? 3 : 2, 3, 0, "", NULL) ? 1 : 0;
    int (*fn)(void *) = df_same_thread;
    if (strcmp(which, "b") == 0) fn = df_never_handed_out;
    if (strncmp(which, "c-", 2) == 0) fn = df_other_thread;
    df_remote.exited = strcmp(which, "c-exited") == 0;
    /* Sizes the supervising parent never allocates, so that b finds fresh
     * segments, across small, medium and near-segment classes. */
    static const size_t sizes[] = {48, 3000, 20000};
    int variants = fn == df_never_handed_out ? 1 : 2;
    return df_run_cases(which, fn, shim, sizes, 3, variants, 1, DOUBLE_FREE_MSG, NULL) ? 1 : 0;
}
