/* tests/fuzz/fuzz_journal.c: a commit journal file (schemas/segment.md 5.6) from
 * arbitrary bytes.
 *
 * 1. The file as a reader walks it (jnl__walk): frames are handed over only when their
 *    header, bounds, payload checksum and records all hold; the records of a frame lie
 *    inside its payload, in seq order, as many as the header says; the walk ends inside
 *    the file and says where it stopped and why.
 * 2. The file as a store's journal: the writer opens the store (a torn tail cut, the
 *    records replayed into open blocks) and must always start, or refuse a newer format
 *    with a message; a reader scans it beside; a clean close cuts every block and leaves
 *    no journal; the store then verifies. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "store/store.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checked in every build, unlike assert(). */
#define CHECK(c) ((c) ? (void)0 : abort())

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

struct seen {
    uint64_t frames;
    uint64_t records;
    uint64_t last_seq;
};

static int on_frame(void *arg, const struct jnl_frame *f, struct span payload)
{
    struct seen *s = arg;
    struct span in = payload;
    int64_t ts;
    uint64_t seq;
    struct span rec;
    uint32_t n = 0;
    int rc;

    CHECK(payload.n == f->payload_len && f->count > 0 && f->seq_min > s->last_seq);
    while ((rc = jnl__rec_next(&in, &ts, &seq, &rec)) == 1) {
        CHECK(rec.p >= payload.p && rec.p + rec.n <= payload.p + payload.n && rec.n > 0);
        CHECK(seq > s->last_seq && seq >= f->seq_min && seq <= f->seq_max);
        s->last_seq = seq;
        n++;
    }
    CHECK(rc == 0 && n == f->count && s->last_seq == f->seq_max);
    s->frames++;
    s->records += n;
    return 0;
}

static void walk(const char *path, size_t size)
{
    struct jnl_walk w;
    struct buf pbuf;
    struct seen s = { 0 };
    int fd = open(path, O_RDONLY);

    CHECK(fd >= 0);
    memset(&w, 0, sizeof(w));
    buf_init(&pbuf, JNL_MAX_PAYLOAD);
    w.fd = fd;
    w.size = size;
    w.pbuf = &pbuf;
    w.fn = on_frame;
    w.arg = &s;
    int rc = jnl__walk(&w);
    CHECK(rc == 0 || rc == VG_ECORRUPT || rc == VG_EFORMAT);
    CHECK(w.frames == s.frames && w.records == s.records && w.end <= size);
    if (rc == 0) {
        CHECK(w.hdr_ok && w.end == size);
    } else {
        CHECK(errbuf_msg(&w.why)[0] != 0);
        CHECK(rc == VG_EFORMAT || w.bad_off <= size);
    }
    buf_release(&pbuf);
    close(fd);
}

static int count_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    (void)ts;
    (void)seq;
    (void)rec;
    (*(size_t *)arg)++;
    return 0;
}

static void as_store(const uint8_t *data, size_t size)
{
    char root[64];
    char path[256];
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    struct store_opts o = { .partition_ns = 3600LL * 1000000000, .fsync = false,
                            .block_max_age_ns = 60LL * 1000000000 };
    struct store *st = NULL;
    struct store_reader *r = NULL;
    struct errbuf eb;
    char name[JNL_NAME_MAX];

    snprintf(root, sizeof(root), "%s/vg-fuzzjnl-XXXXXX", base);
    CHECK(mkdtemp(root) != NULL);
    snprintf(path, sizeof(path), "%s/%s", root, JNL_DIR);
    CHECK(mkdir(path, 0750) == 0);
    jnl__name(1, name);
    snprintf(path, sizeof(path), "%s/%s/%s", root, JNL_DIR, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    CHECK(fd >= 0);
    CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
    close(fd);
    walk(path, size);

    o.dir = root;
    errbuf_clear(&eb);
    int rc = store_open(&o, &st, &eb);
    CHECK(rc == 0 || (rc == VG_EFORMAT && errbuf_msg(&eb)[0] != 0));
    if (rc == 0) {
        size_t before = 0;
        size_t after = 0;
        errbuf_clear(&eb);
        CHECK(store_reader_open(root, &r, &eb) == 0);
        CHECK(store_scan(r, INT64_MIN, INT64_MAX, count_rec, &before, NULL) == 0);
        store_close(st); /* every replayed record into a block */
        CHECK(store_scan(r, INT64_MIN, INT64_MAX, count_rec, &after, NULL) == 0);
        /* The same records, unless one has a time whose partition overflows int64
         * (never journaled by a writer: store_append refuses it first): replay skips
         * it, a reader of the journal does not know the partition length. */
        CHECK(after <= before);
        store_reader_close(r);
        uint64_t *nos = NULL;
        size_t n = 0;
        snprintf(path, sizeof(path), "%s/%s", root, JNL_DIR);
        CHECK(jnl__list(path, &nos, &n) == 0);
        free(nos);
        CHECK(n == 0); /* a clean close leaves no journal */
        errbuf_clear(&eb);
        int vrc = store_verify(root, NULL, NULL, NULL, &eb);
        CHECK(vrc == 0 || vrc == VG_ECORRUPT);
    }
    nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_set_level(LOG_LVL_ERROR);
        quiet = true;
    }
    if (size > (1u << 20)) {
        return 0;
    }
    as_store(data, size);
    return 0;
}
