/* tests/unit/schemas/test_trivy_report.c: the scanner report splitter over every report of
 * the corpus (VG_CORPUS_DIR/trivy, every layout of FORMATS.md section 4), each finding
 * through map_event(MAP_TRIVY); the context each finding carries; broken reports refused
 * before any finding is handed out; limits and callback errors. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/mp.h"
#include "schemas/map.h"
#include "schemas/trivy_report.h"

#define P(x) assert_int_equal((x), 0)

static const char *corpus_dir(void)
{
    const char *d = getenv("VG_CORPUS_DIR");
    return d && *d ? d : "tests/data/corpus";
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    struct stat st;

    if (!f) {
        return NULL;
    }
    assert_int_equal(fstat(fileno(f), &st), 0);
    char *p = malloc((size_t)st.st_size + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)st.st_size, f), (size_t)st.st_size);
    p[st.st_size] = 0;
    fclose(f);
    *n = (size_t)st.st_size;
    return p;
}

/* What the callback saw. */
struct seen {
    int calls;
    int vulns, misconfigs, secrets, other;
    int mapped;
    int fail_at;      /* return -ECANCELED at this call (1-based), 0: never */
    struct buf first; /* the first flat finding, copied */
    struct buf last;
    char first_json[8192];
};

static void seen_init(struct seen *s)
{
    memset(s, 0, sizeof(*s));
    buf_init(&s->first, 1u << 24);
    buf_init(&s->last, 1u << 24);
}

static void seen_release(struct seen *s)
{
    buf_release(&s->first);
    buf_release(&s->last);
}

static struct span str_at(struct span map, const char *key)
{
    struct span v;
    struct span s = { NULL, 0 };

    if (mp_map_get(map, span_str(key), &v) == 1 && mp_get_str(v, &s) && s.p == NULL) {
        s.p = (const uint8_t *)"";
    }
    return s;
}

static bool has_key(struct span map, const char *key)
{
    struct span v;
    return mp_map_get(map, span_str(key), &v) == 1;
}

static void assert_str_at(struct span map, const char *key, const char *want)
{
    struct span s = str_at(map, key);
    if (want == NULL) {
        if (s.p) {
            fail_msg("%s: unexpected '%.*s'", key, (int)s.n, (const char *)s.p);
        }
        return;
    }
    if (!span_eq_str(s, want)) {
        fail_msg("%s: got '%.*s', want '%s'", key, (int)s.n, s.p ? (const char *)s.p : "(none)",
                 want);
    }
}

static int on_finding(void *arg, struct span f)
{
    struct seen *s = arg;
    struct buf scratch;
    struct errbuf eb;
    struct rec r;

    s->calls++;
    if (s->fail_at && s->calls == s->fail_at) {
        return -ECANCELED;
    }
    /* one complete, well-formed map */
    assert_int_equal(mp_value_len(f, f.n, MP_MAX_DEPTH), (ssize_t)f.n);
    struct span ft = str_at(f, "FindingType");
    if (span_eq_str(ft, "vulnerability")) {
        s->vulns++;
    } else if (span_eq_str(ft, "misconfiguration")) {
        s->misconfigs++;
    } else if (span_eq_str(ft, "secret")) {
        s->secrets++;
    } else {
        s->other++;
    }
    buf_init(&scratch, 4096);
    errbuf_clear(&eb);
    if (map_event(MAP_TRIVY, f, 1, "http", &r, &scratch, &eb) == 0) {
        s->mapped++;
        assert_true(span_eq_str(r.str[VG_F_SOURCE], "trivy"));
        assert_true(span_eq_str(r.str[VG_F_KIND], "scan"));
        assert_true(r.str[VG_F_CVE].n > 0 || r.str[VG_F_RULE].n > 0);
        assert_true(r.str[VG_F_SEVERITY].n > 0);
        assert_true(r.raw.p == f.p && r.raw.n == f.n);
    } else {
        fail_msg("finding %d does not map: %s", s->calls, errbuf_msg(&eb));
    }
    buf_release(&scratch);
    if (s->calls == 1) {
        P(buf_append(&s->first, f.p, f.n));
        struct buf j;
        buf_init(&j, sizeof(s->first_json) - 1);
        if (mp_to_json(f, &j) == 0) {
            memcpy(s->first_json, j.data, j.len + 1);
        }
        buf_release(&j);
    }
    buf_reset(&s->last);
    P(buf_append(&s->last, f.p, f.n));
    return 0;
}

