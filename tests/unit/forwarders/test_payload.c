/* tests/unit/forwarders/test_payload.c: alert records as the forwarders read them, and
 * each sink's request against its vendor's documented required fields and types:
 * Alertmanager API v2 postableAlert (alertmanager api/v2/openapi.yaml), PagerDuty Events
 * API v2 (developer-docs events-API-v2/02-Trigger-Events.md), Opsgenie Alert API
 * (docs.opsgenie.com alert-api: create, close by alias), Slack incoming webhooks (a
 * "text"), and vigil's own webhook with its HMAC. Requests are parsed back as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/digest.h"
#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"
#include "forwarders/fwd_int.h"
#include "tests/unit/forwarders/alert_util.h"

#define S  1000000000LL
#define T0 (1700000000LL * S)

static const uint64_t seqs3[] = { 11, 12, 19 };
static const char *const grp[] = {
    "src_ip", "198.18.0.10", "raw.user.name", "bob", "1st", "x", NULL
};
static const char *const tags[] = { "attack.credential_access", "attack.t1110", NULL };

static struct mk base(const char *state)
{
    struct mk m = { 0 };
    m.title = "SSH brute force";
    m.severity = "warning";
    m.level = "medium";
    m.state = state;
    m.incident = state ? "0123456789abcdef0123456789abcdef-1700000000000000000" : NULL;
    m.count = 25;
    m.first_seen = T0;
    m.last_seen = T0 + 60 * S;
    m.ts = state && strcmp(state, "resolved") == 0 ? T0 + 960 * S : T0 + 60 * S;
    m.seqs = seqs3;
    m.nseqs = 3;
    m.group = grp;
    m.tags = tags;
    m.host = "bastion-9";
    m.ns = "shop";
    m.src_ip = "198.18.0.10";
    m.message = "SSH brute force: 25 events within 120s for src_ip=198.18.0.10";
    m.seq = 40;
    return m;
}

/* ---- JSON helpers: requests parsed back with common/json (yajl) ---- */

struct doc {
    struct buf mp;
};

static void parse_json(struct span text, struct doc *d)
{
    struct errbuf eb;
    buf_init(&d->mp, 1 << 22);
    size_t used = 0;
    int rc = json_to_mp(text, &d->mp, &used, &eb);
    if (rc != 0) {
        fprintf(stderr, "not JSON: %s\n%.*s\n", errbuf_msg(&eb), (int)text.n, text.p);
    }
    assert_int_equal(rc, 0);
}

/* The value at a dotted path ("payload.summary"); array items as "[0]". */
static bool get(struct span v, const char *path, struct span *out)
{
    char key[128];
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        if (key[0] == '[') {
            struct mp_obj o;
            long idx = strtol(key + 1, NULL, 10);
            if (mp_read(&v, &o) != 1 || o.type != MP_ARRAY || idx >= (long)o.v.count) {
                return false;
            }
            for (long i = 0; i < idx; i++) {
                assert_int_equal(mp_skip(&v), 0);
            }
            struct span item;
            assert_int_equal(mp_take(&v, &item), 0);
            v = item;
        } else if (mp_map_get(v, span_str(key), &v) != 1) {
            return false;
        }
        path += n + (dot ? 1 : 0);
    }
    *out = v;
    return true;
}

static char *get_str(struct span v, const char *path)
{
    static char s[20000];
    struct span x;
    struct span str;
    if (!get(v, path, &x) || !mp_get_str(x, &str)) {
        return NULL;
    }
    snprintf(s, sizeof(s), "%.*s", (int)str.n, str.p);
    return s;
}

static void build(const struct fwd_sink *sink, const struct fwd_rcv_cfg *rc, const struct mk *m,
                  struct buf *recb, struct fwd_alert *a, struct http_req *req)
{
    buf_reset(recb);
    assert_int_equal(mk_alert(m, recb), 0);
    assert_int_equal(fwd_alert_parse(buf_span(recb), m->seq, a), 0);
    const struct fwd_alert *one = a;
    http_req_init(req);
    assert_int_equal(sink->build(rc, &one, 1, T0 + 1000 * S, req), 0);
}

