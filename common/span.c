/* common/span.c: byte-range helpers and bounded number parsing. */
#include "common/span.h"

#include <limits.h>

#include "common/vg.h"

static inline uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

bool span_eq_nocase(struct span a, struct span b)
{
    if (a.n != b.n) {
        return false;
    }
    for (size_t i = 0; i < a.n; i++) {
        if (lower(a.p[i]) != lower(b.p[i])) {
            return false;
        }
    }
    return true;
}

bool span_contains(struct span hay, struct span needle)
{
    if (needle.n == 0) {
        return true;
    }
    if (needle.n > hay.n) {
        return false;
    }
    return memmem(hay.p, hay.n, needle.p, needle.n) != NULL;
}

bool span_contains_nocase(struct span hay, struct span needle)
{
    if (needle.n == 0) {
        return true;
    }
    if (needle.n > hay.n) {
        return false;
    }
    uint8_t first = lower(needle.p[0]);
    for (size_t i = 0; i + needle.n <= hay.n; i++) {
        if (lower(hay.p[i]) != first) {
            continue;
        }
        size_t j = 1;
        while (j < needle.n && lower(hay.p[i + j]) == lower(needle.p[j])) {
            j++;
        }
        if (j == needle.n) {
            return true;
        }
    }
    return false;
}

bool span_starts_with(struct span s, struct span prefix)
{
    return s.n >= prefix.n && (prefix.n == 0 || memcmp(s.p, prefix.p, prefix.n) == 0);
}

int parse_u64(struct span s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (s.n == 0 || s.n > 20) {
        return VG_EPARSE;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return VG_EPARSE;
        }
        uint64_t d = (uint64_t)(s.p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return VG_EPARSE;
        }
        v = v * 10 + d;
    }
    if (v > max) {
        return VG_EPARSE;
    }
    *out = v;
    return 0;
}

int parse_i64(struct span s, int64_t min, int64_t max, int64_t *out)
{
    bool neg = s.n > 0 && s.p[0] == '-';
    uint64_t mag;

    if (neg) {
        span_advance(&s, 1);
    }
    if (parse_u64(s, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &mag) < 0) {
        return VG_EPARSE;
    }
    int64_t v = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    if (v < min || v > max) {
        return VG_EPARSE;
    }
    *out = v;
    return 0;
}

size_t utf8_seq_len(const uint8_t *p, size_t n, uint32_t *cp_out)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;

    if (c < 0x80) {
        if (cp_out) {
            *cp_out = c;
        }
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    if (cp_out) {
        *cp_out = cp;
    }
    return len;
}
