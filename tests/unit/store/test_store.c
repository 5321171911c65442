/* tests/unit/store/test_store.c: the store writer, reader, recovery and verify
 * (schemas/segment.md), through store.h and store_int.h: faults injected through fsops,
 * and a power loss that drops whatever was not synced. Each test works in its own
 * temporary directory. */
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
#include "store/fsops.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tdir.h"

#define HOUR (3600 * VG_NS_PER_SEC)
#define T0   (1714568400LL * VG_NS_PER_SEC) /* 2024-05-01T13:00:00Z */

/* ---- helpers ---- */

static int setup(void **state)
{
    return tdir_setup(state, "store");
}

static int teardown(void **state)
{
    return tdir_teardown(state);
}

/* The tests that run with and without the commit journal (segment.md 5.6) set this:
 * 0 (every commit cuts its blocks) or the journal's block_max_age. */
static int64_t g_max_age;

static struct store_opts opts(const struct tdir *t)
{
    struct store_opts o = {
        .dir = t->dir,
        .partition_ns = HOUR,
        .block_bytes = 4096,
        .max_open_segments = 4,
        .fsync = true,
        .block_max_age_ns = g_max_age,
    };
    return o;
}

/* The record of seq: a msgpack map, deterministic, of varying length. */
static void make_rec(uint64_t seq, struct buf *b)
{
    char msg[200];
    int n =
        snprintf(msg, sizeof(msg), "event %" PRIu64 " from pod web-%" PRIu64 " %.*s", seq, seq % 7,
                 (int)(seq % 50), "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");

    b->len = 0;
    assert_int_equal(mp_put_map(b, 2), 0);
    assert_int_equal(mp_put_cstr(b, "seq"), 0);
    assert_int_equal(mp_put_u64(b, seq), 0);
    assert_int_equal(mp_put_cstr(b, "message"), 0);
    assert_int_equal(mp_put_str(b, msg, (size_t)n), 0);
}

static int append(struct store *st, int64_t ts, uint64_t seq)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    make_rec(seq, &b);
    int rc = store_append(st, ts, seq, buf_span(&b));
    buf_release(&b);
    return rc;
}

/* What a scan returned, checked against make_rec as it arrives. */
struct got {
    size_t n;
    size_t cap;
    int64_t *ts;
    uint64_t *seq;
    size_t bad;
    size_t stop_after; /* 0: never stop */
};

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct got *g = arg;
    struct buf b;

    buf_init(&b, 1 << 16);
    make_rec(seq, &b);
    if (!span_eq(rec, buf_span(&b))) {
        g->bad++;
    }
    buf_release(&b);
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->ts = xrealloc(g->ts, g->cap * sizeof(*g->ts));
        g->seq = xrealloc(g->seq, g->cap * sizeof(*g->seq));
    }
    g->ts[g->n] = ts;
    g->seq[g->n] = seq;
    g->n++;
    return g->stop_after && g->n >= g->stop_after ? 42 : 0;
}

static void got_free(struct got *g)
{
    free(g->ts);
    free(g->seq);
    memset(g, 0, sizeof(*g));
}

static int scan(const char *dir, int64_t since, int64_t until, struct got *g,
                struct store_scan_stats *stats, char *err, size_t errlen)
{
    struct store_reader *r = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    int rc = store_reader_open(dir, &r, &eb);
    if (rc < 0) {
        print_error("store_reader_open: %s\n", errbuf_msg(&eb));
        return rc;
    }
    rc = store_scan(r, since, until, on_rec, g, stats);
    if (err) {
        snprintf(err, errlen, "%s", store_reader_error(r));
    }
    store_reader_close(r);
    return rc;
}

static int verify(const char *dir, char *report, size_t cap)
{
    struct errbuf eb;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    errbuf_clear(&eb);
    int rc = store_verify(dir, NULL, f, NULL, &eb);
    fclose(f);
    if (report) {
        snprintf(report, cap, "%s", text ? text : "");
    }
    if (rc != 0 && !report) {
        print_error("verify: %s\n%s", errbuf_msg(&eb), text);
    }
    free(text);
    return rc;
}

static struct store *open_store(const struct store_opts *o)
{
    struct store *st = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    int rc = store_open(o, &st, &eb);
    if (rc < 0) {
        print_error("store_open: %s (%s)\n", errbuf_msg(&eb), vg_strerror(rc));
    }
    assert_int_equal(rc, 0);
    return st;
}

/* The segment files, sorted by name. Returns how many. */
static size_t seg_files(const char *dir, char names[][SEG_NAME_MAX], size_t max)
{
    char path[PATH_MAX];
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/segments", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strstr(e->d_name, ".vseg") && n < max && len < SEG_NAME_MAX) {
            memcpy(names[n++], e->d_name, len + 1);
        }
    }
    closedir(d);
    qsort(names, n, SEG_NAME_MAX, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void seg_file_path(const char *dir, const char *name, char *out)
{
    snprintf(out, PATH_MAX, "%s/segments/%s", dir, name);
}

static uint8_t *read_file(const char *path, size_t *n)
{
    struct stat sb;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    *n = (size_t)sb.st_size;
    uint8_t *p = xmalloc(*n + 1);
    assert_int_equal(pread(fd, p, *n, 0), (ssize_t)*n);
    close(fd);
    return p;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* Removes the catalog's -wal and -shm files (before replacing the catalog itself). */
static void unlink_wal(const char *cat)
{
    char p[PATH_MAX + 8];
    assert_true(snprintf(p, sizeof(p), "%s-wal", cat) < (int)sizeof(p));
    unlink(p);
    assert_true(snprintf(p, sizeof(p), "%s-shm", cat) < (int)sizeof(p));
    unlink(p);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

/* Offsets at which blocks start in a segment file (walking headers only). */
static size_t block_offsets(const char *path, uint64_t *offs, size_t max)
{
    size_t n = 0;
    uint8_t *p = NULL;
    size_t len;
    struct block_hdr h;
    struct errbuf why;

    p = read_file(path, &len);
    for (uint64_t off = SEG_HDR_LEN; off + BLOCK_HDR_LEN <= len && n < max;) {
        errbuf_clear(&why);
        assert_int_equal(block__hdr_decode(p + off, &h, &why), 0);
        offs[n++] = off;
        off += block__len(&h);
    }
    free(p);
    return n;
}

/* ---- block-level ---- */

static void test_block_roundtrip(void **state)
{
    struct block_builder b;
    struct buf out;
    struct buf raw;
    struct buf rec;
    struct block_hdr h;
    struct block_hdr h2;
    struct errbuf why;
    uint8_t prev[VG_SHA256_LEN] = { 1, 2, 3 };
    struct digest *d = digest_new();
    const int64_t ts[] = { 5, -3, INT64_MAX, INT64_MIN, 0, 7 };

    (void)state;
    block__builder_init(&b);
    buf_init(&out, 1 << 24);
    buf_init(&raw, BLOCK_MAX_RAW);
    buf_init(&rec, 1 << 16);
    for (size_t i = 0; i < VG_ARRAY_LEN(ts); i++) {
        make_rec(i + 1, &rec);
        assert_int_equal(block__builder_add(&b, ts[i], i == 3 ? UINT64_MAX : i + 1, buf_span(&rec)),
                         0);
    }
    assert_int_equal(block__builder_finish(&b, prev, d, &out, &h, NULL), 0);
    assert_int_equal(h.count, VG_ARRAY_LEN(ts));
    assert_int_equal(h.ts_min, INT64_MIN);
    assert_int_equal(h.ts_max, INT64_MAX);
    assert_true(h.seq_max == UINT64_MAX);
    assert_int_equal(out.len, block__len(&h));

    errbuf_clear(&why);
    assert_int_equal(block__hdr_decode(out.data, &h2, &why), 0);
    assert_memory_equal(h.hash, h2.hash, VG_SHA256_LEN);
    struct span payload = { out.data + BLOCK_HDR_LEN, out.len - BLOCK_HDR_LEN };
    assert_int_equal(block__verify(out.data, &h2, payload, prev, d, &why), 0);
    prev[0] ^= 1; /* another predecessor: the chain breaks */
    assert_int_equal(block__verify(out.data, &h2, payload, prev, d, &why), VG_ECORRUPT);
    prev[0] ^= 1;
    struct span data = { payload.p + h2.index_len, h2.stored_len };
    assert_int_equal(block__decompress(&h2, data, &raw, &why), 0);

    struct block_iter it;
    int64_t t;
    uint64_t s;
    struct span r;
    struct buf scratch;
    buf_init(&scratch, BLOCK_MAX_RAW);
    block__iter_init(&it, &h2, buf_span(&raw), &scratch);
    for (size_t i = 0; i < VG_ARRAY_LEN(ts); i++) {
        assert_int_equal(block__iter_next(&it, &t, &s, &r, &why), 1);
        assert_int_equal(t, ts[i]);
        make_rec(i + 1, &rec);
        assert_true(span_eq(r, buf_span(&rec)));
    }
    assert_int_equal(block__iter_next(&it, &t, &s, &r, &why), 0);

    /* Hostile headers: each field out of its bounds is refused before any allocation. */
    uint8_t bad[BLOCK_HDR_LEN];
    struct {
        size_t off;
        uint32_t v;
    } cases[] = {
        { 16, BLOCK_MAX_RAW + 1 }, /* raw_len */
        { 16, 0 },
        { 20, 0 }, /* stored_len */
        { 20, 0x7fffffff },
        { 24, BLOCK_MAX_INDEX + 1 }, /* index_len */
        { 12, 0 },                   /* count */
        { 12, 0xffffffff },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        memcpy(bad, out.data, BLOCK_HDR_LEN);
        for (int k = 0; k < 4; k++) {
            bad[cases[i].off + (size_t)k] = (uint8_t)(cases[i].v >> (8 * k));
        }
        errbuf_clear(&why);
        assert_int_equal(block__hdr_decode(bad, &h2, &why), VG_ECORRUPT);
        assert_true(strlen(errbuf_msg(&why)) > 0);
    }
    memcpy(bad, out.data, BLOCK_HDR_LEN);
    bad[8] = 3; /* no such codec */
    assert_int_equal(block__hdr_decode(bad, &h2, &why), VG_ECORRUPT);
    bad[8] = BLOCK_CODEC_ZSTD; /* zstd is v2's (segment.md 3.1) */
    bad[4] = BLOCK_VERSION_1;
    assert_int_equal(block__hdr_decode(bad, &h2, &why), VG_ECORRUPT);

    block__builder_release(&b);
    buf_release(&out);
    buf_release(&raw);
    buf_release(&rec);
    buf_release(&scratch);
    digest_free(d);
}

static void test_partition_and_names(void **state)
{
    int64_t s;
    int64_t e;
    char name[SEG_NAME_MAX];
    uint64_t id;

    (void)state;
    assert_int_equal(seg__partition(T0 + 5, HOUR, &s, &e), 0);
    assert_int_equal(s, T0);
    assert_int_equal(e, T0 + HOUR);
    assert_int_equal(seg__partition(-1, HOUR, &s, &e), 0);
    assert_int_equal(s, -HOUR);
    assert_int_equal(e, 0);
    assert_int_equal(seg__partition(-HOUR, HOUR, &s, &e), 0);
    assert_int_equal(s, -HOUR);
    assert_int_equal(seg__partition(INT64_MIN, HOUR, &s, &e), -EINVAL);
    assert_int_equal(seg__partition(INT64_MAX, HOUR, &s, &e), -EINVAL);

    seg__name(T0, 42, name);
    assert_string_equal(name, "20240501T130000Z-000042.vseg");
    assert_true(seg__name_parse(name, &id));
    assert_int_equal(id, 42);
    seg__name(-HOUR, 7, name);
    assert_string_equal(name, "19691231T230000Z-000007.vseg");
    assert_false(seg__name_parse("20240501T130000Z-.vseg", &id));
    assert_false(seg__name_parse("20240501T130000Z-000000.vseg", &id));
    assert_false(seg__name_parse("catalog.db", &id));
    assert_false(seg__name_parse("20240501T130000Z-12.vseg.tmp", &id));
}

/* ---- writer and reader ---- */

static void test_opts_refused(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store *st = NULL;
    struct errbuf eb;

    o.partition_ns = 10;
    errbuf_clear(&eb);
    assert_int_equal(store_open(&o, &st, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "partition"));
    o = opts(t);
    o.block_bytes = 100;
    assert_int_equal(store_open(&o, &st, &eb), VG_ECONFIG);
    assert_null(st);
    o = opts(t);
    o.lz4_level = 13;
    errbuf_clear(&eb);
    assert_int_equal(store_open(&o, &st, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "LZ4 level 13"));
    o.lz4_level = -2;
    assert_int_equal(store_open(&o, &st, &eb), VG_ECONFIG);
    assert_null(st);
    store_close(NULL);
}

/* Writes n records with LZ4 level lz4_level into dir; returns the segment bytes. */
static uint64_t write_with_level(const struct tdir *t, const char *dir, int lz4_level, uint64_t n)
{
    struct store_opts o = opts(t);
    o.dir = dir;
    o.block_bytes = 64 << 10;
    o.lz4_level = lz4_level;
    struct store *st = open_store(&o);
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i * 1000, i + 1), 0);
    }
    assert_int_equal(store_commit(st), 0);
    struct store_stats ss;
    store_get_stats(st, &ss);
    store_close(st);
    return ss.bytes_stored;
}

