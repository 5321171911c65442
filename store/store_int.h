/* store/store_int.h: what the store's own files (block, segment, catalog, writer,
 * reader) and its tests and fuzz targets share. Layouts are schemas/segment.md's. */
#ifndef VG_STORE_STORE_INT_H
#define VG_STORE_STORE_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/digest.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "store/bindex.h"
#include "store/sealseq.h"
#include "store/sign.h"
#include "store/store.h"
#include "store/varint.h"

/* segment.md 2 and 3.1: both headers are fixed size. */
#define SEG_HDR_LEN               128
#define SEG_VERSION               1
#define BLOCK_HDR_LEN             128
#define BLOCK_VERSION             3 /* written (segment.md 3.1); 1 and 2 are still read */
#define BLOCK_VERSION_1           1
#define BLOCK_VERSION_2           2
#define BLOCK_VERSION_3           3
#define BLOCK_CODEC_LZ4           1
#define BLOCK_CODEC_ZSTD          2           /* v2 blocks of compacted segments (3.1, 12) */
#define BLOCK_MAX_RAW             (64u << 20) /* segment.md 3.7 */
#define BLOCK_MAX_INDEX           (16u << 20)
#define BLOCK_ENTRY_MAX           30u /* three uvarints of at most 10 bytes (segment.md 3.4) */
#define BLOCK_MAX_REC             (BLOCK_MAX_RAW - 32u)
#define SEG_NAME_MAX              64
#define STORE_DEFAULT_BLOCK_BYTES (1u << 20)
#define STORE_DEFAULT_LZ4_LEVEL   2 /* LZ4HC; segment.md 3.3 */
#define STORE_DEFAULT_MAX_OPEN    16

/* ---- block.c: one block (segment.md 3) ---- */

struct block_hdr { /* segment.md 3.1 */
    uint16_t version;
    uint8_t codec;
    uint8_t flags;
    uint32_t count;
    uint32_t raw_len;
    uint32_t stored_len;
    uint32_t index_len;
    uint32_t index_crc; /* v2, v3: CRC-32 of the index section (segment.md 3.1) */
    uint32_t dir_len;   /* v3: length of the column directory (segment.md 3.8) */
    uint32_t dir_crc;   /* v3: its CRC-32 */
    uint32_t rec_len;   /* v3: the bytes of the block's records put back together */
    int64_t ts_min;
    int64_t ts_max;
    uint64_t seq_min;
    uint64_t seq_max;
    uint8_t hash[VG_SHA256_LEN];
    uint32_t crc;
};

static inline uint64_t block__len(const struct block_hdr *h)
{
    return (uint64_t)BLOCK_HDR_LEN + h->index_len + h->stored_len;
}

/* Decodes the BLOCK_HDR_LEN bytes at p and checks them alone (segment.md 3.7, all but
 * the partition range and file length). Returns 0 or VG_ECORRUPT with a reason in why. */
int block__hdr_decode(const uint8_t *p, struct block_hdr *h, struct errbuf *why) VG_MUST_USE;
void block__hdr_encode(const struct block_hdr *h, uint8_t *p);

/* Checks the checksum (3.5) and the chain hash from prev (3.6) of the block whose raw
 * header bytes are hdr and whose payload (index ‖ data, block__len - header bytes) is
 * payload. d is scratch. Returns 0 or VG_ECORRUPT with why. */
int block__verify(const uint8_t *hdr, const struct block_hdr *h, struct span payload,
                  const uint8_t prev[VG_SHA256_LEN], struct digest *d,
                  struct errbuf *why) VG_MUST_USE;
/* v3 (3.8): the column directory and every column against their own checksums. */
int block__cols_check(const struct block_hdr *h, struct span data, struct errbuf *why) VG_MUST_USE;
/* Only the checksum (3.5). */
int block__verify_crc(const uint8_t *hdr, const struct block_hdr *h, struct span payload,
                      struct errbuf *why) VG_MUST_USE;

/* Decompresses the data section (3.3) into out (reset first; out->max must allow
 * raw_len). v3 (3.8): out gets the column directory, then every column decompressed,
 * in directory order (raw_len bytes in all), each column's checksum checked. Returns 0
 * or VG_ECORRUPT with why. */
int block__decompress(const struct block_hdr *h, struct span data, struct buf *out,
                      struct errbuf *why) VG_MUST_USE;

/* v2 (3.1): checks the index section against the header's index_crc and its layout
 * (3.2). Returns 0 or VG_ECORRUPT with why. v1 blocks: always 0. */
int block__index_check(const struct block_hdr *h, struct span index,
                       struct errbuf *why) VG_MUST_USE;

/* Walks a decompressed record stream (3.4): v1 entries, or v2 groups of entries whose
 * packed records (3.4.2) are unpacked into scratch; or the decompressed columns of a v3
 * block (3.8), whose rows are put back together into scratch. */
