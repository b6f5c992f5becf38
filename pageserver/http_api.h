/*
 * http_api.h: the pageserver management API (pageserver.md "Management API"): the route table
 * served by shared/http_server.h with AUTH_POLICY_PAGESERVER, and its handlers. Every handler
 * gets the PageserverApp as its `app` argument.
 *
 * Routes now:
 *   GET /v1/status      none           200 {"id": <node_id>}
 *   GET /metrics        none           Prometheus text
 *   PUT /v1/failpoints  pageserverapi  body [{"name", "actions"}] -> 200 {}; bad body 400
 */
#ifndef PAGESERVER_HTTP_API_H
#define PAGESERVER_HTTP_API_H

#include <stddef.h>

#include "shared/http_server.h"

/* pageserver_http_routes: the route table (static storage); *n receives its length. */
const HttpRoute *pageserver_http_routes(size_t *n);

#endif
