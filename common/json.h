/* common/json.h: JSON <-> msgpack. The only module that includes a JSON library.
 * JSON documents are parsed with yajl's event parser and packed as msgpack while they
 * are lexed, with no document tree (5x faster than building a jansson tree on the
 * bench mix). Integers stay int64 (Falco's evt.time exceeds 2^53), uint64 above that,
 * doubles otherwise; key order is kept. msgpack values are written back as JSON text
 * directly. Pure; any thread. */
#ifndef VG_COMMON_JSON_H
#define VG_COMMON_JSON_H

#include <stdint.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"

/* Parses the first JSON value in text (leading white space skipped) and appends it to
 * out as msgpack. Strings are kept byte for byte, valid UTF-8 or not, and a code point
 * U+DC80..U+DCFF (escaped, as mp_to_json writes them) becomes the byte 0x80..0xFF. *used (if not
 * NULL) gets the bytes of text consumed, so a stream of concatenated or pretty-printed documents
 * can be walked. Returns 0; VG_EFORMAT for bad JSON, with "line L column C: why" in eb and, as
 * numbers, eb->pos (line and column in text; at_end when the text ended inside the value: a
 * document cut off) and errbuf_reason() (why, without place or yajl's category); -ENODATA when text
 * holds only white space; VG_ELIMIT when out's max would be passed. */
int json_to_mp(struct span text, struct buf *out, size_t *used, struct errbuf *eb) VG_MUST_USE;

/* Appends one msgpack value as JSON text. A byte of a string that is not valid UTF-8
 * (0x80..0xFF) is written as the escape of a lone low surrogate, "\udc80".."\udcff"
 * (Python's surrogateescape), which json_to_mp reads back as that byte: strings round-trip
 * byte for byte (schemas/event.yaml). bin as a base64 string; ext as
 * {"ext":T,"data":"b64"}. Returns 0, VG_ELIMIT, or VG_ECORRUPT for malformed msgpack. */
int mp_to_json(struct span value, struct buf *out) VG_MUST_USE;

/* Appends s as a quoted JSON string. */
int json_append_str(struct buf *out, struct span s) VG_MUST_USE;

#endif
