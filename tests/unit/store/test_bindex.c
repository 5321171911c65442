/* tests/unit/store/test_bindex.c: format v2 blocks (schemas/segment.md 3.2, 3.4): packed
 * records round trip exactly, the block index never rules out a block that holds what a
 * scan needs (exact sets, bloom filters, trigrams), a corrupt index is VG_ECORRUPT, v1
 * blocks still read, and a selective scan decompresses only the blocks that can match. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "schemas/record.h"
#include "store/bindex.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tdir.h"

#define HOUR (3600 * VG_NS_PER_SEC)
#define T0   (1714568400LL * VG_NS_PER_SEC) /* 2024-05-01T13:00:00Z */

/* ---- helpers ---- */

static int setup(void **state)
{
    return tdir_setup(state, "bindex");
}

static int teardown(void **state)
{
    return tdir_teardown(state);
}

/* A raw event: {"hostname": host, "msg": msg, "n": n, "ok": true, "tags": [a, b],
 * "f": {"user.name": user, "x": 1.5}}. */
static void make_raw(struct buf *b, const char *host, const char *msg, int64_t n, const char *user)
{
    b->len = 0;
    assert_int_equal(mp_put_map(b, 6), 0);
    assert_int_equal(mp_put_cstr(b, "hostname"), 0);
    assert_int_equal(mp_put_cstr(b, host), 0);
    assert_int_equal(mp_put_cstr(b, "msg"), 0);
    assert_int_equal(mp_put_cstr(b, msg), 0);
    assert_int_equal(mp_put_cstr(b, "n"), 0);
    assert_int_equal(mp_put_i64(b, n), 0);
    assert_int_equal(mp_put_cstr(b, "ok"), 0);
    assert_int_equal(mp_put_bool(b, true), 0);
    assert_int_equal(mp_put_cstr(b, "tags"), 0);
    assert_int_equal(mp_put_array(b, 2), 0);
    assert_int_equal(mp_put_cstr(b, "alpha"), 0);
    assert_int_equal(mp_put_cstr(b, "Beta"), 0);
    assert_int_equal(mp_put_cstr(b, "f"), 0);
    assert_int_equal(mp_put_map(b, 2), 0);
    assert_int_equal(mp_put_cstr(b, "user.name"), 0);
    assert_int_equal(mp_put_cstr(b, user), 0);
    assert_int_equal(mp_put_cstr(b, "x"), 0);
    assert_int_equal(mp_put_f64(b, 1.5), 0);
}

/* A schema-v1 record (rec_encode) whose host and user repeat strings of its raw. */
static void make_rec(struct buf *out, struct buf *raw, int64_t ts, uint64_t seq, int i)
{
    char host[64];
    char msg[160];
    char user[32];
    char pod[32];
    struct rec r;

    snprintf(host, sizeof(host), "node-%d", i % 7);
    snprintf(msg, sizeof(msg), "Failed password for user%d from 10.0.%d.%d port %d%s", i % 13,
             i % 5, i % 250, 1000 + i, i == 777 ? " kdevtmpfsi" : "");
    snprintf(user, sizeof(user), "user%d", i % 13);
    snprintf(pod, sizeof(pod), "pod-%d", i / 50);
    make_raw(raw, host, msg, (int64_t)i * 1000 - 50000, user);
    rec_init(&r);
    r.ts = ts;
    r.has_ts = true;
    r.received = (int64_t)((uint64_t)ts + 123456789u * (uint64_t)(i % 3)); /* may wrap */
    r.has_received = true;
    r.seq = seq;
    r.has_seq = true;
    rec_set(&r, VG_F_AGENT, SPAN_LIT("agent-1"));
    rec_set(&r, VG_F_SOURCE, i % 2 ? SPAN_LIT("sshd") : SPAN_LIT("falco"));
    rec_set(&r, VG_F_KIND, SPAN_LIT("auth"));
    rec_set(&r, VG_F_HOST, span_str(host));
    rec_set(&r, VG_F_POD, span_str(pod));
    rec_set(&r, VG_F_USER, span_str(user));
    rec_set(&r, VG_F_MESSAGE, span_str(msg));
    if (i % 4 == 0) {
        rec_set(&r, VG_F_SRC_IP, SPAN_LIT("10.0.0.1"));
        r.dst_port = -(int64_t)i;
        r.has_dst_port = true;
    }
    r.raw = buf_span(raw);
    out->len = 0;
    assert_int_equal(rec_encode(&r, out), 0);
}

