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
 * Reads stream the object in REMOTE_CHUNK_SIZE chunks from one open descriptor (so a get sees
 * one version whole); writes and reads check the call's options between chunks. The etag is
 * "<inode>-<size>-<mtime ns>" in hex: every put renames a new inode into place.
 *
 * Listings walk the directory tree in key order (each directory's entries sorted with '/'
 * appended to subdirectory names, which is the bytewise order of the keys beneath), skip subtrees
 * wholly before the continuation point, roll a subtree up into one common prefix without
 * descending into it (a look for one object is enough), and stop one entry after the page is
 * full. A continuation token is "k:<last key>" or "p:<last common prefix>".
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
#include <time.h>
#include <unistd.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"

#include "shared/remote_storage.h"
#include "shared/remote_storage_backend.h"

/* A put retries when a concurrent delete removed the directory it had just created. */
#define FS_PUT_ATTEMPTS 100
#define FS_COPY_CHUNK   (8 * 1024 * 1024) /* copy_file_range per options check */

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

typedef struct TempSweep {
    time_t cutoff;
    int64_t grace_s;
    uint64_t *removed;
    Err *err;
    bool failed;
} TempSweep;

static bool sweep_entry(const char *path, const char *name, void *arg)
{
    TempSweep *w = arg;
    struct stat st;
    if (lstat(path, &st) != 0)
        return true; /* gone meanwhile */
    if (S_ISDIR(st.st_mode)) {
        w->failed = !remote_fs_sweep_temps(path, w->grace_s, w->removed, w->err);
    } else if (S_ISREG(st.st_mode) && fs_is_temp_name(name) && st.st_mtime < w->cutoff) {
        if (unlink(path) == 0) {
            (*w->removed)++;
        } else if (errno != ENOENT) {
            ERRNO_SET(w->err, ERR_INTERNAL, "cannot remove %s", path);
            w->failed = true;
        }
    }
    return !w->failed;
}

