/* common/pki.c: the development PKI behind `vigil pki init` and `vigil pki issue`, the
 * demo and the TLS tests: a CA and the certificates they need, made with OpenSSL 3's
 * EVP_PKEY and X509 API.
 *
 * Invariants: a key file is created 0600 with O_EXCL before any byte of the key is
 * written (never a moment readable by others); a certificate file is 0644; nothing is
 * overwritten unless force, and then the old file is unlinked first (so O_EXCL still
 * holds and a symlink in the directory is replaced, not followed). A failed run removes
 * the files it created. Any one thread at a time; blocks on file I/O. */
#include "common/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/tls.h"

#define PKI_LEAF_DAYS 825
#define PKI_CA_DAYS   3650
#define PKI_MAX_FILES 16
#define PKI_NAME_MAX  64
#define PKI_REASON    256
#define PKI_MAX_NAMES 32
/* Every server certificate names loopback; --server-name adds to it. */
#define PKI_SERVER_SAN "DNS:localhost,IP:127.0.0.1,IP:::1"

/* Agents and analysts differ only in their subject's OU: the default tls.agents rule
 * (OU agents) lets the first ship events and refuses the second. */
enum pki_kind { PKI_CA, PKI_SERVER, PKI_AGENT, PKI_ANALYST };

/* The files this run created, removed if it fails. */
struct pki_made {
    char path[PKI_MAX_FILES][PATH_MAX];
    int n;
};

struct pki_ext {
    int nid;
    const char *value;
};

static const struct pki_ext pki_ca_exts[] = {
    { NID_basic_constraints, "critical,CA:TRUE" },
    { NID_key_usage, "critical,keyCertSign,cRLSign" },
    { NID_subject_key_identifier, "hash" },
    { 0, NULL },
};

static const struct pki_ext pki_server_exts[] = {
    { NID_basic_constraints, "critical,CA:FALSE" },
    { NID_key_usage, "critical,digitalSignature" },
    { NID_ext_key_usage, "serverAuth" },
    { NID_subject_alt_name, PKI_SERVER_SAN },
    { NID_subject_key_identifier, "hash" },
    { NID_authority_key_identifier, "keyid:always" },
    { 0, NULL },
};

static const struct pki_ext pki_client_exts[] = {
    { NID_basic_constraints, "critical,CA:FALSE" },
    { NID_key_usage, "critical,digitalSignature" },
    { NID_ext_key_usage, "clientAuth" },
    { NID_subject_key_identifier, "hash" },
    { NID_authority_key_identifier, "keyid:always" },
    { 0, NULL },
};

static const struct {
    const char *name;
    enum pki_kind kind;
} pki_clients[] = {
    { "agent-node-1", PKI_AGENT },
    { "agent-sidecar-1", PKI_AGENT },
    { "analyst", PKI_ANALYST },
};

static int pki_path(char *dst, const char *dir, const char *name, const char *suffix,
                    struct errbuf *eb)
{
    int n = snprintf(dst, PATH_MAX, "%s/%s%s", dir, name, suffix);

    if (n < 0 || n >= PATH_MAX) {
        errbuf_set(eb, "path too long: '%s/%s%s'", dir, name, suffix);
        return -ENAMETOOLONG;
    }
    return 0;
}

static int pki_openssl_fail(struct errbuf *eb, const char *what, const char *subject)
{
    char r[PKI_REASON];

    errbuf_set(eb, "cannot %s '%s': %s", what, subject, tls_errq_string(r, sizeof(r)));
    return VG_ETLS;
}

static bool pki_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > PKI_NAME_MAX || name[0] == '.' || name[0] == '-') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

