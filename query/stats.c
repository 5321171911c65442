/* query/stats.c: `vigil stats [FILTER] --by FIELD[,FIELD...] [--top N] [--since T]
 * [--until T] [--format table|json|ndjson|csv] [--explain]`: counts the events matching
 * FILTER by the values of the given fields, most frequent first ("which IPs failed auth
 * the most today": `vigil stats outcome=failure --by src_ip --top 20`).
 *
 * One pass over the store (read-only, also while vigild writes), with the block index
 * and record prefilter doing what they do for search; groups are counted in a hash
 * table bounded by STATS_MAX_GROUPS (a query that makes more fails and says so, rather
 * than eat the machine). Single-threaded. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/time.h"
#include "common/xalloc.h"
#include "query/cli.h"
#include "query/filter.h"
#include "query/output.h"
#include "query/scan.h"
#include "store/store.h"

#define STATS_MAX_FIELDS 8
#define STATS_MAX_GROUPS (4u << 20) /* distinct value combinations counted */

struct group {
    uint64_t hash; /* 0: empty slot */
    uint64_t count;
    uint32_t off; /* the key in keys: the values, each as (u32 length, bytes); an absent
                     field has length UINT32_MAX */
    uint32_t len;
};

struct stats {
    const struct filter *f;
    int fields[STATS_MAX_FIELDS];
    size_t nfields;
    struct group *slots;
    size_t cap; /* power of two */
    size_t n;
    struct buf keys;
    struct buf key; /* the key being built */
    uint64_t matched;
    uint64_t matched_told; /* of matched, what par's progress line has */
    struct scan_par *par;
    int err;
    struct errbuf *eb;
};

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a finalizer */

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1;
}

static void stats_grow(struct stats *s)
{
    size_t ncap = s->cap ? 2 * s->cap : 1024;
    struct group *slots = xcalloc(ncap, sizeof(*slots));

    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i].hash) {
            size_t j = s->slots[i].hash & (ncap - 1);
            while (slots[j].hash) {
                j = (j + 1) & (ncap - 1);
            }
            slots[j] = s->slots[i];
        }
    }
    free(s->slots);
    s->slots = slots;
    s->cap = ncap;
}

/* Appends field f of r to the key: its text, or absent. */
static int key_add(struct buf *key, const struct rec *r, int f)
{
    char num[32];
    struct span v = { NULL, 0 };
    uint8_t len[4];
    uint32_t n = UINT32_MAX;

    if (f == VG_F_DST_PORT) {
        if (r->has_dst_port) {
            snprintf(num, sizeof(num), "%" PRId64, r->dst_port);
            v = span_str(num);
        }
    } else if (r->str[f].p) {
        v = r->str[f];
    }
    if (v.p) {
        n = (uint32_t)v.n;
    }
    for (int i = 0; i < 4; i++) {
        len[i] = (uint8_t)(n >> (8 * i));
    }
    int rc = buf_append(key, len, 4);
    return rc < 0 || !v.p ? rc : buf_append(key, v.p, v.n);
}

/* Counts `count` more events for the group of key (hash h). */
static int group_add(struct stats *s, uint64_t h, const uint8_t *key, size_t len, uint64_t count)
{
    if ((s->n + 1) * 2 > s->cap) {
        stats_grow(s);
    }
    size_t i = h & (s->cap - 1);
    while (s->slots[i].hash) {
        struct group *g = &s->slots[i];
        if (g->hash == h && g->len == len && memcmp(s->keys.data + g->off, key, len) == 0) {
            g->count += count;
            return 0;
        }
        i = (i + 1) & (s->cap - 1);
    }
    if (s->n >= STATS_MAX_GROUPS || buf_append(&s->keys, key, len) < 0) {
        errbuf_set(s->eb,
                   "more than %u groups (or %zu bytes of values): narrow the filter or "
                   "group by fewer fields",
                   STATS_MAX_GROUPS, s->keys.max);
        s->err = VG_ELIMIT;
        return VG_ELIMIT;
    }
    s->slots[i] = (struct group){ h, count, (uint32_t)(s->keys.len - len), (uint32_t)len };
    s->n++;
    return 0;
}

static int on_rec(void *arg, int64_t ts, uint64_t seq, struct span bytes)
{
    struct stats *s = arg;
    struct rec r;

    (void)ts;
    if ((s->err = scan_rec_decode(bytes, seq, &r, s->eb)) < 0) {
        return s->err;
    }
    if (s->f && !filter_match(s->f, &r)) {
        return 0;
    }
    s->matched++;
    if ((s->matched & 0xfff) == 0) {
        scan_par_matched(s->par, s->matched - s->matched_told);
        s->matched_told = s->matched;
    }
    buf_reset(&s->key);
    for (size_t i = 0; i < s->nfields; i++) {
        if (key_add(&s->key, &r, s->fields[i]) < 0) {
            errbuf_set(s->eb, "record seq %" PRIu64 ": values too large to group by", seq);
            s->err = VG_ELIMIT;
            return VG_ELIMIT;
        }
    }
    return group_add(s, hash_bytes(s->key.data, s->key.len), s->key.data, s->key.len, 1);
}

