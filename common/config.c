/* common/config.c: vigil.yaml's sections as option tables (the reference for every key),
 * plus the checks that span keys: TLS files when a listener needs them, loopback for admin
 * and insecure listeners, distinct listener addresses, unique forwarder names.
 *
 * A load is all or nothing: the struct is built and checked privately and handed out only
 * when every check passed. No globals beyond the constant tables; any thread. */
#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/time.h"
#include "common/xalloc.h"

/* Rows name the fields they use; the rest (flags, sub, ...) are zero. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define NS_MS  (1000 * 1000LL)
#define NS_SEC VG_NS_PER_SEC
#define NS_MIN (60 * NS_SEC)
#define NS_DAY (86400 * NS_SEC)

static const struct cfg_opt retention_opts[] = {
    { "max_age", CFG_DURATION, "30d", NS_SEC, 36500 * NS_DAY, CFG_OFF(struct store_cfg, max_age_ns),
      "a partition is deleted once both its events and its newest records' receipt are "
      "older than this (an import of old events is kept for max_age after the import)" },
    { "max_size", CFG_SIZE, "200GB", 1 << 20, 1LL << 50, CFG_OFF(struct store_cfg, max_size_bytes),
      "when the store grows past this, the oldest partitions are deleted" },
    { "interval", CFG_DURATION, "1m", NS_SEC, NS_DAY, CFG_OFF(struct store_cfg, retain_every_ns),
      "how often retention runs" },
    { NULL },
};

static const char *const compressions[] = { "lz4hc", "lz4", NULL };
static const char *const compactions[] = { "zstd", "lz4hc", "off", NULL };

static const struct cfg_opt store_opts[] = {
    { "path", CFG_PATH, "/var/lib/vigil", 0, 0, CFG_OFF(struct store_cfg, path),
      "directory holding the segments and catalog.db" },
    { "partition", CFG_DURATION, "1h", NS_MIN, 7 * NS_DAY, CFG_OFF(struct store_cfg, partition_ns),
      "span of event time in one segment file" },
    { "retention", CFG_SECTION, NULL, 0, 0, 0, "how long and how much to keep",
      .sub = retention_opts },
    { "block_bytes", CFG_SIZE, "1MiB", 4 << 10, 16 << 20, CFG_OFF(struct store_cfg, block_bytes),
      "uncompressed bytes of records per compressed block" },
    { "block_max_age", CFG_DURATION, "1m", 0, 3600 * NS_SEC,
      CFG_OFF(struct store_cfg, block_max_age_ns),
      "a commit makes events durable in the commit journal and a block is written once full "
      "or when its first event is this old, so blocks are as large at a light load as at a "
      "heavy one; 0: every commit writes the open blocks (small ones under a light load)" },
    { "compression", CFG_ENUM, "lz4hc", 0, 0, CFG_OFF(struct store_cfg, compression),
      "how blocks are written: lz4hc (LZ4 format, ~1.35x denser, ~2.3x the compression CPU) "
      "or lz4 (least CPU per event); both read equally fast",
      .choices = compressions },
    { "compaction", CFG_ENUM, "zstd", 0, 0, CFG_OFF(struct store_cfg, compaction),
      "sealed segments are rewritten in the background as large blocks: zstd (~2x smaller "
      "than as written), lz4hc (~1.3x, fastest reads) or off (vigil compact does it)",
      .choices = compactions },
    { "commit_interval", CFG_DURATION, "2ms", 0, NS_SEC,
      CFG_OFF(struct store_cfg, commit_interval_ns),
      "how long a commit waits to batch more events before its fsync (group commit)" },
    { "free_reserve", CFG_SIZE, "1GiB", 0, 0, CFG_OFF(struct store_cfg, free_reserve_bytes),
      "ingest is refused (backpressure) when the disk has less free space than this" },
    { "evidence_reserve", CFG_SIZE, "64MiB", 0, 0,
      CFG_OFF(struct store_cfg, evidence_reserve_bytes),
      "below free_reserve only source=vigil evidence is stored, and at most this much of it "
      "per episode (at most half of free_reserve; a quarter of it for evidence about "
      "unauthenticated peers, so strangers cannot use it up)" },
    { "fsync", CFG_BOOL, "true", 0, 0, CFG_OFF(struct store_cfg, fsync),
      "fsync before acknowledging; false loses acknowledged events on power loss" },
    { "signing_key", CFG_PATH, NULL, 0, 0, CFG_OFF(struct store_cfg, signing_key),
      "Ed25519 private key (PEM) that signs sealed segments; absent: the store makes "
      "keys/collector-ed25519.pem on first start",
      .flags = CFG_F_EXISTS },
    { NULL },
};

/* The keys of one rule, at `base` inside struct agents_cfg; def: the OU default. */
#define AGENTS_RULE_OPTS(type, base, ou_def)                                                   \
 { "any",                                                                                      \
   CFG_BOOL,                                                                                   \
   "false",                                                                                    \
   0,                                                                                          \
   0,                                                                                          \
   CFG_OFF(type, base any),                                                                    \
   "every client certificate the CA signed may ship (no other check)" },                       \
     { "ous",                                                                                  \
       CFG_STRLIST,                                                                            \
       ou_def,                                                                                 \
       0,                                                                                      \
       256,                                                                                    \
       CFG_OFF(type, base ous),                                                                \
       "a subject OU equal to one of these",                                                   \
       .count_off = CFG_OFF(type, base nous) },                                                \
     { "subjects",                                                                             \
       CFG_STRLIST,                                                                            \
       NULL,                                                                                   \
       0,                                                                                      \
       256,                                                                                    \
       CFG_OFF(type, base subjects),                                                           \
       "a subject CN matching one of these globs (agent-*)",                                   \
       .count_off = CFG_OFF(type, base nsubjects) },                                           \
     { "san_uris",                                                                             \
       CFG_STRLIST,                                                                            \
       NULL,                                                                                   \
       0,                                                                                      \
       256,                                                                                    \
       CFG_OFF(type, base san_uris),                                                           \
       "a URI subjectAltName matching one of these globs "                                     \
       "(spiffe://cluster.local/ns/*/sa/fluent-bit)",                                          \
       .count_off = CFG_OFF(type, base nsan_uris) },                                           \
 {                                                                                             \
  "oids", CFG_STRLIST, NULL, 0, 256, CFG_OFF(type, base oids),                                 \
      "an extended key usage or certificate policy OID equal to one of these (1.3.6.1.4.1.x)", \
      .count_off = CFG_OFF(type, base noids)                                                   \
 }

