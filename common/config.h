/* common/config.h: vigil.yaml, the configuration of vigild and vigil.
 *
 * A load builds a new, complete struct vg_config or nothing: on any error no struct is
 * returned. The option tables in config.c are the reference for every key (type, default,
 * bounds, help); `vigild --help-config` prints them with config_print_reference(). */
#ifndef VG_COMMON_CONFIG_H
#define VG_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cfg.h" /* struct cfg_addr */
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"

/* store: { path, partition, retention: { max_age, max_size, interval }, block_bytes,
 *          block_max_age,
 *          commit_interval, free_reserve, fsync, signing_key } */
struct store_cfg {
    char *path;                      /* never NULL */
    int64_t partition_ns;            /* 1h */
    int64_t max_age_ns;              /* retention.max_age, 30d: from event time and receipt */
    int64_t retain_every_ns;         /* retention.interval, 1m */
    uint64_t max_size_bytes;         /* retention.max_size, 200GB */
    uint64_t block_bytes;            /* 1MiB, 4KiB..16MiB */
    int64_t block_max_age_ns;        /* 1m, 0..1h: the commit journal (segment.md 5.6); 0 off */
    char *compression;               /* "lz4hc" (default) or "lz4": how blocks are written */
    char *compaction;                /* "zstd" (default), "lz4hc" or "off": sealed segments */
    int64_t commit_interval_ns;      /* 2ms, 0..1s */
    uint64_t free_reserve_bytes;     /* 1GiB */
    uint64_t evidence_reserve_bytes; /* 64MiB: evidence below free_reserve, per episode
                                        (at most half of free_reserve is used) */
    bool fsync;                      /* true */
    char *signing_key;               /* Ed25519 PEM key signing sealed segments, or NULL
                                        (the store makes <path>/keys/collector-ed25519.pem) */
};

/* Who may ship events: a client certificate the CA signed is accepted when any one of
 * these holds (common/tls.h struct tls_policy). */
struct agents_rule {
    bool any;   /* every certificate the CA signed */
    char **ous; /* an OU of the subject is one of these */
    size_t nous;
    char **subjects; /* the subject CN matches one of these globs */
    size_t nsubjects;
    char **san_uris; /* a URI subjectAltName matches one of these globs */
    size_t nsan_uris;
    char **oids; /* an extended key usage or certificate policy OID is one of these */
    size_t noids;
    bool set; /* not a key: the file gave this listener a rule of its own */
};

/* tls.agents: the rule for every TLS listener, and per listener (forward, syslog, https)
 * one that replaces it when the file gives one. Default: OU agents (vigil pki init gives
 * its agents' certificates OU=agents, the analyst's OU=analysts). */
enum { LST_RULE_FORWARD, LST_RULE_SYSLOG, LST_RULE_HTTPS, LST_RULES };
struct agents_cfg {
    struct agents_rule all;
    struct agents_rule lst[LST_RULES];
};

/* tls: { ca, cert, key, crl, crl_expired, handshake_timeout, watch_interval, agents }. ca,
 * cert and key are set (and were readable regular files at load) whenever a forward,
 * syslog or https listener is enabled without listen.insecure; otherwise they may be
 * NULL. crl may be NULL. */
struct tls_cfg {
    char *ca;
    char *cert;
    char *key;
    char *crl;
    char *crl_expired;            /* "refuse" (default) or "warn" */
    int64_t handshake_timeout_ns; /* 10s */
    int64_t watch_interval_ns;    /* 10s: the files are checked for changes; 0: SIGHUP only */
    struct agents_cfg agents;
};

/* listen: admin is loopback unless admin_remote; insecure: true only with every enabled
 * listener on loopback. A disabled listener has enabled == false and host == NULL. */
