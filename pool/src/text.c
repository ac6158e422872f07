/*
 * text.c - the allocation-free text builder (text.h): strings, numbers,
 * sizes and errno reasons appended to a caller's buffer, and the write-all
 * loop every writer of libsegpool uses.
 *
 * Owns: nothing mutable; every function works on the caller's text_t.
 */
#include "text.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void text_init(text_t *t, char *buf, size_t size) {
    *t = (text_t){size ? buf : NULL, size ? size - 1 : 0, 0, -1, 0, 0};
    if (size) buf[0] = '\0';
}

void text_init_fd(text_t *t, char *buf, size_t size, int fd) { *t = (text_t){buf, size, 0, fd, 0, 0}; }

int text_write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1; /* an error, or no progress: give up rather than spin */
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void text_flush(text_t *t) {
    if (t->fd < 0) return;
    if (!t->failed && text_write_all(t->fd, t->p, t->len) != 0) t->failed = 1;
    t->len = 0;
}

void text_mem(text_t *t, const char *s, size_t n) {
    while (n > 0 && !t->failed) {
        if (t->len == t->cap) {
            if (t->fd < 0) {
                t->truncated = 1;
                break;
            }
            text_flush(t);
            continue;
        }
        size_t k = t->cap - t->len < n ? t->cap - t->len : n;
        memcpy(t->p + t->len, s, k);
        t->len += k;
        s += k;
        n -= k;
    }
    if (t->fd < 0 && t->p != NULL) t->p[t->len] = '\0';
}

void text_str(text_t *t, const char *s) {
    if (s != NULL) text_mem(t, s, strlen(s));
}

void text_char(text_t *t, char c) { text_mem(t, &c, 1); }

void text_spaces(text_t *t, size_t n) {
    static const char spaces[] = "                                ";
    while (n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        text_mem(t, spaces, k);
        n -= k;
    }
}

void text_field(text_t *t, const char *s, size_t width, int right) {
    size_t n = strlen(s);
    if (right && n < width) text_spaces(t, width - n);
    text_mem(t, s, n);
    if (!right && n < width) text_spaces(t, width - n);
}

void text_printable(text_t *t, const char *s, size_t n, size_t max) {
    size_t i;
    for (i = 0; i < n && i < max; i++) {
        char c = s[i];
        text_char(t, ((unsigned char)c < 0x20 || c == 0x7f) ? '?' : c);
    }
    if (i < n) text_str(t, "...");
}

/* ---- Numbers ---------------------------------------------------------------- */

/* v in decimal, at least width digits (zero-padded). */
static void text_u64_padded(text_t *t, uint64_t v, unsigned width) {
    char tmp[TEXT_NUM_LEN];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 || n < width);
    text_mem(t, tmp + sizeof(tmp) - n, n);
}

void text_u64(text_t *t, uint64_t v) { text_u64_padded(t, v, 1); }

void text_i64(text_t *t, int64_t v) {
    if (v < 0) {
        text_char(t, '-');
        text_u64(t, (uint64_t)0 - (uint64_t)v); /* well defined for INT64_MIN */
    } else {
        text_u64(t, (uint64_t)v);
    }
}