bool remote_fs_sweep_temps(const char *root, int64_t grace_s, uint64_t *removed, Err *err)
{
    TempSweep w = {time(NULL) - (time_t)grace_s, grace_s, removed, err, false};
    return fs_dir_each(root, true, sweep_entry, &w, err) && !w.failed;
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

/* copy_fd: copy from in's position to EOF into out, checking opts between chunks:
 * copy_file_range (reflinks or in-kernel copies where the filesystem can), falling back to a
 * read/write loop where it is unsupported. An I/O failure leaves errno set and *io_err true; an
 * options failure fills err. */
static bool copy_fd(int in, int out, const RemoteOpts *opts, bool *io_err, Err *err)
{
    *io_err = true;
    char *buf = NULL;
    bool use_cfr = true;
    bool ok = false;
    for (;;) {
        if (!remote_opts_check(opts, "put", err)) {
            *io_err = false;
            break;
        }
        ssize_t n;
        if (use_cfr) {
            n = copy_file_range(in, NULL, out, NULL, FS_COPY_CHUNK, 0);
            if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                          errno == EOPNOTSUPP || errno == EBADF)) {
                use_cfr = false;
                continue;
            }
        } else {
            if (buf == NULL)
                buf = xmalloc(REMOTE_CHUNK_SIZE);
            n = read(in, buf, REMOTE_CHUNK_SIZE);
            if (n > 0 && !fs_write_all(out, buf, (size_t)n))
                break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = n == 0;
            break;
        }
    }
    int saved = errno;
    free(buf);
    errno = saved;
    return ok;
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
                          const RemoteOpts *opts, Err *err)
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
    bool io_err = true;
    bool ok;
    if (src_fd < 0) {
        const char *p = data;
        size_t left = len;
        ok = true;
        while (ok && left > 0) {
            size_t n = left < REMOTE_CHUNK_SIZE ? left : REMOTE_CHUNK_SIZE;
            if (!remote_opts_check(opts, "put", err)) {
                io_err = false;
                ok = false;
            } else {
                ok = fs_write_all(fd, p, n);
            }
            p += n;
            left -= n;
        }
    } else {
        ok = lseek(src_fd, 0, SEEK_SET) == 0 && copy_fd(src_fd, fd, opts, &io_err, err);
    }
    if (!ok) {
        if (io_err)
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
    /* the last moment a deadline or cancel can still leave the old object in place */
    if (!remote_opts_check(opts, "put", err))
        goto fail;
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

static bool fs_put(void *impl, const char *key, const void *data, size_t len,
                   const RemoteOpts *opts, Err *err)
{
    return fs_put_common(impl, key, data, len, -1, opts, err);
}

static bool fs_put_file(void *impl, const char *key, int src_fd, const RemoteOpts *opts, Err *err)
{
    return fs_put_common(impl, key, NULL, 0, src_fd, opts, err);
}

static int64_t stat_mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* stat_info: size, mtime and etag of a file (key left alone). */
static void stat_info(const struct stat *st, RemoteObjectInfo *info)
{
    info->size = (uint64_t)st->st_size;
    info->mtime_ms = stat_mtime_ms(st);
    unsigned long long ns = (unsigned long long)st->st_mtim.tv_sec * 1000000000ull +
                            (unsigned long long)st->st_mtim.tv_nsec;
    snprintf(info->etag, sizeof(info->etag), "%llx-%llx-%llx", (unsigned long long)st->st_ino,
             (unsigned long long)st->st_size, ns);
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

/* fs_not_modified: the request's condition holds (see RemoteGetReq). */
static bool fs_not_modified(const RemoteGetReq *req, const RemoteObjectInfo *info)
{
    if (req->if_none_match != NULL)
        return strcmp(req->if_none_match, info->etag) == 0;
    return req->if_modified_since_ms > 0 && info->mtime_ms <= req->if_modified_since_ms;
}

/* fs_get: the range [offset, min(offset + len, size)) of the version opened, chunk by chunk. */
static bool fs_get(void *impl, const char *key, const RemoteGetReq *req, RemoteSink sink, void *ctx,
                   RemoteGetResult *res, const RemoteOpts *opts, Err *err)
{
    int fd;
    struct stat st;
    if (!fs_open_object(impl, key, &fd, &st, err))
        return false;
    stat_info(&st, &res->info);
    if (fs_not_modified(req, &res->info)) {
        res->not_modified = true;
        close(fd);
        return true;
    }
    uint64_t size = res->info.size;
    uint64_t pos = req->offset < size ? req->offset : size;
    uint64_t end = size;
    if (req->len > 0 && req->len < end - pos)
        end = pos + req->len;
    size_t bufsize = end - pos < REMOTE_CHUNK_SIZE ? (size_t)(end - pos) : REMOTE_CHUNK_SIZE;
    char *buf = bufsize > 0 ? xmalloc(bufsize) : NULL;
    bool ok = true;
    while (ok && pos < end) {
        size_t want = end - pos < bufsize ? (size_t)(end - pos) : bufsize;
        size_t got = 0;
        if (!remote_opts_check(opts, "get", err)) {
            ok = false;
        } else if (!pread_full(fd, pos, buf, want, &got)) {
            ERRNO_SET(err, ERR_INTERNAL, "cannot read remote object \"%s\" at offset %llu", key,
                      (unsigned long long)pos);
            ok = false;
        } else if (got == 0) {
            break; /* the version opened cannot shrink; only a broken file system ends early */
        } else {
            ok = sink(ctx, buf, got, err);
            pos += got;
            res->bytes += got;
        }
    }
    free(buf);
    close(fd);
    return ok;
}

static bool fs_head(void *impl, const char *key, RemoteObjectInfo *info, const RemoteOpts *opts,
                    Err *err)
{
    (void)opts; /* one stat: nothing to interrupt */
    int fd;
    struct stat st;
    if (!fs_open_object(impl, key, &fd, &st, err))
        return false;
    close(fd);
    info->key = NULL;
    stat_info(&st, info);
    return true;
}

/* ---- listings ---- */

typedef struct ListState {
    const char *prefix;
    size_t plen;
    const char *delim; /* NULL = none */
    size_t dlen;
    const char *after; /* from the token: list only entries after this one, or NULL */
    bool after_is_prefix;
    size_t max_keys;
    const RemoteOpts *opts;
    RemoteListing *page;
    size_t cap_items, cap_prefixes;
    bool last_is_prefix; /* which kind the page's last entry is */
    bool full;           /* one entry past max_keys was found: stop */
    char key[PATH_MAX];  /* the key path of the directory being walked, then an entry's */
} ListState;

static bool starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* list_has_room: an entry beyond the resume point is about to be added: false when the page is
 * already full (then the walk stops and the page gets a token). */
static bool list_has_room(ListState *ls)
{
    if (ls->page->n + ls->page->n_prefixes < ls->max_keys)
        return true;
    ls->full = true;
    return false;
}

static const char *list_last_prefix(const ListState *ls)
{
    return ls->page->n_prefixes > 0 ? ls->page->prefixes[ls->page->n_prefixes - 1] : NULL;
}

/* list_after_resume: the entry text (a key, or a common prefix when is_prefix) comes after the
 * continuation point. */
static bool list_after_resume(const ListState *ls, const char *text)
{
    if (ls->after == NULL)
        return true;
    if (ls->after_is_prefix && starts_with(text, ls->after))
        return false;
    return strcmp(text, ls->after) > 0;
}

static void list_add_prefix(ListState *ls, const char *cp, size_t len)
{
    RemoteListing *p = ls->page;
    if (p->n_prefixes == ls->cap_prefixes) {
        ls->cap_prefixes = ls->cap_prefixes ? ls->cap_prefixes * 2 : 16;
        p->prefixes = xrealloc(p->prefixes, ls->cap_prefixes * sizeof(*p->prefixes));
    }
    p->prefixes[p->n_prefixes++] = xstrndup(cp, len);
    ls->last_is_prefix = true;
}

/* list_rollup: the length of the common prefix text[0..plen+i+dlen) when the delimiter occurs in
 * text[plen..len) (ending within len), else 0. */
static size_t list_rollup(const ListState *ls, const char *text, size_t len)
{
    if (ls->delim == NULL || len <= ls->plen)
        return 0;
    const char *hit = memmem(text + ls->plen, len - ls->plen, ls->delim, ls->dlen);
    return hit == NULL ? 0 : (size_t)(hit - text) + ls->dlen;
}

/* dir_has_object: the directory (which this closes) holds an object somewhere beneath; 0 no,
 * 1 yes, -1 error (errno). Entries vanishing meanwhile are skipped. */
static int dir_has_object(int dfd)
{
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        int e = errno;
        close(dfd);
        errno = e;
        return -1;
    }
    int found = 0;
    struct dirent *de;
    while (found == 0) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            found = errno != 0 ? -1 : 0;
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT)
                found = -1;
            continue;
        }
        if (S_ISREG(st.st_mode) && !fs_is_temp_name(de->d_name)) {
            found = 1;
        } else if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (sub < 0)
                found = errno == ENOENT ? 0 : -1;
            else
                found = dir_has_object(sub);
        }
    }
    int e = errno;
    closedir(d);
    errno = e;
    return found;
}

