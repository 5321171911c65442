/* forwarders/sink_webhook.c: any HTTP endpoint: the alert as vigil's JSON document
 * (fwd_alert_json, schemas/alert.md "Webhook"), one POST per state change (firing,
 * update, resolved). Headers: X-Vigil-Event (the state), X-Vigil-Delivery (the alert
 * record's seq: the same on every retry, so a receiver can drop duplicates) and, when a
 * secret is configured, X-Vigil-Signature: sha256=<hex HMAC-SHA256 of the body under the
 * secret>, so the receiver can check the body came from vigild unaltered. Pure; any
 * thread. */
#include <inttypes.h>

#include "common/digest.h"
#include "common/xalloc.h"
#include "forwarders/fwd_int.h"

static int webhook_build(const struct fwd_rcv_cfg *rc, const struct fwd_alert *const *aa, size_t n,
                         int64_t now_ns, struct http_req *req)
{
    const struct fwd_alert *a = aa[0];
    int r;

    (void)n;
    (void)now_ns;
    req->url = xstrdup(rc->url);
    r = fwd_alert_json(a, rc->name, &req->body);
    if (r == 0) {
        r = http_req_header(req, "Content-Type: application/json");
    }
    if (r == 0) {
        r = http_req_header(req, "X-Vigil-Event: %s", fwd_state_name(a->state));
    }
    if (r == 0) {
        r = http_req_header(req, "X-Vigil-Delivery: %" PRIu64, a->seq);
    }
    if (r == 0 && rc->secret) {
        uint8_t mac[VG_SHA256_LEN];
        char hex[2 * VG_SHA256_LEN + 1];
        vg_hmac_sha256(rc->secret, strlen(rc->secret), req->body.data, req->body.len, mac);
        vg_hex(mac, sizeof(mac), hex);
        r = http_req_header(req, "X-Vigil-Signature: sha256=%s", hex);
    }
    return r;
}

const struct fwd_sink fwd_sink_webhook = {
    .type = "webhook",
    .wants = { [FWD_FIRING] = true, [FWD_UPDATE] = true, [FWD_RESOLVED] = true },
    .max_batch = 1,
    .default_rate = 600,
    .secret_required = false,
    .build = webhook_build,
};
