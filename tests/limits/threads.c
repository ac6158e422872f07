/*
 * threads.c - under RLIMIT_AS 256 MiB (`ulimit -v 256M`), as many threads
 * with 8 MiB stacks start under the shim as under glibc (within 2).
 *
 * Thread stacks are mapped by glibc directly, not through malloc, so the
 * arena's own address space is what decides: a child (`threads run`) starts
 * 40 threads that wait, prints how many pthread_create calls succeeded, then
 * lets them allocate a little and exit.
 */
#include "limits_common.h"

#include <pthread.h>

#define LIMIT (256 * LIMITS_MIB)
#define THREADS 40

static int gate[2];

/* Waits for the count, then allocates: glibc would give a thread that
 * allocates an arena of its own (64 MiB of address space), which would make
 * its count depend on timing. */
static void *thread_main(void *arg) {
    (void)arg;
    char c;
    while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
    }
    char *p = malloc(200);
    if (p) memset(p, 1, 200);
    free(p);
    return NULL;
}

static int run(void) {
    if (pipe(gate) != 0) return 2;
    void *warm = malloc(1000); /* the pool is set up before the threads */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8 * LIMITS_MIB);
    pthread_t threads[THREADS];
    int started = 0;
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&threads[started], &attr, thread_main, NULL) == 0) started++;
    printf("%d\n", started);
    fflush(stdout);
    for (int i = 0; i < started; i++)
        if (write(gate[1], "x", 1) != 1) return 2;
    for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
    free(warm);
    return 0;
}

static int count(int shim) {
    char out[64];
    char *argv[] = {"threads", "run", NULL};
    int rc = limits_run(shim, LIMIT, argv, out, sizeof out);
    if (rc != 0) {
        fprintf(stderr, "FAIL: the %s child exited %d\n", shim ? "shim" : "glibc", rc);
        exit(1);
    }
    return atoi(out);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "run") == 0) return run();
    limits_shim();
    int glibc = count(0), shim = count(1);
    printf("threads started under RLIMIT_AS 256M (of %d, 8 MiB stacks): glibc %d, shim %d\n", THREADS, glibc, shim);
    if (glibc < 2) {
        fprintf(stderr, "FAIL: glibc started %d threads: the limit is not what the test expects\n", glibc);
        return 1;
    }
    if (shim < glibc - 2) {
        fprintf(stderr, "FAIL: the shim started more than 2 threads fewer than glibc\n");
        return 1;
    }
    return 0;
}
