/* common/tls.h: TLS (OpenSSL 3) behind one module. No OpenSSL type appears here.
 *
 * Two ways to speak TLS:
 * - struct tls_sess: one session over memory BIOs, so OpenSSL never sees a file
 *   descriptor. The caller moves ciphertext: bytes read from the peer go in with
 *   tls_sess_feed(), bytes to send come out with tls_sess_take_output(). vigild's
 *   loop drives its server sessions this way; tests pump two sessions into each other.
 * - struct tls_conn: a blocking client over a socket (vigil send, the demo). It blocks
 *   and must never run on the event loop.
 *
 * Threads: a tls_ctx may be shared by sessions on any thread (OpenSSL 3 is thread
 * safe); one tls_sess or tls_conn is used by one thread at a time. */
#ifndef VG_COMMON_TLS_H
#define VG_COMMON_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/vg.h"

struct tls_ctx;  /* an SSL_CTX with our settings */
struct tls_sess; /* one TLS session over memory BIOs (OpenSSL never sees the fd) */
struct tls_conn; /* a blocking client connection over a socket */

/* Server context: TLS 1.2 minimum (1.3 preferred), ECDHE + AEAD ciphers only, no
 * compression, no renegotiation, no session resumption (every connection is verified
 * in full, so a CRL reload takes effect at once). The client certificate is REQUIRED
 * and verified against `ca`; `crl` (PEM, may be NULL) turns on CRL checking of leaf
 * certificates. Loads the chain in `cert` and the key in `key` and checks they match.
 * Returns 0 and *out (caller owns, tls_ctx_free), else VG_ETLS or -errno with a
 * sentence naming the file and OpenSSL's reason in eb. Reads files; does not block
 * otherwise. */
int tls_server_ctx_new(const char *ca, const char *cert, const char *key, const char *crl,
                       struct tls_ctx **out, struct errbuf *eb) VG_MUST_USE;

/* Client context: verifies the server against `ca` (and its name against the
 * verify_host given to tls_sess_new/tls_conn_open); presents cert/key, both NULL for a
 * client without a certificate (tests use that). Same protocol and cipher settings as
 * the server. Returns 0 and *out (caller owns), else VG_ETLS or -errno with eb set. */
int tls_client_ctx_new(const char *ca, const char *cert, const char *key, struct tls_ctx **out,
                       struct errbuf *eb) VG_MUST_USE;

/* Drops the caller's reference; takes NULL. Sessions hold their own reference to the
 * underlying SSL_CTX, so a context can be replaced (SIGHUP) while old sessions live. */
void tls_ctx_free(struct tls_ctx *ctx);

/* Replaces what ctx verifies and presents (CA, CRL, certificate, key, settings) with
 * fresh's, a context just built by tls_server_ctx_new (a reload), and frees fresh.
 * Sessions made before keep what they had; those made after use the new files. */
void tls_ctx_swap(struct tls_ctx *ctx, struct tls_ctx *fresh);

/* Server: accept client certificates while the CRL is past its next update (tls.crl_expired:
 * warn; it is still checked for revocations). Default: refuse them ("CRL has expired"). */
void tls_ctx_set_crl_stale_ok(struct tls_ctx *ctx, bool ok);

/* A CRL file's dates and size. */
struct tls_crl_info {
    int64_t last_update_ns, next_update_ns; /* 0 when absent */
    char next_update[32];                   /* RFC 3339, or "?" */
    uint64_t revoked;                       /* serials listed */
    bool expired;                           /* next update is before now */
};
/* Reads the PEM CRL at path. Returns 0, or -errno / VG_ETLS with eb naming the file. */
int tls_crl_read(const char *path, int64_t now_ns, struct tls_crl_info *out,
                 struct errbuf *eb) VG_MUST_USE;

/* Who may complete a handshake on a server session (tls.agents): a client certificate
 * the CA signed is accepted when any one of these holds, else refused in the handshake
 * (a bad_certificate alert; tls_sess_error says what is allowed, tls_sess_presented
 * which certificate it was). */
struct tls_policy {
    const char *name; /* for messages: the config key, e.g. "tls.agents.forward" */
    bool any;         /* every certificate the CA signed */
    char **ous;       /* an OU of the subject is one of these */
    size_t nous;
    char **subjects; /* the subject CN matches one of these globs ("agent-*") */
    size_t nsubjects;
    char **san_uris; /* a URI SAN matches one of these globs (spiffe://prod/ns/NS/sa/SA) */
    size_t nsan_uris;
    char **oids; /* an extended key usage or certificate policy OID is one of these */
    size_t noids;
};
/* What p allows, for messages: "OU agents, CN agent-*". Returns the length. */
int tls_policy_describe(const struct tls_policy *p, char *dst, size_t cap);
/* Server side, before the handshake: p (which must outlive s) decides who may finish. */
void tls_sess_set_policy(struct tls_sess *s, const struct tls_policy *p);
/* After a failed handshake: true when it was the policy that refused the certificate. */
bool tls_sess_refused_by_policy(const struct tls_sess *s);

/* The leaf certificate a peer presented, as text for records and logs. */
struct tls_cert_info {
    char subject[256]; /* RFC 2253: "CN=agent-node-1,OU=agents" */
    char issuer[256];
    char serial[80]; /* hex */
    char not_after[32];
};
/* Server side: the certificate the peer presented in the handshake, accepted or not;
 * NULL when it sent none (or the handshake did not get that far). Storage in s. */
