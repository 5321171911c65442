/* query/drill.c: `vigil drill run|report|list` (schemas/drill.md). A drill ships a
 * scenario's steps through the real Forward listener with an agent certificate
 * (query/send.c), every event marked with the run id (raw vigil_drill, vigil_drill_step),
 * then watches the store (read-only scans, query/scan.h) for the alerts the rules
 * engine marks with the run id (raw drill: schemas/alert.md) and the forwarders'
 * outbox (<store>/outbox.db, read only) for their deliveries.
 *
 * Everything a report needs is evidence in the store: the run's first record (step 0)
 * holds the scenario's text and the values of its random template variables, each
 * event its step, vigild's `received` stamps give the times, the outbox the pages. So
 * `drill report RUN` rebuilds the report the run printed (with the pages that came
 * since), and `drill list` every run's outcome. Blocking; one thread. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/tls.h"
#include "common/xalloc.h"
#include "forwarders/fwd.h"
#include "query/cli.h"
#include "query/drill.h"
#include "query/drill_int.h"
#include "query/filter.h"
#include "query/scan.h"
#include "query/send.h"
#include "schemas/trivy_report.h"

#define NS_SEC 1000000000LL
/* How far before its id's time a run's records are looked for: event times are the
 * shipping host's clock, the id's the drill's. */
#define DRILL_SKEW_NS (3600 * NS_SEC)

/* ---- collecting a run's evidence ---- */

static char *span_dup(struct span s)
{
    return xstrndup(s.p ? (const char *)s.p : "", s.n);
}

static char *raw_str(struct span raw, const char *key)
{
    struct span v;
    struct span s;
    if (raw.n && mp_map_get(raw, span_str(key), &v) == 1 && mp_get_str(v, &s)) {
        return span_dup(s);
    }
    return NULL;
}

void drill_run_release(struct drill_run *r)
{
    free(r->scenario_text);
    free(r->scenario_name);
    free(r->file);
    drill_vars_release(&r->vars);
    for (size_t i = 0; i < r->nalerts; i++) {
        struct drill_alert *a = &r->alerts[i];
        free(a->rule_id);
        free(a->title);
        free(a->state);
        for (size_t k = 0; k < a->ntags; k++) {
            free(a->tags[k]);
        }
        for (size_t k = 0; k < a->ngroup; k++) {
            free(a->gkey[k]);
            free(a->gval[k]);
        }
    }
    free(r->alerts);
    for (size_t i = 0; i < r->npages; i++) {
        free(r->pages[i].receiver);
        free(r->pages[i].state);
        free(r->pages[i].error);
    }
    free(r->pages);
    drill_scn_free(r->scn);
    const struct drill_scn *keep = r->scn_run;
    memset(r, 0, sizeof(*r));
    r->scn_run = keep;
}

static void take_alert(struct drill_run *r, const struct rec *rec)
{
    struct drill_alert a = { 0 };
    struct span v;

    a.seq = rec->seq;
    a.received = rec->received;
    a.rule_id = raw_str(rec->raw, "rule_id");
    a.title = raw_str(rec->raw, "title");
    a.state = raw_str(rec->raw, "state");
    if (!a.rule_id) {
        a.rule_id = xstrdup("");
    }
    if (!a.title) {
        a.title = span_dup(rec->str[VG_F_RULE]);
    }
    if (!a.state) {
        a.state = xstrdup("firing");
    }
    if (mp_map_get(rec->raw, SPAN_LIT("tags"), &v) == 1) {
        struct mp_obj o;
        if (mp_read(&v, &o) == 1 && o.type == MP_ARRAY) {
            for (uint32_t i = 0; i < o.v.count; i++) {
                struct span el;
                struct span s;
                if (mp_take(&v, &el) < 0) {
                    break;
                }
                if (a.ntags < DRILL_MAX_TAGS && mp_get_str(el, &s)) {
                    a.tags[a.ntags++] = span_dup(s);
                }
            }
        }
    }
    if (mp_map_get(rec->raw, SPAN_LIT("group"), &v) == 1) {
        struct mp_obj o;
        if (mp_read(&v, &o) == 1 && o.type == MP_MAP) {
            for (uint32_t i = 0; i < o.v.count; i++) {
                struct span k;
                struct span val;
                struct span ks;
                struct span vs;
                if (mp_take(&v, &k) < 0 || mp_take(&v, &val) < 0) {
                    break;
                }
                if (a.ngroup < DRILL_MAX_GROUP && mp_get_str(k, &ks) && mp_get_str(val, &vs)) {
                    a.gkey[a.ngroup] = span_dup(ks);
                    a.gval[a.ngroup++] = span_dup(vs);
                }
            }
        }
    }
    if (r->nalerts == r->calerts) {
        r->calerts = r->calerts ? 2 * r->calerts : 16;
        r->alerts = xrealloc(r->alerts, r->calerts * sizeof(*r->alerts));
    }
    r->alerts[r->nalerts++] = a;
}

static void take_event(struct drill_run *r, const struct rec *rec)
{
    char *step = raw_str(rec->raw, "vigil_drill_step");
    uint64_t k = 0;

    if (!step || parse_u64(span_str(step), DRILL_MAX_STEPS, &k) < 0) {
        free(step);
        return;
    }
    free(step);
    if (k == 0) {
        char *text = raw_str(rec->raw, "vigil_drill_scenario");
        if (text && !r->scenario_text) {
            char *vars = raw_str(rec->raw, "vigil_drill_vars");
            r->scenario_text = text;
            r->scenario_name = raw_str(rec->raw, "vigil_drill_name");
            r->file = raw_str(rec->raw, "vigil_drill_file");
            if (vars && drill_vars_parse(span_str(vars), &r->vars) < 0) {
                drill_vars_release(&r->vars);
            }
            free(vars);
            r->manifest_received = rec->received;
        } else {
            free(text);
        }
        return;
    }
    struct drill_step_seen *s = &r->seen[k - 1];
    if (s->events == 0 || rec->received < s->first_received) {
        s->first_received = rec->received;
    }
    if (rec->received > s->last_received) {
        s->last_received = rec->received;
    }
    if (s->events == 0) {
        snprintf(s->agent, sizeof(s->agent), "%.*s", (int)rec->str[VG_F_AGENT].n,
                 rec->str[VG_F_AGENT].p ? (const char *)rec->str[VG_F_AGENT].p : "");
    }
    s->events++;
}

struct page_ctx {
    struct drill_run *r;
};

