/* query/alerts.c: `vigil alerts`: the incidents the forwarders know and how their
 * deliveries went, the outbox (queued, oldest, dead letters), replay of dead letters,
 * and a test alert to one receiver. Reads and edits <store>/outbox.db through
 * forwarders/fwd.h while vigild runs (SQLite, WAL). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/time.h"
#include "forwarders/fwd.h"
#include "query/cli.h"

static void alerts_usage(FILE *f)
{
    fprintf(
        f,
        "usage: vigil alerts [list] [--state firing|resolved] [--limit N] [--format table|json]\n"
        "       vigil alerts outbox [--state queued|dead|delivered] [--limit N] [--format "
        "table|json]\n"
        "       vigil alerts replay ID | --dead\n"
        "       vigil alerts test RECEIVER -c vigil.yaml\n"
        "\n"
        "  list     incidents: state, rule, count, first and last seen, group, and each\n"
        "           receiver's delivery state; then the outbox per receiver\n"
        "  outbox   queued entries and dead letters (with their ids), oldest first\n"
        "  replay   queue a dead letter again (or every one); vigild sends it within seconds\n"
        "  test     send a test alert (and its resolve) to RECEIVER; print the answers\n"
        "\n"
        "Every subcommand takes -c vigil.yaml or --store DIR.\n");
}

/* The command's own options (cli.h), then what run works from. */
struct alerts_opts {
    const char *state;
    const char *format;
    bool dead;
    uint64_t limit;
};

static void alerts_defaults(void *own)
{
    ((struct alerts_opts *)own)->limit = 100;
}

static const struct cli_opt alerts_opts[] = {
    { "--state", NULL, CLI_STR, CLI_OFF(struct alerts_opts, state), 0, 0 },
    { "--format", NULL, CLI_STR, CLI_OFF(struct alerts_opts, format), 0, 0 },
    { "--dead", NULL, CLI_FLAG, CLI_OFF(struct alerts_opts, dead), 0, 0 },
    { "--limit", NULL, CLI_U64, CLI_OFF(struct alerts_opts, limit), 1, 1000000 },
    { NULL },
};

struct opts {
    const struct cli_args *args;
    const char *sub;
    const char *state;
    const char *arg; /* replay ID, test RECEIVER */
    bool dead;
    bool json;
    uint64_t limit;
};

static void fmt_time(int64_t ns, char *out, size_t cap)
{
    if (ns == 0) {
        snprintf(out, cap, "-");
        return;
    }
    vg_time_format(ns, 0, out, cap);
}

static void fmt_age(int64_t ns, char *out, size_t cap)
{
    int64_t s = ns / VG_NS_PER_SEC;
    if (s < 120) {
        snprintf(out, cap, "%" PRId64 "s", s);
    } else if (s < 7200) {
        snprintf(out, cap, "%" PRId64 "m", s / 60);
    } else if (s < 172800) {
        snprintf(out, cap, "%" PRId64 "h", s / 3600);
    } else {
        snprintf(out, cap, "%" PRId64 "d", s / 86400);
    }
}

static void put_json_str(const char *k, const char *v, bool *first)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    if (json_append_str(&b, span_str(k)) == 0 && buf_append_byte(&b, ':') == 0 &&
        json_append_str(&b, span_str(v)) == 0) {
        printf("%s%s", *first ? "" : ",", buf_cstr(&b));
    }
    *first = false;
    buf_release(&b);
}

static int print_incident(void *arg, const struct fwd_incident_row *r)
{
    const struct opts *o = arg;
    char t0[48];
    char t1[48];

    fmt_time(r->first_seen, t0, sizeof(t0));
    fmt_time(r->last_seen, t1, sizeof(t1));
    if (o->json) {
        bool first = true;
        printf("{");
        put_json_str("incident", r->incident, &first);
        put_json_str("fingerprint", r->fingerprint, &first);
        put_json_str("state", r->state, &first);
        put_json_str("rule_id", r->rule_id, &first);
        put_json_str("rule", r->title, &first);
        put_json_str("severity", r->severity, &first);
        printf(",\"count\":%" PRIu64 ",\"group\":%s", r->count,
               r->group_json[0] ? r->group_json : "{}");
        put_json_str("first_seen", t0, &first);
        put_json_str("last_seen", t1, &first);
        put_json_str("deliveries", r->deliveries, &first);
        printf("}\n");
        return 0;
    }
    printf("%-8s %-40.40s %-8s %7" PRIu64 "  %-20s  %-20s  %s\n", r->state, r->title, r->severity,
           r->count, t0, t1, r->fingerprint);
    printf("         group %s\n         deliveries: %s\n", r->group_json,
           r->deliveries[0] ? r->deliveries : "(none routed)");
    return 0;
}

