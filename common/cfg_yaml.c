/* common/cfg_yaml.c: YAML text -> option tables (see cfg.h), the one user of <yaml.h> in
 * common/.
 *
 * Loading is two passes over text of at most CFG_MAX_FILE_BYTES. The first uses libyaml's
 * event API to refuse what vigil.yaml never needs and a hostile file could abuse: aliases
 * (a few bytes referring to a node many times), anchors, explicit tags, nesting deeper
 * than CFG_MAX_DEPTH, more than CFG_MAX_NODES nodes and further documents; it also reports syntax
 * errors with their place. The second loads the document (yaml_parser_load); since no node is
 * shared, a walk over it is linear in the text.
 *
 * Invariants: every value a walk stores is recorded in cfg_doc.where (field address, key
 * path, place), so checks across keys can report where a value came from; everything a
 * walk allocates is reachable from the object, so cfg_release() frees it after a failure
 * half-way. No globals; a cfg_doc belongs to one thread at a time. */
#include "common/cfg.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "common/time.h"
#include "common/xalloc.h"

#define CFG_PATH_MAX 256 /* key paths: table names and list indexes, never file bytes */
#define CFG_SHOW_MAX 64  /* file bytes quoted in a message */

struct cfg_where {
    const void *field; /* address of the stored value */
    char *path;        /* "listen.forward", "forwarders[1].url" */
    size_t line, col;  /* 1-based; 0 = no place (the key is absent and so is its map) */
    bool given;        /* the file set the value (else it is the default) */
};

struct cfg_doc {
    char *name;
    yaml_document_t doc;
    bool has_tree; /* doc is loaded (cfg_doc_drop_tree frees it early) */
    struct cfg_where *where;
    size_t nwhere, capwhere;
};

/* One walk: the document, where paths resolve, the error sink. NULL doc = defaults only. */
struct walk {
    struct cfg_doc *d;
    const char *base_dir;
    struct errbuf *eb;
};

/* A place in the file: 1-based line and column, or 0 when there is none. */
struct place {
    size_t line, col;
};

static struct place place_of(const yaml_node_t *n)
{
    if (!n) {
        return (struct place){ 0, 0 };
    }
    return (struct place){ n->start_mark.line + 1, n->start_mark.column + 1 };
}

/* Copies file bytes for a message: printable ASCII as is, others as \xNN, truncated. */
static const char *show(const void *p, size_t n, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = p;
    size_t o = 0;

    assert(cap >= 8);
    for (size_t i = 0; i < n; i++) {
        if (o + 8 > cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            out[o++] = (char)s[i];
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[s[i] >> 4];
            out[o++] = hex[s[i] & 15];
        }
    }
    out[o] = 0;
    return out;
}

/* show() between single quotes. */
static const char *quote(const void *p, size_t n, char *out, size_t cap)
{
    assert(cap >= 2 + 8);
    out[0] = '\'';
    show(p, n, out + 1, cap - 2);
    size_t len = strlen(out);
    out[len] = '\'';
    out[len + 1] = 0;
    return out;
}

static int failv(const char *name, struct place at, struct errbuf *eb, const char *fmt, va_list ap)
    VG_PRINTF(4, 0);

static int failv(const char *name, struct place at, struct errbuf *eb, const char *fmt, va_list ap)
{
    char msg[sizeof(eb->msg)];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (at.line) {
        errbuf_set(eb, "%s:%zu:%zu: %s", name, at.line, at.col, msg);
    } else {
        errbuf_set(eb, "%s: %s", name, msg);
    }
    return VG_ECONFIG;
}

static int fail_at(const char *name, struct place at, struct errbuf *eb, const char *fmt, ...)
    VG_PRINTF(4, 5);

static int fail_at(const char *name, struct place at, struct errbuf *eb, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int rc = failv(name, at, eb, fmt, ap);
    va_end(ap);
    return rc;
}

static int walk_fail(struct walk *w, struct place at, const char *fmt, ...) VG_PRINTF(3, 4);

static int walk_fail(struct walk *w, struct place at, const char *fmt, ...)
{
    va_list ap;
    char msg[sizeof(w->eb->msg)];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!w->d) {
        /* A default of ours did not parse: a bug in a table, not in a file. */
        fprintf(stderr, "cfg: bad default: %s\n", msg);
        abort();
    }
    return fail_at(w->d->name, at, w->eb, "%s", msg);
}

/* --- value syntax ------------------------------------------------------------------- */

int cfg_size_parse(struct span s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        { "", 1 },
        { "B", 1 },
        { "KB", 1000ULL },
        { "MB", 1000ULL * 1000 },
        { "GB", 1000ULL * 1000 * 1000 },
        { "TB", 1000ULL * 1000 * 1000 * 1000 },
        { "KiB", 1ULL << 10 },
        { "MiB", 1ULL << 20 },
        { "GiB", 1ULL << 30 },
        { "TiB", 1ULL << 40 },
    };
    size_t i = 0;
    uint64_t v;

    while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
        i++;
    }
    if (i == 0 || parse_u64((struct span){ s.p, i }, UINT64_MAX, &v) < 0) {
        return VG_EPARSE;
    }
    struct span unit = { s.p + i, s.n - i };
    if (unit.n > 1 && unit.p[0] == ' ') {
        span_advance(&unit, 1);
    }
    for (size_t u = 0; u < VG_ARRAY_LEN(units); u++) {
        if (span_eq_str(unit, units[u].unit)) {
            if (v > UINT64_MAX / units[u].mult) {
                return VG_EPARSE;
            }
            *out = v * units[u].mult;
            return 0;
        }
    }
    return VG_EPARSE;
}

