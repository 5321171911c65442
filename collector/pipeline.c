/* collector/pipeline.c: batches and the store thread (see pipeline.h).
 *
 * Threads: the loop thread owns `open` (the filling batch) and the waiter lists; the
 * store thread owns the struct store. They meet at `inflight` under `mu`: the loop
 * hands a batch over (cond signal), the store thread commits it and hands it back
 * (uv_async_send). At most one batch is in flight and one is filling, so memory is
 * bounded by twice batch_max_bytes plus the waiters.
 *
 * The store thread also keeps house (pipeline.h): sealing, retention and the free-space
 * check run between batches and, when idle, on a timed wait of the condition. Their
 * notices wait in a bounded queue under `mu` and reach the loop with the next
 * uv_async_send.
 *
 * Compaction (segment.md 12.4) has a thread of its own, at low CPU priority: the store
 * thread picks a job (`cjob`, under `mu`) and signals `ccond`; the compaction thread
 * builds it and signals `cond`; the store thread installs it between batches. */
#include "collector/pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "collector/metrics.h"
#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"

struct waiter {
    struct waiter *next;
    pipeline_done_fn fn;
    void *arg;
    int64_t since; /* mono ns when it started waiting: vigil_ack_latency_seconds */
};

struct rec_ref {
    int64_t ts;
    uint64_t seq;
    uint32_t off, len;
    bool evidence; /* the collector's own event: stored even below the free reserve */
};

#define PIPELINE_NOTICES_MAX 256 /* beyond: one DELETED_MORE with a count */

struct batch {
    struct buf data;      /* encoded records, back to back */
    struct rec_ref *refs; /* one per record */
    size_t nrefs, caprefs;
    struct waiter *waiters, **wtail;
    int rc; /* commit result, set by the store thread */
    uint64_t commit_ns;
    size_t stored;  /* records stored when rc != 0 (evidence, disk full) */
    size_t refused; /* records refused because the disk was full */
};

struct pipeline {
    uv_loop_t *loop;
    struct metrics *m;
    uint64_t next_seq;
    size_t batch_max;
    size_t batch_slack;
    pipeline_drain_fn on_drain;
    void *drain_arg;
    pipeline_closed_fn on_closed;
    void *closed_arg;
    pipeline_notice_fn on_notice;
    void *notice_arg;
    struct {
        pipeline_committed_fn fn;
        void *arg;
    } subs[PIPELINE_MAX_SUBSCRIBERS];
    size_t nsubs;

    struct batch *open; /* loop thread: filling */
    bool was_full;      /* loop thread: pipeline_full() was reported */
    bool closing;

    /* Shared under mu. */
    uv_mutex_t mu;
    uv_cond_t cond;
    struct batch *inflight; /* handed to the store thread; NULL when idle */
    bool inflight_done;     /* store thread finished it */
    bool stop;              /* store thread must exit */
    struct store_stats stats;
    struct pipeline_notice notices[PIPELINE_NOTICES_MAX];
    size_t nnotices;
    uint64_t notices_more;          /* deletions past the queue */
    uint64_t free_bytes;            /* at the last check */
    bool free_moved;                /* free_bytes changed much since the loop last read it */
    unsigned held;                  /* partitions retention keeps for a hold */
    uint64_t retention_runs;        /* retention passes done (a metric) */
    bool retention_moved;           /* a pass ran since the loop last read it */
    uint64_t disk_bytes;            /* the store's files on disk, at the last measure */
    struct store_compact_job *cjob; /* picked, handed to the compaction thread */
    bool cjob_built;                /* the compaction thread finished it */
    bool cstop;                     /* the compaction thread must exit */
    uv_cond_t ccond;
    uv_thread_t cthread;
    bool cthread_started;
    struct store_compact_result compacted; /* totals, for the metrics */
    uint64_t compact_failures;
    bool compact_moved; /* the totals changed since the loop last read them */

