/*
 * flink - the Flink network-buffer pattern.
 *
 *   flink malloc|segpool [BUFFERS] [PAIRS] [QUEUE]
 *
 * PAIRS (default 2) producer/consumer pairs.  Each producer requests BUFFERS
 * (default 120000) buffers of one segment (32 KiB), fills them with a record
 * stream and passes them through a queue of QUEUE (default 16) buffers to
 * its consumer, which reads every word, and recycles the buffer: Flink's
 * network stack, where a result partition fills buffers from its
 * LocalBufferPool and the netty thread recycles them once sent.
 *
 *   malloc   buffers are malloc(32768) / free, the queue bound is the only
 *            back-pressure;
 *   segpool  buffers come from a segpool local pool per pair, bounded to
 *            QUEUE + 2 segments; the producer waits in
 *            segpool_local_request_timeout() when all are out (built only
 *            when libsegpool is, as flink_segpool).
 */
#include "bench_common.h"

#include <pthread.h>

#ifdef BENCH_WITH_SEGPOOL
#include "segpool.h"
#endif

#define FLINK_BUF 32768
#define FLINK_WORDS (FLINK_BUF / 8)
#define FLINK_QMAX 256

typedef struct flink_pair_s {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    uint64_t *ring[FLINK_QMAX];
    size_t head, count, cap;
    int done;
    unsigned id;
    long long buffers;
    uint64_t sum;
#ifdef BENCH_WITH_SEGPOOL
    segpool_local_t *local;
#endif
} flink_pair_t;

static int flink_segpool;

static uint64_t *flink_request(flink_pair_t *p)
{
#ifdef BENCH_WITH_SEGPOOL
    if (flink_segpool) {
        void *s = segpool_local_request_timeout(p->local, -1);
        if (s == NULL)
            bench_fail("flink: segpool_local_request_timeout returned NULL");
        return s;
    }
#endif
    (void)p;
    return bench_xmalloc(FLINK_BUF);
}

static void flink_recycle(flink_pair_t *p, uint64_t *buf)
{
#ifdef BENCH_WITH_SEGPOOL
    if (flink_segpool) {
        segpool_local_recycle(p->local, buf);
        return;
    }
#endif
    (void)p;
    free(buf);
}

static void *flink_producer(void *varg)
{
    flink_pair_t *p = varg;
    for (long long seq = 0; seq < p->buffers; seq++) {
        uint64_t *buf = flink_request(p);
        /* the records: a pattern derived from the pair and the sequence */
        uint64_t x = ((uint64_t)p->id << 32) ^ (uint64_t)seq;
        for (size_t w = 0; w < FLINK_WORDS; w++)
            buf[w] = x + w * 0x9e3779b97f4a7c15ULL;
        pthread_mutex_lock(&p->lock);
        while (p->count == p->cap)
            pthread_cond_wait(&p->not_full, &p->lock);
        p->ring[(p->head + p->count++) % p->cap] = buf;
        pthread_cond_signal(&p->not_empty);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_lock(&p->lock);
    p->done = 1;
    pthread_cond_signal(&p->not_empty);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void *flink_consumer(void *varg)
{
    flink_pair_t *p = varg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->count == 0 && !p->done)
            pthread_cond_wait(&p->not_empty, &p->lock);
        if (p->count == 0) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        uint64_t *buf = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        pthread_cond_signal(&p->not_full);
        pthread_mutex_unlock(&p->lock);

        uint64_t h = 0;
        for (size_t w = 0; w < FLINK_WORDS; w++)
            h ^= buf[w] + (h << 1);
        p->sum += h;
        flink_recycle(p, buf);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "malloc") != 0 && strcmp(argv[1], "segpool") != 0)) {
        fprintf(stderr, "usage: flink malloc|segpool [BUFFERS] [PAIRS] [QUEUE]\n");
        return 2;
    }
    flink_segpool = strcmp(argv[1], "segpool") == 0;
#ifndef BENCH_WITH_SEGPOOL
    if (flink_segpool) {
        fprintf(stderr, "flink: built without libsegpool; use flink_segpool\n");
        return 2;
    }
#else
    if (flink_segpool && segpool_segment_size() < FLINK_BUF) {
        fprintf(stderr, "flink: segment size %zu < %d\n", segpool_segment_size(), FLINK_BUF);
        return 2;
    }
#endif
    long long buffers = bench_arg(argc, argv, 2, 120000);
    unsigned npairs = (unsigned)bench_arg(argc, argv, 3, 2);
    size_t queue = (size_t)bench_arg(argc, argv, 4, 16);
    if (queue > FLINK_QMAX)
        queue = FLINK_QMAX;

    flink_pair_t *pairs = bench_xmalloc(npairs * sizeof *pairs);
    pthread_t *tids = bench_xmalloc(2 * npairs * sizeof *tids);
    for (unsigned i = 0; i < npairs; i++) {
        flink_pair_t *p = &pairs[i];
        memset(p, 0, sizeof *p);
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->not_empty, NULL);
        pthread_cond_init(&p->not_full, NULL);
        p->cap = queue;
        p->id = i;
        p->buffers = buffers;
#ifdef BENCH_WITH_SEGPOOL
        if (flink_segpool && (p->local = segpool_local_create(2, queue + 2)) == NULL)
            bench_fail("flink: segpool_local_create failed");
#endif
        if (pthread_create(&tids[2 * i], NULL, flink_consumer, p) != 0 ||
            pthread_create(&tids[2 * i + 1], NULL, flink_producer, p) != 0)
            bench_fail("pthread_create");
    }
    uint64_t sum = 0;
    for (unsigned i = 0; i < npairs; i++) {
        pthread_join(tids[2 * i], NULL);
        pthread_join(tids[2 * i + 1], NULL);
        sum += pairs[i].sum;
#ifdef BENCH_WITH_SEGPOOL
        if (flink_segpool)
            segpool_local_destroy(pairs[i].local);
#endif
    }
    free(tids);
    free(pairs);
    bench_print_checksum(sum);
    return 0;
}
