/* query/send.c: the Forward client behind `vigil send` (see send.h).
 *
 * Documents are parsed (JSON via common/json.c, or text lines for syslog), packed as
 * PackedForward chunks of chunk_events entries each with a unique `chunk` id, and
 * written while at most `window` chunks await their ack. vigild acks a chunk only when
 * its events are durable, so a chunk leaves memory only when acked; after a broken
 * connection every unacked chunk is sent again on a new one (at least once). */
#include "query/send.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/tls.h"
#include "common/xalloc.h"
#include "schemas/forward.h"
#include "schemas/trivy_report.h"

#define SEND_MAX_DOC   (16u << 20)
#define SEND_MAX_CHUNK (8u << 20)

struct chunk {
    char id[40];
    struct buf msg; /* the encoded Forward message */
    uint32_t count;
};

struct sender {
    const struct send_opts *o;
    struct tls_ctx *ctx;
    struct tls_conn *conn;
    struct chunk *q; /* ring of in-flight chunks */
    int qhead, qlen, qcap;
    struct buf entries; /* the chunk being built */
    uint32_t nentries;
    struct buf ackbuf;
    struct buf marked; /* the event with its marks (send_opts.mark_keys) */
    uint64_t next_id;
    uint32_t id_salt;
    struct send_stats *st;
    struct errbuf *eb;
    int64_t t0, last_progress;
    int64_t deadline; /* mono ns the run must end by (--timeout), or 0 */
    int stalls;       /* reconnects since the last ack */
    bool expired;     /* the deadline passed: nothing more is tried */
    uint64_t sent_events;
    const char *tag;
};

void send_opts_init(struct send_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 24224;
    o->format = SEND_NDJSON;
    o->chunk_events = 1000;
    o->window = 8;
    o->timeout_ms = 30000;
    o->max_retries = 5;
}

int send_format_parse(const char *s, enum send_format *out)
{
    static const struct {
        const char *name;
        enum send_format f;
    } names[] = {
        { "ndjson", SEND_NDJSON },       { "json", SEND_NDJSON }, { "falco", SEND_FALCO },
        { "k8s-audit", SEND_K8S_AUDIT }, { "trivy", SEND_TRIVY }, { "syslog", SEND_SYSLOG },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].f;
            return 0;
        }
    }
    return VG_EPARSE;
}

int send_hostport_parse(const char *s, const char **host, int *port, char *hbuf, size_t hcap)
{
    const char *colon = strrchr(s, ':');
    uint64_t p;

    if (!colon || colon == s) {
        return VG_EPARSE;
    }
    size_t hn = (size_t)(colon - s);
    if (s[0] == '[' && hn >= 2 && s[hn - 1] == ']') {
        s++;
        hn -= 2;
    }
    if (hn + 1 > hcap || parse_u64(span_str(colon + 1), 65535, &p) < 0 || p == 0) {
        return VG_EPARSE;
    }
    memcpy(hbuf, s, hn);
    hbuf[hn] = 0;
    *host = hbuf;
    *port = (int)p;
    return 0;
}

static const char *format_tag(enum send_format f)
{
    switch (f) {
    case SEND_FALCO:
        return "falco";
    case SEND_K8S_AUDIT:
        return "k8s.audit";
    case SEND_TRIVY:
        return "trivy";
    case SEND_SYSLOG:
        return "syslog";
    default:
        return "vigil.send";
    }
}

static void progress(struct sender *s, bool final)
{
    if (!s->o->progress) {
        return;
    }
    int64_t now = vg_mono_ns();
    if (!final && now - s->last_progress < 250000000) {
        return;
    }
    s->last_progress = now;
    double secs = (double)(now - s->t0) / 1e9;
    fprintf(stderr, "\rvigil send: %" PRIu64 " events sent, %" PRIu64 " acknowledged (%.0f/s)%s",
            s->sent_events, s->st->events, secs > 0 ? (double)s->st->events / secs : 0.0,
            final ? "\n" : "");
    fflush(stderr);
}

/* How long the next blocking step may take: the step's timeout, cut to what is left of
 * --timeout. 0 when none is left. */
static int step_ms(const struct sender *s)
{
    if (!s->deadline) {
        return s->o->timeout_ms;
    }
    int64_t left = (s->deadline - vg_mono_ns()) / 1000000;
    return left <= 0 ? 0 : left < s->o->timeout_ms ? (int)left : s->o->timeout_ms;
}

