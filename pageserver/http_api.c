/*
 * http_api.c: route table of the pageserver management API (pageserver.md "Management API"), the
 * helpers the route files share, and the node, location and tenant routes (http_api.h).
 */
#include "pageserver/http_api.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/failpoint.h"
#include "shared/http_server.h"
#include "shared/json.h"
#include "shared/metrics.h"
#include "shared/str.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"
#include "pageserver/deletion_queue.h"
#include "pageserver/location_config.h"
#include "pageserver/tenant.h"
#include "pageserver/tenant_lifecycle.h"
#include "shared/tenant_config.h"
#include "pageserver/utilization.h"

void pageserver_reply_json(PageserverApp *app, HttpRequest *req, int status, json_t *body)
{
    if (app->http == NULL || req == NULL) {
        json_decref(body);
        return;
    }
    http_reply_json(req, status, body);
}

void pageserver_reply_error(PageserverApp *app, HttpRequest *req, const Err *err)
{
    if (app->http == NULL || req == NULL)
        return;
    http_reply_error(req, err);
}

void pageserver_reply_raw(PageserverApp *app, HttpRequest *req, int status,
                          const char *content_type, const void *body, size_t len)
{
    if (app->http == NULL || req == NULL)
        return;
    http_reply_raw(req, status, content_type, body, len);
}

/* ---- shared helpers ---- */

bool http_param_tsid(HttpRequest *req, TenantShardId *out, Err *err)
{
    const char *s = http_request_param(req, "tenant_shard_id");
    if (s == NULL || !tsid_parse(s, out, err)) {
        if (s == NULL)
            err_set(err, ERR_BAD_REQUEST, "missing tenant shard id");
        err_prefix(err, "tenant shard id: ");
        return false;
    }
    return true;
}

bool http_param_timeline(HttpRequest *req, TimelineId *out, Err *err)
{
    const char *s = http_request_param(req, "timeline_id");
    if (s == NULL || !timeline_id_parse(s, out, err)) {
        if (s == NULL)
            err_set(err, ERR_BAD_REQUEST, "missing timeline id");
        err_prefix(err, "timeline id: ");
        return false;
    }
    return true;
}

static bool query_bool(HttpRequest *req, const char *name, bool def, bool *out, Err *err)
{
    const char *s = http_request_query(req, name);
    if (s == NULL) {
        *out = def;
        return true;
    }
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = false;
        return true;
    }
    err_set(err, ERR_BAD_REQUEST, "query parameter %s: expected true or false, got \"%s\"", name,
            s);
    return false;
}

bool http_query_ms(HttpRequest *req, const char *name, long max, long *out, Err *err)
{
    const char *s = http_request_query(req, name);
    uint64_t v = 0;
    *out = -1;
    if (s == NULL)
        return true;
    if (!parse_u64(s, 0, INT32_MAX, &v)) {
        err_set(err, ERR_BAD_REQUEST, "query parameter %s: expected milliseconds, got \"%s\"", name,
                s);
        return false;
    }
    *out = (long)v > max ? max : (long)v;
    return true;
}

void http_reply_result(HttpRequest *req, bool ok, json_t *json, const Err *err)
{
    if (ok)
        http_reply_json(req, 200, json);
    else
        http_reply_error(req, err);
}

/* HttpPending: the argument of a domain completion: the request and the app (not read from the
 * request: after the loop has ended the server has freed it, app->http is NULL and the reply
 * helpers must not touch it). */
typedef struct HttpPending {
    PageserverApp *app;
    HttpRequest *req;
} HttpPending;

void *http_await(HttpRequest *req, PageserverApp *app)
{
    HttpPending *p = xcalloc(1, sizeof(*p));
    p->app = app;
    p->req = req;
    return p;
}

/* http_pending_take: the request and app of a completion's argument (freed here). */
HttpRequest *http_pending_take(void *arg, PageserverApp **app)
{
    HttpPending *p = arg;
    HttpRequest *req = p->req;
    *app = p->app;
    free(p);
    return req;
}