static int on_entry(void *arg, const struct fwd_entry_row *e)
{
    struct drill_run *r = arg;
    bool ours = false;

    for (size_t i = 0; i < r->nalerts && !ours; i++) {
        ours = r->alerts[i].seq == e->seq;
    }
    if (!ours) {
        return 0;
    }
    if (r->npages == r->cpages) {
        r->cpages = r->cpages ? 2 * r->cpages : 16;
        r->pages = xrealloc(r->pages, r->cpages * sizeof(*r->pages));
    }
    r->pages[r->npages++] = (struct drill_page){
        .seq = e->seq,
        .receiver = xstrdup(e->receiver),
        .state = xstrdup(e->state),
        .error = xstrdup(e->error),
        .attempts = e->attempts,
        .status = e->status,
        .done_ns = e->done_ns,
    };
    return 0;
}

int drill_collect(const char *store, const char *run, struct drill_run *r, struct errbuf *eb)
{
    int64_t t0;
    char ftext[256];
    struct filter *f = NULL;
    struct scan_result res;
    int rc;

    memset(r, 0, sizeof(*r));
    snprintf(r->run, sizeof(r->run), "%s", run);
    if (drill_run_id_time(run, &t0) < 0) {
        errbuf_set(eb, "'%s' is not a drill run id (drill-YYYYMMDDTHHMMSSZ-xxxxxxxx)", run);
        return VG_EPARSE;
    }
    r->started = t0;
    /* Two scans, each with one term the block index can use (the run id as a text of
     * raw): an OR would read every block of the window. */
    for (int pass = 0; pass < 2; pass++) {
        snprintf(ftext, sizeof(ftext),
                 pass == 0 ? "raw.vigil_drill=\"%s\"" : "kind=alert raw.drill=\"%s\"", run);
        if ((rc = filter_parse(ftext, vg_now_ns(), &f, NULL, eb)) < 0) {
            return rc;
        }
        rc = scan_run(store, t0 - DRILL_SKEW_NS, INT64_MAX, f, 0, 0, &res, eb);
        filter_free(f);
        if (rc < 0) {
            scan_result_release(&res);
            return rc;
        }
        for (size_t i = 0; i < res.n; i++) {
            struct span cur = { res.hits[i].bytes, res.hits[i].len };
            struct rec rec;
            if (rec_decode(&cur, &rec) < 0) {
                continue;
            }
            bool alert = span_eq_str(rec.str[VG_F_KIND], "alert") &&
                         span_eq_str(rec.str[VG_F_SOURCE], "rule");
            if (pass == 1 && alert) {
                take_alert(r, &rec);
            } else if (pass == 0 && !alert) {
                take_event(r, &rec);
            }
        }
        scan_result_release(&res);
    }
    if (!r->scenario_text) {
        errbuf_set(eb, "no drill '%s' in this store (its first record, step 0, is missing)", run);
        return -ENOENT;
    }
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < r->nalerts; i++) {
        first = r->alerts[i].seq < first ? r->alerts[i].seq : first;
    }
    if (first != UINT64_MAX) {
        struct errbuf oeb;
        errbuf_clear(&oeb);
        rc = fwd_outbox_entries_from(store, first, on_entry, r, &oeb);
        if (rc == -ENOENT) {
            r->no_outbox = true;
        } else if (rc < 0) {
            errbuf_set(eb, "outbox: %s", errbuf_msg(&oeb));
            return rc;
        }
    }
    char name[64];
    snprintf(name, sizeof(name), "%s (as run)", r->file ? r->file : "scenario");
    if ((rc = drill_scn_load_mem(name, span_str(r->scenario_text), &r->scn, eb)) < 0) {
        return rc;
    }
    return 0;
}

/* ---- evaluating the expectations ---- */

static bool alert_matches(const struct drill_alert *a, const struct drill_expect *x,
                          const struct drill_vars *vars_in, const char *run)
{
    if (strcmp(a->state, "firing") != 0) {
        return false;
    }
    if (x->rule && strcmp(a->rule_id, x->rule) != 0 && strcmp(a->title, x->rule) != 0) {
        return false;
    }
    if (x->tag) {
        bool has = false;
        for (size_t k = 0; k < a->ntags && !has; k++) {
            has = strcmp(a->tags[k], x->tag) == 0;
        }
        if (!has) {
            return false;
        }
    }
    struct drill_vars *vars = (struct drill_vars *)vars_in; /* known values: not grown */
    for (size_t g = 0; g < x->group.n; g++) {
        struct buf want;
        buf_init(&want, 4096);
        if (drill_render(x->group.items[g].vals[0], run, 0, vars, &want, NULL) < 0) {
            buf_release(&want);
            return false;
        }
        bool ok = false;
        for (size_t k = 0; k < a->ngroup && !ok; k++) {
            ok = strcmp(a->gkey[k], x->group.items[g].key) == 0 &&
                 strcmp(a->gval[k], buf_cstr(&want)) == 0;
        }
        buf_release(&want);
        if (!ok) {
            return false;
        }
    }
    return true;
}

void drill_evaluate(struct drill_run *r, int64_t now_ns)
{
    r->passed = true;
    r->settled = true;
    r->nresults = 0;
    for (size_t i = 0; i < r->nalerts; i++) {
        r->alerts[i].expected = false;
    }
    for (size_t s = 0; s < r->scn->nsteps && s < r->steps_shipped; s++) {
        const struct drill_step *st = &r->scn->steps[s];
        const struct drill_step_seen *seen = &r->seen[s];
        for (size_t j = 0; j < st->nexpect && r->nresults < DRILL_MAX_RESULTS; j++) {
            const struct drill_expect *x = &st->expect[j];
            struct drill_result *res = &r->results[r->nresults++];
            memset(res, 0, sizeof(*res));
            res->step = s;
            res->x = x;
            res->alert = -1;
            int64_t t0 = seen->first_received;
            for (size_t i = 0; i < r->nalerts; i++) {
                struct drill_alert *a = &r->alerts[i];
                if (alert_matches(a, x, &r->vars, r->run) &&
                    (res->alert < 0 || a->received < r->alerts[res->alert].received)) {
                    res->alert = (ssize_t)i;
                }
            }
            bool waited_detect = seen->events > 0 && now_ns - t0 > x->within_ns;
            bool waited_page = seen->events > 0 && now_ns - t0 > x->page_within_ns;
            if (res->alert >= 0) {
                struct drill_alert *a = &r->alerts[res->alert];
                a->expected = true;
                res->detect_ns = a->received > t0 ? a->received - t0 : 0;
                res->detected = true;
                res->detected_in_time = res->detect_ns <= x->within_ns;
            } else if (!waited_detect) {
                r->settled = false;
            }
            res->paged_all = true;
            for (size_t p = 0; p < x->npage; p++) {
                const struct drill_page *pg = NULL;
                for (size_t k = 0; res->alert >= 0 && k < r->npages; k++) {
                    if (r->pages[k].seq == r->alerts[res->alert].seq &&
                        strcmp(r->pages[k].receiver, x->page[p]) == 0) {
                        pg = &r->pages[k];
                    }
                }
                res->page[p] = pg;
                bool ok = pg && strcmp(pg->state, "delivered") == 0;
                if (ok) {
                    res->page_ns[p] = pg->done_ns > t0 ? pg->done_ns - t0 : 0;
                    ok = res->page_ns[p] <= x->page_within_ns;
                } else if (!waited_page) {
                    r->settled = false;
                }
                res->paged_all = res->paged_all && ok;
            }
            res->passed = res->detected && res->detected_in_time && res->paged_all;
            r->passed = r->passed && res->passed;
        }
    }
    if (r->steps_shipped < r->scn->nsteps) {
        r->passed = false;
    }
}

