/*
 * check_config.c - unit tests of the SEGSHIM_* option parser (config.c).
 *
 * core    valid values of every kind, every suffix and case; config_load on a
 *         clean environment; config_format and its round trip
 * limits  the bounds of each option, overflow, path length, truncation
 * errors  every kind of bad value, the one-line message of config_load,
 *         secure mode, unknown variables
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* ---- Helpers -------------------------------------------------------------- */

/* Field-by-field comparison, generated from the same table as config_t. */
static void assert_config_eq(const config_t *a, const config_t *b) {
#define CHECK_FIELD(NAME, field, kind, def, lo, hi, help) \
    ck_assert_msg(a->field == b->field, "SEGSHIM_" #NAME ": %lld != %lld", (long long)a->field, (long long)b->field);
    SEGPOOL_OPTIONS(CHECK_FIELD)
#undef CHECK_FIELD
    ck_assert_str_eq(a->stats_path, b->stats_path);
}

/* Run config_load with errfd a pipe; return what it wrote (NUL-terminated in
 * out) and the number of newline characters. */
static int load_capture(config_t *cfg, char *const *envp, int secure, int *bad, char *out, size_t out_len) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    *bad = config_load(cfg, envp, secure, fds[1]);
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + len, out_len - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_int_ge(n, 0);
        if (n == 0)
            break;
        len += (size_t)n;
        ck_assert_uint_lt(len, out_len - 1); /* the buffer is large enough */
    }
    close(fds[0]);
    out[len] = '\0';
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += out[i] == '\n';
    return lines;
}

/* ---- core ----------------------------------------------------------------- */

START_TEST(test_defaults) {
    config_t c;
    memset(&c, 0x5a, sizeof(c));
    config_defaults(&c);
    ck_assert_int_eq(c.segment_size, 32 * 1024);
    ck_assert_int_eq(c.pool_size, 0);
    ck_assert_int_eq(c.hugepages, HUGEPAGES_AUTO);
    ck_assert_int_eq(c.prefault, 0);
    ck_assert_int_eq(c.tcache, 128);
    ck_assert_int_eq(c.decay_ms, 1000);
    ck_assert_int_eq(c.stats, 0);
    ck_assert_int_eq(c.verbose, 0);
    ck_assert_int_eq(c.disable, 0);
    ck_assert_str_eq(c.stats_path, "");
}
END_TEST

static const struct {
    const char *name;
    const char *value;
    int64_t expect;
} valid_sizes[] = {
    {"SEGMENT_SIZE", "32K", 32768},
    {"SEGMENT_SIZE", "32k", 32768},
    {"SEGMENT_SIZE", "32KB", 32768},
    {"SEGMENT_SIZE", "32kb", 32768},
    {"SEGMENT_SIZE", "32Kb", 32768},
    {"SEGMENT_SIZE", "32KiB", 32768},
    {"SEGMENT_SIZE", "32kib", 32768},
    {"SEGMENT_SIZE", "32KIB", 32768},
    {"SEGMENT_SIZE", "32768", 32768},
    {"SEGMENT_SIZE", "32768B", 32768},
    {"SEGMENT_SIZE", "32768b", 32768},
    {"SEGMENT_SIZE", "0032K", 32768},
    {"SEGMENT_SIZE", "4K", 4096},
    {"SEGMENT_SIZE", "64K", 65536},
    {"SEGMENT_SIZE", "1M", 1048576},
    {"SEGMENT_SIZE", "1m", 1048576},
    {"SEGMENT_SIZE", "1MB", 1048576},
    {"SEGMENT_SIZE", "1MiB", 1048576},
    {"SEGMENT_SIZE", "1mib", 1048576},
    {"SEGMENT_SIZE", "1024K", 1048576},
    {"POOL_SIZE", "2G", 2 * CONFIG_GIB},
    {"POOL_SIZE", "2g", 2 * CONFIG_GIB},
    {"POOL_SIZE", "2GB", 2 * CONFIG_GIB},
    {"POOL_SIZE", "2GiB", 2 * CONFIG_GIB},
    {"POOL_SIZE", "2gib", 2 * CONFIG_GIB},
    {"POOL_SIZE", "3M", 3 * CONFIG_MIB}, /* a SIZE need not be a power of two */
    {"POOL_SIZE", "2097152", 2 * CONFIG_MIB},
    {"POOL_SIZE", "3000000", 3000000},
    {"POOL_SIZE", "0", 0}, /* the default: physical RAM */
    {"PREFAULT", "0", 0},
    {"PREFAULT", "1", 1},
    {"PREFAULT", "512M", 512 * CONFIG_MIB},
    {"PREFAULT", "7k", 7 * 1024},
};

START_TEST(test_size_valid) {
    config_t c;
    char why[64] = "untouched";
    config_defaults(&c);
    int rc = config_parse_value(&c, valid_sizes[_i].name, valid_sizes[_i].value, why, sizeof(why));
    ck_assert_msg(rc == 0, "%s=%s rejected: %s", valid_sizes[_i].name, valid_sizes[_i].value, why);
    int64_t got = strcmp(valid_sizes[_i].name, "SEGMENT_SIZE") == 0 ? c.segment_size
                  : strcmp(valid_sizes[_i].name, "POOL_SIZE") == 0  ? c.pool_size
                                                                     : c.prefault;
    ck_assert_msg(got == valid_sizes[_i].expect, "%s=%s gave %lld, want %lld", valid_sizes[_i].name,
                  valid_sizes[_i].value, (long long)got, (long long)valid_sizes[_i].expect);
}
END_TEST

