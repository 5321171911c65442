/* tests/unit/collector/test_cluster_msg.c: the cluster message codec and the shard of an
 * event (collector/cluster_msg.h, schemas/cluster.md 1, 3, 4.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "collector/cluster_msg.h"

/* The values schemas/cluster.md 1 gives (FNV-1a 64, modulo 8); tests/integration
 * computes them the same way in Python. */
static void test_shard_of(void **state)
{
    struct rec r;

    (void)state;
    assert_int_equal(cluster_shard_of_key(SPAN_LIT("agent-a"), SPAN_LIT("x"), 8), 0);
    assert_int_equal(cluster_shard_of_key(SPAN_LIT("agent-b"), SPAN_LIT("x"), 8), 1);
    assert_int_equal(cluster_shard_of_key(SPAN_LIT("vigild"), SPAN_LIT("x"), 8), 4);
    /* No agent: the host decides; neither: shard of the empty key. */
    assert_int_equal(cluster_shard_of_key((struct span){ NULL, 0 }, SPAN_LIT("web-1"), 8), 7);
    assert_int_equal(cluster_shard_of_key((struct span){ NULL, 0 }, (struct span){ NULL, 0 }, 8),
                     5);
    rec_init(&r);
    rec_set(&r, VG_F_AGENT, SPAN_LIT("agent-b"));
    rec_set(&r, VG_F_HOST, SPAN_LIT("web-1"));
    assert_int_equal(cluster_shard_of(&r, 8), 1);
    assert_int_equal(cluster_shard_of(&r, 1), 0);
}

static void test_roundtrip(void **state)
{
    struct buf msg, one;
    struct rec r, back;

    (void)state;
    buf_init(&msg, 1 << 20);
    buf_init(&one, 1 << 20);
    assert_int_equal(cluster_msg_begin(&msg), 0);
    for (int i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof(text), "event %d", i);
        rec_init(&r);
        r.ts = 1714557600000000000LL + i;
        r.has_ts = true;
        r.seq = 99 + (uint64_t)i; /* the ingest node's own seq: replaced on the store node */
        r.has_seq = true;
        rec_set(&r, VG_F_MESSAGE, span_str(text));
        rec_set(&r, VG_F_AGENT, SPAN_LIT("agent-a"));
        assert_int_equal(rec_encode(&r, &msg), 0);
    }
    struct span in = { msg.data, msg.len };
    assert_int_equal(cluster_msg_open(&in), 0);
    for (size_t i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof(text), "event %zu", i);
        assert_int_equal(cluster_msg_next(&in, i, &r), 1);
        assert_int_equal(r.seq, 99 + i);
        assert_true(span_eq(r.str[VG_F_MESSAGE], span_str(text)));
        /* As the store node writes it. */
        r.seq = cluster_seq(5, i);
        one.len = 0;
        assert_int_equal(rec_encode(&r, &one), 0);
        struct span o = { one.data, one.len };
        assert_int_equal(rec_decode(&o, &back), 0);
        assert_int_equal(back.seq, (5ULL << 20) | i);
        assert_int_equal(back.ts, 1714557600000000000LL + (int64_t)i);
    }
    assert_int_equal(cluster_msg_next(&in, 3, &r), 0);

    /* Not a message; a record cut short; too many records. */
    struct span bad = { (const uint8_t *)"VGC2", 4 };
    assert_int_equal(cluster_msg_open(&bad), VG_ECORRUPT);
    struct span shortm = { (const uint8_t *)"VGC", 3 };
    assert_int_equal(cluster_msg_open(&shortm), VG_ECORRUPT);
    in = (struct span){ msg.data, msg.len - 3 };
    assert_int_equal(cluster_msg_open(&in), 0);
    assert_int_equal(cluster_msg_next(&in, 0, &r), 1);
    assert_int_equal(cluster_msg_next(&in, 1, &r), 1);
    assert_int_equal(cluster_msg_next(&in, 2, &r), VG_ECORRUPT);
    in = (struct span){ msg.data + CLUSTER_MSG_MAGIC_LEN, msg.len - CLUSTER_MSG_MAGIC_LEN };
    assert_int_equal(cluster_msg_next(&in, CLUSTER_MSG_MAX_RECORDS, &r), VG_ECORRUPT);
    buf_release(&msg);
    buf_release(&one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_of),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