/* One directory entry; sort is the name, with '/' appended for a directory. */
typedef struct DirEntry {
    char *sort;
    bool is_dir;
} DirEntry;

static int dir_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const DirEntry *)a)->sort, ((const DirEntry *)b)->sort);
}

/* read_sorted: the entries of d that are regular files or directories, in key order. Entries
 * vanishing meanwhile are skipped. */
static bool read_sorted(DIR *d, DirEntry **out, size_t *n_out)
{
    DirEntry *v = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                goto fail;
            break;
        }
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        bool is_dir;
        if (de->d_type == DT_DIR || de->d_type == DT_REG) {
            is_dir = de->d_type == DT_DIR;
        } else {
            struct stat st;
            if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT)
                    continue;
                goto fail;
            }
            if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                continue;
            is_dir = S_ISDIR(st.st_mode);
        }
        if (!is_dir && fs_is_temp_name(name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            v = xrealloc(v, cap * sizeof(*v));
        }
        size_t len = strlen(name);
        v[n].sort = xmalloc(len + 2);
        memcpy(v[n].sort, name, len);
        v[n].sort[len] = is_dir ? '/' : '\0';
        v[n].sort[len + 1] = '\0';
        v[n].is_dir = is_dir;
        n++;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), dir_entry_cmp);
    *out = v;
    *n_out = n;
    return true;

fail:;
    int e = errno;
    for (size_t i = 0; i < n; i++)
        free(v[i].sort);
    free(v);
    errno = e;
    return false;
}

