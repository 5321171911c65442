/* tests/unit/rules/test_incident.c: the alert life cycle (schemas/alert.md) and the time
 * model (rules/TIME.md): firing, updates throttled on event time, resolution after the
 * quiet period on the collector clock, seqs listed first and last with their total, the
 * incident cap, per-rule settings, incidents of a removed rule, and the property `vigil
 * hunt` relies on: over any window, an engine fed only the records a hunt reads gives the
 * alert records live gave for that window. */
#include <errno.h>

#include "common/mp.h"
#include "tests/unit/rules/rules_test_util.h"

#define SEC VG_NS_PER_SEC

#define FAILED                                                                  \
 "title: failed\nname: failed\nlogsource: {product: vigil}\n"                   \
 "detection:\n  sel: {outcome: failure}\n  filter: {src_ip: null}\n"            \
 "  condition: sel and not filter\nlevel: low\n"                                \
 "---\ntitle: ok\nname: ok\nlogsource: {product: vigil}\n"                      \
 "detection:\n  sel: {outcome: success}\n  filter: {src_ip: null}\n"            \
 "  condition: sel and not filter\n"                                            \
 "---\ntitle: shell\nid: shell-id\nlogsource: {product: vigil}\n"               \
 "detection:\n  sel: {process: sh}\n  condition: sel\nlevel: high\n"            \
 "---\ntitle: brute\nid: brute-id\ncorrelation:\n  type: event_count\n"         \
 "  rules: [failed]\n  group-by: [src_ip]\n  timespan: 2m\n"                    \
 "  condition: {gte: 3}\nlevel: medium\n"                                       \
 "---\ntitle: brute seq\nname: brute_seq\ncorrelation:\n  type: event_count\n"  \
 "  rules: [failed]\n  group-by: [src_ip]\n  timespan: 2m\n"                    \
 "  condition: {gte: 3}\n"                                                      \
 "---\ntitle: spray\nid: spray-id\ncorrelation:\n  type: value_count\n"         \
 "  rules: [failed]\n  group-by: [src_ip]\n  timespan: 5m\n"                    \
 "  condition: {field: user, gte: 3}\n"                                         \
 "---\ntitle: broke in\nid: broke-id\ncorrelation:\n  type: temporal_ordered\n" \
 "  rules: [brute_seq, ok]\n  group-by: [src_ip]\n  timespan: 10m\nlevel: high\n"

