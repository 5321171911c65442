/* common/errbuf.h: a sentence for a human, filled at config, rules, TLS and catalog
 * boundaries. Lower case, what failed first, subject quoted, place given:
 * "vigil.yaml:12:3: unknown key 'max_fram'". A NULL errbuf discards the message.
 *
 * An error about a place in a text also carries the place as numbers (errbuf_set_at):
 * a caller that reports it in its own terms (an HTTP reply pointing into a request body)
 * reads pos and errbuf_reason() instead of parsing the sentence back. */
#ifndef VG_COMMON_ERRBUF_H
#define VG_COMMON_ERRBUF_H

#include <stdbool.h>
#include <stdint.h>

#include "common/vg.h"

/* Where in a text an error is. */
struct errpos {
    uint32_t line;   /* 1-based; 0: no place given */
    uint32_t column; /* 1-based */
    bool at_end;     /* the text ended inside what was being read: it was cut off */
};

struct errbuf {
    char msg[512];
    struct errpos pos; /* set by errbuf_set_at, else zero */
    uint16_t reason;   /* offset in msg of what errbuf_reason returns */
};

void errbuf_clear(struct errbuf *eb);
/* Sets the message unless one is set already (the first failure is the cause). */
void errbuf_set(struct errbuf *eb, const char *fmt, ...) VG_PRINTF(2, 3);
/* Prefixes the existing message: "prefix: old". */
void errbuf_prefix(struct errbuf *eb, const char *fmt, ...) VG_PRINTF(2, 3);
const char *errbuf_msg(const struct errbuf *eb); /* "" when none */

/* Sets, unless a message is set already, "line L column C: <kind><reason>" and pos. kind
 * is the parser's category ("lexical error: ") or "". */
void errbuf_set_at(struct errbuf *eb, struct errpos pos, const char *kind, const char *reason);
/* Records where in its text the error the message describes is (when one is set and
 * has no place yet), for a caller that reports it in its own terms. */
void errbuf_set_pos(struct errbuf *eb, struct errpos pos);
/* The reason alone: what errbuf_set_at was given (without place or kind), or the
 * message errbuf_set set; in both cases without what errbuf_prefix added. "" when none. */
const char *errbuf_reason(const struct errbuf *eb);

#endif
