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
 *   STATS       "0", "1", or a path (starts with '/' or '.', or contains a
 *               '/'), at most CONFIG_PATH_MAX - 1 bytes; a path sets
 *               stats = 2 and stats_path.
 */
#include "config.h"

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

/* ---- A bounded string builder (no allocation, truncates) ------------------ */

typedef struct config_buf_s {
    char *p;
    size_t cap; /* bytes usable for text; one more is kept for the NUL */
    size_t len;
} config_buf_t;

static void config_buf_init(config_buf_t *b, char *p, size_t size) {
    b->p = p;
    b->cap = size ? size - 1 : 0;
    b->len = 0;
    if (size)
        p[0] = '\0';
}

static void config_buf_mem(config_buf_t *b, const char *s, size_t n) {
    if (n > b->cap - b->len)
        n = b->cap - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    if (b->cap)
        b->p[b->len] = '\0';
}

static void config_buf_str(config_buf_t *b, const char *s) { config_buf_mem(b, s, strlen(s)); }

static void config_buf_u64(config_buf_t *b, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    config_buf_mem(b, tmp + sizeof(tmp) - n, n);
}

static void config_buf_i64(config_buf_t *b, int64_t v) {
    if (v < 0) {
        config_buf_mem(b, "-", 1);
        config_buf_u64(b, (uint64_t)0 - (uint64_t)v); /* well defined for INT64_MIN */
    } else {
        config_buf_u64(b, (uint64_t)v);
    }
}

/* A size in the largest unit that divides it exactly: 32768 -> "32K". */
static void config_buf_size(config_buf_t *b, int64_t v) {
    static const struct {
        int64_t unit;
        char suffix;
    } units[] = {{CONFIG_GIB, 'G'}, {CONFIG_MIB, 'M'}, {CONFIG_KIB, 'K'}};
    if (v > 0) {
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (v % units[i].unit == 0) {
                config_buf_i64(b, v / units[i].unit);
                config_buf_mem(b, &units[i].suffix, 1);
                return;
            }
        }
    }
    config_buf_i64(b, v);
}

/* An option's value as config_format prints it (and the parser accepts). */
static void config_buf_value(config_buf_t *b, const config_t *cfg, const config_option_t *opt, int64_t v) {
    switch (opt->kind) {
    case CONFIG_SIZE:
    case CONFIG_POW2:
        config_buf_size(b, v);
        break;
    case CONFIG_MODE:
        config_buf_str(b, config_hugepage_name(v));
        break;
    case CONFIG_STATS:
        if (v == 2 && cfg != NULL)
            config_buf_str(b, cfg->stats_path);
        else
            config_buf_i64(b, v);
        break;
    case CONFIG_INT:
    case CONFIG_BOOL:
    default:
        config_buf_i64(b, v);
        break;
    }
}

/* Copy s into why, with an optional size appended ("above the maximum 1M"). */
static void config_why(char *why, size_t why_len, const char *s, int with_size, int64_t size) {
    config_buf_t b;
    if (why == NULL || why_len == 0)
        return;
    config_buf_init(&b, why, why_len);
    config_buf_str(&b, s);
    if (with_size)
        config_buf_size(&b, size);
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
        config_buf_t b;
        if (why != NULL && why_len != 0) {
            config_buf_init(&b, why, why_len);
            config_buf_str(&b, x < opt->lo ? "below the minimum " : "above the maximum ");
            config_buf_i64(&b, x < opt->lo ? opt->lo : opt->hi);
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
        cfg->stats = value[0] - '0';
        cfg->stats_path[0] = '\0';
        return 0;
    }
    if (value[0] == '\0') {
        config_why(why, why_len, "empty", 0, 0);
        return -1;
    }
    if (value[0] != '/' && value[0] != '.' && strchr(value, '/') == NULL) {
        config_why(why, why_len, "not 0, 1 or a path", 0, 0);
        return -1;
    }
    size_t n = strlen(value);
    if (n > CONFIG_PATH_MAX - 1) {
        config_why(why, why_len, "path longer than ", 0, 0);
        if (why != NULL && why_len != 0) {
            config_buf_t b = {why, why_len - 1, strlen(why)};
            config_buf_u64(&b, CONFIG_PATH_MAX - 1);
            config_buf_str(&b, " bytes");
        }
        return -1;
    }
    memcpy(cfg->stats_path, value, n + 1);
    cfg->stats = 2;
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
    default:
        config_why(why, why_len, "unknown kind", 0, 0);
        return -1;
    }
    if (rc == 0)
        *config_field(cfg, opt) = v;
    return rc;
}

/* write(2) all of buf, retrying on EINTR and short writes.  Errors are
 * dropped: there is nowhere left to report them. */
static void config_write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (n == 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* Append at most max bytes of s, with control bytes as '?', so that a hostile
 * value still yields exactly one line. */
static void config_buf_printable(config_buf_t *b, const char *s, size_t n, size_t max) {
    size_t i;
    for (i = 0; i < n && i < max; i++) {
        char c = s[i];
        if ((unsigned char)c < 0x20 || c == 0x7f)
            c = '?';
        config_buf_mem(b, &c, 1);
    }
    if (i < n)
        config_buf_str(b, "...");
}

#define CONFIG_MSG_NAME_MAX 64
#define CONFIG_MSG_VALUE_MAX 96

/* "segshim: SEGSHIM_X=v rejected (why); using the default d" */
static void config_report(int errfd, const char *entry, size_t name_len, const char *value, const char *why,
                          const config_t *cfg, const config_option_t *opt) {
    char line[512];
    config_buf_t b;
    if (errfd < 0)
        return;
    config_buf_init(&b, line, sizeof(line) - 1); /* keep room for the '\n' */
    config_buf_str(&b, "segshim: ");
    config_buf_printable(&b, entry, name_len, CONFIG_MSG_NAME_MAX);
    config_buf_str(&b, "=");
    config_buf_printable(&b, value, strlen(value), CONFIG_MSG_VALUE_MAX);
    if (opt == NULL) {
        config_buf_str(&b, ": unknown variable, ignored");
    } else {
        config_buf_str(&b, " rejected (");
        config_buf_str(&b, why);
        config_buf_str(&b, "); using ");
        int64_t cur = config_field_get(cfg, opt);
        config_buf_str(&b, cur == opt->def ? "the default " : "");
        config_buf_value(&b, cfg, opt, cur);
        /* A sentinel default (outside [min, max], pool_size 0) means "decide
         * at start-up"; say so rather than print a bare 0. */
        if (cur == opt->def && (opt->kind == CONFIG_SIZE || opt->kind == CONFIG_POW2) &&
            (opt->def < opt->lo || opt->def > opt->hi))
            config_buf_str(&b, " (automatic)");
    }
    line[b.len++] = '\n';
    config_write_all(errfd, line, b.len);
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

size_t config_format(const config_t *cfg, char *buf, size_t len) {
    config_buf_t b;
    if (buf == NULL || len == 0)
        return 0;
    config_buf_init(&b, buf, len);
    for (size_t i = 0; i < CONFIG_OPTION_COUNT; i++) {
        const config_option_t *opt = &config_options[i];
        config_buf_str(&b, CONFIG_PREFIX);
        config_buf_str(&b, opt->name);
        config_buf_str(&b, "=");
        config_buf_value(&b, cfg, opt, config_field_get(cfg, opt));
        config_buf_str(&b, "\n");
    }
    return b.len;
}

const char *config_hugepage_name(int64_t mode) {
    if (mode < 0 || mode > HUGEPAGES_OFF)
        return "invalid";
    return config_mode_names[mode];
}
