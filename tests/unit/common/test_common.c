/* Unit tests for common/: buf invariants, the bounded msgpack cursor, time parsing and
 * formatting, JSON <-> msgpack, CIDR ranges at their boundaries. */
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
#include "common/ip.h"
#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"

static void test_buf_limits_and_invariants(void **state)
{
    struct buf b;
    (void)state;

    buf_init(&b, 10);
    assert_true(buf_check(&b));
    assert_int_equal(buf_append(&b, "hello", 5), 0);
    assert_true(buf_check(&b));
    assert_string_equal(buf_cstr(&b), "hello");
    assert_int_equal(buf_append(&b, "world", 5), 0);
    assert_int_equal(b.len, 10);
    assert_int_equal(buf_append(&b, "!", 1), VG_ELIMIT);
    assert_int_equal(b.len, 10);
    assert_true(buf_check(&b));
    buf_consume(&b, 3);
    assert_string_equal(buf_cstr(&b), "loworld");
    assert_true(buf_check(&b));
    assert_int_equal(buf_appendf(&b, "%d", 123), 0);
    assert_string_equal(buf_cstr(&b), "loworld123");
    assert_int_equal(buf_appendf(&b, "x"), VG_ELIMIT);
    buf_reset(&b);
    assert_int_equal(buf_append_escaped(&b, (struct span){ (const uint8_t *)"a\x01", 2 }, 8), 0);
    assert_string_equal(buf_cstr(&b), "a\\x01");
    size_t n;
    uint8_t *p = buf_detach(&b, &n);
    assert_int_equal(n, 5);
    assert_true(buf_check(&b));
    free(p);
    buf_release(&b);
}

static void test_mp_rejects_huge_claims(void **state)
{
    const uint8_t arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };      /* array32 of 2^32-1 */
    const uint8_t str32[] = { 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a' }; /* 2 GiB string */
    const uint8_t bad[] = { 0xc1 };
    (void)state;

    assert_int_equal(mp_value_len((struct span){ arr32, sizeof(arr32) }, 1 << 20, 8), VG_ELIMIT);
    assert_int_equal(mp_value_len((struct span){ str32, sizeof(str32) }, 1 << 20, 8), VG_ELIMIT);
    assert_int_equal(mp_value_len((struct span){ bad, 1 }, 1 << 20, 8), -EPROTO);
    /* A prefix of a valid value within the limit is "need more". */
    const uint8_t part[] = { 0x92, 0x01 };
    assert_int_equal(mp_value_len((struct span){ part, 2 }, 1 << 20, 8), 0);
    /* Depth is bounded. */
    uint8_t deep[40];
    memset(deep, 0x91, sizeof(deep));
    deep[39] = 0xc0;
    assert_int_equal(mp_value_len((struct span){ deep, 40 }, 1 << 20, 8), -EPROTO);
    assert_int_equal(mp_value_len((struct span){ deep, 40 }, 1 << 20, 64), 40);
    struct span s = { deep, 39 };
    assert_int_equal(mp_skip(&s), -EPROTO);
}

static void test_mp_round_trip_and_lookup(void **state)
{
    struct buf b;
    struct span v;
    struct span str;
    int64_t i;
    (void)state;

    buf_init(&b, 1 << 16);
    assert_int_equal(mp_put_map(&b, 3), 0);
    assert_int_equal(mp_put_cstr(&b, "list"), 0);
    assert_int_equal(mp_put_array(&b, 2), 0);
    assert_int_equal(mp_put_i64(&b, -5), 0);
    assert_int_equal(mp_put_u64(&b, UINT64_MAX), 0);
    assert_int_equal(mp_put_cstr(&b, "big"), 0);
    assert_int_equal(mp_put_i64(&b, 1685022245478445995LL), 0);
    assert_int_equal(mp_put_cstr(&b, "k.with.dots"), 0);
    assert_int_equal(mp_put_cstr(&b, "v"), 0);
    struct span all = buf_span(&b);
    assert_int_equal(mp_value_len(all, all.n, 8), (ssize_t)all.n);
    assert_int_equal(mp_map_get(all, SPAN_LIT("big"), &v), 1);
    assert_true(mp_get_i64(v, &i));
    assert_true(i == 1685022245478445995LL);
    assert_int_equal(mp_map_get(all, SPAN_LIT("k.with.dots"), &v), 1);
    assert_true(mp_get_str(v, &str));
    assert_true(span_eq_str(str, "v"));
    assert_int_equal(mp_map_get(all, SPAN_LIT("nope"), &v), 0);
    /* Truncated map: malformed for lookups. */
    assert_int_equal(mp_map_get((struct span){ all.p, all.n - 1 }, SPAN_LIT("nope"), &v), -EPROTO);
    buf_release(&b);
}

