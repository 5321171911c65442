/* tests/unit/collector/test_pipeline.c: the pipeline (collector/pipeline.c) on a real
 * loop and its store thread, against a fake sink whose commits the test holds and
 * releases.
 *
 * Covered: group commit (what is added while a batch commits goes together in the
 * next one), seq and time stamping, waiters called only once everything before them is
 * durable and in order, subscribers fed every durable record in seq order before the
 * waiters (and what they add joining the next batch), a failed commit (waiters get the
 * error, subscribers nothing), a full disk (the sink refusing: only evidence appended,
 * waiters get -ENOSPC, the refused counted; evidence within its allowance, strangers'
 * within theirs), evidence room past the hard limit, backpressure (pipeline_full and the drain
 * callback), the hard limit, upkeep and report (pipeline_kick from another thread), and
 * pipeline_close flushing the open batch before the sink closes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include <cmocka.h>

#include "collector/metrics.h"
#include "collector/pipeline.h"
#include "tests/unit/collector/loop_test.h"

/* ---- the fake sink ---- */

#define FS_MAX 64

struct fake_sink {
    uv_mutex_t mu;
    uv_cond_t cond;
    bool hold;       /* commits wait for a gate */
    int gates;       /* commits allowed to finish while holding */
    int started;     /* commits begun */
    int commits;     /* commits finished */
    size_t appended; /* records appended since the last commit */
    size_t sizes[FS_MAX];
    uint64_t last_seq;
    bool seq_order_ok;
    bool refusing;
    int fail_rc;    /* the next commit's result */
    size_t refused; /* the refused counts commit was given */
    int upkeeps;
    bool news;   /* the next upkeep has news */
    int reports; /* loop thread */
    bool started_with_pipeline;
    bool closed;
};

static void fs_init(struct fake_sink *fs)
{
    memset(fs, 0, sizeof(*fs));
    uv_mutex_init(&fs->mu);
    uv_cond_init(&fs->cond);
    fs->seq_order_ok = true;
}

static void fs_release(struct fake_sink *fs)
{
    uv_mutex_destroy(&fs->mu);
    uv_cond_destroy(&fs->cond);
}

static void fs_start(void *ctx, struct pipeline *p)
{
    struct fake_sink *fs = ctx;
    fs->started_with_pipeline = p != NULL;
}

static bool fs_refusing(void *ctx)
{
    struct fake_sink *fs = ctx;
    uv_mutex_lock(&fs->mu);
    bool r = fs->refusing;
    uv_mutex_unlock(&fs->mu);
    return r;
}

static int fs_append(void *ctx, int64_t ts, uint64_t seq, struct span rec)
{
    struct fake_sink *fs = ctx;

    (void)ts;
    uv_mutex_lock(&fs->mu);
    if (rec.n == 0 || (fs->last_seq && seq <= fs->last_seq)) {
        fs->seq_order_ok = false;
    }
    fs->last_seq = seq;
    fs->appended++;
    uv_mutex_unlock(&fs->mu);
    return 0;
}

static int fs_commit(void *ctx, size_t refused)
{
    struct fake_sink *fs = ctx;

    uv_mutex_lock(&fs->mu);
    fs->started++;
    uv_cond_broadcast(&fs->cond);
    while (fs->hold && fs->gates == 0) {
        uv_cond_wait(&fs->cond, &fs->mu);
    }
    if (fs->hold) {
        fs->gates--;
    }
    int rc = fs->fail_rc;
    fs->fail_rc = 0;
    if (fs->commits < FS_MAX) {
        fs->sizes[fs->commits] = fs->appended;
    }
    fs->commits++;
    fs->appended = 0;
    fs->refused += refused;
    uv_mutex_unlock(&fs->mu);
    return rc;
}

static int64_t fs_upkeep(void *ctx, int64_t now_mono, bool *news)
{
    struct fake_sink *fs = ctx;

    uv_mutex_lock(&fs->mu);
    fs->upkeeps++;
    *news = fs->news;
    fs->news = false;
    uv_mutex_unlock(&fs->mu);
    return now_mono + 3600LL * 1000000000; /* only batches and kicks wake it */
}

static void fs_report(void *ctx)
{
    struct fake_sink *fs = ctx;
    fs->reports++;
}

