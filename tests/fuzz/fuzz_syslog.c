/* tests/fuzz/fuzz_syslog.c: the syslog listener's pure path as vigild drives it: frames
 * taken back to back from one connection's bytes (octet counted or LF), each parsed and
 * mapped to a record whose raw map is checked (one well-formed msgpack value holding the
 * frame byte for byte) and encoded/decoded as the store would. Framing invariants: a
 * frame lies inside the input, consumes what it says, and each shorter prefix of it is
 * "need more"; an error leaves the input untouched. Anything else aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "collector/syslog_in.h"
#include "common/buf.h"
#include "common/mp.h"
#include "schemas/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_MSG (64 * 1024)
#define CHECK(cond) \
 do {               \
  if (!(cond)) {    \
   abort();         \
  }                 \
 } while (0)

static bool inside(struct span s, struct span in)
{
    return s.n == 0 || (s.p >= in.p && s.n <= in.n && (size_t)(s.p - in.p) <= in.n - s.n);
}

static void check_hdr(const struct syslog_in_hdr *h, struct span text)
{
    const struct span *parts[] = { &h->timestamp, &h->host, &h->app, &h->procid,
                                   &h->msgid,     &h->sd,   &h->msg };

    for (size_t i = 0; i < VG_ARRAY_LEN(parts); i++) {
        CHECK(inside(*parts[i], text));
    }
    CHECK(h->pri >= -1 && h->pri <= 191);
    CHECK(h->format == SYSLOG_IN_RFC5424 || h->version == 0);
    CHECK(!(h->sd_malformed && h->sd.n > 0));
}

static void one_message(struct span text)
{
    struct syslog_in_hdr h;
    struct rec r;
    struct rec back;
    struct buf raw;
    struct buf scratch;
    struct buf enc;
    struct span v;
    struct span s;

    syslog_in_parse(text, INT64_C(1714521600) * 1000000000, &h);
    check_hdr(&h, text);
    buf_init(&raw, 3 * text.n + 1024); /* the bound syslog_in.h promises */
    buf_init(&scratch, 64 * 1024);
    buf_init(&enc, 8 * text.n + 64 * 1024);
    CHECK(syslog_in_map(text, &h, &r, &raw, &scratch) == 0);
    CHECK(mp_value_len(r.raw, raw.max, MP_MAX_DEPTH) == (ssize_t)r.raw.n);
    CHECK(mp_map_get(r.raw, SPAN_LIT("line"), &v) == 1 && mp_get_str(v, &s) && span_eq(s, text));
    for (int f = 0; f < VG_F_COUNT; f++) {
        CHECK(!rec_has(&r, (enum vg_field)f) || inside(r.str[f], text) ||
              inside(r.str[f], buf_span(&raw)) || r.str[f].n < 64 /* static names */);
    }
    CHECK(rec_has(&r, VG_F_SOURCE) && rec_has(&r, VG_F_KIND));
    CHECK(rec_encode(&r, &enc) == 0);
    struct span e = buf_span(&enc);
    CHECK(rec_decode(&e, &back) == 0 && e.n == 0);
    CHECK(span_eq(back.raw, r.raw));
    CHECK(span_eq(back.str[VG_F_MESSAGE], r.str[VG_F_MESSAGE]));
    buf_release(&enc);
    buf_release(&scratch);
    buf_release(&raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span in = { data, size };
    struct syslog_in_msg m;
    /* A small limit too, so that the limit paths are reached; chosen by the first byte. */
    size_t max = size > 0 && data[0] == '1' ? 64 : FUZZ_MAX_MSG;

    for (;;) {
        struct span before = in;
        ssize_t n = syslog_in_next(&in, &m, max);
        if (n <= 0) {
            /* need more, a malformed count or a frame over the limit: *in untouched */
            CHECK(n == 0 || n == -EPROTO || n == VG_ELIMIT);
            CHECK(in.p == before.p && in.n == before.n);
            break;
        }
        CHECK((size_t)n <= before.n && in.p == before.p + n && in.n == before.n - (size_t)n);
        CHECK(inside(m.text, (struct span){ before.p, (size_t)n }));
        CHECK(m.text.n <= max);
        /* Every shorter prefix of this frame is "need more". */
        size_t cuts[] = { 0, (size_t)n / 2, (size_t)n - 1 };
        for (size_t i = 0; i < VG_ARRAY_LEN(cuts); i++) {
            struct span pre = { before.p, cuts[i] };
            struct syslog_in_msg m2;
            CHECK(syslog_in_next(&pre, &m2, max) == 0 && pre.n == cuts[i]);
        }
        if (m.text.n > 0) {
            one_message(m.text);
        }
    }
    return 0;
}
