/* tests/fuzz/fuzz_filter.c: arbitrary text to filter_parse. The input up to its first
 * NUL is the filter; bytes after it are a raw msgpack value (likely malformed) for one
 * more record, so matching reads hostile stored bytes too. A filter that parses is
 * matched against fixed records, described and bounded; an error must carry a column
 * inside the text. The same text, split at newlines, goes through filter_join_args.
 * Finally a record carrying the text in its fields is printed in every output format
 * (to /dev/null): hostile text must not break the table. Its raw is left out: turning
 * raw msgpack into JSON is common/json.c's mp_to_json, fuzzed with that module. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "query/filter.h"
#include "query/output.h"
#include "schemas/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checked in every build, unlike assert(). */
#define CHECK(c) ((c) ? (void)0 : abort())

#define NOW_NS (1714564800LL * 1000000000LL)

static const char *const raw_docs[] = {
    "{\"rule\":\"Terminal shell in container\",\"priority\":\"Notice\",\"tags\":[\"shell\"],"
    "\"output_fields\":{\"proc.cmdline\":\"bash -i\",\"k8s.pod.name\":\"nginx\","
    "\"evt.time\":1714564500123456789,\"fd.rport\":443,\"x\":null}}",
    "{\"verb\":\"create\",\"user\":{\"username\":\"alice\",\"groups\":[\"a\",\"b\"]},"
    "\"sourceIPs\":[\"10.0.0.1\",\"fd00::1\"],\"responseStatus\":{\"code\":403},"
    "\"ok\":false,\"ratio\":0.5,\"a.b\":1,\"a\":{\"b\":[[1],[2,{\"c\":3}]]}}",
};

static struct buf raws[2];
static struct rec recs[3];

static void init_records(void)
{
    static bool done;

    if (done) {
        return;
    }
    done = true;
    for (int i = 0; i < 2; i++) {
        buf_init(&raws[i], 1 << 16);
        if (json_to_mp(span_str(raw_docs[i]), &raws[i], NULL, NULL) != 0) {
            abort();
        }
        rec_init(&recs[i]);
        recs[i].raw = buf_span(&raws[i]);
    }
    recs[0].ts = NOW_NS - 300LL * 1000000000LL;
    recs[0].has_ts = true;
    recs[0].seq = 1;
    recs[0].has_seq = true;
    recs[0].dst_port = 443;
    recs[0].has_dst_port = true;
    rec_set(&recs[0], VG_F_SOURCE, SPAN_LIT("falco"));
    rec_set(&recs[0], VG_F_SEVERITY, SPAN_LIT("notice"));
    rec_set(&recs[0], VG_F_POD, SPAN_LIT("nginx"));
    rec_set(&recs[0], VG_F_SRC_IP, SPAN_LIT("10.1.2.3"));
    rec_set(&recs[0], VG_F_DST_IP, SPAN_LIT("2001:db8::1"));
    rec_set(&recs[1], VG_F_SOURCE, SPAN_LIT("k8s-audit"));
    rec_set(&recs[1], VG_F_SEVERITY, SPAN_LIT("bogus"));
    rec_set(&recs[1], VG_F_USER, SPAN_LIT("alice"));
    rec_set(&recs[1], VG_F_SRC_IP, SPAN_LIT("not-an-ip"));
    rec_init(&recs[2]);
}

static void check_text(const char *text, size_t len, struct span raw)
{
    struct filter *f = NULL;
    struct errbuf eb;
    int col = -1;

    errbuf_clear(&eb);
    int rc = filter_parse(text, NOW_NS, &f, &col, &eb);
    if (rc != 0) {
        CHECK(rc == VG_EPARSE && f == NULL);
        CHECK(col >= 1 && (size_t)col <= len + 1);
        CHECK(strncmp(errbuf_msg(&eb), "filter: column ", 15) == 0);
        return;
    }
    CHECK(col == 0);
    for (int i = 0; i < 3; i++) {
        (void)filter_match(f, &recs[i]);
    }
    if (raw.n > 0) {
        struct rec r;
        rec_init(&r);
        r.raw = raw;
        (void)filter_match(f, &r);
    }
    struct buf b;
    buf_init(&b, 1 << 20);
    CHECK(filter_describe(f, &b) == 0);
    buf_release(&b);
    int64_t since;
    int64_t until;
    filter_time_bounds(f, &since, &until);
    filter_free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_records();

    const uint8_t *nul = memchr(data, 0, size);
    size_t len = nul ? (size_t)(nul - data) : size;
    struct span raw = nul ? (struct span){ nul + 1, size - len - 1 } : (struct span){ NULL, 0 };
    char *text = malloc(len + 1);
    if (!text) {
        return 0;
    }
    memcpy(text, data, len);
    text[len] = 0;
    check_text(text, len, raw);

    /* The same bytes as command-line words, one per line. */
    char *argv[64];
    int argc = 0;
    char *p = text;
    while (argc < 64) {
        argv[argc++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) {
            break;
        }
        *nl = 0;
        p = nl + 1;
    }
    char *joined = filter_join_args(argc, argv);
    check_text(joined, strlen(joined), raw);
    free(joined);
    free(text);

    static FILE *devnull;
    if (!devnull && !(devnull = fopen("/dev/null", "w"))) {
        abort();
    }
    struct rec r;
    rec_init(&r);
    r.ts = (int64_t)size * 7919 * 1000000007LL;
    r.has_ts = true;
    rec_set(&r, VG_F_MESSAGE, (struct span){ data, len });
    rec_set(&r, VG_F_NAMESPACE, (struct span){ data, len / 2 });
    rec_set(&r, VG_F_POD, (struct span){ data + len / 2, len - len / 2 });
    rec_set(&r, VG_F_SEVERITY, (struct span){ data, len < 9 ? len : 9 });
    for (int fmt = OUT_TABLE; fmt <= OUT_CSV; fmt++) {
        struct out *o =
            out_new((enum out_format)fmt, devnull, fmt == OUT_TABLE ? (int)(size % 200) : 0);
        int rc = out_event(o, &r);
        CHECK(rc == 0);
        CHECK(out_finish(o) == 0);
        out_free(o);
    }
    return 0;
}
