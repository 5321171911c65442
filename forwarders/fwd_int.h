/* forwarders/fwd_int.h: the parts of forwarders/ and what its tests reach: alert records
 * as the forwarders read them (schemas/alert.md), matchers, receivers and their sinks
 * (payload builders), retry decisions, the HTTP client and the SQLite outbox. */
#ifndef VG_FORWARDERS_FWD_INT_H
#define VG_FORWARDERS_FWD_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "forwarders/fwd.h"
#include "schemas/record.h"

/* For text that is only informative (a log line, a listing): a truncation is fine. */
static inline void fwd_ignore(int rc)
{
    (void)rc;
}

/* Runs x only while rc is 0: a sequence of appends that stops at the first failure. */
#define FWD_STEP(rc, x) \
 do {                   \
  if ((rc) == 0) {      \
   (rc) = (x);          \
  }                     \
 } while (0)

/* ---- alert records (schemas/alert.md; pure, any thread) ---- */

enum fwd_state { FWD_FIRING, FWD_UPDATE, FWD_RESOLVED, FWD_STATE_COUNT };
const char *fwd_state_name(enum fwd_state s); /* "firing", "update", "resolved" */

#define FWD_ALERT_MAX_SEQS  64 /* contract: the first K and last K triggering seqs */
#define FWD_ALERT_MAX_TAGS  32
#define FWD_ALERT_MAX_GROUP 16

struct fwd_kv {
    struct span k, v;
};

/* One alert record, decoded. Spans point into the record's bytes, which must outlive
 * it. Fields the record lacks are empty spans or 0; a record written before the
 * contract had state and incident (no "state") reads as firing, with the incident
 * "<fingerprint>-<first_seen>". */
struct fwd_alert {
    uint64_t seq;     /* the alert record's seq */
    int64_t ts;       /* event time of the change */
    int64_t received; /* when vigild recorded it (the latency clock starts here) */
    struct rec r;     /* the normalized fields (identity of the incident) */
    enum vg_severity severity;
    struct span rule_id, title, level, type, fingerprint, incident, drill;
    enum fwd_state state;
    bool lifecycle; /* the record has a state (schemas/alert.md); pre-contract ones do not,
                       and are never re-sent nor resolved */
    uint64_t count;
    int64_t first_seen, last_seen, resolve_after;
    int64_t window_start, window_end;
    uint64_t seqs[FWD_ALERT_MAX_SEQS];
    size_t nseqs;
    uint64_t seqs_total;
    struct span tags[FWD_ALERT_MAX_TAGS];
    size_t ntags;
    struct fwd_kv group[FWD_ALERT_MAX_GROUP];
    size_t ngroup;
    char incident_buf[80]; /* the derived incident of a pre-contract record */
};

/* Decodes an encoded record. Returns 0; -ENOENT when it is not an alert record
 * (kind=alert, source=rule); VG_ECORRUPT when it claims to be one but is malformed. */
int fwd_alert_parse(struct span rec, uint64_t seq, struct fwd_alert *out) VG_MUST_USE;
/* Cheap test on the encoded bytes, before decoding: false only for records that are
 * certainly not alert records (see alert.c for why this holds). */
bool fwd_alert_candidate(struct span rec);
/* `vigil search --since .. --until .. 'seq=N OR ...'`: the evidence, as a command line a
 * human pastes (appended to out). */
int fwd_alert_evidence(const struct fwd_alert *a, struct buf *out) VG_MUST_USE;
/* The alert as vigil's own JSON document (the webhook body; schemas/alert.md). */
int fwd_alert_json(const struct fwd_alert *a, const char *receiver, struct buf *out) VG_MUST_USE;
/* A short line: "SSH brute force (error): 25 events for src_ip=10.0.0.9". */
int fwd_alert_summary(const struct fwd_alert *a, size_t max, struct buf *out) VG_MUST_USE;

/* The identity fields an alert may carry, in the order sinks show them. */
#define FWD_NIDENTITY 13
extern const enum vg_field fwd_identity[FWD_NIDENTITY];

/* JSON writing helpers over common/json.h. */
int fwd_json_kv_str(struct buf *b, bool *first, const char *k, struct span v) VG_MUST_USE;
int fwd_json_kv_i64(struct buf *b, bool *first, const char *k, int64_t v) VG_MUST_USE;
int fwd_json_kv_time(struct buf *b, bool *first, const char *k, int64_t ns) VG_MUST_USE;
int fwd_json_key(struct buf *b, bool *first, const char *k) VG_MUST_USE;
/* s cut to at most max bytes on a UTF-8 boundary (with "..." when cut). */
int fwd_json_str_cut(struct buf *b, struct span s, size_t max) VG_MUST_USE;

