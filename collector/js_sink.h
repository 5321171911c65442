/* collector/js_sink.h: the pipeline's sink on a cluster ingest node (cluster.roles has
 * ingest). A group commit becomes one JetStream message per shard it touches (subject
 * vigil.ev.<shard>, schemas/cluster.md 3), published with a message id and acknowledged
 * by JetStream (a quorum of the stream's replicas) before commit returns: the pipeline
 * calls the batch's waiters, the agents' acks, only then. The pipeline does not change;
 * listeners do not either.
 *
 * While NATS is unreachable the sink refuses, as the store sink does below
 * store.free_reserve: events are not acknowledged (agents keep them and retry), the
 * collector's own evidence is kept in memory within the pipeline's refusing allowance and
 * published first once NATS is back. A publish without an ack in time is tried again
 * with the same message id (JetStream's duplicate window stores it once) until
 * JS_SINK_PUBLISH_DEADLINE_MS; then the commit fails and nothing of it is acknowledged.
 *
 * refusing, append, commit and upkeep run on the pipeline's store thread (they block on
 * the publish), report on the loop thread. */
#ifndef VG_COLLECTOR_JS_SINK_H
#define VG_COLLECTOR_JS_SINK_H

#include <stdbool.h>

#include "common/cnats.h"
#include "collector/metrics.h"
#include "collector/pipeline.h"
#include "common/config.h"
#include "common/errbuf.h"

#define JS_SINK_PUBLISH_DEADLINE_MS 15000 /* one message: every try together */
#define JS_SINK_PUBLISH_TRY_MS      3000  /* one try: the ack awaited */

struct js_sink;

/* Called on the loop thread when the connection to NATS comes or goes (connected), after
 * the metrics took it into account: vigild records it as evidence. */
typedef void (*js_sink_state_fn)(void *arg, bool connected);

/* Takes ownership of nats. cfg (shards) and node (in message ids) must outlive the sink.
 * m gets the cluster figures. *out (js_sink_as_pipeline) is closed and freed by the
 * pipeline. */
void js_sink_new(struct cnats *nats, const struct cluster_cfg *cfg, const char *node,
                 struct metrics *m, js_sink_state_fn on_state, void *state_arg,
                 struct js_sink **out);

struct pipeline_sink js_sink_as_pipeline(struct js_sink *s);

/* Closes and frees a sink that never went to a pipeline. */
void js_sink_free(struct js_sink *s);

#endif
