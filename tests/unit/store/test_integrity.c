/* tests/unit/store/test_integrity.c: signed seals, the catalog's keys, seals, deletions
 * and holds, retention by age and size (with the clock passed in), legal holds, and
 * what store_verify makes of each (schemas/segment.md 8-11). Each test works in its own
 * temporary directory, through store.h and store_int.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/fsops.h"
#include "store/sign.h"
#include "store/store.h"
#include "store/store_core.h"
#include "tdir.h"

#define HOUR (3600 * VG_NS_PER_SEC)
#define DAY  (24 * HOUR)
#define T0   (1714568400LL * VG_NS_PER_SEC) /* 2024-05-01T13:00:00Z */

static const char ec_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgGHlu0nng2jsTfj8c\n"
    "0u5hiF2oYyphiIH5gQUD+DNGp/yhRANCAAQeLU7H53gznVLnxvmt5gkcVq0bHU5C\n"
    "SBc146Mh0c9RKe2fvnZf3WZUcn3qCh3ocvxwVgZ27VRTIHkzhvlwwHPR\n"
    "-----END PRIVATE KEY-----\n";

/* The clock commits record as their records' receipt (store_opts.now_ns): T0 unless a
 * test receives its records later. */
static int64_t g_now = T0;

static int64_t fake_now(void)
{
    return g_now;
}

static int setup(void **state)
{
    log_set_level(LOG_LVL_ERROR);
    g_now = T0;
    return tdir_setup(state, "integrity");
}

static int teardown(void **state)
{
    log_set_level(LOG_LVL_INFO);
    return tdir_teardown(state);
}

static struct store_opts opts(const struct tdir *t)
{
    struct store_opts o = {
        .now_ns = fake_now,
        .dir = t->dir,
        .partition_ns = HOUR,
        .block_bytes = 4096,
        .max_open_segments = 4,
        .fsync = true,
    };
    return o;
}

static struct store *open_store(const struct store_opts *o)
{
    struct store *st = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    int rc = store_open(o, &st, &eb);
    if (rc != 0) {
        fail_msg("store_open: %s (%s)", vg_strerror(rc), errbuf_msg(&eb));
    }
    return st;
}

static void append(struct store *st, int64_t ts, uint64_t seq)
{
    struct buf b;
    char msg[100];
    int n = snprintf(msg, sizeof(msg), "event %" PRIu64, seq);

    buf_init(&b, 1 << 12);
    assert_int_equal(mp_put_map(&b, 1), 0);
    assert_int_equal(mp_put_cstr(&b, "message"), 0);
    assert_int_equal(mp_put_str(&b, msg, (size_t)n), 0);
    assert_int_equal(store_append(st, ts, seq, buf_span(&b)), 0);
    buf_release(&b);
}

/* nparts partitions from T0, per records each; committed and (seal) sealed. */
static struct store *fill(const struct store_opts *o, int nparts, int per, bool seal)
{
    struct store *st = open_store(o);
    uint64_t seq = store_next_seq(st);

    for (int p = 0; p < nparts; p++) {
        for (int i = 0; i < per; i++) {
            append(st, T0 + p * HOUR + i * VG_NS_PER_SEC, seq++);
        }
    }
    assert_int_equal(store_commit(st), 0);
    if (seal) {
        assert_int_equal(store_seal_before(st, T0 + nparts * HOUR), 0);
    }
    return st;
}

/* store_verify into report (cap bytes); returns its code. */
static int verify_report(const char *dir, const char *key, char *report, size_t cap,
                         struct store_verify_summary *sum)
{
    struct store_verify_opts vo = { .trusted_key = key };
    struct errbuf eb;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    errbuf_clear(&eb);
    int rc = store_verify(dir, &vo, f, sum, &eb);
    fclose(f);
    snprintf(report, cap, "%s", text ? text : "");
    free(text);
    return rc;
}

static void expect_ok(const char *dir)
{
    char report[8192];
    int rc = verify_report(dir, NULL, report, sizeof(report), NULL);
    if (rc != 0) {
        fail_msg("verify: %s\n%s", vg_strerror(rc), report);
    }
}

static struct catalog *cat_open(const struct tdir *t)
{
    char path[PATH_MAX];
    struct catalog *c = NULL;
    struct errbuf eb;

    snprintf(path, sizeof(path), "%s/catalog.db", t->dir);
    errbuf_clear(&eb);
    assert_int_equal(catalog__open(path, false, &c, &eb), 0);
    return c;
}

static size_t count_files(const struct tdir *t)
{
    char path[PATH_MAX];
    size_t n = 0;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/segments", t->dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += strstr(e->d_name, ".vseg") != NULL;
    }
    closedir(d);
    return n;
}

static int count_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    (void)ts;
    (void)seq;
    (void)rec;
    (*(size_t *)arg)++;
    return 0;
}

static size_t count_records(const struct tdir *t)
{
    struct store_reader *r = NULL;
    struct errbuf eb;
    size_t n = 0;

    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(t->dir, &r, &eb), 0);
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, count_rec, &n, NULL), 0);
    store_reader_close(r);
    return n;
}

/* ---- signing ---- */

