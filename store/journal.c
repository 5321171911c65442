/* store/journal.c: the commit journal (schemas/segment.md 5.6): the bytes (file header,
 * frames, records), reading a journal file frame by frame (writer recovery, readers,
 * vigil verify, the fuzz target), the writer's files (appending a commit's frames with one
 * write and one fdatasync, rolling to a new file, reclaiming files whose records are all
 * in committed blocks), and the map of what the catalog holds that tells a journaled
 * record already in a block from one that is only in the journal.
 *
 * No state beyond what the caller passes; the writer's struct jnl_w belongs to the
 * store's thread. */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "store/fsops.h"
#include "store/store_int.h"

/* ---- bytes (segment.md 5.6.1) ---- */

static const uint8_t jnl_file_magic[8] = { 'V', 'I', 'G', 'I', 'L', 'J', 'N', 'L' };
static const uint8_t jnl_frame_magic[4] = { 'V', 'J', 'F', 'R' };

void jnl__file_hdr_encode(uint64_t no, int64_t created, uint8_t p[JNL_FILE_HDR_LEN])
{
    memset(p, 0, JNL_FILE_HDR_LEN);
    memcpy(p, jnl_file_magic, 8);
    store__put_le(p + 8, JNL_VERSION, 2);
    store__put_le(p + 10, JNL_FILE_HDR_LEN, 2);
    store__put_le(p + 16, no, 8);
    store__put_le(p + 24, (uint64_t)created, 8);
    store__put_le(p + 60, seg__crc32(p, 60), 4);
}

int jnl__file_hdr_decode(const uint8_t *p, uint64_t *no, struct errbuf *why)
{
    if (memcmp(p, jnl_file_magic, 8) != 0) {
        errbuf_set(why, "not a journal file (bad magic)");
        return VG_ECORRUPT;
    }
    if (store__get_le(p + 60, 4) != seg__crc32(p, 60)) {
        errbuf_set(why, "journal file header checksum mismatch");
        return VG_ECORRUPT;
    }
    if (store__get_le(p + 8, 2) != JNL_VERSION || store__get_le(p + 10, 2) != JNL_FILE_HDR_LEN) {
        errbuf_set(why, "journal file version %u (header %u bytes) is not %u (%u)",
                   (unsigned)store__get_le(p + 8, 2), (unsigned)store__get_le(p + 10, 2),
                   JNL_VERSION, JNL_FILE_HDR_LEN);
        return VG_EFORMAT;
    }
    *no = store__get_le(p + 16, 8);
    if (*no == 0) {
        errbuf_set(why, "journal file number 0");
        return VG_ECORRUPT;
    }
    return 0;
}

void jnl__frame_hdr_encode(const struct jnl_frame *f, uint8_t p[JNL_FRAME_HDR_LEN])
{
    memset(p, 0, JNL_FRAME_HDR_LEN);
    memcpy(p, jnl_frame_magic, 4);
    store__put_le(p + 4, f->count, 4);
    store__put_le(p + 8, f->payload_len, 4);
    store__put_le(p + 12, f->payload_crc, 4);
    store__put_le(p + 16, f->seq_min, 8);
    store__put_le(p + 24, f->seq_max, 8);
    store__put_le(p + 32, f->commit_seq, 8);
    store__put_le(p + 44, seg__crc32(p, 44), 4);
}

int jnl__frame_hdr_decode(const uint8_t *p, struct jnl_frame *f, struct errbuf *why)
{
    if (memcmp(p, jnl_frame_magic, 4) != 0) {
        errbuf_set(why, "bad frame magic");
        return VG_ECORRUPT;
    }
    if (store__get_le(p + 44, 4) != seg__crc32(p, 44)) {
        errbuf_set(why, "frame header checksum mismatch");
        return VG_ECORRUPT;
    }
    f->count = (uint32_t)store__get_le(p + 4, 4);
    f->payload_len = (uint32_t)store__get_le(p + 8, 4);
    f->payload_crc = (uint32_t)store__get_le(p + 12, 4);
    f->seq_min = store__get_le(p + 16, 8);
    f->seq_max = store__get_le(p + 24, 8);
    f->commit_seq = store__get_le(p + 32, 8);
    if (store__get_le(p + 40, 4) != 0) {
        errbuf_set(why, "frame reserved field not zero");
        return VG_ECORRUPT;
    }
    /* segment.md 5.6.1: the limits, before anything is allocated or read. */
    if (f->count == 0 || f->payload_len > JNL_MAX_PAYLOAD ||
        (uint64_t)f->count * JNL_REC_HDR_LEN > f->payload_len) {
        errbuf_set(why, "frame of %" PRIu32 " records in %" PRIu32 " bytes is out of bounds",
                   f->count, f->payload_len);
        return VG_ECORRUPT;
    }
    if (f->seq_min == 0 || f->seq_min > f->seq_max || f->seq_max - f->seq_min < f->count - 1u ||
        f->commit_seq < f->seq_max) {
        errbuf_set(why, "frame seq range %" PRIu64 "..%" PRIu64 " (commit %" PRIu64
                        ") does not fit %" PRIu32 " records",
                   f->seq_min, f->seq_max, f->commit_seq, f->count);
        return VG_ECORRUPT;
    }
    return 0;
}