/* Packs rec and unpacks it again: the same bytes, and *packed says which form. */
static void roundtrip(struct span rec, int64_t ts, uint64_t seq, bool *packed)
{
    struct pack_view *v = xmalloc(sizeof(*v));
    struct buf p;
    struct buf scratch;
    struct buf out;
    struct errbuf why;
    int64_t prev_w = 77;
    int64_t prev_r = 77;

    buf_init(&p, 1u << 24);
    buf_init(&scratch, 1u << 24);
    buf_init(&out, 1u << 24);
    pack__view(rec, v);
    assert_int_equal(pack__record(rec, v, ts, seq, &prev_w, &p, &scratch), 0);
    errbuf_clear(&why);
    assert_int_equal(pack__unpack(buf_span(&p), ts, seq, &prev_r, &out, &why), 0);
    assert_true(span_eq(buf_span(&out), rec));
    assert_true(prev_w == prev_r);
    *packed = p.data[0] == 1;
    /* Every cut of the packed bytes is refused or unpacks; never a crash. */
    for (size_t cut = 0; cut<p.len; cut += p.len> 2048 ? p.len / 61 : 1) {
        int64_t prev = 77;
        out.len = 0;
        int rc = pack__unpack((struct span){ p.data, cut }, ts, seq, &prev, &out, &why);
        assert_true(rc == 0 || rc == VG_ECORRUPT);
    }
    buf_release(&p);
    buf_release(&scratch);
    buf_release(&out);
    free(v);
}

/* ---- packed records ---- */