    /* Store thread only: housekeeping. */
    struct pipeline_policy pol;
    bool disk_full;
    bool disk_recheck;            /* a commit failed with ENOSPC: check at once */
    bool compact_room_warned;     /* compaction is waiting for free space (logged once) */
    unsigned compact_fail_streak; /* compactions failed in a row (back-off) */
    bool statvfs_warned;
    bool over_size_warned;
    int64_t full_since; /* mono ns */
    uint64_t refused;   /* events refused in this disk-full episode */
    int64_t next_seal, next_retention, next_disk, next_compact; /* mono ns */
    struct pipeline_notice pending[PIPELINE_NOTICES_MAX];
    size_t npending;
    uint64_t pending_more;

    struct store *st; /* store thread only */
    uv_thread_t thread;
    uv_async_t async;
    uv_check_t check; /* after each loop iteration's I/O: hand the batch over */
    int handles_open;
};

static struct batch *batch_new(size_t max, size_t slack)
{
    struct batch *b = xcalloc(1, sizeof(*b));
    buf_init(&b->data, max + slack);
    b->wtail = &b->waiters;
    return b;
}

static void batch_free(struct batch *b)
{
    if (b) {
        buf_release(&b->data);
        free(b->refs);
        free(b);
    }
}

static bool batch_empty(const struct batch *b)
{
    return b->nrefs == 0 && b->waiters == NULL;
}

/* Store thread: append every record and commit once. Below the free reserve only the
 * evidence records are stored and the batch is refused (-ENOSPC): its waiters
 * acknowledge nothing. */
static int commit_batch(struct pipeline *p, struct batch *b)
{
    bool full = p->disk_full;
    int rc;

    for (size_t i = 0; i < b->nrefs; i++) {
        struct rec_ref *r = &b->refs[i];
        if (full && !r->evidence) {
            b->refused++;
            continue;
        }
        rc = store_append(p->st, r->ts, r->seq, (struct span){ b->data.data + r->off, r->len });
        if (rc < 0) {
            goto fail;
        }
        b->stored++;
    }
    rc = store_commit(p->st);
    if (rc < 0) {
        goto fail;
    }
    if (full) {
        p->refused += b->refused;
        return -ENOSPC;
    }
    b->stored = 0;
    return 0;
fail:
    b->stored = 0;
    b->refused = 0;
    if (rc == -ENOSPC || rc == -EDQUOT) {
        p->disk_recheck = true; /* the disk filled up before the check saw it */
    }
    return rc;
}

static void notice(struct pipeline *p, const struct pipeline_notice *n)
{
    if (p->npending < PIPELINE_NOTICES_MAX - 1 ||
        (p->npending < PIPELINE_NOTICES_MAX && n->kind != PIPELINE_DELETED)) {
        p->pending[p->npending++] = *n; /* the last slot is kept for disk notices */
    } else {
        p->pending_more++;
    }
}

