/* collector/https.c: the HTTPS ingest listener (see https.h). The only file that
 * includes <http_parser.h>.
 *
 * Layers: http-parser callbacks fill a struct https_req (the parser pauses at the end
 * of the head and of each request, so the caller acts between requests and the next
 * pipelined one waits in c->in); https_ingest turns a body into mapped records; the
 * connection glue at the bottom routes, ingests and answers. Replies leave in request
 * order from a per-connection queue: a reply that acknowledges events waits in it until
 * the ingest port says they are durable, and the replies behind it wait too.
 *
 * Bounds: the head by HTTPS_MAX_HEAD and HTTPS_MAX_HEADERS, a body by
 * listen.max_frame_bytes (one body buffer per connection), the reply queue by
 * HTTPS_MAX_QUEUED (reading stops past it), a body's msgpack by twice its JSON size.
 * Loop thread for the listener; the parser and https_ingest are pure. */
#include "collector/https.h"

#include <errno.h>
#include <http_parser.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "schemas/map.h"
#include "schemas/trivy_report.h"

/* Bodies above this are given back to the allocator after their request. */
#define HTTPS_KEEP_BODY_BYTES (256 * 1024)

/* --- the request parser ------------------------------------------------------------ */

enum hp_event { HP_NONE, HP_HEAD, HP_REQUEST, HP_BAD };

struct https_parser {
    http_parser hp;
    size_t max_body;
    struct https_req req;
    enum hp_event event; /* what a callback paused for */
    enum https_phase phase;
    bool dead; /* after HTTPS_STEP_BAD */
    size_t head_bytes;
    unsigned nheaders;
    bool in_value; /* the last header callback was a value */
    char name[32];
    size_t name_len; /* may exceed sizeof(name): a long name matches nothing */
    char value[256];
    size_t value_len;
};

static void req_reset(struct https_req *r)
{
    struct buf body = r->body;

    memset(r, 0, sizeof(*r));
    r->body = body;
    buf_reset(&r->body);
}

static int head_limit(struct https_parser *p, size_t more)
{
    p->head_bytes += more;
    if (p->head_bytes > HTTPS_MAX_HEAD) {
        p->req.status = 431;
        p->req.error = "request head over 16 KiB";
        p->req.close_after = true;
        return -1;
    }
    return 0;
}

static void append_cut(char *dst, size_t cap, size_t *len, const char *p, size_t n)
{
    if (*len < cap - 1) {
        size_t k = n < cap - 1 - *len ? n : cap - 1 - *len;
        memcpy(dst + *len, p, k);
        dst[*len + k] = 0;
    }
    *len += n;
}

static int on_message_begin(http_parser *hp)
{
    struct https_parser *p = hp->data;

    req_reset(&p->req);
    p->phase = HTTPS_PHASE_HEAD;
    p->head_bytes = 0;
    p->nheaders = 0;
    p->in_value = false;
    p->name_len = p->value_len = 0;
    p->name[0] = p->value[0] = 0;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
    struct https_parser *p = hp->data;
    size_t len = strlen(p->req.path);

    append_cut(p->req.path, sizeof(p->req.path), &len, at, n);
    return head_limit(p, n);
}

static bool name_is(const struct https_parser *p, const char *name)
{
    return p->name_len < sizeof(p->name) &&
           span_eq_nocase((struct span){ (const uint8_t *)p->name, p->name_len }, span_str(name));
}

static struct span trim(struct span s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        span_advance(&s, 1);
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) {
        s.n--;
    }
    return s;
}

/* One complete header: only the few that change what we do are looked at. */
static int header_done(struct https_parser *p)
{
    struct https_req *r = &p->req;
    bool long_value = p->value_len >= sizeof(p->value);
    struct span v = trim((struct span){ (const uint8_t *)p->value,
                                        long_value ? sizeof(p->value) - 1 : p->value_len });

    if (++p->nheaders > HTTPS_MAX_HEADERS) {
        r->status = 431;
        r->error = "more than 100 request headers";
        r->close_after = true;
        return -1;
    }
    if (name_is(p, "content-type")) {
        bool nd = false;
        if (long_value || !https_content_type_ok(v, &nd)) {
            if (r->status == 0) {
                r->status = 415;
                r->error = "Content-Type must be application/json, application/x-ndjson or "
                           "text/plain";
            }
        }
        r->ndjson = nd;
    } else if (name_is(p, "expect")) {
        r->expect_continue = span_eq_nocase(v, SPAN_LIT("100-continue"));
    } else if (name_is(p, "transfer-encoding")) {
        /* Only chunked framing is understood: a body under any other coding (gzip,
         * deflate, ...) would be read as if it were plain, so it is refused as a whole. */
        struct span rest = v;
        while (rest.n > 0 && r->status == 0) {
            const uint8_t *comma = memchr(rest.p, ',', rest.n);
            struct span one =
                trim((struct span){ rest.p, comma ? (size_t)(comma - rest.p) : rest.n });
            span_advance(&rest, comma ? (size_t)(comma - rest.p) + 1 : rest.n);
            if (long_value || !span_eq_nocase(one, SPAN_LIT("chunked"))) {
                r->status = 501;
                r->error = "Transfer-Encoding other than chunked is not implemented (send the "
                           "body plain or chunked)";
                r->close_after = true;
            }
        }
    } else if (name_is(p, "content-encoding")) {
        if (!span_eq_nocase(v, SPAN_LIT("identity")) && r->status == 0) {
            r->status = 415;
            r->error = "Content-Encoding is not supported (send the body uncompressed)";
        }
    }
    p->name_len = p->value_len = 0;
    p->name[0] = p->value[0] = 0;
    p->in_value = false;
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
    struct https_parser *p = hp->data;

    if (p->in_value && header_done(p) < 0) {
        return -1;
    }
    append_cut(p->name, sizeof(p->name), &p->name_len, at, n);
    return head_limit(p, n);
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
    struct https_parser *p = hp->data;

    p->in_value = true;
    append_cut(p->value, sizeof(p->value), &p->value_len, at, n);
    return head_limit(p, n);
}

