/* rules/rules_load.c: Sigma rule files -> struct ruleset (rules.h rules_load).
 *
 * Phase 1 walks the files in a stable order (paths as given, folders sorted by name) and
 * reads every YAML document: a detection rule is compiled at once (logsource through
 * the mapping, each field to a shared slot, values through rules_value.c, the condition
 * through rules_cond.c); a correlation rule is parsed and kept pending. Phase 2 resolves
 * the correlations' references by id or name, repeatedly, since correlations may refer to
 * correlations; what is left refers to nothing loaded or forms a cycle. A rule that
 * fails anywhere is dropped whole and reported (file, line, reason); it leaves at most
 * unused slots behind. Phase 3 links rules to the correlations they feed, decides which
 * rules alert on their own (Sigma `generate`) and indexes detections by logsource.
 *
 * Blocks (reads files). Everything built is owned by the ruleset. */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "rules/rules_int.h"

#define LOAD_MAX_DIR_DEPTH 32
#define MSG_CAP            400

/* ---- report ---- */

void rules_report_init(struct rules_report *rep)
{
    memset(rep, 0, sizeof(*rep));
}

void rules_report_release(struct rules_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        struct rules_report_item *it = &rep->items[i];
        free(it->file);
        free(it->title);
        free(it->id);
        free(it->reason);
    }
    free(rep->items);
    memset(rep, 0, sizeof(*rep));
}

static size_t report_add(struct rules_report *rep, const char *file, unsigned line, unsigned col)
{
    if (rep->n == rep->cap) {
        rep->cap = rep->cap ? 2 * rep->cap : 16;
        rep->items = xrealloc(rep->items, rep->cap * sizeof(*rep->items));
    }
    struct rules_report_item *it = &rep->items[rep->n];
    memset(it, 0, sizeof(*it));
    it->file = xstrdup(file);
    it->line = line;
    it->column = col;
    it->status = RULES_LOADED;
    return rep->n++;
}

/* ---- the loader ---- */

/* A rule document as read in phase 1. */
struct doc {
    size_t item; /* report item */
    char *file;
    unsigned line;
    char *id, *name, *title;
    bool correlation;
    int state; /* 0 pending, 1 loaded (rule index), -1 failed */
    size_t rule;
    /* correlation, pending */
    struct rule pend;
    char **refs; /* as written */
    unsigned *ref_line, *ref_col;
    size_t nrefs;
    struct ynode *aliases_owner; /* not owned: aliases read in phase 1 into below */
    char **alias_name;           /* alias, rule, field triples */
    char **alias_rule;
    char **alias_field;
    size_t naliases;
    char *cond_text; /* temporal: an expression over the references */
    bool generate;
};

struct loader {
    struct ruleset *rs;
    struct rules_report *rep;
    struct doc *docs;
    size_t ndocs, capdocs;
};

static int derr(struct loader *L, struct doc *d, enum rules_status st, unsigned line, unsigned col,
                const char *fmt, ...) VG_PRINTF(6, 7);

/* Marks d failed with a reason "file:line:col: msg". */
static int derr(struct loader *L, struct doc *d, enum rules_status st, unsigned line, unsigned col,
                const char *fmt, ...)
{
    char msg[MSG_CAP];
    char full[MSG_CAP + 300];
    va_list ap;
    struct rules_report_item *it = &L->rep->items[d->item];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "%s:%u:%u: %s", d->file, line ? line : d->line, line ? col : 1,
             msg);
    if (it->reason) {
        return -1; /* the first failure is the cause */
    }
    it->reason = xstrdup(full);
    it->status = st;
    if (line) {
        it->line = line;
        it->column = col;
    }
    d->state = -1;
    return -1;
}

static char *dup_scalar(const struct ynode *n)
{
    return n && n->type == YN_SCALAR ? xstrndup(n->s, n->n) : NULL;
}

/* ---- slots ---- */

static void tgt_key(const struct tgt *t, struct buf *b)
{
    int rc = 0;
    switch (t->kind) {
    case TGT_FIELD:
        rc = buf_appendf(b, "f:%d,", t->field);
        break;
    case TGT_RAW:
        rc = buf_appendf(b, "r:%zu:", t->pathlen);
        if (rc == 0) {
            rc = buf_append(b, t->path, t->pathlen);
        }
        if (rc == 0) {
            rc = buf_append_byte(b, ',');
        }
        break;
    case TGT_RAW_TEXT:
        rc = buf_append_str(b, "t,");
        break;
    }
    (void)rc; /* keys are short: targets of a few names and paths */
}

static struct tgt tgt_copy(const struct tgt *t)
{
    struct tgt c = *t;
    if (t->path) {
        c.path = xstrndup(t->path, t->pathlen);
    }
    return c;
}

/* Interns a slot over tgts (copied). */
static int slot_intern(struct ruleset *rs, const struct tgt *tgts, size_t n, bool any)
{
    struct buf key;

    buf_init(&key, 1 << 20);
    if (buf_append_str(&key, any ? "any|" : "first|") < 0) {
        buf_release(&key);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        tgt_key(&tgts[i], &key);
    }
    for (size_t i = 0; i < rs->nslots; i++) {
        if (strcmp(rs->slots[i].key, buf_cstr(&key)) == 0) {
            buf_release(&key);
            return (int)i;
        }
    }
    rs->slots = xrealloc(rs->slots, (rs->nslots + 1) * sizeof(*rs->slots));
    struct slot *s = &rs->slots[rs->nslots];
    memset(s, 0, sizeof(*s));
    s->key = xstrdup(buf_cstr(&key));
    buf_release(&key);
    s->any = any;
    s->tgts = xcalloc(n, sizeof(*s->tgts));
    s->ntgts = n;
    s->normalized_only = true;
    for (size_t i = 0; i < n; i++) {
        s->tgts[i] = tgt_copy(&tgts[i]);
        s->normalized_only &= tgts[i].kind == TGT_FIELD;
    }
    return (int)rs->nslots++;
}

/* Resolves a Sigma field name under logsource ls into a slot. Returns the slot, or
 * -ENOTSUP (unmapped) / VG_EPARSE (not a usable name) with msg set. */
static int field_slot(struct ruleset *rs, const struct lsrc *ls, struct span name, char *msg,
                      size_t cap)
{
    char show[96];
    struct tgt t;

    ytree_show(name, show, sizeof(show));
    for (size_t i = 0; i < ls->nfields; i++) {
        if (span_eq_str(name, ls->fields[i].name)) {
            return slot_intern(rs, ls->fields[i].tgts, ls->fields[i].ntgts, false);
        }
    }
    if (ls->unmapped != UNMAPPED_REJECT && span_starts_with(name, SPAN_LIT("raw."))) {
        if (rules__tgt_parse(name, false, &t) < 0) {
            snprintf(msg, cap, "'%s' is not a usable raw path", show);
            return VG_EPARSE;
        }
        int s = slot_intern(rs, &t, 1, false);
        rules__tgt_release(&t);
        return s;
    }
    if (ls->unmapped == UNMAPPED_RAW) {
        char path[RULES_MAX_PATTERN + 8];
        if (name.n == 0 || name.n > RULES_MAX_PATTERN) {
            snprintf(msg, cap, "'%s' is not a usable field name", show);
            return VG_EPARSE;
        }
        snprintf(path, sizeof(path), "raw.%.*s", (int)name.n, (const char *)name.p);
        if (rules__tgt_parse(span_str(path), false, &t) < 0) {
            snprintf(msg, cap, "'%s' is not a usable field path", show);
            return VG_EPARSE;
        }
        int s = slot_intern(rs, &t, 1, false);
        rules__tgt_release(&t);
        return s;
    }
    if (ls->unmapped == UNMAPPED_NORMALIZED) {
        int f = vg_field_lookup(name);
        if (f >= 0 && f != VG_F_RAW) {
            t = (struct tgt){ .kind = TGT_FIELD, .field = f };
            return slot_intern(rs, &t, 1, false);
        }
    }
    snprintf(msg, cap, "field '%s' is not mapped for logsource '%s' (schemas/sigma_map.yaml)", show,
             ls->name);
    return -ENOTSUP;
}