/* list_file: the file entry whose key is ls->key[0..len) (dfd its directory, name its name). */
static bool list_file(ListState *ls, int dfd, const char *name, size_t len, Err *err)
{
    const char *key = ls->key;
    if (len < ls->plen || memcmp(key, ls->prefix, ls->plen) != 0 || !list_after_resume(ls, key))
        return true;
    size_t cp = list_rollup(ls, key, len);
    if (cp > 0) {
        const char *last = list_last_prefix(ls);
        if (last != NULL && strlen(last) == cp && memcmp(last, key, cp) == 0)
            return true; /* rolled up already */
        if (list_has_room(ls))
            list_add_prefix(ls, key, cp);
        return true;
    }
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return true; /* deleted meanwhile */
        ERRNO_SET(err, ERR_INTERNAL, "cannot stat \"%s\"", key);
        return false;
    }
    if (!S_ISREG(st.st_mode) || !list_has_room(ls))
        return true;
    RemoteListing *p = ls->page;
    if (p->n == ls->cap_items) {
        ls->cap_items = ls->cap_items ? ls->cap_items * 2 : 64;
        p->items = xrealloc(p->items, ls->cap_items * sizeof(*p->items));
    }
    RemoteObjectInfo *it = &p->items[p->n++];
    memset(it, 0, sizeof(*it));
    it->key = xstrndup(key, len);
    stat_info(&st, it);
    ls->last_is_prefix = false;
    return true;
}

static bool list_walk(ListState *ls, int dfd, size_t klen, Err *err);

/* list_dir: the subdirectory entry whose key path is ls->key[0..len) (ending in '/'): skipped,
 * rolled up into one common prefix, or walked. */
static bool list_dir(ListState *ls, int dfd, const char *name, size_t len, Err *err)
{
    const char *dir = ls->key;
    size_t common = len < ls->plen ? len : ls->plen;
    if (memcmp(dir, ls->prefix, common) != 0)
        return true; /* nothing beneath has the prefix */
    if (ls->after != NULL) {
        if (ls->after_is_prefix && starts_with(dir, ls->after))
            return true; /* all beneath was rolled up on an earlier page */
        if (!starts_with(ls->after, dir) && strcmp(dir, ls->after) < 0)
            return true; /* all beneath sorts before the resume point */
    }
    const char *last = list_last_prefix(ls);
    if (last != NULL && starts_with(dir, last))
        return true; /* all beneath rolls up into the page's last common prefix */
    size_t cp = list_rollup(ls, dir, len);
    int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sub < 0) {
        if (errno == ENOENT)
            return true;
        ERRNO_SET(err, ERR_INTERNAL, "cannot open directory \"%s\"", dir);
        return false;
    }
    if (cp == 0)
        return list_walk(ls, sub, len, err);
    /* every key beneath rolls up into dir[0..cp): list it if there is one, without walking */
    char *text = xstrndup(dir, cp);
    bool ok = true;
    if (list_after_resume(ls, text)) {
        int has = dir_has_object(sub);
        if (has < 0) {
            ERRNO_SET(err, ERR_INTERNAL, "cannot read directory \"%s\"", dir);
            ok = false;
        } else if (has > 0 && list_has_room(ls)) {
            list_add_prefix(ls, text, cp);
        }
    } else {
        close(sub);
    }
    free(text);
    return ok;
}

/* list_walk: the entries of the directory dfd (whose key path is ls->key[0..klen)), in key
 * order, until the page is full. Takes ownership of dfd. */
static bool list_walk(ListState *ls, int dfd, size_t klen, Err *err)
{
    if (!remote_opts_check(ls->opts, "list", err)) {
        close(dfd);
        return false;
    }
    DIR *d = fdopendir(dfd);
    if (d == NULL) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot read directory \"%.*s\"", (int)klen, ls->key);
        close(dfd);
        return false;
    }
    DirEntry *v = NULL;
    size_t n = 0;
    if (!read_sorted(d, &v, &n)) {
        ERRNO_SET(err, ERR_INTERNAL, "cannot read directory \"%.*s\"", (int)klen, ls->key);
        closedir(d);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n && ok && !ls->full; i++) {
        size_t slen = strlen(v[i].sort);
        if (klen + slen + 1 > sizeof(ls->key))
            continue; /* deeper than any valid key */
        memcpy(ls->key + klen, v[i].sort, slen + 1);
        size_t nlen = v[i].is_dir ? slen - 1 : slen;
        char name[NAME_MAX + 1];
        memcpy(name, v[i].sort, nlen);
        name[nlen] = '\0';
        ok = v[i].is_dir ? list_dir(ls, dirfd(d), name, klen + slen, err)
                         : list_file(ls, dirfd(d), name, klen + slen, err);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i].sort);
    free(v);
    closedir(d);
    return ok;
}

