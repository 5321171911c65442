/* store/keeper.c: group commits under the free-space policy and the housekeeping
 * between them (see keeper.h).
 *
 * Threads: the writer thread owns the struct store and every field marked "writer";
 * the compaction thread builds what the writer thread picked (`cjob`) and never touches
 * the store; `mu` guards what the three threads share (notices, gauges, the job). The
 * keeper never holds `mu` while it calls the wake callback, so the collector may take
 * its own lock there. */
#include "store/keeper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"

struct store_keeper {
    struct store_keeper_opts pol;
    struct store *st; /* writer */
    void (*wake)(void *arg);
    void *wake_arg;

    /* Writer thread only. */
    bool disk_full;
    bool disk_recheck;            /* a write failed with ENOSPC: check at once */
    bool compact_room_warned;     /* compaction is waiting for free space (logged once) */
    unsigned compact_fail_streak; /* compactions failed in a row (back-off) */
    bool statvfs_warned;
    bool over_size_warned;
    int64_t full_since; /* mono ns */
    uint64_t refused;   /* records refused in this disk-full episode */
    int64_t next_seal, next_retention, next_disk, next_compact, next_checkpoint, next_cut; /* mono ns */

    /* Shared under mu. */
    uv_mutex_t mu;
    struct store_notice notices[STORE_NOTICES_MAX];
    size_t nnotices;
    uint64_t notices_more;          /* deletions past the queue */
    bool news;                      /* notices or gauges moved since the last run */
    struct store_keeper_gauges g;   /* what store_keeper_gauges returns */
    struct store_compact_job *cjob; /* picked, handed to the compaction thread */
    bool cjob_built;                /* the compaction thread finished it */
    bool cstop;                     /* the compaction thread must exit */
    uv_cond_t ccond;
    uv_thread_t cthread;
    bool cthread_started;
};

/* Queues a notice for the collector; the last slot is kept for disk notices. */
static void notice(struct store_keeper *k, const struct store_notice *n)
{
    uv_mutex_lock(&k->mu);
    if (k->nnotices < STORE_NOTICES_MAX - 1 ||
        (k->nnotices < STORE_NOTICES_MAX && n->kind != STORE_NOTICE_DELETED)) {
        k->notices[k->nnotices++] = *n;
    } else {
        k->notices_more++;
    }
    k->news = true;
    uv_mutex_unlock(&k->mu);
}

/* Writer thread: statvfs against the reserve; a change of state is a notice. */
static void check_disk(struct store_keeper *k, int64_t mono)
{
    uint64_t free_b;
    int rc = store_free_bytes(k->pol.free_dir, &free_b);

    if (rc < 0) {
        if (!k->statvfs_warned) {
            log_warn("store '%s': cannot read the free space (statvfs): %s; store.free_reserve "
                     "is not enforced",
                     k->pol.free_dir, vg_strerror(rc));
            k->statvfs_warned = true;
        }
        return;
    }
    k->statvfs_warned = false;
    uv_mutex_lock(&k->mu);
    /* The gauge follows when it moved by more than 64 MiB, batches or not. */
    uint64_t delta = free_b > k->g.free_bytes ? free_b - k->g.free_bytes : k->g.free_bytes - free_b;
    k->news |= delta > (64u << 20);
    k->g.free_bytes = free_b;
    uv_mutex_unlock(&k->mu);
    /* A failed write (ENOSPC) counts as full even if statvfs disagrees. */
    bool full =
        (k->pol.free_reserve_bytes > 0 && free_b < k->pol.free_reserve_bytes) || k->disk_recheck;
    k->disk_recheck = false;
    if (full == k->disk_full) {
        return;
    }
    struct store_notice n = { .free_bytes = free_b, .reserve_bytes = k->pol.free_reserve_bytes };
    k->disk_full = full;
    if (full) {
        n.kind = STORE_NOTICE_DISK_FULL;
        k->full_since = mono;
        k->refused = 0;
        log_warn("store '%s': %" PRIu64 " bytes free, %s store.free_reserve (%" PRIu64
                 "): refusing events (not acknowledged; agents retry) until space returns",
                 k->pol.free_dir, free_b,
                 free_b < k->pol.free_reserve_bytes ? "below" : "a write found no room; above",
                 k->pol.free_reserve_bytes);
    } else {
        n.kind = STORE_NOTICE_DISK_OK;
        n.duration_ns = mono - k->full_since;
        n.refused = k->refused;
        log_info("store '%s': %" PRIu64 " bytes free again (store.free_reserve %" PRIu64
                 "): accepting events after %.1f s and %" PRIu64 " refused",
                 k->pol.free_dir, free_b, k->pol.free_reserve_bytes, (double)n.duration_ns / 1e9,
                 n.refused);
    }
    notice(k, &n);
}

