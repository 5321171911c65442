/* tests/unit/store/test_keeper.c: the store keeper (store/keeper.c), the housekeeping
 * the collector's store thread runs: refusing below store.free_reserve with one notice
 * per change, a write that finds no room (ENOSPC through failing fsops) counting as a
 * full disk until the next check, the refused records reported when space is back,
 * sealing and retention at the first run with a notice per deleted segment, and a
 * compaction built on the keeper's own thread, which wakes the writer to install it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/time.h"
#include "schemas/record.h"
#include "store/fsops.h"
#include "store/keeper.h"
#include "tdir.h"

#define HOUR (3600 * VG_NS_PER_SEC)
#define T0   (1714568400LL * VG_NS_PER_SEC) /* 2024-05-01T13:00:00Z: long ended */

static int setup(void **state)
{
    return tdir_setup(state, "keeper");
}

static int teardown(void **state)
{
    return tdir_teardown(state);
}

/* fsops whose pwrite fails with ENOSPC while `full` is set. */
static atomic_bool nospace;

static int o_open(void *ctx, const char *path, int flags, int mode)
{
    (void)ctx;
    return fsops_default()->open(NULL, path, flags, mode);
}
static int o_close(void *ctx, int fd)
{
    (void)ctx;
    return fsops_default()->close(NULL, fd);
}
static ssize_t o_pwrite(void *ctx, int fd, const void *p, size_t n, int64_t off)
{
    (void)ctx;
    if (atomic_load(&nospace)) {
        return -ENOSPC;
    }
    return fsops_default()->pwrite(NULL, fd, p, n, off);
}
static int o_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    (void)fd;
    return 0;
}
static int o_ftruncate(void *ctx, int fd, int64_t len)
{
    (void)ctx;
    return fsops_default()->ftruncate(NULL, fd, len);
}
static int o_fsync_dir(void *ctx, const char *path)
{
    (void)ctx;
    (void)path;
    return 0;
}
static int o_rename(void *ctx, const char *a, const char *b)
{
    (void)ctx;
    return fsops_default()->rename(NULL, a, b);
}
static int o_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return fsops_default()->unlink(NULL, path);
}
static int o_mkdir(void *ctx, const char *path, int mode)
{
    (void)ctx;
    return fsops_default()->mkdir(NULL, path, mode);
}
static const struct fsops nospace_ops = { NULL,        o_open,      o_close,  o_pwrite, o_fdatasync,
                                          o_ftruncate, o_fsync_dir, o_rename, o_unlink, o_mkdir };

/* The records' receipt as the store records it (recv_max): back in 2024, so retention
 * by age (which counts from when the newest records were received) may take them. */
static int64_t clock_2024(void)
{
    return T0 + 3 * HOUR;
}

static struct store *open_store(const char *dir, const struct fsops *fs)
{
    struct store_opts o = { .dir = dir,
                            .partition_ns = HOUR,
                            .block_bytes = 8192,
                            .fs = fs,
                            .fsync = false,
                            .now_ns = clock_2024 };
    struct store *st = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    if (store_open(&o, &st, &eb) != 0) {
        fail_msg("store_open: %s", errbuf_msg(&eb));
    }
    return st;
}

static struct store_keeper *keeper(struct store *st, const struct store_keeper_opts *o)
{
    struct store_keeper *k = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    assert_int_equal(store_keeper_new(st, o, &k, &eb), 0);
    return k;
}

/* One schema-v1 record at ts; store_keeper_append's result. */
static int append_one(struct store_keeper *k, int64_t ts, uint64_t seq)
{
    struct buf b;
    struct rec r;

    buf_init(&b, 1 << 16);
    rec_init(&r);
    r.ts = ts;
    r.has_ts = true;
    r.seq = seq;
    r.has_seq = true;
    rec_set(&r, VG_F_MESSAGE, SPAN_LIT("Failed password for root from 10.0.0.1 port 22"));
    assert_int_equal(rec_encode(&r, &b), 0);
    int rc = store_keeper_append(k, r.ts, r.seq, buf_span(&b));
    buf_release(&b);
    return rc;
}

/* n records over two hours of 2024, seq from first. */
static void put(struct store_keeper *k, uint64_t first, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(append_one(k, T0 + (int64_t)i * (2 * HOUR / n), first + (uint64_t)i), 0);
    }
}

static size_t take(struct store_keeper *k, struct store_notice *v, uint64_t *more)
{
    return store_keeper_take_notices(k, v, STORE_NOTICES_MAX, more);
}