/* Splits the JSON text; returns the split's result. */
static int split_json(const char *json, size_t n, struct seen *s, size_t out_max, struct errbuf *eb)
{
    struct buf mp;
    struct buf out;
    int rc;

    buf_init(&mp, 4 * n + 65536);
    P(json_to_mp((struct span){ (const uint8_t *)json, n }, &mp, NULL, eb));
    buf_init(&out, out_max ? out_max : 2 * mp.len + 65536);
    rc = trivy_report_split(buf_span(&mp), &out, on_finding, s, eb);
    buf_release(&out);
    buf_release(&mp);
    return rc;
}

/* Finding counts counted independently of this code, with jq over the whole document:
 *   jq '[.. | objects | ((.Vulnerabilities // []) | if type=="array" then
 *        map(select(has("VulnerabilityID"))) | length else 0 end)
 *      + ((.Misconfigurations // []) | if type=="array" then map(select(has("ID"))) |
 *        length else 0 end) + ((.Secrets // []) | length)] | add' FILE
 * for Trivy files and `jq '.matches | length' FILE` for Grype; the split by kind with a
 * Python walk of Results[].{Vulnerabilities,Misconfigurations,Secrets} per layout. */
static const struct {
    const char *file;
    enum trivy_layout layout;
    int vulns, misconfigs, secrets;
} expected[] = {
    { "alpine-310.json", TRIVY_LAYOUT_REPORT, 4, 0, 0 },
    { "centos-7.json", TRIVY_LAYOUT_REPORT, 3, 0, 0 },
    { "debian-stretch.json", TRIVY_LAYOUT_REPORT, 5, 0, 0 },
    { "distroless-python27.json", TRIVY_LAYOUT_REPORT, 4, 0, 0 },
    { "gomod.json", TRIVY_LAYOUT_REPORT, 5, 0, 0 },
    { "helm.json", TRIVY_LAYOUT_REPORT, 0, 18, 0 },
    { "npm.json", TRIVY_LAYOUT_REPORT, 1, 0, 0 },
    { "secrets.json", TRIVY_LAYOUT_REPORT, 0, 0, 2 },
    { "spring4shell-jre11.json", TRIVY_LAYOUT_REPORT, 1, 0, 0 },
    { "ubuntu-1804.json", TRIVY_LAYOUT_REPORT, 5, 0, 0 },
    { "defectdojo-unittests/all_statuses.json", TRIVY_LAYOUT_REPORT, 8, 0, 0 },
    { "defectdojo-unittests/cvssv4_severity_source.json", TRIVY_LAYOUT_REPORT, 3, 0, 0 },
    { "defectdojo-unittests/issue_10991.json", TRIVY_LAYOUT_K8S, 0, 37, 0 },
    { "defectdojo-unittests/issue_9333.json", TRIVY_LAYOUT_REPORT, 13, 0, 0 },
    { "defectdojo-unittests/kubernetes.json", TRIVY_LAYOUT_K8S_OLD, 10, 10, 0 },
    { "defectdojo-unittests/legacy_many_vulns.json", TRIVY_LAYOUT_LEGACY, 93, 0, 0 },
    { "defectdojo-unittests/misconfigurations_and_secrets.json", TRIVY_LAYOUT_REPORT, 2, 1, 2 },
    { "grype/TestJsonDirsPresenter.json", TRIVY_LAYOUT_GRYPE, 2, 0, 0 },
    { "grype/TestJsonImgsPresenter.json", TRIVY_LAYOUT_GRYPE, 2, 0, 0 },
    { "grype/defectdojo_check_all_fields.json", TRIVY_LAYOUT_GRYPE, 6, 0, 0 },
    { "grype/defectdojo_fix_available.json", TRIVY_LAYOUT_GRYPE, 1, 0, 0 },
    { "grype/defectdojo_many_vulns3.json", TRIVY_LAYOUT_GRYPE, 327, 0, 0 },
    { "grype/defectdojo_many_vulns4.json", TRIVY_LAYOUT_GRYPE, 9, 0, 0 },
    { "grype/defectdojo_many_vulns_with_epss_values.json", TRIVY_LAYOUT_GRYPE, 15, 0, 0 },
};

