/* tests/unit/store/test_block3.c: format v3 blocks (schemas/segment.md 3.8): records
 * come back byte for byte, whether they go into the columns or verbatim (the real
 * corpus mapped to schema-v1 records, and odd records); each column has its own
 * checksum, and a damaged column is named by vigil verify; v2 blocks still read
 * beside v3 ones. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "schemas/map.h"
#include "schemas/record.h"
#include "store/bindex.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tdir.h"

#define HOUR (3600 * VG_NS_PER_SEC)
#define T0   (1714568400LL * VG_NS_PER_SEC) /* 2024-05-01T13:00:00Z */

static int setup(void **state)
{
    return tdir_setup(state, "block3");
}

static int teardown(void **state)
{
    return tdir_teardown(state);
}

static const char *corpus_dir(void)
{
    const char *d = getenv("VG_CORPUS_DIR");
    return d ? d : "tests/data/corpus";
}

/* Records to put in a block: their bytes back to back, and where each is. */
struct recs {
    struct buf bytes;
    size_t n;
    size_t off[8192];
    size_t len[8192];
};

static void recs_add(struct recs *r, struct span rec)
{
    assert_true(r->n < VG_ARRAY_LEN(r->off));
    r->off[r->n] = r->bytes.len;
    r->len[r->n] = rec.n;
    assert_int_equal(buf_append(&r->bytes, rec.p, rec.n), 0);
    r->n++;
}

static struct span recs_get(const struct recs *r, size_t i)
{
    return (struct span){ r->bytes.data + r->off[i], r->len[i] };
}

/* Builds one block of records [from, to) (seq i + 1, ts varying), checks it whole,
 * decodes it and finds every record exactly once, byte for byte. Returns how many went
 * verbatim (the directory's count). */
static uint32_t block_roundtrip(const struct recs *r, size_t from, size_t to,
                                const struct block_enc *enc)
{
    struct block_builder b;
    struct buf out;
    struct buf raw;
    struct buf scratch;
    struct block_hdr h;
    struct block_hdr h2;
    struct errbuf why;
    struct digest *d = digest_new();
    uint8_t prev[VG_SHA256_LEN] = { 1 };
    bool *seen = xcalloc(to - from, sizeof(*seen));

    block__builder_init(&b);
    for (size_t i = from; i < to; i++) {
        int64_t ts = T0 + (int64_t)((i * 7919) % 1000) * VG_NS_PER_SEC - (int64_t)i;
        assert_int_equal(block__builder_add(&b, ts, i + 1, recs_get(r, i)), 0);
    }
    buf_init(&out, block__max_len());
    buf_init(&raw, BLOCK_MAX_RAW);
    buf_init(&scratch, BLOCK_MAX_RAW);
    assert_int_equal(block__builder_finish(&b, prev, d, &out, &h, enc), 0);
    assert_int_equal(h.version, BLOCK_VERSION_3);
    errbuf_clear(&why);
    assert_int_equal(block__hdr_decode(out.data, &h2, &why), 0);
    assert_int_equal(block__len(&h2), out.len);
    struct span payload = { out.data + BLOCK_HDR_LEN, out.len - BLOCK_HDR_LEN };
    assert_int_equal(block__verify(out.data, &h2, payload, prev, d, &why), 0);
    struct span data = { payload.p + h2.index_len, h2.stored_len };
    assert_int_equal(block__decompress(&h2, data, &raw, &why), 0);

    struct block3_dirent *ents = xmalloc(sizeof(*ents) * B3_MAX_COLS);
    uint32_t nents;
    uint32_t verbatim = 0;
    assert_int_equal(block3__dir_parse(&h2, data, ents, &nents, &why), 0);
    for (uint32_t i = 0; i < nents; i++) {
        if (ents[i].id == B3_VERBATIM) {
            verbatim = ents[i].nvals;
        }
        /* segment.md 3.8.5: raw with the block's codec, the other columns zstd, but in
         * plain LZ4 blocks (NULL: plain LZ4) */
        if (ents[i].codec != B3_CODEC_PLAIN) {
            bool lz4 = !enc || (enc->codec != BLOCK_CODEC_ZSTD &&
                                (ents[i].id == B3_RAW || enc->level == 0));
            assert_int_equal(ents[i].codec, lz4 ? BLOCK_CODEC_LZ4 : BLOCK_CODEC_ZSTD);
        }
    }
    free(ents);

    struct block_iter it;
    int64_t ts;
    uint64_t seq;
    struct span rec;
    size_t n = 0;
    int rc;
    block__iter_init(&it, &h2, buf_span(&raw), &scratch);
    while ((rc = block__iter_next(&it, &ts, &seq, &rec, &why)) == 1) {
        assert_true(seq >= from + 1 && seq <= to);
        size_t i = seq - 1;
        assert_false(seen[i - from]);
        seen[i - from] = true;
        assert_int_equal(ts, T0 + (int64_t)((i * 7919) % 1000) * VG_NS_PER_SEC - (int64_t)i);
        if (!span_eq(rec, recs_get(r, i))) {
            fail_msg("record %zu does not come back byte for byte", i);
        }
        n++;
    }
    if (rc != 0) {
        fail_msg("%s", errbuf_msg(&why));
    }
    assert_int_equal(n, to - from);
    free(seen);
    buf_release(&out);
    buf_release(&raw);
    buf_release(&scratch);
    block__builder_release(&b);
    digest_free(d);
    return verbatim;
}

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *p = xmalloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* Every JSON document of path, mapped (map_event, as the collector does) and encoded as
 * the collector stores it. Returns how many. */
