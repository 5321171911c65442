/* store/cols.c: the columns of format v3 blocks (schemas/segment.md 3.8).
 *
 * A v3 block keeps each normalized field of its schema-v1 records in a column of its
 * own (strings dictionary-coded, times and sequence numbers as differences), the raw
 * events in a column cut into chunks, and records that are not schema-v1 maps (or do
 * not come back byte for byte) in a verbatim column. block.c compresses each column on
 * its own and writes the directory; this file lays the columns out (writer) and puts
 * rows back together from them (reader). Rows are ordered inside the block by source
 * and user, so one user's raw events sit in few chunks.
 *
 * Exactness: a record goes into the columns only if pack__emit gives back exactly its
 * bytes (checked when it is added); anything else is verbatim. So a reader always
 * returns the bytes that were appended.
 *
 * Everything read here may be hostile: every length and count is checked against the
 * column it lies in. Pure functions over caller memory; any thread. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "store/store_int.h"

#define B3_MAX_HOLES 16

/* The string keys (3.4.2's table but ts, received, seq, dst_port and raw). */
#define B3_STR_KEYS        \
 (((1u << PK_COUNT) - 1) & \
  ~(1u << PK_TS | 1u << PK_RECEIVED | 1u << PK_SEQ | 1u << PK_DST_PORT | 1u << PK_RAW))

/* The int keys in the order of the nums column (segment.md 3.8.2). */
static const int num_keys[4] = { PK_TS, PK_RECEIVED, PK_SEQ, PK_DST_PORT };

struct b3_row {
    int64_t ts;
    uint64_t seq;
    uint32_t off; /* the record's bytes in the builder's raw */
    uint32_t len;
    uint32_t present; /* packed: its keys; verbatim rows: 0 */
    bool packed;
    uint64_t key; /* the order inside the block */
    int64_t num[4];
    uint32_t soff[PK_COUNT]; /* strings and raw: offset and length inside the record */
    uint32_t slen[PK_COUNT];
    uint8_t nholes; /* strings of raw stored only in their column (3.8.3) */
    uint8_t hkey[B3_MAX_HOLES];
    uint32_t hoff[B3_MAX_HOLES]; /* of the string's bytes inside raw */
};

struct b3_ord {
    uint64_t key;
    uint32_t idx;
};

struct b3_dent {
    uint32_t at; /* of the value's bytes in the dictionary */
    uint32_t len;
    uint32_t code; /* offset of its entry */
};

struct block3_build {
    struct buf rows; /* struct b3_row */
    struct buf ord;  /* struct b3_ord */
    struct buf dict;
    struct buf codes;
    struct buf dents; /* struct b3_dent */
    uint32_t *ht;     /* dents index + 1; 0 empty */
    uint32_t ht_cap;
};

static struct block3_build *build_get(struct block_builder *b)
{
    if (!b->v3) {
        struct block3_build *v = xcalloc(1, sizeof(*v));
        buf_init(&v->rows, (size_t)BLOCK_MAX_RAW * 4);
        buf_init(&v->ord, (size_t)BLOCK_MAX_RAW);
        buf_init(&v->dict, BLOCK_MAX_RAW);
        buf_init(&v->codes, BLOCK_MAX_RAW);
        buf_init(&v->dents, (size_t)BLOCK_MAX_RAW * 2);
        b->v3 = v;
    }
    return b->v3;
}

void block3__reset(struct block3_build *v)
{
    if (v) {
        v->rows.len = 0;
    }
}

void block3__free(struct block3_build *v)
{
    if (!v) {
        return;
    }
    buf_release(&v->rows);
    buf_release(&v->ord);
    buf_release(&v->dict);
    buf_release(&v->codes);
    buf_release(&v->dents);
    free(v->ht);
    free(v);
}

static uint64_t fnv64(struct span s)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < s.n; i++) {
        h = (h ^ s.p[i]) * 1099511628211ull;
    }
    return h;
}

/* Adds a hole for key k at off (of n bytes) in raw unless it overlaps one. */
static bool hole_add(struct b3_row *r, int k, uint32_t off, uint32_t n)
{
    int j = r->nholes;
    if (j == B3_MAX_HOLES) {
        return false;
    }
    for (int i = 0; i < j; i++) {
        uint32_t o = r->hoff[i];
        uint32_t e = o + r->slen[r->hkey[i]];
        if (off < e && o < off + n) {
            return false;
        }
    }
    r->nholes++;
    while (j > 0 && r->hoff[j - 1] > off) { /* in offset order */
        r->hoff[j] = r->hoff[j - 1];
        r->hkey[j] = r->hkey[j - 1];
        j--;
    }
    r->hoff[j] = off;
    r->hkey[j] = (uint8_t)k;
    return true;
}

/* The holes of a row's raw: each string field found in raw (a whole string of it, as
 * the view found them, else anywhere in its bytes), longest fields first. */
