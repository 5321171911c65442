/* tests/fuzz/fuzz_drill.c: arbitrary bytes as a fire drill scenario (query/drill_scn.c
 * over common/cfg_yaml.c), then every template of a scenario that loads rendered, and
 * the random values it made written out and read back. Rejecting is fine; crashing,
 * leaking, a scenario along with an error, or an error without a message is not. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/drill.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span in = { data, size };
    struct drill_scn *s = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    int rc = drill_scn_load_mem("fuzz.yaml", in, &s, &eb);
    if ((rc == 0) != (s != NULL) || (rc != 0 && errbuf_msg(&eb)[0] == 0)) {
        abort();
    }
    if (s) {
        struct drill_vars v = { 0 };
        struct drill_vars back = { 0 };
        struct buf out;
        buf_init(&out, 64u << 20);
        for (size_t i = 0; i < s->nsteps; i++) {
            buf_reset(&out);
            /* the loader checked every template: rendering must succeed */
            if (drill_render(s->steps[i].events, "drill-20261207T124512Z-3fa9c1d2",
                             1796647238457351783LL, &v, &out, NULL) < 0 ||
                s->steps[i].nexpect > DRILL_MAX_EXPECT) {
                abort();
            }
        }
        buf_reset(&out);
        if (drill_vars_format(&v, &out) < 0 || drill_vars_parse(buf_span(&out), &back) < 0 ||
            back.n != v.n) {
            abort();
        }
        for (size_t i = 0; i < v.n; i++) {
            if (strcmp(v.key[i], back.key[i]) != 0 || strcmp(v.val[i], back.val[i]) != 0) {
                abort();
            }
        }
        drill_vars_release(&back);
        drill_vars_release(&v);
        buf_release(&out);
    }
    drill_scn_free(s);
    return 0;
}
