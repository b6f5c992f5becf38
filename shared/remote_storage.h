/*
 * remote_storage.h: the object store interface (pageserver.md "Remote storage layout").
 *
 * Objects are named by keys such as "tenants/<tsid>/timelines/<tl>/index_part.json-00000001":
 * '/'-separated, no leading '/', no empty, "." or ".." segments (anything else is ERR_BAD_REQUEST).
 * A backend is chosen by URL scheme from a table of backends (remote_storage.c):
 * "file:///abs/path" (a local directory, the embedded default, remote_storage_fs.c) and
 * "s3://bucket/prefix?region=R&endpoint=URL" (S3 and S3-compatible stores, remote_storage_s3.c);
 * callers only see this interface. The backend interface itself is
 * shared/remote_storage_backend.h.
 *
 * Every call blocks (disk or network I/O) by design: call them from worker-pool threads (or at
 * startup before the event loop runs), never on the loop thread. A RemoteStorage is safe to use
 * from several threads at once.
 *
 * Semantics every backend guarantees (they are S3's, so the S3 backend maps 1:1):
 *   - put is atomic and durable: a reader sees the whole old object, the whole new one, or absent,
 *     never a partial one; when put returns true the object survives a crash.
 *   - get of an absent key fails with ERR_NOT_FOUND; delete of an absent key succeeds.
 *   - listings are sorted bytewise and paged like ListObjectsV2 (remote_list_page).
 *
 * Options (RemoteOpts): the calls taking `const RemoteOpts *opts` honour a deadline and a cancel
 * flag between chunks and requests. An expired deadline fails with ERR_TIMEOUT (wire.md's
 * "timeout" row, which is also what http_client reports for a curl timeout); a raised cancel flag
 * fails with ERR_UNAVAILABLE (503, "retry later": cancellation means shutdown or the caller gave
 * up) and a message saying "cancelled". NULL opts = no deadline, no cancel. The calls without an
 * opts parameter use the defaults; each has a form that takes options (remote_put_ex,
 * remote_get_ex, remote_head_ex, remote_list_all, remote_delete_many, ...). A call that fails on
 * its deadline or cancel flag changed nothing that a retry would not redo: a put leaves the old
 * object, a get_to_file leaves the old local file, a delete_prefix has deleted some keys and a
 * retry deletes the rest.
 */
#ifndef SHARED_REMOTE_STORAGE_H
#define SHARED_REMOTE_STORAGE_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"

typedef struct RemoteStorage RemoteStorage;

struct Throttle;

/* The options of one call. deadline_ms is on the CLOCK_MONOTONIC clock (remote_deadline_after_ms
 * makes one from a timeout), 0 = none. cancel, when not NULL, is polled: once true the call stops
 * at its next chunk or request. throttle, when not NULL, paces the bytes reads deliver
 * (shared/throttle.h): every chunk is taken from it after it reached the sink; a cancel or the
 * deadline also ends a wait there. */
typedef struct RemoteOpts {
    int64_t deadline_ms;
    const atomic_bool *cancel;
    struct Throttle *throttle;
} RemoteOpts;

/* remote_deadline_after_ms: the deadline_ms timeout_ms from now. */
int64_t remote_deadline_after_ms(int64_t timeout_ms);

/* remote_opts_check: false (ERR_TIMEOUT or ERR_UNAVAILABLE "cancelled", naming what) when opts'
 * deadline passed or its cancel flag is raised. Backends call it between chunks and requests; a
 * caller running a loop of its own calls may too. */
bool remote_opts_check(const RemoteOpts *opts, const char *what, Err *err) MUST_CHECK;

/* An etag: an opaque text that changes whenever the object is replaced. The file backend derives
 * it from the file's inode, size and mtime (no content hash: head stays one stat). Every put
 * renames a new file into place, so every put changes it, even one with the same bytes (unlike
 * S3's MD5 etags): an equal etag means "not replaced since", a different one "maybe changed". */
#define REMOTE_ETAG_SIZE 80

typedef struct RemoteObjectInfo {
    char *key; /* owned by the listing; NULL from head and get */
    uint64_t size;
    int64_t mtime_ms; /* last modification, unix milliseconds */
    char etag[REMOTE_ETAG_SIZE];
} RemoteObjectInfo;

/* A listing, or one page of one. Initialise with {0}; free with remote_listing_free. */
typedef struct RemoteListing {
    RemoteObjectInfo *items; /* objects, sorted bytewise */
    size_t n;
    char **prefixes; /* common prefixes (with a delimiter), sorted; each ends with the delimiter */
    size_t n_prefixes;
    char *next_token; /* remote_list_page: where the next page starts; NULL on the last page */
} RemoteListing;

