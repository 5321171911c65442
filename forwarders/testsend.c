/* forwarders/testsend.c: `vigil alerts test RECEIVER`: a test alert built like a rule's
 * (kind=alert, source=rule, schemas/alert.md), sent to one forwarder with a loop of its
 * own, then its resolve where the receiver has one (so a pager is not left ringing),
 * with what the receiver answered each time. Blocks; the CLI's thread. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/mp.h"
#include "common/time.h"
#include "forwarders/fwd_int.h"

struct test_ctx {
    bool done;
    long status;
    int rc;
    char error[300];
    struct buf body;
    int64_t took_ns;
};

static void on_done(void *arg, const struct http_resp *resp)
{
    struct test_ctx *t = arg;
    t->done = true;
    t->rc = resp->rc;
    t->status = resp->status;
    t->took_ns = resp->took_ns;
    snprintf(t->error, sizeof(t->error), "%s", resp->error);
    buf_reset(&t->body);
    fwd_ignore(buf_append(&t->body, resp->body.data, resp->body.len));
}

/* The test alert's record: what the rules engine would write for a detection. */
static int build_record(const char *receiver, enum fwd_state st, int64_t first, int64_t now,
                        struct buf *out)
{
    struct buf raw;
    char fp[33];
    uint8_t h[VG_SHA256_LEN];
    char inc[80];
    char msg[200];
    struct rec r;
    int rc = 0;

    buf_init(&raw, 4096);
    {
        char seed[160];
        snprintf(seed, sizeof(seed), "vigil-test-alert/%s/%" PRId64, receiver, first);
        vg_sha256(seed, strlen(seed), h);
        vg_hex(h, 16, fp);
    }
    snprintf(inc, sizeof(inc), "%s-%" PRId64, fp, first);
#define P(x) FWD_STEP(rc, x)
    P(mp_put_map(&raw, 12));
    P(mp_put_cstr(&raw, "rule_id"));
    P(mp_put_cstr(&raw, "vigil-test-alert"));
    P(mp_put_cstr(&raw, "title"));
    P(mp_put_cstr(&raw, "vigil test alert"));
    P(mp_put_cstr(&raw, "level"));
    P(mp_put_cstr(&raw, "low"));
    P(mp_put_cstr(&raw, "type"));
    P(mp_put_cstr(&raw, "detection"));
    P(mp_put_cstr(&raw, "fingerprint"));
    P(mp_put_cstr(&raw, fp));
    P(mp_put_cstr(&raw, "incident"));
    P(mp_put_cstr(&raw, inc));
    P(mp_put_cstr(&raw, "state"));
    P(mp_put_cstr(&raw, fwd_state_name(st)));
    P(mp_put_cstr(&raw, "count"));
    P(mp_put_u64(&raw, 1));
    P(mp_put_cstr(&raw, "first_seen"));
    P(mp_put_i64(&raw, first));
    P(mp_put_cstr(&raw, "last_seen"));
    P(mp_put_i64(&raw, first));
    P(mp_put_cstr(&raw, "group"));
    P(mp_put_map(&raw, 1));
    P(mp_put_cstr(&raw, "receiver"));
    P(mp_put_cstr(&raw, receiver));
    P(mp_put_cstr(&raw, "tags"));
    P(mp_put_array(&raw, 1));
    P(mp_put_cstr(&raw, "vigil.test"));
    char host[256] = "vigil";
    if (gethostname(host, sizeof(host) - 1) != 0) {
        snprintf(host, sizeof(host), "vigil");
    }
    snprintf(msg, sizeof(msg), "vigil test alert for forwarder '%s' (vigil alerts test): %s",
             receiver, st == FWD_RESOLVED ? "resolved" : "nothing is wrong");
    rec_init(&r);
    r.ts = now;
    r.has_ts = true;
    r.received = now;
    r.has_received = true;
    rec_set(&r, VG_F_AGENT, SPAN_LIT("vigild"));
    rec_set(&r, VG_F_SOURCE, SPAN_LIT("rule"));
    rec_set(&r, VG_F_KIND, SPAN_LIT("alert"));
    rec_set(&r, VG_F_SEVERITY, SPAN_LIT("notice"));
    rec_set(&r, VG_F_HOST, span_str(host));
    rec_set(&r, VG_F_RULE, SPAN_LIT("vigil test alert"));
    rec_set(&r, VG_F_MESSAGE, span_str(msg));
    r.raw = buf_span(&raw);
    P(rec_encode(&r, out));
#undef P
    buf_release(&raw);
    return rc;
}

