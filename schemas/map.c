/* schemas/map.c: map_event's dispatch (format detection from the event's shape), the
 * generic mapper, and the helpers the per-format mappers share (map_int.h).
 *
 * One pass over the top-level map collects the values of every key any mapper reads
 * (struct map__top); the chosen mapper then works from those spans and reads nested
 * maps directly. That pass also validates the whole event (mp_take checks each value),
 * so the mappers never meet malformed bytes. Field sources per format:
 * shared/corpus/FORMATS.md; the mapping as data: schemas/event.yaml.
 * Pure; any thread. */
#include "schemas/map.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/mp.h"
#include "common/time.h"
#include "schemas/map_int.h"

/* Sorted by (len, bytes): see map__key_find. */
const struct map__keydef map__top_keys[] = {
    { "ts", 2, MT_TS },
    { "cve", 3, MT_CVE },
    { "k8s", 3, MT_K8S },
    { "log", 3, MT_LOG },
    { "msg", 3, MT_MSG },
    { "pod", 3, MT_POD },
    { "pri", 3, MT_PRI },
    { "host", 4, MT_HOST },
    { "kind", 4, MT_KIND },
    { "rule", 4, MT_RULE },
    { "time", 4, MT_TIME },
    { "user", 4, MT_USER },
    { "verb", 4, MT_VERB },
    { "Title", 5, MT_TITLE },
    { "event", 5, MT_EVENT },
    { "ident", 5, MT_IDENT },
    { "image", 5, MT_IMAGE },
    { "level", 5, MT_LEVEL },
    { "action", 6, MT_ACTION },
    { "dst_ip", 6, MT_DST_IP },
    { "object", 6, MT_OBJECT },
    { "output", 6, MT_OUTPUT },
    { "source", 6, MT_SOURCE },
    { "src_ip", 6, MT_SRC_IP },
    { "MESSAGE", 7, MT_MESSAGE_UC },
    { "PkgName", 7, MT_PKG_NAME },
    { "auditID", 7, MT_AUDIT_ID },
    { "cmdline", 7, MT_CMDLINE },
    { "message", 7, MT_MESSAGE },
    { "outcome", 7, MT_OUTCOME },
    { "package", 7, MT_PACKAGE },
    { "process", 7, MT_PROCESS },
    { "Severity", 8, MT_SEVERITY_UC },
    { "dst_port", 8, MT_DST_PORT },
    { "hostname", 8, MT_HOSTNAME },
    { "metadata", 8, MT_METADATA },
    { "priority", 8, MT_PRIORITY },
    { "severity", 8, MT_SEVERITY },
    { "CreatedAt", 9, MT_CREATED_AT },
    { "_HOSTNAME", 9, MT_HOSTNAME_UC },
    { "namespace", 9, MT_NAMESPACE },
    { "objectRef", 9, MT_OBJECT_REF },
    { "sourceIPs", 9, MT_SOURCE_IPS },
    { "timestamp", 9, MT_TIMESTAMP },
    { "@timestamp", 10, MT_AT_TIMESTAMP },
    { "apiVersion", 10, MT_API_VERSION },
    { "kubernetes", 10, MT_KUBERNETES },
    { "requestURI", 10, MT_REQUEST_URI },
    { "syslog_line", 11, MT_SYSLOG_LINE },
    { "ArtifactName", 12, MT_ARTIFACT_NAME },
    { "container_id", 12, MT_CONTAINER_ID },
    { "output_fields", 13, MT_OUTPUT_FIELDS },
    { "requestObject", 13, MT_REQUEST_OBJECT },
    { "container_name", 14, MT_CONTAINER_NAME },
    { "responseStatus", 14, MT_RESPONSE_STATUS },
    { "stageTimestamp", 14, MT_STAGE_TS },
    { "VulnerabilityID", 15, MT_VULN_ID },
    { "InstalledVersion", 16, MT_INSTALLED_VERSION },
    { "impersonatedUser", 16, MT_IMPERSONATED_USER },
    { "SYSLOG_IDENTIFIER", 17, MT_SYSLOG_IDENTIFIER },
    { "requestReceivedTimestamp", 24, MT_REQUEST_RECEIVED_TS },
};
const size_t map__top_nkeys = VG_ARRAY_LEN(map__top_keys);

