/* tests/fuzz/fuzz_bundle.c: an evidence bundle (schemas/bundle.md) from arbitrary bytes:
 * the tar reader, the manifest (JSON), the seal sequence entries, the public keys, the
 * segment images (walked by the store's reader) and events.ndjson line by line. Any
 * answer is fine (a bundle that verifies, one that does not, one that cannot be read);
 * a crash, a leak or an answer that contradicts its own figures is not. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "query/bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checked in every build, unlike assert(). */
#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct span tar = { data, size };
    struct bundle_summary sum;
    struct errbuf eb;
    char *text = NULL;
    size_t len = 0;
    FILE *report = open_memstream(&text, &len);

    errbuf_clear(&eb);
    int rc = bundle_verify_mem(tar, NULL, report, &sum, &eb);
    if (report) {
        fclose(report);
    }
    CHECK(rc == 0 || rc < 0);
    CHECK(rc != 0 || sum.problems == 0);
    CHECK(rc != VG_ECORRUPT || sum.problems > 0);
    free(text);
    return 0;
}
