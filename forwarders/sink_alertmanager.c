/* forwarders/sink_alertmanager.c: Prometheus Alertmanager, API v2 `POST /api/v2/alerts`
 * (alertmanager api/v2/openapi.yaml: postableAlerts, an array of postableAlert:
 * labels (labelSet, required), annotations (labelSet), startsAt, endsAt (date-time),
 * generatorURL; answered 200, 400 for a bad body).
 *
 * An alert's identity in Alertmanager is its label set, so the labels hold only what
 * stays the same for the whole incident: alertname (the rule's title), severity,
 * level, rule_id, fingerprint, the group-by values and the incident's namespace, pod,
 * host and user where present; the rest (counts, seqs, the evidence command, other
 * fields) are annotations. Firing
 * alerts carry endsAt = now + expire_after and are posted again every resend_every
 * (forwarders.c), as Prometheus does, so Alertmanager keeps them active while vigil
 * does and expires them by itself if vigild stops; a resolve carries the time the
 * incident resolved. Many alerts go in one request. Pure; any thread. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "forwarders/fwd_int.h"

#define AM_LABEL_MAX 128

/* Prometheus label names: [a-zA-Z_][a-zA-Z0-9_]*; anything else becomes '_'. */
static void label_name(struct span k, char out[AM_LABEL_MAX])
{
    size_t n = 0;

    for (size_t i = 0; i < k.n && n + 2 < AM_LABEL_MAX; i++) {
        uint8_t c = k.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (c >= '0' && c <= '9' && n > 0);
        if (n == 0 && c >= '0' && c <= '9') {
            out[n++] = '_';
            ok = true;
        }
        out[n++] = ok ? (char)c : '_';
    }
    if (n == 0) {
        out[n++] = '_';
    }
    /* Names starting with "__" are Prometheus's own. */
    if (n >= 2 && out[0] == '_' && out[1] == '_') {
        out[0] = 'x';
    }
    out[n] = 0;
}

/* The label set as it is built: names already used (Alertmanager refuses duplicates). */
struct labels {
    char names[5 + FWD_ALERT_MAX_GROUP + 4][AM_LABEL_MAX];
    size_t n;
    bool first;
};

/* Adds name=value unless the name is taken or the value empty (Alertmanager refuses
 * empty label values). */
static int add_label(struct buf *b, struct labels *l, const char *name, struct span v)
{
    if (v.n == 0 || l->n == VG_ARRAY_LEN(l->names)) {
        return 0;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->names[i], name) == 0) {
            return 0;
        }
    }
    snprintf(l->names[l->n++], AM_LABEL_MAX, "%s", name);
    return fwd_json_kv_str(b, &l->first, name, v);
}