static void test_pack_roundtrip(void **state)
{
    struct buf rec;
    struct buf raw;
    bool packed;

    (void)state;
    buf_init(&rec, 1u << 20);
    buf_init(&raw, 1u << 20);
    const int64_t tss[] = { T0, -5, 0, INT64_MAX, INT64_MIN };
    for (int i = 0; i < 200; i++) {
        int64_t ts = tss[i % VG_ARRAY_LEN(tss)];
        make_rec(&rec, &raw, ts, (uint64_t)i * 977 + 1, i);
        roundtrip(buf_span(&rec), ts, (uint64_t)i * 977 + 1, &packed);
        assert_true(packed);
        /* The entry's ts and seq may differ from the record's own. */
        roundtrip(buf_span(&rec), ts ^ 12345, UINT64_MAX - (uint64_t)i, &packed);
        assert_true(packed);
    }

    /* Strings around every msgpack header size. */
    const size_t lens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };
    for (size_t i = 0; i < VG_ARRAY_LEN(lens); i++) {
        char *s = xmalloc(lens[i] + 1);
        memset(s, 'a' + (int)i, lens[i]);
        s[lens[i]] = 0;
        struct rec r;
        rec_init(&r);
        r.ts = T0;
        r.has_ts = true;
        rec_set(&r, VG_F_CMDLINE, (struct span){ (const uint8_t *)s, lens[i] });
        raw.len = 0;
        assert_int_equal(mp_put_map(&raw, 1), 0);
        assert_int_equal(mp_put_cstr(&raw, "cmd"), 0);
        assert_int_equal(mp_put_str(&raw, s, lens[i]), 0);
        r.raw = buf_span(&raw);
        rec.len = 0;
        assert_int_equal(rec_encode(&r, &rec), 0);
        roundtrip(buf_span(&rec), T0, 1, &packed);
        assert_true(packed);
        free(s);
    }

    /* Not schema-v1 records, or not in rec_encode's form: verbatim, still exact. */
    struct buf b;
    buf_init(&b, 1u << 16);
    const char *plain = "hello, not msgpack";
    roundtrip(span_str(plain), 1, 1, &packed);
    assert_false(packed);
    b.len = 0; /* keys out of order */
    assert_int_equal(mp_put_map(&b, 2), 0);
    assert_int_equal(mp_put_cstr(&b, "user"), 0);
    assert_int_equal(mp_put_cstr(&b, "bob"), 0);
    assert_int_equal(mp_put_cstr(&b, "host"), 0);
    assert_int_equal(mp_put_cstr(&b, "h1"), 0);
    roundtrip(buf_span(&b), 1, 1, &packed);
    assert_false(packed);
    b.len = 0; /* a key the table does not know */
    assert_int_equal(mp_put_map(&b, 2), 0);
    assert_int_equal(mp_put_cstr(&b, "host"), 0);
    assert_int_equal(mp_put_cstr(&b, "h1"), 0);
    assert_int_equal(mp_put_cstr(&b, "tenant"), 0);
    assert_int_equal(mp_put_cstr(&b, "acme"), 0);
    roundtrip(buf_span(&b), 1, 1, &packed);
    assert_false(packed);
    b.len = 0; /* raw as a plain value (older writers) */
    assert_int_equal(mp_put_map(&b, 2), 0);
    assert_int_equal(mp_put_cstr(&b, "host"), 0);
    assert_int_equal(mp_put_cstr(&b, "h1"), 0);
    assert_int_equal(mp_put_cstr(&b, "raw"), 0);
    assert_int_equal(mp_put_cstr(&b, "h1"), 0);
    roundtrip(buf_span(&b), 1, 1, &packed);
    assert_false(packed);
    /* A non-minimal integer encoding: seq 5 as uint64. */
    const uint8_t wide[] = { 0x81, 0xa3, 's', 'e', 'q', 0xcf, 0, 0, 0, 0, 0, 0, 0, 5 };
    roundtrip((struct span){ wide, sizeof(wide) }, 1, 5, &packed);
    assert_false(packed);
    /* map16 for one key. */
    const uint8_t m16[] = { 0xde, 0, 1, 0xa4, 'h', 'o', 's', 't', 0xa1, 'x' };
    roundtrip((struct span){ m16, sizeof(m16) }, 1, 5, &packed);
    assert_false(packed);
    /* Trailing bytes after the map. */
    const uint8_t trail[] = { 0x81, 0xa4, 'h', 'o', 's', 't', 0xa1, 'x', 0xc0 };
    roundtrip((struct span){ trail, sizeof(trail) }, 1, 5, &packed);
    assert_false(packed);

    buf_release(&b);
    buf_release(&rec);
    buf_release(&raw);
}

static void test_pack_hostile(void **state)
{
    struct buf out;
    struct errbuf why;
    int64_t prev = 0;

    (void)state;
    buf_init(&out, 1u << 20);
    const struct {
        const char *bytes;
        size_t n;
    } cases[] = {
        { "", 0 },                             /* empty */
        { "\x00", 1 },                         /* verbatim, nothing */
        { "\x07\x01", 2 },                     /* unknown form */
        { "\x01\x00", 2 },                     /* no keys */
        { "\x01\xff\xff\xff\xff\x7f", 6 },     /* key bits past the table */
        { "\x01\x80\x80\x80\x40\x03", 6 },     /* raw only, ref of... nothing */
        { "\x01\x80\x02\x03", 4 },             /* host: ordinal 1 of a raw with none */
        { "\x01\x80\x02\x7f", 4 },             /* host: literal past the end */
        { "\x01\x80\x82\x80\x40\x03\x90", 7 }, /* host ref ordinal 1; raw a fixmap of 0 */
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        out.len = 0;
        errbuf_clear(&why);
        int rc = pack__unpack((struct span){ (const uint8_t *)cases[i].bytes, cases[i].n }, 0, 0,
                              &prev, &out, &why);
        assert_int_equal(rc, VG_ECORRUPT);
        assert_true(strlen(errbuf_msg(&why)) > 0);
    }
    buf_release(&out);
}

/* ---- the index ---- */

