/* forwarders/alert.c: alert records (schemas/alert.md) as the forwarders read them, and
 * what every sink says about one: the evidence command line, vigil's JSON document, a
 * summary line. Pure; any thread. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"
#include "forwarders/fwd_int.h"

const char *fwd_state_name(enum fwd_state s)
{
    static const char *const names[FWD_STATE_COUNT] = { "firing", "update", "resolved" };
    return (unsigned)s < FWD_STATE_COUNT ? names[s] : "?";
}

/* Records are msgpack maps written by rec_encode in field order: ts, received, seq,
 * agent, source, kind, ... (schemas/record.c), so "kind" comes before the variable-length
 * identity fields and raw. An alert record is written by vigild itself with
 * agent "vigild" and source "rule", which puts its kind key within the first 64
 * bytes; 256 leaves room for a longer agent. A record whose kind=alert pair is not in
 * that prefix is not one vigild's rules wrote (its agent would be 150+ bytes), and
 * fwd_alert_parse would refuse it anyway (source=rule). tests/unit/forwarders checks
 * this against records the rules engine builds. */
bool fwd_alert_candidate(struct span rec)
{
    static const uint8_t kind_alert[] = { 0xa4, 'k', 'i', 'n', 'd', 0xa5, 'a', 'l', 'e', 'r', 't' };
    size_t n = rec.n < 256 ? rec.n : 256;

    return memmem(rec.p, n, kind_alert, sizeof(kind_alert)) != NULL;
}

static bool get_u64(struct span v, uint64_t *out)
{
    struct mp_obj o;
    struct span t = v;

    if (mp_read(&t, &o) != 1) {
        return false;
    }
    if (o.type == MP_UINT) {
        *out = o.v.u;
        return true;
    }
    return false;
}

static int parse_seqs(struct span v, struct fwd_alert *a)
{
    struct mp_obj o;

    if (mp_read(&v, &o) != 1 || o.type != MP_ARRAY) {
        return VG_ECORRUPT;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span item;
        uint64_t s;
        if (mp_take(&v, &item) < 0 || !get_u64(item, &s)) {
            return VG_ECORRUPT;
        }
        if (a->nseqs < FWD_ALERT_MAX_SEQS) {
            a->seqs[a->nseqs++] = s;
        }
    }
    return 0;
}

static int parse_tags(struct span v, struct fwd_alert *a)
{
    struct mp_obj o;

    if (mp_read(&v, &o) != 1 || o.type != MP_ARRAY) {
        return VG_ECORRUPT;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span item;
        struct span s;
        if (mp_take(&v, &item) < 0 || !mp_get_str(item, &s)) {
            return VG_ECORRUPT;
        }
        if (a->ntags < FWD_ALERT_MAX_TAGS) {
            a->tags[a->ntags++] = s;
        }
    }
    return 0;
}

/* group: { field: value } with string values (others are written as their msgpack
 * would not be readable: skipped). */
static int parse_group(struct span v, struct fwd_alert *a)
{
    struct mp_obj o;

    if (mp_read(&v, &o) != 1 || o.type != MP_MAP) {
        return VG_ECORRUPT;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span k;
        struct span val;
        struct span ks;
        struct span vs;
        if (mp_take(&v, &k) < 0 || mp_take(&v, &val) < 0 || !mp_get_str(k, &ks)) {
            return VG_ECORRUPT;
        }
        if (mp_get_str(val, &vs) && a->ngroup < FWD_ALERT_MAX_GROUP) {
            a->group[a->ngroup++] = (struct fwd_kv){ ks, vs };
        }
    }
    return 0;
}

static int parse_window(struct span v, struct fwd_alert *a)
{
    struct span s;
    int64_t t;

    if (mp_map_get(v, SPAN_LIT("start"), &s) == 1 && mp_get_i64(s, &t)) {
        a->window_start = t;
    }
    if (mp_map_get(v, SPAN_LIT("end"), &s) == 1 && mp_get_i64(s, &t)) {
        a->window_end = t;
    }
    return 0;
}

