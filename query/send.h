/* query/send.h: shipping events to vigild over Forward with mutual TLS, waiting for
 * every acknowledgement (used by `vigil send` and `vigil demo`). Blocking; not for the
 * event loop. */
#ifndef VG_QUERY_SEND_H
#define VG_QUERY_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/span.h"

#define SEND_MAX_MARKS 4

enum send_format { SEND_NDJSON, SEND_FALCO, SEND_K8S_AUDIT, SEND_TRIVY, SEND_SYSLOG };

struct send_opts {
    const char *host;
    int port;
    const char *ca, *cert, *key;
    enum send_format format;
    const char *tag;       /* NULL: derived from the format */
    uint32_t chunk_events; /* events per PackedForward chunk */
    int window;            /* chunks in flight before waiting for an ack */
    int timeout_ms;        /* connect and per-ack timeout */
    int total_timeout_ms;  /* the whole run, retries included (--timeout); 0: none */
    int max_retries;       /* reconnects without an ack in between before giving up */
    bool progress;         /* draw a progress line on stderr */
    /* Top-level fields set on every event before it is sent (vigil drill's markers:
     * vigil_drill, vigil_drill_step), replacing a key the event has already; string
     * values. The rest NULL. Events that are not maps are sent as they are. */
    const char *mark_keys[SEND_MAX_MARKS];
    const char *mark_vals[SEND_MAX_MARKS];
};

struct send_stats {
    uint64_t events;     /* events acknowledged */
    uint64_t rejected;   /* of them, kept by vigild as rejected_input records (the acks say) */
    uint64_t chunks;     /* chunks acknowledged */
    uint64_t bad_docs;   /* input documents that did not parse (not sent) */
    uint64_t reconnects; /* connections re-made after a failure (chunks resent) */
    double seconds;
};

void send_opts_init(struct send_opts *o);
int send_format_parse(const char *s, enum send_format *out);

/* Writes rec (one msgpack value) to out with o->mark_keys set, as send_files ships it:
 * a map gets the marks (replacing keys of the same names), anything else is copied as
 * it is. Returns 0 or VG_ELIMIT (out's max). */
int send_mark(const struct send_opts *o, struct span rec, struct buf *out) VG_MUST_USE;

/* "HOST:PORT" or "[V6]:PORT" into *host (pointing into hbuf, hcap bytes) and *port
 * (1..65535). Returns 0 or VG_EPARSE. */
int send_hostport_parse(const char *s, const char **host, int *port, char *hbuf, size_t hcap);

/* Sends every document of the files ("-" or no files: standard input) and returns 0
 * when every event was acknowledged and none rejected. Documents that do not parse are
 * reported on stderr with file and line, counted in bad_docs, and make the result
 * VG_EFORMAT after everything else was sent; events vigild acknowledged but could not
 * map (kept as rejected_input records; st->rejected) make it VG_EFORMAT too, with eb
 * saying how many. Returns negative with eb set when the server could not be reached,
 * stopped acknowledging, refused a certificate (VG_ECERT: never retried), or the run
 * passed total_timeout_ms (-ETIMEDOUT). */
int send_files(const struct send_opts *o, char **files, int nfiles, struct send_stats *st,
               struct errbuf *eb);

#endif
