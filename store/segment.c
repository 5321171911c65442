/* store/segment.c: segment files (schemas/segment.md 1, 2, 4): the file header, file
 * names, partitions, and seg__walk, the one reader of segment bytes that recovery,
 * store_scan, store_verify, compaction and the fuzz targets share, each in its mode.
 *
 * Reads with plain pread(2): the file may be hostile or torn, and an open segment may
 * grow (or shrink, when the writer rolls back) while a reader walks it; every length
 * is checked against the bytes present before it is used. Any thread; a seg_walk
 * belongs to one thread. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "common/time.h"
#include "common/xalloc.h"
#include "store/store_int.h"

static const uint8_t seg_magic[8] = { 'V', 'I', 'G', 'I', 'L', 'S', 'E', 'G' };

/* segment.md 2: field offsets of the file header. */
enum {
    SH_MAGIC = 0,
    SH_VERSION = 8,
    SH_HDR_LEN = 10,
    SH_FLAGS = 12,
    SH_PART_START = 16,
    SH_PART_NS = 24,
    SH_ID = 32,
    SH_CREATED = 40,
    SH_REPLACES_ID = 48, /* segment.md 12: compacted segments */
    SH_REPLACES_HEAD = 56,
    SH_RECORDS_DIGEST = 88,
    SH_CRC = 124,
};

uint32_t seg__crc32(const void *p, size_t n)
{
    return (uint32_t)crc32_z(0L, p, n);
}

void seg__hdr_encode(const struct seg_hdr *h, uint8_t *p)
{
    memset(p, 0, SEG_HDR_LEN);
    memcpy(p + SH_MAGIC, seg_magic, sizeof(seg_magic));
    store__put_le(p + SH_VERSION, h->version, 2);
    store__put_le(p + SH_HDR_LEN, SEG_HDR_LEN, 2);
    store__put_le(p + SH_FLAGS, h->flags, 4);
    store__put_le(p + SH_PART_START, (uint64_t)h->part_start, 8);
    store__put_le(p + SH_PART_NS, (uint64_t)h->part_ns, 8);
    store__put_le(p + SH_ID, h->id, 8);
    store__put_le(p + SH_CREATED, (uint64_t)h->created, 8);
    if (h->flags & SEG_F_COMPACTED) {
        store__put_le(p + SH_REPLACES_ID, h->replaces_id, 8);
        memcpy(p + SH_REPLACES_HEAD, h->replaces_head, VG_SHA256_LEN);
        memcpy(p + SH_RECORDS_DIGEST, h->records_digest, VG_SHA256_LEN);
    }
    store__put_le(p + SH_CRC, (uint32_t)crc32(0L, p, SH_CRC), 4);
}

int seg__hdr_decode(const uint8_t *p, struct seg_hdr *h, struct errbuf *why)
{
    int64_t end;

    /* segment.md 2, 2.1 */
    if (memcmp(p + SH_MAGIC, seg_magic, sizeof(seg_magic)) != 0) {
        errbuf_set(why, "file header: not a segment file (bad magic)");
        return VG_ECORRUPT;
    }
    if ((uint32_t)store__get_le(p + SH_CRC, 4) != (uint32_t)crc32(0L, p, SH_CRC)) {
        errbuf_set(why, "file header: checksum mismatch");
        return VG_ECORRUPT;
    }
    h->version = (uint16_t)store__get_le(p + SH_VERSION, 2);
    if (h->version != SEG_VERSION || store__get_le(p + SH_HDR_LEN, 2) != SEG_HDR_LEN) {
        errbuf_set(why, "file header: unsupported version %u", h->version);
        return VG_ECORRUPT;
    }
    h->flags = (uint32_t)store__get_le(p + SH_FLAGS, 4);
    h->part_start = (int64_t)store__get_le(p + SH_PART_START, 8);
    h->part_ns = (int64_t)store__get_le(p + SH_PART_NS, 8);
    h->id = store__get_le(p + SH_ID, 8);
    h->created = (int64_t)store__get_le(p + SH_CREATED, 8);
    h->replaces_id = store__get_le(p + SH_REPLACES_ID, 8);
    memcpy(h->replaces_head, p + SH_REPLACES_HEAD, VG_SHA256_LEN);
    memcpy(h->records_digest, p + SH_RECORDS_DIGEST, VG_SHA256_LEN);
    if ((h->flags & SEG_F_COMPACTED) && h->replaces_id == 0) {
        errbuf_set(why, "file header: compacted, but replaces no segment");
        return VG_ECORRUPT;
    }
    if (h->part_ns <= 0 || __builtin_add_overflow(h->part_start, h->part_ns, &end) || h->id == 0) {
        errbuf_set(why, "file header: bad partition or id");
        return VG_ECORRUPT;
    }
    return 0;
}