int fwd_alert_parse(struct span rec, uint64_t seq, struct fwd_alert *a)
{
    struct span cur = rec;
    struct mp_obj o;
    bool has_state = false;

    memset(a, 0, sizeof(*a));
    if (rec_decode(&cur, &a->r) < 0) {
        return -ENOENT; /* not a record at all: not ours to forward */
    }
    if (!span_eq_str(a->r.str[VG_F_KIND], "alert") || !span_eq_str(a->r.str[VG_F_SOURCE], "rule")) {
        return -ENOENT;
    }
    a->seq = seq;
    a->ts = a->r.has_ts ? a->r.ts : a->r.received;
    a->received = a->r.has_received ? a->r.received : a->ts;
    int sev = vg_severity_parse(a->r.str[VG_F_SEVERITY]);
    a->severity = sev < 0 ? VG_SEV_WARNING : (enum vg_severity)sev;
    a->title = a->r.str[VG_F_RULE];
    a->count = 1;

    struct span raw = a->r.raw;
    if (raw.n == 0 || mp_read(&raw, &o) != 1 || o.type != MP_MAP) {
        return VG_ECORRUPT;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span kv;
        struct span v;
        struct span k;
        int64_t t;
        if (mp_take(&raw, &kv) < 0 || mp_take(&raw, &v) < 0 || !mp_get_str(kv, &k)) {
            return VG_ECORRUPT;
        }
        int rc = 0;
        if (span_eq_str(k, "rule_id")) {
            rc = mp_get_str(v, &a->rule_id) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "title")) {
            rc = mp_get_str(v, &a->title) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "level")) {
            rc = mp_get_str(v, &a->level) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "type")) {
            rc = mp_get_str(v, &a->type) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "fingerprint")) {
            rc = mp_get_str(v, &a->fingerprint) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "incident")) {
            rc = mp_get_str(v, &a->incident) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "drill")) {
            rc = mp_get_str(v, &a->drill) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "state")) {
            struct span s;
            has_state = true;
            if (!mp_get_str(v, &s)) {
                rc = VG_ECORRUPT;
            } else if (span_eq_str(s, "firing")) {
                a->state = FWD_FIRING;
            } else if (span_eq_str(s, "update")) {
                a->state = FWD_UPDATE;
            } else if (span_eq_str(s, "resolved")) {
                a->state = FWD_RESOLVED;
            } else {
                rc = VG_ECORRUPT;
            }
        } else if (span_eq_str(k, "count")) {
            rc = get_u64(v, &a->count) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "seqs_total")) {
            rc = get_u64(v, &a->seqs_total) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "first_seen")) {
            rc = mp_get_i64(v, &a->first_seen) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "last_seen")) {
            rc = mp_get_i64(v, &a->last_seen) ? 0 : VG_ECORRUPT;
        } else if (span_eq_str(k, "resolve_after")) {
            rc = mp_get_i64(v, &t) ? (a->resolve_after = t, 0) : VG_ECORRUPT;
        } else if (span_eq_str(k, "seqs")) {
            rc = parse_seqs(v, a);
        } else if (span_eq_str(k, "tags")) {
            rc = parse_tags(v, a);
        } else if (span_eq_str(k, "group")) {
            rc = parse_group(v, a);
        } else if (span_eq_str(k, "window")) {
            rc = parse_window(v, a);
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (a->fingerprint.n == 0 || a->title.n == 0) {
        return VG_ECORRUPT; /* nothing to key a page on */
    }
    if (a->seqs_total == 0) {
        a->seqs_total = a->nseqs;
    }
    /* Records written before schemas/alert.md had no lifecycle: each is its own
     * incident, opened at its window. */
    if (a->first_seen == 0) {
        a->first_seen = a->window_start ? a->window_start : a->ts;
    }
    if (a->last_seen == 0) {
        a->last_seen = a->window_end ? a->window_end : a->ts;
    }
    if (!has_state) {
        a->state = FWD_FIRING;
    }
    a->lifecycle = has_state;
    if (a->incident.n == 0) {
        int n = snprintf(a->incident_buf, sizeof(a->incident_buf), "%.*s-%" PRId64,
                         (int)(a->fingerprint.n < 40 ? a->fingerprint.n : 40),
                         (const char *)a->fingerprint.p, a->first_seen);
        a->incident = (struct span){ (const uint8_t *)a->incident_buf, (size_t)n };
    }
    return 0;
}

/* ---- JSON helpers ---- */

int fwd_json_key(struct buf *b, bool *first, const char *k)
{
    int rc = 0;
    if (!*first) {
        rc = buf_append_byte(b, ',');
    }
    *first = false;
    if (rc == 0) {
        rc = json_append_str(b, span_str(k));
    }
    return rc < 0 ? rc : buf_append_byte(b, ':');
}

int fwd_json_kv_str(struct buf *b, bool *first, const char *k, struct span v)
{
    int rc = fwd_json_key(b, first, k);
    return rc < 0 ? rc : json_append_str(b, v);
}

