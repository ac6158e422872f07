/*
 * give_back - memory is given back after a phase that frees most of it.
 *
 *   give_back [MEGABYTES]   (default 256)
 *
 * Allocates MEGABYTES of small blocks (64..256 B) through the pool, keeps the
 * oldest 10% and frees the rest, then waits SEGSHIM_DECAY_MS plus one second.
 * By then the process's VmRSS (/proc/self/status) must have come down to the
 * live bytes plus a bounded overhead, the regions given back must be whole
 * (the arena's resident part is still on huge pages where THP is available,
 * but for the heap's first HEAP_HUGE_MIN_BYTES, which are on 4 KiB pages by
 * design), and the kept blocks must be intact.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "segpool.h"
#include "types.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GIVE_BACK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GIVE_BACK_SANITIZED 1
#endif
#endif
#ifndef GIVE_BACK_SANITIZED
#define GIVE_BACK_SANITIZED 0
#endif

static size_t vm_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %zu kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb << 10;
}

#define CHECK(cond, ...)                                                                                             \
    do {                                                                                                             \
        if (!(cond)) {                                                                                               \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                    \
            fprintf(stderr, __VA_ARGS__);                                                                            \
            fputc('\n', stderr);                                                                                     \
            return 1;                                                                                                \
        }                                                                                                            \
    } while (0)

int main(int argc, char **argv) {
    size_t target = (size_t)(argc > 1 ? atol(argv[1]) : 256) << 20;
    const char *d = getenv("SEGSHIM_DECAY_MS");
    long decay_ms = d ? atol(d) : 1000;
    size_t base = vm_rss();

    /* Blocks are chained through their first word; the second holds the size. */
    size_t count = 0, bytes = 0;
    void *head = NULL;
    uint64_t rng = 88172645463325252ull;
    while (bytes < target) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        size_t size = 64 + (size_t)(rng % 193);
        uint64_t *b = segpool_malloc(size);
        CHECK(b != NULL, "segpool_malloc(%zu) failed after %zu MiB", size, bytes >> 20);
        b[0] = (uint64_t)(uintptr_t)head;
        b[1] = size;
        memset(b + 2, (int)(size & 0xff), size - 16);
        head = b;
        count++;
        bytes += size;
    }
    size_t peak = vm_rss();

    /* The list runs newest first: free the first 90%, keep the oldest 10%. */
    size_t keep = count / 10, freed = 0, live = 0;
    uint64_t *b = head;
    for (size_t i = 0; i < count - keep; i++) {
        uint64_t *next = (uint64_t *)(uintptr_t)b[0];
        segpool_free(b);
        freed++;
        b = next;
    }
    void *kept = b;
    for (uint64_t *k = kept; k; k = (uint64_t *)(uintptr_t)k[0]) live += k[1];

    if (decay_ms >= 0) usleep((useconds_t)(decay_ms + 1000) * 1000);
    size_t after = vm_rss();
    segpool_stats_t st;
    segpool_stats_get(&st);
    fprintf(stderr,
            "give_back: %zu MiB in %zu blocks, VmRSS before %zu MiB, at peak %zu MiB; freed 90%%, live %zu MiB; "
            "after %ld ms + 1 s: VmRSS %zu MiB, arena %zu MiB resident (%zu MiB on huge pages), %zu regions given back\n",
            bytes >> 20, count, base >> 20, peak >> 20, live >> 20, decay_ms, after >> 20, st.arena_rss >> 20,
            st.arena_huge >> 20, (size_t)st.regions_purged);

    /* Blocks keep about 20% internal waste and the kept ones share regions
     * with few freed neighbours: allow 2x the live bytes plus 32 MiB.  Under
     * a sanitizer VmRSS also holds its shadow memory: check the arena then. */
    if (decay_ms >= 0) {
        if (GIVE_BACK_SANITIZED)
            CHECK(st.arena_rss < 2 * live + (32u << 20), "arena %zu MiB for %zu MiB live", st.arena_rss >> 20, live >> 20);
        else
            CHECK(after < base + 2 * live + (32u << 20), "VmRSS %zu MiB for %zu MiB live", after >> 20, live >> 20);
        CHECK(st.regions_purged > 0, "no region was given back");
        /* The kept blocks are the oldest: the heap's first regions, small ones. */
        size_t small = st.arena_rss < HEAP_HUGE_MIN_BYTES ? st.arena_rss : (size_t)HEAP_HUGE_MIN_BYTES;
        if (os_thp_available() && strcmp(st.hugepage_mode, "thp") == 0)
            CHECK(st.arena_huge * 10 >= (st.arena_rss - small) * 9,
                  "arena %zu KiB resident, only %zu KiB on huge pages (%zu KiB may be small)", st.arena_rss >> 10,
                  st.arena_huge >> 10, small >> 10);
    } else {
        CHECK(after > peak / 2, "SEGSHIM_DECAY_MS=-1 gave memory back");
    }
    for (uint64_t *k = kept; k; k = (uint64_t *)(uintptr_t)k[0]) {
        const unsigned char *p = (const unsigned char *)(k + 2);
        for (size_t i = 0; i < k[1] - 16; i++) CHECK(p[i] == (k[1] & 0xff), "kept block %p corrupted", (void *)k);
    }
    fprintf(stderr, "give_back: OK\n");
    return 0;
}
