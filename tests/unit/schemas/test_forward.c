/* tests/unit/schemas/test_forward.c: the Forward protocol v1 codec. Every mode
 * through encoder -> decoder -> iterator, the time encodings real clients send, every
 * prefix of a valid message, malformed and over-claiming input, gzip bombs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/mp.h"
#include "schemas/forward.h"

#define P(x)    assert_int_equal((x), 0)
#define MAXF    (1u << 20)
#define T1      INT64_C(1700000000123456789) /* ns precision */
#define T2      INT64_C(1700000001000000001)
#define T3      INT64_C(1700000002999999999)
#define SEC(s)  ((int64_t)(s)*INT64_C(1000000000))
#define ENTRY_D (FORWARD_MAX_DEPTH - 3) /* record levels a Forward/Packed entry allows */

static const char *const recs_json[] = {
    "{\"log\":\"sshd[1]: Failed password for root from 10.0.0.1\",\"stream\":\"stderr\"}",
    "{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":{\"e\":true}}",
    "{}",
};
static const int64_t times[] = { T1, T2, T3 };

/* Appends the msgpack of a JSON document to b; returns the span of what was added. */
static struct span json_mp(struct buf *b, const char *json)
{
    size_t at = b->len;
    P(json_to_mp(span_str(json), b, NULL, NULL));
    return (struct span){ b->data + at, b->len - at };
}

/* d nested maps {"a":{"a":...{"a":1}}}: d container levels. */
static void put_nested(struct buf *b, int d)
{
    for (int i = 0; i < d; i++) {
        P(mp_put_map(b, 1));
        P(mp_put_cstr(b, "a"));
    }
    P(mp_put_u64(b, 1));
}

/* The three test entries, concatenated, as forward_encode_entry writes them. */
static void make_entries(struct buf *entries, struct buf *recs, struct span rec[3])
{
    buf_init(entries, MAXF);
    buf_init(recs, MAXF);
    for (int i = 0; i < 3; i++) {
        rec[i] = json_mp(recs, recs_json[i]);
    }
    /* The buffer may move while it grows: re-point the spans afterwards. */
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        rec[i].p = recs->data + off;
        off += rec[i].n;
    }
    for (int i = 0; i < 3; i++) {
        P(forward_encode_entry(entries, times[i], rec[i]));
        assert_true(buf_check(entries));
    }
}

/* Iterates m and checks it holds exactly the n events (times, records). */
static void expect_events(const struct forward_msg *m, struct buf *scratch, int n,
                          const int64_t *want_t, const struct span *want_r)
{
    struct forward_iter it;
    int64_t t;
    struct span r;

    P(forward_iter_init(&it, m, scratch));
    for (int i = 0; i < n; i++) {
        assert_int_equal(forward_iter_next(&it, &t, &r), 1);
        assert_int_equal(t, want_t[i]);
        assert_true(span_eq(r, want_r[i]));
        assert_int_equal(it.metadata.n, 0);
    }
    assert_int_equal(forward_iter_next(&it, &t, &r), 0);
    assert_int_equal(forward_iter_next(&it, &t, &r), 0);
}

/* Every proper prefix of a valid message is "need more", never an error; the whole
 * message decodes to its length, also when more bytes follow. */
static void expect_prefixes(struct span msg)
{
    struct forward_msg m;
    struct buf twice;

    for (size_t i = 0; i < msg.n; i++) {
        ssize_t rc = forward_decode((struct span){ msg.p, i }, &m, MAXF);
        if (rc != 0) {
            fail_msg("prefix of %zu of %zu bytes: %zd", i, msg.n, rc);
        }
    }
    assert_int_equal(forward_decode(msg, &m, MAXF), (ssize_t)msg.n);
    buf_init(&twice, MAXF);
    P(buf_append(&twice, msg.p, msg.n));
    P(buf_append(&twice, msg.p, msg.n));
    assert_int_equal(forward_decode(buf_span(&twice), &m, MAXF), (ssize_t)msg.n);
    buf_release(&twice);
}

static void test_message_roundtrip(void **state)
{
    struct buf recs;
    struct buf out;
    struct forward_msg m;
    (void)state;

    buf_init(&recs, MAXF);
    buf_init(&out, MAXF);
    struct span rec = json_mp(&recs, recs_json[1]);

    P(forward_encode_message(&out, SPAN_LIT("app.auth"), T1, rec, SPAN_LIT("c-1")));
    assert_true(buf_check(&out));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    assert_int_equal(m.mode, FORWARD_MESSAGE);
    assert_true(span_eq_str(m.tag, "app.auth"));
    assert_int_equal(m.time_ns, T1);
    assert_true(span_eq(m.record, rec));
    assert_true(span_eq_str(m.chunk, "c-1"));
    assert_int_equal(m.entries.n, 0);
    assert_int_equal(m.count, 0);
    expect_events(&m, NULL, 1, &times[0], &rec);
    expect_prefixes(buf_span(&out));

    /* Without a chunk: three elements, no option. */
    buf_reset(&out);
    P(forward_encode_message(&out, SPAN_LIT("t"), 0, rec, (struct span){ NULL, 0 }));
    assert_int_equal(out.data[0], 0x93);
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    assert_int_equal(m.chunk.n, 0);
    assert_int_equal(m.time_ns, 0);
    expect_prefixes(buf_span(&out));
    buf_release(&out);
    buf_release(&recs);
}

static void test_forward_roundtrip(void **state)
{
    struct buf entries;
    struct buf recs;
    struct buf out;
    struct span rec[3];
    struct forward_msg m;
    (void)state;

    make_entries(&entries, &recs, rec);
    buf_init(&out, MAXF);
    P(forward_encode_forward(&out, SPAN_LIT("k8s"), buf_span(&entries), 3, SPAN_LIT("ck")));
    assert_true(buf_check(&out));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    assert_int_equal(m.mode, FORWARD_FORWARD);
    assert_true(span_eq_str(m.tag, "k8s"));
    assert_int_equal(m.count, 3);
    assert_int_equal(m.size_opt, 3);
    assert_true(span_eq_str(m.chunk, "ck"));
    assert_false(m.compressed_gzip);
    assert_int_equal(m.entries.p[0], 0x93); /* the whole array value */
    assert_int_equal(m.entries.n, 1 + entries.len);
    expect_events(&m, NULL, 3, times, rec);
    expect_prefixes(buf_span(&out));

    /* An empty Forward message. */
    buf_reset(&out);
    P(forward_encode_forward(&out, SPAN_LIT("k8s"), (struct span){ NULL, 0 }, 0,
                             (struct span){ NULL, 0 }));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    assert_int_equal(m.count, 0);
    expect_events(&m, NULL, 0, NULL, NULL);
    buf_release(&out);
    buf_release(&entries);
    buf_release(&recs);
}

static void test_packed_roundtrip(void **state)
{
    struct buf entries;
    struct buf recs;
    struct buf out;
    struct span rec[3];
    struct forward_msg m;
    (void)state;

    make_entries(&entries, &recs, rec);
    buf_init(&out, MAXF);
    P(forward_encode_packed(&out, SPAN_LIT("fluentbit"), buf_span(&entries), 3,
                            SPAN_LIT("0123456789abcdef0123456789abcdef")));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    assert_int_equal(m.mode, FORWARD_PACKED);
    assert_true(span_eq(m.entries, buf_span(&entries)));
    assert_int_equal(m.count, 0);
    assert_int_equal(m.size_opt, 3);
    assert_true(span_eq_str(m.chunk, "0123456789abcdef0123456789abcdef"));
    expect_events(&m, NULL, 3, times, rec);
    expect_prefixes(buf_span(&out));
    buf_release(&out);
    buf_release(&entries);
    buf_release(&recs);
}

static void test_compressed_roundtrip(void **state)
{
    struct buf entries;
    struct buf recs;
    struct buf out;
    struct buf scratch;
    struct span rec[3];
    struct forward_msg m;
    (void)state;

    make_entries(&entries, &recs, rec);
    buf_init(&out, MAXF);
    buf_init(&scratch, MAXF);
    P(forward_encode_compressed(&out, SPAN_LIT("gz"), buf_span(&entries), 3, SPAN_LIT("z1")));
    assert_true(buf_check(&out));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    assert_int_equal(m.mode, FORWARD_COMPRESSED);
    assert_true(m.compressed_gzip);
    assert_int_equal(m.size_opt, 3);
    assert_true(span_eq_str(m.chunk, "z1"));
    assert_int_equal(m.entries.p[0], 0x1f); /* gzip magic */
    assert_int_equal(m.entries.p[1], 0x8b);
    expect_events(&m, &scratch, 3, times, rec);
    assert_true(span_eq(buf_span(&scratch), buf_span(&entries)));
    assert_true(buf_check(&scratch));
    expect_prefixes(buf_span(&out));

    /* Scratch is reset by each init: iterating again gives the same events. */
    expect_events(&m, &scratch, 3, times, rec);
    buf_release(&scratch);
    buf_release(&out);
    buf_release(&entries);
    buf_release(&recs);
}