static bool host_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

int cfg_addr_parse(struct span s, struct cfg_addr *out)
{
    struct span host;
    struct span port;
    uint64_t pv;

    if (s.n == 0 || s.n > 300) {
        return VG_EPARSE;
    }
    if (s.p[0] == '[') {
        const uint8_t *close = memchr(s.p, ']', s.n);
        char v6[INET6_ADDRSTRLEN + 8];
        struct in6_addr a6;

        if (!close || (size_t)(close - s.p) + 1 >= s.n || close[1] != ':') {
            return VG_EPARSE;
        }
        host = (struct span){ s.p + 1, (size_t)(close - s.p) - 1 };
        port = (struct span){ close + 2, s.n - (size_t)(close - s.p) - 2 };
        if (host.n == 0 || host.n >= sizeof(v6)) {
            return VG_EPARSE;
        }
        memcpy(v6, host.p, host.n);
        v6[host.n] = 0;
        if (inet_pton(AF_INET6, v6, &a6) != 1) {
            return VG_EPARSE;
        }
    } else {
        const uint8_t *colon = memchr(s.p, ':', s.n);

        /* One colon only: an IPv6 address needs its brackets to tell it from the port. */
        if (!colon || memchr(colon + 1, ':', s.n - (size_t)(colon - s.p) - 1)) {
            return VG_EPARSE;
        }
        host = (struct span){ s.p, (size_t)(colon - s.p) };
        port = (struct span){ colon + 1, s.n - host.n - 1 };
        if (host.n == 0 || host.n > 253) {
            return VG_EPARSE;
        }
        for (size_t i = 0; i < host.n; i++) {
            if (!host_char_ok(host.p[i])) {
                return VG_EPARSE;
            }
        }
    }
    if (parse_u64(port, 65535, &pv) < 0) {
        return VG_EPARSE;
    }
    out->host = xstrndup((const char *)host.p, host.n);
    out->port = (int)pv;
    out->enabled = true;
    return 0;
}

bool cfg_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (!host) {
        return false;
    }
    if (strcasecmp(host, "localhost") == 0) {
        return true;
    }
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    }
    return false;
}

/* Sizes and durations in messages and the reference, in the unit a human would write. */
static void fmt_size(uint64_t v, char *out, size_t cap)
{
    static const char *const bin[] = { "", "KiB", "MiB", "GiB", "TiB" };
    static const char *const dec[] = { "", "KB", "MB", "GB", "TB" };
    uint64_t bv = v;
    uint64_t dv = v;
    size_t bi = 0;
    size_t di = 0;

    while (bv && bv % 1024 == 0 && bi + 1 < VG_ARRAY_LEN(bin)) {
        bv /= 1024;
        bi++;
    }
    while (dv && dv % 1000 == 0 && di + 1 < VG_ARRAY_LEN(dec)) {
        dv /= 1000;
        di++;
    }
    if (dv < bv) {
        snprintf(out, cap, "%" PRIu64 "%s", dv, dec[di]);
    } else {
        snprintf(out, cap, "%" PRIu64 "%s", bv, bin[bi]);
    }
}

static void fmt_duration(int64_t ns, char *out, size_t cap)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {
        { "d", 86400 * VG_NS_PER_SEC },
        { "h", 3600 * VG_NS_PER_SEC },
        { "m", 60 * VG_NS_PER_SEC },
        { "s", VG_NS_PER_SEC },
        { "ms", 1000000 },
        { "us", 1000 },
    };

    if (ns != 0) {
        for (size_t u = 0; u < VG_ARRAY_LEN(units); u++) {
            if (ns % units[u].ns == 0) {
                snprintf(out, cap, "%" PRId64 "%s", ns / units[u].ns, units[u].unit);
                return;
            }
        }
    }
    if (ns == 0) {
        snprintf(out, cap, "0");
    } else {
        snprintf(out, cap, "%" PRId64 "ns", ns);
    }
}

static bool bounded(const struct cfg_opt *o)
{
    return o->min != 0 || o->max != 0;
}

/* "1..10", "4KiB..16MiB", "0..1s": the bounds as the file would write them. */
static void fmt_bounds(const struct cfg_opt *o, char *out, size_t cap)
{
    char lo[32];
    char hi[32];

    switch (o->type) {
    case CFG_SIZE:
        fmt_size((uint64_t)o->min, lo, sizeof(lo));
        fmt_size((uint64_t)o->max, hi, sizeof(hi));
        break;
    case CFG_DURATION:
        fmt_duration(o->min, lo, sizeof(lo));
        fmt_duration(o->max, hi, sizeof(hi));
        break;
    default:
        snprintf(lo, sizeof(lo), "%" PRId64, o->min);
        snprintf(hi, sizeof(hi), "%" PRId64, o->max);
        break;
    }
    snprintf(out, cap, "%s..%s", lo, hi);
}

/* --- parse -------------------------------------------------------------------------- */

static int yaml_fail(const char *name, const yaml_parser_t *p, struct errbuf *eb)
{
    const char *problem = p->problem ? p->problem : "cannot parse";

    if (p->error == YAML_READER_ERROR) {
        return fail_at(name, (struct place){ 0, 0 }, eb, "invalid YAML: %s at byte %zu", problem,
                       p->problem_offset);
    }
    struct place at = { p->problem_mark.line + 1, p->problem_mark.column + 1 };
    if (p->context) {
        return fail_at(name, at, eb, "invalid YAML: %s (%s at line %zu)", problem, p->context,
                       p->context_mark.line + 1);
    }
    return fail_at(name, at, eb, "invalid YAML: %s", problem);
}

