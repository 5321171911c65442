/* collector/cluster_store.c: the store role (see cluster_store.h). One thread per owned
 * shard: consumer -> decode -> the shard's store, one commit and one ack per message. */
#include "collector/cluster_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "collector/cluster_msg.h"
#include "common/cnats.h"
#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/keeper.h"
#include "store/store.h"

#define FETCH_MAX     64
#define FETCH_WAIT_MS 500
/* schemas/cluster.md 4.2: partitions are sealed when the stream's time enters a new
 * SEAL_EPOCH_NS, those that ended SEAL_GRACE_NS before it: the same decision, at the
 * same message, on every node, and at most one round per epoch (late events reopen a
 * sealed partition in a new segment, as in one vigild every 10 s). */
#define SEAL_GRACE_NS (60 * VG_NS_PER_SEC)
#define SEAL_EPOCH_NS (10 * VG_NS_PER_SEC)
#define TIME_UNKNOWN  INT64_MIN

static int64_t seal_epoch(int64_t t)
{
    return t >= 0 ? t / SEAL_EPOCH_NS : -1 - (-1 - t) / SEAL_EPOCH_NS;
}

/* The clock of the store a shard thread writes: the stream's time of the message being
 * written (store_opts.now_ns); the wall clock outside a message. */
static _Thread_local int64_t shard_clock;

static int64_t shard_now(void)
{
    return shard_clock != 0 ? shard_clock : vg_now_ns();
}

/* What a shard thread tells the loop, under cs->mu. */
struct shard_figures {
    uint64_t messages; /* written and acked */
    uint64_t records;  /* records of them */
    uint64_t skipped;  /* delivered again, already written: acked only */
    uint64_t corrupt;  /* messages that did not decode: acked, not written */
    uint64_t failures; /* commits that failed (the consumer restarts from the store) */
    uint64_t last_seq; /* stream sequence of the last message written */
    uint64_t pending;  /* messages the consumer had left at the last fetch */
    uint64_t restarts; /* consumer (re)made from the store's position */
    uint64_t gap;      /* stream messages aged out before this node wrote them */
    bool consuming;    /* bound to the consumer now */
};

struct shard {
    struct cluster_store *cs;
    unsigned id;
    char dir[4096];
    char durable[128];
    char subject[64];
    struct store *st; /* the thread's, through k */
    struct store_keeper *k;
    uv_thread_t thread;
    bool started;
    struct shard_figures fig; /* under cs->mu */
};

struct cluster_store {
    const struct vg_config *cfg;
    const char *node;
    struct cnats *nats;
    struct shard *shards;
    size_t n;
    atomic_bool stop;
    uv_mutex_t mu;
};

static void figures_update(struct shard *sh, const struct shard_figures *f)
{
    uv_mutex_lock(&sh->cs->mu);
    sh->fig = *f;
    uv_mutex_unlock(&sh->cs->mu);
}

/* The keeper's notices (disk full, deletions) are logged: a store node has no listener of
 * its own to record them as events (schemas/cluster.md 4.3). */
static void log_notices(struct shard *sh)
{
    struct store_notice n[16];
    uint64_t more = 0;
    size_t got = store_keeper_take_notices(sh->k, n, VG_ARRAY_LEN(n), &more);

    for (size_t i = 0; i < got; i++) {
        switch (n[i].kind) {
        case STORE_NOTICE_DISK_FULL:
            log_error("cluster: shard %u: disk below store.free_reserve (%" PRIu64
                      " bytes free): not consuming until space returns (the stream keeps "
                      "the messages)",
                      sh->id, n[i].free_bytes);
            break;
        case STORE_NOTICE_DISK_OK:
            log_info("cluster: shard %u: disk has room again; consuming", sh->id);
            break;
        case STORE_NOTICE_DELETED:
            log_info("cluster: shard %u: retention (%s) deleted segment %s", sh->id,
                     n[i].del.reason, n[i].del.file);
            break;
        case STORE_NOTICE_DELETED_MORE:
            break;
        }
    }
}

