/* forwarders/forwarders.c: the forwarders inside vigild (see fwd.h).
 *
 * Threads. Everything here runs on the loop thread except the outbox jobs: SQLite work
 * (enqueue, fetch, results, stats, the catch-up scan of the store, a reload's config
 * load) runs on the libuv thread pool, one job at a time and in submission order, so
 * the outbox is only ever touched by one thread and the cursor only moves forward.
 * A job owns what it carries; it comes back to the loop in its after-work callback.
 *
 * The path of an alert. The pipeline calls fwd_on_record for every durable record in
 * seq order; alert records are copied into `pending` and go to the outbox in the next
 * enqueue job, with the cursor raised to the last committed seq seen. If pending
 * would pass its bound (a slow disk under the outbox), it is dropped instead and a
 * catch-up scan of the store later enqueues the same alerts: the store is the source
 * of truth, pending only saves a read. Memory is bounded either way.
 *
 * Delivery. A receiver fetches its oldest queued entries (in seq order, so an
 * incident's firing goes before its resolve), sends them one request at a time
 * (Alertmanager: up to 64 alerts per request) under its rate limit, and records each
 * answer: delivered, retry (connection errors, timeouts, 408, 429, 5xx: the receiver
 * waits out a backoff with jitter, or Retry-After, before its next attempt), or dead
 * (other 4xx: logged once, kept, `vigil alerts replay` queues it again). One request
 * at a time per receiver keeps order and is plenty: alerts are rare, and a receiver
 * that is down holds only its own queue. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "forwarders/fwd_int.h"
#include "store/store.h"

#define FWD_TICK_MS          1000
#define FWD_STATS_EVERY_NS   (2 * VG_NS_PER_SEC) /* also how soon a replay is seen */
#define FWD_CURSOR_EVERY_NS  (5 * VG_NS_PER_SEC)
#define FWD_PRUNE_EVERY_NS   (3600 * VG_NS_PER_SEC)
#define FWD_KEEP_DONE_NS     (7 * 86400 * VG_NS_PER_SEC) /* delivered history kept */
#define FWD_PENDING_MAX      (16u << 20)                 /* bytes of alert records */
#define FWD_PENDING_MAX_RECS 20000
#define FWD_FETCH            64
#define FWD_RESEND_MAX       1024 /* open incidents re-sent per round */
#define FWD_CATCHUP_CHUNK    256
#define FWD_RETRY_AFTER_MAX  (3600 * VG_NS_PER_SEC)

static const double lat_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,  5,     10,   30,  60,   300 };
#define NLAT (sizeof(lat_bounds) / sizeof(lat_bounds[0]))

/* The receivers' settings as one immutable snapshot: jobs on the pool read it while
 * the loop may swap in a new one (SIGHUP). Refcounted on the loop thread only. */
struct routes {
    int refs;
    size_t n;
    struct fwd_rcv_cfg **rc;
};

enum rcv_state {
    R_IDLE,     /* nothing in flight */
    R_FETCHING, /* a fetch job is out */
    R_SENDING,  /* a batch is being sent, one request at a time */
    R_WAITING,  /* backoff, or no rate-limit token: the timer wakes it */
};

struct rcv {
    struct fwd *f;
    char *name;
    struct routes *rt;             /* a reference to the routes holding cfg */
    const struct fwd_rcv_cfg *cfg; /* in rt */
    enum rcv_state st;
    bool removed; /* gone from the config: freed once idle */
    bool more;    /* entries may be queued */
    bool resending;
    unsigned failures;     /* consecutive failed attempts */
    int64_t next_try;      /* mono ns: not before (backoff) */
    int64_t next_resend;   /* mono ns */
    uint64_t resend_after; /* a re-send round goes in pages: the last seq of the page sent */
    double tokens;         /* rate limit */
    int64_t tokens_at;     /* mono ns of the last refill */
    uv_timer_t timer;
    bool timer_open;
    bool logged_failing;
    struct outbox_item *items; /* the batch being sent (or re-sent) */
    size_t nitems, pos;
    struct fwd_alert *alerts; /* parsed items */
    bool *ok;                 /* item parsed */
    /* metrics */
    uint64_t sent, failed, retried, dead, resent, enqueued;
    uint64_t queued, dead_now;
    int64_t oldest_ns;
    uint64_t lat[NLAT + 1];
    double lat_sum;
    uint64_t lat_count;
    struct rcv *next;
};

enum job_kind { J_ENQUEUE, J_CATCHUP, J_FETCH, J_RESEND, J_RESULTS, J_STATS, J_CURSOR, J_RELOAD };

struct recref {
    uint64_t seq;
    size_t off, len;
};

struct job {
    uv_work_t req;
    enum job_kind kind;
    struct fwd *f;
    struct routes *routes; /* a reference, or NULL */
    /* J_ENQUEUE: records; J_CURSOR, J_ENQUEUE: the cursor to set */
    struct buf recs;
    struct recref *refs;
    size_t nrefs;
    uint64_t cursor;
    bool set_cursor;
    /* J_CATCHUP */
    uint64_t from, upto;
    uint64_t found;
    /* J_FETCH, J_RESEND */
    struct rcv *rcv;
    struct outbox_item *items;
    size_t nitems;
    /* J_RESULTS */
    struct outbox_result *res;
    size_t nres;
    /* J_STATS: per receiver of routes */
    struct outbox_rstats *stats;
    int *expired;
    bool prune;
    /* J_RELOAD */
    char *path;
    struct routes *new_routes;
    struct outbox *new_ob; /* the outbox opened for the first forwarders of this run */
    /* out */
    int rc;
    int added;
    struct errbuf eb;
    struct job *next;
};

struct fwd {
    uv_loop_t *loop;
    char *store_dir;
    struct outbox *ob; /* touched by jobs only (and fwd_new/fwd_free) */
    struct routes *routes;
    struct rcv *rcvs;
    struct http_client *http;
    uv_timer_t tick;
    bool tick_open;
    bool started, closing;
    bool http_closing;
    int closing_timers; /* uv_close() calls whose callback has not run */
    void (*closed)(void *);
    void *closed_arg;
    /* the job queue */
    struct job *jobs, *jobs_tail;
    bool running;
    bool enqueue_queued;
    /* records awaiting the next enqueue job */
    struct buf pending;
    struct recref *prefs;
    size_t npending, cappending;
    bool overflow;      /* pending was dropped: a catch-up scan is owed */
    bool cursor_hold;   /* a catch-up failed: the cursor stays for the next start */
    uint64_t last_seq;  /* the last committed seq seen */
    uint64_t start_seq; /* the store's next seq at start */
    uint64_t cursor_written;
    int64_t last_stats, last_cursor, last_prune;
    atomic_bool stop_scan;
    /* metrics */
    uint64_t catchup_alerts, enqueue_failures;
    uint64_t rnd;
};