/* Builds one block's index over n records whose host is host-<i*stride>. */
static void index_of(struct buf *index, int n, int stride, const char *msg)
{
    struct bix_builder b;
    struct pack_view *v = xmalloc(sizeof(*v));
    struct buf rec;
    struct buf raw;

    bix__builder_init(&b);
    buf_init(&rec, 1u << 16);
    buf_init(&raw, 1u << 16);
    for (int i = 0; i < n; i++) {
        char host[32];
        struct rec r;
        snprintf(host, sizeof(host), "host-%d", i * stride);
        make_raw(&raw, host, msg, i, "alice");
        rec_init(&r);
        r.ts = T0;
        r.has_ts = true;
        rec_set(&r, VG_F_HOST, span_str(host));
        rec_set(&r, VG_F_SRC_IP, SPAN_LIT("192.0.2.7"));
        r.raw = buf_span(&raw);
        rec.len = 0;
        assert_int_equal(rec_encode(&r, &rec), 0);
        pack__view(buf_span(&rec), v);
        assert_true(v->indexable);
        assert_int_equal(bix__builder_add(&b, v), 0);
    }
    index->len = 0;
    assert_int_equal(bix__builder_finish(&b, index), 0);
    struct errbuf why;
    errbuf_clear(&why);
    assert_int_equal(bix__check(buf_span(index), &why), 0);
    bix__builder_release(&b);
    buf_release(&rec);
    buf_release(&raw);
    free(v);
}

/* bix__may_match for one need: field=value (field NULL: none) and text (NULL: none). */
static int may(const struct buf *index, const char *field, const char *value, const char *text)
{
    struct store_need_value nv = { field, span_str(value ? value : "") };
    struct span t = span_str(text ? text : "");
    struct store_need need = { &nv, field ? 1 : 0, &t, text ? 1 : 0 };
    struct bix_query q;
    struct errbuf why;

    assert_int_equal(bix__query_init(&q, &need), 0);
    errbuf_clear(&why);
    int rc = bix__may_match(buf_span(index), &q, &why);
    bix__query_release(&q);
    return rc;
}

static void test_index_sets_and_blooms(void **state)
{
    struct buf index;
    char v[32];

    (void)state;
    buf_init(&index, BLOCK_MAX_INDEX);

    /* Few values: an exact set, no false positives. */
    index_of(&index, 20, 2, "x");
    for (int i = 0; i < 40; i++) {
        snprintf(v, sizeof(v), "host-%d", i);
        assert_int_equal(may(&index, "host", v, NULL), i % 2 == 0);
    }
    assert_int_equal(may(&index, "user", "alice", NULL), 0); /* no record has user */
    assert_int_equal(may(&index, "src_ip", "192.0.2.7", NULL), 1);
    assert_int_equal(may(&index, "src_ip", "::ffff:192.0.2.7", NULL), 1); /* one address */
    assert_int_equal(may(&index, "src_ip", "192.0.2.8", NULL), 0);
    assert_int_equal(may(&index, "message", "anything", NULL), 1); /* not indexed */

    /* Many values: a bloom filter. Every value added is found (a false positive costs a
     * read, a false negative a missed record); few absent ones are. */
    index_of(&index, 3000, 1, "x");
    int fp = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(v, sizeof(v), "host-%d", i);
        assert_int_equal(may(&index, "host", v, NULL), 1);
        snprintf(v, sizeof(v), "host-%d", i + 100000);
        fp += may(&index, "host", v, NULL);
    }
    print_message("bloom: %d false positives in 3000 (%.2f%%)\n", fp, fp / 30.0);
    assert_true(fp < 3000 / 20);
    buf_release(&index);
}

