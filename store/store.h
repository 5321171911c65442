/* store/store.h: the event store (schemas/segment.md): time-partitioned, append-only
 * segment files of LZ4-compressed blocks of records, chained with SHA-256, listed in a
 * SQLite catalog. One writer (vigild's store thread) and any number of readers (vigil),
 * in the same or other processes.
 *
 * Records are opaque byte strings (each one complete msgpack value: an encoded struct
 * rec from schemas/record.h) stored with their event time ts and sequence number seq. */
#ifndef VG_STORE_STORE_H
#define VG_STORE_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"

struct fsops;

struct store_opts {
    const char *dir;         /* store root; created if missing (writer) */
    int64_t partition_ns;    /* partition length, e.g. 1h; 1 s .. 366 days */
    size_t block_bytes;      /* target uncompressed block size (4 KiB .. 16 MiB; 0: 1 MiB);
                                a block is written when full or at commit */
    int max_open_segments;   /* open segment files at once (late events reopen old
                                partitions); LRU beyond. 1 .. 4096; 0: 16 */
    int lz4_level;           /* blocks as written: LZ4HC at this level (1 .. 12; 0: 2), or
                                -1: plain LZ4, the least CPU per event. One format
                                (segment.md 3.3), read as fast; HC 2 is ~1.35x denser
                                on the bench mix for ~2.3x the compression CPU */
    bool fsync;              /* false only for benchmarks/tests: commit skips fdatasync */
    const struct fsops *fs;  /* NULL: the real system calls; tests install failing ones */
    int64_t (*now_ns)(void); /* the clock a commit records as its records' receipt (the
                                catalog's recv_max, retention's clock: segment.md 6) and
                                a new segment's header its creation time (2);
                                NULL: the wall clock. Tests set their own; a cluster
                                store node the stream's time */
    int64_t block_max_age_ns; /* segment.md 5.6: > 0: a commit journals the records of
                                 open blocks (one fdatasync of the journal) and cuts a
                                 block only when it is full or its first record is this
                                 old on mono_ns (or its partition is sealed, or at
                                 close); 0: every commit cuts the open blocks (no
                                 journal). 0 .. 1 h */
    int64_t (*mono_ns)(void); /* the clock block_max_age is measured on; NULL:
                                 CLOCK_MONOTONIC. Tests set their own */
    const char *signing_key; /* Ed25519 private key PEM signing sealed chain heads
                                (segment.md 8); NULL: dir/keys/collector-ed25519.pem,
                                created on first start */
};

/* The writer. One thread uses it (vigild's store thread); functions block on disk I/O. */
struct store;

/* Opens or creates dir, dir/catalog.db (WAL, synchronous=NORMAL) and dir/segments/, and
 * takes an exclusive flock on dir/LOCK (a second writer fails with a message naming it).
 * Recovers (segment.md 5.4): every segment open in the catalog, and every segment file
 * missing from it, is walked; a torn tail is cut off (logged with log_warn naming the
 * file, offset and bytes cut); corrupt committed data is kept and its segment sealed
 * (log_error); the catalog is made to agree with the files. On success *out is owned by
 * the caller (store_close). Returns 0, VG_ECONFIG (bad opts), VG_EDB, VG_EFORMAT (newer
 * format), -EWOULDBLOCK (locked) or -errno; eb says what failed. */
int store_open(const struct store_opts *o, struct store **out, struct errbuf *eb) VG_MUST_USE;

/* 1 + the highest seq recorded in any block or appended since (1 for an empty store). */
uint64_t store_next_seq(const struct store *st);

/* Adds one record (copied; 1 byte .. 64 MiB - 32) to the open block of ts's partition
 * (segment.md 1.1). May compress and write a full block (not synced), or open a
 * segment file. seq must be greater than every seq appended before. No syscall or
 * allocation per record in the steady state. Returns 0; -EINVAL (seq not increasing,
 * empty record, ts whose partition overflows int64) or VG_ELIMIT (record too large),
 * which change nothing; or an I/O or catalog error (-ENOSPC, -EIO, VG_EDB...), after
 * which every record appended since the last successful commit has been dropped and
 * the files truncated back (segment.md 5.3): the caller treats all of them as not
 * durable. The next append starts afresh (if the truncation failed too, appends and
 * commits retry it first and fail with the original error until it succeeds). */
int store_append(struct store *st, int64_t ts, uint64_t seq, struct span rec) VG_MUST_USE;

