/* collector/vigild.h: the daemon's state. One struct vigild per process, owned by the
 * loop thread; the only mutable state outside it is the log threshold. */
#ifndef VG_COLLECTOR_VIGILD_H
#define VG_COLLECTOR_VIGILD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "collector/conn.h"
#include "collector/ingest.h"
#include "collector/metrics.h"
#include "collector/pipeline.h"
#include "common/config.h"
#include "common/tls.h"
#include "schemas/record.h"
#include "store/store.h"

struct cluster_store;
struct fwd;
struct listener;
struct rules_live;

/* vigild wires its parts and owns them: the listeners and their connections (conn.h)
 * see only the ingest port below, the live rules only theirs (rules_live.h), the
 * pipeline only its sink; nothing calls back into this file but through them. */
struct vigild {
    uv_loop_t *loop;
    struct vg_config *cfg;
    struct tls_ctx *tls; /* NULL when listen.insecure */
    struct pipeline *pipe;
    struct rules_live *rules; /* NULL without rules.paths */
    struct fwd *fwd;          /* the forwarders (forwarders/fwd.h); made in main */
    struct listener *lst[LST_COUNT];
    /* cluster: (cfg->cluster.enabled): this node's name, and the store role's shards
     * (NULL without the store role). The pipeline's sink is then JetStream. */
    char node[80];
    struct cluster_store *cstore;
    struct metrics m;
    struct conn_set conns;   /* every open connection */
    struct ingest_port port; /* the pipeline, as listeners and rules see it */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t stop_timer; /* shutdown: polls until every connection has drained */
    bool stopping;
    int ready_fd;                        /* -1, or where the "ready" line goes once listening */
    char self_host[256];                 /* host name stamped on source=vigil events */
    char *shared_key;                    /* Forward shared key (listen.shared_key_file), or NULL */
    struct tls_policy policy[LST_RULES]; /* tls.agents per TLS listener (forward, syslog,
                                            https), pointing into cfg */
    /* Reloading the TLS files (SIGHUP, or one of them changed: tls.watch_interval). */
    struct {
        uv_fs_poll_t watch[4]; /* ca, cert, key, crl */
        int nwatch;
        uv_timer_t settle; /* files seen changing: reload once they settle */
        bool settle_on;    /* settle is initialized */
        uv_work_t work;
        bool busy;             /* a reload is being built on the pool */
        bool again;            /* another was asked for meanwhile */
        char why[300];         /* what asked for the one being built */
        struct tls_ctx *fresh; /* built by the pool thread */
        int rc;
        char err[512];
        char summary[512];
        bool crl_expired;
        int64_t crl_next_ns;
    } reload;
    /* The port's open unit (ingest.h): where the batch stood, and its events per agent
     * (counted in vigil_agent_events_total only if the unit is kept). */
    struct {
        bool open;
        struct pipeline_mark mark;
        struct span agent;
        uint64_t events;
    } unit;
};

/* Records a source=vigil evidence event (refused handshake, rejected input...) through
 * the daemon's port: ingest_self_event (ingest.h). Never fails: when the batch is full
 * the event is counted as dropped and logged. */
#define vigild_self_event(vd, ...) ingest_self_event(&(vd)->port, __VA_ARGS__)

/* Loads the rules of cfg->rules.paths into vd->rules (NULL without paths), blocking:
 * before the loop runs. Returns 0 or negative with eb (rules_live_new). */
int vigild_load_rules(struct vigild *vd, struct errbuf *eb);

/* Binds and listens on every enabled listener. Connections are accepted only once the
 * loop runs, so main can drop privileges and open the store in between. On failure the
 * listeners bound so far are closed (their handles finish closing when the loop runs).
 * Returns 0 or negative with eb. */
int vigild_listen(struct vigild *vd, struct errbuf *eb);
/* Closes the listeners (idempotent). */
void vigild_unlisten(struct vigild *vd);

/* Starts the pipeline (taking ownership of st) and signal handling, then says ready
 * (--ready-fd, systemd's NOTIFY_SOCKET). Call after vigild_listen. In a cluster (st is
 * NULL) the pipeline publishes to JetStream (js_sink.h) and, with the store role, the
 * shards' consumers start (cluster_store.h; stopped by vigild_cluster_stop once the loop
 * has ended). Returns 0 or negative with eb. */
int vigild_start(struct vigild *vd, struct store *st, struct errbuf *eb);

/* Checks the configured CRL's next update against tls.crl_expired: 0, or VG_ECONFIG with
 * eb when it has passed and the config says refuse (a warning is logged under warn).
 * *next_ns gets the next update (0: no CRL). Blocks (reads the file). */
int vigild_check_crl(const struct vg_config *cfg, int64_t *next_ns, struct errbuf *eb);

/* Reloads the TLS files (ca, cert, key, crl) in the background, then swaps them in and
 * records the result (log and a source=vigil tls_reload event); a failed reload keeps
 * the files in force. why: what asked for it, for the record. */
void vigild_reload_tls(struct vigild *vd, const char *why);

/* After the loop ended: stops the store role's threads and closes the shards' stores,
 * then cnats. Blocks. */
void vigild_cluster_stop(struct vigild *vd);

/* Graceful stop: stop accepting, let in-flight events become durable and be
 * acknowledged, close connections, close the store. The loop then ends. */
void vigild_stop(struct vigild *vd);

#endif
