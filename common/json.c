/* common/json.c: JSON <-> msgpack conversion (see json.h). */
#include "common/json.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "common/mp.h"
#include "common/xalloc.h"

/* JSON -> msgpack with yajl's event (SAX) parser: each value is packed as it is
 * lexed, with no document tree. A container's element count is unknown until it
 * closes, so its header is written as a one-byte fixmap/fixarray and, when it closes
 * with 16 elements or more, widened to map16/32 or array16/32 (the bytes after it move
 * right by 2 or 4), which keeps the output identical to a packer that knew the count.
 * Most containers hold fewer than 16: nothing moves. */
struct j2m {
    struct buf *out;
    struct {
        size_t hdr;
        uint32_t count;
        bool map;
    } st[MP_MAX_DEPTH];
    int depth;
    int err;   /* VG_ELIMIT or VG_EFORMAT set by a callback */
    bool done; /* the first complete value has been packed */
    const char *why;
};

static int j2m_fail(struct j2m *j, int rc, const char *why)
{
    j->err = rc;
    j->why = why;
    return 0; /* cancels the parse */
}

/* After a complete value: count it in its array, or stop at the top level. */
static int j2m_value(struct j2m *j, int rc)
{
    if (rc < 0) {
        return j2m_fail(j, VG_ELIMIT, NULL);
    }
    if (j->depth == 0) {
        j->done = true;
        return 0;
    }
    if (!j->st[j->depth - 1].map) {
        j->st[j->depth - 1].count++;
    }
    return 1;
}

static int on_null(void *ctx)
{
    struct j2m *j = ctx;
    return j2m_value(j, mp_put_nil(j->out));
}

static int on_bool(void *ctx, int b)
{
    struct j2m *j = ctx;
    return j2m_value(j, mp_put_bool(j->out, b != 0));
}

/* Numbers arrive as text: integers stay exact int64 (or uint64), others are doubles. */
static int on_number(void *ctx, const char *s, size_t n)
{
    struct j2m *j = ctx;
    struct span sp = { (const uint8_t *)s, n };
    int64_t i;
    uint64_t u;
    char tmp[64];

    bool integral = true;
    for (size_t k = 0; k < n; k++) { /* numbers are short: one pass, no calls */
        if (s[k] == '.' || s[k] == 'e' || s[k] == 'E') {
            integral = false;
            break;
        }
    }
    if (integral) {
        if (parse_i64(sp, INT64_MIN, INT64_MAX, &i) == 0) {
            return j2m_value(j, mp_put_i64(j->out, i));
        }
        if (parse_u64(sp, UINT64_MAX, &u) == 0) {
            return j2m_value(j, mp_put_u64(j->out, u));
        }
    }
    if (n >= sizeof(tmp)) {
        return j2m_fail(j, VG_EFORMAT, "number longer than 63 characters");
    }
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return j2m_value(j, mp_put_f64(j->out, strtod(tmp, NULL)));
}

/* A string as msgpack, with each code point U+DC80..U+DCFF (yajl writes a "\udcXX"
 * escape as its 3-byte UTF-8 form ED B2/B3 xx) turned back into the byte 0x80..0xFF it
 * stands for (mp_to_json writes invalid UTF-8 bytes that way), so that what vigil prints
 * reads back byte for byte. */
static int put_str(struct buf *out, const unsigned char *s, size_t n)
{
    const unsigned char *p = memchr(s, 0xed, n);

    if (!p) {
        return mp_put_str(out, s, n);
    }
    uint8_t small[1024] = {0}; /* zeroed: gcc -O2 cannot see that k > 0 covers what is read */
    uint8_t *t = n <= sizeof(small) ? small : xmalloc(n);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == 0xed && i + 2 < n && (s[i + 1] == 0xb2 || s[i + 1] == 0xb3) &&
            (s[i + 2] & 0xc0) == 0x80) {
            t[k++] = (uint8_t)(0x80 | (s[i + 1] & 1) << 6 | (s[i + 2] & 0x3f));
            i += 3;
        } else {
            t[k++] = s[i++];
        }
    }
    int rc = mp_put_str(out, t, k);
    if (t != small) {
        free(t);
    }
    return rc;
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    struct j2m *j = ctx;
    return j2m_value(j, put_str(j->out, s, n));
}

