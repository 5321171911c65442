/* store/bindex.c: the block index of format v2 (schemas/segment.md 3.2): per block, the
 * values of the identity fields (an exact set while small, else a bloom filter) and the
 * trigrams of the record text, so a scan skips blocks that cannot hold a match before
 * reading their data.
 *
 * Soundness is the whole point: an index may say "maybe" about a block without a match
 * (a bloom false positive, a trigram that occurs elsewhere), never "no" about a block
 * with one. Hence: a record the index cannot describe exactly (not a schema-v1 map, an
 * identity field that is not a string, a key twice) turns the block's index off; a raw
 * event that does not walk turns the text index off; trigrams made only of hex digits
 * are left out on both sides (they say little and are most of the distinct ones), and
 * a text needs only the trigrams inside its runs of letters and digits, which occur in
 * any string that contains it.
 *
 * The builder runs on the writer's hot path: per record, one hash per identity field
 * and a table lookup per byte of text, no allocation in the steady state. Pure; any
 * thread. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
# include <emmintrin.h>
#endif

#include "common/ip.h"
#include "common/xalloc.h"
#include "store/bindex.h"
#include "store/varint.h"

/* segment.md 3.2: the identity fields and the key of the record that holds each. */
static const struct {
    const char *name;
    int key;
} fields[BIX_NFIELDS + 1] = {
    [BIX_HOST] = { "host", PK_HOST },
    [BIX_NAMESPACE] = { "namespace", PK_NAMESPACE },
    [BIX_POD] = { "pod", PK_POD },
    [BIX_CONTAINER_ID] = { "container_id", PK_CONTAINER_ID },
    [BIX_IMAGE] = { "image", PK_IMAGE },
    [BIX_USER] = { "user", PK_USER },
    [BIX_SRC_IP] = { "src_ip", PK_SRC_IP },
    [BIX_RULE] = { "rule", PK_RULE },
    [BIX_CVE] = { "cve", PK_CVE },
};

enum { BIX_T_SET = 1, BIX_T_BLOOM = 2, BIX_T_TRIGRAMS = 3 };
#define ENTRY_HDR 6 /* u8 id, u8 type, u32 length */

const char *bix__field_name(int id)
{
    return id >= 1 && id <= BIX_NFIELDS ? fields[id].name : NULL;
}

