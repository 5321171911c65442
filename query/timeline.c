/* query/timeline.c: `vigil timeline ENTITY [--since T] [--until T] [--format F]`
 * (DESIGN.md "Query CLI"; issue 13 item 1): every event touching one entity across all
 * sources, and the alerts about it, in event-time order, grouped by minute with the
 * quiet gaps shown, then the related entities.
 *
 * ENTITY is field=value for pod, container_id (container), image, user, src_ip (ip) or
 * host, a bare value (matched against all six), or DESIGN.md's --pod P, --container C,
 * --user U, --ip A, --host H (and --image I).
 *
 * Reading: one planned scan per (field, value) the entity names, each given that value
 * as what every match needs, so the block index (segment.md 3.2) skips the blocks that
 * cannot hold it: a pod's timeline reads the few blocks that name the pod. The hits of
 * the scans are merged and made unique by seq. Alert records (kind=alert) carry the
 * identity fields of their incident, so those naming the entity are among the hits;
 * then one more scan over the window reads the alert records (what every alert has: the
 * collector's agent "vigild" and the word "alert", for the index) and adds those whose
 * triggering seqs (raw.seqs, schemas/alert.md) include an event of the timeline: a brute
 * force grouped by src_ip is about the user whose logins it counted.
 *
 * Order is (ts, seq), whatever order the events arrived in. Single-threaded apart from
 * the scan stripes (scan.h), which keep their hits apart until merged here. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ip.h"
#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/cli.h"
#include "query/output.h"
#include "query/scan.h"
#include "schemas/raw_path.h"

#define TL_MINUTE_NS (60 * VG_NS_PER_SEC)
#define TL_TOP       10 /* related values listed per field (table) */

static void timeline_usage(FILE *f)
{
    fprintf(
        f, "usage: vigil timeline ENTITY [--since T] [--until T] [--format table|json|ndjson|csv]\n"
           "                      [--explain] [-c FILE | --store DIR]\n"
           "       vigil timeline --pod P | --container C | --image I | --user U | --ip A |\n"
           "                      --host H  [--since T] [--until T] ...\n"
           "\n"
           "ENTITY: pod=P, container_id=C (container=), image=I, user=U, src_ip=A (ip=),\n"
           "        host=H, or a bare value matched against all of these.\n"
           "Every event touching the entity across all sources, and the alerts about it (those\n"
           "naming it, and those an event of the timeline triggered), in event-time order:\n"
           "grouped by minute with quiet gaps shown, then the related entities (the addresses\n"
           "a user came from, the pods an image ran in, the users who exec'd into a pod...).\n"
           "json: one object {entity, since, until, events, alerts, related}; ndjson and csv:\n"
           "the events only. T: RFC 3339 or relative (15m, 2h, 7d).\n"
           "--explain: on stderr, the scans made and the blocks read and skipped.\n");
}

struct timeline_opts {
    const char *pod;
    const char *container;
    const char *image;
    const char *user;
    const char *ip;
    const char *host;
    bool explain;
};

static const struct cli_opt timeline_opts[] = {
    { "--pod", NULL, CLI_STR, CLI_OFF(struct timeline_opts, pod), 0, 0 },
    { "--container", NULL, CLI_STR, CLI_OFF(struct timeline_opts, container), 0, 0 },
    { "--image", NULL, CLI_STR, CLI_OFF(struct timeline_opts, image), 0, 0 },
    { "--user", NULL, CLI_STR, CLI_OFF(struct timeline_opts, user), 0, 0 },
    { "--ip", NULL, CLI_STR, CLI_OFF(struct timeline_opts, ip), 0, 0 },
    { "--host", NULL, CLI_STR, CLI_OFF(struct timeline_opts, host), 0, 0 },
    { "--explain", NULL, CLI_FLAG, CLI_OFF(struct timeline_opts, explain), 0, 0 },
    { NULL },
};

/* The entity fields, in the order a bare value tries them and related lists them. */
static const enum vg_field tl_fields[] = { VG_F_POD,  VG_F_CONTAINER_ID, VG_F_IMAGE,
                                           VG_F_USER, VG_F_SRC_IP,       VG_F_HOST };
#define TL_NFIELDS (sizeof(tl_fields) / sizeof(tl_fields[0]))

