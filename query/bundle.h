/* query/bundle.h: evidence bundles (schemas/bundle.md): a tar file holding the events a
 * query matched (events.ndjson), the segment images they come from, the signed seal
 * sequence entries that vouch for those images, the public keys, and a manifest.
 * `vigil export` writes them (bundle_writer_*), `vigil verify BUNDLE.tar` checks them
 * with nothing but the bundle (bundle_verify). libarchive lives behind this module
 * (query/bundle.c) alone. One thread per writer or verification; blocks on I/O. */
#ifndef VG_QUERY_BUNDLE_H
#define VG_QUERY_BUNDLE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/digest.h"
#include "common/errbuf.h"
#include "common/span.h"
#include "common/vg.h"

#define BUNDLE_MANIFEST    "manifest.json"
#define BUNDLE_EVENTS      "events.ndjson"
#define BUNDLE_VERSION     1
#define BUNDLE_MAX_NAME    200                /* bytes of a member's name */
#define BUNDLE_MAX_META    ((size_t)16 << 20) /* manifest, entries and keys */
#define BUNDLE_MAX_MEMBERS 100000

/* ---- writing (vigil export) ---- */

struct bundle_writer;

/* Creates path (O_EXCL: an existing file is never overwritten) as a POSIX tar (pax).
 * Returns 0 and *out, or -errno / VG_EFORMAT with eb. */
int bundle_writer_open(const char *path, struct bundle_writer **out, struct errbuf *eb) VG_MUST_USE;
/* Adds a member with data's bytes; sha (may be NULL) gets their SHA-256. */
int bundle_writer_add(struct bundle_writer *w, const char *name, struct span data,
                      uint8_t sha[VG_SHA256_LEN], struct errbuf *eb) VG_MUST_USE;
/* Adds a member with the first size bytes of fd (read with pread from 0). */
int bundle_writer_add_fd(struct bundle_writer *w, const char *name, int fd, uint64_t size,
                         uint8_t sha[VG_SHA256_LEN], struct errbuf *eb) VG_MUST_USE;
/* Finishes the archive, fsyncs it and frees w. Returns 0 or an error with eb (the file
 * is then incomplete: the caller removes it). */
int bundle_writer_close(struct bundle_writer *w, struct errbuf *eb) VG_MUST_USE;
/* Frees w without finishing (the caller removes the file). Takes NULL. */
void bundle_writer_abort(struct bundle_writer *w);

/* ---- verifying (vigil verify BUNDLE.tar) ---- */

struct bundle_verify_opts {
    const char *trusted_key; /* NULL, or a PEM public key file: every entry must be signed
                                by it (otherwise by the keys the bundle carries) */
};

struct bundle_summary {
    uint64_t events;   /* lines of events.ndjson proven */
    uint64_t segments; /* segment images whose chain and signed entry checked out */
    uint64_t problems; /* failures reported */
    char key_id[65];   /* the key that signed the entries ("" none) */
    char filter[512];  /* the query, as the manifest gives it (cut) */
};

/* Verifies the bundle in the file at path (or, bundle_verify_mem, in memory): every
 * member against the manifest's SHA-256, every entry's signature, every segment image's
 * chain against its entry, and events.ndjson against the records of the images that
 * match the manifest's query, line by line. report (may be NULL) gets one line per
 * finding ("events.ndjson line 12: ...", "entries/x.entry: ...") and a summary line.
 * Returns 0 when everything verifies, VG_ECORRUPT when anything does not (sum->problems),
 * or another error when the bundle cannot be read at all (eb says why). */
int bundle_verify(const char *path, const struct bundle_verify_opts *o, FILE *report,
                  struct bundle_summary *sum, struct errbuf *eb) VG_MUST_USE;
int bundle_verify_mem(struct span tar, const struct bundle_verify_opts *o, FILE *report,
                      struct bundle_summary *sum, struct errbuf *eb) VG_MUST_USE;

#endif
