/* tests/unit/rules/test_corr.c: Sigma correlation rules: event_count, value_count,
 * temporal, temporal_ordered; sliding windows and their expiry, bounded conditions
 * decided at the window's end, group and event caps, late events, chains, generate,
 * aliases, checkpoint/restore mid-window, alerts as records. */
#include <errno.h>

#include "common/mp.h"
#include "tests/unit/rules/rules_test_util.h"

#define FAILED                                                \
 "title: failed\nname: failed\nlogsource: {product: vigil}\n" \
 "detection:\n  sel: {outcome: failure}\n  condition: sel\nlevel: low\n"

static const char *brute_rules(const char *cond, const char *extra)
{
    static char y[2048];
    snprintf(y, sizeof(y),
             FAILED "---\ntitle: brute\nid: brute-id\ncorrelation:\n  type: event_count\n"
                    "  rules: [failed]\n  group-by: [src_ip]\n  timespan: 5m\n"
                    "  condition: {%s}\n%slevel: high\n",
             cond, extra ? extra : "");
    return y;
}

#define FAIL_FROM(ip) "outcome=failure", "src_ip=" ip

static void test_event_count_sliding(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(brute_rules("gte: 3", NULL), NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };

    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    assert_int_equal(tu_feed(e, TU_T0, 1, &al, FAIL_FROM("10.0.0.5"), NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + 4 * TU_MIN, 2, &al, FAIL_FROM("10.0.0.5"), NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + 5 * TU_MIN, 3, &al, FAIL_FROM("10.0.0.6"), NULL), 0);
    /* t0 has left the window [1m, 6m]: two events, no alert */
    assert_int_equal(tu_feed(e, TU_T0 + 6 * TU_MIN, 4, &al, FAIL_FROM("10.0.0.5"), NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + 8 * TU_MIN, 5, &al, FAIL_FROM("10.0.0.5"), NULL), 1);
    assert_int_equal(al.n, 1);
    assert_int_equal(al.rule[0], 1);
    assert_int_equal(al.count[0], 3);
    assert_string_equal(al.group[0], "src_ip=10.0.0.5");
    assert_int_equal(al.nseqs[0], 3);
    assert_int_equal(al.first_seq[0], 2);
    assert_true(al.ts[0] == TU_T0 + 8 * TU_MIN);
    /* the group starts afresh */
    assert_int_equal(tu_feed(e, TU_T0 + 9 * TU_MIN, 6, &al, FAIL_FROM("10.0.0.5"), NULL), 0);
    /* records the base rule does not take are not counted */
    assert_int_equal(
        tu_feed(e, TU_T0 + 9 * TU_MIN, 7, &al, "outcome=success", "src_ip=10.0.0.5", NULL), 0);
    /* nor those without the group-by field */
    assert_int_equal(tu_feed(e, TU_T0 + 9 * TU_MIN, 8, &al, "outcome=failure", NULL), 0);
    struct rules_stats st;
    rules_engine_stats(e, NULL, &st);
    assert_int_equal(st.events, 8);
    assert_int_equal(st.alerts, 1);
    assert_int_equal(st.groups, 2); /* .5 (one event since) and .6 */
    /* expiry: event time moves on, the groups go */
    assert_int_equal(rules_engine_advance(e, TU_T0 + 60 * TU_MIN, tu_on_alert, &al), 0);
    rules_engine_stats(e, NULL, &st);
    assert_int_equal(st.groups, 0);
    rules_engine_free(e);
    ruleset_free(rs);
}