static int out_of_time(struct sender *s)
{
    s->expired = true;
    errbuf_set(s->eb,
               "gave up after --timeout %d s (%" PRIu64 " of %" PRIu64 " events acknowledged)",
               s->o->total_timeout_ms / 1000, s->st->events, s->sent_events);
    return -ETIMEDOUT;
}

/* Whether --timeout has run out (then eb says so and nothing more is tried). */
static bool past_deadline(struct sender *s)
{
    if (s->deadline && vg_mono_ns() >= s->deadline) {
        out_of_time(s);
        return true;
    }
    return false;
}

static int connect_server(struct sender *s)
{
    int ms = step_ms(s);

    tls_conn_close(s->conn);
    s->conn = NULL;
    buf_reset(&s->ackbuf);
    if (ms == 0) {
        return out_of_time(s);
    }
    return tls_conn_open(s->ctx, s->o->host, s->o->port, ms, &s->conn, s->eb);
}

static struct chunk *q_at(struct sender *s, int i)
{
    return &s->q[(s->qhead + i) % s->qcap];
}

/* Reads until the ack of the oldest chunk arrives. */
static int wait_ack(struct sender *s)
{
    struct chunk *c = q_at(s, 0);

    for (;;) {
        struct span ack;
        uint64_t rejected = 0;
        ssize_t n = forward_decode_ack(buf_span(&s->ackbuf), &ack, &rejected);
        if (n < 0) {
            errbuf_set(s->eb, "server sent something that is not a Forward ack");
            return -EPROTO;
        }
        if (n > 0) {
            if (!span_eq_str(ack, c->id)) {
                errbuf_set(s->eb, "ack for an unknown chunk (expected '%s')", c->id);
                return -EPROTO;
            }
            buf_consume(&s->ackbuf, (size_t)n);
            s->st->events += c->count;
            s->st->rejected += rejected;
            s->st->chunks++;
            s->stalls = 0;
            buf_release(&c->msg);
            s->qhead = (s->qhead + 1) % s->qcap;
            s->qlen--;
            progress(s, false);
            return 0;
        }
        uint8_t tmp[4096];
        int ms = step_ms(s);
        if (ms == 0) {
            return out_of_time(s);
        }
        ssize_t r = tls_conn_read(s->conn, tmp, sizeof(tmp), ms);
        if (r == -ETIMEDOUT && past_deadline(s)) {
            return (int)r;
        }
        if (r == VG_ECERT) {
            errbuf_set(s->eb, "server %s:%d refused our certificate: %s (not retried)", s->o->host,
                       s->o->port, tls_conn_error(s->conn));
            return (int)r;
        }
        if (r < 0) {
            return (int)r;
        }
        if (buf_append(&s->ackbuf, tmp, (size_t)r) < 0) {
            errbuf_set(s->eb, "server sent over 64 KiB without a complete ack");
            return -EPROTO;
        }
    }
}

/* Whether a failure is worth another connection: not a refused certificate (the same
 * one would be refused again), not a server speaking something else, not --timeout
 * used up. */
static bool retryable(const struct sender *s, int rc)
{
    return rc != VG_ECERT && rc != -EPROTO && !s->expired;
}

/* After a failure: reconnect (with backoff) and resend every unacked chunk. At most
 * max_retries reconnects without an ack in between, all within --timeout. */
