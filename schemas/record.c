/* schemas/record.c: the field registry and the msgpack encoding of schema v1 records.
 * Pure; any thread. */
#include "schemas/record.h"

#include <errno.h>
#include <string.h>

#include "common/mp.h"

static const struct {
    const char *name;
    enum vg_field_type type;
    uint8_t len; /* strlen(name): keys are written on every event */
} fields[VG_F_COUNT] = {
    [VG_F_TS] = { "ts", VG_FT_TIME, 2 },
    [VG_F_RECEIVED] = { "received", VG_FT_TIME, 8 },
    [VG_F_SEQ] = { "seq", VG_FT_UINT, 3 },
    [VG_F_AGENT] = { "agent", VG_FT_STR, 5 },
    [VG_F_SOURCE] = { "source", VG_FT_STR, 6 },
    [VG_F_KIND] = { "kind", VG_FT_STR, 4 },
    [VG_F_SEVERITY] = { "severity", VG_FT_SEVERITY, 8 },
    [VG_F_HOST] = { "host", VG_FT_STR, 4 },
    [VG_F_NAMESPACE] = { "namespace", VG_FT_STR, 9 },
    [VG_F_POD] = { "pod", VG_FT_STR, 3 },
    [VG_F_CONTAINER_ID] = { "container_id", VG_FT_STR, 12 },
    [VG_F_CONTAINER_NAME] = { "container_name", VG_FT_STR, 14 },
    [VG_F_IMAGE] = { "image", VG_FT_STR, 5 },
    [VG_F_USER] = { "user", VG_FT_STR, 4 },
    [VG_F_SRC_IP] = { "src_ip", VG_FT_IP, 6 },
    [VG_F_DST_IP] = { "dst_ip", VG_FT_IP, 6 },
    [VG_F_DST_PORT] = { "dst_port", VG_FT_INT, 8 },
    [VG_F_PROCESS] = { "process", VG_FT_STR, 7 },
    [VG_F_CMDLINE] = { "cmdline", VG_FT_STR, 7 },
    [VG_F_RULE] = { "rule", VG_FT_STR, 4 },
    [VG_F_ACTION] = { "action", VG_FT_STR, 6 },
    [VG_F_OBJECT] = { "object", VG_FT_STR, 6 },
    [VG_F_OUTCOME] = { "outcome", VG_FT_STR, 7 },
    [VG_F_CVE] = { "cve", VG_FT_STR, 3 },
    [VG_F_PACKAGE] = { "package", VG_FT_STR, 7 },
    [VG_F_MESSAGE] = { "message", VG_FT_STR, 7 },
    [VG_F_RAW] = { "raw", VG_FT_RAW, 3 },
};

const char *vg_field_name(enum vg_field f)
{
    return (unsigned)f < VG_F_COUNT ? fields[f].name : "?";
}

enum vg_field_type vg_field_type(enum vg_field f)
{
    return fields[f].type;
}

int vg_field_lookup(struct span name)
{
    for (int f = 0; f < VG_F_COUNT; f++) {
        if (span_eq_str(name, fields[f].name)) {
            return f;
        }
    }
    return -1;
}

static const char *sev_names[VG_SEV_COUNT] = { "emergency", "alert", "critical", "error",
                                               "warning",   "notice", "info",    "debug" };

const char *vg_severity_name(enum vg_severity s)
{
    return (unsigned)s < VG_SEV_COUNT ? sev_names[s] : "?";
}

int vg_severity_parse(struct span s)
{
    static const struct {
        const char *name;
        enum vg_severity sev;
    } aliases[] = {
        { "emerg", VG_SEV_EMERGENCY },    { "panic", VG_SEV_EMERGENCY },
        { "crit", VG_SEV_CRITICAL },      { "err", VG_SEV_ERROR },
        { "high", VG_SEV_ERROR },         { "warn", VG_SEV_WARNING },
        { "medium", VG_SEV_WARNING },     { "low", VG_SEV_NOTICE },
        { "informational", VG_SEV_INFO }, { "information", VG_SEV_INFO },
        { "unknown", VG_SEV_INFO },       { "negligible", VG_SEV_INFO },
    };
    for (int i = 0; i < VG_SEV_COUNT; i++) {
        if (span_eq_nocase(s, span_str(sev_names[i]))) {
            return i;
        }
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(aliases); i++) {
        if (span_eq_nocase(s, span_str(aliases[i].name))) {
            return (int)aliases[i].sev;
        }
    }
    return -1;
}

void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
}