/* One (field, value) the entity matches. */
struct tl_pair {
    enum vg_field field;
    struct span value; /* points into argv */
    bool is_ip;        /* src_ip with an address value: compared as addresses */
    uint8_t ip[16];
};

struct tl_entity {
    struct tl_pair p[TL_NFIELDS];
    size_t n;
    bool bare;
    const char *value;
};

static bool pair_match(const struct tl_pair *p, const struct rec *r)
{
    struct span v = r->str[p->field];
    uint8_t ip[16];

    if (!v.p) {
        return false;
    }
    if (p->is_ip) {
        return ip_parse16(v, ip, NULL) ? memcmp(ip, p->ip, 16) == 0 : span_eq(v, p->value);
    }
    return span_eq(v, p->value);
}

static bool entity_match(const struct tl_entity *e, const struct rec *r)
{
    for (size_t i = 0; i < e->n; i++) {
        if (pair_match(&e->p[i], r)) {
            return true;
        }
    }
    return false;
}

static void entity_add(struct tl_entity *e, enum vg_field f, const char *value)
{
    struct tl_pair *p = &e->p[e->n++];

    p->field = f;
    p->value = span_str(value);
    p->is_ip = f == VG_F_SRC_IP && ip_parse16(p->value, p->ip, NULL);
}

/* The field a word's name or an option names, or -1. */
static int entity_field(struct span name)
{
    if (span_eq_str(name, "container")) {
        return VG_F_CONTAINER_ID;
    }
    if (span_eq_str(name, "ip")) {
        return VG_F_SRC_IP;
    }
    for (size_t i = 0; i < TL_NFIELDS; i++) {
        if (span_eq_str(name, vg_field_name(tl_fields[i]))) {
            return (int)tl_fields[i];
        }
    }
    return -1;
}

/* Reads the entity from the words and the options. Returns CLI_OK or CLI_USAGE (said). */
static int entity_parse(const struct cli_args *a, struct tl_entity *e)
{
    const struct timeline_opts *o = a->own;
    const struct {
        const char *v;
        enum vg_field f;
    } opt[] = {
        { o->pod, VG_F_POD },     { o->container, VG_F_CONTAINER_ID },
        { o->image, VG_F_IMAGE }, { o->user, VG_F_USER },
        { o->ip, VG_F_SRC_IP },   { o->host, VG_F_HOST },
    };
    size_t given = (size_t)a->nwords;

    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < VG_ARRAY_LEN(opt); i++) {
        given += opt[i].v != NULL;
    }
    if (given != 1) {
        fprintf(stderr,
                "vigil timeline: %s: give one entity: pod=P, container_id=C, image=I, user=U, "
                "src_ip=A, host=H, a bare value, or --pod/--container/--image/--user/--ip/--host\n",
                given == 0 ? "no entity" : "more than one entity");
        return CLI_USAGE;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(opt); i++) {
        if (opt[i].v) {
            e->value = opt[i].v;
            entity_add(e, opt[i].f, opt[i].v);
        }
    }
    if (a->nwords == 1) {
        const char *w = a->words[0];
        const char *eq = strchr(w, '=');
        if (eq) {
            int f = entity_field((struct span){ (const uint8_t *)w, (size_t)(eq - w) });
            if (f < 0) {
                fprintf(stderr,
                        "vigil timeline: '%.*s' is not an entity field: pod, container_id, image, "
                        "user, src_ip or host\n",
                        (int)(eq - w), w);
                return CLI_USAGE;
            }
            e->value = eq + 1;
            entity_add(e, (enum vg_field)f, eq + 1);
        } else {
            e->value = w;
            e->bare = true;
            for (size_t i = 0; i < TL_NFIELDS; i++) {
                entity_add(e, tl_fields[i], w);
            }
        }
    }
    if (*e->value == 0) {
        fprintf(stderr, "vigil timeline: the entity's value is empty\n");
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* ---- scanning ---- */

struct tl_hits {
    struct scan_hit *v; /* owned, with their bytes */
    size_t n, cap;
};

static void hits_add(struct tl_hits *h, int64_t ts, uint64_t seq, struct span rec)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
    }
    uint8_t *b = xmalloc(rec.n);
    memcpy(b, rec.p, rec.n);
    h->v[h->n++] = (struct scan_hit){ ts, seq, b, rec.n };
}

