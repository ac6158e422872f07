/*
 * double_free.c - case 4 of issue 9: a block freed twice, or a block that
 * was never handed out, must abort with
 * "segshim: free(): double free detected at 0x" whoever frees it:
 *   a         free(p) twice on one thread (also with another free between);
 *   b         free of the block next to freshly allocated ones (never handed out);
 *   c-alive   the second free comes from another thread, owner alive;
 *   c-exited  the same after the owner exited.
 * A free from another thread may be checked late, at the owner's next slow
 * path: after the misuse each child allocates thousands of blocks of the
 * size (and calls malloc_trim).  If it did not abort, the child checks that
 * no block was handed out twice (part d) so the report says which it was.
 *
 * Usage: double_free shim|glibc a|b|c-alive|c-exited
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOUBLE_FREE_MSG "segshim: free(): double free detected at 0x"

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

int main(int argc, char **argv) {
    int shim = hardening_mode_shim(argc, argv);
    const char *which = argc > 2 ? argv[2] : "a";
    int (*fn)(void *) = df_same_thread;
    if (strcmp(which, "b") == 0) fn = df_never_handed_out;
    if (strncmp(which, "c-", 2) == 0) fn = df_other_thread;
    df_remote.exited = strcmp(which, "c-exited") == 0;
    /* Sizes the supervising parent never allocates, so that b finds fresh
     * segments, across small, medium and near-segment classes. */
    static const size_t sizes[] = {48, 3000, 20000};
    int failures = 0;
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int variant = 0; variant < 2; variant++) {
            if (fn == df_never_handed_out && variant) continue;
            df_case_t c = {sizes[i], variant};
            char what[96];
            snprintf(what, sizeof what, "case %s, %zu bytes, variant %d", which, c.size, variant);
            hardening_result_t res;
            hardening_run(what, fn, &c, TIMEOUT_S, &res);
            int ok = hardening_expect_abort(what, &res, shim, DOUBLE_FREE_MSG);
            char d[128];
            printf("%s: %s -> %s\n", what, hardening_describe(&res, d, sizeof d), ok ? "ok" : "FAIL");
            failures += !ok;
        }
    return failures ? 1 : 0;
}