static const char *header(const struct http_req *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strncmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':') {
            return req->headers[i] + n + 2;
        }
    }
    return NULL;
}

static struct fwd_rcv_cfg rcfg(const struct fwd_sink *sink, const char *url, char *secret)
{
    struct fwd_rcv_cfg rc = { 0 };
    rc.name = (char *)"r1";
    rc.sink = sink;
    rc.url = (char *)url;
    rc.url_shown = (char *)url;
    rc.secret = secret;
    rc.resend_every_ns = 60 * S;
    rc.expire_after_ns = 300 * S;
    return rc;
}

/* ---- records ---- */

static void test_parse_contract_record(void **state)
{
    struct buf b;
    struct fwd_alert a;
    struct mk m = base("update");
    (void)state;

    buf_init(&b, 1 << 20);
    assert_int_equal(mk_alert(&m, &b), 0);
    assert_true(fwd_alert_candidate(buf_span(&b)));
    assert_int_equal(fwd_alert_parse(buf_span(&b), 40, &a), 0);
    assert_int_equal(a.state, FWD_UPDATE);
    assert_true(a.lifecycle);
    assert_true(span_eq_str(a.incident, m.incident));
    assert_true(span_eq_str(a.fingerprint, "0123456789abcdef0123456789abcdef"));
    assert_int_equal(a.count, 25);
    assert_int_equal(a.nseqs, 3);
    assert_int_equal(a.seqs[2], 19);
    assert_int_equal(a.ngroup, 3);
    assert_true(span_eq_str(a.group[1].k, "raw.user.name"));
    assert_int_equal(a.ntags, 2);
    assert_int_equal(a.severity, VG_SEV_WARNING);
    assert_int_equal(a.first_seen, T0);
    assert_int_equal(a.resolve_after, 900 * S);
    buf_release(&b);
}

static void test_parse_precontract_and_others(void **state)
{
    struct buf b;
    struct fwd_alert a;
    struct mk m = base(NULL);
    (void)state;

    buf_init(&b, 1 << 20);
    /* no state, no incident: firing, its own incident at first_seen, no lifecycle */
    assert_int_equal(mk_alert(&m, &b), 0);
    assert_int_equal(fwd_alert_parse(buf_span(&b), 40, &a), 0);
    assert_int_equal(a.state, FWD_FIRING);
    assert_false(a.lifecycle);
    assert_true(span_eq_str(a.incident, "0123456789abcdef0123456789abcdef-1700000000000000000"));
    /* not an alert: other kind, or not written by the rules */
    m.kind = "runtime";
    buf_reset(&b);
    assert_int_equal(mk_alert(&m, &b), 0);
    assert_false(fwd_alert_candidate(buf_span(&b)));
    assert_int_equal(fwd_alert_parse(buf_span(&b), 1, &a), -ENOENT);
    m.kind = "alert";
    m.source = "http"; /* an agent cannot forge a rule's alert */
    buf_reset(&b);
    assert_int_equal(mk_alert(&m, &b), 0);
    assert_int_equal(fwd_alert_parse(buf_span(&b), 1, &a), -ENOENT);
    /* garbage is not an alert */
    assert_int_equal(fwd_alert_parse(SPAN_LIT("\xc1\x00"), 1, &a), -ENOENT);
    buf_release(&b);
}

/* fwd_alert_candidate looks for kind=alert in the first 256 bytes: a record as rules_live
 * writes it (agent "vigild"), even with the largest ts/received/seq and an agent of 150
 * bytes, has it there; every state passes. */
static void test_candidate_prefix(void **state)
{
    struct buf b;
    char agent[151];
    struct mk m = base("firing");
    (void)state;

    buf_init(&b, 1 << 20);
    memset(agent, 'a', 150);
    agent[150] = 0;
    m.agent = agent;
    m.ts = INT64_MIN;
    m.received = INT64_MAX;
    m.seq = UINT64_MAX;
    m.host = "a-very-long-host-name-that-comes-after-kind-in-field-order-anyway";
    assert_int_equal(mk_alert(&m, &b), 0);
    assert_true(fwd_alert_candidate(buf_span(&b)));
    buf_release(&b);
}

