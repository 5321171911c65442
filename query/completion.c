/* query/completion.c: `vigil completion bash|zsh` prints a shell completion script made
 * from the CLI's own tables (issue 13 item 8), so it never lags behind the commands:
 *
 * - commands and their one-line descriptions: the command table (query/commands.c);
 * - each command's options: the shared ones it takes (cli_cmd.takes) and its own table;
 * - subcommands: the first word of a synopsis written a|b|c ("add|list|release");
 * - an option's values when its synopsis or usage writes them "--opt a|b|c"
 *   (send --format ndjson|falco|...), the formats for --format, field names (the
 *   registry of schemas/record.h, and raw.) for --by, --fields and, as field=, for the
 *   FILTER words of commands that take one; directories for --store, files for -c.
 *
 * It is no row of the command table (main.c runs it with the table), so that the
 * library has no call cycle: completion reads the table, a row would point back.
 * Pure output on stdout; the CLI's only thread. */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/completion.h"

#include "query/output.h"
#include "schemas/record.h"

#define COMP_MAX_OPTS 64
#define COMP_MAX_WORD 64

struct comp_opt {
    char name[COMP_MAX_WORD];
    bool value;       /* takes a value */
    char values[256]; /* its values, space-separated ("" unknown) */
};

struct comp_cmd {
    const struct cli_cmd *c;
    struct comp_opt opts[COMP_MAX_OPTS];
    size_t nopts;
    char subs[256]; /* subcommands, space-separated */
    bool filter;    /* takes FILTER words */
};

static struct comp_opt *opt_add(struct comp_cmd *cc, const char *name, bool value)
{
    for (size_t i = 0; i < cc->nopts; i++) {
        if (strcmp(cc->opts[i].name, name) == 0) {
            return &cc->opts[i];
        }
    }
    if (cc->nopts == COMP_MAX_OPTS || strlen(name) >= COMP_MAX_WORD) {
        return NULL;
    }
    struct comp_opt *o = &cc->opts[cc->nopts++];
    snprintf(o->name, sizeof(o->name), "%s", name);
    o->value = value;
    o->values[0] = 0;
    return o;
}

/* "a|b|c" (lower-case words joined by '|', brackets around allowed): true, and out gets
 * the words (out is scratch either way). */
static bool alternatives(const char *w, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    bool bar = false;

    while (n > 0 && (*w == '[' || *w == '(')) {
        w++;
        n--;
    }
    while (n > 0 && (w[n - 1] == ']' || w[n - 1] == ')')) {
        n--;
    }
    if (n == 0 || k + n + 1 >= cap) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = w[i];
        if (ch == '|') {
            if (i == 0 || i + 1 == n || w[i - 1] == '|') {
                return false;
            }
            bar = true;
            ch = ' ';
        } else if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '-')) {
            return false;
        }
        out[k++] = ch;
    }
    out[k] = 0;
    return bar;
}

/* Reads "--opt a|b|c" pairs and "-X" options out of text (a synopsis or a usage). */
static void scan_text(struct comp_cmd *cc, const char *text)
{
    const char *p = text;

    while (*p) {
        while (*p && (isspace((unsigned char)*p) || *p == '[')) {
            p++;
        }
        const char *w = p;
        while (*p && !isspace((unsigned char)*p)) {
            p++;
        }
        size_t n = (size_t)(p - w);
        if (n < 3 || w[0] != '-' || w[1] != '-' || !islower((unsigned char)w[2])) {
            continue;
        }
        char name[COMP_MAX_WORD];
        size_t k = 0;
        while (k < n && k + 1 < sizeof(name) && (islower((unsigned char)w[k]) || w[k] == '-')) {
            name[k] = w[k];
            k++;
        }
        name[k] = 0;
        struct comp_opt *o = NULL;
        for (size_t i = 0; i < cc->nopts; i++) {
            if (strcmp(cc->opts[i].name, name) == 0) {
                o = &cc->opts[i];
            }
        }
        if (!o || !o->value || o->values[0]) {
            continue;
        }
        const char *v = p;
        while (*v == ' ') {
            v++;
        }
        const char *ve = v;
        while (*ve && !isspace((unsigned char)*ve)) {
            ve++;
        }
        char vals[sizeof(o->values)];
        if (alternatives(v, (size_t)(ve - v), vals, sizeof(vals))) {
            memcpy(o->values, vals, sizeof(vals));
        }
    }
}

/* The lines of a usage that name options: the synopsis ("usage: ..." and the lines
 * under it, up to a blank one) and the lines that start with an option. Options they
 * name that the tables do not (a command that reads some itself, per subcommand) are
 * added: taking a value when the next word is a placeholder (FILE, N) or a|b. */
