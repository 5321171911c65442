/* tests/unit/query/test_output.c: event output. JSON is checked byte for byte and by
 * parsing it back through json_to_mp; CSV quoting per RFC 4180; the table fits its
 * width, cuts on character boundaries and escapes what could drive a terminal. */
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
#include "common/time.h"
#include "query/output.h"
#include "schemas/record.h"

/* 2024-05-01T11:55:00.123456789Z */
#define TS (1714564500LL * VG_NS_PER_SEC + 123456789)

static const char raw_json[] = "{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{\"d\":-2}}";

struct capture {
    char *text;
    size_t len;
    FILE *f;
};

static void cap_open(struct capture *c)
{
    c->text = NULL;
    c->len = 0;
    c->f = open_memstream(&c->text, &c->len);
    assert_non_null(c->f);
}

static void cap_close(struct capture *c)
{
    fclose(c->f);
}

static void sample(struct rec *r, struct buf *raw)
{
    rec_init(r);
    r->ts = TS;
    r->has_ts = true;
    r->received = TS + VG_NS_PER_SEC;
    r->has_received = true;
    r->seq = 7;
    r->has_seq = true;
    r->dst_port = 443;
    r->has_dst_port = true;
    rec_set(r, VG_F_SOURCE, SPAN_LIT("falco"));
    rec_set(r, VG_F_SEVERITY, SPAN_LIT("notice"));
    rec_set(r, VG_F_NAMESPACE, SPAN_LIT("default"));
    rec_set(r, VG_F_POD, SPAN_LIT("nginx-abc"));
    rec_set(r, VG_F_USER, SPAN_LIT("root"));
    rec_set(r, VG_F_MESSAGE, SPAN_LIT("say \"hi\"\n"));
    buf_init(raw, 1 << 16);
    assert_int_equal(json_to_mp(span_str(raw_json), raw, NULL, NULL), 0);
    r->raw = buf_span(raw);
}

static const char sample_json[] =
    "{\"ts\":\"2024-05-01T11:55:00.123456789Z\",\"received\":\"2024-05-01T11:55:01.123456789Z\","
    "\"seq\":7,\"source\":\"falco\",\"severity\":\"notice\",\"namespace\":\"default\","
    "\"pod\":\"nginx-abc\",\"user\":\"root\",\"dst_port\":443,\"message\":\"say \\\"hi\\\"\\n\","
    "\"raw\":{\"a\":1,\"b\":[true,null,\"x\"],\"c\":{\"d\":-2}}}";

static void test_format_parse(void **state)
{
    enum out_format f;
    (void)state;

    assert_int_equal(out_format_parse("table", &f), 0);
    assert_int_equal(f, OUT_TABLE);
    assert_int_equal(out_format_parse("json", &f), 0);
    assert_int_equal(f, OUT_JSON);
    assert_int_equal(out_format_parse("NDJSON", &f), 0);
    assert_int_equal(f, OUT_NDJSON);
    assert_int_equal(out_format_parse("csv", &f), 0);
    assert_int_equal(f, OUT_CSV);
    assert_int_equal(out_format_parse("yaml", &f), VG_EPARSE);
    assert_int_equal(out_format_parse("", &f), VG_EPARSE);
    assert_int_equal(out_format_parse(NULL, &f), VG_EPARSE);
    assert_string_equal(out_format_name(OUT_NDJSON), "ndjson");
}

static void test_ndjson_exact(void **state)
{
    struct capture c;
    struct rec r;
    struct buf raw;
    (void)state;

    sample(&r, &raw);
    cap_open(&c);
    struct out *o = out_new(OUT_NDJSON, c.f, 0);
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);

    char want[2048];
    snprintf(want, sizeof(want), "%s\n%s\n", sample_json, sample_json);
    assert_string_equal(c.text, want);
    free(c.text);
    buf_release(&raw);
}

