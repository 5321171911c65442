/* schemas/trivy_report.c: scanner reports split into flat findings (see trivy_report.h;
 * FORMATS.md section 4 lists the layouts and where each field lives).
 *
 * The report is walked twice with the same code: a checking pass that only counts, so a
 * broken report is refused before anything was handed out, then the emitting pass. A
 * flat finding is written as a map32 whose count is patched at the end: the context is
 * copied value by value (raw msgpack, unchanged), the finding's own pairs as one block.
 * Pure; any thread. */
#include "schemas/trivy_report.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/mp.h"
#include "schemas/map_int.h"

/* Report-level keys copied into every finding, in this order. */
enum tr_report_key {
    TR_SCHEMA,
    TR_CREATED,
    TR_ARTIFACT,
    TR_ARTIFACT_TYPE,
    TR_ARTIFACT_ID,
    TR_REPORT_ID,
    TR_NREPORT
};
static const char *const report_keys[TR_NREPORT] = {
    "SchemaVersion", "CreatedAt", "ArtifactName", "ArtifactType", "ArtifactID", "ReportID",
};

/* The Metadata keys kept (the image's identity; DiffIDs, ImageConfig and Layers are big
 * and say nothing about one finding). */
enum { TR_NMETA = 4 };
static const char *const meta_keys[TR_NMETA] = { "OS", "ImageID", "RepoTags", "RepoDigests" };

/* Context keys a finding may carry itself: one pass over its keys marks them. */
enum tr_fkey {
    TF_METADATA = TR_NREPORT,
    TF_TARGET,
    TF_CLASS,
    TF_TYPE,
    TF_RESULT_TYPE,
    TF_K8S,
    TF_FINDING_TYPE,
    TF_COUNT
};
static const char *const fkey_names[TF_COUNT] = {
    "SchemaVersion", "CreatedAt", "ArtifactName", "ArtifactType", "ArtifactID",
    "ReportID",      "Metadata",  "Target",       "Class",        "Type",
    "ResultType",    "k8s",       "FindingType",
};

struct tr {
    struct buf *out;
    trivy_finding_fn fn;
    void *arg;
    struct errbuf *eb;
    bool emit; /* false: the checking pass (counts only) */
    int count;
    char where[96]; /* the resource being walked, for error messages */

    struct span report[TR_NREPORT]; /* raw values; n == 0 when absent */
    struct span meta[TR_NMETA];     /* Metadata subset, raw values */
    struct span image;              /* k8s: the resource's image (string bytes) */
    struct span artifact;           /* derived ArtifactName for the current Result */
    bool k8s;
    struct span cluster, ns, kind, name; /* string bytes */
    struct span target, klass, type;     /* the current Result's raw values */
    struct buf tmp;                      /* Grype: FixedVersion joined */
};

/* The value of map[key] when present and not nil; else v is empty. */
static bool get(struct span map, const char *key, struct span *v)
{
    if (map__get(map, key, v) && !mp_is_nil(*v)) {
        return true;
    }
    *v = (struct span){ NULL, 0 };
    return false;
}

static struct span get_str(struct span map, const char *key)
{
    struct span s = { NULL, 0 };
    struct span v;

    if (get(map, key, &v) && mp_get_str(v, &s) && s.p == NULL) {
        s.p = (const uint8_t *)"";
    }
    return s;
}

static bool is_type(struct span v, enum mp_type type, uint32_t *count)
{
    struct mp_obj o;

    if (mp_read(&v, &o) != 1 || o.type != type) {
        return false;
    }
    if (count) {
        *count = o.v.count;
    }
    return true;
}

static bool has_any_key(struct span map, const char *const *keys, size_t n)
{
    struct span v;

    for (size_t i = 0; i < n; i++) {
        if (map__get(map, keys[i], &v)) {
            return true;
        }
    }
    return false;
}

/* Keys only a finding has (FindingType: one this splitter wrote). */
static const char *const finding_keys[] = { "VulnerabilityID", "AVDID", "RuleID", "FindingType" };
static const char *const result_lists[] = { "Vulnerabilities", "Misconfigurations", "Secrets" };

enum trivy_layout trivy_report_layout(struct span doc)
{
    struct span v;

