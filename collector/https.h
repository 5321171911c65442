/* collector/https.h: the HTTPS ingest listener (DESIGN.md "Ingest", the https row):
 * HTTP/1.1 over a verified TLS connection (collector/conn.c), keep-alive and pipelined
 * requests answered in order.
 *
 *   POST /v1/events     NDJSON, a JSON object, or a JSON array of objects; each object is
 *                       mapped with MAP_AUTO (source "http" when it is no known format)
 *   POST /v1/falco      Falco http_output: one alert per request, or NDJSON  -> MAP_FALCO
 *   POST /v1/k8s/audit  the API server's audit webhook: an audit.k8s.io EventList (its
 *                       items), or Event objects                             -> MAP_K8S_AUDIT
 *   POST /v1/trivy      a Trivy or Grype JSON report, one event per finding
 *                       (schemas/trivy_report.h)                             -> MAP_TRIVY
 *   GET  /healthz       200 "ok"; 503 "stopping", or "not ready: WHY" while ingest is
 *                       refused (the disk below store.free_reserve, the store failing,
 *                       limits.memory used up: metrics_ready)
 * On every POST route an EventList's items are its events and an array's elements are.
 *
 * Replies (JSON bodies, Content-Type: application/json):
 *   200 {"accepted": N}  every event of the request is durable (sent only then).
 *   400 {"error": "...", "line": L, "column": C, "accepted": N, "rejected": [{"line": L,
 *        "column": C, ["index": I,] "error": "..."}, ...], "rejected_count": M}
 *        some document did not parse or did not map. The other documents of the request
 *        ARE stored, and the reply (sent once they are durable) says how many: a client
 *        must not resend the body as a whole. "line"/"column" at the top are the first
 *        rejection's; "rejected" lists the first HTTPS_MAX_LISTED; "index" is the element
 *        of an array or EventList. 400 rather than 200: a client that reads only the
 *        status still sees that part of what it sent was refused.
 *   400 {"error": "..."}   a request that is not HTTP/1.x; the connection is closed.
 *   404 unknown path, 405 wrong method (with Allow), 413 a body over listen.max_frame_bytes,
 *   415 a Content-Type other than application/json, application/x-ndjson or text/plain
 *   (none at all is taken as JSON) or a Content-Encoding other than identity, 501 a
 *   Transfer-Encoding other than chunked (TE: gzip, chunked; the connection closes), 431 a
 *   request head over HTTPS_MAX_HEAD bytes or HTTPS_MAX_HEADERS headers, 503 the store
 *   failed to commit (nothing of the request is acknowledged; the client retries).
 *   413 {"error": "...", "line": L, "accepted": 0} also when a body's events, once
 *   normalized, do not fit one store batch (many tiny events; L: where they stopped
 *   fitting): nothing of the request is stored (a request is all or nothing); send
 *   them in smaller bodies.
 * 413 and 431 close the connection after the reply, as does a rejection announced before
 * the body was sent (Expect: 100-continue); other rejections read and drop the body and
 * keep the connection. Expect: 100-continue gets "100 Continue" when the request head is
 * acceptable. Every rejection is counted (frames_rejected, events_rejected), logged and
 * recorded as a source=vigil event (action rejected_input); past HTTPS_LOG_REJECTS per
 * connection they are only counted.
 *
 * Bodies: application/x-ndjson is read line by line: each line is one document, a bad
 * line is rejected and the next one read. application/json and text/plain are a
 * sequence of JSON documents (one object, an array, or several of them, e.g. NDJSON):
 * after a syntax error the reader goes on at the next line when the broken document was
 * on one line (or was cut off at its line's end); a broken document spanning lines
 * rejects the rest of the body. Chunked bodies are accepted.
 *
 * The request parser and the body handling are pure and tested alone (tests/unit/
 * collector/test_https.c, tests/fuzz/fuzz_https.c). Loop thread for the listener. */
#ifndef VG_COLLECTOR_HTTPS_H
#define VG_COLLECTOR_HTTPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collector/conn.h"
#include "common/buf.h"
#include "common/span.h"
#include "schemas/record.h"

extern const struct conn_proto https_proto;

#define HTTPS_MAX_HEAD    (16 * 1024) /* request line and headers, bytes */
#define HTTPS_MAX_HEADERS 100
#define HTTPS_MAX_LISTED  32 /* rejections listed in a 400 body */
#define HTTPS_MAX_QUEUED  64 /* responses owed on one connection before reading stops */
#define HTTPS_LOG_REJECTS 20 /* rejections logged per connection; the rest only counted */

