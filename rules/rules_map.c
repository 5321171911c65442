/* rules/rules_map.c: the logsource and field mapping (schemas/sigma_map.yaml, whose
 * header documents the format) from YAML into struct sigma_map. Unknown keys and wrong
 * types are errors with file, line and column. Pure; any thread. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "rules/rules_int.h"

struct mctx {
    const char *name;
    struct errbuf *eb;
};

static int merr(struct mctx *c, const struct ynode *n, const char *fmt, ...) VG_PRINTF(3, 4);

static int merr(struct mctx *c, const struct ynode *n, const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    errbuf_set(c->eb, "%s:%u:%u: %s", c->name, n ? n->line : 0, n ? n->col : 0, msg);
    return VG_ECONFIG;
}

static char *lower_dup(const struct ynode *n)
{
    char *s = xstrndup(n->s, n->n);
    for (char *p = s; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p + 32);
        }
    }
    return s;
}

int rules__tgt_parse(struct span s, bool allow_text, struct tgt *t)
{
    memset(t, 0, sizeof(*t));
    if (span_eq_str(s, "raw")) {
        if (!allow_text) {
            return -EINVAL;
        }
        t->kind = TGT_RAW_TEXT;
        return 0;
    }
    if (span_starts_with(s, SPAN_LIT("raw."))) {
        if (s.n == 4 || memchr(s.p, 0, s.n)) {
            return -EINVAL;
        }
        /* no empty segments: "raw.a..b" names nothing */
        for (size_t i = 4; i < s.n; i++) {
            if (s.p[i] == '.' && (i == 4 || i + 1 == s.n || s.p[i + 1] == '.')) {
                return -EINVAL;
            }
        }
        t->kind = TGT_RAW;
        t->pathlen = s.n - 4;
        t->path = xstrndup((const char *)s.p + 4, t->pathlen);
        return 0;
    }
    int f = vg_field_lookup(s);
    if (f < 0 || f == VG_F_RAW) {
        return -EINVAL;
    }
    t->kind = TGT_FIELD;
    t->field = f;
    return 0;
}

void rules__tgt_release(struct tgt *t)
{
    free(t->path);
    t->path = NULL;
}

static void tgts_free(struct tgt *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rules__tgt_release(&t[i]);
    }
    free(t);
}

static void lsrc_release(struct lsrc *l)
{
    free(l->name);
    for (int k = 0; k < LS_NKEYS; k++) {
        for (size_t i = 0; i < l->when[k].nvals; i++) {
            free(l->when[k].vals[i]);
        }
        free(l->when[k].vals);
    }
    for (size_t a = 0; a < l->nalts; a++) {
        for (size_t c = 0; c < l->alts[a].nconds; c++) {
            struct lsrc_cond *cd = &l->alts[a].conds[c];
            for (size_t i = 0; i < cd->nvals; i++) {
                free(cd->vals[i]);
            }
            free(cd->vals);
        }
        free(l->alts[a].conds);
    }
    free(l->alts);
    for (size_t i = 0; i < l->nfields; i++) {
        free(l->fields[i].name);
        tgts_free(l->fields[i].tgts, l->fields[i].ntgts);
    }
    free(l->fields);
    tgts_free(l->kw, l->nkw);
}

void rules__map_release(struct sigma_map *m)
{
    for (size_t i = 0; i < m->nls; i++) {
        lsrc_release(&m->ls[i]);
    }
    free(m->ls);
    m->ls = NULL;
    m->nls = 0;
}

static bool is_null(const struct ynode *n)
{
    return n->type == YN_SCALAR && ynode_scalar(n, NULL, NULL) == YS_NULL;
}

/* A value or a list of values (strings; ~ for absent) into vals / absent_ok. */
static int value_set(struct mctx *c, const struct ynode *v, char ***vals, size_t *nvals,
                     bool *absent_ok, bool *any)
{
    const struct ynode *const *items = &v;
    size_t n = 1;

    if (v->type == YN_SEQ) {
        items = (const struct ynode *const *)v->kids;
        n = v->nkids;
    }
    *vals = xcalloc(n ? n : 1, sizeof(**vals));
    *nvals = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ynode *it = items[i];
        if (it->type != YN_SCALAR) {
            return merr(c, it, "expected a value or a list of values");
        }
        if (is_null(it)) {
            *absent_ok = true;
        } else if (any && it->n == 1 && it->s[0] == '*') {
            *any = true;
        } else {
            (*vals)[(*nvals)++] = lower_dup(it);
        }
    }
    return 0;
}