/* Sends one state; prints the answer; returns 0 (2xx), 1 (other) or a negative code. */
static int send_one(uv_loop_t *loop, struct http_client *hc, const struct fwd_rcv_cfg *rc,
                    enum fwd_state st, int64_t first, FILE *report)
{
    struct buf recb;
    struct fwd_alert a;
    struct test_ctx t = { 0 };
    struct http_req req;
    int64_t now = vg_now_ns();
    int err;

    buf_init(&recb, 1 << 20);
    buf_init(&t.body, HTTP_MAX_RESP_BODY);
    if ((err = build_record(rc->name, st, first, now, &recb)) < 0 ||
        (err = fwd_alert_parse(buf_span(&recb), 0, &a)) < 0) {
        buf_release(&recb);
        buf_release(&t.body);
        return err;
    }
    const struct fwd_alert *one = &a;
    http_req_init(&req);
    req.ca_file = rc->ca_file;
    req.connect_timeout_ns = rc->connect_timeout_ns;
    req.timeout_ns = rc->timeout_ns;
    if ((err = rc->sink->build(rc, &one, 1, now, &req)) < 0) {
        http_req_release(&req);
        buf_release(&recb);
        buf_release(&t.body);
        return err;
    }
    http_client_send(hc, &req, on_done, &t);
    while (!t.done) {
        uv_run(loop, UV_RUN_ONCE);
    }
    char shown[600];
    struct buf b;
    buf_init(&b, 1024);
    fwd_ignore(buf_append_escaped(&b, buf_span(&t.body), 400));
    snprintf(shown, sizeof(shown), "%s", b.len ? buf_cstr(&b) : "");
    buf_release(&b);
    fwd_redact(rc, shown);
    fwd_redact(rc, t.error);
    int result;
    if (t.rc != 0) {
        fprintf(report, "%s: %s %s: no answer after %.0f ms: %s\n", rc->name, fwd_state_name(st),
                rc->url_shown, (double)t.took_ns / 1e6, t.error);
        result = 1;
    } else {
        enum fwd_outcome oc = fwd_classify(t.status);
        fprintf(report, "%s: %s %s: HTTP %ld in %.0f ms (%s)%s%s\n", rc->name, fwd_state_name(st),
                rc->url_shown, t.status, (double)t.took_ns / 1e6,
                oc == FWD_DELIVERED ? "accepted"
                : oc == FWD_RETRY   ? "would be retried"
                                    : "would be a dead letter",
                shown[0] ? ": " : "", shown);
        result = oc == FWD_DELIVERED ? 0 : 1;
    }
    buf_release(&recb);
    buf_release(&t.body);
    return result;
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

int fwd_test_send(const struct vg_config *cfg, const char *receiver, FILE *report,
                  struct errbuf *eb)
{
    struct fwd_rcv_cfg *rc = NULL;
    size_t i;
    int err;

    for (i = 0; i < cfg->nforwarders; i++) {
        if (strcmp(cfg->forwarders[i].name, receiver) == 0) {
            break;
        }
    }
    if (i == cfg->nforwarders) {
        errbuf_set(eb, "no forwarder named '%s' in the configuration", receiver);
        return -ENOENT;
    }
    if ((err = fwd_rcv_cfg_new(cfg, i, &rc, eb)) < 0) {
        return err;
    }
    uv_loop_t loop;
    struct http_client *hc = NULL;
    uv_loop_init(&loop);
    if ((err = http_client_new(&loop, &hc)) < 0) {
        errbuf_set(eb, "cannot start the HTTP client: %s", vg_strerror(err));
        fwd_rcv_cfg_free(rc);
        uv_loop_close(&loop);
        return err;
    }
    int64_t first = vg_now_ns();
    int result = send_one(&loop, hc, rc, FWD_FIRING, first, report);
    if (result == 0 && rc->sink->wants[FWD_RESOLVED]) {
        result = send_one(&loop, hc, rc, FWD_RESOLVED, first, report);
    }
    bool closed = false;
    http_client_close(hc, on_closed, &closed);
    while (!closed) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    fwd_rcv_cfg_free(rc);
    if (result < 0) {
        errbuf_set(eb, "cannot build the test alert: %s", vg_strerror(result));
    }
    return result;
}