static void test_value_count(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(FAILED "---\ntitle: spray\ncorrelation:\n  type: value_count\n"
                                        "  rules: [failed]\n  group-by: [src_ip]\n"
                                        "  timespan: 10m\n  condition: {field: user, gte: 3}\n",
                                 NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    const char *users[] = { "root", "root", "admin", "ROOT", "root" };
    for (int i = 0; i < 5; i++) {
        char u[40];
        snprintf(u, sizeof(u), "user=%s", users[i]);
        assert_int_equal(
            tu_feed(e, TU_T0 + i * TU_MIN, (uint64_t)i + 1, &al, FAIL_FROM("1.2.3.4"), u, NULL),
            i == 3 ? 1 : 0);
    }
    assert_int_equal(al.n, 1);
    assert_int_equal(al.count[0], 3); /* root, admin, ROOT: values are compared exactly */
    /* events lacking the counted field do not count */
    assert_int_equal(tu_feed(e, TU_T0 + 6 * TU_MIN, 9, &al, FAIL_FROM("1.2.3.4"), NULL), 0);
    rules_engine_free(e);
    ruleset_free(rs);
}

#define TWO_RULES                                                 \
 "title: login\nname: login\nlogsource: {product: vigil}\n"       \
 "detection:\n  sel: {action: login}\n  condition: sel\n---\n"    \
 "title: escalate\nname: escalate\nlogsource: {product: vigil}\n" \
 "detection:\n  sel: {action: sudo}\n  condition: sel\n"

static void test_temporal(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(TWO_RULES "---\ntitle: both\ncorrelation:\n  type: temporal\n"
                                           "  rules: [login, escalate]\n  group-by: [user]\n"
                                           "  timespan: 5m\n",
                                 NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    /* any order */
    assert_int_equal(tu_feed(e, TU_T0, 1, &al, "action=sudo", "user=bob", NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + TU_MIN, 2, &al, "action=login", "user=eve", NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + 2 * TU_MIN, 3, &al, "action=login", "user=bob", NULL), 1);
    assert_int_equal(al.count[0], 2);
    assert_string_equal(al.group[0], "user=bob");
    /* too far apart */
    assert_int_equal(tu_feed(e, TU_T0 + 10 * TU_MIN, 4, &al, "action=sudo", "user=eve", NULL), 0);
    rules_engine_free(e);
    ruleset_free(rs);

    /* a condition over the rules (spec draft: "recon_cmd_a AND recon_cmd_b") */
    rs = tu_load(TWO_RULES "---\ntitle: either\ncorrelation:\n  type: temporal\n"
                           "  rules: [login, escalate]\n  group-by: [user]\n  timespan: 5m\n"
                           "  condition: login or escalate\n",
                 NULL);
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    memset(&al, 0, sizeof(al));
    assert_int_equal(tu_feed(e, TU_T0, 1, &al, "action=sudo", "user=bob", NULL), 1);
    rules_engine_free(e);
    ruleset_free(rs);
}

static void test_temporal_ordered(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(TWO_RULES "---\ntitle: ordered\ncorrelation:\n"
                                           "  type: temporal_ordered\n"
                                           "  rules: [login, escalate]\n  group-by: [user]\n"
                                           "  timespan: 5m\n",
                                 NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    /* wrong order: escalate then login */
    assert_int_equal(tu_feed(e, TU_T0, 1, &al, "action=sudo", "user=bob", NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + TU_MIN, 2, &al, "action=login", "user=bob", NULL), 0);
    /* now escalate follows the login */
    assert_int_equal(tu_feed(e, TU_T0 + 2 * TU_MIN, 3, &al, "action=sudo", "user=bob", NULL), 1);
    assert_int_equal(al.nseqs[0], 2);
    assert_int_equal(al.first_seq[0], 2);
    /* in order but too far apart */
    assert_int_equal(tu_feed(e, TU_T0 + 3 * TU_MIN, 4, &al, "action=login", "user=amy", NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + 9 * TU_MIN, 5, &al, "action=sudo", "user=amy", NULL), 0);
    /* out of order arrival within lateness: the login (earlier event time) arrives after */
    assert_int_equal(tu_feed(e, TU_T0 + 10 * TU_MIN, 6, &al, "action=sudo", "user=joe", NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + 9 * TU_MIN, 7, &al, "action=login", "user=joe", NULL), 1);
    rules_engine_free(e);
    ruleset_free(rs);

    /* partial conditions are not ordered Sigma */
    char why[600];
    assert_int_equal(tu_fail(TWO_RULES "---\ntitle: o\ncorrelation:\n  type: temporal_ordered\n"
                                       "  rules: [login, escalate]\n  group-by: [user]\n"
                                       "  timespan: 5m\n  condition: {gte: 1}\n",
                             why, sizeof(why)),
                     RULES_UNSUPPORTED);
}

static void test_bounded_conditions(void **state)
{
    (void)state;
    struct rules_engine *e;
    struct tu_alerts al = { 0 };

    /* lt: decided when the window (opened by the first event) is over */
    struct ruleset *rs = tu_load(brute_rules("lt: 3", NULL), NULL);
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    assert_int_equal(tu_feed(e, TU_T0, 1, &al, FAIL_FROM("a"), NULL), 0);
    assert_int_equal(tu_feed(e, TU_T0 + TU_MIN, 2, &al, FAIL_FROM("a"), NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            tu_feed(e, TU_T0 + i * TU_MIN, 10 + (uint64_t)i, &al, FAIL_FROM("b"), NULL), 0);
    }
    /* the window ends at 5m; lateness (2m) later it closes */
    assert_int_equal(rules_engine_advance(e, TU_T0 + 6 * TU_MIN, tu_on_alert, &al), 0);
    assert_int_equal(rules_engine_advance(e, TU_T0 + 8 * TU_MIN, tu_on_alert, &al), 1);
    assert_int_equal(al.n, 1);
    assert_string_equal(al.group[0], "src_ip=a");
    assert_int_equal(al.count[0], 2);
    rules_engine_free(e);
    ruleset_free(rs);

    /* a range, closed by flush at the end of a stream; events after the window open the
     * next one */
    rs = tu_load(brute_rules("gt: 1, lte: 3", NULL), NULL);
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    memset(&al, 0, sizeof(al));
    for (int i = 0; i < 4; i++) {
        tu_feed(e, TU_T0 + i * TU_MIN, (uint64_t)i + 1, &al, FAIL_FROM("a"), NULL);
    }
    tu_feed(e, TU_T0 + 20 * TU_MIN, 5, &al, FAIL_FROM("a"), NULL);
    tu_feed(e, TU_T0 + 21 * TU_MIN, 6, &al, FAIL_FROM("a"), NULL);
    assert_int_equal(al.n, 0); /* 4 in the first window: out of range */
    assert_int_equal(rules_engine_flush(e, tu_on_alert, &al), 1);
    assert_int_equal(al.count[0], 2);
    struct rules_stats st;
    rules_engine_stats(e, NULL, &st);
    assert_int_equal(st.groups, 0);
    rules_engine_free(e);
    ruleset_free(rs);

    /* eq */
    rs = tu_load(brute_rules("eq: 1", NULL), NULL);
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    memset(&al, 0, sizeof(al));
    tu_feed(e, TU_T0, 1, &al, FAIL_FROM("a"), NULL);
    assert_int_equal(rules_engine_flush(e, tu_on_alert, &al), 1);
    rules_engine_free(e);
    ruleset_free(rs);
}

static void test_caps_and_lateness(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(brute_rules("gte: 3", NULL), NULL);
    struct rules_limits lim;
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    struct rules_stats st;
    size_t brute = 1;

    rules_limits_default(&lim);
    lim.max_groups_per_rule = 2;
    lim.max_events_per_group = 2;
    assert_int_equal(rules_engine_new(rs, &lim, &e), 0);
    tu_feed(e, TU_T0, 1, &al, FAIL_FROM("a"), NULL);
    tu_feed(e, TU_T0 + 1, 2, &al, FAIL_FROM("b"), NULL);
    tu_feed(e, TU_T0 + 2, 3, &al, FAIL_FROM("c"), NULL);
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.groups, 2);
    assert_int_equal(st.groups_evicted, 1);
    /* three events in c's group but only two remembered: never 3 */
    tu_feed(e, TU_T0 + 3, 4, &al, FAIL_FROM("c"), NULL);
    tu_feed(e, TU_T0 + 4, 5, &al, FAIL_FROM("c"), NULL);
    assert_int_equal(al.n, 0);
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.events_forgotten, 1);
    rules_engine_free(e);

    /* lateness: 2 minutes by default */
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    tu_feed(e, TU_T0 + 10 * TU_MIN, 1, &al, "outcome=success", NULL); /* moves the watermark */
    tu_feed(e, TU_T0, 2, &al, FAIL_FROM("a"), NULL);                  /* 10 min late */
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.late_dropped, 1);
    assert_int_equal(st.groups, 0);
    /* out of order within lateness still counts */
    tu_feed(e, TU_T0 + 9 * TU_MIN, 3, &al, FAIL_FROM("a"), NULL);
    tu_feed(e, TU_T0 + 8 * TU_MIN + 30 * VG_NS_PER_SEC, 4, &al, FAIL_FROM("a"), NULL);
    assert_int_equal(
        tu_feed(e, TU_T0 + 9 * TU_MIN + 30 * VG_NS_PER_SEC, 5, &al, FAIL_FROM("a"), NULL), 1);
    rules_engine_free(e);

    /* a record dated far in the future is clamped to received + max_future */
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    struct tu_rec t;
    tu_rec_init(&t, "{}");
    tu_set(&t, "outcome", "success");
    t.r.ts = TU_T0 + 365LL * 24 * 60 * TU_MIN;
    t.r.has_ts = true;
    t.r.received = TU_T0;
    t.r.has_received = true;
    rules_engine_eval(e, &t.r, NULL, NULL);
    tu_rec_release(&t);
    tu_feed(e, TU_T0 + 4 * TU_MIN, 2, &al, FAIL_FROM("z"), NULL); /* not late */
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.late_dropped, 0);
    assert_int_equal(st.groups, 1);
    rules_engine_free(e);
    assert_int_equal(rules_engine_new(rs, &(struct rules_limits){ 0 }, &e), -EINVAL);
    ruleset_free(rs);
}

