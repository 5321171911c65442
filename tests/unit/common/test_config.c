/* tests/unit/common/test_config.c: vigil.yaml loading (common/config.c) and the option
 * table walker under it (common/cfg_yaml.c): the example etc/vigil.yaml, defaults, every
 * class of error with its place and key path, and the value parsers. Run under ASan:
 * every load, failed or not, must free everything. */
#include <errno.h>
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
#include "common/config.h"
#include "common/time.h"

#define TLS_OK "tls: { ca: ca.pem, cert: server.pem, key: server-key.pem }\n"

static char tmpdir[64];

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) < sizeof(path));
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void remove_file(const char *dir, const char *name)
{
    char path[PATH_MAX];

    assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) < sizeof(path));
    unlink(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/vg-test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        return -1;
    }
    write_file(tmpdir, "ca.pem", "-----BEGIN CERTIFICATE-----\n");
    write_file(tmpdir, "server.pem", "-----BEGIN CERTIFICATE-----\n");
    write_file(tmpdir, "server-key.pem", "-----BEGIN PRIVATE KEY-----\n");
    /* etc/vigil.yaml names pki/ca.pem and the rest, where `vigil pki init pki` puts them. */
    char pki[PATH_MAX];
    snprintf(pki, sizeof(pki), "%s/pki", tmpdir);
    if (mkdir(pki, 0700) != 0) {
        return -1;
    }
    write_file(pki, "ca.pem", "-----BEGIN CERTIFICATE-----\n");
    write_file(pki, "server.pem", "-----BEGIN CERTIFICATE-----\n");
    write_file(pki, "server-key.pem", "-----BEGIN PRIVATE KEY-----\n");
    return 0;
}

static int teardown(void **state)
{
    char pki[PATH_MAX];

    (void)state;
    remove_file(tmpdir, "ca.pem");
    remove_file(tmpdir, "server.pem");
    remove_file(tmpdir, "server-key.pem");
    remove_file(tmpdir, "vigil.yaml");
    remove_file(tmpdir, "pki/ca.pem");
    remove_file(tmpdir, "pki/server.pem");
    remove_file(tmpdir, "pki/server-key.pem");
    snprintf(pki, sizeof(pki), "%s/pki", tmpdir);
    rmdir(pki);
    rmdir(tmpdir);
    return 0;
}

static char *read_example(size_t *len)
{
    const char *src = getenv("VG_SOURCE_DIR");
    char path[PATH_MAX];
    FILE *f;
    char *text;

    snprintf(path, sizeof(path), "%s/etc/vigil.yaml", src ? src : ".");
    f = fopen(path, "rb");
    assert_non_null(f);
    text = malloc(CFG_MAX_FILE_BYTES);
    assert_non_null(text);
    *len = fread(text, 1, CFG_MAX_FILE_BYTES, f);
    assert_true(*len > 0);
    fclose(f);
    return text;
}

static int load(const char *text, struct vg_config **c, struct errbuf *eb)
{
    *c = NULL;
    errbuf_clear(eb);
    return config_load_mem("t.yaml", span_str(text), tmpdir, c, eb);
}