static void test_evidence_command(void **state)
{
    struct buf recb;
    struct buf ev;
    struct fwd_alert a;
    struct mk m = base("firing");
    (void)state;

    buf_init(&recb, 1 << 20);
    buf_init(&ev, 4096);
    assert_int_equal(mk_alert(&m, &recb), 0);
    assert_int_equal(fwd_alert_parse(buf_span(&recb), 40, &a), 0);
    assert_int_equal(fwd_alert_evidence(&a, &ev), 0);
    assert_string_equal(buf_cstr(&ev), "vigil search --since 2023-11-14T22:13:19Z --until "
                                       "2023-11-14T22:14:21Z 'seq=11 OR seq=12 OR seq=19'");
    buf_release(&ev);
    buf_release(&recb);
}

/* ---- Alertmanager ---- */

static void test_alertmanager(void **state)
{
    struct buf recb;
    struct fwd_alert a[2];
    struct http_req req;
    struct doc d;
    struct span v;
    struct fwd_rcv_cfg rc = rcfg(&fwd_sink_alertmanager, "http://127.0.0.1:9093/", NULL);
    struct mk firing = base("firing");
    struct mk resolved = base("resolved");
    (void)state;

    buf_init(&recb, 1 << 20);
    struct buf recb2;
    buf_init(&recb2, 1 << 20);
    assert_int_equal(mk_alert(&firing, &recb), 0);
    assert_int_equal(mk_alert(&resolved, &recb2), 0);
    assert_int_equal(fwd_alert_parse(buf_span(&recb), 40, &a[0]), 0);
    assert_int_equal(fwd_alert_parse(buf_span(&recb2), 41, &a[1]), 0);
    const struct fwd_alert *batch[] = { &a[0], &a[1] };
    http_req_init(&req);
    assert_int_equal(fwd_sink_alertmanager.build(&rc, batch, 2, T0 + 1000 * S, &req), 0);
    assert_string_equal(req.url, "http://127.0.0.1:9093/api/v2/alerts");
    assert_string_equal(header(&req, "Content-Type"), "application/json");
    parse_json(buf_span(&req.body), &d);
    /* postableAlerts: an array of postableAlert */
    v = buf_span(&d.mp);
    struct span x;
    assert_true(get(v, "[0].labels", &x));
    assert_string_equal(get_str(v, "[0].labels.alertname"), "SSH brute force");
    assert_string_equal(get_str(v, "[0].labels.severity"), "warning");
    assert_string_equal(get_str(v, "[0].labels.fingerprint"), "0123456789abcdef0123456789abcdef");
    assert_string_equal(get_str(v, "[0].labels.src_ip"), "198.18.0.10");
    /* label names sanitized to [a-zA-Z_][a-zA-Z0-9_]* */
    assert_string_equal(get_str(v, "[0].labels.raw_user_name"), "bob");
    assert_string_equal(get_str(v, "[0].labels._1st"), "x");
    /* the incident's identity fields where present (src_ip is already a group label) */
    assert_string_equal(get_str(v, "[0].labels.namespace"), "shop");
    assert_string_equal(get_str(v, "[0].labels.host"), "bastion-9");
    assert_null(get_str(v, "[0].labels.user"));
    assert_non_null(strstr(get_str(v, "[0].annotations.evidence"), "vigil search --since"));
    assert_string_equal(get_str(v, "[0].annotations.seqs"), "11,12,19");
    assert_string_equal(get_str(v, "[0].annotations.count"), "25");
    assert_string_equal(get_str(v, "[0].annotations.namespace"), "shop");
    assert_string_equal(get_str(v, "[0].startsAt"), "2023-11-14T22:13:20.000Z");
    /* firing: endsAt = now + expire_after; resolved: the resolve time */
    int64_t t;
    assert_int_equal(vg_time_parse_rfc3339(span_str(get_str(v, "[0].endsAt")), &t), 0);
    assert_int_equal(t, T0 + 1300 * S);
    assert_int_equal(vg_time_parse_rfc3339(span_str(get_str(v, "[1].endsAt")), &t), 0);
    assert_int_equal(t, T0 + 960 * S);
    /* every label value and annotation is a string (labelSet) */
    struct span labels;
    assert_true(get(v, "[1].labels", &labels));
    struct mp_obj o;
    assert_int_equal(mp_read(&labels, &o), 1);
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span k;
        struct span val;
        struct span s;
        assert_int_equal(mp_take(&labels, &k), 0);
        assert_int_equal(mp_take(&labels, &val), 0);
        assert_true(mp_get_str(val, &s));
        assert_true(s.n > 0);
    }
    buf_release(&d.mp);
    http_req_release(&req);
    buf_release(&recb);
    buf_release(&recb2);
}

