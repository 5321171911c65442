/* rules/rules_ckpt.c: the engine's state as bytes (rules/README.md "Checkpoints"), so a
 * restart or a rule reload keeps attacks in progress and open incidents.
 *
 * Version 2, one msgpack map:
 *   {format: "vigil-rules-state", version: 2, now: int|nil, eid: uint,
 *    sources: [[key(bin), wm, last_r], ...]                  (least recent first)
 *    rules: [{key, fp: bin(32)|nil, title, level, type, group: [name, ...],
 *             groups: [[key(bin), start, start_r, last_r, lo_off, hi_off, deadline,
 *                       drill|nil, [[ts, r, seq|nil, eid, vh, ref, reported,
 *                                    nil|[total, [seq, ...]]], ...]], ...],
 *             incidents: [[key(bin), deadline, first_seen, last_seen, opened,
 *                          id_first_seen, last_emit, count, count_emitted, max_seq,
 *                          [total, [seq, ...]], win_start, win_end, [value hash, ...],
 *                          refs(bin)|nil, ident(bin)|nil, drill|nil], ...]}, ...]}
 * where key is the rule's id, name or title and fp a SHA-256 of a correlation's
 * definition. Groups are restored into the correlation with the same key and fp (one that
 * changed starts empty); incidents into the rule with the same key, else they become
 * orphans, resolved by the next call. Version 1 (groups only, one event clock `wm`) is
 * read too; its clock is not kept: it may have been pushed ahead by one event dated in
 * the future, the failure rules/TIME.md is about.
 *
 * Restore validates everything (bounded reads, references in range, limits) into
 * temporary state and installs it only when all of it parsed: a corrupt checkpoint
 * leaves the engine as it was. One thread; never blocks. */
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "common/xalloc.h"
#include "rules/engine_int.h"

#define CKPT_FORMAT "vigil-rules-state"

static const char *ckpt_key(const struct rule *r)
{
    return r->id ? r->id : r->name ? r->name : r->title;
}

/* ---- writing ---- */

#define PUT(x)        \
 do {                 \
  if ((rc = (x)) < 0) \
   return rc;         \
 } while (0)

static int put_str_or_nil(struct buf *out, const char *s)
{
    return s ? mp_put_cstr(out, s) : mp_put_nil(out);
}

static int put_seqs(struct buf *out, uint64_t total, const uint64_t *seqs, size_t n)
{
    int rc;
    PUT(mp_put_array(out, 2));
    PUT(mp_put_u64(out, total));
    PUT(mp_put_array(out, (uint32_t)n));
    for (size_t i = 0; i < n; i++) {
        PUT(mp_put_u64(out, seqs[i]));
    }
    return 0;
}

static int put_group(struct buf *out, const struct cgroup *g)
{
    int rc;
    PUT(mp_put_array(out, 9));
    PUT(mp_put_bin(out, g->kn.key, g->kn.keylen));
    PUT(mp_put_i64(out, g->start));
    PUT(mp_put_i64(out, g->start_r));
    PUT(mp_put_i64(out, g->last_r));
    PUT(mp_put_i64(out, g->lo_off));
    PUT(mp_put_i64(out, g->hi_off));
    PUT(mp_put_i64(out, g->dn.deadline));
    PUT(put_str_or_nil(out, g->drill));
    PUT(mp_put_array(out, g->n));
    for (uint32_t k = 0; k < g->n; k++) {
        const struct centry *en = &g->ent[k];
        PUT(mp_put_array(out, 8));
        PUT(mp_put_i64(out, en->ts));
        PUT(mp_put_i64(out, en->r));
        PUT(en->seq == RULES_NO_SEQ ? mp_put_nil(out) : mp_put_u64(out, en->seq));
        PUT(mp_put_u64(out, en->eid));
        PUT(mp_put_u64(out, en->vh));
        PUT(mp_put_u64(out, en->ref));
        PUT(mp_put_bool(out, en->reported != 0));
        PUT(en->sub ? put_seqs(out, en->sub->total, en->sub->seq, en->sub->n) : mp_put_nil(out));
    }
    return 0;
}

