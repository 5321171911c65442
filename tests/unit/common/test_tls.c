/* tests/unit/common/test_tls.c: common/tls and `vigil pki` together.
 *
 * Two PKIs are made with pki_init in temporary directories (two unrelated CAs). Most
 * tests pump two memory-BIO sessions into each other; the tls_conn tests run a server
 * session in a thread behind a real socket on 127.0.0.1. A CRL test signs a CRL with
 * OpenSSL directly (the tls module is where OpenSSL may be used). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/pki.h"
#include "common/tls.h"

/* A string literal and its length (it may hold NUL bytes). */
#define LIT(s) s, sizeof(s) - 1

static char dir1[64]; /* the PKI the server trusts */
static char dir2[64]; /* another CA */

/* dir/file in one of a few rotating buffers (enough for one call's arguments). */
static const char *P(const char *dir, const char *file)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];

    /* The test's paths are short; a longer one would be a test bug, not a truncation. */
    if (snprintf(b, 512, "%s/%s", dir, file) >= 512) {
        abort();
    }
    return b;
}

static void rm_rf(const char *dir)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int group_setup(void **state)
{
    struct errbuf eb;

    (void)state;
    snprintf(dir1, sizeof(dir1), "/tmp/vg-tls-1-XXXXXX");
    snprintf(dir2, sizeof(dir2), "/tmp/vg-tls-2-XXXXXX");
    if (!mkdtemp(dir1) || !mkdtemp(dir2)) {
        return -1;
    }
    errbuf_clear(&eb);
    if (pki_init(dir1, false, &eb) != 0) {
        fprintf(stderr, "pki_init: %s\n", errbuf_msg(&eb));
        return -1;
    }
    if (pki_init(dir2, false, &eb) != 0) {
        fprintf(stderr, "pki_init: %s\n", errbuf_msg(&eb));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!getenv("VG_KEEP_TESTDIR")) {
        rm_rf(dir1);
        rm_rf(dir2);
    }
    return 0;
}

static struct tls_ctx *server_ctx(const char *crl)
{
    struct tls_ctx *ctx = NULL;
    struct errbuf eb;

    errbuf_clear(&eb);
    int rc = tls_server_ctx_new(P(dir1, "ca.pem"), P(dir1, "server.pem"), P(dir1, "server-key.pem"),
                                crl, &ctx, &eb);
    if (rc != 0) {
        fail_msg("server ctx: %s", errbuf_msg(&eb));
    }
    return ctx;
}

/* A client trusting ca_dir's CA, presenting cert_dir/name (name NULL: no cert). */
static struct tls_ctx *client_ctx(const char *ca_dir, const char *cert_dir, const char *name)
{
    struct tls_ctx *ctx = NULL;
    struct errbuf eb;
    char cert[256];
    char key[256];

    errbuf_clear(&eb);
    if (name) {
        snprintf(cert, sizeof(cert), "%s/%s.pem", cert_dir, name);
        snprintf(key, sizeof(key), "%s/%s-key.pem", cert_dir, name);
    }
    int rc =
        tls_client_ctx_new(P(ca_dir, "ca.pem"), name ? cert : NULL, name ? key : NULL, &ctx, &eb);
    if (rc != 0) {
        fail_msg("client ctx: %s", errbuf_msg(&eb));
    }
    return ctx;
}

/* Moves from's pending ciphertext into to. */
static void move(struct tls_sess *from, struct tls_sess *to)
{
    struct buf b;

    buf_init(&b, 1 << 22);
    ssize_t n = tls_sess_take_output(from, &b);
    assert_true(n >= 0);
    assert_int_equal((size_t)n, b.len);
    assert_true(buf_check(&b));
    assert_int_equal(tls_sess_output_pending(from), 0);
    if (n > 0) {
        assert_int_equal(tls_sess_feed(to, b.data, b.len), 0);
    }
    buf_release(&b);
}

/* Runs both handshakes until both are done or one failed. */
static void pump(struct tls_sess *c, struct tls_sess *s, int *crc, int *src)
{
    *crc = 0;
    *src = 0;
    for (int i = 0; i < 20; i++) {
        if (*crc == 0) {
            *crc = tls_sess_handshake(c);
        }
        move(c, s);
        if (*src == 0) {
            *src = tls_sess_handshake(s);
        }
        move(s, c);
        if ((*crc != 0 && *src != 0) || *crc < 0 || *src < 0) {
            return;
        }
    }
}

struct pair {
    struct tls_ctx *cctx;
    struct tls_ctx *sctx;
    struct tls_sess *c;
    struct tls_sess *s;
    int crc;
    int src;
};

static void pair_run(struct pair *p, struct tls_ctx *cctx, struct tls_ctx *sctx,
                     const char *verify_host)
{
    memset(p, 0, sizeof(*p));
    p->cctx = cctx;
    p->sctx = sctx;
    assert_int_equal(tls_sess_new(cctx, false, verify_host, &p->c), 0);
    assert_int_equal(tls_sess_new(sctx, true, NULL, &p->s), 0);
    pump(p->c, p->s, &p->crc, &p->src);
}

static void pair_free(struct pair *p)
{
    tls_sess_free(p->c);
    tls_sess_free(p->s);
    tls_ctx_free(p->cctx);
    tls_ctx_free(p->sctx);
}

/* The client reads what the server sent after refusing it (a TLS 1.3 client finishes
 * its handshake before the server has checked its certificate). */
