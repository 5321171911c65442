/* tests/unit/collector/test_https.c: the HTTPS listener's pure layers. The request
 * parser (http-parser callbacks into struct https_req) fed whole, byte by byte and
 * pipelined; chunked bodies, Expect, keep-alive rules, every limit; routing and content
 * types; https_ingest over NDJSON with bad lines, JSON streams, arrays, EventLists, the
 * Falco and k8s-audit corpus and Trivy reports; the reply bytes and JSON bodies. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "collector/https.h"
#include "common/json.h"
#include "common/mp.h"

#define P(x)     assert_int_equal((x), 0)
#define MAX_BODY (64 * 1024)

/* --- the parser -------------------------------------------------------------------- */

/* A request as the tests observe it after feeding. */
struct got {
    int heads, requests, bad;
    int status;
    enum https_route route;
    bool keep_alive, expect, ndjson, close_after;
    char body[MAX_BODY + 1];
    size_t body_len;
    char method[16];
    char path[96];
};

/* Feeds in pieces of at most `piece` bytes (0: all at once), handling every step like the
 * listener does; stops at the first request (or at BAD). Returns bytes consumed. */
static size_t feed(struct https_parser *p, const char *text, size_t n, size_t piece, struct got *g)
{
    size_t off = 0;

    memset(g, 0, sizeof(*g));
    while (off < n) {
        size_t len = piece && piece < n - off ? piece : n - off;
        size_t used = 0;
        enum https_step st =
            https_parser_feed(p, (struct span){ (const uint8_t *)text + off, len }, &used);
        assert_true(used <= len);
        off += used;
        struct https_req *r = https_parser_req(p);
        if (st == HTTPS_STEP_HEAD) {
            g->heads++;
            continue;
        }
        if (st == HTTPS_STEP_MORE) {
            assert_int_equal(used, len);
            continue;
        }
        g->status = r->status;
        g->route = r->route;
        g->keep_alive = r->keep_alive;
        g->expect = r->expect_continue;
        g->ndjson = r->ndjson;
        g->close_after = r->close_after;
        snprintf(g->method, sizeof(g->method), "%s", r->method);
        snprintf(g->path, sizeof(g->path), "%s", r->path);
        if (st == HTTPS_STEP_BAD) {
            g->bad++;
            return off;
        }
        g->requests++;
        assert_true(r->body.len <= MAX_BODY);
        memcpy(g->body, r->body.data ? (const char *)r->body.data : "", r->body.len);
        g->body_len = r->body.len;
        g->body[g->body_len] = 0;
        return off;
    }
    return off;
}

static const char post_events[] = "POST /v1/events HTTP/1.1\r\n"
                                  "Host: vigil\r\n"
                                  "Content-Type: application/x-ndjson\r\n"
                                  "Content-Length: 15\r\n"
                                  "\r\n"
                                  "{\"a\":1}\n{\"b\":2}";

static void test_parse_simple_any_split(void **state)
{
    (void)state;
    for (size_t piece = 0; piece < sizeof(post_events); piece++) {
        struct https_parser *p;
        struct got g;
        https_parser_new(MAX_BODY, &p);
        size_t used = feed(p, post_events, sizeof(post_events) - 1, piece, &g);
        assert_int_equal(used, sizeof(post_events) - 1);
        assert_int_equal(g.heads, 1);
        assert_int_equal(g.requests, 1);
        assert_int_equal(g.status, 0);
        assert_int_equal(g.route, HTTPS_ROUTE_EVENTS);
        assert_true(g.keep_alive);
        assert_true(g.ndjson);
        assert_false(g.expect);
        assert_string_equal(g.method, "POST");
        assert_string_equal(g.path, "/v1/events");
        assert_string_equal(g.body, "{\"a\":1}\n{\"b\":2}");
        https_parser_free(p);
    }
}

static void test_parse_pipelined(void **state)
{
    const char *two = "POST /v1/falco HTTP/1.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: 2\r\n\r\n{}"
                      "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"
                      "POST /v1/trivy?x=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]";
    struct https_parser *p;
    struct got g;
    size_t off = 0;
    size_t n = strlen(two);

    (void)state;
    https_parser_new(MAX_BODY, &p);
    off += feed(p, two + off, n - off, 0, &g);
    assert_int_equal(g.route, HTTPS_ROUTE_FALCO);
    assert_string_equal(g.body, "{}");
    https_parser_next(p);
    off += feed(p, two + off, n - off, 0, &g);
    assert_int_equal(g.requests, 1);
    assert_int_equal(g.route, HTTPS_ROUTE_HEALTHZ);
    assert_false(g.keep_alive);
    assert_int_equal(g.body_len, 0);
    https_parser_next(p);
    off += feed(p, two + off, n - off, 0, &g);
    assert_int_equal(g.route, HTTPS_ROUTE_TRIVY); /* the query string is not the path */
    assert_string_equal(g.path, "/v1/trivy?x=1");
    assert_string_equal(g.body, "[1]");
    assert_int_equal(off, n);
    https_parser_free(p);
}

