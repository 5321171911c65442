/* rules/rules_alert.c: an alert record (schemas/alert.md: kind=alert, source=rule, one
 * per state change of an incident) for the store and the forwarders, and the incident's
 * stable fingerprint (the receivers' dedup key). Pure; any thread. */
#include <inttypes.h>
#include <string.h>

#include "common/digest.h"
#include "common/mp.h"
#include "common/time.h"
#include "rules/rules_int.h"

void rules_alert_fingerprint(const char *rule_key, const struct span *values, size_t n,
                             char out[33])
{
    uint8_t h[VG_SHA256_LEN];
    uint8_t tmp[2048];
    size_t total = 14;

    for (size_t i = 0; i <= n; i++) {
        total += 4 + (i == 0 ? strlen(rule_key) : values[i - 1].n);
    }
    /* one call when it fits (the common case: an incident opens per match of a rule that
     * fires on many different things); streamed otherwise */
    struct digest *d = total > sizeof(tmp) ? digest_new() : NULL;
    size_t o = 0;
    memcpy(tmp, "vigil-alert-v1", 14);
    o = 14;
    if (d) {
        digest_update(d, tmp, o);
        o = 0;
    }
    for (size_t i = 0; i <= n; i++) {
        struct span s = i == 0 ? span_str(rule_key) : values[i - 1];
        uint8_t len[4] = { (uint8_t)(s.n >> 24), (uint8_t)(s.n >> 16), (uint8_t)(s.n >> 8),
                           (uint8_t)s.n };
        if (d) {
            digest_update(d, len, 4);
            digest_update(d, s.p ? (const void *)s.p : "", s.n);
            continue;
        }
        memcpy(tmp + o, len, 4);
        if (s.n) {
            memcpy(tmp + o + 4, s.p, s.n);
        }
        o += 4 + s.n;
    }
    if (d) {
        digest_final(d, h);
        digest_free(d);
    } else {
        vg_sha256(tmp, o, h);
    }
    vg_hex(h, 16, out);
}

/* A field set from scratch bytes once they stop moving. */
struct pending {
    enum vg_field f;
    size_t off, len;
};

struct builder {
    struct buf *b;
    struct pending p[VG_F_COUNT];
    size_t np;
    int rc;
};

static void put_field(struct builder *bd, enum vg_field f, struct span s)
{
    if (bd->rc < 0 || s.n == 0 || bd->np == VG_ARRAY_LEN(bd->p)) {
        return;
    }
    for (size_t i = 0; i < bd->np; i++) {
        if (bd->p[i].f == f) {
            return; /* first one wins */
        }
    }
    size_t off = bd->b->len;
    if ((bd->rc = buf_append(bd->b, s.p, s.n)) < 0) {
        return;
    }
    bd->p[bd->np++] = (struct pending){ f, off, s.n };
}

static int put_kv_str(struct buf *b, const char *k, struct span v)
{
    int rc = mp_put_cstr(b, k);
    return rc < 0 ? rc : mp_put_str(b, v.p ? (const void *)v.p : "", v.n);
}

static int put_kv_i64(struct buf *b, const char *k, int64_t v)
{
    int rc = mp_put_cstr(b, k);
    return rc < 0 ? rc : mp_put_i64(b, v);
}

static int put_kv_u64(struct buf *b, const char *k, uint64_t v)
{
    int rc = mp_put_cstr(b, k);
    return rc < 0 ? rc : mp_put_u64(b, v);
}

/* The message: what happened to the incident, in a sentence. */
static int message(const struct ruleset *rs, const struct rules_alert *a, struct buf *b)
{
    int rc;
    const char *what = a->type == RULES_EVENT_COUNT   ? "events"
                       : a->type == RULES_VALUE_COUNT ? "distinct values"
                       : a->type == RULES_DETECTION   ? "events"
                                                      : "rules";

    (void)rs;
    switch (a->state) {
    case RULES_FIRING:
        rc = buf_appendf(b, "%s", a->title);
        break;
    case RULES_UPDATE:
        rc = buf_appendf(b, "%s (still matching: %" PRIu64 " %s so far)", a->title, a->count, what);
        break;
    case RULES_RESOLVED:
    default:
        rc = buf_appendf(b, "%s (resolved%s%s: %" PRIu64 " %s)", a->title, a->reason ? ", " : "",
                         a->reason ? a->reason : "", a->count, what);
        break;
    }
    for (size_t i = 0; i < a->ngroup && rc == 0; i++) {
        rc = buf_appendf(b, "%s%s=", i == 0 ? " for " : ", ", a->group_names[i]);
        if (rc == 0) {
            rc = buf_append_escaped(b, a->group_values[i], 120);
        }
    }
    if (rc == 0 && a->type == RULES_DETECTION && a->state == RULES_FIRING && a->ident &&
        a->ident[VG_F_CMDLINE].n > 0) {
        struct span m = a->ident[VG_F_CMDLINE];
        rc = buf_append_str(b, ": ");
        if (rc == 0) {
            rc = buf_append_escaped(b, m, 240);
        }
    }
    return rc;
}

