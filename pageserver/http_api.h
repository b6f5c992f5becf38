/*
 * http_api.h: the pageserver management API (pageserver.md "Management API"): the route table
 * served by shared/http_server.h with AUTH_POLICY_PAGESERVER, and its handlers. Every handler
 * gets the PageserverApp as its `app` argument.
 *
 * Routes (docs/pageserver.md "Routes"; every tenant route needs a pageserverapi token, or a tenant
 * token of that tenant, when auth is on, and answers 503 until re-attach has been applied):
 *   GET    /v1/status, /metrics                      none
 *   PUT    /v1/failpoints                            [{"name", "actions"}]
 *   PUT    /v1/tenant/{tsid}/location_config         ?flush_ms=&lazy=
 *   GET    /v1/location_config, /v1/location_config/{tsid}
 *   GET    /v1/tenant, /v1/tenant/{tsid};  DELETE /v1/tenant/{tsid}
 *   GET    /v1/tenant/{tsid}/config;  PUT, PATCH /v1/tenant/config
 *   POST   /v1/tenant/{tsid}/timeline;  GET /v1/tenant/{tsid}/timeline[/{tl}]
 *   DELETE /v1/tenant/{tsid}/timeline/{tl}
 *   GET    /v1/tenant/{tsid}/timeline/{tl}/getpage   ?rel=<spc>/<db>/<rel>&fork=&blkno=&lsn=
 *   GET    /v1/utilization;  PUT /v1/deletion_queue/flush?execute=
 */
#ifndef PAGESERVER_HTTP_API_H
#define PAGESERVER_HTTP_API_H

#include <stddef.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/http_server.h"

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

#endif