/* ---- printing ---- */

static void fmt_secs(int64_t ns, char *out, size_t cap)
{
    snprintf(out, cap, "%.3f s", (double)ns / 1e9);
}

static void fmt_time(int64_t ns, char *out, size_t cap)
{
    vg_time_format(ns, 3, out, cap);
}

static const char *expect_what(const struct drill_expect *x, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s%s", x->rule ? x->rule : "", x->rule && x->tag ? " " : "",
             x->tag ? "tag " : "", x->tag ? x->tag : "");
    return out;
}

static void print_group(FILE *f, const struct drill_alert *a)
{
    fputc('{', f);
    for (size_t k = 0; k < a->ngroup; k++) {
        fprintf(f, "%s%s=%s", k ? ", " : "", a->gkey[k], a->gval[k]);
    }
    fputc('}', f);
}

void drill_print(FILE *f, const struct drill_run *r)
{
    char t[64];
    char d[32];
    char w[256];

    fmt_time(r->started, t, sizeof(t));
    fprintf(f, "drill %s: %s%s%s%s\n", r->run, r->scn->name, r->file ? " (" : "",
            r->file ? r->file : "", r->file ? ")" : "");
    for (size_t s = 0; s < r->scn->nsteps; s++) {
        const struct drill_step *st = &r->scn->steps[s];
        const struct drill_step_seen *seen = &r->seen[s];
        if (s >= r->steps_shipped && seen->events == 0) {
            fprintf(f, "  step %zu \"%s\": not shipped\n", s + 1, st->name);
            continue;
        }
        fmt_time(seen->first_received, t, sizeof(t));
        fprintf(f, "  step %zu \"%s\": %" PRIu64 " event%s as %s, first stored %s\n", s + 1,
                st->name, seen->events, seen->events == 1 ? "" : "s",
                seen->agent[0] ? seen->agent : "?", seen->events ? t : "never");
        for (size_t i = 0; i < r->nresults; i++) {
            const struct drill_result *res = &r->results[i];
            if (res->step != s) {
                continue;
            }
            expect_what(res->x, w, sizeof(w));
            if (!res->detected) {
                fmt_secs(res->x->within_ns, d, sizeof(d));
                fprintf(f, "    MISSED    %s: no alert within %s\n", w, d);
                continue;
            }
            const struct drill_alert *a = &r->alerts[res->alert];
            fmt_secs(res->detect_ns, d, sizeof(d));
            const char *verdict = !res->detected_in_time ? "LATE     "
                                  : res->paged_all       ? "DETECTED "
                                                         : "DETECTED, NOT PAGED";
            fprintf(f, "    %s %s (%s) ", verdict, a->title, a->rule_id);
            print_group(f, a);
            fprintf(f, " in %s (alert seq %" PRIu64 ")\n", d, a->seq);
            for (size_t p = 0; p < res->x->npage; p++) {
                const struct drill_page *pg = res->page[p];
                if (pg && strcmp(pg->state, "delivered") == 0) {
                    fmt_secs(res->page_ns[p], d, sizeof(d));
                    char lim[32];
                    fmt_secs(res->x->page_within_ns, lim, sizeof(lim));
                    fprintf(f, "      paged %-12s in %s%s%s%s\n", res->x->page[p], d,
                            res->page_ns[p] > res->x->page_within_ns ? " (late: allowed " : "",
                            res->page_ns[p] > res->x->page_within_ns ? lim : "",
                            res->page_ns[p] > res->x->page_within_ns ? ")" : "");
                } else if (pg) {
                    fprintf(f, "      NOT PAGED %-8s outbox: %s, %d attempt%s%s%s\n",
                            res->x->page[p], pg->state, pg->attempts, pg->attempts == 1 ? "" : "s",
                            pg->error && pg->error[0] ? ", last error: " : "",
                            pg->error ? pg->error : "");
                } else {
                    fprintf(f, "      NOT PAGED %-8s %s\n", res->x->page[p],
                            r->no_outbox ? "no outbox in this store: no forwarder has run"
                                         : "no outbox entry for the alert (check the "
                                           "forwarder's match and name)");
                }
            }
        }
    }
    size_t noise = 0;
    for (size_t i = 0; i < r->nalerts; i++) {
        const struct drill_alert *a = &r->alerts[i];
        if (!a->expected && strcmp(a->state, "firing") == 0) {
            if (noise++ == 0) {
                fprintf(f, "  also fired (noise):\n");
            }
            fprintf(f, "    %s (%s) ", a->title, a->rule_id);
            print_group(f, a);
            fprintf(f, " alert seq %" PRIu64 "\n", a->seq);
        }
    }
    size_t met = 0;
    for (size_t i = 0; i < r->nresults; i++) {
        met += r->results[i].passed;
    }
    fprintf(f, "result: %s, %zu of %zu expectation%s met%s\n", r->passed ? "PASSED" : "FAILED", met,
            r->nresults, r->nresults == 1 ? "" : "s",
            r->steps_shipped < r->scn->nsteps ? " (not every step was shipped)" : "");
    for (size_t i = 0; i < r->nresults && !r->passed; i++) {
        const struct drill_result *res = &r->results[i];
        if (!res->passed) {
            fprintf(f, "  failed: step %zu \"%s\": %s %s\n", res->step + 1,
                    r->scn->steps[res->step].name, expect_what(res->x, w, sizeof(w)),
                    !res->detected           ? "not detected"
                    : !res->detected_in_time ? "detected too late"
                                             : "not paged");
        }
    }
}

#define J(x)            \
 do {                   \
  if ((rc = (x)) < 0) { \
   return rc;           \
  }                     \
 } while (0)

static int jstr(struct buf *b, const char *key, const char *v)
{
    int rc;
    J(buf_appendf(b, "\"%s\":", key));
    J(v ? json_append_str(b, span_str(v)) : buf_appendf(b, "null"));
    return 0;
}

