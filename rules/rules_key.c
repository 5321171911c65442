/* rules/rules_key.c: group keys and hashes, shared by the engine's tables (correlation
 * groups, incidents, sources) and the checkpoint: the encoding of a group's values, the
 * keyed hash of the tables, the counted value's hash, and saturating time arithmetic.
 * Leaf of the evaluation files (calls none of them). Pure functions. */
#include <string.h>

#include "common/digest.h"
#include "rules/engine_int.h"

/* ---- SipHash-2-4 (the group tables' hash: an attacker choosing group-by values must not
 * be able to pile them into one bucket) ---- */

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND     \
 do {                \
  v0 += v1;          \
  v1 = rotl(v1, 13); \
  v1 ^= v0;          \
  v0 = rotl(v0, 32); \
  v2 += v3;          \
  v3 = rotl(v3, 16); \
  v3 ^= v2;          \
  v0 += v3;          \
  v3 = rotl(v3, 21); \
  v3 ^= v0;          \
  v2 += v1;          \
  v1 = rotl(v1, 17); \
  v1 ^= v2;          \
  v2 = rotl(v2, 32); \
 } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

uint64_t rules__siphash(const uint8_t key[16], const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t k0 = le64(key);
    uint64_t k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)n << 56;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t m = le64(p + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < n; j++) {
        b |= (uint64_t)p[i + j] << (8 * j);
    }
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* The counted value of value_count: deterministic across processes (checkpoints carry
 * it) and collision-resistant (SHA-256, truncated), so crafted values cannot merge. */
uint64_t rules__value_hash(struct span v)
{
    uint8_t d[VG_SHA256_LEN];
    vg_sha256(v.p ? (const void *)v.p : "", v.n, d);
    return le64(d);
}

int64_t rules__sat_add(int64_t a, int64_t b)
{
    if (b >= 0) {
        return a > INT64_MAX - b ? INT64_MAX : a + b;
    }
    return a < INT64_MIN - b ? INT64_MIN : a + b;
}

int64_t rules__sat_sub(int64_t a, int64_t b)
{
    if (b >= 0) {
        return a < INT64_MIN + b ? INT64_MIN : a - b;
    }
    return a > INT64_MAX + b ? INT64_MAX : a - b;
}

size_t rules__key_encode(const struct span *v, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = v[i].n < RULES_MAX_KEY_VALUE ? v[i].n : RULES_MAX_KEY_VALUE;
        out[o++] = (uint8_t)(len & 0xff);
        out[o++] = (uint8_t)(len >> 8);
        if (len) {
            memcpy(out + o, v[i].p, len);
        }
        o += len;
    }
    return o;
}

bool rules__key_decode(const uint8_t *key, size_t keylen, struct span *v, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (keylen - o < 2) {
            return false;
        }
        size_t len = key[o] | (size_t)key[o + 1] << 8;
        o += 2;
        if (len > RULES_MAX_KEY_VALUE || keylen - o < len) {
            return false;
        }
        v[i] = (struct span){ key + o, len };
        o += len;
    }
    return o == keylen;
}
