/* http_api.c: route table and handlers of the pageserver management API. */
#include "pageserver/http_api.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/failpoint.h"
#include "shared/http_server.h"
#include "shared/metrics.h"

#include "pageserver/app.h"

/* handle_status: liveness and identity; the controller's heartbeat checks the id. */
static void handle_status(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    http_reply_json(req, 200, json_pack("{s:I}", "id", (json_int_t)app->cfg.id));
}

static void handle_metrics(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    char *text = metrics_render(app->metrics);
    if (text == NULL) {
        Err err = {0};
        err_set(&err, ERR_INTERNAL, "cannot render metrics");
        http_reply_error(req, &err);
        return;
    }
    http_reply_raw(req, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
}

/* handle_failpoints: arm failpoints at runtime (tests). failpoint_configure_json validates the
 * whole body before arming anything, and answers every bad input with ERR_BAD_REQUEST. */
static void handle_failpoints(HttpRequest *req, void *app_arg)
{
    Err err = {0};
    json_t *body = NULL;
    if (!http_request_json(req, &body, &err)) {
        http_reply_error(req, &err);
        return;
    }
    bool ok = failpoint_configure_json(body, &err);
    json_decref(body);
    if (!ok) {
        http_reply_error(req, &err);
        return;
    }
    http_reply_json(req, 200, NULL);
}

static const HttpRoute PAGESERVER_ROUTES[] = {
    {HTTP_GET, "/v1/status", AUTH_SCOPE_NONE, handle_status},
    {HTTP_GET, "/metrics", AUTH_SCOPE_NONE, handle_metrics},
    {HTTP_PUT, "/v1/failpoints", AUTH_SCOPE_PAGESERVERAPI, handle_failpoints},
};

const HttpRoute *pageserver_http_routes(size_t *n)
{
    *n = sizeof(PAGESERVER_ROUTES) / sizeof(PAGESERVER_ROUTES[0]);
    return PAGESERVER_ROUTES;
}