static void in_tmp(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void test_example_loads(void **state)
{
    size_t len;
    char *text = read_example(&len);
    struct vg_config *c = NULL;
    struct vg_config *def = NULL;
    struct errbuf eb;
    char p[PATH_MAX];

    (void)state;
    errbuf_clear(&eb);
    int rc =
        config_load_mem("vigil.yaml", (struct span){ (const uint8_t *)text, len }, tmpdir, &c, &eb);
    if (rc != 0) {
        fail_msg("etc/vigil.yaml: %s", errbuf_msg(&eb));
    }
    assert_null(c->file);
    assert_string_equal(c->store.path, "/var/lib/vigil");
    assert_int_equal(c->store.partition_ns, 3600 * VG_NS_PER_SEC);
    assert_int_equal(c->store.max_age_ns, 30 * 86400 * VG_NS_PER_SEC);
    assert_int_equal(c->store.max_size_bytes, 200ULL * 1000 * 1000 * 1000);
    assert_int_equal(c->store.block_bytes, 1024 * 1024);
    assert_string_equal(c->store.compression, "lz4hc");
    assert_string_equal(c->store.compaction, "zstd");
    assert_int_equal(c->store.commit_interval_ns, 2 * 1000 * 1000);
    assert_int_equal(c->store.block_max_age_ns, 60 * VG_NS_PER_SEC);
    assert_int_equal(c->store.free_reserve_bytes, 1ULL << 30);
    assert_true(c->store.fsync);

    in_tmp(p, sizeof(p), "pki/ca.pem");
    assert_string_equal(c->tls.ca, p);
    in_tmp(p, sizeof(p), "pki/server.pem");
    assert_string_equal(c->tls.cert, p);
    in_tmp(p, sizeof(p), "pki/server-key.pem");
    assert_string_equal(c->tls.key, p);
    assert_null(c->tls.crl);
    assert_int_equal(c->tls.handshake_timeout_ns, 10 * VG_NS_PER_SEC);

    assert_true(c->listen.forward.enabled);
    assert_string_equal(c->listen.forward.host, "0.0.0.0");
    assert_int_equal(c->listen.forward.port, 24224);
    assert_string_equal(c->listen.syslog.host, "0.0.0.0");
    assert_int_equal(c->listen.syslog.port, 6514);
    assert_int_equal(c->listen.https.port, 8443);
    assert_string_equal(c->listen.admin.host, "127.0.0.1");
    assert_int_equal(c->listen.admin.port, 9465);
    assert_false(c->listen.insecure);
    assert_int_equal(c->listen.max_frame_bytes, 16 << 20);
    assert_int_equal(c->listen.max_connections, 4096);
    assert_int_equal(c->listen.idle_timeout_ns, 300 * VG_NS_PER_SEC);
    assert_int_equal(c->listen.high_water_bytes, 64 << 20);
    assert_null(c->listen.shared_key_file);

    assert_int_equal(c->rules.npaths, 1);
    in_tmp(p, sizeof(p), "rules");
    assert_string_equal(c->rules.paths[0], p);
    assert_int_equal(c->rules.resolve_after_ns, 15 * 60 * VG_NS_PER_SEC);
    assert_int_equal(c->rules.update_every_ns, 5 * 60 * VG_NS_PER_SEC);
    assert_int_equal(c->rules.lateness_ns, 2 * 60 * VG_NS_PER_SEC);
    assert_int_equal(c->rules.max_future_ns, 5 * 60 * VG_NS_PER_SEC);
    assert_int_equal(c->rules.summary_every_ns, 60 * VG_NS_PER_SEC);

    assert_int_equal(c->nforwarders, 1);
    assert_string_equal(c->forwarders[0].name, "oncall");
    assert_string_equal(c->forwarders[0].type, "alertmanager");
    assert_string_equal(c->forwarders[0].url, "http://127.0.0.1:9093");
    assert_int_equal(c->forwarders[0].match.n, 1);
    assert_string_equal(c->forwarders[0].match.items[0].key, "severity");
    assert_int_equal(c->forwarders[0].match.items[0].nvals, 1);
    assert_string_equal(c->forwarders[0].match.items[0].vals[0], ">=high");
    assert_null(c->forwarders[0].secret_file);
    assert_null(c->forwarders[0].secret_env);
    assert_string_equal(c->log.level, "info");

    /* The example documents the defaults: the values it spells out are the built-in ones. */
    assert_int_equal(config_defaults(&def), 0);
    assert_string_equal(def->store.path, c->store.path);
    assert_int_equal(def->store.partition_ns, c->store.partition_ns);
    assert_int_equal(def->store.max_age_ns, c->store.max_age_ns);
    assert_int_equal(def->store.max_size_bytes, c->store.max_size_bytes);
    assert_int_equal(def->store.block_bytes, c->store.block_bytes);
    assert_int_equal(def->store.commit_interval_ns, c->store.commit_interval_ns);
    assert_int_equal(def->store.free_reserve_bytes, c->store.free_reserve_bytes);
    assert_int_equal(def->tls.handshake_timeout_ns, c->tls.handshake_timeout_ns);
    assert_string_equal(def->listen.forward.host, c->listen.forward.host);
    assert_int_equal(def->listen.forward.port, c->listen.forward.port);
    assert_int_equal(def->listen.syslog.port, c->listen.syslog.port);
    assert_int_equal(def->listen.https.port, c->listen.https.port);
    assert_int_equal(def->listen.admin.port, c->listen.admin.port);
    assert_int_equal(def->listen.max_frame_bytes, c->listen.max_frame_bytes);
    assert_int_equal(def->listen.max_connections, c->listen.max_connections);
    assert_int_equal(def->listen.idle_timeout_ns, c->listen.idle_timeout_ns);
    assert_int_equal(def->listen.high_water_bytes, c->listen.high_water_bytes);
    assert_string_equal(def->log.level, c->log.level);
    config_free(def);
    config_free(c);
    free(text);
}

static void test_defaults(void **state)
{
    struct vg_config *c = NULL;

    (void)state;
    assert_int_equal(config_defaults(&c), 0);
    assert_null(c->file);
    assert_string_equal(c->store.path, "/var/lib/vigil");
    assert_int_equal(c->store.partition_ns, 3600 * VG_NS_PER_SEC);
    assert_int_equal(c->store.max_age_ns, 30 * 86400 * VG_NS_PER_SEC);
    assert_int_equal(c->store.max_size_bytes, 200ULL * 1000 * 1000 * 1000);
    assert_int_equal(c->store.block_bytes, 1024 * 1024);
    assert_string_equal(c->store.compression, "lz4hc");
    assert_string_equal(c->store.compaction, "zstd");
    assert_int_equal(c->store.commit_interval_ns, 2 * 1000 * 1000);
    assert_int_equal(c->store.free_reserve_bytes, 1ULL << 30);
    assert_true(c->store.fsync);
    assert_null(c->tls.ca);
    assert_null(c->tls.cert);
    assert_null(c->tls.key);
    assert_null(c->tls.crl);
    assert_string_equal(c->listen.forward.host, "0.0.0.0");
    assert_int_equal(c->listen.forward.port, 24224);
    assert_int_equal(c->listen.syslog.port, 6514);
    assert_int_equal(c->listen.https.port, 8443);
    assert_string_equal(c->listen.admin.host, "127.0.0.1");
    assert_int_equal(c->listen.admin.port, 9465);
    assert_false(c->listen.insecure);
    assert_int_equal(c->listen.max_frame_bytes, 16 << 20);
    assert_int_equal(c->listen.max_connections, 4096);
    assert_int_equal(c->listen.idle_timeout_ns, 300 * VG_NS_PER_SEC);
    assert_int_equal(c->listen.high_water_bytes, 64 << 20);
    assert_int_equal(c->rules.npaths, 0);
    assert_int_equal(c->nforwarders, 0);
    assert_null(c->forwarders);
    assert_string_equal(c->log.level, "info");
    config_free(c);
    config_free(NULL);
}

static void test_minimal_and_overrides(void **state)
{
    struct vg_config *c;
    struct errbuf eb;
    char p[PATH_MAX];

    (void)state;
    /* Only the TLS files: everything else default. */
    assert_int_equal(load(TLS_OK, &c, &eb), 0);
    assert_int_equal(c->listen.forward.port, 24224);
    config_free(c);

    assert_int_equal(load(TLS_OK "store:\n"
                                 "  path: data\n"
                                 "  commit_interval: 0\n"
                                 "  block_max_age: 0s\n"
                                 "  block_bytes: 4096\n"
                                 "  compression: lz4\n"
                                 "  compaction: off\n"
                                 "  free_reserve: 0\n"
                                 "  retention: { max_age: 2w, max_size: 10 GiB, interval: 5s }\n"
                                 "  fsync: false\n"
                                 "rules: { paths: [ rules, /abs/rules.yml ], resolve_after: 1h,\n"
                                 "         update_every: 30s, lateness: 0, max_future: 1m,\n"
                                 "         summary_every: 10s }\n"
                                 "listen: { forward: '[::]:0', syslog: off, https: null,\n"
                                 "          admin: '[::1]:9465', max_connections: 10 }\n"
                                 "log: { level: debug }\n",
                          &c, &eb),
                     0);
    in_tmp(p, sizeof(p), "data");
    assert_string_equal(c->store.path, p);
    assert_int_equal(c->store.commit_interval_ns, 0);
    assert_int_equal(c->store.block_max_age_ns, 0);
    assert_int_equal(c->store.block_bytes, 4096);
    assert_string_equal(c->store.compression, "lz4");
    assert_string_equal(c->store.compaction, "off");
    assert_int_equal(c->store.free_reserve_bytes, 0);
    assert_int_equal(c->store.max_age_ns, 14 * 86400 * VG_NS_PER_SEC);
    assert_int_equal(c->store.max_size_bytes, 10ULL << 30);
    assert_int_equal(c->store.retain_every_ns, 5 * VG_NS_PER_SEC);
    assert_false(c->store.fsync);
    assert_int_equal(c->rules.npaths, 2);
    in_tmp(p, sizeof(p), "rules");
    assert_string_equal(c->rules.paths[0], p);
    assert_string_equal(c->rules.paths[1], "/abs/rules.yml");
    assert_int_equal(c->rules.resolve_after_ns, 3600 * VG_NS_PER_SEC);
    assert_int_equal(c->rules.update_every_ns, 30 * VG_NS_PER_SEC);
    assert_int_equal(c->rules.lateness_ns, 0);
    assert_int_equal(c->rules.max_future_ns, 60 * VG_NS_PER_SEC);
    assert_int_equal(c->rules.summary_every_ns, 10 * VG_NS_PER_SEC);
    assert_string_equal(c->listen.forward.host, "::");
    assert_int_equal(c->listen.forward.port, 0);
    assert_false(c->listen.syslog.enabled);
    assert_null(c->listen.syslog.host);
    assert_false(c->listen.https.enabled);
    assert_string_equal(c->listen.admin.host, "::1");
    assert_int_equal(c->listen.max_connections, 10);
    assert_string_equal(c->log.level, "debug");
    config_free(c);

    /* Every TLS listener off: no TLS files needed. */
    assert_int_equal(load("listen: { forward: off, syslog: '', https: null }\n", &c, &eb), 0);
    assert_null(c->tls.ca);
    config_free(c);

    /* insecure on loopback, in every spelling. */
    assert_int_equal(load("listen:\n"
                          "  insecure: true\n"
                          "  forward: 127.0.0.1:0\n"
                          "  syslog: '[::1]:0'\n"
                          "  https: localhost:0\n",
                          &c, &eb),
                     0);
    assert_true(c->listen.insecure);
    assert_null(c->tls.ca);
    assert_string_equal(c->listen.syslog.host, "::1");
    config_free(c);

    /* admin off loopback only when told (Kubernetes probes and Prometheus in a pod),
     * and then user: for a root start. */
    assert_int_equal(load(TLS_OK "listen: { admin: 0.0.0.0:9465, admin_remote: true }\n"
                                 "user: vigil\n",
                          &c, &eb),
                     0);
    assert_true(c->listen.admin_remote);
    assert_string_equal(c->listen.admin.host, "0.0.0.0");
    assert_string_equal(c->user, "vigil");
    config_free(c);

    /* An empty file and a file of comments are all defaults (here: missing TLS). */
    assert_int_equal(load("", &c, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "'tls.ca': missing"));
    assert_int_equal(load("# nothing\n", &c, &eb), VG_ECONFIG);

    /* Two forwarders with secrets. */
    write_file(tmpdir, "pd.key", "secret\n");
    assert_int_equal(load(TLS_OK "forwarders:\n"
                                 "  - { name: a, type: pagerduty, url: 'https://x/y',\n"
                                 "      secret_file: pd.key }\n"
                                 "  - name: b\n"
                                 "    type: webhook\n"
                                 "    url: http://h:1/\n"
                                 "    secret_env: B_TOKEN\n"
                                 "    match: { severity: critical }\n",
                          &c, &eb),
                     0);
    assert_int_equal(c->nforwarders, 2);
    in_tmp(p, sizeof(p), "pd.key");
    assert_string_equal(c->forwarders[0].secret_file, p);
    assert_int_equal(c->forwarders[0].match.n, 0);
    assert_string_equal(c->forwarders[1].secret_env, "B_TOKEN");
    assert_string_equal(c->forwarders[1].match.items[0].vals[0], "critical");
    config_free(c);
    remove_file(tmpdir, "pd.key");
}

struct bad_case {
    const char *text;
    const char *want; /* substring of the message */
};

/* store.signing_key: a path resolved against the config's directory, which must exist;
 * absent by default (the store makes its own key). */
static void test_signing_key(void **state)
{
    struct vg_config *c;
    struct errbuf eb;
    char p[PATH_MAX];

    (void)state;
    assert_int_equal(load(TLS_OK, &c, &eb), 0);
    assert_null(c->store.signing_key);
    config_free(c);

    assert_int_equal(load(TLS_OK "store: { signing_key: server-key.pem }\n", &c, &eb), 0);
    in_tmp(p, sizeof(p), "server-key.pem");
    assert_string_equal(c->store.signing_key, p);
    config_free(c);

    assert_int_equal(load(TLS_OK "store: { signing_key: no-such-key.pem }\n", &c, &eb), VG_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(errbuf_msg(&eb), "'store.signing_key'"));
    assert_non_null(strstr(errbuf_msg(&eb), "no-such-key.pem"));
}

static void test_errors(void **state)
{
    static const struct bad_case cases[] = {
        /* unknown keys, top level and nested */
        { TLS_OK "listen_x: 1\n", "t.yaml:2:1: unknown key 'listen_x'" },
        { TLS_OK "listen:\n  max_fram: 1\n", "t.yaml:3:3: unknown key 'listen.max_fram'" },
        { TLS_OK "store:\n  retention:\n    max_ag: 1d\n",
          "t.yaml:4:5: unknown key 'store.retention.max_ag'" },
        { TLS_OK "forwarders:\n  - { name: a, type: slack, url: 'https://x', colour: red }\n",
          "t.yaml:3:47: unknown key 'forwarders[0].colour'" },
        { TLS_OK "? [a]\n: 1\n", "t.yaml:2:3: top-level keys must be strings" },
        { TLS_OK "log: { [a]: 1 }\n", "t.yaml:2:8: keys in 'log' must be strings" },
        /* wrong types */
        { TLS_OK "store: 5\n", "t.yaml:2:8: 'store': expected a map, got '5'" },
        { TLS_OK "rules:\n  paths: /x\n",
          "t.yaml:3:10: 'rules.paths': expected a list of paths, got '/x'" },
        { TLS_OK "rules: { resolve_after: 0 }\n",
          "t.yaml:2:25: 'rules.resolve_after': 0 is out of range (1s..366d)" },
        { TLS_OK "rules: { lateness: 2d }\n",
          "t.yaml:2:20: 'rules.lateness': 2d is out of range (0..1d)" },
        { TLS_OK "rules: { resolve_afterr: 1m }\n",
          "t.yaml:2:10: unknown key 'rules.resolve_afterr'" },
        { TLS_OK "rules:\n  paths: [ [a] ]\n",
          "t.yaml:3:12: 'rules.paths[0]': expected a path, got a list" },
        { TLS_OK "store:\n  fsync: maybe\n",
          "t.yaml:3:10: 'store.fsync': expected true or false, got 'maybe'" },
        { TLS_OK "listen: { max_connections: [1] }\n",
          "t.yaml:2:28: 'listen.max_connections': expected a non-negative integer, got a list" },
        { TLS_OK "listen: { max_connections: -1 }\n",
          "'listen.max_connections': expected a non-negative integer, got '-1'" },
        { TLS_OK "forwarders: { name: a }\n",
          "t.yaml:2:13: 'forwarders': expected a list of maps, got a map" },
        { TLS_OK "forwarders: [ x ]\n", "t.yaml:2:15: 'forwarders[0]': expected a map, got 'x'" },
        { TLS_OK "store: { path: null }\n", "t.yaml:2:16: 'store.path' must not be null" },
        { TLS_OK "store: { path: \"/a\\0b\" }\n",
          "t.yaml:2:16: 'store.path': NUL bytes are not allowed" },
        { TLS_OK "store: { path: '' }\n",
          "t.yaml:2:16: 'store.path': expected a path, got an empty string" },
        { "- 1\n", "t.yaml:1:1: expected a map at the top level, got a list" },
        /* bad sizes, durations, addresses */
        { TLS_OK "store:\n  block_bytes: 12XB\n",
          "t.yaml:3:16: 'store.block_bytes': expected a size like 16MiB, got '12XB'" },
        { TLS_OK "store:\n  block_bytes: 99999999999999999999999\n",
          "'store.block_bytes': expected a size like 16MiB" },
        { TLS_OK "store:\n  partition: soon\n",
          "t.yaml:3:14: 'store.partition': expected a duration like 1h, got 'soon'" },
        { TLS_OK "store:\n  partition: -1h\n", "'store.partition': expected a duration" },
        { TLS_OK "listen:\n  forward: 0.0.0.0:99999\n",
          "t.yaml:3:12: 'listen.forward': expected host:port" },
        { TLS_OK "listen:\n  forward: ::1:80\n", "'listen.forward': expected host:port" },
        { TLS_OK "listen:\n  forward: '[::1]80'\n", "'listen.forward': expected host:port" },
        { TLS_OK "listen:\n  forward: '[nope]:80'\n", "'listen.forward': expected host:port" },
        { TLS_OK "listen:\n  forward: 24224\n", "'listen.forward': expected host:port" },
        { TLS_OK "listen:\n  forward: 'a b:1'\n", "'listen.forward': expected host:port" },
        { TLS_OK "log: { level: loud }\n",
          "t.yaml:2:15: 'log.level': expected one of error, warn, info, debug, got 'loud'" },
        { TLS_OK "log: { level: null }\n",
          "t.yaml:2:15: 'log.level': expected one of error, warn, info, debug, got null" },
        { TLS_OK "store:\n  compression: zstd\n",
          "t.yaml:3:16: 'store.compression': expected one of lz4hc, lz4, got 'zstd'" },
        /* out of range */
        { TLS_OK "store:\n  block_bytes: 1KiB\n",
          "t.yaml:3:16: 'store.block_bytes': 1KiB is out of range (4KiB..16MiB)" },
        { TLS_OK "store: { commit_interval: 2s }\n",
          "'store.commit_interval': 2s is out of range (0..1s)" },
        { TLS_OK "store: { block_max_age: 2h }\n",
          "'store.block_max_age': 2h is out of range (0..1h)" },
        { TLS_OK "listen: { max_connections: 0 }\n",
          "'listen.max_connections': 0 is out of range (1..1000000)" },
        { TLS_OK "listen: { max_frame_bytes: 1GiB }\n",
          "'listen.max_frame_bytes': 1GiB is out of range (1KiB..256MiB)" },
        { TLS_OK "store: { retention: { max_age: 500ms } }\n",
          "t.yaml:2:32: 'store.retention.max_age': 500ms is out of range (1s..36500d)" },
        { TLS_OK "store: { retention: { interval: 2d } }\n",
          "t.yaml:2:33: 'store.retention.interval': 2d is out of range (1s..1d)" },
        /* files */
        { "tls: { ca: nope.pem, cert: server.pem, key: server-key.pem }\n",
          "t.yaml:1:12: 'tls.ca': cannot read 'nope.pem'" },
        { "tls: { ca: ca.pem, cert: server.pem, key: /nonexistent/k.pem }\n",
          "t.yaml:1:43: 'tls.key': cannot read '/nonexistent/k.pem'" },
        { "tls: { ca: ca.pem, cert: ., key: server-key.pem }\n", "'tls.cert': cannot read '.'" },
        { "tls: { ca: ca.pem, cert: server.pem }\n",
          "t.yaml:1:6: 'tls.key': missing: the forward, syslog and https listeners use TLS" },
        { "listen: { syslog: off }\n", "t.yaml: 'tls.ca': missing" },
        { TLS_OK "listen: { shared_key_file: sk }\n", "'listen.shared_key_file': cannot read" },
        /* duplicates */
        { TLS_OK "store:\n  fsync: true\n  fsync: false\n",
          "t.yaml:4:3: duplicate key 'store.fsync' (first at line 3)" },
        { TLS_OK "log: {}\nlog: {}\n", "t.yaml:3:1: duplicate key 'log' (first at line 2)" },
        { "tls: { ca: ca.pem }\n" TLS_OK, "t.yaml:2:1: duplicate key 'tls' (first at line 1)" },
        /* listeners */
        { TLS_OK "listen:\n  insecure: true\n",
          "t.yaml:3:13: 'listen.insecure': insecure: true needs every listener on loopback, "
          "but 'listen.forward' is on '0.0.0.0' (its default)" },
        { "listen:\n  insecure: true\n  forward: 127.0.0.1:1\n  syslog: 127.0.0.1:2\n"
          "  https: 10.1.2.3:8443\n",
          "t.yaml:5:10: 'listen.https': must be on loopback with listen.insecure: true, got "
          "'10.1.2.3'" },
        { TLS_OK "listen: { admin: 0.0.0.0:9465 }\n",
          "t.yaml:2:18: 'listen.admin': the admin listener serves plain HTTP and must be on "
          "loopback" },
        { TLS_OK "listen: { admin: 10.0.0.1:9465, admin_remote: false }\n",
          "(listen.admin_remote: true allows it)" },
        { TLS_OK "listen: { syslog: 0.0.0.0:24224 }\n",
          "'listen.syslog': 0.0.0.0:24224 is also 'listen.forward'" },
        /* forwarders */
        { TLS_OK "forwarders:\n  - { name: a, type: email, url: 'https://x' }\n",
          "t.yaml:3:22: 'forwarders[0].type': expected one of alertmanager, pagerduty, "
          "opsgenie, slack, webhook, got 'email'" },
        { TLS_OK "forwarders:\n  - { type: slack, url: 'https://x' }\n",
          "t.yaml:3:5: missing required key 'forwarders[0].name'" },
        { TLS_OK "forwarders:\n  - { name: ~, type: slack, url: 'https://x' }\n",
          "t.yaml:3:13: 'forwarders[0].name' must not be null" },
        { TLS_OK "forwarders:\n  - { name: a, type: slack, url: 'https://x' }\n"
                 "  - { name: a, type: slack, url: 'https://y' }\n",
          "t.yaml:4:13: 'forwarders[1].name': forwarder name 'a' is used twice" },
        { TLS_OK "forwarders:\n  - { name: a, type: slack, url: 'ftp://x' }\n",
          "t.yaml:3:34: 'forwarders[0].url': expected an http:// or https:// URL" },
        { TLS_OK "forwarders:\n  - { name: a, type: slack, url: 'https://x', secret_env: E,\n"
                 "      secret_file: ca.pem }\n",
          "'forwarders[0].secret_env': give secret_file or secret_env, not both" },
        /* the limits of issue 12: a handshake limit below the connection limit, a memory
         * budget that holds a frame, an agent rule that allows someone, OIDs as numbers */
        { TLS_OK "listen: { max_connections: 10, max_handshakes: 10 }\n",
          "'listen.max_handshakes': must be below listen.max_connections (10)" },
        { TLS_OK "limits: { memory: 1MiB }\n",
          "'limits.memory': must be at least 4 times listen.max_frame_bytes (16777216)" },
        { "tls: { ca: ca.pem, cert: server.pem, key: server-key.pem, agents: { ous: [] } }\n",
          "tls.agents allows no certificate: every agent would be refused" },
        { "tls: { ca: ca.pem, cert: server.pem, key: server-key.pem,\n"
          "       agents: { https: { any: false } } }\n",
          "tls.agents.https allows no certificate" },
        { "tls: { ca: ca.pem, cert: server.pem, key: server-key.pem, agents: { oids: [x.1] } }\n",
          "'tls.agents.oids': 'x.1' is not an OID" },
        { "tls: { ca: ca.pem, cert: server.pem, key: server-key.pem, crl_expired: maybe }\n",
          "'tls.crl_expired': expected one of refuse, warn, got 'maybe'" },
        /* YAML itself */
        { TLS_OK "store:\n  path: [unclosed\n",
          "t.yaml:4:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow "
          "sequence at line 3)" },
        { TLS_OK "store:\n path: a\n  fsync: true\n", "t.yaml:4:8: invalid YAML:" },
        { TLS_OK "store: &s { fsync: true }\n", "t.yaml:2:8: YAML anchors are not supported" },
        { TLS_OK "store: {}\nlisten: *s\n", "t.yaml:3:9: YAML aliases are not supported" },
        { TLS_OK "store: !!map {}\n", "t.yaml:2:8: YAML tags are not supported" },
        { TLS_OK "store: { path: !!str x }\n", "t.yaml:2:16: YAML tags are not supported" },
        { "---\nlog: {}\n---\nlog: {}\n", "t.yaml:3:1: only one YAML document is allowed" },
        { "a: \xff\n", "t.yaml: invalid YAML: invalid leading UTF-8 octet at byte 3" },
    };
    struct vg_config *c;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = load(cases[i].text, &c, &eb);
        if (rc != VG_ECONFIG || c != NULL || !strstr(errbuf_msg(&eb), cases[i].want)) {
            fail_msg("case %zu: rc %d, message\n  '%s'\nwanted\n  '%s'", i, rc, errbuf_msg(&eb),
                     cases[i].want);
        }
    }
}

