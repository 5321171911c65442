/* common/tls.c: the one place vigil talks to OpenSSL's TLS API.
 *
 * A tls_ctx wraps an SSL_CTX configured once (protocol floor, ciphers, CA, CRL, our
 * certificate). A tls_sess is an SSL over two memory BIOs: rbio holds ciphertext fed
 * from the peer, wbio collects ciphertext for the peer; OpenSSL never sees a socket,
 * so the libuv loop owns all I/O. A tls_conn is a blocking client built on a tls_sess
 * and a non-blocking socket driven with poll(2), for the CLI only.
 *
 * Every SSL call is preceded by ERR_clear_error() so that a failure reads only its own
 * errors; the reason is turned into a sentence at once and the queue cleared, so no
 * error leaks into the next call on the same thread.
 *
 * Threads: a tls_ctx is immutable after creation and shared (SSL_CTX is refcounted;
 * each SSL holds a reference). A tls_sess/tls_conn belongs to one thread at a time. */
#include "common/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/xalloc.h"

/* TLS 1.2 suites: forward secret key exchange and AEAD only (Mozilla "intermediate"
 * without DHE). TLS 1.3 suites are all AEAD; OpenSSL's default list is kept. */
#define TLS_CIPHERS_12                                        \
 "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
 "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

#define TLS_REASON_MAX 256
#define TLS_PEER_MAX   256
/* Largest plaintext chunk handed to SSL_write at once by tls_conn_write (one record). */
#define TLS_CONN_CHUNK  16384
#define TLS_CONN_OUTMAX (1u << 20)

struct tls_ctx {
    SSL_CTX *ssl;
    bool server;
    bool crl_stale_ok; /* tls.crl_expired: warn */
};

struct tls_sess {
    SSL *ssl;
    BIO *rbio; /* peer -> us ciphertext; owned by ssl */
    BIO *wbio; /* us -> peer ciphertext; owned by ssl */
    const struct tls_ctx *ctx;
    const struct tls_policy *policy; /* server: who may complete the handshake, or NULL */
    bool server;
    bool done;         /* handshake finished and peer identity extracted */
    bool presented;    /* the peer sent a certificate: cert holds it */
    bool denied;       /* the policy refused it: err says why */
    bool cert_refused; /* the last failure was a certificate refused, by either side */
    struct tls_cert_info cert;
    char peer[TLS_PEER_MAX];
    char err[TLS_REASON_MAX];
};

struct tls_conn {
    int fd;
    int io_timeout_ms; /* for writes and the close_notify flush */
    struct tls_sess *sess;
    struct buf out;  /* ciphertext taken from sess, not yet sent */
    char where[300]; /* "host:port" for messages */
};

/* ---- error text ---------------------------------------------------------------- */

/* The reason for one packed OpenSSL error, with the hints we promise for the common
 * refusals. verify_result is the session's X509 verify result (X509_V_OK if none). */
static void reason_of(unsigned long e, long verify_result, char *dst, size_t cap)
{
    const char *r = ERR_reason_error_string(e);

    if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
        switch (ERR_GET_REASON(e)) {
        case SSL_R_CERTIFICATE_VERIFY_FAILED:
            snprintf(dst, cap, "certificate verify failed: %s",
                     X509_verify_cert_error_string(verify_result));
            return;
        case SSL_R_WRONG_VERSION_NUMBER:
            snprintf(dst, cap, "wrong version number (not TLS?)");
            return;
        case SSL_R_HTTP_REQUEST:
            snprintf(dst, cap, "http request (plaintext HTTP on a TLS port)");
            return;
        case SSL_R_HTTPS_PROXY_REQUEST:
            snprintf(dst, cap, "https proxy request (plaintext on a TLS port)");
            return;
        case SSL_R_PACKET_LENGTH_TOO_LONG:
        case SSL_R_RECORD_LENGTH_MISMATCH:
        case SSL_R_UNKNOWN_PROTOCOL:
            snprintf(dst, cap, "%s (not TLS?)", r ? r : "bad record");
            return;
        default:
            break;
        }
    }
    if (r) {
        snprintf(dst, cap, "%s", r);
    } else {
        snprintf(dst, cap, "OpenSSL error %08lx", e);
    }
}

const char *tls_errq_string(char *dst, size_t cap)
{
    unsigned long e = ERR_peek_error(); /* the earliest: the cause */

    if (cap == 0) {
        return dst;
    }
    if (e == 0) {
        snprintf(dst, cap, "unknown error");
    } else {
        reason_of(e, X509_V_OK, dst, cap);
    }
    ERR_clear_error();
    return dst;
}

