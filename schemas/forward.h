/* schemas/forward.h: the Fluentd Forward protocol v1 codec. Pure functions over bytes:
 * no I/O, no clock, no logging; any thread.
 *
 * Spec: Fluentd "Forward Protocol Specification v1" (fluent/fluentd wiki), sections
 * "Event Modes" (Message, Forward, PackedForward, CompressedPackedForward), "EventTime
 * Ext Format", "Option" and "Response". The handshake phase (HELO/PING/PONG) is not
 * handled here.
 *
 * Reading goes through common/mp.h's bounded cursor: a frame's length is checked with
 * mp_value_len() against max_frame before any element is looked at, so nothing a peer
 * claims is trusted. Decoded spans point into the caller's bytes (or, for the entries
 * of a CompressedPackedForward message, into the caller's scratch buffer). */
#ifndef VG_SCHEMAS_FORWARD_H
#define VG_SCHEMAS_FORWARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/span.h"
#include "common/vg.h"

/* Nesting levels allowed in one frame: the message array (1), the entries array (2),
 * an entry (3), the record (4) and 28 more inside the record. A PackedForward entry is
 * held to the same record depth (FORWARD_MAX_DEPTH - 2 levels from the entry down). */
#define FORWARD_MAX_DEPTH 32

/* Largest ack response forward_decode_ack() reads ({"ack": id}; ids are ~32 bytes). */
#define FORWARD_ACK_MAX 4096

enum forward_mode {
    FORWARD_MESSAGE,    /* [tag, time, record(, option)] */
    FORWARD_FORWARD,    /* [tag, [[time, record], ...](, option)] */
    FORWARD_PACKED,     /* [tag, bin-or-str of concatenated entries(, option)] */
    FORWARD_COMPRESSED, /* PackedForward with option compressed: "gzip" */
};

struct forward_msg {
    enum forward_mode mode;
    struct span tag; /* the tag string */
    /* FORWARD: the msgpack array of [time, record] entries (whole value); PACKED: the
     * concatenated entries stream (contents of the bin/str); COMPRESSED: the gzip
     * bytes; MESSAGE: empty. */
    struct span entries;
    uint32_t count;       /* FORWARD: entries in the array header; else 0 */
    int64_t time_ns;      /* MESSAGE: the event time */
    struct span record;   /* MESSAGE: the record map (whole msgpack value) */
    struct span chunk;    /* option "chunk" (str or bin; empty if none): the ack id */
    uint32_t size_opt;    /* option "size", 0 if absent */
    bool compressed_gzip; /* option compressed == "gzip" */
};

/* Decodes one complete Forward message at the front of `in` into *m (spans into `in`).
 * Returns the bytes consumed (> 0); 0 when `in` holds only a prefix of what could still
 * be a valid message (need more: never an error for a prefix of a valid message);
 * -EPROTO for a malformed message (not an array of 2..4, tag not a string, second
 * element neither time, array, bin nor str, arity wrong for the mode, bad time, record
 * not a map, option neither map nor nil, bad option value, unknown compression,
 * nesting deeper than FORWARD_MAX_DEPTH); VG_ELIMIT when the message is, or claims to
 * become, longer than max_frame. Garbage is rejected as soon as its first bytes show it
 * cannot start a message. Entries are not checked here: forward_iter_next() does.
 *
 * Leniencies, as Fluentd's in_forward has them: option nil is no option; chunk, size
 * and compressed nil are absent; compressed "text" means not compressed; unknown option
 * keys (fluent_signal, ...) are ignored; compressed on a Message or Forward mode message
 * is ignored. A time is an integer (seconds), EventTime (ext 0, 8 bytes) or a float
 * (seconds), non-negative and below 2^63 ns.
 *
 * Cost: stateless, so each call measures the whole buffered prefix again; a frame that
 * arrives in k reads costs k measures (bin/str payloads are skipped, not scanned: only
 * Forward mode's many small entries cost). Measured at -O2: a 16 MiB Forward-mode frame
 * of 158k entries fed 64 KiB at a time takes 0.6 s in total; a 2 MiB one 20 ms. */
ssize_t forward_decode(struct span in, struct forward_msg *m, size_t max_frame) VG_MUST_USE;

/* Iterator over the events of a decoded message. Implementation state: read only
 * `metadata` (see forward_iter_next). */
