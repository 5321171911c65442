/* collector/metrics.h: vigild's counters, exported by the admin listener as Prometheus
 * text. Owned by the loop thread; the store thread's figures are copied in under the
 * pipeline's mutex when a batch completes. */
#ifndef VG_COLLECTOR_METRICS_H
#define VG_COLLECTOR_METRICS_H

#include <stdint.h>

#include "common/buf.h"

enum listener_kind { LST_FORWARD, LST_SYSLOG, LST_HTTPS, LST_ADMIN, LST_COUNT };

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
};

struct metrics {
    struct lst_metrics lst[LST_COUNT];
    uint64_t events_stored;
    uint64_t batches_committed;
    uint64_t commit_failures;
    uint64_t commit_ns_total; /* time spent in store append+commit */
    uint64_t store_blocks;
    uint64_t store_bytes_raw;
    uint64_t store_bytes_stored;
    uint64_t vigil_events;            /* source=vigil self-events recorded */
    uint64_t vigil_events_dropped;    /* self-events not recorded: batch full */
    uint64_t rules_events;            /* durable records evaluated by the rules */
    uint64_t rules_alerts;            /* alerts recorded */
    uint64_t rules_groups;            /* correlation groups held now */
    uint64_t rules_groups_evicted;    /* groups dropped at the per-rule cap */
    uint64_t disk_full;               /* gauge: 1 while free space is below store.free_reserve */
    uint64_t disk_free_bytes;         /* gauge: free bytes at the last check */
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
    int64_t started_ns;
};

const char *listener_kind_name(enum listener_kind k);
/* Appends the Prometheus text exposition of m. */
int metrics_render(const struct metrics *m, struct buf *out);

#endif