/* [tag, time, {"k":"v"}] with the time written by put_time. */
static void build_message(struct buf *b, void (*put_time)(struct buf *, const void *),
                          const void *arg)
{
    buf_reset(b);
    P(mp_put_array(b, 3));
    P(mp_put_cstr(b, "t"));
    put_time(b, arg);
    P(mp_put_map(b, 1));
    P(mp_put_cstr(b, "k"));
    P(mp_put_cstr(b, "v"));
}

static void put_raw_bytes(struct buf *b, const void *arg)
{
    const struct span *s = arg;
    P(buf_append(b, s->p, s->n));
}

static void put_float(struct buf *b, const void *arg)
{
    P(mp_put_f64(b, *(const double *)arg));
}

/* Decodes [tag, <time bytes>, {"k":"v"}]; returns forward_decode's result, *ns the time. */
static ssize_t decode_time_bytes(const void *time_bytes, size_t n, int64_t *ns)
{
    struct buf b;
    struct forward_msg m;
    struct span s = { time_bytes, n };

    buf_init(&b, MAXF);
    build_message(&b, put_raw_bytes, &s);
    ssize_t rc = forward_decode(buf_span(&b), &m, MAXF);
    if (rc > 0) {
        assert_int_equal(rc, (ssize_t)b.len);
        expect_prefixes(buf_span(&b));
        *ns = m.time_ns;
    }
    buf_release(&b);
    return rc;
}

static void test_times(void **state)
{
    int64_t ns = -1;
    (void)state;

    /* Integer seconds (v0 clients, Fluent Bit time_as_integer) in every int format. */
    const uint8_t fix[] = { 0x05 };
    const uint8_t u32[] = { 0xce, 0x65, 0x53, 0xf1, 0x00 };
    const uint8_t u64[] = { 0xcf, 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00 };
    const uint8_t i64[] = { 0xd3, 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00 }; /* signed, >= 0 */
    const uint8_t i8[] = { 0xd0, 0x7f };
    assert_true(decode_time_bytes(fix, sizeof(fix), &ns) > 0);
    assert_int_equal(ns, SEC(5));
    assert_true(decode_time_bytes(u32, sizeof(u32), &ns) > 0);
    assert_int_equal(ns, SEC(1700000000));
    assert_true(decode_time_bytes(u64, sizeof(u64), &ns) > 0);
    assert_int_equal(ns, SEC(1700000000));
    assert_true(decode_time_bytes(i64, sizeof(i64), &ns) > 0);
    assert_int_equal(ns, SEC(1700000000));
    assert_true(decode_time_bytes(i8, sizeof(i8), &ns) > 0);
    assert_int_equal(ns, SEC(127));

    /* EventTime as fixext8 (Fluent Bit, fluent-logger) and as ext8 of length 8. */
    const uint8_t fixext[] = { 0xd7, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x07, 0x5b, 0xcd, 0x15 };
    const uint8_t ext8[] = { 0xc7, 0x08, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x07, 0x5b, 0xcd, 0x15 };
    assert_true(decode_time_bytes(fixext, sizeof(fixext), &ns) > 0);
    assert_int_equal(ns, SEC(1700000000) + 123456789);
    assert_true(decode_time_bytes(ext8, sizeof(ext8), &ns) > 0);
    assert_int_equal(ns, SEC(1700000000) + 123456789);
    const uint8_t etmax[] = { 0xd7, 0x00, 0xff, 0xff, 0xff, 0xff, 0x3b, 0x9a, 0xc9, 0xff };
    assert_true(decode_time_bytes(etmax, sizeof(etmax), &ns) > 0);
    assert_int_equal(ns, SEC(UINT32_MAX) + 999999999);

    /* Float seconds (old Fluent Bit): as precise as the double is. */
    struct buf b;
    struct forward_msg m;
    buf_init(&b, MAXF);
    double f = 1700000000.5;
    build_message(&b, put_float, &f);
    assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
    assert_int_equal(m.time_ns, SEC(1700000000) + 500000000);
    f = 1700000000.123456;
    build_message(&b, put_float, &f);
    assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
    assert_true(llabs(m.time_ns - (SEC(1700000000) + 123456000)) < 1000);
    f = 0.9999999999; /* rounds up into the next second */
    build_message(&b, put_float, &f);
    assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
    assert_int_equal(m.time_ns, SEC(1));
    const uint8_t f32[] = { 0xca, 0x3f, 0xc0, 0x00, 0x00 }; /* 1.5f */
    assert_true(decode_time_bytes(f32, sizeof(f32), &ns) > 0);
    assert_int_equal(ns, SEC(1) + 500000000);

    /* Bad times. */
    const uint8_t neg[] = { 0xff };                                        /* -1 */
    const uint8_t neg64[] = { 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0 };           /* INT64_MIN */
    const uint8_t huge[] = { 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0 };            /* 2^63 s */
    const uint8_t ovf[] = { 0xcf, 0, 0, 0, 0x02, 0x25, 0xc1, 0x7d, 0x05 }; /* MAX_SEC + 1 */
    const uint8_t ext1[] = { 0xd7, 0x01, 0, 0, 0, 1, 0, 0, 0, 0 };         /* ext type 1 */
    const uint8_t ext4[] = { 0xd6, 0x00, 0, 0, 0, 1 };                     /* type 0, 4 bytes */
    const uint8_t ext9[] = { 0xc7, 0x09, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0 };
    const uint8_t nsec[] = { 0xd7, 0x00, 0, 0, 0, 1, 0x3b, 0x9a, 0xca, 0x00 }; /* 1e9 ns */
    const uint8_t nan[] = { 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0 };
    const uint8_t inf[] = { 0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0 };
    const uint8_t fneg[] = { 0xcb, 0xbf, 0xf8, 0, 0, 0, 0, 0, 0 }; /* -1.5 */
    const uint8_t fbig[] = { 0xcb, 0x43, 0xe0, 0, 0, 0, 0, 0, 0 }; /* 2^63 */
    const uint8_t nil[] = { 0xc0 };
    const uint8_t boolean[] = { 0xc3 };
    const struct span bad[] = {
        { neg, sizeof(neg) },   { neg64, sizeof(neg64) },     { huge, sizeof(huge) },
        { ovf, sizeof(ovf) },   { ext1, sizeof(ext1) },       { ext4, sizeof(ext4) },
        { ext9, sizeof(ext9) }, { nsec, sizeof(nsec) },       { nan, sizeof(nan) },
        { inf, sizeof(inf) },   { fneg, sizeof(fneg) },       { fbig, sizeof(fbig) },
        { nil, sizeof(nil) },   { boolean, sizeof(boolean) },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        if (decode_time_bytes(bad[i].p, bad[i].n, &ns) != -EPROTO) {
            fail_msg("bad time %zu accepted", i);
        }
    }
    /* The largest integer second that fits in ns is accepted. */
    const uint8_t maxsec[] = { 0xcf, 0, 0, 0, 0x02, 0x25, 0xc1, 0x7d, 0x04 };
    assert_true(decode_time_bytes(maxsec, sizeof(maxsec), &ns) > 0);
    assert_int_equal(ns, (INT64_MAX / 1000000000) * 1000000000);
    buf_release(&b);
}

/* Forward mode with entries in the other time encodings, and Fluent Bit's
 * [[time, metadata], record] entries. */
