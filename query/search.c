/* query/search.c: `vigil search [FILTER] [--since T] [--until T] [--limit N]
 * [--format table|json|ndjson|csv] [--explain]`. Reads the store directly (read-only,
 * also while vigild writes). */
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
#include "query/output.h"
#include "query/scan.h"

static void search_usage(FILE *f)
{
    fprintf(f,
            "usage: vigil search [FILTER...] [--since T] [--until T] [--limit N] [--reverse]\n"
            "                    [--format table|json|ndjson|csv] [--fields F1,F2,...]\n"
            "                    [--explain] [--skip-damaged] [-c FILE | --store DIR]\n"
            "\n"
            "FILTER: field=value, field!=value, field~substring, field>=N, severity>=warning,\n"
            "        src_ip=10.0.0.0/8, field=prefix*, seq=N..M, bare words (full text), AND,\n"
            "        OR, NOT, ( ).\n"
            "T: RFC 3339 (2024-05-01T13:00:00Z), relative (15m, 2h, 7d) or a UTC clock time\n"
            "   (14:00, 14:00:30: on the other bound's date, else today).\n"
            "--limit: the earliest N matches (default 1000 on a terminal, all when piped).\n"
            "--reverse: newest first (with --limit, the latest N).\n"
            "--fields: the table's and CSV's columns, the keys JSON keeps: normalized fields\n"
            "        (ts, pod, user, src_ip, image, cmdline, cve, container_name, ...) and\n"
            "        raw.<path> into the original event.\n"
            "--skip-damaged: leave out segments that cannot be read (said on stderr) instead of\n"
            "        failing on the first one.\n"
            "Ctrl-C stops the scan and prints what it found so far (exit 130).\n");
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* --explain (DESIGN.md "Query CLI"): what the scan did, on stderr. */
static void print_explain(const struct filter *f, int64_t since, int64_t until,
                          const struct scan_result *res)
{
    const struct store_scan_stats *s = &res->stats;
    struct buf d;
    char t0[40] = "-inf";
    char t1[40] = "+inf";

    buf_init(&d, 1 << 16);
    if (filter_describe(f, &d) < 0) {
        buf_reset(&d);
    }
    if (since != INT64_MIN) {
        vg_time_format(since, 9, t0, sizeof(t0));
    }
    if (until != INT64_MAX) {
        vg_time_format(until, 9, t1, sizeof(t1));
    }
    fprintf(stderr, "explain: filter %s\n", buf_cstr(&d));
    fprintf(stderr, "explain: window [%s, %s)\n", t0, t1);
    if (res->need_values + res->need_texts > 0) {
        fprintf(stderr, "explain: index: every match needs %zu field value(s), %zu text(s)\n",
                res->need_values, res->need_texts);
    } else {
        fprintf(stderr, "explain: index: nothing every match needs: blocks are chosen by time\n");
    }
    fprintf(stderr,
            "explain: segments %" PRIu64 "; blocks read %" PRIu64 ", skipped by time %" PRIu64
            ", skipped by index %" PRIu64 "\n",
            s->segments, s->blocks_read, s->blocks_skipped, s->blocks_skipped_index);
    fprintf(stderr, "explain: bytes read %" PRIu64 ", bytes decompressed %" PRIu64 "\n",
            s->bytes_read, s->bytes_decompressed);
    fprintf(stderr,
            "explain: records unpacked %" PRIu64 ", passed over %" PRIu64 " (outside the window or"
            " without what every match needs), filtered %" PRIu64 ", matched %" PRIu64
            ", shown %zu\n",
            s->records_decoded, s->records_skipped, s->records, res->matched, res->n);
    fprintf(stderr,
            "explain: time catalog %.1f ms, read %.1f ms, index %.1f ms, checksum %.1f ms, "
            "decompress %.1f ms, unpack %.1f ms, filter %.1f ms, sort %.1f ms (CPU time, all "
            "threads); total %.3f s on %u thread%s\n",
            ms(s->ns_catalog), ms(s->ns_io), ms(s->ns_index), ms(s->ns_check), ms(s->ns_decompress),
            ms(s->ns_unpack), ms(s->ns_deliver), ms(res->ns_sort), res->seconds, res->threads,
            res->threads == 1 ? "" : "s");
    scan_skips_explain(&res->skipped);
    buf_release(&d);
}

struct search_opts {
    bool explain;
    bool skip_damaged;
    bool reverse;
    const char *fields;
};

static const struct cli_opt search_opts[] = {
    { "--explain", NULL, CLI_FLAG, CLI_OFF(struct search_opts, explain), 0, 0 },
    { "--reverse", NULL, CLI_FLAG, CLI_OFF(struct search_opts, reverse), 0, 0 },
    { "--fields", NULL, CLI_STR, CLI_OFF(struct search_opts, fields), 0, 0 },
    { "--skip-damaged", NULL, CLI_FLAG, CLI_OFF(struct search_opts, skip_damaged), 0, 0 },
    { NULL },
};

static int search_run(struct cli_args *a)
{
    const struct search_opts *so = a->own;
    /* The earliest 1,000 on a terminal, everything when piped (README "Searching"). */
    uint64_t limit = a->has_limit ? a->limit : isatty(STDOUT_FILENO) ? 1000 : 0;
    struct filter *f = NULL;
    char *text = NULL;
    struct errbuf eb;
    struct out_fields fields = { 0 };
    int rc;

    errbuf_clear(&eb);
    if (so->fields && out_fields_parse(so->fields, &fields, &eb) < 0) {
        fprintf(stderr, "vigil search: --fields: %s\n", errbuf_msg(&eb));
        return CLI_USAGE;
    }
    if ((rc = cli_filter(a, true, &f, &text)) != CLI_OK) {
        return rc;
    }
    if ((rc = cli_load(a)) != CLI_OK) {
        filter_free(f);
        free(text);
        return rc;
    }
    errbuf_clear(&eb);
    struct scan_result res;
    unsigned flags = (cli_progress_enabled() ? SCAN_PROGRESS : 0) |
                     (so->skip_damaged ? SCAN_SKIP_DAMAGED : 0) | SCAN_INTERRUPTIBLE |
                     (so->reverse ? SCAN_REVERSE : 0);
    rc = scan_run(cli_store_dir(a), a->since, a->until, f, limit, flags, &res, &eb);
    scan_skips_print("vigil search", &res.skipped);
    if (rc < 0) {
        scan_fail_print("vigil search", &eb, res.failed_segment);
        scan_result_release(&res);
        filter_free(f);
        free(text);
        return CLI_FAIL;
    }
    struct out *o = out_new(a->format, stdout, cli_terminal_width());
    out_set_fields(o, so->fields ? &fields : NULL);
    /* On a terminal the table's WHERE and WHO take what the rows need (out_measure). */
    for (size_t i = 0; a->format == OUT_TABLE && cli_terminal_width() > 0 && i < res.n; i++) {
        struct span cur = { res.hits[i].bytes, res.hits[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) == 0) {
            out_measure(o, &r);
        }
    }
    int orc = 0;
    for (size_t i = 0; i < res.n; i++) {
        struct span cur = { res.hits[i].bytes, res.hits[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) < 0) {
            continue;
        }
        orc = out_event(o, &r);
        if (orc == VG_ECORRUPT) {
            fprintf(stderr,
                    "vigil search: event seq %" PRIu64 " has a malformed raw value; "
                    "skipped (run vigil verify)\n",
                    res.hits[i].seq);
            orc = 0;
            continue;
        }
        if (orc == VG_ELIMIT) {
            fprintf(stderr, "vigil search: event seq %" PRIu64 " is too large to print; skipped\n",
                    res.hits[i].seq);
            orc = 0;
            continue;
        }
        if (orc < 0) {
            break; /* stdout closed (a pager quit): nothing more to show */
        }
    }
    if (orc >= 0) {
        orc = out_finish(o);
    }
    out_free(o);
    rc = cli_output_done("vigil search", orc);
    if (rc == CLI_OK && limit && res.matched > res.n) {
        fprintf(stderr, "vigil search: showing the %s %zu of %" PRIu64 " matches (--limit)\n",
                so->reverse ? "latest" : "earliest", res.n, res.matched);
    }
    if (res.interrupted) {
        fprintf(stderr,
                "vigil search: interrupted: %" PRIu64 " matches in the %" PRIu64 " of %" PRIu64
                " blocks scanned before Ctrl-C\n",
                res.matched,
                res.stats.blocks_read + res.stats.blocks_skipped + res.stats.blocks_skipped_index,
                res.blocks_total);
        rc = rc == CLI_OK ? SCAN_EXIT_INTERRUPTED : rc;
    }
    if (so->explain) {
        print_explain(f, a->since, a->until, &res);
    }
    scan_result_release(&res);
    filter_free(f);
    free(text);
    return rc;
}

const struct cli_cmd cmd_search = {
    .name = "search",
    .synopsis = "[FILTER] [--since T] [--until T] [--limit N] [--reverse] [--format FMT]",
    .takes = CLI_STORE | CLI_TIME | CLI_FORMAT | CLI_LIMIT,
    .opts = search_opts,
    .own_size = sizeof(struct search_opts),
    .usage = search_usage,
    .run = search_run,
};