/* ---- matchers (match.c) ---- */

struct fwd_match;
/* Compiles a forwarder's match map; errors name the key's place (config_error).
 * Returns 0 with *out (NULL for an empty map: everything) or VG_ECONFIG. */
int fwd_match_compile(const struct vg_config *cfg, const struct cfg_strmap *m,
                      struct fwd_match **out, struct errbuf *eb) VG_MUST_USE;
bool fwd_match_test(const struct fwd_match *m, const struct fwd_alert *a);
void fwd_match_free(struct fwd_match *m);

/* ---- receivers and sinks ---- */

struct http_req;
struct fwd_rcv_cfg;

/* A receiver type: which states it is sent, how a request is built. */
struct fwd_sink {
    const char *type;
    bool wants[FWD_STATE_COUNT]; /* states that become outbox entries */
    size_t max_batch;            /* alerts per request (alertmanager: many; others 1) */
    uint64_t default_rate;       /* requests per minute when rate_limit is 0 */
    bool secret_required;
    /* Fills req (url, body, headers) for alerts a[0..n). now_ns is the wall clock. */
    int (*build)(const struct fwd_rcv_cfg *rc, const struct fwd_alert *const *a, size_t n,
                 int64_t now_ns, struct http_req *req);
};
extern const struct fwd_sink fwd_sink_alertmanager;
extern const struct fwd_sink fwd_sink_pagerduty;
extern const struct fwd_sink fwd_sink_opsgenie;
extern const struct fwd_sink fwd_sink_slack;
extern const struct fwd_sink fwd_sink_webhook;
const struct fwd_sink *fwd_sink_find(const char *type);

/* A receiver's settings, built from its forwarder_cfg with the secret read. Immutable
 * once built; owned by its creator. */
struct fwd_rcv_cfg {
    char *name;
    const struct fwd_sink *sink;
    char *url;       /* never NULL */
    char *url_shown; /* scheme://host[:port]: what logs and errors may say */
    char *secret;    /* NULL when none; never logged */
    char *ca_file;
    int64_t connect_timeout_ns, timeout_ns;
    uint64_t rate_per_min;
    int64_t retry_min_ns, retry_max_ns, give_up_after_ns;
    int64_t resend_every_ns, expire_after_ns;
    struct fwd_match *match; /* NULL: everything */
};

/* Checks forwarder i of cfg (URL, type-specific keys, match, the secret present and
 * readable) and builds its settings. Blocks on reading the secret file. Returns 0 with
 * *out (fwd_rcv_cfg_free) or VG_ECONFIG with a file:line:key error. */
int fwd_rcv_cfg_new(const struct vg_config *cfg, size_t i, struct fwd_rcv_cfg **out,
                    struct errbuf *eb) VG_MUST_USE;
void fwd_rcv_cfg_free(struct fwd_rcv_cfg *rc);

/* Replaces every occurrence of the receiver's secret and URL path in s with "***": for
 * text that leaves the process (logs, the outbox's last error, `vigil alerts`). */
void fwd_redact(const struct fwd_rcv_cfg *rc, char *s);

/* ---- retry decisions (retry.c; pure) ---- */

enum fwd_outcome { FWD_DELIVERED, FWD_RETRY, FWD_DEAD };

/* Retry-After (RFC 9110 10.2.3): delay-seconds or an IMF-fixdate. Returns 0 with the
 * delay from now_ns in *delay_ns (>= 0; a date in the past is 0), or VG_EPARSE. */
int fwd_retry_after_parse(struct span v, int64_t now_ns, int64_t *delay_ns) VG_MUST_USE;
/* What a response (or a transport failure: status 0) means for the entry:
 * 2xx delivered; 0 (connect error, timeout), 408, 429 and 5xx retry; other codes dead. */
enum fwd_outcome fwd_classify(long status);
/* The wait before attempt `failures` + 1 (failures >= 1): min * 2^(failures-1), capped
 * at max, then jittered into [d/2, d] with rnd in [0, 1). */
int64_t fwd_backoff_ns(int64_t min_ns, int64_t max_ns, unsigned failures, double rnd);

/* ---- HTTP over libcurl's multi socket interface (http.c; loop thread) ---- */

#define HTTP_MAX_HEADERS   8
#define HTTP_MAX_RESP_BODY (16u << 10) /* kept for errors and `vigil alerts test` */

struct http_req {
    char *url; /* owned */
    struct buf body;
    char *headers[HTTP_MAX_HEADERS]; /* owned "Name: value" lines */
    size_t nheaders;
    const char *ca_file; /* borrowed; NULL: the system's CAs */
    int64_t connect_timeout_ns, timeout_ns;
};
void http_req_init(struct http_req *q);
int http_req_header(struct http_req *q, const char *fmt, ...) VG_PRINTF(2, 3);
void http_req_release(struct http_req *q);