static void test_sign_keys(void **state)
{
    struct tdir *t = *state;
    struct sign_key *k = NULL;
    struct sign_key *pub = NULL;
    struct sign_key *again = NULL;
    uint8_t msg[SEAL_MSG_LEN];
    uint8_t sig[SIGN_SIG_LEN];
    char id[SIGN_KEY_ID_LEN + 1];
    char id2[SIGN_KEY_ID_LEN + 1];
    char path[PATH_MAX];
    struct buf pem;
    struct errbuf eb;

    memset(msg, 0x5a, sizeof(msg));
    assert_int_equal(sign_key_generate(&k), 0);
    assert_true(sign_key_has_private(k));
    assert_int_equal(sign_message(k, msg, sizeof(msg), sig), 0);
    assert_int_equal(sign_check(k, msg, sizeof(msg), sig), 0);
    msg[7] ^= 1; /* any change of the message */
    assert_int_equal(sign_check(k, msg, sizeof(msg), sig), VG_ECORRUPT);
    msg[7] ^= 1;
    sig[0] ^= 1; /* or of the signature */
    assert_int_equal(sign_check(k, msg, sizeof(msg), sig), VG_ECORRUPT);
    sig[0] ^= 1;

    /* The public PEM checks but cannot sign; ids agree. */
    buf_init(&pem, SIGN_PEM_MAX);
    assert_int_equal(sign_key_public_pem(k, &pem), 0);
    assert_non_null(strstr(buf_cstr(&pem), "BEGIN PUBLIC KEY"));
    errbuf_clear(&eb);
    assert_int_equal(sign_key_parse_public(buf_span(&pem), &pub, &eb), 0);
    assert_false(sign_key_has_private(pub));
    assert_int_equal(sign_check(pub, msg, sizeof(msg), sig), 0);
    assert_int_equal(sign_message(pub, msg, sizeof(msg), sig), -EINVAL);
    sign_key_id(k, id);
    sign_key_id(pub, id2);
    assert_int_equal(strlen(id), SIGN_KEY_ID_LEN);
    assert_string_equal(id, id2);

    /* The private PEM round-trips through a file. */
    buf_reset(&pem);
    assert_int_equal(sign_key_private_pem(k, &pem), 0);
    snprintf(path, sizeof(path), "%s/k.pem", t->root);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(pem.data, 1, pem.len, f), pem.len);
    fclose(f);
    assert_int_equal(sign_key_load_private(path, &again, &eb), 0);
    sign_key_id(again, id2);
    assert_string_equal(id, id2);
    assert_int_equal(sign_check(again, msg, sizeof(msg), sig), 0);
    sign_key_free(again);
    again = NULL;
    /* ... and a private key file is accepted where a public one is asked for. */
    assert_int_equal(sign_key_load_public(path, &again, &eb), 0);
    assert_false(sign_key_has_private(again));
    sign_key_free(again);
    again = NULL;

    /* Not Ed25519, not a key, no file. */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(ec_key_pem, f);
    fclose(f);
    errbuf_clear(&eb);
    assert_int_equal(sign_key_load_private(path, &again, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "not an Ed25519 key"));
    assert_int_equal(sign_key_parse_public(span_str(ec_key_pem), &again, &eb), VG_EFORMAT);
    assert_int_equal(
        sign_key_parse_public(span_str("-----BEGIN PUBLIC KEY-----\nAAAA\n"), &again, &eb),
        VG_EFORMAT);
    snprintf(path, sizeof(path), "%s/missing.pem", t->root);
    errbuf_clear(&eb);
    assert_int_equal(sign_key_load_private(path, &again, &eb), -ENOENT);
    assert_non_null(strstr(errbuf_msg(&eb), "missing.pem"));
    assert_null(again);

    /* Hex helper. */
    uint8_t b[2];
    assert_int_equal(sign_unhex("0aff", b, 2), 0);
    assert_int_equal(b[0], 0x0a);
    assert_int_equal(b[1], 0xff);
    assert_int_equal(sign_unhex("0AFF", b, 2), VG_EPARSE);
    assert_int_equal(sign_unhex("0af", b, 2), VG_EPARSE);

    buf_release(&pem);
    sign_key_free(pub);
    sign_key_free(k);
}

/* The seal record is exactly the fields segment.md 8.2 lists. */
static void test_seal_msg(void **state)
{
    struct seg_meta m;
    uint8_t a[SEAL_MSG_LEN];
    uint8_t b[SEAL_MSG_LEN];

    (void)state;
    memset(&m, 0, sizeof(m));
    m.id = 7;
    m.part_start = T0;
    m.part_end = T0 + HOUR;
    m.tot.count = 3;
    m.tot.blocks = 1;
    m.bytes = 400;
    m.tot.bytes_raw = 300;
    m.tot.ts_min = T0 + 1;
    m.tot.ts_max = T0 + 2;
    m.tot.seq_min = 1;
    m.tot.seq_max = 3;
    m.sealed = T0 + 2 * HOUR;
    memset(m.chain_head, 0xab, sizeof(m.chain_head));
    integrity__seal_msg(&m, a);
    assert_memory_equal(a, "vigil seal v1\0\0\0", 16);
    assert_int_equal(a[16], 7);                                    /* id, little-endian */
    assert_int_equal(a[16 + 8 * 3], 3);                            /* count */
    assert_int_equal(a[16 + 8 * 5] | a[16 + 8 * 5 + 1] << 8, 400); /* bytes */
    assert_int_equal(a[SEAL_MSG_LEN - 1], 0xab);                   /* chain head last */
    /* Every field counts. */
    struct seg_meta m2 = m;
    m2.tot.count = 4;
    integrity__seal_msg(&m2, b);
    assert_memory_not_equal(a, b, SEAL_MSG_LEN);
    m2 = m;
    m2.sealed++;
    integrity__seal_msg(&m2, b);
    assert_memory_not_equal(a, b, SEAL_MSG_LEN);
    m2 = m;
    m2.chain_head[0] ^= 1;
    integrity__seal_msg(&m2, b);
    assert_memory_not_equal(a, b, SEAL_MSG_LEN);
}

/* A store makes its key, signs what it seals, records the public key; verify checks it
 * with the catalog's key, with the store's public key file, and refuses another key. */
