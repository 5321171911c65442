/* common/cnats.c: JetStream through cnats (see cnats.h). The only file that includes
 * <nats/nats.h>; cnats' status codes become ours here, with its text. */
#include "common/cnats.h"

#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"

struct cnats {
    natsConnection *nc;
    jsCtx *js;
    const struct cluster_cfg *cfg;
    uv_mutex_t mu;       /* cnats_stream_ensure: one asks at a time */
    bool stream_ok;      /* under mu: cnats_stream_ensure succeeded */
    atomic_bool closing; /* cnats_free: the disconnection is ours */
    /* cnats calls back on a thread of its own, also after natsConnection_Close has
     * returned: cnats_free waits for the closed callback, the last, before freeing. */
    uv_cond_t closed_cond;
    bool closed; /* under mu */
};

struct cnats_sub {
    struct cnats *c;
    natsSubscription *sub;
    natsMsgList list; /* the last fetch */
    bool have_list;
    char durable[128];
};

/* cnats' status as ours, its text (and the thread's error stack) into eb. */
static int fail(natsStatus s, jsErrCode jerr, struct errbuf *eb, const char *what)
{
    const char *detail = nats_GetLastError(NULL);

    if (jerr != 0) {
        errbuf_set(eb, "%s: %s (JetStream error %d)", what, natsStatus_GetText(s), (int)jerr);
    } else {
        errbuf_set(eb, "%s: %s%s%s", what, natsStatus_GetText(s), detail && *detail ? ": " : "",
                   detail ? detail : "");
    }
    switch (s) {
    case NATS_TIMEOUT:
        return -ETIMEDOUT;
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_SERVER:
    case NATS_NOT_YET_CONNECTED:
    case NATS_NO_RESPONDERS:
        return -ENOTCONN;
    default:
        return -EIO;
    }
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    struct cnats *c = closure;

    (void)nc;
    if (atomic_load(&c->closing)) {
        return;
    }
    log_warn("cluster: disconnected from NATS; reconnecting (ingest refuses events meanwhile)");
}

static void on_closed(natsConnection *nc, void *closure)
{
    struct cnats *c = closure;

    (void)nc;
    uv_mutex_lock(&c->mu);
    c->closed = true;
    uv_cond_signal(&c->closed_cond);
    uv_mutex_unlock(&c->mu);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    char url[256] = "";

    (void)closure;
    natsConnection_GetConnectedUrl(nc, url, sizeof(url));
    log_info("cluster: connected to NATS at %s", url);
}

int cnats_connect(const struct cluster_cfg *cfg, const char *name, enum cnats_mode mode,
                  struct cnats **out, struct errbuf *eb)
{
    struct cnats *c = xcalloc(1, sizeof(*c));
    natsOptions *o = NULL;
    natsStatus s;
    int rc;
    bool secure = cfg->tls.ca != NULL;

