/* schemas/forward.c: the Fluentd Forward protocol v1 codec (see forward.h).
 *
 * Pure functions over caller memory; nothing here does I/O or keeps state between
 * calls, so any thread may call them. zlib (Forward's CompressedPackedForward mode) is
 * used only here.
 *
 * Invariants: a frame is measured with mp_value_len() against max_frame before any of
 * its elements is read, so every later read stays inside bytes that are present; a
 * PackedForward entry is measured the same way before it is parsed; decompression never
 * writes past scratch->max. Spans handed out point into the caller's bytes. */
#include "schemas/forward.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#define ZLIB_CONST
#include <zlib.h>

#include "common/mp.h"

#define NS_PER_SEC INT64_C(1000000000)
/* Largest whole second whose nanoseconds fit an int64_t. */
#define MAX_SEC (INT64_MAX / NS_PER_SEC)
/* Record nesting allowed from a PackedForward entry down (see FORWARD_MAX_DEPTH). */
#define ENTRY_MAX_DEPTH (FORWARD_MAX_DEPTH - 2)

/* What a value's first byte says it is (msgpack spec, "Formats"). For checks on a
 * prefix whose header or payload has not fully arrived. */
enum fwd_kind {
    KIND_NUMBER, /* int, uint or float: a time */
    KIND_EXT,
    KIND_STR,
    KIND_BIN,
    KIND_ARRAY,
    KIND_MAP,
    KIND_OTHER, /* nil, bool, 0xc1 */
};

static enum fwd_kind kind_of(uint8_t c)
{
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xca && c <= 0xd3)) {
        return KIND_NUMBER;
    }
    if (c <= 0x8f || c == 0xde || c == 0xdf) {
        return KIND_MAP;
    }
    if (c <= 0x9f || c == 0xdc || c == 0xdd) {
        return KIND_ARRAY;
    }
    if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb)) {
        return KIND_STR;
    }
    if (c >= 0xc4 && c <= 0xc6) {
        return KIND_BIN;
    }
    if ((c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8)) {
        return KIND_EXT;
    }
    return KIND_OTHER;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Spec "Event Modes": which arities the second element's kind allows. */
static bool arity_ok(enum fwd_kind second, uint32_t arity)
{
    switch (second) {
    case KIND_NUMBER:
    case KIND_EXT:
        return arity == 3 || arity == 4; /* Message: [tag, time, record(, option)] */
    case KIND_ARRAY:
    case KIND_STR:
    case KIND_BIN:
        return arity == 2 || arity == 3; /* [tag, entries(, option)] */
    default:
        return false;
    }
}

/* in holds an incomplete value (mp_value_len() said "need more"). Rejects it now when
 * its first bytes already show it cannot become a message, so that garbage (a TLS
 * record on a plaintext port, an HTTP request) is refused at once rather than after
 * max_frame bytes. Returns 0 (need more) or -EPROTO; never -EPROTO for a prefix of a
 * valid message. */
static ssize_t check_prefix(struct span in)
{
    struct mp_obj o;
    int rc;

    if (in.n == 0) {
        return 0;
    }
    if (kind_of(in.p[0]) != KIND_ARRAY) {
        return -EPROTO;
    }
    rc = mp_read(&in, &o);
    if (rc <= 0) {
        return rc;
    }
    if (o.v.count < 2 || o.v.count > 4) {
        return -EPROTO;
    }
    uint32_t arity = o.v.count;
    if (in.n == 0) {
        return 0;
    }
    if (kind_of(in.p[0]) != KIND_STR) {
        return -EPROTO; /* the tag */
    }
    rc = mp_read(&in, &o);
    if (rc <= 0) {
        return rc;
    }
    if (in.n == 0) {
        return 0;
    }
    return arity_ok(kind_of(in.p[0]), arity) ? 0 : -EPROTO;
}

/* Reads one time value (spec "EventTime Ext Format"; integer seconds as in v0; float
 * seconds as old Fluent Bit sends) from the front of *cur into *ns. */
