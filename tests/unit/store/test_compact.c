/* tests/unit/store/test_compact.c: compaction of sealed segments (schemas/segment.md 12):
 * the same records come back, smaller, indexed, verified (chain, signature, records
 * digest); a changed compacted segment fails verification; a compaction a crash cut
 * short is finished or undone at the next start. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "schemas/record.h"
#include "store/fsops.h"
#include "store/store.h"
#include "store/store_int.h"
#include "tdir.h"

#define HOUR (3600 * VG_NS_PER_SEC)
#define T0   (1714568400LL * VG_NS_PER_SEC)

static int64_t at_t0(void)
{
    return T0;
}
#define NREC 3000

static int setup(void **state)
{
    return tdir_setup(state, "compact");
}

static int teardown(void **state)
{
    return tdir_teardown(state);
}

/* Record i: a schema-v1 record of one of three sources. */
static void make_rec(struct buf *out, struct buf *raw, int i)
{
    char msg[128];
    char user[32];
    struct rec r;
    const char *src[] = { "falco", "sshd", "k8s-audit" };

    snprintf(user, sizeof(user), "user%d", i % 17);
    snprintf(msg, sizeof(msg), "Failed password for %s from 10.0.%d.%d port %d%s", user, i % 9,
             i % 200, 2000 + i, i == 1234 ? " kdevtmpfsi" : "");
    raw->len = 0;
    assert_int_equal(mp_put_map(raw, 2), 0);
    assert_int_equal(mp_put_cstr(raw, "message"), 0);
    assert_int_equal(mp_put_cstr(raw, msg), 0);
    assert_int_equal(mp_put_cstr(raw, "user"), 0);
    assert_int_equal(mp_put_cstr(raw, user), 0);
    rec_init(&r);
    r.ts = T0 + (int64_t)i * (2 * HOUR / NREC);
    r.has_ts = true;
    r.seq = (uint64_t)i + 1;
    r.has_seq = true;
    rec_set(&r, VG_F_SOURCE, span_str(src[i % 3]));
    rec_set(&r, VG_F_USER, span_str(user));
    rec_set(&r, VG_F_MESSAGE, span_str(msg));
    r.raw = buf_span(raw);
    out->len = 0;
    assert_int_equal(rec_encode(&r, out), 0);
}

static struct store *open_store(const char *dir, const struct fsops *fs)
{
    /* received when they happened (at T0: retention runs on a clock near T0) */
    struct store_opts o = {
        .dir = dir, .partition_ns = HOUR, .block_bytes = 8192, .fs = fs, .now_ns = at_t0
    };
    struct store *st = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    if (store_open(&o, &st, &eb) != 0) {
        fail_msg("store_open: %s", errbuf_msg(&eb));
    }
    return st;
}

/* Two partitions of records, committed in small batches, sealed. */
static void fill(const char *dir)
{
    struct store *st = open_store(dir, NULL);
    struct buf rec;
    struct buf raw;

    buf_init(&rec, 1u << 16);
    buf_init(&raw, 1u << 16);
    for (int i = 0; i < NREC; i++) {
        make_rec(&rec, &raw, i);
        assert_int_equal(
            store_append(st, T0 + (int64_t)i * (2 * HOUR / NREC), (uint64_t)i + 1, buf_span(&rec)),
            0);
        if (i % 50 == 0) {
            assert_int_equal(store_commit(st), 0);
        }
    }
    assert_int_equal(store_seal_before(st, T0 + 2 * HOUR), 0);
    store_close(st);
    buf_release(&rec);
    buf_release(&raw);
}

/* Every record comes back exactly, once (checked against make_rec by seq). */
struct check {
    size_t n;
    bool *seen;
    size_t bad;
};

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct check *c = arg;
    struct buf rec;
    struct buf raw;

    buf_init(&rec, 1u << 16);
    buf_init(&raw, 1u << 16);
    if (seq < 1 || seq > NREC || c->seen[seq - 1]) {
        c->bad++;
    } else {
        make_rec(&rec, &raw, (int)seq - 1);
        c->bad +=
            !span_eq(bytes, buf_span(&rec)) || ts != T0 + (int64_t)(seq - 1) * (2 * HOUR / NREC);
        c->seen[seq - 1] = true;
    }
    c->n++;
    buf_release(&rec);
    buf_release(&raw);
    return 0;
}

