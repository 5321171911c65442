/* store/reconcile.c: the seal sequence at store_open (schemas/segment.md 13.4, 13.5).
 * Before recovery: a store without a sequence starts one (START, and for what the
 * catalog already holds, adopted entries), a writer with another key than the one the
 * sequence names says so (KEY). After recovery: the catalog is brought in line with the
 * sequence, never the other way round: a segment the sequence sealed gets its sealed
 * row back (when its file is exactly what was sealed), one it deleted is deleted (when
 * that entry is this collector's), an open row it does not know gets an OPEN entry.
 *
 * Thread: the store writer's, inside store_open; blocks on disk I/O and SQLite. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/fsops.h"
#include "store/store_core.h"

/* The file header of a sealed segment (compacted ones name what they replace). */
static bool read_header(const struct store *st, const char *file, struct seg_hdr *h)
{
    uint8_t hb[SEG_HDR_LEN];
    uint64_t size;
    struct errbuf why;
    int fd;
    bool ok = false;

    if (seg__open_ro(st->segdir, file, &fd, &size) == 0) {
        ok = pread(fd, hb, sizeof(hb), 0) == (ssize_t)sizeof(hb) &&
             seg__hdr_decode(hb, h, &why) == 0;
        close(fd);
    }
    return ok;
}

static unsigned delete_reason(const char *reason)
{
    return strcmp(reason, "max_age") == 0    ? SEALSEQ_MAX_AGE
           : strcmp(reason, "max_size") == 0 ? SEALSEQ_MAX_SIZE
                                             : SEALSEQ_REPLACED;
}

static const char *delete_reason_str(unsigned reason)
{
    return reason == SEALSEQ_MAX_AGE    ? "max_age"
           : reason == SEALSEQ_MAX_SIZE ? "max_size"
                                        : "compacted";
}

/* segment.md 13.5: START, then an adopted entry for each deletion and row. */
static int start_sequence(struct store *st, struct sealseq_entry *start)
{
    struct seg_meta *rows = NULL;
    struct catalog_deletion *dels = NULL;
    struct catalog_seal *seals = NULL;
    size_t nrows = 0;
    size_t ndels = 0;
    size_t nseals = 0;
    uint64_t next_seq = 1;
    int rc;

    if ((rc = catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &nrows)) < 0 ||
        (rc = catalog__deletions_list(st->cat, false, &dels, &ndels)) < 0 ||
        (rc = catalog__seals_list(st->cat, &seals, &nseals)) < 0 ||
        (rc = catalog__next_seq(st->cat, &next_seq)) < 0) {
        goto out;
    }
    struct sealseq_entry *v = xcalloc(1 + ndels + nrows, sizeof(*v));
    struct seg_hdr *hdrs = xcalloc(nrows + 1, sizeof(*hdrs));
    bool *compacted = xcalloc(nrows + 1, sizeof(bool));
    size_t n = 1;
    uint64_t max_id = 0;

    for (size_t i = 0; i < nrows; i++) {
        max_id = rows[i].id > max_id ? rows[i].id : max_id;
        compacted[i] = rows[i].state == SEG_SEALED && read_header(st, rows[i].file, &hdrs[i]) &&
                       (hdrs[i].flags & SEG_F_COMPACTED);
    }
    for (size_t i = 0; i < ndels; i++) {
        struct sealseq_entry *e = &v[n++];
        max_id = dels[i].m.id > max_id ? dels[i].m.id : max_id;
        sealseq__from_meta(e, SEALSEQ_DELETE, delete_reason(dels[i].reason), &dels[i].m);
        e->time = dels[i].deleted;
        e->flags = SEALSEQ_F_ADOPTED;
        for (size_t k = 0; k < nrows && e->reason == SEALSEQ_REPLACED; k++) {
            if (compacted[k] && hdrs[k].replaces_id == dels[i].m.id) {
                e->other_id = rows[k].id;
            }
        }
    }
    for (size_t i = 0; i < nrows; i++) {
        struct sealseq_entry *e = &v[n++];
        if (rows[i].state == SEG_OPEN) {
            sealseq__from_meta(e, SEALSEQ_OPEN, 0, &rows[i]);
            e->time = vg_now_ns();
        } else {
            bool ended = false;
            for (size_t k = 0; k < nseals; k++) {
                ended |=
                    seals[k].id == rows[i].id && strcmp(seals[k].reason, SEAL_REASON_ENDED) == 0;
            }
            sealseq__from_meta(e, SEALSEQ_SEAL,
                               compacted[i] ? SEALSEQ_COMPACTED
                               : ended      ? SEALSEQ_ENDED
                                            : SEALSEQ_UNTRUSTED,
                               &rows[i]);
            if (compacted[i]) {
                e->other_id = hdrs[i].replaces_id;
                memcpy(e->extra, hdrs[i].records_digest, VG_SHA256_LEN);
            }
        }
        e->flags = SEALSEQ_F_ADOPTED;
    }
    *start = (struct sealseq_entry){ .type = SEALSEQ_START, .time = vg_now_ns() };
    start->flags = nrows + ndels > 0 ? SEALSEQ_F_ADOPTED : 0;
    start->count = nrows;
    start->seq_max = next_seq - 1;
    start->other_id = max_id;
    if (st->key) {
        sign_key_public_raw(st->key, start->extra);
    }
    v[0] = *start;
    rc = sealseq__append(st->seq, v, n, st->key);
    if (rc == 0 && n > 1) {
        log_warn("store '%s': started its seal sequence on a store that held %zu segments and "
                 "%zu deletions: they are vouched for from now on (segment.md 13.5)",
                 st->dir, nrows, ndels);
    }
    free(v);
    free(hdrs);
    free(compacted);
