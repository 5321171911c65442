/* query/output.c: event output as a table, JSON, NDJSON or CSV (see output.h).
 *
 * Each event is formatted into one buffer and written with one fwrite, so a failure
 * (corrupt raw bytes, a limit) leaves no half event behind. Text from events reaches
 * the table only after sanitizing: valid UTF-8 is kept, invalid bytes and control
 * characters become \xNN (tab and line breaks a space) and bidirectional
 * overrides '?', so an event cannot move the cursor or reorder what an analyst reads.
 * Widths count code points. Not thread-safe: one struct out per thread. */
#include "query/output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/time.h"
#include "common/xalloc.h"

#define OUT_MAX_EVENT_BYTES ((size_t)256 << 20) /* one formatted event */

/* Table columns: TIME fits "2024-05-01T13:00:00.123Z"; SEV uses short names. */
#define OUT_TIME_W   24
#define OUT_SOURCE_W 9
#define OUT_SEV_W    6
#define OUT_FIXED_W  (OUT_TIME_W + 1 + OUT_SOURCE_W + 1 + OUT_SEV_W + 1)
#define OUT_MIN_W    4 /* WHERE, WHO and WHAT never get fewer columns */
/* Not a terminal: generous fixed widths, and the last column is never cut. */
#define OUT_PIPE_WHERE_W 40
#define OUT_PIPE_WHO_W   32

struct out {
    enum out_format fmt;
    FILE *f;
    int width;
    size_t where_w, who_w, what_w; /* table; what_w 0 = unlimited */
    size_t events;
    bool header_done;
    struct buf line;    /* the event being formatted */
    struct buf scratch; /* a table cell before sanitizing */
    struct buf cell;    /* a table cell after sanitizing */
};

static const char *const format_names[] = { "table", "json", "ndjson", "csv" };

int out_format_parse(const char *s, enum out_format *out)
{
    for (size_t i = 0; i < VG_ARRAY_LEN(format_names); i++) {
        if (s && span_eq_nocase(span_str(s), span_str(format_names[i]))) {
            *out = (enum out_format)i;
            return 0;
        }
    }
    return VG_EPARSE;
}

const char *out_format_name(enum out_format fmt)
{
    return (unsigned)fmt < VG_ARRAY_LEN(format_names) ? format_names[fmt] : "?";
}