static void test_sealed_segments_signed(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_verify_summary sum;
    char report[8192];
    char path[PATH_MAX];
    struct stat sb;

    struct store *st = fill(&o, 3, 50, true);
    /* One more partition stays open. */
    append(st, T0 + 5 * HOUR, store_next_seq(st));
    assert_int_equal(store_commit(st), 0);
    store_close(st);

    snprintf(path, sizeof(path), "%s/keys/collector-ed25519.pem", t->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/keys/collector-ed25519.pub.pem", t->dir);
    assert_int_equal(stat(path, &sb), 0);

    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), 0);
    assert_int_equal(sum.segments, 4);
    assert_int_equal(sum.ok, 4);
    assert_int_equal(sum.signed_ok, 3);
    assert_int_equal(sum.records, 151);
    assert_non_null(strstr(report, "sealed, signature ok"));
    assert_non_null(strstr(report, "open, chain"));
    assert_non_null(strstr(report, "summary: 4 segments checked, 4 ok, 0 failed"));
    assert_non_null(strstr(report, "store OK"));

    /* The catalog records one key, and it is the file's. */
    struct catalog *c = cat_open(t);
    struct catalog_key *keys = NULL;
    size_t nkeys = 0;
    assert_int_equal(catalog__keys_list(c, &keys, &nkeys), 0);
    assert_int_equal(nkeys, 1);
    assert_string_equal(keys[0].key_id, sum.key_id);
    catalog__keys_free(keys, nkeys);
    struct catalog_seal *seals = NULL;
    size_t nseals = 0;
    assert_int_equal(catalog__seals_list(c, &seals, &nseals), 0);
    assert_int_equal(nseals, 3);
    for (size_t i = 0; i < nseals; i++) {
        assert_true(seals[i].is_signed);
        assert_string_equal(seals[i].reason, SEAL_REASON_ENDED);
    }
    free(seals);
    catalog__close(c);

    /* Trusting the store's own public key file: ok. */
    assert_int_equal(verify_report(t->dir, path, report, sizeof(report), &sum), 0);
    /* Trusting another key: every signature fails. */
    struct sign_key *other = NULL;
    struct buf pem;
    assert_int_equal(sign_key_generate(&other), 0);
    buf_init(&pem, SIGN_PEM_MAX);
    assert_int_equal(sign_key_public_pem(other, &pem), 0);
    snprintf(path, sizeof(path), "%s/other.pub.pem", t->root);
    FILE *f = fopen(path, "w");
    fwrite(pem.data, 1, pem.len, f);
    fclose(f);
    buf_release(&pem);
    sign_key_free(other);
    assert_int_equal(verify_report(t->dir, path, report, sizeof(report), &sum), VG_ECORRUPT);
    /* the three seals, and every entry of the seal sequence (START, 4 OPEN, 3 SEAL, and
     * the CHECKPOINT of the open segment that store_close wrote) */
    assert_int_equal(sum.failed, 3 + 9);
    assert_non_null(strstr(report, "signed by another key than the trusted one"));
    assert_non_null(strstr(report, "not the trusted one (--key)"));

    /* A restart reuses the key (no second key recorded). */
    st = open_store(&o);
    store_close(st);
    c = cat_open(t);
    assert_int_equal(catalog__keys_list(c, &keys, &nkeys), 0);
    assert_int_equal(nkeys, 1);
    catalog__keys_free(keys, nkeys);
    catalog__close(c);
}

/* A configured key is used as is; a missing or wrong one stops the store. */
static void test_configured_key(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct sign_key *k = NULL;
    struct store *st = NULL;
    struct errbuf eb;
    struct buf pem;
    char path[PATH_MAX];
    char id[SIGN_KEY_ID_LEN + 1];
    struct store_verify_summary sum;
    char report[4096];

    assert_int_equal(sign_key_generate(&k), 0);
    sign_key_id(k, id);
    buf_init(&pem, SIGN_PEM_MAX);
    assert_int_equal(sign_key_private_pem(k, &pem), 0);
    snprintf(path, sizeof(path), "%s/mine.pem", t->root);
    FILE *f = fopen(path, "w");
    fwrite(pem.data, 1, pem.len, f);
    fclose(f);
    buf_release(&pem);
    sign_key_free(k);

    o.signing_key = path;
    st = fill(&o, 1, 10, true);
    store_close(st);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), 0);
    assert_string_equal(sum.key_id, id);
    /* No key of its own was made. */
    char own[PATH_MAX];
    struct stat sb;
    snprintf(own, sizeof(own), "%s/keys/collector-ed25519.pem", t->dir);
    assert_int_equal(stat(own, &sb), -1);

    snprintf(path, sizeof(path), "%s/nope.pem", t->root);
    errbuf_clear(&eb);
    assert_int_equal(store_open(&o, &st, &eb), -ENOENT);
    assert_non_null(strstr(errbuf_msg(&eb), "store.signing_key"));
    f = fopen(path, "w");
    fputs(ec_key_pem, f);
    fclose(f);
    errbuf_clear(&eb);
    assert_int_equal(store_open(&o, &st, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "Ed25519"));
}

/* Catalog edits: a count, a chain head, a signature, a deleted key; each reported. */
static void test_catalog_edits_reported(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct seg_meta *rows = NULL;
    size_t n = 0;
    char report[8192];

    store_close(fill(&o, 2, 30, true));
    expect_ok(t->dir);
    struct catalog *c = cat_open(t);
    assert_int_equal(catalog__list(c, CATALOG_ALL, 0, 0, &rows, &n), 0);
    assert_int_equal(n, 2);
    struct seg_meta orig = rows[0];

    rows[0].tot.count++;
    assert_int_equal(catalog__put(c, &rows[0]), 0);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, orig.file));
    assert_non_null(strstr(report, "catalog counts"));

    rows[0] = orig;
    rows[0].chain_head[3] ^= 0x40;
    assert_int_equal(catalog__put(c, &rows[0]), 0);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, "does not match the catalog's"));

    /* A consistent forgery of the row (counts and file agree) still breaks the seal:
     * here the seal time. */
    rows[0] = orig;
    rows[0].sealed += 1;
    assert_int_equal(catalog__put(c, &rows[0]), 0);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, "signature does not match"));

    rows[0] = orig;
    assert_int_equal(catalog__put(c, &rows[0]), 0);
    expect_ok(t->dir);

    /* The signature itself. */
    struct catalog_seal *seals = NULL;
    size_t ns = 0;
    assert_int_equal(catalog__seals_list(c, &seals, &ns), 0);
    assert_int_equal(ns, 2);
    struct catalog_seal s = seals[1];
    s.sig[10] ^= 1;
    assert_int_equal(catalog__seal_put(c, &s), 0);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, rows[1].file));
    assert_non_null(strstr(report, "signature does not match"));
    /* No signature at all. */
    s.is_signed = false;
    assert_int_equal(catalog__seal_put(c, &s), 0);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, "sealed but not signed"));
    assert_int_equal(catalog__seal_put(c, &seals[1]), 0);
    expect_ok(t->dir);
    free(seals);
    free(rows);
    catalog__close(c);
}

/* Key creation fails (a full disk): the store still opens, seals unsigned, and a later
 * start with a working disk makes the key and signs them. */
static int g_fail_key_open;

static int fk_open(void *ctx, const char *path, int flags, int mode)
{
    if (g_fail_key_open && strstr(path, "collector-ed25519")) {
        return -ENOSPC;
    }
    return fsops_default()->open(ctx, path, flags, mode);
}

static void test_key_degrades_then_signs(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct fsops fs = *fsops_default();
    struct store_verify_summary sum;
    char report[8192];

    fs.open = fk_open;
    o.fs = &fs;
    g_fail_key_open = 1;
    store_close(fill(&o, 2, 20, true));
    g_fail_key_open = 0;
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), VG_ECORRUPT);
    /* the two seals, and the seal sequence written without a key (segment.md 8.4) */
    assert_int_equal(sum.failed, 3);
    assert_non_null(strstr(report, "sealed but not signed"));
    assert_non_null(strstr(report, "seals.seq: FAILED: entries 0..4 are not signed"));

    store_close(open_store(&o)); /* makes the key, signs the pending seals */
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), 0);
    assert_int_equal(sum.signed_ok, 2);
    /* a KEY entry signs, through the chain, the entries written without a key */
    assert_int_equal(sum.seq_entries, 6);
}