/* Records why the last SSL call on s failed (ret, the call's return value, for
 * SSL_get_error) and clears the queue. */
/* Whether a failure is about a certificate: the peer's alert refusing ours, or our
 * verification refusing the peer's. Trying again with the same certificates cannot help
 * (vigil send does not retry these). */
static bool cert_refusal(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL) {
        return false;
    }
    switch (ERR_GET_REASON(e)) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return true;
    default:
        return false;
    }
}

static void sess_set_error(struct tls_sess *s, int ret)
{
    int kind = SSL_get_error(s->ssl, ret);
    unsigned long e = ERR_peek_error();

    s->cert_refused = s->denied || cert_refusal(e);
    if (s->denied) {
        /* err already says which policy refused which certificate */
    } else if (e != 0) {
        reason_of(e, SSL_get_verify_result(s->ssl), s->err, sizeof(s->err));
    } else if (kind == SSL_ERROR_ZERO_RETURN) {
        snprintf(s->err, sizeof(s->err), "peer closed the session");
    } else if (kind == SSL_ERROR_SYSCALL) {
        snprintf(s->err, sizeof(s->err), "unexpected end of stream");
    } else {
        snprintf(s->err, sizeof(s->err), "TLS error (kind %d)", kind);
    }
    ERR_clear_error();
}

static void sess_set_msg(struct tls_sess *s, const char *msg)
{
    snprintf(s->err, sizeof(s->err), "%s", msg);
}

/* ---- contexts -------------------------------------------------------------------- */

/* Never prompt for a passphrase (vigild has no terminal): encrypted keys fail to load. */
static int on_no_password(char *b, int size, int rwflag, void *u)
{
    (void)b;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int check_readable(const char *what, const char *path, struct errbuf *eb)
{
    if (access(path, R_OK) < 0) {
        int rc = -errno;
        errbuf_set(eb, "cannot read %s '%s': %s", what, path, strerror(errno));
        return rc;
    }
    return 0;
}

static int ctx_fail(const char *what, const char *path, struct errbuf *eb)
{
    char r[TLS_REASON_MAX];

    errbuf_set(eb, "cannot load %s '%s': %s", what, path, tls_errq_string(r, sizeof(r)));
    return VG_ETLS;
}

/* Settings common to both sides. */
static int ctx_base(bool server, const char *ca, struct tls_ctx **out, struct errbuf *eb)
{
    struct tls_ctx *ctx;
    SSL_CTX *ssl;
    int rc;

    *out = NULL;
    rc = check_readable("CA", ca, eb);
    if (rc < 0) {
        return rc;
    }
    ERR_clear_error();
    ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ssl) {
        char r[TLS_REASON_MAX];
        errbuf_set(eb, "cannot create TLS context: %s", tls_errq_string(r, sizeof(r)));
        return VG_ETLS;
    }
    ctx = xcalloc(1, sizeof(*ctx));
    ctx->ssl = ssl;
    ctx->server = server;
    if (!SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(ssl, TLS_CIPHERS_12)) {
        char r[TLS_REASON_MAX];
        errbuf_set(eb, "cannot set TLS protocol or ciphers: %s", tls_errq_string(r, sizeof(r)));
        goto fail;
    }
    SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* Idle connections keep no read/write buffers (many agents, mostly idle). */
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ssl, on_no_password);
    if (!SSL_CTX_load_verify_file(ssl, ca)) {
        ctx_fail("CA", ca, eb);
        goto fail;
    }
    *out = ctx;
    return 0;
fail:
    tls_ctx_free(ctx);
    return VG_ETLS;
}

/* Loads our certificate chain and key and checks that they belong together. */
static int ctx_load_identity(struct tls_ctx *ctx, const char *cert, const char *key,
                             struct errbuf *eb)
{
    int rc = check_readable("certificate", cert, eb);

