/* tests/unit/query/test_stats.c: what `vigil stats` parses (query/stats.h): group keys
 * (fields, raw paths, time buckets of any duration), aggregates (count, dc, min, max, in
 * both spellings), lists split outside parentheses, and buckets aligned on the epoch
 * (before it too). Bad specs are refused with what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/time.h"
#include "query/stats.h"

static void test_keys(void **state)
{
    struct stats_key k;
    struct errbuf eb;
    (void)state;

    errbuf_clear(&eb);
    assert_int_equal(stats_key_parse(SPAN_LIT("pod"), &k, &eb), 0);
    assert_int_equal(k.f.field, VG_F_POD);
    assert_int_equal(k.bucket_ns, 0);
    assert_string_equal(k.name, "pod");
    assert_int_equal(stats_key_parse(SPAN_LIT("ts:1h"), &k, &eb), 0);
    assert_int_equal(k.f.field, VG_F_TS);
    assert_int_equal(k.bucket_ns, 3600 * VG_NS_PER_SEC);
    assert_string_equal(k.name, "ts");
    assert_int_equal(stats_key_parse(SPAN_LIT("received:90s"), &k, &eb), 0);
    assert_int_equal(k.f.field, VG_F_RECEIVED);
    assert_int_equal(k.bucket_ns, 90 * VG_NS_PER_SEC);
    assert_int_equal(stats_key_parse(SPAN_LIT("ts:7d"), &k, &eb), 0);
    assert_int_equal(k.bucket_ns, 7 * 86400 * VG_NS_PER_SEC);
    assert_int_equal(stats_key_parse(SPAN_LIT("ts:250ms"), &k, &eb), 0);
    assert_int_equal(k.bucket_ns, 250000000);
    assert_int_equal(stats_key_parse(SPAN_LIT("raw.user.name"), &k, &eb), 0);
    assert_int_equal(k.f.field, VG_F_RAW);
    assert_string_equal(k.f.path, "user.name");
    assert_string_equal(k.name, "raw.user.name");
    /* a colon inside a raw path is part of the path */
    assert_int_equal(stats_key_parse(SPAN_LIT("raw.a:b"), &k, &eb), 0);
    assert_string_equal(k.f.path, "a:b");

    static const struct {
        const char *spec;
        const char *why;
    } bad[] = {
        { "ts", "group times into buckets, like ts:1h" },
        { "received", "like received:1h" },
        { "raw", "group by a path into it" },
        { "seq:1h", "time buckets are on ts or received" },
        { "ts:", "bad bucket width ''" },
        { "ts:fast", "bad bucket width 'fast'" },
        { "ts:0s", "bad bucket width '0s'" },
        { "ts:-1h", "bad bucket width '-1h'" },
        { "podd", "did you mean 'pod'?" },
        { "container", "'container_id' or 'container_name'" },
        { "", "empty field name" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errbuf_clear(&eb);
        assert_int_equal(stats_key_parse(span_str(bad[i].spec), &k, &eb), VG_EPARSE);
        if (!strstr(errbuf_msg(&eb), bad[i].why)) {
            fail_msg("'%s': '%s', expected '%s'", bad[i].spec, errbuf_msg(&eb), bad[i].why);
        }
    }
}