static void test_entry_shapes(void **state)
{
    struct buf b;
    struct forward_msg m;
    struct forward_iter it;
    int64_t t;
    struct span r;
    (void)state;

    buf_init(&b, MAXF);
    P(mp_put_array(&b, 2));
    P(mp_put_cstr(&b, "fb"));
    P(mp_put_array(&b, 4));
    /* [1700000000, {"a":1}] */
    P(mp_put_array(&b, 2));
    P(mp_put_u64(&b, 1700000000));
    size_t r1 = b.len;
    P(mp_put_map(&b, 1));
    P(mp_put_cstr(&b, "a"));
    P(mp_put_u64(&b, 1));
    /* [1.25, {}] */
    P(mp_put_array(&b, 2));
    P(mp_put_f64(&b, 1.25));
    P(mp_put_map(&b, 0));
    /* [[EventTime, {"otel":"x"}], {"b":2}] */
    P(mp_put_array(&b, 2));
    P(mp_put_array(&b, 2));
    P(mp_put_eventtime(&b, T1));
    size_t meta = b.len;
    P(mp_put_map(&b, 1));
    P(mp_put_cstr(&b, "otel"));
    P(mp_put_cstr(&b, "x"));
    size_t r3 = b.len;
    P(mp_put_map(&b, 1));
    P(mp_put_cstr(&b, "b"));
    P(mp_put_u64(&b, 2));
    /* [EventTime, {"c":3}] */
    P(mp_put_array(&b, 2));
    P(mp_put_eventtime(&b, T2));
    P(mp_put_map(&b, 1));
    P(mp_put_cstr(&b, "c"));
    P(mp_put_u64(&b, 3));

    assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
    assert_int_equal(m.mode, FORWARD_FORWARD);
    assert_int_equal(m.count, 4);
    assert_int_equal(m.chunk.n, 0);
    expect_prefixes(buf_span(&b));
    P(forward_iter_init(&it, &m, NULL));
    assert_int_equal(forward_iter_next(&it, &t, &r), 1);
    assert_int_equal(t, SEC(1700000000));
    assert_ptr_equal(r.p, b.data + r1);
    assert_int_equal(r.n, 4);
    assert_int_equal(forward_iter_next(&it, &t, &r), 1);
    assert_int_equal(t, SEC(1) + 250000000);
    assert_int_equal(r.n, 1);
    assert_int_equal(forward_iter_next(&it, &t, &r), 1);
    assert_int_equal(t, T1);
    assert_ptr_equal(r.p, b.data + r3);
    assert_ptr_equal(it.metadata.p, b.data + meta);
    assert_int_equal(it.metadata.n, r3 - meta);
    assert_int_equal(forward_iter_next(&it, &t, &r), 1);
    assert_int_equal(t, T2);
    assert_int_equal(it.metadata.n, 0);
    assert_int_equal(forward_iter_next(&it, &t, &r), 0);

    /* The record is what is left of the measured entry after its time (and metadata):
     * it must be a map, and the metadata too. Each bad entry in a PackedForward stream
     * behind a good one: the good one comes out, then -EPROTO. */
    static const uint8_t bad_entries[][8] = {
        { 0x92, 0x01, 0xa1, 'x' },             /* [1, "x"] */
        { 0x92, 0x01, 0x91, 0x01 },             /* [1, [1]] */
        { 0x92, 0x01, 0xc0 },                   /* [1, nil] */
        { 0x92, 0x92, 0x01, 0x80, 0x05 },       /* [[1, {}], 5] */
        { 0x92, 0x92, 0x01, 0x05, 0x80 },       /* [[1, 5], {}] */
    };
    static const size_t bad_len[] = { 4, 4, 3, 5, 5 };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad_len); i++) {
        const uint8_t good[] = { 0x92, 0x01, 0x81, 0xa1, 'a', 0x01 }; /* [1, {"a": 1}] */
        buf_reset(&b);
        P(mp_put_array(&b, 2));
        P(mp_put_cstr(&b, "t"));
        uint8_t stream[16];
        memcpy(stream, good, sizeof(good));
        memcpy(stream + sizeof(good), bad_entries[i], bad_len[i]);
        P(mp_put_bin(&b, stream, sizeof(good) + bad_len[i]));
        assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
        P(forward_iter_init(&it, &m, NULL));
        assert_int_equal(forward_iter_next(&it, &t, &r), 1);
        assert_int_equal(r.n, 4);
        assert_int_equal(forward_iter_next(&it, &t, &r), -EPROTO);
    }
    buf_release(&b);
}

/* Fluentd's out_forward: PackedForward with the entries in a str and
 * {"size": n, "compressed": "text"}; options in other orders and types. */
static void test_options(void **state)
{
    struct buf entries;
    struct buf recs;
    struct buf b;
    struct span rec[3];
    struct forward_msg m;
    (void)state;

    make_entries(&entries, &recs, rec);
    buf_init(&b, MAXF);
    P(mp_put_array(&b, 3));
    P(mp_put_cstr(&b, "ruby"));
    P(mp_put_str(&b, entries.data, entries.len));
    P(mp_put_map(&b, 3));
    P(mp_put_cstr(&b, "size"));
    P(mp_put_u64(&b, 3));
    P(mp_put_cstr(&b, "compressed"));
    P(mp_put_cstr(&b, "text"));
    P(mp_put_cstr(&b, "chunk"));
    P(mp_put_bin(&b, "\x01\x02", 2)); /* chunk as bin */
    assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
    assert_int_equal(m.mode, FORWARD_PACKED);
    assert_false(m.compressed_gzip);
    assert_int_equal(m.size_opt, 3);
    assert_true(span_eq(m.chunk, (struct span){ (const uint8_t *)"\x01\x02", 2 }));
    expect_events(&m, NULL, 3, times, rec);
    expect_prefixes(buf_span(&b));

    /* Unknown keys (fluent_signal), non-string keys and nil values are ignored. */
    buf_reset(&b);
    P(mp_put_array(&b, 3));
    P(mp_put_cstr(&b, "fb"));
    P(mp_put_bin(&b, entries.data, entries.len));
    P(mp_put_map(&b, 6));
    P(mp_put_cstr(&b, "fluent_signal"));
    P(mp_put_u64(&b, 0));
    P(mp_put_array(&b, 1)); /* key [1] */
    P(mp_put_u64(&b, 1));
    P(mp_put_map(&b, 1)); /* value {"chunk": 5} */
    P(mp_put_cstr(&b, "chunk"));
    P(mp_put_u64(&b, 5));
    P(mp_put_cstr(&b, "size"));
    P(mp_put_nil(&b));
    P(mp_put_cstr(&b, "compressed"));
    P(mp_put_nil(&b));
    P(mp_put_cstr(&b, "chunk"));
    P(mp_put_cstr(&b, "abc"));
    P(mp_put_cstr(&b, "TimeFormat"));
    P(mp_put_cstr(&b, "DateTime"));
    assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
    assert_int_equal(m.mode, FORWARD_PACKED);
    assert_int_equal(m.size_opt, 0);
    assert_true(span_eq_str(m.chunk, "abc"));
    expect_prefixes(buf_span(&b));

    /* A nil option is no option (as Fluentd reads it). */
    buf_reset(&b);
    P(mp_put_array(&b, 4));
    P(mp_put_cstr(&b, "t"));
    P(mp_put_u64(&b, 1));
    P(mp_put_map(&b, 0));
    P(mp_put_nil(&b));
    assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
    assert_int_equal(m.mode, FORWARD_MESSAGE);
    assert_int_equal(m.chunk.n, 0);

    /* compressed on a Forward mode message is ignored, even an unknown one. */
    buf_reset(&b);
    P(mp_put_array(&b, 3));
    P(mp_put_cstr(&b, "t"));
    P(mp_put_array(&b, 0));
    P(mp_put_map(&b, 1));
    P(mp_put_cstr(&b, "compressed"));
    P(mp_put_cstr(&b, "zstd"));
    assert_int_equal(forward_decode(buf_span(&b), &m, MAXF), (ssize_t)b.len);
    assert_int_equal(m.mode, FORWARD_FORWARD);
    buf_release(&b);
    buf_release(&entries);
    buf_release(&recs);
}

/* [tag, entries-or-time, ...] with option bytes appended: the result of decoding. */
static ssize_t decode_with_option(void (*put_opt)(struct buf *), bool packed)
{
    struct buf b;
    struct forward_msg m;

    buf_init(&b, MAXF);
    P(mp_put_array(&b, packed ? 3 : 4));
    P(mp_put_cstr(&b, "t"));
    if (packed) {
        P(mp_put_bin(&b, NULL, 0));
    } else {
        P(mp_put_u64(&b, 1));
        P(mp_put_map(&b, 0));
    }
    put_opt(&b);
    ssize_t rc = forward_decode(buf_span(&b), &m, MAXF);
    buf_release(&b);
    return rc;
}

static void opt_int(struct buf *b)
{
    P(mp_put_u64(b, 1));
}

static void opt_str(struct buf *b)
{
    P(mp_put_cstr(b, "chunk"));
}

static void opt_array(struct buf *b)
{
    P(mp_put_array(b, 1));
    P(mp_put_cstr(b, "chunk"));
}

static void opt_pair(struct buf *b, const char *key, void (*put_val)(struct buf *))
{
    P(mp_put_map(b, 1));
    P(mp_put_cstr(b, key));
    put_val(b);
}

static void v_int(struct buf *b)
{
    P(mp_put_u64(b, 7));
}

static void v_neg(struct buf *b)
{
    P(mp_put_i64(b, -1));
}

static void v_big(struct buf *b)
{
    P(mp_put_u64(b, UINT64_C(1) << 32));
}

static void v_str(struct buf *b)
{
    P(mp_put_cstr(b, "3"));
}