static void test_parse_chunked_expect_versions(void **state)
{
    const char *chunked = "POST /v1/k8s/audit HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                          "Content-Type: application/json; charset=utf-8\r\n"
                          "Expect: 100-continue\r\n\r\n"
                          "4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: y\r\n\r\n";
    const char *http10 = "POST /v1/events HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}";
    const char *http10ka = "POST /v1/events HTTP/1.0\r\nConnection: keep-alive\r\n"
                           "Content-Length: 2\r\n\r\n{}";
    const char *close = "POST /v1/events HTTP/1.1\r\nConnection: close\r\nContent-Length: 2"
                        "\r\n\r\n{}";
    struct https_parser *p;
    struct got g;

    (void)state;
    for (size_t piece = 0; piece < 12; piece++) {
        https_parser_new(MAX_BODY, &p);
        assert_int_equal(feed(p, chunked, strlen(chunked), piece, &g), strlen(chunked));
        assert_int_equal(g.requests, 1);
        assert_int_equal(g.route, HTTPS_ROUTE_K8S_AUDIT);
        assert_true(g.expect);
        assert_false(g.ndjson);
        assert_string_equal(g.body, "{\"a\":1}");
        https_parser_free(p);
    }
    https_parser_new(MAX_BODY, &p);
    feed(p, http10, strlen(http10), 0, &g);
    assert_int_equal(g.requests, 1);
    assert_false(g.keep_alive); /* HTTP/1.0 closes after the response */
    https_parser_free(p);
    https_parser_new(MAX_BODY, &p);
    feed(p, http10ka, strlen(http10ka), 0, &g);
    assert_false(g.keep_alive);
    https_parser_free(p);
    https_parser_new(MAX_BODY, &p);
    feed(p, close, strlen(close), 0, &g);
    assert_false(g.keep_alive);
    https_parser_free(p);
}

