/* tests/unit/schemas/test_map.c: the mappers over the real corpus (VG_CORPUS_DIR,
 * FORMATS.md), every auth line shape, the syslog headers, generator events of each
 * kind, generic maps, rejections and the scratch-buffer discipline. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"
#include "schemas/map.h"
#include "schemas/map_int.h"

#define MAX_FILES 128

/* ---- helpers ---- */

static const char *corpus_dir(void)
{
    const char *d = getenv("VG_CORPUS_DIR");
    return d ? d : "tests/data/corpus";
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t cap = 0;
    size_t n = 0;

    if (!f) {
        fail_msg("cannot open '%s': %s", path, strerror(errno));
    }
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            data = realloc(data, cap);
            assert_non_null(data);
        }
        size_t got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    data[n] = 0;
    *len = n;
    return data;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir ending with one of the suffixes; returns the count. */
static size_t list_dir(const char *dir, const char *const *suffixes, char **names)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (!d) {
        fail_msg("cannot open directory '%s'", dir);
    }
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        for (const char *const *s = suffixes; *s; s++) {
            size_t sl = strlen(*s);
            if (e->d_name[0] != '.' && l > sl && strcmp(e->d_name + l - sl, *s) == 0) {
                assert_true(n < MAX_FILES);
                names[n++] = strdup(e->d_name);
                break;
            }
        }
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    return n;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
}

static bool field_is(const struct rec *r, enum vg_field f, const char *want)
{
    if (want == NULL) {
        return r->str[f].p == NULL;
    }
    return r->str[f].p != NULL && span_eq_str(r->str[f], want);
}

#define assert_field(r, f, want)                                                                \
 do {                                                                                           \
  if (!field_is((r), (f), (want))) {                                                            \
   fail_msg("%s: got '%.*s' (%s), want '%s'", vg_field_name(f), (int)(r)->str[f].n,             \
            (r)->str[f].p ? (const char *)(r)->str[f].p : "", (r)->str[f].p ? "set" : "absent", \
            (want) ? (want) : "(absent)");                                                      \
  }                                                                                             \
 } while (0)

static void assert_span_field(const struct rec *r, enum vg_field f, struct span want)
{
    if (!(r->str[f].p && span_eq(r->str[f], want))) {
        fail_msg("%s: got '%.*s', want '%.*s'", vg_field_name(f), (int)r->str[f].n,
                 r->str[f].p ? (const char *)r->str[f].p : "", (int)want.n,
                 want.p ? (const char *)want.p : "");
    }
}

static int64_t ts_of(const char *s)
{
    int64_t ns = 0;
    assert_int_equal(vg_time_parse_rfc3339(span_str(s), &ns), 0);
    return ns;
}

/* A value at a path of nested map keys in msgpack (NULL-terminated). */
static bool mp_path(struct span map, struct span *out, ...)
{
    va_list ap;
    const char *k;
    struct span cur = map;

    va_start(ap, out);
    while ((k = va_arg(ap, const char *)) != NULL) {
        if (mp_map_get(cur, span_str(k), &cur) != 1) {
            va_end(ap);
            return false;
        }
    }
    va_end(ap);
    *out = cur;
    return true;
}

static bool mp_path_str(struct span map, struct span *out, const char *k1, const char *k2)
{
    struct span v;
    if (!(k2 ? mp_path(map, &v, k1, k2, NULL) : mp_path(map, &v, k1, NULL))) {
        return false;
    }
    return mp_get_str(v, out) && out->n > 0 && !span_eq_str(*out, "<NA>");
}

struct mapped {
    struct buf mp;      /* the event as msgpack */
    struct buf scratch; /* the mapper's scratch */
    struct rec r;
    struct errbuf eb;
};

static void mapped_init(struct mapped *m)
{
    buf_init(&m->mp, 1 << 24);
    buf_init(&m->scratch, 1 << 16);
    rec_init(&m->r);
    errbuf_clear(&m->eb);
}

static void mapped_release(struct mapped *m)
{
    buf_release(&m->mp);
    buf_release(&m->scratch);
}

/* JSON text to msgpack, then map_event. Returns map_event's code. */
static int map_json(struct mapped *m, enum map_source hint, const char *json, int64_t fallback)
{
    buf_reset(&m->mp);
    buf_reset(&m->scratch);
    errbuf_clear(&m->eb);
    assert_int_equal(json_to_mp(span_str(json), &m->mp, NULL, NULL), 0);
    return map_event(hint, buf_span(&m->mp), fallback, "http", &m->r, &m->scratch, &m->eb);
}

/* ---- key tables ---- */

static void check_sorted(const struct map__keydef *tab, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strlen(tab[i].name), tab[i].len);
        assert_int_equal(map__key_find(tab, n, span_str(tab[i].name)), tab[i].id);
        if (i > 0) {
            bool ordered = tab[i - 1].len < tab[i].len ||
                           (tab[i - 1].len == tab[i].len &&
                            memcmp(tab[i - 1].name, tab[i].name, tab[i].len) < 0);
            if (!ordered) {
                fail_msg("key table out of order at '%s'", tab[i].name);
            }
        }
    }
    assert_int_equal(map__key_find(tab, n, SPAN_LIT("no.such.key")), -1);
    assert_int_equal(map__key_find(tab, n, SPAN_LIT("")), -1);
}

static void test_key_tables_sorted(void **state)
{
    (void)state;
    check_sorted(map__top_keys, map__top_nkeys);
    check_sorted(map__falco_keys, map__falco_nkeys);
    assert_int_equal(map__top_nkeys, MT_COUNT);
    assert_int_equal(map__falco_nkeys, MF_COUNT);
}

/* ---- Falco (FORMATS.md 1) ---- */

struct falco_stats {
    int docs;
    int with_pod;
    int internal;
};

/* Checks one Falco alert against the values read from the document itself. */
static void check_falco_doc(const char *file, struct span doc, struct falco_stats *st)
{
    struct buf scratch;
    struct rec r;
    struct errbuf eb;
    struct span s;
    struct span v;

    buf_init(&scratch, 1 << 16);
    errbuf_clear(&eb);
    for (int pass = 0; pass < 2; pass++) {
        enum map_source hint = pass == 0 ? MAP_AUTO : MAP_FALCO;
        buf_reset(&scratch);
        int rc = map_event(hint, doc, 1, "http", &r, &scratch, &eb);
        if (rc != 0) {
            fail_msg("%s: %s", file, errbuf_msg(&eb));
        }
        assert_field(&r, VG_F_SOURCE, "falco");
        assert_true(r.raw.p == doc.p && r.raw.n == doc.n);

        /* ts = .time, with all 9 digits */
        assert_true(mp_path_str(doc, &s, "time", NULL));
        int64_t want;
        assert_int_equal(vg_time_parse_rfc3339(s, &want), 0);
        assert_true(r.has_ts);
        assert_int_equal(r.ts, want);

        assert_true(mp_path_str(doc, &s, "rule", NULL));
        assert_span_field(&r, VG_F_RULE, s);
        assert_true(mp_path_str(doc, &s, "priority", NULL));
        int sev = vg_severity_parse(s);
        assert_true(sev >= 0);
        assert_field(&r, VG_F_SEVERITY, vg_severity_name((enum vg_severity)sev));
        assert_true(mp_path_str(doc, &s, "output", NULL));
        assert_span_field(&r, VG_F_MESSAGE, s);
        if (mp_path_str(doc, &s, "hostname", NULL)) {
            assert_span_field(&r, VG_F_HOST, s);
        }

        /* pod / namespace: k8s.* for syscall alerts, ka.* for k8s_audit ones */
        struct span of;
        assert_true(mp_path(doc, &of, "output_fields", NULL));
        struct span res;
        if (mp_path_str(of, &s, "k8s.pod.name", NULL) ||
            (mp_path_str(of, &res, "ka.target.resource", NULL) && span_eq_str(res, "pods") &&
             mp_path_str(of, &s, "ka.target.name", NULL))) {
            assert_span_field(&r, VG_F_POD, s);
            st->with_pod += pass == 0;
        } else {
            assert_field(&r, VG_F_POD, NULL);
        }
        if (mp_path_str(of, &s, "k8s.ns.name", NULL) ||
            mp_path_str(of, &s, "ka.target.namespace", NULL)) {
            assert_span_field(&r, VG_F_NAMESPACE, s);
        } else {
            assert_field(&r, VG_F_NAMESPACE, NULL);
        }
        if (mp_path_str(of, &s, "proc.cmdline", NULL)) {
            assert_span_field(&r, VG_F_CMDLINE, s);
        }
        if (mp_path_str(of, &s, "user.name", NULL) || mp_path_str(of, &s, "ka.user.name", NULL)) {
            assert_span_field(&r, VG_F_USER, s);
        }
        if (mp_path_str(doc, &s, "source", NULL) && span_eq_str(s, "internal")) {
            assert_field(&r, VG_F_KIND, "log");
            st->internal += pass == 0;
        } else if (!mp_path_str(doc, &s, "source", NULL) || span_eq_str(s, "syscall")) {
            assert_field(&r, VG_F_KIND, "runtime");
        } else {
            assert_field(&r, VG_F_KIND, "audit");
        }
        /* the record encodes and decodes to the same fields */
        struct buf enc;
        struct rec back;
        buf_init(&enc, 1 << 24);
        assert_int_equal(rec_encode(&r, &enc), 0);
        struct span in = buf_span(&enc);
        assert_int_equal(rec_decode(&in, &back), 0);
        assert_int_equal(back.ts, r.ts);
        assert_true(span_eq(back.str[VG_F_RULE], r.str[VG_F_RULE]));
        assert_true(span_eq(back.raw, doc));
        buf_release(&enc);
        (void)v;
    }
    st->docs++;
    buf_release(&scratch);
}

/* Walks every JSON document of a file (NDJSON or pretty-printed). */
static void for_each_doc(const char *path, void (*fn)(const char *, struct span, void *), void *arg)
{
    size_t len;
    char *text = read_file(path, &len);
    struct span in = { (const uint8_t *)text, len };
    struct buf mp;

    buf_init(&mp, 1 << 24);
    for (;;) {
        size_t used = 0;
        struct errbuf eb;
        errbuf_clear(&eb);
        buf_reset(&mp);
        int rc = json_to_mp(in, &mp, &used, &eb);
        if (rc == -ENODATA) {
            break;
        }
        if (rc != 0) {
            fail_msg("%s: %s", path, errbuf_msg(&eb));
        }
        fn(path, buf_span(&mp), arg);
        span_advance(&in, used);
    }
    buf_release(&mp);
    free(text);
}

static void falco_doc_cb(const char *file, struct span doc, void *arg)
{
    check_falco_doc(file, doc, arg);
}

static void test_falco_corpus(void **state)
{
    static const char *const sfx[] = { ".json", ".ndjson", NULL };
    struct falco_stats st = { 0 };
    char dir[1024];
    char path[2048];
    char *names[MAX_FILES];

    (void)state;
    for (int d = 0; d < 2; d++) {
        snprintf(dir, sizeof(dir), "%s/falco%s", corpus_dir(), d ? "/extracted" : "");
        size_t n = list_dir(dir, sfx, names);
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            for_each_doc(path, falco_doc_cb, &st);
        }
        free_names(names, n);
    }
    assert_int_equal(st.docs, 37);     /* FORMATS.md: "the 37 objects" */
    assert_int_equal(st.internal, 5);  /* the five metrics snapshots */
    assert_int_equal(st.with_pod, 14); /* 12 k8s.pod.name + 2 ka.target pods */
}

