/*
 * http_nodes.c: /control/v1/node routes: register (infra), list and describe (infra), configure
 * (admin). Drain, fill and delete come with their own issues.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/json.h"
#include "storcon/http_api.h"
#include "storcon/placement.h"
#include "storcon/service.h"

/* http_nodes_register: POST /control/v1/node with a NodeRegisterRequest (strict). */
void http_nodes_register(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    json_t *body = NULL;
    ServiceNodeRegistration reg;
    memset(&reg, 0, sizeof(reg));
    if (!http_request_json(req, &body, &err) ||
        !service_node_registration_from_json(body, &reg, &err)) {
        json_decref(body);
        http_reply_error(req, &err);
        return;
    }
    json_decref(body);
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    ApiOp *op = http_api_op_new(req, app, svc, 200);
    service_node_register(svc, &reg, http_api_op_json_done, op);
}

void http_nodes_list(HttpRequest *req, void *app)
{
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    http_reply_json(req, 200, service_node_list(svc));
}

/* node_read: a synchronous read of one node's state, {node_id} from the path. */
static void node_read(HttpRequest *req, void *app,
                      bool (*read)(Service *, NodeId, json_t **, Err *))
{
    NodeId node = 0;
    Service *svc = http_api_node_service(req, app, &node);
    if (svc == NULL)
        return;
    Err err;
    err_clear(&err);
    json_t *out = NULL;
    bool ok = read(svc, node, &out, &err);
    http_api_reply_sync(req, ok, out, &err);
}

void http_nodes_describe(HttpRequest *req, void *app)
{
    node_read(req, app, service_node_describe);
}

void http_nodes_shards(HttpRequest *req, void *app)
{
    node_read(req, app, service_node_shards);
}

/* The body of PUT /control/v1/node/{id}/config. */
typedef struct NodeConfigureBody {
    NodeId node_id;
    char availability[32];
    JsonPresence availability_p;
    char scheduling[32];
    JsonPresence scheduling_p;
} NodeConfigureBody;

static const JsonField NODE_CONFIGURE_FIELDS[] = {
    JSON_FIELD(NodeConfigureBody, node_id, "node_id", JSON_FIELD_NODE_ID, JSON_REQUIRED),
    JSON_FIELD_P(NodeConfigureBody, availability, availability_p, "availability", JSON_FIELD_STRING,
                 JSON_NULLABLE),
    JSON_FIELD_P(NodeConfigureBody, scheduling, scheduling_p, "scheduling", JSON_FIELD_STRING,
                 JSON_NULLABLE),
};
static const JsonSpec NODE_CONFIGURE_SPEC =
    JSON_SPEC("node configure", NODE_CONFIGURE_FIELDS, JSON_UNKNOWN_REJECT);

/* http_nodes_configure: the node id of the path and of the body must agree (a request carrying both
 * that disagree is a client bug, better refused than guessed). */
void http_nodes_configure(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    NodeId node = 0;
    NodeConfigureBody body;
    memset(&body, 0, sizeof(body));
    ServiceNodeConfigure cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (!http_api_param_node_id(req, &node, &err) ||
        !http_api_body(req, &NODE_CONFIGURE_SPEC, &body, NULL, &err))
        goto fail;
    if (body.node_id != node) {
        err_set(&err, ERR_BAD_REQUEST, "node_id %llu in the body does not match %llu in the path",
                (unsigned long long)body.node_id, (unsigned long long)node);
        goto fail;
    }
    cfg.node_id = node;
    if (body.availability_p == JSON_PRESENCE_SET) {
        cfg.has_availability = true;
        if (!node_availability_parse(body.availability, &cfg.availability, &err)) {
            err_prefix(&err, "availability: ");
            goto fail;
        }
    }
    if (body.scheduling_p == JSON_PRESENCE_SET) {
        cfg.has_scheduling = true;
        if (!node_scheduling_policy_parse(body.scheduling, &cfg.scheduling, &err)) {
            err_prefix(&err, "scheduling: ");
            goto fail;
        }
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL)
        return;
    ApiOp *op = http_api_op_new(req, app, svc, 200);
    service_node_configure(svc, &cfg, http_api_op_json_done, op);
    return;
fail:
    http_reply_error(req, &err);
}
