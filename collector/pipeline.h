/* collector/pipeline.h: from decoded events to durable storage, with group commit.
 *
 * The loop thread adds encoded records to the open batch and registers "when durable"
 * waiters (a Forward chunk's ack, an HTTP 200). While the store thread commits one
 * batch, the next one fills; when the commit returns, every waiter of the committed
 * batch is called on the loop thread and the filled batch goes to the store thread at
 * once. Many connections' events thus share one fsync, and nothing waits for a timer.
 * The open batch is bounded (batch_max_bytes): pipeline_full() tells listeners to stop
 * reading (backpressure) and the drain callback tells them to resume.
 *
 * Between batches, and at least once a second when idle, the store thread keeps house
 * (struct pipeline_policy): it seals ended partitions, runs retention (at start, then
 * every minute) and checks the free space of the store's file system. Below
 * store.free_reserve it refuses every batch (waiters get -ENOSPC: nothing is
 * acknowledged, agents keep their data and retry) but still stores the collector's own
 * evidence (pipeline_add_evidence), from the reserve; it resumes by itself when space
 * returns. What the loop must record (disk full, space back, a deletion) comes back as
 * notices through the completion path, never by the store thread calling into vigild. */
#ifndef VG_COLLECTOR_PIPELINE_H
#define VG_COLLECTOR_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/errbuf.h"
#include "schemas/record.h"
#include "store/store.h"

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

enum pipeline_notice_kind {
    PIPELINE_DISK_FULL,    /* free space went below the reserve: ingest refused */
    PIPELINE_DISK_OK,      /* it came back: ingest resumed */
    PIPELINE_DELETED,      /* retention deleted a segment (del) */
    PIPELINE_DELETED_MORE, /* count more deletions than the notice queue holds */
};

/* What the store thread tells the loop. Metrics are updated by the pipeline itself. */
struct pipeline_notice {
    enum pipeline_notice_kind kind;
    uint64_t free_bytes;      /* DISK_*: free bytes at the check */
    uint64_t reserve_bytes;   /* DISK_*: store.free_reserve */
    int64_t duration_ns;      /* DISK_OK: how long ingest was refused */
    uint64_t refused;         /* DISK_OK: events refused meanwhile */
    uint64_t count;           /* DELETED_MORE */
    struct store_deleted del; /* DELETED */
};
/* Called on the loop thread for each notice, in order. */
typedef void (*pipeline_notice_fn)(void *arg, const struct pipeline_notice *n);

/* The store thread's housekeeping. Zero fields take the defaults. */
struct pipeline_policy {
    const char *store_dir;            /* the file system checked for free space */
    uint64_t free_reserve_bytes;      /* store.free_reserve; 0: never refuse */
    struct store_retention retention; /* store.retention; zero limits: none */
    int64_t seal_every_ns;            /* 10 s */
    int64_t seal_grace_ns;            /* partitions sealed this long after they end: 60 s */
    int64_t retention_every_ns;       /* 60 s */
    int64_t disk_check_every_ns;      /* 1 s */
    bool compact;                     /* compact sealed segments (store.compaction) on a
                                         thread of their own, at low CPU priority */
    struct store_compact_opts compact_opts;
    int64_t compact_every_ns;     /* looking for a segment to compact when there was none: 10 s */
    pipeline_notice_fn on_notice; /* may be NULL */
    void *notice_arg;
};

/* Takes ownership of st (the store thread uses it from now on). first_seq is the next
 * seq to assign (store_next_seq). batch_max_bytes is the soft limit checked between
 * messages; one message may add up to batch_slack_bytes more. pol (copied; NULL: no
 * disk check, no retention) is the housekeeping. Starts the store thread. */
int pipeline_new(uv_loop_t *loop, struct store *st, uint64_t first_seq, size_t batch_max_bytes,
                 size_t batch_slack_bytes, struct metrics *m, pipeline_drain_fn on_drain,
                 void *drain_arg, const struct pipeline_policy *pol, struct pipeline **out,
                 struct errbuf *eb);

/* Stamps r with seq (and received and ts, if unset) and appends its encoding to the
 * open batch. Returns 0, or VG_ELIMIT past the hard limit (nothing added). */
int pipeline_add(struct pipeline *p, struct rec *r);

/* pipeline_add for the collector's own evidence (source=vigil events): stored even
 * while the disk is below store.free_reserve, when every other record is refused. */
int pipeline_add_evidence(struct pipeline *p, struct rec *r);

/* Registers a waiter for everything added so far. Never fails. */
void pipeline_when_durable(struct pipeline *p, pipeline_done_fn fn, void *arg);

/* Adds a subscriber of durable records: every record of every committed batch goes to
 * each subscriber in seq order, subscribers in the order they subscribed, before the
 * batch's waiters run. Returns 0, or VG_ELIMIT past PIPELINE_MAX_SUBSCRIBERS. */
int pipeline_subscribe(struct pipeline *p, pipeline_committed_fn fn, void *arg) VG_MUST_USE;

/* True when the open batch is at or above its byte limit. */
bool pipeline_full(const struct pipeline *p);

/* Flushes the open batch, waits for the store thread, closes the store, then calls
 * fn. After this, pipeline_add must not be called. */
void pipeline_close(struct pipeline *p, pipeline_closed_fn fn, void *arg);

/* Frees a closed pipeline. */
void pipeline_free(struct pipeline *p);

#endif