START_TEST(test_int_valid) {
    config_t c;
    char why[64];
    config_defaults(&c);
    ck_assert_int_eq(config_parse_value(&c, "TCACHE", "0", why, sizeof(why)), 0);
    ck_assert_int_eq(c.tcache, 0);
    ck_assert_int_eq(config_parse_value(&c, "TCACHE", "16", why, sizeof(why)), 0);
    ck_assert_int_eq(c.tcache, 16);
    ck_assert_int_eq(config_parse_value(&c, "TCACHE", "007", why, sizeof(why)), 0);
    ck_assert_int_eq(c.tcache, 7);
    ck_assert_int_eq(config_parse_value(&c, "DECAY_MS", "-1", why, sizeof(why)), 0);
    ck_assert_int_eq(c.decay_ms, -1);
    ck_assert_int_eq(config_parse_value(&c, "DECAY_MS", "-0", why, sizeof(why)), 0);
    ck_assert_int_eq(c.decay_ms, 0);
    ck_assert_int_eq(config_parse_value(&c, "DECAY_MS", "250", why, sizeof(why)), 0);
    ck_assert_int_eq(c.decay_ms, 250);
    /* the other fields stay put */
    ck_assert_int_eq(c.segment_size, 32768);
    ck_assert_int_eq(c.verbose, 0);
}
END_TEST

START_TEST(test_bool_valid) {
    config_t c;
    char why[64];
    config_defaults(&c);
    ck_assert_int_eq(config_parse_value(&c, "VERBOSE", "1", why, sizeof(why)), 0);
    ck_assert_int_eq(c.verbose, 1);
    ck_assert_int_eq(config_parse_value(&c, "DISABLE", "1", why, sizeof(why)), 0);
    ck_assert_int_eq(c.disable, 1);
    ck_assert_int_eq(config_parse_value(&c, "VERBOSE", "0", why, sizeof(why)), 0);
    ck_assert_int_eq(c.verbose, 0);
    ck_assert_int_eq(c.disable, 1);
}
END_TEST

START_TEST(test_mode_valid) {
    static const struct {
        const char *v;
        int64_t mode;
    } t[] = {{"auto", HUGEPAGES_AUTO},       {"AUTO", HUGEPAGES_AUTO}, {"Auto", HUGEPAGES_AUTO},
             {"thp", HUGEPAGES_THP},         {"THP", HUGEPAGES_THP},   {"tHp", HUGEPAGES_THP},
             {"hugetlb", HUGEPAGES_HUGETLB}, {"HugeTLB", HUGEPAGES_HUGETLB},
             {"off", HUGEPAGES_OFF},         {"OFF", HUGEPAGES_OFF}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        config_t c;
        char why[64];
        config_defaults(&c);
        c.hugepages = -7;
        ck_assert_msg(config_parse_value(&c, "HUGEPAGES", t[i].v, why, sizeof(why)) == 0, "%s: %s", t[i].v, why);
        ck_assert_int_eq(c.hugepages, t[i].mode);
    }
}
END_TEST

START_TEST(test_stats_valid) {
    config_t c;
    char why[64];
    config_defaults(&c);
    ck_assert_int_eq(config_parse_value(&c, "STATS", "1", why, sizeof(why)), 0);
    ck_assert_int_eq(c.stats, 1);
    ck_assert_str_eq(c.stats_path, "");
    ck_assert_int_eq(config_parse_value(&c, "STATS", "/tmp/segshim.json", why, sizeof(why)), 0);
    ck_assert_int_eq(c.stats, 2);
    ck_assert_str_eq(c.stats_path, "/tmp/segshim.json");
    ck_assert_int_eq(config_parse_value(&c, "STATS", "./s.json", why, sizeof(why)), 0);
    ck_assert_int_eq(c.stats, 2);
    ck_assert_str_eq(c.stats_path, "./s.json");
    ck_assert_int_eq(config_parse_value(&c, "STATS", ".stats", why, sizeof(why)), 0);
    ck_assert_str_eq(c.stats_path, ".stats");
    ck_assert_int_eq(config_parse_value(&c, "STATS", "out/run 1.json", why, sizeof(why)), 0);
    ck_assert_int_eq(c.stats, 2);
    ck_assert_str_eq(c.stats_path, "out/run 1.json");
    /* any value but 0 and 1 is a path, relative to the working directory */
    static const char *const relative[] = {"stats.json", "stats-%p.json", "2", "yes", "01", "2x?"};
    for (size_t i = 0; i < sizeof(relative) / sizeof(relative[0]); i++) {
        ck_assert_msg(config_parse_value(&c, "STATS", relative[i], why, sizeof(why)) == 0, "%s: %s", relative[i], why);
        ck_assert_int_eq(c.stats, CONFIG_STATS_PATH);
        ck_assert_str_eq(c.stats_path, relative[i]);
    }
    /* back to 0 forgets the path */
    ck_assert_int_eq(config_parse_value(&c, "STATS", "0", why, sizeof(why)), 0);
    ck_assert_int_eq(c.stats, 0);
    ck_assert_str_eq(c.stats_path, "");
}
END_TEST

static void roundtrip(const config_t *in);