/* Plain LZ4 and LZ4HC (the default) write the same format: the same records come back
 * from either, and HC's blocks are smaller. */
static void test_lz4_levels(void **state)
{
    struct tdir *t = *state;
    char plain[PATH_MAX];
    const uint64_t n = 3000;

    snprintf(plain, sizeof(plain), "%s/plain", t->root);
    uint64_t fast = write_with_level(t, plain, -1, n);
    uint64_t dense = write_with_level(t, t->dir, 0, n);
    assert_true(dense < fast);
    const char *dirs[] = { plain, t->dir };
    for (size_t d = 0; d < 2; d++) {
        struct got g = { 0 };
        assert_int_equal(scan(dirs[d], INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
        assert_int_equal(g.n, n);
        assert_int_equal(g.bad, 0);
        for (uint64_t i = 0; i < n; i++) {
            assert_int_equal(g.seq[i], i + 1);
        }
        got_free(&g);
        assert_int_equal(verify(dirs[d], NULL, 0), 0);
    }
}

static void test_roundtrip_and_window(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store *st = open_store(&o);
    struct store_stats ss;
    const uint64_t n = 6000;

    assert_int_equal(store_next_seq(st), 1);
    /* 6000 records over 5 hours, in time order: several blocks per partition. */
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(append(st, T0 + (int64_t)(i * (5 * HOUR / n)), i + 1), 0);
        if (i % 1000 == 999) {
            assert_int_equal(store_commit(st), 0);
        }
    }
    assert_int_equal(store_commit(st), 0);
    assert_int_equal(store_next_seq(st), n + 1);
    store_get_stats(st, &ss);
    assert_int_equal(ss.records, n);
    assert_true(ss.blocks > 20);
    assert_true(ss.bytes_stored < ss.bytes_raw);
    assert_int_equal(ss.commits, 7 - 1); /* the last commit had nothing new */

    /* A reader while the writer is open, then after it closed. */
    struct got g = { 0 };
    struct store_scan_stats sc = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, &sc, NULL, 0), 0);
    assert_int_equal(g.n, n);
    assert_int_equal(g.bad, 0);
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(g.seq[i], i + 1);
        assert_int_equal(g.ts[i], T0 + (int64_t)(i * (5 * HOUR / n)));
    }
    assert_int_equal(sc.segments, 5);
    assert_int_equal(sc.blocks_skipped, 0);
    assert_int_equal(sc.blocks_read, ss.blocks);
    assert_int_equal(sc.records, n);
    got_free(&g);
    store_close(st);

    /* A window of 20 minutes inside the third hour: exactly its records, and most
     * blocks skipped by their headers, other partitions by the catalog. */
    int64_t since = T0 + 2 * HOUR + 10 * 60 * VG_NS_PER_SEC;
    int64_t until = since + 20 * 60 * VG_NS_PER_SEC;
    memset(&sc, 0, sizeof(sc));
    assert_int_equal(scan(t->dir, since, until, &g, &sc, NULL, 0), 0);
    size_t want = 0;
    for (uint64_t i = 0; i < n; i++) {
        int64_t ts = T0 + (int64_t)(i * (5 * HOUR / n));
        if (ts >= since && ts < until) {
            assert_true(want < g.n);
            assert_int_equal(g.seq[want], i + 1);
            want++;
        }
    }
    assert_int_equal(g.n, want);
    assert_true(want > 300);
    assert_int_equal(sc.segments, 1);
    assert_true(sc.blocks_skipped > 0);
    assert_true(sc.blocks_read < ss.blocks / 5);
    assert_true(sc.blocks_read + sc.blocks_skipped <= ss.blocks / 5 + 2);
    got_free(&g);

    /* A plan scanned as 3 stripes: each record reaches exactly one stripe. */
    {
        struct store_reader *r = NULL;
        struct store_scan_plan *plan = NULL;
        struct errbuf eb;
        errbuf_clear(&eb);
        assert_int_equal(store_reader_open(t->dir, &r, &eb), 0);
        assert_int_equal(store_scan_plan_make(r, INT64_MIN, INT64_MAX, NULL, &plan, NULL), 0);
        assert_true(store_scan_plan_bytes(plan) > 0);
        uint8_t *seen = xcalloc(n + 1, 1);
        uint64_t blocks = 0;
        for (unsigned k = 0; k < 3; k++) {
            struct got gk = { 0 };
            struct store_scan_stats sk = { 0 };
            assert_int_equal(store_scan_plan_run(r, plan, k, 3, on_rec, &gk, &sk), 0);
            assert_int_equal(gk.bad, 0);
            assert_true(gk.n > n / 6); /* the blocks are shared out, not all to one */
            for (size_t i = 0; i < gk.n; i++) {
                assert_true(gk.seq[i] >= 1 && gk.seq[i] <= n);
                assert_int_equal(seen[gk.seq[i]], 0);
                seen[gk.seq[i]] = 1;
            }
            blocks += sk.blocks_read;
            got_free(&gk);
        }
        for (uint64_t i = 1; i <= n; i++) {
            assert_int_equal(seen[i], 1);
        }
        assert_int_equal(blocks, ss.blocks);
        assert_int_equal(store_scan_plan_run(r, plan, 3, 3, on_rec, &g, NULL), -EINVAL);
        free(seen);
        store_scan_plan_free(plan);
        store_reader_close(r);
    }

    /* fn stops the scan: its value comes back. */
    g.stop_after = 10;
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 42);
    assert_int_equal(g.n, 10);
    got_free(&g);
    /* An empty window. */
    assert_int_equal(scan(t->dir, T0 - 10 * HOUR, T0 - 9 * HOUR, &g, NULL, NULL, 0), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
}

