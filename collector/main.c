/* collector/main.c: vigild, the collector daemon. Parses arguments, loads vigil.yaml,
 * loads the TLS context and the rules, binds the listeners, leaves root for the
 * configured user, opens the store, then runs the libuv loop until SIGTERM.
 *
 * Privileges: everything that may need root (reading keys, binding a port below 1024)
 * happens before the switch; everything that writes (the store, the rules checkpoint)
 * after it, so the store belongs to the user it runs as. */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "collector/pipeline.h"
#include "collector/rules_live.h"
#include "collector/vigild.h"
#include "common/cnats.h"
#include "common/config.h"
#include "common/log.h"
#include "common/tls.h"
#include "forwarders/fwd.h"
#include "store/store.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vigild -c vigil.yaml [--check-config] [--ready-fd N] [--log-level L]\n"
            "              [--allow-root]\n"
            "       vigild --help-config\n"
            "\n"
            "  -c, --config FILE   configuration (default /etc/vigil/vigil.yaml)\n"
            "  --check-config      validate the configuration and its files, then exit\n"
            "  --ready-fd N        write \"ready forward=ADDR ... pid=N\" to fd N once listening\n"
            "  --log-level L       error, warn, info (default) or debug\n"
            "  --allow-root        keep running as root when the config sets no user\n"
            "  --help-config       print every configuration option with its default\n"
            "  --version           print the version\n"
            "  -h, --help          print this\n");
}

/* The account `user:` names, looked up before anything is bound so a typo fails fast
 * (and in --check-config). Returns 0, or VG_ECONFIG with eb. */