/* ---- PagerDuty ---- */

static void test_pagerduty(void **state)
{
    char key[] = "0123456789abcdef0123456789abcdef";
    struct fwd_rcv_cfg rc =
        rcfg(&fwd_sink_pagerduty, "https://events.pagerduty.com/v2/enqueue", key);
    struct buf recb;
    struct fwd_alert a;
    struct http_req req;
    struct doc d;
    struct mk m = base("firing");
    char longtitle[3000];
    (void)state;

    buf_init(&recb, 1 << 20);
    memset(longtitle, 'T', sizeof(longtitle) - 1);
    longtitle[sizeof(longtitle) - 1] = 0;
    m.title = longtitle;
    m.severity = "critical";
    build(&fwd_sink_pagerduty, &rc, &m, &recb, &a, &req);
    assert_string_equal(req.url, "https://events.pagerduty.com/v2/enqueue");
    parse_json(buf_span(&req.body), &d);
    struct span v = buf_span(&d.mp);
    assert_string_equal(get_str(v, "routing_key"), key);
    assert_string_equal(get_str(v, "event_action"), "trigger");
    assert_string_equal(get_str(v, "dedup_key"), "0123456789abcdef0123456789abcdef");
    /* summary: required, at most 1024 characters */
    assert_true(strlen(get_str(v, "payload.summary")) <= 1024);
    assert_true(strlen(get_str(v, "payload.summary")) > 100);
    assert_string_equal(get_str(v, "payload.severity"), "critical");
    assert_string_equal(get_str(v, "payload.source"), "bastion-9");
    int64_t t;
    assert_int_equal(vg_time_parse_rfc3339(span_str(get_str(v, "payload.timestamp")), &t), 0);
    struct span cd;
    struct mp_obj o;
    assert_true(get(v, "payload.custom_details", &cd));
    assert_int_equal(mp_read(&cd, &o), 1);
    assert_int_equal(o.type, MP_MAP);
    assert_string_equal(get_str(v, "payload.custom_details.incident"), m.incident);
    buf_release(&d.mp);
    http_req_release(&req);

    /* severities: vigil's eight onto critical, error, warning, info */
    static const struct {
        const char *in, *out;
    } sev[] = { { "emergency", "critical" },
                { "error", "error" },
                { "warning", "warning" },
                { "notice", "info" },
                { "debug", "info" } };
    m.title = "t";
    for (size_t i = 0; i < sizeof(sev) / sizeof(sev[0]); i++) {
        m.severity = sev[i].in;
        build(&fwd_sink_pagerduty, &rc, &m, &recb, &a, &req);
        parse_json(buf_span(&req.body), &d);
        assert_string_equal(get_str(buf_span(&d.mp), "payload.severity"), sev[i].out);
        buf_release(&d.mp);
        http_req_release(&req);
    }
    /* resolve: the same dedup_key, no payload needed */
    struct mk r = base("resolved");
    build(&fwd_sink_pagerduty, &rc, &r, &recb, &a, &req);
    parse_json(buf_span(&req.body), &d);
    v = buf_span(&d.mp);
    assert_string_equal(get_str(v, "event_action"), "resolve");
    assert_string_equal(get_str(v, "dedup_key"), "0123456789abcdef0123456789abcdef");
    assert_string_equal(get_str(v, "routing_key"), key);
    buf_release(&d.mp);
    http_req_release(&req);
    buf_release(&recb);
}

/* ---- Opsgenie ---- */

