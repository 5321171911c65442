/* tests/unit/query/test_block_skip.c: the block index and the record prefilter never
 * change what a search finds. Random records (schema-v1 records from small vocabularies,
 * with nested raw events, odd values, foreign keys, plain raws) go into a store with
 * small blocks; random filters (every operator, raw paths, full text, CIDR, prefix, NOT,
 * OR, parentheses) are run twice: over every record, and with what filter_needs says
 * every match has, so blocks and records are skipped. Both must find exactly the same
 * records, and skipping must actually happen. */
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/filter.h"
#include "schemas/record.h"
#include "store/store.h"

#define HOUR (3600 * VG_NS_PER_SEC)
#define T0   (1714568400LL * VG_NS_PER_SEC)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic, so a failure reproduces (the seed is printed). */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t pick(size_t n)
{
    return (size_t)(rnd() % n);
}

static const char *const hosts[] = { "node-1", "node-2", "bastion-00.prod", "Node-1", "gke-a1b2" };
static const char *const pods[] = { "web-1", "web-12", "api-7f9c", "kube-exporter-c5", "db-0" };
static const char *const users[] = { "alice",      "Alice", "bob", "root", "system:anonymous",
                                     "ethan.scott" };
static const char *const ips[] = { "10.0.0.1",  "10.0.0.2",  "::ffff:10.0.0.3", "fd00::1",
                                   "192.0.2.7", "not-an-ip", "10.0.0.01" };
static const char *const words[] = { "kdevtmpfsi",
                                     "bash -i",
                                     "/tmp/.x --daemon",
                                     "curl",
                                     "Failed password",
                                     "xmrig",
                                     "401",
                                     "deadbeef",
                                     "ÄÖü straße",
                                     "stratum+tcp://pool:3333",
                                     "true",
                                     "inf",
                                     "café",
                                     "-12",
                                     "1.5e+300",
                                     "nan" };
static const char *const rules[] = { "Terminal shell in container", "Write below etc",
                                     "Netcat Remote Code Execution" };
static const char *const cves[] = { "CVE-2024-3094", "CVE-2023-4911" };
static const char *const images[] = { "nginx:1.25", "registry.example.com/a/b:1.2.3", "redis" };
static const char *const sources[] = { "falco", "k8s-audit", "sshd", "trivy", "Falco" };

#define RANDOM_OF(a) ((a)[pick(VG_ARRAY_LEN(a))])

/* A random msgpack value for raw, nested up to depth. */
static void rand_value(struct buf *b, int depth)
{
    size_t k = pick(depth > 0 ? 10 : 7);
    char tmp[64];

    switch (k) {
    case 0:
    case 1:
    case 2:
        assert_int_equal(mp_put_cstr(b, RANDOM_OF(words)), 0);
        break;
    case 3:
        assert_int_equal(mp_put_i64(b, (int64_t)pick(1000) - 500), 0);
        break;
    case 4: {
        const double f[] = { 1.5, -0.25, 1e300 * 10, 0.0 / 0.0, 401.0 };
        assert_int_equal(mp_put_f64(b, RANDOM_OF(f)), 0);
        break;
    }
    case 5:
        assert_int_equal(pick(2) ? mp_put_bool(b, pick(2)) : mp_put_nil(b), 0);
        break;
    case 6:
        snprintf(tmp, sizeof(tmp), "%s %s", RANDOM_OF(users), RANDOM_OF(ips));
        assert_int_equal(mp_put_cstr(b, tmp), 0);
        break;
    case 7:
    case 8: {
        size_t n = pick(4);
        assert_int_equal(mp_put_map(b, (uint32_t)n), 0);
        for (size_t i = 0; i < n; i++) {
            const char *keys[] = { "user", "cmd", "ip", "a.b", "x", "code" };
            assert_int_equal(mp_put_cstr(b, RANDOM_OF(keys)), 0);
            rand_value(b, depth - 1);
        }
        break;
    }
    default: {
        size_t n = pick(3);
        assert_int_equal(mp_put_array(b, (uint32_t)n), 0);
        for (size_t i = 0; i < n; i++) {
            rand_value(b, depth - 1);
        }
        break;
    }
    }
}

static void rand_raw(struct buf *b)
{
    size_t n = 1 + pick(5);
    const char *keys[] = { "hostname", "output", "user", "cmd", "ip", "a.b", "a", "code" };

    b->len = 0;
    assert_int_equal(mp_put_map(b, (uint32_t)n), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(mp_put_cstr(b, RANDOM_OF(keys)), 0);
        rand_value(b, 2);
    }
}