int map__key_find(const struct map__keydef *tab, size_t n, struct span key)
{
    size_t lo = 0;
    size_t hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct map__keydef *e = &tab[mid];
        int c = e->len < key.n ? -1 : e->len > key.n ? 1 : memcmp(e->name, key.p, key.n);
        if (c == 0) {
            return e->id;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

bool map__it_init(struct map__it *it, struct span v)
{
    struct mp_obj o;

    if (mp_read(&v, &o) != 1 || o.type != MP_MAP) {
        return false;
    }
    it->cur = v;
    it->left = o.v.count;
    return true;
}

/* Takes one complete value: a scalar with one mp_read (which checks its payload is
 * present), a container with mp_take (which validates all of it). Cheaper than mp_take
 * alone, which walks every scalar twice. */
static int take_value(struct span *cur, struct span *v, struct mp_obj *o)
{
    struct span start = *cur;

    if (mp_read(cur, o) != 1) {
        return -EPROTO;
    }
    if ((o->type == MP_ARRAY || o->type == MP_MAP) && o->v.count > 0) {
        *cur = start;
        return mp_take(cur, v);
    }
    *v = (struct span){ start.p, (size_t)(cur->p - start.p) };
    return 0;
}

int map__it_next(struct map__it *it, struct span *k, struct span *v)
{
    struct span key;
    struct mp_obj o;
    struct mp_obj ov;

    if (it->left == 0) {
        return 0;
    }
    if (take_value(&it->cur, &key, &o) < 0 || take_value(&it->cur, v, &ov) < 0) {
        it->left = 0;
        return -EPROTO;
    }
    it->left--;
    *k = (struct span){ NULL, 0 };
    if (o.type == MP_STR) {
        *k = o.v.s;
        if (k->p == NULL) {
            k->p = (const uint8_t *)""; /* an empty string key is still a string */
        }
    }
    return 1;
}

bool map__str(struct span v, struct span *out)
{
    struct span s;

    if (!mp_get_str(v, &s) || s.n == 0 || span_eq_str(s, "<NA>")) {
        return false;
    }
    *out = s;
    return true;
}

bool map__get(struct span map, const char *key, struct span *out)
{
    return map.n > 0 && mp_map_get(map, span_str(key), out) == 1;
}

bool map__get_str(struct span map, const char *key, struct span *out)
{
    struct span v;

    return map__get(map, key, &v) && map__str(v, out);
}

bool map__rfc3339(struct span s, int64_t *ns)
{
    /* int64 ns spans the years 1678..2262: keep vg_time_parse_rfc3339 (which does not
     * check) from overflowing on a year outside them. */
    unsigned y = 0;

    if (s.n < 4) {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return false;
        }
        y = y * 10 + (unsigned)(s.p[i] - '0');
    }
    return y >= 1678 && y <= 2261 && vg_time_parse_rfc3339(s, ns) == 0;
}

bool map__time(struct span v, int64_t *ns)
{
    struct span s;

    return mp_get_str(v, &s) && map__rfc3339(s, ns);
}

void map__set_ts(struct rec *r, int64_t ns)
{
    r->ts = ns;
    r->has_ts = true;
}

void map__set_sev(struct rec *r, int sev)
{
    if (sev >= 0 && sev < VG_SEV_COUNT) {
        rec_set(r, VG_F_SEVERITY, span_str(vg_severity_name((enum vg_severity)sev)));
    }
}

bool map__is_ip(struct span s)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    uint8_t addr[16];

    if (s.n == 0 || s.n >= sizeof(tmp)) {
        return false;
    }
    memcpy(tmp, s.p, s.n);
    tmp[s.n] = 0;
    return inet_pton(AF_INET, tmp, addr) == 1 || inet_pton(AF_INET6, tmp, addr) == 1;
}

bool map__set_ip(struct rec *r, enum vg_field f, struct span s)
{
    static const struct span mapped = SPAN_LIT("::ffff:");

    if (s.n > mapped.n && span_eq_nocase((struct span){ s.p, mapped.n }, mapped)) {
        struct span v4 = { s.p + mapped.n, s.n - mapped.n };
        if (memchr(v4.p, '.', v4.n) && map__is_ip(v4)) {
            rec_set(r, f, v4);
            return true;
        }
    }
    if (!map__is_ip(s)) {
        return false;
    }
    rec_set(r, f, s);
    return true;
}

const char *map__http_outcome(int64_t code)
{
    if (code >= 100 && code < 400) {
        return "success";
    }
    if (code >= 400 && code < 600) {
        return "failure";
    }
    return "unknown";
}

void map__sb_begin(struct map__sb *sb, struct buf *b)
{
    sb->b = b;
    sb->mark = b->len;
    sb->full = false;
}

void map__sb_add(struct map__sb *sb, struct span s)
{
    struct buf *b = sb->b;

    /* Never buf_reserve here: a realloc would move values already handed out. */
    if (sb->full || b->cap == 0 || s.n > b->cap - 1 - b->len) {
        sb->full = true;
        return;
    }
    if (s.n) {
        memcpy(b->data + b->len, s.p, s.n);
    }
    b->len += s.n;
    b->data[b->len] = 0;
}