static void v_zstd(struct buf *b)
{
    P(mp_put_cstr(b, "zstd"));
}

static void v_bool(struct buf *b)
{
    P(mp_put_bool(b, true));
}

static void chunk_int(struct buf *b)
{
    opt_pair(b, "chunk", v_int);
}

static void chunk_map(struct buf *b)
{
    P(mp_put_map(b, 1));
    P(mp_put_cstr(b, "chunk"));
    P(mp_put_map(b, 0));
}

static void size_neg(struct buf *b)
{
    opt_pair(b, "size", v_neg);
}

static void size_big(struct buf *b)
{
    opt_pair(b, "size", v_big);
}

static void size_str(struct buf *b)
{
    opt_pair(b, "size", v_str);
}

static void comp_zstd(struct buf *b)
{
    opt_pair(b, "compressed", v_zstd);
}

static void comp_bool(struct buf *b)
{
    opt_pair(b, "compressed", v_bool);
}

static void test_option_errors(void **state)
{
    (void)state;
    void (*const bad[])(struct buf *) = {
        opt_int, opt_str, opt_array, chunk_int, chunk_map, size_neg, size_big, size_str, comp_bool,
    };

    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        for (int packed = 0; packed <= 1; packed++) {
            if (decode_with_option(bad[i], packed) != -EPROTO) {
                fail_msg("bad option %zu accepted (packed %d)", i, packed);
            }
        }
    }
    /* A compression we cannot undo is refused where it matters: PackedForward. */
    assert_int_equal(decode_with_option(comp_zstd, true), -EPROTO);
    assert_true(decode_with_option(comp_zstd, false) > 0);
}

/* Messages sent back to back are decoded one at a time, each consuming its bytes. */
static void test_stream(void **state)
{
    struct buf entries;
    struct buf recs;
    struct buf out;
    struct buf scratch;
    struct span rec[3];
    struct forward_msg m;
    (void)state;

    make_entries(&entries, &recs, rec);
    buf_init(&out, MAXF);
    buf_init(&scratch, MAXF);
    P(forward_encode_message(&out, SPAN_LIT("a"), T1, rec[0], SPAN_LIT("1")));
    P(forward_encode_forward(&out, SPAN_LIT("b"), buf_span(&entries), 3, SPAN_LIT("2")));
    P(forward_encode_packed(&out, SPAN_LIT("c"), buf_span(&entries), 3, SPAN_LIT("3")));
    P(forward_encode_compressed(&out, SPAN_LIT("d"), buf_span(&entries), 3, SPAN_LIT("4")));
    P(forward_encode_message(&out, SPAN_LIT("e"), T2, rec[1], (struct span){ NULL, 0 }));

    const enum forward_mode modes[] = { FORWARD_MESSAGE, FORWARD_FORWARD, FORWARD_PACKED,
                                        FORWARD_COMPRESSED, FORWARD_MESSAGE };
    const char *const chunks[] = { "1", "2", "3", "4", "" };
    const char *const tags[] = { "a", "b", "c", "d", "e" };
    struct span in = buf_span(&out);
    int events = 0;
    for (int i = 0; i < 5; i++) {
        ssize_t n = forward_decode(in, &m, MAXF);
        assert_true(n > 0);
        assert_int_equal(m.mode, modes[i]);
        assert_true(span_eq_str(m.chunk, chunks[i]));
        assert_true(span_eq_str(m.tag, tags[i]));
        struct forward_iter it;
        int64_t t;
        struct span r;
        P(forward_iter_init(&it, &m, &scratch));
        while (forward_iter_next(&it, &t, &r) == 1) {
            events++;
        }
        assert_int_equal(it.err, 0);
        span_advance(&in, (size_t)n);
    }
    assert_int_equal(in.n, 0);
    assert_int_equal(events, 1 + 3 + 3 + 3 + 1);
    assert_int_equal(forward_decode(in, &m, MAXF), 0);
    buf_release(&scratch);
    buf_release(&out);
    buf_release(&entries);
    buf_release(&recs);
}

static ssize_t decode_bytes(const void *p, size_t n, size_t max)
{
    struct forward_msg m;
    return forward_decode((struct span){ p, n }, &m, max);
}

#define DECODE(arr, max) decode_bytes((arr), sizeof(arr), (max))

static void test_malformed_shape(void **state)
{
    (void)state;
    /* Not an array at all, or the wrong arity. */
    const uint8_t fixint[] = { 0x01 };
    const uint8_t map[] = { 0x80 };
    const uint8_t a0[] = { 0x90 };
    const uint8_t a1[] = { 0x91, 0xa1, 't' };
    const uint8_t a5[] = { 0x95, 0xa1, 't', 0x01, 0x80, 0x80, 0x80 };
    assert_int_equal(DECODE(fixint, MAXF), -EPROTO);
    assert_int_equal(DECODE(map, MAXF), -EPROTO);
    assert_int_equal(DECODE(a0, MAXF), -EPROTO);
    assert_int_equal(DECODE(a1, MAXF), -EPROTO);
    assert_int_equal(DECODE(a5, MAXF), -EPROTO);
    /* Tag not a string. */
    const uint8_t tag_int[] = { 0x93, 0x01, 0x01, 0x80 };
    const uint8_t tag_bin[] = { 0x93, 0xc4, 0x01, 't', 0x01, 0x80 };
    const uint8_t tag_nil[] = { 0x92, 0xc0, 0x90 };
    assert_int_equal(DECODE(tag_int, MAXF), -EPROTO);
    assert_int_equal(DECODE(tag_bin, MAXF), -EPROTO);
    assert_int_equal(DECODE(tag_nil, MAXF), -EPROTO);
    /* Second element neither time, entries array, bin nor str. */
    const uint8_t second_nil[] = { 0x93, 0xa1, 't', 0xc0, 0x80 };
    const uint8_t second_bool[] = { 0x92, 0xa1, 't', 0xc3 };
    const uint8_t second_map[] = { 0x92, 0xa1, 't', 0x80 }; /* also the HELO shape */
    assert_int_equal(DECODE(second_nil, MAXF), -EPROTO);
    assert_int_equal(DECODE(second_bool, MAXF), -EPROTO);
    assert_int_equal(DECODE(second_map, MAXF), -EPROTO);
    /* Arity wrong for the mode. */
    const uint8_t msg2[] = { 0x92, 0xa1, 't', 0x01 };
    const uint8_t fwd4[] = { 0x94, 0xa1, 't', 0x90, 0x80, 0x80 };
    const uint8_t packed4[] = { 0x94, 0xa1, 't', 0xc4, 0x00, 0x80, 0x80 };
    assert_int_equal(DECODE(msg2, MAXF), -EPROTO);
    assert_int_equal(DECODE(fwd4, MAXF), -EPROTO);
    assert_int_equal(DECODE(packed4, MAXF), -EPROTO);
    /* Record not a map (Message mode). */
    const uint8_t rec_arr[] = { 0x93, 0xa1, 't', 0x01, 0x91, 0x01 };
    const uint8_t rec_str[] = { 0x93, 0xa1, 't', 0x01, 0xa1, 'x' };
    const uint8_t rec_nil[] = { 0x93, 0xa1, 't', 0x01, 0xc0 };
    assert_int_equal(DECODE(rec_arr, MAXF), -EPROTO);
    assert_int_equal(DECODE(rec_str, MAXF), -EPROTO);
    assert_int_equal(DECODE(rec_nil, MAXF), -EPROTO);
    /* A byte that starts no msgpack value. */
    const uint8_t c1[] = { 0x93, 0xa1, 't', 0x01, 0xc1 };
    assert_int_equal(DECODE(c1, MAXF), -EPROTO);
    /* The handshake's PING: six elements. */
    const uint8_t ping[] = { 0x96, 0xa4, 'P', 'I', 'N', 'G', 0xa1, 'h', 0xa0, 0xa0, 0xa0, 0xa0 };
    assert_int_equal(DECODE(ping, MAXF), -EPROTO);
    /* A valid message is fine after all that. */
    const uint8_t ok[] = { 0x93, 0xa1, 't', 0x01, 0x80 };
    assert_int_equal(DECODE(ok, MAXF), (ssize_t)sizeof(ok));
}