/* The defaults and the resolution of the new limits: max_handshakes a quarter of
 * max_connections; tls.agents OU agents for every listener unless one has its own. */
static void test_issue12_keys(void **state)
{
    struct vg_config *c;
    struct errbuf eb;

    (void)state;
    assert_int_equal(load(TLS_OK "listen: { max_connections: 40 }\n", &c, &eb), 0);
    assert_int_equal(c->listen.max_handshakes, 10);
    assert_int_equal(c->listen.max_handshakes_per_ip, 32);
    assert_int_equal(c->listen.accept_rate_per_ip, 20);
    assert_int_equal(c->limits.memory_bytes, 0);
    assert_string_equal(c->tls.crl_expired, "refuse");
    assert_int_equal(c->tls.agents.all.nous, 1);
    assert_string_equal(c->tls.agents.all.ous[0], "agents");
    for (int k = 0; k < LST_RULES; k++) {
        assert_false(c->tls.agents.lst[k].set);
    }
    config_free(c);
    assert_int_equal(load("tls: { ca: ca.pem, cert: server.pem, key: server-key.pem,\n"
                          "  agents: { https: { subjects: [ kube-apiserver ] } } }\n",
                          &c, &eb),
                     0);
    assert_true(c->tls.agents.lst[LST_RULE_HTTPS].set);
    assert_false(c->tls.agents.lst[LST_RULE_FORWARD].set);
    assert_string_equal(c->tls.agents.lst[LST_RULE_HTTPS].subjects[0], "kube-apiserver");
    assert_int_equal(c->tls.agents.lst[LST_RULE_HTTPS].nous, 0);
    config_free(c);
}