    c->cfg = cfg;
    atomic_init(&c->closing, false);
    if (uv_mutex_init(&c->mu) < 0 || uv_cond_init(&c->closed_cond) < 0) {
        abort(); /* only on resource exhaustion at start-up */
    }
    for (size_t i = 0; i < cfg->nnats; i++) {
        secure |= strncmp(cfg->nats[i], "tls://", 6) == 0;
    }
    s = natsOptions_Create(&o);
    if (s == NATS_OK) {
        s = natsOptions_SetServers(o, (const char **)cfg->nats, (int)cfg->nnats);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetName(o, name);
    }
    /* Reconnect forever, quickly: while disconnected the ingest role refuses events
     * (backpressure) and store nodes wait; nothing is buffered behind the caller's back
     * (a publish waits for its ack or fails). */
    if (s == NATS_OK) {
        s = natsOptions_SetMaxReconnect(o, mode == CNATS_BACKGROUND ? -1 : 0);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectWait(o, 250);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetTimeout(o, 2000);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetPingInterval(o, 2000);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetMaxPingsOut(o, 2);
    }
    if (s == NATS_OK && mode == CNATS_BACKGROUND) {
        s = natsOptions_SetRetryOnFailedConnect(o, true, on_reconnected, c);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, c);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectedCB(o, on_reconnected, c);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetClosedCB(o, on_closed, c);
    }
    if (s != NATS_OK) {
        rc = fail(s, 0, eb, "cluster: NATS options");
        goto fail;
    }
    if (secure) {
        s = natsOptions_SetSecure(o, true);
        if (s == NATS_OK && cfg->tls.ca) {
            s = natsOptions_LoadCATrustedCertificates(o, cfg->tls.ca);
        }
        if (s == NATS_OK && cfg->tls.cert) {
            s = natsOptions_LoadCertificatesChain(o, cfg->tls.cert, cfg->tls.key);
        }
        if (s != NATS_OK) {
            fail(s, 0, eb, "cluster.tls: cannot load the certificates");
            rc = VG_ECONFIG;
            goto fail;
        }
    }
    s = natsConnection_Connect(&c->nc, o);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
        rc = fail(s, 0, eb, "cluster: cannot connect to NATS");
        if (s == NATS_NO_SERVER) {
            errbuf_clear(eb);
            errbuf_set(eb, "cluster: no NATS server reachable (%s%s)", cfg->nats[0],
                       cfg->nnats > 1 ? ", ..." : "");
        }
        goto fail;
    }
    if (s == NATS_NOT_YET_CONNECTED) {
        log_warn("cluster: no NATS server reachable yet (%s, ...); retrying in the background",
                 cfg->nats[0]);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    s = natsConnection_JetStream(&c->js, c->nc, &jo);
    if (s != NATS_OK) {
        rc = fail(s, 0, eb, "cluster: JetStream context");
        goto fail;
    }
    natsOptions_Destroy(o);
    *out = c;
    return 0;
fail:
    natsOptions_Destroy(o);
    cnats_free(c);
    return rc;
}

bool cnats_connected(struct cnats *c)
{
    return natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED;
}

size_t cnats_max_payload(struct cnats *c)
{
    int64_t n = natsConnection_GetMaxPayload(c->nc);
    return n > 0 ? (size_t)n : 0;
}

/* schemas/cluster.md 2: the events stream. */
static int stream_ensure(struct cnats *c, struct errbuf *eb)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    if (c->stream_ok) {
        return 0;
    }
    s = js_GetStreamInfo(&si, c->js, CLUSTER_EVENTS_STREAM, NULL, &jerr);
    if (s == NATS_OK && si == NULL) {
        s = NATS_NOT_FOUND; /* cnats says "not found" this way too */
    }
    if (s == NATS_OK) {
        if (si->Config && (uint64_t)si->Config->Replicas != c->cfg->replicas) {
            log_warn("cluster: stream '%s' has %" PRId64 " replicas, cluster.replicas says %" PRIu64
                     "; it is left as it is",
                     CLUSTER_EVENTS_STREAM, si->Config->Replicas, c->cfg->replicas);
        }
        jsStreamInfo_Destroy(si);
        c->stream_ok = true;
        return 0;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
        return fail(s, jerr, eb, "cluster: stream '" CLUSTER_EVENTS_STREAM "'");
    }
    const char *subjects[] = { CLUSTER_EVENTS_SUBJECTS };
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = CLUSTER_EVENTS_STREAM;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_LimitsPolicy;
    sc.Storage = js_FileStorage;
    sc.Replicas = (int64_t)c->cfg->replicas;
    sc.MaxAge = c->cfg->stream_max_age_ns;
    sc.MaxBytes = c->cfg->stream_max_bytes > 0 ? (int64_t)c->cfg->stream_max_bytes : -1;
    sc.Duplicates = 120LL * 1000 * 1000 * 1000;
    sc.Discard = js_DiscardOld;
    jerr = 0;
    s = js_AddStream(&si, c->js, &sc, NULL, &jerr);
    if (s != NATS_OK && jerr != JSStreamNameExistErr) {
        return fail(s, jerr, eb, "cluster: cannot create stream '" CLUSTER_EVENTS_STREAM "'");
    }
    if (s == NATS_OK) {
        log_info("cluster: created stream '%s' (subjects %s, %" PRIu64 " replicas)",
                 CLUSTER_EVENTS_STREAM, CLUSTER_EVENTS_SUBJECTS, c->cfg->replicas);
        jsStreamInfo_Destroy(si);
    }
    c->stream_ok = true;
    return 0;
}