void map__sb_byte(struct map__sb *sb, uint8_t c)
{
    map__sb_add(sb, (struct span){ &c, 1 });
}

void map__sb_add_urldec(struct map__sb *sb, struct span s)
{
    for (size_t i = 0; i < s.n; i++) {
        uint8_t c = s.p[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < s.n && hex_digit_value(s.p[i + 1]) >= 0 &&
                   hex_digit_value(s.p[i + 2]) >= 0) {
            c = (uint8_t)(hex_digit_value(s.p[i + 1]) << 4 | hex_digit_value(s.p[i + 2]));
            i += 2;
        }
        map__sb_byte(sb, c);
    }
}

struct span map__sb_end(struct map__sb *sb)
{
    struct buf *b = sb->b;

    if (sb->full) {
        if (b->cap) {
            b->len = sb->mark;
            b->data[b->len] = 0;
        }
        return (struct span){ NULL, 0 };
    }
    return (struct span){ b->data + sb->mark, b->len - sb->mark };
}

/* One pass over the top-level map: validates it (each scalar by mp_read, each nested
 * container by mp_take) and collects the known keys. *raw gets the map's bytes. */
static int top_scan(struct span event_map, struct map__top *t, struct span *raw)
{
    struct map__it it;
    struct span k;
    struct span v;
    int rc;

    memset(t, 0, sizeof(*t));
    if (!map__it_init(&it, event_map)) {
        struct mp_obj o;
        struct span c = event_map;
        return mp_read(&c, &o) == 1 ? VG_EFORMAT : -EPROTO;
    }
    while ((rc = map__it_next(&it, &k, &v)) > 0) {
        int id = k.p ? map__key_find(map__top_keys, map__top_nkeys, k) : -1;
        if (id >= 0 && t->v[id].n == 0) {
            t->v[id] = v;
        }
    }
    if (rc < 0) {
        return rc;
    }
    *raw = (struct span){ event_map.p, (size_t)(it.cur.p - event_map.p) };
    return 0;
}

static bool top_str(const struct map__top *t, enum map__top_key k, struct span *out)
{
    return map__str(t->v[k], out);
}

static enum map_source detect(const struct map__top *t)
{
    struct span s;

    if (t->v[MT_OUTPUT_FIELDS].n && t->v[MT_RULE].n && t->v[MT_PRIORITY].n) {
        return MAP_FALCO;
    }
    if (mp_get_str(t->v[MT_KIND], &s) && span_eq_str(s, "Event")) {
        struct span av;
        if (t->v[MT_AUDIT_ID].n || (mp_get_str(t->v[MT_API_VERSION], &av) &&
                                    span_starts_with(av, SPAN_LIT("audit.k8s.io/")))) {
            return MAP_K8S_AUDIT;
        }
    }
    if (t->v[MT_VERB].n && t->v[MT_OBJECT_REF].n) {
        return MAP_K8S_AUDIT;
    }
    if (t->v[MT_VULN_ID].n) {
        return MAP_TRIVY;
    }
    if (t->v[MT_SYSLOG_LINE].n && mp_get_str(t->v[MT_SYSLOG_LINE], &s)) {
        return MAP_SSHD;
    }
    if (t->v[MT_MESSAGE].n && map__get_str(t->v[MT_PROCESS], "name", &s) &&
        (span_eq_str(s, "sshd") || span_eq_str(s, "sshd-session"))) {
        return MAP_SSHD;
    }
    return MAP_GENERIC;
}

/* A number as event time: seconds, ms, µs or ns by magnitude (an int), or seconds with a
 * fraction (a float); Fluentd's EventTime ext. */
static bool num_time(struct span v, int64_t *ns)
{
    struct mp_obj o;
    struct span c = v;
    int64_t i;
    double f;

    if (mp_read(&c, &o) == 1 && o.type == MP_EXT && o.ext_type == MP_EXT_EVENTTIME &&
        o.v.s.n == 8) {
        const uint8_t *p = o.v.s.p;
        uint32_t sec = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        uint32_t nsec = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
        *ns = (int64_t)sec * VG_NS_PER_SEC + (nsec % VG_NS_PER_SEC);
        return true;
    }
    if (mp_get_i64(v, &i)) {
        int64_t mul = i < 100000000000LL         ? VG_NS_PER_SEC /* s */
                      : i < 100000000000000LL    ? 1000000       /* ms */
                      : i < 100000000000000000LL ? 1000          /* µs */
                                                 : 1;            /* ns */
        return i > 0 && !__builtin_mul_overflow(i, mul, ns);
    }
    if (mp_get_f64(v, &f) && f > 0 && f < 9.2e9) {
        /* seconds and fraction apart: f * 1e9 alone loses ~256 ns at today's epoch */
        int64_t sec = (int64_t)f;
        *ns = sec * VG_NS_PER_SEC + llround((f - (double)sec) * 1e9);
        return true;
    }
    return false;
}