static size_t add_corpus_file(struct recs *r, const char *path, uint64_t *seq)
{
    size_t len;
    char *text = read_text(path, &len);
    struct span in = { (const uint8_t *)text, len };
    struct buf mp;
    struct buf scratch;
    struct buf enc;
    size_t n = 0;

    buf_init(&mp, 1u << 24);
    buf_init(&scratch, 1u << 20);
    buf_init(&enc, 1u << 24);
    for (;;) {
        size_t used = 0;
        struct errbuf eb;
        struct rec rec;
        errbuf_clear(&eb);
        buf_reset(&mp);
        int rc = json_to_mp(in, &mp, &used, &eb);
        if (rc != 0) {
            break; /* the end, or text that is not JSON (a log line) */
        }
        span_advance(&in, used);
        scratch.len = 0;
        if (map_event(MAP_AUTO, buf_span(&mp), T0, "http", &rec, &scratch, &eb) != 0) {
            continue;
        }
        rec.received = T0 + (int64_t)*seq * 1000;
        rec.has_received = true;
        rec.seq = ++*seq;
        rec.has_seq = true;
        rec_set(&rec, VG_F_AGENT, SPAN_LIT("agent-7"));
        enc.len = 0;
        assert_int_equal(rec_encode(&rec, &enc), 0);
        recs_add(r, buf_span(&enc));
        n++;
    }
    buf_release(&mp);
    buf_release(&scratch);
    buf_release(&enc);
    free(text);
    return n;
}

static size_t add_corpus_dir(struct recs *r, const char *rel, uint64_t *seq)
{
    char dir[2048];
    char path[4096];
    size_t n = 0;
    snprintf(dir, sizeof(dir), "%s/%s", corpus_dir(), rel);
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        size_t l = strlen(e->d_name);
        if ((l > 5 && strcmp(e->d_name + l - 5, ".json") == 0) ||
            (l > 7 && strcmp(e->d_name + l - 7, ".ndjson") == 0) ||
            (l > 4 && strcmp(e->d_name + l - 4, ".log") == 0)) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            n += add_corpus_file(r, path, seq);
        }
    }
    closedir(dp);
    return n;
}

/* The real corpus (Falco alerts, k8s audit events) as the collector stores it: every
 * record into the columns, none verbatim, each back byte for byte; with LZ4 (hot) and
 * zstd (compacted). */
static void test_corpus_roundtrip(void **state)
{
    struct recs *r = xcalloc(1, sizeof(*r));
    uint64_t seq = 0;
    struct block_enc lz4;
    struct block_enc zstd;

    (void)state;
    buf_init(&r->bytes, 1u << 26);
    size_t n = add_corpus_dir(r, "falco", &seq);
    n += add_corpus_dir(r, "falco/extracted", &seq);
    n += add_corpus_dir(r, "k8s-audit", &seq);
    n += add_corpus_dir(r, "k8s-audit/falco-trace-files", &seq);
    assert_true(n >= 60);
    assert_int_equal(n, r->n);
    block__enc_init(&lz4, BLOCK_CODEC_LZ4, 2);
    block__enc_init(&zstd, BLOCK_CODEC_ZSTD, 6);
    assert_int_equal(block_roundtrip(r, 0, r->n, NULL), 0);
    assert_int_equal(block_roundtrip(r, 0, r->n, &lz4), 0);
    assert_int_equal(block_roundtrip(r, 0, r->n, &zstd), 0);
    assert_int_equal(block_roundtrip(r, 3, 4, &zstd), 0); /* one record */
    block__enc_release(&lz4);
    block__enc_release(&zstd);
    buf_release(&r->bytes);
    free(r);
}

