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
 *     rules_engine_eval() one record at a time, in stream order; alert records (incident
 *                         state changes: firing, update, resolved) go to a callback
 *     rules_engine_advance() / _flush()  the collector clock moves on without records
 *                         (live timer; end of a hunt): windows close, incidents resolve
 *     rules_engine_checkpoint() / _restore()  the correlation and incident state as bytes,
 *                         so a restart or a rule reload keeps an attack in progress
 *
 * Same answers live and in hunt: the engine is deterministic in the order it is fed.
 * vigild evaluates records in store order (seq) once they have a seq; `vigil hunt` that
 * replays a store in seq order gets the same alerts. The time model (rules/TIME.md):
 * event time (ts) places events in windows; each source (agent, host) may be out of
 * order by up to rules_limits.lateness_ns; a ts too far past its `received` is replaced
 * by it for that event only; windows close and incidents resolve on the collector clock
 * (the newest `received`, moved on by the wall clock live), so no event and no source
 * can move time for the others.
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

/* What a rule says about its alerts' life cycle (the rule's `vigil:` map, else the
 * engine's defaults: rules/README.md "Rule settings"). */
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
    const char *const *group_by; /* correlations: the group-by field names; detections: the
                                  * fields that tell incidents apart (vigil.group-by, else
                                  * host, namespace, pod, container_id) */
    int64_t resolve_after_ns;    /* vigil.resolve_after, 0: the engine's default */
    int64_t update_every_ns;     /* vigil.update_every, 0: the engine's default */
    int64_t lookback_ns;         /* event time a match of this rule reaches back: its
                                  * timespan plus its references' lookback; 0 detections */
    int64_t count_lo, count_hi;  /* correlations: the count must lie in [lo, hi] (hi
                                  * INT64_MAX: unbounded); 0, 0 for detections */
    const char *value_field;     /* value_count: the field whose distinct values count; "" */
    size_t nrefs;                /* correlations: the rules it refers to (ruleset_rule_ref) */
};

size_t ruleset_count(const struct ruleset *rs);
/* Fills info for rule i < ruleset_count(rs); strings live as long as rs. */
void ruleset_rule_info(const struct ruleset *rs, size_t i, struct rules_rule_info *info);
/* The index of the k-th rule (k < info.nrefs) correlation i refers to. */
size_t ruleset_rule_ref(const struct ruleset *rs, size_t i, size_t k);
/* The index of the rule with this id or name, or -1. */
long ruleset_find(const struct ruleset *rs, const char *id_or_name);

/* ---- evaluation ---- */

struct rules_limits {
    size_t max_groups_per_rule;    /* correlation groups per rule (default 10000); at the cap
                                    * the group closest to expiry is dropped (counted) */
    size_t max_events_per_group;   /* events a group remembers (default 1024); the oldest
                                    * is forgotten first (counted) */
    size_t max_alert_events;       /* seqs an alert record lists: the first and the last
                                    * half of this many (default 64), with their total */
    int64_t lateness_ns;           /* a record up to this far behind the newest event time
                                    * of its source still counts (default 2 min); older: not
                                    * counted, counted as late */
    int64_t max_future_ns;         /* a ts more than this past the record's received is
                                    * replaced by received (default 5 min), counted */
    size_t max_sources;            /* sources (agent, host) whose clocks are kept (default
                                    * 4096); the least recently seen is forgotten */
    size_t max_incidents_per_rule; /* open incidents per rule (default 10000); at the cap
                                    * the one closest to resolution resolves early */
    int64_t resolve_after_ns;      /* quiet period before an incident resolves (default
                                    * 15 min; a rule's vigil.resolve_after wins) */
    int64_t update_every_ns;       /* at most one update record per incident per this much
                                    * event time (default 5 min; vigil.update_every wins) */
};
void rules_limits_default(struct rules_limits *lim);

/* The state an alert record reports (schemas/alert.md). */
enum rules_alert_state {
    RULES_FIRING,   /* an incident opened */
    RULES_UPDATE,   /* it kept matching (at most once per update_every of event time) */
    RULES_RESOLVED, /* its quiet period passed (or it was resolved early: reason) */
};
const char *rules_alert_state_name(enum rules_alert_state s); /* "firing", ... */

/* One state change of an incident (schemas/alert.md). Everything it points to is valid
 * during the callback only. */
