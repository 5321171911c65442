/* store/reader.c: reading the store (schemas/segment.md 4) for vigil: time-range
 * scans. Read-only: the catalog is opened SQLITE_OPEN_READONLY, segment
 * files with open(O_RDONLY) and pread, so it runs beside a live writer.
 *
 * A scan's plan pins what it reads (segment.md 4.5): it opens every segment file it
 * lists as it lists them, listing again when one went in between (compaction replaced
 * it, retention deleted it), so the plan is one consistent snapshot of the catalog and
 * its files stay readable to the end of the scan, whatever the writer removes meanwhile.
 *
 * A struct store_reader belongs to one thread at a time; it blocks on disk I/O.
 * `vigil verify` lives in verify.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "store/store_int.h"

struct store_reader {
    char dir[PATH_MAX];
    char segdir[PATH_MAX];
    struct catalog *cat;
    struct buf rbuf; /* stored bytes of the block being read */
    struct buf dbuf; /* its decompressed record stream */
    struct buf ubuf; /* its unpacked records (v2) */
    struct digest *dg;
    struct errbuf err;  /* the last failure */
    uint64_t failed_id; /* the segment it was about (0: none, or not one segment's) */
};

int store_reader_open(const char *dir, struct store_reader **out, struct errbuf *eb)
{
    struct store_reader *r;
    char path[PATH_MAX];
    int rc;

    if (strlen(dir) > PATH_MAX - 2 * SEG_NAME_MAX) {
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    r = xcalloc(1, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "%s", dir);
    if (seg__path(r->segdir, sizeof(r->segdir), dir, "segments") < 0 ||
        seg__path(path, sizeof(path), dir, "catalog.db") < 0) {
        free(r);
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    buf_init(&r->rbuf, seg__rbuf_max());
    buf_init(&r->dbuf, BLOCK_MAX_RAW);
    buf_init(&r->ubuf, seg__ubuf_max());
    rc = catalog__open(path, true, &r->cat, eb);
    if (rc < 0) {
        if (rc == -ENOENT) {
            errbuf_prefix(eb, "no store at '%s'", dir);
        }
        store_reader_close(r);
        return rc;
    }
    r->dg = digest_new();
    *out = r;
    return 0;
}

void store_reader_close(struct store_reader *r)
{
    if (!r) {
        return;
    }
    catalog__close(r->cat);
    buf_release(&r->rbuf);
    buf_release(&r->dbuf);
    buf_release(&r->ubuf);
    digest_free(r->dg);
    free(r);
}

int store_reader_committed_seq(struct store_reader *r, uint64_t *out)
{
    uint64_t next;
    int rc = catalog__next_seq(r->cat, &next);

    if (rc < 0) {
        errbuf_set(&r->err, "catalog: %s", catalog__errmsg(r->cat));
        return rc;
    }
    *out = next - 1;
    return 0;
}

const char *store_reader_error(const struct store_reader *r)
{
    return errbuf_msg(&r->err);
}

/* segment.md 4.2: in an open segment, a bad or incomplete block at or past the
 * committed size is in flight or an unrecovered crash tail. */
static bool in_flight(const struct seg_meta *m, const struct seg_walk *w)
{
    return m->state == SEG_OPEN && w->bad_off >= m->bytes;
}

/* pinned: the plan's fd for m (-1: none, open it now). */
static int scan_segment(struct store_reader *r, const struct seg_meta *m, int pinned, int64_t since,
                        int64_t until, const struct bix_query *need, uint64_t seq_min,
                        uint64_t seq_max, struct store_scan_progress *progress, unsigned stripe,
                        unsigned nstripes, store_rec_fn fn, void *arg,
                        struct store_scan_stats *stats)
{
    struct seg_walk w;
    struct stat sb;
    int fd = pinned;
    int rc;

    memset(&w, 0, sizeof(w));
    if (pinned >= 0) {
        /* An open segment grows while we read: its size now, as seg__open_ro takes it. */
        rc = fstat(pinned, &sb) == 0 ? 0 : -errno;
        w.size = rc == 0 ? (uint64_t)sb.st_size : 0;
    } else {
        rc = seg__open_ro(r->segdir, m->file, &fd, &w.size);
    }
    if (rc < 0) {
        errbuf_set(&r->err, "segment '%s': cannot open: %s", m->file, vg_strerror(rc));
        r->failed_id = m->id;
        return rc;
    }
    w.mode = SEG_WALK_SCAN; /* segment.md 4.1: checksums only; chains are verify's */
    w.fd = fd;
    w.expect = m;
    w.fn = fn;
    w.arg = arg;
    w.scan.since = since;
    w.scan.until = until;
    w.scan.need = need;
    w.scan.stripe = stripe;
    w.scan.nstripes = nstripes;
    w.scan.seq_min = seq_min;
    w.scan.seq_max = seq_max;
    w.scan.progress = progress;
    w.rbuf = &r->rbuf;
    w.dbuf = &r->dbuf;
    w.dg = r->dg;
    w.ubuf = &r->ubuf;
    w.stats = stats;
    if (stripe == 0) {
        stats->segments++;
    }
    rc = seg__walk(&w);
    if (pinned < 0) {
        close(fd);
    }
    if (rc == VG_ECORRUPT) {
        if (in_flight(m, &w)) {
            log_debug("segment '%s': stopping at offset %" PRIu64 " (in flight: %s)", m->file,
                      w.bad_off, errbuf_msg(&w.why));
            return 0;
        }
        errbuf_set(&r->err, "segment '%s' offset %" PRIu64 ": %s", m->file, w.bad_off,
                   errbuf_msg(&w.why));
        r->failed_id = m->id;
        return rc;
    }
    if (rc < 0 && !w.stopped) {
        errbuf_set(&r->err, "segment '%s': read failed: %s", m->file, vg_strerror(rc));
        r->failed_id = m->id;
    }
    return rc;
}

int store_scan(struct store_reader *r, int64_t since, int64_t until, store_rec_fn fn, void *arg,
               struct store_scan_stats *stats)
{
    return store_scan_need(r, since, until, NULL, fn, arg, stats);
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

struct store_scan_plan {
    int64_t since, until;
    uint64_t seq_min;                     /* 0, or the records wanted have seq >= seq_min */
    uint64_t seq_max;                     /* 0, or the records wanted have seq <= seq_max */
    struct store_scan_progress *progress; /* NULL, or where runs count their blocks */
    struct seg_meta *rows;
    int *fds; /* rows[i]'s file, open since the plan was made; -1: opened when scanned
                 (there were more than the process may open, or it could not be opened) */
    size_t n;
    struct bix_query q;
};

/* Listing the catalog again because a listed file went: at most this many times (each
 * time, the writer finished a compaction or a deletion in between). */
#define PLAN_LIST_ATTEMPTS 64

static void plan_unpin(struct store_scan_plan *p)
{
    for (size_t i = 0; p->fds && i < p->n; i++) {
        if (p->fds[i] >= 0) {
            close(p->fds[i]);
        }
    }
    free(p->fds);
    p->fds = NULL;
}

/* Opens every listed file (segment.md 4.5). Returns how many were missing (-ENOENT), so
 * the caller lists again; *missing_sum gets a checksum of their ids, to tell a file that
 * stays missing (damage, reported by the scan) from one the writer just removed. */
static size_t plan_pin(struct store_reader *r, struct store_scan_plan *p, uint64_t *missing_sum)
{
    size_t missing = 0;
    bool room = true;

    *missing_sum = 0;
    p->fds = xmalloc((p->n ? p->n : 1) * sizeof(*p->fds));
    for (size_t i = 0; i < p->n; i++) {
        char path[PATH_MAX];
        p->fds[i] = -1;
        if (!room || seg__path(path, sizeof(path), r->segdir, p->rows[i].file) < 0) {
            continue;
        }
        p->fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        int rc = p->fds[i] < 0 ? -errno : 0;
        if (rc == -ENOENT) {
            missing++;
            *missing_sum = *missing_sum * 31 + p->rows[i].id;
        } else if (rc == -EMFILE || rc == -ENFILE) {
            /* More segments than open files allowed: the rest are opened as they are
             * scanned (as before pinning; a scan of that many files is rare). */
            log_debug("scan plan: %zu of %zu segment files pinned (%s)", i, p->n, vg_strerror(rc));
            room = false;
        }
    }
    return missing;
}

static int plan_make(struct store_reader *r, int64_t since, int64_t until,
                     const struct store_need *need, uint64_t seq_min, struct store_scan_plan **out,
                     struct store_scan_stats *stats)
{
    struct store_scan_plan *p = xcalloc(1, sizeof(*p));
    int rc = 0;

    errbuf_clear(&r->err);
    *out = NULL;
    p->since = since;
    p->until = until;
    p->seq_min = seq_min;
    uint64_t last_missing = 0;
    for (int attempt = 1; since < until; attempt++) {
        uint64_t t0 = mono_ns();
        /* Each listing reads a new snapshot of the catalog (no transaction spans them). */
        rc = catalog__list(r->cat, CATALOG_RANGE, since, until, &p->rows, &p->n);
        if (stats) {
            stats->ns_catalog += mono_ns() - t0;
        }
        if (rc < 0) {
            errbuf_set(&r->err, "catalog: %s", catalog__errmsg(r->cat));
            free(p);
            return rc;
        }
        /* A segment's catalog row holds the seq range of its committed blocks (segment.md
         * 5.2), so one that ends below seq_min has nothing the caller keeps. */
        size_t kept = 0;
        for (size_t i = 0; i < p->n; i++) {
            if (p->seq_min == 0 ||
                (p->rows[i].tot.count > 0 && p->rows[i].tot.seq_max >= p->seq_min)) {
                p->rows[kept++] = p->rows[i];
            }
        }
        p->n = kept;
        uint64_t missing_sum;
        size_t missing = plan_pin(r, p, &missing_sum);
        /* Listed, then removed before we opened it: the writer moved on; list again. The
         * same files missing twice are missing (damage, for the scan to report). */
        if (missing == 0 || (attempt > 1 && missing_sum == last_missing) ||
            attempt == PLAN_LIST_ATTEMPTS) {
            break;
        }
        last_missing = missing_sum;
        plan_unpin(p);
        free(p->rows);
        p->rows = NULL;
        p->n = 0;
    }
    if ((rc = bix__query_init(&p->q, need)) < 0) {
        errbuf_set(&r->err, "what the scan needs is over the index's limits");
        plan_unpin(p);
        free(p->rows);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int store_scan_plan_make(struct store_reader *r, int64_t since, int64_t until,
                         const struct store_need *need, struct store_scan_plan **out,
                         struct store_scan_stats *stats)
{
    return plan_make(r, since, until, need, 0, out, stats);
}

uint64_t store_scan_plan_bytes(const struct store_scan_plan *p)
{
    uint64_t b = 0;
    for (size_t i = 0; i < p->n; i++) {
        b += p->rows[i].bytes;
    }
    return b;
}

uint64_t store_scan_plan_blocks(const struct store_scan_plan *p)
{
    uint64_t b = 0;
    for (size_t i = 0; i < p->n; i++) {
        b += p->rows[i].tot.blocks;
    }
    return b;
}

int store_scan_plan_run(struct store_reader *r, const struct store_scan_plan *p, unsigned stripe,
                        unsigned nstripes, store_rec_fn fn, void *arg,
                        struct store_scan_stats *stats)
{
    struct store_scan_stats local;
    int rc = 0;

    errbuf_clear(&r->err);
    if (!stats) {
        memset(&local, 0, sizeof(local));
        stats = &local;
    }
    if (nstripes == 0 || stripe >= nstripes) {
        errbuf_set(&r->err, "stripe %u of %u", stripe, nstripes);
        return -EINVAL;
    }
    r->failed_id = 0;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        rc = scan_segment(r, &p->rows[i], p->fds ? p->fds[i] : -1, p->since, p->until, &p->q,
                          p->seq_min, p->seq_max, p->progress, stripe, nstripes, fn, arg, stats);
    }
    return rc;
}

void store_scan_plan_seq_range(struct store_scan_plan *p, uint64_t seq_min, uint64_t seq_max)
{
    size_t kept = 0;

    /* A segment's catalog row holds the seq range of its committed blocks (segment.md 5.2);
     * a pinned file left out is closed here. */
    for (size_t i = 0; i < p->n; i++) {
        bool in = seq_min <= seq_max && p->rows[i].tot.count > 0 &&
                  p->rows[i].tot.seq_max >= seq_min && p->rows[i].tot.seq_min <= seq_max;
        if (!in) {
            if (p->fds && p->fds[i] >= 0) {
                close(p->fds[i]);
            }
            continue;
        }
        p->rows[kept] = p->rows[i];
        if (p->fds) {
            p->fds[kept] = p->fds[i];
        }
        kept++;
    }
    p->n = kept;
    p->seq_min = seq_min > p->seq_min ? seq_min : p->seq_min;
    p->seq_max = seq_max == UINT64_MAX ? 0 : seq_max;
}

void store_scan_plan_set_progress(struct store_scan_plan *p, struct store_scan_progress *pr)
{
    p->progress = pr;
}

int store_scan_plan_skip(struct store_scan_plan *p, uint64_t segment_id)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->rows[i].id != segment_id) {
            continue;
        }
        if (p->fds && p->fds[i] >= 0) {
            close(p->fds[i]);
        }
        memmove(&p->rows[i], &p->rows[i + 1], (p->n - i - 1) * sizeof(*p->rows));
        if (p->fds) {
            memmove(&p->fds[i], &p->fds[i + 1], (p->n - i - 1) * sizeof(*p->fds));
        }
        p->n--;
        return 1;
    }
    return 0;
}

uint64_t store_reader_failed_segment(const struct store_reader *r)
{
    return r->failed_id;
}

void store_scan_plan_free(struct store_scan_plan *p)
{
    if (!p) {
        return;
    }
    bix__query_release(&p->q);
    plan_unpin(p);
    free(p->rows);
    free(p);
}

void store_scan_stats_add(struct store_scan_stats *a, const struct store_scan_stats *b)
{
    a->segments += b->segments;
    a->blocks_read += b->blocks_read;
    a->blocks_skipped += b->blocks_skipped;
    a->blocks_skipped_index += b->blocks_skipped_index;
    a->bytes_read += b->bytes_read;
    a->bytes_decompressed += b->bytes_decompressed;
    a->records_decoded += b->records_decoded;
    a->records_skipped += b->records_skipped;
    a->records += b->records;
    a->ns_catalog += b->ns_catalog;
    a->ns_io += b->ns_io;
    a->ns_index += b->ns_index;
    a->ns_check += b->ns_check;
    a->ns_decompress += b->ns_decompress;
    a->ns_unpack += b->ns_unpack;
    a->ns_deliver += b->ns_deliver;
}

int store_scan_need(struct store_reader *r, int64_t since, int64_t until,
                    const struct store_need *need, store_rec_fn fn, void *arg,
                    struct store_scan_stats *stats)
{
    struct store_scan_plan *p = NULL;
    int rc = store_scan_plan_make(r, since, until, need, &p, stats);
    if (rc == 0) {
        rc = store_scan_plan_run(r, p, 0, 1, fn, arg, stats);
    }
    store_scan_plan_free(p);
    return rc;
}

int store_scan_from_seq(struct store_reader *r, uint64_t seq_min, store_rec_fn fn, void *arg,
                        struct store_scan_stats *stats)
{
    struct store_scan_plan *p = NULL;
    int rc = plan_make(r, INT64_MIN, INT64_MAX, NULL, seq_min, &p, stats);
    if (rc == 0) {
        rc = store_scan_plan_run(r, p, 0, 1, fn, arg, stats);
    }
    store_scan_plan_free(p);
    return rc;
}
