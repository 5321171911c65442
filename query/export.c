/* query/export.c: `vigil export [FILTER] [--since T] [--until T] -o|--out BUNDLE.tar`:
 * an evidence bundle (schemas/bundle.md) of the events the query matches, with the
 * proof that each one is in the store as it was signed: for every segment holding a
 * match, its image (the file cut at the size its newest signed seal sequence entry
 * vouches for: SEAL for a sealed segment, CHECKPOINT for an open one), that entry, and
 * the public key. What vouches for the segments is the seal sequence (segment.md 13),
 * read from the store's seals.seq; the catalog is not needed.
 *
 * Read-only, beside a running vigild: a segment compacted or deleted between reading the
 * sequence and opening its file makes the export read the sequence again. Records an
 * open segment committed after its last checkpoint (at most a seal pass, 10 s in vigild)
 * have no signed head yet and are left out, said on stderr. Blocks on I/O. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/bundle.h"
#include "query/cli.h"
#include "query/filter.h"
#include "query/output.h"
#include "query/scan.h"
#include "store/sealseq.h"
#include "store/sign.h"
#include "store/store.h"

#define EXPORT_MAX_TRIES 16 /* readings of the sequence while segments go under us */

static void export_usage(FILE *f)
{
    fprintf(f, "usage: vigil export [FILTER...] [--since T] [--until T] -o|--out BUNDLE.tar\n"
               "                    [-c FILE | --store DIR]\n"
               "\n"
               "Writes an evidence bundle: the matching events (events.ndjson, as `vigil search\n"
               "--format ndjson` prints them), the segment images they come from, the signed\n"
               "seal sequence entries that vouch for those images, the collector's public key\n"
               "and a manifest (query, window, who, when, vigil version, counts, SHA-256 of every\n"
               "member). `vigil verify BUNDLE.tar [--key PUB.pem]` checks it offline.\n"
               "The bundle is never overwritten: BUNDLE.tar must not exist.\n"
               "FILTER and T as for vigil search (schemas/bundle.md has the format).\n");
}

struct export_opts {
    const char *out;
};

static const struct cli_opt export_opts[] = {
    { "--out", "-o", CLI_STR, CLI_OFF(struct export_opts, out), 0, 0 },
    { NULL },
};

/* ---- the seal sequence: each segment's newest entry, the keys ---- */

struct seq_read {
    struct sealseq_entry *v; /* entries about segments (OPEN, CHECKPOINT, SEAL, DELETE) */
    size_t n, cap;
    struct {
        uint8_t id[VG_SHA256_LEN];
        uint8_t pub[SIGN_PUB_LEN];
    } keys[64];
    size_t nkeys;
    char bad[256]; /* the first damaged entry */
};