#define BLOCK3_CUR_SIZE 2560
struct block_iter {
    const struct block_hdr *h;
    struct span in;
    uint32_t left;
    uint32_t group_left;   /* v2: entries left in the current group */
    int64_t prev_received; /* v2: of the group's last packed record (3.4.2) */
    int64_t ts;
    uint64_t seq;
    struct buf *scratch;   /* v2, v3: the unpacked record */
    struct block3_cur *v3; /* v3: the column cursors (cols.c), inside v3_mem */
    uint64_t v3_mem[(BLOCK3_CUR_SIZE + 7) / 8];
    /* Records block__iter_next skips (checked only as far as skipping needs): */
    const struct bix_query *pre; /* NULL, or those it rules out (bix__record_may_match) */
    bool windowed;               /* those outside [since, until) */
    int64_t since;
    int64_t until;
    uint32_t skipped; /* how many */
    /* v3 (segment.md 3.8), a projected read: what was loaded and what is wanted. */
    uint64_t v3_loaded;       /* 0: every column; else bit id: column id is in raw */
    const uint8_t *v3_chunks; /* NULL: every raw chunk; else bit i: raw chunk i is */
    uint32_t v3_fields;       /* 0: whole records; else the keys (3.4.2) put back */
    const uint8_t *v3_rows;   /* NULL: every row; else bit i: row i is wanted */
};
/* scratch (v2 blocks; its max bounds a record) holds the record block__iter_next returns
 * until the next call. */
void block__iter_init(struct block_iter *it, const struct block_hdr *h, struct span raw,
                      struct buf *scratch);
/* Returns 1 with the next record (rec points into raw or scratch), 0 at a clean end
 * (count entries exactly filling raw), VG_ECORRUPT with why. */
int block__iter_next(struct block_iter *it, int64_t *ts, uint64_t *seq, struct span *rec,
                     struct errbuf *why) VG_MUST_USE;

/* One record of the block being built (v2). */
struct block_ent {
    int64_t ts;
    uint64_t seq;
    uint32_t off; /* of its packed bytes in raw */
    uint32_t len;
    uint32_t group;
};

/* Accumulates one block (the writer's hot path). v2: records packed (3.4.2) in arrival
 * order, their index (3.2) built as they come; grouped at finish. */
struct block_builder {
    struct buf raw;  /* v2: packed records; v1: the record stream; max BLOCK_MAX_RAW */
    size_t in_bytes; /* records added, framing included (block__entry_len each): the
                        size block_bytes bounds, as the v1 stream would be */
    uint32_t count;
    int64_t ts_min;
    int64_t ts_max;
    int64_t prev_ts;
    uint64_t seq_min;
    uint64_t seq_max;
    uint64_t prev_seq;
    bool v1;                            /* tests: build format v1 blocks */
    bool v2;                            /* tests: build format v2 blocks */
    struct buf ents;                    /* v2: struct block_ent per record */
    struct buf scratch;                 /* v2: unpacking check, then the grouped stream at finish */
    struct buf index;                   /* v2: the index section at finish */
    struct bix_builder ix;              /* v2 */
    int64_t prev_received[PACK_GROUPS]; /* v2: per group (3.4.2) */
    struct pack_view *view;             /* v2, v3: the record being added */
    struct block3_build *v3;            /* v3: rows and column buffers (cols.c) */
};

/* How block__builder_finish compresses (3.3). */
struct block_enc {
    int codec;         /* BLOCK_CODEC_LZ4 (0 means it too) or BLOCK_CODEC_ZSTD */
    int level;         /* LZ4: 0 LZ4_compress_default, 1..12 LZ4HC; zstd: its level (0: 3) */
    void *lz4hc_state; /* NULL, or LZ4HC's state reused across blocks (block__enc_init) */
    void *zstd_cctx;   /* NULL, or zstd's context reused across columns and blocks */
};
/* An encoder for codec and level (as above) that keeps LZ4HC's state from block to
 * block; release it with block__enc_release. The compression libraries stay in block.c. */
void block__enc_init(struct block_enc *enc, int codec, int level);
void block__enc_release(struct block_enc *enc);
#define BLOCK_ZSTD_MAX_RATIO 1024 /* segment.md 3.7: raw_len <= this * stored_len */
void block__builder_init(struct block_builder *b);  /* allocates nothing */
void block__builder_reset(struct block_builder *b); /* empty; keeps memory */
void block__builder_release(struct block_builder *b);
/* Bytes rec takes in the stream, framing included (an upper bound). */
static inline size_t block__entry_len(size_t rec_len)
{
    return rec_len + BLOCK_ENTRY_MAX;
}
/* Appends one entry. Returns 0 or VG_ELIMIT (the stream would pass BLOCK_MAX_RAW). */
int block__builder_add(struct block_builder *b, int64_t ts, uint64_t seq,
                       struct span rec) VG_MUST_USE;
/* Compresses the (non-empty) stream into out (reset first) as enc says (NULL: plain
 * LZ4): the block header, the index section (v2), then the data section, chained from
 * prev; h gets the header (h->hash is the new chain head). The builder's records are
 * unchanged (its scratch is not). Returns 0 or VG_ELIMIT (out->max too small). */
int block__builder_finish(struct block_builder *b, const uint8_t prev[VG_SHA256_LEN],
                          struct digest *d, struct buf *out, struct block_hdr *h,
                          const struct block_enc *enc) VG_MUST_USE;

/* ---- cols.c: the columns of format v3 blocks (segment.md 3.8) ---- */