/* ---- retention ---- */

static void test_retention_by_age(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_retention pol = { .max_age_ns = 2 * HOUR };
    struct store_retention_result res;
    char report[8192];

    /* Partitions T0 .. T0+5h, all sealed but the last (written after the seal). */
    struct store *st = fill(&o, 5, 10, true);
    append(st, T0 + 5 * HOUR, store_next_seq(st));
    assert_int_equal(store_commit(st), 0);
    assert_int_equal(count_files(t), 6);

    /* now = T0+5h: partitions ending at or before T0+3h go (T0, +1h, +2h). */
    assert_int_equal(store_retention_run(st, &pol, T0 + 5 * HOUR, &res), 3);
    assert_int_equal(res.ndeleted, 3);
    for (size_t i = 0; i < res.ndeleted; i++) {
        assert_string_equal(res.deleted[i].reason, "max_age");
        assert_int_equal(res.deleted[i].count, 10);
        assert_int_equal(res.deleted[i].part_start, T0 + (int64_t)i * HOUR);
    }
    free(res.deleted);
    assert_int_equal(count_files(t), 3);
    assert_int_equal(count_records(t), 21);
    /* Again: nothing more is old enough. */
    assert_int_equal(store_retention_run(st, &pol, T0 + 5 * HOUR, &res), 0);
    free(res.deleted);
    /* Far later: the sealed ones go, never the open one. */
    assert_int_equal(store_retention_run(st, &pol, T0 + 100 * HOUR, &res), 2);
    assert_int_equal(res.busy, 1);
    free(res.deleted);
    assert_int_equal(count_files(t), 1);
    store_close(st);

    /* verify tells policy from tampering: each deletion is one ok line. */
    struct store_verify_summary sum;
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), 0);
    assert_int_equal(sum.deleted, 5);
    assert_int_equal(sum.segments, 1);
    assert_non_null(strstr(report, "deleted by policy (max_age at"));
    assert_non_null(strstr(report, "signature ok"));

    /* The deletions rows keep what was there. */
    struct catalog *c = cat_open(t);
    struct catalog_deletion *d = NULL;
    size_t n = 0;
    assert_int_equal(catalog__deletions_list(c, false, &d, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(d[0].m.tot.count, 10);
    assert_int_equal(d[0].m.part_start, T0);
    assert_true(d[0].is_signed);
    assert_true(d[0].file_removed > 0);
    assert_string_equal(d[0].reason, "max_age");
    assert_int_equal(d[0].deleted, T0 + 5 * HOUR);
    /* Tampering with a deletion record is caught by the kept signature. */
    d[0].m.tot.count = 9;
    assert_int_equal(catalog__deletion_add(c, &d[0]), 0);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), VG_ECORRUPT);
    assert_non_null(strstr(report, "deletion record: signature does not match"));
    free(d);
    catalog__close(c);
}

static void test_retention_by_size(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_retention_result res;
    struct seg_meta *rows = NULL;
    size_t n = 0;

    struct store *st = fill(&o, 6, 40, true);
    struct catalog *c = st->cat;
    assert_int_equal(catalog__list(c, CATALOG_ALL, 0, 0, &rows, &n), 0);
    assert_int_equal(n, 6);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += rows[i].bytes;
    }
    /* Room for a little more than the newest two: the four oldest go. */
    struct store_retention pol = { .max_size_bytes = rows[4].bytes + rows[5].bytes + 10 };
    assert_int_equal(store_retention_run(st, &pol, T0, &res), 4);
    assert_int_equal(res.bytes_total, rows[4].bytes + rows[5].bytes);
    assert_false(res.over_size);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(res.deleted[i].segment_id, rows[i].id);
        assert_string_equal(res.deleted[i].reason, "max_size");
    }
    free(res.deleted);
    free(rows);
    assert_int_equal(count_records(t), 80);
    /* Under the limit: nothing. */
    assert_int_equal(store_retention_run(st, &pol, T0, &res), 0);
    free(res.deleted);
    store_close(st);
    expect_ok(t->dir);
    (void)total;
}

/* A partition ages from the later of its end and when its newest records were received
 * (recv_max): old events imported late are kept for max_age after the import, and
 * max_size takes the earliest received first. */
static void test_retention_counts_from_receipt(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_retention pol = { .max_age_ns = 2 * HOUR };
    struct store_retention_result res;
    struct seg_meta *rows = NULL;
    size_t n = 0;

    /* Partitions T0 .. T0+3h received at T0+100h (an import), sealed. */
    g_now = T0 + 100 * HOUR;
    struct store *st = fill(&o, 4, 10, true);
    assert_int_equal(catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rows[i].recv_max, T0 + 100 * HOUR);
    }
    free(rows);
    /* An hour after the import: every partition ended long ago, none received long ago. */
    assert_int_equal(store_retention_run(st, &pol, T0 + 101 * HOUR, &res), 0);
    free(res.deleted);
    assert_int_equal(count_records(t), 40);
    /* A late event into the first partition, received at T0+150h, makes it young again. */
    g_now = T0 + 150 * HOUR;
    append(st, T0 + 30 * VG_NS_PER_SEC, store_next_seq(st));
    assert_int_equal(store_commit(st), 0);
    assert_int_equal(store_seal_before(st, T0 + 4 * HOUR), 0);
    /* Two hours after the import: the three others go, the first stays. */
    assert_int_equal(store_retention_run(st, &pol, T0 + 102 * HOUR, &res), 3);
    for (size_t i = 0; i < res.ndeleted; i++) {
        assert_int_equal(res.deleted[i].part_start, T0 + (int64_t)(i + 1) * HOUR);
        assert_string_equal(res.deleted[i].reason, "max_age");
    }
    free(res.deleted);
    assert_int_equal(count_records(t), 11);
    /* later, both of its segments go (the late event went to a second one: the first
     * was sealed) */
    assert_int_equal(store_retention_run(st, &pol, T0 + 152 * HOUR, &res), 2);
    free(res.deleted);
    store_close(st);

    /* max_size: the partition received first goes first, whatever its event time: events
     * of T0+20h received on time, then an import of T0+5h's received at T0+30h. */
    g_now = T0 + 21 * HOUR;
    st = open_store(&o);
    uint64_t seq = store_next_seq(st);
    for (int i = 0; i < 10; i++) {
        append(st, T0 + 20 * HOUR + i * VG_NS_PER_SEC, seq++);
    }
    assert_int_equal(store_commit(st), 0);
    g_now = T0 + 30 * HOUR;
    for (int i = 0; i < 10; i++) {
        append(st, T0 + 5 * HOUR + i * VG_NS_PER_SEC, seq++);
    }
    assert_int_equal(store_commit(st), 0);
    assert_int_equal(store_seal_before(st, T0 + 22 * HOUR), 0);
    assert_int_equal(catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &n), 0);
    assert_int_equal(n, 2);
    struct store_retention by_size = { .max_size_bytes = rows[0].bytes + 10 };
    assert_int_equal(store_retention_run(st, &by_size, T0 + 31 * HOUR, &res), 1);
    assert_int_equal(res.deleted[0].part_start, T0 + 20 * HOUR);
    assert_string_equal(res.deleted[0].reason, "max_size");
    free(res.deleted);
    free(rows);
    store_close(st);
    expect_ok(t->dir);
}

