/* collector/admin.c: the admin endpoint: GET /metrics, GET /healthz (ready: 200, or 503
 * with the reason ingest is refused), GET /livez (alive). One request per connection
 * (Connection: close), GET only, request head bounded to 8 KiB. Only the request line is
 * read; the full HTTP/1.1 parser (http-parser) serves the HTTPS ingest listener. Loop
 * thread. */
#include "collector/admin.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

#define ADMIN_MAX_HEAD 8192

static void respond(struct conn *c, int status, const char *reason, const char *ctype,
                    struct span body)
{
    struct buf out;

    buf_init(&out, body.n + 512);
    if (buf_appendf(&out,
                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\n\r\n",
                    status, reason, ctype, body.n) == 0 &&
        buf_append(&out, body.p, body.n) == 0) {
        conn_send(c, out.data, out.len);
    }
    buf_release(&out);
    conn_finish(c);
}

static int admin_on_data(struct conn *c)
{
    struct span in = buf_span(&c->in);
    const uint8_t *end = memmem(in.p, in.n, "\r\n\r\n", 4);

    if (!end) {
        if (in.n > ADMIN_MAX_HEAD) {
            respond(c, 431, "Request Header Fields Too Large", "text/plain",
                    SPAN_LIT("request head over 8 KiB\n"));
        }
        return 0;
    }
    const uint8_t *eol = memchr(in.p, '\r', in.n);
    struct span line = { in.p, (size_t)(eol - in.p) };

    if (span_starts_with(line, SPAN_LIT("GET /metrics ")) || span_eq_str(line, "GET /metrics")) {
        struct buf body;
        buf_init(&body, 1u << 20);
        if (metrics_render(c->env->all, &body) == 0 &&
            (!c->env->render_more || c->env->render_more(c->env->render_arg, &body) == 0)) {
            respond(c, 200, "OK", "text/plain; version=0.0.4", buf_span(&body));
        } else {
            respond(c, 500, "Internal Server Error", "text/plain", SPAN_LIT("metrics too large\n"));
        }
        buf_release(&body);
    } else if (span_starts_with(line, SPAN_LIT("GET /healthz "))) {
        char why[300];
        char body[320];
        if (conn_stopping(c)) {
            respond(c, 503, "Service Unavailable", "text/plain", SPAN_LIT("stopping\n"));
        } else if (!metrics_ready(c->env->all, why, sizeof(why))) {
            snprintf(body, sizeof(body), "not ready: %s\n", why);
            respond(c, 503, "Service Unavailable", "text/plain", span_str(body));
        } else {
            respond(c, 200, "OK", "text/plain", SPAN_LIT("ok\n"));
        }
    } else if (span_starts_with(line, SPAN_LIT("GET /livez "))) {
        /* Alive: the loop answers. Not a readiness check (that is /healthz): a full disk
         * must not make a supervisor restart vigild over and over. */
        respond(c, 200, "OK", "text/plain", SPAN_LIT("ok\n"));
    } else if (span_starts_with(line, SPAN_LIT("GET "))) {
        respond(c, 404, "Not Found", "text/plain", SPAN_LIT("try /metrics, /healthz or /livez\n"));
    } else {
        respond(c, 405, "Method Not Allowed", "text/plain", SPAN_LIT("GET only\n"));
    }
    buf_consume(&c->in, c->in.len); /* one request per connection */
    return 0;
}

const struct conn_proto admin_proto = {
    .kind = LST_ADMIN,
    .on_data = admin_on_data,
    .on_release = NULL,
};
