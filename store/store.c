/* store/store.c: the store's writer side as a whole (schemas/segment.md 5.4): opening
 * (options, directories, the lock, the catalog), recovery after a crash (every open
 * segment and every file without a row, through writer.c, retention.c and compact.c),
 * the signing key (integrity.c), and closing. The files it calls never call back here:
 * writer.c appends and commits, retention.c and compact.c work on sealed segments, and
 * all of them share struct store (store_core.h).
 *
 * Thread: one thread uses a struct store (vigild's store thread); every function blocks
 * on disk I/O. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/fsops.h"
#include "store/store_core.h"

static int check_opts(const struct store_opts *o, struct store_opts *out, struct errbuf *eb)
{
    *out = *o;
    if (!o->dir || !*o->dir) {
        errbuf_set(eb, "store: no directory given");
        return VG_ECONFIG;
    }
    if (strlen(o->dir) > PATH_MAX - 2 * SEG_NAME_MAX) {
        errbuf_set(eb, "store '%s': path too long", o->dir);
        return VG_ECONFIG;
    }
    if (o->partition_ns < VG_NS_PER_SEC || o->partition_ns > 366 * 86400 * VG_NS_PER_SEC) {
        errbuf_set(eb, "store '%s': partition length %lld ns is not between 1s and 366d", o->dir,
                   (long long)o->partition_ns);
        return VG_ECONFIG;
    }
    if (out->block_bytes == 0) {
        out->block_bytes = STORE_DEFAULT_BLOCK_BYTES;
    }
    if (out->block_bytes < 4096 || out->block_bytes > (16u << 20)) {
        errbuf_set(eb, "store '%s': block size %zu is not between 4KiB and 16MiB", o->dir,
                   o->block_bytes);
        return VG_ECONFIG;
    }
    if (out->lz4_level == 0) {
        out->lz4_level = STORE_DEFAULT_LZ4_LEVEL;
    }
    if (out->lz4_level < -1 || out->lz4_level > 12) {
        errbuf_set(eb, "store '%s': LZ4 level %d is not -1 (plain LZ4) or between 1 and 12", o->dir,
                   o->lz4_level);
        return VG_ECONFIG;
    }
    if (o->block_max_age_ns < 0 || o->block_max_age_ns > 3600 * VG_NS_PER_SEC) {
        errbuf_set(eb, "store '%s': block max age %lld ns is not between 0 and 1h", o->dir,
                   (long long)o->block_max_age_ns);
        return VG_ECONFIG;
    }
    if (out->max_open_segments == 0) {
        out->max_open_segments = STORE_DEFAULT_MAX_OPEN;
    }
    if (!out->now_ns) {
        out->now_ns = vg_now_ns;
    }
    if (!out->mono_ns) {
        out->mono_ns = vg_mono_ns;
    }
    if (out->max_open_segments < 1 || out->max_open_segments > 4096) {
        errbuf_set(eb, "store '%s': max open segments %d is not between 1 and 4096", o->dir,
                   o->max_open_segments);
        return VG_ECONFIG;
    }
    return 0;
}

/* mkdir that is durable: fsyncs the parent when it created the directory. */
static int make_dir(struct store *st, const char *path, const char *parent, struct errbuf *eb)
{
    int rc = st->fs->mkdir(st->fs->ctx, path, 0750);

    if (rc == -EEXIST) {
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            return 0;
        }
        errbuf_set(eb, "store: '%s' exists and is not a directory", path);
        return -ENOTDIR;
    }
    if (rc == 0) {
        rc = st->fs->fsync_dir(st->fs->ctx, parent);
    }
    if (rc < 0) {
        errbuf_set(eb, "store: cannot create '%s': %s", path, vg_strerror(rc));
    }
    return rc;
}

static void parent_of(const char *path, char *out)
{
    snprintf(out, PATH_MAX, "%s", path);
    char *slash = strrchr(out, '/');
    while (slash && slash > out && slash[1] == 0) { /* trailing slashes */
        *slash = 0;
        slash = strrchr(out, '/');
    }
    if (!slash) {
        snprintf(out, PATH_MAX, ".");
    } else if (slash == out) {
        out[1] = 0;
    } else {
        *slash = 0;
    }
}