/* Writes every partial block, fdatasyncs every segment written since the last commit
 * (and segments/ when a file was created), then updates the catalog rows of the touched
 * segments. Returns 0 when every record appended (successfully) before the call is
 * durable. On error (-errno, VG_EDB) nothing appended since the last successful commit
 * is durable: those records are dropped and every touched file is truncated back to its
 * committed size (retried by later calls if that fails too), so a later commit never
 * builds on unacknowledged bytes. The store stays usable. */
int store_commit(struct store *st) VG_MUST_USE;

/* Cuts (compresses, writes and commits) the open blocks whose first record is older
 * than block_max_age (segment.md 5.6), so the journal does not hold records longer than
 * that whatever the commit rate. Called periodically (vigild: every second). Returns 0
 * or an error as store_commit. */
int store_cut_aged(struct store *st) VG_MUST_USE;

/* Seals the open segments of partitions ending at or before ts (segment.md 5.5):
 * commits first when one of them holds uncommitted records, then closes them and marks
 * them sealed in the catalog. Called periodically. Returns 0 or an error as
 * store_commit / VG_EDB. */
int store_seal_before(struct store *st, int64_t ts) VG_MUST_USE;

/* Appends a CHECKPOINT entry to the seal sequence (segment.md 13.3) for each open
 * segment whose committed state changed since its last entry, so that what was
 * committed until now cannot be cut off unseen. Called periodically (vigild: every
 * minute). Returns how many, or -errno / VG_EDB. */
int store_checkpoint(struct store *st) VG_MUST_USE;

/* Commits (an error is logged), closes files, releases the lock and frees. Seals
 * nothing. Takes NULL. */
void store_close(struct store *st);

struct store_stats {
    uint64_t records;       /* appended since store_open */
    uint64_t blocks;        /* blocks written since store_open */
    uint64_t bytes_raw;     /* uncompressed record-stream bytes of those blocks */
    uint64_t bytes_stored;  /* bytes written to segment files (headers included) */
    uint64_t commits;       /* successful store_commit calls that had work */
    uint64_t segments_open; /* open segments the writer holds now (gauge) */
};
void store_get_stats(const struct store *st, struct store_stats *out);

/* Reading (vigil): read-only, any number of readers while vigild writes; a reader sees
 * everything committed. A reader belongs to one thread at a time. */
struct store_reader;

/* Opens dir/catalog.db read-only. *out is owned by the caller (store_reader_close).
 * Returns 0, -ENOENT (no store there), VG_EDB or VG_EFORMAT; eb says what failed. */
int store_reader_open(const char *dir, struct store_reader **out, struct errbuf *eb) VG_MUST_USE;

struct store_scan_stats {
    uint64_t segments;             /* segment files walked */
    uint64_t blocks_read;          /* blocks checked and decompressed */
    uint64_t blocks_skipped;       /* blocks skipped by their header's time range */
    uint64_t blocks_skipped_index; /* blocks whose index says no record has what the scan
                                      needs (store_scan_need), skipped before their data */
    uint64_t bytes_read;           /* stored bytes read from segment files */
    uint64_t bytes_decompressed;   /* uncompressed bytes produced */
    uint64_t records_decoded;      /* records of the blocks read, unpacked */
    uint64_t records_skipped;      /* records of the blocks read that were not unpacked:
                                      outside the window, or without what the scan needs */
    uint64_t records;              /* records passed to fn */
    uint64_t records_journal;      /* of those, read from the journal (segment.md 5.6.4):
                                      acknowledged, not yet in a committed block */
    /* Time per stage, ns (monotonic clock, per block): */
    uint64_t ns_catalog;    /* listing segments */
    uint64_t ns_io;         /* pread of headers, indexes and data */
    uint64_t ns_index;      /* checking and consulting indexes */
    uint64_t ns_check;      /* checksums (and chain hashes where checked) */
    uint64_t ns_decompress; /* lz4 */
    uint64_t ns_unpack;     /* walking record streams, unpacking records */
    uint64_t ns_deliver;    /* fn (the caller's filter and work) */
};

/* What every record a scan wants has, for skipping blocks by their index (segment.md
 * 3.2) before reading them. A scan given a need still calls fn for other records of
 * the blocks it reads: the need only has to hold for every record the caller keeps. */