static const struct cfg_opt agents_rule_opts[] = {
    AGENTS_RULE_OPTS(struct agents_rule, , NULL),
    { NULL },
};

static const struct cfg_opt agents_opts[] = {
    AGENTS_RULE_OPTS(struct agents_cfg, all., "agents"),
    { "forward", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct agents_cfg, lst[LST_RULE_FORWARD]),
      "a rule of its own for the forward listener (replaces the one above)",
      .sub = agents_rule_opts },
    { "syslog", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct agents_cfg, lst[LST_RULE_SYSLOG]),
      "a rule of its own for the syslog listener", .sub = agents_rule_opts },
    { "https", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct agents_cfg, lst[LST_RULE_HTTPS]),
      "a rule of its own for the https listener", .sub = agents_rule_opts },
    { NULL },
};

static const char *const crl_expired_choices[] = { "refuse", "warn", NULL };

static const struct cfg_opt tls_opts[] = {
    { "ca", CFG_PATH, NULL, 0, 0, CFG_OFF(struct tls_cfg, ca),
      "PEM CA bundle that client certificates must chain to (required with TLS listeners)",
      .flags = CFG_F_EXISTS },
    { "cert", CFG_PATH, NULL, 0, 0, CFG_OFF(struct tls_cfg, cert),
      "PEM server certificate chain (required with TLS listeners)", .flags = CFG_F_EXISTS },
    { "key", CFG_PATH, NULL, 0, 0, CFG_OFF(struct tls_cfg, key),
      "PEM private key of cert (required with TLS listeners)", .flags = CFG_F_EXISTS },
    { "crl", CFG_PATH, NULL, 0, 0, CFG_OFF(struct tls_cfg, crl),
      "PEM certificate revocation list, or null", .flags = CFG_F_EXISTS },
    { "crl_expired", CFG_ENUM, "refuse", 0, 0, CFG_OFF(struct tls_cfg, crl_expired),
      "a CRL past its next update: refuse (an error at --check-config and start, a failed "
      "reload, and every client certificate refused while it runs) or warn (a warning and "
      "a source=vigil event; certificates are still checked against it)",
      .choices = crl_expired_choices },
    { "handshake_timeout", CFG_DURATION, "10s", 100 * NS_MS, 5 * NS_MIN,
      CFG_OFF(struct tls_cfg, handshake_timeout_ns),
      "a connection that has not finished its TLS handshake by then is closed" },
    { "watch_interval", CFG_DURATION, "10s", 0, NS_DAY, CFG_OFF(struct tls_cfg, watch_interval_ns),
      "ca, cert, key and crl are reloaded when they change, checked this often (0: only on "
      "SIGHUP); a failed reload keeps the ones in force" },
    { "agents", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct tls_cfg, agents),
      "who may ship events: a client certificate the CA signed is accepted when any of "
      "these holds; others are refused in the handshake and recorded",
      .sub = agents_opts },
    { NULL },
};