/* The headers mp_put_* write by hand are the smallest form for each length, as
 * msgpack-c's packer writes them (msgpack spec "Formats"), at every boundary; each reads
 * back through mp_read (inline forms and mp__read_any alike) and mp_value_len. */
static void test_mp_header_forms(void **state)
{
    static const struct {
        size_t n;
        uint8_t str[5], bin[5], map[5];
        size_t hn_str, hn_bin, hn_map;
    } cases[] = {
        { 0, { 0xa0 }, { 0xc4, 0 }, { 0x80 }, 1, 2, 1 },
        { 15, { 0xaf }, { 0xc4, 15 }, { 0x8f }, 1, 2, 1 },
        { 16, { 0xb0 }, { 0xc4, 16 }, { 0xde, 0, 16 }, 1, 2, 3 },
        { 31, { 0xbf }, { 0xc4, 31 }, { 0xde, 0, 31 }, 1, 2, 3 },
        { 32, { 0xd9, 32 }, { 0xc4, 32 }, { 0xde, 0, 32 }, 2, 2, 3 },
        { 255, { 0xd9, 255 }, { 0xc4, 255 }, { 0xde, 0, 255 }, 2, 2, 3 },
        { 256, { 0xda, 1, 0 }, { 0xc5, 1, 0 }, { 0xde, 1, 0 }, 3, 3, 3 },
        { 65535, { 0xda, 0xff, 0xff }, { 0xc5, 0xff, 0xff }, { 0xde, 0xff, 0xff }, 3, 3, 3 },
        { 65536, { 0xdb, 0, 1, 0, 0 }, { 0xc6, 0, 1, 0, 0 }, { 0xdf, 0, 1, 0, 0 }, 5, 5, 5 },
    };
    uint8_t *payload = calloc(1, 65536);
    struct buf b;
    struct mp_obj o;
    (void)state;

    assert_non_null(payload);
    memset(payload, 'x', 65536);
    buf_init(&b, 1 << 20);
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        size_t n = cases[i].n;

        buf_reset(&b);
        assert_int_equal(mp_put_str(&b, payload, n), 0);
        assert_true(buf_check(&b));
        assert_int_equal(b.len, cases[i].hn_str + n);
        assert_memory_equal(b.data, cases[i].str, cases[i].hn_str);
        struct span in = buf_span(&b);
        assert_int_equal(mp_read(&in, &o), 1);
        assert_int_equal(o.type, MP_STR);
        assert_int_equal(o.v.s.n, n);
        assert_true(o.v.s.p == b.data + cases[i].hn_str);
        assert_int_equal(in.n, 0);
        assert_int_equal(mp_value_len(buf_span(&b), b.len, 1), (ssize_t)b.len);
        /* one byte short: need more, the cursor untouched */
        in = (struct span){ b.data, b.len - 1 };
        if (b.len > 1) {
            assert_int_equal(mp_read(&in, &o), 0);
            assert_int_equal(in.n, b.len - 1);
            assert_int_equal(mp_value_len(in, b.len, 1), 0);
        }
        /* a limit one byte below the value's length */
        assert_int_equal(mp_value_len(buf_span(&b), b.len - 1, 1), VG_ELIMIT);

        buf_reset(&b);
        assert_int_equal(mp_put_bin(&b, payload, n), 0);
        assert_int_equal(b.len, cases[i].hn_bin + n);
        assert_memory_equal(b.data, cases[i].bin, cases[i].hn_bin);
        in = buf_span(&b);
        assert_int_equal(mp_read(&in, &o), 1);
        assert_int_equal(o.type, MP_BIN);
        assert_int_equal(o.v.s.n, n);

        buf_reset(&b);
        assert_int_equal(mp_put_map(&b, (uint32_t)n), 0);
        assert_int_equal(b.len, cases[i].hn_map);
        assert_memory_equal(b.data, cases[i].map, cases[i].hn_map);
        in = buf_span(&b);
        assert_int_equal(mp_read(&in, &o), 1);
        assert_int_equal(o.type, MP_MAP);
        assert_int_equal(o.v.count, n);

        buf_reset(&b);
        assert_int_equal(mp_put_array(&b, (uint32_t)n), 0);
        assert_int_equal(b.len, cases[i].hn_map);
        assert_int_equal(b.data[0], n < 16 ? 0x90 | n : n <= 65535 ? 0xdc : 0xdd);
        in = buf_span(&b);
        assert_int_equal(mp_read(&in, &o), 1);
        assert_int_equal(o.type, MP_ARRAY);
        assert_int_equal(o.v.count, n);
    }
    /* Past the buffer's max: VG_ELIMIT and nothing written. */
    struct buf small;
    buf_init(&small, 8);
    assert_int_equal(mp_put_str(&small, payload, 8), VG_ELIMIT);
    assert_int_equal(small.len, 0);
    assert_int_equal(mp_put_str(&small, payload, 7), 0);
    assert_int_equal(small.len, 8);
    buf_release(&small);
    /* Scalars on the inline path and at the very end of the input (one byte left). */
    const uint8_t scalars[] = { 0x05, 0x7f, 0xff, 0xc0, 0xc3, 0x91, 0x01, 0x81, 0xa1, 'k', 0x00 };
    assert_int_equal(mp_value_len((struct span){ scalars, 1 }, 16, 1), 1);
    struct span in = { scalars, sizeof(scalars) };
    assert_int_equal(mp_read(&in, &o), 1);
    assert_true(o.type == MP_UINT && o.v.u == 5);
    assert_int_equal(mp_read(&in, &o), 1);
    assert_true(o.type == MP_UINT && o.v.u == 0x7f);
    assert_int_equal(mp_read(&in, &o), 1);
    assert_true(o.type == MP_INT && o.v.i == -1);
    assert_int_equal(mp_read(&in, &o), 1);
    assert_int_equal(o.type, MP_NIL);
    assert_int_equal(mp_read(&in, &o), 1);
    assert_true(o.type == MP_BOOL && o.v.b);
    assert_int_equal(mp_value_len(in, in.n, 4), 2); /* [1] */
    assert_int_equal(mp_value_len((struct span){ in.p + 2, in.n - 2 }, 16, 4), 4); /* {"k": 0} */
    in = (struct span){ scalars + sizeof(scalars) - 1, 1 };
    assert_int_equal(mp_read(&in, &o), 1);
    assert_true(o.type == MP_UINT && o.v.u == 0 && in.n == 0);
    assert_int_equal(mp_read(&in, &o), 0);
    buf_release(&b);
    free(payload);
}