/* Store thread: statvfs against the reserve; a change of state is a notice. */
static void check_disk(struct pipeline *p, int64_t mono)
{
    uint64_t free_b;
    int rc = store_free_bytes(p->pol.store_dir, &free_b);

    if (rc < 0) {
        if (!p->statvfs_warned) {
            log_warn("store '%s': cannot read the free space (statvfs): %s; store.free_reserve "
                     "is not enforced",
                     p->pol.store_dir, vg_strerror(rc));
            p->statvfs_warned = true;
        }
        return;
    }
    p->statvfs_warned = false;
    uv_mutex_lock(&p->mu);
    /* The gauge follows when it moved by more than 64 MiB, batches or not. */
    uint64_t delta = free_b > p->free_bytes ? free_b - p->free_bytes : p->free_bytes - free_b;
    p->free_moved |= delta > (64u << 20);
    p->free_bytes = free_b;
    uv_mutex_unlock(&p->mu);
    /* A failed write (ENOSPC) counts as full even if statvfs disagrees. */
    bool full =
        (p->pol.free_reserve_bytes > 0 && free_b < p->pol.free_reserve_bytes) || p->disk_recheck;
    p->disk_recheck = false;
    if (full == p->disk_full) {
        return;
    }
    struct pipeline_notice n = { .free_bytes = free_b, .reserve_bytes = p->pol.free_reserve_bytes };
    p->disk_full = full;
    if (full) {
        n.kind = PIPELINE_DISK_FULL;
        p->full_since = mono;
        p->refused = 0;
        log_warn("store '%s': %" PRIu64 " bytes free, %s store.free_reserve (%" PRIu64
                 "): refusing events (not acknowledged; agents retry) until space returns",
                 p->pol.store_dir, free_b,
                 free_b < p->pol.free_reserve_bytes ? "below" : "a write found no room; above",
                 p->pol.free_reserve_bytes);
    } else {
        n.kind = PIPELINE_DISK_OK;
        n.duration_ns = mono - p->full_since;
        n.refused = p->refused;
        log_info("store '%s': %" PRIu64 " bytes free again (store.free_reserve %" PRIu64
                 "): accepting events after %.1f s and %" PRIu64 " refused",
                 p->pol.store_dir, free_b, p->pol.free_reserve_bytes, (double)n.duration_ns / 1e9,
                 n.refused);
    }
    notice(p, &n);
}

/* Store thread: what the store's files take on disk (st_blocks), its directory and one
 * level below (segments/, keys/): a gauge, not worth a catalog query per scrape. */
static uint64_t dir_disk_bytes(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    uint64_t total = 0;
    struct dirent *e;

    if (!d) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            continue;
        }
        if (S_ISREG(st.st_mode)) {
            total += (uint64_t)st.st_blocks * 512;
        } else if (S_ISDIR(st.st_mode) && depth > 0) {
            char sub[PATH_MAX];
            if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) < sizeof(sub)) {
                total += dir_disk_bytes(sub, depth - 1);
            }
        }
    }
    closedir(d);
    return total;
}

static void run_retention(struct pipeline *p)
{
    struct store_retention_result res;
    int rc = store_retention_run(p->st, &p->pol.retention, vg_now_ns(), &res);

    if (rc < 0) {
        log_warn("store: retention failed: %s (retried in a minute)", vg_strerror(rc));
        return;
    }
    for (size_t i = 0; i < res.ndeleted; i++) {
        struct pipeline_notice n = { .kind = PIPELINE_DELETED, .del = res.deleted[i] };
        notice(p, &n);
    }
    free(res.deleted);
    if (res.over_size && !p->over_size_warned) {
        log_warn("store: %" PRIu64 " bytes, over store.retention.max_size (%" PRIu64
                 "): what is left is held (%u partitions) or still open",
                 res.bytes_total, p->pol.retention.max_size_bytes, res.held);
    }
    p->over_size_warned = res.over_size;
    uv_mutex_lock(&p->mu);
    p->held = res.held;
    p->retention_runs++;
    p->retention_moved = true;
    uv_mutex_unlock(&p->mu);
}

/* Store thread: installs the job the compaction thread built; picks the next one when
 * none is out (at once after an install, else every compact_every_ns), never while the
 * disk is below the reserve (a compaction needs room for both files for a moment). */
