/* query/filter.h: the FILTER language of `vigil search`, `tail`, `stats`, `export`
 * and `hold` (DESIGN.md "Query CLI: vigil").
 *
 *     term     field=value   field!=value   field~substring   field!~substring
 *              field>N  field>=N  field<N  field<=N        (numbers, times, severity)
 *              seq=N..M  seq!=N..M                         (a range, both ends included)
 *              field=val*    field!=val*                   (prefix; field=* = present)
 *              src_ip=10.0.0.0/8  dst_ip=fd00::/8          (CIDR on IP fields)
 *              word  "a phrase"                            (full text over the event)
 *     filter   terms joined by AND, OR, NOT (or and, or, not) and parentheses;
 *              NOT binds tighter than AND, AND tighter than OR; adjacent terms AND.
 *
 * Fields are the normalized names of schemas/record.h plus raw.<dotted.path> into the
 * original event. Values may be double-quoted; a backslash escapes the next character
 * (\n, \t and \r are control characters, \* is a literal star). != and !~ also match
 * events that lack the field. A parsed filter is immutable: match from any thread. */
#ifndef VG_QUERY_FILTER_H
#define VG_QUERY_FILTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "schemas/record.h"

/* Limits that keep a filter (and its recursion) bounded whatever the input. */
#define FILTER_MAX_TEXT  4096 /* bytes of filter text */
#define FILTER_MAX_TERMS 256  /* comparisons and full-text words */
#define FILTER_MAX_DEPTH 64   /* nested parentheses and NOTs */

struct filter;

/* Parses text (NULL or "" matches everything). now_ns anchors relative times
 * ("ts>=15m"). On success *out (caller frees with filter_free) and 0. Else VG_EPARSE,
 * *err_column (if not NULL) set to the 1-based column (in characters) of the offending
 * token, and eb set to "filter: column N: reason". Pure; does not block. */
int filter_parse(const char *text, int64_t now_ns, struct filter **out, int *err_column,
                 struct errbuf *eb) VG_MUST_USE;

/* Builds filter text from command-line words: joined with spaces, a word with white
 * space quoted as a phrase (or, for "field=some value", its value quoted) unless it
 * already reads as filter syntax ("pod=x AND user=bob"). Empty words are dropped.
 * Returns a string the caller frees (never NULL). */
char *filter_join_args(int argc, char **argv);

/* True if r matches f. Reads r's raw bytes defensively: malformed msgpack is no match. */
bool filter_match(const struct filter *f, const struct rec *r);

/* The [since, until) range of event time implied by ts conditions ANDed at the top
 * level, for the scanner to skip partitions and blocks; INT64_MIN / INT64_MAX when
 * unbounded. Every match lies inside the range (the converse does not hold). */
void filter_time_bounds(const struct filter *f, int64_t *since, int64_t *until);

/* The [lo, hi] range of seq implied by seq conditions ANDed at the top level (seq=N,
 * seq=N..M, seq>=N, ...), for the scanner to skip segments and blocks by their seq
 * range; 0 / UINT64_MAX when unbounded, lo > hi when nothing can match. Every match lies
 * inside the range. Pure. */
void filter_seq_bounds(const struct filter *f, uint64_t *lo, uint64_t *hi);

/* What every record matching f has, from the terms ANDed at the top level (a term
 * under OR or NOT, a negated one, a number, time, CIDR or severity rank comparison adds
 * nothing), for the scanner to skip blocks whose index rules it out (store_need):
 * - values: field = value, case-sensitive equality on a text field, or an IP field
 *   equal to an address (value as written: compare as addresses);
 * - texts: strings that occur, ignoring ASCII case, inside one string of every match:
 *   a bare word or phrase (in a normalized field or a string of raw; raw integers are
 *   searched as decimals, which a text made of digits alone could match: the index
 *   ignores digit-only trigrams), field~text, field=value and field=prefix* on text
 *   fields, and on raw paths when only a string can match (raw.x=abc, not raw.x=401).
 * Spans point into f; at most FILTER_MAX_TERMS of each. Pure. */
struct filter_needs {
    size_t nvalues;
    struct filter_need_value {
        enum vg_field field;
        struct span value;
    } values[FILTER_MAX_TERMS];
    size_t ntexts;
    struct span texts[FILTER_MAX_TERMS];
};
void filter_needs(const struct filter *f, struct filter_needs *out);

/* The fields f reads: bit (1 << enum vg_field) for each field a comparison names
 * (raw.<path>: VG_F_RAW); FILTER_FIELDS_ALL when a full-text term reads every string of
 * the event. 0 for a filter that matches everything. Pure. */
#define FILTER_FIELDS_ALL UINT64_MAX
uint64_t filter_fields(const struct filter *f);

/* Appends a canonical form, e.g. (AND (EQ pod "x") (TEXT "shell")), for --explain and
 * tests. Returns 0 or VG_ELIMIT. */
int filter_describe(const struct filter *f, struct buf *out) VG_MUST_USE;

void filter_free(struct filter *f);

/* The normalized field name closest to name (a typo: one or two edits), or NULL. */
const char *filter_field_suggest(struct span name);

/* Prints text on one line (control characters as spaces) and under it a caret at the
 * 1-based character column, for the CLI to show where a filter went wrong. */
void filter_error_caret(const char *text, int column, FILE *f);

#endif