static void test_holds(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_retention pol = { .max_age_ns = HOUR };
    struct store_retention_result res;
    struct store_hold h = { 0 };
    struct store_hold *list = NULL;
    size_t n = 0;
    struct errbuf eb;
    int64_t id1 = 0;
    int64_t id2 = 0;

    struct store *st = fill(&o, 4, 5, true);
    /* Hold the second partition (T0+1h .. T0+2h) by a range inside it. */
    h.since = T0 + HOUR + 10 * 60 * VG_NS_PER_SEC;
    h.until = T0 + HOUR + 20 * 60 * VG_NS_PER_SEC;
    h.filter = "pod=web-1";
    h.reason = "case 42";
    h.created_by = "tester";
    h.created = T0;
    errbuf_clear(&eb);
    assert_int_equal(store_hold_add(t->dir, &h, &id1, &eb), 0);
    /* A second one, released before retention runs. */
    h.since = T0 + 3 * HOUR;
    h.until = T0 + 3 * HOUR + 1;
    h.filter = NULL;
    assert_int_equal(store_hold_add(t->dir, &h, &id2, &eb), 0);
    assert_true(id2 > id1);
    assert_int_equal(store_hold_release(t->dir, id2, "alice", "not needed", T0 + 1, &eb), 0);
    assert_int_equal(store_hold_release(t->dir, id2, "alice", "again", T0 + 2, &eb), -EALREADY);
    assert_int_equal(store_hold_release(t->dir, 999, "alice", "none", T0 + 2, &eb), -ENOENT);
    assert_int_equal(store_hold_release(t->dir, id1, "alice", "", T0 + 2, &eb), -EINVAL);
    h.until = h.since;
    assert_int_equal(store_hold_add(t->dir, &h, &id2, &eb), -EINVAL);

    assert_int_equal(store_hold_list(t->dir, &list, &n, &eb), 0);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].id, id1);
    assert_string_equal(list[0].filter, "pod=web-1");
    assert_string_equal(list[0].reason, "case 42");
    assert_string_equal(list[0].created_by, "tester");
    assert_int_equal(list[0].released, 0);
    assert_null(list[0].released_by);
    assert_null(list[1].filter);
    assert_int_equal(list[1].released, T0 + 1);
    assert_string_equal(list[1].released_by, "alice");
    assert_string_equal(list[1].release_reason, "not needed");
    store_holds_free(list, n);

    /* Everything is past max_age; the held partition stays. */
    assert_int_equal(store_retention_run(st, &pol, T0 + 100 * HOUR, &res), 3);
    assert_int_equal(res.held, 1);
    free(res.deleted);
    assert_int_equal(count_records(t), 5);
    /* Released: the next run deletes it. */
    assert_int_equal(store_hold_release(t->dir, id1, "bob", "case closed", T0 + 5, &eb), 0);
    assert_int_equal(store_retention_run(st, &pol, T0 + 100 * HOUR, &res), 1);
    assert_int_equal(res.held, 0);
    free(res.deleted);
    store_close(st);
    assert_int_equal(count_files(t), 0);
    expect_ok(t->dir);

    /* No store: a clear error, nothing created. */
    char nowhere[PATH_MAX];
    snprintf(nowhere, sizeof(nowhere), "%s/nothing", t->root);
    assert_int_equal(store_hold_add(nowhere, &h, &id2, &eb), -EINVAL); /* since == until */
    h.until = h.since + 1;
    errbuf_clear(&eb);
    assert_int_equal(store_hold_add(nowhere, &h, &id2, &eb), -ENOENT);
    assert_non_null(strstr(errbuf_msg(&eb), "no store"));
    errbuf_clear(&eb);
    assert_int_equal(store_hold_list(nowhere, &list, &n, &eb), -ENOENT);
    assert_non_null(strstr(errbuf_msg(&eb), "no store"));
}

/* segment.md 10: a hold keeps every partition its [since, until) overlaps, however it
 * lies: spanning several, overlapping two by a nanosecond, or inside one; a hold that
 * only touches a partition (ends at its start, starts at its end) keeps nothing of it. */
