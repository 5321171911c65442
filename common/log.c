/* common/log.c: leveled log lines on stderr, one write(2) per line so lines from the
 * loop and the writer thread do not interleave. Under systemd, stderr is the journal and
 * each line carries its priority (sd-daemon(3) prefixes) so `journalctl -p warning` works. */
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_LVL_INFO;
static const char *log_prog = "vigil";
static bool log_journal; /* set once by log_detect_journal() */

void log_set_level(enum log_level lvl)
{
    log_threshold = lvl;
}

int log_level_parse(const char *s, enum log_level *out)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    for (size_t i = 0; i < VG_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return VG_EPARSE;
}

void log_set_prog(const char *prog)
{
    log_prog = prog;
}

bool log_detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    uintmax_t dev;
    uintmax_t ino;
    struct stat st;
    char end;

    /* "DEV:INO" of the stream systemd connected; stderr may since have been redirected. */
    log_journal = js && sscanf(js, "%ju:%ju%c", &dev, &ino, &end) == 2 &&
                  fstat(STDERR_FILENO, &st) == 0 && (uintmax_t)st.st_dev == dev &&
                  (uintmax_t)st.st_ino == ino;
    return log_journal;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    static const char *tags[] = { "error", "warn", "info", "debug" };
    static const int prio[] = { 3, 4, 6, 7 }; /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (lvl > log_threshold) {
        return;
    }
    if (log_journal) {
        n = snprintf(line, sizeof(line), "<%d>%s: ", prio[lvl], tags[lvl]);
    } else {
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, log_prog, tags[lvl]);
    }
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