/* segment.md 3.8.1: column ids. */
enum block3_col {
    B3_TS = 1,
    B3_SEQ = 2,
    B3_FORM = 3,
    B3_NUMS = 4,
    B3_VERBATIM = 5,
    B3_RAW = 6,
    B3_STR = 32, /* + the key (3.4.2) of a string field: 35 (agent) .. 56 (message) */
    B3_ID_MAX = B3_STR + PK_DST_PORT,
};
#define B3_DIR_HDR     4
#define B3_DIR_ENT     20
#define B3_MAX_COLS    1152 /* segment.md 3.7 */
#define B3_DIR_MAX     (B3_DIR_HDR + B3_DIR_ENT * B3_MAX_COLS)
#define B3_ROW_MAX     640 /* bytes of columns a row may take beyond its record's */
#define B3_CODEC_PLAIN 0
#define B3_DATA_SLACK  (64u * B3_MAX_COLS) /* compression framing of every column */

/* One entry of the column directory (3.8). */
struct block3_dirent {
    uint16_t id;
    uint8_t codec;
    uint32_t nvals;
    uint32_t raw_len;
    uint32_t stored_len;
    uint32_t crc;
};
/* Parses and checks the directory at the front of data (the data section) against h.
 * n gets the count; ents (B3_MAX_COLS) the entries. Returns 0 or VG_ECORRUPT. */
int block3__dir_parse(const struct block_hdr *h, struct span data, struct block3_dirent *ents,
                      uint32_t *n, struct errbuf *why) VG_MUST_USE;
/* Checks one column's stored bytes against its checksum and decompresses them into dst
 * (e->raw_len bytes). Returns 0 or VG_ECORRUPT. */
int block3__col_load(const struct block3_dirent *e, const uint8_t *stored, uint8_t *dst,
                     struct errbuf *why) VG_MUST_USE;
/* The name of column id ("ts", "user", "raw"...) for messages. */
const char *block3__col_name(unsigned id);

/* The builder's part (block.c calls these for v3 blocks). */
struct block3_build;
int block3__add(struct block_builder *b, int64_t ts, uint64_t seq, struct span rec) VG_MUST_USE;
void block3__reset(struct block3_build *v);
void block3__free(struct block3_build *v);
/* Lays out the columns of b's rows: the directory (codecs and stored lengths still
 * unset) in dir, the uncompressed columns back to back in cols; ents/n the entries.
 * raw_chunk: the writer's target size of a chunk of the raw column. */
int block3__layout(struct block_builder *b, size_t raw_chunk, struct block3_dirent *ents,
                   uint32_t *n, struct buf *cols) VG_MUST_USE;
void block3__dir_encode(const struct block3_dirent *ents, uint32_t n, uint8_t *out);

/* Which rows of a v3 block (decoded: the directory then the columns, those of form and
 * of the string keys named in vals loaded) may hold every value of vals (key k, exact
 * bytes): bit i of rows for row i (verbatim rows always), bit c of chunks for each raw
 * chunk holding a wanted row's raw. rows and chunks are zeroed first. Returns the
 * number of wanted rows, or VG_ECORRUPT. */
struct block3_val {
    int key;
    struct span value;
};
int block3__select(const struct block_hdr *h, struct span decoded, const struct block3_val *vals,
                   size_t nvals, uint8_t *rows, uint8_t *chunks, struct errbuf *why) VG_MUST_USE;

/* Iteration (block.c's block__iter_* for v3). */
void block3__iter_init(struct block_iter *it);
int block3__iter_next(struct block_iter *it, int64_t *ts, uint64_t *seq, struct span *rec,
                      struct errbuf *why) VG_MUST_USE;

/* ---- segment.c: segment files (segment.md 1, 2, 4) ---- */

#define SEG_F_COMPACTED 1u /* segment.md 2, 12: replaces a sealed segment */

struct seg_hdr { /* segment.md 2 */
    uint16_t version;
    uint32_t flags;
    int64_t part_start;
    int64_t part_ns;
    uint64_t id;
    int64_t created;
    /* SEG_F_COMPACTED (segment.md 12): */
    uint64_t replaces_id;
    uint8_t replaces_head[VG_SHA256_LEN];
    uint8_t records_digest[VG_SHA256_LEN];
};
void seg__hdr_encode(const struct seg_hdr *h, uint8_t *p);
/* Decodes and checks SEG_HDR_LEN bytes. Returns 0 or VG_ECORRUPT with why. */
int seg__hdr_decode(const uint8_t *p, struct seg_hdr *h, struct errbuf *why) VG_MUST_USE;

/* segment.md 1.3: "<YYYYMMDDTHHMMSSZ>-<id>.vseg" into out (SEG_NAME_MAX). */
void seg__name(int64_t part_start, uint64_t id, char *out);
/* Parses a segment file name; returns true and its id when name is one. */
bool seg__name_parse(const char *name, uint64_t *id);

/* "<a>/<b>" into out (cap bytes). Returns 0 or -ENAMETOOLONG. */
int seg__path(char *out, size_t cap, const char *a, const char *b) VG_MUST_USE;
/* Opens segdir/file read-only; *size gets its size (fstat). Returns 0 or -errno (*fd is
 * then -1). */
