/*
 * remote_storage_fs.c: the file:// remote storage backend: every object is the file
 * <root>/<key>, and '/' in keys are directories.
 *
 * Atomicity comes from rename: a put writes "<final name>.tmp.<pid>.<n>" in the object's
 * directory, fsyncs it, renames it over the final name and fsyncs the directory (and every
 * directory it had to create, up to the root), so a reader opening the name sees the old or the
 * new file whole. Listings skip names of that temporary form, and keys whose last segment has
 * that form are refused, so the two can never be confused. Temporary files left by a crash stay
 * on disk invisible (garbage, never data).
 *
 * Deletes unlink the file and then remove the directories that became empty, up to (not
 * including) the root. A put racing with such a cleanup can find its freshly created directory
 * gone; it simply retries. Deletes are not fsynced: a crash may resurrect a deleted object, which
 * callers already treat like a leaked one.
 *
 * No shared mutable state except the temporary-name counter (atomic): safe from many threads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"

#include "shared/remote_storage.h"

/* A put retries when a concurrent delete removed the directory it had just created. */
#define FS_PUT_ATTEMPTS 100
#define FS_COPY_BUF     (128 * 1024)

typedef struct FsStorage {
    char *root; /* absolute, no trailing '/' */
} FsStorage;

static _Atomic unsigned long g_fs_tmp_seq;

/* errno_text: thread-safe strerror. */
static const char *errno_text(int e, char *buf, size_t cap)
{
    return strerror_r(e, buf, cap);
}

#define ERRNO_SET(err, code, fmt, ...)                                                             \
    do {                                                                                           \
        char ebuf_[128];                                                                           \
        int saved_ = errno;                                                                        \
        err_set((err), (code), fmt ": %s", __VA_ARGS__, errno_text(saved_, ebuf_, sizeof(ebuf_))); \
    } while (0)

/* all_digits: s[0..n) is a non-empty run of decimal digits. */
static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* fs_is_temp_name: name ends with ".tmp.<digits>.<digits>", the form of our temporary files
 * (and of fs_write_atomic's). */
static bool fs_is_temp_name(const char *name)
{
    const char *p = name;
    while ((p = strstr(p, ".tmp.")) != NULL) {
        const char *rest = p + 5;
        const char *dot = strchr(rest, '.');
        if (dot != NULL && all_digits(rest, (size_t)(dot - rest)) &&
            all_digits(dot + 1, strlen(dot + 1)))
            return true;
        p++;
    }
    return false;
}

/* fs_check_key: the backend's own restriction on top of remote_key_validate. */
static bool fs_check_key(const char *key, Err *err)
{
    const char *last = strrchr(key, '/');
    last = last ? last + 1 : key;
    if (fs_is_temp_name(last)) {
        err_set(err, ERR_BAD_REQUEST,
                "invalid remote key \"%s\": names ending in .tmp.<n>.<n> are reserved for "
                "temporary files",
                key);
        return false;
    }
    return true;
}

/* fs_path: <root>/<key> into out[PATH_MAX]. */
static bool fs_path(const FsStorage *fs, const char *key, char *out, Err *err)
{
    if (!str_printf(out, PATH_MAX, "%s/%s", fs->root, key)) {
        err_set(err, ERR_BAD_REQUEST, "remote key \"%s\": path too long", key);
        return false;
    }
    return true;
}

/* dir_part: the directory of path (which always contains a '/') into out[PATH_MAX]. */
static void dir_part(const char *path, char *out)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (size_t)(slash - path);
    if (n == 0) {
        str_copy(out, PATH_MAX, slash == NULL ? "." : "/");
        return;
    }
    memcpy(out, path, n);
    out[n] = '\0';
}

/* fs_make_dirs: create the directories of key under root. *created is set when at least one was
 * created (its parent then needs an fsync for the new entry to be durable). ENOENT means a
 * concurrent delete removed a parent just created: returned as such so that the caller retries. */