static int put_alert(const struct fwd_rcv_cfg *rc, const struct fwd_alert *a, int64_t now_ns,
                     struct buf *b)
{
    bool first = true;
    bool f2;
    int rc_ = buf_append_str(b, "{\"labels\":{");

#define J(x) FWD_STEP(rc_, x)
    struct labels *l = xcalloc(1, sizeof(*l));
    l->first = true;
    J(add_label(b, l, "alertname", a->title));
    J(add_label(b, l, "severity", span_str(vg_severity_name(a->severity))));
    J(add_label(b, l, "level", a->level));
    J(add_label(b, l, "rule_id", a->rule_id));
    J(add_label(b, l, "fingerprint", a->fingerprint));
    for (size_t i = 0; i < a->ngroup; i++) {
        char name[AM_LABEL_MAX];
        label_name(a->group[i].k, name);
        J(add_label(b, l, name, a->group[i].v));
    }
    /* the incident's identity fields (schemas/alert.md: "of the incident") */
    static const enum vg_field ident[] = { VG_F_NAMESPACE, VG_F_POD, VG_F_HOST, VG_F_USER };
    for (size_t i = 0; i < VG_ARRAY_LEN(ident); i++) {
        J(add_label(b, l, vg_field_name(ident[i]), a->r.str[ident[i]]));
    }
    free(l);
    J(buf_append_str(b, "},\"annotations\":{"));
    f2 = true;
    struct buf tmp;
    buf_init(&tmp, 8192);
    if (a->r.str[VG_F_MESSAGE].n) {
        J(fwd_json_kv_str(b, &f2, "summary", a->r.str[VG_F_MESSAGE]));
    } else {
        J(fwd_alert_summary(a, 1000, &tmp));
        J(fwd_json_kv_str(b, &f2, "summary", buf_span(&tmp)));
    }
    buf_reset(&tmp);
    char t0[48];
    char t1[48];
    vg_time_format(a->first_seen, 3, t0, sizeof(t0));
    vg_time_format(a->last_seen, 3, t1, sizeof(t1));
    J(buf_appendf(&tmp, "%" PRIu64 " triggering event%s from %s to %s (vigil incident %.*s, %s)",
                  a->count, a->count == 1 ? "" : "s", t0, t1, (int)a->incident.n,
                  (const char *)a->incident.p, fwd_state_name(a->state)));
    J(fwd_json_kv_str(b, &f2, "description", buf_span(&tmp)));
    buf_reset(&tmp);
    J(fwd_alert_evidence(a, &tmp));
    J(fwd_json_kv_str(b, &f2, "evidence", buf_span(&tmp)));
    buf_reset(&tmp);
    for (size_t i = 0; i < a->nseqs; i++) {
        J(buf_appendf(&tmp, "%s%" PRIu64, i ? "," : "", a->seqs[i]));
    }
    if (a->seqs_total > a->nseqs) {
        J(buf_appendf(&tmp, " (%zu of %" PRIu64 ")", a->nseqs, a->seqs_total));
    }
    J(fwd_json_kv_str(b, &f2, "seqs", buf_span(&tmp)));
    buf_reset(&tmp);
    J(buf_appendf(&tmp, "%" PRIu64, a->count));
    J(fwd_json_kv_str(b, &f2, "count", buf_span(&tmp)));
    J(fwd_json_kv_str(b, &f2, "incident", a->incident));
    J(fwd_json_kv_str(b, &f2, "first_seen", span_str(t0)));
    J(fwd_json_kv_str(b, &f2, "last_seen", span_str(t1)));
    for (size_t i = 0; i < FWD_NIDENTITY; i++) {
        enum vg_field f = fwd_identity[i];
        if (a->r.str[f].n) {
            J(fwd_json_kv_str(b, &f2, vg_field_name(f), a->r.str[f]));
        }
    }
    if (a->drill.n) {
        J(fwd_json_kv_str(b, &f2, "drill", a->drill));
    }
    buf_release(&tmp);
    J(buf_append_byte(b, '}'));
    /* startsAt: when the incident's first event happened. endsAt: in the future while
     * firing (Alertmanager's own resolve_timeout would otherwise apply), the resolve
     * time once resolved, never before startsAt nor after now. */
    int64_t ends;
    if (a->state == FWD_RESOLVED) {
        ends = a->ts < now_ns ? a->ts : now_ns;
        if (ends < a->first_seen) {
            ends = a->first_seen;
        }
    } else {
        ends = now_ns + rc->expire_after_ns;
    }
    first = false; /* after "labels" and "annotations" */
    J(fwd_json_kv_time(b, &first, "startsAt", a->first_seen));
    J(fwd_json_kv_time(b, &first, "endsAt", ends));
    J(buf_append_byte(b, '}'));
#undef J
    return rc_;
}

static int am_build(const struct fwd_rcv_cfg *rc, const struct fwd_alert *const *a, size_t n,
                    int64_t now_ns, struct http_req *req)
{
    size_t ul = strlen(rc->url);
    int r = 0;

    while (ul > 0 && rc->url[ul - 1] == '/') {
        ul--;
    }
    static const char path[] = "/api/v2/alerts";
    bool has_path = ul >= sizeof(path) - 1 &&
                    memcmp(rc->url + ul - (sizeof(path) - 1), path, sizeof(path) - 1) == 0;
    struct buf u;
    buf_init(&u, ul + sizeof(path) + 1);
    if (buf_append(&u, rc->url, ul) < 0 || (!has_path && buf_append_str(&u, path) < 0)) {
        buf_release(&u);
        return VG_ELIMIT;
    }
    size_t len;
    req->url = (char *)buf_detach(&u, &len);
    r = buf_append_byte(&req->body, '[');
    for (size_t i = 0; i < n && r == 0; i++) {
        if (i) {
            r = buf_append_byte(&req->body, ',');
        }
        if (r == 0) {
            r = put_alert(rc, a[i], now_ns, &req->body);
        }
    }
    if (r == 0) {
        r = buf_append_byte(&req->body, ']');
    }
    if (r == 0) {
        r = http_req_header(req, "Content-Type: application/json");
    }
    if (r == 0 && rc->secret) {
        /* an Alertmanager behind an authenticating proxy */
        r = http_req_header(req, "Authorization: Bearer %s", rc->secret);
    }
    return r;
}

const struct fwd_sink fwd_sink_alertmanager = {
    .type = "alertmanager",
    .wants = { [FWD_FIRING] = true, [FWD_UPDATE] = true, [FWD_RESOLVED] = true },
    .max_batch = 64,
    .default_rate = 6000, /* a local service; its batches carry 64 alerts */
    .secret_required = false,
    .build = am_build,
};