static int on_key(void *ctx, const unsigned char *s, size_t n)
{
    struct j2m *j = ctx;
    j->st[j->depth - 1].count++;
    return put_str(j->out, s, n) < 0 ? j2m_fail(j, VG_ELIMIT, NULL) : 1;
}

static int j2m_open(struct j2m *j, bool map)
{
    const uint8_t h = map ? 0x80 : 0x90; /* the count is set on close */

    if (j->depth >= MP_MAX_DEPTH) {
        return j2m_fail(j, VG_EFORMAT, "nesting deeper than 64 levels");
    }
    if (j->depth > 0 && !j->st[j->depth - 1].map) {
        j->st[j->depth - 1].count++;
    }
    j->st[j->depth].hdr = j->out->len;
    j->st[j->depth].count = 0;
    j->st[j->depth].map = map;
    if (buf_append(j->out, &h, 1) < 0) {
        return j2m_fail(j, VG_ELIMIT, NULL);
    }
    j->depth++;
    return 1;
}

static int on_close(void *ctx)
{
    struct j2m *j = ctx;
    j->depth--;
    uint32_t n = j->st[j->depth].count;
    bool map = j->st[j->depth].map;
    size_t hdr = j->st[j->depth].hdr;

    if (n < 16) {
        j->out->data[hdr] = (uint8_t)((map ? 0x80 : 0x90) | n);
    } else {
        size_t grow = n <= UINT16_MAX ? 2 : 4;
        if (buf_reserve(j->out, grow) < 0) {
            return j2m_fail(j, VG_ELIMIT, NULL);
        }
        uint8_t *p = j->out->data + hdr;
        memmove(p + 1 + grow, p + 1, j->out->len - hdr - 1);
        if (grow == 2) {
            p[0] = map ? 0xde : 0xdc;
            p[1] = (uint8_t)(n >> 8);
            p[2] = (uint8_t)n;
        } else {
            p[0] = map ? 0xdf : 0xdd;
            p[1] = (uint8_t)(n >> 24);
            p[2] = (uint8_t)(n >> 16);
            p[3] = (uint8_t)(n >> 8);
            p[4] = (uint8_t)n;
        }
        j->out->len += grow;
        j->out->data[j->out->len] = 0;
    }
    if (j->depth == 0) {
        j->done = true;
        return 0;
    }
    return 1;
}

static int on_start_map(void *ctx)
{
    return j2m_open(ctx, true);
}

static int on_start_array(void *ctx)
{
    return j2m_open(ctx, false);
}

static const yajl_callbacks j2m_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_close,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_close,
};

/* The place of byte offset off in text (line and column 1-based). */
static struct errpos line_col(struct span text, size_t off)
{
    struct errpos pos = { 1, 1, false };

    for (size_t i = 0; i < off && i < text.n; i++) {
        if (text.p[i] == '\n') {
            pos.line++;
            pos.column = 1;
        } else {
            pos.column++;
        }
    }
    return pos;
}

/* yajl's categories, which callers that word their own reply leave out. */
static size_t yajl_kind_len(const char *msg)
{
    static const char *const kinds[] = { "parse error: ", "lexical error: " };

    for (size_t i = 0; i < VG_ARRAY_LEN(kinds); i++) {
        size_t n = strlen(kinds[i]);
        if (strncmp(msg, kinds[i], n) == 0) {
            return n;
        }
    }
    return 0;
}

