/* collector/guard.c: admission and refusal accounting for strangers (see guard.h).
 *
 * The table is an array of entries whose slot numbers stay stable while connections
 * hold them (a connection in its handshake keeps its slot), with an open-addressing
 * index over it. Entries are only removed at guard_flush, which rebuilds the index, so
 * there are no tombstones; between flushes a full table sends new addresses to the
 * overflow entry. The accept rate is a GCRA (a token bucket kept as one timestamp: the
 * theoretical arrival time). Loop thread; pure. */
#include "collector/guard.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

#define GUARD_INDEX_SLOTS (2 * GUARD_MAX_ADDRS) /* a power of two: never more than half full */

struct guard_entry {
    struct guard_addr a;
    bool live;
    char ip[48];      /* the last address seen, as text */
    uint32_t pending; /* connections in their handshake */
    int64_t tat;      /* GCRA: when the rate budget is whole again (mono ns) */
    uint64_t refused; /* this interval */
    uint64_t recorded;
    uint64_t by_reason[GUARD_REASONS];
    uint64_t by_listener[LST_COUNT];
    int64_t first_ns, last_ns;
    char last[GUARD_DETAIL_MAX];
};

const char *guard_reason_name(enum guard_reason r)
{
    static const char *const names[GUARD_REASONS] = {
        [GUARD_OK] = "ok",
        [GUARD_RATE] = "rate",
        [GUARD_PER_IP] = "per_ip",
        [GUARD_FULL] = "full",
        [GUARD_MAX_CONNS] = "max_connections",
        [GUARD_EVICTED] = "evicted",
        [GUARD_TLS] = "tls",
        [GUARD_TIMEOUT] = "timeout",
        [GUARD_UNAUTHORIZED] = "unauthorized",
    };
    return (unsigned)r < GUARD_REASONS ? names[r] : "?";
}

void guard_addr_from(const struct sockaddr *sa, struct guard_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(out->b, &in6->sin6_addr, 16);
        bool mapped = true;
        for (int i = 0; i < 10; i++) {
            mapped = mapped && out->b[i] == 0;
        }
        mapped = mapped && out->b[10] == 0xff && out->b[11] == 0xff;
        if (!mapped) {
            memset(out->b + 8, 0, 8); /* the /64 */
        }
    }
}

void guard_init(struct guard *g, const struct guard_cfg *cfg)
{
    memset(g, 0, sizeof(*g));
    g->cfg = *cfg;
    if (g->cfg.max_handshakes == 0) {
        g->cfg.max_handshakes = 1;
    }
    if (g->cfg.accept_burst == 0) {
        g->cfg.accept_burst = 1;
    }
}

void guard_release(struct guard *g)
{
    free(g->e);
    free(g->free_slots);
    free(g->index);
    free(g->other);
    memset(g, 0, sizeof(*g));
}

/* FNV-1a over the 16 bytes. */
static uint32_t addr_hash(const struct guard_addr *a)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < sizeof(a->b); i++) {
        h = (h ^ a->b[i]) * 16777619u;
    }
    return h;
}

static void ensure_tables(struct guard *g)
{
    if (!g->e) {
        g->e = xcalloc(GUARD_MAX_ADDRS, sizeof(*g->e));
        g->free_slots = xcalloc(GUARD_MAX_ADDRS, sizeof(*g->free_slots));
        g->index = xcalloc(GUARD_INDEX_SLOTS, sizeof(*g->index));
        g->other = xcalloc(1, sizeof(*g->other));
    }
}

static void index_put(struct guard *g, uint32_t slot)
{
    for (size_t h = addr_hash(&g->e[slot - 1].a) & (GUARD_INDEX_SLOTS - 1);;
         h = (h + 1) & (GUARD_INDEX_SLOTS - 1)) {
        if (g->index[h] == 0) {
            g->index[h] = slot;
            return;
        }
    }
}