static void test_holds_span_and_touch(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_retention pol = { .max_age_ns = HOUR };
    struct errbuf eb;
    int64_t id;
    /* partitions T0 + k h, k = 0..9; which each set of holds keeps */
    static const struct {
        int64_t since, until; /* offsets from T0, in seconds */
    } spans[][2] = {
        { { 1800, 2 * 3600 + 600 }, { 0, 0 } },         /* spans 0, 1, 2 */
        { { 3 * 3600 - 1, 3 * 3600 + 1 }, { 0, 0 } },   /* 2 and 3, one second each */
        { { 5 * 3600, 6 * 3600 }, { 0, 0 } },           /* exactly 5 */
        { { 7 * 3600 + 10, 7 * 3600 + 20 }, { 0, 0 } }, /* inside 7 */
        /* the last minute of 7, ending where 8 starts; and after 9, from where it ends */
        { { 8 * 3600 - 60, 8 * 3600 }, { 10 * 3600, 11 * 3600 } },
    };
    static const char *const kept[] = { "0,1,2", "2,3", "5", "7", "7" };

    for (size_t c = 0; c < VG_ARRAY_LEN(spans); c++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/c%zu", t->root, c);
        o.dir = dir;
        struct store *st = fill(&o, 10, 2, true);
        for (int k = 0; k < 2 && spans[c][k].until; k++) {
            struct store_hold h = { 0 };
            h.since = T0 + spans[c][k].since * VG_NS_PER_SEC;
            h.until = T0 + spans[c][k].until * VG_NS_PER_SEC;
            h.reason = "case";
            h.created_by = "tester";
            errbuf_clear(&eb);
            assert_int_equal(store_hold_add(dir, &h, &id, &eb), 0);
        }
        struct store_retention_result res;
        assert_true(store_retention_run(st, &pol, T0 + 100 * HOUR, &res) >= 0);
        free(res.deleted);
        struct seg_meta *rows = NULL;
        size_t n = 0;
        char got[64] = "";
        assert_int_equal(catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &n), 0);
        for (size_t i = 0; i < n; i++) {
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%d", i ? "," : "",
                     (int)((rows[i].part_start - T0) / HOUR));
        }
        free(rows);
        store_close(st);
        if (strcmp(got, kept[c]) != 0) {
            fail_msg("holds %zu: kept partitions '%s', expected '%s'", c, got, kept[c]);
        }
    }
}

/* The unlink fails (or the process dies) after the catalog recorded the deletion: the
 * file is "removal pending" for verify, and the next start removes it. */
static int g_fail_unlink;

static int fu_unlink(void *ctx, const char *path)
{
    if (g_fail_unlink && strstr(path, ".vseg")) {
        return -EIO;
    }
    return fsops_default()->unlink(ctx, path);
}

static void test_deletion_finished_after_crash(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct fsops fs = *fsops_default();
    struct store_retention pol = { .max_age_ns = HOUR };
    struct store_retention_result res;
    struct store_verify_summary sum;
    char report[8192];

    fs.unlink = fu_unlink;
    o.fs = &fs;
    struct store *st = fill(&o, 2, 5, true);
    g_fail_unlink = 1;
    assert_int_equal(store_retention_run(st, &pol, T0 + 10 * HOUR, &res), 2);
    free(res.deleted);
    store__abandon(st); /* dies before anything else */
    assert_int_equal(count_files(t), 2);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), 0);
    assert_int_equal(sum.deleted, 2);
    assert_non_null(strstr(report, "file removal pending"));
    assert_int_equal(count_records(t), 0);

    g_fail_unlink = 0;
    st = open_store(&o); /* recovery removes them instead of adopting them */
    assert_int_equal(count_files(t), 0);
    store_close(st);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), 0);
    assert_null(strstr(report, "pending"));
    assert_int_equal(count_records(t), 0);
}

/* A segment file removed by hand is reported missing; retention's are not. */
static void test_missing_file_reported(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct seg_meta *rows = NULL;
    size_t n = 0;
    char report[8192];
    char path[PATH_MAX];

    store_close(fill(&o, 3, 5, true));
    struct catalog *c = cat_open(t);
    assert_int_equal(catalog__list(c, CATALOG_ALL, 0, 0, &rows, &n), 0);
    catalog__close(c);
    snprintf(path, sizeof(path), "%s/segments/%s", t->dir, rows[1].file);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, rows[1].file));
    assert_non_null(strstr(report, "file missing"));
    assert_non_null(strstr(report, "no deletion by policy"));
    free(rows);
}

/* store_open on a full disk (segment.md 5.4): SQLite cannot write (RLIMIT_FSIZE makes
 * every write past 1 KiB a short write: SQLITE_FULL), yet the writer starts; what
 * recovery found is written with the first commit once space returns. */
static void test_open_on_full_disk(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    char path[PATH_MAX];
    struct stat sb;

    /* Committed records, then more written but not committed: a crash. */
    struct store *st = fill(&o, 2, 30, false);
    uint64_t seq = store_next_seq(st);
    for (int i = 0; i < 200; i++) {
        append(st, T0 + HOUR + 100 * VG_NS_PER_SEC + i, seq++);
    }
    store__abandon(st);
    /* A reader keeps catalog.db-wal and -shm in place (the last connection to close
     * removes them), so SQLite need not grow -shm past the limit to open. */
    struct store_reader *r = NULL;
    struct errbuf reb;
    errbuf_clear(&reb);
    assert_int_equal(store_reader_open(t->dir, &r, &reb), 0);
    size_t before = 0;
    assert_int_equal(store_scan(r, INT64_MIN, INT64_MAX, count_rec, &before, NULL), 0);
    /* A reader sees what the catalog says is committed (4.2, 5.6.4), not the blocks
     * written past it. */
    assert_int_equal(before, 60);
    snprintf(path, sizeof(path), "%s/catalog.db-shm", t->dir);
    if (stat(path, &sb) != 0 || sb.st_size < 32768) {
        store_reader_close(r);
        skip();
    }

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = { 1024, 1024 };
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
            _exit(3);
        }
        struct store *child = NULL;
        struct errbuf eb;
        errbuf_clear(&eb);
        log_set_level(LOG_LVL_ERROR);
        int rc = store_open(&o, &child, &eb);
        if (rc != 0) {
            fprintf(stderr, "store_open on a full disk: %s (%s)\n", vg_strerror(rc),
                    errbuf_msg(&eb));
            _exit(1);
        }
        /* A commit fails (nothing can be written) and leaves the store usable. */
        struct buf b;
        buf_init(&b, 64);
        if (buf_append(&b, "\x80", 1) < 0 ||
            store_append(child, T0 + 10 * HOUR, store_next_seq(child), buf_span(&b)) < 0) {
            _exit(4);
        }
        buf_release(&b);
        rc = store_commit(child);
        store__abandon(child);
        _exit(rc < 0 ? 0 : 2); /* 2: the disk was not full after all */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    store_reader_close(r);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2) {
        skip();
    }
    assert_int_equal(WEXITSTATUS(status), 0);

    /* Space is back: a normal start recovers everything and the catalog agrees. */
    st = open_store(&o);
    store_close(st);
    /* Recovery kept the whole blocks written past the commit, not the open ones. */
    size_t after = count_records(t);
    assert_true(after > before && after < before + 200);
    expect_ok(t->dir);
}

/* ---- the seal sequence (segment.md 13) ---- */

static void seq_path(const struct tdir *t, char *out, size_t cap)
{
    snprintf(out, cap, "%s/seals.seq", t->dir);
}