static int user_lookup(const char *name, uid_t *uid, gid_t *gid, struct errbuf *eb)
{
    struct passwd pw;
    struct passwd *res = NULL;
    char buf[4096];
    int e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);

    if (!res) {
        errbuf_set(eb, "user: '%s': %s", name, e ? strerror(e) : "no such user");
        return VG_ECONFIG;
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

/* Root without `user:` runs only with --allow-root: checked before anything starts.
 * Returns 0 or VG_ECONFIG with eb. */
static int root_allowed(const struct vg_config *cfg, bool allow_root, struct errbuf *eb)
{
    if (geteuid() == 0 && !cfg->user && !allow_root) {
        errbuf_set(eb, "refusing to run as root: set 'user:' in the configuration (vigild "
                       "binds its listeners, then runs as that user) or pass --allow-root");
        return VG_ECONFIG;
    }
    return 0;
}

/* Switches to `user:` when root (keeping root only with --allow-root when `user:` is
 * root itself). Not root: `user:`, if set, must be who we already are. Returns 0, or
 * VG_ECONFIG / -errno with eb. */
static int drop_privileges(const struct vg_config *cfg, bool allow_root, struct errbuf *eb)
{
    uid_t uid;
    gid_t gid;
    int rc;

    if (!cfg->user) {
        return 0; /* root here was allowed by root_allowed() */
    }
    if ((rc = user_lookup(cfg->user, &uid, &gid, eb)) < 0) {
        return rc;
    }
    if (geteuid() != 0) {
        if (uid != geteuid()) {
            errbuf_set(eb,
                       "user: '%s': vigild runs as uid %u and cannot switch to uid %u (start it "
                       "as root or as '%s')",
                       cfg->user, (unsigned)geteuid(), (unsigned)uid, cfg->user);
            return VG_ECONFIG;
        }
        return 0;
    }
    if (uid == 0 && !allow_root) {
        errbuf_set(eb, "user: '%s' is root: name an unprivileged user, or pass --allow-root",
                   cfg->user);
        return VG_ECONFIG;
    }
    /* Groups first (setgid needs root), then the user; capabilities go with uid 0. */
    if (initgroups(cfg->user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        rc = -errno;
        errbuf_set(eb, "user: cannot switch to '%s' (uid %u, gid %u): %s", cfg->user, (unsigned)uid,
                   (unsigned)gid, strerror(errno));
        return rc;
    }
    if (uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
        errbuf_set(eb, "user: switched to '%s' but could regain root", cfg->user);
        return -EPERM;
    }
    log_info("running as user '%s' (uid %u, gid %u)", cfg->user, (unsigned)uid, (unsigned)gid);
    return 0;
}

static void on_fwd_closed_early(void *arg)
{
    (void)arg;
}

int main(int argc, char **argv)
{
    const char *cfg_path = "/etc/vigil/vigil.yaml";
    const char *level = NULL;
    bool check_only = false;
    bool allow_root = false;
    int ready_fd = -1;
    struct errbuf eb;
    int rc;

    log_set_prog("vigild");
    log_detect_journal();
    errbuf_clear(&eb);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            cfg_path = argv[++i];
        } else if (strcmp(a, "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(a, "--allow-root") == 0) {
            allow_root = true;
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
    if (!check_only && root_allowed(cfg, allow_root, &eb) < 0) {
        fprintf(stderr, "vigild: %s\n", errbuf_msg(&eb));
        config_free(cfg);
        return 2;
    }

    struct tls_ctx *tls = NULL;
    /* Only TLS listeners need the context (a cluster store node has none). */
    bool tls_listener =
        cfg->listen.forward.enabled || cfg->listen.syslog.enabled || cfg->listen.https.enabled;
    if (!cfg->listen.insecure && tls_listener) {
        int64_t crl_next;
        rc = vigild_check_crl(cfg, &crl_next, &eb);
        if (rc == 0) {
            rc = tls_server_ctx_new(cfg->tls.ca, cfg->tls.cert, cfg->tls.key, cfg->tls.crl, &tls,
                                    &eb);
        }
        if (rc < 0) {
            fprintf(stderr, "vigild: %s\n", errbuf_msg(&eb));
            config_free(cfg);
            return 2;
        }
        tls_ctx_set_crl_stale_ok(tls, strcmp(cfg->tls.crl_expired, "warn") == 0);
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
    /* Forwarders: every type, URL, match and secret, with file:line:key errors. */
    if ((rc = fwd_config_check(cfg, &eb)) < 0) {
        fprintf(stderr, "vigild: %s\n", errbuf_msg(&eb));
        rules_live_free(vd.rules);
        uv_loop_close(&loop);
        tls_ctx_free(tls);
        config_free(cfg);
        return 2;
    }
    if (check_only) {
        uid_t uid;
        gid_t gid;
        rc = cfg->user ? user_lookup(cfg->user, &uid, &gid, &eb) : 0;
        if (rc == 0) {
            printf("vigild: %s: configuration OK\n", cfg_path);
        } else {
            fprintf(stderr, "vigild: %s\n", errbuf_msg(&eb));
        }
        rules_live_free(vd.rules);
        uv_loop_close(&loop);
        tls_ctx_free(tls);
        config_free(cfg);
        return rc == 0 ? 0 : 2;
    }

    /* Bound before the switch (a port below 1024 needs root); nothing is accepted
     * before the loop runs. */
    int exit_code = 0;
    struct store *st = NULL;
    if ((rc = vigild_listen(&vd, &eb)) < 0) {
        log_error("%s", errbuf_msg(&eb));
        exit_code = 1;
    } else if ((rc = drop_privileges(cfg, allow_root, &eb)) < 0) {
        log_error("%s", errbuf_msg(&eb));
        exit_code = 2;
    } else if (cfg->cluster.enabled) {
        /* A cluster node opens no store of its own here: the store role opens one per
         * shard it owns (vigild_start). */
    } else {
        struct store_opts so = {
            .dir = cfg->store.path,
            .partition_ns = cfg->store.partition_ns,
            .block_bytes = (size_t)cfg->store.block_bytes,
            .block_max_age_ns = cfg->store.block_max_age_ns,
            .lz4_level = strcmp(cfg->store.compression, "lz4") == 0 ? -1 : 0,
            .max_open_segments = 8,
            .fsync = cfg->store.fsync,
            .signing_key = cfg->store.signing_key,
        };
        if ((rc = store_open(&so, &st, &eb)) < 0) {
            log_error("cannot open the store: %s", errbuf_msg(&eb));
            exit_code = 1;
        }
    }
    /* The outbox opens (as the user vigild runs as) and the forwarders' secrets are read
     * before the loop runs. */
    if (exit_code == 0 && !cfg->cluster.enabled &&
        (rc = fwd_new(&loop, cfg, cfg->store.path, store_next_seq(st), &vd.fwd, &eb)) < 0) {
        log_error("forwarders: %s", errbuf_msg(&eb));
        store_close(st);
        exit_code = rc == VG_ECONFIG ? 2 : 1;
    }
    if (exit_code != 0) {
        vigild_unlisten(&vd);
        uv_run(&loop, UV_RUN_DEFAULT); /* the listeners' close callbacks */
        uv_loop_close(&loop);
        rules_live_free(vd.rules);
        free(vd.shared_key);
        tls_ctx_free(tls);
        config_free(cfg);
        return exit_code;
    }

    if ((rc = vigild_start(&vd, st, &eb)) < 0) {
        log_error("%s", errbuf_msg(&eb));
        exit_code = 1;
        if (vd.pipe) {
            vigild_stop(&vd); /* closes what started; the loop below finishes it */
        } else {
            vigild_unlisten(&vd);
            fwd_close(vd.fwd, on_fwd_closed_early, NULL); /* its timers, before the loop */
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        log_warn("loop closed with handles still open");
    }
    /* The pipeline's store thread has been joined and the store closed; the store
     * role's threads stop now (they need no loop). */
    vigild_cluster_stop(&vd);
    rules_live_free(vd.rules); /* the final checkpoint of the correlation state */
    pipeline_free(vd.pipe);
    metrics_release(&vd.m);
    fwd_free(vd.fwd);
    free(vd.shared_key);
    tls_ctx_free(tls);
    if (cfg->cluster.enabled) {
        cnats_shutdown();
    }
    config_free(cfg);
    if (exit_code == 0) {
        log_info("stopped cleanly");
    }
    return exit_code;
}