/* The first pass: events only, refusing what the document API would accept but vigil.yaml
 * never needs. */
static int screen_events(const char *name, struct span text, struct errbuf *eb)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int depth = 0;
    int docs = 0;
    size_t nodes = 0;
    int rc = 0;

    if (!yaml_parser_initialize(&p)) {
        return fail_at(name, (struct place){ 0, 0 }, eb, "cannot initialize the YAML parser");
    }
    yaml_parser_set_input_string(&p, text.p, text.n);
    for (bool done = false; !done && rc == 0;) {
        if (!yaml_parser_parse(&p, &ev)) {
            rc = yaml_fail(name, &p, eb);
            break;
        }
        struct place at = { ev.start_mark.line + 1, ev.start_mark.column + 1 };
        const yaml_char_t *anchor = NULL;
        const yaml_char_t *tag = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                rc = fail_at(name, at, eb, "only one YAML document is allowed");
            }
            break;
        case YAML_ALIAS_EVENT:
            rc = fail_at(name, at, eb, "YAML aliases are not supported");
            break;
        case YAML_SCALAR_EVENT:
            anchor = ev.data.scalar.anchor;
            tag = ev.data.scalar.tag;
            break;
        case YAML_SEQUENCE_START_EVENT:
            anchor = ev.data.sequence_start.anchor;
            tag = ev.data.sequence_start.tag;
            depth++;
            break;
        case YAML_MAPPING_START_EVENT:
            anchor = ev.data.mapping_start.anchor;
            tag = ev.data.mapping_start.tag;
            depth++;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        default:
            break;
        }
        if (rc == 0 && anchor) {
            rc = fail_at(name, at, eb, "YAML anchors are not supported");
        } else if (rc == 0 && tag) {
            rc = fail_at(name, at, eb, "YAML tags are not supported");
        } else if (rc == 0 && depth > CFG_MAX_DEPTH) {
            rc = fail_at(name, at, eb, "nested deeper than %d levels", CFG_MAX_DEPTH);
        } else if (rc == 0 &&
                   (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
                    ev.type == YAML_MAPPING_START_EVENT) &&
                   ++nodes > CFG_MAX_NODES) {
            /* The document a load builds grows with its nodes; vigil.yaml needs hundreds. */
            rc = fail_at(name, at, eb, "more than %d YAML nodes", CFG_MAX_NODES);
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc;
}

int cfg_doc_parse(const char *name, struct span text, struct cfg_doc **out, struct errbuf *eb)
{
    yaml_parser_t p;
    struct cfg_doc *d;
    int rc;

    if (text.n > CFG_MAX_FILE_BYTES) {
        return fail_at(name, (struct place){ 0, 0 }, eb, "larger than %u bytes",
                       CFG_MAX_FILE_BYTES);
    }
    rc = screen_events(name, text, eb);
    if (rc < 0) {
        return rc;
    }
    if (!yaml_parser_initialize(&p)) {
        return fail_at(name, (struct place){ 0, 0 }, eb, "cannot initialize the YAML parser");
    }
    d = xcalloc(1, sizeof(*d));
    yaml_parser_set_input_string(&p, text.p, text.n);
    if (!yaml_parser_load(&p, &d->doc)) {
        rc = yaml_fail(name, &p, eb);
        yaml_parser_delete(&p);
        free(d);
        return rc;
    }
    yaml_parser_delete(&p);
    d->name = xstrdup(name);
    d->has_tree = true;
    *out = d;
    return 0;
}

void cfg_doc_drop_tree(struct cfg_doc *d)
{
    if (d && d->has_tree) {
        yaml_document_delete(&d->doc);
        d->has_tree = false;
    }
}

void cfg_doc_free(struct cfg_doc *d)
{
    if (!d) {
        return;
    }
    cfg_doc_drop_tree(d);
    for (size_t i = 0; i < d->nwhere; i++) {
        free(d->where[i].path);
    }
    free(d->where);
    free(d->name);
    free(d);
}

static const struct cfg_where *where_find(const struct cfg_doc *d, const void *field)
{
    for (size_t i = 0; d && i < d->nwhere; i++) {
        if (d->where[i].field == field) {
            return &d->where[i];
        }
    }
    return NULL;
}

static void where_add(struct walk *w, const void *field, const char *path, struct place at,
                      bool given)
{
    struct cfg_doc *d = w->d;

    if (!d) {
        return;
    }
    if (d->nwhere == d->capwhere) {
        d->capwhere = d->capwhere ? d->capwhere * 2 : 64;
        d->where = xrealloc(d->where, d->capwhere * sizeof(*d->where));
    }
    d->where[d->nwhere++] = (struct cfg_where){ field, xstrdup(path), at.line, at.col, given };
}

