/*
 * remote_storage.c: the backend-independent half of remote storage (remote_storage.h): URL
 * parsing, the table of backends, options, validation of keys, prefixes and counts, and
 * everything built on the backends' few ops (remote_storage_backend.h) so that every backend gets
 * it for free: the buffer, fixed-buffer and file sinks over get, listing all pages, delete as a
 * delete_many of one, delete_prefix as pages of list_page + delete_many.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"
#include "shared/throttle.h"
#include "shared/units.h"

#include "shared/remote_storage.h"
#include "shared/remote_storage_backend.h"

/* Keys longer than this are refused (S3's limit, and well under PATH_MAX for the fs backend). */
#define REMOTE_KEY_MAX 1024

struct RemoteStorage {
    char *url;
    const RemoteBackendOps *ops;
    void *impl;
};

/* The backends, one row per URL kind; a kind without a row is parsed but refused. */
static const RemoteBackend BACKENDS[] = {
    {REMOTE_STORAGE_LOCAL_FS, remote_fs_backend_open},
    {REMOTE_STORAGE_S3, remote_s3_backend_open},
};

/* Scheme names of the kinds, for messages. */
static const char *const KIND_SCHEMES[REMOTE_STORAGE_KIND_COUNT] = {
    [REMOTE_STORAGE_LOCAL_FS] = "file",
    [REMOTE_STORAGE_S3] = "s3",
};

/* Temporary files of remote_get_to_file: "<path>.tmp.<pid>.<n>". */
static _Atomic unsigned long g_download_seq;

static bool key_check(const char *key, const char *what, Err *err);

/* parse_file_url: the part after "file://" must be an absolute path. A host ("file://x/y") is
 * refused rather than silently read as a relative path, and "." / ".." segments are refused
 * because the root is compared and logged as text. */
static bool parse_file_url(const char *url, const char *rest, RemoteStorageUrl *out, Err *err)
{
    if (rest[0] != '/') {
        err_set(err, ERR_BAD_REQUEST,
                "\"%s\": expected file:///absolute/path (a file URL has no host part)", url);
        return false;
    }
    if (!str_copy(out->path, sizeof(out->path), rest)) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": path too long", url);
        return false;
    }
    fs_strip_trailing_slashes(out->path);
    if (strcmp(out->path, "/") == 0) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": the root directory cannot be remote storage", url);
        return false;
    }
    const char *seg = out->path + 1;
    while (*seg) {
        size_t len = strcspn(seg, "/");
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
            err_set(err, ERR_BAD_REQUEST, "\"%s\": \".\" and \"..\" are not allowed in the path",
                    url);
            return false;
        }
        seg += len;
        while (*seg == '/')
            seg++;
    }
    for (const char *p = out->path; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            err_set(err, ERR_BAD_REQUEST, "\"%s\": control characters in the path", url);
            return false;
        }
    }
    out->kind = REMOTE_STORAGE_LOCAL_FS;
    return true;
}

/* parse_s3_endpoint: http(s)://host[:port] with nothing after (path-style requests go to
 * <endpoint>/<bucket>/<key>). */
static bool parse_s3_endpoint(const char *url, const char *value, RemoteStorageUrl *out, Err *err)
{
    const char *host = NULL;
    if (str_has_prefix(value, "http://"))
        host = value + strlen("http://");
    else if (str_has_prefix(value, "https://"))
        host = value + strlen("https://");
    if (host == NULL || host[0] == '\0' || host[0] == ':' ||
        strcspn(host, "/?#@ ") != strlen(host)) {
        err_set(err, ERR_BAD_REQUEST,
                "\"%s\": endpoint must be http://host[:port] or https://host[:port] (no path)",
                url);
        return false;
    }
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            err_set(err, ERR_BAD_REQUEST, "\"%s\": control characters in the endpoint", url);
            return false;
        }
    }
    if (!str_copy(out->endpoint, sizeof(out->endpoint), value)) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": endpoint too long", url);
        return false;
    }
    return true;
}

