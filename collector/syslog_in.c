/* collector/syslog_in.c: the syslog listener (see syslog_in.h). The framing, header and
 * mapping functions are pure; the conn_proto at the end runs on the loop thread.
 *
 * Per connection: frames are taken from c->in back to back; each message becomes one
 * event (raw holds the original text losslessly plus the parsed header). There are no
 * acks in syslog: a message is in the store once its batch commits, and a connection
 * the peer closes simply ends. A malformed octet count loses the framing of everything
 * after it, so the connection is closed (good frames before it are kept); a bad LF line
 * cannot break the framing and is stored with whatever of it parsed. A frame cut off by
 * the peer's close is not stored: an octet-counted one is incomplete by definition, and
 * for a last LF line without its LF, conn.h has no end-of-stream hook (rsyslog's imtcp
 * would submit such a line; vigil drops it). */
#include "collector/syslog_in.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "schemas/map.h"

/* ---- framing (RFC 5425 4.3, RFC 6587 3.4) ---- */

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* "DDDD-DD-DD" (an RFC 3339 full-date) at the front of s: 1 yes, 0 a prefix of one,
 * -1 no. */
static int full_date(struct span s)
{
    static const char pat[] = "DDDD-DD-DD";

    for (size_t i = 0; i < sizeof(pat) - 1; i++) {
        if (i >= s.n) {
            return 0;
        }
        if (pat[i] == 'D' ? !is_digit(s.p[i]) : s.p[i] != (uint8_t)pat[i]) {
            return -1;
        }
    }
    return 1;
}

static ssize_t next_line(struct span *in, struct syslog_in_msg *m, size_t max_msg)
{
    size_t look = in->n <= max_msg ? in->n : max_msg + 1;
    const uint8_t *lf = memchr(in->p, '\n', look);

    if (!lf) {
        return in->n > max_msg ? VG_ELIMIT : 0;
    }
    size_t len = (size_t)(lf - in->p);
    m->framing = SYSLOG_IN_LF;
    m->text = (struct span){ in->p, len > 0 && in->p[len - 1] == '\r' ? len - 1 : len };
    span_advance(in, len + 1);
    return (ssize_t)(len + 1);
}

ssize_t syslog_in_next(struct span *in, struct syslog_in_msg *m, size_t max_msg)
{
    size_t i = 0;
    uint64_t len = 0;

    if (in->n == 0) {
        return 0;
    }
    if (!is_digit(in->p[0])) {
        return next_line(in, m, max_msg);
    }
    while (i < in->n && is_digit(in->p[i])) {
        if (i == SYSLOG_IN_MAX_LEN_DIGITS) {
            return -EPROTO;
        }
        len = len * 10 + (uint64_t)(in->p[i] - '0');
        i++;
    }
    if (i == in->n) {
        return 0; /* the count may go on */
    }
    if (in->p[i] != ' ') {
        if (i == 4 && in->p[i] == '-') {
            int d = full_date(*in);
            if (d == 0) {
                return 0;
            }
            if (d > 0) {
                return next_line(in, m, max_msg);
            }
        }
        return -EPROTO;
    }
    if (in->p[0] == '0') {
        return -EPROTO; /* MSG-LEN = NONZERO-DIGIT *DIGIT: no length 0, no leading 0 */
    }
    if (len > max_msg) {
        return VG_ELIMIT;
    }
    if (in->n - i - 1 < len) {
        return 0;
    }
    m->framing = SYSLOG_IN_OCTET_COUNTED;
    m->text = (struct span){ in->p + i + 1, (size_t)len };
    span_advance(in, i + 1 + (size_t)len);
    return (ssize_t)(i + 1 + (size_t)len);
}

/* ---- header parsing (RFC 5424 6, RFC 3164 4.1) ---- */

static bool eat(struct span *s, const char *lit)
{
    size_t n = strlen(lit);

    if (s->n < n || memcmp(s->p, lit, n) != 0) {
        return false;
    }
    span_advance(s, n);
    return true;
}

