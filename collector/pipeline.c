/* collector/pipeline.c: batches and the store thread (see pipeline.h).
 *
 * Threads: the loop thread owns `open` (the filling batch) and the waiter lists; the
 * store thread owns the sink's store side. They meet at `inflight` under `mu`: the loop
 * hands a batch over (cond signal), the store thread commits it and hands it back
 * (uv_async_send). At most one batch is in flight and one is filling, so memory is
 * bounded by twice batch_max_bytes plus the waiters.
 *
 * Between batches, and when idle on a timed wait of the condition, the store thread
 * runs the sink's upkeep (in vigild: sealing, retention, the free-space check and
 * compaction scheduling, store/keeper.h); when it has news the loop thread is woken and
 * asks the sink to report. */
#include "collector/pipeline.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "collector/metrics.h"
#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"

struct waiter {
    struct waiter *next;
    pipeline_done_fn fn;
    void *arg;
    int64_t since; /* mono ns when it started waiting: vigil_ack_latency_seconds */
};

/* What a record is, for the free-space policy. */
enum rec_class {
    REC_EVENT,    /* an event: refused below the free reserve */
    REC_EVIDENCE, /* the collector's own evidence: stored below it, within an allowance */
    REC_STRANGER, /* evidence about an unauthenticated peer: a smaller allowance */
};

struct rec_ref {
    int64_t ts;
    uint64_t seq;
    uint32_t off, len;
    uint8_t cls; /* enum rec_class */
};

struct batch {
    struct buf data;      /* encoded records, back to back */
    struct rec_ref *refs; /* one per record */
    size_t nrefs, caprefs;
    struct waiter *waiters, **wtail;
    int rc; /* commit result, set by the store thread */
    uint64_t commit_ns;
    size_t stored;           /* records stored when rc != 0 (evidence, disk full) */
    size_t refused;          /* records refused because the disk was full */
    size_t evidence_refused; /* of them evidence, past the refusing allowance */
};

struct pipeline {
    uv_loop_t *loop;
    struct metrics *m;
    struct pipeline_sink sink;
    uint64_t next_seq;
    size_t batch_max;
    size_t batch_slack;
    struct pipeline_limits lim;
    /* Store thread: record bytes of evidence stored in this refusing episode, by
     * enum rec_class (REC_EVIDENCE counts both kinds of evidence). */
    uint64_t refusing_used[3];
    pipeline_drain_fn on_drain;
    void *drain_arg;
    pipeline_closed_fn on_closed;
    void *closed_arg;
    struct {
        pipeline_committed_fn fn;
        void *arg;
    } subs[PIPELINE_MAX_SUBSCRIBERS];
    size_t nsubs;

    struct batch *open; /* loop thread: filling */
    bool was_full;      /* loop thread: pipeline_full() was reported */
    bool closing;

    /* Shared under mu. */
    uv_mutex_t mu;
    uv_cond_t cond;
    struct batch *inflight; /* handed to the store thread; NULL when idle */
    bool inflight_done;     /* store thread finished it */
    bool stop;              /* store thread must exit */
    bool kick;              /* run the sink's upkeep now (pipeline_kick) */

    uv_thread_t thread;
    uv_async_t async;
    uv_check_t check; /* after each loop iteration's I/O: hand the batch over */
    int handles_open;
};

static struct batch *batch_new(const struct pipeline_limits *lim)
{
    struct batch *b = xcalloc(1, sizeof(*b));
    buf_init(&b->data, lim->batch_max_bytes + lim->batch_slack_bytes + lim->evidence_room);
    b->wtail = &b->waiters;
    return b;
}

static void batch_free(struct batch *b)
{
    if (b) {
        buf_release(&b->data);
        free(b->refs);
        free(b);
    }
}

static bool batch_empty(const struct batch *b)
{
    return b->nrefs == 0 && b->waiters == NULL;
}

/* Store thread, while the sink refuses: whether evidence r still fits the episode's
 * allowance (counting it if so). Strangers have their own, smaller part of it, so they
 * cannot use up what the collector's other evidence needs. */
static bool refusing_allows(struct pipeline *p, const struct rec_ref *r)
{
    uint64_t *all = &p->refusing_used[REC_EVIDENCE];
    uint64_t *str = &p->refusing_used[REC_STRANGER];

    if (r->cls == REC_EVENT || *all + r->len > p->lim.refusing_evidence_bytes) {
        return false;
    }
    if (r->cls == REC_STRANGER) {
        if (*str + r->len > p->lim.refusing_stranger_bytes) {
            return false;
        }
        *str += r->len;
    }
    *all += r->len;
    return true;
}

