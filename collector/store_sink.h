/* collector/store_sink.h: the pipeline's sink in a one-process vigild: batches go into
 * the local store through store/keeper.h, which also keeps house between them; what the
 * keeper reports becomes metrics and, through the notice callback, evidence. A cluster
 * ingest node gives the pipeline another sink (JetStream); the pipeline does not change. */
#ifndef VG_COLLECTOR_STORE_SINK_H
#define VG_COLLECTOR_STORE_SINK_H

#include "collector/metrics.h"
#include "collector/pipeline.h"
#include "common/errbuf.h"
#include "store/keeper.h"

struct store_sink;

/* Called on the loop thread for each notice of the keeper, in order, after the metrics
 * took it into account. */
typedef void (*store_sink_notice_fn)(void *arg, const struct store_notice *n);

/* Takes ownership of st (through a keeper with o, copied). m gets the store's figures
 * (disk, retention, compaction, blocks and bytes); on_notice (may be NULL) the notices.
 * *out (store_sink_as_pipeline) is closed and freed by the pipeline. Returns 0, or
 * negative with eb (st is then closed). */
int store_sink_new(struct store *st, const struct store_keeper_opts *o, struct metrics *m,
                   store_sink_notice_fn on_notice, void *notice_arg, struct store_sink **out,
                   struct errbuf *eb);

/* The sink as pipeline_new takes it. */
struct pipeline_sink store_sink_as_pipeline(struct store_sink *s);

/* Closes and frees a sink that never went to a pipeline (start-up failed). */
void store_sink_free(struct store_sink *s);

#endif
