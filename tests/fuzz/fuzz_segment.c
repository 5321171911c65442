/* tests/fuzz/fuzz_segment.c: a segment file image (schemas/segment.md 2-5) from
 * arbitrary bytes.
 *
 * 1. seg__walk over the image (in a memfd) as store_scan reads it (SEG_WALK_SCAN:
 *    time-window skips, decoding), as compaction does (SEG_WALK_COPY: everything
 *    checked, every record delivered), and with the checksum and chain skipped so the
 *    decoding paths behind them are reached.
 * 2. Recovery: the image becomes the only segment file of a new store with no catalog
 *    row; store_open must cope (cut a torn tail, drop a torn header, or leave a
 *    foreign file alone), after which a scan of the store must succeed: recovery never
 *    leaves a reader a corrupt block. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "store/store.h"
#include "store/store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checked in every build, unlike assert(). */
#define CHECK(c) ((c) ? (void)0 : abort())

static int count_rec(void *arg, int64_t ts, uint64_t seq, struct span rec)
{
    (void)ts;
    (void)seq;
    CHECK(rec.n > 0);
    ++*(uint64_t *)arg;
    return 0;
}

static void walk(int fd, size_t size, enum seg_walk_mode mode, bool checked, int64_t since,
                 int64_t until)
{
    struct buf rbuf;
    struct buf dbuf;
    struct seg_walk w;
    struct store_scan_stats stats = { 0 };
    uint64_t n = 0;

    buf_init(&rbuf, seg__rbuf_max());
    buf_init(&dbuf, BLOCK_MAX_RAW);
    memset(&w, 0, sizeof(w));
    bool skip = mode == SEG_WALK_SCAN;
    w.mode = mode;
    w.fd = fd;
    w.size = size;
    w.unchecked = !checked;
    w.scan.since = since;
    w.scan.until = until;
    w.fn = count_rec;
    w.arg = &n;
    w.mark_off = SEG_HDR_LEN;
    w.rbuf = &rbuf;
    w.dbuf = &dbuf;
    w.dg = digest_new();
    w.stats = &stats;
    /* A scan that needs something: the index is read and trusted after its checksum
     * (or, behind the checksums, whatever it holds), and records are prefiltered. */
    struct store_need_value v = { "user", SPAN_LIT("alice") };
    struct span t = SPAN_LIT("kdevtmpfsi");
    struct store_need need = { &v, 1, &t, skip ? 1 : 0 };
    struct bix_query q;
    CHECK(bix__query_init(&q, &need) == 0);
    w.scan.need = skip ? &q : NULL;
    int rc = seg__walk(&w);
    bix__query_release(&q);
    CHECK(rc == 0 || rc == VG_ECORRUPT);
    CHECK(w.end <= size && (rc != VG_ECORRUPT || w.bad_off == w.end || !w.hdr_ok));
    CHECK(stats.records == n);
    CHECK(stats.blocks_skipped_index == 0 || skip);
    digest_free(w.dg);
    buf_release(&rbuf);
    buf_release(&dbuf);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void recover(const uint8_t *data, size_t size)
{
    char root[64];
    char path[256];
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    struct store_opts o = { .partition_ns = 3600LL * 1000000000, .fsync = false };
    struct store *st = NULL;
    struct store_reader *r = NULL;
    struct errbuf eb;
    uint64_t n = 0;

    snprintf(root, sizeof(root), "%s/vg-fuzzseg-XXXXXX", base);
    CHECK(mkdtemp(root) != NULL);
    snprintf(path, sizeof(path), "%s/segments", root);
    CHECK(mkdir(path, 0750) == 0);
    snprintf(path, sizeof(path), "%s/segments/20240501T130000Z-000001.vseg", root);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    CHECK(fd >= 0);
    CHECK(write(fd, data, size) == (ssize_t)size);
    close(fd);

    o.dir = root;
    errbuf_clear(&eb);
    if (store_open(&o, &st, &eb) == 0) {
        store_close(st);
        CHECK(store_reader_open(root, &r, &eb) == 0);
        CHECK(store_scan(r, INT64_MIN, INT64_MAX, count_rec, &n, NULL) == 0);
        store_reader_close(r);
        int vrc = store_verify(root, NULL, NULL, NULL, &eb);
        CHECK(vrc == 0 || vrc == VG_ECORRUPT); /* a foreign file left alone fails it */
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
    int fd = memfd_create("segment", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);

    /* A time window from the last 16 bytes, so skipping is fuzzed too. */
    int64_t since = INT64_MIN;
    int64_t until = INT64_MAX;
    if (size >= SEG_HDR_LEN + 16) {
        memcpy(&since, data + size - 16, 8);
        memcpy(&until, data + size - 8, 8);
    }
    walk(fd, size, SEG_WALK_COPY, true, INT64_MIN, INT64_MAX);  /* everything checked */
    walk(fd, size, SEG_WALK_SCAN, true, since, until);          /* scan */
    walk(fd, size, SEG_WALK_COPY, false, INT64_MIN, INT64_MAX); /* behind the checksums */
    close(fd);
    recover(data, size);
    return 0;
}
