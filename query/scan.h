/* query/scan.h: the shared read path of search, timeline and the demo: scan the store
 * over a time window, decode each record, apply a filter, and keep the matches in time
 * order (bounded by a limit: the earliest `limit` matches by (ts, seq)). */
#ifndef VG_QUERY_SCAN_H
#define VG_QUERY_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/errbuf.h"
#include "schemas/record.h"
#include "store/store.h"

struct filter;

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
};

/* Scans dir over [since, until) for records matching f (NULL: all). limit 0 = no limit.
 * Blocks whose index rules out what f needs (filter_needs) are skipped unread.
 * Returns 0, or negative with eb set (a corrupt block is an error, never skipped). */
int scan_run(const char *dir, int64_t since, int64_t until, const struct filter *f, uint64_t limit,
             bool progress, struct scan_result *res, struct errbuf *eb);
void scan_result_release(struct scan_result *res);

#endif
