/* rules/rules_value.c: Sigma values and modifiers (sigma-rules-specification "Detection",
 * sigma-appendix-modifiers) compiled into matchers, and the matchers themselves.
 *
 * A string value is first read as a Sigma string: '*' and '?' are wildcards, '\' escapes
 * a wildcard or itself and is literal before anything else. The modifiers then apply in
 * the order written (contains/startswith/endswith add wildcards; windash, base64,
 * base64offset, utf16* transform literal text and expand one value into several), and
 * each final value is classified: no wildcard = equality, '*x' / 'x*' / '*x*' =
 * suffix / prefix / substring (memcmp / memmem on lower-cased text), anything else a
 * glob. Matching is case-insensitive (ASCII) unless `cased`; `re` is case-sensitive
 * unless `|i` (or a leading (?i)).
 *
 * Regular expressions: the spec's flavour (PCRE restricted to . ^ $ * + ? {n,m} [..]
 * (..) |) is POSIX ERE; they are translated to ERE for <regex.h> (glibc), which also
 * takes \b \B \s \S \w \W; \d \D become [0-9] [^0-9], escapes inside brackets are
 * rewritten, (?:...) becomes (...), lazy quantifiers drop their '?' (the same strings
 * match), '.' does not match a newline unless |s. Lookaround, back-references, named
 * groups and possessive quantifiers are reported unsupported. libpcre2-dev is not among
 * the project's packages; ERE covers the spec's flavour exactly.
 *
 * Pure; a compiled value is immutable (regexec is thread-safe). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ip.h"
#include "common/xalloc.h"
#include "rules/rules_int.h"

/* ---- token strings: bytes 0..255 and the two wildcards ---- */

struct tstr {
    uint16_t *t;
    size_t n;
};

static void ts_push(struct tstr *s, uint16_t c)
{
    size_t n = s->n;
    if ((n & (n - 1)) == 0) {
        s->t = xrealloc(s->t, (n ? 2 * n : 1) * sizeof(*s->t));
    }
    s->t[s->n++] = c;
}

static void ts_push_bytes(struct tstr *s, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ts_push(s, ((const uint8_t *)p)[i]);
    }
}

static bool ts_has_wild(const struct tstr *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->t[i] > 255) {
            return true;
        }
    }
    return false;
}

/* Reads a Sigma string: \* \? \\ are literal, a lone \ is literal, * and ? are wildcards. */
static void sigma_string(struct span v, struct tstr *out)
{
    for (size_t i = 0; i < v.n; i++) {
        uint8_t c = v.p[i];
        if (c == '\\' && i + 1 < v.n &&
            (v.p[i + 1] == '*' || v.p[i + 1] == '?' || v.p[i + 1] == '\\')) {
            ts_push(out, v.p[++i]);
        } else if (c == '*') {
            ts_push(out, GLOB_STAR);
        } else if (c == '?') {
            ts_push(out, GLOB_QMARK);
        } else {
            ts_push(out, c);
        }
    }
}

/* A growing list of candidate values. */
struct tlist {
    struct tstr *v;
    size_t n;
};

static void tl_add(struct tlist *l, struct tstr s)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = s;
}

static void tl_release(struct tlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].t);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* ---- transformations ---- */

static bool is_word(uint16_t c)
{
    return c <= 255 && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c >= 0x80);
}

/* windash: pySigma's \B[-/]\b: a '-' or '/' not after a word character and before one
 * becomes each of - / en dash, em dash, horizontal bar. */
static int windash(struct tlist *l, char *msg, size_t cap)
{
    static const char *const alt[] = { "-", "/", "\xe2\x80\x93", "\xe2\x80\x94", "\xe2\x80\x95" };
    struct tlist out = { 0 };

    for (size_t k = 0; k < l->n; k++) {
        const struct tstr *s = &l->v[k];
        size_t pos[8];
        size_t np = 0;
        for (size_t i = 0; i < s->n; i++) {
            uint16_t c = s->t[i];
            if ((c == '-' || c == '/') && (i == 0 || !is_word(s->t[i - 1])) && i + 1 < s->n &&
                is_word(s->t[i + 1])) {
                if (np == 5) {
                    tl_release(&out);
                    snprintf(msg, cap, "windash over more than 5 flags in one value");
                    return -ENOTSUP;
                }
                pos[np++] = i;
            }
        }
        size_t combos = 1;
        for (size_t i = 0; i < np; i++) {
            combos *= 5;
        }
        for (size_t m = 0; m < combos; m++) {
            struct tstr v = { 0 };
            size_t mm = m;
            size_t next = 0;
            for (size_t i = 0; i < s->n; i++) {
                if (next < np && pos[next] == i) {
                    const char *a = alt[mm % 5];
                    mm /= 5;
                    next++;
                    ts_push_bytes(&v, a, strlen(a));
                } else {
                    ts_push(&v, s->t[i]);
                }
            }
            tl_add(&out, v);
        }
        if (out.n > RULES_MAX_VALUES) {
            tl_release(&out);
            snprintf(msg, cap, "windash expands to more than %d values", RULES_MAX_VALUES);
            return -ENOTSUP;
        }
    }
    tl_release(l);
    *l = out;
    return 0;
}

static void b64(const uint8_t *p, size_t n, struct buf *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        if (buf_append(out, q, 4) < 0) {
            return; /* bounded by RULES_MAX_PATTERN checks of the caller */
        }
    }
}

static int need_plain(const struct tstr *s, const char *mod, char *msg, size_t cap)
{
    if (ts_has_wild(s)) {
        snprintf(msg, cap, "'%s' of a value with wildcards (apply contains after it)", mod);
        return VG_EPARSE;
    }
    return 0;
}

