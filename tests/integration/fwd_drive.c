/* tests/integration/fwd_drive.c: the forwarders of vigild (forwarders/fwd.h) on a loop of
 * their own, fed alert records that a test writes per schemas/alert.md: each stdin line
 * {"alert": {raw map}, "severity": "...", "host": "...", "namespace": "...", ...} becomes
 * a kind=alert, source=rule record, appended to the store and committed, then handed to
 * fwd_on_record as vigild's pipeline does. So the tests drive firing, update and resolved
 * records through the real outbox, HTTP client and sinks, against the real Alertmanager and
 * the test receivers, whatever the rules engine of the day emits; and can SIGKILL it.
 *
 *   fwd_drive -c vigil.yaml      prints "ready" once the forwarders run, then one line
 *                                "ok SEQ" per alert line; "stop" closes like SIGTERM. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/config.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mp.h"
#include "common/time.h"
#include "forwarders/fwd.h"
#include "schemas/record.h"
#include "store/store.h"

struct drive {
    uv_loop_t loop;
    uv_pipe_t in;
    struct buf line;
    struct store *st;
    struct fwd *f;
    uint64_t next_seq;
    bool stopping;
};

static void on_closed(void *arg)
{
    struct drive *d = arg;
    uv_close((uv_handle_t *)&d->in, NULL);
}

static void stop(struct drive *d)
{
    if (!d->stopping) {
        d->stopping = true;
        uv_read_stop((uv_stream_t *)&d->in);
        fwd_close(d->f, on_closed, d);
    }
}

static void set_str(struct span doc, const char *key, struct rec *r, enum vg_field f)
{
    struct span v;
    struct span s;
    if (mp_map_get(doc, span_str(key), &v) == 1 && mp_get_str(v, &s)) {
        rec_set(r, f, s);
    }
}

static void one_line(struct drive *d, struct span text)
{
    struct buf doc;
    struct buf enc;
    struct errbuf eb;
    struct span raw;
    struct span v;
    struct rec r;
    int64_t t = vg_now_ns();

    errbuf_clear(&eb);
    if (span_eq_str(text, "stop")) {
        stop(d);
        return;
    }
    buf_init(&doc, 1 << 20);
    buf_init(&enc, 2 << 20);
    if (json_to_mp(text, &doc, NULL, &eb) < 0 ||
        mp_map_get(buf_span(&doc), SPAN_LIT("alert"), &raw) != 1) {
        fprintf(stderr, "fwd_drive: bad line: %s\n", errbuf_msg(&eb));
        exit(2);
    }
    rec_init(&r);
    if (mp_map_get(raw, SPAN_LIT("last_seen"), &v) == 1) {
        mp_get_i64(v, &t);
    }
    if (mp_map_get(buf_span(&doc), SPAN_LIT("ts"), &v) == 1) {
        mp_get_i64(v, &t);
    }
    r.ts = t;
    r.has_ts = true;
    r.received = vg_now_ns();
    r.has_received = true;
    r.seq = d->next_seq;
    r.has_seq = true;
    rec_set(&r, VG_F_AGENT, SPAN_LIT("vigild"));
    rec_set(&r, VG_F_SOURCE, SPAN_LIT("rule"));
    rec_set(&r, VG_F_KIND, SPAN_LIT("alert"));
    static const struct {
        const char *key;
        enum vg_field f;
    } fields[] = {
        { "severity", VG_F_SEVERITY }, { "host", VG_F_HOST },  { "namespace", VG_F_NAMESPACE },
        { "pod", VG_F_POD },           { "user", VG_F_USER },  { "src_ip", VG_F_SRC_IP },
        { "message", VG_F_MESSAGE },   { "title", VG_F_RULE },
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        set_str(buf_span(&doc), fields[i].key, &r, fields[i].f);
    }
    r.raw = raw;
    if (rec_encode(&r, &enc) < 0 || store_append(d->st, t, d->next_seq, buf_span(&enc)) < 0 ||
        store_commit(d->st) < 0) {
        fprintf(stderr, "fwd_drive: cannot store the alert\n");
        exit(1);
    }
    /* durable: what vigild's pipeline hands its committed-record hook */
    fwd_on_record(d->f, t, d->next_seq, buf_span(&enc));
    printf("ok %" PRIu64 "\n", d->next_seq);
    fflush(stdout);
    d->next_seq++;
    buf_release(&doc);
    buf_release(&enc);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct drive *d = h->data;
    (void)hint;
    if (buf_reserve(&d->line, 65536) < 0) {
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = (char *)d->line.data + d->line.len;
    b->len = 65536;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct drive *d = s->data;
    (void)b;
    if (n < 0) {
        stop(d); /* end of input: stop as on SIGTERM */
        return;
    }
    d->line.len += (size_t)n;
    for (;;) {
        uint8_t *nl = memchr(d->line.data, '\n', d->line.len);
        if (!nl || d->stopping) {
            break;
        }
        size_t len = (size_t)(nl - d->line.data);
        one_line(d, (struct span){ d->line.data, len });
        buf_consume(&d->line, len + 1);
    }
}

int main(int argc, char **argv)
{
    struct drive d = { 0 };
    struct vg_config *cfg = NULL;
    struct errbuf eb;

    log_set_prog("fwd_drive");
    errbuf_clear(&eb);
    if (argc != 3 || strcmp(argv[1], "-c") != 0) {
        fprintf(stderr, "usage: fwd_drive -c vigil.yaml\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (config_load(argv[2], &cfg, &eb) < 0) {
        fprintf(stderr, "fwd_drive: %s\n", errbuf_msg(&eb));
        return 2;
    }
    struct store_opts so = { .dir = cfg->store.path,
                             .partition_ns = cfg->store.partition_ns,
                             .fsync = cfg->store.fsync };
    if (store_open(&so, &d.st, &eb) < 0) {
        fprintf(stderr, "fwd_drive: %s\n", errbuf_msg(&eb));
        return 1;
    }
    d.next_seq = store_next_seq(d.st);
    uv_loop_init(&d.loop);
    if (fwd_new(&d.loop, cfg, cfg->store.path, d.next_seq, &d.f, &eb) < 0) {
        fprintf(stderr, "fwd_drive: %s\n", errbuf_msg(&eb));
        return 2;
    }
    fwd_start(d.f);
    buf_init(&d.line, 16 << 20);
    uv_pipe_init(&d.loop, &d.in, 0);
    d.in.data = &d;
    uv_pipe_open(&d.in, 0);
    uv_read_start((uv_stream_t *)&d.in, on_alloc, on_read);
    printf("ready\n");
    fflush(stdout);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&d.loop) == 0 ? 0 : 1;
    fwd_free(d.f);
    store_close(d.st);
    buf_release(&d.line);
    config_free(cfg);
    return rc;
}
