/* query/drill.h: fire drills (`vigil drill`, `vigil demo`; schemas/drill.md).
 *
 * A scenario (etc/drills/NAME.yaml) is a named attack in steps. A step is events in one
 * input format (templated: the run id, the time of shipping, random addresses and
 * names per run), the agent and listener that ship them, a delay before it, and what
 * must happen: a rule (by id or title) or a tag that fires, with which group-by values,
 * within how long, and which receivers must be paged.
 *
 * Loading is pure (no I/O but the file read by drill_scn_load); errors name the file,
 * line, column and key: "ssh.yaml:12:9: 'steps[1].events': unknown template variable
 * '{{nwo}}'". */
#ifndef VG_QUERY_DRILL_H
#define VG_QUERY_DRILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/errbuf.h"
#include "common/span.h"

#define DRILL_MAX_STEPS   64
#define DRILL_MAX_EXPECT  16
#define DRILL_MAX_VARS    64
#define DRILL_RUN_ID_SIZE 48 /* "drill-20261207T124512Z-3fa9c1d2" and its NUL, with room */

struct drill_expect {
    char *rule;              /* the rule's id or title, or NULL */
    char *tag;               /* a tag of the rule (attack.t1110), or NULL */
    struct cfg_strmap group; /* group-by values (templates) the alert must have */
    int64_t within_ns;       /* time to detect allowed */
    char **page;             /* receivers that must be paged (forwarder names) */
    size_t npage;
    int64_t page_within_ns; /* time to page allowed */
};

struct drill_step {
    char *name;
    char *format;   /* ndjson, falco, k8s-audit, trivy, syslog (send.h) */
    char *agent;    /* the agent certificate it ships with (--pki DIR), or NULL */
    char *listener; /* forward */
    int64_t delay_ns;
    char *events; /* the template */
    struct drill_expect *expect;
    size_t nexpect;
};

struct drill_scn {
    char *name;
    char *description;
    struct drill_step *steps;
    size_t nsteps;
    char *file; /* as given */
    char *text; /* the file's text (stored with each run: drill report reads it back) */
};

/* Loads a scenario from text (name: what errors call the file). Checks every template
 * (events and group values) and the expectations (a rule or a tag each). Returns 0 with
 * *out (drill_scn_free), or VG_ECONFIG with eb "name:line:col: 'key': why". */
int drill_scn_load_mem(const char *name, struct span text, struct drill_scn **out,
                       struct errbuf *eb) VG_MUST_USE;
/* Reads path (at most 1 MiB) and loads it. -errno when it cannot be read. Blocks. */
int drill_scn_load(const char *path, struct drill_scn **out, struct errbuf *eb) VG_MUST_USE;
void drill_scn_free(struct drill_scn *s);

/* The values a run gave its random template variables ("ip:attacker" -> 198.18.7.9).
 * Kept with the run, so a report made later renders the same expectations. */
struct drill_vars {
    size_t n;
    char *key[DRILL_MAX_VARS];
    char *val[DRILL_MAX_VARS];
};
void drill_vars_release(struct drill_vars *v);
/* "key=value" lines (drill_vars_format's output) into v (released first). Returns 0 or
 * VG_EPARSE. */
int drill_vars_parse(struct span text, struct drill_vars *v) VG_MUST_USE;
int drill_vars_format(const struct drill_vars *v, struct buf *out) VG_MUST_USE;

/* Renders template tmpl into out (appended):
 *   {{run}}         the run id
 *   {{now}}         now_ns as RFC 3339 UTC with nanoseconds (2026-12-07T12:45:01.123456789Z)
 *   {{now_syslog}}  now_ns as a BSD syslog time (Dec  7 12:45:01)
 *   {{now_ns}}      now_ns as an integer (Falco's evt.time)
 *   {{ip:NAME}}     an IPv4 address in 198.18.0.0/15 (RFC 2544, never routed), one per
 *                   NAME and run
 *   {{name:NAME}}   NAME-xxxxxxxx (8 random hex digits), one per NAME and run
 *   {{hex:NAME}}    12 random hex digits (a container id), one per NAME and run
 * Random values are made on first use and kept in v. Returns 0, VG_EPARSE with eb
 * ("unknown template variable '{{x}}'", "'{{' without '}}'"), or VG_ELIMIT. */
int drill_render(const char *tmpl, const char *run, int64_t now_ns, struct drill_vars *v,
                 struct buf *out, struct errbuf *eb) VG_MUST_USE;

/* A new run id, "drill-YYYYMMDDTHHMMSSZ-xxxxxxxx" (UTC start time, 8 random hex). */
void drill_run_id(int64_t now_ns, char out[DRILL_RUN_ID_SIZE]);
/* The start time a run id names (ns), or VG_EPARSE when it is not one. */
int drill_run_id_time(const char *run, int64_t *ns) VG_MUST_USE;

#endif
