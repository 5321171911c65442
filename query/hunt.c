/* query/hunt.c: `vigil hunt RULE_FILE|DIR... [--since T] [--until T] [--allow-invalid]
 * [--format table|json|ndjson|csv] [--buffer-mb N] [-c FILE | --store DIR]`: runs Sigma
 * rules over the store with the engine vigild runs live (DESIGN.md "Correlation rules":
 * the same answers live and over history).
 *
 * Same answers as live (rules/TIME.md "Hunt"): vigild evaluates every durable record in
 * seq order, except the alerts it made itself (source=rule; collector/rules_live.c), and
 * the engine is deterministic in the order it is fed, its clocks being the records'
 * event and received times. For a window [since, until) hunt evaluates the records
 * dated from since - H (H: rules_engine_horizon, what a match, an incident's opening and
 * its new events depend on) to until + H, and those dated later whose ts lies more than
 * rules.max_future past their receipt before until + H (live evaluated them at their
 * receipt), then moves the collector clock to now as vigild's timer would have; it
 * prints the alert records dated in the window. Those of incidents opened before since
 * are marked "partial": their counts start at the horizon. Run it with the daemon's
 * config (-c) so its rules settings are the same.
 *
 * The store is scanned in time order, partition by partition, and a block groups its
 * records by source (segment.md), so the scan is not in seq order. Hunt therefore sorts
 * before it evaluates: records are buffered with an index up to --buffer-mb and sorted by
 * seq; a store larger than that is sorted in chunks, each written as a sorted run to an
 * unlinked temporary file, and the runs are merged with a heap (memory: the buffer; when
 * merging, read windows that share it).
 *
 * Output: each alert record (rules_alert_to_rec, the fields of a kind=alert event in the
 * store) through query/output.h on stdout; rules that did not load, and a summary line,
 * on stderr; progress on a terminal only. Exit 0 whether or not alerts fired; 1 when the
 * store cannot be read, no rule loaded, or a rule did not load without --allow-invalid;
 * 2 for usage errors; 130 when Ctrl-C stopped it (the alerts printed until then stand). Runs on the
 * CLI's only thread; blocks on disk. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/time.h"
#include "common/xalloc.h"
#include "query/cli.h"
#include "query/output.h"
#include "query/scan.h"
#include "rules/rules.h"
#include "store/store.h"

#define HUNT_HDR            12          /* per record in the spill: seq (8), length (4) */
#define HUNT_MAX_REC        (64u << 20) /* store_append's limit */
#define HUNT_WINDOW_MIN     (16u << 10) /* bytes a run reads from the file at once */
#define HUNT_WINDOW_MAX     (1u << 20)
#define HUNT_DEFAULT_BUF_MB 64
#define HUNT_PROGRESS_NS    200000000LL

static void hunt_usage(FILE *f)
{
    fprintf(f,
            "usage: vigil hunt RULE_FILE|DIR... [--since T] [--until T] [--allow-invalid]\n"
            "                  [--format table|json|ndjson|csv] [--buffer-mb N]\n"
            "                  [--map FILE] [-c FILE | --store DIR]\n"
            "\n"
            "Runs Sigma rules (and correlations) over the stored events in the order vigild\n"
            "evaluated them live (seq), and prints the alert records live gave for the\n"
            "window (rules/TIME.md). Without a rule path, the config's rules.paths. With\n"
            "-c, the config's rules settings (resolve_after, lateness...). T: RFC 3339 or\n"
            "relative (15m, 2h, 7d).\n"
            "  --allow-invalid  hunt with the rules that loaded when some did not\n"
            "  --buffer-mb N    memory for ordering the events (default %d); beyond it they\n"
            "                   are sorted in chunks through a temporary file in $TMPDIR\n"
            "  --map FILE       a logsource/field mapping instead of the built-in one\n",
            HUNT_DEFAULT_BUF_MB);
}