int cfg_doc_error(const struct cfg_doc *d, const void *field, struct errbuf *eb, const char *fmt,
                  ...)
{
    const struct cfg_where *wh = where_find(d, field);
    char msg[sizeof(eb->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!wh) {
        return fail_at(d ? d->name : "config", (struct place){ 0, 0 }, eb, "%s", msg);
    }
    return fail_at(d->name, (struct place){ wh->line, wh->col }, eb, "'%s': %s", wh->path, msg);
}

bool cfg_doc_has(const struct cfg_doc *d, const void *field)
{
    const struct cfg_where *wh = where_find(d, field);

    return wh && wh->given;
}

/* --- walk --------------------------------------------------------------------------- */

/* A scalar as the walker sees it: bytes, whether it is YAML null, and where it was. */
struct scalar {
    const char *p; /* NUL-terminated by libyaml (or a default string) */
    size_t n;
    bool null;
    struct place at;
};

static bool node_is_null(const yaml_node_t *n)
{
    static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

    if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(nulls); i++) {
        if (n->data.scalar.length == strlen(nulls[i]) &&
            memcmp(n->data.scalar.value, nulls[i], n->data.scalar.length) == 0) {
            return true;
        }
    }
    return false;
}

/* What a node is, for "expected X, got Y": "a map", "a list", "null" or the quoted value. */
static const char *node_kind(const yaml_node_t *n, char *out, size_t cap)
{
    if (!n) {
        return "nothing";
    }
    if (node_is_null(n)) {
        return "null";
    }
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a map";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return quote(n->data.scalar.value, n->data.scalar.length, out, cap);
    }
}

static char *path_join(char *out, size_t cap, const char *prefix, const char *name)
{
    snprintf(out, cap, "%s%s%s", prefix, prefix[0] ? "." : "", name);
    return out;
}

static void set_str(void *field, char *v)
{
    char **slot = field;

    free(*slot);
    *slot = v;
}

static int resolve_path(struct walk *w, const struct cfg_opt *o, const struct scalar *s,
                        const char *path, char **out)
{
    char shown[CFG_SHOW_MAX + 8];
    char *full;

    if (s->n == 0) {
        return walk_fail(w, s->at, "'%s': expected a path, got an empty string", path);
    }
    if (s->p[0] == '/' || !w->base_dir) {
        full = xstrndup(s->p, s->n);
    } else {
        size_t bn = strlen(w->base_dir);
        full = xmalloc(bn + 1 + s->n + 1);
        memcpy(full, w->base_dir, bn);
        full[bn] = '/';
        memcpy(full + bn + 1, s->p, s->n);
        full[bn + 1 + s->n] = 0;
    }
    if ((o->flags & CFG_F_EXISTS) && w->d) {
        /* O_NONBLOCK: a FIFO named here must not hang the load. */
        int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        struct stat st;
        int err = fd < 0 ? -errno : 0;

        if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
            err = -EINVAL;
        }
        if (fd >= 0) {
            close(fd);
        }
        if (err < 0) {
            int rc = walk_fail(w, s->at, "'%s': cannot read '%s' (%s): %s", path,
                               show(s->p, s->n, shown, sizeof(shown)), full,
                               err == -EINVAL ? "not a regular file" : vg_strerror(err));
            free(full);
            return rc;
        }
    }
    *out = full;
    return 0;
}

static int check_range_u(struct walk *w, const struct cfg_opt *o, const struct scalar *s,
                         const char *path, uint64_t v)
{
    char b[80];
    char shown[CFG_SHOW_MAX + 8];

    if (bounded(o) && (v < (uint64_t)o->min || v > (uint64_t)o->max)) {
        fmt_bounds(o, b, sizeof(b));
        return walk_fail(w, s->at, "'%s': %s is out of range (%s)", path,
                         show(s->p, s->n, shown, sizeof(shown)), b);
    }
    return 0;
}

static int check_range_i(struct walk *w, const struct cfg_opt *o, const struct scalar *s,
                         const char *path, int64_t v)
{
    char b[80];
    char shown[CFG_SHOW_MAX + 8];

    if (bounded(o) && (v < o->min || v > o->max)) {
        fmt_bounds(o, b, sizeof(b));
        return walk_fail(w, s->at, "'%s': %s is out of range (%s)", path,
                         show(s->p, s->n, shown, sizeof(shown)), b);
    }
    return 0;
}

/* Stores one scalar (from the file or a default) for a scalar-typed option. */
/* A scalar for "got ...": null, or the value quoted, escaped and cut. */
static const char *got(const struct scalar *s, char *out, size_t cap)
{
    return s->null ? "null" : quote(s->p, s->n, out, cap);
}

