/* query/explain.c: `vigil explain ALERT [--rules PATH]... [--format F]` (issue 13 item 3):
 * why an alert fired, in one command. ALERT is an alert record's seq, its incident's
 * fingerprint (32 hex digits: the incident's latest record) or incident id
 * ("<fingerprint>-<first_seen>").
 *
 * What it shows: the alert record (schemas/alert.md: state, count, first and last seen,
 * window, group), the rule it came from (its id, title, level, correlation type,
 * timespan, group-by, threshold, and the rule's YAML document as written, with those of
 * the rules a correlation refers to) when the rules are at hand (--rules, else the
 * config's rules.paths), and the triggering events (raw.seqs) in full.
 *
 * Reading: the alert record through a scan the text index prunes to the blocks holding
 * alert records (agent "vigild", kind "alert"); the triggering events through a scan of
 * the incident's event-time range (first_seen..last_seen) that needs the group's values
 * of the indexed identity fields (every triggering event of a group carries them), so
 * the block index leaves out the rest. Only when some seq is still missing (a group key
 * the events spell another way) does it read that range without the index, then from the
 * lowest missing seq on (store_scan_from_seq). Single-threaded but for the scan stripes
 * (scan.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/cli.h"
#include "query/output.h"
#include "query/scan.h"
#include "rules/rules.h"
#include "schemas/raw_path.h"

#define EXPLAIN_DOC_LINES 200 /* lines of a rule document printed at most */

static void explain_usage(FILE *f)
{
    fprintf(f, "usage: vigil explain ALERT [--rules PATH]... [--since T] [--until T]\n"
               "                     [--format table|json|ndjson|csv] [-c FILE | --store DIR]\n"
               "\n"
               "ALERT: an alert record's seq, its incident's fingerprint (32 hex digits: the\n"
               "incident's latest record) or incident id (<fingerprint>-<first_seen>).\n"
               "Shows the alert, the rule (title, file, condition as written, correlation type,\n"
               "timespan, threshold, group-by; from --rules or the config's rules.paths), the\n"
               "group values and the triggering events in full. --since/--until narrow where the\n"
               "alert record is looked for. json: one object {alert, rule, group, events,\n"
               "missing}; ndjson and csv: the alert record, then the triggering events.\n");
}

struct explain_opts {
    struct cli_list rules;
};

static const struct cli_opt explain_opts[] = {
    { "--rules", NULL, CLI_LIST, CLI_OFF(struct explain_opts, rules), 0, 0 },
    { NULL },
};

enum ref_kind { REF_SEQ, REF_FINGERPRINT, REF_INCIDENT };

struct alert_ref {
    enum ref_kind kind;
    uint64_t seq;
    const char *text; /* fingerprint or incident id */
};

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* Returns CLI_OK or CLI_USAGE (said). */
static int ref_parse(const char *s, struct alert_ref *ref)
{
    size_t n = strlen(s);

    if (parse_u64(span_str(s), UINT64_MAX, &ref->seq) == 0 && ref->seq > 0) {
        ref->kind = REF_SEQ;
        return CLI_OK;
    }
    if (n == 32 && all_hex(s, 32)) {
        ref->kind = REF_FINGERPRINT;
        ref->text = s;
        return CLI_OK;
    }
    uint64_t first;
    if (n > 33 && s[32] == '-' && all_hex(s, 32) &&
        parse_u64((struct span){ (const uint8_t *)s + 33, n - 33 }, UINT64_MAX, &first) == 0) {
        ref->kind = REF_INCIDENT;
        ref->text = s;
        return CLI_OK;
    }
    fprintf(stderr,
            "vigil explain: '%s' is not an alert: give its seq (a number), its fingerprint (32 "
            "lower-case hex digits) or its incident id (<fingerprint>-<first_seen>)\n",
            s);
    return CLI_USAGE;
}

/* ---- reading raw ---- */

struct raw_get {
    struct span v;
};

static bool on_get(struct span value, int depth, void *arg)
{
    (void)depth;
    ((struct raw_get *)arg)->v = value;
    return true;
}

/* The msgpack value at path in r's raw, or an empty span. */
static struct span raw_get(const struct rec *r, const char *path)
{
    struct raw_get g = { { NULL, 0 } };

    if (r->raw.n) {
        (void)raw_path_walk(r->raw, span_str(path), 0, on_get, &g);
    }
    return g.v;
}

static struct span raw_str(const struct rec *r, const char *path)
{
    struct span s = { NULL, 0 };
    struct span v = raw_get(r, path);

