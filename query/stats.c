/* query/stats.c: `vigil stats [FILTER] [--by KEY[,KEY...]] [--agg AGG[,AGG...]] [--top N]
 * [--rare] [--since T] [--until T] [--format table|json|ndjson|csv] [--explain]`: groups
 * the events matching FILTER by the values of the keys (query/stats.h: fields, raw.<path>,
 * time buckets like ts:1h) and computes per group count, dc(FIELD), min(FIELD) and
 * max(FIELD): "which IPs failed auth the most today, from how many users, first and last
 * seen": `vigil stats outcome=failure --by src_ip --agg count,dc(user),min(ts),max(ts)`.
 * Groups come most frequent first (--rare: least frequent first; with a time bucket, in
 * bucket order).
 *
 * One pass over the store (read-only, also while vigild writes), with the block index and
 * record prefilter doing what they do for search, one stripe per scan thread, each with
 * its own tables, merged at the end. Groups are counted in a hash table bounded by
 * STATS_MAX_GROUPS, distinct values (dc) in one of (group, value hash) pairs bounded by
 * STATS_MAX_PAIRS: a query that makes more fails and says so, rather than eat the
 * machine. Distinct values are told apart by a 64-bit hash of their text (two values
 * colliding would count once: about one chance in 10^7 at a billion values). */
#include "query/stats.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/cli.h"
#include "query/filter.h"
#include "query/output.h"
#include "query/scan.h"
#include "store/store.h"

#define STATS_MAX_GROUPS (4u << 20)  /* distinct key combinations */
#define STATS_MAX_PAIRS  (16u << 20) /* (group, distinct value) pairs of every dc() */
#define STATS_TOP_UNSET  (1ull << 40)

/* ---- the specs (stats.h) ---- */

int64_t stats_bucket(int64_t ts, int64_t width_ns)
{
    int64_t q = ts / width_ns;
    if (ts % width_ns < 0) {
        q--;
    }
    return q * width_ns;
}

int stats_key_parse(struct span s, struct stats_key *out, struct errbuf *eb)
{
    const uint8_t *colon = memchr(s.p, ':', s.n);

    memset(out, 0, sizeof(*out));
    if (colon && !span_starts_with(s, SPAN_LIT("raw."))) {
        struct span field = { s.p, (size_t)(colon - s.p) };
        struct span dur = { colon + 1, s.n - field.n - 1 };
        int64_t ns;
        if (!span_eq_str(field, "ts") && !span_eq_str(field, "received")) {
            errbuf_set(eb, "'%.*s': time buckets are on ts or received", (int)s.n,
                       (const char *)s.p);
            return VG_EPARSE;
        }
        if (vg_duration_parse(dur, &ns) < 0 || ns <= 0) {
            errbuf_set(eb, "'%.*s': bad bucket width '%.*s' (a duration: 90s, 15m, 1h, 1d)",
                       (int)s.n, (const char *)s.p, (int)dur.n, (const char *)dur.p);
            return VG_EPARSE;
        }
        if (out_field_parse(field, &out->f, eb) < 0) {
            return VG_EPARSE;
        }
        out->bucket_ns = ns;
        snprintf(out->name, sizeof(out->name), "%s", out->f.name);
        return 0;
    }
    if (out_field_parse(s, &out->f, eb) < 0) {
        return VG_EPARSE;
    }
    if (out->f.field == VG_F_RAW && out->f.path[0] == 0) {
        errbuf_set(eb, "'raw': group by a path into it, like raw.user.username");
        return VG_EPARSE;
    }
    if (out->f.field == VG_F_TS || out->f.field == VG_F_RECEIVED) {
        errbuf_set(eb, "'%s': group times into buckets, like %s:1h", out->f.name, out->f.name);
        return VG_EPARSE;
    }
    snprintf(out->name, sizeof(out->name), "%s", out->f.name);
    return 0;
}

