/*
 * http_api.c: the route table, the health, metrics and failpoint handlers, and the helpers the
 * route files share (deferred replies, strict bodies, path parameters).
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

/* ---- shared helpers ---- */

Service *http_api_service(HttpRequest *req, void *arg)
{
    StorconApp *app = arg;
    if (app->service == NULL || app->phase == STORCON_PHASE_STOPPING) {
        Err err;
        err_clear(&err);
        err_set(&err, ERR_UNAVAILABLE, "not ready: %s",
                app->phase == STORCON_PHASE_STOPPING ? "shutting down" : "starting");
        http_reply_error(req, &err);
        return NULL;
    }
    return app->service;
}

ApiOp *http_api_op_new(HttpRequest *req, void *app, Service *svc, int ok_status)
{
    ApiOp *op = xcalloc(1, sizeof(*op));
    op->req = req;
    op->app = app;
    op->svc = svc;
    op->ok_status = ok_status;
    return op;
}

void http_api_op_reply(ApiOp *op, int status, json_t *result)
{
    HttpRequest *req = op->req;
    free(op);
    http_reply_json(req, status, result);
}

void http_api_op_fail(ApiOp *op, const Err *err)
{
    HttpRequest *req = op->req;
    Err copy = *err;
    free(op);
    http_reply_error(req, &copy);
}

void http_api_op_json_done(const Err *err, json_t *result, void *arg)
{
    ApiOp *op = arg;
    if (err != NULL) {
        http_api_op_fail(op, err);
        return;
    }
    http_api_op_reply(op, op->ok_status, result);
}

void http_api_reply_sync(HttpRequest *req, bool ok, json_t *out, const Err *err)
{
    if (!ok) {
        http_reply_error(req, err);
        return;
    }
    http_reply_json(req, 200, out);
}

