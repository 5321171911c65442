/* query/compact_cmd.c: `vigil compact [--codec zstd|lz4hc] [--level N] [--block-bytes N]
 * [--max N] [-c FILE | --store DIR]`: rewrites sealed segments as compacted ones
 * (schemas/segment.md 12: large zstd or LZ4HC blocks, re-indexed, chained, signed, the
 * records digest-checked by `vigil verify`). It opens the store as its writer, so it
 * runs while vigild is stopped (a running vigild holds the store's lock). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "query/cli.h"
#include "store/store.h"

static void compact_usage(FILE *f)
{
    fprintf(f, "usage: vigil compact [--codec zstd|lz4hc] [--level N] [--block-bytes N] [--max N]\n"
               "                     [-c FILE | --store DIR]\n"
               "\n"
               "Rewrites the store's sealed segments with large zstd (default, level 6) or LZ4HC\n"
               "(level 9) blocks of --block-bytes of records (default 4 MiB). Runs as the store's\n"
               "writer: stop vigild first.\n");
}

int cmd_compact(int argc, char **argv)
{
    struct cli_common cc = { 0 };
    struct store_compact_opts o = { .codec = STORE_CODEC_ZSTD };
    uint64_t v;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = cli_common_arg(&cc, argc, argv, &i);
        if (c < 0) {
            return CLI_USAGE;
        }
        if (c > 0) {
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            compact_usage(stdout);
            return CLI_OK;
        }
        if (i + 1 >= argc || strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "vigil compact: unexpected '%s'\n", a);
            compact_usage(stderr);
            return CLI_USAGE;
        }
        const char *val = argv[++i];
        if (strcmp(a, "--codec") == 0) {
            if (strcmp(val, "zstd") == 0) {
                o.codec = STORE_CODEC_ZSTD;
            } else if (strcmp(val, "lz4hc") == 0) {
                o.codec = STORE_CODEC_LZ4HC;
            } else {
                fprintf(stderr, "vigil compact: --codec: expected zstd or lz4hc, got '%s'\n", val);
                return CLI_USAGE;
            }
        } else if (strcmp(a, "--level") == 0 && parse_u64(span_str(val), 22, &v) == 0) {
            o.level = (int)v;
        } else if (strcmp(a, "--block-bytes") == 0 &&
                   parse_u64(span_str(val), 16u << 20, &v) == 0 && v >= 4096) {
            o.block_bytes = (size_t)v;
        } else if (strcmp(a, "--max") == 0 && parse_u64(span_str(val), UINT32_MAX, &v) == 0) {
            o.max_segments = v;
        } else {
            fprintf(stderr, "vigil compact: bad option or value: %s %s\n", a, val);
            compact_usage(stderr);
            return CLI_USAGE;
        }
    }
    int rc = cli_common_load(&cc, "compact");
    if (rc != CLI_OK) {
        return rc;
    }
    struct store_opts so = {
        .dir = cli_store_dir(&cc),
        .partition_ns = cc.cfg->store.partition_ns,
        .max_open_segments = 4,
        .fsync = true,
        .signing_key = cc.cfg->store.signing_key,
    };
    struct store *st = NULL;
    struct errbuf eb;
    errbuf_clear(&eb);
    if (store_open(&so, &st, &eb) < 0) {
        fprintf(stderr, "vigil compact: %s\n", errbuf_msg(&eb));
        cli_common_release(&cc);
        return CLI_FAIL;
    }
    struct store_compact_result res;
    int64_t t0 = vg_mono_ns();
    rc = store_compact(st, &o, &res, &eb);
    double secs = (double)(vg_mono_ns() - t0) / 1e9;
    store_close(st);
    printf("compacted %" PRIu64 " segments (%" PRIu64 " records): %" PRIu64 " -> %" PRIu64
           " bytes (%.2fx) in %.1f s; %" PRIu64 " left as they were\n",
           res.segments, res.records, res.bytes_before, res.bytes_after,
           res.bytes_after ? (double)res.bytes_before / (double)res.bytes_after : 0.0, secs,
           res.skipped);
    if (rc < 0) {
        fprintf(stderr, "vigil compact: %s\n", errbuf_msg(&eb));
    }
    cli_common_release(&cc);
    return rc < 0 ? CLI_FAIL : CLI_OK;
}