/* Explicit values for a few alerts, one per notable shape. */
static void test_falco_fields(void **state)
{
    struct mapped m;

    (void)state;
    mapped_init(&m);
    /* outputs_channels: 9-digit time, image repository without tag, Critical */
    assert_int_equal(
        map_json(&m, MAP_AUTO,
                 "{\"hostname\":\"falco-xczjd\",\"output\":\"13:44:05.478445995: Critical A "
                 "shell\",\"priority\":\"Critical\",\"rule\":\"Terminal shell in "
                 "container\",\"source\":\"syscall\",\"tags\":[\"container\"],\"time\":\"2023-"
                 "05-25T13:44:05.478445995Z\", \"output_fields\": "
                 "{\"container.id\":\"ee97d9c4186f\",\"container.image.repository\":\"docker.io/"
                 "library/alpine\",\"evt.time\":1685022245478445995,\"k8s.ns.name\":\"default\","
                 "\"k8s.pod.name\":\"kubecon\",\"proc.cmdline\":\"sh -c clear; (bash || ash || "
                 "sh)\",\"proc.name\":\"sh\",\"proc.pname\":null,\"user.name\":\"root\"}}",
                 0),
        0);
    assert_int_equal(m.r.ts, 1685022245478445995LL);
    assert_field(&m.r, VG_F_SEVERITY, "critical");
    assert_field(&m.r, VG_F_KIND, "runtime");
    assert_field(&m.r, VG_F_HOST, "falco-xczjd");
    assert_field(&m.r, VG_F_CONTAINER_ID, "ee97d9c4186f");
    assert_field(&m.r, VG_F_IMAGE, "docker.io/library/alpine");
    assert_field(&m.r, VG_F_POD, "kubecon");
    assert_field(&m.r, VG_F_NAMESPACE, "default");
    assert_field(&m.r, VG_F_PROCESS, "sh");
    assert_field(&m.r, VG_F_CMDLINE, "sh -c clear; (bash || ash || sh)");
    assert_field(&m.r, VG_F_USER, "root");

    /* repository + tag; "<NA>" and null are absent */
    assert_int_equal(
        map_json(&m, MAP_FALCO,
                 "{\"output\":\"x\",\"priority\":\"Notice\",\"rule\":\"Contact K8S API Server "
                 "From Container\",\"time\":\"2021-04-10T19:27:21.038853452Z\",\"output_fields\":"
                 "{\"container.id\":\"a1b2c3d4e5f6\",\"container.image.repository\":\"devopps/"
                 "falco-pod-delete\",\"container.image.tag\":\"latest\",\"k8s.ns.name\":\"<NA>\","
                 "\"k8s.pod.name\":null,\"user.name\":\"<NA>\",\"fd.sip\":\"10.96.0.1\","
                 "\"fd.sport\":443,\"fd.cip\":\"10.1.2.3\",\"fd.name\":\"10.1.2.3:4444->10.96.0."
                 "1:443\",\"evt.type\":\"connect\"}}",
                 0),
        0);
    assert_field(&m.r, VG_F_IMAGE, "devopps/falco-pod-delete:latest");
    assert_field(&m.r, VG_F_NAMESPACE, NULL);
    assert_field(&m.r, VG_F_POD, NULL);
    assert_field(&m.r, VG_F_USER, NULL);
    assert_field(&m.r, VG_F_DST_IP, "10.96.0.1");
    assert_field(&m.r, VG_F_SRC_IP, "10.1.2.3");
    assert_true(m.r.has_dst_port);
    assert_int_equal(m.r.dst_port, 443);
    assert_field(&m.r, VG_F_ACTION, "connect");
    assert_field(&m.r, VG_F_OBJECT, "10.1.2.3:4444->10.96.0.1:443");
    assert_field(&m.r, VG_F_SEVERITY, "notice");

    /* host process: container.id "host" is kept as Falco says it */
    assert_int_equal(map_json(&m, MAP_AUTO,
                              "{\"output\":\"x\",\"priority\":\"Warning\",\"rule\":\"Read "
                              "sensitive file untrusted\",\"source\":\"syscall\",\"time\":\"2025-"
                              "05-07T12:50:34.502309868Z\",\"output_fields\":{\"container.id\":"
                              "\"host\",\"container.name\":\"host\",\"fd.name\":\"/etc/shadow\"}}",
                              0),
                     0);
    assert_field(&m.r, VG_F_CONTAINER_ID, "host");
    assert_field(&m.r, VG_F_CONTAINER_NAME, "host");
    assert_field(&m.r, VG_F_OBJECT, "/etc/shadow");

    /* k8s_audit source: ka.* fields, response code as a string */
    assert_int_equal(
        map_json(&m, MAP_AUTO,
                 "{\"hostname\":\"falco-k8saudit-eks-96d7f6f99-vwjgc\",\"output\":\"x\","
                 "\"priority\":\"Notice\",\"rule\":\"Attach/Exec Pod\",\"source\":\"k8s_audit\","
                 "\"tags\":[\"k8s\"],\"time\":\"2023-05-10T14:09:24.046826000Z\", "
                 "\"output_fields\": {\"evt.time\":1683727764046826000,\"ka.target.name\":"
                 "\"kubecon\",\"ka.target.namespace\":\"default\",\"ka.target.resource\":\"pods\","
                 "\"ka.target.subresource\":\"exec\",\"ka.uri.param[command]\":\"sh\","
                 "\"ka.user.name\":\"kubernetes-admin\",\"ka.verb\":\"create\",\"ka.response."
                 "code\":\"101\"}}",
                 0),
        0);
    assert_field(&m.r, VG_F_KIND, "audit");
    assert_field(&m.r, VG_F_RULE, "Attach/Exec Pod");
    assert_field(&m.r, VG_F_POD, "kubecon");
    assert_field(&m.r, VG_F_NAMESPACE, "default");
    assert_field(&m.r, VG_F_USER, "kubernetes-admin");
    assert_field(&m.r, VG_F_CMDLINE, "sh");
    assert_field(&m.r, VG_F_ACTION, "create");
    assert_field(&m.r, VG_F_OBJECT, "pods/kubecon/exec");
    assert_field(&m.r, VG_F_OUTCOME, "success");
    assert_int_equal(m.r.ts, 1683727764046826000LL);

    /* gcp: callerIP; "x.x.x.x" is not an IP; keys are exact ("gcp.user " is not
     * "gcp.user") */
    assert_int_equal(map_json(&m, MAP_AUTO,
                              "{\"output\":\"x\",\"priority\":\"Notice\",\"rule\":\"GCP WAF\","
                              "\"source\":\"auditlogs\",\"time\":\"2023-04-22T23:36:49.223570000Z"
                              "\",\"output_fields\":{\"gcp.user \":\"spoof\",\"al.principal.ip\":"
                              "\"x.x.x.x\",\"gcp.callerIP\":\"41.45.115.69\"}}",
                              0),
                     0);
    assert_field(&m.r, VG_F_USER, NULL);
    assert_field(&m.r, VG_F_SRC_IP, "41.45.115.69");
    assert_field(&m.r, VG_F_KIND, "audit");

    /* no .time: evt.time (int64 ns beyond 2^53, exact) */
    assert_int_equal(map_json(&m, MAP_FALCO,
                              "{\"output\":\"x\",\"priority\":\"Error\",\"rule\":\"r\","
                              "\"output_fields\":{\"evt.time\":1685022245478445995}}",
                              7),
                     0);
    assert_int_equal(m.r.ts, 1685022245478445995LL);
    assert_field(&m.r, VG_F_SEVERITY, "error");
    /* the 2016 key name, also an int */
    assert_int_equal(map_json(&m, MAP_FALCO,
                              "{\"output\":\"x\",\"priority\":\"Informational\",\"rule\":\"r\","
                              "\"time\":\"garbage\",\"output_fields\":{\"evt.time.iso8601\":"
                              "1470327477881781397}}",
                              7),
                     0);
    assert_int_equal(m.r.ts, 1470327477881781397LL);
    assert_field(&m.r, VG_F_SEVERITY, "info");
    /* no time at all: the fallback */
    assert_int_equal(map_json(&m, MAP_FALCO,
                              "{\"output\":\"x\",\"priority\":\"Debug\",\"rule\":\"r\","
                              "\"output_fields\":{}}",
                              42),
                     0);
    assert_int_equal(m.r.ts, 42);
    assert_field(&m.r, VG_F_SEVERITY, "debug");
    mapped_release(&m);
}

/* ---- Kubernetes audit (FORMATS.md 2) ---- */

struct k8s_stats {
    int events;
    int rejected;
    int success;
    int failure;
    int us_precision; /* ts with a non-zero sub-second part, a multiple of 1000 ns */
};

static void k8s_doc_cb(const char *file, struct span doc, void *arg)
{
    struct k8s_stats *st = arg;
    struct buf scratch;
    struct rec r;
    struct errbuf eb;
    struct span s;
    struct span v;

    buf_init(&scratch, 1 << 16);
    errbuf_clear(&eb);
    if (strstr(file, "fal_01_003.json")) {
        /* {"kind": 0}: FORMATS.md's negative fixture */
        assert_int_equal(map_event(MAP_K8S_AUDIT, doc, 1, "http", &r, &scratch, &eb), VG_EFORMAT);
        assert_true(strlen(errbuf_msg(&eb)) > 0);
        st->rejected++;
        buf_release(&scratch);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        buf_reset(&scratch);
        int rc = map_event(pass ? MAP_K8S_AUDIT : MAP_AUTO, doc, 1, "http", &r, &scratch, &eb);
        if (rc != 0) {
            fail_msg("%s: %s", file, errbuf_msg(&eb));
        }
        assert_field(&r, VG_F_SOURCE, "k8s-audit");
        assert_field(&r, VG_F_KIND, "audit");

        /* ts from the first time field present, exactly */
        int64_t want;
        if (mp_path_str(doc, &s, "requestReceivedTimestamp", NULL) ||
            mp_path_str(doc, &s, "stageTimestamp", NULL) ||
            mp_path_str(doc, &s, "timestamp", NULL) ||
            mp_path_str(doc, &s, "metadata", "creationTimestamp")) {
            assert_int_equal(vg_time_parse_rfc3339(s, &want), 0);
        } else {
            fail_msg("%s: no time field", file);
        }
        assert_int_equal(r.ts, want);
        assert_int_equal(r.ts % 1000, 0);
        if (pass == 0 && r.ts % VG_NS_PER_SEC != 0) {
            st->us_precision++;
        }

        if (mp_path_str(doc, &s, "impersonatedUser", "username") ||
            mp_path_str(doc, &s, "user", "username")) {
            assert_span_field(&r, VG_F_USER, s);
        }
        assert_true(mp_path_str(doc, &s, "verb", NULL));
        assert_span_field(&r, VG_F_ACTION, s);
        struct span ips;
        assert_true(mp_path(doc, &ips, "sourceIPs", NULL));
        struct mp_obj o;
        assert_int_equal(mp_read(&ips, &o), 1);
        assert_true(o.type == MP_ARRAY && o.v.count >= 1);
        assert_true(mp_get_str(ips, &s));
        assert_span_field(&r, VG_F_SRC_IP, s);
        int64_t code;
        assert_true(mp_path(doc, &v, "responseStatus", "code", NULL));
        assert_true(mp_get_i64(v, &code));
        if ((code >= 200 && code < 300) || code == 101) {
            assert_field(&r, VG_F_OUTCOME, "success");
            assert_field(&r, VG_F_SEVERITY, "notice");
            st->success += pass == 0;
        } else {
            assert_true(code == 403);
            assert_field(&r, VG_F_OUTCOME, "failure");
            assert_field(&r, VG_F_SEVERITY, "warning");
            st->failure += pass == 0;
        }
        if (mp_path_str(doc, &s, "objectRef", "namespace")) {
            assert_span_field(&r, VG_F_NAMESPACE, s);
        } else {
            assert_field(&r, VG_F_NAMESPACE, NULL);
        }
        struct span res;
        if (mp_path_str(doc, &res, "objectRef", "resource") && span_eq_str(res, "pods") &&
            mp_path_str(doc, &s, "objectRef", "name")) {
            assert_span_field(&r, VG_F_POD, s);
        } else {
            assert_field(&r, VG_F_POD, NULL);
        }
        assert_true(rec_has(&r, VG_F_OBJECT));
    }
    st->events++;
    buf_release(&scratch);
}

