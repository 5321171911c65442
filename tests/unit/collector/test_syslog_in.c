/* tests/unit/collector/test_syslog_in.c: the syslog listener's pure parts. Framing
 * (octet counted and LF, every byte prefix of valid input is "need more", malformed
 * counts, limits), RFC 5424 headers with structured data and escapes, RFC 3164 variants,
 * the mapping to a record and its raw map, and every line of the auth corpus
 * (VG_CORPUS_DIR) sent as frames: the same auth fields as map_auth_line gives for the
 * line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/syslog_in.h"
#include "common/mp.h"
#include "common/time.h"
#include "schemas/map.h"

#define MAXM (64 * 1024)

static int64_t ts_of(const char *s)
{
    int64_t ns = 0;
    assert_int_equal(vg_time_parse_rfc3339(span_str(s), &ns), 0);
    return ns;
}

static const int64_t *ref_ns(void)
{
    static int64_t ref;
    if (ref == 0) {
        ref = ts_of("2024-12-31T00:00:00Z");
    }
    return &ref;
}

static void assert_span(struct span got, const char *want)
{
    if (want == NULL) {
        if (got.n != 0) {
            fail_msg("got '%.*s', want nothing", (int)got.n, (const char *)got.p);
        }
        return;
    }
    if (!span_eq_str(got, want)) {
        fail_msg("got '%.*s' (%zu bytes), want '%s'", (int)got.n, got.p ? (const char *)got.p : "",
                 got.n, want);
    }
}

static void assert_field(const struct rec *r, enum vg_field f, const char *want)
{
    if (want == NULL ? rec_has(r, f) : !rec_has(r, f) || !span_eq_str(r->str[f], want)) {
        fail_msg("%s: got '%.*s' (%s), want '%s'", vg_field_name(f), (int)r->str[f].n,
                 r->str[f].p ? (const char *)r->str[f].p : "", rec_has(r, f) ? "set" : "absent",
                 want ? want : "(absent)");
    }
}

/* The value at a path of map keys in msgpack (NULL-terminated). */
static bool mp_path(struct span map, struct span *out, ...)
{
    va_list ap;
    const char *k;
    struct span cur = map;

    va_start(ap, out);
    while ((k = va_arg(ap, const char *)) != NULL) {
        if (mp_map_get(cur, span_str(k), &cur) != 1) {
            va_end(ap);
            return false;
        }
    }
    va_end(ap);
    *out = cur;
    return true;
}

static void assert_raw_str(struct span raw, const char *key, const char *want)
{
    struct span v;
    struct span s;

    if (!mp_path(raw, &v, key, NULL)) {
        if (want) {
            fail_msg("raw.%s absent, want '%s'", key, want);
        }
        return;
    }
    if (!want) {
        fail_msg("raw.%s present, want it absent", key);
    }
    assert_true(mp_get_str(v, &s));
    assert_span(s, want);
}

static int64_t raw_int(struct span raw, const char *key)
{
    struct span v;
    int64_t i = -1;

    if (mp_path(raw, &v, key, NULL)) {
        assert_true(mp_get_i64(v, &i));
    }
    return i;
}

/* ---- framing ---- */

/* Feeds every strict prefix of the frame and checks "need more" with *in untouched;
 * then stream[0..len) must give exactly one frame of `consumed` bytes and text `want`
 * (NULL: not checked). */
static void expect_frame(const char *stream, size_t len, size_t max, enum syslog_in_framing fr,
                         const char *want, size_t consumed)
{
    struct syslog_in_msg m;

    for (size_t i = 0; i < consumed; i++) {
        struct span in = { (const uint8_t *)stream, i };
        ssize_t n = syslog_in_next(&in, &m, max);
        if (n != 0) {
            fail_msg("prefix of %zu bytes of '%s': got %zd, want 0 (need more)", i, stream, n);
        }
        assert_int_equal(in.n, i);
        assert_ptr_equal(in.p, stream);
    }
    struct span in = { (const uint8_t *)stream, len };
    assert_int_equal(syslog_in_next(&in, &m, max), (ssize_t)consumed);
    assert_int_equal(in.n, len - consumed);
    assert_int_equal(m.framing, fr);
    if (want) {
        assert_span(m.text, want);
    }
}

