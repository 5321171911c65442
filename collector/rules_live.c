/* collector/rules_live.c: live Sigma evaluation in vigild (see rules_live.h). */
#include "collector/rules_live.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "collector/metrics.h"
#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "rules/rules.h"

#define RULES_TICK_MS       1000
#define RULES_CHECKPOINT_MS 10000
#define RULES_STATE_MAX     (256u << 20)

struct ckpt_work {
    uv_work_t req;
    struct rules_live *rl;
    uint8_t *data;
    size_t len;
    int rc;
};

struct reload_work {
    uv_work_t req;
    struct rules_live *rl;
    struct ruleset *rs;
    struct rules_report rep;
    struct errbuf eb;
    int rc;
};

/* What the last summary reported, per rule key (the counters restart with a reload's new
 * engine: kept by key so a reload is not a jump). */
struct skip_seen {
    char *key;
    uint64_t n[RULES_SKIP_COUNT];
};

struct rules_live {
    struct rules_live_env env;
    struct ruleset *rs;
    struct rules_engine *eng;
    struct rules_limits lim;
    uv_timer_t tick;
    bool timer_open;
    int64_t last_ckpt_ms;
    int64_t last_summary_ms;
    bool ckpt_busy;
    bool reload_busy;
    bool stopped;
    bool started;       /* ran in the daemon: the final checkpoint is worth writing */
    struct buf scratch; /* alert records are built here */
    char *state_path;
    uint64_t alerts;
    /* uncounted events (rules_skip) of engines a reload replaced, per rule key, and what
     * the last summary reported: /metrics shows totals since start */
    struct skip_seen *gone, *reported;
    size_t ngone, nreported;
};

static void log_report(const struct rules_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        const struct rules_report_item *it = &rep->items[i];
        if (it->status != RULES_LOADED) {
            log_warn("rules: not loaded (%s): %s",
                     it->status == RULES_UNSUPPORTED ? "unsupported" : "invalid",
                     it->reason ? it->reason : it->file);
        }
    }
    log_info("rules: %zu loaded, %zu unsupported, %zu invalid", rep->loaded, rep->unsupported,
             rep->invalid);
}

static int load(const struct rules_live_env *env, struct ruleset **rs, struct rules_report *rep,
                struct errbuf *eb)
{
    const struct rules_cfg *rc = env->cfg;
    return rules_load((const char *const *)rc->paths, rc->npaths, NULL, rs, rep, eb);
}

/* Restores <store>/rules.state if present (a corrupt file is logged and ignored: the
 * windows start empty, which loses at most an attack in progress, never evidence). */
static void restore_state(struct rules_live *rl)
{
    FILE *f = fopen(rl->state_path, "rb");
    if (!f) {
        return;
    }
    struct buf b;
    buf_init(&b, RULES_STATE_MAX);
    uint8_t tmp[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        rc = buf_append(&b, tmp, n);
    }
    fclose(f);
    if (rc == 0) {
        rc = rules_engine_restore(rl->eng, buf_span(&b));
    }
    if (rc < 0) {
        log_warn("rules: checkpoint '%s' not restored: %s; correlation windows start empty",
                 rl->state_path, vg_strerror(rc));
    } else {
        log_info("rules: restored %d correlation group(s) and open alert(s) from '%s'", rc,
                 rl->state_path);
    }
    buf_release(&b);
}

static void limits_of(const struct rules_cfg *cfg, struct rules_limits *lim)
{
    rules_limits_default(lim);
    lim->resolve_after_ns = cfg->resolve_after_ns;
    lim->update_every_ns = cfg->update_every_ns;
    lim->lateness_ns = cfg->lateness_ns;
    lim->max_future_ns = cfg->max_future_ns;
}

