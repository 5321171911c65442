/* store/retention.c: retention by age and size, deletions recorded in the catalog, and
 * legal holds (schemas/segment.md 9, 10).
 *
 * Retention deletes whole partitions, oldest first, and never one that the writer holds
 * (an open segment, or one written since the last commit) or that overlaps an active
 * hold. A partition's age counts from the later of its end (event time) and when vigild
 * received its newest records (the segments' recv_max), so events dated months ago that
 * were imported today stay for max_age from today; "oldest" for max_size is by the same
 * age. A deletion is two steps: (1) one catalog transaction moves each segment's row
 * into `deletions` (with its chain head, counts, ranges and seal signature, the reason
 * and the time); (2) the files are unlinked and the directory synced, and the rows
 * marked removed. A crash between the two leaves files whose rows say "deleted":
 * recovery (retention__finish_file) and the next run finish them, and `vigil verify`
 * reports them as deleted by policy, not as tampering.
 *
 * Threads: store_retention_run runs on the store writer's thread. The hold functions
 * run in `vigil hold`, a second catalog writer beside vigild: SQLite WAL serializes
 * the writers (BEGIN IMMEDIATE, a 10 s busy timeout), and retention reads the holds
 * inside its own write transaction, so a hold committed before a run protects. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/fsops.h"
#include "store/store_core.h"

int store_free_bytes(const char *dir, uint64_t *out)
{
    struct statvfs sv;

    if (statvfs(dir, &sv) != 0) {
        return -errno;
    }
    *out = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    return 0;
}

/* Removes segdir/name; a file already gone is fine. */
static int remove_file(const struct fsops *fs, const char *segdir, const char *name)
{
    char path[PATH_MAX];
    int rc = seg__path(path, sizeof(path), segdir, name);

    if (rc == 0) {
        rc = fs->unlink(fs->ctx, path);
    }
    return rc == -ENOENT ? 0 : rc;
}

int retention__finish_file(struct catalog *cat, const struct fsops *fs, const char *segdir,
                           const char *name, uint64_t id)
{
    struct catalog_deletion d;
    int rc = catalog__deletion_get(cat, id, &d);

    if (rc <= 0) {
        return rc;
    }
    rc = remove_file(fs, segdir, name);
    if (rc == 0) {
        rc = fs->fsync_dir(fs->ctx, segdir);
    }
    if (rc < 0) {
        log_error("segment '%s': deleted by retention (%s) but the file cannot be removed: %s",
                  name, d.reason, vg_strerror(rc));
        return 1; /* never recovered back into the store; retried next time */
    }
    log_info("segment '%s': deleted by retention (%s); removed the file left by a crash", name,
             d.reason);
    if (catalog__deletion_removed(cat, id, vg_now_ns()) < 0) {
        log_warn("segment '%s': cannot record the file's removal", name);
    }
    return 1;
}

static bool overlaps(int64_t a0, int64_t a1, int64_t b0, int64_t b1)
{
    return a0 < b1 && b0 < a1;
}

static int cmp_part(const void *pa, const void *pb)
{
    const struct seg_meta *a = pa;
    const struct seg_meta *b = pb;

    if (a->part_start != b->part_start) {
        return a->part_start < b->part_start ? -1 : 1;
    }
    if (a->part_end != b->part_end) {
        return a->part_end < b->part_end ? -1 : 1;
    }
    return a->id < b->id ? -1 : a->id > b->id;
}

/* One partition: rows [i, j) of the sorted rows. */
struct part {
    size_t i, j;
    int64_t start, end;
    int64_t age_from; /* the later of its end and when its newest records were received */
    uint64_t bytes;
    bool all_sealed;
};

/* Oldest first by age_from, then by event time. */
static int cmp_age(const void *pa, const void *pb)
{
    const struct part *a = pa;
    const struct part *b = pb;

    if (a->age_from != b->age_from) {
        return a->age_from < b->age_from ? -1 : 1;
    }
    return a->start < b->start ? -1 : a->start > b->start;
}

