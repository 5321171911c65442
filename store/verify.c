/* store/verify.c: `vigil verify` (schemas/segment.md 11): every segment file walked in
 * full (checksums, chain, decompression, record streams), the catalog's agreement with
 * the files (counts, sizes, ranges, chain heads), every seal signature, the signing
 * keys, and the deletions retention and compaction recorded, so a segment that policy
 * deleted ("deleted by policy") or compaction replaced ("replaced by") is told apart
 * from one that went missing, and the two from each other. Then the seal sequence
 * (segment.md 13.6): its own chain and signatures, and everything it says the store
 * held checked against the catalog and the files, so what was removed together with its
 * rows, reopened, or deleted without a trace is named.
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
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/store_int.h"

struct vkey {
    char key_id[SIGN_KEY_ID_LEN + 1];
    struct sign_key *k;
};

/* The seal sequence as read (segment.md 13.6). */
struct vseq {
    bool present;
    uint64_t entries;
    uint64_t tail;          /* bytes of an entry being written (or torn) */
    unsigned bad;           /* entries failing their checks, order or signature */
    struct sealseq_map map; /* each segment's newest entry */
    struct vkey *keys;      /* introduced by START and KEY entries */
    size_t nkeys;
    uint64_t signed_upto;   /* 1 + index of the newest entry whose signature checked */
    uint64_t unsigned_upto; /* 1 + index of the newest unsigned entry */
    uint8_t head[VG_SHA256_LEN];
    bool head_found; /* --head was seen */
    bool pending;    /* the last entry read fails its checks alone: reported
                        when another follows it (the last may be in flight) */
    uint64_t pending_pos;
    char pending_why[256];
    uint8_t want_head[VG_SHA256_LEN];
    struct sealseq_entry start;
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
    struct vseq seq;
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

/* What the seal sequence says of a catalog row that the row does not bear out
 * (segment.md 13.6), or NULL. se: the segment's newest entry (NULL: none). */
static const char *seq_row_mismatch(const struct verify *v, const struct seg_meta *row,
                                    const struct sealseq_entry *se, char *buf, size_t cap)
{
    if (!v->seq.present) {
        return NULL;
    }
    if (!se) {
        snprintf(buf, cap,
                 ": listed in the catalog (%" PRIu64 " records) but not in the seal sequence: "
                 "its row was added by an edit of the catalog",
                 row->tot.count);
        return buf;
    }
    switch (se->type) {
    case SEALSEQ_SEAL:
        if (row->state == SEG_OPEN) {
            snprintf(buf, cap,
                     ": the seal sequence sealed it (entry %" PRIu64 ": %" PRIu64
                     " records, seq %" PRIu64 "..%" PRIu64 ") but the catalog lists it as open: "
                     "reopened by an edit of the catalog (or a crash came between the two and "
                     "vigild has not started since)",
                     se->index, se->count, se->seq_min, se->seq_max);
            return buf;
        }
        return NULL; /* its values: after the file and the signature (verify_segment) */
    case SEALSEQ_DELETE:
        snprintf(buf, cap,
                 ": the seal sequence deleted it (entry %" PRIu64 ", %s) but the catalog still "
                 "lists it",
                 se->index, sealseq_reason_name(se->type, se->reason));
        return buf;
    default: /* OPEN, CHECKPOINT */
        if (row->state == SEG_SEALED) {
            snprintf(buf, cap,
                     ": sealed in the catalog but not in the seal sequence (its newest entry "
                     "%" PRIu64 " is %s): sealed by an edit of the catalog",
                     se->index, sealseq_type_name(se->type));
            return buf;
        }
        if (row->bytes < se->bytes) {
            snprintf(buf, cap,
                     ": the catalog's committed size %" PRIu64 " is below its checkpoint in the "
                     "seal sequence (entry %" PRIu64 ": %" PRIu64 " bytes, %" PRIu64
                     " records): committed data was removed",
                     row->bytes, se->index, se->bytes, se->count);
            return buf;
        }
        return NULL;
    }
}

/* Walks one file in full; row NULL for a file the catalog does not list. se: the
 * segment's newest entry in the seal sequence (NULL: none). */
static void verify_segment(struct verify *v, const char *file, const struct seg_meta *row,
                           const struct sealseq_entry *se)
{
    struct seg_walk w;
    char hex[2 * VG_SHA256_LEN + 1];
    char why[512];
    int fd;
    int rc;

    if (row) {
        const char *bad = seq_row_mismatch(v, row, se, why, sizeof(why));
        if (bad) {
            line(v, file, false, "%s", bad);
            return;
        }
    }
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
    /* segment.md 13.6: an open segment's file holds its last checkpoint. */
    bool ckpt = row && se && (se->type == SEALSEQ_OPEN || se->type == SEALSEQ_CHECKPOINT);
    w.mark2_off = ckpt ? se->bytes : 0;
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
    if (ckpt && (!w.mark2_hit || memcmp(w.mark2_chain, se->chain_head, VG_SHA256_LEN) != 0)) {
        line(v, file, false,
             ": the seal sequence checkpointed it at %" PRIu64 " bytes (entry %" PRIu64 ", %" PRIu64
             " records) but the file's chain there is not that: blocks were "
             "removed or changed",
             se->bytes, se->index, se->count);
        return;
    }
    if (se && se->type == SEALSEQ_SEAL && se->reason == SEALSEQ_COMPACTED &&
        (!(w.hdr.flags & SEG_F_COMPACTED) || w.hdr.replaces_id != se->other_id ||
         memcmp(w.hdr.records_digest, se->extra, VG_SHA256_LEN) != 0)) {
        line(v, file, false,
             ": its header does not name the segment and records digest of its SEAL entry %" PRIu64
             " (compacted from segment %" PRIu64 ")",
             se->index, se->other_id);
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
        if (se && (!sealseq__same_row(se, row) || row->sealed != se->time)) {
            line(v, file, false,
                 ": its catalog row differs from its SEAL entry %" PRIu64 " (%" PRIu64
                 " records, %" PRIu64 " bytes): counts, sizes, ranges, chain head or seal time "
                 "were changed",
                 se->index, se->count, se->bytes);
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

/* ---- the seal sequence (segment.md 13.6) ---- */

#define SEQ_LINES_MAX 20 /* lines about bad entries; the others are counted */

static void seq_finding(struct verify *v, const char *fmt, ...) VG_PRINTF(2, 3);

static void seq_finding(struct verify *v, const char *fmt, ...)
{
    va_list ap;

    v->sum.failed++;
    if (++v->seq.bad > SEQ_LINES_MAX || !v->report) {
        return;
    }
    fprintf(v->report, "%s: FAILED: ", SEALSEQ_FILE);
    va_start(ap, fmt);
    vfprintf(v->report, fmt, ap);
    va_end(ap);
    fputc('\n', v->report);
}

static const struct vkey *seq_key_of(const struct vseq *q, const char *key_id)
{
    for (size_t i = 0; i < q->nkeys; i++) {
        if (strcmp(q->keys[i].key_id, key_id) == 0) {
            return &q->keys[i];
        }
    }
    return NULL;
}

/* A START or KEY entry introduces the key in its extra field. */
static void seq_add_key(struct verify *v, const struct sealseq_entry *e)
{
    static const uint8_t zero[SIGN_PUB_LEN];
    struct vseq *q = &v->seq;
    struct sign_key *k = NULL;
    char id[SIGN_KEY_ID_LEN + 1];

    if (memcmp(e->extra, zero, sizeof(zero)) == 0) {
        return; /* started without a key (segment.md 8.4) */
    }
    if (sign_key_from_raw(e->extra, &k) < 0) {
        seq_finding(v, "entry %" PRIu64 " (%s): its key is not an Ed25519 public key", e->index,
                    sealseq_type_name(e->type));
        return;
    }
    sign_key_id(k, id);
    if (seq_key_of(q, id)) {
        sign_key_free(k);
        return;
    }
    q->keys = xrealloc(q->keys, (q->nkeys + 1) * sizeof(*q->keys));
    q->keys[q->nkeys].k = k;
    memcpy(q->keys[q->nkeys].key_id, id, sizeof(id));
    q->nkeys++;
}

static int on_seq_entry(void *arg, const struct sealseq_entry *e, const char *bad)
{
    struct verify *v = arg;
    struct vseq *q = &v->seq;
    uint64_t pos = q->entries++;
    char id[SIGN_KEY_ID_LEN + 1];

    q->head_found |= memcmp(e->hash, q->want_head, sizeof(q->want_head)) == 0;
    if (q->pending) {
        seq_finding(v, "entry %" PRIu64 ": %s", q->pending_pos, q->pending_why);
        q->pending = false;
    }
    if (bad && e->type == 0) {
        /* Fails alone (sealseq_decode sets no type): the writer's append being read
         * half done, when it is the last (segment.md 13.2). */
        q->pending = true;
        q->pending_pos = pos;
        snprintf(q->pending_why, sizeof(q->pending_why), "%s", bad);
        return 0;
    }
    memcpy(q->head, e->hash, sizeof(q->head));
    if (bad) {
        seq_finding(v, "entry %" PRIu64 ": %s", pos, bad);
        return 0;
    }
    if ((pos == 0) != (e->type == SEALSEQ_START)) {
        seq_finding(v, "entry %" PRIu64 " is %s: a sequence begins with its one START", pos,
                    sealseq_type_name(e->type));
    }
    if (pos == 0) {
        q->start = *e;
    }
    if (e->type == SEALSEQ_START || e->type == SEALSEQ_KEY) {
        seq_add_key(v, e);
    }
    if (sealseq_is_signed(e)) {
        vg_hex(e->key_id, VG_SHA256_LEN, id);
        const struct vkey *k = v->trusted_only ? key_of(v, id) : seq_key_of(q, id);
        if (!k) {
            seq_finding(v, "entry %" PRIu64 " (%s): signed by key %.16s, %s", pos,
                        sealseq_type_name(e->type), id,
                        v->trusted_only ? "not the trusted one (--key)"
                                        : "which no START or KEY entry before it introduces");
        } else if (sealseq_check(e, k->k) != 0) {
            seq_finding(v,
                        "entry %" PRIu64 " (%s of segment %" PRIu64 "): the signature does not "
                        "match: the entry was changed",
                        pos, sealseq_type_name(e->type), e->segment_id);
        } else {
            q->signed_upto = pos + 1;
            if (v->trusted_only) {
                snprintf(v->sum.key_id, sizeof(v->sum.key_id), "%s", id);
            }
        }
    } else {
        q->unsigned_upto = pos + 1;
    }
    const char *order = sealseq__map_apply(&q->map, e);
    if (order) {
        seq_finding(v, "entry %" PRIu64 " (%s of segment %" PRIu64 "): %s", pos,
                    sealseq_type_name(e->type), e->segment_id, order);
    }
    return 0;
}

/* Reads and checks the sequence itself; the segments it names are checked later. */
static int seq_read(struct verify *v, const struct store_verify_opts *o, struct errbuf *eb)
{
    struct vseq *q = &v->seq;
    char path[PATH_MAX];
    char t[40];
    int rc;

    if (o && o->head &&
        (strlen(o->head) != 2 * VG_SHA256_LEN ||
         sign_unhex(o->head, q->want_head, VG_SHA256_LEN) < 0)) {
        errbuf_set(eb, "--head: expected the 64 hex digits of an entry's hash, got '%s'", o->head);
        return -EINVAL;
    }
    if (seg__path(path, sizeof(path), v->dir, SEALSEQ_FILE) < 0) {
        errbuf_set(eb, "store '%s': path too long", v->dir);
        return -ENAMETOOLONG;
    }
    rc = sealseq_read_file(path, on_seq_entry, v, &q->tail);
    if (rc == -ENOENT) {
        finding(v, SEALSEQ_FILE,
                "no seal sequence: the store was written by a vigil before seal sequences "
                "(start vigild once: it begins one, segment.md 13.5) or the file was removed; "
                "without it, segments removed together with their catalog rows cannot be seen");
        return 0;
    }
    if (rc < 0) {
        errbuf_set(eb, "cannot read '%s': %s", path, vg_strerror(rc));
        return rc;
    }
    q->present = true;
    if (q->pending) {
        q->entries--; /* not one yet */
    }
    if (q->pending && v->report) {
        fprintf(v->report,
                "note: %s: the last entry (%" PRIu64 ") is being written or torn "
                "(%s); the next vigild start cuts a torn one\n",
                SEALSEQ_FILE, q->pending_pos, q->pending_why);
    }
    if (q->bad > SEQ_LINES_MAX && v->report) {
        fprintf(v->report, "%s: FAILED: %u more problems with entries (not listed)\n", SEALSEQ_FILE,
                q->bad - SEQ_LINES_MAX);
    }
    if (q->entries == 0) {
        finding(v, SEALSEQ_FILE, "empty: its START entry was removed");
    }
    if (q->unsigned_upto > q->signed_upto) {
        finding(v, SEALSEQ_FILE,
                "entries %" PRIu64 "..%" PRIu64 " are not signed (written without a key; the "
                "next vigild start with a key signs them through a KEY entry, segment.md 8.4)",
                q->signed_upto, q->unsigned_upto - 1);
    }
    if (o && o->head && !q->head_found) {
        finding(v, SEALSEQ_FILE,
                "--head %.16s...: no entry has this hash: the sequence was cut back before it "
                "(or it is another store's)",
                o->head);
    }
    if (v->report && (q->start.flags & SEALSEQ_F_ADOPTED)) {
        vg_time_format(q->start.time, 0, t, sizeof(t));
        fprintf(v->report,
                "note: the seal sequence began at %s on a store that held %" PRIu64
                " segments: what happened to it before is vouched for by the catalog's seal "
                "signatures only\n",
                t, q->start.count);
    }
    return 0;
}

static const struct sealseq_entry *seq_last(const struct verify *v, uint64_t id)
{
    const struct sealseq_seg *s = v->seq.present ? sealseq__map_get(&v->seq.map, id) : NULL;
    return s ? &s->last : NULL;
}

static const struct seg_meta *row_by_id(const struct seg_meta *rows, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].id == id) {
            return &rows[i];
        }
    }
    return NULL;
}

static const struct catalog_deletion *del_by_id(const struct catalog_deletion *d, size_t n,
                                                uint64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (d[i].m.id == id) {
            return &d[i];
        }
    }
    return NULL;
}