/* Store thread: append every record and commit once. While the sink refuses (the disk
 * below the free reserve) only the evidence records are stored, within the refusing
 * allowances, and the batch is refused (-ENOSPC): its waiters acknowledge nothing. */
static int commit_batch(struct pipeline *p, struct batch *b)
{
    const struct pipeline_sink_ops *ops = p->sink.ops;
    bool full = ops->refusing(p->sink.ctx);
    int rc;

    if (!full) {
        /* A new episode starts with the whole allowance. */
        memset(p->refusing_used, 0, sizeof(p->refusing_used));
    }
    for (size_t i = 0; i < b->nrefs; i++) {
        struct rec_ref *r = &b->refs[i];
        if (full && !refusing_allows(p, r)) {
            b->refused++;
            b->evidence_refused += r->cls != REC_EVENT;
            continue;
        }
        rc =
            ops->append(p->sink.ctx, r->ts, r->seq, (struct span){ b->data.data + r->off, r->len });
        if (rc < 0) {
            goto fail;
        }
        b->stored++;
    }
    rc = ops->commit(p->sink.ctx, b->refused);
    if (rc < 0) {
        goto fail;
    }
    if (full) {
        return -ENOSPC;
    }
    b->stored = 0;
    return 0;
fail:
    b->stored = 0;
    b->refused = 0;
    b->evidence_refused = 0;
    return rc;
}

static void store_thread(void *arg)
{
    struct pipeline *p = arg;
    bool news = false;
    /* At start: seal, retention, free space. */
    int64_t next = p->sink.ops->upkeep(p->sink.ctx, vg_mono_ns(), &news);

    uv_mutex_lock(&p->mu);
    if (news) {
        uv_async_send(&p->async);
    }
    for (;;) {
        while (!p->stop && (p->inflight == NULL || p->inflight_done) && !p->kick) {
            int64_t wait = next - vg_mono_ns();
            if (wait <= 0 || uv_cond_timedwait(&p->cond, &p->mu, (uint64_t)wait) == UV_ETIMEDOUT) {
                break;
            }
        }
        p->kick = false;
        bool have = p->inflight != NULL && !p->inflight_done;
        if (!have && p->stop) {
            break; /* stop requested and nothing to do */
        }
        struct batch *b = have ? p->inflight : NULL;
        uv_mutex_unlock(&p->mu);

        if (b) {
            int64_t t0 = vg_mono_ns();
            b->rc = commit_batch(p, b);
            b->commit_ns = (uint64_t)(vg_mono_ns() - t0);
        }
        news = false;
        next = p->sink.ops->upkeep(p->sink.ctx, vg_mono_ns(), &news);

        uv_mutex_lock(&p->mu);
        if (b) {
            p->inflight_done = true;
        }
        if (b || news) {
            uv_async_send(&p->async);
        }
    }
    uv_mutex_unlock(&p->mu);
}

void pipeline_kick(struct pipeline *p)
{
    uv_mutex_lock(&p->mu);
    p->kick = true;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
}

/* Loop thread: hands the open batch to the store thread if it is idle. */
static void maybe_submit(struct pipeline *p)
{
    uv_mutex_lock(&p->mu);
    if (p->inflight == NULL && !batch_empty(p->open)) {
        p->inflight = p->open;
        p->inflight_done = false;
        p->open = batch_new(&p->lim);
        uv_cond_signal(&p->cond);
    }
    uv_mutex_unlock(&p->mu);
}

static void on_close_handle(uv_handle_t *h)
{
    struct pipeline *p = h->data;
    if (--p->handles_open == 0 && p->on_closed) {
        p->on_closed(p->closed_arg);
    }
}

/* Runs once per loop iteration after the read callbacks: everything the connections
 * decoded in this iteration goes to the store thread in one batch. */
static void on_check(uv_check_t *h)
{
    maybe_submit(h->data);
}

static void finish_close(struct pipeline *p)
{
    uv_mutex_lock(&p->mu);
    p->stop = true;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
    uv_thread_join(&p->thread);
    p->sink.ops->close(p->sink.ctx);
    uv_close((uv_handle_t *)&p->async, on_close_handle);
    uv_close((uv_handle_t *)&p->check, on_close_handle);
}