static size_t rule_of(const struct ruleset *rs, const char *id)
{
    long i = ruleset_find(rs, id);
    assert_true(i >= 0);
    return (size_t)i;
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(FAILED, NULL);
    struct rules_limits lim;
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    size_t brute = rule_of(rs, "brute-id");

    rules_limits_default(&lim);
    lim.resolve_after_ns = 60 * SEC;
    lim.update_every_ns = 20 * SEC;
    lim.lateness_ns = 10 * SEC;
    lim.max_alert_events = 4;
    assert_int_equal(rules_engine_new(rs, &lim, &e), 0);
    /* 21 failures five seconds apart, received as they happen */
    for (int i = 0; i <= 20; i++) {
        int64_t t = TU_T0 + i * 5 * SEC;
        tu_feed_recv(e, t, t, (uint64_t)i + 1, &al, "outcome=failure", "src_ip=10.0.0.1", NULL);
    }
    struct tu_alerts b = { 0 };
    for (size_t i = 0; i < al.n; i++) {
        if (al.rule[i] == brute) {
            b.state[b.n] = al.state[i];
            b.count[b.n] = al.count[i];
            b.ts[b.n] = al.ts[i];
            memcpy(b.incident[b.n], al.incident[i], sizeof(b.incident[0]));
            b.n++;
        }
    }
    /* firing at the third (t0+10s); updates at the first matches 20 s of event time
     * after the last record: +30, +50, +70, +90 s */
    assert_int_equal(b.n, 5);
    assert_int_equal(b.state[0], RULES_FIRING);
    assert_int_equal(b.count[0], 3);
    assert_true(b.ts[0] == TU_T0 + 10 * SEC);
    static const int64_t at[] = { 30, 50, 70, 90 };
    static const uint64_t count[] = { 7, 11, 15, 19 };
    for (size_t i = 1; i < 5; i++) {
        assert_int_equal(b.state[i], RULES_UPDATE);
        assert_true(b.ts[i] == TU_T0 + at[i - 1] * SEC);
        assert_int_equal(b.count[i], count[i - 1]);
        assert_string_equal(b.incident[i], b.incident[0]);
    }
    /* quiet: the collector clock passes the last match's arrival + resolve_after +
     * lateness (then the next expiry step) */
    size_t n = al.n;
    int64_t last = TU_T0 + 100 * SEC;
    assert_int_equal(rules_engine_advance(e, last + 70 * SEC, tu_on_alert, &al), 0);
    assert_true(rules_engine_advance(e, last + 71 * SEC, tu_on_alert, &al) >= 1);
    size_t r = n;
    while (r < al.n && al.rule[r] != brute) {
        r++;
    }
    assert_true(r < al.n);
    assert_int_equal(al.state[r], RULES_RESOLVED);
    assert_true(al.ts[r] == last + 60 * SEC);
    assert_int_equal(al.count[r], 21);
    assert_int_equal(al.seqs_total[r], 21);
    assert_int_equal(al.nseqs[r], 4); /* the first two and the last two */
    assert_int_equal(al.first_seq[r], 1);
    assert_int_equal(al.last_seq[r], 21);
    assert_true(al.first_seen[r] == TU_T0);
    assert_true(al.last_seen[r] == last);
    assert_string_equal(al.incident[r], b.incident[0]);
    /* a new burst: a new incident with the same fingerprint */
    int64_t t1 = last + 600 * SEC;
    for (int i = 0; i < 3; i++) {
        tu_feed_recv(e, t1 + i * SEC, t1 + i * SEC, 100 + (uint64_t)i, &al, "outcome=failure",
                     "src_ip=10.0.0.1", NULL);
    }
    size_t f = al.n;
    while (f-- > 0 && !(al.rule[f] == brute && al.state[f] == RULES_FIRING)) {
    }
    assert_int_equal(al.state[f], RULES_FIRING);
    assert_memory_equal(al.incident[f], b.incident[0], 32);
    assert_string_not_equal(al.incident[f], b.incident[0]);
    rules_engine_free(e);
    ruleset_free(rs);
}

static void test_incident_cap_and_groups(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(FAILED, NULL);
    struct rules_limits lim;
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    struct rules_stats st;
    size_t shell = rule_of(rs, "shell-id");

    rules_limits_default(&lim);
    lim.max_incidents_per_rule = 2;
    assert_int_equal(rules_engine_new(rs, &lim, &e), 0);
    /* a shell in pod a twice, then in b, c: three incidents, the oldest resolved early */
    tu_feed(e, TU_T0, 1, &al, "process=sh", "pod=a", NULL);
    tu_feed(e, TU_T0 + SEC, 2, &al, "process=sh", "pod=a", NULL);
    tu_feed(e, TU_T0 + 2 * SEC, 3, &al, "process=sh", "pod=b", NULL);
    assert_int_equal(tu_count(&al, RULES_FIRING), 2);
    tu_feed(e, TU_T0 + 3 * SEC, 4, &al, "process=sh", "pod=c", NULL);
    assert_int_equal(tu_count(&al, RULES_FIRING), 3);
    assert_int_equal(tu_count(&al, RULES_RESOLVED), 1);
    size_t i = 0;
    while (al.state[i] != RULES_RESOLVED) {
        i++;
    }
    assert_string_equal(al.reason[i], "evicted");
    assert_string_equal(al.group[i], "pod=a");
    assert_int_equal(al.count[i], 2);
    rules_engine_stats(e, &shell, &st);
    assert_int_equal(st.incidents_evicted, 1);
    assert_int_equal(st.open_incidents, 2);
    assert_int_equal(st.incidents, 3);
    rules_engine_free(e);
    ruleset_free(rs);
}

