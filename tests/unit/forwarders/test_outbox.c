/* tests/unit/forwarders/test_outbox.c: the durable outbox (forwarders/outbox.c): entries
 * keyed by (alert seq, receiver), the cursor in the same transaction, updates superseded,
 * results, dead letters and replay, re-send candidates, expiry and pruning; an entry
 * enqueued and never sent (the process died between the two) is still queued after a
 * reopen. Then the forwarders themselves on a real loop and store: after a crash between
 * the store's commit and the outbox's, the catch-up scan from the cursor enqueues
 * exactly what is missing, once; a stop records the cursor. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/time.h"
#include "forwarders/fwd_int.h"
#include "store/store.h"
#include "tests/unit/forwarders/alert_util.h"
#include "tests/unit/store/tdir.h"

#define S 1000000000LL

static const char *const grp[] = { "src_ip", "198.18.0.10", NULL };

/* An alert record for incident inc in state st, at seq. */
static void mk(struct buf *b, uint64_t seq, const char *inc, const char *st, uint64_t count)
{
    struct mk m = { 0 };
    m.state = st;
    m.incident = inc;
    m.count = count;
    m.first_seen = 1000 * S;
    m.last_seen = (1000 + (int64_t)seq) * S;
    m.seq = seq;
    m.group = grp;
    buf_reset(b);
    assert_int_equal(mk_alert(&m, b), 0);
}

static int enqueue(struct outbox *ob, struct buf *b, uint64_t seq, const char *const *rcv,
                   size_t nr, uint64_t cursor)
{
    struct fwd_alert a;
    assert_int_equal(fwd_alert_parse(buf_span(b), seq, &a), 0);
    struct outbox_add add = { &a, buf_span(b), rcv, nr };
    return outbox_enqueue(ob, &add, 1, cursor, vg_now_ns());
}

static size_t next_seqs(struct outbox *ob, const char *r, uint64_t *seqs, int64_t *ids)
{
    struct outbox_item *it;
    size_t n;
    assert_int_equal(outbox_next(ob, r, 16, &it, &n), 0);
    for (size_t i = 0; i < n; i++) {
        seqs[i] = it[i].seq;
        ids[i] = it[i].id;
        assert_true(it[i].rec_len > 0);
    }
    outbox_items_free(it, n);
    return n;
}

static int count_incidents(void *arg, const struct fwd_incident_row *r)
{
    int *n = arg;
    (*n)++;
    assert_string_equal(r->state, "resolved");
    assert_string_equal(r->title, "SSH brute force");
    assert_string_equal(r->group_json, "{\"src_ip\":\"198.18.0.10\"}");
    assert_int_equal(r->count, 9);
    assert_non_null(strstr(r->deliveries, "r1=resolved"));
    return 0;
}