/* The slot of a (1-based), adding it when there is room; 0: the overflow entry. */
static uint32_t lookup(struct guard *g, const struct guard_addr *a, bool add)
{
    ensure_tables(g);
    size_t h = addr_hash(a) & (GUARD_INDEX_SLOTS - 1);
    for (;; h = (h + 1) & (GUARD_INDEX_SLOTS - 1)) {
        uint32_t slot = g->index[h];
        if (slot == 0) {
            break;
        }
        if (memcmp(g->e[slot - 1].a.b, a->b, sizeof(a->b)) == 0) {
            return slot;
        }
    }
    if (!add) {
        return 0;
    }
    uint32_t slot;
    if (g->nfree > 0) {
        slot = g->free_slots[--g->nfree];
    } else if (g->len < GUARD_MAX_ADDRS) {
        slot = (uint32_t)++g->len;
    } else {
        return 0;
    }
    struct guard_entry *e = &g->e[slot - 1];
    memset(e, 0, sizeof(*e));
    e->a = *a;
    e->live = true;
    g->index[h] = slot;
    return slot;
}

static struct guard_entry *entry(const struct guard *g, uint32_t slot)
{
    return slot ? &g->e[slot - 1] : g->other;
}

static void set_ip(struct guard_entry *e, const char *ip)
{
    size_t n = strlen(ip);

    if (n >= sizeof(e->ip)) {
        n = sizeof(e->ip) - 1;
    }
    memcpy(e->ip, ip, n);
    e->ip[n] = 0;
}

/* GCRA: one more connection at mono, or false when over the rate with its burst. */
static bool rate_ok(const struct guard *g, struct guard_entry *e, int64_t mono)
{
    if (g->cfg.accept_rate == 0) {
        return true;
    }
    int64_t t = (int64_t)(1000000000ull / g->cfg.accept_rate);
    int64_t tau = t * (int64_t)(g->cfg.accept_burst - 1);
    int64_t tat = e->tat > mono ? e->tat : mono;
    if (tat - mono > tau) {
        return false;
    }
    e->tat = tat + (t > 0 ? t : 1);
    return true;
}

enum guard_reason guard_admit(struct guard *g, const struct guard_addr *a, const char *ip,
                              int64_t mono, uint32_t *slot)
{
    uint32_t s = lookup(g, a, true);
    struct guard_entry *e = entry(g, s);

    *slot = 0;
    if (s != 0) {
        set_ip(e, ip);
        if (e->pending >= g->cfg.max_handshakes_per_ip) {
            return GUARD_PER_IP;
        }
        /* The rate is charged for admissions the address could have had; a refusal for
         * its own per-address cap above does not spend it. */
        if (!rate_ok(g, e, mono)) {
            return GUARD_RATE;
        }
    }
    if (g->pending >= g->cfg.max_handshakes) {
        return GUARD_FULL;
    }
    e->pending++;
    g->pending++;
    *slot = s;
    return GUARD_OK;
}

void guard_done(struct guard *g, uint32_t slot)
{
    struct guard_entry *e = entry(g, slot);

    if (e && e->pending > 0) {
        e->pending--;
    }
    if (g->pending > 0) {
        g->pending--;
    }
}

uint32_t guard_pending_of(const struct guard *g, uint32_t slot)
{
    const struct guard_entry *e = g->other ? entry(g, slot) : NULL;
    return e ? e->pending : 0;
}

bool guard_refused(struct guard *g, const struct guard_addr *a, const char *ip, enum guard_reason r,
                   enum listener_kind k, const char *detail, int64_t wall_ns)
{
    uint32_t s = lookup(g, a, true);
    struct guard_entry *e = entry(g, s);
    bool now;

