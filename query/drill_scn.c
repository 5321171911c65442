/* query/drill_scn.c: fire drill scenarios (drill.h): the YAML loader (common/cfg over
 * libyaml, one option table per level, so errors name file, line, column and key),
 * the templates and the run ids. Pure but for drill_scn_load's read and the random
 * bytes of new template values (getrandom). Any thread. */
#include "query/drill.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/time.h"
#include "common/xalloc.h"

#define NS_MS  1000000LL
#define NS_SEC 1000000000LL
#define NS_H   (3600 * NS_SEC)

static const char *const drill_formats[] = {
    "ndjson", "falco", "k8s-audit", "trivy", "syslog", NULL
};
/* Forward (vigil send) and HTTPS (POST /v1/...); the syslog listener is not drilled yet. */
static const char *const drill_listeners[] = { "forward", "https", NULL };

static const struct cfg_opt expect_opts[] = {
    { "rule", CFG_STR, NULL, 0, 0, CFG_OFF(struct drill_expect, rule),
      "the rule that must fire: its id or its title", .flags = 0 },
    { "tag", CFG_STR, NULL, 0, 0, CFG_OFF(struct drill_expect, tag),
      "or a tag the rule that fires must carry (attack.t1110)", .flags = 0 },
    { "group", CFG_STRMAP, NULL, 0, 16, CFG_OFF(struct drill_expect, group),
      "group-by values the alert must have (templates)", .flags = 0 },
    { "within", CFG_DURATION, "60s", NS_MS, NS_H, CFG_OFF(struct drill_expect, within_ns),
      "time to detect allowed, from the step's first event stored to the alert stored",
      .flags = 0 },
    { "page", CFG_STRLIST, NULL, 0, 16, CFG_OFF(struct drill_expect, page),
      "receivers (forwarder names) that must deliver the alert",
      .count_off = CFG_OFF(struct drill_expect, npage) },
    { "page_within", CFG_DURATION, "2m", NS_MS, NS_H, CFG_OFF(struct drill_expect, page_within_ns),
      "time to page allowed, from the step's first event stored to the delivery", .flags = 0 },
    { NULL },
};

static const struct cfg_opt step_opts[] = {
    { "name", CFG_STR, NULL, 0, 0, CFG_OFF(struct drill_step, name), "what the step does",
      .flags = CFG_F_REQUIRED },
    { "format", CFG_ENUM, "ndjson", 0, 0, CFG_OFF(struct drill_step, format),
      "input format of the events (as vigil send --format)", .choices = drill_formats },
    { "agent", CFG_STR, NULL, 0, 0, CFG_OFF(struct drill_step, agent),
      "the agent certificate it ships with (with --pki DIR: DIR/AGENT.pem)", .flags = 0 },
    { "listener", CFG_ENUM, "forward", 0, 0, CFG_OFF(struct drill_step, listener),
      "the listener it is shipped through", .choices = drill_listeners },
    { "delay", CFG_DURATION, "0", 0, NS_H, CFG_OFF(struct drill_step, delay_ns),
      "wait before shipping it", .flags = 0 },
    { "events", CFG_STR, NULL, 0, 0, CFG_OFF(struct drill_step, events),
      "the events, in the step's format (templates)", .flags = CFG_F_REQUIRED },
    { "expect", CFG_LIST, NULL, 0, DRILL_MAX_EXPECT, CFG_OFF(struct drill_step, expect),
      "what must happen", .sub = expect_opts, .elem_size = sizeof(struct drill_expect),
      .count_off = CFG_OFF(struct drill_step, nexpect) },
    { NULL },
};

static const struct cfg_opt scn_opts[] = {
    { "name", CFG_STR, NULL, 0, 0, CFG_OFF(struct drill_scn, name), "the scenario's name",
      .flags = CFG_F_REQUIRED },
    { "description", CFG_STR, NULL, 0, 0, CFG_OFF(struct drill_scn, description), "what it plays",
      .flags = 0 },
    { "steps", CFG_LIST, NULL, 1, DRILL_MAX_STEPS, CFG_OFF(struct drill_scn, steps),
      "the attack, in order", .flags = CFG_F_REQUIRED, .sub = step_opts,
      .elem_size = sizeof(struct drill_step), .count_off = CFG_OFF(struct drill_scn, nsteps) },
    { NULL },
};

void drill_scn_free(struct drill_scn *s)
{
    if (!s) {
        return;
    }
    cfg_release(scn_opts, s);
    free(s->file);
    free(s->text);
    free(s);
}

/* A template checked by rendering it with throwaway values; v gathers the random
 * variables of the whole scenario (a run makes them all: at most DRILL_MAX_VARS). */
static int check_template(const struct cfg_doc *d, const void *field, const char *tmpl,
                          struct drill_vars *v, struct errbuf *eb)
{
    struct buf out;
    struct errbuf why;

    buf_init(&out, 4u << 20);
    errbuf_clear(&why);
    int rc = drill_render(tmpl, "drill-check", 0, v, &out, &why);
    buf_release(&out);
    if (rc < 0) {
        return cfg_doc_error(d, field, eb, "%s", errbuf_msg(&why));
    }
    return 0;
}

