/* store/compact.c: compaction of sealed segments (schemas/segment.md 12). A sealed
 * segment's blocks, cut as the collector's commits went (small, LZ4 for fast ingest),
 * are rewritten as a new segment of large blocks, zstd (or LZ4HC), re-indexed; the new
 * segment is chained and signed like any sealed one, its file header names the segment
 * it replaces, that one's chain head, and a digest of their records in seq order, which
 * `vigil verify` recomputes. The replaced segment becomes a deletion (segment.md 9) with
 * reason "compacted", keeping its row and signature, and its file goes.
 *
 * Order, so that a crash at any point leaves either segment, never both or neither:
 * (1) the new file is written under a temporary name (".<name>.compact", which recovery
 * and readers ignore) and synced; (2) one catalog transaction adds the new row and its
 * seal and turns the old row into a deletion; (3) the file is renamed to its name; (4)
 * the old file is removed. After a crash, store_open finishes (3) when the transaction
 * committed (the new row names the file) and removes the temporary file when it did not;
 * (4) is finished as for any deletion (segment.md 9.1).
 *
 * Thread: the writer's (a struct store); blocks on disk I/O and CPU (seconds per
 * segment of a busy hour). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/fsops.h"
#include "store/store_core.h"

#define COMPACT_SUFFIX             ".compact"
#define COMPACT_DEFAULT_BLOCK      (4u << 20)
#define COMPACT_DEFAULT_ZSTD_LEVEL 6
#define COMPACT_DEFAULT_LZ4_LEVEL  9

/* Segments compaction looked at and need not again: compacted, or left as they were
 * because they do not verify (for the life of the struct store). */
static bool compact_done_has(const struct store *st, uint64_t id)
{
    for (size_t i = 0; i < st->ncompact_done; i++) {
        if (st->compact_done[i] == id) {
            return true;
        }
    }
    return false;
}

static void compact_done_add(struct store *st, uint64_t id)
{
    if (!compact_done_has(st, id)) {
        st->compact_done = xrealloc(st->compact_done, (st->ncompact_done + 1) * sizeof(uint64_t));
        st->compact_done[st->ncompact_done++] = id;
    }
}

/* One record of the block being walked (spans into the walk's buffers). */
struct crec {
    int64_t ts;
    uint64_t seq;
    struct span rec;
};

struct compact {
    const struct fsops *fs;
    const _Atomic bool *cancel; /* NULL, or stops the walk when it becomes true */
    const struct seg_meta *old;
    struct block_enc enc;
    size_t block_bytes;
    /* the walk's current block */
    struct crec *recs;
    size_t n;
    size_t cap;
    /* pass 1 */
    struct digest *rdg;
    /* pass 2 */
    bool writing;
    int fd;
    struct block_builder b;
    struct buf out;
    struct digest *dg;
    struct seg_meta m; /* the new segment as written */
    int err;
};

static int cmp_crec(const void *a, const void *b)
{
    uint64_t x = ((const struct crec *)a)->seq;
    uint64_t y = ((const struct crec *)b)->seq;
    return x < y ? -1 : x > y;
}

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct compact *c = arg;

    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->recs = xrealloc(c->recs, c->cap * sizeof(*c->recs));
    }
    c->recs[c->n++] = (struct crec){ ts, seq, rec };
    return 0;
}

/* Writes the open block of the new segment. */
static int flush_block(struct compact *c)
{
    struct block_hdr h;
    int rc;

    if (c->b.count == 0) {
        return 0;
    }
    rc = block__builder_finish(&c->b, c->m.chain_head, c->dg, &c->out, &h, &c->enc);
    if (rc == 0) {
        rc = fsops_pwrite_all(c->fs, c->fd, c->out.data, c->out.len, (int64_t)c->m.bytes);
    }
    if (rc < 0) {
        return rc;
    }
    c->m.bytes += c->out.len;
    memcpy(c->m.chain_head, h.hash, VG_SHA256_LEN);
    seg__totals_add(&c->m.tot, &h);
    block__builder_reset(&c->b);
    return 0;
}

/* After each block of the old segment: its records, in seq order, go to the digest
 * (pass 1) or into the new segment's blocks (pass 2). */