/* dir exists as a directory afterwards (created 0700 when missing). */
static int pki_ensure_dir(const char *dir, struct errbuf *eb)
{
    struct stat st;

    if (dir[0] == 0) {
        errbuf_set(eb, "no directory given");
        return -EINVAL;
    }
    if (mkdir(dir, 0700) == 0) {
        return 0;
    }
    if (errno != EEXIST) {
        int rc = -errno;
        errbuf_set(eb, "cannot create directory '%s': %s", dir, strerror(errno));
        return rc;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        errbuf_set(eb, "'%s' exists and is not a directory", dir);
        return -ENOTDIR;
    }
    return 0;
}

/* Fails, naming the file, if path exists (or cannot be checked). */
static int pki_check_absent(const char *path, bool can_force, struct errbuf *eb)
{
    struct stat st;

    if (lstat(path, &st) == 0) {
        errbuf_set(eb, "refusing to overwrite '%s'%s", path,
                   can_force ? " (--force replaces it)" : "");
        return -EEXIST;
    }
    if (errno != ENOENT) {
        int rc = -errno;
        errbuf_set(eb, "cannot check '%s': %s", path, strerror(errno));
        return rc;
    }
    return 0;
}

/* Creates path with mode (O_EXCL: never an existing file, never through a symlink) and
 * writes n bytes. With force an existing file is unlinked first. */
static int pki_write_file(const char *path, const void *data, size_t n, mode_t mode, bool force,
                          struct pki_made *m, struct errbuf *eb)
{
    const char *p = data;
    int rc = 0;

    if (force && unlink(path) < 0 && errno != ENOENT) {
        rc = -errno;
        errbuf_set(eb, "cannot replace '%s': %s", path, strerror(errno));
        return rc;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        rc = -errno;
        if (errno == EEXIST) {
            errbuf_set(eb, "refusing to overwrite '%s'", path);
        } else {
            errbuf_set(eb, "cannot create '%s': %s", path, strerror(errno));
        }
        return rc;
    }
    if (m->n < PKI_MAX_FILES) {
        snprintf(m->path[m->n++], PATH_MAX, "%s", path);
    }
    /* Exactly mode, whatever the umask (which could only have removed bits). */
    if (fchmod(fd, mode) < 0) {
        rc = -errno;
        errbuf_set(eb, "cannot chmod '%s': %s", path, strerror(errno));
        goto out;
    }
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            errbuf_set(eb, "cannot write '%s': %s", path, strerror(-rc));
            goto out;
        }
        p += w;
        n -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        rc = -errno;
        errbuf_set(eb, "cannot sync '%s': %s", path, strerror(errno));
    }
out:
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
        errbuf_set(eb, "cannot close '%s': %s", path, strerror(errno));
    }
    return rc;
}

/* PEM of a key or certificate into a file. The memory holding key PEM is cleansed. */
static int pki_write_pem(const char *path, EVP_PKEY *key, X509 *cert, bool force,
                         struct pki_made *m, struct errbuf *eb)
{
    BIO *mem = BIO_new(BIO_s_mem());
    char *data = NULL;
    int rc;

    ERR_clear_error();
    if (!mem || (key && !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL)) ||
        (cert && !PEM_write_bio_X509(mem, cert))) {
        BIO_free(mem);
        return pki_openssl_fail(eb, "encode", path);
    }
    long n = BIO_get_mem_data(mem, &data);
    rc = pki_write_file(path, data, n > 0 ? (size_t)n : 0, key ? 0600 : 0644, force, m, eb);
    if (key && n > 0) {
        OPENSSL_cleanse(data, (size_t)n);
    }
    BIO_free(mem);
    return rc;
}

/* A random positive 128-bit serial number. */
static int pki_set_serial(X509 *x)
{
    unsigned char b[16];
    int ok = 0;

    if (RAND_bytes(b, sizeof(b)) != 1) {
        return 0;
    }
    b[sizeof(b) - 1] |= 1; /* never zero */
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
        ok = 1;
    }
    BN_free(bn);
    return ok;
}