static void test_index_text(void **state)
{
    struct buf index;

    (void)state;
    buf_init(&index, BLOCK_MAX_INDEX);
    index_of(&index, 50, 1, "/tmp/kdevtmpfsi -o stratum+tcp://pool:3333 ÄÖü");
    /* Substrings of a string, in any ASCII case, across words too. */
    const char *yes[] = {
        "kdevtmpfsi", "KDevTmpFsi", "devtmp", "stratum+tcp", "tmp/kdev", "3333",
        "deadbeef",   "ab",         "alph",   "eta",         "ÄÖü",      "host-4",
        "true",       "alice",      "-o str", "ÄÖÜ" /* bytes >= 0x80 are one class: coarse, never
                                                       wrong */
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(yes); i++) {
        assert_int_equal(may(&index, NULL, NULL, yes[i]), 1);
    }
    /* Words no string holds (the trigrams they need are not in the block). */
    const char *no[] = { "xmrig", "kdevtmpfsj", "mimikatz", "Stratum+udp" };
    for (size_t i = 0; i < VG_ARRAY_LEN(no); i++) {
        assert_int_equal(may(&index, NULL, NULL, no[i]), 0);
    }
    /* Keys are not text: "hostname" is only a key. */
    assert_int_equal(may(&index, NULL, NULL, "hostname"), 0);
    buf_release(&index);
}

static void test_index_off(void **state)
{
    struct bix_builder b;
    struct pack_view *v = xmalloc(sizeof(*v));
    struct buf index;
    const uint8_t dup[] = { 0x82, 0xa4, 'h', 'o', 's', 't',  0xa1, 'x',
                            0xa4, 'h',  'o', 's', 't', 0xa1, 'y' };
    const uint8_t notstr[] = { 0x81, 0xa4, 'h', 'o', 's', 't', 0x05 };

    (void)state;
    buf_init(&index, BLOCK_MAX_INDEX);
    bix__builder_init(&b);
    const struct span bad[] = { SPAN_LIT("not a map"),
                                { dup, sizeof(dup) },
                                { notstr, sizeof(notstr) } };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        bix__builder_reset(&b);
        pack__view(bad[i], v);
        assert_false(v->indexable);
        assert_int_equal(bix__builder_add(&b, v), 0);
        index.len = 0;
        assert_int_equal(bix__builder_finish(&b, &index), 0);
        assert_int_equal(index.len, 0); /* no index: every block is read */
        assert_int_equal(may(&index, "host", "z", "zzzzz"), 1);
    }
    bix__builder_release(&b);
    buf_release(&index);
    free(v);
}

static void test_index_corrupt(void **state)
{
    struct buf index;
    struct errbuf why;

    (void)state;
    buf_init(&index, BLOCK_MAX_INDEX);
    index_of(&index, 100, 1, "some text here");
    /* Every cut is refused (a section ends exactly after an entry). */
    for (size_t cut = 2; cut < index.len; cut++) {
        struct span s = { index.data, cut };
        errbuf_clear(&why);
        int rc = bix__check(s, &why);
        if (rc == 0) {
            continue; /* cut at an entry boundary: a shorter, valid section */
        }
        assert_int_equal(rc, VG_ECORRUPT);
    }
    /* Flipped bytes: refused, or read as a (still bounded) section; never a crash. */
    for (size_t i = 0; i < index.len; i += 7) {
        index.data[i] ^= 0x5a;
        errbuf_clear(&why);
        int rc = bix__check(buf_span(&index), &why);
        assert_true(rc == 0 || rc == VG_ECORRUPT);
        index.data[i] ^= 0x5a;
    }
    buf_release(&index);
}

/* ---- through the store ---- */

struct collect {
    size_t n;
    uint64_t sum; /* of seqs */
};

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct collect *c = arg;
    (void)ts;
    (void)rec;
    c->n++;
    c->sum += seq;
    return 0;
}

/* n records, a block every ~20; pod-<i/50>. */
static void fill(const char *dir, int n)
{
    struct store_opts o = { .dir = dir, .partition_ns = HOUR, .block_bytes = 8192 };
    struct store *st = NULL;
    struct errbuf eb;
    struct buf rec;
    struct buf raw;

    errbuf_clear(&eb);
    assert_int_equal(store_open(&o, &st, &eb), 0);
    buf_init(&rec, 1u << 16);
    buf_init(&raw, 1u << 16);
    for (int i = 0; i < n; i++) {
        make_rec(&rec, &raw, T0 + i * VG_NS_PER_SEC, (uint64_t)i + 1, i);
        assert_int_equal(store_append(st, T0 + i * VG_NS_PER_SEC, (uint64_t)i + 1, buf_span(&rec)),
                         0);
    }
    assert_int_equal(store_commit(st), 0);
    store_close(st);
    buf_release(&rec);
    buf_release(&raw);
}