static void compaction_step(struct pipeline *p, int64_t now)
{
    struct store_compact_job *j;
    struct errbuf eb;

    errbuf_clear(&eb);
    uv_mutex_lock(&p->mu);
    j = p->cjob && p->cjob_built ? p->cjob : NULL;
    bool out = p->cjob != NULL;
    uv_mutex_unlock(&p->mu);
    if (j) {
        struct store_compact_result res = { 0 };
        int rc = store_compact_install(p->st, j, &res, &eb);
        if (rc < 0) {
            log_warn("store: %s (retried later)", errbuf_msg(&eb));
        }
        uv_mutex_lock(&p->mu);
        p->cjob = NULL;
        p->cjob_built = false;
        p->compacted.segments += res.segments;
        p->compacted.skipped += res.skipped;
        p->compacted.records += res.records;
        p->compacted.bytes_before += res.bytes_before;
        p->compacted.bytes_after += res.bytes_after;
        p->compact_failures += rc < 0;
        p->compact_moved = true;
        uv_mutex_unlock(&p->mu);
        out = false;
        /* A failure backs off: 10 s, 20 s, ... up to an hour, logged each time. */
        p->compact_fail_streak = rc < 0 ? p->compact_fail_streak + 1 : 0;
        unsigned shift = p->compact_fail_streak > 0 ? p->compact_fail_streak - 1 : 0;
        shift = shift < 9 ? shift : 9;
        int64_t wait = p->pol.compact_every_ns << shift;
        wait = wait < 3600 * VG_NS_PER_SEC ? wait : 3600 * VG_NS_PER_SEC;
        p->next_compact = rc < 0 ? now + wait : now;
    }
    if (out || now < p->next_compact || p->disk_full) {
        return;
    }
    struct store_compact_result skipped = { 0 };
    int rc = store_compact_pick(p->st, &p->pol.compact_opts, INT64_MAX, &j, &skipped, &eb);
    if (rc < 0) {
        log_warn("store: compaction: %s (retried later)", errbuf_msg(&eb));
    }
    if (rc == 1 && p->pol.free_reserve_bytes > 0) {
        /* Both files exist for a moment: never let the rewrite take ingest's reserve. */
        uv_mutex_lock(&p->mu);
        uint64_t free_b = p->free_bytes;
        uv_mutex_unlock(&p->mu);
        uint64_t need = p->pol.free_reserve_bytes + store_compact_job_bytes(j);
        if (free_b < need) {
            if (!p->compact_room_warned) {
                log_warn("store: compaction of '%s' waits for room: %" PRIu64
                         " bytes free, it needs store.free_reserve + %" PRIu64,
                         store_compact_job_segment(j), free_b, store_compact_job_bytes(j));
                p->compact_room_warned = true;
            }
            store_compact_job_free(j);
            rc = 0;
        } else {
            p->compact_room_warned = false;
        }
    }
    uv_mutex_lock(&p->mu);
    p->compacted.skipped += skipped.skipped;
    if (rc == 1) {
        p->cjob = j;
        p->cjob_built = false;
        uv_cond_signal(&p->ccond);
    }
    uv_mutex_unlock(&p->mu);
    if (rc != 1) {
        p->next_compact = now + p->pol.compact_every_ns;
    }
}

/* The compaction thread: builds what the store thread picked (store_compact_build). */
static void compaction_thread(void *arg)
{
    struct pipeline *p = arg;

    /* Below the collector's own threads: ingest first, compaction with what is left. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0) {
        log_debug("compaction thread: cannot lower its priority");
    }
    uv_mutex_lock(&p->mu);
    for (;;) {
        while (!p->cstop && (p->cjob == NULL || p->cjob_built)) {
            uv_cond_wait(&p->ccond, &p->mu);
        }
        if (p->cstop) {
            break;
        }
        struct store_compact_job *j = p->cjob;
        uv_mutex_unlock(&p->mu);
        log_debug("compaction: rewriting segment '%s'", store_compact_job_segment(j));
        store_compact_build(j);
        uv_mutex_lock(&p->mu);
        p->cjob_built = true;
        uv_cond_signal(&p->cond); /* the store thread installs it */
    }
    uv_mutex_unlock(&p->mu);
}