    if (is_type(doc, MP_ARRAY, NULL)) {
        return TRIVY_LAYOUT_LEGACY;
    }
    if (!is_type(doc, MP_MAP, NULL)) {
        return TRIVY_LAYOUT_NONE;
    }
    if (map__get(doc, "Resources", &v)) {
        return TRIVY_LAYOUT_K8S;
    }
    if (map__get(doc, "matches", &v)) {
        return TRIVY_LAYOUT_GRYPE;
    }
    if (map__get(doc, "Results", &v)) {
        return TRIVY_LAYOUT_REPORT;
    }
    if (map__get(doc, "ClusterName", &v)) {
        return TRIVY_LAYOUT_K8S_OLD;
    }
    if (has_any_key(doc, finding_keys, VG_ARRAY_LEN(finding_keys))) {
        return TRIVY_LAYOUT_FINDING;
    }
    if (has_any_key(doc, result_lists, VG_ARRAY_LEN(result_lists)) && map__get(doc, "Target", &v)) {
        return TRIVY_LAYOUT_RESULT;
    }
    if (map__get(doc, "SchemaVersion", &v)) {
        return TRIVY_LAYOUT_REPORT; /* a clean report: no Results at all */
    }
    return TRIVY_LAYOUT_NONE;
}

const char *trivy_layout_name(enum trivy_layout l)
{
    static const char *const names[] = {
        "not a scan report", "trivy report",     "legacy trivy report",
        "trivy result",      "trivy k8s report", "trivy k8s report (older layout)",
        "grype report",      "flat finding",
    };
    return (unsigned)l < VG_ARRAY_LEN(names) ? names[l] : "?";
}

/* --- writing one flat finding ------------------------------------------------------ */

static int begin(struct tr *t)
{
    static const uint8_t map32[5] = { 0xdf, 0, 0, 0, 0 };

    buf_reset(t->out);
    return buf_append(t->out, map32, sizeof(map32));
}

static int finish(struct tr *t, uint32_t n)
{
    uint8_t *p = t->out->data;

    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    return t->fn(t->arg, buf_span(t->out));
}

static int pair_raw(struct tr *t, uint32_t *n, const char *key, struct span v)
{
    int rc;

    if (v.n == 0) {
        return 0;
    }
    if ((rc = mp_put_cstr(t->out, key)) < 0 || (rc = mp_put_raw(t->out, v)) < 0) {
        return rc;
    }
    (*n)++;
    return 0;
}

static int pair_str(struct tr *t, uint32_t *n, const char *key, struct span s)
{
    int rc;

    if (s.p == NULL) {
        return 0;
    }
    if ((rc = mp_put_cstr(t->out, key)) < 0 || (rc = mp_put_str(t->out, s.p, s.n)) < 0) {
        return rc;
    }
    (*n)++;
    return 0;
}

/* A nested map of the present values among vals (raw), under key. */
static int pair_map(struct tr *t, uint32_t *n, const char *key, const char *const *names,
                    const struct span *vals, size_t nv)
{
    uint32_t cnt = 0;
    int rc;

    for (size_t i = 0; i < nv; i++) {
        cnt += vals[i].n > 0;
    }
    if (cnt == 0) {
        return 0;
    }
    if ((rc = mp_put_cstr(t->out, key)) < 0 || (rc = mp_put_map(t->out, cnt)) < 0) {
        return rc;
    }
    for (size_t i = 0; i < nv; i++) {
        if (vals[i].n > 0 &&
            ((rc = mp_put_cstr(t->out, names[i])) < 0 || (rc = mp_put_raw(t->out, vals[i])) < 0)) {
            return rc;
        }
    }
    (*n)++;
    return 0;
}