static void test_rule_settings(void **state)
{
    (void)state;
    struct ruleset *rs =
        tu_load("title: root\nid: root-id\nlogsource: {product: vigil}\n"
                "detection:\n  sel: {user: root}\n  condition: sel\nlevel: high\n"
                "vigil:\n  group-by: [user, src_ip]\n  resolve_after: 30s\n  update_every: 1h\n",
                NULL);
    struct rules_rule_info info;
    struct rules_engine *e;
    struct tu_alerts al = { 0 };

    ruleset_rule_info(rs, 0, &info);
    assert_true(info.resolve_after_ns == 30 * SEC);
    assert_true(info.update_every_ns == 3600 * SEC);
    assert_int_equal(info.ngroup, 2);
    assert_string_equal(info.group_by[1], "src_ip");
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    tu_feed(e, TU_T0, 1, &al, "user=root", "src_ip=1.1.1.1", "pod=a", NULL);
    tu_feed(e, TU_T0 + SEC, 2, &al, "user=root", "src_ip=1.1.1.1", "pod=b", NULL); /* same */
    tu_feed(e, TU_T0 + 2 * SEC, 3, &al, "user=root", "src_ip=2.2.2.2", NULL);
    assert_int_equal(tu_count(&al, RULES_FIRING), 2);
    assert_string_equal(al.group[0], "user=root,src_ip=1.1.1.1");
    /* resolve_after 30 s (+ lateness 2 min) */
    assert_int_equal(rules_engine_advance(e, TU_T0 + SEC + 149 * SEC, tu_on_alert, &al), 0);
    assert_int_equal(rules_engine_advance(e, TU_T0 + SEC + 151 * SEC, tu_on_alert, &al), 1);
    assert_int_equal(al.state[2], RULES_RESOLVED);
    assert_true(al.ts[2] == TU_T0 + SEC + 30 * SEC);
    rules_engine_free(e);
    ruleset_free(rs);

    /* unknown keys under vigil: are refused, never ignored */
    char why[600];
    assert_int_equal(tu_fail("title: r\nlogsource: {product: vigil}\n"
                             "detection:\n  sel: {user: root}\n  condition: sel\n"
                             "vigil:\n  resolve_afterr: 1h\n",
                             why, sizeof(why)),
                     RULES_INVALID);
    assert_non_null(strstr(why, "test.yml:7:3: unknown key 'vigil.resolve_afterr'"));
    assert_int_equal(tu_fail("title: r\nlogsource: {product: vigil}\n"
                             "detection:\n  sel: {user: root}\n  condition: sel\n"
                             "vigil: { resolve_after: soon }\n",
                             why, sizeof(why)),
                     RULES_INVALID);
    assert_non_null(strstr(why, "vigil.resolve_after must be a duration"));
    assert_int_equal(tu_fail("title: r\nname: r\nlogsource: {product: vigil}\n"
                             "detection:\n  sel: {user: root}\n  condition: sel\n---\n"
                             "title: c\ncorrelation:\n  type: event_count\n  rules: [r]\n"
                             "  timespan: 5m\n  condition: {gte: 2}\nvigil: {group-by: [user]}\n",
                             why, sizeof(why)),
                     RULES_INVALID);
    assert_non_null(strstr(why, "vigil.group-by is for detections"));
}