static void test_json_roundtrip(void **state)
{
    struct capture c;
    struct rec r;
    struct buf raw;
    struct buf back;
    struct span v;
    struct span s;
    int64_t i;
    (void)state;

    sample(&r, &raw);
    cap_open(&c);
    struct out *o = out_new(OUT_JSON, c.f, 0);
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);

    /* A JSON array, one event per line. */
    char want[2048];
    snprintf(want, sizeof(want), "[\n%s\n]\n", sample_json);
    assert_string_equal(c.text, want);

    buf_init(&back, 1 << 16);
    assert_int_equal(json_to_mp(span_str(c.text), &back, NULL, NULL), 0);
    struct span arr = buf_span(&back);
    struct mp_obj hdr;
    assert_int_equal(mp_read(&arr, &hdr), 1);
    assert_int_equal(hdr.type, MP_ARRAY);
    assert_int_equal(hdr.v.count, 1);
    /* arr now holds the object */
    assert_int_equal(mp_map_get(arr, SPAN_LIT("pod"), &v), 1);
    assert_true(mp_get_str(v, &s) && span_eq_str(s, "nginx-abc"));
    assert_int_equal(mp_map_get(arr, SPAN_LIT("seq"), &v), 1);
    assert_true(mp_get_i64(v, &i) && i == 7);
    assert_int_equal(mp_map_get(arr, SPAN_LIT("ts"), &v), 1);
    assert_true(mp_get_str(v, &s));
    assert_int_equal(vg_time_parse_rfc3339(s, &i), 0);
    assert_int_equal(i, TS);
    assert_int_equal(mp_map_get(arr, SPAN_LIT("message"), &v), 1);
    assert_true(mp_get_str(v, &s) && span_eq_str(s, "say \"hi\"\n"));
    /* raw comes back as the same msgpack */
    assert_int_equal(mp_map_get(arr, SPAN_LIT("raw"), &v), 1);
    assert_true(span_eq(v, r.raw));
    assert_int_equal(mp_map_get(arr, SPAN_LIT("host"), &v), 0);

    buf_release(&back);
    free(c.text);
    buf_release(&raw);
}