/* A name that may be given as a string or as an object with a "name" (ECS host,
 * process). */
static bool str_or_name(struct span v, struct span *out)
{
    return map__str(v, out) || map__get_str(v, "name", out);
}

static int generic_severity(struct span v)
{
    struct span s;
    int64_t n;

    if (mp_get_str(v, &s)) {
        return vg_severity_parse(s);
    }
    if (mp_get_i64(v, &n) && n >= 0 && n < VG_SEV_COUNT) {
        return (int)n; /* syslog numbering */
    }
    return -1;
}

/* The generic mapper: well-known keys of log shippers, and keys that already carry a
 * schema field's name. Payloads never set source, agent, received, seq or kind. */
static int map_generic(const struct map__top *t, const char *source, struct rec *r)
{
    static const struct {
        enum map__top_key k;
        enum vg_field f;
    } direct[] = {
        { MT_NAMESPACE, VG_F_NAMESPACE },
        { MT_POD, VG_F_POD },
        { MT_CONTAINER_ID, VG_F_CONTAINER_ID },
        { MT_CONTAINER_NAME, VG_F_CONTAINER_NAME },
        { MT_IMAGE, VG_F_IMAGE },
        { MT_USER, VG_F_USER },
        { MT_CMDLINE, VG_F_CMDLINE },
        { MT_RULE, VG_F_RULE },
        { MT_ACTION, VG_F_ACTION },
        { MT_OBJECT, VG_F_OBJECT },
        { MT_OUTCOME, VG_F_OUTCOME },
        { MT_CVE, VG_F_CVE },
        { MT_PACKAGE, VG_F_PACKAGE },
    };
    static const enum map__top_key msg_keys[] = { MT_MESSAGE, MT_MSG, MT_LOG, MT_MESSAGE_UC };
    static const enum map__top_key ts_keys[] = { MT_TIME, MT_TIMESTAMP, MT_AT_TIMESTAMP, MT_TS };
    struct span s;
    int64_t ns;

    rec_set(r, VG_F_SOURCE, span_str(source ? source : "forward"));
    rec_set(r, VG_F_KIND, SPAN_LIT("log"));
    for (size_t i = 0; i < VG_ARRAY_LEN(msg_keys); i++) {
        if (top_str(t, msg_keys[i], &s)) {
            rec_set(r, VG_F_MESSAGE, s);
            break;
        }
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(ts_keys) && !r->has_ts; i++) {
        struct span v = t->v[ts_keys[i]];
        if (v.n && (map__time(v, &ns) || num_time(v, &ns))) {
            map__set_ts(r, ns);
        }
    }
    if (str_or_name(t->v[MT_HOST], &s) || top_str(t, MT_HOSTNAME, &s) ||
        top_str(t, MT_HOSTNAME_UC, &s)) {
        rec_set(r, VG_F_HOST, s);
    }
    if (str_or_name(t->v[MT_PROCESS], &s) || top_str(t, MT_SYSLOG_IDENTIFIER, &s) ||
        top_str(t, MT_IDENT, &s)) {
        rec_set(r, VG_F_PROCESS, s);
    }
    int sev = generic_severity(t->v[MT_SEVERITY]);
    if (sev < 0) {
        sev = generic_severity(t->v[MT_LEVEL]);
    }
    map__set_sev(r, sev);
    for (size_t i = 0; i < VG_ARRAY_LEN(direct); i++) {
        if (top_str(t, direct[i].k, &s)) {
            rec_set(r, direct[i].f, s);
        }
    }
    /* Fluent Bit's kubernetes filter. */
    struct span k8s = t->v[MT_KUBERNETES];
    if (k8s.n) {
        if (!rec_has(r, VG_F_POD) && map__get_str(k8s, "pod_name", &s)) {
            rec_set(r, VG_F_POD, s);
        }
        if (!rec_has(r, VG_F_NAMESPACE) && map__get_str(k8s, "namespace_name", &s)) {
            rec_set(r, VG_F_NAMESPACE, s);
        }
        if (!rec_has(r, VG_F_CONTAINER_NAME) && map__get_str(k8s, "container_name", &s)) {
            rec_set(r, VG_F_CONTAINER_NAME, s);
        }
        if (!rec_has(r, VG_F_IMAGE) && map__get_str(k8s, "container_image", &s)) {
            rec_set(r, VG_F_IMAGE, s);
        }
        if (!rec_has(r, VG_F_CONTAINER_ID) &&
            (map__get_str(k8s, "docker_id", &s) || map__get_str(k8s, "container_id", &s))) {
            rec_set(r, VG_F_CONTAINER_ID, s);
        }
        if (!rec_has(r, VG_F_HOST) && map__get_str(k8s, "host", &s)) {
            rec_set(r, VG_F_HOST, s);
        }
    }
    if (top_str(t, MT_SRC_IP, &s)) {
        map__set_ip(r, VG_F_SRC_IP, s);
    }
    if (top_str(t, MT_DST_IP, &s)) {
        map__set_ip(r, VG_F_DST_IP, s);
    }
    int64_t port;
    if (mp_get_i64(t->v[MT_DST_PORT], &port) && port >= 0 && port <= 65535) {
        r->dst_port = port;
        r->has_dst_port = true;
    }
    return 0;
}

