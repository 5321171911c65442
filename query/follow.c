/* query/follow.c: following the store's committed records in seq order (see follow.h).
 *
 * Why the horizon: the reader sees an open segment up to its current size, which may
 * hold blocks of a commit still in progress (written before their fdatasync and catalog
 * update, segment.md 5.2) and, in a commit that touches two partitions, the blocks of
 * one before the other's: delivering past the catalog's committed seq could skip a
 * lower seq that lands a moment later, or show records a failed commit then cuts
 * (5.3). Up to the horizon every record is synced and listed. */
#include "query/follow.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xalloc.h"

struct follow_rec {
    int64_t ts;
    uint64_t seq;
    size_t off; /* in bytes */
    size_t len;
};

struct follow {
    struct store_reader *rd;
    uint64_t pos;
    /* one poll's records */
    struct follow_rec *recs;
    size_t n, cap;
    uint8_t *bytes;
    size_t nbytes, capbytes;
    uint64_t lo, hi; /* the poll collects seqs in (lo, hi] */
};

/* Set by the signal handler only. */
static volatile sig_atomic_t follow_stop_flag;

static void on_stop_signal(int sig)
{
    (void)sig;
    follow_stop_flag = 1;
}

void follow_catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a sleep ends at once */
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    (void)sigaction(SIGPIPE, &sa, NULL);
}

bool follow_stopped(void)
{
    return follow_stop_flag != 0;
}

void follow_wait(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    if (!follow_stopped()) {
        (void)nanosleep(&ts, NULL); /* EINTR: a signal, which the caller checks */
    }
}

int follow_open(const char *dir, uint64_t position, struct follow **out, struct errbuf *eb)
{
    struct follow *fl = xcalloc(1, sizeof(*fl));
    int rc = store_reader_open(dir, &fl->rd, eb);

    if (rc < 0) {
        free(fl);
        return rc;
    }
    fl->pos = position;
    *out = fl;
    return 0;
}

int follow_committed(struct follow *fl, uint64_t *seq, struct errbuf *eb)
{
    int rc = store_reader_committed_seq(fl->rd, seq);

    if (rc < 0) {
        errbuf_set(eb, "%s", store_reader_error(fl->rd));
    }
    return rc;
}

uint64_t follow_position(const struct follow *fl)
{
    return fl->pos;
}

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct follow *fl = arg;

    if (seq <= fl->lo || seq > fl->hi) {
        return 0; /* delivered before, or not committed yet */
    }
    if (fl->n == fl->cap) {
        fl->cap = fl->cap ? 2 * fl->cap : 256;
        fl->recs = xrealloc(fl->recs, fl->cap * sizeof(*fl->recs));
    }
    if (fl->nbytes + rec.n > fl->capbytes) {
        size_t c = fl->capbytes ? fl->capbytes : 1 << 16;
        while (c < fl->nbytes + rec.n) {
            c *= 2;
        }
        fl->bytes = xrealloc(fl->bytes, c);
        fl->capbytes = c;
    }
    memcpy(fl->bytes + fl->nbytes, rec.p, rec.n);
    fl->recs[fl->n++] = (struct follow_rec){ ts, seq, fl->nbytes, rec.n };
    fl->nbytes += rec.n;
    return 0;
}

static int cmp_seq(const void *a, const void *b)
{
    const struct follow_rec *x = a;
    const struct follow_rec *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int follow_poll(struct follow *fl, store_rec_fn fn, void *arg, struct errbuf *eb)
{
    uint64_t horizon;
    int rc;

    if ((rc = follow_committed(fl, &horizon, eb)) < 0) {
        return rc;
    }
    if (horizon <= fl->pos) {
        return 0;
    }
    fl->lo = fl->pos;
    fl->hi = horizon - fl->pos > FOLLOW_BATCH ? fl->pos + FOLLOW_BATCH : horizon;
    fl->n = 0;
    fl->nbytes = 0;
    rc = store_scan_from_seq(fl->rd, fl->lo + 1, on_rec, fl, NULL);
    if (rc < 0) {
        errbuf_set(eb, "%s", store_reader_error(fl->rd));
        return rc;
    }
    if (fl->n > 1) {
        qsort(fl->recs, fl->n, sizeof(*fl->recs), cmp_seq);
    }
    int delivered = 0;
    for (size_t i = 0; i < fl->n; i++) {
        const struct follow_rec *r = &fl->recs[i];
        if (i > 0 && r->seq == fl->recs[i - 1].seq) {
            continue; /* cannot happen in one plan; never twice all the same */
        }
        struct span s = { fl->bytes + r->off, r->len };
        int frc = fn(arg, r->ts, r->seq, s);
        fl->pos = r->seq;
        if (frc != 0) {
            return frc;
        }
        delivered++;
    }
    fl->pos = fl->hi;
    return delivered;
}

void follow_close(struct follow *fl)
{
    if (!fl) {
        return;
    }
    store_reader_close(fl->rd);
    free(fl->recs);
    free(fl->bytes);
    free(fl);
}