/* A schema-v1 record with the given cmdline and user, raw {"cmd": cmdline}. */
static void odd_rec(struct buf *out, struct buf *raw, int64_t ts, const char *user,
                    struct span cmdline, size_t raw_pad)
{
    struct rec r;
    rec_init(&r);
    r.ts = ts;
    r.has_ts = true;
    rec_set(&r, VG_F_USER, span_str(user));
    rec_set(&r, VG_F_CMDLINE, cmdline);
    raw->len = 0;
    assert_int_equal(mp_put_map(raw, 2), 0);
    assert_int_equal(mp_put_cstr(raw, "cmd"), 0);
    assert_int_equal(mp_put_str(raw, (const char *)cmdline.p, cmdline.n), 0);
    assert_int_equal(mp_put_cstr(raw, "pad"), 0);
    char *pad = xmalloc(raw_pad + 1);
    for (size_t i = 0; i < raw_pad; i++) {
        pad[i] = (char)('a' + (i * 31 + raw_pad) % 26);
    }
    assert_int_equal(mp_put_str(raw, pad, raw_pad), 0);
    free(pad);
    r.raw = buf_span(raw);
    out->len = 0;
    assert_int_equal(rec_encode(&r, out), 0);
}

/* Odd records: not msgpack, not in rec_encode's form, the empty map, every string
 * header size, extreme numbers, raw events big enough to fill several chunks. The
 * records that are not exactly what pack__emit writes go verbatim; all come back. */
static void test_odd_records(void **state)
{
    struct recs *r = xcalloc(1, sizeof(*r));
    struct buf b;
    struct buf raw;
    uint32_t want_verbatim = 0;

    (void)state;
    buf_init(&r->bytes, 1u << 26);
    buf_init(&b, 1u << 22);
    buf_init(&raw, 1u << 22);
    recs_add(r, SPAN_LIT("hello, not msgpack"));
    recs_add(r, SPAN_LIT("\xc0"));
    want_verbatim += 2;
    b.len = 0; /* keys out of order */
    assert_int_equal(mp_put_map(&b, 2), 0);
    assert_int_equal(mp_put_cstr(&b, "user"), 0);
    assert_int_equal(mp_put_cstr(&b, "bob"), 0);
    assert_int_equal(mp_put_cstr(&b, "host"), 0);
    assert_int_equal(mp_put_cstr(&b, "h1"), 0);
    recs_add(r, buf_span(&b));
    b.len = 0; /* a key the table does not know */
    assert_int_equal(mp_put_map(&b, 2), 0);
    assert_int_equal(mp_put_cstr(&b, "host"), 0);
    assert_int_equal(mp_put_cstr(&b, "h1"), 0);
    assert_int_equal(mp_put_cstr(&b, "tenant"), 0);
    assert_int_equal(mp_put_cstr(&b, "acme"), 0);
    recs_add(r, buf_span(&b));
    const uint8_t wide[] = { 0x81, 0xa3, 's', 'e', 'q', 0xcf, 0, 0, 0, 0, 0, 0, 0, 5 };
    recs_add(r, (struct span){ wide, sizeof(wide) });
    const uint8_t m16[] = { 0xde, 0, 1, 0xa4, 'h', 'o', 's', 't', 0xa1, 'x' };
    recs_add(r, (struct span){ m16, sizeof(m16) });
    const uint8_t trail[] = { 0x81, 0xa4, 'h', 'o', 's', 't', 0xa1, 'x', 0xc0 };
    recs_add(r, (struct span){ trail, sizeof(trail) });
    const uint8_t rawplain[] = { 0x81, 0xa3, 'r', 'a', 'w', 0xa2, 'h', 'i' };
    recs_add(r, (struct span){ rawplain, sizeof(rawplain) });
    want_verbatim += 6;
    /* Packed: the empty map, a lone seq of each width, negative and extreme ints. */
    const uint8_t empty[] = { 0x80 };
    recs_add(r, (struct span){ empty, sizeof(empty) });
    const int64_t nums[] = { 0, -1, -33, 127, 128, 65536, INT64_MIN, INT64_MAX, -5000000000LL };
    for (size_t i = 0; i < VG_ARRAY_LEN(nums); i++) {
        struct rec x;
        rec_init(&x);
        x.ts = nums[i];
        x.has_ts = true;
        x.received = nums[VG_ARRAY_LEN(nums) - 1 - i];
        x.has_received = true;
        x.seq = (uint64_t)nums[i];
        x.has_seq = true;
        x.dst_port = nums[i];
        x.has_dst_port = true;
        rec_set(&x, VG_F_HOST, SPAN_LIT("h"));
        b.len = 0;
        assert_int_equal(rec_encode(&x, &b), 0);
        recs_add(r, buf_span(&b));
    }
    /* Strings around every msgpack header size, repeated (one dictionary entry). */
    const size_t lens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };
    for (size_t i = 0; i < VG_ARRAY_LEN(lens); i++) {
        char *s = xmalloc(lens[i] + 1);
        memset(s, 'a' + (int)i, lens[i]);
        for (int k = 0; k < 2; k++) {
            odd_rec(&b, &raw, T0 + (int64_t)i, k ? "bob" : "alice",
                    (struct span){ (const uint8_t *)s, lens[i] }, 10);
            recs_add(r, buf_span(&b));
        }
        free(s);
    }
    /* Raw events past a chunk (64 KiB LZ4, 128 KiB zstd): several chunks, one event
     * larger than a chunk. */
    for (int i = 0; i < 40; i++) {
        odd_rec(&b, &raw, T0 + i, i % 3 ? "carol" : "dave", SPAN_LIT("ls -l"),
                i == 7 ? 300000 : 9000 + (size_t)i);
        recs_add(r, buf_span(&b));
    }

    struct block_enc lz4;
    struct block_enc zstd;
    block__enc_init(&lz4, BLOCK_CODEC_LZ4, 0);
    block__enc_init(&zstd, BLOCK_CODEC_ZSTD, 3);
    assert_int_equal(block_roundtrip(r, 0, r->n, NULL), want_verbatim);
    assert_int_equal(block_roundtrip(r, 0, r->n, &lz4), want_verbatim);
    assert_int_equal(block_roundtrip(r, 0, r->n, &zstd), want_verbatim);
    assert_int_equal(block_roundtrip(r, 0, 1, NULL), 1);  /* only verbatim */
    assert_int_equal(block_roundtrip(r, 8, 9, &zstd), 0); /* only {} */
    block__enc_release(&lz4);
    block__enc_release(&zstd);
    buf_release(&b);
    buf_release(&raw);
    buf_release(&r->bytes);
    free(r);
}