struct listen_cfg {
    struct cfg_addr forward;        /* 0.0.0.0:24224 */
    struct cfg_addr syslog;         /* 0.0.0.0:6514 */
    struct cfg_addr https;          /* 0.0.0.0:8443 */
    struct cfg_addr admin;          /* 127.0.0.1:9465, plain HTTP */
    bool admin_remote;              /* admin may bind a non-loopback address */
    bool insecure;                  /* plaintext forward/syslog/https (loopback only) */
    uint64_t max_frame_bytes;       /* 16MiB */
    uint64_t max_connections;       /* 4096, per listener */
    uint64_t max_handshakes;        /* connections in their TLS handshake, all listeners; the
                                       load resolves 0 to a quarter of max_connections */
    uint64_t max_handshakes_per_ip; /* 32 */
    uint64_t accept_rate_per_ip;    /* 20 new connections a second; 0: no limit */
    uint64_t accept_burst_per_ip;   /* 100 */
    int64_t refusal_interval_ns;    /* 1m: strangers' refusals summarized this often */
    int64_t idle_timeout_ns;        /* 5m */
    int64_t header_timeout_ns;      /* 30s: an HTTP request head, from its first byte */
    int64_t frame_timeout_ns;       /* 2m: a frame or request, from its first byte */
    uint64_t high_water_bytes;      /* 64MiB: per-connection pending bytes before pausing reads */
    char *shared_key_file;          /* Forward shared_key secret, or NULL */
};

/* rules: { paths, resolve_after, update_every, lateness, max_future, summary_every }
 * (rules/TIME.md, schemas/alert.md) */
struct rules_cfg {
    char **paths; /* rule files or directories, resolved against the config's directory */
    size_t npaths;
    int64_t resolve_after_ns; /* 15m: an incident resolves after this much quiet */
    int64_t update_every_ns;  /* 5m: at most one update record per this much event time */
    int64_t lateness_ns;      /* 2m: how far out of order one source may be and count */
    int64_t max_future_ns;    /* 5m: a ts further past its receipt is evaluated at receipt */
    int64_t summary_every_ns; /* 1m: how often uncounted events are summed up as evidence */
};

/* forwarders: [ { name, type, url, match, secret_file | secret_env, ca_file, timeouts,
 * rate_limit, retry, and per type: resend_every, expire_after (alertmanager) } ].
 * Only the syntax is checked here; forwarders/ checks the meaning (URL, match fields,
 * secrets present, keys of the wrong type) and reports with config_error(). */
struct forwarder_retry_cfg {
    int64_t min_ns;           /* first backoff, 1s */
    int64_t max_ns;           /* longest backoff, 5m */
    int64_t give_up_after_ns; /* an entry queued this long becomes a dead letter; 0 never */
};

struct forwarder_cfg {
    char *name;                 /* unique, never NULL */
    char *type;                 /* alertmanager, pagerduty, opsgenie, slack or webhook */
    char *url;                  /* endpoint; NULL only for slack with the URL as its secret */
    struct cfg_strmap match;    /* field (or severity, rule, rule_id, tag) -> values */
    char *secret_file;          /* or NULL; at most one of secret_file and secret_env */
    char *secret_env;           /* or NULL */
    char *ca_file;              /* CA bundle for https:// (NULL: the system's) */
    int64_t connect_timeout_ns; /* 5s */
    int64_t timeout_ns;         /* 10s: the whole request */
    uint64_t rate_limit;        /* requests per minute; 0: the type's default */
    struct forwarder_retry_cfg retry;
    int64_t resend_every_ns; /* alertmanager: firing alerts re-sent this often, 1m */
    int64_t expire_after_ns; /* alertmanager: endsAt of a firing alert, now + 5m */
};

/* limits: { memory } */
struct limits_cfg {
    uint64_t memory_bytes; /* connection buffers in all; vigild resolves 0 (the default)
                              to a quarter of the RAM it may use (cgroup memory.max or the
                              machine's), between 64MiB and 8GiB */
};

struct log_cfg {
    char *level; /* error, warn, info or debug; default info */
};

/* cluster: { nats, tls: { ca, cert, key }, roles, shards, store_shards, replicas, node,
 * stream: { max_age, max_bytes } } (README "Cluster", schemas/cluster.md). Absent: vigild
 * is one process doing everything (enabled false, every other field its default). */