/* Garbage is refused from its first bytes, not after max_frame of them. */
static void test_garbage_rejected_early(void **state)
{
    (void)state;
    const char http[] = "POST /v1/events HTTP/1.1\r\nHost: x\r\n";
    const uint8_t tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03 };
    const uint8_t helo[] = { 0x92, 0xa4, 'H', 'E', 'L', 'O', 0x81 }; /* ["HELO", {... */
    const uint8_t big_arity[] = { 0xdc, 0x00, 0x10 };                /* array16 of 16 */
    const uint8_t tag_int[] = { 0x93, 0xcd };                        /* [uint16... */
    const uint8_t msg_short[] = { 0x92, 0xa1, 't', 0xcf, 0x00 };     /* [tag, uint64... */

    for (size_t i = 1; i < sizeof(http) - 1; i++) {
        assert_int_equal(decode_bytes(http, i, MAXF), -EPROTO);
    }
    for (size_t i = 1; i <= sizeof(tls); i++) {
        assert_int_equal(decode_bytes(tls, i, MAXF), -EPROTO);
    }
    assert_int_equal(DECODE(helo, MAXF), -EPROTO);
    assert_int_equal(DECODE(big_arity, MAXF), -EPROTO);
    assert_int_equal(DECODE(tag_int, MAXF), -EPROTO);
    assert_int_equal(DECODE(msg_short, MAXF), -EPROTO);
    /* Empty input: need more. */
    assert_int_equal(decode_bytes(NULL, 0, MAXF), 0);
}

/* Headers that claim more than max_frame: refused before anything is believed. */
static void test_huge_claims(void **state)
{
    (void)state;
    const uint8_t arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff }; /* array32 of 2^32-1 */
    ssize_t rc = DECODE(arr32, MAXF);
    assert_true(rc == VG_ELIMIT || rc == -EPROTO);
    assert_int_equal(DECODE(arr32, 64), VG_ELIMIT);
    /* Even an unlimited max_frame does not make it a message. */
    assert_int_equal(DECODE(arr32, SIZE_MAX), -EPROTO);

    /* [tag, bin32 of 4 GiB ... */
    const uint8_t bin32[] = { 0x92, 0xa1, 't', 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00 };
    assert_int_equal(DECODE(bin32, MAXF), VG_ELIMIT);
    /* [str32 tag of 4 GiB ... */
    const uint8_t str32[] = { 0x92, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a' };
    assert_int_equal(DECODE(str32, MAXF), VG_ELIMIT);
    /* [tag, [array32 of 2^32-1 entries ... */
    const uint8_t entries32[] = { 0x92, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x92 };
    assert_int_equal(DECODE(entries32, MAXF), VG_ELIMIT);
    /* [tag, 1, map32 of 2^32-1 pairs ... */
    const uint8_t map32[] = { 0x93, 0xa1, 't', 0x01, 0xdf, 0xff, 0xff, 0xff, 0xff };
    assert_int_equal(DECODE(map32, MAXF), VG_ELIMIT);
}

static void test_max_frame(void **state)
{
    struct buf recs;
    struct buf out;
    (void)state;

    buf_init(&recs, MAXF);
    buf_init(&out, MAXF);
    struct span rec = json_mp(&recs, recs_json[0]);
    P(forward_encode_message(&out, SPAN_LIT("t"), T1, rec, SPAN_LIT("c")));
    size_t n = out.len;
    assert_int_equal(decode_bytes(out.data, n, n), (ssize_t)n);
    assert_int_equal(decode_bytes(out.data, n, n - 1), VG_ELIMIT);
    /* A prefix already as long as max_frame cannot become a message within it. */
    assert_int_equal(decode_bytes(out.data, n - 1, n - 1), VG_ELIMIT);
    assert_int_equal(decode_bytes(out.data, n - 1, n), 0);
    assert_int_equal(decode_bytes(out.data, n, 0), VG_ELIMIT);
    buf_release(&out);
    buf_release(&recs);
}

static void test_deep_nesting(void **state)
{
    struct buf rec;
    struct buf out;
    struct buf entries;
    struct forward_msg m;
    struct forward_iter it;
    int64_t t;
    struct span r;
    (void)state;

    buf_init(&rec, MAXF);
    buf_init(&out, MAXF);
    buf_init(&entries, MAXF);
    /* Message mode: the array is one level, the record may have the rest. */
    put_nested(&rec, FORWARD_MAX_DEPTH - 1);
    P(forward_encode_message(&out, SPAN_LIT("t"), T1, buf_span(&rec), SPAN_LIT("c")));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    buf_reset(&rec);
    put_nested(&rec, FORWARD_MAX_DEPTH);
    assert_int_equal(forward_encode_message(&out, SPAN_LIT("t"), T1, buf_span(&rec), SPAN_LIT("c")),
                     -EINVAL);
    buf_reset(&out);
    P(mp_put_array(&out, 3));
    P(mp_put_cstr(&out, "t"));
    P(mp_put_u64(&out, 1));
    P(mp_put_raw(&out, buf_span(&rec)));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), -EPROTO);

    /* Forward and PackedForward hold an entry's record to the same depth. */
    buf_reset(&rec);
    put_nested(&rec, ENTRY_D);
    P(forward_encode_entry(&entries, T1, buf_span(&rec)));
    buf_reset(&out);
    P(forward_encode_forward(&out, SPAN_LIT("t"), buf_span(&entries), 1, SPAN_LIT("c")));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    buf_reset(&out);
    P(forward_encode_packed(&out, SPAN_LIT("t"), buf_span(&entries), 1, SPAN_LIT("c")));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    P(forward_iter_init(&it, &m, NULL));
    assert_int_equal(forward_iter_next(&it, &t, &r), 1);

    buf_reset(&rec);
    put_nested(&rec, ENTRY_D + 1);
    assert_int_equal(forward_encode_entry(&entries, T1, buf_span(&rec)), -EINVAL);
    buf_reset(&entries);
    P(mp_put_array(&entries, 2));
    P(mp_put_u64(&entries, 1));
    P(mp_put_raw(&entries, buf_span(&rec)));
    buf_reset(&out);
    P(mp_put_array(&out, 2));
    P(mp_put_cstr(&out, "t"));
    P(mp_put_array(&out, 1));
    P(mp_put_raw(&out, buf_span(&entries)));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), -EPROTO);
    buf_reset(&out);
    P(mp_put_array(&out, 2));
    P(mp_put_cstr(&out, "t"));
    P(mp_put_bin(&out, entries.data, entries.len));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    P(forward_iter_init(&it, &m, NULL));
    assert_int_equal(forward_iter_next(&it, &t, &r), -EPROTO);

    /* Far deeper than anything allowed: 10000 nested arrays. */
    buf_reset(&out);
    P(mp_put_array(&out, 3));
    P(mp_put_cstr(&out, "t"));
    P(mp_put_u64(&out, 1));
    for (int i = 0; i < 10000; i++) {
        P(mp_put_array(&out, 1));
    }
    P(mp_put_nil(&out));
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), -EPROTO);
    buf_release(&entries);
    buf_release(&out);
    buf_release(&rec);
}

/* [tag, [entries], ...] or [tag, bin(entries)] around entry bytes; decoding must succeed
 * and the iterator must return n good events and then err. */
static void expect_bad_entries(const void *p, size_t len, int good, int err)
{
    struct buf out;
    struct forward_msg m;
    struct forward_iter it;
    int64_t t;
    struct span r;

    buf_init(&out, MAXF);
    for (int packed = 0; packed <= 1; packed++) {
        buf_reset(&out);
        P(mp_put_array(&out, 2));
        P(mp_put_cstr(&out, "t"));
        if (packed) {
            P(mp_put_bin(&out, p, len));
        } else {
            /* Forward mode only holds whole values: skip the cut-entry cases. */
            struct span s = { p, len };
            uint32_t n = 0;
            while (s.n > 0 && mp_skip(&s) == 0) {
                n++;
            }
            if (s.n > 0) {
                continue;
            }
            P(mp_put_array(&out, n));
            P(buf_append(&out, p, len));
        }
        assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
        P(forward_iter_init(&it, &m, NULL));
        for (int i = 0; i < good; i++) {
            assert_int_equal(forward_iter_next(&it, &t, &r), 1);
        }
        assert_int_equal(forward_iter_next(&it, &t, &r), err);
        assert_int_equal(forward_iter_next(&it, &t, &r), err); /* sticky */
    }
    buf_release(&out);
}

#define BAD_ENTRIES(arr, good, err) expect_bad_entries((arr), sizeof(arr), (good), (err))

