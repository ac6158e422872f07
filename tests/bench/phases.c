/*
 * phases - a long-running program with phases, to show RSS over time.
 *
 *   phases [MEGABYTES] [IDLE_MS] [CSV]
 *
 *   1 grow:  allocate small blocks (16 .. 256 B, log-uniform) until
 *            MEGABYTES (default 1024) have been requested;
 *   2 free:  free the newest 90% of the blocks, keeping the oldest 10%;
 *   3 idle:  sleep IDLE_MS (default 3000): an allocator that gives memory
 *            back to the OS shows it here;
 *   4 grow:  allocate again up to MEGABYTES live;
 *   5 free:  free everything.
 *
 * A sampler thread reads VmRSS from /proc/self/status every 25 ms; the
 * samples (milliseconds, RSS in KiB, phase) go to CSV (default: none) at the
 * end.  The program prints the RSS at the end of the idle phase, the figure
 * docs/design.md sets a target for.  The blocks are chained through
 * their own first word (no side array, whose size would blur the figures).
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define PH_MAX_SAMPLES 16384
#define PH_PERIOD_MS 25

typedef struct ph_block_s {
    struct ph_block_s *next;
    uint64_t tag;
} ph_block_t;

static struct {
    long ms[PH_MAX_SAMPLES];
    long rss_kb[PH_MAX_SAMPLES];
    int phase[PH_MAX_SAMPLES];
    size_t n;
} ph_samples;

static atomic_int ph_phase = 1;
static atomic_int ph_stop;
static struct timespec ph_t0;

static long ph_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (ts.tv_sec - ph_t0.tv_sec) * 1000 + (ts.tv_nsec - ph_t0.tv_nsec) / 1000000;
}

/* VmRSS in KiB, read without allocating. */
static long ph_rss_kb(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strstr(buf, "VmRSS:");
    return p != NULL ? strtol(p + 6, NULL, 10) : -1;
}

static void ph_sample(void)
{
    if (ph_samples.n < PH_MAX_SAMPLES) {
        size_t i = ph_samples.n++;
        ph_samples.ms[i] = ph_now_ms();
        ph_samples.rss_kb[i] = ph_rss_kb();
        ph_samples.phase[i] = atomic_load(&ph_phase);
    }
}

static void *ph_sampler(void *arg)
{
    (void)arg;
    struct timespec period = {0, PH_PERIOD_MS * 1000000L};
    while (!atomic_load(&ph_stop)) {
        ph_sample();
        nanosleep(&period, NULL);
    }
    return NULL;
}

/* Allocate blocks until 'bytes' more have been requested; returns the chain,
 * oldest first, through *tail. */
static ph_block_t *ph_grow(bench_rng_t *rng, size_t bytes, uint64_t *tag, ph_block_t **tail)
{
    ph_block_t *head = NULL, *last = NULL;
    for (size_t got = 0; got < bytes;) {
        size_t size = bench_size_logu(rng, 256);
        ph_block_t *b = bench_xmalloc(size);
        b->next = NULL;
        b->tag = ++*tag;
        if (last != NULL)
            last->next = b;
        else
            head = b;
        last = b;
        got += size;
    }
    *tail = last;
    return head;
}

static uint64_t ph_free_chain(ph_block_t *b)
{
    uint64_t h = 0;
    while (b != NULL) {
        ph_block_t *next = b->next;
        h += b->tag;
        free(b);
        b = next;
    }
    return h;
}

int main(int argc, char **argv)
{
    long long mb = bench_arg(argc, argv, 1, 1024);
    long long idle_ms = bench_arg(argc, argv, 2, 3000);
    const char *csv = argc > 3 ? argv[3] : NULL;
    size_t bytes = (size_t)mb * 1024 * 1024;

    clock_gettime(CLOCK_MONOTONIC, &ph_t0);
    pthread_t sampler;
    if (pthread_create(&sampler, NULL, ph_sampler, NULL) != 0)
        bench_fail("pthread_create");

    bench_rng_t rng = {0x9ba5e};
    uint64_t tag = 0, h = 0;
    ph_block_t *tail;
    ph_block_t *old = ph_grow(&rng, bytes, &tag, &tail);

    atomic_store(&ph_phase, 2);
    /* keep the oldest 10% of the blocks */
    uint64_t keep = tag / 10;
    ph_block_t *cut = old;
    while (cut->tag < keep)
        cut = cut->next;
    h += ph_free_chain(cut->next);
    cut->next = NULL;
    tail = cut;

    atomic_store(&ph_phase, 3);
    struct timespec idle = {idle_ms / 1000, (idle_ms % 1000) * 1000000L};
    nanosleep(&idle, NULL);
    long rss_idle = ph_rss_kb();

    atomic_store(&ph_phase, 4);
    ph_block_t *tail2;
    ph_block_t *young = ph_grow(&rng, bytes - bytes / 10, &tag, &tail2);

    atomic_store(&ph_phase, 5);
    h += ph_free_chain(young);
    h += ph_free_chain(old);
    if (h != tag * (tag + 1) / 2)
        bench_fail("phases: tags freed differ from tags allocated");

    struct timespec settle = {0, 200 * 1000000L};
    nanosleep(&settle, NULL);
    atomic_store(&ph_stop, 1);
    pthread_join(sampler, NULL);
    ph_sample();

    if (csv != NULL) {
        FILE *f = fopen(csv, "w");
        if (f == NULL) {
            perror(csv);
            return 1;
        }
        fprintf(f, "ms,rss_kb,phase\n");
        for (size_t i = 0; i < ph_samples.n; i++)
            fprintf(f, "%ld,%ld,%d\n", ph_samples.ms[i], ph_samples.rss_kb[i], ph_samples.phase[i]);
        fclose(f);
    }
    printf("rss_idle_kb: %ld\n", rss_idle);
    bench_print_checksum(bench_mix(h, tag));
    return 0;
}