/* One message into the shard's store: every record with its cluster seq, one commit.
 * Returns 0, 1 when the message was not written because it does not decode, or the
 * negative code of a failed append or commit. */
static int write_message(struct shard *sh, const struct cnats_msg *msg, struct buf *enc,
                         int64_t prev_time, uint64_t *records)
{
    struct span in = msg->data;
    struct rec r;
    size_t i = 0;
    int rc;

    if (cluster_msg_open(&in) < 0) {
        log_error("cluster: shard %u: message %" PRIu64 " is not a vigil message (no magic); "
                  "skipped on every store node alike",
                  sh->id, msg->stream_seq);
        return 1;
    }
    /* Decode it all first: a message is written whole or not at all. */
    struct span check = in;
    for (;;) {
        rc = cluster_msg_next(&check, i, &r);
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            log_error("cluster: shard %u: message %" PRIu64 ": record %zu does not decode; the "
                      "message is skipped on every store node alike",
                      sh->id, msg->stream_seq, i);
            return 1;
        }
        i++;
    }
    shard_clock = msg->time_ns;
    for (size_t j = 0; j < i; j++) {
        if ((rc = cluster_msg_next(&in, j, &r)) != 1) {
            shard_clock = 0;
            return rc < 0 ? rc : VG_ECORRUPT;
        }
        r.seq = cluster_seq(msg->stream_seq, j);
        r.has_seq = true;
        enc->len = 0;
        if ((rc = rec_encode(&r, enc)) < 0 ||
            (rc = store_keeper_append(sh->k, r.ts, r.seq, (struct span){ enc->data, enc->len })) <
                0) {
            shard_clock = 0;
            return rc;
        }
    }
    rc = store_keeper_commit(sh->k, 0);
    if (rc == 0 && msg->time_ns > INT64_MIN + SEAL_GRACE_NS &&
        (prev_time == TIME_UNKNOWN || seal_epoch(prev_time) != seal_epoch(msg->time_ns))) {
        /* schemas/cluster.md 4.2: sealing follows the stream, not the wall clock. */
        int src =
            store_seal_before(sh->st, seal_epoch(msg->time_ns) * SEAL_EPOCH_NS - SEAL_GRACE_NS);
        if (src < 0) {
            log_warn("cluster: shard %u: sealing failed: %s", sh->id, vg_strerror(src));
        }
    }
    shard_clock = 0;
    *records = i;
    return rc;
}