static void check_all(const char *dir, const struct store_need *need, size_t want,
                      struct store_scan_stats *stats)
{
    struct store_reader *r = NULL;
    struct errbuf eb;
    struct check c = { 0, xcalloc(NREC, sizeof(bool)), 0 };

    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(dir, &r, &eb), 0);
    memset(stats, 0, sizeof(*stats));
    int rc = store_scan_need(r, INT64_MIN, INT64_MAX, need, on_rec, &c, stats);
    if (rc != 0) {
        fail_msg("scan: %s", store_reader_error(r));
    }
    store_reader_close(r);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.n, want);
    free(c.seen);
}

static int verify(const char *dir, char *report, size_t cap)
{
    struct errbuf eb;
    FILE *f = fmemopen(report, cap, "w");

    errbuf_clear(&eb);
    int rc = store_verify(dir, NULL, f, NULL, &eb);
    fclose(f);
    return rc;
}

static uint64_t seg_bytes(const char *dir)
{
    char path[600];
    uint64_t total = 0;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/segments", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char p[1200];
        struct stat sb;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        if (e->d_name[0] != '.' && stat(p, &sb) == 0) {
            total += (uint64_t)sb.st_size;
        }
    }
    closedir(d);
    return total;
}

static void compact_and_check(const char *dir, enum store_codec codec)
{
    char report[16384];
    struct store_scan_stats s;
    struct store_compact_result res;
    struct errbuf eb;

    fill(dir);
    uint64_t before = seg_bytes(dir);
    check_all(dir, NULL, NREC, &s);
    uint64_t blocks_before = s.blocks_read;

    struct store *st = open_store(dir, NULL);
    struct store_compact_opts o = { .codec = codec, .block_bytes = 256 << 10 };
    errbuf_clear(&eb);
    int crc = store_compact(st, &o, &res, &eb);
    if (crc != 0) {
        fail_msg("store_compact: %s", errbuf_msg(&eb));
    }
    assert_int_equal(res.segments, 2);
    assert_int_equal(res.skipped, 0);
    assert_int_equal(res.records, NREC);
    assert_true(res.bytes_after < res.bytes_before);
    /* Again: nothing left to do. */
    struct store_compact_result again;
    assert_int_equal(store_compact(st, &o, &again, &eb), 0);
    assert_int_equal(again.segments, 0);
    store_close(st);

    uint64_t after = seg_bytes(dir);
    print_message("%s: %" PRIu64 " -> %" PRIu64 " bytes (%.2fx), %" PRIu64 " blocks ->",
                  codec == STORE_CODEC_ZSTD ? "zstd" : "lz4hc", before, after,
                  (double)before / (double)after, blocks_before);
    assert_true(after < before);
    check_all(dir, NULL, NREC, &s);
    print_message(" %" PRIu64 "\n", s.blocks_read);
    assert_true(s.blocks_read < blocks_before / 4);

    /* The index of the new blocks works. */
    struct span word = SPAN_LIT("kdevtmpfsi");
    struct store_need need = { NULL, 0, &word, 1 };
    struct store_reader *r = NULL;
    struct check c = { 0, xcalloc(NREC, sizeof(bool)), 0 };
    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(dir, &r, &eb), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(store_scan_need(r, INT64_MIN, INT64_MAX, &need, on_rec, &c, &s), 0);
    store_reader_close(r);
    assert_int_equal(c.n, 1);
    assert_true(s.blocks_read == 1 && s.blocks_skipped_index > 0);
    free(c.seen);

    /* Verified: chains, signatures, records digests; the old segments are deletions. */
    int vrc = verify(dir, report, sizeof(report));
    if (vrc != 0) {
        fail_msg("verify: %s", report);
    }
    assert_non_null(strstr(report, "compacted"));
}

static void test_compact_zstd(void **state)
{
    struct tdir *t = *state;
    compact_and_check(t->dir, STORE_CODEC_ZSTD);
}

static void test_compact_lz4hc(void **state)
{
    struct tdir *t = *state;
    compact_and_check(t->dir, STORE_CODEC_LZ4HC);
}

/* The path of the first segment file (by name). */
static void first_segment(const char *dir, char *out, size_t cap)
{
    char segdir[600];
    struct dirent **names = NULL;

    snprintf(segdir, sizeof(segdir), "%s/segments", dir);
    int n = scandir(segdir, &names, NULL, alphasort);
    assert_true(n > 2);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.' && !out[0]) {
            snprintf(out, cap, "%s/%s", segdir, names[i]->d_name);
        }
        free(names[i]);
    }
    free(names);
}