static void test_chain_and_generate(void **state)
{
    (void)state;
#define CHAIN_RULES(GEN)                                                      \
 FAILED "---\ntitle: ok\nname: ok\nlogsource: {product: vigil}\n"             \
        "detection:\n  sel: {outcome: success}\n  condition: sel\n"           \
        "---\ntitle: brute\nname: brute\ncorrelation:\n  type: event_count\n" \
        "  rules: [failed]\n  group-by: [src_ip]\n  timespan: 5m\n"           \
        "  condition: {gte: 2}\n"                                             \
        "---\ntitle: broke in\ncorrelation:\n  type: temporal_ordered\n"      \
        "  rules: [brute, ok]\n  group-by: [src_ip]\n  timespan: 10m\n" GEN "level: critical\n"
    char y[4096];
    for (int gen = 0; gen < 2; gen++) {
        snprintf(y, sizeof(y), "%s", gen ? CHAIN_RULES("generate: true\n") : CHAIN_RULES(""));
        struct ruleset *rs = tu_load(y, NULL);
        struct rules_engine *e;
        struct tu_alerts al = { 0 };
        long brute = ruleset_find(rs, "brute");
        struct rules_rule_info info;
        assert_true(brute >= 0);
        ruleset_rule_info(rs, (size_t)brute, &info);
        assert_int_equal(info.alerts, gen);
        assert_int_equal(info.type, RULES_EVENT_COUNT);
        assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
        tu_feed(e, TU_T0, 1, &al, FAIL_FROM("6.6.6.6"), NULL);
        tu_feed(e, TU_T0 + TU_MIN, 2, &al, FAIL_FROM("6.6.6.6"), NULL);
        assert_int_equal(al.n, gen ? 1 : 0);
        tu_feed(e, TU_T0 + 2 * TU_MIN, 3, &al, "outcome=success", "src_ip=6.6.6.6", NULL);
        assert_int_equal(al.n, gen ? 3 : 1); /* + ok itself when generated */
        size_t last = al.n - 1;
        ruleset_rule_info(rs, al.rule[last], &info);
        assert_string_equal(info.title, "broke in");
        assert_string_equal(al.group[last], "src_ip=6.6.6.6");
        rules_engine_free(e);
        ruleset_free(rs);
    }
}