static void test_time_parse_and_format(void **state)
{
    int64_t ns;
    char out[40];
    (void)state;

    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("2023-05-25T13:44:05.478445995Z"), &ns), 0);
    assert_true(ns == 1685022245478445995LL);
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("2023-11-14T00:20:42.738197+01:00"), &ns), 0);
    vg_time_format(ns, 6, out, sizeof(out));
    assert_string_equal(out, "2023-11-13T23:20:42.738197Z");
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("2024-05-01"), &ns), 0);
    assert_true(ns == 1714521600LL * VG_NS_PER_SEC);
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("1969-12-31T23:59:59.5Z"), &ns), 0);
    assert_true(ns == -500000000LL);
    vg_time_format(ns, 3, out, sizeof(out));
    assert_string_equal(out, "1969-12-31T23:59:59.500Z");
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("2023-02-29T00:00:00Z"), &ns), VG_EPARSE);
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("2024-02-29T00:00:00Z"), &ns), 0);
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("9999-01-01T00:00:00Z"), &ns), VG_EPARSE);
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("2024-13-01"), &ns), VG_EPARSE);
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("2024-05-01T25:00Z"), &ns), VG_EPARSE);
    assert_int_equal(vg_time_parse_rfc3339(SPAN_LIT("2024-05-01T10:00:00Zjunk"), &ns), VG_EPARSE);
    assert_int_equal(vg_duration_parse(SPAN_LIT("15m"), &ns), 0);
    assert_true(ns == 900LL * VG_NS_PER_SEC);
    assert_int_equal(vg_duration_parse(SPAN_LIT("7d"), &ns), 0);
    assert_int_equal(vg_duration_parse(SPAN_LIT("m"), &ns), VG_EPARSE);
    assert_int_equal(vg_duration_parse(SPAN_LIT("3 h"), &ns), VG_EPARSE);
    assert_int_equal(vg_time_parse_arg("2h", 10 * 3600 * VG_NS_PER_SEC, &ns), 0);
    assert_true(ns == 8 * 3600 * VG_NS_PER_SEC);
}

