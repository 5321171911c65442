/* tests/unit/collector/test_conn.c: listeners and connections (collector/conn.c) on a
 * real libuv loop and loopback sockets, against a fake ingest port and a small line
 * protocol defined here: every line is one event, a line starting with "ack" waits for
 * durability and is answered "ok" (or the connection closes when the port says the
 * events are lost), "bye" finishes the connection.
 *
 * Covered: events and acks; backpressure (the port full: reading stops, resumes with
 * conn_resume_all, nothing lost); the close paths (peer EOF while an ack is owed, a
 * reset with an ack owed, a frame over listen.max_frame_bytes, the idle timeout,
 * listen.max_connections, a failed commit, shutdown with conn_drain_all, a listener
 * closed while its connections live); TLS (a verified agent, no client certificate,
 * plaintext on a TLS port, a handshake that never finishes): each refusal counted and
 * recorded through the port as evidence, and the listener still serving afterwards; the
 * guard against strangers (the per-address handshake limit, a newcomer admitted at the
 * global limit by cutting the busiest address's oldest handshake, the accept rate,
 * refusals sampled then summarized).
 * Every test ends with uv_loop_close() == 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector/conn.h"
#include "common/pki.h"
#include "common/tls.h"
#include "tests/unit/collector/loop_test.h"

/* ---- the fake port ---- */

#define FP_MAX_WAITERS 64

struct fake_port {
    bool full;
    int ingested;
    char last_msg[256];
    char last_agent[256];
    int evidence;
    int strangers; /* evidence about unauthenticated peers */
    int summaries; /* of it refusal summaries */
    char ev_action[64];
    char ev_msg[512];
    struct {
        ingest_done_fn fn;
        void *arg;
    } waiters[FP_MAX_WAITERS];
    int nwaiters;
};

static int fp_ingest(void *ctx, struct rec *r)
{
    struct fake_port *fp = ctx;

    fp->ingested++;
    snprintf(fp->last_msg, sizeof(fp->last_msg), "%.*s", (int)r->str[VG_F_MESSAGE].n,
             (const char *)r->str[VG_F_MESSAGE].p);
    snprintf(fp->last_agent, sizeof(fp->last_agent), "%.*s", (int)r->str[VG_F_AGENT].n,
             (const char *)r->str[VG_F_AGENT].p);
    return 0;
}

static void fp_when_durable(void *ctx, ingest_done_fn fn, void *arg)
{
    struct fake_port *fp = ctx;

    assert_true(fp->nwaiters < FP_MAX_WAITERS);
    fp->waiters[fp->nwaiters].fn = fn;
    fp->waiters[fp->nwaiters].arg = arg;
    fp->nwaiters++;
}

static void fp_evidence(void *ctx, const struct ingest_evidence *ev)
{
    struct fake_port *fp = ctx;

    fp->evidence++;
    fp->strangers += ev->stranger;
    fp->summaries += strcmp(ev->action, "refusal_summary") == 0;
    snprintf(fp->ev_action, sizeof(fp->ev_action), "%s", ev->action);
    snprintf(fp->ev_msg, sizeof(fp->ev_msg), "%s", ev->message);
}

static bool fp_full(void *ctx)
{
    return ((struct fake_port *)ctx)->full;
}

static void fp_unit_begin(void *ctx)
{
    (void)ctx;
}

static void fp_unit_end(void *ctx, bool keep)
{
    (void)ctx;
    (void)keep;
}

static const struct ingest_port_ops fp_ops = {
    fp_ingest, fp_when_durable, fp_evidence, fp_full, fp_unit_begin, fp_unit_end,
};

/* Calls every waiter with rc, oldest first (as a commit would). */
static void fp_complete(struct fake_port *fp, int rc)
{
    int n = fp->nwaiters;

    fp->nwaiters = 0;
    for (int i = 0; i < n; i++) {
        fp->waiters[i].fn(fp->waiters[i].arg, rc);
    }
}

/* ---- the line protocol ---- */

static void line_on_durable(void *arg, int rc)
{
    struct conn *c = arg;

    if (c->state != CONN_CLOSING) {
        if (rc == 0) {
            if (conn_send(c, "ok\n", 3) == 0) {
                c->env->m->acks_sent++;
            }
        } else {
            conn_close(c, rc, "not durable");
        }
    }
    conn_waiter_done(c, 1);
    conn_unref(c);
}

