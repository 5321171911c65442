/* rules/ytree.h: YAML text -> a small immutable tree with places, for Sigma rules, their
 * test files and the field mapping. The only part of rules/ that includes <yaml.h>.
 *
 * Bounded whatever the input: at most YTREE_MAX_BYTES of text, YTREE_MAX_NODES nodes and
 * YTREE_MAX_DEPTH levels per stream. Aliases are refused (a few bytes could refer to a
 * node many times, or to itself); anchors and tags are accepted and ignored, except that
 * an explicit !!str makes a scalar a string. Duplicate keys in a map are refused. Each
 * document of a multi-document stream is one root. Pure; any thread. */
#ifndef VG_RULES_YTREE_H
#define VG_RULES_YTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"

#define YTREE_MAX_BYTES (4u << 20)
#define YTREE_MAX_NODES 200000
#define YTREE_MAX_DEPTH 64

enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

/* What a scalar means (YAML 1.2 core schema; quoted scalars are always strings). */
enum yscalar { YS_NULL, YS_BOOL, YS_INT, YS_FLOAT, YS_STR };

struct ynode {
    enum ynode_type type;
    uint32_t line, col; /* 1-based */
    /* YN_SCALAR */
    char *s; /* NUL-terminated (the bytes may hold NULs: use n) */
    size_t n;
    bool quoted; /* quoted, block scalar or !!str: never null, bool or number */
    /* YN_SEQ: items; YN_MAP: key, value, key, value... */
    struct ynode **kids;
    size_t nkids;
};

struct ystream {
    struct ynode **docs; /* one root per document; NULL for an empty document */
    size_t ndocs;
};

/* Parses text (len bytes) into *out (caller releases with ystream_release, also after a
 * failure). name is used in messages only. Returns 0; VG_EPARSE for a syntax error, a
 * duplicate key or a bound passed (VG_ELIMIT for size bounds), -ENOTSUP for an alias,
 * each with "NAME:LINE:COL: reason" in eb and the place in eb->pos. */
int ystream_parse(const char *name, const void *text, size_t len, struct ystream *out,
                  struct errbuf *eb) VG_MUST_USE;
void ystream_release(struct ystream *ys);

/* The value of key in a map node (exact, case-sensitive), or NULL. */
const struct ynode *ynode_get(const struct ynode *map, const char *key);

/* Resolves a scalar: YS_NULL for null, ~, empty; YS_BOOL for true/false (any case);
 * YS_INT for decimal, 0x hex, 0o octal (within int64: *i set); YS_FLOAT for decimals
 * with a point or exponent, .inf, .nan (*f set); otherwise YS_STR. i and f may be NULL. */
enum yscalar ynode_scalar(const struct ynode *n, int64_t *i, double *f);

static inline struct span ynode_span(const struct ynode *n)
{
    return (struct span){ (const uint8_t *)n->s, n->n };
}

/* Appends n as msgpack: maps (keys as strings), arrays, and resolved scalars (null,
 * bool, int, float, str). Returns 0 or VG_ELIMIT. */
int ynode_to_mp(const struct ynode *n, struct buf *out) VG_MUST_USE;

/* Writes s for a message: printable ASCII as is, others as \xNN, at most 64 input bytes
 * ("..." after). Returns out. */
const char *ytree_show(struct span s, char *out, size_t cap);

#endif