/* parse_s3_param: one "name=value" of the query. */
static bool parse_s3_param(const char *url, const char *param, size_t n, RemoteStorageUrl *out,
                           Err *err)
{
    char buf[REMOTE_STORAGE_URL_MAX];
    if (n >= sizeof(buf)) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": query parameter too long", url);
        return false;
    }
    memcpy(buf, param, n);
    buf[n] = '\0';
    char *eq = strchr(buf, '=');
    if (eq == NULL || eq[1] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": query parameter \"%s\" has no value", url, buf);
        return false;
    }
    *eq = '\0';
    const char *value = eq + 1;
    if (strcmp(buf, "region") == 0) {
        for (const char *p = value; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
                err_set(err, ERR_BAD_REQUEST, "\"%s\": invalid region \"%s\"", url, value);
                return false;
            }
        }
        if (!str_copy(out->region, sizeof(out->region), value)) {
            err_set(err, ERR_BAD_REQUEST, "\"%s\": region too long", url);
            return false;
        }
        return true;
    }
    if (strcmp(buf, "endpoint") == 0)
        return parse_s3_endpoint(url, value, out, err);
    uint64_t *size = strcmp(buf, "multipart_threshold") == 0 ? &out->multipart_threshold
                     : strcmp(buf, "part_size") == 0         ? &out->part_size
                                                             : NULL;
    if (size == NULL) {
        err_set(err, ERR_BAD_REQUEST,
                "\"%s\": unknown query parameter \"%s\" (expected region, endpoint, "
                "multipart_threshold, part_size)",
                url, buf);
        return false;
    }
    if (!bytes_parse(value, size, err)) {
        err_prefix(err, "\"%s\": %s: ", url, buf);
        return false;
    }
    return true;
}

/* parse_s3_url: "s3://bucket[/prefix][?query]" with S3's bucket naming rules (lowercase, digits,
 * '.', '-', 3..63 chars, starting and ending with a letter or digit). */
static bool parse_s3_url(const char *url, const char *rest, RemoteStorageUrl *out, Err *err)
{
    size_t blen = strcspn(rest, "/?");
    if (blen < 3 || blen > 63) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": bucket name must be 3..63 characters", url);
        return false;
    }
    for (size_t i = 0; i < blen; i++) {
        char c = rest[i];
        bool edge = (i == 0 || i == blen - 1);
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (edge || (c != '.' && c != '-'))) {
            err_set(err, ERR_BAD_REQUEST,
                    "\"%s\": invalid bucket name (lowercase letters, digits, '.', '-')", url);
            return false;
        }
    }
    memcpy(out->bucket, rest, blen);
    out->bucket[blen] = '\0';
    const char *prefix = rest + blen;
    while (*prefix == '/')
        prefix++;
    size_t plen = strcspn(prefix, "?");
    if (plen >= sizeof(out->prefix)) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": prefix too long", url);
        return false;
    }
    memcpy(out->prefix, prefix, plen);
    out->prefix[plen] = '\0';
    while (plen > 0 && out->prefix[plen - 1] == '/')
        out->prefix[--plen] = '\0';
    if (plen > 0 && !key_check(out->prefix, "prefix", err)) {
        err_prefix(err, "\"%s\": ", url);
        return false;
    }
    str_copy(out->region, sizeof(out->region), "us-east-1");
    out->multipart_threshold = REMOTE_S3_DEFAULT_MULTIPART_THRESHOLD;
    out->part_size = REMOTE_S3_DEFAULT_PART_SIZE;
    const char *query =
        prefix[strcspn(prefix, "?")] == '?' ? prefix + strcspn(prefix, "?") + 1 : NULL;
    while (query != NULL && *query != '\0') {
        size_t n = strcspn(query, "&");
        if (n > 0 && !parse_s3_param(url, query, n, out, err))
            return false;
        query += n;
        if (*query == '&')
            query++;
    }
    if (out->part_size < REMOTE_S3_MIN_PART_SIZE) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": part_size must be at least 5MiB (S3's minimum)",
                url);
        return false;
    }
    out->kind = REMOTE_STORAGE_S3;
    return true;
}

