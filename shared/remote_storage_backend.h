/*
 * remote_storage_backend.h: what a remote storage backend implements (one file per backend:
 * remote_storage_fs.c, remote_storage_s3.c), and the table row that registers it.
 * Only remote_storage.c and the backends include this; callers use remote_storage.h.
 *
 * remote_storage.c validates keys, prefixes, tokens and counts before calling an op, and builds
 * everything else from these ops: get, get_range, get_to_file (sinks over get), list and
 * list_all (pages of list_page), delete and delete_prefix (list_page + delete_many).
 * Ops receive the caller's RemoteOpts (possibly NULL) and check them with remote_opts_check
 * between chunks and requests.
 */
#ifndef SHARED_REMOTE_STORAGE_BACKEND_H
#define SHARED_REMOTE_STORAGE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/remote_storage.h"

typedef struct RemoteBackendOps {
    /* put and put_file: atomic and durable; src_fd is read from its start. */
    bool (*put)(void *impl, const char *key, const void *data, size_t len, const RemoteOpts *opts,
                Err *err);
    bool (*put_file)(void *impl, const char *key, int src_fd, const RemoteOpts *opts, Err *err);
    /* get: req is never NULL; res is never NULL and zeroed; fills res->info before the first
     * chunk, then either sets res->not_modified or passes the range to sink. */
    bool (*get)(void *impl, const char *key, const RemoteGetReq *req, RemoteSink sink, void *ctx,
                RemoteGetResult *res, const RemoteOpts *opts, Err *err);
    bool (*head)(void *impl, const char *key, RemoteObjectInfo *info, const RemoteOpts *opts,
                 Err *err);
    /* list_page: delimiter is NULL or non-empty; max_keys in 1..REMOTE_LIST_MAX_KEYS; token is
     * NULL or a token this backend returned (it checks the form). page is zeroed. */
    bool (*list_page)(void *impl, const char *prefix, const char *delimiter, const char *token,
                      size_t max_keys, RemoteListing *page, const RemoteOpts *opts, Err *err);
    /* delete_many: 1..REMOTE_DELETE_MAX_KEYS valid keys; per-key failures go into res (never
     * NULL, zeroed) with a true return; false only when the request as a whole failed. */
    bool (*delete_many)(void *impl, const char *const *keys, size_t n, RemoteDeleteResult *res,
                        const RemoteOpts *opts, Err *err);
    void (*free_impl)(void *impl);
} RemoteBackendOps;

/* One row of the backend table: the URL kind it serves and its constructor. */
typedef struct RemoteBackend {
    RemoteStorageKind kind;
    bool (*open)(const RemoteStorageUrl *url, const RemoteBackendOps **ops, void **impl, Err *err);
} RemoteBackend;

/* remote_fs_backend_open: file:///abs/path (remote_storage_fs.c); creates the root directory. */
bool remote_fs_backend_open(const RemoteStorageUrl *url, const RemoteBackendOps **ops, void **impl,
                            Err *err) MUST_CHECK;

/* remote_s3_backend_open: s3://bucket/prefix?region=&endpoint= (remote_storage_s3.c). */
bool remote_s3_backend_open(const RemoteStorageUrl *url, const RemoteBackendOps **ops, void **impl,
                            Err *err) MUST_CHECK;

/* remote_s3_parse_listing / remote_s3_parse_delete_result: the S3 backend's parsers of a
 * ListBucketResult (appended to page, keys without prefix) and a DeleteResult (per-key errors into
 * res by index into keys; NoSuchKey is success). Malformed XML -> ERR_INTERNAL. Exposed for the
 * fuzz harness (tests/fuzz/fuzz_s3_replies.c). */
bool remote_s3_parse_listing(const char *xml, size_t len, const char *prefix, RemoteListing *page,
                             Err *err) MUST_CHECK;
bool remote_s3_parse_delete_result(const char *xml, size_t len, const char *prefix,
                                   const char *const *keys, size_t n, RemoteDeleteResult *res,
                                   Err *err) MUST_CHECK;

/* remote_delete_result_add: record that keys[index] failed with err (for backends). */
void remote_delete_result_add(RemoteDeleteResult *res, size_t index, const Err *err);

#endif