static size_t clamp(size_t v, size_t lo, size_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

struct out *out_new(enum out_format fmt, FILE *f, int width)
{
    struct out *o = xcalloc(1, sizeof(*o));

    o->fmt = fmt;
    o->f = f;
    o->width = width < 0 ? 0 : width;
    buf_init(&o->line, OUT_MAX_EVENT_BYTES);
    buf_init(&o->scratch, OUT_MAX_EVENT_BYTES);
    buf_init(&o->cell, OUT_MAX_EVENT_BYTES);
    if (o->width == 0) {
        o->where_w = OUT_PIPE_WHERE_W;
        o->who_w = OUT_PIPE_WHO_W;
        o->what_w = 0;
    } else {
        /* What is left after the fixed columns and two separators: 30% WHERE, 25% WHO,
         * the rest WHAT. Each keeps OUT_MIN_W columns, so below 56 columns the line is
         * wider than the terminal. */
        size_t avail = (size_t)o->width > OUT_FIXED_W + 2 ? (size_t)o->width - OUT_FIXED_W - 2 : 0;
        o->where_w = clamp(avail * 3 / 10, OUT_MIN_W, 48);
        o->who_w = clamp(avail / 4, OUT_MIN_W, 40);
        o->what_w =
            avail >= o->where_w + o->who_w + OUT_MIN_W ? avail - o->where_w - o->who_w : OUT_MIN_W;
    }
    return o;
}

void out_free(struct out *o)
{
    if (o) {
        buf_release(&o->line);
        buf_release(&o->scratch);
        buf_release(&o->cell);
        free(o);
    }
}

static int write_line(struct out *o)
{
    size_t n = o->line.len;

    errno = 0;
    if (n > 0 && fwrite(o->line.data, 1, n, o->f) != n) {
        int e = errno ? errno : EIO;
        buf_reset(&o->line);
        return -e;
    }
    buf_reset(&o->line);
    return 0;
}

/* ---- JSON ---- */

static int json_time(struct buf *b, const char *key, int64_t ns)
{
    char ts[40];

    vg_time_format(ns, 9, ts, sizeof(ts));
    return buf_appendf(b, "\"%s\":\"%s\"", key, ts);
}

static int format_json(struct buf *b, const struct rec *r)
{
    bool first = true;
    int rc = buf_append_byte(b, '{');

    for (int f = 0; f < VG_F_COUNT && rc == 0; f++) {
        const char *key = vg_field_name((enum vg_field)f);
        bool has;
        switch (f) {
        case VG_F_TS:
            has = r->has_ts;
            break;
        case VG_F_RECEIVED:
            has = r->has_received;
            break;
        case VG_F_SEQ:
            has = r->has_seq;
            break;
        case VG_F_DST_PORT:
            has = r->has_dst_port;
            break;
        case VG_F_RAW:
            has = r->raw.n > 0;
            break;
        default:
            has = r->str[f].p != NULL;
        }
        if (!has) {
            continue;
        }
        if (!first && (rc = buf_append_byte(b, ',')) < 0) {
            break;
        }
        first = false;
        switch (f) {
        case VG_F_TS:
            rc = json_time(b, key, r->ts);
            break;
        case VG_F_RECEIVED:
            rc = json_time(b, key, r->received);
            break;
        case VG_F_SEQ:
            rc = buf_appendf(b, "\"%s\":%" PRIu64, key, r->seq);
            break;
        case VG_F_DST_PORT:
            rc = buf_appendf(b, "\"%s\":%" PRId64, key, r->dst_port);
            break;
        case VG_F_RAW:
            if ((rc = buf_appendf(b, "\"%s\":", key)) == 0) {
                rc = mp_to_json(r->raw, b);
            }
            break;
        default:
            if ((rc = buf_appendf(b, "\"%s\":", key)) == 0) {
                rc = json_append_str(b, r->str[f]);
            }
        }
    }
    return rc < 0 ? rc : buf_append_byte(b, '}');
}

/* ---- CSV ---- */

static const enum vg_field csv_fields[] = {
    VG_F_TS,   VG_F_SOURCE, VG_F_KIND,   VG_F_SEVERITY, VG_F_HOST, VG_F_NAMESPACE, VG_F_POD,
    VG_F_USER, VG_F_SRC_IP, VG_F_ACTION, VG_F_OUTCOME,  VG_F_RULE, VG_F_MESSAGE,
};

/* RFC 4180: quoted when it holds a comma, quote or line break; quotes doubled.
 * Invalid UTF-8 bytes become \xNN so the file is valid text and values stay distinct (JSON
 * output carries them exactly). */
static int csv_cell(struct buf *b, struct span s)
{
    static const char hex[] = "0123456789abcdef";
    bool quote = false;
    int rc = 0;

    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] == ',' || s.p[i] == '"' || s.p[i] == '\r' || s.p[i] == '\n') {
            quote = true;
            break;
        }
    }
    if (quote && (rc = buf_append_byte(b, '"')) < 0) {
        return rc;
    }
    for (size_t i = 0; i < s.n && rc == 0;) {
        uint32_t cp;
        size_t l = utf8_seq_len(s.p + i, s.n - i, &cp);
        if (l == 0) {
            char esc[4] = { '\\', 'x', hex[s.p[i] >> 4], hex[s.p[i] & 15] };
            rc = buf_append(b, esc, 4);
            i++;
            continue;
        }
        if (s.p[i] == '"') {
            rc = buf_append_str(b, "\"\"");
        } else {
            rc = buf_append(b, s.p + i, l);
        }
        i += l;
    }
    if (rc == 0 && quote) {
        rc = buf_append_byte(b, '"');
    }
    return rc;
}

