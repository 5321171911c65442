/* tests/fuzz/fuzz_block.c: one block (schemas/segment.md 3) over arbitrary bytes.
 *
 * Reader side: the input is a block as stored (header, index, data). The header is
 * decoded and checked; when the payload is all there, the checksum and chain are
 * checked (from a zero predecessor), and then, whatever they said, the data is
 * decompressed and its record stream walked, so the hostile paths behind the checksum
 * are reached too. Nothing may crash, leak or allocate more than the limits allow.
 *
 * Writer/reader round trip: the same bytes, cut into records (first byte of each
 * chunk: its length), are built into a block, which must decode back to exactly those
 * records (abort on any difference): packed (segment.md 3.4.2) when a chunk is a
 * schema-v1 record, verbatim otherwise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/digest.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checked in every build, unlike assert(). */
#define CHECK(c) ((c) ? (void)0 : abort())

static void read_block(const uint8_t *data, size_t size, struct digest *d)
{
    struct block_hdr h;
    struct errbuf why;
    struct buf raw;
    uint8_t prev[VG_SHA256_LEN] = { 0 };

    errbuf_clear(&why);
    if (size < BLOCK_HDR_LEN || block__hdr_decode(data, &h, &why) < 0) {
        return;
    }
    if (block__len(&h) > size) {
        return; /* incomplete: a reader stops here */
    }
    struct span payload = { data + BLOCK_HDR_LEN, (size_t)block__len(&h) - BLOCK_HDR_LEN };
    if (block__verify(data, &h, payload, prev, d, &why) < 0) {
        /* expected for nearly every input: decode anyway, as if it had been forged */
    }
    if (h.index_len <= payload.n) {
        /* segment.md 3.2: the index, checked and consulted whatever its checksum says. */
        struct span index = { payload.p, h.index_len };
        struct store_need_value v[2] = { { "pod", SPAN_LIT("web-1") },
                                         { "src_ip", SPAN_LIT("10.0.0.1") } };
        struct span t = SPAN_LIT("kdevtmpfsi");
        struct store_need need = { v, 2, &t, 1 };
        struct bix_query q;
        errbuf_clear(&why);
        int crc_rc = block__index_check(&h, index, &why);
        CHECK(crc_rc == 0 || crc_rc == VG_ECORRUPT);
        CHECK(bix__query_init(&q, &need) == 0);
        int m = bix__may_match(index, &q, &why);
        CHECK(m == 0 || m == 1 || m == VG_ECORRUPT);
        bix__query_release(&q);
    }
    struct span stored = { payload.p + h.index_len, h.stored_len };
    buf_init(&raw, BLOCK_MAX_RAW);
    errbuf_clear(&why);
    if (block__decompress(&h, stored, &raw, &why) == 0) {
        struct block_iter it;
        int64_t ts;
        uint64_t seq;
        struct span rec;
        uint32_t n = 0;
        int rc;
        struct buf scratch;
        buf_init(&scratch, 1u << 20);
        block__iter_init(&it, &h, buf_span(&raw), &scratch);
        while ((rc = block__iter_next(&it, &ts, &seq, &rec, &why)) > 0) {
            CHECK(ts >= h.ts_min && ts <= h.ts_max && seq >= h.seq_min && seq <= h.seq_max);
            /* v1: a span of the stream; v2: unpacked into scratch (segment.md 3.4.2). */
            const struct buf *in = h.version == BLOCK_VERSION_1 ? &raw : &scratch;
            CHECK(rec.n > 0 && rec.p >= in->data && rec.p + rec.n <= in->data + in->len);
            n++;
        }
        CHECK(rc < 0 || n == h.count);
        buf_release(&scratch);
    }
    buf_release(&raw);
}

static void round_trip(const uint8_t *data, size_t size, struct digest *d)
{
    struct block_builder b;
    struct buf out;
    struct buf raw;
    struct block_hdr h;
    struct block_hdr h2;
    struct errbuf why;
    uint8_t prev[VG_SHA256_LEN] = { 7 };
    struct span in = { data, size };
    int64_t ts = (int64_t)size * 1000003 - 500000000;
    uint64_t seq = 1;

    block__builder_init(&b);
    while (in.n > 1) {
        size_t len = in.p[0] ? in.p[0] : 1;
        span_advance(&in, 1);
        len = len < in.n ? len : in.n;
        ts += (int64_t)(len * 7919) - 900000; /* up and down */
        CHECK(block__builder_add(&b, ts, seq, (struct span){ in.p, len }) == 0);
        seq += len;
        span_advance(&in, len);
    }
    if (b.count == 0) {
        block__builder_release(&b);
        return;
    }
    buf_init(&out, 2 * BLOCK_MAX_RAW);
    buf_init(&raw, BLOCK_MAX_RAW);
    CHECK(block__builder_finish(&b, prev, d, &out, &h, NULL) == 0);
    errbuf_clear(&why);
    CHECK(block__hdr_decode(out.data, &h2, &why) == 0);
    CHECK(block__len(&h2) == out.len);
    struct span payload = { out.data + BLOCK_HDR_LEN, out.len - BLOCK_HDR_LEN };
    CHECK(block__verify(out.data, &h2, payload, prev, d, &why) == 0);
    struct span stored = { payload.p + h2.index_len, h2.stored_len };
    CHECK(block__decompress(&h2, stored, &raw, &why) == 0);

    /* The same records: in order within a source, v2 groups the sources (segment.md
     * 3.4.1); seqs are increasing, so each is found by its seq. */
    struct block_iter it;
    int64_t t;
    uint64_t s;
    struct span rec;
    struct expect {
        int64_t ts;
        uint64_t seq;
        struct span rec;
        bool seen;
    } *ex = calloc(b.count, sizeof(*ex));
    size_t nex = 0;
    CHECK(ex != NULL);
    in = (struct span){ data, size };
    ts = (int64_t)size * 1000003 - 500000000;
    seq = 1;
    while (in.n > 1) {
        size_t len = in.p[0] ? in.p[0] : 1;
        span_advance(&in, 1);
        len = len < in.n ? len : in.n;
        ts += (int64_t)(len * 7919) - 900000;
        ex[nex++] = (struct expect){ ts, seq, { in.p, len }, false };
        seq += len;
        span_advance(&in, len);
    }
    CHECK(nex == b.count);
    struct buf scratch;
    buf_init(&scratch, BLOCK_MAX_RAW);
    block__iter_init(&it, &h2, buf_span(&raw), &scratch);
    for (size_t k = 0; k < nex; k++) {
        CHECK(block__iter_next(&it, &t, &s, &rec, &why) == 1);
        size_t lo = 0;
        size_t hi = nex;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (ex[mid].seq < s) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        CHECK(lo < nex && ex[lo].seq == s && !ex[lo].seen);
        CHECK(t == ex[lo].ts && span_eq(rec, ex[lo].rec));
        ex[lo].seen = true;
    }
    free(ex);
    CHECK(block__iter_next(&it, &t, &s, &rec, &why) == 0);
    buf_release(&scratch);
    buf_release(&out);
    buf_release(&raw);
    block__builder_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct digest *d = digest_new();

    read_block(data, size, d);
    round_trip(data, size, d);
    digest_free(d);
    return 0;
}
