/* store/fsops.c: the default file-system ops (real system calls) and the full-write
 * loop. Any thread; no state. */
#include "store/fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int sys_open(void *ctx, const char *path, int flags, int mode)
{
    (void)ctx;
    for (;;) {
        int fd = open(path, flags | O_CLOEXEC, (mode_t)mode);
        if (fd >= 0) {
            return fd;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

static int sys_close(void *ctx, int fd)
{
    (void)ctx;
    /* Linux releases the fd even when close fails with EINTR: never retry. */
    return close(fd) == 0 || errno == EINTR ? 0 : -errno;
}

static ssize_t sys_pwrite(void *ctx, int fd, const void *p, size_t n, int64_t off)
{
    (void)ctx;
    for (;;) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w >= 0) {
            return w;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

static int sys_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    /* No retry on EINTR or anything else: after a failed sync the page cache may have
     * dropped the data, so the caller must treat it as lost. */
    return fdatasync(fd) == 0 ? 0 : -errno;
}

static int sys_ftruncate(void *ctx, int fd, int64_t len)
{
    (void)ctx;
    for (;;) {
        if (ftruncate(fd, (off_t)len) == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

static int sys_fsync_dir(void *ctx, const char *path)
{
    int fd = sys_open(ctx, path, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        return fd;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int sys_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to) == 0 ? 0 : -errno;
}

static int sys_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path) == 0 ? 0 : -errno;
}

static int sys_mkdir(void *ctx, const char *path, int mode)
{
    (void)ctx;
    return mkdir(path, (mode_t)mode) == 0 ? 0 : -errno;
}

static const struct fsops fsops_sys = {
    .ctx = NULL,
    .open = sys_open,
    .close = sys_close,
    .pwrite = sys_pwrite,
    .fdatasync = sys_fdatasync,
    .ftruncate = sys_ftruncate,
    .fsync_dir = sys_fsync_dir,
    .rename = sys_rename,
    .unlink = sys_unlink,
    .mkdir = sys_mkdir,
};

const struct fsops *fsops_default(void)
{
    return &fsops_sys;
}

int fsops_pwrite_all(const struct fsops *fs, int fd, const void *p, size_t n, int64_t off)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t w = fs->pwrite(fs->ctx, fd, b, n, off);
        if (w < 0) {
            return (int)w;
        }
        if (w == 0 || (size_t)w > n) {
            return -EIO;
        }
        b += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}