static int scan_need(const char *dir, const struct store_need *need, struct collect *c,
                     struct store_scan_stats *stats)
{
    struct store_reader *r = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(dir, &r, &eb), 0);
    memset(c, 0, sizeof(*c));
    memset(stats, 0, sizeof(*stats));
    int rc = store_scan_need(r, INT64_MIN, INT64_MAX, need, on_rec, c, stats);
    store_reader_close(r);
    return rc;
}

static void test_selective_scan(void **state)
{
    struct tdir *t = *state;
    struct collect all;
    struct collect c;
    struct store_scan_stats s_all;
    struct store_scan_stats s;
    const int n = 2000;

    fill(t->dir, n);
    assert_int_equal(scan_need(t->dir, NULL, &all, &s_all), 0);
    assert_int_equal(all.n, (size_t)n);
    assert_int_equal(s_all.blocks_skipped_index, 0);
    assert_true(s_all.blocks_read >= 40);

    /* pod-7 is records 350..399: two or three blocks of about twenty. */
    struct store_need_value pod = { "pod", SPAN_LIT("pod-7") };
    struct store_need need = { &pod, 1, NULL, 0 };
    assert_int_equal(scan_need(t->dir, &need, &c, &s), 0);
    print_message("pod-7: %" PRIu64 " blocks read, %" PRIu64 " skipped by index, of %" PRIu64
                  "; %" PRIu64 " of %" PRIu64 " bytes decompressed\n",
                  s.blocks_read, s.blocks_skipped_index, s_all.blocks_read, s.bytes_decompressed,
                  s_all.bytes_decompressed);
    assert_true(s.blocks_read >= 2 && s.blocks_read <= 4);
    assert_int_equal(s.blocks_read + s.blocks_skipped_index, s_all.blocks_read);
    assert_true(s.bytes_decompressed * 10 < s_all.bytes_decompressed);
    /* Records of the blocks read that lack the value are not unpacked, nor passed on. */
    assert_int_equal(c.n, 50);
    assert_int_equal(s.records, 50);
    uint64_t sum = 0;
    for (int i = 350; i < 400; i++) {
        sum += (uint64_t)i + 1;
    }
    assert_int_equal(c.sum, sum);

    /* A word of one record's message. */
    struct span word = SPAN_LIT("KDEVTMPFSI");
    struct store_need text = { NULL, 0, &word, 1 };
    assert_int_equal(scan_need(t->dir, &text, &c, &s), 0);
    assert_true(s.blocks_read <= 2);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.sum, 778);

    /* Nothing holds it: nothing decompressed. */
    struct store_need_value nobody = { "user", SPAN_LIT("mallory") };
    need.values = &nobody;
    assert_int_equal(scan_need(t->dir, &need, &c, &s), 0);
    assert_int_equal(s.blocks_read, 0);
    assert_int_equal(s.bytes_decompressed, 0);
    assert_int_equal(c.n, 0);
}

/* The first block's offset and header in the store's only segment file. */
static void first_block(const char *dir, char *path, size_t cap, struct block_hdr *h)
{
    char segdir[600];
    struct dirent **names = NULL;

    snprintf(segdir, sizeof(segdir), "%s/segments", dir);
    int n = scandir(segdir, &names, NULL, alphasort);
    assert_true(n >= 3);
    snprintf(path, cap, "%s/%s", segdir, names[n - 1]->d_name);
    for (int i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    uint8_t hb[BLOCK_HDR_LEN];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, hb, sizeof(hb), SEG_HDR_LEN), (ssize_t)sizeof(hb));
    close(fd);
    struct errbuf why;
    assert_int_equal(block__hdr_decode(hb, h, &why), 0);
}

