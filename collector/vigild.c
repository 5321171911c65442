/* collector/vigild.c: wires the daemon's parts and starts and stops them on the loop
 * thread: the ingest port (the pipeline, which owns the store thread) that listeners and
 * rules feed, the listeners, the live rules, signals, and the readiness notifications
 * systemd's Type=notify waits for (<systemd/sd-daemon.h> is used only here). */
#include "collector/vigild.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "collector/admin.h"
#include "common/cnats.h"
#include "collector/cluster_store.h"
#include "collector/conn.h"
#include "collector/forward_in.h"
#include "collector/https.h"
#include "collector/js_sink.h"
#include "collector/pipeline.h"
#include "collector/rules_live.h"
#include "collector/store_sink.h"
#include "collector/syslog_in.h"
#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "forwarders/fwd.h"

/* The ingest port of a one-process vigild: the pipeline (ingest.h). */
static int port_ingest(void *ctx, struct rec *r)
{
    struct vigild *vd = ctx;
    int rc = pipeline_add(vd->pipe, r);

    /* vigil_agent_events_total: the listeners stamp agent (the client certificate). A
     * unit's events count once it is kept (one connection, one agent). */
    if (rc == 0 && r->str[VG_F_AGENT].n > 0) {
        if (vd->unit.open) {
            vd->unit.agent = r->str[VG_F_AGENT];
            vd->unit.events++;
        } else {
            metrics_labels_add(&vd->m.agent_events, METRICS_MAX_AGENTS, r->str[VG_F_AGENT],
                               (struct span){ NULL, 0 }, 1);
        }
    }
    return rc;
}

static void port_unit_begin(void *ctx)
{
    struct vigild *vd = ctx;

    assert(!vd->unit.open);
    vd->unit.open = true;
    vd->unit.events = 0;
    pipeline_mark(vd->pipe, &vd->unit.mark);
}

static void port_unit_end(void *ctx, bool keep)
{
    struct vigild *vd = ctx;

    assert(vd->unit.open);
    vd->unit.open = false;
    if (!keep) {
        pipeline_rollback(vd->pipe, &vd->unit.mark);
    } else if (vd->unit.events > 0) {
        metrics_labels_add(&vd->m.agent_events, METRICS_MAX_AGENTS, vd->unit.agent,
                           (struct span){ NULL, 0 }, vd->unit.events);
    }
}

static void port_when_durable(void *ctx, ingest_done_fn fn, void *arg)
{
    struct vigild *vd = ctx;
    pipeline_when_durable(vd->pipe, fn, arg);
}

static void port_evidence(void *ctx, const struct ingest_evidence *ev)
{
    struct vigild *vd = ctx;
    struct rec r;

    if (!vd->pipe || vd->stopping) {
        log_info("not recorded (stopping): %s", ev->message);
        return;
    }
    assert(!vd->unit.open); /* evidence is recorded after a unit (ingest.h) */
    ingest_evidence_rec(ev, vd->self_host, &r);
    /* Evidence: it has room of its own in the batch and an allowance below
     * store.free_reserve (pipeline.h). */
    if (pipeline_add_evidence(vd->pipe, &r, ev->stranger) < 0) {
        vd->m.vigil_events_dropped++;
        log_warn("self-event not recorded (batch full): %s", ev->message);
        return;
    }
    vd->m.vigil_events++;
}

static bool port_full(void *ctx)
{
    struct vigild *vd = ctx;
    return pipeline_full(vd->pipe);
}

static const struct ingest_port_ops vigild_port_ops = {
    .ingest = port_ingest,
    .when_durable = port_when_durable,
    .evidence = port_evidence,
    .full = port_full,
    .unit_begin = port_unit_begin,
    .unit_end = port_unit_end,
};

static void on_drain(void *arg)
{
    struct vigild *vd = arg;
    conn_resume_all(&vd->conns);
}