static int line_on_data(struct conn *c)
{
    struct ingest_port *port = c->env->port;
    struct span in = buf_span(&c->in);
    int rc = 0;

    while (in.n > 0 && c->state == CONN_STREAMING) {
        if (ingest_full(port)) {
            conn_pause(c);
            break;
        }
        const uint8_t *nl = memchr(in.p, '\n', in.n);
        if (!nl) {
            break;
        }
        struct span line = { in.p, (size_t)(nl - in.p) };
        span_advance(&in, line.n + 1);
        c->env->m->frames++;
        if (span_eq_str(line, "bye")) {
            conn_finish(c);
            break;
        }
        struct rec r;
        rec_init(&r);
        rec_set(&r, VG_F_MESSAGE, line);
        rec_set(&r, VG_F_AGENT, span_str(c->agent));
        if ((rc = ingest_add(port, &r)) < 0) {
            conn_close(c, rc, "not taken");
            break;
        }
        c->env->m->events_received++;
        if (span_starts_with(line, SPAN_LIT("ack"))) {
            conn_ref(c);
            conn_waiter_add(c, 1);
            ingest_when_durable(port, line_on_durable, c);
        }
    }
    if (c->state != CONN_CLOSING) {
        buf_consume(&c->in, c->in.len - in.n);
    }
    return rc;
}

static const struct conn_proto line_proto = {
    .kind = LST_FORWARD,
    .on_data = line_on_data,
};

/* ---- the fixture: a loop, a listener, the fake port ---- */

static char pki_dir[64];

struct fx {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps UV_RUN_ONCE returning while a predicate is polled */
    struct conn_set set;
    struct listen_cfg cfg;
    struct lst_metrics m;
    struct metrics all;
    struct fake_port fp;
    struct ingest_port port;
    struct tls_ctx *tls;
    int64_t handshake_timeout_ns;
    struct guard_cfg guard; /* used when guard.max_handshakes > 0 */
    uint64_t mem_limit;     /* limits.memory; 0: counted only */
    struct listener *l;
    int port_no;
};

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static struct fx *fx_new(bool tls, void (*tweak)(struct fx *))
{
    struct fx *fx = calloc(1, sizeof(*fx));
    struct errbuf eb;
    char ca[128];
    char cert[128];
    char key[128];

    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->tick);
    uv_timer_start(&fx->tick, on_tick, 2, 2);
    conn_set_init(&fx->set, &fx->loop);
    fx->cfg.max_frame_bytes = 64 * 1024;
    fx->cfg.max_connections = 16;
    fx->cfg.idle_timeout_ns = 60LL * 1000000000;
    fx->cfg.high_water_bytes = 1 << 20;
    fx->cfg.header_timeout_ns = 30LL * 1000000000;
    fx->cfg.frame_timeout_ns = 60LL * 1000000000;
    fx->handshake_timeout_ns = 10LL * 1000000000 * loop_test_mult();
    fx->port = (struct ingest_port){ &fp_ops, &fx->fp };
    if (tweak) {
        tweak(fx);
    }
    if (tls) {
        snprintf(ca, sizeof(ca), "%s/ca.pem", pki_dir);
        snprintf(cert, sizeof(cert), "%s/server.pem", pki_dir);
        snprintf(key, sizeof(key), "%s/server-key.pem", pki_dir);
        errbuf_clear(&eb);
        if (tls_server_ctx_new(ca, cert, key, NULL, &fx->tls, &eb) != 0) {
            fail_msg("server ctx: %s", errbuf_msg(&eb));
        }
    }
    struct listener_env env = {
        .set = &fx->set,
        .kind = LST_FORWARD,
        .cfg = &fx->cfg,
        .handshake_timeout_ns = fx->handshake_timeout_ns,
        .tls = fx->tls,
        .m = &fx->m,
        .port = &fx->port,
        .self_host = "test-host",
        .all = &fx->all,
    };
    errbuf_clear(&eb);
    if (listener_start(&env, &line_proto, "127.0.0.1", 0, &fx->l, &eb) != 0) {
        fail_msg("listener: %s", errbuf_msg(&eb));
    }
    fx->port_no = fx->l->port;
    if (fx->guard.max_handshakes > 0) {
        conn_set_guard(&fx->set, &fx->guard, &fx->port, &fx->all);
    }
    conn_set_memory(&fx->set, fx->mem_limit, &fx->all);
    return fx;
}

static void fx_free(struct fx *fx)
{
    fp_complete(&fx->fp, -ECANCELED); /* what a closing pipeline does */
    listener_close(fx->l);
    conn_drain_all(&fx->set);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    conn_set_close(&fx->set);
    uv_close((uv_handle_t *)&fx->tick, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    assert_int_equal(fx->m.conns_open, 0);
    assert_int_equal(fx->set.mem.used, 0); /* every buffer gave its memory back */
    tls_ctx_free(fx->tls);
    free(fx);
}

/* ---- a plain client (blocking connect; loopback's backlog accepts it at once) ---- */

/* From 127.0.0.<from> (Linux routes all of 127/8 to loopback): the guard tells
 * addresses apart. */
static int cl_connect_from(int port, int from)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    struct sockaddr_in src = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK - 1 + (uint32_t)from);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static int cl_connect(int port)
{
    return cl_connect_from(port, 1);
}

