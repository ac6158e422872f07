/*
 * config.c - the SEGSHIM_* options: defaults, parser, environment walk and
 * printout, all generated from the one table SEGPOOL_OPTIONS in config.h.
 *
 * Owns: nothing mutable.  Every function works on a caller's config_t.
 *
 * Constraints: this runs before the allocator exists (from the first malloc
 * call), so nothing here may allocate: no malloc, no stdio (snprintf may
 * allocate in glibc), no getenv (the caller hands us envp), no locale
 * (tolower/strtoll consult it).  Numbers are formatted and parsed by the small
 * helpers below; messages go out with write(2) from a stack buffer.
 *
 * Value syntax:
 *   SIZE, POW2  decimal digits, then an optional unit K, M or G (any case,
 *               powers of 1024), then an optional B or iB after the unit
 *               (any case): "32K", "32k", "32KB", "32KiB", "2m", "1GiB".
 *               A bare trailing B means bytes ("4096B").  No sign, no
 *               spaces, no other suffix.  The value must lie in [min, max];
 *               the option's own default is always accepted, so that a
 *               sentinel default (pool_size 0 = physical RAM) can be written
 *               back, and config_format's output parses again.
 *   INT         an optional '-', then decimal digits; in [min, max].
 *   BOOL        exactly "0" or "1".
 *   MODE        auto, thp, hugetlb or off, any case.
 *   STATS       "0", "1", or else a path (relative paths included:
 *               "stats.json"), at most CONFIG_PATH_MAX - 1 bytes; a path
 *               sets stats = CONFIG_STATS_PATH and stats_path.  Only the
 *               empty value is rejected.
 *   SIGNAL      "0" (none), a signal number, or a name with or without
 *               "SIG" (any case).  Signals that cannot be caught (KILL,
 *               STOP) or that report a fault (SEGV, BUS, ILL, FPE: the
 *               handler would return into the fault) are rejected.
 */
#include "config.h"
#include "text.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* ---- The option table ----------------------------------------------------- */

enum config_index_e {
#define CONFIG_INDEX(NAME, field, kind, def, lo, hi, help) CONFIG_OPT_##NAME,
    SEGPOOL_OPTIONS(CONFIG_INDEX)
#undef CONFIG_INDEX
        CONFIG_OPTION_COUNT
};

typedef struct config_option_s {
    const char *name; /* without the SEGSHIM_ prefix */
    config_kind_t kind;
    int64_t def;
    int64_t lo;
    int64_t hi;
    size_t offset; /* of the int64_t field in config_t */
    const char *help;
} config_option_t;

static const config_option_t config_options[] = {
#define CONFIG_ENTRY(NAME, field, kind, def, lo, hi, help) \
    {#NAME, kind, (int64_t)(def), (int64_t)(lo), (int64_t)(hi), offsetof(config_t, field), help},
    SEGPOOL_OPTIONS(CONFIG_ENTRY)
#undef CONFIG_ENTRY
};

_Static_assert(sizeof(config_options) / sizeof(config_options[0]) == CONFIG_OPTION_COUNT,
               "config_options must have one entry per option");

static const char *const config_mode_names[] = {"auto", "thp", "hugetlb", "off"};

_Static_assert(sizeof(config_mode_names) / sizeof(config_mode_names[0]) == HUGEPAGES_OFF + 1,
               "config_mode_names must name every hugepage_mode_t");

#define CONFIG_PREFIX "SEGSHIM_"
#define CONFIG_PREFIX_LEN (sizeof(CONFIG_PREFIX) - 1)

static int64_t *config_field(config_t *cfg, const config_option_t *opt) {
    return (int64_t *)(void *)((char *)cfg + opt->offset);
}

static int64_t config_field_get(const config_t *cfg, const config_option_t *opt) {
    return *(const int64_t *)(const void *)((const char *)cfg + opt->offset);
}

static const config_option_t *config_find(const char *name) {
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++)
        if (strcmp(config_options[i].name, name) == 0)
            return &config_options[i];
    return NULL;
}

