/*
 * freelist_poison.c - case 3 of issue 9: a write into freed memory (or an
 * 8-byte overflow from a live block into a free neighbour) must not steer
 * malloc to an address the attacker chose.
 *
 * Each attempt runs in its own child: it frees blocks of one size, writes
 * the address of a global (or of a stack buffer) over the first word of the
 * freed blocks, then mallocs that size a few times.  Allowed outcomes: an
 * abort with "segshim: malloc(): corrupted free list at 0x" (any SIGABRT
 * under glibc), or mallocs that return none of the attacker's addresses.
 * The test fails when malloc returns the chosen address, or when the process
 * dies any other way (under the shim).
 *
 * copy: no address chosen, a free block's own words: the first 16 bytes of
 * one freed block are copied over those of another freed block (a program
 * that reads freed memory and writes it back elsewhere, or an attacker who
 * can read a free block but not forge one).  The two then name the same
 * next block; malloc must never hand a block out twice (checked over the
 * next few hundred mallocs of the size, all kept live): it aborts with the
 * message above, or goes on.
 *
 * Usage: freelist_poison shim|glibc uaf|overflow|copy
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POISON_MSG "segshim: malloc(): corrupted free list at 0x"

enum { NEIGHBOURS = 64, TRIES = 64, TIMEOUT_S = 20 };

static _Alignas(4096) unsigned char poison_target[1 << 16];

typedef struct poison_case_s {
    size_t size;
    int overflow; /* 0: write after free; 1: overflow from the block before */
    int stack;    /* aim at a stack buffer instead of the global */
} poison_case_t;

/* malloc the size TRIES times; 1 if one of them is inside [lo, lo + len). */
static int poison_returns_target(size_t size, uintptr_t lo, size_t len) {
    for (int i = 0; i < TRIES; i++) {
        uintptr_t p = (uintptr_t)malloc(size);
        if (p - lo < len) {
            fprintf(stderr, "FAIL: malloc(%zu) returned %#lx, the attacker's address\n", size, (unsigned long)p);
            return 1;
        }
        if (p == 0) {
            fprintf(stderr, "FAIL: malloc(%zu) returned NULL\n", size);
            return 1;
        }
    }
    return 0;
}

static int poison_after_free(size_t size, uintptr_t target) {
    void *a = malloc(size), *b = malloc(size);
    free(a);
    free(b);
    /* Both freed blocks get the attacker's link: whichever is the list head. */
    *(uintptr_t *)hardening_launder(a) = target;
    *(uintptr_t *)hardening_launder(b) = target;
    return 0;
}

/* Find a live block x whose nearest neighbour y above it starts within 16
 * bytes of x's usable end, free y, and write the link through x. */
static int poison_overflow(size_t size, uintptr_t target) {
    char *blk[NEIGHBOURS];
    for (int i = 0; i < NEIGHBOURS; i++) blk[i] = malloc(size);
    /* The last blocks allocated first: they share the segment malloc takes
     * its next blocks from. */
    for (int i = NEIGHBOURS - 1; i >= 0; i--) {
        char *x = blk[i], *y = NULL;
        for (int j = 0; j < NEIGHBOURS; j++)
            if (blk[j] > x && (!y || blk[j] < y)) y = blk[j];
        size_t usable = malloc_usable_size(x);
        if (!y || (size_t)(y - x) > usable + 16) continue;
        free(y);
        /* The overflow: x's writes run past its end into y's first word. */
        memcpy((char *)hardening_launder(x) + (y - x), &target, sizeof target);
        return 0;
    }
    fprintf(stderr, "no two adjacent blocks of %zu bytes: overflow variant not applicable\n", size);
    return 1;
}

/* copy: x, y, w freed in that order (so w's link names y and y's names x),
 * then w's first 16 bytes over x's: x would name y, a cycle w, y, x, y...
 * 1 if a block comes back twice. */
static int poison_copy(void *arg) {
    size_t size = ((const poison_case_t *)arg)->size;
    enum { LIVE = 512 };
    char *x = malloc(size), *y = malloc(size), *w = malloc(size);
    free(x);
    free(y);
    free(w);
    memcpy(hardening_launder(x), hardening_launder(w), 16);
    static uintptr_t got[LIVE];
    for (int i = 0; i < LIVE; i++) {
        got[i] = (uintptr_t)malloc(size);
        for (int j = 0; j < i; j++)
            if (got[j] == got[i] && got[i]) {
                fprintf(stderr, "FAIL: malloc(%zu) handed out %#lx twice\n", size, (unsigned long)got[i]);
                return 1;
            }
    }
    return 0;
}

static int poison_body(void *arg) {
    const poison_case_t *c = arg;
    unsigned char stack_target[4096];
    memset(stack_target, 0, sizeof stack_target);
    memset(poison_target, 0, sizeof poison_target);
    uintptr_t lo = c->stack ? (uintptr_t)stack_target : (uintptr_t)poison_target;
    size_t len = c->stack ? sizeof stack_target : sizeof poison_target;
    uintptr_t target = lo + 256;
    int rc = c->overflow ? poison_overflow(c->size, target) : poison_after_free(c->size, target);
    if (rc) return 3; /* not applicable */
    return poison_returns_target(c->size, lo, len) ? 1 : 0;
}

int main(int argc, char **argv) {
    int shim = hardening_mode_shim(argc, argv);
    int overflow = argc > 2 && strcmp(argv[2], "overflow") == 0;
    static const size_t sizes[] = {16, 64, 1000, 4096, 20000};
    int failures = 0, ran = 0;
    if (argc > 2 && strcmp(argv[2], "copy") == 0) {
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            poison_case_t c = {sizes[i], 0, 0};
            char what[96];
            snprintf(what, sizeof what, "a free block's words copied over another's, %zu-byte blocks", c.size);
            hardening_result_t res;
            hardening_run(what, poison_copy, &c, TIMEOUT_S, &res);
            failures += !hardening_report(what, &res, hardening_expect_abort_or_exit0(what, &res, shim, POISON_MSG));
        }
        return failures ? 1 : 0;
    }
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int stack = 0; stack < 2; stack++) {
            poison_case_t c = {sizes[i], overflow, stack};
            char what[96];
            snprintf(what, sizeof what, "%s of %zu-byte blocks aimed at the %s", overflow ? "overflow" : "write after free",
                     c.size, stack ? "stack" : "global");
            hardening_result_t res;
            hardening_run(what, poison_body, &c, TIMEOUT_S, &res);
            if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 3) continue;
            ran++;
            int ok;
            if (shim) {
                ok = hardening_expect_abort_or_exit0(what, &res, 1, POISON_MSG);
            } else {
                /* glibc: safe-linking turns most of these into an abort or a
                 * crash on a garbage pointer; only handing out the target fails. */
                ok = !(WIFEXITED(res.status) && WEXITSTATUS(res.status) != 0) && !res.hung;
                if (!ok) fprintf(stderr, "FAIL: %s\n", what);
            }
            failures += !hardening_report(what, &res, ok);
        }
    if (ran == 0) hardening_skip("no size had two adjacent blocks");
    return failures ? 1 : 0;
}