static uint64_t file_size_of(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

/* An entry encodes, decodes and signs as segment.md 13.2 says; anything else in its
 * bytes is refused, and the chain catches entries moved or removed. */
static void test_sealseq_entries(void **state)
{
    struct sign_key *k = NULL;
    struct sign_key *other = NULL;
    struct sealseq_entry e;
    struct sealseq_entry d;
    struct errbuf why;
    uint8_t raw[SEALSEQ_ENTRY_LEN];

    (void)state;
    assert_int_equal(sign_key_generate(&k), 0);
    assert_int_equal(sign_key_generate(&other), 0);
    memset(&e, 0, sizeof(e));
    e.type = SEALSEQ_SEAL;
    e.reason = SEALSEQ_COMPACTED;
    e.index = 7;
    e.time = T0;
    e.segment_id = 42;
    e.part_start = T0;
    e.part_end = T0 + HOUR;
    e.count = 3;
    e.seq_min = 10;
    e.seq_max = 12;
    e.ts_min = -5; /* signed fields keep their sign */
    e.other_id = 41;
    memset(e.chain_head, 0xab, sizeof(e.chain_head));
    memset(e.extra, 0xcd, sizeof(e.extra));
    assert_int_equal(sealseq_sign(&e, k), 0);
    sealseq_encode(&e, raw);
    assert_memory_equal(raw, "VGSQ\x01\x05\x03\x00", 8);
    errbuf_clear(&why);
    assert_int_equal(sealseq_decode(raw, &d, &why), 0);
    assert_int_equal(d.segment_id, 42);
    assert_int_equal(d.ts_min, -5);
    assert_int_equal(d.other_id, 41);
    assert_memory_equal(d.extra, e.extra, sizeof(e.extra));
    assert_true(sealseq_is_signed(&d));
    assert_int_equal(sealseq_check(&d, k), 0);
    assert_int_equal(sealseq_check(&d, other), -ENOKEY);

    /* A field changed and the CRC made right: the signature says so. */
    uint8_t bad[SEALSEQ_ENTRY_LEN];
    memcpy(bad, raw, sizeof(bad));
    bad[96] ^= 1; /* count */
    uint32_t crc = seg__crc32(bad, 332);
    for (int i = 0; i < 4; i++) {
        bad[332 + i] = (uint8_t)(crc >> (8 * i));
    }
    assert_int_equal(sealseq_decode(bad, &d, &why), 0);
    assert_int_equal(sealseq_check(&d, k), VG_ECORRUPT);
    /* Bytes the layout does not allow: refused before anything is trusted. */
    const struct {
        size_t off;
        uint8_t val;
        const char *why;
    } refuse[] = {
        { 0, 'X', "magic" }, { 100, 0, "checksum" }, { 4, 2, "version" }, { 5, 9, "type" },
        { 6, 7, "reason" },  { 7, 2, "flags" },      { 328, 1, "type" }, /* reserved */
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(refuse); i++) {
        memcpy(bad, raw, sizeof(bad));
        bad[refuse[i].off] = refuse[i].val ? refuse[i].val : (uint8_t)(bad[refuse[i].off] ^ 1);
        if (refuse[i].off != 100 && refuse[i].off != 0) {
            crc = seg__crc32(bad, 332);
            for (int b = 0; b < 4; b++) {
                bad[332 + b] = (uint8_t)(crc >> (8 * b));
            }
        }
        errbuf_clear(&why);
        assert_int_equal(sealseq_decode(bad, &d, &why), VG_ECORRUPT);
        if (!strstr(errbuf_msg(&why), refuse[i].why) && !strstr(errbuf_msg(&why), "unknown")) {
            fail_msg("byte %zu: %s", refuse[i].off, errbuf_msg(&why));
        }
    }

    /* The chain: index and prev of each entry. */
    struct sealseq_iter it;
    struct sealseq_entry a = { .type = SEALSEQ_START };
    struct sealseq_entry b = { .type = SEALSEQ_OPEN, .index = 1, .segment_id = 1 };
    uint8_t ra[SEALSEQ_ENTRY_LEN];
    uint8_t rb[SEALSEQ_ENTRY_LEN];
    sealseq_encode(&a, ra);
    vg_sha256(ra, sizeof(ra), b.prev);
    sealseq_encode(&b, rb);
    sealseq_iter_init(&it);
    assert_int_equal(sealseq_iter_next(&it, ra, &d, &why), 0);
    assert_int_equal(sealseq_iter_next(&it, rb, &d, &why), 0);
    sealseq_iter_init(&it); /* b without a before it */
    errbuf_clear(&why);
    assert_int_equal(sealseq_iter_next(&it, rb, &d, &why), VG_ECORRUPT);
    assert_non_null(strstr(errbuf_msg(&why), "says it is entry 1"));
    sealseq_iter_init(&it);
    assert_int_equal(sealseq_iter_next(&it, ra, &d, &why), 0);
    assert_int_equal(sealseq_iter_next(&it, ra, &d, &why), VG_ECORRUPT); /* a twice */
    sign_key_free(k);
    sign_key_free(other);
}

/* A torn last entry is cut at the next start; a damaged one inside is kept and named. */
static void test_sealseq_torn_and_damaged(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    char path[PATH_MAX];
    char report[8192];
    uint8_t junk[SEALSEQ_ENTRY_LEN + 100];

    store_close(fill(&o, 2, 10, true));
    seq_path(t, path, sizeof(path));
    uint64_t size = file_size_of(path);
    assert_int_equal(size % SEALSEQ_ENTRY_LEN, 0);
    memset(junk, 0x5a, sizeof(junk));
    for (size_t cut = 100; cut <= sizeof(junk); cut += SEALSEQ_ENTRY_LEN) {
        FILE *f = fopen(path, "ab");
        assert_int_equal(fwrite(junk, 1, cut, f), cut);
        fclose(f);
        store_close(open_store(&o));
        assert_int_equal(file_size_of(path), size); /* cut back */
        expect_ok(t->dir);
    }
    /* A byte of entry 1 changed: the start logs it, appends after it; verify names it. */
    int fd = open(path, O_RDWR);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, SEALSEQ_ENTRY_LEN + 60), 1);
    b ^= 0x20;
    assert_int_equal(pwrite(fd, &b, 1, SEALSEQ_ENTRY_LEN + 60), 1);
    close(fd);
    struct store *st = fill(&o, 1, 5, false); /* appends an OPEN after it */
    store_close(st);
    assert_true(file_size_of(path) > size);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, "seals.seq: FAILED: entry 1: entry checksum mismatch"));
    assert_non_null(strstr(report, "seals.seq: FAILED: entry 2: prev hash mismatch"));
}

