/* store/writer.c: the store writer (schemas/segment.md 5): appends records to the open
 * block of their partition's open segment, writes full blocks, commits durably (with
 * the commit journal, 5.6: journaling the open blocks' new records and cutting blocks
 * when full or old), rolls back failed commits, seals ended partitions, recovers one
 * segment file after a crash (store.c walks the catalog and the directory and calls it
 * per file) and replays the journal.
 *
 * Invariants, between calls:
 * - every segment in st->segs has `committed` = what its catalog row says (or will
 *   say, for a segment created since the last commit: header only), and its file is
 *   exactly m.bytes long (plus, after a failed write, garbage that the rollback of the
 *   poisoned cycle removes);
 * - m.chain_head is the hash of the last block in the file (the genesis hash while
 *   there is none); the open block chains from it when written;
 * - at most max_open_segments segments hold an fd, except transiently on errors;
 * - a segment not dirty, without an fd, is in the catalog and is dropped from memory;
 * - with a journal, every record in an open block that was acknowledged is in a
 *   journal file in st->jnl.files (5.6.2), and every journal file holds only records
 *   in open blocks or in committed blocks.
 *
 * Thread: one thread uses a struct store (vigild's store thread); every function
 * blocks on disk I/O. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
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

struct seg_writer {
    struct seg_meta m;         /* as written: bytes = file end, chain_head, totals */
    struct seg_meta committed; /* as of the last successful commit */
    int fd;                    /* -1 while evicted (LRU) */
    bool in_catalog;           /* its row exists */
    bool created;              /* created since the last commit: fsync segments/ */
    bool dirty;                /* bytes written (or, without a journal, records added)
                                  since the last commit, or a new file: its row to write */
    bool synced;               /* dirty bytes already fdatasynced (at eviction) */
    bool stale_row;            /* recovery could not write its row (a full disk) */
    uint64_t last_use;         /* LRU tick */
    struct block_builder blk;  /* the open block */
    int64_t blk_born;          /* o.mono_ns() when its first record came (block_max_age) */
};

/* segment.md 5.6: commits journal the open blocks instead of cutting them. */
static bool journaling(const struct store *st)
{
    return st->o.block_max_age_ns > 0;
}

static bool seal_is_pending(const struct store *st, uint64_t id)
{
    for (size_t i = 0; i < st->nseal_pending; i++) {
        if (st->seal_pending[i] == id) {
            return true;
        }
    }
    return false;
}

/* segment.md 13.3: the SEAL entry (reason untrusted) of row id, unless the sequence
 * sealed or deleted it already. Returns 0 or as sealseq__append / VG_EDB. */
static int seq_seal_untrusted(struct store *st, uint64_t id, int64_t now)
{
    const struct sealseq_entry *last = sealseq__last(st->seq, id);
    struct sealseq_entry e;
    struct seg_meta m;
    int rc;

    if (last && (last->type == SEALSEQ_SEAL || last->type == SEALSEQ_DELETE)) {
        return 0;
    }
    if ((rc = catalog__get(st->cat, id, &m)) <= 0) {
        return rc; /* no row: nothing to seal */
    }
    m.sealed = now;
    sealseq__from_meta(&e, SEALSEQ_SEAL, SEALSEQ_UNTRUSTED, &m);
    return sealseq__append(st->seq, &e, 1, st->key);
}

/* A write that found no room (the sequence's or SQLite's). */
static bool no_room(const struct store *st, int rc)
{
    return rc == -ENOSPC || rc == -EDQUOT || (rc == VG_EDB && catalog__full(st->cat));
}

/* Seals a row the writer cannot trust (recovery, a file that no longer agrees), its
 * SEAL entry first. On a full disk, where neither can be written, the seal waits in
 * memory for the next commit and the segment is never reopened meanwhile: the store
 * degrades, it does not stop (segment.md 5.4). */
static int seal_untrusted(struct store *st, uint64_t id)
{
    int64_t now = vg_now_ns();
    int rc = seq_seal_untrusted(st, id, now);

    if (rc == 0) {
        rc = catalog__seal(st->cat, id, now);
    }
    if (rc < 0 && no_room(st, rc)) {
        log_warn("store '%s': the disk is full: segment %" PRIu64 " is sealed with the next commit",
                 st->dir, id);
        st->seal_pending = xrealloc(st->seal_pending, (st->nseal_pending + 1) * sizeof(uint64_t));
        st->seal_pending[st->nseal_pending++] = id;
        return 0;
    }
    return rc;
}

static int seal_pending_flush(struct store *st)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < st->nseal_pending; i++) {
        int64_t now = vg_now_ns();
        rc = seq_seal_untrusted(st, st->seal_pending[i], now);
        if (rc == 0) {
            rc = catalog__seal(st->cat, st->seal_pending[i], now);
        }
    }
    return rc;
}

/* segment.md 5.2, 13.3: each segment about to get its row that the sequence does not
 * know yet gets its OPEN entry first: as created (a recovered one, adopted: as found). */
static int seq_open_new(struct store *st)
{
    struct sealseq_entry *v = NULL;
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < st->nsegs; i++) {
        struct seg_writer *s = st->segs[i];
        if (!s->dirty || sealseq__last(st->seq, s->m.id)) {
            continue;
        }
        v = xrealloc(v, (n + 1) * sizeof(*v));
        sealseq__from_meta(&v[n], SEALSEQ_OPEN, 0, &s->committed);
        v[n].flags = s->created ? 0 : SEALSEQ_F_ADOPTED;
        v[n].time = st->o.now_ns();
        n++;
    }
    rc = sealseq__append(st->seq, v, n, st->key);
    free(v);
    return rc;
}

