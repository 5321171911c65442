/* query/main.c: vigil, the query and operations CLI. Finds the command in the table
 * (query/commands.c) and runs it (query/cli.c). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "common/log.h"
#include "query/cli.h"
#include "query/completion.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vigil COMMAND [ARGS]   (vigil COMMAND --help for details)\n\n");
    for (size_t i = 0; cli_commands[i]; i++) {
        fprintf(f, "  %-8s %s\n", cli_commands[i]->name, cli_commands[i]->synopsis);
    }
    fprintf(f, "  %-8s %s\n", "completion", COMPLETION_SYNOPSIS);
    fprintf(f, "\nEvery command takes -c vigil.yaml or --store DIR.\n");
}

/* A scan keeps every segment file it lists open (segment.md 4.5): a long history is
 * thousands of files, past the usual soft limit of 1024. */
static void raise_open_files(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl); /* best effort: a scan copes without */
    }
}

int main(int argc, char **argv)
{
    log_set_prog("vigil");
    raise_open_files();
    /* A reader that goes away (`vigil search | head`) makes writes fail with EPIPE, which
     * each command ends on quietly (cli_output_done), instead of killing it mid-line. */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_WARN);
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("vigil %s\n", VG_VERSION);
        return CLI_OK;
    }
    if (strcmp(argv[1], "completion") == 0) {
        return completion_main(cli_commands, argc - 1, argv + 1);
    }
    const struct cli_cmd *c = cli_find(argv[1]);
    if (!c) {
        fprintf(stderr, "vigil: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return CLI_USAGE;
    }
    return cli_run(c, argc - 1, argv + 1, argv[0]);
}