void text_hex(text_t *t, uint64_t v, unsigned digits) {
    char tmp[16];
    unsigned n = 0;
    if (digits > 16) digits = 16;
    do {
        tmp[sizeof(tmp) - 1 - n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0 || n < digits);
    text_str(t, "0x");
    text_mem(t, tmp + sizeof(tmp) - n, n);
}

void text_fixed(text_t *t, uint64_t v, unsigned decimals) {
    uint64_t scale = 1;
    if (decimals > 19) decimals = 19;
    for (unsigned i = 0; i < decimals; i++) scale *= 10;
    text_u64(t, v / scale);
    if (decimals == 0) return;
    text_char(t, '.');
    text_u64_padded(t, v % scale, decimals);
}

void text_pct(text_t *t, uint64_t num, uint64_t den) {
    if (den == 0) {
        text_char(t, '-');
        return;
    }
    text_fixed(t, (uint64_t)(((unsigned __int128)num * 1000 + den / 2) / den), 1);
    text_char(t, '%');
}

void text_bytes(text_t *t, uint64_t v) {
    static const char units[] = "KMGTPE";
    int u = -1;
    while (u + 1 < (int)sizeof(units) - 1 && v >= ((uint64_t)1 << (10 * (u + 2)))) u++;
    if (u < 0) {
        text_u64(t, v);
        return;
    }
    unsigned shift = 10u * (unsigned)(u + 1);
    uint64_t unit = (uint64_t)1 << shift;
    if ((v & (unit - 1)) == 0) {
        text_u64(t, v >> shift);
    } else {
        /* tenths, rounded, without overflowing: whole * 10 + rounded fraction */
        uint64_t frac = v & (unit - 1);
        text_fixed(t, (v >> shift) * 10 + (uint64_t)(((unsigned __int128)frac * 10 + unit / 2) >> shift), 1);
    }
    text_char(t, units[u]);
}

void text_size_exact(text_t *t, int64_t v) {
    static const struct {
        int64_t unit;
        char suffix;
    } units[] = {{(int64_t)1 << 30, 'G'}, {(int64_t)1 << 20, 'M'}, {(int64_t)1 << 10, 'K'}};
    for (size_t i = 0; v > 0 && i < sizeof(units) / sizeof(units[0]); i++) {
        if (v % units[i].unit == 0) {
            text_i64(t, v / units[i].unit);
            text_char(t, units[i].suffix);
            return;
        }
    }
    text_i64(t, v);
}

/* ---- Reasons ---------------------------------------------------------------- */

/* The errors open(2) and write(2) give for an output file, in glibc's words. */
static const struct {
    int err;
    const char *text;
} text_errnos[] = {
    {EPERM, "Operation not permitted"},
    {ENOENT, "No such file or directory"},
    {EINTR, "Interrupted system call"},
    {EIO, "Input/output error"},
    {ENXIO, "No such device or address"},
    {EBADF, "Bad file descriptor"},
    {ENOMEM, "Cannot allocate memory"},
    {EACCES, "Permission denied"},
    {EFAULT, "Bad address"},
    {EBUSY, "Device or resource busy"},
    {EEXIST, "File exists"},
    {ENODEV, "No such device"},
    {ENOTDIR, "Not a directory"},
    {EISDIR, "Is a directory"},
    {EINVAL, "Invalid argument"},
    {ENFILE, "Too many open files in system"},
    {EMFILE, "Too many open files"},
    {ETXTBSY, "Text file busy"},
    {EFBIG, "File too large"},
    {ENOSPC, "No space left on device"},
    {EROFS, "Read-only file system"},
    {EPIPE, "Broken pipe"},
    {ENAMETOOLONG, "File name too long"},
    {ELOOP, "Too many levels of symbolic links"},
    {EOVERFLOW, "Value too large for defined data type"},
    {EAGAIN, "Resource temporarily unavailable"},
    {EDQUOT, "Disk quota exceeded"},
    {EOPNOTSUPP, "Operation not supported"},
};

void text_errno(text_t *t, int err) {
    for (size_t i = 0; i < sizeof(text_errnos) / sizeof(text_errnos[0]); i++) {
        if (text_errnos[i].err == err) {
            text_str(t, text_errnos[i].text);
            return;
        }
    }
    text_str(t, "error ");
    text_i64(t, err);
}

const char *text_cstr(text_t *t) {
    if (t->fd >= 0 || t->p == NULL) return "";
    t->p[t->len] = '\0';
    return t->p;
}

void text_report_at(const char *what, const void *p) {
    char line[TEXT_LINE_MAX];
    text_t t;
    text_init(&t, line, sizeof(line) - 1); /* keep room for the '\n' */
    text_str(&t, "segshim: ");
    text_str(&t, what);
    text_str(&t, " at ");
    text_hex(&t, (uint64_t)(uintptr_t)p, 16);
    line[t.len++] = '\n';
    (void)text_write_all(2, line, t.len);
}