int stats_agg_parse(struct span s, struct stats_agg *out, struct errbuf *eb)
{
    static const struct {
        const char *name;
        enum stats_agg_kind kind;
    } kinds[] = { { "dc", STATS_DC }, { "min", STATS_MIN }, { "max", STATS_MAX } };

    memset(out, 0, sizeof(*out));
    if (span_eq_str(s, "count")) {
        out->kind = STATS_COUNT;
        snprintf(out->name, sizeof(out->name), "count");
        return 0;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(kinds); i++) {
        size_t k = strlen(kinds[i].name);
        if (s.n <= k + 1 || memcmp(s.p, kinds[i].name, k) != 0) {
            continue;
        }
        struct span arg;
        if (s.p[k] == '(' && s.p[s.n - 1] == ')') {
            arg = (struct span){ s.p + k + 1, s.n - k - 2 };
        } else if (s.p[k] == ':') {
            arg = (struct span){ s.p + k + 1, s.n - k - 1 };
        } else {
            continue;
        }
        if (out_field_parse(arg, &out->f, eb) < 0) {
            return VG_EPARSE;
        }
        out->kind = kinds[i].kind;
        int f = out->f.field;
        if (out->kind != STATS_DC && f != VG_F_TS && f != VG_F_RECEIVED && f != VG_F_SEQ &&
            f != VG_F_DST_PORT) {
            errbuf_set(eb, "'%.*s': min and max are of ts, received, seq or dst_port", (int)s.n,
                       (const char *)s.p);
            return VG_EPARSE;
        }
        if (out->kind == STATS_DC && f == VG_F_RAW && out->f.path[0] == 0) {
            errbuf_set(eb, "'%.*s': count the distinct values of a path, like dc(raw.user.name)",
                       (int)s.n, (const char *)s.p);
            return VG_EPARSE;
        }
        snprintf(out->name, sizeof(out->name), "%s(%s)", kinds[i].name, out->f.name);
        return 0;
    }
    errbuf_set(eb, "'%.*s' is not an aggregate (count, dc(FIELD), min(FIELD), max(FIELD))",
               (int)s.n, (const char *)s.p);
    return VG_EPARSE;
}

int stats_split(const char *list, int (*fn)(struct span part, void *arg), void *arg)
{
    int depth = 0;
    const char *start = list;

    for (const char *p = list;; p++) {
        if (*p == '(') {
            depth++;
        } else if (*p == ')' && depth > 0) {
            depth--;
        } else if ((*p == ',' && depth == 0) || *p == 0) {
            int rc = fn((struct span){ (const uint8_t *)start, (size_t)(p - start) }, arg);
            if (rc < 0) {
                return rc;
            }
            if (*p == 0) {
                return 0;
            }
            start = p + 1;
        }
    }
}

/* ---- counting ---- */

struct group {
    uint64_t hash;
    uint64_t count;
    uint32_t off; /* the key in keys: each value as (u32 length, bytes); an absent one has
                     length UINT32_MAX */
    uint32_t len;
};

/* A distinct value of a dc() in a group; vh 0: an empty slot. */
struct pair {
    uint64_t vh;
    uint32_t gid;
    uint32_t agg;
};

struct stats {
    const struct filter *f;
    const struct stats_key *keys;
    size_t nkeys;
    const struct stats_agg *aggs;
    size_t naggs;
    uint32_t *slots; /* group index + 1; 0: empty */
    size_t cap;      /* power of two */
    struct group *groups;
    size_t n, gcap;
    int64_t *av; /* n * naggs: MIN/MAX values (INT64_MAX / INT64_MIN: none), DC counts */
    struct pair *pairs;
    size_t pcap, pn;
    struct buf keybuf;
    struct buf key; /* the key being built */
    struct buf val; /* a value's text */
    uint64_t matched;
    uint64_t matched_told; /* of matched, what par's progress line has */
    struct scan_par *par;
    int err;
    struct errbuf *eb;
};

static void stats_init(struct stats *s, const struct stats *like, struct errbuf *eb)
{
    memset(s, 0, sizeof(*s));
    if (like) {
        s->f = like->f;
        s->keys = like->keys;
        s->nkeys = like->nkeys;
        s->aggs = like->aggs;
        s->naggs = like->naggs;
    }
    s->eb = eb;
    buf_init(&s->keybuf, (size_t)1 << 31);
    buf_init(&s->key, 1u << 24);
    buf_init(&s->val, 1u << 24);
}

static void stats_release(struct stats *s)
{
    free(s->slots);
    free(s->groups);
    free(s->av);
    free(s->pairs);
    buf_release(&s->keybuf);
    buf_release(&s->key);
    buf_release(&s->val);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a finalizer */

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 31;
    h *= 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    return h;
}

static void slots_grow(struct stats *s)
{
    size_t ncap = s->cap ? 2 * s->cap : 1024;
    uint32_t *slots = xcalloc(ncap, sizeof(*slots));

    for (size_t g = 0; g < s->n; g++) {
        size_t j = s->groups[g].hash & (ncap - 1);
        while (slots[j]) {
            j = (j + 1) & (ncap - 1);
        }
        slots[j] = (uint32_t)g + 1;
    }
    free(s->slots);
    s->slots = slots;
    s->cap = ncap;
}