static void scan_usage(struct comp_cmd *cc, const char *usage)
{
    bool synopsis = false;

    const char *p = usage;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *t = p;
        while (t < p + n && *t == ' ') {
            t++;
        }
        if (strncmp(p, "usage:", 6) == 0) {
            synopsis = true;
        } else if (t == p + n) {
            synopsis = false;
        }
        bool opt_line = t + 2 < p + n && t[0] == '-' && t[1] == '-';
        for (const char *w = p; (synopsis || opt_line) && w + 2 < p + n; w++) {
            if (w[0] != '-' || w[1] != '-' || !islower((unsigned char)w[2]) ||
                (w > p && (isalnum((unsigned char)w[-1]) || w[-1] == '-'))) {
                continue;
            }
            char name[COMP_MAX_WORD];
            size_t k = 0;
            while (w + k < p + n && k + 1 < sizeof(name) &&
                   (islower((unsigned char)w[k]) || w[k] == '-')) {
                name[k] = w[k];
                k++;
            }
            name[k] = 0;
            const char *v = w + k;
            while (v < p + n && *v == ' ') {
                v++;
            }
            const char *ve = v;
            while (ve < p + n && *ve != ' ' && *ve != ']') {
                ve++;
            }
            char vals[256] = "";
            bool alt = alternatives(v, (size_t)(ve - v), vals, sizeof(vals));
            bool value = alt || (v < ve && isupper((unsigned char)*v));
            bool known = false;
            for (size_t i = 0; i < cc->nopts; i++) {
                known = known || strcmp(cc->opts[i].name, name) == 0;
            }
            if (!known) {
                struct comp_opt *o = opt_add(cc, name, value);
                if (o && alt) {
                    snprintf(o->values, sizeof(o->values), "%s", vals);
                }
            }
            w += k - 1;
        }
        p = nl ? nl + 1 : NULL;
    }
}

static void build(struct comp_cmd *cc, const struct cli_cmd *c)
{
    static const char *const formats = "table json ndjson csv";

    memset(cc, 0, sizeof(*cc));
    cc->c = c;
    if (c->takes & CLI_STORE) {
        opt_add(cc, "-c", true);
        opt_add(cc, "--config", true);
        opt_add(cc, "--store", true);
    }
    if (c->takes & CLI_TIME) {
        opt_add(cc, "--since", true);
        opt_add(cc, "--until", true);
    }
    if (c->takes & CLI_FORMAT) {
        struct comp_opt *o = opt_add(cc, "--format", true);
        if (o) {
            snprintf(o->values, sizeof(o->values), "%s", formats);
        }
    }
    if (c->takes & CLI_LIMIT) {
        opt_add(cc, "--limit", true);
    }
    for (const struct cli_opt *o = c->opts; o && o->name; o++) {
        opt_add(cc, o->name, o->kind != CLI_FLAG);
        if (o->alias) {
            opt_add(cc, o->alias, o->kind != CLI_FLAG);
        }
    }
    opt_add(cc, "--help", false);
    /* Subcommands: the synopsis's first word, when it reads a|b|c. */
    const char *s = c->synopsis;
    const char *e = s;
    while (*e && !isspace((unsigned char)*e)) {
        e++;
    }
    if (!alternatives(s, (size_t)(e - s), cc->subs, sizeof(cc->subs))) {
        cc->subs[0] = 0;
    }
    /* Values written in the synopsis and the usage ("--codec zstd|lz4hc"). */
    scan_text(cc, c->synopsis);
    char *usage = NULL;
    size_t ulen = 0;
    FILE *m = open_memstream(&usage, &ulen);
    if (m) {
        c->usage(m);
        fclose(m);
        scan_text(cc, usage);
        cc->filter = strstr(usage, "FILTER") != NULL;
        scan_usage(cc, usage);
    }
    free(usage);
    cc->filter = cc->filter || strstr(c->synopsis, "FILTER") != NULL;
}

/* Options that take field names (comma-separated lists). */
static bool field_list_opt(const char *name)
{
    return strcmp(name, "--by") == 0 || strcmp(name, "--fields") == 0;
}

static void print_fields(FILE *f)
{
    for (int i = 0; i < VG_F_COUNT; i++) {
        fprintf(f, "%s%s", i ? " " : "", vg_field_name((enum vg_field)i));
    }
    fputs(" raw.", f);
}

static void print_opts(FILE *f, const struct comp_cmd *cc)
{
    for (size_t i = 0; i < cc->nopts; i++) {
        fprintf(f, "%s%s", i ? " " : "", cc->opts[i].name);
    }
}

/* The value cases both shells share: "cmd:--opt)" patterns, by kind. */
enum vkind { VK_DIR, VK_FILE, VK_WORDS, VK_FIELDS, VK_AGG, VK_ANY };