static void cl_send(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* What the client has received so far (non-blocking); -1 once the peer closed. */
static ssize_t cl_recv(int fd, char *buf, size_t cap)
{
    ssize_t n = recv(fd, buf, cap - 1, MSG_DONTWAIT);
    if (n == 0) {
        return -1;
    }
    if (n < 0) {
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    buf[n] = 0;
    return n;
}

static int count_state(const struct fx *fx, enum conn_state st)
{
    int n = 0;
    for (const struct conn *c = fx->set.conns; c; c = c->next) {
        n += c->state == st;
    }
    return n;
}

static struct conn *only_conn(struct fx *fx)
{
    assert_non_null(fx->set.conns);
    assert_null(fx->set.conns->next);
    return fx->set.conns;
}

/* ---- plaintext: events, acks, backpressure, close paths ---- */

static void test_events_and_acks(void **state)
{
    struct fx *fx = fx_new(false, NULL);
    char buf[256];
    ssize_t n = 0;

    (void)state;
    int fd = cl_connect(fx->port_no);
    cl_send(fd, "one\ntwo\nack three\n");
    RUN_UNTIL(fx, fx->fp.ingested == 3);
    assert_string_equal(fx->fp.last_msg, "ack three");
    assert_string_equal(fx->fp.last_agent, "insecure:127.0.0.1");
    assert_int_equal(fx->fp.nwaiters, 1);
    /* Nothing is acknowledged before the port says it is durable. */
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(cl_recv(fd, buf, sizeof(buf)), 0);
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, (n = cl_recv(fd, buf, sizeof(buf))) != 0);
    assert_int_equal(n, 3);
    assert_string_equal(buf, "ok\n");
    assert_int_equal(fx->m.acks_sent, 1);
    assert_int_equal(fx->m.frames, 3);
    assert_int_equal(fx->m.conns_accepted, 1);
    assert_int_equal(fx->m.conns_open, 1);
    assert_true(fx->m.bytes_received >= 18);
    /* "bye": the connection finishes and closes; the client sees EOF. */
    cl_send(fd, "bye\n");
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(cl_recv(fd, buf, sizeof(buf)), -1);
    assert_int_equal(fx->m.conns_dropped_unacked, 0);
    close(fd);
    fx_free(fx);
}

static void test_backpressure(void **state)
{
    struct fx *fx = fx_new(false, NULL);

    (void)state;
    int fd = cl_connect(fx->port_no);
    fx->fp.full = true;
    cl_send(fd, "a\nb\n");
    RUN_UNTIL(fx, fx->m.pauses == 1);
    struct conn *c = only_conn(fx);
    assert_false(c->reading);
    assert_true(c->paused);
    assert_int_equal(fx->fp.ingested, 0);
    /* More arrives meanwhile: it waits in the socket, unread. */
    cl_send(fd, "c\n");
    for (int i = 0; i < 20; i++) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_int_equal(fx->fp.ingested, 0);
    assert_int_equal(fx->m.pauses, 1);
    /* Room again: buffered frames first, then reading; nothing lost. */
    fx->fp.full = false;
    conn_resume_all(&fx->set);
    assert_true(fx->fp.ingested >= 2);
    RUN_UNTIL(fx, fx->fp.ingested == 3);
    assert_true(c->reading);
    assert_false(c->paused);
    assert_string_equal(fx->fp.last_msg, "c");
    close(fd);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    fx_free(fx);
}

/* The peer half-closes with an ack owed: the connection drains (no more reading), sends
 * the ack once durable, then closes. */
static void test_eof_waits_for_ack(void **state)
{
    struct fx *fx = fx_new(false, NULL);
    char buf[64];
    ssize_t n = 0;

    (void)state;
    int fd = cl_connect(fx->port_no);
    cl_send(fd, "ack 1\n");
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    RUN_UNTIL(fx, fx->set.conns && fx->set.conns->state == CONN_DRAINING);
    for (int i = 0; i < 10; i++) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_non_null(fx->set.conns); /* still owed an ack */
    assert_int_equal(fx->m.conns_open, 1);
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->m.acks_sent, 1);
    assert_int_equal(fx->m.conns_dropped_unacked, 0);
    RUN_UNTIL(fx, (n = cl_recv(fd, buf, sizeof(buf))) != 0);
    assert_int_equal(n, 3);
    assert_int_equal(cl_recv(fd, buf, sizeof(buf)), -1); /* then EOF */
    close(fd);
    fx_free(fx);
}

/* A reset with an ack owed: closed at once and counted; the waiter completing later
 * finds the connection closing and only lets go of it (ASan watches). */
static void test_reset_with_ack_owed(void **state)
{
    struct fx *fx = fx_new(false, NULL);
    struct linger lg = { 1, 0 };

    (void)state;
    int fd = cl_connect(fx->port_no);
    cl_send(fd, "ack 1\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 1);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd); /* RST */
    RUN_UNTIL(fx, fx->m.conns_dropped_unacked == 1);
    struct conn *c = only_conn(fx); /* held by the waiter */
    assert_int_equal(c->state, CONN_CLOSING);
    assert_int_equal(fx->m.conns_open, 0);
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->m.acks_sent, 0);
    fx_free(fx);
}

/* The events of an ack are lost (a failed commit): the connection closes, nothing is
 * acknowledged, and the agent resends. */