/* Splits one corpus file; fills s. */
static void split_file(const char *rel, struct seen *s, enum trivy_layout *layout)
{
    char path[1024];
    size_t n = 0;
    struct errbuf eb;
    struct buf mp;

    snprintf(path, sizeof(path), "%s/trivy/%s", corpus_dir(), rel);
    char *json = read_file(path, &n);
    if (!json) {
        fail_msg("cannot read %s", path);
    }
    errbuf_clear(&eb);
    buf_init(&mp, 4 * n + 65536);
    P(json_to_mp((struct span){ (const uint8_t *)json, n }, &mp, NULL, &eb));
    *layout = trivy_report_layout(buf_span(&mp));
    buf_release(&mp);
    int rc = split_json(json, n, s, 0, &eb);
    if (rc < 0) {
        fail_msg("%s: %s (%s)", rel, vg_strerror(rc), errbuf_msg(&eb));
    }
    assert_int_equal(rc, s->calls);
    free(json);
}

static void test_every_corpus_report(void **state)
{
    int total = 0;

    (void)state;
    for (size_t i = 0; i < VG_ARRAY_LEN(expected); i++) {
        struct seen s;
        enum trivy_layout layout;
        seen_init(&s);
        split_file(expected[i].file, &s, &layout);
        if (layout != expected[i].layout || s.vulns != expected[i].vulns ||
            s.misconfigs != expected[i].misconfigs || s.secrets != expected[i].secrets ||
            s.other != 0 || s.mapped != s.calls) {
            fail_msg("%s: layout %s, %d vulns %d misconfigs %d secrets %d other, %d mapped; want "
                     "%s %d/%d/%d",
                     expected[i].file, trivy_layout_name(layout), s.vulns, s.misconfigs, s.secrets,
                     s.other, s.mapped, trivy_layout_name(expected[i].layout), expected[i].vulns,
                     expected[i].misconfigs, expected[i].secrets);
        }
        total += s.calls;
        seen_release(&s);
    }
    assert_int_equal(total, 589);
}

/* A report added to the corpus must be added to the table above. */
static void check_dir(const char *rel)
{
    char path[1024];
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/trivy%s%s", corpus_dir(), *rel ? "/" : "", rel);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".json") != 0) {
            continue;
        }
        char name[512];
        snprintf(name, sizeof(name), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        bool found = false;
        for (size_t i = 0; i < VG_ARRAY_LEN(expected); i++) {
            found |= strcmp(expected[i].file, name) == 0;
        }
        if (!found) {
            fail_msg("corpus report %s has no expected count here", name);
        }
    }
    closedir(d);
}

static void test_corpus_listing_complete(void **state)
{
    (void)state;
    check_dir("");
    check_dir("defectdojo-unittests");
    check_dir("grype");
}

static void test_report_context(void **state)
{
    struct seen s;
    enum trivy_layout layout;
    struct span f;
    struct buf scratch;
    struct rec r;

    (void)state;
    seen_init(&s);
    split_file("alpine-310.json", &s, &layout);
    f = buf_span(&s.first);
    assert_str_at(f, "ArtifactName", "testdata/fixtures/images/alpine-310.tar.gz");
    assert_str_at(f, "ArtifactType", "container_image");
    assert_str_at(f, "CreatedAt", "2021-08-25T12:20:30.000000005Z");
    assert_str_at(f, "Target", "testdata/fixtures/images/alpine-310.tar.gz (alpine 3.10.2)");
    assert_str_at(f, "Class", "os-pkgs");
    assert_str_at(f, "Type", "alpine");
    assert_str_at(f, "FindingType", "vulnerability");
    assert_str_at(f, "VulnerabilityID", "CVE-2019-1549");
    assert_str_at(f, "FixedVersion", "1.1.1d-r0");
    struct span md;
    assert_int_equal(mp_map_get(f, SPAN_LIT("Metadata"), &md), 1);
    assert_str_at(md, "ImageID",
                  "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4");
    assert_false(has_key(md, "ImageConfig")); /* big and not about one finding */
    assert_false(has_key(md, "DiffIDs"));
    assert_false(has_key(f, "Results"));
    /* mapped as map_trivy.c says */
    buf_init(&scratch, 4096);
    P(map_event(MAP_TRIVY, f, 0, "http", &r, &scratch, NULL));
    assert_true(span_eq_str(r.str[VG_F_CVE], "CVE-2019-1549"));
    assert_true(span_eq_str(r.str[VG_F_PACKAGE], "libcrypto1.1"));
    assert_true(span_eq_str(r.str[VG_F_OBJECT], "libcrypto1.1@1.1.1c-r0"));
    assert_true(span_eq_str(r.str[VG_F_IMAGE], "testdata/fixtures/images/alpine-310.tar.gz"));
    assert_true(span_eq_str(r.str[VG_F_SEVERITY], "warning"));
    assert_true(span_eq_str(r.str[VG_F_MESSAGE], "openssl: information disclosure in fork()"));
    assert_int_equal(r.ts, INT64_C(1629894030000000005));
    buf_release(&scratch);
    seen_release(&s);
}