static int put_incident(const struct rules_engine *e, struct buf *out, const struct incident *x,
                        size_t nrefs)
{
    int rc;
    PUT(mp_put_array(out, 17));
    PUT(mp_put_bin(out, x->kn.key, x->kn.keylen));
    PUT(mp_put_i64(out, x->dn.deadline));
    PUT(mp_put_i64(out, x->first_seen));
    PUT(mp_put_i64(out, x->last_seen));
    PUT(mp_put_i64(out, x->opened));
    PUT(mp_put_i64(out, x->id_first_seen));
    PUT(mp_put_i64(out, x->last_emit));
    PUT(mp_put_u64(out, x->count));
    PUT(mp_put_u64(out, x->count_emitted));
    PUT(mp_put_u64(out, x->max_seq));
    size_t n = rules__seqs_out(&x->seqs, e->seqbuf);
    PUT(put_seqs(out, x->seqs.total, e->seqbuf, n));
    PUT(mp_put_i64(out, x->win_start));
    PUT(mp_put_i64(out, x->win_end));
    PUT(mp_put_array(out, x->nvals));
    for (uint32_t i = 0; i < x->nvals; i++) {
        PUT(mp_put_u64(out, x->vals[i]));
    }
    PUT(x->refs ? mp_put_bin(out, x->refs, nrefs) : mp_put_nil(out));
    PUT(x->ident ? mp_put_bin(out, x->ident, x->identlen) : mp_put_nil(out));
    PUT(put_str_or_nil(out, x->drill));
    return 0;
}

int rules_engine_checkpoint(const struct rules_engine *e, struct buf *out)
{
    const struct ruleset *rs = e->rs;
    int rc = 0;
    uint32_t nrules = 0;

    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rule *r = &rs->rules[i];
        nrules += r->type != RULES_DETECTION || e->is[i].t.n > 0;
    }
    PUT(mp_put_map(out, 6));
    PUT(mp_put_cstr(out, "format"));
    PUT(mp_put_cstr(out, CKPT_FORMAT));
    PUT(mp_put_cstr(out, "version"));
    PUT(mp_put_u64(out, 2));
    PUT(mp_put_cstr(out, "now"));
    PUT(e->now == INT64_MIN ? mp_put_nil(out) : mp_put_i64(out, e->now));
    PUT(mp_put_cstr(out, "eid"));
    PUT(mp_put_u64(out, e->eid));
    PUT(mp_put_cstr(out, "sources"));
    PUT(mp_put_array(out, (uint32_t)e->src.t.n));
    for (const struct source *s = e->src.oldest; s; s = s->newer) {
        PUT(mp_put_array(out, 3));
        PUT(mp_put_bin(out, s->kn.key, s->kn.keylen));
        PUT(mp_put_i64(out, s->wm));
        PUT(mp_put_i64(out, s->last_r));
    }
    PUT(mp_put_cstr(out, "rules"));
    PUT(mp_put_array(out, nrules));
    for (size_t i = 0; i < rs->nrules; i++) {
        const struct rule *r = &rs->rules[i];
        const struct istate *is = &e->is[i];
        if (r->type == RULES_DETECTION && is->t.n == 0) {
            continue;
        }
        const char *const *names =
            (const char *const *)(r->type == RULES_DETECTION ? r->dgroup : r->corr.group);
        size_t ngroup = r->type == RULES_DETECTION ? r->ndgroup : r->corr.ngroup;
        PUT(mp_put_map(out, 8));
        PUT(mp_put_cstr(out, "key"));
        PUT(mp_put_cstr(out, ckpt_key(r)));
        PUT(mp_put_cstr(out, "fp"));
        PUT(r->type == RULES_DETECTION ? mp_put_nil(out)
                                       : mp_put_bin(out, r->corr.fp, sizeof(r->corr.fp)));
        PUT(mp_put_cstr(out, "title"));
        PUT(mp_put_cstr(out, r->title));
        PUT(mp_put_cstr(out, "level"));
        PUT(mp_put_cstr(out, r->level ? r->level : ""));
        PUT(mp_put_cstr(out, "type"));
        PUT(mp_put_cstr(out, rules_type_name(r->type)));
        PUT(mp_put_cstr(out, "group"));
        PUT(mp_put_array(out, (uint32_t)ngroup));
        for (size_t g = 0; g < ngroup; g++) {
            PUT(mp_put_cstr(out, names[g]));
        }
        PUT(mp_put_cstr(out, "groups"));
        if (r->type == RULES_DETECTION) {
            PUT(mp_put_array(out, 0));
        } else {
            const struct cstate *cs = &e->cs[r->corr.index];
            PUT(mp_put_array(out, (uint32_t)cs->heap.n));
            for (size_t k = 0; k < cs->heap.n; k++) {
                PUT(put_group(out, rules__group_at(cs, k)));
            }
        }
        PUT(mp_put_cstr(out, "incidents"));
        PUT(mp_put_array(out, (uint32_t)is->heap.n));
        for (size_t k = 0; k < is->heap.n; k++) {
            PUT(put_incident(e, out, rules__incident_at(is, k), r->corr.nrefs));
        }
    }
    return 0;
}