static int take_lock(struct store *st, struct errbuf *eb)
{
    char path[PATH_MAX];

    if (seg__path(path, sizeof(path), st->dir, "LOCK") < 0) {
        errbuf_set(eb, "store '%s': path too long", st->dir);
        return -ENAMETOOLONG;
    }
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (st->lock_fd < 0) {
        int rc = -errno;
        errbuf_set(eb, "store: cannot open lock file '%s': %s", path, vg_strerror(rc));
        return rc;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = -errno;
        if (rc == -EWOULDBLOCK) {
            errbuf_set(eb, "store '%s' is in use by another writer (lock '%s' is held)", st->dir,
                       path);
        } else {
            errbuf_set(eb, "store: cannot lock '%s': %s", path, vg_strerror(rc));
        }
        return rc;
    }
    return 0;
}

static int cmp_meta_id(const void *a, const void *b)
{
    uint64_t x = ((const struct seg_meta *)a)->id;
    uint64_t y = ((const struct seg_meta *)b)->id;
    return x < y ? -1 : x > y;
}

static int recover(struct store *st, struct errbuf *eb)
{
    struct seg_meta *rows = NULL;
    size_t n = 0;
    DIR *d = NULL;
    struct dirent *e;
    uint64_t max_id = 0;
    int rc = catalog__list(st->cat, CATALOG_ALL, 0, 0, &rows, &n);

    if (rc < 0) {
        errbuf_set(eb, "recovery: cannot list catalog: %s", catalog__errmsg(st->cat));
        return rc;
    }
    if (n > 0) {
        qsort(rows, n, sizeof(*rows), cmp_meta_id);
    }
    /* Never reuse an id, not even a deleted segment's (verify reads the deletions). */
    if ((rc = catalog__max_id(st->cat, &max_id)) < 0) {
        errbuf_set(eb, "recovery: %s", catalog__errmsg(st->cat));
        free(rows);
        return rc;
    }
    /* Files without a row first (they were created after the last commit). */
    d = opendir(st->segdir);
    if (!d) {
        rc = -errno;
        errbuf_set(eb, "recovery: cannot list '%s': %s", st->segdir, vg_strerror(rc));
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        uint64_t id;
        struct seg_meta key;
        if (!seg__name_parse(e->d_name, &id)) {
            continue;
        }
        max_id = id > max_id ? id : max_id;
        key.id = id;
        if (n == 0 || bsearch(&key, rows, n, sizeof(*rows), cmp_meta_id) == NULL) {
            /* Deleted by retention, the file left by a crash (segment.md 9.1)? */
            rc = retention__finish_file(st->cat, st->fs, st->segdir, e->d_name, id);
            if (rc != 0) {
                if (rc < 0) {
                    errbuf_set(eb, "recovery: %s", catalog__errmsg(st->cat));
                    goto out;
                }
                continue;
            }
            /* Sealed or deleted by the seal sequence: never adopted as an open segment;
             * reconcile__catalog restores its row or finishes its deletion. */
            const struct sealseq_entry *se = sealseq__last(st->seq, id);
            if (se && (se->type == SEALSEQ_SEAL || se->type == SEALSEQ_DELETE)) {
                continue;
            }
            rc = writer__recover_file(st, e->d_name, NULL, eb);
            if (rc < 0) {
                goto out;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].state == SEG_OPEN) {
            rc = writer__recover_file(st, rows[i].file, &rows[i], eb);
            if (rc < 0) {
                goto out;
            }
        }
    }
    st->next_id = max_id + 1;
    rc = catalog__next_seq(st->cat, &st->next_seq);
    if (rc < 0) {
        errbuf_set(eb, "recovery: %s", catalog__errmsg(st->cat));
    }
out:
    if (d) {
        closedir(d);
    }
    free(rows);
    return rc;
}