bool remote_storage_url_parse(const char *url, RemoteStorageUrl *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (url == NULL || url[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "empty URL (expected file:///abs/path)");
        return false;
    }
    if (str_has_prefix(url, "file://"))
        return parse_file_url(url, url + strlen("file://"), out, err);
    if (str_has_prefix(url, "s3://"))
        return parse_s3_url(url, url + strlen("s3://"), out, err);
    const char *sep = strstr(url, "://");
    if (sep != NULL) {
        err_set(err, ERR_BAD_REQUEST,
                "\"%s\": unsupported scheme \"%.*s\" (expected file:///abs/path or "
                "s3://bucket/prefix)",
                url, (int)(sep - url), url);
        return false;
    }
    err_set(err, ERR_BAD_REQUEST,
            "\"%s\" is not a URL (expected file:///abs/path or s3://bucket/prefix)", url);
    return false;
}

static const RemoteBackend *backend_for(RemoteStorageKind kind)
{
    for (size_t i = 0; i < sizeof(BACKENDS) / sizeof(BACKENDS[0]); i++) {
        if (BACKENDS[i].kind == kind)
            return &BACKENDS[i];
    }
    return NULL;
}

bool remote_storage_url_check_supported(const RemoteStorageUrl *url, Err *err)
{
    if ((int)url->kind < 0 || url->kind >= REMOTE_STORAGE_KIND_COUNT) {
        err_set(err, ERR_INTERNAL, "unknown remote storage kind %d", (int)url->kind);
        return false;
    }
    if (backend_for(url->kind) == NULL) {
        err_set(err, ERR_PRECONDITION_FAILED, "%s remote storage is not supported yet",
                KIND_SCHEMES[url->kind]);
        return false;
    }
    return true;
}

bool remote_storage_open(const char *url, RemoteStorage **out, Err *err)
{
    *out = NULL;
    if (url == NULL || url[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "empty remote storage URL (expected file:///abs/path)");
        return false;
    }
    const RemoteBackendOps *ops = NULL;
    void *impl = NULL;
    RemoteStorageUrl *parsed = xcalloc(1, sizeof(*parsed)); /* PATH_MAX-sized: not on the stack */
    bool ok = remote_storage_url_parse(url, parsed, err) &&
              remote_storage_url_check_supported(parsed, err) &&
              backend_for(parsed->kind)->open(parsed, &ops, &impl, err);
    free(parsed);
    if (!ok)
        return false;
    RemoteStorage *rs = xcalloc(1, sizeof(*rs));
    rs->url = xstrdup(url);
    rs->ops = ops;
    rs->impl = impl;
    *out = rs;
    return true;
}

void remote_storage_free(RemoteStorage *rs)
{
    if (rs == NULL)
        return;
    if (rs->ops != NULL && rs->ops->free_impl != NULL)
        rs->ops->free_impl(rs->impl);
    free(rs->url);
    free(rs);
}

const char *remote_storage_url(const RemoteStorage *rs)
{
    return rs->url;
}

/* ---- options ---- */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t remote_deadline_after_ms(int64_t timeout_ms)
{
    return monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

bool remote_opts_check(const RemoteOpts *opts, const char *what, Err *err)
{
    if (opts == NULL)
        return true;
    if (opts->cancel != NULL && atomic_load(opts->cancel)) {
        err_set(err, ERR_UNAVAILABLE, "remote storage: %s cancelled", what);
        return false;
    }
    if (opts->deadline_ms > 0 && monotonic_ms() >= opts->deadline_ms) {
        err_set(err, ERR_TIMEOUT, "remote storage: %s timed out (deadline passed)", what);
        return false;
    }
    return true;
}

/* ---- validation ---- */

/* key_check: the segment rules shared by keys and prefixes. what names the input in messages. */
static bool key_check(const char *key, const char *what, Err *err)
{
    if (key == NULL || key[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "empty remote %s", what);
        return false;
    }
    size_t len = strlen(key);
    if (len > REMOTE_KEY_MAX) {
        err_set(err, ERR_BAD_REQUEST, "remote %s is %zu bytes, over the limit of %d", what, len,
                REMOTE_KEY_MAX);
        return false;
    }
    if (key[0] == '/') {
        err_set(err, ERR_BAD_REQUEST, "invalid remote %s \"%s\": leading '/'", what, key);
        return false;
    }
    for (const char *p = key; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            err_set(err, ERR_BAD_REQUEST, "invalid remote %s: control character at position %zu",
                    what, (size_t)(p - key));
            return false;
        }
    }
    const char *seg = key;
    for (;;) {
        size_t n = strcspn(seg, "/");
        if (n == 0) {
            err_set(err, ERR_BAD_REQUEST, "invalid remote %s \"%s\": empty path segment", what,
                    key);
            return false;
        }
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            err_set(err, ERR_BAD_REQUEST, "invalid remote %s \"%s\": \"%.*s\" segment", what, key,
                    (int)n, seg);
            return false;
        }
        if (seg[n] == '\0')
            break;
        seg += n + 1;
    }
    return true;
}

