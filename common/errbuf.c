/* common/errbuf.c: a human-readable failure message carried up to the caller. */
#include "common/errbuf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void errbuf_clear(struct errbuf *eb)
{
    if (eb) {
        eb->msg[0] = 0;
        eb->pos = (struct errpos){ 0, 0, false };
        eb->reason = 0;
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
    /* The reason moved right by the prefix (or was cut off with the end). */
    size_t r = (size_t)eb->reason + (n - on < hn + 2 ? n - on : hn + 2);
    eb->reason = (uint16_t)(r < n ? r : n);
}

const char *errbuf_msg(const struct errbuf *eb)
{
    return eb ? eb->msg : "";
}

void errbuf_set_at(struct errbuf *eb, struct errpos pos, const char *kind, const char *reason)
{
    if (!eb || eb->msg[0]) {
        return;
    }
    int head = snprintf(eb->msg, sizeof(eb->msg), "line %" PRIu32 " column %" PRIu32 ": %s",
                        pos.line, pos.column, kind);
    size_t at = head > 0 && (size_t)head < sizeof(eb->msg) ? (size_t)head : strlen(eb->msg);
    snprintf(eb->msg + at, sizeof(eb->msg) - at, "%s", reason);
    eb->pos = pos;
    eb->reason = (uint16_t)at;
}

void errbuf_set_pos(struct errbuf *eb, struct errpos pos)
{
    if (eb && eb->msg[0] && eb->pos.line == 0) {
        eb->pos = pos;
    }
}

const char *errbuf_reason(const struct errbuf *eb)
{
    return eb ? eb->msg + eb->reason : "";
}