static int seg_path(const struct store *st, const char *file, char *out)
{
    return seg__path(out, PATH_MAX, st->segdir, file);
}

static size_t fds_open(const struct store *st)
{
    size_t n = 0;
    for (size_t i = 0; i < st->nsegs; i++) {
        n += st->segs[i]->fd >= 0;
    }
    return n;
}

static struct seg_writer *seg_alloc(const struct seg_meta *m)
{
    struct seg_writer *s = xcalloc(1, sizeof(*s));
    s->m = *m;
    s->committed = *m;
    s->fd = -1;
    block__builder_init(&s->blk);
    return s;
}

static void seg_close_fd(struct store *st, struct seg_writer *s)
{
    if (s->fd >= 0) {
        int rc = st->fs->close(st->fs->ctx, s->fd);
        if (rc < 0) {
            log_warn("segment '%s': close: %s", s->m.file, vg_strerror(rc));
        }
        s->fd = -1;
    }
}

static void seg_free(struct store *st, struct seg_writer *s)
{
    if (s) {
        seg_close_fd(st, s);
        block__builder_release(&s->blk);
        free(s);
    }
}

static void segs_add(struct store *st, struct seg_writer *s)
{
    if (st->nsegs == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 8;
        st->segs = xrealloc(st->segs, st->cap * sizeof(*st->segs));
    }
    st->segs[st->nsegs++] = s;
}

static void segs_remove(struct store *st, size_t i)
{
    if (st->cur == st->segs[i]) {
        st->cur = NULL;
    }
    seg_free(st, st->segs[i]);
    st->segs[i] = st->segs[--st->nsegs];
}

/* Compresses and writes s's open block at the end of its file (not synced). On error the
 * file may hold part of the block past m.bytes; the caller poisons the cycle. */
static int seg_flush(struct store *st, struct seg_writer *s)
{
    struct block_hdr h;

    if (s->blk.count == 0) {
        return 0;
    }
    assert(s->fd >= 0);
    int rc = block__builder_finish(&s->blk, s->m.chain_head, st->dg, &st->zbuf, &h, &st->enc);
    if (rc < 0) {
        return rc;
    }
    /* Written to, whatever happens: a rollback cuts it back (with the journal an open
     * block may hold records of earlier commits while its segment is clean). */
    s->dirty = true;
    rc = fsops_pwrite_all(st->fs, s->fd, st->zbuf.data, st->zbuf.len, (int64_t)s->m.bytes);
    if (rc < 0) {
        log_error("segment '%s': write of %zu bytes at offset %" PRIu64 " failed: %s", s->m.file,
                  st->zbuf.len, s->m.bytes, vg_strerror(rc));
        return rc;
    }
    s->m.bytes += st->zbuf.len;
    memcpy(s->m.chain_head, h.hash, VG_SHA256_LEN);
    seg__totals_add(&s->m.tot, &h);
    s->dirty = true;
    s->synced = false;
    st->stats.blocks++;
    st->stats.bytes_raw += h.raw_len;
    st->stats.bytes_stored += st->zbuf.len;
    block__builder_reset(&s->blk);
    return 0;
}

/* Makes s give up its fd: writes its open block and syncs what it wrote, so no write
 * error can hide behind a later fd. A clean segment is dropped from memory. */
static int seg_evict(struct store *st, size_t i)
{
    struct seg_writer *s = st->segs[i];
    int rc = seg_flush(st, s);

    if (rc == 0 && s->dirty && !s->synced && st->o.fsync) {
        rc = st->fs->fdatasync(st->fs->ctx, s->fd);
        if (rc < 0) {
            log_error("segment '%s': fdatasync: %s", s->m.file, vg_strerror(rc));
        }
    }
    if (rc < 0) {
        return rc;
    }
    s->synced = true;
    if (!s->dirty) {
        segs_remove(st, i);
        return 0;
    }
    seg_close_fd(st, s);
    block__builder_release(&s->blk);
    if (st->cur == s) {
        st->cur = NULL;
    }
    return 0;
}

/* Frees an fd slot when max_open_segments are open, evicting the least recently used
 * segment other than keep. */
