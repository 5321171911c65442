/* tests/unit/forwarders/test_match.c: forwarders from vigil.yaml: which alerts a match
 * lets through (severity, rule, rule_id, tag, any field, prefixes, CIDR), and every
 * mistake reported with its file:line:col and key (unknown match key, bad severity, bad
 * URL, missing secret, keys of the wrong type, a PagerDuty key of the wrong length); and
 * the retry decisions (classify, backoff with jitter, Retry-After). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "common/time.h"
#include "forwarders/fwd_int.h"
#include "tests/unit/forwarders/alert_util.h"

#define S 1000000000LL

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/vg-test-fwd-match-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return -1;
    }
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/pd.key", tmpdir);
    FILE *f = fopen(p, "w");
    fputs("0123456789abcdef0123456789abcdef\n", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/empty.key", tmpdir);
    f = fopen(p, "w");
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    char p[PATH_MAX];
    (void)state;
    snprintf(p, sizeof(p), "%s/pd.key", tmpdir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/empty.key", tmpdir);
    unlink(p);
    rmdir(tmpdir);
    return 0;
}

/* Loads "listen: off" + forwarders text and builds receiver 0. */
static int load_rcv(const char *text, struct vg_config **cfg, struct fwd_rcv_cfg **rc,
                    struct errbuf *eb)
{
    char full[4096];
    snprintf(full, sizeof(full),
             "listen: { forward: off, syslog: off, https: off, admin: off }\n%s", text);
    *cfg = NULL;
    *rc = NULL;
    errbuf_clear(eb);
    int err = config_load_mem("t.yaml", span_str(full), tmpdir, cfg, eb);
    if (err < 0) {
        return err;
    }
    err = fwd_rcv_cfg_new(*cfg, 0, rc, eb);
    return err;
}

static bool fits(const struct fwd_rcv_cfg *rc, const struct mk *m)
{
    struct buf b;
    struct fwd_alert a;
    buf_init(&b, 1 << 20);
    assert_int_equal(mk_alert(m, &b), 0);
    assert_int_equal(fwd_alert_parse(buf_span(&b), 1, &a), 0);
    bool ok = fwd_match_test(rc->match, &a);
    buf_release(&b);
    return ok;
}

static void test_match_semantics(void **state)
{
    struct vg_config *cfg;
    struct fwd_rcv_cfg *rc;
    struct errbuf eb;
    static const char *const tags[] = { "attack.t1110", NULL };
    static const char *const other[] = { "attack.t1059", NULL };
    (void)state;

    assert_int_equal(load_rcv("forwarders:\n"
                              "  - name: a\n"
                              "    type: webhook\n"
                              "    url: http://127.0.0.1:1/x\n"
                              "    match:\n"
                              "      severity: \">=high\"\n"
                              "      namespace: [ shop, pay* ]\n"
                              "      src_ip: 198.18.0.0/15\n"
                              "      tag: attack.t1110\n",
                              &cfg, &rc, &eb),
                     0);
    struct mk m = { 0 };
    m.severity = "error"; /* Sigma high */
    m.ns = "payments";
    m.src_ip = "198.19.1.2";
    m.tags = tags;
    assert_true(fits(rc, &m));
    m.severity = "critical";
    assert_true(fits(rc, &m));
    m.severity = "warning"; /* medium: below >=high */
    assert_false(fits(rc, &m));
    m.severity = "error";
    m.ns = "kube-system";
    assert_false(fits(rc, &m));
    m.ns = "shop";
    m.src_ip = "10.0.0.1";
    assert_false(fits(rc, &m));
    m.src_ip = "::ffff:198.18.0.9"; /* the same network spelled as IPv6 */
    assert_true(fits(rc, &m));
    m.src_ip = "198.17.255.255"; /* just below the /15 */
    assert_false(fits(rc, &m));
    m.src_ip = "198.20.0.0"; /* just above it */
    assert_false(fits(rc, &m));
    m.src_ip = "198.19.255.255"; /* its last address */
    assert_true(fits(rc, &m));
    m.src_ip = "198.19.1.2";
    m.tags = other;
    assert_false(fits(rc, &m));
    m.tags = tags;
    m.ns = NULL; /* a field the alert lacks does not match */
    assert_false(fits(rc, &m));
    fwd_rcv_cfg_free(rc);
    config_free(cfg);

    /* A /20 written with its host bits set, at its edges. */
    assert_int_equal(load_rcv("forwarders:\n  - { name: a, type: webhook, url: 'https://h/x',\n"
                              "      match: { src_ip: 10.1.17.9/20 } }\n",
                              &cfg, &rc, &eb),
                     0);
    static const struct {
        const char *ip;
        bool in;
    } edge[] = { { "10.1.16.0", true },
                 { "10.1.31.255", true },
                 { "10.1.15.255", false },
                 { "10.1.32.0", false } };
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        struct mk e = { 0 };
        e.src_ip = edge[i].ip;
        if (fits(rc, &e) != edge[i].in) {
            fail_msg("%s: expected %s", edge[i].ip, edge[i].in ? "a match" : "none");
        }
    }
    fwd_rcv_cfg_free(rc);
    config_free(cfg);

    /* no match: everything; rule by title and rule_id */
    assert_int_equal(
        load_rcv("forwarders:\n  - { name: a, type: slack, url: 'https://h/x' }\n", &cfg, &rc, &eb),
        0);
    assert_null(rc->match);
    struct mk any = { 0 };
    assert_true(fits(rc, &any));
    assert_int_equal(rc->rate_per_min, 60); /* slack's default */
    fwd_rcv_cfg_free(rc);
    config_free(cfg);
    assert_int_equal(load_rcv("forwarders:\n  - { name: a, type: webhook, url: 'https://h/x',\n"
                              "      match: { rule: 'SSH brute force', rule_id: [ r-1, r-2 ],\n"
                              "               severity: '<=warning', kind: alert } }\n",
                              &cfg, &rc, &eb),
                     0);
    struct mk r = { 0 };
    r.title = "SSH brute force";
    r.severity = "notice";
    assert_true(fits(rc, &r));
    r.severity = "error";
    assert_false(fits(rc, &r));
    r.severity = "warning";
    r.title = "Shell spawned in a container";
    assert_false(fits(rc, &r));
    fwd_rcv_cfg_free(rc);
    config_free(cfg);
}