#undef PUT

/* ---- reading ---- */

static bool rd(struct span *in, struct mp_obj *o, enum mp_type t)
{
    return mp_read(in, o) == 1 && o->type == t;
}

static bool rd_arr(struct span *in, uint32_t *n)
{
    struct mp_obj o;
    if (!rd(in, &o, MP_ARRAY)) {
        return false;
    }
    *n = o.v.count;
    return true;
}

static bool rd_arr_n(struct span *in, uint32_t want)
{
    uint32_t n;
    return rd_arr(in, &n) && n == want;
}

static bool rd_i64(struct span *in, int64_t *v)
{
    struct span val;
    return mp_take(in, &val) == 0 && mp_get_i64(val, v);
}

static bool rd_u64(struct span *in, uint64_t *v)
{
    struct mp_obj o;
    if (mp_read(in, &o) != 1 || o.type != MP_UINT) {
        return false;
    }
    *v = o.v.u;
    return true;
}

/* A binary or nil (*out empty). */
static bool rd_bin_or_nil(struct span *in, struct span *out, size_t max)
{
    struct span v;
    struct mp_obj o;
    if (mp_take(in, &v) < 0) {
        return false;
    }
    if (mp_is_nil(v)) {
        *out = (struct span){ NULL, 0 };
        return true;
    }
    struct span t = v;
    if (!rd(&t, &o, MP_BIN) || o.v.s.n > max) {
        return false;
    }
    *out = o.v.s;
    return true;
}

/* A string or nil, as a new C string (NULL for nil). */
static bool rd_str_or_nil(struct span *in, char **out, size_t max)
{
    struct span v;
    struct span s;
    *out = NULL;
    if (mp_take(in, &v) < 0) {
        return false;
    }
    if (mp_is_nil(v)) {
        return true;
    }
    if (!mp_get_str(v, &s) || s.n > max) {
        return false;
    }
    *out = xstrndup((const char *)s.p, s.n);
    return true;
}

static bool rd_bool(struct span *in, bool *b)
{
    struct span v;
    return mp_take(in, &v) == 0 && mp_get_bool(v, b);
}

/* [total, [seq, ...]] with at most max listed; nil when nil_ok (*is_nil). */
static bool rd_seqs(struct span *in, uint64_t *total, uint64_t *seqs, size_t max, size_t *n)
{
    uint32_t k;
    if (!rd_arr_n(in, 2) || !rd_u64(in, total) || !rd_arr(in, &k) || k > max) {
        return false;
    }
    for (uint32_t i = 0; i < k; i++) {
        if (!rd_u64(in, &seqs[i])) {
            return false;
        }
    }
    *n = k;
    return *total >= k;
}

/* What a restore found, installed only when all of it parsed. */
struct restore {
    struct rules_engine *e;
    int version;
    int64_t now;
    bool has_now;
    uint64_t eid;
    struct rsource {
        struct span key;
        int64_t wm, last_r;
    } * sources;
    size_t nsources;
    struct rgroup {
        size_t ci;
        struct cgroup *g;
    } * groups;
    size_t ngroups, capgroups;
    struct rinc {
        size_t rule;
        struct incident *x;
    } * incs;
    size_t nincs, capincs;
    struct orphan *orphans;
    size_t norphans, caporphans;
};