static void test_outbox_lifecycle(void **state)
{
    const struct tdir *t = *state;
    const char *dir = t->dir;
    struct outbox *ob;
    struct errbuf eb;
    bool created;
    uint64_t cur;
    struct buf b;
    uint64_t seqs[16];
    int64_t ids[16];
    static const char *const both[] = { "r1", "r2" };
    static const char *const r1[] = { "r1" };

    assert_int_equal(mkdir(dir, 0700), 0);
    errbuf_clear(&eb);
    buf_init(&b, 1 << 20);
    assert_int_equal(outbox_open(dir, false, 5, &ob, &created, &eb), 0);
    assert_true(created);
    assert_int_equal(outbox_cursor(ob, &cur), 0);
    assert_int_equal(cur, 5);
    outbox_close(ob);
    assert_int_equal(outbox_open(dir, false, 99, &ob, &created, &eb), 0);
    assert_false(created);
    assert_int_equal(outbox_cursor(ob, &cur), 0);
    assert_int_equal(cur, 5);

    /* (seq, receiver) is unique: a second enqueue of the same alert adds nothing */
    mk(&b, 10, "I-1", "firing", 1);
    assert_int_equal(enqueue(ob, &b, 10, both, 2, 10), 2);
    assert_int_equal(enqueue(ob, &b, 10, both, 2, 10), 0);
    assert_int_equal(enqueue(ob, &b, 10, both, 2, 3), 0);
    assert_int_equal(outbox_cursor(ob, &cur), 0);
    assert_int_equal(cur, 10); /* never lowered */

    /* an update still queued is superseded by a newer state of the same incident */
    mk(&b, 11, "I-1", "update", 5);
    assert_int_equal(enqueue(ob, &b, 11, r1, 1, 11), 1);
    mk(&b, 12, "I-1", "update", 7);
    assert_int_equal(enqueue(ob, &b, 12, r1, 1, 12), 1);
    assert_int_equal(next_seqs(ob, "r1", seqs, ids), 2);
    assert_int_equal(seqs[0], 10);
    assert_int_equal(seqs[1], 12);

    /* the process dies after the enqueue, before any send: still queued after a reopen */
    outbox_close(ob);
    assert_int_equal(outbox_open(dir, false, 0, &ob, NULL, &eb), 0);
    assert_int_equal(next_seqs(ob, "r1", seqs, ids), 2);

    /* results: delivered, retried (still queued), dead (out of the queue, kept) */
    struct outbox_result res[2] = { { .id = ids[0], .outcome = FWD_DELIVERED, .status = 200 },
                                    { .id = ids[1], .outcome = FWD_RETRY, .status = 503 } };
    snprintf(res[1].error, sizeof(res[1].error), "HTTP 503: down");
    assert_int_equal(outbox_record(ob, res, 2), 0);
    assert_int_equal(next_seqs(ob, "r1", seqs, ids), 1);
    assert_int_equal(seqs[0], 12);
    /* open incident, delivered to r1, nothing queued for it: not yet a re-send (12 is) */
    struct outbox_item *it;
    size_t n;
    assert_int_equal(outbox_open_delivered(ob, "r1", 0, 10, &it, &n), 0);
    assert_int_equal(n, 0);
    outbox_items_free(it, n);
    res[0] = (struct outbox_result){ .id = ids[0], .outcome = FWD_DEAD, .status = 400 };
    snprintf(res[0].error, sizeof(res[0].error), "HTTP 400: bad");
    assert_int_equal(outbox_record(ob, res, 1), 0);
    assert_int_equal(next_seqs(ob, "r1", seqs, ids), 0);
    /* now r1 has the incident delivered and nothing queued: Alertmanager re-sends seq 12 */
    assert_int_equal(outbox_open_delivered(ob, "r1", 0, 10, &it, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].seq, 12);
    outbox_items_free(it, n);
    assert_int_equal(outbox_open_delivered(ob, "r1", 12, 10, &it, &n), 0); /* the next page */
    assert_int_equal(n, 0);
    outbox_items_free(it, n);

    struct outbox_rstats st;
    assert_int_equal(outbox_receiver_stats(ob, "r1", &st), 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.dead, 1);
    assert_int_equal(outbox_receiver_stats(ob, "r2", &st), 0);
    assert_int_equal(st.queued, 1);
    assert_true(st.oldest_ns > 0);

    /* replay from `vigil alerts` (another connection) */
    assert_int_equal(fwd_outbox_replay(dir, 0, &eb), 1);
    assert_int_equal(fwd_outbox_replay(dir, 999, &eb), -ENOENT);
    assert_int_equal(next_seqs(ob, "r1", seqs, ids), 1);
    assert_int_equal(seqs[0], 12);

    /* resolved: no more re-sends; expiry; pruning keeps what is not delivered */
    mk(&b, 13, "I-1", "resolved", 9);
    assert_int_equal(enqueue(ob, &b, 13, r1, 1, 13), 1);
    assert_int_equal(outbox_open_delivered(ob, "r1", 0, 10, &it, &n), 0);
    assert_int_equal(n, 0);
    outbox_items_free(it, n);
    assert_int_equal(outbox_expire(ob, "r2", vg_now_ns() + S, "gave up"), 1);
    assert_int_equal(outbox_receiver_stats(ob, "r2", &st), 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.dead, 1);
    assert_int_equal(outbox_prune(ob, vg_now_ns() + 3600 * S), 0);
    int ninc = 0;
    assert_int_equal(fwd_outbox_incidents(dir, NULL, 10, count_incidents, &ninc, &eb), 0);
    assert_int_equal(ninc, 1);
    outbox_close(ob);
    buf_release(&b);
}

/* ---- the engine: catch-up after a crash ---- */

struct poll_ctx {
    const char *dir;
    struct fwd *f;
    uv_timer_t t;
    int64_t deadline;
    uint64_t queued;
    bool closing;
    bool closed;
};

static int sum_queued(void *arg, const struct fwd_summary_row *r)
{
    struct poll_ctx *c = arg;
    c->queued += r->queued;
    return 0;
}

static void on_fwd_closed(void *arg)
{
    struct poll_ctx *c = arg;
    c->closed = true;
    uv_close((uv_handle_t *)&c->t, NULL);
}