/* ---- the records, in seq order ---- */

/* A chunk's record: where it is in the chunk buffer. */
struct ent {
    uint64_t seq;
    size_t off;
};

struct run {
    uint64_t off, end; /* file offsets of its first record and past its last */
};

/* Every record to evaluate, each as [seq (8), length (4), bytes]. The current chunk is in
 * memory with an index; a chunk that outgrows the budget is sorted by seq and written to
 * the file as one run. Memory: the budget, 16 bytes of index per buffered record, and a
 * read window per run when merging. */
struct spill {
    struct buf mem;
    struct ent *idx;
    size_t nidx, capidx;
    size_t budget;
    FILE *f; /* NULL until the first chunk is written */
    uint64_t flen;
    struct run *runs;
    size_t nruns, capruns;
    uint64_t nrecs;
    uint64_t skipped; /* alerts (source=rule): never evaluated, as live */
};

static void spill_init(struct spill *sp, size_t budget)
{
    memset(sp, 0, sizeof(*sp));
    sp->budget = budget;
    /* room for one largest record past the budget: a record is never split */
    buf_init(&sp->mem, budget + HUNT_MAX_REC + HUNT_HDR);
}

static void spill_release(struct spill *sp)
{
    buf_release(&sp->mem);
    if (sp->f) {
        fclose(sp->f);
    }
    free(sp->idx);
    free(sp->runs);
    memset(sp, 0, sizeof(*sp));
}

static int ent_cmp(const void *a, const void *b)
{
    const struct ent *x = a;
    const struct ent *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int spill_open_file(struct spill *sp, struct errbuf *eb)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX];
    int fd;

    if (!dir || !dir[0]) {
        dir = "/tmp";
    }
    snprintf(path, sizeof(path), "%s/vigil-hunt-XXXXXX", dir);
    if ((fd = mkstemp(path)) < 0) {
        int rc = -errno;
        errbuf_set(eb, "cannot make a temporary file in '%s': %s", dir, vg_strerror(rc));
        return rc;
    }
    unlink(path); /* gone when closed, whatever happens */
    if (!(sp->f = fdopen(fd, "w+b"))) {
        int rc = -errno;
        close(fd);
        errbuf_set(eb, "cannot open the temporary file: %s", vg_strerror(rc));
        return rc;
    }
    return 0;
}

/* Sorts the buffered chunk by seq and appends it to the file as one run. */
static int spill_chunk(struct spill *sp, struct errbuf *eb)
{
    int rc;

    if (sp->nidx == 0) {
        return 0;
    }
    if (!sp->f && (rc = spill_open_file(sp, eb)) < 0) {
        return rc;
    }
    qsort(sp->idx, sp->nidx, sizeof(*sp->idx), ent_cmp);
    uint64_t start = sp->flen;
    for (size_t i = 0; i < sp->nidx; i++) {
        uint32_t len;
        memcpy(&len, sp->mem.data + sp->idx[i].off + 8, 4);
        size_t n = HUNT_HDR + (size_t)len;
        if (fwrite(sp->mem.data + sp->idx[i].off, 1, n, sp->f) != n) {
            rc = errno ? -errno : -EIO;
            errbuf_set(eb, "cannot write the temporary file: %s", vg_strerror(rc));
            return rc;
        }
        sp->flen += n;
    }
    if (sp->nruns == sp->capruns) {
        sp->capruns = sp->capruns ? 2 * sp->capruns : 16;
        sp->runs = xrealloc(sp->runs, sp->capruns * sizeof(*sp->runs));
    }
    sp->runs[sp->nruns++] = (struct run){ start, sp->flen };
    buf_reset(&sp->mem);
    sp->nidx = 0;
    return 0;
}