int json_to_mp(struct span text, struct buf *out, size_t *used, struct errbuf *eb)
{
    size_t skip = 0;

    while (skip < text.n && (text.p[skip] == ' ' || text.p[skip] == '\t' || text.p[skip] == '\n' ||
                             text.p[skip] == '\r')) {
        skip++;
    }
    if (skip == text.n) {
        if (used) {
            *used = skip;
        }
        return -ENODATA;
    }
    struct span doc = { text.p + skip, text.n - skip };
    struct j2m j = { .out = out };
    size_t start = out->len;
    yajl_handle h = yajl_alloc(&j2m_callbacks, NULL, &j);

    if (!h) {
        return -ENOMEM;
    }
    /* Several values may follow each other (NDJSON, concatenated documents): the
     * callbacks stop the parse after the first. */
    yajl_config(h, yajl_allow_multiple_values, 1);
    /* Strings are kept byte for byte, valid UTF-8 or not (schemas/event.yaml: strings). */
    yajl_config(h, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(h, doc.p, doc.n);
    size_t consumed = yajl_get_bytes_consumed(h);
    bool completing = false;
    if (st == yajl_status_ok && !j.done) {
        /* A number at the very end of the text completes here; a document cut off
         * ("premature EOF") fails here, at the end of the text. */
        st = yajl_complete_parse(h);
        consumed = doc.n;
        completing = true;
    }
    if (!j.done) {
        int rc = j.err ? j.err : VG_EFORMAT;
        struct errpos pos = line_col(text, skip + consumed);
        if (rc == VG_EFORMAT) {
            char why[160];
            size_t kind = 0;
            if (j.why) {
                snprintf(why, sizeof(why), "%s", j.why);
            } else {
                unsigned char *msg = yajl_get_error(h, 0, doc.p, doc.n);
                snprintf(why, sizeof(why), "%s", msg ? (const char *)msg : "not JSON");
                yajl_free_error(h, msg);
                why[strcspn(why, "\n")] = 0;
                kind = yajl_kind_len(why);
                /* yajl failing only once told the text is over: the value was cut off. */
                pos.at_end = completing;
            }
            char kind_s[32];
            snprintf(kind_s, sizeof(kind_s), "%.*s", (int)kind, why);
            errbuf_set_at(eb, pos, kind_s, why + kind);
        }
        yajl_free(h);
        out->len = start;
        if (out->cap) {
            out->data[start] = 0;
        }
        return rc;
    }
    yajl_free(h);
    if (used) {
        *used = skip + (consumed < doc.n ? consumed : doc.n);
    }
    return 0;
}

int json_append_str(struct buf *out, struct span s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = buf_reserve(out, s.n + 2);
    size_t i = 0;

    if (rc < 0 || (rc = buf_append_byte(out, '"')) < 0) {
        return rc;
    }
    while (i < s.n) {
        /* Copy the longest run that needs no escaping in one append. */
        size_t j = i;
        while (j < s.n && s.p[j] >= 0x20 && s.p[j] < 0x80 && s.p[j] != '"' && s.p[j] != '\\') {
            j++;
        }
        if (j > i && (rc = buf_append(out, s.p + i, j - i)) < 0) {
            return rc;
        }
        i = j;
        if (i >= s.n) {
            break;
        }
        uint8_t c = s.p[i];
        if (c >= 0x80) {
            size_t len = utf8_seq_len(s.p + i, s.n - i, NULL);
            if (len == 0) {
                /* Not UTF-8: the byte as a lone low surrogate (Python's surrogateescape),
                 * which json_to_mp reads back as the byte. */
                char esc[7] = { '\\', 'u', 'd', 'c', hex[c >> 4], hex[c & 15], 0 };
                rc = buf_append(out, esc, 6);
                i++;
            } else {
                rc = buf_append(out, s.p + i, len);
                i += len;
            }
        } else {
            char esc[6] = { '\\', 0, 0, 0, 0, 0 };
            size_t n = 2;
            switch (c) {
            case '"':
                esc[1] = '"';
                break;
            case '\\':
                esc[1] = '\\';
                break;
            case '\n':
                esc[1] = 'n';
                break;
            case '\r':
                esc[1] = 'r';
                break;
            case '\t':
                esc[1] = 't';
                break;
            default:
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                n = 6;
            }
            rc = buf_append(out, esc, n);
            i++;
        }
        if (rc < 0) {
            return rc;
        }
    }
    return buf_append_byte(out, '"');
}

static int append_b64(struct buf *out, struct span s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int rc = buf_append_byte(out, '"');
    for (size_t i = 0; i < s.n && rc == 0; i += 3) {
        uint32_t v = (uint32_t)s.p[i] << 16;
        size_t rem = s.n - i;
        if (rem > 1) {
            v |= (uint32_t)s.p[i + 1] << 8;
        }
        if (rem > 2) {
            v |= s.p[i + 2];
        }
        char q[4] = { tbl[v >> 18 & 63], tbl[v >> 12 & 63], rem > 1 ? tbl[v >> 6 & 63] : '=',
                      rem > 2 ? tbl[v & 63] : '=' };
        rc = buf_append(out, q, 4);
    }
    return rc < 0 ? rc : buf_append_byte(out, '"');
}

static int to_json(struct span *in, struct buf *out, int depth)
{
    struct mp_obj o;
    int rc;

    if (depth > MP_MAX_DEPTH || mp_read(in, &o) != 1) {
        return VG_ECORRUPT;
    }
    switch (o.type) {
    case MP_NIL:
        return buf_append_str(out, "null");
    case MP_BOOL:
        return buf_append_str(out, o.v.b ? "true" : "false");
    case MP_INT:
        return buf_appendf(out, "%lld", (long long)o.v.i);
    case MP_UINT:
        return buf_appendf(out, "%llu", (unsigned long long)o.v.u);
    case MP_FLOAT:
        if (!isfinite(o.v.f)) {
            return buf_append_str(out, "null");
        }
        return buf_appendf(out, "%.17g", o.v.f);
    case MP_STR:
        return json_append_str(out, o.v.s);
    case MP_BIN:
        return append_b64(out, o.v.s);
    case MP_EXT:
        if ((rc = buf_appendf(out, "{\"ext\":%d,\"data\":", o.ext_type)) < 0 ||
            (rc = append_b64(out, o.v.s)) < 0) {
            return rc;
        }
        return buf_append_byte(out, '}');
    case MP_ARRAY:
        if ((rc = buf_append_byte(out, '[')) < 0) {
            return rc;
        }
        for (uint32_t i = 0; i < o.v.count; i++) {
            if ((i && (rc = buf_append_byte(out, ',')) < 0) ||
                (rc = to_json(in, out, depth + 1)) < 0) {
                return rc;
            }
        }
        return buf_append_byte(out, ']');
    case MP_MAP:
        if ((rc = buf_append_byte(out, '{')) < 0) {
            return rc;
        }
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct span save = *in;
            struct mp_obj k;
            if (i && (rc = buf_append_byte(out, ',')) < 0) {
                return rc;
            }
            /* JSON keys are strings. A scalar key is written as its JSON text in a
             * string; a container key (legal msgpack, never JSON) as "msgpack:" and the
             * base64 of its bytes, so the output stays linear in the input. */
            if (mp_read(in, &k) == 1 && k.type == MP_STR) {
                rc = json_append_str(out, k.v.s);
            } else if (k.type != MP_ARRAY && k.type != MP_MAP) {
                struct buf tmp;
                *in = save;
                buf_init(&tmp, 4096);
                rc = to_json(in, &tmp, depth + 1);
                if (rc == 0) {
                    rc = json_append_str(out, buf_span(&tmp));
                }
                buf_release(&tmp);
            } else {
                struct span key;
                *in = save;
                if (mp_take(in, &key) < 0) {
                    return VG_ECORRUPT;
                }
                if ((rc = buf_append_str(out, "\"msgpack:")) == 0) {
                    size_t at = out->len;
                    rc = append_b64(out, key);
                    if (rc == 0) {
                        /* append_b64 quotes; drop its opening quote. */
                        memmove(out->data + at, out->data + at + 1, out->len - at - 1);
                        out->len--;
                        out->data[out->len] = 0;
                    }
                }
            }
            if (rc < 0 || (rc = buf_append_byte(out, ':')) < 0 ||
                (rc = to_json(in, out, depth + 1)) < 0) {
                return rc;
            }
        }
        return buf_append_byte(out, '}');
    }
    return VG_ECORRUPT;
}

int mp_to_json(struct span value, struct buf *out)
{
    size_t start = out->len;
    int rc = to_json(&value, out, 0);
    if (rc < 0) {
        out->len = start;
        if (out->cap) {
            out->data[start] = 0;
        }
    }
    return rc;
}