static void restore_release(struct restore *R)
{
    free(R->sources);
    for (size_t i = 0; i < R->ngroups; i++) {
        rules__group_free(R->groups[i].g);
    }
    free(R->groups);
    for (size_t i = 0; i < R->nincs; i++) {
        rules__incident_free(R->incs[i].x);
    }
    free(R->incs);
    rules__orphans_free(R->orphans, R->norphans);
    memset(R, 0, sizeof(*R));
}

/* One group: version 1 [key, start, [[ts, seq|nil, eid, vh, ref], ...]], version 2 as
 * the header says. ci < 0: parsed and dropped (its rule changed or is gone). */
static bool read_group(struct restore *R, long ci, struct span *in)
{
    struct rules_engine *e = R->e;
    const struct corr *co = ci >= 0 ? &e->rs->rules[e->rs->corr_rules[ci]].corr : NULL;
    struct mp_obj b;
    uint32_t ne;
    struct cgroup tmp = { 0 };
    char *drill = NULL;

    if (R->version == 1) {
        if (!rd_arr_n(in, 3) || !rd(in, &b, MP_BIN) || !rd_i64(in, &tmp.start) ||
            !rd_arr(in, &ne)) {
            return false;
        }
    } else if (!rd_arr_n(in, 9) || !rd(in, &b, MP_BIN) || !rd_i64(in, &tmp.start) ||
               !rd_i64(in, &tmp.start_r) || !rd_i64(in, &tmp.last_r) || !rd_i64(in, &tmp.lo_off) ||
               !rd_i64(in, &tmp.hi_off) || !rd_i64(in, &tmp.dn.deadline) ||
               !rd_str_or_nil(in, &drill, 128) || !rd_arr(in, &ne)) {
        free(drill);
        return false;
    }
    struct span gv[RULES_MAX_GROUP_BY + 1];
    if (co && !rules__key_decode(b.v.s.p, b.v.s.n, gv, co->ngroup)) {
        free(drill);
        return false; /* a key that is not this rule's shape: not our checkpoint */
    }
    struct cgroup *g = NULL;
    if (co) {
        g = xcalloc(1, sizeof(*g));
        *g = tmp;
        rules__knode_set(&g->kn, rules__siphash(e->hkey, b.v.s.p, b.v.s.n), b.v.s.p, b.v.s.n);
        g->drill = drill;
        drill = NULL;
    }
    free(drill);
    uint64_t *seqs = xmalloc((e->lim.max_alert_events + 1) * sizeof(*seqs));
    bool ok = true;
    for (uint32_t k = 0; k < ne && ok; k++) {
        struct centry en = { 0 };
        struct span sv;
        uint64_t ref = 0;
        bool reported = false;
        ok = rd_arr_n(in, R->version == 1 ? 5 : 8) && rd_i64(in, &en.ts);
        if (ok && R->version == 1) {
            en.r = en.ts; /* unknown: as if on time */
        } else if (ok) {
            ok = rd_i64(in, &en.r);
        }
        ok = ok && mp_take(in, &sv) == 0;
        if (ok && mp_is_nil(sv)) {
            en.seq = RULES_NO_SEQ;
        } else if (ok) {
            struct span t = sv;
            ok = rd_u64(&t, &en.seq);
        }
        ok = ok && rd_u64(in, &en.eid) && rd_u64(in, &en.vh) && rd_u64(in, &ref) &&
             (!co || ref < co->nrefs);
        if (ok && R->version >= 2) {
            struct span v;
            ok = rd_bool(in, &reported) && mp_take(in, &v) == 0;
            if (ok && !mp_is_nil(v)) {
                struct span t = v;
                uint64_t total;
                size_t n;
                ok = rd_seqs(&t, &total, seqs, e->lim.max_alert_events, &n);
                if (ok) {
                    en.sub = xmalloc(sizeof(*en.sub) + n * sizeof(uint64_t));
                    en.sub->total = total;
                    en.sub->n = (uint32_t)n;
                    memcpy(en.sub->seq, seqs, n * sizeof(uint64_t));
                }
            }
        }
        en.ref = (uint32_t)ref;
        en.reported = reported;
        if (ok && g) {
            rules__entry_insert(g, &en);
            if (g->n > e->lim.max_events_per_group) {
                free(g->ent[0].sub);
                memmove(g->ent, g->ent + 1, (g->n - 1) * sizeof(*g->ent));
                g->n--;
            }
        } else {
            free(en.sub);
        }
    }
    free(seqs);
    if (!ok) {
        rules__group_free(g);
        return false;
    }
    if (!g) {
        return true;
    }
    if (g->n == 0) {
        rules__group_free(g);
        return true;
    }
    if (R->version == 1) {
        /* v1 kept no arrival times: its groups count from their own event times, so
         * old ones expire at the first pass and recent ones go on */
        g->start_r = g->start;
        g->last_r = g->ent[g->n - 1].ts;
        g->lo_off = g->hi_off = 0;
        int64_t base = co->bounded ? g->start_r : g->last_r;
        g->dn.deadline = rules__sat_add(rules__sat_add(base, co->span_ns), e->lim.lateness_ns);
    }
    if (g->start > g->ent[0].ts) {
        g->start = g->ent[0].ts;
    }
    if (R->ngroups == R->capgroups) {
        R->capgroups = R->capgroups ? 2 * R->capgroups : 16;
        R->groups = xrealloc(R->groups, R->capgroups * sizeof(*R->groups));
    }
    R->groups[R->ngroups++] = (struct rgroup){ (size_t)ci, g };
    return true;
}