static void shard_thread(void *arg)
{
    struct shard *sh = arg;
    struct cluster_store *cs = sh->cs;
    struct cnats_sub *sub = NULL;
    struct cnats_msg msgs[FETCH_MAX];
    struct shard_figures f = { 0 };
    struct buf enc;
    int64_t next_upkeep = 0;
    int64_t quiet_until = 0;          /* errors are logged once per 10 s */
    int64_t prev_time = TIME_UNKNOWN; /* stream time of the last message written */
    bool news = false;

    buf_init(&enc, 80u << 20);
    while (!atomic_load(&cs->stop)) {
        struct errbuf eb;
        errbuf_clear(&eb);
        int64_t now = vg_mono_ns();
        if (now >= next_upkeep) {
            news = false;
            next_upkeep = store_keeper_run(sh->k, now, &news);
            if (news) {
                log_notices(sh);
            }
        }
        if (store_keeper_refusing(sh->k)) {
            /* Disk below store.free_reserve: the stream keeps what is not acked. */
            uv_sleep(FETCH_WAIT_MS);
            continue;
        }
        if (!sub) {
            uint64_t highest = store_next_seq(sh->st) - 1;
            uint64_t start = (highest >> CLUSTER_SEQ_SHIFT) + 1;
            int rc = cnats_connected(cs->nats) ? cnats_stream_ensure(cs->nats, &eb) : -ENOTCONN;
            if (rc == 0) {
                rc = cnats_sub_open(cs->nats, sh->durable, sh->subject, start, &sub, &eb);
            }
            if (rc < 0) {
                if (now >= quiet_until && rc != -ENOTCONN) {
                    log_warn("cluster: shard %u: %s; trying again", sh->id, errbuf_msg(&eb));
                    quiet_until = now + 10 * VG_NS_PER_SEC;
                }
                f.consuming = false;
                figures_update(sh, &f);
                uv_sleep(FETCH_WAIT_MS);
                continue;
            }
            /* The previous message's time, for the sealing epochs: asked of the stream
             * (the store has its sequence, not its time). */
            prev_time = TIME_UNKNOWN;
            if (highest > 0) {
                int64_t t;
                struct errbuf teb;
                errbuf_clear(&teb);
                if (cnats_msg_time(cs->nats, highest >> CLUSTER_SEQ_SHIFT, &t, &teb) == 0) {
                    prev_time = t;
                } else {
                    log_warn("cluster: shard %u: %s: partitions are sealed at the next message "
                             "(a replica that kept running may seal them later)",
                             sh->id, errbuf_msg(&teb));
                }
            }
            /* What the stream dropped (stream.max_age, max_bytes) before this node had
             * it is gone from this node: said, counted, never silent. */
            struct cnats_stream_status ss;
            if (cnats_stream_status(cs->nats, &ss, &eb) == 0 && ss.first_seq > start) {
                log_error("cluster: shard %u: the stream no longer holds messages %" PRIu64
                          "..%" PRIu64 " (cluster.stream limits): whatever of shard %u was "
                          "among them is missing from '%s'; the shard's other store nodes "
                          "may have it",
                          sh->id, start, ss.first_seq - 1, sh->id, sh->dir);
                f.gap += ss.first_seq - start;
            }
            errbuf_clear(&eb);
            f.restarts++;
            f.consuming = true;
            figures_update(sh, &f);
            log_info("cluster: shard %u: consuming '%s' from stream sequence %" PRIu64 " into '%s'",
                     sh->id, sh->durable, start, sh->dir);
        }
        int n = cnats_fetch(sub, msgs, FETCH_MAX, FETCH_WAIT_MS, &eb);
        if (n < 0) {
            if (now >= quiet_until) {
                log_warn("cluster: shard %u: %s; the consumer is made again from the store's "
                         "position",
                         sh->id, errbuf_msg(&eb));
                quiet_until = now + 10 * VG_NS_PER_SEC;
            }
            cnats_sub_free(sub);
            sub = NULL;
            f.consuming = false;
            figures_update(sh, &f);
            uv_sleep(FETCH_WAIT_MS);
            continue;
        }
        bool restart = false;
        for (int i = 0; i < n && !restart; i++) {
            const struct cnats_msg *m = &msgs[i];
            uint64_t recs = 0;
            f.pending = m->pending;
            if (cluster_seq(m->stream_seq, 0) < store_next_seq(sh->st)) {
                f.skipped++; /* written before its ack was lost */
                (void)cnats_ack(&msgs[i]);
                continue;
            }
            int rc = write_message(sh, m, &enc, prev_time, &recs);
            if (rc < 0) {
                log_error("cluster: shard %u: writing message %" PRIu64 " failed: %s; it is not "
                          "acknowledged and is read again",
                          sh->id, m->stream_seq, vg_strerror(rc));
                f.failures++;
                restart = true;
                break;
            }
            if (rc == 0) {
                prev_time = m->time_ns; /* what a restart finds too: the last written */
            }
            f.corrupt += rc == 1;
            f.messages += rc == 0;
            f.records += recs;
            f.last_seq = m->stream_seq;
            (void)cnats_ack(&msgs[i]);
        }
        cnats_fetch_done(sub);
        if (n == 0) {
            f.pending = 0;
        }
        if (restart) {
            /* In stream order or not at all: the consumer starts again after what the
             * store holds. */
            cnats_sub_free(sub);
            sub = NULL;
            f.consuming = false;
            uv_sleep(FETCH_WAIT_MS);
        }
        figures_update(sh, &f);
    }
    cnats_sub_free(sub);
    buf_release(&enc);
}

