/* common/json.c: JSON <-> msgpack conversion (see json.h). */
#include "common/json.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/mp.h"

static int put_json(struct buf *out, json_t *j, int depth)
{
    int rc;

    if (depth > MP_MAX_DEPTH) {
        return VG_EFORMAT;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        if ((rc = mp_put_map(out, (uint32_t)json_object_size(j))) < 0) {
            return rc;
        }
        json_object_foreach(j, key, v)
        {
            if ((rc = mp_put_cstr(out, key)) < 0 || (rc = put_json(out, v, depth + 1)) < 0) {
                return rc;
            }
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        if ((rc = mp_put_array(out, (uint32_t)json_array_size(j))) < 0) {
            return rc;
        }
        json_array_foreach(j, i, v)
        {
            if ((rc = put_json(out, v, depth + 1)) < 0) {
                return rc;
            }
        }
        return 0;
    }
    case JSON_STRING:
        return mp_put_str(out, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return mp_put_i64(out, json_integer_value(j));
    case JSON_REAL:
        return mp_put_f64(out, json_real_value(j));
    case JSON_TRUE:
        return mp_put_bool(out, true);
    case JSON_FALSE:
        return mp_put_bool(out, false);
    case JSON_NULL:
    default:
        return mp_put_nil(out);
    }
}

int json_to_mp(struct span text, struct buf *out, size_t *used, struct errbuf *eb)
{
    size_t skip = 0;
    json_error_t err;

    while (skip < text.n && (text.p[skip] == ' ' || text.p[skip] == '\t' ||
                             text.p[skip] == '\n' || text.p[skip] == '\r')) {
        skip++;
    }
    if (skip == text.n) {
        if (used) {
            *used = skip;
        }
        return -ENODATA;
    }
    json_t *j = json_loadb((const char *)text.p + skip, text.n - skip,
                           JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &err);
    if (!j) {
        errbuf_set(eb, "line %d column %d: %s", err.line, err.column, err.text);
        return VG_EFORMAT;
    }
    size_t start = out->len;
    int rc = put_json(out, j, 0);
    json_decref(j);
    if (rc < 0) {
        out->len = start;
        if (rc == VG_EFORMAT) {
            errbuf_set(eb, "nesting deeper than %d levels", MP_MAX_DEPTH);
        }
        return rc;
    }
    if (used) {
        *used = skip + (size_t)err.position;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;

    if (c < 0x80) {
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
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
            size_t len = utf8_len(s.p + i, s.n - i);
            if (len == 0) {
                rc = buf_append_str(out, "\xef\xbf\xbd");
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
            if ((i && (rc = buf_append_byte(out, ',')) < 0) || (rc = to_json(in, out, depth + 1)) < 0) {
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
            /* JSON keys are strings: a non-string key is written as its JSON text. */
            if (mp_read(in, &k) == 1 && k.type == MP_STR) {
                rc = json_append_str(out, k.v.s);
            } else {
                struct buf tmp;
                *in = save;
                buf_init(&tmp, out->max);
                rc = to_json(in, &tmp, depth + 1);
                if (rc == 0) {
                    rc = json_append_str(out, buf_span(&tmp));
                }
                buf_release(&tmp);
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
