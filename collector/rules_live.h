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

#include "common/errbuf.h"
#include "common/span.h"

struct vigild;
struct rules_live;

/* Loads cfg->rules.paths (blocking: call before the loop runs). With no paths, returns 0
 * and *out NULL: no rules. Unsupported or invalid rules are logged and skipped; a path
 * that cannot be read is an error. */
int rules_live_new(struct vigild *vd, struct rules_live **out, struct errbuf *eb);
/* Starts the window timer and hooks into the pipeline. */
void rules_live_start(struct rules_live *rl);
/* The pipeline's committed-record hook. */
void rules_live_on_record(void *arg, int64_t ts, uint64_t seq, struct span rec);
/* SIGHUP: reload rules off the loop, swap when loaded, keep unchanged rules' state. */
void rules_live_reload(struct rules_live *rl);
/* Stops the timer (part of vigild_stop). */
void rules_live_stop(struct rules_live *rl);
/* After the loop ended: writes the final checkpoint (blocking) and frees. Takes NULL. */
void rules_live_free(struct rules_live *rl);

#endif
