/* collector/metrics.c: Prometheus text exposition of vigild's counters. Loop thread. */
#include "collector/metrics.h"

#include <inttypes.h>

#include "common/time.h"

const char *listener_kind_name(enum listener_kind k)
{
    static const char *names[LST_COUNT] = { "forward", "syslog", "https", "admin" };
    return (unsigned)k < LST_COUNT ? names[k] : "?";
}

struct lst_counter {
    const char *name;
    const char *help;
    const char *type;
    size_t off;
};

#define LC(field, type, help)                             \
 {                                                        \
#  field, help, type, offsetof(struct lst_metrics, field) \
 }

static const struct lst_counter lst_counters[] = {
    LC(conns_accepted, "counter", "TCP connections accepted"),
    LC(conns_refused_limit, "counter", "connections refused over listen.max_connections"),
    LC(conns_open, "gauge", "connections open now"),
    LC(tls_handshake_failures, "counter",
       "TLS handshakes refused (no or bad client certificate, not TLS)"),
    LC(tls_handshake_timeouts, "counter",
       "TLS handshakes not finished within tls.handshake_timeout"),
    LC(frames, "counter", "protocol messages decoded"),
    LC(frames_rejected, "counter", "protocol messages rejected as malformed or over a limit"),
    LC(events_received, "counter", "events decoded and queued for the store"),
    LC(events_rejected, "counter", "events that did not map to the schema"),
    LC(bytes_received, "counter", "bytes read from sockets"),
    LC(acks_sent, "counter", "acknowledgements sent after the events were durable"),
    LC(conns_dropped_unacked, "counter",
       "connections closed while events were not yet acknowledged"),
    LC(pauses, "counter", "times reading stopped for backpressure"),
    LC(auth_failures, "counter", "Forward shared-key authentications refused"),
};

