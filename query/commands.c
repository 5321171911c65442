/* query/commands.c: `vigil pki` and `vigil send` argument handling. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "query/cli.h"
#include "common/pki.h"
#include "query/send.h"

int cmd_pki(int argc, char **argv)
{
    struct errbuf eb;
    bool force = false;
    const char *dir = NULL;
    const char *issue = NULL;
    const char *names[32];
    size_t nnames = 0;

    errbuf_clear(&eb);
    if (argc < 2 || (strcmp(argv[1], "init") != 0 && strcmp(argv[1], "issue") != 0)) {
        fprintf(stderr, "usage: vigil pki init DIR [--force] [--server-name NAME]...\n"
                        "       vigil pki issue DIR NAME   (one more client certificate)\n");
        return CLI_USAGE;
    }
    bool is_issue = strcmp(argv[1], "issue") == 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (!is_issue && strcmp(argv[i], "--server-name") == 0 && i + 1 < argc) {
            if (nnames == VG_ARRAY_LEN(names)) {
                fprintf(stderr, "vigil pki init: at most %zu --server-name\n", VG_ARRAY_LEN(names));
                return CLI_USAGE;
            }
            names[nnames++] = argv[++i];
        } else if (!dir) {
            dir = argv[i];
        } else if (is_issue && !issue) {
            issue = argv[i];
        } else {
            fprintf(stderr, "vigil pki: unexpected argument '%s'\n", argv[i]);
            return CLI_USAGE;
        }
    }
    if (!dir || (is_issue && !issue)) {
        fprintf(stderr, "vigil pki %s: missing %s\n", argv[1], dir ? "NAME" : "DIR");
        return CLI_USAGE;
    }
    int rc = is_issue ? pki_issue_client(dir, issue, &eb)
                      : pki_init_names(dir, force, names, nnames, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil pki %s: %s\n", argv[1], errbuf_msg(&eb));
        return CLI_FAIL;
    }
    if (is_issue) {
        printf("issued %s/%s.pem and %s/%s-key.pem\n", dir, issue, dir, issue);
    } else {
        printf("development PKI in %s:\n"
               "  ca.pem ca-key.pem              the CA (keep ca-key.pem offline)\n"
               "  server.pem server-key.pem      vigild (localhost, 127.0.0.1, ::1",
               dir);
        for (size_t i = 0; i < nnames; i++) {
            printf(", %s", names[i]);
        }
        printf(")\n"
               "  agent-node-1.pem, agent-sidecar-1.pem (+ -key.pem)   agents\n"
               "  analyst.pem analyst-key.pem    an analyst\n");
    }
    return CLI_OK;
}

static void send_usage(FILE *f)
{
    fprintf(
        f,
        "usage: vigil send [--format ndjson|falco|k8s-audit|trivy|syslog] [FILE...]\n"
        "                  [--server HOST:PORT] [--ca CA.pem] [--cert CERT.pem] [--key KEY.pem]\n"
        "                  [--tag TAG] [--chunk N] [--window N] [--timeout SECONDS] [-c FILE]\n"
        "\n"
        "Ships events to vigild's Forward listener over mutual TLS and exits 0 only when\n"
        "every event was acknowledged (stored durably). FILE '-' or none: standard input.\n"
        "Certificates default to $VIGIL_CA, $VIGIL_CERT, $VIGIL_KEY; --server defaults to\n"
        "the config's listen.forward (0.0.0.0 means 127.0.0.1).\n");
}

static int parse_hostport(const char *s, const char **host, int *port, char *hbuf, size_t hcap)
{
    const char *colon = strrchr(s, ':');
    uint64_t p;

    if (!colon || colon == s) {
        return VG_EPARSE;
    }
    size_t hn = (size_t)(colon - s);
    if (s[0] == '[' && hn >= 2 && s[hn - 1] == ']') {
        s++;
        hn -= 2;
    }
    if (hn + 1 > hcap || parse_u64(span_str(colon + 1), 65535, &p) < 0 || p == 0) {
        return VG_EPARSE;
    }
    memcpy(hbuf, s, hn);
    hbuf[hn] = 0;
    *host = hbuf;
    *port = (int)p;
    return 0;
}

int cmd_send(int argc, char **argv)
{
    struct cli_common cc = { 0 };
    struct send_opts o;
    const char *server = NULL;
    char hbuf[256];
    char **files = xcalloc((size_t)argc + 1, sizeof(char *));
    int nfiles = 0;

    send_opts_init(&o);
    o.ca = getenv("VIGIL_CA");
    o.cert = getenv("VIGIL_CERT");
    o.key = getenv("VIGIL_KEY");
    o.progress = cli_progress_enabled();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int c = cli_common_arg(&cc, argc, argv, &i);
        if (c < 0) {
            free(files);
            return CLI_USAGE;
        }
        if (c > 0) {
            continue;
        }
        bool has_val = i + 1 < argc;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            send_usage(stdout);
            free(files);
            return CLI_OK;
        } else if (strcmp(a, "-") == 0 || strncmp(a, "--", 2) != 0) {
            files[nfiles++] = argv[i];
            continue;
        }
        if (!has_val) {
            fprintf(stderr, "vigil send: %s needs a value (or is unknown)\n", a);
            free(files);
            return CLI_USAGE;
        }
        const char *v = argv[++i];
        uint64_t n;
        if (strcmp(a, "--format") == 0) {
            if (send_format_parse(v, &o.format) < 0) {
                fprintf(stderr,
                        "vigil send: --format: expected ndjson, falco, k8s-audit, trivy "
                        "or syslog, got '%s'\n",
                        v);
                free(files);
                return CLI_USAGE;
            }
        } else if (strcmp(a, "--server") == 0) {
            server = v;
        } else if (strcmp(a, "--ca") == 0) {
            o.ca = v;
        } else if (strcmp(a, "--cert") == 0) {
            o.cert = v;
        } else if (strcmp(a, "--key") == 0) {
            o.key = v;
        } else if (strcmp(a, "--tag") == 0) {
            o.tag = v;
        } else if (strcmp(a, "--chunk") == 0 && parse_u64(span_str(v), 100000, &n) == 0 && n) {
            o.chunk_events = (uint32_t)n;
        } else if (strcmp(a, "--window") == 0 && parse_u64(span_str(v), 1024, &n) == 0 && n) {
            o.window = (int)n;
        } else if (strcmp(a, "--timeout") == 0 && parse_u64(span_str(v), 3600, &n) == 0 && n) {
            o.timeout_ms = (int)n * 1000;
        } else {
            fprintf(stderr, "vigil send: bad option or value: %s '%s'\n", a, v);
            send_usage(stderr);
            free(files);
            return CLI_USAGE;
        }
    }
    int rc = cli_common_load(&cc, "send");
    if (rc != CLI_OK) {
        free(files);
        return rc;
    }
    if (server) {
        if (parse_hostport(server, &o.host, &o.port, hbuf, sizeof(hbuf)) < 0) {
            fprintf(stderr, "vigil send: --server: expected HOST:PORT, got '%s'\n", server);
            free(files);
            cli_common_release(&cc);
            return CLI_USAGE;
        }
    } else if (cc.cfg->listen.forward.enabled) {
        const char *h = cc.cfg->listen.forward.host;
        snprintf(hbuf, sizeof(hbuf), "%s",
                 strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 ? "127.0.0.1" : h);
        o.host = hbuf;
        o.port = cc.cfg->listen.forward.port;
    }
    if (!o.ca && cc.config_path) {
        o.ca = cc.cfg->tls.ca;
    }
    if (!o.ca || !o.cert || !o.key) {
        fprintf(stderr, "vigil send: need --ca, --cert and --key (or $VIGIL_CA, $VIGIL_CERT, "
                        "$VIGIL_KEY): agents authenticate with a client certificate\n");
        free(files);
        cli_common_release(&cc);
        return CLI_USAGE;
    }

    struct send_stats st;
    struct errbuf eb;
    errbuf_clear(&eb);
    rc = send_files(&o, files, nfiles, &st, &eb);
    free(files);
    cli_common_release(&cc);
    printf("%" PRIu64 " events acknowledged in %.2f s (%.0f events/s)%s\n", st.events, st.seconds,
           st.seconds > 0 ? (double)st.events / st.seconds : 0.0,
           st.reconnects ? " after reconnecting" : "");
    if (rc < 0) {
        fprintf(stderr, "vigil send: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    return CLI_OK;
}