static int csv_header(struct buf *b)
{
    int rc = 0;

    for (size_t i = 0; i < VG_ARRAY_LEN(csv_fields) && rc == 0; i++) {
        rc = buf_appendf(b, "%s%s", i ? "," : "", vg_field_name(csv_fields[i]));
    }
    return rc < 0 ? rc : buf_append_str(b, "\r\n");
}

static int format_csv(struct buf *b, const struct rec *r)
{
    int rc = 0;

    for (size_t i = 0; i < VG_ARRAY_LEN(csv_fields) && rc == 0; i++) {
        enum vg_field f = csv_fields[i];
        if (i && (rc = buf_append_byte(b, ',')) < 0) {
            break;
        }
        if (f == VG_F_TS) {
            char ts[40];
            if (r->has_ts) {
                vg_time_format(r->ts, 9, ts, sizeof(ts));
                rc = buf_append_str(b, ts);
            }
        } else if (r->str[f].p) {
            rc = csv_cell(b, r->str[f]);
        }
    }
    return rc < 0 ? rc : buf_append_str(b, "\r\n");
}

/* ---- table ---- */

static bool is_bidi_control(uint32_t cp)
{
    return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e ||
           cp == 0x200f || cp == 0x061c;
}

/* Appends s to out made safe for a terminal; *chars gets its width in columns. */
static int sanitize(struct buf *out, struct span s, size_t *chars)
{
    static const char hex[] = "0123456789abcdef";
    int rc = 0;

    *chars = 0;
    for (size_t i = 0; i < s.n && rc == 0;) {
        uint32_t cp;
        size_t l = utf8_seq_len(s.p + i, s.n - i, &cp);
        if (l == 0) {
            /* Not UTF-8: shown as the byte it is, so that two values differing only
             * there do not look alike. */
            char esc[4] = { '\\', 'x', hex[s.p[i] >> 4], hex[s.p[i] & 15] };
            rc = buf_append(out, esc, 4);
            i++;
            *chars += 4;
            continue;
        }
        if (cp == '\t' || cp == '\n' || cp == '\r') {
            rc = buf_append_byte(out, ' ');
            *chars += 1;
        } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
            char esc[4] = { '\\', 'x', hex[(cp >> 4) & 15], hex[cp & 15] };
            rc = buf_append(out, esc, 4);
            *chars += 4;
        } else if (is_bidi_control(cp)) {
            rc = buf_append_byte(out, '?');
            *chars += 1;
        } else {
            rc = buf_append(out, s.p + i, l);
            *chars += 1;
        }
        i += l;
    }
    return rc;
}

/* Appends s as a cell of width w (0 = as wide as it is): cut at a character boundary
 * with '…' when longer, padded with spaces unless last. */
static int table_cell(struct out *o, struct span s, size_t w, bool last)
{
    struct buf *b = &o->line;
    size_t chars;
    int rc;

    buf_reset(&o->cell);
    if ((rc = sanitize(&o->cell, s, &chars)) < 0) {
        return rc;
    }
    if (w > 0 && chars > w) {
        /* Keep w - 1 characters, then the ellipsis. The sanitized text is valid UTF-8. */
        size_t i = 0;
        for (size_t c = 0; c + 1 < w; c++) {
            uint32_t cp;
            i += utf8_seq_len(o->cell.data + i, o->cell.len - i, &cp);
        }
        if ((rc = buf_append(b, o->cell.data, i)) < 0) {
            return rc;
        }
        return buf_append_str(b, "\xe2\x80\xa6");
    }
    if ((rc = buf_append(b, o->cell.data, o->cell.len)) < 0) {
        return rc;
    }
    for (size_t c = chars; !last && c < w && rc == 0; c++) {
        rc = buf_append_byte(b, ' ');
    }
    return rc;
}