bool remote_key_validate(const char *key, Err *err)
{
    return key_check(key, "key", err);
}

/* prefix_validate: "" (everything), or a key, or a key followed by one '/' (a "directory"). */
static bool prefix_validate(const char *prefix, Err *err)
{
    if (prefix == NULL) {
        err_set(err, ERR_BAD_REQUEST, "missing remote prefix");
        return false;
    }
    size_t n = strlen(prefix);
    if (n == 0)
        return true;
    if (prefix[n - 1] != '/')
        return key_check(prefix, "prefix", err);
    char *trimmed = xstrndup(prefix, n - 1);
    bool ok = key_check(trimmed, "prefix", err);
    free(trimmed);
    return ok;
}

/* ---- writes ---- */

/* errno_set: err = "<what> <path>: <strerror(errno)>", thread-safe. */
static void errno_set(Err *err, const char *what, const char *path)
{
    char buf[128];
    int e = errno;
    err_set(err, ERR_INTERNAL, "cannot %s %s: %s", what, path, strerror_r(e, buf, sizeof(buf)));
}

bool remote_put(RemoteStorage *rs, const char *key, const void *data, size_t len, Err *err)
{
    return remote_put_ex(rs, key, data, len, NULL, err);
}

bool remote_put_ex(RemoteStorage *rs, const char *key, const void *data, size_t len,
                   const RemoteOpts *opts, Err *err)
{
    if (!remote_key_validate(key, err) || !remote_opts_check(opts, "put", err))
        return false;
    return rs->ops->put(rs->impl, key, data, len, opts, err);
}

bool remote_put_file(RemoteStorage *rs, const char *key, const char *local_path, Err *err)
{
    return remote_put_file_ex(rs, key, local_path, NULL, err);
}

bool remote_put_file_ex(RemoteStorage *rs, const char *key, const char *local_path,
                        const RemoteOpts *opts, Err *err)
{
    if (!remote_key_validate(key, err) || !remote_opts_check(opts, "put", err))
        return false;
    int src = open(local_path, O_RDONLY | O_CLOEXEC);
    if (src < 0) {
        if (errno == ENOENT)
            err_set(err, ERR_NOT_FOUND, "%s: no such file", local_path);
        else
            errno_set(err, "open", local_path);
        return false;
    }
    bool ok = rs->ops->put_file(rs->impl, key, src, opts, err);
    close(src);
    return ok;
}

/* ---- reads ---- */

/* A sink that hands each chunk on, then takes its bytes from the call's throttle. */
typedef struct ThrottledSink {
    RemoteSink sink;
    void *ctx;
    const RemoteOpts *opts;
} ThrottledSink;

static bool throttled_sink(void *ctx, const void *chunk, size_t len, Err *err)
{
    ThrottledSink *t = ctx;
    if (!t->sink(t->ctx, chunk, len, err))
        return false;
    if (!throttle_take(t->opts->throttle, len, t->opts->cancel, t->opts->deadline_ms))
        return remote_opts_check(t->opts, "get", err);
    return true;
}