static void on_batch_done(uv_async_t *h)
{
    struct pipeline *p = h->data;
    struct batch *done = NULL;

    if (p->sink.ops->report) {
        p->sink.ops->report(p->sink.ctx);
    }
    uv_mutex_lock(&p->mu);
    if (p->inflight && p->inflight_done) {
        done = p->inflight;
        p->inflight = NULL;
    }
    uv_mutex_unlock(&p->mu);
    if (!done) {
        return;
    }
    p->m->store_failing = done->rc < 0 && done->rc != -ENOSPC;
    if (done->rc == 0) {
        p->m->events_stored += done->nrefs;
        p->m->batches_committed++;
    } else if (done->rc == -ENOSPC && done->refused + done->stored == done->nrefs &&
               done->stored + done->refused > 0) {
        /* Refused below store.free_reserve: logged once per episode (check_disk). */
        p->m->events_stored += done->stored;
        p->m->events_refused_disk += done->refused - done->evidence_refused;
        p->m->evidence_refused_disk += done->evidence_refused;
        p->m->batches_committed += done->stored > 0;
    } else if (done->rc == -ENOSPC && done->nrefs == 0) {
        /* Only waiters, refused while the disk is full. */
    } else {
        p->m->commit_failures++;
        log_error("store: commit of %zu events failed: %s; nothing of it is acknowledged",
                  done->nrefs, vg_strerror(done->rc));
    }
    if (done->commit_ns > 0) {
        metrics_hist_observe(p->m, METRICS_HIST_COMMIT, (int64_t)done->commit_ns);
    }

    /* Durable records go to the subscribers (rules) first: what they add joins the
     * next batch, which is submitted before the waiters run, so the store thread works
     * while the loop sends acks. */
    for (size_t k = 0; done->rc == 0 && k < p->nsubs; k++) {
        for (size_t i = 0; i < done->nrefs; i++) {
            const struct rec_ref *r = &done->refs[i];
            p->subs[k].fn(p->subs[k].arg, r->ts, r->seq,
                          (struct span){ done->data.data + r->off, r->len });
        }
    }
    maybe_submit(p);

    struct waiter *w = done->waiters;
    int64_t now = w ? vg_mono_ns() : 0;
    while (w) {
        struct waiter *next = w->next;
        if (done->rc == 0) {
            metrics_hist_observe(p->m, METRICS_HIST_ACK, now - w->since);
        }
        w->fn(w->arg, done->rc);
        free(w);
        w = next;
    }
    batch_free(done);

    if (p->was_full && !pipeline_full(p)) {
        p->was_full = false;
        if (p->on_drain) {
            p->on_drain(p->drain_arg);
        }
    }
    if (p->closing) {
        uv_mutex_lock(&p->mu);
        bool idle = p->inflight == NULL;
        uv_mutex_unlock(&p->mu);
        if (idle && batch_empty(p->open)) {
            finish_close(p);
        }
    }
}

int pipeline_new(uv_loop_t *loop, const struct pipeline_sink *sink, uint64_t first_seq,
                 const struct pipeline_limits *lim, struct metrics *m, pipeline_drain_fn on_drain,
                 void *drain_arg, struct pipeline **out, struct errbuf *eb)
{
    struct pipeline *p = xcalloc(1, sizeof(*p));
    int rc;

    p->loop = loop;
    p->m = m;
    p->sink = *sink;
    p->next_seq = first_seq;
    p->lim = *lim;
    p->batch_max = lim->batch_max_bytes;
    p->batch_slack = lim->batch_slack_bytes;
    p->on_drain = on_drain;
    p->drain_arg = drain_arg;
    p->open = batch_new(&p->lim);
    if ((rc = uv_mutex_init(&p->mu)) < 0 || (rc = uv_cond_init(&p->cond)) < 0) {
        errbuf_set(eb, "pipeline: cannot init lock: %s", vg_strerror(rc));
        abort(); /* only on resource exhaustion at start-up */
    }
    if ((rc = uv_async_init(loop, &p->async, on_batch_done)) < 0) {
        errbuf_set(eb, "pipeline: uv_async_init: %s", vg_strerror(rc));
        abort();
    }
    p->async.data = p;
    uv_check_init(loop, &p->check);
    p->check.data = p;
    uv_check_start(&p->check, on_check);
    uv_unref((uv_handle_t *)&p->check);
    p->handles_open = 2;
    if (p->sink.ops->start) {
        p->sink.ops->start(p->sink.ctx, p);
    }
    if ((rc = uv_thread_create(&p->thread, store_thread, p)) < 0) {
        errbuf_set(eb, "pipeline: cannot start the store thread: %s", vg_strerror(rc));
        abort();
    }
    *out = p;
    return 0;
}

