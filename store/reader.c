/* store/reader.c: reading the store (schemas/segment.md 4) for vigil: time-range scans
 * and `vigil verify`. Read-only: the catalog is opened SQLITE_OPEN_READONLY, segment
 * files with open(O_RDONLY) and pread, so it runs beside a live writer.
 *
 * A struct store_reader belongs to one thread at a time; store_verify is
 * self-contained. Both block on disk I/O. */
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
    struct digest *dg;
    struct errbuf err; /* the last failure */
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
    digest_free(r->dg);
    free(r);
}

const char *store_reader_error(const struct store_reader *r)
{
    return errbuf_msg(&r->err);
}

static int open_segment(const char *segdir, const char *file, int *fd, uint64_t *size)
{
    char path[PATH_MAX];
    struct stat sb;

    if (seg__path(path, sizeof(path), segdir, file) < 0) {
        return -ENAMETOOLONG;
    }
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        return -errno;
    }
    if (fstat(*fd, &sb) != 0) {
        int rc = -errno;
        close(*fd);
        *fd = -1;
        return rc;
    }
    *size = (uint64_t)sb.st_size;
    return 0;
}

/* segment.md 4.2: in an open segment, a bad or incomplete block at or past the
 * committed size is in flight or an unrecovered crash tail. */
static bool in_flight(const struct seg_meta *m, const struct seg_walk *w)
{
    return m->state == SEG_OPEN && w->bad_off >= m->bytes;
}

static int scan_segment(struct store_reader *r, const struct seg_meta *m, int64_t since,
                        int64_t until, store_rec_fn fn, void *arg, struct store_scan_stats *stats)
{
    struct seg_walk w;
    int fd;
    int rc;

    memset(&w, 0, sizeof(w));
    rc = open_segment(r->segdir, m->file, &fd, &w.size);
    if (rc < 0) {
        errbuf_set(&r->err, "segment '%s': cannot open: %s", m->file, vg_strerror(rc));
        return rc;
    }
    w.fd = fd;
    w.expect = m;
    w.decode = true;
    w.skip = true;
    w.since = since;
    w.until = until;
    w.fn = fn;
    w.arg = arg;
    w.mark_off = UINT64_MAX;
    w.rbuf = &r->rbuf;
    w.dbuf = &r->dbuf;
    w.dg = r->dg;
    w.stats = stats;
    stats->segments++;
    rc = seg__walk(&w);
    close(fd);
    if (rc == VG_ECORRUPT) {
        if (in_flight(m, &w)) {
            log_debug("segment '%s': stopping at offset %" PRIu64 " (in flight: %s)", m->file,
                      w.bad_off, errbuf_msg(&w.why));
            return 0;
        }
        errbuf_set(&r->err, "segment '%s' offset %" PRIu64 ": %s", m->file, w.bad_off,
                   errbuf_msg(&w.why));
        return rc;
    }
    if (rc < 0 && !w.stopped) {
        errbuf_set(&r->err, "segment '%s': read failed: %s", m->file, vg_strerror(rc));
    }
    return rc;
}

int store_scan(struct store_reader *r, int64_t since, int64_t until, store_rec_fn fn, void *arg,
               struct store_scan_stats *stats)
{
    struct store_scan_stats local;
    struct seg_meta *rows = NULL;
    size_t n = 0;
    int rc;

    errbuf_clear(&r->err);
    if (!stats) {
        memset(&local, 0, sizeof(local));
        stats = &local;
    }
    if (since >= until) {
        return 0;
    }
    rc = catalog__list(r->cat, CATALOG_RANGE, since, until, &rows, &n);
    if (rc < 0) {
        errbuf_set(&r->err, "catalog: %s", catalog__errmsg(r->cat));
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = scan_segment(r, &rows[i], since, until, fn, arg, stats);
    }
    free(rows);
    return rc;
}

/* ---- vigil verify ---- */

struct verify {
    FILE *report;
    const char *segdir;
    struct buf rbuf;
    struct buf dbuf;
    struct digest *dg;
    unsigned segments;
    unsigned failed;
};

static void verify_line(struct verify *v, const char *file, bool ok, const char *fmt, ...)
    VG_PRINTF(4, 5);

static void verify_line(struct verify *v, const char *file, bool ok, const char *fmt, ...)
{
    va_list ap;

    v->segments++;
    v->failed += !ok;
    if (!v->report) {
        return;
    }
    fprintf(v->report, "%s: %s", file, ok ? "ok" : "FAILED");
    va_start(ap, fmt);
    vfprintf(v->report, fmt, ap);
    va_end(ap);
    fputc('\n', v->report);
}

