/* common/mp.c: the bounded msgpack cursor (reading) and msgpack-c's packer (writing).
 * See mp.h for why reading does not use msgpack-c's unpacker. Pure functions; any
 * thread. Format: https://github.com/msgpack/msgpack/blob/master/spec.md */
#include "common/mp.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Takes n payload bytes after a header of h bytes. */
static int take_payload(struct span *in, size_t h, size_t n, struct mp_obj *o)
{
    if (in->n - h < n) {
        return 0;
    }
    o->v.s = (struct span){ in->p + h, n };
    span_advance(in, h + n);
    return 1;
}

int mp__read_any(struct span *in, struct mp_obj *o)
{
    if (in->n == 0) {
        return 0;
    }
    const uint8_t *p = in->p;
    uint8_t c = p[0];
    size_t need;

    o->ext_type = 0;
    if (c <= 0x7f) {
        o->type = MP_UINT;
        o->v.u = c;
        span_advance(in, 1);
        return 1;
    }
    if (c >= 0xe0) {
        o->type = MP_INT;
        o->v.i = (int8_t)c;
        span_advance(in, 1);
        return 1;
    }
    if (c >= 0x80 && c <= 0x8f) {
        o->type = MP_MAP;
        o->v.count = c & 0x0f;
        span_advance(in, 1);
        return 1;
    }
    if (c >= 0x90 && c <= 0x9f) {
        o->type = MP_ARRAY;
        o->v.count = c & 0x0f;
        span_advance(in, 1);
        return 1;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        o->type = MP_STR;
        return take_payload(in, 1, c & 0x1f, o);
    }
    /* Fixed-size headers: how many bytes follow the type byte. */
    static const uint8_t extra[32] = {
        [0x00] = 0, /* c0 nil */
        [0x01] = 0, /* c1 never used */
        [0x02] = 0, [0x03] = 0, /* bool */
        [0x04] = 1, [0x05] = 2, [0x06] = 4,  /* bin 8/16/32 length */
        [0x07] = 2, [0x08] = 3, [0x09] = 5,  /* ext 8/16/32: length + type */
        [0x0a] = 4, [0x0b] = 8,              /* float 32/64 */
        [0x0c] = 1, [0x0d] = 2, [0x0e] = 4, [0x0f] = 8, /* uint */
        [0x10] = 1, [0x11] = 2, [0x12] = 4, [0x13] = 8, /* int */
        [0x14] = 2, [0x15] = 3, [0x16] = 5, [0x17] = 9, [0x18] = 17, /* fixext */
        [0x19] = 1, [0x1a] = 2, [0x1b] = 4,  /* str 8/16/32 length */
        [0x1c] = 2, [0x1d] = 4,              /* array 16/32 */
        [0x1e] = 2, [0x1f] = 4,              /* map 16/32 */
    };
    need = 1 + extra[c - 0xc0];
    if (in->n < need) {
        return 0;
    }
    const uint8_t *q = p + 1;
    switch (c) {
    case 0xc0:
        o->type = MP_NIL;
        break;
    case 0xc1:
        return -EPROTO;
    case 0xc2:
    case 0xc3:
        o->type = MP_BOOL;
        o->v.b = c == 0xc3;
        break;
    case 0xc4:
        o->type = MP_BIN;
        return take_payload(in, need, q[0], o);
    case 0xc5:
        o->type = MP_BIN;
        return take_payload(in, need, be16(q), o);
    case 0xc6:
        o->type = MP_BIN;
        return take_payload(in, need, be32(q), o);
    case 0xc7:
        o->type = MP_EXT;
        o->ext_type = (int8_t)q[1];
        return take_payload(in, need, q[0], o);
    case 0xc8:
        o->type = MP_EXT;
        o->ext_type = (int8_t)q[2];
        return take_payload(in, need, be16(q), o);
    case 0xc9:
        o->type = MP_EXT;
        o->ext_type = (int8_t)q[4];
        return take_payload(in, need, be32(q), o);
    case 0xca: {
        uint32_t u = be32(q);
        float f;
        memcpy(&f, &u, sizeof(f));
        o->type = MP_FLOAT;
        o->v.f = f;
        break;
    }
    case 0xcb: {
        uint64_t u = be64(q);
        memcpy(&o->v.f, &u, sizeof(o->v.f));
        o->type = MP_FLOAT;
        break;
    }
    case 0xcc:
        o->type = MP_UINT;
        o->v.u = q[0];
        break;
    case 0xcd:
        o->type = MP_UINT;
        o->v.u = be16(q);
        break;
    case 0xce:
        o->type = MP_UINT;
        o->v.u = be32(q);
        break;
    case 0xcf:
        o->type = MP_UINT;
        o->v.u = be64(q);
        break;
    case 0xd0:
        o->type = MP_INT;
        o->v.i = (int8_t)q[0];
        break;
    case 0xd1:
        o->type = MP_INT;
        o->v.i = (int16_t)be16(q);
        break;
    case 0xd2:
        o->type = MP_INT;
        o->v.i = (int32_t)be32(q);
        break;
    case 0xd3:
        o->type = MP_INT;
        o->v.i = (int64_t)be64(q);
        break;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        o->type = MP_EXT;
        o->ext_type = (int8_t)q[0];
        o->v.s = (struct span){ q + 1, (size_t)1 << (c - 0xd4) };
        break;
    case 0xd9:
        o->type = MP_STR;
        return take_payload(in, need, q[0], o);
    case 0xda:
        o->type = MP_STR;
        return take_payload(in, need, be16(q), o);
    case 0xdb:
        o->type = MP_STR;
        return take_payload(in, need, be32(q), o);
    case 0xdc:
        o->type = MP_ARRAY;
        o->v.count = be16(q);
        break;
    case 0xdd:
        o->type = MP_ARRAY;
        o->v.count = be32(q);
        break;
    case 0xde:
        o->type = MP_MAP;
        o->v.count = be16(q);
        break;
    case 0xdf:
        o->type = MP_MAP;
        o->v.count = be32(q);
        break;
    default:
        return -EPROTO;
    }
    span_advance(in, need);
    return 1;
}