static int table_sep(struct out *o)
{
    return buf_append_byte(&o->line, ' ');
}

static int table_row(struct out *o, const struct span cells[6])
{
    const size_t widths[6] = {
        OUT_TIME_W, OUT_SOURCE_W, OUT_SEV_W, o->where_w, o->who_w, o->what_w
    };
    int rc = 0;

    for (int i = 0; i < 6 && rc == 0; i++) {
        if (i && (rc = table_sep(o)) < 0) {
            break;
        }
        rc = table_cell(o, cells[i], widths[i], i == 5);
    }
    return rc < 0 ? rc : buf_append_byte(&o->line, '\n');
}

static const char *const sev_short[VG_SEV_COUNT] = { "emerg", "alert",  "crit", "error",
                                                     "warn",  "notice", "info", "debug" };

/* Joins a and b with sep into scratch (either may be absent); returns the span. */
static struct span join2(struct buf *scratch, struct span a, const char *sep, struct span b)
{
    size_t start = scratch->len;
    int rc = 0;

    if (a.p && b.p) {
        rc = buf_append(scratch, a.p, a.n);
        if (rc == 0) {
            rc = buf_append_str(scratch, sep);
        }
        if (rc == 0) {
            rc = buf_append(scratch, b.p, b.n);
        }
    } else if (a.p || b.p) {
        struct span s = a.p ? a : b;
        rc = buf_append(scratch, s.p, s.n);
    }
    if (rc < 0 || scratch->len == start) {
        return SPAN_LIT("-");
    }
    return (struct span){ scratch->data + start, scratch->len - start };
}

static int format_table(struct out *o, const struct rec *r)
{
    const struct span *s = r->str;
    struct span cells[6];
    char ts[40];
    int rc;

    /* The cells point into scratch: reserve first so appending cannot move it. */
    buf_reset(&o->scratch);
    size_t need = 8;
    for (int f = 0; f < VG_F_COUNT; f++) {
        need += s[f].n + 1;
    }
    if ((rc = buf_reserve(&o->scratch, need)) < 0) {
        return rc;
    }
    if (r->has_ts || r->has_received) {
        vg_time_format(r->has_ts ? r->ts : r->received, 3, ts, sizeof(ts));
        cells[0] = span_str(ts);
    } else {
        cells[0] = SPAN_LIT("-");
    }
    cells[1] = s[VG_F_SOURCE].p ? s[VG_F_SOURCE] : SPAN_LIT("-");
    int sev = s[VG_F_SEVERITY].p ? vg_severity_parse(s[VG_F_SEVERITY]) : -1;
    cells[2] = sev >= 0             ? span_str(sev_short[sev])
               : s[VG_F_SEVERITY].p ? s[VG_F_SEVERITY]
                                    : SPAN_LIT("-");
    if (s[VG_F_NAMESPACE].p || s[VG_F_POD].p) {
        cells[3] = join2(&o->scratch, s[VG_F_NAMESPACE], "/", s[VG_F_POD]);
    } else if (s[VG_F_HOST].p) {
        cells[3] = s[VG_F_HOST];
    } else {
        cells[3] = s[VG_F_CONTAINER_NAME].p ? s[VG_F_CONTAINER_NAME] : SPAN_LIT("-");
    }
    cells[4] = join2(&o->scratch, s[VG_F_USER], "@", s[VG_F_SRC_IP]);
    /* WHAT: the rule; else what was done to what; else the finding (CVE, package); else
     * the message (an sshd line or a collector event says more than its action word);
     * else the action, else the kind. */
    if (s[VG_F_RULE].p) {
        cells[5] = s[VG_F_RULE];
    } else if (s[VG_F_ACTION].p && s[VG_F_OBJECT].p) {
        cells[5] = join2(&o->scratch, s[VG_F_ACTION], " ", s[VG_F_OBJECT]);
    } else if (s[VG_F_CVE].p) {
        cells[5] = join2(&o->scratch, s[VG_F_CVE], " ", s[VG_F_PACKAGE]);
    } else if (s[VG_F_MESSAGE].p) {
        cells[5] = s[VG_F_MESSAGE];
    } else if (s[VG_F_ACTION].p) {
        cells[5] = s[VG_F_ACTION];
    } else {
        cells[5] = s[VG_F_KIND].p ? s[VG_F_KIND] : SPAN_LIT("-");
    }
    return table_row(o, cells);
}