/* True when the sequence is ahead of this catalog snapshot: a writer between an append
 * and its transaction (segment.md 13.4), or a catalog edited. */
static bool seq_ahead(const struct verify *v, const struct seg_meta *rows, size_t n,
                      const struct catalog_deletion *dels, size_t ndels)
{
    for (size_t i = 0; v->seq.present && i < v->seq.map.n; i++) {
        const struct sealseq_entry *e = &v->seq.map.v[i].last;
        const struct seg_meta *row = row_by_id(rows, n, e->segment_id);
        switch (e->type) {
        case SEALSEQ_SEAL:
            if (!row || row->state == SEG_OPEN) {
                return true;
            }
            break;
        case SEALSEQ_DELETE:
            if (row || !del_by_id(dels, ndels, e->segment_id)) {
                return true;
            }
            break;
        default:
            if (!row || row->bytes < e->bytes) {
                return true;
            }
        }
    }
    return false;
}

/* A file without a catalog row whose segment the sequence sealed: walked against the
 * entry, and reported: its row is gone. */
static void verify_orphan(struct verify *v, const char *file, const struct sealseq_entry *se)
{
    struct seg_meta m;
    struct seg_walk w;
    int fd;

    sealseq__to_meta(se, &m);
    memset(&w, 0, sizeof(w));
    int rc = seg__open_ro(v->segdir, file, &fd, &w.size);
    if (rc == 0) {
        w.mode = SEG_WALK_VERIFY;
        w.fd = fd;
        w.expect = &m;
        w.mark_off = m.bytes;
        w.rbuf = &v->rbuf;
        w.dbuf = &v->dbuf;
        w.dg = v->dg;
        rc = seg__walk(&w);
        close(fd);
    }
    bool same = rc == 0 && w.mark_hit && w.size == m.bytes &&
                memcmp(w.mark_chain, m.chain_head, VG_SHA256_LEN) == 0 &&
                seg__totals_eq(&w.mark_tot, &m.tot);
    line(v, file, false,
         ": the seal sequence sealed it (entry %" PRIu64 ": %" PRIu64 " records, seq %" PRIu64
         "..%" PRIu64 ") but its catalog row is gone; the file %s",
         se->index, se->count, se->seq_min, se->seq_max,
         same ? "is still there, as sealed" : "does not hold what was sealed either");
}