/* One random record into out (rec_encode, or an odd shape now and then). */
static void rand_record(struct buf *out, struct buf *raw, int64_t ts, uint64_t seq)
{
    struct rec r;
    char msg[160];

    rec_init(&r);
    r.ts = ts;
    r.has_ts = true;
    r.seq = seq;
    r.has_seq = true;
    r.received = ts + (int64_t)pick(5);
    r.has_received = pick(4) != 0;
    rec_set(&r, VG_F_SOURCE, span_str(RANDOM_OF(sources)));
    if (pick(2)) {
        rec_set(&r, VG_F_HOST, span_str(RANDOM_OF(hosts)));
    }
    if (pick(2)) {
        rec_set(&r, VG_F_POD, span_str(RANDOM_OF(pods)));
    }
    if (pick(2)) {
        rec_set(&r, VG_F_USER, span_str(RANDOM_OF(users)));
    }
    if (pick(2)) {
        rec_set(&r, VG_F_SRC_IP, span_str(RANDOM_OF(ips)));
    }
    if (pick(3) == 0) {
        rec_set(&r, VG_F_RULE, span_str(RANDOM_OF(rules)));
    }
    if (pick(4) == 0) {
        rec_set(&r, VG_F_CVE, span_str(RANDOM_OF(cves)));
    }
    if (pick(3) == 0) {
        rec_set(&r, VG_F_IMAGE, span_str(RANDOM_OF(images)));
    }
    if (pick(2)) {
        rec_set(&r, VG_F_CMDLINE, span_str(RANDOM_OF(words)));
    }
    if (pick(3) == 0) {
        snprintf(msg, sizeof(msg), "%s did %s", RANDOM_OF(users), RANDOM_OF(words));
        rec_set(&r, VG_F_MESSAGE, span_str(msg));
    }
    if (pick(4) == 0) {
        r.dst_port = (int64_t)pick(70000);
        r.has_dst_port = true;
    }
    if (pick(8)) {
        rand_raw(raw);
        r.raw = buf_span(raw);
    }
    out->len = 0;
    size_t odd = pick(40);
    if (odd == 0) {
        /* A foreign key with text the index cannot see (the filter ignores it too). */
        assert_int_equal(mp_put_map(out, 2), 0);
        assert_int_equal(mp_put_cstr(out, "tenant"), 0);
        assert_int_equal(mp_put_cstr(out, RANDOM_OF(words)), 0);
        assert_int_equal(mp_put_cstr(out, "user"), 0);
        assert_int_equal(mp_put_cstr(out, RANDOM_OF(users)), 0);
    } else if (odd == 1 && r.raw.n > 0) {
        /* raw as a plain value (an older writer). */
        assert_int_equal(mp_put_map(out, 2), 0);
        assert_int_equal(mp_put_cstr(out, "host"), 0);
        assert_int_equal(mp_put_cstr(out, RANDOM_OF(hosts)), 0);
        assert_int_equal(mp_put_cstr(out, "raw"), 0);
        assert_int_equal(mp_put_raw(out, r.raw), 0);
    } else {
        assert_int_equal(rec_encode(&r, out), 0);
    }
}

