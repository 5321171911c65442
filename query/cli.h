/* query/cli.h: what every vigil command shares: -c/--store resolution, the exit codes,
 * progress on a terminal. */
#ifndef VG_QUERY_CLI_H
#define VG_QUERY_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/errbuf.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

struct cli_common {
    const char *config_path; /* -c */
    const char *store_dir;   /* --store */
    struct vg_config *cfg;   /* loaded from -c, or defaults */
};

/* Takes -c FILE / --config FILE / --store DIR at argv[*i] (advancing *i). Returns 1 if
 * consumed, 0 if argv[*i] is not a common option, -1 on a missing value (printed). */
int cli_common_arg(struct cli_common *cc, int argc, char **argv, int *i);
/* Loads the config (or defaults) and resolves the store directory. Prints the error
 * and returns CLI_USAGE on failure. */
int cli_common_load(struct cli_common *cc, const char *cmd);
const char *cli_store_dir(const struct cli_common *cc);
void cli_common_release(struct cli_common *cc);

/* True when progress lines should be drawn (stderr is a terminal). */
bool cli_progress_enabled(void);

int cmd_pki(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_stats(int argc, char **argv);   /* query/stats.c */
int cmd_compact(int argc, char **argv); /* query/compact_cmd.c */
int cmd_rules(int argc, char **argv);   /* query/rules_cmd.c */
int cmd_hunt(int argc, char **argv);    /* query/hunt.c */
int cmd_demo(int argc, char **argv, const char *argv0);
int cmd_verify(int argc, char **argv); /* query/verify.c */
int cmd_hold(int argc, char **argv);   /* query/hold.c */
int cmd_alerts(int argc, char **argv); /* query/alerts.c */

#endif
