/* query/bundle.c: evidence bundles (schemas/bundle.md), written and verified. The one
 * file of vigil that includes libarchive's headers (tests/arch/check_layers.py).
 *
 * Verification trusts nothing in the bundle but SHA-256, Ed25519 and the key (the
 * bundle's own, or --key): the manifest only says where things are and what was asked.
 * Members are read into memory files (memfd) so that segment images are walked by the
 * store's own reader (store_image_walk) with every check vigil verify makes. */
#include "query/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/json.h"
#include "common/mp.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/filter.h"
#include "query/output.h"
#include "schemas/record.h"
#include "store/sealseq.h"
#include "store/sign.h"
#include "store/store.h"

#define BUNDLE_MAX_MEMBER_BYTES ((uint64_t)1 << 40) /* a segment image is at most this */
#define BUNDLE_MAX_REPORTED     200                 /* problem lines, then a count */

/* ---- writing ---- */

struct bundle_writer {
    struct archive *a;
    int fd;
    int64_t mtime;
};

int bundle_writer_open(const char *path, struct bundle_writer **out, struct errbuf *eb)
{
    struct bundle_writer *w = xcalloc(1, sizeof(*w));

    *out = NULL;
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        errbuf_set(eb, "cannot create '%s': %s%s", path, strerror(e),
                   e == EEXIST ? " (a bundle is never overwritten: choose another name)" : "");
        free(w);
        return -e;
    }
    w->mtime = vg_now_ns() / VG_NS_PER_SEC;
    w->a = archive_write_new();
    if (!w->a || archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
        archive_write_open_fd(w->a, w->fd) != ARCHIVE_OK) {
        errbuf_set(eb, "cannot start the tar file '%s': %s", path,
                   w->a ? archive_error_string(w->a) : "out of memory");
        bundle_writer_abort(w);
        return VG_EFORMAT;
    }
    *out = w;
    return 0;
}

static int member_header(struct bundle_writer *w, const char *name, uint64_t size,
                         struct errbuf *eb)
{
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0444);
    archive_entry_set_mtime(e, w->mtime, 0);
    int rc = archive_write_header(w->a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK) {
        errbuf_set(eb, "cannot write member '%s': %s", name, archive_error_string(w->a));
        return -EIO;
    }
    return 0;
}

static int member_data(struct bundle_writer *w, const char *name, const void *p, size_t n,
                       struct errbuf *eb)
{
    if (n > 0 && archive_write_data(w->a, p, n) != (la_ssize_t)n) {
        errbuf_set(eb, "cannot write member '%s': %s", name, archive_error_string(w->a));
        return -EIO;
    }
    return 0;
}

int bundle_writer_add(struct bundle_writer *w, const char *name, struct span data,
                      uint8_t sha[VG_SHA256_LEN], struct errbuf *eb)
{
    int rc = member_header(w, name, data.n, eb);
    if (rc == 0) {
        rc = member_data(w, name, data.p, data.n, eb);
    }
    if (rc == 0 && sha) {
        vg_sha256(data.p, data.n, sha);
    }
    return rc;
}

int bundle_writer_add_fd(struct bundle_writer *w, const char *name, int fd, uint64_t size,
                         uint8_t sha[VG_SHA256_LEN], struct errbuf *eb)
{
    size_t cap = 1u << 20;
    uint8_t *b = xmalloc(cap);
    struct digest *d = digest_new();
    uint64_t off = 0;
    int rc = member_header(w, name, size, eb);

    while (rc == 0 && off < size) {
        size_t n = size - off < cap ? (size_t)(size - off) : cap;
        ssize_t got = pread(fd, b, n, (off_t)off);
        if (got <= 0) {
            rc = got < 0 ? -errno : -EIO;
            errbuf_set(eb, "cannot read what goes into member '%s': %s", name,
                       got < 0 ? strerror(errno) : "the file is shorter than its signed size");
            break;
        }
        digest_update(d, b, (size_t)got);
        rc = member_data(w, name, b, (size_t)got, eb);
        off += (uint64_t)got;
    }
    if (rc == 0 && sha) {
        digest_final(d, sha);
    }
    digest_free(d);
    free(b);
    return rc;
}

