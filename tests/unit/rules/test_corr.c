/* tests/unit/rules/test_corr.c: Sigma correlation rules: event_count, value_count,
 * temporal, temporal_ordered; sliding windows and their expiry, bounded conditions
 * decided at the window's end, group and event caps, late events per source, events
 * dated in the future, chains, generate, aliases, checkpoint/restore mid-window, alert
 * records. The alert life cycle and the time model have tests of their own
 * (test_incident.c). */
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
    assert_int_equal(al.state[0], RULES_FIRING);
    assert_int_equal(al.nseqs[0], 3);
    assert_int_equal(al.first_seq[0], 2);
    assert_true(al.ts[0] == TU_T0 + 8 * TU_MIN);
    /* the window [4m, 9m] holds four: a match again, of the same incident (its update
     * waits for update_every of event time) */
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
    assert_int_equal(st.matches, 2 + 7); /* two windows held; seven detection matches */
    assert_int_equal(st.groups, 2);      /* .5 and .6 */
    /* expiry: the clock moves on, the groups go and the incident resolves, quiet for
     * resolve_after since its last event, with all four */
    assert_int_equal(rules_engine_advance(e, TU_T0 + 60 * TU_MIN, tu_on_alert, &al), 1);
    assert_int_equal(al.state[1], RULES_RESOLVED);
    assert_int_equal(al.count[1], 4);
    assert_true(al.ts[1] == TU_T0 + 9 * TU_MIN + 15 * TU_MIN);
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
    assert_int_equal(al.state[0], RULES_FIRING);
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
    /* the flush closes the second window (2: in range) and resolves its incident */
    assert_int_equal(rules_engine_flush(e, tu_on_alert, &al), 2);
    assert_int_equal(al.count[0], 2);
    assert_int_equal(al.state[0], RULES_FIRING);
    assert_int_equal(al.state[1], RULES_RESOLVED);
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
    assert_int_equal(rules_engine_flush(e, tu_on_alert, &al), 2);
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
    /* a's event went with its group, one of c's was forgotten */
    assert_int_equal(st.skipped[RULES_SKIP_STATE_CAP], 2);
    rules_engine_free(e);

    /* lateness: 2 minutes by default, per source (agent and host) */
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    tu_feed(e, TU_T0 + 10 * TU_MIN, 1, &al, FAIL_FROM("x"), "host=h1", NULL);
    tu_feed(e, TU_T0, 2, &al, FAIL_FROM("a"), "host=h1", NULL); /* 10 min behind h1 */
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.skipped[RULES_SKIP_LATE], 1);
    assert_int_equal(st.groups, 1);
    /* another host's clock is its own: the same time is on time there */
    tu_feed(e, TU_T0, 3, &al, FAIL_FROM("a"), "host=h2", NULL);
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.skipped[RULES_SKIP_LATE], 1);
    assert_int_equal(st.groups, 2);
    /* out of order within lateness still counts */
    tu_feed(e, TU_T0 + 9 * TU_MIN, 4, &al, FAIL_FROM("b"), "host=h1", NULL);
    tu_feed(e, TU_T0 + 8 * TU_MIN + 30 * VG_NS_PER_SEC, 5, &al, FAIL_FROM("b"), "host=h1", NULL);
    assert_int_equal(tu_feed(e, TU_T0 + 9 * TU_MIN + 30 * VG_NS_PER_SEC, 6, &al, FAIL_FROM("b"),
                             "host=h1", NULL),
                     1);
    rules_engine_free(e);
    assert_int_equal(rules_engine_new(rs, &(struct rules_limits){ 0 }, &e), -EINVAL);
    ruleset_free(rs);
}

/* The failure of issue 9: one event dated an hour (or years) ahead must not switch
 * correlation off for anyone, live or after a restart. */