static void test_hostile_sizes(void **state)
{
    struct vg_config *c;
    struct errbuf eb;
    char *text = malloc(CFG_MAX_FILE_BYTES + 2);
    size_t n;

    (void)state;
    assert_non_null(text);
    /* Deep nesting is refused before the document is built. */
    memset(text, '[', 1000);
    text[1000] = 0;
    assert_int_equal(load(text, &c, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "t.yaml:1:17: nested deeper than 16 levels"));

    /* Over the size limit, whatever it holds. */
    memset(text, '#', CFG_MAX_FILE_BYTES + 1);
    text[CFG_MAX_FILE_BYTES + 1] = 0;
    assert_int_equal(load(text, &c, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "t.yaml: larger than 1048576 bytes"));

    /* Too many nodes, however shallow. */
    n = 0;
    for (int i = 0; i < 30000; i++) {
        memcpy(text + n, "- a\n", 4);
        n += 4;
    }
    text[n] = 0;
    assert_int_equal(load(text, &c, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "t.yaml:20000:3: more than 20000 YAML nodes"));

    /* A list longer than its maximum. */
    n = (size_t)snprintf(text, 64, "%s", "rules: { paths: [");
    for (int i = 0; i < 300; i++) {
        n += (size_t)snprintf(text + n, 16, "p%d,", i);
    }
    snprintf(text + n, 16, "x ] }\n");
    assert_int_equal(load(text, &c, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "t.yaml:1:17: 'rules.paths': 301 items, expected 0 "
                                            "to 256"));

    /* A long unknown key is quoted, escaped and cut. */
    n = (size_t)snprintf(text, 128, "%s? \"", TLS_OK);
    memset(text + n, 'k', 5000);
    n += 5000;
    snprintf(text + n, 32, "\\x01\"\n: 1\n");
    assert_int_equal(load(text, &c, &eb), VG_ECONFIG);
    assert_non_null(strstr(errbuf_msg(&eb), "t.yaml:2:3: unknown key 'kkkk"));
    assert_non_null(strstr(errbuf_msg(&eb), "...'"));
    free(text);
}