static void test_k8s_corpus(void **state)
{
    static const char *const log_sfx[] = { ".log", NULL };
    static const char *const json_sfx[] = { ".json", NULL };
    struct k8s_stats st = { 0 };
    char dir[1024];
    char path[2048];
    char *names[MAX_FILES];

    (void)state;
    for (int d = 0; d < 2; d++) {
        snprintf(dir, sizeof(dir), "%s/k8s-audit%s", corpus_dir(), d ? "/falco-trace-files" : "");
        size_t n = list_dir(dir, d ? json_sfx : log_sfx, names);
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            for_each_doc(path, k8s_doc_cb, &st);
        }
        free_names(names, n);
    }
    /* FORMATS.md: 90 events (43 v1 + 9 v1beta1 + 38 without apiVersion), plus {"kind":0};
     * codes 201 x39, 200 x37, 403 x11, 101 x3; 53 with requestReceivedTimestamp (µs). */
    assert_int_equal(st.events, 90);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.success, 79);
    assert_int_equal(st.failure, 11);
    assert_int_equal(st.us_precision, 53);
}

static char *corpus_text(const char *rel)
{
    char path[2048];
    size_t len;
    snprintf(path, sizeof(path), "%s/%s", corpus_dir(), rel);
    return read_file(path, &len);
}

static void test_k8s_fields(void **state)
{
    struct mapped m;
    char *text;

    (void)state;
    mapped_init(&m);

    /* exec: container= and command= from the URI; object in REST order */
    text = corpus_text("k8s-audit/falco-trace-files/exec_pod.json");
    assert_int_equal(map_json(&m, MAP_AUTO, text, 0), 0);
    free(text);
    assert_field(&m.r, VG_F_POD, "nginx-deployment-7998647bdf-phvq7");
    assert_field(&m.r, VG_F_CONTAINER_NAME, "nginx1");
    assert_field(&m.r, VG_F_CMDLINE, "bash");
    assert_field(&m.r, VG_F_OBJECT, "pods/nginx-deployment-7998647bdf-phvq7/exec");
    assert_field(&m.r, VG_F_USER, "minikube-user");
    assert_field(&m.r, VG_F_SRC_IP, "192.168.99.1");
    assert_field(&m.r, VG_F_OUTCOME, "success");
    assert_int_equal(m.r.ts, ts_of("2018-10-26T13:38:34.867116Z"));

    /* URL-encoded command, no trailing newline in the file */
    text = corpus_text("k8s-audit/crowdsec_k8s-audit-pod-exec-file.log");
    assert_int_equal(map_json(&m, MAP_AUTO, text, 0), 0);
    free(text);
    assert_field(&m.r, VG_F_CMDLINE, "/bin/bash");
    assert_field(&m.r, VG_F_CONTAINER_NAME, "centos");
    assert_field(&m.r, VG_F_NAMESPACE, "foo");
    assert_field(&m.r, VG_F_POD, "test-pod-1");
    assert_int_equal(m.r.ts, ts_of("2023-05-17T15:08:22.763960Z"));

    /* attach: container, but no command */
    text = corpus_text("k8s-audit/falco-trace-files/attach_pod.json");
    assert_int_equal(map_json(&m, MAP_AUTO, text, 0), 0);
    free(text);
    assert_field(&m.r, VG_F_CONTAINER_NAME, "nginx1");
    assert_field(&m.r, VG_F_CMDLINE, NULL);
    assert_field(&m.r, VG_F_OBJECT, "pods/nginx-deployment-7998647bdf-phvq7/attach");

    /* image from requestObject (pod, then deployment template) */
    text = corpus_text("k8s-audit/falco-trace-files/create_nginx_pod_privileged.json");
    assert_int_equal(map_json(&m, MAP_AUTO, text, 0), 0);
    free(text);
    assert_field(&m.r, VG_F_IMAGE, "nginx");
    assert_field(&m.r, VG_F_OBJECT, "pods");
    assert_field(&m.r, VG_F_POD, NULL);
    text = corpus_text("k8s-audit/falco-trace-files/create_deployment.json");
    assert_int_equal(map_json(&m, MAP_AUTO, text, 0), 0);
    free(text);
    assert_field(&m.r, VG_F_IMAGE, "nginx");
    assert_field(&m.r, VG_F_OBJECT, "deployments/nginx-deployment");

    /* audit2rbac: impersonated user, second precision, 403, IPv6 ::1; then a
     * non-resource request */
    text = corpus_text("k8s-audit/audit2rbac_demo.log");
    *strchr(text, '\n') = 0;
    assert_int_equal(map_json(&m, MAP_AUTO, text, 0), 0);
    assert_field(&m.r, VG_F_USER, "bob");
    assert_field(&m.r, VG_F_SRC_IP, "::1");
    assert_field(&m.r, VG_F_OUTCOME, "failure");
    assert_field(&m.r, VG_F_SEVERITY, "warning");
    assert_int_equal(m.r.ts, ts_of("2017-09-11T19:55:05Z"));
    assert_true(rec_has(&m.r, VG_F_MESSAGE));
    free(text);
    assert_int_equal(map_json(&m, MAP_K8S_AUDIT,
                              "{\"kind\":\"Event\",\"verb\":\"get\",\"requestURI\":\"/apis?x=1\","
                              "\"sourceIPs\":[\"::ffff:10.0.0.9\",\"10.0.0.1\"],\"responseStatus\":"
                              "{\"code\":500},\"user\":{\"username\":\"u\"}}",
                              9),
                     0);
    assert_field(&m.r, VG_F_OBJECT, "/apis");
    assert_int_equal(m.r.ts, 9);
    /* times whose ns do not fit int64 are not times: the next field is used */
    assert_int_equal(map_json(&m, MAP_K8S_AUDIT,
                              "{\"verb\":\"get\",\"requestReceivedTimestamp\":\"9999-12-31T23:59:"
                              "59.999999Z\",\"stageTimestamp\":\"2020-01-01T00:00:00.000001Z\"}",
                              9),
                     0);
    assert_int_equal(m.r.ts, ts_of("2020-01-01T00:00:00.000001Z"));
    assert_int_equal(map_json(&m, MAP_K8S_AUDIT,
                              "{\"kind\":\"Event\",\"verb\":\"get\",\"requestURI\":\"/apis?x=1\","
                              "\"sourceIPs\":[\"::ffff:10.0.0.9\",\"10.0.0.1\"],\"responseStatus\":"
                              "{\"code\":500},\"user\":{\"username\":\"u\"}}",
                              9),
                     0);
    assert_field(&m.r, VG_F_SRC_IP, "10.0.0.9");
    assert_field(&m.r, VG_F_OUTCOME, "failure");
    assert_field(&m.r, VG_F_SEVERITY, "info");
    assert_int_equal(m.r.ts, 9);

    /* exec with several command= and container= parameters, '+' and %XX */
    assert_int_equal(
        map_json(&m, MAP_K8S_AUDIT,
                 "{\"kind\":\"Event\",\"verb\":\"create\",\"requestURI\":\"/api/v1/namespaces/a/"
                 "pods/p/exec?command=sh&command=-c&command=echo+hi%3B%20id&container=c%2D1&"
                 "container=c2&stdin=true\",\"objectRef\":{\"resource\":\"pods\",\"name\":\"p\","
                 "\"namespace\":\"a\",\"subresource\":\"exec\"},\"responseStatus\":{\"code\":"
                 "101}}",
                 0),
        0);
    assert_field(&m.r, VG_F_CMDLINE, "sh -c echo hi; id");
    assert_field(&m.r, VG_F_CONTAINER_NAME, "c-1");
    assert_field(&m.r, VG_F_SEVERITY, "notice");

    /* no objectRef: exec recognized from the path */
    assert_int_equal(map_json(&m, MAP_K8S_AUDIT,
                              "{\"verb\":\"create\",\"requestURI\":\"/api/v1/namespaces/a/pods/p/"
                              "exec?container=x&command=ls\"}",
                              0),
                     0);
    assert_field(&m.r, VG_F_CMDLINE, "ls");
    assert_field(&m.r, VG_F_CONTAINER_NAME, "x");
    assert_field(&m.r, VG_F_OUTCOME, NULL);
    mapped_release(&m);
}

/* ---- auth lines (FORMATS.md 3) ---- */

struct auth_counts {
    int lines;
    int headers; /* map_syslog_bsd succeeded */
    int failure;
    int success;
    int unknown;
    uint64_t repeated; /* sum of N over "message repeated N times" lines */
};

static void count_auth_file(const char *path, int64_t ref_ts, struct auth_counts *c)
{
    size_t len;
    char *text = read_file(path, &len);
    struct buf scratch;
    char *p = text;

    buf_init(&scratch, 4096);
    memset(c, 0, sizeof(*c));
    while (*p) {
        char *nl = strchr(p, '\n');
        struct span line = { (const uint8_t *)p, nl ? (size_t)(nl - p) : strlen(p) };
        struct rec r;
        struct span msg;
        struct span inner;

        p = nl ? nl + 1 : p + line.n;
        if (line.n == 0) {
            continue; /* sshd_banner_exchange.log ends with an empty line */
        }
        c->lines++;
        rec_init(&r);
        if (map_syslog_bsd(line, ref_ts, &r, &msg)) {
            c->headers++;
            assert_true(r.has_ts);
            assert_true(rec_has(&r, VG_F_HOST));
            uint32_t n = map_repeat_count(msg, &inner);
            if (n > 1) {
                c->repeated += n;
            }
        }
        rec_init(&r);
        if (!map_auth_line(line, &r, &scratch)) {
            continue;
        }
        assert_field(&r, VG_F_KIND, "auth");
        assert_true(rec_has(&r, VG_F_ACTION));
        assert_true(rec_has(&r, VG_F_HOST));
        if (field_is(&r, VG_F_OUTCOME, "failure")) {
            assert_field(&r, VG_F_SEVERITY, "warning");
            c->failure++;
        } else if (field_is(&r, VG_F_OUTCOME, "success")) {
            assert_field(&r, VG_F_SEVERITY, "info");
            c->success++;
        } else {
            assert_field(&r, VG_F_OUTCOME, "unknown");
            c->unknown++;
        }
        if (rec_has(&r, VG_F_SRC_IP)) {
            assert_true(map__is_ip(r.str[VG_F_SRC_IP]));
        }
    }
    buf_release(&scratch);
    free(text);
}

/* Expected counts per file, counted with grep -cE over the raw files (patterns below,
 * each match checked by eye against the file). F (failure):
 *   'Failed [a-z/-]+ for |Invalid user |input_userauth_request: invalid user|maximum
 *   authentication attempts exceeded|Too many authentication failures|\): authentication
 *   failure;|PAM [0-9]+ more authentication failures|Bad protocol version
 *   identification|Did not receive identification string|Unable to negotiate|failed
 *   adding user|(Connection closed by|Disconnected from|Connection reset by)
 *   (authenticating|invalid) user|not allowed because|refused connect|banner exchange:
 *   |Timeout before authentication|ssh_dispatch_run_fatal|pam_tally2\(.*tally'
 * S (success): 'Accepted [a-z/-]+ for |session opened for user|sudo: +[^ ]+ :
 *   TTY=|Successful su for|new user: name=|new group: name=|password changed for'
 * U (unknown): 'session closed for user|Connection closed by [0-9]|Disconnected from
 *   [0-9]|Connection reset by [0-9]|Received disconnect from|Connection from .* on '
 * The three sets match disjoint lines (checked: grep -E F | grep -cE 'S|U' is 0).
 * Lines: grep -c . (non-empty). Repeats: grep -oE 'message repeated [0-9]+' | awk '{s+=$3}'.
 * Unrecognized on purpose: "Disconnected from totobad user" (not an sshd shape), "Magic
 * value check failed", "kex_exchange_identification: banner line too long" (its
 * "banner exchange" twin is counted), "check pass; user unknown", "PAM service(sshd)
 * ignoring max retries", systemd-logind, "+ /dev/pts/N root:root" (twin of
 * "Successful su"), "user ... does not exist in /etc/passwd". */
