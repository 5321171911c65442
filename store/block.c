/* store/block.c: one block of a segment (schemas/segment.md 3): the header, the index
 * section (v2, v3, built by bindex.c), the record stream (v2: packed records in groups,
 * pack.c) or the column directory and columns (v3, laid out by cols.c), LZ4 (or, in
 * compacted segments, zstd) compression, the CRC-32 checksums and the SHA-256 chain
 * hash. The only file that includes <lz4.h> and <zstd.h>. Writes format v3 (v1 and v2
 * for tests); reads all three.
 *
 * Everything read here comes from disk and may be hostile: lengths are checked against
 * the hard limits of segment.md 3.7 before anything is allocated or trusted. Pure
 * functions over caller memory; any thread. */
#include <errno.h>
#include <inttypes.h>
#include <lz4.h>
#include <lz4hc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "common/xalloc.h"
#include "store/store_int.h"

static const uint8_t block_magic[4] = { 'V', 'G', 'B', 'K' };

/* segment.md 3.1: field offsets of the block header. */
enum {
    BH_MAGIC = 0,
    BH_VERSION = 4,
    BH_HDR_LEN = 6,
    BH_CODEC = 8,
    BH_FLAGS = 9,
    BH_COUNT = 12,
    BH_RAW_LEN = 16,
    BH_STORED_LEN = 20,
    BH_INDEX_LEN = 24,
    BH_INDEX_CRC = 28,
    BH_TS_MIN = 32,
    BH_TS_MAX = 40,
    BH_SEQ_MIN = 48,
    BH_SEQ_MAX = 56,
    BH_HASH = 64,
    BH_DIR_LEN = 96,
    BH_DIR_CRC = 100,
    BH_REC_LEN = 104,
    BH_HDR_CRC = 108,
    BH_CRC = 124,
};

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

void block__hdr_encode(const struct block_hdr *h, uint8_t *p)
{
    memset(p, 0, BLOCK_HDR_LEN);
    memcpy(p + BH_MAGIC, block_magic, sizeof(block_magic));
    put_u16(p + BH_VERSION, h->version);
    put_u16(p + BH_HDR_LEN, BLOCK_HDR_LEN);
    p[BH_CODEC] = h->codec;
    p[BH_FLAGS] = h->flags;
    put_u32(p + BH_COUNT, h->count);
    put_u32(p + BH_RAW_LEN, h->raw_len);
    put_u32(p + BH_STORED_LEN, h->stored_len);
    put_u32(p + BH_INDEX_LEN, h->index_len);
    put_u32(p + BH_INDEX_CRC, h->version >= BLOCK_VERSION_2 ? h->index_crc : 0);
    put_u64(p + BH_TS_MIN, (uint64_t)h->ts_min);
    put_u64(p + BH_TS_MAX, (uint64_t)h->ts_max);
    put_u64(p + BH_SEQ_MIN, h->seq_min);
    put_u64(p + BH_SEQ_MAX, h->seq_max);
    memcpy(p + BH_HASH, h->hash, VG_SHA256_LEN);
    if (h->version >= BLOCK_VERSION_3) {
        put_u32(p + BH_DIR_LEN, h->dir_len);
        put_u32(p + BH_DIR_CRC, h->dir_crc);
        put_u32(p + BH_REC_LEN, h->rec_len);
    }
    put_u32(p + BH_CRC, h->crc);
}

size_t block__max_len(void)
{
    /* segment.md 3.7: the largest of v1/v2 (LZ4 or zstd bound) and v3's bound. */
    return (size_t)BLOCK_HDR_LEN + BLOCK_MAX_INDEX + BLOCK_MAX_RAW + BLOCK_MAX_RAW / 128 +
           B3_DATA_SLACK + 4096;
}

/* segment.md 3.7, v3: the directory and the columns behind it bound the lengths. */
static int hdr_check_v3(struct block_hdr *h, struct errbuf *why)
{
    if (h->dir_len < B3_DIR_HDR + 3 * B3_DIR_ENT || h->dir_len > B3_DIR_MAX ||
        (h->dir_len - B3_DIR_HDR) % B3_DIR_ENT != 0 || h->dir_len >= h->raw_len ||
        h->dir_len >= h->stored_len) {
        errbuf_set(why, "bad column directory length %" PRIu32, h->dir_len);
        return VG_ECORRUPT;
    }
    uint64_t raw = h->raw_len - h->dir_len;
    uint64_t data = h->stored_len - h->dir_len;
    if (h->stored_len > (uint64_t)h->raw_len + h->raw_len / 128 + B3_DATA_SLACK ||
        raw > (uint64_t)BLOCK_ZSTD_MAX_RATIO * data) {
        errbuf_set(why, "bad compressed length %" PRIu32 " for %" PRIu32 " bytes", h->stored_len,
                   h->raw_len);
        return VG_ECORRUPT;
    }
    if (h->count == 0 || h->count > raw / 3) {
        errbuf_set(why, "bad record count %" PRIu32 " for %" PRIu32 " bytes", h->count, h->raw_len);
        return VG_ECORRUPT;
    }
    if (h->rec_len < h->count || h->rec_len > BLOCK_MAX_RAW) {
        errbuf_set(why, "bad records length %" PRIu32, h->rec_len);
        return VG_ECORRUPT;
    }
    if (h->ts_min > h->ts_max || h->seq_min > h->seq_max) {
        errbuf_set(why, "bad ts or seq range");
        return VG_ECORRUPT;
    }
    return 0;
}

