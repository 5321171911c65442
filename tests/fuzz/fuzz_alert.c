/* tests/fuzz/fuzz_alert.c: alert records as the forwarders read them back from the
 * store and the outbox (forwarders/alert.c), over arbitrary bytes: a record is parsed
 * or refused; a parsed one is routed through every sink's payload builder (Alertmanager,
 * PagerDuty, Opsgenie, Slack, webhook), whose bodies must be JSON that parses back.
 * Rejecting is fine; crashing, leaking or reading out of bounds is not. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/time.h"
#include "forwarders/fwd_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct fwd_sink *const sinks[] = {
        &fwd_sink_alertmanager, &fwd_sink_pagerduty, &fwd_sink_opsgenie,
        &fwd_sink_slack,        &fwd_sink_webhook,
    };
    uint8_t *copy = malloc(size ? size : 1);
    struct fwd_alert a;

    memcpy(copy, data, size);
    (void)fwd_alert_candidate((struct span){ copy, size });
    if (fwd_alert_parse((struct span){ copy, size }, 7, &a) == 0) {
        for (size_t i = 0; i < sizeof(sinks) / sizeof(sinks[0]); i++) {
            struct fwd_rcv_cfg rc = { 0 };
            char secret[] = "0123456789abcdef0123456789abcdef";
            rc.name = (char *)"fuzz";
            rc.sink = sinks[i];
            rc.url = (char *)"https://127.0.0.1:1/x";
            rc.url_shown = (char *)"https://127.0.0.1:1";
            rc.secret = secret;
            rc.expire_after_ns = 300 * VG_NS_PER_SEC;
            const struct fwd_alert *one = &a;
            struct http_req req;
            http_req_init(&req);
            if (sinks[i]->build(&rc, &one, 1, 1700000000LL * VG_NS_PER_SEC, &req) == 0) {
                struct buf mp;
                struct errbuf eb;
                buf_init(&mp, 64u << 20);
                int rc2 = json_to_mp(buf_span(&req.body), &mp, NULL, &eb);
                assert(rc2 == 0);
                buf_release(&mp);
            }
            http_req_release(&req);
        }
        struct buf ev;
        buf_init(&ev, 1 << 20);
        (void)!fwd_alert_evidence(&a, &ev);
        buf_release(&ev);
    }
    free(copy);
    return 0;
}
