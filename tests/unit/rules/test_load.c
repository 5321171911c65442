/* tests/unit/rules/test_load.c: loading rules: the SigmaHQ rules of the corpus (tests/data/corpus)
 * (every mapped logsource loads; what does not is reported with its reason), those rules
 * over the corpus's real events, YAML and document errors with their places, files and
 * folders, references across files, the mapping as data, and `vigil rules test`'s
 * runner over tests/unit/rules/data. */
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mp.h"
#include "schemas/map.h"
#include "tests/unit/rules/rules_test_util.h"

static const char *corpus(void)
{
    const char *d = getenv("VG_CORPUS_DIR");
    return d ? d : "tests/data/corpus";
}

static struct ruleset *load_corpus(struct rules_report *rep)
{
    char path[1024];
    struct ruleset *rs = NULL;
    struct errbuf eb;
    const char *paths[1] = { path };

    snprintf(path, sizeof(path), "%s/sigma", corpus());
    rules_report_init(rep);
    errbuf_clear(&eb);
    assert_int_equal(rules_load(paths, 1, NULL, &rs, rep, &eb), 0);
    return rs;
}

static void test_corpus_sigma_rules(void **state)
{
    (void)state;
    struct rules_report rep;
    struct ruleset *rs = load_corpus(&rep);

    /* FORMATS.md section 5: 62 SigmaHQ rules, all of whose logsources are mapped, and 3
     * correlation examples from the specification that refer to rules not in the corpus */
    assert_int_equal(rep.n, 65);
    assert_int_equal(rep.loaded, 62);
    assert_int_equal(rep.unsupported, 0);
    assert_int_equal(rep.invalid, 3);
    assert_int_equal(ruleset_count(rs), 62);
    for (size_t i = 0; i < rep.n; i++) {
        const struct rules_report_item *it = &rep.items[i];
        if (it->status != RULES_LOADED) {
            assert_true(it->correlation);
            assert_non_null(strstr(it->file, "sigma-specification"));
            assert_non_null(strstr(it->reason, "is not defined in any loaded file"));
        } else {
            assert_null(it->reason);
        }
    }
    /* FORMATS.md section 5's logsource combinations, each onto its mapping */
    static const struct {
        const char *ls;
        size_t n;
    } want[] = {
        { "linux/process_creation", 36 },
        { "kubernetes/audit", 16 },
        { "linux/sshd", 3 },
        { "linux/auth", 1 },
        { "linux/sudo", 1 },
        { "linux/syslog", 1 },
        { "linux", 4 },
    };
    for (size_t w = 0; w < VG_ARRAY_LEN(want); w++) {
        size_t n = 0;
        for (size_t i = 0; i < ruleset_count(rs); i++) {
            struct rules_rule_info info;
            ruleset_rule_info(rs, i, &info);
            n += strcmp(info.logsource, want[w].ls) == 0;
            assert_true(info.alerts);
            assert_int_equal(info.type, RULES_DETECTION);
        }
        if (n != want[w].n) {
            fail_msg("logsource %s: %zu rules, want %zu", want[w].ls, n, want[w].n);
        }
    }
    rules_report_release(&rep);
    ruleset_free(rs);
}

/* ---- the corpus rules over the corpus events ---- */

struct title_count {
    char title[128];
    size_t n;
};

struct tally {
    const struct ruleset *rs;
    struct title_count t[64];
    size_t n;
};

/* Counts the matches of each rule: its detections' matching events (an incident's
 * firing and updates would hide repeats). */
static int count_alert(const struct rules_alert *a, void *arg)
{
    struct tally *c = arg;
    if (a->state == RULES_RESOLVED) {
        return 0;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->t[i].title, a->title) == 0) {
            c->t[i].n++;
            return 0;
        }
    }
    if (c->n < 64) {
        snprintf(c->t[c->n].title, sizeof(c->t[c->n].title), "%s", a->title);
        c->t[c->n++].n = 1;
    }
    return 0;
}

static size_t tally_of(const struct tally *c, const char *title)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->t[i].title, title) == 0) {
            return c->t[i].n;
        }
    }
    return 0;
}

static bool read_file(const char *path, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    char chunk[65536];
    size_t n;

    buf_init(out, 64u << 20);
    if (!f) {
        return false;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        assert_int_equal(buf_append(out, chunk, n), 0);
    }
    fclose(f);
    return true;
}