static void ts_bytes(const struct tstr *s, struct buf *b)
{
    buf_reset(b);
    for (size_t i = 0; i < s->n; i++) {
        if (buf_append_byte(b, (uint8_t)s->t[i]) < 0) {
            return;
        }
    }
}

/* base64 (offset = false) or base64offset (pySigma's three shifted encodings). */
static int base64_mod(struct tlist *l, bool offset, char *msg, size_t cap)
{
    static const size_t start_off[3] = { 0, 2, 3 };
    static const size_t end_cut[3] = { 0, 3, 2 }; /* end_offsets (None, -3, -2) */
    struct tlist out = { 0 };
    struct buf raw;
    struct buf enc;
    int rc = 0;

    buf_init(&raw, 2 * RULES_MAX_PATTERN);
    buf_init(&enc, 4 * RULES_MAX_PATTERN);
    for (size_t k = 0; k < l->n && rc == 0; k++) {
        if ((rc = need_plain(&l->v[k], offset ? "base64offset" : "base64", msg, cap)) < 0) {
            break;
        }
        if (l->v[k].n > RULES_MAX_PATTERN) {
            snprintf(msg, cap, "a value longer than %d bytes", RULES_MAX_PATTERN);
            rc = VG_EPARSE;
            break;
        }
        ts_bytes(&l->v[k], &raw);
        for (size_t i = 0; i < (offset ? 3u : 1u); i++) {
            struct buf in;
            buf_init(&in, 2 * RULES_MAX_PATTERN + 2);
            if (buf_append(&in, "  ", i) < 0 || buf_append(&in, raw.data, raw.len) < 0) {
                buf_release(&in);
                rc = VG_ELIMIT;
                break;
            }
            buf_reset(&enc);
            b64(in.data, in.len, &enc);
            buf_release(&in);
            size_t from = offset ? start_off[i] : 0;
            size_t cut = offset ? end_cut[(raw.len + i) % 3] : 0;
            struct tstr v = { 0 };
            if (enc.len > from + cut) {
                ts_push_bytes(&v, enc.data + from, enc.len - from - cut);
            }
            if (v.n == 0) {
                /* a value too short to have a stable middle part */
                free(v.t);
                continue;
            }
            tl_add(&out, v);
        }
    }
    buf_release(&raw);
    buf_release(&enc);
    if (rc < 0) {
        tl_release(&out);
        return rc;
    }
    if (out.n == 0) {
        tl_release(&out);
        snprintf(msg, cap, "base64offset of a value too short to encode");
        return VG_EPARSE;
    }
    tl_release(l);
    *l = out;
    return 0;
}

enum utf16_kind { U16_LE, U16_BE, U16_BOM };

static void put16(struct tstr *v, uint16_t u, bool be)
{
    ts_push(v, be ? u >> 8 : u & 0xff);
    ts_push(v, be ? u & 0xff : u >> 8);
}

static int utf16_mod(struct tlist *l, enum utf16_kind kind, char *msg, size_t cap)
{
    struct buf raw;

    buf_init(&raw, 2 * RULES_MAX_PATTERN);
    for (size_t k = 0; k < l->n; k++) {
        int rc = need_plain(&l->v[k], "utf16", msg, cap);
        if (rc == 0 && l->v[k].n > RULES_MAX_PATTERN) {
            snprintf(msg, cap, "a value longer than %d bytes", RULES_MAX_PATTERN);
            rc = VG_EPARSE;
        }
        if (rc < 0) {
            buf_release(&raw);
            return rc;
        }
        ts_bytes(&l->v[k], &raw);
        struct tstr v = { 0 };
        bool be = kind == U16_BE;
        if (kind == U16_BOM) {
            put16(&v, 0xfeff, false);
        }
        for (size_t i = 0; i < raw.len;) {
            uint32_t cp;
            size_t len = utf8_seq_len(raw.data + i, raw.len - i, &cp);
            if (len == 0) {
                free(v.t);
                buf_release(&raw);
                snprintf(msg, cap, "utf16 of a value that is not UTF-8");
                return VG_EPARSE;
            }
            if (cp >= 0x10000) {
                cp -= 0x10000;
                put16(&v, (uint16_t)(0xd800 | (cp >> 10)), be);
                put16(&v, (uint16_t)(0xdc00 | (cp & 0x3ff)), be);
            } else {
                put16(&v, (uint16_t)cp, be);
            }
            i += len;
        }
        free(l->v[k].t);
        l->v[k] = v;
    }
    buf_release(&raw);
    return 0;
}

/* ---- regular expressions: the spec's PCRE subset -> POSIX ERE ---- */

static bool ere_special(char c)
{
    return strchr(".[]()*+?{}|^$\\", c) != NULL && c != 0;
}

struct rx {
    const char *s;
    size_t n, i;
    struct buf *out;
    char *msg;
    size_t cap;
};

static int rx_unsup(struct rx *x, const char *what)
{
    snprintf(x->msg, x->cap, "regular expression uses %s (not in Sigma's regex flavour)", what);
    return -ENOTSUP;
}

static int rx_put(struct rx *x, const char *s)
{
    return buf_append_str(x->out, s) < 0 ? VG_ELIMIT : 0;
}

static int rx_putc(struct rx *x, char c)
{
    return buf_append_byte(x->out, (uint8_t)c) < 0 ? VG_ELIMIT : 0;
}

/* An escape's literal byte (\n, \t, \xHH, \. ...) at x->s[x->i] (after the backslash);
 * returns 1 with *c set, 0 if it is not a literal escape. */