static void test_late_and_out_of_order(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store *st = open_store(&o);
    uint64_t seq = 1;

    /* Hour 2, then a late event for hour 0, then hour 2 again, then one before 1970. */
    assert_int_equal(append(st, T0 + 2 * HOUR + 5, seq++), 0);
    assert_int_equal(append(st, T0 + 10, seq++), 0);
    assert_int_equal(append(st, T0 + 2 * HOUR + 1, seq++), 0); /* out of order inside */
    assert_int_equal(append(st, -5, seq++), 0);
    assert_int_equal(store_commit(st), 0);
    /* seq must increase. */
    assert_int_equal(append(st, T0, seq - 1), -EINVAL);
    assert_int_equal(append(st, INT64_MIN, seq), -EINVAL); /* partition overflows */

    /* Hour 0 ends and is sealed; a later event for it opens a second segment. */
    assert_int_equal(store_seal_before(st, T0 + HOUR), 0);
    assert_int_equal(append(st, T0 + 20, seq++), 0);
    assert_int_equal(store_commit(st), 0);
    store_close(st);

    char names[8][SEG_NAME_MAX];
    assert_int_equal(seg_files(t->dir, names, 8), 4);
    assert_string_equal(names[0], "19691231T230000Z-000003.vseg");
    assert_string_equal(names[1], "20240501T130000Z-000002.vseg");
    assert_string_equal(names[2], "20240501T130000Z-000004.vseg");
    assert_string_equal(names[3], "20240501T150000Z-000001.vseg");

    struct got g = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
    const uint64_t want_seq[] = { 4, 2, 5, 1, 3 };
    assert_int_equal(g.n, VG_ARRAY_LEN(want_seq));
    for (size_t i = 0; i < g.n; i++) {
        assert_int_equal(g.seq[i], want_seq[i]);
    }
    assert_int_equal(g.ts[0], -5);
    assert_int_equal(g.bad, 0);
    got_free(&g);
    char report[4096];
    assert_int_equal(verify(t->dir, report, sizeof(report)), 0);
    assert_non_null(strstr(report, "20240501T130000Z-000002.vseg: ok"));
    assert_non_null(strstr(report, "sealed"));
}

static void test_reopen_continues(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store *st = open_store(&o);

    for (uint64_t i = 1; i <= 500; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i * VG_NS_PER_SEC, i), 0);
    }
    store_close(st); /* commits */

    st = open_store(&o);
    assert_int_equal(store_next_seq(st), 501);
    for (uint64_t i = 501; i <= 1000; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i * VG_NS_PER_SEC, i), 0);
    }
    assert_int_equal(store_commit(st), 0);
    assert_int_equal(store_next_seq(st), 1001);
    store_close(st);

    st = open_store(&o);
    assert_int_equal(store_next_seq(st), 1001);
    store_close(st);

    char names[8][SEG_NAME_MAX];
    assert_int_equal(seg_files(t->dir, names, 8), 1); /* continued the same segment */
    struct got g = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
    assert_int_equal(g.n, 1000);
    for (size_t i = 0; i < g.n; i++) {
        assert_int_equal(g.seq[i], i + 1);
    }
    got_free(&g);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
}

static void test_lru_many_partitions(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_stats ss;

    o.max_open_segments = 2;
    o.fsync = false;
    struct store *st = open_store(&o);
    /* Round robin over 6 partitions with 2 fds: every switch evicts. */
    for (uint64_t i = 1; i <= 600; i++) {
        assert_int_equal(append(st, T0 + (int64_t)(i % 6) * HOUR + (int64_t)i, i), 0);
        store_get_stats(st, &ss);
        assert_true(ss.segments_open <= 6);
        if (i % 250 == 0) {
            assert_int_equal(store_commit(st), 0);
        }
    }
    assert_int_equal(store_commit(st), 0);
    store_get_stats(st, &ss);
    assert_true(ss.segments_open <= 2);
    store_close(st);

    char names[16][SEG_NAME_MAX];
    assert_int_equal(seg_files(t->dir, names, 16), 6);
    struct got g = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
    assert_int_equal(g.n, 600);
    assert_int_equal(g.bad, 0);
    for (size_t i = 1; i < g.n; i++) {
        assert_true(g.ts[i - 1] / HOUR <= g.ts[i] / HOUR); /* partitions in order */
    }
    got_free(&g);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
}

static void test_second_writer_refused(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store *st = open_store(&o);
    struct store *st2 = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    assert_int_equal(store_open(&o, &st2, &eb), -EWOULDBLOCK);
    assert_null(st2);
    assert_non_null(strstr(errbuf_msg(&eb), "another writer"));
    assert_non_null(strstr(errbuf_msg(&eb), "LOCK"));
    store_close(st);
    st2 = open_store(&o); /* released by close */
    store_close(st2);
}

static void test_reader_beside_writer(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store *st = open_store(&o);
    struct store_reader *r = NULL;
    struct errbuf eb;
    struct got g = { 0 };
    uint64_t committed = 99;

    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(t->dir, &r, &eb), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, NULL), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(store_reader_committed_seq(r, &committed), 0);
    assert_int_equal(committed, 0);

    for (uint64_t i = 1; i <= 300; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i, i), 0);
    }
    assert_int_equal(store_commit(st), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, NULL), 0);
    assert_int_equal(g.n, 300);
    got_free(&g);

    /* Full blocks written but not committed, plus a new partition's file not yet in
     * the catalog: the reader sees at least the committed records, and no error. */
    for (uint64_t i = 301; i <= 600; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i, i), 0);
    }
    assert_int_equal(append(st, T0 + 3 * HOUR, 601), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, NULL), 0);
    assert_true(g.n >= 300 && g.n <= 600);
    assert_int_equal(g.bad, 0);
    got_free(&g);
    /* The committed horizon is what a follower may deliver: not the blocks in flight. */
    assert_int_equal(store_reader_committed_seq(r, &committed), 0);
    assert_int_equal(committed, 300);
    assert_int_equal(verify(t->dir, NULL, 0), 0);

    assert_int_equal(store_commit(st), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, NULL), 0);
    assert_int_equal(g.n, 601);
    got_free(&g);
    assert_int_equal(store_reader_committed_seq(r, &committed), 0);
    assert_int_equal(committed, 601);
    store_close(st);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, NULL), 0);
    assert_int_equal(g.n, 601);
    got_free(&g);
    store_reader_close(r);

    /* No store there. */
    char missing[PATH_MAX];
    snprintf(missing, sizeof(missing), "%s/nothing", t->root);
    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(missing, &r, &eb), -ENOENT);
    assert_non_null(strstr(errbuf_msg(&eb), "no store"));
}

/* The same with the commit journal: the reader sees exactly what was acknowledged. */
static void test_reader_beside_writer_journal(void **state)
{
    g_max_age = HOUR;
    test_reader_beside_writer(state);
    g_max_age = 0;
}

/* Crash in the middle of the last block: cut the file at every offset inside it, with
 * the catalog saying it was committed and saying it was not; reopen: the torn block is
 * cut off, everything before it is intact, no error. */
static void test_torn_tail_every_offset(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    char names[4][SEG_NAME_MAX];
    char seg[PATH_MAX];
    char cat[PATH_MAX];
    size_t seg_len;
    size_t cat_before_len;
    size_t cat_after_len;

    log_set_level(LOG_LVL_ERROR); /* the cuts are logged as warnings */
    struct store *st = open_store(&o);
    for (uint64_t i = 1; i <= 100; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i, i), 0);
    }
    store_close(st);
    snprintf(cat, sizeof(cat), "%s/catalog.db", t->dir);
    uint8_t *cat_before = read_file(cat, &cat_before_len);
    st = open_store(&o);
    for (uint64_t i = 101; i <= 103; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i, i), 0);
    }
    store_close(st);
    uint8_t *cat_after = read_file(cat, &cat_after_len);
    assert_int_equal(seg_files(t->dir, names, 4), 1);
    seg_file_path(t->dir, names[0], seg);
    uint8_t *image = read_file(seg, &seg_len);
    uint64_t offs[64];
    size_t nb = block_offsets(seg, offs, 64);
    assert_true(nb >= 3);
    uint64_t last = offs[nb - 1];

    for (uint64_t cut = last; cut < seg_len; cut++) {
        for (int committed = 0; committed < 2; committed++) {
            unlink_wal(cat);
            write_file(cat, committed ? cat_after : cat_before,
                       committed ? cat_after_len : cat_before_len);
            write_file(seg, image, (size_t)cut);
            st = open_store(&o);
            assert_int_equal(store_next_seq(st), 101);
            store_close(st);
            assert_int_equal(file_size(seg), last);
            struct got g = { 0 };
            assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
            assert_int_equal(g.n, 100);
            assert_int_equal(g.bad, 0);
            got_free(&g);
            assert_int_equal(verify(t->dir, NULL, 0), 0);
        }
    }
    /* And a zero-filled tail (the file grew, the data never came). */
    uint8_t *zeros = xcalloc(1, seg_len + 4096);
    memcpy(zeros, image, last);
    unlink_wal(cat);
    write_file(cat, cat_before, cat_before_len);
    write_file(seg, zeros, seg_len + 4096);
    st = open_store(&o);
    store_close(st);
    assert_int_equal(file_size(seg), last);
    free(zeros);
    free(image);
    free(cat_before);
    free(cat_after);
    log_set_level(LOG_LVL_INFO);
}

/* A flipped byte in an earlier block: readers fail with VG_ECORRUPT naming the file
 * and offset, verify reports it, the writer keeps the bytes and seals the segment. */
