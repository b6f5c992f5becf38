/*
 * http_debug.c: /debug/v1 routes (scope admin): attach-hook (a test hook issuing generations),
 * locate, inspect, the shard dump, reconcile_all, consistency_check and the scheduler dump
 * (storcon.md "/debug/v1").
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/json.h"
#include "storcon/http_api.h"
#include "storcon/node.h"
#include "storcon/service.h"

typedef struct AttachHookBody {
    TenantShardId tsid;
    NodeId node_id;
    JsonPresence node_p;
} AttachHookBody;

static const JsonField ATTACH_HOOK_FIELDS[] = {
    JSON_FIELD(AttachHookBody, tsid, "tenant_shard_id", JSON_FIELD_TSID, JSON_REQUIRED),
    JSON_FIELD_P(AttachHookBody, node_id, node_p, "node_id", JSON_FIELD_NODE_ID, JSON_NULLABLE),
};
static const JsonSpec ATTACH_HOOK_SPEC =
    JSON_SPEC("attach-hook", ATTACH_HOOK_FIELDS, JSON_UNKNOWN_REJECT);

/* http_debug_attach_hook: {"tenant_shard_id", "node_id"?}; a missing or null node detaches.
 * Deliberately takes no tenant lock (the service does not lock it either): tests use it to change
 * an attachment in the middle of a fan-out, which the fan-out's generation re-check must then
 * notice. */
void http_debug_attach_hook(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    AttachHookBody body = {.node_id = NODE_ID_NONE};
    if (!http_api_body(req, &ATTACH_HOOK_SPEC, &body, NULL, &err)) {
        http_reply_error(req, &err);
        return;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    service_attach_hook(svc, &body.tsid, body.node_p == JSON_PRESENCE_SET, body.node_id,
                        http_api_op_json_done, http_api_op_new(req, app, svc, 200));
}

void http_debug_locate(HttpRequest *req, void *app)
{
    http_api_tenant_read(req, app, service_tenant_locate);
}

/* http_debug_reconcile_all: the answer is a bare number, so tests can loop until it is 0. */
void http_debug_reconcile_all(HttpRequest *req, void *app)
{
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    size_t n = service_reconcile_all(svc);
    http_reply_json(req, 200, json_must(json_integer((json_int_t)n)));
}

static void consistency_done(const Err *err, void *arg)
{
    HttpRequest *req = arg;
    if (err != NULL) {
        http_reply_error(req, err);
        return;
    }
    http_reply_json(req, 200, NULL);
}

void http_debug_consistency_check(HttpRequest *req, void *app)
{
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    service_consistency_check(svc, consistency_done, req);
}

void http_debug_scheduler(HttpRequest *req, void *app)
{
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    http_reply_json(req, 200, service_scheduler_json(svc));
}

void http_debug_operations(HttpRequest *req, void *app)
{
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    http_reply_json(req, 200, service_operations_json(svc));
}

typedef struct InspectBody {
    TenantShardId tsid;
} InspectBody;

static const JsonField INSPECT_FIELDS[] = {
    JSON_FIELD(InspectBody, tsid, "tenant_shard_id", JSON_FIELD_TSID, JSON_REQUIRED),
};
static const JsonSpec INSPECT_SPEC = JSON_SPEC("inspect", INSPECT_FIELDS, JSON_UNKNOWN_REJECT);

/* http_debug_inspect: Neon's InspectRequest {"tenant_shard_id"} -> {"attachment"}. */
void http_debug_inspect(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    InspectBody body;
    memset(&body, 0, sizeof(body));
    if (!http_api_body(req, &INSPECT_SPEC, &body, NULL, &err)) {
        http_reply_error(req, &err);
        return;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    http_reply_json(req, 200, service_inspect_json(svc, &body.tsid));
}

void http_debug_tenants(HttpRequest *req, void *app)
{
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    http_reply_json(req, 200, service_shards_dump_json(svc));
}