/* A damaged v3 block: every flipped byte of the data section is caught, by the
 * directory's or a column's own checksum (a reader of some columns relies on them), and
 * vigil verify names the column. */
static void test_corrupt_column_named(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = { .dir = t->dir, .partition_ns = HOUR, .block_bytes = 1u << 20 };
    struct store *st = NULL;
    struct errbuf eb;
    struct buf b;
    struct buf raw;

    buf_init(&b, 1u << 20);
    buf_init(&raw, 1u << 20);
    errbuf_clear(&eb);
    log_set_level(LOG_LVL_ERROR);
    assert_int_equal(store_open(&o, &st, &eb), 0);
    for (int i = 0; i < 300; i++) {
        char user[16];
        snprintf(user, sizeof(user), "user%d", i % 5);
        odd_rec(&b, &raw, T0 + i, user, SPAN_LIT("cat /etc/shadow"), 50);
        assert_int_equal(store_append(st, T0 + i, (uint64_t)i + 1, buf_span(&b)), 0);
    }
    assert_int_equal(store_commit(st), 0);
    store_close(st);

    /* The first block of the only segment. */
    char segdir[1024];
    char path[2048];
    snprintf(segdir, sizeof(segdir), "%s/segments", t->dir);
    DIR *dp = opendir(segdir);
    assert_non_null(dp);
    struct dirent *e;
    path[0] = 0;
    while ((e = readdir(dp)) != NULL) {
        if (strstr(e->d_name, ".vseg")) {
            snprintf(path, sizeof(path), "%s/%s", segdir, e->d_name);
        }
    }
    closedir(dp);
    assert_true(path[0] != 0);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t hb[BLOCK_HDR_LEN];
    struct block_hdr h;
    assert_int_equal(pread(fd, hb, sizeof(hb), SEG_HDR_LEN), (ssize_t)sizeof(hb));
    errbuf_clear(&eb);
    assert_int_equal(block__hdr_decode(hb, &h, &eb), 0);
    assert_int_equal(h.version, BLOCK_VERSION_3);
    size_t dlen = h.stored_len;
    uint8_t *data = xmalloc(dlen);
    off_t doff = SEG_HDR_LEN + BLOCK_HDR_LEN + h.index_len;
    assert_int_equal(pread(fd, data, dlen, doff), (ssize_t)dlen);
    struct block3_dirent *ents = xmalloc(sizeof(*ents) * B3_MAX_COLS);
    uint32_t n;
    assert_int_equal(block3__dir_parse(&h, (struct span){ data, dlen }, ents, &n, &eb), 0);
    assert_int_equal(block__cols_check(&h, (struct span){ data, dlen }, &eb), 0);
    /* Each flipped byte: the columns' checksums catch it. */
    for (size_t i = 0; i < dlen; i += 13) {
        data[i] ^= 0x40;
        errbuf_clear(&eb);
        assert_int_equal(block__cols_check(&h, (struct span){ data, dlen }, &eb), VG_ECORRUPT);
        data[i] ^= 0x40;
    }
    /* Flip a byte in the middle of the user column: verify names it. */
    size_t at = h.dir_len;
    bool found = false;
    for (uint32_t i = 0; i < n; i++) {
        if (ents[i].id == B3_STR + PK_USER) {
            found = true;
            break;
        }
        at += ents[i].stored_len;
    }
    assert_true(found);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, doff + (off_t)at + 1), 1);
    byte ^= 0x11;
    assert_int_equal(pwrite(fd, &byte, 1, doff + (off_t)at + 1), 1);
    close(fd);
    char report[8192];
    memset(report, 0, sizeof(report));
    FILE *f = fmemopen(report, sizeof(report) - 1, "w");
    errbuf_clear(&eb);
    assert_int_equal(store_verify(t->dir, NULL, f, NULL, &eb), VG_ECORRUPT);
    fclose(f);
    if (!strstr(report, "column 'user'")) {
        fail_msg("verify does not name the column: %s", report);
    }
    free(ents);
    free(data);
    buf_release(&b);
    buf_release(&raw);
}