int bundle_writer_close(struct bundle_writer *w, struct errbuf *eb)
{
    int rc = 0;

    if (archive_write_close(w->a) != ARCHIVE_OK) {
        errbuf_set(eb, "cannot finish the tar file: %s", archive_error_string(w->a));
        rc = -EIO;
    }
    if (rc == 0 && fsync(w->fd) != 0) {
        rc = -errno;
        errbuf_set(eb, "cannot sync the bundle: %s", strerror(errno));
    }
    archive_write_free(w->a);
    if (close(w->fd) != 0 && rc == 0) {
        rc = -errno;
        errbuf_set(eb, "cannot close the bundle: %s", strerror(errno));
    }
    free(w);
    return rc;
}

void bundle_writer_abort(struct bundle_writer *w)
{
    if (w) {
        if (w->a) {
            archive_write_free(w->a);
        }
        if (w->fd >= 0) {
            close(w->fd);
        }
        free(w);
    }
}

/* ---- reading ---- */

struct member {
    char *name;
    int fd; /* a memory file holding its bytes */
    uint64_t size;
    uint8_t sha[VG_SHA256_LEN];
    bool listed; /* in the manifest's members */
};

struct expect {
    int64_t ts;
    uint64_t seq;
    uint8_t *bytes; /* the record, owned */
    size_t len;
    size_t seg; /* index into the manifest's segments */
    bool seen;
};

struct vctx {
    FILE *report;
    struct bundle_summary *sum;
    struct member *m;
    size_t nm;
    /* the query */
    struct filter *f;
    int64_t since, until;
    /* records of the images that match it */
    struct expect *ex;
    size_t nex, capex;
    size_t cur_seg;
    char bad_key[BUNDLE_MAX_NAME + 1]; /* a key member already reported as bad */
};

VG_PRINTF(2, 3) static void problem(struct vctx *v, const char *fmt, ...)
{
    va_list ap;

    v->sum->problems++;
    if (!v->report || v->sum->problems > BUNDLE_MAX_REPORTED) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(v->report, fmt, ap);
    va_end(ap);
    fputc('\n', v->report);
}

static struct member *member_find(struct vctx *v, const char *name)
{
    for (size_t i = 0; i < v->nm; i++) {
        if (strcmp(v->m[i].name, name) == 0) {
            return &v->m[i];
        }
    }
    return NULL;
}

/* Reads member m whole into out (at most max bytes). Returns 0, VG_ELIMIT or -errno. */
static int member_read(const struct member *m, size_t max, struct buf *out)
{
    buf_init(out, m->size <= max ? (size_t)m->size + 1 : 1); /* released by the caller */
    if (m->size > max) {
        return VG_ELIMIT;
    }
    int rc = buf_reserve(out, (size_t)m->size);
    if (rc < 0) {
        return rc;
    }
    size_t off = 0;
    while (off < m->size) {
        ssize_t got = pread(m->fd, out->data + off, (size_t)m->size - off, (off_t)off);
        if (got <= 0) {
            return got < 0 ? -errno : -EIO;
        }
        off += (size_t)got;
    }
    out->len = off;
    out->data[off] = 0;
    return 0;
}

static void members_free(struct vctx *v)
{
    for (size_t i = 0; i < v->nm; i++) {
        free(v->m[i].name);
        if (v->m[i].fd >= 0) {
            close(v->m[i].fd);
        }
    }
    free(v->m);
    v->m = NULL;
    v->nm = 0;
}

/* Every member of the tar into a memory file, with its SHA-256. Returns 0, or an error
 * with eb when the bytes are not a tar file we accept (a member that is not a regular
 * file, a name too long, two members of one name, more than BUNDLE_MAX_MEMBERS). */