static int field_lookup(const char *name)
{
    for (int id = 1; id <= BIX_NFIELDS; id++) {
        if (strcmp(fields[id].name, name) == 0) {
            return id;
        }
    }
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- vhash64 (segment.md 3.2.2): on disk through the bloom filters ---- */

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t mix_word(uint64_t h, uint64_t w)
{
    w *= 0x87c37b91114253d5ull;
    w = rotl64(w, 31);
    w *= 0x4cf5ad432745937full;
    h ^= w;
    return rotl64(h, 27) * 5 + 0x52dce729;
}

static uint64_t vhash64(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xc2b2ae3d27d4eb4full);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        h = mix_word(h, w);
    }
    if (i < n) {
        uint64_t w = 0;
        for (size_t b = 0; i + b < n; b++) {
            w |= (uint64_t)p[i + b] << (8 * b);
        }
        h = mix_word(h, w);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Bit i of a bloom filter of nbits for hash h (segment.md 3.2.2). */
static inline uint64_t bloom_bit(uint64_t h, unsigned i, uint64_t nbits)
{
    uint32_t h1 = (uint32_t)h;
    uint32_t h2 = (uint32_t)(h >> 32) | 1;
    uint32_t x = h1 + (uint32_t)i * h2;
    return ((uint64_t)x * nbits) >> 32;
}

/* ---- trigrams (segment.md 3.2.3) ---- */

/* 0-9: digits, 10-15: a-f, 16-35: g-z (either case), 36: bytes >= 0x80, 255: others. */
static const uint8_t tri_class[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0,   1,   2,   3,   4,   5,   6,   7,   8,
    9,   255, 255, 255, 255, 255, 255, 255, 10,  11,  12,  13,  14,  15,  16,  17,  18,  19,  20,
    21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  255, 255, 255, 255,
    255, 255, 10,  11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,
    27,  28,  29,  30,  31,  32,  33,  34,  35,  255, 255, 255, 255, 255, 36,  36,  36,  36,  36,
    36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,
    36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,
    36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,
    36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,
    36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,
    36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,  36,
    36,  36,  36,  36,  36,  36,  36,  36,  36,
};

/* Calls SET(code) for each trigram of text that is not made of hex digits only: the
 * classes of the last three bytes of a run; all three < 16 exactly when their OR is. */
#define TRIGRAMS(text, SET)                     \
 do {                                           \
  uint32_t c1_ = 0;                             \
  uint32_t c2_ = 0;                             \
  uint32_t run_ = 0;                            \
  for (size_t i_ = 0; i_ < (text).n; i_++) {    \
   uint32_t c_ = tri_class[(text).p[i_]];       \
   if (c_ == 255) {                             \
    run_ = 0;                                   \
    continue;                                   \
   }                                            \
   if (++run_ >= 3 && (c1_ | c2_ | c_) >= 16) { \
    SET(c1_ *(37 * 37) + c2_ * 37 + c_);        \
   }                                            \
   c1_ = c2_;                                   \
   c2_ = c_;                                    \
  }                                             \
 } while (0)

void bix__trigrams(struct span text, void (*fn)(void *arg, uint16_t code), void *arg)
{
#define CALL_FN(c) fn(arg, (uint16_t)(c))
    TRIGRAMS(text, CALL_FN);
#undef CALL_FN
}

/* ---- value keys ---- */

int bix__value_key(int id, struct span value, struct buf *out)
{
    uint8_t ip[17];

    if (id != BIX_SRC_IP) {
        return buf_append(out, value.p, value.n);
    }
    /* As query/filter.c reads an address (common/ip.h). */
    if (ip_parse16(value, ip + 1, NULL)) {
        ip[0] = 1;
        return buf_append(out, ip, sizeof(ip));
    }
    uint8_t tag = 0;
    int rc = buf_append(out, &tag, 1);
    return rc < 0 ? rc : buf_append(out, value.p, value.n);
}

/* ---- the builder ---- */

void bix__builder_init(struct bix_builder *b)
{
    memset(b, 0, sizeof(*b));
    for (int id = 1; id <= BIX_NFIELDS; id++) {
        buf_init(&b->f[id].vals, BIX_SET_MAX_BYTES + 16);
        b->f[id].exact = true;
    }
    buf_init(&b->key, 64u << 20);
}

void bix__builder_reset(struct bix_builder *b)
{
    b->off = false;
    b->text_off = false;
    for (int id = 1; id <= BIX_NFIELDS; id++) {
        struct bix_field *f = &b->f[id];
        if (f->n > 0) {
            memset(f->slots, 0, f->cap * sizeof(*f->slots));
        }
        f->n = 0;
        f->exact = true;
        buf_reset(&f->vals);
    }
    memset(b->grams, 0, sizeof(b->grams));
}

void bix__builder_release(struct bix_builder *b)
{
    for (int id = 1; id <= BIX_NFIELDS; id++) {
        free(b->f[id].slots);
        free(b->f[id].offs);
        buf_release(&b->f[id].vals);
        b->f[id].slots = NULL;
        b->f[id].offs = NULL;
        b->f[id].cap = 0;
        b->f[id].n = 0;
    }
    buf_release(&b->key);
    bix__builder_reset(b);
}

static void field_grow(struct bix_field *f)
{
    uint32_t ncap = f->cap ? 2 * f->cap : 16;
    uint64_t *slots = xcalloc(ncap, sizeof(*slots));
    uint32_t *offs = xcalloc(ncap, sizeof(*offs));

    for (uint32_t i = 0; i < f->cap; i++) {
        if (f->slots[i]) {
            uint32_t j = (uint32_t)f->slots[i] & (ncap - 1);
            while (slots[j]) {
                j = (j + 1) & (ncap - 1);
            }
            slots[j] = f->slots[i];
            offs[j] = f->offs[i];
        }
    }
    free(f->slots);
    free(f->offs);
    f->slots = slots;
    f->offs = offs;
    f->cap = ncap;
}

/* Adds the value key k to f's set. */
static int field_add(struct bix_field *f, struct span k)
{
    uint64_t h = vhash64(k.p, k.n);

    h = h ? h : 1;
    if ((f->n + 1) * 2 > f->cap) {
        field_grow(f);
    }
    uint32_t mask = f->cap - 1;
    uint32_t i = (uint32_t)h & mask;
    while (f->slots[i]) {
        if (f->slots[i] == h) {
            if (f->exact) {
                const uint8_t *v = f->vals.data + f->offs[i];
                if (get_u32(v) != k.n || memcmp(v + 4, k.p, k.n) != 0) {
                    /* Two values, one hash: a bloom filter tells them apart no better,
                     * and it stays sound (both set the same bits). */
                    f->exact = false;
                    buf_reset(&f->vals);
                }
            }
            return 0;
        }
        i = (i + 1) & mask;
    }
    f->slots[i] = h;
    f->n++;
    if (f->exact) {
        if (f->n > BIX_SET_MAX || f->vals.len + 4 + k.n > BIX_SET_MAX_BYTES) {
            f->exact = false;
            buf_reset(&f->vals);
            return 0;
        }
        uint8_t len[4];
        put_u32(len, (uint32_t)k.n);
        f->offs[i] = (uint32_t)f->vals.len;
        int rc = buf_append(&f->vals, len, 4);
        if (rc == 0) {
            rc = buf_append(&f->vals, k.p, k.n);
        }
        return rc;
    }
    return 0;
}

#define SET_GRAM(c) (b->grams[(c) >> 6] |= (uint64_t)1 << ((c)&63))

int bix__builder_add(struct bix_builder *b, const struct pack_view *v)
{
    int rc;

    if (b->off) {
        return 0;
    }
    if (!v->indexable) {
        b->off = true;
        return 0;
    }
    for (int id = 1; id <= BIX_NFIELDS; id++) {
        int k = fields[id].key;
        if (!(v->present & (1u << k))) {
            continue;
        }
        buf_reset(&b->key);
        if ((rc = bix__value_key(id, v->str[k], &b->key)) < 0 ||
            (rc = field_add(&b->f[id], buf_span(&b->key))) < 0) {
            return rc;
        }
    }
    if (b->text_off) {
        return 0;
    }
    if (!v->raw_ok || v->unknown) {
        b->text_off = true; /* text the index would not see: no text index */
        return 0;
    }
    /* segment.md 3.2.3: every normalized string, and the text of raw. A normalized
     * string that is a string of raw is indexed with raw. */
    for (int k = 0; k < PK_RAW; k++) {
        if ((v->present & (1u << k)) && v->ref[k] < 0 && k != PK_TS && k != PK_RECEIVED &&
            k != PK_SEQ && k != PK_DST_PORT) {
            TRIGRAMS(v->str[k], SET_GRAM);
        }
    }
    for (uint32_t i = 0; i < v->nrawstr; i++) {
        TRIGRAMS(v->rawstr[i], SET_GRAM);
    }
    if (v->rawstr_more) {
        b->text_off = true; /* more strings than a view lists: do not guess */
    }
    return 0;
}

int bix__builder_finish(const struct bix_builder *b, struct buf *out)
{
    int rc;

    if (b->off) {
        return 0;
    }
    uint8_t ver = BIX_VERSION;
    if ((rc = buf_append(out, &ver, 1)) < 0) {
        return rc;
    }
    for (int id = 1; id <= BIX_NFIELDS; id++) {
        const struct bix_field *f = &b->f[id];
        size_t start = out->len;
        if (f->exact) {
            /* The values as added: a count, then (length, bytes) each. */
            if ((rc = buf_reserve(out, ENTRY_HDR + 10 + f->vals.len + 6 * (size_t)f->n)) < 0) {
                return rc;
            }
            uint8_t *p = out->data + start + ENTRY_HDR;
            p = store__put_uvarint(p, f->n);
            for (size_t off = 0; off < f->vals.len;) {
                uint32_t len = get_u32(f->vals.data + off);
                p = store__put_uvarint(p, len);
                memcpy(p, f->vals.data + off + 4, len);
                p += len;
                off += 4 + (size_t)len;
            }
            out->data[start] = (uint8_t)id;
            out->data[start + 1] = BIX_T_SET;
            put_u32(out->data + start + 2, (uint32_t)(p - out->data - start - ENTRY_HDR));
            out->len = (size_t)(p - out->data);
        } else {
            uint64_t nbits = ((uint64_t)f->n * BIX_BLOOM_BITS + 63) / 64 * 64;
            size_t nbytes = (size_t)(nbits / 8);
            if ((rc = buf_reserve(out, ENTRY_HDR + 1 + nbytes)) < 0) {
                return rc;
            }
            uint8_t *p = out->data + start;
            p[0] = (uint8_t)id;
            p[1] = BIX_T_BLOOM;
            put_u32(p + 2, (uint32_t)(1 + nbytes));
            p[ENTRY_HDR] = BIX_BLOOM_K;
            uint8_t *bits = p + ENTRY_HDR + 1;
            memset(bits, 0, nbytes);
            for (uint32_t i = 0; i < f->cap; i++) {
                if (f->slots[i]) {
                    for (unsigned j = 0; j < BIX_BLOOM_K; j++) {
                        uint64_t bit = bloom_bit(f->slots[i], j, nbits);
                        bits[bit >> 3] |= (uint8_t)(1u << (bit & 7));
                    }
                }
            }
            out->len = start + ENTRY_HDR + 1 + nbytes;
        }
        out->data[out->len] = 0;
    }
    if (!b->text_off) {
        /* A count, then the codes ascending as differences (the first from -1). */
        size_t start = out->len;
        uint32_t ngrams = 0;
        for (uint32_t w = 0; w < VG_ARRAY_LEN(b->grams); w++) {
            ngrams += (uint32_t)__builtin_popcountll(b->grams[w]);
        }
        if ((rc = buf_reserve(out, ENTRY_HDR + 10 + 3 * (size_t)ngrams)) < 0) {
            return rc;
        }
        uint8_t *p = out->data + start + ENTRY_HDR;
        p = store__put_uvarint(p, ngrams);
        int64_t prev = -1;
        for (uint32_t w = 0; w < VG_ARRAY_LEN(b->grams); w++) {
            uint64_t bits = b->grams[w];
            while (bits) {
                int64_t code = (int64_t)w * 64 + __builtin_ctzll(bits);
                bits &= bits - 1;
                p = store__put_uvarint(p, (uint64_t)(code - prev - 1));
                prev = code;
            }
        }
        out->data[start] = BIX_TEXT;
        out->data[start + 1] = BIX_T_TRIGRAMS;
        put_u32(out->data + start + 2, (uint32_t)(p - out->data - start - ENTRY_HDR));
        out->len = (size_t)(p - out->data);
        out->data[out->len] = 0;
    }
    return 0;
}

/* ---- reading (segment.md 3.2.1) ---- */

struct bix_entry {
    int id;
    int type;
    struct span body;
};

/* Takes the next entry off *in. Returns 1, 0 at the end, VG_ECORRUPT. */
static int next_entry(struct span *in, struct bix_entry *e, struct errbuf *why)
{
    if (in->n == 0) {
        return 0;
    }
    if (in->n < ENTRY_HDR) {
        errbuf_set(why, "index: entry header cut short");
        return VG_ECORRUPT;
    }
    uint32_t len = get_u32(in->p + 2);
    if (len > in->n - ENTRY_HDR) {
        errbuf_set(why, "index: entry of %" PRIu32 " bytes runs past the section", len);
        return VG_ECORRUPT;
    }
    e->id = in->p[0];
    e->type = in->p[1];
    e->body = (struct span){ in->p + ENTRY_HDR, len };
    span_advance(in, ENTRY_HDR + (size_t)len);
    return 1;
}

/* Checks one entry's body; for a set, v (if not NULL) is looked for in it: *found. */
static int check_set(struct span body, const uint8_t *v, size_t vlen, bool *found,
                     struct errbuf *why)
{
    uint64_t n;

    if (found) {
        *found = false;
    }
    if (store__get_uvarint(&body, &n) < 0 || n > body.n) {
        errbuf_set(why, "index: bad value count");
        return VG_ECORRUPT;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        if (store__get_uvarint(&body, &len) < 0 || len > body.n) {
            errbuf_set(why, "index: bad value length");
            return VG_ECORRUPT;
        }
        if (found && len == vlen && memcmp(body.p, v, vlen) == 0) {
            *found = true;
            return 0;
        }
        span_advance(&body, (size_t)len);
    }
    if (body.n != 0) {
        errbuf_set(why, "index: %zu bytes after the last value", body.n);
        return VG_ECORRUPT;
    }
    return 0;
}

static int check_bloom(struct span body, struct errbuf *why)
{
    if (body.n < 1 + 8 || (body.n - 1) % 8 != 0 || body.p[0] < 1 || body.p[0] > 16) {
        errbuf_set(why, "index: bad bloom filter");
        return VG_ECORRUPT;
    }
    return 0;
}

static bool bloom_has(struct span body, uint64_t h)
{
    uint64_t nbits = (uint64_t)(body.n - 1) * 8;
    const uint8_t *bits = body.p + 1;

    for (unsigned j = 0; j < body.p[0]; j++) {
        uint64_t bit = bloom_bit(h, j, nbits);
        if (!(bits[bit >> 3] & (1u << (bit & 7)))) {
            return false;
        }
    }
    return true;
}

/* Walks a trigram list; with want (ascending, nwant), *all says whether each is in it. */
static int check_trigrams(struct span body, const uint16_t *want, size_t nwant, bool *all,
                          struct errbuf *why)
{
    uint64_t n;
    int64_t code = -1;
    size_t w = 0;

    if (store__get_uvarint(&body, &n) < 0 || n > body.n || n > BIX_TRIGRAMS) {
        errbuf_set(why, "index: bad trigram count");
        return VG_ECORRUPT;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t d;
        if (store__get_uvarint(&body, &d) < 0 || d >= BIX_TRIGRAMS ||
            code + 1 + (int64_t)d >= BIX_TRIGRAMS) {
            errbuf_set(why, "index: bad trigram");
            return VG_ECORRUPT;
        }
        code += 1 + (int64_t)d;
        while (all && w < nwant && want[w] < code) {
            *all = false; /* skipped past a wanted one: not there */
            return 0;
        }
        if (all && w < nwant && want[w] == code) {
            w++;
        }
    }
    if (body.n != 0) {
        errbuf_set(why, "index: %zu bytes after the last trigram", body.n);
        return VG_ECORRUPT;
    }
    if (all) {
        *all = w == nwant;
    }
    return 0;
}

int bix__check(struct span index, struct errbuf *why)
{
    struct bix_entry e;
    int rc;

    if (index.n == 0) {
        return 0;
    }
    if (index.p[0] != BIX_VERSION) {
        return 0; /* a later layout: not ours to judge (and never used) */
    }
    span_advance(&index, 1);
    while ((rc = next_entry(&index, &e, why)) > 0) {
        if (e.type == BIX_T_SET) {
            rc = check_set(e.body, NULL, 0, NULL, why);
        } else if (e.type == BIX_T_BLOOM) {
            rc = check_bloom(e.body, why);
        } else if (e.type == BIX_T_TRIGRAMS) {
            rc = check_trigrams(e.body, NULL, 0, NULL, why);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return rc;
}

int bix__may_match(struct span index, const struct bix_query *q, struct errbuf *why)
{
    struct bix_entry e;
    int rc;

    if (index.n == 0 || bix__query_empty(q) || index.p[0] != BIX_VERSION) {
        return 1;
    }
    span_advance(&index, 1);
    while ((rc = next_entry(&index, &e, why)) > 0) {
        if (e.id == BIX_TEXT && e.type == BIX_T_TRIGRAMS) {
            bool all = true;
            if (q->ngrams == 0) {
                continue;
            }
            if ((rc = check_trigrams(e.body, q->grams, q->ngrams, &all, why)) < 0) {
                return rc;
            }
            if (!all) {
                return 0;
            }
            continue;
        }
        if (e.id < 1 || e.id > BIX_NFIELDS || (e.type != BIX_T_SET && e.type != BIX_T_BLOOM)) {
            continue; /* not ours: ignored */
        }
        if (e.type == BIX_T_BLOOM && (rc = check_bloom(e.body, why)) < 0) {
            return rc;
        }
        for (size_t i = 0; i < q->nvals; i++) {
            const struct bix_qval *qv = &q->vals[i];
            if (qv->id != e.id) {
                continue;
            }
            const uint8_t *key = q->keys.data + qv->off;
            bool found;
            if (e.type == BIX_T_SET) {
                if ((rc = check_set(e.body, key, qv->len, &found, why)) < 0) {
                    return rc;
                }
            } else {
                found = bloom_has(e.body, qv->hash ? qv->hash : 1);
            }
            if (!found) {
                return 0;
            }
        }
    }
    return rc < 0 ? rc : 1;
}

/* ---- queries ---- */

struct gram_acc {
    uint16_t *g;
    size_t n;
    size_t cap;
};

static void gram_collect(void *arg, uint16_t code)
{
    struct gram_acc *a = arg;

    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->g = xrealloc(a->g, a->cap * sizeof(*a->g));
    }
    a->g[a->n++] = code;
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

static uint8_t fold(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* True when t (lower-cased) could be part of the text a non-string value has in the
 * filter language: an integer or float ([0-9.e+-], "inf", "nan") or a boolean. */
static bool number_like(struct span t)
{
    static const char *const words[] = { "true", "false", "-inf", "-nan" };
    bool all = true;

    for (size_t i = 0; i < t.n; i++) {
        uint8_t c = t.p[i];
        all &= (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == '+' || c == '-';
    }
    if (all) {
        return true;
    }
    for (size_t w = 0; w < VG_ARRAY_LEN(words); w++) {
        if (span_contains(span_str(words[w]), t)) {
            return true;
        }
    }
    return false;
}

/* What each record must hold (bix__record_may_match). */
static int rec_needs(struct bix_query *q, const struct store_need *need)
{
    size_t n = need->nvalues + need->ntexts;
    int rc;

    buf_init(&q->rbytes, 1u << 20);
    if (n == 0) {
        return 0;
    }
    q->rec = xcalloc(n, sizeof(*q->rec));
    for (size_t i = 0; i < need->nvalues; i++) {
        int id = need->values[i].field ? field_lookup(need->values[i].field) : 0;
        struct span v = need->values[i].value;
        if (id == 0 || id == BIX_SRC_IP || v.n == 0) {
            continue;
        }
        q->rec[q->nrec] = (struct bix_rneed){ q->rbytes.len, v.n, false };
        if ((rc = buf_append(&q->rbytes, v.p, v.n)) < 0) {
            return rc;
        }
        q->nrec++;
    }
    for (size_t i = 0; i < need->ntexts; i++) {
        struct span t = need->texts[i];
        size_t off = q->rbytes.len;
        if (t.n == 0 || (rc = buf_reserve(&q->rbytes, t.n)) < 0) {
            if (t.n == 0) {
                continue;
            }
            return rc;
        }
        for (size_t j = 0; j < t.n; j++) {
            q->rbytes.data[off + j] = fold(t.p[j]);
        }
        q->rbytes.len += t.n;
        q->rbytes.data[q->rbytes.len] = 0;
        if (number_like((struct span){ q->rbytes.data + off, t.n })) {
            q->rbytes.len = off; /* a number or boolean could hold it: not in the bytes */
            continue;
        }
        q->rec[q->nrec++] = (struct bix_rneed){ off, t.n, true };
    }
    return 0;
}

static bool folded_eq(const uint8_t *p, struct span n)
{
    size_t j = 0;
    while (j < n.n && fold(p[j]) == n.p[j]) {
        j++;
    }
    return j == n.n;
}

#define SWAR_ONES  0x0101010101010101ull
#define SWAR_HIGHS 0x8080808080808080ull
#define SWAR_CASE  0x2020202020202020ull

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* The high bit of every byte of x that is zero, and maybe of some above one (a borrow):
 * never misses one. */
static uint64_t zero_bytes(uint64_t x)
{
    return (x - SWAR_ONES) & ~x & SWAR_HIGHS;
}

/* Whether h holds the lower-cased needle n ignoring ASCII case. Eight positions at a
 * time (sixteen with SSE2), those whose first two bytes are the needle's in either case
 * (b | 0x20 on both sides: exact for letters, a superset otherwise) are the candidates,
 * each then compared folded. A loop of memchr for each case of the first byte was slow on common
 * letters (a call per occurrence). */
static bool contains_nocase(struct span h, struct span n)
{
    if (n.n == 0) {
        return true;
    }
    if (h.n < n.n) {
        return false;
    }
    const uint8_t *p = h.p;
    size_t last = h.n - n.n; /* the last position a match can start at */
    size_t i = 0;
#ifdef __SSE2__
    if (n.n >= 2 && h.n >= 17) {
        const __m128i lc = _mm_set1_epi8(0x20);
        const __m128i c0 = _mm_set1_epi8((char)(n.p[0] | 0x20));
        const __m128i c1 = _mm_set1_epi8((char)(n.p[1] | 0x20));
        /* Sixteen positions at a time; bytes i .. i + 16 must lie inside h. */
        for (; i + 17 <= h.n && i <= last; i += 16) {
            __m128i a = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + i)), lc);
            __m128i b =
                _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + i + 1)), lc);
            unsigned m = (unsigned)_mm_movemask_epi8(
                _mm_and_si128(_mm_cmpeq_epi8(a, c0), _mm_cmpeq_epi8(b, c1)));
            while (m) {
                size_t k = i + (size_t)__builtin_ctz(m);
                if (k <= last && folded_eq(p + k, n)) {
                    return true;
                }
                m &= m - 1;
            }
        }
    }