static void holes_find(struct b3_row *r, const struct pack_view *pv)
{
    struct span raw = pv->str[PK_RAW];
    int order[PK_COUNT];
    int n = 0;

    for (int k = 0; k < PK_COUNT; k++) {
        if (pack__key_class(k) == 2 && (pv->present >> k) & 1 && pv->str[k].n >= 4) {
            int j = n++;
            while (j > 0 && pv->str[order[j - 1]].n < pv->str[k].n) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = k;
        }
    }
    for (int i = 0; i < n; i++) {
        int k = order[i];
        struct span v = pv->str[k];
        int ri = pv->ref[k];
        if (ri >= 0 && pv->rawstr_ord[ri] >= 0 &&
            hole_add(r, k, (uint32_t)(pv->rawstr[ri].p - raw.p), (uint32_t)v.n)) {
            continue;
        }
        const uint8_t *at = raw.p;
        size_t left = raw.n;
        while (left >= v.n) {
            const uint8_t *f = memmem(at, left, v.p, v.n);
            if (!f) {
                break;
            }
            if (hole_add(r, k, (uint32_t)(f - raw.p), (uint32_t)v.n)) {
                break;
            }
            left -= (size_t)(f - at) + 1;
            at = f + 1;
        }
    }
}

int block3__add(struct block_builder *b, int64_t ts, uint64_t seq, struct span rec)
{
    struct block3_build *v = build_get(b);
    struct pack_view *pv;
    int rc;

    /* segment.md 3.8: every row takes at most its record's bytes plus B3_ROW_MAX in the
     * columns; with the directory, the columns stay within BLOCK_MAX_RAW. */
    if ((uint64_t)b->raw.len + rec.n + (uint64_t)(b->count + 1) * B3_ROW_MAX + B3_DIR_MAX >
        BLOCK_MAX_RAW) {
        return VG_ELIMIT;
    }
    if (!b->view) {
        b->view = xmalloc(sizeof(*b->view));
    }
    pv = b->view;
    pack__view(rec, pv);

    struct b3_row r;
    memset(&r, 0, sizeof(r));
    r.ts = ts;
    r.seq = seq;
    r.len = (uint32_t)rec.n;
    if (pv->packable) {
        /* Exactly the same bytes back, or verbatim. */
        b->scratch.len = 0;
        if (pack__emit(pv->present, pv->num, pv->str, &b->scratch) == 0 &&
            b->scratch.len == rec.n && memcmp(b->scratch.data, rec.p, rec.n) == 0) {
            r.packed = true;
            r.present = pv->present;
            for (int i = 0; i < 4; i++) {
                r.num[i] = pv->num[num_keys[i]];
            }
            for (int k = 0; k < PK_COUNT; k++) {
                int cls = pack__key_class(k);
                if ((pv->present & (1u << k)) && cls >= 2) {
                    r.soff[k] = (uint32_t)(pv->str[k].p - rec.p);
                    r.slen[k] = (uint32_t)pv->str[k].n;
                }
            }
            /* segment.md 3.8.3: bytes of raw that a field repeats are kept once, in the
             * field's column; raw keeps a hole for them. */
            if ((pv->present >> PK_RAW) & 1) {
                holes_find(&r, pv);
            }
        }
    }
    /* The order of rows in the block (3.8.4): by source, then user, then arrival. */
    uint64_t g = pack__group(pv);
    uint64_t u = 0;
    if (pv->indexable && (pv->present & (1u << PK_USER))) {
        u = fnv64(pv->str[PK_USER]) >> 8;
    }
    r.key = g << 56 | u;
    if ((rc = bix__builder_add(&b->ix, pv)) < 0) {
        return VG_ELIMIT;
    }
    r.off = (uint32_t)b->raw.len;
    if (buf_append(&b->raw, rec.p, rec.n) < 0) {
        return VG_ELIMIT;
    }
    if (buf_append(&v->rows, &r, sizeof(r)) < 0) {
        b->raw.len = r.off;
        return VG_ELIMIT;
    }
    return 0;
}

