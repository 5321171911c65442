/* rules/rules_incident.c: the alert life cycle inside the engine (schemas/alert.md).
 *
 * A match (a detection's event, a correlation's window that holds) belongs to the
 * incident of its rule and group: the correlation's group-by values, or for a detection
 * the fields that tell what it fired on apart (vigil.group-by, else host, namespace, pod,
 * container_id). The first match opens the incident (a "firing" record with the
 * window's events no earlier incident had); later ones add their new triggering events
 * and, at most once per
 * update_every of event time while it grows, give an "update" record; when no match came for
 * resolve_after it resolves (a "resolved" record, dated last_seen + resolve_after). A later match
 * opens a new incident with the same fingerprint.
 *
 * An incident covers event time: a match belongs to the open incident of its rule and
 * group whose [first_seen - resolve_after, last_seen + resolve_after] holds the match's
 * time, else it opens a new one. So a backlog replayed hours late and live traffic with
 * the same group are two incidents, as they would have been on time, and a fast replay
 * of days of old events opens one per quiet-separated run. An incident resolves when
 * the collector clock passes its last match's arrival + resolve_after + lateness
 * (rules/TIME.md), deterministic on the stream.
 *
 * Bounds: max_incidents_per_rule open incidents per rule (at the cap the one closest to
 * resolution resolves early, reason "evicted", counted); max_alert_events seqs listed per
 * record (the first and the last half) with their total; RULES_MAX_VALUES_KEPT distinct
 * values counted for value_count. Tables are keyed with SipHash under the engine's key.
 *
 * One thread; never blocks. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "common/xalloc.h"
#include "rules/engine_int.h"

/* ---- seq lists ---- */

void rules__seqs_add(struct seqlist *l, uint64_t seq)
{
    l->total++;
    if (l->nfirst < l->half) {
        l->buf[l->nfirst++] = seq;
        return;
    }
    l->buf[l->half + l->pos] = seq;
    l->pos = (l->pos + 1) % l->half;
    if (l->nlast < l->half) {
        l->nlast++;
    }
}

