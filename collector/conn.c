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
#include "common/mp.h"
#include "common/time.h"
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
    conn_buf_settle(c, &c->in, &c->in_charged);
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

static void on_timer(uv_timer_t *t);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void on_mem_resume(uv_idle_t *h);
static void mem_wait_end(struct conn *c);
static void conn_eof(struct conn *c);

/* The guard no longer counts c as in its handshake. */
static void guard_leave(struct conn *c)
{
    struct conn_set *set = c->env->set;

    if (c->in_guard) {
        c->in_guard = false;
        if (!set->guarded) {
            return; /* conn_set_close freed the guard */
        }
        guard_done(&set->guard, c->guard_slot);
        if (set->m) {
            set->m->handshakes_pending = set->guard.pending;
        }
    }
}

void conn_close(struct conn *c, int rc, const char *why)
{
    struct lst_metrics *lm = c->env->m;

    if (c->state == CONN_CLOSING) {
        return;
    }
    guard_leave(c);
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
    mem_wait_end(c);
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

/* The raw details of a refusal: {reason, listener, peer[, certificate: {subject, issuer,
 * serial, not_after}]}. */
static void refusal_raw(struct conn *c, enum guard_reason r, const struct tls_cert_info *ci,
                        struct buf *raw)
{
    int rc = mp_put_map(raw, ci ? 4 : 3);

    rc = rc ? rc : mp_put_cstr(raw, "reason");
    rc = rc ? rc : mp_put_cstr(raw, guard_reason_name(r));
    rc = rc ? rc : mp_put_cstr(raw, "listener");
    rc = rc ? rc : mp_put_cstr(raw, listener_kind_name(c->env->kind));
    rc = rc ? rc : mp_put_cstr(raw, "peer");
    rc = rc ? rc : mp_put_cstr(raw, c->peer);
    if (ci) {
        rc = rc ? rc : mp_put_cstr(raw, "certificate");
        rc = rc ? rc : mp_put_map(raw, 4);
        rc = rc ? rc : mp_put_cstr(raw, "subject");
        rc = rc ? rc : mp_put_cstr(raw, ci->subject);
        rc = rc ? rc : mp_put_cstr(raw, "issuer");
        rc = rc ? rc : mp_put_cstr(raw, ci->issuer);
        rc = rc ? rc : mp_put_cstr(raw, "serial");
        rc = rc ? rc : mp_put_cstr(raw, ci->serial);
        rc = rc ? rc : mp_put_cstr(raw, "not_after");
        rc = rc ? rc : mp_put_cstr(raw, ci->not_after);
    }
    if (rc < 0) {
        buf_reset(raw);
    }
}

/* A stranger refused (at accept or in its handshake): counted by the caller; recorded as
 * a source=vigil event and logged while the guard samples the address (guard.h), else
 * only counted for its summary. Then closed. Every path that turns a stranger away goes
 * through here, so none of them can be used to fill the disk or the log. The record
 * names the certificate the peer presented, when it got that far. */
static void conn_refuse(struct conn *c, enum guard_reason r, const char *detail)
{
    struct conn_set *set = c->env->set;
    const char *lst = listener_kind_name(c->env->kind);
    const struct tls_cert_info *ci = c->tls ? tls_sess_presented(c->tls) : NULL;
    bool at_accept =
        r == GUARD_RATE || r == GUARD_PER_IP || r == GUARD_FULL || r == GUARD_MAX_CONNS;
    char what[1024];
    bool now = true;

    if (ci) {
        snprintf(what, sizeof(what),
                 "%s; certificate subject '%s', issuer '%s', serial %s, not after %s", detail,
                 ci->subject, ci->issuer, ci->serial, ci->not_after);
        detail = what;
    }
    if (set->guarded) {
        now =
            guard_refused(&set->guard, &c->gaddr, c->peer_ip, r, c->env->kind, detail, vg_now_ns());
    }
    if (!now) {
        if (set->m) {
            set->m->refusals_summarized++;
        }
        log_debug("conn %" PRIu64 " %s peer %s: refused (%s): %s", c->id, lst, c->peer,
                  guard_reason_name(r), detail);
    } else {
        char msg[1200];
        struct buf raw;
        snprintf(msg, sizeof(msg), "refused %s from %s on %s: %s",
                 at_accept ? "connection" : "TLS handshake", c->peer, lst, detail);
        log_warn("conn %" PRIu64 " %s", c->id, msg);
        buf_init(&raw, 2048);
        refusal_raw(c, r, ci, &raw);
        struct ingest_evidence ev = {
            VG_SEV_WARNING, at_accept ? "connection_refused" : "tls_handshake",
            "failure",      c->peer_ip,
            NULL,           msg,
            true,           buf_span(&raw),
        };
        c->env->port->ops->evidence(c->env->port->ctx, &ev);
        buf_release(&raw);
    }
    conn_close(c, 0, detail);
}

/* ---- the memory budget (limits.memory) ---------------------------------------- */

/* What a buffer of this capacity counts towards the large frames' part. */
static size_t large_part(size_t cap)
{
    return cap > CONN_MEM_BASE ? cap : 0;
}

static void mem_gauges(struct conn_set *s)
{
    if (s->m) {
        s->m->memory_limit = s->mem.limit;
        s->m->memory_used = s->mem.used;
        s->m->memory_peak = s->mem.peak;
        s->m->memory_waiting = s->mem.waiting;
    }
}

/* Charges a buffer's capacity going from old_cap to new_cap (larger). Buffers larger
 * than CONN_MEM_BASE may use three quarters of the budget together at most: connections
 * growing large frames cannot take the memory small frames need. */
static bool mem_take(struct conn_set *s, size_t old_cap, size_t new_cap, bool force)
{
    struct conn_mem *m = &s->mem;
    uint64_t grow = new_cap - old_cap;
    uint64_t large = large_part(new_cap) - large_part(old_cap);

    if (!force && m->limit > 0 &&
        (m->used + grow > m->limit || m->large + large > m->limit / 4 * 3)) {
        return false;
    }
    m->used += grow;
    m->large += large;
    if (m->used > m->peak) {
        m->peak = m->used;
    }
    mem_gauges(s);
    return true;
}

static void mem_give(struct conn_set *s, size_t old_cap, size_t new_cap)
{
    struct conn_mem *m = &s->mem;

    m->used -= old_cap - new_cap;
    m->large -= large_part(old_cap) - large_part(new_cap);
    mem_gauges(s);
    if (m->waiting > 0 && !m->resume_on && m->ready) {
        m->resume_on = true;
        uv_idle_start(&m->resume, on_mem_resume);
    }
}

void conn_buf_settle(struct conn *c, struct buf *b, size_t *charged)
{
    struct conn_set *s = c->env->set;

    if (c->env->kind == LST_ADMIN) {
        return; /* never charged (conn_buf_reserve) */
    }
    if (b->cap > *charged) {
        mem_take(s, *charged, b->cap, true);
    } else if (b->cap < *charged) {
        mem_give(s, *charged, b->cap);
    }
    *charged = b->cap;
}

int conn_buf_reserve(struct conn *c, struct buf *b, size_t *charged, size_t n)
{
    size_t cap = buf_reserve_cap(b, n);

    if (cap == 0) {
        return VG_ELIMIT;
    }
    if (c->env->kind == LST_ADMIN) {
        /* Loopback, one request of 8 KiB at most: not worth a place in the budget, and
         * /metrics then reports the ingest listeners' use alone. */
        return buf_reserve(b, n);
    }
    if (cap > *charged && !mem_take(c->env->set, *charged, cap, false)) {
        return -EAGAIN;
    }
    if (cap > *charged) {
        *charged = cap;
    }
    if (buf_reserve(b, n) < 0) {
        return VG_ELIMIT; /* cannot happen: buf_reserve_cap said it fits */
    }
    conn_buf_settle(c, b, charged);
    return 0;
}

/* Whether c should be reading now; starts or stops it accordingly. */
static void conn_reading(struct conn *c)
{
    /* Not while the port is full, memory is used up, or the peer's unacknowledged input
     * is at listen.high_water_bytes. */
    bool want = (c->state == CONN_HANDSHAKE || c->state == CONN_STREAMING) && !c->paused &&
                !c->mem_wait && c->unacked_bytes < c->env->cfg->high_water_bytes;

    if (want && !c->reading) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

void conn_wait_memory(struct conn *c)
{
    struct conn_set *s = c->env->set;

    if (!c->mem_wait) {
        c->mem_wait = true;
        s->mem.waiting++;
        s->mem.pauses++;
        c->env->m->mem_pauses++;
        mem_gauges(s);
        log_debug("conn %" PRIu64 " %s peer %s: paused: limits.memory is used up (%" PRIu64
                  " bytes)",
                  c->id, listener_kind_name(c->env->kind), c->peer, s->mem.used);
    }
    conn_reading(c);
}

static void mem_wait_end(struct conn *c)
{
    if (c->mem_wait) {
        c->mem_wait = false;
        c->env->set->mem.waiting--;
        mem_gauges(c->env->set);
    }
}

/* ---- timers ------------------------------------------------------------------------ */

static int64_t ms_at_least_1(int64_t ns)
{
    int64_t ms = ns_to_ms(ns);
    return ms > 0 ? ms : 1;
}

/* What the protocol says about the bytes it holds: nothing, a head, or a frame begun. */
static enum conn_phase conn_phase_of(struct conn *c)
{
    if (c->lst->proto->phase) {
        return c->lst->proto->phase(c);
    }
    return c->in.len > 0 ? CONN_PHASE_FRAME : CONN_PHASE_IDLE;
}

static int64_t frame_deadline(const struct conn *c)
{
    const struct listen_cfg *cfg = c->env->cfg;
    return c->frame_since +
           (c->phase == CONN_PHASE_HEAD ? cfg->header_timeout_ns : cfg->frame_timeout_ns);
}

/* Streaming: the timer goes off at the next deadline: the frame begun (while the
 * connection is not paused for the store's sake) or, failing that, idleness. */
static void conn_arm(struct conn *c)
{
    int64_t now = vg_mono_ns();
    int64_t due = c->last_read + c->env->cfg->idle_timeout_ns;

    if (c->phase != CONN_PHASE_IDLE && !c->paused) {
        int64_t f = frame_deadline(c);
        due = f < due ? f : due;
    }
    uv_timer_start(&c->timer, on_timer, (uint64_t)ms_at_least_1(due - now), 0);
}

/* After the protocol ran: a frame begun starts its clock; none stops it. */
static void conn_track_phase(struct conn *c)
{
    enum conn_phase p = conn_phase_of(c);

    if (p == CONN_PHASE_IDLE) {
        c->frame_since = 0;
    } else if (c->phase == CONN_PHASE_IDLE) {
        c->frame_since = vg_mono_ns();
    }
    c->phase = p;
}

/* A frame (or an HTTP request head) not completed in time: the peer is sending slowly
 * on purpose or cannot keep up; either way it may not hold the connection and its
 * buffer any longer. Recorded, as the peer is a verified agent. */
static void frame_timed_out(struct conn *c)
{
    bool head = c->phase == CONN_PHASE_HEAD;
    const char *key = head ? "listen.header_timeout" : "listen.frame_timeout";
    char msg[300];

    if (head) {
        c->env->m->header_timeouts++;
    } else {
        c->env->m->frame_timeouts++;
    }
    snprintf(msg, sizeof(msg), "%s not complete within %s (%.1f s; %zu bytes buffered)",
             head ? "request head" : "frame", key, (double)(vg_mono_ns() - c->frame_since) / 1e9,
             c->in.len);
    ingest_self_event(c->env->port, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                      c->agent, "%s from %s agent '%s': %s", listener_kind_name(c->env->kind),
                      c->peer, c->agent, msg);
    conn_close(c, -ETIMEDOUT, msg);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    int64_t now = vg_mono_ns();

    if (c->state == CONN_HANDSHAKE) {
        c->env->m->tls_handshake_timeouts++;
        conn_refuse(c, GUARD_TIMEOUT, "TLS handshake did not finish within tls.handshake_timeout");
        return;
    }
    if (c->state != CONN_STREAMING) {
        return;
    }
    if (c->phase != CONN_PHASE_IDLE && !c->paused && now >= frame_deadline(c)) {
        frame_timed_out(c);
        return;
    }
    if (now >= c->last_read + c->env->cfg->idle_timeout_ns) {
        if (c->unacked > 0 || c->write_bytes > 0) {
            c->last_read = now; /* waiting on us, not idle */
        } else {
            conn_close(c, 0, "idle timeout");
            return;
        }
    }
    conn_arm(c);
}

static void conn_start_streaming(struct conn *c)
{
    conn_set_state(c, CONN_STREAMING);
    c->last_read = vg_mono_ns();
    conn_arm(c);
}

static void handshake_refused(struct conn *c)
{
    bool policy = tls_sess_refused_by_policy(c->tls);

    c->env->m->tls_handshake_failures++;
    if (policy) {
        c->env->m->tls_unauthorized++;
    }
    conn_flush(c, NULL); /* the alert tells the peer why */
    conn_refuse(c, policy ? GUARD_UNAUTHORIZED : GUARD_TLS, tls_sess_error(c->tls));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;
    (void)suggested;
    *b = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

/* Room in c->in for more decrypted bytes: 0; -EAGAIN when the memory budget has none
 * (the caller waits for memory); -ECANCELED when the connection closed or paused while
 * the protocol took complete frames to make room. */
static int in_room(struct conn *c)
{
    int rc = conn_buf_reserve(c, &c->in, &c->in_charged, CONN_READ_ROOM);

    if (rc == 0) {
        return 0;
    }
    /* Complete frames may be buffered: taking them frees room without growing. */
    if (c->lst->proto->on_data(c) < 0 || c->state == CONN_CLOSING || c->paused) {
        return -ECANCELED;
    }
    rc = conn_buf_reserve(c, &c->in, &c->in_charged, CONN_READ_ROOM);
    if (rc == VG_ELIMIT) {
        /* A frame larger than max_frame_bytes is still incomplete. */
        c->env->m->frames_rejected++;
        conn_close(c, VG_ELIMIT, "frame larger than listen.max_frame_bytes");
        return -ECANCELED;
    }
    return rc;
}

/* After the protocol ran: buffers that hold nothing go back to the budget, so an idle
 * connection costs no input memory. */
static void conn_shed(struct conn *c)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    if (c->in.len == 0 && c->in.cap > 0) {
        size_t max = c->in.max;
        buf_release(&c->in);
        buf_init(&c->in, max);
        conn_buf_settle(c, &c->in, &c->in_charged);
    }
    if (c->scratch.cap > 0) {
        size_t max = c->scratch.max;
        buf_release(&c->scratch);
        buf_init(&c->scratch, max);
    }
}

/* Decrypts what TLS holds into c->in (as far as the memory budget allows) and runs the
 * protocol; then tracks the frame's phase and re-arms the timer. */
static void conn_process(struct conn *c)
{
    bool peer_closed = false;

    if (c->tls) {
        for (;;) {
            int rc = in_room(c);
            if (rc == -ECANCELED) {
                return;
            }
            if (rc == -EAGAIN) {
                conn_wait_memory(c); /* the rest stays in TLS's buffer meanwhile */
                break;
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
        if (c->lst->proto->on_data(c) < 0 || c->state == CONN_CLOSING) {
            return; /* the protocol closed the connection */
        }
    }
    if (c->tls) {
        conn_flush(c, NULL);
        if (peer_closed) {
            c->close_notify_owed = true; /* sent after the last ack (conn_maybe_finish) */
            conn_eof(c);
        }
    }
    if (c->state == CONN_STREAMING) {
        conn_track_phase(c);
        conn_shed(c);
        conn_arm(c);
    }
}

void conn_finish(struct conn *c)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    if (c->state != CONN_DRAINING) {
        conn_set_state(c, CONN_DRAINING);
    }
    conn_reading(c);
    conn_maybe_finish(c);
}

/* The peer ended its stream: what is left in c->in is a frame it cut off. Unless the
 * protocol paused (the port full) with whole frames still buffered, as when one read
 * brought the last records and TLS's close_notify together: then nothing is done now.
 * Once resumed, the frames are taken and the end is seen again (TLS keeps reporting
 * close_notify, a socket its EOF), so no frame the peer sent whole is called cut off. */
static void conn_eof(struct conn *c)
{
    if (c->state == CONN_STREAMING && c->paused && c->in.len > 0) {
        return;
    }
    if (c->state == CONN_STREAMING && c->in.len > 0 && c->lst->proto->on_eof) {
        c->lst->proto->on_eof(c);
    }
    conn_finish(c);
}

/* Plaintext: the bytes read go to c->in, if the memory budget allows; if not they wait
 * in c->rbuf (reading stops until memory returns). */
static bool take_plain(struct conn *c, size_t n)
{
    int rc = conn_buf_reserve(c, &c->in, &c->in_charged, n);

    if (rc == VG_ELIMIT) {
        c->env->m->frames_rejected++;
        conn_close(c, VG_ELIMIT, "frame larger than listen.max_frame_bytes");
        return false;
    }
    if (rc == -EAGAIN) {
        c->rbuf_pending = n;
        conn_wait_memory(c);
        return false;
    }
    memcpy(c->in.data + c->in.len, c->rbuf, n);
    c->in.len += n;
    c->in.data[c->in.len] = 0;
    c->rbuf_pending = 0;
    return true;
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
    c->last_read = vg_mono_ns();
    if (!c->tls) {
        if (take_plain(c, (size_t)nread)) {
            conn_process(c);
        }
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
        guard_leave(c);
        conn_start_streaming(c);
        if (c->lst->proto->on_start) {
            c->lst->proto->on_start(c);
            if (c->state == CONN_CLOSING) {
                return;
            }
        }
        log_debug("conn %" PRIu64 " %s peer %s: TLS %s, agent '%s'", c->id,
                  listener_kind_name(c->env->kind), c->peer, tls_sess_version(c->tls), c->agent);
    }
    conn_process(c);
}

void conn_pause(struct conn *c)
{
    if (c->reading) {
        c->env->m->pauses++;
    }
    if (!c->paused) {
        c->paused = true;
        c->paused_at = vg_mono_ns();
    }
    conn_reading(c);
}

/* Takes c up again after a pause: what it holds first, then reading. */
static void conn_continue(struct conn *c)
{
    conn_ref(c);
    if (c->rbuf_pending > 0 && !c->tls && !take_plain(c, c->rbuf_pending)) {
        conn_unref(c);
        return; /* still no memory */
    }
    conn_process(c);
    if (c->state == CONN_STREAMING) {
        conn_reading(c);
    }
    conn_unref(c);
}

void conn_resume(struct conn *c)
{
    if (c->paused && c->state == CONN_STREAMING && !c->env->set->stopping) {
        c->paused = false;
        if (c->frame_since) {
            c->frame_since += vg_mono_ns() - c->paused_at; /* the store's time, not its */
        }
        conn_continue(c);
    }
}

/* Memory returned: every connection waiting for it tries again, oldest first in the
 * list's order; those that still find none wait on. */
static void on_mem_resume(uv_idle_t *h)
{
    struct conn_set *s = h->data;
    struct conn *c = s->conns;

    uv_idle_stop(h);
    s->mem.resume_on = false;
    while (c) {
        struct conn *next = c->next;
        if (c->mem_wait && c->state == CONN_STREAMING) {
            mem_wait_end(c);
            conn_continue(c);
        }
        c = next;
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

void conn_waiter_add(struct conn *c, size_t bytes)
{
    c->unacked++;
    c->unacked_bytes += bytes;
    if (c->reading && c->unacked_bytes >= c->env->cfg->high_water_bytes) {
        c->env->m->pauses++;
        conn_reading(c); /* until acks bring it below listen.high_water_bytes */
    }
}

void conn_waiter_done(struct conn *c, size_t bytes)
{
    bool held = c->unacked_bytes >= c->env->cfg->high_water_bytes;

    c->unacked--;
    c->unacked_bytes -= bytes;
    if (held && c->unacked_bytes < c->env->cfg->high_water_bytes && c->state == CONN_STREAMING) {
        conn_continue(c);
    }
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

/* The handshake to cut when listen.max_handshakes is reached: the oldest of the address
 * with the most handshakes in progress, so that a newcomer from an address with few (an
 * agent) is never the one that loses to a flood from a few addresses. NULL if none. */
static struct conn *guard_victim(struct conn_set *set)
{
    struct conn *best = NULL;
    uint32_t most = 0;

    for (struct conn *c = set->conns; c; c = c->next) {
        if (!c->in_guard || c->state != CONN_HANDSHAKE) {
            continue;
        }
        uint32_t n = guard_pending_of(&set->guard, c->guard_slot);
        if (!best || n > most || (n == most && c->id < best->id)) {
            best = c;
            most = n;
        }
    }
    return best;
}

/* Admits a new stranger through the guard, or refuses it (closing it). */
static bool guard_admit_conn(struct conn *c)
{
    struct conn_set *set = c->env->set;
    struct lst_metrics *lm = c->env->m;
    enum guard_reason r;

    while ((r = guard_admit(&set->guard, &c->gaddr, c->peer_ip, vg_mono_ns(), &c->guard_slot)) ==
           GUARD_FULL) {
        struct conn *v = guard_victim(set);
        if (!v) {
            break; /* cannot happen: a handshake in progress is counted by the guard */
        }
        v->env->m->handshakes_evicted++;
        conn_refuse(v, GUARD_EVICTED,
                    "TLS handshake cut at listen.max_handshakes for a newer connection");
    }
    switch (r) {
    case GUARD_OK:
        c->in_guard = true;
        if (set->m) {
            set->m->handshakes_pending = set->guard.pending;
            set->m->guard_addrs = guard_addrs(&set->guard);
        }
        return true;
    case GUARD_RATE:
        lm->conns_refused_rate++;
        conn_refuse(c, r, "over listen.accept_rate_per_ip");
        return false;
    case GUARD_PER_IP:
        lm->conns_refused_per_ip++;
        conn_refuse(c, r, "over listen.max_handshakes_per_ip");
        return false;
    default:
        conn_refuse(c, r, "over listen.max_handshakes");
        return false;
    }
}

static void on_summary(void *arg, const struct guard_summary *g)
{
    struct conn_set *set = arg;
    char t0[40];
    char t1[40];
    char counts[256] = "";
    size_t cn = 0;
    uint32_t nreasons = 0;
    uint32_t nlisteners = 0;
    struct buf raw;

    for (int r = 0; r < GUARD_REASONS; r++) {
        if (g->by_reason[r] > 0 && cn < sizeof(counts)) {
            cn += (size_t)snprintf(counts + cn, sizeof(counts) - cn, "%s%" PRIu64 " %s",
                                   cn ? ", " : "", g->by_reason[r],
                                   guard_reason_name((enum guard_reason)r));
            nreasons++;
        }
    }
    for (int k = 0; k < LST_COUNT; k++) {
        nlisteners += g->by_listener[k] > 0;
    }
    vg_time_format(g->first_ns, 0, t0, sizeof(t0));
    vg_time_format(g->last_ns, 0, t1, sizeof(t1));
    char msg[768];
    if (g->ip) {
        snprintf(msg, sizeof(msg),
                 "%" PRIu64 " connections or TLS handshakes refused from %s between %s and %s "
                 "(%" PRIu64 " recorded one by one): %s; last: %s",
                 g->refused, g->ip, t0, t1, g->recorded, counts, g->last ? g->last : "");
    } else {
        snprintf(msg, sizeof(msg),
                 "%" PRIu64 " connections or TLS handshakes refused from %" PRIu32
                 " or more addresses between %s and %s (%" PRIu64 " recorded one by one): %s",
                 g->refused, g->addrs, t0, t1, g->recorded, counts);
    }
    log_warn("%s", msg);
    buf_init(&raw, 4096);
    int rc = mp_put_map(&raw, 7);
    rc = rc ? rc : mp_put_cstr(&raw, "refused");
    rc = rc ? rc : mp_put_u64(&raw, g->refused);
    rc = rc ? rc : mp_put_cstr(&raw, "recorded");
    rc = rc ? rc : mp_put_u64(&raw, g->recorded);
    rc = rc ? rc : mp_put_cstr(&raw, "addresses");
    rc = rc ? rc : mp_put_u64(&raw, g->addrs);
    rc = rc ? rc : mp_put_cstr(&raw, "first");
    rc = rc ? rc : mp_put_i64(&raw, g->first_ns);
    rc = rc ? rc : mp_put_cstr(&raw, "last");
    rc = rc ? rc : mp_put_i64(&raw, g->last_ns);
    rc = rc ? rc : mp_put_cstr(&raw, "reasons");
    rc = rc ? rc : mp_put_map(&raw, nreasons);
    for (int r = 0; r < GUARD_REASONS && rc == 0; r++) {
        if (g->by_reason[r] > 0) {
            rc = mp_put_cstr(&raw, guard_reason_name((enum guard_reason)r));
            rc = rc ? rc : mp_put_u64(&raw, g->by_reason[r]);
        }
    }
    rc = rc ? rc : mp_put_cstr(&raw, "listeners");
    rc = rc ? rc : mp_put_map(&raw, nlisteners);
    for (int k = 0; k < LST_COUNT && rc == 0; k++) {
        if (g->by_listener[k] > 0) {
            rc = mp_put_cstr(&raw, listener_kind_name((enum listener_kind)k));
            rc = rc ? rc : mp_put_u64(&raw, g->by_listener[k]);
        }
    }
    if (rc < 0) {
        buf_reset(&raw);
    }
    struct ingest_evidence ev = {
        VG_SEV_WARNING, "refusal_summary", "failure", g->ip, NULL, msg, true, buf_span(&raw),
    };
    set->port->ops->evidence(set->port->ctx, &ev);
    buf_release(&raw);
    if (set->m) {
        set->m->refusal_summaries++;
    }
}

static void guard_flush_now(struct conn_set *s)
{
    guard_flush(&s->guard, vg_mono_ns(), on_summary, s);
    if (s->m) {
        s->m->guard_addrs = guard_addrs(&s->guard);
        s->m->handshakes_pending = s->guard.pending;
    }
}

static void on_flush_timer(uv_timer_t *t)
{
    guard_flush_now(t->data);
}

void conn_set_guard(struct conn_set *s, const struct guard_cfg *cfg, struct ingest_port *port,
                    struct metrics *m)
{
    uint64_t every_ms = (uint64_t)(cfg->interval_ns / 1000000);

    guard_init(&s->guard, cfg);
    s->guarded = true;
    s->port = port;
    s->m = m;
    uv_timer_init(s->loop, &s->flush_timer);
    s->flush_timer.data = s;
    uv_timer_start(&s->flush_timer, on_flush_timer, every_ms ? every_ms : 1,
                   every_ms ? every_ms : 1);
    /* It does not keep the loop alive on its own. */
    uv_unref((uv_handle_t *)&s->flush_timer);
}

void conn_set_memory(struct conn_set *s, uint64_t limit, struct metrics *m)
{
    s->mem.limit = limit;
    s->m = m;
    mem_gauges(s);
    uv_idle_init(s->loop, &s->mem.resume);
    s->mem.resume.data = s;
    s->mem.ready = true;
}

void conn_set_close(struct conn_set *s)
{
    if (s->closed) {
        return;
    }
    s->closed = true;
    if (s->mem.ready) {
        s->mem.ready = false;
        uv_close((uv_handle_t *)&s->mem.resume, NULL);
    }
    if (!s->guarded) {
        return;
    }
    guard_flush_now(s);
    uv_timer_stop(&s->flush_timer);
    uv_close((uv_handle_t *)&s->flush_timer, NULL);
    /* Connections still in their handshake were closed by conn_drain_all; none holds a
     * slot now. */
    s->guarded = false;
    guard_release(&s->guard);
}

/* Takes the connection libuv holds for l. */
static void conn_accept(struct listener *l)
{
    const struct listener_env *env = &l->env;
    struct conn_set *set = env->set;
    struct lst_metrics *lm = env->m;
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

    if (uv_accept((uv_stream_t *)&l->tcp, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c, -ECONNABORTED, "accept failed");
        return;
    }
    struct sockaddr_storage ss = { 0 };
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
    guard_addr_from((const struct sockaddr *)&ss, &c->gaddr);
    lm->conns_accepted++;
    if (set->stopping) {
        conn_close(c, 0, "shutting down");
        return;
    }
    if (lm->conns_open > env->cfg->max_connections) {
        lm->conns_refused_limit++;
        conn_refuse(c, GUARD_MAX_CONNS, "over listen.max_connections");
        return;
    }
    if (env->tls && set->guarded && !guard_admit_conn(c)) {
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (env->tls) {
        if (tls_sess_new(env->tls, true, NULL, &c->tls) < 0) {
            conn_close(c, VG_ETLS, "cannot create a TLS session");
            return;
        }
        if (env->policy) {
            tls_sess_set_policy(c->tls, env->policy);
        }
        uv_timer_start(&c->timer, on_timer, (uint64_t)ms_at_least_1(env->handshake_timeout_ns), 0);
    } else {
        snprintf(c->agent, sizeof(c->agent), "insecure:%s", c->peer_ip);
        conn_start_streaming(c);
        if (c->lst->proto->on_start) {
            c->lst->proto->on_start(c);
            if (c->state == CONN_CLOSING) {
                return;
            }
        }
    }
    conn_reading(c);
}

/* libuv accepts in a loop for as long as the backlog holds connections: peers that
 * reconnect as fast as they are refused would keep the loop there, starving every other
 * connection, timer and reply. So a listener takes at most CONN_ACCEPTS_PER_TURN per
 * loop iteration; then it leaves the next one with libuv (which stops watching the
 * listening socket until it is taken) and takes it on the loop's next turn. */
#define CONN_ACCEPTS_PER_TURN 64

static void on_accept_later(uv_idle_t *h)
{
    struct listener *l = h->data;

    uv_idle_stop(h);
    l->turn_accepts = 1;
    conn_accept(l); /* libuv watches the listening socket again */
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;

    if (status < 0) {
        log_warn("%s listener: accept failed: %s", listener_kind_name(l->env.kind),
                 vg_strerror(status));
        return;
    }
    if (l->turn_accepts >= CONN_ACCEPTS_PER_TURN) {
        uv_idle_start(&l->later, on_accept_later);
        return;
    }
    l->turn_accepts++;
    conn_accept(l);
}

static void on_turn(uv_prepare_t *h)
{
    struct listener *l = h->data;
    l->turn_accepts = 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;

    if (--l->handles_open > 0) {
        return;
    }
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
    l->handles_open = 1;
    if ((rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection)) < 0) {
        errbuf_set(eb, "listen.%s: cannot listen on %s:%d: %s", listener_kind_name(kind), host,
                   port, vg_strerror(rc));
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        return rc;
    }
    uv_prepare_init(env->set->loop, &l->turn);
    uv_idle_init(env->set->loop, &l->later);
    l->turn.data = l->later.data = l;
    l->handles_open = 3;
    uv_prepare_start(&l->turn, on_turn);
    uv_unref((uv_handle_t *)&l->turn);
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
        uv_close((uv_handle_t *)&l->turn, on_listener_closed);
        uv_close((uv_handle_t *)&l->later, on_listener_closed);
    }
}