static void flip(const char *path, off_t off)
{
    uint8_t b;
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void test_corrupt_index_in_store(void **state)
{
    struct tdir *t = *state;
    char path[1024];
    struct block_hdr h;
    struct collect c;
    struct store_scan_stats s;
    struct store_need_value pod = { "pod", SPAN_LIT("pod-7") };
    struct store_need need = { &pod, 1, NULL, 0 };

    fill(t->dir, 200);
    first_block(t->dir, path, sizeof(path), &h);
    assert_true(h.version == BLOCK_VERSION && h.index_len > 16);
    /* A byte of the first block's index: a scan that consults it fails, and one that
     * reads the block fails on the block's checksum; neither skips it silently. */
    flip(path, SEG_HDR_LEN + BLOCK_HDR_LEN + h.index_len / 2);
    assert_int_equal(scan_need(t->dir, &need, &c, &s), VG_ECORRUPT);
    assert_int_equal(scan_need(t->dir, NULL, &c, &s), VG_ECORRUPT);
    char report[4096];
    struct errbuf eb;
    errbuf_clear(&eb);
    FILE *f = fmemopen(report, sizeof(report), "w");
    assert_int_equal(store_verify(t->dir, NULL, f, NULL, &eb), VG_ECORRUPT);
    fclose(f);
}

/* v1 blocks (segment.md 3, format 1), as an earlier writer left them, still read. */
static void test_v1_blocks_read(void **state)
{
    struct tdir *t = *state;
    char path[1024];
    struct seg_hdr sh = {
        .version = SEG_VERSION, .part_start = T0, .part_ns = HOUR, .id = 1, .created = T0
    };
    uint8_t hb[SEG_HDR_LEN];
    uint8_t chain[VG_SHA256_LEN];
    struct digest *d = digest_new();
    struct block_builder b;
    struct buf out;
    struct buf rec;
    struct buf raw;
    struct block_hdr h;
    uint64_t sum = 0;

    snprintf(path, sizeof(path), "%s/segments", t->dir);
    assert_int_equal(mkdir(t->dir, 0750), 0);
    assert_int_equal(mkdir(path, 0750), 0);
    snprintf(path, sizeof(path), "%s/segments/20240501T130000Z-000001.vseg", t->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    assert_true(fd >= 0);
    seg__hdr_encode(&sh, hb);
    assert_int_equal(write(fd, hb, sizeof(hb)), (ssize_t)sizeof(hb));
    vg_sha256(hb, sizeof(hb), chain);
    block__builder_init(&b);
    b.v1 = true;
    buf_init(&out, 1u << 24);
    buf_init(&rec, 1u << 16);
    buf_init(&raw, 1u << 16);
    for (int blk = 0; blk < 3; blk++) {
        block__builder_reset(&b);
        for (int i = blk * 20; i < blk * 20 + 20; i++) {
            make_rec(&rec, &raw, T0 + i, (uint64_t)i + 1, i);
            assert_int_equal(block__builder_add(&b, T0 + i, (uint64_t)i + 1, buf_span(&rec)), 0);
            sum += (uint64_t)i + 1;
        }
        assert_int_equal(block__builder_finish(&b, chain, d, &out, &h, NULL), 0);
        assert_int_equal(h.version, BLOCK_VERSION_1);
        assert_int_equal(h.index_len, 0);
        memcpy(chain, h.hash, VG_SHA256_LEN);
        assert_int_equal(write(fd, out.data, out.len), (ssize_t)out.len);
    }
    assert_int_equal(fsync(fd), 0);
    close(fd);

    /* Recovery adds the file to a new catalog; then a v2 block follows in the same
     * segment: both versions read, the v1 ones with no index to skip by. */
    struct store_opts o = { .dir = t->dir, .partition_ns = HOUR, .block_bytes = 8192 };
    struct store *st = NULL;
    struct errbuf eb;
    errbuf_clear(&eb);
    log_set_level(LOG_LVL_ERROR);
    assert_int_equal(store_open(&o, &st, &eb), 0);
    make_rec(&rec, &raw, T0 + 100, 1000, 1000);
    assert_int_equal(store_append(st, T0 + 100, 1000, buf_span(&rec)), 0);
    sum += 1000;
    store_close(st);

    struct collect c;
    struct store_scan_stats s;
    assert_int_equal(scan_need(t->dir, NULL, &c, &s), 0);
    assert_int_equal(c.n, 61);
    assert_int_equal(c.sum, sum);
    assert_int_equal(s.blocks_read, 4);
    struct store_need_value pod = { "pod", SPAN_LIT("pod-20") }; /* record 1000 only */
    struct store_need need = { &pod, 1, NULL, 0 };
    assert_int_equal(scan_need(t->dir, &need, &c, &s), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(s.blocks_read, 4); /* the v1 ones (no index) and the match */
    assert_int_equal(s.blocks_skipped_index, 0);
    errbuf_clear(&eb);
    assert_int_equal(store_verify(t->dir, NULL, NULL, NULL, &eb), 0);

    block__builder_release(&b);
    buf_release(&out);
    buf_release(&rec);
    buf_release(&raw);
    digest_free(d);
}

/* The per-record prefilter for a text (ignoring ASCII case) agrees with a plain search,
 * at every alignment and length (the vector and word loops and their tails), for
 * needles whose bytes are letters, digits and punctuation, in random haystacks rich in
 * near misses. It may never say no to a record that holds the text. */
static bool naive_nocase(const uint8_t *h, size_t hn, const char *n, size_t nn)
{
    for (size_t i = 0; i + nn <= hn; i++) {
        size_t j = 0;
        while (j < nn && tolower(h[i + j]) == tolower((unsigned char)n[j])) {
            j++;
        }
        if (j == nn) {
            return true;
        }
    }
    return false;
}

static void test_record_prefilter_nocase(void **state)
{
    (void)state;
    const char *needles[] = { "failure", "Ethan.Scott", "kdevtmpfsi", "ab", "a.",
                              "{[",      "x",           "10.0.0.1",   "@`" };
    const char alpha[] = "aAbBfFeE.{[`@0x ";
    uint8_t hay[300];
    unsigned seed = 12345;

    for (size_t k = 0; k < VG_ARRAY_LEN(needles); k++) {
        const char *n = needles[k];
        size_t nn = strlen(n);
        struct span t = span_str(n);
        struct store_need need = { NULL, 0, &t, 1 };
        struct bix_query q;
        assert_int_equal(bix__query_init(&q, &need), 0);
        if (q.nrec == 0) {
            bix__query_release(&q); /* number-like: not searched in the bytes */
            continue;
        }
        for (int round = 0; round < 3000; round++) {
            size_t hn = (size_t)(rand_r(&seed) % sizeof(hay));
            for (size_t i = 0; i < hn; i++) {
                hay[i] = (uint8_t)alpha[rand_r(&seed) % (sizeof(alpha) - 1)];
            }
            if (hn >= nn && rand_r(&seed) % 3 == 0) { /* plant it, in a random case */
                size_t at = (size_t)(rand_r(&seed) % (hn - nn + 1));
                for (size_t j = 0; j < nn; j++) {
                    int c = (unsigned char)n[j];
                    hay[at + j] = (uint8_t)(rand_r(&seed) % 2 ? toupper(c) : tolower(c));
                }
            }
            bool want = naive_nocase(hay, hn, n, nn);
            bool got = bix__record_may_match(&q, (struct span){ hay, hn });
            if (want != got) {
                fail_msg("needle '%s', haystack of %zu: want %d, got %d", n, hn, want, got);
            }
        }
        bix__query_release(&q);
    }
}

int main(void)
{
    log_set_level(LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_roundtrip),
        cmocka_unit_test(test_pack_hostile),
        cmocka_unit_test(test_index_sets_and_blooms),
        cmocka_unit_test(test_index_text),
        cmocka_unit_test(test_record_prefilter_nocase),
        cmocka_unit_test(test_index_off),
        cmocka_unit_test(test_index_corrupt),
        cmocka_unit_test_setup_teardown(test_selective_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_index_in_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_blocks_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