static int cmp_ord(const void *a, const void *b)
{
    const struct b3_ord *x = a;
    const struct b3_ord *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int put_uv(struct buf *o, uint64_t x)
{
    int rc = buf_reserve(o, 10);
    if (rc < 0) {
        return rc;
    }
    o->len = (size_t)(store__put_uvarint(o->data + o->len, x) - o->data);
    return 0;
}

static int put_bytes(struct buf *o, struct span s)
{
    int rc;
    if ((rc = put_uv(o, s.n)) < 0) {
        return rc;
    }
    return s.n ? buf_append(o, s.p, s.n) : 0;
}

/* segment.md 3.8.3: one raw value: its holes, then its bytes without them. */
static int put_raw(struct buf *cols, const struct b3_row *r, struct span raw)
{
    size_t stripped = raw.n;
    uint32_t at = 0; /* in the stripped bytes */
    int rc;

    for (int h = 0; h < r->nholes; h++) {
        stripped -= r->slen[r->hkey[h]];
    }
    if ((rc = put_uv(cols, r->nholes)) < 0) {
        return rc;
    }
    size_t cut = 0; /* bytes of raw cut out before the current hole */
    for (int h = 0; h < r->nholes; h++) {
        uint32_t pos = (uint32_t)(r->hoff[h] - cut); /* where it goes in the stripped bytes */
        if ((rc = put_uv(cols, pos - at)) < 0 || (rc = put_uv(cols, r->hkey[h])) < 0) {
            return rc;
        }
        at = pos;
        cut += r->slen[r->hkey[h]];
    }
    if ((rc = put_uv(cols, stripped)) < 0) {
        return rc;
    }
    size_t from = 0;
    for (int h = 0; h < r->nholes; h++) {
        if ((rc = buf_append(cols, raw.p + from, r->hoff[h] - from)) < 0) {
            return rc;
        }
        from = r->hoff[h] + r->slen[r->hkey[h]];
    }
    return buf_append(cols, raw.p + from, raw.n - from);
}

/* Starts column id at cols->len. */
static void col_begin(struct block3_dirent *e, unsigned id, const struct buf *cols)
{
    memset(e, 0, sizeof(*e));
    e->id = (uint16_t)id;
    e->crc = (uint32_t)cols->len; /* the start, for now */
}

/* Ends it; returns 1 when it holds bytes (an entry to keep), 0 when empty. */
static int col_end(struct block3_dirent *e, const struct buf *cols)
{
    e->raw_len = (uint32_t)(cols->len - e->crc);
    e->crc = 0;
    return e->raw_len > 0;
}

/* segment.md 3.8.3: the dictionary and codes of string key k over the rows in order. */
static int str_column(struct block_builder *b, const struct b3_ord *ord, int k, struct buf *cols,
                      uint32_t *nvals)
{
    struct block3_build *v = b->v3;
    const struct b3_row *rows = (const struct b3_row *)(const void *)v->rows.data;
    uint32_t n = 0;
    int rc;

    for (uint32_t i = 0; i < b->count; i++) {
        n += (rows[ord[i].idx].present >> k) & 1;
    }
    *nvals = n;
    if (n == 0) {
        return 0;
    }
    uint32_t cap = 16;
    while (cap < 2 * n) {
        cap <<= 1;
    }
    if (cap > v->ht_cap) {
        free(v->ht);
        v->ht = xcalloc(cap, sizeof(*v->ht));
        v->ht_cap = cap;
    } else {
        memset(v->ht, 0, (size_t)cap * sizeof(*v->ht));
    }
    v->dict.len = 0;
    v->codes.len = 0;
    v->dents.len = 0;
    for (uint32_t i = 0; i < b->count; i++) {
        const struct b3_row *r = &rows[ord[i].idx];
        if (!((r->present >> k) & 1)) {
            continue;
        }
        struct span s = { b->raw.data + r->off + r->soff[k], r->slen[k] };
        uint32_t slot = (uint32_t)fnv64(s) & (cap - 1);
        const struct b3_dent *d = NULL;
        for (;;) {
            uint32_t e = v->ht[slot];
            if (e == 0) {
                break;
            }
            const struct b3_dent *c = (const struct b3_dent *)(const void *)v->dents.data + (e - 1);
            if (c->len == s.n && memcmp(v->dict.data + c->at, s.p, s.n) == 0) {
                d = c;
                break;
            }
            slot = (slot + 1) & (cap - 1);
        }
        if (!d) {
            struct b3_dent nd = { 0, (uint32_t)s.n, (uint32_t)v->dict.len };
            if ((rc = put_uv(&v->dict, s.n)) < 0) {
                return rc;
            }
            nd.at = (uint32_t)v->dict.len;
            if (s.n && (rc = buf_append(&v->dict, s.p, s.n)) < 0) {
                return rc;
            }
            if ((rc = buf_append(&v->dents, &nd, sizeof(nd))) < 0) {
                return rc;
            }
            v->ht[slot] = (uint32_t)(v->dents.len / sizeof(nd));
            d = (const struct b3_dent *)(const void *)(v->dents.data + v->dents.len - sizeof(nd));
        }
        if ((rc = put_uv(&v->codes, d->code)) < 0) {
            return rc;
        }
    }
    if ((rc = put_bytes(cols, buf_span(&v->dict))) < 0 ||
        (rc = buf_append(cols, v->codes.data, v->codes.len)) < 0) {
        return rc;
    }
    return 0;
}

int block3__layout(struct block_builder *b, size_t raw_chunk, struct block3_dirent *ents,
                   uint32_t *nents, struct buf *cols)
{
    struct block3_build *v = b->v3;
    const struct b3_row *rows;
    struct b3_ord *ord;
    uint32_t n = 0;
    int rc;

    cols->len = 0;
    if (!v || b->count == 0) {
        return -EINVAL;
    }
    rows = (const struct b3_row *)(const void *)v->rows.data;
    v->ord.len = 0;
    if ((rc = buf_reserve(&v->ord, (size_t)b->count * sizeof(*ord))) < 0) {
        return rc;
    }
    ord = (struct b3_ord *)(void *)v->ord.data;
    for (uint32_t i = 0; i < b->count; i++) {
        ord[i] = (struct b3_ord){ rows[i].key, i };
    }
    qsort(ord, b->count, sizeof(*ord), cmp_ord);

    /* segment.md 3.8.2: ts, seq, form. */
    int64_t prev_ts = 0;
    uint64_t prev_seq = 0;
    col_begin(&ents[n], B3_TS, cols);
    for (uint32_t i = 0; i < b->count; i++) {
        const struct b3_row *r = &rows[ord[i].idx];
        if ((rc = put_uv(cols, store__zigzag((uint64_t)r->ts - (uint64_t)prev_ts))) < 0) {
            return rc;
        }
        prev_ts = r->ts;
    }
    ents[n].nvals = b->count;
    n += col_end(&ents[n], cols);
    col_begin(&ents[n], B3_SEQ, cols);
    for (uint32_t i = 0; i < b->count; i++) {
        const struct b3_row *r = &rows[ord[i].idx];
        if ((rc = put_uv(cols, store__zigzag(r->seq - prev_seq))) < 0) {
            return rc;
        }
        prev_seq = r->seq;
    }
    ents[n].nvals = b->count;
    n += col_end(&ents[n], cols);
    col_begin(&ents[n], B3_FORM, cols);
    for (uint32_t i = 0; i < b->count; i++) {
        const struct b3_row *r = &rows[ord[i].idx];
        if ((rc = put_uv(cols, r->packed ? (uint64_t)r->present << 1 | 1 : 0)) < 0) {
            return rc;
        }
    }
    ents[n].nvals = b->count;
    n += col_end(&ents[n], cols);

    /* nums */
    int64_t prev_received = 0;
    col_begin(&ents[n], B3_NUMS, cols);
    for (uint32_t i = 0; i < b->count; i++) {
        const struct b3_row *r = &rows[ord[i].idx];
        for (int j = 0; r->packed && j < 4; j++) {
            int k = num_keys[j];
            if (!((r->present >> k) & 1)) {
                continue;
            }
            uint64_t base = k == PK_TS         ? (uint64_t)r->ts
                            : k == PK_RECEIVED ? (uint64_t)prev_received
                            : k == PK_SEQ      ? r->seq
                                               : 0;
            if ((rc = put_uv(cols, store__zigzag((uint64_t)r->num[j] - base))) < 0) {
                return rc;
            }
            if (k == PK_RECEIVED) {
                prev_received = r->num[j];
            }
            ents[n].nvals++;
        }
    }
    n += col_end(&ents[n], cols);

    /* verbatim */
    col_begin(&ents[n], B3_VERBATIM, cols);
    for (uint32_t i = 0; i < b->count; i++) {
        const struct b3_row *r = &rows[ord[i].idx];
        if (r->packed) {
            continue;
        }
        if ((rc = put_bytes(cols, (struct span){ b->raw.data + r->off, r->len })) < 0) {
            return rc;
        }
        ents[n].nvals++;
    }
    n += col_end(&ents[n], cols);

    /* raw, in chunks of about raw_chunk bytes (3.8.3) */
    col_begin(&ents[n], B3_RAW, cols);
    for (uint32_t i = 0; i < b->count; i++) {
        const struct b3_row *r = &rows[ord[i].idx];
        if (!r->packed || !((r->present >> PK_RAW) & 1)) {
            continue;
        }
        struct span s = { b->raw.data + r->off + r->soff[PK_RAW], r->slen[PK_RAW] };
        if ((rc = put_raw(cols, r, s)) < 0) {
            return rc;
        }
        ents[n].nvals++;
        if (cols->len - ents[n].crc >= raw_chunk && n + 1 < B3_MAX_COLS - PK_COUNT) {
            n += col_end(&ents[n], cols);
            col_begin(&ents[n], B3_RAW, cols);
        }
    }
    n += col_end(&ents[n], cols);

    /* strings */
    for (int k = 0; k < PK_COUNT; k++) {
        if (pack__key_class(k) != 2) {
            continue;
        }
        uint32_t nv;
        col_begin(&ents[n], B3_STR + (unsigned)k, cols);
        if ((rc = str_column(b, ord, k, cols, &nv)) < 0) {
            return rc;
        }
        ents[n].nvals = nv;
        n += col_end(&ents[n], cols);
    }

    *nents = n;
    return 0;
}

void block3__dir_encode(const struct block3_dirent *ents, uint32_t n, uint8_t *out)
{
    out[0] = 1; /* layout */
    out[1] = 0;
    store__put_le(out + 2, n, 2);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *p = out + B3_DIR_HDR + (size_t)i * B3_DIR_ENT;
        store__put_le(p, ents[i].id, 2);
        p[2] = ents[i].codec;
        p[3] = 0;
        store__put_le(p + 4, ents[i].nvals, 4);
        store__put_le(p + 8, ents[i].raw_len, 4);
        store__put_le(p + 12, ents[i].stored_len, 4);
        store__put_le(p + 16, ents[i].crc, 4);
    }
}

