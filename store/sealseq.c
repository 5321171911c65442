/* store/sealseq.c: the seal sequence (schemas/segment.md 13): its entries (encode,
 * decode, sign, check), reading a sequence in order, and the writer's side: opening it
 * at store_open (a torn last entry cut off), appending a step's entries durably (one
 * pwrite, one fdatasync, truncated back when either fails), and what it says about
 * each segment (its newest entry), which recovery, sealing, retention and compaction
 * consult before they act and verify.c replays.
 *
 * Thread: a struct sealseq_w belongs to the store writer's thread; the rest is any
 * thread's. Reading and appending block on file I/O. */
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
#include "common/xalloc.h"
#include "store/fsops.h"
#include "store/sealseq.h"
#include "store/store_int.h"

static const uint8_t sealseq_magic[4] = { 'V', 'G', 'S', 'Q' };
#define SEALSEQ_VERSION 1

enum { /* segment.md 13.2: offsets */
       SQ_MAGIC = 0,
       SQ_VERSION = 4,
       SQ_TYPE = 5,
       SQ_REASON = 6,
       SQ_FLAGS = 7,
       SQ_INDEX = 8,
       SQ_TIME = 16,
       SQ_PREV = 24,
       SQ_SEGMENT = 56,
       SQ_PART_START = 64,
       SQ_PART_END = 72,
       SQ_CREATED = 80,
       SQ_RECV_MAX = 88,
       SQ_COUNT = 96,
       SQ_BLOCKS = 104,
       SQ_BYTES = 112,
       SQ_BYTES_RAW = 120,
       SQ_TS_MIN = 128,
       SQ_TS_MAX = 136,
       SQ_SEQ_MIN = 144,
       SQ_SEQ_MAX = 152,
       SQ_CHAIN = 160,
       SQ_OTHER = 192,
       SQ_EXTRA = 200,
       SQ_KEY_ID = 232,
       SQ_SIG = 264,
       SQ_RESERVED = 328,
       SQ_CRC = 332,
};

/* The 64-bit fields in layout order, for encode and decode alike. */
#define SQ_U64_FIELDS(X)                                                                          \
 X(SQ_INDEX, index)                                                                               \
 X(SQ_TIME, time) X(SQ_SEGMENT, segment_id) X(SQ_PART_START, part_start) X(SQ_PART_END, part_end) \
     X(SQ_CREATED, created) X(SQ_RECV_MAX, recv_max) X(SQ_COUNT, count) X(SQ_BLOCKS, blocks)      \
         X(SQ_BYTES, bytes) X(SQ_BYTES_RAW, bytes_raw) X(SQ_TS_MIN, ts_min) X(SQ_TS_MAX, ts_max)  \
             X(SQ_SEQ_MIN, seq_min) X(SQ_SEQ_MAX, seq_max) X(SQ_OTHER, other_id)

void sealseq_encode(const struct sealseq_entry *e, uint8_t out[SEALSEQ_ENTRY_LEN])
{
    memset(out, 0, SEALSEQ_ENTRY_LEN);
    memcpy(out + SQ_MAGIC, sealseq_magic, sizeof(sealseq_magic));
    out[SQ_VERSION] = SEALSEQ_VERSION;
    out[SQ_TYPE] = e->type;
    out[SQ_REASON] = e->reason;
    out[SQ_FLAGS] = e->flags;
#define PUT(off, f) store__put_le(out + (off), (uint64_t)e->f, 8);
    SQ_U64_FIELDS(PUT)
#undef PUT
    memcpy(out + SQ_PREV, e->prev, VG_SHA256_LEN);
    memcpy(out + SQ_CHAIN, e->chain_head, VG_SHA256_LEN);
    memcpy(out + SQ_EXTRA, e->extra, VG_SHA256_LEN);
    memcpy(out + SQ_KEY_ID, e->key_id, VG_SHA256_LEN);
    memcpy(out + SQ_SIG, e->sig, SIGN_SIG_LEN);
    store__put_le(out + SQ_CRC, seg__crc32(out, SQ_CRC), 4);
}