static int make_room(struct store *st, const struct seg_writer *keep)
{
    while (fds_open(st) >= (size_t)st->o.max_open_segments) {
        size_t lru = SIZE_MAX;
        for (size_t i = 0; i < st->nsegs; i++) {
            struct seg_writer *s = st->segs[i];
            if (s->fd >= 0 && s != keep &&
                (lru == SIZE_MAX || s->last_use < st->segs[lru]->last_use)) {
                lru = i;
            }
        }
        if (lru == SIZE_MAX) {
            return 0;
        }
        int rc = seg_evict(st, lru);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int seg_open_fd(struct store *st, struct seg_writer *s)
{
    char path[PATH_MAX];
    int rc = seg_path(st, s->m.file, path);

    if (rc == 0) {
        rc = st->fs->open(st->fs->ctx, path, O_WRONLY, 0);
    }
    if (rc < 0) {
        log_error("segment '%s': cannot open: %s", s->m.file, vg_strerror(rc));
        return rc;
    }
    s->fd = rc;
    return 0;
}

/* segment.md 5.1: a new segment for [start, end). */
static int seg_create(struct store *st, int64_t start, int64_t end, struct seg_writer **out)
{
    struct seg_meta m;
    struct seg_hdr h = { .version = SEG_VERSION };
    uint8_t hb[SEG_HDR_LEN];
    char path[PATH_MAX];

    memset(&m, 0, sizeof(m));
    m.id = st->next_id;
    m.part_start = start;
    m.part_end = end;
    m.state = SEG_OPEN;
    m.bytes = SEG_HDR_LEN;
    /* The store's clock (store_opts.now_ns): a cluster store node gives the stream's
     * time, so replicas of a shard write the same header (schemas/cluster.md 4). */
    m.created = st->o.now_ns();
    seg__name(start, m.id, m.file);
    h.part_start = start;
    h.part_ns = end - start;
    h.id = m.id;
    h.created = m.created;
    seg__hdr_encode(&h, hb);
    vg_sha256(hb, SEG_HDR_LEN, m.chain_head);

    int rc = seg_path(st, m.file, path);
    if (rc < 0) {
        return rc;
    }
    int fd = st->fs->open(st->fs->ctx, path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    if (fd < 0) {
        log_error("segment '%s': cannot create: %s", m.file, vg_strerror(fd));
        return fd;
    }
    st->next_id++; /* never reuse an id whose file may exist */
    rc = fsops_pwrite_all(st->fs, fd, hb, SEG_HDR_LEN, 0);
    if (rc < 0) {
        log_error("segment '%s': cannot write header: %s", m.file, vg_strerror(rc));
        st->fs->close(st->fs->ctx, fd);
        int urc = st->fs->unlink(st->fs->ctx, path);
        if (urc < 0) {
            log_warn("segment '%s': cannot remove: %s", m.file, vg_strerror(urc));
        }
        return rc;
    }
    struct seg_writer *s = seg_alloc(&m);
    s->fd = fd;
    s->created = true;
    s->dirty = true; /* its row and directory entry come with the next commit */
    *out = s;
    log_debug("segment '%s': created", m.file);
    return 0;
}

/* Continues an open segment known to the catalog (evicted earlier, or from a previous
 * run: recovery made the file agree with the row). Returns 1 and *out, 0 when the file
 * no longer agrees (the row is sealed; the caller creates a new segment), or < 0. */
static int seg_reopen(struct store *st, const struct seg_meta *m, struct seg_writer **out)
{
    struct seg_writer *s = seg_alloc(m);
    struct stat sb;
    int rc = seg_open_fd(st, s);

    if (rc < 0) {
        seg_free(st, s);
        return rc;
    }
    if (fstat(s->fd, &sb) != 0) {
        rc = -errno;
        seg_free(st, s);
        return rc;
    }
    if ((uint64_t)sb.st_size != m->bytes) {
        log_error("segment '%s': file is %lld bytes, the catalog says %" PRIu64
                  "; sealing it and starting a new segment",
                  m->file, (long long)sb.st_size, m->bytes);
        seg_free(st, s);
        rc = seal_untrusted(st, m->id);
        return rc < 0 ? rc : 0;
    }
    s->in_catalog = true;
    *out = s;
    return 1;
}

/* The segment for ts, opened or created; st->cur afterwards. */
static int seg_for(struct store *st, int64_t ts, struct seg_writer **out)
{
    int64_t start;
    int64_t end;
    struct seg_writer *s = NULL;
    struct seg_meta m;
    int rc = seg__partition(ts, st->o.partition_ns, &start, &end);

    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < st->nsegs; i++) {
        if (st->segs[i]->m.part_start == start && st->segs[i]->m.part_end == end) {
            s = st->segs[i];
            break;
        }
    }
    if (s && s->fd < 0) {
        rc = make_room(st, s);
        if (rc == 0) {
            rc = seg_open_fd(st, s);
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (!s) {
        rc = make_room(st, NULL);
        if (rc < 0) {
            return rc;
        }
        rc = catalog__get_open(st->cat, start, end, &m);
        if (rc > 0 && seal_is_pending(st, m.id)) {
            rc = 0; /* untrusted: a new segment */
        }
        if (rc > 0) {
            rc = seg_reopen(st, &m, &s);
        }
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            rc = seg_create(st, start, end, &s);
            if (rc < 0) {
                return rc;
            }
        }
        segs_add(st, s);
    }
    s->last_use = ++st->tick;
    st->cur = s;
    *out = s;
    return 0;
}

static int store_rollback(struct store *st);

/* segment.md 5.3: an I/O error ends the cycle: roll back now, so the store is usable
 * again (a failed rollback is retried before the next write). Returns rc. */
static int store_fail(struct store *st, int rc)
{
    st->poison_rc = store_rollback(st) < 0 ? rc : 0;
    return rc;
}

/* Retries a rollback that failed. Returns 0 once the files are back at their committed
 * sizes, else the error that started it. */
static int store_unpoison(struct store *st)
{
    if (store_rollback(st) < 0) {
        return st->poison_rc;
    }
    st->poison_rc = 0;
    return 0;
}

/* Adds one record to the open block of its partition (creating or reopening the
 * segment, writing the block when full). *io is set when the error is an I/O or catalog
 * error, after which the caller rolls back (segment.md 5.3); other errors change nothing. */
static int append_rec(struct store *st, int64_t ts, uint64_t seq, struct span rec, bool *io)
{
    struct seg_writer *s = st->cur;
    int rc;

    *io = false;
    if (!s || ts < s->m.part_start || ts >= s->m.part_end) {
        rc = seg_for(st, ts, &s);
        if (rc == -EINVAL) {
            return rc; /* the partition overflows int64: nothing happened */
        }
        if (rc < 0) {
            *io = true;
            return rc;
        }
    }
    if (s->blk.count > 0 && s->blk.in_bytes + block__entry_len(rec.n) > st->o.block_bytes) {
        rc = seg_flush(st, s);
        if (rc < 0) {
            *io = true;
            return rc;
        }
    }
    rc = block__builder_add(&s->blk, ts, seq, rec);
    if (rc < 0) {
        return rc;
    }
    if (s->blk.count == 1) {
        s->blk_born = st->o.mono_ns();
    }
    /* Without a journal the next commit writes this block. With one, a segment is dirty
     * only once a block is written to it (seg_flush) or it is new: a commit of journaled
     * records alone neither syncs it nor rewrites its catalog row. */
    if (!journaling(st)) {
        s->dirty = true;
    }
    return 0;
}

int store_append(struct store *st, int64_t ts, uint64_t seq, struct span rec)
{
    bool io;
    int rc;

    if (st->poison_rc < 0 && (rc = store_unpoison(st)) < 0) {
        return rc;
    }
    if (rec.n == 0 || seq < st->next_seq) {
        return -EINVAL;
    }
    if (rec.n > BLOCK_MAX_REC) {
        return VG_ELIMIT;
    }
    /* segment.md 5.6.2: what the next commit journals. */
    rc = append_rec(st, ts, seq, rec, &io);
    if (rc < 0) {
        return io ? store_fail(st, rc) : rc;
    }
    if (journaling(st) && (rc = jnl__w_pend_add(&st->jnl, ts, seq, rec)) < 0) {
        /* In its open block but never to be journaled: no commit may return 0 now. */
        return store_fail(st, rc);
    }
    st->next_seq = seq + 1;
    st->stats.records++;
    return 0;
}

uint64_t store_next_seq(const struct store *st)
{
    return st->next_seq;
}

/* segment.md 5.3: back to the last commit. Returns 0, or the error of a truncation
 * that failed (the segment stays dirty and is retried by the next rollback). */
static int seg_rollback(struct store *st, struct seg_writer *s)
{
    bool had_fd = s->fd >= 0;
    int rc = 0;

    block__builder_reset(&s->blk);
    if (s->dirty) {
        if (!had_fd) {
            rc = seg_open_fd(st, s);
        }
        if (rc == 0) {
            rc = st->fs->ftruncate(st->fs->ctx, s->fd, (int64_t)s->committed.bytes);
            if (rc < 0) {
                log_error("segment '%s': cannot truncate back to %" PRIu64 " bytes: %s", s->m.file,
                          s->committed.bytes, vg_strerror(rc));
            }
        }
        if (!had_fd) {
            seg_close_fd(st, s);
        }
        if (rc < 0) {
            return rc;
        }
    }
    s->m = s->committed;
    s->dirty = !s->in_catalog || s->stale_row; /* a new file still needs its row */
    if (had_fd) {
        s->synced = false;
    } /* else eviction synced it, and the header it kept is unchanged */
    return 0;
}

static int journal_replay(struct store *st, bool at_open, struct errbuf *eb);

/* segment.md 5.3, 5.6.2: every file back at its committed size, the open blocks empty,
 * then refilled from the journal with what was acknowledged and is in no committed
 * block (a block written since the last commit may have taken it). */
static int store_rollback(struct store *st)
{
    int first = 0;

    for (size_t i = 0; i < st->nsegs; i++) {
        int rc = seg_rollback(st, st->segs[i]);
        if (rc < 0 && first == 0) {
            first = rc;
        }
    }
    jnl__w_pend_reset(&st->jnl);
    if (first == 0 && st->jnl.nfiles > 0) {
        struct errbuf eb;
        errbuf_clear(&eb);
        first = journal_replay(st, false, &eb);
        if (first < 0) {
            log_error("store '%s': %s", st->dir, errbuf_msg(&eb));
        }
    }
    return first;
}

/* segment.md 5.6: a commit cuts an open block when there is no journal, when its
 * partition is being sealed (part_end <= seal_ts) or when its first record is
 * block_max_age old. */
static bool blk_due(const struct store *st, struct seg_writer *s, int64_t now, int64_t seal_ts)
{
    if (s->blk.count == 0) {
        return false;
    }
    if (!journaling(st) || s->m.part_end <= seal_ts) {
        return true;
    }
    if (now < s->blk_born) {
        s->blk_born = now; /* the clock went back: age from now */
    }
    return now - s->blk_born >= st->o.block_max_age_ns;
}

/* The lowest seq in an open block, UINT64_MAX when none: every record below it that
 * was acknowledged is in a committed block (segment.md 5.6.2). */
static uint64_t open_low(const struct store *st)
{
    uint64_t low = UINT64_MAX;

    for (size_t i = 0; i < st->nsegs; i++) {
        const struct block_builder *b = &st->segs[i]->blk;
        if (b->count > 0 && b->seq_min < low) {
            low = b->seq_min;
        }
    }
    return low;
}

/* store_commit, cutting the blocks of partitions ending at or before seal_ts too. */
static int commit(struct store *st, int64_t seal_ts)
{
    bool any = false;
    bool journaled = false;
    bool need_dir = false;
    int64_t now = journaling(st) ? st->o.mono_ns() : 0;
    int rc;

    if (st->poison_rc < 0 && (rc = store_unpoison(st)) < 0) {
        return rc;
    }
    /* segment.md 5.2 (a): write the open blocks that are due (5.6). */
    for (size_t i = 0; i < st->nsegs; i++) {
        struct seg_writer *s = st->segs[i];
        if (blk_due(st, s, now, seal_ts)) {
            rc = seg_flush(st, s);
            if (rc < 0) {
                goto fail;
            }
        }
    }
    /* (b) make them durable. */
    for (size_t i = 0; i < st->nsegs; i++) {
        struct seg_writer *s = st->segs[i];
        if (!s->dirty) {
            continue;
        }
        any = true;
        need_dir |= s->created;
        if (st->o.fsync && !s->synced) {
            /* Eviction syncs before it closes the fd, so this is an open segment. */
            assert(s->fd >= 0);
            rc = st->fs->fdatasync(st->fs->ctx, s->fd);
            if (rc < 0) {
                log_error("segment '%s': fdatasync: %s", s->m.file, vg_strerror(rc));
                goto fail;
            }
        }
    }
    if (any) {
        if (need_dir && st->o.fsync) {
            rc = st->fs->fsync_dir(st->fs->ctx, st->segdir);
            if (rc < 0) {
                log_error("store '%s': fsync of segments/: %s", st->dir, vg_strerror(rc));
                goto fail;
            }
        }
        if ((rc = seq_open_new(st)) < 0) {
            goto fail;
        }
        /* (c) then tell the catalog, in one transaction; each row written says when its
         * newest records were received (segment.md 6, recv_max: retention's clock). */
        int64_t recv = st->o.now_ns();
        rc = catalog__begin(st->cat);
        for (size_t i = 0; rc == 0 && i < st->nsegs; i++) {
            if (st->segs[i]->dirty) {
                if (st->segs[i]->m.recv_max < recv) {
                    st->segs[i]->m.recv_max = recv;
                }
                rc = catalog__put(st->cat, &st->segs[i]->m);
            }
        }
        if (rc == 0) {
            rc = seal_pending_flush(st);
        }
        if (rc == 0) {
            rc = catalog__commit(st->cat);
        }
        if (rc < 0) {
            catalog__rollback(st->cat);
            goto fail;
        }
        for (size_t i = 0; i < st->nsegs; i++) {
            struct seg_writer *s = st->segs[i];
            if (s->dirty) {
                s->committed = s->m;
                s->in_catalog = true;
                s->created = false;
                s->dirty = false;
                s->synced = false;
                s->stale_row = false;
            }
        }
        st->nseal_pending = 0;
    }
    /* (d) segment.md 5.6.2: the records still in open blocks, journaled after the catalog
     * took the blocks, so a reader that sees a frame sees the catalog of its commit. */
    uint64_t low = open_low(st);
    if (journaling(st)) {
        rc = jnl__w_commit(&st->jnl, st->fs, low, st->next_seq - 1, st->o.fsync, vg_now_ns());
        if (rc < 0) {
            goto fail;
        }
        journaled = rc > 0;
    }
    jnl__w_pend_reset(&st->jnl);
    if (st->jnl.nfiles > 0) {
        jnl__w_reclaim(&st->jnl, st->fs, low, st->o.fsync);
    }
    for (size_t i = st->nsegs; i-- > 0;) {
        struct seg_writer *s = st->segs[i];
        if (s->fd < 0 && !s->dirty) {
            segs_remove(st, i);
        }
    }
    if (any || journaled) {
        st->stats.commits++;
    }
    return 0;
fail:
    return store_fail(st, rc);
}

int store_commit(struct store *st)
{
    return commit(st, INT64_MIN);
}

int store_cut_aged(struct store *st)
{
    int64_t now = st->o.mono_ns();

    for (size_t i = 0; journaling(st) && i < st->nsegs; i++) {
        if (blk_due(st, st->segs[i], now, INT64_MIN)) {
            return commit(st, INT64_MIN);
        }
    }
    return 0;
}

int writer__close_commit(struct store *st)
{
    return commit(st, INT64_MAX);
}

int store_seal_before(struct store *st, int64_t ts)
{
    int rc;

    for (size_t i = 0; i < st->nsegs; i++) {
        struct seg_writer *s = st->segs[i];
        if (s->m.part_end <= ts && (s->dirty || s->blk.count > 0)) {
            rc = commit(st, ts); /* its open block is cut, journal or not (5.6) */
            if (rc < 0) {
                return rc;
            }
            break;
        }
    }
    for (size_t i = st->nsegs; i-- > 0;) {
        if (st->segs[i]->m.part_end <= ts) {
            segs_remove(st, i);
        }
    }
    if (st->nseal_pending > 0) {
        /* Sealed as untrusted first, so they are never sealed (and signed) as ended. */
        rc = catalog__begin(st->cat);
        if (rc == 0) {
            rc = seal_pending_flush(st);
        }
        if (rc == 0) {
            rc = catalog__commit(st->cat);
        }
        if (rc < 0) {
            catalog__rollback(st->cat);
            return rc;
        }
        st->nseal_pending = 0;
    }
    rc = integrity__seal_before(st->cat, st->seq, st->key, ts, vg_now_ns());
    if (rc > 0) {
        char head[2 * VG_SHA256_LEN + 1];
        vg_hex(st->seq->head, VG_SHA256_LEN, head);
        /* segment.md 13.4: the head, outside the store (13.7). */
        log_info("store '%s': sealed %d segments; seal sequence at entry %" PRIu64 ", head %s",
                 st->dir, rc, st->seq->n - 1, head);
    }
    return rc < 0 ? rc : 0;
}

int store_checkpoint(struct store *st)
{
    struct seg_meta *rows = NULL;
    struct sealseq_entry *v = NULL;
    size_t n = 0;
    size_t nv = 0;
    int rc = catalog__list(st->cat, CATALOG_OPEN, 0, 0, &rows, &n);

    /* segment.md 13.3: the committed state of each open segment that changed since its
     * last entry. The catalog's rows are what the commits made durable. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct sealseq_entry *last = sealseq__last(st->seq, rows[i].id);
        if (!last || (last->type != SEALSEQ_OPEN && last->type != SEALSEQ_CHECKPOINT) ||
            (last->bytes == rows[i].bytes &&
             memcmp(last->chain_head, rows[i].chain_head, VG_SHA256_LEN) == 0)) {
            continue;
        }
        v = xrealloc(v, (nv + 1) * sizeof(*v));
        sealseq__from_meta(&v[nv], SEALSEQ_CHECKPOINT, 0, &rows[i]);
        v[nv].time = vg_now_ns();
        nv++;
    }
    if (rc == 0) {
        rc = sealseq__append(st->seq, v, nv, st->key);
    }
    free(rows);
    free(v);
    return rc < 0 ? rc : (int)nv;
}

void store_get_stats(const struct store *st, struct store_stats *out)
{
    *out = st->stats;
    out->segments_open = st->nsegs;
}

/* ---- recovery of one segment file (segment.md 5.4), for store_open ---- */

int writer__recover_file(struct store *st, const char *file, const struct seg_meta *row,
                         struct errbuf *eb)
{
    char path[PATH_MAX];
    struct stat sb;
    struct seg_walk w;
    uint64_t id = 0;
    int rc = seg_path(st, file, path);

    if (rc < 0) {
        return rc;
    }
    int fd = st->fs->open(st->fs->ctx, path, O_RDWR, 0);
    if (fd == -ENOENT && row) {
        log_error("segment '%s': file missing (catalog lists %" PRIu64 " records); sealed", file,
                  row->tot.count);
        return seal_untrusted(st, row->id);
    }
    if (fd < 0) {
        errbuf_set(eb, "recovery: cannot open segment '%s': %s", path, vg_strerror(fd));
        return fd;
    }
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        errbuf_set(eb, "recovery: cannot stat segment '%s': %s", path, vg_strerror(rc));
        goto out;
    }
    memset(&w, 0, sizeof(w));
    w.mode = SEG_WALK_RECOVER;
    w.fd = fd;
    w.size = (uint64_t)sb.st_size;
    w.expect = row;
    w.rbuf = &st->rbuf;
    w.dbuf = &st->dbuf;
    w.dg = st->dg;
    rc = seg__walk(&w);
    if (rc < 0 && rc != VG_ECORRUPT) {
        errbuf_set(eb, "recovery: cannot read segment '%s': %s", path, vg_strerror(rc));
        goto out;
    }
    uint64_t committed = row ? row->bytes : 0;
    if (!w.hdr_ok || (!row && (!seg__name_parse(file, &id) || id != w.hdr.id))) {
        if (!row && w.bad_incomplete) {
            /* Created, never committed, header not even complete: nothing to keep. */
            log_warn("segment '%s': torn file header (%" PRIu64 " bytes) and no catalog row: "
                     "removed",
                     file, w.size);
            st->fs->close(st->fs->ctx, fd);
            fd = -1;
            rc = st->fs->unlink(st->fs->ctx, path);
            if (rc == 0) {
                rc = st->fs->fsync_dir(st->fs->ctx, st->segdir);
            }
            if (rc < 0) {
                errbuf_set(eb, "recovery: cannot remove '%s': %s", path, vg_strerror(rc));
            }
            goto out;
        }
        if (!row) {
            log_error("segment '%s': %s; not a segment of this store, left alone", file,
                      w.hdr_ok ? "file name does not match its header" : errbuf_msg(&w.why));
            rc = 0;
            goto out;
        }
        log_error("segment '%s': %s; kept for inspection and sealed", file, errbuf_msg(&w.why));
        rc = seal_untrusted(st, row->id);
        goto out;
    }
    if (rc == VG_ECORRUPT) {
        if (w.bad_off < committed && !(w.bad_incomplete && w.size < committed)) {
            log_error("segment '%s': corrupt block at offset %" PRIu64
                      " inside committed data (%s); kept, segment sealed",
                      file, w.bad_off, errbuf_msg(&w.why));
            rc = seal_untrusted(st, row->id);
            goto out;
        }
        log_warn("segment '%s': torn tail at offset %" PRIu64 " (%s): cutting %" PRIu64 " bytes%s",
                 file, w.bad_off, errbuf_msg(&w.why), w.size - w.bad_off,
                 w.bad_off < committed ? "; the catalog recorded them as committed" : "");
        rc = st->fs->ftruncate(st->fs->ctx, fd, (int64_t)w.bad_off);
        if (rc == 0) {
            rc = st->fs->fdatasync(st->fs->ctx, fd);
        }
        if (rc < 0) {
            errbuf_set(eb, "recovery: cannot cut the torn tail of '%s': %s", path, vg_strerror(rc));
            goto out;
        }
    }
    struct seg_meta m;
    memset(&m, 0, sizeof(m));
    m.id = w.hdr.id;
    snprintf(m.file, sizeof(m.file), "%s", file);
    m.part_start = w.hdr.part_start;
    m.part_end = w.hdr.part_start + w.hdr.part_ns;
    m.state = SEG_OPEN;
    m.tot = w.tot;
    m.bytes = w.end;
    memcpy(m.chain_head, w.chain, VG_SHA256_LEN);
    m.created = w.hdr.created;
    /* Blocks past the row's count were received before the crash: now is late enough. */
    m.recv_max =
        row && row->recv_max != 0 && row->tot.count == m.tot.count ? row->recv_max : st->o.now_ns();
    if (!row) {
        log_warn("segment '%s': not in the catalog (%" PRIu64 " records); added", file,
                 m.tot.count);
        rc = st->fs->fsync_dir(st->fs->ctx, st->segdir);
        if (rc < 0) {
            errbuf_set(eb, "recovery: fsync of '%s': %s", st->segdir, vg_strerror(rc));
            goto out;
        }
    }
    rc = catalog__put(st->cat, &m);
    if (rc < 0 && catalog__full(st->cat)) {
        /* segment.md 5.4: a full disk does not stop the start. The row waits in memory,
         * dirty, for the next commit (which the collector makes once space returns). */
        log_warn("segment '%s': the disk is full: its catalog row is written with the next "
                 "commit",
                 file);
        struct seg_writer *s = seg_alloc(&m);
        s->in_catalog = row != NULL;
        s->dirty = true;
        s->stale_row = true;
        s->synced = true; /* as recovery found the file; no fd held */
        segs_add(st, s);
        rc = 0;
    } else if (rc < 0) {
        errbuf_set(eb, "recovery: cannot update catalog: %s", catalog__errmsg(st->cat));
    }
out:
    if (fd >= 0) {
        st->fs->close(st->fs->ctx, fd);
    }
    return rc;
}

/* ---- the journal's records back into open blocks (segment.md 5.6.3) ---- */

struct replay {
    struct store *st;
    struct jnl_stored stored;
    uint64_t last;     /* the highest seq replayed or skipped as seen */
    uint64_t replayed; /* records appended to open blocks */
    uint64_t commit_seq;
    int rc; /* an append's error */
};

static int on_replay_frame(void *arg, const struct jnl_frame *f, struct span payload)
{
    struct replay *rp = arg;
    struct span in = payload;
    int64_t ts;
    uint64_t seq;
    struct span rec;

    if (f->commit_seq > rp->commit_seq) {
        rp->commit_seq = f->commit_seq;
    }
    while (jnl__rec_next(&in, &ts, &seq, &rec) == 1) {
        bool io;
        if (seq <= rp->last || jnl__stored_has(&rp->stored, ts, seq)) {
            continue; /* in a committed block, or replayed from an earlier frame */
        }
        rp->last = seq;
        int rc = append_rec(rp->st, ts, seq, rec, &io);
        if (rc == -EINVAL) {
            log_warn("store '%s': journaled record seq %" PRIu64 " has a time (%" PRId64
                     ") whose partition overflows: skipped",
                     rp->st->dir, seq, ts);
            continue;
        }
        if (rc < 0) {
            rp->rc = rc;
            return 1;
        }
        rp->replayed++;
    }
    return 0;
}

/* What the catalog's blocks hold, and the segments in memory as of the last commit. */
static int stored_load(struct store *st, struct jnl_stored *out, struct errbuf *eb)
{
    struct seg_meta *rows = NULL;
    struct catalog_deletion *dels = NULL;
    size_t n = 0;
    size_t nd = 0;
    int rc = catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &n);

    if (rc == 0) {
        rc = catalog__deletions_list(st->cat, false, &dels, &nd);
    }
    if (rc < 0) {
        errbuf_set(eb, "journal: cannot list the catalog: %s", catalog__errmsg(st->cat));
        free(rows);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].tot.count > 0) {
            jnl__stored_add(out, rows[i].part_start, rows[i].part_end, rows[i].tot.seq_max);
        }
    }
    /* A deleted segment's records were in blocks once: never brought back. */
    for (size_t i = 0; i < nd; i++) {
        if (dels[i].m.tot.count > 0) {
            jnl__stored_add(out, dels[i].m.part_start, dels[i].m.part_end, dels[i].m.tot.seq_max);
        }
    }
    for (size_t i = 0; i < st->nsegs; i++) {
        const struct seg_meta *m = &st->segs[i]->committed;
        if (m->tot.count > 0) {
            jnl__stored_add(out, m->part_start, m->part_end, m->tot.seq_max);
        }
    }
    jnl__stored_done(out);
    free(rows);
    free(dels);
    return 0;
}