void seg__name(int64_t part_start, uint64_t id, char *out)
{
    char t[40];
    char c[24];
    size_t j = 0;

    /* segment.md 1.3: RFC 3339 without '-' and ':' ("20240501T130000Z"). */
    vg_time_format(part_start, 0, t, sizeof(t));
    for (size_t i = 0; t[i] && j < sizeof(c) - 1; i++) {
        if (t[i] != '-' && t[i] != ':') {
            c[j++] = t[i];
        }
    }
    c[j] = 0;
    snprintf(out, SEG_NAME_MAX, "%s-%06" PRIu64 ".vseg", c, id);
}

bool seg__name_parse(const char *name, uint64_t *id)
{
    struct span s = span_str(name);
    struct span suffix = SPAN_LIT(".vseg");
    const uint8_t *dash;

    /* "YYYYMMDDTHHMMSSZ-<digits>.vseg" */
    if (s.n < 16 + 1 + 1 + suffix.n ||
        !span_eq((struct span){ s.p + s.n - suffix.n, suffix.n }, suffix)) {
        return false;
    }
    s.n -= suffix.n;
    dash = memchr(s.p, '-', s.n);
    if (dash == NULL || dash - s.p != 16 || s.p[8] != 'T' || s.p[15] != 'Z') {
        return false;
    }
    struct span digits = { dash + 1, (size_t)(s.p + s.n - dash - 1) };
    return parse_u64(digits, UINT64_MAX, id) == 0 && *id > 0;
}