/* san, when not NULL, replaces the subjectAltName row's value. */
static int pki_add_exts(X509 *x, X509 *issuer, const struct pki_ext *exts, const char *san)
{
    X509V3_CTX v3;

    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    for (const struct pki_ext *e = exts; e->nid; e++) {
        const char *v = san && e->nid == NID_subject_alt_name ? san : e->value;
        X509_EXTENSION *ex = X509V3_EXT_nconf_nid(NULL, &v3, e->nid, v);
        if (!ex) {
            return 0;
        }
        int ok = X509_add_ext(x, ex, -1);
        X509_EXTENSION_free(ex);
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* A certificate for key with subject CN=cn, signed by issuer/issuer_key (the CA) or
 * self-signed when issuer is NULL; san (or NULL: the kind's default) its subjectAltName.
 * Returns the certificate (caller owns) or NULL with the reason in OpenSSL's error
 * queue. */
static X509 *pki_make_cert(enum pki_kind kind, const char *cn, EVP_PKEY *key, X509 *issuer,
                           EVP_PKEY *issuer_key, const char *san)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    const struct pki_ext *exts = kind == PKI_CA       ? pki_ca_exts
                                 : kind == PKI_SERVER ? pki_server_exts
                                                      : pki_client_exts;
    long days = kind == PKI_CA ? PKI_CA_DAYS : PKI_LEAF_DAYS;

    if (!x || !name || !X509_set_version(x, X509_VERSION_3) || !pki_set_serial(x)) {
        goto fail;
    }
    if (kind == PKI_CA && !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                                      (const unsigned char *)"vigil", -1, -1, 0)) {
        goto fail;
    }
    const char *ou = kind == PKI_AGENT     ? PKI_OU_AGENTS
                     : kind == PKI_ANALYST ? PKI_OU_ANALYSTS
                                           : NULL;
    if (ou && !X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8, (const unsigned char *)ou, -1,
                                          -1, 0)) {
        goto fail;
    }
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name)) {
        goto fail;
    }
    /* An hour back: clocks of agents and the collector are never quite in step. */
    if (!X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) || !X509_set_pubkey(x, key)) {
        goto fail;
    }
    if (!pki_add_exts(x, issuer ? issuer : x, exts, san) ||
        !X509_sign(x, issuer ? issuer_key : key, EVP_sha256())) {
        goto fail;
    }
    X509_NAME_free(name);
    return x;
fail:
    X509_NAME_free(name);
    X509_free(x);
    return NULL;
}

/* Generates a key and a certificate for name and writes dir/<name>-key.pem, then
 * dir/<name>.pem. For PKI_CA, *ca_out and *ca_key_out receive them (caller owns). san:
 * see pki_make_cert. */
