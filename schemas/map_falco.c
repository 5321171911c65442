/* schemas/map_falco.c: Falco alerts (json_output) to records. FORMATS.md section 1.
 *
 * output_fields is flat: "k8s.pod.name" is one key, never a path. Keys are matched
 * exactly (the gcpaudit example's "gcp.userAgent " with a trailing space is not
 * "gcp.userAgent"; it stays in raw). Values may be strings, ints, null or "<NA>"; the
 * last two mean absent. Pure; any thread. */
#include <string.h>

#include "common/mp.h"
#include "common/time.h"
#include "schemas/map_int.h"

/* Sorted by (len, bytes): see map__key_find. */
const struct map__keydef map__falco_keys[] = {
    { "fd.cip", 6, MF_FD_CIP },
    { "fd.sip", 6, MF_FD_SIP },
    { "fd.name", 7, MF_FD_NAME },
    { "ka.verb", 7, MF_KA_VERB },
    { "evt.time", 8, MF_EVT_TIME },
    { "evt.type", 8, MF_EVT_TYPE },
    { "fd.sport", 8, MF_FD_SPORT },
    { "gcp.user", 8, MF_GCP_USER },
    { "proc.name", 9, MF_PROC_NAME },
    { "user.name", 9, MF_USER },
    { "k8s.ns.name", 11, MF_NS },
    { "container.id", 12, MF_CONTAINER_ID },
    { "evt.hostname", 12, MF_EVT_HOSTNAME },
    { "gcp.callerIP", 12, MF_GCP_IP },
    { "k8s.pod.name", 12, MF_POD },
    { "ka.user.name", 12, MF_KA_USER },
    { "proc.cmdline", 12, MF_CMDLINE },
    { "container.name", 14, MF_CONTAINER_NAME },
    { "ka.target.name", 14, MF_KA_NAME },
    { "al.principal.ip", 15, MF_AL_IP },
    { "container.image", 15, MF_IMAGE },
    { "evt.time.iso8601", 16, MF_EVT_TIME_ISO },
    { "ka.response.code", 16, MF_KA_CODE },
    { "ka.target.resource", 18, MF_KA_RESOURCE },
    { "container.image.tag", 19, MF_IMAGE_TAG },
    { "ka.target.namespace", 19, MF_KA_NS },
    { "ka.target.subresource", 21, MF_KA_SUBRESOURCE },
    { "ka.uri.param[command]", 21, MF_KA_COMMAND },
    { "container.image.repository", 26, MF_IMAGE_REPO },
};
const size_t map__falco_nkeys = VG_ARRAY_LEN(map__falco_keys);

/* Falco's event source to our kind: syscall alerts are runtime; Falco's own metrics
 * snapshots (source "internal") are log; plugin sources (k8s_audit, gcp_auditlog,
 * auditlogs, cloudtrail, ...) are audit trails. */
static struct span falco_kind(struct span src)
{
    if (src.n == 0 || span_eq_str(src, "syscall")) {
        return SPAN_LIT("runtime");
    }
    if (span_eq_str(src, "internal")) {
        return SPAN_LIT("log");
    }
    return SPAN_LIT("audit");
}

static bool of_str(const struct span *of, enum map__falco_key k, struct span *out)
{
    return of[k].n > 0 && map__str(of[k], out);
}

/* An int, or a decimal string (ka.response.code is "200"). */
static bool of_int(const struct span *of, enum map__falco_key k, int64_t *out)
{
    struct span s;

    if (of[k].n == 0) {
        return false;
    }
    if (mp_get_i64(of[k], out)) {
        return true;
    }
    return mp_get_str(of[k], &s) && parse_i64(s, INT64_MIN, INT64_MAX, out) == 0;
}

static void set_of(struct rec *r, enum vg_field f, const struct span *of, enum map__falco_key k)
{
    struct span s;

    if (!rec_has(r, f) && of_str(of, k, &s)) {
        rec_set(r, f, s);
    }
}