START_TEST(test_signal_valid) {
    static const struct {
        const char *v;
        int64_t signo;
        const char *printed;
    } t[] = {
        {"SIGUSR2", 12, "SIGUSR2"}, {"USR2", 12, "SIGUSR2"}, {"sigusr1", 10, "SIGUSR1"}, {"Hup", 1, "SIGHUP"},
        {"12", 12, "SIGUSR2"},      {"34", 34, "34"},        {"64", 64, "64"},           {"0", 0, "0"},
        {"SIGPROF", 27, "SIGPROF"}, {"winch", 28, "SIGWINCH"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        config_t c;
        char why[64], buf[1024];
        config_defaults(&c);
        ck_assert_msg(config_parse_value(&c, "STATS_SIGNAL", t[i].v, why, sizeof(why)) == 0, "%s: %s", t[i].v, why);
        ck_assert_int_eq(c.stats_signal, t[i].signo);
        /* printed by name where it has one, and parsed back */
        config_format(&c, buf, sizeof(buf));
        char want[64];
        snprintf(want, sizeof(want), "SEGSHIM_STATS_SIGNAL=%s\n", t[i].printed);
        ck_assert_msg(strstr(buf, want) != NULL, "%s not in:\n%s", want, buf);
        roundtrip(&c);
    }
}
END_TEST

START_TEST(test_format_requested) {
    /* the configuration in force beside the one asked for (SEGSHIM_VERBOSE) */
    config_t asked, in_force;
    char buf[2048];
    config_defaults(&asked);
    in_force = asked;
    in_force.pool_size = 4 * CONFIG_GIB;
    in_force.hugepages = HUGEPAGES_THP;
    size_t n = config_format_lines(&in_force, &asked, "segshim: ", buf, sizeof(buf));
    ck_assert_uint_eq(n, strlen(buf));
    ck_assert_ptr_nonnull(strstr(buf, "segshim: SEGSHIM_POOL_SIZE=4G  (requested 0)\n"));
    ck_assert_ptr_nonnull(strstr(buf, "segshim: SEGSHIM_HUGEPAGES=thp  (requested auto)\n"));
    ck_assert_ptr_nonnull(strstr(buf, "segshim: SEGSHIM_TCACHE=128\n"));
    for (const char *line = buf; *line; line = strchr(line, '\n') + 1)
        ck_assert_msg(strncmp(line, "segshim: SEGSHIM_", 17) == 0, "unprefixed line in:\n%s", buf);
    /* a path that differs is a difference too */
    strcpy(in_force.stats_path, "b.json");
    in_force.stats = CONFIG_STATS_PATH;
    asked.stats = CONFIG_STATS_PATH;
    strcpy(asked.stats_path, "a.json");
    config_format_lines(&in_force, &asked, "", buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "\nSEGSHIM_STATS=b.json  (requested a.json)\n"));
}
END_TEST

START_TEST(test_hugepage_name) {
    ck_assert_str_eq(config_hugepage_name(HUGEPAGES_AUTO), "auto");
    ck_assert_str_eq(config_hugepage_name(HUGEPAGES_THP), "thp");
    ck_assert_str_eq(config_hugepage_name(HUGEPAGES_HUGETLB), "hugetlb");
    ck_assert_str_eq(config_hugepage_name(HUGEPAGES_OFF), "off");
    ck_assert_ptr_nonnull(config_hugepage_name(-1));
    ck_assert_ptr_nonnull(config_hugepage_name(4));
    ck_assert_str_ne(config_hugepage_name(4), "off");
}
END_TEST

