/* rules/rules_key.c: the engine's tables and keys, shared by correlation groups,
 * incidents, sources and the checkpoint: the encoding of a group's values, the keyed
 * hash, a chained hash table of keyed nodes, a min-heap by deadline, the counted value's
 * hash, and saturating time arithmetic. Leaf of the evaluation files (calls none of
 * them). */
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"
#include "common/xalloc.h"
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

/* ---- tables ---- */

void rules__knode_set(struct knode *x, uint64_t h, const uint8_t *key, size_t n)
{
    x->key = xmalloc(n ? n : 1);
    if (n) {
        memcpy(x->key, key, n);
    }
    x->keylen = (uint32_t)n;
    x->hash = h;
}

void rules__ktable_insert(struct ktable *t, struct knode *x)
{
    if (t->n + 1 > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        struct knode **tab = xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < t->cap; i++) {
            struct knode *y = t->tab[i];
            while (y) {
                struct knode *next = y->hnext;
                y->hnext = tab[y->hash & (cap - 1)];
                tab[y->hash & (cap - 1)] = y;
                y = next;
            }
        }
        free(t->tab);
        t->tab = tab;
        t->cap = cap;
    }
    struct knode **b = &t->tab[x->hash & (t->cap - 1)];
    x->hnext = *b;
    *b = x;
    t->n++;
}

void rules__ktable_remove(struct ktable *t, struct knode *x)
{
    struct knode **p = &t->tab[x->hash & (t->cap - 1)];
    while (*p != x) {
        p = &(*p)->hnext;
    }
    *p = x->hnext;
    t->n--;
}

struct knode *rules__ktable_find(const struct ktable *t, const struct knode *from, uint64_t h,
                                 const uint8_t *key, size_t n)
{
    if (!t->tab) {
        return NULL;
    }
    for (struct knode *x = from ? from->hnext : t->tab[h & (t->cap - 1)]; x; x = x->hnext) {
        if (x->hash == h && x->keylen == n && memcmp(x->key, key, n) == 0) {
            return x;
        }
    }
    return NULL;
}

void rules__ktable_release(struct ktable *t)
{
    free(t->tab);
    memset(t, 0, sizeof(*t));
}

static void heap_set(struct dheap *h, size_t i, struct dnode *x)
{
    h->v[i] = x;
    x->hidx = i;
}

static void sift_up(struct dheap *h, size_t i)
{
    struct dnode *x = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p]->deadline <= x->deadline) {
            break;
        }
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, x);
}

static void sift_down(struct dheap *h, size_t i)
{
    struct dnode *x = h->v[i];
    for (;;) {
        size_t l = 2 * i + 1;
        size_t m = i;
        int64_t best = x->deadline;
        if (l < h->n && h->v[l]->deadline < best) {
            m = l;
            best = h->v[l]->deadline;
        }
        if (l + 1 < h->n && h->v[l + 1]->deadline < best) {
            m = l + 1;
        }
        if (m == i) {
            break;
        }
        heap_set(h, i, h->v[m]);
        i = m;
    }
    heap_set(h, i, x);
}

void rules__dheap_push(struct dheap *h, struct dnode *x)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 16;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    heap_set(h, h->n++, x);
    sift_up(h, x->hidx);
}

void rules__dheap_remove(struct dheap *h, struct dnode *x)
{
    size_t i = x->hidx;
    struct dnode *last = h->v[--h->n];
    if (last != x) {
        heap_set(h, i, last);
        sift_up(h, i);
        sift_down(h, last->hidx);
    }
}

void rules__dheap_fix(struct dheap *h, struct dnode *x)
{
    sift_up(h, x->hidx);
    sift_down(h, x->hidx);
}

void rules__dheap_release(struct dheap *h)
{
    free(h->v);
    memset(h, 0, sizeof(*h));
}
