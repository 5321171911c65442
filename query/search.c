/* query/search.c: `vigil search [FILTER] [--since T] [--until T] [--limit N]
 * [--format table|json|ndjson|csv] [--explain]`. Reads the store directly (read-only,
 * also while vigild writes). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/time.h"
#include "common/xalloc.h"
#include "query/cli.h"
#include "query/filter.h"
#include "query/output.h"
#include "query/scan.h"

static void search_usage(FILE *f)
{
    fprintf(
        f,
        "usage: vigil search [FILTER...] [--since T] [--until T] [--limit N]\n"
        "                    [--format table|json|ndjson|csv] [--explain] [-c FILE | --store DIR]\n"
        "\n"
        "FILTER: field=value, field!=value, field~substring, field>=N, severity>=warning,\n"
        "        src_ip=10.0.0.0/8, field=prefix*, bare words (full text), AND, OR, NOT, ( ).\n"
        "T: RFC 3339 (2024-05-01T13:00:00Z) or relative (15m, 2h, 7d).\n"
        "--limit: the earliest N matches (default 1000 on a terminal, all when piped).\n");
}

static int terminal_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        return ws.ws_col;
    }
    return 0;
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
    buf_release(&d);
}

int cmd_search(int argc, char **argv)
{
    struct cli_common cc = { 0 };
    const char *since_s = NULL;
    const char *until_s = NULL;
    const char *fmt_s = "table";
    uint64_t limit = isatty(STDOUT_FILENO) ? 1000 : 0;
    bool explain = false;
    char **words = xcalloc((size_t)argc + 1, sizeof(char *));
    int nwords = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = cli_common_arg(&cc, argc, argv, &i);
        if (c < 0) {
            free(words);
            return CLI_USAGE;
        }
        if (c > 0) {
            continue;
        }
        if ((strcmp(a, "--since") == 0 || strcmp(a, "--until") == 0 || strcmp(a, "--limit") == 0 ||
             strcmp(a, "--format") == 0) &&
            i + 1 >= argc) {
            fprintf(stderr, "vigil search: %s needs a value\n", a);
            free(words);
            return CLI_USAGE;
        }
        if (strcmp(a, "--since") == 0) {
            since_s = argv[++i];
        } else if (strcmp(a, "--until") == 0) {
            until_s = argv[++i];
        } else if (strcmp(a, "--format") == 0) {
            fmt_s = argv[++i];
        } else if (strcmp(a, "--limit") == 0) {
            if (parse_u64(span_str(argv[++i]), UINT32_MAX, &limit) < 0) {
                fprintf(stderr, "vigil search: --limit: expected a number, got '%s'\n", argv[i]);
                free(words);
                return CLI_USAGE;
            }
        } else if (strcmp(a, "--explain") == 0) {
            explain = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            search_usage(stdout);
            free(words);
            return CLI_OK;
        } else if (strncmp(a, "--", 2) == 0 && a[2] != 0) {
            fprintf(stderr, "vigil search: unknown option '%s'\n", a);
            search_usage(stderr);
            free(words);
            return CLI_USAGE;
        } else {
            words[nwords++] = argv[i];
        }
    }

    int64_t now = vg_now_ns();
    int64_t since = INT64_MIN;
    int64_t until = INT64_MAX;
    if (since_s && vg_time_parse_arg(since_s, now, &since) < 0) {
        fprintf(stderr, "vigil search: --since: '%s' is not a time (RFC 3339 or 15m, 2h, 7d)\n",
                since_s);
        free(words);
        return CLI_USAGE;
    }
    if (until_s && vg_time_parse_arg(until_s, now, &until) < 0) {
        fprintf(stderr, "vigil search: --until: '%s' is not a time (RFC 3339 or 15m, 2h, 7d)\n",
                until_s);
        free(words);
        return CLI_USAGE;
    }
    enum out_format fmt;
    if (out_format_parse(fmt_s, &fmt) < 0) {
        fprintf(stderr, "vigil search: --format: expected table, json, ndjson or csv, got '%s'\n",
                fmt_s);
        free(words);
        return CLI_USAGE;
    }

    char *text = filter_join_args(nwords, words);
    free(words);
    struct filter *f = NULL;
    struct errbuf eb;
    int col = 0;
    errbuf_clear(&eb);
    if (filter_parse(text, now, &f, &col, &eb) < 0) {
        fprintf(stderr, "vigil search: %s\n", errbuf_msg(&eb));
        filter_error_caret(text, col, stderr);
        free(text);
        return CLI_USAGE;
    }
    int64_t fs, fu;
    filter_time_bounds(f, &fs, &fu);
    if (fs > since) {
        since = fs;
    }
    if (fu < until) {
        until = fu;
    }
    if ((rc = cli_common_load(&cc, "search")) != CLI_OK) {
        filter_free(f);
        free(text);
        return rc;
    }

    struct scan_result res;
    rc = scan_run(cli_store_dir(&cc), since, until, f, limit, cli_progress_enabled(), &res, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil search: %s\n", errbuf_msg(&eb));
        scan_result_release(&res);
        filter_free(f);
        free(text);
        cli_common_release(&cc);
        return CLI_FAIL;
    }
    struct out *o = out_new(fmt, stdout, terminal_width());
    for (size_t i = 0; i < res.n; i++) {
        struct span cur = { res.hits[i].bytes, res.hits[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) < 0) {
            continue;
        }
        int orc = out_event(o, &r);
        if (orc == VG_ECORRUPT) {
            fprintf(stderr,
                    "vigil search: event seq %" PRIu64 " has a malformed raw value; "
                    "skipped (run vigil verify)\n",
                    res.hits[i].seq);
            continue;
        }
        if (orc < 0) {
            break; /* stdout closed (a pager quit): nothing more to show */
        }
    }
    if (out_finish(o) < 0) {
        rc = -EPIPE;
    }
    out_free(o);
    if (limit && res.matched > res.n) {
        fprintf(stderr, "vigil search: showing the earliest %zu of %" PRIu64 " matches (--limit)\n",
                res.n, res.matched);
    }
    if (explain) {
        print_explain(f, since, until, &res);
    }
    scan_result_release(&res);
    filter_free(f);
    free(text);
    cli_common_release(&cc);
    return CLI_OK;
}