    if (rc < 0) {
        return rc;
    }
    rc = check_readable("key", key, eb);
    if (rc < 0) {
        return rc;
    }
    ERR_clear_error();
    if (!SSL_CTX_use_certificate_chain_file(ctx->ssl, cert)) {
        return ctx_fail("certificate", cert, eb);
    }
    ERR_clear_error();
    if (!SSL_CTX_use_PrivateKey_file(ctx->ssl, key, SSL_FILETYPE_PEM)) {
        /* OpenSSL checks the key against the loaded certificate here already. */
        char r[TLS_REASON_MAX];
        unsigned long e = ERR_peek_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
            errbuf_set(eb, "key '%s' does not match certificate '%s': %s", key, cert,
                       tls_errq_string(r, sizeof(r)));
        } else {
            errbuf_set(eb, "cannot load key '%s': %s (not an unencrypted PEM private key?)", key,
                       tls_errq_string(r, sizeof(r)));
        }
        return VG_ETLS;
    }
    ERR_clear_error();
    if (!SSL_CTX_check_private_key(ctx->ssl)) {
        char r[TLS_REASON_MAX];
        errbuf_set(eb, "key '%s' does not match certificate '%s': %s", key, cert,
                   tls_errq_string(r, sizeof(r)));
        return VG_ETLS;
    }
    /* Fix the chain we send once, now: the certificates in `cert` completed from the
     * CA file, without the root. Otherwise OpenSSL builds it per handshake and sends
     * the root too, and a peer trusting another CA reports "self-signed certificate in
     * certificate chain" instead of the plainer "unable to get local issuer
     * certificate". A chain that does not verify here is sent as loaded: the peer
     * decides. */
    (void)SSL_CTX_build_cert_chain(ctx->ssl, SSL_BUILD_CHAIN_FLAG_NO_ROOT |
                                                 SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR);
    ERR_clear_error();
    return 0;
}

/* ---- what a peer presented, and who may connect ---------------------------------- */

static bool copy_asn1(const ASN1_STRING *a, char *dst, size_t cap);

/* ASN1_TIME as RFC 3339 UTC. */
static void time_text(const ASN1_TIME *t, char *dst, size_t cap)
{
    struct tm tm;

    if (!t || !ASN1_TIME_to_tm(t, &tm) || strftime(dst, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(dst, cap, "?");
    }
}

static int64_t time_ns(const ASN1_TIME *t)
{
    struct tm tm;

    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        return 0;
    }
    return (int64_t)timegm(&tm) * 1000000000LL;
}

/* A name as one line (RFC 2253), control characters as '?'. */
static void name_text(const X509_NAME *n, char *dst, size_t cap)
{
    BIO *b = BIO_new(BIO_s_mem());
    int len = 0;

    dst[0] = 0;
    if (b && X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        len = BIO_read(b, dst, (int)cap - 1);
    }
    BIO_free(b);
    dst[len > 0 ? len : 0] = 0;
    for (char *p = dst; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
}

static void cert_info(X509 *x, struct tls_cert_info *out)
{
    const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
    BIGNUM *bn = serial ? ASN1_INTEGER_to_BN(serial, NULL) : NULL;
    char *hex = bn ? BN_bn2hex(bn) : NULL;

    name_text(X509_get_subject_name(x), out->subject, sizeof(out->subject));
    name_text(X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
    snprintf(out->serial, sizeof(out->serial), "%s", hex ? hex : "?");
    time_text(X509_get0_notAfter(x), out->not_after, sizeof(out->not_after));
    OPENSSL_free(hex);
    BN_free(bn);
}

/* Whether an entry of nid in the subject is one of vals (the CN: matches one of them as
 * a glob, fnmatch). */
static bool any_entry(X509 *x, int nid, char *const *vals, size_t nvals)
{
    const X509_NAME *n = X509_get_subject_name(x);
    char text[256];

    for (int i = X509_NAME_get_index_by_NID(n, nid, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(n, nid, i)) {
        if (!copy_asn1(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)), text, sizeof(text))) {
            continue;
        }
        for (size_t k = 0; k < nvals; k++) {
            if (nid == NID_commonName ? fnmatch(vals[k], text, 0) == 0
                                      : strcmp(vals[k], text) == 0) {
                return true;
            }
        }
    }
    return false;
}

static bool any_san_uri(X509 *x, char *const *globs, size_t n)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char text[512];
    bool hit = false;

    for (int i = 0; gens && !hit && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_URI || !copy_asn1(g->d.uniformResourceIdentifier, text, sizeof(text))) {
            continue;
        }
        for (size_t k = 0; !hit && k < n; k++) {
            hit = fnmatch(globs[k], text, 0) == 0;
        }
    }
    GENERAL_NAMES_free(gens);
    return hit;
}

static bool oid_listed(const ASN1_OBJECT *o, char *const *oids, size_t n)
{
    char text[128];

    if (OBJ_obj2txt(text, sizeof(text), o, 1) <= 0) {
        return false;
    }
    for (size_t k = 0; k < n; k++) {
        if (strcmp(oids[k], text) == 0) {
            return true;
        }
    }
    return false;
}

