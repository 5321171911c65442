/* store/verify.c: `vigil verify` (schemas/segment.md 11): every segment file walked in
 * full (checksums, chain, decompression, record streams), the catalog's agreement with
 * the files (counts, sizes, ranges, chain heads), every seal signature, the signing
 * keys, and the deletions retention and compaction recorded, so a segment that policy
 * deleted ("deleted by policy") or compaction replaced ("replaced by") is told apart
 * from one that went missing, and the two from each other.
 *
 * Read-only: the catalog is opened SQLITE_OPEN_READONLY and files with O_RDONLY, so it
 * runs beside a live vigild. A segment the writer deletes or seals while we look is
 * looked up again before it is reported. Self-contained; blocks on disk I/O. */
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
#include "common/time.h"
#include "common/xalloc.h"
#include "store/store_int.h"

struct vkey {
    char key_id[SIGN_KEY_ID_LEN + 1];
    struct sign_key *k;
};

struct verify {
    FILE *report;
    const char *dir;
    const char *segdir;
    struct catalog *cat;
    struct buf rbuf;
    struct buf dbuf;
    struct digest *dg;
    struct vkey *keys; /* keys signatures may be made by */
    size_t nkeys;
    bool trusted_only; /* --key: only keys[0] */
    struct catalog_seal *seals;
    size_t nseals;
    struct store_verify_summary sum;
    struct replaced { /* compacted segments seen: which id each replaces (segment.md 12) */
        uint64_t id;
        char file[SEG_NAME_MAX];
    } * repl;
    size_t nrepl;
};

/* A deletion with this reason is compaction's (segment.md 12), not a policy's. */
#define COMPACTED_REASON "compacted"

static void line(struct verify *v, const char *file, bool ok, const char *fmt, ...) VG_PRINTF(4, 5);

static void line(struct verify *v, const char *file, bool ok, const char *fmt, ...)
{
    va_list ap;

    v->sum.segments++;
    v->sum.ok += ok;
    v->sum.failed += !ok;
    if (!v->report) {
        return;
    }
    fprintf(v->report, "%s: %s", file, ok ? "ok" : "FAILED");
    va_start(ap, fmt);
    vfprintf(v->report, fmt, ap);
    va_end(ap);
    fputc('\n', v->report);
}

/* A finding about the catalog or the keys rather than one segment. */
static void finding(struct verify *v, const char *what, const char *fmt, ...) VG_PRINTF(3, 4);

static void finding(struct verify *v, const char *what, const char *fmt, ...)
{
    va_list ap;

    v->sum.failed++;
    if (!v->report) {
        return;
    }
    fprintf(v->report, "%s: FAILED: ", what);
    va_start(ap, fmt);
    vfprintf(v->report, fmt, ap);
    va_end(ap);
    fputc('\n', v->report);
}