static int rx_lit_escape(struct rx *x, char *c)
{
    char e = x->s[x->i];

    switch (e) {
    case 'n':
        *c = '\n';
        return 1;
    case 't':
        *c = '\t';
        return 1;
    case 'r':
        *c = '\r';
        return 1;
    case 'f':
        *c = '\f';
        return 1;
    case 'v':
        *c = '\v';
        return 1;
    case 'x': {
        int hi = x->i + 2 < x->n ? hex_digit_value((uint8_t)x->s[x->i + 1]) : -1;
        int lo = x->i + 2 < x->n ? hex_digit_value((uint8_t)x->s[x->i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
            *c = (char)(hi * 16 + lo);
            x->i += 2;
            return 1;
        }
        return 0;
    }
    default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
            return 0;
        }
        *c = e;
        return 1;
    }
}

/* A bracket expression starting at x->s[x->i] == '['. */
static int rx_bracket(struct rx *x)
{
    struct buf body;
    bool neg = false;
    bool rb = false;
    bool dash = false;
    bool caret = false;
    int rc = 0;

    buf_init(&body, RULES_MAX_PATTERN * 4);
    x->i++;
    if (x->i < x->n && x->s[x->i] == '^') {
        neg = true;
        x->i++;
    }
    bool first = true;
    for (;;) {
        if (x->i >= x->n) {
            buf_release(&body);
            snprintf(x->msg, x->cap, "regular expression has an unterminated '['");
            return VG_EPARSE;
        }
        char c = x->s[x->i];
        if (c == ']' && !first) {
            x->i++;
            break;
        }
        first = false;
        /* one atom: a literal byte (lit) or a class text (cls) */
        char lit = 0;
        const char *cls = NULL;
        char clsbuf[64];
        if (c == '[' && x->i + 1 < x->n && x->s[x->i + 1] == ':') {
            const char *end = memmem(x->s + x->i, x->n - x->i, ":]", 2);
            if (!end || (size_t)(end - (x->s + x->i)) + 2 >= sizeof(clsbuf)) {
                buf_release(&body);
                snprintf(x->msg, x->cap, "regular expression has a bad [: :] class");
                return VG_EPARSE;
            }
            size_t len = (size_t)(end - (x->s + x->i)) + 2;
            memcpy(clsbuf, x->s + x->i, len);
            clsbuf[len] = 0;
            cls = clsbuf;
            x->i += len;
        } else if (c == '\\' && x->i + 1 < x->n) {
            x->i++;
            char e = x->s[x->i];
            if (e == 'd') {
                cls = "0-9";
            } else if (e == 'w') {
                cls = "[:alnum:]_";
            } else if (e == 's') {
                cls = "[:space:]";
            } else if (e == 'D' || e == 'W' || e == 'S') {
                buf_release(&body);
                return rx_unsup(x, "a negated class escape inside [...]");
            } else if (!rx_lit_escape(x, &lit)) {
                buf_release(&body);
                return rx_unsup(x, "an escape inside [...] that POSIX lacks");
            }
            x->i++;
        } else {
            lit = c;
            x->i++;
        }
        /* a range? */
        if (!cls && x->i + 1 < x->n && x->s[x->i] == '-' && x->s[x->i + 1] != ']') {
            char hi = x->s[x->i + 1];
            x->i += 2;
            if (hi == '\\' && x->i < x->n) {
                if (!rx_lit_escape(x, &hi)) {
                    buf_release(&body);
                    return rx_unsup(x, "a class escape as a range end");
                }
                x->i++;
            } else if (hi == '[') {
                buf_release(&body);
                return rx_unsup(x, "'[' as a range end");
            }
            if (lit == ']' || lit == '^' || lit == '-' || hi == ']' || hi == '^' || hi == '-') {
                buf_release(&body);
                return rx_unsup(x, "a range ending in ] ^ or -");
            }
            char r[3] = { lit, '-', hi };
            rc = buf_append(&body, r, 3);
        } else if (cls) {
            rc = buf_append_str(&body, cls);
        } else if (lit == ']') {
            rb = true;
        } else if (lit == '-') {
            dash = true;
        } else if (lit == '^') {
            caret = true;
        } else if (lit == '[' && x->i < x->n &&
                   (x->s[x->i] == ':' || x->s[x->i] == '.' || x->s[x->i] == '=')) {
            buf_release(&body);
            return rx_unsup(x, "'[' followed by ':', '.' or '=' inside [...]");
        } else {
            rc = buf_append_byte(&body, (uint8_t)lit);
        }
        if (rc < 0) {
            buf_release(&body);
            return VG_ELIMIT;
        }
    }
    /* POSIX: ']' first, '-' last, '^' anywhere but first. */
    if (!rb && body.len == 0 && !dash && caret && !neg) {
        rc = rx_put(x, "\\^");
    } else {
        rc = rx_putc(x, '[');
        if (rc == 0 && neg) {
            rc = rx_putc(x, '^');
        }
        if (rc == 0 && rb) {
            rc = rx_putc(x, ']');
        }
        if (rc == 0 && body.len) {
            rc = buf_append(x->out, body.data, body.len) < 0 ? VG_ELIMIT : 0;
        }
        if (rc == 0 && caret) {
            rc = rx_putc(x, '^');
        }
        if (rc == 0 && dash) {
            rc = rx_putc(x, '-');
        }
        if (rc == 0) {
            rc = rx_putc(x, ']');
        }
    }
    buf_release(&body);
    return rc;
}

/* After a quantifier: a lazy '?' is dropped (the same strings match); '+' (possessive)
 * is not POSIX. */
static int rx_after_quant(struct rx *x)
{
    if (x->i < x->n && x->s[x->i] == '?') {
        x->i++;
    } else if (x->i < x->n && x->s[x->i] == '+') {
        return rx_unsup(x, "a possessive quantifier");
    }
    return 0;
}

static int rx_translate(const char *s, size_t n, bool dot_all, bool multiline, int *cflags,
                        struct buf *out, char *msg, size_t cap)
{
    struct rx x = { s, n, 0, out, msg, cap };
    int rc = 0;