/* An extended key usage or a certificate policy of x is one of oids. */
static bool any_oid(X509 *x, char *const *oids, size_t n)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    CERTIFICATEPOLICIES *pol = X509_get_ext_d2i(x, NID_certificate_policies, NULL, NULL);
    bool hit = false;

    for (int i = 0; eku && !hit && i < sk_ASN1_OBJECT_num(eku); i++) {
        hit = oid_listed(sk_ASN1_OBJECT_value(eku, i), oids, n);
    }
    for (int i = 0; pol && !hit && i < sk_POLICYINFO_num(pol); i++) {
        hit = oid_listed(sk_POLICYINFO_value(pol, i)->policyid, oids, n);
    }
    EXTENDED_KEY_USAGE_free(eku);
    CERTIFICATEPOLICIES_free(pol);
    return hit;
}

static bool policy_allows(const struct tls_policy *p, X509 *x)
{
    return p->any || any_entry(x, NID_organizationalUnitName, p->ous, p->nous) ||
           any_entry(x, NID_commonName, p->subjects, p->nsubjects) ||
           any_san_uri(x, p->san_uris, p->nsan_uris) || any_oid(x, p->oids, p->noids);
}

int tls_policy_describe(const struct tls_policy *p, char *dst, size_t cap)
{
    static const char *const what[] = { "OU", "CN", "URI SAN", "OID" };
    char *const *lists[] = { p->ous, p->subjects, p->san_uris, p->oids };
    const size_t counts[] = { p->nous, p->nsubjects, p->nsan_uris, p->noids };
    size_t n = 0;

    dst[0] = 0;
    if (p->any) {
        return snprintf(dst, cap, "any certificate the CA signed");
    }
    for (size_t i = 0; i < VG_ARRAY_LEN(lists); i++) {
        for (size_t k = 0; k < counts[i] && n < cap; k++) {
            n += (size_t)snprintf(dst + n, cap - n, "%s%s %s", n ? ", " : "", what[i], lists[i][k]);
        }
    }
    if (n == 0) {
        n = (size_t)snprintf(dst, cap, "no certificate");
    }
    return (int)n;
}

/* Server sessions: records the certificate the peer presents (for refusal records,
 * accepted or not), lets a CRL past its next update pass under tls.crl_expired: warn,
 * and refuses a leaf the session's policy (tls.agents) does not allow. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls_sess *s = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);

    if (!s) {
        return ok;
    }
    if (leaf && !s->presented) {
        s->presented = true;
        cert_info(leaf, &s->cert);
    }
    if (!ok) {
        return X509_STORE_CTX_get_error(xs) == X509_V_ERR_CRL_HAS_EXPIRED && s->ctx->crl_stale_ok;
    }
    if (X509_STORE_CTX_get_error_depth(xs) == 0 && s->policy && leaf &&
        !policy_allows(s->policy, leaf)) {
        char allowed[160];
        tls_policy_describe(s->policy, allowed, sizeof(allowed));
        /* The subject is in tls_sess_presented(); here what is allowed instead. */
        snprintf(s->err, sizeof(s->err), "not an agent's certificate: %s allows %s",
                 s->policy->name ? s->policy->name : "the policy", allowed);
        s->denied = true;
        /* bad_certificate: a client knows not to retry with the same one */
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    return 1;
}

void tls_sess_set_policy(struct tls_sess *s, const struct tls_policy *p)
{
    s->policy = p;
}

bool tls_sess_refused_by_policy(const struct tls_sess *s)
{
    return s->denied;
}

const struct tls_cert_info *tls_sess_presented(const struct tls_sess *s)
{
    return s->presented ? &s->cert : NULL;
}

void tls_ctx_set_crl_stale_ok(struct tls_ctx *ctx, bool ok)
{
    ctx->crl_stale_ok = ok;
}

void tls_ctx_swap(struct tls_ctx *ctx, struct tls_ctx *fresh)
{
    SSL_CTX *old = ctx->ssl;

    ctx->ssl = fresh->ssl; /* sessions made before keep their reference to old */
    ctx->crl_stale_ok = fresh->crl_stale_ok;
    fresh->ssl = old;
    tls_ctx_free(fresh);
}