bool remote_get_stream(RemoteStorage *rs, const char *key, const RemoteGetReq *req, RemoteSink sink,
                       void *ctx, RemoteGetResult *res, const RemoteOpts *opts, Err *err)
{
    static const RemoteGetReq WHOLE = {0};
    RemoteGetResult local;
    if (res == NULL)
        res = &local;
    memset(res, 0, sizeof(*res));
    if (!remote_key_validate(key, err) || !remote_opts_check(opts, "get", err))
        return false;
    if (opts != NULL && opts->throttle != NULL) {
        ThrottledSink t = {.sink = sink, .ctx = ctx, .opts = opts};
        return rs->ops->get(rs->impl, key, req != NULL ? req : &WHOLE, throttled_sink, &t, res,
                            opts, err);
    }
    return rs->ops->get(rs->impl, key, req != NULL ? req : &WHOLE, sink, ctx, res, opts, err);
}

/* A growing buffer, NUL-terminated when done. */
typedef struct BufSink {
    char *data;
    size_t len, cap;
} BufSink;

static bool buf_sink(void *ctx, const void *chunk, size_t len, Err *err)
{
    (void)err;
    BufSink *b = ctx;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, chunk, len);
    b->len += len;
    return true;
}

bool remote_get(RemoteStorage *rs, const char *key, char **data, size_t *len, Err *err)
{
    return remote_get_ex(rs, key, NULL, data, len, NULL, NULL, err);
}

bool remote_get_ex(RemoteStorage *rs, const char *key, const RemoteGetReq *req, char **data,
                   size_t *len, RemoteGetResult *res, const RemoteOpts *opts, Err *err)
{
    RemoteGetResult local;
    if (res == NULL)
        res = &local;
    *data = NULL;
    *len = 0;
    BufSink b = {0};
    if (!remote_get_stream(rs, key, req, buf_sink, &b, res, opts, err)) {
        free(b.data);
        return false;
    }
    if (res->not_modified)
        return true;
    if (b.data == NULL)
        b.data = xmalloc(1); /* an empty object */
    b.data[b.len] = '\0';
    *data = b.data;
    *len = b.len;
    return true;
}

/* A caller's buffer of fixed size. */
typedef struct FixedSink {
    char *buf;
    size_t len, cap;
} FixedSink;

static bool fixed_sink(void *ctx, const void *chunk, size_t len, Err *err)
{
    FixedSink *f = ctx;
    if (len > f->cap - f->len) {
        err_set(err, ERR_INTERNAL, "remote storage backend returned more than the range asked");
        return false;
    }
    memcpy(f->buf + f->len, chunk, len);
    f->len += len;
    return true;
}

bool remote_get_range(RemoteStorage *rs, const char *key, uint64_t offset, size_t len, void *buf,
                      size_t *got, Err *err)
{
    *got = 0;
    if (len == 0) { /* a request's len 0 means "to the end": ask whether the object exists */
        RemoteObjectInfo info;
        return remote_head(rs, key, &info, err);
    }
    RemoteGetReq req = {.offset = offset, .len = len};
    FixedSink f = {.buf = buf, .cap = len};
    if (!remote_get_stream(rs, key, &req, fixed_sink, &f, NULL, NULL, err))
        return false;
    *got = f.len;
    return true;
}

/* A download into a temporary file, created (with its directory) at the first chunk, so that a
 * missing object leaves nothing behind. */
typedef struct FileSink {
    int fd;
    bool created; /* tmp exists: unlink it unless renamed */
    char tmp[PATH_MAX];
    char dir[PATH_MAX];
} FileSink;

static bool file_sink_open(FileSink *f, Err *err)
{
    if (f->fd >= 0)
        return true;
    if (!fs_mkdir_p(f->dir, 0755, err))
        return false;
    f->fd = open(f->tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        errno_set(err, "create", f->tmp);
        return false;
    }
    f->created = true;
    return true;
}

static bool file_sink(void *ctx, const void *chunk, size_t len, Err *err)
{
    FileSink *f = ctx;
    if (!file_sink_open(f, err))
        return false;
    if (!fs_write_all(f->fd, chunk, len)) {
        errno_set(err, "write", f->tmp);
        return false;
    }
    return true;
}

bool remote_get_to_file(RemoteStorage *rs, const char *key, const char *local_path, Err *err)
{
    return remote_get_to_file_ex(rs, key, local_path, NULL, err);
}

/* remote_get_to_file_ex: stream into "<local_path>.tmp.<pid>.<n>", fsync, rename, fsync the
 * directory. */
