/* collector/forward_in.c: Forward protocol v1 over a verified connection. Decodes
 * complete messages from c->in (schemas/forward.c), maps each entry to a schema v1
 * record stamped with the connection's agent, and acknowledges a message's `chunk`
 * only once the store thread has made every event of it durable. Loop thread. */
#include "collector/forward_in.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/digest.h"
#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "schemas/forward.h"
#include "schemas/map.h"

/* Forward v1 handshake (shared key): the server sends HELO when the connection is up,
 * the client answers PING with sha512_hex(salt + client_host + nonce + key), the server
 * checks it and answers PONG with sha512_hex(salt + server_host + nonce + key). Events
 * are accepted only after that. TLS client certificates are still required: the shared
 * key is a second factor that Fluentd and Fluent Bit deployments already carry. */
enum fwd_phase { FWD_OPEN, FWD_WAIT_PING, FWD_AUTHED };

struct fwd_state {
    enum fwd_phase phase;
    uint8_t nonce[16];
    size_t need; /* an incomplete message needs at least this many bytes buffered */
};

/* How many bytes the message at the front of in needs at least, when its header says
 * (PackedForward: [tag, bin/str N, ...] needs the whole N); 0 when it does not say.
 * Saves re-measuring a large frame on every 32 KiB read. */