#endif
    if (n.n >= 2 && h.n >= 9) {
        uint64_t c0 = SWAR_ONES * (uint64_t)(n.p[0] | 0x20);
        uint64_t c1 = SWAR_ONES * (uint64_t)(n.p[1] | 0x20);
        /* Words at i and i + 1 must lie inside h: i + 9 <= h.n. */
        for (; i + 9 <= h.n && i <= last; i += 8) {
            uint64_t m = zero_bytes((load64(p + i) | SWAR_CASE) ^ c0) &
                         zero_bytes((load64(p + i + 1) | SWAR_CASE) ^ c1);
            while (m) {
                size_t k = i + (size_t)(__builtin_ctzll(m) >> 3);
                if (k <= last && folded_eq(p + k, n)) {
                    return true;
                }
                m &= m - 1;
            }
        }
    }
    for (; i <= last; i++) {
        if (fold(p[i]) == n.p[0] && folded_eq(p + i, n)) {
            return true;
        }
    }
    return false;
}

bool bix__record_may_match(const struct bix_query *q, struct span rec)
{
    for (size_t i = 0; i < q->nrec; i++) {
        struct span n = { q->rbytes.data + q->rec[i].off, q->rec[i].len };
        bool has =
            q->rec[i].nocase ? contains_nocase(rec, n) : memmem(rec.p, rec.n, n.p, n.n) != NULL;
        if (!has) {
            return false;
        }
    }
    return true;
}