static void test_auth_corpus(void **state)
{
    static const struct {
        const char *file;
        const char *ref; /* the reference time for the year of BSD headers */
        int lines, failure, success, unknown;
        uint64_t repeated;
    } want[] = {
        { "elastic-examples_suspicious_login_activity_auth.log", "2017-04-21T00:00:00Z", 7121, 2001,
          1720, 2016, 410 },
        { "crowdsec-hub-tests/opnsense-sshd.log", "2022-02-01T00:00:00Z", 10, 10, 0, 0, 0 },
        { "crowdsec-hub-tests/pam-logs.log", "2024-01-01T00:00:00Z", 2, 2, 0, 0, 0 },
        { "crowdsec-hub-tests/ssh-generic-test.log", "2024-07-01T00:00:00Z", 1, 1, 0, 0, 0 },
        { "crowdsec-hub-tests/ssh-timeout.log", "2024-07-03T00:00:00Z", 8, 8, 0, 0, 0 },
        { "crowdsec-hub-tests/sshd-bad-keyexchange-bf.log", "2024-07-08T00:00:00Z", 19, 19, 0, 0,
          0 },
        { "crowdsec-hub-tests/sshd-invalid-bf.log", "2024-02-01T00:00:00Z", 6, 6, 0, 0, 0 },
        { "crowdsec-hub-tests/sshd-logs.log", "2024-12-31T00:00:00Z", 24, 20, 0, 1, 0 },
        { "crowdsec-hub-tests/sshd-refused-conn.log", "2024-12-31T00:00:00Z", 1, 1, 0, 0, 0 },
        { "crowdsec-hub-tests/sshd-success-logs.log", "2024-12-31T00:00:00Z", 4, 0, 4, 0, 0 },
        { "crowdsec-hub-tests/sshd_banner_exchange.log", "2024-12-31T00:00:00Z", 12, 6, 0, 0, 0 },
    };
    char path[2048];

    (void)state;
    for (size_t i = 0; i < VG_ARRAY_LEN(want); i++) {
        struct auth_counts c;
        snprintf(path, sizeof(path), "%s/auth/%s", corpus_dir(), want[i].file);
        count_auth_file(path, ts_of(want[i].ref), &c);
        if (c.lines != want[i].lines || c.headers != want[i].lines ||
            c.failure != want[i].failure || c.success != want[i].success ||
            c.unknown != want[i].unknown || c.repeated != want[i].repeated) {
            fail_msg("%s: lines %d headers %d failure %d success %d unknown %d repeated %llu",
                     want[i].file, c.lines, c.headers, c.failure, c.success, c.unknown,
                     (unsigned long long)c.repeated);
        }
    }
}

/* One line of each shape: outcome, action, user ("" = absent), src_ip ("" = absent). */
static void test_auth_shapes(void **state)
{
    static const struct {
        const char *line;
        const char *outcome, *action, *user, *src_ip;
    } cases[] = {
        /* sshd */
        { "Failed password for root from 192.168.1.2 port 51182 ssh2", "failure", "password",
          "root", "192.168.1.2" },
        { "Failed password for invalid user admin from 10.0.0.1 port 1 ssh2", "failure", "password",
          "admin", "10.0.0.1" },
        { "Failed password for invalid user  from 1.2.3.4 port 22 ssh2", "failure", "password", "",
          "1.2.3.4" },
        { "Failed publickey for git from 2001:db8::7 port 40022 ssh2: RSA SHA256:abc", "failure",
          "publickey", "git", "2001:db8::7" },
        { "Failed keyboard-interactive/pam for bob from ::ffff:192.168.1.1 port 5 ssh2", "failure",
          "keyboard-interactive", "bob", "192.168.1.1" },
        { "Failed none for invalid user x from 1.1.1.1 port 2 ssh2", "failure", "none", "x",
          "1.1.1.1" },
        { "Accepted publickey for ubuntu from 85.245.107.41 port 54259 ssh2: RSA "
          "SHA256:Kl8kPGZrTiz7g4FO1hyqHdsSBBb5Fge6NWOobN03XJg",
          "success", "publickey", "ubuntu", "85.245.107.41" },
        { "Accepted password for test from 192.168.121.1 port 43124 ssh2", "success", "password",
          "test", "192.168.121.1" },
        { "Accepted keyboard-interactive/pam for alice from fe80::1 port 2 ssh2", "success",
          "keyboard-interactive", "alice", "fe80::1" },
        { "Invalid user tutu from 1.2.3.4 port 33166", "failure", "invalid_user", "tutu",
          "1.2.3.4" },
        { "Invalid user  from 1.2.3.4", "failure", "invalid_user", "", "1.2.3.4" },
        { "Invalid user oracle from 61.177.172.13", "failure", "invalid_user", "oracle",
          "61.177.172.13" },
        /* a user name that tries to plant an address: the last " from " wins */
        { "Invalid user x from 6.6.6.6 from 1.2.3.4 port 5", "failure", "invalid_user",
          "x from 6.6.6.6", "1.2.3.4" },
        { "input_userauth_request: invalid user admin [preauth]", "failure", "invalid_user",
          "admin", "" },
        { "input_userauth_request: invalid user  [preauth]", "failure", "invalid_user", "", "" },
        { "Connection closed by authenticating user root 206.81.24.125 port 45362 [preauth]",
          "failure", "disconnect", "root", "206.81.24.125" },
        { "Connection closed by invalid user root 206.81.24.125 port 45362 [preauth]", "failure",
          "invalid_user", "root", "206.81.24.125" },
        { "Disconnected from authenticating user root 179.43.183.98 port 59402 [preauth]",
          "failure", "disconnect", "root", "179.43.183.98" },
        { "Disconnected from invalid user ftp 92.255.85.135 port 26138 [preauth]", "failure",
          "invalid_user", "ftp", "92.255.85.135" },
        { "Connection reset by authenticating user root 80.94.92.63 port 49115 [preauth]",
          "failure", "disconnect", "root", "80.94.92.63" },
        { "Connection closed by 118.27.24.104 port 33594 [preauth]", "unknown", "disconnect", "",
          "118.27.24.104" },
        { "Disconnected from user ubuntu 85.245.107.41 port 54259", "unknown", "disconnect",
          "ubuntu", "85.245.107.41" },
        { "Received disconnect from 85.245.107.41 port 54259:11: disconnected by user", "unknown",
          "disconnect", "", "85.245.107.41" },
        { "error: maximum authentication attempts exceeded for root from 122.176.37.221 port "
          "37107 ssh2 [preauth]",
          "failure", "max_auth_tries", "root", "122.176.37.221" },
        { "error: maximum authentication attempts exceeded for invalid user admin from "
          "1.2.3.4 port 5 ssh2 [preauth]",
          "failure", "max_auth_tries", "admin", "1.2.3.4" },
        { "Disconnecting: Too many authentication failures [preauth]", "failure", "max_auth_tries",
          "", "" },
        { "Disconnecting authenticating user root 1.2.3.4 port 22: Too many authentication "
          "failures [preauth]",
          "failure", "max_auth_tries", "root", "1.2.3.4" },
        { "User root from 192.168.1.1 not allowed because not listed in AllowUsers", "failure",
          "not_allowed", "root", "192.168.1.1" },
        { "refused connect from example.com (192.168.1.1)", "failure", "refused_connect", "",
          "192.168.1.1" },
        { "refused connect from _U2FsdGVkX19P3BCJ=_@::ffff:192.168.1.1 (::ffff:192.168.1.1)",
          "failure", "refused_connect", "", "192.168.1.1" },
        { "Unable to negotiate with 123.57.135.134 port 45626: no matching key exchange "
          "method found. Their offer: diffie-hellman-group1-sha1 [preauth] ",
          "failure", "negotiation", "", "123.57.135.134" },
        { "banner exchange: Connection from 59.91.122.57 port 34388: invalid format", "failure",
          "banner", "", "59.91.122.57" },
        { "Did not receive identification string from 85.245.107.41", "failure", "banner", "",
          "85.245.107.41" },
        { "Bad protocol version identification 'GET / HTTP/1.1' from 1.2.3.4 port 5", "failure",
          "banner", "", "1.2.3.4" },
        { "fatal: Timeout before authentication for 192.168.9.212 port 47056", "failure", "timeout",
          "", "192.168.9.212" },
        { "ssh_dispatch_run_fatal: Connection from 192.168.9.213 port 48680: message "
          "authentication code incorrect [preauth]",
          "failure", "protocol_error", "", "192.168.9.213" },
        { "Connection from 85.245.107.41 port 61663 on 10.77.20.248 port 222", "unknown", "connect",
          "", "85.245.107.41" },
        { "PAM: Authentication failure for illegal user x from 1.2.3.4", "failure", "pam", "x",
          "1.2.3.4" },
        /* PAM */
        { "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
          "rhost=5.33.63.160  user=workshop",
          "failure", "pam", "workshop", "5.33.63.160" },
        { "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
          "rhost=5.33.63.161",
          "failure", "pam", "", "5.33.63.161" },
        { "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
          "rhost=bad.example.com  user=root",
          "failure", "pam", "root", "" },
        { "pam_unix(sudo:auth): authentication failure; logname=zbadguy uid=4001 euid=0 "
          "tty=/dev/pts/12 ruser=zbadguy rhost=  user=zbadguy",
          "failure", "pam", "zbadguy", "" },
        { "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= "
          "rhost=218.65.30.126  user=root",
          "failure", "pam", "root", "218.65.30.126" },
        { "pam_tally2(sudo:auth): user zbadguy (4001) tally 6, deny 5", "failure", "lockout",
          "zbadguy", "" },
        { "pam_unix(sshd:session): session opened for user ubuntu by (uid=0)", "success", "session",
          "ubuntu", "" },
        { "pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)", "success",
          "session", "root", "" },
        { "pam_unix(su:session): session opened for user root by ubuntu(uid=1000)", "success",
          "session", "root", "" },
        { "pam_unix(sshd:session): session closed for user ubuntu", "unknown", "session_close",
          "ubuntu", "" },
        { "pam_unix(chpasswd:chauthtok): password changed for elastic_user_0", "success", "passwd",
          "elastic_user_0", "" },
        /* sudo, su, accounts */
        { "  ubuntu : TTY=pts/0 ; PWD=/home/ubuntu ; USER=root ; COMMAND=/bin/su", "success",
          "sudo", "ubuntu", "" },
        { "zbadguy : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/zbadguy ; USER=root ; "
          "COMMAND=/bin/cat /etc/shadow",
          "failure", "sudo", "zbadguy", "" },
        { "Successful su for root by ubuntu", "success", "su", "ubuntu", "" },
        { "FAILED su for root by mallory", "failure", "su", "mallory", "" },
        { "(to root) ubuntu on pts/0", "success", "su", "ubuntu", "" },
        { "FAILED SU (to root) eve on pts/3", "failure", "su", "eve", "" },
        { "new user: name=elastic_user_0, UID=1001, GID=1001, home=/home/elastic_user_0, "
          "shell=/bin/bash",
          "success", "useradd", "elastic_user_0", "" },
        { "failed adding user 'elastic_user_9', data deleted", "failure", "useradd",
          "elastic_user_9", "" },
        /* repeats parse their inner line */
        { "message repeated 5 times: [ Failed password for root from 1.2.3.4 port 5 ssh2]",
          "failure", "password", "root", "1.2.3.4" },
        /* whole lines with each header shape */
        { "Mar 27 13:08:09 ip-10-77-20-248 sshd[1361]: Accepted publickey for ubuntu from "
          "85.245.107.41 port 54259 ssh2: RSA SHA256:x",
          "success", "publickey", "ubuntu", "85.245.107.41" },
        { "Jun 12 16:20:12 leto sshd-session[406147]: Invalid user crowdsec-test from 127.0.0.1 "
          "port 49916",
          "failure", "invalid_user", "crowdsec-test", "127.0.0.1" },
        { "2023-11-14T00:20:42.738197+01:00 myserver sshd[1112652]: User root from 192.168.1.1 "
          "not allowed because not listed in AllowUsers",
          "failure", "not_allowed", "root", "192.168.1.1" },
        { "<38>1 2022-01-19T14:23:55+00:00 OPNsense.localdomain sshd 44255 - [meta "
          "sequenceId=\"1\"] Invalid user tutu from 1.2.3.4 port 33166",
          "failure", "invalid_user", "tutu", "1.2.3.4" },
        { "Mar 27 13:09:37 ip-10-77-20-248 sudo:   ubuntu : TTY=pts/0 ; PWD=/home/ubuntu ; "
          "USER=root ; COMMAND=/usr/bin/curl -L -O https://x/y.deb",
          "success", "sudo", "ubuntu", "" },
    };
    struct buf scratch;

    (void)state;
    buf_init(&scratch, 4096);
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        struct rec r;
        rec_init(&r);
        if (!map_auth_line(span_str(cases[i].line), &r, &scratch)) {
            fail_msg("not recognized: %s", cases[i].line);
        }
        const char *user = cases[i].user[0] ? cases[i].user : NULL;
        const char *ip = cases[i].src_ip[0] ? cases[i].src_ip : NULL;
        if (!field_is(&r, VG_F_OUTCOME, cases[i].outcome) ||
            !field_is(&r, VG_F_ACTION, cases[i].action) || !field_is(&r, VG_F_USER, user) ||
            !field_is(&r, VG_F_SRC_IP, ip)) {
            fail_msg("%s\n  got outcome=%.*s action=%.*s user=[%.*s] src_ip=%.*s", cases[i].line,
                     (int)r.str[VG_F_OUTCOME].n, (const char *)r.str[VG_F_OUTCOME].p,
                     (int)r.str[VG_F_ACTION].n, (const char *)r.str[VG_F_ACTION].p,
                     (int)r.str[VG_F_USER].n, (const char *)r.str[VG_F_USER].p,
                     (int)r.str[VG_F_SRC_IP].n, (const char *)r.str[VG_F_SRC_IP].p);
        }
        assert_field(&r, VG_F_KIND, "auth");
        assert_field(&r, VG_F_SEVERITY,
                     strcmp(cases[i].outcome, "failure") == 0 ? "warning" : "info");
        assert_field(&r, VG_F_MESSAGE, NULL);
        assert_false(r.has_ts);
    }

    /* the extra fields of some shapes */
    struct rec r;
    rec_init(&r);
    assert_true(
        map_auth_line(SPAN_LIT("Connection from 85.245.107.41 port 61663 on 10.77.20.248 port 222"),
                      &r, &scratch));
    assert_field(&r, VG_F_DST_IP, "10.77.20.248");
    assert_true(r.has_dst_port);
    assert_int_equal(r.dst_port, 222);
    rec_init(&r);
    assert_true(
        map_auth_line(SPAN_LIT("Failed password for root from 1.2.3.4 port 5 ssh2"), &r, &scratch));
    assert_false(r.has_dst_port); /* the client's port is not dst_port */
    rec_init(&r);
    assert_true(map_auth_line(SPAN_LIT("Mar 27 13:09:37 host sudo:   ubuntu : TTY=pts/0 ; "
                                       "PWD=/home/ubuntu ; USER=root ; COMMAND=/bin/ls -la ; id"),
                              &r, &scratch));
    assert_field(&r, VG_F_CMDLINE, "/bin/ls -la ; id");
    assert_field(&r, VG_F_OBJECT, "root");
    assert_field(&r, VG_F_PROCESS, "sudo");
    assert_field(&r, VG_F_HOST, "host");
    rec_init(&r);
    assert_true(map_auth_line(SPAN_LIT("Successful su for root by ubuntu"), &r, &scratch));
    assert_field(&r, VG_F_OBJECT, "root");
    /* a header does not override host/process already known */
    rec_init(&r);
    rec_set(&r, VG_F_HOST, SPAN_LIT("from-structure"));
    assert_true(map_auth_line(SPAN_LIT("Mar 27 13:08:09 hdr sshd[1]: Invalid user a from ::1"), &r,
                              &scratch));
    assert_field(&r, VG_F_HOST, "from-structure");
    assert_field(&r, VG_F_PROCESS, "sshd");
    assert_field(&r, VG_F_SRC_IP, "::1");

    /* not auth lines: r untouched */
    static const char *const no[] = {
        "",
        "Server listening on 0.0.0.0 port 22.",
        "Disconnected from totobad user ftp 92.255.85.135 port 26138 [preauth]",
        "pam_unix(sshd:auth): check pass; user unknown",
        "Mar 27 13:06:56 ip-10-77-20-248 systemd-logind[1118]: New seat seat0.",
        "Failed",
        "Failed password",
        "Accepted publickey for ubuntu",
        "message repeated 0 times: [ Failed password for root from 1.2.3.4 port 5 ssh2]",
        "COMMAND=/bin/sh",
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(no); i++) {
        rec_init(&r);
        if (map_auth_line(span_str(no[i]), &r, &scratch)) {
            fail_msg("recognized: '%s'", no[i]);
        }
        for (int f = 0; f < VG_F_COUNT; f++) {
            assert_null(r.str[f].p);
        }
    }
    buf_release(&scratch);
}