/* Maps every JSON document of a file with hint and evaluates it. Returns the events. */
static size_t eval_json_file(struct rules_engine *e, const char *path, enum map_source hint,
                             struct tally *c)
{
    struct buf text;
    size_t off = 0;
    size_t events = 0;

    if (!read_file(path, &text)) {
        return 0;
    }
    while (off < text.len) {
        struct buf ev;
        struct buf scratch;
        struct errbuf eb;
        struct rec r;
        size_t used = 0;
        buf_init(&ev, 16u << 20);
        buf_init(&scratch, 1 << 20);
        int rc = json_to_mp((struct span){ text.data + off, text.len - off }, &ev, &used, &eb);
        if (rc < 0 || used == 0) {
            buf_release(&ev);
            buf_release(&scratch);
            break;
        }
        off += used;
        if (map_event(hint, buf_span(&ev), TU_T0, "http", &r, &scratch, &eb) == 0) {
            rules_engine_eval(e, &r, count_alert, c);
            events++;
        }
        buf_release(&ev);
        buf_release(&scratch);
    }
    buf_release(&text);
    return events;
}

/* Each line of a syslog text file as an sshd record. */
static size_t eval_log_file(struct rules_engine *e, const char *path, struct tally *c)
{
    struct buf text;
    size_t events = 0;

    if (!read_file(path, &text)) {
        return 0;
    }
    char *save = NULL;
    for (char *line = strtok_r((char *)text.data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        struct buf ev;
        struct buf scratch;
        struct errbuf eb;
        struct rec r;
        buf_init(&ev, 1 << 20);
        buf_init(&scratch, 1 << 20);
        assert_int_equal(mp_put_map(&ev, 1), 0);
        assert_int_equal(mp_put_cstr(&ev, "syslog_line"), 0);
        assert_int_equal(mp_put_cstr(&ev, line), 0);
        if (map_event(MAP_SSHD, buf_span(&ev), TU_T0, "http", &r, &scratch, &eb) == 0) {
            rules_engine_eval(e, &r, count_alert, c);
            events++;
        }
        buf_release(&ev);
        buf_release(&scratch);
    }
    buf_release(&text);
    return events;
}

static size_t eval_dir(struct rules_engine *e, const char *dir, enum map_source hint, bool lines,
                       struct tally *c)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;

    assert_non_null(d);
    while ((de = readdir(d))) {
        char p[2048];
        struct stat st;
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (stat(p, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            n += eval_dir(e, p, hint, lines, c);
        } else if (lines) {
            n += eval_log_file(e, p, c);
        } else if (strstr(de->d_name, "json") || strstr(de->d_name, ".log")) {
            n += eval_json_file(e, p, hint, c);
        }
    }
    closedir(d);
    return n;
}

static void test_corpus_rules_on_corpus_events(void **state)
{
    (void)state;
    struct rules_report rep;
    struct ruleset *rs = load_corpus(&rep);
    struct rules_engine *e;
    struct tally c = { .rs = rs };
    char dir[1024];

    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    snprintf(dir, sizeof(dir), "%s/k8s-audit", corpus());
    size_t nk = eval_dir(e, dir, MAP_K8S_AUDIT, false, &c);
    snprintf(dir, sizeof(dir), "%s/falco", corpus());
    size_t nf = eval_dir(e, dir, MAP_FALCO, false, &c);
    snprintf(dir, sizeof(dir), "%s/auth", corpus());
    size_t na = eval_dir(e, dir, MAP_SSHD, true, &c);
    /* per rule, the events it matched (its alert records are incidents: fewer) */
    c.n = 0;
    for (size_t i = 0; i < ruleset_count(rs) && c.n < 64; i++) {
        struct rules_stats st;
        struct rules_rule_info info;
        rules_engine_stats(e, &i, &st);
        ruleset_rule_info(rs, i, &info);
        if (st.matches > 0) {
            snprintf(c.t[c.n].title, sizeof(c.t[c.n].title), "%s", info.title);
            c.t[c.n++].n = st.matches;
        }
    }
    for (size_t i = 0; i < c.n; i++) {
        fprintf(stderr, "  %4zu  %s\n", c.t[i].n, c.t[i].title);
    }
    fprintf(stderr, "  (%zu audit events, %zu falco alerts, %zu auth lines)\n", nk, nf, na);
    assert_true(nk > 80 && nf > 30 && na > 1000);
    /* audit: the Falco trace files name what they hold */
    assert_true(tally_of(&c, "Potential Remote Command Execution In Pod Container") >= 2);
    /* sensitive_mount and _2nd_container; unsensitive_mount is a get */
    assert_int_equal(tally_of(&c, "Container With A hostPath Mount Created"), 2);
    assert_true(tally_of(&c, "Creation Of Pod In System Namespace") >= 1);
    assert_true(tally_of(&c, "New Kubernetes Service Account Created") >= 3);
    assert_true(tally_of(&c, "Deployment Deleted From Kubernetes Cluster") >= 1);
    assert_true(tally_of(&c, "Kubernetes Secrets Modified or Deleted") >= 2);
    assert_true(tally_of(&c, "Kubernetes Unauthorized or Unauthenticated Access") >= 11);
    assert_true(tally_of(&c, "Kubernetes Rolebinding Modification") >= 1);
    /* the useradd lines of the elastic auth.log create ordinary users (GID 1001...) */
    assert_int_equal(tally_of(&c, "Privileged User Creation"), 0);
    /* Falco: a cat of /etc/shadow is process_creation's account discovery */
    assert_true(tally_of(&c, "Local System Accounts Discovery - Linux") >= 1);
    rules_engine_free(e);
    rules_report_release(&rep);
    ruleset_free(rs);
}

/* Hand-made events in each source's native format that the corpus rules must catch. */
static void test_corpus_rules_fire(void **state)
{
    (void)state;
    static const struct {
        enum map_source src;
        const char *event;
        const char *title;
    } cases[] = {
        { MAP_SSHD,
          "{\"syslog_line\":\"Mar 27 13:08:09 web-1 sudo:   alice : TTY=pts/0 ; PWD=/home/alice ; "
          "USER=#-1 ; COMMAND=/bin/bash\"}",
          "Sudo Privilege Escalation CVE-2019-14287 - Builtin" },
        { MAP_SSHD,
          "{\"syslog_line\":\"Mar 27 13:08:09 web-1 pkexec[11]: alice: The value for environment "
          "variable XAUTHORITY contains suspicious content [USER=root] [TTY=/dev/pts/0] "
          "[CWD=/tmp] [COMMAND=GCONV_PATH=.]\"}",
          "PwnKit Local Privilege Escalation" },
        { MAP_SSHD,
          "{\"@timestamp\":\"2024-05-01T10:00:00Z\",\"message\":\"error: buffer_get_ret: trying "
          "to get more bytes 1907 than in buffer 308 [preauth]\",\"process\":{\"name\":\"sshd\"}}",
          "SSHD Error Message CVE-2018-15473" },
        { MAP_SSHD,
          "{\"syslog_line\":\"Mar 27 13:08:09 web-1 sshd[1361]: Corrupted MAC on input.\"}",
          "Suspicious OpenSSH Daemon Error" },
        { MAP_FALCO,
          "{\"rule\":\"x\",\"priority\":\"Warning\",\"time\":\"2024-05-01T10:00:00Z\","
          "\"output\":\"x\",\"source\":\"syscall\",\"output_fields\":{"
          "\"proc.exepath\":\"/usr/bin/bash\",\"proc.cmdline\":\"bash -c id\","
          "\"proc.pexepath\":\"/usr/sbin/sshd\",\"user.name\":\"root\"}}",
          "Potential Exploitation of CVE-2024-3094 - Suspicious SSH Child Process" },
        { MAP_FALCO,
          "{\"rule\":\"x\",\"priority\":\"Warning\",\"time\":\"2024-05-01T10:00:00Z\","
          "\"output\":\"x\",\"source\":\"syscall\",\"output_fields\":{"
          "\"proc.exepath\":\"/usr/bin/wget\",\"proc.cmdline\":\"wget -O /tmp/x http://a\"}}",
          "Download File To Potentially Suspicious Directory Via Wget" },
        { MAP_K8S_AUDIT,
          "{\"kind\":\"Event\",\"verb\":\"create\",\"objectRef\":{\"resource\":\"pods\","
          "\"namespace\":\"default\",\"name\":\"p\"},\"requestObject\":{\"spec\":{"
          "\"containers\":[{\"name\":\"c\"},{\"securityContext\":{\"capabilities\":{"
          "\"add\":[\"SYS_ADMIN\"]}}}]}}}",
          "Privileged Container Deployed" },
    };
    struct rules_report rep;
    struct ruleset *rs = load_corpus(&rep);
    struct rules_engine *e;
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        struct buf ev;
        struct buf scratch;
        struct errbuf eb;
        struct rec r;
        struct tally c = { .rs = rs };
        buf_init(&ev, 1 << 20);
        buf_init(&scratch, 1 << 20);
        assert_int_equal(json_to_mp(span_str(cases[i].event), &ev, NULL, &eb), 0);
        assert_int_equal(map_event(cases[i].src, buf_span(&ev), TU_T0, "http", &r, &scratch, &eb),
                         0);
        rules_engine_eval(e, &r, count_alert, &c);
        if (tally_of(&c, cases[i].title) != 1) {
            fail_msg("case %zu: '%s' did not fire (%zu alerts: %s)", i, cases[i].title, c.n,
                     c.n ? c.t[0].title : "");
        }
        buf_release(&ev);
        buf_release(&scratch);
    }
    rules_engine_free(e);
    rules_report_release(&rep);
    ruleset_free(rs);
}

