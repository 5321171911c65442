/* query/rules_cmd.c: `vigil rules check [PATH...]` and `vigil rules test [PATH...]`
 * (DESIGN.md "Query CLI"; rules/README.md).
 *
 *   check  loads every rule under the paths (or the config's rules.paths) and prints what
 *          loaded and what did not, with file, line and reason; exit 1 if anything did
 *          not load.
 *   test   loads the rules, then runs the test cases next to them (X.tests.yml); prints
 *          each failure and a summary; exit 1 on any failure or rule that did not load.
 *
 * Exit 2 for usage errors and paths that cannot be read. Runs on the CLI's only thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "query/cli.h"
#include "rules/rules.h"

static void rules_usage(FILE *f)
{
    fprintf(f, "usage: vigil rules check [--quiet] [--map FILE] [-c vigil.yaml] [PATH...]\n"
               "       vigil rules test  [--quiet] [--map FILE] [-c vigil.yaml] [PATH...]\n"
               "\n"
               "PATHs are Sigma rule files or folders (*.yml, *.yaml, searched recursively);\n"
               "without any, the config's rules.paths. check: load and lint every rule, exit 1\n"
               "if any does not load. test: run the test cases of X.tests.yml next to each\n"
               "rule file X.yml (rules/README.md), exit 1 on any failure.\n"
               "  --quiet     print only what failed and the summary\n"
               "  --map FILE  a logsource/field mapping instead of the built-in\n"
               "              schemas/sigma_map.yaml\n");
}

static const char *status_word(enum rules_status s)
{
    switch (s) {
    case RULES_LOADED:
        return "ok";
    case RULES_UNSUPPORTED:
        return "UNSUPPORTED";
    case RULES_INVALID:
        return "INVALID";
    }
    return "?";
}

static void print_report(const struct rules_report *rep, bool quiet, FILE *out)
{
    for (size_t i = 0; i < rep->n; i++) {
        const struct rules_report_item *it = &rep->items[i];
        if (quiet && it->status == RULES_LOADED) {
            continue;
        }
        fprintf(out, "%-11s %s:%u", status_word(it->status), it->file, it->line);
        if (it->title) {
            fprintf(out, "  \"%s\"", it->title);
        }
        if (it->id) {
            fprintf(out, " (%s)", it->id);
        }
        if (it->correlation) {
            fputs(" [correlation]", out);
        }
        fputc('\n', out);
        if (it->reason) {
            fprintf(out, "            %s\n", it->reason);
        }
    }
}

struct rules_cmd_opts {
    const char *map;
    bool quiet;
};

static const struct cli_opt rules_opts[] = {
    { "--map", NULL, CLI_STR, CLI_OFF(struct rules_cmd_opts, map), 0, 0 },
    { "--quiet", "-q", CLI_FLAG, CLI_OFF(struct rules_cmd_opts, quiet), 0, 0 },
    { NULL },
};

static int rules_run(struct cli_args *a)
{
    const struct rules_cmd_opts *ro = a->own;
    struct rules_options opt = { .map_path = ro->map };
    struct rules_report rep;
    struct ruleset *rs = NULL;
    struct errbuf eb;
    const char **paths;
    size_t npaths = 0;
    bool quiet = ro->quiet;
    bool test;
    int rc;

    if (a->nwords == 0) {
        rules_usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(a->words[0], "check") == 0) {
        test = false;
    } else if (strcmp(a->words[0], "test") == 0) {
        test = true;
    } else {
        fprintf(stderr, "vigil rules: unknown subcommand '%s' (check or test)\n", a->words[0]);
        rules_usage(stderr);
        return CLI_USAGE;
    }
    paths = xcalloc((size_t)a->nwords + 1, sizeof(*paths));
    for (int i = 1; i < a->nwords; i++) {
        if (a->words[i][0] == '-' && a->words[i][1] != 0) {
            fprintf(stderr, "vigil rules: unknown option '%s'\n", a->words[i]);
            free(paths);
            return CLI_USAGE;
        }
        paths[npaths++] = a->words[i];
    }
    if (npaths == 0) {
        if ((rc = cli_load(a)) != CLI_OK) {
            free(paths);
            return rc;
        }
        const struct rules_cfg *rc_cfg = &a->cfg->rules;
        paths = xrealloc(paths, (rc_cfg->npaths + 1) * sizeof(*paths));
        for (size_t i = 0; i < rc_cfg->npaths; i++) {
            paths[npaths++] = rc_cfg->paths[i];
        }
        if (npaths == 0) {
            fprintf(stderr, "vigil rules: no rule paths given and none in the config "
                            "(rules.paths)\n");
            free(paths);
            return CLI_USAGE;
        }
    }
    errbuf_clear(&eb);
    rules_report_init(&rep);
    rc = rules_load(paths, npaths, &opt, &rs, &rep, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil rules: %s\n", errbuf_msg(&eb));
        rules_report_release(&rep);
        free(paths);
        return CLI_USAGE;
    }
    int result = CLI_OK;
    if (!test) {
        print_report(&rep, quiet, stdout);
        printf("%zu loaded, %zu unsupported, %zu invalid\n", rep.loaded, rep.unsupported,
               rep.invalid);
        result = rep.loaded == rep.n ? CLI_OK : CLI_FAIL;
    } else {
        struct rules_test_report tr;
        rules_test_report_init(&tr);
        print_report(&rep, true, stdout);
        rc = rules_tests_run(rs, paths, npaths, &tr, &eb);
        if (rc < 0) {
            fprintf(stderr, "vigil rules test: %s\n", errbuf_msg(&eb));
            result = CLI_USAGE;
        } else {
            for (size_t i = 0; i < tr.n; i++) {
                const struct rules_test_item *it = &tr.items[i];
                if (it->pass && quiet) {
                    continue;
                }
                printf("%-4s %s:%u  %s  %s\n", it->pass ? "ok" : "FAIL", it->file, it->line,
                       it->rule, it->name);
                if (it->detail) {
                    printf("     %s\n", it->detail);
                }
            }
            printf("%zu passed, %zu failed; %zu rules with tests, %zu without; %zu rules did "
                   "not load\n",
                   tr.passed, tr.failed, tr.rules_tested, tr.rules_untested,
                   rep.unsupported + rep.invalid);
            result = tr.failed == 0 && rep.loaded == rep.n ? CLI_OK : CLI_FAIL;
        }
        rules_test_report_release(&tr);
    }
    ruleset_free(rs);
    rules_report_release(&rep);
    free(paths);
    return result;
}

const struct cli_cmd cmd_rules = {
    .name = "rules",
    .synopsis = "check|test [PATH...]   load and lint Sigma rules; run their test cases",
    .takes = CLI_STORE,
    .opts = rules_opts,
    .own_size = sizeof(struct rules_cmd_opts),
    .usage = rules_usage,
    .run = rules_run,
};