int jnl__rec_next(struct span *in, int64_t *ts, uint64_t *seq, struct span *rec)
{
    if (in->n == 0) {
        return 0;
    }
    if (in->n < JNL_REC_HDR_LEN) {
        return VG_ECORRUPT;
    }
    uint64_t len = store__get_le(in->p + 16, 4);
    if (len == 0 || len > BLOCK_MAX_REC || len > in->n - JNL_REC_HDR_LEN) {
        return VG_ECORRUPT;
    }
    *ts = (int64_t)store__get_le(in->p, 8);
    *seq = store__get_le(in->p + 8, 8);
    rec->p = in->p + JNL_REC_HDR_LEN;
    rec->n = (size_t)len;
    in->p += JNL_REC_HDR_LEN + len;
    in->n -= JNL_REC_HDR_LEN + len;
    return 1;
}

int jnl__rec_append(struct buf *b, int64_t ts, uint64_t seq, struct span rec)
{
    int rc = buf_reserve(b, JNL_REC_HDR_LEN + rec.n);

    if (rc < 0) {
        return rc;
    }
    uint8_t *p = b->data + b->len;
    store__put_le(p, (uint64_t)ts, 8);
    store__put_le(p + 8, seq, 8);
    store__put_le(p + 16, rec.n, 4);
    memcpy(p + JNL_REC_HDR_LEN, rec.p, rec.n);
    b->len += JNL_REC_HDR_LEN + rec.n;
    b->data[b->len] = 0;
    return 0;
}

int jnl__payload_check(const struct jnl_frame *f, struct span payload, struct errbuf *why)
{
    struct span in = payload;
    int64_t ts;
    uint64_t seq;
    uint64_t prev = 0;
    struct span rec;
    uint32_t n = 0;
    int rc;

    if (seg__crc32(payload.p, payload.n) != f->payload_crc) {
        errbuf_set(why, "frame payload checksum mismatch");
        return VG_ECORRUPT;
    }
    while ((rc = jnl__rec_next(&in, &ts, &seq, &rec)) == 1) {
        if (n == 0 ? seq != f->seq_min : seq <= prev) {
            errbuf_set(why, "record %" PRIu32 " of the frame has seq %" PRIu64 " out of order", n,
                       seq);
            return VG_ECORRUPT;
        }
        prev = seq;
        n++;
    }
    if (rc < 0) {
        errbuf_set(why, "record %" PRIu32 " of the frame runs past its payload", n);
        return VG_ECORRUPT;
    }
    if (n != f->count || prev != f->seq_max) {
        errbuf_set(why, "frame holds %" PRIu32 " records up to seq %" PRIu64
                        ", its header says %" PRIu32 " up to %" PRIu64,
                   n, prev, f->count, f->seq_max);
        return VG_ECORRUPT;
    }
    return 0;
}

/* ---- names ---- */

void jnl__name(uint64_t no, char out[JNL_NAME_MAX])
{
    snprintf(out, JNL_NAME_MAX, "%020" PRIu64 ".vjnl", no);
}

bool jnl__name_parse(const char *name, uint64_t *no)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; name[i] >= '0' && name[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    if (i != 20 || strcmp(name + i, ".vjnl") != 0 || v == 0) {
        return false;
    }
    *no = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int jnl__list(const char *jdir, uint64_t **nos, size_t *n)
{
    DIR *d = opendir(jdir);
    struct dirent *e;
    size_t cap = 0;

    *nos = NULL;
    *n = 0;
    if (!d) {
        return errno == ENOENT ? 0 : -errno;
    }
    while ((e = readdir(d)) != NULL) {
        uint64_t no;
        if (!jnl__name_parse(e->d_name, &no)) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            *nos = xrealloc(*nos, cap * sizeof(**nos));
        }
        (*nos)[(*n)++] = no;
    }
    closedir(d);
    if (*n > 1) {
        qsort(*nos, *n, sizeof(**nos), cmp_u64);
    }
    return 0;
}