size_t rules__seqs_out(const struct seqlist *l, uint64_t *out)
{
    size_t n = 0;
    for (uint32_t i = 0; i < l->nfirst; i++) {
        out[n++] = l->buf[i];
    }
    uint32_t from = l->nlast < l->half ? 0 : l->pos;
    for (uint32_t i = 0; i < l->nlast; i++) {
        out[n++] = l->buf[l->half + (from + i) % l->half];
    }
    return n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- drill markers ---- */

struct span rules__drill_of(const struct rec *r)
{
    struct span v;
    struct span s = { NULL, 0 };

    if (r && r->raw.n > 0 && mp_map_get(r->raw, SPAN_LIT("vigil_drill"), &v) == 1 &&
        mp_get_str(v, &s) && s.n > 0 && s.n <= 128) {
        return s;
    }
    return (struct span){ NULL, 0 };
}

/* ---- tables ---- */

/* The open incident of group key whose event time span, widened by ra on each side,
 * holds ts (ra < 0: any with that key). */
static struct incident *find(const struct istate *is, uint64_t h, const uint8_t *key, size_t n,
                             int64_t ts, int64_t ra)
{
    for (struct knode *k = rules__ktable_find(&is->t, NULL, h, key, n); k;
         k = rules__ktable_find(&is->t, k, h, key, n)) {
        struct incident *x = (struct incident *)k;
        if (ra < 0 ||
            (ts >= rules__sat_sub(x->first_seen, ra) && ts <= rules__sat_add(x->last_seen, ra))) {
            return x;
        }
    }
    return NULL;
}

static void unlink_incident(struct istate *is, struct incident *x)
{
    rules__ktable_remove(&is->t, &x->kn);
    rules__dheap_remove(&is->heap, &x->dn);
}

struct incident *rules__incident_alloc(const struct rules_engine *e, const uint8_t *key,
                                       size_t keylen)
{
    struct incident *x = xcalloc(1, sizeof(*x));
    rules__knode_set(&x->kn, rules__siphash(e->hkey, key, keylen), key, keylen);
    x->seqs.half = (uint32_t)(e->lim.max_alert_events / 2);
    x->seqs.buf = xmalloc(2 * x->seqs.half * sizeof(uint64_t));
    x->first_seen = INT64_MAX;
    x->last_seen = INT64_MIN;
    return x;
}

void rules__incident_free(struct incident *x)
{
    if (x) {
        free(x->kn.key);
        free(x->seqs.buf);
        free(x->vals);
        free(x->refs);
        free(x->ident);
        free(x->drill);
        free(x);
    }
}

bool rules__incident_install(struct rules_engine *e, size_t rule, struct incident *x)
{
    struct istate *is = &e->is[rule];
    if (is->t.n >= e->lim.max_incidents_per_rule) {
        return false;
    }
    rules__ktable_insert(&is->t, &x->kn);
    rules__dheap_push(&is->heap, &x->dn);
    e->rst[rule].open_incidents++;
    if (x->dn.deadline < e->inc_next) {
        e->inc_next = x->dn.deadline;
    }
    return true;
}

void rules__incident_init(struct rules_engine *e)
{
    e->inc_next = INT64_MAX;
    e->is = xcalloc(e->rs->nrules + 1, sizeof(*e->is));
    e->seqbuf = xmalloc(2 * (e->lim.max_alert_events / 2 + 1) * sizeof(uint64_t));
}

void rules__incident_release(struct rules_engine *e)
{
    if (!e->is) {
        return;
    }
    for (size_t r = 0; r < e->rs->nrules; r++) {
        struct istate *is = &e->is[r];
        for (size_t i = 0; i < is->heap.n; i++) {
            rules__incident_free(rules__incident_at(is, i));
        }
        rules__dheap_release(&is->heap);
        rules__ktable_release(&is->t);
    }
    free(e->is);
    e->is = NULL;
    rules__orphans_release(e);
    free(e->seqbuf);
    e->seqbuf = NULL;
}

/* ---- identity ---- */

static const enum vg_field ident_fields[] = {
    VG_F_HOST,    VG_F_NAMESPACE, VG_F_POD,    VG_F_CONTAINER_ID, VG_F_CONTAINER_NAME,
    VG_F_IMAGE,   VG_F_USER,      VG_F_SRC_IP, VG_F_DST_IP,       VG_F_PROCESS,
    VG_F_CMDLINE, VG_F_ACTION,    VG_F_OBJECT,
};
#define IDENT_VALUE_MAX 1024 /* bytes of one identity value kept (a long cmdline is cut) */

/* Keeps the identity fields of a detection's first event: per field, u8 field, u16
 * length (LE), bytes. */
static void ident_keep(struct incident *x, const struct rec *r)
{
    size_t n = 0;
    for (size_t i = 0; i < VG_ARRAY_LEN(ident_fields); i++) {
        size_t len = r->str[ident_fields[i]].n;
        n += len ? 3 + (len < IDENT_VALUE_MAX ? len : IDENT_VALUE_MAX) : 0;
    }
    if (n == 0) {
        return;
    }
    x->ident = xmalloc(n);
    size_t o = 0;
    for (size_t i = 0; i < VG_ARRAY_LEN(ident_fields); i++) {
        struct span v = r->str[ident_fields[i]];
        size_t len = v.n < IDENT_VALUE_MAX ? v.n : IDENT_VALUE_MAX;
        if (v.n == 0) {
            continue;
        }
        x->ident[o++] = (uint8_t)ident_fields[i];
        x->ident[o++] = (uint8_t)(len & 0xff);
        x->ident[o++] = (uint8_t)(len >> 8);
        memcpy(x->ident + o, v.p, len);
        o += len;
    }
    x->identlen = (uint32_t)o;
}

/* Spans of the incident's identity: a detection's kept fields; a correlation's group-by
 * fields that are normalized fields of its referenced detections. */
static void ident_spans(const struct ruleset *rs, size_t rule, const struct incident *x,
                        const struct span *gv, struct span *out)
{
    for (int f = 0; f < VG_F_COUNT; f++) {
        out[f] = (struct span){ NULL, 0 };
    }
    if (x->ident) {
        for (size_t o = 0; o + 3 <= x->identlen;) {
            size_t len = x->ident[o + 1] | (size_t)x->ident[o + 2] << 8;
            if (x->ident[o] < VG_F_COUNT && o + 3 + len <= x->identlen) {
                out[x->ident[o]] = (struct span){ x->ident + o + 3, len };
            }
            o += 3 + len;
        }
        return;
    }
    if (rule == RULES_NO_RULE || !gv) {
        return;
    }
    const struct rule *r = &rs->rules[rule];
    for (size_t g = 0; g < r->corr.ngroup; g++) {
        int f = -1;
        for (size_t k = 0; k < r->corr.nrefs && f < 0; k++) {
            const struct corr_ref *cr = &r->corr.refs[k];
            if (rs->rules[cr->rule].type != RULES_DETECTION) {
                continue;
            }
            const struct slot *s = &rs->slots[cr->gsrc[g]];
            if (s->ntgts >= 1 && s->tgts[0].kind == TGT_FIELD) {
                enum vg_field_type t = vg_field_type((enum vg_field)s->tgts[0].field);
                if (t != VG_FT_TIME && t != VG_FT_UINT && t != VG_FT_INT) {
                    f = s->tgts[0].field;
                }
            }
            break;
        }
        if (f >= 0 && f != VG_F_SOURCE && f != VG_F_KIND && f != VG_F_SEVERITY && f != VG_F_RULE &&
            f != VG_F_MESSAGE && gv[g].n > 0) {
            out[f] = gv[g];
        }
    }
}

/* ---- settings and output ---- */

int64_t rules__resolve_after(const struct rules_engine *e, size_t rule)
{
    int64_t v = e->rs->rules[rule].resolve_after_ns;
    return v > 0 ? v : e->lim.resolve_after_ns;
}

int64_t rules__update_every(const struct rules_engine *e, size_t rule)
{
    int64_t v = e->rs->rules[rule].update_every_ns;
    return v > 0 ? v : e->lim.update_every_ns;
}

void rules__emit(struct rules_engine *e, const struct rules_alert *a)
{
    e->nalerts++;
    e->st.alerts++;
    if (a->rule != RULES_NO_RULE) {
        e->rst[a->rule].alerts++;
    }
    if (e->emit) {
        int rc = e->emit(a, e->arg);
        if (rc != 0 && e->emit_rc == 0) {
            e->emit_rc = rc;
        }
    }
}

/* ---- records ---- */

static const char *rule_key(const struct rule *r)
{
    return r->id ? r->id : r->name ? r->name : r->title;
}

/* The group of an alert record: every value (for the fingerprint), and the names and
 * values of those present (for the record). */
struct agroup {
    struct span all[RULES_MAX_GROUP_BY + 1];
    size_t nall;
    const char *names[RULES_MAX_GROUP_BY + 1];
    struct span vals[RULES_MAX_GROUP_BY + 1];
    size_t n;
};

static bool agroup_of(const struct rule *r, const struct incident *x, struct agroup *g)
{
    const char *const *names =
        (const char *const *)(r->type == RULES_DETECTION ? r->dgroup : r->corr.group);
    g->nall = r->type == RULES_DETECTION ? r->ndgroup : r->corr.ngroup;
    g->n = 0;
    if (!rules__key_decode(x->kn.key, x->kn.keylen, g->all, g->nall)) {
        return false; /* cannot happen: keys are built by rules__key_encode */
    }
    for (size_t i = 0; i < g->nall; i++) {
        if (g->all[i].n > 0 || r->type != RULES_DETECTION) {
            g->names[g->n] = names[i];
            g->vals[g->n++] = g->all[i];
        }
    }
    return true;
}

void rules__incident_name(struct incident *x, const char *rule_key, size_t ngroup)
{
    struct span gv[RULES_MAX_GROUP_BY + 1];
    if (!rules__key_decode(x->kn.key, x->kn.keylen, gv, ngroup)) {
        ngroup = 0; /* cannot happen: keys are built by rules__key_encode */
    }
    rules_alert_fingerprint(rule_key, gv, ngroup, x->fingerprint);
    snprintf(x->id, sizeof(x->id), "%s-%" PRId64, x->fingerprint, x->id_first_seen);
}

/* Emits one record of incident x of rule (an orphan's: o). */
static void emit(struct rules_engine *e, size_t rule, const struct orphan *o, struct incident *x,
                 enum rules_alert_state state, int64_t ts, const char *reason)
{
    struct agroup g;
    struct span ident[VG_F_COUNT];
    const struct rule *r = rule == RULES_NO_RULE ? NULL : &e->rs->rules[rule];
    struct rules_alert a = {
        .rule = rule,
        .state = state,
        .reason = reason,
        .ts = ts,
        .count = x->count,
        .seqs_total = x->seqs.total,
        .first_seen = x->first_seen,
        .last_seen = x->last_seen,
        .opened = x->opened,
        .window_start = x->win_start,
        .window_end = x->win_end,
        .drill = x->drill ? span_str(x->drill) : (struct span){ NULL, 0 },
        .ident = ident,
    };

    if (r) {
        if (!agroup_of(r, x, &g)) {
            return;
        }
        a.rule_id = r->id ? r->id : r->name ? r->name : "";
        a.title = r->title;
        a.level = r->level ? r->level : "";
        a.severity = r->sev;
        a.type = r->type;
        a.tags = (const char *const *)r->tags;
        a.ntags = r->ntags;
        a.resolve_after_ns = rules__resolve_after(e, rule);
        ident_spans(e->rs, rule, x, g.all, ident);
    } else {
        memset(&g, 0, sizeof(g));
        bool detection = strcmp(o->type, "detection") == 0;
        for (size_t i = 0; i < o->ngroup; i++) {
            g.all[i] = o->group_values[i];
            if (o->group_values[i].n > 0 || !detection) {
                g.names[g.n] = o->group_names[i];
                g.vals[g.n++] = o->group_values[i];
            }
        }
        g.nall = o->ngroup;
        a.rule_id = o->rule_key;
        a.title = o->title;
        a.level = o->level;
        a.severity = o->sev;
        a.type = RULES_DETECTION;
        for (int t = RULES_DETECTION; t <= RULES_TEMPORAL_ORDERED; t++) {
            if (strcmp(rules_type_name((enum rules_type)t), o->type) == 0) {
                a.type = (enum rules_type)t;
            }
        }
        a.resolve_after_ns = ts - x->last_seen;
        ident_spans(e->rs, RULES_NO_RULE, x, NULL, ident);
    }
    a.ngroup = g.n;
    a.group_names = g.names;
    a.group_values = g.vals;
    memcpy(a.fingerprint, x->fingerprint, sizeof(a.fingerprint));
    memcpy(a.incident, x->id, sizeof(a.incident));
    a.nseqs = rules__seqs_out(&x->seqs, e->seqbuf);
    qsort(e->seqbuf, a.nseqs, sizeof(*e->seqbuf), cmp_u64);
    a.seqs = e->seqbuf;
    rules__emit(e, &a);
}

/* Resolves and frees x (rule's), emitting its resolved record. */
static void resolve(struct rules_engine *e, size_t rule, struct incident *x, const char *reason)
{
    int64_t ra = rules__resolve_after(e, rule);
    int64_t ts = reason ? x->last_seen : rules__sat_add(x->last_seen, ra);

    unlink_incident(&e->is[rule], x);
    e->rst[rule].open_incidents--;
    emit(e, rule, NULL, x, RULES_RESOLVED, ts, reason);
    rules__incident_free(x);
}

/* ---- matches ---- */

static void add_seq(struct incident *x, uint64_t seq)
{
    if (seq == RULES_NO_SEQ) {
        return;
    }
    rules__seqs_add(&x->seqs, seq);
    x->max_seq = seq > x->max_seq ? seq : x->max_seq;
}

/* The seqs a referenced correlation's match carried: its windows overlap from one match
 * to the next, so only seqs past the greatest counted so far are new. */
static void add_sub(struct incident *x, const struct subseqs *s)
{
    bool all_new = s->n == 0 || s->seq[0] > x->max_seq || x->seqs.total == 0;
    for (uint32_t i = 0; i < s->n; i++) {
        if (all_new || s->seq[i] > x->max_seq) {
            add_seq(x, s->seq[i]);
        }
    }
    if (all_new && s->total > s->n) {
        x->seqs.total += s->total - s->n; /* those it did not list */
    }
}

static void add_value(struct incident *x, uint64_t vh)
{
    size_t lo = 0;
    size_t hi = x->nvals;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->vals[mid] < vh) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if ((lo < x->nvals && x->vals[lo] == vh) || x->nvals >= RULES_MAX_VALUES_KEPT) {
        return;
    }
    if ((x->nvals & (x->nvals - 1)) == 0) { /* 0, 1, 2, 4...: grow */
        x->vals = xrealloc(x->vals, (x->nvals ? 2 * x->nvals : 1) * sizeof(*x->vals));
    }
    memmove(x->vals + lo + 1, x->vals + lo, (x->nvals - lo) * sizeof(*x->vals));
    x->vals[lo] = vh;
    x->nvals++;
}