static bool fs_make_dirs(const FsStorage *fs, const char *key, bool *created, int *err_no)
{
    char path[PATH_MAX];
    size_t rlen = strlen(fs->root);
    memcpy(path, fs->root, rlen + 1);
    const char *seg = key;
    const char *slash;
    while ((slash = strchr(seg, '/')) != NULL) {
        size_t n = (size_t)(slash - key);
        /* fs_path already checked that root/key fits */
        path[rlen] = '/';
        memcpy(path + rlen + 1, key, n);
        path[rlen + 1 + n] = '\0';
        if (mkdir(path, 0755) == 0) {
            *created = true;
        } else if (errno != EEXIST) {
            *err_no = errno;
            return false;
        }
        seg = slash + 1;
    }
    return true;
}

/* fs_sync_dirs: fsync the object's directory, and when directories were created also each
 * ancestor up to the root, whose entries for the new directories must be durable too. */
static bool fs_sync_dirs(const FsStorage *fs, const char *path, bool created, Err *err)
{
    char dir[PATH_MAX];
    dir_part(path, dir);
    size_t rlen = strlen(fs->root);
    for (;;) {
        if (!fs_fsync_dir(dir, err))
            return false;
        if (!created || strlen(dir) <= rlen)
            return true;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir)
            return true;
        *slash = '\0';
    }
}

/* write_all: write len bytes, retrying short writes and EINTR. */
static bool write_all(int fd, const void *data, size_t len)
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

/* copy_fd: copy from in's position to EOF into out: copy_file_range (reflinks or in-kernel
 * copies where the filesystem can), falling back to a read/write loop where it is unsupported. */
static bool copy_fd(int in, int out)
{
    bool use_cfr = true;
    for (;;) {
        if (use_cfr) {
            ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
            if (n > 0)
                continue;
            if (n == 0)
                return true;
            if (errno == EINTR)
                continue;
            if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                errno == EBADF) {
                use_cfr = false;
                continue;
            }
            return false;
        }
        char *buf = xmalloc(FS_COPY_BUF);
        bool ok = true;
        for (;;) {
            ssize_t r = read(in, buf, FS_COPY_BUF);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                ok = r == 0;
                break;
            }
            if (!write_all(out, buf, (size_t)r)) {
                ok = false;
                break;
            }
        }
        int saved = errno;
        free(buf);
        errno = saved;
        return ok;
    }
}

/* fs_tmp_name: "<path>.tmp.<pid>.<n>", unique per process and call. */
static bool fs_tmp_name(const char *path, char *out, Err *err)
{
    unsigned long seq = atomic_fetch_add(&g_fs_tmp_seq, 1);
    if (!str_printf(out, PATH_MAX, "%s.tmp.%ld.%lu", path, (long)getpid(), seq)) {
        err_set(err, ERR_BAD_REQUEST, "path too long: %s", path);
        return false;
    }
    return true;
}

/* fs_put_common: the atomic write behind put and put_file: data/len when src_fd < 0, else the
 * contents of src_fd (read from its start). */
static bool fs_put_common(FsStorage *fs, const char *key, const void *data, size_t len, int src_fd,
                          Err *err)
{
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    if (!fs_check_key(key, err) || !fs_path(fs, key, path, err) || !fs_tmp_name(path, tmp, err))
        return false;
    bool created = false;
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        int e = 0;
        if (fs_make_dirs(fs, key, &created, &e)) {
            fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
            e = fd < 0 ? errno : 0;
        }
        if (fd >= 0)
            break;
        errno = e;
        if (e == ENOTDIR || e == EEXIST) {
            err_set(err, ERR_CONFLICT,
                    "remote key \"%s\": a parent path is an object, not a directory", key);
            return false;
        }
        if (e != ENOENT || attempt + 1 >= FS_PUT_ATTEMPTS) {
            ERRNO_SET(err, ERR_INTERNAL, "cannot create %s", tmp);
            return false;
        }
    }
    bool ok;
    if (src_fd < 0) {
        ok = write_all(fd, data, len);
    } else {
        ok = lseek(src_fd, 0, SEEK_SET) == 0 && copy_fd(src_fd, fd);
    }
    if (!ok) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot write %s", tmp);
        goto fail;
    }
    if (fsync(fd) != 0) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot fsync %s", tmp);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        ERRNO_SET(err, ERR_INTERNAL, "cannot close %s", tmp);
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST)
            err_set(err, ERR_CONFLICT, "remote key \"%s\" is a prefix of other objects", key);
        else
            ERRNO_SET(err, ERR_INTERNAL, "cannot rename %s to %s", tmp, path);
        goto fail;
    }
    return fs_sync_dirs(fs, path, created, err);

fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return false;
}

static bool fs_put(void *impl, const char *key, const void *data, size_t len, Err *err)
{
    return fs_put_common(impl, key, data, len, -1, err);
}

static bool fs_put_file(void *impl, const char *key, const char *local_path, Err *err)
{
    int src = open(local_path, O_RDONLY | O_CLOEXEC);
    if (src < 0) {
        if (errno == ENOENT)
            err_set(err, ERR_NOT_FOUND, "%s: no such file", local_path);
        else
            ERRNO_SET(err, ERR_INTERNAL, "cannot open %s", local_path);
        return false;
    }
    bool ok = fs_put_common(impl, key, NULL, 0, src, err);
    close(src);
    return ok;
}

/* fs_open_object: open the object for reading; absent (or a directory, i.e. only a prefix of
 * other keys) is ERR_NOT_FOUND. The returned fd sees one whole version even if a put renames a
 * new file over the name meanwhile. */
static bool fs_open_object(FsStorage *fs, const char *key, int *fd_out, struct stat *st, Err *err)
{
    char path[PATH_MAX];
    if (!fs_check_key(key, err) || !fs_path(fs, key, path, err))
        return false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            err_set(err, ERR_NOT_FOUND, "remote object \"%s\" not found", key);
        else
            ERRNO_SET(err, ERR_INTERNAL, "cannot open %s", path);
        return false;
    }
    if (fstat(fd, st) != 0) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot stat %s", path);
        close(fd);
        return false;
    }
    if (!S_ISREG(st->st_mode)) {
        err_set(err, ERR_NOT_FOUND, "remote object \"%s\" not found", key);
        close(fd);
        return false;
    }
    *fd_out = fd;
    return true;
}

/* pread_full: read up to len bytes from offset, stopping early only at end of file. */
static bool pread_full(int fd, uint64_t offset, void *buf, size_t len, size_t *got)
{
    size_t n = 0;
    while (n < len) {
        ssize_t r = pread(fd, (char *)buf + n, len - n, (off_t)(offset + n));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *got = n;
    return true;
}

static bool fs_get(void *impl, const char *key, char **data, size_t *len, Err *err)
{
    int fd;
    struct stat st;
    if (!fs_open_object(impl, key, &fd, &st, err))
        return false;
    size_t size = (size_t)st.st_size;
    char *buf = xmalloc(size + 1);
    size_t got = 0;
    if (!pread_full(fd, 0, buf, size, &got)) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot read remote object \"%s\"", key);
        free(buf);
        close(fd);
        return false;
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return true;
}

static bool fs_get_range(void *impl, const char *key, uint64_t offset, size_t len, void *buf,
                         size_t *got, Err *err)
{
    int fd;
    struct stat st;
    if (!fs_open_object(impl, key, &fd, &st, err))
        return false;
    if (offset > (uint64_t)INT64_MAX) {
        close(fd);
        err_set(err, ERR_BAD_REQUEST, "offset %llu out of range", (unsigned long long)offset);
        return false;
    }
    bool ok = pread_full(fd, offset, buf, len, got);
    if (!ok)
        ERRNO_SET(err, ERR_INTERNAL, "cannot read remote object \"%s\" at offset %llu", key,
                  (unsigned long long)offset);
    close(fd);
    return ok;
}

/* fs_get_to_file: copy the object into a temporary next to local_path, fsync, rename, fsync the
 * directory (created if missing). */