struct store_need_value {
    const char *field; /* "host", "namespace", "pod", "container_id", "image", "user",
                          "src_ip", "rule" or "cve" (others are ignored) */
    struct span value; /* its exact value (src_ip: an address, in any spelling) */
};
struct store_need {
    const struct store_need_value *values; /* each holds */
    size_t nvalues;
    const struct span *texts; /* each occurs, ignoring ASCII case, inside one string of
                                 the record: a normalized string field or a string of raw
                                 (where a raw true/false counts as that word, and a raw
                                 infinite or NaN float as "inf" / "nan") */
    size_t ntexts;
};
/* The bit of a schema-v1 field ("ts", "received", "seq", the string fields, "dst_port",
 * "raw") for store_scan_plan_set_fields; 0 for another name. */
uint32_t store_field_bit(const char *name);

/* Called for each record; rec points into the reader's buffer, valid until fn returns.
 * A nonzero return stops the scan and is returned by store_scan. */
typedef int (*store_rec_fn)(void *arg, int64_t ts, uint64_t seq, struct span rec);

/* Calls fn for every record with since <= ts < until (INT64_MIN / INT64_MAX for open
 * ends), partitions in time order, within a partition segment by segment, within a
 * segment in file order. Partitions and blocks whose time range cannot overlap are
 * skipped without decompressing them. In an open segment the first incomplete block at
 * the end (in flight) ends that segment quietly; any other bad block (checksum, chain,
 * decompression, record stream) fails with VG_ECORRUPT, and store_reader_error() names
 * the segment file and offset. Returns 0, fn's nonzero value, VG_ECORRUPT, VG_EDB or
 * -errno. stats (may be NULL) is added to, not reset. Blocks on disk I/O. */
int store_scan(struct store_reader *r, int64_t since, int64_t until, store_rec_fn fn, void *arg,
               struct store_scan_stats *stats) VG_MUST_USE;

/* store_scan that also skips the blocks whose index (segment.md 3.2) rules out need
 * (NULL: none), reading only their header and index. Blocks it reads are checked by
 * checksum (segment.md 3.5); chains are vigil verify's (segment.md 4.1). Returns as
 * store_scan. */
int store_scan_need(struct store_reader *r, int64_t since, int64_t until,
                    const struct store_need *need, store_rec_fn fn, void *arg,
                    struct store_scan_stats *stats) VG_MUST_USE;

/* Calls fn for the records with seq >= seq_min (and some others: fn filters), of all
 * time: segments and blocks whose seq range (segment.md 3.1, 7) ends below seq_min are
 * skipped unread, so a scan from a cursor near the end reads only the tail. Records come
 * in the order of store_scan, which is not seq order. Returns as store_scan. */
int store_scan_from_seq(struct store_reader *r, uint64_t seq_min, store_rec_fn fn, void *arg,
                        struct store_scan_stats *stats) VG_MUST_USE;

/* Parallel scans. A plan lists the segments of [since, until) once, opens their files
 * (so what the writer replaces or deletes afterwards stays readable to the end of the
 * scan: every run of a plan reads the same records, segment.md 4.5) and compiles need;
 * then any number of readers, one per thread, each scan one stripe of its blocks
 * (store_scan_plan_run: the blocks whose position in their segment is stripe modulo
 * nstripes; the others are passed over unread, as blocks outside the window are), so
 * the stripes together see every record of the plan exactly once, as store_scan_need
 * would. A plan is read-only once made: threads may share it. store_scan_need is a plan
 * run as one stripe. */
struct store_scan_plan;
int store_scan_plan_make(struct store_reader *r, int64_t since, int64_t until,
                         const struct store_need *need, struct store_scan_plan **out,
                         struct store_scan_stats *stats) VG_MUST_USE;
/* Bytes of the plan's segment files (as the catalog last recorded them). */
uint64_t store_scan_plan_bytes(const struct store_scan_plan *p);
/* Blocks of the plan's segments (as the catalog last recorded them). */
uint64_t store_scan_plan_blocks(const struct store_scan_plan *p);
int store_scan_plan_run(struct store_reader *r, const struct store_scan_plan *p, unsigned stripe,
                        unsigned nstripes, store_rec_fn fn, void *arg,
                        struct store_scan_stats *stats) VG_MUST_USE;
/* How far the runs of a plan have got, for a progress line: each block of the plan is
 * counted once, by the stripe that owns it, when that stripe is done with it (read or
 * skipped). Atomic: any thread may read it while the stripes run. */
