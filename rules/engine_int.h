/* rules/engine_int.h: the evaluation engine's state, shared by rules_engine.c (records,
 * slots, detections), rules_time.c (the clocks: rules/TIME.md), rules_corr.c
 * (correlation windows), rules_incident.c (the alert life cycle: schemas/alert.md) and
 * rules_ckpt.c (checkpoints). Owned by one thread at a time. */
#ifndef VG_RULES_ENGINE_INT_H
#define VG_RULES_ENGINE_INT_H

#include <stddef.h>

#include "rules/rules_int.h"

#define RULES_NO_SEQ      UINT64_MAX
#define RULES_RAW_INDEXED 16 /* maps indexed per record */
/* Windows close and incidents resolve at the first record (or advance) whose collector
 * clock enters a new step, against the step's start: the same decisions at the same
 * places of the stream live and in a hunt that sees only part of it (rules/TIME.md). */
#define RULES_EXPIRE_STEP_NS  (10 * 1000 * 1000LL)
#define RULES_MAX_VALUES_KEPT 4096 /* distinct values an incident counts (value_count) */

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

/* Seqs listed the way alert records list them: the first `half`, then the last `half`
 * (a ring), with the total added. */
struct seqlist {
    uint64_t *buf; /* 2 * half: the first half, then the ring */
    uint32_t half;
    uint32_t nfirst, nlast, pos;
    uint64_t total;
};
void rules__seqs_add(struct seqlist *l, uint64_t seq);
/* Writes the listed seqs in the order they were added; returns how many. */
size_t rules__seqs_out(const struct seqlist *l, uint64_t *out);

/* The triggering seqs of a referenced correlation's match (a parent's entry). */
struct subseqs {
    uint64_t total; /* triggering events of that match */
    uint32_t n;     /* listed: the first and the last half of max_alert_events */
    uint64_t seq[];
};

/* One event remembered by a correlation group. */
struct centry {
    int64_t ts;          /* effective event time (rules/TIME.md) */
    int64_t r;           /* collector time it arrived */
    uint64_t seq;        /* RULES_NO_SEQ when the record had none */
    uint64_t eid;        /* the engine's own event counter: ties and identity */
    uint64_t vh;         /* value_count: hash of the counted value */
    uint32_t ref;        /* which referenced rule matched */
    uint32_t reported;   /* in a match already given to the incident */
    struct subseqs *sub; /* a referenced correlation's match: its seqs (owned); NULL */
};

/* ---- the engine's tables (rules_key.c) ----
 * Correlation groups, incidents and sources are keyed nodes in a chained hash table
 * (struct knode, the first member of each, so a node is its object); groups and
 * incidents also wait in a min-heap by deadline (struct dnode, RULES_OWNER finds its
 * object). */
struct knode {
    struct knode *hnext;
    uint64_t hash;
    uint8_t *key;
    uint32_t keylen;
};

struct ktable {
    struct knode **tab; /* cap a power of two */
    size_t cap, n;
};

struct dnode {
    size_t hidx;      /* position in the heap */
    int64_t deadline; /* collector time */
};

struct dheap {
    struct dnode **v;
    size_t n, cap;
};

#define RULES_OWNER(node, type, member) ((type *)(void *)((char *)(node)-offsetof(type, member)))

/* Gives x a copy of key[0..n) and its hash h (rules__siphash under the engine's key). */
void rules__knode_set(struct knode *x, uint64_t h, const uint8_t *key, size_t n);
void rules__ktable_insert(struct ktable *t, struct knode *x);
void rules__ktable_remove(struct ktable *t, struct knode *x);
/* The next node after `from` (NULL: the first) with that hash and key, or NULL. */
struct knode *rules__ktable_find(const struct ktable *t, const struct knode *from, uint64_t h,
                                 const uint8_t *key, size_t n);
void rules__ktable_release(struct ktable *t); /* the buckets; the nodes are the caller's */
void rules__dheap_push(struct dheap *h, struct dnode *x);
void rules__dheap_remove(struct dheap *h, struct dnode *x);
/* Restores the order after x->deadline changed. */
void rules__dheap_fix(struct dheap *h, struct dnode *x);
void rules__dheap_release(struct dheap *h); /* the array; the nodes are the caller's */

struct cgroup {
    struct knode kn;    /* key: the group-by values, per value u16 length (LE) + bytes */
    struct dnode dn;    /* deadline: collector time at which it expires (monotone
                         * conditions) or its window closes (bounded ones) */
    int64_t start;      /* bounded conditions: the open window's start (event time) */
    int64_t start_r;    /* ... and when its first event arrived (collector time) */
    int64_t last_r;     /* collector time of its newest feed */
    int64_t lo_off;     /* the least and greatest (ts - received) of its feeds: how far */
    int64_t hi_off;     /* apart its feeders' clocks are (entries kept that much longer) */
    char *drill;        /* the fire drill run id its events carried first, or NULL */
    struct centry *ent; /* sorted by (ts, eid) */
    uint32_t n, cap;
};