static void hits_release(struct tl_hits *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->v[i].bytes);
    }
    free(h->v);
    memset(h, 0, sizeof(*h));
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

/* Sorts by (ts, seq) and drops repeated seqs (a record two scans found). */
static void hits_sort_unique(struct tl_hits *h)
{
    if (h->n > 1) {
        qsort(h->v, h->n, sizeof(*h->v), cmp_hit);
    }
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (k > 0 && h->v[k - 1].seq == h->v[i].seq) {
            free(h->v[i].bytes);
            continue;
        }
        h->v[k++] = h->v[i];
    }
    h->n = k;
}

struct tl_progress {
    bool on;          /* stderr is a terminal: the scans draw the shared progress line */
    bool interrupted; /* Ctrl-C stopped a scan: what was found so far is printed */
};

/* One stripe of one scan. */
struct tl_stripe {
    const struct tl_entity *e;
    const uint64_t *seqs; /* alert pass: the timeline's seqs, ascending; else NULL */
    size_t nseqs;
    struct tl_hits hits;
    struct tl_progress *pg;
    int bad;
    struct errbuf eb;
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool seq_in(const uint64_t *v, size_t n, uint64_t s)
{
    size_t lo = 0;
    size_t hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (v[m] == s) {
            return true;
        }
        if (v[m] < s) {
            lo = m + 1;
        } else {
            hi = m;
        }
    }
    return false;
}

struct seqs_visit {
    const uint64_t *v;
    size_t n;
    bool hit;
};

static bool on_seqs(struct span value, int depth, void *arg)
{
    struct seqs_visit *sv = arg;
    struct span in = value;
    struct mp_obj o;

    (void)depth;
    if (mp_read(&in, &o) != 1 || o.type != MP_ARRAY) {
        return false;
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span el;
        int64_t s;
        if (mp_take(&in, &el) < 0) {
            return false;
        }
        if (mp_get_i64(el, &s) && s > 0 && seq_in(sv->v, sv->n, (uint64_t)s)) {
            sv->hit = true;
            return true;
        }
    }
    return false;
}

/* Whether alert record r lists one of the seqs among its triggering events. */
static bool alert_triggered_by(const struct rec *r, const uint64_t *seqs, size_t n)
{
    struct seqs_visit sv = { seqs, n, false };

    if (!r->raw.n) {
        return false;
    }
    (void)raw_path_walk(r->raw, SPAN_LIT("seqs"), 0, on_seqs, &sv);
    return sv.hit;
}

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct tl_stripe *s = arg;
    struct rec r;

    if ((s->bad = scan_rec_decode(bytes, seq, &r, &s->eb)) < 0) {
        return s->bad;
    }
    if (!s->seqs) {
        if (entity_match(s->e, &r)) {
            hits_add(&s->hits, ts, seq, bytes);
        }
        return 0;
    }
    if (span_eq_str(r.str[VG_F_KIND], "alert") && !seq_in(s->seqs, s->nseqs, seq) &&
        alert_triggered_by(&r, s->seqs, s->nseqs)) {
        hits_add(&s->hits, ts, seq, bytes);
    }
    return 0;
}

/* One planned scan of [since, until) with need, its stripes' hits added to out.
 * Returns 0 or negative with eb set. */
static int tl_scan(const char *dir, int64_t since, int64_t until, const struct store_need *need,
                   const struct tl_entity *e, const uint64_t *seqs, size_t nseqs,
                   struct tl_progress *pg, struct tl_hits *out, struct store_scan_stats *stats,
                   struct errbuf *eb)
{
    struct scan_par *par = NULL;
    int rc = scan_par_open(dir, since, until, need, &par, stats, eb);