static int spill_add(struct spill *sp, uint64_t seq, struct span rec, struct errbuf *eb)
{
    uint8_t hdr[HUNT_HDR];
    uint32_t len = (uint32_t)rec.n;
    int rc;

    if (rec.n > HUNT_MAX_REC) {
        errbuf_set(eb, "record seq %" PRIu64 " is larger than %u bytes", seq, HUNT_MAX_REC);
        return VG_ECORRUPT;
    }
    if (sp->mem.len > 0 && sp->mem.len + HUNT_HDR + rec.n > sp->budget &&
        (rc = spill_chunk(sp, eb)) < 0) {
        return rc;
    }
    if (sp->nidx == sp->capidx) {
        sp->capidx = sp->capidx ? 2 * sp->capidx : 1024;
        sp->idx = xrealloc(sp->idx, sp->capidx * sizeof(*sp->idx));
    }
    sp->idx[sp->nidx++] = (struct ent){ seq, sp->mem.len };
    memcpy(hdr, &seq, 8);
    memcpy(hdr + 8, &len, 4);
    if ((rc = buf_append(&sp->mem, hdr, sizeof(hdr))) < 0 ||
        (rc = buf_append(&sp->mem, rec.p, rec.n)) < 0) {
        errbuf_set(eb, "out of hunt buffer");
        return rc;
    }
    sp->nrecs++;
    return 0;
}

/* A cursor over one run of the file, read through a window. */
struct cursor {
    uint64_t off, end;
    uint64_t seq;
    struct span rec;
    struct buf win;
    uint64_t win_off; /* file offset of win.data[0] */
    size_t win_bytes; /* bytes read at once */
};

/* Makes [off, off + n) readable: returns a pointer to it, or NULL with *rc set. */
static const uint8_t *cursor_at(const struct spill *sp, struct cursor *c, uint64_t n, int *rc)
{
    if (c->off >= c->win_off && c->off + n <= c->win_off + c->win.len) {
        return c->win.data + (c->off - c->win_off);
    }
    uint64_t want = c->end - c->off;
    if (want > c->win_bytes) {
        want = n > c->win_bytes ? n : c->win_bytes;
    }
    buf_reset(&c->win);
    if ((*rc = buf_reserve(&c->win, (size_t)want)) < 0) {
        return NULL;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t k =
            pread(fileno(sp->f), c->win.data + got, (size_t)want - got, (off_t)(c->off + got));
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            *rc = k < 0 ? -errno : -EIO;
            return NULL;
        }
        got += (size_t)k;
    }
    c->win.len = got;
    c->win_off = c->off;
    return c->win.data;
}

/* Loads the record at c->off. Returns 1, 0 at the end of the run, or a negative code. */
static int cursor_load(const struct spill *sp, struct cursor *c)
{
    uint32_t len;
    int rc = 0;
    const uint8_t *p;

    if (c->off >= c->end) {
        return 0;
    }
    if (!(p = cursor_at(sp, c, HUNT_HDR, &rc))) {
        return rc;
    }
    memcpy(&c->seq, p, 8);
    memcpy(&len, p + 8, 4);
    if (!(p = cursor_at(sp, c, (uint64_t)HUNT_HDR + len, &rc))) {
        return rc;
    }
    c->rec = (struct span){ p + HUNT_HDR, len };
    return 1;
}