int cnats_stream_ensure(struct cnats *c, struct errbuf *eb)
{
    uv_mutex_lock(&c->mu);
    int rc = stream_ensure(c, eb);
    uv_mutex_unlock(&c->mu);
    return rc;
}

int cnats_publish(struct cnats *c, const char *subject, struct span data, const char *msgid,
                  int64_t timeout_ms, uint64_t *seq, bool *dup, struct errbuf *eb)
{
    jsPubOptions po;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;

    if (!cnats_connected(c)) {
        errbuf_set(eb, "cluster: not connected to NATS");
        return -ENOTCONN;
    }
    jsPubOptions_Init(&po);
    po.MsgId = msgid;
    po.MaxWait = timeout_ms;
    po.ExpectStream = CLUSTER_EVENTS_STREAM;
    natsStatus s = js_Publish(&ack, c->js, subject, data.p, (int)data.n, &po, &jerr);
    if (s != NATS_OK) {
        return fail(s, jerr, eb, "cluster: publish");
    }
    *seq = ack->Sequence;
    *dup = ack->Duplicate;
    jsPubAck_Destroy(ack);
    return 0;
}

int cnats_msg_time(struct cnats *c, uint64_t seq, int64_t *time_ns, struct errbuf *eb)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    const char *ts = NULL;

    natsStatus s = js_GetMsg(&m, c->js, CLUSTER_EVENTS_STREAM, seq, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
        errbuf_set(eb, "cluster: message %" PRIu64 " is no longer in the stream", seq);
        natsMsg_Destroy(m);
        return -ENOENT;
    }
    if (s != NATS_OK) {
        return fail(s, jerr, eb, "cluster: get message");
    }
    int rc = 0;
    int64_t t = natsMsg_GetTime(m);
    if (t > 0) {
        *time_ns = t;
    } else if (natsMsgHeader_Get(m, JSTimeStamp, &ts) != NATS_OK || !ts ||
               vg_time_parse_rfc3339(span_str(ts), time_ns) < 0) {
        errbuf_set(eb, "cluster: message %" PRIu64 " has no readable time", seq);
        rc = -EIO;
    }
    natsMsg_Destroy(m);
    return rc;
}

int cnats_sub_open(struct cnats *c, const char *durable, const char *filter, uint64_t start_seq,
                   struct cnats_sub **out, struct errbuf *eb)
{
    jsErrCode jerr = 0;
    jsConsumerInfo *ci = NULL;
    natsStatus s;

    if (!cnats_connected(c)) {
        errbuf_set(eb, "cluster: not connected to NATS");
        return -ENOTCONN;
    }
    s = js_DeleteConsumer(c->js, CLUSTER_EVENTS_STREAM, durable, NULL, &jerr);
    if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
        return fail(s, jerr, eb, "cluster: cannot replace consumer");
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = durable;
    cc.FilterSubject = filter;
    cc.DeliverPolicy = start_seq <= 1 ? js_DeliverAll : js_DeliverByStartSequence;
    cc.OptStartSeq = start_seq <= 1 ? 0 : start_seq;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 60LL * 1000 * 1000 * 1000;
    cc.MaxAckPending = 1024;
    jerr = 0;
    s = js_AddConsumer(&ci, c->js, CLUSTER_EVENTS_STREAM, &cc, NULL, &jerr);
    if (s != NATS_OK) {
        return fail(s, jerr, eb, "cluster: cannot create consumer");
    }
    jsConsumerInfo_Destroy(ci);