int store_open(const struct store_opts *o, struct store **out, struct errbuf *eb)
{
    struct store *st = xcalloc(1, sizeof(*st));
    char path[PATH_MAX];
    int rc;

    st->lock_fd = -1;
    rc = check_opts(o, &st->o, eb);
    if (rc < 0) {
        free(st);
        return rc;
    }
    st->fs = o->fs ? o->fs : fsops_default();
    snprintf(st->dir, sizeof(st->dir), "%s", o->dir);
    if (seg__path(st->segdir, sizeof(st->segdir), o->dir, "segments") < 0) {
        free(st);
        errbuf_set(eb, "store '%s': path too long", o->dir);
        return VG_ECONFIG;
    }
    writer__init(st);

    parent_of(st->dir, path);
    rc = make_dir(st, st->dir, path, eb);
    if (rc == 0) {
        rc = make_dir(st, st->segdir, st->dir, eb);
    }
    if (rc == 0 && (rc = seg__path(path, sizeof(path), st->dir, JNL_DIR)) == 0) {
        rc = make_dir(st, path, st->dir, eb); /* segment.md 5.6 */
    }
    if (rc == 0) {
        rc = take_lock(st, eb);
    }
    if (rc < 0) {
        goto fail;
    }
    rc = seg__path(path, sizeof(path), st->dir, "catalog.db");
    if (rc < 0) {
        goto fail;
    }
    rc = catalog__open(path, false, &st->cat, eb);
    if (rc < 0) {
        goto fail;
    }
    /* The key and the seal sequence first: what recovery seals goes into the sequence,
     * signed (segment.md 13.4). */
    rc = integrity__open(st->cat, st->fs, st->dir, o->signing_key, &st->key, eb);
    if (rc < 0) {
        goto fail;
    }
    rc = sealseq__open(st->fs, st->dir, &st->seq, eb);
    if (rc == 0) {
        rc = reconcile__start(st, eb);
    }
    if (rc < 0) {
        goto fail;
    }
    rc = recover(st, eb);
    if (rc < 0) {
        goto fail;
    }
    rc = compact__recover(st); /* segment.md 12: an interrupted compaction */
    if (rc < 0) {
        errbuf_set(eb, "store '%s': finishing a compaction: %s", st->dir, vg_strerror(rc));
        goto fail;
    }
    rc = reconcile__catalog(st);
    if (rc < 0) {
        errbuf_set(eb, "store '%s': bringing the catalog in line with the seal sequence: %s",
                   st->dir, vg_strerror(rc));
        goto fail;
    }
    /* segment.md 5.6.3: last, once the catalog says what the blocks hold. */
    rc = writer__journal_open(st, eb);
    if (rc < 0) {
        goto fail;
    }
    buf_release(&st->rbuf); /* recovery scratch; can be large */
    buf_release(&st->dbuf);
    *out = st;
    return 0;
fail:
    store_close(st);
    return rc;
}

static void store_free(struct store *st)
{
    writer__release(st);
    catalog__close(st->cat);
    if (st->lock_fd >= 0) {
        close(st->lock_fd); /* releases the flock */
    }
    sign_key_free(st->key);
    sealseq__free(st->seq);
    free(st->compact_done);
    free(st);
}

void store__abandon(struct store *st)
{
    if (st) {
        store_free(st);
    }
}

void store_close(struct store *st)
{
    if (!st) {
        return;
    }
    if (st->cat) {
        /* Every open block cut: a clean stop leaves the journal empty (segment.md 5.6). */
        int rc = writer__close_commit(st);
        if (rc < 0) {
            log_error("store '%s': final commit failed: %s", st->dir, vg_strerror(rc));
        } else if ((rc = store_checkpoint(st)) < 0) {
            /* segment.md 13.3: a clean stop vouches for everything committed, so an
             * export or verify of a stopped store leaves nothing unsigned. */
            log_error("store '%s': final checkpoint failed: %s", st->dir, vg_strerror(rc));
        }
    }
    store_free(st);
}