int rules_live_new(const struct rules_live_env *env, struct rules_live **out, struct errbuf *eb)
{
    struct rules_report rep;
    struct ruleset *rs = NULL;
    int rc;

    *out = NULL;
    if (env->cfg->npaths == 0) {
        return 0;
    }
    rules_report_init(&rep);
    rc = load(env, &rs, &rep, eb);
    if (rc == 0) {
        log_report(&rep);
    }
    rules_report_release(&rep);
    if (rc < 0) {
        return rc;
    }
    struct rules_live *rl = xcalloc(1, sizeof(*rl));
    rl->env = *env;
    rl->rs = rs;
    limits_of(env->cfg, &rl->lim);
    if ((rc = rules_engine_new(rs, &rl->lim, &rl->eng)) < 0) {
        errbuf_set(eb, "rules: cannot make the engine: %s", vg_strerror(rc));
        ruleset_free(rs);
        free(rl);
        return rc;
    }
    buf_init(&rl->scratch, 1u << 20);
    size_t n = strlen(env->state_dir) + 32;
    rl->state_path = xmalloc(n);
    snprintf(rl->state_path, n, "%s/rules.state", env->state_dir);
    restore_state(rl);
    *out = rl;
    return 0;
}

static int on_alert(const struct rules_alert *a, void *arg)
{
    struct rules_live *rl = arg;
    struct rec r;

    buf_reset(&rl->scratch);
    if (rules_alert_to_rec(rl->rs, a, &r, &rl->scratch) < 0) {
        log_warn("rules: alert of rule '%s' too large to record", a->title);
        return 0;
    }
    rec_set(&r, VG_F_AGENT, SPAN_LIT("vigild"));
    rec_set(&r, VG_F_HOST, span_str(rl->env.self_host));
    if (ingest_add(rl->env.port, &r) < 0) {
        rl->env.m->vigil_events_dropped++;
        rl->env.m->rules_alerts_dropped++;
        log_warn("rules: alert of rule '%s' not recorded (batch full)", a->title);
        return 0;
    }
    rl->alerts++;
    rl->env.m->rules_alerts++;
    metrics_labels_add(&rl->env.m->rule_alerts, METRICS_MAX_RULES, span_str(a->rule_id),
                       span_str(a->title), 1);
    log_info("alert %s: %s (%s) x%" PRIu64 " %.32s", rules_alert_state_name(a->state), a->title,
             vg_severity_name(a->severity), a->count, a->fingerprint);
    return 0;
}

void rules_live_on_record(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct rules_live *rl = arg;
    struct span cur = bytes;
    struct rec r;

    (void)ts;
    if (!rl || rec_decode(&cur, &r) < 0) {
        return;
    }
    /* Alerts are not evaluated again: a rule never fires on its own output. */
    if (span_eq_str(r.str[VG_F_SOURCE], "rule")) {
        return;
    }
    rl->env.m->rules_events++;
    int64_t t0 = vg_mono_ns();
    if (rules_engine_eval(rl->eng, &r, on_alert, rl) < 0) {
        rl->env.m->rules_eval_failures++;
        log_warn("rules: evaluation of seq %" PRIu64 " failed", seq);
    }
    metrics_hist_observe(rl->env.m, METRICS_HIST_RULES, vg_mono_ns() - t0);
}

static void ckpt_work(uv_work_t *req)
{
    struct ckpt_work *w = req->data;
    struct rules_live *rl = w->rl;
    size_t n = strlen(rl->state_path) + 8;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp", rl->state_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    w->rc = 0;
    if (fd < 0) {
        w->rc = -errno;
    } else {
        size_t off = 0;
        while (off < w->len && w->rc == 0) {
            ssize_t k = write(fd, w->data + off, w->len - off);
            if (k < 0) {
                w->rc = -errno;
            } else {
                off += (size_t)k;
            }
        }
        if (w->rc == 0 && fdatasync(fd) != 0) {
            w->rc = -errno;
        }
        close(fd);
        if (w->rc == 0 && rename(tmp, rl->state_path) != 0) {
            w->rc = -errno;
        }
    }
    free(tmp);
}

