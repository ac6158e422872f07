/*
 * remote_free.c - blocks freed by a thread other than the one that allocated
 * them, where the program never wrote (or wrote only a byte of) the block.
 *
 * Legal C: malloc(48) then free() on another thread with no write between.
 * An allocator that keeps its free-list link in the first word of a free
 * block must not take an untouched block for a free one.  Three shapes:
 * the allocating thread still alive, already exited, and malloc(0).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 2000 };

static void *blocks[N];
static pthread_barrier_t barrier;

static size_t size_of(int i)
{
    static const size_t sizes[] = {0, 1, 8, 16, 48, 100, 1000, 4096, 20000};
    return sizes[i % (int)(sizeof sizes / sizeof sizes[0])];
}

static void *allocate(void *arg)
{
    int touch = arg != NULL;
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(size_of(i));
        if (touch && blocks[i] && size_of(i) > 0)
            *(char *)blocks[i] = 1; /* one byte only */
    }
    return NULL;
}

static void *allocate_and_wait(void *arg)
{
    allocate(arg);
    pthread_barrier_wait(&barrier); /* blocks ready */
    pthread_barrier_wait(&barrier); /* main has freed them */
    /* Allocate again on this thread: its heap must still be sound. */
    for (int i = 0; i < N; i++)
        free(malloc(size_of(i)));
    return NULL;
}

static void free_all(void)
{
    for (int i = 0; i < N; i++)
        free(blocks[i]);
}

int main(void)
{
    pthread_t t;
    for (int touch = 0; touch < 2; touch++) {
        /* The allocating thread has exited. */
        pthread_create(&t, NULL, allocate, touch ? (void *)1 : NULL);
        pthread_join(t, NULL);
        free_all();

        /* The allocating thread is alive. */
        pthread_barrier_init(&barrier, NULL, 2);
        pthread_create(&t, NULL, allocate_and_wait, touch ? (void *)1 : NULL);
        pthread_barrier_wait(&barrier);
        free_all();
        pthread_barrier_wait(&barrier);
        pthread_join(t, NULL);
        pthread_barrier_destroy(&barrier);
    }
    puts("remote_free: ok");
    return 0;
}
