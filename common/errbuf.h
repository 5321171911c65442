/* common/errbuf.h: a sentence for a human, filled at config, rules, TLS and catalog
 * boundaries. Lower case, what failed first, subject quoted, place given:
 * "vigil.yaml:12:3: unknown key 'max_fram'". A NULL errbuf discards the message. */
#ifndef VG_COMMON_ERRBUF_H
#define VG_COMMON_ERRBUF_H

#include "common/vg.h"

struct errbuf {
    char msg[512];
};

void errbuf_clear(struct errbuf *eb);
/* Sets the message unless one is set already (the first failure is the cause). */
void errbuf_set(struct errbuf *eb, const char *fmt, ...) VG_PRINTF(2, 3);
/* Prefixes the existing message: "prefix: old". */
void errbuf_prefix(struct errbuf *eb, const char *fmt, ...) VG_PRINTF(2, 3);
const char *errbuf_msg(const struct errbuf *eb); /* "" when none */

#endif