    if (rc < 0) {
        return rc;
    }
    unsigned nt = scan_par_threads(par);
    struct tl_stripe *ss = xcalloc(nt, sizeof(*ss));
    void **args = xcalloc(nt, sizeof(*args));
    for (unsigned i = 0; i < nt; i++) {
        ss[i] = (struct tl_stripe){ .e = e, .seqs = seqs, .nseqs = nseqs, .pg = pg };
        errbuf_clear(&ss[i].eb);
        args[i] = &ss[i];
    }
    /* The shared progress line (blocks, matches, rate, ETA) on a terminal, and Ctrl-C. */
    scan_par_watch(par, (pg->on ? SCAN_PROGRESS : 0) | SCAN_INTERRUPTIBLE, "timeline");
    rc = scan_par_run(par, on_rec, args, stats, eb);
    if (scan_par_interrupted(par)) {
        pg->interrupted = true;
    }
    scan_par_close(par);
    for (unsigned i = 0; i < nt; i++) {
        if (ss[i].bad && rc < 0) {
            errbuf_set(eb, "%s", errbuf_msg(&ss[i].eb)); /* a record that does not decode */
        }
        for (size_t k = 0; k < ss[i].hits.n; k++) {
            if (out->n == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 64;
                out->v = xrealloc(out->v, out->cap * sizeof(*out->v));
            }
            out->v[out->n++] = ss[i].hits.v[k];
        }
        free(ss[i].hits.v);
    }
    free(ss);
    free(args);
    return rc;
}

/* The timeline of e over [since, until) into *out (sorted by (ts, seq), unique);
 * *nalerts_by_seqs counts the alerts found through their triggering seqs. */
static int tl_collect(const char *dir, int64_t since, int64_t until, const struct tl_entity *e,
                      struct tl_progress *pg, struct tl_hits *out, struct store_scan_stats *stats,
                      struct errbuf *eb)
{
    int rc = 0;

    for (size_t i = 0; i < e->n && rc == 0 && !pg->interrupted; i++) {
        struct store_need_value nv = { vg_field_name(e->p[i].field), e->p[i].value };
        struct store_need need = { &nv, 1, NULL, 0 };
        rc = tl_scan(dir, since, until, &need, e, NULL, 0, pg, out, stats, eb);
    }
    if (rc < 0) {
        return rc;
    }
    hits_sort_unique(out);
    if (out->n == 0 || pg->interrupted) {
        return 0;
    }
    uint64_t *seqs = xmalloc(out->n * sizeof(*seqs));
    for (size_t i = 0; i < out->n; i++) {
        seqs[i] = out->v[i].seq;
    }
    qsort(seqs, out->n, sizeof(*seqs), cmp_u64);
    /* What every alert record has (schemas/alert.md: agent "vigild", kind "alert"). */
    static const struct span alert_texts[] = { { (const uint8_t *)"vigild", 6 },
                                               { (const uint8_t *)"alert", 5 } };
    struct store_need need = { NULL, 0, alert_texts, VG_ARRAY_LEN(alert_texts) };
    rc = tl_scan(dir, since, until, &need, e, seqs, out->n, pg, out, stats, eb);
    free(seqs);
    if (rc == 0) {
        hits_sort_unique(out);
    }
    return rc;
}

/* ---- related entities ---- */

/* The related fields, in the order they are listed. */
static const enum vg_field rel_fields[] = { VG_F_USER, VG_F_SRC_IP,       VG_F_HOST, VG_F_NAMESPACE,
                                            VG_F_POD,  VG_F_CONTAINER_ID, VG_F_IMAGE };
#define REL_EXEC  VG_F_COUNT       /* users who exec'd or attached into the pod */
#define REL_ALERT (VG_F_COUNT + 1) /* the alerts' rules */

struct rel_item {
    int key; /* a vg_field, REL_EXEC or REL_ALERT */
    struct span v;
    int64_t first, last;
};

struct rel_group {
    int key;
    struct span v;
    uint64_t count;
    int64_t first, last;
};

static int cmp_item(const void *a, const void *b)
{
    const struct rel_item *x = a;
    const struct rel_item *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    size_t n = x->v.n < y->v.n ? x->v.n : y->v.n;
    int c = n ? memcmp(x->v.p, y->v.p, n) : 0;
    return c ? c : (x->v.n > y->v.n) - (x->v.n < y->v.n);
}

static int cmp_group(const void *a, const void *b)
{
    const struct rel_group *x = a;
    const struct rel_group *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    return x->first < y->first ? -1 : x->first > y->first;
}