static void test_octet_counted(void **state)
{
    (void)state;
    expect_frame("5 hello", 7, MAXM, SYSLOG_IN_OCTET_COUNTED, "hello", 7);
    expect_frame("5 hello6 world!", 15, MAXM, SYSLOG_IN_OCTET_COUNTED, "hello", 7);
    /* The count covers a trailing LF, and an LF inside the message is data. */
    expect_frame("12 <13>a\nb c d\n", 15, MAXM, SYSLOG_IN_OCTET_COUNTED, "<13>a\nb c d\n", 15);
    /* Spaces inside are data; a count of exactly max is allowed. */
    expect_frame("10  a  b  c  X", 14, 10, SYSLOG_IN_OCTET_COUNTED, " a  b  c  ", 13);

    /* Back to back, mixed with LF frames and blank lines between them. */
    const char *stream = "3 abc\n<13>line two\r\n11 <13>counted- ok\n\n";
    struct span in = span_str(stream);
    struct syslog_in_msg m;
    const char *want[] = { "abc", "", "<13>line two", "<13>counted", "- ok", "" };
    const enum syslog_in_framing wf[] = { SYSLOG_IN_OCTET_COUNTED, SYSLOG_IN_LF, SYSLOG_IN_LF,
                                          SYSLOG_IN_OCTET_COUNTED, SYSLOG_IN_LF, SYSLOG_IN_LF };
    for (size_t i = 0; i < VG_ARRAY_LEN(want); i++) {
        assert_true(syslog_in_next(&in, &m, MAXM) > 0);
        assert_int_equal(m.framing, wf[i]);
        assert_span(m.text, want[i]);
    }
    assert_int_equal(in.n, 0);
    assert_int_equal(syslog_in_next(&in, &m, MAXM), 0);
}

static void test_lf_framing(void **state)
{
    (void)state;
    expect_frame("<13>Nov  2 12:00:00 h p: x\nnext", 31, MAXM, SYSLOG_IN_LF,
                 "<13>Nov  2 12:00:00 h p: x", 27);
    expect_frame("crlf\r\n", 6, MAXM, SYSLOG_IN_LF, "crlf", 6);
    expect_frame("\n", 1, MAXM, SYSLOG_IN_LF, "", 1);
    expect_frame("\r\n", 2, MAXM, SYSLOG_IN_LF, "", 2);
    /* A lone CR is data; only the one before the LF is dropped. */
    expect_frame("a\rb\r\r\n", 6, MAXM, SYSLOG_IN_LF, "a\rb\r", 6);
    /* Binary garbage not starting with a digit is one line: framing survives it. */
    expect_frame("\xff\xfe\x00\x01junk\n", 9, MAXM, SYSLOG_IN_LF, NULL, 9);
    /* rsyslog's high-precision file format without a PRI starts with a digit: the
     * full-date makes it a line, and each prefix of the date is still "need more". */
    const char *hp = "2023-11-14T00:20:42.738197+01:00 myserver sshd[1112652]: User root from "
                     "192.168.1.1 not allowed because not listed in AllowUsers\n";
    expect_frame(hp, strlen(hp), MAXM, SYSLOG_IN_LF, NULL, strlen(hp));
    struct span in = span_str(hp);
    struct syslog_in_msg m;
    assert_int_equal(syslog_in_next(&in, &m, MAXM), (ssize_t)strlen(hp));
    assert_int_equal(m.text.n, strlen(hp) - 1);
}

static void test_malformed_counts(void **state)
{
    static const char *const bad[] = {
        "12x hello world", /* non-digit in the length */
        "1-",              /* digits then '-', not a date */
        "12345-01-01 x\n", /* five digits then '-' */
        "2023-1x-01 x\n",  /* a date that breaks */
        "2023:",           /* */
        "0 ",              /* length 0 */
        "05 hello",        /* leading zero */
        "00000000001 x",   /* leading zero, 11 digits */
        "12345678901 x",   /* 11 digits */
        "12345678901",     /* 11 digits, no SP yet: already hopeless */
        "3\tabc",          /* TAB instead of SP */
        "7\xff\xfe\x00garbage",
    };
    struct syslog_in_msg m;

    (void)state;
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        struct span in = { (const uint8_t *)bad[i], strlen(bad[i]) };
        if (i == VG_ARRAY_LEN(bad) - 1) {
            in.n = 12;
        }
        struct span before = in;
        ssize_t n = syslog_in_next(&in, &m, MAXM);
        if (n != -EPROTO) {
            fail_msg("'%s': got %zd, want -EPROTO", bad[i], n);
        }
        assert_true(in.p == before.p && in.n == before.n);
    }
    /* Good frames before a bad count come out first; the bad one then stops it. */
    struct span in = SPAN_LIT("5 hello5 world1x bad");
    assert_int_equal(syslog_in_next(&in, &m, MAXM), 7);
    assert_int_equal(syslog_in_next(&in, &m, MAXM), 7);
    assert_span(m.text, "world");
    assert_int_equal(syslog_in_next(&in, &m, MAXM), -EPROTO);
    assert_int_equal(in.n, 6);
}

