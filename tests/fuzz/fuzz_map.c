/* tests/fuzz/fuzz_map.c: the mappers over arbitrary bytes. The input is read as JSON
 * (json_to_mp, as the HTTPS listener does) and, when that fails, as msgpack (as the
 * Forward listener hands it over); each event goes through map_event with MAP_AUTO and
 * every hint. The raw bytes also go through map_auth_line, map_syslog_bsd and
 * map_repeat_count. Rejecting is fine; crashing, leaking, reading out of bounds, a
 * span outside the input or the scratch buffer, or a scratch buffer that moved is not. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mp.h"
#include "schemas/map.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(struct span s, struct span in)
{
    return s.p >= in.p && s.p + s.n <= in.p + in.n;
}

/* Every string field points into the event or into scratch; the record encodes. */
static void check_rec(const struct rec *r, struct span ev, const struct buf *scratch)
{
    struct span sc = { scratch->data, scratch->len };

    for (int f = 0; f < VG_F_COUNT; f++) {
        struct span s = r->str[f];
        if (s.p == NULL || f == VG_F_RAW) {
            continue;
        }
        /* constants (source, kind, severity, outcome, action names) are static */
        if (!inside(s, ev) && !inside(s, sc)) {
            assert(f == VG_F_SOURCE || f == VG_F_KIND || f == VG_F_SEVERITY || f == VG_F_OUTCOME ||
                   f == VG_F_ACTION);
        }
    }
    if (r->str[VG_F_SEVERITY].p) {
        assert(vg_severity_parse(r->str[VG_F_SEVERITY]) >= 0);
    }
    struct buf out;
    buf_init(&out, 1 << 24);
    int rc = rec_encode(r, &out);
    assert(rc == 0);
    struct span in = buf_span(&out);
    struct rec back;
    rc = rec_decode(&in, &back);
    assert(rc == 0);
    buf_release(&out);
}

static void map_all(struct span ev)
{
    struct buf scratch;
    struct rec r;
    struct errbuf eb;

    buf_init(&scratch, 1 << 16);
    for (int h = MAP_AUTO; h <= MAP_GENERIC; h++) {
        buf_reset(&scratch);
        errbuf_clear(&eb);
        if (map_event((enum map_source)h, ev, 0, "http", &r, &scratch, &eb) == 0) {
            assert(r.has_ts);
            assert(r.raw.p == ev.p && r.raw.n <= ev.n);
            check_rec(&r, ev, &scratch);
        }
    }
    /* several events into one scratch without a reset: earlier spans stay valid */
    uint8_t *data = NULL;
    buf_reset(&scratch);
    for (int i = 0; i < 3; i++) {
        if (map_event(MAP_AUTO, ev, 0, NULL, &r, &scratch, NULL) != 0) {
            break;
        }
        assert(data == NULL || scratch.data == data);
        data = scratch.data;
    }
    buf_release(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span in = { data, size };
    struct buf mp;
    struct buf scratch;
    struct rec r;
    struct span msg;
    struct span inner;

    buf_init(&mp, 1 << 20);
    if (json_to_mp(in, &mp, NULL, NULL) == 0) {
        map_all(buf_span(&mp));
    }
    buf_release(&mp);
    map_all(in);

    /* the bytes as a text line */
    buf_init(&scratch, 4096);
    rec_init(&r);
    if (map_auth_line(in, &r, &scratch)) {
        assert(r.str[VG_F_OUTCOME].p != NULL);
    }
    static const int64_t refs[] = { 0, INT64_MIN, INT64_MAX, 1714521600000000000LL };
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) {
        rec_init(&r);
        if (map_syslog_bsd(in, refs[i], &r, &msg)) {
            assert(msg.p >= data && msg.p + msg.n <= data + size);
        }
    }
    uint32_t n = map_repeat_count(in, &inner);
    assert(n >= 1);
    assert(inner.n <= size);
    buf_release(&scratch);
    return 0;
}