int block__hdr_decode(const uint8_t *p, struct block_hdr *h, struct errbuf *why)
{
    /* segment.md 3.7: every check that needs only the header. */
    if (memcmp(p + BH_MAGIC, block_magic, sizeof(block_magic)) != 0) {
        errbuf_set(why, "bad block magic");
        return VG_ECORRUPT;
    }
    h->version = get_u16(p + BH_VERSION);
    if (h->version != BLOCK_VERSION_3 && h->version != BLOCK_VERSION_2 &&
        h->version != BLOCK_VERSION_1) {
        errbuf_set(why, "unsupported block version %u", h->version);
        return VG_ECORRUPT;
    }
    if (get_u16(p + BH_HDR_LEN) != BLOCK_HDR_LEN) {
        errbuf_set(why, "bad block header length %u", get_u16(p + BH_HDR_LEN));
        return VG_ECORRUPT;
    }
    h->codec = p[BH_CODEC];
    h->flags = p[BH_FLAGS];
    if (h->codec != BLOCK_CODEC_LZ4 &&
        (h->codec != BLOCK_CODEC_ZSTD || h->version < BLOCK_VERSION_2)) {
        errbuf_set(why, "unsupported block codec %u", h->codec);
        return VG_ECORRUPT;
    }
    h->count = get_u32(p + BH_COUNT);
    h->raw_len = get_u32(p + BH_RAW_LEN);
    h->stored_len = get_u32(p + BH_STORED_LEN);
    h->index_len = get_u32(p + BH_INDEX_LEN);
    h->index_crc = h->version >= BLOCK_VERSION_2 ? get_u32(p + BH_INDEX_CRC) : 0;
    bool v3 = h->version == BLOCK_VERSION_3;
    h->dir_len = v3 ? get_u32(p + BH_DIR_LEN) : 0;
    h->dir_crc = v3 ? get_u32(p + BH_DIR_CRC) : 0;
    h->rec_len = v3 ? get_u32(p + BH_REC_LEN) : 0;
    if (v3 && get_u32(p + BH_HDR_CRC) != (uint32_t)crc32(0L, p, BH_HDR_CRC)) {
        /* segment.md 3.1: a v3 header checks itself, for readers of some columns. */
        errbuf_set(why, "block header checksum mismatch");
        return VG_ECORRUPT;
    }
    h->ts_min = (int64_t)get_u64(p + BH_TS_MIN);
    h->ts_max = (int64_t)get_u64(p + BH_TS_MAX);
    h->seq_min = get_u64(p + BH_SEQ_MIN);
    h->seq_max = get_u64(p + BH_SEQ_MAX);
    memcpy(h->hash, p + BH_HASH, VG_SHA256_LEN);
    h->crc = get_u32(p + BH_CRC);

    if (h->raw_len == 0 || h->raw_len > BLOCK_MAX_RAW) {
        errbuf_set(why, "bad uncompressed length %" PRIu32, h->raw_len);
        return VG_ECORRUPT;
    }
    if (h->index_len > BLOCK_MAX_INDEX) {
        errbuf_set(why, "bad index length %" PRIu32, h->index_len);
        return VG_ECORRUPT;
    }
    if (v3) {
        return hdr_check_v3(h, why);
    }
    /* segment.md 3.7: how far each codec can expand bounds what a header may claim. */
    uint64_t bound = h->codec == BLOCK_CODEC_LZ4 ? (uint64_t)LZ4_COMPRESSBOUND(h->raw_len)
                                                 : (uint64_t)ZSTD_COMPRESSBOUND(h->raw_len);
    uint64_t ratio = h->codec == BLOCK_CODEC_LZ4 ? 255 : BLOCK_ZSTD_MAX_RATIO;
    if (h->stored_len == 0 || h->stored_len > bound ||
        (uint64_t)h->raw_len > ratio * (uint64_t)h->stored_len) {
        errbuf_set(why, "bad compressed length %" PRIu32 " for %" PRIu32 " bytes", h->stored_len,
                   h->raw_len);
        return VG_ECORRUPT;
    }
    if (h->count == 0 || h->count > h->raw_len / 4) {
        errbuf_set(why, "bad record count %" PRIu32 " for %" PRIu32 " bytes", h->count, h->raw_len);
        return VG_ECORRUPT;
    }
    if (h->ts_min > h->ts_max || h->seq_min > h->seq_max) {
        errbuf_set(why, "bad ts or seq range");
        return VG_ECORRUPT;
    }
    return 0;
}

/* segment.md 3.8: which part of a v3 block fails its own checksum (for a message). */
static void v3_where(const struct block_hdr *h, struct span payload, char *out, size_t cap)
{
    if (h->index_len > payload.n) {
        return;
    }
    if (h->index_len > 0 && (uint32_t)crc32_z(0L, payload.p, h->index_len) != h->index_crc) {
        snprintf(out, cap, " in the index");
        return;
    }
    struct span data = { payload.p + h->index_len, payload.n - h->index_len };
    if (h->dir_len > data.n || h->dir_len < B3_DIR_HDR) {
        return;
    }
    if ((uint32_t)crc32_z(0L, data.p, h->dir_len) != h->dir_crc) {
        snprintf(out, cap, " in the column directory");
        return;
    }
    uint32_t n = get_u16(data.p + 2);
    uint64_t at = h->dir_len;
    for (uint32_t i = 0; i < n && B3_DIR_HDR + (uint64_t)(i + 1) * B3_DIR_ENT <= h->dir_len; i++) {
        const uint8_t *e = data.p + B3_DIR_HDR + (size_t)i * B3_DIR_ENT;
        uint32_t st = get_u32(e + 12);
        if (st > data.n - at) {
            return;
        }
        if ((uint32_t)crc32_z(0L, data.p + at, st) != get_u32(e + 16)) {
            snprintf(out, cap, " in column '%s' (entry %" PRIu32 ")", block3__col_name(get_u16(e)),
                     i);
            return;
        }
        at += st;
    }
}

int block__verify_crc(const uint8_t *hdr, const struct block_hdr *h, struct span payload,
                      struct errbuf *why)
{
    uint8_t tmp[BLOCK_HDR_LEN];

