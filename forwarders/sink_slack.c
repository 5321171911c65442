/* forwarders/sink_slack.c: a Slack incoming webhook (api.slack.com/messaging/webhooks:
 * `POST` a JSON body with "text", mrkdwn formatted; answered 200 "ok"; 400
 * invalid_payload, 403 action_prohibited, 404 channel_not_found, 410
 * channel_is_archived, per Slack's changelog "Improving error conditions for Incoming
 * Webhooks"; 429 over one message a second).
 *
 * One readable message per firing and per resolve (updates are not posted: a channel
 * wants one line per incident, not one per minute): state, rule, severity, who and
 * where, the count and window, and the evidence command. Text from events is escaped
 * (&, <, >) so that an attacker-chosen value cannot ping @channel or forge a link.
 * Pure; any thread. */
#include <inttypes.h>

#include "common/time.h"
#include "common/xalloc.h"
#include "forwarders/fwd_int.h"

/* Slack's three control characters, and no control bytes. */
static int put_escaped(struct buf *b, struct span s, size_t max)
{
    int r = 0;
    size_t n = s.n < max ? s.n : max;
    for (size_t i = 0; i < n && r == 0; i++) {
        uint8_t c = s.p[i];
        if (c == '&') {
            r = buf_append_str(b, "&amp;");
        } else if (c == '<') {
            r = buf_append_str(b, "&lt;");
        } else if (c == '>') {
            r = buf_append_str(b, "&gt;");
        } else if (c < 0x20 || c == 0x7f) {
            r = buf_append_byte(b, ' ');
        } else if (c == '`') {
            r = buf_append_byte(b, '\'');
        } else {
            r = buf_append_byte(b, c);
        }
    }
    if (r == 0 && s.n > max) {
        r = buf_append_str(b, "...");
    }
    return r;
}

static int slack_build(const struct fwd_rcv_cfg *rc, const struct fwd_alert *const *aa, size_t n,
                       int64_t now_ns, struct http_req *req)
{
    const struct fwd_alert *a = aa[0];
    struct buf t;
    int r = 0;
    char t0[48];
    char t1[48];

    (void)n;
    (void)now_ns;
    req->url = xstrdup(rc->url);
    buf_init(&t, 16384);
#define J(x) FWD_STEP(r, x)
    J(buf_appendf(&t, "%s *%s* ",
                  a->state == FWD_RESOLVED ? ":white_check_mark:" : ":rotating_light:",
                  a->state == FWD_RESOLVED ? "RESOLVED" : "FIRING"));
    if (a->drill.n) {
        J(buf_append_str(&t, "[drill] "));
    }
    J(put_escaped(&t, a->title, 200));
    J(buf_appendf(&t, " (%s", vg_severity_name(a->severity)));
    if (a->level.n) {
        J(buf_append_str(&t, ", Sigma level "));
        J(put_escaped(&t, a->level, 20));
    }
    J(buf_append_str(&t, ")\n"));
    /* who and where */
    bool any = false;
    for (size_t i = 0; i < a->ngroup; i++) {
        J(buf_append_str(&t, any ? ", " : "• who/where: "));
        any = true;
        J(put_escaped(&t, a->group[i].k, 64));
        J(buf_append_byte(&t, '='));
        J(put_escaped(&t, a->group[i].v, 200));
    }
    static const enum vg_field show[] = { VG_F_NAMESPACE, VG_F_POD, VG_F_HOST, VG_F_USER,
                                          VG_F_SRC_IP };
    for (size_t i = 0; i < VG_ARRAY_LEN(show); i++) {
        struct span v = a->r.str[show[i]];
        bool in_group = false;
        for (size_t g = 0; g < a->ngroup; g++) {
            in_group = in_group || span_eq_str(a->group[g].k, vg_field_name(show[i]));
        }
        if (v.n && !in_group) {
            J(buf_append_str(&t, any ? ", " : "• who/where: "));
            any = true;
            J(buf_appendf(&t, "%s=", vg_field_name(show[i])));
            J(put_escaped(&t, v, 200));
        }
    }
    if (any) {
        J(buf_append_byte(&t, '\n'));
    }
    vg_time_format(a->first_seen, 0, t0, sizeof(t0));
    vg_time_format(a->last_seen, 0, t1, sizeof(t1));
    J(buf_appendf(&t, "• count: %" PRIu64 " event%s, %s to %s\n", a->count,
                  a->count == 1 ? "" : "s", t0, t1));
    if (a->r.str[VG_F_MESSAGE].n) {
        J(buf_append_str(&t, "• "));
        J(put_escaped(&t, a->r.str[VG_F_MESSAGE], 500));
        J(buf_append_byte(&t, '\n'));
    }
    J(buf_append_str(&t, "• evidence: `"));
    struct buf ev;
    buf_init(&ev, 4096);
    J(fwd_alert_evidence(a, &ev));
    J(put_escaped(&t, buf_span(&ev), 2000));
    buf_release(&ev);
    J(buf_append_str(&t, "`\n"));
    if (a->drill.n) {
        J(buf_append_str(&t, "• fire drill "));
        J(put_escaped(&t, a->drill, 128));
        J(buf_append_str(&t, ": a test of the pipeline, not an incident\n"));
    }
    J(buf_append_str(&t, "• fingerprint "));
    J(put_escaped(&t, a->fingerprint, 64));
    bool first = true;
    J(buf_append_byte(&req->body, '{'));
    J(fwd_json_kv_str(&req->body, &first, "text", buf_span(&t)));
    J(buf_append_byte(&req->body, '}'));
    J(http_req_header(req, "Content-Type: application/json"));
#undef J
    buf_release(&t);
    return r;
}

const struct fwd_sink fwd_sink_slack = {
    .type = "slack",
    .wants = { [FWD_FIRING] = true, [FWD_UPDATE] = false, [FWD_RESOLVED] = true },
    .max_batch = 1,
    .default_rate = 60, /* Slack: one message a second per webhook */
    .secret_required = false,
    .build = slack_build,
};