static void heap_down(struct cursor **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1;
        size_t m = i;
        if (l < n && h[l]->seq < h[m]->seq) {
            m = l;
        }
        if (l + 1 < n && h[l + 1]->seq < h[m]->seq) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        struct cursor *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* ---- the hunt ---- */

struct hunt {
    const struct ruleset *rs;
    struct rules_engine *eng;
    struct rules_limits lim;
    struct out *o;
    struct buf scratch;
    struct spill sp;
    struct errbuf *eb;
    int64_t since, until; /* the window printed */
    int64_t keep_until;   /* until + the horizon: later records only if dated past their
                           * receipt (evaluated live at it) */
    uint64_t outside;     /* records read and not evaluated (after keep_until) */
    bool progress;
    int64_t last_progress;
    uint64_t seen;
    uint64_t evaluated;
    uint64_t alerts;
    int out_rc; /* first output failure: stop feeding */
    int bad;    /* a record that does not decode */
};

static void progress(struct hunt *h, const char *what, uint64_t n, uint64_t of)
{
    int64_t now = vg_mono_ns();
    if (!h->progress || now - h->last_progress < HUNT_PROGRESS_NS) {
        return;
    }
    h->last_progress = now;
    if (of) {
        fprintf(stderr, "\rhunt: %s %" PRIu64 " of %" PRIu64 " events, %" PRIu64 " alerts   ", what,
                n, of, h->alerts);
    } else {
        fprintf(stderr, "\rhunt: %s %" PRIu64 " events   ", what, n);
    }
    fflush(stderr);
}

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct hunt *h = arg;
    struct rec r;

    if (scan_interrupted()) {
        return SCAN_STOP; /* Ctrl-C: what was read so far is not evaluated */
    }
    if ((h->bad = scan_rec_decode(bytes, seq, &r, h->eb)) < 0) {
        return h->bad;
    }
    if ((++h->seen & 0xffff) == 0) {
        progress(h, "reading", h->seen, 0);
    }
    /* Alerts are not evaluated again: a rule never fires on its own output (live). */
    if (span_eq_str(r.str[VG_F_SOURCE], "rule")) {
        h->sp.skipped++;
        return 0;
    }
    /* After the window and its horizon only what live evaluated inside it: events dated
     * past their receipt (rules/TIME.md) that were received before keep_until. */
    if (ts >= h->keep_until && !(r.has_received && r.received < h->keep_until && r.has_ts &&
                                 r.ts > r.received + h->lim.max_future_ns)) {
        h->outside++;
        return 0;
    }
    int rc = spill_add(&h->sp, seq, bytes, h->eb);
    if (rc < 0) {
        h->bad = rc;
    }
    return rc;
}

/* Prints the alert records dated in the window; those of incidents opened before it are
 * "partial" (their counts start at the horizon). */
static int on_alert(const struct rules_alert *a, void *arg)
{
    struct hunt *h = arg;
    struct rec r;
    struct rules_alert b;

    if (a->ts < h->since || a->ts >= h->until) {
        return 0;
    }
    h->alerts++;
    if (h->out_rc < 0) {
        return 0;
    }
    b = *a;
    b.partial = a->state != RULES_FIRING && a->opened < h->since;
    buf_reset(&h->scratch);
    if (rules_alert_to_rec(h->rs, &b, &r, &h->scratch) < 0) {
        fprintf(stderr, "vigil hunt: an alert of rule '%s' is too large to print\n", a->title);
        return 0;
    }
    int rc = out_event(h->o, &r);
    if (rc < 0) {
        h->out_rc = rc; /* stdout closed (a pager quit): nothing more to show */
    }
    return 0;
}

static void eval_one(struct hunt *h, struct span bytes)
{
    struct span cur = bytes;
    struct rec r;

    if (rec_decode(&cur, &r) < 0) {
        return; /* decoded once already while reading */
    }
    (void)rules_engine_eval(h->eng, &r, on_alert, h);
    h->evaluated++;
    if ((h->evaluated & 0xffff) == 0) {
        progress(h, "evaluated", h->evaluated, h->sp.nrecs);
    }
}

/* Replays the records in seq order through the engine: the buffered chunk sorted in
 * place when nothing was spilled, else a merge of the file's sorted runs. */