static int jtime(struct buf *b, const char *key, int64_t ns)
{
    char t[64];
    fmt_time(ns, t, sizeof(t));
    return jstr(b, key, ns ? t : NULL);
}

static int json_alert(struct buf *b, const struct drill_alert *a)
{
    int rc;
    J(buf_appendf(b, "{\"seq\":%" PRIu64 ",", a->seq));
    J(jstr(b, "rule_id", a->rule_id));
    J(buf_appendf(b, ","));
    J(jstr(b, "title", a->title));
    J(buf_appendf(b, ","));
    J(jtime(b, "stored", a->received));
    J(buf_appendf(b, ",\"group\":{"));
    for (size_t k = 0; k < a->ngroup; k++) {
        J(buf_appendf(b, "%s", k ? "," : ""));
        J(jstr(b, a->gkey[k], a->gval[k]));
    }
    return buf_appendf(b, "}}");
}

int drill_json(const struct drill_run *r, struct buf *b)
{
    int rc;

    J(buf_appendf(b, "{"));
    J(jstr(b, "run", r->run));
    J(buf_appendf(b, ","));
    J(jstr(b, "scenario", r->scn->name));
    J(buf_appendf(b, ","));
    J(jstr(b, "file", r->file));
    J(buf_appendf(b, ","));
    J(jtime(b, "started", r->started));
    J(buf_appendf(b, ",\"passed\":%s,\"steps\":[", r->passed ? "true" : "false"));
    for (size_t s = 0; s < r->scn->nsteps; s++) {
        const struct drill_step_seen *seen = &r->seen[s];
        J(buf_appendf(b, "%s{\"step\":%zu,", s ? "," : "", s + 1));
        J(jstr(b, "name", r->scn->steps[s].name));
        J(buf_appendf(b, ",\"shipped\":%s,\"events\":%" PRIu64 ",",
                      s < r->steps_shipped || seen->events ? "true" : "false", seen->events));
        J(jstr(b, "agent", seen->agent[0] ? seen->agent : NULL));
        J(buf_appendf(b, ","));
        J(jtime(b, "first_stored", seen->events ? seen->first_received : 0));
        J(buf_appendf(b, ",\"expectations\":["));
        bool first = true;
        for (size_t i = 0; i < r->nresults; i++) {
            const struct drill_result *res = &r->results[i];
            if (res->step != s) {
                continue;
            }
            J(buf_appendf(b, "%s{", first ? "" : ","));
            first = false;
            J(jstr(b, "rule", res->x->rule));
            J(buf_appendf(b, ","));
            J(jstr(b, "tag", res->x->tag));
            J(buf_appendf(b, ",\"passed\":%s,\"detected\":%s,\"within_seconds\":%.3f,",
                          res->passed ? "true" : "false", res->detected ? "true" : "false",
                          (double)res->x->within_ns / 1e9));
            if (res->detected) {
                J(buf_appendf(b,
                              "\"detect_seconds\":%.6f,\"alert\":", (double)res->detect_ns / 1e9));
                J(json_alert(b, &r->alerts[res->alert]));
            } else {
                J(buf_appendf(b, "\"detect_seconds\":null,\"alert\":null"));
            }
            J(buf_appendf(b, ",\"pages\":["));
            for (size_t p = 0; p < res->x->npage; p++) {
                const struct drill_page *pg = res->page[p];
                bool ok = pg && strcmp(pg->state, "delivered") == 0;
                J(buf_appendf(b, "%s{", p ? "," : ""));
                J(jstr(b, "receiver", res->x->page[p]));
                J(buf_appendf(b, ","));
                J(jstr(b, "state", pg ? pg->state : "none"));
                J(buf_appendf(b, ",\"paged\":%s,", ok ? "true" : "false"));
                if (ok) {
                    J(buf_appendf(b, "\"page_seconds\":%.6f,", (double)res->page_ns[p] / 1e9));
                } else {
                    J(buf_appendf(b, "\"page_seconds\":null,"));
                }
                J(buf_appendf(b, "\"within_seconds\":%.3f,\"attempts\":%d,\"status\":%ld,",
                              (double)res->x->page_within_ns / 1e9, pg ? pg->attempts : 0,
                              pg ? pg->status : 0L));
                J(jstr(b, "error", pg && pg->error[0] ? pg->error : NULL));
                J(buf_appendf(b, "}"));
            }
            J(buf_appendf(b, "]}"));
        }
        J(buf_appendf(b, "]}"));
    }
    J(buf_appendf(b, "],\"noise\":["));
    bool first = true;
    for (size_t i = 0; i < r->nalerts; i++) {
        const struct drill_alert *a = &r->alerts[i];
        if (!a->expected && strcmp(a->state, "firing") == 0) {
            J(buf_appendf(b, "%s", first ? "" : ","));
            first = false;
            J(json_alert(b, a));
        }
    }
    return buf_appendf(b, "]}");
}

static int print_report(const struct drill_run *r, enum out_format fmt, bool last)
{
    (void)last;
    if (fmt == OUT_JSON) {
        struct buf b;
        buf_init(&b, 64u << 20);
        int rc = drill_json(r, &b);
        if (rc == 0) {
            fwrite(b.data, 1, b.len, stdout);
            fputc('\n', stdout);
        }
        buf_release(&b);
        return rc;
    }
    drill_print(stdout, r);
    return 0;
}

/* ---- running ---- */

static int fmt_of(const char *name, enum send_format *out)
{
    return send_format_parse(name, out);
}

/* Writes text to a new file in dir; the caller unlinks it. */
static int write_tmp(const char *dir, struct span text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/vigil-drill-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        return -errno;
    }
    size_t off = 0;
    while (off < text.n) {
        ssize_t n = write(fd, text.p + off, text.n - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int rc = -errno;
            close(fd);
            unlink(path);
            return rc;
        }
        off += (size_t)n;
    }
    return close(fd) == 0 ? 0 : -errno;
}

/* ---- the HTTPS listener: one POST per event, each on its own connection ---- */

struct https_ship {
    const struct send_opts *o; /* certificates, marks */
    const char *host;
    int port;
    const char *path; /* /v1/events, /v1/falco, /v1/k8s/audit, /v1/trivy */
    bool k8s;         /* wrap each event in an EventList, as the audit webhook posts */
    struct tls_ctx *ctx;
    struct buf mp, json;
    struct errbuf *eb;
};

static const char *https_path(enum send_format f)
{
    switch (f) {
    case SEND_FALCO:
        return "/v1/falco";
    case SEND_K8S_AUDIT:
        return "/v1/k8s/audit";
    case SEND_TRIVY:
        return "/v1/trivy";
    default:
        return "/v1/events";
    }
}