bool remote_get_to_file_ex(RemoteStorage *rs, const char *key, const char *local_path,
                           const RemoteOpts *opts, Err *err)
{
    FileSink *f = xcalloc(1, sizeof(*f)); /* two PATH_MAX buffers: not on the stack */
    f->fd = -1;
    unsigned long seq = atomic_fetch_add(&g_download_seq, 1);
    bool ok = false;
    if (!str_printf(f->tmp, sizeof(f->tmp), "%s.tmp.%ld.%lu", local_path, (long)getpid(), seq) ||
        !fs_dir_of(local_path, f->dir, sizeof(f->dir))) {
        err_set(err, ERR_BAD_REQUEST, "path too long: %s", local_path);
        goto cleanup;
    }
    if (!remote_get_stream(rs, key, NULL, file_sink, f, NULL, opts, err) ||
        !file_sink_open(f, err)) /* an empty object had no chunk */
        goto cleanup;
    if (fsync(f->fd) != 0) {
        errno_set(err, "fsync", f->tmp);
        goto cleanup;
    }
    int rc = close(f->fd);
    f->fd = -1;
    if (rc != 0) {
        errno_set(err, "close", f->tmp);
        goto cleanup;
    }
    if (rename(f->tmp, local_path) != 0) {
        errno_set(err, "rename to the final name", f->tmp);
        goto cleanup;
    }
    f->created = false; /* renamed: nothing to unlink */
    ok = fs_fsync_dir(f->dir, err);

cleanup:
    if (f->fd >= 0)
        close(f->fd);
    if (f->created)
        unlink(f->tmp);
    free(f);
    return ok;
}

bool remote_head(RemoteStorage *rs, const char *key, RemoteObjectInfo *info, Err *err)
{
    return remote_head_ex(rs, key, info, NULL, err);
}

bool remote_head_ex(RemoteStorage *rs, const char *key, RemoteObjectInfo *info,
                    const RemoteOpts *opts, Err *err)
{
    memset(info, 0, sizeof(*info));
    if (!remote_key_validate(key, err) || !remote_opts_check(opts, "head", err))
        return false;
    return rs->ops->head(rs->impl, key, info, opts, err);
}

/* ---- listings ---- */

bool remote_list_page(RemoteStorage *rs, const char *prefix, const char *delimiter,
                      const char *continuation_token, size_t max_keys, RemoteListing *page,
                      const RemoteOpts *opts, Err *err)
{
    memset(page, 0, sizeof(*page));
    if (!prefix_validate(prefix, err))
        return false;
    if (delimiter != NULL && delimiter[0] == '\0')
        delimiter = NULL;
    if (continuation_token != NULL && continuation_token[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "empty continuation token");
        return false;
    }
    if (max_keys == 0 || max_keys > REMOTE_LIST_MAX_KEYS)
        max_keys = REMOTE_LIST_MAX_KEYS;
    if (!remote_opts_check(opts, "list", err))
        return false;
    if (!rs->ops->list_page(rs->impl, prefix, delimiter, continuation_token, max_keys, page, opts,
                            err)) {
        remote_listing_free(page);
        return false;
    }
    return true;
}

/* append: move src[0..n) to the end of *dst (length *dst_n). */
static void append(void **dst, size_t *dst_n, const void *src, size_t n, size_t elem)
{
    if (n == 0)
        return;
    *dst = xrealloc(*dst, (*dst_n + n) * elem);
    memcpy((char *)*dst + *dst_n * elem, src, n * elem);
    *dst_n += n;
}

bool remote_list_all(RemoteStorage *rs, const char *prefix, const char *delimiter,
                     RemoteListing *out, const RemoteOpts *opts, Err *err)
{
    memset(out, 0, sizeof(*out));
    char *token = NULL;
    for (;;) {
        RemoteListing page;
        bool ok =
            remote_list_page(rs, prefix, delimiter, token, REMOTE_LIST_MAX_KEYS, &page, opts, err);
        free(token);
        if (!ok) {
            remote_listing_free(out);
            return false;
        }
        append((void **)&out->items, &out->n, page.items, page.n, sizeof(*page.items));
        append((void **)&out->prefixes, &out->n_prefixes, page.prefixes, page.n_prefixes,
               sizeof(*page.prefixes));
        free(page.items);
        free(page.prefixes);
        token = page.next_token;
        if (token == NULL)
            return true;
    }
}