static void kick(struct fwd *f);
static void pump(struct rcv *r);
static void maybe_closed(struct fwd *f);
static void swap_routes(struct fwd *f, struct routes *rt);
static void on_rcv_timer(uv_timer_t *t);

/* xorshift64*: jitter needs no more (and no shared state with libc's rand). */
static double rnd01(struct fwd *f)
{
    uint64_t x = f->rnd;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    f->rnd = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void routes_unref(struct routes *rt)
{
    if (rt && --rt->refs == 0) {
        for (size_t i = 0; i < rt->n; i++) {
            fwd_rcv_cfg_free(rt->rc[i]);
        }
        free(rt->rc);
        free(rt);
    }
}

static struct routes *routes_ref(struct routes *rt)
{
    if (rt) {
        rt->refs++;
    }
    return rt;
}

/* Builds every receiver of cfg; blocks on secret files. */
static int routes_build(const struct vg_config *cfg, struct routes **out, struct errbuf *eb)
{
    struct routes *rt = xcalloc(1, sizeof(*rt));
    rt->refs = 1;
    rt->rc = xcalloc(cfg->nforwarders ? cfg->nforwarders : 1, sizeof(*rt->rc));
    for (size_t i = 0; i < cfg->nforwarders; i++) {
        int rc = fwd_rcv_cfg_new(cfg, i, &rt->rc[rt->n], eb);
        if (rc < 0) {
            routes_unref(rt);
            return rc;
        }
        rt->n++;
    }
    *out = rt;
    return 0;
}

/* ---- jobs ---- */

static struct job *job_new(struct fwd *f, enum job_kind kind)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->f = f;
    j->req.data = j;
    buf_init(&j->recs, FWD_PENDING_MAX + (1u << 20));
    errbuf_clear(&j->eb);
    return j;
}

static void job_free(struct job *j)
{
    routes_unref(j->routes);
    routes_unref(j->new_routes);
    buf_release(&j->recs);
    free(j->refs);
    outbox_items_free(j->items, j->nitems);
    free(j->res);
    free(j->stats);
    free(j->expired);
    free(j->path);
    outbox_close(j->new_ob);
    free(j);
}

static void submit(struct fwd *f, struct job *j)
{
    if (f->jobs_tail) {
        f->jobs_tail->next = j;
    } else {
        f->jobs = j;
    }
    f->jobs_tail = j;
    kick(f);
}

/* Matches a against every receiver of rt that wants its state. */
static size_t route(const struct routes *rt, const struct fwd_alert *a, const char **names)
{
    size_t n = 0;
    for (size_t i = 0; rt && i < rt->n; i++) {
        const struct fwd_rcv_cfg *rc = rt->rc[i];
        if (rc->sink->wants[a->state] && fwd_match_test(rc->match, a)) {
            names[n++] = rc->name;
        }
    }
    return n;
}

/* Enqueues records (encoded, with their seqs) in one transaction. */
static int enqueue_records(struct fwd *f, const struct routes *rt, const struct buf *recs,
                           const struct recref *refs, size_t n, uint64_t cursor, int *added,
                           struct errbuf *eb)
{
    size_t nr = rt ? rt->n : 0;
    struct fwd_alert *alerts = xcalloc(n ? n : 1, sizeof(*alerts));
    struct outbox_add *adds = xcalloc(n ? n : 1, sizeof(*adds));
    const char **names = xcalloc(n * (nr ? nr : 1) + 1, sizeof(char *));
    size_t k = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        struct span rec = { recs->data + refs[i].off, refs[i].len };
        int prc = fwd_alert_parse(rec, refs[i].seq, &alerts[k]);
        if (prc < 0) {
            if (prc != -ENOENT) {
                log_warn("forwarders: alert record seq %" PRIu64 " is malformed (%s); not "
                         "forwarded",
                         refs[i].seq, vg_strerror(prc));
            }
            continue;
        }
        adds[k].a = &alerts[k];
        adds[k].rec = rec;
        adds[k].receivers = names + k * (nr ? nr : 1);
        adds[k].nreceivers = route(rt, &alerts[k], (const char **)adds[k].receivers);
        k++;
    }
    rc = outbox_enqueue(f->ob, adds, k, cursor, vg_now_ns());
    if (rc < 0) {
        errbuf_set(eb, "%s", outbox_errmsg(f->ob));
    } else {
        *added = rc;
        rc = 0;
    }
    free(names);
    free(adds);
    free(alerts);
    return rc;
}

struct catchup {
    struct job *j;
    struct buf recs;
    struct recref *refs;
    size_t n;
    uint64_t cursor;
    int rc;
};

static int catchup_flush(struct catchup *c)
{
    int added = 0;
    if (c->n == 0) {
        return 0;
    }
    int rc = enqueue_records(c->j->f, c->j->routes, &c->recs, c->refs, c->n, c->cursor, &added,
                             &c->j->eb);
    c->j->added += added;
    c->n = 0;
    buf_reset(&c->recs);
    return rc;
}

static int on_catchup_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct catchup *c = arg;
    (void)ts;
    if (atomic_load(&c->j->f->stop_scan)) {
        return -ECANCELED;
    }
    if (seq < c->j->from || seq >= c->j->upto || !fwd_alert_candidate(rec)) {
        return 0;
    }
    /* Not in seq order (the store scans by time), so the cursor moves only at the end. */
    size_t off = c->recs.len;
    if (buf_append(&c->recs, rec.p, rec.n) < 0) {
        return VG_ELIMIT;
    }
    c->refs[c->n++] = (struct recref){ seq, off, rec.n };
    c->j->found++;
    if (c->n == FWD_CATCHUP_CHUNK || c->recs.len > (8u << 20)) {
        return catchup_flush(c);
    }
    return 0;
}