/* One incident of rule (RULES_NO_RULE: an orphan, meta the rule's entry). */
static bool read_incident(struct restore *R, size_t rule, const struct orphan *meta,
                          struct span *in)
{
    struct rules_engine *e = R->e;
    struct mp_obj b;
    struct incident t = { 0 };
    uint64_t *seqs = xmalloc((e->lim.max_alert_events + 1) * sizeof(*seqs));
    uint64_t total = 0;
    size_t nseqs = 0;
    uint32_t nvals = 0;
    struct span refs;
    struct span ident;
    char *drill = NULL;
    bool ok = rd_arr_n(in, 17) && rd(in, &b, MP_BIN) && rd_i64(in, &t.dn.deadline) &&
              rd_i64(in, &t.first_seen) && rd_i64(in, &t.last_seen) && rd_i64(in, &t.opened) &&
              rd_i64(in, &t.id_first_seen) && rd_i64(in, &t.last_emit) && rd_u64(in, &t.count) &&
              rd_u64(in, &t.count_emitted) && rd_u64(in, &t.max_seq) &&
              rd_seqs(in, &total, seqs, e->lim.max_alert_events, &nseqs) &&
              rd_i64(in, &t.win_start) && rd_i64(in, &t.win_end) && rd_arr(in, &nvals) &&
              nvals <= RULES_MAX_VALUES_KEPT;
    struct incident *x = NULL;
    if (ok) {
        x = rules__incident_alloc(e, b.v.s.p, b.v.s.n);
        if (nvals) {
            x->vals = xmalloc(nvals * sizeof(*x->vals));
        }
        for (uint32_t i = 0; i < nvals && ok; i++) {
            ok = rd_u64(in, &x->vals[i]) && (i == 0 || x->vals[i] > x->vals[i - 1]);
        }
        x->nvals = nvals;
    }
    ok = ok && rd_bin_or_nil(in, &refs, 1u << 16) && rd_bin_or_nil(in, &ident, 1u << 16) &&
         rd_str_or_nil(in, &drill, 128);
    if (!ok) {
        free(seqs);
        free(drill);
        rules__incident_free(x);
        return false;
    }
    /* what rules__incident_alloc made (key, hash, seq list) stays; the rest is t's */
    uint64_t *vals = x->vals;
    uint32_t nv = x->nvals;
    struct seqlist sl = x->seqs;
    struct knode kn = x->kn;
    *x = t;
    x->kn = kn;
    x->vals = vals;
    x->nvals = nv;
    x->seqs = sl;
    x->seqs.total = 0;
    x->seqs.nfirst = x->seqs.nlast = x->seqs.pos = 0;
    for (size_t i = 0; i < nseqs; i++) {
        rules__seqs_add(&x->seqs, seqs[i]);
    }
    x->seqs.total = total;
    free(seqs);
    x->drill = drill;
    if (ident.n > 0) {
        x->ident = xmalloc(ident.n);
        memcpy(x->ident, ident.p, ident.n);
        x->identlen = (uint32_t)ident.n;
    }
    if (rule != RULES_NO_RULE) {
        const struct rule *r = &e->rs->rules[rule];
        size_t ngroup = r->type == RULES_DETECTION ? r->ndgroup : r->corr.ngroup;
        struct span gv[RULES_MAX_GROUP_BY + 1];
        if (!rules__key_decode(x->kn.key, x->kn.keylen, gv, ngroup)) {
            rule = RULES_NO_RULE; /* its group changed: resolved like a removed rule's */
        } else {
            rules__incident_name(x, ckpt_key(r), ngroup);
            if (refs.n > 0 && r->type != RULES_DETECTION && refs.n == r->corr.nrefs) {
                x->refs = xmalloc(refs.n + 1);
                memcpy(x->refs, refs.p, refs.n);
            }
        }
    }
    if (rule == RULES_NO_RULE) {
        struct span gv[RULES_MAX_GROUP_BY + 1];
        if (!meta || !rules__key_decode(x->kn.key, x->kn.keylen, gv, meta->ngroup)) {
            rules__incident_free(x);
            return true; /* nothing to resolve it with */
        }
        rules__incident_name(x, meta->rule_key, meta->ngroup);
        if (R->norphans == R->caporphans) {
            R->caporphans = R->caporphans ? 2 * R->caporphans : 8;
            R->orphans = xrealloc(R->orphans, R->caporphans * sizeof(*R->orphans));
        }
        struct orphan *o = &R->orphans[R->norphans++];
        memset(o, 0, sizeof(*o));
        o->rule_key = xstrdup(meta->rule_key);
        o->title = xstrdup(meta->title);
        o->level = xstrdup(meta->level);
        o->type = xstrdup(meta->type);
        o->sev = meta->sev;
        o->ngroup = meta->ngroup;
        o->group_names = xcalloc(meta->ngroup + 1, sizeof(*o->group_names));
        o->group_values = xcalloc(meta->ngroup + 1, sizeof(*o->group_values));
        for (size_t g = 0; g < meta->ngroup; g++) {
            o->group_names[g] = xstrdup(meta->group_names[g]);
            uint8_t *p = xmalloc(gv[g].n + 1);
            memcpy(p, gv[g].p, gv[g].n);
            o->group_values[g] = (struct span){ p, gv[g].n };
        }
        o->inc = *x;
        free(x); /* its contents moved into the orphan */
        return true;
    }
    if (R->nincs == R->capincs) {
        R->capincs = R->capincs ? 2 * R->capincs : 16;
        R->incs = xrealloc(R->incs, R->capincs * sizeof(*R->incs));
    }
    R->incs[R->nincs++] = (struct rinc){ rule, x };
    return true;
}