static bool is_exec(struct span object)
{
    return (object.n >= 5 && memcmp(object.p + object.n - 5, "/exec", 5) == 0) ||
           (object.n >= 7 && memcmp(object.p + object.n - 7, "/attach", 7) == 0);
}

struct related {
    struct rel_group *g; /* by key, then count descending */
    size_t n;
};

/* The values of the related fields among the hits (the entity's own value left out),
 * counted, with their first and last time. */
static void related_build(const struct tl_entity *e, const struct tl_hits *h, struct related *out)
{
    struct rel_item *items = NULL;
    size_t n = 0;
    size_t cap = 0;

    for (size_t i = 0; i < h->n; i++) {
        struct span cur = { h->v[i].bytes, h->v[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) < 0) {
            continue;
        }
        bool alert = span_eq_str(r.str[VG_F_KIND], "alert");
        for (size_t k = 0; k < VG_ARRAY_LEN(rel_fields) + 2; k++) {
            int key = k < VG_ARRAY_LEN(rel_fields)    ? (int)rel_fields[k]
                      : k == VG_ARRAY_LEN(rel_fields) ? REL_EXEC
                                                      : REL_ALERT;
            struct span v;
            if (key == REL_EXEC) {
                v = !alert && is_exec(r.str[VG_F_OBJECT]) ? r.str[VG_F_USER] : (struct span){ 0 };
            } else if (key == REL_ALERT) {
                v = alert ? r.str[VG_F_RULE] : (struct span){ 0 };
            } else {
                v = r.str[key];
                for (size_t p = 0; v.p && p < e->n; p++) {
                    if (e->p[p].field == (enum vg_field)key && pair_match(&e->p[p], &r)) {
                        v.p = NULL; /* the entity itself */
                    }
                }
            }
            if (!v.p) {
                continue;
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                items = xrealloc(items, cap * sizeof(*items));
            }
            items[n++] = (struct rel_item){ key, v, h->v[i].ts, h->v[i].ts };
        }
    }
    if (n > 1) {
        qsort(items, n, sizeof(*items), cmp_item);
    }
    out->g = n ? xmalloc(n * sizeof(*out->g)) : NULL;
    out->n = 0;
    for (size_t i = 0; i < n; i++) {
        struct rel_group *g = out->n ? &out->g[out->n - 1] : NULL;
        if (g && g->key == items[i].key && span_eq(g->v, items[i].v)) {
            g->count++;
            g->first = items[i].first < g->first ? items[i].first : g->first;
            g->last = items[i].last > g->last ? items[i].last : g->last;
            continue;
        }
        out->g[out->n++] =
            (struct rel_group){ items[i].key, items[i].v, 1, items[i].first, items[i].last };
    }
    if (out->n > 1) {
        qsort(out->g, out->n, sizeof(*out->g), cmp_group);
    }
    free(items);
}

/* What a related field means for this entity ("the addresses it came from"...). */
static const char *related_label(const struct tl_entity *e, int key)
{
    enum vg_field f = e->bare ? VG_F_COUNT : e->p[0].field;

    switch (key) {
    case REL_EXEC:
        return "exec/attach by";
    case REL_ALERT:
        return "alerts";
    case VG_F_SRC_IP:
        return f == VG_F_USER ? "came from" : "addresses";
    case VG_F_POD:
        return f == VG_F_IMAGE ? "ran in pods" : "pods";
    case VG_F_USER:
        return f == VG_F_SRC_IP ? "users from it" : "users";
    case VG_F_HOST:
        return "hosts";
    case VG_F_NAMESPACE:
        return "namespaces";
    case VG_F_CONTAINER_ID:
        return "containers";
    case VG_F_IMAGE:
        return "images";
    default:
        return vg_field_name((enum vg_field)key);
    }
}

static const char *related_json_key(int key)
{
    return key == REL_EXEC ? "exec_users" : key == REL_ALERT ? "alerts" : vg_field_name(key);
}

/* ---- output ---- */

static int64_t minute_of(int64_t ts)
{
    int64_t m = ts / TL_MINUTE_NS;
    return (ts % TL_MINUTE_NS < 0) ? m - 1 : m;
}