/* Store thread: whatever is due. Returns when the next thing is due (mono ns). */
static int64_t housekeeping(struct pipeline *p)
{
    int64_t now = vg_mono_ns();

    if (p->pol.store_dir && (now >= p->next_disk || p->disk_recheck)) {
        check_disk(p, now);
        p->next_disk = now + p->pol.disk_check_every_ns;
    }
    if (now >= p->next_seal) {
        /* Partitions that ended over a minute ago get no more on-time events. */
        int rc = store_seal_before(p->st, vg_now_ns() - p->pol.seal_grace_ns);
        if (rc < 0) {
            log_warn("store: sealing old partitions failed: %s", vg_strerror(rc));
        }
        p->next_seal = now + p->pol.seal_every_ns;
    }
    if (p->pol.retention_every_ns > 0 && now >= p->next_retention) {
        if (p->pol.retention.max_age_ns > 0 || p->pol.retention.max_size_bytes > 0) {
            run_retention(p);
        }
        if (p->pol.store_dir) {
            uint64_t b = dir_disk_bytes(p->pol.store_dir, 1);
            uv_mutex_lock(&p->mu);
            p->disk_bytes = b;
            p->retention_moved = true;
            uv_mutex_unlock(&p->mu);
        }
        p->next_retention = now + p->pol.retention_every_ns;
    }
    if (p->pol.compact) {
        compaction_step(p, now);
    }
    int64_t next = p->next_seal;
    /* cjob read unlocked: only this thread sets it, to a job or to NULL. */
    if (p->pol.compact && p->cjob == NULL && p->next_compact < next) {
        next = p->next_compact;
    }
    if (p->pol.store_dir && p->next_disk < next) {
        next = p->next_disk;
    }
    if (p->pol.retention_every_ns > 0 && p->next_retention < next) {
        next = p->next_retention;
    }
    return next;
}

static void store_thread(void *arg)
{
    struct pipeline *p = arg;
    int64_t next = housekeeping(p); /* at start: seal, retention, free space */

    uv_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && (p->inflight == NULL || p->inflight_done) &&
               !(p->cjob && p->cjob_built)) {
            int64_t wait = next - vg_mono_ns();
            if (wait <= 0 || uv_cond_timedwait(&p->cond, &p->mu, (uint64_t)wait) == UV_ETIMEDOUT) {
                break;
            }
        }
        bool have = p->inflight != NULL && !p->inflight_done;
        if (!have && p->stop) {
            break; /* stop requested and nothing to do */
        }
        struct batch *b = have ? p->inflight : NULL;
        uv_mutex_unlock(&p->mu);

        if (b) {
            int64_t t0 = vg_mono_ns();
            b->rc = commit_batch(p, b);
            b->commit_ns = (uint64_t)(vg_mono_ns() - t0);
        }
        next = housekeeping(p);
        struct store_stats s;
        store_get_stats(p->st, &s);

        uv_mutex_lock(&p->mu);
        p->stats = s;
        bool wake = b != NULL;
        for (size_t i = 0; i < p->npending; i++) {
            if (p->nnotices < PIPELINE_NOTICES_MAX) {
                p->notices[p->nnotices++] = p->pending[i];
            } else {
                p->notices_more++;
            }
            wake = true;
        }
        p->notices_more += p->pending_more;
        wake |= p->pending_more > 0 || p->free_moved || p->compact_moved || p->retention_moved;
        p->compact_moved = false;
        p->retention_moved = false;
        p->npending = 0;
        p->pending_more = 0;
        if (b) {
            p->inflight_done = true;
        }
        if (wake) {
            uv_async_send(&p->async);
        }
    }
    uv_mutex_unlock(&p->mu);
}

/* Loop thread: hands the open batch to the store thread if it is idle. */
static void maybe_submit(struct pipeline *p)
{
    uv_mutex_lock(&p->mu);
    if (p->inflight == NULL && !batch_empty(p->open)) {
        p->inflight = p->open;
        p->inflight_done = false;
        p->open = batch_new(p->batch_max, p->batch_slack);
        uv_cond_signal(&p->cond);
    }
    uv_mutex_unlock(&p->mu);
}

static void on_close_handle(uv_handle_t *h)
{
    struct pipeline *p = h->data;
    if (--p->handles_open == 0 && p->on_closed) {
        p->on_closed(p->closed_arg);
    }
}

/* Runs once per loop iteration after the read callbacks: everything the connections
 * decoded in this iteration goes to the store thread in one batch. */
static void on_check(uv_check_t *h)
{
    maybe_submit(h->data);
}