static void test_repeat_count(void **state)
{
    struct span inner;

    (void)state;
    assert_int_equal(map_repeat_count(SPAN_LIT("message repeated 2 times: [ Failed password for "
                                               "root from 1.2.3.4 port 5 ssh2]"),
                                      &inner),
                     2);
    assert_true(span_eq_str(inner, "Failed password for root from 1.2.3.4 port 5 ssh2"));
    assert_int_equal(map_repeat_count(SPAN_LIT("message repeated 4294967295 times: [ x]"), &inner),
                     UINT32_MAX);
    assert_true(span_eq_str(inner, "x"));
    static const char *const ones[] = {
        "message repeated 4294967296 times: [ x]", /* over uint32 */
        "message repeated 0 times: [ x]",
        "message repeated -1 times: [ x]",
        "message repeated 3 times [ x]",
        "message repeated  times: [ x]",
        "Failed password for root",
        "",
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(ones); i++) {
        struct span in = span_str(ones[i]);
        assert_int_equal(map_repeat_count(in, &inner), 1);
        assert_true(inner.p == in.p && inner.n == in.n);
    }
}

static void test_syslog_headers(void **state)
{
    struct rec r;
    struct span msg;

    (void)state;
    /* BSD: year from the reference time */
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("Mar 27 13:08:09 ip-10-77-20-248 sshd[1361]: Accepted "
                                        "publickey for ubuntu"),
                               ts_of("2017-04-20T00:00:00Z"), &r, &msg));
    assert_int_equal(r.ts, ts_of("2017-03-27T13:08:09Z"));
    assert_field(&r, VG_F_HOST, "ip-10-77-20-248");
    assert_field(&r, VG_F_PROCESS, "sshd");
    assert_true(span_eq_str(msg, "Accepted publickey for ubuntu"));
    /* reference times at the ends of int64: no overflow, a time in range */
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("Dec 31 23:59:59 h p: x"), INT64_MAX, &r, &msg));
    assert_int_equal(r.ts, ts_of("2261-12-31T23:59:59Z"));
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("Jan  1 00:00:00 h p: x"), INT64_MIN, &r, &msg));
    assert_int_equal(r.ts, ts_of("1678-01-01T00:00:00Z")); /* "in the future": a year back */
    /* December seen in January is last year's; a day ahead (clock skew) is this year's */
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("Dec 31 23:59:59 h cron: x"), ts_of("2024-01-02T00:00:00Z"),
                               &r, &msg));
    assert_int_equal(r.ts, ts_of("2023-12-31T23:59:59Z"));
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("Jan  3 00:00:00 h cron: x"), ts_of("2024-01-02T00:00:00Z"),
                               &r, &msg));
    assert_int_equal(r.ts, ts_of("2024-01-03T00:00:00Z"));
    /* the year boundary: never more than MAP_SYSLOG_SKEW_NS (a day) ahead of the receiver */
    static const struct {
        const char *line, *received, *want;
    } years[] = {
        /* December lines received in January: last year's */
        { "Dec 31 23:59:59 h sshd: x", "2024-01-01T00:00:05Z", "2023-12-31T23:59:59Z" },
        { "Dec 20 10:00:00 h sshd: x", "2024-01-27T00:00:00Z", "2023-12-20T10:00:00Z" },
        /* and vice versa: January lines received on December 31, a zone ahead of UTC */
        { "Jan  1 00:00:10 h sshd: x", "2023-12-31T23:59:50Z", "2024-01-01T00:00:10Z" },
        { "Jan  1 09:30:00 h sshd: x", "2023-12-31T20:00:00Z", "2024-01-01T09:30:00Z" },
        /* late January received before it: more than a day ahead, so last year's */
        { "Jan 28 10:00:00 h sshd: x", "2024-01-27T00:00:00Z", "2023-01-28T10:00:00Z" },
        { "Jan 28 10:00:00 h sshd: x", "2024-12-20T00:00:00Z", "2024-01-28T10:00:00Z" },
        /* exactly a day ahead is still this year's; a second more is not */
        { "Mar  2 00:00:00 h sshd: x", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z" },
        { "Mar  2 00:00:01 h sshd: x", "2024-03-01T00:00:00Z", "2023-03-02T00:00:01Z" },
        /* Feb 29 only in leap years */
        { "Feb 29 12:00:00 h sshd: x", "2025-03-01T00:00:00Z", "2024-02-29T12:00:00Z" },
        { "Feb 29 12:00:00 h sshd: x", "2024-02-28T23:00:00Z", "2024-02-29T12:00:00Z" },
        { "Feb 29 12:00:00 h sshd: x", "2023-06-01T00:00:00Z", "2020-02-29T12:00:00Z" },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(years); i++) {
        rec_init(&r);
        assert_true(map_syslog_bsd(span_str(years[i].line), ts_of(years[i].received), &r, &msg));
        if (r.ts != ts_of(years[i].want)) {
            fail_msg("'%s' received %s: got %" PRId64 ", want %s", years[i].line, years[i].received,
                     r.ts, years[i].want);
        }
    }
    /* every day of a few years against receivers around the year: never more than a day
     * ahead, and the latest such year (the one after is more than a day ahead) */
    static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    static const char *const refs[] = { "2023-12-31T23:00:00Z", "2024-01-01T01:00:00Z",
                                        "2024-06-15T12:00:00Z", "2024-12-30T00:00:00Z",
                                        "2025-01-02T03:00:00Z" };
    for (size_t k = 0; k < VG_ARRAY_LEN(refs); k++) {
        int64_t ref = ts_of(refs[k]);
        for (unsigned m = 0; m < 12; m++) {
            for (unsigned d = 1; d <= 28; d += 3) {
                char line[64];
                snprintf(line, sizeof(line), "%s %2u 06:00:00 h sshd: x", mon[m], d);
                rec_init(&r);
                assert_true(map_syslog_bsd(span_str(line), ref, &r, &msg));
                assert_true(r.ts <= ref + MAP_SYSLOG_SKEW_NS);
                /* a year later (365 or 366 days) would be past the skew */
                assert_true(r.ts + 365 * 86400 * VG_NS_PER_SEC > ref + MAP_SYSLOG_SKEW_NS);
            }
        }
    }
    /* day padding: space, none, zero */
    static const char *const days[] = { "Apr  1 10:00:00 h p: m", "Apr 1 10:00:00 h p: m",
                                        "Apr 01 10:00:00 h p: m" };
    for (size_t i = 0; i < VG_ARRAY_LEN(days); i++) {
        rec_init(&r);
        assert_true(map_syslog_bsd(span_str(days[i]), ts_of("2020-05-01T00:00:00Z"), &r, &msg));
        assert_int_equal(r.ts, ts_of("2020-04-01T10:00:00Z"));
        assert_true(span_eq_str(msg, "m"));
    }
    /* no PID; padded sudo message kept as is */
    rec_init(&r);
    assert_true(
        map_syslog_bsd(SPAN_LIT("Mar 27 13:09:37 host sudo:   ubuntu : TTY=pts/0\n"), 0, &r, &msg));
    assert_field(&r, VG_F_PROCESS, "sudo");
    assert_true(span_eq_str(msg, "  ubuntu : TTY=pts/0"));
    /* no tag at all */
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("Mar 27 13:09:37 host last message repeated 2 times"), 0,
                               &r, &msg));
    assert_field(&r, VG_F_PROCESS, NULL);
    assert_true(span_eq_str(msg, "last message repeated 2 times"));
    /* a PRI before a BSD header */
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("<38>Mar 27 13:09:37 host sshd[1]: x"), 0, &r, &msg));
    assert_field(&r, VG_F_HOST, "host");
    /* RFC 3339 with µs and an offset */
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("2023-11-14T00:20:42.738197+01:00 myserver "
                                        "sshd[1112652]: User root from 192.168.1.1 not allowed"),
                               0, &r, &msg));
    assert_int_equal(r.ts, ts_of("2023-11-13T23:20:42.738197Z"));
    assert_field(&r, VG_F_HOST, "myserver");
    assert_field(&r, VG_F_PROCESS, "sshd");
    assert_true(span_eq_str(msg, "User root from 192.168.1.1 not allowed"));
    /* RFC 5424: structured data skipped (with an escaped ']'), nil fields absent, BOM */
    rec_init(&r);
    assert_true(
        map_syslog_bsd(SPAN_LIT("<38>1 2022-01-19T14:23:55+00:00 OPNsense.localdomain "
                                "sshd 44255 - [meta sequenceId=\"1\" x=\"a\\]b\"][y z=\"\"] "
                                "Invalid user tutu"),
                       0, &r, &msg));
    assert_int_equal(r.ts, ts_of("2022-01-19T14:23:55Z"));
    assert_field(&r, VG_F_HOST, "OPNsense.localdomain");
    assert_field(&r, VG_F_PROCESS, "sshd");
    assert_true(span_eq_str(msg, "Invalid user tutu"));
    rec_init(&r);
    assert_true(map_syslog_bsd(SPAN_LIT("<13>1 - - - - - - \xef\xbb\xbfhello"), 0, &r, &msg));
    assert_false(r.has_ts);
    assert_field(&r, VG_F_HOST, NULL);
    assert_field(&r, VG_F_PROCESS, NULL);
    assert_true(span_eq_str(msg, "hello"));

    static const char *const bad[] = {
        "",
        "Failed password for root from 1.2.3.4",
        "Foo 27 13:08:09 host sshd[1]: x",
        "Mar 32 13:08:09 host sshd[1]: x",
        "Mar 27 25:08:09 host sshd[1]: x",
        "Mar 27 13:08 host sshd[1]: x",
        "Mar 27 13:08:09",
        "Mar 27 13:08:09 ",
        "2023-13-14T00:20:42Z host sshd: x",
        "<999>Mar 27 13:08:09 host sshd[1]: x",
        "<38>1 2022-01-19T14:23:55Z host app - - [unterminated x=\"]\" msg",
        "<38>1 2022-01-19T14:23:55Z host app -",
        "<38",
        "9999-12-31T23:59:59Z host p: year beyond int64 ns",
        "0001-01-01T00:00:00Z host p: year before int64 ns",
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        rec_init(&r);
        msg = (struct span){ NULL, 0 };
        if (map_syslog_bsd(span_str(bad[i]), 0, &r, &msg)) {
            fail_msg("parsed: '%s'", bad[i]);
        }
        assert_false(r.has_ts);
        assert_null(msg.p);
    }
}

