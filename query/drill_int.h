/* query/drill_int.h: a drill run as the store shows it, for `vigil drill` and `vigil
 * demo` (query/drill.c). Blocking; one thread. */
#ifndef VG_QUERY_DRILL_INT_H
#define VG_QUERY_DRILL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "query/drill.h"

#define DRILL_MAX_TAGS    16
#define DRILL_MAX_GROUP   16
#define DRILL_MAX_RESULTS (DRILL_MAX_STEPS * 4)
#define DRILL_MAX_PAGE    16

/* An alert record marked with the run (raw.drill). */
struct drill_alert {
    uint64_t seq;
    int64_t received; /* when vigild stored it: the time of detection */
    char *rule_id, *title, *state;
    char *tags[DRILL_MAX_TAGS];
    size_t ntags;
    char *gkey[DRILL_MAX_GROUP];
    char *gval[DRILL_MAX_GROUP];
    size_t ngroup;
    bool expected; /* an expectation matched it (else: noise) */
};

/* An outbox entry of one of the run's alerts. */
struct drill_page {
    uint64_t seq;
    char *receiver, *state, *error;
    int attempts;
    long status;
    int64_t done_ns; /* delivered: when */
};

/* What the store holds of a step's events. */
struct drill_step_seen {
    uint64_t events;
    int64_t first_received, last_received;
    char agent[128]; /* the certificate identity vigild stamped */
};

/* One expectation's outcome. */
struct drill_result {
    size_t step;
    const struct drill_expect *x;
    ssize_t alert; /* index in alerts, or -1 */
    bool detected, detected_in_time, paged_all, passed;
    int64_t detect_ns;
    const struct drill_page *page[DRILL_MAX_PAGE]; /* per x->page, or NULL */
    int64_t page_ns[DRILL_MAX_PAGE];
};

struct drill_run {
    char run[DRILL_RUN_ID_SIZE];
    int64_t started; /* the id's time */
    int64_t manifest_received;
    char *scenario_text, *scenario_name, *file;
    struct drill_vars vars;
    struct drill_scn *scn;           /* loaded from scenario_text */
    const struct drill_scn *scn_run; /* drill run: the scenario shipped (borrowed) */
    struct drill_step_seen seen[DRILL_MAX_STEPS];
    size_t steps_shipped;
    struct drill_alert *alerts;
    size_t nalerts, calerts;
    struct drill_page *pages;
    size_t npages, cpages;
    bool no_outbox;
    /* drill_evaluate */
    struct drill_result results[DRILL_MAX_RESULTS];
    size_t nresults;
    bool passed;  /* every expectation met and every step shipped */
    bool settled; /* nothing can change any more but late pages */
};

/* Where and as whom a drill ships. */
struct drill_ship {
    const char *host;
    int port;
    const char *ca, *cert, *key;
    const char *pki;        /* or: DIR/<agent>.pem per step */
    const char *https_host; /* the HTTPS listener (steps with listener: https), or NULL */
    int https_port;
    bool progress;
};

/* Reads run's records from the store (and its alerts' outbox entries). Returns 0, or
 * -ENOENT when the store holds no such run, or a scan error; eb says. r is released
 * by drill_run_release in every case. */
int drill_collect(const char *store, const char *run, struct drill_run *r, struct errbuf *eb);
/* Checks the expectations of the steps shipped (r->steps_shipped) as of now_ns
 * (INT64_MAX: everything that could happen has). */
void drill_evaluate(struct drill_run *r, int64_t now_ns);
/* The report as text: per step, each expectation's verdict, times and pages, then the
 * noise and the result. */
void drill_print(FILE *f, const struct drill_run *r);
/* The report as one JSON object (schemas/drill.md). */
int drill_json(const struct drill_run *r, struct buf *b) VG_MUST_USE;
/* Runs scn: ships each step, watches until its expectations settle. out is filled even
 * on failure (out->scn NULL when nothing could be read back). */
int drill_run_scenario(const struct drill_ship *sh, const char *store, struct drill_scn *scn,
                       struct drill_run *out, struct errbuf *eb);
void drill_run_release(struct drill_run *r);

#endif