struct cstate { /* per correlation */
    struct ktable t;
    struct dheap heap;
};

/* The group at heap position i (0: the next to expire). */
static inline struct cgroup *rules__group_at(const struct cstate *cs, size_t i)
{
    return RULES_OWNER(cs->heap.v[i], struct cgroup, dn);
}

/* A source of events for the clock (rules/TIME.md "Sources"): agent and host. */
struct source {
    struct knode kn;              /* key: agent, 0, host */
    struct source *newer, *older; /* recency list: the oldest is forgotten at the cap */
    int64_t wm;     /* its clock: the newest min(ts, received) of its records that fed a
                     * correlation */
    int64_t last_r; /* collector time of its latest such record */
};

struct sources {
    struct ktable t;
    struct source *newest, *oldest;
};

/* An open incident (schemas/alert.md): one per rule and group while it keeps matching. */
struct incident {
    struct knode kn;    /* key: group values, encoded as correlation keys */
    struct dnode dn;    /* deadline: collector time at which it resolves when nothing
                         * matches */
    int64_t first_seen; /* event time of its first and last triggering events */
    int64_t last_seen;
    int64_t opened;        /* event time of its firing record */
    int64_t id_first_seen; /* first_seen at the firing: its id */
    int64_t last_emit;     /* event time of its last firing or update record */
    uint64_t count;        /* schemas/alert.md count */
    uint64_t count_emitted;
    uint64_t max_seq;           /* the greatest seq counted (a chain's overlapping windows) */
    struct seqlist seqs;        /* its triggering seqs; seqs.total is seqs_total */
    int64_t win_start, win_end; /* the latest match's window */
    uint64_t *vals;             /* value_count: distinct value hashes, sorted */
    uint32_t nvals;
    uint8_t *refs;  /* temporal types: which references it has seen */
    uint8_t *ident; /* detections: identity fields of its first event (field, u16 len,
                     * bytes ...) */
    uint32_t identlen;
    char *drill;          /* run id of a fire drill, or NULL */
    char fingerprint[33]; /* schemas/alert.md, computed when it opens */
    char id[56];          /* "<fingerprint>-<id_first_seen>" */
};

struct istate { /* per rule */
    struct ktable t;
    struct dheap heap;
};

/* The incident at heap position i (0: the next to resolve). */
static inline struct incident *rules__incident_at(const struct istate *is, size_t i)
{
    return RULES_OWNER(is->heap.v[i], struct incident, dn);
}

/* An incident of a rule a reload removed: resolved by the next call (rules_ckpt.c). */
struct orphan {
    char *rule_key, *title, *level, *type;
    enum vg_severity sev;
    char **group_names;
    struct span *group_values; /* owned bytes */
    size_t ngroup;
    struct incident inc;
};

struct rules_engine {
    const struct ruleset *rs;
    struct rules_limits lim;
    uint8_t hkey[16]; /* SipHash key of the hash tables (random per engine) */

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

    /* time (rules/TIME.md; rules_time.c) */
    int64_t now;  /* the collector clock; INT64_MIN before any record */
    int64_t gate; /* the start of now's expiry step at the last pass */
    uint64_t eid;
    struct sources src;
    /* the record being evaluated */
    int64_t cur_t;          /* its effective event time */
    int64_t cur_r;          /* its received time (cur_t when it has none) */
    bool cur_future;        /* its ts was replaced by received */
    bool cur_src_done;      /* its source was looked up (the first correlation feed) */
    bool cur_late;          /* ... and it is late for it */
    struct source *cur_src; /* NULL: none or forgotten */
    struct span cur_drill;  /* its fire drill run id (raw vigil_drill), or empty */
    bool cur_drill_done;    /* ... looked up (at its first match) */

    /* correlations */
    struct cstate *cs;     /* per correlation (ruleset corr index) */
    uint64_t *vcount_keys; /* value_count scratch: a small open-addressing counter */
    uint32_t *vcount_vals;
    size_t vcount_cap;

    /* incidents */
    struct istate *is; /* per rule */
    int64_t inc_next;  /* no incident resolves before this (a lower bound of the heap
                        * tops: the expiry pass skips every rule until the clock
                        * reaches it) */
    struct orphan *orphans;
    size_t norphans;
    uint64_t *seqbuf; /* scratch: an alert record's seqs */

    /* alerts of the current call */
    bool emit_all; /* tests: rules that only feed correlations alert too */
    rules_alert_fn emit;
    void *arg;
    int emit_rc;
    int nalerts;

    struct rules_stats st;   /* engine totals: events, values_truncated, sources */
    struct rules_stats *rst; /* per rule */
};

/* rules_key.c */
/* The counted value of value_count (SHA-256, truncated: crafted values cannot merge). */
uint64_t rules__value_hash(struct span v);
/* Encodes the key of group values v[0..n) (per value u16 length (LE) + bytes, cut at
 * RULES_MAX_KEY_VALUE) into out (n * (2 + RULES_MAX_KEY_VALUE) bytes). */
