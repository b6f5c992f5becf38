/*
 * tmpdir_util.h: one scratch directory per test executable, /tmp/<name>.<pid>, made by the
 * group setup and removed (with everything in it) by the group teardown. Header-only because
 * every test is its own executable.
 */
#ifndef TESTS_UNIT_TMPDIR_UTIL_H
#define TESTS_UNIT_TMPDIR_UTIL_H

#include <stddef.h>
#include <unistd.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"

/* tmpdir_make: /tmp/<name>.<pid> into dir (cap bytes), created; 0, or -1 (a cmocka group setup's
 * failure). */
static inline int tmpdir_make(char *dir, size_t cap, const char *name)
{
    Err err = {0};
    if (!str_printf(dir, cap, "/tmp/%s.%ld", name, (long)getpid()) || !fs_mkdir_p(dir, 0755, &err))
        return -1;
    return 0;
}

/* tmpdir_remove: dir and everything below it; 0, or -1. */
static inline int tmpdir_remove(const char *dir)
{
    Err err = {0};
    return fs_remove_tree(dir, &err) ? 0 : -1;
}

#endif