    struct cnats_sub *sb = xcalloc(1, sizeof(*sb));
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = CLUSTER_EVENTS_STREAM;
    so.Consumer = durable;
    snprintf(sb->durable, sizeof(sb->durable), "%s", durable);
    jerr = 0;
    s = js_PullSubscribe(&sb->sub, c->js, filter, durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        free(sb);
        return fail(s, jerr, eb, "cluster: cannot bind to consumer");
    }
    sb->c = c;
    *out = sb;
    return 0;
}

int cnats_fetch(struct cnats_sub *s, struct cnats_msg *out, int max, int64_t timeout_ms,
                struct errbuf *eb)
{
    jsErrCode jerr = 0;

    cnats_fetch_done(s);
    natsStatus st = natsSubscription_Fetch(&s->list, s->sub, max, timeout_ms, &jerr);
    if (st == NATS_TIMEOUT) {
        return 0;
    }
    if (st != NATS_OK) {
        return fail(st, jerr, eb, "cluster: fetch");
    }
    s->have_list = true;
    int n = 0;
    for (int i = 0; i < s->list.Count && n < max; i++) {
        natsMsg *m = s->list.Msgs[i];
        jsMsgMetaData *md = NULL;
        if (natsMsg_GetMetaData(&md, m) != NATS_OK) {
            continue; /* not a JetStream message (a status): nothing to store */
        }
        out[n] = (struct cnats_msg){
            .data = { (const uint8_t *)natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m) },
            .stream_seq = md->Sequence.Stream,
            .time_ns = md->Timestamp,
            .pending = md->NumPending,
            .h = m,
        };
        jsMsgMetaData_Destroy(md);
        n++;
    }
    return n;
}

int cnats_ack(struct cnats_msg *m)
{
    return natsMsg_Ack(m->h, NULL) == NATS_OK ? 0 : -EIO;
}

void cnats_fetch_done(struct cnats_sub *s)
{
    if (s->have_list) {
        natsMsgList_Destroy(&s->list);
        s->have_list = false;
    }
}

int cnats_sub_lag(struct cnats_sub *s, uint64_t *pending, uint64_t *ack_pending)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;

    if (js_GetConsumerInfo(&ci, s->c->js, CLUSTER_EVENTS_STREAM, s->durable, NULL, &jerr) !=
        NATS_OK) {
        return -EIO;
    }
    *pending = ci->NumPending;
    *ack_pending = (uint64_t)ci->NumAckPending;
    jsConsumerInfo_Destroy(ci);
    return 0;
}

void cnats_sub_free(struct cnats_sub *s)
{
    if (!s) {
        return;
    }
    cnats_fetch_done(s);
    natsSubscription_Destroy(s->sub);
    free(s);
}

void cnats_free(struct cnats *c)
{
    if (!c) {
        return;
    }
    atomic_store(&c->closing, true);
    jsCtx_Destroy(c->js);
    if (c->nc) {
        natsConnection_Close(c->nc);
        /* The callbacks still due run before the closed one (one thread delivers them). */
        uv_mutex_lock(&c->mu);
        for (int i = 0; i < 50 && !c->closed; i++) {
            (void)uv_cond_timedwait(&c->closed_cond, &c->mu, 100 * 1000000ULL);
        }
        bool closed = c->closed;
        uv_mutex_unlock(&c->mu);
        natsConnection_Destroy(c->nc);
        if (!closed) {
            log_warn("cluster: NATS connection did not report its close in 5 s");
        }
    }
    uv_cond_destroy(&c->closed_cond);
    uv_mutex_destroy(&c->mu);
    free(c);
}

