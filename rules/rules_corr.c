/* rules/rules_corr.c: Sigma correlation rules (sigma-correlation-rules-specification):
 * event_count, value_count, temporal and temporal_ordered over sliding windows of event
 * time, per group of group-by values.
 *
 * State per correlation rule: a hash table of groups (SipHash with a per-engine key) and
 * a min-heap of the groups by deadline. A group remembers its events (time, arrival,
 * seq, the engine's event id, the counted value's hash, which referenced rule, and for a
 * referenced correlation's match its triggering seqs), sorted by time.
 *
 * Conditions without an upper bound (gte, gt; temporal's "all rules") are monotone: on
 * every event the windows containing it are checked (the window ending at the event
 * when it is the newest; for an event that came a little late, every window [a, a +
 * timespan] starting at a remembered event a before it), and each event at which one
 * holds is a match. The group is not emptied by a match: a match depends only on the
 * events within a timespan of it, never on where earlier matches fell, so a hunt that
 * starts a window before another gets the same matches (rules/TIME.md "Hunt"). A match
 * reports the window's events not reported before to the rule's incident
 * (rules_incident.c), which turns a run of matches into one alert that updates.
 * Conditions with an upper bound (lt, lte, eq, ranges) can only be decided when a window
 * is over: the window opens at a group's first event, closes when the collector clock
 * passes its first event's arrival + timespan + lateness (or an event of the group
 * comes that much after its start), matches if the count is in range, and the events
 * after it open the next window.
 *
 * Time (rules/TIME.md): windows are event time; a group expires (monotone) when the
 * collector clock passes its newest feed's arrival + timespan + lateness; within a group
 * events older than the newest - timespan - lateness - the spread of its feeders' clocks
 * are forgotten (no non-late event can reach them).
 *
 * Bounds: max_groups_per_rule (at the cap the group with the nearest deadline is dropped,
 * its events counted as state_cap), max_events_per_group (the oldest event is forgotten,
 * counted), group-by values cut at RULES_MAX_KEY_VALUE bytes.
 *
 * Chains: a match feeds the correlations that refer to it, with its group-by values, at
 * its latest event's time, and its window's seqs, which the parent lists. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "rules/engine_int.h"

static const struct corr *corr_of(const struct rules_engine *e, size_t rule)
{
    return &e->rs->rules[rule].corr;
}

/* ---- groups ---- */

struct cgroup *rules__group_find(const struct cstate *cs, uint64_t h, const uint8_t *key,
                                 size_t keylen)
{
    return (struct cgroup *)rules__ktable_find(&cs->t, NULL, h, key, keylen);
}

void rules__group_free(struct cgroup *g)
{
    if (g) {
        for (uint32_t i = 0; i < g->n; i++) {
            free(g->ent[i].sub);
        }
        free(g->kn.key);
        free(g->ent);
        free(g->drill);
        free(g);
    }
}

static void group_drop(struct rules_engine *e, size_t rule, struct cgroup *g)
{
    struct cstate *cs = &e->cs[corr_of(e, rule)->index];
    rules__ktable_remove(&cs->t, &g->kn);
    rules__dheap_remove(&cs->heap, &g->dn);
    rules__group_free(g);
    e->rst[rule].groups--;
}

static struct cgroup *group_new(struct rules_engine *e, size_t rule, uint64_t h, const uint8_t *key,
                                size_t keylen)
{
    struct cstate *cs = &e->cs[corr_of(e, rule)->index];
    struct cgroup *g = xcalloc(1, sizeof(*g));
    rules__knode_set(&g->kn, h, key, keylen);
    g->lo_off = INT64_MAX;
    g->hi_off = INT64_MIN;
    rules__ktable_insert(&cs->t, &g->kn);
    rules__dheap_push(&cs->heap, &g->dn);
    e->rst[rule].groups++;
    return g;
}

void rules__group_install(struct rules_engine *e, size_t ci, struct cgroup *g)
{
    struct cstate *cs = &e->cs[ci];
    rules__ktable_insert(&cs->t, &g->kn);
    rules__dheap_push(&cs->heap, &g->dn);
    e->rst[e->rs->corr_rules[ci]].groups++;
}

static int entry_cmp(const struct centry *a, const struct centry *b)
{
    if (a->ts != b->ts) {
        return a->ts < b->ts ? -1 : 1;
    }
    return a->eid < b->eid ? -1 : a->eid > b->eid;
}

