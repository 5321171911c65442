/* query/verify.c: `vigil verify [--store DIR | -c FILE] [--key PUB.pem] [--quiet]`:
 * checks every segment's chain and signature, the catalog's agreement with the files
 * and the deletions recorded by retention (store_verify, schemas/segment.md 11).
 * One line per segment and a summary on stdout; exit 0 when everything verifies, 1
 * when anything does not (or the store cannot be read), 2 on a usage error. Read-only:
 * safe while vigild writes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/bundle.h"
#include "query/cli.h"
#include "store/store.h"

static void verify_usage(FILE *f)
{
    fprintf(f,
            "usage: vigil verify [--store DIR | -c FILE] [--key PUB.pem] [--head HASH] [--quiet]\n"
            "       vigil verify BUNDLE.tar [--key PUB.pem] [--quiet]\n"
            "\n"
            "Recomputes every segment's hash chain, checks each sealed segment's Ed25519\n"
            "signature and the catalog's counts, sizes and chain heads against the files, and\n"
            "tells segments deleted by retention from segments that went missing. Names the\n"
            "first altered or missing block of a segment (file, offset, block number, why).\n"
            "Checks the store's seal sequence (seals.seq) and everything it records against\n"
            "the catalog and the files: segments removed with their rows, sealed segments\n"
            "reopened, deletions removed or forged.\n"
            "\n"
            "  --key PUB.pem   trust only this public key (e.g. the output of `vigil pki\n"
            "                  pubkey` kept elsewhere); otherwise the keys the catalog and the\n"
            "                  seal sequence record are used and the summary names them\n"
            "  --head HASH     the seal sequence must hold the entry with this hash (a head\n"
            "                  printed by an earlier verify or logged by vigild): it was not\n"
            "                  cut back since\n"
            "  --quiet         print only failures and the summary\n"
            "\n"
            "With BUNDLE.tar (from vigil export), checks the bundle offline with nothing but\n"
            "its members: every member against the manifest's SHA-256, every seal sequence\n"
            "entry's signature, every segment image's chain against its signed head, and\n"
            "events.ndjson line by line against the records that match the bundle's query\n"
            "(an edited, added, removed or reordered event is named by its line).\n"
            "Exit status: 0 all verified, 1 something did not, 2 usage.\n");
}

struct verify_opts {
    const char *key;
    const char *head;
    bool quiet;
};

static const struct cli_opt verify_opts[] = {
    { "--key", NULL, CLI_STR, CLI_OFF(struct verify_opts, key), 0, 0 },
    { "--head", NULL, CLI_STR, CLI_OFF(struct verify_opts, head), 0, 0 },
    { "--quiet", "-q", CLI_FLAG, CLI_OFF(struct verify_opts, quiet), 0, 0 },
    { NULL },
};

/* vigil verify BUNDLE.tar (schemas/bundle.md): offline, with nothing but the bundle. */
static int verify_bundle(const char *path, const struct verify_opts *vo)
{
    struct bundle_verify_opts o = { .trusted_key = vo->key };
    struct bundle_summary sum;
    struct errbuf eb;
    char *text = NULL;
    size_t len = 0;

    errbuf_clear(&eb);
    FILE *report = open_memstream(&text, &len);
    if (!report) {
        perror("vigil verify: open_memstream");
        return CLI_FAIL;
    }
    int rc = bundle_verify(path, &o, report, &sum, &eb);
    fclose(report);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (!vo->quiet || strstr(line, "FAILED") != NULL) {
            fwrite(line, 1, n, stdout);
        }
        line += n;
    }
    free(text);
    if (rc == 0) {
        printf("summary: ok: %" PRIu64 " events in %" PRIu64
               " segments, each in a chain whose head is signed by key %s; query '%s'\n",
               sum.events, sum.segments, sum.key_id[0] ? sum.key_id : "(none: no events)",
               sum.filter);
        fflush(stdout);
        return CLI_OK;
    }
    if (rc == VG_ECORRUPT) {
        printf("summary: FAILED: %" PRIu64 " problem%s\n", sum.problems,
               sum.problems == 1 ? "" : "s");
        fflush(stdout);
        fprintf(stderr, "vigil verify: %s: the bundle does not verify (see above)\n", path);
        return CLI_FAIL;
    }
    fflush(stdout);
    fprintf(stderr, "vigil verify: %s: %s\n", path, errbuf_msg(&eb));
    return CLI_FAIL;
}

static int verify_run(struct cli_args *a)
{
    const struct verify_opts *vo = a->own;
    struct store_verify_opts o = { .trusted_key = vo->key, .head = vo->head };
    struct store_verify_summary sum;
    bool quiet = vo->quiet;
    char *text = NULL;
    size_t len = 0;
    struct errbuf eb;
    int rc;

    if (a->nwords == 1 && a->words[0][0] != '-') {
        if (vo->head) {
            fprintf(stderr,
                    "vigil verify: --head is about a store's seal sequence, not a bundle\n");
            return CLI_USAGE;
        }
        return verify_bundle(a->words[0], vo);
    }
    if (a->nwords > 0) {
        if (a->words[0][0] != '-') {
            fprintf(stderr, "vigil verify: one bundle at a time ('%s' and '%s' given)\n",
                    a->words[0], a->words[1]);
        } else {
            fprintf(stderr, "vigil verify: unknown option '%s'\n", a->words[0]);
            verify_usage(stderr);
        }
        return CLI_USAGE;
    }
    rc = cli_load(a);
    if (rc != CLI_OK) {
        return rc;
    }
    const char *dir = cli_store_dir(a);
    errbuf_clear(&eb);
    FILE *report = open_memstream(&text, &len);
    if (!report) {
        perror("vigil verify: open_memstream");
        return CLI_FAIL;
    }
    rc = store_verify(dir, &o, report, &sum, &eb);
    fclose(report);
    /* The report: every line, or only failures, notes and the summary. */
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (!quiet || strstr(line, ": FAILED") != NULL || strncmp(line, "note:", 5) == 0 ||
            strncmp(line, "seal sequence:", 14) == 0 || strncmp(line, "summary:", 8) == 0) {
            fwrite(line, 1, n, stdout);
        }
        line += n;
    }
    free(text);
    fflush(stdout);
    if (rc == VG_ECORRUPT) {
        fprintf(stderr, "vigil verify: %s: %s\n", dir, errbuf_msg(&eb));
        return CLI_FAIL;
    }
    if (rc < 0) {
        fprintf(stderr, "vigil verify: %s\n", errbuf_msg(&eb));
        return CLI_FAIL;
    }
    return CLI_OK;
}

const struct cli_cmd cmd_verify = {
    .name = "verify",
    .synopsis =
        "[BUNDLE.tar] [--key PUB.pem]  check a store's (or a bundle's) chains and signatures",
    .takes = CLI_STORE,
    .opts = verify_opts,
    .own_size = sizeof(struct verify_opts),
    .usage = verify_usage,
    .run = verify_run,
};
