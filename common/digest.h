/* common/digest.h: SHA-256 for the store's integrity chain, HMAC-SHA256 for signed
 * webhooks (OpenSSL EVP behind it). */
#ifndef VG_COMMON_DIGEST_H
#define VG_COMMON_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/span.h"

#define VG_SHA256_LEN 32

struct digest; /* an incremental SHA-256 */

struct digest *digest_new(void); /* aborts on allocation failure */
void digest_update(struct digest *d, const void *p, size_t n);
void digest_final(struct digest *d, uint8_t out[VG_SHA256_LEN]); /* d is reset for reuse */
void digest_free(struct digest *d);
void vg_sha256(const void *p, size_t n, uint8_t out[VG_SHA256_LEN]);
#define VG_SHA512_HEX_LEN 128
/* SHA-512 of the concatenation of parts, as lower-case hex (out: 129 bytes). */
void vg_sha512_hex_parts(const struct span *parts, size_t n, char out[VG_SHA512_HEX_LEN + 1]);
/* HMAC-SHA256 (RFC 2104) of msg under key: a webhook body's signature. */
void vg_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                    uint8_t out[VG_SHA256_LEN]);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void vg_hex(const uint8_t *p, size_t n, char *out);

#endif
