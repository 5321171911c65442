/* query/completion.h: `vigil completion bash|zsh` (query/completion.c): a shell
 * completion script made from a command table. main.c runs it with cli_commands and
 * lists it in `vigil --help`; it is no row of the table, so that reading the table does
 * not make a call cycle in the library. */
#ifndef VG_QUERY_COMPLETION_H
#define VG_QUERY_COMPLETION_H

#include "query/cli.h"

/* Its line in `vigil --help`, after the name. */
#define COMPLETION_SYNOPSIS "bash|zsh   a shell completion script (commands, options, fields)"

/* argv[0] is "completion". Prints the script for argv[1] (bash or zsh) made from table
 * (ending with NULL) on stdout. Returns CLI_OK, CLI_USAGE (said on stderr) or CLI_FAIL. */
int completion_main(const struct cli_cmd *const *table, int argc, char **argv);

#endif
