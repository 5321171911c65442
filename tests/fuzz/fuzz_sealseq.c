/* tests/fuzz/fuzz_sealseq.c: a seal sequence (schemas/segment.md 13) from arbitrary
 * bytes.
 *
 * 1. The entries as a reader takes them (sealseq_iter_next): every entry that decodes
 *    encodes back to exactly its bytes (the signature covers the encoding), its
 *    signature check answers without crashing, and the per-segment replay
 *    (sealseq__map_apply) takes any order of entries.
 * 2. The image as the store's seals.seq, without a catalog: `vigil verify` reads it (the
 *    catalog-gone path, segment.md 13.6); then the writer opens the store (a torn end
 *    cut, damaged entries kept, the catalog brought in line with whatever the entries
 *    claim: never acting on a DELETE its key did not sign) and must always start; verify
 *    runs again. */
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
#include "store/sealseq.h"
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

static void entries(const uint8_t *data, size_t size, const struct sign_key *k)
{
    struct sealseq_iter it;
    struct sealseq_map map = { 0 };

    sealseq_iter_init(&it);
    for (size_t off = 0; off + SEALSEQ_ENTRY_LEN <= size; off += SEALSEQ_ENTRY_LEN) {
        struct sealseq_entry e;
        struct errbuf why;
        uint8_t again[SEALSEQ_ENTRY_LEN];

        errbuf_clear(&why);
        int rc = sealseq_iter_next(&it, data + off, &e, &why);
        CHECK(rc == 0 || rc == VG_ECORRUPT);
        CHECK(rc == 0 || errbuf_msg(&why)[0]);
        if (sealseq_decode(data + off, &e, &why) != 0) {
            continue;
        }
        sealseq_encode(&e, again);
        CHECK(memcmp(again, data + off, SEALSEQ_ENTRY_LEN) == 0);
        rc = sealseq_check(&e, k);
        CHECK(rc == 0 || rc == -ENOKEY || rc == VG_ECORRUPT);
        (void)sealseq__map_apply(&map, &e);
        CHECK(sealseq__map_get(&map, e.segment_id) != NULL || e.type < SEALSEQ_OPEN);
    }
    sealseq__map_release(&map);
}

static void as_store(const uint8_t *data, size_t size)
{
    char root[64];
    char path[256];
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    struct store_opts o = { .partition_ns = 3600LL * 1000000000, .fsync = false };
    struct store *st = NULL;
    struct errbuf eb;

    snprintf(root, sizeof(root), "%s/vg-fuzzseq-XXXXXX", base);
    CHECK(mkdtemp(root) != NULL);
    snprintf(path, sizeof(path), "%s/%s", root, SEALSEQ_FILE);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    CHECK(fd >= 0);
    CHECK(size == 0 || write(fd, data, size) == (ssize_t)size);
    close(fd);

    errbuf_clear(&eb);
    int vrc = store_verify(root, NULL, NULL, NULL, &eb); /* the catalog is gone */
    CHECK(vrc == 0 || vrc == VG_ECORRUPT);
    o.dir = root;
    errbuf_clear(&eb);
    int rc = store_open(&o, &st, &eb);
    if (rc != 0) {
        fprintf(stderr, "store_open: %s\n", errbuf_msg(&eb));
    }
    CHECK(rc == 0); /* vigild always starts */
    store_close(st);
    errbuf_clear(&eb);
    vrc = store_verify(root, NULL, NULL, NULL, &eb);
    CHECK(vrc == 0 || vrc == VG_ECORRUPT);
    nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sign_key *k;
    if (!k) {
        log_set_level(LOG_LVL_ERROR);
        CHECK(sign_key_generate(&k) == 0);
    }
    if (size > 64 * SEALSEQ_ENTRY_LEN) {
        return 0; /* the checks are per entry: more of them finds nothing new */
    }
    entries(data, size, k);
    as_store(data, size);
    return 0;
}