START_TEST(test_load_valid) {
    char *env[] = {"PATH=/usr/bin",
                   "SEGSHIM_SEGMENT_SIZE=64k",
                   "HOME=/root",
                   "SEGSHIM_POOL_SIZE=1G",
                   "SEGSHIM_HUGEPAGES=off",
                   "SEGSHIM_PREFAULT=4M",
                   "SEGSHIM_TCACHE=0",
                   "SEGSHIM_DECAY_MS=-1",
                   "SEGSHIM_STATS=/tmp/st.json",
                   "SEGSHIM_VERBOSE=1",
                   "SEGSHIM_DISABLE=0",
                   "SEGSHIMX=1",          /* not our prefix */
                   "MY_SEGSHIM_FOO=1",    /* not our prefix */
                   "SEGSHIM_NOEQUALS",    /* not a variable */
                   NULL};
    config_t c;
    char out[4096];
    int bad;
    memset(&c, 0x5a, sizeof(c));
    int lines = load_capture(&c, env, 0, &bad, out, sizeof(out));
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(lines, 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(c.segment_size, 65536);
    ck_assert_int_eq(c.pool_size, CONFIG_GIB);
    ck_assert_int_eq(c.hugepages, HUGEPAGES_OFF);
    ck_assert_int_eq(c.prefault, 4 * CONFIG_MIB);
    ck_assert_int_eq(c.tcache, 0);
    ck_assert_int_eq(c.decay_ms, -1);
    ck_assert_int_eq(c.stats, 2);
    ck_assert_str_eq(c.stats_path, "/tmp/st.json");
    ck_assert_int_eq(c.verbose, 1);
    ck_assert_int_eq(c.disable, 0);
}
END_TEST

START_TEST(test_load_empty_env) {
    char *env[] = {NULL};
    config_t c, d;
    char out[256];
    int bad;
    config_defaults(&d);
    memset(&c, 0x5a, sizeof(c));
    ck_assert_int_eq(load_capture(&c, env, 0, &bad, out, sizeof(out)), 0);
    ck_assert_int_eq(bad, 0);
    assert_config_eq(&c, &d);
    /* a NULL envp is an empty environment */
    memset(&c, 0x5a, sizeof(c));
    ck_assert_int_eq(config_load(&c, NULL, 0, -1), 0);
    assert_config_eq(&c, &d);
}
END_TEST

START_TEST(test_format_defaults) {
    config_t c;
    char buf[1024];
    config_defaults(&c);
    size_t n = config_format(&c, buf, sizeof(buf));
    ck_assert_uint_eq(n, strlen(buf));
    ck_assert_str_eq(buf, "SEGSHIM_SEGMENT_SIZE=32K\n"
                          "SEGSHIM_POOL_SIZE=0\n"
                          "SEGSHIM_HUGEPAGES=auto\n"
                          "SEGSHIM_PREFAULT=0\n"
                          "SEGSHIM_TCACHE=128\n"
                          "SEGSHIM_DECAY_MS=1000\n"
                          "SEGSHIM_RETAIN=32M\n"
                          "SEGSHIM_SHARDS=0\n"
                          "SEGSHIM_STATS=0\n"
                          "SEGSHIM_STATS_SIGNAL=0\n"
                          "SEGSHIM_VERBOSE=0\n"
                          "SEGSHIM_DISABLE=0\n");
}
END_TEST

START_TEST(test_format_units) {
    config_t c;
    char buf[1024];
    config_defaults(&c);
    c.segment_size = CONFIG_MIB;
    c.pool_size = 3 * CONFIG_GIB + CONFIG_MIB; /* not a whole number of G: M */
    c.prefault = 1536;                         /* not a whole K: bytes */
    c.hugepages = HUGEPAGES_HUGETLB;
    c.decay_ms = -1;
    c.stats = 1;
    config_format(&c, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "SEGSHIM_SEGMENT_SIZE=1M\n"));
    ck_assert_ptr_nonnull(strstr(buf, "SEGSHIM_POOL_SIZE=3073M\n"));
    ck_assert_ptr_nonnull(strstr(buf, "SEGSHIM_PREFAULT=1536\n"));
    ck_assert_ptr_nonnull(strstr(buf, "SEGSHIM_HUGEPAGES=hugetlb\n"));
    ck_assert_ptr_nonnull(strstr(buf, "SEGSHIM_DECAY_MS=-1\n"));
    ck_assert_ptr_nonnull(strstr(buf, "SEGSHIM_STATS=1\n"));
    c.pool_size = 64 * CONFIG_GIB * 1024; /* 64T: G is the largest unit */
    c.stats = 2;
    strcpy(c.stats_path, "/var/tmp/s.json");
    config_format(&c, buf, sizeof(buf));
    ck_assert_ptr_nonnull(strstr(buf, "SEGSHIM_POOL_SIZE=65536G\n"));
    ck_assert_ptr_nonnull(strstr(buf, "SEGSHIM_STATS=/var/tmp/s.json\n"));
}
END_TEST

/* Parse what config_format printed, through config_load. */
static void roundtrip(const config_t *in) {
    char buf[2048];
    char *env[32];
    int n = 0;
    config_t out;
    char msgs[1024];
    int bad;
    config_format(in, buf, sizeof(buf));
    for (char *line = strtok(buf, "\n"); line != NULL && n < 31; line = strtok(NULL, "\n"))
        env[n++] = line;
    env[n] = NULL;
#define CONFIG_COUNT_ONE(NAME, field, kind, def, lo, hi, help) +1
    ck_assert_int_eq(n, 0 SEGPOOL_OPTIONS(CONFIG_COUNT_ONE));
#undef CONFIG_COUNT_ONE
    ck_assert_int_eq(load_capture(&out, env, 0, &bad, msgs, sizeof(msgs)), 0);
    ck_assert_msg(bad == 0, "round trip rejected: %s", msgs);
    assert_config_eq(&out, in);
}

START_TEST(test_format_roundtrip) {
    config_t c;
    config_defaults(&c);
    roundtrip(&c);

    c.segment_size = 4096;
    c.pool_size = 3 * CONFIG_GIB + CONFIG_MIB;
    c.hugepages = HUGEPAGES_THP;
    c.prefault = 1536;
    c.tcache = 1024;
    c.decay_ms = -1;
    c.stats = 2;
    strcpy(c.stats_path, "./stats.json");
    c.verbose = 1;
    c.disable = 1;
    roundtrip(&c);

    config_defaults(&c);
    c.segment_size = CONFIG_MIB;
    c.pool_size = 64 * CONFIG_GIB * 1024;
    c.hugepages = HUGEPAGES_OFF;
    c.prefault = 64 * CONFIG_GIB * 1024;
    c.decay_ms = 3600000;
    c.stats = 1;
    roundtrip(&c);
}
END_TEST