/* The token up to the next SP (or the end); advances past it, not past the SP. */
static struct span token(struct span *s)
{
    const uint8_t *sp = memchr(s->p, ' ', s->n);
    size_t n = sp ? (size_t)(sp - s->p) : s->n;
    struct span t = { s->p, n };

    span_advance(s, n);
    return t;
}

static struct span rtrim_crlf(struct span s)
{
    while (s.n && (s.p[s.n - 1] == '\n' || s.p[s.n - 1] == '\r')) {
        s.n--;
    }
    return s;
}

/* NILVALUE "-" is absent. */
static struct span nil(struct span s)
{
    return s.n == 1 && s.p[0] == '-' ? (struct span){ s.p, 0 } : s;
}

/* "<PRIVAL>" with 1..3 digits, 0..191. */
static bool pri(struct span *s, int *out)
{
    struct span t = *s;
    unsigned v = 0;
    size_t i = 0;

    if (!eat(&t, "<")) {
        return false;
    }
    while (i < t.n && i < 3 && is_digit(t.p[i])) {
        v = v * 10 + (unsigned)(t.p[i] - '0');
        i++;
    }
    if (i == 0 || i >= t.n || t.p[i] != '>' || v > 191) {
        return false;
    }
    span_advance(&t, i + 1);
    *s = t;
    *out = (int)v;
    return true;
}

/* SD-NAME (SD-ID or PARAM-NAME): 1..32 PRINTUSASCII except '=', SP, ']', '"'. */
static bool sd_name(struct span *s, struct span *name)
{
    size_t i = 0;

    while (i < s->n && i < 33 && s->p[i] > 32 && s->p[i] < 127 && s->p[i] != '=' &&
           s->p[i] != ']' && s->p[i] != '"') {
        i++;
    }
    if (i == 0 || i > 32) {
        return false;
    }
    *name = (struct span){ s->p, i };
    span_advance(s, i);
    return true;
}

/* One SD-PARAM: NAME="VALUE" with \" \\ \] escaped in VALUE; *value is the escaped
 * text between the quotes. An unescaped ']' inside the quotes is accepted (senders do
 * write it), an unescaped '"' ends the value. */
static bool sd_param(struct span *s, struct span *name, struct span *value)
{
    struct span t = *s;
    size_t i = 0;

    if (!sd_name(&t, name) || !eat(&t, "=\"")) {
        return false;
    }
    while (i < t.n && t.p[i] != '"') {
        i += t.p[i] == '\\' ? 2 : 1;
    }
    if (i >= t.n) {
        return false;
    }
    *value = (struct span){ t.p, i };
    span_advance(&t, i + 1);
    *s = t;
    return true;
}

/* One SD-ELEMENT "[ID *(SP PARAM)]" at the front of *s: its id and the params' text. */
static bool sd_element(struct span *s, struct span *id, struct span *params)
{
    struct span t = *s;
    struct span n;
    struct span v;

    if (!eat(&t, "[") || !sd_name(&t, id)) {
        return false;
    }
    const uint8_t *start = t.p;
    while (eat(&t, " ")) {
        if (!sd_param(&t, &n, &v)) {
            return false;
        }
    }
    *params = (struct span){ start, (size_t)(t.p - start) };
    if (!eat(&t, "]")) {
        return false;
    }
    *s = t;
    return true;
}

/* The next param of an element's params text (" a=\"1\" b=\"2\""). */
static bool sd_next_param(struct span *params, struct span *name, struct span *value)
{
    return eat(params, " ") && sd_param(params, name, value);
}

/* RFC 5424 after "<PRI>VERSION SP". Returns false when the timestamp is neither NILVALUE
 * nor RFC 3339 (then this is not an RFC 5424 message). */