/* ---- reading one file ---- */

static int pread_all(int fd, void *p, size_t n, uint64_t off)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = pread(fd, (uint8_t *)p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return -EIO; /* the caller checked the size: the file shrank */
        }
        done += (size_t)r;
    }
    return 0;
}

int jnl__walk(struct jnl_walk *w)
{
    uint8_t hb[JNL_FILE_HDR_LEN];
    uint8_t fb[JNL_FRAME_HDR_LEN];
    uint64_t off;
    int rc;

    w->hdr_ok = false;
    w->end = 0;
    w->frames = 0;
    w->records = 0;
    w->seq_max = 0;
    w->commit_seq = 0;
    w->bad_off = 0;
    w->bad_incomplete = false;
    errbuf_clear(&w->why);
    if (w->from >= JNL_FILE_HDR_LEN && w->from <= w->size) {
        w->hdr_ok = true;
        off = w->from;
        w->end = off;
    } else {
        if (w->size < JNL_FILE_HDR_LEN) {
            w->bad_incomplete = true;
            errbuf_set(&w->why, "file header incomplete (%" PRIu64 " bytes)", w->size);
            return VG_ECORRUPT;
        }
        if ((rc = pread_all(w->fd, hb, sizeof(hb), 0)) < 0) {
            return rc;
        }
        rc = jnl__file_hdr_decode(hb, &w->no, &w->why);
        if (rc < 0) {
            return rc == VG_EFORMAT ? rc : VG_ECORRUPT;
        }
        if (w->expect_no != 0 && w->no != w->expect_no) {
            errbuf_set(&w->why, "its header says file %" PRIu64, w->no);
            return VG_ECORRUPT;
        }
        w->hdr_ok = true;
        off = JNL_FILE_HDR_LEN;
        w->end = off;
    }
    while (off < w->size) {
        struct jnl_frame f;
        w->bad_off = off;
        if (w->size - off < JNL_FRAME_HDR_LEN) {
            w->bad_incomplete = true;
            errbuf_set(&w->why, "frame header incomplete (%" PRIu64 " bytes)", w->size - off);
            return VG_ECORRUPT;
        }
        if ((rc = pread_all(w->fd, fb, sizeof(fb), off)) < 0) {
            return rc;
        }
        if (jnl__frame_hdr_decode(fb, &f, &w->why) < 0) {
            return VG_ECORRUPT;
        }
        if (f.payload_len > w->size - off - JNL_FRAME_HDR_LEN) {
            w->bad_incomplete = true;
            errbuf_set(&w->why, "frame of %" PRIu32 " bytes runs past the end of the file",
                       f.payload_len);
            return VG_ECORRUPT;
        }
        if (f.seq_min <= w->seq_max) {
            errbuf_set(&w->why, "frame seq %" PRIu64 " not above the previous frame's %" PRIu64,
                       f.seq_min, w->seq_max);
            return VG_ECORRUPT;
        }
        buf_reset(w->pbuf);
        if ((rc = buf_reserve(w->pbuf, f.payload_len)) < 0) {
            return rc;
        }
        if ((rc = pread_all(w->fd, w->pbuf->data, f.payload_len, off + JNL_FRAME_HDR_LEN)) < 0) {
            return rc;
        }
        struct span payload = { w->pbuf->data, f.payload_len };
        if (jnl__payload_check(&f, payload, &w->why) < 0) {
            return VG_ECORRUPT;
        }
        off += JNL_FRAME_HDR_LEN + f.payload_len;
        w->end = off;
        w->frames++;
        w->records += f.count;
        w->seq_max = f.seq_max;
        w->commit_seq = f.commit_seq;
        if (w->fn && (rc = w->fn(w->arg, &f, payload)) != 0) {
            return rc;
        }
    }
    w->bad_off = 0;
    return 0;
}

/* ---- what the catalog holds (segment.md 5.6.3) ---- */

static int cmp_part(const void *a, const void *b)
{
    const struct jnl_part *x = a;
    const struct jnl_part *y = b;
    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    return x->end < y->end ? -1 : x->end > y->end;
}

