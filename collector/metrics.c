/* collector/metrics.c: Prometheus text exposition of vigild's counters, gauges and
 * histograms (text format 0.0.4; `promtool check metrics` clean: counters end in _total,
 * units in the name). Loop thread. */
#include "collector/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "common/xalloc.h"

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
    LC(conns_refused_rate, "counter",
       "connections refused at accept over listen.accept_rate_per_ip (their address)"),
    LC(conns_refused_per_ip, "counter",
       "connections refused at accept over listen.max_handshakes_per_ip (their address)"),
    LC(handshakes_evicted, "counter",
       "TLS handshakes cut at listen.max_handshakes to admit a newer connection"),
    LC(header_timeouts, "counter",
       "connections closed: an HTTP request head not complete within listen.header_timeout"),
    LC(frame_timeouts, "counter",
       "connections closed: a frame or request not complete within listen.frame_timeout"),
    LC(mem_pauses, "counter", "times reading stopped because limits.memory was used up"),
    LC(tls_unauthorized, "counter",
       "client certificates the CA signed but tls.agents does not allow (refused)"),
};

/* Upper bounds in ns; the render says them in seconds. Acks and commits: 0.5 ms (a
 * fast disk's fsync) to 10 s (a stalled one). */
#define METRICS_LATENCY_LE                                                               \
 {                                                                                       \
  500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000, 100000000, 250000000, \
      500000000, 1000000000, 2500000000, 5000000000, 10000000000                         \
 }
static const struct {
    const char *name;
    const char *help;
    int64_t le[METRICS_HIST_MAX];
    size_t n;
} hists[METRICS_HIST_COUNT] = {
    [METRICS_HIST_ACK] = { "vigil_ack_latency_seconds",
                           "from a listener handing events over to their being durable, when "
                           "the Forward ack or HTTP 200 goes out",
                           METRICS_LATENCY_LE, 14 },
    [METRICS_HIST_COMMIT] = { "vigil_store_commit_seconds",
                              "one group commit: append, compress, write and fsync",
                              METRICS_LATENCY_LE, 14 },
    [METRICS_HIST_RULES] = { "vigil_rules_eval_seconds",
                             "the rules over one durable event (every rule, correlation state "
                             "included)",
                             { 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
                               1000000, 2500000, 10000000 },
                             12 },
    [METRICS_HIST_PUBLISH] = { "vigil_cluster_publish_seconds",
                               "cluster ingest: one message from its publish to JetStream's ack "
                               "(stored on a quorum of the stream's replicas), retries included",
                               METRICS_LATENCY_LE, 14 },
};

void metrics_hist_observe(struct metrics *m, enum metrics_hist_kind k, int64_t ns)
{
    metrics_hist_add(&m->hist[k], k, ns);
}

void metrics_hist_add(struct metrics_hist *h, enum metrics_hist_kind k, int64_t ns)
{
    size_t i = 0;

    while (i < hists[k].n && ns > hists[k].le[i]) {
        i++;
    }
    h->counts[i]++;
    h->count++;
    h->sum_ns += ns > 0 ? ns : 0;
}

static int render_hist(const struct metrics *m, enum metrics_hist_kind k, struct buf *out)
{
    const struct metrics_hist *h = &m->hist[k];
    uint64_t cum = 0;
    int rc = buf_appendf(out, "# HELP %s %s\n# TYPE %s histogram\n", hists[k].name, hists[k].help,
                         hists[k].name);

    for (size_t i = 0; i < hists[k].n && rc == 0; i++) {
        cum += h->counts[i];
        rc = buf_appendf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", hists[k].name,
                         (double)hists[k].le[i] / 1e9, cum);
    }
    if (rc == 0) {
        rc = buf_appendf(out,
                         "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.9f\n%s_count %" PRIu64 "\n",
                         hists[k].name, h->count, hists[k].name, (double)h->sum_ns / 1e9,
                         hists[k].name, h->count);
    }
    return rc;
}

/* FNV-1a: label values are a few dozen bytes, from certificates and rule files. */
static uint32_t label_hash(struct span v)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < v.n; i++) {
        h = (h ^ v.p[i]) * 16777619u;
    }
    return h;
}

#define METRICS_LABEL_MAX 128 /* longer label values are cut (bounded series size) */
#define METRICS_STR_(x)   #x
#define METRICS_STR(x)    METRICS_STR_(x)

/* At most METRICS_LABEL_MAX bytes, never ending inside a UTF-8 sequence (label values
 * must stay valid UTF-8). */
static struct span label_cut(struct span v)
{
    if (v.n > METRICS_LABEL_MAX) {
        v.n = METRICS_LABEL_MAX;
        while (v.n > 0 && (v.p[v.n] & 0xC0) == 0x80) {
            v.n--;
        }
    }
    return v;
}

