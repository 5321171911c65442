/* query/tail.c: `vigil tail [FILTER] [--since T] [--format F]`: follows the events vigild
 * stores, as it commits them, from the store files and catalog (read-only; no
 * connection to vigild), through query/follow.h.
 *
 * Without --since it starts at the committed horizon and prints what is committed
 * afterwards; with --since T it first prints the stored events from T on (event time,
 * in (ts, seq) order, as search does), up to the horizon read before that scan, then
 * follows from there: nothing is printed twice and nothing committed meanwhile is
 * missed. New events come in seq order (the order vigild stored them), whatever their
 * event time, each flushed at once. SIGINT or SIGTERM ends it cleanly (the JSON array
 * closed, exit 0); so does a closed stdout (a pager or `head` quit). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/cli.h"
#include "query/filter.h"
#include "query/follow.h"
#include "query/output.h"
#include "query/scan.h"

#define TAIL_POLL_MS 200

static void tail_usage(FILE *f)
{
    fprintf(f, "usage: vigil tail [FILTER...] [--since T] [--format table|json|ndjson|csv]\n"
               "                  [-c FILE | --store DIR]\n"
               "\n"
               "Follows the events vigild stores, as it commits them (read from the store, no\n"
               "connection to vigild needed), in the order they were stored. FILTER as for\n"
               "search. --since T: first the stored events from T on (event time order), then\n"
               "the new ones. Ctrl-C ends it.\n");
}

struct tail_ctx {
    const struct filter *f;
    struct out *o;
    int werr; /* a failed write: stop */
};

static int print_rec(struct tail_ctx *t, uint64_t seq, struct span bytes)
{
    struct rec r;

    if (rec_decode(&bytes, &r) < 0) {
        fprintf(stderr, "vigil tail: record seq %" PRIu64 " does not decode; skipped\n", seq);
        return 0;
    }
    if (t->f && !filter_match(t->f, &r)) {
        return 0;
    }
    int rc = out_event(t->o, &r);
    if (rc == VG_ECORRUPT) {
        fprintf(stderr,
                "vigil tail: event seq %" PRIu64 " has a malformed raw value; skipped (run "
                "vigil verify)\n",
                seq);
        return 0;
    }
    if (rc < 0) {
        t->werr = rc;
        return 1;
    }
    return 0;
}

static int on_new(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    (void)ts;
    return print_rec(arg, seq, bytes);
}

/* --since: the stored events from since on, committed by horizon, in (ts, seq) order. */
static int print_history(struct cli_args *a, struct tail_ctx *t, uint64_t horizon)
{
    struct scan_result res;
    struct errbuf eb;
    unsigned flags = cli_progress_enabled() ? SCAN_PROGRESS : 0;

    errbuf_clear(&eb);
    int rc = scan_run(cli_store_dir(a), a->since, INT64_MAX, t->f, 0, flags, &res, &eb);
    if (rc < 0) {
        scan_fail_print("vigil tail", &eb, res.failed_segment);
        scan_result_release(&res);
        return CLI_FAIL;
    }
    for (size_t i = 0; i < res.n && !t->werr && !follow_stopped(); i++) {
        if (res.hits[i].seq <= horizon) {
            (void)print_rec(t, res.hits[i].seq,
                            (struct span){ res.hits[i].bytes, res.hits[i].len });
        }
    }
    scan_result_release(&res);
    return CLI_OK;
}

static int tail_run(struct cli_args *a)
{
    struct filter *f = NULL;
    char *text = NULL;
    struct follow *fl = NULL;
    struct errbuf eb;
    uint64_t horizon;
    int rc;

    if (a->until_arg) {
        fprintf(stderr, "vigil tail: --until: tail follows until it is stopped (Ctrl-C); "
                        "vigil search --until reads a closed window\n");
        return CLI_USAGE;
    }
    if ((rc = cli_filter(a, false, &f, &text)) != CLI_OK) {
        return rc;
    }
    if ((rc = cli_load(a)) != CLI_OK) {
        goto out;
    }
    errbuf_clear(&eb);
    follow_catch_signals();
    if (follow_open(cli_store_dir(a), 0, &fl, &eb) < 0 || follow_committed(fl, &horizon, &eb) < 0) {
        fprintf(stderr, "vigil tail: %s\n", errbuf_msg(&eb));
        rc = CLI_FAIL;
        goto out;
    }
    follow_close(fl);
    fl = NULL;
    struct tail_ctx t = { f, out_new(a->format, stdout, cli_terminal_width()), 0 };
    rc = CLI_OK;
    if (a->since_arg) {
        rc = print_history(a, &t, horizon);
    }
    if (rc == CLI_OK && follow_open(cli_store_dir(a), horizon, &fl, &eb) < 0) {
        fprintf(stderr, "vigil tail: %s\n", errbuf_msg(&eb));
        rc = CLI_FAIL;
    }
    while (rc == CLI_OK && !t.werr && !follow_stopped()) {
        if (fflush(stdout) != 0) {
            t.werr = -errno;
            break;
        }
        int n = follow_poll(fl, on_new, &t, &eb);
        if (n < 0) {
            fprintf(stderr, "vigil tail: %s\n", errbuf_msg(&eb));
            rc = CLI_FAIL;
            break;
        }
        if (n == 0) {
            follow_wait(TAIL_POLL_MS);
        }
    }
    int frc = t.werr ? t.werr : out_finish(t.o);
    out_free(t.o);
    if (rc == CLI_OK) {
        rc = cli_output_done("vigil tail", frc);
    }
out:
    follow_close(fl);
    filter_free(f);
    free(text);
    return rc;
}

const struct cli_cmd cmd_tail = {
    .name = "tail",
    .synopsis = "[FILTER] [--since T] [--format table|json|ndjson|csv]  (follow new events)",
    .takes = CLI_STORE | CLI_TIME | CLI_FORMAT,
    .usage = tail_usage,
    .run = tail_run,
};
