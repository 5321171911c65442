/* common/digest.c: SHA-256 through OpenSSL's EVP interface. Any thread; a struct
 * digest belongs to one thread at a time. */
#include "common/digest.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>

struct digest {
    EVP_MD_CTX *ctx;
};

static void digest_reset(struct digest *d)
{
    if (EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "EVP_DigestInit_ex(sha256) failed\n");
        abort();
    }
}

struct digest *digest_new(void)
{
    struct digest *d = malloc(sizeof(*d));
    if (!d || !(d->ctx = EVP_MD_CTX_new())) {
        fprintf(stderr, "out of memory allocating a SHA-256 context\n");
        abort();
    }
    digest_reset(d);
    return d;
}

void digest_update(struct digest *d, const void *p, size_t n)
{
    EVP_DigestUpdate(d->ctx, p, n);
}

void digest_final(struct digest *d, uint8_t out[VG_SHA256_LEN])
{
    unsigned int len = VG_SHA256_LEN;
    EVP_DigestFinal_ex(d->ctx, out, &len);
    digest_reset(d);
}

void digest_free(struct digest *d)
{
    if (d) {
        EVP_MD_CTX_free(d->ctx);
        free(d);
    }
}

void vg_sha256(const void *p, size_t n, uint8_t out[VG_SHA256_LEN])
{
    unsigned int len = VG_SHA256_LEN;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

void vg_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                    uint8_t out[VG_SHA256_LEN])
{
    unsigned int len = VG_SHA256_LEN;
    static const uint8_t empty = 0;

    /* HMAC() with a NULL key of length 0 is refused by some OpenSSL versions. */
    if (!HMAC(EVP_sha256(), key_len ? key : &empty, (int)key_len, msg_len ? msg : &empty, msg_len,
              out, &len)) {
        fprintf(stderr, "HMAC-SHA256 failed\n");
        abort();
    }
}

void vg_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = 0;
}

void vg_sha512_hex_parts(const struct span *parts, size_t n, char out[VG_SHA512_HEX_LEN + 1])
{
    uint8_t md[64];
    unsigned int len = sizeof(md);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) != 1) {
        fprintf(stderr, "cannot initialise SHA-512\n");
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        EVP_DigestUpdate(ctx, parts[i].p, parts[i].n);
    }
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    vg_hex(md, sizeof(md), out);
}
