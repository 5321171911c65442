/* rules/rules_tests.c: rule test cases (`vigil rules test`; format in rules.h
 * rules_tests_run and rules/README.md "Test cases").
 *
 * Test files are X.tests.yml / X.tests.yaml next to the rule file X.yml / X.yaml: rule
 * files stay plain Sigma that other tools read unchanged. Each event is written in its
 * source's native format (a Falco alert, an audit Event, a Filebeat-like sshd record,
 * or a bare syslog line as a string) and goes through schemas/map.h map_event, so a test
 * checks the mapping (logsource pre-filter, field targets) as well as the rule.
 * match/nomatch cases evaluate one rule's detection; `events` cases run a fresh engine
 * over the sequence and compare the target rule's alerts (rules that only feed
 * correlations alert too, so every level of a chain can be tested).
 *
 * Blocks (reads files). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "rules/engine_int.h"
#include "schemas/map.h"

#define TESTS_BASE_TS   (1704067200LL * VG_NS_PER_SEC) /* 2024-01-01T00:00:00Z */
#define TESTS_MAX_FILES 100000

void rules_test_report_init(struct rules_test_report *rep)
{
    memset(rep, 0, sizeof(*rep));
}

void rules_test_report_release(struct rules_test_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        free(rep->items[i].file);
        free(rep->items[i].rule);
        free(rep->items[i].name);
        free(rep->items[i].detail);
    }
    free(rep->items);
    memset(rep, 0, sizeof(*rep));
}

static void item_add(struct rules_test_report *rep, const char *file, unsigned line,
                     const char *rule, const char *name, const char *fmt, ...) VG_PRINTF(6, 7);

/* Adds a result: passed when fmt is NULL, else failed with the formatted detail. */
static void item_add(struct rules_test_report *rep, const char *file, unsigned line,
                     const char *rule, const char *name, const char *fmt, ...)
{
    if (rep->n == rep->cap) {
        rep->cap = rep->cap ? 2 * rep->cap : 16;
        rep->items = xrealloc(rep->items, rep->cap * sizeof(*rep->items));
    }
    struct rules_test_item *it = &rep->items[rep->n++];
    memset(it, 0, sizeof(*it));
    it->file = xstrdup(file);
    it->line = line;
    it->rule = xstrdup(rule ? rule : "");
    it->name = xstrdup(name);
    it->pass = fmt == NULL;
    if (fmt) {
        char msg[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        it->detail = xstrdup(msg);
        rep->failed++;
    } else {
        rep->passed++;
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_tests_file(const char *name)
{
    return name[0] != '.' && (ends_with(name, ".tests.yml") || ends_with(name, ".tests.yaml"));
}

struct files {
    char **v;
    size_t n;
};

static void files_add(struct files *f, const char *path)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->v[i], path) == 0) {
            return;
        }
    }
    f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
    f->v[f->n++] = xstrdup(path);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(struct files *f, const char *dir, int depth)
{
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;

    if (depth > 32 || f->n > TESTS_MAX_FILES || !(d = opendir(dir))) {
        return;
    }
    while ((de = readdir(d))) {
        if (de->d_name[0] != '.') {
            names = xrealloc(names, (n + 1) * sizeof(*names));
            names[n++] = xstrdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *p = xmalloc(len);
        struct stat st;
        snprintf(p, len, "%s/%s", dir, names[i]);
        if (stat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                walk(f, p, depth + 1);
            } else if (is_tests_file(names[i])) {
                files_add(f, p);
            }
        }
        free(p);
        free(names[i]);
    }
    free(names);
}

/* The rule file a tests file stands next to ("x.tests.yml" -> "x.yml" or "x.yaml"), or
 * NULL. Caller frees. */
static char *sibling_rule_file(const char *tests)
{
    const char *suf = ends_with(tests, ".tests.yml") ? ".tests.yml" : ".tests.yaml";
    size_t stem = strlen(tests) - strlen(suf);
    static const char *const exts[] = { ".yml", ".yaml" };

    for (size_t i = 0; i < 2; i++) {
        size_t len = stem + strlen(exts[i]) + 1;
        char *p = xmalloc(len);
        struct stat st;
        snprintf(p, len, "%.*s%s", (int)stem, tests, exts[i]);
        if (stat(p, &st) == 0) {
            return p;
        }
        free(p);
    }
    return NULL;
}