/* Which reasons each type takes (0: none). */
static bool reason_ok(unsigned type, unsigned reason)
{
    switch (type) {
    case SEALSEQ_SEAL:
        return reason >= SEALSEQ_ENDED && reason <= SEALSEQ_COMPACTED;
    case SEALSEQ_DELETE:
        return reason >= SEALSEQ_MAX_AGE && reason <= SEALSEQ_REPLACED;
    default:
        return reason == 0;
    }
}

int sealseq_decode(const uint8_t p[SEALSEQ_ENTRY_LEN], struct sealseq_entry *e, struct errbuf *why)
{
    static const uint8_t zero[4];

    memset(e, 0, sizeof(*e));
    vg_sha256(p, SEALSEQ_ENTRY_LEN, e->hash);
    if (memcmp(p + SQ_MAGIC, sealseq_magic, sizeof(sealseq_magic)) != 0) {
        errbuf_set(why, "bad entry magic");
        return VG_ECORRUPT;
    }
    if ((uint32_t)store__get_le(p + SQ_CRC, 4) != seg__crc32(p, SQ_CRC)) {
        errbuf_set(why, "entry checksum mismatch");
        return VG_ECORRUPT;
    }
    if (p[SQ_VERSION] != SEALSEQ_VERSION) {
        errbuf_set(why, "entry version %u (this vigil reads %u)", p[SQ_VERSION], SEALSEQ_VERSION);
        return VG_ECORRUPT;
    }
    if (p[SQ_TYPE] < SEALSEQ_START || p[SQ_TYPE] > SEALSEQ_DELETE ||
        !reason_ok(p[SQ_TYPE], p[SQ_REASON]) || (p[SQ_FLAGS] & ~SEALSEQ_F_ADOPTED) != 0 ||
        memcmp(p + SQ_RESERVED, zero, sizeof(zero)) != 0) {
        errbuf_set(why, "unknown entry type %u, reason %u or flags 0x%02x", p[SQ_TYPE],
                   p[SQ_REASON], p[SQ_FLAGS]);
        return VG_ECORRUPT;
    }
    e->type = p[SQ_TYPE];
    e->reason = p[SQ_REASON];
    e->flags = p[SQ_FLAGS];
#define GET(off, f) e->f = (__typeof__(e->f))store__get_le(p + (off), 8);
    SQ_U64_FIELDS(GET)
#undef GET
    memcpy(e->prev, p + SQ_PREV, VG_SHA256_LEN);
    memcpy(e->chain_head, p + SQ_CHAIN, VG_SHA256_LEN);
    memcpy(e->extra, p + SQ_EXTRA, VG_SHA256_LEN);
    memcpy(e->key_id, p + SQ_KEY_ID, VG_SHA256_LEN);
    memcpy(e->sig, p + SQ_SIG, SIGN_SIG_LEN);
    return 0;
}

bool sealseq_is_signed(const struct sealseq_entry *e)
{
    static const uint8_t zero[VG_SHA256_LEN];
    return memcmp(e->key_id, zero, sizeof(zero)) != 0;
}

/* The key's id as raw bytes (sign_key_id gives it in hex). */
static void key_id_raw(const struct sign_key *k, uint8_t out[VG_SHA256_LEN])
{
    char hex[SIGN_KEY_ID_LEN + 1];

    sign_key_id(k, hex);
    if (sign_unhex(hex, out, VG_SHA256_LEN) < 0) {
        memset(out, 0, VG_SHA256_LEN); /* cannot happen: sign_key_id writes hex */
    }
}

int sealseq_sign(struct sealseq_entry *e, const struct sign_key *k)
{
    uint8_t raw[SEALSEQ_ENTRY_LEN];

    key_id_raw(k, e->key_id);
    memset(e->sig, 0, sizeof(e->sig));
    sealseq_encode(e, raw);
    return sign_message(k, raw, SEALSEQ_SIGNED_LEN, e->sig);
}

int sealseq_check(const struct sealseq_entry *e, const struct sign_key *k)
{
    uint8_t raw[SEALSEQ_ENTRY_LEN];
    uint8_t id[VG_SHA256_LEN];

    key_id_raw(k, id);
    if (!sealseq_is_signed(e) || memcmp(id, e->key_id, sizeof(id)) != 0) {
        return -ENOKEY;
    }
    sealseq_encode(e, raw);
    return sign_check(k, raw, SEALSEQ_SIGNED_LEN, e->sig);
}