int tls_crl_read(const char *path, int64_t now_ns, struct tls_crl_info *out, struct errbuf *eb)
{
    BIO *in;
    X509_CRL *crl;
    int rc = check_readable("CRL", path, eb);

    memset(out, 0, sizeof(*out));
    if (rc < 0) {
        return rc;
    }
    ERR_clear_error();
    in = BIO_new_file(path, "r");
    crl = in ? PEM_read_bio_X509_CRL(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    if (!crl) {
        return ctx_fail("CRL", path, eb);
    }
    const STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
    out->revoked = rev ? (uint64_t)sk_X509_REVOKED_num(rev) : 0;
    out->last_update_ns = time_ns(X509_CRL_get0_lastUpdate(crl));
    out->next_update_ns = time_ns(X509_CRL_get0_nextUpdate(crl));
    time_text(X509_CRL_get0_nextUpdate(crl), out->next_update, sizeof(out->next_update));
    out->expired = out->next_update_ns > 0 && out->next_update_ns < now_ns;
    X509_CRL_free(crl);
    return 0;
}

int tls_server_ctx_new(const char *ca, const char *cert, const char *key, const char *crl,
                       struct tls_ctx **out, struct errbuf *eb)
{
    static const unsigned char sid_ctx[] = "vigild";
    struct tls_ctx *ctx = NULL;
    int rc = ctx_base(true, ca, &ctx, eb);

    if (rc < 0) {
        return rc;
    }
    SSL_CTX *ssl = ctx->ssl;
    ERR_clear_error();
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
    if (!names) {
        rc = ctx_fail("CA", ca, eb);
        goto fail;
    }
    SSL_CTX_set_client_CA_list(ssl, names); /* takes ownership */
    SSL_CTX_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
    /* No resumption: a resumed session skips certificate checks, so a CRL or CA
     * reloaded on SIGHUP would not apply to agents that reconnect. */
    SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ssl, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ssl, 0);
    SSL_CTX_set_session_id_context(ssl, sid_ctx, sizeof(sid_ctx) - 1);
    if (crl) {
        rc = check_readable("CRL", crl, eb);
        if (rc < 0) {
            goto fail;
        }
        X509_STORE *st = SSL_CTX_get_cert_store(ssl);
        ERR_clear_error();
        X509_LOOKUP *lu = X509_STORE_add_lookup(st, X509_LOOKUP_file());
        if (!lu || X509_load_crl_file(lu, crl, X509_FILETYPE_PEM) <= 0) {
            rc = ctx_fail("CRL", crl, eb);
            goto fail;
        }
        X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK);
    }
    rc = ctx_load_identity(ctx, cert, key, eb);
    if (rc < 0) {
        goto fail;
    }
    *out = ctx;
    return 0;
fail:
    tls_ctx_free(ctx);
    return rc;
}

int tls_client_ctx_new(const char *ca, const char *cert, const char *key, struct tls_ctx **out,
                       struct errbuf *eb)
{
    struct tls_ctx *ctx = NULL;
    int rc;

    *out = NULL;
    if ((cert == NULL) != (key == NULL)) {
        errbuf_set(eb, "a client certificate needs its key and a key its certificate");
        return -EINVAL;
    }
    rc = ctx_base(false, ca, &ctx, eb);
    if (rc < 0) {
        return rc;
    }
    SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_PEER, NULL);
    if (cert) {
        rc = ctx_load_identity(ctx, cert, key, eb);
        if (rc < 0) {
            tls_ctx_free(ctx);
            return rc;
        }
    }
    *out = ctx;
    return 0;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
    if (!ctx) {
        return;
    }
    SSL_CTX_free(ctx->ssl); /* sessions keep their own reference */
    free(ctx);
}

/* ---- memory-BIO sessions -------------------------------------------------------- */

static bool is_ip_literal(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

int tls_sess_new(struct tls_ctx *ctx, bool server, const char *verify_host, struct tls_sess **out)
{
    struct tls_sess *s;

    *out = NULL;
    if (ctx->server != server) {
        return VG_ETLS;
    }
    s = xcalloc(1, sizeof(*s));
    s->server = server;
    s->ctx = ctx;
    ERR_clear_error();
    s->ssl = SSL_new(ctx->ssl); /* takes a reference on the SSL_CTX */
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (!s->ssl || !s->rbio || !s->wbio) {
        goto fail;
    }
    /* An empty rbio means "retry later" (SSL_ERROR_WANT_READ), not EOF. */
    BIO_set_mem_eof_return(s->rbio, -1);
    BIO_set_mem_eof_return(s->wbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio); /* ssl owns both now */
    SSL_set_app_data(s->ssl, s);           /* for verify_cb */
    if (server) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        if (verify_host && verify_host[0]) {
            if (is_ip_literal(verify_host)) {
                if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), verify_host)) {
                    goto fail_ssl;
                }
            } else {
                SSL_set_hostflags(s->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (!SSL_set1_host(s->ssl, verify_host) ||
                    !SSL_set_tlsext_host_name(s->ssl, verify_host)) {
                    goto fail_ssl;
                }
            }
        }
    }
    *out = s;
    return 0;