const char *block3__col_name(unsigned id)
{
    switch (id) {
    case B3_TS:
        return "ts";
    case B3_SEQ:
        return "seq";
    case B3_FORM:
        return "form";
    case B3_NUMS:
        return "nums";
    case B3_VERBATIM:
        return "verbatim";
    case B3_RAW:
        return "raw";
    default:
        if (id >= B3_STR && id < B3_STR + PK_COUNT && pack__key_class((int)id - B3_STR) == 2) {
            return pack__key_name((int)id - B3_STR);
        }
        return "unknown";
    }
}

/* ---- reading ---- */

struct block3_cur {
    bool bad;
    char err[96];
    struct span col[B3_ID_MAX + 1]; /* what is left of each column (strings: codes) */
    struct span dict[PK_COUNT];
    uint32_t used[B3_ID_MAX + 1]; /* values read */
    uint32_t want[B3_ID_MAX + 1]; /* the directory's nvals (raw: of all chunks) */
    bool has[B3_ID_MAX + 1];      /* in the directory */
    struct span dir;              /* the directory's entries */
    uint32_t ndir;
    const uint8_t *raw_start; /* decoded bytes of the first raw chunk */
    uint32_t raw_ent;         /* next directory entry to look at for a raw chunk */
    int32_t raw_ci;           /* the current raw chunk (-1 before the first) */
    const uint8_t *raw_next;  /* where the next chunk starts */
    bool raw_loaded;          /* the current chunk is in the decoded bytes */
    uint32_t raw_vals_left;
    uint64_t raw_bytes_left;
    int64_t prev_ts;
    uint64_t prev_seq;
    int64_t prev_received;
    uint64_t produced; /* bytes of records put back together */
};
_Static_assert(sizeof(struct block3_cur) <= BLOCK3_CUR_SIZE, "BLOCK3_CUR_SIZE too small");

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool bit(const uint8_t *bits, uint32_t i)
{
    return (bits[i / 8] >> (i % 8)) & 1;
}