static void test_limits(void **state)
{
    struct syslog_in_msg m;
    char line[202];

    (void)state;
    /* A count over the limit is refused as soon as it is read, before its bytes. */
    struct span in = SPAN_LIT("101 ");
    assert_int_equal(syslog_in_next(&in, &m, 100), VG_ELIMIT);
    assert_int_equal(in.n, 4);
    in = (struct span)SPAN_LIT("9999999999 ");
    assert_int_equal(syslog_in_next(&in, &m, 100), VG_ELIMIT);
    in = (struct span)SPAN_LIT("100 ");
    assert_int_equal(syslog_in_next(&in, &m, 100), 0);
    /* LF: a line of max bytes is fine with or without its LF yet; one more is not. */
    memset(line, 'a', sizeof(line));
    in = (struct span){ (const uint8_t *)line, 100 };
    assert_int_equal(syslog_in_next(&in, &m, 100), 0);
    line[100] = '\n';
    in = (struct span){ (const uint8_t *)line, 150 };
    assert_int_equal(syslog_in_next(&in, &m, 100), 101);
    assert_int_equal(m.text.n, 100);
    line[100] = 'a';
    in = (struct span){ (const uint8_t *)line, 101 };
    assert_int_equal(syslog_in_next(&in, &m, 100), VG_ELIMIT);
    in = (struct span){ (const uint8_t *)line, 202 };
    assert_int_equal(syslog_in_next(&in, &m, 100), VG_ELIMIT);
    assert_int_equal(in.n, 202);
}

/* ---- headers ---- */

