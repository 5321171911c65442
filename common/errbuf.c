/* common/errbuf.c: a human-readable failure message carried up to the caller. */
#include "common/errbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void errbuf_clear(struct errbuf *eb)
{
    if (eb) {
        eb->msg[0] = 0;
    }
}

void errbuf_set(struct errbuf *eb, const char *fmt, ...)
{
    va_list ap;

    if (!eb || eb->msg[0]) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
    va_end(ap);
}

void errbuf_prefix(struct errbuf *eb, const char *fmt, ...)
{
    char head[256];
    char old[sizeof(eb->msg)];
    va_list ap;

    if (!eb) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    memcpy(old, eb->msg, sizeof(old));
    snprintf(eb->msg, sizeof(eb->msg), "%s: %s", head, old);
}

const char *errbuf_msg(const struct errbuf *eb)
{
    return eb ? eb->msg : "";
}