/* segment.md 9: a partition ages from the later of its end (event time) and the newest
 * recv_max of its segments (when vigild received them; the creation time for a row that
 * does not say), so an import of old events is kept for max_age after the import. */
static struct part *partitions(const struct seg_meta *rows, size_t nrows, size_t *np)
{
    struct part *v = xcalloc(nrows + 1, sizeof(*v));
    size_t n = 0;

    for (size_t i = 0, j; i < nrows; i = j) {
        struct part *p = &v[n++];
        p->i = i;
        p->start = rows[i].part_start;
        p->end = rows[i].part_end;
        p->age_from = p->end;
        p->all_sealed = true;
        for (j = i; j < nrows && rows[j].part_start == p->start && rows[j].part_end == p->end;
             j++) {
            int64_t recv = rows[j].recv_max != 0 ? rows[j].recv_max : rows[j].created;
            p->all_sealed &= rows[j].state == SEG_SEALED;
            p->bytes += rows[j].bytes;
            if (recv > p->age_from) {
                p->age_from = recv;
            }
        }
        p->j = j;
    }
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_age);
    }
    *np = n;
    return v;
}

/* Removes the files of deletions not yet marked removed (this run's and earlier). */
static void remove_pending(struct catalog *cat, const struct fsops *fs, const char *segdir)
{
    struct catalog_deletion *d = NULL;
    size_t n = 0;
    bool any = false;

    if (catalog__deletions_list(cat, true, &d, &n) < 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = remove_file(fs, segdir, d[i].m.file);
        if (rc < 0) {
            log_error("segment '%s': deleted by retention but the file cannot be removed: %s "
                      "(retried)",
                      d[i].m.file, vg_strerror(rc));
            d[i].file_removed = -1;
            continue;
        }
        any = true;
    }
    if (any) {
        int rc = fs->fsync_dir(fs->ctx, segdir);
        if (rc < 0) {
            log_warn("store: fsync of '%s' after deletions: %s", segdir, vg_strerror(rc));
            free(d);
            return;
        }
        int64_t now = vg_now_ns();
        if (catalog__begin(cat) == 0) {
            int rc2 = 0;
            for (size_t i = 0; rc2 == 0 && i < n; i++) {
                if (d[i].file_removed == 0) {
                    rc2 = catalog__deletion_removed(cat, d[i].m.id, now);
                }
            }
            if (rc2 == 0 && catalog__commit(cat) == 0) {
                free(d);
                return;
            }
            catalog__rollback(cat);
        }
        log_warn("store: cannot record the removal of deleted segments' files (retried)");
    }
    free(d);
}

int store_retention_run(struct store *st, const struct store_retention *pol, int64_t now_ns,
                        struct store_retention_result *res)
{
    struct catalog *cat = st->cat;
    const struct fsops *fs = st->fs;
    const char *segdir = st->segdir;
    struct seg_meta *rows = NULL;
    struct catalog_seal *seals = NULL;
    struct store_hold *holds = NULL;
    size_t nrows = 0;
    size_t nseals = 0;
    size_t nholds = 0;
    size_t cap = 0;
    struct part *parts = NULL;
    size_t nparts = 0;
    uint64_t total = 0;
    int64_t cutoff = INT64_MIN;
    int rc;

