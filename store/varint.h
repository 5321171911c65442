/* store/varint.h: the integers of segment.md: unsigned LEB128 and zigzag (3.4: the
 * record stream, packed records, the index section) and little-endian fixed widths (2,
 * 8, 13: file headers, seal records, the seal sequence). Header-only: they are on the
 * per-record path. */
#ifndef VG_STORE_VARINT_H
#define VG_STORE_VARINT_H

#include <stddef.h>
#include <stdint.h>

#include "common/span.h"

/* At most 10 bytes, the 10th at most 1; returns the byte after the last written. */
static inline uint8_t *store__put_uvarint(uint8_t *p, uint64_t x)
{
    while (x >= 0x80) {
        *p++ = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    *p++ = (uint8_t)x;
    return p;
}

/* Reads one from the front of in and advances it; -1 when malformed or cut short. */
static inline int store__get_uvarint(struct span *in, uint64_t *out)
{
    uint64_t x = 0;

    for (size_t i = 0; i < 10 && i < in->n; i++) {
        uint8_t b = in->p[i];
        if (i == 9 && b > 1) {
            return -1;
        }
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            span_advance(in, i + 1);
            *out = x;
            return 0;
        }
    }
    return -1;
}

static inline uint64_t store__zigzag(uint64_t d)
{
    return (d << 1) ^ (0 - (d >> 63));
}

static inline uint64_t store__unzigzag(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

/* n (1..8) bytes little-endian. */
static inline void store__put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t store__get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

#endif