void metrics_labels_add(struct metrics_labels *t, size_t cap, struct span value, struct span value2,
                        uint64_t n)
{
    size_t slots = 1;

    while (slots < 2 * cap) {
        slots <<= 1;
    }
    value = label_cut(value);
    value2 = label_cut(value2);
    if (!t->index) {
        t->index = xcalloc(slots, sizeof(*t->index));
        t->e = xcalloc(cap, sizeof(*t->e));
        t->cap = cap;
    }
    /* Open addressing, linear probing; the table is never more than half full. */
    for (size_t h = label_hash(value) & (slots - 1);; h = (h + 1) & (slots - 1)) {
        uint32_t slot = t->index[h];
        if (slot == 0) {
            if (t->len == t->cap) {
                t->other += n;
                return;
            }
            struct metrics_label *e = &t->e[t->len];
            e->value = xstrndup((const char *)value.p, value.n);
            e->value2 = value2.p ? xstrndup((const char *)value2.p, value2.n) : NULL;
            e->n = n;
            t->index[h] = (uint32_t)++t->len;
            return;
        }
        struct metrics_label *e = &t->e[slot - 1];
        if (strlen(e->value) == value.n && memcmp(e->value, value.p, value.n) == 0) {
            e->n += n;
            return;
        }
    }
}

/* A label value in the text format: backslash, double quote and newline escaped. */
static int append_label(struct buf *out, const char *v)
{
    int rc = 0;

    for (; *v && rc == 0; v++) {
        switch (*v) {
        case '\\':
            rc = buf_append(out, "\\\\", 2);
            break;
        case '"':
            rc = buf_append(out, "\\\"", 2);
            break;
        case '\n':
            rc = buf_append(out, "\\n", 2);
            break;
        default:
            rc = buf_append(out, v, 1);
        }
    }
    return rc;
}

/* name{label="value"[,label2="value2"]} n, per value, then the (other) series if any. */
static int render_labels(const struct metrics_labels *t, const char *name, const char *help,
                         const char *label, const char *label2, struct buf *out)
{
    int rc = buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);

    for (size_t i = 0; i < t->len && rc == 0; i++) {
        const struct metrics_label *e = &t->e[i];
        rc = buf_appendf(out, "%s{%s=\"", name, label);
        rc = rc ? rc : append_label(out, e->value);
        if (label2 && rc == 0) {
            rc = buf_appendf(out, "\",%s=\"", label2);
            rc = rc ? rc : append_label(out, e->value2 ? e->value2 : "");
        }
        rc = rc ? rc : buf_appendf(out, "\"} %" PRIu64 "\n", e->n);
    }
    if (t->other && rc == 0) {
        rc = buf_appendf(out, "%s{%s=\"%s\"%s%s%s} %" PRIu64 "\n", name, label, METRICS_OTHER,
                         label2 ? "," : "", label2 ? label2 : "", label2 ? "=\"\"" : "", t->other);
    }
    return rc;
}

static void labels_release(struct metrics_labels *t)
{
    for (size_t i = 0; i < t->len; i++) {
        free(t->e[i].value);
        free(t->e[i].value2);
    }
    free(t->e);
    free(t->index);
    memset(t, 0, sizeof(*t));
}

bool metrics_ready(const struct metrics *m, char *why, size_t cap)
{
    if (m->cluster_ingest && !m->nats_connected) {
        snprintf(why, cap, "not connected to NATS (cluster.nats): events are refused");
    } else if (m->disk_full) {
        snprintf(why, cap,
                 "store disk below store.free_reserve (%" PRIu64 " bytes free): events are "
                 "refused",
                 m->disk_free_bytes);
    } else if (m->store_failing) {
        snprintf(why, cap, "the store failed to commit: events are not acknowledged");
    } else if (m->tls_crl_refuse && m->tls_crl_next_update_ns > 0 &&
               m->tls_crl_next_update_ns < vg_now_ns()) {
        snprintf(why, cap,
                 "the CRL is past its next update: every client certificate is refused "
                 "(tls.crl_expired: refuse); renew it (SIGHUP reloads it)");
    } else if (m->memory_waiting > 0) {
        snprintf(why, cap,
                 "limits.memory is used up (%" PRIu64 " bytes): %" PRIu64
                 " connections wait to be read",
                 m->memory_used, m->memory_waiting);
    } else {
        return true;
    }
    return false;
}

void metrics_release(struct metrics *m)
{
    labels_release(&m->agent_events);
    labels_release(&m->rule_alerts);
}

