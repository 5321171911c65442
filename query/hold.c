/* query/hold.c: `vigil hold add|list|release` (schemas/segment.md 10): legal holds in
 * the store's catalog. Retention never deletes a partition that overlaps an active
 * hold. A hold records who placed it (the user running vigil), when and why; a release
 * is recorded beside it, never deleted. Writes the catalog beside a running vigild
 * (SQLite WAL; the store waits for vigild's brief locks). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/time.h"
#include "common/xalloc.h"
#include "query/cli.h"
#include "query/filter.h"
#include "store/store.h"

#define HOLD_REASON_MAX 2000

static void hold_usage(FILE *f)
{
    fprintf(f, "usage: vigil hold add --since T --until T [FILTER...] --reason TEXT\n"
               "       vigil hold list [--all] [--format table|ndjson]\n"
               "       vigil hold release ID --reason TEXT\n"
               "       (each takes -c FILE or --store DIR)\n"
               "\n"
               "A legal hold keeps every partition overlapping [since, until) from retention\n"
               "(store.retention) until it is released. FILTER narrows what the hold is about\n"
               "and is recorded with it; retention keeps the partitions whole either way.\n"
               "T: RFC 3339 (2024-05-01T13:00:00Z) or relative (15m, 2h, 7d ago).\n"
               "list shows the active holds; --all adds the released ones.\n");
}

static bool reason_ok(const char *reason)
{
    if (!reason || !*reason) {
        fprintf(stderr, "vigil hold: --reason TEXT is required (why, for the record)\n");
        return false;
    }
    if (strlen(reason) > HOLD_REASON_MAX) {
        fprintf(stderr, "vigil hold: --reason: at most %d bytes\n", HOLD_REASON_MAX);
        return false;
    }
    return true;
}

static int hold_add(struct cli_args *a, const char *reason, int nfilter)
{
    struct store_hold h = { 0 };
    char who[512];
    char t0[40];
    char t1[40];
    struct errbuf eb;
    int64_t now = a->now;
    int64_t id = 0;
    int col = 0;
    int rc;

    if (!a->since_arg || !a->until_arg) {
        fprintf(stderr, "vigil hold add: --since and --until are required\n");
        return CLI_USAGE;
    }
    h.since = a->since;
    h.until = a->until;
    if (h.since >= h.until) {
        fprintf(stderr, "vigil hold add: --since must be before --until\n");
        return CLI_USAGE;
    }
    if (!reason_ok(reason)) {
        return CLI_USAGE;
    }
    char *ftext = filter_join_args(nfilter, a->words + a->nwords - nfilter);
    if (*ftext) {
        struct filter *f = NULL;
        errbuf_clear(&eb);
        if (filter_parse(ftext, now, &f, &col, &eb) < 0) {
            fprintf(stderr, "vigil hold add: %s\n", errbuf_msg(&eb));
            filter_error_caret(ftext, col, stderr);
            free(ftext);
            return CLI_USAGE;
        }
        filter_free(f);
        h.filter = ftext;
    }
    rc = cli_load(a);
    if (rc != CLI_OK) {
        free(ftext);
        return rc;
    }
    cli_user(who, sizeof(who));
    h.reason = (char *)reason;
    h.created_by = who;
    h.created = now;
    errbuf_clear(&eb);
    rc = store_hold_add(cli_store_dir(a), &h, &id, &eb);
    free(ftext);
    if (rc < 0) {
        fprintf(stderr, "vigil hold add: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    vg_time_format(h.since, 0, t0, sizeof(t0));
    vg_time_format(h.until, 0, t1, sizeof(t1));
    printf("hold %" PRId64 " placed on %s .. %s by %s\n", id, t0, t1, who);
    return CLI_OK;
}

static void print_json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p < 0x20) {
            printf("\\u%04x", *p);
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

static int hold_list(struct cli_args *a, bool all, const char *fmt)
{
    struct store_hold *h = NULL;
    size_t n = 0;
    struct errbuf eb;
    bool ndjson = strcmp(fmt, "ndjson") == 0;

    if (!ndjson && strcmp(fmt, "table") != 0) {
        fprintf(stderr, "vigil hold list: --format: expected table or ndjson, got '%s'\n", fmt);
        return CLI_USAGE;
    }
    int rc = cli_load(a);
    if (rc != CLI_OK) {
        return rc;
    }
    errbuf_clear(&eb);
    rc = store_hold_list(cli_store_dir(a), &h, &n, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil hold list: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    if (!ndjson) {
        printf("%-4s %-8s %-20s %-20s %-20s %s\n", "ID", "STATE", "SINCE", "UNTIL", "PLACED",
               "BY / REASON / FILTER");
    }
    for (size_t i = 0; i < n; i++) {
        char t0[40];
        char t1[40];
        char tc[40];
        char tr[40] = "";
        if (h[i].released && !all) {
            continue;
        }
        vg_time_format(h[i].since, 0, t0, sizeof(t0));
        vg_time_format(h[i].until, 0, t1, sizeof(t1));
        vg_time_format(h[i].created, 0, tc, sizeof(tc));
        if (h[i].released) {
            vg_time_format(h[i].released, 0, tr, sizeof(tr));
        }
        if (ndjson) {
            printf("{\"id\":%" PRId64 ",\"active\":%s,\"since\":\"%s\",\"until\":\"%s\","
                   "\"placed\":\"%s\",\"placed_by\":",
                   h[i].id, h[i].released ? "false" : "true", t0, t1, tc);
            print_json_str(h[i].created_by);
            printf(",\"reason\":");
            print_json_str(h[i].reason);
            printf(",\"filter\":");
            if (h[i].filter) {
                print_json_str(h[i].filter);
            } else {
                printf("null");
            }
            if (h[i].released) {
                printf(",\"released\":\"%s\",\"released_by\":", tr);
                print_json_str(h[i].released_by);
                printf(",\"release_reason\":");
                print_json_str(h[i].release_reason);
            }
            printf("}\n");
            continue;
        }
        printf("%-4" PRId64 " %-8s %-20s %-20s %-20s %s: %s", h[i].id,
               h[i].released ? "released" : "active", t0, t1, tc, h[i].created_by, h[i].reason);
        if (h[i].filter) {
            printf(" [filter: %s]", h[i].filter);
        }
        putchar('\n');
        if (h[i].released) {
            printf("     released %s by %s: %s\n", tr, h[i].released_by ? h[i].released_by : "?",
                   h[i].release_reason ? h[i].release_reason : "");
        }
    }
    store_holds_free(h, n);
    return CLI_OK;
}

static int hold_release(struct cli_args *a, const char *id_s, const char *reason)
{
    char who[512];
    struct errbuf eb;
    uint64_t id;

    if (!id_s || parse_u64(span_str(id_s), INT64_MAX, &id) < 0 || id == 0) {
        fprintf(stderr, "vigil hold release: expected a hold ID (see vigil hold list), got '%s'\n",
                id_s ? id_s : "");
        return CLI_USAGE;
    }
    if (!reason_ok(reason)) {
        return CLI_USAGE;
    }
    int rc = cli_load(a);
    if (rc != CLI_OK) {
        return rc;
    }
    cli_user(who, sizeof(who));
    errbuf_clear(&eb);
    rc = store_hold_release(cli_store_dir(a), (int64_t)id, who, reason, vg_now_ns(), &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil hold release: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    printf("hold %" PRIu64 " released by %s\n", id, who);
    return CLI_OK;
}

struct hold_opts {
    const char *reason;
    const char *format;
    bool all;
};

static const struct cli_opt hold_opts[] = {
    { "--reason", NULL, CLI_STR, CLI_OFF(struct hold_opts, reason), 0, 0 },
    { "--format", NULL, CLI_STR, CLI_OFF(struct hold_opts, format), 0, 0 },
    { "--all", NULL, CLI_FLAG, CLI_OFF(struct hold_opts, all), 0, 0 },
    { NULL },
};

/* An option given to a subcommand it means nothing to. */
static bool misplaced(const char *sub, const char *opt, bool given, bool fits)
{
    if (given && !fits) {
        fprintf(stderr, "vigil hold %s: unknown option '%s'\n", sub, opt);
        return true;
    }
    return false;
}

