/* collector/syslog_in.h: the syslog listener: RFC 5425 (syslog over TLS) and RFC 6587
 * framing, RFC 5424 / RFC 3164 header parsing and the mapping of one message to a schema
 * v1 record, as pure functions over bytes (no I/O, no clock, no logging; any thread),
 * plus the conn_proto vigild registers for listen.syslog (loop thread).
 *
 * Specs: RFC 5425 section 4.3 (octet-counted TLS framing), RFC 6587 section 3.4
 * (octet counting vs. non-transparent LF framing), RFC 5424 section 6 (the header and
 * STRUCTURED-DATA), RFC 3164 section 4.1 (the BSD header); field sources for auth lines
 * in shared/corpus/FORMATS.md section 3. */
#ifndef VG_COLLECTOR_SYSLOG_IN_H
#define VG_COLLECTOR_SYSLOG_IN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "collector/conn.h"
#include "common/buf.h"
#include "common/span.h"
#include "common/vg.h"
#include "schemas/record.h"

/* RFC 5425: MSG-LEN is NONZERO-DIGIT *DIGIT; more than 10 digits is never a length. */
#define SYSLOG_IN_MAX_LEN_DIGITS 10

enum syslog_in_framing {
    SYSLOG_IN_OCTET_COUNTED, /* "MSG-LEN SP SYSLOG-MSG" */
    SYSLOG_IN_LF,            /* one message per line, LF or CRLF terminated */
};

struct syslog_in_msg {
    enum syslog_in_framing framing;
    /* The SYSLOG-MSG: octet counted, exactly MSG-LEN bytes (a trailing LF inside the
     * count is kept); LF framed, the line without its LF or CRLF. Points into the input.
     * Empty for a blank line (callers skip it). */
    struct span text;
};

/* Takes one frame from the front of *in, advancing *in past it. Framing is chosen per
 * frame as RFC 6587 says: a frame starting with a digit is octet counted, anything else
 * is one LF-terminated line. One exception: a line starting with an RFC 3339 full-date
 * ("2023-11-14...", rsyslog's high-precision file format sent without a PRI) is LF
 * framed, since digits followed by '-' can never be an octet count.
 * Returns the bytes consumed (> 0) and fills *m; 0 when *in holds only a prefix of a
 * frame (every prefix of valid input gives 0; nothing is consumed); -EPROTO for a
 * malformed octet count (a non-digit before the SP, a leading 0 or a length of 0, more
 * than SYSLOG_IN_MAX_LEN_DIGITS digits): the framing of the rest of the stream is lost;
 * VG_ELIMIT when the count, or a line without its LF yet, exceeds max_msg bytes.
 * On a negative return *in is unchanged.
 * Cost: a partial LF-framed line is scanned again on each call (memchr). */
ssize_t syslog_in_next(struct span *in, struct syslog_in_msg *m, size_t max_msg) VG_MUST_USE;

enum syslog_in_format {
    SYSLOG_IN_RFC5424, /* "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]" */
    SYSLOG_IN_RFC3164, /* "[<PRI>]Mmm dd hh:mm:ss HOST TAG[PID]: MSG" */
    SYSLOG_IN_RFC3339, /* "[<PRI>]2023-11-14T00:20:42.738197+01:00 HOST TAG[PID]: MSG" */
    SYSLOG_IN_NOHDR,   /* no header recognized: everything after a PRI is the MSG */
};

/* The parsed header of one message. Spans point into the parsed text; an absent field
 * (or RFC 5424's NILVALUE "-") is an empty span. */
struct syslog_in_hdr {
    enum syslog_in_format format;
    int pri;     /* 0..191, or -1 without a (valid) PRI */
    int version; /* RFC 5424 VERSION; 0 for the other formats */
    bool has_ts;
    int64_t ts;            /* ns UTC, full precision; BSD: year inferred, UTC assumed */
    struct span timestamp; /* the TIMESTAMP as written */
    struct span host;
    struct span app;    /* RFC 5424 APP-NAME, or the BSD tag's program */
    struct span procid; /* RFC 5424 PROCID, or the PID in "TAG[PID]:" */
    struct span msgid;
    struct span sd;    /* RFC 5424 STRUCTURED-DATA as written ("[...]..."), if valid */
    bool sd_malformed; /* SD broken: sd empty and msg starts where SD should have */
    struct span msg;   /* MSG: without a UTF-8 BOM and without trailing CR/LF */
};

/* Parses the header of one message. Never fails: what does not parse ends up in msg
 * (format SYSLOG_IN_NOHDR), so a bad line is still stored. ref_ns is the reference
 * time for the year of BSD timestamps (map_syslog_bsd: the latest year that does not put
 * the date more than MAP_SYSLOG_SKEW_NS after it). */
void syslog_in_parse(struct span text, int64_t ref_ns, struct syslog_in_hdr *h);

/* Caps on the parsed view of STRUCTURED-DATA in raw.sd (the whole text always stays in
 * raw.line): elements per message and params per element; beyond them raw gets
 * "sd_truncated": true. */
#define SYSLOG_IN_SD_MAX_ELEMENTS 64
#define SYSLOG_IN_SD_MAX_PARAMS   64

/* Maps one parsed message (h from syslog_in_parse(text, ...)) into r, re-initialized
 * first: ts (when the header has one), host, process (app), message (msg), severity
 * from the PRI, source "syslog" and kind "log"; an sshd/PAM/sudo/su line recognized by
 * map_auth_line becomes kind "auth" with its outcome, action, user, src_ip, ... and the
 * mapper's severity, and source "sshd" when the program is sshd or sshd-session.
 * raw (appended to `raw`; r->raw points at it) is a msgpack map:
 *   line       the whole text, byte for byte (the original SYSLOG-MSG)
 *   format     "rfc5424", "rfc3164", "rfc3339" or "none"
 *   pri, facility (name: "auth", "authpriv", "local0", ...), version
 *   timestamp, hostname, app, procid, msgid   as written, when present
 *   sd         {SD-ID: {PARAM: value}} with \" \\ \] unescaped; a repeated PARAM gives
 *              an array of its values in order; a repeated SD-ID keeps its first element
 *   sd_truncated, sd_malformed   true when so
 *   repeat     N for rsyslog's "message repeated N times: [ ... ]": the line stands
 *              for N identical events; vigil stores ONE event and records N here
 * Does not set agent, received or seq. String fields point into text, into raw or at
 * static strings; scratch is handed to map_auth_line. Returns 0, or VG_ELIMIT when raw
 * (sized by the caller: 3 * text.n + 1 KiB always suffices) is full. */
int syslog_in_map(struct span text, const struct syslog_in_hdr *h, struct rec *r, struct buf *raw,
                  struct buf *scratch) VG_MUST_USE;

/* The listener: frames from c->in, one event per message stamped with c->agent. */
extern const struct conn_proto syslog_in_proto;

#endif