static void test_future_event_does_not_blind(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(brute_rules("gte: 3", NULL), NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    struct rules_stats st;
    size_t brute = 1;
    int64_t now = TU_T0 + 1000 * TU_MIN;
    uint64_t seq = 1;

    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    for (int i = 0; i < 3; i++, seq++) {
        tu_feed_recv(e, now + i * VG_NS_PER_SEC, now + i * VG_NS_PER_SEC, seq, &al,
                     FAIL_FROM("192.0.2.10"), "agent=a1", "host=web-1", NULL);
    }
    assert_int_equal(tu_count(&al, RULES_FIRING), 1);
    /* one event from another agent dated an hour ahead, one dated years ahead; and one
     * of the same agent's own hosts a year ahead */
    now += 10 * VG_NS_PER_SEC;
    tu_feed_recv(e, now + 60 * TU_MIN, now, seq++, &al, FAIL_FROM("198.51.100.1"), "agent=a2",
                 "host=build-7", NULL);
    tu_feed_recv(e, now + 3 * 365 * 1440 * TU_MIN, now, seq++, &al, FAIL_FROM("198.51.100.1"),
                 "agent=a2", "host=build-7", NULL);
    tu_feed_recv(e, now + 365 * 1440 * TU_MIN, now, seq++, &al, "outcome=success", "agent=a1",
                 "host=web-9", NULL);
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.skipped[RULES_SKIP_FUTURE], 2); /* evaluated at their received time */
    /* the same burst from another address, on time, from the first agent and a third */
    for (int i = 0; i < 3; i++, seq++) {
        tu_feed_recv(e, now + (i + 5) * VG_NS_PER_SEC, now + (i + 6) * VG_NS_PER_SEC, seq, &al,
                     FAIL_FROM("192.0.2.20"), "agent=a1", "host=web-1", NULL);
    }
    for (int i = 0; i < 3; i++, seq++) {
        tu_feed_recv(e, now + (i + 5) * VG_NS_PER_SEC, now + (i + 6) * VG_NS_PER_SEC, seq, &al,
                     FAIL_FROM("192.0.2.30"), "agent=a3", "host=db-1", NULL);
    }
    assert_int_equal(tu_count(&al, RULES_FIRING), 3);
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.skipped[RULES_SKIP_LATE], 0);
    /* the future events went to their own group at the time they were received: a third
     * one there makes it hold too, at that time */
    assert_true(al.ts[1] < now + TU_MIN && al.ts[2] < now + TU_MIN);

    /* a restart: the checkpoint carries no clock ahead of what was received */
    struct buf ck;
    buf_init(&ck, 1 << 20);
    assert_int_equal(rules_engine_checkpoint(e, &ck), 0);
    rules_engine_free(e);
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    assert_true(rules_engine_restore(e, buf_span(&ck)) > 0);
    assert_true(rules_engine_now(e) <= now + 10 * VG_NS_PER_SEC);
    now += 60 * VG_NS_PER_SEC;
    size_t before = tu_count(&al, RULES_FIRING);
    for (int i = 0; i < 3; i++, seq++) {
        tu_feed_recv(e, now + i * VG_NS_PER_SEC, now + i * VG_NS_PER_SEC, seq, &al,
                     FAIL_FROM("192.0.2.40"), "agent=a1", "host=web-1", NULL);
    }
    assert_int_equal(tu_count(&al, RULES_FIRING), before + 1);
    buf_release(&ck);
    rules_engine_free(e);

    /* a version 1 checkpoint, written by an engine whose single clock one future event
     * had pushed a year ahead: its groups come back, its clock does not */
    struct buf v1;
    buf_init(&v1, 1 << 16);
    assert_int_equal(mp_put_map(&v1, 5), 0);
    assert_int_equal(mp_put_cstr(&v1, "format"), 0);
    assert_int_equal(mp_put_cstr(&v1, "vigil-rules-state"), 0);
    assert_int_equal(mp_put_cstr(&v1, "version"), 0);
    assert_int_equal(mp_put_u64(&v1, 1), 0);
    assert_int_equal(mp_put_cstr(&v1, "wm"), 0);
    assert_int_equal(mp_put_i64(&v1, now + 365 * 1440 * TU_MIN), 0);
    assert_int_equal(mp_put_cstr(&v1, "eid"), 0);
    assert_int_equal(mp_put_u64(&v1, 7), 0);
    assert_int_equal(mp_put_cstr(&v1, "rules"), 0);
    assert_int_equal(mp_put_array(&v1, 0), 0);
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    assert_int_equal(rules_engine_restore(e, buf_span(&v1)), 0);
    assert_true(rules_engine_now(e) == INT64_MIN);
    memset(&al, 0, sizeof(al));
    for (int i = 0; i < 3; i++, seq++) {
        tu_feed_recv(e, now + i * VG_NS_PER_SEC, now + i * VG_NS_PER_SEC, seq, &al,
                     FAIL_FROM("192.0.2.50"), "agent=a1", "host=web-1", NULL);
    }
    assert_int_equal(tu_count(&al, RULES_FIRING), 1);
    buf_release(&v1);
    rules_engine_free(e);
    ruleset_free(rs);
}