/* Writer thread: what the store's files take on disk (st_blocks), its directory and one
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

static void run_retention(struct store_keeper *k)
{
    struct store_retention_result res;
    int rc = store_retention_run(k->st, &k->pol.retention, vg_now_ns(), &res);

    if (rc < 0) {
        log_warn("store: retention failed: %s (retried in a minute)", vg_strerror(rc));
        return;
    }
    for (size_t i = 0; i < res.ndeleted; i++) {
        struct store_notice n = { .kind = STORE_NOTICE_DELETED, .del = res.deleted[i] };
        notice(k, &n);
    }
    free(res.deleted);
    if (res.over_size && !k->over_size_warned) {
        log_warn("store: %" PRIu64 " bytes, over store.retention.max_size (%" PRIu64
                 "): what is left is held (%u partitions) or still open",
                 res.bytes_total, k->pol.retention.max_size_bytes, res.held);
    }
    k->over_size_warned = res.over_size;
    uv_mutex_lock(&k->mu);
    k->g.held = res.held;
    k->g.retention_runs++;
    k->news = true; /* a pass ran: the metric follows */
    uv_mutex_unlock(&k->mu);
}

/* Writer thread: installs the job the compaction thread built; picks the next one when
 * none is out (at once after an install, else every compact_every_ns), never while the
 * disk is below the reserve (a compaction needs room for both files for a moment). */
static void compaction_step(struct store_keeper *k, int64_t now)
{
    struct store_compact_job *j;
    struct errbuf eb;

    errbuf_clear(&eb);
    uv_mutex_lock(&k->mu);
    j = k->cjob && k->cjob_built ? k->cjob : NULL;
    bool out = k->cjob != NULL;
    uv_mutex_unlock(&k->mu);
    if (j) {
        struct store_compact_result res = { 0 };
        int rc = store_compact_install(k->st, j, &res, &eb);
        if (rc < 0) {
            log_warn("store: %s (retried later)", errbuf_msg(&eb));
        }
        uv_mutex_lock(&k->mu);
        k->cjob = NULL;
        k->cjob_built = false;
        k->g.compacted.segments += res.segments;
        k->g.compacted.skipped += res.skipped;
        k->g.compacted.records += res.records;
        k->g.compacted.bytes_before += res.bytes_before;
        k->g.compacted.bytes_after += res.bytes_after;
        k->g.compact_failures += rc < 0;
        k->news = true;
        uv_mutex_unlock(&k->mu);
        out = false;
        /* A failure backs off: 10 s, 20 s, ... up to an hour, logged each time. */
        k->compact_fail_streak = rc < 0 ? k->compact_fail_streak + 1 : 0;
        unsigned shift = k->compact_fail_streak > 0 ? k->compact_fail_streak - 1 : 0;
        shift = shift < 9 ? shift : 9;
        int64_t wait = k->pol.compact_every_ns << shift;
        wait = wait < 3600 * VG_NS_PER_SEC ? wait : 3600 * VG_NS_PER_SEC;
        k->next_compact = rc < 0 ? now + wait : now;
    }
    if (out || now < k->next_compact || k->disk_full) {
        return;
    }
    struct store_compact_result skipped = { 0 };
    int rc = store_compact_pick(k->st, &k->pol.compact_opts, INT64_MAX, &j, &skipped, &eb);
    if (rc < 0) {
        log_warn("store: compaction: %s (retried later)", errbuf_msg(&eb));
    }
    if (rc == 1 && k->pol.free_reserve_bytes > 0) {
        /* Both files exist for a moment: never let the rewrite take ingest's reserve. */
        uv_mutex_lock(&k->mu);
        uint64_t free_b = k->g.free_bytes;
        uv_mutex_unlock(&k->mu);
        uint64_t need = k->pol.free_reserve_bytes + store_compact_job_bytes(j);
        if (free_b < need) {
            if (!k->compact_room_warned) {
                log_warn("store: compaction of '%s' waits for room: %" PRIu64
                         " bytes free, it needs store.free_reserve + %" PRIu64,
                         store_compact_job_segment(j), free_b, store_compact_job_bytes(j));
                k->compact_room_warned = true;
            }
            store_compact_job_free(j);
            rc = 0;
        } else {
            k->compact_room_warned = false;
        }
    }
    uv_mutex_lock(&k->mu);
    k->g.compacted.skipped += skipped.skipped;
    if (rc == 1) {
        k->cjob = j;
        k->cjob_built = false;
        uv_cond_signal(&k->ccond);
    }
    uv_mutex_unlock(&k->mu);
    if (rc != 1) {
        k->next_compact = now + k->pol.compact_every_ns;
    }
}

