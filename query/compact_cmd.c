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

struct compact_opts {
    const char *codec;
    uint64_t level;
    uint64_t block_bytes;
    uint64_t max;
};

static const struct cli_opt compact_opts[] = {
    { "--codec", NULL, CLI_STR, CLI_OFF(struct compact_opts, codec), 0, 0 },
    { "--level", NULL, CLI_U64, CLI_OFF(struct compact_opts, level), 0, 22 },
    { "--block-bytes", NULL, CLI_U64, CLI_OFF(struct compact_opts, block_bytes), 4096, 16u << 20 },
    { "--max", NULL, CLI_U64, CLI_OFF(struct compact_opts, max), 0, UINT32_MAX },
    { NULL },
};

static int compact_run(struct cli_args *a)
{
    const struct compact_opts *co = a->own;
    struct store_compact_opts o = {
        .codec = STORE_CODEC_ZSTD,
        .level = (int)co->level,
        .block_bytes = (size_t)co->block_bytes,
        .max_segments = co->max,
    };

    if (a->nwords > 0) {
        fprintf(stderr, "vigil compact: unexpected '%s'\n", a->words[0]);
        compact_usage(stderr);
        return CLI_USAGE;
    }
    if (co->codec && strcmp(co->codec, "lz4hc") == 0) {
        o.codec = STORE_CODEC_LZ4HC;
    } else if (co->codec && strcmp(co->codec, "zstd") != 0) {
        fprintf(stderr, "vigil compact: --codec: expected zstd or lz4hc, got '%s'\n", co->codec);
        return CLI_USAGE;
    }
    int rc = cli_load(a);
    if (rc != CLI_OK) {
        return rc;
    }
    struct store_opts so = {
        .dir = cli_store_dir(a),
        .partition_ns = a->cfg->store.partition_ns,
        .max_open_segments = 4,
        .fsync = true,
        .signing_key = a->cfg->store.signing_key,
    };
    struct store *st = NULL;
    struct errbuf eb;
    errbuf_clear(&eb);
    if (store_open(&so, &st, &eb) < 0) {
        fprintf(stderr, "vigil compact: %s\n", errbuf_msg(&eb));
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
    return rc < 0 ? CLI_FAIL : CLI_OK;
}

const struct cli_cmd cmd_compact = {
    .name = "compact",
    .synopsis = "[--codec zstd|lz4hc]   rewrite sealed segments smaller (vigild stopped)",
    .takes = CLI_STORE,
    .opts = compact_opts,
    .own_size = sizeof(struct compact_opts),
    .usage = compact_usage,
    .run = compact_run,
};