/* The group of key (hash h), made when new. Returns its index, or VG_ELIMIT. */
static int64_t group_get(struct stats *s, uint64_t h, const uint8_t *key, size_t len)
{
    if ((s->n + 1) * 2 > s->cap) {
        slots_grow(s);
    }
    size_t i = h & (s->cap - 1);
    while (s->slots[i]) {
        struct group *g = &s->groups[s->slots[i] - 1];
        if (g->hash == h && g->len == len &&
            (len == 0 || memcmp(s->keybuf.data + g->off, key, len) == 0)) {
            return s->slots[i] - 1;
        }
        i = (i + 1) & (s->cap - 1);
    }
    if (s->n >= STATS_MAX_GROUPS || (len > 0 && buf_append(&s->keybuf, key, len) < 0)) {
        errbuf_set(s->eb,
                   "more than %u groups (or %zu bytes of values): narrow the filter or "
                   "group by fewer fields",
                   STATS_MAX_GROUPS, s->keybuf.max);
        s->err = VG_ELIMIT;
        return VG_ELIMIT;
    }
    if (s->n == s->gcap) {
        s->gcap = s->gcap ? 2 * s->gcap : 1024;
        s->groups = xrealloc(s->groups, s->gcap * sizeof(*s->groups));
        if (s->naggs) {
            s->av = xrealloc(s->av, s->gcap * s->naggs * sizeof(*s->av));
        }
    }
    size_t g = s->n++;
    s->groups[g] = (struct group){ h, 0, (uint32_t)(s->keybuf.len - len), (uint32_t)len };
    for (size_t a = 0; a < s->naggs; a++) {
        enum stats_agg_kind k = s->aggs[a].kind;
        s->av[g * s->naggs + a] = k == STATS_MIN ? INT64_MAX : k == STATS_MAX ? INT64_MIN : 0;
    }
    s->slots[i] = (uint32_t)g + 1;
    return (int64_t)g;
}

/* Adds value hash vh to dc() number agg of group gid; counts it when new. */
static int pair_add(struct stats *s, uint64_t vh, uint32_t gid, uint32_t agg)
{
    if ((s->pn + 1) * 2 > s->pcap) {
        size_t ncap = s->pcap ? 2 * s->pcap : 1024;
        struct pair *np = xcalloc(ncap, sizeof(*np));
        for (size_t i = 0; i < s->pcap; i++) {
            const struct pair *p = &s->pairs[i];
            if (p->vh) {
                size_t j = mix(p->vh ^ ((uint64_t)p->gid << 8) ^ p->agg) & (ncap - 1);
                while (np[j].vh) {
                    j = (j + 1) & (ncap - 1);
                }
                np[j] = *p;
            }
        }
        free(s->pairs);
        s->pairs = np;
        s->pcap = ncap;
    }
    size_t j = mix(vh ^ ((uint64_t)gid << 8) ^ agg) & (s->pcap - 1);
    while (s->pairs[j].vh) {
        const struct pair *p = &s->pairs[j];
        if (p->vh == vh && p->gid == gid && p->agg == agg) {
            return 0;
        }
        j = (j + 1) & (s->pcap - 1);
    }
    if (s->pn >= STATS_MAX_PAIRS) {
        errbuf_set(s->eb, "more than %u distinct values counted by dc(): narrow the filter",
                   STATS_MAX_PAIRS);
        s->err = VG_ELIMIT;
        return VG_ELIMIT;
    }
    s->pairs[j] = (struct pair){ vh, gid, agg };
    s->pn++;
    s->av[(size_t)gid * s->naggs + agg]++;
    return 0;
}

/* The text of key k in r into s->val: 1, 0 when r lacks it, or an error. */
static int key_text(struct stats *s, const struct stats_key *k, const struct rec *r)
{
    buf_reset(&s->val);
    if (k->bucket_ns > 0) {
        bool has = k->f.field == VG_F_TS ? r->has_ts : r->has_received;
        if (!has) {
            return 0;
        }
        char t[48];
        int64_t b = stats_bucket(k->f.field == VG_F_TS ? r->ts : r->received, k->bucket_ns);
        vg_time_format(b, k->bucket_ns % VG_NS_PER_SEC == 0 ? 0 : 9, t, sizeof(t));
        int rc = buf_append_str(&s->val, t);
        return rc < 0 ? rc : 1;
    }
    return out_field_text(&k->f, r, 9, &s->val);
}

/* min/max: the field as a number. */
static bool num_value(int f, const struct rec *r, int64_t *v)
{
    switch (f) {
    case VG_F_TS:
        *v = r->ts;
        return r->has_ts;
    case VG_F_RECEIVED:
        *v = r->received;
        return r->has_received;
    case VG_F_SEQ:
        *v = (int64_t)r->seq; /* seqs stay below 2^63 (segment.md 5.4) */
        return r->has_seq;
    case VG_F_DST_PORT:
        *v = r->dst_port;
        return r->has_dst_port;
    default:
        return false;
    }
}

