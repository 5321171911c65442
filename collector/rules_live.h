/* collector/rules_live.h: the Sigma rule engine inside vigild. Every record, once it is
 * durable, runs through the compiled rule set in seq order (the order `vigil hunt`
 * replays); each incident state change (firing, update, resolved: schemas/alert.md)
 * becomes a kind=alert record ingested like any event. Windows close and incidents
 * resolve on the collector clock (rules/TIME.md): records' received times, moved on by
 * the wall clock each second while nothing is on its way to the engine; so no event
 * and no agent's clock can stop detection for others. The state (windows, open
 * incidents, source clocks) is checkpointed to <store>/rules.state (every 10 s off the
 * loop, and at stop) and restored at start. Events the rules did not count (late,
 * future, state caps) are counted per rule in /metrics and summed up every
 * rules.summary_every as a source=vigil event. SIGHUP reloads the rules (loaded off the
 * loop) keeping the state of unchanged rules. Loop thread. */
#ifndef VG_COLLECTOR_RULES_LIVE_H
#define VG_COLLECTOR_RULES_LIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "collector/ingest.h"
#include "collector/metrics.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/errbuf.h"
#include "common/span.h"

struct rules_live;

/* What the live rules work with. The pointers must outlive the struct rules_live. */
struct rules_live_env {
    uv_loop_t *loop;
    const struct rules_cfg *cfg; /* rules.paths and the time settings */
    const char *state_dir;       /* store.path: the checkpoint <state_dir>/rules.state */
    const char *self_host;       /* host of the alert records */
    struct ingest_port *port;    /* alerts go in like any event */
    struct metrics *m;           /* the rules_* counters, vigil_events_dropped */
    /* True when no record is on its way to rules_live_on_record: one added later was
     * received later, so the rules' clock may move on with the wall clock. */
    bool (*idle)(void *arg);
    void *idle_arg;
};

/* Loads env->cfg->paths (blocking: call before the loop runs); env is copied. With no
 * paths, returns 0 and *out NULL: no rules. Unsupported or invalid rules are logged and
 * skipped; a path that cannot be read is an error. */
int rules_live_new(const struct rules_live_env *env, struct rules_live **out, struct errbuf *eb);
/* Starts the window timer. */
void rules_live_start(struct rules_live *rl);
/* A subscriber of the pipeline's durable records (pipeline_subscribe). */
void rules_live_on_record(void *arg, int64_t ts, uint64_t seq, struct span rec);
/* Appends the rules' metrics (Prometheus text: uncounted events per rule and reason,
 * open incidents, source clocks) to out; nothing without rules. Returns 0 or VG_ELIMIT. */
int rules_live_metrics(const struct rules_live *rl, struct buf *out);
/* SIGHUP: reload rules off the loop, swap when loaded, keep unchanged rules' state. */
void rules_live_reload(struct rules_live *rl);
/* Stops the timer (part of vigild_stop). */
void rules_live_stop(struct rules_live *rl);
/* After the loop ended: writes the final checkpoint (blocking) and frees. Takes NULL. */
void rules_live_free(struct rules_live *rl);

#endif