static void expect_client_refused(struct pair *p, const char *why)
{
    uint8_t tmp[64];

    ssize_t n = tls_sess_read(p->c, tmp, sizeof(tmp));
    assert_int_equal(n, VG_ETLS);
    if (!strstr(tls_sess_error(p->c), why)) {
        fail_msg("client error '%s' lacks '%s'", tls_sess_error(p->c), why);
    }
}

static void expect_contains(const char *s, const char *sub)
{
    if (!strstr(s, sub)) {
        fail_msg("'%s' lacks '%s'", s, sub);
    }
}

/* (1) mutual TLS: peer identity, data both ways, TLS 1.3, clean close. */
static void test_mtls_roundtrip(void **state)
{
    struct pair p;
    uint8_t tmp[4096];

    (void)state;
    struct tls_ctx *sctx = server_ctx(NULL);
    struct tls_ctx *cctx = client_ctx(dir1, dir1, "agent-node-1");
    assert_int_equal(tls_sess_new(cctx, false, "localhost", &p.c), 0);
    assert_int_equal(tls_sess_new(sctx, true, NULL, &p.s), 0);
    /* A SIGHUP swap: the sessions keep the contexts alive. */
    tls_ctx_free(sctx);
    tls_ctx_free(cctx);
    p.cctx = NULL;
    p.sctx = NULL;
    assert_string_equal(tls_sess_peer(p.s), "");
    assert_int_equal(tls_sess_write(p.c, "early", 5), VG_ETLS);
    pump(p.c, p.s, &p.crc, &p.src);
    assert_int_equal(p.crc, 1);
    assert_int_equal(p.src, 1);
    assert_string_equal(tls_sess_peer(p.s), "agent-node-1");
    assert_string_equal(tls_sess_peer(p.c), "vigild");
    assert_string_equal(tls_sess_version(p.s), "TLSv1.3");
    assert_string_equal(tls_sess_version(p.c), "TLSv1.3");
    assert_int_equal(tls_sess_handshake(p.s), 1); /* idempotent */

    /* Nothing to read yet. */
    assert_int_equal(tls_sess_read(p.s, tmp, sizeof(tmp)), 0);

    assert_int_equal(tls_sess_write(p.c, "hello server", 12), 0);
    move(p.c, p.s);
    assert_int_equal(tls_sess_read(p.s, tmp, sizeof(tmp)), 12);
    assert_memory_equal(tmp, "hello server", 12);

    assert_int_equal(tls_sess_write(p.s, "hello agent", 11), 0);
    move(p.s, p.c);
    assert_int_equal(tls_sess_read(p.c, tmp, sizeof(tmp)), 11);
    assert_memory_equal(tmp, "hello agent", 11);

    /* Many records, fed to the server in odd-sized pieces. */
    size_t big_n = 200000;
    uint8_t *big = malloc(big_n);
    uint8_t *got = malloc(big_n);
    for (size_t i = 0; i < big_n; i++) {
        big[i] = (uint8_t)(i * 7 + 3);
    }
    assert_int_equal(tls_sess_write(p.c, big, big_n), 0);
    struct buf wire;
    buf_init(&wire, 1 << 22);
    assert_true(tls_sess_take_output(p.c, &wire) > (ssize_t)big_n);
    size_t off = 0;
    size_t have = 0;
    while (off < wire.len) {
        size_t k = wire.len - off < 777 ? wire.len - off : 777;
        assert_int_equal(tls_sess_feed(p.s, wire.data + off, k), 0);
        off += k;
        while (have < big_n) {
            ssize_t n = tls_sess_read(p.s, got + have, big_n - have);
            assert_true(n >= 0);
            if (n == 0) {
                break;
            }
            have += (size_t)n;
        }
    }
    assert_int_equal(have, big_n);
    assert_memory_equal(got, big, big_n);
    buf_release(&wire);
    free(big);
    free(got);

    /* A bounded output buffer that cannot take it all: VG_ELIMIT, nothing lost. */
    assert_int_equal(tls_sess_write(p.s, "x", 1), 0);
    struct buf small;
    buf_init(&small, 4);
    assert_int_equal(tls_sess_take_output(p.s, &small), VG_ELIMIT);
    assert_int_equal(small.len, 0);
    buf_release(&small);
    move(p.s, p.c);
    assert_int_equal(tls_sess_read(p.c, tmp, sizeof(tmp)), 1);

    /* Clean close. */
    assert_int_equal(tls_sess_shutdown(p.c), 0);
    assert_int_equal(tls_sess_shutdown(p.c), 0);
    move(p.c, p.s);
    assert_int_equal(tls_sess_read(p.s, tmp, sizeof(tmp)), -EPIPE);
    assert_int_equal(tls_sess_shutdown(p.s), 0);
    move(p.s, p.c);
    assert_int_equal(tls_sess_read(p.c, tmp, sizeof(tmp)), -EPIPE);
    pair_free(&p);
}

/* (2) no client certificate: refused by the server, and the client learns why. */
static void test_no_client_cert(void **state)
{
    struct pair p;

    (void)state;
    pair_run(&p, client_ctx(dir1, NULL, NULL), server_ctx(NULL), "localhost");
    assert_int_equal(p.src, VG_ETLS);
    expect_contains(tls_sess_error(p.s), "peer did not return a certificate");
    assert_string_equal(tls_sess_peer(p.s), "");
    assert_int_equal(p.crc, 1); /* TLS 1.3: the client is done before the verdict */
    expect_client_refused(&p, "certificate required");
    pair_free(&p);
}