static void reply_json_status(int status, const Err *err, json_t *result, void *arg)
{
    PageserverApp *app = NULL;
    HttpRequest *req = http_pending_take(arg, &app);
    if (err != NULL)
        pageserver_reply_error(app, req, err);
    else
        pageserver_reply_json(app, req, status, result);
}

/* "no content" successes answer JSON null, as Neon's json_response(status, ()) does */
void http_done_200(const Err *err, void *arg)
{
    reply_json_status(200, err, err == NULL ? json_null() : NULL, arg);
}

void http_done_202(const Err *err, void *arg)
{
    reply_json_status(202, err, err == NULL ? json_null() : NULL, arg);
}

void http_json_200(const Err *err, json_t *result, void *arg)
{
    reply_json_status(200, err, result, arg);
}

void http_json_201(const Err *err, json_t *result, void *arg)
{
    reply_json_status(201, err, result, arg);
}

/* ---- health, metrics, failpoints ---- */

/* handle_status: liveness and identity; the controller's heartbeat checks the id. */
static void handle_status(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    http_reply_json(req, 200, json_pack("{s:I}", "id", (json_int_t)app->cfg.id));
}

static void handle_metrics(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    if (app->deletion != NULL)
        metric_gauge_set(app->m.deletion_queue_depth, (double)deletion_queue_depth(app->deletion));
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
    http_reply_json(req, 200, NULL); /* Neon: null */
}

/* ---- locations ---- */

static void handle_location_config_put(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *body = NULL;
    LocationConfig cfg;
    location_config_init(&cfg);
    long flush = -1;
    bool lazy = false;
    if (!http_param_tsid(req, &tsid, &err) || !query_bool(req, "lazy", false, &lazy, &err) ||
        !http_query_ms(req, "flush_ms", PAGESERVER_FLUSH_MAX_MS, &flush, &err))
        goto fail;
    if (!http_request_json(req, &body, &err) || !location_config_decode(body, &cfg, &err) ||
        !location_config_check_tsid(&cfg, &tsid, &err))
        goto fail;
    json_decref(body);
    tenant_location_config_put(app->tenants, &tsid, &cfg, flush, lazy, http_json_200,
                               http_await(req, app));
    return;
fail:
    location_config_finish(&cfg);
    json_decref(body);
    http_reply_error(req, &err);
}

static void handle_location_config_list(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    json_t *out = NULL;
    bool ok = tenant_location_config_list(app->tenants, &out, &err);
    http_reply_result(req, ok, out, &err);
}

static void handle_location_config_get(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *out = NULL;
    bool ok = http_param_tsid(req, &tsid, &err) &&
              tenant_location_config_get(app->tenants, &tsid, &out, &err);
    http_reply_result(req, ok, out, &err);
}

/* ---- tenants ---- */

static void handle_tenant_list(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    json_t *out = NULL;
    bool ok = tenant_list(app->tenants, &out, &err);
    http_reply_result(req, ok, out, &err);
}

static void handle_tenant_get(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *out = NULL;
    bool ok = http_param_tsid(req, &tsid, &err) && tenant_get(app->tenants, &tsid, &out, &err);
    http_reply_result(req, ok, out, &err);
}

static void handle_tenant_delete(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    if (!http_param_tsid(req, &tsid, &err)) {
        http_reply_error(req, &err);
        return;
    }
    tenant_delete(app->tenants, &tsid, http_done_200, http_await(req, app));
}

static void handle_tenant_config_get(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *out = NULL;
    bool ok =
        http_param_tsid(req, &tsid, &err) && tenant_config_get(app->tenants, &tsid, &out, &err);
    http_reply_result(req, ok, out, &err);
}

static void tenant_config_write(HttpRequest *req, PageserverApp *app, bool patch)
{
    Err err = {0};
    json_t *body = NULL;
    TenantConfigRequest r;
    if (!http_request_json(req, &body, &err) || !tenant_config_request_decode(body, &r, &err)) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    tenant_config_set(app->tenants, &r, patch, http_done_200, http_await(req, app));
}

static void handle_tenant_config_put(HttpRequest *req, void *app_arg)
{
    tenant_config_write(req, app_arg, false);
}