/* Inserts keeping (ts, eid) order (after equal ones); returns the index. */
static size_t entry_insert(struct cgroup *g, const struct centry *en)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 4;
        g->ent = xrealloc(g->ent, g->cap * sizeof(*g->ent));
    }
    size_t lo = 0;
    size_t hi = g->n;
    if (g->n == 0 || entry_cmp(&g->ent[g->n - 1], en) <= 0) {
        lo = g->n; /* the common case: in order */
    } else {
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (entry_cmp(&g->ent[mid], en) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
    }
    memmove(g->ent + lo + 1, g->ent + lo, (g->n - lo) * sizeof(*g->ent));
    g->ent[lo] = *en;
    g->n++;
    return lo;
}

void rules__entry_insert(struct cgroup *g, const struct centry *en)
{
    (void)entry_insert(g, en);
}

/* Removes entries [from, to), freeing what they own. */
static void entry_remove(struct cgroup *g, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        free(g->ent[i].sub);
    }
    memmove(g->ent + from, g->ent + to, (g->n - to) * sizeof(*g->ent));
    g->n -= (uint32_t)(to - from);
}

/* First index with ts >= t. */
static size_t lower_ts(const struct cgroup *g, int64_t t)
{
    size_t lo = 0;
    size_t hi = g->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->ent[mid].ts < t) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Collector-time deadlines (rules/TIME.md): a monotone group expires when the clock
 * passes its newest feed's arrival + timespan + lateness; a bounded window closes when it
 * passes its first event's arrival + timespan + lateness. */
static void set_deadline(struct rules_engine *e, const struct corr *co, struct cgroup *g)
{
    struct cstate *cs = &e->cs[co->index];
    int64_t base = co->bounded ? g->start_r : g->last_r;
    g->dn.deadline = rules__sat_add(rules__sat_add(base, co->span_ns), e->lim.lateness_ns);
    rules__dheap_fix(&cs->heap, &g->dn);
}

/* ---- counting within a window ---- */

/* value_count: a small counter of value hashes, reset per use. */
static void vc_reset(struct rules_engine *e, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 2) {
        cap *= 2;
    }
    if (cap > e->vcount_cap) {
        free(e->vcount_keys);
        free(e->vcount_vals);
        e->vcount_keys = xmalloc(cap * sizeof(*e->vcount_keys));
        e->vcount_vals = xmalloc(cap * sizeof(*e->vcount_vals));
        e->vcount_cap = cap;
    }
    memset(e->vcount_vals, 0xff, e->vcount_cap * sizeof(*e->vcount_vals)); /* empty */
}

/* Adds delta (+1/-1) to h's count; returns the count after. */
static uint32_t vc_add(struct rules_engine *e, uint64_t h, int delta)
{
    size_t mask = e->vcount_cap - 1;
    size_t i = (size_t)(h ^ (h >> 29)) & mask;
    for (;;) {
        if (e->vcount_vals[i] == UINT32_MAX) {
            e->vcount_keys[i] = h;
            e->vcount_vals[i] = 0;
        }
        if (e->vcount_keys[i] == h) {
            e->vcount_vals[i] = (uint32_t)((int64_t)e->vcount_vals[i] + delta);
            return e->vcount_vals[i];
        }
        i = (i + 1) & mask;
    }
}

static bool expr_eval(const struct cnode *c, const uint32_t *refcount)
{
    switch (c->kind) {
    case CN_TRUE:
        return true;
    case CN_SEL:
        return refcount[c->sel] > 0;
    case CN_AND:
        for (size_t i = 0; i < c->n; i++) {
            if (!expr_eval(c->kids[i], refcount)) {
                return false;
            }
        }
        return true;
    case CN_OR:
        for (size_t i = 0; i < c->n; i++) {
            if (expr_eval(c->kids[i], refcount)) {
                return true;
            }
        }
        return false;
    case CN_NOT:
        return !expr_eval(c->kids[0], refcount);
    case CN_NOF: {
        uint32_t hits = 0;
        for (size_t i = 0; i < c->n; i++) {
            hits += expr_eval(c->kids[i], refcount);
        }
        return hits >= c->need;
    }
    }
    return false;
}

/* A sliding count over entries: add/remove entry, ask the current count. */
struct counter {
    struct rules_engine *e;
    const struct corr *co;
    enum rules_type type;
    uint64_t events;
    uint64_t distinct; /* values (value_count) or rules (temporal) */
    uint32_t *refcount;
};