/* The keeper's findings become source=vigil evidence (store/keeper.h). */
static void on_store_notice(void *arg, const struct store_notice *n)
{
    struct vigild *vd = arg;
    const struct store_deleted *d = &n->del;
    char t0[40];
    char t1[40];

    switch (n->kind) {
    case STORE_NOTICE_DISK_FULL:
        ingest_self_event(&vd->port, VG_SEV_CRITICAL, "disk_full", "failure", NULL, NULL,
                          "store disk has %" PRIu64
                          " bytes free, below store.free_reserve (%" PRIu64
                          "): events are refused and not acknowledged until space returns",
                          n->free_bytes, n->reserve_bytes);
        break;
    case STORE_NOTICE_DISK_OK:
        ingest_self_event(&vd->port, VG_SEV_NOTICE, "disk_full", "success", NULL, NULL,
                          "store disk has %" PRIu64 " bytes free again (store.free_reserve %" PRIu64
                          "): accepting events after %.1f s; %" PRIu64 " events were refused",
                          n->free_bytes, n->reserve_bytes, (double)n->duration_ns / 1e9,
                          n->refused);
        break;
    case STORE_NOTICE_DELETED:
        vg_time_format(d->part_start, 0, t0, sizeof(t0));
        vg_time_format(d->part_end, 0, t1, sizeof(t1));
        ingest_self_event(&vd->port, VG_SEV_NOTICE, "retention_delete", "success", NULL, NULL,
                          "retention (%s) deleted segment %s: partition %s .. %s, %" PRIu64
                          " events, %" PRIu64 " bytes; recorded in the catalog's deletions",
                          d->reason, d->file, t0, t1, d->count, d->bytes);
        break;
    case STORE_NOTICE_DELETED_MORE:
        ingest_self_event(&vd->port, VG_SEV_NOTICE, "retention_delete", "success", NULL, NULL,
                          "retention deleted %" PRIu64 " more segments (see the catalog's "
                          "deletions and vigil verify)",
                          n->count);
        break;
    }
}

static void on_signal_handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* The admin listener starts before the forwarders and the rules exist: it finds them at
 * each render. */
static int render_more_metrics(const void *arg, struct buf *out)
{
    const struct vigild *vd = arg;
    int rc = fwd_metrics_render(vd->fwd, out);
    if (rc == 0 && vd->cstore) {
        rc = cluster_store_render(vd->cstore, out);
    }
    return rc < 0 ? rc : rules_live_metrics(vd->rules, out);
}

/* The connection to NATS came or went (js_sink.h): evidence, published once it is back. */
static void on_nats_state(void *arg, bool connected)
{
    struct vigild *vd = arg;

    if (connected) {
        ingest_self_event(&vd->port, VG_SEV_NOTICE, "nats_connection", "success", NULL, NULL,
                          "connected to NATS again: events are taken and acknowledged");
    } else {
        ingest_self_event(&vd->port, VG_SEV_ERROR, "nats_connection", "failure", NULL, NULL,
                          "not connected to NATS (cluster.nats): events are refused and not "
                          "acknowledged until it is back");
    }
}

/* This node's name: cluster.node, or the host name with what JetStream names do not take
 * made '-'. */
static void cluster_node_name(struct vigild *vd)
{
    const char *n = vd->cfg->cluster.node ? vd->cfg->cluster.node : vd->self_host;

    snprintf(vd->node, sizeof(vd->node), "%.64s", *n ? n : "vigild");
    for (char *p = vd->node; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
        *p = ok ? *p : '-';
    }
}

void vigild_cluster_stop(struct vigild *vd)
{
    cluster_store_stop(vd->cstore);
    vd->cstore = NULL;
}

static void on_fwd_closed(void *arg)
{
    struct vigild *vd = arg;

    uv_close((uv_handle_t *)&vd->sig_term, on_signal_handle_closed);
    uv_close((uv_handle_t *)&vd->sig_int, on_signal_handle_closed);
    uv_close((uv_handle_t *)&vd->sig_hup, on_signal_handle_closed);
}

