/* rules/rules_engine.c: evaluating records against a ruleset (rules.h "evaluation").
 *
 * Per record: the logsource pre-filters are decided once per logsource (lazily), and
 * only the detections of logsources that take the record are evaluated. A rule's
 * condition is evaluated lazily with each selection memoized; within a selection's AND
 * the cheap fields come first. Each field a rule reads is a slot of the ruleset, resolved
 * once per record whatever the number of rules reading it (a generation counter marks
 * the cache valid): its values, their lower-case copies and number texts live in a
 * per-record arena. Matches go to their incidents (rules_incident.c), which emit alert
 * records, and to the correlations they feed (rules_corr.c), unless the record is late for
 * its source (rules_time.c).
 *
 * Owned by one thread; never blocks; bounded by the ruleset's limits (rules_int.h) and
 * the engine's (struct rules_limits). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/digest.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "rules/engine_int.h"
#include "schemas/raw_path.h"

#define ARENA_BLOCK     (64 * 1024)
#define ARENA_MAX_BYTES (64u << 20)

/* ---- arena ---- */

static void arena_reset(struct arena *a)
{
    struct arena_blk *b = a->head;
    if (!b) {
        return;
    }
    /* keep the oldest (first) block, free the rest */
    while (b->next) {
        struct arena_blk *next = b->next;
        free(b);
        b = next;
    }
    b->len = 0;
    a->head = b;
    a->total = b->cap;
}