static void test_bad_entries(void **state)
{
    (void)state;
    const uint8_t not_array[] = { 0x01 };
    const uint8_t one[] = { 0x91, 0x01 };
    const uint8_t three[] = { 0x93, 0x01, 0x80, 0x80 };
    const uint8_t rec_arr[] = { 0x92, 0x01, 0x90 };
    const uint8_t rec_nil[] = { 0x92, 0x01, 0xc0 };
    const uint8_t time_str[] = { 0x92, 0xa1, '1', 0x80 };
    const uint8_t time_neg[] = { 0x92, 0xff, 0x80 };
    const uint8_t meta_not_map[] = { 0x92, 0x92, 0x01, 0x90, 0x80 };
    const uint8_t meta_three[] = { 0x92, 0x93, 0x01, 0x80, 0x80, 0x80 };
    const uint8_t meta_nested[] = { 0x92, 0x92, 0x92, 0x01, 0x80, 0x80, 0x80 };
    const uint8_t good_then_bad[] = { 0x92, 0x01, 0x80, 0x92, 0x02, 0x80, 0x92, 0x03, 0x01 };
    const uint8_t good_then_cut[] = { 0x92, 0x01, 0x80, 0x92, 0x02, 0x81, 0xa1 };
    const uint8_t good_then_c1[] = { 0x92, 0x01, 0x80, 0xc1 };
    const uint8_t cut_claim[] = { 0x92, 0x01, 0xdf, 0xff, 0xff, 0xff, 0xff };

    BAD_ENTRIES(not_array, 0, -EPROTO);
    BAD_ENTRIES(one, 0, -EPROTO);
    BAD_ENTRIES(three, 0, -EPROTO);
    BAD_ENTRIES(rec_arr, 0, -EPROTO);
    BAD_ENTRIES(rec_nil, 0, -EPROTO);
    BAD_ENTRIES(time_str, 0, -EPROTO);
    BAD_ENTRIES(time_neg, 0, -EPROTO);
    BAD_ENTRIES(meta_not_map, 0, -EPROTO);
    BAD_ENTRIES(meta_three, 0, -EPROTO);
    BAD_ENTRIES(meta_nested, 0, -EPROTO);
    BAD_ENTRIES(good_then_bad, 2, -EPROTO);
    BAD_ENTRIES(good_then_cut, 1, -EPROTO);
    BAD_ENTRIES(good_then_c1, 1, -EPROTO);
    BAD_ENTRIES(cut_claim, 0, -EPROTO);

    /* A Forward-mode "entries" value that is not an array cannot come from the
     * decoder, but the iterator does not trust its caller's struct either. */
    struct forward_msg m;
    struct forward_iter it;
    int64_t t;
    struct span r;
    memset(&m, 0, sizeof(m));
    m.mode = FORWARD_FORWARD;
    m.entries = (struct span){ (const uint8_t *)"\x80", 1 };
    assert_int_equal(forward_iter_init(&it, &m, NULL), -EPROTO);
    assert_int_equal(forward_iter_next(&it, &t, &r), -EPROTO);
}

/* A compressed message whose entries are n copies of one entry with a long string. */
static void make_bomb(struct buf *out, struct buf *entries, int n, size_t strlen_)
{
    struct buf rec;
    char *s = malloc(strlen_);

    assert_non_null(s);
    memset(s, 'A', strlen_);
    buf_init(&rec, MAXF * 8);
    P(mp_put_map(&rec, 1));
    P(mp_put_cstr(&rec, "log"));
    P(mp_put_str(&rec, s, strlen_));
    buf_init(entries, (size_t)MAXF * 64);
    for (int i = 0; i < n; i++) {
        P(forward_encode_entry(entries, T1, buf_span(&rec)));
    }
    buf_init(out, MAXF);
    P(forward_encode_compressed(out, SPAN_LIT("bomb"), buf_span(entries), (uint32_t)n,
                                SPAN_LIT("b")));
    buf_release(&rec);
    free(s);
}

static void test_gzip_bomb(void **state)
{
    struct buf out;
    struct buf entries;
    struct buf scratch;
    struct forward_msg m;
    struct forward_iter it;
    int64_t t;
    struct span r;
    (void)state;

    /* 32 MiB of 'A' compresses to ~32 KiB: the scratch limit stops it at 1 MiB. */
    make_bomb(&out, &entries, 32, 1u << 20);
    assert_true(out.len < 100 * 1024);
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    assert_int_equal(m.mode, FORWARD_COMPRESSED);
    buf_init(&scratch, MAXF);
    assert_int_equal(forward_iter_init(&it, &m, &scratch), VG_ELIMIT);
    assert_int_equal(forward_iter_next(&it, &t, &r), VG_ELIMIT);
    assert_int_equal(scratch.len, 0);
    assert_true(scratch.cap <= MAXF + 1);
    assert_true(buf_check(&scratch));
    buf_release(&scratch);

    /* The limit is exact: max = the decompressed size passes, one byte less does not. */
    buf_init(&scratch, entries.len);
    P(forward_iter_init(&it, &m, &scratch));
    assert_true(span_eq(buf_span(&scratch), buf_span(&entries)));
    int n = 0;
    while (forward_iter_next(&it, &t, &r) == 1) {
        n++;
    }
    assert_int_equal(n, 32);
    assert_int_equal(it.err, 0);
    buf_release(&scratch);
    buf_init(&scratch, entries.len - 1);
    assert_int_equal(forward_iter_init(&it, &m, &scratch), VG_ELIMIT);
    buf_release(&scratch);
    buf_init(&scratch, 0);
    assert_int_equal(forward_iter_init(&it, &m, &scratch), VG_ELIMIT);
    buf_release(&scratch);
    buf_release(&entries);
    buf_release(&out);
}

/* [tag, bin(gz), {"compressed": "gzip"}] */
static void make_compressed(struct buf *out, struct span gz)
{
    buf_reset(out);
    P(mp_put_array(out, 3));
    P(mp_put_cstr(out, "t"));
    P(mp_put_bin(out, gz.p, gz.n));
    P(mp_put_map(out, 1));
    P(mp_put_cstr(out, "compressed"));
    P(mp_put_cstr(out, "gzip"));
}

static int iter_init_on(struct span gz, struct buf *scratch, struct forward_iter *it)
{
    struct buf out;
    struct forward_msg m;

    buf_init(&out, MAXF);
    make_compressed(&out, gz);
    assert_int_equal(forward_decode(buf_span(&out), &m, MAXF), (ssize_t)out.len);
    assert_int_equal(m.mode, FORWARD_COMPRESSED);
    int rc = forward_iter_init(it, &m, scratch);
    buf_release(&out);
    return rc;
}

static void test_gzip_members(void **state)
{
    struct buf entries;
    struct buf recs;
    struct buf one;
    struct buf gz;
    struct buf scratch;
    struct span rec[3];
    struct forward_msg m;
    struct forward_iter it;
    int64_t t;
    struct span r;
    (void)state;

    make_entries(&entries, &recs, rec);
    buf_init(&one, MAXF);
    buf_init(&gz, MAXF);
    buf_init(&scratch, MAXF);
    /* Two members: all the entries, then the first entry again. */
    P(forward_encode_compressed(&one, SPAN_LIT("t"), buf_span(&entries), 3, SPAN_LIT("")));
    assert_int_equal(forward_decode(buf_span(&one), &m, MAXF), (ssize_t)one.len);
    P(buf_append(&gz, m.entries.p, m.entries.n));
    struct span first_entry = { entries.data, 0 };
    {
        struct span s = buf_span(&entries);
        P(mp_skip(&s));
        first_entry.n = (size_t)(s.p - entries.data);
    }
    buf_reset(&one);
    P(forward_encode_compressed(&one, SPAN_LIT("t"), first_entry, 1, SPAN_LIT("")));
    assert_int_equal(forward_decode(buf_span(&one), &m, MAXF), (ssize_t)one.len);
    P(buf_append(&gz, m.entries.p, m.entries.n));
    size_t member2 = m.entries.n;

    P(iter_init_on(buf_span(&gz), &scratch, &it));
    const int64_t want_t[] = { T1, T2, T3, T1 };
    const struct span want_r[] = { rec[0], rec[1], rec[2], rec[0] };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(forward_iter_next(&it, &t, &r), 1);
        assert_int_equal(t, want_t[i]);
        assert_true(span_eq(r, want_r[i]));
    }
    assert_int_equal(forward_iter_next(&it, &t, &r), 0);

    /* Cut anywhere inside the last member. */
    for (size_t cut = 1; cut <= member2; cut++) {
        if (iter_init_on((struct span){ gz.data, gz.len - cut }, &scratch, &it) != -EPROTO &&
            cut != member2) {
            fail_msg("gzip cut by %zu accepted", cut);
        }
    }
    /* Trailing garbage after a member, and a corrupt byte. */
    P(buf_append(&gz, "xyz", 3));
    assert_int_equal(iter_init_on(buf_span(&gz), &scratch, &it), -EPROTO);
    assert_int_equal(forward_iter_next(&it, &t, &r), -EPROTO);
    gz.len -= 3;
    gz.data[gz.len / 2] ^= 0x55;
    assert_int_equal(iter_init_on(buf_span(&gz), &scratch, &it), -EPROTO);
    assert_int_equal(scratch.len, 0);
    /* Empty, or not gzip at all. */
    assert_int_equal(iter_init_on((struct span){ NULL, 0 }, &scratch, &it), -EPROTO);
    assert_int_equal(iter_init_on(buf_span(&entries), &scratch, &it), -EPROTO);
    assert_true(buf_check(&scratch));
    buf_release(&scratch);
    buf_release(&gz);
    buf_release(&one);
    buf_release(&entries);
    buf_release(&recs);
}