struct http_resp {
    int rc;               /* 0: an HTTP answer came (status set); else a transport failure */
    long status;          /* HTTP status, 0 when none */
    char error[256];      /* the transport failure, as libcurl says it */
    struct buf body;      /* the first HTTP_MAX_RESP_BODY bytes of the answer */
    char retry_after[64]; /* the Retry-After header's value, or "" */
    int64_t took_ns;
};

struct http_client;
/* Called on the loop thread once per request; resp is valid during the call only. */
typedef void (*http_done_fn)(void *arg, const struct http_resp *resp);

int http_client_new(uv_loop_t *loop, struct http_client **out) VG_MUST_USE;
/* Starts a request (taking ownership of req's contents). Never blocks; fn is called
 * later, also when the request cannot start (rc < 0). */
void http_client_send(struct http_client *c, struct http_req *req, http_done_fn fn, void *arg);
/* Cancels every request (their fn get rc -ECANCELED), then closes the handles; done (may
 * be NULL) is called once everything is closed, when c has been freed. */
void http_client_close(struct http_client *c, void (*done)(void *), void *arg);

/* ---- the outbox (outbox.c; blocking SQLite: worker threads and the CLI only) ---- */

struct outbox;

enum outbox_entry_state { OB_QUEUED, OB_DELIVERED, OB_DEAD, OB_SUPERSEDED };
const char *outbox_state_name(enum outbox_entry_state s);

/* Opens (read_only: or fails with -ENOENT when missing) or creates <store>/outbox.db.
 * A new database's cursor is new_cursor. */
int outbox_open(const char *store_dir, bool read_only, uint64_t new_cursor, struct outbox **out,
                bool *created, struct errbuf *eb) VG_MUST_USE;
void outbox_close(struct outbox *ob);
const char *outbox_errmsg(const struct outbox *ob);

/* The seq up to which every alert record of the store has been enqueued. */
int outbox_cursor(struct outbox *ob, uint64_t *cursor) VG_MUST_USE;

/* One alert to enqueue, with the receivers it matched. */
struct outbox_add {
    const struct fwd_alert *a;
    struct span rec; /* the encoded record */
    const char *const *receivers;
    size_t nreceivers;
};
/* In one transaction: each alert (kept once), its incident updated, an entry per
 * receiver (ignored when (seq, receiver) is already there), older queued updates of
 * the same incident and receiver superseded, and the cursor raised to cursor (if
 * higher). Returns the entries added (>= 0) or VG_EDB. */
int outbox_enqueue(struct outbox *ob, const struct outbox_add *adds, size_t n, uint64_t cursor,
                   int64_t now_ns) VG_MUST_USE;

/* A queued entry with its alert record. */
struct outbox_item {
    int64_t id;
    uint64_t seq;
    char receiver[128];
    int attempts;
    int64_t created_ns;
    uint8_t *rec; /* owned */
    size_t rec_len;
};
void outbox_items_free(struct outbox_item *it, size_t n);

/* The oldest queued entries of a receiver, in seq order, at most limit. */
int outbox_next(struct outbox *ob, const char *receiver, size_t limit, struct outbox_item **out,
                size_t *n) VG_MUST_USE;

struct outbox_result {
    int64_t id;
    enum fwd_outcome outcome;
    long status;
    char error[300]; /* already redacted */
    int64_t at_ns;
};
int outbox_record(struct outbox *ob, const struct outbox_result *r, size_t n) VG_MUST_USE;

/* Open incidents whose latest state this receiver has been delivered and that have
 * nothing queued for it: what Alertmanager is re-sent. At most limit, those whose latest
 * record's seq is above after_seq, in seq order (the next page starts after the last). */
int outbox_open_delivered(struct outbox *ob, const char *receiver, uint64_t after_seq, size_t limit,
                          struct outbox_item **out, size_t *n) VG_MUST_USE;

struct outbox_rstats {
    uint64_t queued, dead;
    int64_t oldest_ns; /* created time of the oldest queued entry; 0 when none */
};
int outbox_receiver_stats(struct outbox *ob, const char *receiver,
                          struct outbox_rstats *st) VG_MUST_USE;
/* Entries of receiver queued before give_up_before_ns become dead letters ("gave up
 * after ..."); returns how many. */
int outbox_expire(struct outbox *ob, const char *receiver, int64_t give_up_before_ns,
                  const char *why) VG_MUST_USE;
/* Deletes delivered and superseded entries done before before_ns, resolved incidents
 * last updated before it, and alert records nothing refers to any more. */
int outbox_prune(struct outbox *ob, int64_t before_ns) VG_MUST_USE;

#endif