static void test_flipped_byte(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    char names[4][SEG_NAME_MAX];
    char seg[PATH_MAX];
    char err[600];
    char report[4096];
    char want[128];
    size_t len;

    log_set_level(LOG_LVL_ERROR);
    struct store *st = open_store(&o);
    for (uint64_t i = 1; i <= 400; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i, i), 0);
    }
    store_close(st);
    assert_int_equal(seg_files(t->dir, names, 4), 1);
    seg_file_path(t->dir, names[0], seg);
    uint64_t offs[64];
    size_t nb = block_offsets(seg, offs, 64);
    assert_true(nb >= 4);
    uint8_t *image = read_file(seg, &len);

    /* Payload byte of block 1, then a header byte (ts_max) of block 2. */
    const uint64_t flips[] = { offs[1] + BLOCK_HDR_LEN + 20, offs[2] + 40 };
    const uint64_t bad_block[] = { offs[1], offs[2] };
    for (size_t k = 0; k < VG_ARRAY_LEN(flips); k++) {
        image[flips[k]] ^= 0x10;
        write_file(seg, image, len);
        image[flips[k]] ^= 0x10;

        struct got g = { 0 };
        struct store_scan_stats sc = { 0 };
        assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, &sc, err, sizeof(err)),
                         VG_ECORRUPT);
        snprintf(want, sizeof(want), "offset %" PRIu64 ":", bad_block[k]);
        assert_non_null(strstr(err, want));
        assert_non_null(strstr(err, names[0]));
        assert_true(g.n > 0 && g.n < 400); /* the blocks before it came through */
        got_free(&g);

        assert_int_equal(verify(t->dir, report, sizeof(report)), VG_ECORRUPT);
        snprintf(want, sizeof(want), "FAILED at offset %" PRIu64 ":", bad_block[k]);
        assert_non_null(strstr(report, want));

        /* The writer starts, keeps the evidence and seals the segment. */
        st = open_store(&o);
        assert_int_equal(append(st, T0 + 1000, 1000), 0);
        assert_int_equal(store_commit(st), 0);
        store_close(st);
        assert_int_equal(file_size(seg), len);
        char names2[4][SEG_NAME_MAX];
        assert_int_equal(seg_files(t->dir, names2, 4), 2);
        assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), VG_ECORRUPT);
        got_free(&g);
        /* Put it back for the next case; drop the second segment and its row by
         * starting over from a fresh store holding the original file (a new catalog and
         * seal sequence: the old ones remember the second segment). */
        char seg2[PATH_MAX];
        seg_file_path(t->dir, names2[1], seg2);
        unlink(seg2);
        write_file(seg, image, len);
        char cat[PATH_MAX];
        snprintf(cat, sizeof(cat), "%s/catalog.db", t->dir);
        unlink_wal(cat);
        unlink(cat);
        snprintf(cat, sizeof(cat), "%s/seals.seq", t->dir);
        unlink(cat);
        st = open_store(&o); /* rebuilds the row from the file */
        store_close(st);
        assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
        assert_int_equal(g.n, 400);
        got_free(&g);
        assert_int_equal(verify(t->dir, NULL, 0), 0);
    }
    free(image);
    log_set_level(LOG_LVL_INFO);
}

/* ---- fault injection ---- */

enum fault_op { F_OPEN, F_PWRITE, F_FDATASYNC, F_FTRUNCATE, F_FSYNC_DIR, F_COUNT };
enum fault_mode {
    FAULT_FAIL,      /* the Nth call returns err */
    FAULT_HALF_FAIL, /* the Nth call writes half and says so; the next returns err */
    FAULT_SHORT,     /* every write writes at most half (legal short writes) */
};

struct fault {
    enum fault_op op;
    enum fault_mode mode;
    int nth;
    int err;
    int calls[F_COUNT];
    int fired;
    bool fail_next_write;
    int truncates_to_fail; /* ftruncate (rollback) fails this many times */
};

static int fault_hit(struct fault *f, enum fault_op op)
{
    int n = ++f->calls[op];
    if (f->mode == FAULT_FAIL && op == f->op && n == f->nth) {
        f->fired++;
        return f->err;
    }
    return 0;
}

static int f_open(void *ctx, const char *path, int flags, int mode)
{
    int rc = fault_hit(ctx, F_OPEN);
    return rc < 0 ? rc : fsops_default()->open(NULL, path, flags, mode);
}

static int f_close(void *ctx, int fd)
{
    (void)ctx;
    return fsops_default()->close(NULL, fd);
}

static ssize_t f_pwrite(void *ctx, int fd, const void *p, size_t n, int64_t off)
{
    struct fault *f = ctx;
    int rc = fault_hit(f, F_PWRITE);

    if (rc < 0) {
        return rc;
    }
    if (f->fail_next_write) {
        f->fail_next_write = false;
        return f->err;
    }
    if (f->mode == FAULT_HALF_FAIL && f->op == F_PWRITE && f->calls[F_PWRITE] == f->nth) {
        f->fired++;
        f->fail_next_write = n > 1;
        n = n > 1 ? n / 2 : n;
    }
    if (f->mode == FAULT_SHORT && n > 1) {
        n /= 2;
    }
    return fsops_default()->pwrite(NULL, fd, p, n, off);
}

static int f_fdatasync(void *ctx, int fd)
{
    (void)fd;
    return fault_hit(ctx, F_FDATASYNC); /* counted, not done: test_power_loss checks syncs */
}

static int f_ftruncate(void *ctx, int fd, int64_t len)
{
    struct fault *f = ctx;
    int rc = fault_hit(f, F_FTRUNCATE);

    if (rc == 0 && f->truncates_to_fail > 0) {
        f->truncates_to_fail--;
        rc = -EIO;
    }
    return rc < 0 ? rc : fsops_default()->ftruncate(NULL, fd, len);
}

static int f_fsync_dir(void *ctx, const char *path)
{
    (void)path;
    return fault_hit(ctx, F_FSYNC_DIR);
}

static int f_rename(void *ctx, const char *a, const char *b)
{
    (void)ctx;
    return fsops_default()->rename(NULL, a, b);
}

static int f_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return fsops_default()->unlink(NULL, path);
}

static int f_mkdir(void *ctx, const char *path, int mode)
{
    (void)ctx;
    return fsops_default()->mkdir(NULL, path, mode);
}

/* One run: 8 batches of records over 3 partitions, a commit after each, faults as f
 * says; then a crash (no final commit) and a restart with good ops. Exactly the
 * records of the commits that returned 0 must be there; when a rollback's truncation
 * failed too and the crash came before a retry, unacknowledged whole blocks may remain
 * (at least once), but never a gap or a duplicate. Returns how many faults fired. */
static int fault_run(const struct tdir *t, struct fault *f)
{
    struct fsops ops = {
        .ctx = f,
        .open = f_open,
        .close = f_close,
        .pwrite = f_pwrite,
        .fdatasync = f_fdatasync,
        .ftruncate = f_ftruncate,
        .fsync_dir = f_fsync_dir,
        .rename = f_rename,
        .unlink = f_unlink,
        .mkdir = f_mkdir,
    };
    struct store_opts o = opts(t);
    bool acked[8 * 40 + 1] = { false };
    uint64_t seq = 1;

    tdir_rm_tree(t->dir);
    o.fs = &ops;
    o.max_open_segments = 2;
    struct store *st = NULL;
    struct errbuf eb;
    errbuf_clear(&eb);
    if (store_open(&o, &st, &eb) < 0) {
        assert_true(f->fired > 0); /* creating the directories failed */
        st = NULL;
    }
    /* A record is acknowledged when its append and the next commit returned 0 with no
     * append error in between (an error drops everything since the last commit). */
    uint64_t pending[8 * 40];
    size_t npending = 0;
    for (int batch = 0; st && batch < 8; batch++) {
        int fired = f->fired;
        bool failed = false;
        for (int i = 0; i < 40; i++, seq++) {
            int64_t ts = T0 + (int64_t)(seq / 7 % 3) * HOUR + (int64_t)seq;
            if (append(st, ts, seq) == 0) {
                pending[npending++] = seq;
            } else {
                npending = 0;
                failed = true;
            }
        }
        if (store_commit(st) == 0) {
            for (size_t i = 0; i < npending; i++) {
                acked[pending[i]] = true;
            }
        } else {
            failed = true;
        }
        npending = 0;
        if (f->fired != fired) {
            assert_true(failed); /* no I/O error is swallowed */
        }
    }
    /* A rollback failed; or, with the journal, its write failed after the catalog took
     * the commit's full blocks (segment.md 5.6.2): at least once. */
    bool may_keep_unacked = (st && store__poisoned(st)) || o.block_max_age_ns > 0;
    store__abandon(st);                                /* kill -9 */

    o.fs = NULL;
    st = open_store(&o);
    assert_true(store_next_seq(st) <= seq);
    store_close(st);
    struct got g = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
    assert_int_equal(g.bad, 0);
    size_t want = 0;
    for (uint64_t s = 1; s < seq; s++) {
        want += acked[s];
    }
    bool seen[8 * 40 + 1] = { false };
    size_t found = 0;
    for (size_t i = 0; i < g.n; i++) {
        assert_true(g.seq[i] >= 1 && g.seq[i] < seq);
        assert_false(seen[g.seq[i]]);
        seen[g.seq[i]] = true;
        found += acked[g.seq[i]];
        if (!acked[g.seq[i]] && !may_keep_unacked) {
            print_error("seq %" PRIu64 " present but its commit failed (op %d nth %d mode %d)\n",
                        g.seq[i], f->op, f->nth, f->mode);
            fail();
        }
    }
    assert_int_equal(found, want);
    got_free(&g);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
    return f->fired;
}