static int recover(struct sender *s, int why)
{
    if (!retryable(s, why)) {
        return why; /* eb says why */
    }
    for (int attempt = 1; attempt <= s->o->max_retries; attempt++) {
        struct errbuf eb;
        errbuf_clear(&eb);
        if (++s->stalls > s->o->max_retries) {
            break;
        }
        fprintf(stderr,
                "vigil send: connection lost (%s); reconnecting (%d/%d), %d chunk(s) "
                "to resend\n",
                vg_strerror(why), s->stalls, s->o->max_retries, s->qlen);
        int64_t pause_ns = (int64_t)(100000000LL << (attempt - 1));
        if (s->deadline && vg_mono_ns() + pause_ns >= s->deadline) {
            return out_of_time(s);
        }
        usleep((useconds_t)(pause_ns / 1000));
        struct errbuf *saved = s->eb;
        s->eb = &eb;
        int rc = connect_server(s);
        s->eb = saved;
        if (rc == VG_ECERT) {
            errbuf_set(s->eb, "%s (not retried)", errbuf_msg(&eb));
            return rc;
        }
        if (rc < 0 && (s->expired || past_deadline(s))) {
            return -ETIMEDOUT;
        }
        if (rc < 0) {
            why = rc;
            continue;
        }
        s->st->reconnects++;
        for (int i = 0; i < s->qlen && rc == 0; i++) {
            struct chunk *c = q_at(s, i);
            rc = tls_conn_write(s->conn, c->msg.data, c->msg.len);
        }
        if (rc == 0) {
            return 0;
        }
        why = rc;
    }
    errbuf_set(s->eb, "server %s:%d: no acknowledgement after %d reconnects: %s", s->o->host,
               s->o->port, s->o->max_retries, vg_strerror(why));
    return why;
}

static int wait_ack_retrying(struct sender *s)
{
    for (;;) {
        int rc = wait_ack(s);
        if (rc == 0 || rc == -EPROTO) {
            return rc;
        }
        if ((rc = recover(s, rc)) < 0) {
            return rc;
        }
    }
}

static int flush_chunk(struct sender *s)
{
    int rc;

    if (s->nentries == 0) {
        return 0;
    }
    while (s->qlen >= s->qcap) {
        if ((rc = wait_ack_retrying(s)) < 0) {
            return rc;
        }
    }
    struct chunk *c = q_at(s, s->qlen);
    snprintf(c->id, sizeof(c->id), "%08x-%" PRIu64, s->id_salt, ++s->next_id);
    buf_init(&c->msg, SEND_MAX_CHUNK + (1u << 20));
    c->count = s->nentries;
    rc = forward_encode_packed(&c->msg, span_str(s->tag), buf_span(&s->entries), s->nentries,
                               span_str(c->id));
    if (rc < 0) {
        buf_release(&c->msg);
        errbuf_set(s->eb, "cannot encode a chunk: %s", vg_strerror(rc));
        return rc;
    }
    s->qlen++;
    s->sent_events += s->nentries;
    buf_reset(&s->entries);
    s->nentries = 0;
    rc = tls_conn_write(s->conn, c->msg.data, c->msg.len);
    if (rc < 0 && (rc = recover(s, rc)) < 0) {
        return rc;
    }
    while (s->qlen >= s->o->window) {
        if ((rc = wait_ack_retrying(s)) < 0) {
            return rc;
        }
    }
    return 0;
}

int send_mark(const struct send_opts *o, struct span record, struct buf *out)
{
    struct span cur = record;
    struct mp_obj m;
    uint32_t nmarks = 0;
    uint32_t kept = 0;

    while (nmarks < SEND_MAX_MARKS && o->mark_keys[nmarks]) {
        nmarks++;
    }
    if (nmarks == 0 || mp_read(&cur, &m) != 1 || m.type != MP_MAP) {
        return buf_append(out, record.p, record.n);
    }
    /* Count the pairs kept (those not replaced by a mark) first: the map's header
     * comes before them. */
    struct span walk = cur;
    for (uint32_t i = 0; i < m.v.count; i++) {
        struct span k;
        struct span v;
        struct span ks;
        if (mp_take(&walk, &k) < 0 || mp_take(&walk, &v) < 0) {
            /* malformed: sent as it is, vigild says what is wrong */
            return buf_append(out, record.p, record.n);
        }
        bool marked = false;
        for (uint32_t j = 0; j < nmarks && mp_get_str(k, &ks); j++) {
            marked = marked || span_eq_str(ks, o->mark_keys[j]);
        }
        kept += !marked;
    }
    int rc = mp_put_map(out, kept + nmarks);
    for (uint32_t i = 0; rc == 0 && i < m.v.count; i++) {
        struct span k;
        struct span v;
        struct span ks;
        (void)mp_take(&cur, &k); /* walked above: well-formed */
        (void)mp_take(&cur, &v);
        bool marked = false;
        for (uint32_t j = 0; j < nmarks && mp_get_str(k, &ks); j++) {
            marked = marked || span_eq_str(ks, o->mark_keys[j]);
        }
        if (!marked) {
            rc = mp_put_raw(out, k);
            rc = rc < 0 ? rc : mp_put_raw(out, v);
        }
    }
    for (uint32_t j = 0; rc == 0 && j < nmarks; j++) {
        rc = mp_put_cstr(out, o->mark_keys[j]);
        rc = rc < 0 ? rc : mp_put_cstr(out, o->mark_vals[j]);
    }
    return rc;
}