static void test_misconfig_and_secret(void **state)
{
    struct seen s;
    enum trivy_layout layout;
    struct span f;
    struct buf scratch;
    struct rec r;

    (void)state;
    seen_init(&s);
    split_file("defectdojo-unittests/misconfigurations_and_secrets.json", &s, &layout);
    /* the last finding: a secret in secret.txt */
    f = buf_span(&s.last);
    assert_str_at(f, "FindingType", "secret");
    assert_str_at(f, "RuleID", "github-pat");
    assert_str_at(f, "Target", "secret.txt");
    assert_str_at(f, "Class", "secret");
    assert_false(has_key(f, "Type")); /* "Type": null in the Result */
    buf_init(&scratch, 4096);
    P(map_event(MAP_TRIVY, f, 0, "http", &r, &scratch, NULL));
    assert_true(span_eq_str(r.str[VG_F_RULE], "github-pat"));
    assert_true(span_eq_str(r.str[VG_F_OBJECT], "secret.txt"));
    assert_null(r.str[VG_F_CVE].p);
    seen_release(&s);

    /* a misconfiguration has its own Type: the Result's becomes ResultType */
    const char *json =
        "{\"SchemaVersion\":2,\"ArtifactName\":\"repo\",\"Results\":[{\"Target\":"
        "\"Dockerfile\",\"Class\":\"config\",\"Type\":\"dockerfile\","
        "\"Misconfigurations\":[{\"Type\":\"Dockerfile Security Check\",\"ID\":"
        "\"DS002\",\"Title\":\"Image user should not be 'root'\",\"Severity\":"
        "\"HIGH\",\"Status\":\"FAIL\",\"Namespace\":\"builtin.dockerfile.DS002\"}]}]}";
    seen_init(&s);
    assert_int_equal(split_json(json, strlen(json), &s, 0, NULL), 1);
    f = buf_span(&s.first);
    assert_str_at(f, "Type", "Dockerfile Security Check");
    assert_str_at(f, "ResultType", "dockerfile");
    assert_str_at(f, "Namespace", "builtin.dockerfile.DS002");
    assert_str_at(f, "FindingType", "misconfiguration");
    buf_reset(&scratch);
    P(map_event(MAP_TRIVY, f, 0, "http", &r, &scratch, NULL));
    assert_true(span_eq_str(r.str[VG_F_RULE], "DS002"));
    assert_true(span_eq_str(r.str[VG_F_OBJECT], "Dockerfile"));
    assert_true(span_eq_str(r.str[VG_F_SEVERITY], "error"));
    assert_true(span_eq_str(r.str[VG_F_IMAGE], "repo"));
    buf_release(&scratch);
    seen_release(&s);
}