/* A random leaf term as filter text, appended to out. */
static void rand_term(struct buf *out)
{
    const char *text_fields[] = { "host", "pod", "user",  "cmdline", "message",
                                  "rule", "cve", "image", "source" };
    const char *raw_paths[] = { "raw.user", "raw.cmd",    "raw.ip",      "raw.a.b",
                                "raw.code", "raw.output", "raw.hostname" };
    char v[96];
    const char *w;

    switch (pick(11)) {
    case 0:
    case 1: { /* field=value (sometimes absent from every record) */
        const char *f = RANDOM_OF(text_fields);
        const char *val = pick(5) == 0               ? "nobody-has-this"
                          : strcmp(f, "host") == 0   ? RANDOM_OF(hosts)
                          : strcmp(f, "pod") == 0    ? RANDOM_OF(pods)
                          : strcmp(f, "user") == 0   ? RANDOM_OF(users)
                          : strcmp(f, "rule") == 0   ? RANDOM_OF(rules)
                          : strcmp(f, "cve") == 0    ? RANDOM_OF(cves)
                          : strcmp(f, "image") == 0  ? RANDOM_OF(images)
                          : strcmp(f, "source") == 0 ? RANDOM_OF(sources)
                                                     : RANDOM_OF(words);
        int rc = buf_appendf(out, "%s%s\"%s\"", f, pick(6) == 0 ? "!=" : "=", val);
        assert_int_equal(rc, 0);
        break;
    }
    case 2: /* field~substring, random case */
    case 3: {
        w = RANDOM_OF(words);
        size_t len = strlen(w);
        size_t a = pick(len);
        size_t n = 1 + pick(len - a);
        snprintf(v, sizeof(v), "%.*s", (int)n, w + a);
        for (char *c = v; *c; c++) {
            if (pick(3) == 0 && *c >= 'a' && *c <= 'z') {
                *c = (char)(*c - 32);
            }
        }
        assert_int_equal(
            buf_appendf(out, "%s%s\"%s\"", RANDOM_OF(text_fields), pick(6) == 0 ? "!~" : "~", v),
            0);
        break;
    }
    case 4: /* prefix */
        w = RANDOM_OF(users);
        assert_int_equal(buf_appendf(out, "user=\"%.*s\"*", (int)(1 + pick(strlen(w))), w), 0);
        break;
    case 5: /* IP: address or CIDR */ {
        const char *a[] = { "10.0.0.1", "10.0.0.0/24",  "::ffff:10.0.0.3", "fd00::/8",
                            "10.0.0.3", "192.0.2.7/32", "fd00::1",         "0.0.0.0/0" };
        assert_int_equal(buf_appendf(out, "src_ip%s%s", pick(6) == 0 ? "!=" : "=", RANDOM_OF(a)),
                         0);
        break;
    }
    case 6: /* raw paths */ {
        const char *rv[] = { "401", "true", "curl", "kdevtmpfsi", "null",
                             "1.5", "inf",  "nan",  "bash -i",    "Alice" };
        assert_int_equal(buf_appendf(out, "%s%s\"%s\"", RANDOM_OF(raw_paths), pick(2) ? "=" : "~",
                                     RANDOM_OF(rv)),
                         0);
        break;
    }
    case 7: /* dst_port, severity, ts */
        assert_int_equal(buf_appendf(out, "dst_port>=%zu", pick(70000)), 0);
        break;
    default: /* bare words and phrases, random case and parts */ {
        w = RANDOM_OF(words);
        size_t len = strlen(w);
        size_t a = pick(len);
        size_t n = 1 + pick(len - a);
        snprintf(v, sizeof(v), "%.*s", (int)n, w + a);
        if (pick(2)) {
            for (char *c = v; *c; c++) {
                if (*c >= 'a' && *c <= 'z') {
                    *c = (char)(*c - 32);
                }
            }
        }
        assert_int_equal(buf_appendf(out, "\"%s\"", v), 0);
        break;
    }
    }
}

static void rand_filter(struct buf *out, int depth)
{
    size_t k = depth > 0 ? pick(6) : 0;

    switch (k) {
    case 0:
    case 1:
        rand_term(out);
        break;
    case 2:
        assert_int_equal(buf_append_str(out, "NOT "), 0);
        rand_filter(out, depth - 1);
        break;
    default: {
        size_t n = 2 + pick(2);
        assert_int_equal(buf_append_str(out, "("), 0);
        for (size_t i = 0; i < n; i++) {
            if (i > 0) {
                assert_int_equal(buf_append_str(out, k == 3 ? " OR " : " "), 0);
            }
            rand_filter(out, depth - 1);
        }
        assert_int_equal(buf_append_str(out, ")"), 0);
        break;
    }
    }
}

