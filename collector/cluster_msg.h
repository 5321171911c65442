/* collector/cluster_msg.h: what an ingest node publishes and a store node reads back
 * (schemas/cluster.md 3): one message per shard per group commit, the records as the
 * pipeline encoded them, behind a magic. And which shard an event goes to. No NATS here
 * (collector/cluster_nats.h), so the codec is fuzzed and unit tested alone. */
#ifndef VG_COLLECTOR_CLUSTER_MSG_H
#define VG_COLLECTOR_CLUSTER_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/span.h"
#include "common/vg.h"
#include "schemas/record.h"

/* schemas/cluster.md 3.1 */
#define CLUSTER_MSG_MAGIC     "VGC1"
#define CLUSTER_MSG_MAGIC_LEN 4
/* Records in one message at most: a record's seq in a store is the message's stream
 * sequence times this plus its index (schemas/cluster.md 4.1). */
#define CLUSTER_MSG_MAX_RECORDS (1u << 20)
#define CLUSTER_SEQ_SHIFT       20

/* The shard of an event: FNV-1a (64 bit) of its agent (the client certificate's identity),
 * or of its host when it has no agent, modulo nshards (schemas/cluster.md 1). */
unsigned cluster_shard_of(const struct rec *r, unsigned nshards);
/* The same from the two fields' bytes. */
unsigned cluster_shard_of_key(struct span agent, struct span host, unsigned nshards);

/* Starts a message in out (emptied): the magic. Returns 0 or VG_ELIMIT. */
int cluster_msg_begin(struct buf *out) VG_MUST_USE;

/* Reads a message: checks the magic and advances *in past it. Returns 0 or VG_ECORRUPT. */
int cluster_msg_open(struct span *in) VG_MUST_USE;

/* The next record of an opened message into r (spans point into *in), advancing *in.
 * Returns 1 with a record, 0 at the end, or VG_ECORRUPT (not a record, or more than
 * CLUSTER_MSG_MAX_RECORDS: index counts the records read so far). */
int cluster_msg_next(struct span *in, size_t index, struct rec *r) VG_MUST_USE;

/* The seq a record gets in a store node (schemas/cluster.md 4.1). */
static inline uint64_t cluster_seq(uint64_t stream_seq, size_t index)
{
    return (stream_seq << CLUSTER_SEQ_SHIFT) | (uint64_t)index;
}

#endif
