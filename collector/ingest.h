/* collector/ingest.h: the one interface between a listener and what keeps its events.
 *
 * A listener (conn.c and the Forward, syslog and HTTPS protocols) hands each mapped
 * event to an ingest port, asks it to call back once everything handed over so far is
 * durable (a Forward ack, an HTTP 200 wait for that), records evidence about its peers
 * through it (refused handshakes, rejected input) and stops reading while the port is
 * full. It sees nothing else of the daemon.
 *
 * In one vigild the port is the pipeline: group commit into the local store
 * (vigild.c). An ingest node of a cluster (DESIGN.md "Beyond one machine") provides a
 * port that publishes each group commit to JetStream and calls the waiters back on the
 * publish ack; the listeners do not change. Tests provide a fake.
 *
 * Loop thread only, every operation. */
#ifndef VG_COLLECTOR_INGEST_H
#define VG_COLLECTOR_INGEST_H

#include <stdbool.h>

#include "common/vg.h"
#include "schemas/record.h"

/* Called once, on the loop thread: 0 when what it waited for is durable, or the
 * negative code of the failure (nothing of it may be acknowledged). */
typedef void (*ingest_done_fn)(void *arg, int rc);

/* A source=vigil event: what the collector saw of a peer, stored as evidence. */
struct ingest_evidence {
    enum vg_severity sev;
    const char *action;  /* "tls_handshake", "rejected_input", "forward_auth", ... */
    const char *outcome; /* "failure" or "success" */
    const char *src_ip;  /* the peer's address, or NULL */
    const char *agent;   /* the peer's certificate identity, or NULL ("vigild") */
    const char *message; /* what happened, for a human */
    /* Made by a peer that has not proved who it is (a refused handshake, a summary of
     * such refusals): below store.free_reserve it may use only the strangers' part of
     * the evidence allowance (store.evidence_reserve), so strangers cannot use it up. */
    bool stranger;
    struct span raw; /* a msgpack map of details for queries (raw.*), or empty */
};

struct ingest_port_ops {
    /* Takes one mapped event (its spans are read during the call only): gives it its
     * seq, received and ts when unset, and queues it for durability. Returns 0, or
     * VG_ELIMIT when the queue is past its hard limit (nothing taken). */
    int (*ingest)(void *ctx, struct rec *r);
    /* Calls fn(arg, rc) once everything ingested before this call is durable (rc 0) or
     * cannot be (rc < 0). Never fails. */
    void (*when_durable)(void *ctx, ingest_done_fn fn, void *arg);
    /* Records ev as a source=vigil event, kept even while ordinary events are refused
     * (a full disk: within store.evidence_reserve) and when the open batch is past its
     * limit (room is kept for evidence). Never fails: what cannot be recorded is counted
     * and logged. */
    void (*evidence)(void *ctx, const struct ingest_evidence *ev);
    /* True while the port takes no more: listeners stop reading (backpressure) until
     * they are resumed (conn_resume_all). */
    bool (*full)(void *ctx);
    /* A unit: what is ingested between unit_begin and unit_end (a Forward message, an
     * HTTPS request) is kept or dropped as one: unit_end(keep false) takes every event
     * of it back, as if it had never been ingested, so a unit that turns out malformed
     * or too large halfway leaves nothing stored that its sender would send again.
     * Units do not nest; no waiter is registered and no evidence recorded inside one
     * (both come after unit_end). */
    void (*unit_begin)(void *ctx);
    void (*unit_end)(void *ctx, bool keep);
};

struct ingest_port {
    const struct ingest_port_ops *ops;
    void *ctx;
};

static inline int ingest_add(struct ingest_port *p, struct rec *r)
{
    return p->ops->ingest(p->ctx, r);
}

static inline void ingest_when_durable(struct ingest_port *p, ingest_done_fn fn, void *arg)
{
    p->ops->when_durable(p->ctx, fn, arg);
}

static inline bool ingest_full(struct ingest_port *p)
{
    return p->ops->full(p->ctx);
}

static inline void ingest_unit_begin(struct ingest_port *p)
{
    p->ops->unit_begin(p->ctx);
}

static inline void ingest_unit_end(struct ingest_port *p, bool keep)
{
    p->ops->unit_end(p->ctx, keep);
}

/* Formats the message and records a source=vigil event through p (ops->evidence). */
void ingest_self_event(struct ingest_port *p, enum vg_severity sev, const char *action,
                       const char *outcome, const char *src_ip, const char *agent, const char *fmt,
                       ...) VG_PRINTF(7, 8);

/* Ingests (ingest_add: part of the open unit, subject to the free reserve like events)
 * a source=vigil rejected_input record about input that did not become an event, with
 * the rejected bytes as its raw (one msgpack value) so nothing is lost: message says
 * why; ts (0: now) its event time. Returns ingest_add's result. */
int ingest_keep_rejected(struct ingest_port *p, const char *host, const char *agent,
                         const char *src_ip, const char *message, struct span raw, int64_t ts);

/* Fills r (initialized first) with the source=vigil event for ev, stamped with host: the
 * record a port stores for ops->evidence. Spans point into ev's strings and host. */
void ingest_evidence_rec(const struct ingest_evidence *ev, const char *host, struct rec *r);

#endif