static void ckpt_done(uv_work_t *req, int status)
{
    struct ckpt_work *w = req->data;
    (void)status;
    if (w->rc < 0) {
        log_warn("rules: cannot write the checkpoint '%s': %s", w->rl->state_path,
                 vg_strerror(w->rc));
    }
    w->rl->ckpt_busy = false;
    free(w->data);
    free(w);
}

static void checkpoint_async(struct rules_live *rl)
{
    struct buf b;

    if (rl->ckpt_busy) {
        return;
    }
    buf_init(&b, RULES_STATE_MAX);
    if (rules_engine_checkpoint(rl->eng, &b) < 0) {
        log_warn("rules: correlation state over %u MiB; not checkpointed", RULES_STATE_MAX >> 20);
        buf_release(&b);
        return;
    }
    struct ckpt_work *w = xcalloc(1, sizeof(*w));
    w->rl = rl;
    w->data = buf_detach(&b, &w->len);
    w->req.data = w;
    rl->ckpt_busy = true;
    if (uv_queue_work(rl->env.loop, &w->req, ckpt_work, ckpt_done) < 0) {
        rl->ckpt_busy = false;
        free(w->data);
        free(w);
    }
}

/* ---- uncounted events: totals per rule across reloads, and the summary ---- */

static const char *rule_key(const struct rules_rule_info *info)
{
    return info->id[0] ? info->id : info->name[0] ? info->name : info->title;
}

static struct skip_seen *seen_of(struct skip_seen **v, size_t *n, const char *key)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*v)[i].key, key) == 0) {
            return &(*v)[i];
        }
    }
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    struct skip_seen *s = &(*v)[(*n)++];
    memset(s, 0, sizeof(*s));
    s->key = xstrdup(key);
    return s;
}

static void seen_free(struct skip_seen *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
    }
    free(v);
}

/* Rule i's uncounted events since start: this engine's plus those of engines a reload
 * replaced. */
static void skipped_total(const struct rules_live *rl, size_t i, const char **key,
                          uint64_t n[RULES_SKIP_COUNT])
{
    struct rules_stats st;
    struct rules_rule_info info;

    rules_engine_stats(rl->eng, &i, &st);
    ruleset_rule_info(rl->rs, i, &info);
    *key = rule_key(&info);
    for (int k = 0; k < RULES_SKIP_COUNT; k++) {
        n[k] = st.skipped[k];
    }
    for (size_t g = 0; g < rl->ngone; g++) {
        if (strcmp(rl->gone[g].key, *key) == 0) {
            for (int k = 0; k < RULES_SKIP_COUNT; k++) {
                n[k] += rl->gone[g].n[k];
            }
        }
    }
}

/* Prometheus text: a label value with \, " and newlines escaped. */
static int put_label(struct buf *out, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        if (*s == '\\' || *s == '"') {
            rc = buf_appendf(out, "\\%c", *s);
        } else if (*s == '\n') {
            rc = buf_append_str(out, "\\n");
        } else {
            rc = buf_append(out, s, 1);
        }
    }
    return rc;
}

