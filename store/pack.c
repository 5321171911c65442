/* store/pack.c: the record view and packed records of format v2 blocks (schemas/segment.md
 * 3.4.2).
 *
 * A schema-v1 record (rec_encode's output) repeats what its block entry already says
 * (ts, seq), spells out every key, and copies strings of the original event into its
 * normalized fields (pod, user, message...). Packed, it keeps the raw event as it is
 * and everything else as a bit per key and small numbers: a string found in raw becomes
 * a reference to it. lz4 then sees mostly raw events back to back, and a block holds
 * about a third less.
 *
 * Exactness: a record is packed only if unpacking gives back the same bytes, checked
 * when it is packed; anything else (another writer's key order or encodings, foreign
 * keys, a record that is not a map) is stored verbatim. So a reader always returns the
 * bytes that were appended.
 *
 * The msgpack headers of an unpacked record are written here by hand, not through
 * common/mp.h's packer: unpacking is on the path of every record every scan returns.
 * Reading msgpack goes through common/mp.h. Pure; any thread. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/mp.h"
#include "store/bindex.h"
#include "store/varint.h"

enum key_class { KC_INT, KC_UINT, KC_STR, KC_RAW };

static const struct {
    const char *name;
    uint8_t len;
    enum key_class cls;
} keys[PK_COUNT] = {
    [PK_TS] = { "ts", 2, KC_INT },
    [PK_RECEIVED] = { "received", 8, KC_INT },
    [PK_SEQ] = { "seq", 3, KC_UINT },
    [PK_AGENT] = { "agent", 5, KC_STR },
    [PK_SOURCE] = { "source", 6, KC_STR },
    [PK_KIND] = { "kind", 4, KC_STR },
    [PK_SEVERITY] = { "severity", 8, KC_STR },
    [PK_HOST] = { "host", 4, KC_STR },
    [PK_NAMESPACE] = { "namespace", 9, KC_STR },
    [PK_POD] = { "pod", 3, KC_STR },
    [PK_CONTAINER_ID] = { "container_id", 12, KC_STR },
    [PK_CONTAINER_NAME] = { "container_name", 14, KC_STR },
    [PK_IMAGE] = { "image", 5, KC_STR },
    [PK_USER] = { "user", 4, KC_STR },
    [PK_SRC_IP] = { "src_ip", 6, KC_STR },
    [PK_DST_IP] = { "dst_ip", 6, KC_STR },
    [PK_PROCESS] = { "process", 7, KC_STR },
    [PK_CMDLINE] = { "cmdline", 7, KC_STR },
    [PK_RULE] = { "rule", 4, KC_STR },
    [PK_ACTION] = { "action", 6, KC_STR },
    [PK_OBJECT] = { "object", 6, KC_STR },
    [PK_OUTCOME] = { "outcome", 7, KC_STR },
    [PK_CVE] = { "cve", 3, KC_STR },
    [PK_PACKAGE] = { "package", 7, KC_STR },
    [PK_MESSAGE] = { "message", 7, KC_STR },
    [PK_DST_PORT] = { "dst_port", 8, KC_INT },
    [PK_RAW] = { "raw", 3, KC_RAW },
};

const char *pack__key_name(int k)
{
    return k >= 0 && k < PK_COUNT ? keys[k].name : NULL;
}

static int key_lookup(struct span name)
{
    for (int k = 0; k < PK_COUNT; k++) {
        if (keys[k].len == name.n && memcmp(keys[k].name, name.p, name.n) == 0) {
            return k;
        }
    }
    return -1;
}

/* Walks one msgpack value of raw, collecting its strings (and the text booleans and
 * non-finite floats have in the filter language: segment.md 3.2.3) into v->rawstr.
 * Returns 0, or -1 for malformed bytes or nesting deeper than MP_MAX_DEPTH. */
