/* query/cli.c: option handling shared by the vigil commands. */
#include "query/cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_common_arg(struct cli_common *cc, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **slot = NULL;

    if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
        slot = &cc->config_path;
    } else if (strcmp(a, "--store") == 0) {
        slot = &cc->store_dir;
    } else {
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "vigil: %s needs a value\n", a);
        return -1;
    }
    *slot = argv[++*i];
    return 1;
}

int cli_common_load(struct cli_common *cc, const char *cmd)
{
    struct errbuf eb;
    int rc;

    errbuf_clear(&eb);
    if (cc->config_path) {
        rc = config_load(cc->config_path, &cc->cfg, &eb);
    } else {
        rc = config_defaults(&cc->cfg);
        if (rc < 0) {
            errbuf_set(&eb, "cannot build the default configuration");
        }
    }
    if (rc < 0) {
        fprintf(stderr, "vigil %s: %s\n", cmd, errbuf_msg(&eb));
        return CLI_USAGE;
    }
    return CLI_OK;
}

const char *cli_store_dir(const struct cli_common *cc)
{
    if (cc->store_dir) {
        return cc->store_dir;
    }
    return cc->cfg ? cc->cfg->store.path : "/var/lib/vigil";
}

void cli_common_release(struct cli_common *cc)
{
    config_free(cc->cfg);
    cc->cfg = NULL;
}

bool cli_progress_enabled(void)
{
    return isatty(STDERR_FILENO) && getenv("CI") == NULL;
}