/* An option's value as config_format prints it (and the parser accepts). */
static void config_text_value(text_t *b, const config_t *cfg, const config_option_t *opt, int64_t v) {
    switch (opt->kind) {
    case CONFIG_SIZE:
    case CONFIG_POW2:
        text_size_exact(b, v);
        break;
    case CONFIG_MODE:
        text_str(b, config_hugepage_name(v));
        break;
    case CONFIG_STATS:
        if (v == CONFIG_STATS_PATH && cfg != NULL)
            text_str(b, cfg->stats_path);
        else
            text_i64(b, v);
        break;
    case CONFIG_SIGNAL:
        if (config_signal_name(v) != NULL)
            text_str(b, config_signal_name(v));
        else
            text_i64(b, v);
        break;
    case CONFIG_INT:
    case CONFIG_BOOL:
    default:
        text_i64(b, v);
        break;
    }
}

/* Copy s into why, with an optional size appended ("above the maximum 1M"). */
static void config_why(char *why, size_t why_len, const char *s, int with_size, int64_t size) {
    text_t b;
    if (why == NULL || why_len == 0)
        return;
    text_init(&b, why, why_len);
    text_str(&b, s);
    if (with_size)
        text_size_exact(&b, size);
}

/* ---- Value parsers (pure) ------------------------------------------------- */

static char config_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int config_is_digit(char c) { return c >= '0' && c <= '9'; }

static int config_strcaseeq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (config_lower(*a) != config_lower(*b))
            return 0;
    return *a == *b;
}

/* Decimal digits into *out, at most limit.  Returns the number of digits
 * consumed, 0 when there is no digit, -1 on overflow past limit. */
