/* rules/ytree.c: libyaml's event stream -> struct ynode trees (see ytree.h).
 *
 * One pass over the events with an explicit stack (no recursion while building), so a
 * hostile file can cost at most YTREE_MAX_NODES allocations and YTREE_MAX_DEPTH stack
 * slots. Every node is reachable from ystream.docs or from the open stack, so a failure
 * half-way frees everything. Pure; any thread. */
#include "rules/ytree.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/mp.h"
#include "common/xalloc.h"

const char *ytree_show(struct span s, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (cap < 8) {
        if (cap) {
            out[0] = 0;
        }
        return out;
    }
    for (size_t i = 0; i < s.n; i++) {
        uint8_t c = s.p[i];
        if (i == 64 || o + 8 > cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
    return out;
}

static void node_free(struct ynode *n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n->nkids; i++) {
        node_free(n->kids[i]);
    }
    free(n->kids);
    free(n->s);
    free(n);
}

void ystream_release(struct ystream *ys)
{
    for (size_t i = 0; i < ys->ndocs; i++) {
        node_free(ys->docs[i]);
    }
    free(ys->docs);
    ys->docs = NULL;
    ys->ndocs = 0;
}

static void add_kid(struct ynode *parent, struct ynode *kid)
{
    /* Grow by doubling: a map of 100k keys must not cost 100k reallocs. */
    size_t n = parent->nkids;
    if ((n & (n - 1)) == 0) {
        parent->kids = xrealloc(parent->kids, (n ? 2 * n : 1) * sizeof(*parent->kids));
    }
    parent->kids[parent->nkids++] = kid;
}

static int key_cmp(const void *a, const void *b)
{
    const struct ynode *x = *(const struct ynode *const *)a;
    const struct ynode *y = *(const struct ynode *const *)b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = n ? memcmp(x->s, y->s, n) : 0;

    if (c != 0) {
        return c;
    }
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Returns the second occurrence of a duplicate key of map m, or NULL. */
static const struct ynode *dup_key(const struct ynode *m)
{
    size_t nk = m->nkids / 2;

    if (nk <= 32) {
        for (size_t i = 1; i < nk; i++) {
            for (size_t j = 0; j < i; j++) {
                const struct ynode *a = m->kids[2 * i];
                const struct ynode *b = m->kids[2 * j];
                if (a->n == b->n && memcmp(a->s, b->s, a->n) == 0) {
                    return a;
                }
            }
        }
        return NULL;
    }
    const struct ynode **keys = xmalloc(nk * sizeof(*keys));
    const struct ynode *found = NULL;
    for (size_t i = 0; i < nk; i++) {
        keys[i] = m->kids[2 * i];
    }
    qsort(keys, nk, sizeof(*keys), key_cmp);
    for (size_t i = 1; i < nk && !found; i++) {
        if (key_cmp(&keys[i - 1], &keys[i]) == 0) {
            found = keys[i];
        }
    }
    free(keys);
    return found;
}

struct builder {
    const char *name;
    struct errbuf *eb;
    struct ynode *stack[YTREE_MAX_DEPTH + 1];
    int depth;
    size_t nodes;
    struct ystream *out;
    struct ynode *doc; /* the finished root of the current document */
    bool in_doc;
};

static int berr(struct builder *b, const yaml_mark_t *m, int rc, const char *what)
{
    errbuf_set(b->eb, "%s:%zu:%zu: %s", b->name, m->line + 1, m->column + 1, what);
    errbuf_set_pos(b->eb, (struct errpos){ (uint32_t)m->line + 1, (uint32_t)m->column + 1, false });
    return rc;
}

/* Attaches a finished node to the open collection or makes it the document root. */
static int attach(struct builder *b, struct ynode *n, const yaml_mark_t *m)
{
    if (b->depth == 0) {
        b->doc = n;
        return 0;
    }
    struct ynode *parent = b->stack[b->depth - 1];
    if (parent->type == YN_MAP && parent->nkids % 2 == 0 && n->type != YN_SCALAR) {
        node_free(n);
        return berr(b, m, VG_EPARSE, "a map key must be a scalar");
    }
    add_kid(parent, n);
    return 0;
}

static struct ynode *node_new(struct builder *b, enum ynode_type t, const yaml_mark_t *m)
{
    struct ynode *n = xcalloc(1, sizeof(*n));
    n->type = t;
    n->line = (uint32_t)(m->line + 1);
    n->col = (uint32_t)(m->column + 1);
    b->nodes++;
    return n;
}

static int on_event(struct builder *b, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    struct ynode *n;
    char msg[160];

    if (b->nodes >= YTREE_MAX_NODES) {
        snprintf(msg, sizeof(msg), "more than %d YAML nodes", YTREE_MAX_NODES);
        return berr(b, m, VG_ELIMIT, msg);
    }
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        b->doc = NULL;
        b->in_doc = true;
        return 0;
    case YAML_DOCUMENT_END_EVENT: {
        struct ystream *ys = b->out;
        size_t nd = ys->ndocs;
        if ((nd & (nd - 1)) == 0) {
            ys->docs = xrealloc(ys->docs, (nd ? 2 * nd : 1) * sizeof(*ys->docs));
        }
        ys->docs[ys->ndocs++] = b->doc;
        b->doc = NULL;
        b->in_doc = false;
        return 0;
    }
    case YAML_ALIAS_EVENT:
        return berr(b, m, -ENOTSUP, "YAML aliases (*name) are not supported in rules");
    case YAML_SCALAR_EVENT: {
        n = node_new(b, YN_SCALAR, m);
        n->n = ev->data.scalar.length;
        n->s = xmalloc(n->n + 1);
        memcpy(n->s, ev->data.scalar.value, n->n);
        n->s[n->n] = 0;
        const char *tag = (const char *)ev->data.scalar.tag;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
                    (tag && strcmp(tag, YAML_STR_TAG) == 0);
        return attach(b, n, m);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (b->depth >= YTREE_MAX_DEPTH) {
            snprintf(msg, sizeof(msg), "nested deeper than %d levels", YTREE_MAX_DEPTH);
            return berr(b, m, VG_ELIMIT, msg);
        }
        n = node_new(b, ev->type == YAML_SEQUENCE_START_EVENT ? YN_SEQ : YN_MAP, m);
        if (b->depth > 0) {
            struct ynode *parent = b->stack[b->depth - 1];
            if (parent->type == YN_MAP && parent->nkids % 2 == 0) {
                node_free(n);
                return berr(b, m, VG_EPARSE, "a map key must be a scalar");
            }
        }
        b->stack[b->depth++] = n;
        return 0;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        n = b->stack[--b->depth];
        b->stack[b->depth] = NULL;
        if (n->type == YN_MAP) {
            const struct ynode *d = dup_key(n);
            if (d) {
                char k[96];
                snprintf(msg, sizeof(msg), "duplicate key '%s'",
                         ytree_show(ynode_span(d), k, sizeof(k)));
                yaml_mark_t dm = { 0, d->line - 1, d->col - 1 };
                node_free(n);
                return berr(b, &dm, VG_EPARSE, msg);
            }
        }
        return attach(b, n, m);
    }
    default:
        return 0;
    }
}

int ystream_parse(const char *name, const void *text, size_t len, struct ystream *out,
                  struct errbuf *eb)
{
    struct builder b = { .name = name, .eb = eb, .out = out };
    yaml_parser_t parser;
    yaml_event_t ev;
    int rc = 0;
    bool done = false;

    out->docs = NULL;
    out->ndocs = 0;
    if (len > YTREE_MAX_BYTES) {
        errbuf_set(eb, "%s: %zu bytes, more than the %u allowed for a rule file", name, len,
                   YTREE_MAX_BYTES);
        return VG_ELIMIT;
    }
    if (!yaml_parser_initialize(&parser)) {
        errbuf_set(eb, "%s: cannot initialize the YAML parser", name);
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, text, len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            char msg[300];
            snprintf(msg, sizeof(msg), "yaml: %s%s%s", parser.problem ? parser.problem : "error",
                     parser.context ? " " : "", parser.context ? parser.context : "");
            rc = berr(&b, &parser.problem_mark, VG_EPARSE, msg);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&b, &ev);
        yaml_event_delete(&ev);
        if (rc < 0) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    for (int i = b.depth - 1; i >= 0; i--) {
        node_free(b.stack[i]);
    }
    if (b.in_doc) {
        node_free(b.doc);
    }
    if (rc < 0) {
        ystream_release(out);
    }
    return rc;
}

const struct ynode *ynode_get(const struct ynode *map, const char *key)
{
    size_t kn = strlen(key);

    if (!map || map->type != YN_MAP) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < map->nkids; i += 2) {
        const struct ynode *k = map->kids[i];
        if (k->n == kn && memcmp(k->s, key, kn) == 0) {
            return map->kids[i + 1];
        }
    }
    return NULL;
}

