/* rules/rules.h: Sigma rules for vigil (DESIGN.md "Correlation rules"): loading (libyaml),
 * detection matching, correlation state machines, alerts as records, rule test cases.
 * Used live by vigild and over history by `vigil hunt`; rules/README.md says what is
 * supported and why.
 *
 * Life cycle:
 *     rules_load()        files and folders -> an immutable struct ruleset (+ a report of
 *                         what loaded and what did not, with file, line and reason)
 *     rules_engine_new()  per thread / per stream: the evaluation scratch and the
 *                         correlation state (bounded by struct rules_limits)
 *     rules_engine_eval() one record at a time, in stream order; alerts go to a callback
 *     rules_engine_advance() / _flush()  event time moves on without events (live timer,
 *                         end of a hunt): windows that need their end close
 *     rules_engine_checkpoint() / _restore()  the correlation state as bytes, so a
 *                         restart or a rule reload keeps an attack in progress
 *
 * Same answers live and in hunt: the engine is deterministic in the order it is fed.
 * vigild evaluates records in store order (seq) once they have a seq; `vigil hunt` that
 * replays a store in seq order gets the same alerts. Event time (ts) drives the windows;
 * records may arrive out of order by up to rules_limits.lateness_ns and still count.
 *
 * Threads: a ruleset is immutable and may be shared by engines on any threads; an engine
 * belongs to one thread at a time. The ruleset must outlive every engine made from it. */
#ifndef VG_RULES_RULES_H
#define VG_RULES_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"
#include "schemas/record.h"

struct ruleset;
struct rules_engine;

/* ---- loading ---- */

struct rules_options {
    /* The logsource and field mapping (schemas/sigma_map.yaml format). NULL: the copy of
     * schemas/sigma_map.yaml compiled into the library. */
    const char *map_path;
};

enum rules_status {
    RULES_LOADED,
    RULES_UNSUPPORTED, /* valid Sigma using something vigil does not do (an unmapped
                        * logsource or field, a modifier, placeholders...) */
    RULES_INVALID,     /* not a valid rule: YAML errors, missing keys, bad values,
                        * references to rules that are not there */
};

/* One rule document (or one file that could not be read or parsed at all). */
struct rules_report_item {
    char *file;
    unsigned line, column; /* 1-based place of the rule, or of the problem when not loaded */
    char *title;           /* NULL when unknown */
    char *id;              /* the rule's id, else its name; NULL when neither */
    bool correlation;
    enum rules_status status;
    char *reason; /* why it did not load ("file:line:col: ..."); NULL when loaded */
};

struct rules_report {
    struct rules_report_item *items; /* in file order, documents in order */
    size_t n, cap;
    size_t loaded, unsupported, invalid;
};

void rules_report_init(struct rules_report *rep);
void rules_report_release(struct rules_report *rep);

/* Loads every rule from paths: files, and folders walked recursively for *.yml and
 * *.yaml (not *.tests.yml / *.tests.yaml: those are test cases, see rules_tests_run).
 * A file may hold several YAML documents (rules and correlation rules); rules refer to
 * each other by id or name across files. A rule that does not load (unsupported or
 * invalid) is left out whole, never half-way, and reported in rep (which the caller
 * initialized; items are appended). Returns 0 with *out set (caller frees with
 * ruleset_free; it may hold zero rules) when every path could be read; a negative code
 * (-ENOENT, -EACCES, VG_ECONFIG for a bad mapping file...) with eb set otherwise, and
 * *out NULL. Reads files: blocks; call off the event loop. */
int rules_load(const char *const *paths, size_t npaths, const struct rules_options *opt,
               struct ruleset **out, struct rules_report *rep, struct errbuf *eb) VG_MUST_USE;

/* The same over YAML text in memory (len bytes); name stands for the file in messages. */
int rules_load_mem(const char *name, const void *text, size_t len, const struct rules_options *opt,
                   struct ruleset **out, struct rules_report *rep, struct errbuf *eb) VG_MUST_USE;

void ruleset_free(struct ruleset *rs);

enum rules_type {
    RULES_DETECTION,
    RULES_EVENT_COUNT,
    RULES_VALUE_COUNT,
    RULES_TEMPORAL,
    RULES_TEMPORAL_ORDERED,
};
const char *rules_type_name(enum rules_type t); /* "detection", "event_count", ... */