struct forward_iter {
    enum forward_mode mode;
    struct span rest;    /* FORWARD: the entries after those returned; PACKED: the stream */
    uint32_t left;       /* FORWARD: entries not yet returned */
    bool message_done;   /* MESSAGE: the one event was returned */
    int err;             /* sticky error of the last call, 0 if none */
    int64_t msg_time_ns; /* MESSAGE: the event */
    struct span msg_record;
    /* Fluent Bit's log event format 2 ([[time, metadata], record] entries): the
     * metadata map of the entry last returned; empty for every other entry shape. */
    struct span metadata;
};

/* Prepares *it over m's events. For COMPRESSED, gunzips m->entries into scratch (reset
 * first; concatenated gzip members allowed, as the spec allows) so scratch must outlive
 * the iteration and not change meanwhile; scratch->max bounds the decompressed size (the
 * gzip-bomb limit). scratch is unused (may be NULL) for the other modes. Returns 0,
 * -EPROTO for a broken gzip stream or a FORWARD entries value that is not an array,
 * VG_ELIMIT when the decompressed entries exceed scratch->max, -ENOMEM if zlib cannot
 * allocate its state. Blocks only for the CPU time of decompression. */
int forward_iter_init(struct forward_iter *it, const struct forward_msg *m,
                      struct buf *scratch) VG_MUST_USE;

/* Returns 1 with the next event's time (ns) and record (the whole msgpack map value,
 * pointing into the message or scratch), 0 at the end, -EPROTO for a malformed entry
 * (not an array of 2, time not an integer / EventTime / float in range, record not a
 * map, nesting too deep, a PackedForward stream cut inside an entry). An entry may also
 * be Fluent Bit's [[time, metadata-map], record]; its metadata is then in it->metadata.
 * After an error, every later call returns the same error. */
int forward_iter_next(struct forward_iter *it, int64_t *time_ns, struct span *record) VG_MUST_USE;

/* Encoders. Each appends one complete value to out and returns 0, or VG_ELIMIT when
 * out->max would be exceeded, or -EINVAL for arguments they cannot encode (a record that
 * is not exactly one msgpack map, entries that are not exactly `count` msgpack values,
 * a time before 1970 or past 2106, which EventTime cannot hold). On error out is left as
 * it was. Chunk ids are written as str; an empty chunk writes no chunk option. */

/* The server's ack response {"ack": chunk}, or {"ack": chunk, "rejected": n} when n > 0
 * of the chunk's entries did not map to the schema (vigild keeps each as a source=vigil
 * rejected_input record; clients that know only "ack" ignore the other key, as the
 * spec's readers of an ack do). */
int forward_encode_ack(struct buf *out, struct span chunk, uint64_t rejected) VG_MUST_USE;
/* One PackedForward / Forward entry [EventTime, record] appended to entries. */
int forward_encode_entry(struct buf *entries, int64_t time_ns, struct span record_map) VG_MUST_USE;
/* [tag, bin(entries), {"size": count(, "chunk": chunk)}]: entries are `count` entries
 * concatenated (as forward_encode_entry appends them). */
int forward_encode_packed(struct buf *out, struct span tag, struct span entries, uint32_t count,
                          struct span chunk) VG_MUST_USE;
/* [tag, EventTime, record(, {"chunk": chunk})]. */
int forward_encode_message(struct buf *out, struct span tag, int64_t time_ns,
                           struct span record_map, struct span chunk) VG_MUST_USE;
/* [tag, [entries...], {"size": count(, "chunk": chunk)}]: entries_array_values are the
 * `count` entries without an array header. */
int forward_encode_forward(struct buf *out, struct span tag, struct span entries_array_values,
                           uint32_t count, struct span chunk) VG_MUST_USE;
/* [tag, bin(gzip(entries)), {"size": count, "compressed": "gzip"(, "chunk": chunk)}].
 * Blocks for the CPU time of compression. */
int forward_encode_compressed(struct buf *out, struct span tag, struct span entries, uint32_t count,
                              struct span chunk) VG_MUST_USE;

/* Client side: parses an ack response {"ack": id} at the front of in (id str or bin;
 * other keys ignored but "rejected", a count read into *rejected (may be NULL; 0 when
 * absent)). Returns bytes consumed (> 0) with *chunk pointing into in, 0 when in holds
 * only a prefix of a map (need more), -EPROTO for anything else (not a map, no "ack", id
 * of another type, "rejected" not a count, longer than FORWARD_ACK_MAX). */
ssize_t forward_decode_ack(struct span in, struct span *chunk, uint64_t *rejected) VG_MUST_USE;

#endif
