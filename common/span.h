/* common/span.h: a borrowed byte range. Parsers advance a span over bytes they do
 * not own; nothing here allocates. */
#ifndef VG_COMMON_SPAN_H
#define VG_COMMON_SPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct span {
    const uint8_t *p;
    size_t n;
};

#define SPAN_LIT(s) ((struct span){ (const uint8_t *)(s), sizeof(s) - 1 })

static inline struct span span_str(const char *s)
{
    return (struct span){ (const uint8_t *)s, s ? strlen(s) : 0 };
}

static inline bool span_eq(struct span a, struct span b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline bool span_eq_str(struct span a, const char *s)
{
    return span_eq(a, span_str(s));
}

/* ASCII case-insensitive equality. */
bool span_eq_nocase(struct span a, struct span b);
/* True if needle occurs in hay (case-sensitive); an empty needle always occurs. */
bool span_contains(struct span hay, struct span needle);
/* ASCII case-insensitive substring search. */
bool span_contains_nocase(struct span hay, struct span needle);
bool span_starts_with(struct span s, struct span prefix);

/* The value (0..15) of hex digit c, either case; -1 for anything else. */
static inline int hex_digit_value(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The length (1..4) of the valid UTF-8 sequence at the front of p[0..n), 0 when it is
 * not valid (overlong, surrogate, past U+10FFFF, cut off); *cp gets the code point
 * (cp may be NULL). n must be > 0. */
size_t utf8_seq_len(const uint8_t *p, size_t n, uint32_t *cp);

/* Drops n bytes from the front; n <= s->n. */
static inline void span_advance(struct span *s, size_t n)
{
    s->p += n;
    s->n -= n;
}

/* Parses an unsigned decimal with no sign, no spaces, no overflow, value <= max.
 * Returns 0 or VG_EPARSE. */
int parse_u64(struct span s, uint64_t max, uint64_t *out);
/* Signed decimal, optional leading '-', within [min, max]. Returns 0 or VG_EPARSE. */
int parse_i64(struct span s, int64_t min, int64_t max, int64_t *out);

#endif