static void test_load_file(void **state)
{
    struct vg_config *c = NULL;
    struct errbuf eb;
    char path[PATH_MAX];
    char real[PATH_MAX];
    char want[PATH_MAX + 64];

    (void)state;
    write_file(tmpdir, "vigil.yaml", TLS_OK "store: { path: data }\n");
    snprintf(path, sizeof(path), "%s/vigil.yaml", tmpdir);
    errbuf_clear(&eb);
    assert_int_equal(config_load(path, &c, &eb), 0);
    assert_string_equal(c->file, path);
    assert_non_null(realpath(tmpdir, real));
    snprintf(want, sizeof(want), "%s/ca.pem", real);
    assert_string_equal(c->tls.ca, want);
    snprintf(want, sizeof(want), "%s/data", real);
    assert_string_equal(c->store.path, want);
    config_free(c);

    /* Errors name the file as given. */
    write_file(tmpdir, "vigil.yaml", TLS_OK "listen:\n  max_fram: 1\n");
    c = NULL;
    assert_int_equal(config_load(path, &c, &eb), VG_ECONFIG);
    assert_null(c);
    snprintf(want, sizeof(want), "%s:3:3: unknown key 'listen.max_fram'", path);
    assert_string_equal(errbuf_msg(&eb), want);

    /* Unreadable: -errno and the path. */
    errbuf_clear(&eb);
    snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
    assert_int_equal(config_load(path, &c, &eb), -ENOENT);
    assert_null(c);
    assert_non_null(strstr(errbuf_msg(&eb), "missing.yaml"));
    errbuf_clear(&eb);
    assert_int_equal(config_load(tmpdir, &c, &eb), -EINVAL);
    assert_null(c);
}