bool remote_list(RemoteStorage *rs, const char *prefix, RemoteListing *out, Err *err)
{
    return remote_list_all(rs, prefix, NULL, out, NULL, err);
}

void remote_listing_free(RemoteListing *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].key);
    free(l->items);
    for (size_t i = 0; i < l->n_prefixes; i++)
        free(l->prefixes[i]);
    free(l->prefixes);
    free(l->next_token);
    memset(l, 0, sizeof(*l));
}

/* ---- deletes ---- */

void remote_delete_result_add(RemoteDeleteResult *res, size_t index, const Err *err)
{
    res->failures = xrealloc(res->failures, (res->n_failures + 1) * sizeof(*res->failures));
    res->failures[res->n_failures].index = index;
    res->failures[res->n_failures].err = *err;
    res->n_failures++;
}

void remote_delete_result_free(RemoteDeleteResult *res)
{
    if (res == NULL)
        return;
    free(res->failures);
    res->failures = NULL;
    res->n_failures = 0;
}

bool remote_delete(RemoteStorage *rs, const char *key, Err *err)
{
    return remote_delete_many(rs, &key, 1, NULL, NULL, err);
}

bool remote_delete_many(RemoteStorage *rs, const char *const *keys, size_t n,
                        RemoteDeleteResult *res, const RemoteOpts *opts, Err *err)
{
    if (res != NULL)
        memset(res, 0, sizeof(*res));
    if (n > REMOTE_DELETE_MAX_KEYS) {
        err_set(err, ERR_BAD_REQUEST, "%zu keys to delete in one request, over the limit of %d", n,
                REMOTE_DELETE_MAX_KEYS);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!remote_key_validate(keys[i], err))
            return false;
    }
    if (n == 0)
        return true;
    if (!remote_opts_check(opts, "delete", err))
        return false;
    RemoteDeleteResult r = {0};
    if (!rs->ops->delete_many(rs->impl, keys, n, &r, opts, err)) {
        remote_delete_result_free(&r);
        return false;
    }
    if (r.n_failures == 0)
        return true;
    const RemoteDeleteFailure *first = &r.failures[0];
    if (err != NULL) {
        *err = first->err;
        if (r.n_failures > 1)
            err_prefix(err, "%zu of %zu keys not deleted, first \"%s\": ", r.n_failures, n,
                       keys[first->index]);
    }
    if (res != NULL)
        *res = r;
    else
        remote_delete_result_free(&r);
    return false;
}

bool remote_delete_prefix(RemoteStorage *rs, const char *prefix, Err *err)
{
    return remote_delete_prefix_ex(rs, prefix, NULL, err);
}

/* remote_delete_prefix_ex: one page, its deletion, the next page. Keys put concurrently under the
 * prefix behind the listing's position survive; callers delete prefixes of timelines or tenants
 * nobody writes any more. The first failure stops the walk (what was deleted stays deleted; a
 * retry finishes). */
bool remote_delete_prefix_ex(RemoteStorage *rs, const char *prefix, const RemoteOpts *opts,
                             Err *err)
{
    if (prefix == NULL || prefix[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "remote_delete_prefix: the prefix must not be empty");
        return false;
    }
    const char **keys = xmalloc(REMOTE_LIST_MAX_KEYS * sizeof(*keys));
    char *token = NULL;
    bool ok;
    for (;;) {
        RemoteListing page;
        ok = remote_list_page(rs, prefix, NULL, token, REMOTE_LIST_MAX_KEYS, &page, opts, err);
        free(token);
        token = NULL;
        if (!ok)
            break;
        for (size_t i = 0; i < page.n; i++)
            keys[i] = page.items[i].key;
        ok = remote_delete_many(rs, keys, page.n, NULL, opts, err);
        token = page.next_token;
        page.next_token = NULL;
        remote_listing_free(&page);
        if (!ok || token == NULL)
            break;
    }
    free(token);
    free(keys);
    return ok;
}