    if (!v.p || !mp_get_str(v, &s)) {
        return (struct span){ NULL, 0 };
    }
    return s;
}

static bool raw_i64(const struct rec *r, const char *path, int64_t *out)
{
    struct span v = raw_get(r, path);
    return v.p && mp_get_i64(v, out);
}

/* ---- finding the alert record ---- */

struct find_ctx {
    const struct alert_ref *ref;
    uint64_t best_seq; /* 0: none yet */
    uint8_t *best;     /* its bytes, owned */
    size_t best_len;
    uint64_t records; /* alert records of the incident or fingerprint */
    int bad;
    struct errbuf eb;
};

static int on_alert(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct find_ctx *c = arg;
    struct rec r;

    (void)ts;
    if (c->ref->kind == REF_SEQ && seq != c->ref->seq) {
        return 0;
    }
    if ((c->bad = scan_rec_decode(bytes, seq, &r, &c->eb)) < 0) {
        return c->bad;
    }
    if (!span_eq_str(r.str[VG_F_KIND], "alert")) {
        return 0;
    }
    if (c->ref->kind != REF_SEQ) {
        struct span v = raw_str(&r, c->ref->kind == REF_FINGERPRINT ? "fingerprint" : "incident");
        if (!span_eq_str(v, c->ref->text)) {
            return 0;
        }
    }
    c->records++;
    if (seq > c->best_seq) {
        free(c->best);
        c->best = xmalloc(bytes.n);
        memcpy(c->best, bytes.p, bytes.n);
        c->best_len = bytes.n;
        c->best_seq = seq;
    }
    return 0;
}

/* Finds the alert record ref names, within [since, until). *out gets its bytes (caller
 * frees), *nrecords the records of its incident or fingerprint. Returns 1 found, 0 not,
 * or negative with eb. */
static int find_alert(const char *dir, int64_t since, int64_t until, const struct alert_ref *ref,
                      uint8_t **out, size_t *len, uint64_t *nrecords, struct errbuf *eb)
{
    static const struct span texts[] = { { (const uint8_t *)"vigild", 6 },
                                         { (const uint8_t *)"alert", 5 } };
    struct store_need need = { NULL, 0, texts, VG_ARRAY_LEN(texts) };
    struct scan_par *par = NULL;
    int rc = scan_par_open(dir, since, until, &need, &par, NULL, eb);

    if (rc < 0) {
        return rc;
    }
    unsigned nt = scan_par_threads(par);
    struct find_ctx *cs = xcalloc(nt, sizeof(*cs));
    void **args = xcalloc(nt, sizeof(*args));
    for (unsigned i = 0; i < nt; i++) {
        cs[i].ref = ref;
        errbuf_clear(&cs[i].eb);
        args[i] = &cs[i];
    }
    rc = scan_par_run(par, on_alert, args, NULL, eb);
    scan_par_close(par);
    struct find_ctx *best = NULL;
    *nrecords = 0;
    for (unsigned i = 0; i < nt; i++) {
        if (cs[i].bad && rc < 0) {
            errbuf_set(eb, "%s", errbuf_msg(&cs[i].eb));
        }
        *nrecords += cs[i].records;
        if (cs[i].best_seq && (!best || cs[i].best_seq > best->best_seq)) {
            best = &cs[i];
        }
    }
    if (rc == 0 && best) {
        *out = best->best;
        *len = best->best_len;
        best->best = NULL;
        rc = 1;
    }
    for (unsigned i = 0; i < nt; i++) {
        free(cs[i].best);
    }
    free(cs);
    free(args);
    return rc;
}

/* ---- the triggering events ---- */

struct seqset {
    uint64_t *v; /* ascending, unique */
    size_t n;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool seqset_has(const struct seqset *s, uint64_t q)
{
    size_t lo = 0;
    size_t hi = s->n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (s->v[m] == q) {
            return true;
        }
        if (s->v[m] < q) {
            lo = m + 1;
        } else {
            hi = m;
        }
    }
    return false;
}

