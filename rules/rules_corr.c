/* rules/rules_corr.c: Sigma correlation rules (sigma-correlation-rules-specification):
 * event_count, value_count, temporal and temporal_ordered over sliding windows of event
 * time, per group of group-by values; and the checkpoint of that state.
 *
 * State per correlation rule: a hash table of groups (SipHash with a per-engine key) and
 * a min-heap of the groups by deadline. A group remembers its events (time, seq, the
 * engine's event id, the counted value's hash, which referenced rule), sorted by time.
 *
 * Conditions without an upper bound (gte, gt; temporal's "all rules") are monotone: they
 * are checked on every event against the windows containing it (the window ending at the
 * event when it is the newest; for a late event every window [e, e + timespan] starting
 * at a remembered event before it), fire as soon as they hold, and the group starts
 * afresh. A group expires when its newest event is older than timespan + lateness behind
 * the newest event time seen (the watermark). Conditions with an upper bound (lt, lte,
 * eq, ranges) can only be decided when the window is over: the window opens at a group's
 * first event, closes when the watermark passes its end + lateness, fires if the count is
 * in range, and the events after it open the next window.
 *
 * Bounds: max_groups_per_rule (at the cap the group with the nearest deadline is dropped,
 * counted), max_events_per_group (the oldest event is forgotten, counted), group-by values
 * cut at RULES_MAX_KEY_VALUE bytes. A late event (more than lateness behind the watermark)
 * is not counted (counted as late_dropped).
 *
 * Chains: a correlation firing feeds the correlations that refer to it, with its
 * group-by values, at its alert time (never earlier than watermark - lateness, so it is
 * not late for them). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "common/xalloc.h"
#include "rules/engine_int.h"

static int64_t sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    return a < INT64_MIN + b ? INT64_MIN : a - b;
}

static const struct corr *corr_of(const struct rules_engine *e, size_t rule)
{
    return &e->rs->rules[rule].corr;
}

/* ---- heap by deadline ---- */

static void heap_set(struct cstate *cs, size_t i, struct cgroup *g)
{
    cs->heap[i] = g;
    g->hidx = i;
}

static void sift_up(struct cstate *cs, size_t i)
{
    struct cgroup *g = cs->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (cs->heap[p]->deadline <= g->deadline) {
            break;
        }
        heap_set(cs, i, cs->heap[p]);
        i = p;
    }
    heap_set(cs, i, g);
}

static void sift_down(struct cstate *cs, size_t i)
{
    struct cgroup *g = cs->heap[i];
    for (;;) {
        size_t l = 2 * i + 1;
        size_t m = i;
        int64_t best = g->deadline;
        if (l < cs->nheap && cs->heap[l]->deadline < best) {
            m = l;
            best = cs->heap[l]->deadline;
        }
        if (l + 1 < cs->nheap && cs->heap[l + 1]->deadline < best) {
            m = l + 1;
        }
        if (m == i) {
            break;
        }
        heap_set(cs, i, cs->heap[m]);
        i = m;
    }
    heap_set(cs, i, g);
}

static void heap_push(struct cstate *cs, struct cgroup *g)
{
    if (cs->nheap == cs->capheap) {
        cs->capheap = cs->capheap ? 2 * cs->capheap : 16;
        cs->heap = xrealloc(cs->heap, cs->capheap * sizeof(*cs->heap));
    }
    heap_set(cs, cs->nheap++, g);
    sift_up(cs, g->hidx);
}

static void heap_remove(struct cstate *cs, struct cgroup *g)
{
    size_t i = g->hidx;
    struct cgroup *last = cs->heap[--cs->nheap];
    if (last != g) {
        heap_set(cs, i, last);
        sift_up(cs, i);
        sift_down(cs, last->hidx);
    }
}

static void heap_fix(struct cstate *cs, struct cgroup *g)
{
    sift_up(cs, g->hidx);
    sift_down(cs, g->hidx);
}

/* ---- groups ---- */

static struct cgroup *group_find(const struct cstate *cs, uint64_t h, const uint8_t *key,
                                 size_t keylen)
{
    if (!cs->tab) {
        return NULL;
    }
    for (struct cgroup *g = cs->tab[h & (cs->tabcap - 1)]; g; g = g->hnext) {
        if (g->hash == h && g->keylen == keylen && memcmp(g->key, key, keylen) == 0) {
            return g;
        }
    }
    return NULL;
}