static int print_summary(void *arg, const struct fwd_summary_row *r)
{
    const struct opts *o = arg;
    char age[32] = "-";

    if (r->oldest_queued_ns) {
        fmt_age(vg_now_ns() - r->oldest_queued_ns, age, sizeof(age));
    }
    if (o->json) {
        bool first = true;
        printf("{");
        put_json_str("receiver", r->receiver, &first);
        printf(",\"queued\":%" PRIu64 ",\"dead\":%" PRIu64 ",\"delivered\":%" PRIu64
               ",\"oldest_queued_seconds\":%.3f}\n",
               r->queued, r->dead, r->delivered,
               r->oldest_queued_ns ? (double)(vg_now_ns() - r->oldest_queued_ns) / 1e9 : 0.0);
        return 0;
    }
    printf("  %-24s queued %-6" PRIu64 " oldest %-6s dead letters %-6" PRIu64 " delivered %" PRIu64
           "\n",
           r->receiver, r->queued, age, r->dead, r->delivered);
    return 0;
}

static int print_entry(void *arg, const struct fwd_entry_row *r)
{
    const struct opts *o = arg;
    char t0[48];

    fmt_time(r->created_ns, t0, sizeof(t0));
    if (o->json) {
        bool first = true;
        printf("{\"id\":%" PRId64 ",\"seq\":%" PRIu64, r->id, r->seq);
        first = false;
        put_json_str("receiver", r->receiver, &first);
        put_json_str("state", r->state, &first);
        put_json_str("alert_state", r->alert_state, &first);
        put_json_str("incident", r->incident, &first);
        put_json_str("rule", r->title, &first);
        printf(",\"attempts\":%d,\"status\":%ld", r->attempts, r->status);
        put_json_str("error", r->error, &first);
        put_json_str("queued_at", t0, &first);
        printf("}\n");
        return 0;
    }
    printf("%-7" PRId64 " %-9s %-20s %-8s seq %-9" PRIu64 " %-32.32s attempts %-3d %s%s%s\n", r->id,
           r->state, r->receiver, r->alert_state, r->seq, r->title, r->attempts, t0,
           r->error[0] ? "  " : "", r->error);
    return 0;
}

static int no_outbox(const char *dir, const char *msg)
{
    fprintf(stderr, "vigil alerts: %s\n", msg);
    (void)dir;
    return CLI_FAIL;
}

