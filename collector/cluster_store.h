/* collector/cluster_store.h: the store role of a cluster node (cluster.roles has store).
 *
 * For each shard it owns (cluster.store_shards) a thread reads the durable consumer
 * "vigil-store-<node>-<shard>" (filter vigil.ev.<shard>) in stream order into the store
 * <store.path>/shard-<shard>/ through today's writer and keeper: one commit per message,
 * then the message's ack. A record's seq is its message's stream sequence and its index
 * in it (schemas/cluster.md 4.1), and the store's clock is the stream's time, so every
 * store node owning a shard writes the same segment files, byte for byte, each verifiable
 * alone. At start the consumer is made again from what the store holds (its highest seq
 * says the last message written): a node restarted, or replaced with an empty directory,
 * catches up from the stream; a message written but not acked is skipped when it comes
 * again.
 *
 * Threads: one per shard owns that shard's store; cluster_store_render and
 * cluster_store_stop run on the loop thread. */
#ifndef VG_COLLECTOR_CLUSTER_STORE_H
#define VG_COLLECTOR_CLUSTER_STORE_H

#include "common/buf.h"
#include "common/config.h"
#include "common/errbuf.h"

struct cluster_store;

/* Opens the store of every owned shard (store.* as for one vigild, compaction off:
 * schemas/cluster.md 4.3), connects to NATS and starts the shard threads. cfg and node
 * must outlive it. Returns 0 with *out, or negative with eb (nothing left running). */
int cluster_store_start(const struct vg_config *cfg, const char *node, struct cluster_store **out,
                        struct errbuf *eb);

/* Appends the store role's metrics (Prometheus text, per shard). */
int cluster_store_render(struct cluster_store *cs, struct buf *out);

/* Stops the threads (each finishes the message it writes), closes the stores and frees.
 * Blocks for up to a fetch's wait (half a second). Takes NULL. */
void cluster_store_stop(struct cluster_store *cs);

#endif