static const struct cfg_opt listen_opts[] = {
    { "forward", CFG_ADDR, "0.0.0.0:24224", 0, 0, CFG_OFF(struct listen_cfg, forward),
      "Fluentd Forward protocol over TLS, or off" },
    { "syslog", CFG_ADDR, "0.0.0.0:6514", 0, 0, CFG_OFF(struct listen_cfg, syslog),
      "RFC 5425 syslog over TLS, or off" },
    { "https", CFG_ADDR, "0.0.0.0:8443", 0, 0, CFG_OFF(struct listen_cfg, https),
      "HTTPS ingest (/v1/events, /v1/falco, /v1/k8s/audit, /v1/trivy), or off" },
    { "admin", CFG_ADDR, "127.0.0.1:9465", 0, 0, CFG_OFF(struct listen_cfg, admin),
      "plain HTTP /metrics and /healthz; loopback only (see admin_remote), or off" },
    { "admin_remote", CFG_BOOL, "false", 0, 0, CFG_OFF(struct listen_cfg, admin_remote),
      "let listen.admin bind a non-loopback address (read-only, unauthenticated: for "
      "Kubernetes probes and Prometheus inside a pod; fence it with a NetworkPolicy)" },
    { "insecure", CFG_BOOL, "false", 0, 0, CFG_OFF(struct listen_cfg, insecure),
      "plaintext forward/syslog/https without client certificates; only on loopback" },
    { "max_frame_bytes", CFG_SIZE, "16MiB", 1024, 256 << 20,
      CFG_OFF(struct listen_cfg, max_frame_bytes),
      "largest Forward frame, syslog message or HTTP body accepted" },
    { "max_connections", CFG_UINT, "4096", 1, 1000000, CFG_OFF(struct listen_cfg, max_connections),
      "connections to one listener over this are refused at accept" },
    { "max_handshakes", CFG_UINT, "0", 0, 1000000, CFG_OFF(struct listen_cfg, max_handshakes),
      "connections still in their TLS handshake, all listeners together (0: a quarter of "
      "max_connections; must be below it, so verified agents always find a slot); at the "
      "limit the oldest handshake of the address with the most is cut for a new one" },
    { "max_handshakes_per_ip", CFG_UINT, "32", 1, 1000000,
      CFG_OFF(struct listen_cfg, max_handshakes_per_ip),
      "connections in their TLS handshake from one address (IPv6: one /64); more are "
      "refused at accept" },
    { "accept_rate_per_ip", CFG_UINT, "20", 0, 1000000,
      CFG_OFF(struct listen_cfg, accept_rate_per_ip),
      "new TLS connections a second from one address (IPv6: one /64), sustained; more are "
      "refused at accept; 0: no limit" },
    { "accept_burst_per_ip", CFG_UINT, "100", 1, 1000000,
      CFG_OFF(struct listen_cfg, accept_burst_per_ip),
      "new TLS connections from one address accepted at once above accept_rate_per_ip "
      "(agents reconnecting after a restart)" },
    { "refusal_interval", CFG_DURATION, "1m", NS_SEC, 24 * 60 * NS_MIN,
      CFG_OFF(struct listen_cfg, refusal_interval_ns),
      "refused connections and handshakes are recorded one by one for the first few of an "
      "address, then as one source=vigil summary per address this often" },
    { "idle_timeout", CFG_DURATION, "5m", NS_SEC, 7 * NS_DAY,
      CFG_OFF(struct listen_cfg, idle_timeout_ns), "a connection silent this long is closed" },
    { "header_timeout", CFG_DURATION, "30s", 100 * NS_MS, 60 * NS_MIN,
      CFG_OFF(struct listen_cfg, header_timeout_ns),
      "an HTTP request head not complete this long after its first byte closes the "
      "connection (slow clients holding connections open)" },
    { "frame_timeout", CFG_DURATION, "2m", 100 * NS_MS, 60 * NS_MIN,
      CFG_OFF(struct listen_cfg, frame_timeout_ns),
      "a Forward message, syslog frame or HTTP request not complete this long after its "
      "first byte closes the connection (a frame of max_frame_bytes must arrive within it)" },
    { "high_water_bytes", CFG_SIZE, "64MiB", 64 << 10, 4LL << 30,
      CFG_OFF(struct listen_cfg, high_water_bytes),
      "unacknowledged bytes of one connection before vigild stops reading it" },
    { "shared_key_file", CFG_PATH, NULL, 0, 0, CFG_OFF(struct listen_cfg, shared_key_file),
      "file holding the Forward shared_key (optional, in addition to client certificates)",
      .flags = CFG_F_EXISTS },
    { NULL },
};

static const struct cfg_opt rules_opts[] = {
    { "paths", CFG_PATHLIST, NULL, 0, 256, CFG_OFF(struct rules_cfg, paths),
      "Sigma rule files or directories of them", .count_off = CFG_OFF(struct rules_cfg, npaths) },
    { "resolve_after", CFG_DURATION, "15m", NS_SEC, 366 * NS_DAY,
      CFG_OFF(struct rules_cfg, resolve_after_ns),
      "an alert (incident) resolves when its rule has not matched for this long; a rule's "
      "vigil.resolve_after wins" },
    { "update_every", CFG_DURATION, "5m", NS_SEC, 366 * NS_DAY,
      CFG_OFF(struct rules_cfg, update_every_ns),
      "at most one update of an open alert per this much event time; a rule's "
      "vigil.update_every wins" },
    { "lateness", CFG_DURATION, "2m", 0, NS_DAY, CFG_OFF(struct rules_cfg, lateness_ns),
      "how far behind its own source's newest event an event may be and still count" },
    { "max_future", CFG_DURATION, "5m", 0, NS_DAY, CFG_OFF(struct rules_cfg, max_future_ns),
      "an event dated further than this after vigild received it is evaluated at the time "
      "it was received" },
    { "summary_every", CFG_DURATION, "1m", NS_SEC, NS_DAY,
      CFG_OFF(struct rules_cfg, summary_every_ns),
      "how often events the rules did not count (late, future, state caps) are recorded as a "
      "source=vigil event" },
    { NULL },
};

static const char *const forwarder_types[] = {
    "alertmanager", "pagerduty", "opsgenie", "slack", "webhook", NULL,
};