/* Walks journal file no. At open a bad frame ends the file (a torn tail: cut); after a
 * failed commit the files are as synced, and a bad frame is damage (logged, the rest of
 * that file skipped). Returns 0, or < 0 with eb. *drop: a torn file header, no file. */
static int replay_file(struct replay *rp, struct buf *pbuf, uint64_t no, bool at_open, bool *drop,
                       struct errbuf *eb)
{
    struct store *st = rp->st;
    char path[PATH_MAX];
    struct stat sb;
    struct jnl_walk w;
    int rc = jnl__path(&st->jnl, no, path);

    *drop = false;
    if (rc < 0) {
        errbuf_set(eb, "journal: path too long");
        return rc;
    }
    int fd = st->fs->open(st->fs->ctx, path, at_open ? O_RDWR : O_RDONLY, 0);
    if (fd == -ENOENT && !at_open) {
        *drop = true;
        return 0;
    }
    if (fd < 0) {
        errbuf_set(eb, "journal: cannot open '%s': %s", path, vg_strerror(fd));
        return fd;
    }
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        errbuf_set(eb, "journal: cannot stat '%s': %s", path, vg_strerror(rc));
        goto out;
    }
    memset(&w, 0, sizeof(w));
    w.fd = fd;
    w.size = (uint64_t)sb.st_size;
    w.pbuf = pbuf;
    w.fn = on_replay_frame;
    w.arg = rp;
    w.expect_no = no;
    rc = jnl__walk(&w);
    if (rp->rc < 0) {
        rc = rp->rc;
        errbuf_set(eb, "journal '%s': appending its records to open blocks: %s", path,
                   vg_strerror(rc));
        goto out;
    }
    if (rc == VG_EFORMAT) {
        errbuf_set(eb, "journal '%s': %s (written by a newer vigild?)", path, errbuf_msg(&w.why));
        goto out;
    }
    if (rc < 0 && rc != VG_ECORRUPT) {
        errbuf_set(eb, "journal: cannot read '%s': %s", path, vg_strerror(rc));
        goto out;
    }
    rc = 0;
    if (!w.hdr_ok && !w.bad_incomplete) {
        /* Not a file this journal wrote under that name: moved aside (nothing reads a
         * name that is not "<number>.vjnl"), kept for inspection. */
        char aside[PATH_MAX + 8];
        snprintf(aside, sizeof(aside), "%s.bad", path);
        log_error("journal '%s': %s; moved aside as '%s'", path, errbuf_msg(&w.why), aside);
        *drop = true;
        if (!at_open) {
            goto out;
        }
        rc = st->fs->rename(st->fs->ctx, path, aside);
        if (rc < 0) {
            errbuf_set(eb, "journal: cannot move '%s' aside: %s", path, vg_strerror(rc));
        }
        goto out;
    }
    if (w.bad_off == 0 && w.end == w.size) {
        goto out; /* whole */
    }
    if (!at_open) {
        log_error("journal '%s': bad frame at offset %" PRIu64 " (%s): the records after it "
                  "are not in open blocks",
                  path, w.bad_off, errbuf_msg(&w.why));
        goto out;
    }
    if (!w.hdr_ok) {
        /* Created, its header never synced: it held no frame. */
        log_warn("journal '%s': torn file header (%" PRIu64 " bytes): removed", path, w.size);
        st->fs->close(st->fs->ctx, fd);
        fd = -1;
        *drop = true;
        rc = st->fs->unlink(st->fs->ctx, path);
        if (rc < 0) {
            errbuf_set(eb, "journal: cannot remove '%s': %s", path, vg_strerror(rc));
        }
        goto out;
    }
    /* A frame is acknowledged only once synced, and nothing is written after a frame
     * that was not: from the first bad frame on, nothing was acknowledged. */
    log_warn("journal '%s': torn tail at offset %" PRIu64 " (%s): cutting %" PRIu64 " bytes",
             path, w.end, errbuf_msg(&w.why), w.size - w.end);
    rc = st->fs->ftruncate(st->fs->ctx, fd, (int64_t)w.end);
    if (rc == 0) {
        rc = st->fs->fdatasync(st->fs->ctx, fd);
    }
    if (rc < 0) {
        errbuf_set(eb, "journal: cannot cut the torn tail of '%s': %s", path, vg_strerror(rc));
    }
