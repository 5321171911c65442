/* collector/conn.h: listeners and the connections they accept: TCP -> TLS (memory
 * BIOs) -> a protocol handler (Forward, syslog, HTTPS, admin). A listener works from
 * its struct listener_env alone: its limits, its TLS context, its counters and the
 * ingest port its events go to (collector/ingest.h); vigild.c fills one per listener.
 * Loop thread only.
 *
 * States and their timers:
 *   CONN_HANDSHAKE  TLS handshake; handshake timer armed
 *   CONN_STREAMING  peer verified; frames flow; idle timer armed
 *   CONN_DRAINING   EOF or shutdown; no more reading; waiting for the last acks
 *   CONN_CLOSING    uv_close() called; only close callbacks run
 * A struct conn is freed when both handles are closed and no waiter holds a ref. */
#ifndef VG_COLLECTOR_CONN_H
#define VG_COLLECTOR_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "collector/guard.h"
#include "collector/ingest.h"
#include "collector/metrics.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/errbuf.h"

struct conn;
struct tls_ctx;

enum conn_state { CONN_HANDSHAKE, CONN_STREAMING, CONN_DRAINING, CONN_CLOSING };

/* A protocol handler. on_data consumes complete frames from c->in and returns 0, or a
 * negative code to close the connection (after logging why). It may stop early when
 * the port is full (conn_pause); it is called again on resume. */
struct conn_proto {
    enum listener_kind kind;
    /* Optional: called once when the peer is verified and bytes may flow. */
    void (*on_start)(struct conn *c);
    int (*on_data)(struct conn *c);
    void (*on_release)(struct conn *c); /* frees c->proto_state */
};

/* Every connection of a daemon's listeners (an intrusive list), for shutdown and for
 * resuming reads when the port has room again, and what the listeners share: the guard
 * against strangers (guard.h, conn_set_guard). Owned by the loop thread. */
struct conn_set {
    uv_loop_t *loop;
    struct conn *conns;
    uint64_t next_id;
    bool stopping; /* conn_drain_all was called: no new connections */
    bool guarded;  /* conn_set_guard was called */
    bool closed;   /* conn_set_close was called */
    struct guard guard;
    struct ingest_port *port; /* where the guard's summaries go */
    struct metrics *m;        /* set-wide figures (guard), or NULL */
    uv_timer_t flush_timer;   /* every listen.refusal_interval: guard_flush */
};

/* What one listener and its connections work with: nothing else of the daemon. The
 * listener keeps a copy; the pointers must outlive it. */
struct listener_env {
    struct conn_set *set;
    enum listener_kind kind;
    const struct listen_cfg *cfg; /* listen.*: max_frame_bytes, max_connections, idle_timeout */
    int64_t handshake_timeout_ns; /* tls.handshake_timeout */
    struct tls_ctx *tls;          /* client certificates required; NULL: plaintext */
    struct lst_metrics *m;        /* this listener's counters */
    struct ingest_port *port;     /* where events, waiters and evidence go */
    const char *self_host;        /* the collector's host name (source=vigil events, PONG) */
    const char *shared_key;       /* forward: listen.shared_key_file's key, or NULL */
    const struct metrics *all;    /* admin: what GET /metrics renders */
    /* admin: appends more Prometheus text after *all (the forwarders'), or NULL */
    int (*render_more)(const void *arg, struct buf *out);
    const void *render_arg;
};

struct listener {
    struct listener_env env;
    const struct conn_proto *proto;
    uv_tcp_t tcp;
    uv_prepare_t turn; /* each loop iteration: a new allowance of accepts */
    uv_idle_t later;   /* the allowance was used up: the next accept, next iteration */
    int turn_accepts;  /* accepted in this loop iteration */
    int handles_open;
    char addr[64];
    int port;    /* the bound port (after port 0) */
    int conns;   /* connections not yet freed: they use this struct until then */
    bool closed; /* its handles are closed; freed with its last connection */
};

struct conn {
    struct listener *lst;
    const struct listener_env *env; /* &lst->env */
    uint64_t id;
    enum conn_state state;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles_open;
    int refs;
    struct tls_sess *tls;
    char peer[64]; /* "ip:port" */
    char peer_ip[48];
    char agent[256]; /* verified certificate identity */
    struct guard_addr gaddr;
    uint32_t guard_slot; /* with in_guard: the guard's slot of its address */
    bool in_guard;       /* counted by the guard as in its handshake */
    struct buf in;       /* decrypted bytes not yet consumed by the protocol */
    struct buf scratch;
    bool reading;
    bool paused;            /* stopped for backpressure; resumed by conn_resume_all */
    bool close_notify_owed; /* the peer closed TLS cleanly: answer once acks are out */
    uint64_t unacked;       /* durability waiters outstanding */
    size_t write_bytes;     /* bytes handed to uv_write and not yet completed */
    void *proto_state;
    struct conn *prev, *next;
    uint8_t rbuf[32 * 1024];
};

void conn_set_init(struct conn_set *s, uv_loop_t *loop);
/* Turns on the guard against strangers for the set's TLS listeners (guard.h): the
 * handshake and accept-rate limits of cfg, and refusals recorded through port (sampled,
 * then summarized every cfg->interval_ns); m (may be NULL) gets the set-wide figures.
 * Starts a timer: conn_set_close must be called. */
void conn_set_guard(struct conn_set *s, const struct guard_cfg *cfg, struct ingest_port *port,
                    struct metrics *m);
/* At shutdown, after conn_drain_all and while the port still takes evidence: records
 * the guard's last summaries, stops its timer and frees it. Idempotent. */
void conn_set_close(struct conn_set *s);

/* Binds and listens on host:port with env (copied) and proto; TLS when env->tls. Returns
 * 0 and *out (freed by listener_close, once its last connection is gone), or negative
 * with eb naming the listener. */
int listener_start(const struct listener_env *env, const struct conn_proto *proto, const char *host,
                   int port, struct listener **out, struct errbuf *eb);
void listener_close(struct listener *l);

/* Sends plaintext to the peer (encrypting it when TLS). Returns 0 or negative. */
int conn_send(struct conn *c, const void *p, size_t n);
/* The one way out: idempotent; logs the reason once (rc 0: normal close). */
void conn_close(struct conn *c, int rc, const char *why);
/* Stops reading; closes once every ack and write owed to the peer has gone out. */
void conn_finish(struct conn *c);
/* Stops reading because the port is full (backpressure). */
void conn_pause(struct conn *c);
/* Resumes every paused connection (the port has room again). */
void conn_resume_all(struct conn_set *s);
/* Resumes c if it is paused: buffered frames first, then reading. */
void conn_resume(struct conn *c);
/* Shutdown: no new connections; stops reading on every connection and closes those with
 * nothing pending (the others once their last acks are out). */
void conn_drain_all(struct conn_set *s);
/* True once conn_drain_all was called (GET /healthz answers 503). */
bool conn_stopping(const struct conn *c);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
/* Called by protocols when a waiter for c completes; closes a draining connection that
 * has nothing left to wait for. */
void conn_waiter_done(struct conn *c);

#endif