/* list_parse_token: "k:<key>" or "p:<common prefix>", under the prefix. */
static bool list_parse_token(ListState *ls, const char *token, Err *err)
{
    if (token == NULL)
        return true;
    if ((strncmp(token, "k:", 2) != 0 && strncmp(token, "p:", 2) != 0) ||
        !starts_with(token + 2, ls->prefix)) {
        err_set(err, ERR_BAD_REQUEST, "invalid continuation token for prefix \"%s\"", ls->prefix);
        return false;
    }
    ls->after = token + 2;
    ls->after_is_prefix = token[0] == 'p';
    return true;
}

/* fs_list_page: walk from the deepest directory the prefix fully names (the part up to its last
 * '/'). */
static bool fs_list_page(void *impl, const char *prefix, const char *delimiter, const char *token,
                         size_t max_keys, RemoteListing *page, const RemoteOpts *opts, Err *err)
{
    FsStorage *fs = impl;
    ListState *ls = xcalloc(1, sizeof(*ls));
    ls->prefix = prefix;
    ls->plen = strlen(prefix);
    ls->delim = delimiter;
    ls->dlen = delimiter ? strlen(delimiter) : 0;
    ls->max_keys = max_keys;
    ls->opts = opts;
    ls->page = page;
    bool ok = list_parse_token(ls, token, err);
    const char *slash = strrchr(prefix, '/');
    size_t base = slash == NULL ? 0 : (size_t)(slash - prefix) + 1;
    char dir[PATH_MAX];
    if (ok && !str_printf(dir, sizeof(dir), "%s/%.*s", fs->root, (int)base, prefix)) {
        err_set(err, ERR_BAD_REQUEST, "remote prefix \"%s\": path too long", prefix);
        ok = false;
    }
    if (ok) {
        memcpy(ls->key, prefix, base);
        ls->key[base] = '\0';
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ok = list_walk(ls, dfd, base, err);
        } else if (errno != ENOENT && errno != ENOTDIR) {
            ERRNO_SET(err, ERR_INTERNAL, "cannot open directory %s", dir);
            ok = false;
        }
    }
    if (ok && ls->full) {
        const char *last = ls->last_is_prefix ? list_last_prefix(ls) : page->items[page->n - 1].key;
        size_t len = strlen(last);
        page->next_token = xmalloc(len + 3);
        page->next_token[0] = ls->last_is_prefix ? 'p' : 'k';
        page->next_token[1] = ':';
        memcpy(page->next_token + 2, last, len + 1);
    }
    free(ls);
    return ok;
}

/* ---- deletes ---- */

/* fs_delete_one: unlink, then remove the directories this left empty, up to but not including the
 * root (rmdir fails on a non-empty directory, which ends the climb). */
static bool fs_delete_one(FsStorage *fs, const char *key, Err *err)
{
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

static bool fs_delete_many(void *impl, const char *const *keys, size_t n, RemoteDeleteResult *res,
                           const RemoteOpts *opts, Err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!remote_opts_check(opts, "delete", err))
            return false;
        Err one = {0};
        if (!fs_delete_one(impl, keys[i], &one))
            remote_delete_result_add(res, i, &one);
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

static const RemoteBackendOps FS_OPS = {
    .put = fs_put,
    .put_file = fs_put_file,
    .get = fs_get,
    .head = fs_head,
    .list_page = fs_list_page,
    .delete_many = fs_delete_many,
    .free_impl = fs_free_impl,
};

bool remote_fs_backend_open(const RemoteStorageUrl *url, const RemoteBackendOps **ops, void **impl,
                            Err *err)
{
    const char *root_dir = url->path;
    if (root_dir[0] != '/') {
        err_set(err, ERR_BAD_REQUEST, "remote storage root \"%s\" is not an absolute path",
                root_dir);
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