static void test_aggs(void **state)
{
    struct stats_agg a;
    struct errbuf eb;
    (void)state;

    errbuf_clear(&eb);
    assert_int_equal(stats_agg_parse(SPAN_LIT("count"), &a, &eb), 0);
    assert_int_equal(a.kind, STATS_COUNT);
    assert_string_equal(a.name, "count");
    assert_int_equal(stats_agg_parse(SPAN_LIT("dc(user)"), &a, &eb), 0);
    assert_int_equal(a.kind, STATS_DC);
    assert_int_equal(a.f.field, VG_F_USER);
    assert_string_equal(a.name, "dc(user)");
    assert_int_equal(stats_agg_parse(SPAN_LIT("dc:src_ip"), &a, &eb), 0);
    assert_int_equal(a.kind, STATS_DC);
    assert_string_equal(a.name, "dc(src_ip)");
    assert_int_equal(stats_agg_parse(SPAN_LIT("dc(raw.user.name)"), &a, &eb), 0);
    assert_string_equal(a.f.path, "user.name");
    assert_int_equal(stats_agg_parse(SPAN_LIT("min(ts)"), &a, &eb), 0);
    assert_int_equal(a.kind, STATS_MIN);
    assert_int_equal(a.f.field, VG_F_TS);
    assert_int_equal(stats_agg_parse(SPAN_LIT("max:seq"), &a, &eb), 0);
    assert_int_equal(a.kind, STATS_MAX);
    assert_string_equal(a.name, "max(seq)");
    assert_int_equal(stats_agg_parse(SPAN_LIT("max(dst_port)"), &a, &eb), 0);
    assert_int_equal(stats_agg_parse(SPAN_LIT("min(received)"), &a, &eb), 0);

    static const struct {
        const char *spec;
        const char *why;
    } bad[] = {
        { "min(user)", "min and max are of ts, received, seq or dst_port" },
        { "max(raw.n)", "min and max are of ts, received, seq or dst_port" },
        { "dc(raw)", "count the distinct values of a path" },
        { "dc(usr)", "did you mean 'user'?" },
        { "avg(ts)", "'avg(ts)' is not an aggregate" },
        { "dc(", "not an aggregate" },
        { "dc()", "empty field name" },
        { "counts", "not an aggregate" },
        { "dc(user", "not an aggregate" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errbuf_clear(&eb);
        assert_int_equal(stats_agg_parse(span_str(bad[i].spec), &a, &eb), VG_EPARSE);
        if (!strstr(errbuf_msg(&eb), bad[i].why)) {
            fail_msg("'%s': '%s', expected '%s'", bad[i].spec, errbuf_msg(&eb), bad[i].why);
        }
    }
}

struct parts {
    char v[8][32];
    int n;
};

static int collect(struct span part, void *arg)
{
    struct parts *p = arg;
    if (p->n == 8) {
        return -1;
    }
    snprintf(p->v[p->n++], sizeof(p->v[0]), "%.*s", (int)part.n, (const char *)part.p);
    return 0;
}

static void test_split(void **state)
{
    struct parts p = { 0 };
    (void)state;

    assert_int_equal(stats_split("count,dc(a,b),max(ts)", collect, &p), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.v[0], "count");
    assert_string_equal(p.v[1], "dc(a,b)");
    assert_string_equal(p.v[2], "max(ts)");
    memset(&p, 0, sizeof(p));
    assert_int_equal(stats_split("pod", collect, &p), 0);
    assert_int_equal(p.n, 1);
    memset(&p, 0, sizeof(p));
    assert_int_equal(stats_split("a,,b,", collect, &p), 0);
    assert_int_equal(p.n, 4); /* the empty parts reach the parser, which refuses them */
    assert_string_equal(p.v[1], "");
    assert_string_equal(p.v[3], "");
}

static void test_buckets(void **state)
{
    const int64_t h = 3600 * VG_NS_PER_SEC;
    const int64_t t0 = 1714568400LL * VG_NS_PER_SEC; /* 2024-05-01T13:00:00Z */
    (void)state;

    assert_int_equal(stats_bucket(t0, h), t0);
    assert_int_equal(stats_bucket(t0 - 1, h), t0 - h);
    assert_int_equal(stats_bucket(t0 + h - 1, h), t0);
    assert_int_equal(stats_bucket(t0 + 17 * 60 * VG_NS_PER_SEC, 15 * 60 * VG_NS_PER_SEC),
                     t0 + 15 * 60 * VG_NS_PER_SEC);
    assert_int_equal(stats_bucket(0, h), 0);
    assert_int_equal(stats_bucket(-1, h), -h);
    assert_int_equal(stats_bucket(-h, h), -h);
    assert_int_equal(stats_bucket(-h - 1, h), -2 * h);
    assert_int_equal(stats_bucket(INT64_MIN + 5, 1), INT64_MIN + 5);
    assert_int_equal(stats_bucket(25, 7), 21);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_aggs),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