ssize_t mp_value_len(struct span in, size_t max_bytes, int max_depth)
{
    /* Iterative walk: `pending` counts the values still to read at all depths; a stack
     * of remaining counts per open container bounds depth. Every element takes at
     * least one byte, so a container claiming more elements than max_bytes allows is
     * rejected before any further byte is read. */
    uint64_t remaining[MP_MAX_DEPTH + 1];
    int depth = 0;
    struct span cur = in;
    struct mp_obj o;

    if (max_depth > MP_MAX_DEPTH) {
        max_depth = MP_MAX_DEPTH;
    }
    remaining[0] = 1;
    while (depth >= 0) {
        if (remaining[depth] == 0) {
            depth--;
            continue;
        }
        size_t used = (size_t)(cur.p - in.p);
        if (used >= max_bytes) {
            return VG_ELIMIT;
        }
        /* Most values are scalars of a fixed size (fixint, nil, bool, int, float,
         * fixext), a fixstr or str 8, or a fixmap or fixarray: step over them here when
         * they are whole; mp_read takes the rest. */
        if (cur.n > 0) {
            uint8_t c = cur.p[0];
            size_t adv = 0;
            if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
                adv = 1;
            } else if (c >= 0xa0 && c <= 0xbf) {
                adv = 1 + (size_t)(c & 0x1f);
            } else if (c == 0xd9 && cur.n >= 2) {
                adv = 2 + (size_t)cur.p[1];
            } else if (c >= 0xca && c <= 0xd3) { /* float 32/64, uint and int 8..64 */
                static const uint8_t size[10] = { 4, 8, 1, 2, 4, 8, 1, 2, 4, 8 };
                adv = 1 + (size_t)size[c - 0xca];
            } else if (c >= 0xd4 && c <= 0xd8) { /* fixext 1..16 */
                adv = 2 + ((size_t)1 << (c - 0xd4));
            } else if (c >= 0x80 && c <= 0x9f) { /* fixmap, fixarray */
                uint64_t n = c <= 0x8f ? 2 * (uint64_t)(c & 0x0f) : (uint64_t)(c & 0x0f);
                span_advance(&cur, 1);
                remaining[depth]--;
                if (n == 0) {
                    continue;
                }
                if (n > max_bytes - used - 1) {
                    return VG_ELIMIT;
                }
                if (depth + 1 > max_depth) {
                    return -EPROTO;
                }
                remaining[++depth] = n;
                continue;
            }
            if (adv > 0 && adv <= cur.n) {
                span_advance(&cur, adv);
                remaining[depth]--;
                if (used + adv > max_bytes) {
                    return VG_ELIMIT;
                }
                continue;
            }
        }
        int rc = mp_read(&cur, &o);
        if (rc < 0) {
            return rc;
        }
        used = (size_t)(cur.p - in.p);
        if (rc == 0) {
            /* Need more: but a header or payload already claiming too much is an error. */
            struct span peek = cur;
            if (peek.n >= 1) {
                uint8_t c = peek.p[0];
                uint64_t claim = 0;
                if ((c == 0xc6 || c == 0xdb || c == 0xc9) && peek.n >= 5) {
                    claim = be32(peek.p + 1);
                } else if ((c == 0xc5 || c == 0xda || c == 0xc8) && peek.n >= 3) {
                    claim = be16(peek.p + 1);
                }
                if (used + claim > max_bytes) {
                    return VG_ELIMIT;
                }
            }
            return in.n >= max_bytes ? VG_ELIMIT : 0;
        }
        remaining[depth]--;
        if (o.type == MP_ARRAY || o.type == MP_MAP) {
            uint64_t n = o.type == MP_MAP ? 2 * (uint64_t)o.v.count : o.v.count;
            if (n == 0) {
                continue;
            }
            if (n > max_bytes - used) {
                return VG_ELIMIT;
            }
            if (depth + 1 > max_depth) {
                return -EPROTO;
            }
            remaining[++depth] = n;
        }
        if (used > max_bytes) {
            return VG_ELIMIT;
        }
    }
    return (ssize_t)(cur.p - in.p);
}

