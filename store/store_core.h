/* store/store_core.h: struct store, the writer side of a store, and what the files
 * that make it up call of each other. store.c opens, recovers and closes it; writer.c
 * appends, commits and seals; retention.c and compact.c delete and rewrite sealed
 * segments. Each field says which file owns it; the others only read it. The calls go
 * one way: store.c -> writer.c, retention.c, compact.c, integrity.c; retention.c ->
 * writer.c (store__part_in_use); none of them back into store.c. Readers (reader.c,
 * verify.c) and the formats (block.c, segment.c, catalog.c) do not see struct store.
 *
 * Thread: one thread uses a struct store at a time. */
#ifndef VG_STORE_STORE_CORE_H
#define VG_STORE_STORE_CORE_H

#include <limits.h>

#include "store/store_int.h"

struct seg_writer;

struct store {
    /* store.c, set at open: */
    struct store_opts o;
    const struct fsops *fs;
    char dir[PATH_MAX];
    char segdir[PATH_MAX];
    int lock_fd;
    struct catalog *cat;
    struct sign_key *key;  /* signs seals (integrity.c); NULL when it could not be made */
    struct sealseq_w *seq; /* the seal sequence (segment.md 13): appended to by writer.c,
                              integrity.c, retention.c, compact.c and reconcile.c */
    uint64_t next_id;      /* the next segment id: taken with next_id++, never reused
                              (writer.c's new segments, compact.c's) */
    /* writer.c: */
    struct seg_writer **segs;
    size_t nsegs;
    size_t cap;
    struct seg_writer *cur; /* the segment of the last append */
    uint64_t tick;
    uint64_t next_seq;
    int poison_rc;        /* an I/O error since the last commit (segment.md 5.3) */
    struct buf zbuf;      /* the block being written: header + compressed data */
    struct block_enc enc; /* how blocks are compressed (o.lz4_level) */
    struct buf rbuf;      /* recovery scratch (store_open) */
    struct buf dbuf;
    struct digest *dg;
    struct store_stats stats;
    uint64_t *seal_pending; /* rows to seal that a full disk kept SQLite from sealing */
    size_t nseal_pending;
    /* writer.c (journal.c's bytes and files): the commit journal (segment.md 5.6) */
    struct jnl_w jnl;
    /* compact.c: */
    uint64_t *compact_done; /* segments compaction need not look at again */
    size_t ncompact_done;
};

/* writer.c, for store.c: its buffers (at open), their release, and the recovery of
 * one segment file (segment.md 5.4; row: its catalog row, or NULL for a file without
 * one). writer__recover_file returns 0 or negative with eb. */
void writer__init(struct store *st);
void writer__release(struct store *st);
int writer__recover_file(struct store *st, const char *file, const struct seg_meta *row,
                         struct errbuf *eb) VG_MUST_USE;
/* After the segments are recovered and the catalog agrees with them (segment.md 5.6.3):
 * reads the journal files (cutting a torn tail) and appends every journaled record the
 * catalog's blocks do not hold to its open block, with its seq. Returns 0, VG_EFORMAT
 * or -errno / VG_EDB with eb. */
int writer__journal_open(struct store *st, struct errbuf *eb) VG_MUST_USE;
/* store_close's commit: every open block cut, so the journal is reclaimed whole. */
int writer__close_commit(struct store *st) VG_MUST_USE;

/* writer.c, for retention.c: true when the writer holds a segment of partition
 * [start, end) in memory (open, or written and not yet committed): retention must not
 * touch it. */
bool store__part_in_use(const struct store *st, int64_t start, int64_t end);

/* compact.c, for store.c. At store_open: finishes or undoes a compaction a crash
 * interrupted (segment.md 12). Returns 0 or -errno / VG_EDB. */
int compact__recover(struct store *st) VG_MUST_USE;

/* reconcile.c, for store.c (segment.md 13.4, 13.5). Before recovery: starts the seal
 * sequence of a store without one, or records another signing key. After recovery:
 * brings the catalog in line with the sequence. Return 0 or -errno / VG_EDB. */
int reconcile__start(struct store *st, struct errbuf *eb) VG_MUST_USE;
int reconcile__catalog(struct store *st) VG_MUST_USE;

/* retention.c, for store.c. During recovery: when segment file `name` (id) without a
 * catalog row was deleted by policy, removes the file (a crash between the catalog
 * transaction and the unlink) and returns 1; 0 when it was not; < 0 on error. */
int retention__finish_file(struct catalog *cat, const struct fsops *fs, const char *segdir,
                           const char *name, uint64_t id) VG_MUST_USE;

#endif