/* ---- generator events (bench/gen_events.py, seed 42) ---- */

static const char gen_falco[] =
    "{\"hostname\":\"gke-prod-pool-1-fc80ae0a-zjw8\",\"output\":\"01:22:25.973553768Z: Notice A "
    "shell was spawned in a container with an attached terminal (user=trent.adams "
    "user_loginuid=-1 command=nsenter -t 1 -m -u -i -n sh pid=4094506 parent=bash "
    "container_id=host container_name=host k8s_ns=<NA> "
    "k8s_pod=<NA>)\",\"priority\":\"Notice\",\"rule\":\"Terminal shell in "
    "container\",\"source\":\"syscall\",\"tags\":[\"container\",\"shell\",\"mitre_execution\"],"
    "\"time\":\"2024-05-01T01:22:25.973553768Z\",\"output_fields\":{\"container.id\":\"host\","
    "\"container.image.repository\":null,\"container.name\":\"host\",\"evt.time\":"
    "1714526545973553768,\"evt.type\":\"openat\",\"fd.name\":null,\"fd.sip\":null,\"k8s.ns."
    "name\":null,\"k8s.pod.name\":null,\"proc.cmdline\":\"nsenter -t 1 -m -u -i -n "
    "sh\",\"proc.exepath\":\"/usr/bin/nsenter\",\"proc.name\":\"nsenter\",\"proc.pid\":4094506,"
    "\"proc.pname\":\"bash\",\"user.loginuid\":-1,\"user.name\":\"trent.adams\"}}";

static const char gen_k8s_exec[] =
    "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\"auditID\":"
    "\"2e32a832-1dd1-4fcf-a99b-8d2db72a6928\",\"stage\":\"ResponseComplete\",\"requestURI\":\"/"
    "api/v1/namespaces/default/pods/default-loader-bd3734eb6-hgbbf/exec?command=sh&container="
    "loader&stdin=true&stdout=true&tty=true\",\"verb\":\"create\",\"user\":{\"username\":\"mateo."
    "lewis\",\"uid\":\"d32a9e06-9a86-440e-a263-3c6ae4ad77b0\",\"groups\":[\"system:"
    "authenticated\",\"readonly\"]},\"sourceIPs\":[\"192.0.2.218\"],\"userAgent\":\"kubectl/"
    "v1.29.2 (linux/amd64) kubernetes/4b8e819\",\"objectRef\":{\"resource\":\"pods\",\"name\":"
    "\"default-loader-bd3734eb6-hgbbf\",\"apiVersion\":\"v1\",\"namespace\":\"default\","
    "\"subresource\":\"exec\"},\"responseStatus\":{\"metadata\":{},\"code\":101},"
    "\"requestReceivedTimestamp\":\"2024-05-01T05:31:37.723252Z\",\"stageTimestamp\":\"2024-05-"
    "01T05:31:37.805487Z\"}";

static const char gen_k8s_401[] =
    "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\"auditID\":"
    "\"702cdd20-2862-48b8-a8f4-ef125e9953d2\",\"stage\":\"ResponseComplete\",\"requestURI\":\"/"
    "api/v1/namespaces/default/secrets/sidecar-token\",\"verb\":\"get\",\"user\":{\"username\":"
    "\"system:anonymous\",\"uid\":\"\",\"groups\":[\"system:authenticated\"]},\"sourceIPs\":["
    "\"10.2.31.212\"],\"userAgent\":\"python-requests/2.31.0\",\"objectRef\":{\"resource\":"
    "\"secrets\",\"name\":\"sidecar-token\",\"apiVersion\":\"v1\",\"namespace\":\"default\"},"
    "\"responseStatus\":{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\","
    "\"reason\":\"Unauthorized\",\"code\":401},\"requestReceivedTimestamp\":\"2024-05-01T01:04:"
    "50.010126Z\",\"stageTimestamp\":\"2024-05-01T01:04:50.043113Z\"}";

static const char gen_sshd[] =
    "{\"@timestamp\":\"2024-05-01T00:19:47.726118Z\",\"message\":\"Invalid user lucas.taylor "
    "from 103.52.123.186 port 36346\",\"log\":{\"file\":{\"path\":\"/var/log/auth.log\"},"
    "\"offset\":460027313,\"syslog\":{\"facility\":{\"name\":\"authpriv\"},\"priority\":38}},"
    "\"process\":{\"name\":\"sshd\",\"pid\":613982},\"host\":{\"name\":\"gke-prod-pool-3-"
    "8710c712-ngtp\",\"hostname\":\"gke-prod-pool-3-8710c712-ngtp\",\"os\":{\"family\":"
    "\"debian\",\"version\":\"12\",\"kernel\":\"6.1.0-18-cloud-amd64\"}},\"event\":{\"dataset\":"
    "\"system.auth\",\"module\":\"system\",\"kind\":\"event\",\"category\":[\"authentication\"],"
    "\"outcome\":\"failure\"},\"agent\":{\"type\":\"filebeat\",\"version\":\"8.13.2\",\"id\":"
    "\"5cabcc97-663f-4c97-a562-69f0e5d7b875\"},\"ecs\":{\"version\":\"8.0.0\"},\"syslog_line\":"
    "\"May 01 00:19:47 gke-prod-pool-3-8710c712-ngtp sshd[613982]: Invalid user lucas.taylor "
    "from 103.52.123.186 port 36346\"}";

static const char gen_sshd_ok[] =
    "{\"@timestamp\":\"2024-05-01T04:07:24.788471Z\",\"message\":\"Accepted publickey for "
    "amir.walker from 203.0.113.212 port 19357 ssh2: ED25519 "
    "SHA256:3c7f357956071d7966571818dcf379efc6e5edb0d3c\",\"process\":{\"name\":\"sshd\","
    "\"pid\":898004},\"host\":{\"name\":\"gke-prod-pool-3-ed013e76-6vb9\"},\"event\":{"
    "\"outcome\":\"success\"},\"syslog_line\":\"May 01 04:07:24 gke-prod-pool-3-ed013e76-6vb9 "
    "sshd[898004]: Accepted publickey for amir.walker from 203.0.113.212 port 19357 ssh2: "
    "ED25519 SHA256:3c7f357956071d7966571818dcf379efc6e5edb0d3c\"}";

static const char gen_trivy[] =
    "{\"timestamp\":\"2024-05-01T00:22:23.325910Z\",\"scanner\":{\"name\":\"Trivy\",\"vendor\":"
    "\"Aqua Security\",\"version\":\"0.50.1\"},\"SchemaVersion\":2,\"ArtifactName\":\"registry."
    "example.com/trivy-system/worker:0.11.6\",\"ArtifactType\":\"container_image\",\"Target\":"
    "\"registry.example.com/trivy-system/worker:0.11.6 (debian 12.5)\",\"Class\":\"os-pkgs\","
    "\"VulnerabilityID\":\"CVE-2023-4911\",\"PkgName\":\"libc6\",\"InstalledVersion\":\"2.36-9+"
    "deb12u1\",\"FixedVersion\":\"2.36-9+deb12u3\",\"Status\":\"fixed\",\"Severity\":\"HIGH\","
    "\"Title\":\"glibc: buffer overflow in ld.so leading to privilege escalation\","
    "\"PrimaryURL\":\"https://avd.aquasec.com/nvd/cve-2023-4911\",\"CVSS\":{\"nvd\":{"
    "\"V3Score\":7.8}},\"k8s\":{\"namespace\":\"trivy-system\",\"pod\":\"trivy-worker-183e50b0b-"
    "kttnw\",\"container\":\"worker\",\"node\":\"gke-prod-pool-3-c961d96b-gwwk\",\"imageDigest\":"
    "\"sha256:ae34\"}}";

