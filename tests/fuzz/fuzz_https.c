/* tests/fuzz/fuzz_https.c: the HTTPS listener's request handling over arbitrary bytes, as
 * a peer would send them after the TLS handshake. The first byte picks how the rest is cut
 * into reads (1..256 bytes, or all at once); the parser is driven as the listener drives
 * it (HEAD, REQUEST, next, BAD), and every complete request's body goes through
 * https_ingest on every POST route, as NDJSON and as a JSON stream. Each record handed
 * out must encode; the reply bodies must be valid JSON. Rejecting is fine; crashing,
 * leaking, reading out of bounds or consuming more than was fed is not. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collector/https.h"
#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY (64 * 1024)

static int emit(void *arg, struct rec *r)
{
    struct buf *enc = arg;

    assert(r->has_ts);
    buf_reset(enc);
    int rc = rec_encode(r, enc);
    assert(rc == 0);
    return 0;
}

static void check_json(const struct buf *b)
{
    struct buf mp;

    buf_init(&mp, 4 * b->len + 4096);
    int rc = json_to_mp(buf_span(b), &mp, NULL, NULL);
    assert(rc == 0);
    buf_release(&mp);
}

static void handle(const struct https_req *req)
{
    static const enum https_route routes[] = { HTTPS_ROUTE_EVENTS, HTTPS_ROUTE_FALCO,
                                               HTTPS_ROUTE_K8S_AUDIT, HTTPS_ROUTE_TRIVY };
    struct buf enc;
    struct buf out;
    struct buf reply;
    struct https_result res;

    assert(req->body.len <= MAX_BODY);
    buf_init(&enc, 1 << 24);
    buf_init(&out, 1 << 20);
    buf_init(&reply, 1 << 21);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        for (int nd = 0; nd < 2; nd++) {
            struct https_req r = *req; /* shares the body, read only */
            r.route = routes[i];
            r.ndjson = nd;
            int rc = https_ingest(&r, 1, emit, &enc, &res);
            assert(rc == 0);
            assert(res.nlisted <= HTTPS_MAX_LISTED && res.nlisted <= res.rejected);
            buf_reset(&out);
            rc = https_result_json(&res, &out);
            assert(rc == 0);
            check_json(&out);
            buf_reset(&reply);
            rc = https_reply(&reply, res.rejected ? 400 : 200, req->keep_alive, "application/json",
                             NULL, buf_span(&out));
            assert(rc == 0);
        }
    }
    buf_release(&enc);
    buf_release(&out);
    buf_release(&reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct https_parser *p;
    size_t piece;
    size_t off = 1;

    if (size == 0) {
        return 0;
    }
    piece = data[0] == 0 ? size : (size_t)data[0];
    https_parser_new(MAX_BODY, &p);
    while (off < size) {
        size_t len = piece < size - off ? piece : size - off;
        size_t used = 0;
        enum https_step st = https_parser_feed(p, (struct span){ data + off, len }, &used);
        assert(used <= len);
        off += used;
        struct https_req *req = https_parser_req(p);
        if (st == HTTPS_STEP_BAD) {
            assert(req->status >= 400 && req->close_after);
            struct buf e;
            buf_init(&e, 4096);
            int rc = https_error_json(req->error ? req->error : "?", &e);
            assert(rc == 0);
            check_json(&e);
            buf_release(&e);
            break;
        }
        if (st == HTTPS_STEP_REQUEST) {
            if (req->status == 0 && req->route != HTTPS_ROUTE_HEALTHZ) {
                handle(req);
            }
            https_parser_next(p);
        } else if (st == HTTPS_STEP_MORE) {
            assert(used == len);
        }
    }
    https_parser_free(p);
    return 0;
}