int bix__query_init(struct bix_query *q, const struct store_need *need)
{
    struct gram_acc acc = { NULL, 0, 0 };
    int rc = 0;

    memset(q, 0, sizeof(*q));
    buf_init(&q->keys, 1u << 20);
    if (!need) {
        return 0;
    }
    if (need->nvalues > 0) {
        q->vals = xcalloc(need->nvalues, sizeof(*q->vals));
    }
    for (size_t i = 0; i < need->nvalues; i++) {
        int id = need->values[i].field ? field_lookup(need->values[i].field) : 0;
        if (id == 0) {
            continue;
        }
        struct bix_qval *qv = &q->vals[q->nvals];
        qv->id = id;
        qv->off = q->keys.len;
        if ((rc = bix__value_key(id, need->values[i].value, &q->keys)) < 0) {
            bix__query_release(q);
            return rc;
        }
        qv->len = q->keys.len - qv->off;
        uint64_t h = vhash64(q->keys.data + qv->off, qv->len);
        qv->hash = h ? h : 1;
        q->nvals++;
    }
    for (size_t i = 0; i < need->ntexts; i++) {
        size_t before = acc.n;
        bix__trigrams(need->texts[i], gram_collect, &acc);
        q->ntexts += acc.n > before;
    }
    if ((rc = rec_needs(q, need)) < 0) {
        free(acc.g);
        bix__query_release(q);
        return rc;
    }
    if (acc.n > 0) {
        qsort(acc.g, acc.n, sizeof(*acc.g), cmp_u16);
        size_t u = 0;
        for (size_t i = 0; i < acc.n; i++) {
            if (u == 0 || acc.g[u - 1] != acc.g[i]) {
                acc.g[u++] = acc.g[i];
            }
        }
        q->grams = acc.g;
        q->ngrams = u;
    } else {
        free(acc.g);
    }
    return 0;
}

void bix__query_release(struct bix_query *q)
{
    free(q->vals);
    free(q->grams);
    free(q->rec);
    buf_release(&q->keys);
    buf_release(&q->rbytes);
    memset(q, 0, sizeof(*q));
}
