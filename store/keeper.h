/* store/keeper.h: the store as the collector's writer thread keeps it. Group commits go
 * through it under the free-space policy, and between them it keeps house: it seals
 * ended partitions, checkpoints open ones into the seal sequence, runs retention (at start, then
 * every store.retention.interval) and measures the store's bytes on disk, checks the free space of
 * the store's file system and schedules compaction of sealed segments on a thread of its own, at
 * low CPU priority (segment.md 12.4).
 *
 * Below store.free_reserve the keeper refuses ordinary records (store_keeper_refusing:
 * the caller appends only its evidence, acknowledges nothing else, and agents retry)
 * and resumes by itself when space returns. What the collector must record (disk full,
 * space back, a deletion) waits as notices for the loop thread, which takes them with
 * store_keeper_take_notices; the keeper never calls into the collector, except through
 * the wake callback it was given.
 *
 * Threads: the writer thread (the one that owns the struct store) calls refusing,
 * append, commit and run; store_keeper_take_notices and store_keeper_gauges may be
 * called from any thread; the compaction thread is the keeper's own. */
#ifndef VG_STORE_KEEPER_H
#define VG_STORE_KEEPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errbuf.h"
#include "common/span.h"
#include "store/store.h"

struct store_keeper;

/* The housekeeping policy. Zero fields take the defaults. */
struct store_keeper_opts {
    const char *free_dir;             /* the file system checked for free space (statvfs);
                                         NULL: never checked, nothing refused */
    uint64_t free_reserve_bytes;      /* store.free_reserve; 0: never refuse */
    struct store_retention retention; /* store.retention; zero limits: none */
    int64_t seal_every_ns;            /* 10 s */
    int64_t seal_grace_ns;            /* partitions sealed this long after they end: 60 s */
    int64_t retention_every_ns;       /* 60 s */
    int64_t checkpoint_every_ns;      /* open segments into the seal sequence: 60 s */
    int64_t cut_every_ns;             /* blocks older than block_max_age cut: 1 s */
    int64_t disk_check_every_ns;      /* 1 s */
    bool compact;                     /* compact sealed segments (store.compaction) */
    struct store_compact_opts compact_opts;
    int64_t compact_every_ns; /* looking for a segment to compact when there was none: 10 s */
};

enum store_notice_kind {
    STORE_NOTICE_DISK_FULL,    /* free space went below the reserve: records refused */
    STORE_NOTICE_DISK_OK,      /* it came back: records taken again */
    STORE_NOTICE_DELETED,      /* retention deleted a segment (del) */
    STORE_NOTICE_DELETED_MORE, /* count more deletions than the notice queue holds */
};

/* What the keeper tells the collector, in the order it happened. */
struct store_notice {
    enum store_notice_kind kind;
    uint64_t free_bytes;      /* DISK_*: free bytes at the check */
    uint64_t reserve_bytes;   /* DISK_*: store.free_reserve */
    int64_t duration_ns;      /* DISK_OK: how long records were refused */
    uint64_t refused;         /* DISK_OK: records refused meanwhile */
    uint64_t count;           /* DELETED_MORE */
    struct store_deleted del; /* DELETED */
};

/* Notices held at most; past them deletions are counted (one DELETED_MORE). */
#define STORE_NOTICES_MAX 256

/* Figures for the collector's metrics, as of the keeper's last step. */
struct store_keeper_gauges {
    uint64_t free_bytes;                   /* at the last check */
    unsigned held;                         /* partitions retention keeps for a hold */
    uint64_t retention_runs;               /* retention passes run */
    uint64_t disk_bytes;                   /* what the store's files take on disk, measured
                                              at each retention interval (free_dir set) */
    struct store_compact_result compacted; /* totals since the start */
    uint64_t compact_failures;
    struct store_stats stats; /* the writer's, as of the last commit or step */
};

/* Takes ownership of st (the writer thread uses it through the keeper from now on) and
 * starts the compaction thread when o->compact (without it, when the thread cannot
 * start: logged). o is copied. Returns 0 and *out (store_keeper_free); cannot fail
 * otherwise. */
int store_keeper_new(struct store *st, const struct store_keeper_opts *o, struct store_keeper **out,
                     struct errbuf *eb) VG_MUST_USE;

/* fn(arg) is called (from the compaction thread) when a compaction was built and the
 * writer thread should call store_keeper_run soon. Set before the writer thread starts. */
void store_keeper_set_wake(struct store_keeper *k, void (*fn)(void *arg), void *arg);

/* Writer thread. True while the free space is below the reserve (or a write found no
 * room): only evidence is to be appended; the other records of the batch are refused. */
bool store_keeper_refusing(const struct store_keeper *k);

/* Writer thread: store_append and store_commit (same results). A write that finds no
 * room (-ENOSPC, -EDQUOT) makes the next run check the disk at once. refused: the
 * records of this batch the caller did not append because the keeper was refusing;
 * they count towards the disk-full episode's total (STORE_NOTICE_DISK_OK). */
int store_keeper_append(struct store_keeper *k, int64_t ts, uint64_t seq,
                        struct span rec) VG_MUST_USE;
int store_keeper_commit(struct store_keeper *k, size_t refused) VG_MUST_USE;

/* Writer thread: whatever housekeeping is due at now_mono (vg_mono_ns): the free-space
 * check, sealing, retention, installing a built compaction and picking the next one.
 * Blocks on disk I/O and SQLite. Returns when (monotonic ns) the next thing is due; sets
 * *news when there are notices to take or the gauges moved. */
int64_t store_keeper_run(struct store_keeper *k, int64_t now_mono, bool *news);

/* Any thread: moves up to max notices, oldest first, into out; *more gets the number of
 * deletions that did not fit (reported as one DELETED_MORE by the caller). Returns how
 * many were moved. */
size_t store_keeper_take_notices(struct store_keeper *k, struct store_notice *out, size_t max,
                                 uint64_t *more);

/* Any thread. */
void store_keeper_gauges(struct store_keeper *k, struct store_keeper_gauges *out);

/* After the writer thread stopped using it: cancels a compaction under way (its
 * temporary file goes), joins the compaction thread, closes the store (a final commit)
 * and frees. Takes NULL. Blocks. */
void store_keeper_free(struct store_keeper *k);

#endif
