/* tests/unit/store/tdir.h: a throwaway directory per test for the store's unit tests
 * (cmocka setup/teardown): root is made by mkdtemp under $TMPDIR (or /tmp), dir is
 * root/store; VG_KEEP_TESTDIR=1 keeps it. Static inline: each test file includes it. */
#ifndef VG_TESTS_STORE_TDIR_H
#define VG_TESTS_STORE_TDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

struct tdir {
    char root[256];
    char dir[512]; /* root/store */
};

static inline int tdir_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void tdir_rm_tree(const char *path)
{
    nftw(path, tdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* *state gets a struct tdir whose root is "<tmp>/vg-<name>-XXXXXX", made. */
static inline int tdir_setup(void **state, const char *name)
{
    struct tdir *t = xcalloc(1, sizeof(*t));
    const char *tmp = getenv("TMPDIR");

    if (!tmp || !*tmp || strlen(tmp) > 200) {
        tmp = "/tmp";
    }
    snprintf(t->root, sizeof(t->root), "%s/vg-%.16s-XXXXXX", tmp, name);
    assert_non_null(mkdtemp(t->root));
    snprintf(t->dir, sizeof(t->dir), "%s/store", t->root);
    *state = t;
    return 0;
}

static inline int tdir_teardown(void **state)
{
    struct tdir *t = *state;
    if (!getenv("VG_KEEP_TESTDIR")) {
        tdir_rm_tree(t->root);
    }
    free(t);
    return 0;
}

#endif