struct store_scan_progress {
    _Atomic uint64_t blocks_read;    /* decompressed */
    _Atomic uint64_t blocks_skipped; /* by time, seq range or index */
    _Atomic uint64_t bytes;          /* stored bytes of those blocks (of store_scan_plan_bytes) */
    _Atomic uint64_t records;        /* records of the blocks read */
};
/* Counts the runs of p into pr (borrowed; NULL: none). Call before the runs start. */
void store_scan_plan_set_progress(struct store_scan_plan *p, struct store_scan_progress *pr);
/* Projection: fields 0 (the default) gives fn whole records. Else fn reads only those
 * fields (store_field_bit): records of format v3 blocks (segment.md 3.8) come with only
 * those of them they have (a schema-v1 map of fewer keys), put back from those columns
 * alone; records stored verbatim come whole (and v1/v2 blocks' records too). Call
 * before the runs start. */
void store_scan_plan_set_fields(struct store_scan_plan *p, uint32_t fields);
/* Narrows p to the records with seq_min <= seq <= seq_max: segments and blocks whose seq
 * range (segment.md 3.1, 7) lies outside are passed over unread (fn still filters the
 * records of the blocks read). Call before the runs start. */
void store_scan_plan_seq_range(struct store_scan_plan *p, uint64_t seq_min, uint64_t seq_max);
/* Leaves segment_id out of the plan (a damaged segment the caller chose to skip).
 * Returns 1, or 0 when the plan does not hold it. */
int store_scan_plan_skip(struct store_scan_plan *p, uint64_t segment_id);
void store_scan_plan_free(struct store_scan_plan *p); /* takes NULL */
/* Adds b's counters and times to a's. */
void store_scan_stats_add(struct store_scan_stats *a, const struct store_scan_stats *b);

/* The highest seq the catalog records as committed, 0 for none (segment.md 5.2: a
 * commit updates the rows only once its data is synced, in one transaction), so every
 * stored record up to it can be read now; a record past it may still be in flight or
 * be cut by a failed commit. For followers (`vigil tail`). Returns 0 or VG_EDB (r's
 * error says what). Blocks on SQLite. */
int store_reader_committed_seq(struct store_reader *r, uint64_t *out) VG_MUST_USE;

/* The message of the last failure ("" when none). Owned by r. */
const char *store_reader_error(const struct store_reader *r);
/* The segment the last failed scan could not read (a corrupt block, a file that cannot
 * be opened or read), 0 when its failure was not one segment's (the catalog, fn). */
uint64_t store_reader_failed_segment(const struct store_reader *r);

void store_reader_close(struct store_reader *r); /* takes NULL */

/* What `vigil verify` checks beyond the chains and rows (segment.md 11). */
struct store_verify_opts {
    const char *trusted_key; /* NULL, or a PEM public key file every signature must be
                                made by (otherwise the keys the catalog and the seal
                                sequence record) */
    const char *head;        /* NULL, or the hex hash of a seal sequence entry that must be
                                in the sequence (a head noted earlier: segment.md 13.6) */
};
struct store_verify_summary {
    unsigned segments; /* segment files and rows checked */
    unsigned ok;
    unsigned failed;
    unsigned deleted;     /* segments deleted by policy (retention; recorded in the catalog) */
    unsigned replaced;    /* segments replaced by their compacted copy (segment.md 12) */
    unsigned signed_ok;   /* sealed segments whose signature checked out */
    uint64_t records;     /* records in the segments that verified */
    char key_id[65];      /* the signing key of the last signature checked ("" none) */
    uint64_t seq_entries; /* entries in the seal sequence */
    char seq_head[65];    /* the hash of its newest entry, hex ("" none) */
};

/* For `vigil verify` (segment.md 11): walks every segment of the catalog and every
 * segment file, recomputes each block's checksum, decompresses it, checks its record
 * stream and the whole chain, checks the catalog rows agree with the files (for open
 * segments: up to the committed size), the seal signatures (against o->trusted_key when
 * given; o may be NULL) and the deletions recorded by policy. The report (may be NULL)
 * gets one line per segment ("<file>: ok ..." or "<file>: FAILED at offset N: block B:
 * reason"), one per deleted segment, catalog-level findings, notes, and a summary line;
 * sum (may be NULL) the figures. Read-only; safe while vigild writes. Returns 0 when
 * everything verifies, VG_ECORRUPT when something does not, or another error (eb says
 * what) when the store cannot be read at all. */
int store_verify(const char *dir, const struct store_verify_opts *o, FILE *report,
                 struct store_verify_summary *sum, struct errbuf *eb) VG_MUST_USE;

/* ---- segment images, for export bundles (schemas/bundle.md) ---- */