static enum vkind value_kind(const struct comp_opt *o)
{
    if (strcmp(o->name, "--store") == 0) {
        return VK_DIR;
    }
    if (o->values[0]) {
        return VK_WORDS;
    }
    if (field_list_opt(o->name)) {
        return VK_FIELDS;
    }
    if (strcmp(o->name, "--agg") == 0) {
        return VK_AGG;
    }
    if (strcmp(o->name, "-c") == 0 || strcmp(o->name, "--config") == 0 ||
        strcmp(o->name, "--key") == 0 || strcmp(o->name, "--map") == 0 ||
        strcmp(o->name, "--ca") == 0 || strcmp(o->name, "--cert") == 0 ||
        strcmp(o->name, "--out") == 0 || strcmp(o->name, "-o") == 0) {
        return VK_FILE;
    }
    return VK_ANY;
}

static const char *const agg_words = "count dc( min(ts) max(ts) min(seq) max(seq)";

static void bash_script(FILE *f, const struct comp_cmd *cmds, size_t n)
{
    fputs("# bash completion for vigil, made by `vigil completion bash` from the CLI's own\n"
          "# tables. Load it with: source <(vigil completion bash)\n"
          "_vigil() {\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    local cmd=${COMP_WORDS[1]} words=\"\" pre=\"\"\n"
          "    local fields=\"",
          f);
    print_fields(f);
    fputs("\"\n"
          "    if (( COMP_CWORD == 1 )); then\n"
          "        COMPREPLY=( $(compgen -W \"",
          f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s ", cmds[i].c->name);
    }
    fputs("completion --help --version\" -- \"$cur\") )\n"
          "        return\n"
          "    fi\n"
          "    case \"$cmd:$prev\" in\n",
          f);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < cmds[i].nopts; k++) {
            const struct comp_opt *o = &cmds[i].opts[k];
            if (!o->value) {
                continue;
            }
            fprintf(f, "    %s:%s)\n", cmds[i].c->name, o->name);
            switch (value_kind(o)) {
            case VK_DIR:
                fputs("        COMPREPLY=( $(compgen -d -- \"$cur\") ); return ;;\n", f);
                break;
            case VK_FILE:
                fputs("        COMPREPLY=( $(compgen -f -- \"$cur\") ); return ;;\n", f);
                break;
            case VK_WORDS:
                fprintf(f, "        COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ); return ;;\n",
                        o->values);
                break;
            case VK_FIELDS:
            case VK_AGG:
                fprintf(f,
                        "        [[ $cur == *,* ]] && pre=${cur%%,*},\n"
                        "        COMPREPLY=( $(compgen -P \"$pre\" -W \"%s\" -- \"${cur##*,}\") )\n"
                        "        compopt -o nospace 2>/dev/null; return ;;\n",
                        value_kind(o) == VK_FIELDS ? "$fields" : agg_words);
                break;
            case VK_ANY:
                fputs("        return ;;\n", f);
                break;
            }
        }
    }
    fputs("    completion:*)\n"
          "        (( COMP_CWORD == 2 )) && COMPREPLY=( $(compgen -W \"bash zsh\" -- \"$cur\") )\n"
          "        return ;;\n"
          "    esac\n"
          "    case \"$cmd\" in\n",
          f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "    %s) words=\"", cmds[i].c->name);
        print_opts(f, &cmds[i]);
        fputs("\"\n", f);
        if (cmds[i].subs[0]) {
            fprintf(f, "        (( COMP_CWORD == 2 )) && [[ $cur != -* ]] && words=\"%s\"\n",
                    cmds[i].subs);
        } else if (cmds[i].filter) {
            fputs("        if [[ $cur != -* ]]; then\n"
                  "            COMPREPLY=( $(compgen -S = -W \"$fields\" -- \"$cur\") )\n"
                  "            compopt -o nospace 2>/dev/null; return\n"
                  "        fi\n",
                  f);
        }
        fputs("        ;;\n", f);
    }
    fputs("    esac\n"
          "    if [[ -n $words && ( $cur == -* || $COMP_CWORD == 2 ) ]]; then\n"
          "        COMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") )\n"
          "    else\n"
          "        COMPREPLY=( $(compgen -f -- \"$cur\") )\n"
          "    fi\n"
          "}\n"
          "complete -F _vigil vigil\n",
          f);
}

/* zsh: one quoted word of a _describe spec, "name:description". */
static void zsh_describe(FILE *f, const char *name, const char *desc)
{
    fprintf(f, "        '%s:", name);
    for (const char *p = desc; *p; p++) {
        if (*p == '\'') {
            fputs("'\\''", f);
        } else if (*p == ':') {
            fputs("\\:", f);
        } else {
            fputc(*p, f);
        }
    }
    fputs("'\n", f);
}

