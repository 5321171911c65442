/* query/pki_cmd.c: `vigil pki init DIR [--force]` and `vigil pki issue DIR NAME`: a
 * development CA, its certificates and CRL (common/pki.h); `vigil pki pubkey`: the public
 * half of the store's signing key, to keep away from the store (schemas/segment.md 13.7). */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/pki.h"
#include "query/cli.h"
#include "store/sign.h"

struct pki_opts {
    bool force;
    struct cli_list names;  /* --server-name */
    const char *role;       /* --role agent|analyst */
    struct cli_list revoke; /* crl --revoke NAME */
    const char *days;       /* crl --days N */
};

static const struct cli_opt pki_opts[] = {
    { "--force", NULL, CLI_FLAG, CLI_OFF(struct pki_opts, force), 0, 0 },
    { "--server-name", NULL, CLI_LIST, CLI_OFF(struct pki_opts, names), 0, 0 },
    { "--role", NULL, CLI_STR, CLI_OFF(struct pki_opts, role), 0, 0 },
    { "--revoke", NULL, CLI_LIST, CLI_OFF(struct pki_opts, revoke), 0, 0 },
    { "--days", NULL, CLI_STR, CLI_OFF(struct pki_opts, days), 0, 0 },
    { NULL },
};

static void pki_usage(FILE *f)
{
    fprintf(f, "usage: vigil pki init DIR [--force] [--server-name NAME]...\n"
               "       vigil pki issue DIR NAME [--role agent|analyst]\n"
               "                          (one more client certificate: OU agents, which the\n"
               "                          default tls.agents lets ship events, or analysts)\n"
               "       vigil pki crl DIR [--revoke NAME]... [--days N]\n"
               "                          (DIR/crl.pem: what it listed plus NAME's serial, next\n"
               "                          update in N days, default 30; set tls.crl to it)\n"
               "       vigil pki pubkey [-c FILE | --store DIR]\n"
               "\n"
               "pubkey prints the public key that signs the store's seals (PEM), from the\n"
               "private key (store.signing_key, else DIR/keys/collector-ed25519.pem). Keep it\n"
               "away from the store and give it to `vigil verify --key`: whoever can write the\n"
               "store can replace the key kept in it.\n");
}

/* `vigil pki pubkey`: derived from the private key, not read from the store's copy of
 * the public key (which an attacker who rewrote the store would have replaced too). */
static int pki_pubkey(struct cli_args *a)
{
    char own[PATH_MAX];
    struct sign_key *k = NULL;
    struct errbuf eb;
    struct buf pem;
    int rc = cli_load(a);

    if (rc != CLI_OK) {
        return rc;
    }
    const char *path = a->cfg->store.signing_key;
    if (!path || a->store_dir) {
        snprintf(own, sizeof(own), "%s/keys/collector-ed25519.pem", cli_store_dir(a));
        path = own;
    }
    errbuf_clear(&eb);
    if (sign_key_load_private(path, &k, &eb) < 0) {
        fprintf(stderr, "vigil pki pubkey: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    buf_init(&pem, SIGN_PEM_MAX);
    rc = sign_key_public_pem(k, &pem) == 0 && fwrite(pem.data, 1, pem.len, stdout) == pem.len
             ? CLI_OK
             : CLI_FAIL;
    buf_release(&pem);
    sign_key_free(k);
    return rc;
}

/* vigil pki crl DIR [--revoke NAME]... [--days N] */
static int pki_crl_run(struct cli_args *a)
{
    const struct pki_opts *o = a->own;
    struct errbuf eb;
    int64_t days = 30;

    errbuf_clear(&eb);
    if (a->nwords != 2 || o->force || o->names.n > 0 || o->role) {
        fprintf(stderr, "vigil pki crl: expected DIR and --revoke NAME or --days N only\n");
        return CLI_USAGE;
    }
    if (o->days && parse_i64(span_str(o->days), -36500, 36500, &days) < 0) {
        fprintf(stderr, "vigil pki crl: --days: expected a number of days, got '%s'\n", o->days);
        return CLI_USAGE;
    }
    const char *dir = a->words[1];
    int rc = pki_crl(dir, (const char *const *)o->revoke.v, o->revoke.n, (int)days, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil pki crl: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    printf("wrote %s/crl.pem (next update in %" PRId64 " days, %zu more revoked)\n", dir, days,
           o->revoke.n);
    return CLI_OK;
}

static int pki_run(struct cli_args *a)
{
    const struct pki_opts *o = a->own;
    struct errbuf eb;
    bool force = o->force;
    const char *dir = NULL;
    const char *issue = NULL;

    errbuf_clear(&eb);
    if (a->nwords == 1 && strcmp(a->words[0], "pubkey") == 0) {
        return pki_pubkey(a);
    }
    if (a->nwords >= 1 && (a->config_path || a->store_dir)) {
        fprintf(stderr, "vigil pki %s: -c and --store are for `vigil pki pubkey`\n",
                a->words[0]);
        return CLI_USAGE;
    }
    if (a->nwords >= 1 && strcmp(a->words[0], "crl") == 0) {
        return pki_crl_run(a);
    }
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
    if (!is_issue && o->role) {
        fprintf(stderr, "vigil pki init: unexpected argument '--role' (init makes both)\n");
        return CLI_USAGE;
    }
    enum pki_role role = PKI_ROLE_AGENT;
    if (o->role && strcmp(o->role, "analyst") == 0) {
        role = PKI_ROLE_ANALYST;
    } else if (o->role && strcmp(o->role, "agent") != 0) {
        fprintf(stderr, "vigil pki issue: --role: expected agent or analyst, got '%s'\n", o->role);
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
    int rc = is_issue ? pki_issue_client(dir, issue, role, &eb)
                      : pki_init_names(dir, force, o->names.v, o->names.n, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil pki %s: %s\n", sub, errbuf_msg(&eb));
        return CLI_FAIL;
    }
    if (is_issue) {
        printf("issued %s/%s.pem and %s/%s-key.pem (OU %s)\n", dir, issue, dir, issue,
               role == PKI_ROLE_ANALYST ? PKI_OU_ANALYSTS : PKI_OU_AGENTS);
    } else {
        printf("development PKI in %s:\n"
               "  ca.pem ca-key.pem              the CA (keep ca-key.pem offline)\n"
               "  server.pem server-key.pem      vigild (localhost, 127.0.0.1, ::1",
               dir);
        for (size_t i = 0; i < o->names.n; i++) {
            printf(", %s", o->names.v[i]);
        }
        printf(")\n"
               "  agent-node-1.pem, agent-sidecar-1.pem (+ -key.pem)   agents (OU agents: "
               "may ship events)\n"
               "  analyst.pem analyst-key.pem    an analyst (OU analysts: vigild refuses it)\n");
    }
    return CLI_OK;
}

const struct cli_cmd cmd_pki = {
    .name = "pki",
    .synopsis = "init|issue|crl DIR | pubkey  a development CA, certificates, CRL; store key",
    .takes = CLI_STORE,
    .opts = pki_opts,
    .own_size = sizeof(struct pki_opts),
    .usage = pki_usage,
    .run = pki_run,
};