/* What a segment image holds: its file header's identity and the chain walked. */
struct store_image {
    uint64_t segment_id;
    int64_t part_start;
    int64_t part_end;
    bool compacted;
    uint64_t bytes;  /* the image's length: header and whole blocks */
    uint64_t blocks; /* and what they hold */
    uint64_t count;
    int64_t ts_min; /* meaningful when count > 0 */
    int64_t ts_max;
    uint64_t seq_min;
    uint64_t seq_max;
    uint8_t chain_head[32]; /* the last block's hash, or the genesis hash (segment.md 3.6) */
};

/* Opens the file of segment id, of the partition starting at part_start, in store dir
 * (segment.md 1.3) read-only. *fd (caller closes) and *size (the file's) on success;
 * name (64 bytes) gets the file name either way. Returns 0 or -errno with eb. */
int store_image_open(const char *dir, int64_t part_start, uint64_t id, int *fd, uint64_t *size,
                     char name[64], struct errbuf *eb) VG_MUST_USE;

/* Walks the first size bytes of fd as a segment image: the file header, then whole
 * blocks to exactly size, each checked as vigil verify checks them (segment.md 2, 3.5-3.7:
 * checksum, chain hash from the genesis hash, decompression, record stream; a compacted
 * segment's records digest, 12.2), calling fn (may be NULL) for every record in file
 * order. *img is filled on success. Returns 0, fn's nonzero value, VG_ECORRUPT with eb
 * ("offset O: block B: why", or "file header: why"), or -errno. Blocks on I/O. */
int store_image_walk(int fd, uint64_t size, store_rec_fn fn, void *arg, struct store_image *img,
                     struct errbuf *eb) VG_MUST_USE;

/* ---- compaction (segment.md 12) ---- */

enum store_codec { STORE_CODEC_ZSTD, STORE_CODEC_LZ4HC };

struct store_compact_opts {
    enum store_codec codec; /* of the new blocks: zstd (default) or LZ4HC */
    int level;              /* 0: zstd 6, LZ4HC 9 */
    size_t block_bytes;     /* records per new block, as store_opts.block_bytes; 0: 4 MiB */
    uint64_t max_segments;  /* 0: every sealed segment not compacted yet */
};

struct store_compact_result {
    uint64_t segments;     /* compacted */
    uint64_t skipped;      /* left as they were: they do not verify (logged) */
    uint64_t records;      /* in the compacted segments */
    uint64_t bytes_before; /* their files' bytes before, and after */
    uint64_t bytes_after;
};

/* Rewrites sealed segments (oldest first) as compacted ones (segment.md 12): large
 * blocks, zstd or LZ4HC, re-indexed, chained and signed, each naming the segment it
 * replaces and the digest of their records, which `vigil verify` checks; the replaced
 * segment becomes a deletion (reason "compacted") and its file goes. A segment whose
 * chain, size or seal signature does not verify is left as it is (logged, counted).
 * On the writer's thread; blocks on disk I/O and CPU. *res gets the figures. Returns 0,
 * or an I/O or catalog error (eb says what; what was compacted before stays). */
int store_compact(struct store *st, const struct store_compact_opts *o,
                  struct store_compact_result *res, struct errbuf *eb) VG_MUST_USE;

/* Compaction in steps, for a collector that keeps writing meanwhile (segment.md 12.4):
 * the writer's thread picks a job, any other thread builds it (the heavy part: reading
 * the old segment, writing the new one under its temporary name), and the writer's
 * thread installs it (one transaction, rename, removal; fast). store_compact is these
 * three in a row. */
struct store_compact_job;
/* Writer's thread. The oldest sealed segment, sealed before sealed_before (ns), not
 * compacted yet, whose seal verifies (one that does not is logged and counted in res
 * as skipped): returns 1 with *out (owned by the caller until installed or freed), 0
 * when there is none, or an error (eb). */
int store_compact_pick(struct store *st, const struct store_compact_opts *o, int64_t sealed_before,
                       struct store_compact_job **out, struct store_compact_result *res,
                       struct errbuf *eb) VG_MUST_USE;
/* Any one thread, without the store. Returns 1 (built), 0 (the old segment does not
 * verify: left as it is) or an error, as install will report. */
int store_compact_build(struct store_compact_job *j);
/* Makes a running build stop soon (with -ECANCELED); any thread. */
void store_compact_job_cancel(struct store_compact_job *j);
/* The file name of the segment the job replaces, and its bytes (the new file takes at
 * most about as many while both exist). */
