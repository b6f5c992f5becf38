/*
 * http_api.h: the pageserver management API (pageserver.md "Management API"): the route table
 * served by shared/http_server.h with AUTH_POLICY_PAGESERVER, and its handlers. Every handler
 * gets the PageserverApp as its `app` argument. This is the only pageserver code that sees HTTP:
 * handlers parse and validate (400 for malformed ids, bodies and queries, before anything
 * changes), call one domain operation (tenant.h, timeline.h, read_path.h, utilization.h) and
 * render its result or error as the reply. http_api.c holds the node, location and tenant routes,
 * http_timelines.c the timeline and getpage routes.
 *
 * Routes (docs/pageserver.md "Routes"; every tenant route needs a pageserverapi token, or a tenant
 * token of that tenant, when auth is on, and answers 503 until re-attach has been applied):
 *   GET    /v1/status, /metrics                      none
 *   PUT    /v1/failpoints                            [{"name", "actions"}]
 *   PUT    /v1/tenant/{tsid}/location_config         ?flush_ms=&lazy=
 *   GET    /v1/location_config, /v1/location_config/{tsid}
 *   GET    /v1/tenant, /v1/tenant/{tsid};  DELETE /v1/tenant/{tsid}
 *   POST   /v1/tenant; POST /v1/tenant/{tenant_id}/attach, /detach?detach_ignored=, /ignore,
 *          /load (the older lifecycle API, tenant_lifecycle.h)
 *   GET    /v1/tenant/{tsid}/config;  PUT, PATCH /v1/tenant/config
 *   POST   /v1/tenant/{tsid}/timeline;  GET /v1/tenant/{tsid}/timeline[/{tl}]
 *   DELETE /v1/tenant/{tsid}/timeline/{tl}
 *   GET    /v1/tenant/{tsid}/timeline/{tl}/getpage   ?rel=<spc>/<db>/<rel>&fork=&blkno=&lsn=
 *   GET    /v1/tenant/{tsid}/timeline/{tl}/relations ?lsn=
 *   GET    /v1/utilization;  PUT /v1/deletion_queue/flush?execute=
 *   POST   /v1/tenant/{tsid}/heatmap_upload; POST /v1/tenant/{tsid}/secondary/download?wait_ms=;
 *   GET    /v1/tenant/{tsid}/secondary/status; POST /v1/tenant/{tsid}/wait_lsn (http_secondary.c)
 *   PUT    /v1/tenant/{tsid}/shard_split              (http_split.c)
 */
#ifndef PAGESERVER_HTTP_API_H
#define PAGESERVER_HTTP_API_H

#include <stddef.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/http_server.h"
#include "shared/id.h"

#include "pageserver/read_path.h"

struct PageserverApp;

/* pageserver_http_routes: the route table (static storage); *n receives its length. */
const HttpRoute *pageserver_http_routes(size_t *n);

/* pageserver_reply_json / pageserver_reply_error / pageserver_reply_raw: deferred replies from
 * completions. After the loop has ended (app->http == NULL) the server has already answered and
 * freed every request, so these only release the body. */
void pageserver_reply_json(struct PageserverApp *app, HttpRequest *req, int status, json_t *body);
void pageserver_reply_error(struct PageserverApp *app, HttpRequest *req, const Err *err);
void pageserver_reply_raw(struct PageserverApp *app, HttpRequest *req, int status,
                          const char *content_type, const void *body, size_t len);

/* ---- shared by the route files ---- */

/* http_param_tsid / http_param_timeline: the {tenant_shard_id} / {timeline_id} path parameter;
 * 400 naming it. */
bool http_param_tsid(HttpRequest *req, TenantShardId *out, Err *err) MUST_CHECK;
bool http_param_timeline(HttpRequest *req, TimelineId *out, Err *err) MUST_CHECK;

/* http_query_ms: the optional query parameter name in milliseconds (0..INT32_MAX), capped at max;
 * -1 when absent; 400 naming it when malformed. */
bool http_query_ms(HttpRequest *req, const char *name, long max, long *out, Err *err) MUST_CHECK;
/* http_reply_result: a synchronous view's answer: 200 with *json, or the error. */
void http_reply_result(HttpRequest *req, bool ok, json_t *json, const Err *err);

/* http_await: the argument of a domain completion that replies to req (http_done_* and
 * http_json_* below, or a completion that calls http_pending_take once). */
void *http_await(HttpRequest *req, struct PageserverApp *app);
/* http_pending_take: req and *app of an http_await argument (which is freed). */
HttpRequest *http_pending_take(void *arg, struct PageserverApp **app);
/* http_done_200 / http_done_202 / http_json_200 / http_json_201: completions that reply to the
 * request given by http_await with that status (JSON null, as Neon answers "no content", or the
 * result), or the error. */
void http_done_200(const Err *err, void *arg);
void http_done_202(const Err *err, void *arg);
void http_json_200(const Err *err, json_t *result, void *arg);
void http_json_201(const Err *err, json_t *result, void *arg);

/* GetPageQuery: the getpage route's query. */
typedef struct GetPageQuery {
    RelTag rel;
    uint32_t blkno;
    Lsn lsn; /* LSN_INVALID: absent (the last record LSN) */
} GetPageQuery;

/* getpage_parse_query: the query values (NULL = absent): rel "<spc>/<db>/<rel>" (decimal u32,
 * rel != 0), fork 0..3, blkno < 0xFFFFFFFF, lsn "X/X" (optional). 400 naming the parameter
 * otherwise. */
bool getpage_parse_query(const char *rel, const char *fork, const char *blkno, const char *lsn,
                         GetPageQuery *out, Err *err) MUST_CHECK;

/* Handlers of http_timelines.c. */
void http_handle_timeline_create(HttpRequest *req, void *app);
void http_handle_timeline_list(HttpRequest *req, void *app);
void http_handle_timeline_get(HttpRequest *req, void *app);
void http_handle_timeline_delete(HttpRequest *req, void *app);
void http_handle_getpage(HttpRequest *req, void *app);
void http_handle_relations(HttpRequest *req, void *app);
void http_handle_timeline_activate_post_import(HttpRequest *req, void *app);

/* Handlers of http_secondary.c: heatmap upload and warm secondaries (heatmap.h, secondary.h). */
void http_handle_heatmap_upload(HttpRequest *req, void *app);
void http_handle_secondary_download(HttpRequest *req, void *app);
void http_handle_secondary_status(HttpRequest *req, void *app);
void http_handle_wait_lsn(HttpRequest *req, void *app);

/* Handler of http_split.c: PUT /v1/tenant/{tsid}/shard_split (shard_split.h). */
void http_handle_shard_split(HttpRequest *req, void *app);

#endif
