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
    size_t hn = strlen(head);
    size_t on = strlen(old);
    size_t cap = sizeof(eb->msg) - 1;
    size_t n = 0;
    /* Truncate by hand: the message is best effort, never an overflow. */
    for (size_t i = 0; i < hn && n < cap; i++) {
        eb->msg[n++] = head[i];
    }
    for (size_t i = 0; i < 2 && n < cap; i++) {
        eb->msg[n++] = ": "[i];
    }
    for (size_t i = 0; i < on && n < cap; i++) {
        eb->msg[n++] = old[i];
    }
    eb->msg[n] = 0;
}

const char *errbuf_msg(const struct errbuf *eb)
{
    return eb ? eb->msg : "";
}
