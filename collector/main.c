/* collector/main.c: vigild, the collector daemon. Parses arguments, loads vigil.yaml,
 * opens the store and the TLS context, then runs the libuv loop until SIGTERM. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "collector/pipeline.h"
#include "collector/rules_live.h"
#include "collector/vigild.h"
#include "common/config.h"
#include "common/log.h"
#include "common/tls.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vigild -c vigil.yaml [--check-config] [--ready-fd N] [--log-level L]\n"
            "       vigild --help-config\n"
            "\n"
            "  -c, --config FILE   configuration (default /etc/vigil/vigil.yaml)\n"
            "  --check-config      validate the configuration and its files, then exit\n"
            "  --ready-fd N        write \"ready forward=ADDR ... pid=N\" to fd N once listening\n"
            "  --log-level L       error, warn, info (default) or debug\n"
            "  --help-config       print every configuration option with its default\n"
            "  --version           print the version\n"
            "  -h, --help          print this\n");
}

int main(int argc, char **argv)
{
    const char *cfg_path = "/etc/vigil/vigil.yaml";
    const char *level = NULL;
    bool check_only = false;
    int ready_fd = -1;
    struct errbuf eb;
    int rc;

    log_set_prog("vigild");
    errbuf_clear(&eb);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            cfg_path = argv[++i];
        } else if (strcmp(a, "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(a, "--ready-fd") == 0 && i + 1 < argc) {
            uint64_t v;
            if (parse_u64(span_str(argv[++i]), 1 << 20, &v) < 0) {
                fprintf(stderr, "vigild: --ready-fd: not a file descriptor: '%s'\n", argv[i]);
                return 2;
            }
            ready_fd = (int)v;
        } else if (strcmp(a, "--log-level") == 0 && i + 1 < argc) {
            level = argv[++i];
        } else if (strcmp(a, "--help-config") == 0) {
            config_print_reference(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("vigild %s\n", VG_VERSION);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "vigild: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    struct vg_config *cfg = NULL;
    if ((rc = config_load(cfg_path, &cfg, &eb)) < 0) {
        fprintf(stderr, "vigild: %s\n", errbuf_msg(&eb));
        return 2;
    }
    enum log_level lvl;
    if (log_level_parse(level ? level : cfg->log.level, &lvl) < 0) {
        fprintf(stderr, "vigild: --log-level: expected error, warn, info or debug\n");
        config_free(cfg);
        return 2;
    }
    log_set_level(lvl);

    struct tls_ctx *tls = NULL;
    if (!cfg->listen.insecure) {
        rc = tls_server_ctx_new(cfg->tls.ca, cfg->tls.cert, cfg->tls.key, cfg->tls.crl, &tls, &eb);
        if (rc < 0) {
            fprintf(stderr, "vigild: %s\n", errbuf_msg(&eb));
            config_free(cfg);
            return 2;
        }
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct vigild vd = { 0 };
    vd.loop = &loop;
    vd.cfg = cfg;
    vd.tls = tls;
    vd.ready_fd = ready_fd;
    /* Rules load before anything listens (file reads; the loop is not running yet). */
    if ((rc = vigild_load_rules(&vd, &eb)) < 0) {
        fprintf(stderr, "vigild: %s\n", errbuf_msg(&eb));
        uv_loop_close(&loop);
        tls_ctx_free(tls);
        config_free(cfg);
        return 2;
    }
    if (check_only) {
        printf("vigild: %s: configuration OK\n", cfg_path);
        rules_live_free(vd.rules);
        uv_loop_close(&loop);
        tls_ctx_free(tls);
        config_free(cfg);
        return 0;
    }

    struct store *st = NULL;
    struct store_opts so = {
        .dir = cfg->store.path,
        .partition_ns = cfg->store.partition_ns,
        .block_bytes = (size_t)cfg->store.block_bytes,
        .lz4_level = strcmp(cfg->store.compression, "lz4") == 0 ? -1 : 0,
        .max_open_segments = 8,
        .fsync = cfg->store.fsync,
        .signing_key = cfg->store.signing_key,
    };
    if ((rc = store_open(&so, &st, &eb)) < 0) {
        log_error("cannot open the store: %s", errbuf_msg(&eb));
        rules_live_free(vd.rules);
        uv_loop_close(&loop);
        tls_ctx_free(tls);
        config_free(cfg);
        return 1;
    }

    int exit_code = 0;
    if ((rc = vigild_start(&vd, st, &eb)) < 0) {
        log_error("%s", errbuf_msg(&eb));
        exit_code = 1;
        if (vd.pipe) {
            vigild_stop(&vd); /* closes what started; the loop below finishes it */
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        log_warn("loop closed with handles still open");
    }
    /* The pipeline's store thread has been joined and the store closed. */
    rules_live_free(vd.rules); /* the final checkpoint of the correlation state */
    pipeline_free(vd.pipe);
    free(vd.shared_key);
    tls_ctx_free(tls);
    config_free(cfg);
    if (exit_code == 0) {
        log_info("stopped cleanly");
    }
    return exit_code;
}
