/* collector/rules_live.h: the Sigma rule engine inside vigild. Every record, once it is
 * durable, runs through the compiled rule set in seq order (the order `vigil hunt`
 * replays); each firing becomes a kind=alert record ingested like any event. The
 * correlation state is checkpointed to <store>/rules.state (every 10 s off the loop,
 * and at stop) and restored at start, so a restart does not forget an attack in
 * progress. Windows close on the event clock (the newest event time, moved on by wall
 * time while nothing arrives), so an agent's old backlog correlates as it would have
 * live. SIGHUP reloads the rules (loaded off the loop) keeping the state of
 * unchanged rules. Loop thread. */
#ifndef VG_COLLECTOR_RULES_LIVE_H
#define VG_COLLECTOR_RULES_LIVE_H

#include <stdint.h>
#include <uv.h>

#include "collector/ingest.h"
#include "collector/metrics.h"
#include "common/config.h"
#include "common/errbuf.h"
#include "common/span.h"

struct rules_live;

/* What the live rules work with. The pointers must outlive the struct rules_live. */
struct rules_live_env {
    uv_loop_t *loop;
    const struct rules_cfg *cfg; /* rules.paths */
    const char *state_dir;       /* store.path: the checkpoint <state_dir>/rules.state */
    const char *self_host;       /* host of the alert records */
    struct ingest_port *port;    /* alerts go in like any event */
    struct metrics *m;           /* the rules_* counters, vigil_events_dropped */
};

/* Loads env->cfg->paths (blocking: call before the loop runs); env is copied. With no
 * paths, returns 0 and *out NULL: no rules. Unsupported or invalid rules are logged and
 * skipped; a path that cannot be read is an error. */
int rules_live_new(const struct rules_live_env *env, struct rules_live **out, struct errbuf *eb);
/* Starts the window timer. */
void rules_live_start(struct rules_live *rl);
/* A subscriber of the pipeline's durable records (pipeline_subscribe). */
void rules_live_on_record(void *arg, int64_t ts, uint64_t seq, struct span rec);
/* SIGHUP: reload rules off the loop, swap when loaded, keep unchanged rules' state. */
void rules_live_reload(struct rules_live *rl);
/* Stops the timer (part of vigild_stop). */
void rules_live_stop(struct rules_live *rl);
/* After the loop ended: writes the final checkpoint (blocking) and frees. Takes NULL. */
void rules_live_free(struct rules_live *rl);

#endif