out:
    if (fd >= 0) {
        st->fs->close(st->fs->ctx, fd);
    }
    if (rc == 0 && at_open && !*drop) {
        jnl__w_file_add(&st->jnl, no, w.seq_max);
    }
    return rc;
}

static int journal_replay(struct store *st, bool at_open, struct errbuf *eb)
{
    struct replay rp = { .st = st };
    struct buf pbuf;
    uint64_t *nos = NULL;
    size_t n = 0;
    int rc = stored_load(st, &rp.stored, eb);

    if (rc < 0) {
        return rc;
    }
    if (at_open) {
        rc = jnl__list(st->jnl.dir, &nos, &n);
        if (rc < 0) {
            errbuf_set(eb, "journal: cannot list '%s': %s", st->jnl.dir, vg_strerror(rc));
            jnl__stored_release(&rp.stored);
            return rc;
        }
    } else {
        n = st->jnl.nfiles;
        nos = xmalloc((n ? n : 1) * sizeof(*nos));
        for (size_t i = 0; i < n; i++) {
            nos[i] = st->jnl.files[i].no;
        }
    }
    buf_init(&pbuf, JNL_MAX_PAYLOAD);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool drop;
        rc = replay_file(&rp, &pbuf, nos[i], at_open, &drop, eb);
        if (at_open && nos[i] >= st->jnl.next_no) {
            st->jnl.next_no = nos[i] + 1; /* never reuse a number, even a foreign file's */
        }
    }
    buf_release(&pbuf);
    free(nos);
    jnl__stored_release(&rp.stored);
    if (rc < 0) {
        return rc;
    }
    uint64_t next = (rp.last > rp.commit_seq ? rp.last : rp.commit_seq) + 1;
    if (rp.commit_seq > 0 && next > st->next_seq) {
        st->next_seq = next; /* never reuse a seq a reader may have seen */
    }
    if (rp.replayed > 0) {
        log_info("store '%s': journal: %" PRIu64 " acknowledged records not yet in blocks are "
                 "back in open blocks",
                 st->dir, rp.replayed);
    }
    return 0;
}