static void finish_close(struct pipeline *p)
{
    uv_mutex_lock(&p->mu);
    p->stop = true;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
    uv_thread_join(&p->thread);
    /* A compaction under way stops at its next block; its temporary file goes. */
    uv_mutex_lock(&p->mu);
    p->cstop = true;
    if (p->cjob) {
        store_compact_job_cancel(p->cjob);
    }
    uv_cond_signal(&p->ccond);
    uv_mutex_unlock(&p->mu);
    if (p->cthread_started) {
        uv_thread_join(&p->cthread);
    }
    store_compact_job_free(p->cjob);
    p->cjob = NULL;
    store_close(p->st);
    p->st = NULL;
    uv_close((uv_handle_t *)&p->async, on_close_handle);
    uv_close((uv_handle_t *)&p->check, on_close_handle);
}

/* Loop thread: the store thread's notices, in order; metrics first, then the owner. */
static void deliver_notices(struct pipeline *p)
{
    struct pipeline_notice *v;
    size_t n;
    uint64_t more;

    uv_mutex_lock(&p->mu);
    n = p->nnotices;
    more = p->notices_more;
    v = n ? xmalloc(n * sizeof(*v)) : NULL;
    if (n) {
        memcpy(v, p->notices, n * sizeof(*v));
    }
    p->nnotices = 0;
    p->notices_more = 0;
    p->m->disk_free_bytes = p->free_bytes;
    p->free_moved = false;
    p->m->retention_held = p->held;
    p->m->retention_runs = p->retention_runs;
    p->m->store_disk_bytes = p->disk_bytes;
    p->m->compactions = p->compacted.segments;
    p->m->compaction_skipped = p->compacted.skipped;
    p->m->compaction_failures = p->compact_failures;
    p->m->compaction_bytes_before = p->compacted.bytes_before;
    p->m->compaction_bytes_after = p->compacted.bytes_after;
    uv_mutex_unlock(&p->mu);
    for (size_t i = 0; i <= n; i++) {
        struct pipeline_notice extra = { .kind = PIPELINE_DELETED_MORE, .count = more };
        const struct pipeline_notice *x = i < n ? &v[i] : &extra;
        if (i == n && more == 0) {
            break;
        }
        switch (x->kind) {
        case PIPELINE_DISK_FULL:
            p->m->disk_full = 1;
            p->m->disk_full_episodes++;
            break;
        case PIPELINE_DISK_OK:
            p->m->disk_full = 0;
            break;
        case PIPELINE_DELETED:
            p->m->retention_deleted++;
            p->m->retention_bytes += x->del.bytes;
            break;
        case PIPELINE_DELETED_MORE:
            p->m->retention_deleted += x->count;
            break;
        }
        if (p->on_notice) {
            p->on_notice(p->notice_arg, x);
        }
    }
    free(v);
}

