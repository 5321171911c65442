/* store/bindex.h: the record view, packed records and the block index of format v2
 * blocks (schemas/segment.md 3.2 and 3.4.2), for the store's own files, its tests and
 * fuzz targets.
 *
 * A record is opaque to the store's framing, but a v2 block looks inside it when it is
 * a schema-v1 record (an msgpack map keyed by the field names of segment.md 3.4.2): to
 * store it packed (keys as bits, ts and seq as differences from the entry's, normalized
 * strings that repeat a string of raw as references) and to index it (value sets of the
 * identity fields, the trigrams of its text). Anything else is stored verbatim and
 * turns the block's index off, so nothing here can make a reader miss a record.
 *
 * Pure functions over caller memory; any thread. */
#ifndef VG_STORE_BINDEX_H
#define VG_STORE_BINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"
#include "store/store.h"

/* ---- the record view (segment.md 3.4.2) ---- */

/* Keys of a schema-v1 record, in the order rec_encode writes them; the numbers are on
 * disk (the bits of a packed record). */
enum pack_key {
    PK_TS,
    PK_RECEIVED,
    PK_SEQ,
    PK_AGENT,
    PK_SOURCE,
    PK_KIND,
    PK_SEVERITY,
    PK_HOST,
    PK_NAMESPACE,
    PK_POD,
    PK_CONTAINER_ID,
    PK_CONTAINER_NAME,
    PK_IMAGE,
    PK_USER,
    PK_SRC_IP,
    PK_DST_IP,
    PK_PROCESS,
    PK_CMDLINE,
    PK_RULE,
    PK_ACTION,
    PK_OBJECT,
    PK_OUTCOME,
    PK_CVE,
    PK_PACKAGE,
    PK_MESSAGE,
    PK_DST_PORT,
    PK_RAW,
    PK_COUNT
};

/* The key's name ("ts", ..., "raw"); NULL past PK_COUNT. */
const char *pack__key_name(int k);

#define PACK_RAWSTR_MAX 256 /* strings of raw a view lists */

struct pack_view {
    bool indexable;            /* a map with string keys; known keys once each, with the
                                  value types of segment.md 3.4.2 */
    bool packable;             /* indexable, keys in table order, none unknown, raw a bin
                                  (or absent), nothing after the map */
    bool raw_ok;               /* raw absent, empty, or one msgpack value that walks */
    bool unknown;              /* keys not in the table (text the index does not see) */
    bool rawstr_more;          /* raw has more text than rawstr lists */
    uint32_t present;          /* bit k: key k present */
    int64_t num[PK_COUNT];     /* PK_TS, PK_RECEIVED, PK_DST_PORT; PK_SEQ as uint64 bits */
    struct span str[PK_COUNT]; /* string keys; PK_RAW: the raw event's msgpack bytes */
    int16_t ref[PK_COUNT];     /* string keys: index in rawstr of an equal string, or -1 */
    uint32_t nrawstr;
    uint32_t nstr;                       /* string values of raw */
    struct span rawstr[PACK_RAWSTR_MAX]; /* the text of raw (segment.md 3.2.3), in order */
    int16_t rawstr_ord[PACK_RAWSTR_MAX]; /* a string's ordinal among raw's strings; -1
                                            for the text of a boolean or float */
};

/* Parses rec into v. Never fails: v->indexable / v->packable say what it may be used
 * for. Spans point into rec. */
void pack__view(struct span rec, struct pack_view *v);

/* ---- packed records (segment.md 3.4.2) ---- */

/* Appends rec to out packed against the entry's ts and seq and the received time of
 * the group's last packed record (*prev_received, 0 at the group's start; updated when
 * rec is packed with a received time): form 1 when v is packable and unpacking gives
 * back exactly rec (checked here, with scratch), else form 0 (verbatim). Returns 0 or
 * VG_ELIMIT (out->max). */
int pack__record(struct span rec, const struct pack_view *v, int64_t ts, uint64_t seq,
                 int64_t *prev_received, struct buf *out, struct buf *scratch) VG_MUST_USE;

/* For a record skipped without unpacking: updates *prev_received as pack__unpack would.
 * Returns 0 or VG_ECORRUPT. */
int pack__skip(struct span p, int64_t *prev_received) VG_MUST_USE;

/* Appends the record packed in p (as pack__record wrote it for ts, seq and
 * *prev_received, which is updated the same way) to out. Returns 0, VG_ECORRUPT
 * (malformed: why says how) or VG_ELIMIT (out->max). */
int pack__unpack(struct span p, int64_t ts, uint64_t seq, int64_t *prev_received, struct buf *out,
                 struct errbuf *why) VG_MUST_USE;

/* Appends the schema-v1 record with the keys in present (bit k: key k) to out as
 * unpacking writes it (segment.md 3.4.2: the smallest headers, keys in table order):
 * num[k] for ts, received and dst_port (int64), seq (uint64 bits); str[k] for the
 * string keys and raw (the bytes inside its bin; p NULL: n bytes are left for the caller
 * to fill, at the end of out). Returns 0 or VG_ELIMIT (out->max). */
int pack__emit(uint32_t present, const int64_t num[PK_COUNT], const struct span str[PK_COUNT],
               struct buf *out) VG_MUST_USE;
/* The value class of key k: 0 int, 1 uint (seq), 2 string, 3 raw. */
int pack__key_class(int k);