static void ctr_init(struct counter *c, struct rules_engine *e, const struct rule *r, size_t n)
{
    c->e = e;
    c->co = &r->corr;
    c->type = r->type;
    c->events = 0;
    c->distinct = 0;
    c->refcount = xcalloc(r->corr.nrefs + 1, sizeof(*c->refcount));
    if (r->type == RULES_VALUE_COUNT) {
        vc_reset(e, n);
    }
}

static void ctr_release(struct counter *c)
{
    free(c->refcount);
}

static void ctr_add(struct counter *c, const struct centry *en, int delta)
{
    c->events = (uint64_t)((int64_t)c->events + delta);
    if (c->type == RULES_VALUE_COUNT) {
        uint32_t after = vc_add(c->e, en->vh, delta);
        if (delta > 0 && after == 1) {
            c->distinct++;
        } else if (delta < 0 && after == 0) {
            c->distinct--;
        }
    } else if (c->type == RULES_TEMPORAL) {
        uint32_t *rc = &c->refcount[en->ref];
        if (delta > 0 && (*rc)++ == 0) {
            c->distinct++;
        } else if (delta < 0 && --(*rc) == 0) {
            c->distinct--;
        }
    }
}

static uint64_t ctr_count(const struct counter *c)
{
    return c->type == RULES_EVENT_COUNT ? c->events : c->distinct;
}

static bool ctr_holds(const struct counter *c)
{
    if (c->type == RULES_TEMPORAL && c->co->expr) {
        return expr_eval(c->co->expr, c->refcount);
    }
    uint64_t n = ctr_count(c);
    return (int64_t)n >= c->co->lo && (c->co->hi == INT64_MAX || (int64_t)n <= c->co->hi);
}

/* ---- matches ---- */

/* The seqs a match of a referenced correlation carries to its parents: those of its
 * window's events (their own, or the seqs their own references carried), the first and
 * last half of max_alert_events of them, with their total. Caller frees. */
static struct subseqs *window_seqs(const struct rules_engine *e, const struct cgroup *g,
                                   const size_t *idx, size_t n)
{
    uint32_t half = (uint32_t)(e->lim.max_alert_events / 2);
    struct subseqs *s = xcalloc(1, sizeof(*s) + 2 * half * sizeof(uint64_t));
    uint64_t *buf = xmalloc(2 * half * sizeof(uint64_t));
    struct seqlist l = { .buf = buf, .half = half };

    for (size_t k = 0; k < n; k++) {
        const struct centry *en = &g->ent[idx[k]];
        if (en->sub) {
            for (uint32_t x = 0; x < en->sub->n; x++) {
                rules__seqs_add(&l, en->sub->seq[x]);
            }
            l.total += en->sub->total - en->sub->n; /* those it did not list */
        } else if (en->seq != RULES_NO_SEQ) {
            rules__seqs_add(&l, en->seq);
        }
    }
    s->n = (uint32_t)rules__seqs_out(&l, s->seq);
    s->total = l.total;
    free(buf);
    return s;
}

/* The entries of window [i, j) a match reports: all of them; for temporal, the latest of
 * each referenced rule present. Returns how many (idx has room for j - i). */
static size_t pick(const struct rule *r, const struct cgroup *g, size_t i, size_t j, size_t *idx)
{
    size_t n = 0;

    if (r->type != RULES_TEMPORAL) {
        for (size_t x = i; x < j; x++) {
            idx[n++] = x;
        }
        return n;
    }
    for (size_t k = 0; k < r->corr.nrefs; k++) {
        for (size_t x = j; x-- > i;) {
            if (g->ent[x].ref == k) {
                idx[n++] = x;
                break;
            }
        }
    }
    for (size_t a = 1; a < n; a++) { /* ascending */
        for (size_t b = a; b > 0 && idx[b - 1] > idx[b]; b--) {
            size_t t = idx[b];
            idx[b] = idx[b - 1];
            idx[b - 1] = t;
        }
    }
    return n;
}

/* A match of rule over g's entries idx[0..n) (ascending): the incident gets the ones not
 * reported before, the parents a feed. g is not changed but for the reported marks. */
