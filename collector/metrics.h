/* collector/metrics.h: vigild's counters, gauges and histograms, exported by the admin
 * listener as Prometheus text (`promtool check metrics` clean). Owned by the loop
 * thread; the store thread's figures are copied in under the pipeline's mutex when a
 * batch completes. Labelled families are bounded: past their cap, new label values
 * count into one "(other)" series. */
#ifndef VG_COLLECTOR_METRICS_H
#define VG_COLLECTOR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/span.h"

enum listener_kind { LST_FORWARD, LST_SYSLOG, LST_HTTPS, LST_ADMIN, LST_COUNT };

struct metrics;

struct lst_metrics {
    uint64_t conns_accepted;
    uint64_t conns_refused_limit; /* over listen.max_connections */
    uint64_t conns_open;
    uint64_t tls_handshake_failures;
    uint64_t tls_handshake_timeouts;
    uint64_t frames;          /* messages/documents/lines decoded */
    uint64_t frames_rejected; /* malformed or over limit */
    uint64_t events_received;
    uint64_t events_rejected; /* an entry that did not map */
    uint64_t bytes_received;  /* ciphertext */
    uint64_t acks_sent;
    uint64_t conns_dropped_unacked; /* closed with events not yet acknowledged */
    uint64_t pauses;                /* backpressure: reading stopped */
    uint64_t auth_failures;         /* Forward shared-key (PING) authentications refused */
    uint64_t conns_refused_rate;    /* over listen.accept_rate_per_ip */
    uint64_t conns_refused_per_ip;  /* over listen.max_handshakes_per_ip */
    uint64_t handshakes_evicted;    /* cut at listen.max_handshakes for a newer connection */
    uint64_t header_timeouts;       /* an HTTP request head past listen.header_timeout */
    uint64_t frame_timeouts;        /* a frame past listen.frame_timeout */
    uint64_t mem_pauses;            /* reading stopped for limits.memory */
    uint64_t tls_unauthorized;      /* certificates the CA signed that tls.agents refused */
};

/* A latency histogram: fixed upper bounds in seconds (le), cumulative when rendered. */
#define METRICS_HIST_MAX 16
struct metrics_hist {
    uint64_t counts[METRICS_HIST_MAX + 1]; /* per bucket; the last is +Inf */
    uint64_t count;
    int64_t sum_ns;
};
enum metrics_hist_kind {
    METRICS_HIST_ACK,     /* listener hands events over -> durable (the ack can go) */
    METRICS_HIST_COMMIT,  /* one group commit: append, compress, fsync */
    METRICS_HIST_RULES,   /* the rules over one durable event */
    METRICS_HIST_PUBLISH, /* cluster ingest: one message to JetStream's ack (rendered in a
                             cluster only) */
    METRICS_HIST_COUNT,
};
void metrics_hist_observe(struct metrics *m, enum metrics_hist_kind k, int64_t ns);
/* The same into a histogram of kind k held elsewhere (another thread's, copied in). */
void metrics_hist_add(struct metrics_hist *h, enum metrics_hist_kind k, int64_t ns);

/* A counter per label value (an agent, a rule), at most cap values; the rest count in
 * other. Memory is allocated on first use and freed by metrics_release. */
#define METRICS_OTHER "(other)"
struct metrics_label {
    char *value;  /* the label value, as given (escaped when rendered) */
    char *value2; /* a second label's value, or NULL (a rule's title) */
    uint64_t n;
};
struct metrics_labels {
    struct metrics_label *e;
    uint32_t *index; /* open addressing over e, 2 * cap slots (0: empty, else i + 1) */
    size_t len, cap;
    uint64_t other;
};
/* Adds n to value's counter (value2: a second label, set when value is first seen). */
void metrics_labels_add(struct metrics_labels *t, size_t cap, struct span value, struct span value2,
                        uint64_t n);

#define METRICS_MAX_AGENTS 256 /* agents (certificate identities) with their own series */
#define METRICS_MAX_RULES  512 /* rules with their own alert series */