/* The compaction thread: builds what the writer thread picked (store_compact_build). */
static void compaction_thread(void *arg)
{
    struct store_keeper *k = arg;

    /* Below the collector's own threads: ingest first, compaction with what is left. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0) {
        log_debug("compaction thread: cannot lower its priority");
    }
    uv_mutex_lock(&k->mu);
    for (;;) {
        while (!k->cstop && (k->cjob == NULL || k->cjob_built)) {
            uv_cond_wait(&k->ccond, &k->mu);
        }
        if (k->cstop) {
            break;
        }
        struct store_compact_job *j = k->cjob;
        uv_mutex_unlock(&k->mu);
        log_debug("compaction: rewriting segment '%s'", store_compact_job_segment(j));
        store_compact_build(j);
        uv_mutex_lock(&k->mu);
        k->cjob_built = true;
        uv_mutex_unlock(&k->mu);
        if (k->wake) {
            k->wake(k->wake_arg); /* the writer thread installs it */
        }
        uv_mutex_lock(&k->mu);
    }
    uv_mutex_unlock(&k->mu);
}

int64_t store_keeper_run(struct store_keeper *k, int64_t now, bool *news)
{
    if (k->pol.free_dir && (now >= k->next_disk || k->disk_recheck)) {
        check_disk(k, now);
        k->next_disk = now + k->pol.disk_check_every_ns;
    }
    if (now >= k->next_seal) {
        /* Partitions that ended over a minute ago get no more on-time events. */
        int rc = store_seal_before(k->st, vg_now_ns() - k->pol.seal_grace_ns);
        if (rc < 0) {
            log_warn("store: sealing old partitions failed: %s", vg_strerror(rc));
        }
        k->next_seal = now + k->pol.seal_every_ns;
    }
    if (now >= k->next_cut) {
        /* segment.md 5.6: a block is cut once its first record is block_max_age old, even
         * when no commit comes. */
        int rc = store_cut_aged(k->st);
        if (rc < 0) {
            log_warn("store: writing aged blocks failed: %s", vg_strerror(rc));
        }
        k->next_cut = now + k->pol.cut_every_ns;
    }
    if (now >= k->next_checkpoint) {
        /* segment.md 13.3: what was committed since is in the seal sequence. */
        int rc = store_checkpoint(k->st);
        if (rc < 0) {
            log_warn("store: checkpointing open segments failed: %s", vg_strerror(rc));
        }
        k->next_checkpoint = now + k->pol.checkpoint_every_ns;
    }
    if (k->pol.retention_every_ns > 0 && now >= k->next_retention) {
        if (k->pol.retention.max_age_ns > 0 || k->pol.retention.max_size_bytes > 0) {
            run_retention(k);
        }
        if (k->pol.free_dir) {
            uint64_t b = dir_disk_bytes(k->pol.free_dir, 1);
            uv_mutex_lock(&k->mu);
            k->g.disk_bytes = b;
            k->news = true;
            uv_mutex_unlock(&k->mu);
        }
        k->next_retention = now + k->pol.retention_every_ns;
    }
    if (k->pol.compact) {
        compaction_step(k, now);
    }
    struct store_stats s;
    store_get_stats(k->st, &s);
    int64_t next = k->next_seal;
    uv_mutex_lock(&k->mu);
    k->g.stats = s;
    *news = k->news;
    k->news = false;
    bool idle_compactor = k->cjob == NULL;
    uv_mutex_unlock(&k->mu);
    if (k->pol.compact && idle_compactor && k->next_compact < next) {
        next = k->next_compact;
    }
    if (k->pol.free_dir && k->next_disk < next) {
        next = k->next_disk;
    }
    if (k->next_checkpoint < next) {
        next = k->next_checkpoint;
    }
    if (k->next_cut < next) {
        next = k->next_cut;
    }
    if (k->pol.retention_every_ns > 0 && k->next_retention < next) {
        next = k->next_retention;
    }
    return next;
}

bool store_keeper_refusing(const struct store_keeper *k)
{
    return k->disk_full;
}