static void test_commit_failure_closes(void **state)
{
    struct fx *fx = fx_new(false, NULL);
    char buf[64];

    (void)state;
    int fd = cl_connect(fx->port_no);
    cl_send(fd, "ack 1\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 1);
    fp_complete(&fx->fp, -EIO);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->m.acks_sent, 0);
    assert_int_equal(fx->m.conns_dropped_unacked, 1); /* closed while the ack was owed */
    ssize_t n;
    RUN_UNTIL(fx, (n = cl_recv(fd, buf, sizeof(buf))) != 0);
    assert_int_equal(n, -1); /* EOF, no "ok" */
    close(fd);
    fx_free(fx);
}

static void small_frames(struct fx *fx)
{
    fx->cfg.max_frame_bytes = 1024;
}

/* A line longer than listen.max_frame_bytes (plus one read) never fits: closed. */
static void test_frame_over_limit(void **state)
{
    struct fx *fx = fx_new(false, small_frames);
    char big[60 * 1024];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    int fd = cl_connect(fx->port_no);
    cl_send(fd, "fine\n");
    cl_send(fd, big);
    RUN_UNTIL(fx, fx->m.frames_rejected == 1);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->fp.ingested, 1); /* the good frame before it stays */
    close(fd);
    fx_free(fx);
}

static void short_idle(struct fx *fx)
{
    fx->cfg.idle_timeout_ns = 50LL * 1000000;
}

static void test_idle_timeout(void **state)
{
    struct fx *fx = fx_new(false, short_idle);
    char buf[16];

    (void)state;
    int fd = cl_connect(fx->port_no);
    RUN_UNTIL(fx, fx->m.conns_accepted == 1);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    ssize_t n;
    RUN_UNTIL(fx, (n = cl_recv(fd, buf, sizeof(buf))) != 0);
    assert_int_equal(n, -1);
    close(fd);
    fx_free(fx);
}

static void one_conn(struct fx *fx)
{
    fx->cfg.max_connections = 1;
}

static void test_max_connections(void **state)
{
    struct fx *fx = fx_new(false, one_conn);
    char buf[16];

    (void)state;
    int a = cl_connect(fx->port_no);
    RUN_UNTIL(fx, fx->m.conns_accepted == 1);
    int b = cl_connect(fx->port_no);
    RUN_UNTIL(fx, fx->m.conns_refused_limit == 1);
    ssize_t n;
    RUN_UNTIL(fx, (n = cl_recv(b, buf, sizeof(buf))) != 0);
    assert_int_equal(n, -1);
    /* The first one is still served. */
    cl_send(a, "still here\n");
    RUN_UNTIL(fx, fx->fp.ingested == 1);
    close(a);
    close(b);
    fx_free(fx);
}

/* Shutdown: conn_drain_all stops reading everywhere; a connection with an ack owed closes
 * once it is sent, an idle one at once; a new connection is turned away. */
