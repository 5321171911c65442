/* query/cli.h: what every vigil command shares: the command table's row, one argument
 * parser for the shared options (-c/--config, --store, --since, --until, --format,
 * --limit) and each command's own, the config and store resolution, the exit codes,
 * progress on a terminal.
 *
 * A command is one file defining a const struct cli_cmd and one row in the table of
 * query/commands.c: its name, its line in `vigil --help`, the shared options it takes,
 * its own options as a table, its usage and its run function, which gets the parsed
 * struct cli_args. */
#ifndef VG_QUERY_CLI_H
#define VG_QUERY_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "common/errbuf.h"
#include "query/filter.h"
#include "query/output.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* The shared options a command takes (struct cli_cmd.takes). */
enum {
    CLI_STORE = 1u << 0,  /* -c FILE, --config FILE, --store DIR */
    CLI_TIME = 1u << 1,   /* --since T, --until T (RFC 3339 or relative: 15m, 2h, 7d) */
    CLI_FORMAT = 1u << 2, /* --format table|json|ndjson|csv (default table) */
    CLI_LIMIT = 1u << 3,  /* --limit N */
};

/* A command's own option, stored at offset off of the command's own options struct
 * (struct cli_cmd.own_size; cli_args.own). */
enum cli_opt_kind {
    CLI_FLAG, /* no value: a bool set to true */
    CLI_STR,  /* a const char * set to the value */
    CLI_U64,  /* a uint64_t set to the value, a number in [min, max] */
    CLI_LIST, /* a struct cli_list the value is added to; the option may be repeated */
};
#define CLI_LIST_MAX 32
struct cli_list {
    const char *v[CLI_LIST_MAX];
    size_t n;
};
struct cli_opt {
    const char *name;  /* "--by" */
    const char *alias; /* "-q", or NULL */
    enum cli_opt_kind kind;
    size_t off;   /* CLI_OFF(struct, field) */
    uint64_t min; /* CLI_U64 */
    uint64_t max;
};
#define CLI_OFF(type, field) offsetof(type, field)

/* A command's arguments once parsed. */
struct cli_args {
    const char *cmd;   /* its name, for messages: "vigil <cmd>: ..." */
    const char *argv0; /* the program as invoked */
    int64_t now;       /* the clock relative times were read against */
    /* CLI_STORE */
    const char *config_path; /* -c, or NULL */
    const char *store_dir;   /* --store, or NULL */
    struct vg_config *cfg;   /* cli_load: from -c, or the defaults */
    /* CLI_TIME: INT64_MIN / INT64_MAX when not given; the text as given, or NULL */
    int64_t since;
    int64_t until;
    const char *since_arg;
    const char *until_arg;
    /* CLI_FORMAT */
    enum out_format format;
    const char *format_arg; /* as given, or NULL */
    /* CLI_LIMIT */
    bool has_limit;
    uint64_t limit;
    /* everything else, in order (a lone "-" and words not starting with "--" included) */
    char **words;
    int nwords;
    void *own; /* the command's own options (own_size bytes, own_init'ed), or NULL */
};

struct cli_cmd {
    const char *name;
    const char *synopsis;        /* its line in `vigil --help`, after the name */
    unsigned takes;              /* CLI_STORE | CLI_TIME | ... */
    const struct cli_opt *opts;  /* its own options, ending with { NULL }; or NULL */
    size_t own_size;             /* the struct they are stored in */
    void (*own_init)(void *own); /* its defaults (zeroed before), or NULL */
    void (*usage)(FILE *f);
    int (*run)(struct cli_args *a);
};

/* The command table (query/commands.c), in `vigil --help` order, ending with NULL, and
 * the command called name in it, or NULL. The commands use cli.c; cli.c knows none of
 * them. */
extern const struct cli_cmd *const cli_commands[];
const struct cli_cmd *cli_find(const char *name);

/* Parses argv (argv[0] is the command's name) into a and c's own options, then runs
 * c->run(a). -h/--help prints c's usage to stdout (CLI_OK). A missing value, an unknown
 * option, a number out of range, a bad time or format is said on stderr ("vigil <cmd>:
 * ...") and returns CLI_USAGE. Returns c->run's result, after releasing a. */
int cli_run(const struct cli_cmd *c, int argc, char **argv, const char *argv0);

/* Loads the config (-c, or the defaults) into a->cfg. Prints the error and returns
 * CLI_USAGE on failure. */
int cli_load(struct cli_args *a);
/* --store, else the config's store.path, else /var/lib/vigil. */
const char *cli_store_dir(const struct cli_args *a);

/* Parses the words as a FILTER (relative times against a->now); a bad one is said on
 * stderr with a caret under the offending token and returns CLI_USAGE. *text (the
 * filter as written) and *f are the caller's (free, filter_free). With narrow, the
 * filter's own time bounds (ts>=...) narrow a->since and a->until. */
int cli_filter(struct cli_args *a, bool narrow, struct filter **f, char **text);

/* The columns of the terminal stdout is, or 0 when it is not one. */
int cli_terminal_width(void);

/* True when progress lines should be drawn (stderr is a terminal). */
bool cli_progress_enabled(void);

/* How a command ends after printing to stdout (rc: the last out_event / out_finish
 * result, or 0): a reader that went away (EPIPE: `| head`) ends it quietly with CLI_OK,
 * any other write error is said on stderr ("<prog>: cannot write the output: ...") and
 * gives CLI_FAIL. SIGPIPE is ignored (main.c), so writes fail with EPIPE instead. */
int cli_output_done(const char *prog, int rc);

/* Who runs the command, for the record (holds, export bundles): "alice (uid 1000)", or
 * "root (uid 0, sudo by alice)". */
void cli_user(char *out, size_t cap);

#endif