/* POSTs body and reads the answer: 0 on 200, else eb says what vigild answered. */
static int https_post(struct https_ship *h, struct span body)
{
    struct tls_conn *c = NULL;
    char head[512];
    char resp[8192];
    size_t n = 0;
    int rc = tls_conn_open(h->ctx, h->host, h->port, 10000, &c, h->eb);

    if (rc < 0) {
        return rc;
    }
    int hn = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      h->path, h->host, h->port, body.n);
    rc = tls_conn_write(c, head, (size_t)hn);
    rc = rc < 0 ? rc : tls_conn_write(c, body.p, body.n);
    /* the answer: read until vigild closes (Connection: close) or the buffer is full */
    while (rc == 0 && n < sizeof(resp) - 1) {
        ssize_t r = tls_conn_read(c, resp + n, sizeof(resp) - 1 - n, 10000);
        if (r == -EPIPE) {
            break;
        }
        if (r < 0) {
            rc = (int)r;
            errbuf_set(h->eb, "https %s:%d%s: no answer: %s", h->host, h->port, h->path,
                       r == VG_ECERT ? tls_conn_error(c) : vg_strerror(rc));
            break;
        }
        n += (size_t)r;
    }
    tls_conn_close(c);
    resp[n] = 0;
    int status = 0;
    if (rc == 0 && (sscanf(resp, "HTTP/1.%*d %d", &status) != 1 || status != 200)) {
        const char *body_at = strstr(resp, "\r\n\r\n");
        errbuf_set(h->eb, "https %s:%d%s answered %d: %.200s", h->host, h->port, h->path, status,
                   body_at ? body_at + 4 : resp);
        rc = -EPROTO;
    }
    return rc;
}

static int https_event(void *arg, struct span rec)
{
    struct https_ship *h = arg;
    int rc;

    buf_reset(&h->mp);
    buf_reset(&h->json);
    if ((rc = send_mark(h->o, rec, &h->mp)) < 0) {
        errbuf_set(h->eb, "event of %zu bytes too large to send", rec.n);
        return rc;
    }
    if (h->k8s) {
        rc = buf_append_str(&h->json, "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\","
                                      "\"items\":[");
    }
    rc = rc < 0 ? rc : mp_to_json(buf_span(&h->mp), &h->json);
    if (rc == 0 && h->k8s) {
        rc = buf_append_str(&h->json, "]}");
    }
    if (rc < 0) {
        errbuf_set(h->eb, "event of %zu bytes cannot be written as JSON", rec.n);
        return rc;
    }
    return https_post(h, buf_span(&h->json));
}

/* One JSON document: an array holds events, an EventList's items are events, a Trivy
 * report is one event per finding (split here, so each finding carries the marks). */
static int https_doc(struct https_ship *h, enum send_format fmt, struct span doc)
{
    struct span cur = doc;
    struct mp_obj o;
    struct span v;
    struct span kind;

    if (fmt == SEND_TRIVY) {
        struct buf flat;
        buf_init(&flat, 2 * doc.n + 65536);
        int rc = trivy_report_split(doc, &flat, https_event, h, h->eb);
        buf_release(&flat);
        return rc < 0 ? rc : 0;
    }
    if (mp_read(&cur, &o) != 1) {
        errbuf_set(h->eb, "a document is not JSON");
        return VG_EFORMAT;
    }
    if (o.type == MP_ARRAY) {
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct span el;
            int rc = mp_take(&cur, &el) < 0 ? VG_EFORMAT : https_doc(h, fmt, el);
            if (rc < 0) {
                return rc;
            }
        }
        return 0;
    }
    if (o.type == MP_MAP && mp_map_get(doc, SPAN_LIT("kind"), &v) == 1 && mp_get_str(v, &kind) &&
        span_eq_str(kind, "EventList") && mp_map_get(doc, SPAN_LIT("items"), &v) == 1) {
        return https_doc(h, fmt, v);
    }
    return https_event(h, doc);
}

static int ship_https(const struct drill_ship *sh, const struct send_opts *o, struct span text,
                      struct errbuf *eb)
{
    struct https_ship h = {
        .o = o,
        .host = sh->https_host,
        .port = sh->https_port,
        .path = https_path(o->format),
        .k8s = o->format == SEND_K8S_AUDIT,
        .eb = eb,
    };
    struct buf doc;
    int rc;

    if (!sh->https_host) {
        errbuf_set(eb, "the step ships through the HTTPS listener: give --https HOST:PORT");
        return VG_EPARSE;
    }
    if ((rc = tls_client_ctx_new(o->ca, o->cert, o->key, &h.ctx, eb)) < 0) {
        return rc;
    }
    buf_init(&h.mp, 16u << 20);
    buf_init(&h.json, 64u << 20);
    buf_init(&doc, 64u << 20);
    while (rc == 0 && text.n > 0) {
        size_t used = 0;
        buf_reset(&doc);
        rc = json_to_mp(text, &doc, &used, eb);
        if (rc == -ENODATA) {
            rc = 0;
            break;
        }
        if (rc == 0) {
            rc = https_doc(&h, o->format, buf_span(&doc));
            span_advance(&text, used);
        }
    }
    buf_release(&doc);
    buf_release(&h.mp);
    buf_release(&h.json);
    tls_ctx_free(h.ctx);
    return rc;
}

/* Ships text (format fmt) marked with the run and step, through the listener named. */
static int ship(const struct drill_ship *sh, const char *run, size_t step, enum send_format fmt,
                const char *agent, const char *listener, struct span text, struct errbuf *eb)
{
    char path[PATH_MAX];
    char stepnum[16];
    char cert[PATH_MAX + 64];
    char key[PATH_MAX + 64];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    struct send_opts o;
    struct send_stats st;
    int rc;

    send_opts_init(&o);
    o.host = sh->host;
    o.port = sh->port;
    o.ca = sh->ca;
    o.cert = sh->cert;
    o.key = sh->key;
    if (sh->pki) {
        const char *who = agent ? agent : "agent-node-1";
        snprintf(cert, sizeof(cert), "%s/%s.pem", sh->pki, who);
        snprintf(key, sizeof(key), "%s/%s-key.pem", sh->pki, who);
        o.cert = cert;
        o.key = key;
    }
    o.format = fmt;
    o.timeout_ms = 10000;
    o.total_timeout_ms = 60000;
    snprintf(stepnum, sizeof(stepnum), "%zu", step);
    o.mark_keys[0] = "vigil_drill";
    o.mark_vals[0] = run;
    o.mark_keys[1] = "vigil_drill_step";
    o.mark_vals[1] = stepnum;
    if (listener && strcmp(listener, "https") == 0) {
        return ship_https(sh, &o, text, eb);
    }
    if ((rc = write_tmp(tmp, text, path, sizeof(path))) < 0) {
        errbuf_set(eb, "cannot write a temporary file in %s: %s", tmp, vg_strerror(rc));
        return rc;
    }
    char *files[] = { path };
    rc = send_files(&o, files, 1, &st, eb);
    unlink(path);
    return rc;
}