    /* leading inline flags: (?i) (?s) (?m) and combinations */
    if (n >= 4 && s[0] == '(' && s[1] == '?') {
        size_t j = 2;
        while (j < n && (s[j] == 'i' || s[j] == 's' || s[j] == 'm')) {
            j++;
        }
        if (j > 2 && j < n && s[j] == ')') {
            for (size_t k = 2; k < j; k++) {
                if (s[k] == 'i') {
                    *cflags |= REG_ICASE;
                } else if (s[k] == 's') {
                    dot_all = true;
                } else {
                    multiline = true;
                }
            }
            x.i = j + 1;
        }
    }
    if (multiline) {
        *cflags |= REG_NEWLINE;
    }
    while (x.i < x.n && rc == 0) {
        char c = s[x.i];
        switch (c) {
        case '\\': {
            if (x.i + 1 >= x.n) {
                snprintf(msg, cap, "regular expression ends with a backslash");
                return VG_EPARSE;
            }
            x.i++;
            char e = s[x.i];
            char lit;
            if (e == 'd') {
                rc = rx_put(&x, "[0-9]");
            } else if (e == 'D') {
                rc = rx_put(&x, "[^0-9]");
            } else if (e == 's') {
                rc = rx_put(&x, "[[:space:]]");
            } else if (e == 'S') {
                rc = rx_put(&x, "[^[:space:]]");
            } else if (e == 'w') {
                rc = rx_put(&x, "[[:alnum:]_]");
            } else if (e == 'W') {
                rc = rx_put(&x, "[^[:alnum:]_]");
            } else if (e == 'b' || e == 'B') {
                rc = rx_put(&x, e == 'b' ? "\\b" : "\\B");
            } else if (e >= '1' && e <= '9') {
                return rx_unsup(&x, "a back-reference");
            } else if (rx_lit_escape(&x, &lit)) {
                if (ere_special(lit)) {
                    rc = rx_putc(&x, '\\');
                }
                if (rc == 0) {
                    rc = rx_putc(&x, lit);
                }
            } else {
                char what[40];
                snprintf(what, sizeof(what), "the escape '\\%c'", e);
                return rx_unsup(&x, what);
            }
            x.i++;
            break;
        }
        case '[':
            rc = rx_bracket(&x);
            break;
        case '.':
            if (dot_all) {
                rc = rx_put(&x, multiline ? "(.|\n)" : ".");
            } else {
                rc = rx_put(&x, multiline ? "." : "[^\n]");
            }
            x.i++;
            break;
        case '(':
            if (x.i + 1 < x.n && s[x.i + 1] == '?') {
                if (x.i + 2 < x.n && s[x.i + 2] == ':') {
                    rc = rx_putc(&x, '(');
                    x.i += 3;
                    break;
                }
                return rx_unsup(&x, "a (?...) group other than (?:...) (lookaround, named "
                                    "groups, inline flags past the start)");
            }
            rc = rx_putc(&x, '(');
            x.i++;
            break;
        case '*':
        case '+':
        case '?':
            rc = rx_putc(&x, c);
            x.i++;
            if (rc == 0) {
                rc = rx_after_quant(&x);
            }
            break;
        case '{': {
            /* {n}, {n,}, {n,m}: a quantifier; anything else a literal brace (PCRE) */
            size_t j = x.i + 1;
            size_t digits = 0;
            while (j < x.n && ((s[j] >= '0' && s[j] <= '9') || s[j] == ',')) {
                digits += s[j] != ',';
                j++;
            }
            if (j < x.n && s[j] == '}' && digits > 0 && s[x.i + 1] != ',') {
                rc = buf_append(out, s + x.i, j + 1 - x.i) < 0 ? VG_ELIMIT : 0;
                x.i = j + 1;
                if (rc == 0) {
                    rc = rx_after_quant(&x);
                }
            } else {
                rc = rx_put(&x, "\\{");
                x.i++;
            }
            break;
        }
        case '}':
            rc = rx_put(&x, "\\}");
            x.i++;
            break;
        default:
            rc = rx_putc(&x, c);
            x.i++;
            break;
        }
    }
    return rc;
}

static int re_compile(struct pval *v, struct span src, bool ci, bool dot_all, bool multiline,
                      char *msg, size_t cap)
{
    struct buf ere;
    int cflags = REG_EXTENDED | REG_NOSUB | (ci ? REG_ICASE : 0);
    int rc;

    if (memchr(src.p, 0, src.n)) {
        snprintf(msg, cap, "regular expression holds a NUL byte");
        return VG_EPARSE;
    }
    buf_init(&ere, 8 * RULES_MAX_PATTERN);
    rc = rx_translate((const char *)src.p, src.n, dot_all, multiline, &cflags, &ere, msg, cap);
    if (rc == VG_ELIMIT) {
        snprintf(msg, cap, "regular expression longer than %d bytes", RULES_MAX_PATTERN);
        rc = VG_EPARSE;
    }
    if (rc < 0) {
        buf_release(&ere);
        return rc;
    }
    v->re = xmalloc(sizeof(*v->re));
    int e = regcomp(v->re, buf_cstr(&ere), cflags);
    buf_release(&ere);
    if (e != 0) {
        char why[128];
        regerror(e, v->re, why, sizeof(why));
        free(v->re);
        v->re = NULL;
        snprintf(msg, cap, "bad regular expression: %s", why);
        return VG_EPARSE;
    }
    v->kind = VK_RE;
    return 0;
}

/* ---- IP ---- */