out:
    free(rows);
    free(dels);
    free(seals);
    return rc;
}

int reconcile__start(struct store *st, struct errbuf *eb)
{
    struct sealseq_entry e;
    uint8_t pub[SIGN_PUB_LEN] = { 0 };
    int rc;

    if (st->seq->created) {
        rc = start_sequence(st, &e);
        if (rc < 0) {
            errbuf_set(eb, "store '%s': cannot start the seal sequence: %s", st->dir,
                       vg_strerror(rc));
        }
        return rc;
    }
    if (!st->key) {
        return 0; /* entries go unsigned until a key exists (segment.md 8.4) */
    }
    sign_key_public_raw(st->key, pub);
    if (memcmp(pub, st->seq->key_pub, sizeof(pub)) == 0) {
        return 0;
    }
    /* segment.md 13.4: another key from here on (or the first, after running without). */
    memset(&e, 0, sizeof(e));
    e.type = SEALSEQ_KEY;
    e.time = vg_now_ns();
    memcpy(e.extra, pub, sizeof(pub));
    rc = sealseq__append(st->seq, &e, 1, st->key);
    if (rc < 0) {
        errbuf_set(eb, "store '%s': cannot record the signing key in the seal sequence: %s",
                   st->dir, vg_strerror(rc));
        return rc;
    }
    log_info("store '%s': the seal sequence is signed with another key from entry %" PRIu64,
             st->dir, e.index);
    return 0;
}

/* A segment the sequence sealed whose row is open or missing (a crash between the
 * entry and the catalog, or an edit): its row back from the entry when the file is
 * exactly what was sealed; else its row (if any) sealed as it is. */
static int finish_seal(struct store *st, const struct sealseq_entry *e, const struct seg_meta *row)
{
    struct seg_meta m;
    struct seg_walk w;
    int fd;
    int rc;

    sealseq__to_meta(e, &m);
    memset(&w, 0, sizeof(w));
    rc = seg__open_ro(st->segdir, m.file, &fd, &w.size);
    if (rc == 0) {
        w.mode = SEG_WALK_RECOVER;
        w.fd = fd;
        w.expect = &m;
        w.rbuf = &st->rbuf;
        w.dbuf = &st->dbuf;
        w.dg = st->dg;
        rc = seg__walk(&w);
        close(fd);
    }
    bool same = rc == 0 && w.end == m.bytes && w.size == m.bytes &&
                memcmp(w.chain, m.chain_head, VG_SHA256_LEN) == 0 && seg__totals_eq(&w.tot, &m.tot);
    if (!same) {
        log_error("segment '%s': the seal sequence sealed it (entry %" PRIu64 ": %" PRIu64
                  " records, %" PRIu64 " bytes) but its file is not that: %s; vigil verify "
                  "reports it",
                  m.file, e->index, e->count, e->bytes,
                  rc == -ENOENT ? "missing"
                  : rc < 0      ? errbuf_msg(&w.why)
                                : "it differs");
        return row ? catalog__seal(st->cat, row->id, e->time) : 0;
    }
    rc = catalog__begin(st->cat);
    if (rc == 0) {
        rc = catalog__put(st->cat, &m);
    }
    if (rc == 0) {
        rc = integrity__seal_row(st->cat, st->key, &m, vg_now_ns());
    }
    if (rc == 0) {
        rc = catalog__commit(st->cat);
    }
    if (rc < 0) {
        catalog__rollback(st->cat);
        return rc;
    }
    log_warn("segment '%s': sealed by the seal sequence (entry %" PRIu64 ") but %s the catalog: "
             "its row is restored from the entry",
             m.file, e->index, row ? "open in" : "missing from");
    return 0;
}

static bool held(const struct store_hold *h, size_t n, int64_t start, int64_t end)
{
    for (size_t i = 0; i < n; i++) {
        if (start < h[i].until && h[i].since < end) {
            return true;
        }
    }
    return false;
}

/* A segment the sequence deleted that the catalog still lists, or whose deletion it
 * does not record: the deletion is finished, if this collector's key signed it. */