void rules__incident_match(struct rules_engine *e, size_t rule, const struct imatch *m)
{
    const struct rule *r = &e->rs->rules[rule];
    struct istate *is = &e->is[rule];
    int64_t ra = rules__resolve_after(e, rule);
    uint64_t h = rules__siphash(e->hkey, m->key, m->keylen);
    struct incident *x = find(is, h, m->key, m->keylen, m->ts, ra);
    bool opening = x == NULL;
    if (opening) {
        if (is->t.n >= e->lim.max_incidents_per_rule) {
            e->rst[rule].incidents_evicted++;
            resolve(e, rule, rules__incident_at(is, 0), "evicted");
        }
        x = rules__incident_alloc(e, m->key, m->keylen);
        rules__ktable_insert(&is->t, &x->kn);
        rules__dheap_push(&is->heap, &x->dn);
        e->rst[rule].open_incidents++;
        e->rst[rule].incidents++;
    }
    uint64_t before = x->count;
    uint64_t before_total = x->seqs.total;
    if (m->rec) {
        x->count++;
        add_seq(x, m->rec->has_seq ? m->rec->seq : RULES_NO_SEQ);
        x->first_seen = m->ts < x->first_seen ? m->ts : x->first_seen;
        if (opening) {
            ident_keep(x, m->rec);
        }
    } else {
        /* The match's events no earlier match reported: an incident opened while events
         * of a resolved one are still in the window starts with its own (so its first_seen,
         * and its id, are its own) */
        const struct centry *const *add = m->fresh;
        size_t nadd = m->nfresh;
        for (size_t i = 0; i < nadd; i++) {
            const struct centry *en = add[i];
            if (en->sub) {
                add_sub(x, en->sub);
            } else {
                add_seq(x, en->seq);
            }
            x->first_seen = en->ts < x->first_seen ? en->ts : x->first_seen;
        }
        switch (r->type) {
        case RULES_EVENT_COUNT:
            x->count += nadd;
            break;
        case RULES_VALUE_COUNT:
            for (size_t i = 0; i < m->nwindow; i++) {
                add_value(x, m->window[i]->vh);
            }
            x->count = x->nvals;
            break;
        case RULES_TEMPORAL:
        case RULES_TEMPORAL_ORDERED:
            if (!x->refs) {
                x->refs = xcalloc(r->corr.nrefs + 1, 1);
            }
            for (size_t i = 0; i < m->nwindow; i++) {
                if (!x->refs[m->window[i]->ref]) {
                    x->refs[m->window[i]->ref] = 1;
                    x->count++;
                }
            }
            break;
        case RULES_DETECTION:
            break;
        }
    }
    if (!x->drill && m->drill.n > 0) {
        x->drill = xstrndup((const char *)m->drill.p, m->drill.n);
    }
    x->last_seen = m->ts > x->last_seen ? m->ts : x->last_seen;
    x->win_start = m->win_start;
    x->win_end = m->win_end;
    x->dn.deadline = rules__sat_add(rules__sat_add(m->r, ra), e->lim.lateness_ns);
    if (x->dn.deadline < e->inc_next) {
        e->inc_next = x->dn.deadline;
    }
    rules__dheap_fix(&is->heap, &x->dn);
    if (opening) {
        x->opened = m->ts;
        x->id_first_seen = x->first_seen;
        rules__incident_name(x, rule_key(r),
                             r->type == RULES_DETECTION ? r->ndgroup : r->corr.ngroup);
        x->last_emit = m->ts;
        x->count_emitted = x->count;
        emit(e, rule, NULL, x, RULES_FIRING, m->ts, NULL);
        return;
    }
    bool grew = x->count > before || x->seqs.total > before_total;
    if (grew && m->ts >= rules__sat_add(x->last_emit, rules__update_every(e, rule))) {
        x->last_emit = m->ts;
        x->count_emitted = x->count;
        emit(e, rule, NULL, x, RULES_UPDATE, m->ts, NULL);
    }
}