static void on_pipeline_closed(void *arg)
{
    struct vigild *vd = arg;

    log_info("store closed; %" PRIu64 " events stored in this run", vd->m.events_stored);
    /* After the pipeline's last records: the forwarders enqueue what came with them and
     * record their cursor before the loop may end. */
    if (vd->fwd) {
        fwd_close(vd->fwd, on_fwd_closed, vd);
        return;
    }
    uv_close((uv_handle_t *)&vd->sig_term, on_signal_handle_closed);
    uv_close((uv_handle_t *)&vd->sig_int, on_signal_handle_closed);
    uv_close((uv_handle_t *)&vd->sig_hup, on_signal_handle_closed);
}

/* ---- TLS files: the CRL's dates, reloading ------------------------------------------ */

int vigild_check_crl(const struct vg_config *cfg, int64_t *next_ns, struct errbuf *eb)
{
    struct tls_crl_info ci;
    int rc;

    *next_ns = 0;
    if (!cfg->tls.crl || cfg->listen.insecure) {
        return 0;
    }
    if ((rc = tls_crl_read(cfg->tls.crl, vg_now_ns(), &ci, eb)) < 0) {
        return rc;
    }
    *next_ns = ci.next_update_ns;
    if (!ci.expired) {
        return 0;
    }
    if (strcmp(cfg->tls.crl_expired, "warn") == 0) {
        log_warn("tls.crl '%s' is past its next update (%s): client certificates are still "
                 "checked against it (tls.crl_expired: warn); renew it",
                 cfg->tls.crl, ci.next_update);
        return 0;
    }
    return config_error(cfg, &cfg->tls.crl, eb,
                        "'%s' is past its next update (%s): every client certificate would "
                        "be refused; renew the CRL, or set tls.crl_expired: warn",
                        cfg->tls.crl, ci.next_update);
}

/* Pool thread: builds the new context from the files as they are now. */
static void reload_work(uv_work_t *w)
{
    struct vigild *vd = w->data;
    const struct tls_cfg *t = &vd->cfg->tls;
    struct errbuf eb;
    struct tls_crl_info ci = { 0 };

    errbuf_clear(&eb);
    vd->reload.fresh = NULL;
    vd->reload.crl_expired = false;
    vd->reload.crl_next_ns = 0;
    vd->reload.rc = t->crl ? tls_crl_read(t->crl, vg_now_ns(), &ci, &eb) : 0;
    if (vd->reload.rc == 0 && ci.expired && strcmp(t->crl_expired, "warn") != 0) {
        errbuf_set(&eb, "tls.crl '%s' is past its next update (%s) (tls.crl_expired: refuse)",
                   t->crl, ci.next_update);
        vd->reload.rc = VG_ECONFIG;
    }
    if (vd->reload.rc == 0) {
        vd->reload.rc = tls_server_ctx_new(t->ca, t->cert, t->key, t->crl, &vd->reload.fresh, &eb);
    }
    snprintf(vd->reload.err, sizeof(vd->reload.err), "%s", errbuf_msg(&eb));
    vd->reload.crl_expired = ci.expired;
    vd->reload.crl_next_ns = ci.next_update_ns;
    if (t->crl) {
        snprintf(vd->reload.summary, sizeof(vd->reload.summary),
                 "CRL '%s': %" PRIu64 " revoked, next update %s%s", t->crl, ci.revoked,
                 ci.next_update, ci.expired ? " (passed)" : "");
    } else {
        snprintf(vd->reload.summary, sizeof(vd->reload.summary), "no CRL");
    }
}

