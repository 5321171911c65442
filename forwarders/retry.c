/* forwarders/retry.c: what an answer means for an outbox entry, how long to wait before
 * the next attempt, and the Retry-After header. Pure; any thread. */
#include <string.h>

#include "common/time.h"
#include "forwarders/fwd_int.h"

enum fwd_outcome fwd_classify(long status)
{
    if (status >= 200 && status < 300) {
        return FWD_DELIVERED;
    }
    /* No answer (refused, reset, timeout, DNS), a server error, "too many requests" and
     * "request timeout" say nothing about the alert: try again later. PagerDuty's Events
     * API v2 documents exactly this split (developer-docs events-API-v2 01-Overview,
     * "Response Codes & Retry Logic": 400 no retry, 429 and 5xx retry, network error
     * retry); Opsgenie and Slack answer the same classes. */
    if (status == 0 || status == 408 || status == 429 || status >= 500) {
        return FWD_RETRY;
    }
    /* 3xx (not followed: a receiver URL that redirects is a configuration error) and
     * the other 4xx: this request will never be accepted as it is. */
    return FWD_DEAD;
}

int64_t fwd_backoff_ns(int64_t min_ns, int64_t max_ns, unsigned failures, double rnd)
{
    int64_t d = min_ns > 0 ? min_ns : 1;

    for (unsigned i = 1; i < failures && d < max_ns; i++) {
        d = d > INT64_MAX / 2 ? INT64_MAX : d * 2;
    }
    if (d > max_ns) {
        d = max_ns;
    }
    if (rnd < 0 || rnd >= 1) {
        rnd = 0;
    }
    /* "Equal jitter": at least half the delay, so a receiver that is down is not
     * hammered, and the rest at random, so receivers that come back are not hit by
     * every queued retry at the same instant. */
    return d / 2 + (int64_t)((double)(d - d / 2) * rnd);
}

static int month_of(const uint8_t *p)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int m = 0; m < 12; m++) {
        if (memcmp(p, names + 3 * m, 3) == 0) {
            return m + 1;
        }
    }
    return 0;
}

static bool digits(const uint8_t *p, size_t n, int64_t *out)
{
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* RFC 9110 5.6.7 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (29 bytes). The obsolete
 * RFC 850 and asctime forms are not worth a parser: a receiver sending them gets our
 * own backoff instead. */
static int parse_imf_fixdate(struct span v, int64_t *ns)
{
    const uint8_t *p = v.p;
    int64_t day;
    int64_t year;
    int64_t hh;
    int64_t mm;
    int64_t ss;

    if (v.n != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
        p[19] != ':' || p[22] != ':' || p[25] != ' ' || memcmp(p + 26, "GMT", 3) != 0) {
        return VG_EPARSE;
    }
    int month = month_of(p + 8);
    if (!digits(p + 5, 2, &day) || !digits(p + 12, 4, &year) || !digits(p + 17, 2, &hh) ||
        !digits(p + 20, 2, &mm) || !digits(p + 23, 2, &ss) || month == 0 || day < 1 || day > 31 ||
        hh > 23 || mm > 59 || ss > 60 || year < 1970 || year > 2200) {
        return VG_EPARSE; /* (past 2262 the time would not fit int64 nanoseconds) */
    }
    int64_t days = vg_days_from_civil(year, (unsigned)month, (unsigned)day);
    *ns = ((days * 86400) + hh * 3600 + mm * 60 + ss) * VG_NS_PER_SEC;
    return 0;
}

int fwd_retry_after_parse(struct span v, int64_t now_ns, int64_t *delay_ns)
{
    uint64_t secs;

    while (v.n > 0 && (v.p[0] == ' ' || v.p[0] == '\t')) {
        span_advance(&v, 1);
    }
    while (v.n > 0 && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t' || v.p[v.n - 1] == '\r')) {
        v.n--;
    }
    if (v.n == 0) {
        return VG_EPARSE;
    }
    if (v.p[0] >= '0' && v.p[0] <= '9') {
        /* delay-seconds; more than a year is not a plan but a mistake */
        if (parse_u64(v, 366ULL * 86400, &secs) < 0) {
            return VG_EPARSE;
        }
        *delay_ns = (int64_t)secs * VG_NS_PER_SEC;
        return 0;
    }
    int64_t at;
    if (parse_imf_fixdate(v, &at) < 0) {
        return VG_EPARSE;
    }
    *delay_ns = at > now_ns ? at - now_ns : 0;
    return 0;
}