int rules_live_metrics(const struct rules_live *rl, struct buf *out)
{
    struct rules_stats st;
    int rc;

    if (!rl) {
        return 0;
    }
    rules_engine_stats(rl->eng, NULL, &st);
    rc = buf_appendf(
        out, "# HELP vigil_rules_unevaluated_total events a rule did not count (late: more than "
             "rules.lateness behind their source; state_cap: forgotten at a state cap) or counted "
             "at their receipt instead of their own time (future: past rules.max_future)\n"
             "# TYPE vigil_rules_unevaluated_total counter\n");
    for (size_t i = 0; i < ruleset_count(rl->rs) && rc == 0; i++) {
        const char *key;
        uint64_t n[RULES_SKIP_COUNT];
        skipped_total(rl, i, &key, n);
        for (int k = 0; k < RULES_SKIP_COUNT && rc == 0; k++) {
            rc = buf_append_str(out, "vigil_rules_unevaluated_total{rule=\"");
            if (rc == 0) {
                rc = put_label(out, key);
            }
            if (rc == 0) {
                rc = buf_appendf(out, "\",reason=\"%s\"} %" PRIu64 "\n",
                                 rules_skip_name((enum rules_skip)k), n[k]);
            }
        }
    }
    if (rc == 0) {
        rc = buf_appendf(
            out,
            "# HELP vigil_rules_incidents_open alerts (incidents) open now\n"
            "# TYPE vigil_rules_incidents_open gauge\nvigil_rules_incidents_open %" PRIu64 "\n"
            "# HELP vigil_rules_incidents_evicted_total incidents resolved early at the "
            "per-rule cap\n"
            "# TYPE vigil_rules_incidents_evicted_total counter\n"
            "vigil_rules_incidents_evicted_total %" PRIu64 "\n"
            "# HELP vigil_rules_sources sources (agent, host) whose clocks the rules keep\n"
            "# TYPE vigil_rules_sources gauge\nvigil_rules_sources %" PRIu64 "\n"
            "# HELP vigil_rules_sources_evicted_total source clocks forgotten at the cap\n"
            "# TYPE vigil_rules_sources_evicted_total counter\n"
            "vigil_rules_sources_evicted_total %" PRIu64 "\n"
            "# HELP vigil_rules_clock_seconds the rules' collector clock (rules/TIME.md)\n"
            "# TYPE vigil_rules_clock_seconds gauge\nvigil_rules_clock_seconds %.3f\n",
            st.open_incidents, st.incidents_evicted, st.sources, st.sources_evicted,
            rules_engine_now(rl->eng) == INT64_MIN ? 0.0 : (double)rules_engine_now(rl->eng) / 1e9);
    }
    return rc;
}

/* Records what the rules did not count since the last summary, when anything, as a
 * source=vigil event: the evidence that detection had a gap (rules/TIME.md). */
