/*
 * fsutil.c: blocking file helpers with the project's durability rules (see fsutil.h).
 *
 * Every system call error becomes ERR_INTERNAL with the path and strerror text, except the cases
 * callers branch on: a missing file to read is ERR_NOT_FOUND and a file over the read limit is
 * ERR_PAYLOAD_TOO_LARGE.
 */
#include "shared/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/str.h"

static _Atomic unsigned long g_tmp_seq;

/* errno_text: strerror for worker threads (strerror itself may share one buffer). */
static const char *errno_text(int e)
{
    static _Thread_local char buf[128];
    return strerror_r(e, buf, sizeof(buf));
}

/* fs_close_keep_errno: close after a failure without clobbering the errno being reported. */
static void fs_close_keep_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

bool fs_read_file(const char *path, size_t max_bytes, char **out, size_t *len, Err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            err_set(err, ERR_NOT_FOUND, "%s: no such file", path);
        else
            err_set(err, ERR_INTERNAL, "cannot open %s: %s", path, errno_text(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err_set(err, ERR_INTERNAL, "cannot stat %s: %s", path, errno_text(errno));
        close(fd);
        return false;
    }
    if (S_ISDIR(st.st_mode)) {
        err_set(err, ERR_INTERNAL, "cannot read %s: is a directory", path);
        close(fd);
        return false;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > (uint64_t)max_bytes) {
        err_set(err, ERR_PAYLOAD_TOO_LARGE, "%s is %lld bytes, over the limit of %zu", path,
                (long long)st.st_size, max_bytes);
        close(fd);
        return false;
    }
    /* The size is a hint only (the file may grow, /proc files report 0): read to EOF, stopping
     * one byte past the limit to tell "exactly max" from "more". */
    size_t limit = max_bytes < SIZE_MAX / 2 ? max_bytes + 1 : SIZE_MAX / 2;
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
    if (cap > limit)
        cap = limit;
    char *buf = xmalloc(cap + 1);
    size_t n = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= limit)
                break;
            cap = cap > limit / 2 ? limit : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err_set(err, ERR_INTERNAL, "cannot read %s: %s", path, errno_text(errno));
            free(buf);
            close(fd);
            return false;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > max_bytes) {
        err_set(err, ERR_PAYLOAD_TOO_LARGE, "%s is over the limit of %zu bytes", path, max_bytes);
        free(buf);
        return false;
    }
    buf[n] = '\0';
    *out = buf;
    if (len != NULL)
        *len = n;
    return true;
}

bool fs_dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return str_copy(out, cap, ".");
    if (slash == path)
        return str_copy(out, cap, "/");
    size_t n = (size_t)(slash - path);
    if (n >= cap)
        return false;
    memcpy(out, path, n);
    out[n] = '\0';
    return true;
}

bool fs_fsync_dir(const char *dir, Err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, ERR_INTERNAL, "cannot open directory %s: %s", dir, errno_text(errno));
        return false;
    }
    if (fsync(fd) != 0) {
        err_set(err, ERR_INTERNAL, "cannot fsync directory %s: %s", dir, errno_text(errno));
        close(fd);
        return false;
    }
    close(fd);
    return true;
}

bool fs_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* fs_write_atomic: the temporary name is unique per process and call, so concurrent writers of
 * one path never share a temporary file; the last rename wins. */
bool fs_write_atomic(const char *path, const void *data, size_t len, Err *err)
{
    char tmp[PATH_MAX];
    char dir[PATH_MAX];
    unsigned long seq = atomic_fetch_add(&g_tmp_seq, 1);
    if (!str_printf(tmp, sizeof(tmp), "%s.tmp.%ld.%lu", path, (long)getpid(), seq) ||
        !fs_dir_of(path, dir, sizeof(dir))) {
        err_set(err, ERR_INTERNAL, "path too long: %s", path);
        return false;
    }
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_set(err, ERR_INTERNAL, "cannot create %s: %s", tmp, errno_text(errno));
        return false;
    }
    if (!fs_write_all(fd, data, len)) {
        err_set(err, ERR_INTERNAL, "cannot write %s: %s", tmp, errno_text(errno));
        goto fail_open;
    }
    if (fsync(fd) != 0) {
        err_set(err, ERR_INTERNAL, "cannot fsync %s: %s", tmp, errno_text(errno));
        goto fail_open;
    }
    if (close(fd) != 0) {
        err_set(err, ERR_INTERNAL, "cannot close %s: %s", tmp, errno_text(errno));
        goto fail_closed;
    }
    if (rename(tmp, path) != 0) {
        err_set(err, ERR_INTERNAL, "cannot rename %s to %s: %s", tmp, path, errno_text(errno));
        goto fail_closed;
    }
    /* renamed: a failure here leaves the new content in place, but not yet known durable */
    return fs_fsync_dir(dir, err);