const char *map_source_name(enum map_source s)
{
    switch (s) {
    case MAP_FALCO:
        return "falco";
    case MAP_K8S_AUDIT:
        return "k8s-audit";
    case MAP_SSHD:
        return "sshd";
    case MAP_SYSLOG:
        return "syslog";
    case MAP_TRIVY:
        return "trivy";
    case MAP_AUTO:
    case MAP_GENERIC:
    default:
        return NULL;
    }
}

int map_event(enum map_source hint, struct span event_map, int64_t fallback_ts,
              const char *generic_source, struct rec *r, struct buf *scratch, struct errbuf *eb)
{
    struct map__top t;
    struct span raw;
    int rc;

    rec_init(r);
    /* Reserve only while nothing points into scratch: see map.h. */
    if (scratch->len == 0 && scratch->cap <= MAP_SCRATCH_BYTES) {
        size_t want = scratch->max < MAP_SCRATCH_BYTES ? scratch->max : MAP_SCRATCH_BYTES;
        if (want > 0 && buf_reserve(scratch, want) < 0) {
            /* computed fields will be skipped */
        }
    }
    rc = top_scan(event_map, &t, &raw);
    if (rc < 0) {
        errbuf_set(eb, rc == VG_EFORMAT ? "event is not a map" : "event is not valid msgpack");
        return VG_EFORMAT;
    }
    r->raw = raw;
    enum map_source src = hint == MAP_AUTO ? detect(&t) : hint;
    switch (src) {
    case MAP_FALCO:
        rc = map__falco(&t, r, scratch, eb);
        break;
    case MAP_K8S_AUDIT:
        rc = map__k8s(&t, r, scratch, eb);
        break;
    case MAP_TRIVY:
        rc = map__trivy(&t, r, scratch, eb);
        break;
    case MAP_SSHD:
    case MAP_SYSLOG:
        rc = map__syslog(&t, src, fallback_ts, r, scratch, eb);
        break;
    case MAP_AUTO:
    case MAP_GENERIC:
    default:
        rc = map_generic(&t, generic_source, r);
        break;
    }
    if (rc < 0) {
        return rc;
    }
    if (!r->has_ts) {
        map__set_ts(r, fallback_ts);
    }
    return 0;
}

static bool tag_is(struct span tag, const char *name)
{
    return span_eq_str(tag, name);
}

/* name, or name followed by '.' and anything */
static bool tag_under(struct span tag, const char *name)
{
    struct span n = span_str(name);
    return span_eq(tag, n) || (tag.n > n.n && span_starts_with(tag, n) && tag.p[n.n] == '.');
}

enum map_source map_source_from_tag(struct span tag)
{
    if (tag_under(tag, "falco")) {
        return MAP_FALCO;
    }
    if (tag_under(tag, "k8s.audit") || span_starts_with(tag, SPAN_LIT("k8s-audit")) ||
        span_starts_with(tag, SPAN_LIT("kube-audit")) ||
        span_starts_with(tag, SPAN_LIT("audit.k8s"))) {
        return MAP_K8S_AUDIT;
    }
    if (span_starts_with(tag, SPAN_LIT("sshd")) || tag_under(tag, "auth") ||
        tag_is(tag, "authpriv")) {
        return MAP_SSHD;
    }
    if (span_starts_with(tag, SPAN_LIT("syslog"))) {
        return MAP_SYSLOG;
    }
    if (span_starts_with(tag, SPAN_LIT("trivy"))) {
        return MAP_TRIVY;
    }
    return MAP_AUTO;
}
