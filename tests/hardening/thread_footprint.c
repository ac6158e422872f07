/*
 * thread_footprint.c - case 9 of issue 9: the memory each thread costs.
 * N threads each hold one block of each of 12 sizes (16 B .. 32 KiB, powers
 * of two, 64 KiB live per thread), all alive at once; then VmRSS must stay
 * under a bound: 150 MiB for 1,000 threads, 1 GiB for 5,000.
 *
 * Threads get 64 KiB stacks (pthread_attr_setstacksize) so that what is
 * measured is the allocator's per-thread cost, not 8 MiB stacks.  The main
 * thread reads RSS as threads start and stops early once it is over the
 * bound, so a failing allocator fails in seconds instead of being
 * OOM-killed.
 *
 * Usage: thread_footprint shim|glibc THREADS
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIZES = 12, STACK = 64 << 10, TIMEOUT_S = 120 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int ready, release;
} fp_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void *fp_thread(void *unused) {
    (void)unused;
    void *held[SIZES];
    for (int i = 0; i < SIZES; i++) {
        size_t size = (size_t)16 << i; /* 16 .. 32768 */
        held[i] = malloc(size);
        if (!held[i]) abort();
        memset(held[i], i, size);
    }
    pthread_mutex_lock(&fp_gate.lock);
    fp_gate.ready++;
    pthread_cond_broadcast(&fp_gate.changed);
    while (!fp_gate.release) pthread_cond_wait(&fp_gate.changed, &fp_gate.lock);
    pthread_mutex_unlock(&fp_gate.lock);
    for (int i = 0; i < SIZES; i++) free(held[i]);
    return NULL;
}

/* Wait until want threads hold their blocks. */
static void fp_wait_ready(int want) {
    pthread_mutex_lock(&fp_gate.lock);
    while (fp_gate.ready < want) pthread_cond_wait(&fp_gate.changed, &fp_gate.lock);
    pthread_mutex_unlock(&fp_gate.lock);
}

static void fp_release(void) {
    pthread_mutex_lock(&fp_gate.lock);
    fp_gate.release = 1;
    pthread_cond_broadcast(&fp_gate.changed);
    pthread_mutex_unlock(&fp_gate.lock);
}

static int fp_threads;

static long fp_limit_kib(int threads) { return threads <= 1000 ? 150L << 10 : 1L << 20; }

static int fp_body(void *unused) {
    (void)unused;
    int n = fp_threads, started = 0, over = 0;
    long limit = fp_limit_kib(n), rss = 0;
    pthread_t *t = calloc((size_t)n, sizeof *t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK);
    while (started < n && !over) {
        int e = pthread_create(&t[started], &attr, fp_thread, NULL);
        if (e) {
            fprintf(stderr, "pthread_create: %s after %d threads\n", strerror(e), started);
            fp_release();
            for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
            return e == EAGAIN ? 3 : 1;
        }
        if (++started % 100 == 0) {
            fp_wait_ready(started);
            rss = hardening_rss_kib();
            over = rss > limit;
        }
    }
    fp_wait_ready(started);
    rss = hardening_rss_kib();
    printf("%d threads holding 12 blocks (16 B-32 KiB) each: VmRSS %ld MiB (limit %ld MiB)\n", started, rss >> 10,
           limit >> 10);
    fp_release();
    for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
    if (rss > limit) {
        fprintf(stderr, "FAIL: VmRSS %ld MiB with %d of %d threads started, over %ld MiB\n", rss >> 10, started, n,
                limit >> 10);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    hardening_mode_shim(argc, argv);
    fp_threads = argc > 2 ? atoi(argv[2]) : 1000;
    if (fp_threads < 1) return 2;
    hardening_result_t res;
    hardening_run("thread footprint", fp_body, NULL, TIMEOUT_S, &res);
    if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 3)
        hardening_skip("cannot start %d threads here (EAGAIN: a thread or process limit)", fp_threads);
    return hardening_expect_exit0("thread footprint", &res) ? 0 : 1;
}
