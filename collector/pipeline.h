/* collector/pipeline.h: from decoded events to durable storage, with group commit.
 *
 * The loop thread adds encoded records to the open batch and registers "when durable"
 * waiters (a Forward chunk's ack, an HTTP 200). While the store thread commits one
 * batch, the next one fills; when the commit returns, every waiter of the committed
 * batch is called on the loop thread and the filled batch goes to the store thread at
 * once. Many connections' events thus share one fsync, and nothing waits for a timer.
 * The open batch is bounded (batch_max_bytes): pipeline_full() tells listeners to stop
 * reading (backpressure) and the drain callback tells them to resume. */
#ifndef VG_COLLECTOR_PIPELINE_H
#define VG_COLLECTOR_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/errbuf.h"
#include "schemas/record.h"
#include "store/store.h"

struct pipeline;
struct metrics;

/* Called on the loop thread with 0 when everything added before the waiter was
 * registered is durable, or with the negative code of the failed commit. */
typedef void (*pipeline_done_fn)(void *arg, int rc);
/* Called on the loop thread when the open batch has room again. */
typedef void (*pipeline_drain_fn)(void *arg);
/* Called on the loop thread when pipeline_close() has flushed everything. */
typedef void (*pipeline_closed_fn)(void *arg);

/* Takes ownership of st (the store thread uses it from now on). first_seq is the next
 * seq to assign (store_next_seq). batch_max_bytes is the soft limit checked between
 * messages; one message may add up to batch_slack_bytes more. Starts the store thread. */
int pipeline_new(uv_loop_t *loop, struct store *st, uint64_t first_seq, size_t batch_max_bytes,
                 size_t batch_slack_bytes, struct metrics *m, pipeline_drain_fn on_drain, void *drain_arg,
                 struct pipeline **out, struct errbuf *eb);

/* Stamps r with seq (and received and ts, if unset) and appends its encoding to the
 * open batch. Returns 0, or VG_ELIMIT past the hard limit (nothing added). */
int pipeline_add(struct pipeline *p, struct rec *r);

/* Registers a waiter for everything added so far. Never fails. */
void pipeline_when_durable(struct pipeline *p, pipeline_done_fn fn, void *arg);

/* True when the open batch is at or above its byte limit. */
bool pipeline_full(const struct pipeline *p);

/* Flushes the open batch, waits for the store thread, closes the store, then calls
 * fn. After this, pipeline_add must not be called. */
void pipeline_close(struct pipeline *p, pipeline_closed_fn fn, void *arg);

/* Frees a closed pipeline. */
void pipeline_free(struct pipeline *p);

#endif