/* raw.seqs of the alert, ascending and unique. */
static void seqs_read(const struct rec *r, struct seqset *out)
{
    struct span v = raw_get(r, "seqs");
    struct span in = v;
    struct mp_obj o;

    out->v = NULL;
    out->n = 0;
    if (!v.p || mp_read(&in, &o) != 1 || o.type != MP_ARRAY) {
        return;
    }
    out->v = xcalloc(o.v.count ? o.v.count : 1, sizeof(*out->v));
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span el;
        int64_t s;
        if (mp_take(&in, &el) < 0) {
            break;
        }
        if (mp_get_i64(el, &s) && s > 0) {
            out->v[out->n++] = (uint64_t)s;
        }
    }
    qsort(out->v, out->n, sizeof(*out->v), cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (k == 0 || out->v[k - 1] != out->v[i]) {
            out->v[k++] = out->v[i];
        }
    }
    out->n = k;
}

struct found {
    struct scan_hit *v; /* by seq after collection */
    size_t n;
};

struct trig_ctx {
    const struct seqset *want;
    const struct found *have; /* found by earlier passes: skipped */
    struct scan_hit *v;
    size_t n, cap;
};

static bool found_has(const struct found *f, uint64_t seq)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->v[i].seq == seq) {
            return true;
        }
    }
    return false;
}

static int on_trigger(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct trig_ctx *c = arg;

    if (!seqset_has(c->want, seq) || found_has(c->have, seq)) {
        return 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].seq == seq) {
            return 0; /* a record two segments hold (cannot happen in one plan) */
        }
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = xrealloc(c->v, c->cap * sizeof(*c->v));
    }
    uint8_t *b = xmalloc(bytes.n);
    memcpy(b, bytes.p, bytes.n);
    c->v[c->n++] = (struct scan_hit){ ts, seq, b, bytes.n };
    return 0;
}

static void found_take(struct found *f, struct trig_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (found_has(f, c->v[i].seq)) {
            free(c->v[i].bytes);
            continue;
        }
        f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
        f->v[f->n++] = c->v[i];
    }
    free(c->v);
    c->v = NULL;
    c->n = c->cap = 0;
}

/* A pass over [since, until) with need (NULL: none), or, with from_seq, over the
 * records from that seq on. */
static int trig_pass(const char *dir, int64_t since, int64_t until, const struct store_need *need,
                     uint64_t from_seq, const struct seqset *want, struct found *f,
                     struct store_scan_stats *stats, struct errbuf *eb)
{
    int rc;

    if (from_seq) {
        struct store_reader *rd = NULL;
        struct trig_ctx c = { want, f, NULL, 0, 0 };
        if ((rc = store_reader_open(dir, &rd, eb)) < 0) {
            return rc;
        }
        rc = store_scan_from_seq(rd, from_seq, on_trigger, &c, stats);
        if (rc < 0) {
            errbuf_set(eb, "%s", store_reader_error(rd));
        }
        store_reader_close(rd);
        found_take(f, &c);
        return rc;
    }
    struct scan_par *par = NULL;
    if ((rc = scan_par_open(dir, since, until, need, &par, stats, eb)) < 0) {
        return rc;
    }
    unsigned nt = scan_par_threads(par);
    struct trig_ctx *cs = xcalloc(nt, sizeof(*cs));
    void **args = xcalloc(nt, sizeof(*args));
    for (unsigned i = 0; i < nt; i++) {
        cs[i] = (struct trig_ctx){ want, f, NULL, 0, 0 };
        args[i] = &cs[i];
    }
    rc = scan_par_run(par, on_trigger, args, stats, eb);
    scan_par_close(par);
    for (unsigned i = 0; i < nt; i++) {
        found_take(f, &cs[i]);
    }
    free(cs);
    free(args);
    return rc;
}

/* The identity fields the block index knows (segment.md 3.2.2). */
static bool indexed_field(struct span name)
{
    static const char *const names[] = { "host", "namespace", "pod",  "container_id", "image",
                                         "user", "src_ip",    "rule", "cve" };
    for (size_t i = 0; i < VG_ARRAY_LEN(names); i++) {
        if (span_eq_str(name, names[i])) {
            return true;
        }
    }
    return false;
}

#define EXPLAIN_MAX_NEED 16

/* The group's values of indexed fields, as what every triggering event needs. */
static size_t group_need(const struct rec *r, struct store_need_value *vals, char names[][16])
{
    struct span g = raw_get(r, "group");
    struct span in = g;
    struct mp_obj o;
    size_t n = 0;

    if (!g.p || mp_read(&in, &o) != 1 || o.type != MP_MAP) {
        return 0;
    }
    for (uint32_t i = 0; i < o.v.count && n < EXPLAIN_MAX_NEED; i++) {
        struct span k;
        struct span v;
        struct span ks;
        struct span vs;
        if (mp_take(&in, &k) < 0 || mp_take(&in, &v) < 0) {
            break;
        }
        if (!mp_get_str(k, &ks) || !mp_get_str(v, &vs) || vs.n == 0 || ks.n >= 16 ||
            !indexed_field(ks)) {
            continue;
        }
        memcpy(names[n], ks.p, ks.n);
        names[n][ks.n] = 0;
        vals[n] = (struct store_need_value){ names[n], vs };
        n++;
    }
    return n;
}

