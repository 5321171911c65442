/* rules/rules_cond.c: Sigma conditions (sigma-rules-specification "Condition"):
 *
 *     or      := and { 'or' and }
 *     and     := not { 'and' not }
 *     not     := 'not' not | primary
 *     primary := '(' or ')' | quant 'of' target | identifier
 *     quant   := '1' | 'any' | 'all' | N        (N > 1: an extension, "at least N")
 *     target  := 'them' | pattern               (pattern: '*' matches any run)
 *
 * Operator precedence, least to most binding: or, and, not, x of, parentheses. Keywords
 * are case-insensitive; identifiers are case-sensitive. "them" leaves out identifiers
 * starting with '_'. The obsolete aggregation syntax ("... | count() > 5") is reported
 * as unsupported. Depth is bounded by COND_MAX_DEPTH. Pure. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "rules/rules_int.h"

#define COND_MAX_DEPTH 64

enum ctok { CT_END, CT_LP, CT_RP, CT_AND, CT_OR, CT_NOT, CT_OF, CT_WORD, CT_PIPE };

struct cparse {
    const char *s;
    size_t n, pos;
    char *const *names;
    size_t nnames;
    char *msg;
    size_t msgcap;
    /* the current token */
    enum ctok tok;
    size_t toff, tlen;
};

static int cerr(struct cparse *p, int rc, const char *fmt, ...) VG_PRINTF(3, 4);

static int cerr(struct cparse *p, int rc, const char *fmt, ...)
{
    va_list ap;

    if (p->msg[0] == 0) {
        va_start(ap, fmt);
        vsnprintf(p->msg, p->msgcap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == '*' || c >= 0x80;
}

static bool tok_is(const struct cparse *p, const char *kw)
{
    size_t n = strlen(kw);
    if (p->tlen != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = p->s[p->toff + i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c + 32);
        }
        if (c != kw[i]) {
            return false;
        }
    }
    return true;
}

static int lex(struct cparse *p)
{
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                             p->s[p->pos] == '\r')) {
        p->pos++;
    }
    p->toff = p->pos;
    p->tlen = 0;
    if (p->pos >= p->n) {
        p->tok = CT_END;
        return 0;
    }
    unsigned char c = (unsigned char)p->s[p->pos];
    if (c == '(' || c == ')') {
        p->tok = c == '(' ? CT_LP : CT_RP;
        p->tlen = 1;
        p->pos++;
        return 0;
    }
    if (c == '|') {
        p->tok = CT_PIPE;
        p->tlen = 1;
        p->pos++;
        return 0;
    }
    if (!word_char(c)) {
        return cerr(p, VG_EPARSE, "unexpected character '%c' at column %zu in the condition",
                    c >= 0x20 && c < 0x7f ? c : '?', p->pos + 1);
    }
    while (p->pos < p->n && word_char((unsigned char)p->s[p->pos])) {
        p->pos++;
    }
    p->tlen = p->pos - p->toff;
    if (tok_is(p, "and")) {
        p->tok = CT_AND;
    } else if (tok_is(p, "or")) {
        p->tok = CT_OR;
    } else if (tok_is(p, "not")) {
        p->tok = CT_NOT;
    } else if (tok_is(p, "of")) {
        p->tok = CT_OF;
    } else {
        p->tok = CT_WORD;
    }
    return 0;
}

static struct cnode *cn_new(enum cnode_kind k)
{
    struct cnode *c = xcalloc(1, sizeof(*c));
    c->kind = k;
    return c;
}

void rules__cond_free(struct cnode *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        rules__cond_free(c->kids[i]);
    }
    free(c->kids);
    free(c);
}

static void cn_add(struct cnode *c, struct cnode *kid)
{
    c->kids = xrealloc(c->kids, (c->n + 1) * sizeof(*c->kids));
    c->kids[c->n++] = kid;
}

/* Joins a and b under kind, flattening chains. Takes ownership of both. */
static struct cnode *cn_join(enum cnode_kind kind, struct cnode *a, struct cnode *b)
{
    struct cnode *n = a;
    if (a->kind != kind) {
        n = cn_new(kind);
        cn_add(n, a);
    }
    if (b->kind == kind) {
        for (size_t i = 0; i < b->n; i++) {
            cn_add(n, b->kids[i]);
        }
        b->n = 0;
        rules__cond_free(b);
    } else {
        cn_add(n, b);
    }
    return n;
}

