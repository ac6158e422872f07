/*
 * threads_many.c - case 1 of issue 9: many threads with default (8 MiB)
 * stacks, created and joined, and detached threads whose creator has exited,
 * must all finish.
 *
 * glibc keeps up to 40 MiB of exited threads' stacks for reuse and frees the
 * rest, with their TLS blocks, from pthread_join or the next pthread_create,
 * while it holds its stack-cache lock.  An allocator that starts a thread of
 * its own from inside that free (to give a region back) takes the same lock
 * again and hangs for ever.  250 threads of 8 MiB overflow the cache several
 * times over.
 *
 * Usage: threads_many shim|glibc joined|detached
 */
#define _GNU_SOURCE
#include "hardening.h"

#include <pthread.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { JOINED = 250, ROUNDS = 3, CREATORS = 8, DETACHED_EACH = 40, TIMEOUT_S = 60 };

static atomic_int detached_done;

/* A few blocks of several sizes, written and freed, so that every thread
 * has a heap and its exit hands memory back. */
static void *threads_worker(void *arg) {
    size_t salt = (size_t)arg;
    void *p[6];
    static const size_t sizes[] = {16, 200, 1500, 9000, 30000, 100000};
    for (int i = 0; i < 6; i++) {
        p[i] = malloc(sizes[i] + salt % 16);
        if (!p[i]) abort();
        memset(p[i], (int)i, sizes[i]);
    }
    for (int i = 0; i < 6; i++) free(p[i]);
    return NULL;
}

static void *threads_detached_worker(void *arg) {
    threads_worker(arg);
    atomic_fetch_add(&detached_done, 1);
    return NULL;
}

/* Starts detached threads and exits before they finish. */
static void *threads_creator(void *arg) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < DETACHED_EACH; i++) {
        pthread_t t;
        int rc, tries = 0;
        /* EAGAIN while earlier detached threads are still exiting, on a
         * loaded machine: wait a little for them (under glibc alike). */
        while ((rc = pthread_create(&t, &attr, threads_detached_worker, (char *)arg + i)) == EAGAIN && tries++ < 1000)
            usleep(1000);
        if (rc != 0) {
            fprintf(stderr, "FAIL: pthread_create (detached) failed: %s\n", strerror(rc));
            exit(1);
        }
    }
    pthread_attr_destroy(&attr);
    return NULL;
}

static int threads_joined(void *unused) {
    (void)unused;
    static pthread_t t[JOINED];
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < JOINED; i++)
            if (pthread_create(&t[i], NULL, threads_worker, (void *)i) != 0) {
                fprintf(stderr, "FAIL: pthread_create %zu failed\n", i);
                return 1;
            }
        for (int i = 0; i < JOINED; i++) pthread_join(t[i], NULL);
        /* Freed on the main thread too: blocks of every size, whole regions. */
        threads_worker((void *)(size_t)r);
    }
    printf("%d rounds of %d joined threads finished\n", ROUNDS, JOINED);
    return 0;
}

static int threads_detached(void *unused) {
    (void)unused;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t c[CREATORS];
        atomic_store(&detached_done, 0);
        for (int i = 0; i < CREATORS; i++)
            if (pthread_create(&c[i], NULL, threads_creator, (void *)(size_t)(i * 100)) != 0) return 1;
        for (int i = 0; i < CREATORS; i++) pthread_join(c[i], NULL);
        while (atomic_load(&detached_done) < CREATORS * DETACHED_EACH) usleep(1000);
        usleep(20000); /* let the last detached threads finish exiting */
    }
    printf("%d rounds of %d detached threads finished\n", ROUNDS, CREATORS * DETACHED_EACH);
    return 0;
}

int main(int argc, char **argv) {
    hardening_mode_shim(argc, argv);
    const char *which = argc > 2 ? argv[2] : "joined";
    int (*fn)(void *) = strcmp(which, "detached") == 0 ? threads_detached : threads_joined;
    hardening_result_t res;
    hardening_run(which, fn, NULL, TIMEOUT_S, &res);
    return hardening_expect_exit0(which, &res) ? 0 : 1;
}