static int put_k8s(struct tr *t, uint32_t *n)
{
    const struct span pod = span_eq_str(t->kind, "Pod") ? t->name : (struct span){ NULL, 0 };
    const struct span cluster = t->cluster.n ? t->cluster : (struct span){ NULL, 0 };
    const struct span vals[] = { cluster, t->ns, t->kind, t->name, pod };
    static const char *const names[] = { "cluster", "namespace", "kind", "name", "pod" };
    uint32_t cnt = 0;
    int rc;

    for (size_t i = 0; i < VG_ARRAY_LEN(vals); i++) {
        cnt += vals[i].p != NULL;
    }
    if ((rc = mp_put_cstr(t->out, "k8s")) < 0 || (rc = mp_put_map(t->out, cnt)) < 0) {
        return rc;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(vals); i++) {
        if (vals[i].p && ((rc = mp_put_cstr(t->out, names[i])) < 0 ||
                          (rc = mp_put_str(t->out, vals[i].p, vals[i].n)) < 0)) {
            return rc;
        }
    }
    (*n)++;
    return 0;
}

/* One Trivy finding (a map) with the current context. */
static int emit_finding(struct tr *t, struct span finding, const char *ftype)
{
    bool has[TF_COUNT] = { false };
    struct map__it it;
    struct span k;
    struct span v;
    struct mp_obj o;
    struct span body = finding;
    uint32_t n = 0;
    int rc;

    if (t->count == INT_MAX) {
        errbuf_set(t->eb, "more than %d findings", INT_MAX);
        return VG_ELIMIT;
    }
    t->count++;
    if (!t->emit) {
        return 0;
    }
    if (!map__it_init(&it, finding) || mp_read(&body, &o) != 1) {
        return VG_EFORMAT; /* checked by the first pass */
    }
    while ((rc = map__it_next(&it, &k, &v)) > 0) {
        for (int i = 0; k.p && i < TF_COUNT; i++) {
            if (span_eq_str(k, fkey_names[i])) {
                has[i] = true;
            }
        }
    }
    if (rc < 0) {
        return VG_EFORMAT;
    }
    if ((rc = begin(t)) < 0) {
        return rc;
    }
    for (int i = 0; i < TR_NREPORT && rc == 0; i++) {
        if (!has[i]) {
            rc = pair_raw(t, &n, report_keys[i], t->report[i]);
        }
    }
    if (rc == 0 && !has[TR_ARTIFACT] && t->report[TR_ARTIFACT].n == 0) {
        rc = pair_str(t, &n, "ArtifactName", t->artifact);
    }
    if (rc == 0 && !has[TF_METADATA]) {
        rc = pair_map(t, &n, "Metadata", meta_keys, t->meta, TR_NMETA);
    }
    if (rc == 0 && !has[TF_TARGET]) {
        rc = pair_raw(t, &n, "Target", t->target);
    }
    if (rc == 0 && !has[TF_CLASS]) {
        rc = pair_raw(t, &n, "Class", t->klass);
    }
    if (rc == 0 && !(has[TF_TYPE] && has[TF_RESULT_TYPE])) {
        rc = pair_raw(t, &n, has[TF_TYPE] ? "ResultType" : "Type", t->type);
    }
    if (rc == 0 && t->k8s && !has[TF_K8S]) {
        rc = put_k8s(t, &n);
    }
    if (rc == 0 && !has[TF_FINDING_TYPE]) {
        rc = pair_str(t, &n, "FindingType", span_str(ftype));
    }
    /* The finding's own pairs follow its header as one block. */
    if (rc == 0) {
        rc = mp_put_raw(t->out, (struct span){ body.p, (size_t)(finding.p + finding.n - body.p) });
    }
    if (rc < 0) {
        errbuf_set(t->eb, "a finding does not fit in %zu bytes", t->out->max);
        return rc;
    }
    return finish(t, n + o.v.count);
}

/* --- walking the layouts ----------------------------------------------------------- */

static int broken(struct tr *t, const char *what, const char *list, uint32_t i)
{
    if (i == UINT32_MAX) {
        errbuf_set(t->eb, "%s%s%s is not an array", t->where, *t->where ? "." : "", list);
    } else {
        errbuf_set(t->eb, "%s%s%s[%u] is %s", t->where, *t->where ? "." : "", list, i, what);
    }
    return VG_EFORMAT;
}