static void summary(struct rules_live *rl, int64_t period_ms)
{
    struct buf raw;
    struct buf msg;
    uint64_t total = 0;
    uint32_t nrules = 0;
    int rc = 0;

    for (size_t i = 0; i < ruleset_count(rl->rs); i++) {
        const char *key;
        uint64_t n[RULES_SKIP_COUNT];
        skipped_total(rl, i, &key, n);
        struct skip_seen *s = seen_of(&rl->reported, &rl->nreported, key);
        bool moved = false;
        for (int k = 0; k < RULES_SKIP_COUNT; k++) {
            moved |= n[k] > s->n[k];
        }
        nrules += moved;
    }
    if (nrules == 0) {
        return;
    }
    buf_init(&raw, 1u << 20);
    buf_init(&msg, 1024);
    rc = mp_put_map(&raw, 3);
    rc = rc ? rc : mp_put_cstr(&raw, "period_ms");
    rc = rc ? rc : mp_put_i64(&raw, period_ms);
    rc = rc ? rc : mp_put_cstr(&raw, "sources");
    struct rules_stats st;
    rules_engine_stats(rl->eng, NULL, &st);
    rc = rc ? rc : mp_put_u64(&raw, st.sources);
    rc = rc ? rc : mp_put_cstr(&raw, "rules");
    rc = rc ? rc : mp_put_array(&raw, nrules);
    for (size_t i = 0; i < ruleset_count(rl->rs) && rc == 0; i++) {
        const char *key;
        uint64_t n[RULES_SKIP_COUNT];
        struct rules_rule_info info;
        skipped_total(rl, i, &key, n);
        ruleset_rule_info(rl->rs, i, &info);
        struct skip_seen *s = seen_of(&rl->reported, &rl->nreported, key);
        uint64_t d[RULES_SKIP_COUNT];
        uint64_t sum = 0;
        for (int k = 0; k < RULES_SKIP_COUNT; k++) {
            d[k] = n[k] > s->n[k] ? n[k] - s->n[k] : 0;
            sum += d[k];
            s->n[k] = n[k];
        }
        if (sum == 0) {
            continue;
        }
        total += sum;
        rc = mp_put_map(&raw, 2 + RULES_SKIP_COUNT);
        rc = rc ? rc : mp_put_cstr(&raw, "rule_id");
        rc = rc ? rc : mp_put_cstr(&raw, key);
        rc = rc ? rc : mp_put_cstr(&raw, "title");
        rc = rc ? rc : mp_put_cstr(&raw, info.title);
        for (int k = 0; k < RULES_SKIP_COUNT && rc == 0; k++) {
            rc = mp_put_cstr(&raw, rules_skip_name((enum rules_skip)k));
            rc = rc ? rc : mp_put_u64(&raw, d[k]);
        }
        /* the message names the first rules; raw lists them all */
        int mrc = msg.len < 400 ? buf_appendf(&msg, "%s'%s'", msg.len ? "; " : "", info.title) : -1;
        for (int k = 0; k < RULES_SKIP_COUNT && mrc == 0; k++) {
            if (d[k]) {
                mrc = buf_appendf(&msg, " %s %" PRIu64, rules_skip_name((enum rules_skip)k), d[k]);
            }
        }
    }
    if (rc < 0) {
        log_warn("rules: summary of uncounted events too large to record");
        buf_release(&raw);
        buf_release(&msg);
        return;
    }
    char text[640];
    snprintf(text, sizeof(text),
             "rules: %" PRIu64 " event evaluation(s) in the last %" PRId64
             " s were not counted or not at their own time (rules/TIME.md): %s",
             total, period_ms / 1000, buf_cstr(&msg));
    log_warn("%s", text);
    /* Evidence: stored even while the disk is below store.free_reserve. */
    struct ingest_evidence ev = {
        .sev = VG_SEV_WARNING,
        .action = "rules_unevaluated",
        .outcome = "failure",
        .message = text,
        .raw = buf_span(&raw),
    };
    rl->env.port->ops->evidence(rl->env.port->ctx, &ev);
    buf_release(&raw);
    buf_release(&msg);
}

static void on_tick(uv_timer_t *t)
{
    struct rules_live *rl = t->data;

    /* The collector clock moves on with the wall clock while nothing is on its way to the
     * engine: a record added later was received later (rules/TIME.md). */
    if (rl->env.idle(rl->env.idle_arg)) {
        rules_engine_advance(rl->eng, vg_now_ns(), on_alert, rl);
    }
    int64_t ms = (int64_t)uv_now(rl->env.loop);
    if (ms - rl->last_ckpt_ms >= RULES_CHECKPOINT_MS) {
        rl->last_ckpt_ms = ms;
        checkpoint_async(rl);
    }
    if (ms - rl->last_summary_ms >= rl->env.cfg->summary_every_ns / 1000000) {
        summary(rl, ms - rl->last_summary_ms);
        rl->last_summary_ms = ms;
    }
    struct rules_stats st;
    rules_engine_stats(rl->eng, NULL, &st);
    rl->env.m->rules_groups = st.groups;
    rl->env.m->rules_groups_evicted = st.groups_evicted;
}

void rules_live_start(struct rules_live *rl)
{
    if (!rl) {
        return;
    }
    uv_timer_init(rl->env.loop, &rl->tick);
    rl->tick.data = rl;
    rl->timer_open = true;
    rl->started = true;
    rl->last_ckpt_ms = (int64_t)uv_now(rl->env.loop);
    rl->last_summary_ms = rl->last_ckpt_ms;
    uv_timer_start(&rl->tick, on_tick, RULES_TICK_MS, RULES_TICK_MS);
    uv_unref((uv_handle_t *)&rl->tick);
}

static void reload_work(uv_work_t *req)
{
    struct reload_work *w = req->data;
    w->rc = load(&w->rl->env, &w->rs, &w->rep, &w->eb);
}

