/* tests/unit/query/test_scan.c: the shared scan path (query/scan.h) over a store written
 * with the store API: seq=N and seq=N..M find exactly those records while passing over
 * the segments and blocks outside the range; SCAN_REVERSE keeps the latest matches,
 * newest first; SIGINT stops a watched scan at the next record (scan_par_interrupted),
 * and the progress counters account for every block of the plan. */
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/time.h"
#include "query/filter.h"
#include "query/scan.h"
#include "schemas/record.h"
#include "store/store.h"

#define HOUR (3600 * VG_NS_PER_SEC)
#define T0   (1714568400LL * VG_NS_PER_SEC)
#define NREC 6000

struct fixture {
    char root[256];
    char dir[300];
};

/* Record i (seq i + 1): times run over three partitions but arrive out of order (every
 * fifth record is dated 50 minutes earlier), so seq order is not time order. */
static int64_t rec_ts(int i)
{
    int64_t ts = T0 + (int64_t)i * (3 * HOUR / NREC);
    return i % 5 == 0 && ts - 50 * 60 * VG_NS_PER_SEC >= T0 ? ts - 50 * 60 * VG_NS_PER_SEC : ts;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");
    struct store_opts o = { .partition_ns = HOUR, .block_bytes = 4096, .fsync = false };
    struct store *st = NULL;
    struct errbuf eb;
    struct buf b;
    char pod[32];

    snprintf(fx->root, sizeof(fx->root), "%s/vg-scan-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(fx->root));
    snprintf(fx->dir, sizeof(fx->dir), "%s/store", fx->root);
    o.dir = fx->dir;
    errbuf_clear(&eb);
    assert_int_equal(store_open(&o, &st, &eb), 0);
    buf_init(&b, 1u << 20);
    for (int i = 0; i < NREC; i++) {
        struct rec r;
        rec_init(&r);
        r.ts = rec_ts(i);
        r.has_ts = true;
        r.seq = (uint64_t)i + 1;
        r.has_seq = true;
        snprintf(pod, sizeof(pod), "web-%d", i % 13);
        rec_set(&r, VG_F_SOURCE, SPAN_LIT("http"));
        rec_set(&r, VG_F_POD, span_str(pod));
        rec_set(&r, VG_F_MESSAGE, SPAN_LIT("a message long enough to fill blocks quickly"));
        b.len = 0;
        assert_int_equal(rec_encode(&r, &b), 0);
        assert_int_equal(store_append(st, r.ts, r.seq, buf_span(&b)), 0);
        if (i % 500 == 499) {
            assert_int_equal(store_commit(st), 0);
        }
    }
    assert_int_equal(store_commit(st), 0);
    store_close(st);
    buf_release(&b);
    *state = fx;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    nftw(fx->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static struct filter *parse(const char *text)
{
    struct filter *f = NULL;
    assert_int_equal(filter_parse(text, T0, &f, NULL, NULL), 0);
    return f;
}

static void test_seq_lookup(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *text;
        uint64_t lo, hi;
    } cases[] = {
        { "seq=1", 1, 1 },
        { "seq=3000", 3000, 3000 },
        { "seq=6000", 6000, 6000 },
        { "seq=2990..3010", 2990, 3010 },
        { "seq=5990..7000", 5990, 6000 },
        { "seq>=5995", 5995, 6000 },
        { "seq<3", 1, 2 },
        { "seq=7000", 1, 0 },
        { "seq=7000..8000", 1, 0 },
    };
    struct errbuf eb;
    struct scan_result all;

    errbuf_clear(&eb);
    assert_int_equal(scan_run(fx->dir, INT64_MIN, INT64_MAX, NULL, 0, 0, &all, &eb), 0);
    assert_int_equal(all.n, NREC);
    assert_true(all.stats.blocks_read > 100);
    assert_int_equal(all.stats.blocks_read, all.blocks_total);
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct filter *f = parse(cases[k].text);
        struct scan_result res;
        errbuf_clear(&eb);
        assert_int_equal(scan_run(fx->dir, INT64_MIN, INT64_MAX, f, 0, 0, &res, &eb), 0);
        uint64_t want = cases[k].hi >= cases[k].lo ? cases[k].hi - cases[k].lo + 1 : 0;
        if (res.n != want) {
            fail_msg("%s: %zu records, expected %" PRIu64, cases[k].text, res.n, want);
        }
        /* Every seq of the range once, in (ts, seq) order. */
        uint64_t sum = 0;
        for (size_t i = 0; i < res.n; i++) {
            assert_true(res.hits[i].seq >= cases[k].lo && res.hits[i].seq <= cases[k].hi);
            assert_int_equal(res.hits[i].ts, rec_ts((int)res.hits[i].seq - 1));
            sum += res.hits[i].seq;
            if (i > 0) {
                assert_true(res.hits[i - 1].ts < res.hits[i].ts ||
                            (res.hits[i - 1].ts == res.hits[i].ts &&
                             res.hits[i - 1].seq < res.hits[i].seq));
            }
        }
        if (want) {
            assert_int_equal(sum, (cases[k].lo + cases[k].hi) * want / 2);
        }
        /* The range, not a full scan: at most a handful of the ~hundreds of blocks. */
        if (res.stats.blocks_read > 4) {
            fail_msg("%s: %" PRIu64 " blocks read (of %" PRIu64 ")", cases[k].text,
                     res.stats.blocks_read, all.stats.blocks_read);
        }
        scan_result_release(&res);
        filter_free(f);
    }
    scan_result_release(&all);
}

static void test_reverse(void **state)
{
    struct fixture *fx = *state;
    struct filter *f = parse("pod=web-3");
    struct scan_result fwd;
    struct scan_result rev;
    struct scan_result last;
    struct errbuf eb;

    errbuf_clear(&eb);
    assert_int_equal(scan_run(fx->dir, INT64_MIN, INT64_MAX, f, 0, 0, &fwd, &eb), 0);
    assert_int_equal(scan_run(fx->dir, INT64_MIN, INT64_MAX, f, 0, SCAN_REVERSE, &rev, &eb), 0);
    assert_int_equal(scan_run(fx->dir, INT64_MIN, INT64_MAX, f, 25, SCAN_REVERSE, &last, &eb), 0);
    assert_true(fwd.n > 100);
    assert_int_equal(rev.n, fwd.n);
    for (size_t i = 0; i < fwd.n; i++) {
        assert_int_equal(rev.hits[i].seq, fwd.hits[fwd.n - 1 - i].seq);
    }
    /* The latest 25, newest first, and it says how many matched in all. */
    assert_int_equal(last.n, 25);
    assert_int_equal(last.matched, fwd.matched);
    for (size_t i = 0; i < last.n; i++) {
        assert_int_equal(last.hits[i].seq, fwd.hits[fwd.n - 1 - i].seq);
    }
    scan_result_release(&fwd);
    scan_result_release(&rev);
    scan_result_release(&last);
    filter_free(f);
}

struct counting {
    uint64_t calls;
    uint64_t raise_at;
};

static int on_rec_count(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    struct counting *c = arg;
    (void)ts;
    (void)seq;
    (void)rec;
    if (++c->calls == c->raise_at) {
        raise(SIGINT); /* as Ctrl-C would, in the middle of the scan */
    }
    return 0;
}

static void test_interrupt(void **state)
{
    struct fixture *fx = *state;
    struct scan_par *p = NULL;
    struct store_scan_stats st = { 0 };
    struct errbuf eb;
    struct counting c = { 0, 100 };
    void *args[1] = { &c };

    setenv("VIGIL_SCAN_THREADS", "1", 1);
    errbuf_clear(&eb);
    assert_int_equal(scan_par_open(fx->dir, INT64_MIN, INT64_MAX, NULL, &p, &st, &eb), 0);
    assert_int_equal(scan_par_threads(p), 1);
    scan_par_watch(p, SCAN_INTERRUPTIBLE, "test");
    assert_int_equal(scan_par_run(p, on_rec_count, args, &st, &eb), 0);
    /* The record that saw the signal arrive was the last one. */
    assert_int_equal(c.calls, 100);
    assert_true(scan_par_interrupted(p));
    assert_true(scan_interrupted());
    scan_par_close(p);

    /* A new watched scan starts afresh, and the handler was restored in between (it is
     * one-shot; outside a watched scan SIGINT would be the default). */
    struct sigaction now;
    assert_int_equal(sigaction(SIGINT, NULL, &now), 0);
    assert_true(now.sa_handler == SIG_DFL);
    c = (struct counting){ 0, 0 };
    assert_int_equal(scan_par_open(fx->dir, INT64_MIN, INT64_MAX, NULL, &p, &st, &eb), 0);
    scan_par_watch(p, SCAN_INTERRUPTIBLE | SCAN_PROGRESS, "test");
    assert_int_equal(scan_par_run(p, on_rec_count, args, &st, &eb), 0);
    assert_int_equal(c.calls, NREC);
    assert_false(scan_par_interrupted(p));
    assert_false(scan_interrupted());
    scan_par_close(p);
    unsetenv("VIGIL_SCAN_THREADS");
}

/* The progress counters see every block of the plan once, across stripes. */
static void test_progress_counts(void **state)
{
    struct fixture *fx = *state;
    struct filter *f = parse("pod=web-3 OR seq>=5000");
    struct scan_result res;
    struct errbuf eb;

    setenv("VIGIL_SCAN_THREADS", "3", 1);
    errbuf_clear(&eb);
    assert_int_equal(scan_run(fx->dir, T0 + HOUR / 2, INT64_MAX, f, 0, 0, &res, &eb), 0);
    assert_int_equal(res.threads, 3);
    assert_false(res.interrupted);
    assert_int_equal(res.stats.blocks_read + res.stats.blocks_skipped +
                         res.stats.blocks_skipped_index,
                     res.blocks_total);
    assert_true(res.stats.blocks_skipped > 0);
    scan_result_release(&res);
    filter_free(f);
    unsetenv("VIGIL_SCAN_THREADS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_lookup),
        cmocka_unit_test(test_reverse),
        cmocka_unit_test(test_interrupt),
        cmocka_unit_test(test_progress_counts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