static bool fs_get_to_file(void *impl, const char *key, const char *local_path, Err *err)
{
    int src;
    struct stat st;
    if (!fs_open_object(impl, key, &src, &st, err))
        return false;
    char tmp[PATH_MAX] = "";
    char dir[PATH_MAX];
    int fd = -1;
    int rc;
    bool ok = false;
    if (!fs_tmp_name(local_path, tmp, err)) {
        tmp[0] = '\0';
        goto cleanup;
    }
    dir_part(local_path, dir);
    if (!fs_mkdir_p(dir, 0755, err))
        goto cleanup;
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot create %s", tmp);
        goto cleanup;
    }
    if (!copy_fd(src, fd)) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot copy remote object \"%s\" to %s", key, tmp);
        goto cleanup;
    }
    if (fsync(fd) != 0) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot fsync %s", tmp);
        goto cleanup;
    }
    rc = close(fd);
    fd = -1;
    if (rc != 0) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot close %s", tmp);
        goto cleanup;
    }
    if (rename(tmp, local_path) != 0) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot rename %s to %s", tmp, local_path);
        goto cleanup;
    }
    ok = fs_fsync_dir(dir, err);
    tmp[0] = '\0'; /* renamed: nothing to unlink */

cleanup:
    if (fd >= 0)
        close(fd);
    if (!ok && tmp[0] != '\0' && fs_exists(tmp))
        unlink(tmp);
    close(src);
    return ok;
}

static int64_t stat_mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static bool fs_head(void *impl, const char *key, RemoteObjectInfo *info, Err *err)
{
    int fd;
    struct stat st;
    if (!fs_open_object(impl, key, &fd, &st, err))
        return false;
    close(fd);
    info->key = NULL;
    info->size = (uint64_t)st.st_size;
    info->mtime_ms = stat_mtime_ms(&st);
    return true;
}

typedef struct ListState {
    const char *prefix;
    RemoteListing *out;
    size_t cap;
    char key[PATH_MAX]; /* the key (relative path) of the directory being walked */
} ListState;

/* list_walk: add the files under the directory dfd (whose key path is st->key[0..klen)) that
 * match the prefix, recursing into subdirectories that can hold matches. Entries that vanish
 * during the walk (concurrent deletes) are skipped. Takes ownership of dfd. */
static bool list_walk(ListState *ls, int dfd, size_t klen, Err *err)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot read directory \"%.*s\"", (int)klen, ls->key);
        close(dfd);
        return false;
    }
    size_t plen = strlen(ls->prefix);
    bool ok = true;
    struct dirent *de;
    while (ok) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                ERRNO_SET(err, ERR_INTERNAL, "cannot read directory \"%.*s\"", (int)klen, ls->key);
                ok = false;
            }
            break;
        }
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        size_t nlen = strlen(name);
        if (klen + nlen + 2 > sizeof(ls->key))
            continue; /* deeper than any valid key */
        memcpy(ls->key + klen, name, nlen + 1);
        size_t newlen = klen + nlen;
        /* a directory can hold matches if its key path and the prefix agree so far */
        size_t common = newlen < plen ? newlen : plen;
        if (memcmp(ls->key, ls->prefix, common) != 0)
            continue;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue;
            ERRNO_SET(err, ERR_INTERNAL, "cannot stat \"%s\"", ls->key);
            ok = false;
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub < 0) {
                if (errno == ENOENT)
                    continue;
                ERRNO_SET(err, ERR_INTERNAL, "cannot open directory \"%s\"", ls->key);
                ok = false;
                break;
            }
            ls->key[newlen] = '/';
            ls->key[newlen + 1] = '\0';
            ok = list_walk(ls, sub, newlen + 1, err);
            continue;
        }
        if (!S_ISREG(st.st_mode) || newlen < plen || fs_is_temp_name(name))
            continue;
        if (ls->out->n == ls->cap) {
            ls->cap = ls->cap ? ls->cap * 2 : 64;
            ls->out->items = xrealloc(ls->out->items, ls->cap * sizeof(*ls->out->items));
        }
        RemoteObjectInfo *it = &ls->out->items[ls->out->n++];
        it->key = xstrndup(ls->key, newlen);
        it->size = (uint64_t)st.st_size;
        it->mtime_ms = stat_mtime_ms(&st);
    }
    closedir(d);
    return ok;
}