    memset(res, 0, sizeof(*res));
    if (pol->max_age_ns > 0 && now_ns > INT64_MIN + pol->max_age_ns) {
        cutoff = now_ns - pol->max_age_ns;
    }
    rc = catalog__begin(cat);
    if (rc < 0) {
        return rc;
    }
    if ((rc = catalog__list(cat, CATALOG_ALL, 0, 0, &rows, &nrows)) < 0 ||
        (rc = catalog__seals_list(cat, &seals, &nseals)) < 0 ||
        (rc = catalog__holds_list(cat, true, &holds, &nholds)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < nrows; i++) {
        total += rows[i].bytes;
    }
    if (nrows > 0) {
        qsort(rows, nrows, sizeof(*rows), cmp_part);
    }
    parts = partitions(rows, nrows, &nparts);
    for (size_t pi = 0; pi < nparts; pi++) {
        const struct part *p = &parts[pi];
        int64_t ps = p->start;
        int64_t pe = p->end;
        const char *reason = NULL;
        if (p->age_from <= cutoff) {
            reason = "max_age";
        } else if (pol->max_size_bytes > 0 && total > pol->max_size_bytes) {
            reason = "max_size";
        } else {
            continue;
        }
        if (!p->all_sealed || store__part_in_use(st, ps, pe)) {
            res->busy++;
            continue;
        }
        bool held = false;
        for (size_t h = 0; h < nholds && !held; h++) {
            held = overlaps(ps, pe, holds[h].since, holds[h].until);
        }
        if (held) {
            res->held++;
            continue;
        }
        /* segment.md 13.4: the DELETE entries first (none for a segment whose entry a
         * crash left ahead of the catalog last time). */
        struct sealseq_entry *ev = xcalloc(p->j - p->i, sizeof(*ev));
        size_t nev = 0;
        for (size_t k = p->i; k < p->j; k++) {
            const struct sealseq_entry *last = sealseq__last(st->seq, rows[k].id);
            if (last && last->type == SEALSEQ_DELETE) {
                continue;
            }
            sealseq__from_meta(&ev[nev], SEALSEQ_DELETE,
                               strcmp(reason, "max_age") == 0 ? SEALSEQ_MAX_AGE : SEALSEQ_MAX_SIZE,
                               &rows[k]);
            ev[nev++].time = now_ns;
        }
        rc = sealseq__append(st->seq, ev, nev, st->key);
        free(ev);
        if (rc < 0) {
            goto out;
        }
        for (size_t k = p->i; k < p->j; k++) {
            struct catalog_deletion d;
            memset(&d, 0, sizeof(d));
            d.m = rows[k];
            for (size_t s = 0; s < nseals; s++) {
                if (seals[s].id == rows[k].id && seals[s].is_signed) {
                    d.is_signed = true;
                    memcpy(d.key_id, seals[s].key_id, sizeof(d.key_id));
                    memcpy(d.sig, seals[s].sig, sizeof(d.sig));
                }
            }
            snprintf(d.reason, sizeof(d.reason), "%s", reason);
            d.deleted = now_ns;
            rc = catalog__deletion_add(cat, &d);
            if (rc < 0) {
                goto out;
            }
            if (res->ndeleted == cap) {
                cap = cap ? 2 * cap : 8;
                res->deleted = xrealloc(res->deleted, cap * sizeof(*res->deleted));
            }
            struct store_deleted *x = &res->deleted[res->ndeleted++];
            memset(x, 0, sizeof(*x));
            x->segment_id = rows[k].id;
            snprintf(x->file, sizeof(x->file), "%s", rows[k].file);
            x->part_start = ps;
            x->part_end = pe;
            x->ts_min = rows[k].tot.ts_min;
            x->ts_max = rows[k].tot.ts_max;
            x->count = rows[k].tot.count;
            x->bytes = rows[k].bytes;
            x->reason = reason;
        }
        total -= p->bytes;
    }
    rc = catalog__commit(cat);
out:
    if (rc < 0) {
        catalog__rollback(cat);
        free(res->deleted);
        res->deleted = NULL;
        res->ndeleted = 0;
    }
    res->bytes_total = total;
    res->over_size = pol->max_size_bytes > 0 && total > pol->max_size_bytes;
    free(parts);
    free(rows);
    free(seals);
    store_holds_free(holds, nholds);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < res->ndeleted; i++) {
        const struct store_deleted *x = &res->deleted[i];
        char t0[40];
        char t1[40];
        vg_time_format(x->part_start, 0, t0, sizeof(t0));
        vg_time_format(x->part_end, 0, t1, sizeof(t1));
        log_info("retention: deleted segment '%s' (partition %s .. %s, %" PRIu64
                 " records, %" PRIu64 " bytes): %s",
                 x->file, t0, t1, x->count, x->bytes,
                 strcmp(x->reason, "max_age") == 0
                     ? "ended and received longer ago than store.retention.max_age"
                     : "store over store.retention.max_size");
    }
    if (res->ndeleted > 0) {
        char head[2 * VG_SHA256_LEN + 1];
        vg_hex(st->seq->head, VG_SHA256_LEN, head);
        /* segment.md 13.4: the head, outside the store (13.7). */
        log_info("retention: seal sequence at entry %" PRIu64 ", head %s", st->seq->n - 1, head);
    }
    remove_pending(cat, fs, segdir);
    return (int)res->ndeleted;
}