static const struct cfg_opt retry_opts[] = {
    { "min", CFG_DURATION, "1s", 10 * NS_MS, NS_DAY, CFG_OFF(struct forwarder_retry_cfg, min_ns),
      "first wait after a failed delivery (connection error, timeout, 5xx, 429); doubles "
      "with each failure, with jitter" },
    { "max", CFG_DURATION, "5m", 10 * NS_MS, NS_DAY, CFG_OFF(struct forwarder_retry_cfg, max_ns),
      "longest wait between attempts" },
    { "give_up_after", CFG_DURATION, "7d", 0, 365 * NS_DAY,
      CFG_OFF(struct forwarder_retry_cfg, give_up_after_ns),
      "an alert still undelivered this long after it was queued becomes a dead letter "
      "(kept, listed, replayable); 0: never" },
    { NULL },
};

static const struct cfg_opt forwarder_opts[] = {
    { "name", CFG_STR, NULL, 0, 0, CFG_OFF(struct forwarder_cfg, name),
      "unique name, used in logs, metrics and the outbox", .flags = CFG_F_REQUIRED },
    { "type", CFG_ENUM, NULL, 0, 0, CFG_OFF(struct forwarder_cfg, type), "receiver API",
      .flags = CFG_F_REQUIRED, .choices = forwarder_types },
    { "url", CFG_STR, NULL, 0, 0, CFG_OFF(struct forwarder_cfg, url),
      "endpoint, http:// or https:// (slack: may instead be the secret, as the webhook URL "
      "is one)" },
    { "match", CFG_STRMAP, NULL, 0, 64, CFG_OFF(struct forwarder_cfg, match),
      "which alerts go here: severity (\">=high\", \"critical\"), rule (title), rule_id, tag, "
      "or any event field (kind, namespace, agent, host, user, src_ip...) to a value or a "
      "list of values (a trailing * matches a prefix); absent: every alert" },
    { "secret_file", CFG_PATH, NULL, 0, 0, CFG_OFF(struct forwarder_cfg, secret_file),
      "file whose first line is the routing key, API key, HMAC key or webhook URL",
      .flags = CFG_F_EXISTS },
    { "secret_env", CFG_STR, NULL, 0, 0, CFG_OFF(struct forwarder_cfg, secret_env),
      "environment variable holding the secret instead" },
    { "ca_file", CFG_PATH, NULL, 0, 0, CFG_OFF(struct forwarder_cfg, ca_file),
      "PEM CA bundle that an https:// receiver's certificate must chain to (default: the "
      "system's); the certificate is always verified",
      .flags = CFG_F_EXISTS },
    { "connect_timeout", CFG_DURATION, "5s", 100 * NS_MS, 5 * NS_MIN,
      CFG_OFF(struct forwarder_cfg, connect_timeout_ns), "time to connect (and TLS handshake)" },
    { "timeout", CFG_DURATION, "10s", 100 * NS_MS, 10 * NS_MIN,
      CFG_OFF(struct forwarder_cfg, timeout_ns),
      "time for a whole request; past it the attempt counts as failed and is retried" },
    { "rate_limit", CFG_UINT, "0", 0, 600000, CFG_OFF(struct forwarder_cfg, rate_limit),
      "requests per minute at most; 0: the type's: alertmanager 6000, pagerduty 120 (its "
      "Events API's limit per integration key), slack 60 (one message a second), opsgenie "
      "and webhook 600" },
    { "retry", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct forwarder_cfg, retry),
      "backoff between attempts", .sub = retry_opts },
    { "resend_every", CFG_DURATION, "1m", NS_SEC, NS_DAY,
      CFG_OFF(struct forwarder_cfg, resend_every_ns),
      "alertmanager only: firing alerts are posted again this often" },
    { "expire_after", CFG_DURATION, "5m", 2 * NS_SEC, 7 * NS_DAY,
      CFG_OFF(struct forwarder_cfg, expire_after_ns),
      "alertmanager only: endsAt of a firing alert is now + this, so Alertmanager resolves "
      "it by itself if vigild stops re-sending; must exceed resend_every" },
    { NULL },
};

static const struct cfg_opt limits_opts[] = {
    { "memory", CFG_SIZE, "0", 0, 0, CFG_OFF(struct limits_cfg, memory_bytes),
      "bytes all connections may hold in their input buffers together; when used up, "
      "connections stop reading until memory returns (0: a quarter of the RAM vigild may "
      "use, its cgroup's limit or the machine's, between 64MiB and 8GiB; else at least 4 "
      "times listen.max_frame_bytes)" },
    { NULL },
};

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };

static const struct cfg_opt log_opts[] = {
    { "level", CFG_ENUM, "info", 0, 0, CFG_OFF(struct log_cfg, level), "least severe level logged",
      .choices = log_levels },
    { NULL },
};

static const struct cfg_opt cluster_tls_opts[] = {
    { "ca", CFG_PATH, NULL, 0, 0, CFG_OFF(struct cluster_tls_cfg, ca),
      "PEM CA bundle the NATS servers' certificates must chain to (TLS to NATS)",
      .flags = CFG_F_EXISTS },
    { "cert", CFG_PATH, NULL, 0, 0, CFG_OFF(struct cluster_tls_cfg, cert),
      "PEM client certificate chain vigild shows the NATS servers (mTLS), with key",
      .flags = CFG_F_EXISTS },
    { "key", CFG_PATH, NULL, 0, 0, CFG_OFF(struct cluster_tls_cfg, key), "PEM private key of cert",
      .flags = CFG_F_EXISTS },
    { NULL },
};