static int set_scalar(struct walk *w, const struct cfg_opt *o, void *field, const struct scalar *s,
                      const char *path)
{
    char shown[CFG_SHOW_MAX + 8];
    struct span sp = { (const uint8_t *)s->p, s->n };
    uint64_t u;
    int64_t i;

    if (s->null) {
        switch (o->type) {
        case CFG_STR:
        case CFG_PATH:
            /* null unsets an optional value; one with a default or required has no unset */
            if ((o->flags & CFG_F_REQUIRED) || o->def) {
                return walk_fail(w, s->at, "'%s' must not be null", path);
            }
            set_str(field, NULL);
            return 0;
        case CFG_ADDR: {
            struct cfg_addr *a = field;
            free(a->host);
            *a = (struct cfg_addr){ NULL, 0, false };
            return 0;
        }
        default:
            break; /* numbers and booleans have no null: fall through to "expected" */
        }
    }
    if (memchr(s->p, 0, s->n)) {
        return walk_fail(w, s->at, "'%s': NUL bytes are not allowed", path);
    }
    switch (o->type) {
    case CFG_STR:
        set_str(field, xstrndup(s->p, s->n));
        return 0;
    case CFG_PATH: {
        char *full = NULL;
        int rc = resolve_path(w, o, s, path, &full);
        if (rc < 0) {
            return rc;
        }
        set_str(field, full);
        return 0;
    }
    case CFG_ENUM: {
        char list[200] = "";
        for (const char *const *c = o->choices; *c; c++) {
            size_t ln = strlen(list);
            if (!s->null && span_eq_str(sp, *c)) {
                set_str(field, xstrdup(*c));
                return 0;
            }
            snprintf(list + ln, sizeof(list) - ln, "%s%s", c == o->choices ? "" : ", ", *c);
        }
        return walk_fail(w, s->at, "'%s': expected one of %s, got %s", path, list,
                         got(s, shown, sizeof(shown)));
    }
    case CFG_BOOL:
        if (!s->null &&
            (span_eq_str(sp, "true") || span_eq_str(sp, "True") || span_eq_str(sp, "TRUE"))) {
            *(bool *)field = true;
            return 0;
        }
        if (!s->null &&
            (span_eq_str(sp, "false") || span_eq_str(sp, "False") || span_eq_str(sp, "FALSE"))) {
            *(bool *)field = false;
            return 0;
        }
        return walk_fail(w, s->at, "'%s': expected true or false, got %s", path,
                         got(s, shown, sizeof(shown)));
    case CFG_INT:
        if (s->null || parse_i64(sp, INT64_MIN, INT64_MAX, &i) < 0) {
            return walk_fail(w, s->at, "'%s': expected an integer, got %s", path,
                             got(s, shown, sizeof(shown)));
        }
        if (check_range_i(w, o, s, path, i) < 0) {
            return VG_ECONFIG;
        }
        *(int64_t *)field = i;
        return 0;
    case CFG_UINT:
        if (s->null || parse_u64(sp, UINT64_MAX, &u) < 0) {
            return walk_fail(w, s->at, "'%s': expected a non-negative integer, got %s", path,
                             got(s, shown, sizeof(shown)));
        }
        if (check_range_u(w, o, s, path, u) < 0) {
            return VG_ECONFIG;
        }
        *(uint64_t *)field = u;
        return 0;
    case CFG_SIZE:
        if (s->null || cfg_size_parse(sp, &u) < 0) {
            return walk_fail(w, s->at, "'%s': expected a size like 16MiB, got %s", path,
                             got(s, shown, sizeof(shown)));
        }
        if (check_range_u(w, o, s, path, u) < 0) {
            return VG_ECONFIG;
        }
        *(uint64_t *)field = u;
        return 0;
    case CFG_DURATION:
        if (!s->null && span_eq_str(sp, "0")) {
            i = 0;
        } else if (s->null || vg_duration_parse(sp, &i) < 0) {
            return walk_fail(w, s->at, "'%s': expected a duration like 1h, got %s", path,
                             got(s, shown, sizeof(shown)));
        }
        if (check_range_i(w, o, s, path, i) < 0) {
            return VG_ECONFIG;
        }
        *(int64_t *)field = i;
        return 0;
    case CFG_ADDR: {
        struct cfg_addr *a = field;
        struct cfg_addr na;
        if (s->n == 0 || span_eq_str(sp, "off") || span_eq_str(sp, "false")) {
            free(a->host);
            *a = (struct cfg_addr){ NULL, 0, false };
            return 0;
        }
        if (cfg_addr_parse(sp, &na) < 0) {
            return walk_fail(w, s->at, "'%s': expected host:port, [ipv6]:port or off, got %s", path,
                             got(s, shown, sizeof(shown)));
        }
        free(a->host);
        *a = na;
        return 0;
    }
    default:
        break;
    }
    assert(!"set_scalar: not a scalar type");
    return VG_ECONFIG;
}

static int apply_map(struct walk *w, const struct cfg_opt *opts, char *base, const yaml_node_t *map,
                     struct place around, const char *prefix);

static size_t list_max(const struct cfg_opt *o)
{
    return bounded(o) ? (size_t)o->max : CFG_LIST_MAX;
}

static yaml_node_t *node_at(struct walk *w, yaml_node_item_t item)
{
    return yaml_document_get_node(&w->d->doc, item);
}

