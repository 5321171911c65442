/* query/send_cmd.c: `vigil send [--format F] [FILE...]`: ships events to vigild's
 * Forward listener over mutual TLS (query/send.h) and exits 0 only when every one was
 * acknowledged. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/cli.h"
#include "query/send.h"

/* Every event acknowledged, some of them rejected by vigild (they did not map). */
#define SEND_EXIT_REJECTED 3

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
        "Exit 1: not everything was acknowledged (unreachable, a certificate refused: not\n"
        "retried, --timeout passed); 3: everything was acknowledged but vigild rejected\n"
        "some events (they did not map; kept as rejected_input records): do not resend.\n"
        "--timeout S bounds the whole run, reconnects included; without it each step\n"
        "waits up to 30 s and 5 reconnects without an acknowledgement end it.\n"
        "Certificates default to $VIGIL_CA, $VIGIL_CERT, $VIGIL_KEY; --server defaults to\n"
        "the config's listen.forward (0.0.0.0 means 127.0.0.1).\n");
}

struct send_cmd_opts {
    const char *format;
    const char *server;
    const char *ca;
    const char *cert;
    const char *key;
    const char *tag;
    uint64_t chunk;
    uint64_t window;
    uint64_t timeout_s;
};

static const struct cli_opt send_opts[] = {
    { "--format", NULL, CLI_STR, CLI_OFF(struct send_cmd_opts, format), 0, 0 },
    { "--server", NULL, CLI_STR, CLI_OFF(struct send_cmd_opts, server), 0, 0 },
    { "--ca", NULL, CLI_STR, CLI_OFF(struct send_cmd_opts, ca), 0, 0 },
    { "--cert", NULL, CLI_STR, CLI_OFF(struct send_cmd_opts, cert), 0, 0 },
    { "--key", NULL, CLI_STR, CLI_OFF(struct send_cmd_opts, key), 0, 0 },
    { "--tag", NULL, CLI_STR, CLI_OFF(struct send_cmd_opts, tag), 0, 0 },
    { "--chunk", NULL, CLI_U64, CLI_OFF(struct send_cmd_opts, chunk), 1, 100000 },
    { "--window", NULL, CLI_U64, CLI_OFF(struct send_cmd_opts, window), 1, 1024 },
    { "--timeout", NULL, CLI_U64, CLI_OFF(struct send_cmd_opts, timeout_s), 1, 3600 },
    { NULL },
};

static int send_run(struct cli_args *a)
{
    const struct send_cmd_opts *so = a->own;
    struct send_opts o;
    const char *server = so->server;
    char hbuf[256];

    send_opts_init(&o);
    /* Certificates from the environment unless given. */
    o.ca = so->ca ? so->ca : getenv("VIGIL_CA");
    o.cert = so->cert ? so->cert : getenv("VIGIL_CERT");
    o.key = so->key ? so->key : getenv("VIGIL_KEY");
    o.progress = cli_progress_enabled();
    if (so->format && send_format_parse(so->format, &o.format) < 0) {
        fprintf(stderr,
                "vigil send: --format: expected ndjson, falco, k8s-audit, trivy "
                "or syslog, got '%s'\n",
                so->format);
        return CLI_USAGE;
    }
    if (so->tag) {
        o.tag = so->tag;
    }
    if (so->chunk) {
        o.chunk_events = (uint32_t)so->chunk;
    }
    if (so->window) {
        o.window = (int)so->window;
    }
    if (so->timeout_s) {
        o.total_timeout_ms = (int)so->timeout_s * 1000;
    }
    int rc = cli_load(a);
    if (rc != CLI_OK) {
        return rc;
    }
    if (server) {
        if (send_hostport_parse(server, &o.host, &o.port, hbuf, sizeof(hbuf)) < 0) {
            fprintf(stderr, "vigil send: --server: expected HOST:PORT, got '%s'\n", server);
            return CLI_USAGE;
        }
    } else if (a->cfg->listen.forward.enabled) {
        const char *h = a->cfg->listen.forward.host;
        snprintf(hbuf, sizeof(hbuf), "%s",
                 strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 ? "127.0.0.1" : h);
        o.host = hbuf;
        o.port = a->cfg->listen.forward.port;
    }
    if (!o.ca && a->config_path) {
        o.ca = a->cfg->tls.ca;
    }
    if (!o.ca || !o.cert || !o.key) {
        fprintf(stderr, "vigil send: need --ca, --cert and --key (or $VIGIL_CA, $VIGIL_CERT, "
                        "$VIGIL_KEY): agents authenticate with a client certificate\n");
        return CLI_USAGE;
    }

    struct send_stats st;
    struct errbuf eb;
    errbuf_clear(&eb);
    rc = send_files(&o, a->words, a->nwords, &st, &eb);
    printf("%" PRIu64 " events acknowledged in %.2f s (%.0f events/s)%s", st.events, st.seconds,
           st.seconds > 0 ? (double)st.events / st.seconds : 0.0,
           st.reconnects ? " after reconnecting" : "");
    if (st.rejected > 0) {
        printf(", %" PRIu64 " of them rejected by vigild", st.rejected);
    }
    printf("\n");
    if (rc < 0) {
        fprintf(stderr, "vigil send: %s\n", errbuf_msg(&eb));
        /* Acknowledged but rejected: resending would not help and would store them again. */
        return rc == VG_EFORMAT && st.rejected > 0 && st.bad_docs == 0 ? SEND_EXIT_REJECTED
                                                                       : CLI_FAIL;
    }
    return CLI_OK;
}

const struct cli_cmd cmd_send = {
    .name = "send",
    .synopsis = "[--format ndjson|falco|k8s-audit|trivy|syslog] [FILE...]   ship over mTLS",
    .takes = CLI_STORE,
    .opts = send_opts,
    .own_size = sizeof(struct send_cmd_opts),
    .usage = send_usage,
    .run = send_run,
};
