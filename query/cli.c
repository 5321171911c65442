/* query/cli.c: the one argument parser of the vigil commands and what they share (see
 * cli.h). The CLI's only thread. */
#include "query/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/time.h"
#include "common/xalloc.h"

static bool is(const char *a, const char *name)
{
    return name && strcmp(a, name) == 0;
}

static const struct cli_opt *own_opt(const struct cli_cmd *c, const char *a)
{
    for (const struct cli_opt *o = c->opts; o && o->name; o++) {
        if (is(a, o->name) || is(a, o->alias)) {
            return o;
        }
    }
    return NULL;
}

static int bad_time(const struct cli_args *a, const char *opt, const char *v)
{
    fprintf(stderr,
            "vigil %s: %s: '%s' is not a time (RFC 3339, 15m, 2h, 7d, or a UTC clock time"
            " like 14:00)\n",
            a->cmd, opt, v);
    return CLI_USAGE;
}

/* --since and --until (README "Searching"): RFC 3339, an age (15m), or a clock time
 * (14:00, 14:00:30) in UTC, the time shown in every output. A clock time is on the date
 * of the other bound when that one is a date and time or an age, else today (UTC); when
 * both are clock times and until is not after since, until is on the next day
 * (--since 23:00 --until 01:00). */
static int parse_times(struct cli_args *a)
{
    const int64_t day = 86400 * VG_NS_PER_SEC;
    int64_t sc = 0;
    int64_t uc = 0;
    bool s_clock = a->since_arg && vg_clock_parse(span_str(a->since_arg), &sc) == 0;
    bool u_clock = a->until_arg && vg_clock_parse(span_str(a->until_arg), &uc) == 0;

    if (a->since_arg && !s_clock && vg_time_parse_arg(a->since_arg, a->now, &a->since) < 0) {
        return bad_time(a, "--since", a->since_arg);
    }
    if (a->until_arg && !u_clock && vg_time_parse_arg(a->until_arg, a->now, &a->until) < 0) {
        return bad_time(a, "--until", a->until_arg);
    }
    if (s_clock) {
        a->since = vg_day_start(a->until_arg && !u_clock ? a->until : a->now) + sc;
    }
    if (u_clock) {
        a->until = vg_day_start(a->since_arg && !s_clock ? a->since : a->now) + uc;
        if (s_clock && a->until <= a->since) {
            a->until += day;
        }
    }
    return CLI_OK;
}

/* The shared option a names, if c takes it: 1 consumed (with *i past its value), 0 not
 * shared, or CLI_USAGE (said). */
static int shared_opt(const struct cli_cmd *c, struct cli_args *a, int argc, char **argv, int *i)
{
    const char *o = argv[*i];
    const char **slot = NULL;

    if ((c->takes & CLI_STORE) && (is(o, "-c") || is(o, "--config"))) {
        slot = &a->config_path;
    } else if ((c->takes & CLI_STORE) && is(o, "--store")) {
        slot = &a->store_dir;
    } else if ((c->takes & CLI_TIME) && is(o, "--since")) {
        slot = &a->since_arg;
    } else if ((c->takes & CLI_TIME) && is(o, "--until")) {
        slot = &a->until_arg;
    } else if ((c->takes & CLI_FORMAT) && is(o, "--format")) {
        slot = &a->format_arg;
    } else if (!((c->takes & CLI_LIMIT) && is(o, "--limit"))) {
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "vigil %s: %s needs a value\n", a->cmd, o);
        return CLI_USAGE;
    }
    const char *v = argv[++*i];
    if (slot) {
        *slot = v;
    } else if (parse_u64(span_str(v), UINT32_MAX, &a->limit) < 0) {
        fprintf(stderr, "vigil %s: --limit: expected a number, got '%s'\n", a->cmd, v);
        return CLI_USAGE;
    } else {
        a->has_limit = true;
    }
    return 1;
}