static int read_time(struct span *cur, int64_t *ns)
{
    struct mp_obj o;
    int64_t sec;

    if (mp_read(cur, &o) != 1) {
        return -EPROTO;
    }
    switch (o.type) {
    case MP_UINT:
        if (o.v.u > (uint64_t)MAX_SEC) {
            return -EPROTO;
        }
        *ns = (int64_t)o.v.u * NS_PER_SEC;
        return 0;
    case MP_INT: /* int 8..64 formats may carry a non-negative value too */
        if (o.v.i < 0 || o.v.i > MAX_SEC) {
            return -EPROTO;
        }
        *ns = o.v.i * NS_PER_SEC;
        return 0;
    case MP_FLOAT: {
        if (!isfinite(o.v.f) || o.v.f < 0 || o.v.f >= (double)MAX_SEC) {
            return -EPROTO;
        }
        sec = (int64_t)o.v.f;
        /* The fraction is exact in a double; rounding it alone keeps the precision the
         * sender had (a double holds a 2024 time to about 0.2 us). */
        int64_t frac = (int64_t)((o.v.f - (double)sec) * (double)NS_PER_SEC + 0.5);
        if (frac >= NS_PER_SEC) {
            frac -= NS_PER_SEC;
            sec++;
        }
        *ns = sec * NS_PER_SEC + frac;
        return 0;
    }
    case MP_EXT: {
        if (o.ext_type != MP_EXT_EVENTTIME || o.v.s.n != 8) {
            return -EPROTO;
        }
        uint32_t nsec = be32(o.v.s.p + 4);
        if (nsec >= NS_PER_SEC) {
            return -EPROTO;
        }
        *ns = (int64_t)be32(o.v.s.p) * NS_PER_SEC + nsec;
        return 0;
    }
    default:
        return -EPROTO;
    }
}

/* Takes the map value at the front of *cur into *map; -EPROTO for any other value. */
static int take_map(struct span *cur, struct span *map)
{
    if (cur->n == 0 || kind_of(cur->p[0]) != KIND_MAP || mp_take(cur, map) < 0) {
        return -EPROTO;
    }
    return 0;
}

/* Spec "Option": reads the option value into m. compressed is returned (empty if
 * absent) for the caller to judge once the mode is known. */
static int parse_option(struct span opt, struct forward_msg *m, struct span *compressed)
{
    struct mp_obj o;

    if (mp_read(&opt, &o) != 1) {
        return -EPROTO;
    }
    if (o.type == MP_NIL) {
        return 0; /* Fluentd's in_forward treats a nil option as none */
    }
    if (o.type != MP_MAP) {
        return -EPROTO;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span key;
        struct span val;
        struct span name;
        struct mp_obj v;

        if (mp_take(&opt, &key) < 0 || mp_take(&opt, &val) < 0) {
            return -EPROTO;
        }
        if (!mp_get_str(key, &name) || mp_is_nil(val)) {
            continue; /* unknown keys (fluent_signal, ...) and nil values are ignored */
        }
        if (span_eq_str(name, "chunk")) {
            if (mp_read(&val, &v) != 1 || (v.type != MP_STR && v.type != MP_BIN)) {
                return -EPROTO;
            }
            m->chunk = v.v.s;
        } else if (span_eq_str(name, "size")) {
            int64_t size;
            if (!mp_get_i64(val, &size) || size < 0 || size > UINT32_MAX) {
                return -EPROTO;
            }
            m->size_opt = (uint32_t)size;
        } else if (span_eq_str(name, "compressed")) {
            if (!mp_get_str(val, compressed)) {
                return -EPROTO;
            }
        }
    }
    return 0;
}