int seg__open_ro(const char *segdir, const char *file, int *fd, uint64_t *size) VG_MUST_USE;

/* segment.md 1.1: the partition of ts. Returns 0 or -EINVAL when it overflows int64. */
int seg__partition(int64_t ts, int64_t part_ns, int64_t *start, int64_t *end) VG_MUST_USE;

/* What a run of good blocks holds. */
struct seg_totals {
    uint64_t count;
    uint64_t blocks;
    uint64_t bytes_raw;
    int64_t ts_min; /* meaningful when count > 0 */
    int64_t ts_max;
    uint64_t seq_min;
    uint64_t seq_max;
};
void seg__totals_add(struct seg_totals *t, const struct block_hdr *h);
bool seg__totals_eq(const struct seg_totals *a, const struct seg_totals *b);

enum seg_state { SEG_OPEN, SEG_SEALED };

/* One catalog row (segment.md 6). */
struct seg_meta {
    uint64_t id;
    char file[SEG_NAME_MAX];
    int64_t part_start;
    int64_t part_end;
    enum seg_state state;
    struct seg_totals tot;
    uint64_t bytes; /* committed file size */
    uint8_t chain_head[VG_SHA256_LEN];
    int64_t created;
    int64_t sealed;   /* 0 while open */
    int64_t recv_max; /* collector clock at the last commit that wrote to it; 0 unknown */
};

/* One pass over a segment file (segment.md 4.1): the file header, then block after
 * block until the end or the first bad one. The writer's recovery, the reader, verify,
 * compaction and the fuzz targets all read segments through this, each in its mode. */
enum seg_walk_mode {
    /* Recovery (segment.md 5.4): every block's header, checksum and chain hash (2, 3.5,
     * 3.6); nothing decompressed. */
    SEG_WALK_RECOVER,
    /* vigil verify (segment.md 11): as RECOVER, and every block decompressed and its
     * record stream checked; a compacted segment's records digest (12) too. */
    SEG_WALK_VERIFY,
    /* store_scan (segment.md 4.1): blocks outside [since, until), another stripe's, or
     * ruled out by their index (need) are passed over unread; the others are checked by
     * checksum only (chains are verify's), decompressed, and their records in the window
     * go to fn. */
    SEG_WALK_SCAN,
    /* Compaction (segment.md 12): as VERIFY, every record to fn, then block_done after
     * each block. */
    SEG_WALK_COPY,
};

struct seg_walk {
    /* in */
    enum seg_walk_mode mode;
    int fd;
    uint64_t size;                  /* bytes of the file to consider */
    const struct seg_meta *expect;  /* NULL, or the catalog row the header must match */
    uint64_t mark_off;              /* 0, or: when a block ends here, remember chain and totals */
    uint64_t mark2_off;             /* 0, or: when a block ends here, remember the chain */
    struct buf *rbuf;               /* scratch: stored block bytes (max >= seg__rbuf_max) */
    struct buf *dbuf;               /* scratch: decompressed bytes (max >= BLOCK_MAX_RAW) */
    struct buf *ubuf;               /* NULL, or scratch: unpacked records of a v2 block
                                       (max >= seg__ubuf_max) */
    struct digest *dg;              /* scratch */
    struct store_scan_stats *stats; /* NULL, or added to */
    store_rec_fn fn;                /* SCAN, COPY: gets the records */
    void *arg;
    struct { /* SCAN */
        int64_t since;
        int64_t until;
        const struct bix_query *need; /* NULL, or skip blocks whose index rules it out */
        unsigned stripe;              /* nstripes > 1: only blocks whose position (from 0)
                                         is stripe modulo nstripes are read */
        unsigned nstripes;
        uint64_t seq_min; /* 0, or: blocks whose seq_max is below it are passed over too */
        uint64_t seq_max; /* 0, or: blocks whose seq_min is above it are passed over too */
        struct store_scan_progress *progress; /* NULL, or counts this stripe's blocks */
    } scan;
    int (*block_done)(void *arg, const struct block_hdr *h); /* COPY: after fn got a
                                      block's records; nonzero stops */
    bool unchecked; /* fuzz targets only: skip checksums and hashes (2, 3.5, 3.6) to reach
                       the decoding behind them */
    /* out */
    bool hdr_ok;
    struct seg_hdr hdr;
    uint8_t chain[VG_SHA256_LEN]; /* hash of the last good block, else the genesis hash */
    uint64_t end;                 /* offset past the last good block (0: header bad) */
    struct seg_totals tot;        /* of the good blocks (skipped ones by their headers) */
    bool stopped;                 /* fn returned nonzero (seg__walk returned it) */
    bool mark_hit;
    uint8_t mark_chain[VG_SHA256_LEN];
    struct seg_totals mark_tot;
    bool mark2_hit;
    uint8_t mark2_chain[VG_SHA256_LEN];
    /* when seg__walk returns VG_ECORRUPT */
    uint64_t bad_off;    /* offset of the bad header or block */
    bool bad_incomplete; /* it runs past size (in flight or torn) */
    struct errbuf why;   /* the reason, without the file name */
};
/* Limits for seg_walk.rbuf and seg_walk.ubuf. */
size_t seg__rbuf_max(void);
/* The largest block block__hdr_decode accepts (header, index and data section). */
size_t block__max_len(void);
size_t seg__ubuf_max(void);
/* Returns 0 (walked to exactly size), fn's nonzero value, VG_ECORRUPT (bad_off,
 * bad_incomplete and why set; everything before bad_off is good), or -errno from
 * pread. Blocks on disk I/O. */