const struct tls_cert_info *tls_sess_presented(const struct tls_sess *s);

/* A memory-BIO session on ctx: server side if `server`, else client side checking the
 * server's certificate against verify_host (a DNS name or an IP literal; NULL: chain
 * only; also sent as SNI when it is a name). Ignored for servers. Returns 0 and *out
 * (caller owns, tls_sess_free), or VG_ETLS. */
int tls_sess_new(struct tls_ctx *ctx, bool server, const char *verify_host,
                 struct tls_sess **out) VG_MUST_USE;
void tls_sess_free(struct tls_sess *s); /* takes NULL; sends nothing */

/* Ciphertext from the peer goes in (copied). Returns 0, or VG_ETLS. The caller bounds
 * what it feeds by reading only when it is ready to consume. */
int tls_sess_feed(struct tls_sess *s, const uint8_t *p, size_t n) VG_MUST_USE;

/* Drives the handshake. Returns 1 when done (peer verified), 0 when more input is
 * needed (take and send the output first!), VG_ETLS when it failed: the reason is in
 * tls_sess_error(), and the output may hold an alert for the peer, worth flushing. */
int tls_sess_handshake(struct tls_sess *s) VG_MUST_USE;

/* Decrypted bytes out: returns > 0 bytes, 0 when more input is needed, -EPIPE on a
 * clean close_notify from the peer, VG_ETLS on error (reason in tls_sess_error()).
 * Reading may produce output (alerts, key updates): take it afterwards. */
ssize_t tls_sess_read(struct tls_sess *s, uint8_t *p, size_t cap) VG_MUST_USE;

/* Encrypts all n bytes into the output (tls_sess_take_output) or fails: returns 0, or
 * VG_ETLS (also before the handshake is done). */
int tls_sess_write(struct tls_sess *s, const void *p, size_t n) VG_MUST_USE;

/* Queues a close_notify alert in the output. Returns 0, or VG_ETLS (best effort: a
 * caller closing anyway may ignore it). A session whose handshake never finished has
 * nothing to close: 0, nothing queued. */
int tls_sess_shutdown(struct tls_sess *s);

/* Appends all pending ciphertext for the peer to out. Returns the number of bytes moved
 * (0: nothing pending), or VG_ELIMIT when out cannot take all of it (nothing moved). */
ssize_t tls_sess_take_output(struct tls_sess *s, struct buf *out) VG_MUST_USE;

/* Bytes waiting in the output. */
size_t tls_sess_output_pending(const struct tls_sess *s);

/* After the handshake: the verified peer's identity: the certificate subject CN, or
 * if there is none the first subjectAltName (DNS, then IP, then email, then URI).
 * Control characters are replaced by '?'. "" if none. Storage in the session. */
const char *tls_sess_peer(const struct tls_sess *s);

/* A human reason for the last failure, e.g. "peer did not return a certificate",
 * "certificate verify failed: unable to get local issuer certificate", "wrong version
 * number (not TLS?)", "unsupported protocol". Never secrets. "" if none. */
const char *tls_sess_error(const struct tls_sess *s);

/* The negotiated protocol, e.g. "TLSv1.3"; after the handshake. */
const char *tls_sess_version(const struct tls_sess *s);

/* Blocking client connection for `vigil send` and the demo: resolves host
 * (getaddrinfo: this is not the loop), connects to host:port, and completes the
 * handshake verifying the server's certificate against host (DNS name or IP), all
 * within timeout_ms. Returns 0 and *out (caller owns, tls_conn_close), else -errno
 * (-ECONNREFUSED, -ETIMEDOUT, ...), VG_ECERT (a certificate refused: the server's by us,
 * or ours by the server), VG_ETLS or VG_EPARSE, with eb naming the peer and the reason.
 * Blocks. */
int tls_conn_open(struct tls_ctx *ctx, const char *host, int port, int timeout_ms,
                  struct tls_conn **out, struct errbuf *eb) VG_MUST_USE;

/* Sends all n bytes or fails: 0, or negative (-errno, -ETIMEDOUT after the open's
 * timeout without progress, VG_ETLS). Blocks. */
int tls_conn_write(struct tls_conn *c, const void *p, size_t n) VG_MUST_USE;

/* Reads decrypted bytes: > 0 bytes, -ETIMEDOUT when nothing came within timeout_ms,
 * -EPIPE on close_notify or EOF, VG_ECERT when the server refused our certificate (TLS
 * 1.3 says so after the handshake), VG_ETLS (reason in tls_conn_error()), or -errno.
 * Blocks up to timeout_ms. */
ssize_t tls_conn_read(struct tls_conn *c, void *p, size_t cap, int timeout_ms) VG_MUST_USE;

/* A human reason for the last TLS failure on c (e.g. the server's alert when it
 * refused our certificate after a TLS 1.3 handshake). "" if none. */
const char *tls_conn_error(const struct tls_conn *c);

/* Sends close_notify (best effort, without waiting), closes the socket, frees c.
 * Takes NULL. */
void tls_conn_close(struct tls_conn *c);

/* Shared with common/pki.c: drains OpenSSL's error queue (this thread) into dst as
 * "reason" (the first, the cause) and returns dst. "unknown error" when empty. */
const char *tls_errq_string(char *dst, size_t cap);

#endif