/* The event with o->mark_keys set, into s->marked; *out points at it, or at record
 * itself when there are no marks. */
static int mark_record(struct sender *s, struct span record, struct span *out)
{
    *out = record;
    if (!s->o->mark_keys[0]) {
        return 0;
    }
    buf_reset(&s->marked);
    int rc = send_mark(s->o, record, &s->marked);
    if (rc < 0) {
        errbuf_set(s->eb, "event of %zu bytes too large to send", record.n);
        return rc;
    }
    *out = buf_span(&s->marked);
    return 0;
}

static int add_record(struct sender *s, struct span record)
{
    int rc = mark_record(s, record, &record);
    if (rc < 0) {
        return rc;
    }
    rc = forward_encode_entry(&s->entries, vg_now_ns(), record);
    if (rc < 0) {
        errbuf_set(s->eb, "event of %zu bytes too large to send", record.n);
        return rc;
    }
    s->nentries++;
    if (s->nentries >= s->o->chunk_events || s->entries.len >= SEND_MAX_CHUNK) {
        return flush_chunk(s);
    }
    return 0;
}

struct trivy_send {
    struct sender *s;
    int rc; /* add_record's failure, told apart from the splitter's own */
};

static int add_finding(void *arg, struct span finding)
{
    struct trivy_send *t = arg;
    return t->rc = add_record(t->s, finding);
}

/* --format trivy: a whole Trivy or Grype report is one event per finding
 * (schemas/trivy_report.h), as vigild's /v1/trivy stores it. */
static int add_trivy_report(struct sender *s, struct span doc, const char *file, uint64_t line)
{
    struct trivy_send t = { s, 0 };
    struct buf flat;
    struct errbuf eb;
    int rc;

    buf_init(&flat, 2 * doc.n + 65536);
    errbuf_clear(&eb);
    rc = trivy_report_split(doc, &flat, add_finding, &t, &eb);
    buf_release(&flat);
    if (rc < 0 && t.rc == 0) {
        fprintf(stderr, "vigil send: %s:%" PRIu64 ": %s; skipped\n", file, line, errbuf_msg(&eb));
        s->st->bad_docs++;
        return 0;
    }
    return rc < 0 ? rc : 0;
}

/* One parsed document: a map is an event; an array holds events; a k8s EventList's
 * items are events. */
static int add_document(struct sender *s, struct span doc, const char *file, uint64_t line)
{
    struct span cur = doc;
    struct mp_obj o;
    struct span items;

    if (s->o->format == SEND_TRIVY) {
        return add_trivy_report(s, doc, file, line);
    }

    if (mp_read(&cur, &o) != 1) {
        return VG_EFORMAT;
    }
    if (o.type == MP_ARRAY) {
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct span el;
            if (mp_take(&cur, &el) < 0) {
                return VG_EFORMAT;
            }
            int rc = add_document(s, el, file, line);
            if (rc < 0) {
                return rc;
            }
        }
        return 0;
    }
    if (o.type != MP_MAP) {
        fprintf(stderr, "vigil send: %s:%" PRIu64 ": not a JSON object; skipped\n", file, line);
        s->st->bad_docs++;
        return 0;
    }
    struct span kind;
    struct span v;
    if (mp_map_get(doc, SPAN_LIT("kind"), &v) == 1 && mp_get_str(v, &kind) &&
        span_eq_str(kind, "EventList") && mp_map_get(doc, SPAN_LIT("items"), &items) == 1) {
        return add_document(s, items, file, line);
    }
    return add_record(s, doc);
}

static int send_syslog_line(struct sender *s, struct span line, struct buf *rec)
{
    buf_reset(rec);
    if (mp_put_map(rec, 1) < 0 || mp_put_cstr(rec, "message") < 0 ||
        mp_put_str(rec, line.p, line.n) < 0) {
        return VG_ELIMIT;
    }
    return add_record(s, buf_span(rec));
}