static int parse(const struct cli_cmd *c, struct cli_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int rc = shared_opt(c, a, argc, argv, &i);
        if (rc == CLI_USAGE) {
            return rc;
        }
        if (rc == 1) {
            continue;
        }
        const struct cli_opt *o = own_opt(c, arg);
        if (!o) {
            if (strncmp(arg, "--", 2) == 0 && arg[2] != 0) {
                fprintf(stderr, "vigil %s: unknown option '%s'\n", a->cmd, arg);
                c->usage(stderr);
                return CLI_USAGE;
            }
            a->words[a->nwords++] = argv[i];
            continue;
        }
        char *slot = (char *)a->own + o->off;
        if (o->kind == CLI_FLAG) {
            *(bool *)(void *)slot = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vigil %s: %s needs a value\n", a->cmd, arg);
            return CLI_USAGE;
        }
        const char *v = argv[++i];
        if (o->kind == CLI_STR) {
            *(const char **)(void *)slot = v;
            continue;
        }
        if (o->kind == CLI_LIST) {
            struct cli_list *l = (struct cli_list *)(void *)slot;
            if (l->n == CLI_LIST_MAX) {
                fprintf(stderr, "vigil %s: at most %d %s\n", a->cmd, CLI_LIST_MAX, arg);
                return CLI_USAGE;
            }
            l->v[l->n++] = v;
            continue;
        }
        uint64_t n;
        if (parse_u64(span_str(v), o->max, &n) < 0 || n < o->min) {
            fprintf(stderr, "vigil %s: %s: expected %" PRIu64 " to %" PRIu64 ", got '%s'\n", a->cmd,
                    arg, o->min, o->max, v);
            return CLI_USAGE;
        }
        *(uint64_t *)(void *)slot = n;
    }
    int rc = parse_times(a);
    if (rc != CLI_OK) {
        return rc;
    }
    if (a->format_arg && out_format_parse(a->format_arg, &a->format) < 0) {
        fprintf(stderr, "vigil %s: --format: expected table, json, ndjson or csv, got '%s'\n",
                a->cmd, a->format_arg);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_run(const struct cli_cmd *c, int argc, char **argv, const char *argv0)
{
    struct cli_args a = {
        .cmd = c->name,
        .argv0 = argv0,
        .now = vg_now_ns(),
        .since = INT64_MIN,
        .until = INT64_MAX,
        .format = OUT_TABLE,
    };
    int rc;

    for (int i = 1; i < argc; i++) {
        if (is(argv[i], "-h") || is(argv[i], "--help")) {
            c->usage(stdout);
            return CLI_OK;
        }
    }
    a.words = xcalloc((size_t)argc + 1, sizeof(*a.words));
    if (c->own_size) {
        a.own = xcalloc(1, c->own_size);
        if (c->own_init) {
            c->own_init(a.own);
        }
    }
    rc = parse(c, &a, argc, argv);
    if (rc == CLI_OK) {
        rc = c->run(&a);
    }
    config_free(a.cfg);
    free(a.own);
    free(a.words);
    return rc;
}

int cli_load(struct cli_args *a)
{
    struct errbuf eb;
    int rc;

    errbuf_clear(&eb);
    if (a->config_path) {
        rc = config_load(a->config_path, &a->cfg, &eb);
    } else {
        rc = config_defaults(&a->cfg);
        if (rc < 0) {
            errbuf_set(&eb, "cannot build the default configuration");
        }
    }
    if (rc < 0) {
        fprintf(stderr, "vigil %s: %s\n", a->cmd, errbuf_msg(&eb));
        return CLI_USAGE;
    }
    return CLI_OK;
}

const char *cli_store_dir(const struct cli_args *a)
{
    if (a->store_dir) {
        return a->store_dir;
    }
    return a->cfg ? a->cfg->store.path : "/var/lib/vigil";
}

int cli_filter(struct cli_args *a, bool narrow, struct filter **f, char **text)
{
    struct errbuf eb;
    int col = 0;

    *f = NULL;
    *text = filter_join_args(a->nwords, a->words);
    errbuf_clear(&eb);
    if (filter_parse(*text, a->now, f, &col, &eb) < 0) {
        fprintf(stderr, "vigil %s: %s\n", a->cmd, errbuf_msg(&eb));
        filter_error_caret(*text, col, stderr);
        free(*text);
        *text = NULL;
        return CLI_USAGE;
    }
    if (narrow) {
        int64_t fs;
        int64_t fu;
        filter_time_bounds(*f, &fs, &fu);
        a->since = fs > a->since ? fs : a->since;
        a->until = fu < a->until ? fu : a->until;
    }
    return CLI_OK;
}

int cli_terminal_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
        return ws.ws_col;
    }
    return 0;
}

bool cli_progress_enabled(void)
{
    return isatty(STDERR_FILENO) && getenv("CI") == NULL;
}

int cli_output_done(const char *prog, int rc)
{
    if (rc >= 0 || rc == -EPIPE) {
        return CLI_OK;
    }
    fprintf(stderr, "%s: cannot write the output: %s\n", prog, vg_strerror(rc));
    return CLI_FAIL;
}

void cli_user(char *out, size_t cap)
{
    struct passwd pw;
    struct passwd *res = NULL;
    char buf[4096];
    uid_t uid = geteuid();
    const char *sudo = getenv("SUDO_USER");

    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || !res) {
        snprintf(out, cap, "uid %u", (unsigned)uid);
    } else if (uid == 0 && sudo && *sudo) {
        snprintf(out, cap, "%s (uid 0, sudo by %s)", pw.pw_name, sudo);
    } else {
        snprintf(out, cap, "%s (uid %u)", pw.pw_name, (unsigned)uid);
    }
}