static const struct catalog_seal *seal_of(const struct verify *v, uint64_t id)
{
    size_t lo = 0;
    size_t hi = v->nseals;

    while (lo < hi) { /* seals are listed by segment id */
        size_t mid = lo + (hi - lo) / 2;
        if (v->seals[mid].id == id) {
            return &v->seals[mid];
        }
        if (v->seals[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static const struct vkey *key_of(const struct verify *v, const char *key_id)
{
    for (size_t i = 0; i < v->nkeys; i++) {
        if (strcmp(v->keys[i].key_id, key_id) == 0) {
            return &v->keys[i];
        }
    }
    return NULL;
}

/* Checks a seal signature over m. Returns NULL when good, else why not. */
static const char *check_sig(struct verify *v, const struct seg_meta *m, bool is_signed,
                             const char *key_id, const uint8_t *sig)
{
    uint8_t msg[SEAL_MSG_LEN];
    const struct vkey *k;

    if (!is_signed) {
        return "sealed but not signed";
    }
    k = key_of(v, key_id);
    if (!k) {
        return v->trusted_only ? "signed by another key than the trusted one (--key)"
                               : "signed by a key the catalog does not record";
    }
    integrity__seal_msg(m, msg);
    if (sign_check(k->k, msg, sizeof(msg), sig) < 0) {
        return "signature does not match the catalog row (its counts, sizes, ranges, seal "
               "time or chain head were changed, or the signature was)";
    }
    snprintf(v->sum.key_id, sizeof(v->sum.key_id), "%s", key_id);
    return NULL;
}

/* What a failed walk means, in words (segment.md 3.6). */
static const char *hint(const struct seg_walk *w)
{
    const char *why = errbuf_msg(&w->why);

    if (strncmp(why, "chain hash mismatch", 19) == 0) {
        return " (this block, or one before it, was altered, removed, inserted or reordered)";
    }
    if (strncmp(why, "checksum mismatch", 17) == 0) {
        return " (the block's bytes were altered)";
    }
    if (strncmp(why, "bad block magic", 15) == 0) {
        return " (no block starts here: bytes were removed or inserted before it)";
    }
    return "";
}

/* Walks one file in full; row NULL for a file the catalog does not list. */
static void verify_segment(struct verify *v, const char *file, const struct seg_meta *row)
{
    struct seg_walk w;
    char hex[2 * VG_SHA256_LEN + 1];
    int fd;
    int rc;

    memset(&w, 0, sizeof(w));
    rc = seg__open_ro(v->segdir, file, &fd, &w.size);
    if (rc == -ENOENT && row) {
        struct catalog_deletion d;
        /* Deleted by retention (or replaced by compaction) since we listed the catalog? */
        if (catalog__deletion_get(v->cat, row->id, &d) == 1) {
            if (strcmp(d.reason, COMPACTED_REASON) == 0) {
                v->sum.replaced++;
            } else {
                v->sum.deleted++;
            }
            return;
        }
        line(v, file, false,
             ": file missing: the catalog lists it (%" PRIu64 " records in %" PRIu64
             " blocks, %" PRIu64 " bytes) and records no deletion by policy",
             row->tot.count, row->tot.blocks, row->bytes);
        return;
    }
    if (rc < 0) {
        line(v, file, false, ": cannot open: %s", vg_strerror(rc));
        return;
    }
    w.mode = SEG_WALK_VERIFY;
    w.fd = fd;
    w.expect = row;
    w.mark_off = row ? row->bytes : 0;
    w.rbuf = &v->rbuf;
    w.dbuf = &v->dbuf;
    w.dg = v->dg;
    rc = seg__walk(&w);
    close(fd);
    if (rc < 0 && rc != VG_ECORRUPT) {
        line(v, file, false, ": read failed: %s", vg_strerror(rc));
        return;
    }
    if (w.hdr_ok && (w.hdr.flags & SEG_F_COMPACTED)) {
        v->repl = xrealloc(v->repl, (v->nrepl + 1) * sizeof(*v->repl));
        v->repl[v->nrepl].id = w.hdr.replaces_id;
        snprintf(v->repl[v->nrepl].file, sizeof(v->repl[v->nrepl].file), "%s", file);
        v->nrepl++;
    }
    const char *tail = "";
    if (rc == VG_ECORRUPT) {
        /* segment.md 4.2: the tail of an open segment past its committed size is in
         * flight (or a crash's torn tail that the next start cuts off). */
        bool open_tail =
            row ? row->state == SEG_OPEN && w.bad_off >= row->bytes : w.bad_incomplete && w.hdr_ok;
        if (!open_tail) {
            if (w.bad_off == 0) {
                line(v, file, false, " at offset 0 (file header): %s", errbuf_msg(&w.why));
            } else {
                line(v, file, false, " at offset %" PRIu64 ": block %" PRIu64 ": %s%s", w.bad_off,
                     w.tot.blocks, errbuf_msg(&w.why), hint(&w));
            }
            return;
        }
        tail = " (ends in an uncommitted or in-flight block)";
    }
    vg_hex(w.chain, VG_SHA256_LEN, hex);
    if (!row) {
        line(v, file, true,
             ", not in the catalog yet (%" PRIu64 " blocks, %" PRIu64 " records, chain %.16s)%s",
             w.tot.blocks, w.tot.count, hex, tail);
        v->sum.records += w.tot.count;
        return;
    }
    /* Catalog agreement: the committed prefix must end on a block boundary with the
     * recorded chain head and totals; a sealed file must end there too. */
    if (!w.mark_hit) {
        if (row->bytes > w.size) {
            line(v, file, false,
                 " at offset %" PRIu64 ": block %" PRIu64 ": the file ends there but the "
                 "catalog recorded %" PRIu64 " committed bytes (%" PRIu64
                 " blocks): blocks were removed from the end or the file was truncated",
                 w.end, w.tot.blocks, row->bytes, row->tot.blocks);
        } else {
            line(v, file, false,
                 ": the catalog's committed size %" PRIu64 " is not a block boundary of the "
                 "file (valid up to %" PRIu64 ", %" PRIu64 " blocks)",
                 row->bytes, w.end, w.tot.blocks);
        }
        return;
    }
    if (memcmp(w.mark_chain, row->chain_head, VG_SHA256_LEN) != 0) {
        vg_hex(w.mark_chain, VG_SHA256_LEN, hex);
        line(v, file, false,
             ": chain head %.16s... of the file (at %" PRIu64
             " bytes) does not match the catalog's",
             hex, row->bytes);
        return;
    }
    if (!seg__totals_eq(&w.mark_tot, &row->tot)) {
        line(v, file, false,
             ": catalog counts (%" PRIu64 " records, %" PRIu64 " blocks, %" PRIu64
             " raw bytes) or ranges do not match the file (%" PRIu64 " records, %" PRIu64
             " blocks, %" PRIu64 " raw bytes)",
             row->tot.count, row->tot.blocks, row->tot.bytes_raw, w.mark_tot.count,
             w.mark_tot.blocks, w.mark_tot.bytes_raw);
        return;
    }
    const char *sig_note = "";
    if (row->state == SEG_SEALED) {
        if (w.end != row->bytes || w.size != row->bytes) {
            line(v, file, false,
                 " at offset %" PRIu64 ": sealed at %" PRIu64 " bytes but the file holds %" PRIu64
                 " (bytes added after sealing)",
                 row->bytes, row->bytes, w.size);
            return;
        }
        const struct catalog_seal *s = seal_of(v, row->id);
        const char *bad =
            check_sig(v, row, s && s->is_signed, s ? s->key_id : "", s ? s->sig : NULL);
        if (bad) {
            line(v, file, false, ": %s", bad);
            return;
        }
        v->sum.signed_ok++;
        sig_note = ", signature ok";
    }
    v->sum.records += w.tot.count;
    line(v, file, true, " (%" PRIu64 " blocks, %" PRIu64 " records, %s%s, chain %.16s)%s",
         w.tot.blocks, w.tot.count, row->state == SEG_OPEN ? "open" : "sealed", sig_note, hex,
         tail);
}

/* One line per segment retention deleted ("deleted by policy") or compaction replaced
 * ("replaced by" the compacted segment, when it is still there); the seal signature
 * recorded with it still checks. */
static void verify_deletion(struct verify *v, const struct catalog_deletion *d, bool file_present)
{
    char t[40];
    char hex[2 * VG_SHA256_LEN + 1];
    bool compacted = strcmp(d->reason, COMPACTED_REASON) == 0;

    vg_time_format(d->deleted, 0, t, sizeof(t));
    if (compacted) {
        v->sum.replaced++;
    } else {
        v->sum.deleted++;
    }
    if (d->is_signed) {
        const char *bad = check_sig(v, &d->m, true, d->key_id, d->sig);
        if (bad) {
            finding(v, d->m.file, "deletion record: %s", bad);
            return;
        }
    }
    if (!v->report) {
        return;
    }
    vg_hex(d->m.chain_head, VG_SHA256_LEN, hex);
    if (compacted) {
        const char *by = NULL;
        for (size_t i = 0; i < v->nrepl && !by; i++) {
            by = v->repl[i].id == d->m.id ? v->repl[i].file : NULL;
        }
        fprintf(v->report,
                "%s: replaced by %s (compacted at %s; %" PRIu64 " records, chain %.16s%s)%s\n",
                d->m.file, by ? by : "a compacted segment no longer in the store", t,
                d->m.tot.count, hex, d->is_signed ? ", signature ok" : "",
                file_present ? "; file removal pending" : "");
        return;
    }
    fprintf(v->report, "%s: deleted by policy (%s at %s; %" PRIu64 " records, chain %.16s%s)%s\n",
            d->m.file, d->reason, t, d->m.tot.count, hex, d->is_signed ? ", signature ok" : "",
            file_present ? "; file removal pending" : "");
}

static int cmp_meta_file(const void *a, const void *b)
{
    return strcmp(((const struct seg_meta *)a)->file, ((const struct seg_meta *)b)->file);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Loads the keys signatures may be made by: the trusted one, or the catalog's (each
 * checked against its id); and compares keys/collector-ed25519.pub.pem. */
static int load_keys(struct verify *v, const struct store_verify_opts *o, struct errbuf *eb)
{
    struct catalog_key *ck = NULL;
    size_t n = 0;
    char path[PATH_MAX];
    struct errbuf kb;
    int rc;

    errbuf_clear(&kb);
    if (o && o->trusted_key) {
        struct sign_key *k = NULL;
        rc = sign_key_load_public(o->trusted_key, &k, &kb);
        if (rc < 0) {
            errbuf_set(eb, "--key: %s", errbuf_msg(&kb));
            return rc;
        }
        v->keys = xcalloc(1, sizeof(*v->keys));
        v->keys[0].k = k;
        sign_key_id(k, v->keys[0].key_id);
        v->nkeys = 1;
        v->trusted_only = true;
        return 0;
    }
    rc = catalog__keys_list(v->cat, &ck, &n);
    if (rc < 0) {
        errbuf_set(eb, "catalog: cannot list keys: %s", catalog__errmsg(v->cat));
        return rc;
    }
    v->keys = xcalloc(n + 1, sizeof(*v->keys));
    for (size_t i = 0; i < n; i++) {
        struct sign_key *k = NULL;
        char id[SIGN_KEY_ID_LEN + 1];
        if (!ck[i].pem || sign_key_parse_public(span_str(ck[i].pem), &k, &kb) < 0) {
            finding(v, "catalog keys", "key %.16s: %s", ck[i].key_id, errbuf_msg(&kb));
            continue;
        }
        sign_key_id(k, id);
        if (strcmp(id, ck[i].key_id) != 0) {
            finding(v, "catalog keys", "key recorded as %.16s is really %.16s", ck[i].key_id, id);
            sign_key_free(k);
            continue;
        }
        v->keys[v->nkeys].k = k;
        memcpy(v->keys[v->nkeys].key_id, id, sizeof(id));
        v->nkeys++;
    }
    catalog__keys_free(ck, n);
    /* The public key file beside the store must be one the catalog records. */
    if (snprintf(path, sizeof(path), "%s/keys/collector-ed25519.pub.pem", v->dir) <
        (int)sizeof(path)) {
        struct sign_key *k = NULL;
        rc = sign_key_load_public(path, &k, &kb);
        if (rc == 0) {
            char id[SIGN_KEY_ID_LEN + 1];
            sign_key_id(k, id);
            if (!key_of(v, id)) {
                finding(v, "keys/collector-ed25519.pub.pem",
                        "key %.16s is not one the catalog records", id);
            }
            sign_key_free(k);
        } else if (rc != -ENOENT) {
            finding(v, "keys/collector-ed25519.pub.pem", "%s", errbuf_msg(&kb));
        }
    }
    return 0;
}

int store_verify(const char *dir, const struct store_verify_opts *o, FILE *report,
                 struct store_verify_summary *sum, struct errbuf *eb)
{
    struct verify v;
    struct seg_meta *rows = NULL;
    struct catalog_deletion *dels = NULL;
    size_t n = 0;
    size_t ndels = 0;
    char path[PATH_MAX];
    char segdir[PATH_MAX];
    char **extra = NULL; /* files the catalog does not list */
    size_t nextra = 0;
    DIR *d;
    struct dirent *e;
    int rc;

    memset(&v, 0, sizeof(v));
    v.report = report;
    v.dir = dir;
    if (strlen(dir) > PATH_MAX - 2 * SEG_NAME_MAX ||
        seg__path(path, sizeof(path), dir, "catalog.db") < 0 ||
        seg__path(segdir, sizeof(segdir), dir, "segments") < 0) {
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    v.segdir = segdir;
    rc = catalog__open(path, true, &v.cat, eb);
    if (rc < 0) {
        if (rc == -ENOENT) {
            errbuf_prefix(eb, "no store at '%s'", dir);
        }
        return rc;
    }
    if ((rc = catalog__list(v.cat, CATALOG_ALL, 0, 0, &rows, &n)) < 0 ||
        (rc = catalog__seals_list(v.cat, &v.seals, &v.nseals)) < 0 ||
        (rc = catalog__deletions_list(v.cat, false, &dels, &ndels)) < 0) {
        errbuf_set(eb, "catalog '%s': %s", path, catalog__errmsg(v.cat));
        goto out;
    }
    rc = load_keys(&v, o, eb);
    if (rc < 0) {
        goto out;
    }
    buf_init(&v.rbuf, seg__rbuf_max());
    buf_init(&v.dbuf, BLOCK_MAX_RAW);
    v.dg = digest_new();
    for (size_t i = 0; i < n; i++) {
        verify_segment(&v, rows[i].file, &rows[i]);
    }
    /* Files the catalog does not list: new segments of a running writer, deletions
     * whose file removal is pending, or leftovers. */
    if (n > 0) {
        qsort(rows, n, sizeof(*rows), cmp_meta_file);
    }
    d = opendir(segdir);
    if (!d) {
        rc = -errno;
        errbuf_set(eb, "cannot list '%s': %s", segdir, vg_strerror(rc));
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        struct seg_meta key;
        uint64_t id;
        size_t len = strlen(e->d_name);
        if (!seg__name_parse(e->d_name, &id) || len >= sizeof(key.file)) {
            continue;
        }
        memcpy(key.file, e->d_name, len + 1);
        if (n == 0 || !bsearch(&key, rows, n, sizeof(*rows), cmp_meta_file)) {
            extra = xrealloc(extra, (nextra + 1) * sizeof(*extra));
            extra[nextra++] = xstrdup(e->d_name);
        }
    }
    closedir(d);
    for (size_t i = 0; i < nextra; i++) {
        uint64_t id = 0;
        bool deleted = false;
        (void)seg__name_parse(extra[i], &id);
        for (size_t j = 0; j < ndels && !deleted; j++) {
            deleted = dels[j].m.id == id;
        }
        struct catalog_deletion late;
        if (!deleted && catalog__deletion_get(v.cat, id, &late) != 1) {
            verify_segment(&v, extra[i], NULL);
        }
    }
    /* Deletions by policy: each one line; a deleted segment must not be listed too. */
    for (size_t j = 0; j < ndels; j++) {
        bool present = false;
        bool listed = false;
        for (size_t i = 0; i < nextra && !present; i++) {
            present = strcmp(extra[i], dels[j].m.file) == 0;
        }
        for (size_t i = 0; i < n && !listed; i++) {
            listed = rows[i].id == dels[j].m.id;
        }
        if (listed) {
            finding(&v, dels[j].m.file, "recorded as %s but still listed as a segment",
                    strcmp(dels[j].reason, COMPACTED_REASON) == 0 ? "replaced by compaction"
                                                                  : "deleted by policy");
            continue;
        }
        verify_deletion(&v, &dels[j], present);
    }
    /* Segment ids are given in order and never reused: an id neither listed nor
     * deleted is worth a look (a crash can leave such a gap: a note, not a failure). */
    if (report && n + ndels > 0) {
        uint64_t *ids = xcalloc(n + ndels, sizeof(*ids));
        for (size_t i = 0; i < n; i++) {
            ids[i] = rows[i].id;
        }
        for (size_t j = 0; j < ndels; j++) {
            ids[n + j] = dels[j].m.id;
        }
        qsort(ids, n + ndels, sizeof(*ids), cmp_u64);
        unsigned gaps = 0;
        for (size_t i = 1; i < n + ndels && gaps < 20; i++) {
            if (ids[i] > ids[i - 1] + 1) {
                fprintf(report,
                        "note: segment ids %" PRIu64 "..%" PRIu64
                        " are neither in the catalog nor recorded as deleted\n",
                        ids[i - 1] + 1, ids[i] - 1);
                gaps++;
            }
        }
        free(ids);
    }
    if (report) {
        fprintf(report,
                "summary: %u segments checked, %u ok, %u failed; %u deleted by policy; %u "
                "replaced by compaction; %u signatures ok%s%.16s; %" PRIu64 " records: %s\n",
                v.sum.segments, v.sum.ok, v.sum.segments - v.sum.ok, v.sum.deleted, v.sum.replaced,
                v.sum.signed_ok, v.sum.key_id[0] ? " by ed25519 key " : "", v.sum.key_id,
                v.sum.records, v.sum.failed ? "FAILED" : "store OK");
    }
    if (v.sum.failed > 0) {
        errbuf_set(eb, "%u problems found (%u of %u segments failed verification)", v.sum.failed,
                   v.sum.segments - v.sum.ok, v.sum.segments);
        rc = VG_ECORRUPT;
    }
out:
    if (sum) {
        *sum = v.sum;
    }
    for (size_t i = 0; i < nextra; i++) {
        free(extra[i]);
    }
    free(extra);
    for (size_t i = 0; i < v.nkeys; i++) {
        sign_key_free(v.keys[i].k);
    }
    free(v.keys);
    buf_release(&v.rbuf);
    buf_release(&v.dbuf);
    digest_free(v.dg);
    free(v.seals);
    free(v.repl);
    free(dels);
    free(rows);
    catalog__close(v.cat);
    return rc;
}