static int on_headers_complete(http_parser *hp)
{
    struct https_parser *p = hp->data;
    struct https_req *r = &p->req;
    int rc;

    if (p->in_value && header_done(p) < 0) {
        return -1;
    }
    snprintf(r->method, sizeof(r->method), "%s", http_method_str((enum http_method)hp->method));
    r->keep_alive = http_should_keep_alive(hp) && !(hp->http_major == 1 && hp->http_minor == 0);
    rc = https_route(span_str(r->method), span_str(r->path), &r->route);
    if (rc != 0) {
        r->status = rc;
        r->error = rc == 404 ? "no such path: POST to /v1/events, /v1/falco, /v1/k8s/audit or "
                               "/v1/trivy; GET /healthz"
                             : "method not allowed on this path";
    } else if (r->status == 0 && (hp->flags & F_CONTENTLENGTH) &&
               hp->content_length > p->max_body) {
        r->status = 413;
        r->error = "request body over listen.max_frame_bytes";
        r->close_after = true;
    }
    p->event = HP_HEAD;
    p->phase = HTTPS_PHASE_BODY;
    http_parser_pause(hp, 1);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    struct https_parser *p = hp->data;
    struct https_req *r = &p->req;

    r->body_seen += n;
    if (r->body_seen > p->max_body) {
        /* Kept or dropped, a body this large is not read to its end. */
        if (r->status == 0) {
            r->status = 413;
            r->error = "request body over listen.max_frame_bytes";
        }
        r->close_after = true;
        buf_reset(&r->body);
        p->event = HP_BAD;
        http_parser_pause(hp, 1);
        return 0;
    }
    if (r->status == 0 && buf_append(&r->body, at, n) < 0) {
        r->status = 413; /* cannot happen: body.max is max_body + 1 */
        r->error = "request body over listen.max_frame_bytes";
        r->close_after = true;
        p->event = HP_BAD;
        http_parser_pause(hp, 1);
    }
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct https_parser *p = hp->data;

    if (hp->upgrade) {
        p->req.keep_alive = false; /* no protocol switch here: close after the reply */
    }
    p->event = HP_REQUEST;
    p->phase = HTTPS_PHASE_IDLE;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings hp_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void https_parser_new(size_t max_body, struct https_parser **out)
{
    struct https_parser *p = xcalloc(1, sizeof(*p));

    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
    p->max_body = max_body;
    buf_init(&p->req.body, max_body + 1);
    *out = p;
}

void https_parser_free(struct https_parser *p)
{
    if (p) {
        buf_release(&p->req.body);
        free(p);
    }
}

struct https_req *https_parser_req(struct https_parser *p)
{
    return &p->req;
}

enum https_phase https_parser_phase(const struct https_parser *p)
{
    return p->dead ? HTTPS_PHASE_IDLE : p->phase;
}

void https_parser_next(struct https_parser *p)
{
    if (p->req.body.cap > HTTPS_KEEP_BODY_BYTES) {
        buf_release(&p->req.body);
    }
    req_reset(&p->req);
}

enum https_step https_parser_feed(struct https_parser *p, struct span in, size_t *used)
{
    struct https_req *r = &p->req;

    *used = 0;
    if (p->dead) {
        return HTTPS_STEP_BAD;
    }
    if (in.n == 0) {
        return HTTPS_STEP_MORE; /* a length of 0 would tell http-parser EOF */
    }
    if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED) {
        http_parser_pause(&p->hp, 0);
    }
    p->event = HP_NONE;
    *used = http_parser_execute(&p->hp, &hp_settings, (const char *)in.p, in.n);
    enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
    if (e == HPE_PAUSED) {
        switch (p->event) {
        case HP_HEAD:
            return HTTPS_STEP_HEAD;
        case HP_REQUEST:
            return HTTPS_STEP_REQUEST;
        default:
            p->dead = true;
            return HTTPS_STEP_BAD;
        }
    }
    if (e != HPE_OK) {
        p->dead = true;
        if (r->status == 0 || !r->close_after) {
            /* a callback's limit set its own status; anything else is not HTTP/1.x */
            r->status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
            r->error = http_errno_description(e);
        }
        r->close_after = true;
        return HTTPS_STEP_BAD;
    }
    if (*used < in.n) {
        /* http-parser stops early only for an upgrade (CONNECT, Upgrade:) */
        p->dead = true;
        r->status = 400;
        r->error = "protocol upgrade is not supported";
        r->close_after = true;
        return HTTPS_STEP_BAD;
    }
    return HTTPS_STEP_MORE;
}