struct bad {
    const char *text;
    const char *error; /* the start of the message */
};

static void test_config_errors(void **state)
{
    static const struct bad cases[] = {
        { "forwarders:\n  - { name: a, type: webhook, url: 'http://h/x', match: { colour: red } "
          "}\n",
          "t.yaml:3:59: 'forwarders[0].match.colour': cannot match on 'colour'" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'http://h/x',\n"
          "      match: { severity: '>=extreme' } }\n",
          "t.yaml:4:16: 'forwarders[0].match.severity': '>=extreme' is not a severity" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'http://h/x', match: { ts: 1 } }\n",
          "t.yaml:3:59: 'forwarders[0].match.ts': cannot match on 'ts'" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'http://h/x',\n"
          "      match: { src_ip: 10.0.0.0/99 } }\n",
          "t.yaml:4:16: 'forwarders[0].match.src_ip': '10.0.0.0/99' is not an address" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'http://h/x', match: { host: [] } }\n",
          "t.yaml:3:65: 'forwarders[0].match.host': expected 1 to" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'http://user:pw@h/x' }\n",
          "t.yaml:3:36: 'forwarders[0].url': credentials in the URL are not allowed" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'http://h:99999/x' }\n",
          "t.yaml:3:36: 'forwarders[0].url': the URL's port is not a number" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'http:///x' }\n",
          "t.yaml:3:36: 'forwarders[0].url': the URL has no host" },
        { "forwarders:\n  - { name: a, type: pagerduty, url: 'https://h/v2/enqueue' }\n",
          "t.yaml:3:22: 'forwarders[0].type': type pagerduty needs its routing key" },
        { "forwarders:\n  - { name: a, type: opsgenie, url: 'https://h/v2/alerts',\n"
          "      secret_env: VG_TEST_UNSET_VARIABLE }\n",
          "t.yaml:4:19: 'forwarders[0].secret_env': environment variable "
          "'VG_TEST_UNSET_VARIABLE' is not set" },
        { "forwarders:\n  - { name: a, type: pagerduty, url: 'https://h/v2/enqueue',\n"
          "      secret_file: empty.key }\n",
          "t.yaml:4:20: 'forwarders[0].secret_file':" },
        { "forwarders:\n  - { name: a, type: pagerduty, url: 'https://h/v2/enqueue',\n"
          "      secret_file: nope.key }\n",
          "t.yaml:4:20: 'forwarders[0].secret_file': cannot read 'nope.key'" },
        { "forwarders:\n  - { name: a, type: slack, url: 'https://h/x', resend_every: 1m }\n",
          "t.yaml:3:63: 'forwarders[0].resend_every': 'resend_every' is for type alertmanager" },
        { "forwarders:\n  - { name: a, type: alertmanager, url: 'http://h:9093',\n"
          "      resend_every: 5m, expire_after: 5m }\n",
          "t.yaml:4:39: 'forwarders[0].expire_after': expire_after must be longer" },
        { "forwarders:\n  - { name: a, type: slack }\n",
          "t.yaml:3:13: 'forwarders[0].name': missing url" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'http://h/x', retry: { min: 1m, max: 1s "
          "} }\n",
          "t.yaml:3:73: 'forwarders[0].retry.max': retry.max is shorter" },
        { "forwarders:\n  - { name: a, type: webhook, url: 'gopher://h/x' }\n",
          "t.yaml:3:36: 'forwarders[0].url': expected an http:// or https:// URL" },
    };
    (void)state;
    int fails = 0;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/pd.short", tmpdir);
    FILE *f = fopen(p, "w");
    fputs("short\n", f);
    fclose(f);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct vg_config *cfg = NULL;
        struct fwd_rcv_cfg *rc = NULL;
        struct errbuf eb;
        errbuf_clear(&eb);
        int err = load_rcv(cases[i].text, &cfg, &rc, &eb);
        if (err != VG_ECONFIG || strncmp(errbuf_msg(&eb), cases[i].error, strlen(cases[i].error))) {
            fprintf(stderr, "case %zu: got %d '%s'\n   want '%s'\n", i, err, errbuf_msg(&eb),
                    cases[i].error);
        }
        fails += err != VG_ECONFIG ||
                 strncmp(errbuf_msg(&eb), cases[i].error, strlen(cases[i].error)) != 0;
        assert_null(rc);
        config_free(cfg);
    }
    assert_int_equal(fails, 0);
    /* A PagerDuty key is 32 characters; the message says so without quoting the key. */
    struct vg_config *cfg = NULL;
    struct fwd_rcv_cfg *rc = NULL;
    struct errbuf eb;
    assert_int_equal(load_rcv("forwarders:\n  - { name: a, type: pagerduty, url: 'https://h/x',\n"
                              "      secret_file: pd.short }\n",
                              &cfg, &rc, &eb),
                     VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "32 characters; this one has 5"));
    assert_null(strstr(errbuf_msg(&eb), "short"));
    config_free(cfg);
    unlink(p);
    /* A good one reads its secret; the Slack URL may be the secret itself. */
    setenv("VG_TEST_SLACK_URL", "https://hooks.slack.com/services/T0/B0/secrettoken", 1);
    assert_int_equal(load_rcv("forwarders:\n  - { name: a, type: pagerduty, url: 'https://h/x',\n"
                              "      secret_file: pd.key }\n"
                              "  - { name: s, type: slack, secret_env: VG_TEST_SLACK_URL }\n",
                              &cfg, &rc, &eb),
                     0);
    assert_string_equal(rc->secret, "0123456789abcdef0123456789abcdef");
    fwd_rcv_cfg_free(rc);
    assert_int_equal(fwd_rcv_cfg_new(cfg, 1, &rc, &eb), 0);
    assert_string_equal(rc->url_shown, "https://hooks.slack.com");
    /* what leaves the process never holds the token */
    char msg[200] = "POST https://hooks.slack.com/services/T0/B0/secrettoken failed";
    fwd_redact(rc, msg);
    assert_null(strstr(msg, "secrettoken"));
    fwd_rcv_cfg_free(rc);
    assert_int_equal(fwd_config_check(cfg, &eb), 0);
    config_free(cfg);
    unsetenv("VG_TEST_SLACK_URL");
}

