/* tests/fuzz/fuzz_retry_after.c: the Retry-After header of a receiver's answer
 * (forwarders/retry.c) over arbitrary bytes: it parses to a delay that is never negative
 * and never more than a year, or is refused. Crashing or reading past the bytes is not
 * fine. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "forwarders/fwd_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: a read past the end is the sanitizer's to catch */
    uint8_t *copy = malloc(size ? size : 1);
    int64_t d = -1;

    memcpy(copy, data, size);
    if (fwd_retry_after_parse((struct span){ copy, size }, 1700000000LL * VG_NS_PER_SEC, &d) == 0) {
        assert(d >= 0);
        assert(d <= (2201LL - 1970) * 366 * 86400 * VG_NS_PER_SEC);
    }
    free(copy);
    return 0;
}
