/*
 * pageserver_client.h: typed asynchronous calls from the storage controller to one pageserver's
 * management API (pageserver.md), on shared/http_client.h.
 *
 * Every call names its target (the node's base URL "http://host:port", the bearer token storcon
 * signed with scope pageserverapi, a per-attempt timeout and a retry policy; everything copied),
 * and ends in exactly one PageserverDone callback on the loop thread, never from inside the call
 * that started it, unless it was cancelled first. Retries (transport errors, timeouts, 503, with
 * capped backoff) happen only where the caller's HttpRetryPolicy asks for them.
 *
 * A result is either decoded (res->ok, the member of the operation filled) or an Err:
 *   - status 0: transport error (ERR_UNAVAILABLE) or timeout (ERR_TIMEOUT);
 *   - a status the operation does not treat as a result: the pageserver's status mapped by
 *     err_code_from_http_status with its {"msg"} (http_response_err);
 *   - a 2xx whose body does not decode: ERR_INTERNAL naming what was wrong.
 * Some statuses are results, not errors: location_config_get 404 = absent; timeline_delete 202,
 * 404, 409, 412 = outcomes; secondary_download and wait_lsn 200 / 202; passthrough GET: every
 * HTTP status (only status 0 is an error).
 *
 * When storcon proxies a pageserver error to its own caller, pageserver_client_translate_error
 * applies the wire.md table (transport and 503 -> 503, 404 -> 404, 401/403 -> 500, timeout ->
 * 408, 429 and everything else -> 409).
 *
 * Calls per node: a target may name the node it calls (PageserverTarget.node); such a call is
 * registered under that node while it runs, and pageserver_client_cancel_node fails every one of
 * them at once (the storage controller does so when heartbeats mark the node Offline, so that no
 * caller waits out timeouts and retries against a node known to be down).
 *
 * Lifetime: a PageserverClient borrows an HttpClient; free the PageserverClient first
 * (pageserver_client_free cancels its calls without running their callbacks).
 */
#ifndef STORCON_PAGESERVER_CLIENT_H
#define STORCON_PAGESERVER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/http_client.h"
#include "shared/worker_pool.h"
#include "shared/id.h"
#include "storcon/location_list.h"
#include "storcon/node.h"

struct event_base;

typedef struct PageserverClient PageserverClient;
typedef struct PageserverCall PageserverCall;

/* PageserverTarget: where and how to call. Copied by every start function. */
typedef struct PageserverTarget {
    NodeId node;           /* the node called, for pageserver_client_cancel_node; NODE_ID_NONE =
                              none (a zeroed target names node 0) */
    const char *base_url;  /* "http://host:port" (a trailing '/' is tolerated) */
    const char *token;     /* bearer token, or NULL = no Authorization header */
    long timeout_ms;       /* per attempt; 0 = the HTTP client's default (30 s) */
    HttpRetryPolicy retry; /* all zero = a single attempt */
} PageserverTarget;

typedef enum PageserverOp {
    PAGESERVER_OP_LOCATION_CONFIG_PUT,
    PAGESERVER_OP_LOCATION_CONFIG_GET,
    PAGESERVER_OP_LOCATION_CONFIG_LIST,
    PAGESERVER_OP_TIMELINE_CREATE,
    PAGESERVER_OP_TIMELINE_DELETE,
    PAGESERVER_OP_TENANT_DELETE,
    PAGESERVER_OP_UTILIZATION,
    PAGESERVER_OP_SECONDARY_DOWNLOAD,
    PAGESERVER_OP_WAIT_LSN,
    PAGESERVER_OP_SHARD_SPLIT,
    PAGESERVER_OP_ACTIVATE_POST_IMPORT,
    PAGESERVER_OP_PASSTHROUGH_GET,
    PAGESERVER_OP_COUNT
} PageserverOp;

/* DELETE /v1/tenant/{tsid}/timeline/{tl}: the pageserver's deletion protocol as outcomes. */
typedef enum PageserverTimelineDelete {
    PAGESERVER_TIMELINE_DELETE_STARTED,      /* 202 (or 200): deletion running */
    PAGESERVER_TIMELINE_DELETE_GONE,         /* 404: no such timeline (= done) */
    PAGESERVER_TIMELINE_DELETE_IN_PROGRESS,  /* 409: already deleting */
    PAGESERVER_TIMELINE_DELETE_PRECONDITION, /* 412: tenant missing or timeline has children */
    PAGESERVER_TIMELINE_DELETE_COUNT
} PageserverTimelineDelete;

/* One entry of a location_config PUT answer. */
typedef struct PageserverShardNode {
    TenantShardId shard_id;
    NodeId node_id;
} PageserverShardNode;

/* One entry of GET /v1/location_config: the shard and the observed summary of its config
 * (storcon/location_list.h; unknown when the pageserver reported null or a config the summary does
 * not understand). */
typedef LocationListEntry PageserverLocation;

#define PAGESERVER_TIME_STR_SIZE 64 /* rfc3339 timestamps */