/* ---- documents ---- */

static void test_yaml_errors_have_places(void **state)
{
    (void)state;
    struct rules_report rep;
    struct ruleset *rs;

    rs = tu_load("title: [unclosed\nlogsource: {product: linux}\n", &rep);
    assert_int_equal(rep.n, 1);
    assert_int_equal(rep.items[0].status, RULES_INVALID);
    assert_non_null(strstr(rep.items[0].reason, "test.yml:"));
    assert_non_null(strstr(rep.items[0].reason, "yaml:"));
    assert_int_equal(rep.items[0].line, 2);
    rules_report_release(&rep);
    ruleset_free(rs);

    rs = tu_load("base: &a {x: 1}\nother: *a\n", &rep);
    assert_int_equal(rep.items[0].status, RULES_UNSUPPORTED);
    assert_non_null(strstr(rep.items[0].reason, "aliases"));
    rules_report_release(&rep);
    ruleset_free(rs);

    rs = tu_load("title: a\ntitle: b\n", &rep);
    assert_int_equal(rep.items[0].status, RULES_INVALID);
    assert_non_null(strstr(rep.items[0].reason, "test.yml:2:1: duplicate key 'title'"));
    rules_report_release(&rep);
    ruleset_free(rs);
}

static void test_documents(void **state)
{
    (void)state;
    struct rules_report rep;
    struct ruleset *rs;
    /* multi-document: each rule on its own; a failing one never half-loads; empty
     * documents are skipped */
    rs = tu_load("title: one\nid: id-1\nlogsource: {product: vigil}\n"
                 "detection: {sel: {user: a}, condition: sel}\n"
                 "---\n"
                 "---\n"
                 "title: two\nlogsource: {product: windows, category: process_creation}\n"
                 "detection: {sel: {Image: x}, condition: sel}\n"
                 "---\n"
                 "- not a map\n"
                 "---\n"
                 "logsource: {product: vigil}\ndetection: {sel: {user: a}, condition: sel}\n"
                 "---\n"
                 "title: bad level\nlogsource: {product: vigil}\nlevel: severe\n"
                 "detection: {sel: {user: a}, condition: sel}\n"
                 "---\n"
                 "title: no condition\nlogsource: {product: vigil}\ndetection: {sel: {user: a}}\n"
                 "---\n"
                 "title: dup\nid: id-1\nlogsource: {product: vigil}\n"
                 "detection: {sel: {user: a}, condition: sel}\n"
                 "---\n"
                 "title: old\nlogsource: {product: vigil}\n"
                 "detection: {sel: {user: a}, timeframe: 5m, condition: sel}\n"
                 "---\n"
                 "title: said so\nstatus: unsupported\nlogsource: {product: vigil}\n"
                 "detection: {sel: {user: a}, condition: sel}\n"
                 "---\n"
                 "title: keywords unmapped\nlogsource: {product: kubernetes, service: audit}\n"
                 "detection: {kw: [x], condition: kw}\n",
                 &rep);
    static const struct {
        enum rules_status st;
        const char *reason;
    } want[] = {
        { RULES_LOADED, NULL },
        { RULES_UNSUPPORTED, "logsource category=process_creation product=windows is not mapped" },
        { RULES_INVALID, "a rule must be a YAML map" },
        { RULES_INVALID, "needs a title" },
        { RULES_INVALID, "level must be" },
        { RULES_INVALID, "no condition" },
        { RULES_INVALID, "id 'id-1' is already used by test.yml:1" },
        { RULES_UNSUPPORTED, "timeframe" },
        { RULES_UNSUPPORTED, "status: unsupported" },
        { RULES_LOADED, NULL }, /* k8s keywords search the whole event */
    };
    assert_int_equal(rep.n, VG_ARRAY_LEN(want));
    for (size_t i = 0; i < rep.n; i++) {
        if (rep.items[i].status != want[i].st ||
            (want[i].reason && !strstr(rep.items[i].reason, want[i].reason))) {
            fail_msg("document %zu: status %d, reason '%s'", i, rep.items[i].status,
                     rep.items[i].reason ? rep.items[i].reason : "");
        }
    }
    assert_int_equal(ruleset_count(rs), 2);
    assert_int_equal(ruleset_find(rs, "id-1"), 0);
    struct rules_rule_info info;
    ruleset_rule_info(rs, 0, &info);
    assert_string_equal(info.title, "one");
    assert_string_equal(info.logsource, "vigil");
    assert_int_equal(info.severity, VG_SEV_WARNING); /* no level */
    rules_report_release(&rep);
    ruleset_free(rs);
}