static int check_scn(const struct cfg_doc *d, struct drill_scn *s, struct errbuf *eb)
{
    struct drill_vars v = { 0 };
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < s->nsteps; i++) {
        struct drill_step *st = &s->steps[i];
        if (!st->events[strspn(st->events, " \t\r\n")]) {
            rc = cfg_doc_error(d, &st->events, eb, "a step needs at least one event");
            break;
        }
        if (strcmp(st->listener, "https") == 0 && strcmp(st->format, "syslog") == 0) {
            rc = cfg_doc_error(d, &st->listener, eb,
                               "syslog lines are not shipped over HTTPS: listener forward");
            break;
        }
        rc = check_template(d, &st->events, st->events, &v, eb);
        for (size_t j = 0; rc == 0 && j < st->nexpect; j++) {
            struct drill_expect *x = &st->expect[j];
            if (!x->rule && !x->tag) {
                rc = cfg_doc_error(d, &x->rule, eb, "an expectation needs a rule or a tag");
                break;
            }
            for (size_t k = 0; rc == 0 && k < x->group.n; k++) {
                struct cfg_strmap_item *it = &x->group.items[k];
                if (it->nvals != 1) {
                    rc = cfg_doc_error(d, &x->group, eb,
                                       "group value '%s' must be one string, not a list", it->key);
                    break;
                }
                rc = check_template(d, &x->group, it->vals[0], &v, eb);
            }
        }
    }
    drill_vars_release(&v);
    return rc;
}

int drill_scn_load_mem(const char *name, struct span text, struct drill_scn **out,
                       struct errbuf *eb)
{
    struct cfg_doc *d = NULL;
    struct drill_scn *s = xcalloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    s->file = xstrdup(name);
    s->text = xstrndup((const char *)text.p, text.n);
    if ((rc = cfg_doc_parse(name, text, &d, eb)) < 0) {
        drill_scn_free(s);
        return rc;
    }
    rc = cfg_doc_apply(d, scn_opts, s, NULL, eb);
    if (rc == 0) {
        rc = check_scn(d, s, eb);
    }
    cfg_doc_free(d);
    if (rc < 0) {
        drill_scn_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int drill_scn_load(const char *path, struct drill_scn **out, struct errbuf *eb)
{
    FILE *f = fopen(path, "rb");
    struct buf text;
    char tmp[65536];
    size_t n;
    int rc = 0;

    *out = NULL;
    if (!f) {
        rc = -errno;
        errbuf_set(eb, "cannot read scenario '%s': %s", path, strerror(errno));
        return rc;
    }
    buf_init(&text, CFG_MAX_FILE_BYTES);
    while (rc == 0 && (n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if (buf_append(&text, tmp, n) < 0) {
            errbuf_set(eb, "%s: a scenario is at most 1 MiB", path);
            rc = VG_ECONFIG;
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
        errbuf_set(eb, "cannot read scenario '%s'", path);
    }
    fclose(f);
    if (rc == 0) {
        rc = drill_scn_load_mem(path, buf_span(&text), out, eb);
    }
    buf_release(&text);
    return rc;
}

void drill_vars_release(struct drill_vars *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->key[i]);
        free(v->val[i]);
    }
    v->n = 0;
}

int drill_vars_parse(struct span text, struct drill_vars *v)
{
    drill_vars_release(v);
    while (text.n > 0) {
        const uint8_t *nl = memchr(text.p, '\n', text.n);
        size_t len = nl ? (size_t)(nl - text.p) : text.n;
        const uint8_t *eq = memchr(text.p, '=', len);
        if (len > 0) {
            if (!eq || eq == text.p || v->n == DRILL_MAX_VARS) {
                drill_vars_release(v);
                return VG_EPARSE;
            }
            v->key[v->n] = xstrndup((const char *)text.p, (size_t)(eq - text.p));
            v->val[v->n] = xstrndup((const char *)eq + 1, len - (size_t)(eq - text.p) - 1);
            v->n++;
        }
        span_advance(&text, nl ? len + 1 : len);
    }
    return 0;
}

int drill_vars_format(const struct drill_vars *v, struct buf *out)
{
    for (size_t i = 0; i < v->n; i++) {
        int rc = buf_appendf(out, "%s=%s\n", v->key[i], v->val[i]);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static void random_bytes(uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            /* No entropy source: still different per call, which is all a drill needs. */
            uint64_t x = (uint64_t)vg_mono_ns() * 0x9e3779b97f4a7c15ull ^ (uint64_t)vg_now_ns();
            for (; got < n; got++, x = x * 6364136223846793005ull + 1442695040888963407ull) {
                p[got] = (uint8_t)(x >> 56);
            }
            return;
        }
        got += (size_t)r;
    }
}

static void random_hex(char *out, size_t digits)
{
    static const char hx[] = "0123456789abcdef";
    uint8_t b[32];

    random_bytes(b, (digits + 1) / 2);
    for (size_t i = 0; i < digits; i++) {
        out[i] = hx[(b[i / 2] >> ((i % 2) * 4)) & 15];
    }
    out[digits] = 0;
}

/* The value of a random variable ("ip:attacker"), made on first use. NULL when v is
 * full. */
static const char *random_var(struct drill_vars *v, const char *key, size_t kind_len)
{
    char val[96];

    for (size_t i = 0; i < v->n; i++) {
        if (strcmp(v->key[i], key) == 0) {
            return v->val[i];
        }
    }
    if (v->n == DRILL_MAX_VARS) {
        return NULL;
    }
    if (strncmp(key, "ip", kind_len) == 0) {
        uint8_t b[3];
        random_bytes(b, sizeof(b));
        /* 198.18.0.0/15, avoiding .0 and .255 hosts */
        snprintf(val, sizeof(val), "198.%d.%d.%d", 18 + (b[0] & 1), b[1], 1 + b[2] % 254);
    } else if (strncmp(key, "name", kind_len) == 0) {
        char hx[16];
        random_hex(hx, 8);
        snprintf(val, sizeof(val), "%.60s-%s", key + kind_len + 1, hx);
    } else {
        random_hex(val, 12);
    }
    v->key[v->n] = xstrdup(key);
    v->val[v->n] = xstrdup(val);
    return v->val[v->n++];
}

static bool var_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 60) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

int drill_render(const char *tmpl, const char *run, int64_t now_ns, struct drill_vars *v,
                 struct buf *out, struct errbuf *eb)
{
    const char *p = tmpl;
    int rc = 0;