/* One entry of "rules". */
static bool read_rule(struct restore *R, struct span *in, bool *seen_corr)
{
    struct rules_engine *e = R->e;
    const struct ruleset *rs = e->rs;
    struct mp_obj m;
    struct span key = { 0 };
    struct span fp = { 0 };
    struct orphan meta = { 0 };
    char *names[RULES_MAX_GROUP_BY + 1] = { 0 };
    bool ok = rd(in, &m, MP_MAP);
    long rule = -1;
    long ci = -1;

    for (uint32_t f = 0; ok && f < m.v.count; f++) {
        struct mp_obj k;
        struct mp_obj v;
        if (!rd(in, &k, MP_STR)) {
            ok = false;
            break;
        }
        struct span ks = k.v.s;
        if (span_eq_str(ks, "key")) {
            ok = rd(in, &v, MP_STR);
            key = v.v.s;
        } else if (span_eq_str(ks, "fp")) {
            ok = rd_bin_or_nil(in, &fp, 32) && (fp.n == 0 || fp.n == 32);
        } else if (span_eq_str(ks, "title") || span_eq_str(ks, "level") ||
                   span_eq_str(ks, "type")) {
            char *s = NULL;
            ok = rd_str_or_nil(in, &s, 4096) && s;
            char **dst = span_eq_str(ks, "title")   ? &meta.title
                         : span_eq_str(ks, "level") ? &meta.level
                                                    : &meta.type;
            free(*dst);
            *dst = s;
        } else if (span_eq_str(ks, "group")) {
            uint32_t n;
            for (size_t g = 0; g < RULES_MAX_GROUP_BY + 1; g++) { /* a repeated key */
                free(names[g]);
                names[g] = NULL;
            }
            meta.ngroup = 0;
            ok = rd_arr(in, &n) && n <= RULES_MAX_GROUP_BY;
            for (uint32_t g = 0; ok && g < n; g++) {
                ok = rd_str_or_nil(in, &names[g], 4096) && names[g];
                meta.ngroup = g + 1;
            }
        } else if (span_eq_str(ks, "groups") && key.p) {
            /* the correlation with this key and definition, not restored twice */
            for (size_t c = 0; c < rs->ncorr && ci < 0; c++) {
                const struct rule *r = &rs->rules[rs->corr_rules[c]];
                if (!seen_corr[c] && span_eq_str(key, ckpt_key(r)) && fp.n == 32 &&
                    memcmp(fp.p, r->corr.fp, 32) == 0) {
                    ci = (long)c;
                }
            }
            if (ci >= 0) {
                seen_corr[ci] = true;
            }
            uint32_t n;
            ok = rd_arr(in, &n);
            for (uint32_t g = 0; ok && g < n; g++) {
                ok = read_group(R, ci, in);
            }
        } else if (span_eq_str(ks, "incidents") && key.p && meta.title && meta.level && meta.type) {
            for (size_t i = 0; i < rs->nrules && rule < 0; i++) {
                rule = span_eq_str(key, ckpt_key(&rs->rules[i])) ? (long)i : -1;
            }
            meta.rule_key = xstrndup((const char *)key.p, key.n);
            int sev = rules__level_sev(meta.level);
            meta.sev = sev < 0 ? VG_SEV_WARNING : (enum vg_severity)sev;
            meta.group_names = names;
            uint32_t n;
            ok = rd_arr(in, &n);
            for (uint32_t i = 0; ok && i < n; i++) {
                ok = read_incident(R, rule >= 0 ? (size_t)rule : RULES_NO_RULE, &meta, in);
            }
        } else {
            ok = mp_skip(in) == 0;
        }
    }
    free(meta.rule_key);
    free(meta.title);
    free(meta.level);
    free(meta.type);
    for (size_t g = 0; g < RULES_MAX_GROUP_BY + 1; g++) {
        free(names[g]);
    }
    return ok && key.p;
}