static void test_removed_rule_resolves(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(FAILED, NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    struct buf ck;

    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    tu_feed(e, TU_T0, 1, &al, "process=sh", "pod=a", NULL);
    assert_int_equal(tu_count(&al, RULES_FIRING), 1);
    char opened[56];
    memcpy(opened, al.incident[0], sizeof(opened));
    buf_init(&ck, 1 << 20);
    assert_int_equal(rules_engine_checkpoint(e, &ck), 0);
    rules_engine_free(e);
    /* the reload lost the shell rule: its open incident resolves at the next call */
    struct ruleset *rs2 = tu_load("title: other\nlogsource: {product: vigil}\n"
                                  "detection:\n  sel: {process: zsh}\n  condition: sel\n",
                                  NULL);
    assert_int_equal(rules_engine_new(rs2, NULL, &e), 0);
    assert_int_equal(rules_engine_restore(e, buf_span(&ck)), 0);
    memset(&al, 0, sizeof(al));
    assert_int_equal(rules_engine_advance(e, TU_T0 + SEC, tu_on_alert, &al), 1);
    assert_int_equal(al.state[0], RULES_RESOLVED);
    assert_int_equal(al.rule[0], RULES_NO_RULE);
    assert_string_equal(al.reason[0], "rule removed");
    assert_string_equal(al.group[0], "pod=a");
    assert_string_equal(al.incident[0], opened); /* the receivers' incident closes */
    rules_engine_free(e);
    ruleset_free(rs2);
    buf_release(&ck);
    ruleset_free(rs);
}

/* ---- hunt equals live, as a property of the engine ---- */

struct srec {
    int64_t ts, r;
    uint64_t seq;
    char agent[16], host[16];
    char kv[3][48];
};

/* A stream: received times rising, sources that are on time, a little out of order, ten
 * minutes behind, three hours behind (a backlog) and one that sometimes dates events an
 * hour or years ahead; failures and logins from a few addresses (brute forces, sprays,
 * logins after them) and shells in a few pods. */
static struct srec *gen_stream(unsigned seed, size_t n)
{
    struct srec *v = calloc(n, sizeof(*v));
    uint64_t x = seed * 2654435761u + 1;
    int64_t r = TU_T0 + 100000 * SEC;

#define RND(k) ((x = x * 6364136223846793005ULL + 1442695040888963407ULL), (x >> 33) % (k))
    for (size_t i = 0; i < n; i++) {
        struct srec *s = &v[i];
        r += (int64_t)RND(3000) * (SEC / 1000); /* 0 .. 3 s */
        int src = (int)RND(6);
        s->r = r;
        s->seq = i + 1;
        switch (src) {
        case 0:
        case 1:
            s->ts = r - (int64_t)RND(2000) * (SEC / 1000);
            break;
        case 2:
            s->ts = r - (int64_t)RND(90) * SEC; /* out of order within lateness */
            break;
        case 3:
            s->ts = r - 600 * SEC;
            break;
        case 4:
            s->ts = r - 3 * 3600 * SEC + (int64_t)i * (SEC / 4); /* a backlog catching up */
            break;
        default:
            s->ts = RND(10) == 0 ? r + 3600 * SEC : RND(10) == 0 ? r + 3 * 365 * 86400 * SEC : r;
            break;
        }
        snprintf(s->agent, sizeof(s->agent), "agent=a%d", src % 3);
        snprintf(s->host, sizeof(s->host), "host=h%d", src);
        unsigned kind = (unsigned)RND(10);
        unsigned ip = (unsigned)RND(4);
        if (kind < 6) {
            snprintf(s->kv[0], sizeof(s->kv[0]), "outcome=failure");
            snprintf(s->kv[1], sizeof(s->kv[1]), "src_ip=10.0.0.%u", ip);
            snprintf(s->kv[2], sizeof(s->kv[2]), "user=u%u", (unsigned)RND(5));
        } else if (kind < 8) {
            snprintf(s->kv[0], sizeof(s->kv[0]), "outcome=success");
            snprintf(s->kv[1], sizeof(s->kv[1]), "src_ip=10.0.0.%u", ip);
            snprintf(s->kv[2], sizeof(s->kv[2]), "user=u%u", (unsigned)RND(5));
        } else {
            snprintf(s->kv[0], sizeof(s->kv[0]), "process=sh");
            snprintf(s->kv[1], sizeof(s->kv[1]), "pod=p%u", ip);
            snprintf(s->kv[2], sizeof(s->kv[2]), "user=root");
        }
    }
#undef RND
    return v;
}

struct rec_key {
    size_t rule;
    int64_t opened;
    enum rules_alert_state state;
    uint64_t count, total, first_seq, last_seq;
    size_t nseqs;
    int64_t ts, first_seen, last_seen;
    char incident[56];
};

struct keys {
    struct rec_key *v;
    size_t n, cap;
    int64_t since, until;
    int64_t opened_min; /* only updates/resolutions of incidents opened from here */
};

static int collect_key(const struct rules_alert *a, void *arg)
{
    struct keys *k = arg;
    if (a->ts < k->since || a->ts >= k->until ||
        (a->state != RULES_FIRING && a->opened < k->opened_min)) {
        return 0;
    }
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 64;
        k->v = realloc(k->v, k->cap * sizeof(*k->v));
    }
    struct rec_key *x = &k->v[k->n++];
    memset(x, 0, sizeof(*x));
    x->rule = a->rule;
    x->opened = a->opened;
    x->state = a->state;
    x->count = a->count;
    x->total = a->seqs_total;
    x->nseqs = a->nseqs;
    x->first_seq = a->nseqs ? a->seqs[0] : 0;
    x->last_seq = a->nseqs ? a->seqs[a->nseqs - 1] : 0;
    x->ts = a->ts;
    x->first_seen = a->first_seen;
    x->last_seen = a->last_seen;
    snprintf(x->incident, sizeof(x->incident), "%s", a->incident);
    return 0;
}