/* ---- legal holds (segment.md 10) ---- */

static int hold_catalog(const char *dir, struct catalog **out, struct errbuf *eb)
{
    char path[PATH_MAX];
    struct stat sb;

    if (seg__path(path, sizeof(path), dir, "catalog.db") < 0) {
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    if (stat(path, &sb) != 0) {
        int rc = -errno;
        errbuf_set(eb, "no store at '%s' (%s: %s)", dir, path, vg_strerror(rc));
        return rc;
    }
    /* Read-write beside vigild: WAL, busy timeout (catalog__open). */
    return catalog__open(path, false, out, eb);
}

int store_hold_add(const char *dir, const struct store_hold *h, int64_t *id, struct errbuf *eb)
{
    struct catalog *cat = NULL;
    int rc;

    if (h->since >= h->until) {
        errbuf_set(eb, "a hold needs since < until");
        return -EINVAL;
    }
    if (!h->reason || !*h->reason || !h->created_by || !*h->created_by) {
        errbuf_set(eb, "a hold needs a reason");
        return -EINVAL;
    }
    rc = hold_catalog(dir, &cat, eb);
    if (rc == 0) {
        rc = catalog__hold_add(cat, h, id);
        if (rc < 0) {
            errbuf_set(eb, "cannot add the hold: %s", catalog__errmsg(cat));
        }
    }
    catalog__close(cat);
    return rc;
}

int store_hold_list(const char *dir, struct store_hold **out, size_t *n, struct errbuf *eb)
{
    struct catalog *cat = NULL;
    char path[PATH_MAX];
    int rc;

    if (seg__path(path, sizeof(path), dir, "catalog.db") < 0) {
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    rc = catalog__open(path, true, &cat, eb);
    if (rc == -ENOENT) {
        errbuf_prefix(eb, "no store at '%s'", dir);
    }
    if (rc == 0) {
        rc = catalog__holds_list(cat, false, out, n);
        if (rc < 0) {
            errbuf_set(eb, "cannot list holds: %s", catalog__errmsg(cat));
        }
    }
    catalog__close(cat);
    return rc;
}

int store_hold_release(const char *dir, int64_t id, const char *who, const char *reason,
                       int64_t now_ns, struct errbuf *eb)
{
    struct catalog *cat = NULL;
    int rc;

    if (!reason || !*reason) {
        errbuf_set(eb, "releasing a hold needs a reason");
        return -EINVAL;
    }
    rc = hold_catalog(dir, &cat, eb);
    if (rc == 0) {
        rc = catalog__hold_release(cat, id, now_ns, who, reason);
        if (rc == -ENOENT) {
            errbuf_set(eb, "no hold %" PRId64, id);
        } else if (rc == -EALREADY) {
            errbuf_set(eb, "hold %" PRId64 " was released before", id);
        } else if (rc < 0) {
            errbuf_set(eb, "cannot release hold %" PRId64 ": %s", id, catalog__errmsg(cat));
        }
    }
    catalog__close(cat);
    return rc;
}