static size_t packed_need(struct span in)
{
    struct span cur = in;
    struct mp_obj o;

    if (mp_read(&cur, &o) != 1 || o.type != MP_ARRAY || mp_read(&cur, &o) != 1 ||
        o.type != MP_STR || cur.n < 5) {
        return 0;
    }
    const uint8_t *p = cur.p;
    size_t h;
    uint64_t len;
    switch (p[0]) {
    case 0xc4:
    case 0xd9:
        h = 2;
        len = p[1];
        break;
    case 0xc5:
    case 0xda:
        h = 3;
        len = (uint64_t)p[1] << 8 | p[2];
        break;
    case 0xc6:
    case 0xdb:
        h = 5;
        len = (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
        break;
    default:
        return 0;
    }
    return (size_t)(cur.p - in.p) + h + (size_t)len;
}

struct fwd_ack {
    struct conn *c;
    uint64_t rejected; /* entries kept as rejected_input records: said in the ack */
    size_t bytes;      /* the message's */
    size_t len;
    uint8_t chunk[];
};

static void on_durable(void *arg, int rc)
{
    struct fwd_ack *a = arg;
    struct conn *c = a->c;

    if (c->state != CONN_CLOSING) {
        if (rc == 0) {
            struct buf out;
            buf_init(&out, a->len + 64);
            if (forward_encode_ack(&out, (struct span){ a->chunk, a->len }, a->rejected) == 0 &&
                conn_send(c, out.data, out.len) == 0) {
                c->env->m->acks_sent++;
            }
            buf_release(&out);
        } else {
            conn_close(c, rc, "store commit failed: events not acknowledged (the agent retries)");
        }
    }
    conn_waiter_done(c, a->bytes);
    conn_unref(c);
    free(a);
}

/* An entry that does not map is kept as a source=vigil event carrying the original
 * bytes: nothing acknowledged is ever dropped. */
static int keep_rejected(struct conn *c, struct span entry, int64_t ts, const char *why)
{
    char msg[400];

    snprintf(msg, sizeof(msg), "rejected Forward entry from agent '%s': %s", c->agent, why);
    return ingest_keep_rejected(c->env->port, c->env->self_host, c->agent, c->peer_ip, msg, entry,
                                ts);
}

/* What one message gave: events taken, entries that did not map (kept as rejected_input
 * records), and the first of those reasons. */
struct msg_result {
    uint64_t events;
    uint64_t rejected;
    char first_reject[200];
};

/* Maps and ingests every entry of m, inside a unit the caller opened: on a negative
 * return (a malformed entry, the unit past the batch's hard limit) the caller drops the
 * whole unit. */
static int handle_msg(struct conn *c, const struct forward_msg *m, struct msg_result *res)
{
    struct forward_iter it;
    struct buf unz;
    int64_t now = vg_now_ns();
    enum map_source hint = map_source_from_tag(m->tag);
    int rc;

    buf_init(&unz, (size_t)c->env->cfg->max_frame_bytes * 4);
    if ((rc = forward_iter_init(&it, m, &unz)) < 0) {
        buf_release(&unz);
        return rc;
    }
    for (;;) {
        int64_t t;
        struct span record;
        struct rec r;
        struct errbuf eb;

        rc = forward_iter_next(&it, &t, &record);
        if (rc <= 0) {
            break;
        }
        buf_reset(&c->scratch);
        errbuf_clear(&eb);
        rec_init(&r);
        if (map_event(hint, record, t, "forward", &r, &c->scratch, &eb) < 0) {
            if (res->rejected++ == 0) {
                snprintf(res->first_reject, sizeof(res->first_reject), "%s", errbuf_msg(&eb));
            }
            rc = keep_rejected(c, record, t, errbuf_msg(&eb));
        } else {
            rec_set(&r, VG_F_AGENT, span_str(c->agent));
            r.received = now;
            r.has_received = true;
            rc = ingest_add(c->env->port, &r);
            res->events += rc == 0;
        }
        if (rc < 0) {
            break;
        }
    }
    buf_release(&unz);
    return rc;
}

static void forward_on_start(struct conn *c)
{
    struct fwd_state *fs = xcalloc(1, sizeof(*fs));
    struct buf out;

    c->proto_state = fs;
    if (!c->env->shared_key) {
        fs->phase = FWD_OPEN;
        return;
    }
    if (getrandom(fs->nonce, sizeof(fs->nonce), 0) != (ssize_t)sizeof(fs->nonce)) {
        conn_close(c, -EIO, "no randomness for the HELO nonce");
        return;
    }
    fs->phase = FWD_WAIT_PING;
    buf_init(&out, 256);
    /* ["HELO", {"nonce": bin16, "auth": "", "keepalive": true}] */
    if (mp_put_array(&out, 2) < 0 || mp_put_cstr(&out, "HELO") < 0 || mp_put_map(&out, 3) < 0 ||
        mp_put_cstr(&out, "nonce") < 0 || mp_put_bin(&out, fs->nonce, sizeof(fs->nonce)) < 0 ||
        mp_put_cstr(&out, "auth") < 0 || mp_put_cstr(&out, "") < 0 ||
        mp_put_cstr(&out, "keepalive") < 0 || mp_put_bool(&out, true) < 0 ||
        conn_send(c, out.data, out.len) < 0) {
        conn_close(c, -EIO, "cannot send HELO");
    }
    buf_release(&out);
}

static void forward_on_release(struct conn *c)
{
    free(c->proto_state);
    c->proto_state = NULL;
}

static int send_pong(struct conn *c, bool ok, const char *reason, struct span salt)
{
    struct fwd_state *fs = c->proto_state;
    const struct listener_env *env = c->env;
    char hex[VG_SHA512_HEX_LEN + 1] = "";
    struct buf out;
    int rc;

    if (ok) {
        struct span parts[] = { salt,
                                span_str(env->self_host),
                                { fs->nonce, sizeof(fs->nonce) },
                                span_str(env->shared_key) };
        vg_sha512_hex_parts(parts, VG_ARRAY_LEN(parts), hex);
    }
    buf_init(&out, 512 + salt.n);
    /* ["PONG", ok, reason, server_hostname, digest] */
    if ((rc = mp_put_array(&out, 5)) < 0 || (rc = mp_put_cstr(&out, "PONG")) < 0 ||
        (rc = mp_put_bool(&out, ok)) < 0 || (rc = mp_put_cstr(&out, reason)) < 0 ||
        (rc = mp_put_cstr(&out, env->self_host)) < 0 || (rc = mp_put_cstr(&out, hex)) < 0) {
        buf_release(&out);
        return rc;
    }
    rc = conn_send(c, out.data, out.len);
    buf_release(&out);
    return rc;
}

static bool get_bytes(struct span *cur, struct span *out)
{
    struct mp_obj o;
    if (mp_read(cur, &o) != 1 || (o.type != MP_STR && o.type != MP_BIN)) {
        return false;
    }
    *out = o.v.s;
    return true;
}

/* Handles the PING at the front of c->in. Returns bytes consumed, 0 for need more, or
 * negative after closing the connection. */
static ssize_t handle_ping(struct conn *c, struct span in)
{
    struct fwd_state *fs = c->proto_state;
    const struct listener_env *env = c->env;
    struct lst_metrics *lm = env->m;
    ssize_t n = mp_value_len(in, 64 * 1024, 4);
    struct span cur = in;
    struct mp_obj o;
    struct span word, host, salt, digest;
    const char *why = NULL;

    if (n == 0) {
        return 0;
    }
    if (n < 0 || mp_read(&cur, &o) != 1 || o.type != MP_ARRAY || o.v.count != 6 ||
        !get_bytes(&cur, &word) || !span_eq_str(word, "PING") || !get_bytes(&cur, &host) ||
        !get_bytes(&cur, &salt) || !get_bytes(&cur, &digest)) {
        why = "expected a PING after HELO (shared key authentication)";
    } else if (span_eq_str(host, env->self_host)) {
        why = "same hostname as the server";
    } else {
        char hex[VG_SHA512_HEX_LEN + 1];
        struct span parts[] = {
            salt, host, { fs->nonce, sizeof(fs->nonce) }, span_str(env->shared_key)
        };
        vg_sha512_hex_parts(parts, VG_ARRAY_LEN(parts), hex);
        /* Constant-time enough: both are hex of fixed length; compare every byte. */
        uint8_t diff = digest.n != VG_SHA512_HEX_LEN;
        for (size_t i = 0; i < VG_SHA512_HEX_LEN && i < digest.n; i++) {
            diff |= (uint8_t)(digest.p[i] ^ (uint8_t)hex[i]);
        }
        if (diff) {
            why = "shared key mismatch";
        }
    }
    if (why) {
        lm->auth_failures++;
        ingest_self_event(env->port, VG_SEV_WARNING, "forward_auth", "failure", c->peer_ip,
                          c->agent,
                          "Forward shared-key authentication refused for %s agent '%s': %s",
                          c->peer, c->agent, why);
        log_warn("conn %" PRIu64 " forward peer %s agent '%s': authentication refused: %s", c->id,
                 c->peer, c->agent, why);
        send_pong(c, false, why, (struct span){ NULL, 0 });
        conn_finish(c);
        return -EACCES;
    }
    if (send_pong(c, true, "", salt) < 0) {
        conn_close(c, -EIO, "cannot send PONG");
        return -EIO;
    }
    fs->phase = FWD_AUTHED;
    log_debug("conn %" PRIu64 " forward agent '%s': shared key verified (client host '%.*s')",
              c->id, c->agent, (int)host.n, (const char *)host.p);
    return n;
}

static int forward_on_data(struct conn *c)
{
    struct ingest_port *port = c->env->port;
    struct lst_metrics *lm = c->env->m;
    struct span in = buf_span(&c->in);
    size_t max = (size_t)c->env->cfg->max_frame_bytes;
    int rc = 0;

    struct fwd_state *fs = c->proto_state;
    if (fs && fs->phase == FWD_WAIT_PING && in.n > 0) {
        ssize_t n = handle_ping(c, in);
        if (n <= 0) {
            if (n < 0) {
                buf_consume(&c->in, c->in.len);
            }
            return 0;
        }
        span_advance(&in, (size_t)n);
    }
    while (in.n > 0 && c->state == CONN_STREAMING) {
        struct forward_msg m;

        if (ingest_full(port)) {
            conn_pause(c);
            break;
        }
        if (fs && fs->need > in.n && fs->need <= max) {
            break; /* the header already told us more is coming */
        }
        ssize_t n = forward_decode(in, &m, max);
        if (n == 0) {
            if (in.n >= max) {
                n = VG_ELIMIT;
            } else {
                if (fs) {
                    fs->need = packed_need(in);
                }
                break;
            }
        }
        if (fs) {
            fs->need = 0;
        }
        if (n < 0) {
            lm->frames_rejected++;
            const char *why = n == VG_ELIMIT ? "message larger than listen.max_frame_bytes"
                                             : "malformed Forward message";
            ingest_self_event(port, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                              c->agent, "%s from %s agent '%s' (%zu bytes buffered)", why, c->peer,
                              c->agent, in.n);
            rc = (int)n;
            conn_close(c, rc, why);
            break;
        }
        lm->frames++;
        struct msg_result res = { 0 };
        /* All or nothing: a message is stored whole or not at all, so an agent that
         * sends it again after no ack never finds a part of it stored twice. */
        ingest_unit_begin(port);
        rc = handle_msg(c, &m, &res);
        ingest_unit_end(port, rc == 0);
        if (rc < 0) {
            char why[200];
            lm->frames_rejected++;
            if (rc == VG_ELIMIT) {
                snprintf(why, sizeof(why),
                         "its events, once normalized, exceed what one store batch takes "
                         "(4 x listen.max_frame_bytes): send smaller chunks");
            } else {
                snprintf(why, sizeof(why), "an entry is malformed: %s", vg_strerror(rc));
            }
            ingest_self_event(port, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                              c->agent,
                              "Forward message of %zd bytes from %s agent '%s' rejected as a "
                              "whole, nothing of it stored, not acknowledged: %s",
                              n, c->peer, c->agent, why);
            conn_close(c, rc, why);
            break;
        }
        lm->events_received += res.events + res.rejected;
        lm->events_rejected += res.rejected;
        if (res.rejected > 0) {
            log_warn("conn %" PRIu64 " forward agent '%s': %" PRIu64 " of %" PRIu64
                     " events not mapped (the first: %s); kept as rejected_input records",
                     c->id, c->agent, res.rejected, res.events + res.rejected, res.first_reject);
        }
        if (m.chunk.n > 0) {
            struct fwd_ack *a = xmalloc(sizeof(*a) + m.chunk.n);
            a->c = c;
            a->rejected = res.rejected;
            a->bytes = (size_t)n;
            a->len = m.chunk.n;
            memcpy(a->chunk, m.chunk.p, m.chunk.n);
            conn_ref(c);
            conn_waiter_add(c, a->bytes);
            ingest_when_durable(port, on_durable, a);
        }
        span_advance(&in, (size_t)n);
    }
    if (c->state != CONN_CLOSING) {
        buf_consume(&c->in, c->in.len - in.n);
    }
    return rc < 0 ? rc : 0;
}

const struct conn_proto forward_in_proto = {
    .kind = LST_FORWARD,
    .on_start = forward_on_start,
    .on_data = forward_on_data,
    .on_release = forward_on_release,
};