int seg__walk(struct seg_walk *w) VG_MUST_USE;

/* ---- writer.c ---- */

/* Tests only: frees st without committing, as if the process died (kill -9): written
 * blocks stay in the files, the open blocks are lost. Takes NULL. */
void store__abandon(struct store *st);
/* Tests only: an I/O error awaits a successful rollback (segment.md 5.3). */
bool store__poisoned(const struct store *st);

/* ---- catalog.c: catalog.db (segment.md 6); the only file with <sqlite3.h> ---- */

struct catalog;

/* Opens (writer: creates the schema; readonly: SQLITE_OPEN_READONLY) path. *out owned
 * by the caller (catalog__close). Returns 0, -ENOENT (readonly, no file), VG_EDB or
 * VG_EFORMAT with eb set. */
int catalog__open(const char *path, bool readonly, struct catalog **out,
                  struct errbuf *eb) VG_MUST_USE;
void catalog__close(struct catalog *c); /* takes NULL */
const char *catalog__errmsg(const struct catalog *c);

int catalog__begin(struct catalog *c) VG_MUST_USE;
int catalog__commit(struct catalog *c) VG_MUST_USE;
void catalog__rollback(struct catalog *c);

/* Inserts or replaces the row m->id. Returns 0 or VG_EDB. */
int catalog__put(struct catalog *c, const struct seg_meta *m) VG_MUST_USE;
/* The open segment of exactly [part_start, part_end) with the highest id: 1 and *out,
 * 0 when none, or VG_EDB. */
int catalog__get_open(struct catalog *c, int64_t part_start, int64_t part_end,
                      struct seg_meta *out) VG_MUST_USE;
/* The row of segment id: 1 and *out, 0 when none, or VG_EDB. */
int catalog__get(struct catalog *c, uint64_t id, struct seg_meta *out) VG_MUST_USE;
int catalog__seal(struct catalog *c, uint64_t id, int64_t sealed_ns) VG_MUST_USE;
/* Seals every open row with part_end <= ts; returns how many, or VG_EDB. */
int catalog__seal_before(struct catalog *c, int64_t ts, int64_t sealed_ns) VG_MUST_USE;

enum catalog_sel {
    CATALOG_ALL,   /* every row */
    CATALOG_OPEN,  /* state open */
    CATALOG_RANGE, /* rows that may hold records in [since, until): open ones by partition,
                      sealed ones by ts range */
};
/* Rows ordered by part_start, then id, into a new array *rows (caller frees) of *n.
 * Returns 0 or VG_EDB. */
int catalog__list(struct catalog *c, enum catalog_sel sel, int64_t since, int64_t until,
                  struct seg_meta **rows, size_t *n) VG_MUST_USE;
/* Largest id (0 when empty) and 1 + largest seq_max (1 when no records). */
int catalog__max_id(struct catalog *c, uint64_t *out) VG_MUST_USE;
int catalog__next_seq(struct catalog *c, uint64_t *out) VG_MUST_USE;

/* ---- integrity, retention and holds (segment.md 8-10): catalog.c (tables),
 * integrity.c (keys, seals, signatures), retention.c (deletions, holds), verify.c ---- */

#define SEAL_MSG_LEN      144     /* segment.md 8.2 */
#define SEAL_REASON_ENDED "ended" /* sealed by store_seal_before: signed */

struct catalog_key { /* a row of keys (segment.md 8.3) */
    char key_id[SIGN_KEY_ID_LEN + 1];
    char *pem; /* owned */
    int64_t added;
};

struct catalog_seal { /* a row of seals (segment.md 8.3) */
    uint64_t id;      /* segment id */
    char reason[16];  /* SEAL_REASON_ENDED */
    bool is_signed;   /* key_id and sig set */
    char key_id[SIGN_KEY_ID_LEN + 1];
    uint8_t sig[SIGN_SIG_LEN];
    int64_t signed_at;
};

struct catalog_deletion { /* a row of deletions (segment.md 9.2) */
    struct seg_meta m;    /* the segment row as it was when deleted (m.sealed set) */
    bool is_signed;       /* the segment's seal signature, kept */
    char key_id[SIGN_KEY_ID_LEN + 1];
    uint8_t sig[SIGN_SIG_LEN];
    char reason[16];      /* "max_age" | "max_size" */
    int64_t deleted;      /* ns */
    int64_t file_removed; /* ns; 0 while the file may still exist */
};

/* True when the catalog's last failed statement found no room to write: SQLITE_FULL
 * (ENOSPC) or SQLITE_IOERR_WRITE (quota, file size limit). */
bool catalog__full(const struct catalog *c);
/* 1 when the table exists, 0 when not (an older catalog), VG_EDB. */
int catalog__has_table(struct catalog *c, const char *name) VG_MUST_USE;
/* Records a public key (INSERT OR IGNORE). Returns 0 or VG_EDB. */
int catalog__key_put(struct catalog *c, const char *key_id, const char *pem,
                     int64_t added) VG_MUST_USE;