static int targets(struct mctx *c, const struct ynode *v, bool allow_text, struct tgt **out,
                   size_t *nout)
{
    const struct ynode *const *items = &v;
    size_t n = 1;

    if (v->type == YN_SEQ) {
        items = (const struct ynode *const *)v->kids;
        n = v->nkids;
    }
    *out = xcalloc(n ? n : 1, sizeof(**out));
    *nout = 0;
    for (size_t i = 0; i < n; i++) {
        char show[96];
        if (items[i]->type != YN_SCALAR) {
            return merr(c, items[i], "expected a field name or raw.<path>");
        }
        if (rules__tgt_parse(ynode_span(items[i]), allow_text, &(*out)[*nout]) < 0) {
            return merr(c, items[i], "'%s' is not a normalized field or raw.<path>%s",
                        ytree_show(ynode_span(items[i]), show, sizeof(show)),
                        allow_text ? " (or raw)" : "");
        }
        (*nout)++;
    }
    if (*nout == 0) {
        return merr(c, v, "an empty list of targets");
    }
    return 0;
}

static int parse_when(struct mctx *c, const struct ynode *w, struct lsrc *l)
{
    static const char *const keys[LS_NKEYS] = { "category", "product", "service" };

    if (w->type != YN_MAP) {
        return merr(c, w, "'when' must be a map of category, product, service");
    }
    for (size_t i = 0; i + 1 < w->nkids; i += 2) {
        const struct ynode *k = w->kids[i];
        int which = -1;
        for (int j = 0; j < LS_NKEYS; j++) {
            if (span_eq_str(ynode_span(k), keys[j])) {
                which = j;
            }
        }
        if (which < 0) {
            char show[96];
            return merr(c, k, "unknown logsource key '%s' (category, product, service)",
                        ytree_show(ynode_span(k), show, sizeof(show)));
        }
        struct lsrc_when *wh = &l->when[which];
        int rc = value_set(c, w->kids[i + 1], &wh->vals, &wh->nvals, &wh->absent_ok, &wh->any);
        if (rc < 0) {
            return rc;
        }
    }
    /* A key the entry does not name must be absent from the rule. */
    for (int j = 0; j < LS_NKEYS; j++) {
        if (!l->when[j].vals) {
            l->when[j].absent_ok = true;
        }
    }
    return 0;
}

