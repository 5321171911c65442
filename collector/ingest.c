/* collector/ingest.c: what every ingest port shares (see ingest.h). Loop thread. */
#include "collector/ingest.h"

#include <stdarg.h>
#include <stdio.h>

void ingest_self_event(struct ingest_port *p, enum vg_severity sev, const char *action,
                       const char *outcome, const char *src_ip, const char *agent, const char *fmt,
                       ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct ingest_evidence ev = { sev, action, outcome, src_ip, agent, msg, false, { NULL, 0 } };
    p->ops->evidence(p->ctx, &ev);
}

void ingest_evidence_rec(const struct ingest_evidence *ev, const char *host, struct rec *r)
{
    rec_init(r);
    rec_set(r, VG_F_SOURCE, SPAN_LIT("vigil"));
    rec_set(r, VG_F_KIND, SPAN_LIT("log"));
    rec_set(r, VG_F_SEVERITY, span_str(vg_severity_name(ev->sev)));
    rec_set(r, VG_F_ACTION, span_str(ev->action));
    rec_set(r, VG_F_OUTCOME, span_str(ev->outcome));
    rec_set(r, VG_F_SRC_IP, span_str(ev->src_ip));
    rec_set(r, VG_F_HOST, span_str(host));
    rec_set(r, VG_F_AGENT, span_str(ev->agent && *ev->agent ? ev->agent : "vigild"));
    rec_set(r, VG_F_MESSAGE, span_str(ev->message));
    if (ev->raw.n > 0) {
        r->raw = ev->raw;
    }
}

int ingest_keep_rejected(struct ingest_port *p, const char *host, const char *agent,
                         const char *src_ip, const char *message, struct span raw, int64_t ts)
{
    struct ingest_evidence ev = {
        VG_SEV_WARNING, "rejected_input", "failure", src_ip, agent, message, false, raw,
    };
    struct rec r;

    ingest_evidence_rec(&ev, host, &r);
    if (ts != 0) {
        r.ts = ts;
        r.has_ts = true;
    }
    return ingest_add(p, &r);
}
