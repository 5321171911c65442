/* collector/store_sink.c: the pipeline's sink over the store keeper (see store_sink.h).
 * refusing, append, commit and upkeep run on the pipeline's store thread, report on the
 * loop thread; the keeper's own lock orders what they share. */
#include "collector/store_sink.h"

#include <stdlib.h>

#include "common/xalloc.h"

struct store_sink {
    struct store_keeper *k;
    struct metrics *m; /* loop thread */
    store_sink_notice_fn on_notice;
    void *notice_arg;
    struct store_notice notices[STORE_NOTICES_MAX]; /* loop thread: report's copy */
};

static void on_wake(void *arg)
{
    pipeline_kick(arg);
}

/* A compaction built on the keeper's thread wakes the store thread to install it. */
static void sink_start(void *ctx, struct pipeline *p)
{
    struct store_sink *s = ctx;
    store_keeper_set_wake(s->k, on_wake, p);
}

static bool sink_refusing(void *ctx)
{
    struct store_sink *s = ctx;
    return store_keeper_refusing(s->k);
}

static int sink_append(void *ctx, int64_t ts, uint64_t seq, struct span rec)
{
    struct store_sink *s = ctx;
    return store_keeper_append(s->k, ts, seq, rec);
}

static int sink_commit(void *ctx, size_t refused)
{
    struct store_sink *s = ctx;
    return store_keeper_commit(s->k, refused);
}

static int64_t sink_upkeep(void *ctx, int64_t now_mono, bool *news)
{
    struct store_sink *s = ctx;
    return store_keeper_run(s->k, now_mono, news);
}

/* Loop thread: the gauges, then the notices in order; metrics first, then the owner. */
static void sink_report(void *ctx)
{
    struct store_sink *s = ctx;
    struct metrics *m = s->m;
    struct store_keeper_gauges g;
    uint64_t more = 0;

    store_keeper_gauges(s->k, &g);
    size_t n = store_keeper_take_notices(s->k, s->notices, STORE_NOTICES_MAX, &more);
    m->disk_free_bytes = g.free_bytes;
    m->retention_held = g.held;
    m->retention_runs = g.retention_runs;
    m->store_disk_bytes = g.disk_bytes;
    m->compactions = g.compacted.segments;
    m->compaction_skipped = g.compacted.skipped;
    m->compaction_failures = g.compact_failures;
    m->compaction_bytes_before = g.compacted.bytes_before;
    m->compaction_bytes_after = g.compacted.bytes_after;
    m->store_blocks = g.stats.blocks;
    m->store_bytes_raw = g.stats.bytes_raw;
    m->store_bytes_stored = g.stats.bytes_stored;
    for (size_t i = 0; i <= n; i++) {
        struct store_notice extra = { .kind = STORE_NOTICE_DELETED_MORE, .count = more };
        const struct store_notice *x = i < n ? &s->notices[i] : &extra;
        if (i == n && more == 0) {
            break;
        }
        switch (x->kind) {
        case STORE_NOTICE_DISK_FULL:
            m->disk_full = 1;
            m->disk_full_episodes++;
            break;
        case STORE_NOTICE_DISK_OK:
            m->disk_full = 0;
            break;
        case STORE_NOTICE_DELETED:
            m->retention_deleted++;
            m->retention_bytes += x->del.bytes;
            break;
        case STORE_NOTICE_DELETED_MORE:
            m->retention_deleted += x->count;
            break;
        }
        if (s->on_notice) {
            s->on_notice(s->notice_arg, x);
        }
    }
}

void store_sink_free(struct store_sink *s)
{
    if (s) {
        store_keeper_free(s->k);
        free(s);
    }
}

static void sink_close(void *ctx)
{
    store_sink_free(ctx);
}

static const struct pipeline_sink_ops store_sink_ops = {
    .start = sink_start,
    .refusing = sink_refusing,
    .append = sink_append,
    .commit = sink_commit,
    .upkeep = sink_upkeep,
    .report = sink_report,
    .close = sink_close,
};

int store_sink_new(struct store *st, const struct store_keeper_opts *o, struct metrics *m,
                   store_sink_notice_fn on_notice, void *notice_arg, struct store_sink **out,
                   struct errbuf *eb)
{
    struct store_sink *s = xcalloc(1, sizeof(*s));
    int rc = store_keeper_new(st, o, &s->k, eb);

    if (rc < 0) {
        store_close(st);
        free(s);
        return rc;
    }
    s->m = m;
    m->disk_reserve_bytes = o && o->free_dir ? o->free_reserve_bytes : 0;
    s->on_notice = on_notice;
    s->notice_arg = notice_arg;
    *out = s;
    return 0;
}

struct pipeline_sink store_sink_as_pipeline(struct store_sink *s)
{
    return (struct pipeline_sink){ &store_sink_ops, s };
}