/* Containers get the header a packer that knew the count writes: fix forms below 16
 * elements, 16-bit counts from 16, 32-bit from 65536, nested and side by side (an inner
 * container widened after its parent's header was written, a sibling opened after it). */
static void test_json_container_counts(void **state)
{
    static const uint32_t counts[] = { 0, 1, 15, 16, 17, 65535, 65536 };
    struct buf text;
    struct buf got;
    struct buf want;
    struct errbuf eb;
    size_t used;
    (void)state;

    buf_init(&text, 1 << 22);
    buf_init(&got, 1 << 22);
    buf_init(&want, 1 << 22);
    for (size_t i = 0; i < VG_ARRAY_LEN(counts); i++) {
        uint32_t n = counts[i];
        /* [ {"k0":0,...}, [7,7,...], "end" ]: a map and an array of n, then a string */
        buf_reset(&text);
        buf_reset(&want);
        assert_int_equal(buf_append_str(&text, "[{"), 0);
        assert_int_equal(mp_put_array(&want, 3), 0);
        assert_int_equal(mp_put_map(&want, n), 0);
        for (uint32_t k = 0; k < n; k++) {
            char key[16];
            snprintf(key, sizeof(key), "k%u", k);
            assert_int_equal(buf_appendf(&text, "%s\"%s\":%u", k ? "," : "", key, k % 100), 0);
            assert_int_equal(mp_put_cstr(&want, key), 0);
            assert_int_equal(mp_put_i64(&want, k % 100), 0);
        }
        assert_int_equal(buf_append_str(&text, "},["), 0);
        assert_int_equal(mp_put_array(&want, n), 0);
        for (uint32_t k = 0; k < n; k++) {
            assert_int_equal(buf_append_str(&text, k ? ",7" : "7"), 0);
            assert_int_equal(mp_put_i64(&want, 7), 0);
        }
        assert_int_equal(buf_append_str(&text, "],\"end\"]"), 0);
        assert_int_equal(mp_put_cstr(&want, "end"), 0);
        buf_reset(&got);
        errbuf_clear(&eb);
        assert_int_equal(json_to_mp(buf_span(&text), &got, &used, &eb), 0);
        assert_int_equal(used, text.len);
        assert_true(buf_check(&got));
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
    }
    /* Widening past the output's max is VG_ELIMIT with nothing left behind. */
    struct buf small;
    buf_init(&small, 20);
    assert_int_equal(json_to_mp(SPAN_LIT("[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]"), &small, NULL,
                                NULL),
                     VG_ELIMIT); /* 19 elements: 1 + 19 bytes fit, the 3-byte header not */
    assert_int_equal(small.len, 0);
    buf_release(&small);
    buf_release(&text);
    buf_release(&got);
    buf_release(&want);
}

