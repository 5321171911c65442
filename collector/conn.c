/* collector/conn.c: listeners and connections (see conn.h). Loop thread only.
 *
 * Bytes flow on_read -> tls_sess_feed -> handshake or tls_sess_read into c->in ->
 * proto->on_data. Output flows conn_send -> tls_sess_write -> tls_sess_take_output ->
 * uv_write. c->in is bounded by listen.max_frame_bytes plus one read's worth, so a
 * peer can never make us buffer more than one frame. */
#include "collector/conn.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/tls.h"
#include "common/xalloc.h"

#define CONN_SCRATCH_BYTES (64 * 1024)

struct write_req {
    uv_write_t req;
    struct conn *c;
    uint8_t *data;
    size_t len;
};

static void conn_set_state(struct conn *c, enum conn_state to)
{
    /* Legal transitions only: forward through the states, never back. */
    assert(to > c->state || (to == c->state && to == CONN_CLOSING));
    c->state = to;
}

static int64_t ns_to_ms(int64_t ns)
{
    return ns / 1000000;
}

void conn_ref(struct conn *c)
{
    c->refs++;
}

static void conn_free(struct conn *c)
{
    struct conn_set *set = c->env->set;

    if (c->lst->proto->on_release) {
        c->lst->proto->on_release(c);
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else if (set->conns == c) {
        set->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    tls_sess_free(c->tls);
    buf_release(&c->in);
    buf_release(&c->scratch);
    /* A connection may outlive its listener's handle (closed at shutdown while its
     * last acks were pending): the last one frees the listener. */
    if (--c->lst->conns == 0 && c->lst->closed) {
        free(c->lst);
    }
    free(c);
}

void conn_unref(struct conn *c)
{
    assert(c->refs > 0);
    if (--c->refs == 0 && c->handles_open == 0) {
        conn_free(c);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles_open == 0 && c->refs == 0) {
        conn_free(c);
    }
}

void conn_close(struct conn *c, int rc, const char *why)
{
    struct lst_metrics *lm = c->env->m;

    if (c->state == CONN_CLOSING) {
        return;
    }
    if (rc < 0) {
        log_warn("conn %" PRIu64 " %s peer %s agent '%s': closing: %s", c->id,
                 listener_kind_name(c->env->kind), c->peer, c->agent, why ? why : vg_strerror(rc));
    } else {
        log_debug("conn %" PRIu64 " %s peer %s agent '%s': closed%s%s", c->id,
                  listener_kind_name(c->env->kind), c->peer, c->agent, why ? ": " : "",
                  why ? why : "");
    }
    if (c->unacked > 0) {
        lm->conns_dropped_unacked++;
    }
    c->state = CONN_CLOSING;
    lm->conns_open--;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* A draining connection closes once nothing is owed to the peer. */
static int conn_flush(struct conn *c, struct buf *plain);

static void conn_maybe_finish(struct conn *c)
{
    if (c->state != CONN_DRAINING || c->unacked != 0 || c->write_bytes != 0) {
        return;
    }
    if (c->close_notify_owed) {
        /* The peer said close_notify: answer it once nothing else is owed. */
        c->close_notify_owed = false;
        if (tls_sess_shutdown(c->tls) == 0 && conn_flush(c, NULL) == 0 && c->write_bytes > 0) {
            return; /* on_write finishes */
        }
    }
    conn_close(c, 0, "drained");
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = w->c;

    c->write_bytes -= w->len;
    free(w->data);
    free(w);
    if (status < 0 && c->state != CONN_CLOSING) {
        conn_close(c, status, "write failed");
    }
    conn_maybe_finish(c);
    conn_unref(c);
}

/* Moves pending TLS output (or a plaintext buffer) to a uv_write. */
static int conn_flush(struct conn *c, struct buf *plain)
{
    struct buf out;

    if (c->state == CONN_CLOSING) {
        return -EPIPE;
    }
    if (plain) {
        out = *plain;
        buf_init(plain, plain->max);
    } else {
        buf_init(&out, 16u << 20);
        ssize_t n = tls_sess_take_output(c->tls, &out);
        if (n < 0) {
            buf_release(&out);
            return (int)n;
        }
    }
    if (out.len == 0) {
        buf_release(&out);
        return 0;
    }
    struct write_req *w = xmalloc(sizeof(*w));
    w->c = c;
    w->data = buf_detach(&out, &w->len);
    uv_buf_t ub = uv_buf_init((char *)w->data, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write);
    if (rc < 0) {
        free(w->data);
        free(w);
        return rc;
    }
    c->write_bytes += w->len;
    conn_ref(c);
    return 0;
}

int conn_send(struct conn *c, const void *p, size_t n)
{
    if (c->state == CONN_CLOSING) {
        return -EPIPE;
    }
    if (!c->tls) {
        struct buf b;
        buf_init(&b, n + 1);
        int rc = buf_append(&b, p, n);
        if (rc == 0) {
            rc = conn_flush(c, &b);
        }
        buf_release(&b);
        return rc;
    }
    int rc = tls_sess_write(c->tls, p, n);
    if (rc < 0) {
        return rc;
    }
    return conn_flush(c, NULL);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;

    if (c->state == CONN_HANDSHAKE) {
        c->env->m->tls_handshake_timeouts++;
        ingest_self_event(c->env->port, VG_SEV_WARNING, "tls_handshake", "failure", c->peer_ip,
                          NULL, "TLS handshake from %s on %s did not finish in time", c->peer,
                          listener_kind_name(c->env->kind));
        conn_close(c, -ETIMEDOUT, "TLS handshake timed out");
    } else if (c->state == CONN_STREAMING) {
        if (c->unacked > 0 || c->write_bytes > 0) {
            uv_timer_again(t); /* waiting on us, not idle */
            return;
        }
        conn_close(c, 0, "idle timeout");
    }
}

static void arm_idle(struct conn *c)
{
    int64_t ms = ns_to_ms(c->env->cfg->idle_timeout_ns);
    uv_timer_start(&c->timer, on_timer, (uint64_t)(ms > 0 ? ms : 1), (uint64_t)(ms > 0 ? ms : 1));
}

static void handshake_refused(struct conn *c)
{
    const char *why = tls_sess_error(c->tls);

    c->env->m->tls_handshake_failures++;
    ingest_self_event(c->env->port, VG_SEV_WARNING, "tls_handshake", "failure", c->peer_ip, NULL,
                      "refused TLS handshake from %s on %s: %s", c->peer,
                      listener_kind_name(c->env->kind), why);
    conn_flush(c, NULL); /* the alert tells the peer why */
    char msg[320];
    snprintf(msg, sizeof(msg), "TLS handshake refused: %s", why);
    conn_close(c, VG_ETLS, msg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;
    (void)suggested;
    *b = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

/* Decrypts what TLS holds into c->in and runs the protocol. */
static void conn_process(struct conn *c)
{
    bool peer_closed = false;

    if (c->tls) {
        for (;;) {
            if (buf_reserve(&c->in, 16 * 1024) < 0) {
                /* A frame larger than max_frame_bytes is still incomplete. */
                if (c->lst->proto->on_data(c) < 0 || c->state == CONN_CLOSING) {
                    return;
                }
                if (c->paused) {
                    return;
                }
                if (buf_reserve(&c->in, 16 * 1024) < 0) {
                    c->env->m->frames_rejected++;
                    conn_close(c, VG_ELIMIT, "frame larger than listen.max_frame_bytes");
                    return;
                }
            }
            ssize_t n = tls_sess_read(c->tls, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
            if (n == 0) {
                break;
            }
            if (n == -EPIPE) {
                /* close_notify: process what we have, answer it, then drain (acks still
                 * owed go out first; clients such as Python's ssl.unwrap() wait for it). */
                peer_closed = true;
                break;
            }
            if (n < 0) {
                conn_close(c, (int)n, tls_sess_error(c->tls));
                return;
            }
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = 0;
        }
    }
    if (c->in.len > 0 && !c->paused) {
        if (c->lst->proto->on_data(c) < 0) {
            return; /* the protocol closed the connection */
        }
    }
    if (c->state != CONN_CLOSING && c->tls) {
        conn_flush(c, NULL);
        if (peer_closed) {
            c->close_notify_owed = true; /* sent after the last ack (conn_maybe_finish) */
            conn_finish(c);
        }
    }
}

void conn_finish(struct conn *c)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (c->state != CONN_DRAINING) {
        conn_set_state(c, CONN_DRAINING);
    }
    conn_maybe_finish(c);
}

static void conn_eof(struct conn *c)
{
    conn_finish(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    struct lst_metrics *lm = c->env->m;

    if (c->state == CONN_CLOSING || nread == 0) {
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            if (c->state == CONN_HANDSHAKE) {
                conn_close(c, 0, "peer closed during the TLS handshake");
                return;
            }
            conn_eof(c);
        } else {
            conn_close(c, (int)nread, "read failed");
        }
        return;
    }
    lm->bytes_received += (uint64_t)nread;
    if (!c->tls) {
        if (buf_append(&c->in, b->base, (size_t)nread) < 0) {
            lm->frames_rejected++;
            conn_close(c, VG_ELIMIT, "frame larger than listen.max_frame_bytes");
            return;
        }
        conn_process(c);
        return;
    }
    if (tls_sess_feed(c->tls, (const uint8_t *)b->base, (size_t)nread) < 0) {
        conn_close(c, VG_ETLS, "TLS input rejected");
        return;
    }
    if (c->state == CONN_HANDSHAKE) {
        int rc = tls_sess_handshake(c->tls);
        if (rc < 0) {
            handshake_refused(c);
            return;
        }
        if (rc == 0) {
            conn_flush(c, NULL);
            return;
        }
        snprintf(c->agent, sizeof(c->agent), "%s", tls_sess_peer(c->tls));
        conn_set_state(c, CONN_STREAMING);
        arm_idle(c);
        if (c->lst->proto->on_start) {
            c->lst->proto->on_start(c);
            if (c->state == CONN_CLOSING) {
                return;
            }
        }
        log_debug("conn %" PRIu64 " %s peer %s: TLS %s, agent '%s'", c->id,
                  listener_kind_name(c->env->kind), c->peer, tls_sess_version(c->tls), c->agent);
    } else {
        uv_timer_again(&c->timer);
    }
    conn_process(c);
}

void conn_pause(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        c->env->m->pauses++;
    }
    c->paused = true;
}

void conn_resume(struct conn *c)
{
    if (c->paused && c->state == CONN_STREAMING && !c->env->set->stopping) {
        c->paused = false;
        conn_ref(c);
        conn_process(c); /* frames already buffered first */
        if (!c->paused && c->state == CONN_STREAMING && !c->reading) {
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
            c->reading = true;
        }
        conn_unref(c);
    }
}

void conn_resume_all(struct conn_set *s)
{
    struct conn *c = s->conns;

    while (c) {
        struct conn *next = c->next;
        conn_resume(c);
        c = next;
    }
}

bool conn_stopping(const struct conn *c)
{
    return c->env->set->stopping;
}

void conn_set_init(struct conn_set *s, uv_loop_t *loop)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
}

void conn_waiter_done(struct conn *c)
{
    c->unacked--;
    conn_maybe_finish(c);
}

void conn_drain_all(struct conn_set *s)
{
    struct conn *c = s->conns;

    s->stopping = true;
    while (c) {
        struct conn *next = c->next;
        if (c->state == CONN_HANDSHAKE) {
            conn_close(c, 0, "shutting down");
        } else if (c->state == CONN_STREAMING) {
            conn_finish(c);
        }
        c = next;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    const struct listener_env *env = &l->env;
    struct conn_set *set = env->set;
    struct lst_metrics *lm = env->m;

    if (status < 0) {
        log_warn("%s listener: accept failed: %s", listener_kind_name(env->kind),
                 vg_strerror(status));
        return;
    }
    struct conn *c = xcalloc(1, sizeof(*c));
    c->lst = l;
    c->env = env;
    l->conns++;
    c->id = ++set->next_id;
    uv_tcp_init(set->loop, &c->tcp);
    uv_timer_init(set->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->state = CONN_HANDSHAKE;
    buf_init(&c->in, (size_t)env->cfg->max_frame_bytes + sizeof(c->rbuf) + 16 * 1024);
    buf_init(&c->scratch, CONN_SCRATCH_BYTES);
    snprintf(c->peer, sizeof(c->peer), "?");
    c->next = set->conns;
    if (set->conns) {
        set->conns->prev = c;
    }
    set->conns = c;
    lm->conns_open++;

    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c, -ECONNABORTED, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        int port = 0;
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof(c->peer_ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            snprintf(c->peer, sizeof(c->peer), "[%s]:%d", c->peer_ip, port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof(c->peer_ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            snprintf(c->peer, sizeof(c->peer), "%s:%d", c->peer_ip, port);
        }
    }
    lm->conns_accepted++;
    if (set->stopping) {
        conn_close(c, 0, "shutting down");
        return;
    }
    if (lm->conns_open > env->cfg->max_connections) {
        lm->conns_refused_limit++;
        conn_close(c, VG_ELIMIT, "over listen.max_connections");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (env->tls) {
        if (tls_sess_new(env->tls, true, NULL, &c->tls) < 0) {
            conn_close(c, VG_ETLS, "cannot create a TLS session");
            return;
        }
        int64_t ms = ns_to_ms(env->handshake_timeout_ns);
        uv_timer_start(&c->timer, on_timer, (uint64_t)(ms > 0 ? ms : 1), 0);
    } else {
        snprintf(c->agent, sizeof(c->agent), "insecure:%s", c->peer_ip);
        conn_set_state(c, CONN_STREAMING);
        arm_idle(c);
        if (c->lst->proto->on_start) {
            c->lst->proto->on_start(c);
            if (c->state == CONN_CLOSING) {
                return;
            }
        }
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = true;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;

    l->closed = true;
    if (l->conns == 0) {
        free(l);
    }
}

int listener_start(const struct listener_env *env, const struct conn_proto *proto, const char *host,
                   int port, struct listener **out, struct errbuf *eb)
{
    struct listener *l = xcalloc(1, sizeof(*l));
    enum listener_kind kind = env->kind;
    struct sockaddr_storage ss;
    int rc;

    l->env = *env;
    l->proto = proto;
    if (strchr(host, ':')) {
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    } else {
        rc = uv_ip4_addr(strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, port,
                         (struct sockaddr_in *)&ss);
    }
    if (rc < 0) {
        errbuf_set(eb, "listen.%s: bad address '%s': %s", listener_kind_name(kind), host,
                   vg_strerror(rc));
        free(l);
        return VG_ECONFIG;
    }
    uv_tcp_init(env->set->loop, &l->tcp);
    l->tcp.data = l;
    if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection)) < 0) {
        errbuf_set(eb, "listen.%s: cannot listen on %s:%d: %s", listener_kind_name(kind), host,
                   port, vg_strerror(rc));
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        return rc;
    }
    int sl = sizeof(ss);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &sl);
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(l->addr, sizeof(l->addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, l->port);
    *out = l;
    return 0;
}

void listener_close(struct listener *l)
{
    if (l) {
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    }
}