static void test_drain_all(void **state)
{
    struct fx *fx = fx_new(false, NULL);
    char buf[64];

    (void)state;
    int busy = cl_connect(fx->port_no);
    int idle = cl_connect(fx->port_no);
    cl_send(busy, "ack 1\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 1 && fx->m.conns_accepted == 2);
    conn_drain_all(&fx->set);
    RUN_UNTIL(fx, fx->m.conns_open == 1);
    assert_int_equal(count_state(fx, CONN_DRAINING), 1); /* the busy one */
    int late = cl_connect(fx->port_no);
    RUN_UNTIL(fx, fx->m.conns_accepted == 3);
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    ssize_t n;
    RUN_UNTIL(fx, (n = cl_recv(busy, buf, sizeof(buf))) != 0);
    assert_int_equal(n, 3); /* its ack went out before the close */
    close(busy);
    close(idle);
    close(late);
    fx_free(fx);
}

/* The listener closes while a connection still owes an ack: the connection keeps the
 * listener's memory until it goes (ASan watches). */
static void test_listener_closed_first(void **state)
{
    struct fx *fx = fx_new(false, NULL);

    (void)state;
    int fd = cl_connect(fx->port_no);
    cl_send(fd, "ack 1\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 1);
    listener_close(fx->l);
    for (int i = 0; i < 5; i++) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_true(fx->l->closed);
    conn_drain_all(&fx->set);
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    fx->l = NULL; /* freed with its last connection */
    close(fd);
    fx_free(fx);
}

/* ---- TLS ---- */

struct tls_client {
    int port;
    const char *cert; /* NULL: no client certificate */
    const char *send;
    bool no_reply; /* close right after sending (close_notify), waiting for nothing */
    atomic_int done;
    int open_rc;
    char got[64];
    pthread_t th;
};

static void *tls_client_main(void *arg)
{
    struct tls_client *tc = arg;
    struct tls_ctx *ctx = NULL;
    struct tls_conn *c = NULL;
    struct errbuf eb;
    char ca[128];
    char cert[128];
    char key[128];

    snprintf(ca, sizeof(ca), "%s/ca.pem", pki_dir);
    snprintf(cert, sizeof(cert), "%s/%s.pem", pki_dir, tc->cert ? tc->cert : "");
    snprintf(key, sizeof(key), "%s/%s-key.pem", pki_dir, tc->cert ? tc->cert : "");
    errbuf_clear(&eb);
    if (tls_client_ctx_new(ca, tc->cert ? cert : NULL, tc->cert ? key : NULL, &ctx, &eb) != 0) {
        tc->open_rc = -1;
        goto out;
    }
    tc->open_rc = tls_conn_open(ctx, "127.0.0.1", tc->port, 10000 * loop_test_mult(), &c, &eb);
    if (tc->open_rc == 0 && tc->send) {
        if (tls_conn_write(c, tc->send, strlen(tc->send)) == 0 && !tc->no_reply) {
            ssize_t n = tls_conn_read(c, tc->got, sizeof(tc->got) - 1, 10000 * loop_test_mult());
            if (n > 0) {
                tc->got[n] = 0;
            }
        }
    }
    tls_conn_close(c);
out:
    tls_ctx_free(ctx);
    atomic_store(&tc->done, 1);
    return NULL;
}

static void tls_client_start(struct tls_client *tc, int port, const char *cert, const char *send)
{
    memset(tc, 0, sizeof(*tc));
    tc->port = port;
    tc->cert = cert;
    tc->send = send;
    assert_int_equal(pthread_create(&tc->th, NULL, tls_client_main, tc), 0);
}

static void tls_client_join(struct tls_client *tc)
{
    assert_int_equal(pthread_join(tc->th, NULL), 0);
}

/* A verified agent: its certificate's CN is the connection's agent; acks are encrypted. */
static void test_tls_agent(void **state)
{
    struct fx *fx = fx_new(true, NULL);
    struct tls_client tc;

    (void)state;
    tls_client_start(&tc, fx->port_no, "agent-node-1", "ack from agent\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 1);
    assert_string_equal(fx->fp.last_agent, "agent-node-1");
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, atomic_load(&tc.done));
    tls_client_join(&tc);
    assert_int_equal(tc.open_rc, 0);
    assert_string_equal(tc.got, "ok\n");
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->m.tls_handshake_failures, 0);
    assert_int_equal(fx->fp.evidence, 0);
    fx_free(fx);
}

/* The last records and close_notify in one read while the port is full: the frames
 * wait in the paused connection (not taken as cut off by the end), and once resumed
 * they are all ingested, then the end is handled. */
static void test_tls_close_while_paused(void **state)
{
    struct fx *fx = fx_new(true, NULL);
    struct tls_client tc;

    (void)state;
    fx->fp.full = true;
    memset(&tc, 0, sizeof(tc));
    tc.port = fx->port_no;
    tc.cert = "agent-node-1";
    tc.send = "a\nb\nc\n";
    tc.no_reply = true;
    assert_int_equal(pthread_create(&tc.th, NULL, tls_client_main, &tc), 0);
    RUN_UNTIL(fx, fx->set.conns && fx->set.conns->state == CONN_STREAMING);
    /* The loop does not run while the client sends and closes: one read takes it all. */
    while (!atomic_load(&tc.done)) {
        usleep(1000);
    }
    tls_client_join(&tc);
    assert_int_equal(tc.open_rc, 0);
    RUN_UNTIL(fx, fx->m.pauses >= 1);
    for (int i = 0; i < 10; i++) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_int_equal(fx->fp.ingested, 0);
    assert_non_null(fx->set.conns);
    assert_int_equal(fx->set.conns->state, CONN_STREAMING);
    assert_true(fx->set.conns->paused);
    fx->fp.full = false;
    conn_resume_all(&fx->set);
    RUN_UNTIL(fx, fx->fp.ingested == 3);
    assert_string_equal(fx->fp.last_msg, "c");
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->m.frames_rejected, 0);
    fx_free(fx);
}

/* Refusals: each is counted and recorded as evidence through the port, and the
 * listener serves the next agent. */
static void test_tls_no_client_cert(void **state)
{
    struct fx *fx = fx_new(true, NULL);
    struct tls_client tc;

    (void)state;
    tls_client_start(&tc, fx->port_no, NULL, "sneaky\n");
    RUN_UNTIL(fx, fx->m.tls_handshake_failures == 1 && atomic_load(&tc.done));
    tls_client_join(&tc);
    assert_int_equal(fx->fp.ingested, 0);
    assert_int_equal(fx->fp.evidence, 1);
    assert_string_equal(fx->fp.ev_action, "tls_handshake");
    assert_non_null(strstr(fx->fp.ev_msg, "refused TLS handshake from 127.0.0.1:"));
    assert_non_null(strstr(fx->fp.ev_msg, "certificate"));
    RUN_UNTIL(fx, fx->set.conns == NULL);

    tls_client_start(&tc, fx->port_no, "agent-sidecar-1", "ack hello\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 1);
    assert_int_equal(fx->fp.ingested, 1);
    assert_string_equal(fx->fp.last_agent, "agent-sidecar-1");
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, atomic_load(&tc.done));
    tls_client_join(&tc);
    assert_string_equal(tc.got, "ok\n");
    fx_free(fx);
}