/* The parsed form of a remote storage URL. */
typedef enum RemoteStorageKind {
    REMOTE_STORAGE_LOCAL_FS, /* file:///abs/path */
    REMOTE_STORAGE_S3,       /* s3://bucket/prefix?region=R&endpoint=URL */
    REMOTE_STORAGE_KIND_COUNT
} RemoteStorageKind;

#define REMOTE_STORAGE_S3_BUCKET_MAX 64 /* 3..63 chars + NUL */
#define REMOTE_STORAGE_URL_MAX       1024
#define REMOTE_STORAGE_S3_REGION_MAX 64

/* S3 multipart defaults: a put of more than the threshold goes in parts of part_size bytes. */
#define REMOTE_S3_DEFAULT_MULTIPART_THRESHOLD (64ull * 1024 * 1024)
#define REMOTE_S3_DEFAULT_PART_SIZE           (16ull * 1024 * 1024)
#define REMOTE_S3_MIN_PART_SIZE               (5ull * 1024 * 1024) /* S3's minimum */
#define REMOTE_S3_MAX_PARTS                   10000

typedef struct RemoteStorageUrl {
    RemoteStorageKind kind;
    char path[PATH_MAX];                       /* LOCAL_FS: absolute, no trailing slash */
    char bucket[REMOTE_STORAGE_S3_BUCKET_MAX]; /* S3 */
    char prefix[REMOTE_STORAGE_URL_MAX];       /* S3: without leading/trailing '/', may be empty */
    char region[REMOTE_STORAGE_S3_REGION_MAX]; /* S3: ?region=, default us-east-1 */
    char endpoint[REMOTE_STORAGE_URL_MAX]; /* S3: ?endpoint=http(s)://host[:port], or "" (AWS) */
    uint64_t multipart_threshold;          /* S3: ?multipart_threshold=, bytes */
    uint64_t part_size;                    /* S3: ?part_size=, bytes */
} RemoteStorageUrl;

/* remote_storage_url_parse: the syntax of a remote storage URL: "file:///abs/path" (no host,
 * absolute path without "." or ".." segments or control characters, not "/"; trailing '/'
 * dropped) and "s3://bucket[/prefix][?param=value&...]" (bucket 3..63 of [a-z0-9.-]; params
 * region (default us-east-1), endpoint (http:// or https:// URL of an S3-compatible store, no
 * path: requests then use path-style addressing; without it, AWS's virtual-hosted
 * https://<bucket>.s3.<region>.amazonaws.com), multipart_threshold and part_size (byte sizes as
 * bytes_parse reads them; part_size >= 5MiB)). Anything else -> ERR_BAD_REQUEST naming what was
 * wrong. The one parser for daemon flags and for opening. */
bool remote_storage_url_parse(const char *url, RemoteStorageUrl *out, Err *err) MUST_CHECK;
/* remote_storage_url_check_supported: a backend is registered for the URL's scheme; otherwise
 * ERR_PRECONDITION_FAILED "<scheme> remote storage is not supported yet". */
bool remote_storage_url_check_supported(const RemoteStorageUrl *url, Err *err) MUST_CHECK;

/* remote_fs_sweep_temps: remove, under root (recursively), the temporary files a crashed writer
 * left (names "<name>.tmp.<n>.<n>", the form of the file backend's puts, fs_write_atomic and layer
 * writers) whose mtime is more than grace_s seconds old; *removed counts them. Blocking: workers
 * only. A missing root is not an error. */
bool remote_fs_sweep_temps(const char *root, int64_t grace_s, uint64_t *removed,
                           Err *err) MUST_CHECK;

/* remote_storage_set_credentials_file: S3 credentials from a file (daemons' flag
 * --remote-storage-credentials), read and checked now, used by every S3 storage opened afterwards
 * instead of the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). The
 * format is the AWS shared credentials file's, profile [default] (or no section) only:
 *     [default]
 *     aws_access_key_id = AKIA...
 *     aws_secret_access_key = ...
 *     aws_session_token = ...        (optional)
 * '#' and ';' start comment lines. Unknown keys, a missing key or another profile ->
 * ERR_BAD_REQUEST. Call at startup, before any storage is opened. */
bool remote_storage_set_credentials_file(const char *path, Err *err) MUST_CHECK;
/* remote_storage_set_metrics: S3 requests are counted in reg from now on (daemons call it at
 * startup, before any request is made): remote_storage_s3_requests_total{method, status}
 * (status: 2xx, 3xx, 4xx, 5xx, or error for a transport failure; every attempt, retries
 * included), remote_storage_s3_request_seconds{method} and remote_storage_s3_bytes_total{
 * direction="up"|"down"}. */