static int pki_issue(const char *dir, const char *name, enum pki_kind kind, X509 *ca,
                     EVP_PKEY *ca_key, const char *san, bool force, struct pki_made *m,
                     X509 **ca_out, EVP_PKEY **ca_key_out, struct errbuf *eb)
{
    char cert_path[PATH_MAX];
    char key_path[PATH_MAX];
    const char *cn = kind == PKI_CA ? "vigil development CA" : kind == PKI_SERVER ? "vigild" : name;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    int rc = pki_path(cert_path, dir, name, ".pem", eb);

    if (rc == 0) {
        rc = pki_path(key_path, dir, name, "-key.pem", eb);
    }
    if (rc < 0) {
        return rc;
    }
    ERR_clear_error();
    key = EVP_EC_gen("P-256");
    if (!key) {
        return pki_openssl_fail(eb, "generate a key for", name);
    }
    x = pki_make_cert(kind, cn, key, ca, ca_key, san);
    if (!x) {
        rc = pki_openssl_fail(eb, "make the certificate", cert_path);
        goto out;
    }
    rc = pki_write_pem(key_path, key, NULL, force, m, eb);
    if (rc == 0) {
        rc = pki_write_pem(cert_path, NULL, x, force, m, eb);
    }
    if (rc == 0 && kind == PKI_CA) {
        *ca_out = x;
        *ca_key_out = key;
        return 0;
    }
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

static void pki_undo(struct pki_made *m)
{
    for (int i = 0; i < m->n; i++) {
        (void)unlink(m->path[i]);
    }
    m->n = 0;
}

static int pki_check_pair(const char *dir, const char *name, bool can_force, struct errbuf *eb)
{
    char path[PATH_MAX];
    int rc = pki_path(path, dir, name, ".pem", eb);

    if (rc == 0) {
        rc = pki_check_absent(path, can_force, eb);
    }
    if (rc == 0) {
        rc = pki_path(path, dir, name, "-key.pem", eb);
    }
    if (rc == 0) {
        rc = pki_check_absent(path, can_force, eb);
    }
    return rc;
}

/* A DNS name (letters, digits, '-', '.', a leading "*." wildcard) or an IP address, as
 * "DNS:name" or "IP:addr" appended to san. Returns 0 or VG_EPARSE with eb. */
static int pki_san_append(struct buf *san, const char *name, struct errbuf *eb)
{
    unsigned char addr[sizeof(struct in6_addr)];
    size_t n = strlen(name);
    const char *p = strncmp(name, "*.", 2) == 0 ? name + 2 : name;
    bool ok = n > 0 && n <= 253 && *p != '.' && *p != '-';

    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
        return buf_appendf(san, ",IP:%s", name) == 0 ? 0 : VG_ELIMIT;
    }
    for (; ok && *p; p++) {
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '-' || *p == '.';
    }
    if (!ok) {
        errbuf_set(eb,
                   "bad server name '%.80s': a DNS name (A-Z a-z 0-9 - ., optionally *. first) "
                   "or an IP address",
                   name);
        return VG_EPARSE;
    }
    return buf_appendf(san, ",DNS:%s", name) == 0 ? 0 : VG_ELIMIT;
}

int pki_init(const char *dir, bool force, struct errbuf *eb)
{
    return pki_init_names(dir, force, NULL, 0, eb);
}

int pki_init_names(const char *dir, bool force, const char *const *names, size_t nnames,
                   struct errbuf *eb)
{
    struct pki_made m = { .n = 0 };
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    struct buf san;
    int rc = 0;

