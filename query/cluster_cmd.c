/* query/cluster_cmd.c: `vigil cluster status [-c FILE] [--format table|ndjson]`: the
 * events stream and its consumers as the NATS servers of the config's cluster: section
 * see them (schemas/cluster.md 6): messages, replicas and their leader, each store node's
 * consumer per shard with what it has written and how far behind it is, and the shards
 * no store node writes. Exit 0 when all is well, 1 when something needs attention (NATS
 * unreachable, no stream, a replica offline, a shard without a store node), 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cnats.h"
#include "common/time.h"
#include "query/cli.h"

static void cluster_usage(FILE *f)
{
    fprintf(f, "usage: vigil cluster status -c FILE [--format table|ndjson]\n"
               "\n"
               "Asks the NATS servers of FILE's cluster: section (a cluster node's\n"
               "vigil.yaml) about vigil's events stream: its messages, replicas\n"
               "and leader; each store node's consumer per shard (WRITTEN: the stream\n"
               "sequence up to which it has written its shard; LAG: messages of the shard\n"
               "it has not written yet); the shards no store node writes.\n"
               "Exit status: 0 all well, 1 something needs attention (NATS unreachable, no\n"
               "stream, a replica offline, a shard without a store node), 2 usage.\n");
}

struct cluster_opts {
    const char *format;
};

static const struct cli_opt cluster_opts[] = {
    { "--format", NULL, CLI_STR, CLI_OFF(struct cluster_opts, format), 0, 0 },
    { NULL },
};

/* A store node's consumer: vigil-store-<node>-<shard> (schemas/cluster.md 4.1). */
static bool store_consumer(const char *name, char *node, size_t cap, unsigned *shard)
{
    const char *pre = "vigil-store-";
    size_t np = strlen(pre);
    const char *dash = strrchr(name, '-');
    char *end;

    if (strncmp(name, pre, np) != 0 || !dash || dash <= name + np || !dash[1]) {
        return false;
    }
    unsigned long s = strtoul(dash + 1, &end, 10);
    if (*end || s >= CLUSTER_MAX_SHARDS) {
        return false;
    }
    snprintf(node, cap, "%.*s", (int)(dash - name - (ptrdiff_t)np), name + np);
    *shard = (unsigned)s;
    return true;
}

static void ago(int64_t then, int64_t now, char *out, size_t cap)
{
    if (then <= 0) {
        snprintf(out, cap, "never");
        return;
    }
    double s = (double)(now - then) / 1e9;
    if (s < 0) {
        s = 0;
    }
    if (s < 120) {
        snprintf(out, cap, "%.0fs ago", s);
    } else if (s < 7200) {
        snprintf(out, cap, "%.0fm ago", s / 60);
    } else {
        snprintf(out, cap, "%.1fh ago", s / 3600);
    }
}