static int config_digits(const char *s, uint64_t limit, uint64_t *out) {
    uint64_t v = 0;
    int n = 0;
    for (; config_is_digit(s[n]); n++) {
        uint64_t d = (uint64_t)(s[n] - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return n;
}

/* The reason for a value that does not start with a digit. */
static const char *config_not_number(const char *value, int sign_ok) {
    if (value[0] == '\0')
        return "empty";
    if (value[0] == '-' && !sign_ok)
        return "negative";
    if (value[0] == '+')
        return "sign not allowed";
    if (value[0] == ' ' || value[0] == '\t')
        return "leading space";
    return "not a number";
}

static int config_parse_size(const config_option_t *opt, const char *value, int64_t *out, char *why,
                             size_t why_len) {
    uint64_t v;
    int n = config_digits(value, (uint64_t)INT64_MAX, &v);
    if (n < 0) {
        config_why(why, why_len, "too large", 0, 0);
        return -1;
    }
    if (n == 0) {
        config_why(why, why_len, config_not_number(value, 0), 0, 0);
        return -1;
    }
    const char *s = value + n;
    uint64_t unit = 1;
    switch (config_lower(*s)) {
    case 'k':
        unit = (uint64_t)CONFIG_KIB;
        break;
    case 'm':
        unit = (uint64_t)CONFIG_MIB;
        break;
    case 'g':
        unit = (uint64_t)CONFIG_GIB;
        break;
    default:
        break;
    }
    if (unit != 1) {
        s++;
        if (config_lower(s[0]) == 'i' && config_lower(s[1]) == 'b')
            s += 2;
        else if (config_lower(s[0]) == 'b')
            s++;
    } else if (config_lower(s[0]) == 'b') {
        s++;
    }
    if (*s != '\0') {
        config_why(why, why_len, "trailing junk", 0, 0);
        return -1;
    }
    if (v > (uint64_t)INT64_MAX / unit) {
        config_why(why, why_len, "too large", 0, 0);
        return -1;
    }
    int64_t bytes = (int64_t)(v * unit);
    if (bytes != opt->def) {
        if (bytes < opt->lo) {
            config_why(why, why_len, "below the minimum ", 1, opt->lo);
            return -1;
        }
        if (bytes > opt->hi) {
            config_why(why, why_len, "above the maximum ", 1, opt->hi);
            return -1;
        }
        if (opt->kind == CONFIG_POW2 && (bytes & (bytes - 1)) != 0) {
            config_why(why, why_len, "not a power of two", 0, 0);
            return -1;
        }
    }
    *out = bytes;
    return 0;
}

static int config_parse_int(const config_option_t *opt, const char *value, int64_t *out, char *why, size_t why_len) {
    int neg = value[0] == '-';
    const char *s = value + neg;
    uint64_t v;
    /* INT64_MIN's magnitude is one more than INT64_MAX. */
    int n = config_digits(s, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v);
    if (n < 0) {
        config_why(why, why_len, "too large", 0, 0);
        return -1;
    }
    if (n == 0) {
        config_why(why, why_len, neg ? "not a number" : config_not_number(value, 1), 0, 0);
        return -1;
    }
    if (s[n] != '\0') {
        config_why(why, why_len, "trailing junk", 0, 0);
        return -1;
    }
    int64_t x = neg ? (int64_t)((uint64_t)0 - v) : (int64_t)v;
    if (x < opt->lo || x > opt->hi) {
        text_t b;
        if (why != NULL && why_len != 0) {
            text_init(&b, why, why_len);
            text_str(&b, x < opt->lo ? "below the minimum " : "above the maximum ");
            text_i64(&b, x < opt->lo ? opt->lo : opt->hi);
        }
        return -1;
    }
    *out = x;
    return 0;
}

static int config_parse_bool(const char *value, int64_t *out, char *why, size_t why_len) {
    if ((value[0] == '0' || value[0] == '1') && value[1] == '\0') {
        *out = value[0] - '0';
        return 0;
    }
    config_why(why, why_len, value[0] ? "not 0 or 1" : "empty", 0, 0);
    return -1;
}

static int config_parse_mode(const char *value, int64_t *out, char *why, size_t why_len) {
    for (size_t i = 0; i < sizeof(config_mode_names) / sizeof(config_mode_names[0]); i++) {
        if (config_strcaseeq(value, config_mode_names[i])) {
            *out = (int64_t)i;
            return 0;
        }
    }
    config_why(why, why_len, value[0] ? "not auto, thp, hugetlb or off" : "empty", 0, 0);
    return -1;
}

static int config_parse_stats(config_t *cfg, const char *value, char *why, size_t why_len) {
    if ((value[0] == '0' || value[0] == '1') && value[1] == '\0') {
        cfg->stats = value[0] == '0' ? CONFIG_STATS_OFF : CONFIG_STATS_STDERR;
        cfg->stats_path[0] = '\0';
        return 0;
    }
    if (value[0] == '\0') {
        config_why(why, why_len, "empty", 0, 0);
        return -1;
    }
    size_t n = strlen(value);
    if (n > CONFIG_PATH_MAX - 1) {
        if (why != NULL && why_len != 0) {
            text_t b;
            text_init(&b, why, why_len);
            text_str(&b, "path longer than ");
            text_u64(&b, CONFIG_PATH_MAX - 1);
            text_str(&b, " bytes");
        }
        return -1;
    }
    memcpy(cfg->stats_path, value, n + 1);
    cfg->stats = CONFIG_STATS_PATH;
    return 0;
}

/* Linux's signal numbers (x86, arm, riscv: the generic table), 1 to 31. */
static const char *const config_signal_names[] = {
    NULL,      "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",  "SIGTRAP", "SIGABRT", "SIGBUS",
    "SIGFPE",  "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
    "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG",
    "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO",  "SIGPWR",  "SIGSYS",
};

#define CONFIG_SIGNAL_NAMED ((int64_t)(sizeof(config_signal_names) / sizeof(config_signal_names[0])))

const char *config_signal_name(int64_t signo) {
    return signo > 0 && signo < CONFIG_SIGNAL_NAMED ? config_signal_names[signo] : NULL;
}

/* The signals a handler that only sets a flag cannot serve. */
static const char *config_signal_unusable(int64_t signo) {
    switch (signo) {
    case 9:  /* SIGKILL */
    case 19: /* SIGSTOP */
        return "cannot be caught";
    case 4:  /* SIGILL */
    case 7:  /* SIGBUS */
    case 8:  /* SIGFPE */
    case 11: /* SIGSEGV */
        return "a fault signal";
    default:
        return NULL;
    }
}

static int config_parse_signal(const config_option_t *opt, const char *value, int64_t *out, char *why,
                               size_t why_len) {
    int64_t signo = -1;
    if (config_is_digit(value[0])) {
        if (config_parse_int(opt, value, &signo, why, why_len) != 0) return -1;
    } else {
        const char *name = value;
        if (config_lower(name[0]) == 's' && config_lower(name[1]) == 'i' && config_lower(name[2]) == 'g') name += 3;
        for (int64_t i = 1; i < CONFIG_SIGNAL_NAMED; i++)
            if (name[0] != '\0' && config_strcaseeq(name, config_signal_names[i] + 3)) signo = i;
        if (signo < 0) {
            config_why(why, why_len, value[0] ? "not a signal name or number" : "empty", 0, 0);
            return -1;
        }
    }
    const char *unusable = config_signal_unusable(signo);
    if (unusable != NULL) {
        config_why(why, why_len, unusable, 0, 0);
        return -1;
    }
    *out = signo;
    return 0;
}

/* ---- Public functions ----------------------------------------------------- */

void config_defaults(config_t *cfg) {
#define CONFIG_DEFAULT(NAME, field, kind, def, lo, hi, help) cfg->field = (int64_t)(def);
    SEGPOOL_OPTIONS(CONFIG_DEFAULT)
#undef CONFIG_DEFAULT
    memset(cfg->stats_path, 0, sizeof(cfg->stats_path));
}

int config_parse_value(config_t *cfg, const char *name, const char *value, char *why, size_t why_len) {
    if (why != NULL && why_len != 0)
        why[0] = '\0';
    const config_option_t *opt = name != NULL ? config_find(name) : NULL;
    if (opt == NULL) {
        config_why(why, why_len, "unknown variable", 0, 0);
        return -1;
    }
    if (value == NULL) {
        config_why(why, why_len, "empty", 0, 0);
        return -1;
    }
    int64_t v = 0;
    int rc;
    switch (opt->kind) {
    case CONFIG_SIZE:
    case CONFIG_POW2:
        rc = config_parse_size(opt, value, &v, why, why_len);
        break;
    case CONFIG_INT:
        rc = config_parse_int(opt, value, &v, why, why_len);
        break;
    case CONFIG_BOOL:
        rc = config_parse_bool(value, &v, why, why_len);
        break;
    case CONFIG_MODE:
        rc = config_parse_mode(value, &v, why, why_len);
        break;
    case CONFIG_STATS:
        return config_parse_stats(cfg, value, why, why_len);
    case CONFIG_SIGNAL:
        rc = config_parse_signal(opt, value, &v, why, why_len);
        break;
    default:
        config_why(why, why_len, "unknown kind", 0, 0);
        return -1;
    }
    if (rc == 0)
        *config_field(cfg, opt) = v;
    return rc;
}

#define CONFIG_MSG_NAME_MAX 64
#define CONFIG_MSG_VALUE_MAX 96

/* "segshim: SEGSHIM_X=v rejected (why); using the default d" */
static void config_report(int errfd, const char *entry, size_t name_len, const char *value, const char *why,
                          const config_t *cfg, const config_option_t *opt) {
    char line[512];
    text_t b;
    if (errfd < 0)
        return;
    text_init(&b, line, sizeof(line) - 1); /* keep room for the '\n' */
    text_str(&b, "segshim: ");
    text_printable(&b, entry, name_len, CONFIG_MSG_NAME_MAX);
    text_str(&b, "=");
    text_printable(&b, value, strlen(value), CONFIG_MSG_VALUE_MAX);
    if (opt == NULL) {
        text_str(&b, ": unknown variable, ignored");
    } else {
        text_str(&b, " rejected (");
        text_str(&b, why);
        text_str(&b, "); using ");
        int64_t cur = config_field_get(cfg, opt);
        text_str(&b, cur == opt->def ? "the default " : "");
        config_text_value(&b, cfg, opt, cur);
        /* A sentinel default (outside [min, max], pool_size 0) means "decide
         * at start-up"; say so rather than print a bare 0. */
        if (cur == opt->def && (opt->kind == CONFIG_SIZE || opt->kind == CONFIG_POW2) &&
            (opt->def < opt->lo || opt->def > opt->hi))
            text_str(&b, " (automatic)");
    }
    line[b.len++] = '\n';
    (void)text_write_all(errfd, line, b.len);
}

/* cfg starts from the defaults, so a caller's earlier values do not survive;
 * a variable given twice takes the last good value. */
int config_load(config_t *cfg, char *const *envp, int secure, int errfd) {
    int bad = 0;
    config_defaults(cfg);
    if (secure || envp == NULL)
        return 0;
    for (char *const *e = envp; *e != NULL; e++) {
        const char *entry = *e;
        if (strncmp(entry, CONFIG_PREFIX, CONFIG_PREFIX_LEN) != 0)
            continue;
        const char *eq = strchr(entry, '=');
        if (eq == NULL)
            continue; /* not NAME=value: not a variable at all */
        size_t name_len = (size_t)(eq - entry) - CONFIG_PREFIX_LEN;
        const char *value = eq + 1;
        char name[CONFIG_MSG_NAME_MAX];
        const config_option_t *opt = NULL;
        if (name_len < sizeof(name)) {
            memcpy(name, entry + CONFIG_PREFIX_LEN, name_len);
            name[name_len] = '\0';
            opt = config_find(name);
        }
        if (opt == NULL) {
            config_report(errfd, entry, (size_t)(eq - entry), value, NULL, cfg, NULL);
            bad++;
            continue;
        }
        char why[96];
        if (config_parse_value(cfg, name, value, why, sizeof(why)) != 0) {
            config_report(errfd, entry, (size_t)(eq - entry), value, why, cfg, opt);
            bad++;
        }
    }
    return bad;
}

/* Whether option opt has the same value in a and b. */
static int config_same(const config_t *a, const config_t *b, const config_option_t *opt) {
    if (config_field_get(a, opt) != config_field_get(b, opt)) return 0;
    return opt->kind != CONFIG_STATS || strcmp(a->stats_path, b->stats_path) == 0;
}

size_t config_format_lines(const config_t *cfg, const config_t *requested, const char *prefix, char *buf,
                           size_t len) {
    text_t b;
    if (buf == NULL || len == 0)
        return 0;
    text_init(&b, buf, len);
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const config_option_t *opt = &config_options[i];
        text_str(&b, prefix);
        text_str(&b, CONFIG_PREFIX);
        text_str(&b, opt->name);
        text_str(&b, "=");
        config_text_value(&b, cfg, opt, config_field_get(cfg, opt));
        if (requested != NULL && !config_same(cfg, requested, opt)) {
            text_str(&b, "  (requested ");
            config_text_value(&b, requested, opt, config_field_get(requested, opt));
            text_str(&b, ")");
        }
        text_str(&b, "\n");
    }
    return b.len;
}

size_t config_format(const config_t *cfg, char *buf, size_t len) { return config_format_lines(cfg, NULL, "", buf, len); }

const char *config_hugepage_name(int64_t mode) {
    if (mode < 0 || mode > HUGEPAGES_OFF)
        return "invalid";
    return config_mode_names[mode];
}