/* Sets up c over the decoded data section in (the directory, then the columns). */
static void cur_init(struct block3_cur *c, struct span in)
{
    memset(c, 0, sizeof(*c));
    c->raw_ci = -1;
    if (in.n < B3_DIR_HDR || in.p[0] != 1) {
        snprintf(c->err, sizeof(c->err), "bad column directory");
        c->bad = true;
        return;
    }
    uint32_t n = (uint32_t)in.p[2] | (uint32_t)in.p[3] << 8;
    size_t dlen = B3_DIR_HDR + (size_t)n * B3_DIR_ENT;
    if (n > B3_MAX_COLS || dlen > in.n) {
        snprintf(c->err, sizeof(c->err), "bad column directory");
        c->bad = true;
        return;
    }
    c->dir = (struct span){ in.p + B3_DIR_HDR, dlen - B3_DIR_HDR };
    c->ndir = n;
    size_t at = dlen;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = c->dir.p + (size_t)i * B3_DIR_ENT;
        unsigned id = (unsigned)e[0] | (unsigned)e[1] << 8;
        uint32_t nv = le32(e + 4);
        uint32_t rl = le32(e + 8);
        if (id > B3_ID_MAX || rl > in.n - at || (id != B3_RAW && c->has[id])) {
            snprintf(c->err, sizeof(c->err), "bad column directory entry %" PRIu32, i);
            c->bad = true;
            return;
        }
        if (id == B3_RAW && c->has[id]) {
            c->col[id].n += rl; /* chunks lie back to back */
        } else {
            c->col[id] = (struct span){ in.p + at, rl };
        }
        c->has[id] = true;
        c->want[id] += nv;
        at += rl;
    }
    if (at != in.n) {
        snprintf(c->err, sizeof(c->err), "columns do not fill the data section");
        c->bad = true;
        return;
    }
    c->raw_start = c->col[B3_RAW].p;
    c->raw_next = c->raw_start;
}

/* Parses the dictionary in front of string column k (when loaded). */
static int cur_dict(struct block3_cur *c, int k)
{
    unsigned id = B3_STR + (unsigned)k;
    uint64_t dl;
    if (store__get_uvarint(&c->col[id], &dl) < 0 || dl > c->col[id].n) {
        snprintf(c->err, sizeof(c->err), "column '%s': bad dictionary length",
                 block3__col_name(id));
        c->bad = true;
        return VG_ECORRUPT;
    }
    c->dict[k] = (struct span){ c->col[id].p, (size_t)dl };
    span_advance(&c->col[id], (size_t)dl);
    return 0;
}

static bool loaded(const struct block_iter *it, unsigned id)
{
    return it->v3_loaded == 0 || ((it->v3_loaded >> id) & 1);
}

void block3__iter_init(struct block_iter *it)
{
    struct block3_cur *c = (struct block3_cur *)(void *)it->v3_mem;

    it->v3 = c;
    it->v3_loaded = 0;
    it->v3_chunks = NULL;
    it->v3_fields = 0;
    it->v3_rows = NULL;
    cur_init(c, it->in);
    /* The dictionaries are parsed at the first row, once the caller has said which
     * columns it loaded. */
}

static int cur_uv(struct block3_cur *c, unsigned id, uint64_t *v, struct errbuf *why, uint32_t row)
{
    if (store__get_uvarint(&c->col[id], v) < 0) {
        errbuf_set(why, "row %" PRIu32 ": column '%s' malformed or cut short", row,
                   block3__col_name(id));
        return VG_ECORRUPT;
    }
    c->used[id]++;
    return 0;
}

/* A value of bytes (uvarint length, bytes) from column id. */
static int cur_bytes(struct block3_cur *c, unsigned id, struct span *out, struct errbuf *why,
                     uint32_t row)
{
    uint64_t len;
    if (cur_uv(c, id, &len, why, row) < 0) {
        return VG_ECORRUPT;
    }
    if (len > c->col[id].n) {
        errbuf_set(why, "row %" PRIu32 ": column '%s': a value runs past its end", row,
                   block3__col_name(id));
        return VG_ECORRUPT;
    }
    *out = (struct span){ c->col[id].p, (size_t)len };
    span_advance(&c->col[id], (size_t)len);
    return 0;
}

/* A raw value (segment.md 3.8.3): the bytes kept and where the holes go. */
struct b3_raw {
    uint32_t n;
    uint32_t pos[B3_MAX_HOLES];
    uint8_t key[B3_MAX_HOLES];
    struct span bytes; /* p NULL: its chunk was not loaded */
};