static void arena_release(struct arena *a)
{
    struct arena_blk *b = a->head;
    while (b) {
        struct arena_blk *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

static uint8_t *arena_alloc(struct arena *a, size_t n)
{
    struct arena_blk *b = a->head;

    if (b && b->cap - b->len >= n) {
        uint8_t *p = b->data + b->len;
        b->len += n;
        return p;
    }
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    if (a->total + cap > a->max) {
        return NULL;
    }
    struct arena_blk *nb = xmalloc(sizeof(*nb) + cap);
    nb->cap = cap;
    nb->len = n;
    nb->next = b;
    a->head = nb;
    a->total += cap;
    return nb->data;
}

/* ---- limits, life cycle ---- */

void rules_limits_default(struct rules_limits *lim)
{
    lim->max_groups_per_rule = 10000;
    lim->max_events_per_group = 1024;
    lim->max_alert_events = 64;
    lim->lateness_ns = 120 * VG_NS_PER_SEC;
    lim->max_future_ns = 300 * VG_NS_PER_SEC;
    lim->max_sources = 4096;
    lim->max_incidents_per_rule = 10000;
    lim->resolve_after_ns = 15 * 60 * VG_NS_PER_SEC;
    lim->update_every_ns = 5 * 60 * VG_NS_PER_SEC;
}

const char *rules_skip_name(enum rules_skip k)
{
    switch (k) {
    case RULES_SKIP_LATE:
        return "late";
    case RULES_SKIP_FUTURE:
        return "future";
    case RULES_SKIP_STATE_CAP:
        return "state_cap";
    case RULES_SKIP_COUNT:
        break;
    }
    return "?";
}

int rules_engine_new(const struct ruleset *rs, const struct rules_limits *lim,
                     struct rules_engine **out)
{
    struct rules_limits def;
    struct rules_engine *e;

    *out = NULL;
    if (!lim) {
        rules_limits_default(&def);
        lim = &def;
    }
    if (lim->max_groups_per_rule == 0 || lim->max_events_per_group == 0 ||
        lim->max_alert_events < 2 || lim->max_alert_events > 65536 || lim->lateness_ns < 0 ||
        lim->max_future_ns < 0 || lim->max_events_per_group > UINT32_MAX / 2 ||
        lim->max_sources == 0 || lim->max_incidents_per_rule == 0 || lim->resolve_after_ns <= 0 ||
        lim->update_every_ns <= 0) {
        return -EINVAL;
    }
    e = xcalloc(1, sizeof(*e));
    e->rs = rs;
    e->lim = *lim;
    if (getrandom(e->hkey, sizeof(e->hkey), 0) != (ssize_t)sizeof(e->hkey)) {
        int64_t t = vg_mono_ns() ^ vg_now_ns();
        memcpy(e->hkey, &t, sizeof(t));
        memcpy(e->hkey + 8, &e, sizeof(e) < 8 ? sizeof(e) : 8);
    }
    e->sc = xcalloc(rs->nslots + 1, sizeof(*e->sc));
    e->litbits = xcalloc(rs->lit_words + 1, sizeof(*e->litbits));
    e->litgen = xcalloc(rs->nslots + 1, sizeof(*e->litgen));
    e->selmemo = xcalloc(rs->max_sels + 1, 1);
    e->lsgen = xcalloc(rs->map.nls + 1, sizeof(*e->lsgen));
    e->lsval = xcalloc(rs->map.nls + 1, sizeof(*e->lsval));
    e->rst = xcalloc(rs->nrules + 1, sizeof(*e->rst));
    e->arena.max = ARENA_MAX_BYTES;
    e->now = INT64_MIN;
    e->gate = INT64_MIN;
    rules__corr_init(e);
    rules__incident_init(e);
    *out = e;
    return 0;
}

void rules_engine_free(struct rules_engine *e)
{
    if (!e) {
        return;
    }
    rules__incident_release(e);
    rules__corr_release(e);
    rules__time_release(e);
    arena_release(&e->arena);
    free(e->sc);
    free(e->litbits);
    free(e->litgen);
    free(e->vals);
    free(e->rawkeys);
    free(e->selmemo);
    free(e->lsgen);
    free(e->lsval);
    free(e->rst);
    free(e->vcount_keys);
    free(e->vcount_vals);
    free(e);
}

/* ---- slots: the values of one field of the current record ---- */

static struct sval *val_add(struct rules_engine *e)
{
    if (e->nvals == e->capvals) {
        e->capvals = e->capvals ? 2 * e->capvals : 64;
        e->vals = xrealloc(e->vals, e->capvals * sizeof(*e->vals));
    }
    struct sval *v = &e->vals[e->nvals++];
    memset(v, 0, sizeof(*v));
    return v;
}

/* Sets v->low: s itself, or a lower-case copy in the arena. false when out of arena. */
static bool set_low(struct rules_engine *e, struct sval *v)
{
    size_t i = 0;
    while (i < v->s.n && !(v->s.p[i] >= 'A' && v->s.p[i] <= 'Z')) {
        i++;
    }
    if (i == v->s.n) {
        v->low = v->s;
        return true;
    }
    uint8_t *p = arena_alloc(&e->arena, v->s.n);
    if (!p) {
        return false;
    }
    memcpy(p, v->s.p, i);
    for (; i < v->s.n; i++) {
        uint8_t c = v->s.p[i];
        p[i] = c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
    }
    v->low = (struct span){ p, v->s.n };
    return true;
}

/* Adds a text value (bytes that outlive the record evaluation). */
static bool add_text(struct rules_engine *e, struct span s, enum sv_type type, double num,
                     bool has_num, size_t first)
{
    if (e->nvals - first >= RULES_MAX_SLOT_VALS) {
        e->st.values_truncated++;
        return false;
    }
    struct sval *v = val_add(e);
    v->type = type;
    v->s = s;
    v->num = num;
    v->has_num = has_num;
    if (!set_low(e, v)) {
        e->nvals--;
        e->st.values_truncated++;
        return false;
    }
    return true;
}

static bool add_number_text(struct rules_engine *e, const char *txt, enum sv_type type, double num,
                            size_t first)
{
    size_t n = strlen(txt);
    uint8_t *p = arena_alloc(&e->arena, n);
    if (!p) {
        e->st.values_truncated++;
        return false;
    }
    memcpy(p, txt, n);
    return add_text(e, (struct span){ p, n }, type, num, true, first);
}

struct collect {
    struct rules_engine *e;
    size_t first; /* first value of the slot being resolved */
    bool present;
    bool text_mode; /* every string under maps too (keywords over the whole event) */
    bool full;
};

/* Adds one msgpack value (arrays: their elements; maps: SV_OTHER, or in text mode their
 * values). Returns false when the slot is full. */
static bool add_mp(struct collect *c, struct span *cur, int depth)
{
    struct rules_engine *e = c->e;
    struct mp_obj o;
    char num[40];

    if (depth > MP_MAX_DEPTH || mp_read(cur, &o) != 1) {
        return false;
    }
    switch (o.type) {
    case MP_NIL:
        if (!c->text_mode) {
            struct sval *v = val_add(e);
            v->type = SV_NULL;
        }
        return true;
    case MP_BOOL:
        return add_text(e, span_str(o.v.b ? "true" : "false"), SV_BOOL, 0, false, c->first);
    case MP_INT:
        snprintf(num, sizeof(num), "%" PRId64, o.v.i);
        return add_number_text(e, num, SV_INT, (double)o.v.i, c->first);
    case MP_UINT:
        snprintf(num, sizeof(num), "%" PRIu64, o.v.u);
        return add_number_text(e, num, SV_INT, (double)o.v.u, c->first);
    case MP_FLOAT:
        snprintf(num, sizeof(num), "%.17g", o.v.f);
        return add_number_text(e, num, SV_FLOAT, o.v.f, c->first);
    case MP_STR:
        return add_text(e, o.v.s, SV_STR, 0, false, c->first);
    case MP_ARRAY:
        for (uint32_t i = 0; i < o.v.count; i++) {
            if (!add_mp(c, cur, depth + 1)) {
                return false;
            }
        }
        return true;
    case MP_MAP:
        if (!c->text_mode) {
            /* present, not text: '*' and exists see it, string matchers do not */
            struct sval *v = val_add(e);
            v->type = SV_OTHER;
            for (uint32_t i = 0; i < 2 * o.v.count; i++) {
                if (mp_skip(cur) < 0) {
                    return false;
                }
            }
            return true;
        }
        for (uint32_t i = 0; i < o.v.count; i++) {
            if (mp_skip(cur) < 0 || !add_mp(c, cur, depth + 1)) {
                return false;
            }
        }
        return true;
    default:
        /* bin, ext: present, not text */
        if (!c->text_mode) {
            struct sval *v = val_add(e);
            v->type = SV_OTHER;
        }
        return true;
    }
}

static bool on_path_value(struct span value, int depth, void *arg)
{
    struct collect *c = arg;
    struct span cur = value;

    c->present = true;
    if (!add_mp(c, &cur, depth)) {
        c->full = true;
        return true; /* stop the walk */
    }
    return false;
}

/* Reads one complete value at the front of *cur into *v: scalars with mp_read alone (it
 * consumes their payload), containers with mp_take. */
static bool take_value(struct span *cur, struct span *v)
{
    struct span peek = *cur;
    struct mp_obj o;

    if (mp_read(&peek, &o) != 1) {
        return false;
    }
    if (o.type != MP_ARRAY && o.type != MP_MAP) {
        *v = (struct span){ cur->p, (size_t)(peek.p - cur->p) };
        *cur = peek;
        return true;
    }
    return mp_take(cur, v) == 0;
}

/* The index of the map value at map (built once per record), or NULL when it is not a
 * map, is malformed, or the per-record cache is full: the caller then walks it with
 * raw_path_walk, which gives the same answer more slowly. */
static const struct rawidx *raw_index(struct rules_engine *e, struct span map)
{
    struct span cur = map;
    struct mp_obj o;

    if (e->rawgen != e->gen) {
        e->rawgen = e->gen;
        e->nrawidx = 0;
        e->nrawkeys = 0;
    }
    for (size_t i = 0; i < e->nrawidx; i++) {
        if (e->rawidx[i].map == map.p) {
            return e->rawidx[i].ok ? &e->rawidx[i] : NULL;
        }
    }
    if (e->nrawidx == RULES_RAW_INDEXED) {
        return NULL;
    }
    struct rawidx *x = &e->rawidx[e->nrawidx++];
    *x = (struct rawidx){ .map = map.p, .first = (uint32_t)e->nrawkeys };
    if (mp_read(&cur, &o) != 1 || o.type != MP_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span kv;
        struct span k;
        struct span v;
        if (!take_value(&cur, &kv) || !take_value(&cur, &v)) {
            e->nrawkeys = x->first;
            return NULL;
        }
        if (!mp_get_str(kv, &k)) {
            continue;
        }
        if (e->nrawkeys + 2 > e->caprawkeys) {
            e->caprawkeys = e->caprawkeys ? 2 * e->caprawkeys : 64;
            e->rawkeys = xrealloc(e->rawkeys, e->caprawkeys * sizeof(*e->rawkeys));
        }
        e->rawkeys[e->nrawkeys++] = k;
        e->rawkeys[e->nrawkeys++] = v;
    }
    x->n = (uint32_t)(e->nrawkeys - x->first) / 2;
    x->ok = true;
    return x;
}

/* raw_path_walk (schemas/raw_path.h) with the map steps of the first two levels done on
 * indexes: keys equal to the rest of the path first, then keys that are a prefix of it
 * followed by '.'; deeper levels and arrays are raw_path_walk's. */
static void walk_path(struct rules_engine *e, struct span v, struct span path, int depth,
                      struct collect *c)
{
    const struct rawidx *x = depth < 2 && path.n ? raw_index(e, v) : NULL;

    if (!x) {
        raw_path_walk(v, path, depth, on_path_value, c);
        return;
    }
    for (int pass = 0; pass < 2 && !c->full; pass++) {
        for (uint32_t i = 0; i < x->n && !c->full; i++) {
            /* e->rawkeys may move while a deeper map is indexed: index it afresh */
            struct span k = e->rawkeys[x->first + 2 * i];
            struct span val = e->rawkeys[x->first + 2 * i + 1];
            if (pass == 0 && span_eq(k, path)) {
                on_path_value(val, depth + 1, c);
            } else if (pass == 1 && k.n < path.n && path.p[k.n] == '.' &&
                       span_starts_with(path, k)) {
                struct span rest = { path.p + k.n + 1, path.n - k.n - 1 };
                walk_path(e, val, rest, depth + 1, c);
            }
        }
    }
}

/* Appends the values of target t in the current record; returns whether present. */
static bool resolve_tgt(struct rules_engine *e, const struct tgt *t, size_t first)
{
    const struct rec *r = e->cur;
    char num[40];

    switch (t->kind) {
    case TGT_FIELD:
        switch (t->field) {
        case VG_F_TS:
        case VG_F_RECEIVED:
        case VG_F_DST_PORT: {
            bool has = t->field == VG_F_TS         ? r->has_ts
                       : t->field == VG_F_RECEIVED ? r->has_received
                                                   : r->has_dst_port;
            int64_t v = t->field == VG_F_TS         ? r->ts
                        : t->field == VG_F_RECEIVED ? r->received
                                                    : r->dst_port;
            if (!has) {
                return false;
            }
            snprintf(num, sizeof(num), "%" PRId64, v);
            add_number_text(e, num, SV_INT, (double)v, first);
            return true;
        }
        case VG_F_SEQ:
            if (!r->has_seq) {
                return false;
            }
            snprintf(num, sizeof(num), "%" PRIu64, r->seq);
            add_number_text(e, num, SV_INT, (double)r->seq, first);
            return true;
        default:
            if (!r->str[t->field].p) {
                return false;
            }
            add_text(e, r->str[t->field], SV_STR, 0, false, first);
            return true;
        }
    case TGT_RAW: {
        struct collect c = { .e = e, .first = first };
        if (r->raw.n == 0) {
            return false;
        }
        walk_path(e, r->raw, (struct span){ (const uint8_t *)t->path, t->pathlen }, 0, &c);
        return c.present;
    }
    case TGT_RAW_TEXT: {
        struct collect c = { .e = e, .first = first, .text_mode = true };
        struct span cur = r->raw;
        if (r->raw.n == 0) {
            return false;
        }
        add_mp(&c, &cur, 0);
        /* the normalized text fields too: message may not be in the event's own words */
        if (r->str[VG_F_MESSAGE].p) {
            add_text(e, r->str[VG_F_MESSAGE], SV_STR, 0, false, first);
        }
        return true;
    }
    }
    return false;
}

static const struct slot_cache *slot_get(struct rules_engine *e, int s)
{
    struct slot_cache *c = &e->sc[s];
    const struct slot *sl;

    if (c->gen == e->gen) {
        return c;
    }
    sl = &e->rs->slots[s];
    c->gen = e->gen;
    c->present = false;
    c->first = (uint32_t)e->nvals;
    for (size_t i = 0; i < sl->ntgts; i++) {
        if (resolve_tgt(e, &sl->tgts[i], c->first)) {
            c->present = true;
            if (!sl->any) {
                break;
            }
        }
    }
    c->n = (uint32_t)(e->nvals - c->first);
    return c;
}

/* ---- detection ---- */

static bool numeric_text(const struct sval *x, double *out)
{
    char tmp[64];
    char *end;

    if (x->has_num) {
        *out = x->num;
        return true;
    }
    if (x->type != SV_STR || x->s.n == 0 || x->s.n >= sizeof(tmp)) {
        return false;
    }
    for (size_t i = 0; i < x->s.n; i++) {
        char c = (char)x->s.p[i];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) {
            return false;
        }
    }
    memcpy(tmp, x->s.p, x->s.n);
    tmp[x->s.n] = 0;
    double d = strtod(tmp, &end);
    if (end != tmp + x->s.n || !isfinite(d)) {
        return false;
    }
    *out = d;
    return true;
}

/* Which of slot s's indexed literals the current record matches (computed once). */
static const uint64_t *lit_bits(struct rules_engine *e, int s)
{
    const struct lit_index *li = &e->rs->slots[s].li;
    uint64_t *bits = e->litbits + li->bitoff;

    if (e->litgen[s] == e->gen) {
        return bits;
    }
    e->litgen[s] = e->gen;
    const struct slot_cache *c = slot_get(e, s);
    memset(bits, 0, (li->nlits + 63) / 64 * sizeof(*bits));
    for (uint32_t i = 0; i < c->n; i++) {
        const struct sval *v = &e->vals[c->first + i];
        if (v->type != SV_NULL && v->type != SV_OTHER) {
            rules__lit_match(li, v->low, bits);
        }
    }
    return bits;
}

static bool value_match(struct rules_engine *e, int slot, const struct pval *v,
                        const struct sval *xs, size_t n, const struct slot_cache *c)
{
    if (v->lit >= 0) {
        const uint64_t *bits = lit_bits(e, slot);
        return (bits[v->lit >> 6] >> (v->lit & 63)) & 1;
    }
    switch (v->kind) {
    case VK_NULL: {
        if (!c->present) {
            return true;
        }
        for (size_t i = 0; i < n; i++) {
            if (xs[i].type == SV_NULL) {
                return true;
            }
        }
        return false;
    }
    case VK_EXISTS:
        return c->present == v->b;
    case VK_FIELDREF: {
        const struct slot_cache *rc = slot_get(e, v->ref_slot);
        /* slot_get may have grown e->vals: take the pointers afresh */
        const struct sval *mine = n ? e->vals + c->first : NULL;
        const struct sval *refs = rc->n ? e->vals + rc->first : NULL;
        for (size_t i = 0; i < n; i++) {
            if (rules__fieldref_match(v, &mine[i], refs, rc->n)) {
                return true;
            }
        }
        return false;
    }
    case VK_NUM:
        for (size_t i = 0; i < n; i++) {
            double d;
            if (xs[i].type != SV_NULL && xs[i].type != SV_OTHER && numeric_text(&xs[i], &d)) {
                struct sval tmp = xs[i];
                tmp.num = d;
                tmp.has_num = true;
                if (rules__pval_match(v, &tmp)) {
                    return true;
                }
            }
        }
        return false;
    default:
        for (size_t i = 0; i < n; i++) {
            if (rules__pval_match(v, &xs[i])) {
                return true;
            }
        }
        return false;
    }
}

static bool field_match(struct rules_engine *e, const struct pfield *f)
{
    if (f->lit_all) {
        const uint64_t *bits = lit_bits(e, f->slot);
        for (uint32_t i = 0; i < f->nlw; i++) {
            uint64_t hit = bits[f->lw_idx[i]] & f->lw_mask[i];
            if (!f->all && hit) {
                return true;
            }
            if (f->all && hit != f->lw_mask[i]) {
                return false;
            }
        }
        return f->all;
    }
    const struct slot_cache *c = slot_get(e, f->slot);

    for (size_t i = 0; i < f->nvals; i++) {
        const struct pval *v = &f->vals[i];
        /* fieldref resolves another slot, which may move e->vals: index afresh */
        bool m = value_match(e, f->slot, v, c->n ? e->vals + c->first : NULL, c->n, c);
        if (m && !f->all) {
            return true;
        }
        if (!m && f->all) {
            return false;
        }
    }
    return f->all;
}

static bool sel_match(struct rules_engine *e, const struct psel *s)
{
    for (size_t a = 0; a < s->nalts; a++) {
        const struct palt *alt = &s->alts[a];
        bool ok = true;
        for (size_t i = 0; i < alt->n && ok; i++) {
            ok = field_match(e, &alt->f[i]);
        }
        if (ok) {
            return true;
        }
    }
    return false;
}

static bool cond_eval(struct rules_engine *e, const struct rule *r, const struct cnode *c)
{
    switch (c->kind) {
    case CN_TRUE:
        return true;
    case CN_SEL: {
        uint8_t *m = &e->selmemo[c->sel];
        if (*m == 0) {
            *m = sel_match(e, &r->sels[c->sel]) ? 2 : 1;
        }
        return *m == 2;
    }
    case CN_AND:
        for (size_t i = 0; i < c->n; i++) {
            if (!cond_eval(e, r, c->kids[i])) {
                return false;
            }
        }
        return true;
    case CN_OR:
        for (size_t i = 0; i < c->n; i++) {
            if (cond_eval(e, r, c->kids[i])) {
                return true;
            }
        }
        return false;
    case CN_NOT:
        return !cond_eval(e, r, c->kids[0]);
    case CN_NOF: {
        uint32_t hits = 0;
        for (size_t i = 0; i < c->n; i++) {
            if (cond_eval(e, r, c->kids[i]) && ++hits >= c->need) {
                return true;
            }
            if (hits + (c->n - i - 1) < c->need) {
                return false;
            }
        }
        return false;
    }
    }
    return false;
}

static bool lsrc_takes(const struct lsrc *l, const struct rec *r)
{
    for (size_t a = 0; a < l->nalts; a++) {
        const struct lsrc_alt *alt = &l->alts[a];
        bool ok = true;
        for (size_t i = 0; i < alt->nconds && ok; i++) {
            const struct lsrc_cond *cd = &alt->conds[i];
            struct span v = r->str[cd->field];
            if (!v.p) {
                ok = cd->absent_ok;
                continue;
            }
            ok = false;
            for (size_t j = 0; j < cd->nvals && !ok; j++) {
                ok = span_eq_nocase(v, span_str(cd->vals[j]));
            }
        }
        if (ok) {
            return true;
        }
    }
    return false;
}

static bool ls_ok(struct rules_engine *e, int ls)
{
    if (e->lsgen[ls] != e->gen) {
        e->lsgen[ls] = e->gen;
        e->lsval[ls] = lsrc_takes(&e->rs->map.ls[ls], e->cur);
    }
    return e->lsval[ls];
}

/* Starts evaluating record r: a new generation of the slot and logsource caches. */
static void begin_record(struct rules_engine *e, const struct rec *r)
{
    e->cur = r;
    if (++e->gen == 0) {
        memset(e->sc, 0, (e->rs->nslots + 1) * sizeof(*e->sc));
        memset(e->lsgen, 0, (e->rs->map.nls + 1) * sizeof(*e->lsgen));
        memset(e->litgen, 0, (e->rs->nslots + 1) * sizeof(*e->litgen));
        e->rawgen = 0;
        e->gen = 1;
    }
    arena_reset(&e->arena);
    e->nvals = 0;
}

/* Evaluates detection rule i on the record being evaluated (begin_record done). */
static bool detect_one(struct rules_engine *e, size_t i)
{
    const struct rule *rule = &e->rs->rules[i];

    memset(e->selmemo, 0, rule->nsels);
    return cond_eval(e, rule, rule->cond);
}

bool rules__detect(struct rules_engine *e, size_t i, const struct rec *r, bool check_ls)
{
    const struct rule *rule = &e->rs->rules[i];
    bool m;

    if (rule->type != RULES_DETECTION) {
        return false;
    }
    begin_record(e, r);
    m = (!check_ls || ls_ok(e, rule->ls)) && detect_one(e, i);
    e->cur = NULL;
    return m;
}

/* The first value of slot s as group text, or false when absent / not text. */
static bool slot_text(struct rules_engine *e, int s, struct span *out)
{
    const struct slot_cache *c = slot_get(e, s);
    for (uint32_t i = 0; i < c->n; i++) {
        const struct sval *v = &e->vals[c->first + i];
        if (v->type != SV_NULL && v->type != SV_OTHER) {
            *out = v->s;
            return true;
        }
    }
    return false;
}

static void on_match(struct rules_engine *e, size_t i)
{
    const struct rule *r = &e->rs->rules[i];
    const struct rec *rec = e->cur;
    uint64_t seq = rec->has_seq ? rec->seq : RULES_NO_SEQ;
    int64_t ts = e->cur_t;

    e->st.matches++;
    e->rst[i].matches++;
    if (r->output || e->emit_all) {
        /* the incident's group: vigil.group-by or the identity of what it fired on */
        struct span g[RULES_MAX_GROUP_BY];
        uint8_t key[RULES_MAX_GROUP_BY * (2 + RULES_MAX_KEY_VALUE) + 1];
        for (size_t j = 0; j < r->ndgroup; j++) {
            if (!slot_text(e, r->dgroup_slot[j], &g[j])) {
                g[j] = (struct span){ NULL, 0 };
            }
        }
        if (e->cur_future) {
            e->rst[i].skipped[RULES_SKIP_FUTURE]++;
        }
        struct imatch m = {
            .key = key,
            .keylen = rules__key_encode(g, r->ndgroup, key),
            .ts = ts,
            .r = e->cur_r,
            .win_start = ts,
            .win_end = ts,
            .rec = rec,
            .drill = rules__cur_drill(e),
        };
        rules__incident_match(e, i, &m);
    }
    for (size_t p = 0; p < r->nparents; p++) {
        size_t pi = r->parents[p];
        const struct corr *co = &e->rs->rules[pi].corr;
        for (size_t k = 0; k < co->nrefs; k++) {
            if (co->refs[k].rule != i) {
                continue;
            }
            struct span g[RULES_MAX_GROUP_BY];
            bool ok = true;
            for (size_t j = 0; j < co->ngroup && ok; j++) {
                ok = slot_text(e, co->refs[k].gsrc[j], &g[j]);
            }
            uint64_t vh = 0;
            if (ok && co->refs[k].vsrc >= 0) {
                struct span v;
                ok = slot_text(e, co->refs[k].vsrc, &v);
                vh = ok ? rules__value_hash(v) : 0;
            }
            if (!ok) {
                /* events without a group-by (or counted) value are not counted: the
                 * backends' GROUP BY drops them too */
                continue;
            }
            if (rules__time_late(e)) {
                e->rst[pi].skipped[RULES_SKIP_LATE]++;
                continue;
            }
            if (e->cur_future) {
                e->rst[pi].skipped[RULES_SKIP_FUTURE]++;
            }
            rules__corr_feed(e, pi, k, g, vh, ts, seq, NULL, rules__cur_drill(e));
        }
    }
}

static void begin_call(struct rules_engine *e, rules_alert_fn emit, void *arg)
{
    e->emit = emit;
    e->arg = arg;
    e->emit_rc = 0;
    e->nalerts = 0;
}

static int end_call(struct rules_engine *e)
{
    int rc = e->emit_rc ? e->emit_rc : e->nalerts;
    e->emit = NULL;
    e->arg = NULL;
    e->cur = NULL;
    return rc;
}

int rules_engine_eval(struct rules_engine *e, const struct rec *r, rules_alert_fn emit, void *arg)
{
    const struct ruleset *rs = e->rs;

    begin_call(e, emit, arg);
    e->st.events++;
    e->eid++;
    e->cur = r; /* the source key (rules__time_late) reads it */
    rules__time_begin(e, r);
    begin_record(e, r);
    for (size_t l = 0; l < rs->map.nls; l++) {
        if (rs->nby_ls[l] == 0 || !ls_ok(e, (int)l)) {
            continue;
        }
        for (size_t j = 0; j < rs->nby_ls[l]; j++) {
            size_t i = rs->by_ls[l][j];
            if (detect_one(e, i)) {
                on_match(e, i);
            }
        }
    }
    return end_call(e);
}

int rules_engine_advance(struct rules_engine *e, int64_t now_ns, rules_alert_fn emit, void *arg)
{
    begin_call(e, emit, arg);
    rules__time_advance(e, now_ns);
    return end_call(e);
}

int rules_engine_flush(struct rules_engine *e, rules_alert_fn emit, void *arg)
{
    begin_call(e, emit, arg);
    rules__orphans_resolve(e);
    rules__corr_flush(e);
    rules__incident_flush(e);
    return end_call(e);
}

int64_t rules_engine_now(const struct rules_engine *e)
{
    return e->now;
}

/* rules/TIME.md "Hunt": a match at t depends on events back to t - lookback; whether it
 * opens an incident, on matches back to t - resolve_after; which of its events are new
 * to its incident, on the matches that reported them before, back to t - timespan. */
int64_t rules_engine_horizon(const struct rules_engine *e)
{
    int64_t h = 0;
    for (size_t i = 0; i < e->rs->nrules; i++) {
        const struct rule *r = &e->rs->rules[i];
        int64_t back = rules__resolve_after(e, i);
        if (r->type != RULES_DETECTION && r->corr.span_ns > back) {
            back = r->corr.span_ns;
        }
        int64_t x = rules__sat_add(r->lookback_ns, back);
        h = x > h ? x : h;
    }
    return rules__sat_add(h, e->lim.lateness_ns);
}

void rules_engine_stats(const struct rules_engine *e, const size_t *rule, struct rules_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (rule) {
        *st = e->rst[*rule];
        return;
    }
    st->events = e->st.events;
    st->values_truncated = e->st.values_truncated;
    st->sources = e->src.t.n;
    st->sources_evicted = e->st.sources_evicted;
    for (size_t i = 0; i < e->rs->nrules; i++) {
        const struct rules_stats *r = &e->rst[i];
        st->matches += r->matches;
        st->alerts += r->alerts;
        st->incidents += r->incidents;
        st->groups += r->groups;
        st->open_incidents += r->open_incidents;
        for (int k = 0; k < RULES_SKIP_COUNT; k++) {
            st->skipped[k] += r->skipped[k];
        }
        st->groups_evicted += r->groups_evicted;
        st->incidents_evicted += r->incidents_evicted;
    }
}