size_t rules__key_encode(const struct span *v, size_t n, uint8_t *out);
/* Decodes exactly n values; false when the key is not n well-formed values. */
bool rules__key_decode(const uint8_t *key, size_t keylen, struct span *v, size_t n);
int64_t rules__sat_add(int64_t a, int64_t b);
int64_t rules__sat_sub(int64_t a, int64_t b);

/* rules_time.c */
void rules__time_release(struct rules_engine *e);
/* Sets the clocks for record r (effective time, received, the collector clock) and runs
 * the expiry pass when the clock entered a new step. */
void rules__time_begin(struct rules_engine *e, const struct rec *r);
/* Moves the collector clock to now (not back) and runs the expiry pass when due. */
void rules__time_advance(struct rules_engine *e, int64_t now);
/* Whether the current record is late for its source (looked up once, on the first
 * correlation it feeds; the source's clock moves on here). */
bool rules__time_late(struct rules_engine *e);
/* The source table for checkpoints: adds or refreshes one entry (restore). */
void rules__source_put(struct rules_engine *e, struct span key, int64_t wm, int64_t last_r);

/* rules_corr.c */
void rules__corr_init(struct rules_engine *e);
void rules__corr_release(struct rules_engine *e);
void rules__corr_reset(struct rules_engine *e); /* every group gone (a restore) */
/* A match of reference `ref` of correlation rule `rule` with the group-by values gvals
 * (the correlation's ngroup of them), the counted value (value_count), the event's time
 * and seq, and sub: the triggering seqs when a referenced correlation matched (copied).
 * May match (and feed parents). */
void rules__corr_feed(struct rules_engine *e, size_t rule, size_t ref, const struct span *gvals,
                      uint64_t vh, int64_t ts, uint64_t seq, const struct subseqs *sub,
                      struct span drill);
/* Expires groups and closes windows whose deadline is before the clock's step. */
void rules__corr_expire(struct rules_engine *e);
void rules__corr_flush(struct rules_engine *e);
void rules__group_free(struct cgroup *g);
/* Installs a restored group of correlation ci (checkpoint). */
void rules__group_install(struct rules_engine *e, size_t ci, struct cgroup *g);
struct cgroup *rules__group_find(const struct cstate *cs, uint64_t h, const uint8_t *key,
                                 size_t keylen);
/* Inserts keeping (ts, eid) order. */
void rules__entry_insert(struct cgroup *g, const struct centry *en);

/* The fire drill run id record r carries (raw "vigil_drill": a string), or empty. */
struct span rules__drill_of(const struct rec *r);
/* The current record's (looked up once). */
struct span rules__cur_drill(struct rules_engine *e);

/* rules_incident.c */
/* Hands alert a to the caller's callback (counted). */
void rules__emit(struct rules_engine *e, const struct rules_alert *a);
/* A rule's resolve_after and update_every: its own `vigil:` setting or the engine's. */
int64_t rules__resolve_after(const struct rules_engine *e, size_t rule);
int64_t rules__update_every(const struct rules_engine *e, size_t rule);
void rules__incident_init(struct rules_engine *e);
void rules__incident_release(struct rules_engine *e);
/* The new triggering events of one match of rule (detections: one event, with the
 * identity of rec; correlations: the window's entries not reported yet, all of them
 * listed in the window). */
struct imatch {
    const uint8_t *key; /* group values, encoded */
    size_t keylen;
    int64_t ts;        /* the match's time: its latest triggering event's */
    int64_t r;         /* collector time of the match */
    int64_t win_start; /* the window's first and last events */
    int64_t win_end;
    const struct rec *rec;             /* detections: the event (identity) */
    struct span drill;                 /* the fire drill run id of its events, or empty */
    const struct centry *const *fresh; /* correlations: entries newly reported */
    size_t nfresh;
    const struct centry *const *window; /* ... and the whole window (value/ref counts) */
    size_t nwindow;
};
void rules__incident_match(struct rules_engine *e, size_t rule, const struct imatch *m);
/* Resolves the incidents whose deadline is before the clock's step. */
void rules__incident_expire(struct rules_engine *e);
/* Resolves every open incident (flush). */
void rules__incident_flush(struct rules_engine *e);
/* Resolves the incidents of rules a restore did not find (rules_ckpt.c). */
void rules__orphans_resolve(struct rules_engine *e);
void rules__orphans_release(struct rules_engine *e);
void rules__orphans_free(struct orphan *v, size_t n);
void rules__incident_free(struct incident *inc);
/* Installs a restored incident of rule (checkpoint); false when it does not fit. */
bool rules__incident_install(struct rules_engine *e, size_t rule, struct incident *inc);
struct incident *rules__incident_alloc(const struct rules_engine *e, const uint8_t *key,
                                       size_t keylen);
/* Sets x's fingerprint and id from its rule's key (id, name or title), its group key of
 * ngroup values and its id_first_seen. */
void rules__incident_name(struct incident *x, const char *rule_key, size_t ngroup);

#endif