static const struct cfg_opt cluster_stream_opts[] = {
    { "max_age", CFG_DURATION, "7d", NS_MIN, 3660 * NS_DAY,
      CFG_OFF(struct cluster_cfg, stream_max_age_ns),
      "the events stream keeps a message this long at most: a store node further behind "
      "than this cannot catch up from the stream" },
    { "max_bytes", CFG_SIZE, "0", 0, 1LL << 60, CFG_OFF(struct cluster_cfg, stream_max_bytes),
      "the events stream keeps at most this many bytes (the oldest go first; 0: no bound)" },
    { NULL },
};

static const struct cfg_opt cluster_opts[] = {
    { "nats", CFG_STRLIST, NULL, 0, 16, CFG_OFF(struct cluster_cfg, nats),
      "URLs of the NATS servers (nats://host:port, tls://host:port); required with cluster",
      .count_off = CFG_OFF(struct cluster_cfg, nnats) },
    { "tls", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct cluster_cfg, tls),
      "TLS to the NATS servers: their CA, and this node's certificate for mTLS",
      .sub = cluster_tls_opts },
    { "roles", CFG_STRLIST, NULL, 0, 3, CFG_OFF(struct cluster_cfg, roles),
      "what this vigild runs: ingest (listeners, publishing to JetStream) and store "
      "(consuming its shards into local stores); rules is not available yet",
      .count_off = CFG_OFF(struct cluster_cfg, nroles) },
    { "shards", CFG_UINT, "8", 1, CLUSTER_MAX_SHARDS, CFG_OFF(struct cluster_cfg, shards),
      "events go to subjects vigil.ev.<0..shards-1> by their agent; fixed per cluster" },
    { "store_shards", CFG_STR, NULL, 0, 0, CFG_OFF(struct cluster_cfg, store_shards),
      "the shards this store node writes, e.g. \"0-3\" or \"0,2,5-7\" (default all)" },
    { "replicas", CFG_UINT, "3", 1, 5, CFG_OFF(struct cluster_cfg, replicas),
      "JetStream replicas of vigil's streams (when vigild creates them)" },
    { "node", CFG_STR, NULL, 0, 0, CFG_OFF(struct cluster_cfg, node),
      "this node's name in the cluster (its consumers are named after it): letters, digits, "
      "- and _ (default: the host name)" },
    { "stream", CFG_SECTION, NULL, 0, 0, 0, "limits of the events stream (when vigild creates it)",
      .sub = cluster_stream_opts },
    { NULL },
};

static const struct cfg_opt config_opts[] = {
    { "store", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct vg_config, store), "the event store",
      .sub = store_opts },
    { "tls", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct vg_config, tls),
      "server certificate and client CA of the TLS listeners", .sub = tls_opts },
    { "listen", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct vg_config, listen),
      "listeners and per-connection limits", .sub = listen_opts },
    { "rules", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct vg_config, rules), "correlation rules",
      .sub = rules_opts },
    { "forwarders", CFG_LIST, NULL, 0, 64, CFG_OFF(struct vg_config, forwarders),
      "where alerts are sent", .sub = forwarder_opts, .elem_size = sizeof(struct forwarder_cfg),
      .count_off = CFG_OFF(struct vg_config, nforwarders) },
    { "limits", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct vg_config, limits),
      "what vigild's connections may use in all", .sub = limits_opts },
    { "log", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct vg_config, log), "vigild's own log",
      .sub = log_opts },
    { "user", CFG_STR, NULL, 0, 0, CFG_OFF(struct vg_config, user),
      "when started as root, vigild reads its keys and binds its listeners, then runs as "
      "this user (and its groups); as root without it, vigild refuses to start unless "
      "given --allow-root" },
    { "cluster", CFG_SECTION, NULL, 0, 0, CFG_OFF(struct vg_config, cluster),
      "run as nodes of a cluster over NATS JetStream (absent: one vigild does everything)",
      .sub = cluster_opts },
    { NULL },
};

static bool addr_same(const struct cfg_addr *a, const struct cfg_addr *b)
{
    return a->enabled && b->enabled && a->port != 0 && a->port == b->port &&
           strcmp(a->host, b->host) == 0;
}