static bool read_all(const char *path, struct buf *out, struct errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    char chunk[65536];
    size_t n;
    bool ok = true;

    buf_init(out, YTREE_MAX_BYTES);
    if (!f) {
        errbuf_set(eb, "cannot open '%s': %s", path, vg_strerror(-errno));
        return false;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(out, chunk, n) < 0) {
            errbuf_set(eb, "'%s' is larger than %u bytes", path, YTREE_MAX_BYTES);
            ok = false;
            break;
        }
    }
    if (ok && ferror(f)) {
        errbuf_set(eb, "cannot read '%s'", path);
        ok = false;
    }
    fclose(f);
    if (!ok) {
        buf_release(out);
    }
    return ok;
}

static bool parse_format(const char *s, enum map_source *out)
{
    static const struct {
        const char *name;
        enum map_source src;
    } tab[] = {
        { "auto", MAP_AUTO },       { "falco", MAP_FALCO },   { "k8s-audit", MAP_K8S_AUDIT },
        { "sshd", MAP_SSHD },       { "syslog", MAP_SYSLOG }, { "trivy", MAP_TRIVY },
        { "generic", MAP_GENERIC },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(tab); i++) {
        if (strcmp(tab[i].name, s) == 0) {
            *out = tab[i].src;
            return true;
        }
    }
    return false;
}

/* One event of a case, mapped. The record's spans point into ev and scratch. */
struct tevent {
    struct buf ev;
    struct buf scratch;
    struct rec r;
};

static void tevent_release(struct tevent *t)
{
    buf_release(&t->ev);
    buf_release(&t->scratch);
}

/* Maps event node n (a map, or a string: a syslog line) with hint. Returns 0, or -1
 * with why set. */
static int tevent_map(struct tevent *t, const struct ynode *n, enum map_source hint, size_t idx,
                      char *why, size_t cap)
{
    struct errbuf eb;
    int rc;

    buf_init(&t->ev, YTREE_MAX_BYTES);
    buf_init(&t->scratch, 1 << 20);
    errbuf_clear(&eb);
    if (n->type == YN_SCALAR && ynode_scalar(n, NULL, NULL) == YS_STR) {
        /* a bare log line */
        rc = mp_put_map(&t->ev, 1);
        if (rc == 0) {
            rc = mp_put_cstr(&t->ev, "syslog_line");
        }
        if (rc == 0) {
            rc = mp_put_str(&t->ev, n->s, n->n);
        }
        if (hint == MAP_AUTO) {
            hint = MAP_SSHD;
        }
    } else if (n->type == YN_MAP) {
        rc = ynode_to_mp(n, &t->ev);
    } else {
        snprintf(why, cap, "event %zu (line %u) must be a map or a log line", idx, n->line);
        return -1;
    }
    if (rc < 0) {
        snprintf(why, cap, "event %zu (line %u) is too large", idx, n->line);
        return -1;
    }
    rc = map_event(hint, buf_span(&t->ev), TESTS_BASE_TS + (int64_t)idx * VG_NS_PER_SEC, "http",
                   &t->r, &t->scratch, &eb);
    if (rc < 0) {
        snprintf(why, cap, "event %zu (line %u) does not map: %s", idx, n->line, errbuf_msg(&eb));
        return -1;
    }
    t->r.seq = idx + 1;
    t->r.has_seq = true;
    return 0;
}

static long find_rule(const struct ruleset *rs, const char *ref)
{
    long i = ruleset_find(rs, ref);
    if (i >= 0) {
        return i;
    }
    for (size_t k = 0; k < rs->nrules; k++) {
        if (strcmp(rs->rules[k].title, ref) == 0) {
            return (long)k;
        }
    }
    return -1;
}

struct seen_alert {
    size_t at; /* index of the event during which it fired; n = at the flush */
    uint64_t count;
    uint64_t seqs;   /* triggering events (seqs_total) at the firing */
    uint64_t final;  /* ... and when it resolved */
    struct span *gv; /* copies */
    char **gnames;
    size_t ngroup;
    char incident[56];
};

struct collect {
    size_t rule;
    size_t at;
    struct seen_alert *v;
    size_t n;
};

/* An alert of the tested rule is an incident: its firing record, completed by its
 * resolution (the final count). */