static bool parse_5424(struct span s, struct syslog_in_hdr *h)
{
    struct span ts = token(&s);
    struct span *fields[] = { &h->host, &h->app, &h->procid, &h->msgid };

    if (ts.n == 0 || (!span_eq_str(ts, "-") && vg_time_parse_rfc3339(ts, &h->ts) < 0)) {
        return false;
    }
    h->format = SYSLOG_IN_RFC5424;
    h->timestamp = nil(ts);
    h->has_ts = h->timestamp.n > 0;
    for (size_t i = 0; i < VG_ARRAY_LEN(fields); i++) {
        if (!eat(&s, " ")) {
            h->msg = rtrim_crlf(s); /* a truncated header: keep what is left */
            return true;
        }
        *fields[i] = nil(token(&s));
    }
    if (!eat(&s, " ")) {
        h->msg = rtrim_crlf(s);
        return true;
    }
    if (!eat(&s, "-")) {
        struct span t = s;
        struct span id;
        struct span params;
        bool ok = t.n > 0 && t.p[0] == '[';
        while (ok && t.n > 0 && t.p[0] == '[') {
            ok = sd_element(&t, &id, &params);
        }
        if (ok && (t.n == 0 || t.p[0] == ' ')) {
            h->sd = (struct span){ s.p, (size_t)(t.p - s.p) };
            s = t;
        } else {
            h->sd_malformed = true;
            h->msg = rtrim_crlf(s);
            return true;
        }
    }
    if (s.n > 0 && s.p[0] != ' ') {
        h->sd_malformed = true; /* "-x": NILVALUE not followed by SP */
    } else {
        eat(&s, " ");
    }
    eat(&s, "\xef\xbb\xbf"); /* MSG-UTF8 starts with a BOM */
    h->msg = rtrim_crlf(s);
    return true;
}

/* map_syslog_bsd took a BSD tag without a hostname ("Nov  2 12:00:00 sshd[1]: msg") as
 * the host: a token ending in ':' with no other ':' (an IPv6 host has several), or in
 * "]:" is a tag. */
static bool host_is_tag(struct span host)
{
    if (host.n < 2 || host.p[host.n - 1] != ':') {
        return false;
    }
    if (host.p[host.n - 2] == ']') {
        return memchr(host.p, '[', host.n) != NULL;
    }
    return memchr(host.p, ':', host.n - 1) == NULL;
}

/* The PID after the program in a BSD tag: "prog[pid]:". */
static struct span tag_pid(struct span prog, const uint8_t *end)
{
    const uint8_t *p = prog.p + prog.n;

    if (p < end && *p == '[') {
        const uint8_t *close = memchr(p, ']', (size_t)(end - p));
        if (close) {
            return (struct span){ p + 1, (size_t)(close - p - 1) };
        }
    }
    return (struct span){ p, 0 };
}

static bool parse_bsd(struct span s, int64_t ref_ns, struct syslog_in_hdr *h)
{
    struct rec r;
    struct span msg;
    const uint8_t *end = s.p + s.n;

    rec_init(&r);
    if (!map_syslog_bsd(s, ref_ns, &r, &msg)) {
        return false;
    }
    h->format = is_digit(s.p[0]) ? SYSLOG_IN_RFC3339 : SYSLOG_IN_RFC3164;
    h->has_ts = r.has_ts;
    h->ts = r.ts;
    h->host = r.str[VG_F_HOST];
    h->app = r.str[VG_F_PROCESS];
    h->msg = rtrim_crlf(msg);
    struct span ts = { s.p, h->host.p ? (size_t)(h->host.p - s.p) : 0 };
    while (ts.n && ts.p[ts.n - 1] == ' ') {
        ts.n--;
    }
    h->timestamp = ts;
    if (h->host.p && host_is_tag(h->host)) {
        struct span tag = h->host;
        size_t n = 0;
        while (n < tag.n && tag.p[n] != '[' && tag.p[n] != ':') {
            n++;
        }
        h->app = (struct span){ tag.p, n };
        h->host = (struct span){ NULL, 0 };
        struct span rest = { tag.p + tag.n, (size_t)(end - (tag.p + tag.n)) };
        eat(&rest, " ");
        h->msg = rtrim_crlf(rest);
    }
    if (h->app.p) {
        h->procid = tag_pid(h->app, end);
    }
    return true;
}