/* Calls each(t, element, i) for the maps of the array value list (absent or nil: none). */
static int each_map(struct tr *t, struct span parent, const char *list,
                    int (*each)(struct tr *t, struct span el, uint32_t i, const void *ctx),
                    const void *ctx)
{
    struct span v;
    struct mp_obj o;

    if (!get(parent, list, &v)) {
        return 0;
    }
    if (mp_read(&v, &o) != 1 || o.type != MP_ARRAY) {
        return broken(t, NULL, list, UINT32_MAX);
    }
    for (uint32_t i = 0; i < o.v.count; i++) {
        struct span el;
        int rc;
        if (mp_take(&v, &el) < 0) {
            return broken(t, "malformed", list, i);
        }
        if (!is_type(el, MP_MAP, NULL)) {
            return broken(t, "not an object", list, i);
        }
        if ((rc = each(t, el, i, ctx)) < 0) {
            return rc;
        }
    }
    return 0;
}

static int each_finding(struct tr *t, struct span el, uint32_t i, const void *ctx)
{
    (void)i;
    return emit_finding(t, el, ctx);
}

/* " (debian 10.4)" at the end of an os-pkgs Target is the OS, not the image. */
static struct span strip_os_suffix(struct span s)
{
    if (s.n > 2 && s.p[s.n - 1] == ')') {
        for (size_t i = s.n - 1; i > 0; i--) {
            if (s.p[i] == '(' && s.p[i - 1] == ' ') {
                return (struct span){ s.p, i - 1 };
            }
        }
    }
    return s;
}

static int each_result(struct tr *t, struct span res, uint32_t i, const void *ctx)
{
    static const char *const ftypes[] = { "vulnerability", "misconfiguration", "secret" };
    char saved[sizeof(t->where)];
    size_t len = strlen(t->where);
    int rc = 0;

    (void)ctx;
    memcpy(saved, t->where, sizeof(saved));
    snprintf(t->where + len, sizeof(t->where) - len, "%sResults[%u]", len ? "." : "", i);
    get(res, "Target", &t->target);
    get(res, "Class", &t->klass);
    get(res, "Type", &t->type);
    struct span klass = get_str(res, "Class");
    t->artifact = t->k8s && !span_eq_str(klass, "config") ? t->image : (struct span){ NULL, 0 };
    for (size_t l = 0; l < VG_ARRAY_LEN(result_lists) && rc == 0; l++) {
        rc = each_map(t, res, result_lists[l], each_finding, ftypes[l]);
    }
    memcpy(t->where, saved, sizeof(saved));
    return rc;
}

static int walk_results(struct tr *t, struct span parent)
{
    return each_map(t, parent, "Results", each_result, NULL);
}

static void set_meta(struct tr *t, struct span parent)
{
    struct span md;

    memset(t->meta, 0, sizeof(t->meta));
    if (get(parent, "Metadata", &md) && is_type(md, MP_MAP, NULL)) {
        for (int i = 0; i < TR_NMETA; i++) {
            get(md, meta_keys[i], &t->meta[i]);
        }
    }
}

/* The image of a k8s resource: Metadata.RepoTags[0], else its os-pkgs Target. */
static struct span resource_image(struct span resource)
{
    struct span md;
    struct span tags;
    struct span s;
    struct mp_obj o;
    struct span results;

    if (get(resource, "Metadata", &md) && get(md, "RepoTags", &tags) && mp_read(&tags, &o) == 1 &&
        o.type == MP_ARRAY && o.v.count > 0 && map__str(tags, &s)) {
        return s;
    }
    if (get(resource, "Results", &results) && mp_read(&results, &o) == 1 && o.type == MP_ARRAY) {
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct span r;
            if (mp_take(&results, &r) < 0) {
                break;
            }
            if (span_eq_str(get_str(r, "Class"), "os-pkgs") && map__get_str(r, "Target", &s)) {
                return strip_os_suffix(s);
            }
        }
    }
    return (struct span){ NULL, 0 };
}

static int each_resource(struct tr *t, struct span res, uint32_t i, const void *ctx)
{
    int rc;

    snprintf(t->where, sizeof(t->where), "%s[%u]", (const char *)ctx, i);
    t->ns = get_str(res, "Namespace");
    t->kind = get_str(res, "Kind");
    t->name = get_str(res, "Name");
    t->image = resource_image(res);
    set_meta(t, res);
    rc = walk_results(t, res);
    t->where[0] = 0;
    return rc;
}