static void on_poll(uv_timer_t *t)
{
    struct poll_ctx *c = t->data;
    struct errbuf eb;

    errbuf_clear(&eb);
    c->queued = 0;
    if (fwd_outbox_summary(c->dir, sum_queued, c, &eb) == 0 && c->queued >= 3) {
        c->closing = true;
    }
    if (vg_mono_ns() > c->deadline) {
        c->closing = true; /* the assertions after the loop tell what was missing */
    }
    if (c->closing) {
        uv_timer_stop(t);
        fwd_close(c->f, on_fwd_closed, c);
    }
}

static void test_catch_up_after_crash(void **state)
{
    const struct tdir *t = *state;
    const char *dir = t->dir;
    struct store *st;
    struct errbuf eb;
    struct buf b;
    struct store_opts so = { 0 };

    errbuf_clear(&eb);
    buf_init(&b, 1 << 20);
    so.dir = dir;
    so.partition_ns = 3600 * S;
    so.fsync = false;
    assert_int_equal(store_open(&so, &st, &eb), 0);
    /* seqs 1..7: alerts at 2, 4, 5 and 7 (7 is past the store's end at start: not the
     * catch-up's), other records between */
    for (uint64_t seq = 1; seq <= 6; seq++) {
        if (seq == 2 || seq == 4 || seq == 5) {
            char inc[32];
            snprintf(inc, sizeof(inc), "I-%llu", (unsigned long long)seq);
            mk(&b, seq, inc, "firing", 1);
        } else {
            struct mk m = { 0 };
            m.kind = "runtime";
            m.source = "falco";
            m.seq = seq;
            m.first_seen = m.last_seen = 1000 * S;
            buf_reset(&b);
            assert_int_equal(mk_alert(&m, &b), 0);
        }
        assert_int_equal(store_append(st, (1000 + (int64_t)seq) * S, seq, buf_span(&b)), 0);
    }
    assert_int_equal(store_commit(st), 0);
    uint64_t next = store_next_seq(st);
    assert_int_equal(next, 7);
    store_close(st);

    /* The outbox had enqueued seq 2 (cursor 2) when the process died. */
    struct outbox *ob;
    static const char *const rcv[] = { "hook" };
    assert_int_equal(outbox_open(dir, false, 2, &ob, NULL, &eb), 0);
    mk(&b, 2, "I-2", "firing", 1);
    assert_int_equal(enqueue(ob, &b, 2, rcv, 1, 2), 1);
    outbox_close(ob);

    /* A receiver that refuses connections: everything stays queued. */
    struct vg_config *cfg;
    const char *text = "listen: { forward: off, syslog: off, https: off, admin: off }\n"
                       "forwarders:\n"
                       "  - { name: hook, type: webhook, url: 'http://127.0.0.1:1/x',\n"
                       "      retry: { min: 10s } }\n";
    assert_int_equal(config_load_mem("t.yaml", span_str(text), NULL, &cfg, &eb), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct poll_ctx c = { .dir = dir };
    assert_int_equal(fwd_new(&loop, cfg, dir, next, &c.f, &eb), 0);
    fwd_start(c.f);
    /* a live alert after start (seq 7) goes through the hook */
    mk(&b, 7, "I-7", "firing", 1);
    fwd_on_record(c.f, 1007 * S, 7, buf_span(&b));
    uv_timer_init(&loop, &c.t);
    c.t.data = &c;
    c.deadline = vg_mono_ns() + 30 * S;
    uv_timer_start(&c.t, on_poll, 50, 50);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(c.closed);
    assert_int_equal(uv_loop_close(&loop), 0);
    fwd_free(c.f);
    config_free(cfg);

    /* 2 (enqueued before the crash), 4 and 5 (the catch-up), 7 (live): each once */
    assert_int_equal(outbox_open(dir, false, 0, &ob, NULL, &eb), 0);
    uint64_t seqs[16];
    int64_t ids[16];
    assert_int_equal(next_seqs(ob, "hook", seqs, ids), 4);
    assert_int_equal(seqs[0], 2);
    assert_int_equal(seqs[1], 4);
    assert_int_equal(seqs[2], 5);
    assert_int_equal(seqs[3], 7);
    uint64_t cur;
    assert_int_equal(outbox_cursor(ob, &cur), 0);
    assert_int_equal(cur, 7); /* the stop recorded the last committed seq seen */
    outbox_close(ob);
    buf_release(&b);
}

static int setup(void **state)
{
    return tdir_setup(state, "fwd-outbox");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outbox_lifecycle, setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_after_crash, setup, tdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