static int hold_run(struct cli_args *a)
{
    const struct hold_opts *ho = a->own;

    if (a->nwords == 0) {
        hold_usage(stderr);
        return CLI_USAGE;
    }
    const char *sub = a->words[0];
    bool is_add = strcmp(sub, "add") == 0;
    bool is_list = strcmp(sub, "list") == 0;
    bool is_release = strcmp(sub, "release") == 0;
    if (!is_add && !is_list && !is_release) {
        fprintf(stderr, "vigil hold: unknown subcommand '%s'\n", sub);
        hold_usage(stderr);
        return CLI_USAGE;
    }
    if (misplaced(sub, "--since", a->since_arg, is_add) ||
        misplaced(sub, "--until", a->until_arg, is_add) ||
        misplaced(sub, "--reason", ho->reason, !is_list) ||
        misplaced(sub, "--format", ho->format, is_list) ||
        misplaced(sub, "--all", ho->all, is_list)) {
        return CLI_USAGE;
    }
    int rest = a->nwords - 1;
    if (is_add) {
        return hold_add(a, ho->reason, rest); /* the rest is the FILTER */
    }
    if (rest > (is_release ? 1 : 0)) {
        fprintf(stderr, "vigil hold %s: unexpected argument '%s'\n", sub,
                a->words[is_release ? 2 : 1]);
        return CLI_USAGE;
    }
    if (is_list) {
        return hold_list(a, ho->all, ho->format ? ho->format : "table");
    }
    return hold_release(a, rest ? a->words[1] : NULL, ho->reason);
}

const struct cli_cmd cmd_hold = {
    .name = "hold",
    .synopsis = "add|list|release       legal holds: keep time ranges from retention",
    .takes = CLI_STORE | CLI_TIME,
    .opts = hold_opts,
    .own_size = sizeof(struct hold_opts),
    .usage = hold_usage,
    .run = hold_run,
};
