/* rules/rules_alert.c: an alert as a record (kind=alert, source=rule) for the store and
 * the forwarders, and its stable fingerprint (DESIGN.md "Forwarders": rule id + group-by
 * values, the receivers' dedup key). Pure; any thread. */
#include <inttypes.h>
#include <string.h>

#include "common/digest.h"
#include "common/mp.h"
#include "common/time.h"
#include "rules/rules_int.h"

void rules_alert_fingerprint(const struct rules_alert *a, char out[33])
{
    struct digest *d = digest_new();
    uint8_t h[VG_SHA256_LEN];
    const char *id = a->rule_id && a->rule_id[0] ? a->rule_id : a->title;
    uint8_t len[4];

    digest_update(d, "vigil-alert-v1", 14);
    for (size_t i = 0; i <= a->ngroup; i++) {
        struct span s = i == 0 ? span_str(id) : a->group_values[i - 1];
        len[0] = (uint8_t)(s.n >> 24);
        len[1] = (uint8_t)(s.n >> 16);
        len[2] = (uint8_t)(s.n >> 8);
        len[3] = (uint8_t)s.n;
        digest_update(d, len, 4);
        digest_update(d, s.p ? (const void *)s.p : "", s.n);
    }
    digest_final(d, h);
    digest_free(d);
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

/* The normalized field a correlation's group-by field g stands for, or -1. */
static int group_field(const struct ruleset *rs, const struct rule *r, size_t g)
{
    for (size_t k = 0; k < r->corr.nrefs; k++) {
        const struct corr_ref *cr = &r->corr.refs[k];
        const struct rule *t = &rs->rules[cr->rule];
        if (t->type != RULES_DETECTION) {
            continue;
        }
        const struct slot *s = &rs->slots[cr->gsrc[g]];
        if (s->ntgts >= 1 && s->tgts[0].kind == TGT_FIELD &&
            vg_field_type((enum vg_field)s->tgts[0].field) != VG_FT_TIME &&
            vg_field_type((enum vg_field)s->tgts[0].field) != VG_FT_UINT &&
            vg_field_type((enum vg_field)s->tgts[0].field) != VG_FT_INT) {
            return s->tgts[0].field;
        }
        return -1;
    }
    return -1;
}

int rules_alert_to_rec(const struct ruleset *rs, const struct rules_alert *a, struct rec *out,
                       struct buf *scratch)
{
    const struct rule *r = &rs->rules[a->rule];
    struct builder bd = { .b = scratch };
    char fp[33];
    int rc = 0;

    rec_init(out);
    out->ts = a->ts;
    out->has_ts = true;
    rules_alert_fingerprint(a, fp);

    /* raw first: one msgpack map */
    size_t raw_off = scratch->len;
#define PUT(x)        \
 do {                 \
  if ((rc = (x)) < 0) \
   return rc;         \
 } while (0)
    PUT(mp_put_map(scratch, 10));
    PUT(put_kv_str(scratch, "rule_id", span_str(a->rule_id)));
    PUT(put_kv_str(scratch, "title", span_str(a->title)));
    PUT(put_kv_str(scratch, "level", span_str(a->level)));
    PUT(put_kv_str(scratch, "type", span_str(rules_type_name(a->type))));
    PUT(put_kv_str(scratch, "fingerprint", span_str(fp)));
    PUT(mp_put_cstr(scratch, "count"));
    PUT(mp_put_u64(scratch, a->count));
    PUT(mp_put_cstr(scratch, "group"));
    PUT(mp_put_map(scratch, (uint32_t)a->ngroup));
    for (size_t i = 0; i < a->ngroup; i++) {
        PUT(put_kv_str(scratch, a->group_names[i], a->group_values[i]));
    }
    PUT(mp_put_cstr(scratch, "seqs"));
    PUT(mp_put_array(scratch, (uint32_t)a->nseqs));
    for (size_t i = 0; i < a->nseqs; i++) {
        PUT(mp_put_u64(scratch, a->seqs[i]));
    }
    PUT(mp_put_cstr(scratch, "window"));
    PUT(mp_put_map(scratch, 2));
    PUT(mp_put_cstr(scratch, "start"));
    PUT(mp_put_i64(scratch, a->window_start));
    PUT(mp_put_cstr(scratch, "end"));
    PUT(mp_put_i64(scratch, a->window_end));
    PUT(mp_put_cstr(scratch, "tags"));
    PUT(mp_put_array(scratch, (uint32_t)r->ntags));
    for (size_t i = 0; i < r->ntags; i++) {
        PUT(mp_put_cstr(scratch, r->tags[i]));
    }
#undef PUT
    size_t raw_len = scratch->len - raw_off;

    /* the message */
    size_t msg_off = scratch->len;
    if (a->type == RULES_DETECTION) {
        rc = buf_appendf(scratch, "%s", a->title);
        if (rc == 0 && a->event && a->event->str[VG_F_MESSAGE].p) {
            struct span m = a->event->str[VG_F_MESSAGE];
            rc = buf_append_str(scratch, ": ");
            if (rc == 0) {
                rc = buf_append(scratch, m.p, m.n < 240 ? m.n : 240);
            }
        }
    } else {
        const char *what = a->type == RULES_EVENT_COUNT   ? "events"
                           : a->type == RULES_VALUE_COUNT ? "distinct values"
                                                          : "rules";
        rc = buf_appendf(scratch, "%s: %" PRIu64 " %s within %" PRId64 "s", a->title, a->count,
                         what, (int64_t)(r->corr.span_ns / VG_NS_PER_SEC));
        for (size_t i = 0; i < a->ngroup && rc == 0; i++) {
            rc = buf_appendf(scratch, "%s%s=", i == 0 ? " for " : ", ", a->group_names[i]);
            if (rc == 0) {
                rc = buf_append_escaped(scratch, a->group_values[i], 120);
            }
        }
    }
    if (rc < 0) {
        return rc;
    }
    size_t msg_len = scratch->len - msg_off;

    put_field(&bd, VG_F_RULE, span_str(a->title));
    if (a->event) {
        static const enum vg_field copy[] = {
            VG_F_HOST,    VG_F_NAMESPACE, VG_F_POD,    VG_F_CONTAINER_ID, VG_F_CONTAINER_NAME,
            VG_F_IMAGE,   VG_F_USER,      VG_F_SRC_IP, VG_F_DST_IP,       VG_F_PROCESS,
            VG_F_CMDLINE, VG_F_ACTION,    VG_F_OBJECT,
        };
        for (size_t i = 0; i < VG_ARRAY_LEN(copy); i++) {
            put_field(&bd, copy[i], a->event->str[copy[i]]);
        }
    } else {
        for (size_t i = 0; i < a->ngroup; i++) {
            int f = group_field(rs, r, i);
            if (f >= 0 && f != VG_F_SOURCE && f != VG_F_KIND && f != VG_F_SEVERITY &&
                f != VG_F_RULE && f != VG_F_MESSAGE) {
                put_field(&bd, (enum vg_field)f, a->group_values[i]);
            }
        }
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
