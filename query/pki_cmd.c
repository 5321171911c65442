/* query/pki_cmd.c: `vigil pki init DIR [--force]` and `vigil pki issue DIR NAME`: a
 * development CA and certificates (common/pki.h). */
#include <stdio.h>
#include <string.h>

#include "common/pki.h"
#include "query/cli.h"

struct pki_opts {
    bool force;
    struct cli_list names; /* --server-name */
};

static const struct cli_opt pki_opts[] = {
    { "--force", NULL, CLI_FLAG, CLI_OFF(struct pki_opts, force), 0, 0 },
    { "--server-name", NULL, CLI_LIST, CLI_OFF(struct pki_opts, names), 0, 0 },
    { NULL },
};

static void pki_usage(FILE *f)
{
    fprintf(f, "usage: vigil pki init DIR [--force] [--server-name NAME]...\n"
               "       vigil pki issue DIR NAME   (one more client certificate)\n");
}

static int pki_run(struct cli_args *a)
{
    const struct pki_opts *o = a->own;
    struct errbuf eb;
    bool force = o->force;
    const char *dir = NULL;
    const char *issue = NULL;

    errbuf_clear(&eb);
    if (a->nwords < 1 || (strcmp(a->words[0], "init") != 0 && strcmp(a->words[0], "issue") != 0)) {
        pki_usage(stderr);
        return CLI_USAGE;
    }
    const char *sub = a->words[0];
    bool is_issue = strcmp(sub, "issue") == 0;
    if (is_issue && o->names.n > 0) {
        fprintf(stderr, "vigil pki issue: unexpected argument '--server-name'\n");
        return CLI_USAGE;
    }
    for (int i = 1; i < a->nwords; i++) {
        if (!dir) {
            dir = a->words[i];
        } else if (is_issue && !issue) {
            issue = a->words[i];
        } else {
            fprintf(stderr, "vigil pki: unexpected argument '%s'\n", a->words[i]);
            return CLI_USAGE;
        }
    }
    if (!dir || (is_issue && !issue)) {
        fprintf(stderr, "vigil pki %s: missing %s\n", sub, dir ? "NAME" : "DIR");
        return CLI_USAGE;
    }
    int rc = is_issue ? pki_issue_client(dir, issue, &eb)
                      : pki_init_names(dir, force, o->names.v, o->names.n, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil pki %s: %s\n", sub, errbuf_msg(&eb));
        return CLI_FAIL;
    }
    if (is_issue) {
        printf("issued %s/%s.pem and %s/%s-key.pem\n", dir, issue, dir, issue);
    } else {
        printf("development PKI in %s:\n"
               "  ca.pem ca-key.pem              the CA (keep ca-key.pem offline)\n"
               "  server.pem server-key.pem      vigild (localhost, 127.0.0.1, ::1",
               dir);
        for (size_t i = 0; i < o->names.n; i++) {
            printf(", %s", o->names.v[i]);
        }
        printf(")\n"
               "  agent-node-1.pem, agent-sidecar-1.pem (+ -key.pem)   agents\n"
               "  analyst.pem analyst-key.pem    an analyst\n");
    }
    return CLI_OK;
}

const struct cli_cmd cmd_pki = {
    .name = "pki",
    .synopsis = "init DIR      a development CA, server, agent and analyst certificates",
    .opts = pki_opts,
    .own_size = sizeof(struct pki_opts),
    .usage = pki_usage,
    .run = pki_run,
};