static void table_insert(struct cstate *cs, struct cgroup *g)
{
    if (cs->ngroups + 1 > cs->tabcap) {
        size_t cap = cs->tabcap ? 2 * cs->tabcap : 16;
        struct cgroup **tab = xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < cs->tabcap; i++) {
            struct cgroup *x = cs->tab[i];
            while (x) {
                struct cgroup *next = x->hnext;
                x->hnext = tab[x->hash & (cap - 1)];
                tab[x->hash & (cap - 1)] = x;
                x = next;
            }
        }
        free(cs->tab);
        cs->tab = tab;
        cs->tabcap = cap;
    }
    struct cgroup **b = &cs->tab[g->hash & (cs->tabcap - 1)];
    g->hnext = *b;
    *b = g;
    cs->ngroups++;
}

static void table_remove(struct cstate *cs, struct cgroup *g)
{
    struct cgroup **p = &cs->tab[g->hash & (cs->tabcap - 1)];
    while (*p != g) {
        p = &(*p)->hnext;
    }
    *p = g->hnext;
    cs->ngroups--;
}

static void group_free(struct cgroup *g)
{
    if (g) {
        free(g->key);
        free(g->ent);
        free(g);
    }
}

static void group_drop(struct rules_engine *e, size_t rule, struct cgroup *g)
{
    struct cstate *cs = &e->cs[corr_of(e, rule)->index];
    table_remove(cs, g);
    heap_remove(cs, g);
    group_free(g);
    e->rst[rule].groups--;
}

static struct cgroup *group_new(struct rules_engine *e, size_t rule, uint64_t h, const uint8_t *key,
                                size_t keylen)
{
    struct cstate *cs = &e->cs[corr_of(e, rule)->index];
    struct cgroup *g = xcalloc(1, sizeof(*g));
    g->hash = h;
    g->key = xmalloc(keylen ? keylen : 1);
    memcpy(g->key, key, keylen);
    g->keylen = (uint32_t)keylen;
    table_insert(cs, g);
    heap_push(cs, g);
    e->rst[rule].groups++;
    return g;
}

/* Encodes the group-by values: per value u16 length (LE) + bytes, cut at
 * RULES_MAX_KEY_VALUE. out holds n * (2 + RULES_MAX_KEY_VALUE) bytes. */
static size_t key_encode(const struct span *v, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = v[i].n < RULES_MAX_KEY_VALUE ? v[i].n : RULES_MAX_KEY_VALUE;
        out[o++] = (uint8_t)(len & 0xff);
        out[o++] = (uint8_t)(len >> 8);
        if (len) {
            memcpy(out + o, v[i].p, len);
        }
        o += len;
    }
    return o;
}

/* Decodes exactly n values; false when the key is not n well-formed values. */
static bool key_decode(const uint8_t *key, size_t keylen, struct span *v, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (keylen - o < 2) {
            return false;
        }
        size_t len = key[o] | (size_t)key[o + 1] << 8;
        o += 2;
        if (len > RULES_MAX_KEY_VALUE || keylen - o < len) {
            return false;
        }
        v[i] = (struct span){ key + o, len };
        o += len;
    }
    return o == keylen;
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