static int on_block(void *arg, const struct block_hdr *h)
{
    struct compact *c = arg;
    int rc = 0;

    (void)h;
    if (c->cancel && atomic_load(c->cancel)) {
        c->err = -ECANCELED;
        c->n = 0;
        return -ECANCELED;
    }
    if (c->n > 1) {
        qsort(c->recs, c->n, sizeof(*c->recs), cmp_crec);
    }
    for (size_t i = 0; i < c->n && rc == 0; i++) {
        const struct crec *r = &c->recs[i];
        if (!c->writing) {
            seg__digest_add(c->rdg, r->ts, r->seq, r->rec);
            continue;
        }
        if (c->b.count > 0 && c->b.in_bytes + block__entry_len(r->rec.n) > c->block_bytes) {
            rc = flush_block(c);
        }
        if (rc == 0) {
            rc = block__builder_add(&c->b, r->ts, r->seq, r->rec);
        }
    }
    c->n = 0;
    if (rc < 0) {
        c->err = rc;
    }
    return rc;
}

/* Walks the old segment (every block checked, chain included) into c. Returns 0, or
 * VG_ECORRUPT with why when it does not verify up to its row's chain head. */
static int walk_old(struct compact *c, const char *segdir, struct errbuf *why)
{
    struct seg_walk w;
    struct buf rbuf;
    struct buf dbuf;
    struct buf ubuf;
    uint64_t size;
    int fd;
    int rc = seg__open_ro(segdir, c->old->file, &fd, &size);

    if (rc < 0) {
        errbuf_set(why, "cannot open: %s", vg_strerror(rc));
        return rc;
    }
    buf_init(&rbuf, seg__rbuf_max());
    buf_init(&dbuf, BLOCK_MAX_RAW);
    buf_init(&ubuf, seg__ubuf_max());
    memset(&w, 0, sizeof(w));
    w.mode = SEG_WALK_COPY;
    w.fd = fd;
    w.size = size;
    w.expect = c->old;
    w.fn = on_rec;
    w.block_done = on_block;
    w.arg = c;
    w.rbuf = &rbuf;
    w.dbuf = &dbuf;
    w.ubuf = &ubuf;
    w.dg = digest_new();
    c->n = 0;
    rc = seg__walk(&w);
    if (rc == 0 && c->err == 0 &&
        (w.end != c->old->bytes || memcmp(w.chain, c->old->chain_head, VG_SHA256_LEN) != 0 ||
         !seg__totals_eq(&w.tot, &c->old->tot))) {
        errbuf_set(why, "the file does not end at the catalog's chain head and size");
        rc = VG_ECORRUPT;
    } else if (rc == VG_ECORRUPT) {
        errbuf_set(why, "offset %" PRIu64 ": %s", w.bad_off, errbuf_msg(&w.why));
    } else if (rc != 0) {
        rc = c->err ? c->err : rc;
        errbuf_set(why, "%s", vg_strerror(rc));
    }
    digest_free(w.dg);
    buf_release(&rbuf);
    buf_release(&dbuf);
    buf_release(&ubuf);
    close(fd);
    return rc;
}

/* The seal row of segment id: 1 and *out, 0 when none, or VG_EDB. */
static int seal_of(struct catalog *cat, uint64_t id, struct catalog_seal *out)
{
    struct catalog_seal *v = NULL;
    size_t n = 0;
    int rc = catalog__seals_list(cat, &v, &n);

    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (v[i].id == id) {
            *out = v[i];
            rc = 1;
        }
    }
    free(v);
    return rc;
}

/* A signed seal must check out before its segment is rewritten (never launder). */
static int check_seal(struct store *st, const struct seg_meta *m, const struct catalog_seal *s,
                      struct errbuf *why)
{
    struct catalog_key *keys = NULL;
    size_t nkeys = 0;
    uint8_t msg[SEAL_MSG_LEN];
    int rc;

    if (!s->is_signed) {
        return 0;
    }
    if ((rc = catalog__keys_list(st->cat, &keys, &nkeys)) < 0) {
        errbuf_set(why, "cannot list the signing keys");
        return rc;
    }
    integrity__seal_msg(m, msg);
    rc = VG_ECORRUPT;
    for (size_t i = 0; i < nkeys; i++) {
        struct sign_key *k = NULL;
        struct errbuf kb;
        if (strcmp(keys[i].key_id, s->key_id) != 0 ||
            sign_key_parse_public(span_str(keys[i].pem), &k, &kb) < 0) {
            continue;
        }
        rc = sign_check(k, msg, sizeof(msg), s->sig) == 0 ? 0 : VG_ECORRUPT;
        sign_key_free(k);
        break;
    }
    catalog__keys_free(keys, nkeys);
    if (rc < 0) {
        errbuf_set(why, "its seal signature does not verify");
    }
    return rc;
}

