/* store/integrity.c: the collector's signing key and signed seals (schemas/segment.md 8).
 *
 * When a partition ends, store_seal_before seals its open segments; here each sealed
 * row gets a seals row carrying an Ed25519 signature, by the collector's key, over the
 * 144-byte seal record (segment.md 8.2): the segment's id, partition, counts, sizes,
 * ranges, seal time and chain head. The public key is recorded in the catalog (keys)
 * and written to dir/keys/collector-ed25519.pub.pem, so `vigil verify` needs no secret.
 *
 * The key is made on first start (dir/keys/collector-ed25519.pem, 0600, written to a
 * temporary name, synced, renamed) unless store.signing_key names one. When it cannot
 * be made (a full disk), the store runs without it: seals are recorded unsigned and the
 * next start that has the key signs them (only rows sealed because their partition
 * ended, never rows recovery sealed as corrupt).
 *
 * Thread: the store writer's (store_open, store_seal_before); blocks on disk I/O. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "store/fsops.h"
#include "store/store_int.h"

#define KEY_DIR  "keys"
#define KEY_FILE "collector-ed25519.pem"
#define PUB_FILE "collector-ed25519.pub.pem"

static const char seal_tag[16] = "vigil seal v1\0\0"; /* segment.md 8.2 */

void integrity__seal_msg(const struct seg_meta *m, uint8_t out[SEAL_MSG_LEN])
{
    /* segment.md 8.2: tag, then 12 little-endian 64-bit fields, then the chain head. */
    bool any = m->tot.count > 0;
    const uint64_t f[12] = {
        m->id,
        (uint64_t)m->part_start,
        (uint64_t)m->part_end,
        m->tot.count,
        m->tot.blocks,
        m->bytes,
        m->tot.bytes_raw,
        any ? (uint64_t)m->tot.ts_min : 0,
        any ? (uint64_t)m->tot.ts_max : 0,
        any ? m->tot.seq_min : 0,
        any ? m->tot.seq_max : 0,
        (uint64_t)m->sealed,
    };

    memcpy(out, seal_tag, sizeof(seal_tag));
    for (size_t i = 0; i < VG_ARRAY_LEN(f); i++) {
        store__put_le(out + 16 + 8 * i, f[i], 8);
    }
    memcpy(out + 16 + 8 * VG_ARRAY_LEN(f), m->chain_head, VG_SHA256_LEN);
}

/* Writes p to dir/name durably and atomically: a temporary file with mode, synced,
 * renamed over name, the directory synced. */
static int write_file_atomic(const struct fsops *fs, const char *dir, const char *name,
                             const struct buf *p, int mode)
{
    char tmp[PATH_MAX];
    char path[PATH_MAX];
    int rc;

    if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp) ||
        seg__path(path, sizeof(path), dir, name) < 0) {
        return -ENAMETOOLONG;
    }
    (void)fs->unlink(fs->ctx, tmp); /* a leftover of a crash */
    int fd = fs->open(fs->ctx, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        return fd;
    }
    rc = fsops_pwrite_all(fs, fd, p->data, p->len, 0);
    if (rc == 0) {
        rc = fs->fdatasync(fs->ctx, fd);
    }
    int crc = fs->close(fs->ctx, fd);
    rc = rc < 0 ? rc : crc;
    if (rc == 0) {
        rc = fs->rename(fs->ctx, tmp, path);
    }
    if (rc == 0) {
        rc = fs->fsync_dir(fs->ctx, dir);
    }
    if (rc < 0) {
        (void)fs->unlink(fs->ctx, tmp);
    }
    return rc;
}

/* Makes the store's own key and writes it (0600). */
static int key_create(const struct fsops *fs, const char *dir, const char *keydir,
                      struct sign_key **out)
{
    struct sign_key *k = NULL;
    struct buf pem;
    int rc = fs->mkdir(fs->ctx, keydir, 0750);

