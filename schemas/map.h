/* schemas/map.h: the mappers from each source format to the normalized record (schema v1,
 * schemas/event.yaml; field sources per format in shared/corpus/FORMATS.md).
 *
 * Input is one event as a complete msgpack map (JSON sources are converted with
 * json_to_mp first, so one mapper serves Forward and HTTP/JSON). The record's string
 * fields are spans INTO the input bytes wherever possible; values that must be computed
 * (an image "repo:tag", a URL-decoded container name, a joined exec command line, ...)
 * are written into the caller's scratch buffer, which is never grown once a span into
 * it was handed out: a computed field that does not fit is skipped, not truncated.
 * Nothing here allocates except one buf_reserve of an empty scratch buffer.
 *
 * Pure functions over caller memory; any thread. The record stays valid as long as the
 * input bytes and the scratch buffer's current contents do. */
#ifndef VG_SCHEMAS_MAP_H
#define VG_SCHEMAS_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"
#include "schemas/record.h"

enum map_source {
    MAP_AUTO,      /* detect from the event's shape */
    MAP_FALCO,     /* Falco json_output alert */
    MAP_K8S_AUDIT, /* audit.k8s.io Event (one item; EventLists are split by the caller) */
    MAP_SSHD,      /* an sshd/PAM auth line shipped as JSON (Filebeat-like) */
    MAP_SYSLOG,    /* a syslog record shipped as a map (message, or a whole line in log) */
    MAP_TRIVY,     /* one flat Trivy finding (full reports are split by the caller) */
    MAP_GENERIC,   /* any map: message/msg/log, time/timestamp, host, level */
};

/* Scratch capacity map_event reserves when handed an empty scratch buffer (bounded by
 * the buffer's max). Computed fields beyond it are skipped. */
#define MAP_SCRATCH_BYTES 4096

/* Maps one event (the complete msgpack map value event_map) into r, which is
 * re-initialized first. `hint` comes from the listener, the route or the Forward tag
 * (map_source_from_tag); MAP_AUTO detects the format from the shape:
 *   Falco:     "output_fields" and "rule" and "priority";
 *   k8s audit: "kind":"Event" with "auditID" or an "apiVersion" of audit.k8s.io/..., or
 *              "verb" and "objectRef";
 *   Trivy:     "VulnerabilityID";
 *   sshd:      "message" or "syslog_line", with process.name "sshd"/"sshd-session" or
 *              a "syslog_line";
 *   otherwise generic.
 * Sets source ("falco", "k8s-audit", "sshd", "syslog", "trivy", or generic_source for
 * generic events: "forward" or "http"; must be a string with static lifetime), kind,
 * severity (one of the eight names of record.h), ts (the event's own time at full
 * precision, else fallback_ts) and every normalized field FORMATS.md lists for the
 * format; r->raw = event_map, the whole original event. Does not set received, seq or
 * agent (the collector does).
 * Appends to scratch (never resets it: the caller resets it once the record has been
 * encoded). Returns 0, or VG_EFORMAT with a short reason in eb when event_map is not a
 * well-formed map or the hinted format's required shape is broken (a k8s audit event
 * whose kind is not "Event" or that has no verb, a Falco alert without a rule, a Trivy
 * finding without VulnerabilityID). */
int map_event(enum map_source hint, struct span event_map, int64_t fallback_ts,
              const char *generic_source, struct rec *r, struct buf *scratch,
              struct errbuf *eb) VG_MUST_USE;

/* The mapper for a Forward tag or route name: "falco", "falco.*", "k8s.audit",
 * "k8s-audit*", "kube-audit*", "audit.k8s*", "sshd*", "auth", "auth.*", "syslog*",
 * "trivy*"; anything else MAP_AUTO. "syslog.*" gives MAP_SYSLOG (its auth lines still
 * become kind=auth). Case-sensitive, like Fluentd tags. */
enum map_source map_source_from_tag(struct span tag);

/* The source name a hint stands for ("falco", "k8s-audit", ...; NULL for MAP_AUTO and
 * MAP_GENERIC). Static storage. */
const char *map_source_name(enum map_source s);

/* Parses one sshd/PAM/sudo/su text line into auth fields. The line is the MSG part of a
 * syslog message, or a whole line with a BSD, RFC 3339 or RFC 5424 header (the header
 * is skipped; host and process are taken from it when r has none yet, ts is not: use
 * map_syslog_bsd for that). A `message repeated N times: [ ... ]` line is parsed by its
 * inner line (see map_repeat_count for N).
 * On a recognized line sets kind=auth, outcome (success, failure or unknown), action
 * (password, publickey, keyboard-interactive, hostbased, none, invalid_user,
 * max_auth_tries, pam, session, session_close, lockout, sudo, su, not_allowed,
 * refused_connect, negotiation, banner, timeout, protocol_error, disconnect, connect,
 * useradd, groupadd, passwd), severity (warning for failures, info otherwise) and, when
 * the line has them, user, src_ip (IPv4 or IPv6; ::ffff:a.b.c.d is given as a.b.c.d;
 * host names are not IPs and are dropped), dst_ip and dst_port ("Connection from A port
 * N on B port M"), cmdline (sudo COMMAND=) and object (the target account of sudo/su).
 * The client's port is never dst_port. Does not set message or ts. Spans point into
 * line or are static; scratch is unused today (kept for computed fields). Returns true
 * if it recognized an auth line; on false r is unchanged. */
bool map_auth_line(struct span line, struct rec *r, struct buf *scratch);

/* For rsyslog's `message repeated N times: [ LINE]` returns N (1..UINT32_MAX) and sets
 * *inner to LINE; for any other line returns 1 and sets *inner to line. */
uint32_t map_repeat_count(struct span line, struct span *inner);

/* Parses a syslog header and sets *msg to the rest of the line:
 *   BSD (RFC 3164, as rsyslog writes auth.log): "Mar 27 13:08:09 host prog[pid]: msg",
 *     the day space- or zero-padded or not at all; no year and no zone in the line: UTC
 *     is assumed and the year is the latest that does not put the line more than
 *     MAP_SYSLOG_SKEW_NS after ref_ts (the receiver's clock), so December lines received
 *     in January are last year's and January lines received on December 31 next year's;
 *   RFC 3339: "2023-11-14T00:20:42.738197+01:00 host prog[pid]: msg";
 *   RFC 5424: "<38>1 2022-01-19T14:23:55+00:00 host app procid msgid [sd] msg" (the SD
 *     is skipped; "-" fields are absent).
 * A leading "<PRI>" is accepted on the first two shapes. The program tag is
 * "prog[pid]:" or "prog:"; a line without one has no process and msg starts after the
 * host. Fills ts (has_ts), host and process (spans into line). Returns true on
 * success; on false r and *msg are unchanged. */
bool map_syslog_bsd(struct span line, int64_t ref_ts, struct rec *r, struct span *msg);
/* How far ahead of the receiver's clock a BSD timestamp may be and still be this year's:
 * the time is the sender's local time of unknown zone (up to 14 h ahead of UTC), plus
 * clock skew. A line further ahead is the previous year's. */
#define MAP_SYSLOG_SKEW_NS (86400LL * 1000000000LL)

#endif