void jnl__stored_add(struct jnl_stored *s, int64_t start, int64_t end, uint64_t seq_max)
{
    if (end <= start) {
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = (struct jnl_part){ start, end, seq_max };
    if ((uint64_t)end - (uint64_t)start > (uint64_t)s->max_len) {
        s->max_len = (int64_t)((uint64_t)end - (uint64_t)start);
    }
}

void jnl__stored_done(struct jnl_stored *s)
{
    size_t k = 0;

    if (s->n > 1) {
        qsort(s->v, s->n, sizeof(*s->v), cmp_part);
    }
    for (size_t i = 0; i < s->n; i++) {
        if (k > 0 && s->v[k - 1].start == s->v[i].start && s->v[k - 1].end == s->v[i].end) {
            if (s->v[i].seq_max > s->v[k - 1].seq_max) {
                s->v[k - 1].seq_max = s->v[i].seq_max;
            }
            continue;
        }
        s->v[k++] = s->v[i];
    }
    s->n = k;
}

bool jnl__stored_has(const struct jnl_stored *s, int64_t ts, uint64_t seq)
{
    /* The last partition starting at or before ts, then back over those that may still
     * reach ts (partitions of another length, when store.partition changed). */
    size_t lo = 0;
    size_t hi = s->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid].start <= ts) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (size_t i = lo; i-- > 0;) {
        const struct jnl_part *p = &s->v[i];
        if ((uint64_t)ts - (uint64_t)p->start >= (uint64_t)s->max_len) {
            break;
        }
        if (ts < p->end && seq <= p->seq_max) {
            return true;
        }
    }
    return false;
}