static int each_legacy(struct tr *t, struct span el, uint32_t i, const void *ctx)
{
    (void)ctx;
    if (has_any_key(el, finding_keys, VG_ARRAY_LEN(finding_keys))) {
        if (t->count == INT_MAX) {
            return VG_ELIMIT;
        }
        t->count++;
        return t->emit ? t->fn(t->arg, el) : 0;
    }
    return each_result(t, el, i, NULL);
}

/* Grype: one match in Trivy's words, the whole match kept under "match". */
static int emit_grype(struct tr *t, struct span m, uint32_t idx, const void *ctx)
{
    const struct span *g =
        ctx; /* created, artifact (string), type, image id, tags, name, version, distro */
    struct span vuln = { NULL, 0 };
    struct span art = { NULL, 0 };
    struct span fix = { NULL, 0 };
    struct span v;
    struct span versions;
    struct span state;
    struct mp_obj o;
    uint32_t n = 0;
    int rc;

    (void)idx;
    if (t->count == INT_MAX) {
        return VG_ELIMIT;
    }
    t->count++;
    if (!t->emit) {
        return 0;
    }
    get(m, "vulnerability", &vuln);
    get(m, "artifact", &art);
    get(vuln, "fix", &fix);
    buf_reset(&t->tmp);
    if (get(fix, "versions", &versions) && mp_read(&versions, &o) == 1 && o.type == MP_ARRAY) {
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct span s;
            if (mp_take(&versions, &v) < 0) {
                break;
            }
            if (map__str(v, &s) && ((t->tmp.len && buf_append(&t->tmp, ", ", 2) < 0) ||
                                    buf_append(&t->tmp, s.p, s.n) < 0)) {
                break; /* a FixedVersion over 4 KiB is cut at a version boundary */
            }
        }
    }
    static const char *const meta[] = { "ImageID", "RepoTags" };
    static const char *const scanner[] = { "Name", "Version" };
    const struct span mvals[] = { g[3], g[4] };
    const struct span svals[] = { g[5], g[6] };
    if ((rc = begin(t)) < 0 || (rc = pair_raw(t, &n, "CreatedAt", g[0])) < 0 ||
        (rc = pair_str(t, &n, "ArtifactName", g[1])) < 0 ||
        (rc = pair_raw(t, &n, "ArtifactType", g[2])) < 0 ||
        (rc = pair_map(t, &n, "Metadata", meta, mvals, 2)) < 0 ||
        (rc = pair_map(t, &n, "Scanner", scanner, svals, 2)) < 0 ||
        (rc = pair_raw(t, &n, "Distro", g[7])) < 0 ||
        (rc = pair_str(t, &n, "FindingType", SPAN_LIT("vulnerability"))) < 0) {
        goto fail;
    }
    get(vuln, "id", &v);
    if ((rc = pair_raw(t, &n, "VulnerabilityID", v)) < 0) {
        goto fail;
    }
    get(vuln, "severity", &v);
    if ((rc = pair_raw(t, &n, "Severity", v)) < 0) {
        goto fail;
    }
    get(art, "name", &v);
    if ((rc = pair_raw(t, &n, "PkgName", v)) < 0) {
        goto fail;
    }
    get(art, "version", &v);
    if ((rc = pair_raw(t, &n, "InstalledVersion", v)) < 0) {
        goto fail;
    }
    get(art, "type", &v);
    if ((rc = pair_raw(t, &n, "PkgType", v)) < 0) {
        goto fail;
    }
    if (t->tmp.len && (rc = pair_str(t, &n, "FixedVersion", buf_span(&t->tmp))) < 0) {
        goto fail;
    }
    if (map__get_str(fix, "state", &state) && (rc = pair_str(t, &n, "Status", state)) < 0) {
        goto fail;
    }
    get(vuln, "dataSource", &v);
    if ((rc = pair_raw(t, &n, "PrimaryURL", v)) < 0 || (rc = pair_raw(t, &n, "match", m)) < 0) {
        goto fail;
    }
    return finish(t, n);
fail:
    errbuf_set(t->eb, "a finding does not fit in %zu bytes", t->out->max);
    return rc;
}