struct metrics {
    struct lst_metrics lst[LST_COUNT];
    struct metrics_hist hist[METRICS_HIST_COUNT];
    struct metrics_labels agent_events; /* durable-bound events per agent */
    struct metrics_labels rule_alerts;  /* alerts per rule (id, title) */
    uint64_t events_stored;
    uint64_t batches_committed;
    uint64_t commit_failures;
    uint64_t store_blocks;
    uint64_t store_bytes_raw;
    uint64_t store_bytes_stored;
    uint64_t vigil_events;            /* source=vigil self-events recorded */
    uint64_t vigil_events_dropped;    /* self-events not recorded: batch full */
    uint64_t evidence_refused_disk;   /* evidence not stored: refusing allowance used up */
    uint64_t refusal_summaries;       /* source=vigil summaries of strangers' refusals */
    uint64_t refusals_summarized;     /* refusals only counted in a summary */
    uint64_t handshakes_pending;      /* gauge: connections in their TLS handshake */
    uint64_t guard_addrs;             /* gauge: addresses the guard tracks (guard.h) */
    uint64_t memory_limit;            /* gauge: limits.memory */
    uint64_t memory_used;             /* gauge: connection buffers charged to it now */
    uint64_t memory_peak;             /* gauge: the most charged at once */
    uint64_t memory_waiting;          /* gauge: connections waiting for memory */
    uint64_t store_failing;           /* gauge: 1 from a failed commit to the next good one */
    uint64_t tls_reloads;             /* TLS files reloaded (SIGHUP, a file changed) */
    uint64_t tls_reload_failures;     /* reloads that failed (the old files stay) */
    int64_t tls_crl_next_update_ns;   /* gauge: the CRL's next update, 0 without one */
    uint64_t tls_crl_refuse;          /* tls.crl_expired is refuse */
    uint64_t rules_events;            /* durable records evaluated by the rules */
    uint64_t rules_alerts;            /* alerts recorded */
    uint64_t rules_groups;            /* correlation groups held now */
    uint64_t rules_groups_evicted;    /* groups dropped at the per-rule cap */
    uint64_t rules_alerts_dropped;    /* alerts not recorded (batch full) */
    uint64_t rules_eval_failures;     /* events the rules could not evaluate */
    uint64_t disk_full;               /* gauge: 1 while free space is below store.free_reserve */
    uint64_t disk_free_bytes;         /* gauge: free bytes at the last check */
    uint64_t disk_reserve_bytes;      /* gauge: store.free_reserve */
    uint64_t store_disk_bytes;        /* gauge: bytes the store's files take on disk */
    uint64_t disk_full_episodes;      /* times ingest stopped for store.free_reserve */
    uint64_t events_refused_disk;     /* events not stored (nor acknowledged): disk full */
    uint64_t retention_deleted;       /* segments deleted by retention */
    uint64_t retention_bytes;         /* their bytes */
    uint64_t retention_held;          /* gauge: partitions past retention kept by a hold */
    uint64_t retention_runs;          /* retention passes run (store.retention.interval) */
    uint64_t compactions;             /* sealed segments compacted (segment.md 12) */
    uint64_t compaction_skipped;      /* left as they were: they do not verify */
    uint64_t compaction_failures;     /* compactions that failed (I/O, catalog) */
    uint64_t compaction_bytes_before; /* bytes of the segments compacted, before and after */
    uint64_t compaction_bytes_after;
    /* cluster: (all 0 without it; rendered only with it) */
    uint64_t cluster_ingest;           /* this vigild runs the ingest role */
    uint64_t nats_connected;           /* gauge: 1 while connected to a NATS server */
    uint64_t cluster_published;        /* messages JetStream acknowledged */
    uint64_t cluster_published_bytes;  /* their payload bytes */
    uint64_t cluster_publish_dups;     /* acks of a message id the stream already had */
    uint64_t cluster_publish_retries;  /* publishes tried again (no ack in time) */
    uint64_t cluster_publish_failures; /* group commits not published (nothing acknowledged) */
    int64_t started_ns;
};

const char *listener_kind_name(enum listener_kind k);
/* Appends the Prometheus text exposition of m. */
int metrics_render(const struct metrics *m, struct buf *out);
/* Whether ingest is taken now (GET /healthz): false with the reason in why (disk below
 * store.free_reserve, the store failing to commit, the memory budget used up). */
bool metrics_ready(const struct metrics *m, char *why, size_t cap);
/* Frees the labelled families' memory (m stays usable: empty). */
void metrics_release(struct metrics *m);

#endif