static int raw_walk(struct span *cur, int depth, struct pack_view *v)
{
    struct mp_obj o;
    struct span text = { NULL, 0 };

    if (depth > MP_MAX_DEPTH || mp_read(cur, &o) != 1) {
        return -1;
    }
    switch (o.type) {
    case MP_STR:
        text = o.v.s;
        break;
    case MP_BOOL:
        text = o.v.b ? SPAN_LIT("true") : SPAN_LIT("false");
        break;
    case MP_FLOAT:
        if (isnan(o.v.f)) {
            text = SPAN_LIT("nan");
        } else if (isinf(o.v.f)) {
            text = SPAN_LIT("inf");
        }
        break;
    case MP_ARRAY:
        for (uint32_t i = 0; i < o.v.count; i++) {
            if (raw_walk(cur, depth + 1, v) < 0) {
                return -1;
            }
        }
        return 0;
    case MP_MAP:
        for (uint32_t i = 0; i < o.v.count; i++) {
            /* Keys are names, not text (the filter never searches them); a key that is
             * a map or an array (no JSON has one) makes raw one the index skips. */
            struct mp_obj k;
            if (mp_read(cur, &k) != 1 || k.type == MP_ARRAY || k.type == MP_MAP ||
                raw_walk(cur, depth + 1, v) < 0) {
                return -1;
            }
        }
        return 0;
    default:
        break;
    }
    if (text.p) {
        if (v->nrawstr == PACK_RAWSTR_MAX) {
            v->rawstr_more = true;
        } else {
            v->rawstr_ord[v->nrawstr] = o.type == MP_STR ? (int16_t)v->nstr : -1;
            v->rawstr[v->nrawstr++] = text;
        }
    }
    v->nstr += o.type == MP_STR;
    return 0;
}

/* The strings of raw by ordinal (segment.md 3.4.2: its string values in walk order):
 * spans[i] for i <= max. Returns 1 when all were found, 0 when raw has fewer, -1 for
 * malformed bytes. */
static int raw_strings(struct span *cur, int depth, uint32_t max, uint32_t *n, struct span *spans)
{
    struct mp_obj o;
    int rc;

    if (depth > MP_MAX_DEPTH || mp_read(cur, &o) != 1) {
        return -1;
    }
    switch (o.type) {
    case MP_STR:
        spans[*n] = o.v.s;
        return ++*n > max;
    case MP_ARRAY:
        for (uint32_t i = 0; i < o.v.count; i++) {
            if ((rc = raw_strings(cur, depth + 1, max, n, spans)) != 0) {
                return rc;
            }
        }
        return 0;
    case MP_MAP:
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct mp_obj k;
            if (mp_read(cur, &k) != 1 || k.type == MP_ARRAY || k.type == MP_MAP) {
                return -1; /* as raw_walk: the writer never refers into such a raw */
            }
            if ((rc = raw_strings(cur, depth + 1, max, n, spans)) != 0) {
                return rc;
            }
        }
        return 0;
    default:
        return 0;
    }
}

/* Index in v->rawstr of a string of raw equal to s (inside raw's bytes), or -1. */
static int find_in_raw(const struct pack_view *v, struct span s)
{
    if (s.n < 2 || v->nrawstr == 0 || !(v->present & (1u << PK_RAW))) {
        return -1; /* a reference is not shorter; or no raw to refer to */
    }
    const uint8_t *lo = v->str[PK_RAW].p;
    const uint8_t *hi = lo + v->str[PK_RAW].n;
    for (uint32_t i = 0; i < v->nrawstr; i++) {
        struct span r = v->rawstr[i];
        if (r.n == s.n && v->rawstr_ord[i] >= 0 && r.p >= lo && r.p + r.n <= hi &&
            r.p[0] == s.p[0] && memcmp(r.p, s.p, s.n) == 0) {
            return (int)i;
        }
    }
    return -1;
}