static int cluster_status(struct cli_args *a, bool ndjson)
{
    const struct cluster_cfg *k = &a->cfg->cluster;
    struct cnats *c = NULL;
    struct cnats_stream_status ss;
    struct cnats_consumer_status *cs = NULL;
    size_t ncs = 0;
    struct errbuf eb;
    int trouble = 0;
    int64_t now = vg_now_ns();

    errbuf_clear(&eb);
    if (cnats_connect(k, "vigil cluster status", CNATS_ONCE, &c, &eb) < 0) {
        fprintf(stderr, "vigil cluster status: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    int rc = cnats_stream_status(c, &ss, &eb);
    if (rc == 0) {
        rc = cnats_consumers(c, &cs, &ncs, &eb);
    }
    cnats_free(c);
    if (rc < 0) {
        fprintf(stderr, "vigil cluster status: %s\n", errbuf_msg(&eb));
        free(cs);
        return CLI_FAIL;
    }
    char last[32];
    ago(ss.last_ns, now, last, sizeof(last));
    if (ndjson) {
        printf("{\"stream\":\"%s\",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"replicas\":%" PRId64
               ",\"leader\":\"%s\",\"peers\":[",
               CLUSTER_EVENTS_STREAM, ss.msgs, ss.bytes, ss.first_seq, ss.last_seq, ss.replicas,
               ss.leader);
        for (size_t i = 0; i < ss.npeers; i++) {
            const struct cnats_peer *p = &ss.peers[i];
            printf("%s{\"name\":\"%s\",\"leader\":%s,\"current\":%s,\"offline\":%s,\"lag\":%" PRIu64
                   "}",
                   i ? "," : "", p->name, p->leader ? "true" : "false",
                   p->current ? "true" : "false", p->offline ? "true" : "false", p->lag);
        }
        printf("]}\n");
    } else {
        printf("stream %s: %" PRIu64 " messages, %.1f MiB, sequences %" PRIu64 "..%" PRIu64
               ", last %s; %" PRId64 " replicas%s%s%s\n",
               CLUSTER_EVENTS_STREAM, ss.msgs, (double)ss.bytes / (1 << 20), ss.first_seq,
               ss.last_seq, last, ss.replicas, *ss.leader ? " (leader " : "", ss.leader,
               *ss.leader ? ")" : "");
        for (size_t i = 0; i < ss.npeers; i++) {
            const struct cnats_peer *p = &ss.peers[i];
            printf("  replica %-16s %s", p->name,
                   p->leader    ? "leader"
                   : p->offline ? "OFFLINE"
                   : p->current ? "current"
                                : "behind");
            if (!p->leader && !p->offline && p->lag > 0) {
                printf(", %" PRIu64 " behind", p->lag);
            }
            printf("\n");
        }
    }
    for (size_t i = 0; i < ss.npeers; i++) {
        trouble |= ss.peers[i].offline;
    }

    uint64_t covered = 0;
    if (!ndjson) {
        printf("\n%-5s  %-16s  %-28s  %10s  %8s  %s\n", "SHARD", "NODE", "CONSUMER", "WRITTEN",
               "LAG", "LAST DELIVERED");
    }
    for (unsigned sh = 0; sh < CLUSTER_MAX_SHARDS; sh++) {
        for (size_t i = 0; i < ncs; i++) {
            char node[128];
            unsigned s;
            if (!store_consumer(cs[i].name, node, sizeof(node), &s) || s != sh) {
                continue;
            }
            covered |= 1ULL << s;
            uint64_t lag = cs[i].pending + cs[i].ack_pending;
            char when[32];
            ago(cs[i].last_active_ns, now, when, sizeof(when));
            if (ndjson) {
                printf("{\"shard\":%u,\"node\":\"%s\",\"consumer\":\"%s\",\"written\":%" PRIu64
                       ",\"lag\":%" PRIu64 ",\"pending\":%" PRIu64 ",\"ack_pending\":%" PRIu64
                       ",\"redelivered\":%" PRIu64 ",\"fetching\":%s}\n",
                       s, node, cs[i].name, cs[i].ack_floor, lag, cs[i].pending, cs[i].ack_pending,
                       cs[i].redelivered, cs[i].waiting > 0 ? "true" : "false");
            } else {
                printf("%-5u  %-16s  %-28s  %10" PRIu64 "  %8" PRIu64 "  %s%s\n", s, node,
                       cs[i].name, cs[i].ack_floor, lag, when,
                       cs[i].waiting > 0 ? "" : " (no node fetching)");
            }
        }
    }
    for (size_t i = 0; i < ncs; i++) {
        char node[128];
        unsigned s;
        if (!store_consumer(cs[i].name, node, sizeof(node), &s)) {
            if (ndjson) {
                printf("{\"consumer\":\"%s\",\"filter\":\"%s\",\"delivered\":%" PRIu64
                       ",\"pending\":%" PRIu64 "}\n",
                       cs[i].name, cs[i].filter, cs[i].delivered, cs[i].pending);
            } else {
                printf("other consumer %s (filter %s): delivered %" PRIu64 ", %" PRIu64
                       " pending\n",
                       cs[i].name, cs[i].filter, cs[i].delivered, cs[i].pending);
            }
        }
    }
    free(cs);
    for (unsigned sh = 0; sh < k->shards; sh++) {
        if (!((covered >> sh) & 1)) {
            trouble = 1;
            if (ndjson) {
                printf("{\"shard\":%u,\"node\":null}\n", sh);
            } else {
                printf("shard %u: no store node writes it (its events are only in the stream, "
                       "until stream.max_age)\n",
                       sh);
            }
        }
    }
    return trouble ? CLI_FAIL : CLI_OK;
}

static int cluster_run(struct cli_args *a)
{
    const struct cluster_opts *o = a->own;
    const char *fmt = o->format ? o->format : "table";
    bool ndjson = strcmp(fmt, "ndjson") == 0;

    if (a->nwords != 1 || strcmp(a->words[0], "status") != 0) {
        if (a->nwords > 0 && strcmp(a->words[0], "status") != 0) {
            fprintf(stderr, "vigil cluster: unknown subcommand '%s'\n", a->words[0]);
        }
        cluster_usage(stderr);
        return CLI_USAGE;
    }
    if (!ndjson && strcmp(fmt, "table") != 0) {
        fprintf(stderr, "vigil cluster status: --format: expected table or ndjson, got '%s'\n",
                fmt);
        return CLI_USAGE;
    }
    if (a->store_dir) {
        fprintf(stderr, "vigil cluster status: --store: not used; give the node's -c FILE\n");
        return CLI_USAGE;
    }
    if (!a->config_path) {
        fprintf(stderr, "vigil cluster status: -c FILE is required: a configuration with a "
                        "cluster: section\n");
        return CLI_USAGE;
    }
    int rc = cli_load(a);
    if (rc != CLI_OK) {
        return rc;
    }
    if (!a->cfg->cluster.enabled) {
        fprintf(stderr, "vigil cluster status: %s has no cluster: section\n", a->config_path);
        return CLI_USAGE;
    }
    return cluster_status(a, ndjson);
}

const struct cli_cmd cmd_cluster = {
    .name = "cluster",
    .synopsis = "status -c FILE   a cluster: its stream, replicas, store nodes and their lag",
    .takes = CLI_STORE,
    .opts = cluster_opts,
    .own_size = sizeof(struct cluster_opts),
    .usage = cluster_usage,
    .run = cluster_run,
};
