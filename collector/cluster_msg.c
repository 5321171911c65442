/* collector/cluster_msg.c: the message codec and the shard of an event (cluster_msg.h,
 * schemas/cluster.md 1 and 3). */
#include "collector/cluster_msg.h"

#include <string.h>

unsigned cluster_shard_of_key(struct span agent, struct span host, unsigned nshards)
{
    struct span k = agent.n > 0 ? agent : host;
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < k.n; i++) {
        h ^= k.p[i];
        h *= 0x100000001b3ULL;
    }
    return nshards > 0 ? (unsigned)(h % nshards) : 0;
}

unsigned cluster_shard_of(const struct rec *r, unsigned nshards)
{
    return cluster_shard_of_key(r->str[VG_F_AGENT], r->str[VG_F_HOST], nshards);
}

int cluster_msg_begin(struct buf *out)
{
    out->len = 0;
    return buf_append(out, CLUSTER_MSG_MAGIC, CLUSTER_MSG_MAGIC_LEN);
}

int cluster_msg_open(struct span *in)
{
    if (in->n < CLUSTER_MSG_MAGIC_LEN || memcmp(in->p, CLUSTER_MSG_MAGIC, CLUSTER_MSG_MAGIC_LEN)) {
        return VG_ECORRUPT;
    }
    in->p += CLUSTER_MSG_MAGIC_LEN;
    in->n -= CLUSTER_MSG_MAGIC_LEN;
    return 0;
}

int cluster_msg_next(struct span *in, size_t index, struct rec *r)
{
    if (in->n == 0) {
        return 0;
    }
    if (index >= CLUSTER_MSG_MAX_RECORDS) {
        return VG_ECORRUPT;
    }
    int rc = rec_decode(in, r);
    return rc < 0 ? rc : 1;
}
