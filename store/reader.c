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
    char jdir[PATH_MAX]; /* the journal (segment.md 5.6) */
    struct buf jbuf;     /* a journal frame's payload */
    /* The newest journal frame seen by store_reader_committed_seq, to read on from: */
    uint64_t hz_no;  /* its file (0: none yet) */
    uint64_t hz_end; /* past it */
    uint64_t hz_seq; /* its commit_seq */
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
        seg__path(r->jdir, sizeof(r->jdir), dir, JNL_DIR) < 0 ||
        seg__path(path, sizeof(path), dir, "catalog.db") < 0) {
        free(r);
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    buf_init(&r->rbuf, seg__rbuf_max());
    buf_init(&r->dbuf, BLOCK_MAX_RAW);
    buf_init(&r->ubuf, seg__ubuf_max());
    buf_init(&r->jbuf, JNL_MAX_PAYLOAD);
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
    buf_release(&r->jbuf);
    digest_free(r->dg);
    free(r);
}

/* segment.md 5.6.4: the commit_seq of the newest good frame of the journal (0: none).
 * The writer journals a commit after the catalog took its blocks, so every record up to
 * it was in a committed block or a journal file when that frame was written. */
static int journal_horizon(struct store_reader *r, uint64_t *out)
{
    uint64_t *nos = NULL;
    size_t n = 0;
    int rc = jnl__list(r->jdir, &nos, &n);

    *out = 0;
    if (rc < 0) {
        errbuf_set(&r->err, "journal: cannot list '%s': %s", r->jdir, vg_strerror(rc));
        return rc;
    }
    for (size_t i = n; i-- > 0 && *out == 0;) {
        char name[JNL_NAME_MAX];
        char path[PATH_MAX];
        struct jnl_walk w;
        struct stat sb;
        jnl__name(nos[i], name);
        if (seg__path(path, sizeof(path), r->jdir, name) < 0) {
            continue;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue; /* reclaimed meanwhile: its records are in committed blocks */
        }
        memset(&w, 0, sizeof(w));
        w.fd = fd;
        w.size = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        w.pbuf = &r->jbuf;
        w.expect_no = nos[i];
        bool cached = nos[i] == r->hz_no && w.size >= r->hz_end;
        w.from = cached ? r->hz_end : 0;
        rc = jnl__walk(&w);
        close(fd);
        if (rc < 0 && rc != VG_ECORRUPT) {
            continue; /* another version, or a read error: the catalog's horizon holds */
        }
        if (w.frames > 0) {
            r->hz_no = nos[i];
            r->hz_end = w.end;
            r->hz_seq = w.commit_seq;
            *out = w.commit_seq;
        } else if (cached) {
            *out = r->hz_seq;
        }
    }
    free(nos);
    return 0;
}

