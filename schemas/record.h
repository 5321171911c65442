/* schemas/record.h: the normalized event record, schema v1 (schemas/event.yaml).
 *
 * On disk and on the wire between modules a record is one msgpack map whose keys are
 * the field names below, present only when known, `raw` last: a bin holding the
 * original event's msgpack value (so readers skip it in O(1)); a plain msgpack value
 * there (older writers) is read too. struct rec is both the
 * builder (mappers fill it, rec_encode writes it) and the view (rec_decode fills it
 * with spans into the encoded bytes, copying nothing). */
#ifndef VG_SCHEMAS_RECORD_H
#define VG_SCHEMAS_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/span.h"
#include "common/vg.h"

enum vg_field {
    VG_F_TS,       /* int64 ns, event time */
    VG_F_RECEIVED, /* int64 ns, when the collector received it */
    VG_F_SEQ,      /* uint64, per-store monotonic id */
    VG_F_AGENT,
    VG_F_SOURCE,
    VG_F_KIND,
    VG_F_SEVERITY,
    VG_F_HOST,
    VG_F_NAMESPACE,
    VG_F_POD,
    VG_F_CONTAINER_ID,
    VG_F_CONTAINER_NAME,
    VG_F_IMAGE,
    VG_F_USER,
    VG_F_SRC_IP,
    VG_F_DST_IP,
    VG_F_DST_PORT, /* int */
    VG_F_PROCESS,
    VG_F_CMDLINE,
    VG_F_RULE,
    VG_F_ACTION,
    VG_F_OBJECT,
    VG_F_OUTCOME,
    VG_F_CVE,
    VG_F_PACKAGE,
    VG_F_MESSAGE,
    VG_F_RAW, /* any msgpack value: the original payload */
    VG_F_COUNT
};

enum vg_field_type {
    VG_FT_TIME,     /* int64 ns */
    VG_FT_UINT,     /* seq */
    VG_FT_INT,      /* dst_port */
    VG_FT_STR,      /* free text or identifier */
    VG_FT_IP,       /* textual IPv4 or IPv6 address */
    VG_FT_SEVERITY, /* one of the eight names below */
    VG_FT_RAW,
};

const char *vg_field_name(enum vg_field f);
enum vg_field_type vg_field_type(enum vg_field f);
/* Returns the field named name, or -1. */
int vg_field_lookup(struct span name);

/* Severities, most severe first: the rank is the index (syslog numbering). */
enum vg_severity {
    VG_SEV_EMERGENCY,
    VG_SEV_ALERT,
    VG_SEV_CRITICAL,
    VG_SEV_ERROR,
    VG_SEV_WARNING,
    VG_SEV_NOTICE,
    VG_SEV_INFO,
    VG_SEV_DEBUG,
    VG_SEV_COUNT
};
const char *vg_severity_name(enum vg_severity s);
/* Case-insensitive; accepts the eight names and the spellings sources use: Falco's
 * "Informational", syslog's "err"/"crit"/"emerg"/"warn", and scanner levels
 * "high" (error), "medium" (warning), "low" (notice), "unknown"/"negligible" (info).
 * Returns the rank or -1. */
int vg_severity_parse(struct span s);

struct rec {
    int64_t ts;
    int64_t received;
    uint64_t seq;
    int64_t dst_port;
    bool has_ts, has_received, has_seq, has_dst_port;
    struct span str[VG_F_COUNT]; /* string fields; p == NULL when absent */
    struct span raw;             /* one encoded msgpack value; n == 0 when absent */
};

void rec_init(struct rec *r); /* all fields absent */

/* Sets a string field (ignored when s.n == 0). The bytes must outlive the record. */
void rec_set(struct rec *r, enum vg_field f, struct span s);
static inline bool rec_has(const struct rec *r, enum vg_field f)
{
    return r->str[f].p != NULL;
}

/* Appends the record's msgpack map to out. Returns 0 or VG_ELIMIT. */
int rec_encode(const struct rec *r, struct buf *out) VG_MUST_USE;

/* Fills r from one encoded record at the front of *in, advancing past it. Spans point
 * into *in's bytes. Unknown keys are skipped (newer writers). Returns 0, or
 * VG_ECORRUPT when the bytes are not a record. */
int rec_decode(struct span *in, struct rec *r) VG_MUST_USE;

#endif