static int run(struct opts *o)
{
    struct errbuf eb;
    const char *dir = cli_store_dir(o->args);
    int rc;

    errbuf_clear(&eb);
    if (strcmp(o->sub, "list") == 0) {
        if (!o->json) {
            printf("%-8s %-40s %-8s %7s  %-20s  %-20s  %s\n", "STATE", "RULE", "SEVERITY", "COUNT",
                   "FIRST SEEN", "LAST SEEN", "FINGERPRINT");
        }
        rc = fwd_outbox_incidents(dir, o->state, (size_t)o->limit, print_incident, o, &eb);
        if (rc < 0) {
            return no_outbox(dir, errbuf_msg(&eb));
        }
        if (!o->json) {
            printf("\noutbox:\n");
        }
        rc = fwd_outbox_summary(dir, print_summary, o, &eb);
        return rc < 0 ? no_outbox(dir, errbuf_msg(&eb)) : CLI_OK;
    }
    if (strcmp(o->sub, "outbox") == 0) {
        rc = fwd_outbox_entries(dir, o->state, (size_t)o->limit, print_entry, o, &eb);
        return rc < 0 ? no_outbox(dir, errbuf_msg(&eb)) : CLI_OK;
    }
    if (strcmp(o->sub, "replay") == 0) {
        int64_t id = 0;
        if (!o->dead) {
            if (!o->arg || parse_i64(span_str(o->arg), 1, INT64_MAX, &id) < 0) {
                fprintf(stderr, "vigil alerts replay: expected a dead letter's id (see vigil "
                                "alerts outbox --state dead) or --dead\n");
                return CLI_USAGE;
            }
        }
        rc = fwd_outbox_replay(dir, id, &eb);
        if (rc < 0) {
            return no_outbox(dir, errbuf_msg(&eb));
        }
        printf("%d dead letter%s queued again\n", rc, rc == 1 ? "" : "s");
        return CLI_OK;
    }
    /* test */
    if (!o->arg) {
        fprintf(stderr, "vigil alerts test: which receiver? (a forwarder's name)\n");
        return CLI_USAGE;
    }
    if (!o->args->config_path) {
        fprintf(stderr, "vigil alerts test: needs -c vigil.yaml (the forwarder's settings)\n");
        return CLI_USAGE;
    }
    rc = fwd_test_send(o->args->cfg, o->arg, stdout, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil alerts test: %s\n", errbuf_msg(&eb));
        return rc == VG_ECONFIG || rc == -ENOENT ? CLI_USAGE : CLI_FAIL;
    }
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

static int alerts_run(struct cli_args *a)
{
    const struct alerts_opts *ao = a->own;
    struct opts o = {
        .args = a, .sub = "list", .state = ao->state, .dead = ao->dead, .limit = ao->limit
    };
    int i = 0;

    if (i < a->nwords) {
        static const char *const subs[] = { "list", "outbox", "replay", "test" };
        bool ok = false;
        for (size_t k = 0; k < sizeof(subs) / sizeof(subs[0]); k++) {
            if (strcmp(a->words[i], subs[k]) == 0) {
                o.sub = subs[k];
                ok = true;
            }
        }
        if (!ok) {
            fprintf(stderr, "vigil alerts: unknown subcommand '%s'\n", a->words[i]);
            alerts_usage(stderr);
            return CLI_USAGE;
        }
        i++;
    }
    bool takes_arg = strcmp(o.sub, "replay") == 0 || strcmp(o.sub, "test") == 0;
    if (i < a->nwords && takes_arg && a->words[i][0] != '-') {
        o.arg = a->words[i++];
    }
    if (i < a->nwords || (o.dead && strcmp(o.sub, "replay") != 0)) {
        fprintf(stderr, "vigil alerts %s: unexpected argument '%s'\n", o.sub,
                i < a->nwords ? a->words[i] : "--dead");
        alerts_usage(stderr);
        return CLI_USAGE;
    }
    if (ao->format && strcmp(ao->format, "json") == 0) {
        o.json = true;
    } else if (ao->format && strcmp(ao->format, "table") != 0) {
        fprintf(stderr, "vigil alerts: --format: expected table or json, got '%s'\n", ao->format);
        return CLI_USAGE;
    }
    if (o.state) {
        bool outbox = strcmp(o.sub, "outbox") == 0;
        bool ok = false;
        static const char *const list_states[] = { "firing", "resolved", NULL };
        static const char *const box_states[] = { "queued", "dead", "delivered", NULL };
        for (const char *const *k = outbox ? box_states : list_states; *k; k++) {
            ok = ok || strcmp(o.state, *k) == 0;
        }
        if (!ok || (!outbox && strcmp(o.sub, "list") != 0)) {
            fprintf(stderr, "vigil alerts %s: --state '%s' is not one of %s\n", o.sub, o.state,
                    outbox ? "queued, dead, delivered" : "firing, resolved (list only)");
            return CLI_USAGE;
        }
    }
    if (o.dead && o.arg) {
        fprintf(stderr, "vigil alerts replay: give an ID or --dead, not both\n");
        return CLI_USAGE;
    }
    int rc = cli_load(a);
    if (rc != CLI_OK) {
        return rc;
    }
    return run(&o);
}

const struct cli_cmd cmd_alerts = {
    .name = "alerts",
    .synopsis = "[list|outbox|replay|test]   incidents, their deliveries, the outbox",
    .takes = CLI_STORE,
    .opts = alerts_opts,
    .own_size = sizeof(struct alerts_opts),
    .own_init = alerts_defaults,
    .usage = alerts_usage,
    .run = alerts_run,
};
