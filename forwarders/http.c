/* forwarders/http.c: HTTP(S) requests through libcurl's multi socket interface, driven
 * by the libuv loop: libcurl says which sockets to watch (CURLMOPT_SOCKETFUNCTION:
 * one uv_poll_t each) and when to wake it (CURLMOPT_TIMERFUNCTION: one uv_timer_t);
 * their events go back through curl_multi_socket_action. Nothing blocks the loop: name
 * resolution is libcurl's threaded resolver, TLS and I/O are non-blocking. The one user
 * of <curl/curl.h>.
 *
 * Every request verifies the server's certificate (CURLOPT_SSL_VERIFYPEER and
 * VERIFYHOST stay on; a CA file may replace the system's), has a connect and a total
 * timeout, speaks only http and https and follows no redirect. Loop thread. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "forwarders/fwd_int.h"

#define HTTP_MAX_BODY (8u << 20) /* a request body; alerts are far smaller */

struct http_sock;

struct http_xfer {
    struct http_client *c;
    CURL *easy;
    struct curl_slist *hdrs;
    struct http_req req;
    struct http_resp resp;
    http_done_fn fn;
    void *arg;
    int64_t start_ns;
    char errbuf[CURL_ERROR_SIZE];
    struct http_xfer *prev, *next;
};

struct http_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http_client *c;
    struct http_sock *prev, *next;
};

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct http_xfer *xfers; /* in flight */
    struct http_sock *socks; /* watched */
    int closing_handles;     /* uv_close() calls whose callback has not run */
    bool closing;
    void (*done)(void *);
    void *done_arg;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init is not thread-safe and must run once per process. */
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_req_init(struct http_req *q)
{
    memset(q, 0, sizeof(*q));
    buf_init(&q->body, HTTP_MAX_BODY);
}

int http_req_header(struct http_req *q, const char *fmt, ...)
{
    char line[8192];
    va_list ap;

    if (q->nheaders == HTTP_MAX_HEADERS) {
        return VG_ELIMIT;
    }
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || strpbrk(line, "\r\n")) {
        memset(line, 0, sizeof(line));
        return VG_ELIMIT; /* a header line must be one line */
    }
    q->headers[q->nheaders++] = xstrdup(line);
    memset(line, 0, sizeof(line)); /* may hold a token */
    return 0;
}

void http_req_release(struct http_req *q)
{
    free(q->url);
    q->url = NULL;
    buf_release(&q->body);
    for (size_t i = 0; i < q->nheaders; i++) {
        memset(q->headers[i], 0, strlen(q->headers[i]));
        free(q->headers[i]);
    }
    q->nheaders = 0;
}

/* ---- the loop side ---- */

static void maybe_done(struct http_client *c)
{
    if (c->closing && c->closing_handles == 0 && !c->xfers) {
        void (*done)(void *) = c->done;
        void *arg = c->done_arg;
        free(c);
        if (done) {
            done(arg);
        }
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http_client *c = h->data;
    if (h->type == UV_POLL) {
        free((struct http_sock *)h); /* poll is its first member */
    }
    c->closing_handles--;
    maybe_done(c);
}

static void sock_close(struct http_sock *s)
{
    struct http_client *c = s->c;
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        c->socks = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    uv_poll_stop(&s->poll);
    c->closing_handles++;
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static void finish(struct http_xfer *x, int rc)
{
    struct http_client *c = x->c;
    long status = 0;

    if (x->easy) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    }
    x->resp.rc = rc;
    x->resp.status = rc == 0 ? status : 0;
    x->resp.took_ns = vg_mono_ns() - x->start_ns;
    if (rc != 0 && !x->resp.error[0]) {
        snprintf(x->resp.error, sizeof(x->resp.error), "%s",
                 x->errbuf[0] ? x->errbuf : vg_strerror(rc < 0 ? rc : -EIO));
    }
    if (x->prev) {
        x->prev->next = x->next;
    } else if (c->xfers == x) {
        c->xfers = x->next;
    }
    if (x->next) {
        x->next->prev = x->prev;
    }
    if (x->easy) {
        curl_multi_remove_handle(c->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->hdrs);
    x->fn(x->arg, &x->resp);
    http_req_release(&x->req);
    buf_release(&x->resp.body);
    free(x);
}

static void check_info(struct http_client *c)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        struct http_xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode res = m->data.result;
        if (res != CURLE_OK && !x->errbuf[0]) {
            snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_easy_strerror(res));
        }
        /* rc: 0 for an answer, else the transport failure (-ETIMEDOUT for timeouts, so
         * a caller can tell; -EIO for the rest, with libcurl's message) */
        int rc = res == CURLE_OK ? 0 : res == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        finish(x, rc);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct http_sock *s = (struct http_sock *)h;
    struct http_client *c = s->c;
    int flags = 0;
    int running;

    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
        flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_info(c);
}

