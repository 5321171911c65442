/* common/vg.h: project-wide attributes and error codes.
 *
 * A function that can fail returns int: 0 (or a documented count) on success, else a
 * negative code: -errno, libuv's UV_E* (the same numbers on Linux), or one of the
 * VG_E* codes below. vg_strerror() names every one of them. */
#ifndef VG_COMMON_VG_H
#define VG_COMMON_VG_H

#include <stddef.h>
#include <stdint.h>

#define VG_MUST_USE     __attribute__((warn_unused_result))
#define VG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define VG_NORETURN     __attribute__((noreturn))
#define VG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum {
    VG_ECORRUPT = -1001, /* stored bytes failed a check */
    VG_ECONFIG = -1002,  /* configuration is invalid */
    VG_ETLS = -1003,     /* TLS handshake or certificate failure */
    VG_EDB = -1004,      /* SQLite failed */
    VG_ELIMIT = -1005,   /* a configured limit was hit */
    VG_EPARSE = -1006,   /* user input (filter, time, argument) did not parse */
    VG_EFORMAT = -1007,  /* a document is not of the expected format */
    VG_ECERT = -1008,    /* a certificate was refused (ours by the peer, or the peer's by
                            us): trying again with the same ones cannot help */
};

/* Names any code this project returns: VG_E*, -errno or UV_E*. Static storage. */
const char *vg_strerror(int rc);

#endif