/* ---- reading parts of blocks (segment.md 3.8, 4.1) ---- */

/* Records seen by a scan: seq -> bytes. */
struct seen {
    size_t n;
    struct buf bytes;
    size_t off[4096];
    size_t len[4096];
    uint64_t seq[4096];
};

static int on_seen(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct seen *s = arg;
    (void)ts;
    assert_true(s->n < VG_ARRAY_LEN(s->off));
    s->off[s->n] = s->bytes.len;
    s->len[s->n] = rec.n;
    s->seq[s->n] = seq;
    assert_int_equal(buf_append(&s->bytes, rec.p, rec.n), 0);
    s->n++;
    return 0;
}

static void scan_fields(const char *dir, const struct store_need *need, uint32_t fields,
                        struct seen *s, struct store_scan_stats *st)
{
    struct store_reader *r = NULL;
    struct store_scan_plan *p = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    memset(st, 0, sizeof(*st));
    s->n = 0;
    s->bytes.len = 0;
    assert_int_equal(store_reader_open(dir, &r, &eb), 0);
    assert_int_equal(store_scan_plan_make(r, INT64_MIN, INT64_MAX, need, &p, st), 0);
    store_scan_plan_set_fields(p, fields);
    int rc = store_scan_plan_run(r, p, 0, 1, on_seen, s, st);
    if (rc != 0) {
        fail_msg("scan: %s", store_reader_error(r));
    }
    store_scan_plan_free(p);
    store_reader_close(r);
}

/* 2000 records of 8 users with 300 bytes of raw each, then one verbatim record. */
static void fill_users(const char *dir, struct recs *all)
{
    struct store_opts o = { .dir = dir, .partition_ns = HOUR, .block_bytes = 1u << 20 };
    struct store *st = NULL;
    struct errbuf eb;
    struct buf b;
    struct buf raw;

    buf_init(&b, 1u << 20);
    buf_init(&raw, 1u << 20);
    errbuf_clear(&eb);
    log_set_level(LOG_LVL_ERROR);
    assert_int_equal(store_open(&o, &st, &eb), 0);
    for (int i = 0; i < 2000; i++) {
        char user[16];
        snprintf(user, sizeof(user), "user%d", (i * 7) % 8);
        odd_rec(&b, &raw, T0 + i, user, i % 3 ? SPAN_LIT("ls -l") : SPAN_LIT("id"),
                300 + (size_t)(i % 50));
        recs_add(all, buf_span(&b));
        assert_int_equal(store_append(st, T0 + i, (uint64_t)i + 1, buf_span(&b)), 0);
    }
    recs_add(all, SPAN_LIT("user=user3, not msgpack"));
    assert_int_equal(store_append(st, T0 + 2000, 2001, SPAN_LIT("user=user3, not msgpack")), 0);
    assert_int_equal(store_commit(st), 0);
    store_close(st);
    buf_release(&b);
    buf_release(&raw);
}