int rules_alert_to_rec(const struct ruleset *rs, const struct rules_alert *a, struct rec *out,
                       struct buf *scratch)
{
    struct builder bd = { .b = scratch };
    int rc = 0;
    bool has_reason = a->reason != NULL;
    bool has_drill = a->drill.n > 0;

    rec_init(out);
    out->ts = a->ts;
    out->has_ts = true;

    /* raw first: one msgpack map (schemas/alert.md) */
    size_t raw_off = scratch->len;
#define PUT(x)        \
 do {                 \
  if ((rc = (x)) < 0) \
   return rc;         \
 } while (0)
    PUT(mp_put_map(scratch,
                   17 + (has_reason ? 1 : 0) + (has_drill ? 1 : 0) + (a->partial ? 1 : 0)));
    PUT(put_kv_str(scratch, "rule_id", span_str(a->rule_id)));
    PUT(put_kv_str(scratch, "title", span_str(a->title)));
    PUT(put_kv_str(scratch, "level", span_str(a->level)));
    PUT(put_kv_str(scratch, "type", span_str(rules_type_name(a->type))));
    PUT(mp_put_cstr(scratch, "tags"));
    PUT(mp_put_array(scratch, (uint32_t)a->ntags));
    for (size_t i = 0; i < a->ntags; i++) {
        PUT(mp_put_cstr(scratch, a->tags[i]));
    }
    PUT(put_kv_str(scratch, "fingerprint", span_str(a->fingerprint)));
    PUT(put_kv_str(scratch, "incident", span_str(a->incident)));
    PUT(put_kv_str(scratch, "state", span_str(rules_alert_state_name(a->state))));
    PUT(put_kv_u64(scratch, "count", a->count));
    PUT(put_kv_i64(scratch, "first_seen", a->first_seen));
    PUT(put_kv_i64(scratch, "last_seen", a->last_seen));
    PUT(put_kv_i64(scratch, "opened", a->opened));
    PUT(mp_put_cstr(scratch, "seqs"));
    PUT(mp_put_array(scratch, (uint32_t)a->nseqs));
    for (size_t i = 0; i < a->nseqs; i++) {
        PUT(mp_put_u64(scratch, a->seqs[i]));
    }
    PUT(put_kv_u64(scratch, "seqs_total", a->seqs_total));
    PUT(mp_put_cstr(scratch, "group"));
    PUT(mp_put_map(scratch, (uint32_t)a->ngroup));
    for (size_t i = 0; i < a->ngroup; i++) {
        PUT(put_kv_str(scratch, a->group_names[i], a->group_values[i]));
    }
    PUT(mp_put_cstr(scratch, "window"));
    PUT(mp_put_map(scratch, 2));
    PUT(put_kv_i64(scratch, "start", a->window_start));
    PUT(put_kv_i64(scratch, "end", a->window_end));
    PUT(put_kv_i64(scratch, "resolve_after", a->resolve_after_ns));
    if (has_reason) {
        PUT(put_kv_str(scratch, "reason", span_str(a->reason)));
    }
    if (has_drill) {
        PUT(put_kv_str(scratch, "drill", a->drill));
    }
    if (a->partial) {
        PUT(mp_put_cstr(scratch, "partial"));
        PUT(mp_put_bool(scratch, true));
    }
#undef PUT
    size_t raw_len = scratch->len - raw_off;

    size_t msg_off = scratch->len;
    if ((rc = message(rs, a, scratch)) < 0) {
        return rc;
    }
    size_t msg_len = scratch->len - msg_off;

    put_field(&bd, VG_F_RULE, span_str(a->title));
    static const enum vg_field copy[] = {
        VG_F_HOST,    VG_F_NAMESPACE, VG_F_POD,    VG_F_CONTAINER_ID, VG_F_CONTAINER_NAME,
        VG_F_IMAGE,   VG_F_USER,      VG_F_SRC_IP, VG_F_DST_IP,       VG_F_PROCESS,
        VG_F_CMDLINE, VG_F_ACTION,    VG_F_OBJECT,
    };
    for (size_t i = 0; a->ident && i < VG_ARRAY_LEN(copy); i++) {
        put_field(&bd, copy[i], a->ident[copy[i]]);
    }
    if (bd.rc < 0) {
        return bd.rc;
    }
    /* scratch stops moving here */
    for (size_t i = 0; i < bd.np; i++) {
        rec_set(out, bd.p[i].f, (struct span){ scratch->data + bd.p[i].off, bd.p[i].len });
    }
    rec_set(out, VG_F_SOURCE, SPAN_LIT("rule"));
    rec_set(out, VG_F_KIND, SPAN_LIT("alert"));
    rec_set(out, VG_F_SEVERITY, span_str(vg_severity_name(a->severity)));
    rec_set(out, VG_F_MESSAGE, (struct span){ scratch->data + msg_off, msg_len });
    out->raw = (struct span){ scratch->data + raw_off, raw_len };
    return 0;
}

const char *rules_alert_state_name(enum rules_alert_state s)
{
    switch (s) {
    case RULES_FIRING:
        return "firing";
    case RULES_UPDATE:
        return "update";
    case RULES_RESOLVED:
        return "resolved";
    }
    return "?";
}