int metrics_render(const struct metrics *m, struct buf *out)
{
    int rc = 0;

    for (size_t i = 0; i < VG_ARRAY_LEN(lst_counters) && rc == 0; i++) {
        const struct lst_counter *c = &lst_counters[i];
        /* Counters end in _total (the exposition format's rule); the gauge does not. */
        const char *sfx = strcmp(c->type, "counter") == 0 ? "_total" : "";
        rc = buf_appendf(out, "# HELP vigil_listener_%s%s %s\n# TYPE vigil_listener_%s%s %s\n",
                         c->name, sfx, c->help, c->name, sfx, c->type);
        for (int k = 0; k < LST_COUNT && rc == 0; k++) {
            const uint64_t *v = (const uint64_t *)((const char *)&m->lst[k] + c->off);
            rc = buf_appendf(out, "vigil_listener_%s%s{listener=\"%s\"} %" PRIu64 "\n", c->name,
                             sfx, listener_kind_name((enum listener_kind)k), *v);
        }
    }
    for (int k = 0; k < METRICS_HIST_COUNT && rc == 0; k++) {
        if (k != METRICS_HIST_PUBLISH || m->cluster_ingest) {
            rc = render_hist(m, (enum metrics_hist_kind)k, out);
        }
    }
    if (rc == 0) {
        rc = render_labels(&m->agent_events, "vigil_agent_events_total",
                           "events taken for the store, per agent (certificate identity); "
                           "past " METRICS_STR(METRICS_MAX_AGENTS) " agents, agent=\"" METRICS_OTHER
                                                                   "\"",
                           "agent", NULL, out);
    }
    if (rc == 0) {
        rc = render_labels(&m->rule_alerts, "vigil_rule_alerts_total",
                           "alerts recorded, per rule (id, title); past " METRICS_STR(
                               METRICS_MAX_RULES) " rules, rule_id=\"" METRICS_OTHER "\"",
                           "rule_id", "title", out);
    }
    if (rc == 0) {
        rc = buf_appendf(
            out,
            "# HELP vigil_store_disk_full 1 while free space is below store.free_reserve "
            "(events refused)\n"
            "# TYPE vigil_store_disk_full gauge\nvigil_store_disk_full %" PRIu64 "\n"
            "# HELP vigil_store_free_bytes free bytes on the store's file system\n"
            "# TYPE vigil_store_free_bytes gauge\nvigil_store_free_bytes %" PRIu64 "\n"
            "# HELP vigil_store_free_reserve_bytes store.free_reserve: below it, ingest stops\n"
            "# TYPE vigil_store_free_reserve_bytes gauge\n"
            "vigil_store_free_reserve_bytes %" PRIu64 "\n"
            "# HELP vigil_store_disk_bytes bytes the store's files take on disk (segments, "
            "catalog, keys), measured every store.retention.interval\n"
            "# TYPE vigil_store_disk_bytes gauge\nvigil_store_disk_bytes %" PRIu64 "\n"
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
            m->disk_full, m->disk_free_bytes, m->disk_reserve_bytes, m->store_disk_bytes,
            m->disk_full_episodes, m->events_refused_disk, m->retention_deleted, m->retention_bytes,
            m->retention_held, m->retention_runs);
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
            "# HELP vigil_evidence_refused_disk_full_total source=vigil evidence not stored "
            "below store.free_reserve: the episode's store.evidence_reserve was used up\n"
            "# TYPE vigil_evidence_refused_disk_full_total counter\n"
            "vigil_evidence_refused_disk_full_total %" PRIu64 "\n"
            "# HELP vigil_refusal_summaries_total source=vigil summaries of refused "
            "connections and handshakes (one per address per listen.refusal_interval)\n"
            "# TYPE vigil_refusal_summaries_total counter\n"
            "vigil_refusal_summaries_total %" PRIu64 "\n"
            "# HELP vigil_refusals_summarized_total refusals counted in a summary rather "
            "than recorded one by one\n"
            "# TYPE vigil_refusals_summarized_total counter\n"
            "vigil_refusals_summarized_total %" PRIu64 "\n"
            "# HELP vigil_handshakes_pending connections in their TLS handshake "
            "(listen.max_handshakes)\n"
            "# TYPE vigil_handshakes_pending gauge\nvigil_handshakes_pending %" PRIu64 "\n"
            "# HELP vigil_guard_addresses source addresses tracked for the handshake and "
            "accept-rate limits\n"
            "# TYPE vigil_guard_addresses gauge\nvigil_guard_addresses %" PRIu64 "\n"
            "# HELP vigil_memory_limit_bytes limits.memory: connection input buffers in all\n"
            "# TYPE vigil_memory_limit_bytes gauge\nvigil_memory_limit_bytes %" PRIu64 "\n"
            "# HELP vigil_memory_used_bytes connection input buffers held now\n"
            "# TYPE vigil_memory_used_bytes gauge\nvigil_memory_used_bytes %" PRIu64 "\n"
            "# HELP vigil_memory_peak_bytes the most connection input buffers held at once\n"
            "# TYPE vigil_memory_peak_bytes gauge\nvigil_memory_peak_bytes %" PRIu64 "\n"
            "# HELP vigil_memory_waiting_connections connections not reading until memory "
            "returns (limits.memory used up)\n"
            "# TYPE vigil_memory_waiting_connections gauge\n"
            "vigil_memory_waiting_connections %" PRIu64 "\n"
            "# HELP vigil_store_failing 1 from a failed commit until the next one succeeds\n"
            "# TYPE vigil_store_failing gauge\nvigil_store_failing %" PRIu64 "\n"
            "# HELP vigil_tls_reloads_total TLS files reloaded (SIGHUP or a file changed)\n"
            "# TYPE vigil_tls_reloads_total counter\nvigil_tls_reloads_total %" PRIu64 "\n"
            "# HELP vigil_tls_reload_failures_total TLS reloads that failed (the files loaded "
            "before stay in force)\n"
            "# TYPE vigil_tls_reload_failures_total counter\n"
            "vigil_tls_reload_failures_total %" PRIu64 "\n"
            "# HELP vigil_tls_crl_next_update_seconds when the CRL in force is due to be "
            "replaced (Unix time; 0 without a CRL)\n"
            "# TYPE vigil_tls_crl_next_update_seconds gauge\n"
            "vigil_tls_crl_next_update_seconds %" PRId64 "\n",
            m->evidence_refused_disk, m->refusal_summaries, m->refusals_summarized,
            m->handshakes_pending, m->guard_addrs, m->memory_limit, m->memory_used, m->memory_peak,
            m->memory_waiting, m->store_failing, m->tls_reloads, m->tls_reload_failures,
            m->tls_crl_next_update_ns / 1000000000);
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
            "# HELP vigil_rules_alerts_dropped_total alerts not recorded (batch full)\n"
            "# TYPE vigil_rules_alerts_dropped_total counter\n"
            "vigil_rules_alerts_dropped_total %" PRIu64 "\n"
            "# HELP vigil_rules_eval_failures_total events the rules could not evaluate\n"
            "# TYPE vigil_rules_eval_failures_total counter\n"
            "vigil_rules_eval_failures_total %" PRIu64 "\n"
            "# HELP vigil_uptime_seconds seconds since start\n"
            "# TYPE vigil_uptime_seconds gauge\nvigil_uptime_seconds %.3f\n",
            m->events_stored, m->batches_committed, m->commit_failures, m->store_blocks,
            m->store_bytes_raw, m->store_bytes_stored, m->vigil_events, m->vigil_events_dropped,
            m->rules_events, m->rules_alerts, m->rules_groups, m->rules_groups_evicted,
            m->rules_alerts_dropped, m->rules_eval_failures,
            (double)(vg_now_ns() - m->started_ns) / 1e9);
    }
    if (rc == 0 && m->cluster_ingest) {
        rc = buf_appendf(
            out,
            "# HELP vigil_cluster_nats_connected 1 while connected to a NATS server\n"
            "# TYPE vigil_cluster_nats_connected gauge\nvigil_cluster_nats_connected %" PRIu64 "\n"
            "# HELP vigil_cluster_published_messages_total messages JetStream acknowledged\n"
            "# TYPE vigil_cluster_published_messages_total counter\n"
            "vigil_cluster_published_messages_total %" PRIu64 "\n"
            "# HELP vigil_cluster_published_bytes_total payload bytes of those messages\n"
            "# TYPE vigil_cluster_published_bytes_total counter\n"
            "vigil_cluster_published_bytes_total %" PRIu64 "\n"
            "# HELP vigil_cluster_publish_duplicates_total publishes the stream already had "
            "(a retry, stored once)\n"
            "# TYPE vigil_cluster_publish_duplicates_total counter\n"
            "vigil_cluster_publish_duplicates_total %" PRIu64 "\n"
            "# HELP vigil_cluster_publish_retries_total publishes tried again with the same "
            "message id\n"
            "# TYPE vigil_cluster_publish_retries_total counter\n"
            "vigil_cluster_publish_retries_total %" PRIu64 "\n"
            "# HELP vigil_cluster_publish_failures_total group commits not published "
            "(nothing of them acknowledged)\n"
            "# TYPE vigil_cluster_publish_failures_total counter\n"
            "vigil_cluster_publish_failures_total %" PRIu64 "\n",
            m->nats_connected, m->cluster_published, m->cluster_published_bytes,
            m->cluster_publish_dups, m->cluster_publish_retries, m->cluster_publish_failures);
    }
    return rc;
}