static void copy_name(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

int cnats_stream_status(struct cnats *c, struct cnats_stream_status *out, struct errbuf *eb)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;

    memset(out, 0, sizeof(*out));
    natsStatus s = js_GetStreamInfo(&si, c->js, CLUSTER_EVENTS_STREAM, NULL, &jerr);
    if (s == NATS_OK && si == NULL) {
        s = NATS_NOT_FOUND;
    }
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        errbuf_set(eb, "stream '%s' does not exist (no cluster node has started yet?)",
                   CLUSTER_EVENTS_STREAM);
        return -ENOENT;
    }
    if (s != NATS_OK) {
        return fail(s, jerr, eb, "stream '" CLUSTER_EVENTS_STREAM "'");
    }
    out->msgs = si->State.Msgs;
    out->bytes = si->State.Bytes;
    out->first_seq = si->State.FirstSeq;
    out->last_seq = si->State.LastSeq;
    out->last_ns = si->State.LastTime;
    out->consumers = si->State.Consumers;
    out->replicas = si->Config ? si->Config->Replicas : 0;
    if (si->Cluster) {
        copy_name(out->leader, sizeof(out->leader), si->Cluster->Leader);
        if (si->Cluster->Leader && out->npeers < CNATS_MAX_PEERS) {
            struct cnats_peer *p = &out->peers[out->npeers++];
            copy_name(p->name, sizeof(p->name), si->Cluster->Leader);
            p->leader = p->current = true;
        }
        for (int i = 0; i < si->Cluster->ReplicasLen && out->npeers < CNATS_MAX_PEERS; i++) {
            const jsPeerInfo *r = si->Cluster->Replicas[i];
            struct cnats_peer *p = &out->peers[out->npeers++];
            copy_name(p->name, sizeof(p->name), r->Name);
            p->current = r->Current;
            p->offline = r->Offline;
            p->lag = r->Lag;
            p->active_ns = r->Active;
        }
    }
    jsStreamInfo_Destroy(si);
    return 0;
}

int cnats_consumers(struct cnats *c, struct cnats_consumer_status **out, size_t *n,
                    struct errbuf *eb)
{
    jsConsumerInfoList *list = NULL;
    jsErrCode jerr = 0;

    *out = NULL;
    *n = 0;
    natsStatus s = js_Consumers(&list, c->js, CLUSTER_EVENTS_STREAM, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        return 0; /* none */
    }
    if (s != NATS_OK) {
        return fail(s, jerr, eb, "consumers of '" CLUSTER_EVENTS_STREAM "'");
    }
    struct cnats_consumer_status *v = xcalloc((size_t)list->Count + 1, sizeof(*v));
    for (int i = 0; i < list->Count; i++) {
        const jsConsumerInfo *ci = list->List[i];
        struct cnats_consumer_status *x = &v[i];
        copy_name(x->name, sizeof(x->name), ci->Name);
        copy_name(x->filter, sizeof(x->filter), ci->Config ? ci->Config->FilterSubject : NULL);
        x->delivered = ci->Delivered.Stream;
        /* With nothing awaiting an ack, everything delivered is acknowledged (the
         * server's ack floor of a filtered consumer can stay behind the gaps). */
        x->ack_floor = ci->NumAckPending == 0 ? ci->Delivered.Stream : ci->AckFloor.Stream;
        x->pending = ci->NumPending;
        x->ack_pending = (uint64_t)ci->NumAckPending;
        x->redelivered = (uint64_t)ci->NumRedelivered;
        x->waiting = ci->NumWaiting;
        x->last_active_ns = ci->Delivered.Last;
        if (ci->Cluster) {
            copy_name(x->leader, sizeof(x->leader), ci->Cluster->Leader);
        }
    }
    *n = (size_t)list->Count;
    *out = v;
    jsConsumerInfoList_Destroy(list);
    return 0;
}

void cnats_shutdown(void)
{
    nats_CloseAndWait(2000);
}
