/*
 * fork_threads.c - fork() from a threaded program, repeatedly.
 *
 * Worker threads allocate and free continuously while the main thread (and
 * the workers themselves) fork.  A fork can land while another thread holds
 * an allocator lock; the allocator's pthread_atfork handlers must leave the
 * child able to allocate.  Each child allocates and frees blocks of many
 * sizes (pool and fallback), frees a block its parent allocated, and exits 0;
 * a child that hangs is killed by an alarm and counted as a failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WORKERS = 3, FORKS_MAIN = 120, FORKS_WORKER = 20 };

static atomic_int stop;
static atomic_int failures;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* What a child does: allocate, touch, free; pool sizes and big ones. */
static int child_work(void *inherited, size_t inherited_len)
{
    alarm(20);
    unsigned char *c = inherited;
    for (size_t i = 0; i < inherited_len; i++)
        if (c[i] != 0x3c)
            return 3;
    free(inherited);
    unsigned seed = (unsigned)getpid();
    void *keep[64] = {0};
    for (int i = 0; i < 5000; i++) {
        int k = (int)(rnd(&seed) % 64);
        free(keep[k]);
        size_t n = (i % 100 == 0) ? 200000 + rnd(&seed) % 100000 : rnd(&seed) % 3000;
        keep[k] = malloc(n);
        if (!keep[k])
            return 4;
        memset(keep[k], k, n);
    }
    for (int k = 0; k < 64; k++)
        free(keep[k]);
    char *s = NULL;
    if (asprintf(&s, "child %d", getpid()) < 0)
        return 5;
    free(s);
    return 0;
}

static void fork_one(void)
{
    size_t len = 100 + (size_t)(rand() % 40000);
    void *blk = malloc(len);
    memset(blk, 0x3c, len);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        atomic_fetch_add(&failures, 1);
        free(blk);
        return;
    }
    if (pid == 0)
        _exit(child_work(blk, len));
    free(blk);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "FAIL: child %d: %s %d\n", pid, WIFEXITED(st) ? "exit" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        atomic_fetch_add(&failures, 1);
    }
}

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg * 7919u + 1;
    void *slots[256] = {0};
    int forks = 0;
    long iter = 0;
    while (!atomic_load(&stop)) {
        int k = (int)(rnd(&seed) % 256);
        free(slots[k]);
        size_t n = (rnd(&seed) % 50 == 0) ? 40000 + rnd(&seed) % 60000 : 8 + rnd(&seed) % 2000;
        slots[k] = malloc(n);
        if (slots[k])
            memset(slots[k], 1, n < 64 ? n : 64);
        /* Workers fork too, so a fork also lands in the middle of their own
         * allocations' bookkeeping on other threads. */
        if (++iter % 20000 == 0 && forks < FORKS_WORKER) {
            fork_one();
            forks++;
        }
    }
    for (int i = 0; i < 256; i++)
        free(slots[i]);
    return NULL;
}

int main(void)
{
    pthread_t th[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, worker, (void *)i);
    for (int i = 0; i < FORKS_MAIN; i++)
        fork_one();
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    int f = atomic_load(&failures);
    printf("fork_threads: %d failures\n", f);
    return f ? 1 : 0;
}
