/* common/time.c: parsing and formatting of event times. Pure; any thread. */
#include "common/time.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

int64_t vg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * VG_NS_PER_SEC + ts.tv_nsec;
}

int64_t vg_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * VG_NS_PER_SEC + ts.tv_nsec;
}

/* Howard Hinnant's days_from_civil. */
int64_t vg_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const uint8_t **p, const uint8_t *end, int n, unsigned *out)
{
    unsigned v = 0;
    if (end - *p < n) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        uint8_t c = (*p)[i];
        if (c < '0' || c > '9') {
            return -1;
        }
        v = v * 10 + (unsigned)(c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const uint8_t **p, const uint8_t *end, char c)
{
    if (*p >= end || **p != (uint8_t)c) {
        return -1;
    }
    (*p)++;
    return 0;
}

int vg_time_parse_rfc3339(struct span s, int64_t *ns)
{
    const uint8_t *p = s.p;
    const uint8_t *end = s.p + s.n;
    unsigned y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac = 0;
    int64_t off_s = 0;

    if (digits(&p, end, 4, &y) || expect(&p, end, '-') || digits(&p, end, 2, &mo) ||
        expect(&p, end, '-') || digits(&p, end, 2, &d)) {
        return VG_EPARSE;
    }
    static const uint8_t mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap)) {
        return VG_EPARSE;
    }
    /* int64 nanoseconds cover 1677-09-21 to 2262-04-11: whole years inside that. */
    if (y < 1678 || y > 2261) {
        return VG_EPARSE;
    }
    if (p < end) {
        if (*p != 'T' && *p != 't' && *p != ' ') {
            return VG_EPARSE;
        }
        p++;
        if (digits(&p, end, 2, &h) || expect(&p, end, ':') || digits(&p, end, 2, &mi)) {
            return VG_EPARSE;
        }
        if (p < end && *p == ':') {
            p++;
            if (digits(&p, end, 2, &sec)) {
                return VG_EPARSE;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) {
            return VG_EPARSE;
        }
        if (p < end && (*p == '.' || *p == ',')) {
            p++;
            int nd = 0;
            while (p < end && *p >= '0' && *p <= '9') {
                if (nd < 9) {
                    frac = frac * 10 + (*p - '0');
                }
                nd++;
                p++;
            }
            if (nd == 0) {
                return VG_EPARSE;
            }
            for (int i = nd; i < 9; i++) {
                frac *= 10;
            }
        }
        if (p < end) {
            if (*p == 'Z' || *p == 'z') {
                p++;
            } else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1;
                unsigned oh, om;
                p++;
                if (digits(&p, end, 2, &oh)) {
                    return VG_EPARSE;
                }
                if (p < end && *p == ':') {
                    p++;
                }
                if (digits(&p, end, 2, &om) || oh > 23 || om > 59) {
                    return VG_EPARSE;
                }
                off_s = sign * (int64_t)(oh * 3600 + om * 60);
            } else {
                return VG_EPARSE;
            }
        }
    }
    if (p != end) {
        return VG_EPARSE;
    }
    int64_t days = vg_days_from_civil(y, mo, d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - off_s;
    *ns = secs * VG_NS_PER_SEC + frac;
    return 0;
}

int vg_duration_parse(struct span s, int64_t *ns)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {
        { "ns", 1 },
        { "us", 1000 },
        { "ms", 1000000 },
        { "s", VG_NS_PER_SEC },
        { "m", 60 * VG_NS_PER_SEC },
        { "h", 3600 * VG_NS_PER_SEC },
        { "d", 86400 * VG_NS_PER_SEC },
        { "w", 7 * 86400 * VG_NS_PER_SEC },
    };
    size_t i = 0;
    uint64_t v;

    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
        i++;
    }
    if (i == 0 || parse_u64((struct span){ s.p, i }, UINT32_MAX, &v) < 0) {
        return VG_EPARSE;
    }
    struct span unit = { s.p + i, s.n - i };
    for (size_t u = 0; u < VG_ARRAY_LEN(units); u++) {
        if (span_eq_str(unit, units[u].unit)) {
            if (v > (uint64_t)(INT64_MAX / units[u].ns)) {
                return VG_EPARSE;
            }
            *ns = (int64_t)v * units[u].ns;
            return 0;
        }
    }
    return VG_EPARSE;
}

int vg_time_parse_arg(const char *s, int64_t now_ns, int64_t *ns)
{
    struct span sp = span_str(s);
    int64_t d;

    if (span_eq_str(sp, "now")) {
        *ns = now_ns;
        return 0;
    }
    if (vg_duration_parse(sp, &d) == 0) {
        *ns = now_ns - d;
        return 0;
    }
    return vg_time_parse_rfc3339(sp, ns);
}

int vg_clock_parse(struct span s, int64_t *ns)
{
    unsigned v[3] = { 0, 0, 0 };
    size_t parts = 0;

    if (s.n != 5 && s.n != 8) {
        return VG_EPARSE;
    }
    for (size_t i = 0; i < s.n; i += 3) {
        if (s.p[i] < '0' || s.p[i] > '9' || s.p[i + 1] < '0' || s.p[i + 1] > '9' ||
            (i + 2 < s.n && s.p[i + 2] != ':')) {
            return VG_EPARSE;
        }
        v[parts++] = (unsigned)(s.p[i] - '0') * 10 + (unsigned)(s.p[i + 1] - '0');
    }
    if (v[0] > 23 || v[1] > 59 || v[2] > 59) {
        return VG_EPARSE;
    }
    *ns = ((int64_t)v[0] * 3600 + v[1] * 60 + v[2]) * VG_NS_PER_SEC;
    return 0;
}

int64_t vg_day_start(int64_t ns)
{
    const int64_t day = 86400 * VG_NS_PER_SEC;
    int64_t d = ns / day;

    if (ns % day < 0) {
        d--;
    }
    return d * day;
}

size_t vg_time_format(int64_t ns, int ndigits, char *out, size_t cap)
{
    int64_t secs = ns / VG_NS_PER_SEC;
    int64_t frac = ns % VG_NS_PER_SEC;
    int64_t y;
    unsigned m, d;

    if (frac < 0) {
        frac += VG_NS_PER_SEC;
        secs--;
    }
    int64_t days = secs / 86400;
    int64_t rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    int n = snprintf(out, cap, "%04lld-%02u-%02uT%02d:%02d:%02d", (long long)y, m, d,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
    if (n < 0 || (size_t)n >= cap) {
        return 0;
    }
    if (ndigits > 0) {
        int64_t div = 1;
        for (int i = ndigits; i < 9; i++) {
            div *= 10;
        }
        n += snprintf(out + n, cap - (size_t)n, ".%0*lld", ndigits, (long long)(frac / div));
    }
    if ((size_t)n + 1 < cap) {
        out[n++] = 'Z';
        out[n] = 0;
    }
    return (size_t)n;
}
