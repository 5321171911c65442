/* collector/js_sink.c: group commits published to JetStream (see js_sink.h).
 *
 * The store thread owns the per-shard message buffers and the publishing; what the loop
 * thread reads (connected, counters) sits in `shared` under mu and is copied into the
 * metrics by report. */
#include "collector/js_sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "collector/cluster_msg.h"
#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"

/* A shard's part of one batch at most (the batch's hard limit is below); it goes out
 * as messages of at most the servers' max_payload (1 MiB by default). */
#define JS_SINK_MSG_MAX (128u << 20)

/* One shard's records of the batch, back to back, and where each ends: a message holds
 * as many whole records as the server's max_payload takes. */
struct shard_batch {
    struct buf data;
    uint32_t *ends;
    size_t n, cap;
};

struct js_counts {
    bool connected;
    uint64_t published, bytes, dups, retries, failures;
    struct metrics_hist publish; /* METRICS_HIST_PUBLISH */
};

struct js_sink {
    struct cnats *nats;
    const struct cluster_cfg *cfg;
    const char *node;
    uint64_t boot;     /* this run's start (ns): message ids never repeat across runs */
    uint64_t batch_no; /* store thread: group commits so far */
    struct shard_batch msg[CLUSTER_MAX_SHARDS]; /* store thread: the batch, per shard */
    struct buf out;                             /* store thread: the message being published */
    bool refusing;                              /* store thread: what refusing said for the batch */
    struct metrics *m;                          /* loop thread */
    js_sink_state_fn on_state;
    void *state_arg;
    bool reported_connected; /* loop thread: what on_state was last told */
    bool reported_once;

    uv_mutex_t mu;
    struct js_counts shared; /* under mu */
    struct js_counts local;  /* store thread: its own copy, published into shared */
};

static void publish_counts(struct js_sink *s)
{
    uv_mutex_lock(&s->mu);
    s->shared = s->local;
    uv_mutex_unlock(&s->mu);
}

/* Refusing while not connected: nothing can be acknowledged then. */
static bool sink_refusing(void *ctx)
{
    struct js_sink *s = ctx;
    s->refusing = !cnats_connected(s->nats);
    return s->refusing;
}

static int sink_append(void *ctx, int64_t ts, uint64_t seq, struct span rec)
{
    struct js_sink *s = ctx;
    struct span in = rec;
    struct rec r;

    (void)ts;
    (void)seq;
    /* The pipeline encoded it: a record that does not decode is our bug, not input. */
    int rc = rec_decode(&in, &r);
    if (rc < 0) {
        return rc;
    }
    struct shard_batch *b = &s->msg[cluster_shard_of(&r, (unsigned)s->cfg->shards)];
    if ((rc = buf_append(&b->data, rec.p, rec.n)) < 0) {
        return rc;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->ends = xrealloc(b->ends, b->cap * sizeof(*b->ends));
    }
    b->ends[b->n++] = (uint32_t)b->data.len;
    return 0;
}

/* One shard's message, tried again with the same id until it is acked or the deadline
 * passes. */
static int publish_one(struct js_sink *s, unsigned shard, unsigned part, struct buf *b)
{
    char subject[64];
    char msgid[200];
    int64_t t0 = vg_mono_ns();
    int64_t deadline = t0 + (int64_t)JS_SINK_PUBLISH_DEADLINE_MS * 1000000;
    struct errbuf eb;
    int rc;

    snprintf(subject, sizeof(subject), CLUSTER_EVENTS_PREFIX "%u", shard);
    snprintf(msgid, sizeof(msgid), "%s-%" PRIu64 "-%" PRIu64 "-%u-%u", s->node, s->boot,
             s->batch_no, shard, part);
    for (int attempt = 0;; attempt++) {
        uint64_t seq = 0;
        bool dup = false;
        errbuf_clear(&eb);
        rc = cnats_stream_ensure(s->nats, &eb);
        if (rc == 0) {
            rc = cnats_publish(s->nats, subject, (struct span){ b->data, b->len }, msgid,
                               JS_SINK_PUBLISH_TRY_MS, &seq, &dup, &eb);
        }
        if (rc == 0) {
            s->local.published++;
            s->local.bytes += b->len;
            s->local.dups += dup;
            metrics_hist_add(&s->local.publish, METRICS_HIST_PUBLISH, vg_mono_ns() - t0);
            return 0;
        }
        if (vg_mono_ns() >= deadline) {
            log_error("cluster: message %s (%zu bytes) not published: %s; nothing of this "
                      "group commit is acknowledged",
                      msgid, b->len, errbuf_msg(&eb));
            return rc;
        }
        if (attempt == 0) {
            log_warn("cluster: publishing %s: %s; trying again with the same message id", msgid,
                     errbuf_msg(&eb));
        }
        s->local.retries++;
        if (rc != -ETIMEDOUT) {
            uv_sleep(100); /* not connected, no responders: let it reconnect */
        }
    }
}