enum {
    CLUSTER_ROLE_INGEST = 1 << 0, /* listeners; group commits published to JetStream */
    CLUSTER_ROLE_STORE = 1 << 1,  /* durable consumers of owned shards -> local stores */
    CLUSTER_ROLE_RULES = 1 << 2,  /* not run yet: refused by the load */
};
#define CLUSTER_MAX_SHARDS 64
struct cluster_tls_cfg {
    char *ca;   /* CA bundle the NATS servers' certificates chain to, or NULL */
    char *cert; /* client certificate (mTLS), or NULL; with key */
    char *key;
};
struct cluster_cfg {
    char **nats; /* nats://host:port or tls://host:port URLs of the NATS servers */
    size_t nnats;
    struct cluster_tls_cfg tls;
    char **roles; /* as given; role_mask is what the load made of them */
    size_t nroles;
    uint64_t shards;           /* 8: subjects vigil.ev.<0..shards-1>; fixed per cluster */
    char *store_shards;        /* "0-3", "0,2,5-7" or NULL: every shard */
    uint64_t replicas;         /* 3: JetStream replicas of vigil's streams */
    char *node;                /* this node's name in consumer names, or NULL: host name */
    int64_t stream_max_age_ns; /* 7d: the events stream keeps messages this long at most */
    uint64_t stream_max_bytes; /* 0: no size bound */
    /* Made by the load. */
    bool enabled;        /* the file has a cluster section */
    unsigned role_mask;  /* CLUSTER_ROLE_* */
    uint64_t store_mask; /* bit i: this node stores shard i (store role) */
};

/* Parses a shard set ("0-3", "0,2,5-7") against nshards: *mask gets bit i for each shard
 * i. Returns 0, or VG_EPARSE with eb saying what is wrong (a shard past nshards-1, a
 * range backwards, an empty item). */
int config_shards_parse(const char *spec, uint64_t nshards, uint64_t *mask, struct errbuf *eb);

struct cfg_doc;

struct vg_config {
    char *file;          /* path loaded, as given, or NULL */
    char *user;          /* vigild started as root switches to this user after binding, or NULL */
    struct cfg_doc *doc; /* where each value came from (config_error), or NULL */
    struct store_cfg store;
    struct tls_cfg tls;
    struct listen_cfg listen;
    struct rules_cfg rules;
    struct limits_cfg limits;
    struct forwarder_cfg *forwarders;
    size_t nforwarders;
    struct log_cfg log;
    struct cluster_cfg cluster;
};

/* Reads and loads the file at path (at most CFG_MAX_FILE_BYTES); relative paths inside it
 * resolve against the file's directory (made absolute). Errors name the file as given:
 * "vigil.yaml:12:3: unknown key 'listen.max_fram'". Returns 0 with *out owned by the
 * caller (config_free), VG_ECONFIG, or -errno when the file cannot be read; eb says why.
 * Blocks on file I/O. */
int config_load(const char *path, struct vg_config **out, struct errbuf *eb);

/* Loads config text; `name` is what errors call it; relative paths resolve against
 * base_dir (NULL: left relative). Returns 0 with *out owned by the caller, or
 * VG_ECONFIG. For tests and fuzzing; blocks only to check that named files exist. */
int config_load_mem(const char *name, struct span text, const char *base_dir,
                    struct vg_config **out, struct errbuf *eb);

/* Every default, no file; ca/cert/key are NULL. Returns 0 with *out owned by the caller. */
int config_defaults(struct vg_config **out);

void config_free(struct vg_config *c); /* takes NULL */

/* For checks made after the load by the module that uses a value: sets eb to
 * "file:line:col: 'key.path': <message>" for the value stored at `field` (an address
 * inside c, e.g. &c->forwarders[1].url, or &item->key of a CFG_STRMAP item). Returns
 * VG_ECONFIG. */
int config_error(const struct vg_config *c, const void *field, struct errbuf *eb, const char *fmt,
                 ...) VG_PRINTF(4, 5);
/* True when the file gave the value stored at field (not a default). */
bool config_has(const struct vg_config *c, const void *field);

/* Prints every option with type, default, bounds and help (`vigild --help-config`). */
void config_print_reference(FILE *f);

#endif