enum https_route {
    HTTPS_ROUTE_NONE, /* unknown path */
    HTTPS_ROUTE_HEALTHZ,
    HTTPS_ROUTE_EVENTS,
    HTTPS_ROUTE_FALCO,
    HTTPS_ROUTE_K8S_AUDIT,
    HTTPS_ROUTE_TRIVY,
};

/* One request as the parser sees it. */
struct https_req {
    enum https_route route;
    int status;        /* 0: acceptable so far; else the 4xx/5xx to answer */
    const char *error; /* with status: why (static storage) */
    bool keep_alive;   /* false: close after the reply (Connection: close, HTTP/1.0) */
    bool expect_continue;
    bool ndjson;      /* Content-Type: application/x-ndjson */
    bool close_after; /* the rejection leaves the connection unusable (413, 431, 400) */
    char method[16];
    char path[96];      /* the request target, cut at 95 bytes (for logs) */
    uint64_t body_seen; /* body bytes received, kept or dropped */
    struct buf body;    /* bounded by max_body; empty when status != 0 */
};

/* What https_parser_feed stopped at. */
enum https_step {
    HTTPS_STEP_MORE,    /* every byte consumed; the request is not complete yet */
    HTTPS_STEP_HEAD,    /* the head is complete: answer 100-continue or reject now */
    HTTPS_STEP_REQUEST, /* a complete request: handle it, then https_parser_next */
    HTTPS_STEP_BAD,     /* not HTTP, or over a limit: reply req->status and close */
};

struct https_parser;

/* A parser for requests whose bodies may hold max_body bytes. Owned by the caller. */
void https_parser_new(size_t max_body, struct https_parser **out);
void https_parser_free(struct https_parser *p); /* takes NULL */

/* Feeds bytes. *used gets how many were consumed (the rest is to be fed again). After
 * HTTPS_STEP_BAD nothing more may be fed. */
enum https_step https_parser_feed(struct https_parser *p, struct span in, size_t *used);

/* The request being parsed (valid until https_parser_next or _free). */
struct https_req *https_parser_req(struct https_parser *p);

/* After HTTPS_STEP_REQUEST: forgets the request (keeping the body's memory up to
 * HTTPS_KEEP_BODY_BYTES). */
void https_parser_next(struct https_parser *p);

/* Where the parser stands: between requests, inside a request head, or inside its body
 * (until the request is complete). For the listener's timeouts and memory budget. */
enum https_phase { HTTPS_PHASE_IDLE, HTTPS_PHASE_HEAD, HTTPS_PHASE_BODY };
enum https_phase https_parser_phase(const struct https_parser *p);

/* The route and the status for a method and request target (query string ignored):
 * 0, 404 or 405. */
int https_route(struct span method, struct span target, enum https_route *route);

/* Whether a Content-Type value is accepted; *ndjson tells application/x-ndjson. */
bool https_content_type_ok(struct span value, bool *ndjson);

/* One rejected document. */
struct https_reject {
    uint32_t line, column; /* 1-based, in the body */
    int64_t index;         /* element of an array or EventList, or -1 */
    char error[120];
};

struct https_result {
    uint64_t accepted;
    uint64_t rejected;
    uint32_t stop_line; /* when emit failed: the line of the document it failed on */
    size_t nlisted;
    struct https_reject listed[HTTPS_MAX_LISTED];
};

/* Takes a mapped record (its spans valid during the call only): returns 0, or a
 * negative code that stops the request. */
typedef int (*https_emit_fn)(void *arg, struct rec *r);

/* Reads the body of a request routed to a POST route and hands every event that maps to
 * emit, in body order. fallback_ts is the time of events without one. Fills res (which it
 * clears first). Returns 0, or the first negative code emit returned (res says what was
 * accepted before it). Pure apart from emit; allocates its own scratch. */
int https_ingest(const struct https_req *req, int64_t fallback_ts, https_emit_fn emit, void *arg,
                 struct https_result *res);

/* Appends a complete response: status line, Content-Type (when body.n), Content-Length,
 * Connection: close when !keep_alive, extra (whole header lines, or NULL), body. */
int https_reply(struct buf *out, int status, bool keep_alive, const char *content_type,
                const char *extra, struct span body) VG_MUST_USE;

/* Appends the JSON body for res: {"accepted":N} or the 400 body above. */
int https_result_json(const struct https_result *res, struct buf *out) VG_MUST_USE;

/* Appends {"error":"..."} */
int https_error_json(const char *error, struct buf *out) VG_MUST_USE;

/* The reason phrase of a status ("OK", "Not Found", ...). */
const char *https_reason(int status);

#endif