static int check_listen(const struct cfg_doc *d, const struct vg_config *c, struct errbuf *eb)
{
    const struct listen_cfg *l = &c->listen;
    const struct {
        const char *name;
        const struct cfg_addr *a;
        bool tls; /* plain HTTP admin is not a TLS listener */
    } all[] = {
        { "forward", &l->forward, true },
        { "syslog", &l->syslog, true },
        { "https", &l->https, true },
        { "admin", &l->admin, false },
    };
    bool any_tls = false;

    if (l->admin.enabled && !cfg_host_is_loopback(l->admin.host) && !l->admin_remote) {
        return cfg_doc_error(d, &l->admin, eb,
                             "the admin listener serves plain HTTP and must be on loopback "
                             "(127.0.0.1, ::1, localhost), got '%s' (listen.admin_remote: "
                             "true allows it)",
                             l->admin.host);
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(all); i++) {
        const struct cfg_addr *a = all[i].a;
        if (!a->enabled || !all[i].tls) {
            continue;
        }
        any_tls = true;
        if (l->insecure && !cfg_host_is_loopback(a->host)) {
            /* Point at the line to change: the address if the file gave it. */
            if (cfg_doc_has(d, a)) {
                return cfg_doc_error(
                    d, a, eb, "must be on loopback with listen.insecure: true, got '%s'", a->host);
            }
            return cfg_doc_error(d, &l->insecure, eb,
                                 "insecure: true needs every listener on loopback, but "
                                 "'listen.%s' is on '%s' (its default)",
                                 all[i].name, a->host);
        }
    }
    if (c->limits.memory_bytes > 0 && c->limits.memory_bytes < 4 * l->max_frame_bytes) {
        return cfg_doc_error(d, &c->limits.memory_bytes, eb,
                             "must be at least 4 times listen.max_frame_bytes (%" PRIu64
                             "), or 0, so that a frame of the largest size can be read",
                             l->max_frame_bytes);
    }
    if (cfg_doc_has(d, &l->max_handshakes) && l->max_handshakes >= l->max_connections) {
        return cfg_doc_error(d, &l->max_handshakes, eb,
                             "must be below listen.max_connections (%" PRIu64
                             "), so that verified agents always find a slot",
                             l->max_connections);
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(all); i++) {
        for (size_t j = 0; j < i; j++) {
            if (addr_same(all[i].a, all[j].a)) {
                return cfg_doc_error(d, all[i].a, eb, "%s:%d is also 'listen.%s'", all[i].a->host,
                                     all[i].a->port, all[j].name);
            }
        }
    }
    if (any_tls && !l->insecure) {
        const struct {
            const char *name;
            char *const *v;
        } files[] = { { "ca", &c->tls.ca }, { "cert", &c->tls.cert }, { "key", &c->tls.key } };
        for (size_t i = 0; i < VG_ARRAY_LEN(files); i++) {
            if (!*files[i].v) {
                return cfg_doc_error(d, files[i].v, eb,
                                     "missing: the forward, syslog and https listeners use TLS "
                                     "with client certificates (set tls.%s, or turn the "
                                     "listeners off)",
                                     files[i].name);
            }
        }
    }
    return 0;
}

static bool oid_ok(const char *s)
{
    int arcs = 0;
    bool digit = false;

    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            digit = true;
        } else if (*s == '.' && digit) {
            arcs++;
            digit = false;
        } else {
            return false;
        }
    }
    return digit && arcs >= 1;
}

/* One rule of tls.agents: its OIDs dotted numbers, and something allowed. */
static int check_agents_rule(const struct cfg_doc *d, const struct agents_rule *r, const char *name,
                             struct errbuf *eb)
{
    for (size_t i = 0; i < r->noids; i++) {
        if (!oid_ok(r->oids[i])) {
            return cfg_doc_error(d, &r->oids, eb, "'%s' is not an OID (dotted numbers: 1.3.6.1)",
                                 r->oids[i]);
        }
    }
    if (!r->any && r->nous + r->nsubjects + r->nsan_uris + r->noids == 0) {
        return cfg_doc_error(d, &r->ous, eb,
                             "%s allows no certificate: every agent would be refused (name ous, "
                             "subjects, san_uris or oids, or any: true for every certificate "
                             "the CA signed)",
                             name);
    }
    return 0;
}

static int check_agents(const struct cfg_doc *d, struct vg_config *c, struct errbuf *eb)
{
    static const char *const names[] = { "tls.agents.forward", "tls.agents.syslog",
                                         "tls.agents.https" };
    struct agents_cfg *a = &c->tls.agents;
    int rc = check_agents_rule(d, &a->all, "tls.agents", eb);

    for (int k = 0; rc == 0 && k < 3; k++) {
        struct agents_rule *r = &a->lst[k];
        r->set = cfg_doc_has(d, &r->any) || cfg_doc_has(d, &r->ous) ||
                 cfg_doc_has(d, &r->subjects) || cfg_doc_has(d, &r->san_uris) ||
                 cfg_doc_has(d, &r->oids);
        if (r->set) {
            rc = check_agents_rule(d, r, names[k], eb);
        }
    }
    return rc;
}

/* The syntax every forwarder needs; forwarders/ checks the rest (fwd_config_check). */
static int check_forwarders(const struct cfg_doc *d, const struct vg_config *c, struct errbuf *eb)
{
    for (size_t i = 0; i < c->nforwarders; i++) {
        const struct forwarder_cfg *f = &c->forwarders[i];

        if (f->url && strncmp(f->url, "http://", 7) != 0 && strncmp(f->url, "https://", 8) != 0) {
            return cfg_doc_error(d, &f->url, eb, "expected an http:// or https:// URL");
        }
        if (f->secret_file && f->secret_env) {
            return cfg_doc_error(d, &f->secret_env, eb, "give secret_file or secret_env, not both");
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(f->name, c->forwarders[j].name) == 0) {
                return cfg_doc_error(d, &f->name, eb, "forwarder name '%s' is used twice", f->name);
            }
        }
    }
    return 0;
}