static int finish_delete(struct store *st, const struct sealseq_entry *e,
                         const struct seg_meta *row, const struct store_hold *holds, size_t nholds)
{
    struct catalog_deletion d;
    struct catalog_seal *seals = NULL;
    size_t nseals = 0;
    int rc;

    memset(&d, 0, sizeof(d));
    if (row) {
        d.m = *row;
    } else {
        sealseq__to_meta(e, &d.m);
    }
    if (!st->key || sealseq_check(e, st->key) != 0) {
        log_error("segment '%s': the seal sequence deletes it (entry %" PRIu64 ") but that "
                  "entry is not signed by this collector's key: not acted on",
                  d.m.file, e->index);
        return 0;
    }
    if (held(holds, nholds, e->part_start, e->part_end)) {
        log_error("segment '%s': the seal sequence deletes it (entry %" PRIu64 ") but a legal "
                  "hold now covers it: kept",
                  d.m.file, e->index);
        return 0;
    }
    if ((rc = catalog__seals_list(st->cat, &seals, &nseals)) < 0) {
        return rc;
    }
    for (size_t i = 0; i < nseals; i++) {
        if (seals[i].id == d.m.id && seals[i].is_signed) {
            d.is_signed = true;
            memcpy(d.key_id, seals[i].key_id, sizeof(d.key_id));
            memcpy(d.sig, seals[i].sig, sizeof(d.sig));
        }
    }
    free(seals);
    snprintf(d.reason, sizeof(d.reason), "%s", delete_reason_str(e->reason));
    d.deleted = e->time;
    rc = catalog__begin(st->cat);
    if (rc == 0) {
        rc = catalog__deletion_add(st->cat, &d);
    }
    if (rc == 0) {
        rc = catalog__commit(st->cat);
    }
    if (rc < 0) {
        catalog__rollback(st->cat);
        return rc;
    }
    log_warn("segment '%s': deleted by the seal sequence (entry %" PRIu64 ", %s) but not in the "
             "catalog: deletion finished",
             d.m.file, e->index, d.reason);
    rc = retention__finish_file(st->cat, st->fs, st->segdir, d.m.file, d.m.id);
    return rc < 0 ? rc : 0;
}

static int cmp_meta_id(const void *a, const void *b)
{
    uint64_t x = ((const struct seg_meta *)a)->id;
    uint64_t y = ((const struct seg_meta *)b)->id;
    return x < y ? -1 : x > y;
}

int reconcile__catalog(struct store *st)
{
    struct seg_meta *rows = NULL;
    struct store_hold *holds = NULL;
    struct sealseq_entry *adopt = NULL;
    size_t nrows = 0;
    size_t nholds = 0;
    size_t nadopt = 0;
    int rc;

    if ((rc = catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &nrows)) < 0 ||
        (rc = catalog__holds_list(st->cat, true, &holds, &nholds)) < 0) {
        goto out;
    }
    if (nrows > 0) {
        qsort(rows, nrows, sizeof(*rows), cmp_meta_id);
    }
    /* The map may grow below (OPEN entries): walk a copy of what it holds now. */
    size_t nseg = st->seq->map.n;
    struct sealseq_seg *segs = xmalloc((nseg ? nseg : 1) * sizeof(*segs));
    if (nseg > 0) {
        memcpy(segs, st->seq->map.v, nseg * sizeof(*segs));
    }
    for (size_t i = 0; rc == 0 && i < nseg; i++) {
        const struct sealseq_entry *e = &segs[i].last;
        struct seg_meta key = { .id = segs[i].id };
        const struct seg_meta *row =
            nrows ? bsearch(&key, rows, nrows, sizeof(*rows), cmp_meta_id) : NULL;
        struct catalog_deletion d;
        if (e->type == SEALSEQ_SEAL && (!row || row->state == SEG_OPEN)) {
            rc = finish_seal(st, e, row);
        } else if (e->type == SEALSEQ_DELETE &&
                   (row || catalog__deletion_get(st->cat, e->segment_id, &d) == 0)) {
            rc = finish_delete(st, e, row, holds, nholds);
        }
    }
    free(segs);
    /* Open rows the sequence does not name (a file adopted by recovery). */
    for (size_t i = 0; rc == 0 && i < nrows; i++) {
        if (rows[i].state == SEG_OPEN && !sealseq__last(st->seq, rows[i].id)) {
            adopt = xrealloc(adopt, (nadopt + 1) * sizeof(*adopt));
            sealseq__from_meta(&adopt[nadopt], SEALSEQ_OPEN, 0, &rows[i]);
            adopt[nadopt].flags = SEALSEQ_F_ADOPTED;
            adopt[nadopt++].time = vg_now_ns();
        }
    }
    if (rc == 0) {
        rc = sealseq__append(st->seq, adopt, nadopt, st->key);
    }
out:
    free(adopt);
    free(rows);
    store_holds_free(holds, nholds);
    return rc;
}