static void test_tls_plaintext_refused(void **state)
{
    struct fx *fx = fx_new(true, NULL);
    char buf[64];

    (void)state;
    int fd = cl_connect(fx->port_no);
    cl_send(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    RUN_UNTIL(fx, fx->m.tls_handshake_failures == 1);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->fp.evidence, 1);
    assert_string_equal(fx->fp.ev_action, "tls_handshake");
    ssize_t n;
    RUN_UNTIL(fx, (n = cl_recv(fd, buf, sizeof(buf))) != 0);
    close(fd);
    fx_free(fx);
}

static void short_handshake(struct fx *fx)
{
    fx->handshake_timeout_ns = 50LL * 1000000;
}

static void test_tls_handshake_timeout(void **state)
{
    struct fx *fx = fx_new(true, short_handshake);

    (void)state;
    int fd = cl_connect(fx->port_no); /* says nothing */
    RUN_UNTIL(fx, fx->m.tls_handshake_timeouts == 1);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->m.tls_handshake_failures, 0);
    assert_int_equal(fx->fp.evidence, 1);
    assert_non_null(strstr(fx->fp.ev_msg, "did not finish within tls.handshake_timeout"));
    close(fd);
    fx_free(fx);
}

static void many_conns(struct fx *fx)
{
    fx->cfg.max_connections = 1000;
}

/* A full backlog is taken a bounded number at a time, so that a flood of connections
 * cannot keep the loop in accept() while everything else waits. */
static void test_accept_turns(void **state)
{
    struct fx *fx = fx_new(false, many_conns);
    int fds[150];

    (void)state;
    for (int i = 0; i < 150; i++) {
        fds[i] = cl_connect(fx->port_no); /* the kernel's backlog completes them */
    }
    uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(fx->m.conns_accepted >= 1);
    assert_true(fx->m.conns_accepted <= 65);
    RUN_UNTIL(fx, fx->m.conns_accepted == 150);
    for (int i = 0; i < 150; i++) {
        close(fds[i]);
    }
    RUN_UNTIL(fx, fx->set.conns == NULL);
    fx_free(fx);
}

/* ---- limits.memory and the timeouts after the handshake ---- */

static void mem_small(struct fx *fx)
{
    fx->cfg.max_frame_bytes = 1 << 20;
    fx->mem_limit = 1 << 20; /* large frames: 768 KiB in all */
}

/* Sends up to n bytes of 'x' without blocking, running the loop while the socket is
 * full, until all are sent or *stop reaches until. Returns the bytes sent. */
static size_t send_some(struct fx *fx, int fd, size_t n, const uint32_t *stop, uint32_t until)
{
    char chunk[16384];
    size_t off = 0;
    int64_t deadline = loop_test_mono_ms() + 10000 * loop_test_mult();

    memset(chunk, 'x', sizeof(chunk));
    while (off < n && !(stop && *stop == until)) {
        size_t k = n - off < sizeof(chunk) ? n - off : sizeof(chunk);
        ssize_t w = send(fd, chunk, k, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
        } else {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            uv_run(&fx->loop, UV_RUN_ONCE);
        }
        if (loop_test_mono_ms() > deadline) {
            fail_msg("sending stuck at %zu of %zu bytes", off, n);
        }
    }
    return off;
}

/* Large unfinished frames use up their part of the budget: the next one waits (reading
 * stops, nothing more is allocated), small frames still get through, and once memory
 * returns the waiting one goes on and nothing is lost. */
static void test_memory_budget(void **state)
{
    struct fx *fx = fx_new(false, mem_small);
    const size_t big = 300 * 1024;

    (void)state;
    int a = cl_connect(fx->port_no);
    send_some(fx, a, big, NULL, 0); /* no newline: one unfinished frame */
    RUN_UNTIL(fx, fx->m.bytes_received >= big);
    int b = cl_connect(fx->port_no);
    size_t sent_b = send_some(fx, b, big, &fx->set.mem.waiting, 1);
    RUN_UNTIL(fx, fx->set.mem.waiting == 1);
    assert_int_equal(fx->m.mem_pauses, 1);
    assert_int_equal(fx->all.memory_waiting, 1);
    assert_true(fx->set.mem.used <= fx->mem_limit);
    assert_true(fx->set.mem.large <= fx->mem_limit / 4 * 3);
    /* Small frames come from the rest of the budget. */
    int c = cl_connect(fx->port_no);
    cl_send(c, "small one\nsmall two\n");
    RUN_UNTIL(fx, fx->fp.ingested == 2);
    char why[200];
    assert_false(metrics_ready(&fx->all, why, sizeof(why)));
    assert_non_null(strstr(why, "limits.memory"));
    /* a's frame ends: its buffer goes back, b reads on and its frame ends too. */
    cl_send(a, "\n");
    RUN_UNTIL(fx, fx->fp.ingested == 3);
    RUN_UNTIL(fx, fx->set.mem.waiting == 0);
    send_some(fx, b, big - sent_b, NULL, 0);
    cl_send(b, "\n");
    RUN_UNTIL(fx, fx->fp.ingested == 4);
    assert_int_equal(strlen(fx->fp.last_msg), sizeof(fx->fp.last_msg) - 1); /* b's, cut */
    assert_true(fx->set.mem.peak <= fx->mem_limit);
    assert_true(metrics_ready(&fx->all, why, sizeof(why)));
    close(a);
    close(b);
    close(c);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    fx_free(fx);
}

