/* rules/rules_lit.c: per-slot indexes of the case-insensitive literals rules compare a
 * field with (equals, startswith, endswith, contains), so that a record's value is tested
 * against every rule's literals in one pass (struct lit_index in rules_int.h).
 *
 * Equal literals of different rules share one id. Matching a value (already lower case):
 *   equals        one hash lookup of the whole value
 *   startswith    one lookup per distinct literal length (of the value's prefix)
 *   endswith      likewise with the suffix
 *   contains      a scan of the value's byte pairs against a 65536-bit set of the
 *                 literals' first two bytes; a hit is verified against the literals
 *                 starting with that pair (binary search in a sorted table); 0- and
 *                 1-byte literals are checked directly.
 * The result is a bit per literal, which the engine caches per record and slot.
 *
 * The tables hold rule literals only (bytes from events are only looked up), so their
 * probe lengths do not depend on the events. Built once at load; immutable after. */
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "rules/rules_int.h"

static uint64_t lit_hash(enum vkind kind, const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)kind;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static bool lit_eq(const struct lit *l, enum vkind kind, const uint8_t *p, size_t n)
{
    return l->kind == kind && l->n == n && (n == 0 || memcmp(l->s, p, n) == 0);
}

static long lookup(const struct lit_index *li, enum vkind kind, const uint8_t *p, size_t n)
{
    if (!li->tabcap) {
        return -1;
    }
    size_t mask = li->tabcap - 1;
    for (size_t i = lit_hash(kind, p, n) & mask;; i = (i + 1) & mask) {
        uint32_t v = li->tab[i];
        if (v == 0) {
            return -1;
        }
        if (lit_eq(&li->lits[v - 1], kind, p, n)) {
            return (long)v - 1;
        }
    }
}

static void tab_put(struct lit_index *li, uint32_t id)
{
    size_t mask = li->tabcap - 1;
    const struct lit *l = &li->lits[id];
    size_t i = lit_hash(l->kind, l->s, l->n) & mask;
    while (li->tab[i] != 0) {
        i = (i + 1) & mask;
    }
    li->tab[i] = id + 1;
}

static void add_len(uint32_t **v, size_t *n, uint32_t len)
{
    for (size_t i = 0; i < *n; i++) {
        if ((*v)[i] == len) {
            return;
        }
    }
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = len;
}

/* Interns literal (kind, s, n) into li; returns its id. */
static uint32_t intern(struct lit_index *li, enum vkind kind, const uint8_t *s, size_t n)
{
    long id = lookup(li, kind, s, n);
    if (id >= 0) {
        return (uint32_t)id;
    }
    if ((li->nlits + 1) * 2 > li->tabcap) {
        size_t cap = li->tabcap ? 2 * li->tabcap : 16;
        free(li->tab);
        li->tab = xcalloc(cap, sizeof(*li->tab));
        li->tabcap = cap;
        for (size_t i = 0; i < li->nlits; i++) {
            tab_put(li, (uint32_t)i);
        }
    }
    li->lits = xrealloc(li->lits, (li->nlits + 1) * sizeof(*li->lits));
    li->lits[li->nlits] = (struct lit){ (uint8_t)kind, s, (uint32_t)n };
    tab_put(li, (uint32_t)li->nlits);
    switch (kind) {
    case VK_EQ:
        li->has_eq = true;
        break;
    case VK_PREFIX:
        add_len(&li->plens, &li->nplens, (uint32_t)n);
        break;
    case VK_SUFFIX:
        add_len(&li->slens, &li->nslens, (uint32_t)n);
        break;
    case VK_CONTAINS:
        if (n < 2) {
            li->shorts = xrealloc(li->shorts, (li->nshorts + 1) * sizeof(*li->shorts));
            li->shorts[li->nshorts++] = (uint32_t)li->nlits;
        } else {
            uint16_t bg = (uint16_t)(s[0] << 8 | s[1]);
            if (!li->bigrams) {
                li->bigrams = xcalloc(65536 / 64, sizeof(*li->bigrams));
            }
            li->bigrams[bg >> 6] |= 1ULL << (bg & 63);
            li->bg = xrealloc(li->bg, (li->nbg + 1) * sizeof(*li->bg));
            li->bg[li->nbg++] = (struct bigram_ent){ bg, (uint32_t)li->nlits };
        }
        break;
    default:
        break;
    }
    return (uint32_t)li->nlits++;
}