/* CFG_STRLIST, CFG_PATHLIST from a sequence (or null: empty) or a default (one item). */
static int apply_strlist(struct walk *w, const struct cfg_opt *o, char *base, const yaml_node_t *n,
                         const char *def, const char *path)
{
    char ***items = (char ***)(base + o->off);
    size_t *count = (size_t *)(base + o->count_off);
    size_t len;
    char ip[CFG_PATH_MAX + 24]; /* path and "[index]" */
    char kb[CFG_SHOW_MAX + 8];

    if (!n) {
        if (def) {
            *items = xcalloc(1, sizeof(char *));
            *count = 1;
            struct scalar s = { def, strlen(def), false, { 0, 0 } };
            struct cfg_opt one = *o;
            one.type = o->type == CFG_PATHLIST ? CFG_PATH : CFG_STR;
            return set_scalar(w, &one, &(*items)[0], &s, path);
        }
        return 0;
    }
    if (node_is_null(n)) {
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return walk_fail(w, place_of(n), "'%s': expected a list of %s, got %s", path,
                         o->type == CFG_PATHLIST ? "paths" : "strings",
                         node_kind(n, kb, sizeof(kb)));
    }
    len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len > list_max(o) || (bounded(o) && len < (size_t)o->min)) {
        return walk_fail(w, place_of(n), "'%s': %zu items, expected %zu to %zu", path, len,
                         bounded(o) ? (size_t)o->min : 0, list_max(o));
    }
    *items = xcalloc(len ? len : 1, sizeof(char *));
    *count = len;
    for (size_t i = 0; i < len; i++) {
        const yaml_node_t *it = node_at(w, n->data.sequence.items.start[i]);
        snprintf(ip, sizeof(ip), "%s[%zu]", path, i);
        if (!it || it->type != YAML_SCALAR_NODE || node_is_null(it)) {
            return walk_fail(w, place_of(it), "'%s': expected a %s, got %s", ip,
                             o->type == CFG_PATHLIST ? "path" : "string",
                             node_kind(it, kb, sizeof(kb)));
        }
        struct scalar s = { (const char *)it->data.scalar.value, it->data.scalar.length, false,
                            place_of(it) };
        struct cfg_opt one = *o;
        one.type = o->type == CFG_PATHLIST ? CFG_PATH : CFG_STR;
        int rc = set_scalar(w, &one, &(*items)[i], &s, ip);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* CFG_LIST: a sequence of maps, each walked against o->sub. */
static int apply_list(struct walk *w, const struct cfg_opt *o, char *base, const yaml_node_t *n,
                      const char *path)
{
    void **items = (void **)(base + o->off);
    size_t *count = (size_t *)(base + o->count_off);
    char ip[CFG_PATH_MAX + 24]; /* path and "[index]" */
    char kb[CFG_SHOW_MAX + 8];
    size_t len;

    if (!n || node_is_null(n)) {
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE) {
        return walk_fail(w, place_of(n), "'%s': expected a list of maps, got %s", path,
                         node_kind(n, kb, sizeof(kb)));
    }
    len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (len > list_max(o) || (bounded(o) && len < (size_t)o->min)) {
        return walk_fail(w, place_of(n), "'%s': %zu items, expected %zu to %zu", path, len,
                         bounded(o) ? (size_t)o->min : 0, list_max(o));
    }
    /* Zeroed elements are safe to release, so a failure half-way frees them all. */
    *items = xcalloc(len ? len : 1, o->elem_size);
    *count = len;
    for (size_t i = 0; i < len; i++) {
        const yaml_node_t *it = node_at(w, n->data.sequence.items.start[i]);
        snprintf(ip, sizeof(ip), "%s[%zu]", path, i);
        if (!it || it->type != YAML_MAPPING_NODE) {
            return walk_fail(w, place_of(it), "'%s': expected a map, got %s", ip,
                             node_kind(it, kb, sizeof(kb)));
        }
        int rc = apply_map(w, o->sub, (char *)*items + i * o->elem_size, it, place_of(it), ip);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* CFG_STRMAP: any keys, each to a scalar (a list of one) or a list of scalars. Each item
 * is recorded at its key, so the module that checks the keys can point at one. */
static int apply_strmap(struct walk *w, const struct cfg_opt *o, char *base, const yaml_node_t *n,
                        const char *path)
{
    struct cfg_strmap *m = (struct cfg_strmap *)(base + o->off);
    char kb[CFG_SHOW_MAX + 8];
    char ip[CFG_PATH_MAX + CFG_SHOW_MAX + 32];
    size_t len;

    if (!n || node_is_null(n)) {
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        return walk_fail(w, place_of(n), "'%s': expected a map, got %s", path,
                         node_kind(n, kb, sizeof(kb)));
    }
    len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (len > list_max(o)) {
        return walk_fail(w, place_of(n), "'%s': %zu keys, at most %zu", path, len, list_max(o));
    }
    /* Zeroed items are safe to release, so a failure half-way frees them all. */
    m->items = xcalloc(len ? len : 1, sizeof(*m->items));
    m->n = 0;
    for (size_t i = 0; i < len; i++) {
        const yaml_node_pair_t *pr = &n->data.mapping.pairs.start[i];
        const yaml_node_t *k = node_at(w, pr->key);
        const yaml_node_t *v = node_at(w, pr->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE || node_is_null(k) ||
            k->data.scalar.length == 0 || memchr(k->data.scalar.value, 0, k->data.scalar.length)) {
            return walk_fail(w, place_of(k), "keys in '%s' must be non-empty strings", path);
        }
        const char *kp = (const char *)k->data.scalar.value;
        size_t kn = k->data.scalar.length;
        snprintf(ip, sizeof(ip), "%s.%s", path, show(kp, kn, kb, sizeof(kb)));
        for (size_t j = 0; j < m->n; j++) {
            if (strlen(m->items[j].key) == kn && memcmp(m->items[j].key, kp, kn) == 0) {
                return walk_fail(w, place_of(k), "duplicate key '%s'", ip);
            }
        }
        struct cfg_strmap_item *it = &m->items[m->n++];
        it->key = xstrndup(kp, kn);
        const yaml_node_t *one = v;
        size_t nv = 1;
        if (v->type == YAML_SEQUENCE_NODE) {
            nv = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            if (nv == 0 || nv > CFG_LIST_MAX) {
                return walk_fail(w, place_of(v), "'%s': expected 1 to %d values, got %zu", ip,
                                 CFG_LIST_MAX, nv);
            }
        }
        it->vals = xcalloc(nv, sizeof(char *));
        for (size_t j = 0; j < nv; j++) {
            if (v->type == YAML_SEQUENCE_NODE) {
                one = node_at(w, v->data.sequence.items.start[j]);
            }
            if (!one || one->type != YAML_SCALAR_NODE || node_is_null(one)) {
                return walk_fail(w, place_of(one),
                                 "'%s': expected a string or a list of strings, "
                                 "got %s",
                                 ip, node_kind(one, kb, sizeof(kb)));
            }
            if (memchr(one->data.scalar.value, 0, one->data.scalar.length)) {
                return walk_fail(w, place_of(one), "'%s': NUL bytes are not allowed", ip);
            }
            it->vals[j] = xstrndup((const char *)one->data.scalar.value, one->data.scalar.length);
            it->nvals = j + 1;
        }
        where_add(w, &it->key, ip, place_of(k), true);
    }
    return 0;
}

/* One option: n is its value node, or NULL for the default. `around` is where the
 * enclosing map starts (for defaults and missing keys). */
static int apply_opt(struct walk *w, const struct cfg_opt *o, char *base, const yaml_node_t *n,
                     struct place around, const char *path)
{
    void *field = base + o->off;
    char kb[CFG_SHOW_MAX + 8];
    int rc;

    switch (o->type) {
    case CFG_SECTION:
        if (n && !node_is_null(n) && n->type != YAML_MAPPING_NODE) {
            return walk_fail(w, place_of(n), "'%s': expected a map, got %s", path,
                             node_kind(n, kb, sizeof(kb)));
        }
        /* An absent section has no place: its defaults and missing keys name the file. */
        return apply_map(w, o->sub, field, n && !node_is_null(n) ? n : NULL, place_of(n), path);
    case CFG_LIST:
        rc = apply_list(w, o, base, n, path);
        break;
    case CFG_STRMAP:
        rc = apply_strmap(w, o, base, n, path);
        break;
    case CFG_STRLIST:
    case CFG_PATHLIST:
        rc = apply_strlist(w, o, base, n, n ? NULL : o->def, path);
        break;
    default:
        if (!n) {
            if (o->def) {
                struct scalar s = { o->def, strlen(o->def), false, around };
                rc = set_scalar(w, o, field, &s, path);
            } else {
                rc = 0;
            }
        } else if (n->type != YAML_SCALAR_NODE) {
            static const char *const what[] = {
                [CFG_STR] = "a string",   [CFG_PATH] = "a path",
                [CFG_ENUM] = "a string",  [CFG_BOOL] = "true or false",
                [CFG_INT] = "an integer", [CFG_UINT] = "a non-negative integer",
                [CFG_SIZE] = "a size",    [CFG_DURATION] = "a duration",
                [CFG_ADDR] = "host:port",
            };
            return walk_fail(w, place_of(n), "'%s': expected %s, got %s", path, what[o->type],
                             node_kind(n, kb, sizeof(kb)));
        } else {
            struct scalar s = { (const char *)n->data.scalar.value, n->data.scalar.length,
                                node_is_null(n), place_of(n) };
            rc = set_scalar(w, o, field, &s, path);
        }
        break;
    }
    if (rc == 0) {
        where_add(w, field, path, n ? place_of(n) : around, n != NULL);
    }
    return rc;
}

static int apply_map(struct walk *w, const struct cfg_opt *opts, char *base, const yaml_node_t *map,
                     struct place around, const char *prefix)
{
    size_t nopts = 0;
    char path[CFG_PATH_MAX];
    char shown[CFG_SHOW_MAX + 8];
    int rc = 0;

    while (opts[nopts].name) {
        nopts++;
    }
    const yaml_node_t **vals = xcalloc(nopts ? nopts : 1, sizeof(*vals));
    struct place *keys_at = xcalloc(nopts ? nopts : 1, sizeof(*keys_at));
    if (map) {
        assert(map->type == YAML_MAPPING_NODE);
        for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
             rc == 0 && pr < map->data.mapping.pairs.top; pr++) {
            const yaml_node_t *k = node_at(w, pr->key);
            const yaml_node_t *v = node_at(w, pr->value);
            size_t i;

            if (!k || !v || k->type != YAML_SCALAR_NODE) {
                if (prefix[0]) {
                    rc = walk_fail(w, place_of(k), "keys in '%s' must be strings", prefix);
                } else {
                    rc = walk_fail(w, place_of(k), "top-level keys must be strings");
                }
                break;
            }
            const char *kp = (const char *)k->data.scalar.value;
            size_t kn = k->data.scalar.length;
            for (i = 0; i < nopts; i++) {
                if (strlen(opts[i].name) == kn && memcmp(opts[i].name, kp, kn) == 0) {
                    break;
                }
            }
            if (i == nopts) {
                rc = walk_fail(w, place_of(k), "unknown key '%s%s%s'", prefix, prefix[0] ? "." : "",
                               show(kp, kn, shown, sizeof(shown)));
            } else if (vals[i]) {
                rc =
                    walk_fail(w, place_of(k), "duplicate key '%s' (first at line %zu)",
                              path_join(path, sizeof(path), prefix, opts[i].name), keys_at[i].line);
            } else {
                vals[i] = v;
                keys_at[i] = place_of(k);
            }
        }
    }
    for (size_t i = 0; rc == 0 && i < nopts; i++) {
        const struct cfg_opt *o = &opts[i];
        path_join(path, sizeof(path), prefix, o->name);
        if ((o->flags & CFG_F_REQUIRED) && (!vals[i] || node_is_null(vals[i]))) {
            if (vals[i]) {
                rc = walk_fail(w, place_of(vals[i]), "'%s' must not be null", path);
            } else {
                rc = walk_fail(w, around, "missing required key '%s'", path);
            }
            break;
        }
        rc = apply_opt(w, o, base, vals[i], map ? place_of(map) : around, path);
    }
    free(vals);
    free(keys_at);
    return rc;
}

int cfg_doc_apply(struct cfg_doc *d, const struct cfg_opt *opts, void *obj, const char *base_dir,
                  struct errbuf *eb)
{
    struct walk w = { d, base_dir, eb };
    char kb[CFG_SHOW_MAX + 8];
    yaml_node_t *root = yaml_document_get_root_node(&d->doc);

    if (root && !node_is_null(root) && root->type != YAML_MAPPING_NODE) {
        return fail_at(d->name, place_of(root), eb, "expected a map at the top level, got %s",
                       node_kind(root, kb, sizeof(kb)));
    }
    if (root && node_is_null(root)) {
        root = NULL;
    }
    return apply_map(&w, opts, obj, root, (struct place){ 0, 0 }, "");
}

void cfg_defaults(const struct cfg_opt *opts, void *obj)
{
    struct walk w = { NULL, NULL, NULL };
    int rc = apply_map(&w, opts, obj, NULL, (struct place){ 0, 0 }, "");

    /* Required keys have no default; a table that asks for one here is a bug. */
    assert(rc == 0);
    (void)rc;
}

void cfg_release(const struct cfg_opt *opts, void *obj)
{
    char *base = obj;

    for (const struct cfg_opt *o = opts; o->name; o++) {
        void *field = base + o->off;
        switch (o->type) {
        case CFG_STR:
        case CFG_PATH:
        case CFG_ENUM:
            set_str(field, NULL);
            break;
        case CFG_ADDR: {
            struct cfg_addr *a = field;
            free(a->host);
            a->host = NULL;
            break;
        }
        case CFG_STRLIST:
        case CFG_PATHLIST: {
            char **items = *(char ***)field;
            size_t *count = (size_t *)(base + o->count_off);
            for (size_t i = 0; items && i < *count; i++) {
                free(items[i]);
            }
            free(items);
            *(char ***)field = NULL;
            *count = 0;
            break;
        }
        case CFG_SECTION:
            cfg_release(o->sub, field);
            break;
        case CFG_STRMAP: {
            struct cfg_strmap *m = field;
            for (size_t i = 0; m->items && i < m->n; i++) {
                for (size_t j = 0; j < m->items[i].nvals; j++) {
                    free(m->items[i].vals[j]);
                }
                free(m->items[i].vals);
                free(m->items[i].key);
            }
            free(m->items);
            m->items = NULL;
            m->n = 0;
            break;
        }
        case CFG_LIST: {
            char *items = *(char **)field;
            size_t *count = (size_t *)(base + o->count_off);
            for (size_t i = 0; items && i < *count; i++) {
                cfg_release(o->sub, items + i * o->elem_size);
            }
            free(items);
            *(char **)field = NULL;
            *count = 0;
            break;
        }
        default:
            break;
        }
    }
}

/* --- reference ---------------------------------------------------------------------- */

static const char *type_name(enum cfg_type t)
{
    static const char *const names[] = {
        [CFG_STR] = "string",
        [CFG_PATH] = "path",
        [CFG_ENUM] = "one of",
        [CFG_BOOL] = "bool",
        [CFG_INT] = "integer",
        [CFG_UINT] = "integer",
        [CFG_SIZE] = "size",
        [CFG_DURATION] = "duration",
        [CFG_ADDR] = "host:port or off",
        [CFG_STRLIST] = "strings",
        [CFG_PATHLIST] = "paths",
        [CFG_SECTION] = "map",
        [CFG_LIST] = "list of maps",
        [CFG_STRMAP] = "map of strings or lists",
    };
    return names[t];
}

static void print_opts(FILE *f, const struct cfg_opt *opts, const char *prefix)
{
    char path[CFG_PATH_MAX];
    char b[80];

    for (const struct cfg_opt *o = opts; o->name; o++) {
        path_join(path, sizeof(path), prefix, o->name);
        if (o->type == CFG_SECTION) {
            print_opts(f, o->sub, path);
            continue;
        }
        fprintf(f, "%s%s  (%s", path, o->type == CFG_LIST ? "[]" : "", type_name(o->type));
        if (o->type == CFG_ENUM) {
            for (const char *const *c = o->choices; *c; c++) {
                fprintf(f, "%s%s", c == o->choices ? " " : "|", *c);
            }
        }
        if (o->flags & CFG_F_REQUIRED) {
            fprintf(f, ", required");
        }
        if (o->flags & CFG_F_EXISTS) {
            fprintf(f, ", must exist when set");
        }
        if (o->def) {
            fprintf(f, ", default %s", o->def);
        }
        if (bounded(o)) {
            fmt_bounds(o, b, sizeof(b));
            fprintf(f, ", %s%s", b,
                    o->type == CFG_LIST || o->type == CFG_STRLIST || o->type == CFG_PATHLIST
                        ? " items"
                    : o->type == CFG_STRMAP ? " keys"
                                            : "");
        }
        fprintf(f, ")\n    %s\n", o->help ? o->help : "");
        if (o->type == CFG_LIST) {
            char ep[CFG_PATH_MAX + 2];
            snprintf(ep, sizeof(ep), "%s[]", path);
            print_opts(f, o->sub, ep);
        }
    }
}

void cfg_print_reference(FILE *f, const struct cfg_opt *opts)
{
    print_opts(f, opts, "");
}
