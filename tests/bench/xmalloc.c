/*
 * xmalloc - producer/consumer: one thread allocates, the others free.
 *
 *   xmalloc [BLOCKS] [THREADS] [BATCH]
 *
 * One producer allocates BLOCKS (default 10M) blocks of 16 B .. 1 KiB
 * (log-uniform), writes a tag into each, and hands them over in batches of
 * BATCH (default 256) through a bounded queue to THREADS-1 consumers
 * (THREADS default 3), which check and free them: every free is remote, the
 * case per-thread caches handle worst.  The batch arrays are malloc'ed by
 * the producer and freed by a consumer too.
 */
#include "bench_common.h"

#include <pthread.h>

#define XM_QUEUE 64 /* batches in flight at most */

typedef struct xm_batch_s {
    size_t n;
    unsigned char *blocks[];
} xm_batch_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    xm_batch_t *ring[XM_QUEUE];
    size_t head, count;
    int done;
} xm_q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

typedef struct xm_consumer_s {
    uint64_t tags, frees;
} xm_consumer_t;

static void xm_put(xm_batch_t *b)
{
    pthread_mutex_lock(&xm_q.lock);
    while (xm_q.count == XM_QUEUE)
        pthread_cond_wait(&xm_q.not_full, &xm_q.lock);
    xm_q.ring[(xm_q.head + xm_q.count++) % XM_QUEUE] = b;
    pthread_cond_signal(&xm_q.not_empty);
    pthread_mutex_unlock(&xm_q.lock);
}

static xm_batch_t *xm_get(void)
{
    pthread_mutex_lock(&xm_q.lock);
    while (xm_q.count == 0 && !xm_q.done)
        pthread_cond_wait(&xm_q.not_empty, &xm_q.lock);
    xm_batch_t *b = NULL;
    if (xm_q.count > 0) {
        b = xm_q.ring[xm_q.head];
        xm_q.head = (xm_q.head + 1) % XM_QUEUE;
        xm_q.count--;
        pthread_cond_signal(&xm_q.not_full);
    }
    pthread_mutex_unlock(&xm_q.lock);
    return b;
}

static void *xm_consumer(void *varg)
{
    xm_consumer_t *c = varg;
    xm_batch_t *b;
    while ((b = xm_get()) != NULL) {
        for (size_t i = 0; i < b->n; i++) {
            unsigned char *p = b->blocks[i];
            uint64_t tag, size, inv;
            memcpy(&tag, p, 8);
            memcpy(&size, p + 8, 8);
            if (size < 16 || size > 1024)
                bench_fail("xmalloc: block header overwritten");
            memcpy(&inv, p + size - 8, 8);
            if (size >= 24 && inv != ~tag)
                bench_fail("xmalloc: block tail overwritten");
            c->tags += tag;
            c->frees++;
            free(p);
        }
        free(b);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long long blocks = bench_arg(argc, argv, 1, 10000000);
    unsigned threads = (unsigned)bench_arg(argc, argv, 2, 3);
    size_t batch = (size_t)bench_arg(argc, argv, 3, 256);
    unsigned consumers = threads > 1 ? threads - 1 : 1;

    xm_consumer_t *cs = bench_xmalloc(consumers * sizeof *cs);
    pthread_t *tids = bench_xmalloc(consumers * sizeof *tids);
    for (unsigned t = 0; t < consumers; t++) {
        cs[t] = (xm_consumer_t){0, 0};
        if (pthread_create(&tids[t], NULL, xm_consumer, &cs[t]) != 0)
            bench_fail("pthread_create");
    }

    bench_rng_t rng = {7};
    uint64_t tag = 0;
    for (long long done = 0; done < blocks;) {
        size_t n = batch;
        if ((long long)n > blocks - done)
            n = (size_t)(blocks - done);
        xm_batch_t *b = bench_xmalloc(sizeof *b + n * sizeof b->blocks[0]);
        b->n = n;
        for (size_t i = 0; i < n; i++) {
            uint64_t size = bench_size_logu(&rng, 1024), inv = ~++tag;
            unsigned char *p = bench_xmalloc(size);
            memcpy(p, &tag, 8);
            memcpy(p + 8, &size, 8);
            if (size >= 24)
                memcpy(p + size - 8, &inv, 8);
            b->blocks[i] = p;
        }
        xm_put(b);
        done += (long long)n;
    }
    pthread_mutex_lock(&xm_q.lock);
    xm_q.done = 1;
    pthread_cond_broadcast(&xm_q.not_empty);
    pthread_mutex_unlock(&xm_q.lock);

    uint64_t tags = 0, frees = 0;
    for (unsigned t = 0; t < consumers; t++) {
        pthread_join(tids[t], NULL);
        tags += cs[t].tags;
        frees += cs[t].frees;
    }
    if (frees != (uint64_t)blocks || tags != tag * (tag + 1) / 2)
        bench_fail("xmalloc: blocks freed differ from blocks allocated");
    free(tids);
    free(cs);
    bench_print_value("ops", frees);
    bench_print_checksum(bench_mix(tags, frees));
    return 0;
}