void pack__view(struct span rec, struct pack_view *v)
{
    struct span cur = rec;
    struct mp_obj o;
    int last = -1;
    bool ordered = true;
    bool unknown = false;
    bool raw_bin = true;

    v->indexable = false;
    v->packable = false;
    v->raw_ok = true;
    v->unknown = false;
    v->present = 0;
    v->nrawstr = 0;
    v->nstr = 0;
    v->rawstr_more = false;
    if (mp_read(&cur, &o) != 1 || o.type != MP_MAP) {
        return;
    }
    uint32_t n = o.v.count;
    for (uint32_t i = 0; i < n; i++) {
        struct mp_obj k;
        if (mp_read(&cur, &k) != 1 || k.type != MP_STR) {
            return;
        }
        int key = key_lookup(k.v.s);
        if (key < 0) {
            unknown = true; /* readers skip it (record.h: newer writers) */
            if (mp_skip(&cur) < 0) {
                return;
            }
            continue;
        }
        if (v->present & (1u << key)) {
            return; /* a key twice: readers keep the last one; do not guess */
        }
        ordered &= key > last;
        last = key;
        v->present |= 1u << key;
        if (keys[key].cls == KC_RAW) {
            /* record.h: a bin holding the event's msgpack, or (older writers) the value. */
            if (cur.n > 0 && (cur.p[0] == 0xc4 || cur.p[0] == 0xc5 || cur.p[0] == 0xc6)) {
                if (mp_read(&cur, &o) != 1) {
                    return;
                }
                v->str[key] = o.v.s;
            } else {
                raw_bin = false;
                if (mp_take(&cur, &v->str[key]) < 0) {
                    return;
                }
            }
            continue;
        }
        if (mp_read(&cur, &o) != 1) {
            return;
        }
        switch (keys[key].cls) {
        case KC_INT:
            if (o.type == MP_INT) {
                v->num[key] = o.v.i;
            } else if (o.type == MP_UINT && o.v.u <= INT64_MAX) {
                v->num[key] = (int64_t)o.v.u;
            } else {
                return; /* rec_decode refuses it */
            }
            break;
        case KC_UINT:
            if (o.type != MP_UINT) {
                return;
            }
            v->num[key] = (int64_t)o.v.u;
            break;
        default:
            if (o.type != MP_STR) {
                return;
            }
            v->str[key] = o.v.s;
            break;
        }
    }
    if (v->present & (1u << PK_RAW)) {
        struct span r = v->str[PK_RAW];
        if (r.n > 0 && (raw_walk(&r, 0, v) < 0 || r.n != 0)) {
            v->raw_ok = false;
        }
    }
    v->indexable = true;
    v->unknown = unknown;
    v->packable = ordered && !unknown && raw_bin && cur.n == 0;
    for (int key = 0; key < PK_COUNT; key++) {
        v->ref[key] = -1;
        if (keys[key].cls == KC_STR && (v->present & (1u << key))) {
            v->ref[key] = (int16_t)find_in_raw(v, v->str[key]);
        }
    }
}

unsigned pack__group(const struct pack_view *v)
{
    if (!v->indexable || !(v->present & (1u << PK_SOURCE))) {
        return 0;
    }
    struct span s = v->str[PK_SOURCE];
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < s.n; i++) {
        h = (h ^ s.p[i]) * 16777619u;
    }
    return (h ^ (h >> 16)) % PACK_GROUPS;
}

/* ---- packing ---- */

#define PACK_VERBATIM 0
#define PACK_PACKED   1

static int unpack(struct span p, int64_t ts, uint64_t seq, int64_t *prev_received, bool raw_body,
                  struct buf *out, struct errbuf *why);