static void handle_tenant_config_patch(HttpRequest *req, void *app_arg)
{
    tenant_config_write(req, app_arg, true);
}

/* ---- the older lifecycle API (tenant_lifecycle.h) ---- */

/* param_tenant: the {tenant_id} path parameter (a bare tenant id); 400 naming it. */
static bool param_tenant(HttpRequest *req, TenantId *out, Err *err)
{
    const char *s = http_request_param(req, "tenant_id");
    if (s == NULL || !tenant_id_parse(s, out, err)) {
        if (s == NULL)
            err_set(err, ERR_BAD_REQUEST, "missing tenant id");
        err_prefix(err, "tenant id: ");
        return false;
    }
    return true;
}

/* optional_body: the JSON body, or NULL when the body is empty (Neon's
 * json_request_or_empty_body). */
static bool optional_body(HttpRequest *req, json_t **out, Err *err)
{
    size_t len = 0;
    (void)http_request_body(req, &len);
    *out = NULL;
    return len == 0 || http_request_json(req, out, err);
}

static void handle_tenant_create(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    json_t *body = NULL;
    TenantCreateRequest r;
    bool ok = http_request_json(req, &body, &err) && tenant_create_request_decode(body, &r, &err);
    json_decref(body);
    if (!ok) {
        http_reply_error(req, &err);
        return;
    }
    tenant_create(app->tenants, &r, http_json_201, http_await(req, app));
}

static void handle_tenant_attach(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantId tenant;
    json_t *body = NULL;
    TenantAttachRequest r;
    bool ok = param_tenant(req, &tenant, &err) && optional_body(req, &body, &err) &&
              tenant_attach_request_decode(body, &r, &err);
    json_decref(body);
    if (!ok) {
        http_reply_error(req, &err);
        return;
    }
    tenant_attach(app->tenants, &tenant, &r, http_done_202, http_await(req, app));
}

static void handle_tenant_detach(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantId tenant;
    bool detach_ignored = false;
    if (!param_tenant(req, &tenant, &err) ||
        !query_bool(req, "detach_ignored", false, &detach_ignored, &err)) {
        http_reply_error(req, &err);
        return;
    }
    tenant_detach(app->tenants, &tenant, detach_ignored, http_done_200, http_await(req, app));
}

static void handle_tenant_ignore(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantId tenant;
    if (!param_tenant(req, &tenant, &err)) {
        http_reply_error(req, &err);
        return;
    }
    tenant_ignore(app->tenants, &tenant, http_done_200, http_await(req, app));
}

static void handle_tenant_load(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantId tenant;
    json_t *body = NULL;
    Generation gen = GENERATION_NONE;
    bool ok = param_tenant(req, &tenant, &err) && optional_body(req, &body, &err) &&
              tenant_load_request_decode(body, &gen, &err);
    json_decref(body);
    if (!ok) {
        http_reply_error(req, &err);
        return;
    }
    tenant_load(app->tenants, &tenant, gen, http_done_202, http_await(req, app));
}

/* ---- node ---- */

static void on_utilization(const Err *err, const Utilization *u, void *arg)
{
    PageserverApp *app = NULL;
    HttpRequest *req = http_pending_take(arg, &app);
    if (err != NULL)
        pageserver_reply_error(app, req, err);
    else
        pageserver_reply_json(app, req, 200, utilization_to_json(u));
}

static void handle_utilization(HttpRequest *req, void *app_arg)
{
    utilization_measure(app_arg, on_utilization, http_await(req, app_arg));
}

static void on_deletion_flushed(void *arg, const Err *err)
{
    http_done_200(err, arg);
}

static void handle_deletion_flush(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    bool execute = false;
    if (!query_bool(req, "execute", false, &execute, &err)) {
        http_reply_error(req, &err);
        return;
    }
    deletion_queue_flush(app->deletion, execute, on_deletion_flushed, http_await(req, app));
}

#define TSID_PATH   "/v1/tenant/{tenant_shard_id}"
#define TENANT_PATH "/v1/tenant/{tenant_id}"