static void match(struct rules_engine *e, size_t rule, struct cgroup *g, const size_t *idx,
                  size_t n)
{
    const struct rule *r = &e->rs->rules[rule];
    const struct corr *co = &r->corr;

    e->rst[rule].matches++;
    if (n == 0) {
        return;
    }
    const struct centry **win = xmalloc(n * sizeof(*win));
    const struct centry **fresh = xmalloc(n * sizeof(*fresh));
    size_t nfresh = 0;
    int64_t last = INT64_MIN;
    for (size_t k = 0; k < n; k++) {
        struct centry *en = &g->ent[idx[k]];
        win[k] = en;
        if (!en->reported) {
            en->reported = 1;
            fresh[nfresh++] = en;
        }
        last = en->ts > last ? en->ts : last;
    }
    if (r->output || e->emit_all) {
        struct imatch m = {
            .key = g->kn.key,
            .keylen = g->kn.keylen,
            .ts = last,
            .r = e->cur_r,
            .win_start = g->ent[idx[0]].ts,
            .win_end = last,
            .fresh = fresh,
            .nfresh = nfresh,
            .window = win,
            .nwindow = n,
            .drill = g->drill ? span_str(g->drill) : (struct span){ NULL, 0 },
        };
        rules__incident_match(e, rule, &m);
    }
    if (r->nparents > 0) {
        struct span gv[RULES_MAX_GROUP_BY + 1];
        if (rules__key_decode(g->kn.key, g->kn.keylen, gv, co->ngroup)) {
            struct subseqs *sub = window_seqs(e, g, idx, n);
            for (size_t p = 0; p < r->nparents; p++) {
                size_t pi = r->parents[p];
                const struct corr *pc = corr_of(e, pi);
                for (size_t k = 0; k < pc->nrefs; k++) {
                    if (pc->refs[k].rule != rule) {
                        continue;
                    }
                    struct span pg[RULES_MAX_GROUP_BY + 1];
                    for (size_t j = 0; j < pc->ngroup; j++) {
                        pg[j] = gv[pc->refs[k].gsrc[j]];
                    }
                    uint64_t vh =
                        pc->refs[k].vsrc >= 0 ? rules__value_hash(gv[pc->refs[k].vsrc]) : 0;
                    rules__corr_feed(e, pi, k, pg, vh, last, RULES_NO_SEQ, sub,
                                     g->drill ? span_str(g->drill) : (struct span){ NULL, 0 });
                }
            }
            free(sub);
        }
    }
    free(win);
    free(fresh);
}

/* ---- monotone checks (on each event) ---- */

/* A window containing the event at time t that holds: windows [ent[a].ts, ent[a].ts +
 * span] for the a whose ts lie in [t - span, t] (the first is the only one that matters
 * when t is the newest). Returns true with its entries [*from, *to). */
static bool find_counts(struct rules_engine *e, size_t rule, struct cgroup *g, int64_t t,
                        size_t *from, size_t *to)
{
    const struct rule *r = &e->rs->rules[rule];
    const struct corr *co = &r->corr;
    bool newest = g->ent[g->n - 1].ts <= t;
    size_t i = lower_ts(g, rules__sat_sub(t, co->span_ns));
    size_t j = i; /* one past the window's last entry */
    struct counter c;
    bool found = false;

    ctr_init(&c, e, r, g->n);
    for (; i < g->n && g->ent[i].ts <= t; i++) {
        int64_t end = rules__sat_add(g->ent[i].ts, co->span_ns);
        if (j < i) {
            j = i;
        }
        while (j < g->n && g->ent[j].ts <= end) {
            ctr_add(&c, &g->ent[j], +1);
            j++;
        }
        if (ctr_holds(&c)) {
            *from = i;
            *to = j;
            found = true;
            break;
        }
        if (newest) {
            break;
        }
        ctr_add(&c, &g->ent[i], -1);
    }
    ctr_release(&c);
    return found;
}

/* temporal_ordered: a chain r0 <= r1 <= ... (by time, then arrival; distinct events)
 * within span that holds the entry at p (reference k): before it, for each earlier step
 * the latest fitting event; after it, for each later step the earliest, which gives the
 * shortest such chain. Fills chain (nrefs) and returns true when it fits the span. */