static int path_in(struct store *st, const char *name, char *out)
{
    return seg__path(out, PATH_MAX, st->segdir, name);
}

/* True when the segment file's header says it is compacted. */
static bool is_compacted(struct store *st, const struct seg_meta *m)
{
    char path[PATH_MAX];
    uint8_t hb[SEG_HDR_LEN];
    struct seg_hdr h;
    struct errbuf why;
    bool yes = false;

    if (path_in(st, m->file, path) < 0) {
        return false;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    if (pread(fd, hb, sizeof(hb), 0) == (ssize_t)sizeof(hb) && seg__hdr_decode(hb, &h, &why) == 0) {
        yes = (h.flags & SEG_F_COMPACTED) != 0;
    }
    close(fd);
    return yes;
}

/* A compaction job (store.h): picked and installed on the writer's thread, built on
 * any thread without the store. */
struct store_compact_job {
    struct compact c;
    struct seg_meta old;
    struct catalog_seal old_seal;
    struct seg_hdr sh;
    char segdir[PATH_MAX];
    char old_path[PATH_MAX];
    char tmp_name[SEG_NAME_MAX + 16];
    char tmp_path[PATH_MAX];
    char new_path[PATH_MAX];
    _Atomic bool cancel;
    bool tmp_made; /* tmp_path exists (until installed or removed) */
    int built;     /* store_compact_build: 1 built, 0 left as it is, < 0 an error */
    struct errbuf why;
};

static void compact_init(struct compact *c, const struct store_compact_opts *o)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    int codec = o->codec == STORE_CODEC_LZ4HC ? BLOCK_CODEC_LZ4 : BLOCK_CODEC_ZSTD;
    block__enc_init(&c->enc, codec,
                    o->level                   ? o->level
                    : codec == BLOCK_CODEC_LZ4 ? COMPACT_DEFAULT_LZ4_LEVEL
                                               : COMPACT_DEFAULT_ZSTD_LEVEL);
    c->block_bytes = o->block_bytes ? o->block_bytes : COMPACT_DEFAULT_BLOCK;
    block__builder_init(&c->b);
    buf_init(&c->out, block__max_len());
    c->dg = digest_new();
}

static void compact_release(struct compact *c)
{
    block__enc_release(&c->enc);
    block__builder_release(&c->b);
    buf_release(&c->out);
    digest_free(c->dg);
    digest_free(c->rdg);
    free(c->recs);
}

void store_compact_job_free(struct store_compact_job *j)
{
    if (!j) {
        return;
    }
    if (j->c.fd >= 0) {
        j->c.fs->close(j->c.fs->ctx, j->c.fd);
    }
    if (j->tmp_made && j->c.fs->unlink(j->c.fs->ctx, j->tmp_path) < 0) {
        log_warn("compaction: cannot remove '%s' (store_open removes it)", j->tmp_path);
    }
    compact_release(&j->c);
    free(j);
}

void store_compact_job_cancel(struct store_compact_job *j)
{
    atomic_store(&j->cancel, true);
}

const char *store_compact_job_segment(const struct store_compact_job *j)
{
    return j->old.file;
}

uint64_t store_compact_job_bytes(const struct store_compact_job *j)
{
    return j->old.bytes;
}

