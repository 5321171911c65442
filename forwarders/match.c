/* forwarders/match.c: which alerts a forwarder gets. A match is a map of keys to values;
 * an alert fits when every key fits (AND), and a key fits when any of its values does
 * (OR):
 *   severity: ">=high" | "critical" | "<=warning" ...  (Sigma levels or vigil's names)
 *   rule:     the rule's title        rule_id: its id      tag: one of its tags
 *   <field>:  any normalized event field of the alert record (kind, namespace, agent,
 *             host, user, src_ip...), compared as text; a trailing * matches a prefix;
 *             IP fields also take a CIDR (10.0.0.0/8).
 * Compiled once from the config; pure afterwards, any thread. */
#include <stdlib.h>
#include <string.h>

#include "common/ip.h"
#include "common/xalloc.h"
#include "forwarders/fwd_int.h"

enum cond_kind { COND_SEVERITY, COND_RULE, COND_RULE_ID, COND_TAG, COND_FIELD };
enum sev_op { SEV_EQ, SEV_GE, SEV_GT, SEV_LE, SEV_LT };

struct value {
    struct span s; /* borrowed from the compiled copy below */
    bool prefix;   /* the value ended in '*' (which s leaves out) */
    bool cidr;     /* IP fields: net/bits */
    uint8_t net[16];
    int bits;
    enum sev_op op; /* severity */
    int rank;       /* severity */
};

struct cond {
    enum cond_kind kind;
    enum vg_field field;
    struct value *vals;
    size_t nvals;
};

struct fwd_match {
    struct cond *conds;
    size_t n;
    char **strs; /* owned copies of the values */
    size_t nstrs;
};

void fwd_match_free(struct fwd_match *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        free(m->conds[i].vals);
    }
    for (size_t i = 0; i < m->nstrs; i++) {
        free(m->strs[i]);
    }
    free(m->conds);
    free(m->strs);
    free(m);
}

/* ">=high" -> GE, rank of high (error). Ranks count down in severity: 0 is emergency. */
static int parse_severity(const char *s, struct value *v)
{
    static const struct {
        const char *p;
        enum sev_op op;
    } ops[] = {
        { ">=", SEV_GE }, { "<=", SEV_LE }, { ">", SEV_GT }, { "<", SEV_LT }, { "=", SEV_EQ }
    };
    v->op = SEV_EQ;
    for (size_t i = 0; i < VG_ARRAY_LEN(ops); i++) {
        size_t n = strlen(ops[i].p);
        if (strncmp(s, ops[i].p, n) == 0) {
            v->op = ops[i].op;
            s += n;
            break;
        }
    }
    while (*s == ' ') {
        s++;
    }
    /* Sigma's levels as rules/ maps them: informational info, low notice, medium
     * warning, high error, critical critical (vg_severity_parse knows the others). */
    int r = strcmp(s, "informational") == 0 ? VG_SEV_INFO : vg_severity_parse(span_str(s));
    if (r < 0) {
        return -1;
    }
    v->rank = r;
    return 0;
}

static bool sev_holds(const struct value *v, int rank)
{
    /* More severe = lower rank, so ">=high" is rank <= high's. */
    switch (v->op) {
    case SEV_GE:
        return rank <= v->rank;
    case SEV_GT:
        return rank < v->rank;
    case SEV_LE:
        return rank >= v->rank;
    case SEV_LT:
        return rank > v->rank;
    default:
        return rank == v->rank;
    }
}