void sealseq_iter_init(struct sealseq_iter *it)
{
    memset(it, 0, sizeof(*it));
}

int sealseq_iter_next(struct sealseq_iter *it, const uint8_t raw[SEALSEQ_ENTRY_LEN],
                      struct sealseq_entry *e, struct errbuf *why)
{
    int rc = sealseq_decode(raw, e, why);
    uint64_t index = it->index;

    if (rc == 0 && e->index != index) {
        errbuf_set(why,
                   "entry at position %" PRIu64 " says it is entry %" PRIu64
                   " (entries were removed, inserted or moved)",
                   index, e->index);
        rc = VG_ECORRUPT;
    } else if (rc == 0 && memcmp(e->prev, it->prev, VG_SHA256_LEN) != 0) {
        errbuf_set(why, "prev hash mismatch: the entry before it was changed, removed or "
                        "inserted");
        rc = VG_ECORRUPT;
    }
    it->index++;
    memcpy(it->prev, e->hash, VG_SHA256_LEN);
    return rc;
}

int sealseq_read_file(const char *path, sealseq_fn fn, void *arg, uint64_t *tail)
{
    enum { CHUNK = 256 }; /* entries per read */
    uint8_t *buf = xmalloc((size_t)CHUNK * SEALSEQ_ENTRY_LEN);
    struct sealseq_iter it;
    struct errbuf why;
    uint64_t off = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (tail) {
        *tail = 0;
    }
    if (fd < 0) {
        free(buf);
        return -errno;
    }
    sealseq_iter_init(&it);
    for (;;) {
        ssize_t got = pread(fd, buf, (size_t)CHUNK * SEALSEQ_ENTRY_LEN, (off_t)off);
        if (got < 0) {
            rc = errno == EINTR ? 0 : -errno;
            if (rc < 0) {
                break;
            }
            continue;
        }
        size_t whole = (size_t)got / SEALSEQ_ENTRY_LEN;
        for (size_t i = 0; i < whole && rc == 0; i++) {
            struct sealseq_entry e;
            errbuf_clear(&why);
            int bad = sealseq_iter_next(&it, buf + i * SEALSEQ_ENTRY_LEN, &e, &why);
            rc = fn(arg, &e, bad < 0 ? errbuf_msg(&why) : NULL);
        }
        off += (uint64_t)whole * SEALSEQ_ENTRY_LEN;
        if (rc != 0 || whole < CHUNK) {
            if (rc == 0 && tail) {
                *tail = (uint64_t)got % SEALSEQ_ENTRY_LEN;
            }
            break;
        }
    }
    close(fd);
    free(buf);
    return rc;
}

const char *sealseq_type_name(unsigned type)
{
    static const char *const names[] = {
        "?", "START", "KEY", "OPEN", "CHECKPOINT", "SEAL", "DELETE"
    };
    return type < VG_ARRAY_LEN(names) ? names[type] : "?";
}

const char *sealseq_reason_name(unsigned type, unsigned reason)
{
    static const char *const seal[] = { "", "ended", "untrusted", "compacted" };
    static const char *const del[] = { "", "max_age", "max_size", "compacted" };

    if (type == SEALSEQ_SEAL && reason < VG_ARRAY_LEN(seal)) {
        return seal[reason];
    }
    if (type == SEALSEQ_DELETE && reason < VG_ARRAY_LEN(del)) {
        return del[reason];
    }
    return "";
}

/* ---- entries and catalog rows ---- */

void sealseq__from_meta(struct sealseq_entry *e, unsigned type, unsigned reason,
                        const struct seg_meta *m)
{
    bool any = m->tot.count > 0;

    memset(e, 0, sizeof(*e));
    e->type = (uint8_t)type;
    e->reason = (uint8_t)reason;
    e->segment_id = m->id;
    e->part_start = m->part_start;
    e->part_end = m->part_end;
    e->created = m->created;
    e->recv_max = m->recv_max;
    e->count = m->tot.count;
    e->blocks = m->tot.blocks;
    e->bytes = m->bytes;
    e->bytes_raw = m->tot.bytes_raw;
    e->ts_min = any ? m->tot.ts_min : 0;
    e->ts_max = any ? m->tot.ts_max : 0;
    e->seq_min = any ? m->tot.seq_min : 0;
    e->seq_max = any ? m->tot.seq_max : 0;
    memcpy(e->chain_head, m->chain_head, VG_SHA256_LEN);
    e->time = type == SEALSEQ_SEAL ? m->sealed : 0;
}