/* The run's first record: the scenario and its random values, so that the store alone
 * can rebuild the report. */
static int ship_manifest(const struct drill_ship *sh, const struct drill_scn *scn, const char *run,
                         const struct drill_vars *vars, struct errbuf *eb)
{
    struct buf doc;
    struct buf vt;
    int rc;

    buf_init(&doc, 4u << 20);
    buf_init(&vt, 1u << 20);
    rc = drill_vars_format(vars, &vt);
    rc = rc < 0 ? rc : buf_appendf(&doc, "{\"message\":\"fire drill %s: %s\",", run, "started");
    rc = rc < 0 ? rc : buf_appendf(&doc, "\"vigil_drill_name\":");
    rc = rc < 0 ? rc : json_append_str(&doc, span_str(scn->name));
    rc = rc < 0 ? rc : buf_appendf(&doc, ",\"vigil_drill_file\":");
    rc = rc < 0 ? rc : json_append_str(&doc, span_str(scn->file));
    rc = rc < 0 ? rc : buf_appendf(&doc, ",\"vigil_drill_vars\":");
    rc = rc < 0 ? rc : json_append_str(&doc, buf_span(&vt));
    rc = rc < 0 ? rc : buf_appendf(&doc, ",\"vigil_drill_scenario\":");
    rc = rc < 0 ? rc : json_append_str(&doc, span_str(scn->text));
    rc = rc < 0 ? rc : buf_appendf(&doc, "}\n");
    if (rc == 0) {
        rc = ship(sh, run, 0, SEND_NDJSON, NULL, "forward", buf_span(&doc), eb);
    } else {
        errbuf_set(eb, "scenario too large to record");
    }
    buf_release(&doc);
    buf_release(&vt);
    return rc;
}

/* Sleeps ms, in steps, so a long delay still ends. */
static void sleep_ms(int64_t ms)
{
    while (ms > 0) {
        int64_t step = ms > 100 ? 100 : ms;
        usleep((useconds_t)step * 1000);
        ms -= step;
    }
}

/* Polls the store and the outbox until every expectation of the steps shipped so far is
 * settled (met, or past its time). The longest time an expectation allows, plus a
 * margin, bounds the wait even when the store never shows the step (a --store that is
 * not vigild's, a clock far off). Returns 0 or a collect error. */
static int watch(const char *store, struct drill_run *r, size_t shipped, struct errbuf *eb)
{
    int64_t longest = 0;
    for (size_t s = 0; s < shipped; s++) {
        const struct drill_step *st = &r->scn_run->steps[s];
        for (size_t j = 0; j < st->nexpect; j++) {
            int64_t w = st->expect[j].within_ns > st->expect[j].page_within_ns
                            ? st->expect[j].within_ns
                            : st->expect[j].page_within_ns;
            longest = w > longest ? w : longest;
        }
    }
    int64_t deadline = vg_mono_ns() + longest + 30 * NS_SEC;
    for (;;) {
        struct drill_run cur;
        struct errbuf ceb;
        errbuf_clear(&ceb);
        int rc = drill_collect(store, r->run, &cur, &ceb);
        cur.scn_run = r->scn_run;
        if (rc == -ENOENT && vg_mono_ns() < deadline) {
            /* acknowledged, so durable; a reader may see it a moment later */
            drill_run_release(&cur);
            sleep_ms(100);
            continue;
        }
        if (rc < 0) {
            errbuf_set(eb, "%s%s", errbuf_msg(&ceb),
                       rc == -ENOENT ? " (is --store the store of the vigild shipped to?)" : "");
            drill_run_release(&cur);
            return rc;
        }
        cur.steps_shipped = shipped;
        drill_evaluate(&cur, vg_now_ns());
        bool done = cur.settled || vg_mono_ns() >= deadline;
        drill_run_release(r);
        *r = cur;
        if (done) {
            return 0;
        }
        sleep_ms(100);
    }
}

int drill_run_scenario(const struct drill_ship *sh, const char *store, struct drill_scn *scn,
                       struct drill_run *out, struct errbuf *eb)
{
    struct drill_vars vars = { 0 };
    char run[DRILL_RUN_ID_SIZE];
    struct buf text;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    drill_run_id(vg_now_ns(), run);
    snprintf(out->run, sizeof(out->run), "%s", run);
    out->scn_run = scn;
    buf_init(&text, 64u << 20);
    /* Every random value is made now, so the first record holds them all. */
    for (size_t s = 0; rc == 0 && s < scn->nsteps; s++) {
        buf_reset(&text);
        rc = drill_render(scn->steps[s].events, run, 0, &vars, &text, eb);
        for (size_t j = 0; rc == 0 && j < scn->steps[s].nexpect; j++) {
            const struct drill_expect *x = &scn->steps[s].expect[j];
            for (size_t g = 0; rc == 0 && g < x->group.n; g++) {
                rc = drill_render(x->group.items[g].vals[0], run, 0, &vars, &text, eb);
            }
        }
    }
    if (rc == 0) {
        rc = ship_manifest(sh, scn, run, &vars, eb);
    }
    size_t shipped = 0;
    for (size_t s = 0; rc == 0 && s < scn->nsteps; s++) {
        const struct drill_step *st = &scn->steps[s];
        enum send_format fmt;
        if (st->delay_ns > 0) {
            sleep_ms(st->delay_ns / 1000000);
        }
        buf_reset(&text);
        if (fmt_of(st->format, &fmt) < 0) {
            errbuf_set(eb, "step %zu: format '%s'", s + 1, st->format);
            rc = VG_EPARSE;
            break;
        }
        if ((rc = drill_render(st->events, run, vg_now_ns(), &vars, &text, eb)) < 0) {
            break;
        }
        if (sh->progress) {
            fprintf(stderr, "vigil drill: %s step %zu \"%s\": shipping\n", run, s + 1, st->name);
        }
        if ((rc = ship(sh, run, s + 1, fmt, st->agent, st->listener, buf_span(&text), eb)) < 0) {
            errbuf_prefix(eb, "step %zu \"%s\"", s + 1, st->name);
            break;
        }
        shipped = s + 1;
        /* Watch this step's expectations before the next step: a drill measures each
         * detection on its own. */
        if ((rc = watch(store, out, shipped, eb)) < 0) {
            break;
        }
    }
    buf_release(&text);
    drill_vars_release(&vars);
    if (rc < 0 && shipped > 0 && out->scn) {
        out->steps_shipped = shipped;
        drill_evaluate(out, vg_now_ns());
    }
    return rc;
}