static void test_retry_decisions(void **state)
{
    int64_t d;
    (void)state;

    assert_int_equal(fwd_classify(200), FWD_DELIVERED);
    assert_int_equal(fwd_classify(202), FWD_DELIVERED);
    assert_int_equal(fwd_classify(0), FWD_RETRY);
    assert_int_equal(fwd_classify(408), FWD_RETRY);
    assert_int_equal(fwd_classify(429), FWD_RETRY);
    assert_int_equal(fwd_classify(500), FWD_RETRY);
    assert_int_equal(fwd_classify(503), FWD_RETRY);
    assert_int_equal(fwd_classify(400), FWD_DEAD);
    assert_int_equal(fwd_classify(401), FWD_DEAD);
    assert_int_equal(fwd_classify(404), FWD_DEAD);
    assert_int_equal(fwd_classify(410), FWD_DEAD);
    assert_int_equal(fwd_classify(301), FWD_DEAD);

    /* backoff: doubles from min, capped at max, jitter keeps it in [d/2, d] */
    assert_int_equal(fwd_backoff_ns(S, 300 * S, 1, 0.0), S / 2);
    assert_true(fwd_backoff_ns(S, 300 * S, 1, 0.999999) > S * 99 / 100);
    assert_true(fwd_backoff_ns(S, 300 * S, 1, 0.999999) < S);
    assert_int_equal(fwd_backoff_ns(S, 300 * S, 4, 0.0), 4 * S);
    assert_int_equal(fwd_backoff_ns(S, 300 * S, 40, 0.0), 150 * S);
    assert_true(fwd_backoff_ns(S, 300 * S, 1000, 0.5) <= 300 * S);
    for (unsigned n = 1; n < 80; n++) {
        int64_t lo = fwd_backoff_ns(S, 300 * S, n, 0.0);
        int64_t hi = fwd_backoff_ns(S, 300 * S, n, 0.9999);
        assert_true(lo > 0 && lo <= hi && hi <= 300 * S);
    }

    /* Retry-After: delay-seconds or an IMF-fixdate (RFC 9110 10.2.3) */
    int64_t now = 784111777LL * S; /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("120"), now, &d), 0);
    assert_int_equal(d, 120 * S);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT(" 0 \r"), now, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("Sun, 06 Nov 1994 08:50:37 GMT"), now, &d), 0);
    assert_int_equal(d, 60 * S);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("Sun, 06 Nov 1994 08:00:00 GMT"), now, &d), 0);
    assert_int_equal(d, 0); /* in the past: now */
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT(""), now, &d), VG_EPARSE);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("-5"), now, &d), VG_EPARSE);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("1e3"), now, &d), VG_EPARSE);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("99999999999"), now, &d), VG_EPARSE);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("Sunday, 06-Nov-94 08:49:37 GMT"), now, &d),
                     VG_EPARSE);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("Sun, 06 Foo 1994 08:49:37 GMT"), now, &d),
                     VG_EPARSE);
    assert_int_equal(fwd_retry_after_parse(SPAN_LIT("Sun, 06 Nov 1994 25:49:37 GMT"), now, &d),
                     VG_EPARSE);
}

