/* schemas/map_int.h: helpers shared by the mappers (map*.c) and their tests. */
#ifndef VG_SCHEMAS_MAP_INT_H
#define VG_SCHEMAS_MAP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "schemas/map.h"
#include "schemas/record.h"

/* A key table: sorted by (len, bytes) for map__key_find's binary search. The unit test
 * checks the order. */
struct map__keydef {
    const char *name;
    uint8_t len;
    uint8_t id;
};
/* Returns the id of key in tab, or -1. */
int map__key_find(const struct map__keydef *tab, size_t n, struct span key);

/* Top-level keys any mapper reads: one pass over the event collects them all. */
enum map__top_key {
    MT_AT_TIMESTAMP,
    MT_ARTIFACT_NAME,
    MT_CREATED_AT,
    MT_INSTALLED_VERSION,
    MT_MESSAGE_UC,
    MT_PKG_NAME,
    MT_SEVERITY_UC,
    MT_SYSLOG_IDENTIFIER,
    MT_TITLE,
    MT_VULN_ID,
    MT_HOSTNAME_UC,
    MT_ACTION,
    MT_API_VERSION,
    MT_AUDIT_ID,
    MT_CMDLINE,
    MT_CONTAINER_ID,
    MT_CONTAINER_NAME,
    MT_CVE,
    MT_DST_IP,
    MT_DST_PORT,
    MT_EVENT,
    MT_HOST,
    MT_HOSTNAME,
    MT_IDENT,
    MT_IMAGE,
    MT_IMPERSONATED_USER,
    MT_K8S,
    MT_KIND,
    MT_LEVEL,
    MT_LOG,
    MT_MESSAGE,
    MT_METADATA,
    MT_MSG,
    MT_NAMESPACE,
    MT_OBJECT,
    MT_OBJECT_REF,
    MT_OUTCOME,
    MT_OUTPUT,
    MT_OUTPUT_FIELDS,
    MT_PACKAGE,
    MT_POD,
    MT_PRIORITY,
    MT_PROCESS,
    MT_REQUEST_OBJECT,
    MT_REQUEST_RECEIVED_TS,
    MT_REQUEST_URI,
    MT_RESPONSE_STATUS,
    MT_RULE,
    MT_SEVERITY,
    MT_SOURCE,
    MT_SOURCE_IPS,
    MT_SRC_IP,
    MT_STAGE_TS,
    MT_SYSLOG_LINE,
    MT_TIME,
    MT_TIMESTAMP,
    MT_TS,
    MT_KUBERNETES,
    MT_PRI,
    MT_USER,
    MT_VERB,
    MT_COUNT
};
extern const struct map__keydef map__top_keys[];
extern const size_t map__top_nkeys;

/* Falco output_fields keys (flat: dots are part of the key, never nesting). */
enum map__falco_key {
    MF_CONTAINER_ID,
    MF_CONTAINER_NAME,
    MF_IMAGE,
    MF_IMAGE_REPO,
    MF_IMAGE_TAG,
    MF_POD,
    MF_NS,
    MF_USER,
    MF_PROC_NAME,
    MF_CMDLINE,
    MF_EVT_TIME,
    MF_EVT_TIME_ISO,
    MF_EVT_HOSTNAME,
    MF_EVT_TYPE,
    MF_FD_NAME,
    MF_FD_SIP,
    MF_FD_CIP,
    MF_FD_SPORT,
    MF_KA_NS,
    MF_KA_NAME,
    MF_KA_RESOURCE,
    MF_KA_SUBRESOURCE,
    MF_KA_USER,
    MF_KA_VERB,
    MF_KA_CODE,
    MF_KA_COMMAND,
    MF_GCP_USER,
    MF_GCP_IP,
    MF_AL_IP,
    MF_COUNT
};
extern const struct map__keydef map__falco_keys[];
extern const size_t map__falco_nkeys;

/* The top-level values of one event; v[k].n == 0 when key k is absent (the first
 * occurrence of a duplicated key wins, as with mp_map_get). */
struct map__top {
    struct span v[MT_COUNT];
};

/* Iterates the pairs of a map value. The value must have been validated (mp_take),
 * so pairs cannot be malformed, but every step is still checked. */
struct map__it {
    struct span cur;
    uint32_t left;
};
/* Returns false when v is not a map. */
bool map__it_init(struct map__it *it, struct span v);
/* Returns 1 with the key (k.p == NULL when the key is not a string) and the value's
 * bytes, 0 at the end, -EPROTO on malformed bytes. */
int map__it_next(struct map__it *it, struct span *k, struct span *v);

/* A usable string value: a non-empty string other than Falco's "<NA>". */
bool map__str(struct span v, struct span *out);
/* map__str of map[key] when map is a map (nested objects: "user" -> "username"). */
bool map__get_str(struct span map, const char *key, struct span *out);
/* The value of map[key] (any type) when map is a map. */
bool map__get(struct span map, const char *key, struct span *out);
/* RFC 3339 text into ns; false also for years whose ns do not fit int64. */
bool map__rfc3339(struct span s, int64_t *ns);
/* An RFC 3339 string value into ns. */
bool map__time(struct span v, int64_t *ns);
void map__set_ts(struct rec *r, int64_t ns);
void map__set_sev(struct rec *r, int sev); /* ignored when sev < 0 */
/* Sets field f (an IP field) when s is an IPv4 or IPv6 address; "::ffff:a.b.c.d" is
 * set as "a.b.c.d". Returns whether it was set. */
bool map__set_ip(struct rec *r, enum vg_field f, struct span s);
bool map__is_ip(struct span s);
/* outcome for an HTTP status: success for 1xx..3xx, failure for 4xx/5xx. */
const char *map__http_outcome(int64_t code);

/* Scratch: values are appended only within the capacity reserved up front, so earlier
 * spans into it stay valid. A value is built between mark and span; on any append that
 * does not fit the value is dropped (map__scratch_span returns p == NULL). */
struct map__sb {
    struct buf *b;
    size_t mark;
    bool full;
};
void map__sb_begin(struct map__sb *sb, struct buf *b);
void map__sb_add(struct map__sb *sb, struct span s);
void map__sb_byte(struct map__sb *sb, uint8_t c);
/* Appends s URL-decoded ('+' is a space; a bad %XX is kept as is). */
void map__sb_add_urldec(struct map__sb *sb, struct span s);
/* Ends the value: its span, or p == NULL (and nothing kept) when it did not fit. */
struct span map__sb_end(struct map__sb *sb);

/* The per-format mappers, called by map_event after the top-level scan. */
int map__falco(const struct map__top *t, struct rec *r, struct buf *scratch, struct errbuf *eb);
int map__k8s(const struct map__top *t, struct rec *r, struct buf *scratch, struct errbuf *eb);
int map__trivy(const struct map__top *t, struct rec *r, struct buf *scratch, struct errbuf *eb);
/* sshd and syslog records shipped as maps; src is MAP_SSHD or MAP_SYSLOG. */
int map__syslog(const struct map__top *t, enum map_source src, int64_t fallback_ts, struct rec *r,
                struct buf *scratch, struct errbuf *eb);

#endif
