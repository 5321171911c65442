/* query/scan.h: the shared read path of search, timeline and the demo: scan the store
 * over a time window, decode each record, apply a filter, and keep the matches in time
 * order (bounded by a limit: the earliest `limit` matches by (ts, seq)). */
#ifndef VG_QUERY_SCAN_H
#define VG_QUERY_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/errbuf.h"
#include "query/filter.h"
#include "schemas/record.h"
#include "store/store.h"

struct scan_hit {
    int64_t ts;
    uint64_t seq;
    uint8_t *bytes; /* the encoded record, owned */
    size_t len;
};

struct scan_result {
    struct scan_hit *hits; /* sorted by (ts, seq) after scan_run */
    size_t n, cap;
    uint64_t matched; /* all matches, including those past the limit */
    struct store_scan_stats stats;
    double seconds;
    size_t need_values; /* what the filter told the block index (filter_needs) */
    size_t need_texts;
    uint64_t ns_sort; /* sorting the hits */
    unsigned threads; /* stripes scanned at once (scan_par_threads) */
};

/* Scans dir over [since, until) for records matching f (NULL: all). limit 0 = no limit.
 * Blocks whose index rules out what f needs (filter_needs) are skipped unread. When a
 * segment goes while the scan runs (compaction replaced it, retention deleted it), the
 * scan starts over (up to 3 times).
 * Returns 0, or negative with eb set (a corrupt block is an error, never skipped). */
int scan_run(const char *dir, int64_t since, int64_t until, const struct filter *f, uint64_t limit,
             bool progress, struct scan_result *res, struct errbuf *eb);
void scan_result_release(struct scan_result *res);

/* What every record f (NULL: none) matches has, for the block index and the record
 * prefilter (filter_needs): sn->need points into sn, which must outlive the scan. */
struct scan_need {
    struct filter_needs fn;
    struct store_need_value vals[FILTER_MAX_TERMS];
    struct store_need need;
};
void scan_need_init(struct scan_need *sn, const struct filter *f);

/* Decodes one stored record as schema v1 (rec_decode). Returns 0, or VG_ECORRUPT with
 * eb naming the record's seq. */
int scan_rec_decode(struct span bytes, uint64_t seq, struct rec *r, struct errbuf *eb);

/* Parallel scans (store_scan_plan_*): the plan of [since, until) and need is made once;
 * scan_par_run then runs fn over scan_par_threads() stripes of its blocks at once, one
 * thread each, stripe i calling fn with args[i] (so each stripe keeps its own state,
 * merged by the caller). Small scans (under 8 MiB stored) run as one stripe on the
 * calling thread; otherwise one stripe per online CPU (at most 8), or
 * VIGIL_SCAN_THREADS. Every record of the plan reaches exactly one stripe. */
struct scan_par;
int scan_par_open(const char *dir, int64_t since, int64_t until, const struct store_need *need,
                  struct scan_par **out, struct store_scan_stats *stats, struct errbuf *eb);
unsigned scan_par_threads(const struct scan_par *p);
/* Returns 0 or the first failing stripe's error (eb says what; fn's positive values
 * stop its stripe only). */
int scan_par_run(struct scan_par *p, store_rec_fn fn, void *const *args,
                 struct store_scan_stats *stats, struct errbuf *eb);
void scan_par_close(struct scan_par *p);

#endif