static void install(struct restore *R)
{
    struct rules_engine *e = R->e;
    const struct ruleset *rs = e->rs;

    rules__corr_reset(e);
    for (size_t r = 0; r < rs->nrules; r++) {
        struct istate *is = &e->is[r];
        for (size_t i = 0; i < is->heap.n; i++) {
            rules__incident_free(rules__incident_at(is, i));
        }
        rules__dheap_release(&is->heap);
        rules__ktable_release(&is->t);
        e->rst[r].open_incidents = 0;
    }
    e->inc_next = INT64_MAX;
    rules__time_release(e);
    rules__orphans_release(e);
    for (size_t i = 0; i < R->nsources; i++) {
        rules__source_put(e, R->sources[i].key, R->sources[i].wm, R->sources[i].last_r);
    }
    for (size_t i = 0; i < R->ngroups; i++) {
        size_t ci = R->groups[i].ci;
        struct cgroup *g = R->groups[i].g;
        if (e->cs[ci].t.n < e->lim.max_groups_per_rule &&
            !rules__group_find(&e->cs[ci], g->kn.hash, g->kn.key, g->kn.keylen)) {
            rules__group_install(e, ci, g);
        } else {
            rules__group_free(g);
        }
        R->groups[i].g = NULL;
    }
    for (size_t i = 0; i < R->nincs; i++) {
        if (!rules__incident_install(e, R->incs[i].rule, R->incs[i].x)) {
            rules__incident_free(R->incs[i].x);
        }
        R->incs[i].x = NULL;
    }
    e->orphans = R->orphans;
    e->norphans = R->norphans;
    R->orphans = NULL;
    R->norphans = 0;
    if (R->has_now && R->now > e->now) {
        e->now = R->now;
    }
    if (R->eid > e->eid) {
        e->eid = R->eid;
    }
}

