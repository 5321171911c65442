/* bench/ingest_stages.c: vigild's per-event parse/map/encode stages on their own, single
 * thread, no I/O: CPU per event of each stage of the Forward and HTTPS NDJSON paths.
 *   json_to_mp    one NDJSON line -> msgpack (the HTTPS listener's parse, yajl)
 *   forward_iter  the events of PackedForward messages (as `vigil send` packs them):
 *                 forward_decode + forward_iter_next (measure, split, entry checks)
 *   map_event     msgpack event -> struct rec (format detection, normalization)
 *   rec_encode    struct rec -> the record bytes the pipeline hands the store
 * usage: ingest_stages EVENTS.ndjson [RUNS=5]   (bench/ingest_stages.sh builds it)
 * Prints the best of RUNS passes per stage in ns/event. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/mp.h"
#include "schemas/forward.h"
#include "schemas/map.h"
#include "schemas/record.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU, not wall: the machine is shared */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "ingest_stages: %s\n", what);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        die("usage: ingest_stages EVENTS.ndjson [RUNS]");
    }
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        die("cannot open the events file");
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (fread(text, 1, (size_t)size, f) != (size_t)size) {
        die("short read");
    }
    fclose(f);

    /* Lines, and every event as msgpack (one buffer, offsets). */
    size_t nlines = 0;
    for (long i = 0; i < size; i++) {
        nlines += text[i] == '\n';
    }
    struct span *lines = calloc(nlines + 1, sizeof(*lines));
    size_t *mpoff = calloc(nlines + 2, sizeof(*mpoff));
    struct buf mp;
    buf_init(&mp, (size_t)size * 3);
    size_t n = 0;
    for (char *p = text, *end = text + size; p < end && n < nlines + 1;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lines[n] = (struct span){ (const uint8_t *)p, len };
        mpoff[n] = mp.len;
        if (json_to_mp(lines[n], &mp, NULL, NULL) != 0) {
            die("a line is not JSON");
        }
        n++;
        p += len + 1;
    }
    mpoff[n] = mp.len;

    /* PackedForward messages of 1000 entries, as vigil send sends them. */
    struct buf msgs;
    buf_init(&msgs, (size_t)size * 4);
    size_t nmsgs = 0;
    for (size_t i = 0; i < n; i += 1000) {
        struct buf entries;
        buf_init(&entries, (size_t)size * 4);
        size_t k = 0;
        for (; k < 1000 && i + k < n; k++) {
            struct span ev = { mp.data + mpoff[i + k], mpoff[i + k + 1] - mpoff[i + k] };
            if (forward_encode_entry(&entries, 1700000000000000000LL, ev) != 0) {
                die("encode entry");
            }
        }
        if (forward_encode_packed(&msgs, SPAN_LIT("bench"), buf_span(&entries), (uint32_t)k,
                                  SPAN_LIT("chunk-id-0123456789abcdef")) != 0) {
            die("encode packed");
        }
        buf_release(&entries);
        nmsgs++;
    }

    double best[4] = { 1e9, 1e9, 1e9, 1e9 };
    struct buf out;
    struct buf scratch;
    struct buf enc;
    buf_init(&out, (size_t)size * 3);
    buf_init(&scratch, MAP_SCRATCH_BYTES);
    buf_init(&enc, 1 << 30);
    uint64_t sink = 0;
    for (int run = 0; run < runs; run++) {
        /* json_to_mp */
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            buf_reset(&out);
            if (json_to_mp(lines[i], &out, NULL, NULL) != 0) {
                die("json_to_mp");
            }
            sink += out.len;
        }
        double t1 = now_s();
        /* forward_decode + forward_iter_next */
        struct span in = buf_span(&msgs);
        size_t events = 0;
        while (in.n > 0) {
            struct forward_msg m;
            struct forward_iter it;
            ssize_t used = forward_decode(in, &m, (size_t)size * 4);
            if (used <= 0 || forward_iter_init(&it, &m, NULL) != 0) {
                die("forward_decode");
            }
            int64_t t;
            struct span rec;
            while (forward_iter_next(&it, &t, &rec) == 1) {
                events++;
                sink += rec.n;
            }
            span_advance(&in, (size_t)used);
        }
        if (events != n) {
            die("forward: event count");
        }
        double t2 = now_s();
        /* map_event alone, then map_event + rec_encode */
        for (size_t i = 0; i < n; i++) {
            struct span ev = { mp.data + mpoff[i], mpoff[i + 1] - mpoff[i] };
            struct rec r;
            buf_reset(&scratch);
            if (map_event(MAP_AUTO, ev, 1, "forward", &r, &scratch, NULL) < 0) {
                continue;
            }
            sink += r.has_ts;
        }
        double t3 = now_s();
        buf_reset(&enc);
        for (size_t i = 0; i < n; i++) {
            struct span ev = { mp.data + mpoff[i], mpoff[i + 1] - mpoff[i] };
            struct rec r;
            buf_reset(&scratch);
            if (map_event(MAP_AUTO, ev, 1, "forward", &r, &scratch, NULL) < 0) {
                continue;
            }
            rec_set(&r, VG_F_AGENT, SPAN_LIT("node-1"));
            r.received = r.ts;
            r.has_received = true;
            r.seq = i;
            r.has_seq = true;
            if (rec_encode(&r, &enc) != 0) {
                die("rec_encode");
            }
            if (enc.len > (64u << 20)) {
                buf_reset(&enc);
            }
        }
        double t4 = now_s();
        double s[4] = { t1 - t0, t2 - t1, t3 - t2, (t4 - t3) - (t3 - t2) };
        for (int k = 0; k < 4; k++) {
            if (s[k] < best[k]) {
                best[k] = s[k];
            }
        }
    }
    printf("%zu events (%zu PackedForward messages), best of %d passes, ns/event:\n", n, nmsgs,
           runs);
    printf("  json_to_mp    %7.0f\n", best[0] * 1e9 / (double)n);
    printf("  forward_iter  %7.0f\n", best[1] * 1e9 / (double)n);
    printf("  map_event     %7.0f\n", best[2] * 1e9 / (double)n);
    printf("  rec_encode    %7.0f\n", best[3] * 1e9 / (double)n);
    fprintf(stderr, "(%llu)\n", (unsigned long long)(sink & 1));
    buf_release(&mp);
    buf_release(&msgs);
    buf_release(&out);
    buf_release(&scratch);
    buf_release(&enc);
    free(lines);
    free(mpoff);
    free(text);
    return 0;
}