static void test_rfc5424(void **state)
{
    struct syslog_in_hdr h;
    struct rec r;
    struct buf raw;
    struct buf scratch;
    struct span v;
    struct span s;

    (void)state;
    buf_init(&raw, 1 << 20);
    buf_init(&scratch, 1 << 16);

    /* RFC 5424 6.5 example 4 (SD and a BOM), with escapes in a value. */
    const char *ex = "<165>1 2003-10-11T22:14:15.003000-07:00 mymachine.example.com evntslog - "
                     "ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Appli\\\"cation\\\\\" "
                     "eventID=\"1011\" br=\"a\\]b\\x]c\"][examplePriority@32473 class=\"high\"] "
                     "\xef\xbb\xbf"
                     "An application event log entry...\n";
    syslog_in_parse(span_str(ex), *ref_ns(), &h);
    assert_int_equal(h.format, SYSLOG_IN_RFC5424);
    assert_int_equal(h.pri, 165);
    assert_int_equal(h.version, 1);
    assert_true(h.has_ts);
    assert_int_equal(h.ts, ts_of("2003-10-12T05:14:15.003Z"));
    assert_span(h.timestamp, "2003-10-11T22:14:15.003000-07:00");
    assert_span(h.host, "mymachine.example.com");
    assert_span(h.app, "evntslog");
    assert_span(h.procid, NULL);
    assert_span(h.msgid, "ID47");
    assert_false(h.sd_malformed);
    assert_int_equal(h.sd.n, strchr(ex, 0xef) - strchr(ex, '[') - 1);
    assert_span(h.msg, "An application event log entry...");

    assert_int_equal(syslog_in_map(span_str(ex), &h, &r, &raw, &scratch), 0);
    assert_int_equal(mp_value_len(r.raw, 1 << 20, 8), (ssize_t)r.raw.n);
    assert_field(&r, VG_F_SOURCE, "syslog");
    assert_field(&r, VG_F_KIND, "log");
    assert_field(&r, VG_F_SEVERITY, "notice"); /* 165 = local4.notice */
    assert_field(&r, VG_F_HOST, "mymachine.example.com");
    assert_field(&r, VG_F_PROCESS, "evntslog");
    assert_field(&r, VG_F_MESSAGE, "An application event log entry...");
    assert_true(r.has_ts);
    assert_raw_str(r.raw, "line", ex);
    assert_raw_str(r.raw, "format", "rfc5424");
    assert_raw_str(r.raw, "facility", "local4");
    assert_int_equal(raw_int(r.raw, "pri"), 165);
    assert_int_equal(raw_int(r.raw, "version"), 1);
    assert_raw_str(r.raw, "msgid", "ID47");
    assert_raw_str(r.raw, "procid", NULL);
    assert_true(mp_path(r.raw, &v, "sd", "exampleSDID@32473", "eventSource", NULL));
    assert_true(mp_get_str(v, &s));
    assert_span(s, "Appli\"cation\\");
    assert_true(mp_path(r.raw, &v, "sd", "exampleSDID@32473", "br", NULL));
    assert_true(mp_get_str(v, &s));
    assert_span(s, "a]b\\x]c"); /* \x is not an escape: kept */
    assert_true(mp_path(r.raw, &v, "sd", "examplePriority@32473", "class", NULL));
    assert_true(mp_get_str(v, &s));
    assert_span(s, "high");
    assert_false(mp_path(r.raw, &v, "sd_truncated", NULL));
    assert_false(mp_path(r.raw, &v, "repeat", NULL));

    /* NILVALUEs everywhere, no MSG at all. */
    buf_reset(&raw);
    syslog_in_parse(SPAN_LIT("<0>1 - - - - - -"), *ref_ns(), &h);
    assert_int_equal(h.format, SYSLOG_IN_RFC5424);
    assert_false(h.has_ts);
    assert_span(h.timestamp, NULL);
    assert_span(h.host, NULL);
    assert_span(h.app, NULL);
    assert_span(h.msg, NULL);
    assert_false(h.sd_malformed);
    assert_int_equal(syslog_in_map(SPAN_LIT("<0>1 - - - - - -"), &h, &r, &raw, &scratch), 0);
    assert_field(&r, VG_F_SEVERITY, "emergency");
    assert_field(&r, VG_F_HOST, NULL);
    assert_field(&r, VG_F_MESSAGE, NULL);
    assert_false(r.has_ts);
    assert_raw_str(r.raw, "facility", "kern");

    /* A repeated param becomes an array; a repeated SD-ID keeps its first element. */
    const char *rep = "<14>1 2024-05-01T00:00:00Z h a p m [x@1 ip=\"1\" ip=\"2\" k=\"\"][y "
                      "a=\"b\"][x@1 ip=\"3\"] msg";
    buf_reset(&raw);
    syslog_in_parse(span_str(rep), *ref_ns(), &h);
    assert_span(h.msg, "msg");
    assert_int_equal(syslog_in_map(span_str(rep), &h, &r, &raw, &scratch), 0);
    assert_true(mp_path(r.raw, &v, "sd", "x@1", "ip", NULL));
    struct mp_obj o;
    assert_int_equal(mp_read(&v, &o), 1);
    assert_int_equal(o.type, MP_ARRAY);
    assert_int_equal(o.v.count, 2);
    assert_true(mp_path(r.raw, &v, "sd", "x@1", "k", NULL));
    assert_true(mp_get_str(v, &s));
    assert_int_equal(s.n, 0);
    assert_true(mp_path(r.raw, &v, "sd", NULL));
    assert_int_equal(mp_read(&v, &o), 1);
    assert_int_equal(o.type, MP_MAP);
    assert_int_equal(o.v.count, 2);

    /* Malformed SD: kept as the MSG, flagged; the header still counts. */
    static const char *const bad_sd[] = {
        "<14>1 2024-05-01T00:00:00Z h a p m [x@1 ip=\"1] rest",
        "<14>1 2024-05-01T00:00:00Z h a p m [x@1 ip=1] rest",
        "<14>1 2024-05-01T00:00:00Z h a p m [x@1]rest",
        "<14>1 2024-05-01T00:00:00Z h a p m [] rest",
        "<14>1 2024-05-01T00:00:00Z h a p m rest",
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad_sd); i++) {
        syslog_in_parse(span_str(bad_sd[i]), *ref_ns(), &h);
        assert_int_equal(h.format, SYSLOG_IN_RFC5424);
        assert_true(h.sd_malformed);
        assert_int_equal(h.sd.n, 0);
        assert_true(h.msg.n > 0 &&
                    h.msg.p + h.msg.n == (const uint8_t *)bad_sd[i] + strlen(bad_sd[i]));
        buf_reset(&raw);
        assert_int_equal(syslog_in_map(span_str(bad_sd[i]), &h, &r, &raw, &scratch), 0);
        assert_true(mp_path(r.raw, &v, "sd_malformed", NULL));
    }

    /* A header cut short keeps what is there. */
    syslog_in_parse(SPAN_LIT("<14>1 2024-05-01T00:00:00Z host"), *ref_ns(), &h);
    assert_int_equal(h.format, SYSLOG_IN_RFC5424);
    assert_span(h.host, "host");
    assert_span(h.app, NULL);

    /* Not RFC 5424 after all: the timestamp does not parse. */
    syslog_in_parse(SPAN_LIT("<14>1 hello world"), *ref_ns(), &h);
    assert_int_equal(h.format, SYSLOG_IN_NOHDR);
    assert_int_equal(h.pri, 14);
    assert_span(h.msg, "1 hello world");

    /* The caps on the parsed SD view: 70 distinct elements. */
    struct buf big;
    buf_init(&big, 1 << 20);
    assert_int_equal(buf_append_str(&big, "<14>1 - - - - - "), 0);
    for (int i = 0; i < 70; i++) {
        assert_int_equal(buf_appendf(&big, "[e%d a=\"%d\"]", i, i), 0);
    }
    assert_int_equal(buf_append_str(&big, " m"), 0);
    syslog_in_parse(buf_span(&big), *ref_ns(), &h);
    assert_false(h.sd_malformed);
    buf_reset(&raw);
    assert_int_equal(syslog_in_map(buf_span(&big), &h, &r, &raw, &scratch), 0);
    assert_true(mp_path(r.raw, &v, "sd_truncated", NULL));
    assert_true(mp_path(r.raw, &v, "sd", "e63", "a", NULL));
    assert_false(mp_path(r.raw, &v, "sd", "e64", NULL));
    buf_release(&big);

    /* A raw buffer too small: VG_ELIMIT, nothing left behind. */
    struct buf tiny;
    buf_init(&tiny, 16);
    syslog_in_parse(span_str(ex), *ref_ns(), &h);
    assert_int_equal(syslog_in_map(span_str(ex), &h, &r, &tiny, &scratch), VG_ELIMIT);
    assert_int_equal(tiny.len, 0);
    assert_true(buf_check(&tiny));
    buf_release(&tiny);

    buf_release(&raw);
    buf_release(&scratch);
}