static void entry_remove(struct cgroup *g, size_t from, size_t to)
{
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

static void set_deadline(struct rules_engine *e, const struct corr *co, struct cgroup *g)
{
    struct cstate *cs = &e->cs[co->index];
    int64_t base = co->bounded ? g->start : g->ent[g->n - 1].ts;
    g->deadline = sat_add(sat_add(base, co->span_ns), e->lim.lateness_ns);
    heap_fix(cs, g);
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

/* ---- firing ---- */

/* What a firing reports, copied out of the group before the group changes. */
struct firing {
    uint8_t *key;
    size_t keylen;
    struct centry *ents; /* the triggering events, sorted */
    size_t n;
    uint64_t count;
};

static void firing_release(struct firing *f)
{
    free(f->key);
    free(f->ents);
}

/* Copies the entries of g at idx[0..n) (ascending) into f. */
static void firing_take(struct firing *f, const struct cgroup *g, const size_t *idx, size_t n,
                        uint64_t count)
{
    f->key = xmalloc(g->keylen ? g->keylen : 1);
    memcpy(f->key, g->key, g->keylen);
    f->keylen = g->keylen;
    f->ents = xmalloc((n ? n : 1) * sizeof(*f->ents));
    for (size_t i = 0; i < n; i++) {
        f->ents[i] = g->ent[idx[i]];
    }
    f->n = n;
    f->count = count;
}

/* The entries of window [i, j] to report: the last max_alert_events of them (temporal:
 * the latest of each rule present). */
static size_t pick(const struct rules_engine *e, const struct rule *r, const struct cgroup *g,
                   size_t i, size_t j, size_t *idx)
{
    size_t n = 0;

    if (r->type == RULES_TEMPORAL) {
        for (size_t k = 0; k < r->corr.nrefs; k++) {
            for (size_t x = j + 1; x-- > i;) {
                if (g->ent[x].ref == k) {
                    idx[n++] = x;
                    break;
                }
            }
        }
        /* ascending */
        for (size_t a = 1; a < n; a++) {
            for (size_t b = a; b > 0 && idx[b - 1] > idx[b]; b--) {
                size_t t = idx[b];
                idx[b] = idx[b - 1];
                idx[b - 1] = t;
            }
        }
        return n;
    }
    size_t from = j + 1 - i > e->lim.max_alert_events ? j + 1 - e->lim.max_alert_events : i;
    for (size_t x = from; x <= j; x++) {
        idx[n++] = x;
    }
    return n;
}

static void fire(struct rules_engine *e, size_t rule, const struct firing *f)
{
    const struct rule *r = &e->rs->rules[rule];
    const struct corr *co = &r->corr;
    struct span gv[RULES_MAX_GROUP_BY + 1];
    size_t maxs = e->lim.max_alert_events;
    uint64_t *seqs = xmalloc((maxs + 1) * sizeof(*seqs));
    size_t nseqs = 0;
    uint64_t last_seq = RULES_NO_SEQ;

    if (!key_decode(f->key, f->keylen, gv, co->ngroup)) {
        free(seqs);
        return; /* cannot happen: keys are built by key_encode */
    }
    size_t from = f->n > maxs ? f->n - maxs : 0;
    for (size_t i = from; i < f->n; i++) {
        if (f->ents[i].seq != RULES_NO_SEQ) {
            seqs[nseqs++] = f->ents[i].seq;
            last_seq = f->ents[i].seq;
        }
    }
    struct rules_alert a = {
        .rule = rule,
        .rule_id = r->id     ? r->id
                   : r->name ? r->name
                             : "",
        .title = r->title,
        .level = r->level ? r->level : "",
        .severity = r->sev,
        .type = r->type,
        .ngroup = co->ngroup,
        .group_names = (const char *const *)co->group,
        .group_values = gv,
        .seqs = seqs,
        .nseqs = nseqs,
        .count = f->count,
        .ts = f->n ? f->ents[f->n - 1].ts : e->wm,
        .window_start = f->n ? f->ents[0].ts : e->wm,
        .window_end = f->n ? f->ents[f->n - 1].ts : e->wm,
    };
    if (r->output || e->emit_all) {
        rules__emit(e, &a);
    }
    int64_t feed_ts = a.ts;
    if (e->has_wm && feed_ts < sat_sub(e->wm, e->lim.lateness_ns)) {
        feed_ts = sat_sub(e->wm, e->lim.lateness_ns);
    }
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
            uint64_t vh = pc->refs[k].vsrc >= 0 ? rules__value_hash(gv[pc->refs[k].vsrc]) : 0;
            rules__corr_feed(e, pi, k, pg, vh, feed_ts, last_seq);
        }
    }
    free(seqs);
}

/* ---- monotone checks (on each event) ---- */

/* Windows [ent[i].ts, ent[i].ts + span] for the i whose ts lie in [t - span, t]: the
 * first is the only one that matters when t is the newest. */
static bool check_counts(struct rules_engine *e, size_t rule, struct cgroup *g, int64_t t,
                         struct firing *out)
{
    const struct rule *r = &e->rs->rules[rule];
    const struct corr *co = &r->corr;
    bool newest = g->ent[g->n - 1].ts <= t;
    size_t i = lower_ts(g, sat_sub(t, co->span_ns));
    size_t j = i; /* one past the window's last entry */
    struct counter c;
    bool fired = false;