void sealseq__to_meta(const struct sealseq_entry *e, struct seg_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->id = e->segment_id;
    seg__name(e->part_start, e->segment_id, m->file);
    m->part_start = e->part_start;
    m->part_end = e->part_end;
    m->state = e->type == SEALSEQ_SEAL || e->type == SEALSEQ_DELETE ? SEG_SEALED : SEG_OPEN;
    m->tot.count = e->count;
    m->tot.blocks = e->blocks;
    m->tot.bytes_raw = e->bytes_raw;
    m->tot.ts_min = e->ts_min;
    m->tot.ts_max = e->ts_max;
    m->tot.seq_min = e->seq_min;
    m->tot.seq_max = e->seq_max;
    m->bytes = e->bytes;
    memcpy(m->chain_head, e->chain_head, VG_SHA256_LEN);
    m->created = e->created;
    m->sealed = e->type == SEALSEQ_SEAL ? e->time : 0;
    m->recv_max = e->recv_max;
}

bool sealseq__same_row(const struct sealseq_entry *e, const struct seg_meta *m)
{
    struct sealseq_entry x;

    sealseq__from_meta(&x, e->type, e->reason, m);
    return x.part_start == e->part_start && x.part_end == e->part_end && x.count == e->count &&
           x.blocks == e->blocks && x.bytes == e->bytes && x.bytes_raw == e->bytes_raw &&
           x.ts_min == e->ts_min && x.ts_max == e->ts_max && x.seq_min == e->seq_min &&
           x.seq_max == e->seq_max && memcmp(x.chain_head, e->chain_head, VG_SHA256_LEN) == 0;
}

/* ---- what the sequence says about each segment ---- */