static void test_ack(void **state)
{
    struct buf out;
    struct span chunk;
    (void)state;

    buf_init(&out, MAXF);
    P(forward_encode_ack(&out, SPAN_LIT("chunk-id-1"), 0));
    assert_true(buf_check(&out));
    /* {"ack": "chunk-id-1"} as str, whatever the chunk arrived as. */
    assert_int_equal(out.data[0], 0x81);
    assert_int_equal(forward_decode_ack(buf_span(&out), &chunk, NULL), (ssize_t)out.len);
    assert_true(span_eq_str(chunk, "chunk-id-1"));
    for (size_t i = 0; i < out.len; i++) {
        assert_int_equal(forward_decode_ack((struct span){ out.data, i }, &chunk, NULL), 0);
    }
    /* Two acks back to back: one at a time. */
    size_t one = out.len;
    P(forward_encode_ack(&out, SPAN_LIT("2"), 0));
    assert_int_equal(forward_decode_ack(buf_span(&out), &chunk, NULL), (ssize_t)one);
    assert_true(span_eq_str(chunk, "chunk-id-1"));

    /* bin id, other keys. */
    buf_reset(&out);
    P(mp_put_map(&out, 2));
    P(mp_put_cstr(&out, "x"));
    P(mp_put_array(&out, 1));
    P(mp_put_u64(&out, 1));
    P(mp_put_cstr(&out, "ack"));
    P(mp_put_bin(&out, "id", 2));
    assert_int_equal(forward_decode_ack(buf_span(&out), &chunk, NULL), (ssize_t)out.len);
    assert_true(span_eq_str(chunk, "id"));

    /* The count of entries kept as rejections, said only when there are some. */
    buf_reset(&out);
    uint64_t rejected = 99;
    P(forward_encode_ack(&out, SPAN_LIT("c-7"), 3));
    assert_int_equal(out.data[0], 0x82);
    assert_int_equal(forward_decode_ack(buf_span(&out), &chunk, &rejected), (ssize_t)out.len);
    assert_true(span_eq_str(chunk, "c-7"));
    assert_int_equal(rejected, 3);
    buf_reset(&out);
    P(forward_encode_ack(&out, SPAN_LIT("c-8"), 0));
    assert_int_equal(forward_decode_ack(buf_span(&out), &chunk, &rejected), (ssize_t)out.len);
    assert_int_equal(rejected, 0);
    const uint8_t bad_count[] = { 0x82, 0xa3, 'a', 'c', 'k', 0xa1, 'x', 0xa8, 'r',
                                  'e',  'j',  'e', 'c', 't', 'e',  'd', 0xa1, 'n' };
    assert_int_equal(
        forward_decode_ack((struct span){ bad_count, sizeof(bad_count) }, &chunk, &rejected),
        -EPROTO);

    /* Not an ack. */
    const uint8_t arr[] = { 0x91, 0x01 };
    const uint8_t noack[] = { 0x81, 0xa1, 'x', 0xa1, 'y' };
    const uint8_t ack_int[] = { 0x81, 0xa3, 'a', 'c', 'k', 0x01 };
    const uint8_t c1[] = { 0x81, 0xc1 };
    const uint8_t map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
    assert_int_equal(forward_decode_ack((struct span){ arr, 1 }, &chunk, NULL), -EPROTO);
    assert_int_equal(forward_decode_ack((struct span){ arr, sizeof(arr) }, &chunk, NULL), -EPROTO);
    assert_int_equal(forward_decode_ack((struct span){ noack, sizeof(noack) }, &chunk, NULL),
                     -EPROTO);
    assert_int_equal(forward_decode_ack((struct span){ ack_int, sizeof(ack_int) }, &chunk, NULL),
                     -EPROTO);
    assert_int_equal(forward_decode_ack((struct span){ c1, sizeof(c1) }, &chunk, NULL), -EPROTO);
    assert_int_equal(forward_decode_ack((struct span){ map32, sizeof(map32) }, &chunk, NULL),
                     -EPROTO);
    assert_int_equal(forward_decode_ack((struct span){ NULL, 0 }, &chunk, NULL), 0);
    /* Longer than FORWARD_ACK_MAX. */
    buf_reset(&out);
    char big[FORWARD_ACK_MAX];
    memset(big, 'x', sizeof(big));
    P(forward_encode_ack(&out, (struct span){ (const uint8_t *)big, sizeof(big) }, 0));
    assert_int_equal(forward_decode_ack(buf_span(&out), &chunk, NULL), -EPROTO);
    /* ... which its str16 header already says. */
    assert_int_equal(forward_decode_ack((struct span){ out.data, 100 }, &chunk, NULL), -EPROTO);
    buf_release(&out);
}

static void test_encoder_errors(void **state)
{
    struct buf recs;
    struct buf out;
    struct buf entries;
    struct span none = { NULL, 0 };
    (void)state;

    buf_init(&recs, MAXF);
    buf_init(&entries, MAXF);
    struct span rec = json_mp(&recs, recs_json[0]);
    struct span arr = json_mp(&recs, "[1,2]");
    rec.p = recs.data;
    arr.p = recs.data + rec.n;
    buf_init(&out, MAXF);

    /* Records that are not exactly one map. */
    assert_int_equal(forward_encode_entry(&entries, T1, arr), -EINVAL);
    assert_int_equal(forward_encode_entry(&entries, T1, none), -EINVAL);
    assert_int_equal(forward_encode_entry(&entries, T1, (struct span){ rec.p, rec.n - 1 }),
                     -EINVAL);
    assert_int_equal(forward_encode_entry(&entries, T1, (struct span){ rec.p, rec.n + 1 }),
                     -EINVAL);
    assert_int_equal(forward_encode_message(&out, SPAN_LIT("t"), T1, arr, none), -EINVAL);
    /* Times EventTime cannot hold. */
    assert_int_equal(forward_encode_entry(&entries, -1, rec), -EINVAL);
    assert_int_equal(forward_encode_entry(&entries, SEC(UINT64_C(1) << 32), rec), -EINVAL);
    assert_int_equal(forward_encode_message(&out, SPAN_LIT("t"), -1, rec, none), -EINVAL);
    assert_int_equal(entries.len, 0);
    assert_int_equal(out.len, 0);

    /* Entries that are not `count` values. */
    P(forward_encode_entry(&entries, T1, rec));
    P(forward_encode_entry(&entries, T2, rec));
    struct span es = buf_span(&entries);
    assert_int_equal(forward_encode_packed(&out, SPAN_LIT("t"), es, 1, none), -EINVAL);
    assert_int_equal(forward_encode_packed(&out, SPAN_LIT("t"), es, 3, none), -EINVAL);
    assert_int_equal(forward_encode_forward(&out, SPAN_LIT("t"), es, 3, none), -EINVAL);
    assert_int_equal(forward_encode_compressed(&out, SPAN_LIT("t"), es, 1, none), -EINVAL);
    assert_int_equal(
        forward_encode_packed(&out, SPAN_LIT("t"), (struct span){ es.p, es.n - 1 }, 2, none),
        -EINVAL);
    assert_int_equal(out.len, 0);

    /* out->max too small: VG_ELIMIT, and out is as it was. */
    struct buf small;
    buf_init(&small, 40);
    P(buf_append(&small, "keep", 4));
    assert_int_equal(forward_encode_packed(&small, SPAN_LIT("t"), es, 2, none), VG_ELIMIT);
    assert_int_equal(forward_encode_forward(&small, SPAN_LIT("t"), es, 2, none), VG_ELIMIT);
    assert_int_equal(forward_encode_message(&small, SPAN_LIT("t"), T1, rec, none), VG_ELIMIT);
    assert_int_equal(forward_encode_compressed(&small, SPAN_LIT("t"), es, 2, none), VG_ELIMIT);
    char id[64];
    memset(id, 'i', sizeof(id));
    assert_int_equal(forward_encode_ack(&small, (struct span){ (const uint8_t *)id, 64 }, 0),
                     VG_ELIMIT);
    struct buf tiny;
    buf_init(&tiny, 8);
    assert_int_equal(forward_encode_entry(&tiny, T1, rec), VG_ELIMIT);
    assert_int_equal(tiny.len, 0);
    assert_int_equal(small.len, 4);
    assert_memory_equal(small.data, "keep", 5);
    assert_true(buf_check(&small));
    assert_true(buf_check(&tiny));
    buf_release(&tiny);
    buf_release(&small);
    buf_release(&out);
    buf_release(&entries);
    buf_release(&recs);
}