int https_route(struct span method, struct span target, enum https_route *route)
{
    static const struct {
        const char *path;
        enum https_route route;
        const char *method;
    } routes[] = {
        { "/v1/events", HTTPS_ROUTE_EVENTS, "POST" },
        { "/v1/falco", HTTPS_ROUTE_FALCO, "POST" },
        { "/v1/k8s/audit", HTTPS_ROUTE_K8S_AUDIT, "POST" },
        { "/v1/trivy", HTTPS_ROUTE_TRIVY, "POST" },
        { "/healthz", HTTPS_ROUTE_HEALTHZ, "GET" },
    };
    const uint8_t *q = memchr(target.p, '?', target.n);
    struct span path = { target.p, q ? (size_t)(q - target.p) : target.n };

    *route = HTTPS_ROUTE_NONE;
    for (size_t i = 0; i < VG_ARRAY_LEN(routes); i++) {
        if (span_eq_str(path, routes[i].path)) {
            *route = routes[i].route;
            return span_eq_str(method, routes[i].method) ? 0 : 405;
        }
    }
    return 404;
}

bool https_content_type_ok(struct span value, bool *ndjson)
{
    const uint8_t *semi = memchr(value.p, ';', value.n);
    struct span t = trim((struct span){ value.p, semi ? (size_t)(semi - value.p) : value.n });

    *ndjson = span_eq_nocase(t, SPAN_LIT("application/x-ndjson"));
    return *ndjson || span_eq_nocase(t, SPAN_LIT("application/json")) ||
           span_eq_nocase(t, SPAN_LIT("text/plain"));
}

/* --- bodies to events -------------------------------------------------------------- */

struct ingest {
    const struct https_req *req;
    enum map_source hint;
    int64_t fallback_ts;
    https_emit_fn emit;
    void *arg;
    struct https_result *res;
    struct buf mp;         /* the current document as msgpack */
    struct buf scratch;    /* map_event's computed fields */
    struct buf flat;       /* one flat Trivy finding */
    uint32_t line, column; /* where the current document starts */
    int64_t index;         /* the Trivy finding being mapped */
    int emit_rc;
};

static void reject(struct ingest *g, uint32_t line, uint32_t column, int64_t index, const char *fmt,
                   ...) VG_PRINTF(5, 6);

static void reject(struct ingest *g, uint32_t line, uint32_t column, int64_t index, const char *fmt,
                   ...)
{
    struct https_result *res = g->res;
    va_list ap;

    res->rejected++;
    if (res->nlisted < HTTPS_MAX_LISTED) {
        struct https_reject *rj = &res->listed[res->nlisted++];
        rj->line = line;
        rj->column = column;
        rj->index = index;
        va_start(ap, fmt);
        vsnprintf(rj->error, sizeof(rj->error), fmt, ap);
        va_end(ap);
    }
}

static int map_one(struct ingest *g, struct span ev, int64_t index)
{
    struct errbuf eb;
    struct rec r;
    int rc;

    buf_reset(&g->scratch);
    errbuf_clear(&eb);
    if (map_event(g->hint, ev, g->fallback_ts, "http", &r, &g->scratch, &eb) < 0) {
        reject(g, g->line, g->column, index, "%s", errbuf_msg(&eb));
        return 0;
    }
    if ((rc = g->emit(g->arg, &r)) < 0) {
        g->emit_rc = rc;
        g->res->stop_line = g->line;
        return rc;
    }
    g->res->accepted++;
    return 0;
}

static int on_finding(void *arg, struct span finding)
{
    struct ingest *g = arg;

    return map_one(g, finding, g->index++);
}

static int trivy_doc(struct ingest *g, struct span doc)
{
    struct errbuf eb;
    int rc;

    errbuf_clear(&eb);
    g->index = 0;
    rc = trivy_report_split(doc, &g->flat, on_finding, g, &eb);
    if (rc >= 0) {
        return 0;
    }
    if (g->emit_rc < 0) {
        return g->emit_rc;
    }
    reject(g, g->line, g->column, -1, "%s", errbuf_msg(&eb));
    return 0;
}

/* Whether doc (json_to_mp's msgpack) holds the string "EventList" anywhere, as the fixstr
 * json_to_mp writes it (0xa9 and the 9 bytes). Only such a document can be a k8s
 * EventList: looking for the bytes spares every other document a walk of its top-level
 * map (mp_map_get) before map_event walks it. */
static bool has_event_list(struct span doc)
{
    const uint8_t *p = doc.p;
    const uint8_t *end = doc.p + doc.n;

    while (end - p >= 10 && (p = memchr(p, 0xa9, (size_t)(end - p - 9))) != NULL) {
        if (memcmp(p + 1, "EventList", 9) == 0) {
            return true;
        }
        p++;
    }
    return false;
}

/* One parsed document: an object is an event, an array's elements and an EventList's
 * items are events. */
