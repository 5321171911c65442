/* common/buf.h: the one growable byte buffer, from socket input to encoded blocks.
 * Invariants, checked by buf_check() in the unit tests after every operation:
 * len <= cap <= max; cap > 0 => data[len] == 0. */
#ifndef VG_COMMON_BUF_H
#define VG_COMMON_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/span.h"
#include "common/vg.h"

struct buf {
    uint8_t *data;
    size_t len, cap, max;
};

void buf_init(struct buf *b, size_t max);             /* allocates nothing */
int buf_reserve(struct buf *b, size_t n) VG_MUST_USE; /* room for n more; VG_ELIMIT past max */
/* The capacity buf_reserve(b, n) would leave b with (b->cap when it has room already), or
 * 0 when n more is past max: for callers that budget memory before it is allocated. */
size_t buf_reserve_cap(const struct buf *b, size_t n);
/* Inline when the room is there (most appends: encoders write small pieces into a
 * buffer reserved once); buf__append_grow reserves first. */
int buf__append_grow(struct buf *b, const void *p, size_t n) VG_MUST_USE;
VG_MUST_USE static inline int buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->cap - b->len > n) { /* room for n and the NUL: cap > 0 */
        if (n) {
            memcpy(b->data + b->len, p, n);
        }
        b->len += n;
        b->data[b->len] = 0;
        return 0;
    }
    return buf__append_grow(b, p, n);
}
int buf_append_str(struct buf *b, const char *s) VG_MUST_USE;
int buf_append_byte(struct buf *b, uint8_t c) VG_MUST_USE;
int buf_appendf(struct buf *b, const char *fmt, ...) VG_MUST_USE VG_PRINTF(2, 3);
int buf_vappendf(struct buf *b, const char *fmt, va_list ap) VG_MUST_USE VG_PRINTF(2, 0);
/* Appends s with bytes outside printable ASCII as \xNN, at most max_in input bytes
 * (then "..."). For peer bytes in log lines. */
int buf_append_escaped(struct buf *b, struct span s, size_t max_in) VG_MUST_USE;
void buf_consume(struct buf *b, size_t n);       /* drops n bytes from the front */
void buf_reset(struct buf *b);                   /* len = 0, keeps memory */
uint8_t *buf_detach(struct buf *b, size_t *len); /* caller frees; b is empty */
void buf_release(struct buf *b);
bool buf_check(const struct buf *b);

static inline struct span buf_span(const struct buf *b)
{
    return (struct span){ b->data, b->len };
}

/* The contents as a NUL-terminated string ("" when empty). */
static inline const char *buf_cstr(const struct buf *b)
{
    return b->cap ? (const char *)b->data : "";
}

#endif