static int fail(struct stats *s, int rc, uint64_t seq)
{
    if (rc == VG_ECORRUPT) {
        errbuf_set(s->eb, "record seq %" PRIu64 ": a raw value is malformed", seq);
    } else if (s->err == 0) {
        errbuf_set(s->eb, "record seq %" PRIu64 ": values too large to group by", seq);
    }
    s->err = rc;
    return rc;
}

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct stats *s = arg;
    struct rec r;
    int rc;

    (void)ts;
    if ((s->err = scan_rec_decode(bytes, seq, &r, s->eb)) < 0) {
        return s->err;
    }
    if (s->f && !filter_match(s->f, &r)) {
        return 0;
    }
    s->matched++;
    if ((s->matched & 0xfff) == 0) {
        scan_par_matched(s->par, s->matched - s->matched_told);
        s->matched_told = s->matched;
    }
    buf_reset(&s->key);
    for (size_t i = 0; i < s->nkeys; i++) {
        uint8_t len[4];
        if ((rc = key_text(s, &s->keys[i], &r)) < 0) {
            return fail(s, rc, seq);
        }
        uint32_t n = rc > 0 ? (uint32_t)s->val.len : UINT32_MAX;
        for (int b = 0; b < 4; b++) {
            len[b] = (uint8_t)(n >> (8 * b));
        }
        if ((rc = buf_append(&s->key, len, 4)) < 0 ||
            (rc = buf_append(&s->key, s->val.data, s->val.len)) < 0) {
            return fail(s, rc, seq);
        }
    }
    int64_t g = group_get(s, hash_bytes(s->key.data, s->key.len), s->key.data, s->key.len);
    if (g < 0) {
        return (int)g;
    }
    s->groups[g].count++;
    for (size_t a = 0; a < s->naggs; a++) {
        const struct stats_agg *ag = &s->aggs[a];
        int64_t *slot = &s->av[(size_t)g * s->naggs + a];
        int64_t v;
        if (ag->kind == STATS_MIN && num_value(ag->f.field, &r, &v) && v < *slot) {
            *slot = v;
        } else if (ag->kind == STATS_MAX && num_value(ag->f.field, &r, &v) && v > *slot) {
            *slot = v;
        } else if (ag->kind == STATS_DC) {
            buf_reset(&s->val);
            if ((rc = out_field_text(&ag->f, &r, 9, &s->val)) < 0) {
                return fail(s, rc, seq);
            }
            if (rc > 0 && (rc = pair_add(s, hash_bytes(s->val.data, s->val.len), (uint32_t)g,
                                         (uint32_t)a)) < 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* Adds the groups and distinct values of a stripe (from) into s. */
static int stats_merge(struct stats *s, const struct stats *from)
{
    uint32_t *map = xmalloc((from->n ? from->n : 1) * sizeof(*map));
    int rc = 0;

    s->matched += from->matched;
    for (size_t i = 0; i < from->n && rc == 0; i++) {
        const struct group *fg = &from->groups[i];
        int64_t g = group_get(s, fg->hash, from->keybuf.data + fg->off, fg->len);
        if (g < 0) {
            rc = (int)g;
            break;
        }
        map[i] = (uint32_t)g;
        s->groups[g].count += fg->count;
        for (size_t a = 0; a < s->naggs; a++) {
            int64_t v = from->av[i * s->naggs + a];
            int64_t *slot = &s->av[(size_t)g * s->naggs + a];
            if (s->aggs[a].kind == STATS_MIN && v < *slot) {
                *slot = v;
            } else if (s->aggs[a].kind == STATS_MAX && v > *slot) {
                *slot = v;
            }
        }
    }
    for (size_t i = 0; i < from->pcap && rc == 0; i++) {
        const struct pair *p = &from->pairs[i];
        if (p->vh) {
            rc = pair_add(s, p->vh, map[p->gid], p->agg);
        }
    }
    free(map);
    return rc;
}

/* ---- ordering and printing ---- */

/* The i-th value of a group key: *v, or false when it was absent. */
static bool key_value(const uint8_t *k, size_t i, struct span *v)
{
    for (;;) {
        uint32_t n =
            (uint32_t)k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
        k += 4;
        if (i == 0) {
            *v = (struct span){ k, n == UINT32_MAX ? 0 : n };
            return n != UINT32_MAX;
        }
        k += n == UINT32_MAX ? 0 : n;
        i--;
    }
}

struct order {
    const struct stats *s;
    bool rare;
    bool by_key; /* a time bucket among the keys: key order first */
};

/* Compares the keys of x and y in order (with buckets_only, only the time buckets). */
static int cmp_keys(const struct stats *s, const struct group *x, const struct group *y,
                    bool buckets_only)
{
    for (size_t k = 0; k < s->nkeys; k++) {
        if (buckets_only && s->keys[k].bucket_ns == 0) {
            continue;
        }
        struct span a;
        struct span b;
        bool ha = key_value(s->keybuf.data + x->off, k, &a);
        bool hb = key_value(s->keybuf.data + y->off, k, &b);
        if (ha != hb) {
            return ha ? -1 : 1; /* absent values last */
        }
        size_t n = a.n < b.n ? a.n : b.n;
        int c = n ? memcmp(a.p, b.p, n) : 0;
        if (c || a.n != b.n) {
            return c ? c : a.n < b.n ? -1 : 1;
        }
    }
    return 0;
}

static int cmp_group(const void *pa, const void *pb, void *arg)
{
    const struct order *o = arg;
    const struct group *x = &o->s->groups[*(const uint32_t *)pa];
    const struct group *y = &o->s->groups[*(const uint32_t *)pb];
    int c = 0;

    if (o->by_key && (c = cmp_keys(o->s, x, y, true)) != 0) {
        return c; /* time order first */
    }
    if (x->count != y->count) {
        return (x->count > y->count) == o->rare ? 1 : -1;
    }
    return cmp_keys(o->s, x, y, false);
}

/* The text of column c of group g into b: true, or false when it has none. A number
 * for count, dc, min/max of seq and dst_port (*num set); RFC 3339 for times. */
static bool cell(const struct stats *s, uint32_t g, size_t c, struct buf *b, bool *num)
{
    *num = false;
    buf_reset(b);
    if (c < s->nkeys) {
        struct span v;
        if (!key_value(s->keybuf.data + s->groups[g].off, c, &v)) {
            return false;
        }
        return buf_append(b, v.p, v.n) == 0;
    }
    const struct stats_agg *ag = &s->aggs[c - s->nkeys];
    int64_t v = s->av ? s->av[(size_t)g * s->naggs + (c - s->nkeys)] : 0;
    *num = true;
    switch (ag->kind) {
    case STATS_COUNT:
        return buf_appendf(b, "%" PRIu64, s->groups[g].count) == 0;
    case STATS_DC:
        return buf_appendf(b, "%" PRId64, v) == 0;
    case STATS_MIN:
    case STATS_MAX:
        if (v == (ag->kind == STATS_MIN ? INT64_MAX : INT64_MIN)) {
            return false; /* no event of the group had the field */
        }
        if (ag->f.field == VG_F_TS || ag->f.field == VG_F_RECEIVED) {
            char t[48];
            *num = false;
            vg_time_format(v, 9, t, sizeof(t));
            return buf_append_str(b, t) == 0;
        }
        if (ag->f.field == VG_F_SEQ) {
            return buf_appendf(b, "%" PRIu64, (uint64_t)v) == 0;
        }
        return buf_appendf(b, "%" PRId64, v) == 0;
    }
    return false;
}

static const char *col_name(const struct stats *s, size_t c)
{
    return c < s->nkeys ? s->keys[c].name : s->aggs[c - s->nkeys].name;
}

static void put_table_cell(FILE *o, struct span v, bool present, int width, bool last)
{
    int w = 0;

    if (!present) {
        fputs("-", o);
        w = 1;
    } else {
        for (size_t i = 0; i < v.n && w < width; i++, w++) {
            uint8_t c = v.p[i];
            fputc(c < 0x20 || c == 0x7f ? '?' : c, o);
        }
    }
    if (!last) {
        fprintf(o, "%*s", width - w + 2, "");
    }
}

static void put_csv_cell(FILE *o, struct span v, bool present)
{
    bool quote = false;

    for (size_t i = 0; present && i < v.n; i++) {
        quote = quote || v.p[i] == '"' || v.p[i] == ',' || v.p[i] == '\n' || v.p[i] == '\r';
    }
    if (quote) {
        fputc('"', o);
    }
    for (size_t i = 0; present && i < v.n; i++) {
        if (v.p[i] == '"') {
            fputc('"', o);
        }
        fputc(v.p[i], o);
    }
    if (quote) {
        fputc('"', o);
    }
}

static int print_groups(const struct stats *s, const uint32_t *g, size_t n, enum out_format fmt)
{
    FILE *o = stdout;
    size_t ncols = s->nkeys + s->naggs;
    int width[STATS_MAX_KEYS + STATS_MAX_AGGS];
    struct buf c;
    struct buf j;
    bool num;
    int rc = 0;

    buf_init(&c, 1u << 24);
    buf_init(&j, 1u << 24);
    for (size_t k = 0; k < ncols; k++) {
        width[k] = (int)strlen(col_name(s, k));
        for (size_t i = 0; fmt == OUT_TABLE && i < n; i++) {
            int w = cell(s, g[i], k, &c, &num) ? (int)c.len : 1;
            width[k] = w > width[k] ? (w > 60 ? 60 : w) : width[k];
        }
    }
    if (fmt == OUT_TABLE) {
        for (size_t k = 0; k < ncols; k++) {
            char up[OUT_FIELD_NAME_MAX + 24];
            size_t l = 0;
            for (const char *p = col_name(s, k); *p && l + 1 < sizeof(up); p++) {
                up[l++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
            }
            up[l] = 0;
            /* Key names as they were given, aggregates in capitals (COUNT, DC(USER)). */
            put_table_cell(o, span_str(k < s->nkeys ? col_name(s, k) : up), true, width[k],
                           k + 1 == ncols);
        }
        fputc('\n', o);
    } else if (fmt == OUT_CSV) {
        for (size_t k = 0; k < ncols; k++) {
            put_csv_cell(o, span_str(col_name(s, k)), true);
            fputs(k + 1 == ncols ? "\r\n" : ",", o);
        }
    } else if (fmt == OUT_JSON) {
        fputs("[\n", o);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (fmt == OUT_TABLE || fmt == OUT_CSV) {
            for (size_t k = 0; k < ncols; k++) {
                bool present = cell(s, g[i], k, &c, &num);
                if (fmt == OUT_TABLE) {
                    put_table_cell(o, buf_span(&c), present, width[k], k + 1 == ncols);
                } else {
                    put_csv_cell(o, buf_span(&c), present);
                }
                if (k + 1 < ncols && fmt == OUT_CSV) {
                    fputc(',', o);
                }
            }
            fputs(fmt == OUT_TABLE ? "\n" : "\r\n", o);
            continue;
        }
        buf_reset(&j);
        rc = buf_append_str(&j, "{");
        for (size_t k = 0; rc == 0 && k < ncols; k++) {
            bool present = cell(s, g[i], k, &c, &num);
            if ((rc = json_append_str(&j, span_str(col_name(s, k)))) == 0 &&
                (rc = buf_append_byte(&j, ':')) == 0) {
                rc = !present ? buf_append_str(&j, "null")
                     : num    ? buf_append(&j, c.data, c.len)
                              : json_append_str(&j, buf_span(&c));
            }
            if (rc == 0 && k + 1 < ncols) {
                rc = buf_append_byte(&j, ',');
            }
        }
        if (rc == 0) {
            rc = buf_append_byte(&j, '}');
        }
        if (rc == 0) {
            fprintf(o, "%s%s\n", buf_cstr(&j), fmt == OUT_JSON && i + 1 < n ? "," : "");
        }
    }
    if (fmt == OUT_JSON) {
        fputs("]\n", o);
    }
    buf_release(&c);
    buf_release(&j);
    if (rc < 0) {
        return rc;
    }
    errno = 0;
    if (fflush(o) != 0 || ferror(o)) {
        return errno ? -errno : -EIO;
    }
    return 0;
}

static void stats_usage(FILE *f)
{
    fprintf(f,
            "usage: vigil stats [FILTER...] [--by KEY[,KEY...]] [--agg AGG[,AGG...]] [--top N]\n"
            "                   [--rare] [--since T] [--until T] [--format table|json|ndjson|csv]\n"
            "                   [--explain] [--skip-damaged] [-c FILE | --store DIR]\n"
            "\n"
            "Groups the events matching FILTER by the keys and computes the aggregates of each\n"
            "group, most frequent first.\n"
            "KEY: a field (pod, src_ip, dst_port, ...; an absent one is '-'), raw.<path>, or a\n"
            "     time bucket ts:DURATION (ts:1h, ts:15m; received:1h too). Without --by, one\n"
            "     group of every match.\n"
            "AGG: count (the default), dc(FIELD) (distinct values; dc:FIELD too), min(FIELD),\n"
            "     max(FIELD) of ts, received, seq or dst_port (min(ts), max(ts): first and last\n"
            "     seen). Quote the parentheses for the shell: --agg 'count,dc(user),max(ts)'.\n"
            "--top: the N first groups (default 20; 0 for all; with a time bucket, all).\n"
            "--rare: least frequent first. With a time bucket groups come in time order.\n"
            "--skip-damaged: leave out segments that cannot be read (said on stderr) instead\n"
            "        of failing on the first one.\n"
            "Ctrl-C stops the scan and prints the counts so far (exit 130).\n");
}

struct stats_opts {
    const char *by;
    struct cli_list agg;
    uint64_t top;
    bool rare;
    bool explain;
    bool skip_damaged;
};

static void stats_defaults(void *own)
{
    ((struct stats_opts *)own)->top = STATS_TOP_UNSET;
}

static const struct cli_opt stats_opts[] = {
    { "--by", NULL, CLI_STR, CLI_OFF(struct stats_opts, by), 0, 0 },
    { "--agg", NULL, CLI_LIST, CLI_OFF(struct stats_opts, agg), 0, 0 },
    { "--top", NULL, CLI_U64, CLI_OFF(struct stats_opts, top), 0, UINT32_MAX },
    { "--rare", NULL, CLI_FLAG, CLI_OFF(struct stats_opts, rare), 0, 0 },
    { "--explain", NULL, CLI_FLAG, CLI_OFF(struct stats_opts, explain), 0, 0 },
    { "--skip-damaged", NULL, CLI_FLAG, CLI_OFF(struct stats_opts, skip_damaged), 0, 0 },
    { NULL },
};

struct specs {
    struct stats_key keys[STATS_MAX_KEYS];
    size_t nkeys;
    struct stats_agg aggs[STATS_MAX_AGGS];
    size_t naggs;
    struct errbuf eb;
};

static int add_key(struct span part, void *arg)
{
    struct specs *sp = arg;
    if (sp->nkeys == STATS_MAX_KEYS) {
        errbuf_set(&sp->eb, "--by: at most %d keys", STATS_MAX_KEYS);
        return VG_EPARSE;
    }
    int rc = stats_key_parse(part, &sp->keys[sp->nkeys], &sp->eb);
    if (rc < 0) {
        errbuf_prefix(&sp->eb, "--by");
        return rc;
    }
    sp->nkeys++;
    return 0;
}

static int add_agg(struct span part, void *arg)
{
    struct specs *sp = arg;
    if (sp->naggs == STATS_MAX_AGGS) {
        errbuf_set(&sp->eb, "--agg: at most %d aggregates", STATS_MAX_AGGS);
        return VG_EPARSE;
    }
    int rc = stats_agg_parse(part, &sp->aggs[sp->naggs], &sp->eb);
    if (rc < 0) {
        errbuf_prefix(&sp->eb, "--agg");
        return rc;
    }
    sp->naggs++;
    return 0;
}

/* The fields the counting reads (filter_fields' bits): the filter's, the keys' and the
 * aggregates' (count reads none). Records are given only those (segment.md 3.8): a
 * `stats` over normalized fields never decompresses raw events. */
static uint64_t stats_fields(const struct stats *s)
{
    uint64_t m = s->f ? filter_fields(s->f) : 0;
    for (size_t i = 0; i < s->nkeys; i++) {
        m |= 1ull << s->keys[i].f.field;
    }
    for (size_t a = 0; a < s->naggs; a++) {
        if (s->aggs[a].kind != STATS_COUNT) {
            m |= 1ull << s->aggs[a].f.field;
        }
    }
    /* Never none: an empty projection would read every column as "whole". */
    return m ? m : 1ull << VG_F_TS;
}

/* One scan into s: one table per stripe (thread), merged into s. The segments of skips
 * are left out; with skip_damaged, one that cannot be read is added to them (*again:
 * scan once more, afresh). *failed: the segment a failure was about (0: none). */
static int stats_scan(struct stats *s, const char *dir, int64_t since, int64_t until,
                      const struct scan_need *sn, bool skip_damaged, struct scan_skips *skips,
                      bool *again, uint64_t *failed, bool *interrupted, struct store_scan_stats *st,
                      struct errbuf *eb)
{
    struct scan_par *par = NULL;
    int rc = scan_par_open(dir, since, until, &sn->need, &par, st, eb);

    *again = false;
    *failed = 0;
    if (rc < 0) {
        return rc;
    }
    scan_par_narrow(par, sn);
    scan_par_fields(par, stats_fields(s));
    scan_par_skip(par, skips);
    scan_par_watch(par, (cli_progress_enabled() ? SCAN_PROGRESS : 0) | SCAN_INTERRUPTIBLE,
                   "counting");
    s->par = par;
    unsigned nt = scan_par_threads(par);
    struct stats *ps = xcalloc(nt, sizeof(*ps));
    struct errbuf *pe = xcalloc(nt, sizeof(*pe));
    void **args = xcalloc(nt, sizeof(*args));
    args[0] = s;
    for (unsigned i = 1; i < nt; i++) {
        errbuf_clear(&pe[i]);
        stats_init(&ps[i], s, &pe[i]);
        ps[i].par = par;
        args[i] = &ps[i];
    }
    rc = scan_par_run(par, on_rec, args, st, eb);
    *again = skip_damaged && scan_skips_take(skips, par, rc, eb);
    *failed = rc < 0 ? scan_par_failed_segment(par) : 0;
    *interrupted = scan_par_interrupted(par);
    s->par = NULL;
    scan_par_close(par);
    for (unsigned i = 1; i < nt; i++) {
        if (ps[i].err && !s->err) {
            s->err = ps[i].err;
            errbuf_set(eb, "%s", errbuf_msg(&pe[i]));
        }
        if (rc == 0 && !s->err) {
            rc = stats_merge(s, &ps[i]);
        }
        stats_release(&ps[i]);
    }
    if (s->err && rc >= 0) {
        rc = s->err;
    }
    free(ps);
    free(pe);
    free(args);
    return rc;
}

static int stats_run(struct cli_args *a)
{
    const struct stats_opts *so = a->own;
    struct specs *sp = xcalloc(1, sizeof(*sp));
    struct filter *f = NULL;
    char *text = NULL;
    struct stats s;
    struct errbuf eb;
    int rc;

    errbuf_clear(&eb);
    errbuf_clear(&sp->eb);
    rc = so->by ? stats_split(so->by, add_key, sp) : 0;
    for (size_t i = 0; rc == 0 && i < so->agg.n; i++) {
        rc = stats_split(so->agg.v[i], add_agg, sp);
    }
    if (rc < 0) {
        fprintf(stderr, "vigil stats: %s\n", errbuf_msg(&sp->eb));
        free(sp);
        return CLI_USAGE;
    }
    if (sp->naggs == 0) {
        (void)stats_agg_parse(SPAN_LIT("count"), &sp->aggs[sp->naggs++], &sp->eb);
    }
    bool bucketed = false;
    for (size_t i = 0; i < sp->nkeys; i++) {
        bucketed = bucketed || sp->keys[i].bucket_ns > 0;
    }
    if ((rc = cli_filter(a, true, &f, &text)) != CLI_OK) {
        free(sp);
        return rc;
    }
    free(text);
    if ((rc = cli_load(a)) != CLI_OK) {
        filter_free(f);
        free(sp);
        return rc;
    }

    /* What every match has, for the block index and the record prefilter. */
    struct scan_need sn;
    scan_need_init(&sn, f);
    struct store_scan_stats st = { 0 };
    int64_t t0 = vg_mono_ns();
    struct stats proto = {
        .f = f, .keys = sp->keys, .nkeys = sp->nkeys, .aggs = sp->aggs, .naggs = sp->naggs
    };
    stats_init(&s, &proto, &eb);
    /* --skip-damaged: each damaged segment found starts the count over without it. */
    struct scan_skips skips = { NULL, 0 };
    uint64_t failed = 0;
    bool interrupted = false;
    for (;;) {
        bool again = false;
        rc = stats_scan(&s, cli_store_dir(a), a->since, a->until, &sn, so->skip_damaged, &skips,
                        &again, &failed, &interrupted, &st, &eb);
        if (!again) {
            break;
        }
        stats_release(&s);
        stats_init(&s, &proto, &eb);
        memset(&st, 0, sizeof(st));
        errbuf_clear(&eb);
    }
    scan_skips_print("vigil stats", &skips);
    if (rc < 0) {
        scan_fail_print("vigil stats", &eb, failed);
        rc = CLI_FAIL;
    } else {
        /* Without --by, one group of every match, there even when nothing matched. */
        if (sp->nkeys == 0 && s.n == 0) {
            static const uint8_t none[1];
            (void)group_get(&s, hash_bytes(none, 0), none, 0);
        }
        uint32_t *g = xcalloc(s.n ? s.n : 1, sizeof(*g));
        size_t n = s.n;
        for (size_t i = 0; i < n; i++) {
            g[i] = (uint32_t)i;
        }
        struct order ord = { &s, so->rare, bucketed };
        if (n > 1) {
            qsort_r(g, n, sizeof(*g), cmp_group, &ord);
        }
        uint64_t top = so->top == STATS_TOP_UNSET ? (bucketed ? 0 : 20) : so->top;
        size_t shown = top && top < n ? (size_t)top : n;
        rc = cli_output_done("vigil stats", print_groups(&s, g, shown, a->format));
        if (interrupted) {
            fprintf(stderr,
                    "vigil stats: interrupted: the counts of the %" PRIu64
                    " matches found before Ctrl-C\n",
                    s.matched);
            rc = rc == CLI_OK ? SCAN_EXIT_INTERRUPTED : rc;
        }
        if (so->explain) {
            fprintf(stderr,
                    "explain: blocks read %" PRIu64 ", skipped by time %" PRIu64
                    ", skipped by index %" PRIu64 "; bytes decompressed %" PRIu64
                    "; records unpacked %" PRIu64 ", passed over %" PRIu64 ", matched %" PRIu64
                    "; %zu groups, %zu shown; %.3f s\n",
                    st.blocks_read, st.blocks_skipped, st.blocks_skipped_index,
                    st.bytes_decompressed, st.records_decoded, st.records_skipped, s.matched, n,
                    shown, (double)(vg_mono_ns() - t0) / 1e9);
            scan_skips_explain(&skips);
        }
        free(g);
    }
    scan_skips_release(&skips);
    stats_release(&s);
    filter_free(f);
    free(sp);
    return rc;
}

const struct cli_cmd cmd_stats = {
    .name = "stats",
    .synopsis = "[FILTER] --by KEY[,KEY] [--agg AGG,...] [--top N] [--rare]   group and count",
    .takes = CLI_STORE | CLI_TIME | CLI_FORMAT,
    .opts = stats_opts,
    .own_size = sizeof(struct stats_opts),
    .own_init = stats_defaults,
    .usage = stats_usage,
    .run = stats_run,
};