/* Lists into a new array (catalog__keys_free); empty when the table is missing. */
int catalog__keys_list(struct catalog *c, struct catalog_key **out, size_t *n) VG_MUST_USE;
void catalog__keys_free(struct catalog_key *k, size_t n);
/* Inserts or replaces the seal row of s->id. Returns 0 or VG_EDB. */
int catalog__seal_put(struct catalog *c, const struct catalog_seal *s) VG_MUST_USE;
/* Every seal row, by segment id, into a new array (caller frees). */
int catalog__seals_list(struct catalog *c, struct catalog_seal **out, size_t *n) VG_MUST_USE;
/* Records d and removes the segment's segments and seals rows (call inside a
 * transaction). Returns 0 or VG_EDB. */
int catalog__deletion_add(struct catalog *c, const struct catalog_deletion *d) VG_MUST_USE;
/* 1 and *out when segment id was deleted by policy, 0 when not, or VG_EDB. */
int catalog__deletion_get(struct catalog *c, uint64_t id, struct catalog_deletion *out) VG_MUST_USE;
/* Deletion rows (pending_only: those whose file removal is not recorded yet) into a
 * new array (caller frees). */
int catalog__deletions_list(struct catalog *c, bool pending_only, struct catalog_deletion **out,
                            size_t *n) VG_MUST_USE;
int catalog__deletion_removed(struct catalog *c, uint64_t id, int64_t when) VG_MUST_USE;
/* Adds a hold (since, until, filter, reason, created_by, created of h); *id gets its id. */
int catalog__hold_add(struct catalog *c, const struct store_hold *h, int64_t *id) VG_MUST_USE;
/* Returns 0, -ENOENT (no such hold), -EALREADY (released before) or VG_EDB. */
int catalog__hold_release(struct catalog *c, int64_t id, int64_t when, const char *who,
                          const char *reason) VG_MUST_USE;
/* Holds by id (active_only: not released) into a new array (store_holds_free). */
int catalog__holds_list(struct catalog *c, bool active_only, struct store_hold **out,
                        size_t *n) VG_MUST_USE;

struct sealseq_w;

/* integrity.c. The seal record of segment.md 8.2 for row m (m->sealed set). */
void integrity__seal_msg(const struct seg_meta *m, uint8_t out[SEAL_MSG_LEN]);
/* The seals row (reason ended) of sealed row m, signed by key (unsigned when NULL).
 * Returns 0, VG_EDB or as sign_message. */
int integrity__seal_row(struct catalog *cat, const struct sign_key *key, const struct seg_meta *m,
                        int64_t now) VG_MUST_USE;
/* At store_open, after recovery: loads key_path, or when NULL the store's own key
 * (dir/keys/collector-ed25519.pem, created on first start, 0600); writes its public
 * key next to it and records it in the catalog; signs seals left unsigned. *out is the
 * key (owned by the store), or NULL when the default key cannot be made (a full disk:
 * logged; seals stay unsigned until a later start signs them). Returns 0, or
 * VG_ECONFIG / -errno when a configured key cannot be loaded (eb says why). */
int integrity__open(struct catalog *cat, const struct fsops *fs, const char *dir,
                    const char *key_path, struct sign_key **out, struct errbuf *eb) VG_MUST_USE;
/* Seals every open row with part_end <= ts, in one transaction, each with a seal row
 * signed by key (unsigned when key is NULL), their SEAL entries appended to seq before
 * the transaction commits (segment.md 13.4). Returns how many, or VG_EDB / -errno. */
int integrity__seal_before(struct catalog *cat, struct sealseq_w *seq, const struct sign_key *key,
                           int64_t ts, int64_t now) VG_MUST_USE;

/* ---- sealseq.c: the seal sequence (segment.md 13; its entries: store/sealseq.h) ---- */

/* A segment as the sequence knows it: its newest entry (OPEN or CHECKPOINT while open,
 * then SEAL, then DELETE). */
struct sealseq_seg {
    uint64_t id;
    uint64_t opened_at; /* 1 + index of its OPEN entry (0: none) */
    struct sealseq_entry last;
};
/* Segments by id. */
struct sealseq_map {
    struct sealseq_seg *v;
    size_t n, cap;
};
/* Records e (a good entry, in sequence order). Returns NULL, or why e breaks the order of
 * segment.md 13.3 for its segment (recorded all the same). */
const char *sealseq__map_apply(struct sealseq_map *mp, const struct sealseq_entry *e);
const struct sealseq_seg *sealseq__map_get(const struct sealseq_map *mp, uint64_t id);
void sealseq__map_release(struct sealseq_map *mp);

/* An entry of type (and reason) for catalog row m (m->sealed is a SEAL's time). */
void sealseq__from_meta(struct sealseq_entry *e, unsigned type, unsigned reason,
                        const struct seg_meta *m);
/* The catalog row an entry describes (state sealed for SEAL and DELETE). */
void sealseq__to_meta(const struct sealseq_entry *e, struct seg_meta *m);
/* True when row m has e's partition, counts, sizes, ranges and chain head. */
bool sealseq__same_row(const struct sealseq_entry *e, const struct seg_meta *m);