/* Walks one file in full; row NULL for a file the catalog does not list. */
static void verify_segment(struct verify *v, const char *file, const struct seg_meta *row)
{
    struct seg_walk w;
    char hex[2 * VG_SHA256_LEN + 1];
    int fd;
    int rc;

    memset(&w, 0, sizeof(w));
    rc = open_segment(v->segdir, file, &fd, &w.size);
    if (rc < 0) {
        verify_line(v, file, false, ": cannot open: %s", vg_strerror(rc));
        return;
    }
    w.fd = fd;
    w.expect = row;
    w.decode = true;
    w.skip = false;
    w.mark_off = row ? row->bytes : UINT64_MAX;
    w.rbuf = &v->rbuf;
    w.dbuf = &v->dbuf;
    w.dg = v->dg;
    rc = seg__walk(&w);
    close(fd);
    if (rc < 0 && rc != VG_ECORRUPT) {
        verify_line(v, file, false, ": read failed: %s", vg_strerror(rc));
        return;
    }
    const char *tail = "";
    if (rc == VG_ECORRUPT) {
        bool open_tail = row ? in_flight(row, &w) : w.bad_incomplete && w.hdr_ok;
        if (!open_tail) {
            verify_line(v, file, false, " at offset %" PRIu64 ": %s", w.bad_off,
                        errbuf_msg(&w.why));
            return;
        }
        tail = " (ends in an uncommitted or in-flight block)";
    }
    vg_hex(w.chain, VG_SHA256_LEN, hex);
    if (!row) {
        verify_line(v, file, true,
                    ", not in the catalog yet (%" PRIu64 " blocks, %" PRIu64
                    " records, chain %.16s)%s",
                    w.tot.blocks, w.tot.count, hex, tail);
        return;
    }
    /* Catalog agreement: the committed prefix must end on a block boundary with the
     * recorded chain head and totals; a sealed file must end there too. */
    if (!w.mark_hit) {
        verify_line(v, file, false,
                    ": the catalog's committed size %" PRIu64
                    " is not a block boundary of the file (valid up to %" PRIu64 ")",
                    row->bytes, w.end);
        return;
    }
    if (memcmp(w.mark_chain, row->chain_head, VG_SHA256_LEN) != 0) {
        vg_hex(w.mark_chain, VG_SHA256_LEN, hex);
        verify_line(v, file, false, ": chain head %.16s... does not match the catalog's", hex);
        return;
    }
    if (!seg__totals_eq(&w.mark_tot, &row->tot)) {
        verify_line(v, file, false,
                    ": catalog counts (%" PRIu64 " records, %" PRIu64
                    " blocks) do not match the file (%" PRIu64 " records, %" PRIu64 " blocks)",
                    row->tot.count, row->tot.blocks, w.mark_tot.count, w.mark_tot.blocks);
        return;
    }
    if (row->state == SEG_SEALED && w.end != row->bytes) {
        verify_line(v, file, false, ": sealed at %" PRIu64 " bytes but the file holds %" PRIu64,
                    row->bytes, w.size);
        return;
    }
    verify_line(v, file, true, " (%" PRIu64 " blocks, %" PRIu64 " records, %s, chain %.16s)%s",
                w.tot.blocks, w.tot.count, row->state == SEG_OPEN ? "open" : "sealed", hex, tail);
}

static int cmp_meta_file(const void *a, const void *b)
{
    return strcmp(((const struct seg_meta *)a)->file, ((const struct seg_meta *)b)->file);
}

int store_verify(const char *dir, FILE *report, struct errbuf *eb)
{
    struct verify v = { .report = report };
    struct catalog *cat = NULL;
    struct seg_meta *rows = NULL;
    size_t n = 0;
    char path[PATH_MAX];
    char segdir[PATH_MAX];
    DIR *d;
    struct dirent *e;
    int rc;

    if (strlen(dir) > PATH_MAX - 2 * SEG_NAME_MAX) {
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    if (seg__path(path, sizeof(path), dir, "catalog.db") < 0 ||
        seg__path(segdir, sizeof(segdir), dir, "segments") < 0) {
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    rc = catalog__open(path, true, &cat, eb);
    if (rc < 0) {
        return rc;
    }
    rc = catalog__list(cat, CATALOG_ALL, 0, 0, &rows, &n);
    if (rc < 0) {
        errbuf_set(eb, "catalog '%s': %s", path, catalog__errmsg(cat));
        catalog__close(cat);
        return rc;
    }
    v.segdir = segdir;
    buf_init(&v.rbuf, seg__rbuf_max());
    buf_init(&v.dbuf, BLOCK_MAX_RAW);
    v.dg = digest_new();
    for (size_t i = 0; i < n; i++) {
        verify_segment(&v, rows[i].file, &rows[i]);
    }
    /* Files the catalog does not list: new segments of a running writer, or leftovers. */
    if (n > 0) {
        qsort(rows, n, sizeof(*rows), cmp_meta_file);
    }
    d = opendir(segdir);
    if (!d) {
        rc = -errno;
        errbuf_set(eb, "cannot list '%s': %s", segdir, vg_strerror(rc));
    } else {
        while ((e = readdir(d)) != NULL) {
            struct seg_meta key;
            uint64_t id;
            if (!seg__name_parse(e->d_name, &id)) {
                continue;
            }
            if (strlen(e->d_name) >= sizeof(key.file)) {
                continue; /* seg__name_parse accepted it, but no row can name it */
            }
            memcpy(key.file, e->d_name, strlen(e->d_name) + 1);
            if (n == 0 || !bsearch(&key, rows, n, sizeof(*rows), cmp_meta_file)) {
                verify_segment(&v, e->d_name, NULL);
            }
        }
        closedir(d);
    }
    if (rc == 0 && v.failed > 0) {
        errbuf_set(eb, "%u of %u segments failed verification", v.failed, v.segments);
        rc = VG_ECORRUPT;
    }
    buf_release(&v.rbuf);
    buf_release(&v.dbuf);
    digest_free(v.dg);
    free(rows);
    catalog__close(cat);
    return rc;
}