int cluster_store_render(struct cluster_store *cs, struct buf *out)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
        { "vigil_cluster_store_messages_total", "counter",
          "stream messages written to the shard's store",
          offsetof(struct shard_figures, messages) },
        { "vigil_cluster_store_records_total", "counter", "records of those messages",
          offsetof(struct shard_figures, records) },
        { "vigil_cluster_store_redelivered_total", "counter",
          "messages delivered again that the store had (acknowledged only)",
          offsetof(struct shard_figures, skipped) },
        { "vigil_cluster_store_corrupt_total", "counter",
          "messages that did not decode (not written, on every node alike)",
          offsetof(struct shard_figures, corrupt) },
        { "vigil_cluster_store_failures_total", "counter",
          "messages whose commit failed (read again)", offsetof(struct shard_figures, failures) },
        { "vigil_cluster_store_last_sequence", "gauge",
          "stream sequence of the last message written", offsetof(struct shard_figures, last_seq) },
        { "vigil_cluster_store_lag_messages", "gauge",
          "messages of the shard the consumer had not delivered yet at the last fetch",
          offsetof(struct shard_figures, pending) },
        { "vigil_cluster_store_gap_messages_total", "counter",
          "stream messages that aged out before this node wrote them (its shard's among "
          "them are missing here)",
          offsetof(struct shard_figures, gap) },
    };
    int rc = 0;

    uv_mutex_lock(&cs->mu);
    for (size_t r = 0; r < VG_ARRAY_LEN(rows) && rc == 0; r++) {
        rc = buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", rows[r].name, rows[r].help,
                         rows[r].name, rows[r].type);
        for (size_t i = 0; i < cs->n && rc == 0; i++) {
            const struct shard *sh = &cs->shards[i];
            uint64_t v = *(const uint64_t *)((const char *)&sh->fig + rows[r].off);
            rc = buf_appendf(out, "%s{shard=\"%u\"} %" PRIu64 "\n", rows[r].name, sh->id, v);
        }
    }
    if (rc == 0) {
        rc = buf_appendf(out, "# HELP vigil_cluster_store_consuming 1 while the shard's "
                              "consumer is bound\n# TYPE vigil_cluster_store_consuming gauge\n");
    }
    for (size_t i = 0; i < cs->n && rc == 0; i++) {
        rc = buf_appendf(out, "vigil_cluster_store_consuming{shard=\"%u\"} %d\n", cs->shards[i].id,
                         cs->shards[i].fig.consuming ? 1 : 0);
    }
    uv_mutex_unlock(&cs->mu);
    return rc;
}

void cluster_store_stop(struct cluster_store *cs)
{
    if (!cs) {
        return;
    }
    atomic_store(&cs->stop, true);
    for (size_t i = 0; i < cs->n; i++) {
        if (cs->shards[i].started) {
            uv_thread_join(&cs->shards[i].thread);
        }
    }
    for (size_t i = 0; i < cs->n; i++) {
        store_keeper_free(cs->shards[i].k); /* a final commit, then the store closes */
    }
    cnats_free(cs->nats);
    uv_mutex_destroy(&cs->mu);
    free(cs->shards);
    free(cs);
}