static void test_faults(void **state)
{
    struct tdir *t = *state;
    const struct {
        enum fault_op op;
        enum fault_mode mode;
        int err;
    } kinds[] = {
        { F_PWRITE, FAULT_FAIL, -EIO },         { F_PWRITE, FAULT_FAIL, -ENOSPC },
        { F_PWRITE, FAULT_HALF_FAIL, -ENOSPC }, { F_FDATASYNC, FAULT_FAIL, -EIO },
        { F_FTRUNCATE, FAULT_FAIL, -EIO },      { F_FSYNC_DIR, FAULT_FAIL, -EIO },
        { F_OPEN, FAULT_FAIL, -EMFILE },
    };

    log_set_level(LOG_LVL_ERROR);
    for (size_t k = 0; k < VG_ARRAY_LEN(kinds); k++) {
        for (int nth = 1;; nth++) {
            struct fault f = {
                .op = kinds[k].op, .mode = kinds[k].mode, .nth = nth, .err = kinds[k].err
            };
            if (fault_run(t, &f) == 0) {
                break; /* past the last call of that op */
            }
        }
    }
    /* A failed rollback (truncate) after a failed write or sync: the store stays
     * poisoned until a rollback succeeds, and no block chains from unacknowledged bytes. */
    for (int nth = 1;; nth++) {
        struct fault f = {
            .op = F_PWRITE, .mode = FAULT_HALF_FAIL, .nth = nth, .err = -EIO, .truncates_to_fail = 1
        };
        if (fault_run(t, &f) == 0) {
            break;
        }
    }
    for (int nth = 1;; nth++) {
        struct fault f = {
            .op = F_FDATASYNC, .mode = FAULT_FAIL, .nth = nth, .err = -EIO, .truncates_to_fail = 2
        };
        if (fault_run(t, &f) == 0) {
            break;
        }
    }
    /* Legal short writes everywhere: nothing fails. */
    struct fault f = { .mode = FAULT_SHORT, .op = F_COUNT };
    fault_run(t, &f);
    log_set_level(LOG_LVL_INFO);
}

/* The truncation of a rollback fails too: appends and commits keep failing until a
 * rollback succeeds; then the store works again and holds only acknowledged records. */
static int g_fail_truncates;
static int g_fail_writes;

static ssize_t p_pwrite(void *ctx, int fd, const void *p, size_t n, int64_t off)
{
    (void)ctx;
    if (g_fail_writes > 0) {
        g_fail_writes--;
        (void)fsops_default()->pwrite(NULL, fd, p, n / 2 + 1, off); /* torn, then an error */
        return -EIO;
    }
    return fsops_default()->pwrite(NULL, fd, p, n, off);
}

static int p_ftruncate(void *ctx, int fd, int64_t len)
{
    (void)ctx;
    if (g_fail_truncates > 0) {
        g_fail_truncates--;
        return -EIO;
    }
    return fsops_default()->ftruncate(NULL, fd, len);
}

static void test_rollback_fails(void **state)
{
    struct tdir *t = *state;
    struct fsops ops = *fsops_default();
    struct store_opts o = opts(t);

    log_set_level(LOG_LVL_ERROR);
    ops.pwrite = p_pwrite;
    ops.ftruncate = p_ftruncate;
    o.fs = &ops;
    struct store *st = open_store(&o);
    for (uint64_t i = 1; i <= 100; i++) {
        assert_int_equal(append(st, T0 + (int64_t)i, i), 0);
    }
    assert_int_equal(store_commit(st), 0);

    g_fail_writes = 1;
    g_fail_truncates = 3;
    int rc = 0;
    uint64_t seq = 101;
    for (; rc == 0 && seq < 400; seq++) {
        rc = append(st, T0 + (int64_t)seq, seq); /* a full block's write fails */
    }
    assert_int_equal(rc, -EIO); /* and its rollback's truncation (1) */
    assert_true(store__poisoned(st));
    assert_int_equal(append(st, T0 + (int64_t)seq, seq), -EIO); /* retried: (2) */
    seq++;
    assert_int_equal(store_commit(st), -EIO); /* (3) */
    assert_true(store__poisoned(st));
    uint64_t survivor = seq;
    assert_int_equal(append(st, T0 + (int64_t)seq, seq), 0); /* the retry works */
    assert_false(store__poisoned(st));
    assert_int_equal(store_commit(st), 0);
    /* A plain failed block write: rolled back at once, the next cycle is fine. */
    g_fail_writes = 1;
    rc = 0;
    uint64_t first_lost = ++seq;
    for (; rc == 0 && seq < 2000; seq++) {
        rc = append(st, T0 + (int64_t)seq, seq);
    }
    assert_int_equal(rc, -EIO);
    assert_true(seq - first_lost > 10);
    assert_false(store__poisoned(st));
    assert_int_equal(store_commit(st), 0); /* nothing left to commit */
    store_close(st);

    struct got g = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
    assert_int_equal(g.n, 101);
    assert_int_equal(g.seq[100], survivor);
    got_free(&g);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
    log_set_level(LOG_LVL_INFO);
}

/* A file created after the last commit (no catalog row) survives a crash: recovery
 * adds it; a file whose header never made it is removed. */
static void test_orphan_files(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    char names[8][SEG_NAME_MAX];
    char path[PATH_MAX];

    log_set_level(LOG_LVL_ERROR);
    struct store *st = open_store(&o);
    assert_int_equal(append(st, T0, 1), 0);
    assert_int_equal(store_commit(st), 0);
    for (uint64_t i = 2; i <= 200; i++) { /* full blocks of a new partition, uncommitted */
        assert_int_equal(append(st, T0 + HOUR + (int64_t)i, i), 0);
    }
    store__abandon(st);
    /* A torn header of a never-committed segment. */
    snprintf(path, sizeof(path), "%s/segments/20240501T170000Z-000009.vseg", t->dir);
    write_file(path, (const uint8_t *)"VIGILSE", 7);

    char report[4096];
    assert_int_equal(verify(t->dir, report, sizeof(report)), VG_ECORRUPT);
    assert_non_null(strstr(report, "not in the catalog"));

    st = open_store(&o);
    assert_int_equal(store_next_seq(st) > 2, true);
    store_close(st);
    assert_int_equal(seg_files(t->dir, names, 8), 2);
    struct got g = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
    assert_true(g.n > 1); /* the full blocks that reached the file */
    assert_int_equal(g.bad, 0);
    got_free(&g);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
    log_set_level(LOG_LVL_INFO);
}

static void test_big_record_and_limits(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store *st = open_store(&o);
    size_t big_len = 1 << 20;
    uint8_t *big = xmalloc(big_len);

    for (size_t i = 0; i < big_len; i++) {
        big[i] = (uint8_t)(i * 31 + (i >> 9));
    }
    assert_int_equal(store_append(st, T0, 1, (struct span){ big, big_len }), 0);
    assert_int_equal(store_append(st, T0, 2, (struct span){ big, 0 }), -EINVAL);
    assert_int_equal(store_commit(st), 0);
    store_close(st);

    struct store_reader *r = NULL;
    struct errbuf eb;
    struct got g = { 0 };
    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(t->dir, &r, &eb), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, NULL), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.bad, 1); /* not make_rec's bytes, by design */
    store_reader_close(r);
    got_free(&g);
    free(big);
}

/* ---- power loss (STYLE.md Tests: nothing unsynced is acknowledged) ---- */

/* An fsops that knows what a power loss would keep: each file's bytes as of its last
 * fdatasync, and directory entries (created, renamed, removed) as of the last fsync of
 * their directory. Writes go through to the real files (the store reads them with
 * plain pread); pf_power_loss() then puts every file back to what would have survived.
 * pf_dirty() says what is not durable yet: after a store call returns, nothing it
 * wrote may be. */
#define PF_FILES 512
#define PF_FDS   4096

struct pf_file {
    char path[PATH_MAX];
    bool exists;         /* now */
    bool exists_durable; /* its directory entry survives */
    uint8_t *durable;    /* its bytes as of its last fdatasync (NULL: empty) */
    size_t durable_len;
    bool dirty; /* written since its last fdatasync */
};

struct pf {
    struct pf_file f[PF_FILES];
    int nf;
    int fd_file[PF_FDS]; /* fd -> index in f, -1 */
};

static void pf_init(struct pf *p)
{
    memset(p, 0, sizeof(*p));
    for (int i = 0; i < PF_FDS; i++) {
        p->fd_file[i] = -1;
    }
}

static void pf_reset(struct pf *p)
{
    for (int i = 0; i < p->nf; i++) {
        free(p->f[i].durable);
    }
    pf_init(p);
}

/* The file at path; a file met for the first time is durable as it is. */
static int pf_file(struct pf *p, const char *path)
{
    for (int i = 0; i < p->nf; i++) {
        if (strcmp(p->f[i].path, path) == 0) {
            return i;
        }
    }
    assert_true(p->nf < PF_FILES);
    struct pf_file *f = &p->f[p->nf];
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s", path);
    if (access(path, F_OK) == 0) {
        f->exists = f->exists_durable = true;
        f->durable = read_file(path, &f->durable_len);
    }
    return p->nf++;
}

static void pf_snapshot(struct pf_file *f)
{
    free(f->durable);
    f->durable = read_file(f->path, &f->durable_len);
    f->dirty = false;
}

static int pf_open(void *ctx, const char *path, int flags, int mode)
{
    struct pf *p = ctx;
    int i = pf_file(p, path);
    int fd = fsops_default()->open(NULL, path, flags, mode);

    if (fd >= 0) {
        assert_true(fd < PF_FDS);
        p->fd_file[fd] = i;
        if (!p->f[i].exists || (flags & O_TRUNC)) {
            p->f[i].dirty = true; /* created (its bytes: none durable yet) or emptied */
        }
        p->f[i].exists = true;
    }
    return fd;
}

static int pf_close(void *ctx, int fd)
{
    struct pf *p = ctx;
    if (fd >= 0 && fd < PF_FDS) {
        p->fd_file[fd] = -1;
    }
    return fsops_default()->close(NULL, fd);
}

static ssize_t pf_pwrite(void *ctx, int fd, const void *b, size_t n, int64_t off)
{
    struct pf *p = ctx;
    ssize_t w = fsops_default()->pwrite(NULL, fd, b, n, off);
    if (w > 0) {
        p->f[p->fd_file[fd]].dirty = true;
    }
    return w;
}