int metrics_render(const struct metrics *m, struct buf *out)
{
    int rc = 0;

    for (size_t i = 0; i < VG_ARRAY_LEN(lst_counters) && rc == 0; i++) {
        const struct lst_counter *c = &lst_counters[i];
        rc = buf_appendf(out, "# HELP vigil_listener_%s %s\n# TYPE vigil_listener_%s %s\n", c->name,
                         c->help, c->name, c->type);
        for (int k = 0; k < LST_COUNT && rc == 0; k++) {
            const uint64_t *v = (const uint64_t *)((const char *)&m->lst[k] + c->off);
            rc = buf_appendf(out, "vigil_listener_%s{listener=\"%s\"} %" PRIu64 "\n", c->name,
                             listener_kind_name((enum listener_kind)k), *v);
        }
    }
    if (rc == 0) {
        rc = buf_appendf(
            out,
            "# HELP vigil_store_disk_full 1 while free space is below store.free_reserve "
            "(events refused)\n"
            "# TYPE vigil_store_disk_full gauge\nvigil_store_disk_full %" PRIu64 "\n"
            "# HELP vigil_store_free_bytes free bytes on the store's file system\n"
            "# TYPE vigil_store_free_bytes gauge\nvigil_store_free_bytes %" PRIu64 "\n"
            "# HELP vigil_store_disk_full_episodes_total times ingest stopped for "
            "store.free_reserve\n"
            "# TYPE vigil_store_disk_full_episodes_total counter\n"
            "vigil_store_disk_full_episodes_total %" PRIu64 "\n"
            "# HELP vigil_events_refused_disk_full_total events refused (not acknowledged) "
            "while the disk was full\n"
            "# TYPE vigil_events_refused_disk_full_total counter\n"
            "vigil_events_refused_disk_full_total %" PRIu64 "\n"
            "# HELP vigil_retention_segments_deleted_total segments deleted by retention\n"
            "# TYPE vigil_retention_segments_deleted_total counter\n"
            "vigil_retention_segments_deleted_total %" PRIu64 "\n"
            "# HELP vigil_retention_bytes_deleted_total bytes of segments deleted by retention\n"
            "# TYPE vigil_retention_bytes_deleted_total counter\n"
            "vigil_retention_bytes_deleted_total %" PRIu64 "\n"
            "# HELP vigil_retention_held_partitions partitions past retention kept by a legal "
            "hold\n"
            "# TYPE vigil_retention_held_partitions gauge\n"
            "vigil_retention_held_partitions %" PRIu64 "\n"
            "# HELP vigil_retention_runs_total retention passes run\n"
            "# TYPE vigil_retention_runs_total counter\nvigil_retention_runs_total %" PRIu64 "\n",
            m->disk_full, m->disk_free_bytes, m->disk_full_episodes, m->events_refused_disk,
            m->retention_deleted, m->retention_bytes, m->retention_held, m->retention_runs);
    }
    if (rc == 0) {
        rc = buf_appendf(
            out,
            "# HELP vigil_compactions_total sealed segments rewritten as compacted ones\n"
            "# TYPE vigil_compactions_total counter\nvigil_compactions_total %" PRIu64 "\n"
            "# HELP vigil_compaction_skipped_total sealed segments left as they were because "
            "they do not verify\n"
            "# TYPE vigil_compaction_skipped_total counter\n"
            "vigil_compaction_skipped_total %" PRIu64 "\n"
            "# HELP vigil_compaction_failures_total compactions that failed (I/O, catalog; "
            "retried)\n"
            "# TYPE vigil_compaction_failures_total counter\n"
            "vigil_compaction_failures_total %" PRIu64 "\n"
            "# HELP vigil_compaction_bytes_before_total bytes of the segments compacted\n"
            "# TYPE vigil_compaction_bytes_before_total counter\n"
            "vigil_compaction_bytes_before_total %" PRIu64 "\n"
            "# HELP vigil_compaction_bytes_after_total bytes of what replaced them\n"
            "# TYPE vigil_compaction_bytes_after_total counter\n"
            "vigil_compaction_bytes_after_total %" PRIu64 "\n",
            m->compactions, m->compaction_skipped, m->compaction_failures,
            m->compaction_bytes_before, m->compaction_bytes_after);
    }
    if (rc == 0) {
        rc = buf_appendf(
            out,
            "# HELP vigil_events_stored_total events durable in the store\n"
            "# TYPE vigil_events_stored_total counter\nvigil_events_stored_total %" PRIu64 "\n"
            "# HELP vigil_store_commits_total group commits (one fsync round each)\n"
            "# TYPE vigil_store_commits_total counter\nvigil_store_commits_total %" PRIu64 "\n"
            "# HELP vigil_store_commit_failures_total commits that failed (nothing acknowledged)\n"
            "# TYPE vigil_store_commit_failures_total counter\n"
            "vigil_store_commit_failures_total %" PRIu64 "\n"
            "# HELP vigil_store_commit_seconds_total time spent appending and committing\n"
            "# TYPE vigil_store_commit_seconds_total counter\n"
            "vigil_store_commit_seconds_total %.6f\n"
            "# HELP vigil_store_blocks_total blocks written\n"
            "# TYPE vigil_store_blocks_total counter\nvigil_store_blocks_total %" PRIu64 "\n"
            "# HELP vigil_store_bytes_raw_total record bytes before compression\n"
            "# TYPE vigil_store_bytes_raw_total counter\nvigil_store_bytes_raw_total %" PRIu64 "\n"
            "# HELP vigil_store_bytes_stored_total bytes written to segments\n"
            "# TYPE vigil_store_bytes_stored_total counter\n"
            "vigil_store_bytes_stored_total %" PRIu64 "\n"
            "# HELP vigil_self_events_total source=vigil evidence events recorded\n"
            "# TYPE vigil_self_events_total counter\nvigil_self_events_total %" PRIu64 "\n"
            "# HELP vigil_self_events_dropped_total source=vigil events not recorded (batch full)\n"
            "# TYPE vigil_self_events_dropped_total counter\n"
            "vigil_self_events_dropped_total %" PRIu64 "\n"
            "# HELP vigil_rules_events_total durable events evaluated by the rules\n"
            "# TYPE vigil_rules_events_total counter\nvigil_rules_events_total %" PRIu64 "\n"
            "# HELP vigil_rules_alerts_total alerts recorded\n"
            "# TYPE vigil_rules_alerts_total counter\nvigil_rules_alerts_total %" PRIu64 "\n"
            "# HELP vigil_rules_groups correlation groups held in memory\n"
            "# TYPE vigil_rules_groups gauge\nvigil_rules_groups %" PRIu64 "\n"
            "# HELP vigil_rules_groups_evicted_total groups dropped at the per-rule cap\n"
            "# TYPE vigil_rules_groups_evicted_total counter\n"
            "vigil_rules_groups_evicted_total %" PRIu64 "\n"
            "# HELP vigil_uptime_seconds seconds since start\n"
            "# TYPE vigil_uptime_seconds gauge\nvigil_uptime_seconds %.3f\n",
            m->events_stored, m->batches_committed, m->commit_failures,
            (double)m->commit_ns_total / 1e9, m->store_blocks, m->store_bytes_raw,
            m->store_bytes_stored, m->vigil_events, m->vigil_events_dropped, m->rules_events,
            m->rules_alerts, m->rules_groups, m->rules_groups_evicted,
            (double)(vg_now_ns() - m->started_ns) / 1e9);
    }
    return rc;
}