/* One shard's records as messages of at most max bytes each (schemas/cluster.md 3). */
static int publish_shard(struct js_sink *s, unsigned shard, struct shard_batch *b, size_t max)
{
    size_t i = 0;
    uint32_t from = 0;
    unsigned part = 0;
    int rc;

    while (i < b->n) {
        size_t j = i;
        while (j < b->n && (j == i || b->ends[j] - from + CLUSTER_MSG_MAGIC_LEN <= max)) {
            j++;
        }
        uint32_t to = b->ends[j - 1];
        if (to - from + CLUSTER_MSG_MAGIC_LEN > max) {
            log_error("cluster: a record of %u bytes is over the NATS servers' max_payload "
                      "(%zu): raise max_payload (schemas/cluster.md 2)",
                      to - from, max);
            return VG_ELIMIT;
        }
        if ((rc = cluster_msg_begin(&s->out)) < 0 ||
            (rc = buf_append(&s->out, b->data.data + from, to - from)) < 0 ||
            (rc = publish_one(s, shard, part, &s->out)) < 0) {
            return rc;
        }
        part++;
        from = to;
        i = j;
    }
    return 0;
}

static int sink_commit(void *ctx, size_t refused)
{
    struct js_sink *s = ctx;
    int rc = 0;

    (void)refused;
    if (s->refusing) {
        /* What was appended (evidence, within the pipeline's allowance) stays in the
         * buffers and goes out with the next commit that publishes. */
        s->local.connected = false;
        publish_counts(s);
        return 0;
    }
    size_t max = cnats_max_payload(s->nats);
    if (max == 0) {
        max = 1u << 20; /* not connected now: the publish fails and says so */
    }
    s->local.connected = true;
    for (unsigned i = 0; i < s->cfg->shards; i++) {
        struct shard_batch *b = &s->msg[i];
        if (b->n == 0) {
            continue;
        }
        if (rc == 0) {
            rc = publish_shard(s, i, b, max);
        }
        b->data.len = 0;
        b->n = 0;
    }
    s->batch_no++;
    if (rc < 0) {
        s->local.failures++;
    }
    publish_counts(s);
    return rc;
}

/* Nothing to keep but the connection's state: report when it changed. */
static int64_t sink_upkeep(void *ctx, int64_t now_mono, bool *news)
{
    struct js_sink *s = ctx;
    bool c = cnats_connected(s->nats);

    if (c != s->local.connected) {
        s->local.connected = c;
        publish_counts(s);
        *news = true;
    }
    return now_mono + 250 * 1000000LL;
}

static void sink_report(void *ctx)
{
    struct js_sink *s = ctx;
    struct js_counts c;

    uv_mutex_lock(&s->mu);
    c = s->shared;
    uv_mutex_unlock(&s->mu);
    s->m->nats_connected = c.connected;
    s->m->cluster_published = c.published;
    s->m->cluster_published_bytes = c.bytes;
    s->m->cluster_publish_dups = c.dups;
    s->m->cluster_publish_retries = c.retries;
    s->m->cluster_publish_failures = c.failures;
    s->m->hist[METRICS_HIST_PUBLISH] = c.publish;
    if (!s->reported_once || c.connected != s->reported_connected) {
        bool first = !s->reported_once;
        s->reported_once = true;
        s->reported_connected = c.connected;
        if (s->on_state && !(first && c.connected)) {
            s->on_state(s->state_arg, c.connected);
        }
    }
}

void js_sink_free(struct js_sink *s)
{
    if (!s) {
        return;
    }
    cnats_free(s->nats);
    for (unsigned i = 0; i < CLUSTER_MAX_SHARDS; i++) {
        buf_release(&s->msg[i].data);
        free(s->msg[i].ends);
    }
    buf_release(&s->out);
    uv_mutex_destroy(&s->mu);
    free(s);
}

static void sink_close(void *ctx)
{
    js_sink_free(ctx);
}

static const struct pipeline_sink_ops js_sink_ops = {
    .refusing = sink_refusing,
    .append = sink_append,
    .commit = sink_commit,
    .upkeep = sink_upkeep,
    .report = sink_report,
    .close = sink_close,
};

void js_sink_new(struct cnats *nats, const struct cluster_cfg *cfg, const char *node,
                 struct metrics *m, js_sink_state_fn on_state, void *state_arg,
                 struct js_sink **out)
{
    struct js_sink *s = xcalloc(1, sizeof(*s));

    s->nats = nats;
    s->cfg = cfg;
    s->node = node;
    s->boot = (uint64_t)vg_now_ns();
    s->m = m;
    s->on_state = on_state;
    s->state_arg = state_arg;
    for (unsigned i = 0; i < CLUSTER_MAX_SHARDS; i++) {
        buf_init(&s->msg[i].data, JS_SINK_MSG_MAX);
    }
    buf_init(&s->out, JS_SINK_MSG_MAX + CLUSTER_MSG_MAGIC_LEN);
    if (uv_mutex_init(&s->mu) < 0) {
        abort(); /* only on resource exhaustion at start-up */
    }
    m->cluster_ingest = 1;
    *out = s;
}

struct pipeline_sink js_sink_as_pipeline(struct js_sink *s)
{
    return (struct pipeline_sink){ &js_sink_ops, s };
}