static void test_value_parsers(void **state)
{
    static const struct {
        const char *in;
        uint64_t v;
    } sizes[] = {
        { "0", 0 },
        { "4096", 4096 },
        { "4096B", 4096 },
        { "512KiB", 512 << 10 },
        { "16MiB", 16 << 20 },
        { "16 MiB", 16 << 20 },
        { "1GiB", 1ULL << 30 },
        { "2TiB", 2ULL << 40 },
        { "200GB", 200000000000ULL },
        { "5KB", 5000 },
        { "18446744073709551615", UINT64_MAX },
    };
    static const char *const bad_sizes[] = {
        "", "MiB", "1.5MiB", "16mib", "16 ", "16  MiB", "-1", "16777216TiB", "1 B B", " 1",
    };
    struct cfg_addr a = { 0 };
    uint64_t v;

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(cfg_size_parse(span_str(sizes[i].in), &v), 0);
        assert_int_equal(v, sizes[i].v);
    }
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        if (cfg_size_parse(span_str(bad_sizes[i]), &v) != VG_EPARSE) {
            fail_msg("size '%s' parsed", bad_sizes[i]);
        }
    }

    assert_int_equal(cfg_addr_parse(span_str("[::1]:0"), &a), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 0);
    assert_true(a.enabled);
    free(a.host);
    assert_int_equal(cfg_addr_parse(span_str("127.0.0.1:65535"), &a), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 65535);
    free(a.host);
    assert_int_equal(cfg_addr_parse(span_str("collector.example.org:24224"), &a), 0);
    free(a.host);
    assert_int_equal(cfg_addr_parse(span_str("h:65536"), &a), VG_EPARSE);
    assert_int_equal(cfg_addr_parse(span_str(":80"), &a), VG_EPARSE);
    assert_int_equal(cfg_addr_parse(span_str("h:"), &a), VG_EPARSE);
    assert_int_equal(cfg_addr_parse(span_str("h"), &a), VG_EPARSE);
    assert_int_equal(cfg_addr_parse(span_str("[]:1"), &a), VG_EPARSE);
    assert_int_equal(cfg_addr_parse(span_str("[::1]"), &a), VG_EPARSE);
    assert_int_equal(cfg_addr_parse(span_str("[::1]:"), &a), VG_EPARSE);
    assert_int_equal(cfg_addr_parse(span_str("h:+1"), &a), VG_EPARSE);

    assert_true(cfg_host_is_loopback("127.0.0.1"));
    assert_true(cfg_host_is_loopback("127.255.0.9"));
    assert_true(cfg_host_is_loopback("::1"));
    assert_true(cfg_host_is_loopback("::ffff:127.0.0.1"));
    assert_true(cfg_host_is_loopback("LocalHost"));
    assert_false(cfg_host_is_loopback("0.0.0.0"));
    assert_false(cfg_host_is_loopback("::"));
    assert_false(cfg_host_is_loopback("128.0.0.1"));
    assert_false(cfg_host_is_loopback("localhost.example.org"));
    assert_false(cfg_host_is_loopback(NULL));
}