/* ---- logsource ---- */

static bool when_ok(const struct lsrc_when *w, const struct ynode *v)
{
    if (w->any) {
        return true;
    }
    if (!v || (v->type == YN_SCALAR && ynode_scalar(v, NULL, NULL) == YS_NULL)) {
        return w->absent_ok;
    }
    if (v->type != YN_SCALAR) {
        return false;
    }
    for (size_t i = 0; i < w->nvals; i++) {
        if (strlen(w->vals[i]) == v->n && span_eq_nocase(ynode_span(v), span_str(w->vals[i]))) {
            return true;
        }
    }
    return false;
}

static int logsource_find(const struct sigma_map *m, const struct ynode *ls)
{
    static const char *const keys[LS_NKEYS] = { "category", "product", "service" };

    for (size_t i = 0; i < m->nls; i++) {
        bool ok = true;
        for (int k = 0; k < LS_NKEYS && ok; k++) {
            ok = when_ok(&m->ls[i].when[k], ynode_get(ls, keys[k]));
        }
        if (ok) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- detection ---- */

struct slot_ctx {
    struct ruleset *rs;
    const struct lsrc *ls;
};

static int ref_slot_cb(void *ctx, struct span field, char *msg, size_t cap)
{
    struct slot_ctx *c = ctx;
    return field_slot(c->rs, c->ls, field, msg, cap);
}

static void sel_release(struct psel *s)
{
    for (size_t a = 0; a < s->nalts; a++) {
        for (size_t f = 0; f < s->alts[a].n; f++) {
            rules__field_release(&s->alts[a].f[f]);
        }
        free(s->alts[a].f);
    }
    free(s->alts);
    free(s->name);
}

static int field_cost_cmp(const void *a, const void *b)
{
    const struct pfield *x = a;
    const struct pfield *y = b;
    return (x->cost > y->cost) - (x->cost < y->cost);
}

/* Compiles one `key: value` entry of a selection map into alt. */
static int compile_entry(struct loader *L, struct doc *d, int ls, const struct ynode *k,
                         const struct ynode *v, struct palt *alt)
{
    struct ruleset *rs = L->rs;
    const struct lsrc *src = &rs->map.ls[ls];
    char msg[MSG_CAP];
    struct span key = ynode_span(k);
    const uint8_t *bar = memchr(key.p, '|', key.n);
    struct span name = { key.p, bar ? (size_t)(bar - key.p) : key.n };
    struct span mods = { bar ? bar : key.p + key.n, bar ? key.n - name.n : 0 };
    bool keyword = name.n == 0;
    struct pfield f = { 0 };
    struct slot_ctx sc = { rs, src };
    int rc;

    if (keyword) {
        if (rs->kw_slot[ls] < 0) {
            return derr(L, d, RULES_UNSUPPORTED, k->line, k->col,
                        "keyword searches are not mapped for logsource '%s'", src->name);
        }
        f.slot = rs->kw_slot[ls];
    } else {
        rc = field_slot(rs, src, name, msg, sizeof(msg));
        if (rc < 0) {
            return derr(L, d, rc == -ENOTSUP ? RULES_UNSUPPORTED : RULES_INVALID, k->line, k->col,
                        "%s", msg);
        }
        f.slot = rc;
    }
    rc = rules__field_compile(&f, mods, v, keyword, ref_slot_cb, &sc, msg, sizeof(msg));
    if (rc < 0) {
        rules__field_release(&f);
        return derr(L, d, rc == -ENOTSUP ? RULES_UNSUPPORTED : RULES_INVALID, v->line, v->col,
                    "'%s': %s", k->s, msg);
    }
    f.name = xstrndup(k->s, k->n);
    alt->f = xrealloc(alt->f, (alt->n + 1) * sizeof(*alt->f));
    alt->f[alt->n++] = f;
    return 0;
}

static void add_alt(struct psel *s, struct palt a)
{
    s->alts = xrealloc(s->alts, (s->nalts + 1) * sizeof(*s->alts));
    s->alts[s->nalts++] = a;
}

static int compile_sel(struct loader *L, struct doc *d, int ls, const struct ynode *v,
                       struct psel *sel)
{
    struct ruleset *rs = L->rs;
    int rc;

    if (v->type == YN_MAP) {
        struct palt a = { 0 };
        if (v->nkids == 0) {
            return derr(L, d, RULES_INVALID, v->line, v->col, "selection '%s' is empty", sel->name);
        }
        add_alt(sel, a);
        for (size_t i = 0; i + 1 < v->nkids; i += 2) {
            if ((rc = compile_entry(L, d, ls, v->kids[i], v->kids[i + 1],
                                    &sel->alts[sel->nalts - 1])) < 0) {
                return rc;
            }
        }
        return 0;
    }
    if (v->type == YN_SCALAR || v->type == YN_SEQ) {
        /* keywords (scalars) and maps (alternatives) */
        struct ynode kw_list = { .type = YN_SEQ, .line = v->line, .col = v->col };
        struct ynode *items_one[1] = { (struct ynode *)v };
        struct ynode **items = v->type == YN_SEQ ? v->kids : items_one;
        size_t n = v->type == YN_SEQ ? v->nkids : 1;
        if (n == 0) {
            return derr(L, d, RULES_INVALID, v->line, v->col, "selection '%s' is empty", sel->name);
        }
        kw_list.kids = xcalloc(n, sizeof(*kw_list.kids));
        rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (items[i]->type == YN_SCALAR) {
                kw_list.kids[kw_list.nkids++] = items[i];
            } else if (items[i]->type == YN_MAP && items[i]->nkids > 0) {
                struct palt a = { 0 };
                add_alt(sel, a);
                for (size_t j = 0; j + 1 < items[i]->nkids && rc == 0; j += 2) {
                    rc = compile_entry(L, d, ls, items[i]->kids[j], items[i]->kids[j + 1],
                                       &sel->alts[sel->nalts - 1]);
                }
            } else {
                rc = derr(L, d, RULES_INVALID, items[i]->line, items[i]->col,
                          "selection '%s': a list holds strings (keywords) or maps", sel->name);
            }
        }
        if (rc == 0 && kw_list.nkids > 0) {
            struct ynode key = {
                .type = YN_SCALAR, .line = v->line, .col = v->col, .s = "", .n = 0
            };
            struct palt a = { 0 };
            add_alt(sel, a);
            rc = compile_entry(L, d, ls, &key, &kw_list, &sel->alts[sel->nalts - 1]);
        }
        free(kw_list.kids);
        (void)rs;
        return rc;
    }
    return derr(L, d, RULES_INVALID, v->line, v->col, "selection '%s' must be a map or a list",
                sel->name);
}

int rules__level_sev(const char *level)
{
    static const struct {
        const char *level;
        enum vg_severity sev;
    } tab[] = {
        { "informational", VG_SEV_INFO }, { "low", VG_SEV_NOTICE },
        { "medium", VG_SEV_WARNING },     { "high", VG_SEV_ERROR },
        { "critical", VG_SEV_CRITICAL },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(tab); i++) {
        if (strcmp(tab[i].level, level) == 0) {
            return (int)tab[i].sev;
        }
    }
    return -1;
}

static void rule_release(struct rule *r)
{
    free(r->id);
    free(r->name);
    free(r->title);
    free(r->level);
    free(r->file);
    for (size_t i = 0; i < r->ntags; i++) {
        free(r->tags[i]);
    }
    free(r->tags);
    for (size_t i = 0; i < r->nsels; i++) {
        sel_release(&r->sels[i]);
    }
    free(r->sels);
    rules__cond_free(r->cond);
    struct corr *c = &r->corr;
    for (size_t i = 0; i < c->ngroup; i++) {
        free(c->group[i]);
    }
    free(c->group);
    for (size_t i = 0; i < c->nrefs; i++) {
        free(c->refs[i].gsrc);
    }
    free(c->refs);
    free(c->value_field);
    rules__cond_free(c->expr);
    free(r->parents);
    for (size_t i = 0; i < r->ndgroup; i++) {
        free(r->dgroup[i]);
    }
    free(r->dgroup);
    free(r->dgroup_slot);
    memset(r, 0, sizeof(*r));
}

static int parse_timespan(struct span s, int64_t *ns);

/* A `vigil.*` duration: a number and s, m, h, d or w, at most RULES_MAX_DURATION. */
static int vigil_duration(struct loader *L, struct doc *d, const struct ynode *k,
                          const struct ynode *v, int64_t *out)
{
    if (v->type != YN_SCALAR || parse_timespan(ynode_span(v), out) < 0 ||
        *out > RULES_MAX_DURATION) {
        return derr(L, d, RULES_INVALID, v->line, v->col,
                    "vigil.%s must be a duration: a number and s, m, h or d (15m, 1h), at most "
                    "366d",
                    k->s);
    }
    return 0;
}

/* The rule's `vigil:` map (rules/README.md "Rule settings"): vigil's own keys beside the
 * Sigma ones, which other tools ignore. Every key must be one of these: an unknown one
 * makes the rule invalid (a misspelled setting must not be silently ignored). */
static int read_vigil(struct loader *L, struct doc *d, const struct ynode *v, struct rule *r)
{
    if (v->type != YN_MAP) {
        return derr(L, d, RULES_INVALID, v->line, v->col,
                    "vigil must be a map (group-by, resolve_after, update_every)");
    }
    for (size_t i = 0; i + 1 < v->nkids; i += 2) {
        const struct ynode *k = v->kids[i];
        const struct ynode *x = v->kids[i + 1];
        char show[64];
        if (span_eq_str(ynode_span(k), "resolve_after")) {
            if (vigil_duration(L, d, k, x, &r->resolve_after_ns) < 0) {
                return -1;
            }
        } else if (span_eq_str(ynode_span(k), "update_every")) {
            if (vigil_duration(L, d, k, x, &r->update_every_ns) < 0) {
                return -1;
            }
        } else if (span_eq_str(ynode_span(k), "group-by")) {
            if (d->correlation) {
                return derr(L, d, RULES_INVALID, k->line, k->col,
                            "vigil.group-by is for detections: a correlation's incidents are "
                            "its own group-by's");
            }
            const struct ynode *const *names = (const struct ynode *const *)&x;
            size_t n = 1;
            if (x->type == YN_SEQ) {
                names = (const struct ynode *const *)x->kids;
                n = x->nkids;
            }
            if (n == 0 || n > RULES_MAX_GROUP_BY) {
                return derr(L, d, RULES_INVALID, x->line, x->col,
                            "vigil.group-by needs 1 to %d field names", RULES_MAX_GROUP_BY);
            }
            r->dgroup = xcalloc(n + 1, sizeof(*r->dgroup));
            for (size_t j = 0; j < n; j++) {
                if (names[j]->type != YN_SCALAR || names[j]->n == 0) {
                    return derr(L, d, RULES_INVALID, names[j]->line, names[j]->col,
                                "vigil.group-by must name fields");
                }
                r->dgroup[r->ndgroup++] = xstrndup(names[j]->s, names[j]->n);
            }
        } else {
            return derr(L, d, RULES_INVALID, k->line, k->col,
                        "unknown key 'vigil.%s' (group-by, resolve_after, update_every)",
                        ytree_show(ynode_span(k), show, sizeof(show)));
        }
    }
    return 0;
}

/* Common keys of rules and correlations. Returns 0 or -1 (d failed). */
static int read_meta(struct loader *L, struct doc *d, const struct ynode *root, struct rule *r)
{
    const struct ynode *n;

    r->title = xstrdup(d->title);
    r->id = d->id ? xstrdup(d->id) : NULL;
    r->name = d->name ? xstrdup(d->name) : NULL;
    r->file = xstrdup(d->file);
    r->line = d->line;
    r->sev = VG_SEV_WARNING;
    if ((n = ynode_get(root, "level"))) {
        int sev;
        if (n->type != YN_SCALAR || (sev = rules__level_sev(n->s)) < 0) {
            return derr(L, d, RULES_INVALID, n->line, n->col,
                        "level must be informational, low, medium, high or critical");
        }
        r->level = xstrdup(n->s);
        r->sev = (enum vg_severity)sev;
    }
    if ((n = ynode_get(root, "tags"))) {
        if (n->type != YN_SEQ) {
            return derr(L, d, RULES_INVALID, n->line, n->col, "tags must be a list");
        }
        r->tags = xcalloc(n->nkids + 1, sizeof(*r->tags));
        for (size_t i = 0; i < n->nkids; i++) {
            if (n->kids[i]->type != YN_SCALAR) {
                return derr(L, d, RULES_INVALID, n->kids[i]->line, n->kids[i]->col,
                            "tags must be strings");
            }
            r->tags[r->ntags++] = xstrndup(n->kids[i]->s, n->kids[i]->n);
        }
    }
    if ((n = ynode_get(root, "status")) && n->type == YN_SCALAR &&
        strcmp(n->s, "unsupported") == 0) {
        return derr(L, d, RULES_UNSUPPORTED, n->line, n->col, "the rule says status: unsupported");
    }
    if ((n = ynode_get(root, "vigil")) && read_vigil(L, d, n, r) < 0) {
        return -1;
    }
    return 0;
}

/* A detection's incident group (rules/README.md "Alert life cycle"): vigil.group-by's
 * fields through the rule's logsource, else the normalized identity of what it fired
 * on, so a shell in pod A and one in pod B are two incidents. */
static int detection_group(struct loader *L, struct doc *d, int ls, struct rule *r)
{
    static const char *const identity[] = { "host", "namespace", "pod", "container_id" };
    struct ruleset *rs = L->rs;

    if (r->ndgroup == 0) {
        r->dgroup = xcalloc(VG_ARRAY_LEN(identity) + 1, sizeof(*r->dgroup));
        r->dgroup_slot = xcalloc(VG_ARRAY_LEN(identity) + 1, sizeof(*r->dgroup_slot));
        for (size_t i = 0; i < VG_ARRAY_LEN(identity); i++) {
            struct tgt t = { .kind = TGT_FIELD, .field = vg_field_lookup(span_str(identity[i])) };
            r->dgroup[i] = xstrdup(identity[i]);
            r->dgroup_slot[i] = slot_intern(rs, &t, 1, false);
        }
        r->ndgroup = VG_ARRAY_LEN(identity);
        return 0;
    }
    r->dgroup_slot = xcalloc(r->ndgroup + 1, sizeof(*r->dgroup_slot));
    for (size_t i = 0; i < r->ndgroup; i++) {
        char msg[MSG_CAP];
        int s = field_slot(rs, &rs->map.ls[ls], span_str(r->dgroup[i]), msg, sizeof(msg));
        if (s < 0) {
            return derr(L, d, s == -ENOTSUP ? RULES_UNSUPPORTED : RULES_INVALID, 0, 0,
                        "vigil.group-by: %s", msg);
        }
        r->dgroup_slot[i] = s;
    }
    return 0;
}

static int compile_detection(struct loader *L, struct doc *d, const struct ynode *root)
{
    struct ruleset *rs = L->rs;
    const struct ynode *lsn = ynode_get(root, "logsource");
    const struct ynode *det = ynode_get(root, "detection");
    struct rule r = { 0 };
    char msg[MSG_CAP];
    int rc;

    if (!lsn || lsn->type != YN_MAP) {
        return derr(L, d, RULES_INVALID, lsn ? lsn->line : 0, lsn ? lsn->col : 0,
                    "a rule needs a logsource map");
    }
    if (!det || det->type != YN_MAP) {
        return derr(L, d, RULES_INVALID, det ? det->line : 0, det ? det->col : 0,
                    "a rule needs a detection map");
    }
    int ls = logsource_find(&rs->map, lsn);
    if (ls < 0) {
        static const char *const keys[] = { "category", "product", "service" };
        char what[300] = "";
        size_t o = 0;
        for (size_t i = 0; i < 3; i++) {
            const struct ynode *v = ynode_get(lsn, keys[i]);
            if (v && v->type == YN_SCALAR && o < sizeof(what)) {
                char show[64];
                o += (size_t)snprintf(what + o, sizeof(what) - o, "%s%s=%s", o ? " " : "", keys[i],
                                      ytree_show(ynode_span(v), show, sizeof(show)));
            }
        }
        return derr(L, d, RULES_UNSUPPORTED, lsn->line, lsn->col,
                    "logsource %s is not mapped (schemas/sigma_map.yaml)", o ? what : "{}");
    }
    if (read_meta(L, d, root, &r) < 0) {
        rule_release(&r);
        return -1;
    }
    r.type = RULES_DETECTION;
    r.ls = ls;
    if (detection_group(L, d, ls, &r) < 0) {
        rule_release(&r);
        return -1;
    }
    const struct ynode *cond = NULL;
    for (size_t i = 0; i + 1 < det->nkids; i += 2) {
        const struct ynode *k = det->kids[i];
        const struct ynode *v = det->kids[i + 1];
        if (span_eq_str(ynode_span(k), "condition")) {
            cond = v;
            continue;
        }
        if (span_eq_str(ynode_span(k), "timeframe")) {
            rule_release(&r);
            return derr(L, d, RULES_UNSUPPORTED, k->line, k->col,
                        "'timeframe' (obsolete Sigma aggregation; use a correlation rule)");
        }
        if (r.nsels == RULES_MAX_SELS) {
            rule_release(&r);
            return derr(L, d, RULES_INVALID, k->line, k->col, "more than %d selections",
                        RULES_MAX_SELS);
        }
        r.sels = xrealloc(r.sels, (r.nsels + 1) * sizeof(*r.sels));
        struct psel *sel = &r.sels[r.nsels++];
        memset(sel, 0, sizeof(*sel));
        sel->name = xstrndup(k->s, k->n);
        if (compile_sel(L, d, ls, v, sel) < 0) {
            rule_release(&r);
            return -1;
        }
        for (size_t a = 0; a < sel->nalts; a++) {
            qsort(sel->alts[a].f, sel->alts[a].n, sizeof(*sel->alts[a].f), field_cost_cmp);
        }
    }
    if (!cond) {
        rule_release(&r);
        return derr(L, d, RULES_INVALID, det->line, det->col, "detection has no condition");
    }
    char **names = xcalloc(r.nsels + 1, sizeof(*names));
    for (size_t i = 0; i < r.nsels; i++) {
        names[i] = r.sels[i].name;
    }
    const struct ynode *const *conds = (const struct ynode *const *)&cond;
    size_t nconds = 1;
    if (cond->type == YN_SEQ) {
        conds = (const struct ynode *const *)cond->kids;
        nconds = cond->nkids;
    }
    rc = nconds ? 0 : VG_EPARSE;
    snprintf(msg, sizeof(msg), "an empty condition");
    const struct ynode *bad = cond;
    for (size_t i = 0; i < nconds && rc == 0; i++) {
        struct cnode *c = NULL;
        bad = conds[i];
        if (conds[i]->type != YN_SCALAR) {
            rc = VG_EPARSE;
            snprintf(msg, sizeof(msg), "a condition must be a string (or a list of them)");
            break;
        }
        rc = rules__cond_parse(conds[i]->s, conds[i]->n, names, r.nsels, &c, msg, sizeof(msg));
        if (rc == 0) {
            /* a list of conditions: any of them (deprecated) */
            if (!r.cond) {
                r.cond = c;
            } else {
                if (r.cond->kind != CN_OR || i == 1) {
                    struct cnode *o = xcalloc(1, sizeof(*o));
                    o->kind = CN_OR;
                    o->kids = xcalloc(1, sizeof(*o->kids));
                    o->kids[0] = r.cond;
                    o->n = 1;
                    r.cond = o;
                }
                r.cond->kids = xrealloc(r.cond->kids, (r.cond->n + 1) * sizeof(*r.cond->kids));
                r.cond->kids[r.cond->n++] = c;
            }
        }
    }
    free(names);
    if (rc < 0) {
        rule_release(&r);
        return derr(L, d, rc == -ENOTSUP ? RULES_UNSUPPORTED : RULES_INVALID, bad->line, bad->col,
                    "condition: %s", msg);
    }
    if (r.nsels > rs->max_sels) {
        rs->max_sels = r.nsels;
    }
    rs->rules = xrealloc(rs->rules, (rs->nrules + 1) * sizeof(*rs->rules));
    rs->rules[rs->nrules] = r;
    d->rule = rs->nrules++;
    d->state = 1;
    return 0;
}

/* ---- correlations: phase 1 ---- */

static int parse_timespan(struct span s, int64_t *ns)
{
    /* number + unit (s, m, h, d; also w), as the correlation spec writes it */
    if (s.n < 2) {
        return VG_EPARSE;
    }
    char u = (char)s.p[s.n - 1];
    if (u != 's' && u != 'm' && u != 'h' && u != 'd' && u != 'w') {
        return VG_EPARSE;
    }
    return vg_duration_parse(s, ns) == 0 && *ns > 0 ? 0 : VG_EPARSE;
}

static int parse_count_cond(struct loader *L, struct doc *d, const struct ynode *c, struct corr *co,
                            bool want_field)
{
    bool any = false;

    co->lo = 0;
    co->hi = INT64_MAX;
    for (size_t i = 0; i + 1 < c->nkids; i += 2) {
        const struct ynode *k = c->kids[i];
        const struct ynode *v = c->kids[i + 1];
        int64_t x;
        if (span_eq_str(ynode_span(k), "field")) {
            if (!want_field || v->type != YN_SCALAR || v->n == 0) {
                return derr(L, d, RULES_INVALID, k->line, k->col,
                            want_field ? "condition 'field' must name one field"
                                       : "condition 'field' belongs to value_count");
            }
            co->value_field = xstrndup(v->s, v->n);
            continue;
        }
        if (ynode_scalar(v, &x, NULL) != YS_INT || x < 0) {
            return derr(L, d, RULES_INVALID, v->line, v->col,
                        "a correlation condition needs a non-negative integer");
        }
        struct span ks = ynode_span(k);
        if (span_eq_str(ks, "gt")) {
            co->lo = x + 1 > co->lo ? x + 1 : co->lo;
        } else if (span_eq_str(ks, "gte")) {
            co->lo = x > co->lo ? x : co->lo;
        } else if (span_eq_str(ks, "lt")) {
            co->hi = x - 1 < co->hi ? x - 1 : co->hi;
        } else if (span_eq_str(ks, "lte")) {
            co->hi = x < co->hi ? x : co->hi;
        } else if (span_eq_str(ks, "eq")) {
            co->lo = x > co->lo ? x : co->lo;
            co->hi = x < co->hi ? x : co->hi;
        } else {
            char show[64];
            return derr(L, d, RULES_INVALID, k->line, k->col,
                        "unknown condition '%s' (gt, gte, lt, lte, eq%s)",
                        ytree_show(ks, show, sizeof(show)), want_field ? ", field" : "");
        }
        any = true;
    }
    if (!any) {
        return derr(L, d, RULES_INVALID, c->line, c->col, "the condition has no comparison");
    }
    if (want_field && !co->value_field) {
        return derr(L, d, RULES_INVALID, c->line, c->col, "value_count needs condition 'field'");
    }
    if (co->lo > co->hi) {
        return derr(L, d, RULES_INVALID, c->line, c->col, "the condition can never hold");
    }
    co->bounded = co->hi != INT64_MAX;
    if (co->lo == 0) {
        /* a count of zero is never observed: no window opens without an event */
        co->lo = 1;
    }
    return 0;
}

static int read_correlation(struct loader *L, struct doc *d, const struct ynode *root)
{
    const struct ynode *c = ynode_get(root, "correlation");
    struct rule *r = &d->pend;
    struct corr *co = &r->corr;
    const struct ynode *n;

    if (read_meta(L, d, root, r) < 0) {
        return -1;
    }
    if (c->type != YN_MAP) {
        return derr(L, d, RULES_INVALID, c->line, c->col, "correlation must be a map");
    }
    const struct ynode *type = ynode_get(c, "type");
    if (!type || type->type != YN_SCALAR) {
        return derr(L, d, RULES_INVALID, c->line, c->col, "correlation needs a type");
    }
    static const struct {
        const char *name;
        enum rules_type t;
    } types[] = {
        { "event_count", RULES_EVENT_COUNT },
        { "value_count", RULES_VALUE_COUNT },
        { "temporal", RULES_TEMPORAL },
        { "temporal_ordered", RULES_TEMPORAL_ORDERED },
    };
    bool found = false;
    for (size_t i = 0; i < VG_ARRAY_LEN(types); i++) {
        if (strcmp(type->s, types[i].name) == 0) {
            r->type = types[i].t;
            found = true;
        }
    }
    if (!found) {
        char show[64];
        return derr(L, d, RULES_UNSUPPORTED, type->line, type->col,
                    "correlation type '%s' is not supported (event_count, value_count, "
                    "temporal, temporal_ordered)",
                    ytree_show(ynode_span(type), show, sizeof(show)));
    }
    for (size_t i = 0; i + 1 < c->nkids; i += 2) {
        struct span k = ynode_span(c->kids[i]);
        static const char *const known[] = { "type",      "rules",   "group-by", "timespan",
                                             "condition", "aliases", "generate", NULL };
        bool ok = false;
        for (const char *const *kn = known; *kn; kn++) {
            ok |= span_eq_str(k, *kn);
        }
        if (!ok) {
            char show[64];
            return derr(L, d, RULES_UNSUPPORTED, c->kids[i]->line, c->kids[i]->col,
                        "correlation key '%s' is not supported", ytree_show(k, show, sizeof(show)));
        }
    }
    /* rules */
    n = ynode_get(c, "rules");
    if (!n || (n->type == YN_SEQ && n->nkids == 0)) {
        return derr(L, d, RULES_INVALID, c->line, c->col, "correlation needs rules");
    }
    const struct ynode *one[1] = { n };
    const struct ynode *const *items =
        n->type == YN_SEQ ? (const struct ynode *const *)n->kids : one;
    size_t ni = n->type == YN_SEQ ? n->nkids : 1;
    d->refs = xcalloc(ni, sizeof(*d->refs));
    for (size_t i = 0; i < ni; i++) {
        if (items[i]->type != YN_SCALAR || items[i]->n == 0) {
            return derr(L, d, RULES_INVALID, items[i]->line, items[i]->col,
                        "rules must be a list of rule ids or names");
        }
        for (size_t j = 0; j < d->nrefs; j++) {
            if (strcmp(d->refs[j], items[i]->s) == 0) {
                return derr(L, d, RULES_INVALID, items[i]->line, items[i]->col,
                            "rule '%s' is listed twice", items[i]->s);
            }
        }
        d->ref_line = xrealloc(d->ref_line, (d->nrefs + 1) * sizeof(*d->ref_line));
        d->ref_col = xrealloc(d->ref_col, (d->nrefs + 1) * sizeof(*d->ref_col));
        d->ref_line[d->nrefs] = items[i]->line;
        d->ref_col[d->nrefs] = items[i]->col;
        d->refs[d->nrefs++] = xstrndup(items[i]->s, items[i]->n);
    }
    if ((r->type == RULES_TEMPORAL || r->type == RULES_TEMPORAL_ORDERED) && d->nrefs < 2) {
        return derr(L, d, RULES_INVALID, n->line, n->col, "%s needs at least two rules",
                    rules_type_name(r->type));
    }
    /* group-by */
    if ((n = ynode_get(c, "group-by"))) {
        const struct ynode *g1[1] = { n };
        const struct ynode *const *gi =
            n->type == YN_SEQ ? (const struct ynode *const *)n->kids : g1;
        size_t ng = n->type == YN_SEQ ? n->nkids : 1;
        if (ng > RULES_MAX_GROUP_BY) {
            return derr(L, d, RULES_INVALID, n->line, n->col, "more than %d group-by fields",
                        RULES_MAX_GROUP_BY);
        }
        co->group = xcalloc(ng + 1, sizeof(*co->group));
        for (size_t i = 0; i < ng; i++) {
            if (gi[i]->type != YN_SCALAR || gi[i]->n == 0) {
                return derr(L, d, RULES_INVALID, gi[i]->line, gi[i]->col,
                            "group-by must be a list of field names");
            }
            co->group[co->ngroup++] = xstrndup(gi[i]->s, gi[i]->n);
        }
    }
    /* timespan */
    n = ynode_get(c, "timespan");
    if (!n || n->type != YN_SCALAR || parse_timespan(ynode_span(n), &co->span_ns) < 0) {
        return derr(L, d, RULES_INVALID, n ? n->line : c->line, n ? n->col : c->col,
                    "correlation needs a timespan: a number and s, m, h or d (5m, 1h)");
    }
    /* condition */
    n = ynode_get(c, "condition");
    if (r->type == RULES_EVENT_COUNT || r->type == RULES_VALUE_COUNT) {
        if (!n || n->type != YN_MAP) {
            return derr(L, d, RULES_INVALID, n ? n->line : c->line, n ? n->col : c->col,
                        "%s needs a condition map (gte: 10)", rules_type_name(r->type));
        }
        if (parse_count_cond(L, d, n, co, r->type == RULES_VALUE_COUNT) < 0) {
            return -1;
        }
    } else {
        co->lo = (int64_t)d->nrefs;
        co->hi = INT64_MAX;
        if (n && n->type == YN_MAP) {
            if (parse_count_cond(L, d, n, co, false) < 0) {
                return -1;
            }
            if (r->type == RULES_TEMPORAL_ORDERED && (co->lo != (int64_t)d->nrefs || co->bounded)) {
                return derr(L, d, RULES_UNSUPPORTED, n->line, n->col,
                            "temporal_ordered with a condition other than all rules in order");
            }
        } else if (n && n->type == YN_SCALAR && r->type == RULES_TEMPORAL) {
            d->cond_text = xstrndup(n->s, n->n);
        } else if (n) {
            return derr(L, d, RULES_UNSUPPORTED, n->line, n->col,
                        "this correlation condition is not supported for %s",
                        rules_type_name(r->type));
        }
    }
    /* aliases */
    if ((n = ynode_get(c, "aliases"))) {
        if (n->type != YN_MAP) {
            return derr(L, d, RULES_INVALID, n->line, n->col,
                        "aliases must map an alias to {rule: field}");
        }
        for (size_t i = 0; i + 1 < n->nkids; i += 2) {
            const struct ynode *m = n->kids[i + 1];
            if (m->type != YN_MAP) {
                return derr(L, d, RULES_INVALID, m->line, m->col,
                            "alias '%s' must map rule names to fields", n->kids[i]->s);
            }
            for (size_t j = 0; j + 1 < m->nkids; j += 2) {
                if (m->kids[j + 1]->type != YN_SCALAR) {
                    return derr(L, d, RULES_INVALID, m->kids[j + 1]->line, m->kids[j + 1]->col,
                                "an alias maps to a field name");
                }
                size_t k = d->naliases++;
                d->alias_name = xrealloc(d->alias_name, d->naliases * sizeof(char *));
                d->alias_rule = xrealloc(d->alias_rule, d->naliases * sizeof(char *));
                d->alias_field = xrealloc(d->alias_field, d->naliases * sizeof(char *));
                d->alias_name[k] = xstrndup(n->kids[i]->s, n->kids[i]->n);
                d->alias_rule[k] = xstrndup(m->kids[j]->s, m->kids[j]->n);
                d->alias_field[k] = xstrndup(m->kids[j + 1]->s, m->kids[j + 1]->n);
            }
        }
    }
    /* generate: at the top level (the correlation schema) or inside correlation */
    if ((n = ynode_get(root, "generate")) || (n = ynode_get(c, "generate"))) {
        int64_t b;
        if (ynode_scalar(n, &b, NULL) != YS_BOOL) {
            return derr(L, d, RULES_INVALID, n->line, n->col, "generate must be true or false");
        }
        d->generate = b != 0;
        co->generate = d->generate;
    }
    return 0;
}

/* ---- phase 1: documents ---- */

static struct doc *doc_new(struct loader *L, const char *file, const struct ynode *root)
{
    if (L->ndocs == L->capdocs) {
        L->capdocs = L->capdocs ? 2 * L->capdocs : 16;
        L->docs = xrealloc(L->docs, L->capdocs * sizeof(*L->docs));
    }
    struct doc *d = &L->docs[L->ndocs++];
    memset(d, 0, sizeof(*d));
    d->file = xstrdup(file);
    d->line = root ? root->line : 1;
    d->item = report_add(L->rep, file, d->line, root ? root->col : 1);
    return d;
}

static struct doc *declared(struct loader *L, const char *ref, struct doc *except)
{
    for (size_t i = 0; i < L->ndocs; i++) {
        struct doc *d = &L->docs[i];
        if (d == except) {
            continue;
        }
        if ((d->id && strcmp(d->id, ref) == 0) || (d->name && strcmp(d->name, ref) == 0)) {
            return d;
        }
    }
    return NULL;
}

static void load_doc(struct loader *L, const char *file, const struct ynode *root)
{
    struct doc *d = doc_new(L, file, root);
    struct rules_report_item *it = &L->rep->items[d->item];
    const struct ynode *n;

    if (root->type != YN_MAP) {
        derr(L, d, RULES_INVALID, root->line, root->col, "a rule must be a YAML map");
        return;
    }
    n = ynode_get(root, "title");
    if (!n || n->type != YN_SCALAR || n->n == 0) {
        derr(L, d, RULES_INVALID, n ? n->line : root->line, n ? n->col : root->col,
             "a rule needs a title");
        return;
    }
    d->title = dup_scalar(n);
    it->title = xstrdup(d->title);
    if ((n = ynode_get(root, "id"))) {
        if (n->type != YN_SCALAR || n->n == 0) {
            derr(L, d, RULES_INVALID, n->line, n->col, "id must be a string");
            return;
        }
        d->id = dup_scalar(n);
    }
    if ((n = ynode_get(root, "name"))) {
        if (n->type != YN_SCALAR || n->n == 0) {
            derr(L, d, RULES_INVALID, n->line, n->col, "name must be a string");
            return;
        }
        d->name = dup_scalar(n);
    }
    it->id = d->id ? xstrdup(d->id) : d->name ? xstrdup(d->name) : NULL;
    d->correlation = ynode_get(root, "correlation") != NULL;
    it->correlation = d->correlation;
    /* ids and names are unique across everything loaded together */
    const char *keys[2] = { d->id, d->name };
    for (int i = 0; i < 2; i++) {
        struct doc *o = keys[i] ? declared(L, keys[i], d) : NULL;
        if (o) {
            derr(L, d, RULES_INVALID, d->line, 1, "%s '%s' is already used by %s:%u",
                 i == 0 ? "id" : "name", keys[i], o->file, o->line);
            return;
        }
    }
    if ((n = ynode_get(root, "action"))) {
        derr(L, d, RULES_UNSUPPORTED, n->line, n->col,
             "rule collections with 'action' (obsolete Sigma 1 global/repeat documents)");
        return;
    }
    if (ynode_get(root, "filter")) {
        derr(L, d, RULES_UNSUPPORTED, root->line, root->col, "Sigma filters (meta filters)");
        return;
    }
    if (d->correlation) {
        if (ynode_get(root, "detection")) {
            derr(L, d, RULES_INVALID, root->line, root->col,
                 "a document is a rule or a correlation, not both");
            return;
        }
        if (read_correlation(L, d, root) == 0) {
            d->state = 0; /* pending: phase 2 */
        }
        return;
    }
    compile_detection(L, d, root);
}

static void load_text(struct loader *L, const char *file, const void *text, size_t len)
{
    struct ystream ys;
    struct errbuf eb;
    int rc;

    errbuf_clear(&eb);
    if ((rc = ystream_parse(file, text, len, &ys, &eb)) < 0) {
        size_t i = report_add(L->rep, file, 1, 1);
        struct rules_report_item *it = &L->rep->items[i];
        if (eb.pos.line > 0) {
            it->line = eb.pos.line;
            it->column = eb.pos.column;
        }
        it->reason = xstrdup(errbuf_msg(&eb));
        it->status = rc == -ENOTSUP ? RULES_UNSUPPORTED : RULES_INVALID;
        return;
    }
    for (size_t i = 0; i < ys.ndocs; i++) {
        const struct ynode *root = ys.docs[i];
        /* an empty document ("---" twice, a trailing "---") is no rule */
        if (root && !(root->type == YN_SCALAR && !root->quoted && root->n == 0)) {
            load_doc(L, file, root);
        }
    }
    ystream_release(&ys);
}

static int read_file(const char *path, struct buf *out, struct errbuf *eb)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = 0;

    if (fd < 0) {
        rc = -errno;
        errbuf_set(eb, "cannot open '%s': %s", path, vg_strerror(rc));
        return rc;
    }
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        errbuf_set(eb, "cannot stat '%s': %s", path, vg_strerror(rc));
        close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size > YTREE_MAX_BYTES) {
        close(fd);
        errbuf_set(eb, "'%s' is %lld bytes, more than the %u allowed for a rule file", path,
                   (long long)st.st_size, YTREE_MAX_BYTES);
        return VG_ELIMIT;
    }
    buf_init(out, YTREE_MAX_BYTES + 1);
    for (;;) {
        if ((rc = buf_reserve(out, 64 * 1024)) < 0) {
            errbuf_set(eb, "'%s' is more than the %u bytes allowed for a rule file", path,
                       YTREE_MAX_BYTES);
            break;
        }
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            errbuf_set(eb, "cannot read '%s': %s", path, vg_strerror(rc));
            break;
        }
        if (n == 0) {
            break;
        }
        out->len += (size_t)n;
        if (out->len > YTREE_MAX_BYTES) {
            rc = VG_ELIMIT;
            errbuf_set(eb, "'%s' is more than the %u bytes allowed for a rule file", path,
                       YTREE_MAX_BYTES);
            break;
        }
    }
    close(fd);
    if (rc < 0) {
        buf_release(out);
        return rc;
    }
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool rules__is_rule_file(const char *name)
{
    if (name[0] == '.') {
        return false;
    }
    if (ends_with(name, ".tests.yml") || ends_with(name, ".tests.yaml")) {
        return false;
    }
    return ends_with(name, ".yml") || ends_with(name, ".yaml");
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_file(struct loader *L, const char *path)
{
    struct buf text;
    struct errbuf eb;

    errbuf_clear(&eb);
    if (read_file(path, &text, &eb) < 0) {
        size_t i = report_add(L->rep, path, 0, 0);
        L->rep->items[i].reason = xstrdup(errbuf_msg(&eb));
        L->rep->items[i].status = RULES_INVALID;
        return;
    }
    load_text(L, path, text.data ? text.data : (const uint8_t *)"", text.len);
    buf_release(&text);
}

static int load_path(struct loader *L, const char *path, int depth, bool top, struct errbuf *eb)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        int rc = -errno;
        if (top) {
            errbuf_set(eb, "cannot open '%s': %s", path, vg_strerror(rc));
            return rc;
        }
        return 0; /* a dangling link inside a folder */
    }
    if (!S_ISDIR(st.st_mode)) {
        load_file(L, path);
        return 0;
    }
    if (depth >= LOAD_MAX_DIR_DEPTH) {
        errbuf_set(eb, "'%s': folders nested deeper than %d", path, LOAD_MAX_DIR_DEPTH);
        return VG_ELIMIT;
    }
    DIR *dir = opendir(path);
    if (!dir) {
        int rc = -errno;
        errbuf_set(eb, "cannot open folder '%s': %s", path, vg_strerror(rc));
        return rc;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.') {
            continue;
        }
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = xstrdup(de->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof(*names), name_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(path) + strlen(names[i]) + 2;
        char *child = xmalloc(len);
        snprintf(child, len, "%s/%s", path, names[i]);
        struct stat cs;
        if (rc == 0 && stat(child, &cs) == 0) {
            if (S_ISDIR(cs.st_mode)) {
                rc = load_path(L, child, depth + 1, false, eb);
            } else if (S_ISREG(cs.st_mode) && rules__is_rule_file(names[i])) {
                load_file(L, child);
            }
        }
        free(child);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ---- phase 2: correlations ---- */

static long loaded_index(struct loader *L, const char *ref)
{
    struct doc *d = declared(L, ref, NULL);
    return d && d->state == 1 ? (long)d->rule : -1;
}

static const char *alias_for(const struct doc *d, const char *group, const struct rule *ref)
{
    for (size_t i = 0; i < d->naliases; i++) {
        if (strcmp(d->alias_name[i], group) == 0 &&
            ((ref->name && strcmp(d->alias_rule[i], ref->name) == 0) ||
             (ref->id && strcmp(d->alias_rule[i], ref->id) == 0))) {
            return d->alias_field[i];
        }
    }
    return group;
}

/* The source of field `name` in events of rule ref: a slot, or the child correlation's
 * group index. Returns >= 0, or -1 with d failed. */
static int field_source(struct loader *L, struct doc *d, const struct rule *ref, const char *name,
                        const char *what)
{
    char msg[MSG_CAP];

    if (ref->type == RULES_DETECTION) {
        int s = field_slot(L->rs, &L->rs->map.ls[ref->ls], span_str(name), msg, sizeof(msg));
        if (s < 0) {
            return derr(L, d, s == -ENOTSUP ? RULES_UNSUPPORTED : RULES_INVALID, 0, 0,
                        "%s of rule '%s': %s", what, ref->title, msg);
        }
        return s;
    }
    for (size_t i = 0; i < ref->corr.ngroup; i++) {
        if (strcmp(ref->corr.group[i], name) == 0) {
            return (int)i;
        }
    }
    return derr(L, d, RULES_INVALID, 0, 0,
                "%s '%s' is not a group-by field of correlation '%s', which it refers to", what,
                name, ref->title);
}

static void fingerprint(const struct rule *r, const struct doc *d, uint8_t out[32])
{
    struct buf b;
    int rc = 0;

    buf_init(&b, 16u << 20);
    rc |= buf_appendf(&b, "v1\n%s\n%" PRId64 "\n%" PRId64 "\n%" PRId64 "\n%s\n%s\n",
                      rules_type_name(r->type), r->corr.span_ns, r->corr.lo, r->corr.hi,
                      r->corr.value_field ? r->corr.value_field : "",
                      d->cond_text ? d->cond_text : "");
    for (size_t i = 0; i < d->nrefs; i++) {
        rc |= buf_appendf(&b, "r %s\n", d->refs[i]);
    }
    for (size_t i = 0; i < r->corr.ngroup; i++) {
        rc |= buf_appendf(&b, "g %s\n", r->corr.group[i]);
    }
    for (size_t i = 0; i < d->naliases; i++) {
        rc |=
            buf_appendf(&b, "a %s %s %s\n", d->alias_name[i], d->alias_rule[i], d->alias_field[i]);
    }
    (void)rc;
    vg_sha256(b.data, b.len, out);
    buf_release(&b);
}

/* Tries to finish pending correlation d. Returns 1 when it loaded, 0 to wait, -1 failed. */
static int resolve(struct loader *L, struct doc *d)
{
    struct ruleset *rs = L->rs;
    struct rule *r = &d->pend;
    struct corr *co = &r->corr;

    for (size_t i = 0; i < d->nrefs; i++) {
        struct doc *t = declared(L, d->refs[i], NULL);
        if (!t) {
            return derr(L, d, RULES_INVALID, d->ref_line[i], d->ref_col[i],
                        "rule '%s' is not defined in any loaded file", d->refs[i]);
        }
        if (t == d) {
            return derr(L, d, RULES_INVALID, d->ref_line[i], d->ref_col[i],
                        "the correlation refers to itself");
        }
        if (t->state < 0) {
            return derr(L, d, RULES_INVALID, d->ref_line[i], d->ref_col[i],
                        "rule '%s' did not load (%s)", d->refs[i],
                        L->rep->items[t->item].reason ? L->rep->items[t->item].reason : "?");
        }
        if (t->state == 0) {
            return 0;
        }
    }
    co->refs = xcalloc(d->nrefs, sizeof(*co->refs));
    co->nrefs = d->nrefs;
    int depth = 1;
    r->lookback_ns = co->span_ns;
    for (size_t i = 0; i < d->nrefs; i++) {
        struct corr_ref *cr = &co->refs[i];
        cr->rule = (size_t)loaded_index(L, d->refs[i]);
        cr->vsrc = -1;
        const struct rule *t = &rs->rules[cr->rule];
        if (t->type != RULES_DETECTION && t->corr.depth + 1 > depth) {
            depth = t->corr.depth + 1;
        }
        if (co->span_ns + t->lookback_ns > r->lookback_ns) {
            r->lookback_ns = co->span_ns + t->lookback_ns; /* its matches reach back too */
        }
        cr->gsrc = xcalloc(co->ngroup + 1, sizeof(*cr->gsrc));
        for (size_t g = 0; g < co->ngroup; g++) {
            int s = field_source(L, d, t, alias_for(d, co->group[g], t), "group-by field");
            if (s < 0) {
                return -1;
            }
            cr->gsrc[g] = s;
        }
        if (co->value_field) {
            int s = field_source(L, d, t, alias_for(d, co->value_field, t), "value_count field");
            if (s < 0) {
                return -1;
            }
            cr->vsrc = s;
        }
    }
    if (depth > RULES_MAX_CHAIN) {
        return derr(L, d, RULES_UNSUPPORTED, 0, 0, "correlations chained deeper than %d",
                    RULES_MAX_CHAIN);
    }
    co->depth = depth;
    if (d->cond_text) {
        char msg[MSG_CAP];
        int rc = rules__cond_parse(d->cond_text, strlen(d->cond_text), d->refs, d->nrefs, &co->expr,
                                   msg, sizeof(msg));
        if (rc < 0) {
            return derr(L, d, rc == -ENOTSUP ? RULES_UNSUPPORTED : RULES_INVALID, 0, 0,
                        "condition: %s", msg);
        }
    }
    fingerprint(r, d, co->fp);
    co->index = rs->ncorr;
    rs->rules = xrealloc(rs->rules, (rs->nrules + 1) * sizeof(*rs->rules));
    rs->rules[rs->nrules] = *r;
    memset(r, 0, sizeof(*r));
    d->rule = rs->nrules++;
    rs->corr_rules = xrealloc(rs->corr_rules, (rs->ncorr + 1) * sizeof(*rs->corr_rules));
    rs->corr_rules[rs->ncorr++] = d->rule;
    d->state = 1;
    return 1;
}

static void doc_release(struct doc *d)
{
    free(d->file);
    free(d->id);
    free(d->name);
    free(d->title);
    rule_release(&d->pend);
    for (size_t i = 0; i < d->nrefs; i++) {
        free(d->refs[i]);
    }
    free(d->refs);
    free(d->ref_line);
    free(d->ref_col);
    for (size_t i = 0; i < d->naliases; i++) {
        free(d->alias_name[i]);
        free(d->alias_rule[i]);
        free(d->alias_field[i]);
    }
    free(d->alias_name);
    free(d->alias_rule);
    free(d->alias_field);
    free(d->cond_text);
}

static void finish(struct loader *L)
{
    struct ruleset *rs = L->rs;
    bool progress = true;

    /* phase 2 */
    while (progress) {
        progress = false;
        for (size_t i = 0; i < L->ndocs; i++) {
            struct doc *d = &L->docs[i];
            if (d->correlation && d->state == 0 && resolve(L, d) != 0) {
                progress = true;
            }
        }
    }
    for (size_t i = 0; i < L->ndocs; i++) {
        struct doc *d = &L->docs[i];
        if (d->correlation && d->state == 0) {
            derr(L, d, RULES_INVALID, 0, 0, "correlations refer to each other in a cycle");
        }
    }
    /* phase 3: who feeds whom, who alerts */
    bool *referenced = xcalloc(rs->nrules + 1, sizeof(*referenced));
    bool *generated = xcalloc(rs->nrules + 1, sizeof(*generated));
    for (size_t i = 0; i < L->ndocs; i++) {
        struct doc *d = &L->docs[i];
        for (size_t j = 0; d->correlation && j < d->nrefs; j++) {
            long t = loaded_index(L, d->refs[j]);
            if (t >= 0) {
                referenced[t] = true;
                generated[t] |= d->generate;
            }
        }
    }
    for (size_t i = 0; i < rs->nrules; i++) {
        struct rule *r = &rs->rules[i];
        r->output = !referenced[i] || generated[i];
        for (size_t j = 0; r->type != RULES_DETECTION && j < r->corr.nrefs; j++) {
            struct rule *t = &rs->rules[r->corr.refs[j].rule];
            t->parents = xrealloc(t->parents, (t->nparents + 1) * sizeof(*t->parents));
            t->parents[t->nparents++] = i;
        }
    }
    free(referenced);
    free(generated);
    rs->lit_words = rules__lit_build(rs);
    rs->by_ls = xcalloc(rs->map.nls + 1, sizeof(*rs->by_ls));
    rs->nby_ls = xcalloc(rs->map.nls + 1, sizeof(*rs->nby_ls));
    for (size_t i = 0; i < rs->nrules; i++) {
        struct rule *r = &rs->rules[i];
        if (r->type != RULES_DETECTION) {
            continue;
        }
        size_t l = (size_t)r->ls;
        rs->by_ls[l] = xrealloc(rs->by_ls[l], (rs->nby_ls[l] + 1) * sizeof(**rs->by_ls));
        rs->by_ls[l][rs->nby_ls[l]++] = i;
    }
    /* the report: counts */
    struct rules_report *rep = L->rep;
    for (size_t i = 0; i < L->ndocs; i++) {
        struct rules_report_item *it = &rep->items[L->docs[i].item];
        if (L->docs[i].state == 1) {
            it->status = RULES_LOADED;
        }
    }
}

static void count_report(struct rules_report *rep, size_t from)
{
    for (size_t i = from; i < rep->n; i++) {
        switch (rep->items[i].status) {
        case RULES_LOADED:
            rep->loaded++;
            break;
        case RULES_UNSUPPORTED:
            rep->unsupported++;
            break;
        case RULES_INVALID:
            rep->invalid++;
            break;
        }
    }
}

void ruleset_free(struct ruleset *rs)
{
    if (!rs) {
        return;
    }
    for (size_t i = 0; i < rs->nrules; i++) {
        rule_release(&rs->rules[i]);
    }
    free(rs->rules);
    for (size_t i = 0; i < rs->nslots; i++) {
        for (size_t j = 0; j < rs->slots[i].ntgts; j++) {
            rules__tgt_release(&rs->slots[i].tgts[j]);
        }
        free(rs->slots[i].tgts);
        free(rs->slots[i].key);
        rules__lit_release(&rs->slots[i].li);
    }
    free(rs->slots);
    if (rs->by_ls) {
        for (size_t i = 0; i < rs->map.nls; i++) {
            free(rs->by_ls[i]);
        }
    }
    free(rs->by_ls);
    free(rs->nby_ls);
    free(rs->kw_slot);
    free(rs->corr_rules);
    rules__map_release(&rs->map);
    free(rs);
}

/* Starts a ruleset: the mapping and each logsource's keyword slot. */
static int ruleset_begin(const struct rules_options *opt, struct ruleset **out, struct errbuf *eb)
{
    struct ruleset *rs = xcalloc(1, sizeof(*rs));
    int rc;

    if (opt && opt->map_path) {
        struct buf text;
        if ((rc = read_file(opt->map_path, &text, eb)) < 0) {
            free(rs);
            return rc;
        }
        rc = rules__map_parse(opt->map_path, text.data ? text.data : (const uint8_t *)"", text.len,
                              &rs->map, eb);
        buf_release(&text);
    } else {
        rc = rules__map_parse("schemas/sigma_map.yaml", rules__sigma_map_yaml,
                              rules__sigma_map_yaml_len, &rs->map, eb);
    }
    if (rc < 0) {
        free(rs);
        return rc;
    }
    rs->kw_slot = xcalloc(rs->map.nls + 1, sizeof(*rs->kw_slot));
    for (size_t i = 0; i < rs->map.nls; i++) {
        const struct lsrc *l = &rs->map.ls[i];
        rs->kw_slot[i] = l->nkw ? slot_intern(rs, l->kw, l->nkw, true) : -1;
    }
    *out = rs;
    return 0;
}

static int load_common(const char *const *paths, size_t npaths, const char *mem_name,
                       const void *text, size_t len, const struct rules_options *opt,
                       struct ruleset **out, struct rules_report *rep, struct errbuf *eb)
{
    struct loader L = { .rep = rep };
    size_t first = rep->n;
    int rc;

    *out = NULL;
    if ((rc = ruleset_begin(opt, &L.rs, eb)) < 0) {
        return rc;
    }
    if (mem_name) {
        load_text(&L, mem_name, text, len);
    }
    for (size_t i = 0; i < npaths && rc == 0; i++) {
        rc = load_path(&L, paths[i], 0, true, eb);
    }
    if (rc == 0) {
        finish(&L);
        count_report(rep, first);
    }
    for (size_t i = 0; i < L.ndocs; i++) {
        doc_release(&L.docs[i]);
    }
    free(L.docs);
    if (rc < 0) {
        ruleset_free(L.rs);
        return rc;
    }
    *out = L.rs;
    return 0;
}

int rules_load(const char *const *paths, size_t npaths, const struct rules_options *opt,
               struct ruleset **out, struct rules_report *rep, struct errbuf *eb)
{
    return load_common(paths, npaths, NULL, NULL, 0, opt, out, rep, eb);
}

int rules_load_mem(const char *name, const void *text, size_t len, const struct rules_options *opt,
                   struct ruleset **out, struct rules_report *rep, struct errbuf *eb)
{
    return load_common(NULL, 0, name ? name : "<memory>", text ? text : "", len, opt, out, rep, eb);
}

/* ---- info ---- */

const char *rules_type_name(enum rules_type t)
{
    switch (t) {
    case RULES_DETECTION:
        return "detection";
    case RULES_EVENT_COUNT:
        return "event_count";
    case RULES_VALUE_COUNT:
        return "value_count";
    case RULES_TEMPORAL:
        return "temporal";
    case RULES_TEMPORAL_ORDERED:
        return "temporal_ordered";
    }
    return "?";
}

size_t ruleset_count(const struct ruleset *rs)
{
    return rs->nrules;
}

void ruleset_rule_info(const struct ruleset *rs, size_t i, struct rules_rule_info *info)
{
    const struct rule *r = &rs->rules[i];

    memset(info, 0, sizeof(*info));
    info->id = r->id ? r->id : "";
    info->name = r->name ? r->name : "";
    info->title = r->title;
    info->level = r->level ? r->level : "";
    info->severity = r->sev;
    info->type = r->type;
    info->alerts = r->output;
    info->file = r->file;
    info->line = r->line;
    info->logsource = r->type == RULES_DETECTION ? rs->map.ls[r->ls].name : "";
    info->timespan_ns = r->corr.span_ns;
    info->ngroup = r->type == RULES_DETECTION ? r->ndgroup : r->corr.ngroup;
    info->group_by = (const char *const *)(r->type == RULES_DETECTION ? r->dgroup : r->corr.group);
    info->resolve_after_ns = r->resolve_after_ns;
    info->update_every_ns = r->update_every_ns;
    info->lookback_ns = r->lookback_ns;
    if (r->type != RULES_DETECTION) {
        info->count_lo = r->corr.lo;
        info->count_hi = r->corr.hi;
        info->nrefs = r->corr.nrefs;
    }
    info->value_field = r->corr.value_field ? r->corr.value_field : "";
}

size_t ruleset_rule_ref(const struct ruleset *rs, size_t i, size_t k)
{
    assert(i < rs->nrules && k < rs->rules[i].corr.nrefs);
    return rs->rules[i].corr.refs[k].rule;
}

long ruleset_find(const struct ruleset *rs, const char *id_or_name)
{
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rule *r = &rs->rules[i];
        if ((r->id && strcmp(r->id, id_or_name) == 0) ||
            (r->name && strcmp(r->name, id_or_name) == 0)) {
            return (long)i;
        }
    }
    return -1;
}