static void reload_done(uv_work_t *req, int status)
{
    struct reload_work *w = req->data;
    struct rules_live *rl = w->rl;
    struct rules_engine *eng = NULL;
    struct buf state;
    int rc = w->rc;

    (void)status;
    rl->reload_busy = false;
    if (rc < 0) {
        log_error("SIGHUP: rules not reloaded, the old set stays: %s", errbuf_msg(&w->eb));
        goto out;
    }
    log_report(&w->rep);
    if (rl->stopped || (rc = rules_engine_new(w->rs, &rl->lim, &eng)) < 0) {
        goto out;
    }
    /* Carry the state over: unchanged rules keep their windows and open alerts; the
     * alerts of rules that went are resolved by the next evaluation. */
    buf_init(&state, RULES_STATE_MAX);
    if (rules_engine_checkpoint(rl->eng, &state) == 0) {
        int n = rules_engine_restore(eng, buf_span(&state));
        log_info("SIGHUP: rules reloaded (%zu rules); %d correlation group(s) and open "
                 "alert(s) kept",
                 ruleset_count(w->rs), n < 0 ? 0 : n);
    }
    buf_release(&state);
    /* the old engine's uncounted events stay in the totals */
    for (size_t i = 0; i < ruleset_count(rl->rs); i++) {
        const char *key;
        uint64_t n[RULES_SKIP_COUNT];
        struct rules_stats st;
        struct rules_rule_info info;
        rules_engine_stats(rl->eng, &i, &st);
        ruleset_rule_info(rl->rs, i, &info);
        key = rule_key(&info);
        struct skip_seen *g = seen_of(&rl->gone, &rl->ngone, key);
        for (int k = 0; k < RULES_SKIP_COUNT; k++) {
            n[k] = st.skipped[k];
            g->n[k] += n[k];
        }
    }
    rules_engine_free(rl->eng);
    ruleset_free(rl->rs);
    rl->eng = eng;
    rl->rs = w->rs;
    w->rs = NULL;
out:
    ruleset_free(w->rs);
    rules_report_release(&w->rep);
    free(w);
}

void rules_live_reload(struct rules_live *rl)
{
    if (!rl || rl->reload_busy) {
        return;
    }
    struct reload_work *w = xcalloc(1, sizeof(*w));
    w->rl = rl;
    w->req.data = w;
    rules_report_init(&w->rep);
    errbuf_clear(&w->eb);
    rl->reload_busy = true;
    if (uv_queue_work(rl->env.loop, &w->req, reload_work, reload_done) < 0) {
        rl->reload_busy = false;
        rules_report_release(&w->rep);
        free(w);
    }
}

void rules_live_stop(struct rules_live *rl)
{
    if (rl && rl->timer_open) {
        rl->stopped = true;
        uv_timer_stop(&rl->tick);
        uv_close((uv_handle_t *)&rl->tick, NULL);
        rl->timer_open = false;
    }
}

void rules_live_free(struct rules_live *rl)
{
    if (!rl) {
        return;
    }
    struct buf b;
    buf_init(&b, RULES_STATE_MAX);
    if (rl->started && rules_engine_checkpoint(rl->eng, &b) == 0) {
        struct ckpt_work w = { .rl = rl, .data = b.data, .len = b.len };
        ckpt_work(&(uv_work_t){ .data = &w });
        if (w.rc < 0) {
            log_warn("rules: cannot write the final checkpoint '%s': %s", rl->state_path,
                     vg_strerror(w.rc));
        }
    }
    buf_release(&b);
    if (rl->started) {
        log_info("rules: %" PRIu64 " alert record(s) in this run", rl->alerts);
    }
    rules_engine_free(rl->eng);
    ruleset_free(rl->rs);
    buf_release(&rl->scratch);
    seen_free(rl->gone, rl->ngone);
    seen_free(rl->reported, rl->nreported);
    free(rl->state_path);
    free(rl);
}
