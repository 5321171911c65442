/* bench/rules_eval.c: events/s through rules_engine_eval with 0, 50 and 200 loaded rules,
 * on records mapped from the bench generator's mix (shared/bench/gen_events.py: Falco
 * 40 %, k8s audit 35 %, sshd 17 %, Trivy 8 %).
 *
 * The rule packs are the shared corpus's SigmaHQ rules (process_creation over Falco,
 * kubernetes/audit, Linux auth keywords) repeated under fresh ids until the count is
 * reached, plus two correlations (an sshd brute force per source address and a
 * value_count spray) so correlation state is exercised too. Events are mapped and
 * encoded once up front; the timed loop is only rules_engine_eval over decoded records.
 *
 * usage: rules_eval EVENTS.ndjson SIGMA_DIR [RUNS=3]
 * Prints, per rule count, the median events/s, ns/event, and the cost per rule. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/time.h"
#include "rules/rules.h"
#include "schemas/map.h"

static const char *corr_pack =
    "title: bench ssh failure\nname: bench_ssh_failure\n"
    "logsource: {product: linux, service: sshd}\n"
    "detection: {sel: {outcome: failure}, condition: sel}\n"
    "---\ntitle: bench ssh brute force\nid: bench-brute\ncorrelation:\n"
    "  type: event_count\n  rules: [bench_ssh_failure]\n  group-by: [src_ip]\n"
    "  timespan: 10m\n  condition: {gte: 20}\nlevel: high\n"
    "---\ntitle: bench password spray\nid: bench-spray\ncorrelation:\n"
    "  type: value_count\n  rules: [bench_ssh_failure]\n  group-by: [src_ip]\n"
    "  timespan: 1h\n  condition: {field: user, gte: 10}\nlevel: high\n";

struct text {
    char *p;
    size_t n, cap;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        t->cap = (t->n + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        if (!t->p) {
            abort();
        }
    }
    memcpy(t->p + t->n, s, n);
    t->n += n;
    t->p[t->n] = 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct text t = { 0 };
    char chunk[1 << 16];
    size_t n;

    if (!f) {
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        text_add(&t, chunk, n);
    }
    fclose(f);
    *len = t.n;
    return t.p ? t.p : calloc(1, 1);
}

/* The corpus's detection rule files (not the specification's correlation examples). */
static void collect(const char *dir, char ***files, size_t *n)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d) {
        return;
    }
    while ((de = readdir(d))) {
        char p[4096];
        struct stat st;
        if (de->d_name[0] == '.' || strcmp(de->d_name, "sigma-specification") == 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        if (stat(p, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            collect(p, files, n);
        } else if (strstr(de->d_name, ".yml")) {
            *files = realloc(*files, (*n + 1) * sizeof(**files));
            (*files)[(*n)++] = strdup(p);
        }
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A pack of `count` rules: the correlation pack (3 rules) and corpus rules with fresh
 * ids. */
static struct ruleset *make_pack(char **files, size_t nfiles, size_t count)
{
    struct text t = { 0 };
    struct rules_report rep;
    struct ruleset *rs = NULL;
    struct errbuf eb;
    size_t made = 0;

    text_add(&t, "", 0);
    if (count >= 3) {
        text_add(&t, corr_pack, strlen(corr_pack));
        made = 3;
    }
    for (size_t k = 0; made < count; k++) {
        size_t len;
        char *y = slurp(files[k % nfiles], &len);
        char id[64];
        if (!y) {
            continue;
        }
        snprintf(id, sizeof(id), "\nid: bench-%zu\n", k);
        if (t.n) {
            text_add(&t, "\n---\n", 5);
        }
        /* drop the rule's own id line; add a fresh one */
        char *line = y;
        while (line && *line) {
            char *nl = strchr(line, '\n');
            size_t ll = nl ? (size_t)(nl - line) + 1 : strlen(line);
            if (strncmp(line, "id:", 3) != 0) {
                text_add(&t, line, ll);
            }
            line = nl ? nl + 1 : NULL;
        }
        text_add(&t, id, strlen(id));
        free(y);
        made++;
    }
    rules_report_init(&rep);
    errbuf_clear(&eb);
    if (rules_load_mem("bench-pack.yml", t.p ? t.p : "", t.n, NULL, &rs, &rep, &eb) != 0) {
        fprintf(stderr, "rules: %s\n", errbuf_msg(&eb));
        exit(1);
    }
    if (rep.loaded != count) {
        fprintf(stderr, "pack of %zu: %zu loaded\n", count, rep.loaded);
        for (size_t i = 0; i < rep.n; i++) {
            if (rep.items[i].reason) {
                fprintf(stderr, "  %s\n", rep.items[i].reason);
            }
        }
        exit(1);
    }
    rules_report_release(&rep);
    free(t.p);
    return rs;
}

static int count_alert(const struct rules_alert *a, void *arg)
{
    (void)a;
    (*(uint64_t *)arg)++;
    return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s EVENTS.ndjson SIGMA_DIR [RUNS=3]\n", argv[0]);
        return 2;
    }
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    size_t len;
    char *text = slurp(argv[1], &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 1;
    }
    /* map and encode every event once */
    struct buf enc;
    buf_init(&enc, (size_t)8 << 30);
    size_t nev = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        struct buf ev;
        struct buf scratch;
        struct errbuf eb;
        struct rec r;
        buf_init(&ev, 1 << 24);
        buf_init(&scratch, 1 << 20);
        if (ll && json_to_mp((struct span){ (const uint8_t *)line, ll }, &ev, NULL, &eb) == 0 &&
            map_event(MAP_AUTO, buf_span(&ev), 0, "forward", &r, &scratch, &eb) == 0) {
            r.seq = nev + 1;
            r.has_seq = true;
            r.received = r.ts;
            r.has_received = true;
            if (rec_encode(&r, &enc) == 0) {
                nev++;
            }
        }
        buf_release(&ev);
        buf_release(&scratch);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    struct rec *recs = calloc(nev ? nev : 1, sizeof(*recs));
    struct span in = buf_span(&enc);
    for (size_t i = 0; i < nev; i++) {
        if (rec_decode(&in, &recs[i]) != 0) {
            fprintf(stderr, "decode failed at %zu\n", i);
            return 1;
        }
    }
    char **files = NULL;
    size_t nfiles = 0;
    collect(argv[2], &files, &nfiles);
    qsort(files, nfiles, sizeof(*files), cmp_str);
    if (nfiles == 0) {
        fprintf(stderr, "no rules under %s\n", argv[2]);
        return 1;
    }
    printf("%zu events mapped from %s; rules from %s (%zu files)\n", nev, argv[1], argv[2], nfiles);
    static const size_t counts[] = { 0, 50, 200 };
    double ns_per_event[3] = { 0 };
    for (size_t c = 0; c < 3; c++) {
        struct ruleset *rs = make_pack(files, nfiles, counts[c]);
        double *rates = calloc((size_t)runs, sizeof(*rates));
        uint64_t alerts = 0;
        uint64_t matches = 0;
        for (int run = 0; run < runs; run++) {
            struct rules_engine *e;
            if (rules_engine_new(rs, NULL, &e) != 0) {
                return 1;
            }
            alerts = 0;
            int64_t t0 = vg_mono_ns();
            for (size_t i = 0; i < nev; i++) {
                rules_engine_eval(e, &recs[i], count_alert, &alerts);
            }
            int64_t t1 = vg_mono_ns();
            rates[run] = (double)(t1 - t0) / (double)nev;
            struct rules_stats st;
            rules_engine_stats(e, NULL, &st);
            matches = st.matches;
            rules_engine_free(e);
        }
        qsort(rates, (size_t)runs, sizeof(*rates), cmp_dbl);
        ns_per_event[c] = rates[runs / 2];
        /* matches: the work; alert records: incidents' state changes (schemas/alert.md) */
        printf("%3zu rules: %10.0f events/s  %8.1f ns/event  (%llu matches, %llu alert records "
               "per pass)\n",
               counts[c], 1e9 / ns_per_event[c], ns_per_event[c], (unsigned long long)matches,
               (unsigned long long)alerts);
        free(rates);
        ruleset_free(rs);
    }
    printf("cost per rule: %.2f ns/event (50 rules), %.2f ns/event (200 rules)\n",
           (ns_per_event[1] - ns_per_event[0]) / 50, (ns_per_event[2] - ns_per_event[0]) / 200);
    for (size_t i = 0; i < nfiles; i++) {
        free(files[i]);
    }
    free(files);
    free(recs);
    buf_release(&enc);
    return 0;
}