static void test_aliases(void **state)
{
    (void)state;
    /* spec "Field Name Aliases": the same address as source in one, destination in the
     * other */
    struct ruleset *rs =
        tu_load("title: err\nname: internal_error\nlogsource: {product: vigil}\n"
                "detection:\n  sel: {action: error}\n  condition: sel\n---\n"
                "title: conn\nname: new_network_connection\nlogsource: {product: vigil}\n"
                "detection:\n  sel: {action: connect}\n  condition: sel\n---\n"
                "title: pair\ncorrelation:\n  type: temporal\n"
                "  rules: [internal_error, new_network_connection]\n"
                "  group-by: [internal_ip]\n  timespan: 10s\n  aliases:\n    internal_ip:\n"
                "      internal_error: dst_ip\n      new_network_connection: src_ip\n",
                NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    tu_feed(e, TU_T0, 1, &al, "action=error", "dst_ip=10.1.1.1", NULL);
    assert_int_equal(tu_feed(e, TU_T0 + 1, 2, &al, "action=connect", "src_ip=10.1.1.1", NULL), 1);
    assert_string_equal(al.group[0], "internal_ip=10.1.1.1");
    rules_engine_free(e);
    ruleset_free(rs);
}

static void feed_abc(struct rules_engine *e, int from, int to, struct tu_alerts *al)
{
    for (int i = from; i < to; i++) {
        tu_feed(e, TU_T0 + i * TU_MIN, (uint64_t)i + 1, al, FAIL_FROM("9.9.9.9"), NULL);
    }
}

static void test_checkpoint_restore(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(brute_rules("gte: 3", NULL), NULL);
    struct rules_engine *a;
    struct rules_engine *b;
    struct tu_alerts al = { 0 };
    struct buf ck;

    /* two of three events, then a restart */
    assert_int_equal(rules_engine_new(rs, NULL, &a), 0);
    feed_abc(a, 0, 2, &al);
    tu_feed(a, TU_T0 + TU_MIN, 50, &al, FAIL_FROM("8.8.8.8"), NULL);
    buf_init(&ck, 1 << 20);
    assert_int_equal(rules_engine_checkpoint(a, &ck), 0);
    assert_int_equal(rules_engine_new(rs, NULL, &b), 0);
    assert_int_equal(rules_engine_restore(b, buf_span(&ck)), 2);
    /* the restored engine finishes the attack like the original */
    struct tu_alerts ala = { 0 };
    struct tu_alerts alb = { 0 };
    feed_abc(a, 2, 3, &ala);
    feed_abc(b, 2, 3, &alb);
    assert_int_equal(ala.n, 1);
    assert_int_equal(alb.n, 1);
    assert_int_equal(alb.count[0], 3);
    assert_int_equal(alb.nseqs[0], 3);
    assert_int_equal(alb.first_seq[0], ala.first_seq[0]);
    assert_string_equal(alb.group[0], ala.group[0]);
    /* a checkpoint of a checkpointed engine is the same state */
    struct buf ck2;
    buf_init(&ck2, 1 << 20);
    assert_int_equal(rules_engine_checkpoint(b, &ck2), 0);
    struct rules_engine *c;
    assert_int_equal(rules_engine_new(rs, NULL, &c), 0);
    assert_int_equal(rules_engine_restore(c, buf_span(&ck2)), 1); /* 8.8.8.8 remains */

    /* every truncation and a flipped byte: corrupt, never a crash, state unchanged */
    for (size_t n = 0; n < ck.len; n++) {
        int rc = rules_engine_restore(c, (struct span){ ck.data, n });
        assert_int_equal(rc, VG_ECORRUPT);
    }
    for (size_t i = 0; i < ck.len; i++) {
        uint8_t save = ck.data[i];
        ck.data[i] ^= 0x5a;
        int rc = rules_engine_restore(c, buf_span(&ck));
        assert_true(rc == VG_ECORRUPT || rc >= 0);
        ck.data[i] = save;
    }
    buf_release(&ck2);
    rules_engine_free(c);
    rules_engine_free(b);

    /* a changed rule does not take the old state */
    struct ruleset *rs2 = tu_load(brute_rules("gte: 4", NULL), NULL);
    assert_int_equal(rules_engine_new(rs2, NULL, &b), 0);
    assert_int_equal(rules_engine_restore(b, buf_span(&ck)), 0);
    rules_engine_free(b);
    ruleset_free(rs2);
    /* an unchanged rule in a new ruleset (a reload) does */
    struct ruleset *rs3 = tu_load(brute_rules("gte: 3", NULL), NULL);
    assert_int_equal(rules_engine_new(rs3, NULL, &b), 0);
    assert_int_equal(rules_engine_restore(b, buf_span(&ck)), 2);
    rules_engine_free(b);
    ruleset_free(rs3);

    buf_release(&ck);
    rules_engine_free(a);
    ruleset_free(rs);
}

static void test_alert_to_rec(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(brute_rules("gte: 1", "tags: [attack.t1110]\n"), NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    struct buf scratch;
    struct buf enc;
    struct rec out;
    struct rec back;
    uint64_t seqs[1] = { 42 };
    struct span gv[1] = { SPAN_LIT("10.0.0.9") };
    const char *gn[1] = { "src_ip" };

    struct rules_alert a = {
        .rule = 1,
        .rule_id = "brute-id",
        .title = "brute",
        .level = "high",
        .severity = VG_SEV_ERROR,
        .type = RULES_EVENT_COUNT,
        .ngroup = 1,
        .group_names = gn,
        .group_values = gv,
        .seqs = seqs,
        .nseqs = 1,
        .count = 1,
        .ts = TU_T0,
        .window_start = TU_T0,
        .window_end = TU_T0,
    };
    buf_init(&scratch, 1 << 16);
    buf_init(&enc, 1 << 16);
    assert_int_equal(rules_alert_to_rec(rs, &a, &out, &scratch), 0);
    assert_true(span_eq_str(out.str[VG_F_KIND], "alert"));
    assert_true(span_eq_str(out.str[VG_F_SOURCE], "rule"));
    assert_true(span_eq_str(out.str[VG_F_RULE], "brute"));
    assert_true(span_eq_str(out.str[VG_F_SEVERITY], "error"));
    assert_true(span_eq_str(out.str[VG_F_SRC_IP], "10.0.0.9")); /* group-by onto the field */
    assert_true(out.has_ts && out.ts == TU_T0);
    assert_int_equal(rec_encode(&out, &enc), 0);
    struct span in = buf_span(&enc);
    assert_int_equal(rec_decode(&in, &back), 0);
    struct span v;
    struct span s;
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("rule_id"), &v), 1);
    assert_true(mp_get_str(v, &s) && span_eq_str(s, "brute-id"));
    struct span grp;
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("group"), &grp), 1);
    assert_int_equal(mp_map_get(grp, SPAN_LIT("src_ip"), &v), 1);
    assert_true(mp_get_str(v, &s) && span_eq_str(s, "10.0.0.9"));
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("fingerprint"), &v), 1);
    assert_true(mp_get_str(v, &s) && s.n == 32);
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("tags"), &v), 1);

    /* fingerprints: stable per rule and group, different across groups */
    char f1[33];
    char f2[33];
    char f3[33];
    rules_alert_fingerprint(&a, f1);
    rules_alert_fingerprint(&a, f2);
    assert_string_equal(f1, f2);
    gv[0] = SPAN_LIT("10.0.0.10");
    rules_alert_fingerprint(&a, f3);
    assert_string_not_equal(f1, f3);

    /* a detection alert carries the event's identity fields */
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    struct tu_rec t;
    tu_rec_init(&t, "{}");
    tu_set(&t, "pod", "web-1");
    tu_set(&t, "message", "hello");
    struct rules_alert d = { .rule = 0,
                             .rule_id = "",
                             .title = "failed",
                             .level = "low",
                             .severity = VG_SEV_NOTICE,
                             .type = RULES_DETECTION,
                             .count = 1,
                             .ts = TU_T0,
                             .event = &t.r };
    buf_reset(&scratch);
    assert_int_equal(rules_alert_to_rec(rs, &d, &out, &scratch), 0);
    assert_true(span_eq_str(out.str[VG_F_POD], "web-1"));
    assert_true(span_eq_str(out.str[VG_F_MESSAGE], "failed: hello"));
    tu_rec_release(&t);
    rules_engine_free(e);
    (void)al;
    buf_release(&scratch);
    buf_release(&enc);
    ruleset_free(rs);
}