ssize_t forward_decode(struct span in, struct forward_msg *m, size_t max_frame)
{
    /* Measure first: nothing a header claims is believed before this. */
    ssize_t len = mp_value_len(in, max_frame, FORWARD_MAX_DEPTH);
    struct span compressed = { NULL, 0 };
    struct mp_obj o;
    int rc;

    memset(m, 0, sizeof(*m));
    if (len == 0) {
        return check_prefix(in);
    }
    if (len < 0) {
        return len;
    }
    struct span cur = { in.p, (size_t)len };
    if (mp_read(&cur, &o) != 1 || o.type != MP_ARRAY) {
        return -EPROTO;
    }
    uint32_t arity = o.v.count;
    if (mp_read(&cur, &o) != 1 || o.type != MP_STR) {
        return -EPROTO;
    }
    m->tag = o.v.s;
    if (cur.n == 0 || !arity_ok(kind_of(cur.p[0]), arity)) {
        return -EPROTO;
    }
    bool has_option = false;
    switch (kind_of(cur.p[0])) {
    case KIND_ARRAY:
        m->mode = FORWARD_FORWARD;
        {
            struct span hdr = cur;
            if (mp_read(&hdr, &o) != 1) {
                return -EPROTO;
            }
            m->count = o.v.count;
        }
        if (mp_take(&cur, &m->entries) < 0) {
            return -EPROTO;
        }
        has_option = arity == 3;
        break;
    case KIND_STR:
    case KIND_BIN:
        m->mode = FORWARD_PACKED;
        if (mp_read(&cur, &o) != 1) {
            return -EPROTO;
        }
        m->entries = o.v.s;
        has_option = arity == 3;
        break;
    default:
        m->mode = FORWARD_MESSAGE;
        rc = read_time(&cur, &m->time_ns);
        if (rc == 0) {
            rc = take_map(&cur, &m->record);
        }
        if (rc < 0) {
            return rc;
        }
        has_option = arity == 4;
        break;
    }
    if (has_option) {
        struct span opt;
        if (mp_take(&cur, &opt) < 0) {
            return -EPROTO;
        }
        rc = parse_option(opt, m, &compressed);
        if (rc < 0) {
            return rc;
        }
    }
    /* The array held exactly `arity` elements and mp_value_len() measured it. */
    assert(cur.n == 0);
    m->compressed_gzip = span_eq_str(compressed, "gzip");
    if (m->mode == FORWARD_PACKED && compressed.n > 0) {
        if (m->compressed_gzip) {
            m->mode = FORWARD_COMPRESSED;
        } else if (!span_eq_str(compressed, "text")) {
            return -EPROTO; /* a compression we cannot undo (zstd, ...) */
        }
    }
    return len;
}

/* Gunzips in into out (reset first), any number of concatenated members, never past
 * out->max. Returns 0, -EPROTO for a broken or cut stream, VG_ELIMIT past out->max. */
static int gunzip(struct span in, struct buf *out)
{
    z_stream zs;
    size_t in_left = in.n;
    int rc = 0;

    buf_reset(out);
    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        return -ENOMEM;
    }
    zs.next_in = in.p;
    for (;;) {
        uint8_t probe;
        size_t room = out->max - out->len;
        size_t want = 1;

        if (zs.avail_in == 0 && in_left > 0) {
            zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            in_left -= zs.avail_in;
        }
        if (room > 0) {
            /* Grow geometrically, never past max. */
            want = out->len < 16384 ? 16384 : out->len;
            want = want > room ? room : want;
            want = want > UINT_MAX ? UINT_MAX : want;
            rc = buf_reserve(out, want);
            if (rc < 0) {
                break;
            }
            zs.next_out = out->data + out->len;
        } else {
            /* Full: one more byte of output means the limit is passed. */
            zs.next_out = &probe;
        }
        zs.avail_out = (uInt)want;
        int zrc = inflate(&zs, Z_NO_FLUSH);
        size_t produced = want - zs.avail_out;
        if (room == 0 && produced > 0) {
            rc = VG_ELIMIT;
            break;
        }
        if (produced > 0) {
            out->len += produced;
            out->data[out->len] = 0;
        }
        if (zrc == Z_STREAM_END) {
            if (zs.avail_in == 0 && in_left == 0) {
                break;
            }
            inflateReset(&zs); /* the next gzip member */
            continue;
        }
        if (zrc == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) {
            rc = -EPROTO; /* the input ended inside a member (or was empty) */
            break;
        }
        if (zrc == Z_MEM_ERROR) {
            rc = -ENOMEM;
            break;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = -EPROTO; /* Z_DATA_ERROR, Z_NEED_DICT: not gzip, or corrupt */
            break;
        }
    }
    inflateEnd(&zs);
    if (rc < 0) {
        buf_reset(out);
    }
    return rc;
}

