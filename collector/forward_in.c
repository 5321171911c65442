/* collector/forward_in.c: Forward protocol v1 over a verified connection. Decodes
 * complete messages from c->in (collector/forward.c), maps each entry to a schema v1
 * record stamped with the connection's agent, and acknowledges a message's `chunk`
 * only once the store thread has made every event of it durable. Loop thread. */
#include "collector/forward_in.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "collector/forward.h"
#include "collector/pipeline.h"
#include "collector/vigild.h"
#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "schemas/map.h"

struct fwd_ack {
    struct conn *c;
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
            if (forward_encode_ack(&out, (struct span){ a->chunk, a->len }) == 0 &&
                conn_send(c, out.data, out.len) == 0) {
                c->vd->m.lst[c->lst->kind].acks_sent++;
            }
            buf_release(&out);
        } else {
            conn_close(c, rc, "store commit failed: events not acknowledged (the agent retries)");
        }
    }
    conn_waiter_done(c);
    conn_unref(c);
    free(a);
}

/* An entry that does not map is kept as a source=vigil event carrying the original
 * bytes: nothing acknowledged is ever dropped. */
static int keep_rejected(struct conn *c, struct span entry, int64_t ts, const char *why)
{
    struct rec r;
    char msg[400];

    rec_init(&r);
    snprintf(msg, sizeof(msg), "rejected Forward entry from agent '%s': %s", c->agent, why);
    rec_set(&r, VG_F_SOURCE, SPAN_LIT("vigil"));
    rec_set(&r, VG_F_KIND, SPAN_LIT("log"));
    rec_set(&r, VG_F_SEVERITY, SPAN_LIT("warning"));
    rec_set(&r, VG_F_ACTION, SPAN_LIT("rejected_input"));
    rec_set(&r, VG_F_OUTCOME, SPAN_LIT("failure"));
    rec_set(&r, VG_F_AGENT, span_str(c->agent));
    rec_set(&r, VG_F_SRC_IP, span_str(c->peer_ip));
    rec_set(&r, VG_F_HOST, span_str(c->vd->self_host));
    rec_set(&r, VG_F_MESSAGE, span_str(msg));
    r.raw = entry;
    r.ts = ts;
    r.has_ts = true;
    return vigild_ingest(c->vd, &r);
}

static int handle_msg(struct conn *c, const struct forward_msg *m)
{
    struct vigild *vd = c->vd;
    struct lst_metrics *lm = &vd->m.lst[c->lst->kind];
    struct forward_iter it;
    struct buf unz;
    int64_t now = vg_now_ns();
    enum map_source hint = map_source_from_tag(m->tag);
    int rc;

    buf_init(&unz, (size_t)vd->cfg->listen.max_frame_bytes * 4);
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
            lm->events_rejected++;
            log_warn("conn %" PRIu64 " forward agent '%s': event not mapped: %s", c->id,
                     c->agent, errbuf_msg(&eb));
            rc = keep_rejected(c, record, t, errbuf_msg(&eb));
        } else {
            rec_set(&r, VG_F_AGENT, span_str(c->agent));
            r.received = now;
            r.has_received = true;
            rc = vigild_ingest(vd, &r);
        }
        if (rc < 0) {
            break;
        }
        lm->events_received++;
    }
    buf_release(&unz);
    return rc;
}

static int forward_on_data(struct conn *c)
{
    struct vigild *vd = c->vd;
    struct lst_metrics *lm = &vd->m.lst[c->lst->kind];
    struct span in = buf_span(&c->in);
    size_t max = (size_t)vd->cfg->listen.max_frame_bytes;
    int rc = 0;

    while (in.n > 0 && c->state != CONN_CLOSING) {
        struct forward_msg m;

        if (pipeline_full(vd->pipe)) {
            conn_pause(c);
            break;
        }
        ssize_t n = forward_decode(in, &m, max);
        if (n == 0) {
            if (in.n >= max) {
                n = VG_ELIMIT;
            } else {
                break;
            }
        }
        if (n < 0) {
            lm->frames_rejected++;
            const char *why = n == VG_ELIMIT ? "message larger than listen.max_frame_bytes"
                                             : "malformed Forward message";
            vigild_self_event(vd, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                              c->agent, "%s from %s agent '%s' (%zu bytes buffered)", why,
                              c->peer, c->agent, in.n);
            rc = (int)n;
            conn_close(c, rc, why);
            break;
        }
        lm->frames++;
        rc = handle_msg(c, &m);
        if (rc < 0) {
            lm->frames_rejected++;
            vigild_self_event(vd, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                              c->agent, "Forward message from %s agent '%s' rejected: %s",
                              c->peer, c->agent, vg_strerror(rc));
            conn_close(c, rc, "Forward message rejected");
            break;
        }
        if (m.chunk.n > 0) {
            struct fwd_ack *a = xmalloc(sizeof(*a) + m.chunk.n);
            a->c = c;
            a->len = m.chunk.n;
            memcpy(a->chunk, m.chunk.p, m.chunk.n);
            conn_ref(c);
            c->unacked++;
            pipeline_when_durable(vd->pipe, on_durable, a);
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
    .on_data = forward_on_data,
    .on_release = NULL,
};