int pack__record(struct span rec, const struct pack_view *v, int64_t ts, uint64_t seq,
                 int64_t *prev_received, struct buf *out, struct buf *scratch)
{
    size_t start = out->len;
    int rc;

    if (v->packable) {
        /* The form byte, the key bits, then per key at most 20 bytes of varints plus a
         * literal string: never more than the record itself plus 21 bytes per key. */
        if ((rc = buf_reserve(out, rec.n + 32 + 21 * PK_COUNT)) < 0) {
            return rc;
        }
        uint8_t *p = out->data + out->len;
        *p++ = PACK_PACKED;
        p = store__put_uvarint(p, v->present);
        for (int k = 0; k < PK_RAW; k++) {
            if (!(v->present & (1u << k))) {
                continue;
            }
            switch (keys[k].cls) {
            case KC_INT: {
                uint64_t base = k == PK_TS         ? (uint64_t)ts
                                : k == PK_RECEIVED ? (uint64_t)*prev_received
                                                   : 0;
                p = store__put_uvarint(p, store__zigzag((uint64_t)v->num[k] - base));
                break;
            }
            case KC_UINT:
                p = store__put_uvarint(p, store__zigzag((uint64_t)v->num[k] - seq));
                break;
            default: {
                struct span s = v->str[k];
                if (v->ref[k] >= 0) {
                    /* Which string of raw (its ordinal): in events of one shape the
                     * same small number every time, so lz4 sees the same bytes. */
                    p = store__put_uvarint(p, (uint64_t)v->rawstr_ord[v->ref[k]] << 1 | 1);
                } else {
                    p = store__put_uvarint(p, (uint64_t)s.n << 1);
                    memcpy(p, s.p, s.n);
                    p += s.n;
                }
                break;
            }
            }
        }
        if (v->present & (1u << PK_RAW)) {
            memcpy(p, v->str[PK_RAW].p, v->str[PK_RAW].n);
            p += v->str[PK_RAW].n;
        }
        out->len = (size_t)(p - out->data);
        out->data[out->len] = 0;

        /* Exactly the same bytes back, or verbatim. raw is the record's last value
         * (packable: keys in order, nothing after), copied as it is: unpacking all but
         * its bytes and comparing that is enough. */
        struct errbuf why;
        int64_t prev = *prev_received;
        size_t tail = (v->present & (1u << PK_RAW)) ? v->str[PK_RAW].n : 0;
        scratch->len = 0;
        size_t plen = out->len - start;
        if (plen <= rec.n + 1 && rec.n <= 2 * plen + 64 &&
            unpack((struct span){ out->data + start, plen }, ts, seq, &prev, false, scratch,
                   &why) == 0 &&
            scratch->len + tail == rec.n && memcmp(scratch->data, rec.p, scratch->len) == 0) {
            *prev_received = prev;
            return 0;
        }
        out->len = start;
    }
    if ((rc = buf_reserve(out, rec.n + 1)) < 0) {
        return rc;
    }
    out->data[out->len++] = PACK_VERBATIM;
    memcpy(out->data + out->len, rec.p, rec.n);
    out->len += rec.n;
    out->data[out->len] = 0;
    return 0;
}

/* ---- unpacking: msgpack headers as msgpack-c writes them (the smallest form) ---- */

static uint8_t *put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        *p++ = (uint8_t)(v >> (8 * i));
    }
    return p;
}

static uint8_t *put_mp_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t)v;
    } else if (v < 256) {
        *p++ = 0xcc;
        p = put_be(p, v, 1);
    } else if (v < 65536) {
        *p++ = 0xcd;
        p = put_be(p, v, 2);
    } else if (v <= UINT32_MAX) {
        *p++ = 0xce;
        p = put_be(p, v, 4);
    } else {
        *p++ = 0xcf;
        p = put_be(p, v, 8);
    }
    return p;
}

static uint8_t *put_mp_int(uint8_t *p, int64_t v)
{
    if (v >= 0) {
        return put_mp_uint(p, (uint64_t)v);
    }
    if (v >= -32) {
        *p++ = (uint8_t)v;
    } else if (v >= INT8_MIN) {
        *p++ = 0xd0;
        p = put_be(p, (uint64_t)v, 1);
    } else if (v >= INT16_MIN) {
        *p++ = 0xd1;
        p = put_be(p, (uint64_t)v, 2);
    } else if (v >= INT32_MIN) {
        *p++ = 0xd2;
        p = put_be(p, (uint64_t)v, 4);
    } else {
        *p++ = 0xd3;
        p = put_be(p, (uint64_t)v, 8);
    }
    return p;
}

static uint8_t *put_mp_str_hdr(uint8_t *p, size_t n)
{
    if (n < 32) {
        *p++ = (uint8_t)(0xa0 | n);
    } else if (n < 256) {
        *p++ = 0xd9;
        p = put_be(p, n, 1);
    } else if (n < 65536) {
        *p++ = 0xda;
        p = put_be(p, n, 2);
    } else {
        *p++ = 0xdb;
        p = put_be(p, n, 4);
    }
    return p;
}

/* The smallest map header for n keys (n < 2^16: at most PK_COUNT keys). */
static uint8_t *put_mp_map_hdr(uint8_t *p, unsigned n)
{
    if (n < 16) {
        *p++ = (uint8_t)(0x80 | n);
        return p;
    }
    *p++ = 0xde;
    return put_be(p, n, 2);
}