static int replay(struct hunt *h)
{
    struct spill *sp = &h->sp;
    uint64_t last = 0;
    int rc = 0;

    if (!sp->f) {
        qsort(sp->idx, sp->nidx, sizeof(*sp->idx), ent_cmp);
        for (size_t i = 0; i < sp->nidx && h->out_rc == 0 && !scan_interrupted(); i++) {
            const uint8_t *p = sp->mem.data + sp->idx[i].off;
            uint32_t len;
            memcpy(&len, p + 8, 4);
            assert(i == 0 || sp->idx[i].seq > sp->idx[i - 1].seq);
            eval_one(h, (struct span){ p + HUNT_HDR, len });
        }
        return 0;
    }
    if ((rc = spill_chunk(sp, h->eb)) < 0) {
        return rc;
    }
    if (fflush(sp->f) != 0) {
        rc = errno ? -errno : -EIO;
        errbuf_set(h->eb, "cannot write the temporary file: %s", vg_strerror(rc));
        return rc;
    }
    buf_release(&sp->mem); /* the windows take its place */
    struct cursor *cs = xcalloc(sp->nruns + 1, sizeof(*cs));
    struct cursor **heap = xcalloc(sp->nruns + 1, sizeof(*heap));
    size_t per = sp->budget / sp->nruns; /* the windows share the budget */
    size_t n = 0;
    for (size_t i = 0; i < sp->nruns; i++) {
        cs[i].off = sp->runs[i].off;
        cs[i].end = sp->runs[i].end;
        cs[i].win_bytes = per < HUNT_WINDOW_MIN   ? HUNT_WINDOW_MIN
                          : per > HUNT_WINDOW_MAX ? HUNT_WINDOW_MAX
                                                  : per;
        buf_init(&cs[i].win, HUNT_MAX_REC + HUNT_HDR);
    }
    for (size_t i = 0; i < sp->nruns && rc == 0; i++) {
        int k = cursor_load(sp, &cs[i]);
        if (k < 0) {
            rc = k;
        } else if (k > 0) {
            heap[n++] = &cs[i];
        }
    }
    for (size_t i = n / 2; i-- > 0;) {
        heap_down(heap, n, i);
    }
    while (rc == 0 && n > 0 && h->out_rc == 0 && !scan_interrupted()) {
        struct cursor *c = heap[0];
        assert(last == 0 || c->seq > last); /* runs are sorted; seqs are unique */
        last = c->seq;
        eval_one(h, c->rec);
        c->off += HUNT_HDR + c->rec.n;
        int k = cursor_load(sp, c);
        if (k < 0) {
            rc = k;
        } else if (k == 0) {
            heap[0] = heap[--n];
        }
        heap_down(heap, n, 0);
    }
    (void)last; /* read by the assert only */
    if (rc < 0) {
        errbuf_set(h->eb, "cannot read the temporary file: %s", vg_strerror(rc));
    }
    for (size_t i = 0; i < sp->nruns; i++) {
        buf_release(&cs[i].win);
    }
    free(heap);
    free(cs);
    return rc;
}

static void print_not_loaded(const struct rules_report *rep)
{
    for (size_t i = 0; i < rep->n; i++) {
        const struct rules_report_item *it = &rep->items[i];
        if (it->status == RULES_LOADED) {
            continue;
        }
        fprintf(stderr, "%-11s %s:%u", it->status == RULES_UNSUPPORTED ? "UNSUPPORTED" : "INVALID",
                it->file, it->line);
        if (it->title) {
            fprintf(stderr, "  \"%s\"", it->title);
        }
        if (it->id) {
            fprintf(stderr, " (%s)", it->id);
        }
        if (it->correlation) {
            fputs(" [correlation]", stderr);
        }
        fputc('\n', stderr);
        if (it->reason) {
            fprintf(stderr, "            %s\n", it->reason);
        }
    }
}

struct hunt_opts {
    const char *map_path;
    uint64_t buf_mb;
    bool allow_invalid;
};

static void hunt_defaults(void *own)
{
    ((struct hunt_opts *)own)->buf_mb = HUNT_DEFAULT_BUF_MB;
}