    /* segment.md 3.5: CRC over the header with the crc field zero, then the payload. */
    memcpy(tmp, hdr, BLOCK_HDR_LEN);
    memset(tmp + BH_CRC, 0, 4);
    uLong crc = crc32(0L, tmp, BLOCK_HDR_LEN);
    crc = crc32_z(crc, payload.p, payload.n);
    if ((uint32_t)crc != h->crc) {
        char where[96] = "";
        if (h->version == BLOCK_VERSION_3) {
            v3_where(h, payload, where, sizeof(where));
        }
        errbuf_set(why, "checksum mismatch (stored %08" PRIx32 ", computed %08" PRIx32 ")%s",
                   h->crc, (uint32_t)crc, where);
        return VG_ECORRUPT;
    }
    return 0;
}

int block__verify(const uint8_t *hdr, const struct block_hdr *h, struct span payload,
                  const uint8_t prev[VG_SHA256_LEN], struct digest *d, struct errbuf *why)
{
    uint8_t tmp[BLOCK_HDR_LEN];
    uint8_t hash[VG_SHA256_LEN];

    if (block__verify_crc(hdr, h, payload, why) < 0) {
        return VG_ECORRUPT;
    }
    memcpy(tmp, hdr, BLOCK_HDR_LEN);
    memset(tmp + BH_CRC, 0, 4);
    /* segment.md 3.6: the chain hash, with hash and crc fields zero. */
    memset(tmp + BH_HASH, 0, VG_SHA256_LEN);
    if (h->version == BLOCK_VERSION_3) {
        memset(tmp + BH_HDR_CRC, 0, 4);
    }
    digest_update(d, prev, VG_SHA256_LEN);
    digest_update(d, tmp, BLOCK_HDR_LEN);
    digest_update(d, payload.p, payload.n);
    digest_final(d, hash);
    if (memcmp(hash, h->hash, VG_SHA256_LEN) != 0) {
        errbuf_set(why, "chain hash mismatch");
        return VG_ECORRUPT;
    }
    if (h->version == BLOCK_VERSION_3 && h->index_len <= payload.n) {
        /* segment.md 3.8: the directory's and every column's own checksum too (a reader
         * of some columns trusts them without the block's). */
        return block__cols_check(
            h, (struct span){ payload.p + h->index_len, payload.n - h->index_len }, why);
    }
    return 0;
}

int block3__dir_parse(const struct block_hdr *h, struct span data, struct block3_dirent *ents,
                      uint32_t *nents, struct errbuf *why)
{
    /* segment.md 3.8.1 */
    if (h->dir_len > data.n || data.n != h->stored_len) {
        errbuf_set(why, "column directory runs past the data section");
        return VG_ECORRUPT;
    }
    if ((uint32_t)crc32_z(0L, data.p, h->dir_len) != h->dir_crc) {
        errbuf_set(why, "column directory checksum mismatch");
        return VG_ECORRUPT;
    }
    uint32_t n = get_u16(data.p + 2);
    if (data.p[0] != 1 || data.p[1] != 0 || n > B3_MAX_COLS ||
        h->dir_len != B3_DIR_HDR + n * B3_DIR_ENT) {
        errbuf_set(why, "bad column directory");
        return VG_ECORRUPT;
    }
    uint64_t raw = h->dir_len;
    uint64_t stored = h->dir_len;
    unsigned last = 0;
    uint32_t nraw = 0;
    bool seen[4] = { false, false, false, false };
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = data.p + B3_DIR_HDR + (size_t)i * B3_DIR_ENT;
        struct block3_dirent *e = &ents[i];
        e->id = get_u16(p);
        e->codec = p[2];
        e->nvals = get_u32(p + 4);
        e->raw_len = get_u32(p + 8);
        e->stored_len = get_u32(p + 12);
        e->crc = get_u32(p + 16);
        bool known =
            e->id == B3_TS || e->id == B3_SEQ || e->id == B3_FORM || e->id == B3_NUMS ||
            e->id == B3_VERBATIM || e->id == B3_RAW ||
            (e->id >= B3_STR && e->id <= B3_ID_MAX && pack__key_class(e->id - B3_STR) == 2);
        if (!known || p[3] != 0 || e->id < last || (e->id == last && e->id != B3_RAW)) {
            errbuf_set(why, "column directory entry %" PRIu32 ": bad or repeated column %u", i,
                       e->id);
            return VG_ECORRUPT;
        }
        last = e->id;
        uint64_t bound = e->codec == BLOCK_CODEC_LZ4    ? (uint64_t)LZ4_COMPRESSBOUND(e->raw_len)
                         : e->codec == BLOCK_CODEC_ZSTD ? (uint64_t)ZSTD_COMPRESSBOUND(e->raw_len)
                                                        : e->raw_len;
        uint64_t ratio = e->codec == BLOCK_CODEC_LZ4    ? 255
                         : e->codec == BLOCK_CODEC_ZSTD ? BLOCK_ZSTD_MAX_RATIO
                                                        : 1;
        if ((e->codec != B3_CODEC_PLAIN && e->codec != BLOCK_CODEC_LZ4 &&
             e->codec != BLOCK_CODEC_ZSTD) ||
            e->raw_len == 0 || e->stored_len == 0 || e->stored_len > bound ||
            (uint64_t)e->raw_len > ratio * e->stored_len ||
            e->nvals > (uint64_t)h->count * (e->id == B3_NUMS ? 4 : 1)) {
            errbuf_set(why, "column '%s': bad codec or lengths", block3__col_name(e->id));
            return VG_ECORRUPT;
        }
        if (e->id <= B3_FORM) {
            seen[e->id] = true;
            if (e->nvals != h->count) {
                errbuf_set(why, "column '%s': %" PRIu32 " values for %" PRIu32 " records",
                           block3__col_name(e->id), e->nvals, h->count);
                return VG_ECORRUPT;
            }
        }
        if (e->id == B3_RAW) {
            nraw += e->nvals;
            if (nraw > h->count) {
                errbuf_set(why, "column 'raw': more values than records");
                return VG_ECORRUPT;
            }
        }
        raw += e->raw_len;
        stored += e->stored_len;
    }
    if (!seen[B3_TS] || !seen[B3_SEQ] || !seen[B3_FORM]) {
        errbuf_set(why, "column directory lacks ts, seq or form");
        return VG_ECORRUPT;
    }
    if (raw != h->raw_len || stored != h->stored_len) {
        errbuf_set(why, "column lengths do not add up to the block's");
        return VG_ECORRUPT;
    }
    *nents = n;
    return 0;
}