/* "2024-05-01 13:02" for the minute m. */
static void minute_text(int64_t m, char *out, size_t cap)
{
    char t[40];

    vg_time_format(m * TL_MINUTE_NS, 0, t, sizeof(t));
    if (strlen(t) >= 16) {
        t[10] = ' ';
        t[16] = 0;
    }
    snprintf(out, cap, "%s", t);
}

/* "14 min", "2 h 5 min", "3 d 4 h" for a quiet gap of m minutes. */
static void gap_text(int64_t m, char *out, size_t cap)
{
    if (m < 60) {
        snprintf(out, cap, "%" PRId64 " min", m);
    } else if (m < 24 * 60) {
        snprintf(out, cap, "%" PRId64 " h %" PRId64 " min", m / 60, m % 60);
    } else {
        snprintf(out, cap, "%" PRId64 " d %" PRId64 " h", m / (24 * 60), m % (24 * 60) / 60);
    }
}

static size_t count_alerts(const struct tl_hits *h)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        struct span cur = { h->v[i].bytes, h->v[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) == 0 && span_eq_str(r.str[VG_F_KIND], "alert")) {
            n++;
        }
    }
    return n;
}

static void entity_text(const struct tl_entity *e, char *out, size_t cap)
{
    if (e->bare) {
        snprintf(out, cap, "%s", e->value);
    } else {
        snprintf(out, cap, "%s=%s", vg_field_name(e->p[0].field), e->value);
    }
}

/* The table: minute headings, quiet gaps, the events, then the summary. */
static int print_table(const struct tl_entity *e, const struct tl_hits *h,
                       const struct related *rel, struct out *o)
{
    struct buf line;
    char t[64];
    char u[160];
    int64_t prev = 0;
    int rc = 0;

    buf_init(&line, 1 << 20);
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        struct span cur = { h->v[i].bytes, h->v[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) < 0) {
            continue;
        }
        int64_t m = minute_of(h->v[i].ts);
        if (i == 0 || m != prev) {
            if (i > 0 && m - prev > 1) {
                gap_text(m - prev - 1, t, sizeof(t));
                snprintf(u, sizeof(u), "   \xe2\x80\xa6 %s quiet \xe2\x80\xa6", t);
                rc = out_note(o, u);
            }
            minute_text(m, t, sizeof(t));
            snprintf(u, sizeof(u), "\xe2\x94\x80\xe2\x94\x80 %s UTC \xe2\x94\x80\xe2\x94\x80", t);
            if (rc == 0) {
                rc = out_note(o, u);
            }
            prev = m;
        }
        if (rc == 0) {
            rc = out_event(o, &r);
            if (rc == VG_ECORRUPT) {
                fprintf(stderr,
                        "vigil timeline: event seq %" PRIu64 " has a malformed raw value; "
                        "skipped (run vigil verify)\n",
                        h->v[i].seq);
                rc = 0;
            }
        }
    }
    if (rc == 0 && h->n > 0) {
        char t0[40];
        char t1[40];
        char ent[256];
        vg_time_format(h->v[0].ts, 0, t0, sizeof(t0));
        vg_time_format(h->v[h->n - 1].ts, 0, t1, sizeof(t1));
        entity_text(e, ent, sizeof(ent));
        buf_reset(&line);
        if (buf_appendf(&line, "%zu events (%zu alerts) for %s from %s to %s", h->n,
                        count_alerts(h), ent, t0, t1) == 0) {
            rc = out_note(o, "");
            if (rc == 0) {
                rc = out_note(o, buf_cstr(&line));
            }
        }
    }
    for (size_t i = 0; i < rel->n && rc == 0;) {
        size_t j = i;
        while (j < rel->n && rel->g[j].key == rel->g[i].key) {
            j++;
        }
        buf_reset(&line);
        int brc = buf_appendf(&line, "  %-15s (%zu) ", related_label(e, rel->g[i].key), j - i);
        for (size_t k = i; k < j && k < i + TL_TOP && brc == 0; k++) {
            brc = buf_appendf(&line, "%s%.*s (%" PRIu64 ")", k > i ? ", " : "", (int)rel->g[k].v.n,
                              (const char *)rel->g[k].v.p, rel->g[k].count);
        }
        if (brc == 0 && j - i > TL_TOP) {
            brc = buf_appendf(&line, ", \xe2\x80\xa6 %zu more", j - i - TL_TOP);
        }
        if (brc == 0 && i == 0) {
            rc = out_note(o, "related:");
        }
        if (brc == 0 && rc == 0) {
            rc = out_note(o, buf_cstr(&line));
        }
        i = j;
    }
    buf_release(&line);
    return rc;
}