static void on_batch_done(uv_async_t *h)
{
    struct pipeline *p = h->data;
    struct batch *done = NULL;
    struct store_stats s;

    deliver_notices(p);
    uv_mutex_lock(&p->mu);
    if (p->inflight && p->inflight_done) {
        done = p->inflight;
        p->inflight = NULL;
    }
    s = p->stats;
    uv_mutex_unlock(&p->mu);
    if (!done) {
        return;
    }
    if (done->rc == 0) {
        p->m->events_stored += done->nrefs;
        p->m->batches_committed++;
    } else if (done->rc == -ENOSPC && done->refused + done->stored == done->nrefs &&
               done->stored + done->refused > 0) {
        /* Refused below store.free_reserve: logged once per episode (check_disk). */
        p->m->events_stored += done->stored;
        p->m->events_refused_disk += done->refused;
        p->m->batches_committed += done->stored > 0;
    } else if (done->rc == -ENOSPC && done->nrefs == 0) {
        /* Only waiters, refused while the disk is full. */
    } else {
        p->m->commit_failures++;
        log_error("store: commit of %zu events failed: %s; nothing of it is acknowledged",
                  done->nrefs, vg_strerror(done->rc));
    }
    if (done->commit_ns > 0) {
        metrics_hist_observe(p->m, METRICS_HIST_COMMIT, (int64_t)done->commit_ns);
    }
    p->m->store_blocks = s.blocks;
    p->m->store_bytes_raw = s.bytes_raw;
    p->m->store_bytes_stored = s.bytes_stored;

    /* Durable records go to the subscribers (rules) first: what they add joins the
     * next batch, which is submitted before the waiters run, so the store thread works
     * while the loop sends acks. */
    for (size_t k = 0; done->rc == 0 && k < p->nsubs; k++) {
        for (size_t i = 0; i < done->nrefs; i++) {
            const struct rec_ref *r = &done->refs[i];
            p->subs[k].fn(p->subs[k].arg, r->ts, r->seq,
                          (struct span){ done->data.data + r->off, r->len });
        }
    }
    maybe_submit(p);

    struct waiter *w = done->waiters;
    int64_t now = w ? vg_mono_ns() : 0;
    while (w) {
        struct waiter *next = w->next;
        if (done->rc == 0) {
            metrics_hist_observe(p->m, METRICS_HIST_ACK, now - w->since);
        }
        w->fn(w->arg, done->rc);
        free(w);
        w = next;
    }
    batch_free(done);

    if (p->was_full && !pipeline_full(p)) {
        p->was_full = false;
        if (p->on_drain) {
            p->on_drain(p->drain_arg);
        }
    }
    if (p->closing) {
        uv_mutex_lock(&p->mu);
        bool idle = p->inflight == NULL;
        uv_mutex_unlock(&p->mu);
        if (idle && batch_empty(p->open)) {
            finish_close(p);
        }
    }
}

int pipeline_new(uv_loop_t *loop, struct store *st, uint64_t first_seq, size_t batch_max_bytes,
                 size_t batch_slack_bytes, struct metrics *m, pipeline_drain_fn on_drain,
                 void *drain_arg, const struct pipeline_policy *pol, struct pipeline **out,
                 struct errbuf *eb)
{
    struct pipeline *p = xcalloc(1, sizeof(*p));
    int rc;

    if (pol) {
        p->pol = *pol;
    }
    if (!p->pol.store_dir) {
        p->pol.free_reserve_bytes = 0;
    }
    if (p->pol.seal_every_ns <= 0) {
        p->pol.seal_every_ns = 10 * VG_NS_PER_SEC;
    }
    if (p->pol.seal_grace_ns <= 0) {
        p->pol.seal_grace_ns = 60 * VG_NS_PER_SEC;
    }
    if (p->pol.retention_every_ns <= 0) {
        p->pol.retention_every_ns = 60 * VG_NS_PER_SEC;
    }
    if (p->pol.disk_check_every_ns <= 0) {
        p->pol.disk_check_every_ns = VG_NS_PER_SEC;
    }
    if (p->pol.compact_every_ns <= 0) {
        p->pol.compact_every_ns = 10 * VG_NS_PER_SEC; /* as often as the seal pass */
    }
    p->on_notice = p->pol.on_notice;
    p->notice_arg = p->pol.notice_arg;