static int walk_grype(struct tr *t, struct span doc)
{
    struct span g[8];
    struct span desc;
    struct span src;
    struct span target;

    memset(g, 0, sizeof(g));
    if (get(doc, "descriptor", &desc)) {
        get(desc, "timestamp", &g[0]);
        get(desc, "name", &g[5]);
        get(desc, "version", &g[6]);
    }
    if (get(doc, "source", &src)) {
        get(src, "type", &g[2]);
        if (get(src, "target", &target)) {
            if (!map__str(target, &g[1])) {
                g[1] = get_str(target, "userInput");
                get(target, "imageID", &g[3]);
                get(target, "tags", &g[4]);
            }
        }
    }
    get(doc, "distro", &g[7]);
    return each_map(t, doc, "matches", emit_grype, g);
}

static int walk(struct tr *t, struct span doc, enum trivy_layout layout)
{
    switch (layout) {
    case TRIVY_LAYOUT_REPORT:
        for (int i = 0; i < TR_NREPORT; i++) {
            get(doc, report_keys[i], &t->report[i]);
        }
        set_meta(t, doc);
        return walk_results(t, doc);
    case TRIVY_LAYOUT_LEGACY: {
        /* each_map wants a parent map: walk the array through a one-key view. */
        struct mp_obj o;
        struct span v = doc;
        int rc;
        if (mp_read(&v, &o) != 1 || o.type != MP_ARRAY) {
            return broken(t, NULL, "report", UINT32_MAX);
        }
        for (uint32_t i = 0; i < o.v.count; i++) {
            struct span el;
            if (mp_take(&v, &el) < 0) {
                return broken(t, "malformed", "report", i);
            }
            if (!is_type(el, MP_MAP, NULL)) {
                return broken(t, "not an object", "report", i);
            }
            if ((rc = each_legacy(t, el, i, NULL)) < 0) {
                return rc;
            }
        }
        return 0;
    }
    case TRIVY_LAYOUT_RESULT:
        return each_result(t, doc, 0, NULL);
    case TRIVY_LAYOUT_K8S:
    case TRIVY_LAYOUT_K8S_OLD: {
        int rc;
        t->k8s = true;
        t->cluster = get_str(doc, "ClusterName");
        if (layout == TRIVY_LAYOUT_K8S) {
            return each_map(t, doc, "Resources", each_resource, "Resources");
        }
        if ((rc = each_map(t, doc, "Vulnerabilities", each_resource, "Vulnerabilities")) < 0) {
            return rc;
        }
        return each_map(t, doc, "Misconfigurations", each_resource, "Misconfigurations");
    }
    case TRIVY_LAYOUT_GRYPE:
        return walk_grype(t, doc);
    case TRIVY_LAYOUT_FINDING:
        t->count++;
        return t->emit ? t->fn(t->arg, doc) : 0;
    case TRIVY_LAYOUT_NONE:
    default:
        errbuf_set(t->eb, "not a Trivy or Grype report (no Results, Resources, matches or "
                          "VulnerabilityID)");
        return VG_EFORMAT;
    }
}

int trivy_report_split(struct span doc, struct buf *out, trivy_finding_fn fn, void *arg,
                       struct errbuf *eb)
{
    struct tr t;
    enum trivy_layout layout;
    int rc;

    memset(&t, 0, sizeof(t));
    if (mp_value_len(doc, doc.n, MP_MAX_DEPTH) != (ssize_t)doc.n) {
        errbuf_set(eb, "the report is not one well-formed msgpack value");
        return VG_EFORMAT;
    }
    layout = trivy_report_layout(doc);
    t.out = out;
    t.fn = fn;
    t.arg = arg;
    t.eb = eb;
    buf_init(&t.tmp, 4096);
    rc = walk(&t, doc, layout); /* the checking pass */
    if (rc >= 0 && t.count > 0) {
        struct tr e = t;
        memset(&e.report, 0, sizeof(e.report));
        e.where[0] = 0;
        e.emit = true;
        e.count = 0;
        rc = walk(&e, doc, layout);
        t.tmp = e.tmp;
        t.count = e.count;
    }
    buf_release(&t.tmp);
    return rc < 0 ? rc : t.count;
}