/* segment.md 13.4: the sequence ahead of the catalog (a crash between an entry and its
 * transaction): the next start makes the catalog follow; a DELETE entry this
 * collector's key did not sign removes nothing. */
static void test_sealseq_completes_catalog(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct seg_meta *rows = NULL;
    size_t n = 0;
    char report[8192];
    struct sealseq_entry e;

    struct store *st = fill(&o, 3, 10, false);
    assert_int_equal(catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &n), 0);
    assert_int_equal(n, 3);
    /* The SEAL of row 0 written, then the process died. */
    rows[0].sealed = T0 + 2 * HOUR;
    sealseq__from_meta(&e, SEALSEQ_SEAL, SEALSEQ_ENDED, &rows[0]);
    assert_int_equal(sealseq__append(st->seq, &e, 1, st->key), 0);
    store__abandon(st);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, "the catalog lists it as open"));
    st = open_store(&o);
    struct seg_meta m;
    assert_int_equal(catalog__get(st->cat, rows[0].id, &m), 1);
    assert_int_equal(m.state, SEG_SEALED);
    assert_int_equal(m.sealed, T0 + 2 * HOUR);
    assert_int_equal(store_seal_before(st, T0 + 3 * HOUR), 0);
    store_close(st);
    expect_ok(t->dir);

    /* The DELETE of row 1 written, then the process died. */
    st = open_store(&o);
    assert_int_equal(catalog__get(st->cat, rows[1].id, &m), 1);
    sealseq__from_meta(&e, SEALSEQ_DELETE, SEALSEQ_MAX_AGE, &m);
    e.time = T0 + 5 * HOUR;
    assert_int_equal(sealseq__append(st->seq, &e, 1, st->key), 0);
    /* and a DELETE of row 2 that another key signed (anyone could have appended it) */
    struct sign_key *other = NULL;
    assert_int_equal(sign_key_generate(&other), 0);
    assert_int_equal(catalog__get(st->cat, rows[2].id, &m), 1);
    sealseq__from_meta(&e, SEALSEQ_DELETE, SEALSEQ_MAX_AGE, &m);
    assert_int_equal(sealseq__append(st->seq, &e, 1, other), 0);
    sign_key_free(other);
    store__abandon(st);
    assert_int_equal(count_files(t), 3);
    st = open_store(&o);
    store_close(st);
    assert_int_equal(count_files(t), 2); /* row 1's file went, row 2's stayed */
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, "deleted by policy (max_age"));
    assert_non_null(strstr(report, "which no START or KEY entry before it introduces"));
    assert_non_null(strstr(report, rows[2].file));
    if (!strstr(report, "max_age) but the catalog still lists it")) {
        fail_msg("%s", report);
    }
    free(rows);
}

/* segment.md 13.5: a store without a sequence gets one, adopting what it holds. */
static void test_sealseq_migration(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct store_verify_summary sum;
    struct store_retention pol = { .max_age_ns = HOUR };
    struct store_retention_result res;
    char path[PATH_MAX];
    char report[8192];

    struct store *st = fill(&o, 3, 10, true);
    assert_int_equal(store_retention_run(st, &pol, T0 + 2 * HOUR + HOUR / 2, &res), 1);
    free(res.deleted);
    append(st, T0 + 5 * HOUR, store_next_seq(st)); /* and an open one */
    assert_int_equal(store_commit(st), 0);
    store_close(st);
    seq_path(t, path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, "seals.seq: FAILED: no seal sequence"));

    store_close(open_store(&o));
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), &sum), 0);
    /* START, a DELETE, two SEALs and an OPEN */
    assert_int_equal(sum.seq_entries, 5);
    assert_non_null(strstr(report, "note: the seal sequence began at"));
    assert_non_null(strstr(report, "held 3 segments"));
}

/* segment.md 13.3: CHECKPOINT entries pin what open segments committed. */
static void test_checkpoint(void **state)
{
    struct tdir *t = *state;
    struct store_opts o = opts(t);
    struct seg_meta first;
    struct seg_meta *rows = NULL;
    size_t n = 0;
    char report[8192];
    char path[PATH_MAX];

    struct store *st = fill(&o, 1, 20, false);
    assert_int_equal(store_checkpoint(st), 1);
    assert_int_equal(store_checkpoint(st), 0); /* nothing changed */
    assert_int_equal(catalog__list(st->cat, CATALOG_OPEN, 0, 0, &rows, &n), 0);
    assert_int_equal(n, 1);
    first = rows[0];
    free(rows);
    uint64_t seq = store_next_seq(st);
    for (int i = 0; i < 40; i++) {
        append(st, T0 + 100 * VG_NS_PER_SEC + i, seq++);
    }
    assert_int_equal(store_commit(st), 0);
    assert_int_equal(store_checkpoint(st), 1);
    /* Committed after the last checkpoint: store_close vouches for it, so a store opened
     * again has nothing left to checkpoint. */
    for (int i = 0; i < 5; i++) {
        append(st, T0 + 200 * VG_NS_PER_SEC + i, seq++);
    }
    assert_int_equal(store_commit(st), 0);
    store_close(st);
    expect_ok(t->dir);
    st = open_store(&o);
    assert_int_equal(store_checkpoint(st), 0);
    assert_true(verify__writer_live(t->dir)); /* verify waits for this writer's catalog */
    store_close(st);
    assert_false(verify__writer_live(t->dir));

    /* Cut back to the first commit, the row made to agree: below the checkpoint. */
    snprintf(path, sizeof(path), "%s/segments/%s", t->dir, first.file);
    assert_int_equal(truncate(path, (off_t)first.bytes), 0);
    struct catalog *c = cat_open(t);
    assert_int_equal(catalog__put(c, &first), 0);
    catalog__close(c);
    assert_int_equal(verify_report(t->dir, NULL, report, sizeof(report), NULL), VG_ECORRUPT);
    assert_non_null(strstr(report, first.file));
    assert_non_null(strstr(report, "is below its checkpoint in the seal sequence"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sign_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_msg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_segments_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configured_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog_edits_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_degrades_then_signs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_by_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_counts_from_receipt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holds_span_and_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletion_finished_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_on_full_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealseq_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealseq_torn_and_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealseq_completes_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealseq_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