/* segment.md 3.8.3: the next row's raw value, from the chunk that holds it. */
static int cur_raw(struct block_iter *it, struct block3_cur *c, struct b3_raw *out,
                   struct errbuf *why, uint32_t row)
{
    while (c->raw_vals_left == 0) {
        const uint8_t *e = NULL;
        while (c->raw_ent < c->ndir) {
            const uint8_t *x = c->dir.p + (size_t)c->raw_ent++ * B3_DIR_ENT;
            if (((unsigned)x[0] | (unsigned)x[1] << 8) == B3_RAW) {
                e = x;
                break;
            }
        }
        if (!e || (c->raw_loaded && c->col[B3_RAW].n != 0)) {
            errbuf_set(why, "row %" PRIu32 ": raw chunks do not match their values", row);
            return VG_ECORRUPT;
        }
        c->raw_ci++;
        c->raw_vals_left = le32(e + 4);
        c->raw_bytes_left = le32(e + 8);
        c->raw_loaded =
            loaded(it, B3_RAW) && (!it->v3_chunks || bit(it->v3_chunks, (uint32_t)c->raw_ci));
        c->col[B3_RAW] = (struct span){ c->raw_next, (size_t)c->raw_bytes_left };
        c->raw_next += c->raw_bytes_left;
    }
    c->raw_vals_left--;
    out->n = 0;
    out->bytes = (struct span){ NULL, 0 };
    if (!c->raw_loaded) {
        c->used[B3_RAW]++;
        return 0;
    }
    uint64_t nh;
    if (cur_uv(c, B3_RAW, &nh, why, row) < 0) {
        return VG_ECORRUPT;
    }
    c->used[B3_RAW]--; /* one value, counted by cur_bytes below */
    if (nh > B3_MAX_HOLES) {
        errbuf_set(why, "row %" PRIu32 ": raw: %" PRIu64 " holes", row, nh);
        return VG_ECORRUPT;
    }
    uint64_t at = 0;
    for (uint32_t h = 0; h < nh; h++) {
        uint64_t gap;
        uint64_t k;
        if (store__get_uvarint(&c->col[B3_RAW], &gap) < 0 ||
            store__get_uvarint(&c->col[B3_RAW], &k) < 0 || k >= PK_COUNT ||
            pack__key_class((int)k) != 2 || gap > UINT32_MAX - at) {
            errbuf_set(why, "row %" PRIu32 ": raw: bad hole", row);
            return VG_ECORRUPT;
        }
        at += gap;
        out->pos[h] = (uint32_t)at;
        out->key[h] = (uint8_t)k;
    }
    out->n = (uint32_t)nh;
    int rc = cur_bytes(c, B3_RAW, &out->bytes, why, row);
    if (rc == 0 && nh > 0 && at > out->bytes.n) {
        errbuf_set(why, "row %" PRIu32 ": raw: a hole past its bytes", row);
        return VG_ECORRUPT;
    }
    if (rc == 0 && c->raw_vals_left == 0 && c->col[B3_RAW].n != 0) {
        errbuf_set(why, "row %" PRIu32 ": raw chunk longer than its values", row);
        return VG_ECORRUPT;
    }
    return rc;
}

static int iter_end(struct block_iter *it, struct block3_cur *c, struct errbuf *why)
{
    for (unsigned id = 0; id <= B3_ID_MAX; id++) {
        if (!c->has[id] || !loaded(it, id)) {
            continue;
        }
        size_t left = id == B3_RAW ? (c->raw_loaded ? c->col[id].n : 0) : c->col[id].n;
        if (left != 0 || c->used[id] != c->want[id]) {
            errbuf_set(why, "column '%s': %zu bytes or %" PRIu32 " values left over",
                       block3__col_name(id), left, c->want[id] - c->used[id]);
            return VG_ECORRUPT;
        }
    }
    if (c->raw_vals_left != 0) {
        errbuf_set(why, "raw chunks do not match their values");
        return VG_ECORRUPT;
    }
    for (uint32_t i = c->raw_ent; i < c->ndir; i++) {
        const uint8_t *x = c->dir.p + (size_t)i * B3_DIR_ENT;
        if (((unsigned)x[0] | (unsigned)x[1] << 8) == B3_RAW) {
            errbuf_set(why, "raw chunks do not match their values");
            return VG_ECORRUPT;
        }
    }
    return 0;
}

int block3__iter_next(struct block_iter *it, int64_t *ts, uint64_t *seq, struct span *rec,
                      struct errbuf *why)
{
    struct block3_cur *c = it->v3;
    const struct block_hdr *h = it->h;
    int64_t num[PK_COUNT];
    struct span str[PK_COUNT];
    struct b3_raw raw = { 0 };
    int rc;