int rules_engine_restore(struct rules_engine *e, struct span state)
{
    struct restore R = { .e = e, .version = 1 };
    struct span in = state;
    struct mp_obj o;
    bool fmt_ok = false;
    bool have_rules = false;
    bool *seen_corr = xcalloc(e->rs->ncorr + 1, sizeof(*seen_corr));

    if (!rd(&in, &o, MP_MAP)) {
        goto corrupt;
    }
    uint32_t nkeys = o.v.count;
    for (uint32_t i = 0; i < nkeys; i++) {
        struct mp_obj k;
        if (!rd(&in, &k, MP_STR)) {
            goto corrupt;
        }
        struct span ks = k.v.s;
        if (span_eq_str(ks, "format")) {
            struct mp_obj v;
            if (!rd(&in, &v, MP_STR) || !span_eq_str(v.v.s, CKPT_FORMAT)) {
                goto corrupt;
            }
            fmt_ok = true;
        } else if (span_eq_str(ks, "version")) {
            uint64_t v;
            if (!rd_u64(&in, &v) || v < 1 || v > 2 || have_rules) {
                goto corrupt;
            }
            R.version = (int)v;
        } else if (span_eq_str(ks, "now") || span_eq_str(ks, "wm")) {
            struct span v;
            int64_t t;
            if (mp_take(&in, &v) < 0 || (!mp_is_nil(v) && !mp_get_i64(v, &t))) {
                goto corrupt;
            }
            if (span_eq_str(ks, "now") && !mp_is_nil(v)) {
                R.now = t;
                R.has_now = true;
            }
        } else if (span_eq_str(ks, "eid")) {
            if (!rd_u64(&in, &R.eid)) {
                goto corrupt;
            }
        } else if (span_eq_str(ks, "sources")) {
            uint32_t n;
            if (R.sources || !rd_arr(&in, &n) || n > 1u << 24) {
                goto corrupt; /* a repeated key is not our writing */
            }
            R.sources = xcalloc((size_t)n + 1, sizeof(*R.sources));
            for (uint32_t s = 0; s < n; s++) {
                struct mp_obj b;
                struct rsource *x = &R.sources[R.nsources++];
                if (!rd_arr_n(&in, 3) || !rd(&in, &b, MP_BIN) ||
                    b.v.s.n > 2 * RULES_MAX_KEY_VALUE + 1 || !rd_i64(&in, &x->wm) ||
                    !rd_i64(&in, &x->last_r)) {
                    goto corrupt;
                }
                x->key = b.v.s;
            }
        } else if (span_eq_str(ks, "rules")) {
            uint32_t n;
            if (!rd_arr(&in, &n)) {
                goto corrupt;
            }
            have_rules = true;
            for (uint32_t r = 0; r < n; r++) {
                if (!read_rule(&R, &in, seen_corr)) {
                    goto corrupt;
                }
            }
        } else if (mp_skip(&in) < 0) {
            goto corrupt;
        }
    }
    if (!fmt_ok || !have_rules || in.n != 0) {
        goto corrupt;
    }
    install(&R);
    size_t total = R.ngroups + R.nincs;
    restore_release(&R);
    free(seen_corr);
    return (int)(total > INT32_MAX ? INT32_MAX : total);
corrupt:
    restore_release(&R);
    free(seen_corr);
    return VG_ECORRUPT;
}
