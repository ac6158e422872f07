/*
 * fuzz_ops.c - libFuzzer target: the input is a program of pool operations.
 *
 * Each operation is 4 bytes: opcode, slot, and a 16-bit argument.  There are
 * 64 block slots, 8 whole-segment slots and 8 local-pool slots.  Sizes run up
 * to twice the segment size, so requests the pool must refuse are mixed in.
 *
 *   malloc / calloc / aligned_alloc / realloc of NULL into an empty slot;
 *   realloc, free of a full slot; usable_size and owns checks;
 *   segment request / recycle; local pool request / recycle; collect.
 *
 * Every block is filled with a pattern derived from its slot and a serial and
 * checked before it is resized or freed and at the end of the input.  The
 * expectations: a request of at most one segment is served (the pool is far
 * larger than what 64 blocks can hold), a larger one returns NULL; aligned
 * requests with a power-of-two alignment up to the segment size and a size
 * that fits are served; a refused realloc leaves the block intact; calloc
 * memory reads as zeros; after every block is freed and segpool_collect()
 * runs, no segment is out of the pool.
 *
 * SEGSHIM_POOL_SIZE, SEGSHIM_SEGMENT_SIZE and SEGSHIM_DECAY_MS default to
 * 64M, 16K and 0 here; set them in the environment to fuzz another shape.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "segpool.h"

#define SLOTS 64
#define SEGMENTS 8

typedef struct slot_s {
    uint8_t *p;
    size_t size;
    uint32_t serial;
} slot_t;

static size_t seg;
static uint32_t serial_next;

#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_ops: %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    setenv("SEGSHIM_POOL_SIZE", "64M", 0);
    setenv("SEGSHIM_SEGMENT_SIZE", "16K", 0);
    setenv("SEGSHIM_DECAY_MS", "0", 0);
    seg = segpool_segment_size();
    if (seg == 0) {
        fprintf(stderr, "fuzz_ops: the pool did not come up\n");
        abort();
    }
    return 0;
}

static uint8_t pattern(uint32_t serial, size_t i) { return (uint8_t)((serial * 0x9E3779B1u) >> 24 ^ (i * 131) ^ (i >> 8)); }

/* Offsets a block is written and checked at: all of the first and last 64
 * bytes and every 29th byte between (a full fill under ASan made runs slow
 * without finding more). */
static size_t next_offset(size_t i, size_t size) { return (i < 64 || i + 64 >= size) ? i + 1 : i + 29; }

static void fill(slot_t *s) {
    for (size_t i = 0; i < s->size; i = next_offset(i, s->size)) s->p[i] = pattern(s->serial, i);
}

/* Check the first upto bytes of the pattern written for s->size bytes. */
static void verify(const slot_t *s, size_t upto, const char *when) {
    for (size_t i = 0; i < upto; i = next_offset(i, s->size))
        FUZZ_CHECK(s->p[i] == pattern(s->serial, i), "%s: block %p size %zu corrupted at %zu", when, (void *)s->p,
                   s->size, i);
}

