/* query/filter.c: the FILTER language (see filter.h): a lexer and recursive-descent
 * parser into an immutable tree, its matcher over struct rec, and helpers for the CLI.
 *
 * Grammar (NOT binds tighter than AND, AND tighter than OR; adjacency means AND):
 *     or      := and { OR and }
 *     and     := not { [AND] not }
 *     not     := NOT not | primary
 *     primary := '(' or ')' | term | text
 *
 * The lexer works on demand, one token ahead, so the first error reported is the
 * leftmost one. Every column in a message counts characters (UTF-8 code points, an
 * invalid byte as one) from 1, so filter_error_caret() can put the caret under it.
 * Bounds: FILTER_MAX_TEXT bytes of text, FILTER_MAX_TERMS terms and FILTER_MAX_DEPTH
 * levels of parentheses and NOT, which also bound the matcher's recursion. AND and OR
 * nodes are n-ary: chains are flattened as they are built.
 *
 * Matching reads stored msgpack (a record's raw value) only through common/mp.h and
 * treats malformed bytes as "no match". Pure; a parsed filter may be shared across
 * threads. */
#include "query/filter.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/ip.h"
#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "schemas/raw_path.h"

/* ---- the tree ---- */

enum fnode_kind { FN_ALL, FN_AND, FN_OR, FN_NOT, FN_CMP, FN_TEXT };

enum fop { FOP_EQ, FOP_HAS, FOP_GT, FOP_GE, FOP_LT, FOP_LE };

struct fcmp {
    int field;        /* enum vg_field; VG_F_RAW with a path */
    enum fop op;      /* the positive operator; neg inverts the result */
    bool neg;         /* != or !~: also true when the field is absent */
    bool prefix;      /* =val* (val holds the part before the star) */
    bool cidr;        /* IP field = network/bits */
    bool is_ip;       /* IP field = address: compared as addresses */
    bool ip_v4;       /* the filter's address was IPv4 (for describe) */
    int bits;         /* CIDR prefix length in the 128-bit form */
    uint8_t ip[16];   /* address or masked network, IPv4 as ::ffff:a.b.c.d */
    struct span path; /* raw: the path after "raw." */
    struct span val;  /* the unescaped value */
    int64_t num;      /* time (ns), dst_port, raw integer */
    uint64_t unum;    /* seq */
    uint64_t unum_hi; /* seq=N..M: M (range set), unum being N */
    bool range;
    double fnum; /* raw number */
    bool has_int, has_float, has_bool, bval, is_null;
    int sev; /* severity rank for EQ and comparisons */
};

struct fnode {
    enum fnode_kind kind;
    size_t n;            /* children of AND, OR (>= 2) and NOT (1) */
    struct fnode **kids; /* owned */
    struct fcmp cmp;     /* FN_CMP; FN_TEXT uses cmp.val */
    char *bytes;         /* owned storage behind cmp.path and cmp.val */
};

struct filter {
    struct fnode *root;
};

static struct fnode *node_new(enum fnode_kind kind)
{
    struct fnode *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    return n;
}

static void node_free(struct fnode *n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        node_free(n->kids[i]);
    }
    free(n->kids);
    free(n->bytes);
    free(n);
}

static void node_add_kid(struct fnode *n, struct fnode *kid)
{
    n->kids = xrealloc(n->kids, (n->n + 1) * sizeof(*n->kids));
    n->kids[n->n++] = kid;
}

/* Takes ownership of a and b: returns kind(a, b), splicing the children of a or b
 * when they are already of that kind. */
static struct fnode *node_join(enum fnode_kind kind, struct fnode *a, struct fnode *b)
{
    struct fnode *n = a;

    if (a->kind != kind) {
        n = node_new(kind);
        node_add_kid(n, a);
    }
    if (b->kind == kind) {
        for (size_t i = 0; i < b->n; i++) {
            node_add_kid(n, b->kids[i]);
        }
        b->n = 0;
        node_free(b);
    } else {
        node_add_kid(n, b);
    }
    return n;
}

/* ---- text helpers ---- */