static void test_json_round_trip(void **state)
{
    const char *doc = "{\"a\":1,\"big\":1685022245478445995,\"s\":\"x\\u00e9\\n\\\"\","
                      "\"l\":[true,false,null,1.5],\"o\":{\"k.dot\":\"v\"}}";
    struct buf mp;
    struct buf js;
    struct errbuf eb;
    size_t used;
    (void)state;

    buf_init(&mp, 1 << 16);
    buf_init(&js, 1 << 16);
    errbuf_clear(&eb);
    assert_int_equal(json_to_mp(span_str(doc), &mp, &used, &eb), 0);
    assert_int_equal(used, strlen(doc));
    assert_int_equal(mp_to_json(buf_span(&mp), &js), 0);
    /* Same document; \u00e9 comes back as UTF-8. */
    assert_string_equal(buf_cstr(&js),
                        "{\"a\":1,\"big\":1685022245478445995,\"s\":\"x\xc3\xa9\\n\\\"\","
                        "\"l\":[true,false,null,1.5],\"o\":{\"k.dot\":\"v\"}}");
    /* Concatenated and pretty-printed documents are walked with `used`. */
    buf_reset(&mp);
    const char *two = "  {\"x\": 1}\n{\n  \"y\": 2\n}\n";
    assert_int_equal(json_to_mp(span_str(two), &mp, &used, &eb), 0);
    struct span rest = { (const uint8_t *)two + used, strlen(two) - used };
    assert_int_equal(json_to_mp(rest, &mp, &used, &eb), 0);
    rest.p += used;
    rest.n -= used;
    assert_int_equal(json_to_mp(rest, &mp, &used, &eb), -ENODATA);
    /* Errors name line and column. */
    assert_int_equal(json_to_mp(SPAN_LIT("{\"a\": tru}"), &mp, &used, &eb), VG_EFORMAT);
    assert_non_null(strstr(errbuf_msg(&eb), "line 1 column"));
    /* Invalid UTF-8 in strings is kept byte for byte: written as lone-surrogate escapes
     * (still JSON), read back as the bytes; valid UTF-8 stays as it is. */
    buf_reset(&mp);
    buf_reset(&js);
    const char bytes[] = "a\xff\x80 \xc3\xa9 \xed\xb2\x80 z\xc3";
    assert_int_equal(mp_put_str(&mp, bytes, sizeof(bytes) - 1), 0);
    assert_int_equal(mp_to_json(buf_span(&mp), &js), 0);
    assert_string_equal(buf_cstr(&js),
                        "\"a\\udcff\\udc80 \xc3\xa9 \\udced\\udcb2\\udc80 z\\udcc3\"");
    struct buf back;
    buf_init(&back, 1024);
    assert_int_equal(json_to_mp(buf_span(&js), &back, &used, &eb), 0);
    assert_int_equal(back.len, mp.len);
    assert_memory_equal(back.data, mp.data, mp.len);
    /* Raw invalid bytes in JSON text are kept too (not refused, not replaced). */
    buf_reset(&back);
    assert_int_equal(json_to_mp(SPAN_LIT("{\"u\":\"r\xf0\x28t\"}"), &back, &used, &eb), 0);
    buf_reset(&js);
    assert_int_equal(mp_to_json(buf_span(&back), &js), 0);
    assert_string_equal(buf_cstr(&js), "{\"u\":\"r\\udcf0(t\"}");
    buf_release(&back);
    buf_release(&mp);
    buf_release(&js);
}

/* A JSON error carries its place as numbers and its reason apart, so callers point at
 * it without reading the sentence back; a document cut off by the end of the text says
 * so. */