    ctr_init(&c, e, r, g->n);
    for (; i < g->n && g->ent[i].ts <= t; i++) {
        int64_t end = sat_add(g->ent[i].ts, co->span_ns);
        if (j < i) {
            j = i;
        }
        while (j < g->n && g->ent[j].ts <= end) {
            ctr_add(&c, &g->ent[j], +1);
            j++;
        }
        if (ctr_holds(&c)) {
            size_t *idx = xmalloc((e->lim.max_alert_events + co->nrefs + 1) * sizeof(*idx));
            size_t n = pick(e, r, g, i, j - 1, idx);
            firing_take(out, g, idx, n, ctr_count(&c));
            free(idx);
            fired = true;
            break;
        }
        if (newest) {
            break;
        }
        ctr_add(&c, &g->ent[i], -1);
    }
    ctr_release(&c);
    return fired;
}

/* temporal_ordered: a chain r0 <= r1 <= ... (by time, then arrival; distinct events)
 * within span, starting at an r0 event whose time lies in [t - span, t]. Greedy: for each
 * step the earliest fitting event, which leaves the most room for the next. */
static bool check_ordered(struct rules_engine *e, size_t rule, struct cgroup *g, int64_t t,
                          struct firing *out)
{
    const struct corr *co = corr_of(e, rule);
    size_t *chain = xmalloc((co->nrefs + 1) * sizeof(*chain));
    bool fired = false;

    for (size_t i = lower_ts(g, sat_sub(t, co->span_ns)); i < g->n && g->ent[i].ts <= t; i++) {
        if (g->ent[i].ref != 0) {
            continue;
        }
        int64_t end = sat_add(g->ent[i].ts, co->span_ns);
        size_t prev = i;
        size_t k = 1;
        chain[0] = i;
        for (; k < co->nrefs; k++) {
            size_t j = prev + 1;
            while (j < g->n && g->ent[j].ts <= end &&
                   (g->ent[j].ref != k || g->ent[j].eid == g->ent[prev].eid)) {
                j++;
            }
            if (j >= g->n || g->ent[j].ts > end) {
                break;
            }
            chain[k] = j;
            prev = j;
        }
        if (k == co->nrefs) {
            firing_take(out, g, chain, co->nrefs, co->nrefs);
            fired = true;
            break;
        }
    }
    free(chain);
    return fired;
}

/* ---- bounded windows (decided at their end) ---- */

/* Closes g's open window; returns whether it fired (f filled). g may be freed. */
static bool close_window(struct rules_engine *e, size_t rule, struct cgroup *g, struct firing *f)
{
    const struct rule *r = &e->rs->rules[rule];
    const struct corr *co = &r->corr;
    int64_t end = sat_add(g->start, co->span_ns);
    size_t j = 0;
    struct counter c;
    bool fired = false;

    ctr_init(&c, e, r, g->n);
    while (j < g->n && g->ent[j].ts <= end) {
        ctr_add(&c, &g->ent[j], +1);
        j++;
    }
    if (j > 0 && ctr_holds(&c)) {
        size_t *idx = xmalloc((e->lim.max_alert_events + co->nrefs + 1) * sizeof(*idx));
        size_t n = pick(e, r, g, 0, j - 1, idx);
        firing_take(f, g, idx, n, ctr_count(&c));
        free(idx);
        fired = true;
    }
    ctr_release(&c);
    entry_remove(g, 0, j);
    if (g->n == 0) {
        group_drop(e, rule, g);
    } else {
        g->start = g->ent[0].ts;
        set_deadline(e, co, g);
    }
    return fired;
}

/* ---- feeding ---- */

void rules__corr_feed(struct rules_engine *e, size_t rule, size_t ref, const struct span *gvals,
                      uint64_t vh, int64_t ts, uint64_t seq)
{
    const struct rule *r = &e->rs->rules[rule];
    const struct corr *co = &r->corr;
    struct cstate *cs = &e->cs[co->index];
    struct rules_stats *st = &e->rst[rule];
    uint8_t key[RULES_MAX_GROUP_BY * (2 + RULES_MAX_KEY_VALUE) + 1];
    int64_t late = e->has_wm ? sat_sub(e->wm, e->lim.lateness_ns) : INT64_MIN;

    if (ts < late) {
        st->late_dropped++;
        return;
    }
    size_t keylen = key_encode(gvals, co->ngroup, key);
    uint64_t h = rules__siphash(e->hkey, key, keylen);
    struct cgroup *g = group_find(cs, h, key, keylen);
    if (!g) {
        if (cs->ngroups >= e->lim.max_groups_per_rule) {
            group_drop(e, rule, cs->heap[0]);
            st->groups_evicted++;
        }
        g = group_new(e, rule, h, key, keylen);
        g->start = ts;
    }
    struct centry en = { .ts = ts, .seq = seq, .eid = e->eid, .vh = vh, .ref = (uint32_t)ref };
    entry_insert(g, &en);
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
        st->events_forgotten++;
    }
    if (co->bounded) {
        if (ts < g->start) {
            g->start = ts;
        }
        set_deadline(e, co, g);
        return;
    }
    /* forget what no window around a countable event can reach */
    size_t old = lower_ts(g, sat_sub(late, co->span_ns));
    if (old > 0) {
        entry_remove(g, 0, old);
    }
    struct firing f = { 0 };
    bool fired = r->type == RULES_TEMPORAL_ORDERED ? check_ordered(e, rule, g, ts, &f)
                                                   : check_counts(e, rule, g, ts, &f);
    if (fired) {
        group_drop(e, rule, g);
        fire(e, rule, &f);
        firing_release(&f);
    } else {
        set_deadline(e, co, g);
    }
}

