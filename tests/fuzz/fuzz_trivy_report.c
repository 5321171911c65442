/* tests/fuzz/fuzz_trivy_report.c: the scanner report splitter over arbitrary input. The
 * bytes are read as JSON (json_to_mp, as the HTTPS listener and `vigil send` do) and, when
 * that fails, as msgpack. Every flat finding handed out must be one complete msgpack map
 * that map_event(MAP_TRIVY) maps or rejects cleanly, and whose record encodes; the count
 * returned must match the calls. Rejecting is fine; crashing, leaking or reading out of
 * bounds is not. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/json.h"
#include "common/mp.h"
#include "schemas/map.h"
#include "schemas/trivy_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    int calls;
    struct buf scratch;
    struct buf enc;
};

static int on_finding(void *arg, struct span f)
{
    struct seen *s = arg;
    struct rec r;

    s->calls++;
    assert(mp_value_len(f, f.n, MP_MAX_DEPTH + 8) == (ssize_t)f.n);
    buf_reset(&s->scratch);
    if (map_event(MAP_TRIVY, f, 0, "http", &r, &s->scratch, NULL) == 0) {
        buf_reset(&s->enc);
        int rc = rec_encode(&r, &s->enc);
        assert(rc == 0);
    }
    return s->calls == 5000 ? -1 : 0; /* a callback may stop the split */
}

static void split(struct span doc)
{
    struct seen s = { 0 };
    struct buf out;

    buf_init(&s.scratch, 1 << 16);
    buf_init(&s.enc, 1 << 24);
    buf_init(&out, 2 * doc.n + 65536);
    (void)trivy_report_layout(doc);
    int rc = trivy_report_split(doc, &out, on_finding, &s, NULL);
    assert(rc < 0 || rc == s.calls);
    assert(rc >= 0 || rc == -1 || s.calls == 0);
    buf_release(&out);
    buf_release(&s.scratch);
    buf_release(&s.enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span in = { data, size };
    struct buf mp;

    buf_init(&mp, 2 * size + 65536);
    if (json_to_mp(in, &mp, NULL, NULL) == 0) {
        split(buf_span(&mp));
    } else {
        split(in);
    }
    buf_release(&mp);
    return 0;
}
