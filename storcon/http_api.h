/*
 * http_api.h: the storage controller's HTTP route table.
 *
 * One row per route {method, pattern, scope, handler}; the handlers get the StorconApp (app.h) as
 * their `app` argument. Routes so far:
 *   GET  /status               none   200 {} as soon as the server listens
 *   GET  /ready                none   200 {} once startup is done, else 503 {"msg": "not ready:
 * ..."} GET  /metrics              none   Prometheus text format PUT  /debug/v1/failpoints  admin
 * [{"name", "actions"}] -> 200 {}; malformed -> 400
 */
#ifndef STORCON_HTTP_API_H
#define STORCON_HTTP_API_H

#include <stddef.h>

#include "shared/http_server.h"

extern const HttpRoute STORCON_HTTP_ROUTES[];
extern const size_t STORCON_HTTP_ROUTES_COUNT;

#endif