/* (3) a client certificate from another CA: refused with the verify reason. */
static void test_client_cert_other_ca(void **state)
{
    struct pair p;

    (void)state;
    pair_run(&p, client_ctx(dir1, dir2, "agent-node-1"), server_ctx(NULL), "localhost");
    assert_int_equal(p.src, VG_ETLS);
    assert_string_equal(tls_sess_error(p.s),
                        "certificate verify failed: unable to get local issuer certificate");
    expect_client_refused(&p, "unknown ca");
    pair_free(&p);

    /* The server's own certificate (EKU serverAuth only) is no client certificate. */
    pair_run(&p, client_ctx(dir1, dir1, "server"), server_ctx(NULL), "localhost");
    assert_int_equal(p.src, VG_ETLS);
    assert_string_equal(tls_sess_error(p.s),
                        "certificate verify failed: unsuitable certificate purpose");
    pair_free(&p);
}

/* The client refuses a server from another CA, or with another name. */
static void test_client_verifies_server(void **state)
{
    struct pair p;

    (void)state;
    pair_run(&p, client_ctx(dir2, dir1, "agent-node-1"), server_ctx(NULL), "localhost");
    assert_int_equal(p.crc, VG_ETLS);
    assert_string_equal(tls_sess_error(p.c),
                        "certificate verify failed: unable to get local issuer certificate");
    pair_free(&p);

    static const char *const good[] = { "localhost", "127.0.0.1", "::1", NULL };
    for (int i = 0; i < 4; i++) {
        pair_run(&p, client_ctx(dir1, dir1, "analyst"), server_ctx(NULL), good[i]);
        assert_int_equal(p.crc, 1);
        assert_int_equal(p.src, 1);
        assert_string_equal(tls_sess_peer(p.s), "analyst");
        pair_free(&p);
    }

    pair_run(&p, client_ctx(dir1, dir1, "analyst"), server_ctx(NULL), "example.com");
    assert_int_equal(p.crc, VG_ETLS);
    assert_string_equal(tls_sess_error(p.c), "certificate verify failed: hostname mismatch");
    pair_free(&p);

    pair_run(&p, client_ctx(dir1, dir1, "analyst"), server_ctx(NULL), "10.1.2.3");
    assert_int_equal(p.crc, VG_ETLS);
    assert_string_equal(tls_sess_error(p.c), "certificate verify failed: IP address mismatch");
    pair_free(&p);
}

/* (4) bad files: the message names the file. */
static void test_ctx_errors(void **state)
{
    struct tls_ctx *ctx = NULL;
    struct errbuf eb;

    (void)state;
    errbuf_clear(&eb);
    assert_int_equal(tls_server_ctx_new(P(dir1, "ca.pem"), P(dir1, "server.pem"),
                                        P(dir1, "agent-node-1-key.pem"), NULL, &ctx, &eb),
                     VG_ETLS);
    assert_null(ctx);
    expect_contains(errbuf_msg(&eb), "agent-node-1-key.pem");
    expect_contains(errbuf_msg(&eb), "mismatch");

    errbuf_clear(&eb);
    assert_int_equal(tls_server_ctx_new(P(dir1, "ca.pem"), P(dir1, "nope.pem"),
                                        P(dir1, "server-key.pem"), NULL, &ctx, &eb),
                     -ENOENT);
    expect_contains(errbuf_msg(&eb), "nope.pem");

    /* A key where the CA should be. */
    errbuf_clear(&eb);
    assert_int_equal(tls_server_ctx_new(P(dir1, "ca-key.pem"), P(dir1, "server.pem"),
                                        P(dir1, "server-key.pem"), NULL, &ctx, &eb),
                     VG_ETLS);
    expect_contains(errbuf_msg(&eb), "ca-key.pem");

    /* A certificate where the CRL should be. */
    errbuf_clear(&eb);
    assert_int_equal(tls_server_ctx_new(P(dir1, "ca.pem"), P(dir1, "server.pem"),
                                        P(dir1, "server-key.pem"), P(dir1, "ca.pem"), &ctx, &eb),
                     VG_ETLS);
    expect_contains(errbuf_msg(&eb), "CRL");

    errbuf_clear(&eb);
    assert_int_equal(tls_client_ctx_new(P(dir1, "ca.pem"), P(dir1, "analyst.pem"), NULL, &ctx, &eb),
                     -EINVAL);
    tls_ctx_free(NULL);
}