    if (!c->bad && c->used[B3_TS] == 0 && it->left == h->count) {
        for (int k = 0; k < PK_COUNT; k++) {
            unsigned id = B3_STR + (unsigned)k;
            if (pack__key_class(k) == 2 && c->has[id] && loaded(it, id) && cur_dict(c, k) < 0) {
                break;
            }
        }
    }
    if (c->bad) {
        errbuf_set(why, "%s", c->err);
        return VG_ECORRUPT;
    }
    for (;;) {
        uint32_t row = h->count - it->left;
        if (it->left == 0) {
            return iter_end(it, c, why) < 0 ? VG_ECORRUPT : 0;
        }
        uint64_t zz;
        uint64_t dseq;
        uint64_t form;
        if (cur_uv(c, B3_TS, &zz, why, row) < 0 || cur_uv(c, B3_SEQ, &dseq, why, row) < 0 ||
            cur_uv(c, B3_FORM, &form, why, row) < 0) {
            return VG_ECORRUPT;
        }
        it->ts = (int64_t)((uint64_t)c->prev_ts + store__unzigzag(zz));
        it->seq = c->prev_seq + store__unzigzag(dseq);
        c->prev_ts = it->ts;
        c->prev_seq = it->seq;
        if (it->ts < h->ts_min || it->ts > h->ts_max || it->seq < h->seq_min ||
            it->seq > h->seq_max) {
            errbuf_set(why, "row %" PRIu32 ": ts or seq outside the block's range", row);
            return VG_ECORRUPT;
        }
        uint32_t present = 0;
        uint32_t have = 0; /* keys whose values were read */
        struct span verb = { NULL, 0 };
        if (form == 0) {
            if ((rc = cur_bytes(c, B3_VERBATIM, &verb, why, row)) < 0) {
                return rc;
            }
            if (verb.n == 0) {
                errbuf_set(why, "row %" PRIu32 ": empty record", row);
                return VG_ECORRUPT;
            }
        } else {
            if (!(form & 1) || (form >> 1) >> PK_COUNT) {
                errbuf_set(why, "row %" PRIu32 ": bad form", row);
                return VG_ECORRUPT;
            }
            present = (uint32_t)(form >> 1);
            bool nums = loaded(it, B3_NUMS);
            for (int j = 0; j < 4 && nums; j++) {
                int k = num_keys[j];
                uint64_t d;
                if (!((present >> k) & 1)) {
                    continue;
                }
                if (cur_uv(c, B3_NUMS, &d, why, row) < 0) {
                    return VG_ECORRUPT;
                }
                d = store__unzigzag(d);
                d += k == PK_TS         ? (uint64_t)it->ts
                     : k == PK_RECEIVED ? (uint64_t)c->prev_received
                     : k == PK_SEQ      ? it->seq
                                        : 0;
                num[k] = (int64_t)d;
                have |= 1u << k;
                if (k == PK_RECEIVED) {
                    c->prev_received = num[k];
                }
            }
            for (uint32_t m = present & B3_STR_KEYS; m; m &= m - 1) {
                int k = __builtin_ctz(m);
                unsigned id = B3_STR + (unsigned)k;
                uint64_t code;
                uint64_t len;
                if (!loaded(it, id)) {
                    continue;
                }
                if (cur_uv(c, id, &code, why, row) < 0) {
                    return VG_ECORRUPT;
                }
                struct span d = c->dict[k];
                if (code >= d.n) {
                    errbuf_set(why, "row %" PRIu32 ": column '%s': bad code", row,
                               block3__col_name(id));
                    return VG_ECORRUPT;
                }
                span_advance(&d, (size_t)code);
                if (store__get_uvarint(&d, &len) < 0 || len > d.n) {
                    errbuf_set(why, "row %" PRIu32 ": column '%s': bad dictionary entry", row,
                               block3__col_name(id));
                    return VG_ECORRUPT;
                }
                str[k] = (struct span){ d.p, (size_t)len };
                have |= 1u << k;
            }
            if ((present >> PK_RAW) & 1) {
                if ((rc = cur_raw(it, c, &raw, why, row)) < 0) {
                    return rc;
                }
                bool whole = raw.bytes.p != NULL;
                size_t n = raw.bytes.n;
                for (uint32_t hi = 0; hi < raw.n && whole; hi++) {
                    /* each hole is a string field of the row, read from its column */
                    if (!((present >> raw.key[hi]) & 1)) {
                        errbuf_set(why, "row %" PRIu32 ": raw: a hole for a field it lacks", row);
                        return VG_ECORRUPT;
                    }
                    whole = (have >> raw.key[hi]) & 1;
                    n += str[raw.key[hi]].n;
                }
                if (whole) {
                    str[PK_RAW] = (struct span){ NULL, n };
                    have |= 1u << PK_RAW;
                }
            }
        }
        it->left--;
        if ((it->windowed && (it->ts < it->since || it->ts >= it->until)) ||
            (it->v3_rows && !bit(it->v3_rows, row))) {
            it->skipped++;
            continue;
        }
        uint32_t keys = it->v3_fields ? present & it->v3_fields : present;
        if ((keys & have) != keys) {
            errbuf_set(why, "row %" PRIu32 ": a column the reader wants was not loaded", row);
            return VG_ECORRUPT;
        }
        size_t at = it->scratch->len;
        rc = form == 0 ? buf_append(it->scratch, verb.p, verb.n)
                       : pack__emit(keys, num, str, it->scratch);
        if (rc < 0) {
            it->scratch->len = at;
            errbuf_set(why, "row %" PRIu32 ": larger than the reader's limit", row);
            return VG_ECORRUPT;
        }
        if (form != 0 && (keys >> PK_RAW) & 1) {
            /* raw in place: its bytes with each hole's string put back (3.8.3) */
            uint8_t *o = it->scratch->data + it->scratch->len - str[PK_RAW].n;
            size_t from = 0;
            for (uint32_t hi = 0; hi < raw.n; hi++) {
                size_t cut = raw.pos[hi] - from;
                memcpy(o, raw.bytes.p + from, cut);
                o += cut;
                from = raw.pos[hi];
                struct span v = str[raw.key[hi]];
                if (v.n) {
                    memcpy(o, v.p, v.n);
                }
                o += v.n;
            }
            memcpy(o, raw.bytes.p + from, raw.bytes.n - from);
        }
        *rec = (struct span){ it->scratch->data + at, it->scratch->len - at };
        c->produced += rec->n;
        if (c->produced > h->rec_len) {
            it->scratch->len = at;
            errbuf_set(why, "row %" PRIu32 ": records longer than the header says", row);
            return VG_ECORRUPT;
        }
        if (it->pre && !bix__record_may_match(it->pre, *rec)) {
            it->scratch->len = at;
            it->skipped++;
            continue;
        }
        *ts = it->ts;
        *seq = it->seq;
        return 1;
    }
}