struct rules_alert {
    size_t rule;         /* index in the ruleset; RULES_NO_RULE for an incident of a rule
                          * that is gone (resolved after a reload: reason set) */
    const char *rule_id; /* id, else name, else "" */
    const char *title;
    const char *level;
    enum vg_severity severity;
    enum rules_type type;
    const char *const *tags;
    size_t ntags;
    enum rules_alert_state state;
    const char *reason; /* resolved early: "evicted" (max_incidents_per_rule), "rule
                         * removed"; NULL otherwise */
    size_t ngroup;      /* the incident's group: correlations' group-by fields, detections'
                         * identity fields (rules_rule_info.group_by), present ones only */
    const char *const *group_names;
    const struct span *group_values;
    const uint64_t *seqs; /* triggering events' seqs, ascending: the first and the last
                           * max_alert_events / 2 of them */
    size_t nseqs;
    uint64_t seqs_total; /* triggering events in the incident so far */
    uint64_t count;      /* detection and event_count: triggering events; value_count:
                          * distinct values; temporal: rules seen */
    int64_t ts;          /* event time of the change: firing and update, the latest
                          * triggering event's; resolved, last_seen + resolve_after */
    int64_t first_seen;  /* event time of the first and last triggering events */
    int64_t last_seen;
    int64_t opened;       /* event time of the firing record */
    char fingerprint[33]; /* rules_alert_fingerprint, 32 lower-case hex */
    char incident[56];    /* "<fingerprint>-<first_seen at the firing>" */
    int64_t window_start; /* the latest matching window: its first and last events */
    int64_t window_end;
    int64_t resolve_after_ns;
    struct span drill;        /* the run id of a fire drill when the triggering events carry
                               * one (a raw "vigil_drill" string); empty otherwise */
    const struct span *ident; /* VG_F_COUNT spans: the identity fields of the incident
                               * (detections: of its first event; correlations: the
                               * group-by fields that are normalized fields) */
    bool partial;             /* set by a hunt for an incident opened before its window: counts and
                               * seqs start at the hunt's horizon (rules/TIME.md "Hunt") */
};
#define RULES_NO_RULE SIZE_MAX

/* Called for each alert record, in order. A non-zero return does not stop the
 * evaluation (the state stays consistent); the first one is returned by the call that
 * emitted. */
typedef int (*rules_alert_fn)(const struct rules_alert *a, void *arg);

/* Makes an engine for rs (which must outlive it); lim NULL = defaults. Returns 0 or
 * -EINVAL for a zero limit. */
int rules_engine_new(const struct ruleset *rs, const struct rules_limits *lim,
                     struct rules_engine **out) VG_MUST_USE;
void rules_engine_free(struct rules_engine *e);

/* Evaluates one record against every rule: detections whose logsource takes the record,
 * then the correlations they feed (and those fed by those); each match updates its
 * incident. Calls emit (may be NULL) for each alert record. r's string fields and raw
 * are only read during the call. Returns the number of records emitted (>= 0), or the
 * first non-zero return of emit. Does not block. */
int rules_engine_eval(struct rules_engine *e, const struct rec *r, rules_alert_fn emit, void *arg);

/* Tells the engine the collector clock reached now_ns without records (vigild's timer,
 * with the wall clock, when nothing is on its way to the engine; a hunt at its end):
 * windows that need their end close, state expires, quiet incidents resolve. Returns the
 * records emitted, as eval. */
int rules_engine_advance(struct rules_engine *e, int64_t now_ns, rules_alert_fn emit, void *arg);
/* Closes every open window and resolves every open incident (the end of a rule test's
 * sequence). The state is empty afterwards. */
int rules_engine_flush(struct rules_engine *e, rules_alert_fn emit, void *arg);

/* The collector clock: the newest received time evaluated or advanced to (INT64_MIN
 * before any). */
int64_t rules_engine_now(const struct rules_engine *e);

/* How much event time before (and after) a window a hunt must replay so that its alerts
 * are those live gave (rules/TIME.md "Hunt"): the longest of a rule's lookback plus the
 * larger of its resolve_after and its timespan, plus the lateness bound. */
int64_t rules_engine_horizon(const struct rules_engine *e);

/* Appends the engine state (msgpack, rules/README.md "Checkpoints": the collector
 * clock, the sources' clocks, correlation groups, open incidents) to out. Returns 0 or
 * VG_ELIMIT when out's max is passed. */