fail:
    /* The BIOs were not handed to ssl yet. */
    BIO_free(s->rbio);
    BIO_free(s->wbio);
    s->rbio = NULL;
    s->wbio = NULL;
fail_ssl:
    ERR_clear_error();
    tls_sess_free(s);
    return VG_ETLS;
}

void tls_sess_free(struct tls_sess *s)
{
    if (!s) {
        return;
    }
    SSL_free(s->ssl); /* frees the BIOs and drops the SSL_CTX reference */
    free(s);
}

int tls_sess_feed(struct tls_sess *s, const uint8_t *p, size_t n)
{
    size_t written = 0;

    if (n == 0) {
        return 0;
    }
    ERR_clear_error();
    if (!BIO_write_ex(s->rbio, p, n, &written) || written != n) {
        sess_set_msg(s, "cannot buffer input");
        ERR_clear_error();
        return VG_ETLS;
    }
    return 0;
}

/* Copies one ASN1 string as UTF-8 into dst, control characters as '?'. */
static bool copy_asn1(const ASN1_STRING *a, char *dst, size_t cap)
{
    unsigned char *u = NULL;
    int n = ASN1_STRING_to_UTF8(&u, a);

    if (n <= 0 || !u) {
        OPENSSL_free(u);
        return false;
    }
    size_t k = 0;
    for (int i = 0; i < n && k + 1 < cap; i++) {
        unsigned char c = u[i];
        dst[k++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    dst[k] = 0;
    OPENSSL_free(u);
    return k > 0;
}

/* The first SAN of the given type, as text. */
static bool san_first(const GENERAL_NAMES *gens, int type, char *dst, size_t cap)
{
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != type) {
            continue;
        }
        if (type == GEN_IPADD) {
            const ASN1_OCTET_STRING *ip = g->d.iPAddress;
            int len = ASN1_STRING_length(ip);
            const unsigned char *b = ASN1_STRING_get0_data(ip);
            if ((len == 4 && inet_ntop(AF_INET, b, dst, (socklen_t)cap)) ||
                (len == 16 && inet_ntop(AF_INET6, b, dst, (socklen_t)cap))) {
                return true;
            }
            continue;
        }
        /* GEN_DNS, GEN_EMAIL, GEN_URI are all IA5String. */
        if (copy_asn1(g->d.ia5, dst, cap)) {
            return true;
        }
    }
    return false;
}

/* The verified peer's name: subject CN, else the first SAN by preference. */
static void sess_extract_peer(struct tls_sess *s)
{
    X509 *cert = SSL_get0_peer_certificate(s->ssl);

    s->peer[0] = 0;
    if (!cert || SSL_get_verify_result(s->ssl) != X509_V_OK) {
        return;
    }
    const X509_NAME *subj = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (idx >= 0) {
        const X509_NAME_ENTRY *ent = X509_NAME_get_entry(subj, idx);
        if (copy_asn1(X509_NAME_ENTRY_get_data(ent), s->peer, sizeof(s->peer))) {
            return;
        }
    }
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (gens) {
        static const int order[] = { GEN_DNS, GEN_IPADD, GEN_EMAIL, GEN_URI };
        for (size_t i = 0; i < VG_ARRAY_LEN(order); i++) {
            if (san_first(gens, order[i], s->peer, sizeof(s->peer))) {
                break;
            }
        }
        GENERAL_NAMES_free(gens);
    }
    ERR_clear_error();
}

static void sess_finish(struct tls_sess *s)
{
    if (!s->done && SSL_is_init_finished(s->ssl)) {
        s->done = true;
        sess_extract_peer(s);
    }
}

int tls_sess_handshake(struct tls_sess *s)
{
    if (s->done) {
        return 1;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        sess_finish(s);
        return 1;
    }
    int kind = SSL_get_error(s->ssl, r);
    if (kind == SSL_ERROR_WANT_READ || kind == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return 0;
    }
    sess_set_error(s, r);
    return VG_ETLS;
}

ssize_t tls_sess_read(struct tls_sess *s, uint8_t *p, size_t cap)
{
    size_t n = 0;

    if (cap == 0) {
        return -EINVAL;
    }
    if (cap > INT_MAX) {
        cap = INT_MAX;
    }
    ERR_clear_error();
    int r = SSL_read_ex(s->ssl, p, cap, &n);
    if (r == 1) {
        sess_finish(s);
        return (ssize_t)n;
    }
    int kind = SSL_get_error(s->ssl, r);
    switch (kind) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        sess_finish(s);
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return -EPIPE;
    default:
        sess_set_error(s, r);
        return VG_ETLS;
    }
}