static int json_time_value(struct buf *b, int64_t ns)
{
    char t[40];

    vg_time_format(ns, 9, t, sizeof(t));
    return buf_appendf(b, "\"%s\"", t);
}

static int flush_buf(struct buf *b, FILE *f)
{
    errno = 0;
    if (b->len && fwrite(b->data, 1, b->len, f) != b->len) {
        return errno ? -errno : -EIO;
    }
    buf_reset(b);
    return 0;
}

/* json: one object {entity, since, until, events, alerts, related}. */
static int print_json(const struct tl_entity *e, int64_t since, int64_t until,
                      const struct tl_hits *h, const struct related *rel, FILE *f)
{
    struct buf b;
    int rc;

    buf_init(&b, (size_t)512 << 20);
    rc = buf_append_str(&b, "{\"entity\":{\"field\":");
    if (rc == 0) {
        rc = e->bare ? buf_append_str(&b, "null")
                     : json_append_str(&b, span_str(vg_field_name(e->p[0].field)));
    }
    if (rc == 0) {
        rc = buf_append_str(&b, ",\"value\":");
    }
    if (rc == 0) {
        rc = json_append_str(&b, span_str(e->value));
    }
    if (rc == 0) {
        rc = buf_append_str(&b, "},\"since\":");
    }
    if (rc == 0) {
        rc = since == INT64_MIN ? buf_append_str(&b, "null") : json_time_value(&b, since);
    }
    if (rc == 0) {
        rc = buf_append_str(&b, ",\"until\":");
    }
    if (rc == 0) {
        rc = until == INT64_MAX ? buf_append_str(&b, "null") : json_time_value(&b, until);
    }
    if (rc == 0) {
        rc = buf_append_str(&b, ",\"events\":[");
    }
    size_t shown = 0;
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        struct span cur = { h->v[i].bytes, h->v[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) < 0) {
            continue;
        }
        size_t mark = b.len;
        if ((rc = buf_append_str(&b, shown ? ",\n" : "\n")) == 0) {
            rc = out_event_json(&b, &r);
        }
        if (rc == VG_ECORRUPT) {
            fprintf(stderr,
                    "vigil timeline: event seq %" PRIu64 " has a malformed raw value; skipped "
                    "(run vigil verify)\n",
                    h->v[i].seq);
            b.len = mark;
            rc = 0;
            continue;
        }
        shown++;
        if (rc == 0 && b.len > (1u << 20)) {
            rc = flush_buf(&b, f);
        }
    }
    if (rc == 0) {
        rc = buf_appendf(&b, "\n],\"alerts\":%zu,\"related\":{", count_alerts(h));
    }
    for (size_t i = 0; i < rel->n && rc == 0;) {
        size_t j = i;
        while (j < rel->n && rel->g[j].key == rel->g[i].key) {
            j++;
        }
        rc = buf_appendf(&b, "%s\"%s\":[", i ? "," : "", related_json_key(rel->g[i].key));
        for (size_t k = i; k < j && rc == 0; k++) {
            rc = buf_append_str(&b, k > i ? ",{\"value\":" : "{\"value\":");
            if (rc == 0) {
                rc = json_append_str(&b, rel->g[k].v);
            }
            if (rc == 0) {
                rc = buf_appendf(&b, ",\"count\":%" PRIu64 ",\"first\":", rel->g[k].count);
            }
            if (rc == 0) {
                rc = json_time_value(&b, rel->g[k].first);
            }
            if (rc == 0) {
                rc = buf_append_str(&b, ",\"last\":");
            }
            if (rc == 0) {
                rc = json_time_value(&b, rel->g[k].last);
            }
            if (rc == 0) {
                rc = buf_append_byte(&b, '}');
            }
        }
        if (rc == 0) {
            rc = buf_append_byte(&b, ']');
        }
        i = j;
    }
    if (rc == 0) {
        rc = buf_append_str(&b, "}}\n");
    }
    if (rc == 0) {
        rc = flush_buf(&b, f);
    }
    errno = 0;
    if (rc == 0 && (fflush(f) != 0 || ferror(f))) {
        rc = errno ? -errno : -EIO;
    }
    buf_release(&b);
    return rc;
}