int block__cols_check(const struct block_hdr *h, struct span data, struct errbuf *why)
{
    struct block3_dirent *ents = xmalloc(sizeof(*ents) * B3_MAX_COLS);
    uint32_t n;
    int rc = block3__dir_parse(h, data, ents, &n, why);
    size_t at = h->dir_len;

    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        if ((uint32_t)crc32_z(0L, data.p + at, ents[i].stored_len) != ents[i].crc) {
            errbuf_set(why, "column '%s' (entry %" PRIu32 "): checksum mismatch",
                       block3__col_name(ents[i].id), i);
            rc = VG_ECORRUPT;
        }
        at += ents[i].stored_len;
    }
    free(ents);
    return rc;
}

/* zstd's decompression context, one per thread, kept for its life: a v3 block has tens
 * of zstd frames, and a context made for each (ZSTD_decompress) costs more than the
 * frame (an mmap'ed 160 KiB). */
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;
static pthread_key_t dctx_key;
static bool dctx_ok;

static void dctx_free(void *p)
{
    ZSTD_freeDCtx(p);
}

static void dctx_init(void)
{
    dctx_ok = pthread_key_create(&dctx_key, dctx_free) == 0;
}

static ZSTD_DCtx *dctx_get(void)
{
    (void)pthread_once(&dctx_once, dctx_init);
    if (!dctx_ok) {
        return NULL;
    }
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (!d && (d = ZSTD_createDCtx()) != NULL && pthread_setspecific(dctx_key, d) != 0) {
        ZSTD_freeDCtx(d);
        d = NULL;
    }
    return d;
}

/* Decompresses one column (segment.md 3.8) into dst: exactly e->raw_len bytes. */
static int col_decompress(const struct block3_dirent *e, const uint8_t *src, uint8_t *dst,
                          struct errbuf *why)
{
    if (e->codec == B3_CODEC_PLAIN) {
        memcpy(dst, src, e->raw_len);
        return 0;
    }
    if (e->codec == BLOCK_CODEC_ZSTD) {
        ZSTD_DCtx *d = dctx_get();
        size_t z = d ? ZSTD_decompressDCtx(d, dst, e->raw_len, src, e->stored_len)
                     : ZSTD_decompress(dst, e->raw_len, src, e->stored_len);
        if (ZSTD_isError(z) || z != e->raw_len) {
            errbuf_set(why, "column '%s': zstd decompression failed (%s)", block3__col_name(e->id),
                       ZSTD_isError(z) ? ZSTD_getErrorName(z) : "short");
            return VG_ECORRUPT;
        }
        return 0;
    }
    int n =
        LZ4_decompress_safe((const char *)src, (char *)dst, (int)e->stored_len, (int)e->raw_len);
    if (n != (int)e->raw_len) {
        errbuf_set(why, "column '%s': lz4 decompression failed (%d of %" PRIu32 " bytes)",
                   block3__col_name(e->id), n, e->raw_len);
        return VG_ECORRUPT;
    }
    return 0;
}

int block3__col_load(const struct block3_dirent *e, const uint8_t *stored, uint8_t *dst,
                     struct errbuf *why)
{
    if ((uint32_t)crc32_z(0L, stored, e->stored_len) != e->crc) {
        errbuf_set(why, "column '%s': checksum mismatch", block3__col_name(e->id));
        return VG_ECORRUPT;
    }
    return col_decompress(e, stored, dst, why);
}

/* segment.md 3.8: the directory, then every column, into out (reserved for raw_len). */
static int decompress_v3(const struct block_hdr *h, struct span data, struct buf *out,
                         struct errbuf *why)
{
    struct block3_dirent *ents = xmalloc(sizeof(*ents) * B3_MAX_COLS);
    uint32_t n;
    int rc = block3__dir_parse(h, data, ents, &n, why);

    if (rc == 0) {
        memcpy(out->data, data.p, h->dir_len);
        size_t src = h->dir_len;
        size_t dst = h->dir_len;
        for (uint32_t i = 0; i < n && rc == 0; i++) {
            rc = col_decompress(&ents[i], data.p + src, out->data + dst, why);
            src += ents[i].stored_len;
            dst += ents[i].raw_len;
        }
    }
    free(ents);
    if (rc < 0) {
        return rc;
    }
    out->len = h->raw_len;
    out->data[out->len] = 0;
    return 0;
}

int block__decompress(const struct block_hdr *h, struct span data, struct buf *out,
                      struct errbuf *why)
{
    /* segment.md 3.3; raw_len was bounded by block__hdr_decode. */
    out->len = 0;
    if (h->raw_len > out->max || data.n > (size_t)INT32_MAX) {
        errbuf_set(why, "block of %" PRIu32 " bytes over the reader's limit", h->raw_len);
        return VG_ECORRUPT;
    }
    if (buf_reserve(out, h->raw_len) < 0) {
        errbuf_set(why, "block of %" PRIu32 " bytes over the reader's limit", h->raw_len);
        return VG_ECORRUPT;
    }
    if (h->version == BLOCK_VERSION_3) {
        return decompress_v3(h, data, out, why);
    }
    if (h->codec == BLOCK_CODEC_ZSTD) {
        /* segment.md 3.3: one zstd frame, exactly raw_len bytes. */
        size_t z = ZSTD_decompress(out->data, h->raw_len, data.p, data.n);
        if (ZSTD_isError(z) || z != h->raw_len) {
            errbuf_set(why, "zstd decompression failed (%s)",
                       ZSTD_isError(z) ? ZSTD_getErrorName(z) : "short");
            return VG_ECORRUPT;
        }
    } else {
        int n = LZ4_decompress_safe((const char *)data.p, (char *)out->data, (int)data.n,
                                    (int)h->raw_len);
        if (n != (int)h->raw_len) {
            errbuf_set(why, "lz4 decompression failed (%d of %" PRIu32 " bytes)", n, h->raw_len);
            return VG_ECORRUPT;
        }
    }
    out->len = h->raw_len;
    out->data[out->len] = 0;
    return 0;
}