int seg__path(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int seg__open_ro(const char *segdir, const char *file, int *fd, uint64_t *size)
{
    char path[PATH_MAX];
    struct stat sb;

    *fd = -1;
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

int seg__partition(int64_t ts, int64_t part_ns, int64_t *start, int64_t *end)
{
    /* segment.md 1.1: floor division, so -1 ns is in the partition before 0. */
    int64_t q = ts / part_ns;
    if (ts % part_ns < 0) {
        q--;
    }
    if (__builtin_mul_overflow(q, part_ns, start) || __builtin_add_overflow(*start, part_ns, end)) {
        return -EINVAL;
    }
    return 0;
}

void seg__totals_add(struct seg_totals *t, const struct block_hdr *h)
{
    if (t->count == 0 || h->ts_min < t->ts_min) {
        t->ts_min = h->ts_min;
    }
    if (t->count == 0 || h->ts_max > t->ts_max) {
        t->ts_max = h->ts_max;
    }
    if (t->count == 0 || h->seq_min < t->seq_min) {
        t->seq_min = h->seq_min;
    }
    if (t->count == 0 || h->seq_max > t->seq_max) {
        t->seq_max = h->seq_max;
    }
    t->count += h->count;
    t->blocks++;
    t->bytes_raw += h->raw_len;
}

bool seg__totals_eq(const struct seg_totals *a, const struct seg_totals *b)
{
    if (a->count != b->count || a->blocks != b->blocks || a->bytes_raw != b->bytes_raw) {
        return false;
    }
    return a->count == 0 || (a->ts_min == b->ts_min && a->ts_max == b->ts_max &&
                             a->seq_min == b->seq_min && a->seq_max == b->seq_max);
}

size_t seg__rbuf_max(void)
{
    return block__max_len();
}

/* Reads exactly n bytes at off. Returns 0, 1 when the file ended first (it may be
 * shrinking under us), or -errno. */
static int read_at(int fd, void *p, size_t n, uint64_t off)
{
    uint8_t *b = p;

    while (n > 0) {
        ssize_t r = pread(fd, b, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (r == 0) {
            return 1;
        }
        b += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int walk_bad(struct seg_walk *w, uint64_t off, bool incomplete)
{
    w->bad_off = off;
    w->bad_incomplete = incomplete;
    return VG_ECORRUPT;
}

static void walk_mark(struct seg_walk *w)
{
    if (w->mark_off != 0 && w->end == w->mark_off) {
        w->mark_hit = true;
        memcpy(w->mark_chain, w->chain, VG_SHA256_LEN);
        w->mark_tot = w->tot;
    }
    if (w->mark2_off != 0 && w->end == w->mark2_off) {
        w->mark2_hit = true;
        memcpy(w->mark2_chain, w->chain, VG_SHA256_LEN);
    }
}

size_t seg__ubuf_max(void)
{
    /* A packed record unpacks to at most twice its bytes plus a little (segment.md
     * 3.4.2), and a stream holds its records' bytes. */
    return 2 * (size_t)BLOCK_MAX_RAW + 64 * (size_t)(BLOCK_MAX_RAW / 4);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One record of a block, unpacked into the walk's ubuf. */
struct walk_rec {
    int64_t ts;
    uint64_t seq;
    size_t off;
    size_t len;
};

/* segment.md 3.4: the record stream of one checked block; records go to fn only after
 * the whole stream checked out, so a bad block returns nothing. */
/* A projected read of a v3 block (segment.md 3.8): what was loaded, what is wanted. */
struct v3_sel {
    uint64_t loaded;
    const uint8_t *chunks;
    uint32_t fields;
    const uint8_t *rows;
};

static int walk_records(struct seg_walk *w, const struct block_hdr *h, uint64_t off,
                        struct buf *ubuf, struct buf *recs, const struct v3_sel *sel)
{
    struct span raw = buf_span(w->dbuf);
    struct block_iter it;
    int64_t ts;
    uint64_t seq;
    struct span rec;
    int rc;
    uint64_t t0 = w->stats ? now_ns() : 0;

    ubuf->len = 0;
    recs->len = 0;
    block__iter_init(&it, h, raw, ubuf);
    if (w->mode == SEG_WALK_SCAN) {
        /* Only what fn may want is unpacked; the other modes check every record. */
        it.windowed = true;
        it.since = w->scan.since;
        it.until = w->scan.until;
        it.pre = w->scan.need && w->scan.need->nrec > 0 ? w->scan.need : NULL;
    }
    if (sel) {
        it.v3_loaded = sel->loaded;
        it.v3_chunks = sel->chunks;
        it.v3_fields = sel->fields;
        it.v3_rows = sel->rows;
        if (sel->fields) {
            it.pre = NULL; /* the texts may lie in fields not put back */
        }
    }
    while ((rc = block__iter_next(&it, &ts, &seq, &rec, &w->why)) > 0) {
        if (w->fn == NULL) {
            if (h->version >= BLOCK_VERSION_2) {
                ubuf->len = (size_t)(rec.p - ubuf->data); /* checked; not wanted */
            }
            continue;
        }
        struct walk_rec wr = { ts, seq, 0, rec.n };
        if (h->version >= BLOCK_VERSION_2) {
            wr.off = (size_t)(rec.p - ubuf->data);
        } else {
            wr.off = (size_t)(rec.p - raw.p);
        }
        if (buf_append(recs, &wr, sizeof(wr)) < 0) {
            errbuf_set(&w->why, "block of %" PRIu32 " records over the reader's limit", h->count);
            return walk_bad(w, off, false);
        }
    }
    if (rc < 0) {
        return walk_bad(w, off, false);
    }
    if (w->stats) {
        uint64_t t1 = now_ns();
        w->stats->ns_unpack += t1 - t0;
        w->stats->records_decoded += h->count - it.skipped;
        w->stats->records_skipped += it.skipped;
        t0 = t1;
    }
    const struct walk_rec *wr = (const struct walk_rec *)(const void *)recs->data;
    size_t n = recs->len / sizeof(*wr);
    const uint8_t *base = h->version >= BLOCK_VERSION_2 ? ubuf->data : raw.p;
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (w->stats) {
            w->stats->records++;
        }
        rc = w->fn(w->arg, wr[i].ts, wr[i].seq, (struct span){ base + wr[i].off, wr[i].len });
        if (rc != 0) {
            w->stopped = true;
            break;
        }
    }
    if (w->stats) {
        w->stats->ns_deliver += now_ns() - t0;
    }
    if (rc == 0 && w->mode == SEG_WALK_COPY && w->block_done) {
        rc = w->block_done(w->arg, h);
        w->stopped = rc != 0;
    }
    return rc;
}

static int cmp_walk_rec(const void *a, const void *b)
{
    uint64_t x = ((const struct walk_rec *)a)->seq;
    uint64_t y = ((const struct walk_rec *)b)->seq;
    return x < y ? -1 : x > y;
}

/* segment.md 12: adds one block's records to the records digest of a compacted segment,
 * in seq order (blocks hold increasing, disjoint seq ranges, checked by the caller). */
static int walk_digest(struct seg_walk *w, const struct block_hdr *h, uint64_t off,
                       struct digest *rdg, struct buf *ubuf, struct buf *recs)
{
    struct block_iter it;
    int64_t ts;
    uint64_t seq;
    struct span rec;
    int rc;

    ubuf->len = 0;
    recs->len = 0;
    block__iter_init(&it, h, buf_span(w->dbuf), ubuf);
    while ((rc = block__iter_next(&it, &ts, &seq, &rec, &w->why)) > 0) {
        const uint8_t *base = h->version >= BLOCK_VERSION_2 ? ubuf->data : w->dbuf->data;
        struct walk_rec wr = { ts, seq, (size_t)(rec.p - base), rec.n };
        if (buf_append(recs, &wr, sizeof(wr)) < 0) {
            errbuf_set(&w->why, "block of %" PRIu32 " records over the reader's limit", h->count);
            return walk_bad(w, off, false);
        }
    }
    if (rc < 0) {
        return walk_bad(w, off, false);
    }
    struct walk_rec *wr = (struct walk_rec *)(void *)recs->data;
    size_t n = recs->len / sizeof(*wr);
    const uint8_t *base = h->version >= BLOCK_VERSION_2 ? ubuf->data : w->dbuf->data;
    if (n > 1) {
        qsort(wr, n, sizeof(*wr), cmp_walk_rec);
    }
    for (size_t i = 0; i < n; i++) {
        seg__digest_add(rdg, wr[i].ts, wr[i].seq, (struct span){ base + wr[i].off, wr[i].len });
    }
    return 0;
}

void seg__digest_add(struct digest *d, int64_t ts, uint64_t seq, struct span rec)
{
    uint8_t e[20];

    /* segment.md 12: seq, ts, length (little-endian 8, 8, 4 bytes), then the record. */
    store__put_le(e, seq, 8);
    store__put_le(e + 8, (uint64_t)ts, 8);
    store__put_le(e + 16, rec.n, 4);
    digest_update(d, e, sizeof(e));
    digest_update(d, rec.p, rec.n);
}

/* Appends the n bytes at off to b, counting the time and bytes. */
static int walk_read(struct seg_walk *w, struct buf *b, size_t n, uint64_t off)
{
    uint64_t t0 = w->stats ? now_ns() : 0;

    if (buf_reserve(b, n) < 0) {
        errbuf_set(&w->why, "block of %zu bytes over the reader's limit", n);
        return walk_bad(w, off, false);
    }
    int rc = read_at(w->fd, b->data + b->len, n, off);
    if (rc != 0) {
        errbuf_set(&w->why, "file shrank while reading");
        return rc < 0 ? rc : walk_bad(w, off, true);
    }
    b->len += n;
    if (w->stats) {
        w->stats->ns_io += now_ns() - t0;
        w->stats->bytes_read += n;
    }
    return 0;
}

/* Loads the directory entries of ents whose column is in mask (raw chunks: those set in
 * chunks, or all when NULL) from the data section at doff into dec (the decoded layout):
 * adjacent ones in one pread, each checked by its own checksum. */
static int v3_load(struct seg_walk *w, const struct block3_dirent *ents, uint32_t n,
                   const uint64_t *st, const uint64_t *de, uint64_t mask, const uint8_t *chunks,
                   uint64_t doff, uint8_t *stored, uint8_t *dec, uint64_t off)
{
    uint32_t ci = 0;
    bool *sel = xcalloc(n ? n : 1, sizeof(*sel));
    int rc = 0;

    for (uint32_t i = 0; i < n; i++) {
        sel[i] = (mask >> ents[i].id) & 1;
        if (ents[i].id == B3_RAW) {
            sel[i] = sel[i] && (!chunks || ((chunks[ci / 8] >> (ci % 8)) & 1));
            ci++;
        }
    }
    for (uint32_t i = 0; i < n && rc == 0;) {
        if (!sel[i]) {
            i++;
            continue;
        }
        uint32_t j = i;
        while (j < n && sel[j]) {
            j++;
        }
        uint64_t a = st[i];
        uint64_t b = st[j - 1] + ents[j - 1].stored_len;
        uint64_t t0 = w->stats ? now_ns() : 0;
        rc = read_at(w->fd, stored + a, (size_t)(b - a), doff + a);
        if (rc != 0) {
            errbuf_set(&w->why, "file shrank while reading");
            rc = rc < 0 ? rc : walk_bad(w, off, true);
            break;
        }
        uint64_t t1 = w->stats ? now_ns() : 0;
        if (w->stats) {
            w->stats->ns_io += t1 - t0;
            w->stats->bytes_read += b - a;
        }
        for (uint32_t k = i; k < j && rc == 0; k++) {
            if (w->unchecked) {
                struct block3_dirent e = ents[k];
                e.crc = (uint32_t)crc32_z(0L, stored + st[k], e.stored_len);
                rc = block3__col_load(&e, stored + st[k], dec + de[k], &w->why);
            } else {
                rc = block3__col_load(&ents[k], stored + st[k], dec + de[k], &w->why);
            }
            if (rc < 0) {
                rc = walk_bad(w, off, false);
            } else if (w->stats) {
                w->stats->bytes_decompressed += ents[k].raw_len;
            }
        }
        if (w->stats) {
            w->stats->ns_decompress += now_ns() - t1;
        }
        i = j;
    }
    free(sel);
    return rc;
}

/* Whether a scan reads parts of v3 blocks (walk_v3_scan): it reads some fields only, or
 * needs values of identity fields whose postings (segment.md 3.8.3) narrow the rows.
 * Otherwise it reads whole blocks, checked by the block's checksum. */
static bool v3_projected(const struct bix_query *q)
{
    if (!q) {
        return false;
    }
    if (q->fields) {
        return true;
    }
    for (size_t i = 0; i < q->nvals; i++) {
        if (q->vals[i].id != BIX_SRC_IP) {
            return true;
        }
    }
    return false;
}

/* segment.md 3.8, 4.1: a v3 block in a scan. Reads the column directory, then only the
 * columns the scan needs: those of the fields it reads (every one for whole records);
 * with values of identity fields it needs, first those columns, to find the rows that
 * can hold them (the postings, 3.8.3), then only the raw chunks of those rows. Each
 * column read is checked by its own checksum (the header checks itself, 3.1). */
static int walk_v3_scan(struct seg_walk *w, const struct block_hdr *h, uint64_t off,
                        struct buf *ubuf, struct buf *recs, bool *none)
{
    const struct bix_query *q = w->scan.need;
    uint32_t fields = q ? q->fields : 0;
    uint32_t keys = fields ? fields : UINT32_MAX;
    size_t base; /* past the index */
    uint64_t doff = off + BLOCK_HDR_LEN + h->index_len;
    struct block3_dirent *ents = NULL;
    uint64_t *st = NULL;
    uint64_t *de = NULL;
    uint8_t *rows = NULL;
    uint8_t *chunks = NULL;
    uint32_t n = 0;
    int rc;

    *none = false;
    if (w->rbuf->len == 0 && h->index_len > 0) {
        /* The index too (small), so that a scan of parts still checks every section it
         * can trust the rest by: header, index, directory, columns read. */
        if ((rc = walk_read(w, w->rbuf, h->index_len, off + BLOCK_HDR_LEN)) != 0) {
            return rc;
        }
        if (!w->unchecked && block__index_check(h, buf_span(w->rbuf), &w->why) < 0) {
            return walk_bad(w, off, false);
        }
    }
    base = w->rbuf->len;
    if (buf_reserve(w->rbuf, h->stored_len) < 0 || buf_reserve(w->dbuf, h->raw_len) < 0 ||
        h->raw_len > w->dbuf->max) {
        errbuf_set(&w->why, "block of %" PRIu32 " bytes over the reader's limit", h->stored_len);
        return walk_bad(w, off, false);
    }
    uint8_t *stored = w->rbuf->data + base;
    uint64_t t0 = w->stats ? now_ns() : 0;
    rc = read_at(w->fd, stored, h->dir_len, doff);
    if (rc != 0) {
        errbuf_set(&w->why, "file shrank while reading");
        return rc < 0 ? rc : walk_bad(w, off, true);
    }
    if (w->stats) {
        w->stats->ns_io += now_ns() - t0;
        w->stats->bytes_read += h->dir_len;
    }
    struct block_hdr hh = *h;
    if (w->unchecked) {
        hh.dir_crc = (uint32_t)crc32_z(0L, stored, h->dir_len);
    }
    ents = xmalloc(sizeof(*ents) * B3_MAX_COLS);
    if (block3__dir_parse(&hh, (struct span){ stored, h->stored_len }, ents, &n, &w->why) < 0) {
        rc = walk_bad(w, off, false);
        goto out;
    }
    st = xmalloc(sizeof(*st) * (n + 1));
    de = xmalloc(sizeof(*de) * (n + 1));
    uint64_t sa = h->dir_len;
    uint64_t da = h->dir_len;
    uint32_t nchunks = 0;
    for (uint32_t i = 0; i < n; i++) {
        st[i] = sa;
        de[i] = da;
        sa += ents[i].stored_len;
        da += ents[i].raw_len;
        nchunks += ents[i].id == B3_RAW;
    }
    memcpy(w->dbuf->data, stored, h->dir_len);
    w->dbuf->len = h->raw_len;
    w->dbuf->data[w->dbuf->len] = 0;

    /* The identity values the scan needs (but src_ip, whose spellings differ). */
    struct block3_val vals[16];
    size_t nv = 0;
    static const int pk_of[BIX_NFIELDS + 1] = {
        [BIX_HOST] = PK_HOST,   [BIX_NAMESPACE] = PK_NAMESPACE,
        [BIX_POD] = PK_POD,     [BIX_CONTAINER_ID] = PK_CONTAINER_ID,
        [BIX_IMAGE] = PK_IMAGE, [BIX_USER] = PK_USER,
        [BIX_SRC_IP] = -1,      [BIX_RULE] = PK_RULE,
        [BIX_CVE] = PK_CVE,
    };
    for (size_t i = 0; q && i < q->nvals && nv < VG_ARRAY_LEN(vals); i++) {
        int id = q->vals[i].id;
        if (id >= 1 && id <= BIX_NFIELDS && pk_of[id] > 0) {
            vals[nv++] =
                (struct block3_val){ pk_of[id], { q->keys.data + q->vals[i].off, q->vals[i].len } };
        }
    }
    uint64_t mask = 1ull << B3_TS | 1ull << B3_SEQ | 1ull << B3_FORM | 1ull << B3_VERBATIM;
    if (keys & (1u << PK_TS | 1u << PK_RECEIVED | 1u << PK_SEQ | 1u << PK_DST_PORT)) {
        mask |= 1ull << B3_NUMS;
    }
    for (int k = 0; k < PK_COUNT; k++) {
        /* raw is put back with the strings of its holes (3.8.3): every string column */
        if (pack__key_class(k) == 2 && ((keys >> k) & 1 || (keys >> PK_RAW) & 1)) {
            mask |= 1ull << (B3_STR + k);
        }
    }
    for (size_t i = 0; i < nv; i++) {
        mask |= 1ull << (B3_STR + vals[i].key);
    }
    if ((rc = v3_load(w, ents, n, st, de, mask, NULL, doff, stored, w->dbuf->data, off)) != 0) {
        goto out;
    }
    if (nv > 0) {
        uint64_t t1 = w->stats ? now_ns() : 0;
        rows = xmalloc((size_t)h->count / 8 + 1);
        chunks = xmalloc((size_t)nchunks / 8 + 2);
        int m = block3__select(h, buf_span(w->dbuf), vals, nv, rows, chunks, &w->why);
        if (w->stats) {
            w->stats->ns_index += now_ns() - t1;
        }
        if (m < 0) {
            rc = walk_bad(w, off, false);
            goto out;
        }
        if (m == 0) {
            *none = true; /* no row holds them: nothing to put back */
            rc = 0;
            goto out;
        }
    }
    if ((keys >> PK_RAW) & 1) {
        mask |= 1ull << B3_RAW;
        if ((rc = v3_load(w, ents, n, st, de, 1ull << B3_RAW, chunks, doff, stored, w->dbuf->data,
                          off)) != 0) {
            goto out;
        }
    }
    if (w->stats) {
        w->stats->blocks_read++;
    }
    struct v3_sel sel = { mask, (keys >> PK_RAW) & 1 ? chunks : NULL, fields, rows };
    if (!((keys >> PK_RAW) & 1)) {
        sel.loaded &= ~(1ull << B3_RAW);
    }
    rc = walk_records(w, h, off, ubuf, recs, &sel);
out:
    free(ents);
    free(st);
    free(de);
    free(rows);
    free(chunks);
    return rc;
}

int seg__walk(struct seg_walk *w)
{
    uint8_t hb[SEG_HDR_LEN > BLOCK_HDR_LEN ? SEG_HDR_LEN : BLOCK_HDR_LEN];
    struct block_hdr h;
    int64_t part_end;
    struct buf own_ubuf;
    struct buf recs;
    struct buf *ubuf = w->ubuf ? w->ubuf : &own_ubuf;
    struct digest *rdg = NULL; /* the records digest of a compacted segment */
    int rc;
    /* What the mode reads and checks (see enum seg_walk_mode). */
    bool decode = w->mode != SEG_WALK_RECOVER;
    bool skip = w->mode == SEG_WALK_SCAN;
    bool chained = w->mode != SEG_WALK_SCAN;

    assert((w->fn != NULL) == (w->mode == SEG_WALK_SCAN || w->mode == SEG_WALK_COPY));
    w->hdr_ok = false;
    w->end = 0;
    w->mark_hit = false;
    w->mark2_hit = false;
    w->stopped = false;
    w->bad_off = 0;
    w->bad_incomplete = false;
    memset(&w->tot, 0, sizeof(w->tot));
    errbuf_clear(&w->why);
    buf_init(&own_ubuf, seg__ubuf_max());
    buf_init(&recs, (size_t)(BLOCK_MAX_RAW / 4) * sizeof(struct walk_rec) + 64);

    /* segment.md 2 */
    if (w->size < SEG_HDR_LEN) {
        errbuf_set(&w->why, "file header: file is only %" PRIu64 " bytes", w->size);
        rc = walk_bad(w, 0, true);
        goto out;
    }
    rc = read_at(w->fd, hb, SEG_HDR_LEN, 0);
    if (rc != 0) {
        errbuf_set(&w->why, "file header: file shrank while reading");
        rc = rc < 0 ? rc : walk_bad(w, 0, true);
        goto out;
    }
    if (w->unchecked) {
        /* Fuzzing: make the checksum right, so the decoding behind it is reached. */
        store__put_le(hb + SH_CRC, (uint32_t)crc32(0L, hb, SH_CRC), 4);
    }
    if (seg__hdr_decode(hb, &w->hdr, &w->why) < 0) {
        rc = walk_bad(w, 0, false);
        goto out;
    }
    part_end = w->hdr.part_start + w->hdr.part_ns;
    if (w->expect && (w->hdr.id != w->expect->id || w->hdr.part_start != w->expect->part_start ||
                      part_end != w->expect->part_end)) {
        errbuf_set(&w->why,
                   "file header (segment %" PRIu64 ", partition %" PRId64 "+%" PRId64
                   ") does not match the catalog (segment %" PRIu64 ", partition %" PRId64
                   "..%" PRId64 ")",
                   w->hdr.id, w->hdr.part_start, w->hdr.part_ns, w->expect->id,
                   w->expect->part_start, w->expect->part_end);
        rc = walk_bad(w, 0, false);
        goto out;
    }
    w->hdr_ok = true;
    vg_sha256(hb, SEG_HDR_LEN, w->chain); /* segment.md 2.2: genesis */
    w->end = SEG_HDR_LEN;
    walk_mark(w);

    /* segment.md 12: a compacted segment's records must be those it replaced. */
    uint64_t last_seq = 0;
    bool any_block = false;
    if ((w->hdr.flags & SEG_F_COMPACTED) && decode && !skip) {
        rdg = digest_new();
    }
    uint64_t off = SEG_HDR_LEN;
    uint64_t nblock = 0;
    rc = 0;
    while (off < w->size) {
        /* segment.md 3.1, 3.7 */
        if (w->size - off < BLOCK_HDR_LEN) {
            errbuf_set(&w->why, "block header cut short (%" PRIu64 " bytes left)", w->size - off);
            rc = walk_bad(w, off, true);
            goto out;
        }
        uint64_t t0 = w->stats ? now_ns() : 0;
        rc = read_at(w->fd, hb, BLOCK_HDR_LEN, off);
        if (rc != 0) {
            errbuf_set(&w->why, "file shrank while reading");
            rc = rc < 0 ? rc : walk_bad(w, off, true);
            goto out;
        }
        if (w->stats) {
            w->stats->ns_io += now_ns() - t0;
            w->stats->bytes_read += BLOCK_HDR_LEN;
        }
        if (block__hdr_decode(hb, &h, &w->why) < 0) {
            rc = walk_bad(w, off, false);
            goto out;
        }
        if (h.ts_min < w->hdr.part_start || h.ts_max >= part_end) {
            errbuf_set(&w->why, "block time range outside the segment's partition");
            rc = walk_bad(w, off, false);
            goto out;
        }
        uint64_t blen = block__len(&h);
        if (blen > w->size - off) {
            errbuf_set(&w->why, "block of %" PRIu64 " bytes runs past the end (%" PRIu64 " left)",
                       blen, w->size - off);
            rc = walk_bad(w, off, true);
            goto out;
        }
        bool pass = false; /* passed over unread (its header is still chained and counted) */
        bool mine = true;  /* this stripe's block (counted in scan.progress) */
        w->rbuf->len = 0;
        if (skip && w->scan.nstripes > 1 && nblock++ % w->scan.nstripes != w->scan.stripe) {
            pass = true; /* another reader's (store_scan_plan_run) */
            mine = false;
        } else if (skip && (h.ts_max < w->scan.since || h.ts_min >= w->scan.until ||
                            (w->scan.seq_min > 0 && h.seq_max < w->scan.seq_min) ||
                            (w->scan.seq_max > 0 && h.seq_min > w->scan.seq_max))) {
            /* segment.md 4.1: the stored hash becomes prev, unverified. */
            pass = true;
            if (w->stats) {
                w->stats->blocks_skipped++;
            }
        } else if (skip && w->scan.need && h.index_len > 0 && !bix__query_empty(w->scan.need)) {
            /* segment.md 4.1: the index first, trusted once its own checksum holds. */
            if ((rc = walk_read(w, w->rbuf, h.index_len, off + BLOCK_HDR_LEN)) != 0) {
                goto out;
            }
            uint64_t t1 = w->stats ? now_ns() : 0;
            struct span index = buf_span(w->rbuf);
            if (!w->unchecked && block__index_check(&h, index, &w->why) < 0) {
                rc = walk_bad(w, off, false);
                goto out;
            }
            int m = bix__may_match(index, w->scan.need, &w->why);
            if (m < 0) {
                rc = walk_bad(w, off, false);
                goto out;
            }
            pass = m == 0;
            if (w->stats) {
                w->stats->ns_index += now_ns() - t1;
                w->stats->blocks_skipped_index += pass;
            }
        }
        if (!pass && skip && h.version == BLOCK_VERSION_3 && v3_projected(w->scan.need)) {
            bool none;
            rc = walk_v3_scan(w, &h, off, ubuf, &recs, &none);
            if (rc != 0) {
                goto out;
            }
            if (none && w->stats) {
                w->stats->blocks_skipped_index++;
            }
        } else if (!pass) {
            size_t have = w->rbuf->len; /* the index, when it was read above */
            size_t plen = (size_t)(blen - BLOCK_HDR_LEN);
            if ((rc = walk_read(w, w->rbuf, plen - have, off + BLOCK_HDR_LEN + have)) != 0) {
                goto out;
            }
            struct span payload = { w->rbuf->data, plen };
            uint64_t t1 = w->stats ? now_ns() : 0;
            if (!w->unchecked) {
                int vrc = chained ? block__verify(hb, &h, payload, w->chain, w->dg, &w->why)
                                  : block__verify_crc(hb, &h, payload, &w->why);
                if (vrc == 0 && have == 0) {
                    vrc = block__index_check(&h, (struct span){ payload.p, h.index_len }, &w->why);
                }
                if (vrc < 0) {
                    rc = walk_bad(w, off, false);
                    goto out;
                }
            }
            if (w->stats) {
                uint64_t t2 = now_ns();
                w->stats->ns_check += t2 - t1;
                t1 = t2;
            }
            if (decode) {
                struct span data = { payload.p + h.index_len, h.stored_len };
                if (block__decompress(&h, data, w->dbuf, &w->why) < 0) {
                    rc = walk_bad(w, off, false);
                    goto out;
                }
                if (w->stats) {
                    w->stats->ns_decompress += now_ns() - t1;
                    w->stats->blocks_read++;
                    w->stats->bytes_decompressed += h.raw_len;
                }
                if (rdg) {
                    if (any_block && h.seq_min <= last_seq) {
                        errbuf_set(&w->why, "compacted segment: blocks out of seq order");
                        rc = walk_bad(w, off, false);
                        goto out;
                    }
                    if ((rc = walk_digest(w, &h, off, rdg, ubuf, &recs)) != 0) {
                        goto out;
                    }
                    any_block = true;
                    last_seq = h.seq_max;
                }
                rc = walk_records(w, &h, off, ubuf, &recs, NULL);
                if (rc != 0) {
                    goto out;
                }
            }
        }
        if (skip && mine && w->scan.progress) {
            struct store_scan_progress *pr = w->scan.progress;
            if (pass) {
                atomic_fetch_add_explicit(&pr->blocks_skipped, 1, memory_order_relaxed);
            } else {
                atomic_fetch_add_explicit(&pr->blocks_read, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&pr->records, h.count, memory_order_relaxed);
            }
            atomic_fetch_add_explicit(&pr->bytes, blen, memory_order_relaxed);
        }
        seg__totals_add(&w->tot, &h);
        memcpy(w->chain, h.hash, VG_SHA256_LEN);
        off += blen;
        w->end = off;
        walk_mark(w);
    }
    rc = 0;
    if (rdg) {
        uint8_t d[VG_SHA256_LEN];
        digest_final(rdg, d);
        if (!w->unchecked && memcmp(d, w->hdr.records_digest, VG_SHA256_LEN) != 0) {
            errbuf_set(&w->why,
                       "compacted segment: its records are not those of segment %" PRIu64
                       " it replaced (records digest mismatch)",
                       w->hdr.replaces_id);
            rc = walk_bad(w, SEG_HDR_LEN, false);
        }
    }
out:
    digest_free(rdg);
    buf_release(&own_ubuf);
    buf_release(&recs);
    return rc;
}