int config_shards_parse(const char *spec, uint64_t nshards, uint64_t *mask, struct errbuf *eb)
{
    const char *p = spec;

    *mask = 0;
    for (;;) {
        char *end;
        while (*p == ' ') {
            p++;
        }
        if (*p < '0' || *p > '9') {
            errbuf_set(eb,
                       "expected a shard number at '%s' (shard sets look like \"0-3\" or "
                       "\"0,2,5-7\")",
                       p);
            return VG_EPARSE;
        }
        errno = 0;
        unsigned long a = strtoul(p, &end, 10);
        unsigned long b = a;
        p = end;
        if (*p == '-') {
            p++;
            if (*p < '0' || *p > '9') {
                errbuf_set(eb, "expected the end of the range at '%s'", p);
                return VG_EPARSE;
            }
            b = strtoul(p, &end, 10);
            p = end;
        }
        if (errno != 0 || a >= nshards || b >= nshards) {
            errbuf_set(eb,
                       "shard %lu is past the last one (cluster.shards is %" PRIu64 ": 0..%" PRIu64
                       ")",
                       a >= nshards ? a : b, nshards, nshards - 1);
            return VG_EPARSE;
        }
        if (b < a) {
            errbuf_set(eb, "range %lu-%lu goes backwards", a, b);
            return VG_EPARSE;
        }
        for (unsigned long i = a; i <= b; i++) {
            *mask |= 1ULL << i;
        }
        while (*p == ' ') {
            p++;
        }
        if (*p == 0) {
            return 0;
        }
        if (*p != ',') {
            errbuf_set(eb, "unexpected '%c' in the shard set", *p);
            return VG_EPARSE;
        }
        p++;
    }
}

static bool node_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_')) {
            return false;
        }
    }
    return true;
}

/* cluster: present or not; the roles this vigild runs; what each needs. */
static int check_cluster(const struct cfg_doc *d, struct vg_config *c, struct errbuf *eb)
{
    struct cluster_cfg *k = &c->cluster;
    const void *given[] = { &k->nats,
                            &k->tls.ca,
                            &k->tls.cert,
                            &k->tls.key,
                            &k->roles,
                            &k->shards,
                            &k->store_shards,
                            &k->replicas,
                            &k->node,
                            &k->stream_max_age_ns,
                            &k->stream_max_bytes };

    for (size_t i = 0; i < VG_ARRAY_LEN(given); i++) {
        k->enabled |= cfg_doc_has(d, given[i]);
    }
    if (!k->enabled) {
        return 0;
    }
    if (k->nnats == 0) {
        return cfg_doc_error(d, &k->nats, eb, "a cluster needs the URLs of its NATS servers");
    }
    for (size_t i = 0; i < k->nnats; i++) {
        const char *u = k->nats[i];
        if (strncmp(u, "nats://", 7) != 0 && strncmp(u, "tls://", 6) != 0) {
            return cfg_doc_error(d, &k->nats, eb,
                                 "expected nats://host:port or tls://host:port, got '%s'", u);
        }
    }
    if (!k->tls.cert != !k->tls.key) {
        return cfg_doc_error(d, k->tls.cert ? &k->tls.cert : &k->tls.key, eb,
                             "give both cert and key (mTLS to NATS), or neither");
    }
    if (k->tls.cert && !k->tls.ca) {
        return cfg_doc_error(d, &k->tls.cert, eb, "mTLS to NATS needs tls.ca too");
    }
    if (k->nroles == 0) {
        return cfg_doc_error(d, &k->roles, eb,
                             "not given, and the default (ingest, store, rules) includes the "
                             "rules role, which this vigild does not run yet: list the roles "
                             "it runs, e.g. [ ingest, store ]");
    }
    for (size_t i = 0; i < k->nroles; i++) {
        unsigned bit = strcmp(k->roles[i], "ingest") == 0  ? CLUSTER_ROLE_INGEST
                       : strcmp(k->roles[i], "store") == 0 ? CLUSTER_ROLE_STORE
                       : strcmp(k->roles[i], "rules") == 0 ? CLUSTER_ROLE_RULES
                                                           : 0;
        if (bit == 0) {
            return cfg_doc_error(d, &k->roles, eb, "unknown role '%s' (ingest, store or rules)",
                                 k->roles[i]);
        }
        if (bit == CLUSTER_ROLE_RULES) {
            return cfg_doc_error(d, &k->roles, eb,
                                 "the rules role is not available yet: a cluster runs ingest "
                                 "and store nodes, without rules");
        }
        if (k->role_mask & bit) {
            return cfg_doc_error(d, &k->roles, eb, "role '%s' is listed twice", k->roles[i]);
        }
        k->role_mask |= bit;
    }
    if (k->node && !node_name_ok(k->node)) {
        return cfg_doc_error(d, &k->node, eb,
                             "'%s': 1 to 64 letters, digits, - and _ (it names JetStream "
                             "consumers)",
                             k->node);
    }
    k->store_mask = k->shards >= 64 ? UINT64_MAX : (1ULL << k->shards) - 1;
    if (k->store_shards) {
        struct errbuf se;
        errbuf_clear(&se);
        if (!(k->role_mask & CLUSTER_ROLE_STORE)) {
            return cfg_doc_error(d, &k->store_shards, eb,
                                 "only a store node writes shards "
                                 "(add store to cluster.roles)");
        }
        if (config_shards_parse(k->store_shards, k->shards, &k->store_mask, &se) < 0) {
            return cfg_doc_error(d, &k->store_shards, eb, "%s", errbuf_msg(&se));
        }
    }
    if (c->rules.npaths > 0) {
        return cfg_doc_error(d, &c->rules.paths, eb,
                             "in a cluster, rules run in the rules role, which is not available "
                             "yet: remove rules.paths from ingest and store nodes");
    }
    if (cfg_doc_has(d, &c->store.block_max_age_ns)) {
        return cfg_doc_error(d, &c->store.block_max_age_ns, eb,
                             "a cluster store node cuts a block at every stream message, "
                             "without the commit journal, so that replicas stay byte-identical "
                             "(schemas/cluster.md 4.3): remove it");
    }
    if (c->nforwarders > 0) {
        return cfg_doc_error(d, &c->forwarders, eb,
                             "in a cluster, alerts are forwarded by the rules role, which is not "
                             "available yet: remove forwarders from ingest and store nodes");
    }
    if (!(k->role_mask & CLUSTER_ROLE_INGEST)) {
        /* No ingest role, no listeners for events: those the file leaves at their
         * defaults are off; one it names is a mistake. */
        struct cfg_addr *lst[] = { &c->listen.forward, &c->listen.syslog, &c->listen.https };
        for (size_t i = 0; i < VG_ARRAY_LEN(lst); i++) {
            if (lst[i]->enabled && cfg_doc_has(d, lst[i])) {
                return cfg_doc_error(d, lst[i], eb,
                                     "a node without the ingest role takes no events: set it "
                                     "off, or add ingest to cluster.roles");
            }
            free(lst[i]->host);
            lst[i]->host = NULL;
            lst[i]->enabled = false;
        }
    }
    return 0;
}