static int iter_fail(struct forward_iter *it, int rc)
{
    it->err = rc;
    it->rest = (struct span){ NULL, 0 };
    it->left = 0;
    return rc;
}

int forward_iter_init(struct forward_iter *it, const struct forward_msg *m, struct buf *scratch)
{
    struct mp_obj o;
    int rc;

    memset(it, 0, sizeof(*it));
    it->mode = m->mode;
    switch (m->mode) {
    case FORWARD_MESSAGE:
        it->msg_time_ns = m->time_ns;
        it->msg_record = m->record;
        return 0;
    case FORWARD_FORWARD:
        it->rest = m->entries;
        if (mp_read(&it->rest, &o) != 1 || o.type != MP_ARRAY) {
            return iter_fail(it, -EPROTO);
        }
        it->left = o.v.count;
        return 0;
    case FORWARD_PACKED:
        it->rest = m->entries;
        return 0;
    case FORWARD_COMPRESSED:
        assert(scratch != NULL);
        rc = gunzip(m->entries, scratch);
        if (rc < 0) {
            return iter_fail(it, rc);
        }
        it->rest = buf_span(scratch);
        return 0;
    }
    return iter_fail(it, -EPROTO);
}

/* Spec "Entry": [time, record]; also Fluent Bit's [[time, metadata], record]. entry is
 * one complete value, already measured (mp_value_len or mp_take): once the array header
 * and the time (and metadata) are read, what is left of it is the record, so the
 * record is not walked a second time. */
static int parse_entry(struct span entry, int64_t *ns, struct span *record, struct span *meta)
{
    struct mp_obj o;
    int rc;

    if (mp_read(&entry, &o) != 1 || o.type != MP_ARRAY || o.v.count != 2 || entry.n == 0) {
        return -EPROTO;
    }
    if (kind_of(entry.p[0]) == KIND_ARRAY) {
        if (mp_read(&entry, &o) != 1 || o.v.count != 2) {
            return -EPROTO;
        }
        rc = read_time(&entry, ns);
        if (rc == 0) {
            rc = take_map(&entry, meta);
        }
    } else {
        rc = read_time(&entry, ns);
    }
    if (rc < 0) {
        return rc;
    }
    if (entry.n == 0 || kind_of(entry.p[0]) != KIND_MAP) {
        return -EPROTO;
    }
    *record = entry;
    return 0;
}

int forward_iter_next(struct forward_iter *it, int64_t *time_ns, struct span *record)
{
    struct span entry;
    int rc;

    if (it->err < 0) {
        return it->err;
    }
    it->metadata = (struct span){ NULL, 0 };
    switch (it->mode) {
    case FORWARD_MESSAGE:
        if (it->message_done) {
            return 0;
        }
        it->message_done = true;
        *time_ns = it->msg_time_ns;
        *record = it->msg_record;
        return 1;
    case FORWARD_FORWARD:
        if (it->left == 0) {
            return 0;
        }
        if (mp_take(&it->rest, &entry) < 0) {
            return iter_fail(it, -EPROTO);
        }
        it->left--;
        break;
    default: {
        if (it->rest.n == 0) {
            return 0;
        }
        /* A packed stream was not measured with the frame: measure each entry. A cut
         * or over-claiming entry is -EPROTO, whatever mp_value_len() calls it. */
        ssize_t n = mp_value_len(it->rest, it->rest.n, ENTRY_MAX_DEPTH);
        if (n <= 0) {
            return iter_fail(it, -EPROTO);
        }
        entry = (struct span){ it->rest.p, (size_t)n };
        span_advance(&it->rest, (size_t)n);
        break;
    }
    }
    rc = parse_entry(entry, time_ns, record, &it->metadata);
    if (rc < 0) {
        return iter_fail(it, rc);
    }
    return 1;
}

/* Encoders. */

/* On failure, drops what a partial encode appended: out is as it was at len. */
static int restore(struct buf *out, size_t len, int rc)
{
    if (rc < 0 && out->len > len) {
        out->len = len;
        out->data[len] = 0;
    }
    return rc;
}