static int handle_doc(struct ingest *g, struct span doc)
{
    struct span cur = doc;
    struct span v;
    struct span kind;
    struct mp_obj o;

    if (g->req->route == HTTPS_ROUTE_TRIVY) {
        return trivy_doc(g, doc);
    }
    if (mp_read(&cur, &o) != 1 || (o.type != MP_MAP && o.type != MP_ARRAY)) {
        reject(g, g->line, g->column, -1, "not a JSON object or array");
        return 0;
    }
    if (o.type == MP_MAP) {
        if (has_event_list(doc) && mp_map_get(doc, SPAN_LIT("kind"), &v) == 1 &&
            mp_get_str(v, &kind) &&
            span_eq_str(kind, "EventList")) {
            if (mp_map_get(doc, SPAN_LIT("items"), &v) != 1 || mp_read(&v, &o) != 1 ||
                o.type != MP_ARRAY) {
                reject(g, g->line, g->column, -1, "EventList without an items array");
                return 0;
            }
            cur = v;
        } else {
            return map_one(g, doc, -1);
        }
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span el;
        int rc;
        if (mp_take(&cur, &el) < 0) {
            return VG_EFORMAT; /* json_to_mp wrote it: cannot happen */
        }
        struct span peek = el;
        struct mp_obj eo;
        if (mp_read(&peek, &eo) != 1 || eo.type != MP_MAP) {
            reject(g, g->line, g->column, i, "element is not a JSON object");
            continue;
        }
        if ((rc = map_one(g, el, i)) < 0) {
            return rc;
        }
    }
    return 0;
}

struct walk {
    struct span b;
    size_t pos;
    uint32_t line;
    size_t line_start;
};

/* Moves to `to`, counting lines. */
static void walk_to(struct walk *w, size_t to)
{
    const uint8_t *nl;

    while (w->pos < to && (nl = memchr(w->b.p + w->pos, '\n', to - w->pos)) != NULL) {
        w->line++;
        w->pos = (size_t)(nl - w->b.p) + 1;
        w->line_start = w->pos;
    }
    if (w->pos < to) {
        w->pos = to;
    }
}

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t line_end(struct span b, size_t from)
{
    const uint8_t *nl = memchr(b.p + from, '\n', b.n - from);
    return nl ? (size_t)(nl - b.p) : b.n;
}

/* Where json_to_mp failed, relative to where it started (1-based; line 1 column 1 when
 * it gave no place), and why without the parser's category: the reply says "bad JSON".
 * at_end: the document ran into the end of the text (the position says nothing then). */
static const char *json_error(const struct errbuf *eb, int *l, int *c, bool *at_end)
{
    *l = eb->pos.line > 0 ? (int)eb->pos.line : 1;
    *c = eb->pos.line > 0 ? (int)eb->pos.column : 1;
    *at_end = eb->pos.at_end;
    return errbuf_reason(eb);
}

static int walk_ndjson_line(struct ingest *g, struct walk *w)
{
    size_t end = line_end(w->b, w->pos);
    struct span text = { w->b.p + w->pos, end - w->pos };
    struct errbuf eb;
    size_t used = 0;
    int rc;

    buf_reset(&g->mp);
    errbuf_clear(&eb);
    rc = json_to_mp(text, &g->mp, &used, &eb);
    if (rc == 0) {
        size_t k = used;
        while (k < text.n && is_ws(text.p[k])) {
            k++;
        }
        if (k < text.n) {
            reject(g, g->line, g->column + (uint32_t)k, -1,
                   "more after the JSON value on this line");
        } else {
            rc = handle_doc(g, buf_span(&g->mp));
        }
    } else if (rc == VG_ELIMIT) {
        reject(g, g->line, g->column, -1, "document too large");
        rc = 0;
    } else {
        int l;
        int c;
        bool at_end;
        const char *why = json_error(&eb, &l, &c, &at_end);
        uint32_t col = g->column;
        if (at_end) {
            col += (uint32_t)text.n; /* the end of the line */
        } else if (l == 1 && c > 0) {
            col += (uint32_t)c - 1;
        }
        reject(g, g->line, col, -1, "bad JSON: %s", why);
        rc = 0;
    }
    walk_to(w, end);
    return rc;
}

/* A sequence of JSON documents. Returns 0 or emit's code; *stop when the rest of the
 * body cannot be read. */