static int on_alert(const struct rules_alert *a, void *arg)
{
    struct collect *c = arg;
    if (a->rule != c->rule) {
        return 0;
    }
    if (a->state != RULES_FIRING) {
        for (size_t i = c->n; i-- > 0;) {
            if (strcmp(c->v[i].incident, a->incident) == 0) {
                c->v[i].final = a->seqs_total;
                break;
            }
        }
        return 0;
    }
    c->v = xrealloc(c->v, (c->n + 1) * sizeof(*c->v));
    struct seen_alert *s = &c->v[c->n++];
    s->at = c->at;
    s->count = a->count;
    s->seqs = a->seqs_total;
    s->final = a->seqs_total;
    snprintf(s->incident, sizeof(s->incident), "%s", a->incident);
    s->ngroup = a->ngroup;
    s->gv = xcalloc(a->ngroup + 1, sizeof(*s->gv));
    s->gnames = xcalloc(a->ngroup + 1, sizeof(*s->gnames));
    for (size_t i = 0; i < a->ngroup; i++) {
        uint8_t *p = xmalloc(a->group_values[i].n + 1);
        memcpy(p, a->group_values[i].p, a->group_values[i].n);
        s->gv[i] = (struct span){ p, a->group_values[i].n };
        s->gnames[i] = xstrdup(a->group_names[i]);
    }
    return 0;
}

static void collect_release(struct collect *c)
{
    for (size_t i = 0; i < c->n; i++) {
        for (size_t j = 0; j < c->v[i].ngroup; j++) {
            free((void *)c->v[i].gv[j].p);
            free(c->v[i].gnames[j]);
        }
        free(c->v[i].gv);
        free(c->v[i].gnames);
    }
    free(c->v);
}

/* Compares expectation node `alerts` (an int, or a list of {at, count, group}) with what
 * fired. Returns NULL when it holds, else a reason in why. */
static const char *check_alerts(const struct ynode *exp, const struct collect *c, char *why,
                                size_t cap)
{
    int64_t n;

    if (exp->type == YN_SCALAR) {
        if (ynode_scalar(exp, &n, NULL) != YS_INT || n < 0) {
            snprintf(why, cap, "'alerts' must be a count or a list (line %u)", exp->line);
            return why;
        }
        if ((size_t)n != c->n) {
            snprintf(why, cap, "expected %" PRId64 " alert(s), got %zu", n, c->n);
            return why;
        }
        return NULL;
    }
    if (exp->type != YN_SEQ) {
        snprintf(why, cap, "'alerts' must be a count or a list (line %u)", exp->line);
        return why;
    }
    if (exp->nkids != c->n) {
        snprintf(why, cap, "expected %zu alert(s), got %zu", exp->nkids, c->n);
        return why;
    }
    for (size_t i = 0; i < exp->nkids; i++) {
        const struct ynode *m = exp->kids[i];
        const struct seen_alert *s = &c->v[i];
        if (m->type != YN_MAP) {
            snprintf(why, cap, "alerts[%zu] must be a map (line %u)", i, m->line);
            return why;
        }
        for (size_t k = 0; k + 1 < m->nkids; k += 2) {
            const char *key = m->kids[k]->s;
            const struct ynode *v = m->kids[k + 1];
            int64_t x;
            if (strcmp(key, "at") == 0 || strcmp(key, "count") == 0 || strcmp(key, "seqs") == 0 ||
                strcmp(key, "final_seqs") == 0) {
                if (ynode_scalar(v, &x, NULL) != YS_INT) {
                    snprintf(why, cap, "alerts[%zu].%s must be an integer", i, key);
                    return why;
                }
                uint64_t got = key[0] == 'a'   ? s->at
                               : key[0] == 'c' ? s->count
                               : key[0] == 's' ? s->seqs
                                               : s->final;
                if ((uint64_t)x != got) {
                    snprintf(why, cap, "alert %zu: expected %s %" PRId64 ", got %" PRIu64, i, key,
                             x, got);
                    return why;
                }
            } else if (strcmp(key, "group") == 0 && v->type == YN_MAP) {
                for (size_t g = 0; g + 1 < v->nkids; g += 2) {
                    const struct ynode *gk = v->kids[g];
                    const struct ynode *gval = v->kids[g + 1];
                    bool ok = false;
                    for (size_t j = 0; j < s->ngroup; j++) {
                        if (strcmp(s->gnames[j], gk->s) == 0) {
                            ok = span_eq(s->gv[j], ynode_span(gval));
                        }
                    }
                    if (!ok) {
                        snprintf(why, cap, "alert %zu: group %s is not '%s'", i, gk->s, gval->s);
                        return why;
                    }
                }
            } else {
                snprintf(why, cap,
                         "alerts[%zu]: unknown key '%s' (at, count, seqs, final_seqs, group)", i,
                         key);
                return why;
            }
        }
    }
    return NULL;
}