    set_ip(e, ip);
    if (e->refused == 0) {
        e->first_ns = wall_ns;
    }
    e->refused++;
    e->last_ns = wall_ns;
    if ((unsigned)r < GUARD_REASONS) {
        e->by_reason[r]++;
    }
    if ((unsigned)k < LST_COUNT) {
        e->by_listener[k]++;
    }
    size_t n = detail ? strlen(detail) : 0;
    if (n >= sizeof(e->last)) {
        n = sizeof(e->last) - 1;
    }
    memcpy(e->last, detail ? detail : "", n);
    e->last[n] = 0;
    /* The overflow entry stands for many addresses: none of them is sampled. */
    now = s != 0 && e->recorded < GUARD_SAMPLES && g->immediate < GUARD_MAX_IMMEDIATE;
    if (now) {
        e->recorded++;
        g->immediate++;
    }
    return now;
}

static int by_unrecorded_desc(const void *x, const void *y)
{
    const struct guard_entry *a = *(const struct guard_entry *const *)x;
    const struct guard_entry *b = *(const struct guard_entry *const *)y;
    uint64_t na = a->refused - a->recorded;
    uint64_t nb = b->refused - b->recorded;

    return na < nb ? 1 : na > nb ? -1 : 0;
}

static void summary_add(struct guard_summary *s, const struct guard_entry *e)
{
    if (s->refused == 0 || e->first_ns < s->first_ns) {
        s->first_ns = e->first_ns;
    }
    if (e->last_ns >= s->last_ns) {
        s->last_ns = e->last_ns;
        s->last = e->last;
    }
    s->addrs++;
    s->refused += e->refused;
    s->recorded += e->recorded;
    for (int r = 0; r < GUARD_REASONS; r++) {
        s->by_reason[r] += e->by_reason[r];
    }
    for (int k = 0; k < LST_COUNT; k++) {
        s->by_listener[k] += e->by_listener[k];
    }
}

static void interval_reset(struct guard_entry *e)
{
    e->refused = 0;
    e->recorded = 0;
    memset(e->by_reason, 0, sizeof(e->by_reason));
    memset(e->by_listener, 0, sizeof(e->by_listener));
    e->first_ns = e->last_ns = 0;
    e->last[0] = 0;
}

size_t guard_flush(struct guard *g, int64_t mono, guard_summary_fn fn, void *arg)
{
    size_t emitted = 0;

    if (!g->e) {
        return 0;
    }
    /* Addresses with refusals not yet recorded, the busiest first. */
    struct guard_entry **busy = xcalloc(g->len + 1, sizeof(*busy));
    size_t nbusy = 0;
    for (size_t i = 0; i < g->len; i++) {
        if (g->e[i].live && g->e[i].refused > g->e[i].recorded) {
            busy[nbusy++] = &g->e[i];
        }
    }
    qsort(busy, nbusy, sizeof(*busy), by_unrecorded_desc);
    struct guard_summary rest = { 0 };
    for (size_t i = 0; i < nbusy; i++) {
        if (i < GUARD_MAX_SUMMARIES) {
            struct guard_summary s = { 0 };
            summary_add(&s, busy[i]);
            s.ip = busy[i]->ip;
            fn(arg, &s);
            emitted++;
        } else {
            summary_add(&rest, busy[i]);
        }
    }
    if (g->other->refused > 0) {
        summary_add(&rest, g->other);
    }
    if (rest.refused > 0) {
        rest.ip = rest.addrs == 1 && g->other->refused == 0 ? busy[GUARD_MAX_SUMMARIES]->ip : NULL;
        fn(arg, &rest);
        emitted++;
    }
    free(busy);
    /* Start the next interval; idle addresses leave, the index is rebuilt without them. */
    g->immediate = 0;
    interval_reset(g->other);
    memset(g->index, 0, GUARD_INDEX_SLOTS * sizeof(*g->index));
    for (size_t i = 0; i < g->len; i++) {
        struct guard_entry *e = &g->e[i];
        if (!e->live) {
            continue;
        }
        interval_reset(e);
        if (e->pending == 0 && e->tat <= mono) {
            e->live = false;
            g->free_slots[g->nfree++] = (uint32_t)(i + 1);
            continue;
        }
        index_put(g, (uint32_t)(i + 1));
    }
    return emitted;
}

size_t guard_addrs(const struct guard *g)
{
    return g->len - g->nfree;
}
