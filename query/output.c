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
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/filter.h"
#include "schemas/raw_path.h"

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
/* On a terminal: WHERE and WHO up to these; WHAT at least OUT_WHAT_MIN, wrapped onto at
 * most OUT_WHAT_LINES lines. */
#define OUT_WHERE_MAX  64
#define OUT_WHO_MAX    48
#define OUT_WHAT_MIN   16
#define OUT_WHAT_LINES 3

struct out {
    enum out_format fmt;
    FILE *f;
    int width;
    size_t where_w, who_w, what_w; /* table; what_w 0 = unlimited */
    struct out_fields *fields;     /* out_set_fields, or NULL: the default columns */
    size_t need_where, need_who;   /* out_measure: the widest WHERE and WHO cells */
    bool measured;
    bool what_below;                /* table_widths: WHAT on lines of its own under each row */
    size_t field_w[OUT_MAX_FIELDS]; /* table widths of fields (0: unlimited) */
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

/* Table widths (issue 13 item 1: the who and where are never what gets cut). When not a
 * terminal: generous fixed widths, the last column uncut. On a terminal WHERE and WHO get
 * what their cells need (out_measure; unmeasured, 40% and 25% of what is left after the
 * fixed columns), up to OUT_WHERE_MAX and OUT_WHO_MAX, and WHAT the rest when that is at
 * least OUT_WHAT_MIN, wrapping onto continuation lines (table_cell_wrap). When it is less,
 * the message goes below the row on lines of its own (what_below). Only a terminal too
 * narrow for WHERE and WHO themselves shares their room between them, in proportion. */
static void table_widths(struct out *o)
{
    o->what_below = false;
    if (o->width == 0) {
        o->where_w = OUT_PIPE_WHERE_W;
        o->who_w = OUT_PIPE_WHO_W;
        o->what_w = 0;
        return;
    }
    size_t avail = (size_t)o->width > OUT_FIXED_W + 2 ? (size_t)o->width - OUT_FIXED_W - 2 : 0;
    size_t where = o->measured ? o->need_where : avail * 40 / 100;
    size_t who = o->measured ? o->need_who : avail * 25 / 100;
    where = clamp(where, OUT_MIN_W, OUT_WHERE_MAX);
    who = clamp(who, OUT_MIN_W, OUT_WHO_MAX);
    if (where + who + OUT_WHAT_MIN <= avail) {
        o->where_w = where;
        o->who_w = who;
        o->what_w = avail - where - who;
        return;
    }
    /* WHERE and WHO take the WHAT column's room too (and its separator). */
    size_t room = avail + 1 > 2 * OUT_MIN_W ? avail + 1 : 2 * OUT_MIN_W;
    if (where + who > room) {
        size_t w = clamp(room * where / (where + who), OUT_MIN_W, where);
        who = clamp(room - w, OUT_MIN_W, who);
        where = w;
    }
    o->where_w = where;
    o->who_w = who;
    o->what_w = (size_t)o->width > 4 ? (size_t)o->width - 2 : OUT_MIN_W;
    o->what_below = true;
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
    table_widths(o);
    return o;
}

void out_free(struct out *o)
{
    if (o) {
        free(o->fields);
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

/* Appends "key":value for field f of r. Returns 1, 0 when r lacks it (nothing
 * appended), or an error. */
static int json_member(struct buf *b, const struct rec *r, int f, const char *key)
{
    int rc;

    switch (f) {
    case VG_F_TS:
        return r->has_ts ? (rc = json_time(b, key, r->ts)) < 0 ? rc : 1 : 0;
    case VG_F_RECEIVED:
        return r->has_received ? (rc = json_time(b, key, r->received)) < 0 ? rc : 1 : 0;
    case VG_F_SEQ:
        return r->has_seq ? (rc = buf_appendf(b, "\"%s\":%" PRIu64, key, r->seq)) < 0 ? rc : 1 : 0;
    case VG_F_DST_PORT:
        return r->has_dst_port
                   ? (rc = buf_appendf(b, "\"%s\":%" PRId64, key, r->dst_port)) < 0 ? rc : 1
                   : 0;
    case VG_F_RAW:
        if (r->raw.n == 0) {
            return 0;
        }
        if ((rc = buf_appendf(b, "\"%s\":", key)) == 0) {
            rc = mp_to_json(r->raw, b);
        }
        return rc < 0 ? rc : 1;
    default:
        if (!r->str[f].p) {
            return 0;
        }
        if ((rc = buf_appendf(b, "\"%s\":", key)) == 0) {
            rc = json_append_str(b, r->str[f]);
        }
        return rc < 0 ? rc : 1;
    }
}

static int format_json(struct buf *b, const struct rec *r)
{
    bool first = true;
    int rc = buf_append_byte(b, '{');

    for (int f = 0; f < VG_F_COUNT && rc == 0; f++) {
        size_t mark = b->len;
        if (!first && (rc = buf_append_byte(b, ',')) < 0) {
            break;
        }
        rc = json_member(b, r, f, vg_field_name((enum vg_field)f));
        if (rc == 0) {
            b->len = mark; /* absent: no comma either */
        } else if (rc > 0) {
            first = false;
            rc = 0;
        }
    }
    return rc < 0 ? rc : buf_append_byte(b, '}');
}

/* ---- fields (--fields) ---- */

struct raw_first {
    struct span v;
    bool found;
};

static bool visit_first(struct span value, int depth, void *arg)
{
    struct raw_first *f = arg;
    (void)depth;
    f->v = value;
    f->found = true;
    return true;
}

/* The first value raw.<path> reaches in r. */
static bool raw_value(const struct out_field *f, const struct rec *r, struct span *v)
{
    struct raw_first first = { { NULL, 0 }, false };

    if (r->raw.n == 0) {
        return false;
    }
    if (f->path[0] == 0) {
        *v = r->raw;
        return true;
    }
    raw_path_walk(r->raw, span_str(f->path), 0, visit_first, &first);
    *v = first.v;
    return first.found;
}

int out_field_parse(struct span name, struct out_field *out, struct errbuf *eb)
{
    memset(out, 0, sizeof(*out));
    if (name.n == 0 || name.n >= OUT_FIELD_NAME_MAX || memchr(name.p, 0, name.n)) {
        errbuf_set(eb, name.n == 0 ? "empty field name" : "field name '%.40s…' is too long",
                   (const char *)name.p);
        return VG_EPARSE;
    }
    memcpy(out->name, name.p, name.n);
    if (span_starts_with(name, SPAN_LIT("raw."))) {
        if (name.n == 4 || name.p[name.n - 1] == '.' || strstr(out->name, "..")) {
            errbuf_set(eb, "field '%s': empty key in the path", out->name);
            return VG_EPARSE;
        }
        out->field = VG_F_RAW;
        memcpy(out->path, name.p + 4, name.n - 4);
        return 0;
    }
    int f = vg_field_lookup(name);
    if (f >= 0) {
        out->field = f;
        return 0;
    }
    /* "container": the fields it begins. */
    char starts[160] = "";
    size_t n = 0;
    for (int i = 0; i < VG_F_COUNT; i++) {
        const char *fn = vg_field_name((enum vg_field)i);
        if (strncmp(fn, out->name, name.n) == 0 && n + strlen(fn) + 8 < sizeof(starts)) {
            n += (size_t)snprintf(starts + n, sizeof(starts) - n, "%s'%s'", n ? " or " : "", fn);
        }
    }
    const char *best = filter_field_suggest(name);
    if (n > 0) {
        errbuf_set(eb, "unknown field '%s' (did you mean %s?)", out->name, starts);
    } else if (best) {
        errbuf_set(eb, "unknown field '%s' (did you mean '%s'?)", out->name, best);
    } else {
        errbuf_set(eb,
                   "unknown field '%s' (fields are the normalized names of "
                   "schemas/event.yaml, or raw.<path> into the original event)",
                   out->name);
    }
    return VG_EPARSE;
}

int out_fields_parse(const char *list, struct out_fields *out, struct errbuf *eb)
{
    const char *p = list;

    out->n = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        struct span name = { (const uint8_t *)p, comma ? (size_t)(comma - p) : strlen(p) };
        if (out->n == OUT_MAX_FIELDS) {
            errbuf_set(eb, "more than %d fields", OUT_MAX_FIELDS);
            return VG_EPARSE;
        }
        int rc = out_field_parse(name, &out->v[out->n], eb);
        if (rc < 0) {
            return rc;
        }
        out->n++;
        if (!comma) {
            return 0;
        }
        p = comma + 1;
    }
}

int out_field_text(const struct out_field *f, const struct rec *r, int digits, struct buf *b)
{
    char num[48];
    int rc;

    switch (f->field) {
    case VG_F_TS:
    case VG_F_RECEIVED: {
        bool has = f->field == VG_F_TS ? r->has_ts : r->has_received;
        if (!has) {
            return 0;
        }
        vg_time_format(f->field == VG_F_TS ? r->ts : r->received, digits, num, sizeof(num));
        rc = buf_append_str(b, num);
        break;
    }
    case VG_F_SEQ:
        if (!r->has_seq) {
            return 0;
        }
        rc = buf_appendf(b, "%" PRIu64, r->seq);
        break;
    case VG_F_DST_PORT:
        if (!r->has_dst_port) {
            return 0;
        }
        rc = buf_appendf(b, "%" PRId64, r->dst_port);
        break;
    case VG_F_RAW: {
        struct span v;
        struct span str;
        if (!raw_value(f, r, &v)) {
            return 0;
        }
        rc = mp_get_str(v, &str) ? buf_append(b, str.p, str.n) : mp_to_json(v, b);
        break;
    }
    default:
        if (!r->str[f->field].p) {
            return 0;
        }
        rc = buf_append(b, r->str[f->field].p, r->str[f->field].n);
    }
    return rc < 0 ? rc : 1;
}

static int format_json_fields(struct out *o, struct buf *b, const struct rec *r)
{
    bool first = true;
    int rc = buf_append_byte(b, '{');

    for (size_t i = 0; i < o->fields->n && rc == 0; i++) {
        const struct out_field *f = &o->fields->v[i];
        size_t mark = b->len;
        if (!first && (rc = buf_append_byte(b, ',')) < 0) {
            break;
        }
        if (f->field == VG_F_RAW && f->path[0]) {
            struct span v;
            if (!raw_value(f, r, &v)) {
                rc = 0;
            } else if ((rc = json_append_str(b, span_str(f->name))) == 0 &&
                       (rc = buf_append_byte(b, ':')) == 0 && (rc = mp_to_json(v, b)) == 0) {
                rc = 1;
            }
        } else {
            rc = json_member(b, r, f->field, f->name);
        }
        if (rc == 0) {
            b->len = mark;
        } else if (rc > 0) {
            first = false;
            rc = 0;
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

static int csv_header(const struct out *o, struct buf *b)
{
    int rc = 0;

    if (o->fields) {
        for (size_t i = 0; i < o->fields->n && rc == 0; i++) {
            if (i && (rc = buf_append_byte(b, ',')) < 0) {
                break;
            }
            rc = csv_cell(b, span_str(o->fields->v[i].name));
        }
        return rc < 0 ? rc : buf_append_str(b, "\r\n");
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(csv_fields) && rc == 0; i++) {
        rc = buf_appendf(b, "%s%s", i ? "," : "", vg_field_name(csv_fields[i]));
    }
    return rc < 0 ? rc : buf_append_str(b, "\r\n");
}

static int format_csv_fields(struct out *o, struct buf *b, const struct rec *r)
{
    int rc = 0;

    for (size_t i = 0; i < o->fields->n && rc == 0; i++) {
        if (i && (rc = buf_append_byte(b, ',')) < 0) {
            break;
        }
        buf_reset(&o->scratch);
        rc = out_field_text(&o->fields->v[i], r, 9, &o->scratch);
        if (rc > 0) {
            rc = csv_cell(b, buf_span(&o->scratch));
        }
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

/* WHAT on a terminal: a cell of width w that wraps onto continuation lines (indented by
 * indent columns) rather than being cut, at most OUT_WHAT_LINES lines, the last one cut
 * with '…' when even they do not hold it. */
static int table_cell_wrap(struct out *o, struct span s, size_t w, size_t indent)
{
    struct buf *b = &o->line;
    size_t chars;
    int rc;

    buf_reset(&o->cell);
    if ((rc = sanitize(&o->cell, s, &chars)) < 0) {
        return rc;
    }
    size_t i = 0;
    for (int line = 0; rc == 0; line++) {
        size_t left = chars;
        if (left <= w) {
            return buf_append(b, o->cell.data + i, o->cell.len - i);
        }
        bool last = line + 1 == OUT_WHAT_LINES;
        size_t take = last ? w - 1 : w;
        size_t start = i;
        for (size_t c = 0; c < take; c++) {
            uint32_t cp;
            i += utf8_seq_len(o->cell.data + i, o->cell.len - i, &cp);
        }
        chars -= take;
        if ((rc = buf_append(b, o->cell.data + start, i - start)) < 0) {
            return rc;
        }
        if (last) {
            return buf_append_str(b, "\xe2\x80\xa6");
        }
        if ((rc = buf_append_byte(b, '\n')) < 0) {
            return rc;
        }
        for (size_t k = 0; k < indent && rc == 0; k++) {
            rc = buf_append_byte(b, ' ');
        }
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

    size_t indent = 0;

    for (int i = 0; i < 6 && rc == 0; i++) {
        if (i == 5 && o->what_below) {
            /* The message under the row, indented, wrapped at the terminal's width (the
             * header row has no WHAT: header_row passes an empty one). */
            if (cells[5].n == 0) {
                break;
            }
            if ((rc = buf_append_str(&o->line, "\n  ")) == 0) {
                rc = table_cell_wrap(o, cells[5], widths[5], 2);
            }
            break;
        }
        if (i && (rc = table_sep(o)) < 0) {
            break;
        }
        if (i == 5 && o->width > 0 && widths[5] > 1) {
            rc = table_cell_wrap(o, cells[i], widths[i], indent);
        } else {
            rc = table_cell(o, cells[i], widths[i], i == 5 || (i == 4 && o->what_below));
        }
        indent += widths[i] + 1;
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

/* The six cells of r's row; they point into scratch and ts. */
static int table_cells(struct out *o, const struct rec *r, struct span cells[6], char ts[40])
{
    const struct span *s = r->str;
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
        vg_time_format(r->has_ts ? r->ts : r->received, 3, ts, 40);
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
    } else if (s[VG_F_CONTAINER_NAME].p) {
        cells[3] = s[VG_F_CONTAINER_NAME];
    } else {
        /* An image's events and alerts (a scan, a correlation grouped by image). */
        cells[3] = s[VG_F_IMAGE].p ? s[VG_F_IMAGE] : SPAN_LIT("-");
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
    return 0;
}

static int format_table(struct out *o, const struct rec *r)
{
    struct span cells[6];
    char ts[40];
    int rc = table_cells(o, r, cells, ts);

    return rc < 0 ? rc : table_row(o, cells);
}

void out_measure(struct out *o, const struct rec *r)
{
    struct span cells[6];
    char ts[40];
    size_t chars;

    if (o->fmt != OUT_TABLE || o->fields || o->width == 0 || o->header_done ||
        table_cells(o, r, cells, ts) < 0) {
        return;
    }
    o->measured = true;
    buf_reset(&o->cell);
    if (sanitize(&o->cell, cells[3], &chars) == 0 && chars > o->need_where) {
        o->need_where = chars;
    }
    buf_reset(&o->cell);
    if (sanitize(&o->cell, cells[4], &chars) == 0 && chars > o->need_who) {
        o->need_who = chars;
    }
    table_widths(o);
}

static int table_header(struct out *o)
{
    const struct span cells[6] = {
        SPAN_LIT("TIME"),  SPAN_LIT("SOURCE"), SPAN_LIT("SEV"),
        SPAN_LIT("WHERE"), SPAN_LIT("WHO"),    o->what_below ? SPAN_LIT("") : SPAN_LIT("WHAT")
    };
    return table_row(o, cells);
}

/* --fields in a table: fixed widths for times, numbers, source and severity; the other
 * columns share what is left, the last one taking the rest (uncut when not a terminal). */
static size_t field_fixed_w(int f)
{
    switch (f) {
    case VG_F_TS:
    case VG_F_RECEIVED:
        return OUT_TIME_W;
    case VG_F_SEQ:
        return 10;
    case VG_F_DST_PORT:
        return 5;
    case VG_F_SOURCE:
        return OUT_SOURCE_W;
    case VG_F_SEVERITY:
        return OUT_SEV_W;
    default:
        return 0;
    }
}

static void fields_widths(struct out *o)
{
    size_t n = o->fields->n;
    size_t fixed = 0;
    size_t flex = 0;

    for (size_t i = 0; i < n; i++) {
        size_t w = field_fixed_w(o->fields->v[i].field);
        size_t hw = strlen(o->fields->v[i].name);
        o->field_w[i] = w ? (w > hw ? w : hw) : 0;
        fixed += o->field_w[i];
        flex += w == 0;
    }
    size_t avail = (size_t)o->width > fixed + n ? (size_t)o->width - fixed - n : 0;
    for (size_t i = 0; i < n; i++) {
        if (o->field_w[i]) {
            continue;
        }
        if (o->width == 0) {
            o->field_w[i] = OUT_PIPE_WHO_W;
        } else {
            o->field_w[i] = clamp(flex ? avail / flex : 0, OUT_MIN_W, 200);
        }
    }
    if (o->width == 0) {
        o->field_w[n - 1] = 0; /* the last column is never cut when piped */
    }
}

static int table_row_fields(struct out *o, const struct span *cells)
{
    int rc = 0;

    for (size_t i = 0; i < o->fields->n && rc == 0; i++) {
        if (i && (rc = table_sep(o)) < 0) {
            break;
        }
        rc = table_cell(o, cells[i], o->field_w[i], i + 1 == o->fields->n);
    }
    return rc < 0 ? rc : buf_append_byte(&o->line, '\n');
}

static int table_header_fields(struct out *o)
{
    struct span cells[OUT_MAX_FIELDS];
    char names[OUT_MAX_FIELDS][OUT_FIELD_NAME_MAX];

    for (size_t i = 0; i < o->fields->n; i++) {
        size_t k = 0;
        for (const char *p = o->fields->v[i].name; *p && k + 1 < sizeof(names[i]); p++) {
            names[i][k++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        }
        names[i][k] = 0;
        cells[i] = span_str(names[i]);
    }
    return table_row_fields(o, cells);
}

static int format_table_fields(struct out *o, const struct rec *r)
{
    struct span cells[OUT_MAX_FIELDS];
    size_t off[OUT_MAX_FIELDS];
    size_t len[OUT_MAX_FIELDS];
    int rc = 0;

    /* Every value into scratch first (it may move while it grows), then the cells. */
    buf_reset(&o->scratch);
    for (size_t i = 0; i < o->fields->n; i++) {
        off[i] = o->scratch.len;
        rc = out_field_text(&o->fields->v[i], r, 3, &o->scratch);
        if (rc < 0) {
            return rc;
        }
        len[i] = rc > 0 ? o->scratch.len - off[i] : SIZE_MAX;
    }
    for (size_t i = 0; i < o->fields->n; i++) {
        cells[i] =
            len[i] == SIZE_MAX ? SPAN_LIT("-") : (struct span){ o->scratch.data + off[i], len[i] };
    }
    return table_row_fields(o, cells);
}

void out_set_fields(struct out *o, const struct out_fields *fields)
{
    free(o->fields);
    o->fields = NULL;
    if (fields && fields->n > 0) {
        o->fields = xmalloc(sizeof(*o->fields));
        *o->fields = *fields;
        fields_widths(o);
    }
}

/* ---- driver ---- */

int out_event(struct out *o, const struct rec *r)
{
    struct buf *b = &o->line;
    int rc = 0;

    buf_reset(b);
    if (!o->header_done) {
        if (o->fmt == OUT_TABLE) {
            rc = o->fields ? table_header_fields(o) : table_header(o);
        } else if (o->fmt == OUT_CSV) {
            rc = csv_header(o, b);
        }
    }
    size_t head = b->len;
    if (rc == 0 && o->fmt == OUT_JSON) {
        rc = buf_append_str(b, o->events == 0 ? "[\n" : ",\n");
    }
    if (rc == 0) {
        switch (o->fmt) {
        case OUT_JSON:
            rc = o->fields ? format_json_fields(o, b, r) : format_json(b, r);
            break;
        case OUT_NDJSON:
            if ((rc = o->fields ? format_json_fields(o, b, r) : format_json(b, r)) == 0) {
                rc = buf_append_byte(b, '\n');
            }
            break;
        case OUT_CSV:
            rc = o->fields ? format_csv_fields(o, b, r) : format_csv(b, r);
            break;
        case OUT_TABLE:
            rc = o->fields ? format_table_fields(o, r) : format_table(o, r);
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
        rc = csv_header(o, b);
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