/* The group a record goes to inside its block (segment.md 3.4.1): records of one
 * source sit together, which lz4 likes. 0 .. PACK_GROUPS - 1. */
#define PACK_GROUPS 8
unsigned pack__group(const struct pack_view *v);

/* ---- the block index (segment.md 3.2) ---- */

/* Index entry ids: the identity fields, then the text trigrams. */
enum bix_id {
    BIX_HOST = 1,
    BIX_NAMESPACE,
    BIX_POD,
    BIX_CONTAINER_ID,
    BIX_IMAGE,
    BIX_USER,
    BIX_SRC_IP,
    BIX_RULE,
    BIX_CVE,
    BIX_NFIELDS = BIX_CVE,
    BIX_TEXT = 64,
};
#define BIX_VERSION       1
#define BIX_SET_MAX       64   /* distinct values kept as an exact set, per field */
#define BIX_SET_MAX_BYTES 2048 /* and their bytes */
#define BIX_BLOOM_BITS    10   /* bloom bits per distinct value */
#define BIX_BLOOM_K       6
#define BIX_TRIGRAMS      (37 * 37 * 37)

/* The name of field id ("host"...); NULL for others. */
const char *bix__field_name(int id);

/* Appends the key of a value of field id to out: the value, except an IP address for
 * src_ip, which becomes 0x01 + its 16-byte form (IPv4 as ::ffff:a.b.c.d) so that
 * spellings of one address agree; other src_ip values are 0x00 + the value. */
int bix__value_key(int id, struct span value, struct buf *out) VG_MUST_USE;

struct bix_field {
    uint64_t *slots; /* value hashes, open addressing; 0 = empty (a zero hash is 1) */
    uint32_t *offs;  /* exact: where each slot's value is in vals */
    uint32_t cap;    /* power of two */
    uint32_t n;      /* distinct values */
    bool exact;      /* values kept (n <= BIX_SET_MAX and bytes within bounds) */
    struct buf vals; /* exact: (u32 length, bytes) back to back */
};

/* Builds one block's index while records are added. */
struct bix_builder {
    bool off;      /* a record that cannot be indexed: no index at all */
    bool text_off; /* a raw that does not walk: no text index */
    struct bix_field f[BIX_NFIELDS + 1];
    uint64_t grams[(BIX_TRIGRAMS + 63) / 64];
    struct buf key; /* scratch */
};
void bix__builder_init(struct bix_builder *b);  /* allocates nothing */
void bix__builder_reset(struct bix_builder *b); /* empty; keeps memory */
void bix__builder_release(struct bix_builder *b);
/* Adds one record. Returns 0 or VG_ELIMIT (a value past the limits: the caller drops
 * the record as for any record too large). */
int bix__builder_add(struct bix_builder *b, const struct pack_view *v) VG_MUST_USE;
/* Appends the index section to out (empty when off). Returns 0 or VG_ELIMIT. */
int bix__builder_finish(const struct bix_builder *b, struct buf *out) VG_MUST_USE;

/* What a scan needs, compiled for the index. */
struct bix_query {
    size_t nvals;
    struct bix_qval {
        int id;
        size_t off; /* key in keys */
        size_t len;
        uint64_t hash;
    } * vals;
    struct buf keys;
    size_t ngrams;
    uint16_t *grams; /* trigram codes, each of which some text needs */
    size_t ntexts;   /* texts with at least one trigram (for --explain) */
    /* Per record (bix__record_may_match): byte strings a record holding what the scan
     * needs must contain, exactly or ignoring ASCII case. */
    size_t nrec;
    struct bix_rneed {
        size_t off; /* in rbytes; nocase ones lower-cased */
        size_t len;
        bool nocase;
    } * rec;
    struct buf rbytes;
    uint32_t fields; /* store_need.fields */
};
/* Compiles need (may be NULL: nothing needed). Owned by q (bix__query_release).
 * Returns 0 or VG_ELIMIT. */
int bix__query_init(struct bix_query *q, const struct store_need *need) VG_MUST_USE;
void bix__query_release(struct bix_query *q);
static inline bool bix__query_empty(const struct bix_query *q)
{
    return q->nvals == 0 && q->ngrams == 0;
}

/* True when the stored bytes of one record (a v2 packed record, or any record) may
 * hold what q needs: each value q needs (but src_ip's, whose spellings differ) and each
 * text that only a string can hold occurs in them. Every string of a record is in its
 * bytes as it is (a packed record keeps raw whole and refers into it). */
bool bix__record_may_match(const struct bix_query *q, struct span rec);

/* Returns 1 when a block with this index section may hold a record q needs (always
 * for an empty section), 0 when it cannot, or VG_ECORRUPT (why set) when the section
 * is malformed. */
int bix__may_match(struct span index, const struct bix_query *q, struct errbuf *why) VG_MUST_USE;

/* Checks that index is a well-formed section (segment.md 3.2). Returns 0 or
 * VG_ECORRUPT with why. */
int bix__check(struct span index, struct errbuf *why) VG_MUST_USE;

/* The trigram codes of text (ASCII case folded; runs of letters, digits and bytes >=
 * 0x80; trigrams made only of hex digits left out), calling fn for each. */
void bix__trigrams(struct span text, void (*fn)(void *arg, uint16_t code), void *arg);

#endif