static int cmp_key(const void *pa, const void *pb)
{
    const struct rec_key *a = pa;
    const struct rec_key *b = pb;
    int c = strcmp(a->incident, b->incident);
    if (c) {
        return c;
    }
    if (a->state != b->state) {
        return a->state < b->state ? -1 : 1;
    }
    return a->ts < b->ts ? -1 : a->ts > b->ts;
}

static void feed_srec(struct rules_engine *e, const struct srec *s, struct keys *k)
{
    struct tu_rec t;

    tu_rec_init(&t, "{}");
    t.r.ts = s->ts;
    t.r.has_ts = true;
    t.r.received = s->r;
    t.r.has_received = true;
    t.r.seq = s->seq;
    t.r.has_seq = true;
    tu_set(&t, "agent", s->agent + 6);
    tu_set(&t, "host", s->host + 5);
    for (int i = 0; i < 3; i++) {
        const char *eq = strchr(s->kv[i], '=');
        char name[32];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - s->kv[i]), s->kv[i]);
        tu_set(&t, name, eq + 1);
    }
    rules_engine_eval(e, &t.r, collect_key, k);
    tu_rec_release(&t);
}

/* The records of window [since, until) hunt must give: those dated in it, but the
 * updates and resolutions of incidents opened before it (rules/TIME.md "Hunt"). */
static void window_of(const struct keys *all, int64_t since, int64_t until, struct keys *out)
{
    memset(out, 0, sizeof(*out));
    out->since = since;
    out->until = until;
    out->opened_min = since;
    for (size_t i = 0; i < all->n; i++) {
        const struct rec_key *x = &all->v[i];
        if (x->ts >= since && x->ts < until && (x->state == RULES_FIRING || x->opened >= since)) {
            if (out->n == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 64;
                out->v = realloc(out->v, out->cap * sizeof(*out->v));
            }
            out->v[out->n++] = *x;
        }
    }
}