static void reload_done(uv_work_t *w, int status)
{
    struct vigild *vd = w->data;

    vd->reload.busy = false;
    if (status < 0 || vd->stopping) {
        tls_ctx_free(vd->reload.fresh);
        vd->reload.fresh = NULL;
        return;
    }
    if (vd->reload.rc == 0) {
        tls_ctx_set_crl_stale_ok(vd->reload.fresh, strcmp(vd->cfg->tls.crl_expired, "warn") == 0);
        tls_ctx_swap(vd->tls, vd->reload.fresh); /* new handshakes use the new files */
        vd->reload.fresh = NULL;
        vd->m.tls_reloads++;
        vd->m.tls_crl_next_update_ns = vd->reload.crl_next_ns;
        log_info("TLS files reloaded (%s): CA '%s', certificate '%s', %s", vd->reload.why,
                 vd->cfg->tls.ca, vd->cfg->tls.cert, vd->reload.summary);
        ingest_self_event(&vd->port, vd->reload.crl_expired ? VG_SEV_WARNING : VG_SEV_NOTICE,
                          "tls_reload", "success", NULL, NULL,
                          "TLS files reloaded (%s): CA '%s', certificate '%s', %s; new "
                          "connections are verified against them",
                          vd->reload.why, vd->cfg->tls.ca, vd->cfg->tls.cert, vd->reload.summary);
    } else {
        vd->m.tls_reload_failures++;
        log_error("TLS files not reloaded (%s): %s; the ones loaded before stay in force",
                  vd->reload.why, vd->reload.err);
        ingest_self_event(&vd->port, VG_SEV_ERROR, "tls_reload", "failure", NULL, NULL,
                          "TLS files not reloaded (%s): %s; the certificates and CRL loaded "
                          "before stay in force",
                          vd->reload.why, vd->reload.err);
    }
    if (vd->reload.again) {
        vd->reload.again = false;
        vigild_reload_tls(vd, "changed again during the last reload");
    }
}

void vigild_reload_tls(struct vigild *vd, const char *why)
{
    if (!vd->tls || vd->stopping) {
        return;
    }
    if (vd->reload.busy) {
        vd->reload.again = true;
        return;
    }
    vd->reload.busy = true;
    snprintf(vd->reload.why, sizeof(vd->reload.why), "%s", why);
    vd->reload.work.data = vd;
    if (uv_queue_work(vd->loop, &vd->reload.work, reload_work, reload_done) < 0) {
        vd->reload.busy = false;
        log_error("TLS files not reloaded (%s): cannot queue the work", why);
    }
}

static void on_settled(uv_timer_t *t)
{
    struct vigild *vd = t->data;
    vigild_reload_tls(vd, "a TLS file changed");
}

/* A TLS file's stat changed: reload once the change has settled (a certificate and its
 * key are often replaced one after the other). */
static void on_tls_file(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    struct vigild *vd = h->data;

    (void)prev;
    (void)curr;
    if (status < 0 && status != UV_ENOENT) {
        return;
    }
    uv_timer_start(&vd->reload.settle, on_settled, 500, 0);
}

static void watch_tls_files(struct vigild *vd)
{
    const struct tls_cfg *t = &vd->cfg->tls;
    const char *files[] = { t->ca, t->cert, t->key, t->crl };
    uint64_t every_ms = (uint64_t)(t->watch_interval_ns / 1000000);

    if (!vd->tls || every_ms == 0) {
        return;
    }
    uv_timer_init(vd->loop, &vd->reload.settle);
    vd->reload.settle.data = vd;
    vd->reload.settle_on = true;
    for (size_t i = 0; i < VG_ARRAY_LEN(files); i++) {
        if (!files[i]) {
            continue;
        }
        uv_fs_poll_t *h = &vd->reload.watch[vd->reload.nwatch++];
        uv_fs_poll_init(vd->loop, h);
        h->data = vd;
        uv_fs_poll_start(h, on_tls_file, files[i], (unsigned)every_ms);
    }
}

static void unwatch_tls_files(struct vigild *vd)
{
    for (int i = 0; i < vd->reload.nwatch; i++) {
        uv_close((uv_handle_t *)&vd->reload.watch[i], NULL);
    }
    vd->reload.nwatch = 0;
    if (vd->reload.settle_on) {
        vd->reload.settle_on = false;
        uv_close((uv_handle_t *)&vd->reload.settle, NULL);
    }
}

/* Checks each loop iteration during shutdown whether connections have drained. */
static void on_stop_poll(uv_timer_t *t)
{
    struct vigild *vd = t->data;

    if (vd->conns.conns == NULL) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, (uv_close_cb)NULL);
        pipeline_close(vd->pipe, on_pipeline_closed, vd);
    }
}

