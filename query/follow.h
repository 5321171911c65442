/* query/follow.h: following the store as vigild commits to it, read-only and without a
 * connection to vigild (`vigil tail`; `vigil drill` reuses it). A follower's position is
 * the last seq it delivered; each poll reads the catalog's committed horizon
 * (store_reader_committed_seq) and delivers the records past the position up to it, in
 * seq order (the order vigild stored them), each once: segments sealed, compacted or
 * deleted between polls change nothing, since a record keeps its seq wherever it is
 * stored and the position only moves forward. A poll reads only the blocks whose seq
 * range reaches past the position (store_scan_from_seq).
 *
 * One thread uses a follower. */
#ifndef VG_QUERY_FOLLOW_H
#define VG_QUERY_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "common/errbuf.h"
#include "store/store.h"

/* Records one poll delivers at most (the rest wait for the next poll), so memory stays
 * bounded however far behind the position is. */
#define FOLLOW_BATCH 65536

struct follow;

/* Follows the store in dir from position (the last seq already seen: records with a
 * greater seq are delivered). *out is the caller's (follow_close). Returns 0, -ENOENT
 * (no store), VG_EDB or VG_EFORMAT with eb set. */
int follow_open(const char *dir, uint64_t position, struct follow **out,
                struct errbuf *eb) VG_MUST_USE;

/* The store's committed horizon now (store_reader_committed_seq): a position to start
 * from that delivers only what is committed later. Returns 0 or VG_EDB with eb. */
int follow_committed(struct follow *fl, uint64_t *seq, struct errbuf *eb) VG_MUST_USE;

/* Delivers to fn, in ascending seq order, the committed records past the position (at
 * most FOLLOW_BATCH), then moves the position to the last seq it covered. fn's bytes are
 * valid until it returns; a nonzero return stops the poll and is returned (the position
 * then stays on the last record fn took). Returns the number of records delivered, fn's
 * value, or a negative error (eb says what; the position is unchanged). Blocks on disk
 * I/O. */
int follow_poll(struct follow *fl, store_rec_fn fn, void *arg, struct errbuf *eb) VG_MUST_USE;

/* The last seq delivered (or covered: seqs a failed commit never stored are skipped). */
uint64_t follow_position(const struct follow *fl);

/* Catches SIGINT and SIGTERM (follow_stopped turns true; a sleeping follow_wait returns
 * at once) and ignores SIGPIPE (a write to a closed pipe fails with EPIPE instead), for
 * a command that follows until it is told to stop. */
void follow_catch_signals(void);
bool follow_stopped(void);

/* Sleeps ms milliseconds, or less when a caught signal arrives. */
void follow_wait(int ms);

void follow_close(struct follow *fl); /* takes NULL */

#endif