static void short_frames(struct fx *fx)
{
    fx->cfg.frame_timeout_ns = 200LL * 1000000;
}

/* Slowloris: a frame begun and never finished (a byte now and then) closes the connection
 * at listen.frame_timeout, however often bytes arrive; the refusal is recorded. A
 * connection between frames is only subject to idle_timeout. */
static void test_frame_timeout(void **state)
{
    struct fx *fx = fx_new(false, short_frames);
    char buf[16];

    (void)state;
    int slow = cl_connect(fx->port_no);
    int quiet = cl_connect(fx->port_no);
    cl_send(quiet, "done\n");
    cl_send(slow, "a");
    RUN_UNTIL(fx, fx->fp.ingested == 1);
    for (int i = 0; fx->m.frame_timeouts == 0; i++) {
        cl_send(slow, "b"); /* the peer never stops sending: the frame still has to end */
        int64_t until = loop_test_mono_ms() + 50;
        while (loop_test_mono_ms() < until && fx->m.frame_timeouts == 0) {
            uv_run(&fx->loop, UV_RUN_ONCE);
        }
        assert_true(i < 200 * loop_test_mult());
    }
    RUN_UNTIL(fx, cl_recv(slow, buf, sizeof(buf)) == -1);
    assert_int_equal(fx->fp.evidence, 1);
    assert_string_equal(fx->fp.ev_action, "rejected_input");
    assert_non_null(strstr(fx->fp.ev_msg, "listen.frame_timeout"));
    assert_int_equal(count_state(fx, CONN_STREAMING), 1); /* quiet is still there */
    close(slow);
    close(quiet);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    fx_free(fx);
}

static void high_water_3(struct fx *fx)
{
    fx->cfg.high_water_bytes = 3; /* the line protocol owes 1 byte per "ack" line */
}

/* listen.high_water_bytes: a peer whose unacknowledged input reaches it is not read
 * until acknowledgements bring it below; then it goes on, nothing lost. */
