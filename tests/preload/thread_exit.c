/*
 * thread_exit.c - threads exit while other threads still hold their blocks.
 *
 * Waves of short-lived threads each allocate blocks of many sizes, fill them
 * with a pattern that names the thread, hand them to a shared table and exit.
 * The blocks outlive their allocating thread: later threads (and the main
 * thread) check the pattern, free some, reallocate others, and allocate new
 * blocks in the memory the dead threads' segments held.  A block whose
 * pattern changed means an exited thread's segment was reused while live.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WAVES = 24, PER_WAVE = 8, PER_THREAD = 200, TABLE = WAVES * PER_WAVE * PER_THREAD };

typedef struct block_s {
    unsigned char *p;
    size_t n;
    unsigned tag;
} block_t;

static block_t table[TABLE];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int failures;

static void fill(block_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->p[i] = (unsigned char)(b->tag + i);
}

static int intact(const block_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->p[i] != (unsigned char)(b->tag + i))
            return 0;
    return 1;
}

static size_t pick_size(unsigned x)
{
    switch (x % 8) {
    case 0: return 1 + x % 16;
    case 1: return 16 + x % 256;
    case 2: return 256 + x % 4096;
    case 3: return 4096 + x % 28000;
    case 4: return 32768; /* exactly one default segment */
    case 5: return 32769 + x % 30000; /* past one segment: libc */
    default: return 24 + x % 512;
    }
}

typedef struct job_s {
    int wave, index;
} job_t;

static void *producer(void *arg)
{
    job_t *job = arg;
    int base = (job->wave * PER_WAVE + job->index) * PER_THREAD;
    unsigned seed = (unsigned)base * 2654435761u + 17;
    /* Blocks from earlier waves are checked and half of them freed here, by a
     * thread that allocated none of them. */
    if (job->wave > 0) {
        int prev = ((job->wave - 1) * PER_WAVE + (job->index + 3) % PER_WAVE) * PER_THREAD;
        pthread_mutex_lock(&table_lock);
        for (int i = prev; i < prev + PER_THREAD; i++) {
            block_t *b = &table[i];
            if (!b->p)
                continue;
            if (!intact(b)) {
                fprintf(stderr, "FAIL: block %d (%zu bytes) of an exited thread was overwritten\n", i, b->n);
                failures++;
            }
            if (i % 2) {
                free(b->p);
                b->p = NULL;
            } else if (i % 4 == 0) {
                unsigned char *q = realloc(b->p, b->n * 2 + 1);
                if (q) {
                    b->p = q;
                    b->n = b->n * 2 + 1;
                    fill(b);
                }
            }
        }
        pthread_mutex_unlock(&table_lock);
    }
    block_t mine[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        seed = seed * 1103515245u + 12345u;
        mine[i].n = pick_size(seed >> 4);
        mine[i].p = malloc(mine[i].n);
        mine[i].tag = (unsigned)(base + i);
        if (!mine[i].p) {
            mine[i].n = 0;
            continue;
        }
        fill(&mine[i]);
    }
    /* Some scratch that this thread frees itself before exiting. */
    for (int i = 0; i < 1000; i++)
        free(malloc(16 + (size_t)i * 7));
    pthread_mutex_lock(&table_lock);
    memcpy(&table[base], mine, sizeof mine);
    pthread_mutex_unlock(&table_lock);
    return NULL; /* exits holding nothing; its blocks live on in the table */
}

int main(void)
{
    for (int w = 0; w < WAVES; w++) {
        pthread_t th[PER_WAVE];
        job_t jobs[PER_WAVE];
        for (int i = 0; i < PER_WAVE; i++) {
            jobs[i] = (job_t){w, i};
            if (pthread_create(&th[i], NULL, producer, &jobs[i]) != 0) {
                fprintf(stderr, "FAIL: pthread_create\n");
                return 1;
            }
        }
        for (int i = 0; i < PER_WAVE; i++)
            pthread_join(th[i], NULL);
        /* The main thread allocates into whatever the exited threads left. */
        void *fresh[2000];
        for (int i = 0; i < 2000; i++) {
            fresh[i] = malloc(pick_size((unsigned)(i * 7 + w)));
            memset(fresh[i], 0xee, 8);
        }
        for (int i = 0; i < 2000; i++)
            free(fresh[i]);
    }
    long live = 0;
    for (int i = 0; i < TABLE; i++) {
        if (!table[i].p)
            continue;
        if (!intact(&table[i])) {
            fprintf(stderr, "FAIL: block %d (%zu bytes) overwritten at the end\n", i, table[i].n);
            failures++;
        }
        live++;
        free(table[i].p);
    }
    printf("thread_exit: %d waves, %ld blocks outlived their threads, %d failures\n", WAVES, live, failures);
    return failures ? 1 : 0;
}