int fwd_json_kv_i64(struct buf *b, bool *first, const char *k, int64_t v)
{
    int rc = fwd_json_key(b, first, k);
    return rc < 0 ? rc : buf_appendf(b, "%" PRId64, v);
}

int fwd_json_kv_time(struct buf *b, bool *first, const char *k, int64_t ns)
{
    char t[48];
    vg_time_format(ns, 3, t, sizeof(t));
    return fwd_json_kv_str(b, first, k, span_str(t));
}

int fwd_json_str_cut(struct buf *b, struct span s, size_t max)
{
    if (s.n <= max) {
        return json_append_str(b, s);
    }
    /* Cut on a UTF-8 boundary, leaving room for "...". */
    size_t n = max > 3 ? max - 3 : 0;
    while (n > 0 && (s.p[n] & 0xc0) == 0x80) {
        n--;
    }
    struct buf tmp;
    buf_init(&tmp, n + 4);
    int rc = buf_append(&tmp, s.p, n);
    if (rc == 0) {
        rc = buf_append_str(&tmp, "...");
    }
    if (rc == 0) {
        rc = json_append_str(b, buf_span(&tmp));
    }
    buf_release(&tmp);
    return rc;
}

/* ---- what every sink says ---- */

int fwd_alert_evidence(const struct fwd_alert *a, struct buf *out)
{
    char t0[48];
    char t1[48];
    /* The window of the triggering events, widened by a second each side: --until is
     * exclusive and event times may carry more digits than shown. */
    int64_t from = a->first_seen - VG_NS_PER_SEC;
    int64_t to = (a->last_seen > a->first_seen ? a->last_seen : a->first_seen) + VG_NS_PER_SEC;
    int rc;

    vg_time_format(from, 0, t0, sizeof(t0));
    vg_time_format(to, 0, t1, sizeof(t1));
    rc = buf_appendf(out, "vigil search --since %s --until %s", t0, t1);
    if (rc == 0 && a->nseqs > 0) {
        /* Up to 16 seqs keep the line pasteable; the window still bounds the rest. */
        size_t n = a->nseqs < 16 ? a->nseqs : 16;
        rc = buf_append_str(out, " '");
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = buf_appendf(out, "%sseq=%" PRIu64, i ? " OR " : "", a->seqs[i]);
        }
        if (rc == 0) {
            rc = buf_append_byte(out, '\'');
        }
    } else if (rc == 0) {
        /* No seqs: the group's values narrow the window to the incident's events. */
        for (size_t i = 0; i < a->ngroup && rc == 0; i++) {
            bool plain = true;
            for (size_t j = 0; j < a->group[i].v.n; j++) {
                uint8_t c = a->group[i].v.p[j];
                plain = plain && c > ' ' && c < 0x7f && c != '\'' && c != '\\';
            }
            if (plain && a->group[i].v.n > 0 && vg_field_lookup(a->group[i].k) >= 0) {
                rc = buf_appendf(out, " '%.*s=%.*s'", (int)a->group[i].k.n,
                                 (const char *)a->group[i].k.p, (int)a->group[i].v.n,
                                 (const char *)a->group[i].v.p);
            }
        }
    }
    return rc;
}

int fwd_alert_summary(const struct fwd_alert *a, size_t max, struct buf *out)
{
    size_t start = out->len;
    /* A fire drill's page says so first (schemas/drill.md "Markers"). */
    int rc = a->drill.n ? buf_append_str(out, "[drill] ") : 0;

    rc = rc < 0 ? rc : buf_append(out, a->title.p, a->title.n);

    if (rc == 0) {
        rc = buf_appendf(out, " (%s)", vg_severity_name(a->severity));
    }
    if (rc == 0 && a->count > 1) {
        rc = buf_appendf(out, ": %" PRIu64 " events", a->count);
    }
    for (size_t i = 0; i < a->ngroup && rc == 0; i++) {
        rc = buf_appendf(out, "%s%.*s=", i == 0 ? (a->count > 1 ? " for " : ": ") : ", ",
                         (int)a->group[i].k.n, (const char *)a->group[i].k.p);
        if (rc == 0) {
            rc = buf_append_escaped(out, a->group[i].v, 120);
        }
    }
    if (rc == 0 && out->len - start > max) {
        size_t n = max > 3 ? max - 3 : 0;
        while (n > 0 && (out->data[start + n] & 0xc0) == 0x80) {
            n--;
        }
        out->len = start + n;
        rc = buf_append_str(out, "...");
    }
    return rc;
}