static void test_json_empty_and_minimal(void **state)
{
    struct capture c;
    struct rec r;
    (void)state;

    cap_open(&c);
    struct out *o = out_new(OUT_JSON, c.f, 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    assert_string_equal(c.text, "[]\n");
    free(c.text);

    /* No fields at all, then one with a string that is not UTF-8. */
    cap_open(&c);
    o = out_new(OUT_JSON, c.f, 0);
    rec_init(&r);
    assert_int_equal(out_event(o, &r), 0);
    rec_set(&r, VG_F_HOST, SPAN_LIT("h\xff"));
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    /* an invalid byte round-trips as a lone-surrogate escape (schemas/event.yaml) */
    assert_string_equal(c.text, "[\n{},\n{\"host\":\"h\\udcff\"}\n]\n");
    free(c.text);
}

static void test_json_corrupt_raw(void **state)
{
    static const uint8_t bad[] = { 0x82, 0xa1, 'a' }; /* map of 2 that ends early */
    struct capture c;
    struct rec good;
    struct rec r;
    struct buf raw;
    (void)state;

    sample(&good, &raw);
    rec_init(&r);
    rec_set(&r, VG_F_HOST, SPAN_LIT("h"));
    r.raw = (struct span){ bad, sizeof(bad) };

    cap_open(&c);
    struct out *o = out_new(OUT_JSON, c.f, 0);
    assert_int_equal(out_event(o, &r), VG_ECORRUPT);
    assert_int_equal(out_event(o, &good), 0);
    assert_int_equal(out_event(o, &r), VG_ECORRUPT);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    /* nothing of the bad events; still one valid document */
    char want[2048];
    snprintf(want, sizeof(want), "[\n%s\n]\n", sample_json);
    assert_string_equal(c.text, want);
    free(c.text);

    cap_open(&c);
    o = out_new(OUT_NDJSON, c.f, 0);
    assert_int_equal(out_event(o, &r), VG_ECORRUPT);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    assert_int_equal(c.len, 0);
    free(c.text);
    buf_release(&raw);
}

static void test_csv(void **state)
{
    struct capture c;
    struct rec r;
    struct buf raw;
    (void)state;

    sample(&r, &raw);
    rec_set(&r, VG_F_MESSAGE, SPAN_LIT("a,b \"c\"\r\nd"));
    rec_set(&r, VG_F_RULE, SPAN_LIT("plain rule"));
    rec_set(&r, VG_F_HOST, SPAN_LIT("bad\xff"));
    cap_open(&c);
    struct out *o = out_new(OUT_CSV, c.f, 0);
    assert_int_equal(out_event(o, &r), 0);
    rec_init(&r);
    rec_set(&r, VG_F_KIND, SPAN_LIT("k"));
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    assert_string_equal(c.text,
                        "ts,source,kind,severity,host,namespace,pod,user,src_ip,action,outcome,"
                        "rule,message\r\n"
                        "2024-05-01T11:55:00.123456789Z,falco,,notice,bad\\xff,default,"
                        "nginx-abc,root,,,,plain rule,\"a,b \"\"c\"\"\r\nd\"\r\n"
                        ",,k,,,,,,,,,,\r\n");
    free(c.text);

    /* no events: the header alone */
    cap_open(&c);
    o = out_new(OUT_CSV, c.f, 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    assert_string_equal(c.text, "ts,source,kind,severity,host,namespace,pod,user,src_ip,action,"
                                "outcome,rule,message\r\n");
    free(c.text);
    buf_release(&raw);
}

/* Code points in [p, p + n); fails the test on invalid UTF-8. */
static size_t width_of(const char *p, size_t n)
{
    size_t w = 0;

    for (size_t i = 0; i < n;) {
        uint8_t ch = (uint8_t)p[i];
        size_t l = ch < 0x80 ? 1 : (ch & 0xe0) == 0xc0 ? 2 : (ch & 0xf0) == 0xe0 ? 3 : 4;
        assert_true((ch & 0xc0) != 0x80);
        assert_true(i + l <= n);
        for (size_t k = 1; k < l; k++) {
            assert_true(((uint8_t)p[i + k] & 0xc0) == 0x80);
        }
        i += l;
        w++;
    }
    return w;
}

/* Splits text into lines; returns the widest, checks each is valid UTF-8. */
static size_t max_line_width(const char *text, size_t *lines)
{
    size_t best = 0;

    *lines = 0;
    while (*text) {
        const char *nl = strchr(text, '\n');
        assert_non_null(nl);
        size_t w = width_of(text, (size_t)(nl - text));
        best = w > best ? w : best;
        (*lines)++;
        text = nl + 1;
    }
    return best;
}

static char *table_of_m(const struct rec *recs, size_t n, int width, bool measure)
{
    struct capture c;

    cap_open(&c);
    struct out *o = out_new(OUT_TABLE, c.f, width);
    for (size_t i = 0; measure && i < n; i++) {
        out_measure(o, &recs[i]);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out_event(o, &recs[i]), 0);
    }
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    return c.text;
}

static char *table_of(const struct rec *recs, size_t n, int width)
{
    return table_of_m(recs, n, width, false);
}

static void test_table_fits_width(void **state)
{
    static const char long_msg[] =
        "A shell was spawned in a container with an attached terminal and it kept going "
        "well past the edge of any reasonable terminal \xe2\x9c\x93 done";
    struct rec recs[3];
    struct buf raw;
    size_t lines;
    (void)state;

    sample(&recs[0], &raw);
    rec_set(&recs[0], VG_F_MESSAGE, span_str(long_msg));
    rec_set(&recs[0], VG_F_SRC_IP, SPAN_LIT("10.1.2.3"));
    rec_init(&recs[1]);
    rec_set(&recs[1], VG_F_HOST, SPAN_LIT("node-1"));
    rec_set(&recs[1], VG_F_RULE, SPAN_LIT("Terminal shell in container"));
    rec_set(&recs[1], VG_F_SEVERITY, SPAN_LIT("Critical"));
    rec_init(&recs[2]);
    rec_set(&recs[2], VG_F_ACTION, SPAN_LIT("create"));
    rec_set(&recs[2], VG_F_OBJECT, SPAN_LIT("pods/web-1/exec"));
    rec_set(&recs[2], VG_F_SEVERITY, SPAN_LIT("whatever-level"));

    for (int width = 60; width <= 200; width += 20) {
        char *t = table_of(recs, 3, width);
        size_t w = max_line_width(t, &lines);
        assert_true(w <= (size_t)width);
        /* Long messages wrap onto at most three lines each (beside the row, or under it
         * when the terminal is too narrow for a WHAT column), not cut at the first. */
        if (lines < 4 || lines > 13) {
            fail_msg("width %d: %zu lines:\n%s", width, lines, t);
        }
        const char *row = strchr(t, '\n') + 1;
        const char *end = strchr(row, '\n');
        if (width >= 100 && width < 200) {
            /* beside the row: the first line of the long message fills it */
            assert_int_equal(width_of(row, (size_t)(end - row)), (size_t)width);
        }
        /* Its end is there, unless three lines could not hold it: then an ellipsis. */
        assert_true(strstr(t, "\xe2\x9c\x93 done\n") || strstr(t, "\xe2\x80\xa6\n"));
        free(t);
    }

    /* Too narrow to fit: WHERE and WHO keep a few characters, the message goes below. */
    char *t = table_of(recs, 3, 20);
    assert_int_equal(max_line_width(t, &lines), 24 + 1 + 9 + 1 + 6 + 1 + 4 + 1 + 4);
    assert_non_null(strstr(t, "\n  A shell was spawn"));
    free(t);

    t = table_of(recs, 3, 100);
    assert_true(strncmp(t, "TIME                     SOURCE    SEV    WHERE", 47) == 0);
    assert_non_null(strstr(t, "2024-05-01T11:55:00.123Z falco     notice default/nginx-abc "));
    assert_non_null(strstr(t, "root@10.1.2.3"));
    assert_non_null(strstr(t, " crit   node-1"));
    assert_non_null(strstr(t, " whate\xe2\x80\xa6 "));
    assert_non_null(strstr(t, "\n-                        -         "));
    free(t);

    /* Issue 13 item 1: at 100 columns a long pod and a user@address keep every character
     * (out_measure) and the message goes under the row; with shorter ones it wraps
     * beside them. An image-only event (an alert grouped by image) shows its image. */
    rec_set(&recs[0], VG_F_NAMESPACE, SPAN_LIT("cert-manager"));
    rec_set(&recs[0], VG_F_POD, SPAN_LIT("cert-manager-7d9f8b6c4-x2k4q"));
    rec_set(&recs[0], VG_F_USER, SPAN_LIT("alice"));
    rec_init(&recs[2]);
    rec_set(&recs[2], VG_F_IMAGE, SPAN_LIT("registry.example.com/team/api:2.1"));
    rec_set(&recs[2], VG_F_RULE, SPAN_LIT("Critical vulnerability then runtime alert"));
    t = table_of_m(recs, 3, 100, true);
    assert_true(max_line_width(t, &lines) <= 100);
    assert_non_null(
        strstr(t, " cert-manager/cert-manager-7d9f8b6c4-x2k4q alice@10.1.2.3\n  A shell"));
    assert_non_null(strstr(t, " registry.example.com/team/api:2.1 "));
    assert_non_null(strstr(t, "\n  Critical vulnerability then runtime alert\n"));
    free(t);
    rec_set(&recs[0], VG_F_POD, SPAN_LIT("web-1"));
    rec_set(&recs[2], VG_F_IMAGE, SPAN_LIT("nginx:1.25"));
    t = table_of_m(recs, 3, 100, true);
    assert_true(max_line_width(t, &lines) <= 100);
    assert_non_null(strstr(t, " cert-manager/web-1 alice@10.1.2.3 A shell was spawned"));
    assert_non_null(strstr(t, " nginx:1.25         -              Critical vulnerability"));
    free(t);

    /* Not a terminal: the last column is whole. */
    t = table_of(recs, 3, 0);
    assert_non_null(strstr(t, long_msg));
    (void)max_line_width(t, &lines);
    free(t);
    buf_release(&raw);
}

static void test_table_utf8_and_controls(void **state)
{
    struct buf ns;
    struct rec r;
    size_t lines;
    (void)state;

    /* 50 two-byte characters: cut to fit the 40-column WHERE without splitting one */
    buf_init(&ns, 1024);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(buf_append_str(&ns, "\xc3\xa9"), 0);
    }
    rec_init(&r);
    rec_set(&r, VG_F_NAMESPACE, buf_span(&ns));
    rec_set(&r, VG_F_MESSAGE,
            SPAN_LIT("\x1b[31mred\x07 tab\there\n"
                     "next \xe2\x80\xae"
                     "evil \xc2\x9b bad\xff end"));
    char *t = table_of(&r, 1, 0);
    (void)max_line_width(t, &lines);
    assert_int_equal(lines, 2);
    assert_null(strchr(t, '\x1b'));
    assert_null(strchr(t, '\x07'));
    assert_null(strchr(t, '\t'));
    assert_null(strstr(t, "\xe2\x80\xae"));
    assert_null(strstr(t, "\xc2\x9b"));
    assert_non_null(strstr(t, "\\x1b[31mred\\x07 tab here next ?evil \\x9b bad\\xff end\n"));
    /* 39 characters of the namespace, then the ellipsis, then "/" is cut too */
    const char *row = strchr(t, '\n') + 1;
    const char *where = row + 24 + 1 + 9 + 1 + 6 + 1;
    assert_int_equal(width_of(where, strlen("\xc3\xa9") * 39 + 3), 40);
    assert_true(memcmp(where + 2 * 39, "\xe2\x80\xa6", 3) == 0);
    free(t);
    buf_release(&ns);
}