static int open_shard(struct cluster_store *cs, struct shard *sh, struct errbuf *eb)
{
    const struct store_cfg *sc = &cs->cfg->store;
    int rc;

    if (mkdir(sc->path, 0750) != 0 && errno != EEXIST) {
        rc = -errno;
        errbuf_set(eb, "cluster: cannot create '%s': %s", sc->path, strerror(errno));
        return rc;
    }
    struct store_opts so = {
        .dir = sh->dir,
        .partition_ns = sc->partition_ns,
        .block_bytes = (size_t)sc->block_bytes,
        .lz4_level = strcmp(sc->compression, "lz4") == 0 ? -1 : 0,
        .max_open_segments = 8,
        .fsync = sc->fsync,
        .now_ns = shard_now,
        /* No commit journal: every message's commit cuts its blocks, so block boundaries
         * follow the stream, not a clock (schemas/cluster.md 4.3). */
        .block_max_age_ns = 0,
        .signing_key = sc->signing_key,
    };
    if ((rc = store_open(&so, &sh->st, eb)) < 0) {
        return rc;
    }
    /* Sealing by the wall clock is off (a grace of a century): write_message seals by
     * the stream's time. Compaction is off: replicas would give the rewritten segments
     * ids in a different order (schemas/cluster.md 4.3). */
    struct store_keeper_opts ko = {
        .free_dir = sc->path,
        .free_reserve_bytes = sc->free_reserve_bytes,
        .retention = { sc->max_age_ns, sc->max_size_bytes },
        .retention_every_ns = sc->retain_every_ns,
        .seal_every_ns = 3600 * VG_NS_PER_SEC,
        .seal_grace_ns = 100LL * 365 * 86400 * VG_NS_PER_SEC,
        .compact = false,
    };
    return store_keeper_new(sh->st, &ko, &sh->k, eb);
}

int cluster_store_start(const struct vg_config *cfg, const char *node, struct cluster_store **out,
                        struct errbuf *eb)
{
    const struct cluster_cfg *k = &cfg->cluster;
    struct cluster_store *cs = xcalloc(1, sizeof(*cs));
    char name[200];
    int rc = 0;

    cs->cfg = cfg;
    cs->node = node;
    atomic_init(&cs->stop, false);
    if (uv_mutex_init(&cs->mu) < 0) {
        abort(); /* only on resource exhaustion at start-up */
    }
    for (unsigned i = 0; i < k->shards; i++) {
        cs->n += (k->store_mask >> i) & 1;
    }
    cs->shards = xcalloc(cs->n, sizeof(*cs->shards));
    size_t j = 0;
    for (unsigned i = 0; i < k->shards; i++) {
        if (!((k->store_mask >> i) & 1)) {
            continue;
        }
        struct shard *sh = &cs->shards[j++];
        sh->cs = cs;
        sh->id = i;
        snprintf(sh->dir, sizeof(sh->dir), "%s/shard-%u", cfg->store.path, i);
        snprintf(sh->durable, sizeof(sh->durable), "vigil-store-%s-%u", node, i);
        snprintf(sh->subject, sizeof(sh->subject), CLUSTER_EVENTS_PREFIX "%u", i);
        if ((rc = open_shard(cs, sh, eb)) < 0) {
            goto fail;
        }
    }
    snprintf(name, sizeof(name), "vigild %s (store)", node);
    if ((rc = cnats_connect(&cfg->cluster, name, CNATS_BACKGROUND, &cs->nats, eb)) < 0) {
        goto fail;
    }
    for (size_t i = 0; i < cs->n; i++) {
        if ((rc = uv_thread_create(&cs->shards[i].thread, shard_thread, &cs->shards[i])) < 0) {
            errbuf_set(eb, "cluster: cannot start the thread of shard %u: %s", cs->shards[i].id,
                       vg_strerror(rc));
            goto fail;
        }
        cs->shards[i].started = true;
    }
    *out = cs;
    return 0;
fail:
    for (size_t i = 0; i < cs->n; i++) {
        if (!cs->shards[i].k && cs->shards[i].st) {
            store_close(cs->shards[i].st);
        }
    }
    cluster_store_stop(cs);
    return rc;
}
