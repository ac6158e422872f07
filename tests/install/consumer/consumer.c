/*
 * consumer.c - a program built against an installed libsegpool, the way a
 * user builds one (pkg-config or find_package), by tests/install.
 *
 *   consumer VERSION shim|noshim
 *
 * Checks that the header and the library agree with VERSION, that the pool
 * serves segments and blocks, and that segshim_stats_print (segshim.h, weak)
 * is present exactly when libsegshim.so is preloaded; under the shim it writes
 * the JSON statistics to stdout.  Exit 0 when every check holds.
 */
#include <segpool.h>
#include <segshim.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int consumer_failures;

static void consumer_check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "consumer: FAIL: %s\n", what);
        consumer_failures++;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: consumer VERSION shim|noshim\n");
        return 2;
    }
    char macros[64];
    snprintf(macros, sizeof(macros), "%d.%d.%d", SEGPOOL_VERSION_MAJOR, SEGPOOL_VERSION_MINOR,
             SEGPOOL_VERSION_PATCH);
    consumer_check(strcmp(SEGPOOL_VERSION_STRING, argv[1]) == 0, "SEGPOOL_VERSION_STRING is the project version");
    consumer_check(strcmp(macros, argv[1]) == 0, "SEGPOOL_VERSION_MAJOR/MINOR/PATCH match the version");
    consumer_check(strcmp(segpool_version(), SEGPOOL_VERSION_STRING) == 0, "segpool_version() matches the header");

    size_t seg_size = segpool_segment_size();
    void *seg = segpool_segment_request();
    consumer_check(seg != NULL && ((uintptr_t)seg & (seg_size - 1)) == 0, "a segment aligned to its size");
    if (seg != NULL) {
        memset(seg, 0xa5, seg_size);
        segpool_segment_recycle(seg);
    }
    char *p = segpool_malloc(200);
    consumer_check(p != NULL && segpool_owns(p) && segpool_usable_size(p) >= 200, "segpool_malloc(200)");
    segpool_free(p);

    int shim = strcmp(argv[2], "shim") == 0;
    consumer_check((segshim_stats_print != NULL) == shim,
                   shim ? "segshim_stats_print present under the shim" : "segshim_stats_print absent without the shim");
    if (shim && segshim_stats_print != NULL) {
        /* Allocations through the shim, so that its statistics count some. */
        void *blocks[64];
        for (int i = 0; i < 64; i++)
            blocks[i] = malloc(48);
        for (int i = 0; i < 64; i++)
            free(blocks[i]);
        fflush(stdout);
        consumer_check(segshim_stats_print(1, 1) == 0, "segshim_stats_print(1, 1) returns 0");
    }
    printf("consumer %s: %d failure(s)\n", segpool_version(), consumer_failures);
    return consumer_failures == 0 ? 0 : 1;
}