/* An agent replays hours of old events while another is live: both alert as if on time,
 * and the backlog's windows are event time (its burst spread over minutes of received
 * time still counts; the live one's do not mix with it). */
static void test_backlog_and_live(void **state)
{
    (void)state;
    struct ruleset *rs = tu_load(brute_rules("gte: 3", NULL), NULL);
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    struct rules_stats st;
    size_t brute = 1;
    int64_t now = TU_T0 + 1000 * TU_MIN;
    int64_t old = now - 180 * TU_MIN;

    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    for (int i = 0; i < 3; i++) {
        /* interleaved: a live failure, then a backlog failure of three hours ago */
        int64_t r = now + i * VG_NS_PER_SEC;
        tu_feed_recv(e, r, r, (uint64_t)(2 * i + 1), &al, FAIL_FROM("192.0.2.1"), "agent=live",
                     "host=web", NULL);
        tu_feed_recv(e, old + i * TU_MIN, r, (uint64_t)(2 * i + 2), &al, FAIL_FROM("192.0.2.1"),
                     "agent=backlog", "host=db", NULL);
    }
    /* the same address in both: two windows three hours apart, two incidents */
    assert_int_equal(tu_count(&al, RULES_FIRING), 2);
    assert_int_equal(al.first_seq[0], 1);
    assert_int_equal(al.first_seq[1], 2);
    assert_true(al.ts[1] == old + 2 * TU_MIN);
    rules_engine_stats(e, &brute, &st);
    assert_int_equal(st.skipped[RULES_SKIP_LATE], 0);
    rules_engine_free(e);
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
        /* it lists what made the brute force as well as the login */
        assert_int_equal(al.seqs_total[last], 3);
        assert_int_equal(al.nseqs[last], 3);
        assert_int_equal(al.first_seq[last], 1);
        assert_int_equal(al.last_seq[last], 3);
        assert_int_equal(al.count[last], 2);
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
    /* both groups (a match does not empty one) and the open incident */
    assert_int_equal(rules_engine_restore(c, buf_span(&ck2)), 3);
    /* which goes on in the restored engine: a fourth event is the same incident */
    struct tu_alerts alc = { 0 };
    feed_abc(c, 3, 4, &alc);
    assert_int_equal(alc.n, 0);
    assert_int_equal(rules_engine_flush(c, tu_on_alert, &alc), 1);
    assert_int_equal(alc.state[0], RULES_RESOLVED);
    assert_int_equal(alc.count[0], 4);
    assert_string_equal(alc.incident[0], alb.incident[0]);

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
    struct buf scratch;
    struct buf enc;
    struct rec out;
    struct rec back;
    uint64_t seqs[2] = { 42, 43 };
    struct span gv[1] = { SPAN_LIT("10.0.0.9") };
    const char *gn[1] = { "src_ip" };
    const char *tags[1] = { "attack.t1110" };
    struct span ident[VG_F_COUNT] = { 0 };

    ident[VG_F_SRC_IP] = SPAN_LIT("10.0.0.9");
    struct rules_alert a = {
        .rule = 1,
        .rule_id = "brute-id",
        .title = "brute",
        .level = "high",
        .severity = VG_SEV_ERROR,
        .type = RULES_EVENT_COUNT,
        .tags = tags,
        .ntags = 1,
        .state = RULES_UPDATE,
        .ngroup = 1,
        .group_names = gn,
        .group_values = gv,
        .seqs = seqs,
        .nseqs = 2,
        .seqs_total = 5,
        .count = 5,
        .ts = TU_T0 + 9,
        .first_seen = TU_T0,
        .last_seen = TU_T0 + 9,
        .opened = TU_T0 + 3,
        .window_start = TU_T0 + 1,
        .window_end = TU_T0 + 9,
        .resolve_after_ns = 900 * VG_NS_PER_SEC,
        .drill = SPAN_LIT("drill-7"),
        .ident = ident,
    };
    rules_alert_fingerprint("brute-id", gv, 1, a.fingerprint);
    snprintf(a.incident, sizeof(a.incident), "%s-%lld", a.fingerprint, (long long)TU_T0);
    buf_init(&scratch, 1 << 16);
    buf_init(&enc, 1 << 16);
    assert_int_equal(rules_alert_to_rec(rs, &a, &out, &scratch), 0);
    assert_true(span_eq_str(out.str[VG_F_KIND], "alert"));
    assert_true(span_eq_str(out.str[VG_F_SOURCE], "rule"));
    assert_true(span_eq_str(out.str[VG_F_RULE], "brute"));
    assert_true(span_eq_str(out.str[VG_F_SEVERITY], "error"));
    assert_true(span_eq_str(out.str[VG_F_SRC_IP], "10.0.0.9")); /* identity fields */
    assert_true(out.has_ts && out.ts == TU_T0 + 9);
    assert_int_equal(rec_encode(&out, &enc), 0);
    struct span in = buf_span(&enc);
    assert_int_equal(rec_decode(&in, &back), 0);
    struct span v;
    struct span s;
    int64_t i64;
    /* schemas/alert.md: every field */
    static const struct {
        const char *key, *str;
    } strs[] = {
        { "rule_id", "brute-id" }, { "title", "brute" },  { "level", "high" },
        { "type", "event_count" }, { "state", "update" }, { "drill", "drill-7" },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(strs); i++) {
        assert_int_equal(mp_map_get(back.raw, span_str(strs[i].key), &v), 1);
        assert_true(mp_get_str(v, &s) && span_eq_str(s, strs[i].str));
    }
    static const struct {
        const char *key;
        int64_t want;
    } nums[] = {
        { "count", 5 },          { "seqs_total", 5 },
        { "first_seen", TU_T0 }, { "last_seen", TU_T0 + 9 },
        { "opened", TU_T0 + 3 }, { "resolve_after", 900 * VG_NS_PER_SEC },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(nums); i++) {
        assert_int_equal(mp_map_get(back.raw, span_str(nums[i].key), &v), 1);
        assert_true(mp_get_i64(v, &i64));
        assert_true(i64 == nums[i].want);
    }
    struct span grp;
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("group"), &grp), 1);
    assert_int_equal(mp_map_get(grp, SPAN_LIT("src_ip"), &v), 1);
    assert_true(mp_get_str(v, &s) && span_eq_str(s, "10.0.0.9"));
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("window"), &grp), 1);
    assert_int_equal(mp_map_get(grp, SPAN_LIT("start"), &v), 1);
    assert_true(mp_get_i64(v, &i64) && i64 == TU_T0 + 1);
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("fingerprint"), &v), 1);
    assert_true(mp_get_str(v, &s) && s.n == 32);
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("incident"), &v), 1);
    assert_true(mp_get_str(v, &s) && s.n > 33 && memcmp(s.p, a.fingerprint, 32) == 0);
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("seqs"), &v), 1);
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("tags"), &v), 1);
    assert_int_equal(mp_map_get(back.raw, SPAN_LIT("reason"), &v), 0); /* only when early */

    /* fingerprints: stable per rule and group, different across groups and rules */
    char f1[33];
    char f2[33];
    char f3[33];
    char f4[33];
    rules_alert_fingerprint("brute-id", gv, 1, f1);
    rules_alert_fingerprint("brute-id", gv, 1, f2);
    assert_string_equal(f1, f2);
    gv[0] = SPAN_LIT("10.0.0.10");
    rules_alert_fingerprint("brute-id", gv, 1, f3);
    assert_string_not_equal(f1, f3);
    rules_alert_fingerprint("other-id", gv, 1, f4);
    assert_string_not_equal(f3, f4);

    /* a detection's incidents are per identity: a shell in pod A and one in pod B */
    struct rules_engine *e;
    struct tu_alerts al = { 0 };
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    e->emit_all = true; /* "failed" only feeds the correlation */
    tu_feed(e, TU_T0, 1, &al, "outcome=failure", "pod=web-1", "namespace=shop", NULL);
    tu_feed(e, TU_T0 + 1, 2, &al, "outcome=failure", "pod=web-2", "namespace=shop", NULL);
    tu_feed(e, TU_T0 + 2, 3, &al, "outcome=failure", "pod=web-1", "namespace=shop", NULL);
    size_t nfail = 0;
    for (size_t i = 0; i < al.n; i++) {
        if (al.rule[i] == 0) {
            nfail++;
            assert_int_equal(al.state[i], RULES_FIRING);
        }
    }
    assert_int_equal(nfail, 2);
    assert_string_equal(al.group[0], "namespace=shop,pod=web-1");
    rules_engine_free(e);
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
        cmocka_unit_test(test_future_event_does_not_blind),
        cmocka_unit_test(test_backlog_and_live),
        cmocka_unit_test(test_chain_and_generate),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_checkpoint_restore),
        cmocka_unit_test(test_alert_to_rec),
        cmocka_unit_test(test_correlation_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
