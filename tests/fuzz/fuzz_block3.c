/* tests/fuzz/fuzz_block3.c: the column decoder of format v3 blocks (schemas/segment.md
 * 3.8) behind its checksums.
 *
 * A hostile v3 block rarely gets past the directory's and the columns' CRC-32s, so this
 * target builds a valid block and then damages it where the checksums no longer guard:
 *
 * input: u16 n (little-endian), n bytes of records (each chunk: a length byte, then
 * that many bytes, as fuzz_block cuts them), then edits of 4 bytes each: u8 where (even:
 * the decompressed data section, which the row iterator walks; odd: the stored column
 * directory, whose checksum is then made right again), u16 offset (modulo the length),
 * u8 xor.
 *
 * The block built from the records must give them back exactly (abort otherwise). After
 * the edits, decoding may fail, never crash, leak, read out of bounds or return a
 * record outside the reader's buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/digest.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) ((c) ? (void)0 : abort())

/* Walks every row; returns how many came back (or -1 on a decoding error). */
static long walk(const struct block_hdr *h, struct span raw, struct buf *scratch, struct span *recs,
                 size_t nrecs)
{
    struct block_iter it;
    struct errbuf why;
    int64_t ts;
    uint64_t seq;
    struct span rec;
    long n = 0;
    int rc;

    scratch->len = 0;
    errbuf_clear(&why);
    block__iter_init(&it, h, raw, scratch);
    while ((rc = block__iter_next(&it, &ts, &seq, &rec, &why)) > 0) {
        CHECK(ts >= h->ts_min && ts <= h->ts_max && seq >= h->seq_min && seq <= h->seq_max);
        CHECK(rec.n > 0 && rec.p >= scratch->data && rec.p + rec.n <= scratch->data + scratch->len);
        if (recs) {
            /* seq k + 1 is the k-th record added */
            CHECK(seq >= 1 && seq <= nrecs && span_eq(rec, recs[seq - 1]));
        }
        n++;
    }
    return rc < 0 ? -1 : n;
}

/* A projected walk: wanted rows only, user and host only; may fail, never crash. */
static void part_walk(const struct block_hdr *h, struct span raw, struct buf *scratch,
                      const uint8_t *rows, const uint8_t *chunks)
{
    struct block_iter it;
    struct errbuf why;
    int64_t ts;
    uint64_t seq;
    struct span rec;
    int rc;

    scratch->len = 0;
    errbuf_clear(&why);
    block__iter_init(&it, h, raw, scratch);
    it.v3_fields = 1u << PK_USER | 1u << PK_HOST | 1u << PK_RAW;
    it.v3_rows = rows;
    it.v3_chunks = chunks;
    while ((rc = block__iter_next(&it, &ts, &seq, &rec, &why)) > 0) {
        CHECK(rec.n > 0 && rec.p >= scratch->data && rec.p + rec.n <= scratch->data + scratch->len);
    }
    CHECK(rc == 0 || rc == VG_ECORRUPT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct block_builder b;
    struct block_hdr h;
    struct block_hdr h2;
    struct errbuf why;
    struct buf out;
    struct buf raw;
    struct buf scratch;
    struct span recs[512];
    size_t nrecs = 0;
    uint8_t prev[VG_SHA256_LEN] = { 0 };

    if (size < 2) {
        return 0;
    }
    size_t n = (size_t)data[0] | (size_t)data[1] << 8;
    struct span in = { data + 2, n < size - 2 ? n : size - 2 };
    struct span edits = { in.p + in.n, size - 2 - in.n };
    struct digest *d = digest_new();
    block__builder_init(&b);
    int64_t ts = 1714521600000000000;
    while (in.n > 1 && nrecs < 512) {
        size_t len = in.p[0] ? in.p[0] : 1;
        span_advance(&in, 1);
        len = len < in.n ? len : in.n;
        ts += (int64_t)(len * 7919) - 900000;
        CHECK(block__builder_add(&b, ts, nrecs + 1, (struct span){ in.p, len }) == 0);
        recs[nrecs++] = (struct span){ in.p, len };
        span_advance(&in, len);
    }
    if (b.count == 0) {
        block__builder_release(&b);
        digest_free(d);
        return 0;
    }
    buf_init(&out, block__max_len());
    buf_init(&raw, BLOCK_MAX_RAW);
    buf_init(&scratch, BLOCK_MAX_RAW);
    CHECK(block__builder_finish(&b, prev, d, &out, &h, NULL) == 0);
    CHECK(h.version == BLOCK_VERSION_3);
    errbuf_clear(&why);
    CHECK(block__hdr_decode(out.data, &h2, &why) == 0);
    struct span payload = { out.data + BLOCK_HDR_LEN, out.len - BLOCK_HDR_LEN };
    CHECK(block__verify(out.data, &h2, payload, prev, d, &why) == 0);
    struct span stored = { payload.p + h2.index_len, h2.stored_len };
    CHECK(block__decompress(&h2, stored, &raw, &why) == 0);
    CHECK(walk(&h2, buf_span(&raw), &scratch, recs, nrecs) == (long)nrecs);

    /* Parts of it (segment.md 4.1.1): the rows of user "bob", only their user and
     * host put back; then the same over the edited bytes below. */
    uint8_t rows[512 / 8 + 1];
    uint8_t chunks[B3_MAX_COLS / 8 + 2];
    struct block3_val val = { PK_USER, SPAN_LIT("bob") };
    int m = block3__select(&h2, buf_span(&raw), &val, 1, rows, chunks, &why);
    CHECK(m >= 0);
    part_walk(&h2, buf_span(&raw), &scratch, rows, chunks);

    /* The edits. */
    bool dir_edited = false;
    while (edits.n >= 4) {
        unsigned where = edits.p[0];
        size_t off = (size_t)edits.p[1] | (size_t)edits.p[2] << 8;
        uint8_t x = edits.p[3];
        span_advance(&edits, 4);
        if (where & 1) {
            uint8_t *dir = out.data + BLOCK_HDR_LEN + h2.index_len;
            dir[off % h2.dir_len] ^= x;
            dir_edited = true;
        } else {
            raw.data[off % raw.len] ^= x;
        }
    }
    (void)walk(&h2, buf_span(&raw), &scratch, NULL, 0);
    m = block3__select(&h2, buf_span(&raw), &val, 1, rows, chunks, &why);
    CHECK(m >= 0 || m == VG_ECORRUPT);
    if (m >= 0) {
        part_walk(&h2, buf_span(&raw), &scratch, rows, chunks);
    }
    if (dir_edited) {
        /* The directory's checksum made right: its parser and the column decoders. */
        h2.dir_crc = (uint32_t)crc32(0L, stored.p, h2.dir_len);
        errbuf_clear(&why);
        int rc = block__cols_check(&h2, stored, &why);
        CHECK(rc == 0 || rc == VG_ECORRUPT);
        if (block__decompress(&h2, stored, &raw, &why) == 0) {
            CHECK(raw.len == h2.raw_len);
            (void)walk(&h2, buf_span(&raw), &scratch, NULL, 0);
        }
    }
    buf_release(&scratch);
    buf_release(&raw);
    buf_release(&out);
    block__builder_release(&b);
    digest_free(d);
    return 0;
}
