/* store/sign.h: Ed25519 keys and signatures for sealed chain heads (schemas/segment.md
 * 8). OpenSSL 3's EVP API lives behind this one module for signing, as it lives in
 * common/tls.c for TLS and in the pki command for certificates; no OpenSSL type
 * appears here.
 *
 * A struct sign_key holds a private key (signs and checks) or a public key (checks
 * only). Keys are immutable once made: any thread may sign or check with one. */
#ifndef VG_STORE_SIGN_H
#define VG_STORE_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/digest.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"

#define SIGN_SIG_LEN    64                  /* an Ed25519 signature */
#define SIGN_PUB_LEN    32                  /* a raw Ed25519 public key */
#define SIGN_KEY_ID_LEN (2 * VG_SHA256_LEN) /* hex SHA-256 of the raw public key */
#define SIGN_PEM_MAX    (16u << 10)         /* larger key files are refused */

struct sign_key;

/* A new random private key. *out is owned by the caller (sign_key_free). Returns 0 or
 * VG_ETLS (the RNG or OpenSSL failed). */
int sign_key_generate(struct sign_key **out) VG_MUST_USE;

/* Reads a PEM private key (PKCS#8 "PRIVATE KEY") from path; it must be Ed25519.
 * Returns 0 and *out (caller frees), -errno (eb names the file) or VG_ECONFIG (not an
 * Ed25519 private key). Blocks on file I/O. */
int sign_key_load_private(const char *path, struct sign_key **out, struct errbuf *eb) VG_MUST_USE;

/* Parses a PEM public key ("PUBLIC KEY", SubjectPublicKeyInfo); it must be Ed25519.
 * A private key PEM is accepted too (its public half is used). Returns 0 and *out
 * (caller frees) or VG_EFORMAT with eb. */
int sign_key_parse_public(struct span pem, struct sign_key **out, struct errbuf *eb) VG_MUST_USE;

/* Reads a PEM public (or private) key file: sign_key_parse_public on its bytes.
 * Returns 0, -errno or VG_EFORMAT with eb. */
int sign_key_load_public(const char *path, struct sign_key **out, struct errbuf *eb) VG_MUST_USE;

/* Appends the PEM text of the private key (k must hold one) or of the public key.
 * Returns 0, VG_ELIMIT (out->max) or -EINVAL (no private key in k). */
int sign_key_private_pem(const struct sign_key *k, struct buf *out) VG_MUST_USE;
int sign_key_public_pem(const struct sign_key *k, struct buf *out) VG_MUST_USE;

/* The key's id: lower-case hex SHA-256 of its 32-byte raw public key (out: 65 bytes). */
void sign_key_id(const struct sign_key *k, char out[SIGN_KEY_ID_LEN + 1]);

bool sign_key_has_private(const struct sign_key *k);

/* The raw 32-byte public key (RFC 8032), as the seal sequence records it. */
void sign_key_public_raw(const struct sign_key *k, uint8_t out[SIGN_PUB_LEN]);
/* A public key from its raw bytes. Returns 0 and *out (caller frees) or VG_EFORMAT (not
 * a point of the curve) / VG_ETLS. */
int sign_key_from_raw(const uint8_t pub[SIGN_PUB_LEN], struct sign_key **out) VG_MUST_USE;

/* Signs msg (Ed25519, pure: no pre-hash). Returns 0 or -EINVAL (a public key) or
 * VG_ETLS. */
int sign_message(const struct sign_key *k, const uint8_t *msg, size_t n,
                 uint8_t sig[SIGN_SIG_LEN]) VG_MUST_USE;

/* Returns 0 when sig is k's signature of msg, VG_ECORRUPT when it is not. */
int sign_check(const struct sign_key *k, const uint8_t *msg, size_t n,
               const uint8_t sig[SIGN_SIG_LEN]) VG_MUST_USE;

void sign_key_free(struct sign_key *k); /* takes NULL */

/* Lower-case hex <-> bytes, for signatures and ids in the catalog. Returns 0 or
 * VG_EPARSE (wrong length or a character that is not lower-case hex). */
int sign_unhex(const char *hex, uint8_t *out, size_t n) VG_MUST_USE;

#endif