struct bsd_case {
    const char *line;
    enum syslog_in_format format;
    int pri;
    const char *ts; /* NULL: no ts */
    const char *timestamp, *host, *app, *procid, *msg;
};

static void test_rfc3164(void **state)
{
    static const struct bsd_case cases[] = {
        { "<38>Apr  1 13:08:09 host sshd[1361]: Accepted publickey for u from 1.2.3.4 port 5 ssh2",
          SYSLOG_IN_RFC3164, 38, "2024-04-01T13:08:09Z", "Apr  1 13:08:09", "host", "sshd", "1361",
          "Accepted publickey for u from 1.2.3.4 port 5 ssh2" },
        { "<86>Nov 2 15:40:14 workshop sshd[28179]: pam_unix(sshd:auth): authentication failure",
          SYSLOG_IN_RFC3164, 86, "2024-11-02T15:40:14Z", "Nov 2 15:40:14", "workshop", "sshd",
          "28179", "pam_unix(sshd:auth): authentication failure" },
        { "Aug 03 10:00:00 box su: Successful su for root by ubuntu", SYSLOG_IN_RFC3164, -1,
          "2024-08-03T10:00:00Z", "Aug 03 10:00:00", "box", "su", NULL,
          "Successful su for root by ubuntu" },
        { "<85>Mar 27 13:09:37 ip-10 sudo:   ubuntu : TTY=pts/0 ; COMMAND=/bin/ls\r\n",
          SYSLOG_IN_RFC3164, 85, "2024-03-27T13:09:37Z", "Mar 27 13:09:37", "ip-10", "sudo", NULL,
          "  ubuntu : TTY=pts/0 ; COMMAND=/bin/ls" },
        /* No hostname (a local sender): the tag is not taken for one. */
        { "<13>Nov  2 12:00:00 sshd[12]: Failed password for root from 1.2.3.4 port 22 ssh2",
          SYSLOG_IN_RFC3164, 13, "2024-11-02T12:00:00Z", "Nov  2 12:00:00", NULL, "sshd", "12",
          "Failed password for root from 1.2.3.4 port 22 ssh2" },
        { "<13>Nov  2 12:00:00 cron: pam_unix(cron:session): session closed for user root",
          SYSLOG_IN_RFC3164, 13, "2024-11-02T12:00:00Z", "Nov  2 12:00:00", NULL, "cron", NULL,
          "pam_unix(cron:session): session closed for user root" },
        /* No tag at all. */
        { "<13>Dec 31 23:59:59 host just a message", SYSLOG_IN_RFC3164, 13, "2024-12-31T23:59:59Z",
          "Dec 31 23:59:59", "host", NULL, NULL, "just a message" },
        /* Dates up to 3 days after the reference time are this year's. */
        { "Jan 10 00:00:00 h p: x", SYSLOG_IN_RFC3164, -1, "2024-01-10T00:00:00Z",
          "Jan 10 00:00:00", "h", "p", NULL, "x" },
        /* rsyslog's high-precision format, with and without PRI. */
        { "2023-11-14T00:20:42.738197+01:00 myserver sshd-session[1112652]: User root from "
          "192.168.1.1 not allowed because not listed in AllowUsers ",
          SYSLOG_IN_RFC3339, -1, "2023-11-13T23:20:42.738197Z", "2023-11-14T00:20:42.738197+01:00",
          "myserver", "sshd-session", "1112652",
          "User root from 192.168.1.1 not allowed because not listed in AllowUsers " },
        { "<30>2023-11-14T00:20:42Z n systemd[1]: Started x.", SYSLOG_IN_RFC3339, 30,
          "2023-11-14T00:20:42Z", "2023-11-14T00:20:42Z", "n", "systemd", "1", "Started x." },
        /* No header: the message is the text after the PRI. */
        { "<13>hello world", SYSLOG_IN_NOHDR, 13, NULL, NULL, NULL, NULL, NULL, "hello world" },
        { "<999>Nov  2 12:00:00 h p: x", SYSLOG_IN_NOHDR, -1, NULL, NULL, NULL, NULL, NULL,
          "<999>Nov  2 12:00:00 h p: x" },
        { "<13", SYSLOG_IN_NOHDR, -1, NULL, NULL, NULL, NULL, NULL, "<13" },
        { "<13>", SYSLOG_IN_NOHDR, 13, NULL, NULL, NULL, NULL, NULL, NULL },
        { "Nov 31 12:00:00 h p: bad day", SYSLOG_IN_RFC3164, -1, "2024-12-01T12:00:00Z",
          "Nov 31 12:00:00", "h", "p", NULL, "bad day" },
        { "Foo  2 12:00:00 h p: x", SYSLOG_IN_NOHDR, -1, NULL, NULL, NULL, NULL, NULL,
          "Foo  2 12:00:00 h p: x" },
        { "", SYSLOG_IN_NOHDR, -1, NULL, NULL, NULL, NULL, NULL, NULL },
    };
    struct syslog_in_hdr h;

    (void)state;
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        const struct bsd_case *c = &cases[i];
        print_message("case %zu: %s\n", i, c->line);
        syslog_in_parse(span_str(c->line), *ref_ns(), &h);
        assert_int_equal(h.format, c->format);
        assert_int_equal(h.pri, c->pri);
        assert_int_equal(h.has_ts, c->ts != NULL);
        if (c->ts) {
            assert_int_equal(h.ts, ts_of(c->ts));
        }
        assert_span(h.timestamp, c->timestamp);
        assert_span(h.host, c->host);
        assert_span(h.app, c->app);
        assert_span(h.procid, c->procid);
        assert_span(h.msgid, NULL);
        assert_span(h.sd, NULL);
        assert_span(h.msg, c->msg);
        assert_int_equal(h.version, 0);
    }
}