void jnl__stored_release(struct jnl_stored *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* ---- the writer's files (segment.md 5.6.2) ---- */

void jnl__w_init(struct jnl_w *j)
{
    memset(j, 0, sizeof(*j));
    j->fd = -1;
    j->next_no = 1;
    buf_init(&j->pend, (size_t)1 << 40);
    buf_init(&j->out, (size_t)1 << 40);
}

void jnl__w_release(struct jnl_w *j, const struct fsops *fs)
{
    if (j->fd >= 0) {
        fs->close(fs->ctx, j->fd);
        j->fd = -1;
    }
    free(j->files);
    j->files = NULL;
    j->nfiles = j->cap = 0;
    free(j->poff);
    j->poff = NULL;
    j->npend = j->cappend = 0;
    buf_release(&j->pend);
    buf_release(&j->out);
}

void jnl__w_file_add(struct jnl_w *j, uint64_t no, uint64_t seq_max)
{
    if (j->nfiles == j->cap) {
        j->cap = j->cap ? 2 * j->cap : 8;
        j->files = xrealloc(j->files, j->cap * sizeof(*j->files));
    }
    j->files[j->nfiles++] = (struct jnl_wfile){ no, seq_max };
    if (no >= j->next_no) {
        j->next_no = no + 1;
    }
}

int jnl__path(const struct jnl_w *j, uint64_t no, char *out)
{
    char name[JNL_NAME_MAX];

    jnl__name(no, name);
    return seg__path(out, PATH_MAX, j->dir, name);
}

/* A new file for the next frames: its header written, the directory synced (the frames
 * after it are then found after a crash). */
static int jnl_create(struct jnl_w *j, const struct fsops *fs, bool sync, int64_t now)
{
    char path[PATH_MAX];
    uint8_t hb[JNL_FILE_HDR_LEN];
    uint64_t no = j->next_no;
    int rc = jnl__path(j, no, path);

    if (rc < 0) {
        return rc;
    }
    int fd = fs->open(fs->ctx, path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    if (fd < 0) {
        log_error("journal '%s': cannot create: %s", path, vg_strerror(fd));
        return fd;
    }
    j->next_no++;
    jnl__file_hdr_encode(no, now, hb);
    rc = fsops_pwrite_all(fs, fd, hb, sizeof(hb), 0);
    if (rc == 0 && sync) {
        rc = fs->fdatasync(fs->ctx, fd);
        if (rc == 0) {
            rc = fs->fsync_dir(fs->ctx, j->dir);
        }
    }
    if (rc < 0) {
        log_error("journal '%s': cannot write its header: %s", path, vg_strerror(rc));
        fs->close(fs->ctx, fd);
        int urc = fs->unlink(fs->ctx, path);
        if (urc < 0) {
            log_warn("journal '%s': cannot remove: %s", path, vg_strerror(urc));
        }
        return rc;
    }
    j->fd = fd;
    j->no = no;
    j->size = JNL_FILE_HDR_LEN;
    jnl__w_file_add(j, no, 0);
    return 0;
}

/* Makes sure a file takes the next frames: the current one, or a new one when there is
 * none or it passed JNL_ROLL_BYTES. */
static int jnl_ready(struct jnl_w *j, const struct fsops *fs, bool sync, int64_t now)
{
    if (j->fd >= 0 && j->size >= JNL_ROLL_BYTES) {
        fs->close(fs->ctx, j->fd); /* written and synced: nothing to lose */
        j->fd = -1;
    }
    return j->fd < 0 ? jnl_create(j, fs, sync, now) : 0;
}

/* Writes n bytes of whole frames (the last with seq_max) at the end of the file and
 * syncs; on failure cuts the file back (or abandons it) and returns the error. */
static int jnl_write(struct jnl_w *j, const struct fsops *fs, const uint8_t *p, size_t n,
                     uint64_t seq_max, bool sync)
{
    int rc = fsops_pwrite_all(fs, j->fd, p, n, (int64_t)j->size);

    if (rc == 0 && sync) {
        rc = fs->fdatasync(fs->ctx, j->fd);
    }
    if (rc < 0) {
        char path[PATH_MAX];
        if (jnl__path(j, j->no, path) < 0) {
            snprintf(path, sizeof(path), "%s", j->dir);
        }
        log_error("journal '%s': write of %zu bytes at offset %" PRIu64 " failed: %s", path, n,
                  j->size, vg_strerror(rc));
        /* segment.md 5.6.2: nothing after a frame that was not synced. */
        int trc = fs->ftruncate(fs->ctx, j->fd, (int64_t)j->size);
        if (trc < 0) {
            log_error("journal '%s': cannot truncate back to %" PRIu64 " bytes: %s; starting a "
                      "new file",
                      path, j->size, vg_strerror(trc));
        }
        /* Either way the next frame goes to a new file: this one may end in garbage,
         * which recovery cuts (a torn tail past the last acknowledged frame). */
        fs->close(fs->ctx, j->fd);
        j->fd = -1;
        return rc;
    }
    j->size += n;
    j->files[j->nfiles - 1].seq_max = seq_max;
    return 0;
}

int jnl__w_append(struct jnl_w *j, const struct fsops *fs, struct span payload, uint64_t commit_seq,
                  bool sync, int64_t now)
{
    struct span in = payload;
    int rc;

    if (payload.n == 0) {
        return 0;
    }
    if ((rc = jnl_ready(j, fs, sync, now)) < 0) {
        return rc;
    }
    /* Frames of at most JNL_FRAME_TARGET bytes (one record may take a frame alone). */
    buf_reset(&j->out);
    uint64_t seq_max = 0;
    while (in.n > 0) {
        struct jnl_frame f = { 0 };
        struct span part = { in.p, 0 };
        int64_t ts;
        uint64_t seq;
        struct span rec;
        struct span cur = in;
        while (jnl__rec_next(&cur, &ts, &seq, &rec) == 1) {
            size_t len = (size_t)(cur.p - in.p);
            if (f.count > 0 && len > JNL_FRAME_TARGET) {
                break;
            }
            if (f.count == 0) {
                f.seq_min = seq;
            }
            f.seq_max = seq;
            f.count++;
            part.n = len;
        }
        assert(f.count > 0); /* the payload is ours: whole records */
        f.payload_len = (uint32_t)part.n;
        f.payload_crc = seg__crc32(part.p, part.n);
        f.commit_seq = commit_seq;
        if ((rc = buf_reserve(&j->out, JNL_FRAME_HDR_LEN + part.n)) < 0) {
            return rc;
        }
        jnl__frame_hdr_encode(&f, j->out.data + j->out.len);
        memcpy(j->out.data + j->out.len + JNL_FRAME_HDR_LEN, part.p, part.n);
        j->out.len += JNL_FRAME_HDR_LEN + part.n;
        in.p += part.n;
        in.n -= part.n;
        seq_max = f.seq_max;
    }
    rc = jnl_write(j, fs, j->out.data, j->out.len, seq_max, sync);
    if (j->out.cap > (4u << 20)) {
        buf_release(&j->out); /* a large commit: do not keep its copy */
        buf_init(&j->out, (size_t)1 << 40);
    }
    return rc;
}

int jnl__w_pend_add(struct jnl_w *j, int64_t ts, uint64_t seq, struct span rec)
{
    size_t len = j->pend.len;
    int rc;

    if (len == 0) {
        /* Room for the frame header of a commit that journals every pending record. */
        if ((rc = buf_reserve(&j->pend, JNL_FRAME_HDR_LEN)) < 0) {
            return rc;
        }
        memset(j->pend.data, 0, JNL_FRAME_HDR_LEN);
        j->pend.len = JNL_FRAME_HDR_LEN;
    }
    if ((rc = jnl__rec_append(&j->pend, ts, seq, rec)) < 0) {
        j->pend.len = len;
        return rc;
    }
    if (j->npend == j->cappend) {
        j->cappend = j->cappend ? 2 * j->cappend : 1024;
        j->poff = xrealloc(j->poff, j->cappend * sizeof(*j->poff));
    }
    j->poff[j->npend++] = j->pend.len - JNL_REC_HDR_LEN - rec.n;
    return 0;
}

void jnl__w_pend_reset(struct jnl_w *j)
{
    buf_reset(&j->pend);
    j->npend = 0;
    if (j->pend.cap > (64u << 20)) {
        buf_release(&j->pend); /* a large batch: do not keep its room */
        buf_init(&j->pend, (size_t)1 << 40);
    }
}

static uint64_t pend_seq(const struct jnl_w *j, size_t i)
{
    return store__get_le(j->pend.data + j->poff[i] + 8, 8);
}

int jnl__w_commit(struct jnl_w *j, const struct fsops *fs, uint64_t low, uint64_t commit_seq,
                  bool sync, int64_t now)
{
    size_t lo = 0;
    size_t hi = j->npend;
    int rc;

    /* The first pending record with seq >= low (they are in seq order). */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pend_seq(j, mid) < low) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == j->npend) {
        return 0;
    }
    size_t from = j->poff[lo];
    struct span payload = { j->pend.data + from, j->pend.len - from };
    if (payload.n > JNL_MAX_PAYLOAD) {
        rc = jnl__w_append(j, fs, payload, commit_seq, sync, now);
        return rc < 0 ? rc : 1;
    }
    if ((rc = jnl_ready(j, fs, sync, now)) < 0) {
        return rc;
    }
    /* One frame, its header in the bytes before its payload: the room at the start of
     * pend, or records a block took, which nothing reads again. */
    struct jnl_frame f = {
        .count = (uint32_t)(j->npend - lo),
        .payload_len = (uint32_t)payload.n,
        .payload_crc = seg__crc32(payload.p, payload.n),
        .seq_min = pend_seq(j, lo),
        .seq_max = pend_seq(j, j->npend - 1),
        .commit_seq = commit_seq,
    };
    uint8_t *hdr = j->pend.data + from - JNL_FRAME_HDR_LEN;
    jnl__frame_hdr_encode(&f, hdr);
    rc = jnl_write(j, fs, hdr, JNL_FRAME_HDR_LEN + payload.n, f.seq_max, sync);
    return rc < 0 ? rc : 1;
}