static int cidr_compile(struct pval *v, struct span s, char *msg, size_t cap)
{
    const uint8_t *slash = memchr(s.p, '/', s.n);
    bool v4;
    uint64_t bits;
    char show[96];

    ytree_show(s, show, sizeof(show));
    if (!slash) {
        /* a plain address: the network of one host */
        if (!ip_parse16(s, v->net, &v4)) {
            snprintf(msg, cap, "'%s' is not a CIDR network", show);
            return VG_EPARSE;
        }
        v->bits = 128;
    } else {
        struct span addr = { s.p, (size_t)(slash - s.p) };
        struct span b = { slash + 1, s.n - addr.n - 1 };
        if (!ip_parse16(addr, v->net, &v4) || parse_u64(b, v4 ? 32 : 128, &bits) < 0) {
            snprintf(msg, cap, "'%s' is not a CIDR network", show);
            return VG_EPARSE;
        }
        v->bits = (int)bits + (v4 ? 96 : 0);
    }
    for (int i = 0; i < 16; i++) {
        int keep = v->bits - i * 8;
        uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        v->net[i] &= mask;
    }
    v->kind = VK_CIDR;
    return 0;
}

/* ---- compiling one field entry ---- */

enum mod_bits {
    M_CONTAINS = 1 << 0,
    M_STARTS = 1 << 1,
    M_ENDS = 1 << 2,
    M_ALL = 1 << 3,
    M_RE = 1 << 4,
    M_I = 1 << 5,
    M_M = 1 << 6,
    M_S = 1 << 7,
    M_CIDR = 1 << 8,
    M_EXISTS = 1 << 9,
    M_NUM = 1 << 10,
    M_FIELDREF = 1 << 11,
    M_CASED = 1 << 12,
    M_XFORM = 1 << 13, /* windash, base64, base64offset, utf16* */
};

enum xform { X_WINDASH, X_B64, X_B64OFF, X_U16LE, X_U16BE, X_U16 };

struct mods {
    unsigned bits;
    enum numop op;
    /* the value pipeline in order: wildcard adders and transformations */
    struct {
        bool wild; /* a wildcard adder (contains/startswith/endswith) */
        unsigned which;
        enum xform x;
    } steps[16];
    size_t nsteps;
};

static int parse_mods(struct span mods, struct mods *m, char *msg, size_t cap)
{
    static const char *const unsupported[] = {
        "expand", "neq", "minute", "hour", "day", "week", "month", "year", NULL,
    };
    size_t i = 0;

    memset(m, 0, sizeof(*m));
    while (i < mods.n) {
        /* mods starts with '|' */
        size_t j = i + 1;
        while (j < mods.n && mods.p[j] != '|') {
            j++;
        }
        struct span w = { mods.p + i + 1, j - i - 1 };
        char show[64];
        ytree_show(w, show, sizeof(show));
        unsigned bit = 0;
        int xf = -1;
        int wild = 0;
        if (span_eq_str(w, "contains")) {
            bit = M_CONTAINS;
            wild = 1;
        } else if (span_eq_str(w, "startswith")) {
            bit = M_STARTS;
            wild = 1;
        } else if (span_eq_str(w, "endswith")) {
            bit = M_ENDS;
            wild = 1;
        } else if (span_eq_str(w, "all")) {
            bit = M_ALL;
        } else if (span_eq_str(w, "re")) {
            bit = M_RE;
        } else if (span_eq_str(w, "i") || span_eq_str(w, "m") || span_eq_str(w, "s")) {
            if (!(m->bits & M_RE)) {
                snprintf(msg, cap, "modifier '%s' applies to 're' only", show);
                return VG_EPARSE;
            }
            bit = w.p[0] == 'i' ? M_I : w.p[0] == 'm' ? M_M : M_S;
        } else if (span_eq_str(w, "cidr")) {
            bit = M_CIDR;
        } else if (span_eq_str(w, "exists")) {
            bit = M_EXISTS;
        } else if (span_eq_str(w, "gt") || span_eq_str(w, "gte") || span_eq_str(w, "lt") ||
                   span_eq_str(w, "lte")) {
            bit = M_NUM;
            m->op = span_eq_str(w, "gt")    ? NUM_GT
                    : span_eq_str(w, "gte") ? NUM_GTE
                    : span_eq_str(w, "lt")  ? NUM_LT
                                            : NUM_LTE;
        } else if (span_eq_str(w, "fieldref")) {
            bit = M_FIELDREF;
        } else if (span_eq_str(w, "cased")) {
            bit = M_CASED;
        } else if (span_eq_str(w, "windash")) {
            xf = X_WINDASH;
        } else if (span_eq_str(w, "base64")) {
            xf = X_B64;
        } else if (span_eq_str(w, "base64offset")) {
            xf = X_B64OFF;
        } else if (span_eq_str(w, "utf16le") || span_eq_str(w, "wide")) {
            xf = X_U16LE;
        } else if (span_eq_str(w, "utf16be")) {
            xf = X_U16BE;
        } else if (span_eq_str(w, "utf16")) {
            xf = X_U16;
        } else {
            for (const char *const *u = unsupported; *u; u++) {
                if (span_eq_str(w, *u)) {
                    snprintf(msg, cap, "modifier '%s' is not supported%s", show,
                             strcmp(*u, "expand") == 0 ? " (placeholders need a lookup source)"
                                                       : " (Sigma 2.1)");
                    return -ENOTSUP;
                }
            }
            snprintf(msg, cap, "unknown modifier '%s'", show);
            return -ENOTSUP;
        }
        if (xf >= 0) {
            bit = M_XFORM;
        }
        if (bit && (m->bits & bit) && bit != M_XFORM) {
            snprintf(msg, cap, "modifier '%s' given twice", show);
            return VG_EPARSE;
        }
        m->bits |= bit;
        if (wild || xf >= 0) {
            if (m->nsteps == VG_ARRAY_LEN(m->steps)) {
                snprintf(msg, cap, "too many modifiers");
                return VG_EPARSE;
            }
            m->steps[m->nsteps].wild = wild;
            m->steps[m->nsteps].which = bit;
            m->steps[m->nsteps].x = xf >= 0 ? (enum xform)xf : X_WINDASH;
            m->nsteps++;
        }
        i = j;
    }
    /* combinations */
    unsigned type = m->bits & (M_RE | M_CIDR | M_EXISTS | M_NUM | M_FIELDREF);
    if (type & (type - 1)) {
        snprintf(msg, cap,
                 "modifiers re, cidr, exists, gt/gte/lt/lte and fieldref exclude "
                 "each other");
        return VG_EPARSE;
    }
    unsigned pos = m->bits & (M_CONTAINS | M_STARTS | M_ENDS);
    if (type && type != M_FIELDREF && (pos || (m->bits & (M_XFORM | M_CASED)))) {
        snprintf(msg, cap,
                 "contains/startswith/endswith, cased and value transformations "
                 "do not combine with re, cidr, exists or gt/gte/lt/lte");
        return VG_EPARSE;
    }
    if (type == M_FIELDREF && (m->bits & M_XFORM)) {
        snprintf(msg, cap, "fieldref does not combine with value transformations");
        return VG_EPARSE;
    }
    return 0;
}