struct rules_rule_info {
    const char *id;   /* "" when none */
    const char *name; /* "" when none */
    const char *title;
    const char *level; /* Sigma level: informational, low, medium, high, critical; "" */
    enum vg_severity severity;
    enum rules_type type;
    bool alerts; /* emits alerts itself (false: only feeds correlations, Sigma `generate`) */
    const char *file;
    unsigned line;
    const char *logsource; /* the mapping entry's name ("linux/process_creation"); "" for
                            * correlations */
    int64_t timespan_ns;   /* correlations; 0 for detections */
    size_t ngroup;
    const char *const *group_by; /* correlations: the group-by field names */
};

size_t ruleset_count(const struct ruleset *rs);
/* Fills info for rule i < ruleset_count(rs); strings live as long as rs. */
void ruleset_rule_info(const struct ruleset *rs, size_t i, struct rules_rule_info *info);
/* The index of the rule with this id or name, or -1. */
long ruleset_find(const struct ruleset *rs, const char *id_or_name);

/* ---- evaluation ---- */

struct rules_limits {
    size_t max_groups_per_rule;  /* correlation groups per rule (default 10000); at the cap
                                  * the group closest to expiry is dropped (counted) */
    size_t max_events_per_group; /* events a group remembers (default 1024); the oldest
                                  * is forgotten first (counted) */
    size_t max_alert_events;     /* event seqs listed in one alert (default 32, the latest) */
    int64_t lateness_ns;         /* a record up to this far behind the newest event time
                                  * seen still counts (default 2 min); older: dropped, counted */
    int64_t max_future_ns;       /* event time is clamped to received + this (default 5 min)
                                  * so one record dated 2099 cannot stop the clock */
};
void rules_limits_default(struct rules_limits *lim);

/* One firing. Everything it points to is valid during the callback only. */
struct rules_alert {
    size_t rule;         /* index in the ruleset */
    const char *rule_id; /* id, else name, else "" */
    const char *title;
    const char *level;
    enum vg_severity severity;
    enum rules_type type;
    size_t ngroup; /* correlations: the group-by fields and this group's values */
    const char *const *group_names;
    const struct span *group_values;
    const uint64_t *seqs; /* seqs of the triggering events that had one, oldest first */
    size_t nseqs;
    uint64_t count;       /* detection: 1; event_count: events; value_count: distinct
                           * values; temporal: rules seen */
    int64_t ts;           /* event time of the alert: the latest triggering event's */
    int64_t window_start; /* event time of the first and last triggering events */
    int64_t window_end;
    const struct rec *event; /* detection: the matching record; NULL for correlations */
};

/* Called for each alert, in order. A non-zero return does not stop the evaluation (the
 * state stays consistent); the first one is returned by the call that emitted. */
typedef int (*rules_alert_fn)(const struct rules_alert *a, void *arg);

/* Makes an engine for rs (which must outlive it); lim NULL = defaults. Returns 0 or
 * -EINVAL for a zero limit. */
int rules_engine_new(const struct ruleset *rs, const struct rules_limits *lim,
                     struct rules_engine **out) VG_MUST_USE;
void rules_engine_free(struct rules_engine *e);

/* Evaluates one record against every rule: detections whose logsource takes the record,
 * then the correlations they feed (and those fed by those). Calls emit (may be NULL) for
 * each alert. r's string fields and raw are only read during the call. Returns the
 * number of alerts emitted (>= 0), or the first non-zero return of emit. Does not block. */
int rules_engine_eval(struct rules_engine *e, const struct rec *r, rules_alert_fn emit, void *arg);

/* Tells the engine that event time has reached now_ns without records (vigild's timer,
 * with now = wall clock - lateness), closing windows that ended before it: correlations
 * with an upper bound (lt, lte, eq, a range) fire only when their window closes; other
 * state expires. Returns the alerts emitted, as eval. */
int rules_engine_advance(struct rules_engine *e, int64_t now_ns, rules_alert_fn emit, void *arg);
/* Closes every open window (end of a hunt). The state is empty afterwards. */
int rules_engine_flush(struct rules_engine *e, rules_alert_fn emit, void *arg);

/* Appends the correlation state (msgpack, rules/README.md "Checkpoints") to out.
 * Returns 0 or VG_ELIMIT when out's max is passed. */
