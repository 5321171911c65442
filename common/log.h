/* common/log.h: leveled logging to stderr. The level is checked before formatting.
 * A line names its subject; peer bytes are escaped (buf_append_escaped); secrets never. */
#ifndef VG_COMMON_LOG_H
#define VG_COMMON_LOG_H

#include <stdbool.h>

#include "common/vg.h"

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern enum log_level log_threshold; /* set once at start-up, before threads */

void log_set_level(enum log_level lvl);
/* Parses "error", "warn", "info", "debug". Returns 0 or VG_EPARSE. */
int log_level_parse(const char *s, enum log_level *out);
void log_set_prog(const char *prog); /* prefix of every line, e.g. "vigild" */
/* When stderr is the journal's stream (JOURNAL_STREAM names its device and inode, as
 * systemd sets it for a service), lines start with the sd-daemon priority prefix "<3>"
 * to "<7>" instead of a timestamp and the program name, which journald records itself.
 * Call once at start-up, before threads. Returns whether it did. */
bool log_detect_journal(void);
void log_write(enum log_level lvl, const char *fmt, ...) VG_PRINTF(2, 3);

#define log_error(...) log_write(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)                                                                      \
    do {                                                                                   \
        if (log_threshold >= LOG_LVL_WARN)                                                 \
            log_write(LOG_LVL_WARN, __VA_ARGS__);                                          \
    } while (0)
#define log_info(...)                                                                      \
    do {                                                                                   \
        if (log_threshold >= LOG_LVL_INFO)                                                 \
            log_write(LOG_LVL_INFO, __VA_ARGS__);                                          \
    } while (0)
#define log_debug(...)                                                                     \
    do {                                                                                   \
        if (log_threshold >= LOG_LVL_DEBUG)                                                \
            log_write(LOG_LVL_DEBUG, __VA_ARGS__);                                         \
    } while (0)

#endif
