/* common/cnats.h: vigil's one door to NATS JetStream (cnats, libnats-dev; no other
 * file includes <nats/nats.h>): vigild's cluster roles and `vigil cluster status`. A connection
 * that reconnects by itself, the events stream (created when missing, schemas/cluster.md 2),
 * publishing with a message id and waiting for the publish ack, and durable pull consumers read in
 * stream order.
 *
 * Threads: cnats runs its own threads for the sockets. A struct cnats may be used from
 * any thread; a struct cnats_sub by one thread at a time. Every call here blocks, at most
 * for the timeout it is given: in vigild call them from the pipeline's store thread or
 * a store node's shard threads, never from the loop. */
#ifndef VG_COMMON_CNATS_H
#define VG_COMMON_CNATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/errbuf.h"
#include "common/span.h"

/* schemas/cluster.md 2: the stream, its subjects. */
#define CLUSTER_EVENTS_STREAM   "vigil-events"
#define CLUSTER_EVENTS_SUBJECTS "vigil.ev.*"
#define CLUSTER_EVENTS_PREFIX   "vigil.ev."

struct cnats;
struct cnats_sub;

enum cnats_mode {
    /* A daemon's: a server that is not reachable yet is not an error; the connection
     * keeps trying in the background, forever, and cnats_connected says when it is up. */
    CNATS_BACKGROUND,
    /* A command's: one attempt at each server; none reachable is an error. */
    CNATS_ONCE,
};

/* Connects to cfg->nats (TLS from cfg->tls; name: how the servers list this client).
 * Returns 0 with *out (cnats_free), or VG_ECONFIG (TLS files cnats refused) / -ENOTCONN /
 * -EIO with eb. */
int cnats_connect(const struct cluster_cfg *cfg, const char *name, enum cnats_mode mode,
                  struct cnats **out, struct errbuf *eb) VG_MUST_USE;

/* True while connected to one of the servers. */
bool cnats_connected(struct cnats *c);

/* The largest payload the server connected to takes (its max_payload), or 0 when not
 * connected. */
size_t cnats_max_payload(struct cnats *c);

/* The events stream exists (created as schemas/cluster.md 2 says when it does not:
 * cfg's replicas, max_age, max_bytes; a two-minute duplicate window). Once it succeeded it
 * is not asked again. Returns 0, or -EIO / -ETIMEDOUT with eb. */
int cnats_stream_ensure(struct cnats *c, struct errbuf *eb) VG_MUST_USE;

/* Publishes data on subject with message id msgid and waits up to timeout_ms for
 * JetStream's ack (stored on a quorum of the stream's replicas). *seq gets the stream
 * sequence; *dup is true when the stream already had msgid (a retry: stored once).
 * Returns 0, or -ETIMEDOUT (no ack in time: maybe stored, publish again with the same
 * msgid), -ENOTCONN, -EIO with eb. */
int cnats_publish(struct cnats *c, const char *subject, struct span data, const char *msgid,
                  int64_t timeout_ms, uint64_t *seq, bool *dup, struct errbuf *eb) VG_MUST_USE;

/* When the stream stored message seq (its Nats-Time-Stamp): *time_ns. Returns 0, or
 * -ENOENT (no longer in the stream), -ENOTCONN, -EIO with eb. */
int cnats_msg_time(struct cnats *c, uint64_t seq, int64_t *time_ns, struct errbuf *eb) VG_MUST_USE;

/* (Re)creates the durable pull consumer durable on the events stream, filtered on filter,
 * delivering from stream sequence start_seq (1: the start of the stream) with explicit
 * acks, and binds to it. An existing consumer of that name is deleted first: where to
 * start is the caller's to say (its store knows what it has). Returns 0 with *out
 * (cnats_sub_free), or -EIO / -ENOTCONN with eb. */
int cnats_sub_open(struct cnats *c, const char *durable, const char *filter, uint64_t start_seq,
                   struct cnats_sub **out, struct errbuf *eb) VG_MUST_USE;

/* One message of a fetch. data is valid until cnats_fetch_done. */
struct cnats_msg {
    struct span data;
    uint64_t stream_seq;
    int64_t time_ns;  /* when the stream stored it (the same on every consumer) */
    uint64_t pending; /* messages left for the consumer after this one */
    void *h;          /* cnats' message */
};

/* Fetches up to max (<= 256) messages in stream order into out, waiting up to
 * timeout_ms for the first. Returns how many (0: none in time), or -ENOTCONN / -EIO with
 * eb. The previous fetch must have been given back (cnats_fetch_done). */
int cnats_fetch(struct cnats_sub *s, struct cnats_msg *out, int max, int64_t timeout_ms,
                struct errbuf *eb);

/* Acknowledges m (the consumer moves past it). Returns 0 or -EIO. */
int cnats_ack(struct cnats_msg *m);

/* Gives back the messages of the last fetch. */
void cnats_fetch_done(struct cnats_sub *s);

/* The consumer's figures as the server has them: messages not yet delivered and
 * delivered but not acknowledged. Returns 0 or -EIO. */
int cnats_sub_lag(struct cnats_sub *s, uint64_t *pending, uint64_t *ack_pending);

void cnats_sub_free(struct cnats_sub *s); /* takes NULL */

/* Closes the connection and frees. Takes NULL. */
void cnats_free(struct cnats *c);

/* `vigil cluster status`: the stream as its servers see it. */
#define CNATS_MAX_PEERS 8
struct cnats_peer {
    char name[64];
    bool leader, current, offline;
    uint64_t lag;      /* operations behind the leader */
    int64_t active_ns; /* since the leader last heard from it */
};
struct cnats_stream_status {
    uint64_t msgs, bytes, first_seq, last_seq;
    int64_t last_ns; /* stream time of the last message */
    int64_t replicas, consumers;
    char leader[64];                          /* "" on a single server */
    struct cnats_peer peers[CNATS_MAX_PEERS]; /* the leader first */
    size_t npeers;
};
/* Returns 0, -ENOENT (no stream yet), or -ENOTCONN / -ETIMEDOUT / -EIO with eb. */
int cnats_stream_status(struct cnats *c, struct cnats_stream_status *out,
                        struct errbuf *eb) VG_MUST_USE;

struct cnats_consumer_status {
    char name[128];
    char filter[128];
    uint64_t delivered;   /* stream sequence of the last message delivered */
    uint64_t ack_floor;   /* ... acknowledged with everything before it: the stream
                             sequence up to which the consumer is done (past its last
                             message when caught up) */
    uint64_t pending;     /* not delivered yet */
    uint64_t ack_pending; /* delivered, not acknowledged */
    uint64_t redelivered;
    int64_t waiting;        /* pull requests waiting: a client is fetching */
    int64_t last_active_ns; /* when it last delivered (0: never) */
    char leader[64];
};
/* Every consumer of the events stream: *out (free) gets *n. Returns 0 or negative with eb. */
int cnats_consumers(struct cnats *c, struct cnats_consumer_status **out, size_t *n,
                    struct errbuf *eb) VG_MUST_USE;

/* At the end of the process, after every cnats_free: cnats' own threads and memory. */
void cnats_shutdown(void);

#endif