struct MetricsRegistry;
void remote_storage_set_metrics(struct MetricsRegistry *reg);

/* remote_storage_s3_credentials: S3 credentials are configured (the file above, or the
 * environment); false with err saying where they are looked for. */
bool remote_storage_s3_credentials(Err *err) MUST_CHECK;

/* remote_storage_open: a backend for the URL. The caller frees it with remote_storage_free. */
bool remote_storage_open(const char *url, RemoteStorage **out, Err *err) MUST_CHECK;
void remote_storage_free(RemoteStorage *rs);
const char *remote_storage_url(const RemoteStorage *rs);

/* ---- writes ---- */

/* remote_put: store len bytes under key, atomically and durably. */
bool remote_put(RemoteStorage *rs, const char *key, const void *data, size_t len,
                Err *err) MUST_CHECK;
bool remote_put_ex(RemoteStorage *rs, const char *key, const void *data, size_t len,
                   const RemoteOpts *opts, Err *err) MUST_CHECK;
/* remote_put_file: store the contents of a local file (large layers) under key. */
bool remote_put_file(RemoteStorage *rs, const char *key, const char *local_path,
                     Err *err) MUST_CHECK;
bool remote_put_file_ex(RemoteStorage *rs, const char *key, const char *local_path,
                        const RemoteOpts *opts, Err *err) MUST_CHECK;

/* ---- reads ---- */

/* A sink receives an object's bytes in order, in chunks of at most REMOTE_CHUNK_SIZE; returning
 * false (with err set) stops the get, which then fails with that err. */
#define REMOTE_CHUNK_SIZE (1024 * 1024)
typedef bool (*RemoteSink)(void *ctx, const void *chunk, size_t len, Err *err);

/* What to get. NULL or {0} = the whole object, unconditionally.
 *   offset, len: a range; len 0 = to the end. A range past the end yields the bytes that exist
 *     (none when offset >= size), never an error (S3's 416 is mapped to an empty body).
 *   if_none_match: an etag; when the object's etag equals it the get is "not modified".
 *   if_modified_since_ms: > 0 and no if_none_match: "not modified" when the object's mtime_ms is
 *     <= it (the S3 backend compares at the one-second resolution of HTTP dates).
 * A "not modified" get succeeds without calling the sink. */
typedef struct RemoteGetReq {
    uint64_t offset;
    uint64_t len;
    const char *if_none_match;
    int64_t if_modified_since_ms;
} RemoteGetReq;

typedef struct RemoteGetResult {
    RemoteObjectInfo info; /* the whole object's size, mtime and etag (key NULL) */
    bool not_modified;
    uint64_t bytes; /* bytes passed to the sink */
} RemoteGetResult;

/* remote_get_stream: the object (or the request's range) through sink, chunk by chunk, so a large
 * object never sits in memory. res may be NULL. The sink may have received some chunks when the
 * call fails (deadline, cancel, I/O error): a sink writing somewhere must discard them. */
bool remote_get_stream(RemoteStorage *rs, const char *key, const RemoteGetReq *req, RemoteSink sink,
                       void *ctx, RemoteGetResult *res, const RemoteOpts *opts,
                       Err *err) MUST_CHECK;
/* remote_get: the whole object in a new buffer (NUL-terminated for convenience) the caller frees.
 */
bool remote_get(RemoteStorage *rs, const char *key, char **data, size_t *len, Err *err) MUST_CHECK;
/* remote_get_ex: remote_get with a request (range, conditions) and options. On "not modified"
 * *data is NULL, *len 0 and res->not_modified true (res may be NULL otherwise: then a
 * conditional get that is not modified is indistinguishable from an empty object). */
bool remote_get_ex(RemoteStorage *rs, const char *key, const RemoteGetReq *req, char **data,
                   size_t *len, RemoteGetResult *res, const RemoteOpts *opts, Err *err) MUST_CHECK;
/* remote_get_range: up to len bytes from offset into buf; *got < len only at the object's end. */
bool remote_get_range(RemoteStorage *rs, const char *key, uint64_t offset, size_t len, void *buf,
                      size_t *got, Err *err) MUST_CHECK;
/* remote_get_to_file: download into local_path atomically (a temporary file next to it, fsync,
 * rename, fsync of the directory, which is created if missing); on failure local_path is as it
 * was. Streams: the object is never held in memory. */
bool remote_get_to_file(RemoteStorage *rs, const char *key, const char *local_path,
                        Err *err) MUST_CHECK;