/* ---- the command ---- */

struct drill_opts {
    const char *server;
    const char *https;
    const char *ca;
    const char *cert;
    const char *key;
    const char *pki;
};

static const struct cli_opt drill_cli_opts[] = {
    { "--server", NULL, CLI_STR, CLI_OFF(struct drill_opts, server), 0, 0 },
    { "--https", NULL, CLI_STR, CLI_OFF(struct drill_opts, https), 0, 0 },
    { "--ca", NULL, CLI_STR, CLI_OFF(struct drill_opts, ca), 0, 0 },
    { "--cert", NULL, CLI_STR, CLI_OFF(struct drill_opts, cert), 0, 0 },
    { "--key", NULL, CLI_STR, CLI_OFF(struct drill_opts, key), 0, 0 },
    { "--pki", NULL, CLI_STR, CLI_OFF(struct drill_opts, pki), 0, 0 },
    { NULL },
};

static void drill_usage(FILE *f)
{
    fprintf(f,
            "usage: vigil drill run SCENARIO.yaml... [--store DIR | -c FILE] --server HOST:PORT\n"
            "                       [--https HOST:PORT]\n"
            "                       [--ca CA.pem --cert CERT.pem --key KEY.pem | --pki DIR]\n"
            "                       [--format table|json]\n"
            "       vigil drill report RUN_ID [--store DIR | -c FILE] [--format table|json]\n"
            "       vigil drill list [--store DIR | -c FILE] [--since T] [--until T] [--limit N]\n"
            "\n"
            "run ships each step of each scenario (etc/drills/*.yaml) through vigild's Forward\n"
            "listener (--server; a step with listener: https through --https), every event marked "
            "with the run id (raw.vigil_drill), and watches the\n"
            "store (read-only) for the alerts and the forwarders' outbox for their pages: per\n"
            "step, detected or missed, by which rule, time to detect, time to page per\n"
            "receiver, and what else fired. Exit 0 when every expectation was met, 1 when one\n"
            "was not, 2 for a bad scenario or usage. --pki DIR ships each step with\n"
            "DIR/AGENT.pem (the step's agent) and DIR/ca.pem.\n"
            "report rebuilds a run's report from the store (and the outbox: pages that came\n"
            "late show); list shows every drill in the window with its outcome.\n"
            "Drill events: vigil search raw.vigil_drill=* (their alerts: raw.drill=*);\n"
            "everything but drills: vigil search 'NOT raw.vigil_drill=* NOT raw.drill=*'.\n");
}

static int drill_do_run(struct cli_args *a, const struct drill_opts *o, const char *store)
{
    struct drill_ship sh = { 0 };
    char hbuf[256];
    char ca[PATH_MAX + 16];
    int rc = CLI_OK;

    if (a->nwords < 2) {
        fprintf(stderr, "vigil drill run: name at least one scenario file\n");
        return CLI_USAGE;
    }
    if (o->server) {
        if (send_hostport_parse(o->server, &sh.host, &sh.port, hbuf, sizeof(hbuf)) < 0) {
            fprintf(stderr, "vigil drill: --server: expected HOST:PORT, got '%s'\n", o->server);
            return CLI_USAGE;
        }
    } else if (a->config_path && a->cfg->listen.forward.enabled) {
        const char *h = a->cfg->listen.forward.host;
        snprintf(hbuf, sizeof(hbuf), "%s",
                 strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 ? "127.0.0.1" : h);
        sh.host = hbuf;
        sh.port = a->cfg->listen.forward.port;
    } else {
        fprintf(stderr, "vigil drill run: --server HOST:PORT (vigild's Forward listener)\n");
        return CLI_USAGE;
    }
    char h2buf[256];
    if (o->https &&
        send_hostport_parse(o->https, &sh.https_host, &sh.https_port, h2buf, sizeof(h2buf)) < 0) {
        fprintf(stderr, "vigil drill: --https: expected HOST:PORT, got '%s'\n", o->https);
        return CLI_USAGE;
    }
    sh.pki = o->pki;
    sh.ca = o->ca ? o->ca : getenv("VIGIL_CA");
    sh.cert = o->cert ? o->cert : getenv("VIGIL_CERT");
    sh.key = o->key ? o->key : getenv("VIGIL_KEY");
    if (o->pki && !sh.ca) {
        snprintf(ca, sizeof(ca), "%s/ca.pem", o->pki);
        sh.ca = ca;
    }
    if (!sh.ca && a->config_path) {
        sh.ca = a->cfg->tls.ca;
    }
    if (!sh.ca || (!o->pki && (!sh.cert || !sh.key))) {
        fprintf(stderr, "vigil drill run: need --ca, --cert and --key (or --pki DIR): the\n"
                        "drill ships as an agent, with a client certificate\n");
        return CLI_USAGE;
    }
    sh.progress = cli_progress_enabled();
    /* Every scenario is loaded before anything is shipped: a bad file ships nothing. */
    struct drill_scn *scns[CLI_LIST_MAX] = { 0 };
    int n = a->nwords - 1;
    if (n > CLI_LIST_MAX) {
        fprintf(stderr, "vigil drill run: at most %d scenarios at a time\n", CLI_LIST_MAX);
        return CLI_USAGE;
    }
    for (int i = 0; i < n; i++) {
        struct errbuf eb;
        errbuf_clear(&eb);
        if (drill_scn_load(a->words[i + 1], &scns[i], &eb) < 0) {
            fprintf(stderr, "vigil drill: %s\n", errbuf_msg(&eb));
            rc = CLI_USAGE;
        }
    }
    if (a->format == OUT_JSON && rc == CLI_OK && n > 1) {
        printf("[");
    }
    for (int i = 0; rc != CLI_USAGE && i < n; i++) {
        struct drill_run r;
        struct errbuf eb;
        errbuf_clear(&eb);
        int e = drill_run_scenario(&sh, store, scns[i], &r, &eb);
        if (e < 0) {
            fprintf(stderr, "vigil drill: %s: %s\n", scns[i]->file, errbuf_msg(&eb));
            rc = CLI_FAIL;
        }
        if (r.scn) {
            if (a->format == OUT_JSON && n > 1 && i > 0) {
                printf(",");
            }
            if (print_report(&r, a->format, i + 1 == n) < 0) {
                rc = CLI_FAIL;
            }
            if (!r.passed) {
                rc = CLI_FAIL;
            }
        }
        drill_run_release(&r);
        fflush(stdout);
    }
    if (a->format == OUT_JSON && rc != CLI_USAGE && n > 1) {
        printf("]\n");
    }
    for (int i = 0; i < n; i++) {
        drill_scn_free(scns[i]);
    }
    return rc;
}

