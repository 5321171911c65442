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
struct tls_policy;

enum conn_state { CONN_HANDSHAKE, CONN_STREAMING, CONN_DRAINING, CONN_CLOSING };

/* Where a connection's input stands, for the timeouts after the handshake. */
enum conn_phase {
    CONN_PHASE_IDLE,  /* between frames: listen.idle_timeout */
    CONN_PHASE_HEAD,  /* an HTTP request head begun: listen.header_timeout */
    CONN_PHASE_FRAME, /* a frame (or request body) begun: listen.frame_timeout */
};

/* A protocol handler. on_data consumes complete frames from c->in and returns 0, or a
 * negative code to close the connection (after logging why). It may stop early when
 * the port is full (conn_pause) or memory is (conn_wait_memory); it is called again on
 * resume. */
struct conn_proto {
    enum listener_kind kind;
    /* Optional: called once when the peer is verified and bytes may flow. */
    void (*on_start)(struct conn *c);
    int (*on_data)(struct conn *c);
    void (*on_release)(struct conn *c); /* frees c->proto_state */
    /* Optional: where the input stands after on_data; without it a connection with
     * bytes in c->in is inside a frame. */
    enum conn_phase (*phase)(struct conn *c);
    /* Optional: the peer ended the stream (EOF or close_notify) with bytes in c->in that
     * on_data left there: a frame cut off. Called once, before draining. */
    void (*on_eof)(struct conn *c);
};

/* limits.memory: one budget for every connection's input buffers (conn_buf_reserve).
 * When it has no room, a connection stops reading (conn_wait_memory) instead of
 * allocating, and reads again once memory is given back. Buffers larger than
 * CONN_MEM_BASE (large frames) may use three quarters of it together, so connections
 * with small frames find room beside them; listen.frame_timeout bounds how long any
 * connection holds memory without finishing its frame. */
#define CONN_MEM_BASE  (64 * 1024)
#define CONN_READ_ROOM (16 * 1024) /* room made in c->in before decrypting into it */
struct conn_mem {
    uint64_t limit;   /* bytes; 0: counted, never refused */
    uint64_t used;    /* charged now */
    uint64_t large;   /* of it, in buffers larger than CONN_MEM_BASE */
    uint64_t peak;    /* the most charged at once */
    uint64_t pauses;  /* times a connection waited for memory */
    uint32_t waiting; /* connections waiting for memory now */
    bool ready;       /* conn_set_memory was called, conn_set_close not yet */
    bool resume_on;   /* resume is started */
    uv_idle_t resume; /* memory was given back while connections wait */
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
    struct conn_mem mem;
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
    const struct listen_cfg *cfg;    /* listen.*: max_frame_bytes, max_connections, idle_timeout */
    int64_t handshake_timeout_ns;    /* tls.handshake_timeout */
    struct tls_ctx *tls;             /* client certificates required; NULL: plaintext */
    const struct tls_policy *policy; /* tls.agents: who may ship here, or NULL: anyone
                                        the CA signed */
    struct lst_metrics *m;           /* this listener's counters */
    struct ingest_port *port;        /* where events, waiters and evidence go */
    const char *self_host;           /* the collector's host name (source=vigil events, PONG) */
    const char *shared_key;          /* forward: listen.shared_key_file's key, or NULL */
    const struct metrics *all;       /* admin: what GET /metrics renders */
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
    struct buf in;       /* decrypted bytes not yet consumed by the protocol; released when empty */
    size_t in_charged;   /* in's capacity, charged to the set's memory budget */
    size_t rbuf_pending; /* plaintext: bytes in rbuf waiting for room in in (memory) */
    struct buf scratch;
    bool reading;
    bool paused;            /* stopped for backpressure; resumed by conn_resume_all */
    bool mem_wait;          /* stopped until the memory budget has room again */
    enum conn_phase phase;  /* after the last on_data */
    int64_t frame_since;    /* mono ns the current frame began (0: none) */
    int64_t paused_at;      /* mono ns of the last conn_pause */
    int64_t last_read;      /* mono ns of the last bytes read */
    bool close_notify_owed; /* the peer closed TLS cleanly: answer once acks are out */
    uint64_t unacked;       /* durability waiters outstanding */
    uint64_t unacked_bytes; /* their input bytes (listen.high_water_bytes) */
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
/* Sets the memory budget (struct conn_mem; 0: none) and starts the handle that resumes
 * connections waiting for memory: conn_set_close must be called. m (may be NULL) gets
 * the budget's gauges. */
void conn_set_memory(struct conn_set *s, uint64_t limit, struct metrics *m);
/* At shutdown, after conn_drain_all and while the port still takes evidence: records
 * the guard's last summaries, stops its timer and frees it, and closes the memory
 * budget's handle. Idempotent. */
void conn_set_close(struct conn_set *s);

/* Binds and listens on host:port with env (copied) and proto; TLS when env->tls. Returns
 * 0 and *out (freed by listener_close, once its last connection is gone), or negative
 * with eb naming the listener. */
int listener_start(const struct listener_env *env, const struct conn_proto *proto, const char *host,
                   int port, struct listener **out, struct errbuf *eb);
void listener_close(struct listener *l);

/* Room for n more bytes in b, a buffer of c's, its growth charged to the memory budget
 * (*charged: b's capacity as charged). Returns 0, VG_ELIMIT past b->max, or -EAGAIN
 * when the budget has no room now: the caller stops and calls conn_wait_memory. */
int conn_buf_reserve(struct conn *c, struct buf *b, size_t *charged, size_t n) VG_MUST_USE;
/* After b's capacity changed otherwise (released, shrunk): charges what it is now. */
void conn_buf_settle(struct conn *c, struct buf *b, size_t *charged);
/* Stops reading c until the memory budget has room again; then it is called on_data and
 * reads again by itself. */
void conn_wait_memory(struct conn *c);

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
/* A protocol registered a durability waiter for c, for bytes of input (a Forward
 * message, an HTTP request body): while bytes not yet acknowledged reach
 * listen.high_water_bytes, c does not read. */
void conn_waiter_add(struct conn *c, size_t bytes);
/* The waiter for bytes completed; closes a draining connection that has nothing left
 * to wait for, resumes reading one held at the high water mark. */
void conn_waiter_done(struct conn *c, size_t bytes);

#endif