/* ---- mapping ---- */

static void map_one(const char *text, struct rec *r, struct buf *raw, struct buf *scratch)
{
    struct syslog_in_hdr h;

    buf_reset(raw);
    buf_reset(scratch);
    syslog_in_parse(span_str(text), *ref_ns(), &h);
    assert_int_equal(syslog_in_map(span_str(text), &h, r, raw, scratch), 0);
    assert_int_equal(mp_value_len(r->raw, raw->max, 8), (ssize_t)r->raw.n);
    assert_raw_str(r->raw, "line", text);
}

static void test_map(void **state)
{
    struct rec r;
    struct buf raw;
    struct buf scratch;

    (void)state;
    buf_init(&raw, 1 << 20);
    buf_init(&scratch, 1 << 16);

    /* sshd auth line: source sshd, the mapper's severity wins over the PRI's. */
    map_one("<38>1 2022-01-19T14:23:55+00:00 OPNsense.localdomain sshd 44255 - [meta "
            "sequenceId=\"1\"] Invalid user tutu from 1.2.3.4 port 33166",
            &r, &raw, &scratch);
    assert_field(&r, VG_F_SOURCE, "sshd");
    assert_field(&r, VG_F_KIND, "auth");
    assert_field(&r, VG_F_SEVERITY, "warning");
    assert_field(&r, VG_F_OUTCOME, "failure");
    assert_field(&r, VG_F_ACTION, "invalid_user");
    assert_field(&r, VG_F_USER, "tutu");
    assert_field(&r, VG_F_SRC_IP, "1.2.3.4");
    assert_field(&r, VG_F_PROCESS, "sshd");
    assert_field(&r, VG_F_HOST, "OPNsense.localdomain");
    assert_field(&r, VG_F_AGENT, NULL);
    assert_int_equal(r.ts, ts_of("2022-01-19T14:23:55Z"));

    /* sshd-session (OpenSSH >= 9.8) is sshd too. */
    map_one("<38>Jan 24 15:32:31 server sshd-session[2651912]: Disconnected from authenticating "
            "user root 179.43.183.98 port 59402 [preauth]",
            &r, &raw, &scratch);
    assert_field(&r, VG_F_SOURCE, "sshd");
    assert_field(&r, VG_F_USER, "root");
    assert_field(&r, VG_F_SRC_IP, "179.43.183.98");

    /* sudo: an auth line, but not from sshd. */
    map_one("<85>Mar 27 13:09:37 ip-10 sudo:   ubuntu : TTY=pts/0 ; PWD=/home/ubuntu ; "
            "USER=root ; COMMAND=/usr/bin/apt-key add -",
            &r, &raw, &scratch);
    assert_field(&r, VG_F_SOURCE, "syslog");
    assert_field(&r, VG_F_KIND, "auth");
    assert_field(&r, VG_F_USER, "ubuntu");
    assert_field(&r, VG_F_CMDLINE, "/usr/bin/apt-key add -");
    assert_field(&r, VG_F_OBJECT, "root");
    assert_field(&r, VG_F_OUTCOME, "success");

    /* sshd, but not an auth line: a plain log event with the PRI's severity. */
    map_one("<83>Mar 27 13:06:56 ip-10 sshd[1291]: Server listening on 0.0.0.0 port 22.", &r, &raw,
            &scratch);
    assert_field(&r, VG_F_SOURCE, "syslog");
    assert_field(&r, VG_F_KIND, "log");
    assert_field(&r, VG_F_SEVERITY, "error");
    assert_field(&r, VG_F_OUTCOME, NULL);
    assert_field(&r, VG_F_MESSAGE, "Server listening on 0.0.0.0 port 22.");
    assert_raw_str(r.raw, "facility", "authpriv");
    assert_raw_str(r.raw, "procid", "1291");

    /* No PRI, no header: no severity; the auth mapper still reads it. */
    map_one("Failed password for root from 10.0.0.9 port 22 ssh2", &r, &raw, &scratch);
    assert_field(&r, VG_F_SOURCE, "syslog");
    assert_field(&r, VG_F_KIND, "auth");
    assert_field(&r, VG_F_SRC_IP, "10.0.0.9");
    assert_false(r.has_ts);
    assert_raw_str(r.raw, "format", "none");
    assert_int_equal(raw_int(r.raw, "pri"), -1);
    map_one("just text", &r, &raw, &scratch);
    assert_field(&r, VG_F_SEVERITY, NULL);
    assert_field(&r, VG_F_KIND, "log");
    assert_field(&r, VG_F_MESSAGE, "just text");

    /* rsyslog dedup: one event, the count in raw.repeat. */
    map_one("<38>Mar 27 13:20:01 ip-10 sshd[1]: message repeated 5 times: [ Failed password for "
            "root from 58.218.199.116 port 4240 ssh2]",
            &r, &raw, &scratch);
    assert_field(&r, VG_F_SOURCE, "sshd");
    assert_field(&r, VG_F_USER, "root");
    assert_field(&r, VG_F_SRC_IP, "58.218.199.116");
    assert_int_equal(raw_int(r.raw, "repeat"), 5);
    map_one("<14>1 - h app - - - message repeated 3 times: [ disk full]", &r, &raw, &scratch);
    assert_field(&r, VG_F_KIND, "log");
    assert_int_equal(raw_int(r.raw, "repeat"), 3);

    /* Bytes that are not UTF-8 are kept as they are. */
    map_one("<13>\xff\xfe binary \x01", &r, &raw, &scratch);
    assert_field(&r, VG_F_MESSAGE, "\xff\xfe binary \x01");

    buf_release(&raw);
    buf_release(&scratch);
}