void rec_set(struct rec *r, enum vg_field f, struct span s)
{
    if (s.n > 0 && (unsigned)f < VG_F_COUNT) {
        r->str[f] = s;
    }
}

static int put_key(struct buf *out, enum vg_field f)
{
    return mp_put_str(out, fields[f].name, fields[f].len);
}

int rec_encode(const struct rec *r, struct buf *out)
{
    uint32_t n = (uint32_t)r->has_ts + r->has_received + r->has_seq + r->has_dst_port +
                 (r->raw.n > 0);
    int rc;

    for (int f = 0; f < VG_F_COUNT; f++) {
        n += r->str[f].p != NULL && fields[f].type != VG_FT_RAW;
    }
    if ((rc = mp_put_map(out, n)) < 0) {
        return rc;
    }
    if (r->has_ts && ((rc = put_key(out, VG_F_TS)) < 0 || (rc = mp_put_i64(out, r->ts)) < 0)) {
        return rc;
    }
    if (r->has_received &&
        ((rc = put_key(out, VG_F_RECEIVED)) < 0 || (rc = mp_put_i64(out, r->received)) < 0)) {
        return rc;
    }
    if (r->has_seq && ((rc = put_key(out, VG_F_SEQ)) < 0 || (rc = mp_put_u64(out, r->seq)) < 0)) {
        return rc;
    }
    for (int f = 0; f < VG_F_COUNT; f++) {
        if (r->str[f].p == NULL || fields[f].type == VG_FT_RAW) {
            continue;
        }
        if ((rc = put_key(out, (enum vg_field)f)) < 0 ||
            (rc = mp_put_str(out, r->str[f].p, r->str[f].n)) < 0) {
            return rc;
        }
    }
    if (r->has_dst_port && ((rc = put_key(out, VG_F_DST_PORT)) < 0 ||
                            (rc = mp_put_i64(out, r->dst_port)) < 0)) {
        return rc;
    }
    /* raw is wrapped in a bin: its length is in the header, so a reader that does not
     * need it skips it without walking the original event. */
    if (r->raw.n > 0 &&
        ((rc = put_key(out, VG_F_RAW)) < 0 || (rc = mp_put_bin(out, r->raw.p, r->raw.n)) < 0)) {
        return rc;
    }
    return 0;
}

int rec_decode(struct span *in, struct rec *r)
{
    struct span cur = *in;
    struct mp_obj o;

    rec_init(r);
    if (mp_read(&cur, &o) != 1 || o.type != MP_MAP) {
        return VG_ECORRUPT;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct mp_obj k;
        struct span val;
        if (mp_read(&cur, &k) != 1 || k.type != MP_STR) {
            return VG_ECORRUPT;
        }
        int f = vg_field_lookup(k.v.s);
        if (f == VG_F_RAW && cur.n > 0 && (cur.p[0] == 0xc4 || cur.p[0] == 0xc5 || cur.p[0] == 0xc6)) {
            struct mp_obj b;
            if (mp_read(&cur, &b) != 1) {
                return VG_ECORRUPT;
            }
            r->raw = b.v.s; /* the original event's msgpack, inside the bin */
            continue;
        }
        if (mp_take(&cur, &val) < 0) {
            return VG_ECORRUPT;
        }
        if (f < 0) {
            continue;
        }
        switch (fields[f].type) {
        case VG_FT_TIME:
        case VG_FT_INT: {
            int64_t v;
            if (!mp_get_i64(val, &v)) {
                return VG_ECORRUPT;
            }
            if (f == VG_F_TS) {
                r->ts = v;
                r->has_ts = true;
            } else if (f == VG_F_RECEIVED) {
                r->received = v;
                r->has_received = true;
            } else {
                r->dst_port = v;
                r->has_dst_port = true;
            }
            break;
        }
        case VG_FT_UINT: {
            struct mp_obj u;
            struct span t = val;
            if (mp_read(&t, &u) != 1 || u.type != MP_UINT) {
                return VG_ECORRUPT;
            }
            r->seq = u.v.u;
            r->has_seq = true;
            break;
        }
        case VG_FT_RAW:
            r->raw = val;
            break;
        default: {
            struct span s;
            if (!mp_get_str(val, &s)) {
                return VG_ECORRUPT;
            }
            /* An empty string is stored as present-but-empty only by foreign writers;
             * keep p non-NULL so presence is preserved. */
            r->str[f] = s.n ? s : (struct span){ val.p, 0 };
            break;
        }
        }
    }
    *in = cur;
    return 0;
}