static void test_opsgenie(void **state)
{
    char key[] = "eb243592-faa2-4ba2-a551-1afdf565c889";
    struct fwd_rcv_cfg rc = rcfg(&fwd_sink_opsgenie, "https://api.opsgenie.com/v2/alerts", key);
    struct buf recb;
    struct fwd_alert a;
    struct http_req req;
    struct doc d;
    struct mk m = base("firing");
    (void)state;

    buf_init(&recb, 1 << 20);
    build(&fwd_sink_opsgenie, &rc, &m, &recb, &a, &req);
    assert_string_equal(req.url, "https://api.opsgenie.com/v2/alerts");
    assert_string_equal(header(&req, "Authorization"),
                        "GenieKey eb243592-faa2-4ba2-a551-1afdf565c889");
    parse_json(buf_span(&req.body), &d);
    struct span v = buf_span(&d.mp);
    /* message: required, at most 130 characters */
    assert_true(strlen(get_str(v, "message")) <= 130);
    assert_non_null(strstr(get_str(v, "message"), "SSH brute force"));
    assert_string_equal(get_str(v, "alias"), "0123456789abcdef0123456789abcdef");
    assert_string_equal(get_str(v, "priority"), "P3");
    assert_true(strlen(get_str(v, "description")) <= 15000);
    struct span det;
    struct span gv;
    struct span gs;
    assert_true(get(v, "details", &det));
    assert_int_equal(mp_map_get(det, SPAN_LIT("group.src_ip"), &gv), 1);
    assert_true(mp_get_str(gv, &gs) && span_eq_str(gs, "198.18.0.10"));
    assert_string_equal(get_str(v, "details.count"), "25");
    assert_string_equal(get_str(v, "tags.[1]"), "attack.t1110");
    buf_release(&d.mp);
    http_req_release(&req);
    /* close by alias */
    struct mk r = base("resolved");
    build(&fwd_sink_opsgenie, &rc, &r, &recb, &a, &req);
    assert_string_equal(req.url, "https://api.opsgenie.com/v2/alerts/"
                                 "0123456789abcdef0123456789abcdef/close?identifierType=alias");
    parse_json(buf_span(&req.body), &d);
    assert_string_equal(get_str(buf_span(&d.mp), "source"), "vigil");
    buf_release(&d.mp);
    http_req_release(&req);
    /* updates are not sent to Opsgenie, nor to Slack */
    assert_false(fwd_sink_opsgenie.wants[FWD_UPDATE]);
    assert_false(fwd_sink_slack.wants[FWD_UPDATE]);
    assert_true(fwd_sink_pagerduty.wants[FWD_UPDATE]);
    buf_release(&recb);
}

/* ---- Slack ---- */

static void test_slack(void **state)
{
    struct fwd_rcv_cfg rc = rcfg(&fwd_sink_slack, "https://hooks.slack.com/services/T/B/X", NULL);
    struct buf recb;
    struct fwd_alert a;
    struct http_req req;
    struct doc d;
    struct mk m = base("firing");
    static const char *const evil[] = { "user", "<!channel> & <http://x|click>", NULL };
    (void)state;

    buf_init(&recb, 1 << 20);
    m.group = evil;
    build(&fwd_sink_slack, &rc, &m, &recb, &a, &req);
    parse_json(buf_span(&req.body), &d);
    const char *text = get_str(buf_span(&d.mp), "text");
    assert_non_null(text);
    assert_non_null(strstr(text, "*FIRING*"));
    assert_non_null(strstr(text, "SSH brute force"));
    assert_non_null(strstr(text, "25 events"));
    assert_non_null(strstr(text, "vigil search"));
    /* an attacker's value cannot ping @channel nor make a link */
    assert_null(strstr(text, "<!channel>"));
    assert_non_null(strstr(text, "&lt;!channel&gt; &amp; &lt;http://x|click&gt;"));
    buf_release(&d.mp);
    http_req_release(&req);
    buf_release(&recb);
}

/* ---- fire drills: every receiver is told (schemas/drill.md "Markers") ---- */

