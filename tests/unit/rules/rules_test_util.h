/* tests/unit/rules/rules_test_util.h: helpers shared by the rules unit tests: load rules
 * from YAML text, build records from JSON plus normalized fields, collect alerts. */
#ifndef VG_TESTS_RULES_TEST_UTIL_H
#define VG_TESTS_RULES_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/time.h"
#include "rules/engine_int.h"
#include "rules/rules.h"

/* Loads YAML text; asserts the call succeeds. The report is kept in *rep when given. */
static inline struct ruleset *tu_load(const char *yaml, struct rules_report *rep_out)
{
    struct rules_report rep;
    struct ruleset *rs = NULL;
    struct errbuf eb;

    rules_report_init(&rep);
    errbuf_clear(&eb);
    int rc = rules_load_mem("test.yml", yaml, strlen(yaml), NULL, &rs, &rep, &eb);
    if (rc != 0) {
        fprintf(stderr, "load: %s\n", errbuf_msg(&eb));
    }
    assert_int_equal(rc, 0);
    assert_non_null(rs);
    if (rep_out) {
        *rep_out = rep;
    } else {
        for (size_t i = 0; i < rep.n; i++) {
            if (rep.items[i].reason) {
                fprintf(stderr, "unexpected: %s\n", rep.items[i].reason);
            }
        }
        assert_int_equal(rep.unsupported + rep.invalid, 0);
        rules_report_release(&rep);
    }
    return rs;
}

/* Loads text holding a document that does not load; returns the first such status and
 * copies its reason into why (RULES_LOADED and "" when everything loaded). */
static inline enum rules_status tu_fail(const char *yaml, char *why, size_t cap)
{
    struct rules_report rep;
    struct ruleset *rs = tu_load(yaml, &rep);
    enum rules_status st = RULES_LOADED;

    why[0] = 0;
    for (size_t i = 0; i < rep.n; i++) {
        if (rep.items[i].status != RULES_LOADED) {
            st = rep.items[i].status;
            snprintf(why, cap, "%s", rep.items[i].reason ? rep.items[i].reason : "");
            break;
        }
    }
    assert_int_equal(ruleset_count(rs), rep.loaded);
    ruleset_free(rs);
    rules_report_release(&rep);
    return st;
}

/* A record under construction: raw from JSON, normalized fields set by name. */
struct tu_rec {
    struct rec r;
    struct buf raw;
    char *strs[VG_F_COUNT];
};

static inline void tu_rec_init(struct tu_rec *t, const char *json)
{
    struct errbuf eb;

    memset(t, 0, sizeof(*t));
    rec_init(&t->r);
    buf_init(&t->raw, 1 << 20);
    if (json) {
        errbuf_clear(&eb);
        assert_int_equal(json_to_mp(span_str(json), &t->raw, NULL, &eb), 0);
        t->r.raw = buf_span(&t->raw);
    }
}

static inline void tu_set(struct tu_rec *t, const char *field, const char *value)
{
    int f = vg_field_lookup(span_str(field));
    assert_true(f >= 0);
    if (f == VG_F_TS) {
        assert_int_equal(vg_time_parse_rfc3339(span_str(value), &t->r.ts), 0);
        t->r.has_ts = true;
        return;
    }
    free(t->strs[f]);
    t->strs[f] = strdup(value);
    rec_set(&t->r, (enum vg_field)f, span_str(t->strs[f]));
}

static inline void tu_rec_release(struct tu_rec *t)
{
    buf_release(&t->raw);
    for (int i = 0; i < VG_F_COUNT; i++) {
        free(t->strs[i]);
    }
}

/* Does rule 0 of rs match json (raw) with fields "name=value" (NULL-terminated)? */
static inline bool tu_match(const struct ruleset *rs, const char *json, ...)
{
    struct tu_rec t;
    struct rules_engine *e;
    va_list ap;
    const char *kv;

    tu_rec_init(&t, json);
    va_start(ap, json);
    while ((kv = va_arg(ap, const char *))) {
        const char *eq = strchr(kv, '=');
        char name[64];
        assert_non_null(eq);
        snprintf(name, sizeof(name), "%.*s", (int)(eq - kv), kv);
        tu_set(&t, name, eq + 1);
    }
    va_end(ap);
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    bool m = rules__detect(e, 0, &t.r, true);
    rules_engine_free(e);
    tu_rec_release(&t);
    return m;
}