void http_api_tenant_read(HttpRequest *req, void *app, ServiceTenantReadFn read)
{
    Err err;
    err_clear(&err);
    TenantId tenant;
    if (!http_api_param_tenant_id(req, &tenant, &err)) {
        http_reply_error(req, &err);
        return;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    json_t *out = NULL;
    bool ok = read(svc, &tenant, &out, &err);
    http_api_reply_sync(req, ok, out, &err);
}

bool http_api_body(HttpRequest *req, const JsonSpec *spec, void *out, json_t **doc, Err *err)
{
    json_t *body = NULL;
    if (doc != NULL)
        *doc = NULL;
    if (!http_request_json(req, &body, err))
        return false;
    if (!json_is_object(body)) {
        err_set(err, ERR_BAD_REQUEST, "%s: the body must be a JSON object", spec->what);
        json_decref(body);
        return false;
    }
    if (!json_decode(body, spec, out, err)) {
        json_decref(body);
        return false;
    }
    if (doc != NULL)
        *doc = body;
    else
        json_decref(body);
    return true;
}

/* param_missing: a route whose pattern lacks the parameter its handler reads: a table bug. */
static bool param_missing(const char *name, Err *err)
{
    err_set(err, ERR_INTERNAL, "route has no {%s} parameter", name);
    return false;
}

bool http_api_param_tenant_id(HttpRequest *req, TenantId *out, Err *err)
{
    const char *s = http_request_param(req, "tenant_id");
    if (s == NULL)
        return param_missing("tenant_id", err);
    if (!tenant_id_parse(s, out, err)) {
        err_prefix(err, "tenant_id: ");
        return false;
    }
    return true;
}

bool http_api_param_tsid(HttpRequest *req, TenantShardId *out, Err *err)
{
    const char *s = http_request_param(req, "tenant_shard_id");
    if (s == NULL)
        return param_missing("tenant_shard_id", err);
    if (!tsid_parse(s, out, err)) {
        err_prefix(err, "tenant_shard_id: ");
        return false;
    }
    return true;
}

bool http_api_param_timeline_id(HttpRequest *req, TimelineId *out, Err *err)
{
    const char *s = http_request_param(req, "timeline_id");
    if (s == NULL)
        return param_missing("timeline_id", err);
    if (!timeline_id_parse(s, out, err)) {
        err_prefix(err, "timeline_id: ");
        return false;
    }
    return true;
}

bool http_api_param_node_id(HttpRequest *req, NodeId *out, Err *err)
{
    const char *s = http_request_param(req, "node_id");
    if (s == NULL)
        return param_missing("node_id", err);
    uint64_t v = 0;
    if (!parse_u64(s, 0, INT64_MAX, &v)) {
        err_set(err, ERR_BAD_REQUEST, "node_id: \"%.64s\" is not a node id", s);
        return false;
    }
    *out = v;
    return true;
}

Service *http_api_node_service(HttpRequest *req, void *app, NodeId *node)
{
    Err err;
    err_clear(&err);
    if (!http_api_param_node_id(req, node, &err)) {
        http_reply_error(req, &err);
        return NULL;
    }
    return http_api_service(req, app);
}

/* ---- health, metrics, failpoints ---- */

static void handle_status(HttpRequest *req, void *arg)
{
    http_reply_json(req, 200, NULL);
}

/* not_ready_reason: why /ready answers 503, for the operator reading it. */
static const char *not_ready_reason(const StorconApp *app)
{
    switch (app->phase) {
    case STORCON_PHASE_MIGRATING:
        if (app->migrator != NULL &&
            (schema_migrate_state(app->migrator) == SCHEMA_MIGRATE_CONNECTING ||
             schema_migrate_state(app->migrator) == SCHEMA_MIGRATE_CONNECT_BACKOFF))
            return "connecting to the database";
        return "applying database migrations";
    case STORCON_PHASE_STARTING:
        return "loading state and reconciling";
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
    const char *reason = NULL;
    if (app->phase == STORCON_PHASE_READY &&
        (app->service == NULL || service_is_ready(app->service, &reason))) {
        http_reply_json(req, 200, NULL);
        return;
    }
    char msg[128];
    str_printf(msg, sizeof(msg), "not ready: %s", reason != NULL ? reason : not_ready_reason(app));
    http_reply_json(req, 503, json_pack("{s:s}", "msg", msg));
}

static void handle_metrics(HttpRequest *req, void *arg)
{
    StorconApp *app = arg;
    if (app->service != NULL)
        service_metrics_refresh(app->service);
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
    http_reply_json(req, 200, NULL); /* Neon: null */
}

/* The passthrough rows: any GET under /v1/tenant/{id}/ up to this depth that no other GET row
 * serves more specifically (the server prefers literal segments).
 */
#define TENANT_PATH "/v1/tenant/{tenant_shard_id}"
#define PASSTHROUGH(pattern)                                                                       \
    {                                                                                              \
        HTTP_GET, pattern, AUTH_SCOPE_PAGESERVERAPI, http_tenants_passthrough                      \
    }

const HttpRoute STORCON_HTTP_ROUTES[] = {
    {HTTP_GET, "/status", AUTH_SCOPE_NONE, handle_status},
    {HTTP_GET, "/ready", AUTH_SCOPE_NONE, handle_ready},
    {HTTP_GET, "/metrics", AUTH_SCOPE_NONE, handle_metrics},
    {HTTP_PUT, "/debug/v1/failpoints", AUTH_SCOPE_ADMIN, handle_put_failpoints},

    /* /v1: the virtual pageserver */
    {HTTP_POST, "/v1/tenant", AUTH_SCOPE_PAGESERVERAPI, http_tenants_create},
    {HTTP_DELETE, "/v1/tenant/{tenant_id}", AUTH_SCOPE_PAGESERVERAPI, http_tenants_delete},
    {HTTP_PUT, "/v1/tenant/config", AUTH_SCOPE_PAGESERVERAPI, http_tenants_config_put},
    {HTTP_PATCH, "/v1/tenant/config", AUTH_SCOPE_PAGESERVERAPI, http_tenants_config_patch},
    {HTTP_GET, "/v1/tenant/{tenant_id}/config", AUTH_SCOPE_PAGESERVERAPI, http_tenants_config_get},
    {HTTP_PUT, TENANT_PATH "/location_config", AUTH_SCOPE_PAGESERVERAPI,
     http_tenants_location_config},
    {HTTP_POST, "/v1/tenant/{tenant_id}/timeline", AUTH_SCOPE_PAGESERVERAPI,
     http_tenants_timeline_create},
    {HTTP_DELETE, "/v1/tenant/{tenant_id}/timeline/{timeline_id}", AUTH_SCOPE_PAGESERVERAPI,
     http_tenants_timeline_delete},
    PASSTHROUGH(TENANT_PATH),
    PASSTHROUGH(TENANT_PATH "/{p1}"),
    PASSTHROUGH(TENANT_PATH "/{p1}/{p2}"),
    PASSTHROUGH(TENANT_PATH "/{p1}/{p2}/{p3}"),
    PASSTHROUGH(TENANT_PATH "/{p1}/{p2}/{p3}/{p4}"),
    PASSTHROUGH(TENANT_PATH "/{p1}/{p2}/{p3}/{p4}/{p5}"),

    /* /control/v1: operators */
    {HTTP_POST, "/control/v1/node", AUTH_SCOPE_INFRA, http_nodes_register},
    {HTTP_GET, "/control/v1/node", AUTH_SCOPE_INFRA, http_nodes_list},
    {HTTP_GET, "/control/v1/node/{node_id}", AUTH_SCOPE_INFRA, http_nodes_describe},
    {HTTP_GET, "/control/v1/node/{node_id}/shards", AUTH_SCOPE_INFRA, http_nodes_shards},
    {HTTP_PUT, "/control/v1/preferred_azs", AUTH_SCOPE_ADMIN, http_tenants_preferred_azs},
    {HTTP_PUT, "/control/v1/node/{node_id}/config", AUTH_SCOPE_ADMIN, http_nodes_configure},
    {HTTP_PUT, "/control/v1/node/{node_id}/drain", AUTH_SCOPE_INFRA, http_nodes_drain},
    {HTTP_DELETE, "/control/v1/node/{node_id}/drain", AUTH_SCOPE_INFRA, http_nodes_drain_cancel},
    {HTTP_PUT, "/control/v1/node/{node_id}/fill", AUTH_SCOPE_INFRA, http_nodes_fill},
    {HTTP_DELETE, "/control/v1/node/{node_id}/fill", AUTH_SCOPE_INFRA, http_nodes_fill_cancel},
    {HTTP_PUT, "/control/v1/node/{node_id}/delete", AUTH_SCOPE_ADMIN, http_nodes_delete},
    {HTTP_DELETE, "/control/v1/node/{node_id}/delete", AUTH_SCOPE_ADMIN, http_nodes_delete_cancel},
    {HTTP_GET, "/control/v1/tenant", AUTH_SCOPE_ADMIN, http_tenants_list},
    {HTTP_GET, "/control/v1/tenant/{tenant_id}", AUTH_SCOPE_SCRUBBER, http_tenants_describe},
    {HTTP_PUT, "/control/v1/tenant/{tenant_id}/policy", AUTH_SCOPE_ADMIN, http_tenants_policy},
    {HTTP_PUT, "/control/v1/tenant/{tenant_id}/shard_split", AUTH_SCOPE_ADMIN,
     http_tenants_shard_split},
    {HTTP_PUT, "/control/v1/tenant/{tenant_shard_id}/migrate", AUTH_SCOPE_ADMIN,
     http_migrate_shard},
    {HTTP_PUT, "/control/v1/tenant/{tenant_shard_id}/migrate_secondary", AUTH_SCOPE_ADMIN,
     http_migrate_secondary},
    {HTTP_GET, "/control/v1/tenant/{tenant_id}/timeline/{timeline_id}/import", AUTH_SCOPE_ADMIN,
     http_tenants_import_describe},

    /* /upcall/v1: pageservers */
    {HTTP_POST, "/upcall/v1/re-attach", AUTH_SCOPE_GENERATIONS_API, http_upcalls_reattach},
    {HTTP_POST, "/upcall/v1/validate", AUTH_SCOPE_GENERATIONS_API, http_upcalls_validate},
    {HTTP_GET, "/upcall/v1/timeline_import_status", AUTH_SCOPE_GENERATIONS_API,
     http_upcalls_import_status_get},
    {HTTP_POST, "/upcall/v1/timeline_import_status", AUTH_SCOPE_GENERATIONS_API,
     http_upcalls_import_status_put},

    /* /debug/v1 */
    {HTTP_POST, "/debug/v1/attach-hook", AUTH_SCOPE_ADMIN, http_debug_attach_hook},
    {HTTP_GET, "/debug/v1/tenant/{tenant_id}/locate", AUTH_SCOPE_ADMIN, http_debug_locate},
    {HTTP_POST, "/debug/v1/inspect", AUTH_SCOPE_ADMIN, http_debug_inspect},
    {HTTP_GET, "/debug/v1/tenant", AUTH_SCOPE_ADMIN, http_debug_tenants},
    {HTTP_POST, "/debug/v1/reconcile_all", AUTH_SCOPE_ADMIN, http_debug_reconcile_all},
    {HTTP_POST, "/debug/v1/consistency_check", AUTH_SCOPE_ADMIN, http_debug_consistency_check},
    {HTTP_GET, "/debug/v1/scheduler", AUTH_SCOPE_ADMIN, http_debug_scheduler},
    {HTTP_GET, "/debug/v1/operations", AUTH_SCOPE_ADMIN, http_debug_operations},
    {HTTP_GET, "/debug/v1/tombstone", AUTH_SCOPE_ADMIN, http_debug_tombstone_list},
    {HTTP_DELETE, "/debug/v1/tombstone/{node_id}", AUTH_SCOPE_ADMIN, http_debug_tombstone_delete},
};

const size_t STORCON_HTTP_ROUTES_COUNT =
    sizeof(STORCON_HTTP_ROUTES) / sizeof(STORCON_HTTP_ROUTES[0]);
