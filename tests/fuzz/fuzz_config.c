/* tests/fuzz/fuzz_config.c: arbitrary bytes as vigil.yaml (common/config.c over
 * common/cfg_yaml.c). Rejecting is fine; crashing, leaking or returning a struct along
 * with an error is not. base_dir names no real directory, so relative file names never
 * resolve to files; absolute ones may, which is fine. */
#include <stdint.h>
#include <stdlib.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span in = { data, size };
    struct vg_config *c = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    int rc = config_load_mem("fuzz.yaml", in, "/nonexistent-vigil-fuzz", &c, &eb);
    if ((rc == 0) != (c != NULL) || (rc != 0 && errbuf_msg(&eb)[0] == 0)) {
        abort();
    }
    config_free(c);
    return 0;
}
