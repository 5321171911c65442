/* collector/guard.h: what a stranger may cost the collector before it has proved who it
 * is. Every TCP connection to a TLS listener is a stranger until its handshake (and the
 * agent policy, tls.agents) accepts it. The guard
 *   - admits a stranger only within three limits: connections in their handshake from one
 *     address (listen.max_handshakes_per_ip), in all (listen.max_handshakes, below
 *     listen.max_connections so verified agents always find a slot), and new connections
 *     per address and second (listen.accept_rate_per_ip, listen.accept_burst_per_ip);
 *   - aggregates refusals (refused at accept, handshake failed or timed out, certificate
 *     not an agent's) per source address and interval (listen.refusal_interval): the
 *     first GUARD_SAMPLES of an address in an interval are recorded one by one (at most
 *     GUARD_MAX_IMMEDIATE in all), the rest only counted, and guard_flush turns the
 *     counts into one summary per address (the GUARD_MAX_SUMMARIES busiest, then one for
 *     all others). What strangers can make vigild store is thus bounded per interval,
 *     however fast they connect.
 *
 * An address is an IPv4 address, or the /64 of an IPv6 address (one host's usual
 * allocation, so rotating through it gains nothing). The table holds at most
 * GUARD_MAX_ADDRS addresses; entries are removed at a flush once idle; addresses beyond
 * it share one overflow entry, which counts refusals but is subject to no per-address
 * limit (the global limit and tls.handshake_timeout still bound them).
 *
 * Pure: no clock, no I/O, no logging (callers pass the time); the connection layer
 * (conn.c) wires it to accepts, handshakes, a timer and the ingest port. Loop thread. */
#ifndef VG_COLLECTOR_GUARD_H
#define VG_COLLECTOR_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "collector/metrics.h"

#define GUARD_MAX_ADDRS     4096 /* addresses tracked; beyond: one overflow entry */
#define GUARD_SAMPLES       3    /* refusals of one address recorded one by one per interval */
#define GUARD_MAX_IMMEDIATE 64   /* refusals recorded one by one per interval, in all */
#define GUARD_MAX_SUMMARIES 64   /* addresses with a summary of their own per interval */
#define GUARD_DETAIL_MAX    200  /* bytes of the last refusal's reason kept per address */

struct guard_cfg {
    uint64_t max_handshakes;        /* listen.max_handshakes (resolved: never 0) */
    uint64_t max_handshakes_per_ip; /* listen.max_handshakes_per_ip */
    uint64_t accept_rate;           /* listen.accept_rate_per_ip: per second; 0: no limit */
    uint64_t accept_burst;          /* listen.accept_burst_per_ip */
    int64_t interval_ns;            /* listen.refusal_interval */
};

/* Why a stranger was turned away. */
enum guard_reason {
    GUARD_OK,
    GUARD_RATE,         /* over listen.accept_rate_per_ip */
    GUARD_PER_IP,       /* over listen.max_handshakes_per_ip */
    GUARD_FULL,         /* guard_admit: listen.max_handshakes reached; evict one and retry */
    GUARD_MAX_CONNS,    /* over listen.max_connections */
    GUARD_EVICTED,      /* its handshake was cut for a newer one at listen.max_handshakes */
    GUARD_TLS,          /* the handshake failed: not TLS, no or a bad certificate */
    GUARD_TIMEOUT,      /* the handshake did not finish within tls.handshake_timeout */
    GUARD_UNAUTHORIZED, /* a verified certificate that tls.agents does not allow */
    GUARD_REASONS
};

/* The name of a reason in metrics, messages and summaries ("rate", "tls", ...). */
const char *guard_reason_name(enum guard_reason r);

/* An address as the guard keys it: IPv4 as ::ffff:a.b.c.d, IPv6 cut to its /64. */
struct guard_addr {
    uint8_t b[16];
};
/* From an accepted peer's address (AF_INET or AF_INET6; anything else: all zero). */
void guard_addr_from(const struct sockaddr *sa, struct guard_addr *out);

struct guard_entry;

struct guard {
    struct guard_cfg cfg;
    struct guard_entry *e; /* slots; index i is slot i + 1 (0: the overflow entry) */
    size_t len;            /* slots used (live or free) */
    uint32_t *free_slots;  /* freed at a flush, reused first */
    size_t nfree;
    uint32_t *index; /* open addressing over e: 2 * GUARD_MAX_ADDRS slots, 0: empty */
    struct guard_entry *other;
    uint64_t pending;   /* connections in their handshake, in all */
    uint32_t immediate; /* refusals recorded one by one this interval */
};

/* Lifecycle: guard_init fills g (allocates nothing yet); guard_release frees. */
void guard_init(struct guard *g, const struct guard_cfg *cfg);
void guard_release(struct guard *g);

/* A new connection from a (ip: its text, kept for messages) at mono ns (a monotonic
 * clock). GUARD_OK: admitted; it counts as in its handshake until guard_done(*slot).
 * GUARD_FULL: listen.max_handshakes is reached: the caller cuts one handshake in progress
 * (conn.c: the oldest of the address with the most, see guard_pending_of) and calls
 * again. GUARD_RATE or GUARD_PER_IP: refused (the caller
 * closes it and reports it with guard_refused). */
enum guard_reason guard_admit(struct guard *g, const struct guard_addr *a, const char *ip,
                              int64_t mono, uint32_t *slot);

/* The handshake of a connection admitted with slot is over (done, failed or closed). */
void guard_done(struct guard *g, uint32_t slot);

/* Handshakes in progress from the address of slot. */
uint32_t guard_pending_of(const struct guard *g, uint32_t slot);

/* Reports a refusal of a stranger at a, wall_ns its wall-clock time, detail what went
 * wrong (copied, cut at GUARD_DETAIL_MAX). Returns true when it is to be recorded on its
 * own now (the first GUARD_SAMPLES of the address in this interval, within
 * GUARD_MAX_IMMEDIATE); otherwise it is counted for the address's summary. */
bool guard_refused(struct guard *g, const struct guard_addr *a, const char *ip, enum guard_reason r,
                   enum listener_kind k, const char *detail, int64_t wall_ns);

/* One address's refusals in an interval (or, with addrs > 1, those of every address
 * past the GUARD_MAX_SUMMARIES busiest). */
struct guard_summary {
    const char *ip; /* the address (the last one seen of an IPv6 /64), or NULL for many */
    uint32_t addrs; /* addresses summed up */
    uint64_t refused;
    uint64_t recorded; /* of them recorded one by one */
    uint64_t by_reason[GUARD_REASONS];
    uint64_t by_listener[LST_COUNT];
    int64_t first_ns, last_ns; /* wall clock */
    const char *last;          /* the last refusal's detail */
};
typedef void (*guard_summary_fn)(void *arg, const struct guard_summary *s);

/* Ends the interval: fn gets one summary per address with refusals not recorded one by
 * one (the busiest first, at most GUARD_MAX_SUMMARIES, then one for the rest); the
 * counts start over, and idle addresses (no handshake in progress, rate budget whole at
 * mono) leave the table. Returns the number of summaries given to fn. */
size_t guard_flush(struct guard *g, int64_t mono, guard_summary_fn fn, void *arg);

/* Addresses in the table now (the overflow entry not counted). */
size_t guard_addrs(const struct guard *g);

#endif