static void test_refuses_below_reserve(void **state)
{
    const struct tdir *t = *state;
    static struct store_notice v[STORE_NOTICES_MAX];
    struct store_keeper_opts o = { .free_dir = t->root, .free_reserve_bytes = 1ULL << 62 };
    uint64_t more;
    bool news = false;

    struct store_keeper *k = keeper(open_store(t->dir, NULL), &o);
    assert_false(store_keeper_refusing(k));
    store_keeper_run(k, vg_mono_ns(), &news);
    assert_true(news);
    assert_true(store_keeper_refusing(k));
    assert_int_equal(take(k, v, &more), 1);
    assert_int_equal(more, 0);
    assert_int_equal(v[0].kind, STORE_NOTICE_DISK_FULL);
    assert_true(v[0].free_bytes < v[0].reserve_bytes);
    assert_int_equal(v[0].reserve_bytes, 1ULL << 62);
    struct store_keeper_gauges g;
    store_keeper_gauges(k, &g);
    assert_int_equal(g.free_bytes, v[0].free_bytes);
    /* Still full at the next check: no second notice. */
    store_keeper_run(k, vg_mono_ns() + 2 * VG_NS_PER_SEC, &news);
    assert_int_equal(take(k, v, &more), 0);
    store_keeper_free(k);
}

/* A write that finds no room counts as a full disk at once, though statvfs says there is
 * space; the next check without a failed write takes records again and reports how many
 * were refused meanwhile. */
static void test_enospc_is_full_until_checked(void **state)
{
    const struct tdir *t = *state;
    static struct store_notice v[STORE_NOTICES_MAX];
    struct store_keeper_opts o = { .free_dir = t->root, .free_reserve_bytes = 0 };
    uint64_t more;
    bool news;

    log_set_level(LOG_LVL_ERROR);
    struct store_keeper *k = keeper(open_store(t->dir, &nospace_ops), &o);
    int64_t now = vg_mono_ns();
    store_keeper_run(k, now, &news);
    assert_false(store_keeper_refusing(k));
    atomic_store(&nospace, true);
    assert_int_equal(append_one(k, T0, 1), -ENOSPC); /* the new segment's header */
    atomic_store(&nospace, false);
    /* Checked at once (not a second later), and full. */
    store_keeper_run(k, now + 1, &news);
    assert_true(store_keeper_refusing(k));
    assert_int_equal(take(k, v, &more), 1);
    assert_int_equal(v[0].kind, STORE_NOTICE_DISK_FULL);
    /* While refusing, the caller commits only its evidence and says what it refused. */
    put(k, 1000, 1);
    assert_int_equal(store_keeper_commit(k, 7), 0);
    assert_int_equal(store_keeper_commit(k, 5), 0);
    store_keeper_run(k, now + 2 * VG_NS_PER_SEC, &news);
    assert_false(store_keeper_refusing(k));
    assert_int_equal(take(k, v, &more), 1);
    assert_int_equal(v[0].kind, STORE_NOTICE_DISK_OK);
    assert_int_equal(v[0].refused, 12);
    store_keeper_free(k);
    log_set_level(LOG_LVL_INFO);
}

/* The first run seals the ended partitions and runs retention: one notice per deleted
 * segment. */
static void test_seal_and_retention(void **state)
{
    const struct tdir *t = *state;
    static struct store_notice v[STORE_NOTICES_MAX];
    struct store_keeper_opts o = { .retention = { .max_age_ns = 24 * HOUR } };
    uint64_t more;
    bool news;

    log_set_level(LOG_LVL_ERROR);
    struct store_keeper *k = keeper(open_store(t->dir, NULL), &o);
    put(k, 1, 500);
    assert_int_equal(store_keeper_commit(k, 0), 0);
    store_keeper_run(k, vg_mono_ns(), &news);
    assert_true(news);
    size_t n = take(k, v, &more);
    assert_int_equal(n, 2); /* two hours, two partitions */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].kind, STORE_NOTICE_DELETED);
        assert_string_equal(v[i].del.reason, "max_age");
        assert_int_equal(v[i].del.count, 250);
    }
    store_keeper_free(k);
    log_set_level(LOG_LVL_INFO);
}

static atomic_int wakes;

static void on_wake(void *arg)
{
    (void)arg;
    atomic_fetch_add(&wakes, 1);
}

/* A sealed segment is picked by the writer thread, built on the keeper's thread (which
 * then wakes the writer) and installed by the next run. */
static void test_compaction_wakes_writer(void **state)
{
    const struct tdir *t = *state;
    struct store_keeper_opts o = { .compact = true };
    struct store_keeper_gauges g;
    bool news;

    log_set_level(LOG_LVL_ERROR);
    struct store_keeper *k = keeper(open_store(t->dir, NULL), &o);
    store_keeper_set_wake(k, on_wake, NULL);
    put(k, 1, 400);
    assert_int_equal(store_keeper_commit(k, 0), 0);
    store_keeper_run(k, vg_mono_ns(), &news); /* seals, picks the first */
    for (int i = 0; i < 10000 && atomic_load(&wakes) == 0; i++) {
        usleep(1000);
    }
    assert_int_equal(atomic_load(&wakes), 1);
    store_keeper_run(k, vg_mono_ns(), &news); /* installs it, picks the second */
    assert_true(news);
    store_keeper_gauges(k, &g);
    assert_int_equal(g.compacted.segments, 1);
    assert_int_equal(g.compacted.records, 200);
    assert_int_equal(g.compact_failures, 0);
    store_keeper_free(k); /* cancels the second build, whatever its state */
    log_set_level(LOG_LVL_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refuses_below_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enospc_is_full_until_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_and_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_wakes_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
