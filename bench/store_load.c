/* bench/store_load.c: loads NDJSON events straight into a store, as vigild's Forward
 * listener would store them (map_event with format detection, agent and received set,
 * seq assigned, rec_encode, store_append), committing every --batch events like the
 * collector's group commit, then optionally seals every partition. For benchmarks of
 * the store (size, queries) without the network path; bench/query_bench.sh builds it
 * against a release build:
 *
 *     cc -O2 -I. bench/store_load.c build/.../libvg_*.a $(pkg-config --libs ...)
 *
 * usage: store_load --store DIR [--batch N] [--block-bytes N] [--max-age-s N] [--seal] [--fsync]
 *                   [--lz4] FILE
 * --max-age-s: store.block_max_age (segment.md 5.6), 60 as vigild's default; 0: every
 * commit cuts its blocks (no journal). Prints events/s, records and the bytes of the
 * segment files once the store is closed. */
#include <dirent.h>
#include <sys/stat.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "common/time.h"
#include "schemas/map.h"
#include "schemas/record.h"
#include "store/store.h"

static void usage(void)
{
    fprintf(stderr, "usage: store_load --store DIR [--batch N] [--block-bytes N] [--partition-s N]"
                    " [--max-age-s N] [--seal] [--fsync] [--lz4] FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    const char *file = NULL;
    uint64_t batch = 2000;
    uint64_t block_bytes = 0;
    uint64_t part_s = 3600;
    uint64_t max_age_s = 60;
    bool seal = false;
    bool fsync_on = false;
    int lz4_level = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t *num = NULL;
        if (strcmp(a, "--store") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(a, "--batch") == 0) {
            num = &batch;
        } else if (strcmp(a, "--block-bytes") == 0) {
            num = &block_bytes;
        } else if (strcmp(a, "--partition-s") == 0) {
            num = &part_s;
        } else if (strcmp(a, "--max-age-s") == 0) {
            num = &max_age_s;
        } else if (strcmp(a, "--seal") == 0) {
            seal = true;
        } else if (strcmp(a, "--fsync") == 0) {
            fsync_on = true;
        } else if (strcmp(a, "--lz4") == 0) {
            lz4_level = -1; /* plain LZ4 instead of the default LZ4HC */
        } else if (a[0] != '-' && !file) {
            file = a;
        } else {
            usage();
        }
        if (num && (i + 1 >= argc || parse_u64(span_str(argv[++i]), UINT32_MAX, num) < 0)) {
            usage();
        }
    }
    if (!dir || !file || batch == 0) {
        usage();
    }
    log_set_level(LOG_LVL_WARN);
    FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!in) {
        fprintf(stderr, "store_load: %s: %s\n", file, strerror(errno));
        return 1;
    }
    struct store_opts o = {
        .dir = dir,
        .partition_ns = (int64_t)part_s * VG_NS_PER_SEC,
        .block_bytes = block_bytes,
        .lz4_level = lz4_level,
        .max_open_segments = 8,
        .fsync = fsync_on,
        .block_max_age_ns = (int64_t)max_age_s * VG_NS_PER_SEC,
    };
    struct store *st = NULL;
    struct errbuf eb;
    errbuf_clear(&eb);
    if (store_open(&o, &st, &eb) < 0) {
        fprintf(stderr, "store_load: %s\n", errbuf_msg(&eb));
        return 1;
    }
    struct buf mp;
    struct buf scratch;
    struct buf enc;
    buf_init(&mp, 16u << 20);
    buf_init(&scratch, 1u << 16);
    buf_init(&enc, 32u << 20);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t seq = store_next_seq(st);
    uint64_t records = 0;
    uint64_t rejected = 0;
    uint64_t in_bytes = 0;
    int64_t now = vg_now_ns();
    int64_t t0 = vg_mono_ns();
    int rc = 0;

    while ((n = getline(&line, &cap, in)) > 0) {
        struct rec r;
        in_bytes += (uint64_t)n;
        buf_reset(&mp);
        buf_reset(&scratch);
        buf_reset(&enc);
        errbuf_clear(&eb);
        if (json_to_mp((struct span){ (const uint8_t *)line, (size_t)n }, &mp, NULL, &eb) < 0 ||
            map_event(MAP_AUTO, buf_span(&mp), now, "forward", &r, &scratch, &eb) < 0) {
            rejected++;
            continue;
        }
        rec_set(&r, VG_F_AGENT, SPAN_LIT("agent-node-1"));
        r.received = now;
        r.has_received = true;
        r.seq = seq;
        r.has_seq = true;
        if ((rc = rec_encode(&r, &enc)) < 0 ||
            (rc = store_append(st, r.ts, seq, buf_span(&enc))) < 0) {
            fprintf(stderr, "store_load: append: %s\n", vg_strerror(rc));
            break;
        }
        seq++;
        if (++records % batch == 0) {
            if ((rc = store_commit(st)) < 0) {
                fprintf(stderr, "store_load: commit: %s\n", vg_strerror(rc));
                break;
            }
            now = vg_now_ns(); /* a new batch arrives */
        }
    }
    if (rc == 0 && (rc = store_commit(st)) < 0) {
        fprintf(stderr, "store_load: commit: %s\n", vg_strerror(rc));
    }
    double secs = (double)(vg_mono_ns() - t0) / 1e9;
    if (rc == 0 && seal && (rc = store_seal_before(st, INT64_MAX)) < 0) {
        fprintf(stderr, "store_load: seal: %s\n", vg_strerror(rc));
    }
    store_close(st); /* the last open blocks are cut here */
    /* What the segments take once closed (headers included). */
    uint64_t stored = 0;
    char sdir[4096];
    snprintf(sdir, sizeof(sdir), "%s/segments", dir);
    DIR *d = opendir(sdir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        char p[4096 + 256];
        struct stat sb;
        snprintf(p, sizeof(p), "%s/%s", sdir, e->d_name);
        if (strstr(e->d_name, ".vseg") && stat(p, &sb) == 0) {
            stored += (uint64_t)sb.st_size;
        }
    }
    if (d) {
        closedir(d);
    }
    printf("loaded %" PRIu64 " events (%" PRIu64 " rejected) from %" PRIu64
           " bytes in %.2f s: %.0f events/s; %" PRIu64 " bytes stored (%.2fx smaller)\n",
           records, rejected, in_bytes, secs, (double)records / secs, stored,
           stored ? (double)in_bytes / (double)stored : 0.0);
    free(line);
    buf_release(&mp);
    buf_release(&scratch);
    buf_release(&enc);
    if (in != stdin) {
        fclose(in);
    }
    return rc < 0 ? 1 : 0;
}