static bool find_chain(const struct corr *co, const struct cgroup *g, size_t p, size_t k,
                       size_t *chain)
{
    chain[k] = p;
    for (size_t s = k; s-- > 0;) {
        size_t q = chain[s + 1];
        bool found = false;
        while (q-- > 0) {
            if (g->ent[q].ref == s && g->ent[q].eid != g->ent[chain[s + 1]].eid) {
                found = true;
                break;
            }
        }
        if (!found) {
            return false;
        }
        chain[s] = q;
    }
    for (size_t s = k + 1; s < co->nrefs; s++) {
        size_t q = chain[s - 1] + 1;
        while (q < g->n && (g->ent[q].ref != s || g->ent[q].eid == g->ent[chain[s - 1]].eid)) {
            q++;
        }
        if (q >= g->n) {
            return false;
        }
        chain[s] = q;
    }
    return g->ent[chain[co->nrefs - 1]].ts - g->ent[chain[0]].ts <= co->span_ns;
}

/* ---- bounded windows (decided at their end) ---- */

/* Closes g's open window, matching when the count is in range; the events after it open
 * the next one. Returns false when g was dropped (nothing left). */
static bool close_window(struct rules_engine *e, size_t rule, struct cgroup *g)
{
    const struct rule *r = &e->rs->rules[rule];
    const struct corr *co = &r->corr;
    int64_t end = rules__sat_add(g->start, co->span_ns);
    size_t j = 0;
    struct counter c;

    ctr_init(&c, e, r, g->n);
    while (j < g->n && g->ent[j].ts <= end) {
        ctr_add(&c, &g->ent[j], +1);
        j++;
    }
    bool holds = j > 0 && ctr_holds(&c);
    ctr_release(&c);
    if (holds) {
        size_t *idx = xmalloc((j + 1) * sizeof(*idx));
        size_t n = pick(r, g, 0, j, idx);
        match(e, rule, g, idx, n);
        free(idx);
    }
    entry_remove(g, 0, j);
    if (g->n == 0) {
        group_drop(e, rule, g);
        return false;
    }
    g->start = g->ent[0].ts;
    g->start_r = g->ent[0].r;
    set_deadline(e, co, g);
    return true;
}

/* ---- feeding ---- */

static struct subseqs *sub_copy(const struct subseqs *s)
{
    if (!s) {
        return NULL;
    }
    size_t bytes = sizeof(*s) + s->n * sizeof(uint64_t);
    struct subseqs *c = xmalloc(bytes);
    memcpy(c, s, bytes);
    return c;
}

void rules__corr_feed(struct rules_engine *e, size_t rule, size_t ref, const struct span *gvals,
                      uint64_t vh, int64_t ts, uint64_t seq, const struct subseqs *sub,
                      struct span drill)
{
    const struct rule *r = &e->rs->rules[rule];
    const struct corr *co = &r->corr;
    struct cstate *cs = &e->cs[co->index];
    struct rules_stats *st = &e->rst[rule];
    uint8_t key[RULES_MAX_GROUP_BY * (2 + RULES_MAX_KEY_VALUE) + 1];
    int64_t recv = e->cur_r;