/* "VERSION SP" at the front of s (RFC 5424: NONZERO-DIGIT 0*2DIGIT). */
static bool version(struct span *s, int *out)
{
    size_t i = 0;
    int v = 0;

    while (i < s->n && i < 3 && is_digit(s->p[i])) {
        v = v * 10 + (s->p[i] - '0');
        i++;
    }
    if (i == 0 || i >= s->n || s->p[i] != ' ' || s->p[0] == '0') {
        return false;
    }
    span_advance(s, i + 1);
    *out = v;
    return true;
}

void syslog_in_parse(struct span text, int64_t ref_ns, struct syslog_in_hdr *h)
{
    struct span s = text;
    struct span v;
    int p = -1;
    int ver;

    memset(h, 0, sizeof(*h));
    if (pri(&s, &p)) {
        v = s;
        h->pri = p;
        if (version(&v, &ver) && parse_5424(v, h)) {
            h->version = ver;
            return;
        }
        /* Not RFC 5424 after all (its timestamp did not parse): start again. */
        memset(h, 0, sizeof(*h));
        h->pri = p;
    } else {
        h->pri = -1;
    }
    if (s.n > 0 && parse_bsd(s, ref_ns, h)) {
        return;
    }
    h->format = SYSLOG_IN_NOHDR;
    h->msg = rtrim_crlf(s);
}

/* ---- mapping ---- */

static const char *const facility_names[24] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog",   "lpr",     "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "security", "console", "clock",
    "local0", "local1", "local2",   "local3", "local4", "local5",   "local6",  "local7",
};

static const char *format_name(enum syslog_in_format f)
{
    switch (f) {
    case SYSLOG_IN_RFC5424:
        return "rfc5424";
    case SYSLOG_IN_RFC3164:
        return "rfc3164";
    case SYSLOG_IN_RFC3339:
        return "rfc3339";
    case SYSLOG_IN_NOHDR:
        break;
    }
    return "none";
}

/* A PARAM-VALUE with its escapes undone (RFC 5424 6.3.3: \" \\ \] stand for the
 * character; a backslash before anything else is kept). */
static int put_sd_value(struct buf *out, struct span v)
{
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < v.n; i++, n++) {
        if (v.p[i] == '\\' && i + 1 < v.n &&
            (v.p[i + 1] == '"' || v.p[i + 1] == '\\' || v.p[i + 1] == ']')) {
            i++;
        }
    }
    if (n == v.n) {
        return mp_put_str(out, v.p, v.n);
    }
    /* str header for n bytes, then the bytes: write the escaped form and fix it up. */
    if ((rc = mp_put_str(out, v.p, n)) < 0) {
        return rc;
    }
    uint8_t *dst = out->data + out->len - n;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] == '\\' && i + 1 < v.n &&
            (v.p[i + 1] == '"' || v.p[i + 1] == '\\' || v.p[i + 1] == ']')) {
            i++;
        }
        *dst++ = v.p[i];
    }
    return 0;
}

/* The parsed view of STRUCTURED-DATA: the distinct SD-IDs, first element of each (RFC
 * 5424 6.3.2 forbids repeating one), up to the caps. */
struct sd_view {
    size_t n;
    struct span ids[SYSLOG_IN_SD_MAX_ELEMENTS];
    struct span params[SYSLOG_IN_SD_MAX_ELEMENTS];
    bool truncated;
};

/* sd was validated by the parser, so every element and param parses here. */
static void sd_collect(struct span sd, struct sd_view *v)
{
    struct span id;
    struct span p;

    v->n = 0;
    v->truncated = false;
    while (sd.n > 0 && sd_element(&sd, &id, &p)) {
        size_t j = 0;
        while (j < v->n && !span_eq(v->ids[j], id)) {
            j++;
        }
        if (j < v->n) {
            continue;
        }
        if (v->n == SYSLOG_IN_SD_MAX_ELEMENTS) {
            v->truncated = true;
            break;
        }
        struct span k;
        struct span val;
        struct span q = p;
        size_t params = 0;
        while (q.n > 0 && sd_next_param(&q, &k, &val)) {
            params++;
        }
        v->truncated |= params > SYSLOG_IN_SD_MAX_PARAMS;
        v->ids[v->n] = id;
        v->params[v->n] = p;
        v->n++;
    }
}

/* One element's params (up to the cap) as a map; a repeated name maps to an array of
 * its values in order. */