int store_reader_committed_seq(struct store_reader *r, uint64_t *out)
{
    uint64_t next;
    uint64_t jseq;
    int rc = catalog__next_seq(r->cat, &next);

    if (rc < 0) {
        errbuf_set(&r->err, "catalog: %s", catalog__errmsg(r->cat));
        return rc;
    }
    if ((rc = journal_horizon(r, &jseq)) < 0) {
        return rc;
    }
    *out = next - 1 > jseq ? next - 1 : jseq;
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
    /* segment.md 4.2, 5.6.4: an open segment up to what its row says is committed. The
     * blocks past it were written since; their acknowledged records are read from the
     * journal (once: the journal's records the row's blocks hold are left out there). */
    if (m->state == SEG_OPEN && w.size > m->bytes) {
        w.size = m->bytes;
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
    /* segment.md 5.6.4: the journal's records of [since, until) that no listed block
     * holds, in seq order; stripe 0 delivers them after its blocks. */
    struct plan_jrec *jrecs;
    size_t nj, capj;
    struct buf jbytes;
};

struct plan_jrec {
    int64_t ts;
    uint64_t seq;
    size_t off; /* in jbytes */
    size_t len;
};

/* The journal's records a plan keeps at most (bytes): far above what a journal holds
 * (its records wait block_max_age at most). */
#define PLAN_JOURNAL_MAX ((size_t)1 << 34)

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

/* segment.md 5.6.4: opens every journal file, before the catalog is listed: a file
 * removed before this had all its records in blocks the listing then sees. */
static int *journal_pin(struct store_reader *r, size_t *n, uint64_t **nos_out, int *rc)
{
    uint64_t *nos = NULL;
    int *fds;

    *rc = jnl__list(r->jdir, &nos, n);
    if (*rc < 0) {
        errbuf_set(&r->err, "journal: cannot list '%s': %s", r->jdir, vg_strerror(*rc));
        *n = 0;
        return NULL;
    }
    fds = xmalloc((*n ? *n : 1) * sizeof(*fds));
    for (size_t i = 0; i < *n; i++) {
        char name[JNL_NAME_MAX];
        char path[PATH_MAX];
        jnl__name(nos[i], name);
        fds[i] = -1;
        if (seg__path(path, sizeof(path), r->jdir, name) == 0) {
            fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        }
    }
    *nos_out = nos;
    return fds;
}

struct jcollect {
    struct store_scan_plan *p;
    const struct jnl_stored *stored;
    uint64_t last;
    int rc;
};

static int on_plan_frame(void *arg, const struct jnl_frame *f, struct span payload)
{
    struct jcollect *c = arg;
    struct store_scan_plan *p = c->p;
    struct span in = payload;
    int64_t ts;
    uint64_t seq;
    struct span rec;

    (void)f;
    while (jnl__rec_next(&in, &ts, &seq, &rec) == 1) {
        if (seq <= c->last || ts < p->since || ts >= p->until ||
            (p->seq_min != 0 && seq < p->seq_min) || jnl__stored_has(c->stored, ts, seq)) {
            continue;
        }
        c->last = seq;
        size_t off = p->jbytes.len;
        if ((c->rc = buf_append(&p->jbytes, rec.p, rec.n)) < 0) {
            return 1;
        }
        if (p->nj == p->capj) {
            p->capj = p->capj ? 2 * p->capj : 64;
            p->jrecs = xrealloc(p->jrecs, p->capj * sizeof(*p->jrecs));
        }
        p->jrecs[p->nj++] = (struct plan_jrec){ ts, seq, off, rec.n };
    }
    return 0;
}

/* The pinned journal files' records that the listed blocks do not hold. A frame that
 * fails its checks ends its file quietly: the writer may be writing it (a frame is
 * acknowledged only once synced; vigil verify reports damage). */
static int journal_collect(struct store_reader *r, struct store_scan_plan *p, const int *fds,
                           const uint64_t *nos, size_t nfds, const struct jnl_stored *stored)
{
    struct jcollect c = { .p = p, .stored = stored };

    for (size_t i = 0; i < nfds; i++) {
        struct jnl_walk w;
        struct stat sb;
        if (fds[i] < 0) {
            continue;
        }
        memset(&w, 0, sizeof(w));
        w.fd = fds[i];
        w.size = fstat(fds[i], &sb) == 0 ? (uint64_t)sb.st_size : 0;
        w.pbuf = &r->jbuf;
        w.fn = on_plan_frame;
        w.arg = &c;
        w.expect_no = nos[i];
        int rc = jnl__walk(&w);
        if (c.rc < 0) {
            errbuf_set(&r->err, "journal: over %zu bytes of records not yet in blocks",
                       (size_t)PLAN_JOURNAL_MAX);
            return c.rc;
        }
        if (rc < 0 && rc != VG_ECORRUPT && rc != VG_EFORMAT) {
            errbuf_set(&r->err, "journal '%s': read failed: %s", r->jdir, vg_strerror(rc));
            return rc;
        }
        if (rc < 0) {
            log_debug("journal '%s' file %zu: stopping at offset %" PRIu64 " (%s)", r->jdir, i,
                      w.bad_off, errbuf_msg(&w.why));
        }
    }
    return 0;
}

static int plan_make(struct store_reader *r, int64_t since, int64_t until,
                     const struct store_need *need, uint64_t seq_min, struct store_scan_plan **out,
                     struct store_scan_stats *stats)
{
    struct store_scan_plan *p = xcalloc(1, sizeof(*p));
    struct jnl_stored stored;
    size_t njfds = 0;
    int *jfds = NULL;
    uint64_t *jnos = NULL;
    int rc = 0;

    errbuf_clear(&r->err);
    memset(&stored, 0, sizeof(stored));
    *out = NULL;
    p->since = since;
    p->until = until;
    p->seq_min = seq_min;
    buf_init(&p->jbytes, PLAN_JOURNAL_MAX);
    if (since < until && (jfds = journal_pin(r, &njfds, &jnos, &rc)) == NULL) {
        free(p);
        return rc;
    }
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
            goto fail;
        }
        /* What the listed blocks hold, before rows are left out by seq (5.6.4). */
        jnl__stored_release(&stored);
        for (size_t i = 0; i < p->n; i++) {
            if (p->rows[i].tot.count > 0) {
                jnl__stored_add(&stored, p->rows[i].part_start, p->rows[i].part_end,
                                p->rows[i].tot.seq_max);
            }
        }
        jnl__stored_done(&stored);
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
    if ((rc = journal_collect(r, p, jfds, jnos, njfds, &stored)) < 0) {
        goto fail;
    }
    if ((rc = bix__query_init(&p->q, need)) < 0) {
        errbuf_set(&r->err, "what the scan needs is over the index's limits");
        goto fail;
    }
    for (size_t i = 0; i < njfds; i++) {
        if (jfds[i] >= 0) {
            close(jfds[i]);
        }
    }
    free(jfds);
    free(jnos);
    jnl__stored_release(&stored);
    *out = p;
    return 0;
fail:
    for (size_t i = 0; i < njfds; i++) {
        if (jfds[i] >= 0) {
            close(jfds[i]);
        }
    }
    free(jfds);
    free(jnos);
    jnl__stored_release(&stored);
    plan_unpin(p);
    free(p->rows);
    free(p->jrecs);
    buf_release(&p->jbytes);
    free(p);
    return rc;
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
    /* segment.md 5.6.4: the acknowledged records still only in the journal, once. */
    for (size_t i = 0; stripe == 0 && i < p->nj && rc == 0; i++) {
        const struct plan_jrec *j = &p->jrecs[i];
        if (j->seq < p->seq_min || (p->seq_max != 0 && j->seq > p->seq_max)) {
            continue;
        }
        stats->records++;
        stats->records_journal++;
        rc = fn(arg, j->ts, j->seq, (struct span){ p->jbytes.data + j->off, j->len });
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

void store_scan_plan_set_fields(struct store_scan_plan *p, uint32_t fields)
{
    p->q.fields = fields;
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
    free(p->jrecs);
    buf_release(&p->jbytes);
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
    a->records_journal += b->records_journal;
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