static void on_timer(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_info(c);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct http_sock *s = socketp;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
            free(s);
            return -1; /* libcurl fails the transfer */
        }
        s->poll.data = c;
        s->next = c->socks;
        if (c->socks) {
            c->socks->prev = s;
        }
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) {
        ev |= UV_READABLE;
    }
    if (what & CURL_POLL_OUT) {
        ev |= UV_WRITABLE;
    }
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;

    (void)multi;
    if (c->closing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        /* 0 means "now", but libcurl must not be re-entered from here: next tick. */
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

int http_client_new(uv_loop_t *loop, struct http_client **out)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        return -EIO;
    }
    struct http_client *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return -ENOMEM;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    *out = c;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct http_xfer *x = arg;
    size_t n = size * nmemb;
    size_t room = HTTP_MAX_RESP_BODY - x->resp.body.len;

    /* Keep the first bytes (for errors and `vigil alerts test`), drop the rest. */
    if (room > 0 && buf_append(&x->resp.body, p, n < room ? n : room) < 0) {
        return 0;
    }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct http_xfer *x = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";

    if (n > sizeof(name) - 1 && strncasecmp(p, name, sizeof(name) - 1) == 0) {
        size_t off = sizeof(name) - 1;
        while (off < n && (p[off] == ' ' || p[off] == '\t')) {
            off++;
        }
        size_t len = n - off;
        while (len > 0 && (p[off + len - 1] == '\r' || p[off + len - 1] == '\n')) {
            len--;
        }
        if (len >= sizeof(x->resp.retry_after)) {
            len = sizeof(x->resp.retry_after) - 1;
        }
        memcpy(x->resp.retry_after, p + off, len);
        x->resp.retry_after[len] = 0;
    }
    return n;
}

void http_client_send(struct http_client *c, struct http_req *req, http_done_fn fn, void *arg)
{
    struct http_xfer *x = xcalloc(1, sizeof(*x));
    CURLcode e = CURLE_OK;

    x->c = c;
    x->req = *req;
    memset(req, 0, sizeof(*req)); /* ownership moved */
    x->fn = fn;
    x->arg = arg;
    x->start_ns = vg_mono_ns();
    buf_init(&x->resp.body, HTTP_MAX_RESP_BODY);
    x->next = c->xfers;
    if (c->xfers) {
        c->xfers->prev = x;
    }
    c->xfers = x;
    if (c->closing) {
        finish(x, -ECANCELED);
        return;
    }
    if (!x->req.url || !(x->easy = curl_easy_init())) {
        finish(x, -EINVAL);
        return;
    }
    x->hdrs = curl_slist_append(x->hdrs, "Expect:"); /* no 100-continue round trip */
    x->hdrs = curl_slist_append(x->hdrs, "User-Agent: vigil/" VG_VERSION);
    for (size_t i = 0; i < x->req.nheaders; i++) {
        x->hdrs = curl_slist_append(x->hdrs, x->req.headers[i]);
    }
#define SET(opt, v)                       \
 do {                                     \
  if (e == CURLE_OK) {                    \
   e = curl_easy_setopt(x->easy, opt, v); \
  }                                       \
 } while (0)
    SET(CURLOPT_PRIVATE, x);
    SET(CURLOPT_URL, x->req.url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, x->req.body.len ? (char *)x->req.body.data : "");
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req.body.len);
    SET(CURLOPT_HTTPHEADER, x->hdrs);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(x->req.connect_timeout_ns / 1000000));
    SET(CURLOPT_TIMEOUT_MS, (long)(x->req.timeout_ns / 1000000));
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (x->req.ca_file) {
        SET(CURLOPT_CAINFO, x->req.ca_file);
    }
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
#undef SET
    if (e != CURLE_OK) {
        snprintf(x->resp.error, sizeof(x->resp.error), "cannot set up the request: %s",
                 curl_easy_strerror(e));
        finish(x, -EINVAL);
        return;
    }
    if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
        snprintf(x->resp.error, sizeof(x->resp.error), "cannot start the request");
        finish(x, -EIO);
    }
}

void http_client_close(struct http_client *c, void (*done)(void *), void *arg)
{
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    while (c->xfers) {
        snprintf(c->xfers->resp.error, sizeof(c->xfers->resp.error), "cancelled: stopping");
        finish(c->xfers, -ECANCELED);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks) {
        sock_close(c->socks);
    }
    uv_timer_stop(&c->timer);
    c->closing_handles++;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}