static int members_load(struct vctx *v, struct archive *a, struct errbuf *eb)
{
    struct archive_entry *e;
    uint8_t *b = xmalloc(1u << 16);
    struct digest *d = digest_new();
    int rc = 0;
    int r;

    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        const char *name = archive_entry_pathname(e);
        if (!name || !*name || strlen(name) > BUNDLE_MAX_NAME) {
            errbuf_set(eb, "a member has %s name", name && *name ? "too long a" : "no");
            rc = VG_EFORMAT;
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG) {
            errbuf_set(eb, "member '%s' is not a regular file", name);
            rc = VG_EFORMAT;
            break;
        }
        if (member_find(v, name)) {
            errbuf_set(eb, "member '%s' appears twice", name);
            rc = VG_EFORMAT;
            break;
        }
        if (v->nm >= BUNDLE_MAX_MEMBERS) {
            errbuf_set(eb, "more than %d members", BUNDLE_MAX_MEMBERS);
            rc = VG_ELIMIT;
            break;
        }
        v->m = xrealloc(v->m, (v->nm + 1) * sizeof(*v->m));
        struct member *m = &v->m[v->nm++];
        m->name = xstrdup(name);
        m->size = 0;
        m->listed = false;
        m->fd = memfd_create("vigil-bundle", MFD_CLOEXEC);
        if (m->fd < 0) {
            rc = -errno;
            errbuf_set(eb, "cannot make a memory file: %s", strerror(errno));
            break;
        }
        la_ssize_t got;
        while ((got = archive_read_data(a, b, 1u << 16)) > 0) {
            if (m->size + (uint64_t)got > BUNDLE_MAX_MEMBER_BYTES) {
                errbuf_set(eb, "member '%s' is larger than a segment can be", name);
                rc = VG_ELIMIT;
                break;
            }
            if (write(m->fd, b, (size_t)got) != got) {
                rc = -errno;
                errbuf_set(eb, "cannot hold member '%s' in memory: %s", name, strerror(errno));
                break;
            }
            digest_update(d, b, (size_t)got);
            m->size += (uint64_t)got;
        }
        digest_final(d, m->sha);
        if (rc == 0 && got < 0) {
            errbuf_set(eb, "member '%s': %s", name, archive_error_string(a));
            rc = VG_EFORMAT;
        }
        if (rc < 0) {
            break;
        }
    }
    if (rc == 0 && r != ARCHIVE_EOF) {
        errbuf_set(eb, "not a bundle (a tar file) vigil can read: %s", archive_error_string(a));
        rc = VG_EFORMAT;
    }
    digest_free(d);
    free(b);
    return rc;
}

/* ---- the manifest (msgpack, from its JSON) ---- */

static bool mget(struct span map, const char *key, struct span *v)
{
    return mp_map_get(map, span_str(key), v) == 1;
}

static bool mget_str(struct span map, const char *key, char *out, size_t cap)
{
    struct span v;
    struct span s;
    if (!mget(map, key, &v) || !mp_get_str(v, &s) || s.n >= cap || memchr(s.p, 0, s.n)) {
        return false;
    }
    memcpy(out, s.p, s.n);
    out[s.n] = 0;
    return true;
}

static bool mget_i64(struct span map, const char *key, int64_t *out)
{
    struct span v;
    return mget(map, key, &v) && mp_get_i64(v, out);
}

/* An array's elements, one after another: *it the array, then each call takes one. */
static bool array_open(struct span v, struct span *it, uint32_t *n)
{
    struct mp_obj o;
    *it = v;
    if (mp_read(it, &o) != 1 || o.type != MP_ARRAY) {
        return false;
    }
    *n = o.v.count;
    return true;
}

/* ---- checks ---- */

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct vctx *v = arg;
    struct span in = bytes;
    struct rec r;

    if (ts < v->since || ts >= v->until) {
        return 0;
    }
    if (rec_decode(&in, &r) < 0) {
        return 0; /* not an event record: no query matches it (verify names such stores) */
    }
    if (v->f && !filter_match(v->f, &r)) {
        return 0;
    }
    if (v->nex == v->capex) {
        v->capex = v->capex ? 2 * v->capex : 256;
        v->ex = xrealloc(v->ex, v->capex * sizeof(*v->ex));
    }
    struct expect *x = &v->ex[v->nex++];
    x->ts = ts;
    x->seq = seq;
    x->len = bytes.n;
    x->bytes = xmalloc(bytes.n);
    memcpy(x->bytes, bytes.p, bytes.n);
    x->seg = v->cur_seg;
    x->seen = false;
    return 0;
}