static void test_k8s_layouts(void **state)
{
    struct seen s;
    enum trivy_layout layout;
    struct span f;
    struct span k8s;
    struct buf scratch;
    struct rec r;

    (void)state;
    seen_init(&s);
    split_file("defectdojo-unittests/kubernetes.json", &s, &layout);
    f = buf_span(&s.first);
    assert_int_equal(mp_map_get(f, SPAN_LIT("k8s"), &k8s), 1);
    assert_str_at(k8s, "namespace", "default");
    assert_str_at(k8s, "kind", "Deployment");
    assert_str_at(k8s, "name", "redis-follower");
    assert_str_at(k8s, "pod", NULL); /* a Deployment is not a pod */
    assert_str_at(k8s, "cluster",
                  "arn:aws:eks:us-east-1:576036489467:cluster/monitoring-test-cluster");
    assert_str_at(f, "ArtifactName", "gcr.io/google_samples/gb-redis-follower:v2");
    assert_str_at(f, "VulnerabilityID", "CVE-2020-27350");
    buf_init(&scratch, 4096);
    P(map_event(MAP_TRIVY, f, 0, "http", &r, &scratch, NULL));
    assert_true(span_eq_str(r.str[VG_F_NAMESPACE], "default"));
    assert_true(span_eq_str(r.str[VG_F_IMAGE], "gcr.io/google_samples/gb-redis-follower:v2"));
    /* the last one: a misconfiguration of Deployment/redis-leader, no image */
    f = buf_span(&s.last);
    assert_str_at(f, "FindingType", "misconfiguration");
    assert_str_at(f, "ArtifactName", NULL);
    assert_int_equal(mp_map_get(f, SPAN_LIT("k8s"), &k8s), 1);
    assert_str_at(k8s, "name", "redis-leader");
    seen_release(&s);

    seen_init(&s);
    split_file("defectdojo-unittests/issue_10991.json", &s, &layout);
    f = buf_span(&s.last); /* StatefulSet vault: config results, RepoTags in Metadata */
    assert_int_equal(mp_map_get(f, SPAN_LIT("k8s"), &k8s), 1);
    assert_str_at(k8s, "kind", "StatefulSet");
    assert_str_at(k8s, "cluster", NULL); /* ClusterName is "" here */
    assert_str_at(k8s, "name", "vault");
    assert_str_at(f, "ArtifactName", NULL); /* config results are not the image's */
    assert_str_at(f, "Class", "config");
    buf_release(&scratch);
    seen_release(&s);

    /* A Pod resource names the pod; a cluster name is kept. */
    const char *json = "{\"ClusterName\":\"prod\",\"Resources\":[{\"Namespace\":\"shop\",\"Kind\":"
                       "\"Pod\",\"Name\":\"web-1\",\"Results\":[{\"Target\":\"nginx:1.14 (debian "
                       "9.8)\",\"Class\":\"os-pkgs\",\"Type\":\"debian\",\"Vulnerabilities\":[{"
                       "\"VulnerabilityID\":\"CVE-1\",\"PkgName\":\"libc6\",\"InstalledVersion\":"
                       "\"2.24\",\"Severity\":\"CRITICAL\"}]}]}]}";
    seen_init(&s);
    assert_int_equal(split_json(json, strlen(json), &s, 0, NULL), 1);
    f = buf_span(&s.first);
    assert_int_equal(mp_map_get(f, SPAN_LIT("k8s"), &k8s), 1);
    assert_str_at(k8s, "pod", "web-1");
    assert_str_at(k8s, "cluster", "prod");
    assert_str_at(f, "ArtifactName", "nginx:1.14");
    buf_init(&scratch, 4096);
    P(map_event(MAP_TRIVY, f, 0, "http", &r, &scratch, NULL));
    assert_true(span_eq_str(r.str[VG_F_POD], "web-1"));
    assert_true(span_eq_str(r.str[VG_F_NAMESPACE], "shop"));
    assert_true(span_eq_str(r.str[VG_F_SEVERITY], "critical"));
    buf_release(&scratch);
    seen_release(&s);
}

static void test_grype(void **state)
{
    struct seen s;
    enum trivy_layout layout;
    struct span f;
    struct span m;
    struct buf scratch;
    struct rec r;

    (void)state;
    seen_init(&s);
    split_file("grype/defectdojo_fix_available.json", &s, &layout);
    f = buf_span(&s.first);
    assert_str_at(f, "VulnerabilityID", "CVE-2009-3882");
    assert_str_at(f, "Severity", "High");
    assert_str_at(f, "PkgName", "java");
    assert_str_at(f, "FixedVersion", "1.2.3");
    assert_str_at(f, "Status", "fixed");
    assert_str_at(f, "ArtifactName", "REDACTED");
    assert_str_at(f, "ArtifactType", "image");
    assert_str_at(f, "PrimaryURL", "https://nvd.nist.gov/vuln/detail/CVE-2009-3882");
    assert_int_equal(mp_map_get(f, SPAN_LIT("match"), &m), 1); /* the original, whole */
    assert_true(has_key(m, "matchDetails"));
    buf_init(&scratch, 4096);
    P(map_event(MAP_TRIVY, f, 0, "http", &r, &scratch, NULL));
    assert_true(span_eq_str(r.str[VG_F_SEVERITY], "error"));
    assert_true(span_eq_str(r.str[VG_F_IMAGE], "REDACTED"));
    seen_release(&s);

    /* grype 0.7.0: no fix object; a directory source is a plain string */
    seen_init(&s);
    split_file("grype/defectdojo_many_vulns3.json", &s, &layout);
    f = buf_span(&s.first);
    assert_false(has_key(f, "FixedVersion"));
    assert_false(has_key(f, "Status"));
    seen_release(&s);
    seen_init(&s);
    split_file("grype/defectdojo_many_vulns4.json", &s, &layout);
    assert_str_at(buf_span(&s.first), "ArtifactType", "directory");
    assert_str_at(buf_span(&s.first), "ArtifactName", "\".\""); /* quoted in the file */
    seen_release(&s);
    buf_release(&scratch);
}