/* GET /v1/utilization. utilization_score is required; the other fields are 0 / "" if absent. */
typedef struct PageserverUtilization {
    uint64_t disk_usage_bytes;
    uint64_t free_space_bytes;
    uint64_t disk_wanted_bytes;
    uint64_t disk_usable_pct;
    uint64_t shard_count;
    uint64_t max_shard_count;
    uint64_t utilization_score; /* 1,000,000 = full */
    char captured_at[PAGESERVER_TIME_STR_SIZE];
} PageserverUtilization;

/* SecondaryProgress; absent numbers are 0, heatmap_mtime "" when null or absent. */
typedef struct PageserverSecondaryProgress {
    char heatmap_mtime[PAGESERVER_TIME_STR_SIZE];
    uint64_t layers_downloaded;
    uint64_t layers_total;
    uint64_t bytes_downloaded;
    uint64_t bytes_total;
} PageserverSecondaryProgress;

/* One (timeline, LSN) target of wait_lsn. */
typedef struct PageserverTimelineLsn {
    TimelineId timeline_id;
    Lsn lsn;
} PageserverTimelineLsn;

/* PageserverResult: what a callback receives. Everything it points to is borrowed and valid only
 * during the callback. The member named after the operation is filled when ok. */
typedef struct PageserverResult {
    PageserverOp op;
    TenantShardId tsid; /* the shard the call was about (zero for node-wide calls) */
    bool ok;            /* decoded result below; false: err */
    int status;         /* HTTP status of the last attempt; 0 = transport error or timeout */
    int attempts;
    Err err; /* !ok: see the file comment */
    union {
        struct {
            PageserverShardNode *shards;
            size_t n_shards;
            bool has_stripe_size; /* false: "stripe_size" was null */
            uint32_t stripe_size;
        } location_put;
        struct {
            bool absent;    /* 404: the pageserver has no location for the shard */
            json_t *config; /* !absent: the LocationConfig exactly as the pageserver echoed it */
        } location_get;
        struct {
            PageserverLocation *locations;
            size_t n_locations;
        } location_list;
        json_t *timeline_info; /* TIMELINE_CREATE, ACTIVATE_POST_IMPORT: TimelineInfo object */
        PageserverTimelineDelete timeline_delete;
        PageserverUtilization utilization;
        struct {
            bool complete; /* 200; false = 202 still running */
            PageserverSecondaryProgress progress;
        } secondary_download;
        struct {
            bool reached; /* 200 all reached; false = 202 not yet */
        } wait_lsn;
        struct {
            TenantShardId *children; /* checked: same tenant, the requested count */
            size_t n_children;
        } split;
        struct {
            const char *body; /* NUL-terminated raw body, whatever the status */
            size_t body_len;
        } passthrough;
    };
} PageserverResult;

typedef void (*PageserverDone)(const PageserverResult *res, void *arg);

/* pageserver_client_new: calls go through http (borrowed, must outlive the PageserverClient);
 * failures detected before any request is made are delivered through base. Never NULL; the
 * caller frees with pageserver_client_free. */
PageserverClient *pageserver_client_new(struct event_base *base, HttpClient *http);
/* pageserver_client_set_workers: decode large answers (the location listing) on this pool
 * (borrowed; free it after the PageserverClient) instead of on the loop thread. NULL = on the
 * loop. */
void pageserver_client_set_workers(PageserverClient *pc, WorkerPool *workers);
/* pageserver_client_free: cancel every call still running (callbacks not invoked). NULL ok. */
void pageserver_client_free(PageserverClient *pc);
size_t pageserver_client_inflight(const PageserverClient *pc);

/* pageserver_call_cancel: the callback will not run. Not from inside that call's own callback.
 * NULL ok. A PageserverCall handle is valid until its callback has run or it was cancelled. */
void pageserver_call_cancel(PageserverCall *call);

/* pageserver_client_cancel_node: every call in flight to node (node != NODE_ID_NONE) stops
 * waiting for its request (or its retry backoff) and fails through its normal callback with
 * status 0 and err (ERR_UNAVAILABLE, which pageserver_client_translate_error makes a 503). A
 * request the node already received may still take effect there when it resumes; every call so
 * cancelled is one the caller may repeat. The callbacks run on a later loop
 * iteration, never inside this call, in the order the calls were started; a call cancelled with
 * pageserver_call_cancel before then stays silent. A call that already failed locally (its
 * callback is queued) keeps its own error. Returns how many calls were cancelled. Calls started
 * after it are not affected (the caller decides whether to start them). */
size_t pageserver_client_cancel_node(PageserverClient *pc, NodeId node, const Err *err);

/* Start functions: never NULL; the callback runs exactly once unless cancelled. */

/* PUT /v1/tenant/{tsid}/location_config[?flush_ms=&lazy=true]: config is a LocationConfig object
 * (borrowed, serialised now); flush_ms 0 = no flush; lazy false = no lazy parameter. */
