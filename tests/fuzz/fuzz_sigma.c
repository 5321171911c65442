/* tests/fuzz/fuzz_sigma.c: Sigma rule YAML over arbitrary bytes. The input is loaded as a
 * rule file (rules_load_mem); whatever loads is evaluated against a few fixed records
 * (a Falco alert, a k8s audit event, an sshd line, a bare record, one far in the future),
 * twice in a row and out of order so windows open, slide and close; the correlation
 * state is checkpointed, restored into a second engine, checkpointed again (the two
 * checkpoints must restore the same number of groups), flushed, and every alert becomes
 * a record that must encode. Rejecting a rule is fine; crashing, leaking, hanging or a
 * report that does not add up is not. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "rules/rules.h"
#include "schemas/map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const events[][2] = {
    { "falco", "{\"rule\":\"Terminal shell\",\"priority\":\"Notice\",\"time\":"
               "\"2024-05-01T10:00:00.000000000Z\",\"output\":\"shell (user=root)\","
               "\"source\":\"syscall\",\"hostname\":\"node-1\",\"output_fields\":{"
               "\"proc.exepath\":\"/usr/bin/bash\",\"proc.cmdline\":\"bash -i -c id\","
               "\"proc.pexepath\":\"/usr/sbin/sshd\",\"user.name\":\"root\","
               "\"proc.pid\":42,\"k8s.pod.name\":\"web-1\",\"container.id\":\"abc\"}}" },
    { "k8s-audit", "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"auditID\":\"x\","
                   "\"verb\":\"create\",\"user\":{\"username\":\"bob\"},\"sourceIPs\":"
                   "[\"10.0.0.7\"],\"objectRef\":{\"resource\":\"pods\",\"namespace\":"
                   "\"kube-system\",\"name\":\"p\",\"subresource\":\"exec\"},"
                   "\"requestURI\":\"/api/v1/namespaces/kube-system/pods/p/exec?command="
                   "%2Fbin%2Fsh\",\"responseStatus\":{\"code\":403},"
                   "\"requestReceivedTimestamp\":\"2024-05-01T10:00:01.000000Z\","
                   "\"requestObject\":{\"spec\":{\"volumes\":[{\"hostPath\":{\"path\":\"/\"}}],"
                   "\"containers\":[{\"securityContext\":{\"capabilities\":{\"add\":"
                   "[\"SYS_ADMIN\"]}}}]}}}" },
    { "sshd", "{\"@timestamp\":\"2024-05-01T10:00:02Z\",\"message\":\"Failed password for "
              "root from 10.0.0.5 port 22 ssh2\",\"process\":{\"name\":\"sshd\"},"
              "\"host\":{\"name\":\"node-1\"}}" },
    { "generic", "{\"message\":\"stopping iptables\",\"time\":\"2024-05-01T09:59:00Z\"}" },
    { "generic", "{\"message\":\"x\",\"time\":\"2099-01-01T00:00:00Z\"}" },
};

static int on_alert(const struct rules_alert *a, void *arg)
{
    const struct ruleset *rs = arg;
    struct buf scratch;
    struct buf enc;
    struct rec r;
    buf_init(&scratch, 1 << 20);
    buf_init(&enc, 1 << 21);
    assert(strlen(a->fingerprint) == 32);
    assert(a->state == RULES_FIRING || a->state == RULES_UPDATE || a->state == RULES_RESOLVED);
    if (rules_alert_to_rec(rs, a, &r, &scratch) == 0) {
        int rc = rec_encode(&r, &enc);
        assert(rc == 0);
    }
    buf_release(&scratch);
    buf_release(&enc);
    return 0;
}

static void run(const struct ruleset *rs)
{
    struct rules_engine *e;
    struct rules_engine *e2;
    struct buf ev[VG_ARRAY_LEN(events)];
    struct buf scratch[VG_ARRAY_LEN(events)];
    struct rec r[VG_ARRAY_LEN(events)];
    bool ok[VG_ARRAY_LEN(events)];
    struct errbuf eb;

    if (rules_engine_new(rs, NULL, &e) != 0) {
        return;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(events); i++) {
        buf_init(&ev[i], 1 << 16);
        buf_init(&scratch[i], 1 << 16);
        ok[i] = json_to_mp(span_str(events[i][1]), &ev[i], NULL, &eb) == 0;
        enum map_source hint = strcmp(events[i][0], "falco") == 0       ? MAP_FALCO
                               : strcmp(events[i][0], "k8s-audit") == 0 ? MAP_K8S_AUDIT
                               : strcmp(events[i][0], "sshd") == 0      ? MAP_SSHD
                                                                        : MAP_GENERIC;
        ok[i] = ok[i] && map_event(hint, buf_span(&ev[i]), 0, "http", &r[i], &scratch[i], &eb) == 0;
        if (ok[i]) {
            r[i].seq = i + 1;
            r[i].has_seq = true;
            r[i].received = r[i].ts;
            r[i].has_received = i != 4;
        }
    }
    for (int round = 0; round < 2; round++) {
        for (size_t k = 0; k < VG_ARRAY_LEN(events); k++) {
            size_t i = round ? VG_ARRAY_LEN(events) - 1 - k : k;
            if (ok[i]) {
                (void)rules_engine_eval(e, &r[i], on_alert, (void *)rs);
            }
        }
    }
    struct buf ck;
    struct buf ck2;
    buf_init(&ck, 1 << 24);
    buf_init(&ck2, 1 << 24);
    if (rules_engine_checkpoint(e, &ck) == 0 && rules_engine_new(rs, NULL, &e2) == 0) {
        int n1 = rules_engine_restore(e2, buf_span(&ck));
        assert(n1 >= 0);
        if (rules_engine_checkpoint(e2, &ck2) == 0) {
            struct rules_engine *e3;
            if (rules_engine_new(rs, NULL, &e3) == 0) {
                int n2 = rules_engine_restore(e3, buf_span(&ck2));
                assert(n2 == n1);
                rules_engine_free(e3);
            }
        }
        (void)rules_engine_advance(e2, INT64_MAX - 1, on_alert, (void *)rs);
        rules_engine_free(e2);
    }
    (void)rules_engine_flush(e, on_alert, (void *)rs);
    struct rules_stats st;
    rules_engine_stats(e, NULL, &st);
    assert(st.groups == 0);
    buf_release(&ck);
    buf_release(&ck2);
    for (size_t i = 0; i < VG_ARRAY_LEN(events); i++) {
        buf_release(&ev[i]);
        buf_release(&scratch[i]);
    }
    rules_engine_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rules_report rep;
    struct ruleset *rs = NULL;
    struct errbuf eb;

    rules_report_init(&rep);
    errbuf_clear(&eb);
    if (rules_load_mem("fuzz.yml", data, size, NULL, &rs, &rep, &eb) == 0) {
        assert(rep.loaded + rep.unsupported + rep.invalid == rep.n);
        assert(rep.loaded == ruleset_count(rs));
        for (size_t i = 0; i < rep.n; i++) {
            assert((rep.items[i].status == RULES_LOADED) == (rep.items[i].reason == NULL));
        }
        for (size_t i = 0; i < ruleset_count(rs); i++) {
            struct rules_rule_info info;
            ruleset_rule_info(rs, i, &info);
            assert(info.title && info.title[0]);
        }
        if (ruleset_count(rs) > 0) {
            run(rs);
        }
        ruleset_free(rs);
    }
    rules_report_release(&rep);
    return 0;
}