bool remote_get_to_file_ex(RemoteStorage *rs, const char *key, const char *local_path,
                           const RemoteOpts *opts, Err *err) MUST_CHECK;
/* remote_head: size, mtime and etag of one object; ERR_NOT_FOUND when absent. info->key is NULL.
 */
bool remote_head(RemoteStorage *rs, const char *key, RemoteObjectInfo *info, Err *err) MUST_CHECK;
bool remote_head_ex(RemoteStorage *rs, const char *key, RemoteObjectInfo *info,
                    const RemoteOpts *opts, Err *err) MUST_CHECK;

/* ---- listings ---- */

/* At most this many entries (objects plus common prefixes) per page, as in S3. */
#define REMOTE_LIST_MAX_KEYS 1000

/* remote_list_page: one page of ListObjectsV2. Keys start with prefix ("" = all; a prefix is a
 * key, optionally followed by one '/'). With a delimiter (NULL or "" = none), a key whose rest
 * after the prefix contains the delimiter is not listed itself: it is rolled up into the common
 * prefix prefix + rest up to and including the delimiter's first occurrence, listed once. Entries
 * come in bytewise order, at most max_keys of them (0 or more than REMOTE_LIST_MAX_KEYS =
 * REMOTE_LIST_MAX_KEYS), objects and common prefixes counting alike. continuation_token is NULL
 * for the first page, then the previous page's next_token (an opaque string, valid with the same
 * prefix and delimiter; anything else -> ERR_BAD_REQUEST). page->next_token is NULL on the last
 * page. A key put between two pages is listed iff it sorts after the previous page's entries. */
bool remote_list_page(RemoteStorage *rs, const char *prefix, const char *delimiter,
                      const char *continuation_token, size_t max_keys, RemoteListing *page,
                      const RemoteOpts *opts, Err *err) MUST_CHECK;
/* remote_list_all: every page of remote_list_page concatenated (next_token NULL). */
bool remote_list_all(RemoteStorage *rs, const char *prefix, const char *delimiter,
                     RemoteListing *out, const RemoteOpts *opts, Err *err) MUST_CHECK;
/* remote_list: every key under prefix, recursively (remote_list_all without a delimiter). */
bool remote_list(RemoteStorage *rs, const char *prefix, RemoteListing *out, Err *err) MUST_CHECK;
/* remote_listing_free: frees what a listing holds and zeroes it. */
void remote_listing_free(RemoteListing *l);

/* ---- deletes ---- */

/* At most this many keys per remote_delete_many, as in S3's DeleteObjects. */
#define REMOTE_DELETE_MAX_KEYS 1000

typedef struct RemoteDeleteFailure {
    size_t index; /* into the keys passed */
    Err err;
} RemoteDeleteFailure;

/* The keys a remote_delete_many could not delete. Initialise with {0}; free with
 * remote_delete_result_free. */
typedef struct RemoteDeleteResult {
    RemoteDeleteFailure *failures;
    size_t n_failures;
} RemoteDeleteResult;

/* remote_delete: delete one key; absent is success. */
bool remote_delete(RemoteStorage *rs, const char *key, Err *err) MUST_CHECK;
/* remote_delete_many: delete up to REMOTE_DELETE_MAX_KEYS keys in one request (n == 0 is a no-op);
 * absent keys are success. Every key is validated first (one invalid key, or too many, refuses the
 * whole call with ERR_BAD_REQUEST before anything is deleted). True when every key is gone. When
 * some keys failed, each is in res->failures (res may be NULL) and err is the failure of the only
 * one, or for several their count and the first one. Any other failure (deadline, cancel, the
 * request itself) fails with err and no res->failures: some keys may be deleted, and repeating the
 * call is safe. */
bool remote_delete_many(RemoteStorage *rs, const char *const *keys, size_t n,
                        RemoteDeleteResult *res, const RemoteOpts *opts, Err *err) MUST_CHECK;
void remote_delete_result_free(RemoteDeleteResult *res);
/* remote_delete_prefix: delete every key under prefix (which must be non-empty), page by page
 * (remote_list_page + remote_delete_many); empty directories a backend keeps are removed too. */
bool remote_delete_prefix(RemoteStorage *rs, const char *prefix, Err *err) MUST_CHECK;
bool remote_delete_prefix_ex(RemoteStorage *rs, const char *prefix, const RemoteOpts *opts,
                             Err *err) MUST_CHECK;

/* remote_key_validate: the key rules above. */
bool remote_key_validate(const char *key, Err *err) MUST_CHECK;

#endif
