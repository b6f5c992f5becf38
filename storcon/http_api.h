/*
 * http_api.h: the storage controller's HTTP route table (spec storcon.md "API"), and the helpers
 * and handlers the route files share (http_tenants.c, http_nodes.c, http_upcalls.c, http_debug.c;
 * the table itself is in http_api.c).
 *
 * Health and test routes:
 *   GET  /status               none   200 {} as soon as the server listens
 *   GET  /ready                none   200 {} once startup is done, else 503 {"msg"}
 *   GET  /metrics              none   Prometheus text format
 *   PUT  /debug/v1/failpoints  admin  [{"name", "actions"}] -> 200 {}
 * The /v1, /control/v1, /upcall/v1 and /debug/v1 routes are those of the spec, with the scopes of
 * its tables; see the table in http_api.c. Passthrough: GET /v1/tenant/{tsid}/... up to five
 * segments deep.
 *
 * How a route works: the handler decodes and validates the request strictly (400 naming the field),
 * finds the service (503 "not ready" while it does not exist), and either answers from memory at
 * once or calls the service with an ApiOp whose completion replies once. The service takes the
 * per-tenant locks itself (storcon/operation.h); routes take none.
 */
#ifndef STORCON_HTTP_API_H
#define STORCON_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/http_server.h"
#include "shared/id.h"
#include "shared/json.h"
#include "storcon/service.h"

extern const HttpRoute STORCON_HTTP_ROUTES[];
extern const size_t STORCON_HTTP_ROUTES_COUNT;

/* ---- shared by the route files (not used outside the HTTP layer) ---- */

typedef struct ApiOp ApiOp;
/* ApiOp: one deferred reply to a request. */
struct ApiOp {
    HttpRequest *req;
    void *app; /* StorconApp */
    Service *svc;
    int ok_status; /* status of the success reply (200, 201) */
};

/* http_api_service: the service, or NULL after replying 503 "not ready" (startup has not created it
 * yet, or it is stopping). */
Service *http_api_service(HttpRequest *req, void *app);

/* http_api_op_new: a deferred operation for req; freed by its reply. Never NULL. */
ApiOp *http_api_op_new(HttpRequest *req, void *app, Service *svc, int ok_status);

/* http_api_op_json_done: a ServiceJsonFn whose arg is an ApiOp: reply ok_status with the result (or
 * the error), free the op. */
void http_api_op_json_done(const Err *err, json_t *result, void *arg);

/* http_api_op_reply: the same, from code that has the outcome in hand (result stolen). */
void http_api_op_reply(ApiOp *op, int status, json_t *result);
void http_api_op_fail(ApiOp *op, const Err *err);

/* http_api_reply_sync: answer a synchronous service read: ok -> 200 with out (stolen), else the
 * error. */
void http_api_reply_sync(HttpRequest *req, bool ok, json_t *out, const Err *err);

/* A synchronous per-tenant read of the service (describe, locate, config). */
typedef bool (*ServiceTenantReadFn)(Service *svc, const TenantId *tenant, json_t **out, Err *err);

/* http_api_tenant_read: the whole of a GET route on {tenant_id} answered by one service read:
 * parse the id (400), check the service is up (503), read, reply. */
void http_api_tenant_read(HttpRequest *req, void *app, ServiceTenantReadFn read);

/* http_api_body: the request body as a JSON object decoded strictly with spec into out (400 naming
 * the field). *doc (may be NULL) receives the parsed document, which OBJECT / ARRAY / ANY members
 * borrow from; the caller json_decrefs it. */
bool http_api_body(HttpRequest *req, const JsonSpec *spec, void *out, json_t **doc,
                   Err *err) MUST_CHECK;

/* Path parameters, 400 naming the parameter when they do not parse. */
bool http_api_param_tenant_id(HttpRequest *req, TenantId *out, Err *err) MUST_CHECK;
bool http_api_param_tsid(HttpRequest *req, TenantShardId *out, Err *err) MUST_CHECK;
bool http_api_param_timeline_id(HttpRequest *req, TimelineId *out, Err *err) MUST_CHECK;
bool http_api_param_node_id(HttpRequest *req, NodeId *out, Err *err) MUST_CHECK;
/* http_api_node_service: {node_id} from the path and the service; NULL after replying (400 for
 * the id, 503 when not ready). */
Service *http_api_node_service(HttpRequest *req, void *app, NodeId *node) MUST_CHECK;

/* ---- handlers (app is the StorconApp) ---- */

/* http_tenants.c: /v1 and /control/v1 tenant routes, timelines, passthrough. */
void http_tenants_create(HttpRequest *req, void *app);
void http_tenants_preferred_azs(HttpRequest *req, void *app);
void http_tenants_delete(HttpRequest *req, void *app);
void http_tenants_config_put(HttpRequest *req, void *app);
void http_tenants_config_patch(HttpRequest *req, void *app);
void http_tenants_config_get(HttpRequest *req, void *app);
void http_tenants_location_config(HttpRequest *req, void *app);
void http_tenants_timeline_create(HttpRequest *req, void *app);
void http_tenants_timeline_delete(HttpRequest *req, void *app);
void http_tenants_passthrough(HttpRequest *req, void *app);
void http_tenants_list(HttpRequest *req, void *app);
void http_tenants_describe(HttpRequest *req, void *app);
void http_tenants_policy(HttpRequest *req, void *app);
/* http_migrate.c */
void http_migrate_shard(HttpRequest *req, void *app);
void http_migrate_secondary(HttpRequest *req, void *app);
void http_tenants_import_describe(HttpRequest *req, void *app);
/* http_split.c: PUT /control/v1/tenant/{tenant_id}/shard_split (service_split.h). */
void http_tenants_shard_split(HttpRequest *req, void *app);

/* http_nodes.c: /control/v1/node routes. */
void http_nodes_register(HttpRequest *req, void *app);
void http_nodes_list(HttpRequest *req, void *app);
void http_nodes_describe(HttpRequest *req, void *app);
void http_nodes_shards(HttpRequest *req, void *app);
void http_nodes_configure(HttpRequest *req, void *app);
/* http_nodes_ops.c: drain, fill, delete (and their cancels), tombstones. */
void http_nodes_drain(HttpRequest *req, void *app);
void http_nodes_drain_cancel(HttpRequest *req, void *app);
void http_nodes_fill(HttpRequest *req, void *app);
void http_nodes_fill_cancel(HttpRequest *req, void *app);
void http_nodes_delete(HttpRequest *req, void *app);
void http_nodes_delete_cancel(HttpRequest *req, void *app);
void http_debug_tombstone_list(HttpRequest *req, void *app);
void http_debug_tombstone_delete(HttpRequest *req, void *app);

/* http_upcalls.c: /upcall/v1 (pageservers). */
void http_upcalls_reattach(HttpRequest *req, void *app);
void http_upcalls_validate(HttpRequest *req, void *app);
void http_upcalls_import_status_get(HttpRequest *req, void *app);
void http_upcalls_import_status_put(HttpRequest *req, void *app);

/* http_debug.c: /debug/v1 (admin). */
void http_debug_attach_hook(HttpRequest *req, void *app);
void http_debug_locate(HttpRequest *req, void *app);
void http_debug_inspect(HttpRequest *req, void *app);
void http_debug_tenants(HttpRequest *req, void *app);
void http_debug_reconcile_all(HttpRequest *req, void *app);
void http_debug_consistency_check(HttpRequest *req, void *app);
void http_debug_scheduler(HttpRequest *req, void *app);
void http_debug_operations(HttpRequest *req, void *app);

#endif