    size_t keylen = rules__key_encode(gvals, co->ngroup, key);
    uint64_t h = rules__siphash(e->hkey, key, keylen);
    struct cgroup *g = rules__group_find(cs, h, key, keylen);
    /* a bounded window is over once an event of its group comes this far past it */
    while (g && co->bounded &&
           ts > rules__sat_add(rules__sat_add(g->start, co->span_ns), e->lim.lateness_ns)) {
        if (!close_window(e, rule, g)) {
            g = NULL;
        }
    }
    if (!g) {
        if (cs->t.n >= e->lim.max_groups_per_rule) {
            struct cgroup *victim = rules__group_at(cs, 0);
            st->skipped[RULES_SKIP_STATE_CAP] += victim->n;
            st->groups_evicted++;
            group_drop(e, rule, victim);
        }
        g = group_new(e, rule, h, key, keylen);
        g->start = ts;
        g->start_r = recv;
    }
    struct centry en = {
        .ts = ts,
        .r = recv,
        .seq = seq,
        .eid = e->eid,
        .vh = vh,
        .ref = (uint32_t)ref,
        .sub = sub_copy(sub),
    };
    size_t at = entry_insert(g, &en);
    if (!g->drill && drill.n > 0) {
        g->drill = xstrndup((const char *)drill.p, drill.n);
    }
    int64_t off = rules__sat_sub(ts, recv);
    g->lo_off = off < g->lo_off ? off : g->lo_off;
    g->hi_off = off > g->hi_off ? off : g->hi_off;
    g->last_r = recv > g->last_r ? recv : g->last_r;
    if (g->n > e->lim.max_events_per_group) {
        /* forget the oldest (temporal: the oldest of the same rule, so one noisy rule
         * cannot push the others out) */
        size_t drop = 0;
        if (r->type == RULES_TEMPORAL || r->type == RULES_TEMPORAL_ORDERED) {
            for (size_t i = 0; i < g->n; i++) {
                if (g->ent[i].ref == ref) {
                    drop = i;
                    break;
                }
            }
        }
        entry_remove(g, drop, drop + 1);
        st->skipped[RULES_SKIP_STATE_CAP]++;
        if (drop == at) {
            set_deadline(e, co, g);
            return; /* it was the one forgotten */
        }
        at -= drop < at;
    }
    if (co->bounded) {
        if (ts < g->start) {
            g->start = ts;
            g->start_r = recv;
        }
        set_deadline(e, co, g);
        return;
    }
    /* forget what no event that is not late can reach: the newest minus the timespan,
     * the lateness and how far apart the feeders' clocks are */
    int64_t spread = rules__sat_sub(g->hi_off, g->lo_off);
    int64_t keep = rules__sat_sub(
        rules__sat_sub(rules__sat_sub(g->ent[g->n - 1].ts, co->span_ns), e->lim.lateness_ns),
        spread);
    size_t old = lower_ts(g, keep);
    old = old < at ? old : at; /* never the new one: it may still complete a window */
    if (old > 0) {
        entry_remove(g, 0, old);
        at -= old;
    }
    if (r->type == RULES_TEMPORAL_ORDERED) {
        size_t *chain = xmalloc((co->nrefs + 1) * sizeof(*chain));
        if (find_chain(co, g, at, ref, chain)) {
            match(e, rule, g, chain, co->nrefs);
        }
        free(chain);
    } else {
        size_t from;
        size_t to;
        if (find_counts(e, rule, g, ts, &from, &to)) {
            size_t *idx = xmalloc((to - from + 1) * sizeof(*idx));
            size_t n = pick(r, g, from, to, idx);
            match(e, rule, g, idx, n);
            free(idx);
        }
    }
    set_deadline(e, co, g);
}

void rules__corr_expire(struct rules_engine *e)
{
    const struct ruleset *rs = e->rs;

    for (size_t ci = 0; ci < rs->ncorr; ci++) {
        size_t rule = rs->corr_rules[ci];
        const struct corr *co = corr_of(e, rule);
        struct cstate *cs = &e->cs[ci];
        while (cs->heap.n > 0 && cs->heap.v[0]->deadline < e->gate) {
            struct cgroup *g = rules__group_at(cs, 0);
            if (!co->bounded) {
                group_drop(e, rule, g);
                continue;
            }
            (void)close_window(e, rule, g);
        }
    }
}

void rules__corr_flush(struct rules_engine *e)
{
    const struct ruleset *rs = e->rs;

    for (size_t ci = 0; ci < rs->ncorr; ci++) {
        size_t rule = rs->corr_rules[ci];
        const struct corr *co = corr_of(e, rule);
        struct cstate *cs = &e->cs[ci];
        while (cs->heap.n > 0) {
            struct cgroup *g = rules__group_at(cs, 0);
            if (!co->bounded) {
                group_drop(e, rule, g);
                continue;
            }
            while (close_window(e, rule, g)) {
            }
        }
    }
}

/* ---- life cycle ---- */

void rules__corr_init(struct rules_engine *e)
{
    e->cs = xcalloc(e->rs->ncorr + 1, sizeof(*e->cs));
}

static void cstate_release(struct cstate *cs)
{
    for (size_t i = 0; i < cs->heap.n; i++) {
        rules__group_free(rules__group_at(cs, i));
    }
    rules__dheap_release(&cs->heap);
    rules__ktable_release(&cs->t);
}

void rules__corr_release(struct rules_engine *e)
{
    if (!e->cs) {
        return;
    }
    for (size_t i = 0; i < e->rs->ncorr; i++) {
        cstate_release(&e->cs[i]);
    }
    free(e->cs);
    e->cs = NULL;
}

void rules__corr_reset(struct rules_engine *e)
{
    for (size_t i = 0; i < e->rs->ncorr; i++) {
        cstate_release(&e->cs[i]);
        e->rst[e->rs->corr_rules[i]].groups = 0;
    }
}
