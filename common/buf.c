/* common/buf.c: the growable byte buffer. See buf.h for the invariants. */
#include "common/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

size_t buf_reserve_cap(const struct buf *b, size_t n)
{
    /* One byte beyond len is kept for the NUL terminator. */
    if (n > b->max - b->len) {
        return 0;
    }
    size_t need = b->len + n + 1;
    if (need <= b->cap) {
        return b->cap;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    return cap > b->max + 1 ? b->max + 1 : cap;
}

int buf_reserve(struct buf *b, size_t n)
{
    size_t cap = buf_reserve_cap(b, n);

    if (cap == 0) {
        return VG_ELIMIT;
    }
    if (cap == b->cap) {
        return 0;
    }
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = 0;
    return 0;
}

int buf__append_grow(struct buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc < 0) {
        return rc;
    }
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_append_byte(struct buf *b, uint8_t c)
{
    return buf_append(b, &c, 1);
}

int buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    char small[256];

    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return -EINVAL;
    }
    if ((size_t)n < sizeof(small)) {
        return buf_append(b, small, (size_t)n);
    }
    int rc = buf_reserve(b, (size_t)n);
    if (rc < 0) {
        return rc;
    }
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_appendf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int buf_append_escaped(struct buf *b, struct span s, size_t max_in)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = s.n < max_in ? s.n : max_in;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        uint8_t c = s.p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            rc = buf_append_byte(b, c);
        } else {
            char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
            rc = buf_append(b, esc, sizeof(esc));
        }
    }
    if (rc == 0 && n < s.n) {
        rc = buf_append_str(b, "...");
    }
    return rc;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n == 0) {
        return;
    }
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->cap) {
        b->data[b->len] = 0;
    }
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->cap) {
        b->data[0] = 0;
    }
}

uint8_t *buf_detach(struct buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void buf_release(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

bool buf_check(const struct buf *b)
{
    if (b->len > b->cap && !(b->cap == 0 && b->len == 0)) {
        return false;
    }
    if (b->cap > b->max + 1) {
        return false;
    }
    return b->cap == 0 || b->data[b->len] == 0;
}