static void test_changed_compacted_segment_fails(void **state)
{
    struct tdir *t = *state;
    char path[1200] = "";
    char report[16384];
    struct store_compact_result res;
    struct errbuf eb;

    fill(t->dir);
    struct store *st = open_store(t->dir, NULL);
    errbuf_clear(&eb);
    assert_int_equal(store_compact(st, NULL, &res, &eb), 0);
    store_close(st);
    first_segment(t->dir, path, sizeof(path));

    /* The records digest in the header changed, the header's CRC made right again: the
     * file is no longer what was signed. */
    uint8_t hb[SEG_HDR_LEN];
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, hb, sizeof(hb), 0), (ssize_t)sizeof(hb));
    assert_true(hb[12] & SEG_F_COMPACTED);
    hb[100] ^= 1;
    uint32_t crc = (uint32_t)crc32(0L, hb, 124);
    for (int i = 0; i < 4; i++) {
        hb[124 + i] = (uint8_t)(crc >> (8 * i));
    }
    assert_int_equal(pwrite(fd, hb, sizeof(hb), 0), (ssize_t)sizeof(hb));
    close(fd);
    assert_int_equal(verify(t->dir, report, sizeof(report)), VG_ECORRUPT);
    assert_non_null(strstr(report, "FAILED"));
}

/* fsops whose rename fails: the compaction stops after its catalog transaction. */
static int bad_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    (void)from;
    (void)to;
    return -EIO;
}

static void test_interrupted_compaction(void **state)
{
    struct tdir *t = *state;
    char report[16384];
    char tmp[1200];
    struct store_compact_result res;
    struct store_scan_stats s;
    struct errbuf eb;
    struct fsops fs = *fsops_default();

    fill(t->dir);
    /* A leftover temporary file of a compaction that never committed: removed. */
    snprintf(tmp, sizeof(tmp), "%s/segments/.20240501T130000Z-000099.vseg.compact", t->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT, 0640);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "junk", 4), 4);
    close(fd);

    fs.rename = bad_rename;
    struct store *st = open_store(t->dir, &fs);
    assert_int_equal(access(tmp, F_OK), -1);
    errbuf_clear(&eb);
    struct store_compact_opts o = { .max_segments = 1 };
    assert_int_equal(store_compact(st, &o, &res, &eb), -EIO);
    store_close(st);

    /* Committed, not renamed: the next start renames it into place. */
    st = open_store(t->dir, NULL);
    store_close(st);
    check_all(t->dir, NULL, NREC, &s);
    int vrc = verify(t->dir, report, sizeof(report));
    if (vrc != 0) {
        fail_msg("verify: %s", report);
    }
}

/* Counts the ".<name>.compact" files in segments/. */
static size_t tmp_files(const char *dir)
{
    char p[PATH_MAX + 16];
    size_t n = 0;
    assert_true(snprintf(p, sizeof(p), "%s/segments", dir) < (int)sizeof(p));
    DIR *d = opendir(p);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] == '.' && strstr(e->d_name, ".compact") != NULL;
    }
    closedir(d);
    return n;
}

static void *build_main(void *arg)
{
    store_compact_build(arg);
    return NULL;
}

/* The steps a collector runs: pick on the writer's thread, build on another while the
 * writer goes on appending and committing, install back on the writer's thread; a job
 * whose segment retention deleted meanwhile is dropped; a freed job leaves nothing. */