static void catchup_work(struct job *j)
{
    struct fwd *f = j->f;
    struct store_reader *rd = NULL;
    struct catchup c = { .j = j };
    uint64_t cursor;

    if ((j->rc = outbox_cursor(f->ob, &cursor)) < 0) {
        errbuf_set(&j->eb, "%s", outbox_errmsg(f->ob));
        return;
    }
    j->from = cursor + 1;
    if (j->from >= j->upto) {
        return; /* nothing committed past the cursor */
    }
    c.cursor = cursor;
    if ((j->rc = store_reader_open(f->store_dir, &rd, &j->eb)) < 0) {
        return;
    }
    buf_init(&c.recs, 64u << 20);
    c.refs = xcalloc(FWD_CATCHUP_CHUNK, sizeof(*c.refs));
    j->rc = store_scan_from_seq(rd, j->from, on_catchup_rec, &c, NULL);
    if (j->rc == VG_ECORRUPT || j->rc == VG_EDB) {
        errbuf_set(&j->eb, "%s", store_reader_error(rd));
    }
    if (j->rc == 0) {
        j->rc = catchup_flush(&c);
    }
    if (j->rc == 0) {
        /* Everything committed below upto has been seen: the cursor may pass it. */
        int added = 0;
        j->rc = enqueue_records(f, j->routes, &c.recs, c.refs, 0, j->upto - 1, &added, &j->eb);
    }
    store_reader_close(rd);
    buf_release(&c.recs);
    free(c.refs);
}

static void stats_work(struct job *j)
{
    struct fwd *f = j->f;
    size_t n = j->routes ? j->routes->n : 0;
    int64_t now = vg_now_ns();

    j->stats = xcalloc(n ? n : 1, sizeof(*j->stats));
    j->expired = xcalloc(n ? n : 1, sizeof(int));
    for (size_t i = 0; i < n && j->rc == 0; i++) {
        const struct fwd_rcv_cfg *rc = j->routes->rc[i];
        if (rc->give_up_after_ns > 0) {
            char why[128];
            snprintf(why, sizeof(why), "gave up: still undelivered after retry.give_up_after");
            int e = outbox_expire(f->ob, rc->name, now - rc->give_up_after_ns, why);
            j->expired[i] = e > 0 ? e : 0;
        }
        j->rc = outbox_receiver_stats(f->ob, rc->name, &j->stats[i]);
    }
    if (j->rc == 0 && j->prune) {
        j->rc = outbox_prune(f->ob, now - FWD_KEEP_DONE_NS);
    }
    if (j->rc < 0) {
        errbuf_set(&j->eb, "%s", outbox_errmsg(f->ob));
    }
}

static void reload_work(struct job *j)
{
    struct vg_config *cfg = NULL;
    struct fwd *f = j->f;

    if ((j->rc = config_load(j->path, &cfg, &j->eb)) < 0) {
        return;
    }
    if ((j->rc = routes_build(cfg, &j->new_routes, &j->eb)) == 0 && !f->ob &&
        j->new_routes->n > 0) {
        /* The first forwarders of this run: alerts already in the store are history. The
         * loop installs the outbox (f->ob is the loop's to write), before the next job. */
        j->rc = outbox_open(f->store_dir, false, j->cursor, &j->new_ob, NULL, &j->eb);
    }
    config_free(cfg);
}

static void on_work(uv_work_t *req)
{
    struct job *j = req->data;
    struct fwd *f = j->f;

    if (!f->ob && j->kind != J_RELOAD) {
        return; /* no forwarder has ever been configured in this run */
    }
    switch (j->kind) {
    case J_ENQUEUE:
        j->rc = enqueue_records(f, j->routes, &j->recs, j->refs, j->nrefs, j->cursor, &j->added,
                                &j->eb);
        break;
    case J_CATCHUP:
        catchup_work(j);
        break;
    case J_FETCH:
        j->rc = outbox_next(f->ob, j->rcv->name, FWD_FETCH, &j->items, &j->nitems);
        break;
    case J_RESEND:
        j->rc = outbox_open_delivered(f->ob, j->rcv->name, j->cursor, FWD_RESEND_MAX, &j->items,
                                      &j->nitems);
        break;
    case J_RESULTS:
        j->rc = outbox_record(f->ob, j->res, j->nres);
        break;
    case J_STATS:
        stats_work(j);
        break;
    case J_CURSOR:
        j->rc = outbox_enqueue(f->ob, NULL, 0, j->cursor, vg_now_ns());
        j->rc = j->rc < 0 ? j->rc : 0;
        break;
    case J_RELOAD:
        reload_work(j);
        break;
    }
    if (j->rc < 0 && !errbuf_msg(&j->eb)[0] && f->ob) {
        errbuf_set(&j->eb, "%s", outbox_errmsg(f->ob));
    }
}

static struct rcv *rcv_find(struct fwd *f, const char *name)
{
    for (struct rcv *r = f->rcvs; r; r = r->next) {
        if (strcmp(r->name, name) == 0) {
            return r;
        }
    }
    return NULL;
}

static void rcv_clear_batch(struct rcv *r)
{
    outbox_items_free(r->items, r->nitems);
    free(r->alerts);
    free(r->ok);
    r->items = NULL;
    r->alerts = NULL;
    r->ok = NULL;
    r->nitems = r->pos = 0;
}

static void rcv_release(struct rcv *r)
{
    rcv_clear_batch(r);
    routes_unref(r->rt);
    free(r->name);
    free(r);
}

static void on_rcv_timer_closed(uv_handle_t *h)
{
    struct rcv *r = h->data;
    struct fwd *f = r->f;
    rcv_release(r);
    f->closing_timers--;
    maybe_closed(f);
}

