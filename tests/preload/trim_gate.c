/*
 * trim_gate.c - malloc_trim under the shim and the blocks above one segment
 * that glibc holds for it (shim/glibc_tune.c).
 *
 *   trim_gate shim|glibc
 *
 * 64 blocks of 1 MiB (glibc's heap: the shim's 32 MiB mmap threshold) are
 * written and the last one kept, so that nothing freed is at the heap's top.
 * Freeing 6 MiB of them and trimming: under the shim the pages stay (6 MiB is
 * small beside the 58 MiB still held, and glibc's trim, which walks its whole
 * heap, is skipped); under glibc alone they go back.  Freeing 42 MiB more
 * and trimming: the pages of all 48 MiB go back in both cases.  Then the
 * heap grows back to 48 MiB and the program trims ten times while it keeps
 * that size (4 MiB freed and allocated again before each call: glibc's trim
 * would only give back what is faulted in again, and under the shim it is
 * skipped), then frees 40 MiB and trims once more: those pages go back in
 * both cases, so the calls that were skipped do not hold back a trim after
 * the heap shrank.  RSS is read from /proc/self/statm.  Exit 0 when all hold.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define TRIM_GATE_BLOCKS 64

static void *(*volatile malloc_v)(size_t) = malloc;

static size_t trim_gate_rss(void) {
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2) {
        fprintf(stderr, "trim_gate: cannot read /proc/self/statm\n");
        exit(2);
    }
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Frees blocks [from, to) and trims; returns how much RSS went down. */
static long trim_gate_free_and_trim(void **b, int from, int to) {
    size_t before = trim_gate_rss();
    for (int i = from; i < to; i++) free(b[i]);
    malloc_trim(0);
    return (long)before - (long)trim_gate_rss();
}

int main(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[1], "shim") != 0 && strcmp(argv[1], "glibc") != 0)) {
        fprintf(stderr, "usage: trim_gate shim|glibc\n");
        return 2;
    }
    int shim = strcmp(argv[1], "shim") == 0;
    void *b[TRIM_GATE_BLOCKS];
    for (int i = 0; i < TRIM_GATE_BLOCKS; i++) {
        b[i] = malloc_v(MIB);
        if (!b[i]) return 2;
        memset(b[i], 0x5a, MIB);
    }
    long small = trim_gate_free_and_trim(b, 0, 6);
    long large = trim_gate_free_and_trim(b, 6, 48);
    printf("trim_gate (%s): RSS down %ld KiB after 6 MiB freed, %ld KiB after 42 MiB more\n", argv[1],
           small >> 10, large >> 10);
    if (shim && small > (long)MIB) {
        fprintf(stderr, "trim_gate: a trim of 6 MiB beside 58 MiB held reached glibc\n");
        return 1;
    }
    if (!shim && small < (long)(4 * MIB)) {
        fprintf(stderr, "trim_gate: glibc's own trim did not give 6 MiB back\n");
        return 1;
    }
    if (small + large < (long)(40 * MIB)) {
        fprintf(stderr, "trim_gate: 48 MiB freed, only %ld KiB given back by malloc_trim\n", (small + large) >> 10);
        return 1;
    }
    for (int i = 0; i < 48; i++) {
        b[i] = malloc_v(MIB);
        if (!b[i]) return 2;
        memset(b[i], 0x6b, MIB);
    }
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 4; i++) free(b[round * 4 + i]);
        for (int i = 0; i < 4; i++) {
            b[round * 4 + i] = malloc_v(MIB);
            if (!b[round * 4 + i]) return 2;
            memset(b[round * 4 + i], 0x7c, MIB);
        }
        malloc_trim(0);
    }
    long shrunk = trim_gate_free_and_trim(b, 0, 40);
    printf("trim_gate (%s): RSS down %ld KiB after 40 MiB freed, following 10 trims of a steady heap\n", argv[1],
           shrunk >> 10);
    if (shrunk < (long)(32 * MIB)) {
        fprintf(stderr, "trim_gate: 40 MiB freed after steady trims, only %ld KiB given back\n", shrunk >> 10);
        return 1;
    }
    for (int i = 40; i < TRIM_GATE_BLOCKS; i++) free(b[i]);
    return 0;
}