void block__iter_init(struct block_iter *it, const struct block_hdr *h, struct span raw,
                      struct buf *scratch)
{
    it->h = h;
    it->in = raw;
    it->left = h->count;
    it->group_left = 0;
    it->ts = 0;
    it->seq = 0;
    it->prev_received = 0;
    it->scratch = scratch;
    it->pre = NULL;
    it->windowed = false;
    it->since = INT64_MIN;
    it->until = INT64_MAX;
    it->skipped = 0;
    it->v3 = NULL;
    if (h->version == BLOCK_VERSION_3) {
        block3__iter_init(it);
    }
}

int block__iter_next(struct block_iter *it, int64_t *ts, uint64_t *seq, struct span *rec,
                     struct errbuf *why)
{
    uint64_t zz;
    uint64_t dseq;
    uint64_t len;
    bool v2 = it->h->version == BLOCK_VERSION_2;

    if (it->h->version == BLOCK_VERSION_3) {
        return block3__iter_next(it, ts, seq, rec, why);
    }
    for (;;) {
        if (it->left == 0) {
            if (it->in.n != 0) {
                errbuf_set(why, "%zu bytes after the last record", it->in.n);
                return VG_ECORRUPT;
            }
            return 0;
        }
        if (v2 && it->group_left == 0) {
            /* segment.md 3.4.1: a group starts with its count; deltas restart from 0. */
            uint64_t n;
            if (store__get_uvarint(&it->in, &n) < 0 || n == 0 || n > it->left) {
                errbuf_set(why, "record %" PRIu32 ": bad group count", it->h->count - it->left);
                return VG_ECORRUPT;
            }
            it->group_left = (uint32_t)n;
            it->ts = 0;
            it->seq = 0;
            it->prev_received = 0;
        }
        if (store__get_uvarint(&it->in, &zz) < 0 || store__get_uvarint(&it->in, &dseq) < 0 ||
            store__get_uvarint(&it->in, &len) < 0) {
            errbuf_set(why, "record %" PRIu32 ": bad entry header", it->h->count - it->left);
            return VG_ECORRUPT;
        }
        if (len == 0 || len > it->in.n) {
            errbuf_set(why, "record %" PRIu32 ": bad length %" PRIu64, it->h->count - it->left,
                       len);
            return VG_ECORRUPT;
        }
        /* Differences wrap around in two's complement (segment.md 3.4). */
        uint64_t dts = store__unzigzag(zz);
        it->ts = (int64_t)((uint64_t)it->ts + dts);
        it->seq += dseq;
        if (it->ts < it->h->ts_min || it->ts > it->h->ts_max || it->seq < it->h->seq_min ||
            it->seq > it->h->seq_max) {
            errbuf_set(why, "record %" PRIu32 ": ts or seq outside the block's range",
                       it->h->count - it->left);
            return VG_ECORRUPT;
        }
        struct span packed = { it->in.p, (size_t)len };
        if ((it->windowed && (it->ts < it->since || it->ts >= it->until)) ||
            (it->pre && !bix__record_may_match(it->pre, packed))) {
            /* Not wanted: skipped without unpacking. */
            if (v2 && pack__skip(packed, &it->prev_received) < 0) {
                errbuf_set(why, "record %" PRIu32 ": bad packed record", it->h->count - it->left);
                return VG_ECORRUPT;
            }
            it->group_left -= v2;
            span_advance(&it->in, (size_t)len);
            it->left--;
            it->skipped++;
            continue;
        }
        if (v2) {
            /* segment.md 3.4.2: unpacked after the scratch's current bytes. */
            size_t at = it->scratch->len;
            struct errbuf w2;
            errbuf_clear(&w2);
            int rc = pack__unpack(packed, it->ts, it->seq, &it->prev_received, it->scratch, &w2);
            if (rc == 0 && it->scratch->len - at > 2 * (size_t)len + 64) {
                errbuf_set(&w2, "unpacks to more than twice its size");
                rc = VG_ECORRUPT;
            }
            if (rc < 0) {
                it->scratch->len = at;
                errbuf_set(why, "record %" PRIu32 ": %s", it->h->count - it->left,
                           rc == VG_ECORRUPT ? errbuf_msg(&w2) : "larger than the reader's limit");
                return VG_ECORRUPT;
            }
            *rec = (struct span){ it->scratch->data + at, it->scratch->len - at };
            it->group_left--;
        } else {
            *rec = packed;
        }
        *ts = it->ts;
        *seq = it->seq;
        span_advance(&it->in, (size_t)len);
        it->left--;
        return 1;
    }
}

int block__index_check(const struct block_hdr *h, struct span index, struct errbuf *why)
{
    if (h->version < BLOCK_VERSION_2) {
        return 0;
    }
    /* segment.md 3.1: the index has its own checksum, so a reader can trust it before
     * it reads (and checks) the rest of the block. */
    if ((uint32_t)crc32_z(0L, index.p, index.n) != h->index_crc) {
        errbuf_set(why, "index checksum mismatch");
        return VG_ECORRUPT;
    }
    return bix__check(index, why);
}

void block__builder_init(struct block_builder *b)
{
    memset(b, 0, sizeof(*b));
    buf_init(&b->raw, BLOCK_MAX_RAW);
    buf_init(&b->ents, BLOCK_MAX_RAW);
    buf_init(&b->scratch, BLOCK_MAX_RAW + BLOCK_MAX_RAW / 8);
    buf_init(&b->index, BLOCK_MAX_INDEX);
    bix__builder_init(&b->ix);
    block__builder_reset(b);
}