int rules_engine_checkpoint(const struct rules_engine *e, struct buf *out) VG_MUST_USE;
/* Replaces e's correlation state with a checkpoint's, possibly taken by an engine on an
 * older ruleset: state is matched to rules by id/name/title and a fingerprint of each
 * correlation's definition; rules that changed or disappeared start empty. Returns the
 * number of groups restored (>= 0), or VG_ECORRUPT (state unchanged) when the bytes are
 * not a well-formed checkpoint. Limits still apply. */
int rules_engine_restore(struct rules_engine *e, struct span state) VG_MUST_USE;

struct rules_stats {
    uint64_t events;           /* records evaluated */
    uint64_t matches;          /* detection matches (alerting or feeding) */
    uint64_t alerts;           /* alerts emitted */
    uint64_t groups;           /* correlation groups held now */
    uint64_t late_dropped;     /* records older than lateness_ns behind: not counted */
    uint64_t groups_evicted;   /* groups dropped at max_groups_per_rule */
    uint64_t events_forgotten; /* events dropped at max_events_per_group */
    uint64_t values_truncated; /* field values beyond what one record may offer a rule */
};
/* Totals over all rules (rule == NULL) or one rule's counters (rule index). */
void rules_engine_stats(const struct rules_engine *e, const size_t *rule, struct rules_stats *st);

/* ---- alerts as records ---- */

/* Fills out with the alert as a record: kind=alert, source=rule, rule=title,
 * severity (from the level: informational info, low notice, medium warning, high error,
 * critical critical), ts = a->ts, message (a sentence), the identity fields of the
 * matching event (detections: host, namespace, pod, container, image, user, IPs, process,
 * cmdline) or of the group (correlations whose group-by maps onto normalized fields), and
 * raw = {rule_id, title, level, type, fingerprint, count, group: {field: value}, seqs:
 * [...], window: {start, end}, tags: [...]}. All bytes are written to scratch (which must
 * not be touched until out is encoded). Returns 0 or VG_ELIMIT. */
int rules_alert_to_rec(const struct ruleset *rs, const struct rules_alert *a, struct rec *out,
                       struct buf *scratch) VG_MUST_USE;

/* The alert's stable fingerprint: SHA-256 of (rule id or title, group-by values), the
 * receivers' dedup key; as 32 lower-case hex digits (out: 33 bytes). */
void rules_alert_fingerprint(const struct rules_alert *a, char out[33]);

/* ---- test cases (`vigil rules test`) ---- */

struct rules_test_item {
    char *file; /* the .tests.yaml file */
    unsigned line;
    char *rule; /* the rule's id, name or title as the test named it */
    char *name; /* the case: "match[2]", "nomatch[0]", "sequence[1]" */
    bool pass;
    char *detail; /* why it failed; NULL when it passed */
};

struct rules_test_report {
    struct rules_test_item *items;
    size_t n, cap;
    size_t passed, failed;
    size_t rules_tested, rules_untested; /* loaded rules with / without any test case */
};
void rules_test_report_init(struct rules_test_report *rep);
void rules_test_report_release(struct rules_test_report *rep);

/* Runs the test cases found next to the rules: for each rule file X.yml (X.yaml), a
 * sibling X.tests.yml (X.tests.yaml), and any *.tests.y(a)ml under the folders of paths.
 * Format (rules/README.md "Test cases"):
 *     tests:
 *       - rule: ID-OR-NAME      # optional when the sibling rule file holds one rule
 *         format: falco         # falco, k8s-audit, sshd, syslog, trivy, generic, auto
 *         match:   [ {event}, ... ]   # events in the source's native format
 *         nomatch: [ {event}, ... ]
 *       - rule: brute_force     # correlations (or any rule): a sequence in order
 *         events: [ {event}, ... ]
 *         alerts: 1             # the rule's alerts over the sequence: a count, or a list
 *                               # of {at: INDEX, count: N, group: {field: value}}
 * Each event is mapped with schemas/map.h map_event, then evaluated. A test file that
 * cannot be read or parsed, or a malformed case, is a failed item. Returns 0 (results in
 * rep, which the caller initialized), or a negative code with eb set when a path cannot
 * be opened. Blocks (reads files). */
int rules_tests_run(const struct ruleset *rs, const char *const *paths, size_t npaths,
                    struct rules_test_report *rep, struct errbuf *eb) VG_MUST_USE;

#endif