int store_compact_pick(struct store *st, const struct store_compact_opts *o, int64_t sealed_before,
                       struct store_compact_job **out, struct store_compact_result *res,
                       struct errbuf *eb)
{
    struct store_compact_opts dflt = { 0 };
    struct seg_meta *rows = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    o = o ? o : &dflt;
    size_t bb = o->block_bytes ? o->block_bytes : COMPACT_DEFAULT_BLOCK;
    if (bb < 4096 || bb > (16u << 20)) {
        errbuf_set(eb, "compaction: block size %zu is not between 4KiB and 16MiB", bb);
        return VG_ECONFIG;
    }
    if ((rc = catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &n)) < 0) {
        errbuf_set(eb, "compaction: %s", catalog__errmsg(st->cat));
        return rc;
    }
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct seg_meta *m = &rows[i];
        if (m->state != SEG_SEALED || m->tot.count == 0 || m->sealed >= sealed_before ||
            compact_done_has(st, m->id)) {
            continue;
        }
        if (is_compacted(st, m)) {
            compact_done_add(st, m->id); /* compacted segments are not again */
            continue;
        }
        struct catalog_seal seal;
        struct errbuf why;
        memset(&seal, 0, sizeof(seal));
        errbuf_clear(&why);
        if ((rc = seal_of(st->cat, m->id, &seal)) < 0) {
            errbuf_set(eb, "compaction: %s", catalog__errmsg(st->cat));
            break;
        }
        rc = 0;
        if (check_seal(st, m, &seal, &why) < 0) {
            log_warn("segment '%s': not compacted: %s", m->file, errbuf_msg(&why));
            compact_done_add(st, m->id);
            if (res) {
                res->skipped++;
            }
            continue;
        }
        struct store_compact_job *j = xcalloc(1, sizeof(*j));
        compact_init(&j->c, o);
        j->c.fs = st->fs;
        j->c.cancel = &j->cancel;
        j->old = *m;
        j->old_seal = seal;
        j->c.old = &j->old;
        snprintf(j->segdir, sizeof(j->segdir), "%s", st->segdir);
        /* The new segment's row, header and names; its id is taken now. */
        struct seg_meta *nm = &j->c.m;
        nm->id = st->next_id++;
        nm->part_start = m->part_start;
        nm->part_end = m->part_end;
        nm->state = SEG_SEALED;
        nm->created = vg_now_ns();
        nm->recv_max = m->recv_max; /* the same records, received when they were */
        nm->bytes = SEG_HDR_LEN;
        seg__name(m->part_start, nm->id, nm->file);
        j->sh = (struct seg_hdr){ .version = SEG_VERSION, .flags = SEG_F_COMPACTED };
        j->sh.part_start = m->part_start;
        j->sh.part_ns = m->part_end - m->part_start;
        j->sh.id = nm->id;
        j->sh.created = nm->created;
        j->sh.replaces_id = m->id;
        memcpy(j->sh.replaces_head, m->chain_head, VG_SHA256_LEN);
        snprintf(j->tmp_name, sizeof(j->tmp_name), ".%s%s", nm->file, COMPACT_SUFFIX);
        if ((rc = path_in(st, m->file, j->old_path)) < 0 ||
            (rc = path_in(st, j->tmp_name, j->tmp_path)) < 0 ||
            (rc = path_in(st, nm->file, j->new_path)) < 0) {
            errbuf_set(eb, "compaction: path too long");
            store_compact_job_free(j);
            break;
        }
        *out = j;
        free(rows);
        return 1;
    }
    free(rows);
    return rc;
}

