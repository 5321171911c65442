/* tests/unit/collector/test_metrics.c: the Prometheus exposition (collector/metrics.c):
 * counters end in _total, histograms are cumulative with +Inf, _sum and _count, a value
 * on a bucket's bound counts in that bucket; labelled families stay bounded (past the
 * cap everything counts in "(other)"), label values are escaped and cut on a UTF-8
 * boundary; metrics_release frees everything (ASan). promtool's own check runs in
 * tests/integration/test_metrics.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/metrics.h"

static char *render(const struct metrics *m)
{
    struct buf b;

    buf_init(&b, 1u << 20);
    assert_int_equal(metrics_render(m, &b), 0);
    size_t n;
    return (char *)buf_detach(&b, &n);
}

static void expect_line(const char *text, const char *line)
{
    const char *p = text;
    size_t n = strlen(line);

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return;
        }
        p += n;
    }
    fail_msg("no line '%s' in:\n%.4000s", line, text);
}

static void test_counters_end_in_total(void **state)
{
    struct metrics m = { 0 };
    char *text;

    (void)state;
    m.lst[LST_FORWARD].acks_sent = 7;
    m.lst[LST_SYSLOG].conns_open = 2;
    text = render(&m);
    expect_line(text, "# TYPE vigil_listener_acks_sent_total counter");
    expect_line(text, "vigil_listener_acks_sent_total{listener=\"forward\"} 7");
    /* A gauge keeps its name. */
    expect_line(text, "# TYPE vigil_listener_conns_open gauge");
    expect_line(text, "vigil_listener_conns_open{listener=\"syslog\"} 2");
    /* Every counter family's name ends in _total. */
    for (const char *p = strstr(text, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
        const char *eol = strchr(p, '\n');
        if (eol - p > 8 && strncmp(eol - 7, "counter", 7) == 0) {
            const char *sp = memchr(p + 7, ' ', (size_t)(eol - p - 7));
            assert_non_null(sp);
            if (strncmp(sp - 6, "_total", 6) != 0) {
                fail_msg("counter without _total: %.*s", (int)(eol - p), p);
            }
        }
    }
    free(text);
}

static void test_histogram_buckets(void **state)
{
    struct metrics m = { 0 };
    char *text;

    (void)state;
    metrics_hist_observe(&m, METRICS_HIST_ACK, 100000);      /* 0.1 ms: first bucket */
    metrics_hist_observe(&m, METRICS_HIST_ACK, 1000000);     /* exactly 1 ms: le="0.001" */
    metrics_hist_observe(&m, METRICS_HIST_ACK, 1000001);     /* just over: le="0.0025" */
    metrics_hist_observe(&m, METRICS_HIST_ACK, 60000000000); /* 60 s: only +Inf */
    text = render(&m);
    expect_line(text, "# TYPE vigil_ack_latency_seconds histogram");
    expect_line(text, "vigil_ack_latency_seconds_bucket{le=\"0.0005\"} 1");
    expect_line(text, "vigil_ack_latency_seconds_bucket{le=\"0.001\"} 2");
    expect_line(text, "vigil_ack_latency_seconds_bucket{le=\"0.0025\"} 3");
    expect_line(text, "vigil_ack_latency_seconds_bucket{le=\"10\"} 3");
    expect_line(text, "vigil_ack_latency_seconds_bucket{le=\"+Inf\"} 4");
    expect_line(text, "vigil_ack_latency_seconds_count 4");
    expect_line(text, "vigil_ack_latency_seconds_sum 60.002100001");
    /* The other histograms are there, empty. */
    expect_line(text, "vigil_store_commit_seconds_count 0");
    expect_line(text, "vigil_rules_eval_seconds_bucket{le=\"1e-06\"} 0");
    free(text);
}

static void test_labels_bounded_and_escaped(void **state)
{
    struct metrics m = { 0 };
    char name[32];
    char *text;

    (void)state;
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "agent-%d", i);
        metrics_labels_add(&m.agent_events, 4, span_str(name), (struct span){ NULL, 0 }, 10);
    }
    /* Known values keep counting after the cap; new ones go to (other). */
    metrics_labels_add(&m.agent_events, 4, SPAN_LIT("agent-1"), (struct span){ NULL, 0 }, 5);
    metrics_labels_add(&m.agent_events, 4, SPAN_LIT("a\"b\\c\nd"), (struct span){ NULL, 0 }, 1);
    assert_int_equal(m.agent_events.len, 4);
    assert_int_equal(m.agent_events.other, 61);
    metrics_labels_add(&m.rule_alerts, METRICS_MAX_RULES, SPAN_LIT("7bf79db4"),
                       SPAN_LIT("Kubernetes \"API\" denied"), 2);
    text = render(&m);
    expect_line(text, "vigil_agent_events_total{agent=\"agent-0\"} 10");
    expect_line(text, "vigil_agent_events_total{agent=\"agent-1\"} 15");
    expect_line(text, "vigil_agent_events_total{agent=\"(other)\"} 61");
    expect_line(
        text,
        "vigil_rule_alerts_total{rule_id=\"7bf79db4\",title=\"Kubernetes \\\"API\\\" denied\"} 2");
    free(text);
    metrics_release(&m);

    /* Escaping, and a value cut at 128 bytes never splits a UTF-8 sequence. */
    char long_name[200];
    memset(long_name, 'x', 127);
    memcpy(long_name + 127, "\xc3\xa9yz", 5); /* é straddles byte 128 */
    metrics_labels_add(&m.agent_events, 4, SPAN_LIT("a\"b\\c\nd"), (struct span){ NULL, 0 }, 1);
    metrics_labels_add(&m.agent_events, 4, span_str(long_name), (struct span){ NULL, 0 }, 1);
    assert_int_equal(strlen(m.agent_events.e[1].value), 127);
    text = render(&m);
    expect_line(text, "vigil_agent_events_total{agent=\"a\\\"b\\\\c\\nd\"} 1");
    free(text);
    metrics_release(&m);
    assert_int_equal(m.agent_events.len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_end_in_total),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_labels_bounded_and_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