    if (rc == 0) {
        rc = fs->fsync_dir(fs->ctx, dir);
    } else if (rc == -EEXIST) {
        rc = 0;
    }
    if (rc < 0) {
        return rc;
    }
    rc = sign_key_generate(&k);
    if (rc < 0) {
        return rc;
    }
    buf_init(&pem, SIGN_PEM_MAX);
    rc = sign_key_private_pem(k, &pem);
    if (rc == 0) {
        rc = write_file_atomic(fs, keydir, KEY_FILE, &pem, 0600);
    }
    if (pem.data) {
        memset(pem.data, 0, pem.cap); /* the secret */
    }
    buf_release(&pem);
    if (rc < 0) {
        sign_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

/* Writes keydir/PUB_FILE unless it already holds exactly this key. */
static int pub_write(const struct fsops *fs, const char *keydir, const struct buf *pem)
{
    char path[PATH_MAX];
    char have[SIGN_PEM_MAX];
    int rc = fs->mkdir(fs->ctx, keydir, 0750);

    if (rc < 0 && rc != -EEXIST) {
        return rc;
    }
    if (seg__path(path, sizeof(path), keydir, PUB_FILE) < 0) {
        return -ENAMETOOLONG;
    }
    FILE *f = fopen(path, "re");
    if (f) {
        size_t n = fread(have, 1, sizeof(have), f);
        fclose(f);
        if (n == pem->len && memcmp(have, pem->data, n) == 0) {
            return 0;
        }
    }
    return write_file_atomic(fs, keydir, PUB_FILE, pem, 0644);
}

/* Signs the seals that were recorded without a signature (no key at the time). */
static void sign_pending(struct catalog *cat, const struct sign_key *key)
{
    struct catalog_seal *seals = NULL;
    struct seg_meta *rows = NULL;
    size_t nseals = 0;
    size_t nrows = 0;
    unsigned signed_now = 0;
    char key_id[SIGN_KEY_ID_LEN + 1];
    int rc = catalog__seals_list(cat, &seals, &nseals);

    sign_key_id(key, key_id);
    if (rc == 0) {
        rc = catalog__list(cat, CATALOG_ALL, 0, 0, &rows, &nrows);
    }
    for (size_t i = 0; rc == 0 && i < nseals; i++) {
        struct catalog_seal *s = &seals[i];
        if (s->is_signed || strcmp(s->reason, SEAL_REASON_ENDED) != 0) {
            continue;
        }
        for (size_t j = 0; j < nrows; j++) {
            uint8_t msg[SEAL_MSG_LEN];
            if (rows[j].id != s->id || rows[j].state != SEG_SEALED) {
                continue;
            }
            integrity__seal_msg(&rows[j], msg);
            rc = sign_message(key, msg, sizeof(msg), s->sig);
            if (rc == 0) {
                s->is_signed = true;
                memcpy(s->key_id, key_id, sizeof(key_id));
                s->signed_at = vg_now_ns();
                rc = catalog__seal_put(cat, s);
            }
            signed_now += rc == 0;
            break;
        }
    }
    if (rc < 0) {
        log_warn("store: cannot sign the seals left unsigned: %s", vg_strerror(rc));
    } else if (signed_now > 0) {
        log_info("store: signed %u sealed segments that were sealed without a key", signed_now);
    }
    free(seals);
    free(rows);
}

int integrity__open(struct catalog *cat, const struct fsops *fs, const char *dir,
                    const char *key_path, struct sign_key **out, struct errbuf *eb)
{
    char keydir[PATH_MAX];
    char own[PATH_MAX];
    char key_id[SIGN_KEY_ID_LEN + 1];
    struct sign_key *k = NULL;
    struct errbuf kb;
    struct buf pem;
    struct stat sb;
    int rc;

    *out = NULL;
    errbuf_clear(&kb);
    if (seg__path(keydir, sizeof(keydir), dir, KEY_DIR) < 0 ||
        seg__path(own, sizeof(own), keydir, KEY_FILE) < 0) {
        errbuf_set(eb, "store '%s': path too long", dir);
        return -ENAMETOOLONG;
    }
    if (key_path) {
        rc = sign_key_load_private(key_path, &k, &kb);
        if (rc < 0) {
            errbuf_set(eb, "store.signing_key: %s", errbuf_msg(&kb));
            return rc == -ENOENT || rc == -EACCES ? rc : VG_ECONFIG;
        }
    } else {
        rc = sign_key_load_private(own, &k, &kb);
        if (rc == -ENOENT) {
            rc = key_create(fs, dir, keydir, &k);
            if (rc < 0) {
                /* segment.md 8.4: degrade, never refuse to start over it. */
                log_error("store '%s': cannot create the signing key '%s': %s; sealed "
                          "segments stay unsigned until it can be made",
                          dir, own, vg_strerror(rc));
                return 0;
            }
            log_info("store '%s': created the signing key '%s'", dir, own);
        } else if (rc < 0) {
            errbuf_set(eb,
                       "store '%s': the signing key cannot be used: %s (move it aside to "
                       "make a new one; `vigil verify` keeps checking the old signatures)",
                       dir, errbuf_msg(&kb));
            return VG_ECONFIG;
        }
    }
    const char *used = key_path ? key_path : own;
    if (stat(used, &sb) == 0 && (sb.st_mode & 077) != 0) {
        log_warn("store: signing key '%s' is readable by others (mode %04o); chmod 600 it", used,
                 (unsigned)(sb.st_mode & 07777));
    }
    sign_key_id(k, key_id);
    buf_init(&pem, SIGN_PEM_MAX);
    rc = sign_key_public_pem(k, &pem);
    if (rc == 0) {
        rc = pub_write(fs, keydir, &pem);
        if (rc < 0) {
            log_warn("store '%s': cannot write '%s/%s': %s", dir, keydir, PUB_FILE,
                     vg_strerror(rc));
        }
        rc = catalog__key_put(cat, key_id, buf_cstr(&pem), vg_now_ns());
        if (rc < 0) {
            /* Recorded again with the next seal. */
            log_warn("store '%s': cannot record the signing key in the catalog yet", dir);
        }
    }
    buf_release(&pem);
    sign_pending(cat, k);
    log_info("store '%s': sealed segments are signed with ed25519 key %.16s", dir, key_id);
    *out = k;
    return 0;
}

int integrity__seal_row(struct catalog *cat, const struct sign_key *key, const struct seg_meta *m,
                        int64_t now)
{
    struct catalog_seal s;
    uint8_t msg[SEAL_MSG_LEN];
    int rc;

    memset(&s, 0, sizeof(s));
    s.id = m->id;
    snprintf(s.reason, sizeof(s.reason), "%s", SEAL_REASON_ENDED);
    if (key) {
        integrity__seal_msg(m, msg);
        if ((rc = sign_message(key, msg, sizeof(msg), s.sig)) < 0) {
            return rc;
        }
        s.is_signed = true;
        sign_key_id(key, s.key_id);
        s.signed_at = now;
    }
    return catalog__seal_put(cat, &s);
}

int integrity__seal_before(struct catalog *cat, struct sealseq_w *seq, const struct sign_key *key,
                           int64_t ts, int64_t now)
{
    struct seg_meta *rows = NULL;
    struct sealseq_entry *v = NULL;
    size_t nv = 0;
    size_t n = 0;
    int sealed = 0;
    char key_id[SIGN_KEY_ID_LEN + 1] = "";
    bool any = false;
    int rc = catalog__list(cat, CATALOG_OPEN, 0, 0, &rows, &n);

    /* Called every few seconds: take the write lock only when there is work. The
     * writer alone changes rows' states, so the list stays true until we lock. */
    for (size_t i = 0; rc == 0 && i < n && !any; i++) {
        any = rows[i].part_end <= ts;
    }
    free(rows);
    rows = NULL;
    if (rc < 0 || !any) {
        return rc;
    }
    rc = catalog__begin(cat);
    if (rc < 0) {
        return rc;
    }
    if (key) {
        struct buf pem;
        sign_key_id(key, key_id);
        buf_init(&pem, SIGN_PEM_MAX);
        rc = sign_key_public_pem(key, &pem);
        if (rc == 0) {
            rc = catalog__key_put(cat, key_id, buf_cstr(&pem), now);
        }
        buf_release(&pem);
    }
    if (rc == 0) {
        rc = catalog__list(cat, CATALOG_OPEN, 0, 0, &rows, &n);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct seg_meta *m = &rows[i];

        if (m->part_end > ts) {
            continue;
        }
        /* segment.md 13.4: its SEAL entry goes first, unless a crash came between the
         * entry and this transaction last time (then the row is sealed as it said). */
        const struct sealseq_entry *done = sealseq__last(seq, m->id);
        bool logged = done && (done->type == SEALSEQ_SEAL || done->type == SEALSEQ_DELETE);
        int64_t at = logged && done->type == SEALSEQ_SEAL ? done->time : now;
        rc = catalog__seal(cat, m->id, at);
        if (rc < 0) {
            break;
        }
        m->state = SEG_SEALED;
        m->sealed = at;
        if (!logged) {
            v = xrealloc(v, (nv + 1) * sizeof(*v));
            sealseq__from_meta(&v[nv++], SEALSEQ_SEAL, SEALSEQ_ENDED, m);
        }
        rc = integrity__seal_row(cat, key, m, now);
        sealed++;
    }
    free(rows);
    if (rc == 0) {
        rc = sealseq__append(seq, v, nv, key);
    }
    free(v);
    if (rc == 0) {
        rc = catalog__commit(cat);
    }
    if (rc < 0) {
        catalog__rollback(cat);
        return rc;
    }
    return sealed;
}