/* Segments the sequence says are there that have neither a row nor a file. */
static void verify_seq_only(struct verify *v, const struct seg_meta *rows, size_t n,
                            char *const *extra, size_t nextra)
{
    for (size_t i = 0; v->seq.present && i < v->seq.map.n; i++) {
        const struct sealseq_entry *e = &v->seq.map.v[i].last;
        char file[SEG_NAME_MAX];
        bool present = false;
        char t[40];

        if (e->type == SEALSEQ_DELETE || row_by_id(rows, n, e->segment_id)) {
            continue;
        }
        seg__name(e->part_start, e->segment_id, file);
        for (size_t k = 0; k < nextra && !present; k++) {
            present = strcmp(extra[k], file) == 0;
        }
        if (present) {
            continue; /* walked with the files the catalog does not list */
        }
        vg_time_format(e->time, 0, t, sizeof(t));
        if (e->type == SEALSEQ_SEAL) {
            line(v, file, false,
                 ": the seal sequence sealed it at %s (entry %" PRIu64 ": %" PRIu64
                 " records, seq %" PRIu64 "..%" PRIu64 ") but its catalog row and its file are "
                 "gone: removed",
                 t, e->index, e->count, e->seq_min, e->seq_max);
        } else {
            line(v, file, false,
                 ": the seal sequence has it (entry %" PRIu64 ", %s: %" PRIu64
                 " records) but neither its catalog row nor its file is there: removed",
                 e->index, sealseq_type_name(e->type), e->count);
        }
    }
}