static int on_entry(void *arg, const struct sealseq_entry *e, const char *bad)
{
    struct seq_read *s = arg;

    if (bad) {
        if (!s->bad[0]) {
            snprintf(s->bad, sizeof(s->bad), "entry %" PRIu64 ": %s", e->index, bad);
        }
        return 0;
    }
    if (e->type == SEALSEQ_START || e->type == SEALSEQ_KEY) {
        uint8_t id[VG_SHA256_LEN];
        static const uint8_t zero[SIGN_PUB_LEN];
        if (memcmp(e->extra, zero, SIGN_PUB_LEN) != 0 && s->nkeys < 64) {
            vg_sha256(e->extra, SIGN_PUB_LEN, id); /* segment.md 8.1: the key id */
            memcpy(s->keys[s->nkeys].id, id, VG_SHA256_LEN);
            memcpy(s->keys[s->nkeys].pub, e->extra, SIGN_PUB_LEN);
            s->nkeys++;
        }
        return 0;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = *e;
    return 0;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct sealseq_entry *x = a;
    const struct sealseq_entry *y = b;
    if (x->segment_id != y->segment_id) {
        return x->segment_id < y->segment_id ? -1 : 1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

/* ---- one attempt ---- */

struct hit {
    int64_t ts;
    uint64_t seq;
    uint8_t *bytes; /* owned */
    size_t len;
};

struct chosen {
    struct sealseq_entry e;
    char name[64];
    int fd;
    uint64_t file_size;
    uint64_t matched;
};

struct export_run {
    const struct filter *f;
    int64_t since, until;
    struct hit *hits;
    size_t nhits, cap;
    struct chosen *segs;
    size_t nsegs;
    uint64_t *cur_matched;
    bool progress; /* a line on stderr per segment read (a terminal) */
};

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct export_run *x = arg;
    struct span in = bytes;
    struct rec r;

    if (ts < x->since || ts >= x->until || rec_decode(&in, &r) < 0 ||
        (x->f && !filter_match(x->f, &r))) {
        return 0;
    }
    if (x->nhits == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 1024;
        x->hits = xrealloc(x->hits, x->cap * sizeof(*x->hits));
    }
    struct hit *h = &x->hits[x->nhits++];
    h->ts = ts;
    h->seq = seq;
    h->len = bytes.n;
    h->bytes = xmalloc(bytes.n);
    memcpy(h->bytes, bytes.p, bytes.n);
    (*x->cur_matched)++;
    return 0;
}

static void run_release(struct export_run *x)
{
    for (size_t i = 0; i < x->nhits; i++) {
        free(x->hits[i].bytes);
    }
    free(x->hits);
    for (size_t i = 0; i < x->nsegs; i++) {
        if (x->segs[i].fd >= 0) {
            close(x->segs[i].fd);
        }
    }
    free(x->segs);
    x->hits = NULL;
    x->segs = NULL;
    x->nhits = x->cap = x->nsegs = 0;
}

static int cmp_hit(const void *a, const void *b)
{
    const struct hit *x = a;
    const struct hit *y = b;
    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Reads the sequence, picks the segments that can hold a match, walks each one's image
 * (every block checked, the chain against the signed head) and keeps the matches.
 * Returns 0, -EAGAIN (a file went meanwhile: read again), or an error with eb. */
static int collect(const char *dir, struct export_run *x, struct seq_read *sr, struct errbuf *eb)
{
    char path[4096];
    int rc;

    memset(sr, 0, sizeof(*sr));
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, SEALSEQ_FILE) >= sizeof(path)) {
        errbuf_set(eb, "store path '%s' is too long", dir);
        return -ENAMETOOLONG;
    }
    rc = sealseq_read_file(path, on_entry, sr, NULL);
    if (rc == -ENOENT) {
        errbuf_set(eb,
                   "'%s' has no seal sequence (%s): nothing vouches for its segments; a store "
                   "written before seal sequences gets one at vigild's next start",
                   dir, SEALSEQ_FILE);
        return rc;
    }
    if (rc < 0) {
        errbuf_set(eb, "cannot read '%s': %s", path, vg_strerror(rc));
        return rc;
    }
    if (sr->bad[0]) {
        errbuf_set(eb, "the seal sequence is damaged (%s): run vigil verify", sr->bad);
        return VG_ECORRUPT;
    }
    if (sr->n > 1) {
        qsort(sr->v, sr->n, sizeof(*sr->v), cmp_entry);
    }
    for (size_t i = 0; i < sr->n; i++) {
        if (i + 1 < sr->n && sr->v[i + 1].segment_id == sr->v[i].segment_id) {
            continue; /* only each segment's newest entry */
        }
        const struct sealseq_entry *e = &sr->v[i];
        if (e->type == SEALSEQ_DELETE || e->count == 0 || e->ts_max < x->since ||
            e->ts_min >= x->until) {
            continue;
        }
        if (e->type == SEALSEQ_SEAL && e->reason == SEALSEQ_UNTRUSTED) {
            errbuf_set(eb,
                       "segment %" PRIu64 " was sealed as untrusted by recovery (segment.md 5.4): "
                       "its records cannot be exported with proof; run vigil verify",
                       e->segment_id);
            return VG_ECORRUPT;
        }
        if (!sealseq_is_signed(e)) {
            errbuf_set(eb,
                       "segment %" PRIu64 "'s newest seal sequence entry (%" PRIu64
                       ") is not signed (the store had no key then): start vigild with its key "
                       "once, then export again",
                       e->segment_id, e->index);
            return VG_ECORRUPT;
        }
        x->segs = xrealloc(x->segs, (x->nsegs + 1) * sizeof(*x->segs));
        struct chosen *c = &x->segs[x->nsegs++];
        c->e = *e;
        c->fd = -1;
        c->matched = 0;
        rc =
            store_image_open(dir, e->part_start, e->segment_id, &c->fd, &c->file_size, c->name, eb);
        if (rc == -ENOENT) {
            return -EAGAIN; /* compacted or deleted since we read the sequence */
        }
        if (rc < 0) {
            return rc;
        }
        if (c->file_size < e->bytes) {
            errbuf_set(eb,
                       "segment '%s' holds %" PRIu64 " bytes, fewer than the %" PRIu64
                       " its signed entry vouches for: run vigil verify",
                       c->name, c->file_size, e->bytes);
            return VG_ECORRUPT;
        }
        struct store_image img;
        struct errbuf why;
        errbuf_clear(&why);
        x->cur_matched = &c->matched;
        if (x->progress) {
            fprintf(stderr, "\rvigil export: reading %s (%.1f MiB), %zu events so far\033[K",
                    c->name, (double)e->bytes / (1024.0 * 1024.0), x->nhits);
        }
        rc = store_image_walk(c->fd, e->bytes, on_rec, x, &img, &why);
        if (rc == 0 && (img.segment_id != e->segment_id ||
                        memcmp(img.chain_head, e->chain_head, VG_SHA256_LEN) != 0 ||
                        img.count != e->count || img.blocks != e->blocks)) {
            errbuf_set(&why,
                       "its chain at %" PRIu64 " bytes is not the one its signed entry "
                       "records",
                       e->bytes);
            rc = VG_ECORRUPT;
        }
        if (rc != 0) {
            errbuf_set(eb, "segment '%s': %s: run vigil verify", c->name, errbuf_msg(&why));
            return rc < 0 ? rc : VG_ECORRUPT;
        }
        if (c->matched == 0) { /* nothing of it goes into the bundle */
            close(c->fd);
            x->nsegs--;
        }
    }
    return 0;
}

/* ---- writing ---- */

struct manifest {
    struct buf members; /* the JSON array's elements so far */
};

static int add_member(struct bundle_writer *w, struct manifest *m, const char *name, uint64_t bytes,
                      const uint8_t sha[VG_SHA256_LEN])
{
    char hex[2 * VG_SHA256_LEN + 1];
    vg_hex(sha, VG_SHA256_LEN, hex);
    (void)w;
    int rc = buf_appendf(&m->members, "%s\n    {\"name\": ", m->members.len ? "," : "");
    if (rc == 0) {
        rc = json_append_str(&m->members, span_str(name));
    }
    if (rc == 0) {
        rc = buf_appendf(&m->members, ", \"bytes\": %" PRIu64 ", \"sha256\": \"%s\"}", bytes, hex);
    }
    return rc;
}

static int append_time(struct buf *b, const char *key, int64_t ns, bool open_end)
{
    char t[40];
    if (open_end) {
        return buf_appendf(b, "\"%s\": null, \"%s_ns\": null", key, key);
    }
    vg_time_format(ns, 9, t, sizeof(t));
    return buf_appendf(b, "\"%s\": \"%s\", \"%s_ns\": %" PRId64, key, t, key, ns);
}

/* The name of a segment's entry member: entries/<file name without .vseg>.entry. */
static void entry_name(const char *file, char *out, size_t cap)
{
    size_t n = strlen(file);
    if (n > 5 && strcmp(file + n - 5, ".vseg") == 0) {
        n -= 5;
    }
    snprintf(out, cap, "entries/%.*s.entry", (int)n, file);
}

static int write_bundle(const char *path, const char *dir, const char *filter_text,
                        const struct cli_args *a, struct export_run *x, const struct seq_read *sr,
                        uint64_t *bytes_out, struct errbuf *eb)
{
    struct bundle_writer *w = NULL;
    struct manifest m;
    struct buf mj;
    char *events = NULL;
    size_t elen = 0;
    uint8_t sha[VG_SHA256_LEN];
    int rc;

    buf_init(&m.members, (size_t)1 << 30);
    buf_init(&mj, (size_t)1 << 30);
    *bytes_out = 0;

    /* events.ndjson: as vigil search --format ndjson prints them, in (ts, seq) order */
    if (x->nhits > 1) {
        qsort(x->hits, x->nhits, sizeof(*x->hits), cmp_hit);
    }
    FILE *ef = open_memstream(&events, &elen);
    if (!ef) {
        rc = -errno;
        errbuf_set(eb, "open_memstream: %s", strerror(errno));
        goto out;
    }
    struct out *o = out_new(OUT_NDJSON, ef, 0);
    rc = 0;
    for (size_t i = 0; i < x->nhits && rc == 0; i++) {
        struct span in = { x->hits[i].bytes, x->hits[i].len };
        struct rec r;
        rc = rec_decode(&in, &r);
        if (rc == 0) {
            rc = out_event(o, &r);
        }
        if (rc < 0) {
            errbuf_set(eb, "event seq %" PRIu64 " cannot be written as JSON: %s (run vigil verify)",
                       x->hits[i].seq, vg_strerror(rc));
        }
    }
    if (rc == 0 && (rc = out_finish(o)) < 0) {
        errbuf_set(eb, "cannot render the events: %s", vg_strerror(rc));
    }
    out_free(o);
    fclose(ef);
    if (rc < 0) {
        goto out;
    }

    if ((rc = bundle_writer_open(path, &w, eb)) < 0) {
        goto out;
    }
    struct span ev = { (const uint8_t *)events, elen };
    if ((rc = bundle_writer_add(w, BUNDLE_EVENTS, ev, sha, eb)) < 0 ||
        (rc = add_member(w, &m, BUNDLE_EVENTS, elen, sha)) < 0) {
        goto fail;
    }
    *bytes_out += elen;

    /* the segments: image and entry */
    struct buf segj;
    buf_init(&segj, (size_t)1 << 30);
    uint8_t used_keys[64][VG_SHA256_LEN];
    size_t nused = 0;
    uint64_t blocks = 0;
    for (size_t i = 0; i < x->nsegs && rc == 0; i++) {
        const struct chosen *c = &x->segs[i];
        char img[BUNDLE_MAX_NAME + 1];
        char ent[BUNDLE_MAX_NAME + 1];
        uint8_t raw[SEALSEQ_ENTRY_LEN];
        snprintf(img, sizeof(img), "segments/%s", c->name);
        entry_name(c->name, ent, sizeof(ent));
        if ((rc = bundle_writer_add_fd(w, img, c->fd, c->e.bytes, sha, eb)) < 0 ||
            (rc = add_member(w, &m, img, c->e.bytes, sha)) < 0) {
            break;
        }
        sealseq_encode(&c->e, raw);
        struct span es = { raw, sizeof(raw) };
        if ((rc = bundle_writer_add(w, ent, es, sha, eb)) < 0 ||
            (rc = add_member(w, &m, ent, sizeof(raw), sha)) < 0) {
            break;
        }
        *bytes_out += c->e.bytes + sizeof(raw);
        blocks += c->e.blocks;
        bool known = false;
        for (size_t k = 0; k < nused; k++) {
            known |= memcmp(used_keys[k], c->e.key_id, VG_SHA256_LEN) == 0;
        }
        if (!known && nused < 64) {
            memcpy(used_keys[nused++], c->e.key_id, VG_SHA256_LEN);
        }
        rc =
            buf_appendf(&segj,
                        "%s\n    {\"id\": %" PRIu64 ", \"file\": \"%s\", \"image\": \"%s\", "
                        "\"entry\": \"%s\", \"state\": \"%s\", \"entry_type\": \"%s\", "
                        "\"entry_index\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"blocks\": %" PRIu64
                        ", \"records\": %" PRIu64 ", \"events\": %" PRIu64 "}",
                        i ? "," : "", c->e.segment_id, c->name, img, ent,
                        c->e.type == SEALSEQ_SEAL ? "sealed" : "open", sealseq_type_name(c->e.type),
                        c->e.index, c->e.bytes, c->e.blocks, c->e.count, c->matched);
    }
    if (rc < 0) {
        buf_release(&segj);
        goto fail;
    }

    /* the keys that signed those entries */
    struct buf keyj;
    buf_init(&keyj, 1 << 20);
    for (size_t k = 0; k < nused && rc == 0; k++) {
        char kid[SIGN_KEY_ID_LEN + 1];
        char kname[BUNDLE_MAX_NAME + 1];
        const uint8_t *pub = NULL;
        vg_hex(used_keys[k], VG_SHA256_LEN, kid);
        for (size_t j = 0; j < sr->nkeys; j++) {
            if (memcmp(sr->keys[j].id, used_keys[k], VG_SHA256_LEN) == 0) {
                pub = sr->keys[j].pub;
            }
        }
        struct sign_key *key = NULL;
        struct buf pem;
        buf_init(&pem, SIGN_PEM_MAX);
        if (!pub || sign_key_from_raw(pub, &key) < 0 || sign_key_public_pem(key, &pem) < 0) {
            errbuf_set(eb, "the seal sequence names no usable public key with id %s", kid);
            rc = VG_ECORRUPT;
        }
        snprintf(kname, sizeof(kname), "keys/%s.pem", kid);
        if (rc == 0 && ((rc = bundle_writer_add(w, kname, buf_span(&pem), sha, eb)) < 0 ||
                        (rc = add_member(w, &m, kname, pem.len, sha)) < 0)) {
            rc = rc < 0 ? rc : -EIO;
        }
        if (rc == 0) {
            rc = buf_appendf(&keyj,
                             "%s\n    {\"key_id\": \"%s\", \"algorithm\": \"ed25519\", "
                             "\"member\": \"%s\"}",
                             k ? "," : "", kid, kname);
        }
        buf_release(&pem);
        sign_key_free(key);
    }

    /* the manifest, last: it lists every member before it */
    char who[256];
    char host[256] = "";
    char created[40];
    int64_t now = vg_now_ns();
    cli_user(who, sizeof(who));
    (void)gethostname(host, sizeof(host) - 1);
    vg_time_format(now, 9, created, sizeof(created));
    if (rc == 0) {
        rc = buf_appendf(&mj,
                         "{\n  \"format\": \"vigil-bundle\",\n  \"version\": %d,\n"
                         "  \"vigil_version\": \"%s\",\n  \"created\": \"%s\",\n"
                         "  \"created_ns\": %" PRId64 ",\n  \"created_by\": {\"user\": ",
                         BUNDLE_VERSION, VG_VERSION, created, now);
    }
    if (rc == 0) {
        rc = json_append_str(&mj, span_str(who));
    }
    if (rc == 0) {
        rc = buf_append_str(&mj, ", \"host\": ");
    }
    if (rc == 0) {
        rc = json_append_str(&mj, span_str(host));
    }
    if (rc == 0) {
        rc = buf_append_str(&mj, "},\n  \"store\": ");
    }
    if (rc == 0) {
        rc = json_append_str(&mj, span_str(dir));
    }
    if (rc == 0) {
        rc = buf_append_str(&mj, ",\n  \"query\": {\"filter\": ");
    }
    if (rc == 0) {
        rc = json_append_str(&mj, span_str(filter_text ? filter_text : ""));
    }
    if (rc == 0) {
        rc = buf_appendf(&mj, ", \"filter_now_ns\": %" PRId64 ", ", a->now);
    }
    if (rc == 0) {
        rc = append_time(&mj, "since", x->since, x->since == INT64_MIN);
    }
    if (rc == 0) {
        rc = buf_append_str(&mj, ", ");
    }
    if (rc == 0) {
        rc = append_time(&mj, "until", x->until, x->until == INT64_MAX);
    }
    if (rc == 0) {
        rc = buf_appendf(
            &mj,
            "},\n  \"counts\": {\"events\": %zu, \"segments\": %zu, \"blocks\": %" PRIu64
            "},\n  \"events\": \"%s\",\n  \"segments\": [%s\n  ],\n  \"keys\": [%s\n  ],"
            "\n  \"members\": [%s\n  ]\n}\n",
            x->nhits, x->nsegs, blocks, BUNDLE_EVENTS, buf_cstr(&segj), buf_cstr(&keyj),
            buf_cstr(&m.members));
    }
    buf_release(&segj);
    buf_release(&keyj);
    if (rc < 0) {
        if (!errbuf_msg(eb)[0]) {
            errbuf_set(eb, "the manifest: %s", vg_strerror(rc));
        }
        goto fail;
    }
    if ((rc = bundle_writer_add(w, BUNDLE_MANIFEST, buf_span(&mj), NULL, eb)) < 0) {
        goto fail;
    }
    *bytes_out += mj.len;
    rc = bundle_writer_close(w, eb);
    w = NULL;
    if (rc < 0) {
        goto fail;
    }
    goto out;
fail:
    bundle_writer_abort(w);
    (void)unlink(path);
out:
    free(events);
    buf_release(&m.members);
    buf_release(&mj);
    return rc;
}

static int export_run(struct cli_args *a)
{
    const struct export_opts *eo = a->own;
    struct filter *f = NULL;
    char *text = NULL;
    struct errbuf eb;
    struct export_run x;
    struct seq_read sr;
    int rc;

    if (!eo->out || !*eo->out) {
        fprintf(stderr, "vigil export: say where the bundle goes: -o BUNDLE.tar (or --out)\n");
        export_usage(stderr);
        return CLI_USAGE;
    }
    if (access(eo->out, F_OK) == 0) {
        fprintf(stderr,
                "vigil export: '%s' exists: a bundle is never overwritten (choose another name)\n",
                eo->out);
        return CLI_USAGE;
    }
    if ((rc = cli_filter(a, true, &f, &text)) != CLI_OK) {
        return rc;
    }
    if ((rc = cli_load(a)) != CLI_OK) {
        filter_free(f);
        free(text);
        return rc;
    }
    const char *dir = cli_store_dir(a);
    errbuf_clear(&eb);
    memset(&x, 0, sizeof(x));
    memset(&sr, 0, sizeof(sr));
    x.f = f;
    x.since = a->since;
    x.until = a->until;
    x.progress = cli_progress_enabled();
    for (int tries = 0;; tries++) {
        free(sr.v);
        run_release(&x);
        rc = collect(dir, &x, &sr, &eb);
        if (rc != -EAGAIN || tries + 1 >= EXPORT_MAX_TRIES) {
            break;
        }
    }
    if (x.progress) {
        fputs("\r\033[K", stderr);
    }
    if (rc == -EAGAIN) {
        fprintf(stderr, "vigil export: segments kept going while reading them (%d tries): %s\n",
                EXPORT_MAX_TRIES, errbuf_msg(&eb));
        rc = CLI_FAIL;
        goto out;
    }
    if (rc < 0) {
        fprintf(stderr, "vigil export: %s\n", errbuf_msg(&eb));
        rc = CLI_FAIL;
        goto out;
    }
    /* What the store holds beyond its signed heads: records an open segment committed
     * after its last checkpoint. A plain scan counts every match; the difference is said. */
    struct scan_result res;
    struct errbuf seb;
    errbuf_clear(&seb);
    if (scan_run(dir, a->since, a->until, f, 1, 0, &res, &seb) == 0 && res.matched > x.nhits) {
        fprintf(stderr,
                "vigil export: %" PRIu64 " matching event%s committed after %s segment's last "
                "checkpoint %s no signed head yet and %s not in the bundle (vigild checkpoints "
                "open segments every minute and seals them when their partition ends: export "
                "again then)\n",
                res.matched - x.nhits, res.matched - x.nhits == 1 ? "" : "s",
                res.matched - x.nhits == 1 ? "its open" : "their open",
                res.matched - x.nhits == 1 ? "has" : "have",
                res.matched - x.nhits == 1 ? "is" : "are");
    }
    scan_result_release(&res);
    uint64_t bytes = 0;
    rc = write_bundle(eo->out, dir, text, a, &x, &sr, &bytes, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil export: %s\n", errbuf_msg(&eb));
        rc = CLI_FAIL;
        goto out;
    }
    fprintf(stderr,
            "vigil export: %zu event%s from %zu segment%s (%.1f MiB) in %s; check it with vigil "
            "verify %s\n",
            x.nhits, x.nhits == 1 ? "" : "s", x.nsegs, x.nsegs == 1 ? "" : "s",
            (double)bytes / (1024.0 * 1024.0), eo->out, eo->out);
    rc = CLI_OK;
out:
    free(sr.v);
    run_release(&x);
    filter_free(f);
    free(text);
    return rc;
}

const struct cli_cmd cmd_export = {
    .name = "export",
    .synopsis = "[FILTER] [--since T] [--until T] -o BUNDLE.tar  (events with their proof)",
    .takes = CLI_STORE | CLI_TIME,
    .opts = export_opts,
    .own_size = sizeof(struct export_opts),
    .usage = export_usage,
    .run = export_run,
};
