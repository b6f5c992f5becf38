/*
 * http_nodes_ops.c: the node operation routes (docs/api.md "Node operations"): PUT / DELETE
 * /control/v1/node/{id}/drain, /fill and /delete (start 202, cancel 200), and the tombstone
 * admin routes GET /debug/v1/tombstone and DELETE /debug/v1/tombstone/{id}. The work is in
 * storcon/service_drain.c.
 */
#include <jansson.h>

#include "shared/err.h"
#include "storcon/http_api.h"
#include "storcon/operation.h"
#include "storcon/service.h"

/* node_op: {node_id} from the path, then start (or cancel) kind. */
static void node_op(HttpRequest *req, void *app, OperationKind kind, bool cancel)
{
    NodeId node = 0;
    Service *svc = http_api_node_service(req, app, &node);
    if (svc == NULL)
        return;
    ApiOp *op = http_api_op_new(req, app, svc, cancel ? 200 : 202);
    if (cancel)
        service_node_op_cancel(svc, node, kind, http_api_op_json_done, op);
    else
        service_node_op_start(svc, node, kind, http_api_op_json_done, op);
}

void http_nodes_drain(HttpRequest *req, void *app)
{
    node_op(req, app, OPERATION_NODE_DRAIN, false);
}

void http_nodes_drain_cancel(HttpRequest *req, void *app)
{
    node_op(req, app, OPERATION_NODE_DRAIN, true);
}

void http_nodes_fill(HttpRequest *req, void *app)
{
    node_op(req, app, OPERATION_NODE_FILL, false);
}

void http_nodes_fill_cancel(HttpRequest *req, void *app)
{
    node_op(req, app, OPERATION_NODE_FILL, true);
}

void http_nodes_delete(HttpRequest *req, void *app)
{
    node_op(req, app, OPERATION_NODE_DELETE, false);
}

void http_nodes_delete_cancel(HttpRequest *req, void *app)
{
    node_op(req, app, OPERATION_NODE_DELETE, true);
}

void http_debug_tombstone_list(HttpRequest *req, void *app)
{
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    ApiOp *op = http_api_op_new(req, app, svc, 200);
    service_tombstone_list(svc, http_api_op_json_done, op);
}

void http_debug_tombstone_delete(HttpRequest *req, void *app)
{
    NodeId node = 0;
    Service *svc = http_api_node_service(req, app, &node);
    if (svc == NULL)
        return;
    ApiOp *op = http_api_op_new(req, app, svc, 200);
    service_tombstone_delete(svc, node, http_api_op_json_done, op);
}
