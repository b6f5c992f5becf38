/*
 * http_api.c: the route table and the health, metrics and debug handlers.
 *
 * Handlers parse and validate, then answer (or start work whose completion answers); errors go
 * through http_reply_error so they are logged once with where they were raised.
 */
#include "storcon/http_api.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/failpoint.h"
#include "shared/metrics.h"
#include "shared/str.h"
#include "storcon/app.h"

static void handle_status(HttpRequest *req, void *arg)
{
    http_reply_json(req, 200, NULL);
}

/* not_ready_reason: why /ready answers 503, for the operator reading it. */
static const char *not_ready_reason(const StorconApp *app)
{
    switch (app->phase) {
    case STORCON_PHASE_MIGRATING:
        if (app->migrator != NULL && (migrate_state(app->migrator) == MIGRATE_CONNECTING ||
                                      migrate_state(app->migrator) == MIGRATE_CONNECT_BACKOFF))
            return "connecting to the database";
        return "applying database migrations";
    case STORCON_PHASE_STOPPING:
        return "shutting down";
    case STORCON_PHASE_READY:
    case STORCON_PHASE_COUNT:
    default:
        return "starting";
    }
}

/* handle_ready: polled by orchestration, so a 503 here is an answer, not an error to log. */
static void handle_ready(HttpRequest *req, void *arg)
{
    const StorconApp *app = arg;
    if (app->phase == STORCON_PHASE_READY) {
        http_reply_json(req, 200, NULL);
        return;
    }
    char msg[128];
    str_printf(msg, sizeof(msg), "not ready: %s", not_ready_reason(app));
    http_reply_json(req, 503, json_pack("{s:s}", "msg", msg));
}

static void handle_metrics(HttpRequest *req, void *arg)
{
    StorconApp *app = arg;
    char *text = metrics_render(app->metrics);
    http_reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
}

static void handle_put_failpoints(HttpRequest *req, void *arg)
{
    json_t *body = NULL;
    Err err;
    err_clear(&err);
    if (!http_request_json(req, &body, &err) || !failpoint_configure_json(body, &err)) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    http_reply_json(req, 200, NULL);
}

const HttpRoute STORCON_HTTP_ROUTES[] = {
    {HTTP_GET, "/status", AUTH_SCOPE_NONE, handle_status},
    {HTTP_GET, "/ready", AUTH_SCOPE_NONE, handle_ready},
    {HTTP_GET, "/metrics", AUTH_SCOPE_NONE, handle_metrics},
    {HTTP_PUT, "/debug/v1/failpoints", AUTH_SCOPE_ADMIN, handle_put_failpoints},
};

const size_t STORCON_HTTP_ROUTES_COUNT =
    sizeof(STORCON_HTTP_ROUTES) / sizeof(STORCON_HTTP_ROUTES[0]);