/* ---- the auth corpus, every line as frames ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    if (!f) {
        fail_msg("cannot open '%s': %s", path, strerror(errno));
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    data[n] = 0;
    *len = (size_t)n;
    return data;
}

static const enum vg_field auth_fields[] = {
    VG_F_KIND,    VG_F_OUTCOME, VG_F_ACTION, VG_F_USER,    VG_F_SRC_IP,   VG_F_DST_IP,
    VG_F_CMDLINE, VG_F_OBJECT,  VG_F_HOST,   VG_F_PROCESS, VG_F_SEVERITY,
};

/* r (from a frame wrapping `line`) against map_auth_line and map_syslog_bsd on the line
 * itself. */
static void check_auth(struct span line, const struct rec *r, bool check_ts, struct buf *scratch)
{
    struct rec want;
    struct rec hdr;
    struct span msg;

    rec_init(&want);
    bool auth = map_auth_line(line, &want, scratch);
    rec_init(&hdr);
    if (map_syslog_bsd(line, *ref_ns(), &hdr, &msg)) {
        rec_set(&want, VG_F_HOST, hdr.str[VG_F_HOST]);
        rec_set(&want, VG_F_PROCESS, hdr.str[VG_F_PROCESS]);
        if (check_ts) {
            assert_int_equal(r->has_ts, hdr.has_ts);
            assert_int_equal(r->ts, hdr.ts);
        }
    }
    if (!auth) {
        rec_set(&want, VG_F_KIND, SPAN_LIT("log"));
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(auth_fields); i++) {
        enum vg_field f = auth_fields[i];
        if (f == VG_F_SEVERITY && !auth) {
            continue; /* from the PRI */
        }
        if (rec_has(&want, f) != rec_has(r, f) ||
            (rec_has(&want, f) && !span_eq(want.str[f], r->str[f]))) {
            fail_msg("%.*s\n%s: got '%.*s', want '%.*s'", (int)line.n, (const char *)line.p,
                     vg_field_name(f), (int)r->str[f].n, (const char *)r->str[f].p,
                     (int)want.str[f].n, (const char *)want.str[f].p);
        }
    }
    assert_int_equal(r->has_dst_port, want.has_dst_port);
    assert_int_equal(r->dst_port, want.dst_port);
    bool sshd = span_eq_str(r->str[VG_F_PROCESS], "sshd") ||
                span_eq_str(r->str[VG_F_PROCESS], "sshd-session");
    assert_field(r, VG_F_SOURCE, auth && sshd ? "sshd" : "syslog");
}

struct corpus_counts {
    size_t lines, auth;
    int64_t repeated;
};

/* Every line of one file, three ways: octet-counted as it is (rsyslog forwarding file
 * lines), LF-framed with a PRI added, and re-headed as RFC 5424. Each stream is framed
 * back to back. */