static int info_cmp(const void *a, const void *b)
{
    return strcmp(((const RemoteObjectInfo *)a)->key, ((const RemoteObjectInfo *)b)->key);
}

/* fs_list: walk from the deepest directory the prefix fully names (the part up to its last '/'),
 * then sort: strcmp compares as unsigned char, i.e. bytewise. */
static bool fs_list(void *impl, const char *prefix, RemoteListing *out, Err *err)
{
    FsStorage *fs = impl;
    ListState *ls = xcalloc(1, sizeof(*ls));
    ls->prefix = prefix;
    ls->out = out;
    const char *slash = strrchr(prefix, '/');
    size_t base = slash == NULL ? 0 : (size_t)(slash - prefix) + 1;
    char dir[PATH_MAX];
    if (!str_printf(dir, sizeof(dir), "%s/%.*s", fs->root, (int)base, prefix)) {
        free(ls);
        err_set(err, ERR_BAD_REQUEST, "remote prefix \"%s\": path too long", prefix);
        return false;
    }
    memcpy(ls->key, prefix, base);
    ls->key[base] = '\0';
    bool ok = true;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno != ENOENT && errno != ENOTDIR) {
            ERRNO_SET(err, ERR_INTERNAL, "cannot open directory %s", dir);
            ok = false;
        }
    } else {
        ok = list_walk(ls, dfd, base, err);
    }
    free(ls);
    if (!ok) {
        remote_listing_free(out);
        return false;
    }
    if (out->n > 1)
        qsort(out->items, out->n, sizeof(*out->items), info_cmp);
    return true;
}

/* fs_delete: unlink, then remove the directories this left empty, up to but not including the
 * root (rmdir fails on a non-empty directory, which ends the climb). */
static bool fs_delete(void *impl, const char *key, Err *err)
{
    FsStorage *fs = impl;
    char path[PATH_MAX];
    if (!fs_check_key(key, err) || !fs_path(fs, key, path, err))
        return false;
    if (unlink(path) != 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR)
            return true; /* absent (a directory is only a prefix of other keys) */
        ERRNO_SET(err, ERR_INTERNAL, "cannot delete %s", path);
        return false;
    }
    size_t rlen = strlen(fs->root);
    for (;;) {
        char *slash = strrchr(path, '/');
        if (slash == NULL || (size_t)(slash - path) <= rlen)
            break;
        *slash = '\0';
        if (rmdir(path) != 0 && errno != ENOENT)
            break;
    }
    return true;
}

static void fs_free_impl(void *impl)
{
    FsStorage *fs = impl;
    if (fs == NULL)
        return;
    free(fs->root);
    free(fs);
}

static const RemoteStorageOps FS_OPS = {
    .scheme = "file",
    .put = fs_put,
    .put_file = fs_put_file,
    .get = fs_get,
    .get_range = fs_get_range,
    .get_to_file = fs_get_to_file,
    .head = fs_head,
    .list = fs_list,
    .delete_key = fs_delete,
    .free_impl = fs_free_impl,
};

bool remote_storage_fs_new(const char *root_dir, const RemoteStorageOps **ops, void **impl,
                           Err *err)
{
    if (root_dir == NULL || root_dir[0] != '/') {
        err_set(err, ERR_BAD_REQUEST, "remote storage root \"%s\" is not an absolute path",
                root_dir ? root_dir : "");
        return false;
    }
    size_t n = strlen(root_dir);
    while (n > 1 && root_dir[n - 1] == '/')
        n--;
    char *root = xstrndup(root_dir, n);
    if (!fs_mkdir_p(root, 0755, err)) {
        err_prefix(err, "remote storage root: ");
        free(root);
        return false;
    }
    FsStorage *fs = xcalloc(1, sizeof(*fs));
    fs->root = root;
    *ops = &FS_OPS;
    *impl = fs;
    return true;
}