static int walk_json_doc(struct ingest *g, struct walk *w, bool *stop)
{
    struct span text = { w->b.p + w->pos, w->b.n - w->pos };
    struct errbuf eb;
    size_t used = 0;
    int rc;
    int l;
    int c;
    bool at_end;

    buf_reset(&g->mp);
    errbuf_clear(&eb);
    rc = json_to_mp(text, &g->mp, &used, &eb);
    if (rc == 0) {
        rc = handle_doc(g, buf_span(&g->mp));
        walk_to(w, w->pos + (used > 0 ? used : 1));
        return rc;
    }
    if (rc == VG_ELIMIT) {
        reject(g, g->line, g->column, -1, "document too large; the rest of the body was not read");
        *stop = true;
        return 0;
    }
    const char *why = json_error(&eb, &l, &c, &at_end);
    size_t start = w->pos;
    if (at_end) {
        reject(g, g->line, g->column, -1, "bad JSON: document cut off by the end of the body");
        *stop = true;
        return 0;
    }
    if (l <= 1) {
        /* broken on its own line: go on at the next one */
        reject(g, g->line, g->column + (uint32_t)(c > 0 ? c - 1 : 0), -1, "bad JSON: %s", why);
        walk_to(w, line_end(w->b, start));
        return 0;
    }
    /* The error is on a later line. When it is at that line's first non-blank character
     * and that character opens an object or array, the document was cut off at the end
     * of an earlier line and a new one starts there (NDJSON with a truncated line). */
    size_t ls = start;
    for (int i = 1; i < l && ls < w->b.n; i++) {
        ls = line_end(w->b, ls);
        ls += ls < w->b.n;
    }
    size_t k = ls;
    size_t col = c > 0 ? (size_t)c - 1 : 0;
    while (k < w->b.n && is_ws(w->b.p[k]) && w->b.p[k] != '\n') {
        k++;
    }
    uint32_t eline = g->line + (uint32_t)l - 1;
    if (k < w->b.n && (w->b.p[k] == '{' || w->b.p[k] == '[') &&
        (col == k - ls || col == k - ls + 1)) {
        reject(g, g->line, g->column, -1,
               "bad JSON: document cut off (error at line %" PRIu32 " column %d: %s)", eline, c,
               why);
        walk_to(w, ls);
        return 0;
    }
    reject(g, eline, (uint32_t)c, -1, "bad JSON: %s; the rest of the body was not read", why);
    *stop = true;
    return 0;
}

int https_ingest(const struct https_req *req, int64_t fallback_ts, https_emit_fn emit, void *arg,
                 struct https_result *res)
{
    struct ingest g;
    struct walk w = { buf_span(&req->body), 0, 1, 0 };
    bool stop = false;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    memset(&g, 0, sizeof(g));
    g.req = req;
    g.fallback_ts = fallback_ts;
    g.emit = emit;
    g.arg = arg;
    g.res = res;
    switch (req->route) {
    case HTTPS_ROUTE_FALCO:
        g.hint = MAP_FALCO;
        break;
    case HTTPS_ROUTE_K8S_AUDIT:
        g.hint = MAP_K8S_AUDIT;
        break;
    case HTTPS_ROUTE_TRIVY:
        g.hint = MAP_TRIVY;
        break;
    default:
        g.hint = MAP_AUTO;
        break;
    }
    /* msgpack is at most about twice its JSON (1e300: 5 bytes -> 9) */
    buf_init(&g.mp, 2 * w.b.n + 65536);
    buf_init(&g.scratch, MAP_SCRATCH_BYTES);
    buf_init(&g.flat, 4 * w.b.n + 65536);
    while (rc == 0 && !stop) {
        while (w.pos < w.b.n && is_ws(w.b.p[w.pos])) {
            walk_to(&w, w.pos + 1);
        }
        if (w.pos >= w.b.n) {
            break;
        }
        g.line = w.line;
        g.column = (uint32_t)(w.pos - w.line_start + 1);
        rc = req->ndjson ? walk_ndjson_line(&g, &w) : walk_json_doc(&g, &w, &stop);
    }
    buf_release(&g.mp);
    buf_release(&g.scratch);
    buf_release(&g.flat);
    return rc;
}

/* --- replies ----------------------------------------------------------------------- */

const char *https_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

int https_reply(struct buf *out, int status, bool keep_alive, const char *content_type,
                const char *extra, struct span body)
{
    int rc = buf_appendf(out, "HTTP/1.1 %d %s\r\n", status, https_reason(status));

    if (rc == 0 && body.n) {
        rc = buf_appendf(out, "Content-Type: %s\r\n", content_type);
    }
    if (rc == 0) {
        rc = buf_appendf(out, "Content-Length: %zu\r\n%s%s\r\n", body.n,
                         keep_alive ? "" : "Connection: close\r\n", extra ? extra : "");
    }
    if (rc == 0) {
        rc = buf_append(out, body.p, body.n);
    }
    return rc;
}

int https_error_json(const char *error, struct buf *out)
{
    int rc = buf_append_str(out, "{\"error\":");

    if (rc == 0) {
        rc = json_append_str(out, span_str(error));
    }
    return rc == 0 ? buf_append_str(out, "}\n") : rc;
}

static int reject_json(const struct https_reject *rj, struct buf *out)
{
    int rc = buf_appendf(out, "\"line\":%" PRIu32 ",\"column\":%" PRIu32 ",", rj->line, rj->column);

    if (rc == 0 && rj->index >= 0) {
        rc = buf_appendf(out, "\"index\":%" PRId64 ",", rj->index);
    }
    if (rc == 0) {
        rc = buf_append_str(out, "\"error\":");
    }
    return rc == 0 ? json_append_str(out, span_str(rj->error)) : rc;
}

int https_result_json(const struct https_result *res, struct buf *out)
{
    int rc;

    if (res->rejected == 0) {
        return buf_appendf(out, "{\"accepted\":%" PRIu64 "}\n", res->accepted);
    }
    rc = buf_append_byte(out, '{');
    if (rc == 0 && res->nlisted > 0) {
        rc = reject_json(&res->listed[0], out);
        if (rc == 0) {
            rc = buf_append_byte(out, ',');
        }
    }
    if (rc == 0) {
        rc = buf_appendf(out,
                         "\"accepted\":%" PRIu64 ",\"rejected_count\":%" PRIu64 ",\"rejected\":[",
                         res->accepted, res->rejected);
    }
    for (size_t i = 0; i < res->nlisted && rc == 0; i++) {
        rc = buf_append_str(out, i ? ",{" : "{");
        if (rc == 0) {
            rc = reject_json(&res->listed[i], out);
        }
        if (rc == 0) {
            rc = buf_append_byte(out, '}');
        }
    }
    return rc == 0 ? buf_append_str(out, "]}\n") : rc;
}

