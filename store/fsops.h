/* store/fsops.h: the file-system calls the store writer makes, behind a table so tests
 * can install ops that fail the Nth call or write half the bytes (STYLE.md Tests).
 *
 * Every op returns >= 0 on success and -errno on failure (never -1 with errno). Reads
 * (pread, fstat, readdir) are not here: they are plain calls in the store. */
#ifndef VG_STORE_FSOPS_H
#define VG_STORE_FSOPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/vg.h"

struct fsops {
    void *ctx;                                                     /* passed to every op */
    int (*open)(void *ctx, const char *path, int flags, int mode); /* the fd */
    int (*close)(void *ctx, int fd);
    /* Bytes written, possibly fewer than n; 0 only when n == 0. */
    ssize_t (*pwrite)(void *ctx, int fd, const void *p, size_t n, int64_t off);
    int (*fdatasync)(void *ctx, int fd);
    int (*ftruncate)(void *ctx, int fd, int64_t len);
    int (*fsync_dir)(void *ctx, const char *path); /* open(O_DIRECTORY) + fsync + close */
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    int (*mkdir)(void *ctx, const char *path, int mode); /* -EEXIST when it exists */
};

/* The real system calls (retrying EINTR). Static storage. */
const struct fsops *fsops_default(void);

/* Writes all n bytes at off, looping over short writes. Returns 0 or -errno (-EIO when
 * an op writes nothing). On failure some prefix may have been written. */
int fsops_pwrite_all(const struct fsops *fs, int fd, const void *p, size_t n,
                     int64_t off) VG_MUST_USE;

#endif