void block__builder_reset(struct block_builder *b)
{
    block3__reset(b->v3);
    b->raw.len = 0;
    b->ents.len = 0;
    b->in_bytes = 0;
    b->count = 0;
    b->ts_min = INT64_MAX;
    b->ts_max = INT64_MIN;
    b->prev_ts = 0;
    b->seq_min = UINT64_MAX;
    b->seq_max = 0;
    b->prev_seq = 0;
    memset(b->prev_received, 0, sizeof(b->prev_received));
    bix__builder_reset(&b->ix);
}

void block__builder_release(struct block_builder *b)
{
    buf_release(&b->raw);
    buf_release(&b->ents);
    buf_release(&b->scratch);
    buf_release(&b->index);
    bix__builder_release(&b->ix);
    free(b->view);
    b->view = NULL;
    block3__free(b->v3);
    b->v3 = NULL;
    block__builder_reset(b);
}

static void builder_range(struct block_builder *b, int64_t ts, uint64_t seq, size_t n)
{
    b->in_bytes += block__entry_len(n);
    b->count++;
    if (ts < b->ts_min) {
        b->ts_min = ts;
    }
    if (ts > b->ts_max) {
        b->ts_max = ts;
    }
    if (seq < b->seq_min) {
        b->seq_min = seq;
    }
    if (seq > b->seq_max) {
        b->seq_max = seq;
    }
}

/* Bytes the v2 stream may take at most with one more record of n packed bytes: each
 * entry's three varints, each group's count. */
static size_t stream_bound(const struct block_builder *b, size_t n)
{
    return b->raw.len + n + (size_t)(b->count + 1) * BLOCK_ENTRY_MAX + PACK_GROUPS * 10;
}

int block__builder_add(struct block_builder *b, int64_t ts, uint64_t seq, struct span rec)
{
    int rc;

    /* The hot path: packing and indexing look at the record once; the buffers only
     * grow until they hold a full block. */
    if (rec.n > BLOCK_MAX_REC || rec.n == 0) {
        return rec.n == 0 ? -EINVAL : VG_ELIMIT;
    }
    if (b->v1) {
        if (buf_reserve(&b->raw, block__entry_len(rec.n)) < 0) {
            return VG_ELIMIT;
        }
        uint64_t dts = (uint64_t)ts - (uint64_t)b->prev_ts;
        uint8_t *p = b->raw.data + b->raw.len;
        p = store__put_uvarint(p, store__zigzag(dts));
        p = store__put_uvarint(p, seq - b->prev_seq);
        p = store__put_uvarint(p, rec.n);
        memcpy(p, rec.p, rec.n);
        p += rec.n;
        b->raw.len = (size_t)(p - b->raw.data);
        b->raw.data[b->raw.len] = 0;
        b->prev_ts = ts;
        b->prev_seq = seq;
        builder_range(b, ts, seq, rec.n);
        return 0;
    }
    if (!b->v2) {
        /* segment.md 3.8: format v3, columns. */
        if ((rc = block3__add(b, ts, seq, rec)) < 0) {
            return rc;
        }
        builder_range(b, ts, seq, rec.n);
        return 0;
    }
    if (stream_bound(b, rec.n + 1) > BLOCK_MAX_RAW) {
        return VG_ELIMIT;
    }
    if (!b->view) {
        b->view = xmalloc(sizeof(*b->view));
    }
    pack__view(rec, b->view);
    size_t off = b->raw.len;
    unsigned group = pack__group(b->view);
    int64_t prev_received = b->prev_received[group];
    if ((rc = pack__record(rec, b->view, ts, seq, &b->prev_received[group], &b->raw, &b->scratch)) <
            0 ||
        (rc = bix__builder_add(&b->ix, b->view)) < 0) {
        b->raw.len = off;
        b->prev_received[group] = prev_received;
        return rc == VG_ELIMIT ? rc : VG_ELIMIT;
    }
    struct block_ent e = { ts, seq, (uint32_t)off, (uint32_t)(b->raw.len - off), group };
    if ((rc = buf_append(&b->ents, &e, sizeof(e))) < 0) {
        b->raw.len = off;
        b->prev_received[group] = prev_received;
        return VG_ELIMIT;
    }
    builder_range(b, ts, seq, rec.n);
    return 0;
}

/* segment.md 3.4.1: the v2 record stream, group by group, into out. */
static int build_stream(const struct block_builder *b, struct buf *out)
{
    const struct block_ent *ents = (const struct block_ent *)(const void *)b->ents.data;
    uint32_t counts[PACK_GROUPS] = { 0 };

    out->len = 0;
    if (buf_reserve(out, stream_bound(b, 0)) < 0) {
        return VG_ELIMIT;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        counts[ents[i].group]++;
    }
    uint8_t *p = out->data;
    for (uint32_t g = 0; g < PACK_GROUPS; g++) {
        if (counts[g] == 0) {
            continue;
        }
        p = store__put_uvarint(p, counts[g]);
        int64_t prev_ts = 0;
        uint64_t prev_seq = 0;
        for (uint32_t i = 0; i < b->count; i++) {
            const struct block_ent *e = &ents[i];
            if (e->group != g) {
                continue;
            }
            uint64_t dts = (uint64_t)e->ts - (uint64_t)prev_ts;
            p = store__put_uvarint(p, store__zigzag(dts));
            p = store__put_uvarint(p, e->seq - prev_seq);
            p = store__put_uvarint(p, e->len);
            memcpy(p, b->raw.data + e->off, e->len);
            p += e->len;
            prev_ts = e->ts;
            prev_seq = e->seq;
        }
    }
    out->len = (size_t)(p - out->data);
    out->data[out->len] = 0;
    return 0;
}