static int cmp_expect(const void *a, const void *b)
{
    const struct expect *x = a;
    const struct expect *y = b;
    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

struct seg_info {
    char image[BUNDLE_MAX_NAME + 1];
    char entry[BUNDLE_MAX_NAME + 1];
    uint64_t id;
};

/* One segment of the manifest: its entry (decoded, signed by a key we accept) and its
 * image (whose chain must end at the entry's head after exactly the entry's bytes).
 * Records matching the query go to v->ex. Returns true when it verified. */
static bool check_segment(struct vctx *v, const struct seg_info *si, const struct sign_key *trusted,
                          const char *trusted_id)
{
    struct member *em = member_find(v, si->entry);
    struct member *im = member_find(v, si->image);
    struct sealseq_entry e;
    struct errbuf why;
    struct buf raw;
    char kid[SIGN_KEY_ID_LEN + 1];
    char hex[2 * VG_SHA256_LEN + 1];

    errbuf_clear(&why);
    if (!em || !im) {
        problem(v,
                "%s: FAILED: missing from the bundle (the manifest lists it for segment %" PRIu64
                ")",
                !em ? si->entry : si->image, si->id);
        return false;
    }
    if (member_read(em, SEALSEQ_ENTRY_LEN, &raw) < 0 || raw.len != SEALSEQ_ENTRY_LEN) {
        problem(v, "%s: FAILED: not a seal sequence entry (%" PRIu64 " bytes, not %d)", si->entry,
                em->size, SEALSEQ_ENTRY_LEN);
        buf_release(&raw);
        return false;
    }
    int rc = sealseq_decode(raw.data, &e, &why);
    buf_release(&raw);
    if (rc < 0) {
        problem(v, "%s: FAILED: not a seal sequence entry: %s", si->entry, errbuf_msg(&why));
        return false;
    }
    if (e.type != SEALSEQ_SEAL && e.type != SEALSEQ_CHECKPOINT && e.type != SEALSEQ_OPEN) {
        problem(v, "%s: FAILED: a %s entry vouches for no segment's bytes", si->entry,
                sealseq_type_name(e.type));
        return false;
    }
    if (e.type == SEALSEQ_SEAL && e.reason == SEALSEQ_UNTRUSTED) {
        problem(v, "%s: FAILED: the store sealed segment %" PRIu64 " as untrusted", si->entry,
                e.segment_id);
        return false;
    }
    if (e.segment_id != si->id) {
        problem(v, "%s: FAILED: the entry is about segment %" PRIu64 ", the manifest says %" PRIu64,
                si->entry, e.segment_id, si->id);
        return false;
    }
    if (!sealseq_is_signed(&e)) {
        problem(v, "%s: FAILED: the entry is not signed", si->entry);
        return false;
    }
    vg_hex(e.key_id, VG_SHA256_LEN, kid);
    struct sign_key *k = NULL;
    if (trusted) {
        if (strcmp(kid, trusted_id) != 0) {
            problem(v, "%s: FAILED: signed by key %s, not by the key given with --key (%s)",
                    si->entry, kid, trusted_id);
            return false;
        }
    } else {
        char kname[BUNDLE_MAX_NAME + 1];
        snprintf(kname, sizeof(kname), "keys/%s.pem", kid);
        struct member *km = member_find(v, kname);
        struct buf pem;
        if (!km) {
            problem(v, "%s: FAILED: signed by key %s, which the bundle does not hold (%s)",
                    si->entry, kid, kname);
            return false;
        }
        if (strcmp(v->bad_key, kname) == 0) {
            problem(v, "%s: FAILED: signed by key %.16s, whose member failed (above)", si->entry,
                    kid);
            return false;
        }
        if (member_read(km, SIGN_PEM_MAX, &pem) < 0 ||
            sign_key_parse_public(buf_span(&pem), &k, &why) < 0) {
            problem(v, "%s: FAILED: not a public key: %s", kname, errbuf_msg(&why));
            snprintf(v->bad_key, sizeof(v->bad_key), "%s", kname);
            buf_release(&pem);
            return false;
        }
        buf_release(&pem);
        char got[SIGN_KEY_ID_LEN + 1];
        sign_key_id(k, got);
        if (strcmp(got, kid) != 0) {
            problem(v, "%s: FAILED: holds key %s, not the key its name says", kname, got);
            snprintf(v->bad_key, sizeof(v->bad_key), "%s", kname);
            sign_key_free(k);
            return false;
        }
    }
    rc = sealseq_check(&e, trusted ? trusted : k);
    sign_key_free(k);
    if (rc < 0) {
        problem(v,
                "%s: FAILED: the signature does not match the entry (the entry or its signature "
                "was changed)",
                si->entry);
        return false;
    }
    if (v->sum->key_id[0] == 0) {
        snprintf(v->sum->key_id, sizeof(v->sum->key_id), "%s", kid);
    }

    /* the image: every block checked, its chain ending at the signed head */
    struct store_image img;
    size_t first = v->nex;
    rc = store_image_walk(im->fd, im->size, on_rec, v, &img, &why);
    if (rc != 0) {
        problem(v, "%s: FAILED at %s", si->image, errbuf_msg(&why));
        return false;
    }
    if (img.segment_id != e.segment_id || img.part_start != e.part_start ||
        img.part_end != e.part_end) {
        problem(v,
                "%s: FAILED: its header is segment %" PRIu64 " of partition %" PRId64
                ", the signed entry's is %" PRIu64 " of %" PRId64,
                si->image, img.segment_id, img.part_start, e.segment_id, e.part_start);
        return false;
    }
    if (img.bytes != e.bytes || img.blocks != e.blocks || img.count != e.count ||
        memcmp(img.chain_head, e.chain_head, VG_SHA256_LEN) != 0) {
        char want[2 * VG_SHA256_LEN + 1];
        vg_hex(img.chain_head, VG_SHA256_LEN, hex);
        vg_hex(e.chain_head, VG_SHA256_LEN, want);
        problem(v,
                "%s: FAILED: its chain ends at %.16s after %" PRIu64 " bytes, %" PRIu64
                " blocks, %" PRIu64 " records; the signed entry says %.16s, %" PRIu64 ", %" PRIu64
                ", %" PRIu64,
                si->image, hex, img.bytes, img.blocks, img.count, want, e.bytes, e.blocks, e.count);
        for (size_t i = first; i < v->nex; i++) {
            free(v->ex[i].bytes);
        }
        v->nex = first;
        return false;
    }
    vg_hex(e.chain_head, VG_SHA256_LEN, hex);
    if (v->report) {
        fprintf(v->report,
                "%s: ok: %" PRIu64 " records in %" PRIu64
                " blocks, chain head %.16s, %s entry %" PRIu64
                " signed by key %.16s; %zu match the query\n",
                si->image, img.count, img.blocks, hex, sealseq_type_name(e.type), e.index, kid,
                v->nex - first);
    }
    v->sum->segments++;
    return true;
}

struct seqix {
    uint64_t seq;
    size_t i;
};

static int cmp_seqix(const void *a, const void *b)
{
    const struct seqix *x = a;
    const struct seqix *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Line by line: events.ndjson must be exactly the matching records, rendered as
 * `vigil search --format ndjson` renders them, in (ts, seq) order. */
static void check_events(struct vctx *v, const struct seg_info *segs, int64_t want_events)
{
    struct member *em = member_find(v, BUNDLE_EVENTS);
    struct buf text;
    char *rendered = NULL;
    size_t rlen = 0;

    if (!em) {
        problem(v, "%s: FAILED: missing from the bundle", BUNDLE_EVENTS);
        return;
    }
    if (member_read(em, SIZE_MAX / 2, &text) < 0) {
        problem(v, "%s: FAILED: cannot be read", BUNDLE_EVENTS);
        buf_release(&text);
        return;
    }
    if (v->nex > 1) {
        qsort(v->ex, v->nex, sizeof(*v->ex), cmp_expect);
    }
    /* each expected record as its line */
    size_t *off = xcalloc(v->nex + 1, sizeof(*off));
    FILE *mf = open_memstream(&rendered, &rlen);
    struct out *o = mf ? out_new(OUT_NDJSON, mf, 0) : NULL;
    for (size_t i = 0; o && i < v->nex; i++) {
        struct span in = { v->ex[i].bytes, v->ex[i].len };
        struct rec r;
        if (rec_decode(&in, &r) < 0 || out_event(o, &r) < 0) {
            problem(v, "%s: FAILED: record seq %" PRIu64 " cannot be shown as JSON",
                    segs[v->ex[i].seg].image, v->ex[i].seq);
        }
        fflush(mf);
        off[i + 1] = rlen;
    }
    if (o) {
        if (out_finish(o) < 0) {
            problem(v, "%s: FAILED: cannot render the records as JSON", BUNDLE_EVENTS);
        }
        out_free(o);
    }
    if (mf) {
        fclose(mf);
    }
    /* seq -> expected index, for lines out of place */
    struct seqix *sx = xcalloc(v->nex + 1, sizeof(*sx));
    for (size_t i = 0; i < v->nex; i++) {
        sx[i].seq = v->ex[i].seq;
        sx[i].i = i;
    }
    if (v->nex > 1) {
        qsort(sx, v->nex, sizeof(*sx), cmp_seqix);
    }

    uint64_t line = 0;
    size_t last = 0;
    bool any = false;
    struct buf tmp;
    buf_init(&tmp, BUNDLE_MAX_META);
    const uint8_t *p = text.data;
    const uint8_t *end = text.data + text.len;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        struct span l = { p, n };
        p += n;
        line++;
        int64_t seq;
        struct span sv;
        buf_reset(&tmp);
        if (json_to_mp(l, &tmp, NULL, NULL) < 0 || !mget(buf_span(&tmp), "seq", &sv) ||
            !mp_get_i64(sv, &seq) || seq < 0) {
            problem(v, "%s line %" PRIu64 ": FAILED: not an event with a seq", BUNDLE_EVENTS, line);
            continue;
        }
        size_t lo = 0;
        size_t hi = v->nex;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (sx[mid].seq < (uint64_t)seq) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if (lo == v->nex || sx[lo].seq != (uint64_t)seq) {
            problem(v,
                    "%s line %" PRIu64 ": FAILED: event seq %" PRId64
                    " is not a record of the bundle's segments that matches the query (added, or "
                    "its seq changed)",
                    BUNDLE_EVENTS, line, seq);
            continue;
        }
        size_t k = sx[lo].i;
        struct expect *x = &v->ex[k];
        if (x->seen) {
            problem(v, "%s line %" PRIu64 ": FAILED: event seq %" PRId64 " appears twice",
                    BUNDLE_EVENTS, line, seq);
            continue;
        }
        x->seen = true;
        if (n != off[k + 1] - off[k] || memcmp(l.p, rendered + off[k], n) != 0) {
            problem(v,
                    "%s line %" PRIu64 ": FAILED: event seq %" PRId64
                    " differs from its record in %s (edited)",
                    BUNDLE_EVENTS, line, seq, segs[x->seg].image);
        }
        if (any && k < last) {
            problem(v,
                    "%s line %" PRIu64 ": FAILED: event seq %" PRId64
                    " is out of order: it belongs before the event of an earlier line (reordered)",
                    BUNDLE_EVENTS, line, seq);
        }
        if (!any || k > last) {
            last = k;
        }
        any = true;
        v->sum->events++;
    }
    for (size_t i = 0; i < v->nex; i++) {
        if (!v->ex[i].seen) {
            char t[40];
            vg_time_format(v->ex[i].ts, 9, t, sizeof(t));
            problem(v,
                    "%s: FAILED: event seq %" PRIu64 " (%s, in %s) matches the query but is not "
                    "in the file (removed)",
                    BUNDLE_EVENTS, v->ex[i].seq, t, segs[v->ex[i].seg].image);
        }
    }
    if (want_events >= 0 && (uint64_t)want_events != line) {
        problem(v, "%s: FAILED: %" PRIu64 " lines, the manifest counts %" PRId64 " events",
                BUNDLE_EVENTS, line, want_events);
    }
    buf_release(&tmp);
    free(sx);
    free(off);
    free(rendered);
    buf_release(&text);
}

static int verify_archive(struct archive *a, const struct bundle_verify_opts *o, FILE *report,
                          struct bundle_summary *sum, struct errbuf *eb)
{
    struct vctx v;
    struct buf mtext;
    struct buf man;
    struct sign_key *trusted = NULL;
    char trusted_id[SIGN_KEY_ID_LEN + 1] = "";
    struct seg_info *segs = NULL;
    uint32_t nseg = 0;
    int rc;

    memset(sum, 0, sizeof(*sum));
    memset(&v, 0, sizeof(v));
    v.report = report;
    v.sum = sum;
    buf_init(&mtext, 1);
    buf_init(&man, BUNDLE_MAX_META);
    if (o && o->trusted_key) {
        if ((rc = sign_key_load_public(o->trusted_key, &trusted, eb)) < 0) {
            errbuf_prefix(eb, "--key: ");
            goto out;
        }
        sign_key_id(trusted, trusted_id);
    }
    if ((rc = members_load(&v, a, eb)) < 0) {
        goto out;
    }

    /* the manifest */
    struct member *mm = member_find(&v, BUNDLE_MANIFEST);
    if (!mm) {
        errbuf_set(eb, "no %s: not a vigil evidence bundle", BUNDLE_MANIFEST);
        rc = VG_EFORMAT;
        goto out;
    }
    mm->listed = true;
    buf_release(&mtext);
    struct errbuf jeb;
    errbuf_clear(&jeb);
    if ((rc = member_read(mm, BUNDLE_MAX_META, &mtext)) < 0 ||
        (rc = json_to_mp(buf_span(&mtext), &man, NULL, &jeb)) < 0) {
        errbuf_set(eb, "%s: %s", BUNDLE_MANIFEST,
                   errbuf_msg(&jeb)[0] ? errbuf_msg(&jeb) : vg_strerror(rc));
        rc = VG_EFORMAT;
        goto out;
    }
    struct span mf = buf_span(&man);
    char fmt[32];
    int64_t version;
    if (!mget_str(mf, "format", fmt, sizeof(fmt)) || strcmp(fmt, "vigil-bundle") != 0 ||
        !mget_i64(mf, "version", &version)) {
        errbuf_set(eb, "%s: not a vigil evidence bundle's manifest (format, version)",
                   BUNDLE_MANIFEST);
        rc = VG_EFORMAT;
        goto out;
    }
    if (version != BUNDLE_VERSION) {
        errbuf_set(eb, "%s: bundle version %" PRId64 ", this vigil reads version %d",
                   BUNDLE_MANIFEST, version, BUNDLE_VERSION);
        rc = VG_EFORMAT;
        goto out;
    }

    /* members: each listed one present with its SHA-256, none unlisted */
    struct span it;
    struct span el;
    uint32_t n;
    struct span arr;
    if (!mget(mf, "members", &arr) || !array_open(arr, &it, &n)) {
        errbuf_set(eb, "%s: no members list", BUNDLE_MANIFEST);
        rc = VG_EFORMAT;
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        char name[BUNDLE_MAX_NAME + 1];
        char sha[2 * VG_SHA256_LEN + 1];
        char got[2 * VG_SHA256_LEN + 1];
        int64_t bytes;
        if (mp_take(&it, &el) < 0) {
            break;
        }
        if (!mget_str(el, "name", name, sizeof(name)) ||
            !mget_str(el, "sha256", sha, sizeof(sha)) || !mget_i64(el, "bytes", &bytes)) {
            problem(&v, "%s: FAILED: members[%u] lacks a name, bytes or sha256", BUNDLE_MANIFEST,
                    i);
            continue;
        }
        struct member *m = member_find(&v, name);
        if (!m) {
            problem(&v, "%s: FAILED: listed in the manifest, missing from the bundle (removed)",
                    name);
            continue;
        }
        m->listed = true;
        vg_hex(m->sha, VG_SHA256_LEN, got);
        if (strcmp(got, sha) != 0 || (uint64_t)bytes != m->size) {
            problem(&v,
                    "%s: FAILED: SHA-256 %.16s (%" PRIu64 " bytes) is not the manifest's %.16s "
                    "(%" PRId64 " bytes): changed after export",
                    name, got, m->size, sha, bytes);
        }
    }
    for (size_t i = 0; i < v.nm; i++) {
        if (!v.m[i].listed) {
            problem(&v, "%s: FAILED: not in the manifest (added after export)", v.m[i].name);
        }
    }

    /* the query */
    struct span q;
    char *filter_text = NULL;
    int64_t now_ns = 0;
    v.since = INT64_MIN;
    v.until = INT64_MAX;
    if (!mget(mf, "query", &q)) {
        errbuf_set(eb, "%s: no query", BUNDLE_MANIFEST);
        rc = VG_EFORMAT;
        goto out;
    }
    struct span fv;
    struct span fs;
    if (mget(q, "filter", &fv) && mp_get_str(fv, &fs) && fs.n > 0) {
        filter_text = xstrndup((const char *)fs.p, fs.n);
    }
    (void)mget_i64(q, "filter_now_ns", &now_ns);
    (void)mget_i64(q, "since_ns", &v.since);
    (void)mget_i64(q, "until_ns", &v.until);
    snprintf(sum->filter, sizeof(sum->filter), "%s", filter_text ? filter_text : "");
    if (filter_text) {
        struct errbuf feb;
        errbuf_clear(&feb);
        rc = filter_parse(filter_text, now_ns, &v.f, NULL, &feb);
        free(filter_text);
        if (rc < 0) {
            errbuf_set(eb, "%s: the query's filter does not parse: %s", BUNDLE_MANIFEST,
                       errbuf_msg(&feb));
            rc = VG_EFORMAT;
            goto out;
        }
    }

    /* the segments */
    if (!mget(mf, "segments", &arr) || !array_open(arr, &it, &nseg) || nseg > BUNDLE_MAX_MEMBERS) {
        errbuf_set(eb, "%s: no segments list", BUNDLE_MANIFEST);
        rc = VG_EFORMAT;
        goto out;
    }
    segs = xcalloc(nseg + 1, sizeof(*segs));
    for (uint32_t i = 0; i < nseg; i++) {
        int64_t id;
        if (mp_take(&it, &el) < 0 || !mget_str(el, "image", segs[i].image, sizeof(segs[i].image)) ||
            !mget_str(el, "entry", segs[i].entry, sizeof(segs[i].entry)) ||
            !mget_i64(el, "id", &id)) {
            errbuf_set(eb, "%s: segments[%u] lacks an id, image or entry", BUNDLE_MANIFEST, i);
            rc = VG_EFORMAT;
            goto out;
        }
        segs[i].id = (uint64_t)id;
        for (uint32_t j = 0; j < i; j++) {
            if (segs[j].id == segs[i].id || strcmp(segs[j].image, segs[i].image) == 0) {
                errbuf_set(eb, "%s: segment %" PRIu64 " listed twice", BUNDLE_MANIFEST, segs[i].id);
                rc = VG_EFORMAT;
                goto out;
            }
        }
    }
    for (uint32_t i = 0; i < nseg; i++) {
        v.cur_seg = i; /* on_rec tags the records it keeps with it */
        (void)check_segment(&v, &segs[i], trusted, trusted_id);
    }
    int64_t want = -1;
    struct span counts;
    if (mget(mf, "counts", &counts)) {
        (void)mget_i64(counts, "events", &want);
    }
    check_events(&v, segs, want);
    rc = sum->problems ? VG_ECORRUPT : 0;
    if (report) {
        if (sum->problems > BUNDLE_MAX_REPORTED) {
            fprintf(report, "... and %" PRIu64 " more problems\n",
                    sum->problems - BUNDLE_MAX_REPORTED);
        }
    }
out:
    for (size_t i = 0; i < v.nex; i++) {
        free(v.ex[i].bytes);
    }
    free(v.ex);
    free(segs);
    filter_free(v.f);
    members_free(&v);
    buf_release(&mtext);
    buf_release(&man);
    sign_key_free(trusted);
    return rc;
}

int bundle_verify(const char *path, const struct bundle_verify_opts *o, FILE *report,
                  struct bundle_summary *sum, struct errbuf *eb)
{
    struct archive *a = archive_read_new();
    int rc;

    memset(sum, 0, sizeof(*sum));
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        errbuf_set(eb, "cannot read '%s' as a bundle (a tar file): %s", path,
                   archive_error_string(a));
        archive_read_free(a);
        return errno ? -errno : VG_EFORMAT;
    }
    rc = verify_archive(a, o, report, sum, eb);
    archive_read_free(a);
    return rc;
}

int bundle_verify_mem(struct span tar, const struct bundle_verify_opts *o, FILE *report,
                      struct bundle_summary *sum, struct errbuf *eb)
{
    struct archive *a = archive_read_new();
    int rc;

    memset(sum, 0, sizeof(*sum));
    archive_read_support_format_tar(a);
    if (archive_read_open_memory(a, tar.p, tar.n) != ARCHIVE_OK) {
        errbuf_set(eb, "not a tar file: %s", archive_error_string(a));
        archive_read_free(a);
        return VG_EFORMAT;
    }
    rc = verify_archive(a, o, report, sum, eb);
    archive_read_free(a);
    return rc;
}