/* The seed corpus: real bytes from @fluent-org/logger 1.0.10 in every event mode (with
 * and without acks, integer seconds and EventTime), frames shaped as Fluent Bit, Fluentd
 * and Envoy send them, and malformed input. Each file decodes as recorded here. */
struct seed_result {
    int messages;
    int events;
    ssize_t end; /* what ended the decode loop: 0 (all consumed or need more), or error */
    size_t left; /* bytes not consumed */
    int iter_err;
    int chunks;
    int64_t first_t;
    int64_t second_t;
    struct span first_record;
};

static uint8_t *read_seed(const char *name, size_t *n)
{
    const char *src = getenv("VG_SOURCE_DIR");
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/forward/%s", src ? src : ".", name);
    f = fopen(path, "rb");
    if (!f) {
        fail_msg("cannot open seed '%s'", path);
    }
    uint8_t *data = malloc(1 << 20);
    assert_non_null(data);
    *n = fread(data, 1, 1 << 20, f);
    fclose(f);
    return data;
}

static void run_seed(const uint8_t *data, size_t n, struct buf *scratch, struct seed_result *res)
{
    struct span in = { data, n };
    struct forward_msg m;
    ssize_t rc;

    memset(res, 0, sizeof(*res));
    while ((rc = forward_decode(in, &m, MAXF)) > 0) {
        struct forward_iter it;
        int64_t t;
        struct span r;
        int irc;

        res->messages++;
        res->chunks += m.chunk.n > 0;
        irc = forward_iter_init(&it, &m, scratch);
        while (irc == 0 && (irc = forward_iter_next(&it, &t, &r)) == 1) {
            if (res->events == 0) {
                res->first_t = t;
                res->first_record = r;
            } else if (res->events == 1) {
                res->second_t = t;
            }
            res->events++;
            irc = 0;
        }
        if (irc < 0 && res->iter_err == 0) {
            res->iter_err = irc;
        }
        span_advance(&in, (size_t)rc);
    }
    res->end = rc;
    res->left = in.n;
}

static void test_seed_corpus(void **state)
{
    static const struct {
        const char *name;
        int messages;
        int events;
        ssize_t end;
        int iter_err;
        int chunks;
    } seeds[] = {
        { "fluentbit_forward_eventtime_ack.bin", 1, 3, 0, 0, 1 },
        { "fluentbit_compressed_gzip_ack.bin", 1, 3, 0, 0, 1 },
        { "fluentbit_metadata_entries.bin", 1, 2, 0, 0, 0 },
        { "fluentbit_time_as_integer.bin", 1, 3, 0, 0, 1 },
        { "fluentbit_float_time.bin", 1, 2, 0, 0, 0 },
        { "fluentbit_metrics_message.bin", 1, 1, 0, 0, 0 },
        { "fluentd_packed_str32_text_ack.bin", 1, 3, 0, 0, 1 },
        { "fluentd_packed_str32_gzip.bin", 1, 3, 0, 0, 0 },
        { "envoy_forward_string_options.bin", 1, 1, 0, 0, 0 },
        { "vigil_message_chunk.bin", 1, 1, 0, 0, 1 },
        { "vigil_packed_chunk.bin", 1, 3, 0, 0, 1 },
        { "stream_all_modes.bin", 11, 25, 0, 0, 6 },
        { "gzip_two_members.bin", 1, 6, 0, 0, 0 },
        { "gzip_bomb.bin", 1, 0, 0, VG_ELIMIT, 1 },
        { "bad_gzip_truncated.bin", 1, 0, 0, -EPROTO, 0 },
        { "bad_entry_not_array.bin", 1, 1, 0, -EPROTO, 0 },
        { "packed_cut_entry.bin", 1, 1, 0, -EPROTO, 0 },
        { "bad_arity5.bin", 0, 0, -EPROTO, 0, 0 },
        { "bad_tag_int.bin", 0, 0, -EPROTO, 0, 0 },
        { "bad_option_int.bin", 0, 0, -EPROTO, 0, 0 },
        { "bad_record_array.bin", 0, 0, -EPROTO, 0, 0 },
        { "bad_eventtime_nsec.bin", 0, 0, -EPROTO, 0, 0 },
        { "bad_eventtime_ext4.bin", 0, 0, -EPROTO, 0, 0 },
        { "packed_zstd.bin", 0, 0, -EPROTO, 0, 0 },
        { "deep_nesting.bin", 0, 0, -EPROTO, 0, 0 },
        { "helo.bin", 0, 0, -EPROTO, 0, 0 },
        { "tls_clienthello.bin", 0, 0, -EPROTO, 0, 0 },
        { "http_request.bin", 0, 0, -EPROTO, 0, 0 },
        { "ack_two.bin", 0, 0, -EPROTO, 0, 0 },
        { "huge_array32.bin", 0, 0, VG_ELIMIT, 0, 0 },
        { "huge_bin32.bin", 0, 0, VG_ELIMIT, 0, 0 },
        { "huge_map32_record.bin", 0, 0, VG_ELIMIT, 0, 0 },
        { "truncated_message.bin", 0, 0, 0, 0, 0 },
    };
    struct buf scratch;
    struct seed_result res;
    size_t n;
    (void)state;

    buf_init(&scratch, MAXF);
    for (size_t i = 0; i < VG_ARRAY_LEN(seeds); i++) {
        uint8_t *data = read_seed(seeds[i].name, &n);
        run_seed(data, n, &scratch, &res);
        if (res.messages != seeds[i].messages || res.events != seeds[i].events ||
            res.end != seeds[i].end || res.iter_err != seeds[i].iter_err ||
            res.chunks != seeds[i].chunks ||
            (res.left > 0) != (seeds[i].end != 0 || seeds[i].messages == 0)) {
            fail_msg("%s: messages %d events %d end %zd left %zu iter_err %d chunks %d",
                     seeds[i].name, res.messages, res.events, res.end, res.left, res.iter_err,
                     res.chunks);
        }
        free(data);
    }

    /* @fluent-org/logger: emit(rec, Date(1700000000123)), emit(.., EventTime(1700000001,
     * 123456789)), emit(.., now); milliseconds:false sends integer seconds. */
    static const char *const modes[] = { "Message", "Forward", "PackedForward",
                                         "CompressedPackedForward" };
    for (int mode = 0; mode < 4; mode++) {
        for (int ack = 0; ack <= 1; ack++) {
            for (int et = 0; et <= 1; et++) {
                char name[128];
                snprintf(name, sizeof(name), "nodelogger_%s%s%s.bin", modes[mode],
                         ack ? "_ack" : "", et ? "_eventtime" : "_intsec");
                uint8_t *data = read_seed(name, &n);
                run_seed(data, n, &scratch, &res);
                if (res.events != 3 || res.end != 0 || res.left != 0 || res.iter_err != 0 ||
                    res.messages < 1 || res.chunks != (ack ? res.messages : 0)) {
                    fail_msg("%s: messages %d events %d end %zd left %zu iter_err %d chunks %d",
                             name, res.messages, res.events, res.end, res.left, res.iter_err,
                             res.chunks);
                }
                assert_int_equal(res.first_t, et ? SEC(1700000000) + 123000000 : SEC(1700000000));
                assert_int_equal(res.second_t, SEC(1700000001) + 123456789);
                struct span log;
                struct span s;
                assert_int_equal(mp_map_get(res.first_record, SPAN_LIT("log"), &log), 1);
                assert_true(mp_get_str(log, &s));
                assert_true(span_starts_with(s, SPAN_LIT("sshd[812]: Failed password")));
                free(data);
            }
        }
    }

    /* The ack seed through the client's decoder. */
    uint8_t *data = read_seed("ack_two.bin", &n);
    struct span in = { data, n };
    struct span chunk;
    ssize_t rc = forward_decode_ack(in, &chunk, NULL);
    assert_true(rc > 0);
    assert_true(span_eq_str(chunk, "5f2b0c9a1e7d4c3b8a6f0e1d2c3b4a59"));
    span_advance(&in, (size_t)rc);
    assert_int_equal(forward_decode_ack(in, &chunk, NULL), (ssize_t)in.n);
    assert_true(span_eq_str(chunk, "c-2"));
    free(data);
    buf_release(&scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_roundtrip),
        cmocka_unit_test(test_forward_roundtrip),
        cmocka_unit_test(test_packed_roundtrip),
        cmocka_unit_test(test_compressed_roundtrip),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_entry_shapes),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_malformed_shape),
        cmocka_unit_test(test_garbage_rejected_early),
        cmocka_unit_test(test_huge_claims),
        cmocka_unit_test(test_max_frame),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_gzip_members),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_encoder_errors),
        cmocka_unit_test(test_seed_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