/* A scan that reads the user field only gets every record with only its user (and the
 * verbatim one whole), and decompresses a small share of what a whole scan does. */
static void test_projection(void **state)
{
    struct tdir *t = *state;
    struct recs *all = xcalloc(1, sizeof(*all));
    struct seen *s = xcalloc(1, sizeof(*s));
    struct store_scan_stats whole;
    struct store_scan_stats part;

    buf_init(&all->bytes, 1u << 26);
    buf_init(&s->bytes, 1u << 26);
    fill_users(t->dir, all);
    scan_fields(t->dir, NULL, 0, s, &whole);
    assert_int_equal(s->n, 2001);
    for (size_t i = 0; i < s->n; i++) {
        assert_true(span_eq((struct span){ s->bytes.data + s->off[i], s->len[i] },
                            recs_get(all, s->seq[i] - 1)));
    }
    scan_fields(t->dir, NULL, store_field_bit("user"), s, &part);
    assert_int_equal(s->n, 2001);
    for (size_t i = 0; i < s->n; i++) {
        struct span got = { s->bytes.data + s->off[i], s->len[i] };
        if (s->seq[i] == 2001) {
            assert_true(span_eq(got, SPAN_LIT("user=user3, not msgpack")));
            continue;
        }
        struct rec r;
        struct span cur = got;
        assert_int_equal(rec_decode(&cur, &r), 0);
        char want[16];
        snprintf(want, sizeof(want), "user%d", (int)(((s->seq[i] - 1) * 7) % 8));
        assert_true(span_eq(r.str[VG_F_USER], span_str(want)));
        assert_true(r.str[VG_F_CMDLINE].p == NULL);
        assert_int_equal(r.raw.n, 0);
        assert_false(r.has_ts);
    }
    assert_true(part.bytes_decompressed * 10 < whole.bytes_decompressed);
    assert_true(part.bytes_read * 5 < whole.bytes_read);
    buf_release(&all->bytes);
    buf_release(&s->bytes);
    free(all);
    free(s);
}

/* A scan that needs user=user3 puts back only user3's rows (and the verbatim one, which
 * the columns cannot rule out), each byte for byte, from the raw chunks that hold them. */
static void test_postings(void **state)
{
    struct tdir *t = *state;
    struct recs *all = xcalloc(1, sizeof(*all));
    struct seen *s = xcalloc(1, sizeof(*s));
    struct store_scan_stats whole;
    struct store_scan_stats part;
    struct store_need_value v = { "user", SPAN_LIT("user3") };
    struct store_need need = { &v, 1, NULL, 0 };

    buf_init(&all->bytes, 1u << 26);
    buf_init(&s->bytes, 1u << 26);
    fill_users(t->dir, all);
    scan_fields(t->dir, NULL, 0, s, &whole);
    scan_fields(t->dir, &need, 0, s, &part);
    size_t want = 0;
    for (int i = 0; i < 2000; i++) {
        want += (i * 7) % 8 == 3;
    }
    assert_int_equal(s->n, want + 1);
    for (size_t i = 0; i < s->n; i++) {
        assert_true(span_eq((struct span){ s->bytes.data + s->off[i], s->len[i] },
                            recs_get(all, s->seq[i] - 1)));
        assert_true(s->seq[i] == 2001 || ((s->seq[i] - 1) * 7) % 8 == 3);
    }
    assert_int_equal(part.records_decoded, want + 1);
    assert_true(part.bytes_decompressed * 3 < whole.bytes_decompressed);
    /* A value no record has: nothing, and no raw chunk read. */
    v.value = SPAN_LIT("nobody");
    scan_fields(t->dir, &need, 0, s, &part);
    assert_int_equal(s->n, 0); /* the verbatim record lacks the bytes "nobody" */
    assert_true(part.bytes_decompressed * 3 < whole.bytes_decompressed);
    buf_release(&all->bytes);
    buf_release(&s->bytes);
    free(all);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_roundtrip),
        cmocka_unit_test(test_odd_records),
        cmocka_unit_test_setup_teardown(test_corrupt_column_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_projection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