/* etc/vigil.yaml's forwarder example is a working one: it checks. */
static void test_example_config(void **state)
{
    const char *src = getenv("VG_SOURCE_DIR");
    char path[PATH_MAX];
    char *text = malloc(CFG_MAX_FILE_BYTES);
    struct vg_config *cfg = NULL;
    struct errbuf eb;
    (void)state;

    snprintf(path, sizeof(path), "%s/etc/vigil.yaml", src ? src : ".");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(text, 1, CFG_MAX_FILE_BYTES, f);
    fclose(f);
    /* the example names pki/ca.pem and the rest, where `vigil pki init pki` puts them */
    static const char *const files[] = { "pki/ca.pem", "pki/server.pem", "pki/server-key.pem" };
    char pki[PATH_MAX];
    snprintf(pki, sizeof(pki), "%s/pki", tmpdir);
    assert_int_equal(mkdir(pki, 0700), 0);
    for (size_t i = 0; i < 3; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", tmpdir, files[i]);
        FILE *w = fopen(p, "w");
        fclose(w);
    }
    errbuf_clear(&eb);
    assert_int_equal(
        config_load_mem("vigil.yaml", (struct span){ (const uint8_t *)text, n }, tmpdir, &cfg, &eb),
        0);
    assert_true(cfg->nforwarders >= 1);
    assert_int_equal(fwd_config_check(cfg, &eb), 0);
    config_free(cfg);
    for (size_t i = 0; i < 3; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    rmdir(pki);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_semantics),
        cmocka_unit_test(test_example_config),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_retry_decisions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