/* Adds the groups of a stripe (from) into s. */
static int stats_merge(struct stats *s, const struct stats *from)
{
    s->matched += from->matched;
    for (size_t i = 0; i < from->cap; i++) {
        const struct group *g = &from->slots[i];
        if (g->hash) {
            int rc = group_add(s, g->hash, from->keys.data + g->off, g->len, g->count);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int cmp_group(const void *a, const void *b, void *arg)
{
    const struct group *x = a;
    const struct group *y = b;
    const struct buf *keys = arg;

    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(keys->data + x->off, keys->data + y->off, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The i-th value of a group key: *v, or false when the field was absent. */
static bool key_value(const uint8_t *k, size_t i, struct span *v)
{
    for (;;) {
        uint32_t n =
            (uint32_t)k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
        k += 4;
        if (i == 0) {
            *v = (struct span){ k, n == UINT32_MAX ? 0 : n };
            return n != UINT32_MAX;
        }
        k += n == UINT32_MAX ? 0 : n;
        i--;
    }
}

static void print_table_cell(FILE *o, struct span v, bool present, int width)
{
    int w = 0;

    if (!present) {
        fputs("-", o);
        w = 1;
    } else {
        for (size_t i = 0; i < v.n && w < width; i++, w++) {
            uint8_t c = v.p[i];
            fputc(c < 0x20 || c == 0x7f ? '?' : c, o);
        }
    }
    fprintf(o, "%*s", width - w + 2, "");
}

static void print_csv_cell(FILE *o, struct span v, bool present)
{
    fputc('"', o);
    for (size_t i = 0; present && i < v.n; i++) {
        if (v.p[i] == '"') {
            fputc('"', o);
        }
        fputc(v.p[i], o);
    }
    fputc('"', o);
}

static int print_groups(struct stats *s, struct group *g, size_t n, enum out_format fmt)
{
    FILE *o = stdout;
    int width[STATS_MAX_FIELDS];
    struct buf j;

    buf_init(&j, 1u << 24);
    for (size_t k = 0; k < s->nfields; k++) {
        width[k] = (int)strlen(vg_field_name(s->fields[k]));
        for (size_t i = 0; i < n; i++) {
            struct span v;
            bool present = key_value(s->keys.data + g[i].off, k, &v);
            int w = present ? (int)v.n : 1;
            width[k] = w > width[k] ? (w > 60 ? 60 : w) : width[k];
        }
    }
    if (fmt == OUT_TABLE) {
        for (size_t k = 0; k < s->nfields; k++) {
            fprintf(o, "%-*s  ", width[k], vg_field_name(s->fields[k]));
        }
        fprintf(o, "%s\n", "COUNT");
    } else if (fmt == OUT_CSV) {
        for (size_t k = 0; k < s->nfields; k++) {
            fprintf(o, "%s,", vg_field_name(s->fields[k]));
        }
        fprintf(o, "count\r\n");
    } else if (fmt == OUT_JSON) {
        fputs("[\n", o);
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *key = s->keys.data + g[i].off;
        if (fmt == OUT_TABLE || fmt == OUT_CSV) {
            for (size_t k = 0; k < s->nfields; k++) {
                struct span v;
                bool present = key_value(key, k, &v);
                if (fmt == OUT_TABLE) {
                    print_table_cell(o, v, present, width[k]);
                } else {
                    print_csv_cell(o, v, present);
                    fputc(',', o);
                }
            }
            fprintf(o, fmt == OUT_TABLE ? "%" PRIu64 "\n" : "%" PRIu64 "\r\n", g[i].count);
            continue;
        }
        buf_reset(&j);
        int rc = buf_append_str(&j, "{");
        for (size_t k = 0; rc == 0 && k < s->nfields; k++) {
            struct span v;
            bool present = key_value(key, k, &v);
            rc = buf_appendf(&j, "\"%s\":", vg_field_name(s->fields[k]));
            if (rc == 0) {
                rc = present ? json_append_str(&j, v) : buf_append_str(&j, "null");
            }
            if (rc == 0) {
                rc = buf_append_str(&j, ",");
            }
        }
        if (rc == 0) {
            rc = buf_appendf(&j, "\"count\":%" PRIu64 "}", g[i].count);
        }
        if (rc < 0) {
            buf_release(&j);
            return rc;
        }
        fprintf(o, "%s%s\n", buf_cstr(&j), fmt == OUT_JSON && i + 1 < n ? "," : "");
    }
    if (fmt == OUT_JSON) {
        fputs("]\n", o);
    }
    buf_release(&j);
    errno = 0;
    if (fflush(o) != 0 || ferror(o)) {
        return errno ? -errno : -EIO;
    }
    return 0;
}

static void stats_usage(FILE *f)
{
    fprintf(f, "usage: vigil stats [FILTER...] --by FIELD[,FIELD...] [--top N] [--since T] "
               "[--until T]\n"
               "                   [--format table|json|ndjson|csv] [--explain] [--skip-damaged]\n"
               "                   [-c FILE | --store DIR]\n"
               "\n"
               "Counts the events matching FILTER by the values of the fields (normalized\n"
               "text fields and dst_port; an absent field counts as '-'), most frequent first.\n"
               "--top: the N most frequent groups (default 20; 0 for all).\n"
               "--skip-damaged: leave out segments that cannot be read (said on stderr) instead\n"
               "        of failing on the first one.\n");
}

/* Parses "a,b,c" into s->fields. */
static int parse_by(struct stats *s, const char *by)
{
    const char *p = by;

    while (*p) {
        const char *comma = strchr(p, ',');
        struct span name = { (const uint8_t *)p, comma ? (size_t)(comma - p) : strlen(p) };
        int f = vg_field_lookup(name);
        if (f < 0 || f == VG_F_RAW || f == VG_F_TS || f == VG_F_RECEIVED || f == VG_F_SEQ) {
            fprintf(stderr, "vigil stats: --by: '%.*s' is not a field to group by\n", (int)name.n,
                    (const char *)name.p);
            return -1;
        }
        if (s->nfields == STATS_MAX_FIELDS) {
            fprintf(stderr, "vigil stats: --by: at most %d fields\n", STATS_MAX_FIELDS);
            return -1;
        }
        s->fields[s->nfields++] = f;
        p += name.n + (comma != NULL);
    }
    if (s->nfields == 0) {
        fprintf(stderr, "vigil stats: --by needs a field\n");
        return -1;
    }
    return 0;
}

/* One scan into s: one table per stripe (thread), merged into s. The segments of skips
 * are left out; with skip_damaged, one that cannot be read is added to them (*again:
 * scan once more, afresh). *failed: the segment a failure was about (0: none). */
static int stats_scan(struct stats *s, const char *dir, int64_t since, int64_t until,
                      const struct scan_need *sn, bool skip_damaged, struct scan_skips *skips,
                      bool *again, uint64_t *failed, bool *interrupted, struct store_scan_stats *st,
                      struct errbuf *eb)
{
    struct scan_par *par = NULL;
    int rc = scan_par_open(dir, since, until, &sn->need, &par, st, eb);

    *again = false;
    *failed = 0;
    if (rc < 0) {
        return rc;
    }
    scan_par_narrow(par, sn);
    scan_par_skip(par, skips);
    scan_par_watch(par, (cli_progress_enabled() ? SCAN_PROGRESS : 0) | SCAN_INTERRUPTIBLE,
                   "counting");
    s->par = par;
    unsigned nt = scan_par_threads(par);
    struct stats *ps = xcalloc(nt, sizeof(*ps));
    struct errbuf *pe = xcalloc(nt, sizeof(*pe));
    void **args = xcalloc(nt, sizeof(*args));
    args[0] = s;
    for (unsigned i = 1; i < nt; i++) {
        ps[i].f = s->f;
        memcpy(ps[i].fields, s->fields, sizeof(s->fields));
        ps[i].nfields = s->nfields;
        ps[i].eb = &pe[i];
        ps[i].par = par;
        errbuf_clear(&pe[i]);
        buf_init(&ps[i].keys, (size_t)1 << 31);
        buf_init(&ps[i].key, 1u << 24);
        args[i] = &ps[i];
    }
    rc = scan_par_run(par, on_rec, args, st, eb);
    *again = skip_damaged && scan_skips_take(skips, par, rc, eb);
    *failed = rc < 0 ? scan_par_failed_segment(par) : 0;
    *interrupted = scan_par_interrupted(par);
    s->par = NULL;
    scan_par_close(par);
    for (unsigned i = 1; i < nt; i++) {
        if (ps[i].err && !s->err) {
            s->err = ps[i].err;
            errbuf_set(eb, "%s", errbuf_msg(&pe[i]));
        }
        if (rc == 0 && !s->err) {
            rc = stats_merge(s, &ps[i]);
        }
        free(ps[i].slots);
        buf_release(&ps[i].keys);
        buf_release(&ps[i].key);
    }
    if (s->err && rc >= 0) {
        rc = s->err;
    }
    free(ps);
    free(pe);
    free(args);
    return rc;
}

struct stats_opts {
    const char *by;
    uint64_t top;
    bool explain;
    bool skip_damaged;
};

static void stats_defaults(void *own)
{
    ((struct stats_opts *)own)->top = 20;
}

static const struct cli_opt stats_opts[] = {
    { "--by", NULL, CLI_STR, CLI_OFF(struct stats_opts, by), 0, 0 },
    { "--top", NULL, CLI_U64, CLI_OFF(struct stats_opts, top), 0, UINT32_MAX },
    { "--explain", NULL, CLI_FLAG, CLI_OFF(struct stats_opts, explain), 0, 0 },
    { "--skip-damaged", NULL, CLI_FLAG, CLI_OFF(struct stats_opts, skip_damaged), 0, 0 },
    { NULL },
};

static int stats_run(struct cli_args *a)
{
    const struct stats_opts *so = a->own;
    struct filter *f = NULL;
    char *text = NULL;
    struct stats s;
    struct errbuf eb;
    int rc;

    memset(&s, 0, sizeof(s));
    errbuf_clear(&eb);
    if (!so->by) {
        fprintf(stderr, "vigil stats: --by FIELD is required\n");
        stats_usage(stderr);
        return CLI_USAGE;
    }
    if (parse_by(&s, so->by) < 0) {
        return CLI_USAGE;
    }
    if ((rc = cli_filter(a, true, &f, &text)) != CLI_OK) {
        return rc;
    }
    free(text);
    if ((rc = cli_load(a)) != CLI_OK) {
        filter_free(f);
        return rc;
    }

    /* What every match has, for the block index and the record prefilter. */
    struct scan_need sn;
    scan_need_init(&sn, f);
    struct store_scan_stats st = { 0 };
    int64_t t0 = vg_mono_ns();
    s.f = f;
    s.eb = &eb;
    buf_init(&s.keys, (size_t)1 << 31);
    buf_init(&s.key, 1u << 24);
    /* --skip-damaged: each damaged segment found starts the count over without it. */
    struct scan_skips skips = { NULL, 0 };
    uint64_t failed = 0;
    bool interrupted = false;
    for (;;) {
        bool again = false;
        rc = stats_scan(&s, cli_store_dir(a), a->since, a->until, &sn, so->skip_damaged, &skips,
                        &again, &failed, &interrupted, &st, &eb);
        if (!again) {
            break;
        }
        free(s.slots);
        s.slots = NULL;
        s.cap = s.n = 0;
        s.matched = 0;
        s.err = 0;
        buf_reset(&s.keys);
        memset(&st, 0, sizeof(st));
        errbuf_clear(&eb);
    }
    scan_skips_print("vigil stats", &skips);
    if (rc < 0) {
        scan_fail_print("vigil stats", &eb, failed);
        rc = CLI_FAIL;
    } else {
        /* The groups, most frequent first (ties by value), then the top ones. */
        struct group *g = xcalloc(s.n ? s.n : 1, sizeof(*g));
        size_t n = 0;
        for (size_t i = 0; i < s.cap; i++) {
            if (s.slots[i].hash) {
                g[n++] = s.slots[i];
            }
        }
        if (n > 1) {
            qsort_r(g, n, sizeof(*g), cmp_group, &s.keys);
        }
        size_t shown = so->top && so->top < n ? (size_t)so->top : n;
        rc = cli_output_done("vigil stats", print_groups(&s, g, shown, a->format));
        if (interrupted) {
            fprintf(stderr,
                    "vigil stats: interrupted: the counts of the %" PRIu64
                    " matches found before Ctrl-C\n",
                    s.matched);
            rc = rc == CLI_OK ? SCAN_EXIT_INTERRUPTED : rc;
        }
        if (so->explain) {
            fprintf(stderr,
                    "explain: blocks read %" PRIu64 ", skipped by time %" PRIu64
                    ", skipped by index %" PRIu64 "; bytes decompressed %" PRIu64
                    "; records unpacked %" PRIu64 ", passed over %" PRIu64 ", matched %" PRIu64
                    "; %zu groups, %zu shown; %.3f s\n",
                    st.blocks_read, st.blocks_skipped, st.blocks_skipped_index,
                    st.bytes_decompressed, st.records_decoded, st.records_skipped, s.matched, n,
                    shown, (double)(vg_mono_ns() - t0) / 1e9);
            scan_skips_explain(&skips);
        }
        free(g);
    }
    scan_skips_release(&skips);
    free(s.slots);
    buf_release(&s.keys);
    buf_release(&s.key);
    filter_free(f);
    return rc;
}

const struct cli_cmd cmd_stats = {
    .name = "stats",
    .synopsis = "[FILTER] --by FIELD[,FIELD] [--top N]   count events by field values",
    .takes = CLI_STORE | CLI_TIME | CLI_FORMAT,
    .opts = stats_opts,
    .own_size = sizeof(struct stats_opts),
    .own_init = stats_defaults,
    .usage = stats_usage,
    .run = stats_run,
};