int mp_skip(struct span *in)
{
    ssize_t n = mp_value_len(*in, in->n, MP_MAX_DEPTH);
    if (n <= 0) {
        return -EPROTO;
    }
    span_advance(in, (size_t)n);
    return 0;
}

int mp_take(struct span *in, struct span *value)
{
    const uint8_t *start = in->p;
    int rc = mp_skip(in);
    if (rc < 0) {
        return rc;
    }
    *value = (struct span){ start, (size_t)(in->p - start) };
    return 0;
}

int mp_map_get(struct span map, struct span key, struct span *value)
{
    struct mp_obj o;
    int rc = mp_read(&map, &o);

    if (rc <= 0) {
        return rc < 0 ? rc : -EPROTO;
    }
    if (o.type != MP_MAP) {
        return 0;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct mp_obj k;
        struct span save = map;
        rc = mp_read(&map, &k);
        if (rc <= 0) {
            return -EPROTO;
        }
        if (k.type == MP_STR && span_eq(k.v.s, key)) {
            return mp_take(&map, value) < 0 ? -EPROTO : 1;
        }
        if (k.type == MP_ARRAY || k.type == MP_MAP) {
            map = save;
            if (mp_skip(&map) < 0) {
                return -EPROTO;
            }
        }
        if (mp_skip(&map) < 0) {
            return -EPROTO;
        }
    }
    return 0;
}

bool mp_get_str(struct span value, struct span *s)
{
    struct mp_obj o;
    if (mp_read(&value, &o) <= 0 || o.type != MP_STR) {
        return false;
    }
    *s = o.v.s;
    return true;
}

bool mp_get_i64(struct span value, int64_t *out)
{
    struct mp_obj o;
    if (mp_read(&value, &o) <= 0) {
        return false;
    }
    if (o.type == MP_INT) {
        *out = o.v.i;
        return true;
    }
    if (o.type == MP_UINT && o.v.u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)o.v.u;
        return true;
    }
    return false;
}

bool mp_get_f64(struct span value, double *out)
{
    struct mp_obj o;
    if (mp_read(&value, &o) <= 0) {
        return false;
    }
    switch (o.type) {
    case MP_FLOAT:
        *out = o.v.f;
        return true;
    case MP_INT:
        *out = (double)o.v.i;
        return true;
    case MP_UINT:
        *out = (double)o.v.u;
        return true;
    default:
        return false;
    }
}

bool mp_get_bool(struct span value, bool *out)
{
    struct mp_obj o;
    if (mp_read(&value, &o) <= 0 || o.type != MP_BOOL) {
        return false;
    }
    *out = o.v.b;
    return true;
}

bool mp_is_nil(struct span value)
{
    return value.n >= 1 && value.p[0] == 0xc0;
}

/* msgpack-c packer writing into a struct buf. */
static int pk_write(void *data, const char *p, size_t n)
{
    return buf_append((struct buf *)data, p, n) < 0 ? -1 : 0;
}

#define PACKER(b)                                                                          \
    msgpack_packer pk;                                                                     \
    msgpack_packer_init(&pk, (b), pk_write)

static int pk_rc(int rc)
{
    return rc == 0 ? 0 : VG_ELIMIT;
}

int mp_put_nil(struct buf *b)
{
    PACKER(b);
    return pk_rc(msgpack_pack_nil(&pk));
}