/* (5) pki_init refuses to overwrite; modes; one more client; force. */
static void test_pki_files(void **state)
{
    static const char *const names[] = { "ca", "server", "agent-node-1", "agent-sidecar-1",
                                         "analyst" };
    struct errbuf eb;
    struct stat st;

    (void)state;
    errbuf_clear(&eb);
    assert_int_equal(pki_init(dir1, false, &eb), -EEXIST);
    expect_contains(errbuf_msg(&eb), P(dir1, "ca.pem"));
    for (size_t i = 0; i < VG_ARRAY_LEN(names); i++) {
        char f[64];
        snprintf(f, sizeof(f), "%s-key.pem", names[i]);
        assert_int_equal(stat(P(dir1, f), &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        snprintf(f, sizeof(f), "%s.pem", names[i]);
        assert_int_equal(stat(P(dir1, f), &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
    }

    /* A fresh directory is created 0700; a single existing file blocks everything. */
    char dir3[64];
    snprintf(dir3, sizeof(dir3), "/tmp/vg-tls-3-XXXXXX");
    assert_non_null(mkdtemp(dir3));
    const char *sub = P(dir3, "pki");
    char subdir[256];
    snprintf(subdir, sizeof(subdir), "%s", sub);
    int fd = -1;
    assert_int_equal(mkdir(subdir, 0700), 0);
    fd = open(P(subdir, "analyst-key.pem"), O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    errbuf_clear(&eb);
    assert_int_equal(pki_init(subdir, false, &eb), -EEXIST);
    expect_contains(errbuf_msg(&eb), "analyst-key.pem");
    assert_int_equal(stat(P(subdir, "ca.pem"), &st), -1); /* nothing written */
    errbuf_clear(&eb);
    assert_int_equal(pki_init(subdir, true, &eb), 0);
    assert_int_equal(stat(P(subdir, "analyst-key.pem"), &st), 0);
    assert_true(st.st_size > 100);
    assert_int_equal(st.st_mode & 0777, 0600);

    const char *fresh = P(dir3, "new");
    char freshdir[256];
    snprintf(freshdir, sizeof(freshdir), "%s", fresh);
    assert_int_equal(pki_init(freshdir, false, &eb), 0);
    assert_int_equal(stat(freshdir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* Not a directory. */
    errbuf_clear(&eb);
    assert_int_equal(pki_init(P(freshdir, "ca.pem"), false, &eb), -ENOTDIR);

    /* One more client, usable at once. */
    errbuf_clear(&eb);
    assert_int_equal(pki_issue_client(dir1, "bob", PKI_ROLE_AGENT, &eb), 0);
    assert_int_equal(stat(P(dir1, "bob-key.pem"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(pki_issue_client(dir1, "bob", PKI_ROLE_AGENT, &eb), -EEXIST);
    expect_contains(errbuf_msg(&eb), "bob.pem");
    errbuf_clear(&eb);
    assert_int_equal(pki_issue_client(dir1, "../evil", PKI_ROLE_AGENT, &eb), VG_EPARSE);
    assert_int_equal(pki_issue_client(dir1, "", PKI_ROLE_AGENT, &eb), VG_EPARSE);
    assert_int_equal(pki_issue_client(dir1, "ca", PKI_ROLE_AGENT, &eb), VG_EPARSE);
    errbuf_clear(&eb);
    assert_int_equal(pki_issue_client(dir3, "carol", PKI_ROLE_AGENT, &eb),
                     -ENOENT); /* no CA there */
    expect_contains(errbuf_msg(&eb), dir3);

    struct pair p;
    pair_run(&p, client_ctx(dir1, dir1, "bob"), server_ctx(NULL), "localhost");
    assert_int_equal(p.src, 1);
    assert_string_equal(tls_sess_peer(p.s), "bob");
    pair_free(&p);

    rm_rf(dir3);
}

/* (6) plaintext on the TLS port: a clean failure with a reason. */
static void test_plaintext_garbage(void **state)
{
    static const struct {
        const char *p;
        size_t n;
    } inputs[] = {
        { LIT("GET / HTTP/1.1\r\n") },
        { LIT("<13>Oct 11 22:14:15 host sshd[1]: hello\n") },
        { LIT("\x16\x03\x01\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00") }, /* 64 KiB record */
        { LIT("\x93\xa3tag\xce\x00\x00\x00\x01\x80") }, /* Forward msgpack without TLS */
    };
    (void)state;
    struct tls_ctx *sctx = server_ctx(NULL);
    for (size_t i = 0; i < VG_ARRAY_LEN(inputs); i++) {
        struct tls_sess *s = NULL;
        struct buf out;
        assert_int_equal(tls_sess_new(sctx, true, NULL, &s), 0);
        assert_int_equal(tls_sess_feed(s, (const uint8_t *)inputs[i].p, inputs[i].n), 0);
        assert_int_equal(tls_sess_handshake(s), VG_ETLS);
        if (i == 0) {
            assert_string_equal(tls_sess_error(s), "http request (plaintext HTTP on a TLS port)");
        } else {
            expect_contains(tls_sess_error(s), "(not TLS?)");
        }
        buf_init(&out, 1 << 16);
        assert_true(tls_sess_take_output(s, &out) >= 0); /* maybe an alert */
        assert_int_equal(tls_sess_shutdown(s), 0);       /* nothing to close */
        buf_release(&out);
        tls_sess_free(s);
    }
    tls_ctx_free(sctx);
}

/* Revocation: a CRL from the CA revokes agent-sidecar-1, agent-node-1 still passes. */
static void test_crl(void **state)
{
    (void)state;
    FILE *f = fopen(P(dir1, "ca.pem"), "r");
    X509 *ca = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(P(dir1, "ca-key.pem"), "r");
    EVP_PKEY *ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    f = fopen(P(dir1, "agent-sidecar-1.pem"), "r");
    X509 *victim = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(ca);
    assert_non_null(ca_key);
    assert_non_null(victim);

    X509_CRL *crl = X509_CRL_new();
    assert_true(X509_CRL_set_version(crl, 1));
    assert_true(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)));
    ASN1_TIME *t = ASN1_TIME_adj(NULL, time(NULL), 0, -60);
    assert_true(X509_CRL_set1_lastUpdate(crl, t));
    ASN1_TIME_adj(t, time(NULL), 1, 0);
    assert_true(X509_CRL_set1_nextUpdate(crl, t));
    X509_REVOKED *rev = X509_REVOKED_new();
    assert_true(X509_REVOKED_set_serialNumber(rev, X509_get_serialNumber(victim)));
    ASN1_TIME_adj(t, time(NULL), 0, -30);
    assert_true(X509_REVOKED_set_revocationDate(rev, t));
    assert_true(X509_CRL_add0_revoked(crl, rev));
    assert_true(X509_CRL_sort(crl));
    assert_true(X509_CRL_sign(crl, ca_key, EVP_sha256()));
    f = fopen(P(dir1, "crl.pem"), "w");
    assert_true(PEM_write_X509_CRL(f, crl));
    fclose(f);
    ASN1_TIME_free(t);
    X509_CRL_free(crl);
    X509_free(victim);
    X509_free(ca);
    EVP_PKEY_free(ca_key);

    struct pair p;
    pair_run(&p, client_ctx(dir1, dir1, "agent-node-1"), server_ctx(P(dir1, "crl.pem")),
             "localhost");
    assert_int_equal(p.src, 1);
    assert_string_equal(tls_sess_peer(p.s), "agent-node-1");
    pair_free(&p);

    pair_run(&p, client_ctx(dir1, dir1, "agent-sidecar-1"), server_ctx(P(dir1, "crl.pem")),
             "localhost");
    assert_int_equal(p.src, VG_ETLS);
    assert_string_equal(tls_sess_error(p.s), "certificate verify failed: certificate revoked");
    expect_client_refused(&p, "revoked");
    pair_free(&p);

    /* Without a CRL, the same certificate passes. */
    pair_run(&p, client_ctx(dir1, dir1, "agent-sidecar-1"), server_ctx(NULL), "localhost");
    assert_int_equal(p.src, 1);
    pair_free(&p);
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x;

    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;

    assert_non_null(f);
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

/* (5b) --server-name: the server certificate names them besides loopback; a bad name
 * writes nothing. */
static void test_pki_server_names(void **state)
{
    static const char *const names[] = { "vigild.vigil.svc", "*.vigil.example.org", "10.96.0.10",
                                         "fd00::1" };
    static const char *const bad[] = { "vigild vigil", "-x.example.org" };
    struct errbuf eb;
    struct stat st;
    char dir[64];
    char sub[128];

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/vg-tls-names-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/pki", dir);
    errbuf_clear(&eb);
    assert_int_equal(pki_init_names(sub, false, names, VG_ARRAY_LEN(names), &eb), 0);
    X509 *x = read_cert(P(sub, "server.pem"));
    assert_int_equal(X509_check_host(x, "vigild.vigil.svc", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "a.vigil.example.org", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "vigild.other.svc", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "10.96.0.10", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "fd00::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    X509_free(x);
    rm_rf(sub);
    for (size_t i = 0; i < VG_ARRAY_LEN(bad); i++) {
        errbuf_clear(&eb);
        assert_int_equal(pki_init_names(sub, false, &bad[i], 1, &eb), VG_EPARSE);
        expect_contains(errbuf_msg(&eb), "bad server name");
        assert_int_equal(stat(sub, &st), -1); /* nothing written, not even the directory */
    }
    rm_rf(dir);
}

/* A client certificate with an empty subject (no CN) and the given SANs, signed by
 * dir1's CA, written to dir1/<name>.pem and dir1/<name>-key.pem. */
static void make_san_only(const char *name, const char *san)
{
    X509 *ca = read_cert(P(dir1, "ca.pem"));
    EVP_PKEY *ca_key = read_key(P(dir1, "ca-key.pem"));
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX v3;
    char path[256];

    assert_non_null(k);
    assert_true(X509_set_version(x, X509_VERSION_3));
    assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242));
    assert_true(X509_set_issuer_name(x, X509_get_subject_name(ca)));
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    assert_true(X509_set_pubkey(x, k));
    X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ex);
    assert_true(X509_add_ext(x, ex, -1));
    X509_EXTENSION_free(ex);
    ex = X509V3_EXT_nconf_nid(NULL, &v3, NID_ext_key_usage, "clientAuth");
    assert_true(X509_add_ext(x, ex, -1));
    X509_EXTENSION_free(ex);
    assert_true(X509_sign(x, ca_key, EVP_sha256()));

    snprintf(path, sizeof(path), "%s/%s.pem", dir1, name);
    FILE *f = fopen(path, "w");
    assert_true(PEM_write_X509(f, x));
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s-key.pem", dir1, name);
    f = fopen(path, "w");
    assert_true(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL));
    fclose(f);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ca_key);
}

/* Without a CN the identity is the first SAN: DNS first, then IP, then email/URI. */
static void test_peer_from_san(void **state)
{
    static const struct {
        const char *san;
        const char *want;
    } cases[] = {
        { "critical,URI:spiffe://cluster/ns/a/sa/b,IP:10.0.0.7,DNS:node-7.example",
          "node-7.example" },
        { "critical,URI:spiffe://cluster/ns/a/sa/b,IP:fd00::7", "fd00::7" },
        { "critical,email:ops@example.org,URI:spiffe://cluster/x", "ops@example.org" },
        { "critical,URI:spiffe://cluster/x", "spiffe://cluster/x" },
    };
    (void)state;
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        struct pair p;
        make_san_only("sanonly", cases[i].san);
        pair_run(&p, client_ctx(dir1, dir1, "sanonly"), server_ctx(NULL), "localhost");
        assert_int_equal(p.src, 1);
        assert_string_equal(tls_sess_peer(p.s), cases[i].want);
        pair_free(&p);
    }
}

/* ---- tls_conn over a real socket ------------------------------------------------ */

static int listen_local(int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_conn_refused(void **state)
{
    struct tls_conn *c = NULL;
    struct errbuf eb;
    int port;

    (void)state;
    int fd = listen_local(&port);
    close(fd); /* nobody listens there now */
    struct tls_ctx *ctx = client_ctx(dir1, dir1, "agent-node-1");
    errbuf_clear(&eb);
    /* Refused at once (no wall-clock assertion: a loaded machine may take its time). */
    assert_int_equal(tls_conn_open(ctx, "127.0.0.1", port, 5000, &c, &eb), -ECONNREFUSED);
    assert_null(c);
    expect_contains(errbuf_msg(&eb), "cannot connect to 127.0.0.1:");
    expect_contains(errbuf_msg(&eb), "refused");

    errbuf_clear(&eb);
    assert_int_equal(tls_conn_open(ctx, "127.0.0.1", 0, 5000, &c, &eb), VG_EPARSE);
    tls_conn_close(NULL);
    tls_ctx_free(ctx);
}

/* A server behind a socket, driven by blocking I/O in a thread. */
struct srv {
    int lfd;
    struct tls_ctx *ctx;
    int hs_rc;
    char peer[64];
    char err[256];
    int end_rc; /* how the echo loop ended */
};

static int srv_flush(int fd, struct tls_sess *s)
{
    struct buf b;

    buf_init(&b, 1 << 22);
    ssize_t n = tls_sess_take_output(s, &b);
    size_t off = 0;
    while (n > 0 && off < b.len) {
        ssize_t w = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            break;
        }
        off += (size_t)w;
    }
    buf_release(&b);
    return n < 0 ? -1 : 0;
}

static int srv_fill(int fd, struct tls_sess *s)
{
    uint8_t tmp[8192];
    ssize_t n = recv(fd, tmp, sizeof(tmp), 0);

    if (n <= 0) {
        return -1;
    }
    return tls_sess_feed(s, tmp, (size_t)n);
}

/* Echoes "pong:<data>" for each read until the client closes. */
static void *srv_main(void *arg)
{
    struct srv *sv = arg;
    struct tls_sess *s = NULL;
    struct timeval tv = { .tv_sec = 5 };
    int fd = accept(sv->lfd, NULL, NULL);

    sv->end_rc = 1;
    if (fd < 0) {
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (tls_sess_new(sv->ctx, true, NULL, &s) != 0) {
        close(fd);
        return NULL;
    }
    for (;;) {
        sv->hs_rc = tls_sess_handshake(s);
        srv_flush(fd, s);
        if (sv->hs_rc != 0) {
            break;
        }
        if (srv_fill(fd, s) < 0) {
            break;
        }
    }
    if (sv->hs_rc != 1) {
        snprintf(sv->err, sizeof(sv->err), "%s", tls_sess_error(s));
        goto out;
    }
    snprintf(sv->peer, sizeof(sv->peer), "%s", tls_sess_peer(s));
    for (;;) {
        uint8_t in[4096];
        ssize_t n = tls_sess_read(s, in, sizeof(in));
        if (n > 0) {
            if (tls_sess_write(s, "pong:", 5) != 0 || tls_sess_write(s, in, (size_t)n) != 0) {
                break;
            }
            srv_flush(fd, s);
            continue;
        }
        if (n < 0) {
            sv->end_rc = (int)n;
            if (n == -EPIPE) {
                (void)tls_sess_shutdown(s);
                srv_flush(fd, s);
            }
            break;
        }
        srv_flush(fd, s);
        if (srv_fill(fd, s) < 0) {
            sv->end_rc = -ECONNRESET;
            break;
        }
    }
out:
    tls_sess_free(s);
    close(fd);
    return NULL;
}

static void test_conn_echo(void **state)
{
    struct srv sv = { 0 };
    struct tls_conn *c = NULL;
    struct errbuf eb;
    pthread_t th;
    char in[256];
    int port;

    (void)state;
    sv.lfd = listen_local(&port);
    sv.ctx = server_ctx(NULL);
    assert_int_equal(pthread_create(&th, NULL, srv_main, &sv), 0);
    struct tls_ctx *ctx = client_ctx(dir1, dir1, "agent-sidecar-1");
    errbuf_clear(&eb);
    if (tls_conn_open(ctx, "127.0.0.1", port, 5000, &c, &eb) != 0) {
        fail_msg("open: %s", errbuf_msg(&eb));
    }
    /* Nothing sent yet: a read times out (were the timeout ignored, it would block until
     * ctest's own timeout: no wall-clock assertion here). */
    assert_int_equal(tls_conn_read(c, in, sizeof(in), 100), -ETIMEDOUT);

    assert_int_equal(tls_conn_write(c, "ping", 4), 0);
    size_t have = 0;
    while (have < 9) {
        ssize_t n = tls_conn_read(c, in + have, sizeof(in) - have, 5000);
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_memory_equal(in, "pong:ping", 9);
    tls_conn_close(c);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sv.hs_rc, 1);
    assert_string_equal(sv.peer, "agent-sidecar-1");
    assert_int_equal(sv.end_rc, -EPIPE); /* close_notify arrived */
    tls_ctx_free(ctx);
    tls_ctx_free(sv.ctx);
    close(sv.lfd);
}

/* A client without a certificate: the TLS 1.3 handshake completes on our side, then
 * the first read carries the server's refusal. */
static void test_conn_refused_by_server(void **state)
{
    struct srv sv = { 0 };
    struct tls_conn *c = NULL;
    struct errbuf eb;
    pthread_t th;
    char in[64];
    int port;

    (void)state;
    sv.lfd = listen_local(&port);
    sv.ctx = server_ctx(NULL);
    assert_int_equal(pthread_create(&th, NULL, srv_main, &sv), 0);
    struct tls_ctx *ctx = client_ctx(dir1, NULL, NULL);
    errbuf_clear(&eb);
    int rc = tls_conn_open(ctx, "127.0.0.1", port, 5000, &c, &eb);
    /* Refused for its certificate (none): VG_ECERT, which vigil send does not retry. */
    if (rc == 0) {
        assert_int_equal(tls_conn_read(c, in, sizeof(in), 5000), VG_ECERT);
        expect_contains(tls_conn_error(c), "certificate required");
        tls_conn_close(c);
    } else {
        assert_int_equal(rc, VG_ECERT);
        expect_contains(errbuf_msg(&eb), "certificate required");
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(sv.hs_rc, VG_ETLS);
    expect_contains(sv.err, "peer did not return a certificate");
    tls_ctx_free(ctx);
    tls_ctx_free(sv.ctx);
    close(sv.lfd);

    /* The server's name is checked on a real connection too. */
    sv = (struct srv){ 0 };
    sv.lfd = listen_local(&port);
    sv.ctx = server_ctx(NULL);
    assert_int_equal(pthread_create(&th, NULL, srv_main, &sv), 0);
    ctx = client_ctx(dir2, dir2, "agent-node-1");
    errbuf_clear(&eb);
    assert_int_equal(tls_conn_open(ctx, "127.0.0.1", port, 5000, &c, &eb), VG_ECERT);
    expect_contains(errbuf_msg(&eb), "TLS handshake with 127.0.0.1:");
    expect_contains(errbuf_msg(&eb), "unable to get local issuer certificate");
    assert_int_equal(pthread_join(th, NULL), 0);
    tls_ctx_free(ctx);
    tls_ctx_free(sv.ctx);
    close(sv.lfd);
}

/* pair_run with a policy on the server session (tls.agents). */
static void pair_run_policy(struct pair *p, const char *client, const struct tls_policy *pol)
{
    memset(p, 0, sizeof(*p));
    p->cctx = client_ctx(dir1, dir1, client);
    p->sctx = server_ctx(NULL);
    assert_int_equal(tls_sess_new(p->cctx, false, "localhost", &p->c), 0);
    assert_int_equal(tls_sess_new(p->sctx, true, NULL, &p->s), 0);
    tls_sess_set_policy(p->s, pol);
    pump(p->c, p->s, &p->crc, &p->src);
}

/* Who may ship: the default rule (OU agents) lets pki init's agents in and refuses its
 * analyst in the handshake, saying what is allowed and naming the certificate; globs on
 * the CN, OIDs (EKU) and any work as documented. */
static void test_agent_policy(void **state)
{
    char *agents[] = { "agents" };
    char *glob[] = { "agent-*" };
    char *client_auth[] = { "1.3.6.1.5.5.7.3.2" };
    char *server_auth[] = { "1.3.6.1.5.5.7.3.1" };
    struct tls_policy ou = { .name = "tls.agents", .ous = agents, .nous = 1 };
    struct tls_policy cn = { .name = "tls.agents.https", .subjects = glob, .nsubjects = 1 };
    struct tls_policy eku = { .name = "x", .oids = client_auth, .noids = 1 };
    struct tls_policy wrong_eku = { .name = "x", .oids = server_auth, .noids = 1 };
    struct tls_policy any = { .name = "x", .any = true };
    struct pair p;
    char text[200];

    (void)state;
    pair_run_policy(&p, "agent-node-1", &ou);
    assert_int_equal(p.src, 1);
    assert_false(tls_sess_refused_by_policy(p.s));
    assert_non_null(strstr(tls_sess_presented(p.s)->subject, "OU=agents"));
    pair_free(&p);

    pair_run_policy(&p, "analyst", &ou);
    assert_int_equal(p.src, VG_ETLS);
    assert_true(tls_sess_refused_by_policy(p.s));
    assert_string_equal(tls_sess_error(p.s),
                        "not an agent's certificate: tls.agents allows OU agents");
    const struct tls_cert_info *ci = tls_sess_presented(p.s);
    assert_non_null(ci);
    assert_string_equal(ci->subject, "CN=analyst,OU=analysts");
    assert_non_null(strstr(ci->issuer, "CN=vigil development CA"));
    assert_true(strlen(ci->serial) >= 16);
    assert_int_equal(strlen(ci->not_after), 20); /* 2028-01-01T00:00:00Z */
    expect_client_refused(&p, "bad certificate");
    pair_free(&p);

    pair_run_policy(&p, "analyst", &cn);
    assert_int_equal(p.src, VG_ETLS);
    assert_string_equal(tls_sess_error(p.s),
                        "not an agent's certificate: tls.agents.https allows CN agent-*");
    pair_free(&p);
    pair_run_policy(&p, "agent-sidecar-1", &cn);
    assert_int_equal(p.src, 1);
    pair_free(&p);
    pair_run_policy(&p, "analyst", &eku);
    assert_int_equal(p.src, 1);
    pair_free(&p);
    pair_run_policy(&p, "agent-node-1", &wrong_eku);
    assert_int_equal(p.src, VG_ETLS);
    pair_free(&p);
    pair_run_policy(&p, "analyst", &any);
    assert_int_equal(p.src, 1);
    pair_free(&p);
    tls_policy_describe(&ou, text, sizeof(text));
    assert_string_equal(text, "OU agents");
}

/* The certificate of a peer the CA does not know is named too. */
static void test_presented_other_ca(void **state)
{
    struct pair p;

    (void)state;
    pair_run(&p, client_ctx(dir1, dir2, "agent-node-1"), server_ctx(NULL), "localhost");
    assert_int_equal(p.src, VG_ETLS);
    const struct tls_cert_info *ci = tls_sess_presented(p.s);
    assert_non_null(ci);
    assert_string_equal(ci->subject, "CN=agent-node-1,OU=agents");
    pair_free(&p);
    /* no certificate, nothing presented */
    struct tls_ctx *bare = NULL;
    struct errbuf eb;
    errbuf_clear(&eb);
    assert_int_equal(tls_client_ctx_new(P(dir1, "ca.pem"), NULL, NULL, &bare, &eb), 0);
    pair_run(&p, bare, server_ctx(NULL), "localhost");
    assert_int_equal(p.src, VG_ETLS);
    assert_null(tls_sess_presented(p.s));
    pair_free(&p);
}

/* A CRL past its next update: read as expired; refused by default, accepted (still
 * checked for revocations) with tls.crl_expired: warn. A context reloaded with a new CRL
 * (tls_ctx_swap) applies it to new sessions at once. */
static void test_crl_expired_and_swap(void **state)
{
    struct tls_crl_info ci;
    struct errbuf eb;
    struct pair p;
    const char *revoke[] = { "agent-sidecar-1" };

    (void)state;
    errbuf_clear(&eb);
    assert_int_equal(pki_crl(dir1, revoke, 1, -1, &eb), 0);
    assert_int_equal(tls_crl_read(P(dir1, "crl.pem"), (int64_t)time(NULL) * 1000000000LL, &ci, &eb),
                     0);
    assert_true(ci.expired);
    assert_int_equal(ci.revoked, 1);
    pair_run(&p, client_ctx(dir1, dir1, "agent-node-1"), server_ctx(P(dir1, "crl.pem")),
             "localhost");
    assert_int_equal(p.src, VG_ETLS);
    assert_string_equal(tls_sess_error(p.s), "certificate verify failed: CRL has expired");
    pair_free(&p);
    struct tls_ctx *stale = server_ctx(P(dir1, "crl.pem"));
    tls_ctx_set_crl_stale_ok(stale, true);
    pair_run(&p, client_ctx(dir1, dir1, "agent-node-1"), stale, "localhost");
    assert_int_equal(p.src, 1);
    pair_free(&p);
    stale = server_ctx(P(dir1, "crl.pem"));
    tls_ctx_set_crl_stale_ok(stale, true);
    pair_run(&p, client_ctx(dir1, dir1, "agent-sidecar-1"), stale, "localhost");
    assert_int_equal(p.src, VG_ETLS); /* revoked is revoked, stale or not */
    pair_free(&p);

    /* Reload: a context without CRL, then the files change and it is swapped. */
    struct tls_ctx *live = server_ctx(NULL);
    struct tls_ctx *cctx = client_ctx(dir1, dir1, "agent-sidecar-1");
    struct tls_sess *c = NULL;
    struct tls_sess *s = NULL;
    int crc;
    int src;
    assert_int_equal(tls_sess_new(cctx, false, "localhost", &c), 0);
    assert_int_equal(tls_sess_new(live, true, NULL, &s), 0);
    pump(c, s, &crc, &src);
    assert_int_equal(src, 1);
    tls_sess_free(c);
    tls_sess_free(s);
    assert_int_equal(pki_crl(dir1, revoke, 0, 30, &eb), 0); /* keeps the one revoked */
    tls_ctx_swap(live, server_ctx(P(dir1, "crl.pem")));
    assert_int_equal(tls_sess_new(cctx, false, "localhost", &c), 0);
    assert_int_equal(tls_sess_new(live, true, NULL, &s), 0);
    pump(c, s, &crc, &src);
    assert_int_equal(src, VG_ETLS);
    assert_string_equal(tls_sess_error(s), "certificate verify failed: certificate revoked");
    tls_sess_free(c);
    tls_sess_free(s);
    tls_ctx_free(cctx);
    tls_ctx_free(live);
    unlink(P(dir1, "crl.pem"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mtls_roundtrip),
        cmocka_unit_test(test_no_client_cert),
        cmocka_unit_test(test_client_cert_other_ca),
        cmocka_unit_test(test_client_verifies_server),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_pki_files),
        cmocka_unit_test(test_pki_server_names),
        cmocka_unit_test(test_plaintext_garbage),
        cmocka_unit_test(test_crl),
        cmocka_unit_test(test_agent_policy),
        cmocka_unit_test(test_presented_other_ca),
        cmocka_unit_test(test_crl_expired_and_swap),
        cmocka_unit_test(test_peer_from_san),
        cmocka_unit_test(test_conn_refused),
        cmocka_unit_test(test_conn_echo),
        cmocka_unit_test(test_conn_refused_by_server),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
