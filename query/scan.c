/* query/scan.c: filtered, time-ordered scans over the store (see scan.h). */
#include "query/scan.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/time.h"
#include "common/xalloc.h"
#include "query/filter.h"

struct scan_ctx {
    const struct filter *f;
    uint64_t limit;
    bool rev; /* SCAN_REVERSE: keep the latest */
    struct scan_result *res;
    struct scan_par *par; /* for the progress line's matched count */
    uint64_t seen;
    uint64_t matched_told; /* of res->matched, what par already has */
    int bad;
    struct errbuf *eb;
};

/* ---- SIGINT (scan.h) ---- */

/* Set by the handler, read by every stripe: a lock-free atomic, which a signal handler
 * may store to (C11 7.14.1.1) and threads may read without a race. The depth and the
 * saved action belong to the main thread. */
static atomic_int scan_sigint;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "a signal handler stores to scan_sigint");
static int scan_sigint_depth;
static struct sigaction scan_sigint_old;

static void on_sigint(int sig)
{
    (void)sig;
    /* SA_RESETHAND: the next one kills. */
    atomic_store_explicit(&scan_sigint, 1, memory_order_relaxed);
}

void scan_interrupt_begin(void)
{
    if (scan_sigint_depth++ > 0) {
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    atomic_store(&scan_sigint, 0);
    (void)sigaction(SIGINT, &sa, &scan_sigint_old);
}

void scan_interrupt_end(void)
{
    if (scan_sigint_depth > 0 && --scan_sigint_depth == 0) {
        (void)sigaction(SIGINT, &scan_sigint_old, NULL);
    }
}

bool scan_interrupted(void)
{
    return atomic_load_explicit(&scan_sigint, memory_order_relaxed) != 0;
}

static bool hit_less(const struct scan_hit *a, const struct scan_hit *b)
{
    return a->ts < b->ts || (a->ts == b->ts && a->seq < b->seq);
}

/* a comes before b in the result: earlier, or with rev later. */
static bool hit_before(bool rev, const struct scan_hit *a, const struct scan_hit *b)
{
    return rev ? hit_less(b, a) : hit_less(a, b);
}

/* With a limit, hits[] is a heap whose root is the kept hit that comes last (the latest,
 * or with rev the earliest), replaced when a match that comes before it arrives. */
static void heap_sift_down(bool rev, struct scan_hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1;
        size_t r = l + 1;
        size_t m = i;
        if (l < n && hit_before(rev, &h[m], &h[l])) {
            m = l;
        }
        if (r < n && hit_before(rev, &h[m], &h[r])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        struct scan_hit t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_sift_up(bool rev, struct scan_hit *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hit_before(rev, &h[p], &h[i])) {
            return;
        }
        struct scan_hit t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static void keep(struct scan_ctx *c, int64_t ts, uint64_t seq, struct span rec)
{
    struct scan_result *res = c->res;
    struct scan_hit h = { ts, seq, NULL, rec.n };

    if (c->limit && res->n == c->limit) {
        if (!hit_before(c->rev, &h, &res->hits[0])) {
            return;
        }
        free(res->hits[0].bytes);
        h.bytes = xmalloc(rec.n);
        memcpy(h.bytes, rec.p, rec.n);
        res->hits[0] = h;
        heap_sift_down(c->rev, res->hits, res->n, 0);
        return;
    }
    if (res->n == res->cap) {
        res->cap = res->cap ? 2 * res->cap : 256;
        res->hits = xrealloc(res->hits, res->cap * sizeof(*res->hits));
    }
    h.bytes = xmalloc(rec.n);
    memcpy(h.bytes, rec.p, rec.n);
    res->hits[res->n++] = h;
    if (c->limit) {
        heap_sift_up(c->rev, res->hits, res->n - 1);
    }
}

void scan_need_init(struct scan_need *sn, const struct filter *f)
{
    memset(&sn->fn, 0, sizeof(sn->fn));
    if (f) {
        filter_needs(f, &sn->fn);
    }
    for (size_t i = 0; i < sn->fn.nvalues; i++) {
        sn->vals[i].field = vg_field_name(sn->fn.values[i].field);
        sn->vals[i].value = sn->fn.values[i].value;
    }
    sn->need = (struct store_need){ sn->vals, sn->fn.nvalues, sn->fn.texts, sn->fn.ntexts };
    sn->seq_lo = 0;
    sn->seq_hi = UINT64_MAX;
    if (f) {
        filter_seq_bounds(f, &sn->seq_lo, &sn->seq_hi);
    }
}

int scan_rec_decode(struct span bytes, uint64_t seq, struct rec *r, struct errbuf *eb)
{
    if (rec_decode(&bytes, r) < 0) {
        errbuf_set(eb, "record seq %" PRIu64 " does not decode as a schema v1 record", seq);
        return VG_ECORRUPT;
    }
    return 0;
}

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct scan_ctx *c = arg;
    struct rec r;

    c->seen++;
    if ((c->bad = scan_rec_decode(bytes, seq, &r, c->eb)) < 0) {
        return c->bad;
    }
    if (!c->f || filter_match(c->f, &r)) {
        c->res->matched++;
        keep(c, ts, seq, bytes);
    }
    if ((c->seen & 0xfff) == 0 && c->res->matched != c->matched_told) {
        scan_par_matched(c->par, c->res->matched - c->matched_told);
        c->matched_told = c->res->matched;
    }
    return 0;
}

static int cmp_hit(const void *a, const void *b)
{
    const struct scan_hit *x = a;
    const struct scan_hit *y = b;
    return hit_less(x, y) ? -1 : hit_less(y, x) ? 1 : 0;
}

static int cmp_hit_rev(const void *a, const void *b)
{
    return cmp_hit(b, a);
}

/* ---- parallel scans ---- */

struct scan_par {
    const char *dir;
    struct store_reader *rd; /* planned with; stripe 0 runs on it */
    struct store_scan_plan *plan;
    unsigned nt;
    uint64_t failed_id; /* the segment the failing stripe could not read (0: none) */
    unsigned watch;     /* scan_par_watch: SCAN_PROGRESS, SCAN_INTERRUPTIBLE */
    const char *what;
    struct store_scan_progress progress; /* the runs count their blocks here */
    _Atomic uint64_t matched;            /* scan_par_matched */
    _Atomic bool interrupted;
};

struct stripe_run {
    pthread_t th;
    struct scan_par *p;
    unsigned stripe;
    store_rec_fn fn;
    void *arg;
    struct store_scan_stats stats;
    struct errbuf eb;
    int rc;
    uint64_t failed_id;
};

/* Stops a stripe at its next record once SIGINT arrived (SCAN_INTERRUPTIBLE). */
static int on_rec_watched(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct stripe_run *s = arg;

    if (scan_interrupted()) {
        atomic_store(&s->p->interrupted, true);
        return SCAN_STOP;
    }
    return s->fn(s->arg, ts, seq, rec);
}

/* ---- the progress line ---- */

#define SCAN_PROGRESS_AFTER_NS 1000000000LL /* drawn once a scan has run this long */
#define SCAN_PROGRESS_EVERY_MS 250

struct progress_run {
    pthread_t th;
    struct scan_par *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int drawn; /* columns of the line on screen (0: none) */
};

/* "1.2M", "345k", "17": n in at most 4 characters and a suffix. */
static void human(char *out, size_t cap, double n)
{
    if (n >= 1e9) {
        snprintf(out, cap, "%.1fG", n / 1e9);
    } else if (n >= 1e6) {
        snprintf(out, cap, "%.1fM", n / 1e6);
    } else if (n >= 1e4) {
        snprintf(out, cap, "%.0fk", n / 1e3);
    } else {
        snprintf(out, cap, "%.0f", n);
    }
}

static void progress_draw(struct progress_run *pr, double secs)
{
    struct scan_par *p = pr->p;
    struct store_scan_progress *g = &p->progress;
    uint64_t total = store_scan_plan_bytes(p->plan);
    uint64_t done = atomic_load(&g->bytes);
    uint64_t recs = atomic_load(&g->records);
    char line[256];
    char rate[16];
    char matched[16];
    char eta[32] = "";

    human(rate, sizeof(rate), secs > 0 ? (double)recs / secs : 0);
    human(matched, sizeof(matched), (double)atomic_load(&p->matched));
    double frac = total ? (double)done / (double)total : 0;
    frac = frac > 1 ? 1 : frac;
    if (frac > 0.01) {
        double left = secs * (1 - frac) / frac;
        snprintf(eta, sizeof(eta), ", ETA %.0f s", left < 1 ? 1 : left);
    }
    int n = snprintf(line, sizeof(line),
                     "%s: %2.0f%% of %.1f MB, blocks %" PRIu64 " read %" PRIu64
                     " skipped, %s matched, %s events/s%s",
                     p->what, frac * 100, (double)total / 1e6, atomic_load(&g->blocks_read),
                     atomic_load(&g->blocks_skipped), matched, rate, eta);
    n = n < 0 ? 0 : n >= (int)sizeof(line) ? (int)sizeof(line) - 1 : n;
    /* Pad over what the last line left, so a shorter line leaves no tail behind. */
    fprintf(stderr, "\r%s%*s", line, pr->drawn > n ? pr->drawn - n : 0, "");
    fflush(stderr);
    pr->drawn = n > pr->drawn ? n : pr->drawn;
}

static void *progress_main(void *arg)
{
    struct progress_run *pr = arg;
    int64_t t0 = vg_mono_ns();

    pthread_mutex_lock(&pr->mu);
    while (!pr->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += SCAN_PROGRESS_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&pr->cv, &pr->mu, &until);
        int64_t el = vg_mono_ns() - t0;
        if (!pr->done && el >= SCAN_PROGRESS_AFTER_NS) {
            progress_draw(pr, (double)el / 1e9);
        }
    }
    pthread_mutex_unlock(&pr->mu);
    if (pr->drawn > 0) {
        fprintf(stderr, "\r%*s\r", pr->drawn, "");
        fflush(stderr);
    }
    return NULL;
}

void scan_par_fields(struct scan_par *p, uint64_t fields)
{
    uint32_t bits = 0;

    if (fields != FILTER_FIELDS_ALL && fields != 0) {
        for (int f = 0; f < VG_F_COUNT; f++) {
            if ((fields >> f) & 1) {
                bits |= store_field_bit(vg_field_name((enum vg_field)f));
            }
        }
    }
    store_scan_plan_set_fields(p->plan, bits);
}

void scan_par_narrow(struct scan_par *p, const struct scan_need *sn)
{
    if (sn->seq_lo > 0 || sn->seq_hi < UINT64_MAX) {
        store_scan_plan_seq_range(p->plan, sn->seq_lo, sn->seq_hi);
    }
}

void scan_par_watch(struct scan_par *p, unsigned flags, const char *what)
{
    p->watch = flags & (SCAN_PROGRESS | SCAN_INTERRUPTIBLE);
    p->what = what ? what : "scanning";
}

void scan_par_matched(struct scan_par *p, uint64_t n)
{
    if (p) {
        atomic_fetch_add_explicit(&p->matched, n, memory_order_relaxed);
    }
}

bool scan_par_interrupted(const struct scan_par *p)
{
    return atomic_load(&((struct scan_par *)p)->interrupted);
}

uint64_t scan_par_blocks(const struct scan_par *p)
{
    return store_scan_plan_blocks(p->plan);
}

/* Threads for a scan of `bytes` stored bytes: one below 8 MiB (not worth starting
 * threads), else the online CPUs, at most 8; VIGIL_SCAN_THREADS (1..64) overrides. */
static unsigned scan_threads(uint64_t bytes)
{
    const char *env = getenv("VIGIL_SCAN_THREADS");
    if (env && *env) {
        uint64_t v;
        if (parse_u64(span_str(env), 64, &v) == 0 && v >= 1) {
            return (unsigned)v;
        }
        fprintf(stderr, "vigil: VIGIL_SCAN_THREADS='%s' is not a number from 1 to 64: ignored\n",
                env);
    }
    if (bytes < (8u << 20)) {
        return 1;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

int scan_par_open(const char *dir, int64_t since, int64_t until, const struct store_need *need,
                  struct scan_par **out, struct store_scan_stats *stats, struct errbuf *eb)
{
    struct scan_par *p = xcalloc(1, sizeof(*p));
    int rc;

    *out = NULL;
    p->dir = dir;
    if ((rc = store_reader_open(dir, &p->rd, eb)) < 0) {
        free(p);
        return rc;
    }
    if ((rc = store_scan_plan_make(p->rd, since, until, need, &p->plan, stats)) < 0) {
        errbuf_set(eb, "%s", store_reader_error(p->rd));
        store_reader_close(p->rd);
        free(p);
        return rc;
    }
    p->nt = scan_threads(store_scan_plan_bytes(p->plan));
    store_scan_plan_set_progress(p->plan, &p->progress);
    *out = p;
    return 0;
}

unsigned scan_par_threads(const struct scan_par *p)
{
    return p->nt;
}

static void *stripe_main(void *arg)
{
    struct stripe_run *s = arg;
    struct store_reader *rd = s->p->rd;

    if (s->stripe > 0 && (s->rc = store_reader_open(s->p->dir, &rd, &s->eb)) < 0) {
        return NULL;
    }
    if (s->p->watch & SCAN_INTERRUPTIBLE) {
        s->rc =
            store_scan_plan_run(rd, s->p->plan, s->stripe, s->p->nt, on_rec_watched, s, &s->stats);
    } else {
        s->rc = store_scan_plan_run(rd, s->p->plan, s->stripe, s->p->nt, s->fn, s->arg, &s->stats);
    }
    if (s->rc < 0) {
        errbuf_set(&s->eb, "%s", store_reader_error(rd));
        s->failed_id = store_reader_failed_segment(rd);
    }
    if (rd != s->p->rd) {
        store_reader_close(rd);
    }
    return NULL;
}

int scan_par_run(struct scan_par *p, store_rec_fn fn, void *const *args,
                 struct store_scan_stats *stats, struct errbuf *eb)
{
    struct stripe_run *ss = xcalloc(p->nt, sizeof(*ss));
    struct progress_run pr = { .p = p };
    bool drawing = false;
    int rc = 0;

    atomic_store(&p->interrupted, false);
    if (p->watch & SCAN_INTERRUPTIBLE) {
        scan_interrupt_begin();
    }
    if (p->watch & SCAN_PROGRESS) {
        pthread_mutex_init(&pr.mu, NULL);
        pthread_cond_init(&pr.cv, NULL);
        drawing = pthread_create(&pr.th, NULL, progress_main, &pr) == 0;
        if (!drawing) {
            pthread_cond_destroy(&pr.cv);
            pthread_mutex_destroy(&pr.mu);
        }
    }
    for (unsigned i = 0; i < p->nt; i++) {
        ss[i] = (struct stripe_run){ .p = p, .stripe = i, .fn = fn, .arg = args[i] };
        errbuf_clear(&ss[i].eb);
    }
    unsigned started = 1;
    for (; started < p->nt; started++) {
        if (pthread_create(&ss[started].th, NULL, stripe_main, &ss[started]) != 0) {
            break; /* the stripes not started run on this thread below */
        }
    }
    stripe_main(&ss[0]);
    for (unsigned i = 1; i < p->nt; i++) {
        if (i < started) {
            pthread_join(ss[i].th, NULL);
        } else {
            stripe_main(&ss[i]);
        }
    }
    if (drawing) {
        pthread_mutex_lock(&pr.mu);
        pr.done = true;
        pthread_cond_signal(&pr.cv);
        pthread_mutex_unlock(&pr.mu);
        pthread_join(pr.th, NULL);
        pthread_cond_destroy(&pr.cv);
        pthread_mutex_destroy(&pr.mu);
    }
    if (p->watch & SCAN_INTERRUPTIBLE) {
        scan_interrupt_end();
    }
    p->failed_id = 0;
    for (unsigned i = 0; i < p->nt; i++) {
        if (ss[i].rc < 0 && rc == 0) {
            rc = ss[i].rc;
            p->failed_id = ss[i].failed_id;
            errbuf_set(eb, "%s", errbuf_msg(&ss[i].eb));
        }
        if (stats) {
            store_scan_stats_add(stats, &ss[i].stats);
        }
    }
    free(ss);
    return rc;
}

void scan_par_skip(struct scan_par *p, const struct scan_skips *s)
{
    for (size_t i = 0; i < s->n; i++) {
        (void)store_scan_plan_skip(p->plan, s->v[i].id);
    }
}

bool scan_skips_take(struct scan_skips *s, const struct scan_par *p, int rc,
                     const struct errbuf *eb)
{
    if (rc >= 0 || p->failed_id == 0) {
        return false; /* no failure, or not one segment's (the catalog, a record) */
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].id == p->failed_id) {
            return false; /* cannot happen: the plan left it out */
        }
    }
    s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
    s->v[s->n].id = p->failed_id;
    snprintf(s->v[s->n].why, sizeof(s->v[s->n].why), "%s", errbuf_msg(eb));
    s->n++;
    return true;
}

uint64_t scan_par_failed_segment(const struct scan_par *p)
{
    return p->failed_id;
}

void scan_skips_print(const char *prog, const struct scan_skips *s)
{
    for (size_t i = 0; i < s->n; i++) {
        fprintf(stderr, "%s: skipped a damaged segment, none of its events are shown: %s\n", prog,
                s->v[i].why);
    }
}

void scan_skips_explain(const struct scan_skips *s)
{
    fprintf(stderr, "explain: damaged segments skipped (--skip-damaged): %zu\n", s->n);
    for (size_t i = 0; i < s->n; i++) {
        fprintf(stderr, "explain:   %s\n", s->v[i].why);
    }
}

void scan_fail_print(const char *prog, const struct errbuf *eb, uint64_t failed_segment)
{
    fprintf(stderr, "%s: %s\n", prog, errbuf_msg(eb));
    if (failed_segment) {
        fprintf(stderr,
                "%s: --skip-damaged reads every other segment; vigil verify says what is "
                "wrong with this one\n",
                prog);
    }
}

void scan_skips_release(struct scan_skips *s)
{
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

void scan_par_close(struct scan_par *p)
{
    if (!p) {
        return;
    }
    store_scan_plan_free(p->plan);
    store_reader_close(p->rd);
    free(p);
}

/* One scan without the segments of skips; a damaged segment it meets goes into skips
 * when flags say so (*again: scan once more). */
static int scan_once(const char *dir, int64_t since, int64_t until, const struct filter *f,
                     uint64_t limit, unsigned flags, struct scan_skips *skips, bool *again,
                     struct scan_result *res, struct errbuf *eb)
{
    bool rev = (flags & SCAN_REVERSE) != 0;
    struct scan_par *par = NULL;
    int64_t t0 = vg_mono_ns();
    int rc;

    struct scan_need sn;

    memset(res, 0, sizeof(*res));
    /* What every match has, for the block index (segment.md 3.2). */
    scan_need_init(&sn, f);
    res->need_values = sn.fn.nvalues;
    res->need_texts = sn.fn.ntexts;
    if ((rc = scan_par_open(dir, since, until, &sn.need, &par, &res->stats, eb)) < 0) {
        return rc;
    }
    scan_par_narrow(par, &sn);
    scan_par_skip(par, skips);
    scan_par_watch(par, flags, "scanning");
    res->blocks_total = scan_par_blocks(par);
    unsigned nt = scan_par_threads(par);
    res->threads = nt;
    struct scan_result *rs = xcalloc(nt, sizeof(*rs));
    struct scan_ctx *cs = xcalloc(nt, sizeof(*cs));
    struct errbuf *ebs = xcalloc(nt, sizeof(*ebs));
    void **args = xcalloc(nt, sizeof(*args));
    for (unsigned i = 0; i < nt; i++) {
        errbuf_clear(&ebs[i]);
        cs[i] = (struct scan_ctx){
            .f = f, .limit = limit, .rev = rev, .res = &rs[i], .par = par, .eb = &ebs[i]
        };
        args[i] = &cs[i];
    }
    rc = scan_par_run(par, on_rec, args, &res->stats, eb);
    *again = (flags & SCAN_SKIP_DAMAGED) && scan_skips_take(skips, par, rc, eb);
    uint64_t failed = rc < 0 ? par->failed_id : 0;
    res->interrupted = scan_par_interrupted(par);
    scan_par_close(par);
    /* A record that does not decode says so itself; every stripe's hits and counts. */
    size_t total = 0;
    for (unsigned i = 0; i < nt; i++) {
        if (cs[i].bad && rc < 0) {
            errbuf_set(eb, "%s", errbuf_msg(&ebs[i]));
        }
        total += rs[i].n;
    }
    res->hits = total ? xmalloc(total * sizeof(*res->hits)) : NULL;
    res->cap = total;
    for (unsigned i = 0; i < nt; i++) {
        if (rs[i].n) {
            memcpy(res->hits + res->n, rs[i].hits, rs[i].n * sizeof(*rs[i].hits));
        }
        res->n += rs[i].n;
        res->matched += rs[i].matched;
        free(rs[i].hits);
    }
    free(rs);
    free(cs);
    free(ebs);
    free(args);
    int64_t t1 = vg_mono_ns();
    if (res->n > 1) {
        qsort(res->hits, res->n, sizeof(*res->hits), rev ? cmp_hit_rev : cmp_hit);
    }
    /* Each stripe kept its first `limit` (earliest, or latest with rev): the first
     * `limit` of all are among them. */
    if (limit && res->n > limit) {
        for (size_t i = limit; i < res->n; i++) {
            free(res->hits[i].bytes);
        }
        res->n = limit;
    }
    res->ns_sort = (uint64_t)(vg_mono_ns() - t1);
    res->seconds = (double)(vg_mono_ns() - t0) / 1e9;
    res->failed_segment = failed;
    return rc < 0 ? rc : 0;
}

int scan_run(const char *dir, int64_t since, int64_t until, const struct filter *f, uint64_t limit,
             unsigned flags, struct scan_result *res, struct errbuf *eb)
{
    struct scan_skips skips = { NULL, 0 };

    /* Each damaged segment found starts the scan over without it, so the result holds
     * none of its records (a stripe may have delivered some before another failed). */
    for (;;) {
        bool again = false;
        int rc = scan_once(dir, since, until, f, limit, flags, &skips, &again, res, eb);
        if (!again) {
            res->skipped = skips;
            return rc;
        }
        scan_result_release(res);
        errbuf_clear(eb);
    }
}

void scan_result_release(struct scan_result *res)
{
    for (size_t i = 0; i < res->n; i++) {
        free(res->hits[i].bytes);
    }
    free(res->hits);
    scan_skips_release(&res->skipped);
    memset(res, 0, sizeof(*res));
}