static bool eq_any(const char *s, const char *const *words)
{
    for (; *words; words++) {
        if (strcmp(s, *words) == 0) {
            return true;
        }
    }
    return false;
}

static bool parse_int(const char *s, size_t n, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    int base = 10;
    uint64_t v = 0;
    uint64_t limit;

    if (n == 0) {
        return false;
    }
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
        if (p != s) {
            return false; /* 1.2 core: no sign on hex and octal */
        }
        base = p[1] == 'x' ? 16 : 8;
        p += 2;
    }
    if (p == s + n) {
        return false;
    }
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < s + n; p++) {
        int d;
        if (*p >= '0' && *p <= '9') {
            d = *p - '0';
        } else if (base == 16 && *p >= 'a' && *p <= 'f') {
            d = *p - 'a' + 10;
        } else if (base == 16 && *p >= 'A' && *p <= 'F') {
            d = *p - 'A' + 10;
        } else {
            return false;
        }
        if (d >= base || v > (limit - (uint64_t)d) / (uint64_t)base) {
            return false;
        }
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool parse_float(const char *s, size_t n, double *out)
{
    static const char *const inf[] = { ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL };
    static const char *const ninf[] = { "-.inf", "-.Inf", "-.INF", NULL };
    static const char *const nan[] = { ".nan", ".NaN", ".NAN", NULL };
    bool digit = false;
    bool mark = false;

    if (eq_any(s, inf)) {
        *out = INFINITY;
        return true;
    }
    if (eq_any(s, ninf)) {
        *out = -INFINITY;
        return true;
    }
    if (eq_any(s, nan)) {
        *out = NAN;
        return true;
    }
    /* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? with a point or
     * an exponent: strtod alone would also take hex floats and "infinity". */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            digit = true;
        } else if (c == '.' || c == 'e' || c == 'E') {
            mark = true;
        } else if (c != '-' && c != '+') {
            return false;
        }
    }
    if (!digit || !mark) {
        return false;
    }
    char *end;
    double d = strtod(s, &end);
    if (end != s + n) {
        return false;
    }
    *out = d;
    return true;
}

