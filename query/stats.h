/* query/stats.h: what `vigil stats` groups by and computes (query/stats.c), parsed from
 * the command line; exposed for its unit tests.
 *
 *   --by KEY[,KEY...]   a normalized field (pod, src_ip, dst_port...), raw.<path> (its
 *                       first value: a string as it is, anything else as JSON text), or a
 *                       time bucket FIELD:DURATION on ts or received (ts:1h, ts:15m,
 *                       ts:90s: the start of the bucket, buckets aligned on the Unix epoch)
 *   --agg AGG[,AGG...]  count (events), dc(FIELD) (distinct values, raw.<path> too),
 *                       min(FIELD) and max(FIELD) on ts, received, seq or dst_port
 *                       (min(ts)/max(ts): first and last seen); also written dc:FIELD */
#ifndef VG_QUERY_STATS_H
#define VG_QUERY_STATS_H

#include <stdint.h>

#include "common/errbuf.h"
#include "query/output.h"

#define STATS_MAX_KEYS 8
#define STATS_MAX_AGGS 8

struct stats_key {
    struct out_field f;                 /* the field (raw.<path> too) */
    int64_t bucket_ns;                  /* > 0: a time bucket of that width on ts or received */
    char name[OUT_FIELD_NAME_MAX + 24]; /* its column: "pod", "raw.user.name", "ts" */
};

enum stats_agg_kind { STATS_COUNT, STATS_DC, STATS_MIN, STATS_MAX };

struct stats_agg {
    enum stats_agg_kind kind;
    struct out_field f;                /* DC, MIN, MAX: of this field */
    char name[OUT_FIELD_NAME_MAX + 8]; /* its column: "count", "dc(user)", "min(ts)" */
};

/* Parses one --by key / one --agg item. Returns 0, or VG_EPARSE with eb saying why. */
int stats_key_parse(struct span s, struct stats_key *out, struct errbuf *eb);
int stats_agg_parse(struct span s, struct stats_agg *out, struct errbuf *eb);

/* Splits "a,b(c),d" at the commas outside parentheses; calls fn on each part. Returns 0
 * or fn's first error. */
int stats_split(const char *list, int (*fn)(struct span part, void *arg), void *arg);

/* The start of ts's bucket of width ns (aligned on the epoch; floor for times before). */
int64_t stats_bucket(int64_t ts, int64_t width_ns);

#endif