/* ---- limits --------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *value;
    int ok;
    const char *why; /* substring of the reason when !ok */
} bounds[] = {
    {"SEGMENT_SIZE", "4K", 1, NULL},
    {"SEGMENT_SIZE", "4096", 1, NULL},
    {"SEGMENT_SIZE", "1M", 1, NULL},
    {"SEGMENT_SIZE", "2K", 0, "below the minimum 4K"},
    {"SEGMENT_SIZE", "2M", 0, "above the maximum 1M"},
    {"SEGMENT_SIZE", "0", 0, "below the minimum 4K"},
    {"SEGMENT_SIZE", "1G", 0, "above the maximum 1M"},
    {"POOL_SIZE", "2M", 1, NULL},
    {"POOL_SIZE", "65536G", 1, NULL},
    {"POOL_SIZE", "2097151", 0, "below the minimum 2M"},
    {"POOL_SIZE", "1M", 0, "below the minimum 2M"},
    {"POOL_SIZE", "65537G", 0, "above the maximum 65536G"},
    {"PREFAULT", "65536G", 1, NULL},
    {"PREFAULT", "65537G", 0, "above the maximum"},
    {"TCACHE", "0", 1, NULL},
    {"TCACHE", "1024", 1, NULL},
    {"TCACHE", "1025", 0, "above the maximum 1024"},
    {"TCACHE", "-1", 0, "below the minimum 0"},
    {"DECAY_MS", "-1", 1, NULL},
    {"DECAY_MS", "3600000", 1, NULL},
    {"DECAY_MS", "-2", 0, "below the minimum -1"},
    {"DECAY_MS", "3600001", 0, "above the maximum 3600000"},
    /* overflow */
    {"POOL_SIZE", "99999999999G", 0, "too large"},
    {"POOL_SIZE", "18446744073709551616", 0, "too large"},
    {"POOL_SIZE", "18446744073709551615", 0, "too large"},
    {"POOL_SIZE", "9223372036854775808", 0, "too large"},
    {"POOL_SIZE", "9223372036854775807", 0, "above the maximum"},
    {"POOL_SIZE", "8589934592G", 0, "too large"}, /* 2^63 bytes */
    {"POOL_SIZE", "8589934591G", 0, "above the maximum"},
    {"SEGMENT_SIZE", "99999999999999999999999K", 0, "too large"},
    {"PREFAULT", "17179869184M", 0, "above the maximum"}, /* 2^54: fits in int64 */
    {"TCACHE", "9223372036854775807", 0, "above the maximum"},
    {"TCACHE", "9223372036854775808", 0, "too large"},
    {"DECAY_MS", "-9223372036854775808", 0, "below the minimum"},
    {"DECAY_MS", "-9223372036854775809", 0, "too large"},
    {"DECAY_MS", "99999999999999999999", 0, "too large"},
};

START_TEST(test_bounds) {
    config_t c, before;
    char why[96] = "";
    config_defaults(&c);
    before = c;
    int rc = config_parse_value(&c, bounds[_i].name, bounds[_i].value, why, sizeof(why));
    if (bounds[_i].ok) {
        ck_assert_msg(rc == 0, "%s=%s rejected: %s", bounds[_i].name, bounds[_i].value, why);
    } else {
        ck_assert_msg(rc == -1, "%s=%s accepted", bounds[_i].name, bounds[_i].value);
        ck_assert_msg(strstr(why, bounds[_i].why) != NULL, "%s=%s: reason \"%s\", want \"%s\"", bounds[_i].name,
                      bounds[_i].value, why, bounds[_i].why);
        assert_config_eq(&c, &before);
    }
}
END_TEST

START_TEST(test_path_length) {
    config_t c;
    char why[96];
    char path[CONFIG_PATH_MAX + 8];
    config_defaults(&c);
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[CONFIG_PATH_MAX - 1] = '\0'; /* 255 bytes: fits */
    ck_assert_int_eq(config_parse_value(&c, "STATS", path, why, sizeof(why)), 0);
    ck_assert_int_eq(c.stats, 2);
    ck_assert_uint_eq(strlen(c.stats_path), CONFIG_PATH_MAX - 1);
    ck_assert_str_eq(c.stats_path, path);

    config_defaults(&c);
    path[CONFIG_PATH_MAX - 1] = 'a';
    path[CONFIG_PATH_MAX] = '\0'; /* 256 bytes: one too many */
    ck_assert_int_eq(config_parse_value(&c, "STATS", path, why, sizeof(why)), -1);
    ck_assert_ptr_nonnull(strstr(why, "path longer than 255"));
    ck_assert_int_eq(c.stats, 0);
    ck_assert_str_eq(c.stats_path, "");
}
END_TEST

START_TEST(test_format_truncation) {
    config_t c;
    char full[1024], small[16];
    config_defaults(&c);
    size_t n = config_format(&c, full, sizeof(full));
    ck_assert_uint_gt(n, 15);
    memset(small, 'x', sizeof(small));
    ck_assert_uint_eq(config_format(&c, small, sizeof(small)), 15);
    ck_assert_int_eq(small[15], '\0');
    ck_assert_int_eq(memcmp(small, full, 15), 0);
    small[0] = 'x';
    ck_assert_uint_eq(config_format(&c, small, 0), 0);
    ck_assert_int_eq(small[0], 'x');
    ck_assert_uint_eq(config_format(&c, small, 1), 0);
    ck_assert_int_eq(small[0], '\0');
}
END_TEST

START_TEST(test_why_small_buffer) {
    /* why is bounded by why_len, and NULL is allowed */
    config_t c;
    char why[8];
    memset(why, 'x', sizeof(why));
    config_defaults(&c);
    ck_assert_int_eq(config_parse_value(&c, "SEGMENT_SIZE", "48K", why, 5), -1);
    ck_assert_str_eq(why, "not ");
    ck_assert_int_eq(why[5], 'x');
    ck_assert_int_eq(config_parse_value(&c, "SEGMENT_SIZE", "48K", NULL, 0), -1);
    ck_assert_int_eq(config_parse_value(&c, "SEGMENT_SIZE", "64K", NULL, 0), 0);
    ck_assert_int_eq(c.segment_size, 65536);
}
END_TEST