static void fs_close(void *ctx)
{
    struct fake_sink *fs = ctx;
    fs->closed = true;
}

static const struct pipeline_sink_ops fs_ops = {
    fs_start, fs_refusing, fs_append, fs_commit, fs_upkeep, fs_report, fs_close,
};

static int fs_get(struct fake_sink *fs, const int *field)
{
    uv_mutex_lock(&fs->mu);
    int v = *field;
    uv_mutex_unlock(&fs->mu);
    return v;
}

static void fs_gate(struct fake_sink *fs)
{
    uv_mutex_lock(&fs->mu);
    fs->gates++;
    uv_cond_broadcast(&fs->cond);
    uv_mutex_unlock(&fs->mu);
}

/* ---- the fixture ---- */

struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    struct fake_sink fs;
    struct metrics m;
    struct pipeline *p;
    int drains;
    bool closed;
};

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void on_drain(void *arg)
{
    ((struct fx *)arg)->drains++;
}

static struct fx *fx_new_lim(const struct pipeline_limits *lim, bool hold)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct errbuf eb;

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, on_tick, 2, 2);
    fs_init(&fx->fs);
    fx->fs.hold = hold;
    struct pipeline_sink sink = { &fs_ops, &fx->fs };
    errbuf_clear(&eb);
    assert_int_equal(pipeline_new(&fx->loop, &sink, 100, lim, &fx->m, on_drain, fx, &fx->p, &eb),
                     0);
    assert_true(fx->fs.started_with_pipeline);
    return fx;
}

/* No evidence room; evidence is never refused for the disk. */
static struct fx *fx_new(size_t batch_max, size_t slack, bool hold)
{
    struct pipeline_limits lim = { batch_max, slack, 0, UINT64_MAX, UINT64_MAX };
    return fx_new_lim(&lim, hold);
}

static void on_closed(void *arg)
{
    ((struct fx *)arg)->closed = true;
}

static void fx_free(struct fx *fx)
{
    uv_mutex_lock(&fx->fs.mu);
    fx->fs.hold = false;
    uv_cond_broadcast(&fx->fs.cond);
    uv_mutex_unlock(&fx->fs.mu);
    pipeline_close(fx->p, on_closed, fx);
    RUN_UNTIL(fx, fx->closed);
    assert_true(fx->fs.closed);
    pipeline_free(fx->p);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    assert_true(fx->fs.seq_order_ok);
    fs_release(&fx->fs);
    free(fx);
}

static void add_events(struct fx *fx, int n, const char *msg)
{
    for (int i = 0; i < n; i++) {
        struct rec r;
        rec_init(&r);
        rec_set(&r, VG_F_MESSAGE, span_str(msg));
        assert_int_equal(pipeline_add(fx->p, &r), 0);
    }
}

/* A waiter records the order it ran in and the rc it got. */
struct waiter_log {
    int order[16];
    int rc[16];
    int n;
};
struct wait_arg {
    struct waiter_log *log;
    int id;
    int subs_seen; /* subscriber calls when it ran */
    int *subs;
};

static void on_done(void *arg, int rc)
{
    struct wait_arg *w = arg;
    w->log->order[w->log->n] = w->id;
    w->log->rc[w->log->n] = rc;
    w->log->n++;
    if (w->subs) {
        w->subs_seen = *w->subs;
    }
}

/* ---- tests ---- */

/* What is added while a batch commits goes together in the next one; each waiter runs
 * once everything added before it is durable, in order. */