int rules_engine_checkpoint(const struct rules_engine *e, struct buf *out) VG_MUST_USE;
/* Replaces e's state with a checkpoint's, possibly taken by an engine on an older
 * ruleset: correlation state is matched to rules by id/name/title and a fingerprint of
 * each correlation's definition (rules that changed start empty), incidents by the
 * rule's id/name/title; open incidents of rules that are gone are resolved (reason "rule
 * removed") by the next eval or advance. A version 1 checkpoint's groups are kept, its
 * single event clock is not (it may have been pushed into the future: rules/TIME.md).
 * Returns the number of groups and incidents restored (>= 0), or VG_ECORRUPT (state
 * unchanged) when the bytes are not a well-formed checkpoint. Limits still apply. */
int rules_engine_restore(struct rules_engine *e, struct span state) VG_MUST_USE;

/* Why an event was not evaluated by a rule, or not at its own time (per rule, in
 * /metrics and the periodic summary: rules/TIME.md "Nothing dropped silently"). */
enum rules_skip {
    RULES_SKIP_LATE,      /* more than lateness behind its source's clock: not counted */
    RULES_SKIP_FUTURE,    /* ts more than max_future past received: evaluated at received */
    RULES_SKIP_STATE_CAP, /* forgotten at max_events_per_group / max_groups_per_rule */
    RULES_SKIP_COUNT
};
const char *rules_skip_name(enum rules_skip k); /* "late", "future", "state_cap" */

struct rules_stats {
    uint64_t events;                    /* records evaluated */
    uint64_t matches;                   /* detection matches (alerting or feeding); correlations:
                                         * windows that held */
    uint64_t alerts;                    /* alert records emitted (firing, update, resolved) */
    uint64_t incidents;                 /* incidents opened (firing records) */
    uint64_t groups;                    /* correlation groups held now */
    uint64_t open_incidents;            /* incidents open now */
    uint64_t skipped[RULES_SKIP_COUNT]; /* events per reason (rules_skip) */
    uint64_t groups_evicted;            /* groups dropped at max_groups_per_rule */
    uint64_t incidents_evicted;         /* incidents resolved early at max_incidents_per_rule */
    uint64_t values_truncated;          /* field values beyond what one record may offer a rule */
    uint64_t sources;                   /* source clocks kept now (engine totals only) */
    uint64_t sources_evicted;           /* source clocks forgotten at max_sources (totals only) */
};
/* Totals over all rules (rule == NULL) or one rule's counters (rule index). */
void rules_engine_stats(const struct rules_engine *e, const size_t *rule, struct rules_stats *st);

/* ---- alerts as records ---- */

/* Fills out with the alert record (schemas/alert.md): kind=alert, source=rule,
 * rule=title, severity (from the level: informational info, low notice, medium warning,
 * high error, critical critical), ts = a->ts, message (a sentence), the identity fields
 * of the incident (a->ident), and raw = {rule_id, title, level, type, tags, fingerprint,
 * incident, state, count, first_seen, last_seen, opened, seqs, seqs_total, group,
 * window: {start, end}, resolve_after[, reason][, drill][, partial]}. All bytes are written to
 * scratch (which must not be touched until out is encoded). rs may be NULL. Returns 0 or
 * VG_ELIMIT. */
int rules_alert_to_rec(const struct ruleset *rs, const struct rules_alert *a, struct rec *out,
                       struct buf *scratch) VG_MUST_USE;

/* The incident's stable fingerprint (schemas/alert.md): SHA-256 of (rule id, else name,
 * else title; the group values, in the rule's group-by order, absent ones empty), as 32
 * lower-case hex digits (out: 33 bytes). values has n entries. */
void rules_alert_fingerprint(const char *rule_key, const struct span *values, size_t n,
                             char out[33]);

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
 *         alerts: 1             # the rule's incidents over the sequence (firing records):
 *                               # a count, or a list of {at: INDEX, count: N, seqs: N,
 *                               # final_seqs: N, group: {field: value}} (seqs: triggering
 *                               # events at the firing; final_seqs: when it resolved)
 * Each event is mapped with schemas/map.h map_event, then evaluated. A test file that
 * cannot be read or parsed, or a malformed case, is a failed item. Returns 0 (results in
 * rep, which the caller initialized), or a negative code with eb set when a path cannot
 * be opened. Blocks (reads files). */
int rules_tests_run(const struct ruleset *rs, const char *const *paths, size_t npaths,
                    struct rules_test_report *rep, struct errbuf *eb) VG_MUST_USE;

#endif