static int bg_cmp(const void *a, const void *b)
{
    const struct bigram_ent *x = a;
    const struct bigram_ent *y = b;
    if (x->bg != y->bg) {
        return x->bg < y->bg ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

void rules__lit_release(struct lit_index *li)
{
    free(li->lits);
    free(li->tab);
    free(li->plens);
    free(li->slens);
    free(li->bigrams);
    free(li->bg);
    free(li->shorts);
    memset(li, 0, sizeof(*li));
}

/* A field whose values are all indexed literals becomes a set of (word, mask) pairs. */
static void field_masks(struct pfield *pf)
{
    pf->lit_all = pf->nvals > 0 && !pf->has_null;
    for (size_t v = 0; v < pf->nvals && pf->lit_all; v++) {
        pf->lit_all = pf->vals[v].lit >= 0;
    }
    if (!pf->lit_all) {
        return;
    }
    for (size_t v = 0; v < pf->nvals; v++) {
        uint32_t w = (uint32_t)pf->vals[v].lit >> 6;
        uint64_t m = 1ULL << (pf->vals[v].lit & 63);
        uint32_t k = 0;
        while (k < pf->nlw && pf->lw_idx[k] != w) {
            k++;
        }
        if (k == pf->nlw) {
            pf->lw_idx = xrealloc(pf->lw_idx, (pf->nlw + 1) * sizeof(*pf->lw_idx));
            pf->lw_mask = xrealloc(pf->lw_mask, (pf->nlw + 1) * sizeof(*pf->lw_mask));
            pf->lw_idx[k] = w;
            pf->lw_mask[k] = 0;
            pf->nlw++;
        }
        pf->lw_mask[k] |= m;
    }
}

size_t rules__lit_build(struct ruleset *rs)
{
    size_t words = 0;

    for (size_t r = 0; r < rs->nrules; r++) {
        struct rule *rule = &rs->rules[r];
        for (size_t s = 0; s < rule->nsels; s++) {
            struct psel *sel = &rule->sels[s];
            for (size_t a = 0; a < sel->nalts; a++) {
                for (size_t f = 0; f < sel->alts[a].n; f++) {
                    struct pfield *pf = &sel->alts[a].f[f];
                    for (size_t v = 0; v < pf->nvals; v++) {
                        struct pval *pv = &pf->vals[v];
                        bool literal = pv->kind == VK_EQ || pv->kind == VK_PREFIX ||
                                       pv->kind == VK_SUFFIX || pv->kind == VK_CONTAINS;
                        if (literal && !pv->cased) {
                            pv->lit =
                                (int32_t)intern(&rs->slots[pf->slot].li, pv->kind, pv->s, pv->n);
                        }
                    }
                    field_masks(pf);
                }
            }
        }
    }
    for (size_t s = 0; s < rs->nslots; s++) {
        struct lit_index *li = &rs->slots[s].li;
        if (li->nbg > 1) {
            qsort(li->bg, li->nbg, sizeof(*li->bg), bg_cmp);
        }
        li->bitoff = words;
        words += (li->nlits + 63) / 64;
    }
    return words;
}

static void set_bit(uint64_t *bits, long id)
{
    bits[id >> 6] |= 1ULL << (id & 63);
}

void rules__lit_match(const struct lit_index *li, struct span t, uint64_t *bits)
{
    long id;

    if (li->has_eq && (id = lookup(li, VK_EQ, t.p, t.n)) >= 0) {
        set_bit(bits, id);
    }
    for (size_t i = 0; i < li->nplens; i++) {
        if (li->plens[i] <= t.n && (id = lookup(li, VK_PREFIX, t.p, li->plens[i])) >= 0) {
            set_bit(bits, id);
        }
    }
    for (size_t i = 0; i < li->nslens; i++) {
        size_t n = li->slens[i];
        if (n <= t.n && (id = lookup(li, VK_SUFFIX, t.p + t.n - n, n)) >= 0) {
            set_bit(bits, id);
        }
    }
    for (size_t i = 0; i < li->nshorts; i++) {
        const struct lit *l = &li->lits[li->shorts[i]];
        if (l->n == 0 || (t.n > 0 && memchr(t.p, l->s[0], t.n))) {
            set_bit(bits, li->shorts[i]);
        }
    }
    if (!li->bigrams || t.n < 2) {
        return;
    }
    for (size_t i = 0; i + 1 < t.n; i++) {
        uint16_t bg = (uint16_t)(t.p[i] << 8 | t.p[i + 1]);
        if (!(li->bigrams[bg >> 6] & (1ULL << (bg & 63)))) {
            continue;
        }
        /* the first entry with this bigram */
        size_t lo = 0;
        size_t hi = li->nbg;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (li->bg[mid].bg < bg) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for (; lo < li->nbg && li->bg[lo].bg == bg; lo++) {
            const struct lit *l = &li->lits[li->bg[lo].id];
            if (l->n <= t.n - i && memcmp(t.p + i, l->s, l->n) == 0) {
                set_bit(bits, li->bg[lo].id);
            }
        }
    }
}