void block__enc_init(struct block_enc *enc, int codec, int level)
{
    memset(enc, 0, sizeof(*enc));
    enc->codec = codec;
    enc->level = level;
    if ((codec == 0 || codec == BLOCK_CODEC_LZ4) && level > 0) {
        enc->lz4hc_state = xmalloc((size_t)LZ4_sizeofStateHC());
    }
    enc->zstd_cctx = ZSTD_createCCtx(); /* v3: zstd columns in every block (3.8.5) */
}

void block__enc_release(struct block_enc *enc)
{
    free(enc->lz4hc_state);
    enc->lz4hc_state = NULL;
    ZSTD_freeCCtx(enc->zstd_cctx);
    enc->zstd_cctx = NULL;
}

static void block_seal(struct block_hdr *h, const uint8_t prev[VG_SHA256_LEN], struct digest *d,
                       struct buf *out, struct span payload);

/* Compresses one column (segment.md 3.8) into dst (room for bound bytes); sets e->codec
 * and e->stored_len. A column that does not shrink (or is tiny) is stored plain. */
static void col_compress(const struct block_enc *enc, struct block3_dirent *e, const uint8_t *src,
                         uint8_t *dst, size_t bound)
{
    size_t n = 0;

    e->codec = B3_CODEC_PLAIN;
    /* segment.md 3.8.5: the raw chunks with the block's codec; the other columns, small
     * and made of codes and short strings that want entropy coding, with zstd (level 1
     * in an LZ4HC block, the block's level in a zstd one); plain LZ4 (the least CPU)
     * for every column of a plain LZ4 block. */
    bool zstd = enc->codec == BLOCK_CODEC_ZSTD || (e->id != B3_RAW && enc->level > 0);
    if (e->raw_len >= 64) {
        if (zstd) {
            int level = enc->codec == BLOCK_CODEC_ZSTD ? (enc->level ? enc->level : 3) : 1;
            size_t z = enc->zstd_cctx
                           ? ZSTD_compressCCtx(enc->zstd_cctx, dst, bound, src, e->raw_len, level)
                           : ZSTD_compress(dst, bound, src, e->raw_len, level);
            if (!ZSTD_isError(z) && z > 0 && z < e->raw_len &&
                e->raw_len <= (uint64_t)BLOCK_ZSTD_MAX_RATIO * z) {
                e->codec = BLOCK_CODEC_ZSTD;
                n = z;
            }
        } else {
            int lb = LZ4_compressBound((int)e->raw_len);
            int k = enc->level > 0
                        ? (enc->lz4hc_state ? LZ4_compress_HC_extStateHC(
                                                  enc->lz4hc_state, (const char *)src, (char *)dst,
                                                  (int)e->raw_len, lb, enc->level)
                                            : LZ4_compress_HC((const char *)src, (char *)dst,
                                                              (int)e->raw_len, lb, enc->level))
                        : LZ4_compress_default((const char *)src, (char *)dst, (int)e->raw_len, lb);
            if (k > 0 && (size_t)k < e->raw_len) {
                e->codec = BLOCK_CODEC_LZ4;
                n = (size_t)k;
            }
        }
    }
    if (e->codec == B3_CODEC_PLAIN) {
        memcpy(dst, src, e->raw_len);
        n = e->raw_len;
    }
    e->stored_len = (uint32_t)n;
    e->crc = (uint32_t)crc32_z(0L, dst, n);
}

/* segment.md 3.8: a v3 block: header, index, column directory, compressed columns. */
static int finish_v3(struct block_builder *b, const uint8_t prev[VG_SHA256_LEN], struct digest *d,
                     struct buf *out, struct block_hdr *h, const struct block_enc *enc)
{
    uint8_t codec = enc->codec == BLOCK_CODEC_ZSTD ? BLOCK_CODEC_ZSTD : BLOCK_CODEC_LZ4;
    /* Raw chunks: what a reader of a few rows decompresses (3.8.3). LZ4 sees 64 KiB
     * back anyway; zstd gains from more. */
    size_t chunk = codec == BLOCK_CODEC_ZSTD ? (256u << 10) : (64u << 10);
    struct block3_dirent *ents = xmalloc(sizeof(*ents) * B3_MAX_COLS);
    uint32_t n = 0;
    int rc;

    b->index.len = 0;
    if ((rc = bix__builder_finish(&b->ix, &b->index)) < 0 ||
        (rc = block3__layout(b, chunk, ents, &n, &b->scratch)) < 0) {
        goto out;
    }
    size_t dir_len = B3_DIR_HDR + (size_t)n * B3_DIR_ENT;
    if (dir_len + b->scratch.len > BLOCK_MAX_RAW || b->raw.len > BLOCK_MAX_RAW) {
        rc = VG_ELIMIT;
        goto out;
    }
    size_t bound = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t zb = ZSTD_compressBound(ents[i].raw_len);
        size_t lb = (size_t)LZ4_compressBound((int)ents[i].raw_len);
        bound += zb > lb ? zb : lb;
    }
    out->len = 0;
    if (buf_reserve(out, BLOCK_HDR_LEN + b->index.len + dir_len + bound) < 0) {
        rc = VG_ELIMIT;
        goto out;
    }
    if (b->index.len > 0) {
        memcpy(out->data + BLOCK_HDR_LEN, b->index.data, b->index.len);
    }
    uint8_t *dir = out->data + BLOCK_HDR_LEN + b->index.len;
    uint8_t *dst = dir + dir_len;
    const uint8_t *src = b->scratch.data;
    size_t stored = dir_len;
    for (uint32_t i = 0; i < n; i++) {
        size_t zb = ZSTD_compressBound(ents[i].raw_len);
        size_t lb = (size_t)LZ4_compressBound((int)ents[i].raw_len);
        col_compress(enc, &ents[i], src, dst, zb > lb ? zb : lb);
        src += ents[i].raw_len;
        dst += ents[i].stored_len;
        stored += ents[i].stored_len;
    }
    block3__dir_encode(ents, n, dir);

    memset(h, 0, sizeof(*h));
    h->version = BLOCK_VERSION_3;
    h->codec = codec;
    h->count = b->count;
    h->raw_len = (uint32_t)(dir_len + b->scratch.len);
    h->stored_len = (uint32_t)stored;
    h->index_len = (uint32_t)b->index.len;
    h->index_crc = (uint32_t)crc32_z(0L, b->index.data, b->index.len);
    h->dir_len = (uint32_t)dir_len;
    h->dir_crc = (uint32_t)crc32_z(0L, dir, dir_len);
    h->rec_len = (uint32_t)b->raw.len;
    h->ts_min = b->ts_min;
    h->ts_max = b->ts_max;
    h->seq_min = b->seq_min;
    h->seq_max = b->seq_max;
    block_seal(h, prev, d, out, (struct span){ out->data + BLOCK_HDR_LEN, b->index.len + stored });
    rc = 0;