static void test_legacy_and_flat(void **state)
{
    struct seen s;
    enum trivy_layout layout;
    struct span f;

    (void)state;
    seen_init(&s);
    split_file("defectdojo-unittests/legacy_many_vulns.json", &s, &layout);
    f = buf_span(&s.first);
    assert_str_at(f, "Target", "debian (debian 10.8)");
    assert_str_at(f, "Type", "debian");
    assert_str_at(f, "VulnerabilityID", "CVE-2011-3374");
    seen_release(&s);

    /* a flat finding (the bench generator's shape) passes through byte for byte */
    const char *flat = "{\"timestamp\":\"2024-05-01T00:22:23.325910Z\",\"SchemaVersion\":2,"
                       "\"ArtifactName\":\"img:1\",\"VulnerabilityID\":\"CVE-2024-1\",\"PkgName\":"
                       "\"p\",\"Severity\":\"LOW\",\"k8s\":{\"namespace\":\"n\",\"pod\":\"p-1\"}}";
    struct buf mp;
    struct buf out;
    buf_init(&mp, 1 << 16);
    buf_init(&out, 1 << 16);
    P(json_to_mp(span_str(flat), &mp, NULL, NULL));
    assert_int_equal(trivy_report_layout(buf_span(&mp)), TRIVY_LAYOUT_FINDING);
    seen_init(&s);
    assert_int_equal(trivy_report_split(buf_span(&mp), &out, on_finding, &s, NULL), 1);
    assert_memory_equal(s.first.data, mp.data, mp.len);
    seen_release(&s);
    /* and so do the flat findings this splitter writes */
    const char *own = "{\"Target\":\"x\",\"FindingType\":\"secret\",\"RuleID\":\"r\","
                      "\"Severity\":\"HIGH\"}";
    buf_reset(&mp);
    P(json_to_mp(span_str(own), &mp, NULL, NULL));
    assert_int_equal(trivy_report_layout(buf_span(&mp)), TRIVY_LAYOUT_FINDING);
    /* an array of flat findings, as the legacy layout */
    const char *arr =
        "[{\"VulnerabilityID\":\"CVE-1\",\"Severity\":\"LOW\"},{\"Target\":\"t\","
        "\"Vulnerabilities\":[{\"VulnerabilityID\":\"CVE-2\",\"Severity\":\"HIGH\"}]}]";
    seen_init(&s);
    assert_int_equal(split_json(arr, strlen(arr), &s, 0, NULL), 2);
    assert_str_at(buf_span(&s.last), "Target", "t");
    seen_release(&s);
    buf_release(&mp);
    buf_release(&out);
}