static void check_block(const slot_t *s, size_t align) {
    FUZZ_CHECK(segpool_owns(s->p), "%p not owned", (void *)s->p);
    FUZZ_CHECK(segpool_usable_size(s->p) >= s->size, "usable %zu < %zu", segpool_usable_size(s->p), s->size);
    FUZZ_CHECK(((uintptr_t)s->p & 15) == 0, "%p not 16-byte aligned", (void *)s->p);
    FUZZ_CHECK(((uintptr_t)s->p & (align - 1)) == 0, "%p not aligned to %zu", (void *)s->p, align);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    slot_t slots[SLOTS];
    void *segments[SEGMENTS];
    void *locals[SEGMENTS];
    memset(slots, 0, sizeof slots);
    memset(segments, 0, sizeof segments);
    memset(locals, 0, sizeof locals);
    segpool_local_t *lp = NULL;

    for (size_t at = 0; at + 4 <= size; at += 4) {
        unsigned op = data[at] % 12;
        slot_t *s = &slots[data[at + 1] % SLOTS];
        unsigned arg = (unsigned)data[at + 2] | (unsigned)data[at + 3] << 8;
        size_t n = (size_t)arg * (2 * seg) / 65535; /* 0 .. 2 segments */
        if (op <= 3 && s->p) op = 4 + (op & 1);     /* full slot: realloc or free it instead */
        switch (op) {
        case 0: /* malloc */
        case 1: { /* calloc, with an occasional overflowing count */
            uint8_t *p;
            size_t count = 1 + (data[at + 1] >> 6);
            if (op == 1 && data[at + 1] == 255) {
                FUZZ_CHECK(segpool_calloc(SIZE_MAX / 2, 3) == NULL, "calloc overflow served");
                break;
            }
            size_t bytes = op == 1 ? n / count * count : n;
            p = op == 0 ? segpool_malloc(n) : segpool_calloc(count, n / count);
            if (bytes > seg) {
                FUZZ_CHECK(p == NULL, "a request of %zu > segment %zu was served", bytes, seg);
                break;
            }
            FUZZ_CHECK(p != NULL, "%s(%zu) refused", op == 0 ? "malloc" : "calloc", bytes);
            if (op == 1)
                for (size_t i = 0; i < bytes; i++) FUZZ_CHECK(p[i] == 0, "calloc byte %zu of %zu is %u", i, bytes, p[i]);
            s->p = p;
            s->size = bytes;
            s->serial = ++serial_next;
            check_block(s, 16);
            fill(s);
            break;
        }
        case 2: { /* aligned_alloc */
            size_t align = (size_t)1 << (data[at + 1] % 20);
            uint8_t *p = segpool_aligned_alloc(align, n);
            if (n > seg || align > seg) {
                FUZZ_CHECK(p == NULL, "aligned_alloc(%zu, %zu) beyond a segment was served", align, n);
                break;
            }
            FUZZ_CHECK(p != NULL, "aligned_alloc(%zu, %zu) refused", align, n);
            s->p = p;
            s->size = n;
            s->serial = ++serial_next;
            check_block(s, align);
            fill(s);
            break;
        }
        case 3: { /* realloc of NULL */
            uint8_t *p = segpool_realloc(NULL, n);
            FUZZ_CHECK((p == NULL) == (n > seg), "realloc(NULL, %zu) gave %p", n, (void *)p);
            if (!p) break;
            s->p = p;
            s->size = n;
            s->serial = ++serial_next;
            check_block(s, 16);
            fill(s);
            break;
        }
        case 4: { /* realloc */
            if (!s->p) break;
            verify(s, s->size, "before realloc");
            uint8_t *q = segpool_realloc(s->p, n);
            if (n > seg) {
                FUZZ_CHECK(q == NULL, "realloc to %zu > segment served", n);
                verify(s, s->size, "after a refused realloc");
                break;
            }
            FUZZ_CHECK(q != NULL, "realloc(%zu -> %zu) refused", s->size, n);
            s->p = q;
            verify(s, s->size < n ? s->size : n, "after realloc");
            s->size = n;
            s->serial = ++serial_next;
            check_block(s, 16);
            fill(s);
            break;
        }
        case 5: /* free */
            if (!s->p) break;
            verify(s, s->size, "before free");
            segpool_free(s->p);
            s->p = NULL;
            break;
        case 6: /* queries */
            if (s->p) {
                check_block(s, 16);
                verify(s, s->size, "query");
            }
            FUZZ_CHECK(!segpool_owns(&arg), "a stack address is owned");
            FUZZ_CHECK(segpool_usable_size(NULL) == 0, "usable_size(NULL)");
            break;
        case 7: { /* whole segment */
            void **g = &segments[data[at + 1] % SEGMENTS];
            if (*g) {
                FUZZ_CHECK(*(uint64_t *)*g == (uintptr_t)*g, "segment %p overwritten", *g);
                segpool_segment_recycle(*g);
                *g = NULL;
            } else {
                *g = segpool_segment_request();
                FUZZ_CHECK(*g != NULL, "segment request refused");
                FUZZ_CHECK(((uintptr_t)*g & (seg - 1)) == 0, "segment %p misaligned", *g);
                memset(*g, data[at + 2], seg);
                *(uint64_t *)*g = (uintptr_t)*g;
            }
            break;
        }
        case 8: { /* local pool */
            if (!lp) {
                size_t max = 1 + data[at + 2] % SEGMENTS;
                lp = segpool_local_create(data[at + 3] % (max + 1), max);
                FUZZ_CHECK(lp != NULL, "segpool_local_create");
                break;
            }
            void **g = &locals[data[at + 1] % SEGMENTS];
            if (*g) {
                FUZZ_CHECK(*(uint64_t *)*g == (uintptr_t)*g + 1, "local segment overwritten");
                segpool_local_recycle(lp, *g);
                *g = NULL;
            } else {
                size_t out = segpool_local_in_use(lp);
                *g = data[at + 2] & 1 ? segpool_local_request(lp) : segpool_local_request_timeout(lp, 0);
                if (*g) {
                    memset(*g, 0x5c, seg);
                    *(uint64_t *)*g = (uintptr_t)*g + 1;
                    FUZZ_CHECK(segpool_local_in_use(lp) == out + 1, "local in use");
                }
            }
            break;
        }
        case 9: /* destroy the local pool with segments still out */
            if (lp && data[at + 1] % 4 == 0) {
                segpool_local_destroy(lp);
                lp = NULL;
                memset(locals, 0, sizeof locals);
            }
            break;
        case 10:
            segpool_collect();
            break;
        default: /* the pattern of every live block */
            for (unsigned i = 0; i < SLOTS; i++)
                if (slots[i].p) verify(&slots[i], slots[i].size, "sweep");
            break;
        }
    }

    for (unsigned i = 0; i < SLOTS; i++)
        if (slots[i].p) {
            verify(&slots[i], slots[i].size, "at the end");
            segpool_free(slots[i].p);
        }
    for (unsigned i = 0; i < SEGMENTS; i++)
        if (segments[i]) segpool_segment_recycle(segments[i]);
    if (lp) {
        for (unsigned i = 0; i < SEGMENTS; i++)
            if (locals[i] && (i & 1)) segpool_local_recycle(lp, locals[i]);
        segpool_local_destroy(lp); /* the rest still out: destroy takes them */
    }
    segpool_collect();
    size_t user = __atomic_load_n(&pool.segments_user, __ATOMIC_RELAXED);
    segment_counts_t counts;
    segment_counts(&counts);
    size_t out = counts.out;
    FUZZ_CHECK(out == 0 && user == 0, "%zu segments (%zu whole) still out after everything was freed", out, user);
    return 0;
}