void rules__incident_expire(struct rules_engine *e)
{
    if (e->gate <= e->inc_next) {
        return; /* the common case: nothing is due (deadlines only move later) */
    }
    int64_t next = INT64_MAX;
    for (size_t r = 0; r < e->rs->nrules; r++) {
        struct istate *is = &e->is[r];
        while (is->heap.n > 0 && is->heap.v[0]->deadline < e->gate) {
            resolve(e, r, rules__incident_at(is, 0), NULL);
        }
        if (is->heap.n > 0 && is->heap.v[0]->deadline < next) {
            next = is->heap.v[0]->deadline;
        }
    }
    e->inc_next = next;
}

void rules__incident_flush(struct rules_engine *e)
{
    for (size_t r = 0; r < e->rs->nrules; r++) {
        struct istate *is = &e->is[r];
        while (is->heap.n > 0) {
            resolve(e, r, rules__incident_at(is, 0), NULL);
        }
    }
}

/* ---- orphans (rules a reload removed) ---- */

void rules__orphans_resolve(struct rules_engine *e)
{
    for (size_t i = 0; i < e->norphans; i++) {
        struct orphan *o = &e->orphans[i];
        emit(e, RULES_NO_RULE, o, &o->inc, RULES_RESOLVED, o->inc.last_seen, "rule removed");
    }
    rules__orphans_release(e);
}

void rules__orphans_release(struct rules_engine *e)
{
    rules__orphans_free(e->orphans, e->norphans);
    e->orphans = NULL;
    e->norphans = 0;
}

void rules__orphans_free(struct orphan *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct orphan *o = &v[i];
        free(o->rule_key);
        free(o->title);
        free(o->level);
        free(o->type);
        for (size_t g = 0; g < o->ngroup; g++) {
            free(o->group_names[g]);
            free((void *)o->group_values[g].p);
        }
        free(o->group_names);
        free(o->group_values);
        free(o->inc.kn.key);
        free(o->inc.seqs.buf);
        free(o->inc.vals);
        free(o->inc.refs);
        free(o->inc.ident);
        free(o->inc.drill);
    }
    free(v);
}