/* The walker on a table of its own: signed bounds, required keys in an absent section. */
struct inner {
    int64_t n;
    char *must;
};
struct outer {
    int64_t temp;
    struct inner in;
    char **tags;
    size_t ntags;
};

static const struct cfg_opt inner_opts[] = {
    { .name = "n", .type = CFG_INT, .def = "7", .off = offsetof(struct inner, n) },
    { .name = "must",
      .type = CFG_STR,
      .off = offsetof(struct inner, must),
      .flags = CFG_F_REQUIRED },
    { 0 },
};
static const struct cfg_opt outer_opts[] = {
    { .name = "temp",
      .type = CFG_INT,
      .def = "-5",
      .min = -40,
      .max = 40,
      .off = offsetof(struct outer, temp) },
    { .name = "in", .type = CFG_SECTION, .off = offsetof(struct outer, in), .sub = inner_opts },
    { .name = "tags",
      .type = CFG_STRLIST,
      .def = "one",
      .max = 2,
      .off = offsetof(struct outer, tags),
      .count_off = offsetof(struct outer, ntags) },
    { 0 },
};

static int walk(const char *text, struct outer *o, struct errbuf *eb)
{
    struct cfg_doc *d = NULL;
    int rc;

    memset(o, 0, sizeof(*o));
    errbuf_clear(eb);
    rc = cfg_doc_parse("w.yaml", span_str(text), &d, eb);
    if (rc == 0) {
        rc = cfg_doc_apply(d, outer_opts, o, NULL, eb);
        cfg_doc_free(d);
    }
    return rc;
}

static void test_walker(void **state)
{
    struct outer o;
    struct errbuf eb;

    (void)state;
    assert_int_equal(walk("in: { must: x }\n", &o, &eb), 0);
    assert_int_equal(o.temp, -5);
    assert_int_equal(o.in.n, 7);
    assert_string_equal(o.in.must, "x");
    assert_int_equal(o.ntags, 1);
    assert_string_equal(o.tags[0], "one");
    cfg_release(outer_opts, &o);
    assert_null(o.in.must);
    assert_null(o.tags);

    assert_int_equal(
        walk("temp: -40\nin: { must: y, n: -9223372036854775808 }\ntags: []\n", &o, &eb), 0);
    assert_int_equal(o.temp, -40);
    assert_int_equal(o.in.n, INT64_MIN);
    assert_int_equal(o.ntags, 0);
    cfg_release(outer_opts, &o);

    assert_int_equal(walk("temp: -41\n", &o, &eb), VG_ECONFIG);
    assert_string_equal(errbuf_msg(&eb), "w.yaml:1:7: 'temp': -41 is out of range (-40..40)");
    cfg_release(outer_opts, &o);
    assert_int_equal(walk("temp: 1\n", &o, &eb), VG_ECONFIG);
    assert_string_equal(errbuf_msg(&eb), "w.yaml: missing required key 'in.must'");
    cfg_release(outer_opts, &o);
    assert_int_equal(walk("in: { must: x }\ntags: [a, b, c]\n", &o, &eb), VG_ECONFIG);
    assert_string_equal(errbuf_msg(&eb), "w.yaml:2:7: 'tags': 3 items, expected 0 to 2");
    cfg_release(outer_opts, &o);
    assert_int_equal(walk("in: { must: x }\ntags: [a, null]\n", &o, &eb), VG_ECONFIG);
    assert_string_equal(errbuf_msg(&eb), "w.yaml:2:11: 'tags[1]': expected a string, got null");
    cfg_release(outer_opts, &o);
}

/* cluster: absent, a valid one (roles, shard sets, defaults, listeners of a store-only
 * node turned off), and each refusal with its place. */
