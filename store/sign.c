/* store/sign.c: Ed25519 keys and signatures through OpenSSL 3's EVP API (see sign.h).
 * Ed25519 is used "pure" (EVP_DigestSign with no digest): the message is the 144-byte
 * seal record of schemas/segment.md 8.2, so nothing needs hashing first.
 *
 * Every OpenSSL call is preceded by ERR_clear_error() so that a failure reads only its
 * own errors, and the queue is cleared again before returning. Any thread. */
#include "store/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"

struct sign_key {
    EVP_PKEY *pk;
    bool priv;
    uint8_t pub[SIGN_PUB_LEN];
};

static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

/* Wraps pk (taking it) once it is known to be Ed25519; fills the raw public key. */
static int key_wrap(EVP_PKEY *pk, bool priv, struct sign_key **out)
{
    size_t n = SIGN_PUB_LEN;
    struct sign_key *k;

    if (!EVP_PKEY_is_a(pk, "ED25519")) {
        EVP_PKEY_free(pk);
        return VG_EFORMAT;
    }
    k = xcalloc(1, sizeof(*k));
    k->pk = pk;
    k->priv = priv;
    if (EVP_PKEY_get_raw_public_key(pk, k->pub, &n) != 1 || n != SIGN_PUB_LEN) {
        sign_key_free(k);
        ERR_clear_error();
        return VG_ETLS;
    }
    *out = k;
    return 0;
}

int sign_key_generate(struct sign_key **out)
{
    EVP_PKEY *pk = NULL;

    ERR_clear_error();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_generate(ctx, &pk) != 1) {
        EVP_PKEY_CTX_free(ctx);
        ERR_clear_error();
        return VG_ETLS;
    }
    EVP_PKEY_CTX_free(ctx);
    return key_wrap(pk, true, out);
}

/* Reads a whole small file (at most SIGN_PEM_MAX bytes) into b. */
static int read_small(const char *path, struct buf *b, struct errbuf *eb)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat sb;
    int rc = 0;

    if (fd < 0) {
        rc = -errno;
        errbuf_set(eb, "cannot open key file '%s': %s", path, vg_strerror(rc));
        return rc;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        errbuf_set(eb, "key file '%s' is not a regular file", path);
        close(fd);
        return -EINVAL;
    }
    if (sb.st_size > (off_t)SIGN_PEM_MAX) {
        errbuf_set(eb, "key file '%s' is %lld bytes; a PEM key is under %u", path,
                   (long long)sb.st_size, SIGN_PEM_MAX);
        close(fd);
        return VG_ELIMIT;
    }
    for (;;) {
        if (buf_reserve(b, 4096) < 0) {
            errbuf_set(eb, "key file '%s' is too large", path);
            rc = VG_ELIMIT;
            break;
        }
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            errbuf_set(eb, "cannot read key file '%s': %s", path, vg_strerror(rc));
            break;
        }
        if (n == 0) {
            break;
        }
        b->len += (size_t)n;
    }
    close(fd);
    if (rc == 0 && b->cap > 0) {
        b->data[b->len] = 0;
    }
    return rc;
}