static int pf_fdatasync(void *ctx, int fd)
{
    struct pf *p = ctx;

    pf_snapshot(&p->f[p->fd_file[fd]]);
    return 0;
}

static int pf_ftruncate(void *ctx, int fd, int64_t len)
{
    /* A truncation not synced yet may be undone by a power loss: the longer file comes
     * back. That only ever brings back unacknowledged bytes, which recovery handles. */
    (void)ctx;
    return fsops_default()->ftruncate(NULL, fd, len);
}

static int pf_fsync_dir(void *ctx, const char *dir)
{
    struct pf *p = ctx;
    size_t n = strlen(dir);

    for (int i = 0; i < p->nf; i++) {
        const char *slash = strrchr(p->f[i].path, '/');
        if ((size_t)(slash - p->f[i].path) == n && strncmp(p->f[i].path, dir, n) == 0) {
            p->f[i].exists_durable = p->f[i].exists;
        }
    }
    return 0;
}

static int pf_rename(void *ctx, const char *from, const char *to)
{
    struct pf *p = ctx;
    int a = pf_file(p, from);
    int b = pf_file(p, to);
    int rc = fsops_default()->rename(NULL, from, to);

    if (rc == 0) {
        /* The bytes durable so far belong to the file, whichever name survives. */
        struct pf_file *fa = &p->f[a];
        struct pf_file *fb = &p->f[b];
        free(fb->durable);
        fb->durable = NULL;
        fb->durable_len = fa->durable_len;
        if (fa->durable) {
            fb->durable = xmalloc(fa->durable_len + 1);
            memcpy(fb->durable, fa->durable, fa->durable_len);
        }
        fb->dirty = fa->dirty;
        fb->exists = true;
        fa->exists = false;
        for (int i = 0; i < PF_FDS; i++) {
            p->fd_file[i] = p->fd_file[i] == a ? b : p->fd_file[i];
        }
    }
    return rc;
}

static int pf_unlink(void *ctx, const char *path)
{
    struct pf *p = ctx;
    int i = pf_file(p, path);
    int rc = fsops_default()->unlink(NULL, path);
    if (rc == 0) {
        p->f[i].exists = false;
    }
    return rc;
}

static int pf_mkdir(void *ctx, const char *path, int mode)
{
    (void)ctx;
    return fsops_default()->mkdir(NULL, path, mode);
}

static struct fsops pf_ops(struct pf *p)
{
    struct fsops o = {
        p,         pf_open,   pf_close, pf_pwrite, pf_fdatasync, pf_ftruncate, pf_fsync_dir,
        pf_rename, pf_unlink, pf_mkdir
    };
    return o;
}

/* What is not durable now: a file written since its last fdatasync, or a directory
 * entry not synced (with segments: segment files too, else only the others, as records
 * appended but not committed are not durable yet). NULL when everything is. */
static const char *pf_dirty(const struct pf *p, bool segments)
{
    for (int i = 0; i < p->nf; i++) {
        size_t n = strlen(p->f[i].path);
        if (!segments && n > 5 && strcmp(p->f[i].path + n - 5, ".vseg") == 0) {
            continue;
        }
        if ((p->f[i].exists && p->f[i].dirty) || p->f[i].exists != p->f[i].exists_durable) {
            return p->f[i].path;
        }
    }
    return NULL;
}

/* The power goes: every file is put back to what survives. */
static void pf_power_loss(struct pf *p)
{
    for (int i = 0; i < p->nf; i++) {
        struct pf_file *f = &p->f[i];
        if (f->exists_durable) {
            write_file(f->path, f->durable ? f->durable : (const uint8_t *)"", f->durable_len);
        } else {
            (void)unlink(f->path);
        }
    }
    pf_reset(p);
}

/* The catalog as it was at some moment (SQLite in WAL mode: the database and its log
 * together), to put back at a power loss: the transactions since are lost, as
 * synchronous=NORMAL allows (segment.md 6). */
struct cat_snap {
    uint8_t *db, *wal;
    size_t db_len, wal_len;
    bool have;
};

static void cat_snap_take(const char *dir, struct cat_snap *s)
{
    char p[PATH_MAX + 8];
    free(s->db);
    free(s->wal);
    memset(s, 0, sizeof(*s));
    snprintf(p, sizeof(p), "%s/catalog.db", dir);
    s->db = read_file(p, &s->db_len);
    snprintf(p, sizeof(p), "%s/catalog.db-wal", dir);
    if (access(p, F_OK) == 0) {
        s->wal = read_file(p, &s->wal_len);
    }
    s->have = true;
}

static void cat_snap_restore(const char *dir, struct cat_snap *s)
{
    char p[PATH_MAX + 8];
    snprintf(p, sizeof(p), "%s/catalog.db", dir);
    unlink_wal(p);
    write_file(p, s->db, s->db_len);
    if (s->wal) {
        snprintf(p, sizeof(p), "%s/catalog.db-wal", dir);
        write_file(p, s->wal, s->wal_len);
    }
}

