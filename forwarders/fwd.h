/* forwarders/fwd.h: alerts reach a human (DESIGN.md "Forwarders"). vigild hands every
 * durable record to fwd_on_record; alert records (schemas/alert.md) enter a durable
 * SQLite outbox (<store>/outbox.db), one entry per (alert record seq, receiver) whose
 * match fits, together with a cursor: the seq up to which every alert of the store has
 * been enqueued. After a crash, a scan of the store from the cursor enqueues what is
 * missing, so every alert in the store is either delivered or still queued. Delivery
 * runs after, on the loop through libcurl's multi interface, with backoff and jitter
 * for what may succeed later, dead letters for what never will, a rate limit per
 * receiver, and Alertmanager's re-sends; the outbox's SQLite work runs off the loop.
 *
 * `vigil alerts` reads and edits the same outbox (fwd_outbox_*), and sends test alerts
 * (fwd_test_send). */
#ifndef VG_FORWARDERS_FWD_H
#define VG_FORWARDERS_FWD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/errbuf.h"
#include "common/span.h"

/* ---- in vigild (loop thread) ---- */

struct fwd;

/* Checks every forwarder of cfg (type, URL, match, secrets readable, keys of the wrong
 * type) with file:line:key errors. Blocks on reading secret files. Returns 0 or
 * VG_ECONFIG. */
int fwd_config_check(const struct vg_config *cfg, struct errbuf *eb) VG_MUST_USE;

/* Makes the forwarders of cfg for a vigild whose store is store_dir: checks them (as
 * fwd_config_check) and, when there is at least one, opens or creates the outbox
 * (blocking: call before the loop runs). next_seq is the store's next seq: a new outbox
 * starts its cursor just below it (history is not paged), an existing one is caught up
 * from its cursor to it by fwd_start. Returns 0 with *out (always made, even with no
 * forwarders, so that SIGHUP can add some) or a negative code with eb. */
int fwd_new(uv_loop_t *loop, const struct vg_config *cfg, const char *store_dir, uint64_t next_seq,
            struct fwd **out, struct errbuf *eb) VG_MUST_USE;
/* Starts the catch-up scan, the timers and delivery. */
void fwd_start(struct fwd *f);
/* The pipeline's committed-record hook: called for each durable record in seq order.
 * Copies alert records for the outbox; returns at once for others. Never blocks. */
void fwd_on_record(void *arg, int64_t ts, uint64_t seq, struct span rec);
/* SIGHUP: reads config_path off the loop and, if its forwarders all check, swaps them
 * in (queued entries stay; requests in flight finish). Logs what happened. */
void fwd_reload(struct fwd *f, const char *config_path);
/* SIGTERM, once the pipeline has flushed its last records: finishes the outbox work
 * queued (enqueues and results), records the cursor, cancels requests in flight (their
 * entries stay queued), then calls done(arg) on the loop thread. */
void fwd_close(struct fwd *f, void (*done)(void *), void *arg);
/* After the loop ended. Takes NULL. */
void fwd_free(struct fwd *f);
/* Appends the per-receiver metrics (Prometheus text). */
int fwd_metrics_render(const struct fwd *f, struct buf *out) VG_MUST_USE;

/* ---- `vigil alerts` (blocking; opens <store>/outbox.db itself) ---- */

struct fwd_incident_row {
    const char *incident, *fingerprint, *rule_id, *title, *severity;
    const char *state;      /* "firing" or "resolved" */
    const char *group_json; /* {"field":"value",...} */
    int64_t first_seen, last_seen;
    uint64_t count;
    const char *deliveries; /* "oncall=delivered, pager=queued (3 attempts)" */
};
typedef int (*fwd_incident_fn)(void *arg, const struct fwd_incident_row *r);
/* Incidents, newest first (state: "firing", "resolved" or NULL for both). Returns 0,
 * fn's nonzero value, -ENOENT (no outbox: no forwarder ever ran) or VG_EDB. */
int fwd_outbox_incidents(const char *store_dir, const char *state, size_t limit, fwd_incident_fn fn,
                         void *arg, struct errbuf *eb) VG_MUST_USE;

struct fwd_entry_row {
    int64_t id;
    uint64_t seq;
    const char *receiver, *state, *alert_state, *incident, *title, *error;
    int attempts;
    long status;
    int64_t created_ns, done_ns;
};
typedef int (*fwd_entry_fn)(void *arg, const struct fwd_entry_row *r);
/* Entries in the state given ("queued", "dead", "delivered"; NULL: queued and dead),
 * oldest first. */
int fwd_outbox_entries(const char *store_dir, const char *state, size_t limit, fwd_entry_fn fn,
                       void *arg, struct errbuf *eb) VG_MUST_USE;

/* Every entry (any state: "queued", "delivered", "dead", "superseded") of the alert
 * records seq first_seq and after, by seq then receiver (`vigil drill`: the pages of a
 * drill's alerts). Returns 0, fn's nonzero value, -ENOENT (no outbox) or VG_EDB. */
int fwd_outbox_entries_from(const char *store_dir, uint64_t first_seq, fwd_entry_fn fn, void *arg,
                            struct errbuf *eb) VG_MUST_USE;

struct fwd_summary_row {
    const char *receiver;
    uint64_t queued, dead, delivered;
    int64_t oldest_queued_ns; /* 0 when nothing is queued */
};
typedef int (*fwd_summary_fn)(void *arg, const struct fwd_summary_row *r);
int fwd_outbox_summary(const char *store_dir, fwd_summary_fn fn, void *arg,
                       struct errbuf *eb) VG_MUST_USE;

/* Queues again the dead letter id (id > 0), or every dead letter (id 0). vigild picks
 * them up within a second. Returns the number queued again, or -ENOENT (no such dead
 * letter), VG_EDB. */
int fwd_outbox_replay(const char *store_dir, int64_t id, struct errbuf *eb) VG_MUST_USE;

/* `vigil alerts test RECEIVER`: sends a test alert (and, where the receiver has one, its
 * resolve) to the forwarder of cfg named receiver with its own loop, and writes what
 * the receiver answered to report. Returns 0 when every request was accepted (2xx),
 * 1 when one was not, or a negative code with eb (unknown receiver, bad config). */
int fwd_test_send(const struct vg_config *cfg, const char *receiver, FILE *report,
                  struct errbuf *eb);

#endif