/* The writer's sequence (segment.md 13.4). */
struct sealseq_w {
    const struct fsops *fs;
    char path[PATH_MAX];
    int fd;
    uint64_t n;                     /* entries in the file */
    uint8_t head[VG_SHA256_LEN];    /* hash of the last one */
    uint8_t key_pub[VG_SHA256_LEN]; /* the key the newest START or KEY entry names */
    struct sealseq_map map;
    unsigned bad; /* entries inside the file that fail their checks (kept, reported) */
    bool created; /* there was no file: the caller writes START (segment.md 13.5) */
};
/* Opens (creating when missing: created set) dir/seals.seq, reads and checks every
 * entry, cuts a torn last one. *out is the caller's (sealseq__free). Returns 0 or
 * -errno with eb. */
int sealseq__open(const struct fsops *fs, const char *dir, struct sealseq_w **out,
                  struct errbuf *eb) VG_MUST_USE;
/* Appends v[0..n) (index, prev, hash filled in; signed by key unless NULL) with one
 * write and one fdatasync. Returns 0, or -errno with nothing appended (the file is cut
 * back; logged). */
int sealseq__append(struct sealseq_w *q, struct sealseq_entry *v, size_t n,
                    const struct sign_key *key) VG_MUST_USE;
/* The newest entry of segment id, or NULL when the sequence does not name it. */
const struct sealseq_entry *sealseq__last(const struct sealseq_w *q, uint64_t id);
void sealseq__free(struct sealseq_w *q); /* takes NULL */

/* CRC-32 (zlib's; segment.md intro) of n bytes. */
uint32_t seg__crc32(const void *p, size_t n);

/* segment.md 12: adds one record to a records digest (the caller feeds seq order). */
void seg__digest_add(struct digest *d, int64_t ts, uint64_t seq, struct span rec);
/* Bytes a compressed block's data section may take at most (either codec). */
#define ZSTD_BOUND_MAX ((size_t)BLOCK_MAX_RAW + BLOCK_MAX_RAW / 128 + 4096)

/* verify.c: true while a writer holds dir's LOCK (read from /proc/locks, no lock taken). */
bool verify__writer_live(const char *dir);

/* ---- journal.c: the commit journal (segment.md 5.6) ---- */

#define JNL_DIR           "journal"
#define JNL_VERSION       1
#define JNL_FILE_HDR_LEN  64
#define JNL_FRAME_HDR_LEN 48
#define JNL_REC_HDR_LEN   20           /* ts, seq, len */
#define JNL_MAX_PAYLOAD   (64u << 20)  /* segment.md 5.6.1: a frame's records, at most */
#define JNL_FRAME_TARGET  (16u << 20)  /* the writer starts a new frame past this */
#define JNL_ROLL_BYTES    (4u << 20)   /* the writer starts a new file past this */
#define JNL_NAME_MAX      32
_Static_assert(JNL_REC_HDR_LEN + BLOCK_MAX_REC <= JNL_MAX_PAYLOAD, "a record fits a frame");

struct jnl_frame { /* segment.md 5.6.1 */
    uint32_t count;
    uint32_t payload_len;
    uint32_t payload_crc;
    uint64_t seq_min;
    uint64_t seq_max;
    uint64_t commit_seq; /* the writer's highest seq appended when it committed this frame */
};

void jnl__file_hdr_encode(uint64_t no, int64_t created, uint8_t p[JNL_FILE_HDR_LEN]);
/* Returns 0, VG_ECORRUPT or VG_EFORMAT (another version), with why. */
int jnl__file_hdr_decode(const uint8_t *p, uint64_t *no, struct errbuf *why) VG_MUST_USE;
void jnl__frame_hdr_encode(const struct jnl_frame *f, uint8_t p[JNL_FRAME_HDR_LEN]);
/* Decodes and checks a frame header alone (bounds, seq range). 0 or VG_ECORRUPT. */
int jnl__frame_hdr_decode(const uint8_t *p, struct jnl_frame *f, struct errbuf *why) VG_MUST_USE;
/* Checks a frame's payload against its header: checksum, count, seq order. */
int jnl__payload_check(const struct jnl_frame *f, struct span payload,
                       struct errbuf *why) VG_MUST_USE;
/* The next record of a payload: 1 (in advanced), 0 at its end, VG_ECORRUPT. */
int jnl__rec_next(struct span *in, int64_t *ts, uint64_t *seq, struct span *rec) VG_MUST_USE;
/* Appends one record as a payload holds it. 0 or VG_ELIMIT. */
int jnl__rec_append(struct buf *b, int64_t ts, uint64_t seq, struct span rec) VG_MUST_USE;
/* "<number, 20 digits>.vjnl" */
void jnl__name(uint64_t no, char out[JNL_NAME_MAX]);
bool jnl__name_parse(const char *name, uint64_t *no);
/* The journal files of jdir by number, ascending, into a new array (caller frees); none
 * when jdir is missing. Returns 0 or -errno. */
int jnl__list(const char *jdir, uint64_t **nos, size_t *n) VG_MUST_USE;

