/* schemas/map_k8s.c: Kubernetes audit events (audit.k8s.io/v1 and v1beta1 Event, one
 * item of an EventList) to records. FORMATS.md section 2.
 *
 * Choices (also in schemas/event.yaml):
 *  - ts: requestReceivedTimestamp, else stageTimestamp, else timestamp, else
 *    metadata.creationTimestamp (the last two have second precision);
 *  - user: impersonatedUser.username when present (RBAC decided for them), else
 *    user.username;
 *  - object: objectRef resource[/name][/subresource], the order of the REST path
 *    ("pods/web-1/exec", "secrets/db", "clusterroles"); for non-resource requests the
 *    requestURI path ("/apis");
 *  - outcome from responseStatus.code: success for 1xx-3xx (101 is exec/attach's
 *    upgrade), failure for 4xx/5xx;
 *  - severity: warning for 401/403 (denied), notice for other successes (2xx/101: a
 *    change or read that happened), info otherwise (no code, 3xx, other errors);
 *  - container_name: the first container= of the requestURI query on exec/attach,
 *    cmdline: the command= values joined with spaces on exec (both URL-decoded);
 *  - message: responseStatus.message (why a request was refused).
 * Pure; any thread. */
#include <string.h>

#include "common/mp.h"
#include "common/time.h"
#include "schemas/map_int.h"

static bool array_first(struct span v, struct span *elem)
{
    struct mp_obj o;

    if (mp_read(&v, &o) != 1 || o.type != MP_ARRAY || o.v.count == 0) {
        return false;
    }
    return mp_take(&v, elem) == 0;
}

static bool needs_decoding(struct span s)
{
    return memchr(s.p, '%', s.n) != NULL || memchr(s.p, '+', s.n) != NULL;
}

/* The next key=value parameter of a URL query; false at the end. */
static bool next_param(struct span *rest, struct span *key, struct span *val)
{
    while (rest->n > 0) {
        const uint8_t *amp = memchr(rest->p, '&', rest->n);
        struct span param = { rest->p, amp ? (size_t)(amp - rest->p) : rest->n };
        span_advance(rest, amp ? param.n + 1 : param.n);
        const uint8_t *eq = memchr(param.p, '=', param.n);
        if (eq) {
            *key = (struct span){ param.p, (size_t)(eq - param.p) };
            *val = (struct span){ eq + 1, param.n - key->n - 1 };
            return true;
        }
    }
    return false;
}

/* container= (the first one) and command= (joined, on exec) of a requestURI query, in
 * two passes so that each computed value is contiguous in scratch. */
static void map_exec_query(struct span uri, bool exec, struct rec *r, struct buf *scratch)
{
    const uint8_t *q = memchr(uri.p, '?', uri.n);
    struct span query;
    struct span rest;
    struct span key;
    struct span val;

    if (!q) {
        return;
    }
    query = (struct span){ q + 1, uri.n - (size_t)(q + 1 - uri.p) };
    rest = query;
    while (next_param(&rest, &key, &val)) {
        if (span_eq_str(key, "container") && val.n) {
            if (needs_decoding(val)) {
                struct map__sb sb;
                map__sb_begin(&sb, scratch);
                map__sb_add_urldec(&sb, val);
                rec_set(r, VG_F_CONTAINER_NAME, map__sb_end(&sb));
            } else {
                rec_set(r, VG_F_CONTAINER_NAME, val);
            }
            break;
        }
    }
    if (!exec) {
        return;
    }
    struct map__sb cmd;
    bool have_cmd = false;
    map__sb_begin(&cmd, scratch);
    rest = query;
    while (next_param(&rest, &key, &val)) {
        if (span_eq_str(key, "command")) {
            if (have_cmd) {
                map__sb_byte(&cmd, ' ');
            }
            map__sb_add_urldec(&cmd, val);
            have_cmd = true;
        }
    }
    struct span c = map__sb_end(&cmd);
    if (have_cmd) {
        rec_set(r, VG_F_CMDLINE, c);
    }
}

static void set_object(struct rec *r, struct buf *scratch, struct span res, struct span name,
                       struct span sub)
{
    if (name.n == 0 && sub.n == 0) {
        rec_set(r, VG_F_OBJECT, res);
        return;
    }
    struct map__sb sb;
    map__sb_begin(&sb, scratch);
    map__sb_add(&sb, res);
    if (name.n) {
        map__sb_byte(&sb, '/');
        map__sb_add(&sb, name);
    }
    if (sub.n) {
        map__sb_byte(&sb, '/');
        map__sb_add(&sb, sub);
    }
    rec_set(r, VG_F_OBJECT, map__sb_end(&sb));
}