static void run_case(const struct ruleset *rs, struct rules_engine *e, const char *file,
                     const struct ynode *c, size_t ci, const char *default_rule, bool *tested,
                     struct rules_test_report *rep)
{
    const struct ynode *rn = ynode_get(c, "rule");
    const char *ref = rn && rn->type == YN_SCALAR ? rn->s : default_rule;
    enum map_source hint = MAP_AUTO;
    char name[64];
    char why[400];

    snprintf(name, sizeof(name), "tests[%zu]", ci);
    if (c->type != YN_MAP) {
        item_add(rep, file, c->line, NULL, name, "a test case must be a map");
        return;
    }
    for (size_t k = 0; k + 1 < c->nkids; k += 2) {
        static const char *const known[] = { "rule",   "format", "match", "nomatch",
                                             "events", "alerts", "name",  NULL };
        bool ok = false;
        for (const char *const *kn = known; *kn; kn++) {
            ok |= strcmp(c->kids[k]->s, *kn) == 0;
        }
        if (!ok) {
            item_add(rep, file, c->kids[k]->line, ref, name,
                     "unknown key '%s' (rule, format, match, nomatch, events, alerts)",
                     c->kids[k]->s);
            return;
        }
    }
    if (!ref) {
        item_add(rep, file, c->line, NULL, name,
                 "no 'rule': name the rule (id, name or title) the case tests");
        return;
    }
    long ri = find_rule(rs, ref);
    if (ri < 0) {
        item_add(rep, file, c->line, ref, name, "rule '%s' is not loaded", ref);
        return;
    }
    tested[ri] = true;
    const struct ynode *fmt = ynode_get(c, "format");
    if (fmt && (fmt->type != YN_SCALAR || !parse_format(fmt->s, &hint))) {
        item_add(rep, file, fmt->line, ref, name,
                 "format must be auto, falco, k8s-audit, sshd, syslog, trivy or generic");
        return;
    }
    for (int want = 1; want >= 0; want--) {
        const struct ynode *list = ynode_get(c, want ? "match" : "nomatch");
        if (!list) {
            continue;
        }
        if (list->type != YN_SEQ) {
            item_add(rep, file, list->line, ref, want ? "match" : "nomatch",
                     "must be a list of events");
            continue;
        }
        for (size_t i = 0; i < list->nkids; i++) {
            struct tevent t;
            snprintf(name, sizeof(name), "%s[%zu]", want ? "match" : "nomatch", i);
            if (tevent_map(&t, list->kids[i], hint, i, why, sizeof(why)) < 0) {
                item_add(rep, file, list->kids[i]->line, ref, name, "%s", why);
                tevent_release(&t);
                continue;
            }
            bool m =
                rs->rules[ri].type == RULES_DETECTION && rules__detect(e, (size_t)ri, &t.r, true);
            if (rs->rules[ri].type != RULES_DETECTION) {
                item_add(rep, file, list->kids[i]->line, ref, name,
                         "match/nomatch test detections; give a correlation 'events' and "
                         "'alerts'");
            } else if (m != (want == 1)) {
                item_add(rep, file, list->kids[i]->line, ref, name,
                         want ? "the event does not match (logsource '%s' takes it: %s)"
                              : "the event matches (logsource '%s' takes it: %s)",
                         rs->map.ls[rs->rules[ri].ls].name,
                         rules__detect(e, (size_t)ri, &t.r, false) == m ? "yes" : "no");
            } else {
                item_add(rep, file, list->kids[i]->line, ref, name, NULL);
            }
            tevent_release(&t);
        }
    }
    const struct ynode *events = ynode_get(c, "events");
    const struct ynode *alerts = ynode_get(c, "alerts");
    if (!events && !alerts) {
        return;
    }
    snprintf(name, sizeof(name), "events@%u", events ? events->line : alerts->line);
    if (!events || !alerts || events->type != YN_SEQ) {
        item_add(rep, file, c->line, ref, name, "'events' (a list) and 'alerts' go together");
        return;
    }
    struct rules_engine *seq;
    if (rules_engine_new(rs, NULL, &seq) < 0) {
        item_add(rep, file, c->line, ref, name, "cannot make an engine");
        return;
    }
    seq->emit_all = true;
    struct collect col = { .rule = (size_t)ri };
    bool ok = true;
    for (size_t i = 0; i < events->nkids && ok; i++) {
        struct tevent t;
        if (tevent_map(&t, events->kids[i], hint, i, why, sizeof(why)) < 0) {
            item_add(rep, file, events->kids[i]->line, ref, name, "%s", why);
            ok = false;
        } else {
            col.at = i;
            (void)rules_engine_eval(seq, &t.r, on_alert, &col);
        }
        tevent_release(&t);
    }
    if (ok) {
        col.at = events->nkids;
        (void)rules_engine_flush(seq, on_alert, &col);
        const char *bad = check_alerts(alerts, &col, why, sizeof(why));
        if (bad) {
            item_add(rep, file, alerts->line, ref, name, "%s", bad);
        } else {
            item_add(rep, file, alerts->line, ref, name, NULL);
        }
    }
    collect_release(&col);
    rules_engine_free(seq);
}

