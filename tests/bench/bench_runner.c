/*
 * bench_runner - run one command and measure it from the outside.
 *
 *   bench_runner [-o FILE] [-p LIB] [-e NAME=VALUE]... [-i FILE] [-t SECS] -- CMD [ARG]...
 *
 *   -o FILE   write the measurement there (default: stderr)
 *   -p LIB    LD_PRELOAD LIB into the command (not into the runner itself)
 *   -e N=V    set an environment variable for the command
 *   -i FILE   the command's standard input
 *   -t SECS   kill the command's process group after SECS seconds
 *
 * The measurement is one line of JSON, read by scripts/bench.py as data:
 *
 *   {"wall_s": 1.234567, "user_s": 1.100000, "sys_s": 0.120000,
 *    "maxrss_kb": 123456, "status": 0}
 *
 * wall is measured with CLOCK_MONOTONIC around fork..wait4; user, sys and
 * maxrss come from wait4()'s rusage, which covers the child and every
 * descendant it waited for (so a driver script's children are included, and
 * maxrss is the largest of them).  status is the exit code, or 128+signal.
 * The runner exits with the command's status.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t runner_child;

static void runner_timeout(int sig)
{
    (void)sig;
    if (runner_child > 0)
        kill(-runner_child, SIGKILL);
}

static double runner_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void runner_usage(void)
{
    fprintf(stderr, "usage: bench_runner [-o FILE] [-p LIB] [-e N=V]... [-i FILE] [-t SECS] -- CMD [ARG]...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *out = NULL, *preload = NULL, *input = NULL;
    const char *envs[64];
    int nenv = 0;
    long timeout = 0;
    int opt;

    while ((opt = getopt(argc, argv, "+o:p:e:i:t:")) != -1) {
        switch (opt) {
        case 'o': out = optarg; break;
        case 'p': preload = optarg; break;
        case 'i': input = optarg; break;
        case 't': timeout = strtol(optarg, NULL, 10); break;
        case 'e':
            if (nenv == 64 || strchr(optarg, '=') == NULL)
                runner_usage();
            envs[nenv++] = optarg;
            break;
        default: runner_usage();
        }
    }
    if (optind >= argc)
        runner_usage();

    double t0 = runner_now();
    runner_child = fork();
    if (runner_child < 0) {
        perror("fork");
        return 127;
    }
    if (runner_child == 0) {
        setpgid(0, 0);
        for (int i = 0; i < nenv; i++)
            putenv((char *)envs[i]);
        if (preload != NULL && preload[0] != '\0')
            setenv("LD_PRELOAD", preload, 1);
        if (input != NULL) {
            int fd = open(input, O_RDONLY);
            if (fd < 0 || dup2(fd, 0) < 0) {
                perror(input);
                _exit(127);
            }
            close(fd);
        }
        execvp(argv[optind], argv + optind);
        perror(argv[optind]);
        _exit(127);
    }
    setpgid(runner_child, runner_child);
    if (timeout > 0) {
        signal(SIGALRM, runner_timeout);
        alarm((unsigned)timeout);
    }

    int status;
    struct rusage ru;
    pid_t r;
    while ((r = wait4(runner_child, &status, 0, &ru)) < 0 && errno == EINTR)
        ;
    double wall = runner_now() - t0;
    if (r < 0) {
        perror("wait4");
        return 127;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

    FILE *f = stderr;
    if (out != NULL && (f = fopen(out, "w")) == NULL) {
        perror(out);
        f = stderr;
    }
    fprintf(f, "{\"wall_s\": %.6f, \"user_s\": %.6f, \"sys_s\": %.6f, \"maxrss_kb\": %ld, \"status\": %d}\n", wall,
            (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6,
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6, ru.ru_maxrss, code);
    if (f != stderr)
        fclose(f);
    return code;
}