static void corpus_file(const char *path, struct corpus_counts *cc)
{
    size_t len;
    char *text = read_file(path, &len);
    struct buf octet;
    struct buf lf;
    struct buf r5424;
    struct buf raw;
    struct buf scratch;
    struct span lines[8192];
    size_t nlines = 0;

    buf_init(&octet, 16 << 20);
    buf_init(&lf, 16 << 20);
    buf_init(&r5424, 16 << 20);
    buf_init(&raw, 1 << 20);
    buf_init(&scratch, 1 << 16);
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        struct span line = { (const uint8_t *)p, nl ? (size_t)(nl - p) : (size_t)(text + len - p) };
        p = nl ? nl + 1 : text + len;
        if (line.n == 0) {
            continue;
        }
        assert_true(nlines < VG_ARRAY_LEN(lines));
        lines[nlines++] = line;
        assert_int_equal(buf_appendf(&octet, "%zu %.*s", line.n, (int)line.n, line.p), 0);
        if (line.p[0] == '<') {
            assert_int_equal(buf_appendf(&lf, "%.*s\n", (int)line.n, line.p), 0);
        } else {
            assert_int_equal(buf_appendf(&lf, "<86>%.*s\r\n", (int)line.n, line.p), 0);
        }
        struct rec hdr;
        struct span msg;
        rec_init(&hdr);
        if (line.p[0] != '<' && map_syslog_bsd(line, *ref_ns(), &hdr, &msg)) {
            char ts[40];
            vg_time_format(hdr.ts, 6, ts, sizeof(ts));
            struct span h = hdr.str[VG_F_HOST];
            struct span a = hdr.str[VG_F_PROCESS];
            assert_int_equal(buf_appendf(&r5424, "<38>1 %s %.*s %.*s - - - %.*s\n", ts, (int)h.n,
                                         h.p, a.n ? (int)a.n : 1, a.n ? (const char *)a.p : "-",
                                         (int)msg.n, msg.p),
                             0);
        } else {
            assert_int_equal(buf_appendf(&r5424, "%.*s\n", (int)line.n, line.p), 0);
        }
    }
    struct buf *streams[] = { &octet, &lf, &r5424 };
    for (size_t k = 0; k < VG_ARRAY_LEN(streams); k++) {
        struct span in = buf_span(streams[k]);
        for (size_t i = 0; i < nlines; i++) {
            struct syslog_in_msg m;
            struct syslog_in_hdr h;
            struct rec r;
            assert_true(syslog_in_next(&in, &m, MAXM) > 0);
            assert_int_equal(m.framing, k == 0 ? SYSLOG_IN_OCTET_COUNTED : SYSLOG_IN_LF);
            buf_reset(&raw);
            buf_reset(&scratch);
            syslog_in_parse(m.text, *ref_ns(), &h);
            assert_int_equal(syslog_in_map(m.text, &h, &r, &raw, &scratch), 0);
            struct span v;
            struct span s;
            assert_true(mp_path(r.raw, &v, "line", NULL) && mp_get_str(v, &s) &&
                        span_eq(s, m.text));
            check_auth(lines[i], &r, true, &scratch);
            if (k == 0) {
                cc->lines++;
                cc->auth += span_eq_str(r.str[VG_F_KIND], "auth");
                int64_t rep = raw_int(r.raw, "repeat");
                cc->repeated += rep > 1 ? rep : 0;
                assert_true(h.format != SYSLOG_IN_NOHDR);
            }
        }
        assert_int_equal(in.n, 0);
    }
    buf_release(&octet);
    buf_release(&lf);
    buf_release(&r5424);
    buf_release(&raw);
    buf_release(&scratch);
    free(text);
}

static void test_auth_corpus(void **state)
{
    const char *corpus = getenv("VG_CORPUS_DIR");
    const char *dirs[] = { "auth", "auth/crowdsec-hub-tests" };
    struct corpus_counts all = { 0 };
    char path[4096];
    size_t files = 0;

    (void)state;
    if (!corpus) {
        corpus = "tests/data/corpus";
    }
    for (size_t d = 0; d < VG_ARRAY_LEN(dirs); d++) {
        snprintf(path, sizeof(path), "%s/%s", corpus, dirs[d]);
        DIR *dir = opendir(path);
        struct dirent *e;
        if (!dir) {
            fail_msg("cannot open '%s' (set VG_CORPUS_DIR)", path);
        }
        while ((e = readdir(dir)) != NULL) {
            size_t l = strlen(e->d_name);
            if (l < 5 || strcmp(e->d_name + l - 4, ".log") != 0) {
                continue;
            }
            struct corpus_counts cc = { 0 };
            snprintf(path, sizeof(path), "%s/%s/%s", corpus, dirs[d], e->d_name);
            corpus_file(path, &cc);
            if (strstr(e->d_name, "elastic-examples")) {
                /* test_map.c's counts: 7121 lines, 410 events behind the repeats. */
                assert_int_equal(cc.lines, 7121);
                assert_int_equal(cc.repeated, 410);
            }
            if (strcmp(e->d_name, "sshd-invalid-bf.log") == 0) {
                assert_int_equal(cc.lines, 6);
                assert_int_equal(cc.auth, 6);
            }
            all.lines += cc.lines;
            all.auth += cc.auth;
            files++;
        }
        closedir(dir);
    }
    assert_int_equal(files, 11);
    print_message("%zu corpus lines, %zu auth events\n", all.lines, all.auth);
    assert_true(all.auth > 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_octet_counted),
        cmocka_unit_test(test_lf_framing),
        cmocka_unit_test(test_malformed_counts),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_rfc5424),
        cmocka_unit_test(test_rfc3164),
        cmocka_unit_test(test_map),
        cmocka_unit_test(test_auth_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
