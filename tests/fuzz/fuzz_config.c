/*
 * fuzz_config.c - libFuzzer target for the option parser (config.h).
 *
 * Input: the first byte picks what to drive, the rest is the material.
 *   mode 0  config_parse_value(name, value): the second byte picks a known
 *           option name (or, past the table, the name is taken from the
 *           input up to a '=' so unknown and odd names are tried too); the
 *           rest is the value.
 *   mode 1  config_load on an environment made of the input's lines
 *           (each line "NAME=value", prefixed with SEGSHIM_ unless it starts
 *           with '!'), reports written to /dev/null.
 * After either, every field must lie in [min, max] or hold its default,
 * stats_path must be a terminated string, config_format must fit and
 * terminate its buffer at any length, and its output must parse back to the
 * same configuration.  Any crash, sanitizer report or abort is a finding.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static int devnull = -1;

static const char *const option_names[] = {
#define NAME_ENTRY(NAME, field, kind, def, lo, hi, help) #NAME,
    SEGPOOL_OPTIONS(NAME_ENTRY)
#undef NAME_ENTRY
};
#define OPTION_COUNT (sizeof option_names / sizeof option_names[0])
_Static_assert(OPTION_COUNT * 16 <= 256, "data[1] picks an option by name for values below OPTION_COUNT * 16");

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    return 0;
}

static void fuzz_die(const char *what, const char *name, int64_t v) {
    fprintf(stderr, "fuzz_config: %s: %s = %lld\n", what, name, (long long)v);
    abort();
}

/* Every field within its bounds (or at its default, a sentinel like 0). */
static void check_ranges(const config_t *cfg) {
#define CHECK_FIELD(NAME, field, kind, def, lo, hi, help)                                                      \
    if (!((cfg->field >= (int64_t)(lo) && cfg->field <= (int64_t)(hi)) || cfg->field == (int64_t)(def) ||      \
          ((kind) == CONFIG_STATS && cfg->field == 2)))                                                       \
        fuzz_die("out of range", #NAME, cfg->field);                                                         \
    if ((kind) == CONFIG_POW2 && cfg->field != (int64_t)(def) && (cfg->field & (cfg->field - 1)) != 0)       \
        fuzz_die("not a power of two", #NAME, cfg->field);
    SEGPOOL_OPTIONS(CHECK_FIELD)
#undef CHECK_FIELD
    if (memchr(cfg->stats_path, '\0', sizeof cfg->stats_path) == NULL) fuzz_die("stats_path unterminated", "STATS", 0);
    if (cfg->stats == 2 && cfg->stats_path[0] == '\0') fuzz_die("stats = 2 without a path", "STATS", 2);
    if (cfg->stats != 2 && cfg->stats_path[0] != '\0') fuzz_die("a path with stats != 2", "STATS", cfg->stats);
}

/* config_format at every buffer length; the full output parses back. */
static void check_format(const config_t *cfg) {
    char full[4096];
    memset(full, 'x', sizeof full);
    size_t n = config_format(cfg, full, sizeof full);
    if (n >= sizeof full || full[n] != '\0' || strlen(full) != n) fuzz_die("config_format length", "-", (int64_t)n);
    for (size_t len = 1; len < 96 && len < n + 2; len += 7) {
        char small[96];
        memset(small, 'x', sizeof small);
        size_t m = config_format(cfg, small, len);
        if (m >= len || small[m] != '\0' || memcmp(small, full, m) != 0 || small[len] != 'x')
            fuzz_die("config_format truncation", "-", (int64_t)len);
    }
    /* A path with a newline cannot survive a line-based printout: skip. */
    if (strchr(cfg->stats_path, '\n')) return;
    config_t back;
    config_defaults(&back);
    char *line = full, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        char *eq = strchr(line, '=');
        if (!eq || strncmp(line, "SEGSHIM_", 8) != 0) fuzz_die("config_format line", line, 0);
        *eq = '\0';
        char why[96];
        if (config_parse_value(&back, line + 8, eq + 1, why, sizeof why) != 0) {
            fprintf(stderr, "fuzz_config: %s=%s does not parse back: %s\n", line, eq + 1, why);
            abort();
        }
        line = nl + 1;
    }
#define CHECK_BACK(NAME, field, kind, def, lo, hi, help) \
    if (back.field != cfg->field) fuzz_die("round trip changed", #NAME, back.field);
    SEGPOOL_OPTIONS(CHECK_BACK)
#undef CHECK_BACK
    if (strcmp(back.stats_path, cfg->stats_path) != 0) fuzz_die("round trip changed the path", "STATS", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > 4096) return 0;
    config_t cfg;
    config_defaults(&cfg);
    check_ranges(&cfg);
    char text[4097];
    if ((data[0] & 1) == 0) {
        const char *name;
        const char *value;
        char name_buf[4097];
        memcpy(text, data + 2, size - 2);
        text[size - 2] = '\0';
        if (data[1] < OPTION_COUNT * 16) { /* below 256 while there are at most 15 options */
            name = option_names[data[1] % OPTION_COUNT];
            value = text;
        } else {
            char *eq = strchr(text, '=');
            if (!eq) return 0;
            memcpy(name_buf, text, (size_t)(eq - text));
            name_buf[eq - text] = '\0';
            name = name_buf;
            value = eq + 1;
        }
        config_t before = cfg;
        /* Two parses: a failed one must leave the field as it was. */
        char why[64];
        char tiny[3];
        int rc = config_parse_value(&cfg, name, value, why, sizeof why);
        if (memchr(why, '\0', sizeof why) == NULL) fuzz_die("why unterminated", name, rc);
        if (rc != 0 && memcmp(&before, &cfg, sizeof cfg) != 0) fuzz_die("a failed parse changed cfg", name, rc);
        config_parse_value(&cfg, name, value, tiny, sizeof tiny);
        if (memchr(tiny, '\0', sizeof tiny) == NULL) fuzz_die("short why unterminated", name, 0);
        config_parse_value(&cfg, name, value, NULL, 0);
    } else {
        /* An environment of lines. */
        char *envp[65];
        size_t n = 0;
        size_t at = 0;
        char *buf = malloc(size * 2 + 65 * 8);
        if (!buf) return 0;
        size_t pos = 1;
        while (pos < size && n < 64) {
            const uint8_t *end = memchr(data + pos, '\n', size - pos);
            size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
            envp[n++] = buf + at;
            if (len > 0 && data[pos] == '!') {
                pos++;
                len--;
            } else {
                memcpy(buf + at, "SEGSHIM_", 8);
                at += 8;
            }
            memcpy(buf + at, data + pos, len);
            at += len;
            buf[at++] = '\0';
            pos += len + 1;
        }
        envp[n] = NULL;
        int bad = config_load(&cfg, envp, 0, devnull);
        if (bad < 0 || (size_t)bad > n) fuzz_die("config_load count", "-", bad);
        config_t secure;
        config_defaults(&secure);
        secure.tcache = 77;
        if (config_load(&secure, envp, 1, devnull) != 0) fuzz_die("secure load read something", "-", 0);
        config_t defaults;
        config_defaults(&defaults);
        if (memcmp(&secure, &defaults, sizeof secure) != 0) fuzz_die("secure load is not the defaults", "-", 0);
        free(buf);
    }
    check_ranges(&cfg);
    check_format(&cfg);
    return 0;
}
