/* query/main.c: vigil, the query and operations CLI. Dispatches to one command. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "query/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vigil COMMAND [ARGS]   (vigil COMMAND --help for details)\n"
            "\n"
            "  search   [FILTER] [--since T] [--until T] [--limit N] [--format table|json|ndjson|csv]\n"
            "  stats    [FILTER] --by FIELD[,FIELD] [--top N]   count events by field values\n"
            "  compact  [--codec zstd|lz4hc]   rewrite sealed segments smaller (vigild stopped)\n"
            "  send     [--format ndjson|falco|k8s-audit|trivy|syslog] [FILE...]   ship over mTLS\n"
            "  pki      init DIR      a development CA, server, agent and analyst certificates\n"
            "  rules    check|test [PATH...]   load and lint Sigma rules; run their test cases\n"
            "  hunt     RULE_FILE|DIR... [--since T] [--until T]   run rules over the store\n"
            "  verify   [--key PUB.pem]        check every chain, signature and catalog row\n"
            "  hold     add|list|release       legal holds: keep time ranges from retention\n"
            "  alerts   [list|outbox|replay|test]   incidents, their deliveries, the outbox\n"
            "  demo                   the one-command tour: collector, mTLS agents, a timeline\n"
            "\n"
            "Every command takes -c vigil.yaml or --store DIR.\n");
}

int main(int argc, char **argv)
{
    log_set_prog("vigil");
    log_set_level(LOG_LVL_WARN);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("vigil %s\n", VG_VERSION);
        return CLI_OK;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "search") == 0) {
        return cmd_search(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "stats") == 0) {
        return cmd_stats(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "compact") == 0) {
        return cmd_compact(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "send") == 0) {
        return cmd_send(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "pki") == 0) {
        return cmd_pki(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "rules") == 0) {
        return cmd_rules(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "verify") == 0) {
        return cmd_verify(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "hold") == 0) {
        return cmd_hold(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "hunt") == 0) {
        return cmd_hunt(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "alerts") == 0) {
        return cmd_alerts(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "demo") == 0) {
        return cmd_demo(argc - 1, argv + 1, argv[0]);
    }
    fprintf(stderr, "vigil: unknown command '%s'\n", cmd);
    usage(stderr);
    return CLI_USAGE;
}