static void test_drill_marked(void **state)
{
    static const char run[] = "drill-20261207T124512Z-3fa9c1d2";
    char key[] = "0123456789abcdef0123456789abcdef";
    static const struct {
        const struct fwd_sink *sink;
        const char *url, *path; /* where the marked text is */
        bool prefixed;          /* "[drill] " starts it */
    } cases[] = {
        { &fwd_sink_slack, "https://hooks.slack.com/services/T/B/X", "text", false },
        { &fwd_sink_pagerduty, "https://events.pagerduty.com/v2/enqueue", "payload.summary", true },
        { &fwd_sink_pagerduty, "https://events.pagerduty.com/v2/enqueue",
          "payload.custom_details.drill", false },
        { &fwd_sink_opsgenie, "https://api.opsgenie.com/v2/alerts", "message", true },
        { &fwd_sink_webhook, "https://soar.example/vigil", "drill", false },
    };
    (void)state;

    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        for (int marked = 0; marked < 2; marked++) {
            struct fwd_rcv_cfg rc = rcfg(cases[i].sink, cases[i].url, key);
            struct buf recb;
            struct fwd_alert a;
            struct http_req req;
            struct doc d;
            struct mk m = base("firing");
            buf_init(&recb, 1 << 20);
            m.drill = marked ? run : NULL;
            build(cases[i].sink, &rc, &m, &recb, &a, &req);
            parse_json(buf_span(&req.body), &d);
            const char *text = get_str(buf_span(&d.mp), cases[i].path);
            if (!marked) {
                /* an alert of real traffic says nothing of drills */
                assert_true(text == NULL || strstr(text, "drill") == NULL);
            } else if (cases[i].prefixed) {
                assert_non_null(text);
                assert_int_equal(strncmp(text, "[drill] SSH brute force", 23), 0);
            } else {
                assert_non_null(text);
                assert_non_null(strstr(text, run));
            }
            buf_release(&d.mp);
            http_req_release(&req);
            buf_release(&recb);
        }
    }
}

/* ---- webhook ---- */

static void test_webhook_hmac(void **state)
{
    char secret[] = "hmac-secret-for-tests";
    struct fwd_rcv_cfg rc = rcfg(&fwd_sink_webhook, "https://h.example/hook", secret);
    struct buf recb;
    struct fwd_alert a;
    struct http_req req;
    struct doc d;
    struct mk m = base("resolved");
    uint8_t mac[VG_SHA256_LEN];
    char hex[80];
    char want[100];
    (void)state;

    buf_init(&recb, 1 << 20);
    build(&fwd_sink_webhook, &rc, &m, &recb, &a, &req);
    vg_hmac_sha256(secret, strlen(secret), req.body.data, req.body.len, mac);
    vg_hex(mac, sizeof(mac), hex);
    snprintf(want, sizeof(want), "sha256=%s", hex);
    assert_string_equal(header(&req, "X-Vigil-Signature"), want);
    assert_string_equal(header(&req, "X-Vigil-Event"), "resolved");
    assert_string_equal(header(&req, "X-Vigil-Delivery"), "40");
    parse_json(buf_span(&req.body), &d);
    struct span v = buf_span(&d.mp);
    assert_string_equal(get_str(v, "state"), "resolved");
    assert_string_equal(get_str(v, "rule.title"), "SSH brute force");
    assert_string_equal(get_str(v, "group.src_ip"), "198.18.0.10");
    assert_string_equal(get_str(v, "fields.namespace"), "shop");
    assert_string_equal(get_str(v, "first_seen"), "2023-11-14T22:13:20.000Z");
    buf_release(&d.mp);
    http_req_release(&req);
    /* RFC 4231 test case 2: the HMAC itself */
    vg_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    vg_hex(mac, sizeof(mac), hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    buf_release(&recb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_contract_record),
        cmocka_unit_test(test_parse_precontract_and_others),
        cmocka_unit_test(test_candidate_prefix),
        cmocka_unit_test(test_evidence_command),
        cmocka_unit_test(test_alertmanager),
        cmocka_unit_test(test_pagerduty),
        cmocka_unit_test(test_opsgenie),
        cmocka_unit_test(test_slack),
        cmocka_unit_test(test_drill_marked),
        cmocka_unit_test(test_webhook_hmac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