/* Unlinks and frees a receiver that is idle (its timer's close callback frees it). */
static void rcv_free(struct rcv *r)
{
    struct fwd *f = r->f;
    for (struct rcv **p = &f->rcvs; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    if (r->timer_open) {
        uv_timer_stop(&r->timer);
        r->timer_open = false;
        f->closing_timers++;
        uv_close((uv_handle_t *)&r->timer, on_rcv_timer_closed);
    } else {
        rcv_release(r);
    }
}

static void send_next(struct rcv *r);
static void start_batch(struct rcv *r, struct outbox_item *items, size_t n, bool resend);

static void on_after_work(uv_work_t *req, int status)
{
    struct job *j = req->data;
    struct fwd *f = j->f;

    (void)status;
    f->running = false;
    switch (j->kind) {
    case J_ENQUEUE:
        if (j->rc < 0) {
            /* The records are in the store: a catch-up scan will find them. */
            f->enqueue_failures++;
            f->overflow = true;
            log_error("forwarders: cannot enqueue %zu alert(s): %s; they will be enqueued "
                      "from the store",
                      j->nrefs, errbuf_msg(&j->eb));
        } else {
            if (j->set_cursor && j->cursor > f->cursor_written) {
                f->cursor_written = j->cursor;
            }
            if (j->added > 0) {
                for (struct rcv *r = f->rcvs; r; r = r->next) {
                    r->more = true;
                    pump(r);
                }
            }
        }
        break;
    case J_CATCHUP:
        if (j->rc < 0 && j->rc != -ECANCELED) {
            f->cursor_hold = true;
            log_error("forwarders: catch-up scan of the store from seq %" PRIu64
                      " failed: %s; alerts after it may wait for the next start (the cursor "
                      "stays there)",
                      j->from, errbuf_msg(&j->eb));
        } else if (j->rc == 0) {
            f->catchup_alerts += j->found;
            if (j->upto - 1 > f->cursor_written) {
                f->cursor_written = j->upto - 1;
            }
            if (j->from < j->upto) {
                log_info("forwarders: caught up from seq %" PRIu64 " to %" PRIu64 ": %" PRIu64
                         " alert record(s) found, %d entr%s queued",
                         j->from, j->upto - 1, j->found, j->added, j->added == 1 ? "y" : "ies");
            }
            for (struct rcv *r = f->rcvs; r; r = r->next) {
                r->more = true;
                pump(r);
            }
        }
        break;
    case J_FETCH: {
        struct rcv *r = j->rcv;
        r->st = R_IDLE;
        if (j->rc < 0) {
            log_error("forwarders: '%s': cannot read the outbox: %s", r->name, errbuf_msg(&j->eb));
        } else if (j->nitems == 0) {
            r->more = false;
        } else if (!r->removed && !f->closing) {
            start_batch(r, j->items, j->nitems, false);
            j->items = NULL;
            j->nitems = 0;
        }
        if (r->removed && r->st == R_IDLE) {
            rcv_free(r);
        }
        break;
    }
    case J_RESEND: {
        struct rcv *r = j->rcv;
        r->st = R_IDLE;
        /* A full page: the round goes on at once from its last seq; else it is over. */
        r->resend_after = j->nitems == FWD_RESEND_MAX ? j->items[j->nitems - 1].seq : 0;
        if (r->resend_after) {
            r->next_resend = 0;
        }
        if (j->rc == 0 && j->nitems > 0 && !r->removed && !f->closing) {
            start_batch(r, j->items, j->nitems, true);
            j->items = NULL;
            j->nitems = 0;
        } else if (r->removed) {
            rcv_free(r);
        } else {
            pump(r);
        }
        break;
    }
    case J_RESULTS:
        if (j->rc < 0) {
            log_error("forwarders: cannot record %zu delivery result(s): %s; those alerts "
                      "stay queued and will be sent again",
                      j->nres, errbuf_msg(&j->eb));
        }
        break;
    case J_STATS:
        if (j->rc < 0) {
            log_warn("forwarders: outbox statistics: %s", errbuf_msg(&j->eb));
            break;
        }
        for (size_t i = 0; j->routes && i < j->routes->n; i++) {
            struct rcv *r = rcv_find(f, j->routes->rc[i]->name);
            if (!r) {
                continue;
            }
            r->queued = j->stats[i].queued;
            r->dead_now = j->stats[i].dead;
            r->oldest_ns = j->stats[i].oldest_ns;
            if (j->expired[i] > 0) {
                r->dead += (uint64_t)j->expired[i];
                log_warn("forwarders: '%s' (%s): %d alert(s) still undelivered after "
                         "retry.give_up_after are dead letters now (vigil alerts replay "
                         "--dead)",
                         r->name, r->cfg->url_shown, j->expired[i]);
            }
            if (r->queued > 0) {
                r->more = true;
            }
        }
        break;
    case J_CURSOR:
        if (j->rc < 0) {
            log_warn("forwarders: cannot record the cursor: %s", errbuf_msg(&j->eb));
        } else if (j->cursor > f->cursor_written) {
            f->cursor_written = j->cursor;
        }
        break;
    case J_RELOAD:
        if (j->rc < 0) {
            log_error("SIGHUP: forwarders not reloaded, the old ones stay: %s", errbuf_msg(&j->eb));
        } else if (!f->closing) {
            if (j->new_ob) {
                f->ob = j->new_ob;
                j->new_ob = NULL;
                f->cursor_written = j->cursor;
            }
            swap_routes(f, j->new_routes);
            j->new_routes = NULL;
        }
        break;
    }
    job_free(j);
    kick(f);
    maybe_closed(f);
}

static void kick(struct fwd *f)
{
    while (!f->running && f->jobs) {
        struct job *j = f->jobs;
        f->jobs = j->next;
        if (!f->jobs) {
            f->jobs_tail = NULL;
        }
        j->next = NULL;
        if (j->kind == J_CURSOR && (f->overflow || f->cursor_hold)) {
            /* Decided when queued; since then a catch-up became owed or failed: the
             * cursor must not pass what it has not scanned. */
            job_free(j);
            continue;
        }
        if (j->kind == J_ENQUEUE) {
            /* Take everything pending now: records that came while jobs ran ride along. */
            f->enqueue_queued = false;
            struct buf tmp = j->recs;
            j->recs = f->pending;
            f->pending = tmp;
            buf_reset(&f->pending);
            j->refs = f->prefs;
            j->nrefs = f->npending;
            f->prefs = NULL;
            f->npending = f->cappending = 0;
            j->cursor = f->last_seq;
            /* While a catch-up is owed or failed, the cursor must not pass what it has
             * not scanned. */
            j->set_cursor = !f->overflow && !f->cursor_hold;
            if (!j->set_cursor) {
                j->cursor = f->cursor_written;
            }
            j->routes = routes_ref(f->routes);
        }
        f->running = true;
        if (uv_queue_work(f->loop, &j->req, on_work, on_after_work) < 0) {
            f->running = false;
            log_error("forwarders: cannot queue outbox work");
            job_free(j);
        }
    }
    /* A catch-up owed after an overflow runs once the queue is empty. */
    if (!f->running && !f->jobs && f->overflow && !f->closing && f->ob) {
        f->overflow = false;
        struct job *j = job_new(f, J_CATCHUP);
        j->upto = f->last_seq + 1;
        j->routes = routes_ref(f->routes);
        submit(f, j);
    }
}

/* ---- the committed-record hook ---- */

void fwd_on_record(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct fwd *f = arg;

    (void)ts;
    if (!f) {
        return;
    }
    f->last_seq = seq;
    if (!f->routes || f->routes->n == 0 || f->overflow || !fwd_alert_candidate(rec)) {
        return;
    }
    if (f->npending == FWD_PENDING_MAX_RECS || f->pending.len + rec.n > FWD_PENDING_MAX) {
        /* The outbox is behind (a slow disk): stop copying, scan the store later. */
        log_warn("forwarders: %zu alert records wait for the outbox; the rest will be read "
                 "back from the store",
                 f->npending);
        f->overflow = true;
        return;
    }
    if (f->npending == f->cappending) {
        f->cappending = f->cappending ? f->cappending * 2 : 64;
        f->prefs = xrealloc(f->prefs, f->cappending * sizeof(*f->prefs));
    }
    size_t off = f->pending.len;
    if (buf_append(&f->pending, rec.p, rec.n) < 0) {
        f->overflow = true;
        return;
    }
    f->prefs[f->npending++] = (struct recref){ seq, off, rec.n };
    if (!f->enqueue_queued) {
        f->enqueue_queued = true;
        submit(f, job_new(f, J_ENQUEUE));
    }
}

/* ---- delivery ---- */

static void rcv_arm(struct rcv *r, int64_t at_mono)
{
    int64_t d = at_mono - vg_mono_ns();
    r->st = R_WAITING;
    uv_timer_start(&r->timer, on_rcv_timer, d > 0 ? (uint64_t)(d / 1000000) + 1 : 0, 0);
}

/* Takes a rate-limit token; false (and the time one is due in *at) when there is none. */
static bool take_token(struct rcv *r, int64_t *at)
{
    int64_t now = vg_mono_ns();
    double per_ns = (double)r->cfg->rate_per_min / (60.0 * 1e9);
    double burst = fmax(1.0, ceil((double)r->cfg->rate_per_min / 60.0));

    r->tokens = fmin(burst, r->tokens + (double)(now - r->tokens_at) * per_ns);
    r->tokens_at = now;
    if (r->tokens >= 1.0) {
        r->tokens -= 1.0;
        return true;
    }
    *at = now + (int64_t)((1.0 - r->tokens) / per_ns) + 1;
    return false;
}

static void pump(struct rcv *r)
{
    struct fwd *f = r->f;
    int64_t now = vg_mono_ns();

    if (r->st != R_IDLE || r->removed || !f->started || f->closing || !f->ob || !f->http) {
        return;
    }
    if (now < r->next_try) {
        rcv_arm(r, r->next_try);
        return;
    }
    if (r->more) {
        struct job *j = job_new(f, J_FETCH);
        j->rcv = r;
        r->st = R_FETCHING;
        submit(f, j);
        return;
    }
    if (r->cfg->sink == &fwd_sink_alertmanager && now >= r->next_resend) {
        r->next_resend = now + r->cfg->resend_every_ns;
        struct job *j = job_new(f, J_RESEND);
        j->rcv = r;
        j->cursor = r->resend_after;
        r->st = R_FETCHING;
        submit(f, j);
    }
}

static void on_rcv_timer(uv_timer_t *t)
{
    struct rcv *r = t->data;

    if (r->st != R_WAITING) {
        return;
    }
    if (r->items) {
        r->st = R_SENDING;
        send_next(r);
    } else {
        r->st = R_IDLE;
        pump(r);
    }
}

static void start_batch(struct rcv *r, struct outbox_item *items, size_t n, bool resend)
{
    r->items = items;
    r->nitems = n;
    r->pos = 0;
    r->resending = resend;
    r->alerts = xcalloc(n, sizeof(*r->alerts));
    r->ok = xcalloc(n, sizeof(bool));
    for (size_t i = 0; i < n; i++) {
        int rc = fwd_alert_parse((struct span){ items[i].rec, items[i].rec_len }, items[i].seq,
                                 &r->alerts[i]);
        r->ok[i] = rc == 0;
    }
    r->st = R_SENDING;
    send_next(r);
}

static void submit_results(struct fwd *f, struct outbox_result *res, size_t n)
{
    struct job *j = job_new(f, J_RESULTS);
    j->res = res;
    j->nres = n;
    submit(f, j);
}

static void observe_latency(struct rcv *r, const struct fwd_alert *a)
{
    double s = (double)(vg_now_ns() - a->received) / 1e9;
    if (s < 0) {
        s = 0;
    }
    size_t b = 0;
    while (b < NLAT && s > lat_bounds[b]) {
        b++;
    }
    r->lat[b]++;
    r->lat_sum += s;
    r->lat_count++;
}

struct inflight {
    struct rcv *r;
    size_t first, n; /* items [first, first + n) */
};

static void on_response(void *arg, const struct http_resp *resp)
{
    struct inflight *fl = arg;
    struct rcv *r = fl->r;
    struct fwd *f = r->f;
    size_t first = fl->first;
    size_t n = fl->n;
    enum fwd_outcome oc = resp->rc == 0 ? fwd_classify(resp->status) : FWD_RETRY;
    char err[300] = "";

    free(fl);
    if (resp->rc == -ECANCELED || f->closing) {
        /* vigild is stopping: the entries stay queued for the next start */
        r->st = R_IDLE;
        rcv_clear_batch(r);
        maybe_closed(f);
        return;
    }
    if (oc != FWD_DELIVERED) {
        if (resp->rc != 0) {
            snprintf(err, sizeof(err), "%s", resp->error);
        } else {
            struct buf b;
            buf_init(&b, 400);
            fwd_ignore(buf_appendf(&b, "HTTP %ld: ", resp->status));
            fwd_ignore(buf_append_escaped(&b, buf_span(&resp->body), 200));
            snprintf(err, sizeof(err), "%s", buf_cstr(&b));
            buf_release(&b);
        }
        fwd_redact(r->cfg, err);
    }
    int64_t now = vg_now_ns();
    if (r->resending) {
        /* Re-sends keep Alertmanager's view alive; the queue is not involved. */
        if (oc == FWD_DELIVERED) {
            r->resent += n;
            r->failures = 0;
        } else {
            log_debug("forwarders: '%s': re-send of %zu firing alert(s) failed: %s", r->name, n,
                      err);
            r->failed++;
            r->failures++;
            r->next_try = vg_mono_ns() + fwd_backoff_ns(r->cfg->retry_min_ns, r->cfg->retry_max_ns,
                                                        r->failures, rnd01(f));
            r->next_resend = 0; /* try again after the backoff */
            rcv_clear_batch(r);
            r->st = R_IDLE;
            pump(r);
            return;
        }
        r->pos = first + n;
        send_next(r);
        return;
    }
    struct outbox_result *res = xcalloc(n, sizeof(*res));
    size_t nres = 0;
    for (size_t i = first; i < first + n; i++) {
        if (!r->ok[i]) {
            continue;
        }
        struct outbox_result *x = &res[nres++];
        x->id = r->items[i].id;
        x->outcome = oc;
        x->status = resp->status;
        x->at_ns = now;
        snprintf(x->error, sizeof(x->error), "%s", err);
    }
    switch (oc) {
    case FWD_DELIVERED:
        r->sent += nres;
        for (size_t i = first; i < first + n; i++) {
            if (r->ok[i]) {
                observe_latency(r, &r->alerts[i]);
            }
        }
        if (r->logged_failing) {
            log_info("forwarders: '%s' (%s): delivering again after %u failed attempt(s)", r->name,
                     r->cfg->url_shown, r->failures);
            r->logged_failing = false;
        }
        r->failures = 0;
        r->pos = first + n;
        break;
    case FWD_DEAD:
        r->dead += nres;
        r->failures = 0;
        for (size_t i = first; i < first + n; i++) {
            if (r->ok[i]) {
                /* logged once: a dead letter is never retried by itself */
                log_warn("forwarders: '%s' (%s): alert seq %" PRIu64
                         " (%.*s, %s) refused: %s; kept as a dead letter (vigil alerts "
                         "replay %" PRId64 ")",
                         r->name, r->cfg->url_shown, r->items[i].seq, (int)r->alerts[i].title.n,
                         (const char *)r->alerts[i].title.p, fwd_state_name(r->alerts[i].state),
                         err, r->items[i].id);
            }
        }
        r->pos = first + n;
        break;
    case FWD_RETRY: {
        r->failed++;
        r->retried += nres;
        r->failures++;
        int64_t delay =
            fwd_backoff_ns(r->cfg->retry_min_ns, r->cfg->retry_max_ns, r->failures, rnd01(f));
        int64_t ra;
        if (resp->retry_after[0] &&
            fwd_retry_after_parse(span_str(resp->retry_after), now, &ra) == 0) {
            delay = ra < FWD_RETRY_AFTER_MAX ? ra : FWD_RETRY_AFTER_MAX;
        }
        if (!r->logged_failing) {
            log_warn("forwarders: '%s' (%s): delivery failed: %s; retrying in %.1f s and "
                     "backing off while it fails",
                     r->name, r->cfg->url_shown, err, (double)delay / 1e9);
            r->logged_failing = true;
        } else {
            log_debug("forwarders: '%s': attempt %u failed: %s", r->name, r->failures, err);
        }
        r->next_try = vg_mono_ns() + delay;
        rcv_clear_batch(r); /* the rest stays queued; fetched again after the wait */
        r->more = true;
        submit_results(f, res, nres);
        r->st = R_IDLE;
        pump(r);
        return;
    }
    }
    submit_results(f, res, nres);
    send_next(r);
}

/* Sends the next request of the batch, or ends the batch. */
static void send_next(struct rcv *r)
{
    struct fwd *f = r->f;

    while (r->pos < r->nitems && !r->ok[r->pos]) {
        /* unreadable: dead at once, so the queue moves on */
        struct outbox_result *x = xcalloc(1, sizeof(*x));
        x->id = r->items[r->pos].id;
        x->outcome = FWD_DEAD;
        x->at_ns = vg_now_ns();
        snprintf(x->error, sizeof(x->error), "the alert record is malformed");
        if (!r->resending) {
            r->dead++;
            submit_results(f, x, 1);
        } else {
            free(x);
        }
        r->pos++;
    }
    if (r->pos >= r->nitems || f->closing) {
        rcv_clear_batch(r);
        r->st = R_IDLE;
        if (r->removed) {
            rcv_free(r);
            return;
        }
        pump(r);
        return;
    }
    int64_t at;
    if (!take_token(r, &at)) {
        rcv_arm(r, at);
        return;
    }
    size_t n = 1;
    if (r->cfg->sink->max_batch > 1) {
        while (r->pos + n < r->nitems && n < r->cfg->sink->max_batch && r->ok[r->pos + n]) {
            n++;
        }
    }
    const struct fwd_alert **batch = xcalloc(n, sizeof(*batch));
    for (size_t i = 0; i < n; i++) {
        batch[i] = &r->alerts[r->pos + i];
    }
    struct http_req req;
    http_req_init(&req);
    req.ca_file = r->cfg->ca_file;
    req.connect_timeout_ns = r->cfg->connect_timeout_ns;
    req.timeout_ns = r->cfg->timeout_ns;
    int rc =
        r->cfg->sink->build(r->cfg, (const struct fwd_alert *const *)batch, n, vg_now_ns(), &req);
    free(batch);
    struct inflight *fl = xcalloc(1, sizeof(*fl));
    fl->r = r;
    fl->first = r->pos;
    fl->n = n;
    if (rc < 0) {
        /* a payload over our own limits: never sendable */
        struct http_resp resp = { .rc = 0, .status = 413 };
        buf_init(&resp.body, 64);
        fwd_ignore(buf_append_str(&resp.body, "payload over vigil's request size limit"));
        http_req_release(&req);
        on_response(fl, &resp);
        buf_release(&resp.body);
        return;
    }
    /* ca_file is borrowed from cfg, which lives as long as the routes referenced by the
     * receiver; requests finish before a receiver's routes are released. */
    http_client_send(f->http, &req, on_response, fl);
}

/* ---- timers, metrics, lifecycle ---- */

static void on_tick(uv_timer_t *t)
{
    struct fwd *f = t->data;
    int64_t now = vg_now_ns();

    if (f->closing) {
        return;
    }
    for (struct rcv *r = f->rcvs; r; r = r->next) {
        pump(r);
    }
    if (!f->ob) {
        return;
    }
    if (now - f->last_stats >= FWD_STATS_EVERY_NS) {
        f->last_stats = now;
        struct job *j = job_new(f, J_STATS);
        j->routes = routes_ref(f->routes);
        if (now - f->last_prune >= FWD_PRUNE_EVERY_NS) {
            f->last_prune = now;
            j->prune = true;
        }
        submit(f, j);
    }
    if (now - f->last_cursor >= FWD_CURSOR_EVERY_NS && f->last_seq > f->cursor_written &&
        !f->overflow && !f->cursor_hold && !f->enqueue_queued && f->npending == 0) {
        f->last_cursor = now;
        struct job *j = job_new(f, J_CURSOR);
        j->cursor = f->last_seq;
        submit(f, j);
    }
}

static struct rcv *rcv_new(struct fwd *f, struct routes *rt, const struct fwd_rcv_cfg *rc)
{
    struct rcv *r = xcalloc(1, sizeof(*r));
    r->f = f;
    r->name = xstrdup(rc->name);
    r->rt = routes_ref(rt);
    r->cfg = rc;
    r->more = true;
    r->tokens = 1.0;
    r->tokens_at = vg_mono_ns();
    r->next_resend = vg_mono_ns() + rc->resend_every_ns;
    uv_timer_init(f->loop, &r->timer);
    r->timer.data = r;
    r->timer_open = true;
    r->next = f->rcvs;
    f->rcvs = r;
    return r;
}

/* Installs rt (taking its reference): receivers keep their state by name; new ones
 * start; removed ones finish their request and go. */
static void swap_routes(struct fwd *f, struct routes *rt)
{
    size_t kept = 0;
    size_t added = 0;
    size_t removed = 0;

    for (size_t i = 0; i < rt->n; i++) {
        struct rcv *r = rcv_find(f, rt->rc[i]->name);
        if (r && !r->removed) {
            /* Settings change between requests: a request in flight owns its copies. */
            r->cfg = rt->rc[i];
            routes_unref(r->rt);
            r->rt = routes_ref(rt);
            kept++;
        } else {
            rcv_new(f, rt, rt->rc[i]);
            added++;
        }
    }
    for (struct rcv *r = f->rcvs, *next; r; r = next) {
        next = r->next;
        if (r->rt != rt && !r->removed) {
            r->removed = true;
            removed++;
            if (r->st == R_IDLE || r->st == R_WAITING) {
                rcv_free(r);
            }
        }
    }
    routes_unref(f->routes);
    f->routes = rt;
    if (f->started) {
        log_info("SIGHUP: forwarders reloaded: %zu kept, %zu added, %zu removed", kept, added,
                 removed);
    }
    for (struct rcv *r = f->rcvs; r; r = r->next) {
        pump(r);
    }
}

int fwd_new(uv_loop_t *loop, const struct vg_config *cfg, const char *store_dir, uint64_t next_seq,
            struct fwd **out, struct errbuf *eb)
{
    struct routes *rt = NULL;
    int rc = routes_build(cfg, &rt, eb);

    *out = NULL;
    if (rc < 0) {
        return rc;
    }
    struct fwd *f = xcalloc(1, sizeof(*f));
    f->loop = loop;
    f->store_dir = xstrdup(store_dir);
    f->start_seq = next_seq;
    f->last_seq = next_seq ? next_seq - 1 : 0;
    f->rnd = (uint64_t)vg_mono_ns() | 1;
    buf_init(&f->pending, FWD_PENDING_MAX + (1u << 20));
    atomic_init(&f->stop_scan, false);
    if (rt->n > 0) {
        bool created = false;
        rc = outbox_open(store_dir, false, f->last_seq, &f->ob, &created, eb);
        if (rc < 0) {
            routes_unref(rt);
            fwd_free(f);
            return rc;
        }
        if ((rc = outbox_cursor(f->ob, &f->cursor_written)) < 0) {
            errbuf_set(eb, "%s", outbox_errmsg(f->ob));
            routes_unref(rt);
            fwd_free(f);
            return rc;
        }
        f->overflow = !created; /* an existing outbox is caught up from its cursor */
    }
    swap_routes(f, rt);
    *out = f;
    return 0;
}

void fwd_start(struct fwd *f)
{
    if (!f) {
        return;
    }
    f->started = true;
    if (http_client_new(f->loop, &f->http) < 0) {
        log_error("forwarders: cannot start the HTTP client; alerts stay queued");
    }
    uv_timer_init(f->loop, &f->tick);
    f->tick.data = f;
    f->tick_open = true;
    uv_timer_start(&f->tick, on_tick, FWD_TICK_MS, FWD_TICK_MS);
    for (struct rcv *r = f->rcvs; r; r = r->next) {
        log_info("forwarder '%s': %s to %s", r->name, r->cfg->sink->type, r->cfg->url_shown);
    }
    if (f->overflow) {
        /* the catch-up scan from the cursor to where the store stood at start */
        f->overflow = false;
        struct job *j = job_new(f, J_CATCHUP);
        j->upto = f->start_seq;
        j->routes = routes_ref(f->routes);
        submit(f, j);
    }
    for (struct rcv *r = f->rcvs; r; r = r->next) {
        pump(r);
    }
}

void fwd_reload(struct fwd *f, const char *config_path)
{
    if (!f || f->closing) {
        return;
    }
    if (!config_path) {
        log_warn("SIGHUP: forwarders: no configuration file to reload");
        return;
    }
    struct job *j = job_new(f, J_RELOAD);
    j->path = xstrdup(config_path);
    j->cursor = f->last_seq;
    submit(f, j);
}

static void on_tick_closed(uv_handle_t *h)
{
    struct fwd *f = h->data;
    f->closing_timers--;
    maybe_closed(f);
}

static void on_http_closed(void *arg)
{
    struct fwd *f = arg;
    f->http = NULL;
    f->http_closing = false;
    maybe_closed(f);
}

static void maybe_closed(struct fwd *f)
{
    if (!f->closing || !f->closed || f->running || f->jobs) {
        return;
    }
    /* the queue is drained: stop what is left */
    if (f->http && !f->http_closing) {
        f->http_closing = true;
        http_client_close(f->http, on_http_closed, f);
        return;
    }
    if (f->http_closing) {
        return;
    }
    if (f->tick_open) {
        f->tick_open = false;
        uv_timer_stop(&f->tick);
        f->closing_timers++;
        uv_close((uv_handle_t *)&f->tick, on_tick_closed);
    }
    while (f->rcvs) {
        rcv_free(f->rcvs);
    }
    if (f->closing_timers > 0) {
        return;
    }
    void (*done)(void *) = f->closed;
    void *arg = f->closed_arg;
    f->closed = NULL;
    done(arg);
}

void fwd_close(struct fwd *f, void (*done)(void *), void *arg)
{
    f->closing = true;
    f->closed = done;
    f->closed_arg = arg;
    atomic_store(&f->stop_scan, true);
    if (f->ob && !f->overflow && !f->cursor_hold && f->last_seq > f->cursor_written) {
        /* After the pipeline's last records: pending alerts, then the cursor. */
        if (f->npending > 0 && !f->enqueue_queued) {
            f->enqueue_queued = true;
            submit(f, job_new(f, J_ENQUEUE));
        }
        struct job *j = job_new(f, J_CURSOR);
        j->cursor = f->last_seq;
        submit(f, j);
    } else if (f->ob && f->npending > 0 && !f->enqueue_queued) {
        f->enqueue_queued = true;
        submit(f, job_new(f, J_ENQUEUE));
    }
    maybe_closed(f);
}

void fwd_free(struct fwd *f)
{
    if (!f) {
        return;
    }
    while (f->jobs) {
        struct job *j = f->jobs;
        f->jobs = j->next;
        job_free(j);
    }
    while (f->rcvs) {
        struct rcv *r = f->rcvs;
        f->rcvs = r->next;
        rcv_release(r);
    }
    routes_unref(f->routes);
    outbox_close(f->ob);
    buf_release(&f->pending);
    free(f->prefs);
    free(f->store_dir);
    free(f);
}

int fwd_metrics_render(const struct fwd *f, struct buf *out)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } counters[] = {
        { "sent_total", "counter", "alerts accepted by the receiver (2xx)",
          offsetof(struct rcv, sent) },
        { "failed_total", "counter",
          "delivery attempts that failed (connection error, timeout, 5xx, 429, 4xx)",
          offsetof(struct rcv, failed) },
        { "retried_total", "counter", "alerts whose attempt failed and that will be retried",
          offsetof(struct rcv, retried) },
        { "dead_total", "counter", "alerts that became dead letters (4xx, or retry.give_up_after)",
          offsetof(struct rcv, dead) },
        { "resent_total", "counter", "firing alerts re-sent to keep them active (alertmanager)",
          offsetof(struct rcv, resent) },
        { "queued", "gauge", "alerts queued in the outbox for the receiver",
          offsetof(struct rcv, queued) },
        { "dead_letters", "gauge", "dead letters kept in the outbox",
          offsetof(struct rcv, dead_now) },
    };
    int rc = 0;
    int64_t now = vg_now_ns();

    if (!f) {
        return 0;
    }
    for (size_t c = 0; c < VG_ARRAY_LEN(counters) && rc == 0; c++) {
        rc = buf_appendf(out, "# HELP vigil_forwarder_%s %s\n# TYPE vigil_forwarder_%s %s\n",
                         counters[c].name, counters[c].help, counters[c].name, counters[c].type);
        for (const struct rcv *r = f->rcvs; r && rc == 0; r = r->next) {
            const uint64_t *v = (const uint64_t *)((const char *)r + counters[c].off);
            rc = buf_appendf(out, "vigil_forwarder_%s{forwarder=\"%s\",type=\"%s\"} %" PRIu64 "\n",
                             counters[c].name, r->name, r->cfg->sink->type, *v);
        }
    }
    if (rc == 0) {
        rc = buf_appendf(out, "# HELP vigil_forwarder_oldest_queued_seconds age of the oldest "
                              "queued alert\n# TYPE vigil_forwarder_oldest_queued_seconds gauge\n");
    }
    for (const struct rcv *r = f->rcvs; r && rc == 0; r = r->next) {
        double age = r->queued && r->oldest_ns ? (double)(now - r->oldest_ns) / 1e9 : 0;
        rc = buf_appendf(out,
                         "vigil_forwarder_oldest_queued_seconds{forwarder=\"%s\",type=\"%s\"} "
                         "%.3f\n",
                         r->name, r->cfg->sink->type, age < 0 ? 0 : age);
    }
    if (rc == 0) {
        rc = buf_appendf(out, "# HELP vigil_forwarder_delivery_seconds time from the alert's "
                              "recording to the receiver's acceptance\n"
                              "# TYPE vigil_forwarder_delivery_seconds histogram\n");
    }
    for (const struct rcv *r = f->rcvs; r && rc == 0; r = r->next) {
        uint64_t cum = 0;
        for (size_t b = 0; b <= NLAT && rc == 0; b++) {
            cum += r->lat[b];
            if (b < NLAT) {
                rc = buf_appendf(out,
                                 "vigil_forwarder_delivery_seconds_bucket{forwarder=\"%s\","
                                 "type=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                                 r->name, r->cfg->sink->type, lat_bounds[b], cum);
            } else {
                rc = buf_appendf(out,
                                 "vigil_forwarder_delivery_seconds_bucket{forwarder=\"%s\","
                                 "type=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
                                 "vigil_forwarder_delivery_seconds_sum{forwarder=\"%s\","
                                 "type=\"%s\"} %.6f\n"
                                 "vigil_forwarder_delivery_seconds_count{forwarder=\"%s\","
                                 "type=\"%s\"} %" PRIu64 "\n",
                                 r->name, r->cfg->sink->type, cum, r->name, r->cfg->sink->type,
                                 r->lat_sum, r->name, r->cfg->sink->type, r->lat_count);
            }
        }
    }
    if (rc == 0) {
        rc = buf_appendf(out,
                         "# HELP vigil_outbox_catchup_alerts_total alert records found by scans "
                         "of the store from the outbox cursor\n"
                         "# TYPE vigil_outbox_catchup_alerts_total counter\n"
                         "vigil_outbox_catchup_alerts_total %" PRIu64 "\n"
                         "# HELP vigil_outbox_enqueue_failures_total outbox transactions that "
                         "failed (their alerts are read back from the store)\n"
                         "# TYPE vigil_outbox_enqueue_failures_total counter\n"
                         "vigil_outbox_enqueue_failures_total %" PRIu64 "\n"
                         "# HELP vigil_outbox_cursor_seq every alert record up to this seq is "
                         "in the outbox\n"
                         "# TYPE vigil_outbox_cursor_seq gauge\n"
                         "vigil_outbox_cursor_seq %" PRIu64 "\n",
                         f->catchup_alerts, f->enqueue_failures, f->cursor_written);
    }
    return rc;
}