static void test_correlation_errors(void **state)
{
    (void)state;
    char why[600];
    static const struct {
        const char *corr;
        enum rules_status st;
        const char *reason;
    } cases[] = {
        { "type: value_sum\n  rules: [failed]\n  timespan: 5m\n  condition: {gte: 1}",
          RULES_UNSUPPORTED, "value_sum" },
        { "type: event_count\n  rules: [nope]\n  timespan: 5m\n  condition: {gte: 1}",
          RULES_INVALID, "'nope' is not defined" },
        { "type: event_count\n  rules: [failed]\n  timespan: 5x\n  condition: {gte: 1}",
          RULES_INVALID, "timespan" },
        { "type: event_count\n  rules: [failed]\n  timespan: 5m", RULES_INVALID, "condition" },
        { "type: value_count\n  rules: [failed]\n  timespan: 5m\n  condition: {gte: 1}",
          RULES_INVALID, "field" },
        { "type: event_count\n  rules: [failed]\n  timespan: 5m\n  condition: {gt: 5, lt: 3}",
          RULES_INVALID, "never" },
        { "type: event_count\n  rules: [failed]\n  group-by: [NoSuch]\n  timespan: 5m\n"
          "  condition: {gte: 1}",
          RULES_UNSUPPORTED, "NoSuch" },
        { "type: temporal\n  rules: [failed]\n  timespan: 5m", RULES_INVALID, "two rules" },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        char y[2048];
        struct rules_report rep;
        snprintf(y, sizeof(y), FAILED "---\ntitle: c\ncorrelation:\n  %s\n", cases[i].corr);
        struct ruleset *rs = tu_load(y, &rep);
        assert_int_equal(rep.n, 2);
        assert_int_equal(rep.items[0].status, RULES_LOADED);
        assert_int_equal(rep.items[1].status, cases[i].st);
        if (!strstr(rep.items[1].reason, cases[i].reason)) {
            fail_msg("case %zu: '%s' lacks '%s'", i, rep.items[1].reason, cases[i].reason);
        }
        rules_report_release(&rep);
        ruleset_free(rs);
    }
    /* a cycle */
    assert_int_equal(tu_fail("title: a\nname: a\ncorrelation:\n  type: event_count\n  rules: [b]\n"
                             "  timespan: 5m\n  condition: {gte: 1}\n---\n"
                             "title: b\nname: b\ncorrelation:\n  type: event_count\n  rules: [a]\n"
                             "  timespan: 5m\n  condition: {gte: 1}\n",
                             why, sizeof(why)),
                     RULES_INVALID);
    assert_non_null(strstr(why, "cycle"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_count_sliding),
        cmocka_unit_test(test_value_count),
        cmocka_unit_test(test_temporal),
        cmocka_unit_test(test_temporal_ordered),
        cmocka_unit_test(test_bounded_conditions),
        cmocka_unit_test(test_caps_and_lateness),
        cmocka_unit_test(test_chain_and_generate),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_checkpoint_restore),
        cmocka_unit_test(test_alert_to_rec),
        cmocka_unit_test(test_correlation_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