int writer__journal_open(struct store *st, struct errbuf *eb)
{
    int rc = seg__path(st->jnl.dir, sizeof(st->jnl.dir), st->dir, JNL_DIR);

    if (rc < 0) {
        errbuf_set(eb, "store '%s': path too long", st->dir);
        return rc;
    }
    return journal_replay(st, true, eb);
}

void writer__release(struct store *st)
{
    for (size_t i = 0; i < st->nsegs; i++) {
        seg_free(st, st->segs[i]);
    }
    free(st->segs);
    st->segs = NULL;
    st->nsegs = 0;
    buf_release(&st->zbuf);
    block__enc_release(&st->enc);
    buf_release(&st->rbuf);
    buf_release(&st->dbuf);
    digest_free(st->dg);
    st->dg = NULL;
    free(st->seal_pending);
    st->seal_pending = NULL;
    jnl__w_release(&st->jnl, st->fs);
}

void writer__init(struct store *st)
{
    buf_init(&st->zbuf, block__max_len());
    block__enc_init(&st->enc, BLOCK_CODEC_LZ4, st->o.lz4_level < 0 ? 0 : st->o.lz4_level);
    buf_init(&st->rbuf, seg__rbuf_max());
    buf_init(&st->dbuf, BLOCK_MAX_RAW);
    st->dg = digest_new();
    jnl__w_init(&st->jnl);
}

bool store__poisoned(const struct store *st)
{
    return st->poison_rc < 0;
}

bool store__part_in_use(const struct store *st, int64_t start, int64_t end)
{
    for (size_t i = 0; i < st->nsegs; i++) {
        if (st->segs[i]->m.part_start < end && start < st->segs[i]->m.part_end) {
            return true;
        }
    }
    return false;
}
