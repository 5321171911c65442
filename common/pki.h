/* common/pki.h: a development PKI made with OpenSSL 3's API (no shelling out), for
 * `vigil pki`, `vigil demo` and the tests. Not for production: keys are written
 * unencrypted. */
#ifndef VG_COMMON_PKI_H
#define VG_COMMON_PKI_H

#include <stdbool.h>
#include <stddef.h>

#include "common/errbuf.h"
#include "common/vg.h"

/* Makes a development PKI in dir (created 0700 if missing):
 *   ca.pem, ca-key.pem                  self-signed CA "vigil development CA",
 *                                       basicConstraints CA:TRUE critical, keyUsage
 *                                       keyCertSign,cRLSign critical; valid 10 years
 *   server.pem, server-key.pem          CN vigild, SAN DNS:localhost, IP:127.0.0.1,
 *                                       IP:::1, EKU serverAuth
 *   agent-node-1.pem, -key.pem          CN agent-node-1, OU agents, EKU clientAuth
 *   agent-sidecar-1.pem, -key.pem       CN agent-sidecar-1, OU agents, EKU clientAuth
 *   analyst.pem, analyst-key.pem        CN analyst, OU analysts, EKU clientAuth
 * The agents fit the default tls.agents rule (OU agents) and may ship events; the
 * analyst does not (it queries; vigild refuses it on every listener).
 * EC P-256 keys (PKCS#8 PEM), SHA-256 signatures, random 128-bit serials, leaves valid
 * from now-1h to now+825 days. Keys are created 0600 (O_CREAT|O_EXCL), certs 0644.
 * Refuses, naming the file, if any of them exists, unless force (then replaces them).
 * On failure the files this call created are removed. Returns 0, or -errno / VG_ETLS
 * with eb set. Blocks (file I/O). */
int pki_init(const char *dir, bool force, struct errbuf *eb) VG_MUST_USE;
/* pki_init, with the server certificate also naming each of names (at most 32): DNS
 * names (a leading "*." allowed) or IP addresses, e.g. the Kubernetes Service's
 * vigild.vigil.svc. Returns as pki_init, or VG_EPARSE for a bad name. */
int pki_init_names(const char *dir, bool force, const char *const *names, size_t nnames,
                   struct errbuf *eb) VG_MUST_USE;

#define PKI_OU_AGENTS   "agents"   /* the OU of agents' certificates (tls.agents default) */
#define PKI_OU_ANALYSTS "analysts" /* the OU of analysts' certificates */

enum pki_role { PKI_ROLE_AGENT, PKI_ROLE_ANALYST };

/* Issues one more client certificate: CN=name, OU agents or analysts (role), EKU
 * clientAuth, signed by dir's CA (dir/ca.pem, dir/ca-key.pem), into dir/<name>.pem and
 * dir/<name>-key.pem. name is 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'.
 * Refuses if either file exists. Returns 0, or -errno / VG_ETLS / VG_EPARSE (bad name)
 * with eb set. */
int pki_issue_client(const char *dir, const char *name, enum pki_role role,
                     struct errbuf *eb) VG_MUST_USE;

/* Writes dir/crl.pem, a CRL signed by dir's CA that lists the serials the existing
 * dir/crl.pem listed (if any) and those of the certificates dir/<name>.pem for each name
 * in revoke; next update in days (negative: in the past, an expired CRL, for tests).
 * Replaces the file atomically (written aside, renamed). Returns 0, or -errno /
 * VG_ETLS with eb set. Blocks. */
int pki_crl(const char *dir, const char *const *revoke, size_t nrevoke, int days,
            struct errbuf *eb) VG_MUST_USE;

#endif