/* The identity fields an alert carries (schemas/alert.md), in the order sinks show them. */
const enum vg_field fwd_identity[FWD_NIDENTITY] = {
    VG_F_NAMESPACE, VG_F_POD,    VG_F_CONTAINER_ID, VG_F_CONTAINER_NAME, VG_F_IMAGE,
    VG_F_HOST,      VG_F_USER,   VG_F_SRC_IP,       VG_F_DST_IP,         VG_F_PROCESS,
    VG_F_CMDLINE,   VG_F_ACTION, VG_F_OBJECT,
};

int fwd_alert_json(const struct fwd_alert *a, const char *receiver, struct buf *b)
{
    bool first = true;
    bool f2;
    int rc = buf_append_byte(b, '{');

#define J(x) FWD_STEP(rc, x)
    J(fwd_json_kv_i64(b, &first, "version", 1));
    J(fwd_json_kv_str(b, &first, "receiver", span_str(receiver)));
    J(fwd_json_kv_str(b, &first, "state", span_str(fwd_state_name(a->state))));
    J(fwd_json_kv_str(b, &first, "fingerprint", a->fingerprint));
    J(fwd_json_kv_str(b, &first, "incident", a->incident));
    J(fwd_json_kv_i64(b, &first, "seq", (int64_t)a->seq));
    J(fwd_json_key(b, &first, "rule"));
    J(buf_append_byte(b, '{'));
    f2 = true;
    J(fwd_json_kv_str(b, &f2, "id", a->rule_id));
    J(fwd_json_kv_str(b, &f2, "title", a->title));
    J(fwd_json_kv_str(b, &f2, "level", a->level));
    J(fwd_json_kv_str(b, &f2, "type", a->type));
    J(fwd_json_key(b, &f2, "tags"));
    J(buf_append_byte(b, '['));
    for (size_t i = 0; i < a->ntags; i++) {
        J(i ? buf_append_byte(b, ',') : 0);
        J(json_append_str(b, a->tags[i]));
    }
    J(buf_append_str(b, "]}"));
    J(fwd_json_kv_str(b, &first, "severity", span_str(vg_severity_name(a->severity))));
    J(fwd_json_kv_str(b, &first, "message", a->r.str[VG_F_MESSAGE]));
    J(fwd_json_kv_i64(b, &first, "count", (int64_t)a->count));
    J(fwd_json_kv_time(b, &first, "first_seen", a->first_seen));
    J(fwd_json_kv_time(b, &first, "last_seen", a->last_seen));
    J(fwd_json_kv_time(b, &first, "time", a->ts));
    J(fwd_json_key(b, &first, "group"));
    J(buf_append_byte(b, '{'));
    f2 = true;
    for (size_t i = 0; i < a->ngroup; i++) {
        J(f2 ? 0 : buf_append_byte(b, ','));
        f2 = false;
        J(json_append_str(b, a->group[i].k));
        J(buf_append_byte(b, ':'));
        J(json_append_str(b, a->group[i].v));
    }
    J(buf_append_byte(b, '}'));
    J(fwd_json_key(b, &first, "fields"));
    J(buf_append_byte(b, '{'));
    f2 = true;
    for (size_t i = 0; i < FWD_NIDENTITY; i++) {
        if (rec_has(&a->r, fwd_identity[i])) {
            J(fwd_json_kv_str(b, &f2, vg_field_name(fwd_identity[i]), a->r.str[fwd_identity[i]]));
        }
    }
    J(buf_append_byte(b, '}'));
    J(fwd_json_key(b, &first, "seqs"));
    J(buf_append_byte(b, '['));
    for (size_t i = 0; i < a->nseqs; i++) {
        J(buf_appendf(b, "%s%" PRIu64, i ? "," : "", a->seqs[i]));
    }
    J(buf_append_byte(b, ']'));
    J(fwd_json_kv_i64(b, &first, "seqs_total", (int64_t)a->seqs_total));
    if (a->drill.n) {
        J(fwd_json_kv_str(b, &first, "drill", a->drill));
    }
    struct buf ev;
    buf_init(&ev, 4096);
    J(fwd_alert_evidence(a, &ev));
    J(fwd_json_kv_str(b, &first, "evidence", buf_span(&ev)));
    buf_release(&ev);
    J(buf_append_byte(b, '}'));
#undef J
    return rc;
}