static void test_clean_and_broken(void **state)
{
    static const struct {
        const char *json;
        int want; /* count, or VG_EFORMAT */
    } cases[] = {
        { "{\"SchemaVersion\":2,\"ArtifactName\":\"clean\"}", 0 },
        { "{\"SchemaVersion\":2,\"Results\":null}", 0 },
        { "{\"SchemaVersion\":2,\"Results\":[]}", 0 },
        { "{\"SchemaVersion\":2,\"Results\":[{\"Target\":\"t\",\"Vulnerabilities\":null}]}", 0 },
        { "[]", 0 },
        { "{\"matches\":[]}", 0 },
        { "{\"ClusterName\":\"\",\"Resources\":[]}", 0 },
        { "{\"ClusterName\":\"\"}", 0 },
        /* broken: nothing is handed out even when good findings come first */
        { "{\"Results\":5}", VG_EFORMAT },
        { "{\"Results\":[1]}", VG_EFORMAT },
        { "{\"Results\":[{\"Vulnerabilities\":[{\"VulnerabilityID\":\"CVE-1\"},\"x\"]}]}",
          VG_EFORMAT },
        { "{\"Results\":[{\"Vulnerabilities\":[{\"VulnerabilityID\":\"CVE-1\"}]},{"
          "\"Secrets\":{}}]}",
          VG_EFORMAT },
        { "{\"Resources\":[{\"Results\":[{\"Misconfigurations\":[7]}]}]}", VG_EFORMAT },
        { "{\"ClusterName\":\"c\",\"Vulnerabilities\":\"x\"}", VG_EFORMAT },
        { "{\"matches\":[{\"vulnerability\":{\"id\":\"CVE-1\"}},null]}", VG_EFORMAT },
        { "[{\"VulnerabilityID\":\"CVE-1\"},3]", VG_EFORMAT },
        { "{\"kind\":\"EventList\"}", VG_EFORMAT },
        { "\"report\"", VG_EFORMAT },
        { "42", VG_EFORMAT },
    };

    (void)state;
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        struct seen s;
        struct errbuf eb;
        seen_init(&s);
        errbuf_clear(&eb);
        struct buf mp;
        struct buf out;
        buf_init(&mp, 1 << 16);
        buf_init(&out, 1 << 16);
        P(json_to_mp(span_str(cases[i].json), &mp, NULL, NULL));
        int calls = 0;
        int rc = trivy_report_split(buf_span(&mp), &out, on_finding, &s, &eb);
        calls = s.calls;
        if (rc != cases[i].want) {
            fail_msg("%s: got %d, want %d (%s)", cases[i].json, rc, cases[i].want, errbuf_msg(&eb));
        }
        if (rc < 0) {
            assert_int_equal(calls, 0);
            assert_true(strlen(errbuf_msg(&eb)) > 0);
        }
        buf_release(&mp);
        buf_release(&out);
        seen_release(&s);
    }
}

static int count_only(void *arg, struct span f)
{
    (void)f;
    (*(int *)arg)++;
    return 0;
}

static int stop_at_two(void *arg, struct span f)
{
    (void)f;
    return ++(*(int *)arg) == 2 ? -ECANCELED : 0;
}

static void test_limits_and_callback_errors(void **state)
{
    const char *json =
        "{\"ArtifactName\":\"a\",\"Results\":[{\"Target\":\"t\",\"Vulnerabilities\":["
        "{\"VulnerabilityID\":\"CVE-1\"},{\"VulnerabilityID\":\"CVE-2\"},"
        "{\"VulnerabilityID\":\"CVE-3\"}]}]}";
    struct buf mp;
    struct buf out;
    struct errbuf eb;
    int n = 0;

    (void)state;
    buf_init(&mp, 1 << 16);
    P(json_to_mp(span_str(json), &mp, NULL, NULL));
    /* the first callback error stops the split and is returned */
    buf_init(&out, 1 << 16);
    assert_int_equal(trivy_report_split(buf_span(&mp), &out, stop_at_two, &n, NULL), -ECANCELED);
    assert_int_equal(n, 2);
    buf_release(&out);
    /* a finding that does not fit out */
    buf_init(&out, 16);
    n = 0;
    errbuf_clear(&eb);
    assert_int_equal(trivy_report_split(buf_span(&mp), &out, count_only, &n, &eb), VG_ELIMIT);
    assert_int_equal(n, 0);
    assert_non_null(strstr(errbuf_msg(&eb), "does not fit"));
    buf_release(&out);
    /* the documented bound always suffices */
    buf_init(&out, 2 * mp.len + 65536);
    n = 0;
    assert_int_equal(trivy_report_split(buf_span(&mp), &out, count_only, &n, NULL), 3);
    buf_release(&out);
    /* malformed msgpack is refused, never read out of bounds */
    static const uint8_t bad[] = { 0x81, 0xa7, 'R',  'e',  's',  'u',  'l',
                                   't',  's',  0xdd, 0xff, 0xff, 0xff, 0xff };
    buf_init(&out, 1 << 16);
    n = 0;
    assert_true(trivy_report_split((struct span){ bad, sizeof(bad) }, &out, count_only, &n, NULL) <
                0);
    assert_int_equal(n, 0);
    buf_release(&out);
    buf_release(&mp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_corpus_report),
        cmocka_unit_test(test_corpus_listing_complete),
        cmocka_unit_test(test_report_context),
        cmocka_unit_test(test_misconfig_and_secret),
        cmocka_unit_test(test_k8s_layouts),
        cmocka_unit_test(test_grype),
        cmocka_unit_test(test_legacy_and_flat),
        cmocka_unit_test(test_clean_and_broken),
        cmocka_unit_test(test_limits_and_callback_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