PageserverCall *pageserver_client_location_config_put(PageserverClient *pc,
                                                      const PageserverTarget *t,
                                                      const TenantShardId *tsid,
                                                      const json_t *config, long flush_ms,
                                                      bool lazy, PageserverDone done, void *arg);
/* GET /v1/location_config/{tsid}: 200 config or 404 absent. */
PageserverCall *pageserver_client_location_config_get(PageserverClient *pc,
                                                      const PageserverTarget *t,
                                                      const TenantShardId *tsid,
                                                      PageserverDone done, void *arg);
/* GET /v1/location_config: every shard the node has, with the summary of its config. The answer
 * (megabytes with 10,000 shards) is scanned without a JSON tree (location_list_scan), on the
 * client's worker pool when it has one. */
PageserverCall *pageserver_client_location_config_list(PageserverClient *pc,
                                                       const PageserverTarget *t,
                                                       PageserverDone done, void *arg);
/* POST /v1/tenant/{tsid}/timeline with body (borrowed): 201 (or 200) TimelineInfo. */
PageserverCall *pageserver_client_timeline_create(PageserverClient *pc, const PageserverTarget *t,
                                                  const TenantShardId *tsid, const json_t *body,
                                                  PageserverDone done, void *arg);
/* DELETE /v1/tenant/{tsid}/timeline/{tl}: 202/404/409/412 outcomes. */
PageserverCall *pageserver_client_timeline_delete(PageserverClient *pc, const PageserverTarget *t,
                                                  const TenantShardId *tsid,
                                                  const TimelineId *timeline, PageserverDone done,
                                                  void *arg);
/* DELETE /v1/tenant/{tsid}: any 2xx = done. */
PageserverCall *pageserver_client_tenant_delete(PageserverClient *pc, const PageserverTarget *t,
                                                const TenantShardId *tsid, PageserverDone done,
                                                void *arg);
/* GET /v1/utilization */
PageserverCall *pageserver_client_utilization(PageserverClient *pc, const PageserverTarget *t,
                                              PageserverDone done, void *arg);
/* POST /v1/tenant/{tsid}/secondary/download?wait_ms=: 200 complete / 202 running. */
PageserverCall *pageserver_client_secondary_download(PageserverClient *pc,
                                                     const PageserverTarget *t,
                                                     const TenantShardId *tsid, long wait_ms,
                                                     PageserverDone done, void *arg);
/* POST /v1/tenant/{tsid}/wait_lsn {"<tl>": "X/X", ..., "timeout": ms}: 200 reached / 202 not. */
PageserverCall *pageserver_client_wait_lsn(PageserverClient *pc, const PageserverTarget *t,
                                           const TenantShardId *tsid,
                                           const PageserverTimelineLsn *lsns, size_t n_lsns,
                                           long timeout_ms, PageserverDone done, void *arg);
/* PUT /v1/tenant/{tsid}/shard_split {"new_shard_count", "new_stripe_size" (0 -> null)}: the
 * child ids, each checked to belong to the tenant with count new_count. */
PageserverCall *pageserver_client_tenant_shard_split(PageserverClient *pc,
                                                     const PageserverTarget *t,
                                                     const TenantShardId *tsid,
                                                     ShardCount new_count, uint32_t new_stripe_size,
                                                     PageserverDone done, void *arg);
/* PUT /v1/tenant/{tsid}/timeline/{tl}/activate_post_import[?timeline_activate_timeout_ms=]:
 * 200 TimelineInfo. activate_timeout_ms 0 = no parameter. */
PageserverCall *
pageserver_client_activate_post_import(PageserverClient *pc, const PageserverTarget *t,
                                       const TenantShardId *tsid, const TimelineId *timeline,
                                       long activate_timeout_ms, PageserverDone done, void *arg);
/* GET <path> for the /v1 passthrough: path (with its query, already rewritten to the shard id)
 * must start with '/' and contain no spaces or control characters (else ERR_BAD_REQUEST,
 * delivered asynchronously). Every HTTP status is a result: res->status with the raw body. */
PageserverCall *pageserver_client_get(PageserverClient *pc, const PageserverTarget *t,
                                      const char *path, PageserverDone done, void *arg);

/* pageserver_client_translate_error: the error storcon answers its own caller when a proxied
 * pageserver call failed (wire.md "Errors"): status 0 -> 408 if err is a timeout, else 503;
 * 503 -> 503; 404 -> 404; 408 -> 408; 401 / 403 -> 500 (our own credentials are wrong); 429 and
 * every other status -> 409. err (may be NULL) supplies the message, which is kept. A 2xx status
 * returns err unchanged (a bad body decoded from a 2xx stays ERR_INTERNAL), or a cleared Err. */
Err pageserver_client_translate_error(int status, const Err *err);

/* pageserver_op_name: "location_config_put", ... for logs. */
const char *pageserver_op_name(PageserverOp op);
/* pageserver_timeline_delete_name: "started", "gone", "in_progress", "precondition". */
const char *pageserver_timeline_delete_name(PageserverTimelineDelete d);

#endif