/* --- the connection ---------------------------------------------------------------- */

/* One reply owed to the peer, in request order. Owned by the connection's queue; a
 * durability waiter (on_durable) points at it while holding a reference on the
 * connection, so the reply outlives the wait even when the connection closes first. */
struct https_resp {
    struct https_resp *next;
    struct conn *c;
    bool ready;     /* may be sent once every reply before it was */
    bool close;     /* the connection closes after it */
    bool durable;   /* it acknowledges events (counted as an ack) */
    size_t owed;    /* the request body's bytes, while its events are not yet durable */
    char *evidence; /* a source=vigil message to record once the batch committed, or NULL */
    struct buf bytes;
};

/* c->proto_state of an HTTPS connection: made on its first bytes, freed by
 * https_release when the connection is freed (after every waiter is done). */
struct https_conn {
    struct https_parser *p;
    size_t body_charged; /* the request body's capacity, charged to limits.memory */
    struct https_resp *head, **tail;
    unsigned nqueued;
    bool stop;         /* no more requests are read: the last queued reply closes */
    bool queue_paused; /* reading stopped because nqueued reached HTTPS_MAX_QUEUED */
    unsigned rejects_logged;
};

static struct https_conn *conn_https(struct conn *c)
{
    struct https_conn *h = c->proto_state;

    if (!h) {
        h = xcalloc(1, sizeof(*h));
        https_parser_new((size_t)c->env->cfg->max_frame_bytes, &h->p);
        h->tail = &h->head;
        c->proto_state = h;
    }
    return h;
}

static void https_release(struct conn *c)
{
    struct https_conn *h = c->proto_state;

    if (!h) {
        return;
    }
    while (h->head) {
        struct https_resp *r = h->head;
        h->head = r->next;
        buf_release(&r->bytes);
        free(r->evidence);
        free(r);
    }
    struct buf none;
    buf_init(&none, 0);
    conn_buf_settle(c, &none, &h->body_charged); /* the body goes with the parser */
    https_parser_free(h->p);
    free(h);
    c->proto_state = NULL;
}

static struct https_resp *queue_reply(struct https_conn *h, struct conn *c, int status,
                                      bool keep_alive, const char *ctype, const char *extra,
                                      struct span body)
{
    struct https_resp *r = xcalloc(1, sizeof(*r));

    r->c = c;
    r->ready = true;
    r->close = !keep_alive;
    buf_init(&r->bytes, body.n + 1024);
    if (https_reply(&r->bytes, status, keep_alive, ctype, extra, body) < 0) {
        buf_reset(&r->bytes); /* cannot happen: sized above */
    }
    *h->tail = r;
    h->tail = &r->next;
    h->nqueued++;
    if (r->close) {
        h->stop = true;
    }
    return r;
}

static void queue_json(struct https_conn *h, struct conn *c, int status, bool keep_alive,
                       const char *extra, const char *error)
{
    struct buf body;

    buf_init(&body, 4096);
    if (https_error_json(error, &body) < 0) {
        buf_reset(&body);
    }
    queue_reply(h, c, status, keep_alive, "application/json", extra, buf_span(&body));
    buf_release(&body);
}

/* Sends the ready replies at the head of the queue, in order. */
static void flush(struct conn *c, struct https_conn *h)
{
    while (h->head && h->head->ready) {
        struct https_resp *r = h->head;
        bool close = r->close;
        h->head = r->next;
        if (!h->head) {
            h->tail = &h->head;
        }
        h->nqueued--;
        if (c->state != CONN_CLOSING && r->bytes.len > 0 &&
            conn_send(c, r->bytes.data, r->bytes.len) == 0 && r->durable) {
            c->env->m->acks_sent++;
        }
        buf_release(&r->bytes);
        free(r->evidence);
        free(r);
        if (close) {
            /* nothing is queued behind a closing reply: parsing stopped there */
            conn_finish(c);
            return;
        }
    }
}

/* A rejection: counted, logged and recorded (the first HTTPS_LOG_REJECTS per
 * connection), as DESIGN.md asks of evidence. */
static void note_reject(struct conn *c, struct https_conn *h, const struct https_req *req,
                        int status, char **defer, const char *fmt, ...) VG_PRINTF(6, 7);

/* With defer, the source=vigil message is handed back (caller frees) instead of being
 * recorded now: for when the open batch has no room left. */
