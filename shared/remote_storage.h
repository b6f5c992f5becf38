/*
 * remote_storage.h: the object store interface (pageserver.md "Remote storage layout").
 *
 * Objects are named by keys such as "tenants/<tsid>/timelines/<tl>/index_part.json-00000001":
 * '/'-separated, no leading '/', no empty, "." or ".." segments (anything else is ERR_BAD_REQUEST).
 * A backend is chosen by URL: "file:///abs/path" (the embedded default: a local directory) now,
 * "s3://bucket/prefix" later; callers only see this interface.
 *
 * Every call blocks (disk or network I/O): call them from worker-pool threads (or at startup before
 * the event loop runs), never on the loop thread. A RemoteStorage is safe to use from several
 * threads at once.
 *
 * Semantics every backend guarantees:
 *   - put is atomic and durable: a reader sees the whole old object, the whole new one, or absent,
 *     never a partial one; when put returns true the object survives a crash.
 *   - get of an absent key fails with ERR_NOT_FOUND; delete of an absent key succeeds.
 *   - list returns every key under a prefix (recursively), sorted bytewise.
 */
#ifndef SHARED_REMOTE_STORAGE_H
#define SHARED_REMOTE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>

#include "shared/err.h"

typedef struct RemoteStorage RemoteStorage;

typedef struct RemoteObjectInfo {
    char *key; /* owned by the listing */
    uint64_t size;
    int64_t mtime_ms; /* last modification, unix milliseconds */
} RemoteObjectInfo;

typedef struct RemoteListing {
    RemoteObjectInfo *items;
    size_t n;
} RemoteListing;

/* The operations a backend implements; remote_storage.c validates keys and dispatches. */
typedef struct RemoteStorageOps {
    const char *scheme; /* "file", "s3" */
    bool (*put)(void *impl, const char *key, const void *data, size_t len, Err *err);
    bool (*put_file)(void *impl, const char *key, const char *local_path, Err *err);
    bool (*get)(void *impl, const char *key, char **data, size_t *len, Err *err);
    bool (*get_range)(void *impl, const char *key, uint64_t offset, size_t len, void *buf,
                      size_t *got, Err *err);
    bool (*get_to_file)(void *impl, const char *key, const char *local_path, Err *err);
    bool (*head)(void *impl, const char *key, RemoteObjectInfo *info, Err *err);
    bool (*list)(void *impl, const char *prefix, RemoteListing *out, Err *err);
    bool (*delete_key)(void *impl, const char *key, Err *err);
    void (*free_impl)(void *impl);
} RemoteStorageOps;

/* The parsed form of a remote storage URL. */
typedef enum RemoteStorageKind {
    REMOTE_STORAGE_LOCAL_FS, /* file:///abs/path */
    REMOTE_STORAGE_S3,       /* s3://bucket/prefix (parsed, not supported yet) */
    REMOTE_STORAGE_KIND_COUNT
} RemoteStorageKind;

#define REMOTE_STORAGE_S3_BUCKET_MAX 64 /* 3..63 chars + NUL */
#define REMOTE_STORAGE_URL_MAX       1024

typedef struct RemoteStorageUrl {
    RemoteStorageKind kind;
    char path[PATH_MAX];                       /* LOCAL_FS: absolute, no trailing slash */
    char bucket[REMOTE_STORAGE_S3_BUCKET_MAX]; /* S3 */
    char prefix[REMOTE_STORAGE_URL_MAX];       /* S3: without leading/trailing '/', may be empty */
} RemoteStorageUrl;

/* remote_storage_url_parse: the syntax of a remote storage URL: "file:///abs/path" (no host,
 * absolute path without "." or ".." segments or control characters, not "/"; trailing '/'
 * dropped) and "s3://bucket[/prefix]" (bucket 3..63 of [a-z0-9.-]). Anything else ->
 * ERR_BAD_REQUEST naming what was wrong. The one parser for daemon flags and for opening. */
bool remote_storage_url_parse(const char *url, RemoteStorageUrl *out, Err *err) MUST_CHECK;
/* remote_storage_url_check_supported: only the local file system for now; s3 ->
 * ERR_PRECONDITION_FAILED "s3 remote storage is not supported yet". */
bool remote_storage_url_check_supported(const RemoteStorageUrl *url, Err *err) MUST_CHECK;

/* remote_storage_open: a backend for the URL. The caller frees it with remote_storage_free. */
bool remote_storage_open(const char *url, RemoteStorage **out, Err *err) MUST_CHECK;
void remote_storage_free(RemoteStorage *rs);
const char *remote_storage_url(const RemoteStorage *rs);

/* remote_put: store len bytes under key, atomically and durably. */
bool remote_put(RemoteStorage *rs, const char *key, const void *data, size_t len,
                Err *err) MUST_CHECK;
/* remote_put_file: store the contents of a local file (large layers) under key. */
bool remote_put_file(RemoteStorage *rs, const char *key, const char *local_path,
                     Err *err) MUST_CHECK;
/* remote_get: the whole object in a new buffer (NUL-terminated for convenience) the caller frees.
 */
bool remote_get(RemoteStorage *rs, const char *key, char **data, size_t *len, Err *err) MUST_CHECK;
/* remote_get_range: up to len bytes from offset into buf; *got < len only at the object's end. */
bool remote_get_range(RemoteStorage *rs, const char *key, uint64_t offset, size_t len, void *buf,
                      size_t *got, Err *err) MUST_CHECK;
/* remote_get_to_file: download into local_path atomically (temp file, fsync, rename). */
bool remote_get_to_file(RemoteStorage *rs, const char *key, const char *local_path,
                        Err *err) MUST_CHECK;
/* remote_head: size and mtime of one object; ERR_NOT_FOUND when absent. info->key is NULL. */
bool remote_head(RemoteStorage *rs, const char *key, RemoteObjectInfo *info, Err *err) MUST_CHECK;
/* remote_list: every key under prefix ("" = all), sorted. Free with remote_listing_free. */
bool remote_list(RemoteStorage *rs, const char *prefix, RemoteListing *out, Err *err) MUST_CHECK;
void remote_listing_free(RemoteListing *l);
/* remote_delete: delete one key; absent is success. */
bool remote_delete(RemoteStorage *rs, const char *key, Err *err) MUST_CHECK;
/* remote_delete_prefix: delete every key under prefix (which must be non-empty); empty
 * directories a backend keeps are removed too. */
bool remote_delete_prefix(RemoteStorage *rs, const char *prefix, Err *err) MUST_CHECK;

/* remote_key_validate: the key rules above. */
bool remote_key_validate(const char *key, Err *err) MUST_CHECK;

/* Backends (one file each): remote_storage_fs.c. Each returns its ops and an opaque impl. */
bool remote_storage_fs_new(const char *root_dir, const RemoteStorageOps **ops, void **impl,
                           Err *err) MUST_CHECK;

#endif