static uint8_t *put_mp_bin_hdr(uint8_t *p, size_t n)
{
    if (n < 256) {
        *p++ = 0xc4;
        p = put_be(p, n, 1);
    } else if (n < 65536) {
        *p++ = 0xc5;
        p = put_be(p, n, 2);
    } else {
        *p++ = 0xc6;
        p = put_be(p, n, 4);
    }
    return p;
}

uint32_t store_field_bit(const char *name)
{
    int k = name ? key_lookup(span_str(name)) : -1;
    return k < 0 ? 0 : 1u << k;
}

int pack__key_class(int k)
{
    return k >= 0 && k < PK_COUNT ? (int)keys[k].cls : -1;
}

int pack__emit(uint32_t present, const int64_t num[PK_COUNT], const struct span str[PK_COUNT],
               struct buf *out)
{
    size_t need = 3;
    int rc;

    for (int k = 0; k < PK_COUNT; k++) {
        if (present & (1u << k)) {
            need += 1u + keys[k].len + (keys[k].cls >= KC_STR ? 5 + str[k].n : 9);
        }
    }
    if ((rc = buf_reserve(out, need)) < 0) {
        return rc;
    }
    uint8_t *o = out->data + out->len;
    o = put_mp_map_hdr(o, (unsigned)__builtin_popcount(present));
    for (int k = 0; k < PK_COUNT; k++) {
        if (!(present & (1u << k))) {
            continue;
        }
        *o++ = (uint8_t)(0xa0 | keys[k].len);
        memcpy(o, keys[k].name, keys[k].len);
        o += keys[k].len;
        switch (keys[k].cls) {
        case KC_INT:
            o = put_mp_int(o, num[k]);
            break;
        case KC_UINT:
            o = put_mp_uint(o, (uint64_t)num[k]);
            break;
        case KC_STR:
            o = put_mp_str_hdr(o, str[k].n);
            if (str[k].n) {
                memcpy(o, str[k].p, str[k].n);
            }
            o += str[k].n;
            break;
        case KC_RAW:
            /* p NULL: the caller fills the n bytes (cols.c puts raw back in place). */
            o = put_mp_bin_hdr(o, str[k].n);
            if (str[k].p) {
                memcpy(o, str[k].p, str[k].n);
            }
            o += str[k].n;
            break;
        }
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = 0;
    return 0;
}

int pack__skip(struct span p, int64_t *prev_received)
{
    uint64_t present;
    uint64_t v;

    if (p.n == 0 || p.p[0] == PACK_VERBATIM) {
        return p.n == 0 ? VG_ECORRUPT : 0;
    }
    span_advance(&p, 1);
    if (store__get_uvarint(&p, &present) < 0) {
        return VG_ECORRUPT;
    }
    if ((present & (1u << PK_TS)) && store__get_uvarint(&p, &v) < 0) {
        return VG_ECORRUPT;
    }
    if (present & (1u << PK_RECEIVED)) {
        if (store__get_uvarint(&p, &v) < 0) {
            return VG_ECORRUPT;
        }
        *prev_received = (int64_t)(store__unzigzag(v) + (uint64_t)*prev_received);
    }
    return 0;
}

int pack__unpack(struct span p, int64_t ts, uint64_t seq, int64_t *prev_received, struct buf *out,
                 struct errbuf *why)
{
    return unpack(p, ts, seq, prev_received, true, out, why);
}

/* Unpacks p into out; without raw_body, stops after raw's bin header. */
static int unpack(struct span p, int64_t ts, uint64_t seq, int64_t *prev_received, bool raw_body,
                  struct buf *out, struct errbuf *why)
{
    struct {
        uint64_t num;
        const uint8_t *lit; /* NULL: a reference */
        uint64_t off;
        uint64_t len;
    } val[PK_COUNT];
    uint64_t present;
    int rc;

