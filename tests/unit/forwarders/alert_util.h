/* tests/unit/forwarders/alert_util.h: alert records as the rules engine writes them
 * (schemas/alert.md; the ALERT_CONTRACT's raw map), built field by field for the tests. */
#ifndef VG_TESTS_FWD_ALERT_UTIL_H
#define VG_TESTS_FWD_ALERT_UTIL_H

#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/mp.h"
#include "schemas/record.h"

struct mk {
    const char *rule_id, *title, *level, *severity, *fingerprint, *incident;
    const char *state; /* NULL: a record written before the contract (no lifecycle) */
    uint64_t count, seq;
    int64_t first_seen, last_seen, ts, received, resolve_after;
    const uint64_t *seqs;
    size_t nseqs;
    const char *const *group; /* k, v, k, v, ..., NULL */
    const char *const *tags;  /* NULL-terminated */
    const char *ns, *pod, *host, *user, *src_ip, *message, *agent, *kind, *source;
    const char *drill; /* the fire drill run id (raw "drill"), or NULL */
};

static inline int mk_put_str(struct buf *b, const char *k, const char *v)
{
    int rc = mp_put_cstr(b, k);
    return rc < 0 ? rc : mp_put_cstr(b, v);
}

/* Appends the encoded record to out; raw is built in rawbuf (kept until encoded). */
static inline int mk_alert(const struct mk *m, struct buf *out)
{
    struct buf raw;
    struct rec r;
    uint32_t n = 0;
    int rc = 0;
    size_t ng = 0;
    size_t nt = 0;

    while (m->group && m->group[2 * ng]) {
        ng++;
    }
    while (m->tags && m->tags[nt]) {
        nt++;
    }
    buf_init(&raw, 1 << 20);
    n = 12 + (m->state ? 3 : 0) + (m->incident ? 1 : 0) + (m->drill ? 1 : 0);
#define P(x)     \
 do {            \
  if (rc == 0) { \
   rc = (x);     \
  }              \
 } while (0)
    P(mp_put_map(&raw, n));
    P(mk_put_str(&raw, "rule_id", m->rule_id ? m->rule_id : "r-1"));
    P(mk_put_str(&raw, "title", m->title ? m->title : "SSH brute force"));
    P(mk_put_str(&raw, "level", m->level ? m->level : "medium"));
    P(mk_put_str(&raw, "type", "event_count"));
    P(mk_put_str(&raw, "fingerprint",
                 m->fingerprint ? m->fingerprint : "0123456789abcdef0123456789abcdef"));
    if (m->incident) {
        P(mk_put_str(&raw, "incident", m->incident));
    }
    if (m->drill) {
        P(mk_put_str(&raw, "drill", m->drill));
    }
    if (m->state) {
        P(mk_put_str(&raw, "state", m->state));
        P(mp_put_cstr(&raw, "resolve_after"));
        P(mp_put_i64(&raw, m->resolve_after ? m->resolve_after : 900000000000LL));
        P(mp_put_cstr(&raw, "seqs_total"));
        P(mp_put_u64(&raw, m->nseqs));
    }
    P(mp_put_cstr(&raw, "count"));
    P(mp_put_u64(&raw, m->count ? m->count : 1));
    P(mp_put_cstr(&raw, "first_seen"));
    P(mp_put_i64(&raw, m->first_seen));
    P(mp_put_cstr(&raw, "last_seen"));
    P(mp_put_i64(&raw, m->last_seen));
    P(mp_put_cstr(&raw, "seqs"));
    P(mp_put_array(&raw, (uint32_t)m->nseqs));
    for (size_t i = 0; i < m->nseqs; i++) {
        P(mp_put_u64(&raw, m->seqs[i]));
    }
    P(mp_put_cstr(&raw, "group"));
    P(mp_put_map(&raw, (uint32_t)ng));
    for (size_t i = 0; i < ng; i++) {
        P(mk_put_str(&raw, m->group[2 * i], m->group[2 * i + 1]));
    }
    P(mp_put_cstr(&raw, "window"));
    P(mp_put_map(&raw, 2));
    P(mp_put_cstr(&raw, "start"));
    P(mp_put_i64(&raw, m->first_seen));
    P(mp_put_cstr(&raw, "end"));
    P(mp_put_i64(&raw, m->last_seen));
    P(mp_put_cstr(&raw, "tags"));
    P(mp_put_array(&raw, (uint32_t)nt));
    for (size_t i = 0; i < nt; i++) {
        P(mp_put_cstr(&raw, m->tags[i]));
    }
    /* two keys a newer engine might add: readers skip what they do not know */
    P(mk_put_str(&raw, "future_key", "x"));
    P(mp_put_cstr(&raw, "window_n"));
    P(mp_put_u64(&raw, 2));
#undef P
    rec_init(&r);
    r.ts = m->ts ? m->ts : m->last_seen;
    r.has_ts = true;
    r.received = m->received ? m->received : r.ts;
    r.has_received = true;
    r.seq = m->seq;
    r.has_seq = m->seq > 0;
    rec_set(&r, VG_F_AGENT, span_str(m->agent ? m->agent : "vigild"));
    rec_set(&r, VG_F_SOURCE, span_str(m->source ? m->source : "rule"));
    rec_set(&r, VG_F_KIND, span_str(m->kind ? m->kind : "alert"));
    rec_set(&r, VG_F_SEVERITY, span_str(m->severity ? m->severity : "warning"));
    rec_set(&r, VG_F_RULE, span_str(m->title ? m->title : "SSH brute force"));
    if (m->ns) {
        rec_set(&r, VG_F_NAMESPACE, span_str(m->ns));
    }
    if (m->pod) {
        rec_set(&r, VG_F_POD, span_str(m->pod));
    }
    if (m->host) {
        rec_set(&r, VG_F_HOST, span_str(m->host));
    }
    if (m->user) {
        rec_set(&r, VG_F_USER, span_str(m->user));
    }
    if (m->src_ip) {
        rec_set(&r, VG_F_SRC_IP, span_str(m->src_ip));
    }
    if (m->message) {
        rec_set(&r, VG_F_MESSAGE, span_str(m->message));
    }
    r.raw = buf_span(&raw);
    if (rc == 0) {
        rc = rec_encode(&r, out);
    }
    buf_release(&raw);
    return rc;
}

#endif