void rules__corr_expire(struct rules_engine *e)
{
    const struct ruleset *rs = e->rs;

    for (size_t ci = 0; ci < rs->ncorr; ci++) {
        size_t rule = rs->corr_rules[ci];
        const struct corr *co = corr_of(e, rule);
        struct cstate *cs = &e->cs[ci];
        while (cs->nheap > 0 && cs->heap[0]->deadline < e->wm) {
            struct cgroup *g = cs->heap[0];
            if (!co->bounded) {
                group_drop(e, rule, g);
                continue;
            }
            struct firing f = { 0 };
            if (close_window(e, rule, g, &f)) {
                fire(e, rule, &f);
            }
            firing_release(&f);
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
        while (cs->nheap > 0) {
            struct cgroup *g = cs->heap[0];
            if (!co->bounded) {
                group_drop(e, rule, g);
                continue;
            }
            struct firing f = { 0 };
            if (close_window(e, rule, g, &f)) {
                fire(e, rule, &f);
            }
            firing_release(&f);
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
    for (size_t i = 0; i < cs->nheap; i++) {
        group_free(cs->heap[i]);
    }
    free(cs->heap);
    free(cs->tab);
    memset(cs, 0, sizeof(*cs));
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

/* ---- checkpoints ----
 * {"format": "vigil-rules-state", "version": 1, "wm": int|nil, "eid": uint,
 *  "rules": [{"key": id|name|title, "fp": bin(32),
 *             "groups": [[key(bin), start(int), [[ts, seq|nil, eid, vh, ref], ...]], ...]}]}
 */

static const char *ckpt_key(const struct rule *r)
{
    return r->id ? r->id : r->name ? r->name : r->title;
}

int rules_engine_checkpoint(const struct rules_engine *e, struct buf *out)
{
    const struct ruleset *rs = e->rs;
    int rc = 0;

#define PUT(x)        \
 do {                 \
  if ((rc = (x)) < 0) \
   return rc;         \
 } while (0)
    PUT(mp_put_map(out, 5));
    PUT(mp_put_cstr(out, "format"));
    PUT(mp_put_cstr(out, "vigil-rules-state"));
    PUT(mp_put_cstr(out, "version"));
    PUT(mp_put_u64(out, 1));
    PUT(mp_put_cstr(out, "wm"));
    PUT(e->has_wm ? mp_put_i64(out, e->wm) : mp_put_nil(out));
    PUT(mp_put_cstr(out, "eid"));
    PUT(mp_put_u64(out, e->eid));
    PUT(mp_put_cstr(out, "rules"));
    PUT(mp_put_array(out, (uint32_t)rs->ncorr));
    for (size_t ci = 0; ci < rs->ncorr; ci++) {
        const struct rule *r = &rs->rules[rs->corr_rules[ci]];
        const struct cstate *cs = &e->cs[ci];
        PUT(mp_put_map(out, 3));
        PUT(mp_put_cstr(out, "key"));
        PUT(mp_put_cstr(out, ckpt_key(r)));
        PUT(mp_put_cstr(out, "fp"));
        PUT(mp_put_bin(out, r->corr.fp, sizeof(r->corr.fp)));
        PUT(mp_put_cstr(out, "groups"));
        PUT(mp_put_array(out, (uint32_t)cs->nheap));
        for (size_t i = 0; i < cs->nheap; i++) {
            const struct cgroup *g = cs->heap[i];
            PUT(mp_put_array(out, 3));
            PUT(mp_put_bin(out, g->key, g->keylen));
            PUT(mp_put_i64(out, g->start));
            PUT(mp_put_array(out, g->n));
            for (uint32_t k = 0; k < g->n; k++) {
                const struct centry *en = &g->ent[k];
                PUT(mp_put_array(out, 5));
                PUT(mp_put_i64(out, en->ts));
                PUT(en->seq == RULES_NO_SEQ ? mp_put_nil(out) : mp_put_u64(out, en->seq));
                PUT(mp_put_u64(out, en->eid));
                PUT(mp_put_u64(out, en->vh));
                PUT(mp_put_u64(out, en->ref));
            }
        }
    }
#undef PUT
    return 0;
}

static bool rd(struct span *in, struct mp_obj *o, enum mp_type t)
{
    return mp_read(in, o) == 1 && o->type == t;
}

static bool rd_i64(struct span *in, int64_t *v)
{
    struct span val;
    return mp_take(in, &val) == 0 && mp_get_i64(val, v);
}

static bool rd_u64(struct span *in, uint64_t *v)
{
    struct mp_obj o;
    if (mp_read(in, &o) != 1) {
        return false;
    }
    if (o.type == MP_UINT) {
        *v = o.v.u;
        return true;
    }
    return false;
}

/* Parses one rule's groups into cs (fresh); ci < 0: skip them. Returns groups or -1. */
static long restore_groups(struct rules_engine *e, long ci, struct cstate *cs, struct span *in)
{
    struct mp_obj o;
    long restored = 0;
    size_t rule = ci >= 0 ? e->rs->corr_rules[ci] : 0;
    const struct corr *co = ci >= 0 ? corr_of(e, rule) : NULL;

    if (!rd(in, &o, MP_ARRAY)) {
        return -1;
    }
    uint32_t ng = o.v.count;
    for (uint32_t gi = 0; gi < ng; gi++) {
        struct mp_obj b;
        int64_t start;
        if (!rd(in, &o, MP_ARRAY) || o.v.count != 3 || !rd(in, &b, MP_BIN) || !rd_i64(in, &start) ||
            !rd(in, &o, MP_ARRAY)) {
            return -1;
        }
        uint32_t ne = o.v.count;
        struct span gv[RULES_MAX_GROUP_BY + 1];
        bool keep = co && key_decode(b.v.s.p, b.v.s.n, gv, co->ngroup) &&
                    cs->ngroups < e->lim.max_groups_per_rule &&
                    !group_find(cs, rules__siphash(e->hkey, b.v.s.p, b.v.s.n), b.v.s.p, b.v.s.n);
        if (co && !keep && !key_decode(b.v.s.p, b.v.s.n, gv, co->ngroup)) {
            return -1; /* a key that is not this rule's shape: not our checkpoint */
        }
        struct cgroup *g = NULL;
        if (keep) {
            g = xcalloc(1, sizeof(*g));
            g->hash = rules__siphash(e->hkey, b.v.s.p, b.v.s.n);
            g->key = xmalloc(b.v.s.n ? b.v.s.n : 1);
            memcpy(g->key, b.v.s.p, b.v.s.n);
            g->keylen = (uint32_t)b.v.s.n;
            g->start = start;
        }
        for (uint32_t k = 0; k < ne; k++) {
            struct centry en;
            struct span sv;
            uint64_t ref;
            if (!rd(in, &o, MP_ARRAY) || o.v.count != 5 || !rd_i64(in, &en.ts) ||
                mp_take(in, &sv) < 0) {
                group_free(g);
                return -1;
            }
            if (mp_is_nil(sv)) {
                en.seq = RULES_NO_SEQ;
            } else {
                struct span t = sv;
                if (!rd_u64(&t, &en.seq)) {
                    group_free(g);
                    return -1;
                }
            }
            if (!rd_u64(in, &en.eid) || !rd_u64(in, &en.vh) || !rd_u64(in, &ref) ||
                (co && ref >= co->nrefs)) {
                group_free(g);
                return -1;
            }
            en.ref = (uint32_t)ref;
            if (g) {
                entry_insert(g, &en);
                if (g->n > e->lim.max_events_per_group) {
                    entry_remove(g, 0, 1);
                }
            }
        }
        if (g && g->n == 0) {
            group_free(g);
            g = NULL;
        }
        if (g) {
            if (g->start > g->ent[0].ts) {
                g->start = g->ent[0].ts;
            }
            table_insert(cs, g);
            heap_push(cs, g);
            int64_t base = co->bounded ? g->start : g->ent[g->n - 1].ts;
            g->deadline = sat_add(sat_add(base, co->span_ns), e->lim.lateness_ns);
            heap_fix(cs, g);
            restored++;
        }
    }
    return restored;
}

int rules_engine_restore(struct rules_engine *e, struct span state)
{
    const struct ruleset *rs = e->rs;
    struct span in = state;
    struct mp_obj o;
    struct cstate *ncs = xcalloc(rs->ncorr + 1, sizeof(*ncs));
    bool *seen = xcalloc(rs->ncorr + 1, sizeof(*seen));
    int64_t wm = 0;
    bool has_wm = false;
    uint64_t eid = 0;
    bool have_rules = false;
    bool fmt_ok = false;
    long total = 0;

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
            if (!rd(&in, &v, MP_STR) || !span_eq_str(v.v.s, "vigil-rules-state")) {
                goto corrupt;
            }
            fmt_ok = true;
        } else if (span_eq_str(ks, "version")) {
            uint64_t v;
            if (!rd_u64(&in, &v) || v != 1) {
                goto corrupt;
            }
        } else if (span_eq_str(ks, "wm")) {
            struct span v;
            if (mp_take(&in, &v) < 0) {
                goto corrupt;
            }
            if (!mp_is_nil(v)) {
                if (!mp_get_i64(v, &wm)) {
                    goto corrupt;
                }
                has_wm = true;
            }
        } else if (span_eq_str(ks, "eid")) {
            if (!rd_u64(&in, &eid)) {
                goto corrupt;
            }
        } else if (span_eq_str(ks, "rules")) {
            if (!rd(&in, &o, MP_ARRAY)) {
                goto corrupt;
            }
            have_rules = true;
            uint32_t nr = o.v.count;
            for (uint32_t ri = 0; ri < nr; ri++) {
                struct mp_obj m;
                struct span key = { 0 };
                struct span fp = { 0 };
                bool groups_done = false;
                if (!rd(&in, &m, MP_MAP) || m.v.count != 3) {
                    goto corrupt;
                }
                for (uint32_t f = 0; f < 3; f++) {
                    struct mp_obj fk;
                    struct mp_obj fv;
                    if (!rd(&in, &fk, MP_STR)) {
                        goto corrupt;
                    }
                    if (span_eq_str(fk.v.s, "key")) {
                        if (!rd(&in, &fv, MP_STR)) {
                            goto corrupt;
                        }
                        key = fv.v.s;
                    } else if (span_eq_str(fk.v.s, "fp")) {
                        if (!rd(&in, &fv, MP_BIN) || fv.v.s.n != 32) {
                            goto corrupt;
                        }
                        fp = fv.v.s;
                    } else if (span_eq_str(fk.v.s, "groups") && key.p && fp.p) {
                        long ci = -1;
                        for (size_t c = 0; c < rs->ncorr; c++) {
                            const struct rule *r = &rs->rules[rs->corr_rules[c]];
                            if (!seen[c] && span_eq_str(key, ckpt_key(r)) &&
                                memcmp(fp.p, r->corr.fp, 32) == 0) {
                                ci = (long)c;
                                break;
                            }
                        }
                        long n = restore_groups(e, ci, ci >= 0 ? &ncs[ci] : NULL, &in);
                        if (n < 0) {
                            goto corrupt;
                        }
                        if (ci >= 0) {
                            seen[ci] = true;
                        }
                        total += n;
                        groups_done = true;
                    } else {
                        goto corrupt;
                    }
                }
                if (!groups_done) {
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
    /* install */
    for (size_t ci = 0; ci < rs->ncorr; ci++) {
        cstate_release(&e->cs[ci]);
        e->cs[ci] = ncs[ci];
        e->rst[rs->corr_rules[ci]].groups = ncs[ci].ngroups;
    }
    free(ncs);
    free(seen);
    e->wm = wm;
    e->has_wm = has_wm;
    if (eid > e->eid) {
        e->eid = eid;
    }
    return (int)(total > INT32_MAX ? INT32_MAX : total);
corrupt:
    for (size_t ci = 0; ci < rs->ncorr; ci++) {
        cstate_release(&ncs[ci]);
    }
    free(ncs);
    free(seen);
    return VG_ECORRUPT;
}
