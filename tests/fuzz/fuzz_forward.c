/* tests/fuzz/fuzz_forward.c: the Forward protocol v1 decoder as vigild's listener drives
 * it: decode messages back to back from one connection's bytes and iterate every event
 * (gunzipping CompressedPackedForward into a bounded scratch buffer). Each event that
 * the encoder can represent is also re-encoded as a PackedForward message, decoded and
 * iterated again: any difference aborts. The same bytes also go through the client's
 * ack decoder. Crashing, leaking or reading outside the input are the bugs sought. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "schemas/forward.h"
#include "common/buf.h"
#include "common/mp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_FRAME  (256 * 1024)
#define FUZZ_MAX_UNZIP  (1024 * 1024)
#define FUZZ_MAX_EVENTS 4096
#define CHECK(cond) \
 do {               \
  if (!(cond)) {    \
   abort();         \
  }                 \
 } while (0)

static bool inside(struct span s, struct span in)
{
    return s.n == 0 || (s.p >= in.p && s.n <= in.n && (size_t)(s.p - in.p) <= in.n - s.n);
}

/* One event through encode_entry -> encode_packed -> decode -> iterate: same time and
 * record, or the encoder refused it (time or depth EventTime/entries cannot carry). */
static void roundtrip(int64_t t, struct span record, struct span chunk)
{
    struct buf entries;
    struct buf msg;
    struct forward_msg m;
    struct forward_iter it;
    int64_t t2;
    struct span r2;

    buf_init(&entries, FUZZ_MAX_FRAME);
    buf_init(&msg, FUZZ_MAX_FRAME * 2);
    if (forward_encode_entry(&entries, t, record) == 0 &&
        forward_encode_packed(&msg, SPAN_LIT("rt"), buf_span(&entries), 1, chunk) == 0) {
        CHECK(forward_decode(buf_span(&msg), &m, FUZZ_MAX_FRAME * 2) == (ssize_t)msg.len);
        CHECK(m.mode == FORWARD_PACKED && span_eq(m.chunk, chunk) && m.size_opt == 1);
        CHECK(forward_iter_init(&it, &m, NULL) == 0);
        CHECK(forward_iter_next(&it, &t2, &r2) == 1);
        CHECK(t2 == t && span_eq(r2, record));
        CHECK(forward_iter_next(&it, &t2, &r2) == 0);
    }
    buf_release(&msg);
    buf_release(&entries);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span in = { data, size };
    struct span all = in;
    struct buf scratch;
    struct forward_msg m;
    struct span ack;
    ssize_t n;
    int events = 0;

    buf_init(&scratch, FUZZ_MAX_UNZIP);
    while ((n = forward_decode(in, &m, FUZZ_MAX_FRAME)) > 0) {
        struct forward_iter it;
        struct span frame = { in.p, (size_t)n };
        int64_t t;
        struct span record;
        int rc;

        CHECK((size_t)n <= in.n && (size_t)n <= FUZZ_MAX_FRAME);
        CHECK(inside(m.tag, frame) && inside(m.chunk, frame) && inside(m.entries, frame));
        CHECK(inside(m.record, frame));
        CHECK(m.mode != FORWARD_COMPRESSED || m.compressed_gzip);
        if (forward_iter_init(&it, &m, &scratch) == 0) {
            while ((rc = forward_iter_next(&it, &t, &record)) == 1) {
                CHECK(t >= 0 && record.n > 0);
                if (m.mode == FORWARD_COMPRESSED) {
                    CHECK(inside(record, buf_span(&scratch)));
                } else {
                    CHECK(inside(record, frame));
                }
                if (events++ < FUZZ_MAX_EVENTS) {
                    roundtrip(t, record, m.chunk);
                }
            }
            CHECK(rc == 0 || rc == -EPROTO);
            CHECK(forward_iter_next(&it, &t, &record) == rc); /* errors are sticky */
        }
        CHECK(scratch.len <= scratch.max);
        span_advance(&in, (size_t)n);
    }
    CHECK(n == 0 || n == -EPROTO || n == VG_ELIMIT);

    n = forward_decode_ack(all, &ack, NULL);
    CHECK(n == 0 || n == -EPROTO || (n > 0 && (size_t)n <= all.n && inside(ack, all)));
    buf_release(&scratch);
    return 0;
}