static void test_parse_rejections(void **state)
{
    static const struct {
        const char *req;
        int status;
        bool bad;   /* HTTPS_STEP_BAD (connection unusable) rather than a request */
        bool close; /* close_after */
    } cases[] = {
        { "GET /nope HTTP/1.1\r\n\r\n", 404, false, false },
        { "POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, false, false },
        { "GET /v1/events HTTP/1.1\r\n\r\n", 405, false, false },
        { "PUT /v1/falco HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 405, false, false },
        { "POST /v1/events HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
          "Content-Length: 3\r\n\r\na=b",
          415, false, false },
        { "POST /v1/events HTTP/1.1\r\nContent-Type: application/json\r\n"
          "Content-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
          415, false, false },
        /* declared over max: refused at the head, before the body */
        { "POST /v1/events HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413, false, true },
        /* a transfer coding other than chunked: 501 at the head, then the connection
         * closes (the body's framing is not to be trusted) */
        { "POST /v1/events HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, false,
          true },
        { "POST /v1/events HTTP/1.1\r\nTransfer-Encoding: deflate\r\n\r\n", 501, false, true },
        { "POST /v1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"
          "\r\n",
          501, false, true },
        /* not HTTP at all */
        { "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, true, true },
        { "hello\r\n\r\n", 400, true, true },
        { "POST /v1/events HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
          400, true, true },
        { "POST /v1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, true, true },
        { "POST /v1/events HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, true, true },
    };

    (void)state;
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        struct https_parser *p;
        struct got g;
        https_parser_new(MAX_BODY, &p);
        feed(p, cases[i].req, strlen(cases[i].req), 0, &g);
        if (cases[i].status == 413 || cases[i].status == 501) {
            /* the HEAD step already carries the refusal */
            struct https_req *r = https_parser_req(p);
            assert_int_equal(g.heads, 1);
            assert_int_equal(r->status, cases[i].status);
            assert_true(r->close_after);
            https_parser_free(p);
            continue;
        }
        if (g.status != cases[i].status || (g.bad == 1) != cases[i].bad ||
            g.close_after != cases[i].close) {
            fail_msg("case %zu: status %d bad %d close %d", i, g.status, g.bad, g.close_after);
        }
        /* after BAD nothing more is parsed */
        if (g.bad) {
            size_t used = 1;
            assert_int_equal(https_parser_feed(p, SPAN_LIT("GET /healthz HTTP/1.1\r\n\r\n"), &used),
                             HTTPS_STEP_BAD);
            assert_int_equal(used, 0);
        }
        https_parser_free(p);
    }
}

static void test_parse_rejected_body_dropped_and_next_request(void **state)
{
    const char *two = "POST /nope HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                      "GET /healthz HTTP/1.1\r\n\r\n";
    struct https_parser *p;
    struct got g;
    size_t off;

    (void)state;
    https_parser_new(MAX_BODY, &p);
    off = feed(p, two, strlen(two), 0, &g);
    assert_int_equal(g.status, 404);
    assert_int_equal(g.body_len, 0); /* read and dropped */
    assert_true(g.keep_alive);
    https_parser_next(p);
    feed(p, two + off, strlen(two) - off, 0, &g);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.route, HTTPS_ROUTE_HEALTHZ);
    https_parser_free(p);
}

static void test_parse_limits(void **state)
{
    struct https_parser *p;
    struct got g;
    struct buf b;

    (void)state;
    /* a head over 16 KiB */
    buf_init(&b, 1 << 20);
    P(buf_append_str(&b, "POST /v1/events HTTP/1.1\r\nX-Big: "));
    for (int i = 0; i < HTTPS_MAX_HEAD; i++) {
        P(buf_append_byte(&b, 'a'));
    }
    P(buf_append_str(&b, "\r\n\r\n"));
    for (size_t piece = 0; piece <= 4096; piece += 4096) {
        https_parser_new(MAX_BODY, &p);
        feed(p, (const char *)b.data, b.len, piece, &g);
        assert_int_equal(g.bad, 1);
        assert_int_equal(g.status, 431);
        assert_true(g.close_after);
        https_parser_free(p);
    }
    /* too many headers */
    buf_reset(&b);
    P(buf_append_str(&b, "GET /healthz HTTP/1.1\r\n"));
    for (int i = 0; i <= HTTPS_MAX_HEADERS; i++) {
        P(buf_appendf(&b, "X-H%d: v\r\n", i));
    }
    P(buf_append_str(&b, "\r\n"));
    https_parser_new(MAX_BODY, &p);
    feed(p, (const char *)b.data, b.len, 0, &g);
    assert_int_equal(g.status, 431);
    https_parser_free(p);
    /* exactly max body: fine; one more chunked byte: 413 mid-body */
    buf_reset(&b);
    P(buf_appendf(&b, "POST /v1/events HTTP/1.1\r\nContent-Length: %d\r\n\r\n", MAX_BODY));
    for (int i = 0; i < MAX_BODY; i++) {
        P(buf_append_byte(&b, ' '));
    }
    https_parser_new(MAX_BODY, &p);
    feed(p, (const char *)b.data, b.len, 0, &g);
    assert_int_equal(g.requests, 1);
    assert_int_equal(g.body_len, MAX_BODY);
    https_parser_free(p);
    buf_reset(&b);
    P(buf_append_str(&b, "POST /v1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    for (int i = 0; i < 3; i++) {
        P(buf_appendf(&b, "%x\r\n", MAX_BODY / 2));
        for (int k = 0; k < MAX_BODY / 2; k++) {
            P(buf_append_byte(&b, ' '));
        }
        P(buf_append_str(&b, "\r\n"));
    }
    P(buf_append_str(&b, "0\r\n\r\n"));
    https_parser_new(MAX_BODY, &p);
    feed(p, (const char *)b.data, b.len, 1000, &g);
    assert_int_equal(g.bad, 1);
    assert_int_equal(g.status, 413);
    assert_true(g.close_after);
    https_parser_free(p);
    buf_release(&b);
}

static void test_route_and_content_type(void **state)
{
    enum https_route r;
    bool nd;

    (void)state;
    assert_int_equal(https_route(SPAN_LIT("POST"), SPAN_LIT("/v1/events"), &r), 0);
    assert_int_equal(r, HTTPS_ROUTE_EVENTS);
    assert_int_equal(https_route(SPAN_LIT("POST"), SPAN_LIT("/v1/k8s/audit?timeout=30s"), &r), 0);
    assert_int_equal(r, HTTPS_ROUTE_K8S_AUDIT);
    assert_int_equal(https_route(SPAN_LIT("GET"), SPAN_LIT("/healthz"), &r), 0);
    assert_int_equal(https_route(SPAN_LIT("POST"), SPAN_LIT("/v1/events/"), &r), 404);
    assert_int_equal(https_route(SPAN_LIT("POST"), SPAN_LIT("/V1/EVENTS"), &r), 404);
    assert_int_equal(https_route(SPAN_LIT("DELETE"), SPAN_LIT("/v1/trivy"), &r), 405);
    assert_int_equal(r, HTTPS_ROUTE_TRIVY);
    assert_int_equal(https_route(SPAN_LIT("GET"), SPAN_LIT(""), &r), 404);

    assert_true(https_content_type_ok(SPAN_LIT("application/json"), &nd));
    assert_false(nd);
    assert_true(https_content_type_ok(SPAN_LIT(" Application/JSON ; charset=UTF-8"), &nd));
    assert_true(https_content_type_ok(SPAN_LIT("application/x-ndjson"), &nd));
    assert_true(nd);
    assert_true(https_content_type_ok(SPAN_LIT("text/plain;charset=us-ascii"), &nd));
    assert_false(nd);
    assert_false(https_content_type_ok(SPAN_LIT("application/x-www-form-urlencoded"), &nd));
    assert_false(https_content_type_ok(SPAN_LIT("application/jsonx"), &nd));
    assert_false(https_content_type_ok(SPAN_LIT(""), &nd));
}

/* --- bodies to events -------------------------------------------------------------- */

#define MAX_EVENTS 600

struct sink {
    int n;
    int fail_at; /* emit returns VG_ELIMIT at this event (1-based); 0 never */
    char source[MAX_EVENTS][16];
    char field[MAX_EVENTS][96]; /* the field the test asks for */
    enum vg_field want;
};

static int collect(void *arg, struct rec *r)
{
    struct sink *s = arg;

    if (s->fail_at && s->n + 1 == s->fail_at) {
        return VG_ELIMIT;
    }
    assert_true(s->n < MAX_EVENTS);
    assert_true(r->has_ts);
    snprintf(s->source[s->n], sizeof(s->source[0]), "%.*s", (int)r->str[VG_F_SOURCE].n,
             r->str[VG_F_SOURCE].p ? (const char *)r->str[VG_F_SOURCE].p : "");
    struct span f = r->str[s->want];
    snprintf(s->field[s->n], sizeof(s->field[0]), "%.*s", (int)f.n, f.p ? (const char *)f.p : "");
    s->n++;
    return 0;
}

static void make_req(struct https_req *req, enum https_route route, bool ndjson, const char *body,
                     size_t n)
{
    memset(req, 0, sizeof(*req));
    req->route = route;
    req->ndjson = ndjson;
    buf_init(&req->body, n + 1);
    if (n) {
        P(buf_append(&req->body, body, n));
    }
}

static int ingest(enum https_route route, bool ndjson, const char *body, struct sink *s,
                  struct https_result *res)
{
    struct https_req req;
    int rc;

    make_req(&req, route, ndjson, body, strlen(body));
    rc = https_ingest(&req, 42, collect, s, res);
    buf_release(&req.body);
    return rc;
}

static void expect_reject(const struct https_result *res, size_t i, uint32_t line, uint32_t column,
                          int64_t index, const char *substr)
{
    assert_true(i < res->nlisted);
    const struct https_reject *rj = &res->listed[i];
    if (rj->line != line || (column && rj->column != column) || rj->index != index ||
        !strstr(rj->error, substr)) {
        fail_msg("rejection %zu: line %u column %u index %lld '%s'; want line %u column %u index "
                 "%lld '%s'",
                 i, rj->line, rj->column, (long long)rj->index, rj->error, line, column,
                 (long long)index, substr);
    }
}

static void test_ingest_ndjson_bad_line(void **state)
{
    const char *body = "{\"message\":\"one\",\"host\":\"h1\"}\n"
                       "{\"message\":\"two\",\n"         /* cut off */
                       "   {\"message\": \"three\"} x\n" /* trailing junk */
                       "\n"
                       "[{\"message\":\"four\"},5,{\"message\":\"six\"}]\n"
                       "\"a string\"\n"
                       "{\"message\":\"seven\"}";
    struct sink s = { .want = VG_F_MESSAGE };
    struct https_result res;

    (void)state;
    P(ingest(HTTPS_ROUTE_EVENTS, true, body, &s, &res));
    assert_int_equal(res.accepted, 4);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.field[0], "one");
    assert_string_equal(s.field[1], "four");
    assert_string_equal(s.field[2], "six");
    assert_string_equal(s.field[3], "seven");
    assert_string_equal(s.source[0], "http");
    assert_int_equal(res.rejected, 4);
    assert_int_equal(res.nlisted, 4);
    expect_reject(&res, 0, 2, 0, -1, "bad JSON");
    expect_reject(&res, 1, 3, 25, -1, "more after the JSON value");
    expect_reject(&res, 2, 5, 1, 1, "not a JSON object");
    expect_reject(&res, 3, 6, 1, -1, "not a JSON object or array");
}

static void test_ingest_json_stream(void **state)
{
    struct sink s = { .want = VG_F_MESSAGE };
    struct https_result res;

    (void)state;
    /* NDJSON sent as application/json: a line cut off, then good lines */
    P(ingest(HTTPS_ROUTE_EVENTS, false,
             "{\"message\":\"a\"}\n{\"message\":\"cut\n{\"message\":\"b\"}\n{\"message\":\"c\"}",
             &s, &res));
    /* jansson reads the cut string to the end of its line: an error on the same line */
    assert_int_equal(res.accepted, 3);
    assert_int_equal(res.rejected, 1);
    expect_reject(&res, 0, 2, 0, -1, "bad JSON");
    assert_string_equal(s.field[1], "b");

    /* a value cut off at the end of its line, the next document on the next line */
    memset(&s, 0, sizeof(s));
    s.want = VG_F_MESSAGE;
    P(ingest(HTTPS_ROUTE_EVENTS, false, "{\"message\":\"a\"\n\n  {\"message\":\"b\"}\n", &s, &res));
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.rejected, 1);
    expect_reject(&res, 0, 1, 1, -1, "cut off");
    assert_string_equal(s.field[0], "b");

    /* pretty-printed documents, concatenated, and a single array */
    memset(&s, 0, sizeof(s));
    s.want = VG_F_MESSAGE;
    P(ingest(HTTPS_ROUTE_EVENTS, false,
             "{\n  \"message\": \"p1\"\n}\n{\n  \"message\": \"p2\"\n} [{\"message\":\"p3\"}]", &s,
             &res));
    assert_int_equal(res.accepted, 3);
    assert_int_equal(res.rejected, 0);

    /* a pretty-printed document broken inside: the rest of the body is not read, so a
     * line of it never passes for an event */
    memset(&s, 0, sizeof(s));
    s.want = VG_F_MESSAGE;
    P(ingest(HTTPS_ROUTE_EVENTS, false,
             "{\"message\":\"ok\"}\n[\n  {\"message\": \"x\"},,\n  {\"message\": \"y\"}\n]\n"
             "{\"message\":\"after\"}",
             &s, &res));
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.rejected, 1);
    expect_reject(&res, 0, 3, 0, -1, "the rest of the body was not read");

    /* a body cut off inside a pretty-printed array: none of its lines passes for an
     * event; nor does a broken document's next line that is not a new document */
    memset(&s, 0, sizeof(s));
    s.want = VG_F_MESSAGE;
    P(ingest(HTTPS_ROUTE_EVENTS, false, "[\n{\"message\":\"a\"},\n{\"message\":\"b\"}\n", &s,
             &res));
    assert_int_equal(res.accepted, 0);
    assert_int_equal(res.rejected, 1);
    expect_reject(&res, 0, 1, 1, -1, "cut off by the end of the body");
    P(ingest(HTTPS_ROUTE_EVENTS, false, "{\"message\":\"a\"\n\"b\":{\"message\":\"c\"}}\n", &s,
             &res));
    assert_int_equal(res.accepted, 0);
    expect_reject(&res, 0, 2, 0, -1, "the rest of the body was not read");
    /* NDJSON: a line cut off at its end is placed at the end of the line */
    P(ingest(HTTPS_ROUTE_EVENTS, true, "{\"message\":\"ok\"}\n{\"message\": \"x\"\n", &s, &res));
    assert_int_equal(res.accepted, 1);
    expect_reject(&res, 0, 2, 16, -1, "bad JSON");
    assert_null(strstr(res.listed[0].error, "error:")); /* the parser's category is dropped */

    /* empty and blank bodies hold nothing */
    memset(&s, 0, sizeof(s));
    P(ingest(HTTPS_ROUTE_EVENTS, false, "", &s, &res));
    assert_int_equal(res.accepted + res.rejected, 0);
    P(ingest(HTTPS_ROUTE_EVENTS, true, " \n\r\n\t", &s, &res));
    assert_int_equal(res.accepted + res.rejected, 0);
}

static void test_ingest_k8s_eventlist(void **state)
{
#define EV                                                                    \
 "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"auditID\":\"%d\"," \
 "\"verb\":\"get\",\"user\":{\"username\":\"u%d\"},\"objectRef\":{"           \
 "\"resource\":\"pods\",\"namespace\":\"ns\",\"name\":\"pod-%d\"},"           \
 "\"requestReceivedTimestamp\":\"2024-05-01T00:00:0%d.000001Z\"}"
    struct buf body;
    struct sink s = { .want = VG_F_POD };
    struct https_result res;

    (void)state;
    buf_init(&body, 1 << 16);
    P(buf_append_str(&body, "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\","
                            "\"metadata\":{},\"items\":["));
    for (int i = 0; i < 3; i++) {
        P(buf_appendf(&body, EV, i, i, i, i));
        P(buf_append_byte(&body, ','));
    }
    P(buf_append_str(&body, "{\"kind\":0}]}"));
    P(ingest(HTTPS_ROUTE_K8S_AUDIT, false, (const char *)body.data, &s, &res));
    assert_int_equal(res.accepted, 3);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.source[0], "k8s-audit");
    assert_string_equal(s.field[2], "pod-2");
    assert_int_equal(res.rejected, 1);
    expect_reject(&res, 0, 1, 1, 3, "");
    /* a single Event, and an EventList without items */
    memset(&s, 0, sizeof(s));
    s.want = VG_F_POD;
    buf_reset(&body);
    P(buf_appendf(&body, EV, 7, 7, 7, 7));
    P(buf_append_str(&body, "\n{\"kind\":\"EventList\"}"));
    P(ingest(HTTPS_ROUTE_K8S_AUDIT, false, (const char *)body.data, &s, &res));
    assert_int_equal(res.accepted, 1);
    assert_string_equal(s.field[0], "pod-7");
    expect_reject(&res, 0, 2, 1, -1, "EventList without an items array");
    /* "EventList" spelled with an escape is the same string (its items are split), and
     * the word as another key's value, or a kind of another length, is no EventList. */
    memset(&s, 0, sizeof(s));
    s.want = VG_F_POD;
    buf_reset(&body);
    P(buf_append_str(&body, "{\"kind\":\"Event\\u004cist\",\"items\":["));
    P(buf_appendf(&body, EV, 1, 1, 1, 1));
    P(buf_append_byte(&body, ','));
    P(buf_appendf(&body, EV, 2, 2, 2, 2));
    P(buf_append_str(&body, "]}\n{\"kind\":\"EventLists\",\"items\":[],\"x\":\"EventList\"}"));
    P(ingest(HTTPS_ROUTE_EVENTS, false, (const char *)body.data, &s, &res));
    assert_int_equal(res.accepted, 3);
    assert_string_equal(s.field[0], "pod-1");
    assert_string_equal(s.field[1], "pod-2");
    assert_int_equal(res.rejected, 0);
    buf_release(&body);
}

static const char *corpus_dir(void)
{
    const char *d = getenv("VG_CORPUS_DIR");
    return d && *d ? d : "tests/data/corpus";
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    struct stat st;

    if (!f) {
        return NULL;
    }
    assert_int_equal(fstat(fileno(f), &st), 0);
    char *p = malloc((size_t)st.st_size + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    p[st.st_size] = 0;
    fclose(f);
    *n = (size_t)st.st_size;
    return p;
}

/* Every file of a corpus folder through one route as application/json; returns the
 * totals. */
static void ingest_dir(const char *rel, enum https_route route, struct sink *s, uint64_t *accepted,
                       uint64_t *rejected)
{
    char dir[1024];
    DIR *d;
    struct dirent *e;

    snprintf(dir, sizeof(dir), "%s/%s", corpus_dir(), rel);
    d = opendir(dir);
    if (!d) {
        fail_msg("cannot open %s", dir);
    }
    while ((e = readdir(d)) != NULL) {
        char path[2048];
        size_t n;
        struct https_req req;
        struct https_result res;
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        char *text = read_file(path, &n);
        assert_non_null(text);
        make_req(&req, route, false, text, n);
        P(https_ingest(&req, 42, collect, s, &res));
        *accepted += res.accepted;
        *rejected += res.rejected;
        buf_release(&req.body);
        free(text);
    }
    closedir(d);
}

static void test_ingest_corpus(void **state)
{
    struct sink *s = calloc(1, sizeof(*s));
    uint64_t acc = 0;
    uint64_t rej = 0;

    (void)state;
    /* 37 Falco alerts (FORMATS.md section 1), one or several per file, NDJSON and
     * pretty-printed */
    s->want = VG_F_RULE;
    ingest_dir("falco", HTTPS_ROUTE_FALCO, s, &acc, &rej);
    ingest_dir("falco/extracted", HTTPS_ROUTE_FALCO, s, &acc, &rej);
    assert_int_equal(acc, 37);
    assert_int_equal(rej, 0);
    for (int i = 0; i < s->n; i++) {
        assert_string_equal(s->source[i], "falco");
        assert_true(strlen(s->field[i]) > 0);
    }
    /* 90 audit events and the malformed {"kind": 0} (FORMATS.md section 2) */
    memset(s, 0, sizeof(*s));
    s->want = VG_F_ACTION;
    acc = rej = 0;
    ingest_dir("k8s-audit", HTTPS_ROUTE_K8S_AUDIT, s, &acc, &rej);
    ingest_dir("k8s-audit/falco-trace-files", HTTPS_ROUTE_K8S_AUDIT, s, &acc, &rej);
    assert_int_equal(acc, 90);
    assert_int_equal(rej, 1);
    for (int i = 0; i < s->n; i++) {
        assert_string_equal(s->source[i], "k8s-audit");
    }
    free(s);
}

static void test_ingest_trivy(void **state)
{
    char path[1024];
    size_t n;
    struct sink *s = calloc(1, sizeof(*s));
    struct https_req req;
    struct https_result res;

    (void)state;
    s->want = VG_F_CVE;
    snprintf(path, sizeof(path), "%s/trivy/defectdojo-unittests/misconfigurations_and_secrets.json",
             corpus_dir());
    char *text = read_file(path, &n);
    assert_non_null(text);
    make_req(&req, HTTPS_ROUTE_TRIVY, false, text, n);
    P(https_ingest(&req, 42, collect, s, &res));
    assert_int_equal(res.accepted, 5); /* 2 vulnerabilities, 1 misconfig, 2 secrets */
    assert_int_equal(res.rejected, 0);
    assert_string_equal(s->source[0], "trivy");
    assert_string_equal(s->field[0], "CVE-2021-33503");
    assert_string_equal(s->field[2], ""); /* a misconfiguration has no CVE */
    buf_release(&req.body);
    free(text);

    /* not a report; a report whose structure is broken; a finding that does not map */
    memset(s, 0, sizeof(*s));
    s->want = VG_F_CVE;
    P(ingest(HTTPS_ROUTE_TRIVY, false,
             "{\"hello\":1}\n{\"Results\":[{\"Vulnerabilities\":[{\"VulnerabilityID\":\"C-1\"},"
             "7]}]}\n{\"Results\":[{\"Vulnerabilities\":[{\"PkgName\":\"x\"},{"
             "\"VulnerabilityID\":\"C-2\"}]}]}",
             s, &res));
    assert_int_equal(res.accepted, 1);
    assert_string_equal(s->field[0], "C-2");
    assert_int_equal(res.rejected, 3);
    expect_reject(&res, 0, 1, 1, -1, "not a Trivy or Grype report");
    expect_reject(&res, 1, 2, 1, -1, "is not an object");
    expect_reject(&res, 2, 3, 1, 0, "VulnerabilityID");
    free(s);
}

static void test_ingest_emit_error_and_many_rejections(void **state)
{
    struct sink s = { .want = VG_F_MESSAGE, .fail_at = 2 };
    struct https_result res;
    struct buf body;

    (void)state;
    assert_int_equal(ingest(HTTPS_ROUTE_EVENTS, true,
                            "{\"message\":\"1\"}\n{\"message\":\"2\"}\n"
                            "{\"message\":\"3\"}",
                            &s, &res),
                     VG_ELIMIT);
    assert_int_equal(res.accepted, 1);
    assert_int_equal(res.stop_line, 2);
    /* rejections past HTTPS_MAX_LISTED are counted, not listed */
    buf_init(&body, 1 << 20);
    for (int i = 0; i < 100; i++) {
        P(buf_append_str(&body, "nope\n"));
    }
    memset(&s, 0, sizeof(s));
    P(ingest(HTTPS_ROUTE_FALCO, true, (const char *)body.data, &s, &res));
    assert_int_equal(res.rejected, 100);
    assert_int_equal(res.nlisted, HTTPS_MAX_LISTED);
    expect_reject(&res, HTTPS_MAX_LISTED - 1, HTTPS_MAX_LISTED, 0, -1, "bad JSON");
    buf_release(&body);
}

/* --- replies ----------------------------------------------------------------------- */

static void test_replies(void **state)
{
    struct buf out;
    struct buf mp;
    struct https_result res;
    struct span v;
    int64_t i;

    (void)state;
    buf_init(&out, 1 << 16);
    P(https_reply(&out, 200, true, "application/json", NULL, SPAN_LIT("{\"accepted\":3}\n")));
    assert_string_equal((const char *)out.data,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Content-Length: 15\r\n\r\n{\"accepted\":3}\n");
    buf_reset(&out);
    P(https_reply(&out, 405, false, "application/json", "Allow: POST\r\n", SPAN_LIT("{}")));
    assert_string_equal((const char *)out.data,
                        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\n"
                        "Content-Length: 2\r\nConnection: close\r\nAllow: POST\r\n\r\n{}");
    buf_reset(&out);
    P(https_reply(&out, 200, true, "text/plain", NULL, SPAN_LIT("")));
    assert_string_equal((const char *)out.data, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");

    memset(&res, 0, sizeof(res));
    res.accepted = 7;
    buf_reset(&out);
    P(https_result_json(&res, &out));
    assert_string_equal((const char *)out.data, "{\"accepted\":7}\n");

    res.rejected = 2;
    res.nlisted = 2;
    res.listed[0] = (struct https_reject){ 3, 9, -1, "bad JSON: \"quoted\"" };
    res.listed[1] = (struct https_reject){ 5, 1, 4, "not a JSON object" };
    buf_reset(&out);
    P(https_result_json(&res, &out));
    buf_init(&mp, 1 << 16);
    P(json_to_mp(buf_span(&out), &mp, NULL, NULL)); /* valid JSON */
    struct span doc = buf_span(&mp);
    assert_int_equal(mp_map_get(doc, SPAN_LIT("line"), &v), 1);
    assert_true(mp_get_i64(v, &i) && i == 3);
    assert_int_equal(mp_map_get(doc, SPAN_LIT("column"), &v), 1);
    assert_true(mp_get_i64(v, &i) && i == 9);
    assert_int_equal(mp_map_get(doc, SPAN_LIT("accepted"), &v), 1);
    assert_true(mp_get_i64(v, &i) && i == 7);
    assert_int_equal(mp_map_get(doc, SPAN_LIT("rejected_count"), &v), 1);
    assert_true(mp_get_i64(v, &i) && i == 2);
    assert_int_equal(mp_map_get(doc, SPAN_LIT("error"), &v), 1);
    struct span s;
    assert_true(mp_get_str(v, &s) && span_eq_str(s, "bad JSON: \"quoted\""));
    assert_int_equal(mp_map_get(doc, SPAN_LIT("rejected"), &v), 1);
    assert_int_equal(mp_value_len(v, v.n, 8), (ssize_t)v.n);
    assert_non_null(strstr((const char *)out.data, "{\"line\":5,\"column\":1,\"index\":4,"));
    buf_reset(&out);
    P(https_error_json("no such path", &out));
    assert_string_equal((const char *)out.data, "{\"error\":\"no such path\"}\n");
    assert_string_equal(https_reason(413), "Content Too Large");
    assert_string_equal(https_reason(501), "Not Implemented");
    buf_release(&mp);
    buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_simple_any_split),
        cmocka_unit_test(test_parse_pipelined),
        cmocka_unit_test(test_parse_chunked_expect_versions),
        cmocka_unit_test(test_parse_rejections),
        cmocka_unit_test(test_parse_rejected_body_dropped_and_next_request),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_route_and_content_type),
        cmocka_unit_test(test_ingest_ndjson_bad_line),
        cmocka_unit_test(test_ingest_json_stream),
        cmocka_unit_test(test_ingest_k8s_eventlist),
        cmocka_unit_test(test_ingest_corpus),
        cmocka_unit_test(test_ingest_trivy),
        cmocka_unit_test(test_ingest_emit_error_and_many_rejections),
        cmocka_unit_test(test_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