static const HttpRoute PAGESERVER_ROUTES[] = {
    {HTTP_GET, "/v1/status", AUTH_SCOPE_NONE, handle_status},
    {HTTP_GET, "/metrics", AUTH_SCOPE_NONE, handle_metrics},
    {HTTP_PUT, "/v1/failpoints", AUTH_SCOPE_PAGESERVERAPI, handle_failpoints},
    {HTTP_PUT, TSID_PATH "/location_config", AUTH_SCOPE_PAGESERVERAPI, handle_location_config_put},
    {HTTP_GET, "/v1/location_config", AUTH_SCOPE_PAGESERVERAPI, handle_location_config_list},
    {HTTP_GET, "/v1/location_config/{tenant_shard_id}", AUTH_SCOPE_PAGESERVERAPI,
     handle_location_config_get},
    {HTTP_GET, "/v1/tenant", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_list},
    {HTTP_POST, "/v1/tenant", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_create},
    {HTTP_POST, TENANT_PATH "/attach", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_attach},
    {HTTP_POST, TENANT_PATH "/detach", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_detach},
    {HTTP_POST, TENANT_PATH "/ignore", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_ignore},
    {HTTP_POST, TENANT_PATH "/load", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_load},
    {HTTP_PUT, "/v1/tenant/config", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_config_put},
    {HTTP_PATCH, "/v1/tenant/config", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_config_patch},
    {HTTP_GET, TSID_PATH, AUTH_SCOPE_PAGESERVERAPI, handle_tenant_get},
    {HTTP_DELETE, TSID_PATH, AUTH_SCOPE_PAGESERVERAPI, handle_tenant_delete},
    {HTTP_GET, TSID_PATH "/config", AUTH_SCOPE_PAGESERVERAPI, handle_tenant_config_get},
    {HTTP_POST, TSID_PATH "/timeline", AUTH_SCOPE_PAGESERVERAPI, http_handle_timeline_create},
    {HTTP_GET, TSID_PATH "/timeline", AUTH_SCOPE_PAGESERVERAPI, http_handle_timeline_list},
    {HTTP_GET, TSID_PATH "/timeline/{timeline_id}", AUTH_SCOPE_PAGESERVERAPI,
     http_handle_timeline_get},
    {HTTP_DELETE, TSID_PATH "/timeline/{timeline_id}", AUTH_SCOPE_PAGESERVERAPI,
     http_handle_timeline_delete},
    {HTTP_PUT, TSID_PATH "/timeline/{timeline_id}/activate_post_import", AUTH_SCOPE_PAGESERVERAPI,
     http_handle_timeline_activate_post_import},
    {HTTP_GET, TSID_PATH "/timeline/{timeline_id}/getpage", AUTH_SCOPE_PAGESERVERAPI,
     http_handle_getpage},
    {HTTP_GET, TSID_PATH "/timeline/{timeline_id}/relations", AUTH_SCOPE_PAGESERVERAPI,
     http_handle_relations},
    {HTTP_GET, "/v1/utilization", AUTH_SCOPE_PAGESERVERAPI, handle_utilization},
    {HTTP_PUT, "/v1/deletion_queue/flush", AUTH_SCOPE_PAGESERVERAPI, handle_deletion_flush},
    {HTTP_POST, TSID_PATH "/heatmap_upload", AUTH_SCOPE_PAGESERVERAPI, http_handle_heatmap_upload},
    {HTTP_POST, TSID_PATH "/secondary/download", AUTH_SCOPE_PAGESERVERAPI,
     http_handle_secondary_download},
    {HTTP_GET, TSID_PATH "/secondary/status", AUTH_SCOPE_PAGESERVERAPI,
     http_handle_secondary_status},
    {HTTP_POST, TSID_PATH "/wait_lsn", AUTH_SCOPE_PAGESERVERAPI, http_handle_wait_lsn},
    {HTTP_PUT, TSID_PATH "/shard_split", AUTH_SCOPE_PAGESERVERAPI, http_handle_shard_split},
};

const HttpRoute *pageserver_http_routes(size_t *n)
{
    *n = sizeof(PAGESERVER_ROUTES) / sizeof(PAGESERVER_ROUTES[0]);
    return PAGESERVER_ROUTES;
}