const char *store_compact_job_segment(const struct store_compact_job *j);
uint64_t store_compact_job_bytes(const struct store_compact_job *j);
/* Writer's thread, after the build returned. Installs a built job and returns 1; drops
 * one whose segment changed or went meanwhile (retention) and returns 0; returns 0 for
 * one left as it is (logged, res->skipped), or the build's or its own error (eb). Frees
 * j in every case. */
int store_compact_install(struct store *st, struct store_compact_job *j,
                          struct store_compact_result *res, struct errbuf *eb) VG_MUST_USE;
/* Frees a job not installed (its temporary file removed); takes NULL. */
void store_compact_job_free(struct store_compact_job *j);

/* ---- integrity, retention, legal holds (segment.md 8-10) ---- */

/* Retention policy (store.retention); 0 disables a limit. */
struct store_retention {
    int64_t max_age_ns;      /* partitions that ended, and whose newest records were
                                received, longer ago than this go */
    uint64_t max_size_bytes; /* while the segments take more, the oldest partitions go */
};

/* One segment retention deleted (for logs and the source=vigil event). */
struct store_deleted {
    uint64_t segment_id;
    char file[64];
    int64_t part_start;
    int64_t part_end;
    int64_t ts_min; /* meaningful when count > 0 */
    int64_t ts_max;
    uint64_t count;
    uint64_t bytes;
    const char *reason; /* "max_age" or "max_size" (static) */
};

struct store_retention_result {
    struct store_deleted *deleted; /* owned by the caller (free) */
    size_t ndeleted;
    unsigned held;        /* partitions retention would delete but a hold protects */
    unsigned busy;        /* ... but the writer has open (never deleted) */
    uint64_t bytes_total; /* segment bytes left in the store */
    bool over_size;       /* still over max_size (held or open partitions) */
};

/* Runs retention once (the store thread; blocks on SQLite and unlink): whole
 * partitions, oldest first (by the later of their end and when their newest records
 * were received: segment.md 9), never one with an open or in-memory segment, never one
 * overlapping an active hold. In one catalog transaction each deleted segment gets a
 * deletions row (its head, counts, time range, signature, the reason and the time)
 * and loses its segments row; then the files are removed (a removal that fails is
 * retried by the next run and by recovery). Also removes files of earlier deletions
 * still pending. now_ns is the clock (tests pass their own). *res (zeroed first) says
 * what happened. Returns the number of segments deleted, or VG_EDB / -errno. */
int store_retention_run(struct store *st, const struct store_retention *pol, int64_t now_ns,
                        struct store_retention_result *res) VG_MUST_USE;

/* A legal hold (segment.md 10): retention keeps every partition overlapping
 * [since, until) while the hold is active. */
struct store_hold {
    int64_t id;
    int64_t since; /* event time, ns; since < until */
    int64_t until;
    char *filter; /* NULL: everything in the range (the filter is recorded; a
                     partition is kept whole whatever the filter) */
    char *reason;
    char *created_by;
    int64_t created;
    int64_t released;  /* 0 while active */
    char *released_by; /* NULL while active */
    char *release_reason;
};

/* These open dir/catalog.db read-write beside a running vigild (SQLite WAL; waits up
 * to 10 s for its lock) and block. They fail with -ENOENT when there is no store. */
/* Adds a hold; *id gets its number. Returns 0, -ENOENT, -EINVAL (since >= until, no
 * reason) or VG_EDB with eb. */
int store_hold_add(const char *dir, const struct store_hold *h, int64_t *id,
                   struct errbuf *eb) VG_MUST_USE;
/* Every hold, active and released, by id: *out is a new array (store_holds_free). */
int store_hold_list(const char *dir, struct store_hold **out, size_t *n,
                    struct errbuf *eb) VG_MUST_USE;
/* Marks hold id released (the row stays: who, when, why). Returns 0, -ENOENT (no such
 * hold), -EALREADY (released before) or VG_EDB, with eb. */
int store_hold_release(const char *dir, int64_t id, const char *who, const char *reason,
                       int64_t now_ns, struct errbuf *eb) VG_MUST_USE;
void store_holds_free(struct store_hold *h, size_t n); /* takes NULL */

/* Free bytes for an unprivileged writer on the file system holding dir (statvfs
 * f_bavail * f_frsize). Returns 0 or -errno. */
int store_free_bytes(const char *dir, uint64_t *out) VG_MUST_USE;

#endif