static void note_reject(struct conn *c, struct https_conn *h, const struct https_req *req,
                        int status, char **defer, const char *fmt, ...)
{
    char why[400];
    struct buf path;
    va_list ap;

    if (h->rejects_logged >= HTTPS_LOG_REJECTS) {
        return;
    }
    h->rejects_logged++;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    buf_init(&path, 512);
    if (buf_append_escaped(&path, span_str(req->method), 16) < 0 ||
        buf_append_byte(&path, ' ') < 0 || buf_append_escaped(&path, span_str(req->path), 80) < 0) {
        buf_reset(&path);
    }
    log_warn("conn %" PRIu64 " https peer %s agent '%s': %s: %d %s: %s", c->id, c->peer, c->agent,
             buf_cstr(&path), status, https_reason(status), why);
    if (defer) {
        struct buf msg;
        buf_init(&msg, 1024);
        if (buf_appendf(&msg, "HTTPS %s from %s agent '%s' answered %d: %s", buf_cstr(&path),
                        c->peer, c->agent, status, why) == 0) {
            *defer = xstrdup(buf_cstr(&msg));
        }
        buf_release(&msg);
    } else {
        ingest_self_event(c->env->port, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                          c->agent, "HTTPS %s from %s agent '%s' answered %d: %s", buf_cstr(&path),
                          c->peer, c->agent, status, why);
    }
    if (h->rejects_logged == HTTPS_LOG_REJECTS) {
        log_warn("conn %" PRIu64 " https peer %s: %d rejections; further ones on this connection "
                 "are only counted",
                 c->id, c->peer, HTTPS_LOG_REJECTS);
    }
    buf_release(&path);
}

/* A request refused as a whole (routing, content type, limits, not HTTP). */
static void refuse(struct conn *c, struct https_conn *h, const struct https_req *req, bool close)
{
    const char *extra = req->status == 405 ? (req->route == HTTPS_ROUTE_HEALTHZ ? "Allow: GET\r\n"
                                                                                : "Allow: POST\r\n")
                                           : NULL;

    c->env->m->frames_rejected++;
    note_reject(c, h, req, req->status, NULL, "%s", req->error ? req->error : "rejected");
    queue_json(h, c, req->status, req->keep_alive && !close && !req->close_after, extra,
               req->error ? req->error : "rejected");
}

static void on_durable(void *arg, int rc)
{
    struct https_resp *r = arg;
    struct conn *c = r->c;
    struct https_conn *h = c->proto_state;

    if (rc < 0) {
        struct buf body;
        buf_init(&body, 4096);
        log_error("conn %" PRIu64 " https peer %s agent '%s': store commit failed: %s; "
                  "request not acknowledged (the client retries)",
                  c->id, c->peer, c->agent, vg_strerror(rc));
        buf_reset(&r->bytes);
        if (https_error_json("store commit failed: nothing of this request is acknowledged; "
                             "retry",
                             &body) < 0 ||
            https_reply(&r->bytes, 503, false, "application/json", NULL, buf_span(&body)) < 0) {
            buf_reset(&r->bytes);
        }
        buf_release(&body);
        r->close = true;
        r->durable = false;
    }
    if (r->evidence) {
        ingest_self_event(c->env->port, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                          c->agent, "%s", r->evidence);
        free(r->evidence);
        r->evidence = NULL;
    }
    size_t owed = r->owed; /* flush may free r */
    r->ready = true;
    if (c->state != CONN_CLOSING) {
        flush(c, h);
    }
    conn_waiter_done(c, owed);
    if (h->queue_paused && h->nqueued < HTTPS_MAX_QUEUED / 2 && c->state == CONN_STREAMING) {
        h->queue_paused = false;
        conn_resume(c);
    }
    conn_unref(c);
}

struct emit_ctx {
    struct conn *c;
    int64_t now;
};

static int emit_event(void *arg, struct rec *r)
{
    struct emit_ctx *e = arg;
    struct conn *c = e->c;

    rec_set(r, VG_F_AGENT, span_str(c->agent));
    r->received = e->now;
    r->has_received = true;
    return ingest_add(c->env->port, r);
}