    p->loop = loop;
    p->m = m;
    m->disk_reserve_bytes = p->pol.free_reserve_bytes;
    p->st = st;
    p->next_seq = first_seq;
    p->batch_max = batch_max_bytes;
    p->batch_slack = batch_slack_bytes;
    p->on_drain = on_drain;
    p->drain_arg = drain_arg;
    p->open = batch_new(batch_max_bytes, batch_slack_bytes);
    if ((rc = uv_mutex_init(&p->mu)) < 0 || (rc = uv_cond_init(&p->cond)) < 0 ||
        (rc = uv_cond_init(&p->ccond)) < 0) {
        errbuf_set(eb, "pipeline: cannot init lock: %s", vg_strerror(rc));
        abort(); /* only on resource exhaustion at start-up */
    }
    if ((rc = uv_async_init(loop, &p->async, on_batch_done)) < 0) {
        errbuf_set(eb, "pipeline: uv_async_init: %s", vg_strerror(rc));
        abort();
    }
    p->async.data = p;
    uv_check_init(loop, &p->check);
    p->check.data = p;
    uv_check_start(&p->check, on_check);
    uv_unref((uv_handle_t *)&p->check);
    p->handles_open = 2;
    if (p->pol.compact) {
        if ((rc = uv_thread_create(&p->cthread, compaction_thread, p)) < 0) {
            log_warn("pipeline: cannot start the compaction thread: %s; segments stay as "
                     "written (vigil compact)",
                     vg_strerror(rc));
            p->pol.compact = false;
        } else {
            p->cthread_started = true;
        }
    }
    if ((rc = uv_thread_create(&p->thread, store_thread, p)) < 0) {
        errbuf_set(eb, "pipeline: cannot start the store thread: %s", vg_strerror(rc));
        abort();
    }
    *out = p;
    return 0;
}

static int add(struct pipeline *p, struct rec *r, bool evidence)
{
    struct batch *b = p->open;
    size_t start = b->data.len;

    /* The soft limit (batch_max) is checked by listeners before each message; within
     * a message the batch may grow up to the hard limit (batch_max + slack). */
    r->seq = p->next_seq;
    r->has_seq = true;
    if (!r->has_received) {
        r->received = vg_now_ns();
        r->has_received = true;
    }
    if (!r->has_ts) {
        r->ts = r->received;
        r->has_ts = true;
    }
    int rc = rec_encode(r, &b->data);
    if (rc < 0) {
        b->data.len = start;
        p->was_full = true;
        return rc;
    }
    if (b->nrefs == b->caprefs) {
        b->caprefs = b->caprefs ? 2 * b->caprefs : 1024;
        b->refs = xrealloc(b->refs, b->caprefs * sizeof(*b->refs));
    }
    b->refs[b->nrefs++] = (struct rec_ref){ r->ts, r->seq, (uint32_t)start,
                                            (uint32_t)(b->data.len - start), evidence };
    p->next_seq++;
    if (b->data.len >= p->batch_max) {
        p->was_full = true;
    }
    return 0;
}

int pipeline_add(struct pipeline *p, struct rec *r)
{
    return add(p, r, false);
}

int pipeline_add_evidence(struct pipeline *p, struct rec *r)
{
    return add(p, r, true);
}

void pipeline_when_durable(struct pipeline *p, pipeline_done_fn fn, void *arg)
{
    struct waiter *w = xmalloc(sizeof(*w));
    w->next = NULL;
    w->fn = fn;
    w->arg = arg;
    w->since = vg_mono_ns();
    *p->open->wtail = w;
    p->open->wtail = &w->next;
}

int pipeline_subscribe(struct pipeline *p, pipeline_committed_fn fn, void *arg)
{
    if (p->nsubs == PIPELINE_MAX_SUBSCRIBERS) {
        return VG_ELIMIT;
    }
    p->subs[p->nsubs].fn = fn;
    p->subs[p->nsubs].arg = arg;
    p->nsubs++;
    return 0;
}

bool pipeline_full(const struct pipeline *p)
{
    return p->open->data.len >= p->batch_max;
}

void pipeline_close(struct pipeline *p, pipeline_closed_fn fn, void *arg)
{
    p->closing = true;
    p->on_closed = fn;
    p->closed_arg = arg;
    maybe_submit(p);
    uv_mutex_lock(&p->mu);
    bool idle = p->inflight == NULL;
    uv_mutex_unlock(&p->mu);
    if (idle && batch_empty(p->open)) {
        finish_close(p);
    }
}

void pipeline_free(struct pipeline *p)
{
    if (!p) {
        return;
    }
    batch_free(p->open);
    uv_mutex_destroy(&p->mu);
    uv_cond_destroy(&p->cond);
    uv_cond_destroy(&p->ccond);
    free(p);
}