int sign_key_load_private(const char *path, struct sign_key **out, struct errbuf *eb)
{
    struct buf b;
    EVP_PKEY *pk = NULL;
    int rc;

    buf_init(&b, SIGN_PEM_MAX + 4096);
    rc = read_small(path, &b, eb);
    if (rc < 0) {
        buf_release(&b);
        return rc;
    }
    ERR_clear_error();
    BIO *bio = BIO_new_mem_buf(b.data, (int)b.len);
    if (bio) {
        pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    if (!pk) {
        errbuf_set(eb, "key file '%s' holds no PEM private key: %s", path, ossl_reason());
        rc = VG_ECONFIG;
    } else if ((rc = key_wrap(pk, true, out)) < 0) {
        errbuf_set(eb, "key file '%s': %s", path,
                   rc == VG_EFORMAT ? "not an Ed25519 key" : "cannot read its public key");
        rc = VG_ECONFIG;
    }
    ERR_clear_error();
    /* The PEM text is a secret: wipe it before freeing. */
    if (b.data) {
        memset(b.data, 0, b.cap);
    }
    buf_release(&b);
    return rc;
}

int sign_key_parse_public(struct span pem, struct sign_key **out, struct errbuf *eb)
{
    EVP_PKEY *pk = NULL;
    bool priv = false;
    int rc;

    if (pem.n == 0 || pem.n > SIGN_PEM_MAX) {
        errbuf_set(eb, "not a PEM public key (%zu bytes)", pem.n);
        return VG_EFORMAT;
    }
    ERR_clear_error();
    BIO *bio = BIO_new_mem_buf(pem.p, (int)pem.n);
    if (bio) {
        pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        if (!pk) {
            /* Perhaps the private key file: its public half will do. */
            ERR_clear_error();
            (void)BIO_reset(bio);
            pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
            priv = pk != NULL;
        }
        BIO_free(bio);
    }
    if (!pk) {
        errbuf_set(eb, "not a PEM public key: %s", ossl_reason());
        ERR_clear_error();
        return VG_EFORMAT;
    }
    rc = key_wrap(pk, priv, out);
    ERR_clear_error();
    if (rc < 0) {
        errbuf_set(eb, "%s",
                   rc == VG_EFORMAT ? "not an Ed25519 key" : "cannot read the public key");
        return VG_EFORMAT;
    }
    if (priv) {
        (*out)->priv = false; /* asked for a public key: never sign with it */
    }
    return 0;
}

int sign_key_load_public(const char *path, struct sign_key **out, struct errbuf *eb)
{
    struct buf b;
    int rc;

    buf_init(&b, SIGN_PEM_MAX + 4096);
    rc = read_small(path, &b, eb);
    if (rc == 0) {
        rc = sign_key_parse_public(buf_span(&b), out, eb);
        if (rc < 0) {
            errbuf_prefix(eb, "key file '%s'", path);
        }
    }
    if (b.data) {
        memset(b.data, 0, b.cap);
    }
    buf_release(&b);
    return rc;
}

static int pem_out(const struct sign_key *k, bool priv, struct buf *out)
{
    BUF_MEM *mem = NULL;
    int ok;
    int rc = 0;

    ERR_clear_error();
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) {
        return VG_ETLS;
    }
    ok = priv ? PEM_write_bio_PrivateKey(bio, k->pk, NULL, NULL, 0, NULL, NULL)
              : PEM_write_bio_PUBKEY(bio, k->pk);
    if (ok != 1 || BIO_get_mem_ptr(bio, &mem) != 1 || !mem) {
        rc = VG_ETLS;
    } else {
        rc = buf_append(out, mem->data, mem->length);
    }
    if (priv && mem && mem->data) {
        OPENSSL_cleanse(mem->data, mem->length);
    }
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int sign_key_private_pem(const struct sign_key *k, struct buf *out)
{
    if (!k->priv) {
        return -EINVAL;
    }
    return pem_out(k, true, out);
}

int sign_key_public_pem(const struct sign_key *k, struct buf *out)
{
    return pem_out(k, false, out);
}

void sign_key_id(const struct sign_key *k, char out[SIGN_KEY_ID_LEN + 1])
{
    uint8_t h[VG_SHA256_LEN];

    vg_sha256(k->pub, SIGN_PUB_LEN, h);
    vg_hex(h, VG_SHA256_LEN, out);
}

void sign_key_public_raw(const struct sign_key *k, uint8_t out[SIGN_PUB_LEN])
{
    memcpy(out, k->pub, SIGN_PUB_LEN);
}

int sign_key_from_raw(const uint8_t pub[SIGN_PUB_LEN], struct sign_key **out)
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, SIGN_PUB_LEN);

    if (!pk) {
        ERR_clear_error();
        return VG_EFORMAT;
    }
    return key_wrap(pk, false, out);
}

bool sign_key_has_private(const struct sign_key *k)
{
    return k->priv;
}

int sign_message(const struct sign_key *k, const uint8_t *msg, size_t n, uint8_t sig[SIGN_SIG_LEN])
{
    size_t len = SIGN_SIG_LEN;
    int rc = 0;

    if (!k->priv) {
        return -EINVAL;
    }
    ERR_clear_error();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pk) != 1 ||
        EVP_DigestSign(ctx, sig, &len, msg, n) != 1 || len != SIGN_SIG_LEN) {
        rc = VG_ETLS;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int sign_check(const struct sign_key *k, const uint8_t *msg, size_t n,
               const uint8_t sig[SIGN_SIG_LEN])
{
    int rc = VG_ECORRUPT;

    ERR_clear_error();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pk) == 1 &&
        EVP_DigestVerify(ctx, sig, SIGN_SIG_LEN, msg, n) == 1) {
        rc = 0;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

void sign_key_free(struct sign_key *k)
{
    if (k) {
        EVP_PKEY_free(k->pk);
        free(k);
    }
}

static int unhex_nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

int sign_unhex(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n) {
        return VG_EPARSE;
    }
    for (size_t i = 0; i < n; i++) {
        int hi = unhex_nibble(hex[2 * i]);
        int lo = unhex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return VG_EPARSE;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