static int put_sd_params(struct buf *out, struct span params)
{
    struct span names[SYSLOG_IN_SD_MAX_PARAMS];
    struct span values[SYSLOG_IN_SD_MAX_PARAMS];
    size_t n = 0;
    uint32_t distinct = 0;
    int rc;

    while (n < SYSLOG_IN_SD_MAX_PARAMS && params.n > 0 &&
           sd_next_param(&params, &names[n], &values[n])) {
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && !span_eq(names[j], names[i])) {
            j++;
        }
        distinct += j == i;
    }
    if ((rc = mp_put_map(out, distinct)) < 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        uint32_t count = 0;
        while (j < i && !span_eq(names[j], names[i])) {
            j++;
        }
        if (j < i) {
            continue; /* written with its first occurrence */
        }
        for (size_t k = i; k < n; k++) {
            count += span_eq(names[k], names[i]);
        }
        if ((rc = mp_put_str(out, names[i].p, names[i].n)) < 0 ||
            (count > 1 && (rc = mp_put_array(out, count)) < 0)) {
            return rc;
        }
        for (size_t k = i; k < n; k++) {
            if (span_eq(names[k], names[i]) && (rc = put_sd_value(out, values[k])) < 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int put_sd(struct buf *out, const struct sd_view *v)
{
    int rc = mp_put_map(out, (uint32_t)v->n);

    for (size_t i = 0; rc == 0 && i < v->n; i++) {
        if ((rc = mp_put_str(out, v->ids[i].p, v->ids[i].n)) == 0) {
            rc = put_sd_params(out, v->params[i]);
        }
    }
    return rc;
}

static int put_kv_str(struct buf *out, const char *k, struct span v)
{
    int rc = mp_put_cstr(out, k);

    return rc < 0 ? rc : mp_put_str(out, v.p, v.n);
}

static int put_kv_i64(struct buf *out, const char *k, int64_t v)
{
    int rc = mp_put_cstr(out, k);

    return rc < 0 ? rc : mp_put_i64(out, v);
}

static int put_kv_true(struct buf *out, const char *k)
{
    int rc = mp_put_cstr(out, k);

    return rc < 0 ? rc : mp_put_bool(out, true);
}

/* The raw map (see syslog_in_map). */
static int put_raw(struct buf *out, struct span text, const struct syslog_in_hdr *h,
                   uint32_t repeat)
{
    const struct {
        const char *key;
        struct span v;
    } strs[] = {
        { "timestamp", h->timestamp }, { "hostname", h->host }, { "app", h->app },
        { "procid", h->procid },       { "msgid", h->msgid },
    };
    struct sd_view sd;
    uint32_t pairs = 2; /* line, format */
    int rc;

    sd_collect(h->sd, &sd);
    pairs += h->pri >= 0 ? 2 : 0;
    pairs += h->version > 0;
    for (size_t i = 0; i < VG_ARRAY_LEN(strs); i++) {
        pairs += strs[i].v.n > 0;
    }
    pairs += h->sd.n > 0;
    pairs += sd.truncated;
    pairs += h->sd_malformed;
    pairs += repeat > 1;

    if ((rc = mp_put_map(out, pairs)) < 0 || (rc = put_kv_str(out, "line", text)) < 0 ||
        (rc = put_kv_str(out, "format", span_str(format_name(h->format)))) < 0) {
        return rc;
    }
    if (h->pri >= 0 &&
        ((rc = put_kv_i64(out, "pri", h->pri)) < 0 ||
         (rc = put_kv_str(out, "facility", span_str(facility_names[h->pri >> 3]))) < 0)) {
        return rc;
    }
    if (h->version > 0 && (rc = put_kv_i64(out, "version", h->version)) < 0) {
        return rc;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(strs); i++) {
        if (strs[i].v.n > 0 && (rc = put_kv_str(out, strs[i].key, strs[i].v)) < 0) {
            return rc;
        }
    }
    if (h->sd.n > 0 && ((rc = mp_put_cstr(out, "sd")) < 0 || (rc = put_sd(out, &sd)) < 0)) {
        return rc;
    }
    if (sd.truncated && (rc = put_kv_true(out, "sd_truncated")) < 0) {
        return rc;
    }
    if (h->sd_malformed && (rc = put_kv_true(out, "sd_malformed")) < 0) {
        return rc;
    }
    if (repeat > 1 && (rc = put_kv_i64(out, "repeat", repeat)) < 0) {
        return rc;
    }
    return 0;
}

static bool is_sshd(struct span app)
{
    return span_eq_str(app, "sshd") || span_eq_str(app, "sshd-session");
}

int syslog_in_map(struct span text, const struct syslog_in_hdr *h, struct rec *r, struct buf *raw,
                  struct buf *scratch)
{
    struct span inner;
    size_t start = raw->len;
    int rc;

    rec_init(r);
    if (h->has_ts) {
        r->ts = h->ts;
        r->has_ts = true;
    }
    rec_set(r, VG_F_HOST, h->host);
    rec_set(r, VG_F_PROCESS, h->app);
    rec_set(r, VG_F_MESSAGE, h->msg);
    bool auth = map_auth_line(h->msg, r, scratch);
    rec_set(r, VG_F_SOURCE, SPAN_LIT("syslog"));
    if (auth) {
        if (is_sshd(r->str[VG_F_PROCESS])) {
            rec_set(r, VG_F_SOURCE, SPAN_LIT("sshd"));
        }
    } else {
        rec_set(r, VG_F_KIND, SPAN_LIT("log"));
        if (h->pri >= 0) {
            rec_set(r, VG_F_SEVERITY, span_str(vg_severity_name((enum vg_severity)(h->pri & 7))));
        }
    }
    /* map_repeat_count wants the MSG as map_auth_line sees it: without padding. */
    struct span m = h->msg;
    while (m.n && m.p[0] == ' ') {
        span_advance(&m, 1);
    }
    uint32_t repeat = map_repeat_count(m, &inner);
    if ((rc = put_raw(raw, text, h, repeat)) < 0) {
        raw->len = start;
        if (raw->cap) {
            raw->data[start] = 0;
        }
        return rc;
    }
    r->raw = (struct span){ raw->data + start, raw->len - start };
    return 0;
}

/* ---- the listener (loop thread) ---- */

/* Per connection: the buffer each message's raw map is built in. */
struct syslog_conn {
    struct buf raw;
    uint64_t frames; /* frames taken from this connection */
};

static struct syslog_conn *conn_state(struct conn *c)
{
    if (!c->proto_state) {
        struct syslog_conn *sc = xcalloc(1, sizeof(*sc));
        buf_init(&sc->raw, 3 * (size_t)c->env->cfg->max_frame_bytes + 64 * 1024);
        c->proto_state = sc;
    }
    return c->proto_state;
}

static void syslog_on_release(struct conn *c)
{
    struct syslog_conn *sc = c->proto_state;

    if (sc) {
        buf_release(&sc->raw);
        free(sc);
        c->proto_state = NULL;
    }
}

/* Framing is lost (or a frame is over the limit): log, count, record evidence, close. */
static void reject_frame(struct conn *c, ssize_t rc, struct span in, uint64_t kept)
{
    char why[200];
    char msg[600];
    struct buf esc;

    c->env->m->frames_rejected++;
    buf_init(&esc, 256);
    if (buf_append_escaped(&esc, in, 32) < 0) {
        buf_reset(&esc);
    }
    if (rc == VG_ELIMIT) {
        snprintf(why, sizeof(why), "syslog frame larger than listen.max_frame_bytes=%" PRIu64,
                 (uint64_t)c->env->cfg->max_frame_bytes);
    } else {
        snprintf(why, sizeof(why), "malformed syslog octet count (framing lost)");
    }
    snprintf(msg, sizeof(msg), "%s at \"%s\"; %" PRIu64 " earlier frames kept", why, buf_cstr(&esc),
             kept);
    ingest_self_event(c->env->port, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                      c->agent, "%s from %s agent '%s'", msg, c->peer, c->agent);
    buf_release(&esc);
    conn_close(c, (int)rc, msg);
}

static int syslog_on_data(struct conn *c)
{
    struct ingest_port *port = c->env->port;
    struct lst_metrics *lm = c->env->m;
    struct syslog_conn *sc = conn_state(c);
    struct span in = buf_span(&c->in);
    size_t max = (size_t)c->env->cfg->max_frame_bytes;
    int64_t now = vg_now_ns();
    int rc = 0;

    while (in.n > 0 && c->state != CONN_CLOSING) {
        struct syslog_in_msg m;
        struct syslog_in_hdr h;
        struct rec r;

        if (ingest_full(port)) {
            conn_pause(c);
            break;
        }
        ssize_t n = syslog_in_next(&in, &m, max);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            rc = (int)n;
            reject_frame(c, n, in, sc->frames);
            break;
        }
        lm->frames++;
        sc->frames++;
        if (m.text.n == 0) {
            continue; /* a blank line between frames */
        }
        buf_reset(&sc->raw);
        buf_reset(&c->scratch);
        syslog_in_parse(m.text, now, &h);
        if ((rc = syslog_in_map(m.text, &h, &r, &sc->raw, &c->scratch)) < 0) {
            lm->frames_rejected++;
            conn_close(c, rc, "syslog message does not fit the raw buffer");
            break;
        }
        rec_set(&r, VG_F_AGENT, span_str(c->agent));
        r.received = now;
        r.has_received = true;
        if ((rc = ingest_add(port, &r)) < 0) {
            lm->frames_rejected++;
            ingest_self_event(port, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                              c->agent, "syslog message from %s agent '%s' not stored: %s", c->peer,
                              c->agent, vg_strerror(rc));
            conn_close(c, rc, "syslog message not stored");
            break;
        }
        lm->events_received++;
    }
    if (c->state != CONN_CLOSING) {
        buf_consume(&c->in, c->in.len - in.n);
    }
    if (sc->raw.cap > 0) {
        /* Per message only: an idle connection holds none of it (limits.memory counts
         * what connections hold between reads). */
        size_t max_raw = sc->raw.max;
        buf_release(&sc->raw);
        buf_init(&sc->raw, max_raw);
    }
    return rc < 0 ? rc : 0;
}

/* The peer closed in the middle of a frame: syslog has no acknowledgements, so the
 * sender will not send it again; the bytes are kept as a rejected_input record, never
 * dropped without a trace. */
static void syslog_on_eof(struct conn *c)
{
    struct lst_metrics *lm = c->env->m;
    struct span left = buf_span(&c->in);
    struct buf raw;
    struct buf esc;
    char msg[800];

    lm->frames_rejected++;
    buf_init(&raw, left.n + 64);
    buf_init(&esc, 256);
    if (buf_append_escaped(&esc, left, 32) < 0) {
        buf_reset(&esc);
    }
    snprintf(msg, sizeof(msg),
             "syslog frame from %s agent '%s' cut off by the end of the connection (%zu bytes: "
             "\"%s\"); kept here, not stored as an event",
             c->peer, c->agent, left.n, buf_cstr(&esc));
    log_warn("conn %" PRIu64 " syslog: %s", c->id, msg);
    if (mp_put_map(&raw, 1) < 0 || mp_put_cstr(&raw, "truncated_frame") < 0 ||
        mp_put_str(&raw, left.p, left.n) < 0) {
        buf_reset(&raw); /* cannot happen: sized above */
    }
    if (ingest_keep_rejected(c->env->port, c->env->self_host, c->agent, c->peer_ip, msg,
                             buf_span(&raw), 0) < 0) {
        ingest_self_event(c->env->port, VG_SEV_WARNING, "rejected_input", "failure", c->peer_ip,
                          c->agent, "%s (its bytes could not be kept: the batch is full)", msg);
    }
    buf_consume(&c->in, c->in.len);
    buf_release(&raw);
    buf_release(&esc);
}

const struct conn_proto syslog_in_proto = {
    .kind = LST_SYSLOG,
    .on_data = syslog_on_data,
    .on_release = syslog_on_release,
    .on_eof = syslog_on_eof,
};
