/*
 * text.h - the one allocation-free text builder of libsegpool: statistics,
 * configuration messages, the verbose printout and misuse reports are all
 * formatted with it.
 *
 * Why not snprintf: these run before the allocator exists, inside it, and at
 * exit; glibc's stdio may allocate and takes locks a thread that died in
 * fork may hold.  So text goes into a caller's buffer (usually on the stack)
 * and out with write(2).
 *
 * A text_t works in one of two ways, fixed when it is set up:
 *   text_init     a bounded string: text past the buffer is dropped (and
 *                 t->truncated set); the buffer always holds a NUL-terminated
 *                 string;
 *   text_init_fd  a stream to fd: a full buffer is written out (text_flush,
 *                 retrying EINTR and short writes), nothing is dropped unless
 *                 a write fails (t->failed set; the rest is discarded).
 */
#ifndef SEGPOOL_TEXT_H
#define SEGPOOL_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct text_s {
    char *p;
    size_t cap;    /* bytes of text p may hold (a bounded string keeps one more for the NUL) */
    size_t len;
    int fd;        /* >= 0: flush there when full; < 0: a bounded string */
    int failed;    /* a write failed: the rest is dropped */
    int truncated; /* a bounded string ran out of room */
} text_t;

/* The longest one-line message (reports, notes, advice), with its '\n'. */
#define TEXT_LINE_MAX 160

/* The longest decimal of a uint64_t, with a sign and the NUL. */
#define TEXT_NUM_LEN 24

void text_init(text_t *t, char *buf, size_t size);
void text_init_fd(text_t *t, char *buf, size_t size, int fd);

void text_mem(text_t *t, const char *s, size_t n);
void text_str(text_t *t, const char *s); /* NULL appends nothing */
void text_char(text_t *t, char c);
void text_spaces(text_t *t, size_t n);
/* s padded with spaces to width: right-aligned when right != 0. */
void text_field(text_t *t, const char *s, size_t width, int right);
/* At most max bytes of s[0..n), control bytes as '?', "..." when cut: a
 * hostile value still gives exactly one line. */
void text_printable(text_t *t, const char *s, size_t n, size_t max);

void text_u64(text_t *t, uint64_t v);
void text_i64(text_t *t, int64_t v);
/* "0x" and v in hex, at least digits digits (16 gives a full pointer). */
void text_hex(text_t *t, uint64_t v, unsigned digits);
/* v / 10^decimals with exactly decimals digits after the point:
 * text_fixed(t, 12345, 3) -> "12.345". */
void text_fixed(text_t *t, uint64_t v, unsigned decimals);
/* num / den as a percentage with one decimal ("66.7%"), "-" when den is 0. */
void text_pct(text_t *t, uint64_t num, uint64_t den);
/* Bytes in the largest binary unit K..E not above v: exact when the unit
 * divides v ("32K", "2M", "512"), else rounded to one decimal ("1.5M"). */
void text_bytes(text_t *t, uint64_t v);
/* Bytes in the largest unit K, M, G that divides v exactly, else plain
 * bytes: what the configuration parser reads back ("32K", "24064M"). */
void text_size_exact(text_t *t, int64_t v);
/* A short reason for an errno value ("Permission denied"), from a table of
 * the errors a file open or write gives; others as "error 42".  Not
 * strerror: that may translate (gettext allocates). */
void text_errno(text_t *t, int err);

/* Write what the stream holds to its fd.  A bounded string is left as is. */
void text_flush(text_t *t);
/* NUL-terminated contents of a bounded string. */
const char *text_cstr(text_t *t);

/* write(2) all of buf to fd, retrying EINTR and short writes.  0, or -1
 * when a write failed or made no progress. */
int text_write_all(int fd, const char *buf, size_t len);

/* "segshim: <what> at 0x<p>\n" on stderr, for the misuse reports. */
void text_report_at(const char *what, const void *p);

#endif /* SEGPOOL_TEXT_H */