static void zsh_script(FILE *f, const struct comp_cmd *cmds, size_t n)
{
    fputs("#compdef vigil\n"
          "# zsh completion for vigil, made by `vigil completion zsh` from the CLI's own\n"
          "# tables. Save it as _vigil in a directory of $fpath, or after compinit:\n"
          "# source <(vigil completion zsh)\n"
          "_vigil() {\n"
          "    local cur=${words[CURRENT]} prev=${words[CURRENT-1]} cmd=${words[2]}\n"
          "    local -a fields opts subs\n"
          "    fields=(",
          f);
    print_fields(f);
    fputs(")\n"
          "    if (( CURRENT == 2 )); then\n"
          "        local -a cmds\n"
          "        cmds=(\n",
          f);
    for (size_t i = 0; i < n; i++) {
        zsh_describe(f, cmds[i].c->name, cmds[i].c->synopsis);
    }
    zsh_describe(f, "completion", COMPLETION_SYNOPSIS);
    fputs("        )\n"
          "        _describe -t commands 'vigil command' cmds\n"
          "        return\n"
          "    fi\n"
          "    case \"$cmd:$prev\" in\n",
          f);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < cmds[i].nopts; k++) {
            const struct comp_opt *o = &cmds[i].opts[k];
            if (!o->value) {
                continue;
            }
            fprintf(f, "    %s:%s)\n", cmds[i].c->name, o->name);
            switch (value_kind(o)) {
            case VK_DIR:
                fputs("        _files -/; return ;;\n", f);
                break;
            case VK_FILE:
                fputs("        _files; return ;;\n", f);
                break;
            case VK_WORDS:
                fprintf(f, "        compadd -- %s; return ;;\n", o->values);
                break;
            case VK_FIELDS:
            case VK_AGG:
                fprintf(f, "        compset -P '*,'; compadd -S ',' -q -- %s; return ;;\n",
                        value_kind(o) == VK_FIELDS ? "$fields" : agg_words);
                break;
            case VK_ANY:
                fputs("        return ;;\n", f);
                break;
            }
        }
    }
    fputs("    completion:*)\n"
          "        (( CURRENT == 3 )) && compadd -- bash zsh\n"
          "        return ;;\n"
          "    esac\n"
          "    case \"$cmd\" in\n",
          f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "    %s) opts=(", cmds[i].c->name);
        print_opts(f, &cmds[i]);
        fputs(")", f);
        if (cmds[i].subs[0]) {
            fprintf(f, "; subs=(%s)", cmds[i].subs);
        }
        fputs(" ;;\n", f);
    }
    fputs("    esac\n"
          "    if [[ $cur == -* ]]; then\n"
          "        compadd -- $opts\n"
          "    elif (( CURRENT == 3 && ${#subs} > 0 )); then\n"
          "        compadd -- $subs\n",
          f);
    fputs("    elif [[ \"", f);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].filter && !cmds[i].subs[0]) {
            fprintf(f, "%s%s", first ? " " : "", cmds[i].c->name);
            fputc(' ', f);
            first = false;
        }
    }
    fputs("\" == *\" $cmd \"* ]]; then\n"
          "        compadd -S '=' -q -- $fields\n"
          "    else\n"
          "        _files\n"
          "    fi\n"
          "}\n"
          "if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then\n"
          "    _vigil \"$@\"\n"
          "else\n"
          "    compdef _vigil vigil\n"
          "fi\n",
          f);
}

static void completion_usage(FILE *f)
{
    fprintf(f, "usage: vigil completion bash|zsh\n"
               "\n"
               "Prints a completion script for the shell (commands, their options and values,\n"
               "field names), made from vigil's own command tables:\n"
               "  bash: source <(vigil completion bash)   (or save it in\n"
               "        /usr/share/bash-completion/completions/vigil)\n"
               "  zsh:  source <(vigil completion zsh)    after compinit (or save it as _vigil\n"
               "        in a directory of $fpath)\n");
}

int completion_main(const struct cli_cmd *const *table, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            completion_usage(stdout);
            return CLI_OK;
        }
    }
    if (argc != 2 || (strcmp(argv[1], "bash") != 0 && strcmp(argv[1], "zsh") != 0)) {
        fprintf(stderr, "vigil completion: which shell: bash or zsh\n");
        completion_usage(stderr);
        return CLI_USAGE;
    }
    size_t n = 0;
    while (table[n]) {
        n++;
    }
    struct comp_cmd *cmds = calloc(n ? n : 1, sizeof(*cmds));
    if (!cmds) {
        return CLI_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        build(&cmds[i], table[i]);
    }
    if (strcmp(argv[1], "bash") == 0) {
        bash_script(stdout, cmds, n);
    } else {
        zsh_script(stdout, cmds, n);
    }
    free(cmds);
    errno = 0;
    int rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : errno ? -errno : -EIO;
    return cli_output_done("vigil completion", rc);
}