    if (p.n == 0) {
        errbuf_set(why, "empty packed record");
        return VG_ECORRUPT;
    }
    uint8_t form = p.p[0];
    span_advance(&p, 1);
    if (form == PACK_VERBATIM) {
        if (p.n == 0) {
            errbuf_set(why, "empty record");
            return VG_ECORRUPT;
        }
        return buf_append(out, p.p, p.n);
    }
    if (form != PACK_PACKED) {
        errbuf_set(why, "unknown packed record form %u", form);
        return VG_ECORRUPT;
    }
    if (store__get_uvarint(&p, &present) < 0 || present == 0 || present >> PK_COUNT) {
        errbuf_set(why, "packed record: bad key bits");
        return VG_ECORRUPT;
    }
    size_t need = 3; /* map16 */
    uint32_t max_ord = UINT32_MAX;
    for (int k = 0; k < PK_RAW; k++) {
        if (!(present & (1u << k))) {
            continue;
        }
        if (store__get_uvarint(&p, &val[k].num) < 0) {
            errbuf_set(why, "packed record: bad value of '%s'", keys[k].name);
            return VG_ECORRUPT;
        }
        need += 1 + keys[k].len;
        if (keys[k].cls != KC_STR) {
            need += 9;
            continue;
        }
        uint64_t t = val[k].num;
        if (t & 1) {
            val[k].lit = NULL;
            val[k].off = t >> 1; /* the ordinal, for now */
            if (val[k].off >= PACK_RAWSTR_MAX) {
                errbuf_set(why, "packed record: bad reference of '%s'", keys[k].name);
                return VG_ECORRUPT;
            }
            max_ord =
                val[k].off > max_ord || max_ord == UINT32_MAX ? (uint32_t)val[k].off : max_ord;
        } else {
            val[k].len = t >> 1;
            if (val[k].len > p.n) {
                errbuf_set(why, "packed record: '%s' runs past the end", keys[k].name);
                return VG_ECORRUPT;
            }
            val[k].lit = p.p;
            span_advance(&p, (size_t)val[k].len);
            need += 5 + (size_t)val[k].len;
        }
    }
    struct span raw = { NULL, 0 };
    if (present & (1u << PK_RAW)) {
        raw = p;
        need += 4 + 5 + raw.n;
    } else if (p.n != 0) {
        errbuf_set(why, "packed record: %zu bytes after the last value", p.n);
        return VG_ECORRUPT;
    }
    if (max_ord != UINT32_MAX) {
        /* References name strings of raw by ordinal: find them. */
        struct span strs[PACK_RAWSTR_MAX];
        struct span cur = raw;
        uint32_t nstr = 0;
        if (raw_strings(&cur, 0, max_ord, &nstr, strs) != 1) {
            errbuf_set(why, "packed record: a reference past the strings of raw");
            return VG_ECORRUPT;
        }
        for (int k = 0; k < PK_RAW; k++) {
            if ((present & (1u << k)) && keys[k].cls == KC_STR && !val[k].lit) {
                struct span r = strs[val[k].off];
                val[k].lit = r.p;
                val[k].len = r.n;
                need += 5 + r.n;
            }
        }
    }
    if ((rc = buf_reserve(out, need)) < 0) {
        return rc;
    }
    uint8_t *o = out->data + out->len;
    o = put_mp_map_hdr(o, (unsigned)__builtin_popcountll(present));
    for (int k = 0; k < PK_COUNT; k++) {
        if (!(present & (1u << k))) {
            continue;
        }
        *o++ = (uint8_t)(0xa0 | keys[k].len);
        memcpy(o, keys[k].name, keys[k].len);
        o += keys[k].len;
        switch (keys[k].cls) {
        case KC_INT: {
            uint64_t d = store__unzigzag(val[k].num);
            if (k == PK_TS) {
                d += (uint64_t)ts;
            } else if (k == PK_RECEIVED) {
                d += (uint64_t)*prev_received;
                *prev_received = (int64_t)d;
            }
            o = put_mp_int(o, (int64_t)d);
            break;
        }
        case KC_UINT:
            o = put_mp_uint(o, store__unzigzag(val[k].num) + seq);
            break;
        case KC_STR: {
            o = put_mp_str_hdr(o, (size_t)val[k].len);
            memcpy(o, val[k].lit, (size_t)val[k].len);
            o += val[k].len;
            break;
        }
        case KC_RAW:
            o = put_mp_bin_hdr(o, raw.n);
            if (raw_body) {
                memcpy(o, raw.p, raw.n);
                o += raw.n;
            }
            break;
        }
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = 0;
    return 0;
}
