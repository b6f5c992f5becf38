/*
 * http_secondary.c: the routes of warm secondaries and migrations (http_api.h): POST
 * heatmap_upload (200 null once stored), POST secondary/download?wait_ms= (200 SecondaryProgress
 * when complete, 202 when still running after wait_ms), GET secondary/status (200
 * SecondaryProgress) and POST wait_lsn (200 null reached, 202 null not yet).
 */
#include "pageserver/http_api.h"

#include <string.h>

#include "pageserver/app.h"
#include "pageserver/heatmap.h"
#include "pageserver/secondary.h"
#include "pageserver/wait_lsn.h"

/* The longest a secondary/download call waits (Neon's clients ask for up to a minute or so). */
#define SECONDARY_DOWNLOAD_WAIT_MAX_MS 300000L

void http_handle_heatmap_upload(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    if (!http_param_tsid(req, &tsid, &err)) {
        http_reply_error(req, &err);
        return;
    }
    tenant_heatmap_upload(app->tenants, &tsid, http_done_200, http_await(req, app));
}

static void on_downloaded(const Err *err, json_t *progress, bool complete, void *arg)
{
    PageserverApp *app = NULL;
    HttpRequest *req = http_pending_take(arg, &app);
    if (err != NULL)
        pageserver_reply_error(app, req, err);
    else
        pageserver_reply_json(app, req, complete ? 200 : 202, progress);
}

void http_handle_secondary_download(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    long wait_ms = -1;
    if (!http_param_tsid(req, &tsid, &err) ||
        !http_query_ms(req, "wait_ms", SECONDARY_DOWNLOAD_WAIT_MAX_MS, &wait_ms, &err)) {
        http_reply_error(req, &err);
        return;
    }
    if (wait_ms < 0)
        wait_ms = SECONDARY_DOWNLOAD_WAIT_MAX_MS;
    secondary_download(app->tenants, &tsid, wait_ms, on_downloaded, http_await(req, app));
}

void http_handle_secondary_status(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *out = NULL;
    bool ok =
        http_param_tsid(req, &tsid, &err) && secondary_status(app->tenants, &tsid, &out, &err);
    http_reply_result(req, ok, out, &err);
}

static void on_lsn_waited(const Err *err, bool reached, void *arg)
{
    PageserverApp *app = NULL;
    HttpRequest *req = http_pending_take(arg, &app);
    if (err != NULL)
        pageserver_reply_error(app, req, err);
    else
        pageserver_reply_json(app, req, reached ? 200 : 202, json_null());
}

void http_handle_wait_lsn(HttpRequest *req, void *app_arg)
{
    PageserverApp *app = app_arg;
    Err err = {0};
    TenantShardId tsid;
    json_t *body = NULL;
    WaitLsnRequest r;
    memset(&r, 0, sizeof(r));
    bool ok = http_param_tsid(req, &tsid, &err) && http_request_json(req, &body, &err) &&
              wait_lsn_request_decode(body, &r, &err);
    json_decref(body);
    if (!ok) {
        http_reply_error(req, &err);
        return;
    }
    tenant_wait_lsn(app->tenants, &tsid, &r, on_lsn_waited, http_await(req, app));
    wait_lsn_request_finish(&r);
}