/* ---- files and folders ---- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_folders_and_references(void **state)
{
    (void)state;
    char dir[] = "/tmp/vg-rules-XXXXXX";
    char sub[1100];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/base", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file(sub, "failed.yml",
               "title: failed\nname: failed\nlogsource: {product: vigil}\n"
               "detection: {sel: {outcome: failure}, condition: sel}\n");
    write_file(dir, "brute.yaml",
               "title: brute\ncorrelation:\n  type: event_count\n"
               "  rules: [failed]\n  group-by: [src_ip]\n  timespan: 1m\n"
               "  condition: {gte: 5}\n");
    write_file(dir, "brute.tests.yaml", "tests: []\n");        /* test cases: not rules */
    write_file(dir, ".hidden.yml", "not: [valid\n");           /* hidden: skipped */
    write_file(dir, "notes.txt", "title: not yaml by name\n"); /* not *.yml */

    struct rules_report rep;
    struct ruleset *rs = NULL;
    struct errbuf eb;
    const char *paths[1] = { dir };
    rules_report_init(&rep);
    errbuf_clear(&eb);
    assert_int_equal(rules_load(paths, 1, NULL, &rs, &rep, &eb), 0);
    assert_int_equal(rep.n, 2);
    assert_int_equal(rep.loaded, 2);
    long b = ruleset_find(rs, "failed");
    assert_true(b >= 0);
    struct rules_rule_info info;
    ruleset_rule_info(rs, (size_t)b, &info);
    assert_false(info.alerts); /* only feeds the correlation */
    rules_report_release(&rep);
    ruleset_free(rs);

    /* a path that is not there */
    const char *missing[1] = { "/nonexistent/rules" };
    rules_report_init(&rep);
    assert_int_equal(rules_load(missing, 1, NULL, &rs, &rep, &eb), -ENOENT);
    assert_null(rs);
    assert_non_null(strstr(errbuf_msg(&eb), "/nonexistent/rules"));
    rules_report_release(&rep);

    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_mapping_is_data(void **state)
{
    (void)state;
    char dir[] = "/tmp/vg-map-XXXXXX";
    char map[1100];
    assert_non_null(mkdtemp(dir));
    snprintf(map, sizeof(map), "%s/map.yaml", dir);
    write_file(dir, "map.yaml",
               "version: 1\nlogsources:\n"
               "  - name: windows/process_creation\n"
               "    when: { product: windows, category: process_creation }\n"
               "    events: [ { source: sysmon } ]\n"
               "    fields: { Image: [process], CommandLine: [cmdline] }\n"
               "    unmapped: reject\n");
    struct rules_options opt = { .map_path = map };
    const char *rule = "title: w\nlogsource: {product: windows, category: process_creation}\n"
                       "detection: {sel: {Image|endswith: '\\whoami.exe'}, condition: sel}\n";
    struct rules_report rep;
    struct ruleset *rs = NULL;
    struct errbuf eb;
    rules_report_init(&rep);
    assert_int_equal(rules_load_mem("w.yml", rule, strlen(rule), &opt, &rs, &rep, &eb), 0);
    assert_int_equal(rep.loaded, 1);
    assert_true(tu_match(rs, "{}", "source=sysmon", "process=C:\\Windows\\whoami.exe", NULL));
    assert_false(tu_match(rs, "{}", "source=falco", "process=C:\\Windows\\whoami.exe", NULL));
    rules_report_release(&rep);
    ruleset_free(rs);

    /* a bad mapping names the key and its place */
    write_file(dir, "map.yaml", "version: 1\nlogsources:\n  - name: x\n    whn: {}\n");
    rules_report_init(&rep);
    errbuf_clear(&eb);
    assert_int_equal(rules_load_mem("w.yml", rule, strlen(rule), &opt, &rs, &rep, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "map.yaml:4:5: unknown key 'whn'"));
    rules_report_release(&rep);

    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- test cases ---- */

static void test_rule_tests_runner(void **state)
{
    (void)state;
    const char *src = getenv("VG_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/tests/unit/rules/data", src ? src : ".");
    const char *paths[1] = { dir };
    struct rules_report rep;
    struct rules_test_report tr;
    struct ruleset *rs = NULL;
    struct errbuf eb;

    rules_report_init(&rep);
    assert_int_equal(rules_load(paths, 1, NULL, &rs, &rep, &eb), 0);
    assert_int_equal(rep.invalid + rep.unsupported, 0);
    rules_test_report_init(&tr);
    assert_int_equal(rules_tests_run(rs, paths, 1, &tr, &eb), 0);
    for (size_t i = 0; i < tr.n; i++) {
        if (!tr.items[i].pass) {
            fprintf(stderr, "%s:%u %s %s: %s\n", tr.items[i].file, tr.items[i].line,
                    tr.items[i].rule, tr.items[i].name, tr.items[i].detail);
        }
    }
    assert_int_equal(tr.failed, 0);
    assert_true(tr.passed >= 5);
    assert_int_equal(tr.rules_untested, 0);
    rules_test_report_release(&tr);

    /* failing cases are reported, with the reason */
    char tmp[] = "/tmp/vg-rtest-XXXXXX";
    assert_non_null(mkdtemp(tmp));
    write_file(tmp, "r.yml",
               "title: r\nid: r-1\nlogsource: {product: vigil}\n"
               "detection: {sel: {user: root}, condition: sel}\n");
    write_file(tmp, "r.tests.yml",
               "tests:\n"
               "  - match: [ {message: x} ]\n"               /* no user: does not match */
               "    nomatch: [ {message: y, user: root} ]\n" /* generic maps user */
               "  - rule: nope\n    match: [ {} ]\n"
               "  - events: [ {user: root}, {user: root} ]\n    alerts: 2\n"
               "  - bogus: 1\n");
    const char *tpaths[1] = { tmp };
    ruleset_free(rs);
    rules_report_release(&rep);
    rules_report_init(&rep);
    assert_int_equal(rules_load(tpaths, 1, NULL, &rs, &rep, &eb), 0);
    rules_test_report_init(&tr);
    assert_int_equal(rules_tests_run(rs, tpaths, 1, &tr, &eb), 0);
    assert_int_equal(tr.n, 5);
    assert_false(tr.items[0].pass);
    assert_non_null(strstr(tr.items[0].detail, "does not match"));
    assert_false(tr.items[2].pass);
    assert_non_null(strstr(tr.items[2].detail, "'nope' is not loaded"));
    assert_false(tr.items[3].pass);
    /* two matches of a detection on the same thing are one incident */
    assert_non_null(strstr(tr.items[3].detail, "expected 2 alert(s), got 1"));
    assert_false(tr.items[4].pass);
    assert_non_null(strstr(tr.items[4].detail, "unknown key 'bogus'"));
    rules_test_report_release(&tr);
    rules_report_release(&rep);
    ruleset_free(rs);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_sigma_rules),
        cmocka_unit_test(test_corpus_rules_on_corpus_events),
        cmocka_unit_test(test_corpus_rules_fire),
        cmocka_unit_test(test_yaml_errors_have_places),
        cmocka_unit_test(test_documents),
        cmocka_unit_test(test_folders_and_references),
        cmocka_unit_test(test_mapping_is_data),
        cmocka_unit_test(test_rule_tests_runner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