static int cmp_hit(const void *a, const void *b)
{
    const struct scan_hit *x = a;
    const struct scan_hit *y = b;
    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The triggering events of alert r into f, in (ts, seq) order; *passes says how many
 * scans it took (1: through the index alone). */
static int find_triggers(const char *dir, const struct rec *r, const struct seqset *want,
                         struct found *f, unsigned *passes, struct store_scan_stats *stats,
                         struct errbuf *eb)
{
    int64_t first = INT64_MIN;
    int64_t last = INT64_MAX - 1;
    struct store_need_value vals[EXPLAIN_MAX_NEED];
    char names[EXPLAIN_MAX_NEED][16];
    int rc = 0;

    *passes = 0;
    if (want->n == 0) {
        return 0;
    }
    (void)raw_i64(r, "first_seen", &first);
    (void)raw_i64(r, "last_seen", &last);
    if (last < first || last == INT64_MAX) {
        first = INT64_MIN;
        last = INT64_MAX - 1;
    }
    struct store_need need = { vals, group_need(r, vals, names), NULL, 0 };
    (*passes)++;
    rc = trig_pass(dir, first, last + 1, &need, 0, want, f, stats, eb);
    if (rc == 0 && f->n < want->n && need.nvalues > 0) {
        (*passes)++;
        rc = trig_pass(dir, first, last + 1, NULL, 0, want, f, stats, eb);
    }
    if (rc == 0 && f->n < want->n) {
        uint64_t lowest = 0;
        for (size_t i = 0; i < want->n && !lowest; i++) {
            if (!found_has(f, want->v[i])) {
                lowest = want->v[i];
            }
        }
        (*passes)++;
        rc = trig_pass(dir, 0, 0, NULL, lowest, want, f, stats, eb);
    }
    if (f->n > 1) {
        qsort(f->v, f->n, sizeof(*f->v), cmp_hit);
    }
    return rc;
}

/* ---- the rule ---- */

/* Prints the YAML document of file that starts at line (1-based), up to the next
 * document separator, each line behind prefix; to b as one JSON string when json. */
static int rule_doc(const char *file, unsigned line, const char *prefix, struct buf *b, bool json)
{
    FILE *f = fopen(file, "r");
    char l[1024];
    unsigned no = 0;
    unsigned shown = 0;
    struct buf text;
    int rc = 0;

    if (!f) {
        return -errno;
    }
    buf_init(&text, 1 << 20);
    while (fgets(l, sizeof(l), f) && shown < EXPLAIN_DOC_LINES && rc == 0) {
        if (++no < line) {
            continue;
        }
        if (no > line && strncmp(l, "---", 3) == 0) {
            break;
        }
        rc = json ? buf_append_str(&text, l) : buf_appendf(&text, "%s%s", prefix, l);
        shown++;
    }
    fclose(f);
    if (rc == 0 && text.len && !json && text.data[text.len - 1] != '\n') {
        rc = buf_append_byte(&text, '\n');
    }
    if (rc == 0) {
        rc = json ? json_append_str(b, (struct span){ text.data, text.len })
                  : buf_append(b, text.data, text.len);
    }
    buf_release(&text);
    return rc;
}

struct rule_found {
    struct ruleset *rs;
    long idx; /* -1: not found */
    char paths[512];
};

/* Loads the rules (--rules, else rules.paths) and finds the alert's rule. Problems
 * loading are said on stderr; the explanation goes on without the rule. */
static void rule_find(const struct cli_args *a, const struct rec *r, struct rule_found *out)
{
    const struct explain_opts *eo = a->own;
    const char *paths[CLI_LIST_MAX];
    size_t n = 0;
    struct rules_options opt = { NULL };
    struct rules_report rep;
    struct errbuf eb;

    out->rs = NULL;
    out->idx = -1;
    out->paths[0] = 0;
    for (size_t i = 0; i < eo->rules.n; i++) {
        paths[n++] = eo->rules.v[i];
    }
    for (size_t i = 0; n == 0 && i < a->cfg->rules.npaths && i < CLI_LIST_MAX; i++) {
        paths[i] = a->cfg->rules.paths[i];
        if (i + 1 == a->cfg->rules.npaths || i + 1 == CLI_LIST_MAX) {
            n = i + 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(out->paths);
        snprintf(out->paths + l, sizeof(out->paths) - l, "%s%s", i ? ", " : "", paths[i]);
    }
    if (n == 0) {
        return;
    }
    rules_report_init(&rep);
    errbuf_clear(&eb);
    if (rules_load(paths, n, &opt, &out->rs, &rep, &eb) < 0) {
        fprintf(stderr, "vigil explain: cannot load the rules: %s\n", errbuf_msg(&eb));
        rules_report_release(&rep);
        return;
    }
    rules_report_release(&rep);
    char key[256];
    struct span id = raw_str(r, "rule_id");
    if (id.n && id.n < sizeof(key)) {
        memcpy(key, id.p, id.n);
        key[id.n] = 0;
        out->idx = ruleset_find(out->rs, key);
    }
}

static void fmt_duration(int64_t ns, char *out, size_t cap)
{
    int64_t s = ns / VG_NS_PER_SEC;
    if (ns % VG_NS_PER_SEC != 0 || s == 0) {
        snprintf(out, cap, "%.3fs", (double)ns / 1e9);
    } else if (s % 3600 == 0) {
        snprintf(out, cap, "%" PRId64 "h", s / 3600);
    } else if (s % 60 == 0) {
        snprintf(out, cap, "%" PRId64 "m", s / 60);
    } else {
        snprintf(out, cap, "%" PRId64 "s", s);
    }
}

/* "count >= 6", "5 <= count <= 9", "-" */
static void fmt_threshold(const struct rules_rule_info *in, char *out, size_t cap)
{
    const char *what = in->type == RULES_VALUE_COUNT   ? "distinct values"
                       : in->type == RULES_EVENT_COUNT ? "events"
                                                       : "rules seen";
    if (in->type == RULES_DETECTION) {
        snprintf(out, cap, "each matching event");
    } else if (in->count_hi == INT64_MAX) {
        snprintf(out, cap, "%s >= %" PRId64, what, in->count_lo);
    } else if (in->count_lo == 0) {
        snprintf(out, cap, "%s <= %" PRId64, what, in->count_hi);
    } else {
        snprintf(out, cap, "%" PRId64 " <= %s <= %" PRId64, in->count_lo, what, in->count_hi);
    }
}

/* ---- output ---- */

static void print_time(FILE *f, const char *label, const struct rec *r, const char *path)
{
    int64_t v;
    char t[40];

    if (raw_i64(r, path, &v)) {
        vg_time_format(v, 3, t, sizeof(t));
        fprintf(f, "  %-12s %s\n", label, t);
    }
}

/* A span of alert text on one line, control characters shown as spaces. */
static void put_text(FILE *f, struct span s)
{
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = s.p[i];
        fputc(c < 0x20 || c == 0x7f ? ' ' : c, f);
    }
}

static void print_group(FILE *f, const struct rec *r)
{
    struct span g = raw_get(r, "group");
    struct span in = g;
    struct mp_obj o;

    fprintf(f, "  %-12s", "group");
    if (!g.p || mp_read(&in, &o) != 1 || o.type != MP_MAP || o.v.count == 0) {
        fprintf(f, " -\n");
        return;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span k;
        struct span v;
        struct span ks = { NULL, 0 };
        struct span vs = { NULL, 0 };
        if (mp_take(&in, &k) < 0 || mp_take(&in, &v) < 0) {
            break;
        }
        (void)mp_get_str(k, &ks);
        (void)mp_get_str(v, &vs);
        fputc(' ', f);
        put_text(f, ks);
        fputc('=', f);
        put_text(f, vs);
    }
    fputc('\n', f);
}

static void print_rule_info(FILE *f, const struct ruleset *rs, size_t i)
{
    struct rules_rule_info in;
    char span[32] = "";
    char thr[96];

    ruleset_rule_info(rs, i, &in);
    fmt_threshold(&in, thr, sizeof(thr));
    fprintf(f, "  %-12s %s", "type", rules_type_name(in.type));
    if (in.type != RULES_DETECTION) {
        fmt_duration(in.timespan_ns, span, sizeof(span));
        fprintf(f, " over %s", span);
    } else {
        fprintf(f, " on %s", in.logsource);
    }
    if (in.ngroup) {
        fprintf(f, ", grouped by");
        for (size_t k = 0; k < in.ngroup; k++) {
            fprintf(f, "%s %s", k ? "," : "", in.group_by[k]);
        }
    }
    fprintf(f, "; fires on %s", thr);
    if (in.value_field[0]) {
        fprintf(f, " of %s", in.value_field);
    }
    fprintf(f, "\n  %-12s %s:%u\n", "file", in.file, in.line);
}

static void print_doc(FILE *f, const struct ruleset *rs, size_t i, const char *what)
{
    struct rules_rule_info in;
    struct buf b;

    ruleset_rule_info(rs, i, &in);
    buf_init(&b, 1 << 20);
    fprintf(f, "\n%s (%s:%u):\n", what, in.file, in.line);
    if (rule_doc(in.file, in.line, "  | ", &b, false) < 0) {
        fprintf(f, "  (cannot read %s)\n", in.file);
    } else {
        fwrite(b.data, 1, b.len, f);
    }
    buf_release(&b);
}

static int print_table(const struct rec *alert, uint64_t nrecords, const struct rule_found *rf,
                       const struct seqset *want, const struct found *fd, uint64_t seqs_total,
                       struct out *o, FILE *f)
{
    char t[40];

    vg_time_format(alert->ts, 3, t, sizeof(t));
    fprintf(f, "alert seq %" PRIu64 " at %s: ", alert->seq, t);
    put_text(f, raw_str(alert, "state"));
    fprintf(f, "%s\n", nrecords > 1 ? " (the incident's latest record)" : "");
    fprintf(f, "  %-12s ", "rule");
    put_text(f, alert->str[VG_F_RULE]);
    fprintf(f, "\n  %-12s ", "rule id");
    put_text(f, raw_str(alert, "rule_id"));
    fprintf(f, ", level ");
    put_text(f, raw_str(alert, "level"));
    fprintf(f, ", severity ");
    put_text(f, alert->str[VG_F_SEVERITY]);
    fputc('\n', f);
    if (rf->rs && rf->idx >= 0) {
        print_rule_info(f, rf->rs, (size_t)rf->idx);
    } else {
        fprintf(f, "  %-12s ", "type");
        put_text(f, raw_str(alert, "type"));
        fprintf(f, "\n  %-12s %s\n", "file",
                rf->paths[0] ? "not among the rules loaded from there (renamed or removed?)"
                             : "no rules at hand: give --rules PATH or -c vigil.yaml");
        if (rf->paths[0]) {
            fprintf(f, "  %-12s %s\n", "rules", rf->paths);
        }
    }
    fprintf(f, "  %-12s ", "fingerprint");
    put_text(f, raw_str(alert, "fingerprint"));
    fprintf(f, "\n  %-12s ", "incident");
    put_text(f, raw_str(alert, "incident"));
    fputc('\n', f);
    print_group(f, alert);
    int64_t count = 0;
    (void)raw_i64(alert, "count", &count);
    fprintf(f, "  %-12s %" PRId64 " (%" PRIu64 " triggering events, %zu listed)\n", "count", count,
            seqs_total, want->n);
    print_time(f, "first seen", alert, "first_seen");
    print_time(f, "last seen", alert, "last_seen");
    print_time(f, "window from", alert, "window.start");
    print_time(f, "window to", alert, "window.end");
    if (alert->str[VG_F_MESSAGE].p) {
        fprintf(f, "  %-12s ", "message");
        put_text(f, alert->str[VG_F_MESSAGE]);
        fputc('\n', f);
    }
    if (rf->rs && rf->idx >= 0) {
        struct rules_rule_info in;
        print_doc(f, rf->rs, (size_t)rf->idx, "the rule as written");
        ruleset_rule_info(rf->rs, (size_t)rf->idx, &in);
        for (size_t k = 0; k < in.nrefs; k++) {
            size_t ref = ruleset_rule_ref(rf->rs, (size_t)rf->idx, k);
            struct rules_rule_info ri;
            char what[300];
            ruleset_rule_info(rf->rs, ref, &ri);
            snprintf(what, sizeof(what), "which counts the matches of '%s'",
                     ri.name[0] ? ri.name
                     : ri.id[0] ? ri.id
                                : ri.title);
            print_doc(f, rf->rs, ref, what);
        }
    }
    fprintf(f, "\ntriggering events (%zu of the %zu listed found", fd->n, want->n);
    if (fd->n < want->n) {
        fprintf(f, "; not in the store:");
        for (size_t i = 0; i < want->n; i++) {
            if (!found_has(fd, want->v[i])) {
                fprintf(f, " %" PRIu64, want->v[i]);
            }
        }
    }
    fprintf(f, "):\n");
    int rc = 0;
    for (size_t i = 0; i < fd->n && rc == 0; i++) {
        struct span cur = { fd->v[i].bytes, fd->v[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) == 0) {
            rc = out_event(o, &r);
            rc = rc == VG_ECORRUPT ? 0 : rc;
        }
    }
    return rc;
}

static int json_rule(struct buf *b, const struct ruleset *rs, size_t i, bool refs)
{
    struct rules_rule_info in;
    char span[32];
    char thr[96];
    int rc;

    ruleset_rule_info(rs, i, &in);
    fmt_duration(in.timespan_ns, span, sizeof(span));
    fmt_threshold(&in, thr, sizeof(thr));
    rc = buf_append_str(b, "{\"id\":");
    rc = rc ? rc : json_append_str(b, span_str(in.id));
    rc = rc ? rc : buf_append_str(b, ",\"name\":");
    rc = rc ? rc : json_append_str(b, span_str(in.name));
    rc = rc ? rc : buf_append_str(b, ",\"title\":");
    rc = rc ? rc : json_append_str(b, span_str(in.title));
    rc = rc ? rc : buf_append_str(b, ",\"level\":");
    rc = rc ? rc : json_append_str(b, span_str(in.level));
    rc = rc ? rc : buf_appendf(b, ",\"type\":\"%s\",\"file\":", rules_type_name(in.type));
    rc = rc ? rc : json_append_str(b, span_str(in.file));
    rc = rc ? rc : buf_appendf(b, ",\"line\":%u,\"timespan\":", in.line);
    rc = rc ? rc
            : (in.type == RULES_DETECTION ? buf_append_str(b, "null")
                                          : buf_appendf(b, "\"%s\"", span));
    rc = rc ? rc : buf_append_str(b, ",\"threshold\":");
    rc = rc ? rc : json_append_str(b, span_str(thr));
    rc = rc ? rc : buf_append_str(b, ",\"group_by\":[");
    for (size_t k = 0; k < in.ngroup && rc == 0; k++) {
        rc = k ? buf_append_byte(b, ',') : 0;
        rc = rc ? rc : json_append_str(b, span_str(in.group_by[k]));
    }
    rc = rc ? rc : buf_append_str(b, "],\"text\":");
    if (rc == 0 && rule_doc(in.file, in.line, "", b, true) < 0) {
        rc = buf_append_str(b, "null");
    }
    if (refs) {
        rc = rc ? rc : buf_append_str(b, ",\"refers_to\":[");
        for (size_t k = 0; k < in.nrefs && rc == 0; k++) {
            rc = k ? buf_append_byte(b, ',') : 0;
            rc = rc ? rc : json_rule(b, rs, ruleset_rule_ref(rs, i, k), false);
        }
        rc = rc ? rc : buf_append_byte(b, ']');
    }
    return rc ? rc : buf_append_byte(b, '}');
}

static int print_json(const struct rec *alert, uint64_t nrecords, const struct rule_found *rf,
                      const struct seqset *want, const struct found *fd, FILE *f)
{
    struct buf b;
    int rc;

    buf_init(&b, (size_t)256 << 20);
    rc = buf_append_str(&b, "{\"alert\":");
    rc = rc ? rc : out_event_json(&b, alert);
    rc = rc ? rc : buf_appendf(&b, ",\"records\":%" PRIu64 ",\"rule\":", nrecords);
    if (rc == 0) {
        rc = rf->rs && rf->idx >= 0 ? json_rule(&b, rf->rs, (size_t)rf->idx, true)
                                    : buf_append_str(&b, "null");
    }
    rc = rc ? rc : buf_append_str(&b, ",\"group\":");
    if (rc == 0) {
        struct span g = raw_get(alert, "group");
        rc = g.p ? mp_to_json(g, &b) : buf_append_str(&b, "{}");
    }
    rc = rc ? rc : buf_append_str(&b, ",\"events\":[");
    for (size_t i = 0; i < fd->n && rc == 0; i++) {
        struct span cur = { fd->v[i].bytes, fd->v[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) < 0) {
            continue;
        }
        rc = buf_append_str(&b, i ? ",\n" : "\n");
        rc = rc ? rc : out_event_json(&b, &r);
    }
    rc = rc ? rc : buf_append_str(&b, "],\"missing\":[");
    bool first = true;
    for (size_t i = 0; i < want->n && rc == 0; i++) {
        if (!found_has(fd, want->v[i])) {
            rc = buf_appendf(&b, "%s%" PRIu64, first ? "" : ",", want->v[i]);
            first = false;
        }
    }
    rc = rc ? rc : buf_append_str(&b, "]}\n");
    errno = 0;
    if (rc == 0 && (fwrite(b.data, 1, b.len, f) != b.len || fflush(f) != 0)) {
        rc = errno ? -errno : -EIO;
    }
    buf_release(&b);
    return rc;
}

static int explain_run(struct cli_args *a)
{
    struct alert_ref ref;
    struct errbuf eb;
    uint8_t *bytes = NULL;
    size_t len = 0;
    uint64_t nrecords = 0;
    int rc;

    if (a->nwords != 1) {
        fprintf(stderr, "vigil explain: give one alert: its seq, fingerprint or incident id\n");
        explain_usage(stderr);
        return CLI_USAGE;
    }
    if ((rc = ref_parse(a->words[0], &ref)) != CLI_OK) {
        return rc;
    }
    if ((rc = cli_load(a)) != CLI_OK) {
        return rc;
    }
    const char *dir = cli_store_dir(a);
    errbuf_clear(&eb);
    rc = find_alert(dir, a->since, a->until, &ref, &bytes, &len, &nrecords, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil explain: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    if (rc == 0) {
        fprintf(stderr, "vigil explain: no alert record with %s %s in the store%s\n",
                ref.kind == REF_SEQ        ? "seq"
                : ref.kind == REF_INCIDENT ? "incident"
                                           : "fingerprint",
                a->words[0], a->since_arg || a->until_arg ? " in that window" : "");
        return CLI_FAIL;
    }
    struct rec alert;
    struct span cur = { bytes, len };
    if (rec_decode(&cur, &alert) < 0) {
        fprintf(stderr, "vigil explain: the alert record does not decode (run vigil verify)\n");
        free(bytes);
        return CLI_FAIL;
    }
    struct seqset want;
    struct found fd = { NULL, 0 };
    struct store_scan_stats stats;
    unsigned passes = 0;
    memset(&stats, 0, sizeof(stats));
    seqs_read(&alert, &want);
    rc = find_triggers(dir, &alert, &want, &fd, &passes, &stats, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil explain: reading the triggering events: %s\n", errbuf_msg(&eb));
        rc = CLI_FAIL;
        goto out;
    }
    int64_t total = (int64_t)want.n;
    (void)raw_i64(&alert, "seqs_total", &total);
    struct rule_found rf;
    rule_find(a, &alert, &rf);
    if (a->format == OUT_JSON) {
        rc = print_json(&alert, nrecords, &rf, &want, &fd, stdout);
    } else {
        struct out *o = out_new(a->format, stdout, cli_terminal_width());
        if (a->format == OUT_TABLE) {
            rc = print_table(&alert, nrecords, &rf, &want, &fd, (uint64_t)total, o, stdout);
        } else {
            rc = out_event(o, &alert);
            for (size_t i = 0; i < fd.n && rc >= 0; i++) {
                struct span c = { fd.v[i].bytes, fd.v[i].len };
                struct rec r;
                if (rec_decode(&c, &r) == 0) {
                    rc = out_event(o, &r);
                }
            }
        }
        int frc = out_finish(o);
        rc = rc < 0 ? rc : frc;
        out_free(o);
    }
    if (a->format == OUT_TABLE) {
        fprintf(stderr,
                "explain: triggering events read in %u pass%s (1: through the block index "
                "alone); blocks read %" PRIu64 ", skipped by time %" PRIu64
                ", skipped by index %" PRIu64 "\n",
                passes, passes == 1 ? "" : "es", stats.blocks_read, stats.blocks_skipped,
                stats.blocks_skipped_index);
    }
    ruleset_free(rf.rs);
    rc = cli_output_done("vigil explain", rc);
out:
    for (size_t i = 0; i < fd.n; i++) {
        free(fd.v[i].bytes);
    }
    free(fd.v);
    free(want.v);
    free(bytes);
    return rc;
}

const struct cli_cmd cmd_explain = {
    .name = "explain",
    .synopsis = "ALERT [--rules PATH]   (why an alert fired: the rule, the triggering events)",
    .takes = CLI_STORE | CLI_TIME | CLI_FORMAT,
    .opts = explain_opts,
    .own_size = sizeof(struct explain_opts),
    .usage = explain_usage,
    .run = explain_run,
};
