/* rules/engine_int.h: the evaluation engine's state, shared by rules_engine.c (records,
 * slots, detections, alerts) and rules_corr.c (correlation windows, checkpoints). Owned by
 * one thread at a time. */
#ifndef VG_RULES_ENGINE_INT_H
#define VG_RULES_ENGINE_INT_H

#include "rules/rules_int.h"

#define RULES_NO_SEQ      UINT64_MAX
#define RULES_RAW_INDEXED 16 /* maps indexed per record */

/* A bump allocator for one record's computed text (lower-case copies, numbers); reset per
 * record, keeping its first block. Bounded by max: past it, values are dropped (counted). */
struct arena_blk {
    struct arena_blk *next;
    size_t len, cap;
    uint8_t data[];
};

struct arena {
    struct arena_blk *head; /* the block being filled; older ones follow */
    size_t total, max;
};

struct slot_cache {
    uint32_t gen;   /* the record it was resolved for */
    bool present;   /* some target was present (even with a null value) */
    uint32_t first; /* values: engine->vals[first .. first + n) */
    uint32_t n;
};

/* One event remembered by a correlation group. */
struct centry {
    int64_t ts;
    uint64_t seq; /* RULES_NO_SEQ when the record had none */
    uint64_t eid; /* the engine's own event counter: ties and identity */
    uint64_t vh;  /* value_count: hash of the counted value */
    uint32_t ref; /* which referenced rule matched */
};

struct cgroup {
    struct cgroup *hnext;
    uint64_t hash;
    uint8_t *key; /* the group-by values: per value u16 length (LE) + bytes */
    uint32_t keylen;
    size_t hidx;        /* position in the heap */
    int64_t deadline;   /* event time at which the group expires or its window closes */
    int64_t start;      /* bounded conditions: the open window's start */
    struct centry *ent; /* sorted by (ts, eid) */
    uint32_t n, cap;
};

struct cstate {
    struct cgroup **tab; /* hash table, chained, tabcap a power of two */
    size_t tabcap;
    size_t ngroups;
    struct cgroup **heap; /* min-heap by deadline */
    size_t nheap, capheap;
};

struct rules_engine {
    const struct ruleset *rs;
    struct rules_limits lim;
    uint8_t hkey[16]; /* SipHash key of the group tables (random per engine) */

    /* per record */
    const struct rec *cur;
    uint32_t gen;
    struct slot_cache *sc;
    struct sval *vals;
    size_t nvals, capvals;
    /* maps of the raw event indexed for this record (the top level and the maps one
     * level down that paths go through: Falco's output_fields, audit's objectRef) */
    struct span *rawkeys; /* key, value, key, value... of every indexed map */
    size_t nrawkeys, caprawkeys;
    struct rawidx {
        const uint8_t *map; /* the map's first byte */
        uint32_t first, n;  /* its pairs in rawkeys */
        bool ok;            /* well-formed (else paths walk it with raw_path_walk) */
    } rawidx[RULES_RAW_INDEXED];
    size_t nrawidx;
    uint32_t rawgen; /* gen the indexes were built for */
    struct arena arena;
    uint64_t *litbits; /* per slot (lit_index.bitoff): which literals the record matches */
    uint32_t *litgen;  /* per slot: gen the bits are for */
    uint8_t *selmemo;  /* per selection of the rule being evaluated: 0 ?, 1 false, 2 true */
    uint32_t *lsgen;   /* per logsource: gen when lsval was computed */
    bool *lsval;

    /* event time */
    int64_t wm; /* the newest effective event time seen */
    bool has_wm;
    uint64_t eid;

    /* correlations */
    struct cstate *cs;     /* per correlation (ruleset corr index) */
    uint64_t *vcount_keys; /* value_count scratch: a small open-addressing counter */
    uint32_t *vcount_vals;
    size_t vcount_cap;

    /* alerts of the current call */
    bool emit_all; /* tests: rules that only feed correlations alert too */
    rules_alert_fn emit;
    void *arg;
    int emit_rc;
    int nalerts;

    struct rules_stats st;   /* engine totals: events, values_truncated */
    struct rules_stats *rst; /* per rule */
};

/* rules_engine.c */
void rules__emit(struct rules_engine *e, const struct rules_alert *a);
uint64_t rules__value_hash(struct span v);

/* rules_corr.c */
void rules__corr_init(struct rules_engine *e);
void rules__corr_release(struct rules_engine *e);
/* A match of reference `ref` of correlation rule `rule` with the group-by values gvals
 * (the correlation's ngroup of them), the counted value (value_count) and the event's
 * time, seq and eid. May fire (and feed parents). */
void rules__corr_feed(struct rules_engine *e, size_t rule, size_t ref, const struct span *gvals,
                      uint64_t vh, int64_t ts, uint64_t seq);
/* Expires groups and closes windows whose deadline is before the watermark. */
void rules__corr_expire(struct rules_engine *e);
void rules__corr_flush(struct rules_engine *e);

#endif
