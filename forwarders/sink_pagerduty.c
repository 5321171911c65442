/* forwarders/sink_pagerduty.c: PagerDuty Events API v2, `POST /v2/enqueue` (PagerDuty
 * developer-docs, events-API-v2/02-Trigger-Events.md: routing_key (required, the
 * 32-character integration key), event_action (required: trigger, acknowledge,
 * resolve), dedup_key (at most 255 characters), payload.summary (required, at most
 * 1024 characters), payload.source (required), payload.severity (required: critical,
 * error, warning or info), payload.timestamp, component, group, class, custom_details
 * (an object); answered 202, 400 for an invalid event, 429 when throttled).
 *
 * dedup_key is the alert's fingerprint, so every trigger of an incident lands on one
 * PagerDuty alert and the resolve closes it ("Submitting subsequent events for the same
 * dedup_key will result in those events being applied to an open alert"); a later
 * incident of the same fingerprint, after the resolve, opens a new one as PagerDuty
 * documents. Updates are triggers with the same dedup_key (a log entry on the open
 * alert, no new page). Pure; any thread. */
#include <inttypes.h>

#include "common/json.h"
#include "common/xalloc.h"
#include "forwarders/fwd_int.h"

/* vigil's eight severities (rank order) onto the four the Events API takes. */
static const char *const pd_severity[VG_SEV_COUNT] = {
    "critical", "critical", "critical", "error", "warning", "info", "info", "info",
};

static int pd_build(const struct fwd_rcv_cfg *rc, const struct fwd_alert *const *aa, size_t n,
                    int64_t now_ns, struct http_req *req)
{
    const struct fwd_alert *a = aa[0];
    struct buf *b = &req->body;
    bool first = true;
    bool f2;
    int r = 0;

    (void)n;
    (void)now_ns;
    req->url = xstrdup(rc->url);
#define J(x) FWD_STEP(r, x)
    J(buf_append_byte(b, '{'));
    J(fwd_json_kv_str(b, &first, "routing_key", span_str(rc->secret)));
    J(fwd_json_kv_str(b, &first, "event_action",
                      span_str(a->state == FWD_RESOLVED ? "resolve" : "trigger")));
    J(fwd_json_kv_str(b, &first, "dedup_key", a->fingerprint));
    if (a->state != FWD_RESOLVED) {
        struct buf tmp;
        buf_init(&tmp, 8192);
        J(fwd_json_kv_str(b, &first, "client", SPAN_LIT("vigil")));
        J(fwd_json_key(b, &first, "payload"));
        J(buf_append_byte(b, '{'));
        f2 = true;
        J(fwd_alert_summary(a, 1024, &tmp));
        J(fwd_json_kv_str(b, &f2, "summary", buf_span(&tmp)));
        /* source: "the unique location of the affected system, preferably a hostname" */
        struct span src = a->r.str[VG_F_HOST];
        if (a->r.str[VG_F_POD].n) {
            src = a->r.str[VG_F_POD];
        }
        J(fwd_json_kv_str(b, &f2, "source", src.n ? src : SPAN_LIT("vigil")));
        J(fwd_json_kv_str(b, &f2, "severity", span_str(pd_severity[a->severity])));
        J(fwd_json_kv_time(b, &f2, "timestamp",
                           a->state == FWD_FIRING ? a->first_seen : a->last_seen));
        if (a->type.n) {
            J(fwd_json_kv_str(b, &f2, "component", a->type));
        }
        if (a->r.str[VG_F_NAMESPACE].n) {
            J(fwd_json_kv_str(b, &f2, "group", a->r.str[VG_F_NAMESPACE]));
        }
        J(fwd_json_kv_str(b, &f2, "class", a->title));
        /* custom_details: vigil's own document, so the responder sees everything. */
        J(fwd_json_key(b, &f2, "custom_details"));
        J(fwd_alert_json(a, rc->name, b));
        J(buf_append_byte(b, '}'));
        buf_release(&tmp);
    }
    J(buf_append_byte(b, '}'));
    J(http_req_header(req, "Content-Type: application/json"));
#undef J
    return r;
}

const struct fwd_sink fwd_sink_pagerduty = {
    .type = "pagerduty",
    .wants = { [FWD_FIRING] = true, [FWD_UPDATE] = true, [FWD_RESOLVED] = true },
    .max_batch = 1,
    .default_rate = 120, /* 05-Rate-Limits.md: "approximately 120 calls/minute per
                            integration key", 429 past it */
    .secret_required = true,
    .build = pd_build,
};