static void lower_bytes(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 'A' && p[i] <= 'Z') {
            p[i] = (uint8_t)(p[i] + 32);
        }
    }
}

/* Classifies token string s into v. */
static int classify(struct pval *v, const struct tstr *s, bool cased, char *msg, size_t cap)
{
    struct tstr t = { 0 };

    if (s->n > RULES_MAX_PATTERN) {
        snprintf(msg, cap, "a value longer than %d bytes", RULES_MAX_PATTERN);
        return VG_EPARSE;
    }
    /* collapse runs of '*' */
    for (size_t i = 0; i < s->n; i++) {
        if (s->t[i] == GLOB_STAR && t.n && t.t[t.n - 1] == GLOB_STAR) {
            continue;
        }
        ts_push(&t, s->t[i]);
    }
    v->cased = cased;
    size_t inner_wild = 0;
    bool lead = t.n && t.t[0] == GLOB_STAR;
    bool trail = t.n > 1 && t.t[t.n - 1] == GLOB_STAR;
    for (size_t i = lead ? 1 : 0; i < t.n - (trail ? 1 : 0); i++) {
        inner_wild += t.t[i] > 255;
    }
    if (t.n == 1 && lead) {
        v->kind = VK_ANY;
        free(t.t);
        return 0;
    }
    if (inner_wild) {
        v->kind = VK_GLOB;
        v->glob = t.t;
        v->nglob = t.n;
        if (!cased) {
            for (size_t i = 0; i < t.n; i++) {
                if (t.t[i] >= 'A' && t.t[i] <= 'Z') {
                    t.t[i] = (uint16_t)(t.t[i] + 32);
                }
            }
        }
        return 0;
    }
    size_t from = lead ? 1 : 0;
    size_t to = t.n - (trail ? 1 : 0);
    v->n = to - from;
    v->s = xmalloc(v->n + 1);
    for (size_t i = from; i < to; i++) {
        v->s[i - from] = (uint8_t)t.t[i];
    }
    v->s[v->n] = 0;
    if (!cased) {
        lower_bytes(v->s, v->n);
    }
    v->kind = lead && trail ? VK_CONTAINS : lead ? VK_SUFFIX : trail ? VK_PREFIX : VK_EQ;
    free(t.t);
    return 0;
}

static void pval_release(struct pval *v)
{
    free(v->s);
    free(v->glob);
    if (v->re) {
        regfree(v->re);
        free(v->re);
    }
    memset(v, 0, sizeof(*v));
}

void rules__field_release(struct pfield *f)
{
    for (size_t i = 0; i < f->nvals; i++) {
        pval_release(&f->vals[i]);
    }
    free(f->vals);
    free(f->name);
    free(f->lw_idx);
    free(f->lw_mask);
    memset(f, 0, sizeof(*f));
}

static void add_val(struct pfield *f, const struct pval *v)
{
    size_t n = f->nvals;
    if ((n & (n - 1)) == 0) {
        f->vals = xrealloc(f->vals, (n ? 2 * n : 1) * sizeof(*f->vals));
    }
    f->vals[f->nvals] = *v;
    f->vals[f->nvals++].lit = -1; /* rules__lit_build indexes it later */
}

/* The text a scalar stands for in string contexts: numbers canonical, booleans true/false. */
static void scalar_text(const struct ynode *n, enum yscalar k, int64_t iv, char *buf, size_t cap,
                        struct span *out)
{
    if (k == YS_INT) {
        snprintf(buf, cap, "%" PRId64, iv);
        *out = span_str(buf);
    } else if (k == YS_BOOL) {
        *out = span_str(iv ? "true" : "false");
    } else {
        *out = ynode_span(n);
    }
}