/* Deletions: each one the catalog records is one the sequence records, and back. */
static void verify_seq_deletions(struct verify *v, const struct catalog_deletion *dels,
                                 size_t ndels, bool have_catalog)
{
    for (size_t i = 0; v->seq.present && i < v->seq.map.n; i++) {
        const struct sealseq_entry *e = &v->seq.map.v[i].last;
        char file[SEG_NAME_MAX];
        if (e->type != SEALSEQ_DELETE || !have_catalog || del_by_id(dels, ndels, e->segment_id)) {
            continue;
        }
        seg__name(e->part_start, e->segment_id, file);
        finding(v, file,
                "the seal sequence deleted it (entry %" PRIu64 ", %s: %" PRIu64
                " records) but the catalog records no deletion: its deletions row was removed",
                e->index, sealseq_reason_name(e->type, e->reason), e->count);
    }
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

/* Lists the catalog's rows, seals and deletions (a catalog that is gone lists none). */
static int catalog_read(struct verify *v, struct seg_meta **rows, size_t *n,
                        struct catalog_deletion **dels, size_t *ndels)
{
    int rc;

    free(*rows);
    free(*dels);
    free(v->seals);
    *rows = NULL;
    *dels = NULL;
    v->seals = NULL;
    *n = *ndels = v->nseals = 0;
    if (!v->cat) {
        return 0;
    }
    if ((rc = catalog__list(v->cat, CATALOG_ALL, 0, 0, rows, n)) < 0 ||
        (rc = catalog__seals_list(v->cat, &v->seals, &v->nseals)) < 0 ||
        (rc = catalog__deletions_list(v->cat, false, dels, ndels)) < 0) {
        return rc;
    }
    return 0;
}

/* Forgets what seq_read learnt, for another reading. */
static void seq_release(struct vseq *q)
{
    for (size_t i = 0; i < q->nkeys; i++) {
        sign_key_free(q->keys[i].k);
    }
    free(q->keys);
    sealseq__map_release(&q->map);
    memset(q, 0, sizeof(*q));
}

/* True while a writer holds the store's LOCK (store.c take_lock), seen in /proc/locks
 * without taking a lock of our own: a probe that took one, even shared and for a moment,
 * could make a vigild starting at that instant fail with "in use by another writer". */
bool verify__writer_live(const char *dir)
{
    char path[PATH_MAX];
    char ln[256];
    struct stat sb;
    bool live = false;

    if (seg__path(path, sizeof(path), dir, "LOCK") < 0 || stat(path, &sb) != 0) {
        return false;
    }
    FILE *f = fopen("/proc/locks", "re");
    if (!f) {
        return false;
    }
    /* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (major:minor in hex) */
    while (!live && fgets(ln, sizeof(ln), f)) {
        unsigned maj;
        unsigned min;
        unsigned long long ino;
        char kind[16];
        char mode[16];
        if (sscanf(ln, "%*[^:]: %15s %*s %15s %*d %x:%x:%llu", kind, mode, &maj, &min, &ino) == 5 &&
            strcmp(kind, "FLOCK") == 0 && strcmp(mode, "WRITE") == 0 && maj == major(sb.st_dev) &&
            min == minor(sb.st_dev) && ino == (unsigned long long)sb.st_ino) {
            live = true;
        }
    }
    fclose(f);
    return live;
}

/* How long verify waits for a live writer's catalog to catch up with its sequence. */
#define VERIFY_CATCHUP_NS (30 * VG_NS_PER_SEC)


struct verify_jnl {
    const struct jnl_stored *stored;
    uint64_t records; /* in good frames */
    uint64_t pending; /* of those, in no listed block */
};

static int on_verify_frame(void *arg, const struct jnl_frame *f, struct span payload)
{
    struct verify_jnl *vj = arg;
    struct span in = payload;
    int64_t ts;
    uint64_t seq;
    struct span rec;

    (void)f;
    while (jnl__rec_next(&in, &ts, &seq, &rec) == 1) {
        vj->records++;
        vj->pending += !jnl__stored_has(vj->stored, ts, seq);
    }
    return 0;
}

/* segment.md 5.6.5: the commit journal. Its frames are checksummed (CRC-32), not chained
 * or signed: it is checked for damage, and its records that no block holds yet are
 * counted (they join the chain when their block is written, within block_max_age). A
 * bad frame at the end of the newest file is being written or a torn tail the next
 * start cuts (a note); one inside an older file lost what followed it (a failure). */
static void verify_journal(struct verify *v, const char *dir, const struct seg_meta *rows, size_t n)
{
    char jdir[PATH_MAX];
    uint64_t *nos = NULL;
    size_t nf = 0;
    struct jnl_stored stored;
    struct buf pbuf;
    struct verify_jnl vj = { .stored = &stored };

    if (seg__path(jdir, sizeof(jdir), dir, JNL_DIR) < 0 || jnl__list(jdir, &nos, &nf) < 0 ||
        nf == 0) {
        free(nos);
        return;
    }
    memset(&stored, 0, sizeof(stored));
    for (size_t i = 0; i < n; i++) {
        if (rows[i].tot.count > 0) {
            jnl__stored_add(&stored, rows[i].part_start, rows[i].part_end, rows[i].tot.seq_max);
        }
    }
    jnl__stored_done(&stored);
    buf_init(&pbuf, JNL_MAX_PAYLOAD);
    for (size_t i = 0; i < nf; i++) {
        char name[JNL_NAME_MAX];
        char path[PATH_MAX];
        struct jnl_walk w;
        struct stat sb;
        jnl__name(nos[i], name);
        if (seg__path(path, sizeof(path), jdir, name) < 0) {
            continue;
        }
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue; /* reclaimed since it was listed */
        }
        memset(&w, 0, sizeof(w));
        w.fd = fd;
        w.size = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        w.pbuf = &pbuf;
        w.expect_no = nos[i];
        w.fn = on_verify_frame;
        w.arg = &vj;
        int rc = jnl__walk(&w);
        close(fd);
        if (rc == 0) {
            continue;
        }
        char what[PATH_MAX + 16];
        snprintf(what, sizeof(what), "journal/%s", name);
        if (rc == VG_ECORRUPT && i == nf - 1 && w.hdr_ok) {
            if (v->report) {
                fprintf(v->report,
                        "note: %s: the frame at offset %" PRIu64 " is being written or torn "
                        "(%s): vigild's next start cuts it\n",
                        what, w.bad_off, errbuf_msg(&w.why));
            }
        } else if (rc == VG_ECORRUPT && w.bad_incomplete) {
            if (v->report) {
                fprintf(v->report, "note: %s: ends in an incomplete frame at offset %" PRIu64
                                   " (an abandoned write)\n",
                        what, w.bad_off);
            }
        } else {
            finding(v, what, "offset %" PRIu64 ": %s: acknowledged records after it are lost",
                    w.bad_off, rc == VG_ECORRUPT || rc == VG_EFORMAT ? errbuf_msg(&w.why)
                                                                     : vg_strerror(rc));
        }
    }
    if (v->report) {
        fprintf(v->report,
                "journal: %zu files, %" PRIu64 " records, %" PRIu64
                " not yet in blocks (checksummed, not chained: they join the chain when their "
                "block is written)\n",
                nf, vj.records, vj.pending);
    }
    buf_release(&pbuf);
    jnl__stored_release(&stored);
    free(nos);
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
    char seqpath[PATH_MAX];
    char **extra = NULL; /* files the catalog does not list */
    size_t nextra = 0;
    DIR *d;
    struct dirent *e;
    struct stat sb;
    int rc;

    memset(&v, 0, sizeof(v));
    v.report = report;
    v.dir = dir;
    if (strlen(dir) > PATH_MAX - 2 * SEG_NAME_MAX ||
        seg__path(path, sizeof(path), dir, "catalog.db") < 0 ||
        seg__path(segdir, sizeof(segdir), dir, "segments") < 0 ||
        seg__path(seqpath, sizeof(seqpath), dir, SEALSEQ_FILE) < 0) {
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    v.segdir = segdir;
    /* segment.md 13.6: the catalog first, the sequence after it. */
    rc = catalog__open(path, true, &v.cat, eb);
    if (rc == -ENOENT && stat(seqpath, &sb) == 0) {
        /* Gone, but the sequence says what the store held: check the files against it. */
        errbuf_clear(eb);
        finding(&v, "catalog.db",
                "missing: the catalog was deleted; the segments the seal sequence records are "
                "checked against the files");
        rc = 0;
    } else if (rc < 0) {
        if (rc == -ENOENT) {
            errbuf_prefix(eb, "no store at '%s'", dir);
        }
        return rc;
    }
    if ((rc = catalog_read(&v, &rows, &n, &dels, &ndels)) < 0) {
        errbuf_set(eb, "catalog '%s': %s", path, catalog__errmsg(v.cat));
        goto out;
    }
    if (v.cat && (rc = load_keys(&v, o, eb)) < 0) {
        goto out;
    }
    if (!v.cat && o && o->trusted_key && (rc = load_keys(&v, o, eb)) < 0) {
        goto out;
    }
    /* segment.md 13.6: the catalog, then the sequence. A live writer may be between an
     * append and its transaction (the sequence ahead): while it holds the store, both are
     * read again until they agree (a busy writer under load can take seconds); what the
     * sequence says is reported only from the snapshot taken last. Without a writer, the
     * sequence ahead is what a crash or an edit left, and is reported at once. */
    int64_t catchup_until = vg_mono_ns() + VERIFY_CATCHUP_NS;
    struct store_verify_summary sum0 = v.sum;
    for (;;) {
        char *seqrep = NULL;
        size_t seqrep_len = 0;
        FILE *mem = v.report ? open_memstream(&seqrep, &seqrep_len) : NULL;
        FILE *real = v.report;
        if (real && !mem) {
            rc = -errno;
            errbuf_set(eb, "cannot buffer the report: %s", vg_strerror(rc));
            goto out;
        }
        v.report = mem;
        rc = seq_read(&v, o, eb);
        v.report = real;
        if (mem) {
            fclose(mem);
        }
        bool again = rc == 0 && v.cat && seq_ahead(&v, rows, n, dels, ndels) &&
                     vg_mono_ns() < catchup_until && verify__writer_live(dir);
        if (!again) {
            if (real && seqrep_len > 0) {
                fwrite(seqrep, 1, seqrep_len, real);
            }
            free(seqrep);
            if (rc < 0) {
                goto out;
            }
            break;
        }
        free(seqrep);
        seq_release(&v.seq);
        v.sum = sum0;
        struct timespec ts = { 0, 100 * 1000 * 1000L };
        nanosleep(&ts, NULL);
        if ((rc = catalog_read(&v, &rows, &n, &dels, &ndels)) < 0) {
            errbuf_set(eb, "catalog '%s': %s", path, catalog__errmsg(v.cat));
            goto out;
        }
    }
    buf_init(&v.rbuf, seg__rbuf_max());
    buf_init(&v.dbuf, BLOCK_MAX_RAW);
    v.dg = digest_new();
    for (size_t i = 0; i < n; i++) {
        verify_segment(&v, rows[i].file, &rows[i], seq_last(&v, rows[i].id));
    }
    /* Files the catalog does not list: new segments of a running writer, deletions
     * whose file removal is pending, or leftovers. */
    if (n > 0) {
        qsort(rows, n, sizeof(*rows), cmp_meta_file);
    }
    d = opendir(segdir);
    if (!d && errno == ENOENT) {
        finding(&v, "segments/", "missing: every segment file was removed");
    } else if (!d) {
        rc = -errno;
        errbuf_set(eb, "cannot list '%s': %s", segdir, vg_strerror(rc));
        goto out;
    }
    while (d && (e = readdir(d)) != NULL) {
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
    if (d) {
        closedir(d);
    }
    for (size_t i = 0; i < nextra; i++) {
        uint64_t id = 0;
        (void)seg__name_parse(extra[i], &id);
        const struct sealseq_entry *se = seq_last(&v, id);
        struct catalog_deletion late;
        if (del_by_id(dels, ndels, id) || (se && se->type == SEALSEQ_DELETE) ||
            (v.cat && catalog__deletion_get(v.cat, id, &late) == 1)) {
            continue; /* deleted: its file removal is pending */
        }
        if (se && se->type == SEALSEQ_SEAL) {
            verify_orphan(&v, extra[i], se);
        } else {
            verify_segment(&v, extra[i], NULL, se);
        }
    }
    verify_seq_only(&v, rows, n, extra, nextra);
    /* Deletions by policy: each one line; a deleted segment must not be listed too. */
    for (size_t j = 0; j < ndels; j++) {
        bool present = false;
        bool listed = false;
        const struct sealseq_entry *se = seq_last(&v, dels[j].m.id);
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
        if (v.seq.present && (!se || se->type != SEALSEQ_DELETE ||
                              strcmp(sealseq_reason_name(se->type, se->reason), dels[j].reason))) {
            finding(&v, dels[j].m.file,
                    "a deletion (%s) the seal sequence does not record: forged by an edit of "
                    "the catalog",
                    dels[j].reason);
            continue;
        }
        verify_deletion(&v, &dels[j], present);
    }
    verify_seq_deletions(&v, dels, ndels, v.cat != NULL);
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
    v.sum.seq_entries = v.seq.entries;
    if (v.seq.entries > 0) {
        vg_hex(v.seq.head, VG_SHA256_LEN, v.sum.seq_head);
    }
    if (report && v.seq.present) {
        /* segment.md 13.7: the head to keep elsewhere (and to pass as --head later). */
        fprintf(report, "seal sequence: %" PRIu64 " entries%s, head %s\n", v.seq.entries,
                v.seq.tail ? " (and one being written)" : "", v.seq.entries ? v.sum.seq_head : "-");
    }
    verify_journal(&v, dir, rows, n);
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
    for (size_t i = 0; i < v.seq.nkeys; i++) {
        sign_key_free(v.seq.keys[i].k);
    }
    free(v.seq.keys);
    sealseq__map_release(&v.seq.map);
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