/* Documents that are not one per line (pretty-printed Falco alerts, a Trivy report, an
 * EventList): the whole input is read (bounded) and walked one document at a time, so
 * a large document is parsed once, not again at every line it spans. */
static int send_documents(struct sender *s, FILE *f, const char *name)
{
    struct buf text;
    struct buf doc;
    uint8_t tmp[65536];
    size_t n;
    int rc = 0;

    buf_init(&text, 256u << 20);
    buf_init(&doc, SEND_MAX_DOC);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if ((rc = buf_append(&text, tmp, n)) < 0) {
            errbuf_set(s->eb, "'%s' is over 256 MiB: send it as NDJSON (--format ndjson)", name);
            goto out;
        }
    }
    struct span in = buf_span(&text);
    uint64_t line = 1;
    while (in.n > 0) {
        struct errbuf eb;
        size_t used = 0;
        errbuf_clear(&eb);
        buf_reset(&doc);
        int jr = json_to_mp(in, &doc, &used, &eb);
        if (jr == -ENODATA) {
            break;
        }
        if (jr < 0) {
            /* The rest cannot be framed reliably after a broken document. */
            fprintf(stderr,
                    "vigil send: %s: document at line %" PRIu64 ": %s; the rest of the "
                    "file is not sent\n",
                    name, line, errbuf_msg(&eb));
            s->st->bad_docs++;
            break;
        }
        const uint8_t *nl = in.p;
        size_t skip = 0;
        while (skip < used &&
               (nl[skip] == ' ' || nl[skip] == '\t' || nl[skip] == '\r' || nl[skip] == '\n')) {
            line += nl[skip] == '\n';
            skip++;
        }
        if ((rc = add_document(s, buf_span(&doc), name, line)) < 0) {
            break;
        }
        for (size_t i = skip; i < used; i++) {
            line += in.p[i] == '\n';
        }
        span_advance(&in, used);
    }
out:
    buf_release(&text);
    buf_release(&doc);
    return rc;
}

static int send_stream(struct sender *s, FILE *f, const char *name)
{
    struct buf doc;
    struct buf text;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    int rc = 0;

    buf_init(&doc, SEND_MAX_DOC);
    buf_init(&text, 64u << 20);
    /* Line-delimited first; a line that does not parse alone may begin a document that
     * spans lines (pretty-printed JSON): gather lines until it parses. */
    uint64_t doc_line = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        struct span l = { (const uint8_t *)line, (size_t)n };
        while (l.n && (l.p[l.n - 1] == '\n' || l.p[l.n - 1] == '\r')) {
            l.n--;
        }
        if (s->o->format == SEND_SYSLOG) {
            if (l.n) {
                rc = send_syslog_line(s, l, &doc);
            }
            continue;
        }
        if (text.len == 0) {
            doc_line = lineno;
        }
        if ((rc = buf_append(&text, line, (size_t)n)) < 0) {
            fprintf(stderr, "vigil send: %s:%" PRIu64 ": document over 64 MiB\n", name, doc_line);
            break;
        }
        /* Parse every complete document in text. */
        for (;;) {
            struct errbuf eb;
            size_t used = 0;
            errbuf_clear(&eb);
            buf_reset(&doc);
            int jr = json_to_mp(buf_span(&text), &doc, &used, &eb);
            if (jr == -ENODATA) {
                buf_reset(&text);
                break;
            }
            if (jr < 0) {
                /* Incomplete (a multi-line document) or broken: decide at the next line
                 * that starts a new document, or at the end of input. */
                bool starts_new =
                    l.n > 0 && (l.p[0] == '{' || l.p[0] == '[') && text.len > (size_t)n;
                if (starts_new) {
                    fprintf(stderr, "vigil send: %s:%" PRIu64 ": %s; skipped\n", name, doc_line,
                            errbuf_msg(&eb));
                    s->st->bad_docs++;
                    buf_consume(&text, text.len - (size_t)n);
                    doc_line = lineno;
                    continue;
                }
                break;
            }
            rc = add_document(s, buf_span(&doc), name, doc_line);
            buf_consume(&text, used);
            doc_line = lineno;
            if (rc < 0) {
                break;
            }
        }
    }
    if (rc == 0 && text.len > 0) {
        struct errbuf eb;
        size_t used = 0;
        errbuf_clear(&eb);
        buf_reset(&doc);
        int jr = json_to_mp(buf_span(&text), &doc, &used, &eb);
        if (jr == 0) {
            rc = add_document(s, buf_span(&doc), name, doc_line);
        } else if (jr != -ENODATA) {
            fprintf(stderr, "vigil send: %s:%" PRIu64 ": %s; skipped\n", name, doc_line,
                    errbuf_msg(&eb));
            s->st->bad_docs++;
        }
    }
    free(line);
    buf_release(&doc);
    buf_release(&text);
    return rc;
}

