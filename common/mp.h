/* common/mp.h: bounded msgpack. The only module that includes <msgpack.h>.
 *
 * Reading: msgpack-c's unpacker allocates what a header claims (five bytes can claim
 * 4 billion items), so every decoder reads through the cursor below instead. It never
 * allocates, and every count and length is checked against the bytes present before
 * anything is trusted. Values are returned as spans into the caller's bytes.
 *
 * Writing: msgpack-c's packer, appending to a struct buf (its max bounds the output). */
#ifndef VG_COMMON_MP_H
#define VG_COMMON_MP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/span.h"
#include "common/vg.h"

enum mp_type {
    MP_NIL,
    MP_BOOL,
    MP_INT,   /* negative integer: v.i */
    MP_UINT,  /* non-negative integer: v.u */
    MP_FLOAT, /* float32 or float64: v.f */
    MP_STR,   /* v.s: the bytes (not NUL-terminated) */
    MP_BIN,   /* v.s */
    MP_ARRAY, /* v.count elements follow */
    MP_MAP,   /* v.count key/value pairs follow */
    MP_EXT,   /* v.s: the data; ext_type */
};

struct mp_obj {
    enum mp_type type;
    int8_t ext_type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        struct span s;
        uint32_t count;
    } v;
};

/* Reads one value's header from the front of *in and advances past it. For str, bin
 * and ext the payload is consumed too; for array and map only the header, and the
 * elements follow. Returns 1, 0 when *in ends inside the header or payload (need
 * more; *in is unchanged), or -EPROTO for a byte that starts no msgpack value
 * (0xc1).
 * Inline for the forms most values take (positive fixint, fixstr, str8, fixmap,
 * fixarray): every record on ingest and every block a query reads goes through here
 * several times per field; mp__read_any reads every form. */
int mp__read_any(struct span *in, struct mp_obj *o);
static inline int mp_read(struct span *in, struct mp_obj *o)
{
    if (in->n >= 2) {
        uint8_t c = in->p[0];
        size_t len;
        size_t h = 1;
        if (c <= 0x7f) {
            o->type = MP_UINT;
            o->ext_type = 0;
            o->v.u = c;
            in->p++;
            in->n--;
            return 1;
        }
        if (c <= 0x9f) { /* fixmap 0x80..0x8f, fixarray 0x90..0x9f */
            o->type = c <= 0x8f ? MP_MAP : MP_ARRAY;
            o->ext_type = 0;
            o->v.count = c & 0x0f;
            in->p++;
            in->n--;
            return 1;
        }
        if (c <= 0xbf) { /* fixstr */
            len = c & 0x1f;
        } else if (c == 0xd9) { /* str 8 */
            len = in->p[1];
            h = 2;
        } else {
            return mp__read_any(in, o);
        }
        if (in->n - h < len) {
            return 0;
        }
        o->type = MP_STR;
        o->ext_type = 0;
        o->v.s = (struct span){ in->p + h, len };
        in->p += h + len;
        in->n -= h + len;
        return 1;
    }
    return mp__read_any(in, o);
}

/* The length of the complete value at the front of in. Checks nesting depth against
 * max_depth and that no claimed count or length could fit in fewer bytes than
 * max_bytes allows. Returns the length (> 0), 0 when in holds only a prefix of a value
 * that could still be valid, -EPROTO for malformed bytes or nesting deeper than
 * max_depth, VG_ELIMIT when the value is or must become longer than max_bytes. */
ssize_t mp_value_len(struct span in, size_t max_bytes, int max_depth);

/* Skips one complete value at the front of *in. Returns 0, or -EPROTO if *in ends
 * first or holds malformed bytes. Depth is bounded by MP_MAX_DEPTH. */
int mp_skip(struct span *in);
#define MP_MAX_DEPTH 64

/* Takes the complete value at the front of *in as a span (advancing past it). */
int mp_take(struct span *in, struct span *value);

/* Looks up key in the map value at the front of map (exact, case-sensitive). Returns
 * 1 and sets *value to the value's bytes, 0 when the map has no such key or map is not
 * a map, -EPROTO for malformed bytes. */
int mp_map_get(struct span map, struct span key, struct span *value);

/* Conversions of one complete value (as from mp_map_get). Each returns true when the
 * value has that type; strings are returned as spans into the value. */
bool mp_get_str(struct span value, struct span *s);
bool mp_get_i64(struct span value, int64_t *out); /* int or uint within int64 */
bool mp_get_f64(struct span value, double *out);  /* float or integer */
bool mp_get_bool(struct span value, bool *out);
bool mp_is_nil(struct span value);

/* Fluentd EventTime: ext type 0, 8 bytes (seconds, nanoseconds, big-endian). */
#define MP_EXT_EVENTTIME 0

/* Writing into b. Each returns 0, or VG_ELIMIT when b->max would be exceeded (b may
 * then hold a partial value: callers discard it). */
int mp_put_nil(struct buf *b) VG_MUST_USE;
int mp_put_bool(struct buf *b, bool v) VG_MUST_USE;
int mp_put_i64(struct buf *b, int64_t v) VG_MUST_USE;
int mp_put_u64(struct buf *b, uint64_t v) VG_MUST_USE;
int mp_put_f64(struct buf *b, double v) VG_MUST_USE;
int mp_put_str(struct buf *b, const void *p, size_t n) VG_MUST_USE;
int mp_put_cstr(struct buf *b, const char *s) VG_MUST_USE;
int mp_put_bin(struct buf *b, const void *p, size_t n) VG_MUST_USE;
int mp_put_array(struct buf *b, uint32_t n) VG_MUST_USE;
int mp_put_map(struct buf *b, uint32_t n) VG_MUST_USE;
int mp_put_ext(struct buf *b, int8_t type, const void *p, size_t n) VG_MUST_USE;
int mp_put_eventtime(struct buf *b, int64_t ns) VG_MUST_USE;
/* Appends pre-encoded msgpack bytes (one or more complete values). */
int mp_put_raw(struct buf *b, struct span value) VG_MUST_USE;

#endif