static void test_group_commit_and_waiters(void **state)
{
    struct fx *fx = fx_new(1 << 20, 1 << 20, true);
    struct waiter_log log = { 0 };
    struct wait_arg a = { &log, 1, 0, NULL };
    struct wait_arg b = { &log, 2, 0, NULL };
    struct wait_arg c = { &log, 3, 0, NULL };

    (void)state;
    add_events(fx, 3, "first");
    pipeline_when_durable(fx->p, on_done, &a);
    RUN_UNTIL(fx, fs_get(&fx->fs, &fx->fs.started) == 1); /* batch 1 is committing */
    add_events(fx, 2, "second");
    pipeline_when_durable(fx->p, on_done, &b);
    add_events(fx, 4, "second");
    pipeline_when_durable(fx->p, on_done, &c);
    for (int i = 0; i < 5; i++) {
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(log.n, 0);
    assert_int_equal(fs_get(&fx->fs, &fx->fs.started), 1); /* one batch in flight at most */
    fs_gate(&fx->fs);
    RUN_UNTIL(fx, log.n == 1);
    assert_int_equal(log.order[0], 1);
    assert_int_equal(log.rc[0], 0);
    RUN_UNTIL(fx, fs_get(&fx->fs, &fx->fs.started) == 2);
    assert_int_equal(log.n, 1); /* b and c wait for batch 2 */
    fs_gate(&fx->fs);
    RUN_UNTIL(fx, log.n == 3);
    assert_int_equal(log.order[1], 2);
    assert_int_equal(log.order[2], 3);
    assert_int_equal(fx->fs.commits, 2);
    assert_int_equal(fx->fs.sizes[0], 3);
    assert_int_equal(fx->fs.sizes[1], 6);
    assert_int_equal(fx->m.events_stored, 9);
    assert_int_equal(fx->m.batches_committed, 2);
    assert_int_equal(fx->fs.last_seq, 108); /* first_seq 100, nine records */
    fx_free(fx);
}

/* Subscribers see every durable record in seq order, before the waiters; a record one
 * adds (an alert) joins the next batch. */
struct sub {
    struct fx *fx;
    int calls;
    uint64_t last_seq;
    bool order_ok;
    bool add_alert; /* adds one record on its first call */
};

static void on_record(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct sub *s = arg;
    struct span cur = rec;
    struct rec r;

    (void)ts;
    assert_int_equal(rec_decode(&cur, &r), 0);
    assert_true(r.has_seq && r.seq == seq);
    assert_true(r.has_ts && r.has_received);
    if (s->calls > 0 && seq != s->last_seq + 1) {
        s->order_ok = false;
    }
    s->last_seq = seq;
    s->calls++;
    if (s->add_alert) {
        s->add_alert = false;
        struct rec alert;
        rec_init(&alert);
        rec_set(&alert, VG_F_KIND, SPAN_LIT("alert"));
        assert_int_equal(pipeline_add(s->fx->p, &alert), 0);
    }
}

static void test_subscribers(void **state)
{
    struct fx *fx = fx_new(1 << 20, 1 << 20, false);
    struct sub s1 = { fx, 0, 0, true, true };
    struct sub s2 = { fx, 0, 0, true, false };
    struct waiter_log log = { 0 };
    struct wait_arg a = { &log, 1, 0, &s2.calls };

    (void)state;
    assert_int_equal(pipeline_subscribe(fx->p, on_record, &s1), 0);
    assert_int_equal(pipeline_subscribe(fx->p, on_record, &s2), 0);
    assert_int_equal(pipeline_subscribe(fx->p, on_record, &s2), 0);
    assert_int_equal(pipeline_subscribe(fx->p, on_record, &s2), 0);
    assert_int_equal(pipeline_subscribe(fx->p, on_record, &s2), VG_ELIMIT);
    add_events(fx, 5, "e");
    pipeline_when_durable(fx->p, on_done, &a);
    RUN_UNTIL(fx, log.n == 1);
    assert_int_equal(a.subs_seen, 3 * 5); /* s2 three times, before the waiter */
    assert_int_equal(s1.calls, 5);
    /* The alert s1 added goes in the next batch, and to every subscriber again. */
    RUN_UNTIL(fx, s1.calls == 6);
    RUN_UNTIL(fx, s2.calls == 18);
    assert_true(s1.order_ok);
    assert_int_equal(s1.last_seq, 105);
    assert_int_equal(fx->fs.commits, 2);
    fx_free(fx);
}

/* A failed commit: waiters get the error, subscribers nothing, and the next batch is
 * committed as usual. */
static void test_commit_failure(void **state)
{
    struct fx *fx = fx_new(1 << 20, 1 << 20, false);
    struct sub s = { fx, 0, 0, true, false };
    struct waiter_log log = { 0 };
    struct wait_arg a = { &log, 1, 0, NULL };
    struct wait_arg b = { &log, 2, 0, NULL };

    (void)state;
    assert_int_equal(pipeline_subscribe(fx->p, on_record, &s), 0);
    fx->fs.fail_rc = -EIO;
    add_events(fx, 2, "lost");
    pipeline_when_durable(fx->p, on_done, &a);
    RUN_UNTIL(fx, log.n == 1);
    assert_int_equal(log.rc[0], -EIO);
    assert_int_equal(s.calls, 0);
    assert_int_equal(fx->m.commit_failures, 1);
    assert_int_equal(fx->m.events_stored, 0);
    add_events(fx, 1, "kept");
    pipeline_when_durable(fx->p, on_done, &b);
    RUN_UNTIL(fx, log.n == 2);
    assert_int_equal(log.rc[1], 0);
    assert_int_equal(s.calls, 1);
    fx_free(fx);
}

/* The disk below its reserve: the sink refuses; only evidence is appended, the waiters
 * acknowledge nothing, and the refused are counted. */
static void test_full_disk(void **state)
{
    struct fx *fx = fx_new(1 << 20, 1 << 20, false);
    struct waiter_log log = { 0 };
    struct wait_arg a = { &log, 1, 0, NULL };
    struct wait_arg b = { &log, 2, 0, NULL };
    struct rec ev;

    (void)state;
    fx->fs.refusing = true;
    add_events(fx, 3, "refused");
    rec_init(&ev);
    rec_set(&ev, VG_F_SOURCE, SPAN_LIT("vigil"));
    assert_int_equal(pipeline_add_evidence(fx->p, &ev, false), 0);
    pipeline_when_durable(fx->p, on_done, &a);
    RUN_UNTIL(fx, log.n == 1);
    assert_int_equal(log.rc[0], -ENOSPC);
    assert_int_equal(fx->fs.sizes[0], 1); /* the evidence alone */
    assert_int_equal(fx->fs.refused, 3);
    assert_int_equal(fx->m.events_refused_disk, 3);
    assert_int_equal(fx->m.events_stored, 1);
    assert_int_equal(fx->m.commit_failures, 0);
    /* Space is back: taken again. */
    uv_mutex_lock(&fx->fs.mu);
    fx->fs.refusing = false;
    uv_mutex_unlock(&fx->fs.mu);
    add_events(fx, 2, "taken");
    pipeline_when_durable(fx->p, on_done, &b);
    RUN_UNTIL(fx, log.n == 2);
    assert_int_equal(log.rc[1], 0);
    assert_int_equal(fx->m.events_stored, 3);
    fx_free(fx);
}

/* Backpressure: past batch_max the pipeline is full; once the batch went to the store
 * thread and the open one has room, the drain callback says so. Past the slack, adds
 * fail and take nothing. */
static void test_backpressure_and_limit(void **state)
{
    struct fx *fx = fx_new(4096, 2048, true);
    struct rec r;
    char big[1500];
    int added = 0;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    add_events(fx, 1, "first");
    RUN_UNTIL(fx, fs_get(&fx->fs, &fx->fs.started) == 1);
    while (!pipeline_full(fx->p)) {
        add_events(fx, 1, big);
        added++;
    }
    assert_true(added >= 2);
    /* Past the hard limit: refused, nothing taken. */
    int rc = 0;
    int more = 0;
    while (rc == 0) {
        rec_init(&r);
        rec_set(&r, VG_F_MESSAGE, span_str(big));
        rc = pipeline_add(fx->p, &r);
        more += rc == 0;
    }
    assert_int_equal(rc, VG_ELIMIT);
    assert_true(more <= 2);
    assert_int_equal(fx->drains, 0);
    fs_gate(&fx->fs); /* batch 1 done: the full one goes to the store thread */
    RUN_UNTIL(fx, fx->drains == 1);
    assert_false(pipeline_full(fx->p));
    fs_gate(&fx->fs);
    RUN_UNTIL(fx, fx->m.batches_committed == 2);
    assert_int_equal(fx->m.events_stored, (uint64_t)(1 + added + more));
    fx_free(fx);
}

/* Evidence has room of its own past the hard limit: a full batch still takes it, up to
 * that room. */
static void test_evidence_room(void **state)
{
    struct pipeline_limits lim = { 4096, 2048, 4096, UINT64_MAX, UINT64_MAX };
    struct fx *fx = fx_new_lim(&lim, true);
    char big[1500];
    struct rec r;
    int ev = 0;

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    add_events(fx, 1, "first");
    RUN_UNTIL(fx, fs_get(&fx->fs, &fx->fs.started) == 1);
    do {
        rec_init(&r);
        rec_set(&r, VG_F_MESSAGE, span_str(big));
    } while (pipeline_add(fx->p, &r) == 0);
    /* Past the hard limit for events, but evidence goes in... */
    for (;;) {
        rec_init(&r);
        rec_set(&r, VG_F_SOURCE, SPAN_LIT("vigil"));
        rec_set(&r, VG_F_MESSAGE, span_str(big));
        if (pipeline_add_evidence(fx->p, &r, false) < 0) {
            break;
        }
        ev++;
    }
    /* ...until its own room is used up too. */
    assert_true(ev >= 2);
    assert_true(ev <= 3);
    fs_gate(&fx->fs);
    fs_gate(&fx->fs);
    RUN_UNTIL(fx, fx->m.batches_committed == 2);
    fx_free(fx);
}

/* Below the free reserve, evidence is stored only within its allowance per episode, the
 * strangers' part smaller; past it, it is refused and counted. A new episode starts with
 * the whole allowance again. */
static void test_refusing_allowance(void **state)
{
    struct pipeline_limits lim = { 1 << 20, 1 << 20, 1 << 16, 1000, 300 };
    struct fx *fx = fx_new_lim(&lim, false);
    struct waiter_log log = { 0 };
    struct wait_arg a = { &log, 1, 0, NULL };
    struct wait_arg b = { &log, 2, 0, NULL };
    struct wait_arg c = { &log, 3, 0, NULL };
    char msg[200];
    struct rec r;

    (void)state;
    memset(msg, 'e', sizeof(msg) - 1);
    msg[sizeof(msg) - 1] = 0;
    fx->fs.refusing = true;
    /* Strangers first: about 200 bytes each, so only one fits their 300 bytes... */
    for (int i = 0; i < 5; i++) {
        rec_init(&r);
        rec_set(&r, VG_F_MESSAGE, span_str(msg));
        assert_int_equal(pipeline_add_evidence(fx->p, &r, true), 0);
    }
    /* ...and the collector's own evidence still has the rest of the 1000. */
    for (int i = 0; i < 5; i++) {
        rec_init(&r);
        rec_set(&r, VG_F_MESSAGE, span_str(msg));
        assert_int_equal(pipeline_add_evidence(fx->p, &r, false), 0);
    }
    add_events(fx, 2, "refused");
    pipeline_when_durable(fx->p, on_done, &a);
    RUN_UNTIL(fx, log.n == 1);
    assert_int_equal(log.rc[0], -ENOSPC);
    size_t stored = fx->fs.sizes[0];
    assert_true(stored >= 4 && stored <= 5); /* 1 stranger + 3 or 4 of the others */
    assert_int_equal(fx->m.evidence_refused_disk, 10 - stored);
    assert_int_equal(fx->m.events_refused_disk, 2);
    /* Still refusing: the allowance is spent for this episode. */
    rec_init(&r);
    rec_set(&r, VG_F_MESSAGE, span_str(msg));
    assert_int_equal(pipeline_add_evidence(fx->p, &r, false), 0);
    pipeline_when_durable(fx->p, on_done, &b);
    RUN_UNTIL(fx, log.n == 2);
    assert_int_equal(fx->fs.sizes[1], 0);
    assert_int_equal(fx->m.evidence_refused_disk, 11 - stored);
    /* Space came back and went again: a new episode, a whole allowance. */
    uv_mutex_lock(&fx->fs.mu);
    fx->fs.refusing = false;
    uv_mutex_unlock(&fx->fs.mu);
    add_events(fx, 1, "taken");
    pipeline_when_durable(fx->p, on_done, &c);
    RUN_UNTIL(fx, log.n == 3);
    assert_int_equal(log.rc[2], 0);
    uv_mutex_lock(&fx->fs.mu);
    fx->fs.refusing = true;
    uv_mutex_unlock(&fx->fs.mu);
    rec_init(&r);
    rec_set(&r, VG_F_MESSAGE, span_str(msg));
    assert_int_equal(pipeline_add_evidence(fx->p, &r, true), 0);
    struct wait_arg d = { &log, 4, 0, NULL };
    pipeline_when_durable(fx->p, on_done, &d);
    RUN_UNTIL(fx, log.n == 4);
    assert_int_equal(fx->fs.sizes[3], 1);
    fx_free(fx);
}

/* A unit taken back: its records leave the open batch and their seqs are given out
 * again, as if they had never been added; what came before stays. */
static void test_rollback(void **state)
{
    struct fx *fx = fx_new(1 << 20, 1 << 20, true);
    struct pipeline_mark mk;
    struct rec r;

    (void)state;
    add_events(fx, 1, "first"); /* seq 100, committing (held) */
    RUN_UNTIL(fx, fs_get(&fx->fs, &fx->fs.started) == 1);
    add_events(fx, 2, "kept"); /* 101, 102 */
    pipeline_mark(fx->p, &mk);
    add_events(fx, 3, "dropped"); /* 103..105, taken back */
    pipeline_rollback(fx->p, &mk);
    rec_init(&r);
    rec_set(&r, VG_F_MESSAGE, SPAN_LIT("after"));
    assert_int_equal(pipeline_add(fx->p, &r), 0);
    assert_int_equal(r.seq, 103);
    fs_gate(&fx->fs);
    fs_gate(&fx->fs);
    RUN_UNTIL(fx, fx->m.batches_committed == 2);
    assert_int_equal(fx->fs.sizes[1], 3);
    uv_mutex_lock(&fx->fs.mu);
    bool in_order = fx->fs.seq_order_ok;
    uint64_t last = fx->fs.last_seq;
    uv_mutex_unlock(&fx->fs.mu);
    assert_true(in_order);
    assert_int_equal(last, 103); /* no gap where the dropped ones were */
    assert_int_equal(fx->m.events_stored, 4);
    fx_free(fx);
}

/* upkeep runs at start and after each batch; pipeline_kick (any thread) runs it now;
 * its news wakes the loop, which asks the sink to report. */
static void kick_thread(void *arg)
{
    pipeline_kick(arg);
}

static void test_upkeep_kick_report(void **state)
{
    struct fx *fx = fx_new(1 << 20, 1 << 20, false);
    uv_thread_t th;

    (void)state;
    RUN_UNTIL(fx, fs_get(&fx->fs, &fx->fs.upkeeps) == 1); /* at start */
    int reports = fx->fs.reports;
    uv_mutex_lock(&fx->fs.mu);
    fx->fs.news = true;
    uv_mutex_unlock(&fx->fs.mu);
    assert_int_equal(uv_thread_create(&th, kick_thread, fx->p), 0);
    assert_int_equal(uv_thread_join(&th), 0);
    RUN_UNTIL(fx, fs_get(&fx->fs, &fx->fs.upkeeps) == 2);
    RUN_UNTIL(fx, fx->fs.reports == reports + 1);
    add_events(fx, 1, "e");
    RUN_UNTIL(fx, fx->m.batches_committed == 1);
    assert_int_equal(fs_get(&fx->fs, &fx->fs.upkeeps), 3);
    fx_free(fx);
}

/* Closing flushes the open batch, runs its waiters, then closes the sink. */
static void test_close_flushes(void **state)
{
    struct fx *fx = fx_new(1 << 20, 1 << 20, false);
    struct waiter_log log = { 0 };
    struct wait_arg a = { &log, 1, 0, NULL };

    (void)state;
    add_events(fx, 4, "last words");
    pipeline_when_durable(fx->p, on_done, &a);
    pipeline_close(fx->p, on_closed, fx);
    RUN_UNTIL(fx, fx->closed);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.rc[0], 0);
    assert_int_equal(fx->fs.sizes[0], 4);
    assert_true(fx->fs.closed);
    pipeline_free(fx->p);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    fs_release(&fx->fs);
    free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_commit_and_waiters), cmocka_unit_test(test_subscribers),
        cmocka_unit_test(test_commit_failure),           cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_backpressure_and_limit),   cmocka_unit_test(test_evidence_room),
        cmocka_unit_test(test_refusing_allowance),       cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_upkeep_kick_report),       cmocka_unit_test(test_close_flushes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