static void on_request(struct conn *c, struct https_conn *h, const struct https_req *req)
{
    struct lst_metrics *lm = c->env->m;
    struct emit_ctx e = { c, vg_now_ns() };
    struct https_result res;
    struct buf body;
    int rc;

    lm->frames++;
    if (req->status != 0) {
        refuse(c, h, req, false);
        return;
    }
    if (req->route == HTTPS_ROUTE_HEALTHZ) {
        char why[300];
        char text[320];
        if (conn_stopping(c)) {
            queue_reply(h, c, 503, req->keep_alive, "text/plain", NULL, SPAN_LIT("stopping\n"));
        } else if (!metrics_ready(c->env->all, why, sizeof(why))) {
            snprintf(text, sizeof(text), "not ready: %s\n", why);
            queue_reply(h, c, 503, req->keep_alive, "text/plain", NULL, span_str(text));
        } else {
            queue_reply(h, c, 200, req->keep_alive, "text/plain", NULL, SPAN_LIT("ok\n"));
        }
        return;
    }
    /* All or nothing: the request's events are stored together or not at all (a unit,
     * ingest.h), so a client told to send a body again never finds part of it stored. */
    ingest_unit_begin(c->env->port);
    rc = https_ingest(req, e.now, emit_event, &e, &res);
    ingest_unit_end(c->env->port, rc == 0);
    buf_init(&body, 64 * 1024);
    if (rc < 0) {
        /* The events, once normalized, do not fit one store batch (many tiny events
         * inflate as records): nothing of the request is stored; the client sends them
         * again in smaller bodies rather than retrying this one. */
        lm->frames_rejected++;
        note_reject(c, h, req, 413, NULL,
                    "the request's events do not fit one store batch (%s): %" PRIu64
                    " events up to line %" PRIu32 " fitted; nothing of the request is stored",
                    vg_strerror(rc), res.accepted, res.stop_line);
        if (buf_appendf(&body,
                        "{\"error\":\"the request's events do not fit one store batch: "
                        "nothing of it is stored; send smaller bodies\",\"line\":%" PRIu32
                        ",\"accepted\":0}\n",
                        res.stop_line) < 0) {
            buf_reset(&body);
        }
        queue_reply(h, c, 413, false, "application/json", NULL, buf_span(&body));
        buf_release(&body);
        return;
    }
    lm->events_received += res.accepted;
    char *evidence = NULL;
    if (res.rejected > 0) {
        const struct https_reject *rj = &res.listed[0];
        lm->events_rejected += res.rejected;
        note_reject(c, h, req, 400, res.accepted > 0 ? &evidence : NULL,
                    "%" PRIu64 " document(s) rejected, %" PRIu64 " accepted; first at line %" PRIu32
                    " column %" PRIu32 ": %s",
                    res.rejected, res.accepted, rj->line, rj->column, rj->error);
    }
    if (https_result_json(&res, &body) < 0) {
        buf_reset(&body);
    }
    struct https_resp *r = queue_reply(h, c, res.rejected ? 400 : 200, req->keep_alive,
                                       "application/json", NULL, buf_span(&body));
    buf_release(&body);
    r->evidence = evidence; /* recorded after the events it is about */
    if (res.accepted > 0) {
        r->ready = false;
        r->durable = true;
        r->owed = req->body.len;
        conn_ref(c);
        conn_waiter_add(c, r->owed);
        ingest_when_durable(c->env->port, on_durable, r);
    }
}

static void on_head(struct conn *c, struct https_conn *h, const struct https_req *req)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (req->status != 0) {
        if (req->expect_continue || req->close_after) {
            /* Refused before the body: the peer may or may not send it, so the framing
             * is lost after the reply. */
            c->env->m->frames++;
            refuse(c, h, req, true);
        }
        return; /* otherwise the body is read, dropped, and the reply follows it */
    }
    if (req->expect_continue && h->nqueued == 0) {
        conn_send(c, cont, sizeof(cont) - 1);
    }
}

static int https_on_data(struct conn *c)
{
    struct https_conn *h = conn_https(c);
    struct span in = buf_span(&c->in);

    while (in.n > 0 && c->state != CONN_CLOSING && !h->stop) {
        size_t used = 0;

        if (ingest_full(c->env->port)) {
            conn_pause(c);
            break;
        }
        /* Replies that are ready leave now: what stays queued waits for the store, and
         * that wait's end resumes a connection paused here (on_durable). */
        flush(c, h);
        if (c->state == CONN_CLOSING || h->stop) {
            break;
        }
        if (h->nqueued >= HTTPS_MAX_QUEUED) {
            h->queue_paused = true;
            conn_pause(c);
            break;
        }
        /* A body is read into the request's buffer: make room for what may go there,
         * within the memory budget, before the parser copies it. */
        struct https_req *cur = https_parser_req(h->p);
        if (https_parser_phase(h->p) == HTTPS_PHASE_BODY && cur->status == 0) {
            size_t room = cur->body.max - cur->body.len;
            int mrc = conn_buf_reserve(c, &cur->body, &h->body_charged, in.n < room ? in.n : room);
            if (mrc == -EAGAIN) {
                conn_wait_memory(c);
                break;
            }
        }
        enum https_step st = https_parser_feed(h->p, in, &used);
        span_advance(&in, used);
        struct https_req *req = https_parser_req(h->p);
        if (st == HTTPS_STEP_HEAD) {
            on_head(c, h, req);
        } else if (st == HTTPS_STEP_REQUEST) {
            on_request(c, h, req);
            https_parser_next(h->p);
            conn_buf_settle(c, &req->body, &h->body_charged);
        } else if (st == HTTPS_STEP_BAD) {
            c->env->m->frames++;
            refuse(c, h, req, true);
        } else {
            break;
        }
    }
    if (c->state != CONN_CLOSING) {
        /* After a closing reply the rest of the input is not read. */
        buf_consume(&c->in, h->stop ? c->in.len : c->in.len - in.n);
        flush(c, h);
    }
    return 0;
}

static enum conn_phase https_conn_phase(struct conn *c)
{
    struct https_conn *h = c->proto_state;

    switch (h ? https_parser_phase(h->p) : HTTPS_PHASE_IDLE) {
    case HTTPS_PHASE_HEAD:
        return CONN_PHASE_HEAD;
    case HTTPS_PHASE_BODY:
        return CONN_PHASE_FRAME;
    default:
        /* Bytes not parsed yet (reading paused) begin a head. */
        return c->in.len > 0 ? CONN_PHASE_HEAD : CONN_PHASE_IDLE;
    }
}

const struct conn_proto https_proto = {
    .kind = LST_HTTPS,
    .on_data = https_on_data,
    .on_release = https_release,
    .phase = https_conn_phase,
};
