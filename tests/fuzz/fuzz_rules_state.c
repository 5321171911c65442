/* tests/fuzz/fuzz_rules_state.c: the rules engine's checkpoint reader (rules_ckpt.c:
 * <store>/rules.state, stored bytes) over arbitrary bytes. The input is restored into an
 * engine over a fixed rule set that has detections, every correlation type and a chain;
 * a restore that succeeds must checkpoint and restore again with the same count, and
 * the engine must then evaluate, move its clock on and flush without a crash, a leak or
 * an alert record that does not encode. A corrupt checkpoint must be refused whole. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char rules_yaml[] =
    "title: failed\nname: failed\nlogsource: {product: vigil}\n"
    "detection: {sel: {outcome: failure}, condition: sel}\n---\n"
    "title: ok\nname: ok\nlogsource: {product: vigil}\n"
    "detection: {sel: {outcome: success}, condition: sel}\n---\n"
    "title: shell\nid: shell-id\nlogsource: {product: vigil}\n"
    "detection: {sel: {process: sh}, condition: sel}\nvigil: {group-by: [pod]}\n---\n"
    "title: brute\nname: brute\ncorrelation: {type: event_count, rules: [failed], "
    "group-by: [src_ip], timespan: 2m, condition: {gte: 3}}\n---\n"
    "title: spray\nid: spray-id\ncorrelation: {type: value_count, rules: [failed], "
    "group-by: [src_ip], timespan: 5m, condition: {field: user, gte: 3}}\n---\n"
    "title: few\nid: few-id\ncorrelation: {type: event_count, rules: [failed], "
    "group-by: [src_ip], timespan: 5m, condition: {lt: 2}}\n---\n"
    "title: both\nid: both-id\ncorrelation: {type: temporal, rules: [failed, ok], "
    "group-by: [src_ip], timespan: 5m}\n---\n"
    "title: broke in\nid: broke-id\ncorrelation: {type: temporal_ordered, rules: [brute, ok], "
    "group-by: [src_ip], timespan: 10m}\n";

static struct ruleset *g_rs;

static int on_alert(const struct rules_alert *a, void *arg)
{
    struct buf scratch;
    struct buf enc;
    struct rec r;

    buf_init(&scratch, 1 << 20);
    buf_init(&enc, 1 << 21);
    assert(a->seqs_total >= a->nseqs);
    if (rules_alert_to_rec((const struct ruleset *)arg, a, &r, &scratch) == 0) {
        int rc = rec_encode(&r, &enc);
        assert(rc == 0);
    }
    buf_release(&scratch);
    buf_release(&enc);
    return 0;
}

static void feed(struct rules_engine *e, int64_t ts, int64_t recv, const char *outcome,
                 const char *ip)
{
    struct rec r;
    rec_init(&r);
    r.ts = ts;
    r.has_ts = true;
    r.received = recv;
    r.has_received = true;
    r.seq = (uint64_t)recv;
    r.has_seq = true;
    rec_set(&r, VG_F_OUTCOME, span_str(outcome));
    rec_set(&r, VG_F_SRC_IP, span_str(ip));
    rec_set(&r, VG_F_USER, span_str(ip));
    (void)rules_engine_eval(e, &r, on_alert, g_rs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_rs) {
        struct rules_report rep;
        struct errbuf eb;
        rules_report_init(&rep);
        int rc =
            rules_load_mem("fuzz.yml", rules_yaml, sizeof(rules_yaml) - 1, NULL, &g_rs, &rep, &eb);
        assert(rc == 0 && rep.invalid + rep.unsupported == 0);
        rules_report_release(&rep);
    }
    struct rules_engine *e;
    if (rules_engine_new(g_rs, NULL, &e) != 0) {
        return 0;
    }
    int n = rules_engine_restore(e, (struct span){ data, size });
    assert(n >= 0 || n == VG_ECORRUPT);
    if (n >= 0) {
        struct buf ck;
        struct rules_engine *e2;
        buf_init(&ck, 1 << 26);
        if (rules_engine_checkpoint(e, &ck) == 0 && rules_engine_new(g_rs, NULL, &e2) == 0) {
            int n2 = rules_engine_restore(e2, buf_span(&ck));
            assert(n2 >= 0);
            rules_engine_free(e2);
        }
        buf_release(&ck);
    }
    /* the engine works on, whatever it restored */
    int64_t now =
        rules_engine_now(e) == INT64_MIN ? 1714521600LL * 1000000000LL : rules_engine_now(e);
    if (now > INT64_MAX / 2) {
        now = INT64_MAX / 2;
    }
    for (int i = 0; i < 4; i++) {
        feed(e, now + i, now + i, "failure", "10.0.0.1");
    }
    feed(e, now + 10, now + 10, "success", "10.0.0.1");
    (void)rules_engine_advance(e, now + 3600LL * 1000000000LL, on_alert, g_rs);
    (void)rules_engine_flush(e, on_alert, g_rs);
    rules_engine_free(e);
    return 0;
}