int send_files(const struct send_opts *o, char **files, int nfiles, struct send_stats *st,
               struct errbuf *eb)
{
    struct sender s;
    int rc;

    memset(&s, 0, sizeof(s));
    memset(st, 0, sizeof(*st));
    s.o = o;
    s.st = st;
    s.eb = eb;
    s.tag = o->tag ? o->tag : format_tag(o->format);
    s.qcap = o->window > 0 ? o->window : 1;
    s.q = xcalloc((size_t)s.qcap, sizeof(*s.q));
    s.id_salt = (uint32_t)(vg_now_ns() ^ (getpid() << 16));
    buf_init(&s.entries, SEND_MAX_CHUNK + SEND_MAX_DOC + 64);
    buf_init(&s.ackbuf, 64 * 1024);
    buf_init(&s.marked, SEND_MAX_DOC + 4096);
    s.t0 = vg_mono_ns();
    s.deadline = o->total_timeout_ms > 0 ? s.t0 + (int64_t)o->total_timeout_ms * 1000000 : 0;

    rc = tls_client_ctx_new(o->ca, o->cert, o->key, &s.ctx, eb);
    if (rc == 0) {
        /* The first connection is retried like any other, unless a certificate was
         * refused (a wrong CA, a revoked or unauthorized agent, a wrong purpose). */
        struct errbuf first;
        errbuf_clear(&first);
        s.eb = &first;
        rc = connect_server(&s);
        s.eb = eb;
        if (rc == VG_ECERT) {
            errbuf_set(eb, "%s (not retried)", errbuf_msg(&first));
        } else if (rc < 0 && past_deadline(&s)) {
            rc = -ETIMEDOUT;
        } else if (rc < 0 && retryable(&s, rc)) {
            rc = recover(&s, rc);
        } else if (rc < 0) {
            errbuf_set(eb, "%s", errbuf_msg(&first));
        }
    }
    for (int i = 0; rc == 0 && i < (nfiles > 0 ? nfiles : 1); i++) {
        const char *name = nfiles > 0 ? files[i] : "-";
        FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "r");
        if (!f) {
            rc = -errno;
            errbuf_set(eb, "cannot open '%s': %s", name, strerror(errno));
            break;
        }
        const char *shown = strcmp(name, "-") == 0 ? "<stdin>" : name;
        bool by_line = o->format == SEND_NDJSON || o->format == SEND_SYSLOG;
        rc = by_line ? send_stream(&s, f, shown) : send_documents(&s, f, shown);
        if (f != stdin) {
            fclose(f);
        }
    }
    if (rc == 0) {
        rc = flush_chunk(&s);
    }
    while (rc == 0 && s.qlen > 0) {
        rc = wait_ack_retrying(&s);
    }
    st->seconds = (double)(vg_mono_ns() - s.t0) / 1e9;
    progress(&s, true);
    for (int i = 0; i < s.qlen; i++) {
        buf_release(&q_at(&s, i)->msg);
    }
    free(s.q);
    tls_conn_close(s.conn);
    tls_ctx_free(s.ctx);
    buf_release(&s.entries);
    buf_release(&s.ackbuf);
    buf_release(&s.marked);
    if (rc == 0 && st->bad_docs > 0) {
        errbuf_set(eb, "%" PRIu64 " document(s) did not parse and were not sent", st->bad_docs);
        rc = VG_EFORMAT;
    } else if (rc == 0 && st->rejected > 0) {
        errbuf_set(eb,
                   "%" PRIu64 " of %" PRIu64 " events were rejected by vigild (they did not map "
                   "to the schema; kept as source=vigil action=rejected_input records)",
                   st->rejected, st->events);
        rc = VG_EFORMAT;
    }
    return rc;
}
