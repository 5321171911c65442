/* forwarders/sink_opsgenie.c: Opsgenie Alert API (docs.opsgenie.com/docs/alert-api).
 * Create: `POST /v2/alerts` with message (required, at most 130 characters), alias (at
 * most 512: "the key element of Alert De-Duplication"), description (15000), tags (20
 * of 50 characters), details (a map of strings), entity (512), source, priority (P1 to
 * P5); close: `POST /v2/alerts/{alias}/close?identifierType=alias` with source, user,
 * note. Both are answered 202 (processed asynchronously). Authentication is the header
 * `Authorization: GenieKey <key>`; the key is the secret.
 *
 * url is the Alert API endpoint (https://api.opsgenie.com/v2/alerts, or the EU one);
 * alias is the fingerprint, so one incident is one Opsgenie alert and the close finds
 * it. Updates are not sent: a create with an open alias only bumps Opsgenie's counter.
 * Pure; any thread. */
#include <inttypes.h>
#include <string.h>

#include "common/json.h"
#include "common/time.h"
#include "forwarders/fwd_int.h"

/* vigil's eight severities (rank order) onto Opsgenie's P1 (highest) to P5. */
static const char *const og_priority[VG_SEV_COUNT] = {
    "P1", "P1", "P1", "P2", "P3", "P4", "P5", "P5",
};

static int og_build(const struct fwd_rcv_cfg *rc, const struct fwd_alert *const *aa, size_t n,
                    int64_t now_ns, struct http_req *req)
{
    const struct fwd_alert *a = aa[0];
    struct buf *b = &req->body;
    struct buf tmp;
    bool first = true;
    int r = 0;
    size_t ul = strlen(rc->url);

    (void)n;
    (void)now_ns;
    while (ul > 0 && rc->url[ul - 1] == '/') {
        ul--;
    }
    buf_init(&tmp, 16384);
#define J(x) FWD_STEP(r, x)
    if (a->state == FWD_RESOLVED) {
        /* The alias is 32 hex digits: nothing to escape in the path. */
        J(buf_appendf(&tmp, "%.*s/%.*s/close?identifierType=alias", (int)ul, rc->url,
                      (int)a->fingerprint.n, (const char *)a->fingerprint.p));
        J(buf_append_byte(b, '{'));
        J(fwd_json_kv_str(b, &first, "source", SPAN_LIT("vigil")));
        J(fwd_json_kv_str(b, &first, "user", SPAN_LIT("vigil")));
        struct buf note;
        buf_init(&note, 1024);
        char t1[48];
        vg_time_format(a->last_seen, 0, t1, sizeof(t1));
        J(buf_appendf(&note, "resolved: no matching event since %s (%" PRIu64 " in all)", t1,
                      a->count));
        J(fwd_json_kv_str(b, &first, "note", buf_span(&note)));
        buf_release(&note);
        J(buf_append_byte(b, '}'));
    } else {
        J(buf_append(&tmp, rc->url, ul));
        J(buf_append_byte(b, '{'));
        struct buf s;
        buf_init(&s, 8192);
        J(fwd_alert_summary(a, 130, &s));
        J(fwd_json_kv_str(b, &first, "message", buf_span(&s)));
        J(fwd_json_kv_str(b, &first, "alias", a->fingerprint));
        buf_reset(&s);
        if (a->r.str[VG_F_MESSAGE].n) {
            J(buf_append(&s, a->r.str[VG_F_MESSAGE].p, a->r.str[VG_F_MESSAGE].n));
            J(buf_append_str(&s, "\n\n"));
        }
        J(buf_append_str(&s, "Evidence: "));
        J(fwd_alert_evidence(a, &s));
        J(fwd_json_key(b, &first, "description"));
        J(fwd_json_str_cut(b, buf_span(&s), 15000));
        buf_release(&s);
        J(fwd_json_key(b, &first, "tags"));
        J(buf_append_byte(b, '['));
        size_t nt = 0;
        for (size_t i = 0; i < a->ntags && nt < 20; i++) {
            if (a->tags[i].n == 0 || a->tags[i].n > 50) {
                continue; /* Opsgenie: at most 20 tags of 50 characters */
            }
            J(nt++ ? buf_append_byte(b, ',') : 0);
            J(json_append_str(b, a->tags[i]));
        }
        J(buf_append_byte(b, ']'));
        /* details: a map of strings only */
        J(fwd_json_key(b, &first, "details"));
        J(buf_append_byte(b, '{'));
        bool f2 = true;
        J(fwd_json_kv_str(b, &f2, "incident", a->incident));
        J(fwd_json_kv_str(b, &f2, "rule_id", a->rule_id));
        struct buf num;
        buf_init(&num, 64);
        J(buf_appendf(&num, "%" PRIu64, a->count));
        J(fwd_json_kv_str(b, &f2, "count", buf_span(&num)));
        buf_release(&num);
        char t[48];
        vg_time_format(a->first_seen, 3, t, sizeof(t));
        J(fwd_json_kv_str(b, &f2, "first_seen", span_str(t)));
        vg_time_format(a->last_seen, 3, t, sizeof(t));
        J(fwd_json_kv_str(b, &f2, "last_seen", span_str(t)));
        for (size_t i = 0; i < a->ngroup; i++) {
            struct buf k;
            buf_init(&k, 256);
            J(buf_append_str(&k, "group."));
            J(buf_append(&k, a->group[i].k.p, a->group[i].k.n < 64 ? a->group[i].k.n : 64));
            J(buf_append_byte(b, ','));
            J(json_append_str(b, buf_span(&k)));
            J(buf_append_byte(b, ':'));
            J(fwd_json_str_cut(b, a->group[i].v, 256));
            buf_release(&k);
        }
        J(buf_append_byte(b, '}'));
        struct span ent = a->r.str[VG_F_POD].n ? a->r.str[VG_F_POD] : a->r.str[VG_F_HOST];
        if (ent.n) {
            J(fwd_json_key(b, &first, "entity"));
            J(fwd_json_str_cut(b, ent, 512));
        }
        J(fwd_json_kv_str(b, &first, "source", SPAN_LIT("vigil")));
        J(fwd_json_kv_str(b, &first, "priority", span_str(og_priority[a->severity])));
        J(buf_append_byte(b, '}'));
    }
    size_t len;
    if (r == 0) {
        req->url = (char *)buf_detach(&tmp, &len);
    }
    buf_release(&tmp);
    J(http_req_header(req, "Content-Type: application/json"));
    J(http_req_header(req, "Authorization: GenieKey %s", rc->secret));
#undef J
    return r;
}

const struct fwd_sink fwd_sink_opsgenie = {
    .type = "opsgenie",
    .wants = { [FWD_FIRING] = true, [FWD_UPDATE] = false, [FWD_RESOLVED] = true },
    .max_batch = 1,
    .default_rate = 600,
    .secret_required = true,
    .build = og_build,
};