static void test_generator_events(void **state)
{
    struct mapped m;

    (void)state;
    mapped_init(&m);

    assert_int_equal(map_json(&m, MAP_AUTO, gen_falco, 0), 0);
    assert_field(&m.r, VG_F_SOURCE, "falco");
    assert_int_equal(m.r.ts, 1714526545973553768LL);
    assert_field(&m.r, VG_F_CONTAINER_ID, "host");
    assert_field(&m.r, VG_F_IMAGE, NULL);
    assert_field(&m.r, VG_F_POD, NULL);
    assert_field(&m.r, VG_F_USER, "trent.adams");
    assert_field(&m.r, VG_F_CMDLINE, "nsenter -t 1 -m -u -i -n sh");
    assert_field(&m.r, VG_F_PROCESS, "nsenter");
    assert_field(&m.r, VG_F_ACTION, "openat");
    assert_field(&m.r, VG_F_OBJECT, NULL);

    assert_int_equal(map_json(&m, MAP_AUTO, gen_k8s_exec, 0), 0);
    assert_field(&m.r, VG_F_SOURCE, "k8s-audit");
    assert_field(&m.r, VG_F_POD, "default-loader-bd3734eb6-hgbbf");
    assert_field(&m.r, VG_F_CONTAINER_NAME, "loader");
    assert_field(&m.r, VG_F_CMDLINE, "sh");
    assert_field(&m.r, VG_F_USER, "mateo.lewis");
    assert_field(&m.r, VG_F_SRC_IP, "192.0.2.218");
    assert_field(&m.r, VG_F_OUTCOME, "success");
    assert_int_equal(m.r.ts, ts_of("2024-05-01T05:31:37.723252Z"));

    assert_int_equal(map_json(&m, MAP_AUTO, gen_k8s_401, 0), 0);
    assert_field(&m.r, VG_F_OUTCOME, "failure");
    assert_field(&m.r, VG_F_SEVERITY, "warning");
    assert_field(&m.r, VG_F_USER, "system:anonymous");
    assert_field(&m.r, VG_F_OBJECT, "secrets/sidecar-token");
    assert_field(&m.r, VG_F_MESSAGE, "Unauthorized");

    assert_int_equal(map_json(&m, MAP_AUTO, gen_sshd, 0), 0);
    assert_field(&m.r, VG_F_SOURCE, "sshd");
    assert_field(&m.r, VG_F_KIND, "auth");
    assert_field(&m.r, VG_F_OUTCOME, "failure");
    assert_field(&m.r, VG_F_ACTION, "invalid_user");
    assert_field(&m.r, VG_F_USER, "lucas.taylor");
    assert_field(&m.r, VG_F_SRC_IP, "103.52.123.186");
    assert_field(&m.r, VG_F_HOST, "gke-prod-pool-3-8710c712-ngtp");
    assert_field(&m.r, VG_F_PROCESS, "sshd");
    assert_field(&m.r, VG_F_SEVERITY, "warning");
    assert_field(&m.r, VG_F_MESSAGE, "Invalid user lucas.taylor from 103.52.123.186 port 36346");
    assert_int_equal(m.r.ts, ts_of("2024-05-01T00:19:47.726118Z"));

    assert_int_equal(map_json(&m, MAP_AUTO, gen_sshd_ok, 0), 0);
    assert_field(&m.r, VG_F_OUTCOME, "success");
    assert_field(&m.r, VG_F_ACTION, "publickey");
    assert_field(&m.r, VG_F_USER, "amir.walker");
    assert_field(&m.r, VG_F_SEVERITY, "info");

    assert_int_equal(map_json(&m, MAP_AUTO, gen_trivy, 0), 0);
    assert_field(&m.r, VG_F_SOURCE, "trivy");
    assert_field(&m.r, VG_F_KIND, "scan");
    assert_field(&m.r, VG_F_CVE, "CVE-2023-4911");
    assert_field(&m.r, VG_F_PACKAGE, "libc6");
    assert_field(&m.r, VG_F_OBJECT, "libc6@2.36-9+deb12u1");
    assert_field(&m.r, VG_F_IMAGE, "registry.example.com/trivy-system/worker:0.11.6");
    assert_field(&m.r, VG_F_SEVERITY, "error");
    assert_field(&m.r, VG_F_NAMESPACE, "trivy-system");
    assert_field(&m.r, VG_F_POD, "trivy-worker-183e50b0b-kttnw");
    assert_field(&m.r, VG_F_CONTAINER_NAME, "worker");
    assert_field(&m.r, VG_F_HOST, "gke-prod-pool-3-c961d96b-gwwk");
    assert_int_equal(m.r.ts, ts_of("2024-05-01T00:22:23.325910Z"));
    mapped_release(&m);
}

static void test_trivy_severities(void **state)
{
    static const struct {
        const char *in, *want;
    } sev[] = { { "CRITICAL", "critical" },
                { "HIGH", "error" },
                { "MEDIUM", "warning" },
                { "LOW", "notice" },
                { "UNKNOWN", "info" } };
    struct mapped m;
    char json[256];

    (void)state;
    mapped_init(&m);
    for (size_t i = 0; i < VG_ARRAY_LEN(sev); i++) {
        snprintf(json, sizeof(json),
                 "{\"VulnerabilityID\":\"GHSA-x\",\"Severity\":\"%s\",\"CreatedAt\":\"2021-08-"
                 "25T12:20:30.000000005Z\"}",
                 sev[i].in);
        assert_int_equal(map_json(&m, MAP_AUTO, json, 0), 0);
        assert_field(&m.r, VG_F_SEVERITY, sev[i].want);
        assert_int_equal(m.r.ts, ts_of("2021-08-25T12:20:30.000000005Z"));
        assert_field(&m.r, VG_F_OBJECT, NULL);
    }
    mapped_release(&m);
}

/* ---- generic and syslog maps ---- */

static void test_generic(void **state)
{
    struct mapped m;

    (void)state;
    mapped_init(&m);
    assert_int_equal(map_json(&m, MAP_AUTO,
                              "{\"msg\":\"hello\",\"time\":\"2024-05-01T00:00:00.5Z\",\"host\":"
                              "\"web-1\",\"level\":\"WARN\",\"user\":\"alice\",\"src_ip\":\"not-"
                              "an-ip\",\"dst_ip\":\"10.0.0.1\",\"dst_port\":8080,\"namespace\":"
                              "\"prod\",\"source\":\"spoofed\",\"agent\":\"spoofed\",\"kind\":"
                              "\"alert\"}",
                              1),
                     0);
    assert_field(&m.r, VG_F_SOURCE, "http");
    assert_field(&m.r, VG_F_KIND, "log");
    assert_field(&m.r, VG_F_AGENT, NULL);
    assert_field(&m.r, VG_F_MESSAGE, "hello");
    assert_int_equal(m.r.ts, ts_of("2024-05-01T00:00:00.5Z"));
    assert_field(&m.r, VG_F_HOST, "web-1");
    assert_field(&m.r, VG_F_SEVERITY, "warning");
    assert_field(&m.r, VG_F_USER, "alice");
    assert_field(&m.r, VG_F_SRC_IP, NULL);
    assert_field(&m.r, VG_F_DST_IP, "10.0.0.1");
    assert_int_equal(m.r.dst_port, 8080);
    assert_field(&m.r, VG_F_NAMESPACE, "prod");

    /* Fluent Bit's kubernetes filter; epoch seconds, ms, µs, ns and float */
    static const struct {
        const char *t;
        int64_t want;
    } times[] = { { "1714521600", 1714521600000000000LL },
                  { "1714521600123", 1714521600123000000LL },
                  { "1714521600123456", 1714521600123456000LL },
                  { "1714521600123456789", 1714521600123456789LL },
                  { "1714521600.25", 1714521600250000000LL } };
    for (size_t i = 0; i < VG_ARRAY_LEN(times); i++) {
        char json[512];
        snprintf(json, sizeof(json),
                 "{\"log\":\"x\",\"ts\":%s,\"kubernetes\":{\"pod_name\":\"p\",\"namespace_"
                 "name\":\"n\",\"container_name\":\"c\",\"container_image\":\"i:1\","
                 "\"docker_id\":\"d\",\"host\":\"node\"}}",
                 times[i].t);
        assert_int_equal(map_json(&m, MAP_AUTO, json, 1), 0);
        assert_int_equal(m.r.ts, times[i].want);
        assert_field(&m.r, VG_F_POD, "p");
        assert_field(&m.r, VG_F_NAMESPACE, "n");
        assert_field(&m.r, VG_F_CONTAINER_NAME, "c");
        assert_field(&m.r, VG_F_IMAGE, "i:1");
        assert_field(&m.r, VG_F_CONTAINER_ID, "d");
        assert_field(&m.r, VG_F_HOST, "node");
        assert_field(&m.r, VG_F_MESSAGE, "x");
    }

    /* msgpack with a Fluentd EventTime and an integer severity */
    struct buf b;
    struct buf scratch;
    struct rec r;
    buf_init(&b, 4096);
    buf_init(&scratch, 4096);
    assert_int_equal(mp_put_map(&b, 3), 0);
    assert_int_equal(mp_put_cstr(&b, "time"), 0);
    assert_int_equal(mp_put_eventtime(&b, 1714521600000000007LL), 0);
    assert_int_equal(mp_put_cstr(&b, "severity"), 0);
    assert_int_equal(mp_put_i64(&b, 3), 0);
    assert_int_equal(mp_put_i64(&b, 1), 0); /* a non-string key is skipped */
    assert_int_equal(mp_put_cstr(&b, "v"), 0);
    assert_int_equal(map_event(MAP_GENERIC, buf_span(&b), 5, "forward", &r, &scratch, NULL), 0);
    assert_int_equal(r.ts, 1714521600000000007LL);
    assert_field(&r, VG_F_SEVERITY, "error");
    assert_field(&r, VG_F_SOURCE, "forward");
    assert_true(span_eq(r.raw, buf_span(&b)));
    buf_release(&b);
    buf_release(&scratch);

    /* integer times whose ns do not fit int64, or not positive: not times */
    static const char *const bad_times[] = {
        "13940046503608320", "99999999999", "0", "-5", "true", "\"\""
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad_times); i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"time\":%s}", bad_times[i]);
        assert_int_equal(map_json(&m, MAP_AUTO, json, 66), 0);
        assert_int_equal(m.r.ts, 66);
    }

    /* an empty map: only source, kind, ts */
    assert_int_equal(map_json(&m, MAP_AUTO, "{}", 77), 0);
    assert_int_equal(m.r.ts, 77);
    assert_field(&m.r, VG_F_SOURCE, "http");
    assert_field(&m.r, VG_F_MESSAGE, NULL);
    mapped_release(&m);
}