static void cat_snap_free(struct cat_snap *s)
{
    free(s->db);
    free(s->wal);
    memset(s, 0, sizeof(*s));
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

#define PL_MAX_SEQ 4000

/* One seeded run: a random mix of appends over four partitions, commits, seals,
 * checkpoints, retention, compaction and clean restarts; after every call the store
 * returns from, what it wrote is durable (pf_dirty); then, at a random moment, the
 * power goes (and half the time the catalog loses its transactions since some earlier
 * moment). Every acknowledged record must come back (those retention deleted aside),
 * once, and the store must verify. Returns false (after saying why) on a failure. */
static bool power_run(const struct tdir *t, uint64_t seed)
{
    struct pf *p = xcalloc(1, sizeof(*p));
    struct fsops ops;
    struct store_opts o = opts(t);
    struct cat_snap snap = { 0 };
    static uint8_t state[PL_MAX_SEQ + 1]; /* 0 none, 1 appended, 2 acked, 3 deleted */
    static int64_t when[PL_MAX_SEQ + 1];
    uint64_t rs = seed * 2654435761u + 1;
    uint64_t seq = 1;
    bool ok = true;
    int steps = 30 + (int)(xorshift(&rs) % 200);
    bool lose_catalog = xorshift(&rs) % 2;

    tdir_rm_tree(t->dir);
    memset(state, 0, sizeof(state));
    pf_init(p);
    ops = pf_ops(p);
    o.fs = &ops;
    o.max_open_segments = 2; /* eviction syncs too */
    struct store *st = open_store(&o);
    for (int step = 0; step < steps && seq < PL_MAX_SEQ - 100; step++) {
        uint64_t r = xorshift(&rs) % 100;
        const char *what = "append";
        if (r < 55) {
            int n = 1 + (int)(xorshift(&rs) % 40);
            for (int i = 0; i < n; i++, seq++) {
                int64_t ts = T0 + (int64_t)(xorshift(&rs) % 4) * HOUR +
                             (int64_t)(xorshift(&rs) % 3600) * VG_NS_PER_SEC;
                assert_int_equal(append(st, ts, seq), 0);
                state[seq] = 1;
                when[seq] = ts;
            }
        } else if (r < 80) {
            what = "commit";
            assert_int_equal(store_commit(st), 0);
            for (uint64_t s = 1; s < seq; s++) {
                state[s] = state[s] == 1 ? 2 : state[s];
            }
        } else if (r < 85) {
            what = "seal";
            assert_int_equal(store_seal_before(st, T0 + (int64_t)(xorshift(&rs) % 5) * HOUR), 0);
        } else if (r < 89) {
            what = "checkpoint";
            assert_true(store_checkpoint(st) >= 0);
        } else if (r < 91) {
            what = "retention";
            struct store_retention pol = { .max_age_ns = HOUR };
            struct store_retention_result res;
            assert_true(store_retention_run(st, &pol, T0 + 10 * HOUR, &res) >= 0);
            for (size_t d = 0; d < res.ndeleted; d++) {
                for (uint64_t s = 1; s < seq; s++) {
                    if (state[s] == 2 && when[s] >= res.deleted[d].part_start &&
                        when[s] < res.deleted[d].part_end) {
                        state[s] = 3;
                    }
                }
            }
            free(res.deleted);
        } else if (r < 94) {
            what = "compact";
            struct store_compact_opts co = { .max_segments = 1 };
            struct store_compact_result cr;
            struct errbuf eb;
            errbuf_clear(&eb);
            assert_int_equal(store_compact(st, &co, &cr, &eb), 0);
        } else if (r < 96) {
            what = "restart";
            store_close(st); /* commits: the appended are acknowledged */
            for (uint64_t s = 1; s < seq; s++) {
                state[s] = state[s] == 1 ? 2 : state[s];
            }
            st = open_store(&o);
        } else {
            what = "catalog snapshot";
            cat_snap_take(t->dir, &snap);
        }
        /* After a commit everything; after the others what they wrote themselves. */
        bool all = strcmp(what, "commit") == 0 || strcmp(what, "restart") == 0;
        const char *dirty = strcmp(what, "append") == 0 ? NULL : pf_dirty(p, all);
        if (dirty) {
            print_error("seed %" PRIu64 " step %d: '%s' returned with '%s' not durable\n", seed,
                        step, what, dirty);
            ok = false;
            break;
        }
    }
    store__abandon(st); /* the power goes */
    pf_power_loss(p);
    if (lose_catalog && snap.have) {
        cat_snap_restore(t->dir, &snap);
    }
    cat_snap_free(&snap);

    st = open_store(&o);
    store_close(st);
    struct got g = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
    static bool seen[PL_MAX_SEQ + 1];
    memset(seen, 0, sizeof(seen));
    for (size_t i = 0; ok && i < g.n; i++) {
        if (g.seq[i] >= seq || seen[g.seq[i]] || state[g.seq[i]] == 3) {
            print_error("seed %" PRIu64 ": seq %" PRIu64 " %s\n", seed, g.seq[i],
                        g.seq[i] >= seq  ? "never appended"
                        : seen[g.seq[i]] ? "twice"
                                         : "deleted");
            ok = false;
        }
        seen[g.seq[i] < seq ? g.seq[i] : 0] = true;
    }
    for (uint64_t s = 1; ok && s < seq; s++) {
        if (state[s] == 2 && !seen[s]) {
            print_error("seed %" PRIu64 ": acknowledged seq %" PRIu64 " lost in the power loss%s\n",
                        seed, s, lose_catalog ? " (the catalog lost its last transactions)" : "");
            ok = false;
        }
    }
    ok = ok && g.bad == 0;
    got_free(&g);
    if (ok && verify(t->dir, NULL, 0) != 0) {
        print_error("seed %" PRIu64 ": the store does not verify after the power loss\n", seed);
        ok = false;
    }
    pf_reset(p);
    free(p);
    return ok;
}


/* ---- the commit journal (segment.md 5.6) ---- */

static int64_t g_clock = T0;
static int64_t fake_now(void)
{
    return g_clock;
}

static size_t journal_files(const char *dir)
{
    char path[PATH_MAX];
    uint64_t *nos = NULL;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/journal", dir);
    assert_int_equal(jnl__list(path, &nos, &n), 0);
    free(nos);
    return n;
}

/* The path of the newest journal file (there is one). */
static void journal_last(const char *dir, char *out)
{
    char path[PATH_MAX];
    char name[JNL_NAME_MAX];
    uint64_t *nos = NULL;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/journal", dir);
    assert_int_equal(jnl__list(path, &nos, &n), 0);
    assert_true(n > 0);
    jnl__name(nos[n - 1], name);
    assert_true(strlen(path) + strlen(name) + 2 <= PATH_MAX);
    memcpy(out, path, strlen(path));
    out[strlen(path)] = '/';
    memcpy(out + strlen(path) + 1, name, strlen(name) + 1);
    free(nos);
}

/* segment.md 5.6.1: frames encode and decode; every byte of a frame matters. */
static void test_journal_framing(void **state)
{
    (void)state;
    struct buf pay;
    struct buf rb;
    struct jnl_frame f;
    struct jnl_frame d;
    struct errbuf why;
    uint8_t h[JNL_FRAME_HDR_LEN];

    memset(&f, 0, sizeof(f));
    memset(&d, 0, sizeof(d));
    buf_init(&pay, 1 << 20);
    buf_init(&rb, 1 << 16);
    for (uint64_t seq = 10; seq < 20; seq += 3) {
        make_rec(seq, &rb);
        assert_int_equal(jnl__rec_append(&pay, T0 + (int64_t)seq, seq, buf_span(&rb)), 0);
        f.count++;
    }
    f.seq_min = 10;
    f.seq_max = 19;
    f.commit_seq = 25;
    f.payload_len = (uint32_t)pay.len;
    f.payload_crc = seg__crc32(pay.data, pay.len);
    jnl__frame_hdr_encode(&f, h);
    errbuf_clear(&why);
    assert_int_equal(jnl__frame_hdr_decode(h, &d, &why), 0);
    assert_true(d.count == f.count && d.payload_len == f.payload_len &&
                d.payload_crc == f.payload_crc && d.seq_min == f.seq_min &&
                d.seq_max == f.seq_max && d.commit_seq == f.commit_seq);
    assert_int_equal(jnl__payload_check(&d, buf_span(&pay), &why), 0);
    /* The records, in order, as appended. */
    struct span in = buf_span(&pay);
    int64_t ts;
    uint64_t seq;
    struct span rec;
    for (uint64_t want = 10; want < 20; want += 3) {
        assert_int_equal(jnl__rec_next(&in, &ts, &seq, &rec), 1);
        assert_int_equal(seq, want);
        assert_int_equal(ts, T0 + (int64_t)want);
        make_rec(want, &rb);
        assert_true(span_eq(rec, buf_span(&rb)));
    }
    assert_int_equal(jnl__rec_next(&in, &ts, &seq, &rec), 0);
    /* Any flipped bit of the header or the payload is caught. */
    for (size_t i = 0; i < JNL_FRAME_HDR_LEN; i++) {
        uint8_t c[JNL_FRAME_HDR_LEN];
        memcpy(c, h, sizeof(c));
        c[i] ^= 0x10;
        int rc = jnl__frame_hdr_decode(c, &d, &why);
        assert_true(rc == VG_ECORRUPT || jnl__payload_check(&d, buf_span(&pay), &why) < 0);
    }
    for (size_t i = 0; i < pay.len; i++) {
        pay.data[i] ^= 0x01;
        assert_int_equal(jnl__payload_check(&f, buf_span(&pay), &why), VG_ECORRUPT);
        pay.data[i] ^= 0x01;
    }
    /* Limits, before anything is read: a count the bytes cannot hold, a payload over
     * the maximum, a seq range that cannot fit, a commit_seq below the records. */
    struct jnl_frame bad[] = {
        { .count = 0, .payload_len = 100, .seq_min = 1, .seq_max = 1, .commit_seq = 1 },
        { .count = 10, .payload_len = 100, .seq_min = 1, .seq_max = 10, .commit_seq = 10 },
        { .count = 1, .payload_len = JNL_MAX_PAYLOAD + 1, .seq_min = 1, .seq_max = 1,
          .commit_seq = 1 },
        { .count = 3, .payload_len = 100, .seq_min = 5, .seq_max = 6, .commit_seq = 6 },
        { .count = 1, .payload_len = 100, .seq_min = 5, .seq_max = 5, .commit_seq = 4 },
        { .count = 1, .payload_len = 100, .seq_min = 0, .seq_max = 0, .commit_seq = 0 },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        jnl__frame_hdr_encode(&bad[i], h);
        assert_int_equal(jnl__frame_hdr_decode(h, &d, &why), VG_ECORRUPT);
    }
    /* A payload whose records disagree with the header. */
    f.count = 2;
    f.seq_max = 13;
    assert_int_equal(jnl__payload_check(&f, buf_span(&pay), &why), VG_ECORRUPT);
    /* File names. */
    char name[JNL_NAME_MAX];
    uint64_t no = 0;
    jnl__name(42, name);
    assert_string_equal(name, "00000000000000000042.vjnl");
    assert_true(jnl__name_parse(name, &no));
    assert_int_equal(no, 42);
    assert_false(jnl__name_parse("00000000000000000042.vseg", &no));
    assert_false(jnl__name_parse("0000000000000000042.vjnl", &no));
    assert_false(jnl__name_parse("00000000000000000000.vjnl", &no));
    buf_release(&pay);
    buf_release(&rb);
}

/* Small commits do not cut small blocks: the records wait in open blocks, durable in the
 * journal; readers see them once; a kill -9 loses none (replayed with their seq); a
 * clean close leaves no journal. The store is as dense at 20 per commit as at 1000. */
static void test_journal_dense_and_replayed(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_stats ss;
    struct got g = { 0 };
    uint64_t committed = 0;

    o.block_bytes = 64 << 10;
    o.block_max_age_ns = HOUR;
    g_clock = T0;
    o.mono_ns = fake_now;
    struct store *st = open_store(&o);
    uint64_t seq = 1;
    for (int c = 0; c < 50; c++) {
        for (int i = 0; i < 20; i++, seq++) {
            assert_int_equal(append(st, T0 + (int64_t)seq * VG_NS_PER_SEC, seq), 0);
        }
        assert_int_equal(store_commit(st), 0);
    }
    store_get_stats(st, &ss);
    /* ~100 KB of records in 64 KiB blocks: one full block written, none per commit. */
    assert_true(ss.blocks <= 2);
    assert_int_equal(ss.commits, 50);
    assert_true(journal_files(t->dir) >= 1);

    /* A reader sees every acknowledged record, once, while most are only journaled. */
    struct store_reader *r = NULL;
    struct errbuf eb;
    struct store_scan_stats sst = { 0 };
    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(t->dir, &r, &eb), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, &sst), 0);
    assert_int_equal(g.n, 1000);
    assert_int_equal(g.bad, 0);
    assert_true(sst.records_journal > 0 && sst.records_journal < 1000);
    bool seen[1001] = { false };
    for (size_t i = 0; i < g.n; i++) {
        assert_true(g.seq[i] >= 1 && g.seq[i] <= 1000 && !seen[g.seq[i]]);
        seen[g.seq[i]] = true;
    }
    got_free(&g);
    /* A window and a seq range apply to the journaled records too. */
    assert_int_equal(store_scan(r, T0 + 990 * VG_NS_PER_SEC, T0 + 995 * VG_NS_PER_SEC, on_rec, &g,
                                NULL),
                     0);
    assert_int_equal(g.n, 5);
    got_free(&g);
    assert_int_equal(store_scan_from_seq(r, 996, on_rec, &g, NULL), 0);
    size_t from996 = 0;
    for (size_t i = 0; i < g.n; i++) {
        from996 += g.seq[i] >= 996;
    }
    assert_int_equal(from996, 5);
    got_free(&g);
    /* The follower's horizon counts the journal. */
    assert_int_equal(store_reader_committed_seq(r, &committed), 0);
    assert_int_equal(committed, 1000);
    /* Appended, not committed: not seen, not in the horizon. */
    for (int i = 0; i < 5; i++, seq++) {
        assert_int_equal(append(st, T0 + (int64_t)seq * VG_NS_PER_SEC, seq), 0);
    }
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, NULL), 0);
    assert_int_equal(g.n, 1000);
    got_free(&g);
    assert_int_equal(store_reader_committed_seq(r, &committed), 0);
    assert_int_equal(committed, 1000);
    /* verify says what the journal holds that no block does yet (segment.md 5.6.5). */
    char report[8192];
    assert_int_equal(verify(t->dir, report, sizeof(report)), 0);
    assert_non_null(strstr(report, "journal: 1 files, 1000 records"));
    assert_null(strstr(report, " 0 not yet in blocks"));

    /* kill -9: the open blocks are gone from memory, not from the journal. */
    store__abandon(st);
    st = open_store(&o);
    assert_int_equal(store_next_seq(st), 1001);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, NULL), 0);
    assert_int_equal(g.n, 1000);
    got_free(&g);
    /* A second crash before anything new: replayed again, still once. */
    store__abandon(st);
    st = open_store(&o);
    assert_int_equal(store_next_seq(st), 1001);
    for (int i = 0; i < 20; i++, seq++) {
        assert_int_equal(append(st, T0 + (int64_t)seq * VG_NS_PER_SEC, seq), 0);
    }
    assert_int_equal(store_commit(st), 0);
    store_close(st); /* every block cut: the journal goes */
    assert_int_equal(journal_files(t->dir), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &g, &sst), 0);
    /* The 1000, then 20 more; the 5 never committed are gone (their seqs unused). */
    assert_int_equal(g.n, 1020);
    assert_int_equal(g.bad, 0);
    got_free(&g);
    store_reader_close(r);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
    o.mono_ns = NULL;
}