static int table_header(struct out *o)
{
    const struct span cells[6] = { SPAN_LIT("TIME"),  SPAN_LIT("SOURCE"), SPAN_LIT("SEV"),
                                   SPAN_LIT("WHERE"), SPAN_LIT("WHO"),    SPAN_LIT("WHAT") };
    return table_row(o, cells);
}

/* ---- driver ---- */

int out_event(struct out *o, const struct rec *r)
{
    struct buf *b = &o->line;
    int rc = 0;

    buf_reset(b);
    if (!o->header_done) {
        if (o->fmt == OUT_TABLE) {
            rc = table_header(o);
        } else if (o->fmt == OUT_CSV) {
            rc = csv_header(b);
        }
    }
    size_t head = b->len;
    if (rc == 0 && o->fmt == OUT_JSON) {
        rc = buf_append_str(b, o->events == 0 ? "[\n" : ",\n");
    }
    if (rc == 0) {
        switch (o->fmt) {
        case OUT_JSON:
            rc = format_json(b, r);
            break;
        case OUT_NDJSON:
            if ((rc = format_json(b, r)) == 0) {
                rc = buf_append_byte(b, '\n');
            }
            break;
        case OUT_CSV:
            rc = format_csv(b, r);
            break;
        case OUT_TABLE:
            rc = format_table(o, r);
            break;
        }
    }
    if (rc < 0) {
        /* Print the header anyway: it is no part of the failed event. */
        b->len = head;
        if (head > 0 && o->fmt != OUT_JSON) {
            int wrc = write_line(o);
            o->header_done = wrc == 0;
        }
        buf_reset(b);
        return rc;
    }
    o->header_done = true;
    o->events++;
    return write_line(o);
}

int out_finish(struct out *o)
{
    struct buf *b = &o->line;
    int rc = 0;

    buf_reset(b);
    if (o->fmt == OUT_JSON) {
        rc = buf_append_str(b, o->events == 0 ? "[]\n" : "\n]\n");
    } else if (o->fmt == OUT_CSV && !o->header_done) {
        rc = csv_header(b);
        o->header_done = true;
    }
    if (rc == 0) {
        rc = write_line(o);
    }
    errno = 0;
    if (fflush(o->f) != 0 && rc == 0) {
        rc = errno ? -errno : -EIO;
    }
    if (ferror(o->f) && rc == 0) {
        rc = -EIO; /* an earlier write failed inside stdio's buffer */
    }
    return rc;
}

int out_note(struct out *o, const char *text)
{
    struct buf *b = &o->line;
    size_t chars;
    int rc = 0;

    if (o->fmt != OUT_TABLE) {
        return 0;
    }
    buf_reset(b);
    if (!o->header_done) {
        rc = table_header(o);
    }
    buf_reset(&o->cell);
    if (rc == 0) {
        rc = sanitize(&o->cell, span_str(text), &chars);
    }
    if (rc == 0) {
        rc = buf_append(b, o->cell.data, o->cell.len);
    }
    if (rc == 0) {
        rc = buf_append_byte(b, '\n');
    }
    if (rc < 0) {
        buf_reset(b);
        return rc;
    }
    o->header_done = true;
    return write_line(o);
}

int out_event_json(struct buf *b, const struct rec *r)
{
    return format_json(b, r);
}