static size_t map_find(const struct sealseq_map *mp, uint64_t id, bool *found)
{
    size_t lo = 0;
    size_t hi = mp->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mp->v[mid].id == id) {
            *found = true;
            return mid;
        }
        if (mp->v[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

const struct sealseq_seg *sealseq__map_get(const struct sealseq_map *mp, uint64_t id)
{
    bool found;
    size_t i = map_find(mp, id, &found);
    return found ? &mp->v[i] : NULL;
}

/* The order of segment.md 13.3 for one segment: OPEN, CHECKPOINTs, SEAL, DELETE. */
static const char *order_error(const struct sealseq_seg *s, const struct sealseq_entry *e)
{
    unsigned last = s ? s->last.type : 0;

    switch (e->type) {
    case SEALSEQ_OPEN:
        return last ? "a second OPEN" : NULL;
    case SEALSEQ_CHECKPOINT:
        return last == SEALSEQ_OPEN || last == SEALSEQ_CHECKPOINT ? NULL
                                                                  : "a CHECKPOINT of a segment "
                                                                    "not open";
    case SEALSEQ_SEAL:
        if (!last) {
            return e->reason == SEALSEQ_COMPACTED || (e->flags & SEALSEQ_F_ADOPTED)
                       ? NULL
                       : "a SEAL of a segment never opened";
        }
        return last == SEALSEQ_OPEN || last == SEALSEQ_CHECKPOINT ? NULL : "a second SEAL";
    case SEALSEQ_DELETE:
        if (!last) {
            return e->flags & SEALSEQ_F_ADOPTED ? NULL : "a DELETE of a segment never sealed";
        }
        return last == SEALSEQ_SEAL ? NULL : "a DELETE of a segment not sealed";
    default:
        return NULL;
    }
}

const char *sealseq__map_apply(struct sealseq_map *mp, const struct sealseq_entry *e)
{
    bool found;
    size_t i;
    const char *bad;

    if (e->type < SEALSEQ_OPEN) {
        return NULL; /* START, KEY: no segment */
    }
    i = map_find(mp, e->segment_id, &found);
    bad = order_error(found ? &mp->v[i] : NULL, e);
    if (!found) {
        if (mp->n == mp->cap) {
            mp->cap = mp->cap ? 2 * mp->cap : 64;
            mp->v = xrealloc(mp->v, mp->cap * sizeof(*mp->v));
        }
        memmove(&mp->v[i + 1], &mp->v[i], (mp->n - i) * sizeof(*mp->v));
        mp->n++;
        memset(&mp->v[i], 0, sizeof(mp->v[i]));
        mp->v[i].id = e->segment_id;
    }
    struct sealseq_seg *s = &mp->v[i];
    if (e->type == SEALSEQ_OPEN || e->type == SEALSEQ_CHECKPOINT) {
        s->opened_at = s->opened_at ? s->opened_at : e->index + 1;
    }
    s->last = *e;
    return bad;
}

void sealseq__map_release(struct sealseq_map *mp)
{
    free(mp->v);
    memset(mp, 0, sizeof(*mp));
}

/* ---- the writer's sequence (segment.md 13.4) ---- */

struct open_ctx {
    struct sealseq_w *q;
    uint64_t end;   /* past the last whole entry */
    bool last_torn; /* the last whole entry fails its checks alone (sealseq_decode) */
    unsigned bad;
    uint64_t first_bad; /* position of the first bad entry */
    char first_why[256];
};

static int on_open_entry(void *arg, const struct sealseq_entry *e, const char *bad)
{
    struct open_ctx *c = arg;
    struct sealseq_w *q = c->q;

    c->end += SEALSEQ_ENTRY_LEN;
    /* sealseq_decode sets the type only when the entry checks out alone. */
    c->last_torn = bad && e->type == 0;
    if (bad) {
        if (c->bad++ == 0) {
            c->first_bad = c->end / SEALSEQ_ENTRY_LEN - 1;
            snprintf(c->first_why, sizeof(c->first_why), "%s", bad);
        }
        return 0;
    }
    if (e->type == SEALSEQ_START || e->type == SEALSEQ_KEY) {
        memcpy(q->key_pub, e->extra, sizeof(q->key_pub));
    }
    const char *order = sealseq__map_apply(&q->map, e);
    if (order) {
        log_error("seal sequence '%s': entry %" PRIu64 " (%s of segment %" PRIu64 "): %s", q->path,
                  e->index, sealseq_type_name(e->type), e->segment_id, order);
    }
    return 0;
}

int sealseq__open(const struct fsops *fs, const char *dir, struct sealseq_w **out,
                  struct errbuf *eb)
{
    struct sealseq_w *q = xcalloc(1, sizeof(*q));
    struct open_ctx c;
    uint64_t tail = 0;
    int rc;

    q->fs = fs;
    q->fd = -1;
    if (seg__path(q->path, sizeof(q->path), dir, SEALSEQ_FILE) < 0) {
        errbuf_set(eb, "store '%s': path too long", dir);
        free(q);
        return -ENAMETOOLONG;
    }
    memset(&c, 0, sizeof(c));
    c.q = q;
    rc = sealseq_read_file(q->path, on_open_entry, &c, &tail);
    if (rc == -ENOENT) {
        /* segment.md 13.5: a new store, or one written before seal sequences. */
        q->created = true;
        rc = fs->open(fs->ctx, q->path, O_RDWR | O_CREAT | O_EXCL, 0640);
        if (rc >= 0) {
            q->fd = rc;
            rc = fs->fsync_dir(fs->ctx, dir);
        }
        if (rc < 0) {
            errbuf_set(eb, "cannot create the seal sequence '%s': %s", q->path, vg_strerror(rc));
            sealseq__free(q);
            return rc;
        }
        *out = q;
        return 0;
    }
    if (rc < 0) {
        errbuf_set(eb, "cannot read the seal sequence '%s': %s", q->path, vg_strerror(rc));
        sealseq__free(q);
        return rc;
    }
    rc = fs->open(fs->ctx, q->path, O_RDWR, 0);
    if (rc < 0) {
        errbuf_set(eb, "cannot open the seal sequence '%s': %s", q->path, vg_strerror(rc));
        sealseq__free(q);
        return rc;
    }
    q->fd = rc;
    /* A torn append: an incomplete entry, or a last whole one that fails its checks
     * alone (its bytes did not all reach the disk). Cut; any other bad entry is kept
     * for verify to report. */
    uint64_t keep = c.end;
    if (c.last_torn) {
        keep -= SEALSEQ_ENTRY_LEN;
        c.bad--;
    }
    if (keep < c.end + tail) {
        log_warn("seal sequence '%s': cutting a torn last entry (%" PRIu64
                 " bytes at offset %" PRIu64 ")",
                 q->path, c.end + tail - keep, keep);
        rc = fs->ftruncate(fs->ctx, q->fd, (int64_t)keep);
        if (rc == 0) {
            rc = fs->fdatasync(fs->ctx, q->fd);
        }
        if (rc < 0) {
            errbuf_set(eb, "cannot cut the torn end of the seal sequence '%s': %s", q->path,
                       vg_strerror(rc));
            sealseq__free(q);
            return rc;
        }
    }
    if (c.bad > 0) {
        log_error("seal sequence '%s': %u entries fail their checks, the first at entry %" PRIu64
                  ": %s (kept; vigil verify reports them)",
                  q->path, c.bad, c.first_bad, c.first_why);
    }
    q->n = keep / SEALSEQ_ENTRY_LEN;
    if (q->n > 0) {
        /* Appends chain from the last entry kept, as stored (a bad one included). */
        uint8_t raw[SEALSEQ_ENTRY_LEN];
        if (pread(q->fd, raw, sizeof(raw), (off_t)(keep - SEALSEQ_ENTRY_LEN)) !=
            (ssize_t)sizeof(raw)) {
            rc = -EIO;
            errbuf_set(eb, "cannot read the seal sequence '%s'", q->path);
            sealseq__free(q);
            return rc;
        }
        vg_sha256(raw, sizeof(raw), q->head);
    }
    q->bad = c.bad;
    /* Created, but a failed start never wrote its START (or a torn one was cut). */
    q->created = q->n == 0;
    *out = q;
    return 0;
}

int sealseq__append(struct sealseq_w *q, struct sealseq_entry *v, size_t n,
                    const struct sign_key *key)
{
    uint8_t *buf;
    uint8_t head[VG_SHA256_LEN];
    int rc = 0;

    if (n == 0) {
        return 0;
    }
    buf = xmalloc(n * SEALSEQ_ENTRY_LEN);
    memcpy(head, q->head, sizeof(head));
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct sealseq_entry *e = &v[i];
        e->index = q->n + i;
        memcpy(e->prev, head, sizeof(head));
        memset(e->key_id, 0, sizeof(e->key_id));
        memset(e->sig, 0, sizeof(e->sig));
        if (key) {
            rc = sealseq_sign(e, key);
        }
        sealseq_encode(e, buf + i * SEALSEQ_ENTRY_LEN);
        vg_sha256(buf + i * SEALSEQ_ENTRY_LEN, SEALSEQ_ENTRY_LEN, e->hash);
        memcpy(head, e->hash, sizeof(head));
    }
    int64_t off = (int64_t)(q->n * SEALSEQ_ENTRY_LEN);
    if (rc == 0) {
        rc = fsops_pwrite_all(q->fs, q->fd, buf, n * SEALSEQ_ENTRY_LEN, off);
    }
    if (rc == 0) {
        rc = q->fs->fdatasync(q->fs->ctx, q->fd);
    }
    free(buf);
    if (rc < 0) {
        /* Nothing of this step may stay: the catalog will not follow it. */
        int trc = q->fs->ftruncate(q->fs->ctx, q->fd, off);
        log_error("seal sequence '%s': cannot append %zu entries: %s%s", q->path, n,
                  vg_strerror(rc), trc < 0 ? "; cutting them off failed too" : "");
        return rc;
    }
    q->n += n;
    memcpy(q->head, head, sizeof(head));
    for (size_t i = 0; i < n; i++) {
        if (v[i].type == SEALSEQ_START || v[i].type == SEALSEQ_KEY) {
            memcpy(q->key_pub, v[i].extra, sizeof(q->key_pub));
        }
        (void)sealseq__map_apply(&q->map, &v[i]);
    }
    return 0;
}

const struct sealseq_entry *sealseq__last(const struct sealseq_w *q, uint64_t id)
{
    const struct sealseq_seg *s = sealseq__map_get(&q->map, id);
    return s ? &s->last : NULL;
}

void sealseq__free(struct sealseq_w *q)
{
    if (!q) {
        return;
    }
    if (q->fd >= 0) {
        q->fs->close(q->fs->ctx, q->fd);
    }
    sealseq__map_release(&q->map);
    free(q);
}