/* One pass over a journal file: its header, then frame after frame (each checked in full:
 * header, bounds, payload checksum, records) until the end or the first bad one. */
struct jnl_walk {
    /* in */
    int fd;
    uint64_t size;    /* bytes of the file to consider */
    uint64_t from;    /* 0, or: start at this frame offset (the file header and the frames
                         before it were good at an earlier walk) */
    uint64_t expect_no; /* 0, or the number its name says: a header saying another is bad
                           (hdr_ok stays false, nothing is read past it) */
    struct buf *pbuf; /* scratch for a payload (max >= JNL_MAX_PAYLOAD) */
    int (*fn)(void *arg, const struct jnl_frame *f, struct span payload); /* NULL, or each
                         good frame; nonzero stops the walk and is returned */
    void *arg;
    /* out */
    bool hdr_ok;
    uint64_t no;         /* the file header's number */
    uint64_t end;        /* past the last good frame (0: header bad) */
    uint64_t frames;     /* good frames */
    uint64_t records;    /* their records */
    uint64_t seq_max;    /* of the last good frame (0: none) */
    uint64_t commit_seq; /* of the last good frame (0: none) */
    /* when jnl__walk returns VG_ECORRUPT */
    uint64_t bad_off;    /* offset of the bad header or frame */
    bool bad_incomplete; /* it runs past size (in flight or torn) */
    struct errbuf why;
};
/* Returns 0 (walked to exactly size), fn's nonzero value, VG_ECORRUPT, VG_EFORMAT (a file
 * of another version) or -errno. */
int jnl__walk(struct jnl_walk *w) VG_MUST_USE;

/* What the catalog holds, per partition: the highest seq in a block (segment.md 5.6.3).
 * A journaled record (ts, seq) is in a block when its partition's seq_max >= seq. */
struct jnl_part {
    int64_t start, end;
    uint64_t seq_max;
};
struct jnl_stored {
    struct jnl_part *v;
    size_t n, cap;
    int64_t max_len;
};
void jnl__stored_add(struct jnl_stored *s, int64_t start, int64_t end, uint64_t seq_max);
void jnl__stored_done(struct jnl_stored *s); /* after the adds, before the lookups */
bool jnl__stored_has(const struct jnl_stored *s, int64_t ts, uint64_t seq);
void jnl__stored_release(struct jnl_stored *s);

/* The writer's journal (segment.md 5.6.2). */
struct jnl_wfile {
    uint64_t no;
    uint64_t seq_max; /* of its last frame; 0: none */
};
struct jnl_w {
    char dir[PATH_MAX];
    int fd;        /* the file frames go to; -1: the next append creates one */
    uint64_t no;   /* its number */
    uint64_t size; /* its size: every frame in it synced */
    struct jnl_wfile *files; /* every journal file, by number */
    size_t nfiles, cap;
    uint64_t next_no;
    struct buf pend; /* the records appended since the last commit, as a payload holds
                        them, after JNL_FRAME_HDR_LEN bytes of room for a frame header */
    size_t *poff;    /* the offset in pend of each of them */
    size_t npend, cappend;
    struct buf out;  /* the frames being written (a payload over JNL_MAX_PAYLOAD) */
};
void jnl__w_init(struct jnl_w *j);
void jnl__w_release(struct jnl_w *j, const struct fsops *fs);
void jnl__w_file_add(struct jnl_w *j, uint64_t no, uint64_t seq_max);
/* j->dir/<name of no> into out (PATH_MAX). 0 or -ENAMETOOLONG. */
int jnl__path(const struct jnl_w *j, uint64_t no, char *out) VG_MUST_USE;
/* Adds a record appended to the store to what the next commit may journal. 0 or
 * VG_ELIMIT (nothing added). */
int jnl__w_pend_add(struct jnl_w *j, int64_t ts, uint64_t seq, struct span rec) VG_MUST_USE;
/* Drops the pending records (a commit took them, or a rollback dropped them). */
void jnl__w_pend_reset(struct jnl_w *j);
/* segment.md 5.6.2: journals the pending records from the first whose seq >= low (the
 * others are in blocks), as one frame written in place (its header in pend's room, no
 * copy) when they fit one, else as jnl__w_append does. Returns 1 when it wrote, 0 when
 * there was nothing to journal, or as jnl__w_append. */
int jnl__w_commit(struct jnl_w *j, const struct fsops *fs, uint64_t low, uint64_t commit_seq,
                  bool sync, int64_t now) VG_MUST_USE;
/* Appends payload (whole records in seq order) as frames with one write, then fdatasyncs
 * (sync). Creates a file (synced, with the directory) when there is none or the current
 * one passed JNL_ROLL_BYTES. Returns 0, or -errno with nothing appended (the file is cut
 * back, or abandoned for a new one when that fails: logged). */
int jnl__w_append(struct jnl_w *j, const struct fsops *fs, struct span payload, uint64_t commit_seq,
                  bool sync, int64_t now) VG_MUST_USE;
/* Removes the files whose records all have seq < low (in committed blocks), then syncs
 * the directory (sync). Failures are logged: a file left is harmless (5.6.3). */
void jnl__w_reclaim(struct jnl_w *j, const struct fsops *fs, uint64_t low, bool sync);

#endif