int fwd_match_compile(const struct vg_config *cfg, const struct cfg_strmap *m,
                      struct fwd_match **out, struct errbuf *eb)
{
    *out = NULL;
    if (!m || m->n == 0) {
        return 0;
    }
    struct fwd_match *mt = xcalloc(1, sizeof(*mt));
    size_t total = 0;
    for (size_t i = 0; i < m->n; i++) {
        total += m->items[i].nvals;
    }
    mt->conds = xcalloc(m->n, sizeof(*mt->conds));
    mt->strs = xcalloc(total ? total : 1, sizeof(char *));
    for (size_t i = 0; i < m->n; i++) {
        const struct cfg_strmap_item *it = &m->items[i];
        struct cond *c = &mt->conds[mt->n++];
        int f = -1;
        if (strcmp(it->key, "severity") == 0) {
            c->kind = COND_SEVERITY;
        } else if (strcmp(it->key, "rule") == 0) {
            c->kind = COND_RULE;
        } else if (strcmp(it->key, "rule_id") == 0) {
            c->kind = COND_RULE_ID;
        } else if (strcmp(it->key, "tag") == 0 || strcmp(it->key, "tags") == 0) {
            c->kind = COND_TAG;
        } else if ((f = vg_field_lookup(span_str(it->key))) >= 0 && f != VG_F_RAW &&
                   vg_field_type((enum vg_field)f) == VG_FT_STR) {
            c->kind = COND_FIELD;
            c->field = (enum vg_field)f;
        } else if (f >= 0 && (vg_field_type((enum vg_field)f) == VG_FT_IP ||
                              vg_field_type((enum vg_field)f) == VG_FT_SEVERITY)) {
            c->kind = COND_FIELD;
            c->field = (enum vg_field)f;
        } else {
            int rc = config_error(cfg, &it->key, eb,
                                  "cannot match on '%s': expected severity, rule, rule_id, tag "
                                  "or an event field (kind, namespace, agent, host, user, "
                                  "src_ip, ...)",
                                  it->key);
            fwd_match_free(mt);
            return rc;
        }
        c->vals = xcalloc(it->nvals, sizeof(*c->vals));
        for (size_t j = 0; j < it->nvals; j++) {
            const char *s = it->vals[j];
            struct value *v = &c->vals[c->nvals++];
            if (c->kind == COND_SEVERITY ||
                (c->kind == COND_FIELD && vg_field_type(c->field) == VG_FT_SEVERITY)) {
                if (parse_severity(s, v) < 0) {
                    int rc = config_error(cfg, &it->key, eb,
                                          "'%s' is not a severity: expected e.g. \">=high\", "
                                          "\"critical\" (emergency, alert, critical, error, "
                                          "warning, notice, info, debug, or Sigma's "
                                          "informational, low, medium, high)",
                                          s);
                    fwd_match_free(mt);
                    return rc;
                }
                c->kind = COND_SEVERITY;
                continue;
            }
            size_t n = strlen(s);
            if (n == 0) {
                int rc = config_error(cfg, &it->key, eb, "an empty value matches nothing");
                fwd_match_free(mt);
                return rc;
            }
            char *copy = xstrdup(s);
            mt->strs[mt->nstrs++] = copy;
            if (n > 1 && copy[n - 1] == '*') {
                v->prefix = true;
                n--;
            }
            v->s = (struct span){ (const uint8_t *)copy, n };
            const char *slash = strchr(copy, '/');
            if (c->kind == COND_FIELD && vg_field_type(c->field) == VG_FT_IP && slash) {
                uint64_t bits;
                bool v4;
                struct span addr = { (const uint8_t *)copy, (size_t)(slash - copy) };
                if (!ip_parse16(addr, v->net, &v4) ||
                    parse_u64(span_str(slash + 1), v4 ? 32 : 128, &bits) < 0) {
                    int rc = config_error(cfg, &it->key, eb,
                                          "'%s' is not an address or a CIDR network", s);
                    fwd_match_free(mt);
                    return rc;
                }
                v->cidr = true;
                v->bits = (int)bits + (v4 ? 96 : 0);
            } else if (c->kind == COND_FIELD && vg_field_type(c->field) == VG_FT_IP && !v->prefix &&
                       ip_parse16(v->s, v->net, NULL)) {
                v->cidr = true; /* one address, however it is spelled */
                v->bits = 128;
            }
        }
    }
    *out = mt;
    return 0;
}

static bool value_fits(const struct value *v, struct span s)
{
    if (v->prefix) {
        return span_starts_with(s, v->s);
    }
    return span_eq(s, v->s);
}

static bool cond_fits(const struct cond *c, const struct fwd_alert *a)
{
    for (size_t i = 0; i < c->nvals; i++) {
        const struct value *v = &c->vals[i];
        switch (c->kind) {
        case COND_SEVERITY:
            if (sev_holds(v, (int)a->severity)) {
                return true;
            }
            break;
        case COND_RULE:
            if (value_fits(v, a->title)) {
                return true;
            }
            break;
        case COND_RULE_ID:
            if (value_fits(v, a->rule_id)) {
                return true;
            }
            break;
        case COND_TAG:
            for (size_t t = 0; t < a->ntags; t++) {
                if (value_fits(v, a->tags[t])) {
                    return true;
                }
            }
            break;
        case COND_FIELD: {
            struct span s = a->r.str[c->field];
            if (!s.p) {
                break;
            }
            if (v->cidr) {
                uint8_t ip[16];
                if (ip_parse16(s, ip, NULL) && ip_in_net(ip, v->net, v->bits)) {
                    return true;
                }
            } else if (value_fits(v, s)) {
                return true;
            }
            break;
        }
        }
    }
    return false;
}

bool fwd_match_test(const struct fwd_match *m, const struct fwd_alert *a)
{
    for (size_t i = 0; m && i < m->n; i++) {
        if (!cond_fits(&m->conds[i], a)) {
            return false;
        }
    }
    return true;
}