static const struct cli_opt hunt_opts[] = {
    { "--map", NULL, CLI_STR, CLI_OFF(struct hunt_opts, map_path), 0, 0 },
    { "--buffer-mb", NULL, CLI_U64, CLI_OFF(struct hunt_opts, buf_mb), 1, 1u << 20 },
    { "--allow-invalid", NULL, CLI_FLAG, CLI_OFF(struct hunt_opts, allow_invalid), 0, 0 },
    { NULL },
};

static int hunt_run(struct cli_args *a)
{
    const struct hunt_opts *ho = a->own;
    struct rules_options opt = { .map_path = ho->map_path };
    struct rules_report rep;
    struct ruleset *rs = NULL;
    struct errbuf eb;
    int64_t since = a->since;
    int64_t until = a->until;
    uint64_t buf_mb = ho->buf_mb;
    bool allow_invalid = ho->allow_invalid;
    enum out_format fmt = a->format;
    const char **paths = xcalloc((size_t)a->nwords + 1, sizeof(*paths));
    size_t npaths = 0;
    int result = CLI_OK;
    int rc;

    for (int i = 0; i < a->nwords; i++) {
        if (a->words[i][0] == '-' && a->words[i][1] != 0) {
            fprintf(stderr, "vigil hunt: unknown option '%s'\n", a->words[i]);
            hunt_usage(stderr);
            free(paths);
            return CLI_USAGE;
        }
        paths[npaths++] = a->words[i];
    }
    if ((rc = cli_load(a)) != CLI_OK) {
        free(paths);
        return rc;
    }
    if (npaths == 0 && a->cfg->rules.npaths > 0) {
        npaths = a->cfg->rules.npaths;
        paths = xrealloc(paths, (npaths + 1) * sizeof(*paths));
        for (size_t i = 0; i < npaths; i++) {
            paths[i] = a->cfg->rules.paths[i];
        }
    }
    if (npaths == 0) {
        fprintf(stderr, "vigil hunt: no rule paths given and none in the config (rules.paths)\n");
        hunt_usage(stderr);
        free(paths);
        return CLI_USAGE;
    }

    errbuf_clear(&eb);
    rules_report_init(&rep);
    if ((rc = rules_load(paths, npaths, &opt, &rs, &rep, &eb)) < 0) {
        fprintf(stderr, "vigil hunt: %s\n", errbuf_msg(&eb));
        rules_report_release(&rep);
        free(paths);
        return CLI_USAGE;
    }
    print_not_loaded(&rep);
    if (rep.unsupported + rep.invalid > 0 && !allow_invalid && ruleset_count(rs) > 0) {
        /* a hunt that silently leaves rules out answers a different question */
        fprintf(stderr,
                "vigil hunt: %zu rule(s) did not load (%zu unsupported, %zu invalid, listed "
                "above): fix them, or hunt with the %zu that loaded with --allow-invalid\n",
                rep.unsupported + rep.invalid, rep.unsupported, rep.invalid, ruleset_count(rs));
        ruleset_free(rs);
        rules_report_release(&rep);
        free(paths);
        return CLI_FAIL;
    }
    if (ruleset_count(rs) == 0) {
        fprintf(stderr, "vigil hunt: no rule loaded (%zu unsupported, %zu invalid)\n",
                rep.unsupported, rep.invalid);
        ruleset_free(rs);
        rules_report_release(&rep);
        free(paths);
        return CLI_FAIL;
    }

    struct hunt h = {
        .rs = rs,
        .eb = &eb,
        .since = since,
        .until = until,
        .progress = cli_progress_enabled(),
    };
    int64_t t0 = vg_mono_ns();
    /* the daemon's settings (-c), so its clocks and incidents are live's */
    rules_limits_default(&h.lim);
    h.lim.resolve_after_ns = a->cfg->rules.resolve_after_ns;
    h.lim.update_every_ns = a->cfg->rules.update_every_ns;
    h.lim.lateness_ns = a->cfg->rules.lateness_ns;
    h.lim.max_future_ns = a->cfg->rules.max_future_ns;
    buf_init(&h.scratch, 1u << 20);
    spill_init(&h.sp, (size_t)buf_mb << 20);
    h.o = out_new(fmt, stdout, cli_terminal_width());

    struct store_reader *rd = NULL;
    if ((rc = rules_engine_new(rs, &h.lim, &h.eng)) < 0) {
        errbuf_set(&eb, "cannot make the engine: %s", vg_strerror(rc));
    }
    /* rules/TIME.md "Hunt": from the horizon before the window to the end of the store
     * (after until + horizon only events dated past their receipt are kept: on_rec) */
    int64_t horizon = h.eng ? rules_engine_horizon(h.eng) : 0;
    h.keep_until = until == INT64_MAX || until > INT64_MAX - horizon ? INT64_MAX : until + horizon;
    int64_t read_since =
        since == INT64_MIN || since < INT64_MIN + horizon ? INT64_MIN : since - horizon;
    scan_interrupt_begin(); /* Ctrl-C: stop reading or evaluating, print what fired */
    if (rc == 0 && (rc = store_reader_open(cli_store_dir(a), &rd, &eb)) == 0) {
        rc = store_scan(rd, read_since, INT64_MAX, on_rec, &h, NULL);
        if (rc < 0 && !h.bad) {
            errbuf_set(&eb, "%s", store_reader_error(rd));
        }
        rc = rc == SCAN_STOP ? 0 : rc;
        store_reader_close(rd);
    }
    bool interrupted = scan_interrupted();
    if (rc == 0 && !interrupted && (rc = replay(&h)) == 0 && h.out_rc == 0 &&
        !(interrupted = scan_interrupted())) {
        /* what vigild's timer did since: the collector clock reaches now */
        (void)rules_engine_advance(h.eng, vg_now_ns(), on_alert, &h);
    }
    if (h.progress && h.seen >= 0x10000) {
        fprintf(stderr, "\r%70s\r", "");
    }
    if (rc < 0) {
        fprintf(stderr, "vigil hunt: %s\n", errbuf_msg(&eb));
        result = CLI_FAIL;
    }
    scan_interrupt_end();
    if (out_finish(h.o) < 0 && h.out_rc == 0) {
        h.out_rc = -EPIPE;
    }
    if (result == CLI_OK && interrupted) {
        fprintf(stderr,
                "vigil hunt: interrupted: %" PRIu64 " alerts from the first %" PRIu64
                " events (in seq order) evaluated before Ctrl-C, of %" PRIu64 " read\n",
                h.alerts, h.evaluated, h.seen);
        result = SCAN_EXIT_INTERRUPTED;
    } else if (result == CLI_OK) {
        fprintf(stderr,
                "vigil hunt: %zu rules loaded (%zu unsupported, %zu invalid), %" PRIu64
                " events evaluated (%" PRIu64 " alerts skipped), %" PRIu64
                " alerts, %.2f s (%" PRIu64 " later events read past the window's horizon)\n",
                ruleset_count(rs), rep.unsupported, rep.invalid, h.evaluated, h.sp.skipped,
                h.alerts, (double)(vg_mono_ns() - t0) / 1e9, h.outside);
    }
    out_free(h.o);
    rules_engine_free(h.eng);
    spill_release(&h.sp);
    buf_release(&h.scratch);
    ruleset_free(rs);
    rules_report_release(&rep);
    free(paths);
    return result;
}

const struct cli_cmd cmd_hunt = {
    .name = "hunt",
    .synopsis = "RULE_FILE|DIR... [--since T] [--until T]   run rules over the store",
    .takes = CLI_STORE | CLI_TIME | CLI_FORMAT,
    .opts = hunt_opts,
    .own_size = sizeof(struct hunt_opts),
    .own_init = hunt_defaults,
    .usage = hunt_usage,
    .run = hunt_run,
};