/* --fields: the CSV and table columns follow the list, JSON keeps only those keys, raw
 * paths give their first value (a string as it is, else JSON), absent fields are empty
 * cells ('-' in the table) and no key; bad names are refused with a hint. */
static void test_fields(void **state)
{
    struct out_fields fl;
    struct errbuf eb;
    struct capture c;
    struct rec r;
    struct buf raw;
    (void)state;

    errbuf_clear(&eb);
    assert_int_equal(out_fields_parse("ts,pod,raw.c.d,raw.b,image,seq,raw.zz,dst_port", &fl, &eb),
                     0);
    assert_int_equal(fl.n, 8);
    assert_int_equal(fl.v[2].field, VG_F_RAW);
    assert_string_equal(fl.v[2].path, "c.d");
    sample(&r, &raw);

    cap_open(&c);
    struct out *o = out_new(OUT_NDJSON, c.f, 0);
    out_set_fields(o, &fl);
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    assert_string_equal(c.text, "{\"ts\":\"2024-05-01T11:55:00.123456789Z\",\"pod\":\"nginx-abc\","
                                "\"raw.c.d\":-2,\"raw.b\":[true,null,\"x\"],\"seq\":7,"
                                "\"dst_port\":443}\n");
    free(c.text);

    cap_open(&c);
    o = out_new(OUT_CSV, c.f, 0);
    out_set_fields(o, &fl);
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    assert_string_equal(c.text,
                        "ts,pod,raw.c.d,raw.b,image,seq,raw.zz,dst_port\r\n"
                        "2024-05-01T11:55:00.123456789Z,nginx-abc,-2,\"[true,null,\"\"x\"\"]\","
                        ",7,,443\r\n");
    free(c.text);

    /* A table of exactly those columns, the last one uncut when piped. */
    assert_int_equal(out_fields_parse("pod,user,image,message", &fl, &eb), 0);
    cap_open(&c);
    o = out_new(OUT_TABLE, c.f, 0);
    out_set_fields(o, &fl);
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    assert_string_equal(c.text, "POD                              USER                             "
                                "IMAGE                            MESSAGE\n"
                                "nginx-abc                        root                             "
                                "-                                say \"hi\" \n");
    free(c.text);

    /* On a narrow terminal every column keeps its share; none is dropped. */
    cap_open(&c);
    o = out_new(OUT_TABLE, c.f, 40);
    out_set_fields(o, &fl);
    assert_int_equal(out_event(o, &r), 0);
    assert_int_equal(out_finish(o), 0);
    out_free(o);
    cap_close(&c);
    size_t lines = 0;
    assert_true(max_line_width(c.text, &lines) <= 40);
    assert_non_null(strstr(c.text, "nginx-a"));
    assert_non_null(strstr(c.text, "root"));
    free(c.text);

    static const struct {
        const char *list;
        const char *why;
    } bad[] = {
        { "pod,,user", "empty field name" },
        { "container", "did you mean 'container_id' or 'container_name'?" },
        { "usr", "did you mean 'user'?" },
        { "raw.", "empty key" },
        { "raw.a..b", "empty key" },
        { "nosuchthing", "unknown field 'nosuchthing'" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errbuf_clear(&eb);
        assert_int_equal(out_fields_parse(bad[i].list, &fl, &eb), VG_EPARSE);
        if (!strstr(errbuf_msg(&eb), bad[i].why)) {
            fail_msg("'%s': '%s', expected '%s'", bad[i].list, errbuf_msg(&eb), bad[i].why);
        }
    }
    buf_release(&raw);
}

static void test_write_error(void **state)
{
    struct rec r;
    struct buf raw;
    (void)state;

    FILE *f = fopen("/dev/full", "w");
    if (!f) {
        skip();
    }
    sample(&r, &raw);
    struct out *o = out_new(OUT_NDJSON, f, 0);
    for (int i = 0; i < 1000; i++) {
        if (out_event(o, &r) < 0) {
            break;
        }
    }
    assert_true(out_finish(o) < 0);
    out_free(o);
    fclose(f);
    buf_release(&raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_parse),     cmocka_unit_test(test_ndjson_exact),
        cmocka_unit_test(test_json_roundtrip),   cmocka_unit_test(test_json_empty_and_minimal),
        cmocka_unit_test(test_json_corrupt_raw), cmocka_unit_test(test_csv),
        cmocka_unit_test(test_table_fits_width), cmocka_unit_test(test_table_utf8_and_controls),
        cmocka_unit_test(test_write_error),      cmocka_unit_test(test_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
