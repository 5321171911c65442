/* collector/pipeline.h: from decoded events to durable storage, with group commit.
 *
 * The loop thread adds encoded records to the open batch and registers "when durable"
 * waiters (a Forward chunk's ack, an HTTP 200). While the store thread commits one
 * batch, the next one fills; when the commit returns, every waiter of the committed
 * batch is called on the loop thread and the filled batch goes to the store thread at
 * once. Many connections' events thus share one fsync, and nothing waits for a timer.
 * The open batch is bounded (batch_max_bytes): pipeline_full() tells listeners to stop
 * reading (backpressure) and the drain callback tells them to resume. Durable records
 * go to the subscribers (the live rules, later the forwarders) in seq order.
 *
 * What a batch is committed to is the pipeline's sink (struct pipeline_sink): in vigild
 * the store, kept by store/keeper.h (store_sink.c), which between batches and at least
 * once a second when idle also keeps house on the store thread. While the sink refuses
 * (the disk below store.free_reserve) only the collector's own evidence
 * (pipeline_add_evidence) is committed and the batch's waiters get -ENOSPC: nothing is
 * acknowledged, agents keep their data and retry. What the loop must record comes back
 * through the sink's report on the loop thread, never by the store thread calling into
 * vigild. Tests give the pipeline a fake sink. */
#ifndef VG_COLLECTOR_PIPELINE_H
#define VG_COLLECTOR_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/errbuf.h"
#include "schemas/record.h"

struct pipeline;
struct metrics;

/* Called on the loop thread with 0 when everything added before the waiter was
 * registered is durable, or with the negative code of the failed commit. */
typedef void (*pipeline_done_fn)(void *arg, int rc);
/* Called on the loop thread when the open batch has room again. */
typedef void (*pipeline_drain_fn)(void *arg);
/* Called on the loop thread for each record of a committed batch, in seq order, after
 * it is durable and before the batch's waiters run. It may add records (alerts): they
 * join the next batch. */
typedef void (*pipeline_committed_fn)(void *arg, int64_t ts, uint64_t seq, struct span rec);
/* Subscribers of durable records at most (the live rules, the forwarders, ...). */
#define PIPELINE_MAX_SUBSCRIBERS 4
/* Called on the loop thread when pipeline_close() has flushed everything. */
typedef void (*pipeline_closed_fn)(void *arg);

/* Where batches go. Every operation but report runs on the store thread. */
struct pipeline_sink_ops {
    /* Optional. Called once by pipeline_new before the store thread starts: a sink with
     * threads of its own keeps p to wake the store thread (pipeline_kick). */
    void (*start)(void *ctx, struct pipeline *p);
    /* True while only evidence is to be committed (the others are refused). Checked
     * once per batch, before its first append. */
    bool (*refusing)(void *ctx);
    /* Adds one record (copied) to what the next commit makes durable. Returns 0 or a
     * negative code: the batch fails, nothing of it since the last commit is durable. */
    int (*append)(void *ctx, int64_t ts, uint64_t seq, struct span rec);
    /* Makes everything appended durable. refused: records of this batch not appended
     * because the sink was refusing. Returns 0 or a negative code (nothing durable). */
    int (*commit)(void *ctx, size_t refused);
    /* After each batch and when idle: the sink's own work. Returns when (vg_mono_ns) it
     * wants to run again at the latest; sets *news when report has something to say. */
    int64_t (*upkeep)(void *ctx, int64_t now_mono, bool *news);
    /* Loop thread, each time the store thread woke it (a batch done, news), before the
     * batch's waiters run: what the sink tells the daemon (metrics, evidence). */
    void (*report)(void *ctx);
    /* Once the store thread has ended: flush, close, free. */
    void (*close)(void *ctx);
};

struct pipeline_sink {
    const struct pipeline_sink_ops *ops;
    void *ctx;
};

/* The bounds of a batch and of the evidence kept while the sink refuses. */
struct pipeline_limits {
    size_t batch_max_bytes;   /* soft limit: pipeline_full() from here on */
    size_t batch_slack_bytes; /* one message may add this much past it: the hard limit */
    size_t evidence_room;     /* past the hard limit, room for evidence only */
    /* While the sink refuses (the disk below store.free_reserve): record bytes of
     * evidence stored per episode at most, and of them from strangers at most. Past
     * them evidence is refused too (counted: vigil_evidence_refused_disk_full_total). */
    uint64_t refusing_evidence_bytes;
    uint64_t refusing_stranger_bytes;
};

/* Takes ownership of sink (closed by pipeline_close). first_seq is the next seq to
 * assign (store_next_seq); lim is copied. Starts the store thread, which runs sink
 * upkeep at once (at start: seal, retention, free space). */
int pipeline_new(uv_loop_t *loop, const struct pipeline_sink *sink, uint64_t first_seq,
                 const struct pipeline_limits *lim, struct metrics *m, pipeline_drain_fn on_drain,
                 void *drain_arg, struct pipeline **out, struct errbuf *eb);

/* Any thread: the store thread runs the sink's upkeep soon (a compaction was built). */
void pipeline_kick(struct pipeline *p);

/* Stamps r with seq (and received and ts, if unset) and appends its encoding to the
 * open batch. Returns 0, or VG_ELIMIT past the hard limit (nothing added). */
int pipeline_add(struct pipeline *p, struct rec *r);

/* pipeline_add for the collector's own evidence (source=vigil events): it may use the
 * batch's evidence room past the hard limit, and is stored while the disk is below
 * store.free_reserve (when every other record is refused) within the refusing
 * allowances of struct pipeline_limits; stranger: evidence about an unauthenticated peer,
 * which has the smaller allowance. Returns 0, or VG_ELIMIT when even the evidence room
 * is full. */
int pipeline_add_evidence(struct pipeline *p, struct rec *r, bool stranger);

/* Where the open batch stands, to take back what was added after it (a unit that
 * turned out bad or too large: collector/ingest.h). Valid until the loop next runs: the
 * batch is handed to the store thread only between loop callbacks. */
struct pipeline_mark {
    const void *batch;
    size_t len, nrefs;
    uint64_t next_seq;
};
void pipeline_mark(const struct pipeline *p, struct pipeline_mark *m);
/* Takes back every record added since m (their seqs are given out again), as if they
 * had never been added. Waiters must not have been registered since m. */
void pipeline_rollback(struct pipeline *p, const struct pipeline_mark *m);

/* Registers a waiter for everything added so far. Never fails. */
void pipeline_when_durable(struct pipeline *p, pipeline_done_fn fn, void *arg);

/* Adds a subscriber of durable records: every record of every committed batch goes to
 * each subscriber in seq order, subscribers in the order they subscribed, before the
 * batch's waiters run. Returns 0, or VG_ELIMIT past PIPELINE_MAX_SUBSCRIBERS. */
int pipeline_subscribe(struct pipeline *p, pipeline_committed_fn fn, void *arg) VG_MUST_USE;

/* True when the open batch is at or above its byte limit. */
bool pipeline_full(const struct pipeline *p);

/* True when no record is on its way to the subscribers (pipeline_subscribe): the open
 * batch is empty and none is in flight (loop thread). A record added after this has a
 * received time no earlier than now (the rules' clock relies on it: rules/TIME.md). */
bool pipeline_idle(struct pipeline *p);

/* Flushes the open batch, waits for the store thread, closes the sink, then calls fn.
 * After this, pipeline_add must not be called. */
void pipeline_close(struct pipeline *p, pipeline_closed_fn fn, void *arg);

/* Frees a closed pipeline. */
void pipeline_free(struct pipeline *p);

#endif