void vigild_stop(struct vigild *vd)
{
    if (vd->stopping) {
        return;
    }
    log_info("stopping: no new connections; waiting for in-flight events to be durable "
             "and acknowledged");
    conn_set_close(&vd->conns); /* the last refusal summaries, while evidence is taken */
    unwatch_tls_files(vd);
    vd->stopping = true;
    int rc = sd_notify(0, "STOPPING=1\nSTATUS=stopping: draining connections");
    if (rc < 0) {
        log_warn("cannot notify systemd (NOTIFY_SOCKET): %s", strerror(-rc));
    }
    rules_live_stop(vd->rules);
    vigild_unlisten(vd);
    conn_drain_all(&vd->conns);
    /* Connections finish as their last acks go out; poll cheaply until none remain. */
    uv_timer_init(vd->loop, &vd->stop_timer);
    vd->stop_timer.data = vd;
    uv_timer_start(&vd->stop_timer, on_stop_poll, 0, 10);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct vigild *vd = h->data;

    if (signum == SIGHUP) {
        vigild_reload_tls(vd, "SIGHUP");
        if (vd->rules) {
            log_info("SIGHUP: reloading rules");
            rules_live_reload(vd->rules);
        } else {
            log_info("SIGHUP: no rules configured; no rules to reload");
        }
        log_info("SIGHUP: reloading forwarders from '%s'", vd->cfg->file ? vd->cfg->file : "?");
        fwd_reload(vd->fwd, vd->cfg->file);
        return;
    }
    log_info("%s received", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    vigild_stop(vd);
}

/* limits.memory when the config leaves it 0: a quarter of what vigild may use (its
 * cgroup's memory.max when there is one, else the machine's RAM), 64 MiB..8 GiB. */
static uint64_t memory_auto(uint64_t *total_out)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    uint64_t total = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 1ULL << 30;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");

    if (f) {
        char line[64];
        uint64_t v;
        if (fgets(line, sizeof(line), f) &&
            parse_u64((struct span){ (const uint8_t *)line, strcspn(line, "\n") }, UINT64_MAX,
                      &v) == 0 &&
            v < total) {
            total = v; /* "max" (no limit) does not parse */
        }
        fclose(f);
    }
    *total_out = total;
    uint64_t q = total / 4;
    return q < (64ULL << 20) ? 64ULL << 20 : q > (8ULL << 30) ? 8ULL << 30 : q;
}

/* Reads listen.shared_key_file: the key is the file's first line. */
static int load_shared_key(struct vigild *vd, const char *path, struct errbuf *eb)
{
    FILE *f = fopen(path, "r");
    char line[1024];

    if (!f) {
        errbuf_set(eb, "listen.shared_key_file: cannot open '%s': %s", path, strerror(errno));
        return -errno;
    }
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    size_t n = ok ? strcspn(line, "\r\n") : 0;
    if (n == 0) {
        errbuf_set(eb, "listen.shared_key_file: '%s' holds no key on its first line", path);
        return VG_ECONFIG;
    }
    line[n] = 0;
    vd->shared_key = xstrdup(line);
    memset(line, 0, sizeof(line));
    return 0;
}

/* The rules' clock follows the wall clock only while no record is on its way to them. */
static bool rules_idle(void *arg)
{
    struct vigild *vd = arg;
    return vd->pipe && pipeline_idle(vd->pipe);
}

int vigild_load_rules(struct vigild *vd, struct errbuf *eb)
{
    struct rules_live_env env = {
        .loop = vd->loop,
        .cfg = &vd->cfg->rules,
        .state_dir = vd->cfg->store.path,
        .self_host = vd->self_host,
        .port = &vd->port,
        .m = &vd->m,
        .idle = rules_idle,
        .idle_arg = vd,
    };

    vd->port = (struct ingest_port){ &vigild_port_ops, vd };
    return rules_live_new(&env, &vd->rules, eb);
}

