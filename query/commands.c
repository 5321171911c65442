/* query/commands.c: the vigil command table, in `vigil --help` order. A command is a file
 * defining its struct cli_cmd (query/cli.h) and a row here. */
#include "query/cli.h"

#include <string.h>

extern const struct cli_cmd cmd_search;
extern const struct cli_cmd cmd_stats;
extern const struct cli_cmd cmd_timeline;
extern const struct cli_cmd cmd_sql;
extern const struct cli_cmd cmd_tail;
extern const struct cli_cmd cmd_explain;
extern const struct cli_cmd cmd_compact;
extern const struct cli_cmd cmd_send;
extern const struct cli_cmd cmd_pki;
extern const struct cli_cmd cmd_rules;
extern const struct cli_cmd cmd_hunt;
extern const struct cli_cmd cmd_verify;
extern const struct cli_cmd cmd_export;
extern const struct cli_cmd cmd_hold;
extern const struct cli_cmd cmd_alerts;
extern const struct cli_cmd cmd_demo;
extern const struct cli_cmd cmd_drill;
extern const struct cli_cmd cmd_cluster;

const struct cli_cmd *const cli_commands[] = {
    &cmd_search,  /* search.c */
    &cmd_stats,   /* stats.c */
    &cmd_timeline, /* timeline.c */
    &cmd_sql,     /* sql.c */
    &cmd_tail,    /* tail.c */
    &cmd_explain, /* explain.c */
    &cmd_compact, /* compact_cmd.c */
    &cmd_send,    /* send_cmd.c */
    &cmd_pki,     /* pki_cmd.c */
    &cmd_rules,   /* rules_cmd.c */
    &cmd_hunt,    /* hunt.c */
    &cmd_export,  /* export.c */
    &cmd_verify,  /* verify.c */
    &cmd_hold,    /* hold.c */
    &cmd_alerts,  /* alerts.c */
    &cmd_drill,   /* drill.c */
    &cmd_cluster, /* cluster_cmd.c */
    &cmd_demo,    /* demo.c */
    NULL,
};

const struct cli_cmd *cli_find(const char *name)
{
    for (size_t i = 0; cli_commands[i]; i++) {
        if (strcmp(cli_commands[i]->name, name) == 0) {
            return cli_commands[i];
        }
    }
    return NULL;
}