/* resource[/name][/subresource], the order of the REST path (pods/web-1/exec). */
static void set_k8s_object(struct rec *r, struct buf *scratch, struct span res, struct span name,
                           struct span sub)
{
    if (res.n == 0) {
        return;
    }
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

static void map_output_fields(const struct span *of, struct rec *r, struct buf *scratch)
{
    struct span s;
    struct span repo = { 0 };
    struct span tag = { 0 };
    int64_t n;

    if (!r->has_ts && (of_int(of, MF_EVT_TIME, &n) || of_int(of, MF_EVT_TIME_ISO, &n))) {
        map__set_ts(r, n); /* int64 ns: beyond 2^53, never through a double */
    }
    if (!r->has_ts && of_str(of, MF_EVT_TIME_ISO, &s) && map__rfc3339(s, &n)) {
        map__set_ts(r, n);
    }
    set_of(r, VG_F_HOST, of, MF_EVT_HOSTNAME);
    set_of(r, VG_F_CONTAINER_ID, of, MF_CONTAINER_ID);
    set_of(r, VG_F_CONTAINER_NAME, of, MF_CONTAINER_NAME);
    set_of(r, VG_F_POD, of, MF_POD);
    set_of(r, VG_F_NAMESPACE, of, MF_NS);
    set_of(r, VG_F_NAMESPACE, of, MF_KA_NS);
    set_of(r, VG_F_USER, of, MF_USER);
    set_of(r, VG_F_USER, of, MF_KA_USER);
    set_of(r, VG_F_USER, of, MF_GCP_USER);
    set_of(r, VG_F_PROCESS, of, MF_PROC_NAME);
    set_of(r, VG_F_CMDLINE, of, MF_CMDLINE);
    set_of(r, VG_F_CMDLINE, of, MF_KA_COMMAND);
    set_of(r, VG_F_ACTION, of, MF_EVT_TYPE);
    set_of(r, VG_F_ACTION, of, MF_KA_VERB);
    set_of(r, VG_F_OBJECT, of, MF_FD_NAME);

    /* image: repository ":" tag; the repository can be null and the tag absent. */
    if (of_str(of, MF_IMAGE_REPO, &repo)) {
        if (of_str(of, MF_IMAGE_TAG, &tag)) {
            struct map__sb sb;
            map__sb_begin(&sb, scratch);
            map__sb_add(&sb, repo);
            map__sb_byte(&sb, ':');
            map__sb_add(&sb, tag);
            rec_set(r, VG_F_IMAGE, map__sb_end(&sb));
        } else {
            rec_set(r, VG_F_IMAGE, repo);
        }
    }
    set_of(r, VG_F_IMAGE, of, MF_IMAGE);

    /* Network: fd.cip is the client, fd.sip the server. */
    if (of_str(of, MF_FD_CIP, &s)) {
        map__set_ip(r, VG_F_SRC_IP, s);
    }
    if (of_str(of, MF_FD_SIP, &s)) {
        map__set_ip(r, VG_F_DST_IP, s);
    }
    if (of_int(of, MF_FD_SPORT, &n) && n >= 0 && n <= 65535) {
        r->dst_port = n;
        r->has_dst_port = true;
    }
    if (!rec_has(r, VG_F_SRC_IP) && of_str(of, MF_GCP_IP, &s)) {
        map__set_ip(r, VG_F_SRC_IP, s);
    }
    if (!rec_has(r, VG_F_SRC_IP) && of_str(of, MF_AL_IP, &s)) {
        map__set_ip(r, VG_F_SRC_IP, s); /* "x.x.x.x" in the docs: not an IP, dropped */
    }

    /* k8s_audit alerts (ka.*). */
    struct span res = { 0 };
    struct span name = { 0 };
    struct span sub = { 0 };
    if (of_str(of, MF_KA_RESOURCE, &res)) {
        of_str(of, MF_KA_NAME, &name);
        of_str(of, MF_KA_SUBRESOURCE, &sub);
        if (!rec_has(r, VG_F_POD) && span_eq_str(res, "pods") && name.n) {
            rec_set(r, VG_F_POD, name);
        }
        if (!rec_has(r, VG_F_OBJECT)) {
            set_k8s_object(r, scratch, res, name, sub);
        }
    }
    if (of_int(of, MF_KA_CODE, &n)) {
        rec_set(r, VG_F_OUTCOME, span_str(map__http_outcome(n)));
    }
}

int map__falco(const struct map__top *t, struct rec *r, struct buf *scratch, struct errbuf *eb)
{
    struct span of[MF_COUNT];
    struct span s;
    struct span src = { 0 };
    int64_t ns;

    if (!map__str(t->v[MT_RULE], &s)) {
        errbuf_set(eb, "falco alert without a rule");
        return VG_EFORMAT;
    }
    rec_set(r, VG_F_RULE, s);
    rec_set(r, VG_F_SOURCE, SPAN_LIT("falco"));
    map__str(t->v[MT_SOURCE], &src);
    rec_set(r, VG_F_KIND, falco_kind(src));
    if (map__str(t->v[MT_PRIORITY], &s)) {
        map__set_sev(r, vg_severity_parse(s));
    }
    if (map__str(t->v[MT_OUTPUT], &s)) {
        rec_set(r, VG_F_MESSAGE, s);
    }
    if (map__str(t->v[MT_HOSTNAME], &s)) {
        rec_set(r, VG_F_HOST, s);
    }
    if (map__time(t->v[MT_TIME], &ns)) {
        map__set_ts(r, ns);
    }

    memset(of, 0, sizeof(of));
    if (t->v[MT_OUTPUT_FIELDS].n) {
        struct map__it it;
        struct span k;
        struct span v;
        if (!map__it_init(&it, t->v[MT_OUTPUT_FIELDS])) {
            if (!mp_is_nil(t->v[MT_OUTPUT_FIELDS])) {
                errbuf_set(eb, "falco alert: output_fields is not an object");
                return VG_EFORMAT;
            }
        } else {
            while (map__it_next(&it, &k, &v) > 0) {
                int id = k.p ? map__key_find(map__falco_keys, map__falco_nkeys, k) : -1;
                if (id >= 0 && of[id].n == 0) {
                    of[id] = v;
                }
            }
        }
    }
    map_output_fields(of, r, scratch);
    return 0;
}