enum yscalar ynode_scalar(const struct ynode *n, int64_t *i, double *f)
{
    static const char *const nulls[] = { "null", "Null", "NULL", "~", NULL };
    static const char *const trues[] = { "true", "True", "TRUE", NULL };
    static const char *const falses[] = { "false", "False", "FALSE", NULL };
    int64_t iv;
    double fv;

    if (n->type != YN_SCALAR) {
        return YS_STR;
    }
    if (n->quoted || memchr(n->s, 0, n->n)) {
        return YS_STR;
    }
    if (n->n == 0 || eq_any(n->s, nulls)) {
        return YS_NULL;
    }
    if (eq_any(n->s, trues) || eq_any(n->s, falses)) {
        if (i) {
            *i = eq_any(n->s, trues);
        }
        return YS_BOOL;
    }
    if (parse_int(n->s, n->n, &iv)) {
        if (i) {
            *i = iv;
        }
        return YS_INT;
    }
    if (parse_float(n->s, n->n, &fv)) {
        if (f) {
            *f = fv;
        }
        return YS_FLOAT;
    }
    return YS_STR;
}

static int to_mp(const struct ynode *n, struct buf *out, int depth)
{
    int rc = 0;
    int64_t iv;
    double fv;

    if (depth > MP_MAX_DEPTH) {
        return VG_ELIMIT;
    }
    switch (n->type) {
    case YN_SCALAR:
        switch (ynode_scalar(n, &iv, &fv)) {
        case YS_NULL:
            return mp_put_nil(out);
        case YS_BOOL:
            return mp_put_bool(out, iv != 0);
        case YS_INT:
            return mp_put_i64(out, iv);
        case YS_FLOAT:
            return mp_put_f64(out, fv);
        case YS_STR:
            return mp_put_str(out, n->s, n->n);
        }
        return 0;
    case YN_SEQ:
        if ((rc = mp_put_array(out, (uint32_t)n->nkids)) < 0) {
            return rc;
        }
        for (size_t i = 0; i < n->nkids && rc == 0; i++) {
            rc = to_mp(n->kids[i], out, depth + 1);
        }
        return rc;
    case YN_MAP:
        if ((rc = mp_put_map(out, (uint32_t)(n->nkids / 2))) < 0) {
            return rc;
        }
        for (size_t i = 0; i + 1 < n->nkids && rc == 0; i += 2) {
            if ((rc = mp_put_str(out, n->kids[i]->s, n->kids[i]->n)) == 0) {
                rc = to_mp(n->kids[i + 1], out, depth + 1);
            }
        }
        return rc;
    }
    return 0;
}

int ynode_to_mp(const struct ynode *n, struct buf *out)
{
    if (!n) {
        return mp_put_nil(out);
    }
    return to_mp(n, out, 0);
}