/* ---- errors --------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *value;
    const char *why;
} bad_values[] = {
    /* SIZE / POW2 */
    {"SEGMENT_SIZE", "", "empty"},
    {"SEGMENT_SIZE", "abc", "not a number"},
    {"SEGMENT_SIZE", "K", "not a number"},
    {"SEGMENT_SIZE", "-32K", "negative"},
    {"SEGMENT_SIZE", "+32K", "sign not allowed"},
    {"SEGMENT_SIZE", " 32K", "leading space"},
    {"SEGMENT_SIZE", "32K ", "trailing junk"},
    {"SEGMENT_SIZE", "3 2K", "trailing junk"},
    {"SEGMENT_SIZE", "32X", "trailing junk"},
    {"SEGMENT_SIZE", "32KK", "trailing junk"},
    {"SEGMENT_SIZE", "32Kb5", "trailing junk"},
    {"SEGMENT_SIZE", "32KiBx", "trailing junk"},
    {"SEGMENT_SIZE", "32Ki", "trailing junk"},
    {"SEGMENT_SIZE", "32768iB", "trailing junk"},
    {"SEGMENT_SIZE", "32T", "trailing junk"},
    {"SEGMENT_SIZE", "0x8000", "trailing junk"},
    {"SEGMENT_SIZE", "1.5M", "trailing junk"},
    {"SEGMENT_SIZE", "48K", "not a power of two"},
    {"SEGMENT_SIZE", "96k", "not a power of two"},
    {"SEGMENT_SIZE", "32769", "not a power of two"},
    {"POOL_SIZE", "", "empty"},
    {"POOL_SIZE", "lots", "not a number"},
    {"POOL_SIZE", "-1G", "negative"},
    {"POOL_SIZE", "+1G", "sign not allowed"},
    {"POOL_SIZE", "1G\n", "trailing junk"},
    {"POOL_SIZE", "1 G", "trailing junk"},
    {"PREFAULT", "-1", "negative"},
    {"PREFAULT", "1e6", "trailing junk"},
    /* INT */
    {"TCACHE", "", "empty"},
    {"TCACHE", "many", "not a number"},
    {"TCACHE", "+5", "sign not allowed"},
    {"TCACHE", " 5", "leading space"},
    {"TCACHE", "5 ", "trailing junk"},
    {"TCACHE", "5x", "trailing junk"},
    {"TCACHE", "8K", "trailing junk"},
    {"TCACHE", "1e3", "trailing junk"},
    {"DECAY_MS", "-", "not a number"},
    {"DECAY_MS", "--1", "not a number"},
    {"DECAY_MS", "- 1", "not a number"},
    {"DECAY_MS", "-1-", "trailing junk"},
    {"DECAY_MS", "1.5", "trailing junk"},
    /* BOOL */
    {"VERBOSE", "", "empty"},
    {"VERBOSE", "2", "not 0 or 1"},
    {"VERBOSE", "yes", "not 0 or 1"},
    {"VERBOSE", "true", "not 0 or 1"},
    {"VERBOSE", "01", "not 0 or 1"},
    {"VERBOSE", " 1", "not 0 or 1"},
    {"DISABLE", "-1", "not 0 or 1"},
    {"DISABLE", "1 ", "not 0 or 1"},
    /* MODE */
    {"HUGEPAGES", "", "empty"},
    {"HUGEPAGES", "always", "not auto, thp, hugetlb or off"},
    {"HUGEPAGES", "thp ", "not auto, thp, hugetlb or off"},
    {"HUGEPAGES", "hugetlbfs", "not auto, thp, hugetlb or off"},
    {"HUGEPAGES", "of", "not auto, thp, hugetlb or off"},
    {"HUGEPAGES", "0", "not auto, thp, hugetlb or off"},
    /* STATS */
    {"STATS", "", "empty"},
    /* SIGNAL */
    {"STATS_SIGNAL", "", "empty"},
    {"STATS_SIGNAL", "SIGFOO", "not a signal name or number"},
    {"STATS_SIGNAL", "SIG", "not a signal name or number"},
    {"STATS_SIGNAL", "usr", "not a signal name or number"},
    {"STATS_SIGNAL", "SIGUSR2 ", "not a signal name or number"},
    {"STATS_SIGNAL", "65", "above the maximum 64"},
    {"STATS_SIGNAL", "-1", "not a signal name or number"},
    {"STATS_SIGNAL", "12x", "trailing junk"},
    {"STATS_SIGNAL", "SIGKILL", "cannot be caught"},
    {"STATS_SIGNAL", "19", "cannot be caught"},
    {"STATS_SIGNAL", "SEGV", "a fault signal"},
    {"STATS_SIGNAL", "sigbus", "a fault signal"},
    /* names */
    {"SEGMENT-SIZE", "32K", "unknown variable"},
    {"segment_size", "32K", "unknown variable"},
    {"", "1", "unknown variable"},
    {"SEGSHIM_SEGMENT_SIZE", "32K", "unknown variable"}, /* the name is without the prefix */
};

START_TEST(test_bad_value) {
    config_t c, before;
    char why[96];
    /* every field away from its default, to see that none is touched */
    config_defaults(&c);
    c.segment_size = 8192;
    c.pool_size = CONFIG_GIB;
    c.hugepages = HUGEPAGES_THP;
    c.prefault = 4096;
    c.tcache = 3;
    c.decay_ms = 7;
    c.stats = 2;
    strcpy(c.stats_path, "/keep/me");
    c.verbose = 1;
    c.disable = 1;
    before = c;
    strcpy(why, "untouched");
    int rc = config_parse_value(&c, bad_values[_i].name, bad_values[_i].value, why, sizeof(why));
    ck_assert_msg(rc == -1, "%s=\"%s\" accepted", bad_values[_i].name, bad_values[_i].value);
    ck_assert_msg(strcmp(why, bad_values[_i].why) == 0, "%s=\"%s\": reason \"%s\", want \"%s\"", bad_values[_i].name,
                  bad_values[_i].value, why, bad_values[_i].why);
    assert_config_eq(&c, &before);
}
END_TEST