static void test_cluster(void **state)
{
    struct vg_config *c;
    struct errbuf eb;
    uint64_t mask;

    (void)state;
    assert_int_equal(load(TLS_OK, &c, &eb), 0);
    assert_false(c->cluster.enabled);
    assert_true(c->listen.forward.enabled);
    config_free(c);

    assert_int_equal(load(TLS_OK
                          "cluster:\n  nats: [ \"nats://a:4222\", \"tls://b:4222\" ]\n"
                          "  roles: [ ingest, store ]\n  shards: 8\n  store_shards: \"0-2, 5\"\n"
                          "  node: ing-1\n  stream: { max_age: 2d }\n",
                          &c, &eb),
                     0);
    assert_true(c->cluster.enabled);
    assert_int_equal(c->cluster.nnats, 2);
    assert_int_equal(c->cluster.role_mask, CLUSTER_ROLE_INGEST | CLUSTER_ROLE_STORE);
    assert_int_equal(c->cluster.store_mask, 0x27);
    assert_int_equal(c->cluster.replicas, 3);
    assert_int_equal(c->cluster.stream_max_age_ns, 2 * 86400 * VG_NS_PER_SEC);
    assert_string_equal(c->cluster.node, "ing-1");
    config_free(c);

    /* Without store_shards every shard; a store-only node runs no event listener. */
    assert_int_equal(
        load("cluster: { nats: [ \"nats://a:1\" ], roles: [ store ], shards: 64 }\n", &c, &eb), 0);
    assert_int_equal(c->cluster.store_mask, UINT64_MAX);
    assert_false(c->listen.forward.enabled);
    assert_false(c->listen.https.enabled);
    assert_true(c->listen.admin.enabled);
    config_free(c);

    static const struct bad_case cases[] = {
        { TLS_OK "cluster: { roles: [ ingest ] }\n",
          "t.yaml:2:10: 'cluster.nats': a cluster needs the URLs of its NATS servers" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ] }\n",
          "'cluster.roles': not given, and the default (ingest, store, rules) includes the "
          "rules role, which this vigild does not run yet" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ rules ] }\n",
          "t.yaml:2:43: 'cluster.roles': the rules role is not available yet" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ ingest, ingest ] }\n",
          "'cluster.roles': role 'ingest' is listed twice" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ ingst ] }\n",
          "'cluster.roles': unknown role 'ingst' (ingest, store or rules)" },
        { TLS_OK "cluster: { nats: [ \"a:1\" ], roles: [ ingest ] }\n",
          "'cluster.nats': expected nats://host:port or tls://host:port, got 'a:1'" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ store ], shards: 4,\n"
                 "           store_shards: \"1-4\" }\n",
          "t.yaml:3:26: 'cluster.store_shards': shard 4 is past the last one (cluster.shards "
          "is 4: 0..3)" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ store ], store_shards: \"3-1\" }\n",
          "'cluster.store_shards': range 3-1 goes backwards" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ ingest ], store_shards: \"1\" }\n",
          "'cluster.store_shards': only a store node writes shards" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ ingest ], shards: 65 }\n",
          "'cluster.shards': 65 is out of range (1..64)" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ ingest ], node: \"a b\" }\n",
          "'cluster.node': 'a b': 1 to 64 letters, digits, - and _" },
        { TLS_OK "cluster: { nats: [ \"nats://a:1\" ], roles: [ ingest ], tls: { ca: ca.pem, "
                 "cert: server.pem } }\n",
          "'cluster.tls.cert': give both cert and key (mTLS to NATS), or neither" },
        { TLS_OK
          "rules: { paths: [ . ] }\ncluster: { nats: [ \"nats://a:1\" ], roles: [ ingest ] }\n",
          "'rules.paths': in a cluster, rules run in the rules role" },
        { TLS_OK "store: { block_max_age: 10s }\n"
                 "cluster: { nats: [ \"nats://a:1\" ], roles: [ store ] }\n",
          "'store.block_max_age': a cluster store node cuts a block at every stream message" },
        { "cluster: { nats: [ \"nats://a:1\" ], roles: [ store ] }\n"
          "listen: { forward: 127.0.0.1:0 }\n",
          "t.yaml:2:20: 'listen.forward': a node without the ingest role takes no events" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = load(cases[i].text, &c, &eb);
        if (rc != VG_ECONFIG || c != NULL || !strstr(errbuf_msg(&eb), cases[i].want)) {
            fail_msg("case %zu: rc %d, message\n  '%s'\nwanted\n  '%s'", i, rc, errbuf_msg(&eb),
                     cases[i].want);
        }
    }

    /* The shard-set parser alone. */
    errbuf_clear(&eb);
    assert_int_equal(config_shards_parse("7", 8, &mask, &eb), 0);
    assert_int_equal(mask, 0x80);
    assert_int_equal(config_shards_parse("0,0-1, 3 ", 8, &mask, &eb), 0);
    assert_int_equal(mask, 0xb);
    assert_int_equal(config_shards_parse("", 8, &mask, &eb), VG_EPARSE);
    assert_int_equal(config_shards_parse("1,", 8, &mask, &eb), VG_EPARSE);
    assert_int_equal(config_shards_parse("1-", 8, &mask, &eb), VG_EPARSE);
    errbuf_clear(&eb);
    assert_int_equal(config_shards_parse("1x", 8, &mask, &eb), VG_EPARSE);
    assert_non_null(strstr(errbuf_msg(&eb), "unexpected 'x'"));
    assert_int_equal(config_shards_parse("99999999999999999999", 8, &mask, &eb), VG_EPARSE);
}

static void test_reference(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    assert_non_null(f);
    config_print_reference(f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(strstr(text, "store.retention.max_age  (duration, default 30d, 1s..36500d)"));
    assert_non_null(strstr(text, "store.retention.interval  (duration, default 1m, 1s..1d)"));
    assert_non_null(strstr(text, "store.block_bytes  (size, default 1MiB, 4KiB..16MiB)"));
    assert_non_null(strstr(text, "listen.forward  (host:port or off, default 0.0.0.0:24224)"));
    assert_non_null(strstr(text, "tls.ca  (path, must exist when set)"));
    assert_non_null(strstr(text, "forwarders[].type  (one of alertmanager|pagerduty|opsgenie|"
                                 "slack|webhook, required)"));
    assert_non_null(strstr(text, "forwarders[].match  (map of strings or lists, 0..64 keys)"));
    assert_non_null(strstr(text, "forwarders[].retry.max  (duration, default 5m, 10ms..1d)"));
    assert_non_null(strstr(text, "log.level  (one of error|warn|info|debug, default info)"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_minimal_and_overrides),
        cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_issue12_keys),
        cmocka_unit_test(test_hostile_sizes),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_value_parsers),
        cmocka_unit_test(test_walker),
        cmocka_unit_test(test_cluster),
        cmocka_unit_test(test_reference),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
