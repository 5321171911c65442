/* query/output.h: printing events for `vigil search`, `timeline` and `tail`.
 *
 *   table   TIME (RFC 3339, ms), SOURCE, SEV, WHERE (namespace/pod, or host, container
 *           or image), WHO (user@src_ip), WHAT (rule, or action and object, or
 *           message); on a terminal WHERE and WHO keep their width (out_measure) and
 *           WHAT wraps onto up to 3 lines; cells are cut at a character boundary with
 *           '…' to fit the width, control characters are escaped so event text cannot
 *           drive the terminal.
 *   json    a JSON array, one event object per line.
 *   ndjson  one event object per line.
 *   csv     RFC 4180: a header row, then ts, source, kind, severity, host, namespace,
 *           pod, user, src_ip, action, outcome, rule, message; CRLF line ends.
 *
 * An event object holds ts and received as RFC 3339 strings with 9 fraction digits,
 * seq and dst_port as numbers, every other present field as a string, and "raw", the
 * original event converted back to JSON. One struct out is used by one thread.
 * Evidence bundles carry events in this NDJSON form and `vigil verify` compares them
 * byte for byte with it (schemas/bundle.md 5): changing it is a new bundle version.
 *
 * With out_set_fields (--fields f1,f2,...), the table and CSV have exactly those columns
 * (headed by the names as given), and JSON/NDJSON objects keep only those keys; a field
 * is a normalized name or raw.<dotted.path> (its first value: a string as it is, any
 * other value as JSON text in the table and CSV, as JSON in JSON output). A field the
 * event lacks is an empty cell ('-' in the table) and no key. */
#ifndef VG_QUERY_OUTPUT_H
#define VG_QUERY_OUTPUT_H

#include <stdio.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/vg.h"
#include "schemas/record.h"

enum out_format { OUT_TABLE, OUT_JSON, OUT_NDJSON, OUT_CSV };

/* "table", "json", "ndjson" or "csv" (any case). Returns 0 or VG_EPARSE. */
int out_format_parse(const char *s, enum out_format *out) VG_MUST_USE;

/* The name out_format_parse accepts for fmt. Static storage. */
const char *out_format_name(enum out_format fmt);

struct out;

/* One field of --fields: a normalized field, or raw.<path>. */
#define OUT_FIELD_NAME_MAX 128
struct out_field {
    int field;                     /* enum vg_field; VG_F_RAW with path (empty: all of raw) */
    char path[OUT_FIELD_NAME_MAX]; /* after "raw." */
    char name[OUT_FIELD_NAME_MAX]; /* as given */
};
#define OUT_MAX_FIELDS 32
struct out_fields {
    size_t n;
    struct out_field v[OUT_MAX_FIELDS];
};

/* Parses a field name. Returns 0, or VG_EPARSE with eb saying why ("unknown field 'x'
 * (did you mean 'y'?)"). */
int out_field_parse(struct span name, struct out_field *out, struct errbuf *eb) VG_MUST_USE;

/* Parses "f1,f2,..." (at least one, at most OUT_MAX_FIELDS). Returns 0 or VG_EPARSE with
 * eb naming the field. */
int out_fields_parse(const char *list, struct out_fields *out, struct errbuf *eb) VG_MUST_USE;

/* Appends f's value in r to b as text: times RFC 3339 with `digits` fraction digits,
 * numbers in decimal, strings as they are, raw values as out.h says. Returns 1 (appended),
 * 0 (r lacks it; nothing appended), VG_ECORRUPT (malformed raw) or VG_ELIMIT. */
int out_field_text(const struct out_field *f, const struct rec *r, int digits, struct buf *b);

/* Prints to f (borrowed; the caller closes it). width: terminal columns for the table;
 * 0 when not a terminal, then columns have a fixed generous width and the last one is
 * never cut. Never fails (aborts on out of memory); caller frees with out_free. */
struct out *out_new(enum out_format fmt, FILE *f, int width);

/* Table on a terminal: makes WHERE and WHO as wide as r's cells need (up to a cap), the
 * message taking what is left and wrapping when longer; call for every event to print,
 * before the first out_event. Any other case: nothing. */
void out_measure(struct out *o, const struct rec *r);

/* The columns and keys of every event printed from now on (copied; NULL: the default
 * ones). Call before the first out_event. */
void out_set_fields(struct out *o, const struct out_fields *fields);

/* Prints one event (a table or CSV header first, before the first event). Each event
 * is formatted whole before it is written, so an error prints nothing of it. Returns
 * 0, VG_ECORRUPT when r's raw value is malformed msgpack, VG_ELIMIT for an event over
 * 256 MiB of text, or -errno when writing fails. Blocks on f. */
int out_event(struct out *o, const struct rec *r) VG_MUST_USE;

/* Ends the output (closes the JSON array; prints the CSV header if no event did) and
 * flushes f. Returns 0, or -errno (-EIO when stdio lost an earlier write). Call once. */
int out_finish(struct out *o) VG_MUST_USE;

/* Table only (other formats: 0, nothing printed): prints one line of the command's own
 * between events (a timeline's minute heading, a summary line), made safe for a
 * terminal like a cell but never cut; the table header first if no event printed it.
 * Returns 0, VG_ELIMIT or -errno when writing fails. */
int out_note(struct out *o, const char *text) VG_MUST_USE;

/* Appends r to b as the event object the json and ndjson formats print (no line end).
 * Returns 0, VG_ECORRUPT (r's raw is malformed msgpack) or VG_ELIMIT (b's max). */
int out_event_json(struct buf *b, const struct rec *r) VG_MUST_USE;

/* Frees o (takes NULL). Does not close f. */
void out_free(struct out *o);

#endif