/* True if v is exactly `count` complete msgpack values, each nested at most max_depth
 * levels (and, if maps_only, each a map). */
static bool values_ok(struct span v, uint64_t count, int max_depth, bool maps_only)
{
    while (v.n > 0) {
        ssize_t n = mp_value_len(v, v.n, max_depth);
        if (n <= 0 || count == 0 || (maps_only && kind_of(v.p[0]) != KIND_MAP)) {
            return false;
        }
        span_advance(&v, (size_t)n);
        count--;
    }
    return count == 0;
}

/* EventTime holds an unsigned 32-bit second. */
static bool eventtime_ok(int64_t ns)
{
    return ns >= 0 && ns / NS_PER_SEC <= UINT32_MAX;
}

/* {("chunk": chunk,) "size": size(, "compressed": "gzip")}: chunk first, as Fluent Bit
 * orders it. size < 0 leaves size out (Message mode). */
static int put_option(struct buf *out, int64_t size, bool gzip, struct span chunk)
{
    uint32_t n = (chunk.n > 0) + (size >= 0) + gzip;
    int rc = mp_put_map(out, n);

    if (rc == 0 && chunk.n > 0) {
        rc = mp_put_cstr(out, "chunk");
        if (rc == 0) {
            rc = mp_put_str(out, chunk.p, chunk.n);
        }
    }
    if (rc == 0 && size >= 0) {
        rc = mp_put_cstr(out, "size");
        if (rc == 0) {
            rc = mp_put_i64(out, size);
        }
    }
    if (rc == 0 && gzip) {
        rc = mp_put_cstr(out, "compressed");
        if (rc == 0) {
            rc = mp_put_cstr(out, "gzip");
        }
    }
    return rc;
}

int forward_encode_ack(struct buf *out, struct span chunk, uint64_t rejected)
{
    size_t len = out->len;
    int rc = mp_put_map(out, rejected > 0 ? 2 : 1);

    if (rc == 0) {
        rc = mp_put_cstr(out, "ack");
    }
    if (rc == 0) {
        rc = mp_put_str(out, chunk.p, chunk.n);
    }
    if (rc == 0 && rejected > 0) {
        rc = mp_put_cstr(out, "rejected");
        if (rc == 0) {
            rc = mp_put_u64(out, rejected);
        }
    }
    return restore(out, len, rc);
}

int forward_encode_entry(struct buf *entries, int64_t time_ns, struct span record_map)
{
    size_t len = entries->len;
    int rc;

    /* The record sits one level below an entry. */
    if (!eventtime_ok(time_ns) || !values_ok(record_map, 1, ENTRY_MAX_DEPTH - 1, true)) {
        return -EINVAL;
    }
    rc = mp_put_array(entries, 2);
    if (rc == 0) {
        rc = mp_put_eventtime(entries, time_ns);
    }
    if (rc == 0) {
        rc = mp_put_raw(entries, record_map);
    }
    return restore(entries, len, rc);
}

/* [tag, bin(body), option]: the PackedForward shape. */
static int put_packed(struct buf *out, struct span tag, struct span body, uint32_t count, bool gzip,
                      struct span chunk)
{
    size_t len = out->len;
    int rc = mp_put_array(out, 3);

    if (rc == 0) {
        rc = mp_put_str(out, tag.p, tag.n);
    }
    if (rc == 0) {
        rc = mp_put_bin(out, body.p, body.n);
    }
    if (rc == 0) {
        rc = put_option(out, count, gzip, chunk);
    }
    return restore(out, len, rc);
}

int forward_encode_packed(struct buf *out, struct span tag, struct span entries, uint32_t count,
                          struct span chunk)
{
    if (!values_ok(entries, count, ENTRY_MAX_DEPTH, false)) {
        return -EINVAL;
    }
    return put_packed(out, tag, entries, count, false, chunk);
}

int forward_encode_message(struct buf *out, struct span tag, int64_t time_ns,
                           struct span record_map, struct span chunk)
{
    size_t len = out->len;
    int rc;

