/*
 * remote_storage.c: the backend-independent half of remote storage (remote_storage.h): URL
 * parsing and backend choice, key and prefix validation, and dispatch to the backend's ops.
 * delete_prefix is built here from list + delete so that every backend gets it for free.
 */
#include <stdlib.h>
#include <string.h>

#include "shared/err.h"
#include "shared/fsutil.h"
#include "shared/str.h"

#include "shared/remote_storage.h"

/* Keys longer than this are refused (S3's limit, and well under PATH_MAX for the fs backend). */
#define REMOTE_KEY_MAX 1024

struct RemoteStorage {
    char *url;
    const RemoteStorageOps *ops;
    void *impl;
};

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

/* parse_s3_url: "s3://bucket[/prefix]" with S3's bucket naming rules (lowercase, digits, '.',
 * '-', 3..63 chars, starting and ending with a letter or digit). */
static bool parse_s3_url(const char *url, const char *rest, RemoteStorageUrl *out, Err *err)
{
    size_t blen = strcspn(rest, "/");
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
    if (!str_copy(out->prefix, sizeof(out->prefix), prefix)) {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": prefix too long", url);
        return false;
    }
    size_t plen = strlen(out->prefix);
    while (plen > 0 && out->prefix[plen - 1] == '/')
        out->prefix[--plen] = '\0';
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

bool remote_storage_url_check_supported(const RemoteStorageUrl *rs, Err *err)
{
    switch (rs->kind) {
    case REMOTE_STORAGE_LOCAL_FS:
        return true;
    case REMOTE_STORAGE_S3:
        err_set(err, ERR_PRECONDITION_FAILED, "s3 remote storage is not supported yet");
        return false;
    case REMOTE_STORAGE_KIND_COUNT:
        break;
    }
    err_set(err, ERR_INTERNAL, "unknown remote storage kind %d", (int)rs->kind);
    return false;
}

bool remote_storage_open(const char *url, RemoteStorage **out, Err *err)
{
    *out = NULL;
    if (url == NULL || url[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "empty remote storage URL (expected file:///abs/path)");
        return false;
    }
    const RemoteStorageOps *ops = NULL;
    void *impl = NULL;
    RemoteStorageUrl *parsed = xcalloc(1, sizeof(*parsed)); /* PATH_MAX-sized: not on the stack */
    bool ok = remote_storage_url_parse(url, parsed, err) &&
              remote_storage_url_check_supported(parsed, err) &&
              remote_storage_fs_new(parsed->path, &ops, &impl, err);
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

bool remote_put(RemoteStorage *rs, const char *key, const void *data, size_t len, Err *err)
{
    if (!remote_key_validate(key, err))
        return false;
    return rs->ops->put(rs->impl, key, data, len, err);
}

bool remote_put_file(RemoteStorage *rs, const char *key, const char *local_path, Err *err)
{
    if (!remote_key_validate(key, err))
        return false;
    return rs->ops->put_file(rs->impl, key, local_path, err);
}

bool remote_get(RemoteStorage *rs, const char *key, char **data, size_t *len, Err *err)
{
    *data = NULL;
    *len = 0;
    if (!remote_key_validate(key, err))
        return false;
    return rs->ops->get(rs->impl, key, data, len, err);
}

bool remote_get_range(RemoteStorage *rs, const char *key, uint64_t offset, size_t len, void *buf,
                      size_t *got, Err *err)
{
    *got = 0;
    if (!remote_key_validate(key, err))
        return false;
    return rs->ops->get_range(rs->impl, key, offset, len, buf, got, err);
}

bool remote_get_to_file(RemoteStorage *rs, const char *key, const char *local_path, Err *err)
{
    if (!remote_key_validate(key, err))
        return false;
    return rs->ops->get_to_file(rs->impl, key, local_path, err);
}

bool remote_head(RemoteStorage *rs, const char *key, RemoteObjectInfo *info, Err *err)
{
    memset(info, 0, sizeof(*info));
    if (!remote_key_validate(key, err))
        return false;
    return rs->ops->head(rs->impl, key, info, err);
}

bool remote_list(RemoteStorage *rs, const char *prefix, RemoteListing *out, Err *err)
{
    out->items = NULL;
    out->n = 0;
    if (!prefix_validate(prefix, err))
        return false;
    return rs->ops->list(rs->impl, prefix, out, err);
}

void remote_listing_free(RemoteListing *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].key);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

bool remote_delete(RemoteStorage *rs, const char *key, Err *err)
{
    if (!remote_key_validate(key, err))
        return false;
    return rs->ops->delete_key(rs->impl, key, err);
}

/* remote_delete_prefix: list then delete one by one. Keys put concurrently under the prefix
 * after the listing survive; callers delete prefixes of timelines or tenants nobody writes any
 * more. The first failure stops the walk (what was deleted stays deleted; a retry finishes). */
bool remote_delete_prefix(RemoteStorage *rs, const char *prefix, Err *err)
{
    if (prefix == NULL || prefix[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "remote_delete_prefix: the prefix must not be empty");
        return false;
    }
    RemoteListing l;
    if (!remote_list(rs, prefix, &l, err))
        return false;
    bool ok = true;
    for (size_t i = 0; i < l.n && ok; i++)
        ok = rs->ops->delete_key(rs->impl, l.items[i].key, err);
    remote_listing_free(&l);
    return ok;
}