START_TEST(test_message_exact) {
    char *env[] = {"SEGSHIM_SEGMENT_SIZE=48K", NULL};
    config_t c;
    char out[1024];
    int bad;
    int lines = load_capture(&c, env, 0, &bad, out, sizeof(out));
    ck_assert_int_eq(bad, 1);
    ck_assert_int_eq(lines, 1);
    ck_assert_str_eq(out, "segshim: SEGSHIM_SEGMENT_SIZE=48K rejected (not a power of two); using the default 32K\n");
    ck_assert_int_eq(c.segment_size, 32768);
}
END_TEST

/* Each bad value of the table above, through config_load: one line naming
 * the variable, the value and the default. */
START_TEST(test_message_per_kind) {
    static const struct {
        const char *entry;
        const char *expect[3];
    } t[] = {
        {"SEGSHIM_SEGMENT_SIZE=2M", {"SEGSHIM_SEGMENT_SIZE=2M ", "(above the maximum 1M)", "the default 32K\n"}},
        {"SEGSHIM_POOL_SIZE=lots", {"SEGSHIM_POOL_SIZE=lots ", "(not a number)", "the default 0 (automatic)\n"}},
        {"SEGSHIM_HUGEPAGES=always",
         {"SEGSHIM_HUGEPAGES=always ", "(not auto, thp, hugetlb or off)", "the default auto\n"}},
        {"SEGSHIM_PREFAULT=-5", {"SEGSHIM_PREFAULT=-5 ", "(negative)", "the default 0\n"}},
        {"SEGSHIM_TCACHE=1025", {"SEGSHIM_TCACHE=1025 ", "(above the maximum 1024)", "the default 128\n"}},
        {"SEGSHIM_DECAY_MS=-2", {"SEGSHIM_DECAY_MS=-2 ", "(below the minimum -1)", "the default 1000\n"}},
        {"SEGSHIM_STATS=", {"SEGSHIM_STATS= ", "(empty)", "the default 0\n"}},
        {"SEGSHIM_STATS_SIGNAL=SIGKILL", {"SEGSHIM_STATS_SIGNAL=SIGKILL ", "(cannot be caught)", "the default 0\n"}},
        {"SEGSHIM_VERBOSE=true", {"SEGSHIM_VERBOSE=true ", "(not 0 or 1)", "the default 0\n"}},
        {"SEGSHIM_DISABLE=", {"SEGSHIM_DISABLE= ", "(empty)", "the default 0\n"}},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char *env[] = {(char *)t[i].entry, NULL};
        config_t c, d;
        char out[1024];
        int bad;
        config_defaults(&d);
        int lines = load_capture(&c, env, 0, &bad, out, sizeof(out));
        ck_assert_msg(bad == 1 && lines == 1, "%s: bad %d lines %d: %s", t[i].entry, bad, lines, out);
        ck_assert_msg(strncmp(out, "segshim: ", 9) == 0, "%s", out);
        for (int k = 0; k < 3; k++)
            ck_assert_msg(strstr(out, t[i].expect[k]) != NULL, "\"%s\" lacks \"%s\"", out, t[i].expect[k]);
        ck_assert_ptr_nonnull(strstr(out, " rejected ("));
        assert_config_eq(&c, &d);
    }
}
END_TEST

START_TEST(test_message_one_line_each) {
    char *env[] = {"SEGSHIM_SEGMENT_SIZE=48K", "SEGSHIM_TCACHE=8",      "SEGSHIM_POOL_SIZE=1T",
                   "USER=me",                  "SEGSHIM_HUGEPAGES=yes", "SEGSHIM_BOGUS=1",
                   "SEGSHIM_DECAY_MS=5",       "SEGSHIM_VERBOSE=\n\n2", NULL};
    config_t c;
    char out[4096];
    int bad;
    int lines = load_capture(&c, env, 0, &bad, out, sizeof(out));
    ck_assert_int_eq(bad, 5);
    ck_assert_msg(lines == 5, "%d lines:\n%s", lines, out);
    /* the good ones still took effect */
    ck_assert_int_eq(c.decay_ms, 5);
    ck_assert_int_eq(c.tcache, 8);
    ck_assert_int_eq(c.segment_size, 32768);
    ck_assert_int_eq(c.hugepages, HUGEPAGES_AUTO);
    ck_assert_int_eq(c.verbose, 0);
    /* one line each, in order */
    char *save = NULL;
    const char *want[] = {"SEGSHIM_SEGMENT_SIZE=48K", "SEGSHIM_POOL_SIZE=1T", "SEGSHIM_HUGEPAGES=yes",
                          "SEGSHIM_BOGUS=1", "SEGSHIM_VERBOSE=??2"};
    int k = 0;
    for (char *line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save), k++) {
        ck_assert_int_lt(k, 5);
        ck_assert_msg(strstr(line, want[k]) != NULL, "line %d \"%s\" lacks \"%s\"", k, line, want[k]);
    }
    ck_assert_int_eq(k, 5);
}
END_TEST