static bool first_image(struct span spec, struct span *img)
{
    struct span containers;
    struct span c0;

    return map__get(spec, "containers", &containers) && array_first(containers, &c0) &&
           map__get_str(c0, "image", img);
}

int map__k8s(const struct map__top *t, struct rec *r, struct buf *scratch, struct errbuf *eb)
{
    struct span s;
    struct span v;
    int64_t ns;
    int64_t code;

    if (t->v[MT_KIND].n && !(mp_get_str(t->v[MT_KIND], &s) && span_eq_str(s, "Event"))) {
        errbuf_set(eb, "k8s audit event: kind is not \"Event\"");
        return VG_EFORMAT;
    }
    struct span verb;
    if (!map__str(t->v[MT_VERB], &verb)) {
        errbuf_set(eb, "k8s audit event without a verb");
        return VG_EFORMAT;
    }
    rec_set(r, VG_F_SOURCE, SPAN_LIT("k8s-audit"));
    rec_set(r, VG_F_KIND, SPAN_LIT("audit"));
    rec_set(r, VG_F_ACTION, verb);

    if (map__time(t->v[MT_REQUEST_RECEIVED_TS], &ns) || map__time(t->v[MT_STAGE_TS], &ns) ||
        map__time(t->v[MT_TIMESTAMP], &ns) ||
        (map__get(t->v[MT_METADATA], "creationTimestamp", &v) && map__time(v, &ns))) {
        map__set_ts(r, ns);
    }
    if (map__get_str(t->v[MT_IMPERSONATED_USER], "username", &s) ||
        map__get_str(t->v[MT_USER], "username", &s)) {
        rec_set(r, VG_F_USER, s);
    }
    if (array_first(t->v[MT_SOURCE_IPS], &v) && map__str(v, &s)) {
        map__set_ip(r, VG_F_SRC_IP, s);
    }

    struct span uri = { 0 };
    map__str(t->v[MT_REQUEST_URI], &uri);
    struct span res = { 0 };
    struct span name = { 0 };
    struct span sub = { 0 };
    struct span oref = t->v[MT_OBJECT_REF];
    if (oref.n) {
        if (map__get_str(oref, "namespace", &s)) {
            rec_set(r, VG_F_NAMESPACE, s);
        }
        map__get_str(oref, "resource", &res);
        map__get_str(oref, "name", &name);
        map__get_str(oref, "subresource", &sub);
    }
    if (res.n) {
        if (span_eq_str(res, "pods") && name.n) {
            rec_set(r, VG_F_POD, name);
        }
        set_object(r, scratch, res, name, sub);
    } else if (uri.n) {
        const uint8_t *q = memchr(uri.p, '?', uri.n);
        rec_set(r, VG_F_OBJECT, (struct span){ uri.p, q ? (size_t)(q - uri.p) : uri.n });
    }

    /* exec/attach: the subresource, or the URI path when objectRef is missing. */
    bool exec = span_eq_str(sub, "exec");
    bool attach = span_eq_str(sub, "attach");
    if (sub.n == 0 && uri.n) {
        const uint8_t *q = memchr(uri.p, '?', uri.n);
        struct span path = { uri.p, q ? (size_t)(q - uri.p) : uri.n };
        exec = path.n >= 5 && memcmp(path.p + path.n - 5, "/exec", 5) == 0;
        attach = path.n >= 7 && memcmp(path.p + path.n - 7, "/attach", 7) == 0;
    }
    if ((exec || attach) && uri.n) {
        map_exec_query(uri, exec, r, scratch);
    }

    struct span spec;
    struct span tmpl;
    struct span tspec;
    struct span img;
    if (map__get(t->v[MT_REQUEST_OBJECT], "spec", &spec)) {
        if (first_image(spec, &img) ||
            (map__get(spec, "template", &tmpl) && map__get(tmpl, "spec", &tspec) &&
             first_image(tspec, &img))) {
            rec_set(r, VG_F_IMAGE, img);
        }
    }

    int sev = VG_SEV_INFO;
    if (map__get(t->v[MT_RESPONSE_STATUS], "code", &v) && mp_get_i64(v, &code)) {
        rec_set(r, VG_F_OUTCOME, span_str(map__http_outcome(code)));
        if (code == 401 || code == 403) {
            sev = VG_SEV_WARNING;
        } else if ((code >= 200 && code < 300) || code == 101) {
            sev = VG_SEV_NOTICE;
        }
    }
    map__set_sev(r, sev);
    if (map__get_str(t->v[MT_RESPONSE_STATUS], "message", &s)) {
        rec_set(r, VG_F_MESSAGE, s);
    }
    return 0;
}