static void test_syslog_maps(void **state)
{
    struct mapped m;

    (void)state;
    mapped_init(&m);
    /* a tailed auth.log line: header gives ts/host/process; message is the MSG part */
    assert_int_equal(map_json(&m, MAP_SSHD,
                              "{\"log\":\"Mar 27 13:08:09 ip-10-77-20-248 sshd[1361]: Failed "
                              "password for root from 1.2.3.4 port 5 ssh2\"}",
                              ts_of("2017-04-01T00:00:00Z")),
                     0);
    assert_int_equal(m.r.ts, ts_of("2017-03-27T13:08:09Z"));
    assert_field(&m.r, VG_F_HOST, "ip-10-77-20-248");
    assert_field(&m.r, VG_F_PROCESS, "sshd");
    assert_field(&m.r, VG_F_MESSAGE, "Failed password for root from 1.2.3.4 port 5 ssh2");
    assert_field(&m.r, VG_F_OUTCOME, "failure");
    assert_field(&m.r, VG_F_SOURCE, "sshd");

    /* Fluent Bit syslog parser output, not an auth line */
    assert_int_equal(map_json(&m, MAP_SYSLOG,
                              "{\"pri\":\"30\",\"time\":\"2024-05-01T00:00:00Z\",\"host\":"
                              "\"n1\",\"ident\":\"systemd\",\"pid\":\"1\",\"message\":\"Started "
                              "Session 1.\"}",
                              0),
                     0);
    assert_field(&m.r, VG_F_SOURCE, "syslog");
    assert_field(&m.r, VG_F_KIND, "log");
    assert_field(&m.r, VG_F_PROCESS, "systemd");
    assert_field(&m.r, VG_F_HOST, "n1");
    assert_field(&m.r, VG_F_SEVERITY, "info"); /* 30 & 7 = 6 */
    assert_field(&m.r, VG_F_OUTCOME, NULL);

    /* sshd JSON whose line is not an auth shape: kind auth anyway, ECS outcome/user/ip */
    assert_int_equal(map_json(&m, MAP_AUTO,
                              "{\"message\":\"Server listening on :: port 22.\",\"process\":{"
                              "\"name\":\"sshd\"},\"event\":{\"outcome\":\"failure\"},\"user\":{"
                              "\"name\":\"u\"},\"source\":{\"ip\":\"1.2.3.4\"}}",
                              3),
                     0);
    assert_field(&m.r, VG_F_SOURCE, "sshd");
    assert_field(&m.r, VG_F_KIND, "auth");
    assert_field(&m.r, VG_F_OUTCOME, "failure");
    assert_field(&m.r, VG_F_SEVERITY, "warning");
    assert_field(&m.r, VG_F_USER, "u");
    assert_field(&m.r, VG_F_SRC_IP, "1.2.3.4");
    assert_int_equal(m.r.ts, 3);

    /* only a syslog_line: everything from it */
    assert_int_equal(map_json(&m, MAP_AUTO,
                              "{\"syslog_line\":\"May 01 02:19:26 bastion-00 sshd[595731]: "
                              "Accepted password for admin from 159.184.185.246 port 14850 "
                              "ssh2\"}",
                              ts_of("2024-05-02T00:00:00Z")),
                     0);
    assert_int_equal(m.r.ts, ts_of("2024-05-01T02:19:26Z"));
    assert_field(&m.r, VG_F_HOST, "bastion-00");
    assert_field(&m.r, VG_F_OUTCOME, "success");
    assert_field(&m.r, VG_F_USER, "admin");
    mapped_release(&m);
}

/* ---- rejections, tags, scratch ---- */

static void test_rejects(void **state)
{
    static const struct {
        enum map_source hint;
        const char *json;
    } cases[] = {
        { MAP_AUTO, "[1,2]" },
        { MAP_AUTO, "\"str\"" },
        { MAP_GENERIC, "42" },
        { MAP_K8S_AUDIT, "{\"kind\": 0}" },
        { MAP_K8S_AUDIT, "{\"kind\":\"EventList\",\"verb\":\"get\"}" },
        { MAP_K8S_AUDIT, "{\"kind\":\"Event\"}" },
        { MAP_K8S_AUDIT, "{\"kind\":\"Event\",\"verb\":7}" },
        { MAP_FALCO, "{\"output\":\"x\",\"priority\":\"Notice\"}" },
        { MAP_FALCO, "{\"rule\":\"r\",\"output_fields\":[1]}" },
        { MAP_TRIVY, "{\"PkgName\":\"x\"}" },
        { MAP_SSHD, "{\"process\":{\"name\":\"sshd\"}}" },
        { MAP_SYSLOG, "{\"message\":5}" },
    };
    struct mapped m;

    (void)state;
    mapped_init(&m);
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        if (map_json(&m, cases[i].hint, cases[i].json, 0) != VG_EFORMAT) {
            fail_msg("accepted (hint %d): %s", cases[i].hint, cases[i].json);
        }
        assert_true(strlen(errbuf_msg(&m.eb)) > 0);
    }
    /* {"kind":0} is a fine generic event when nothing says it is audit */
    assert_int_equal(map_json(&m, MAP_AUTO, "{\"kind\": 0}", 0), 0);
    assert_field(&m.r, VG_F_SOURCE, "http");

    /* truncated and malformed msgpack */
    static const uint8_t bad[][6] = {
        { 0x82, 0xa1, 'a', 0x01, 0xa1, 0 },  /* map of 2, 1.5 pairs */
        { 0xdf, 0xff, 0xff, 0xff, 0xff, 0 }, /* map32 claiming 4G pairs */
        { 0x81, 0xa1, 'a', 0xc1, 0, 0 },     /* 0xc1 is never valid */
    };
    static const size_t bad_len[] = { 5, 5, 4 };
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        struct rec r;
        struct errbuf eb;
        errbuf_clear(&eb);
        for (int h = MAP_AUTO; h <= MAP_GENERIC; h++) {
            assert_int_equal(map_event((enum map_source)h, (struct span){ bad[i], bad_len[i] }, 0,
                                       "http", &r, &m.scratch, &eb),
                             VG_EFORMAT);
        }
    }
    struct rec r;
    assert_int_equal(map_event(MAP_AUTO, (struct span){ NULL, 0 }, 0, "http", &r, &m.scratch, NULL),
                     VG_EFORMAT);
    mapped_release(&m);
}

static void test_source_from_tag(void **state)
{
    static const struct {
        const char *tag;
        enum map_source want;
    } cases[] = {
        { "falco", MAP_FALCO },
        { "falco.alerts", MAP_FALCO },
        { "falcon", MAP_AUTO },
        { "k8s.audit", MAP_K8S_AUDIT },
        { "k8s.audit.prod", MAP_K8S_AUDIT },
        { "k8s-audit", MAP_K8S_AUDIT },
        { "k8s-audit-webhook", MAP_K8S_AUDIT },
        { "kube-audit", MAP_K8S_AUDIT },
        { "audit.k8s.io", MAP_K8S_AUDIT },
        { "sshd", MAP_SSHD },
        { "sshd.bastion", MAP_SSHD },
        { "auth", MAP_SSHD },
        { "auth.log", MAP_SSHD },
        { "authpriv", MAP_SSHD },
        { "author", MAP_AUTO },
        { "syslog", MAP_SYSLOG },
        { "syslog.node1", MAP_SYSLOG },
        { "trivy", MAP_TRIVY },
        { "trivy-operator", MAP_TRIVY },
        { "kube.var.log", MAP_AUTO },
        { "", MAP_AUTO },
    };

    (void)state;
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        if (map_source_from_tag(span_str(cases[i].tag)) != cases[i].want) {
            fail_msg("tag '%s'", cases[i].tag);
        }
    }
    assert_string_equal(map_source_name(MAP_K8S_AUDIT), "k8s-audit");
    assert_null(map_source_name(MAP_GENERIC));
}

/* Computed values live in scratch, which is never grown once handed out: several events
 * mapped without a reset keep their spans; a value that does not fit is skipped. */
static void test_scratch(void **state)
{
    struct buf mp;
    struct buf scratch;
    struct rec r1;
    struct rec r2;
    const char *a = "{\"rule\":\"r\",\"output_fields\":{\"container.image.repository\":\"repo/"
                    "a\",\"container.image.tag\":\"1.0\"}}";
    const char *b = "{\"rule\":\"r\",\"output_fields\":{\"container.image.repository\":\"repo/"
                    "b\",\"container.image.tag\":\"2.0\"}}";

    (void)state;
    buf_init(&mp, 1 << 16);
    buf_init(&scratch, 1 << 16);
    assert_int_equal(json_to_mp(span_str(a), &mp, NULL, NULL), 0);
    size_t a_len = mp.len;
    assert_int_equal(json_to_mp(span_str(b), &mp, NULL, NULL), 0);
    struct span sa = { mp.data, a_len };
    struct span sb = { mp.data + a_len, mp.len - a_len };

    assert_int_equal(map_event(MAP_FALCO, sa, 0, NULL, &r1, &scratch, NULL), 0);
    assert_true(scratch.cap > MAP_SCRATCH_BYTES);
    uint8_t *data = scratch.data;
    assert_int_equal(map_event(MAP_FALCO, sb, 0, NULL, &r2, &scratch, NULL), 0);
    assert_ptr_equal(scratch.data, data);
    assert_field(&r1, VG_F_IMAGE, "repo/a:1.0");
    assert_field(&r2, VG_F_IMAGE, "repo/b:2.0");
    assert_true(buf_check(&scratch));

    /* fill scratch to the brim: the next computed value is skipped, not truncated */
    scratch.len = scratch.cap - 4;
    scratch.data[scratch.len] = 0;
    assert_int_equal(map_event(MAP_FALCO, sb, 0, NULL, &r2, &scratch, NULL), 0);
    assert_field(&r2, VG_F_IMAGE, NULL);
    assert_int_equal(scratch.len, scratch.cap - 4);
    assert_ptr_equal(scratch.data, data);
    assert_true(buf_check(&scratch));

    /* a scratch whose max is tiny: no room at all, still no failure */
    struct buf tiny;
    buf_init(&tiny, 4);
    assert_int_equal(map_event(MAP_FALCO, sb, 0, NULL, &r2, &tiny, NULL), 0);
    assert_field(&r2, VG_F_IMAGE, NULL);
    assert_field(&r2, VG_F_RULE, "r");
    assert_true(buf_check(&tiny));
    buf_release(&tiny);
    struct buf none;
    buf_init(&none, 0);
    assert_int_equal(map_event(MAP_FALCO, sb, 0, NULL, &r2, &none, NULL), 0);
    assert_field(&r2, VG_F_IMAGE, NULL);
    buf_release(&none);

    buf_release(&mp);
    buf_release(&scratch);
}

/* event.yaml lists the fields in the registry's order, with the registry's names. */
static void test_event_yaml_fields(void **state)
{
    const char *src = getenv("VG_SOURCE_DIR");
    char path[2048];
    size_t len;
    int f = 0;

    (void)state;
    snprintf(path, sizeof(path), "%s/schemas/event.yaml", src ? src : ".");
    char *text = read_file(path, &len);
    const char *fields = strstr(text, "\nfields:\n");
    const char *end = strstr(text, "\nseverities:");
    assert_non_null(fields);
    assert_non_null(end);
    for (const char *p = strstr(fields, "{ name: "); p && p < end; p = strstr(p, "{ name: ")) {
        p += strlen("{ name: ");
        size_t n = strcspn(p, ",");
        assert_true(f < VG_F_COUNT);
        if (strlen(vg_field_name((enum vg_field)f)) != n ||
            memcmp(p, vg_field_name((enum vg_field)f), n) != 0) {
            fail_msg("event.yaml field %d is '%.*s', the registry says '%s'", f, (int)n, p,
                     vg_field_name((enum vg_field)f));
        }
        f++;
    }
    assert_int_equal(f, VG_F_COUNT);
    for (int s = 0; s < VG_SEV_COUNT; s++) {
        assert_non_null(strstr(end, vg_severity_name((enum vg_severity)s)));
    }
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_tables_sorted), cmocka_unit_test(test_falco_corpus),
        cmocka_unit_test(test_falco_fields),      cmocka_unit_test(test_k8s_corpus),
        cmocka_unit_test(test_k8s_fields),        cmocka_unit_test(test_auth_corpus),
        cmocka_unit_test(test_auth_shapes),       cmocka_unit_test(test_repeat_count),
        cmocka_unit_test(test_syslog_headers),    cmocka_unit_test(test_generator_events),
        cmocka_unit_test(test_trivy_severities),  cmocka_unit_test(test_generic),
        cmocka_unit_test(test_syslog_maps),       cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_source_from_tag),   cmocka_unit_test(test_scratch),
        cmocka_unit_test(test_event_yaml_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