    /* The record sits one level below the message array. */
    if (!eventtime_ok(time_ns) || !values_ok(record_map, 1, FORWARD_MAX_DEPTH - 1, true)) {
        return -EINVAL;
    }
    rc = mp_put_array(out, chunk.n > 0 ? 4 : 3);
    if (rc == 0) {
        rc = mp_put_str(out, tag.p, tag.n);
    }
    if (rc == 0) {
        rc = mp_put_eventtime(out, time_ns);
    }
    if (rc == 0) {
        rc = mp_put_raw(out, record_map);
    }
    if (rc == 0 && chunk.n > 0) {
        rc = put_option(out, -1, false, chunk);
    }
    return restore(out, len, rc);
}

int forward_encode_forward(struct buf *out, struct span tag, struct span entries_array_values,
                           uint32_t count, struct span chunk)
{
    size_t len = out->len;
    int rc;

    if (!values_ok(entries_array_values, count, ENTRY_MAX_DEPTH, false)) {
        return -EINVAL;
    }
    rc = mp_put_array(out, 3);
    if (rc == 0) {
        rc = mp_put_str(out, tag.p, tag.n);
    }
    if (rc == 0) {
        rc = mp_put_array(out, count);
    }
    if (rc == 0) {
        rc = mp_put_raw(out, entries_array_values);
    }
    if (rc == 0) {
        rc = put_option(out, count, false, chunk);
    }
    return restore(out, len, rc);
}

/* Appends one gzip member holding in to out, never past out->max. */
static int gzip_append(struct span in, struct buf *out)
{
    z_stream zs;
    size_t in_left = in.n;
    int rc = 0;

    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -ENOMEM;
    }
    zs.next_in = in.p;
    for (;;) {
        if (zs.avail_in == 0 && in_left > 0) {
            zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            in_left -= zs.avail_in;
        }
        size_t room = out->max - out->len;
        size_t want = deflateBound(&zs, zs.avail_in + in_left);
        want = want > room ? room : want;
        want = want > UINT_MAX ? UINT_MAX : want;
        if (want == 0) {
            rc = VG_ELIMIT;
            break;
        }
        rc = buf_reserve(out, want);
        if (rc < 0) {
            break;
        }
        zs.next_out = out->data + out->len;
        zs.avail_out = (uInt)want;
        int zrc = deflate(&zs, in_left == 0 ? Z_FINISH : Z_NO_FLUSH);
        out->len += want - zs.avail_out;
        out->data[out->len] = 0;
        if (zrc == Z_STREAM_END) {
            break;
        }
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            rc = -EINVAL;
            break;
        }
    }
    deflateEnd(&zs);
    return rc;
}

int forward_encode_compressed(struct buf *out, struct span tag, struct span entries, uint32_t count,
                              struct span chunk)
{
    struct buf gz;
    int rc;

    if (!values_ok(entries, count, ENTRY_MAX_DEPTH, false)) {
        return -EINVAL;
    }
    buf_init(&gz, out->max);
    rc = gzip_append(entries, &gz);
    if (rc == 0) {
        rc = put_packed(out, tag, buf_span(&gz), count, true, chunk);
    }
    buf_release(&gz);
    return rc;
}

ssize_t forward_decode_ack(struct span in, struct span *chunk, uint64_t *rejected)
{
    ssize_t len = mp_value_len(in, FORWARD_ACK_MAX, 8);
    struct span val;
    struct mp_obj o;

    if (len == 0) {
        return in.n == 0 || kind_of(in.p[0]) == KIND_MAP ? 0 : -EPROTO;
    }
    if (len < 0) {
        return -EPROTO;
    }
    struct span map = { in.p, (size_t)len };
    if (kind_of(in.p[0]) != KIND_MAP || mp_map_get(map, SPAN_LIT("ack"), &val) != 1 ||
        mp_read(&val, &o) != 1 || (o.type != MP_STR && o.type != MP_BIN)) {
        return -EPROTO;
    }
    *chunk = o.v.s;
    int64_t n = 0;
    if (mp_map_get(map, SPAN_LIT("rejected"), &val) == 1 && (!mp_get_i64(val, &n) || n < 0)) {
        return -EPROTO;
    }
    if (rejected) {
        *rejected = (uint64_t)n;
    }
    return len;
}