fail_open:
    fs_close_keep_errno(fd);
fail_closed:
    unlink(tmp);
    return false;
}

/* fsync_parent: make the entry of a directory just created durable in its parent (without it a
 * crash can lose the new directory, and every file already fsynced inside it with it). */
static bool fsync_parent(const char *path, Err *err)
{
    char parent[PATH_MAX];
    if (!fs_dir_of(path, parent, sizeof(parent))) {
        err_set(err, ERR_INTERNAL, "invalid directory path \"%s\"", path);
        return false;
    }
    return fs_fsync_dir(parent, err);
}

/* mkdir_one: mkdir, an existing directory being fine; *created says whether it is new. 0, or the
 * errno of the failure (ENOTDIR: something else exists there). */
static int mkdir_one(const char *path, mode_t mode, bool *created)
{
    *created = false;
    if (mkdir(path, mode) == 0) {
        *created = true;
        return 0;
    }
    int saved = errno;
    struct stat st;
    if (saved != EEXIST)
        return saved;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

static bool mkdir_failed(const char *path, int e, Err *err)
{
    err_set(err, ERR_INTERNAL, "cannot create directory %s: %s", path, errno_text(e));
    return false;
}

bool fs_mkdir(const char *path, mode_t mode, bool *created, Err *err)
{
    bool made;
    int e = mkdir_one(path, mode, &made);
    if (created != NULL)
        *created = made;
    return e == 0 || mkdir_failed(path, e, err);
}

bool fs_mkdir_p(const char *path, mode_t mode, Err *err)
{
    char buf[PATH_MAX];
    if (!str_copy(buf, sizeof(buf), path) || buf[0] == '\0') {
        err_set(err, ERR_INTERNAL, "invalid directory path \"%s\"", path);
        return false;
    }
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    /* the usual case, the parent exists: one mkdir */
    bool created = false;
    int e = mkdir_one(buf, mode, &created);
    if (e == 0)
        return !created || fsync_parent(buf, err);
    if (e != ENOENT)
        return mkdir_failed(buf, e, err);
    /* create each prefix ending before a '/', then the whole path */
    for (char *p = buf + 1;; p++) {
        bool end = *p == '\0';
        if (!end && *p != '/')
            continue;
        if (p[-1] != '/') { /* skip the empty components of "a//b" */
            *p = '\0';
            e = mkdir_one(buf, mode, &created);
            if (e != 0)
                return mkdir_failed(buf, e, err);
            if (created && !fsync_parent(buf, err))
                return false;
            if (!end)
                *p = '/';
        }
        if (end)
            break;
    }
    return true;
}

/* nftw has no user-data argument: the first failure of the walk on this thread goes here. */
static _Thread_local int t_remove_errno;
static _Thread_local char t_remove_path[PATH_MAX];

static int remove_entry(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftwbuf)
{
    int rc = (typeflag == FTW_DP || typeflag == FTW_D) ? rmdir(fpath) : unlink(fpath);
    if (rc != 0 && errno != ENOENT) {
        t_remove_errno = errno;
        str_copy(t_remove_path, sizeof(t_remove_path), fpath);
        return 1; /* stop the walk */
    }
    return 0;
}

/* fs_remove_tree: depth-first without following symlinks, so a link to a directory elsewhere is
 * removed and its target is not. */
bool fs_remove_tree(const char *path, Err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return true;
        err_set(err, ERR_INTERNAL, "cannot stat %s: %s", path, errno_text(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT) {
            err_set(err, ERR_INTERNAL, "cannot remove %s: %s", path, errno_text(errno));
            return false;
        }
        return true;
    }
    t_remove_errno = 0;
    t_remove_path[0] = '\0';
    int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) {
        if (t_remove_errno != 0)
            err_set(err, ERR_INTERNAL, "cannot remove %s: %s", t_remove_path,
                    errno_text(t_remove_errno));
        else if (errno == ENOENT)
            return true; /* removed concurrently */
        else
            err_set(err, ERR_INTERNAL, "cannot walk %s: %s", path, errno_text(errno));
        return false;
    }
    return true;
}

bool fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void fs_strip_trailing_slashes(char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
}

bool fs_dir_each(const char *dir, bool missing_ok, FsDirEachFn fn, void *arg, Err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT && missing_ok)
            return true;
        err_set(err, ERR_INTERNAL, "cannot open %s: %s", dir, errno_text(errno));
        return false;
    }
    bool ok = true;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                err_set(err, ERR_INTERNAL, "cannot read %s: %s", dir, errno_text(errno));
                ok = false;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[PATH_MAX];
        if (!str_printf(path, sizeof(path), "%s/%s", dir, de->d_name))
            continue;
        if (!fn(path, de->d_name, arg))
            break;
    }
    closedir(d);
    return ok;
}
