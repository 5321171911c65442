/* tests/fuzz/fuzz_cluster_msg.c: a JetStream message as a cluster store node reads it
 * (collector/cluster_msg.h, schemas/cluster.md 3): the magic, then records back to back.
 * Every record that decodes is given its cluster seq and re-encoded as the store node
 * writes it, then decoded again: the seq and every field must survive. Crashing, leaking
 * or reading outside the input are the bugs sought. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/cluster_msg.h"
#include "common/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) \
 do {               \
  if (!(cond)) {    \
   abort();         \
  }                 \
 } while (0)

static bool same_span(struct span a, struct span b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span in = { data, size };
    struct buf enc;
    struct rec r, back;

    if (cluster_msg_open(&in) < 0) {
        return 0;
    }
    buf_init(&enc, 1u << 24);
    for (size_t i = 0;; i++) {
        int rc = cluster_msg_next(&in, i, &r);
        if (rc <= 0) {
            break;
        }
        CHECK(in.p >= data && in.p + in.n == data + size);
        r.seq = cluster_seq(7, i);
        r.has_seq = true;
        enc.len = 0;
        if (rec_encode(&r, &enc) < 0) {
            continue;
        }
        struct span again = { enc.data, enc.len };
        CHECK(rec_decode(&again, &back) == 0 && again.n == 0);
        CHECK(back.has_seq && back.seq == cluster_seq(7, i));
        CHECK(back.has_ts == r.has_ts && (!r.has_ts || back.ts == r.ts));
        for (int f = 0; f < VG_F_COUNT; f++) {
            CHECK(same_span(back.str[f], r.str[f]));
        }
        CHECK(same_span(back.raw, r.raw));
        unsigned sh = cluster_shard_of(&r, 8);
        CHECK(sh < 8 && sh == cluster_shard_of(&back, 8));
    }
    buf_release(&enc);
    return 0;
}
