/* common/time.h: event time in int64 nanoseconds since the Unix epoch, UTC. */
#ifndef VG_COMMON_TIME_H
#define VG_COMMON_TIME_H

#include <stddef.h>
#include <stdint.h>

#include "common/span.h"
#include "common/vg.h"

#define VG_NS_PER_SEC 1000000000LL

int64_t vg_now_ns(void);  /* CLOCK_REALTIME */
int64_t vg_mono_ns(void); /* CLOCK_MONOTONIC */

/* RFC 3339 / ISO 8601: "2024-05-01T13:00:00Z", with 0 to 9 fraction digits, 'Z' or an
 * offset (+01:00, +0100), 'T' or ' ' between date and time; a date alone means
 * midnight UTC. Returns 0 or VG_EPARSE. */
int vg_time_parse_rfc3339(struct span s, int64_t *ns);

/* A duration: a positive integer and a unit: ns, us, ms, s, m, h, d, w. */
int vg_duration_parse(struct span s, int64_t *ns);

/* A time given on the command line: RFC 3339, "now", or a duration meaning that long
 * before now_ns ("15m", "2h", "7d"). Returns 0 or VG_EPARSE. */
int vg_time_parse_arg(const char *s, int64_t now_ns, int64_t *ns);
/* A clock time "HH:MM" or "HH:MM:SS" (00:00 to 23:59:59, two digits each): *ns gets the
 * time since midnight. Returns 0 or VG_EPARSE. Pure. */
int vg_clock_parse(struct span s, int64_t *ns);
/* Midnight UTC of the day ns falls on. */
int64_t vg_day_start(int64_t ns);

/* Formats ns as RFC 3339 UTC with `digits` fraction digits (0, 3, 6 or 9) and 'Z'.
 * Needs cap >= 36. Returns the length. */
size_t vg_time_format(int64_t ns, int digits, char *out, size_t cap);

/* Days since 1970-01-01 of a proleptic Gregorian civil date. */
int64_t vg_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