static int parse_events(struct mctx *c, const struct ynode *ev, struct lsrc *l)
{
    if (ev->type != YN_SEQ) {
        return merr(c, ev, "'events' must be a list of maps");
    }
    l->alts = xcalloc(ev->nkids ? ev->nkids : 1, sizeof(*l->alts));
    for (size_t a = 0; a < ev->nkids; a++) {
        const struct ynode *m = ev->kids[a];
        struct lsrc_alt *alt = &l->alts[l->nalts++];
        if (m->type != YN_MAP) {
            return merr(c, m, "each 'events' entry must be a map of field: value(s)");
        }
        alt->conds = xcalloc(m->nkids / 2 + 1, sizeof(*alt->conds));
        for (size_t i = 0; i + 1 < m->nkids; i += 2) {
            struct lsrc_cond *cd = &alt->conds[alt->nconds++];
            int f = vg_field_lookup(ynode_span(m->kids[i]));
            char show[96];
            if (f < 0 || f == VG_F_RAW) {
                return merr(c, m->kids[i], "'%s' is not a normalized field",
                            ytree_show(ynode_span(m->kids[i]), show, sizeof(show)));
            }
            cd->field = f;
            int rc = value_set(c, m->kids[i + 1], &cd->vals, &cd->nvals, &cd->absent_ok, NULL);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int parse_fields(struct mctx *c, const struct ynode *fm, struct lsrc *l)
{
    if (fm->type != YN_MAP) {
        return merr(c, fm, "'fields' must be a map of Sigma field: [targets]");
    }
    l->fields = xcalloc(fm->nkids / 2 + 1, sizeof(*l->fields));
    for (size_t i = 0; i + 1 < fm->nkids; i += 2) {
        struct lsrc_field *f = &l->fields[l->nfields++];
        f->name = xstrndup(fm->kids[i]->s, fm->kids[i]->n);
        int rc = targets(c, fm->kids[i + 1], false, &f->tgts, &f->ntgts);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int parse_lsrc(struct mctx *c, const struct ynode *e, struct lsrc *l)
{
    const struct ynode *name = NULL;
    const struct ynode *when = NULL;
    int rc;

    if (e->type != YN_MAP) {
        return merr(c, e, "each logsource must be a map");
    }
    l->unmapped = UNMAPPED_REJECT;
    for (size_t i = 0; i + 1 < e->nkids; i += 2) {
        struct span k = ynode_span(e->kids[i]);
        const struct ynode *v = e->kids[i + 1];
        rc = 0;
        if (span_eq_str(k, "name")) {
            name = v;
        } else if (span_eq_str(k, "when")) {
            when = v;
            rc = parse_when(c, v, l);
        } else if (span_eq_str(k, "events")) {
            rc = parse_events(c, v, l);
        } else if (span_eq_str(k, "fields")) {
            rc = parse_fields(c, v, l);
        } else if (span_eq_str(k, "unmapped")) {
            if (span_eq_str(ynode_span(v), "raw")) {
                l->unmapped = UNMAPPED_RAW;
            } else if (span_eq_str(ynode_span(v), "normalized")) {
                l->unmapped = UNMAPPED_NORMALIZED;
            } else if (span_eq_str(ynode_span(v), "reject")) {
                l->unmapped = UNMAPPED_REJECT;
            } else {
                rc = merr(c, v, "'unmapped' must be raw, normalized or reject");
            }
        } else if (span_eq_str(k, "keywords")) {
            rc = targets(c, v, true, &l->kw, &l->nkw);
        } else {
            char show[96];
            rc = merr(c, e->kids[i],
                      "unknown key '%s' (name, when, events, fields, unmapped, keywords)",
                      ytree_show(k, show, sizeof(show)));
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (!name || name->type != YN_SCALAR || name->n == 0) {
        return merr(c, e, "a logsource needs a 'name'");
    }
    if (!when) {
        return merr(c, e, "logsource '%s' needs 'when'", name->s);
    }
    if (!l->alts) {
        return merr(c, e, "logsource '%s' needs 'events'", name->s);
    }
    l->name = xstrndup(name->s, name->n);
    return 0;
}

int rules__map_parse(const char *name, const void *text, size_t len, struct sigma_map *m,
                     struct errbuf *eb)
{
    struct mctx c = { name, eb };
    struct ystream ys;
    const struct ynode *root;
    const struct ynode *ls = NULL;
    int rc;

    memset(m, 0, sizeof(*m));
    if ((rc = ystream_parse(name, text, len, &ys, eb)) < 0) {
        return VG_ECONFIG;
    }
    if (ys.ndocs != 1 || !(root = ys.docs[0]) || root->type != YN_MAP) {
        rc = merr(&c, NULL, "the mapping must be one YAML document holding a map");
        goto done;
    }
    for (size_t i = 0; i + 1 < root->nkids; i += 2) {
        struct span k = ynode_span(root->kids[i]);
        const struct ynode *v = root->kids[i + 1];
        if (span_eq_str(k, "version")) {
            int64_t ver;
            if (ynode_scalar(v, &ver, NULL) != YS_INT || ver != 1) {
                rc = merr(&c, v, "unsupported mapping version (this vigil reads version 1)");
                goto done;
            }
        } else if (span_eq_str(k, "logsources")) {
            ls = v;
        } else {
            char show[96];
            rc = merr(&c, root->kids[i], "unknown key '%s' (version, logsources)",
                      ytree_show(k, show, sizeof(show)));
            goto done;
        }
    }
    if (!ls || ls->type != YN_SEQ) {
        rc = merr(&c, root, "'logsources' must be a list");
        goto done;
    }
    m->ls = xcalloc(ls->nkids ? ls->nkids : 1, sizeof(*m->ls));
    for (size_t i = 0; i < ls->nkids; i++) {
        if ((rc = parse_lsrc(&c, ls->kids[i], &m->ls[m->nls++])) < 0) {
            goto done;
        }
    }
    rc = 0;
done:
    ystream_release(&ys);
    if (rc < 0) {
        rules__map_release(m);
    }
    return rc;
}