void jnl__w_reclaim(struct jnl_w *j, const struct fsops *fs, uint64_t low, bool sync)
{
    size_t k = 0;
    size_t removed = 0;

    for (size_t i = 0; i < j->nfiles; i++) {
        struct jnl_wfile *f = &j->files[i];
        char path[PATH_MAX];
        /* Every record of f is in a committed block (seq below every open block's). A file
         * whose frames are unknown (seq_max 0) holds none. */
        if (f->seq_max >= low || jnl__path(j, f->no, path) < 0) {
            j->files[k++] = *f;
            continue;
        }
        if (f->no == j->no && j->fd >= 0) {
            fs->close(fs->ctx, j->fd);
            j->fd = -1;
        }
        int rc = fs->unlink(fs->ctx, path);
        if (rc < 0 && rc != -ENOENT) {
            /* Harmless: replay skips records the catalog holds. Tried again next time. */
            log_warn("journal '%s': cannot remove: %s", path, vg_strerror(rc));
            j->files[k++] = *f;
            continue;
        }
        log_debug("journal '%s': reclaimed", path);
        removed++;
    }
    j->nfiles = k;
    /* Not needed for safety (a file back after a crash holds only records in blocks,
     * which replay skips), but a commit returns with its directory as it says. */
    if (removed > 0 && sync) {
        int rc = fs->fsync_dir(fs->ctx, j->dir);
        if (rc < 0) {
            log_warn("journal '%s': fsync: %s", j->dir, vg_strerror(rc));
        }
    }
}