    while (rc == 0 && *p) {
        const char *open = strstr(p, "{{");
        if (!open) {
            rc = buf_append(out, p, strlen(p));
            break;
        }
        if ((rc = buf_append(out, p, (size_t)(open - p))) < 0) {
            break;
        }
        const char *name = open + 2;
        const char *close = strstr(name, "}}");
        const char *nl = strchr(name, '\n');
        size_t line = 1;
        for (const char *c = tmpl; c < open; c++) {
            line += *c == '\n';
        }
        if (!close || (nl && nl < close)) {
            errbuf_set(eb, "line %zu of the template: '{{' without '}}' on its line", line);
            return VG_EPARSE;
        }
        size_t n = (size_t)(close - name);
        char key[80];
        char val[96];
        const char *value = NULL;
        if (n >= sizeof(key)) {
            errbuf_set(eb, "line %zu of the template: unknown template variable '{{%.*s...}}'",
                       line, 40, name);
            return VG_EPARSE;
        }
        memcpy(key, name, n);
        key[n] = 0;
        const char *colon = strchr(key, ':');
        if (strcmp(key, "run") == 0) {
            value = run;
        } else if (strcmp(key, "now") == 0) {
            vg_time_format(now_ns, 9, val, sizeof(val));
            value = val;
        } else if (strcmp(key, "now_ns") == 0) {
            snprintf(val, sizeof(val), "%" PRId64, now_ns);
            value = val;
        } else if (strcmp(key, "now_syslog") == 0) {
            time_t t = (time_t)(now_ns / NS_SEC);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(val, sizeof(val), "%b %e %H:%M:%S", &tm);
            value = val;
        } else if (colon && var_name_ok(colon + 1, strlen(colon + 1)) &&
                   (strncmp(key, "ip:", 3) == 0 || strncmp(key, "name:", 5) == 0 ||
                    strncmp(key, "hex:", 4) == 0)) {
            value = random_var(v, key, (size_t)(colon - key));
            if (!value) {
                errbuf_set(eb, "more than %d random template variables", DRILL_MAX_VARS);
                return VG_ELIMIT;
            }
        } else {
            errbuf_set(eb,
                       "line %zu of the template: unknown template variable '{{%s}}' (run, now, "
                       "now_syslog, now_ns, ip:NAME, name:NAME, hex:NAME)",
                       line, key);
            return VG_EPARSE;
        }
        rc = buf_append(out, value, strlen(value));
        p = close + 2;
    }
    return rc;
}

void drill_run_id(int64_t now_ns, char out[DRILL_RUN_ID_SIZE])
{
    time_t t = (time_t)(now_ns / NS_SEC);
    struct tm tm;
    char ts[20];
    char hx[10];

    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
    random_hex(hx, 8);
    snprintf(out, DRILL_RUN_ID_SIZE, "drill-%s-%s", ts, hx);
}

int drill_run_id_time(const char *run, int64_t *ns)
{
    int y, mo, d, h, mi, s;
    int n = 0;
    char hx[16];

    if (strlen(run) != 31 ||
        sscanf(run, "drill-%4d%2d%2dT%2d%2d%2dZ-%8[0-9a-f]%n", &y, &mo, &d, &h, &mi, &s, hx, &n) !=
            7 ||
        n != 31 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
        return VG_EPARSE;
    }
    *ns = (vg_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + s) *
          NS_SEC;
    return 0;
}