int vigild_listen(struct vigild *vd, struct errbuf *eb)
{
    struct vg_config *cfg = vd->cfg;
    static const struct {
        enum listener_kind kind;
        const struct conn_proto *proto;
    } protos[] = {
        { LST_FORWARD, &forward_in_proto },
        { LST_SYSLOG, &syslog_in_proto },
        { LST_HTTPS, &https_proto },
        { LST_ADMIN, &admin_proto },
    };
    const struct cfg_addr *addrs[LST_COUNT] = {
        [LST_FORWARD] = &cfg->listen.forward,
        [LST_SYSLOG] = &cfg->listen.syslog,
        [LST_HTTPS] = &cfg->listen.https,
        [LST_ADMIN] = &cfg->listen.admin,
    };
    int rc;

    /* The port reaches the pipeline only when events arrive, after vigild_start. */
    vd->port = (struct ingest_port){ &vigild_port_ops, vd };
    conn_set_init(&vd->conns, vd->loop);
    if (cfg->listen.shared_key_file &&
        (rc = load_shared_key(vd, cfg->listen.shared_key_file, eb)) < 0) {
        return rc;
    }
    if (gethostname(vd->self_host, sizeof(vd->self_host) - 1) != 0) {
        snprintf(vd->self_host, sizeof(vd->self_host), "vigild");
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(protos); i++) {
        enum listener_kind k = protos[i].kind;
        const struct cfg_addr *a = addrs[k];
        if (!a->enabled) {
            continue;
        }
        bool tls = k != LST_ADMIN && !cfg->listen.insecure;
        const struct tls_policy *policy = NULL;
        if (tls) {
            /* tls.agents, or the listener's own rule (listener kinds and rules share
             * their order: forward, syslog, https). */
            static const char *const names[LST_RULES] = { "tls.agents.forward", "tls.agents.syslog",
                                                          "tls.agents.https" };
            const struct agents_rule *r =
                cfg->tls.agents.lst[k].set ? &cfg->tls.agents.lst[k] : &cfg->tls.agents.all;
            vd->policy[k] = (struct tls_policy){
                .name = cfg->tls.agents.lst[k].set ? names[k] : "tls.agents",
                .any = r->any,
                .ous = r->ous,
                .nous = r->nous,
                .subjects = r->subjects,
                .nsubjects = r->nsubjects,
                .san_uris = r->san_uris,
                .nsan_uris = r->nsan_uris,
                .oids = r->oids,
                .noids = r->noids,
            };
            policy = &vd->policy[k];
        }
        struct listener_env env = {
            .set = &vd->conns,
            .kind = k,
            .cfg = &cfg->listen,
            .handshake_timeout_ns = cfg->tls.handshake_timeout_ns,
            .tls = tls ? vd->tls : NULL,
            .policy = policy,
            .m = &vd->m.lst[k],
            .port = &vd->port,
            .self_host = vd->self_host,
            .shared_key = vd->shared_key,
            .all = &vd->m,
            .render_more = render_more_metrics,
            .render_arg = vd,
        };
        rc = listener_start(&env, protos[i].proto, a->host, a->port, &vd->lst[k], eb);
        if (rc < 0) {
            vigild_unlisten(vd);
            return rc;
        }
        log_info("listening: %s on %s (%s)", listener_kind_name(k), vd->lst[k]->addr,
                 tls ? "TLS, client certificates required" : "plain");
    }
    return 0;
}

void vigild_unlisten(struct vigild *vd)
{
    for (int k = 0; k < LST_COUNT; k++) {
        listener_close(vd->lst[k]);
        vd->lst[k] = NULL;
    }
}

