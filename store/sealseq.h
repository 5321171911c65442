/* store/sealseq.h: the seal sequence (schemas/segment.md 13), the store's append-only,
 * chained and signed record of every segment's life: created, checkpointed, sealed,
 * deleted. What `vigil verify` checks the catalog and the files against, and what an
 * export bundle carries to prove where its events come from.
 *
 * This header reads and checks entries; only the store writer appends them
 * (store_int.h). Entries are plain values; any thread. */
#ifndef VG_STORE_SEALSEQ_H
#define VG_STORE_SEALSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"
#include "common/errbuf.h"
#include "common/vg.h"
#include "store/sign.h"

#define SEALSEQ_FILE       "seals.seq" /* in the store's directory */
#define SEALSEQ_ENTRY_LEN  336         /* segment.md 13.2 */
#define SEALSEQ_SIGNED_LEN 264         /* the signature covers bytes [0, 264) */

/* segment.md 13.3 */
enum sealseq_type {
    SEALSEQ_START = 1,
    SEALSEQ_KEY = 2,
    SEALSEQ_OPEN = 3,
    SEALSEQ_CHECKPOINT = 4,
    SEALSEQ_SEAL = 5,
    SEALSEQ_DELETE = 6,
};
enum sealseq_seal_reason { SEALSEQ_ENDED = 1, SEALSEQ_UNTRUSTED = 2, SEALSEQ_COMPACTED = 3 };
enum sealseq_delete_reason { SEALSEQ_MAX_AGE = 1, SEALSEQ_MAX_SIZE = 2, SEALSEQ_REPLACED = 3 };
#define SEALSEQ_F_ADOPTED 1u /* written at migration or recovery for what was there */

/* One entry, decoded (segment.md 13.2). */
struct sealseq_entry {
    uint8_t type; /* enum sealseq_type */
    uint8_t reason;
    uint8_t flags;
    uint64_t index;
    int64_t time;
    uint8_t prev[VG_SHA256_LEN];
    uint64_t segment_id;
    int64_t part_start;
    int64_t part_end;
    int64_t created;
    int64_t recv_max;
    uint64_t count;
    uint64_t blocks;
    uint64_t bytes;
    uint64_t bytes_raw;
    int64_t ts_min;
    int64_t ts_max;
    uint64_t seq_min;
    uint64_t seq_max;
    uint8_t chain_head[VG_SHA256_LEN];
    uint64_t other_id;
    uint8_t extra[VG_SHA256_LEN];
    uint8_t key_id[VG_SHA256_LEN]; /* all zero: not signed */
    uint8_t sig[SIGN_SIG_LEN];
    uint8_t hash[VG_SHA256_LEN]; /* SHA-256 of the entry's bytes (sealseq_decode sets it) */
};

/* Encodes e (its fields; key_id and sig as they are) with its CRC. */
void sealseq_encode(const struct sealseq_entry *e, uint8_t out[SEALSEQ_ENTRY_LEN]);

/* Decodes and checks one entry alone: magic, version, CRC, a known type and reason,
 * reserved bytes zero. Sets e->hash. Returns 0 or VG_ECORRUPT with why. */
int sealseq_decode(const uint8_t p[SEALSEQ_ENTRY_LEN], struct sealseq_entry *e,
                   struct errbuf *why) VG_MUST_USE;

/* Signs e with k (sets key_id and sig). Returns 0 or as sign_message. */
int sealseq_sign(struct sealseq_entry *e, const struct sign_key *k) VG_MUST_USE;

bool sealseq_is_signed(const struct sealseq_entry *e);

/* Checks e's signature with k. Returns 0, -ENOKEY (e is not signed, or by another key
 * than k) or VG_ECORRUPT (the signature does not match the entry). */
int sealseq_check(const struct sealseq_entry *e, const struct sign_key *k) VG_MUST_USE;

/* Walks a sequence in order: each entry checked alone and against the one before. */
struct sealseq_iter {
    uint64_t index;              /* of the next entry */
    uint8_t prev[VG_SHA256_LEN]; /* hash of the last entry passed (zero before the first) */
};
void sealseq_iter_init(struct sealseq_iter *it);
/* raw: the next SEALSEQ_ENTRY_LEN bytes of the sequence. Returns 0 with e decoded, or
 * VG_ECORRUPT with why (it fails sealseq_decode, or its index or prev hash is not the
 * next one's): e->hash is still the hash of raw and the iterator moves past it, so the
 * entries after a bad one are checked against it as stored. */
int sealseq_iter_next(struct sealseq_iter *it, const uint8_t raw[SEALSEQ_ENTRY_LEN],
                      struct sealseq_entry *e, struct errbuf *why) VG_MUST_USE;

/* Reads the sequence file at path, calling fn for every whole entry in order (bad is
 * NULL, or why the entry fails its checks: sealseq_iter_next). A nonzero return of fn
 * stops and is returned. *tail (may be NULL) gets the bytes past the last whole entry
 * (an entry being written, or torn). Returns 0, fn's value, -ENOENT (no sequence) or
 * -errno. Blocks on file I/O. */
typedef int (*sealseq_fn)(void *arg, const struct sealseq_entry *e, const char *bad);
int sealseq_read_file(const char *path, sealseq_fn fn, void *arg, uint64_t *tail) VG_MUST_USE;

/* "START", "SEAL", ... ("?" for an unknown type); the reason's name ("ended",
 * "max_age", "compacted", ...; "" when the type has none). Static strings. */
const char *sealseq_type_name(unsigned type);
const char *sealseq_reason_name(unsigned type, unsigned reason);

#endif