int block3__select(const struct block_hdr *h, struct span decoded, const struct block3_val *vals,
                   size_t nvals, uint8_t *rows, uint8_t *chunks, struct errbuf *why)
{
    struct block3_cur *c = xmalloc(sizeof(*c));
    uint32_t off[PK_COUNT];
    int rc = VG_ECORRUPT;
    uint32_t nrows = 0;

    memset(rows, 0, (h->count + 7) / 8);
    cur_init(c, decoded);
    if (c->bad) {
        errbuf_set(why, "%s", c->err);
        goto out;
    }
    uint32_t nchunks = 0;
    for (uint32_t i = 0; i < c->ndir; i++) {
        const uint8_t *x = c->dir.p + (size_t)i * B3_DIR_ENT;
        nchunks += ((unsigned)x[0] | (unsigned)x[1] << 8) == B3_RAW;
    }
    memset(chunks, 0, (nchunks + 7) / 8 + 1);
    /* Each value's dictionary offset (segment.md 3.8.3); a value not in the dictionary
     * is in no packed row. */
    uint32_t mask = 0;
    for (size_t v = 0; v < nvals; v++) {
        int k = vals[v].key;
        unsigned id = B3_STR + (unsigned)k;
        uint32_t at_v = UINT32_MAX; /* never matches */
        if (c->has[id]) {
            if (!((mask >> k) & 1) && cur_dict(c, k) < 0) {
                errbuf_set(why, "%s", c->err);
                goto out;
            }
            struct span d = c->dict[k];
            while (d.n > 0) {
                uint32_t at = (uint32_t)(d.p - c->dict[k].p);
                uint64_t len;
                if (store__get_uvarint(&d, &len) < 0 || len > d.n) {
                    errbuf_set(why, "column '%s': bad dictionary entry", block3__col_name(id));
                    goto out;
                }
                if (len == vals[v].value.n && memcmp(d.p, vals[v].value.p, len) == 0) {
                    at_v = at;
                    break;
                }
                span_advance(&d, (size_t)len);
            }
        }
        /* Two values for one key: only a row holding both, which none does unless they
         * are the same. */
        if ((mask >> k) & 1) {
            off[k] = off[k] == at_v ? at_v : UINT32_MAX;
        } else {
            off[k] = at_v;
        }
        mask |= 1u << k;
    }
    /* The rows, through form; a wanted row's raw chunk. */
    int32_t ci = -1;
    uint32_t ci_left = 0;
    uint32_t ent = 0;
    for (uint32_t row = 0; row < h->count; row++) {
        uint64_t form;
        if (cur_uv(c, B3_FORM, &form, why, row) < 0) {
            goto out;
        }
        bool want = true;
        uint32_t present = (uint32_t)(form >> 1);
        if (form != 0) {
            for (int k = 0; k < PK_COUNT; k++) {
                if (!((mask >> k) & 1)) {
                    continue;
                }
                if (!((present >> k) & 1)) {
                    want = false;
                    continue;
                }
                uint64_t code;
                if (cur_uv(c, B3_STR + (unsigned)k, &code, why, row) < 0) {
                    goto out;
                }
                want &= code == off[k];
            }
        }
        if (want) {
            rows[row / 8] |= (uint8_t)(1u << (row % 8));
            nrows++;
        }
        if (form != 0 && ((present >> PK_RAW) & 1)) {
            while (ci_left == 0) {
                const uint8_t *e = NULL;
                while (ent < c->ndir) {
                    const uint8_t *x = c->dir.p + (size_t)ent++ * B3_DIR_ENT;
                    if (((unsigned)x[0] | (unsigned)x[1] << 8) == B3_RAW) {
                        e = x;
                        break;
                    }
                }
                if (!e || ci + 1 >= (int32_t)nchunks) {
                    errbuf_set(why, "row %" PRIu32 ": raw chunks do not match their values", row);
                    goto out;
                }
                ci++;
                ci_left = le32(e + 4);
            }
            if (want) {
                chunks[ci / 8] |= (uint8_t)(1u << (ci % 8));
            }
            ci_left--;
        }
    }
    rc = (int)nrows;
out:
    free(c);
    return rc;
}