START_TEST(test_message_long_value) {
    /* a huge value is cut short, still one line */
    static char entry[8192];
    strcpy(entry, "SEGSHIM_STATS=/");
    memset(entry + strlen(entry), 'p', 5000);
    char *env[] = {entry, NULL};
    config_t c;
    char out[4096];
    int bad;
    int lines = load_capture(&c, env, 0, &bad, out, sizeof(out));
    ck_assert_int_eq(bad, 1);
    ck_assert_int_eq(lines, 1);
    ck_assert_uint_lt(strlen(out), 512);
    ck_assert_ptr_nonnull(strstr(out, "...")); /* marked as cut */
    ck_assert_ptr_nonnull(strstr(out, "path longer than 255"));
    ck_assert_ptr_nonnull(strstr(out, "the default 0\n"));
    ck_assert_int_eq(c.stats, 0);
}
END_TEST

START_TEST(test_message_duplicate) {
    /* a later bad value keeps the earlier good one, and says so */
    char *env[] = {"SEGSHIM_SEGMENT_SIZE=64K", "SEGSHIM_SEGMENT_SIZE=48K", NULL};
    config_t c;
    char out[1024];
    int bad;
    ck_assert_int_eq(load_capture(&c, env, 0, &bad, out, sizeof(out)), 1);
    ck_assert_int_eq(bad, 1);
    ck_assert_int_eq(c.segment_size, 65536);
    ck_assert_str_eq(out, "segshim: SEGSHIM_SEGMENT_SIZE=48K rejected (not a power of two); using 64K\n");
}
END_TEST

START_TEST(test_secure) {
    char *env[] = {"SEGSHIM_SEGMENT_SIZE=64K", "SEGSHIM_SEGMENT_SIZE=48K", "SEGSHIM_DISABLE=1",
                   "SEGSHIM_STATS=/tmp/x",     "SEGSHIM_NOPE=1",           NULL};
    config_t c, d;
    char out[1024];
    int bad;
    config_defaults(&d);
    memset(&c, 0x5a, sizeof(c));
    ck_assert_int_eq(load_capture(&c, env, 1, &bad, out, sizeof(out)), 0);
    ck_assert_int_eq(bad, 0);
    ck_assert_str_eq(out, "");
    assert_config_eq(&c, &d);
}
END_TEST

START_TEST(test_unknown) {
    char *env[] = {"SEGSHIM_SEGMENTSIZE=64K", "SEGSHIM_=1", "SEGSHIM_segment_size=64K", "SEGSHIM=1",
                   "XSEGSHIM_FOO=1",          NULL};
    config_t c, d;
    char out[1024];
    int bad;
    config_defaults(&d);
    int lines = load_capture(&c, env, 0, &bad, out, sizeof(out));
    ck_assert_int_eq(bad, 3);
    ck_assert_int_eq(lines, 3);
    ck_assert_ptr_nonnull(strstr(out, "segshim: SEGSHIM_SEGMENTSIZE=64K: unknown variable, ignored\n"));
    ck_assert_ptr_nonnull(strstr(out, "segshim: SEGSHIM_=1: unknown variable, ignored\n"));
    ck_assert_ptr_nonnull(strstr(out, "segshim: SEGSHIM_segment_size=64K: unknown variable, ignored\n"));
    ck_assert_ptr_null(strstr(out, "XSEGSHIM"));
    assert_config_eq(&c, &d);
}
END_TEST

START_TEST(test_errfd_closed) {
    /* a bad errfd loses the message but not the configuration */
    char *env[] = {"SEGSHIM_SEGMENT_SIZE=48K", "SEGSHIM_TCACHE=4", NULL};
    config_t c;
    ck_assert_int_eq(config_load(&c, env, 0, -1), 1);
    ck_assert_int_eq(c.tcache, 4);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    ck_assert_int_eq(config_load(&c, env, 0, fds[1]), 1);
    ck_assert_int_eq(c.segment_size, 32768);
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_defaults);
    tcase_add_loop_test(core, test_size_valid, 0, (int)(sizeof(valid_sizes) / sizeof(valid_sizes[0])));
    tcase_add_test(core, test_int_valid);
    tcase_add_test(core, test_bool_valid);
    tcase_add_test(core, test_mode_valid);
    tcase_add_test(core, test_stats_valid);
    tcase_add_test(core, test_signal_valid);
    tcase_add_test(core, test_format_requested);
    tcase_add_test(core, test_hugepage_name);
    tcase_add_test(core, test_load_valid);
    tcase_add_test(core, test_load_empty_env);
    tcase_add_test(core, test_format_defaults);
    tcase_add_test(core, test_format_units);
    tcase_add_test(core, test_format_roundtrip);
    suite_add_tcase(s, core);

    TCase *limits = tcase_create("limits");
    tcase_add_loop_test(limits, test_bounds, 0, (int)(sizeof(bounds) / sizeof(bounds[0])));
    tcase_add_test(limits, test_path_length);
    tcase_add_test(limits, test_format_truncation);
    tcase_add_test(limits, test_why_small_buffer);
    suite_add_tcase(s, limits);

    TCase *errors = tcase_create("errors");
    tcase_add_loop_test(errors, test_bad_value, 0, (int)(sizeof(bad_values) / sizeof(bad_values[0])));
    tcase_add_test(errors, test_message_exact);
    tcase_add_test(errors, test_message_per_kind);
    tcase_add_test(errors, test_message_one_line_each);
    tcase_add_test(errors, test_message_long_value);
    tcase_add_test(errors, test_message_duplicate);
    tcase_add_test(errors, test_secure);
    tcase_add_test(errors, test_unknown);
    tcase_add_test(errors, test_errfd_closed);
    suite_add_tcase(s, errors);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
