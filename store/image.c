/* store/image.c: segment images for export bundles (schemas/bundle.md): a segment file
 * cut at a signed size, opened by its name and walked with every check vigil verify makes
 * (seg__walk in copy mode), records to the caller. Used by `vigil export` (reading the
 * store's files) and by the bundle verifier (reading a bundle's members through a memory
 * file). Any thread; blocks on I/O. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "store/store_int.h"

int store_image_open(const char *dir, int64_t part_start, uint64_t id, int *fd, uint64_t *size,
                     char name[64], struct errbuf *eb)
{
    char segdir[4096];
    int rc;

    seg__name(part_start, id, name);
    *fd = -1;
    if ((rc = seg__path(segdir, sizeof(segdir), dir, "segments")) < 0) {
        errbuf_set(eb, "store path '%s' is too long", dir);
        return rc;
    }
    if ((rc = seg__open_ro(segdir, name, fd, size)) < 0) {
        errbuf_set(eb, "cannot open segment '%s': %s", name, vg_strerror(rc));
        return rc;
    }
    return 0;
}

int store_image_walk(int fd, uint64_t size, store_rec_fn fn, void *arg, struct store_image *img,
                     struct errbuf *eb)
{
    struct seg_walk w;
    struct buf rbuf;
    struct buf dbuf;
    struct buf ubuf;
    int rc;

    memset(img, 0, sizeof(*img));
    buf_init(&rbuf, seg__rbuf_max());
    buf_init(&dbuf, BLOCK_MAX_RAW);
    buf_init(&ubuf, seg__ubuf_max());
    memset(&w, 0, sizeof(w));
    /* segment.md 12: COPY checks as VERIFY does and hands every record over; verify's
     * own mode has no records to give */
    w.mode = fn ? SEG_WALK_COPY : SEG_WALK_VERIFY;
    w.fd = fd;
    w.size = size;
    w.fn = fn;
    w.arg = arg;
    w.rbuf = &rbuf;
    w.dbuf = &dbuf;
    w.ubuf = &ubuf;
    w.dg = digest_new();
    rc = seg__walk(&w);
    if (rc == VG_ECORRUPT) {
        if (w.bad_off == 0) {
            errbuf_set(eb, "file header: %s", errbuf_msg(&w.why));
        } else {
            errbuf_set(eb, "offset %" PRIu64 ": block %" PRIu64 ": %s", w.bad_off, w.tot.blocks,
                       errbuf_msg(&w.why));
        }
    } else if (rc < 0) {
        errbuf_set(eb, "read failed: %s", vg_strerror(rc));
    } else if (rc == 0) {
        img->segment_id = w.hdr.id;
        img->part_start = w.hdr.part_start;
        img->part_end = w.hdr.part_start + w.hdr.part_ns;
        img->compacted = (w.hdr.flags & SEG_F_COMPACTED) != 0;
        img->bytes = w.end;
        img->blocks = w.tot.blocks;
        img->count = w.tot.count;
        img->ts_min = w.tot.ts_min;
        img->ts_max = w.tot.ts_max;
        img->seq_min = w.tot.seq_min;
        img->seq_max = w.tot.seq_max;
        memcpy(img->chain_head, w.chain, VG_SHA256_LEN);
    }
    digest_free(w.dg);
    buf_release(&rbuf);
    buf_release(&dbuf);
    buf_release(&ubuf);
    return rc;
}