int tls_sess_write(struct tls_sess *s, const void *p, size_t n)
{
    const uint8_t *q = p;

    if (!SSL_is_init_finished(s->ssl)) {
        sess_set_msg(s, "write before the handshake finished");
        return VG_ETLS;
    }
    while (n > 0) {
        size_t w = 0;
        ERR_clear_error();
        /* A memory BIO never blocks: each call takes all it is given. */
        int r = SSL_write_ex(s->ssl, q, n, &w);
        if (r != 1) {
            sess_set_error(s, r);
            return VG_ETLS;
        }
        q += w;
        n -= w;
    }
    return 0;
}

int tls_sess_shutdown(struct tls_sess *s)
{
    if (!SSL_is_init_finished(s->ssl) || (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN)) {
        return 0;
    }
    ERR_clear_error();
    int r = SSL_shutdown(s->ssl);
    if (r < 0) {
        sess_set_error(s, r);
        return VG_ETLS;
    }
    return 0; /* 0: ours sent, the peer's not seen yet; 1: both */
}

size_t tls_sess_output_pending(const struct tls_sess *s)
{
    return BIO_ctrl_pending(s->wbio);
}

ssize_t tls_sess_take_output(struct tls_sess *s, struct buf *out)
{
    size_t pending = BIO_ctrl_pending(s->wbio);
    size_t got = 0;

    if (pending == 0) {
        return 0;
    }
    if (pending > SSIZE_MAX || buf_reserve(out, pending) < 0) {
        return VG_ELIMIT;
    }
    ERR_clear_error();
    if (!BIO_read_ex(s->wbio, out->data + out->len, pending, &got) || got != pending) {
        /* A memory BIO hands over what it reports pending; anything else is a bug. */
        ERR_clear_error();
        sess_set_msg(s, "cannot take output");
        return VG_ETLS;
    }
    out->len += got;
    out->data[out->len] = 0;
    return (ssize_t)got;
}

const char *tls_sess_peer(const struct tls_sess *s)
{
    return s->done ? s->peer : "";
}

const char *tls_sess_error(const struct tls_sess *s)
{
    return s->err;
}

const char *tls_sess_version(const struct tls_sess *s)
{
    return SSL_get_version(s->ssl);
}