int mp_put_bool(struct buf *b, bool v)
{
    PACKER(b);
    return pk_rc(v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}

int mp_put_i64(struct buf *b, int64_t v)
{
    PACKER(b);
    return pk_rc(msgpack_pack_int64(&pk, v));
}

int mp_put_u64(struct buf *b, uint64_t v)
{
    PACKER(b);
    return pk_rc(msgpack_pack_uint64(&pk, v));
}

int mp_put_f64(struct buf *b, double v)
{
    PACKER(b);
    return pk_rc(msgpack_pack_double(&pk, v));
}

/* The headers of str, bin, array and map are written here, in the forms msgpack-c's
 * packer picks (the smallest that holds the length; str 8 included), with the payload
 * in one reserve: a record is some thirty of them, on the loop thread for every event. */
static int put_sized(struct buf *b, uint8_t fix, uint32_t fix_max, uint8_t c8, uint8_t c16,
                     uint8_t c32, size_t n, const void *p, size_t pn)
{
    uint8_t h[5];
    size_t hn;

    if (n > UINT32_MAX) {
        return VG_ELIMIT;
    }
    if (n < fix_max) {
        h[0] = (uint8_t)(fix | n);
        hn = 1;
    } else if (c8 && n <= UINT8_MAX) {
        h[0] = c8;
        h[1] = (uint8_t)n;
        hn = 2;
    } else if (n <= UINT16_MAX) {
        h[0] = c16;
        h[1] = (uint8_t)(n >> 8);
        h[2] = (uint8_t)n;
        hn = 3;
    } else {
        h[0] = c32;
        h[1] = (uint8_t)(n >> 24);
        h[2] = (uint8_t)(n >> 16);
        h[3] = (uint8_t)(n >> 8);
        h[4] = (uint8_t)n;
        hn = 5;
    }
    if (b->cap - b->len <= hn + pn) {
        if (pn > SIZE_MAX - hn) {
            return VG_ELIMIT;
        }
        int rc = buf_reserve(b, hn + pn);
        if (rc < 0) {
            return rc;
        }
    }
    memcpy(b->data + b->len, h, hn);
    if (pn) {
        memcpy(b->data + b->len + hn, p, pn);
    }
    b->len += hn + pn;
    b->data[b->len] = 0;
    return 0;
}

int mp_put_str(struct buf *b, const void *p, size_t n)
{
    return put_sized(b, 0xa0, 32, 0xd9, 0xda, 0xdb, n, p, n);
}

int mp_put_cstr(struct buf *b, const char *s)
{
    return mp_put_str(b, s, strlen(s));
}

int mp_put_bin(struct buf *b, const void *p, size_t n)
{
    /* bin has no fix form: 0 < 0 never takes it */
    return put_sized(b, 0, 0, 0xc4, 0xc5, 0xc6, n, p, n);
}

int mp_put_array(struct buf *b, uint32_t n)
{
    return put_sized(b, 0x90, 16, 0, 0xdc, 0xdd, n, NULL, 0);
}

int mp_put_map(struct buf *b, uint32_t n)
{
    return put_sized(b, 0x80, 16, 0, 0xde, 0xdf, n, NULL, 0);
}

int mp_put_ext(struct buf *b, int8_t type, const void *p, size_t n)
{
    PACKER(b);
    if (n > UINT32_MAX) {
        return VG_ELIMIT;
    }
    int rc = msgpack_pack_ext(&pk, n, type);
    if (rc == 0) {
        rc = msgpack_pack_ext_body(&pk, p, n);
    }
    return pk_rc(rc);
}

int mp_put_eventtime(struct buf *b, int64_t ns)
{
    uint8_t d[8];
    int64_t sec = ns / 1000000000;
    int64_t nsec = ns % 1000000000;
    if (nsec < 0) {
        nsec += 1000000000;
        sec--;
    }
    uint32_t s32 = (uint32_t)sec;
    uint32_t n32 = (uint32_t)nsec;
    d[0] = (uint8_t)(s32 >> 24);
    d[1] = (uint8_t)(s32 >> 16);
    d[2] = (uint8_t)(s32 >> 8);
    d[3] = (uint8_t)s32;
    d[4] = (uint8_t)(n32 >> 24);
    d[5] = (uint8_t)(n32 >> 16);
    d[6] = (uint8_t)(n32 >> 8);
    d[7] = (uint8_t)n32;
    return mp_put_ext(b, MP_EXT_EVENTTIME, d, sizeof(d));
}

int mp_put_raw(struct buf *b, struct span value)
{
    return buf_append(b, value.p, value.n);
}