static void test_hunt_equals_live_for_any_window(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(FAILED, NULL);
    struct rules_limits lim;
    size_t n = 4000;
    size_t compared = 0;

    rules_limits_default(&lim);
    lim.resolve_after_ns = 120 * SEC; /* short: many incidents open and resolve */
    lim.update_every_ns = 30 * SEC;
    for (unsigned seed = 1; seed <= 3; seed++) {
        struct srec *v = gen_stream(seed, n);
        int64_t end = v[n - 1].r;
        struct rules_engine *e;
        struct keys all = { .since = INT64_MIN, .until = INT64_MAX, .opened_min = INT64_MIN };

        /* live: everything, in order, then the clock at the end */
        assert_int_equal(rules_engine_new(rs, &lim, &e), 0);
        int64_t horizon = rules_engine_horizon(e);
        for (size_t i = 0; i < n; i++) {
            feed_srec(e, &v[i], &all);
        }
        rules_engine_advance(e, end, collect_key, &all);
        rules_engine_free(e);
        assert_true(all.n > 50);
        uint64_t x = seed;
        for (int w = 0; w < 12; w++) {
            int64_t lo = v[0].r - 4 * 3600 * SEC;
            int64_t span = end - lo;
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int64_t since = lo + (int64_t)((x >> 20) % (uint64_t)(span / SEC)) * SEC;
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int64_t until = since + 60 * SEC + (int64_t)((x >> 20) % 7200) * SEC;
            struct keys want;
            window_of(&all, since, until, &want);
            struct keys got = { .since = since, .until = until, .opened_min = since };
            /* hunt: what it evaluates of the store (query/hunt.c): ts within the
             * horizon of the window, and after it the events dated past their receipt by
             * more than max_future that were received before its end (live evaluated
             * them at their receipt) */
            assert_int_equal(rules_engine_new(rs, &lim, &e), 0);
            for (size_t i = 0; i < n; i++) {
                const struct srec *s = &v[i];
                bool future = s->ts > s->r + lim.max_future_ns && s->r < until + horizon;
                if (s->ts >= since - horizon && (s->ts < until + horizon || future)) {
                    feed_srec(e, s, &got);
                }
            }
            rules_engine_advance(e, end, collect_key, &got);
            rules_engine_free(e);
            if (want.n) {
                qsort(want.v, want.n, sizeof(*want.v), cmp_key);
            }
            if (got.n) {
                qsort(got.v, got.n, sizeof(*got.v), cmp_key);
            }
            if (got.n != want.n) {
                for (size_t i = 0; i < want.n || i < got.n; i++) {
                    const struct rec_key *a = i < want.n ? &want.v[i] : NULL;
                    const struct rec_key *b = i < got.n ? &got.v[i] : NULL;
                    fprintf(stderr,
                            "%3zu live %.12s %d ts %lld c %llu | hunt %.12s %d ts %lld c %llu\n", i,
                            a ? a->incident + 33 : "-", a ? (int)a->state : -1,
                            a ? (long long)((a->ts - since) / SEC) : 0LL,
                            a ? (unsigned long long)a->count : 0ULL, b ? b->incident + 33 : "-",
                            b ? (int)b->state : -1, b ? (long long)((b->ts - since) / SEC) : 0LL,
                            b ? (unsigned long long)b->count : 0ULL);
                }
                fail_msg("seed %u window %d: hunt %zu records, live %zu", seed, w, got.n, want.n);
            }
            for (size_t i = 0; i < want.n; i++) {
                if (memcmp(&got.v[i], &want.v[i], sizeof(got.v[i])) != 0) {
                    const struct rec_key *a = &want.v[i];
                    const struct rec_key *b = &got.v[i];
                    fprintf(stderr,
                            "rule %zu/%zu count %llu/%llu total %llu/%llu nseqs %zu/%zu first "
                            "%llu/%llu "
                            "last %llu/%llu ts %lld/%lld fs %lld/%lld ls %lld/%lld opened %lld "
                            "since %lld h %lld\n",
                            a->rule, b->rule, (unsigned long long)a->count,
                            (unsigned long long)b->count, (unsigned long long)a->total,
                            (unsigned long long)b->total, a->nseqs, b->nseqs,
                            (unsigned long long)a->first_seq, (unsigned long long)b->first_seq,
                            (unsigned long long)a->last_seq, (unsigned long long)b->last_seq,
                            (long long)a->ts, (long long)b->ts, (long long)a->first_seen,
                            (long long)b->first_seen, (long long)a->last_seen,
                            (long long)b->last_seen, (long long)a->opened, (long long)since,
                            (long long)horizon);
                    fail_msg("seed %u window %d: record %zu differs (%s %d vs %s %d)", seed, w, i,
                             got.v[i].incident, got.v[i].state, want.v[i].incident,
                             want.v[i].state);
                }
            }
            compared += want.n;
            free(want.v);
            free(got.v);
        }
        free(all.v);
        free(v);
    }
    assert_true(compared > 100); /* the windows held records to compare */
    ruleset_free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_incident_cap_and_groups),
        cmocka_unit_test(test_rule_settings),
        cmocka_unit_test(test_removed_rule_resolves),
        cmocka_unit_test(test_hunt_equals_live_for_any_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