struct matches {
    const struct filter *f;
    uint64_t *seqs;
    size_t n;
    size_t cap;
    size_t seen;
};

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct matches *m = arg;
    struct span cur = bytes;
    struct rec r;

    (void)ts;
    m->seen++;
    if (rec_decode(&cur, &r) < 0 || !filter_match(m->f, &r)) {
        return 0;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->seqs = xrealloc(m->seqs, m->cap * sizeof(*m->seqs));
    }
    m->seqs[m->n++] = seq;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void test_skipping_never_changes_results(void **state)
{
    char root[256];
    char dir[300];
    const char *tmp = getenv("TMPDIR");
    const char *seed_env = getenv("VG_SKIP_SEED");
    struct store_opts o = { .partition_ns = HOUR, .block_bytes = 4096, .fsync = false };
    struct store *st = NULL;
    struct errbuf eb;
    struct buf rec;
    struct buf raw;
    const int nrec = 2000;
    const int nfilters = 500;

    (void)state;
    if (seed_env) {
        rng_state = strtoull(seed_env, NULL, 0) | 1;
    }
    print_message("seed 0x%" PRIx64 " (VG_SKIP_SEED)\n", rng_state);
    snprintf(root, sizeof(root), "%s/vg-skip-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(root));
    snprintf(dir, sizeof(dir), "%s/store", root);
    o.dir = dir;
    errbuf_clear(&eb);
    assert_int_equal(store_open(&o, &st, &eb), 0);
    buf_init(&rec, 1u << 20);
    buf_init(&raw, 1u << 20);
    for (int i = 0; i < nrec; i++) {
        int64_t ts = T0 + (int64_t)i * (2 * HOUR / nrec);
        rand_record(&rec, &raw, ts, (uint64_t)i + 1);
        assert_int_equal(store_append(st, ts, (uint64_t)i + 1, buf_span(&rec)), 0);
        if (i % 97 == 0) {
            assert_int_equal(store_commit(st), 0); /* small blocks too */
        }
    }
    store_close(st);

    struct store_reader *rd = NULL;
    errbuf_clear(&eb);
    assert_int_equal(store_reader_open(dir, &rd, &eb), 0);
    struct buf text;
    buf_init(&text, 1u << 16);
    uint64_t blocks_skipped = 0;
    uint64_t records_skipped = 0;
    uint64_t blocks_total = 0;
    size_t nonempty = 0;
    size_t with_needs = 0;
    for (int k = 0; k < nfilters; k++) {
        struct filter *f = NULL;
        buf_reset(&text);
        rand_filter(&text, 3);
        errbuf_clear(&eb);
        if (filter_parse(buf_cstr(&text), T0, &f, NULL, &eb) < 0) {
            continue; /* e.g. a prefix on an IP field: not what this test is about */
        }
        struct filter_needs fn;
        struct store_need_value vals[FILTER_MAX_TERMS];
        filter_needs(f, &fn);
        for (size_t i = 0; i < fn.nvalues; i++) {
            vals[i].field = vg_field_name(fn.values[i].field);
            vals[i].value = fn.values[i].value;
        }
        struct store_need need = { vals, fn.nvalues, fn.texts, fn.ntexts };
        with_needs += fn.nvalues + fn.ntexts > 0;

        struct matches all = { f, NULL, 0, 0, 0 };
        struct matches some = { f, NULL, 0, 0, 0 };
        struct store_scan_stats s_all = { 0 };
        struct store_scan_stats s_some = { 0 };
        assert_int_equal(store_scan(rd, INT64_MIN, INT64_MAX, on_rec, &all, &s_all), 0);
        int src = store_scan_need(rd, INT64_MIN, INT64_MAX, &need, on_rec, &some, &s_some);
        if (src != 0) {
            print_error("filter %s: %s\n", buf_cstr(&text), store_reader_error(rd));
        }
        assert_int_equal(src, 0);
        assert_int_equal(all.seen, (size_t)nrec);
        if (all.n != some.n) {
            print_error("filter %s: %zu matches over every record, %zu with skipping\n",
                        buf_cstr(&text), all.n, some.n);
        }
        assert_int_equal(all.n, some.n);
        if (all.n > 1) {
            qsort(all.seqs, all.n, sizeof(uint64_t), cmp_u64);
            qsort(some.seqs, some.n, sizeof(uint64_t), cmp_u64);
        }
        for (size_t i = 0; i < all.n; i++) {
            assert_true(all.seqs[i] == some.seqs[i]);
        }
        nonempty += all.n > 0;
        blocks_total += s_all.blocks_read;
        blocks_skipped += s_some.blocks_skipped_index;
        records_skipped += s_some.records_skipped;
        free(all.seqs);
        free(some.seqs);
        filter_free(f);
    }
    print_message("%zu filters with needs, %zu with matches; blocks skipped by index %" PRIu64
                  " of %" PRIu64 ", records passed over %" PRIu64 "\n",
                  with_needs, nonempty, blocks_skipped, blocks_total, records_skipped);
    /* The test means something only if both happened a fair amount. */
    assert_true(with_needs > (size_t)nfilters / 5);
    assert_true(nonempty > (size_t)nfilters / 10);
    assert_true(blocks_skipped > blocks_total / 50);
    assert_true(records_skipped > 0);
    store_reader_close(rd);
    buf_release(&text);
    buf_release(&rec);
    buf_release(&raw);
    if (!getenv("VG_KEEP_TESTDIR")) {
        nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

int main(void)
{
    log_set_level(LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skipping_never_changes_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
