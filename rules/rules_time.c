/* rules/rules_time.c: the engine's clocks (rules/TIME.md).
 *
 * Three clocks, none of which one event or one source can move for the others:
 * - a record's effective event time: its ts, unless that is more than max_future past
 *   its received time (then received: the latest it can have happened), or received when
 *   it has no ts. It places the event in correlation windows;
 * - each source's clock (a source is an agent and a host: relays carry many hosts): the
 *   newest min(effective time, received) of its records that fed a correlation. A record
 *   more than lateness behind its own source's clock is late: not counted, counted. The
 *   table is bounded (max_sources); the least recently seen source is forgotten (its
 *   next record starts its clock afresh);
 * - the collector clock: the newest received time evaluated (vigild stamps received when
 *   it reads an event; the live timer also moves the clock to the wall clock when
 *   nothing is on its way to the engine). Windows close, groups expire and incidents
 *   resolve on it, never on event time, so a record dated 2099 closes nothing.
 *
 * The expiry pass runs when the collector clock enters a new RULES_EXPIRE_STEP_NS step,
 * against the step's start, so a hunt that sees only part of the stream makes the same
 * decisions as live at the records it shares (rules/TIME.md "Hunt").
 *
 * One thread; never blocks. */
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "rules/engine_int.h"

/* ---- the expiry pass ---- */

static void expire(struct rules_engine *e)
{
    if (e->now == INT64_MIN) {
        return;
    }
    int64_t step =
        e->now - (e->now % RULES_EXPIRE_STEP_NS + RULES_EXPIRE_STEP_NS) % RULES_EXPIRE_STEP_NS;
    if (step <= e->gate) {
        return;
    }
    e->gate = step;
    rules__orphans_resolve(e);
    rules__corr_expire(e);
    rules__incident_expire(e);
}

void rules__time_advance(struct rules_engine *e, int64_t now)
{
    if (now > e->now) {
        e->now = now;
    }
    e->cur_r = e->now; /* what closes now arrives now */
    e->cur = NULL;
    e->cur_drill = (struct span){ NULL, 0 };
    e->cur_drill_done = true;
    expire(e);
}

void rules__time_begin(struct rules_engine *e, const struct rec *r)
{
    int64_t recv = r->has_received ? r->received : r->has_ts ? r->ts : e->now;
    int64_t t = r->has_ts ? r->ts : recv;

    e->cur_future = false;
    if (r->has_received && t > rules__sat_add(recv, e->lim.max_future_ns)) {
        t = recv; /* it cannot have happened after vigild received it */
        e->cur_future = true;
    }
    e->cur_t = t;
    e->cur_r = recv;
    e->cur_src = NULL;
    e->cur_src_done = false;
    e->cur_late = false;
    e->cur_drill_done = false;
    if (recv > e->now) {
        e->now = recv;
    }
    expire(e);
}

/* ---- sources ---- */

static void src_unlink(struct sources *S, struct source *s)
{
    if (s->newer) {
        s->newer->older = s->older;
    } else {
        S->newest = s->older;
    }
    if (s->older) {
        s->older->newer = s->newer;
    } else {
        S->oldest = s->newer;
    }
    s->newer = s->older = NULL;
}

static void src_push_newest(struct sources *S, struct source *s)
{
    s->older = S->newest;
    s->newer = NULL;
    if (S->newest) {
        S->newest->newer = s;
    }
    S->newest = s;
    if (!S->oldest) {
        S->oldest = s;
    }
}

static void src_free(struct source *s)
{
    if (s) {
        free(s->kn.key);
        free(s);
    }
}

static struct source *src_find(const struct sources *S, uint64_t h, const uint8_t *key,
                               size_t keylen)
{
    return (struct source *)rules__ktable_find(&S->t, NULL, h, key, keylen);
}

/* A new source (the oldest forgotten at the cap). */
static struct source *src_add(struct rules_engine *e, uint64_t h, const uint8_t *key, size_t keylen)
{
    struct sources *S = &e->src;

    if (S->t.n >= e->lim.max_sources && S->oldest) {
        struct source *old = S->oldest;
        src_unlink(S, old);
        rules__ktable_remove(&S->t, &old->kn);
        src_free(old);
        e->st.sources_evicted++;
    }
    struct source *s = xcalloc(1, sizeof(*s));
    rules__knode_set(&s->kn, h, key, keylen);
    s->wm = INT64_MIN;
    s->last_r = INT64_MIN;
    rules__ktable_insert(&S->t, &s->kn);
    src_push_newest(S, s);
    return s;
}

/* The source key of r: agent, 0, host (each cut at RULES_MAX_KEY_VALUE). */
static size_t src_key(const struct rec *r, uint8_t *out)
{
    struct span a = r->str[VG_F_AGENT];
    struct span h = r->str[VG_F_HOST];
    size_t na = a.n < RULES_MAX_KEY_VALUE ? a.n : RULES_MAX_KEY_VALUE;
    size_t nh = h.n < RULES_MAX_KEY_VALUE ? h.n : RULES_MAX_KEY_VALUE;

    if (na) {
        memcpy(out, a.p, na);
    }
    out[na] = 0;
    if (nh) {
        memcpy(out + na + 1, h.p, nh);
    }
    return na + 1 + nh;
}

bool rules__time_late(struct rules_engine *e)
{
    uint8_t key[2 * RULES_MAX_KEY_VALUE + 1];

    if (e->cur_src_done) {
        return e->cur_late;
    }
    e->cur_src_done = true;
    size_t n = src_key(e->cur, key);
    uint64_t h = rules__siphash(e->hkey, key, n);
    struct source *s = src_find(&e->src, h, key, n);
    if (!s) {
        s = src_add(e, h, key, n);
    } else {
        src_unlink(&e->src, s);
        src_push_newest(&e->src, s);
    }
    e->cur_src = s;
    e->cur_late = s->wm != INT64_MIN && e->cur_t < rules__sat_sub(s->wm, e->lim.lateness_ns);
    /* a source's clock never passes when vigild received its records: a record dated a
     * little ahead (within max_future) does not make its on-time successors late */
    int64_t w = e->cur_t < e->cur_r ? e->cur_t : e->cur_r;
    if (w > s->wm) {
        s->wm = w;
    }
    s->last_r = e->cur_r;
    return e->cur_late;
}

struct span rules__cur_drill(struct rules_engine *e)
{
    if (!e->cur_drill_done) {
        e->cur_drill_done = true;
        e->cur_drill = rules__drill_of(e->cur);
    }
    return e->cur_drill;
}

void rules__source_put(struct rules_engine *e, struct span key, int64_t wm, int64_t last_r)
{
    uint64_t h = rules__siphash(e->hkey, key.p, key.n);
    struct source *s = src_find(&e->src, h, key.p, key.n);

    if (!s) {
        s = src_add(e, h, key.p, key.n);
    }
    s->wm = wm;
    s->last_r = last_r;
}

void rules__time_release(struct rules_engine *e)
{
    struct source *s = e->src.newest;
    while (s) {
        struct source *next = s->older;
        src_free(s);
        s = next;
    }
    rules__ktable_release(&e->src.t);
    memset(&e->src, 0, sizeof(e->src));
}