/* ---- blocking client over a socket ---------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline (ms, monotonic). Returns 0 when ready,
 * -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = events };
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        int r = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (r > 0) {
            return 0; /* readable, writable, or an error the next call reports */
        }
        if (r == 0) {
            return -ETIMEDOUT;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

/* Sends everything the session has queued. Returns 0, -ETIMEDOUT or -errno. */
static int conn_flush(struct tls_conn *c, int64_t deadline)
{
    for (;;) {
        if (c->out.len == 0) {
            ssize_t t = tls_sess_take_output(c->sess, &c->out);
            if (t < 0) {
                return (int)t;
            }
            if (t == 0) {
                return 0;
            }
        }
        ssize_t w = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
        if (w > 0) {
            buf_consume(&c->out, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, deadline);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        return w < 0 ? -errno : -EPIPE;
    }
}

/* Reads what the socket has (waiting until deadline) into the session. Returns 0,
 * -EPIPE on EOF, -ETIMEDOUT, or -errno. */
static int conn_fill(struct tls_conn *c, int64_t deadline)
{
    uint8_t tmp[16384];

    for (;;) {
        ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
        if (n > 0) {
            return tls_sess_feed(c->sess, tmp, (size_t)n);
        }
        if (n == 0) {
            return -EPIPE;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return -errno;
        }
        int rc = wait_fd(c->fd, POLLIN, deadline);
        if (rc < 0) {
            return rc;
        }
    }
}

/* Connects a non-blocking socket to one address within deadline. */
static int connect_one(const struct addrinfo *ai, int64_t deadline, int *fd_out)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0) {
            goto fail;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
            rc = -errno;
            goto fail;
        }
        if (soerr != 0) {
            rc = -soerr;
            goto fail;
        }
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *fd_out = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

int tls_conn_open(struct tls_ctx *ctx, const char *host, int port, int timeout_ms,
                  struct tls_conn **out, struct errbuf *eb)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    struct tls_conn *c;
    char portstr[16];
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int rc;

    *out = NULL;
    if (port <= 0 || port > 65535) {
        errbuf_set(eb, "bad port %d for '%s'", port, host);
        return VG_EPARSE;
    }
    c = xcalloc(1, sizeof(*c));
    c->fd = -1;
    c->io_timeout_ms = timeout_ms;
    buf_init(&c->out, TLS_CONN_OUTMAX);
    snprintf(c->where, sizeof(c->where), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    snprintf(portstr, sizeof(portstr), "%d", port);

    int g = getaddrinfo(host, portstr, &hints, &res);
    if (g != 0) {
        errbuf_set(eb, "cannot resolve '%s': %s", host,
                   g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        rc = -EHOSTUNREACH;
        goto fail;
    }
    rc = -EHOSTUNREACH;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        rc = connect_one(ai, deadline, &c->fd);
        if (rc == 0 || rc == -ETIMEDOUT) {
            break;
        }
    }
    freeaddrinfo(res);
    if (rc < 0) {
        errbuf_set(eb, "cannot connect to %s: %s", c->where,
                   rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
        goto fail;
    }
    rc = tls_sess_new(ctx, false, host, &c->sess);
    if (rc < 0) {
        errbuf_set(eb, "cannot start TLS with %s (not a client context?)", c->where);
        goto fail;
    }
    for (;;) {
        int h = tls_sess_handshake(c->sess);
        /* Flush even after a failure: the alert tells the server why. */
        int frc = conn_flush(c, h < 0 ? now_ms() + 100 : deadline);
        if (h == 1) {
            if (frc < 0) {
                rc = frc;
                errbuf_set(eb, "TLS handshake with %s failed: %s", c->where,
                           frc == -ETIMEDOUT ? "timed out" : vg_strerror(frc));
                goto fail;
            }
            break;
        }
        if (h < 0) {
            rc = c->sess->cert_refused ? VG_ECERT : h;
            errbuf_set(eb, "TLS handshake with %s failed: %s", c->where, tls_sess_error(c->sess));
            goto fail;
        }
        if (frc < 0) {
            rc = frc;
            errbuf_set(eb, "TLS handshake with %s failed: %s", c->where,
                       frc == -ETIMEDOUT ? "timed out" : vg_strerror(frc));
            goto fail;
        }
        rc = conn_fill(c, deadline);
        if (rc < 0) {
            errbuf_set(eb, "TLS handshake with %s failed: %s", c->where,
                       rc == -ETIMEDOUT ? "timed out"
                       : rc == -EPIPE   ? "server closed the connection"
                                        : vg_strerror(rc));
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    buf_release(&c->out);
    tls_sess_free(c->sess);
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c);
    return rc;
}

int tls_conn_write(struct tls_conn *c, const void *p, size_t n)
{
    const uint8_t *q = p;

    while (n > 0) {
        size_t k = n < TLS_CONN_CHUNK ? n : TLS_CONN_CHUNK;
        int rc = tls_sess_write(c->sess, q, k);
        if (rc < 0) {
            return rc;
        }
        /* The timeout bounds each chunk: it fires only when the peer stops reading. */
        rc = conn_flush(c, now_ms() + c->io_timeout_ms);
        if (rc < 0) {
            return rc;
        }
        q += k;
        n -= k;
    }
    return 0;
}

ssize_t tls_conn_read(struct tls_conn *c, void *p, size_t cap, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);

    for (;;) {
        ssize_t n = tls_sess_read(c->sess, p, cap);
        if (n == VG_ETLS && c->sess->cert_refused) {
            return VG_ECERT; /* TLS 1.3: the server refused our certificate after our Finished */
        }
        if (n != 0) {
            return n;
        }
        /* Reading may have queued something for the server (a key update reply). */
        int rc = conn_flush(c, deadline);
        if (rc < 0) {
            return rc;
        }
        rc = conn_fill(c, deadline);
        if (rc < 0) {
            return rc;
        }
    }
}

const char *tls_conn_error(const struct tls_conn *c)
{
    return tls_sess_error(c->sess);
}

void tls_conn_close(struct tls_conn *c)
{
    if (!c) {
        return;
    }
    if (c->fd >= 0) {
        /* Best effort: a short wait so a dead server does not hold up the exit. */
        if (tls_sess_shutdown(c->sess) == 0) {
            int t = c->io_timeout_ms < 1000 ? c->io_timeout_ms : 1000;
            (void)conn_flush(c, now_ms() + t);
        }
        close(c->fd);
    }
    buf_release(&c->out);
    tls_sess_free(c->sess);
    free(c);
}