/* Compiles one scalar of the entry into f's values. */
static int compile_one(struct pfield *f, const struct mods *m, const struct ynode *n, bool keyword,
                       rules_slot_fn ref_slot, void *ctx, char *msg, size_t cap)
{
    struct pval v = { 0 };
    int64_t iv = 0;
    double fv = 0;
    enum yscalar k;
    char num[40];
    struct span text;
    int rc = 0;

    if (n->type != YN_SCALAR) {
        snprintf(msg, cap, "a field's value must be a scalar or a list of scalars");
        return VG_EPARSE;
    }
    k = ynode_scalar(n, &iv, &fv);
    unsigned b = m->bits;
    if (k == YS_NULL) {
        if (b & ~M_ALL) {
            snprintf(msg, cap, "null does not take modifiers");
            return VG_EPARSE;
        }
        v.kind = VK_NULL;
        f->has_null = true;
        add_val(f, &v);
        return 0;
    }
    if (b & M_EXISTS) {
        if (k != YS_BOOL) {
            snprintf(msg, cap, "exists needs true or false");
            return VG_EPARSE;
        }
        v.kind = VK_EXISTS;
        v.b = iv != 0;
        add_val(f, &v);
        return 0;
    }
    if (b & M_NUM) {
        if (k != YS_INT && k != YS_FLOAT) {
            snprintf(msg, cap, "gt/gte/lt/lte need a number");
            return VG_EPARSE;
        }
        v.kind = VK_NUM;
        v.op = m->op;
        v.num = k == YS_INT ? (double)iv : fv;
        if (isnan(v.num)) {
            snprintf(msg, cap, "gt/gte/lt/lte need a number");
            return VG_EPARSE;
        }
        add_val(f, &v);
        return 0;
    }
    if (k == YS_FLOAT) {
        text = ynode_span(n); /* as written: 1.50 stays 1.50 */
    } else {
        scalar_text(n, k, iv, num, sizeof(num), &text);
    }
    if (text.n > RULES_MAX_PATTERN) {
        snprintf(msg, cap, "a value longer than %d bytes", RULES_MAX_PATTERN);
        return VG_EPARSE;
    }
    if (b & M_CIDR) {
        if ((rc = cidr_compile(&v, text, msg, cap)) == 0) {
            add_val(f, &v);
        }
        return rc;
    }
    if (b & M_RE) {
        rc = re_compile(&v, text, (b & M_I) != 0, (b & M_S) != 0, (b & M_M) != 0, msg, cap);
        if (rc == 0) {
            add_val(f, &v);
        }
        return rc;
    }
    if (b & M_FIELDREF) {
        v.kind = VK_FIELDREF;
        v.ref_kind = (b & M_CONTAINS)                 ? VK_CONTAINS
                     : (b & M_STARTS) && (b & M_ENDS) ? VK_CONTAINS
                     : (b & M_STARTS)                 ? VK_PREFIX
                     : (b & M_ENDS)                   ? VK_SUFFIX
                                                      : VK_EQ;
        v.cased = (b & M_CASED) != 0;
        if ((rc = ref_slot(ctx, text, msg, cap)) < 0) {
            return rc;
        }
        v.ref_slot = rc;
        add_val(f, &v);
        return 0;
    }
    /* strings: the pipeline */
    struct tlist l = { 0 };
    struct tstr s0 = { 0 };
    if (k == YS_STR) {
        sigma_string(text, &s0);
    } else {
        ts_push_bytes(&s0, text.p, text.n); /* numbers and booleans have no wildcards */
    }
    tl_add(&l, s0);
    bool positional = (b & (M_CONTAINS | M_STARTS | M_ENDS)) != 0;
    for (size_t i = 0; i < m->nsteps && rc == 0; i++) {
        if (m->steps[i].wild) {
            for (size_t j = 0; j < l.n; j++) {
                struct tstr *t = &l.v[j];
                unsigned w = m->steps[i].which;
                if ((w & (M_CONTAINS | M_ENDS)) && !(t->n && t->t[0] == GLOB_STAR)) {
                    ts_push(t, 0);
                    memmove(t->t + 1, t->t, (t->n - 1) * sizeof(*t->t));
                    t->t[0] = GLOB_STAR;
                }
                if ((w & (M_CONTAINS | M_STARTS)) && !(t->n && t->t[t->n - 1] == GLOB_STAR)) {
                    ts_push(t, GLOB_STAR);
                }
            }
            continue;
        }
        switch (m->steps[i].x) {
        case X_WINDASH:
            rc = windash(&l, msg, cap);
            break;
        case X_B64:
        case X_B64OFF:
            rc = base64_mod(&l, m->steps[i].x == X_B64OFF, msg, cap);
            break;
        case X_U16LE:
        case X_U16BE:
        case X_U16:
            rc = utf16_mod(&l,
                           m->steps[i].x == X_U16LE   ? U16_LE
                           : m->steps[i].x == X_U16BE ? U16_BE
                                                      : U16_BOM,
                           msg, cap);
            break;
        }
    }
    /* keywords search text: a plain keyword matches anywhere in it */
    if (rc == 0 && keyword && !positional) {
        for (size_t j = 0; j < l.n; j++) {
            struct tstr *t = &l.v[j];
            if (!(t->n && t->t[0] == GLOB_STAR)) {
                ts_push(t, 0);
                memmove(t->t + 1, t->t, (t->n - 1) * sizeof(*t->t));
                t->t[0] = GLOB_STAR;
            }
            if (!(t->n && t->t[t->n - 1] == GLOB_STAR)) {
                ts_push(t, GLOB_STAR);
            }
        }
    }
    for (size_t j = 0; j < l.n && rc == 0; j++) {
        if (f->nvals >= RULES_MAX_VALUES) {
            snprintf(msg, cap, "more than %d values for one field", RULES_MAX_VALUES);
            rc = -ENOTSUP;
            break;
        }
        memset(&v, 0, sizeof(v));
        if ((rc = classify(&v, &l.v[j], (b & M_CASED) != 0, msg, cap)) == 0) {
            add_val(f, &v);
        }
    }
    tl_release(&l);
    return rc;
}

static int vcost(const struct pval *v)
{
    switch (v->kind) {
    case VK_NULL:
    case VK_EXISTS:
    case VK_ANY:
        return 1;
    case VK_EQ:
    case VK_NUM:
        return 2;
    case VK_PREFIX:
    case VK_SUFFIX:
    case VK_CIDR:
        return 3;
    case VK_CONTAINS:
        return 5;
    case VK_GLOB:
    case VK_FIELDREF:
        return 8;
    case VK_RE:
        return 20;
    default:
        return 5;
    }
}

int rules__field_cost(const struct pfield *f)
{
    int c = 0;
    for (size_t i = 0; i < f->nvals; i++) {
        c += vcost(&f->vals[i]);
    }
    return c;
}