/* ndjson and csv: the events only. */
static int print_events(const struct tl_hits *h, struct out *o)
{
    int rc = 0;

    for (size_t i = 0; i < h->n && rc == 0; i++) {
        struct span cur = { h->v[i].bytes, h->v[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) < 0) {
            continue;
        }
        rc = out_event(o, &r);
        if (rc == VG_ECORRUPT) {
            fprintf(stderr,
                    "vigil timeline: event seq %" PRIu64 " has a malformed raw value; skipped "
                    "(run vigil verify)\n",
                    h->v[i].seq);
            rc = 0;
        }
    }
    return rc;
}

static int timeline_run(struct cli_args *a)
{
    struct tl_entity e;
    struct tl_hits h = { 0 };
    struct store_scan_stats stats;
    struct tl_progress pg = { .on = cli_progress_enabled() };
    struct errbuf eb;
    int rc;

    if ((rc = entity_parse(a, &e)) != CLI_OK) {
        return rc;
    }
    if ((rc = cli_load(a)) != CLI_OK) {
        return rc;
    }
    if (a->since >= a->until) {
        fprintf(stderr, "vigil timeline: --since must be before --until\n");
        return CLI_USAGE;
    }
    memset(&stats, 0, sizeof(stats));
    errbuf_clear(&eb);
    rc = tl_collect(cli_store_dir(a), a->since, a->until, &e, &pg, &h, &stats, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil timeline: %s\n", errbuf_msg(&eb));
        hits_release(&h);
        return CLI_FAIL;
    }
    struct related rel = { NULL, 0 };
    if (a->format == OUT_TABLE || a->format == OUT_JSON) {
        related_build(&e, &h, &rel);
    }
    if (a->format == OUT_JSON) {
        rc = print_json(&e, a->since, a->until, &h, &rel, stdout);
    } else {
        struct out *o = out_new(a->format, stdout, cli_terminal_width());
        rc = a->format == OUT_TABLE ? print_table(&e, &h, &rel, o) : print_events(&h, o);
        int frc = out_finish(o);
        rc = rc < 0 ? rc : frc;
        out_free(o);
    }
    if (h.n == 0 && a->format == OUT_TABLE) {
        char ent[256];
        entity_text(&e, ent, sizeof(ent));
        fprintf(stderr, "vigil timeline: no events for %s in the window\n", ent);
    }
    if (((const struct timeline_opts *)a->own)->explain) {
        fprintf(stderr,
                "explain: %zu entity scan%s%s; segments %" PRIu64 "; blocks read %" PRIu64
                ", skipped by time %" PRIu64 ", skipped by index %" PRIu64
                "; records unpacked %" PRIu64 ", passed over %" PRIu64 ", filtered %" PRIu64
                "; %zu in the timeline\n",
                e.n, e.n == 1 ? "" : "s", h.n ? " and one alert scan" : "", stats.segments,
                stats.blocks_read, stats.blocks_skipped, stats.blocks_skipped_index,
                stats.records_decoded, stats.records_skipped, stats.records, h.n);
    }
    free(rel.g);
    hits_release(&h);
    /* A closed stdout (a pager quit) is not a failure of the timeline. */
    rc = cli_output_done("vigil timeline", rc);
    if (pg.interrupted) {
        fprintf(stderr, "vigil timeline: interrupted: the events found before Ctrl-C (the "
                        "timeline is incomplete)\n");
        rc = rc == CLI_OK ? SCAN_EXIT_INTERRUPTED : rc;
    }
    return rc;
}

const struct cli_cmd cmd_timeline = {
    .name = "timeline",
    .synopsis = "ENTITY | --pod P | --user U | --ip A | --host H ... [--since T] [--until T]",
    .takes = CLI_STORE | CLI_TIME | CLI_FORMAT,
    .opts = timeline_opts,
    .own_size = sizeof(struct timeline_opts),
    .usage = timeline_usage,
    .run = timeline_run,
};