int config_load_mem(const char *name, struct span text, const char *base_dir,
                    struct vg_config **out, struct errbuf *eb)
{
    struct cfg_doc *d = NULL;
    struct vg_config *c;
    int rc;

    rc = cfg_doc_parse(name, text, &d, eb);
    if (rc < 0) {
        return rc;
    }
    c = xcalloc(1, sizeof(*c));
    rc = cfg_doc_apply(d, config_opts, c, base_dir, eb);
    if (rc == 0) {
        rc = check_cluster(d, c, eb); /* first: it turns off listeners a node does not run */
    }
    if (rc == 0) {
        rc = check_listen(d, c, eb);
    }
    if (rc == 0) {
        rc = check_forwarders(d, c, eb);
    }
    if (rc == 0) {
        rc = check_agents(d, c, eb);
    }
    if (rc == 0 && c->listen.max_handshakes == 0) {
        c->listen.max_handshakes =
            c->listen.max_connections / 4 ? c->listen.max_connections / 4 : 1;
    }
    if (rc < 0) {
        cfg_doc_free(d);
        config_free(c);
        return rc;
    }
    cfg_doc_drop_tree(d); /* the places stay, for config_error */
    c->doc = d;
    *out = c;
    return 0;
}

int config_error(const struct vg_config *c, const void *field, struct errbuf *eb, const char *fmt,
                 ...)
{
    char msg[sizeof(eb->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cfg_doc_error(c->doc, field, eb, "%s", msg);
}

bool config_has(const struct vg_config *c, const void *field)
{
    return cfg_doc_has(c->doc, field);
}

/* Reads at most CFG_MAX_FILE_BYTES + 1 bytes, so a larger file is caught by the parser's
 * size check without reading all of it. */
static int read_file(const char *path, char **data, size_t *len, struct errbuf *eb)
{
    size_t cap = CFG_MAX_FILE_BYTES + 1;
    char *p;
    size_t n = 0;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

    if (fd < 0) {
        int rc = -errno;
        errbuf_set(eb, "cannot read config '%s': %s", path, vg_strerror(rc));
        return rc;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        errbuf_set(eb, "cannot read config '%s': not a regular file", path);
        return -EINVAL;
    }
    p = xmalloc(cap);
    while (n < cap) {
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int rc = -errno;
            errbuf_set(eb, "cannot read config '%s': %s", path, vg_strerror(rc));
            free(p);
            close(fd);
            return rc;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    *data = p;
    *len = n;
    return 0;
}

int config_load(const char *path, struct vg_config **out, struct errbuf *eb)
{
    char *text = NULL;
    size_t len = 0;
    char *dir_copy;
    char real_dir[PATH_MAX];
    int rc;

    rc = read_file(path, &text, &len, eb);
    if (rc < 0) {
        return rc;
    }
    /* Paths in the file are relative to its directory, made absolute so that they still
     * hold if the process changes directory before a reload. */
    dir_copy = xstrdup(path);
    const char *dir = dirname(dir_copy);
    if (realpath(dir, real_dir)) {
        dir = real_dir;
    }
    rc = config_load_mem(path, (struct span){ (const uint8_t *)text, len }, dir, out, eb);
    free(dir_copy);
    free(text);
    if (rc == 0) {
        (*out)->file = xstrdup(path);
    }
    return rc;
}

int config_defaults(struct vg_config **out)
{
    struct vg_config *c = xcalloc(1, sizeof(*c));

    cfg_defaults(config_opts, c);
    c->listen.max_handshakes = c->listen.max_connections / 4;
    *out = c;
    return 0;
}

void config_free(struct vg_config *c)
{
    if (!c) {
        return;
    }
    cfg_release(config_opts, c);
    cfg_doc_free(c->doc);
    free(c->file);
    free(c);
}

void config_print_reference(FILE *f)
{
    fprintf(f, "vigil.yaml options (sizes: 4096, 512KiB, 16MiB, 200GB; durations: 500ms, 1h, "
               "30d; addresses: host:port, [::1]:port or off)\n\n");
    cfg_print_reference(f, config_opts);
}