/* A block is cut once its first record is block_max_age old (store_cut_aged), and the
 * journal files whose records are then all in blocks go. */
static void test_journal_age(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_stats ss;

    o.block_bytes = 64 << 10;
    o.block_max_age_ns = 60 * VG_NS_PER_SEC;
    g_clock = T0;
    o.mono_ns = fake_now;
    struct store *st = open_store(&o);
    for (uint64_t seq = 1; seq <= 10; seq++) {
        assert_int_equal(append(st, T0 + (int64_t)seq, seq), 0);
    }
    assert_int_equal(store_commit(st), 0);
    g_clock += 59 * VG_NS_PER_SEC;
    assert_int_equal(store_cut_aged(st), 0);
    store_get_stats(st, &ss);
    assert_int_equal(ss.blocks, 0);
    assert_int_equal(journal_files(t->dir), 1);
    g_clock += VG_NS_PER_SEC;
    assert_int_equal(store_cut_aged(st), 0);
    store_get_stats(st, &ss);
    assert_int_equal(ss.blocks, 1);
    assert_int_equal(journal_files(t->dir), 0);
    /* Sealing cuts the open block of an ended partition, however young. */
    assert_int_equal(append(st, T0 + 11, 11), 0);
    assert_int_equal(store_commit(st), 0);
    assert_int_equal(journal_files(t->dir), 1);
    assert_int_equal(store_seal_before(st, T0 + HOUR), 0);
    store_get_stats(st, &ss);
    assert_int_equal(ss.blocks, 2);
    assert_int_equal(journal_files(t->dir), 0);
    store_close(st);
    struct got g = { 0 };
    assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
    assert_int_equal(g.n, 11);
    got_free(&g);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
    o.mono_ns = NULL;
}

/* A crash in the middle of a journal write: the file cut at every offset of its last
 * frame. Recovery cuts the torn frame (logged), keeps every frame before it, and the
 * store holds exactly the acknowledged records before it, once. */
static void test_journal_torn_tail(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    char jpath[PATH_MAX];
    char copy[PATH_MAX];

    o.block_bytes = 64 << 10;
    o.block_max_age_ns = HOUR;
    struct store *st = open_store(&o);
    uint64_t seq = 1;
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < 20; i++, seq++) {
            assert_int_equal(append(st, T0 + (int64_t)seq, seq), 0);
        }
        assert_int_equal(store_commit(st), 0);
    }
    journal_last(t->dir, jpath);
    size_t before_len = 0;
    free(read_file(jpath, &before_len));
    for (int i = 0; i < 20; i++, seq++) {
        assert_int_equal(append(st, T0 + (int64_t)seq, seq), 0);
    }
    assert_int_equal(store_commit(st), 0); /* the frame of 61..80 */
    store__abandon(st);
    size_t full_len = 0;
    uint8_t *full = read_file(jpath, &full_len);
    assert_true(full_len > before_len);
    snprintf(copy, sizeof(copy), "%s.full", t->root);
    log_set_level(LOG_LVL_ERROR);
    for (size_t cut = before_len; cut <= full_len; cut += (cut + 13 < full_len ? 13 : 1)) {
        /* Back to the moment of the crash: the segments as they were, this journal. */
        write_file(jpath, full, cut);
        st = open_store(&o);
        assert_int_equal(store_next_seq(st), cut == full_len ? 81 : 61);
        store__abandon(st); /* recovery changed nothing but the journal's tail */
        struct got g = { 0 };
        assert_int_equal(scan(t->dir, INT64_MIN, INT64_MAX, &g, NULL, NULL, 0), 0);
        assert_int_equal(g.n, cut == full_len ? 80 : 60);
        assert_int_equal(g.bad, 0);
        got_free(&g);
        size_t now_len = 0;
        free(read_file(jpath, &now_len));
        assert_int_equal(now_len, cut == full_len ? full_len : before_len);
        if (cut > before_len + 100 && cut < before_len + 114) {
            /* Torn again, as a crash leaves it: verify notes it, the next start cuts it. */
            char report[8192];
            write_file(jpath, full, cut);
            assert_int_equal(verify(t->dir, report, sizeof(report)), 0);
            assert_non_null(strstr(report, "being written or torn"));
        }
    }
    log_set_level(LOG_LVL_INFO);
    free(full);
    st = open_store(&o);
    store_close(st);
    assert_int_equal(journal_files(t->dir), 0);
    assert_int_equal(verify(t->dir, NULL, 0), 0);
}


static int count_big(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    (void)ts;
    uint64_t *n = arg;
    assert_true(rec.n > (1u << 20) || seq == 1);
    (*n)++;
    return 0;
}

/* A commit whose journaled records pass a frame's 64 MiB: several frames of at most
 * 16 MiB (one record in an old partition keeps them all in the journal), replayed
 * whole after a kill -9. */
static void test_journal_big_commit(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct buf b;
    uint64_t n = 0;

    o.block_bytes = 16u << 20;
    o.block_max_age_ns = HOUR;
    o.lz4_level = -1;
    struct store *st = open_store(&o);
    assert_int_equal(append(st, T0, 1), 0);
    buf_init(&b, 2u << 20);
    assert_int_equal(mp_put_map(&b, 1), 0);
    assert_int_equal(mp_put_cstr(&b, "message"), 0);
    size_t at = b.len;
    for (uint64_t seq = 2; seq <= 71; seq++) {
        b.len = at;
        char big[(1u << 20) + 64];
        memset(big, 'a' + (int)(seq % 26), sizeof(big));
        assert_int_equal(mp_put_str(&b, big, sizeof(big)), 0);
        assert_int_equal(store_append(st, T0 + 2 * HOUR + (int64_t)seq, seq, buf_span(&b)), 0);
    }
    buf_release(&b);
    assert_int_equal(store_commit(st), 0);
    store__abandon(st);
    char jpath[PATH_MAX];
    journal_last(t->dir, jpath);
    size_t len = 0;
    free(read_file(jpath, &len));
    assert_true(len > (70u << 20)); /* every record since the one in the old partition */
    st = open_store(&o);
    store__abandon(st);
    struct store_reader *r = NULL;
    struct errbuf eb;
    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(t->dir, &r, &eb), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, count_big, &n, NULL), 0);
    assert_int_equal(n, 71);
    store_reader_close(r);
    st = open_store(&o);
    store_close(st);
    assert_int_equal(journal_files(t->dir), 0);
    n = 0;
    assert_int_equal(store_reader_open(t->dir, &r, &eb), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, count_big, &n, NULL), 0);
    assert_int_equal(n, 71);
    store_reader_close(r);
}

/* VG_POWER_SEED=N runs that seed alone (a failure prints its seed); otherwise seeds 1..40. */
static void test_power_loss(void **state)
{
    struct tdir *t = *state;
    const char *one = getenv("VG_POWER_SEED");
    uint64_t first = one ? strtoull(one, NULL, 10) : 1;
    uint64_t last = one ? first : 40;

    log_set_level(LOG_LVL_ERROR);
    for (uint64_t seed = first; seed <= last; seed++) {
        if (!power_run(t, seed)) {
            fail_msg("power loss, seed %" PRIu64 " (VG_POWER_SEED=%" PRIu64 " replays it)", seed,
                     seed);
        }
    }
    log_set_level(LOG_LVL_INFO);
}

/* The faults with the commit journal: its writes, syncs, creations and truncations
 * fail too, and a rollback refills the open blocks from it (segment.md 5.6.2). */
static void test_faults_journal(void **state)
{
    g_max_age = HOUR;
    test_faults(state);
    g_max_age = 0;
}

/* The same with the commit journal (segment.md 5.6): commits journal the open blocks,
 * which are cut when full, sealed or at close; recovery replays the journal. */
static void test_power_loss_journal(void **state)
{
    g_max_age = HOUR;
    test_power_loss(state);
    g_max_age = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_roundtrip),
        cmocka_unit_test(test_partition_and_names),
        cmocka_unit_test_setup_teardown(test_opts_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_and_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lz4_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_and_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_many_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_writer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_beside_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orphan_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_record_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_journal, setup, teardown),
        cmocka_unit_test(test_journal_framing),
        cmocka_unit_test_setup_teardown(test_journal_dense_and_replayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_big_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_beside_writer_journal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