/* The 1-based character column of byte offset off in text. */
static int column_of(const char *text, size_t off)
{
    const uint8_t *p = (const uint8_t *)text;
    size_t i = 0;
    int col = 1;

    while (i < off) {
        size_t l = utf8_seq_len(p + i, off - i, NULL);
        i += l ? l : 1;
        col++;
    }
    return col;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Writes s for an error message: quoted by the caller, non-printable bytes as \xNN,
 * at most 48 input bytes. */
static const char *show(char *out, size_t cap, struct span s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < s.n; i++) {
        uint8_t c = s.p[i];
        if (i == 48) {
            if (o + 4 < cap) {
                memcpy(out + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (c >= 0x20 && c < 0x7f) {
            if (o + 2 >= cap) {
                break;
            }
            out[o++] = (char)c;
        } else {
            if (o + 5 >= cap) {
                break;
            }
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
    return out;
}

static bool starts_with_nocase(struct span s, struct span prefix)
{
    return s.n >= prefix.n && span_eq_nocase((struct span){ s.p, prefix.n }, prefix);
}

static int span_cmp(struct span a, struct span b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;

    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    return a.n < b.n ? -1 : a.n > b.n;
}

static bool op_holds(enum fop op, int c)
{
    switch (op) {
    case FOP_EQ:
        return c == 0;
    case FOP_GT:
        return c > 0;
    case FOP_GE:
        return c >= 0;
    case FOP_LT:
        return c < 0;
    case FOP_LE:
        return c <= 0;
    case FOP_HAS:
        break;
    }
    return false;
}

/* ---- the parser ---- */

enum tok_kind { TK_END, TK_LPAREN, TK_RPAREN, TK_AND, TK_OR, TK_NOT, TK_TERM, TK_TEXT };

struct token {
    enum tok_kind kind;
    size_t off;       /* byte offset where the token starts */
    size_t len;       /* bytes of source text (for operator keywords) */
    struct span name; /* TK_TERM: the field name, unescaped (in name_buf) */
    size_t op_off;
    size_t op_len;
    enum fop op;
    bool neg;
    size_t val_off;
    struct span val; /* TK_TERM, TK_TEXT: unescaped (in val_buf), NUL-terminated */
    bool prefix;     /* TK_TERM: an unescaped trailing '*' after = or != */
};

struct parser {
    const char *text;
    size_t len;
    size_t pos;
    int64_t now_ns;
    struct token tok;
    char *name_buf; /* len + 1 bytes each: unescaping never grows */
    char *val_buf;
    int terms;
    int err_column;
    struct errbuf *eb;
};

static int perr(struct parser *p, size_t off, const char *fmt, ...) VG_PRINTF(3, 4);

static int perr(struct parser *p, size_t off, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    p->err_column = column_of(p->text, off);
    errbuf_set(p->eb, "filter: column %d: %s", p->err_column, msg);
    return VG_EPARSE;
}

/* Length of the operator at text[i], or 0. */
static size_t op_at(const char *t, size_t i, size_t len, enum fop *op, bool *neg)
{
    char c = t[i];
    char d = i + 1 < len ? t[i + 1] : 0;

    *neg = false;
    switch (c) {
    case '=':
        *op = FOP_EQ;
        return 1;
    case '~':
        *op = FOP_HAS;
        return 1;
    case '!':
        if (d == '=' || d == '~') {
            *op = d == '=' ? FOP_EQ : FOP_HAS;
            *neg = true;
            return 2;
        }
        return 0;
    case '>':
        *op = d == '=' ? FOP_GE : FOP_GT;
        return d == '=' ? 2 : 1;
    case '<':
        *op = d == '=' ? FOP_LE : FOP_LT;
        return d == '=' ? 2 : 1;
    default:
        return 0;
    }
}

static char unescape(char c)
{
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case 'r':
        return '\r';
    default:
        return c;
    }
}

enum scan_mode {
    SCAN_WORD,  /* a field name or bare word: stops at space, parenthesis, operator */
    SCAN_VALUE, /* an unquoted value: stops at space or an unmatched ')' */
};

/* Scans an unquoted run from p->pos into dst (unescaped, NUL-terminated), advancing
 * p->pos. *n gets its length, *last_escaped whether its last byte came from an escape,
 * *any_escaped whether any did. */
static int scan_plain(struct parser *p, enum scan_mode mode, char *dst, size_t *n,
                      bool *last_escaped, bool *any_escaped)
{
    const char *t = p->text;
    size_t o = 0;
    int depth = 0;

    *last_escaped = false;
    *any_escaped = false;
    while (p->pos < p->len) {
        char c = t[p->pos];
        enum fop op;
        bool neg;
        if (is_space(c)) {
            break;
        }
        if (mode == SCAN_WORD && (c == '(' || c == ')' || op_at(t, p->pos, p->len, &op, &neg))) {
            break;
        }
        if (mode == SCAN_VALUE && c == '(') {
            depth++;
        } else if (mode == SCAN_VALUE && c == ')') {
            if (depth == 0) {
                break;
            }
            depth--;
        }
        if (c == '\\') {
            if (p->pos + 1 >= p->len) {
                return perr(p, p->pos, "a backslash ends the filter: nothing to escape");
            }
            dst[o++] = unescape(t[p->pos + 1]);
            p->pos += 2;
            *last_escaped = true;
            *any_escaped = true;
            continue;
        }
        dst[o++] = c;
        p->pos++;
        *last_escaped = false;
    }
    dst[o] = 0;
    *n = o;
    return 0;
}

/* Scans a double-quoted string whose opening quote is at p->pos. */
static int scan_quoted(struct parser *p, char *dst, size_t *n, bool *last_escaped)
{
    const char *t = p->text;
    size_t start = p->pos;
    size_t o = 0;

    p->pos++;
    *last_escaped = false;
    for (;;) {
        if (p->pos >= p->len) {
            return perr(p, start, "unterminated quote: no closing '\"'");
        }
        char c = t[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c == '\\') {
            if (p->pos + 1 >= p->len) {
                return perr(p, start, "unterminated quote: no closing '\"'");
            }
            dst[o++] = unescape(t[p->pos + 1]);
            p->pos += 2;
            *last_escaped = true;
            continue;
        }
        dst[o++] = c;
        p->pos++;
        *last_escaped = false;
    }
    dst[o] = 0;
    *n = o;
    /* "a"b is almost certainly a mistake; a quoted token ends where a word would. */
    if (p->pos < p->len && !is_space(t[p->pos]) && t[p->pos] != '(' && t[p->pos] != ')') {
        return perr(p, p->pos, "expected a space or ')' after the closing quote");
    }
    return 0;
}

static bool word_is(struct span w, const char *upper, const char *lower)
{
    return span_eq_str(w, upper) || span_eq_str(w, lower);
}

/* Lexes the token at p->pos into p->tok. */
static int lex(struct parser *p)
{
    struct token *tk = &p->tok;
    const char *t = p->text;
    bool last_esc;
    bool any_esc;
    size_t n;
    int rc;

    memset(tk, 0, sizeof(*tk));
    while (p->pos < p->len && is_space(t[p->pos])) {
        p->pos++;
    }
    tk->off = p->pos;
    if (p->pos >= p->len) {
        tk->kind = TK_END;
        return 0;
    }
    char c = t[p->pos];
    if (c == '(' || c == ')') {
        tk->kind = c == '(' ? TK_LPAREN : TK_RPAREN;
        tk->len = 1;
        p->pos++;
        return 0;
    }
    if (c == '"') {
        if ((rc = scan_quoted(p, p->val_buf, &n, &last_esc)) < 0) {
            return rc;
        }
        if (n == 0) {
            return perr(p, tk->off, "empty search text \"\"");
        }
        tk->kind = TK_TEXT;
        tk->val = (struct span){ (const uint8_t *)p->val_buf, n };
        tk->len = p->pos - tk->off;
        return 0;
    }
    if ((rc = scan_plain(p, SCAN_WORD, p->name_buf, &n, &last_esc, &any_esc)) < 0) {
        return rc;
    }
    tk->name = (struct span){ (const uint8_t *)p->name_buf, n };
    tk->len = p->pos - tk->off;
    if (p->pos < p->len && (tk->op_len = op_at(t, p->pos, p->len, &tk->op, &tk->neg)) > 0) {
        /* field OP value */
        tk->op_off = p->pos;
        if (n == 0) {
            return perr(p, tk->op_off, "expected a field name before '%.*s'", (int)tk->op_len,
                        t + tk->op_off);
        }
        p->pos += tk->op_len;
        tk->val_off = p->pos;
        if (p->pos < p->len && t[p->pos] == '"') {
            rc = scan_quoted(p, p->val_buf, &n, &last_esc);
        } else {
            rc = scan_plain(p, SCAN_VALUE, p->val_buf, &n, &last_esc, &any_esc);
        }
        if (rc < 0) {
            return rc;
        }
        if (tk->op == FOP_EQ && n > 0 && p->val_buf[n - 1] == '*' && !last_esc) {
            tk->prefix = true;
            p->val_buf[--n] = 0;
        } else if (n == 0) {
            char nm[256];
            return perr(p, tk->op_off, "empty value after '%s%.*s'", show(nm, sizeof(nm), tk->name),
                        (int)tk->op_len, t + tk->op_off);
        }
        tk->kind = TK_TERM;
        tk->val = (struct span){ (const uint8_t *)p->val_buf, n };
        tk->len = p->pos - tk->off;
        return 0;
    }
    if (!any_esc && word_is(tk->name, "AND", "and")) {
        tk->kind = TK_AND;
    } else if (!any_esc && word_is(tk->name, "OR", "or")) {
        tk->kind = TK_OR;
    } else if (!any_esc && word_is(tk->name, "NOT", "not")) {
        tk->kind = TK_NOT;
    } else {
        /* A bare word: full-text search. Its bytes move to val_buf like a phrase's. */
        memcpy(p->val_buf, p->name_buf, n + 1);
        tk->kind = TK_TEXT;
        tk->val = (struct span){ (const uint8_t *)p->val_buf, n };
        tk->name = (struct span){ NULL, 0 };
    }
    return 0;
}

/* Levenshtein distance, ASCII case-insensitive, for names up to 63 bytes. */
static size_t edit_distance(struct span a, const char *b)
{
    size_t bn = strlen(b);
    size_t row[64];

    if (a.n >= 64 || bn >= 64) {
        return SIZE_MAX;
    }
    for (size_t j = 0; j <= bn; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= a.n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t up = row[j];
            char ca = (char)a.p[i - 1];
            char cb = b[j - 1];
            ca = (ca >= 'A' && ca <= 'Z') ? (char)(ca + 32) : ca;
            size_t cost = ca == cb ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best) {
                best = row[j] + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[bn];
}

const char *filter_field_suggest(struct span name)
{
    const char *best = NULL;
    size_t best_d = name.n <= 2 ? 1 : 2;

    for (int f = 0; f < VG_F_COUNT; f++) {
        if (f == VG_F_RAW) {
            continue;
        }
        size_t d = edit_distance(name, vg_field_name((enum vg_field)f));
        if (d <= best_d) {
            best_d = d;
            best = vg_field_name((enum vg_field)f);
        }
    }
    return best;
}

static int unknown_field(struct parser *p, struct span name)
{
    char nm[256];
    const char *best = NULL;
    size_t best_d = name.n <= 2 ? 1 : 2;

    show(nm, sizeof(nm), name);
    for (int f = 0; f < VG_F_COUNT; f++) {
        if (f == VG_F_RAW) {
            continue;
        }
        size_t d = edit_distance(name, vg_field_name((enum vg_field)f));
        if (d <= best_d) {
            best_d = d;
            best = vg_field_name((enum vg_field)f);
        }
    }
    if (best) {
        return perr(p, p->tok.off, "unknown field '%s' (did you mean '%s'?)", nm, best);
    }
    if (memchr(name.p, '.', name.n)) {
        return perr(p, p->tok.off, "unknown field '%s' (fields of the original event are 'raw.%s')",
                    nm, nm);
    }
    return perr(p, p->tok.off, "unknown field '%s' (to search for text, quote it)", nm);
}

static const char *op_text(const struct token *tk, char *out, size_t cap)
{
    snprintf(out, cap, "%s",
             tk->neg             ? (tk->op == FOP_EQ ? "!=" : "!~")
             : tk->op == FOP_EQ  ? "="
             : tk->op == FOP_HAS ? "~"
             : tk->op == FOP_GT  ? ">"
             : tk->op == FOP_GE  ? ">="
             : tk->op == FOP_LT  ? "<"
                                 : "<=");
    return out;
}

/* Only digits, sign, point and exponent: strtod would also take "inf" and hex. */
static bool looks_numeric(struct span v)
{
    for (size_t i = 0; i < v.n; i++) {
        char c = (char)v.p[i];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) {
            return false;
        }
    }
    return v.n > 0;
}

/* Fills c from an IP-field value: a CIDR range or an address. */
static int build_ip(struct parser *p, struct fcmp *c)
{
    const struct token *tk = &p->tok;
    char vs[256];
    const uint8_t *slash = memchr(c->val.p, '/', c->val.n);

    show(vs, sizeof(vs), c->val);
    if (!slash) {
        if (!ip_parse16(c->val, c->ip, &c->ip_v4)) {
            return perr(p, tk->val_off, "'%s' is not an IP address or CIDR range", vs);
        }
        c->is_ip = true;
        return 0;
    }
    struct span addr = { c->val.p, (size_t)(slash - c->val.p) };
    struct span bits = { slash + 1, c->val.n - addr.n - 1 };
    uint64_t nbits;
    if (!ip_parse16(addr, c->ip, &c->ip_v4)) {
        return perr(p, tk->val_off, "bad CIDR '%s': '%.*s' is not an IP address", vs, (int)addr.n,
                    (const char *)addr.p);
    }
    if (parse_u64(bits, c->ip_v4 ? 32 : 128, &nbits) < 0) {
        return perr(p, tk->val_off, "bad CIDR '%s': prefix length must be 0 to %d", vs,
                    c->ip_v4 ? 32 : 128);
    }
    c->bits = (int)nbits + (c->ip_v4 ? 96 : 0);
    /* Clear host bits so describe shows the network and matching compares bytes. */
    for (int i = 0; i < 16; i++) {
        int keep = c->bits - i * 8;
        uint8_t mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
        c->ip[i] &= mask;
    }
    c->cidr = true;
    return 0;
}

static int build_severity(struct parser *p, struct fcmp *c)
{
    char vs[256];
    uint64_t rank;

    if (parse_u64(c->val, VG_SEV_COUNT - 1, &rank) == 0) {
        c->sev = (int)rank;
        return 0;
    }
    c->sev = vg_severity_parse(c->val);
    if (c->sev < 0) {
        return perr(p, p->tok.val_off,
                    "unknown severity '%s' (emergency, alert, critical, error, warning, notice, "
                    "info or debug)",
                    show(vs, sizeof(vs), c->val));
    }
    return 0;
}

static void build_raw_value(struct fcmp *c, const char *v)
{
    int64_t i;

    if (parse_i64(c->val, INT64_MIN, INT64_MAX, &i) == 0) {
        c->has_int = true;
        c->num = i;
    }
    if (looks_numeric(c->val)) {
        char *end;
        double d = strtod(v, &end);
        if (end == v + c->val.n && isfinite(d)) {
            c->has_float = true;
            c->fnum = d;
        }
    }
    if (span_eq_nocase(c->val, SPAN_LIT("true")) || span_eq_nocase(c->val, SPAN_LIT("false"))) {
        c->has_bool = true;
        c->bval = span_eq_nocase(c->val, SPAN_LIT("true"));
    }
    c->is_null = span_eq_nocase(c->val, SPAN_LIT("null"));
}

/* Builds the leaf for the TK_TERM in p->tok. */
static int build_term(struct parser *p, struct fnode **out)
{
    const struct token *tk = &p->tok;
    struct fnode *n = node_new(FN_CMP);
    struct fcmp *c = &n->cmp;
    char nm[256];
    char ops[4];
    char vs[256];
    int rc = 0;

    show(nm, sizeof(nm), tk->name);
    show(vs, sizeof(vs), tk->val);
    op_text(tk, ops, sizeof(ops));
    c->op = tk->op;
    c->neg = tk->neg;
    c->prefix = tk->prefix;

    /* Own the name's path and the value: path NUL value NUL. */
    n->bytes = xmalloc(tk->name.n + tk->val.n + 2);
    memcpy(n->bytes, tk->name.p, tk->name.n);
    n->bytes[tk->name.n] = 0;
    memcpy(n->bytes + tk->name.n + 1, tk->val.p, tk->val.n);
    n->bytes[tk->name.n + 1 + tk->val.n] = 0;
    c->val = (struct span){ (const uint8_t *)n->bytes + tk->name.n + 1, tk->val.n };
    const char *vstr = n->bytes + tk->name.n + 1;

    if (span_starts_with(tk->name, SPAN_LIT("raw."))) {
        c->field = VG_F_RAW;
        c->path = (struct span){ (const uint8_t *)n->bytes + 4, tk->name.n - 4 };
        const uint8_t *seg = c->path.p;
        const uint8_t *end = c->path.p + c->path.n;
        for (const uint8_t *q = seg; q <= end; q++) {
            if (q == end || *q == '.') {
                if (q == seg) {
                    rc = perr(p, tk->off, "empty key in path '%s'", nm);
                    goto fail;
                }
                seg = q + 1;
            }
        }
        build_raw_value(c, vstr);
        *out = n;
        return 0;
    }
    if (span_eq_str(tk->name, "raw")) {
        rc = perr(p, tk->off, "field 'raw' needs a path into the event, like 'raw.user.username'");
        goto fail;
    }
    int f = vg_field_lookup(tk->name);
    if (f < 0) {
        rc = unknown_field(p, tk->name);
        goto fail;
    }
    c->field = f;
    enum vg_field_type type = vg_field_type((enum vg_field)f);
    bool ordered = c->op != FOP_EQ && c->op != FOP_HAS;
    switch (type) {
    case VG_FT_TIME:
    case VG_FT_UINT:
    case VG_FT_INT: {
        const char *what = type == VG_FT_TIME ? "time" : "number";
        if (c->op == FOP_HAS) {
            rc = perr(p, tk->op_off, "operator '%s' needs a text field; '%s' is a %s", ops, nm,
                      what);
            goto fail;
        }
        if (c->prefix) {
            rc = perr(p, tk->val_off, "a prefix ('*') needs a text field; '%s' is a %s", nm, what);
            goto fail;
        }
        if (type == VG_FT_TIME && vg_time_parse_arg(vstr, p->now_ns, &c->num) < 0) {
            rc = perr(p, tk->val_off,
                      "bad time '%s' (RFC 3339 like 2024-05-01T13:00:00Z, or an age like 15m, "
                      "2h, 7d)",
                      vs);
            goto fail;
        }
        const uint8_t *dots =
            type == VG_FT_UINT && c->val.n >= 2 ? memmem(c->val.p, c->val.n, "..", 2) : NULL;
        if (dots) {
            /* seq=N..M: from N to M, both included. */
            struct span lo = { c->val.p, (size_t)(dots - c->val.p) };
            struct span hi = { dots + 2, c->val.n - lo.n - 2 };
            if (c->op != FOP_EQ) {
                rc = perr(p, tk->op_off, "a range N..M goes with '=' or '!=', not '%s'", ops);
                goto fail;
            }
            if (parse_u64(lo, UINT64_MAX, &c->unum) < 0 ||
                parse_u64(hi, UINT64_MAX, &c->unum_hi) < 0) {
                rc = perr(p, tk->val_off, "bad range '%s' for '%s' (N..M, two numbers)", vs, nm);
                goto fail;
            }
            if (c->unum > c->unum_hi) {
                rc = perr(p, tk->val_off, "empty range '%s' for '%s': %" PRIu64 " > %" PRIu64, vs,
                          nm, c->unum, c->unum_hi);
                goto fail;
            }
            c->range = true;
        } else if (type == VG_FT_UINT && parse_u64(c->val, UINT64_MAX, &c->unum) < 0) {
            rc = perr(p, tk->val_off, "bad number '%s' for '%s'", vs, nm);
            goto fail;
        }
        if (type == VG_FT_INT && parse_i64(c->val, INT64_MIN, INT64_MAX, &c->num) < 0) {
            rc = perr(p, tk->val_off, "bad number '%s' for '%s'", vs, nm);
            goto fail;
        }
        break;
    }
    case VG_FT_IP:
        if (ordered) {
            rc = perr(p, tk->op_off, "operator '%s' does not apply to IP field '%s'", ops, nm);
            goto fail;
        }
        if (c->op == FOP_EQ && !c->prefix && (rc = build_ip(p, c)) < 0) {
            goto fail;
        }
        break;
    case VG_FT_SEVERITY:
        if (c->op != FOP_HAS && !c->prefix && (rc = build_severity(p, c)) < 0) {
            goto fail;
        }
        break;
    case VG_FT_STR:
    case VG_FT_RAW:
        break;
    }
    *out = n;
    return 0;
fail:
    node_free(n);
    return rc;
}

static int build_leaf(struct parser *p, struct fnode **out)
{
    if (++p->terms > FILTER_MAX_TERMS) {
        return perr(p, p->tok.off, "more than %d terms", FILTER_MAX_TERMS);
    }
    if (p->tok.kind == TK_TERM) {
        return build_term(p, out);
    }
    struct fnode *n = node_new(FN_TEXT);
    n->bytes = xstrndup((const char *)p->tok.val.p, p->tok.val.n);
    n->cmp.val = (struct span){ (const uint8_t *)n->bytes, p->tok.val.n };
    *out = n;
    return 0;
}

static bool starts_term(enum tok_kind k)
{
    return k == TK_TERM || k == TK_TEXT || k == TK_LPAREN || k == TK_NOT;
}

static int dangling(struct parser *p, const struct token *op, const char *where)
{
    return perr(p, op->off, "dangling operator '%.*s': no term %s it", (int)op->len,
                p->text + op->off, where);
}

static int parse_or(struct parser *p, int depth, struct fnode **out);

static int parse_primary(struct parser *p, int depth, struct fnode **out)
{
    struct token *tk = &p->tok;
    int rc;

    switch (tk->kind) {
    case TK_LPAREN: {
        size_t open = tk->off;
        if (depth + 1 > FILTER_MAX_DEPTH) {
            return perr(p, open, "nested deeper than %d levels", FILTER_MAX_DEPTH);
        }
        if ((rc = lex(p)) < 0) {
            return rc;
        }
        if (tk->kind == TK_RPAREN) {
            return perr(p, open, "empty parentheses");
        }
        if (tk->kind == TK_END) {
            return perr(p, open, "unbalanced parenthesis: '(' is never closed");
        }
        if ((rc = parse_or(p, depth + 1, out)) < 0) {
            return rc;
        }
        if (tk->kind != TK_RPAREN) {
            node_free(*out);
            *out = NULL;
            return perr(p, open, "unbalanced parenthesis: '(' is never closed");
        }
        if ((rc = lex(p)) < 0) {
            node_free(*out);
            *out = NULL;
        }
        return rc;
    }
    case TK_TERM:
    case TK_TEXT:
        if ((rc = build_leaf(p, out)) < 0) {
            return rc;
        }
        if ((rc = lex(p)) < 0) {
            node_free(*out);
            *out = NULL;
        }
        return rc;
    case TK_RPAREN:
        return perr(p, tk->off, "unbalanced parenthesis: ')' has no matching '('");
    case TK_AND:
    case TK_OR:
        return dangling(p, tk, "before");
    case TK_NOT:
    case TK_END:
        break;
    }
    return perr(p, tk->off, "expected a term");
}

static int parse_not(struct parser *p, int depth, struct fnode **out)
{
    struct fnode *kid = NULL;
    int rc;

    if (p->tok.kind != TK_NOT) {
        return parse_primary(p, depth, out);
    }
    struct token op = p->tok;
    if (depth + 1 > FILTER_MAX_DEPTH) {
        return perr(p, op.off, "nested deeper than %d levels", FILTER_MAX_DEPTH);
    }
    if ((rc = lex(p)) < 0) {
        return rc;
    }
    if (!starts_term(p->tok.kind)) {
        return dangling(p, &op, "after");
    }
    if ((rc = parse_not(p, depth + 1, &kid)) < 0) {
        return rc;
    }
    *out = node_new(FN_NOT);
    node_add_kid(*out, kid);
    return 0;
}

static int parse_and(struct parser *p, int depth, struct fnode **out)
{
    struct fnode *left = NULL;
    struct fnode *right = NULL;
    int rc;

    if ((rc = parse_not(p, depth, &left)) < 0) {
        return rc;
    }
    for (;;) {
        if (p->tok.kind == TK_AND) {
            struct token op = p->tok;
            if ((rc = lex(p)) < 0) {
                goto fail;
            }
            if (!starts_term(p->tok.kind)) {
                rc = dangling(p, &op, "after");
                goto fail;
            }
        } else if (!starts_term(p->tok.kind)) {
            break;
        }
        if ((rc = parse_not(p, depth, &right)) < 0) {
            goto fail;
        }
        left = node_join(FN_AND, left, right);
    }
    *out = left;
    return 0;
fail:
    node_free(left);
    return rc;
}

static int parse_or(struct parser *p, int depth, struct fnode **out)
{
    struct fnode *left = NULL;
    struct fnode *right = NULL;
    int rc;

    if ((rc = parse_and(p, depth, &left)) < 0) {
        return rc;
    }
    while (p->tok.kind == TK_OR) {
        struct token op = p->tok;
        if ((rc = lex(p)) < 0) {
            goto fail;
        }
        if (!starts_term(p->tok.kind)) {
            rc = dangling(p, &op, "after");
            goto fail;
        }
        if ((rc = parse_and(p, depth, &right)) < 0) {
            goto fail;
        }
        left = node_join(FN_OR, left, right);
    }
    *out = left;
    return 0;
fail:
    node_free(left);
    return rc;
}

int filter_parse(const char *text, int64_t now_ns, struct filter **out, int *err_column,
                 struct errbuf *eb)
{
    struct parser p = { .text = text ? text : "", .now_ns = now_ns, .eb = eb };
    struct fnode *root = NULL;
    int rc;

    *out = NULL;
    if (err_column) {
        *err_column = 0;
    }
    p.len = strlen(p.text);
    if (p.len > FILTER_MAX_TEXT) {
        rc = perr(&p, 0, "filter is %zu bytes, more than the %d allowed", p.len, FILTER_MAX_TEXT);
        goto done;
    }
    p.name_buf = xmalloc(p.len + 1);
    p.val_buf = xmalloc(p.len + 1);
    if ((rc = lex(&p)) < 0) {
        goto done;
    }
    if (p.tok.kind == TK_END) {
        root = node_new(FN_ALL);
    } else if ((rc = parse_or(&p, 0, &root)) < 0) {
        goto done;
    } else if (p.tok.kind != TK_END) {
        /* parse_or stops only at the end or at a ')' nobody opened. */
        rc = perr(&p, p.tok.off, "unbalanced parenthesis: ')' has no matching '('");
        node_free(root);
        root = NULL;
        goto done;
    }
    *out = xmalloc(sizeof(**out));
    (*out)->root = root;
done:
    if (rc < 0 && err_column) {
        *err_column = p.err_column;
    }
    free(p.name_buf);
    free(p.val_buf);
    return rc;
}

void filter_free(struct filter *f)
{
    if (f) {
        node_free(f->root);
        free(f);
    }
}

/* ---- matching ---- */

static bool is_nocase_field(int f)
{
    return f == VG_F_SOURCE || f == VG_F_KIND || f == VG_F_OUTCOME || f == VG_F_SEVERITY;
}

/* Matches a present string field of the record (STR, IP or SEVERITY). */
static bool str_match(const struct fcmp *c, struct span s)
{
    bool nocase = is_nocase_field(c->field);

    if (c->op == FOP_HAS) {
        return span_contains_nocase(s, c->val);
    }
    if (c->prefix) {
        return nocase ? starts_with_nocase(s, c->val) : span_starts_with(s, c->val);
    }
    switch (vg_field_type((enum vg_field)c->field)) {
    case VG_FT_IP: {
        uint8_t ip[16];
        if (!ip_parse16(s, ip, NULL)) {
            return false;
        }
        return c->cidr ? ip_in_net(ip, c->ip, c->bits) : memcmp(ip, c->ip, 16) == 0;
    }
    case VG_FT_SEVERITY: {
        int rs = vg_severity_parse(s);
        if (rs < 0) {
            return false;
        }
        /* Lower rank is more severe: "severity>=warning" holds for error (rank 3). */
        return op_holds(c->op, rs < c->sev ? 1 : rs > c->sev ? -1 : 0);
    }
    default:
        if (c->op == FOP_EQ) {
            return nocase ? span_eq_nocase(s, c->val) : span_eq(s, c->val);
        }
        return op_holds(c->op, span_cmp(s, c->val));
    }
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int cmp_f64(double a, double b)
{
    return a < b ? -1 : a > b;
}

/* Text ops on a number or boolean of the raw event: its decimal text. */
static bool text_op(const struct fcmp *c, struct span s)
{
    if (c->op == FOP_HAS) {
        return span_contains_nocase(s, c->val);
    }
    return c->prefix && span_starts_with(s, c->val);
}

/* Matches one raw value (not a path): strings as strings, numbers numerically, booleans
 * as true/false, arrays when any element matches. */
static bool raw_value_match(const struct fcmp *c, struct span v, int depth)
{
    struct span cur = v;
    struct mp_obj o;
    char num[32];

    if (depth > MP_MAX_DEPTH || mp_read(&cur, &o) != 1) {
        return false;
    }
    switch (o.type) {
    case MP_STR:
        if (c->op == FOP_HAS) {
            return span_contains_nocase(o.v.s, c->val);
        }
        if (c->prefix) {
            return span_starts_with(o.v.s, c->val);
        }
        return c->op == FOP_EQ ? span_eq(o.v.s, c->val) : op_holds(c->op, span_cmp(o.v.s, c->val));
    case MP_INT:
    case MP_UINT:
        if (c->op == FOP_HAS || c->prefix) {
            if (o.type == MP_INT) {
                snprintf(num, sizeof(num), "%" PRId64, o.v.i);
            } else {
                snprintf(num, sizeof(num), "%" PRIu64, o.v.u);
            }
            return text_op(c, span_str(num));
        }
        if (c->has_int) {
            if (o.type == MP_UINT && o.v.u > INT64_MAX) {
                return op_holds(c->op, 1);
            }
            return op_holds(c->op, cmp_i64(o.type == MP_UINT ? (int64_t)o.v.u : o.v.i, c->num));
        }
        if (c->has_float) {
            double d = o.type == MP_UINT ? (double)o.v.u : (double)o.v.i;
            return op_holds(c->op, cmp_f64(d, c->fnum));
        }
        return false;
    case MP_FLOAT:
        if (c->op == FOP_HAS || c->prefix) {
            snprintf(num, sizeof(num), "%.17g", o.v.f);
            return text_op(c, span_str(num));
        }
        return c->has_float && !isnan(o.v.f) && op_holds(c->op, cmp_f64(o.v.f, c->fnum));
    case MP_BOOL:
        if (c->op == FOP_HAS || c->prefix) {
            return text_op(c, span_str(o.v.b ? "true" : "false"));
        }
        return c->op == FOP_EQ && c->has_bool && o.v.b == c->bval;
    case MP_NIL:
        return c->op == FOP_EQ && !c->prefix && c->is_null;
    case MP_ARRAY:
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct span el;
            if (mp_take(&cur, &el) < 0) {
                return false;
            }
            if (raw_value_match(c, el, depth + 1)) {
                return true;
            }
        }
        return false;
    default:
        return false;
    }
}

/* Visits one value a raw path reached (schemas/raw_path.h). */
static bool raw_visit(struct span value, int depth, void *arg)
{
    return raw_value_match(arg, value, depth);
}

/* Follows c's path from v and matches what it reaches: raw_path_walk does the walking
 * (flat dotted keys, nested maps, arrays); any value reached that matches is a match. */
static bool raw_walk(const struct fcmp *c, struct span v, struct span path, int depth)
{
    return raw_path_walk(v, path, depth, raw_visit, (void *)c);
}

/* Full text: every string (and integer, as decimal) value in the raw event; map keys
 * are names, not text, and are not searched. Returns 1 for a match, 0 for none, -1
 * for malformed bytes (which stop the walk: a count may claim billions of items). */
static int text_walk(struct span *cur, struct span needle, int depth)
{
    struct mp_obj o;
    char num[32];
    int rc;

    if (depth > MP_MAX_DEPTH || mp_read(cur, &o) != 1) {
        return -1;
    }
    switch (o.type) {
    case MP_STR:
        return span_contains_nocase(o.v.s, needle);
    case MP_INT:
        snprintf(num, sizeof(num), "%" PRId64, o.v.i);
        return span_contains(span_str(num), needle);
    case MP_UINT:
        snprintf(num, sizeof(num), "%" PRIu64, o.v.u);
        return span_contains(span_str(num), needle);
    case MP_ARRAY:
        for (uint32_t i = 0; i < o.v.count; i++) {
            if ((rc = text_walk(cur, needle, depth + 1)) != 0) {
                return rc;
            }
        }
        return 0;
    case MP_MAP:
        for (uint32_t i = 0; i < o.v.count; i++) {
            if (mp_skip(cur) < 0) {
                return -1;
            }
            if ((rc = text_walk(cur, needle, depth + 1)) != 0) {
                return rc;
            }
        }
        return 0;
    default:
        return 0;
    }
}

static bool text_match(struct span needle, const struct rec *r)
{
    for (int f = 0; f < VG_F_COUNT; f++) {
        if (r->str[f].p && span_contains_nocase(r->str[f], needle)) {
            return true;
        }
    }
    struct span cur = r->raw;
    return r->raw.n > 0 && text_walk(&cur, needle, 0) == 1;
}

static bool cmp_match(const struct fcmp *c, const struct rec *r)
{
    switch (vg_field_type((enum vg_field)c->field)) {
    case VG_FT_TIME: {
        bool has = c->field == VG_F_TS ? r->has_ts : r->has_received;
        int64_t t = c->field == VG_F_TS ? r->ts : r->received;
        return has && op_holds(c->op, cmp_i64(t, c->num));
    }
    case VG_FT_UINT:
        if (c->range) {
            return r->has_seq && r->seq >= c->unum && r->seq <= c->unum_hi;
        }
        return r->has_seq && op_holds(c->op, r->seq < c->unum ? -1 : r->seq > c->unum);
    case VG_FT_INT:
        return r->has_dst_port && op_holds(c->op, cmp_i64(r->dst_port, c->num));
    case VG_FT_RAW:
        return r->raw.n > 0 && raw_walk(c, r->raw, c->path, 0);
    default:
        return r->str[c->field].p && str_match(c, r->str[c->field]);
    }
}

static bool node_match(const struct fnode *n, const struct rec *r)
{
    switch (n->kind) {
    case FN_ALL:
        return true;
    case FN_AND:
        for (size_t i = 0; i < n->n; i++) {
            if (!node_match(n->kids[i], r)) {
                return false;
            }
        }
        return true;
    case FN_OR:
        for (size_t i = 0; i < n->n; i++) {
            if (node_match(n->kids[i], r)) {
                return true;
            }
        }
        return false;
    case FN_NOT:
        return !node_match(n->kids[0], r);
    case FN_TEXT:
        return text_match(n->cmp.val, r);
    case FN_CMP:
        return cmp_match(&n->cmp, r) != n->cmp.neg;
    }
    return false;
}

bool filter_match(const struct filter *f, const struct rec *r)
{
    return node_match(f->root, r);
}

/* ---- hints and description ---- */

static void bound(const struct fcmp *c, int64_t *since, int64_t *until)
{
    int64_t t = c->num;

    if (c->field != VG_F_TS || c->neg) {
        return;
    }
    switch (c->op) {
    case FOP_EQ:
        *since = t > *since ? t : *since;
        *until = t < INT64_MAX && t + 1 < *until ? t + 1 : *until;
        break;
    case FOP_GE:
        *since = t > *since ? t : *since;
        break;
    case FOP_GT:
        if (t == INT64_MAX) {
            *since = INT64_MAX; /* nothing is later: an empty range */
        } else if (t + 1 > *since) {
            *since = t + 1;
        }
        break;
    case FOP_LT:
        *until = t < *until ? t : *until;
        break;
    case FOP_LE:
        if (t < INT64_MAX && t + 1 < *until) {
            *until = t + 1;
        }
        break;
    case FOP_HAS:
        break;
    }
}

void filter_time_bounds(const struct filter *f, int64_t *since, int64_t *until)
{
    const struct fnode *root = f->root;

    *since = INT64_MIN;
    *until = INT64_MAX;
    if (root->kind == FN_CMP) {
        bound(&root->cmp, since, until);
    } else if (root->kind == FN_AND) {
        for (size_t i = 0; i < root->n; i++) {
            if (root->kids[i]->kind == FN_CMP) {
                bound(&root->kids[i]->cmp, since, until);
            }
        }
    }
}

static void seq_bound(const struct fcmp *c, uint64_t *lo, uint64_t *hi)
{
    uint64_t v = c->unum;

    if (c->field != VG_F_SEQ || c->neg) {
        return;
    }
    if (c->range) {
        *lo = c->unum > *lo ? c->unum : *lo;
        *hi = c->unum_hi < *hi ? c->unum_hi : *hi;
        return;
    }
    switch (c->op) {
    case FOP_EQ:
        *lo = v > *lo ? v : *lo;
        *hi = v < *hi ? v : *hi;
        break;
    case FOP_GE:
        *lo = v > *lo ? v : *lo;
        break;
    case FOP_GT:
        if (v == UINT64_MAX) {
            *lo = UINT64_MAX; /* nothing is larger: an empty range */
            *hi = 0;
        } else if (v + 1 > *lo) {
            *lo = v + 1;
        }
        break;
    case FOP_LE:
        *hi = v < *hi ? v : *hi;
        break;
    case FOP_LT:
        if (v == 0) {
            *lo = UINT64_MAX; /* nothing is smaller: an empty range */
            *hi = 0;
        } else if (v - 1 < *hi) {
            *hi = v - 1;
        }
        break;
    case FOP_HAS:
        break;
    }
}

void filter_seq_bounds(const struct filter *f, uint64_t *lo, uint64_t *hi)
{
    const struct fnode *root = f->root;

    *lo = 0;
    *hi = UINT64_MAX;
    if (root->kind == FN_CMP) {
        seq_bound(&root->cmp, lo, hi);
    } else if (root->kind == FN_AND) {
        for (size_t i = 0; i < root->n; i++) {
            if (root->kids[i]->kind == FN_CMP) {
                seq_bound(&root->kids[i]->cmp, lo, hi);
            }
        }
    }
}

/* filter.h: what one positive leaf ANDed at the top level says every match has. */
static void need_leaf(const struct fnode *n, struct filter_needs *out)
{
    const struct fcmp *c = &n->cmp;

    if (n->kind == FN_TEXT) {
        out->texts[out->ntexts++] = c->val; /* text_match: contains, ignoring case */
        return;
    }
    if (n->kind != FN_CMP || c->neg) {
        return;
    }
    enum vg_field_type type = vg_field_type((enum vg_field)c->field);
    bool text = false;
    switch (type) {
    case VG_FT_STR:
        /* str_match: equal, prefix or contains: each contains the value. */
        text = c->op == FOP_EQ || c->op == FOP_HAS;
        if (c->op == FOP_EQ && !c->prefix && !is_nocase_field(c->field)) {
            out->values[out->nvalues++] = (struct filter_need_value){ c->field, c->val };
        }
        break;
    case VG_FT_IP:
        text = c->op == FOP_HAS || c->prefix;
        if (c->op == FOP_EQ && c->is_ip && !c->cidr && !c->prefix) {
            out->values[out->nvalues++] = (struct filter_need_value){ c->field, c->val };
        }
        break;
    case VG_FT_SEVERITY:
        text = c->op == FOP_HAS || c->prefix; /* not =name: a rank, whatever the spelling */
        break;
    case VG_FT_RAW:
        /* raw_value_match: ~ on any value's text; = on strings only when the value reads
         * as no number, boolean or null. */
        text = c->op == FOP_HAS ||
               (c->op == FOP_EQ && !c->has_int && !c->has_float && !c->has_bool && !c->is_null);
        break;
    default:
        break;
    }
    if (text) {
        out->texts[out->ntexts++] = c->val;
    }
}

static uint64_t node_fields(const struct fnode *n)
{
    if (n->kind == FN_TEXT) {
        return FILTER_FIELDS_ALL;
    }
    if (n->kind == FN_CMP) {
        return 1ull << n->cmp.field;
    }
    uint64_t m = 0;
    for (size_t i = 0; i < n->n; i++) {
        m |= node_fields(n->kids[i]);
    }
    return m;
}

uint64_t filter_fields(const struct filter *f)
{
    return node_fields(f->root);
}

void filter_needs(const struct filter *f, struct filter_needs *out)
{
    const struct fnode *root = f->root;

    out->nvalues = 0;
    out->ntexts = 0;
    if (root->kind == FN_AND) {
        for (size_t i = 0; i < root->n; i++) {
            need_leaf(root->kids[i], out);
        }
    } else {
        need_leaf(root, out);
    }
}

static const char *op_name(const struct fcmp *c)
{
    if (c->prefix) {
        return c->neg ? "NPREFIX" : "PREFIX";
    }
    if (c->cidr) {
        return c->neg ? "NCIDR" : "CIDR";
    }
    switch (c->op) {
    case FOP_EQ:
        return c->neg ? "NE" : "EQ";
    case FOP_HAS:
        return c->neg ? "NHAS" : "HAS";
    case FOP_GT:
        return "GT";
    case FOP_GE:
        return "GE";
    case FOP_LT:
        return "LT";
    case FOP_LE:
        return "LE";
    }
    return "?";
}

static int describe_ip(const struct fcmp *c, struct buf *out)
{
    char addr[INET6_ADDRSTRLEN];
    const void *src = c->ip_v4 ? (const void *)(c->ip + 12) : (const void *)c->ip;

    if (!inet_ntop(c->ip_v4 ? AF_INET : AF_INET6, src, addr, sizeof(addr))) {
        return buf_append_str(out, "\"?\"");
    }
    if (c->cidr) {
        return buf_appendf(out, "\"%s/%d\"", addr, c->bits - (c->ip_v4 ? 96 : 0));
    }
    return buf_appendf(out, "\"%s\"", addr);
}

static int describe_cmp(const struct fcmp *c, struct buf *out)
{
    int rc;

    if ((rc = buf_appendf(out, "(%s ", op_name(c))) < 0) {
        return rc;
    }
    if (c->field == VG_F_RAW) {
        rc = buf_append_str(out, "raw.");
        if (rc == 0) {
            rc = buf_append_escaped(out, c->path, c->path.n);
        }
    } else {
        rc = buf_append_str(out, vg_field_name((enum vg_field)c->field));
    }
    if (rc < 0 || (rc = buf_append_byte(out, ' ')) < 0) {
        return rc;
    }
    bool text = c->op == FOP_HAS || c->prefix;
    switch (vg_field_type((enum vg_field)c->field)) {
    case VG_FT_TIME: {
        char ts[40];
        vg_time_format(c->num, 9, ts, sizeof(ts));
        rc = buf_appendf(out, "\"%s\"", ts);
        break;
    }
    case VG_FT_UINT:
        rc = c->range ? buf_appendf(out, "%" PRIu64 "..%" PRIu64, c->unum, c->unum_hi)
                      : buf_appendf(out, "%" PRIu64, c->unum);
        break;
    case VG_FT_INT:
        rc = buf_appendf(out, "%" PRId64, c->num);
        break;
    case VG_FT_SEVERITY:
        rc = text ? json_append_str(out, c->val)
                  : buf_appendf(out, "\"%s\"", vg_severity_name((enum vg_severity)c->sev));
        break;
    case VG_FT_IP:
        rc = text ? json_append_str(out, c->val) : describe_ip(c, out);
        break;
    default:
        rc = json_append_str(out, c->val);
        break;
    }
    return rc < 0 ? rc : buf_append_byte(out, ')');
}

static int describe(const struct fnode *n, struct buf *out)
{
    int rc = 0;

    switch (n->kind) {
    case FN_ALL:
        return buf_append_str(out, "(ALL)");
    case FN_AND:
    case FN_OR:
    case FN_NOT:
        rc = buf_append_str(out, n->kind == FN_AND ? "(AND" : n->kind == FN_OR ? "(OR" : "(NOT");
        for (size_t i = 0; i < n->n && rc == 0; i++) {
            if ((rc = buf_append_byte(out, ' ')) == 0) {
                rc = describe(n->kids[i], out);
            }
        }
        return rc < 0 ? rc : buf_append_byte(out, ')');
    case FN_TEXT:
        if ((rc = buf_append_str(out, "(TEXT ")) < 0 ||
            (rc = json_append_str(out, n->cmp.val)) < 0) {
            return rc;
        }
        return buf_append_byte(out, ')');
    case FN_CMP:
        return describe_cmp(&n->cmp, out);
    }
    return rc;
}

int filter_describe(const struct filter *f, struct buf *out)
{
    return describe(f->root, out);
}

/* ---- CLI helpers ---- */

/* If w starts with a known field name followed by an operator, the offset of the value;
 * else 0. */
static size_t field_op_prefix(struct span w)
{
    size_t i = 0;

    while (i < w.n && !is_space((char)w.p[i]) && w.p[i] != '(' && w.p[i] != ')') {
        enum fop op;
        bool neg;
        size_t ol = op_at((const char *)w.p, i, w.n, &op, &neg);
        if (ol > 0) {
            struct span name = { w.p, i };
            bool known = vg_field_lookup(name) >= 0 ||
                         (span_starts_with(name, SPAN_LIT("raw.")) && name.n > 4);
            return known ? i + ol : 0;
        }
        i++;
    }
    return 0;
}

/* True if s, split at white space, holds an operator keyword, a parenthesis, a quote
 * or a field=value term: then it is filter syntax, not a phrase. */
static bool reads_as_syntax(struct span s)
{
    size_t i = 0;

    while (i < s.n) {
        while (i < s.n && is_space((char)s.p[i])) {
            i++;
        }
        size_t j = i;
        while (j < s.n && !is_space((char)s.p[j])) {
            j++;
        }
        struct span w = { s.p + i, j - i };
        if (w.n > 0 && (span_eq_str(w, "AND") || span_eq_str(w, "OR") || span_eq_str(w, "NOT") ||
                        memchr(w.p, '(', w.n) || memchr(w.p, ')', w.n) || memchr(w.p, '"', w.n) ||
                        field_op_prefix(w) > 0)) {
            return true;
        }
        i = j;
    }
    return false;
}

static bool has_space(struct span s)
{
    for (size_t i = 0; i < s.n; i++) {
        if (is_space((char)s.p[i])) {
            return true;
        }
    }
    return false;
}

static size_t put_quoted(char *out, struct span s)
{
    size_t o = 0;

    out[o++] = '"';
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] == '"' || s.p[i] == '\\') {
            out[o++] = '\\';
        }
        out[o++] = (char)s.p[i];
    }
    out[o++] = '"';
    return o;
}

char *filter_join_args(int argc, char **argv)
{
    size_t cap = 1;
    size_t o = 0;

    for (int i = 0; i < argc; i++) {
        cap += 2 * strlen(argv[i]) + 3; /* every byte escaped, two quotes, a space */
    }
    char *out = xmalloc(cap);
    for (int i = 0; i < argc; i++) {
        struct span w = span_str(argv[i]);
        if (w.n == 0) {
            continue;
        }
        if (o > 0) {
            out[o++] = ' ';
        }
        size_t v = field_op_prefix(w);
        struct span val = { w.p + v, w.n - v };
        if (!has_space(w) || reads_as_syntax(val)) {
            memcpy(out + o, w.p, w.n);
            o += w.n;
        } else {
            /* "field=some value" keeps its field and quotes the value; a word with
             * spaces and no syntax is a phrase. */
            memcpy(out + o, w.p, v);
            o += v;
            o += put_quoted(out + o, val);
        }
    }
    out[o] = 0;
    return out;
}

void filter_error_caret(const char *text, int column, FILE *f)
{
    const uint8_t *p = (const uint8_t *)(text ? text : "");
    size_t n = strlen((const char *)p);
    size_t i = 0;
    int chars = 0;

    while (i < n) {
        size_t l = utf8_seq_len(p + i, n - i, NULL);
        if (l == 0) {
            fputc('?', f);
            l = 1;
        } else if (l == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
            fputc(' ', f);
        } else if (l == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            fputc(' ', f); /* C1 control characters */
        } else {
            fwrite(p + i, 1, l, f);
        }
        i += l;
        chars++;
    }
    fputc('\n', f);
    if (column < 1) {
        column = 1;
    }
    if (column > chars + 1) {
        column = chars + 1;
    }
    for (int c = 1; c < column; c++) {
        fputc(' ', f);
    }
    fputs("^\n", f);
}