/* Alert records collected from an engine (every state: firing, update, resolved). */
#define TU_MAX_ALERTS 256
struct tu_alerts {
    size_t n;
    size_t rule[TU_MAX_ALERTS];
    enum rules_alert_state state[TU_MAX_ALERTS];
    uint64_t count[TU_MAX_ALERTS];
    int64_t ts[TU_MAX_ALERTS];
    char group[TU_MAX_ALERTS][128]; /* "k=v,k=v" */
    size_t nseqs[TU_MAX_ALERTS];
    uint64_t first_seq[TU_MAX_ALERTS];
    uint64_t last_seq[TU_MAX_ALERTS];
    uint64_t seqs_total[TU_MAX_ALERTS];
    int64_t first_seen[TU_MAX_ALERTS];
    int64_t last_seen[TU_MAX_ALERTS];
    char incident[TU_MAX_ALERTS][56];
    char reason[TU_MAX_ALERTS][32];
};

static inline int tu_on_alert(const struct rules_alert *a, void *arg)
{
    struct tu_alerts *c = arg;
    if (c->n == TU_MAX_ALERTS) {
        return 0;
    }
    size_t i = c->n++;
    c->rule[i] = a->rule;
    c->state[i] = a->state;
    c->count[i] = a->count;
    c->ts[i] = a->ts;
    c->nseqs[i] = a->nseqs;
    c->first_seq[i] = a->nseqs ? a->seqs[0] : 0;
    c->last_seq[i] = a->nseqs ? a->seqs[a->nseqs - 1] : 0;
    c->seqs_total[i] = a->seqs_total;
    c->first_seen[i] = a->first_seen;
    c->last_seen[i] = a->last_seen;
    snprintf(c->incident[i], sizeof(c->incident[i]), "%s", a->incident);
    snprintf(c->reason[i], sizeof(c->reason[i]), "%s", a->reason ? a->reason : "");
    size_t o = 0;
    c->group[i][0] = 0;
    for (size_t g = 0; g < a->ngroup && o < 120; g++) {
        o +=
            (size_t)snprintf(c->group[i] + o, 128 - o, "%s%s=%.*s", g ? "," : "", a->group_names[g],
                             (int)a->group_values[g].n, (const char *)a->group_values[g].p);
    }
    return 0;
}

#define TU_T0  (1714521600LL * VG_NS_PER_SEC) /* 2024-05-01T00:00:00Z */
#define TU_MIN (60LL * VG_NS_PER_SEC)

/* How many of the collected records are in state st. */
static inline size_t tu_count(const struct tu_alerts *c, enum rules_alert_state st)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        n += c->state[i] == st;
    }
    return n;
}

static inline int tu_feed_va(struct rules_engine *e, int64_t ts, int64_t received, uint64_t seq,
                             struct tu_alerts *out, va_list ap)
{
    struct tu_rec t;
    const char *kv;

    tu_rec_init(&t, "{}");
    t.r.ts = ts;
    t.r.has_ts = true;
    t.r.seq = seq;
    t.r.has_seq = true;
    if (received != INT64_MIN) {
        t.r.received = received;
        t.r.has_received = true;
    }
    while ((kv = va_arg(ap, const char *))) {
        const char *eq = strchr(kv, '=');
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - kv), kv);
        tu_set(&t, name, eq + 1);
    }
    int rc = rules_engine_eval(e, &t.r, tu_on_alert, out);
    tu_rec_release(&t);
    return rc;
}

/* Feeds one record made of "field=value" pairs at event time ts (ns) and seq, without a
 * received time (the engine takes it as on time). Returns the records emitted. */
static inline int tu_feed(struct rules_engine *e, int64_t ts, uint64_t seq, struct tu_alerts *out,
                          ...)
{
    va_list ap;
    va_start(ap, out);
    int rc = tu_feed_va(e, ts, INT64_MIN, seq, out, ap);
    va_end(ap);
    return rc;
}

/* The same with a received time (the collector clock; rules/TIME.md). */
static inline int tu_feed_recv(struct rules_engine *e, int64_t ts, int64_t received, uint64_t seq,
                               struct tu_alerts *out, ...)
{
    va_list ap;
    va_start(ap, out);
    int rc = tu_feed_va(e, ts, received, seq, out, ap);
    va_end(ap);
    return rc;
}

#endif