int vigild_start(struct vigild *vd, struct store *st, struct errbuf *eb)
{
    struct vg_config *cfg = vd->cfg;
    char ready[512] = "";
    size_t rn = 0;
    int rc;

    vd->m.started_ns = vg_now_ns();
    /* The store thread's housekeeping (store/keeper.h). */
    struct store_keeper_opts ko = {
        .free_dir = cfg->store.path,
        .free_reserve_bytes = cfg->store.free_reserve_bytes,
        .retention = { cfg->store.max_age_ns, cfg->store.max_size_bytes },
        .retention_every_ns = cfg->store.retain_every_ns,
        .compact = strcmp(cfg->store.compaction, "off") != 0,
        /* The defaults (zstd 6): on the bench mix zstd 3 was 16% larger for 16% less
         * time, most of which goes to walking and re-indexing, not to zstd. */
        .compact_opts = { .codec = strcmp(cfg->store.compaction, "lz4hc") == 0 ? STORE_CODEC_LZ4HC
                                                                               : STORE_CODEC_ZSTD },
    };
    uint64_t first_seq = st ? store_next_seq(st) : 1;
    struct pipeline_sink ps;
    struct store_sink *sink = NULL;
    struct js_sink *jsink = NULL;
    if (cfg->cluster.enabled) {
        /* A cluster node: its pipeline publishes (its events with the ingest role, its
         * own evidence in any case); the store role reads its shards back. */
        struct cnats *nats = NULL;
        char name[200];
        cluster_node_name(vd);
        snprintf(name, sizeof(name), "vigild %s", vd->node);
        if ((rc = cnats_connect(&cfg->cluster, name, CNATS_BACKGROUND, &nats, eb)) < 0) {
            return rc;
        }
        js_sink_new(nats, &cfg->cluster, vd->node, &vd->m, on_nats_state, vd, &jsink);
        ps = js_sink_as_pipeline(jsink);
        if ((cfg->cluster.role_mask & CLUSTER_ROLE_STORE) &&
            (rc = cluster_store_start(cfg, vd->node, &vd->cstore, eb)) < 0) {
            js_sink_free(jsink);
            return rc;
        }
        log_info("cluster: node '%s', roles%s%s, %" PRIu64 " shards, NATS %s%s", vd->node,
                 (cfg->cluster.role_mask & CLUSTER_ROLE_INGEST) ? " ingest" : "",
                 (cfg->cluster.role_mask & CLUSTER_ROLE_STORE) ? " store" : "", cfg->cluster.shards,
                 cfg->cluster.nats[0], cfg->cluster.nnats > 1 ? ", ..." : "");
    } else {
        if ((rc = store_sink_new(st, &ko, &vd->m, on_store_notice, vd, &sink, eb)) < 0) {
            return rc;
        }
        ps = store_sink_as_pipeline(sink);
    }
    /* Batches: 8 MiB soft limit; one message may add four times the largest frame
     * (records carry the normalized fields beside the raw event); 1 MiB more is kept for
     * evidence. Below store.free_reserve, evidence may use store.evidence_reserve per
     * episode, at most half the reserve, a quarter of it for strangers. */
    uint64_t ev_bytes = cfg->store.evidence_reserve_bytes;
    if (ev_bytes > cfg->store.free_reserve_bytes / 2 && cfg->store.free_reserve_bytes > 0) {
        ev_bytes = cfg->store.free_reserve_bytes / 2;
    }
    struct pipeline_limits lim = {
        .batch_max_bytes = 8u << 20,
        .batch_slack_bytes = 4 * (size_t)cfg->listen.max_frame_bytes + (1u << 20),
        .evidence_room = 1u << 20,
        .refusing_evidence_bytes = ev_bytes,
        .refusing_stranger_bytes = ev_bytes / 4,
    };
    rc = pipeline_new(vd->loop, &ps, first_seq, &lim, &vd->m, on_drain, vd, &vd->pipe, eb);
    if (rc < 0) {
        store_sink_free(sink);
        js_sink_free(jsink);
        return rc;
    }
    if (vd->rules) {
        if ((rc = pipeline_subscribe(vd->pipe, rules_live_on_record, vd->rules)) < 0) {
            errbuf_set(eb, "rules: cannot subscribe to durable records: %s", vg_strerror(rc));
            return rc;
        }
        rules_live_start(vd->rules);
    }
    /* After the rules: the alerts they add to a batch reach the forwarders when that
     * batch is durable, like any record. */
    if ((rc = pipeline_subscribe(vd->pipe, fwd_on_record, vd->fwd)) < 0) {
        errbuf_set(eb, "forwarders: cannot subscribe to durable records: %s", vg_strerror(rc));
        return rc;
    }
    fwd_start(vd->fwd);
    /* Strangers on the TLS listeners (guard.h): connections are accepted from now on. */
    struct guard_cfg gc = {
        .max_handshakes = cfg->listen.max_handshakes,
        .max_handshakes_per_ip = cfg->listen.max_handshakes_per_ip,
        .accept_rate = cfg->listen.accept_rate_per_ip,
        .accept_burst = cfg->listen.accept_burst_per_ip,
        .interval_ns = cfg->listen.refusal_interval_ns,
    };
    conn_set_guard(&vd->conns, &gc, &vd->port, &vd->m);
    uint64_t mem = cfg->limits.memory_bytes;
    if (mem == 0) {
        uint64_t total;
        mem = memory_auto(&total);
        if (mem < 4 * cfg->listen.max_frame_bytes) {
            mem = 4 * cfg->listen.max_frame_bytes; /* a frame of the largest size fits */
        }
        log_info("limits.memory: %" PRIu64 " MiB for connection buffers (a quarter of the %" PRIu64
                 " MiB vigild may use)",
                 mem >> 20, total >> 20);
    }
    conn_set_memory(&vd->conns, mem, &vd->m);
    if (vd->tls) {
        int64_t next_ns = 0;
        struct errbuf ceb;
        errbuf_clear(&ceb);
        vd->m.tls_crl_refuse = strcmp(cfg->tls.crl_expired, "warn") != 0;
        if (vigild_check_crl(cfg, &next_ns, &ceb) == 0 && next_ns > 0) {
            vd->m.tls_crl_next_update_ns = next_ns;
            if (next_ns < vg_now_ns()) {
                ingest_self_event(&vd->port, VG_SEV_WARNING, "tls_crl", "failure", NULL, NULL,
                                  "tls.crl '%s' is past its next update: client certificates "
                                  "are checked against it all the same (tls.crl_expired: warn)",
                                  cfg->tls.crl);
            }
        }
        watch_tls_files(vd);
    }
    uv_signal_init(vd->loop, &vd->sig_term);
    uv_signal_init(vd->loop, &vd->sig_int);
    uv_signal_init(vd->loop, &vd->sig_hup);
    vd->sig_term.data = vd->sig_int.data = vd->sig_hup.data = vd;
    uv_signal_start(&vd->sig_term, on_signal, SIGTERM);
    uv_signal_start(&vd->sig_int, on_signal, SIGINT);
    uv_signal_start(&vd->sig_hup, on_signal, SIGHUP);
    for (int k = 0; k < LST_COUNT; k++) {
        if (vd->lst[k]) {
            rn += (size_t)snprintf(ready + rn, sizeof(ready) - rn, "%s=%s ",
                                   listener_kind_name((enum listener_kind)k), vd->lst[k]->addr);
        }
    }
    log_info("ready: %spid=%d", ready, (int)getpid());
    if (vd->ready_fd >= 0) {
        char line[600];
        int n = snprintf(line, sizeof(line), "ready %spid=%d\n", ready, (int)getpid());
        if (write(vd->ready_fd, line, (size_t)n) != n) {
            log_warn("cannot write the ready line to fd %d: %s", vd->ready_fd, strerror(errno));
        }
        close(vd->ready_fd);
        vd->ready_fd = -1;
    }
    /* systemd (Type=notify): the unit is started once the listeners take connections.
     * Without NOTIFY_SOCKET this does nothing. */
    rc = sd_notifyf(0, "READY=1\nSTATUS=ready: %s\nMAINPID=%d", ready, (int)getpid());
    if (rc < 0) {
        log_warn("cannot notify systemd (NOTIFY_SOCKET): %s", strerror(-rc));
    }
    return 0;
}