/* '*' glob over an identifier, case-sensitive. */
static bool pattern_match(const char *pat, size_t pn, const char *s)
{
    size_t sn = strlen(s);
    size_t i = 0;
    size_t j = 0;
    size_t star = (size_t)-1;
    size_t mark = 0;

    while (j < sn) {
        if (i < pn && pat[i] == '*') {
            star = i++;
            mark = j;
        } else if (i < pn && pat[i] == s[j]) {
            i++;
            j++;
        } else if (star != (size_t)-1) {
            i = star + 1;
            j = ++mark;
        } else {
            return false;
        }
    }
    while (i < pn && pat[i] == '*') {
        i++;
    }
    return i == pn;
}

static int find_name(struct cparse *p, size_t off, size_t len)
{
    for (size_t i = 0; i < p->nnames; i++) {
        if (strlen(p->names[i]) == len && memcmp(p->names[i], p->s + off, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int parse_or(struct cparse *p, int depth, struct cnode **out);

static int parse_of(struct cparse *p, struct cnode **out)
{
    /* p->tok is the quantifier word */
    uint32_t need = 0; /* 0 = all */
    char q[32];

    snprintf(q, sizeof(q), "%.*s", (int)(p->tlen < 20 ? p->tlen : 20), p->s + p->toff);
    if (tok_is(p, "all")) {
        need = 0;
    } else if (tok_is(p, "any")) {
        need = 1;
    } else {
        uint64_t v;
        if (parse_u64((struct span){ (const uint8_t *)p->s + p->toff, p->tlen }, 1000000, &v) < 0 ||
            v == 0) {
            return cerr(p, VG_EPARSE, "'%s of' needs 1, any, all or a positive number", q);
        }
        need = (uint32_t)v;
    }
    int rc = lex(p);
    if (rc < 0) {
        return rc;
    }
    if (p->tok != CT_OF) {
        return cerr(p, VG_EPARSE, "expected 'of' after '%s'", q);
    }
    if ((rc = lex(p)) < 0) {
        return rc;
    }
    if (p->tok != CT_WORD) {
        return cerr(p, VG_EPARSE, "expected 'them' or a selection pattern after '%s of'", q);
    }
    bool them = tok_is(p, "them");
    struct cnode *set = cn_new(CN_OR);
    for (size_t i = 0; i < p->nnames; i++) {
        bool in =
            them ? p->names[i][0] != '_' : pattern_match(p->s + p->toff, p->tlen, p->names[i]);
        if (in) {
            struct cnode *s = cn_new(CN_SEL);
            s->sel = (int)i;
            cn_add(set, s);
        }
    }
    if (set->n == 0) {
        rules__cond_free(set);
        return cerr(p, VG_EPARSE, "'%s of %.*s' matches no selection", q, (int)p->tlen,
                    p->s + p->toff);
    }
    if (need > set->n) {
        size_t n = set->n;
        rules__cond_free(set);
        return cerr(p, VG_EPARSE, "'%s of %.*s': only %zu selections match", q, (int)p->tlen,
                    p->s + p->toff, n);
    }
    if (set->n == 1) {
        *out = set->kids[0];
        set->n = 0;
        rules__cond_free(set);
    } else if (need == 0 || need == set->n) {
        set->kind = CN_AND;
        *out = set;
    } else if (need == 1) {
        *out = set;
    } else {
        set->kind = CN_NOF;
        set->need = need;
        *out = set;
    }
    if ((rc = lex(p)) < 0) {
        rules__cond_free(*out);
        *out = NULL;
    }
    return rc;
}

static int parse_primary(struct cparse *p, int depth, struct cnode **out)
{
    int rc;

    *out = NULL;
    if (depth > COND_MAX_DEPTH) {
        return cerr(p, VG_EPARSE, "condition nested deeper than %d levels", COND_MAX_DEPTH);
    }
    switch (p->tok) {
    case CT_LP:
        if ((rc = lex(p)) < 0 || (rc = parse_or(p, depth + 1, out)) < 0) {
            return rc;
        }
        if (p->tok != CT_RP) {
            rules__cond_free(*out);
            *out = NULL;
            return cerr(p, VG_EPARSE, "unbalanced parenthesis in the condition");
        }
        if ((rc = lex(p)) < 0) {
            rules__cond_free(*out);
            *out = NULL;
        }
        return rc;
    case CT_WORD: {
        /* a quantifier if 'of' follows */
        size_t save = p->pos;
        size_t toff = p->toff;
        size_t tlen = p->tlen;
        if ((rc = lex(p)) < 0) {
            return rc;
        }
        bool of = p->tok == CT_OF;
        p->pos = save;
        p->toff = toff;
        p->tlen = tlen;
        p->tok = CT_WORD;
        if (of) {
            return parse_of(p, out);
        }
        if (memchr(p->s + p->toff, '*', p->tlen)) {
            return cerr(p, VG_EPARSE, "a pattern ('%.*s') needs '1 of' or 'all of'", (int)p->tlen,
                        p->s + p->toff);
        }
        int sel = find_name(p, p->toff, p->tlen);
        if (sel < 0) {
            return cerr(p, VG_EPARSE, "unknown identifier '%.*s' in the condition",
                        (int)(p->tlen < 80 ? p->tlen : 80), p->s + p->toff);
        }
        *out = cn_new(CN_SEL);
        (*out)->sel = sel;
        if ((rc = lex(p)) < 0) {
            rules__cond_free(*out);
            *out = NULL;
        }
        return rc;
    }
    case CT_PIPE:
        return cerr(p, -ENOTSUP,
                    "aggregation expressions after '|' in a condition (obsolete Sigma; use a "
                    "correlation rule)");
    case CT_END:
        return cerr(p, VG_EPARSE, "the condition ends where a selection was expected");
    default:
        return cerr(p, VG_EPARSE, "unexpected '%.*s' in the condition", (int)p->tlen,
                    p->s + p->toff);
    }
}

static int parse_not(struct cparse *p, int depth, struct cnode **out)
{
    int rc;

    if (p->tok != CT_NOT) {
        return parse_primary(p, depth, out);
    }
    if (depth > COND_MAX_DEPTH) {
        return cerr(p, VG_EPARSE, "condition nested deeper than %d levels", COND_MAX_DEPTH);
    }
    struct cnode *kid = NULL;
    if ((rc = lex(p)) < 0 || (rc = parse_not(p, depth + 1, &kid)) < 0) {
        return rc;
    }
    *out = cn_new(CN_NOT);
    cn_add(*out, kid);
    return 0;
}

static int parse_and(struct cparse *p, int depth, struct cnode **out)
{
    struct cnode *left = NULL;
    struct cnode *right = NULL;
    int rc;

    if ((rc = parse_not(p, depth, &left)) < 0) {
        return rc;
    }
    while (p->tok == CT_AND) {
        if ((rc = lex(p)) < 0 || (rc = parse_not(p, depth, &right)) < 0) {
            rules__cond_free(left);
            return rc;
        }
        left = cn_join(CN_AND, left, right);
    }
    *out = left;
    return 0;
}

static int parse_or(struct cparse *p, int depth, struct cnode **out)
{
    struct cnode *left = NULL;
    struct cnode *right = NULL;
    int rc;

    if ((rc = parse_and(p, depth, &left)) < 0) {
        return rc;
    }
    while (p->tok == CT_OR) {
        if ((rc = lex(p)) < 0 || (rc = parse_and(p, depth, &right)) < 0) {
            rules__cond_free(left);
            return rc;
        }
        left = cn_join(CN_OR, left, right);
    }
    *out = left;
    return 0;
}

int rules__cond_parse(const char *text, size_t len, char *const *names, size_t n,
                      struct cnode **out, char *msg, size_t msgcap)
{
    struct cparse p = {
        .s = text, .n = len, .names = names, .nnames = n, .msg = msg, .msgcap = msgcap
    };
    struct cnode *root = NULL;
    int rc;

    *out = NULL;
    msg[0] = 0;
    if (len > RULES_MAX_COND) {
        return cerr(&p, VG_EPARSE, "condition longer than %d bytes", RULES_MAX_COND);
    }
    if (memchr(text, '|', len)) {
        /* Said before any other error: the whole construct is what is unsupported. */
        return cerr(&p, -ENOTSUP,
                    "aggregation expressions after '|' in a condition (obsolete Sigma; use a "
                    "correlation rule)");
    }
    if ((rc = lex(&p)) < 0 || (rc = parse_or(&p, 0, &root)) < 0) {
        return rc;
    }
    if (p.tok != CT_END) {
        rules__cond_free(root);
        return cerr(&p, VG_EPARSE, "unexpected '%.*s' in the condition",
                    (int)(p.tlen < 80 ? p.tlen : 80), p.s + p.toff);
    }
    *out = root;
    return 0;
}