int rules__field_compile(struct pfield *f, struct span mods, const struct ynode *value,
                         bool keyword, rules_slot_fn ref_slot, void *ctx, char *msg, size_t msgcap)
{
    struct mods m;
    int rc;

    msg[0] = 0;
    if ((rc = parse_mods(mods, &m, msg, msgcap)) < 0) {
        return rc;
    }
    if (keyword && (m.bits & (M_EXISTS | M_FIELDREF | M_CIDR | M_NUM))) {
        snprintf(msg, msgcap, "keywords take no exists, fieldref, cidr or gt/gte/lt/lte");
        return VG_EPARSE;
    }
    f->all = (m.bits & M_ALL) != 0;
    if (value->type == YN_SEQ) {
        if (value->nkids == 0) {
            snprintf(msg, msgcap, "an empty list of values");
            return VG_EPARSE;
        }
        if (m.bits & M_EXISTS) {
            snprintf(msg, msgcap, "exists takes one value, true or false");
            return VG_EPARSE;
        }
        for (size_t i = 0; i < value->nkids; i++) {
            if ((rc = compile_one(f, &m, value->kids[i], keyword, ref_slot, ctx, msg, msgcap)) <
                0) {
                return rc;
            }
        }
    } else if ((rc = compile_one(f, &m, value, keyword, ref_slot, ctx, msg, msgcap)) < 0) {
        return rc;
    }
    if (f->all && f->has_null) {
        snprintf(msg, msgcap, "'all' with a null value");
        return VG_EPARSE;
    }
    /* expansions (windash, base64offset) of one written value are alternatives even
     * under 'all': pySigma ORs an expansion; keep 'all' meaningful only for written
     * values by refusing the combination. */
    if (f->all && (m.bits & M_XFORM) && f->nvals != (value->type == YN_SEQ ? value->nkids : 1)) {
        snprintf(msg, msgcap,
                 "'all' with windash or base64offset (each value expands into "
                 "alternatives)");
        return -ENOTSUP;
    }
    f->cost = rules__field_cost(f);
    return 0;
}

/* ---- matching ---- */

static bool glob_match(const uint16_t *pat, size_t m, const uint8_t *s, size_t n)
{
    size_t i = 0;
    size_t j = 0;
    size_t star = (size_t)-1;
    size_t mark = 0;

    while (j < n) {
        if (i < m && pat[i] == GLOB_STAR) {
            star = i++;
            mark = j;
        } else if (i < m && (pat[i] == GLOB_QMARK || pat[i] == s[j])) {
            if (pat[i] == GLOB_QMARK) {
                uint32_t cp;
                size_t len = s[j] < 0x80 ? 1 : utf8_seq_len(s + j, n - j, &cp);
                j += len ? len : 1;
            } else {
                j++;
            }
            i++;
        } else if (star != (size_t)-1) {
            i = star + 1;
            uint32_t cp;
            size_t len = s[mark] < 0x80 ? 1 : utf8_seq_len(s + mark, n - mark, &cp);
            mark += len ? len : 1;
            j = mark;
        } else {
            return false;
        }
    }
    while (i < m && pat[i] == GLOB_STAR) {
        i++;
    }
    return i == m;
}

static bool text_match(enum vkind kind, const uint8_t *p, size_t pn, struct span t)
{
    switch (kind) {
    case VK_EQ:
        return t.n == pn && (pn == 0 || memcmp(t.p, p, pn) == 0);
    case VK_PREFIX:
        return t.n >= pn && (pn == 0 || memcmp(t.p, p, pn) == 0);
    case VK_SUFFIX:
        return t.n >= pn && (pn == 0 || memcmp(t.p + t.n - pn, p, pn) == 0);
    case VK_CONTAINS:
        return pn == 0 || (t.n >= pn && memmem(t.p, t.n, p, pn) != NULL);
    default:
        return false;
    }
}

bool rules__pval_match(const struct pval *v, const struct sval *x)
{
    if (x->type == SV_NULL || x->type == SV_OTHER) {
        return false;
    }
    switch (v->kind) {
    case VK_ANY:
        return true;
    case VK_EQ:
    case VK_PREFIX:
    case VK_SUFFIX:
    case VK_CONTAINS:
        return text_match(v->kind, v->s, v->n, v->cased ? x->s : x->low);
    case VK_GLOB: {
        struct span t = v->cased ? x->s : x->low;
        return glob_match(v->glob, v->nglob, t.p, t.n);
    }
    case VK_RE: {
        regmatch_t m[1];
        m[0].rm_so = 0;
        m[0].rm_eo = (regoff_t)x->s.n;
        return regexec(v->re, x->s.n ? (const char *)x->s.p : "", 1, m, REG_STARTEND) == 0;
    }
    case VK_CIDR: {
        uint8_t ip[16];
        return ip_parse16(x->s, ip, NULL) && ip_in_net(ip, v->net, v->bits);
    }
    case VK_NUM:
        if (!x->has_num) {
            return false;
        }
        switch (v->op) {
        case NUM_GT:
            return x->num > v->num;
        case NUM_GTE:
            return x->num >= v->num;
        case NUM_LT:
            return x->num < v->num;
        case NUM_LTE:
            return x->num <= v->num;
        }
        return false;
    default:
        return false;
    }
}

bool rules__fieldref_match(const struct pval *v, const struct sval *x, const struct sval *refs,
                           size_t nrefs)
{
    if (x->type == SV_NULL || x->type == SV_OTHER) {
        return false;
    }
    struct span t = v->cased ? x->s : x->low;
    for (size_t i = 0; i < nrefs; i++) {
        const struct sval *r = &refs[i];
        if (r->type == SV_NULL || r->type == SV_OTHER) {
            continue;
        }
        struct span p = v->cased ? r->s : r->low;
        if (text_match(v->ref_kind, p.p, p.n, t)) {
            return true;
        }
    }
    return false;
}