out:
    free(ents);
    return rc;
}

int block__builder_finish(struct block_builder *b, const uint8_t prev[VG_SHA256_LEN],
                          struct digest *d, struct buf *out, struct block_hdr *h,
                          const struct block_enc *enc)
{
    static const struct block_enc plain_lz4 = { 0 };
    struct span stream = buf_span(&b->raw);
    struct span index = { NULL, 0 };
    int rc;

    if (b->count == 0 || b->raw.len == 0) {
        return -EINVAL;
    }
    if (!enc) {
        enc = &plain_lz4;
    }
    if (!b->v1 && !b->v2) {
        return finish_v3(b, prev, d, out, h, enc);
    }
    if (!b->v1) {
        b->index.len = 0;
        if ((rc = build_stream(b, &b->scratch)) < 0 ||
            (rc = bix__builder_finish(&b->ix, &b->index)) < 0) {
            return rc;
        }
        stream = buf_span(&b->scratch);
        index = buf_span(&b->index);
    }
    if (stream.n > BLOCK_MAX_RAW) {
        return VG_ELIMIT;
    }
    size_t bound = ZSTD_compressBound(stream.n);
    size_t lbound = (size_t)LZ4_compressBound((int)stream.n);
    bound = lbound > bound ? lbound : bound;
    out->len = 0;
    if (buf_reserve(out, BLOCK_HDR_LEN + index.n + bound) < 0) {
        return VG_ELIMIT;
    }
    /* segment.md 3.2, 3.3: the index, then the compressed stream after the header's room. */
    if (index.n > 0) {
        memcpy(out->data + BLOCK_HDR_LEN, index.p, index.n);
    }
    char *dst = (char *)out->data + BLOCK_HDR_LEN + index.n;
    uint8_t codec = BLOCK_CODEC_LZ4;
    size_t n = 0;
    if (enc->codec == BLOCK_CODEC_ZSTD && !b->v1) {
        size_t z = ZSTD_compress(dst, bound, stream.p, stream.n, enc->level ? enc->level : 3);
        /* A block that zstd shrinks past what a reader accepts (3.7) is stored as lz4. */
        if (!ZSTD_isError(z) && z > 0 && stream.n <= (uint64_t)BLOCK_ZSTD_MAX_RATIO * z) {
            codec = BLOCK_CODEC_ZSTD;
            n = z;
        }
    }
    if (codec == BLOCK_CODEC_LZ4) {
        int level = enc->codec == BLOCK_CODEC_ZSTD ? 0 : enc->level;
        int k = level > 0
                    ? (enc->lz4hc_state
                           ? LZ4_compress_HC_extStateHC(enc->lz4hc_state, (const char *)stream.p,
                                                        dst, (int)stream.n, (int)lbound, level)
                           : LZ4_compress_HC((const char *)stream.p, dst, (int)stream.n,
                                             (int)lbound, level))
                    : LZ4_compress_default((const char *)stream.p, dst, (int)stream.n, (int)lbound);
        if (k <= 0) {
            return -EIO; /* cannot happen with a buffer of LZ4_compressBound */
        }
        n = (size_t)k;
    }
    memset(h, 0, sizeof(*h));
    h->version = b->v1 ? BLOCK_VERSION_1 : BLOCK_VERSION_2;
    h->codec = codec;
    h->count = b->count;
    h->raw_len = (uint32_t)stream.n;
    h->stored_len = (uint32_t)n;
    h->index_len = (uint32_t)index.n;
    h->index_crc = (uint32_t)crc32_z(0L, index.p, index.n);
    h->ts_min = b->ts_min;
    h->ts_max = b->ts_max;
    h->seq_min = b->seq_min;
    h->seq_max = b->seq_max;
    struct span payload = { out->data + BLOCK_HDR_LEN, index.n + n };
    block_seal(h, prev, d, out, payload);
    return 0;
}

/* segment.md 3.6, then 3.5 over the header that holds the hash; the header into out. */
static void block_seal(struct block_hdr *h, const uint8_t prev[VG_SHA256_LEN], struct digest *d,
                       struct buf *out, struct span payload)
{
    uint8_t tmp[BLOCK_HDR_LEN];

    block__hdr_encode(h, tmp);
    digest_update(d, prev, VG_SHA256_LEN);
    digest_update(d, tmp, BLOCK_HDR_LEN);
    digest_update(d, payload.p, payload.n);
    digest_final(d, h->hash);
    memcpy(tmp + BH_HASH, h->hash, VG_SHA256_LEN);
    if (h->version == BLOCK_VERSION_3) {
        put_u32(tmp + BH_HDR_CRC, (uint32_t)crc32(0L, tmp, BH_HDR_CRC));
    }
    uLong crc = crc32(0L, tmp, BLOCK_HDR_LEN);
    h->crc = (uint32_t)crc32_z(crc, payload.p, payload.n);
    put_u32(tmp + BH_CRC, h->crc);
    memcpy(out->data, tmp, BLOCK_HDR_LEN);
    out->len = BLOCK_HDR_LEN + payload.n;
    out->data[out->len] = 0;
}