static void test_high_water(void **state)
{
    struct fx *fx = fx_new(false, high_water_3);
    char buf[64];

    (void)state;
    int fd = cl_connect(fx->port_no);
    cl_send(fd, "ack a\nack b\nack c\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 3);
    struct conn *c = only_conn(fx);
    assert_false(c->reading);
    cl_send(fd, "d\n");
    for (int i = 0; i < 20; i++) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    assert_int_equal(fx->fp.ingested, 3); /* "d" waits in the socket */
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, fx->fp.ingested == 4);
    assert_true(c->reading);
    ssize_t n = 0;
    size_t got = 0;
    while (got < 9) {
        RUN_UNTIL(fx, (n = cl_recv(fd, buf, sizeof(buf))) != 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close(fd);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    fx_free(fx);
}

/* ---- the guard against strangers (guard.h) ---- */

static void guard_small(struct fx *fx)
{
    fx->guard = (struct guard_cfg){ 4, 2, 0, 1, 3600LL * 1000000000 };
}

/* One address holds at most max_handshakes_per_ip handshakes; what it opens beyond is
 * refused at accept, sampled, then summarized; an agent from elsewhere gets through. */
static void test_guard_per_ip(void **state)
{
    struct fx *fx = fx_new(true, guard_small);
    struct tls_client tc;
    int fds[9];

    (void)state;
    for (int i = 0; i < 9; i++) {
        fds[i] = cl_connect_from(fx->port_no, 2); /* 127.0.0.2, never says a word */
    }
    RUN_UNTIL(fx, fx->m.conns_refused_per_ip == 7);
    assert_int_equal(count_state(fx, CONN_HANDSHAKE), 2);
    assert_int_equal(fx->all.handshakes_pending, 2);
    /* The first few are evidence one by one, about strangers; the rest only counted. */
    assert_int_equal(fx->fp.evidence, GUARD_SAMPLES);
    assert_int_equal(fx->fp.strangers, GUARD_SAMPLES);
    assert_string_equal(fx->fp.ev_action, "connection_refused");
    assert_non_null(strstr(fx->fp.ev_msg, "listen.max_handshakes_per_ip"));
    assert_int_equal(fx->all.refusals_summarized, 7 - GUARD_SAMPLES);
    tls_client_start(&tc, fx->port_no, "agent-node-1", "ack from agent\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 1);
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, atomic_load(&tc.done));
    tls_client_join(&tc);
    assert_string_equal(tc.got, "ok\n");
    for (int i = 0; i < 9; i++) {
        close(fds[i]);
    }
    RUN_UNTIL(fx, fx->set.conns == NULL);
    assert_int_equal(fx->all.handshakes_pending, 0);
    /* At the end (or every listen.refusal_interval) the rest becomes one summary. */
    conn_set_close(&fx->set);
    assert_int_equal(fx->fp.summaries, 1);
    assert_int_equal(fx->all.refusal_summaries, 1);
    assert_string_equal(fx->fp.ev_action, "refusal_summary");
    assert_non_null(
        strstr(fx->fp.ev_msg, "7 connections or TLS handshakes refused from 127.0.0.2"));
    assert_non_null(strstr(fx->fp.ev_msg, "7 per_ip"));
    fx_free(fx);
}

static void guard_three(struct fx *fx)
{
    fx->guard = (struct guard_cfg){ 3, 2, 0, 1, 3600LL * 1000000000 };
}

/* Every handshake place is taken by strangers: a newcomer still gets one, the oldest
 * handshake of the address holding the most is cut for it. */
static void test_guard_evicts_for_newcomer(void **state)
{
    struct fx *fx = fx_new(true, guard_three);
    struct tls_client tc;
    char buf[16];

    (void)state;
    int a1 = cl_connect_from(fx->port_no, 2);
    RUN_UNTIL(fx, fx->m.conns_accepted == 1);
    int a2 = cl_connect_from(fx->port_no, 2);
    int b1 = cl_connect_from(fx->port_no, 3);
    RUN_UNTIL(fx, fx->all.handshakes_pending == 3);
    tls_client_start(&tc, fx->port_no, "agent-node-1", "ack through\n");
    RUN_UNTIL(fx, fx->fp.nwaiters == 1);
    assert_int_equal(fx->m.handshakes_evicted, 1);
    fp_complete(&fx->fp, 0);
    RUN_UNTIL(fx, atomic_load(&tc.done));
    tls_client_join(&tc);
    assert_string_equal(tc.got, "ok\n");
    /* The cut one was 127.0.0.2's oldest; the others are still in their handshake. */
    RUN_UNTIL(fx, cl_recv(a1, buf, sizeof(buf)) == -1);
    assert_int_equal(cl_recv(a2, buf, sizeof(buf)), 0);
    assert_int_equal(cl_recv(b1, buf, sizeof(buf)), 0);
    assert_int_equal(fx->fp.strangers, 1);
    assert_non_null(strstr(fx->fp.ev_msg, "listen.max_handshakes"));
    close(a1);
    close(a2);
    close(b1);
    RUN_UNTIL(fx, fx->set.conns == NULL);
    fx_free(fx);
}

static void guard_rate(struct fx *fx)
{
    fx->guard = (struct guard_cfg){ 16, 16, 1, 2, 3600LL * 1000000000 };
}

/* Past the accept rate (1 a second, 2 at once) new connections are refused at accept. */
static void test_guard_rate(void **state)
{
    struct fx *fx = fx_new(true, guard_rate);
    int fds[5];

    (void)state;
    for (int i = 0; i < 5; i++) {
        fds[i] = cl_connect_from(fx->port_no, 4);
    }
    RUN_UNTIL(fx, fx->m.conns_accepted == 5);
    assert_int_equal(fx->m.conns_refused_rate, 3);
    assert_int_equal(count_state(fx, CONN_HANDSHAKE), 2);
    for (int i = 0; i < 5; i++) {
        close(fds[i]);
    }
    RUN_UNTIL(fx, fx->set.conns == NULL);
    fx_free(fx);
}

/* ---- setup ---- */

static int rm_tree(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static int group_setup(void **state)
{
    struct errbuf eb;

    (void)state;
    snprintf(pki_dir, sizeof(pki_dir), "/tmp/vg-test-conn-XXXXXX");
    if (!mkdtemp(pki_dir)) {
        return -1;
    }
    errbuf_clear(&eb);
    if (pki_init(pki_dir, false, &eb) != 0) {
        fprintf(stderr, "pki: %s\n", errbuf_msg(&eb));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return rm_tree(pki_dir) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_and_acks),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_eof_waits_for_ack),
        cmocka_unit_test(test_reset_with_ack_owed),
        cmocka_unit_test(test_commit_failure_closes),
        cmocka_unit_test(test_frame_over_limit),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_drain_all),
        cmocka_unit_test(test_listener_closed_first),
        cmocka_unit_test(test_tls_agent),
        cmocka_unit_test(test_tls_close_while_paused),
        cmocka_unit_test(test_tls_no_client_cert),
        cmocka_unit_test(test_tls_plaintext_refused),
        cmocka_unit_test(test_tls_handshake_timeout),
        cmocka_unit_test(test_accept_turns),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_frame_timeout),
        cmocka_unit_test(test_high_water),
        cmocka_unit_test(test_guard_per_ip),
        cmocka_unit_test(test_guard_evicts_for_newcomer),
        cmocka_unit_test(test_guard_rate),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