static int add(struct pipeline *p, struct rec *r, enum rec_class cls)
{
    struct batch *b = p->open;
    size_t start = b->data.len;

    /* The soft limit (batch_max) is checked by listeners before each message; within
     * a message the batch may grow up to the hard limit (batch_max + slack). */
    r->seq = p->next_seq;
    r->has_seq = true;
    if (!r->has_received) {
        r->received = vg_now_ns();
        r->has_received = true;
    }
    if (!r->has_ts) {
        r->ts = r->received;
        r->has_ts = true;
    }
    int rc = rec_encode(r, &b->data);
    if (rc == 0 && cls == REC_EVENT && b->data.len > p->batch_max + p->batch_slack) {
        rc = VG_ELIMIT; /* what is past the hard limit is kept for evidence */
    }
    if (rc < 0) {
        b->data.len = start;
        if (b->data.cap > start) {
            b->data.data[start] = 0;
        }
        p->was_full = true;
        return rc;
    }
    if (b->nrefs == b->caprefs) {
        b->caprefs = b->caprefs ? 2 * b->caprefs : 1024;
        b->refs = xrealloc(b->refs, b->caprefs * sizeof(*b->refs));
    }
    b->refs[b->nrefs++] = (struct rec_ref){ r->ts, r->seq, (uint32_t)start,
                                            (uint32_t)(b->data.len - start), (uint8_t)cls };
    p->next_seq++;
    if (b->data.len >= p->batch_max) {
        p->was_full = true;
    }
    return 0;
}

int pipeline_add(struct pipeline *p, struct rec *r)
{
    return add(p, r, REC_EVENT);
}

int pipeline_add_evidence(struct pipeline *p, struct rec *r, bool stranger)
{
    return add(p, r, stranger ? REC_STRANGER : REC_EVIDENCE);
}

void pipeline_mark(const struct pipeline *p, struct pipeline_mark *m)
{
    m->batch = p->open;
    m->len = p->open->data.len;
    m->nrefs = p->open->nrefs;
    m->next_seq = p->next_seq;
}

void pipeline_rollback(struct pipeline *p, const struct pipeline_mark *m)
{
    struct batch *b = p->open;

    /* The loop has not run since the mark: the same batch, only grown. */
    assert(m->batch == b && m->len <= b->data.len && m->nrefs <= b->nrefs);
    b->data.len = m->len;
    if (b->data.cap > 0) {
        b->data.data[b->data.len] = 0;
    }
    b->nrefs = m->nrefs;
    p->next_seq = m->next_seq;
}

void pipeline_when_durable(struct pipeline *p, pipeline_done_fn fn, void *arg)
{
    struct waiter *w = xmalloc(sizeof(*w));
    w->next = NULL;
    w->fn = fn;
    w->arg = arg;
    w->since = vg_mono_ns();
    *p->open->wtail = w;
    p->open->wtail = &w->next;
}

int pipeline_subscribe(struct pipeline *p, pipeline_committed_fn fn, void *arg)
{
    if (p->nsubs == PIPELINE_MAX_SUBSCRIBERS) {
        return VG_ELIMIT;
    }
    p->subs[p->nsubs].fn = fn;
    p->subs[p->nsubs].arg = arg;
    p->nsubs++;
    return 0;
}

bool pipeline_full(const struct pipeline *p)
{
    return p->open->data.len >= p->batch_max;
}

bool pipeline_idle(struct pipeline *p)
{
    uv_mutex_lock(&p->mu);
    bool idle = p->inflight == NULL;
    uv_mutex_unlock(&p->mu);
    return idle && p->open->nrefs == 0;
}

void pipeline_close(struct pipeline *p, pipeline_closed_fn fn, void *arg)
{
    p->closing = true;
    p->on_closed = fn;
    p->closed_arg = arg;
    maybe_submit(p);
    uv_mutex_lock(&p->mu);
    bool idle = p->inflight == NULL;
    uv_mutex_unlock(&p->mu);
    if (idle && batch_empty(p->open)) {
        finish_close(p);
    }
}

void pipeline_free(struct pipeline *p)
{
    if (!p) {
        return;
    }
    batch_free(p->open);
    uv_mutex_destroy(&p->mu);
    uv_cond_destroy(&p->cond);
    free(p);
}