/* A write found no room before the check saw it: check at once. */
static int note_rc(struct store_keeper *k, int rc)
{
    if (rc == -ENOSPC || rc == -EDQUOT) {
        k->disk_recheck = true;
    }
    return rc;
}

int store_keeper_append(struct store_keeper *k, int64_t ts, uint64_t seq, struct span rec)
{
    return note_rc(k, store_append(k->st, ts, seq, rec));
}

int store_keeper_commit(struct store_keeper *k, size_t refused)
{
    int rc = note_rc(k, store_commit(k->st));

    if (rc == 0 && k->disk_full) {
        k->refused += refused;
    }
    return rc;
}

size_t store_keeper_take_notices(struct store_keeper *k, struct store_notice *out, size_t max,
                                 uint64_t *more)
{
    uv_mutex_lock(&k->mu);
    size_t n = k->nnotices < max ? k->nnotices : max;
    memcpy(out, k->notices, n * sizeof(*out));
    /* What does not fit stays queued, in order. */
    memmove(k->notices, k->notices + n, (k->nnotices - n) * sizeof(*out));
    k->nnotices -= n;
    *more = k->notices_more;
    k->notices_more = 0;
    uv_mutex_unlock(&k->mu);
    return n;
}

void store_keeper_gauges(struct store_keeper *k, struct store_keeper_gauges *out)
{
    uv_mutex_lock(&k->mu);
    *out = k->g;
    uv_mutex_unlock(&k->mu);
}

void store_keeper_set_wake(struct store_keeper *k, void (*fn)(void *arg), void *arg)
{
    k->wake = fn;
    k->wake_arg = arg;
}

int store_keeper_new(struct store *st, const struct store_keeper_opts *o, struct store_keeper **out,
                     struct errbuf *eb)
{
    struct store_keeper *k = xcalloc(1, sizeof(*k));
    int rc;

    if (o) {
        k->pol = *o;
    }
    if (!k->pol.free_dir) {
        k->pol.free_reserve_bytes = 0;
    }
    if (k->pol.cut_every_ns <= 0) {
        k->pol.cut_every_ns = VG_NS_PER_SEC;
    }
    if (k->pol.seal_every_ns <= 0) {
        k->pol.seal_every_ns = 10 * VG_NS_PER_SEC;
    }
    if (k->pol.seal_grace_ns <= 0) {
        k->pol.seal_grace_ns = 60 * VG_NS_PER_SEC;
    }
    if (k->pol.retention_every_ns <= 0) {
        k->pol.retention_every_ns = 60 * VG_NS_PER_SEC;
    }
    if (k->pol.disk_check_every_ns <= 0) {
        k->pol.disk_check_every_ns = VG_NS_PER_SEC;
    }
    if (k->pol.checkpoint_every_ns <= 0) {
        k->pol.checkpoint_every_ns = 60 * VG_NS_PER_SEC;
    }
    if (k->pol.compact_every_ns <= 0) {
        k->pol.compact_every_ns = 10 * VG_NS_PER_SEC; /* as often as the seal pass */
    }
    k->st = st;
    if ((rc = uv_mutex_init(&k->mu)) < 0 || (rc = uv_cond_init(&k->ccond)) < 0) {
        errbuf_set(eb, "store keeper: cannot init lock: %s", vg_strerror(rc));
        abort(); /* only on resource exhaustion at start-up */
    }
    store_get_stats(st, &k->g.stats);
    if (k->pol.compact) {
        if ((rc = uv_thread_create(&k->cthread, compaction_thread, k)) < 0) {
            log_warn("store: cannot start the compaction thread: %s; segments stay as "
                     "written (vigil compact)",
                     vg_strerror(rc));
            k->pol.compact = false;
        } else {
            k->cthread_started = true;
        }
    }
    *out = k;
    return 0;
}

void store_keeper_free(struct store_keeper *k)
{
    if (!k) {
        return;
    }
    /* A compaction under way stops at its next block; its temporary file goes. */
    uv_mutex_lock(&k->mu);
    k->cstop = true;
    if (k->cjob) {
        store_compact_job_cancel(k->cjob);
    }
    uv_cond_signal(&k->ccond);
    uv_mutex_unlock(&k->mu);
    if (k->cthread_started) {
        uv_thread_join(&k->cthread);
    }
    store_compact_job_free(k->cjob);
    store_close(k->st);
    uv_mutex_destroy(&k->mu);
    uv_cond_destroy(&k->ccond);
    free(k);
}