    if (nnames > PKI_MAX_NAMES) {
        errbuf_set(eb, "%zu server names: at most %d", nnames, PKI_MAX_NAMES);
        return VG_EPARSE;
    }
    buf_init(&san, 8192);
    rc = buf_appendf(&san, "%s", PKI_SERVER_SAN);
    for (size_t i = 0; rc == 0 && i < nnames; i++) {
        rc = pki_san_append(&san, names[i], eb);
    }
    if (rc == 0) {
        rc = pki_ensure_dir(dir, eb);
    }
    if (rc < 0) {
        buf_release(&san);
        return rc;
    }
    if (!force) {
        /* All checked before anything is written: a refusal leaves dir untouched. */
        rc = pki_check_pair(dir, "ca", true, eb);
        if (rc == 0) {
            rc = pki_check_pair(dir, "server", true, eb);
        }
        for (size_t i = 0; rc == 0 && i < VG_ARRAY_LEN(pki_clients); i++) {
            rc = pki_check_pair(dir, pki_clients[i].name, true, eb);
        }
        if (rc < 0) {
            buf_release(&san);
            return rc;
        }
    }
    rc = pki_issue(dir, "ca", PKI_CA, NULL, NULL, NULL, force, &m, &ca, &ca_key, eb);
    if (rc == 0) {
        rc = pki_issue(dir, "server", PKI_SERVER, ca, ca_key, buf_cstr(&san), force, &m, NULL, NULL,
                       eb);
    }
    for (size_t i = 0; rc == 0 && i < VG_ARRAY_LEN(pki_clients); i++) {
        rc = pki_issue(dir, pki_clients[i].name, pki_clients[i].kind, ca, ca_key, NULL, force, &m,
                       NULL, NULL, eb);
    }
    if (rc < 0) {
        pki_undo(&m);
    }
    buf_release(&san);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

/* Never prompt for a passphrase: an encrypted CA key is an error. */
static int on_no_password(char *b, int size, int rwflag, void *u)
{
    (void)b;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* Loads dir's CA certificate and key and checks that they belong together. */
static int pki_load_ca(const char *dir, X509 **ca_out, EVP_PKEY **key_out, struct errbuf *eb)
{
    char cert_path[PATH_MAX];
    char key_path[PATH_MAX];
    X509 *ca = NULL;
    EVP_PKEY *key = NULL;
    BIO *in = NULL;
    int rc = pki_path(cert_path, dir, "ca", ".pem", eb);

    if (rc == 0) {
        rc = pki_path(key_path, dir, "ca", "-key.pem", eb);
    }
    if (rc < 0) {
        return rc;
    }
    if (access(cert_path, R_OK) < 0 || access(key_path, R_OK) < 0) {
        rc = -errno;
        errbuf_set(eb, "cannot read the CA in '%s': %s", dir, strerror(errno));
        return rc;
    }
    ERR_clear_error();
    in = BIO_new_file(cert_path, "r");
    ca = in ? PEM_read_bio_X509(in, NULL, on_no_password, NULL) : NULL;
    BIO_free(in);
    if (!ca) {
        return pki_openssl_fail(eb, "load CA certificate", cert_path);
    }
    in = BIO_new_file(key_path, "r");
    key = in ? PEM_read_bio_PrivateKey(in, NULL, on_no_password, NULL) : NULL;
    BIO_free(in);
    if (!key) {
        X509_free(ca);
        return pki_openssl_fail(eb, "load CA key", key_path);
    }
    if (!X509_check_private_key(ca, key)) {
        X509_free(ca);
        EVP_PKEY_free(key);
        return pki_openssl_fail(eb, "use CA key with certificate", key_path);
    }
    *ca_out = ca;
    *key_out = key;
    return 0;
}

int pki_issue_client(const char *dir, const char *name, enum pki_role role, struct errbuf *eb)
{
    struct pki_made m = { .n = 0 };
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    int rc;

    if (!pki_name_ok(name)) {
        errbuf_set(eb,
                   "bad client name '%.80s': use 1 to %d of A-Z a-z 0-9 . _ - (not first . or -)",
                   name, PKI_NAME_MAX);
        return VG_EPARSE;
    }
    if (strcmp(name, "ca") == 0) {
        errbuf_set(eb, "client name 'ca' would clash with the CA's files");
        return VG_EPARSE;
    }
    rc = pki_check_pair(dir, name, false, eb);
    if (rc < 0) {
        return rc;
    }
    rc = pki_load_ca(dir, &ca, &ca_key, eb);
    if (rc < 0) {
        return rc;
    }
    rc = pki_issue(dir, name, role == PKI_ROLE_ANALYST ? PKI_ANALYST : PKI_AGENT, ca, ca_key, NULL,
                   false, &m, NULL, NULL, eb);
    if (rc < 0) {
        pki_undo(&m);
    }
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}

/* The serials an existing CRL lists (kept when it is written again), or none. */
static STACK_OF(X509_REVOKED) * pki_crl_existing(const char *path)
{
    BIO *in = BIO_new_file(path, "r");
    X509_CRL *old = in ? PEM_read_bio_X509_CRL(in, NULL, NULL, NULL) : NULL;
    STACK_OF(X509_REVOKED) *out = sk_X509_REVOKED_new_null();

    BIO_free(in);
    ERR_clear_error();
    const STACK_OF(X509_REVOKED) *rev = old ? X509_CRL_get_REVOKED(old) : NULL;
    for (int i = 0; rev && out && i < sk_X509_REVOKED_num(rev); i++) {
        X509_REVOKED *dup = X509_REVOKED_dup(sk_X509_REVOKED_value(rev, i));
        if (dup && !sk_X509_REVOKED_push(out, dup)) {
            X509_REVOKED_free(dup);
        }
    }
    X509_CRL_free(old);
    return out;
}

int pki_crl(const char *dir, const char *const *revoke, size_t nrevoke, int days, struct errbuf *eb)
{
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    X509_CRL *crl = NULL;
    ASN1_TIME *t = NULL;
    STACK_OF(X509_REVOKED) *keep = NULL;
    struct pki_made m = { .n = 0 };
    int rc = pki_path(path, dir, "crl", ".pem", eb);

    if (rc == 0) {
        rc = pki_path(tmp, dir, "crl", ".pem.tmp", eb);
    }
    if (rc == 0) {
        rc = pki_load_ca(dir, &ca, &ca_key, eb);
    }
    if (rc < 0) {
        return rc;
    }
    ERR_clear_error();
    keep = pki_crl_existing(path);
    crl = X509_CRL_new();
    t = ASN1_TIME_adj(NULL, time(NULL), 0, -3600);
    if (!keep || !crl || !t || !X509_CRL_set_version(crl, 1) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
        !X509_CRL_set1_lastUpdate(crl, t) || !ASN1_TIME_adj(t, time(NULL), days, 0) ||
        !X509_CRL_set1_nextUpdate(crl, t)) {
        rc = pki_openssl_fail(eb, "make the CRL", path);
        goto out;
    }
    while (sk_X509_REVOKED_num(keep) > 0) {
        X509_REVOKED *r = sk_X509_REVOKED_shift(keep);
        if (!X509_CRL_add0_revoked(crl, r)) {
            X509_REVOKED_free(r);
            rc = pki_openssl_fail(eb, "make the CRL", path);
            goto out;
        }
    }
    for (size_t i = 0; i < nrevoke; i++) {
        char cert_path[PATH_MAX];
        if ((rc = pki_path(cert_path, dir, revoke[i], ".pem", eb)) < 0) {
            goto out;
        }
        BIO *in = BIO_new_file(cert_path, "r");
        X509 *x = in ? PEM_read_bio_X509(in, NULL, NULL, NULL) : NULL;
        BIO_free(in);
        X509_REVOKED *listed = NULL;
        if (x && X509_CRL_get0_by_serial(crl, &listed, X509_get_serialNumber(x)) == 1) {
            X509_free(x); /* listed already */
            continue;
        }
        X509_REVOKED *r = x ? X509_REVOKED_new() : NULL;
        if (!x || !r || !X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(x)) ||
            !ASN1_TIME_adj(t, time(NULL), 0, 0) || !X509_REVOKED_set_revocationDate(r, t) ||
            !X509_CRL_add0_revoked(crl, r)) {
            X509_REVOKED_free(r);
            X509_free(x);
            rc = pki_openssl_fail(eb, "revoke", cert_path);
            goto out;
        }
        X509_free(x);
    }
    if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, ca_key, EVP_sha256())) {
        rc = pki_openssl_fail(eb, "sign the CRL", path);
        goto out;
    }
    BIO *mem = BIO_new(BIO_s_mem());
    char *data = NULL;
    if (!mem || !PEM_write_bio_X509_CRL(mem, crl)) {
        BIO_free(mem);
        rc = pki_openssl_fail(eb, "encode", path);
        goto out;
    }
    long n = BIO_get_mem_data(mem, &data);
    /* Written aside, then renamed over: a reader (vigild reloading it) sees the old CRL
     * or the new one, never half of one. */
    rc = pki_write_file(tmp, data, n > 0 ? (size_t)n : 0, 0644, true, &m, eb);
    BIO_free(mem);
    if (rc == 0 && rename(tmp, path) < 0) {
        rc = -errno;
        errbuf_set(eb, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        (void)unlink(tmp);
    }
out:
    sk_X509_REVOKED_pop_free(keep, X509_REVOKED_free);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rc;
}