static int drill_do_report(struct cli_args *a, const char *store)
{
    if (a->nwords != 2) {
        fprintf(stderr, "vigil drill report: name one run id (vigil drill list shows them)\n");
        return CLI_USAGE;
    }
    struct drill_run r;
    struct errbuf eb;
    errbuf_clear(&eb);
    int rc = drill_collect(store, a->words[1], &r, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil drill report: %s\n", errbuf_msg(&eb));
        drill_run_release(&r);
        return rc == VG_EPARSE ? CLI_USAGE : CLI_FAIL;
    }
    /* A step counts as shipped when its events are stored. */
    r.steps_shipped = 0;
    for (size_t s = 0; s < r.scn->nsteps; s++) {
        if (r.seen[s].events > 0) {
            r.steps_shipped = s + 1;
        }
    }
    drill_evaluate(&r, INT64_MAX);
    rc = print_report(&r, a->format, true) < 0 ? CLI_FAIL : r.passed ? CLI_OK : CLI_FAIL;
    drill_run_release(&r);
    return rc;
}

struct list_ctx {
    char (*runs)[DRILL_RUN_ID_SIZE];
    size_t n, cap;
};

static int drill_do_list(struct cli_args *a, const char *store)
{
    struct filter *f = NULL;
    struct scan_result res;
    struct errbuf eb;
    int rc;

    if (a->nwords != 1) {
        fprintf(stderr, "vigil drill list: unexpected argument '%s'\n", a->words[1]);
        return CLI_USAGE;
    }
    errbuf_clear(&eb);
    /* the phrase lets the block index skip blocks without a drill's first record */
    if (filter_parse("raw.vigil_drill_scenario=* \"fire drill\"", vg_now_ns(), &f, NULL, &eb) < 0) {
        fprintf(stderr, "vigil drill list: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    rc = scan_run(store, a->since, a->until, f, a->has_limit ? a->limit : 0, 0, &res, &eb);
    filter_free(f);
    if (rc < 0) {
        fprintf(stderr, "vigil drill list: %s\n", errbuf_msg(&eb));
        scan_result_release(&res);
        return CLI_FAIL;
    }
    if (a->format == OUT_JSON) {
        printf("[");
    } else {
        printf("%-31s  %-24s  %-6s  %s\n", "RUN", "STARTED", "RESULT", "SCENARIO");
    }
    size_t shown = 0;
    for (size_t i = 0; i < res.n; i++) {
        struct span cur = { res.hits[i].bytes, res.hits[i].len };
        struct rec rec;
        if (rec_decode(&cur, &rec) < 0) {
            continue;
        }
        char *run = raw_str(rec.raw, "vigil_drill");
        if (!run) {
            continue;
        }
        struct drill_run r;
        struct errbuf reb;
        errbuf_clear(&reb);
        int e = drill_collect(store, run, &r, &reb);
        const char *outcome = "?";
        if (e == 0) {
            r.steps_shipped = 0;
            for (size_t s = 0; s < r.scn->nsteps; s++) {
                if (r.seen[s].events > 0) {
                    r.steps_shipped = s + 1;
                }
            }
            drill_evaluate(&r, INT64_MAX);
            outcome = r.passed ? "passed" : "FAILED";
        }
        char t[64];
        fmt_time(r.manifest_received ? r.manifest_received : rec.received, t, sizeof(t));
        if (a->format == OUT_JSON) {
            struct buf b;
            buf_init(&b, 1u << 20);
            int jr = jstr(&b, "run", run);
            jr = jr < 0 ? jr : buf_appendf(&b, ",");
            jr = jr < 0 ? jr : jstr(&b, "started", t);
            jr = jr < 0 ? jr : buf_appendf(&b, ",");
            jr = jr < 0 ? jr : jstr(&b, "scenario", r.scenario_name);
            jr = jr < 0 ? jr : buf_appendf(&b, ",");
            jr = jr < 0 ? jr : jstr(&b, "file", r.file);
            jr = jr < 0 ? jr : buf_appendf(&b, ",");
            jr = jr < 0
                     ? jr
                     : jstr(&b, "result", e == 0 ? (r.passed ? "passed" : "failed") : "unreadable");
            if (jr == 0) {
                printf("%s{%s}", shown ? ",\n" : "\n", buf_cstr(&b));
            }
            buf_release(&b);
        } else {
            printf("%-31s  %-24s  %-6s  %s\n", run, t, outcome,
                   r.scenario_name ? r.scenario_name : "?");
        }
        shown++;
        drill_run_release(&r);
        free(run);
    }
    if (a->format == OUT_JSON) {
        printf("%s]\n", shown ? "\n" : "");
    }
    scan_result_release(&res);
    return CLI_OK;
}

static int drill_cmd_run(struct cli_args *a)
{
    const struct drill_opts *o = a->own;

    if (a->nwords < 1) {
        drill_usage(stderr);
        return CLI_USAGE;
    }
    if (a->format != OUT_TABLE && a->format != OUT_JSON) {
        fprintf(stderr, "vigil drill: --format: table or json, not %s\n",
                out_format_name(a->format));
        return CLI_USAGE;
    }
    const char *sub = a->words[0];
    bool run = strcmp(sub, "run") == 0;
    if (!run && (o->server || o->https || o->ca || o->cert || o->key || o->pki)) {
        fprintf(stderr,
                "vigil drill %s: --server, --https, --ca, --cert, --key and --pki are for run\n",
                sub);
        return CLI_USAGE;
    }
    if (!run && strcmp(sub, "report") != 0 && strcmp(sub, "list") != 0) {
        fprintf(stderr, "vigil drill: unknown subcommand '%s' (run, report, list)\n", sub);
        return CLI_USAGE;
    }
    int rc = cli_load(a);
    if (rc != CLI_OK) {
        return rc;
    }
    const char *store = cli_store_dir(a);
    if (run) {
        return drill_do_run(a, o, store);
    }
    if (strcmp(sub, "report") == 0) {
        return drill_do_report(a, store);
    }
    return drill_do_list(a, store);
}

const struct cli_cmd cmd_drill = {
    .name = "drill",
    .synopsis = "run|report|list          fire drills: detect-and-page times",
    .takes = CLI_STORE | CLI_FORMAT | CLI_TIME | CLI_LIMIT,
    .opts = drill_cli_opts,
    .own_size = sizeof(struct drill_opts),
    .usage = drill_usage,
    .run = drill_cmd_run,
};