static void test_json_error_place(void **state)
{
    struct buf mp;
    struct errbuf eb;
    (void)state;

    buf_init(&mp, 1 << 16);
    errbuf_clear(&eb);
    assert_int_equal(json_to_mp(SPAN_LIT("\n  {\"a\": 1,\n   \"b\": tru x}"), &mp, NULL, &eb),
                     VG_EFORMAT);
    assert_int_equal(eb.pos.line, 3);
    assert_true(eb.pos.column > 1);
    assert_false(eb.pos.at_end);
    assert_non_null(strstr(errbuf_msg(&eb), "line 3 column "));
    assert_non_null(strstr(errbuf_msg(&eb), "lexical error: "));
    assert_null(strstr(errbuf_reason(&eb), "error: "));
    assert_true(strlen(errbuf_reason(&eb)) > 0);
    assert_non_null(strstr(errbuf_msg(&eb), errbuf_reason(&eb)));
    /* Cut off: the text ended inside the value. */
    errbuf_clear(&eb);
    assert_int_equal(json_to_mp(SPAN_LIT("{\"a\": [1, 2"), &mp, NULL, &eb), VG_EFORMAT);
    assert_true(eb.pos.at_end);
    assert_int_equal(eb.pos.line, 1);
    /* A prefix leaves the reason as it was. */
    char reason[160];
    snprintf(reason, sizeof(reason), "%s", errbuf_reason(&eb));
    errbuf_prefix(&eb, "body of request %d", 7);
    assert_string_equal(errbuf_reason(&eb), reason);
    assert_int_equal(strncmp(errbuf_msg(&eb), "body of request 7: line 1 column ", 33), 0);
    /* A plain message: the reason is the message; clearing forgets the place. */
    errbuf_clear(&eb);
    assert_int_equal(eb.pos.line, 0);
    errbuf_set(&eb, "no place %s", "here");
    assert_string_equal(errbuf_reason(&eb), "no place here");
    buf_release(&mp);
}

/* ip_in_net at the edges of prefixes that do not end on a byte (/12, /20, /127), each
 * side of each edge, with the network written canonically or with host bits set. */
static void test_ip_cidr_boundaries(void **state)
{
    static const struct {
        const char *net;
        int bits; /* as written: v4 prefixes count 32 */
        const char *ip;
        bool in;
    } cases[] = {
        { "172.16.0.0", 12, "172.16.0.0", true },
        { "172.16.0.0", 12, "172.31.255.255", true },
        { "172.16.0.0", 12, "172.15.255.255", false },
        { "172.16.0.0", 12, "172.32.0.0", false },
        { "172.20.1.2", 12, "172.31.255.255", true }, /* host bits set */
        { "172.20.1.2", 12, "172.32.0.0", false },
        { "10.1.16.0", 20, "10.1.16.0", true },
        { "10.1.16.0", 20, "10.1.31.255", true },
        { "10.1.16.0", 20, "10.1.15.255", false },
        { "10.1.16.0", 20, "10.1.32.0", false },
        { "10.1.17.9", 20, "10.1.16.0", true },
        { "10.1.17.9", 20, "10.1.32.1", false },
        { "2001:db8::", 127, "2001:db8::", true },
        { "2001:db8::", 127, "2001:db8::1", true },
        { "2001:db8::", 127, "2001:db8::2", false },
        { "2001:db8::", 127, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false },
        { "2001:db8::1", 127, "2001:db8::", true },
        { "10.0.0.0", 0, "255.255.255.255", true },
        { "10.0.0.0", 0, "2001:db8::1", false }, /* v4 /0 is ::ffff:0:0/96 */
        { "10.0.0.1", 32, "10.0.0.1", true },
        { "10.0.0.1", 32, "10.0.0.0", false },
        { "10.0.0.0", 31, "10.0.0.1", true },
        { "10.0.0.0", 31, "10.0.0.2", false },
        { "::", 0, "2001:db8::1", true },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t net[16];
        uint8_t ip[16];
        bool v4;
        assert_true(ip_parse16(span_str(cases[i].net), net, &v4));
        assert_true(ip_parse16(span_str(cases[i].ip), ip, NULL));
        int bits = cases[i].bits + (v4 ? 96 : 0);
        if (ip_in_net(ip, net, bits) != cases[i].in) {
            fail_msg("%s in %s/%d: expected %s", cases[i].ip, cases[i].net, cases[i].bits,
                     cases[i].in ? "yes" : "no");
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ip_cidr_boundaries),
        cmocka_unit_test(test_buf_limits_and_invariants),
        cmocka_unit_test(test_mp_rejects_huge_claims),
        cmocka_unit_test(test_mp_round_trip_and_lookup),
        cmocka_unit_test(test_mp_header_forms),
        cmocka_unit_test(test_time_parse_and_format),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_container_counts),
        cmocka_unit_test(test_json_error_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
