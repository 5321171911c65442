/* Unit tests for schemas/record.c: the schema v1 record encoding. */
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/mp.h"
#include "schemas/record.h"

static void test_record_round_trip(void **state)
{
    struct buf raw;
    struct buf enc;
    struct rec r;
    struct rec back;
    struct errbuf eb;
    (void)state;

    buf_init(&raw, 1 << 16);
    buf_init(&enc, 1 << 16);
    assert_int_equal(json_to_mp(SPAN_LIT("{\"rule\":\"x\",\"n\":[1,2]}"), &raw, NULL, &eb), 0);
    rec_init(&r);
    r.ts = -1;
    r.has_ts = true;
    r.received = 1714521600123456789LL;
    r.has_received = true;
    r.seq = UINT64_MAX - 1;
    r.has_seq = true;
    r.dst_port = 443;
    r.has_dst_port = true;
    rec_set(&r, VG_F_POD, SPAN_LIT("web-1"));
    rec_set(&r, VG_F_USER, SPAN_LIT("alice"));
    rec_set(&r, VG_F_MESSAGE, SPAN_LIT(""));   /* empty: absent */
    r.raw = buf_span(&raw);
    assert_int_equal(rec_encode(&r, &enc), 0);

    struct span in = buf_span(&enc);
    assert_int_equal(rec_decode(&in, &back), 0);
    assert_int_equal(in.n, 0);
    assert_true(back.has_ts && back.ts == -1);
    assert_true(back.received == 1714521600123456789LL);
    assert_true(back.seq == UINT64_MAX - 1);
    assert_true(back.has_dst_port && back.dst_port == 443);
    assert_true(span_eq_str(back.str[VG_F_POD], "web-1"));
    assert_true(span_eq_str(back.str[VG_F_USER], "alice"));
    assert_false(rec_has(&back, VG_F_MESSAGE));
    assert_false(rec_has(&back, VG_F_HOST));
    assert_true(span_eq(back.raw, buf_span(&raw)));
    buf_release(&raw);
    buf_release(&enc);
}

static void test_record_decode_rejects_garbage(void **state)
{
    struct rec r;
    (void)state;
    const uint8_t not_map[] = { 0x92, 0x01, 0x02 };
    struct span s = { not_map, sizeof(not_map) };
    assert_int_equal(rec_decode(&s, &r), VG_ECORRUPT);
    /* "ts" holding a string */
    const uint8_t bad_ts[] = { 0x81, 0xa2, 't', 's', 0xa1, 'x' };
    s = (struct span){ bad_ts, sizeof(bad_ts) };
    assert_int_equal(rec_decode(&s, &r), VG_ECORRUPT);
    /* truncated */
    s = (struct span){ bad_ts, 4 };
    assert_int_equal(rec_decode(&s, &r), VG_ECORRUPT);
    /* unknown keys from a newer writer are skipped */
    const uint8_t newer[] = { 0x82, 0xa3, 'n', 'e', 'w', 0x91, 0x01, 0xa3, 'p', 'o', 'd', 0xa1, 'p' };
    s = (struct span){ newer, sizeof(newer) };
    assert_int_equal(rec_decode(&s, &r), 0);
    assert_true(span_eq_str(r.str[VG_F_POD], "p"));
}

static void test_fields_and_severities(void **state)
{
    (void)state;
    for (int f = 0; f < VG_F_COUNT; f++) {
        assert_int_equal(vg_field_lookup(span_str(vg_field_name((enum vg_field)f))), f);
    }
    assert_int_equal(vg_field_lookup(SPAN_LIT("usr")), -1);
    assert_int_equal(vg_severity_parse(SPAN_LIT("Informational")), VG_SEV_INFO);
    assert_int_equal(vg_severity_parse(SPAN_LIT("CRITICAL")), VG_SEV_CRITICAL);
    assert_int_equal(vg_severity_parse(SPAN_LIT("high")), VG_SEV_ERROR);
    assert_int_equal(vg_severity_parse(SPAN_LIT("warn")), VG_SEV_WARNING);
    assert_int_equal(vg_severity_parse(SPAN_LIT("bogus")), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_record_decode_rejects_garbage),
        cmocka_unit_test(test_fields_and_severities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