static void run_file(const struct ruleset *rs, struct rules_engine *e, const char *file,
                     bool *tested, struct rules_test_report *rep)
{
    struct buf text;
    struct errbuf eb;
    struct ystream ys = { 0 };
    const char *default_rule = NULL;
    char *sib = sibling_rule_file(file);

    errbuf_clear(&eb);
    if (!read_all(file, &text, &eb)) {
        item_add(rep, file, 0, NULL, "file", "%s", errbuf_msg(&eb));
        free(sib);
        return;
    }
    if (ystream_parse(file, text.data ? text.data : (const uint8_t *)"", text.len, &ys, &eb) < 0) {
        item_add(rep, file, 0, NULL, "file", "%s", errbuf_msg(&eb));
        buf_release(&text);
        free(sib);
        return;
    }
    buf_release(&text);
    /* the sibling rule file's only rule is the default target */
    if (sib) {
        size_t found = 0;
        for (size_t i = 0; i < rs->nrules; i++) {
            if (strcmp(rs->rules[i].file, sib) == 0) {
                default_rule = rs->rules[i].id     ? rs->rules[i].id
                               : rs->rules[i].name ? rs->rules[i].name
                                                   : rs->rules[i].title;
                found++;
            }
        }
        if (found != 1) {
            default_rule = NULL;
        }
    }
    const struct ynode *root = ys.ndocs == 1 ? ys.docs[0] : NULL;
    const struct ynode *tests = ynode_get(root, "tests");
    if (!tests || tests->type != YN_SEQ || root->nkids != 2) {
        item_add(rep, file, root ? root->line : 1, NULL, "file",
                 "a tests file is one YAML map with one key, 'tests': a list of cases");
    } else {
        for (size_t i = 0; i < tests->nkids; i++) {
            run_case(rs, e, file, tests->kids[i], i, default_rule, tested, rep);
        }
    }
    ystream_release(&ys);
    free(sib);
}

int rules_tests_run(const struct ruleset *rs, const char *const *paths, size_t npaths,
                    struct rules_test_report *rep, struct errbuf *eb)
{
    struct files f = { 0 };
    struct rules_engine *e;
    int rc = 0;

    for (size_t i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st) < 0) {
            rc = -errno;
            errbuf_set(eb, "cannot open '%s': %s", paths[i], vg_strerror(rc));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            walk(&f, paths[i], 0);
        } else if (is_tests_file(paths[i])) {
            files_add(&f, paths[i]);
        } else {
            /* a rule file: its sibling */
            const char *suffix = ends_with(paths[i], ".yaml") ? ".yaml" : ".yml";
            size_t stem = strlen(paths[i]) - (ends_with(paths[i], suffix) ? strlen(suffix) : 0);
            static const char *const exts[] = { ".tests.yml", ".tests.yaml" };
            for (size_t k = 0; k < 2; k++) {
                size_t len = stem + strlen(exts[k]) + 1;
                char *p = xmalloc(len);
                struct stat ts;
                snprintf(p, len, "%.*s%s", (int)stem, paths[i], exts[k]);
                if (stat(p, &ts) == 0) {
                    files_add(&f, p);
                }
                free(p);
            }
        }
    }
    if (rc == 0 && (rc = rules_engine_new(rs, NULL, &e)) == 0) {
        bool *tested = xcalloc(rs->nrules + 1, sizeof(*tested));
        for (size_t i = 0; i < f.n; i++) {
            run_file(rs, e, f.v[i], tested, rep);
        }
        for (size_t i = 0; i < rs->nrules; i++) {
            if (tested[i]) {
                rep->rules_tested++;
            } else {
                rep->rules_untested++;
            }
        }
        free(tested);
        rules_engine_free(e);
    }
    for (size_t i = 0; i < f.n; i++) {
        free(f.v[i]);
    }
    free(f.v);
    return rc;
}