static void test_compact_steps(void **state)
{
    struct tdir *t = *state;
    struct store_compact_job *j = NULL;
    struct store_compact_result res = { 0 };
    struct store_scan_stats s;
    struct errbuf eb;
    struct buf rec, raw;
    pthread_t th;

    fill(t->dir);
    struct store *st = open_store(t->dir, NULL);
    struct store_compact_opts o = { .block_bytes = 256 << 10 };
    errbuf_clear(&eb);
    /* Nothing was sealed before the epoch. */
    assert_int_equal(store_compact_pick(st, &o, 1, &j, &res, &eb), 0);
    assert_null(j);
    assert_int_equal(store_compact_pick(st, &o, INT64_MAX, &j, &res, &eb), 1);
    assert_non_null(strstr(store_compact_job_segment(j), "20240501T130000Z"));
    assert_int_equal(pthread_create(&th, NULL, build_main, j), 0);
    buf_init(&rec, 1u << 16);
    buf_init(&raw, 1u << 16);
    for (int i = 0; i < 200; i++) { /* the writer goes on, in a later partition */
        make_rec(&rec, &raw, i);
        assert_int_equal(
            store_append(st, T0 + 3 * HOUR + i, (uint64_t)(NREC + 1 + i), buf_span(&rec)), 0);
        if (i % 20 == 19) {
            assert_int_equal(store_commit(st), 0);
        }
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(tmp_files(t->dir), 1);
    assert_int_equal(store_compact_install(st, j, &res, &eb), 1);
    assert_int_equal(res.segments, 1);
    assert_int_equal(tmp_files(t->dir), 0);

    /* The second partition: built, then deleted by retention before the install. */
    assert_int_equal(store_compact_pick(st, &o, INT64_MAX, &j, &res, &eb), 1);
    assert_int_equal(store_compact_build(j), 1);
    struct store_retention pol = { .max_age_ns = HOUR };
    struct store_retention_result rr;
    assert_true(store_retention_run(st, &pol, T0 + 3 * HOUR + HOUR / 2, &rr) >= 0);
    assert_true(rr.ndeleted >= 1);
    free(rr.deleted);
    assert_int_equal(store_compact_install(st, j, &res, &eb), 0);
    assert_int_equal(res.segments, 1);
    assert_int_equal(tmp_files(t->dir), 0);
    /* Nothing left to pick: one compacted, one deleted, one open. */
    assert_int_equal(store_compact_pick(st, &o, INT64_MAX, &j, &res, &eb), 0);
    store_close(st);

    /* A job freed unbuilt, or built and not installed, leaves no file behind. */
    char other[PATH_MAX];
    snprintf(other, sizeof(other), "%s/other", t->root);
    fill(other);
    st = open_store(other, NULL);
    assert_int_equal(store_compact_pick(st, &o, INT64_MAX, &j, &res, &eb), 1);
    store_compact_job_free(j);
    assert_int_equal(store_compact_pick(st, &o, INT64_MAX, &j, &res, &eb), 1);
    assert_int_equal(store_compact_build(j), 1);
    assert_int_equal(tmp_files(other), 1);
    store_compact_job_free(j);
    assert_int_equal(tmp_files(other), 0);
    store_close(st);
    buf_release(&rec);
    buf_release(&raw);
    (void)s;
}

/* segment.md 4.5: a plan made before compaction replaced one segment and retention
 * deleted the other still reads every record it listed, in one stripe or two. */
static void test_plan_pins_segments(void **state)
{
    struct tdir *t = *state;
    struct store_reader *r = NULL;
    struct store_reader *r2 = NULL;
    struct store_scan_plan *p = NULL;
    struct store_compact_result res;
    struct store_retention_result rr;
    struct errbuf eb;

    fill(t->dir);
    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(t->dir, &r, &eb), 0);
    assert_int_equal(store_reader_open(t->dir, &r2, &eb), 0);
    assert_int_equal(store_scan_plan_make(r, INT64_MIN, INT64_MAX, NULL, &p, NULL), 0);

    struct store *st = open_store(t->dir, NULL);
    struct store_compact_opts o = { .max_segments = 1 };
    assert_int_equal(store_compact(st, &o, &res, &eb), 0);
    assert_int_equal(res.segments, 1);
    struct store_retention pol = { .max_age_ns = HOUR };
    assert_int_equal(store_retention_run(st, &pol, T0 + 4 * HOUR, &rr), 2);
    free(rr.deleted);
    store_close(st);
    char segdir[PATH_MAX];
    snprintf(segdir, sizeof(segdir), "%s/segments", t->dir);
    assert_int_equal(tmp_files(t->dir), 0);

    for (unsigned nstripes = 1; nstripes <= 2; nstripes++) {
        struct check c = { 0, xcalloc(NREC, sizeof(bool)), 0 };
        for (unsigned s = 0; s < nstripes; s++) {
            int rc = store_scan_plan_run(s ? r2 : r, p, s, nstripes, on_rec, &c, NULL);
            if (rc != 0) {
                fail_msg("stripe %u of %u: %s", s, nstripes, store_reader_error(s ? r2 : r));
            }
        }
        assert_int_equal(c.bad, 0);
        assert_int_equal(c.n, NREC);
        free(c.seen);
    }
    store_scan_plan_free(p);
    /* A new plan sees the store as it is now: everything was deleted. */
    struct check c = { 0, xcalloc(NREC, sizeof(bool)), 0 };
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, on_rec, &c, NULL), 0);
    assert_int_equal(c.n, 0);
    free(c.seen);
    store_reader_close(r);
    store_reader_close(r2);
}

int main(void)
{
    log_set_level(LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compact_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_zstd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compact_lz4hc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_compacted_segment_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_pins_segments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
