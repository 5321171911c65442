/* query/scan.c: filtered, time-ordered scans over the store (see scan.h). */
#include "query/scan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "common/xalloc.h"
#include "query/filter.h"

struct scan_ctx {
    const struct filter *f;
    uint64_t limit;
    struct scan_result *res;
    bool progress;
    int64_t last_progress;
    uint64_t seen;
    int bad;
    struct errbuf *eb;
};

static bool hit_less(const struct scan_hit *a, const struct scan_hit *b)
{
    return a->ts < b->ts || (a->ts == b->ts && a->seq < b->seq);
}

/* With a limit, hits[] is a max-heap on (ts, seq): the root is the latest kept hit,
 * replaced when an earlier match arrives. */
static void heap_sift_down(struct scan_hit *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1;
        size_t r = l + 1;
        size_t m = i;
        if (l < n && hit_less(&h[m], &h[l])) {
            m = l;
        }
        if (r < n && hit_less(&h[m], &h[r])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        struct scan_hit t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_sift_up(struct scan_hit *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hit_less(&h[p], &h[i])) {
            return;
        }
        struct scan_hit t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static void keep(struct scan_ctx *c, int64_t ts, uint64_t seq, struct span rec)
{
    struct scan_result *res = c->res;
    struct scan_hit h = { ts, seq, NULL, rec.n };

    if (c->limit && res->n == c->limit) {
        if (!hit_less(&h, &res->hits[0])) {
            return;
        }
        free(res->hits[0].bytes);
        h.bytes = xmalloc(rec.n);
        memcpy(h.bytes, rec.p, rec.n);
        res->hits[0] = h;
        heap_sift_down(res->hits, res->n, 0);
        return;
    }
    if (res->n == res->cap) {
        res->cap = res->cap ? 2 * res->cap : 256;
        res->hits = xrealloc(res->hits, res->cap * sizeof(*res->hits));
    }
    h.bytes = xmalloc(rec.n);
    memcpy(h.bytes, rec.p, rec.n);
    res->hits[res->n++] = h;
    if (c->limit) {
        heap_sift_up(res->hits, res->n - 1);
    }
}

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct scan_ctx *c = arg;
    struct span cur = bytes;
    struct rec r;

    c->seen++;
    if (rec_decode(&cur, &r) < 0) {
        errbuf_set(c->eb, "record seq %" PRIu64 " does not decode as a schema v1 record", seq);
        c->bad = VG_ECORRUPT;
        return VG_ECORRUPT;
    }
    if (!c->f || filter_match(c->f, &r)) {
        c->res->matched++;
        keep(c, ts, seq, bytes);
    }
    if (c->progress && (c->seen & 0xffff) == 0) {
        int64_t now = vg_mono_ns();
        if (now - c->last_progress > 200000000) {
            c->last_progress = now;
            fprintf(stderr, "\rscanning: %" PRIu64 " events read, %" PRIu64 " matched", c->seen,
                    c->res->matched);
            fflush(stderr);
        }
    }
    return 0;
}

static int cmp_hit(const void *a, const void *b)
{
    const struct scan_hit *x = a;
    const struct scan_hit *y = b;
    return hit_less(x, y) ? -1 : hit_less(y, x) ? 1 : 0;
}

int scan_run(const char *dir, int64_t since, int64_t until, const struct filter *f, uint64_t limit,
             bool progress, struct scan_result *res, struct errbuf *eb)
{
    struct store_reader *rd = NULL;
    struct scan_ctx c = { f, limit, res, progress, 0, 0, 0, eb };
    int64_t t0 = vg_mono_ns();
    int rc;

    struct filter_needs fn;
    struct store_need_value vals[FILTER_MAX_TERMS];
    struct store_need need = { vals, 0, fn.texts, 0 };

    memset(res, 0, sizeof(*res));
    if (f) {
        /* What every match has, for the block index (segment.md 3.2). */
        filter_needs(f, &fn);
        for (size_t i = 0; i < fn.nvalues; i++) {
            vals[i].field = vg_field_name(fn.values[i].field);
            vals[i].value = fn.values[i].value;
        }
        need.nvalues = fn.nvalues;
        need.ntexts = fn.ntexts;
        res->need_values = fn.nvalues;
        res->need_texts = fn.ntexts;
    }
    if ((rc = store_reader_open(dir, &rd, eb)) < 0) {
        return rc;
    }
    rc = store_scan_need(rd, since, until, &need, on_rec, &c, &res->stats);
    if (rc < 0 && !c.bad) {
        errbuf_set(eb, "%s", store_reader_error(rd));
    }
    store_reader_close(rd);
    if (progress && c.seen >= 0x10000) {
        fprintf(stderr, "\r%60s\r", "");
    }
    int64_t t1 = vg_mono_ns();
    if (res->n > 1) {
        qsort(res->hits, res->n, sizeof(*res->hits), cmp_hit);
    }
    res->ns_sort = (uint64_t)(vg_mono_ns() - t1);
    res->seconds = (double)(vg_mono_ns() - t0) / 1e9;
    return rc < 0 ? rc : 0;
}

void scan_result_release(struct scan_result *res)
{
    for (size_t i = 0; i < res->n; i++) {
        free(res->hits[i].bytes);
    }
    free(res->hits);
    memset(res, 0, sizeof(*res));
}