int store_compact_build(struct store_compact_job *j)
{
    struct compact *c = &j->c;
    const struct fsops *fs = c->fs;
    int rc;

    errbuf_clear(&j->why);
    /* Pass 1: the old segment verifies; the digest of its records. */
    c->writing = false;
    c->err = 0;
    c->rdg = digest_new();
    rc = walk_old(c, j->segdir, &j->why);
    digest_final(c->rdg, j->sh.records_digest);
    digest_free(c->rdg);
    c->rdg = NULL;
    if (rc == VG_ECORRUPT) {
        return j->built = 0;
    }
    if (rc < 0) {
        return j->built = rc;
    }

    /* Pass 2: the new segment, under a temporary name. */
    uint8_t hb[SEG_HDR_LEN];
    seg__hdr_encode(&j->sh, hb);
    vg_sha256(hb, SEG_HDR_LEN, c->m.chain_head); /* segment.md 2.2: genesis */
    c->fd = fs->open(fs->ctx, j->tmp_path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (c->fd < 0) {
        rc = c->fd;
        c->fd = -1;
        errbuf_set(&j->why, "cannot create '%s': %s", j->tmp_path, vg_strerror(rc));
        return j->built = rc;
    }
    j->tmp_made = true;
    rc = fsops_pwrite_all(fs, c->fd, hb, SEG_HDR_LEN, 0);
    if (rc == 0) {
        c->writing = true;
        block__builder_reset(&c->b);
        rc = walk_old(c, j->segdir, &j->why);
        if (rc == VG_ECORRUPT) {
            rc = -EIO; /* it verified a moment ago: someone is changing it */
        }
    }
    if (rc == 0) {
        rc = flush_block(c);
    }
    if (rc == 0) {
        rc = fs->fdatasync(fs->ctx, c->fd);
    }
    int crc = fs->close(fs->ctx, c->fd);
    rc = rc < 0 ? rc : crc;
    c->fd = -1;
    if (rc == 0) {
        rc = fs->fsync_dir(fs->ctx, j->segdir);
    }
    if (rc == 0 && c->m.tot.count != j->old.tot.count) {
        rc = -EIO; /* cannot happen: every record was walked */
    }
    if (rc < 0) {
        errbuf_set(&j->why, "writing '%s': %s", j->tmp_name, vg_strerror(rc));
        return j->built = rc;
    }
    return j->built = 1;
}

int store_compact_install(struct store *st, struct store_compact_job *j,
                          struct store_compact_result *res, struct errbuf *eb)
{
    const struct fsops *fs = st->fs;
    struct catalog *cat = st->cat;
    const struct sign_key *key = st->key;
    const struct seg_meta *old = &j->old;
    struct compact *c = &j->c;
    struct seg_meta now_row;
    int rc;

    if (j->built == 0) {
        log_warn("segment '%s': not compacted: %s", old->file, errbuf_msg(&j->why));
        compact_done_add(st, old->id);
        if (res) {
            res->skipped++;
        }
        store_compact_job_free(j);
        return 0;
    }
    if (j->built < 0) {
        errbuf_set(eb, "compaction: segment '%s': %s", old->file,
                   errbuf_msg(&j->why)[0] ? errbuf_msg(&j->why) : vg_strerror(j->built));
        rc = j->built;
        store_compact_job_free(j);
        return rc;
    }
    /* Retention may have deleted it while the job was built (or a seal was redone). */
    const struct sealseq_entry *last = sealseq__last(st->seq, old->id);
    if (catalog__get(st->cat, old->id, &now_row) != 1 || now_row.state != SEG_SEALED ||
        now_row.bytes != old->bytes || memcmp(now_row.chain_head, old->chain_head, VG_SHA256_LEN) ||
        (last && last->type == SEALSEQ_DELETE)) {
        log_info("segment '%s': compaction dropped: the segment changed or was deleted meanwhile",
                 old->file);
        compact_done_add(st, old->id);
        store_compact_job_free(j);
        return 0;
    }

    /* One transaction: the new row and its seal; the old row becomes a deletion. */
    int64_t now = vg_now_ns();
    c->m.sealed = now;
    struct catalog_deletion d;
    memset(&d, 0, sizeof(d));
    d.m = *old;
    d.is_signed = j->old_seal.is_signed;
    memcpy(d.key_id, j->old_seal.key_id, sizeof(d.key_id));
    memcpy(d.sig, j->old_seal.sig, sizeof(d.sig));
    snprintf(d.reason, sizeof(d.reason), "%s", "compacted");
    d.deleted = now;
    /* segment.md 12.3 (2), 13.4: the new segment's SEAL and the old one's DELETE, in the
     * sequence before the catalog; from here on the new file is the one to keep. */
    struct sealseq_entry ev[2];
    sealseq__from_meta(&ev[0], SEALSEQ_SEAL, SEALSEQ_COMPACTED, &c->m);
    ev[0].other_id = old->id;
    memcpy(ev[0].extra, j->sh.records_digest, VG_SHA256_LEN);
    sealseq__from_meta(&ev[1], SEALSEQ_DELETE, SEALSEQ_REPLACED, old);
    ev[1].other_id = c->m.id;
    ev[1].time = now;
    if ((rc = sealseq__append(st->seq, ev, 2, key)) < 0) {
        errbuf_set(eb, "compaction: seal sequence: %s", vg_strerror(rc));
        store_compact_job_free(j);
        return rc;
    }
    j->tmp_made = false; /* a failure below leaves it for store_open to install */
    compact_done_add(st, old->id);
    rc = catalog__begin(cat);
    if (rc == 0) {
        rc = catalog__put(cat, &c->m);
    }
    if (rc == 0) {
        rc = integrity__seal_row(cat, key, &c->m, now);
    }
    if (rc == 0) {
        rc = catalog__deletion_add(cat, &d);
    }
    if (rc == 0) {
        rc = catalog__commit(cat);
    }
    if (rc < 0) {
        catalog__rollback(cat);
        errbuf_set(eb, "compaction: catalog: %s (store_open finishes it)", catalog__errmsg(cat));
        store_compact_job_free(j);
        return rc;
    }

    /* Committed: the new file takes its name, the old one goes (segment.md 9.1). */
    rc = fs->rename(fs->ctx, j->tmp_path, j->new_path);
    if (rc == 0) {
        j->tmp_made = false;
        rc = fs->fsync_dir(fs->ctx, st->segdir);
    }
    if (rc < 0) {
        errbuf_set(eb, "compaction: cannot rename '%s': %s (store_open finishes it)", j->tmp_name,
                   vg_strerror(rc));
        j->tmp_made = false; /* the transaction committed: recovery renames it */
        store_compact_job_free(j);
        return rc;
    }
    compact_done_add(st, old->id);
    compact_done_add(st, c->m.id);
    int urc = fs->unlink(fs->ctx, j->old_path);
    if (urc == 0) {
        urc = fs->fsync_dir(fs->ctx, st->segdir);
    }
    if (urc == 0 || urc == -ENOENT) {
        urc = catalog__deletion_removed(cat, old->id, vg_now_ns());
    }
    if (urc < 0) {
        log_warn("segment '%s': compacted, but its file cannot be removed yet: %s", old->file,
                 vg_strerror(urc));
    }
    log_info("segment '%s' (%" PRIu64 " records, %" PRIu64 " blocks, %" PRIu64
             " bytes) compacted into '%s' (%" PRIu64 " blocks, %" PRIu64 " bytes)",
             old->file, old->tot.count, old->tot.blocks, old->bytes, c->m.file, c->m.tot.blocks,
             c->m.bytes);
    if (res) {
        res->segments++;
        res->records += old->tot.count;
        res->bytes_before += old->bytes;
        res->bytes_after += c->m.bytes;
    }
    store_compact_job_free(j);
    return 1;
}

int store_compact(struct store *st, const struct store_compact_opts *o,
                  struct store_compact_result *res, struct errbuf *eb)
{
    struct store_compact_job *j = NULL;
    int rc = 0;

    memset(res, 0, sizeof(*res));
    while ((!o || !o->max_segments || res->segments < o->max_segments) &&
           (rc = store_compact_pick(st, o, INT64_MAX, &j, res, eb)) == 1) {
        store_compact_build(j);
        if ((rc = store_compact_install(st, j, res, eb)) < 0) {
            return rc;
        }
    }
    return rc < 0 ? rc : 0;
}

int compact__recover(struct store *st)
{
    const struct fsops *fs = st->fs;
    struct seg_meta *rows = NULL;
    size_t n = 0;
    DIR *d;
    struct dirent *e;
    int rc = catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &n);

    if (rc < 0) {
        return rc;
    }
    d = opendir(st->segdir);
    if (!d) {
        free(rows);
        return -errno;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        size_t sl = strlen(COMPACT_SUFFIX);
        char final[SEG_NAME_MAX];
        char from[PATH_MAX];
        char to[PATH_MAX];
        if (e->d_name[0] != '.' || len <= 1 + sl || len - 1 - sl >= sizeof(final) ||
            strcmp(e->d_name + len - sl, COMPACT_SUFFIX) != 0) {
            continue;
        }
        memcpy(final, e->d_name + 1, len - 1 - sl);
        final[len - 1 - sl] = 0;
        /* segment.md 12.3: the sequence's SEAL decides (the catalog follows it). */
        uint64_t id = 0;
        const struct sealseq_entry *se =
            seg__name_parse(final, &id) ? sealseq__last(st->seq, id) : NULL;
        bool committed = se && se->type == SEALSEQ_SEAL;
        for (size_t i = 0; i < n; i++) {
            committed |= strcmp(rows[i].file, final) == 0;
        }
        if ((rc = path_in(st, e->d_name, from)) < 0 || (rc = path_in(st, final, to)) < 0) {
            break;
        }
        /* segment.md 12.3: the sequence or the transaction decided. */
        rc = committed ? fs->rename(fs->ctx, from, to) : fs->unlink(fs->ctx, from);
        if (rc == 0) {
            rc = fs->fsync_dir(fs->ctx, st->segdir);
        }
        if (rc == 0) {
            log_warn("segment '%s': an interrupted compaction %s", final,
                     committed ? "finished (renamed into place)" : "undone (its file removed)");
        }
    }
    closedir(d);
    free(rows);
    return rc;
}
