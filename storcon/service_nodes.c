/*
 * service_nodes.c: nodes: heartbeat results (a node going offline or coming back),
 * registration (also the first step of a re-attach that carries "register"), list, describe and
 * configure.
 */
#include "storcon/service_internal.h"

/* ---- nodes going offline / coming back ---- */

static void node_went_offline(Service *svc, Node *n)
{
    log_warn("node %llu is offline: moving its attached shards", (unsigned long long)n->id);
    n->availability = NODE_AVAILABILITY_OFFLINE;
    ShardMapIter it;
    shard_map_iter_init(&it, svc->map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL)
        (void)tenant_shard_observed_mark_unknown_if_present(s, n->id);
    service_schedule_all(svc);
    /* every call in flight to the node (reconciles, fan-outs, passthrough reads, tenant delete)
     * fails with 503 now instead of retrying against it for up to minutes; the failures arrive on
     * a later loop iteration, after the reconciles below were asked for */
    Err err;
    service_node_offline_err(n->id, &err);
    (void)pageserver_client_cancel_node(svc->pc, n->id, &err);
    (void)service_reconcile_all(svc);
    service_update_node_gauges(svc);
}

void service_hb_result(void *host, NodeId node, const PageserverUtilization *util, const Err *err)
{
    Service *svc = host;
    Node *n = node_set_get(&svc->nodes, node);
    if (n == NULL || svc->stopping)
        return;
    int64_t now = service_now_ms();
    if (util != NULL) {
        NodeAvailability before =
            node_record_heartbeat(n, util->utilization_score, util->max_shard_count, now);
        if (before != NODE_AVAILABILITY_ACTIVE) {
            log_info("node %llu is active (was %s)", (unsigned long long)node,
                     node_availability_name(before));
            service_schedule_all(svc);
            (void)service_reconcile_all(svc);
            service_update_node_gauges(svc);
        }
        return;
    }
    long offline_after = svc->opts.offline_after_ms;
    if (node_is_available(n) && node_heartbeat_overdue(n, now, offline_after)) {
        log_warn("node %llu: no heartbeat for %ld ms: %s", (unsigned long long)node, offline_after,
                 err != NULL ? err->msg : "?");
        node_went_offline(svc, n);
    }
}

/* ---- nodes ---- */

typedef struct RegJson {
    NodeId node_id;
    char listen_http_addr[HOST_MAX];
    uint32_t listen_http_port;
    char listen_pg_addr[HOST_MAX];
    uint32_t listen_pg_port;
    uint32_t listen_https_port;
    char availability_zone_id[NODE_AZ_SIZE];
} RegJson;

static const JsonField REG_FIELDS[] = {
    JSON_FIELD(RegJson, node_id, "node_id", JSON_FIELD_NODE_ID, JSON_REQUIRED),
    JSON_FIELD(RegJson, listen_http_addr, "listen_http_addr", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD(RegJson, listen_http_port, "listen_http_port", JSON_FIELD_U32,
               JSON_REQUIRED | JSON_NONZERO),
    JSON_FIELD(RegJson, listen_pg_addr, "listen_pg_addr", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD(RegJson, listen_pg_port, "listen_pg_port", JSON_FIELD_U32,
               JSON_REQUIRED | JSON_NONZERO),
    JSON_FIELD(RegJson, availability_zone_id, "availability_zone_id", JSON_FIELD_STRING,
               JSON_REQUIRED),
    JSON_FIELD(RegJson, listen_https_port, "listen_https_port", JSON_FIELD_U32, JSON_NULLABLE),
};
static const JsonSpec REG_SPEC = {"node registration", REG_FIELDS,
                                  sizeof(REG_FIELDS) / sizeof(REG_FIELDS[0]), JSON_UNKNOWN_REJECT};

bool service_node_registration_from_json(const json_t *body, ServiceNodeRegistration *out, Err *err)
{
    RegJson r;
    memset(&r, 0, sizeof(r));
    if (!json_decode(body, &REG_SPEC, &r, err))
        return false;
    if (r.listen_http_port > 65535 || r.listen_pg_port > 65535 || r.listen_https_port > 65535) {
        err_set(err, ERR_BAD_REQUEST, "port out of range (1..65535)");
        return false;
    }
    if (r.node_id == NODE_ID_NONE) {
        err_set(err, ERR_BAD_REQUEST, "field \"node_id\": invalid");
        return false;
    }
    memset(out, 0, sizeof(*out));
    out->node_id = r.node_id;
    str_copy(out->listen_http_addr, sizeof(out->listen_http_addr), r.listen_http_addr);
    str_copy(out->listen_pg_addr, sizeof(out->listen_pg_addr), r.listen_pg_addr);
    str_copy(out->availability_zone_id, sizeof(out->availability_zone_id), r.availability_zone_id);
    out->listen_http_port = (uint16_t)r.listen_http_port;
    out->listen_pg_port = (uint16_t)r.listen_pg_port;
    out->listen_https_port = (uint16_t)r.listen_https_port;
    return true;
}

static bool node_from_registration(const ServiceNodeRegistration *reg, Node *out, Err *err)
{
    node_init(out, reg->node_id);
    return node_set_registration(out, reg->listen_http_addr, reg->listen_http_port,
                                 reg->listen_pg_addr, reg->listen_pg_port, reg->listen_https_port,
                                 reg->availability_zone_id, err);
}

static void register_then_reply(RegisterOp *op, const Err *err)
{
    if (err != NULL)
        op->cb(err, NULL, op->arg);
    else
        op->cb(NULL, json_object(), op->arg);
    free(op);
}

static void on_node_inserted(const Err *err, const DbNode *stored, bool created, void *arg)
{
    RegisterOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        op->then(op, err);
        return;
    }
    Err e;
    err_clear(&e);
    Node *existing = node_set_get(&svc->nodes, op->node.id);
    if (existing == NULL) {
        if (!node_set_add(&svc->nodes, &op->node, NULL, &e)) {
            op->then(op, &e);
            return;
        }
        log_info("node %llu registered (%s:%u, az %s); Offline until its first "
                 "heartbeat",
                 (unsigned long long)op->node.id, op->node.listen_http_addr,
                 (unsigned)op->node.listen_http_port, op->node.az);
        service_update_node_gauges(svc);
        service_heartbeat_soon(svc);
    }
    op->then(op, NULL);
}

/* register_fail_cb: a registration refused before the database was asked, delivered from the loop
 * (the service's LoopDefer). */
typedef struct RegisterFail {
    RegisterOp *op;
    Err err;
} RegisterFail;

static void register_fail_cb(void *arg)
{
    RegisterFail *f = arg;
    f->op->then(f->op, &f->err);
    free(f);
}

void service_register_fail(Service *svc, RegisterOp *op, const Err *err)
{
    RegisterFail *f = xcalloc(1, sizeof(*f));
    f->op = op;
    f->err = *err;
    loop_defer(svc->defer, register_fail_cb, f);
}

/* service_register_start: the in-memory check (same registration: done; other addresses: 409), then
 * the database insert, then memory. */
void service_register_start(Service *svc, RegisterOp *op, const ServiceNodeRegistration *reg)
{
    Err err;
    err_clear(&err);
    if (!node_from_registration(reg, &op->node, &err)) {
        service_register_fail(svc, op, &err);
        return;
    }
    Node *existing = node_set_get(&svc->nodes, reg->node_id);
    if (existing != NULL && !node_same_registration(existing, &op->node)) {
        err_set(&err, ERR_CONFLICT, "node %llu is registered with other addresses",
                (unsigned long long)reg->node_id);
        service_register_fail(svc, op, &err);
        return;
    }
    DbNode row;
    memset(&row, 0, sizeof(row));
    row.node_id = reg->node_id;
    str_copy(row.scheduling_policy, sizeof(row.scheduling_policy),
             node_scheduling_policy_name(NODE_SCHEDULING_ACTIVE));
    str_copy(row.listen_http_addr, sizeof(row.listen_http_addr), reg->listen_http_addr);
    str_copy(row.listen_pg_addr, sizeof(row.listen_pg_addr), reg->listen_pg_addr);
    str_copy(row.availability_zone_id, sizeof(row.availability_zone_id), reg->availability_zone_id);
    row.listen_http_port = reg->listen_http_port;
    row.listen_pg_port = reg->listen_pg_port;
    row.listen_https_port = reg->listen_https_port;
    if (!db_nodes_insert(svc->opts.db, &row, on_node_inserted, op, &err))
        service_register_fail(svc, op, &err);
}

void service_node_register(Service *svc, const ServiceNodeRegistration *reg, ServiceJsonFn cb,
                           void *arg)
{
    if (!service_enter_loaded(svc, cb, arg))
        return;
    RegisterOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->then = register_then_reply;
    op->cb = cb;
    op->arg = arg;
    service_register_start(svc, op, reg);
}

json_t *service_node_list(Service *svc)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        const Node *n = node_set_at(&svc->nodes, i);
        json_t *j = node_to_json(n);
        json_set_new(j, "operation", service_node_op_json(svc, n->id)); /* as in describe */
        json_array_append_new(arr, j);
    }
    return arr;
}

bool service_node_describe(Service *svc, NodeId node, json_t **out, Err *err)
{
    Node *n = node_set_get(&svc->nodes, node);
    if (n == NULL) {
        err_set(err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)node);
        return false;
    }
    *out = node_to_json(n);
    json_set_new(*out, "operation", service_node_op_json(svc, node)); /* ours; Neon ignores it */
    return true;
}

bool service_node_shards(Service *svc, NodeId node, json_t **out, Err *err)
{
    if (node_set_get(&svc->nodes, node) == NULL) {
        err_set(err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)node);
        return false;
    }
    json_t *shards = json_array();
    ShardMapIter it;
    shard_map_iter_init(&it, svc->map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        IntentRole role = tenant_shard_intent_role(s, node);
        ObservedState o;
        bool observed = tenant_shard_observed_get(s, node, &o);
        if (role == INTENT_ROLE_NONE && !observed)
            continue;
        json_t *e = json_object();
        json_set_new(e, "tenant_shard_id", json_from_tsid(&s->tsid));
        json_set_new(e, "is_intended_secondary",
                     role == INTENT_ROLE_NONE ? json_null()
                                              : json_boolean(role == INTENT_ROLE_SECONDARY));
        json_set_new(e, "is_observed_secondary",
                     !observed || !o.known ? json_null()
                                           : json_boolean(o.mode == SHARD_LOCATION_SECONDARY));
        json_array_append_new(shards, e);
    }
    *out = json_must(
        json_pack("{s:I, s:o}", "node_id", (json_int_t)node, "shards", json_must(shards)));
    return true;
}

/* apply_node_availability: an operator (or test) sets availability directly. */
static void apply_node_availability(Service *svc, Node *n, NodeAvailability a)
{
    if (a == NODE_AVAILABILITY_OFFLINE) {
        if (n->availability != NODE_AVAILABILITY_OFFLINE)
            node_went_offline(svc, n);
        return;
    }
    NodeAvailability before = n->availability;
    n->availability = a;
    n->last_heartbeat_ms = service_now_ms();
    if (before == NODE_AVAILABILITY_OFFLINE) {
        service_schedule_all(svc);
        (void)service_reconcile_all(svc);
    }
    service_update_node_gauges(svc);
}

static void configure_apply(Operation *op)
{
    Service *svc = operation_host(op);
    const ServiceNodeConfigure *req = operation_data(op);
    Node *n = node_set_get(&svc->nodes, req->node_id);
    if (n == NULL) {
        Err err;
        err_clear(&err);
        err_set(&err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)req->node_id);
        operation_finish(op, &err, NULL);
        return;
    }
    operation_set_step(op, "applying");
    if (req->has_scheduling) {
        (void)node_set_scheduling(n, req->scheduling); /* checked by service_node_configure */
        service_schedule_all(svc);
        (void)service_reconcile_all(svc);
    }
    if (req->has_availability)
        apply_node_availability(svc, n, req->availability);
    operation_finish(op, NULL, json_null()); /* Neon: null */
}

static void configure_stored(Operation *op, const Err *err)
{
    if (err != NULL) {
        operation_finish(op, err, NULL);
        return;
    }
    configure_apply(op);
}

static void configure_run(Operation *op)
{
    Service *svc = operation_host(op);
    const ServiceNodeConfigure *req = operation_data(op);
    Err err;
    err_clear(&err);
    if (!service_check_ready(svc, &err)) {
        operation_finish(op, &err, NULL);
        return;
    }
    if (node_set_get(&svc->nodes, req->node_id) == NULL) {
        err_set(&err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)req->node_id);
        operation_finish(op, &err, NULL);
        return;
    }
    if (!req->has_scheduling) {
        configure_apply(op);
        return;
    }
    operation_set_step(op, "storing the scheduling policy");
    operation_set_next(op, configure_stored);
    if (!db_nodes_set_scheduling_policy(svc->opts.db, req->node_id,
                                        node_scheduling_policy_name(req->scheduling),
                                        operation_continue, op, &err))
        operation_finish(op, &err, NULL);
}

/* service_node_configure: an operation holding the node's exclusive lock (as the drain / fill to
 * come will). */
void service_node_configure(Service *svc, const ServiceNodeConfigure *req, ServiceJsonFn cb,
                            void *arg)
{
    Err err;
    err_clear(&err);
    NodeId busy = NODE_ID_NONE;
    if (service_node_op_busy(svc, &busy) && busy == req->node_id) {
        err_set(&err, ERR_PRECONDITION_FAILED,
                "a drain, fill or delete of node %llu is running: cancel it first",
                (unsigned long long)req->node_id);
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    const Node *n = node_set_get(&svc->nodes, req->node_id);
    if (req->has_scheduling && n != NULL && n->scheduling != req->scheduling) {
        /* Draining, Filling and Deleting belong to their operations (service_drain.c) */
        bool op_state = req->scheduling == NODE_SCHEDULING_DRAINING ||
                        req->scheduling == NODE_SCHEDULING_FILLING ||
                        req->scheduling == NODE_SCHEDULING_DELETING;
        if (op_state ||
            !fsm_allowed(&NODE_SCHEDULING_FSM, (int)n->scheduling, (int)req->scheduling)) {
            err_set(&err, op_state ? ERR_BAD_REQUEST : ERR_PRECONDITION_FAILED,
                    "node %llu: scheduling %s -> %s%s", (unsigned long long)req->node_id,
                    node_scheduling_policy_name(n->scheduling),
                    node_scheduling_policy_name(req->scheduling),
                    op_state ? ": use the drain, fill and delete routes" : " is not allowed");
            service_defer_err(svc, cb, arg, &err);
            return;
        }
    }
    Operation *op = operation_new(svc->ops, OPERATION_NODE_CONFIGURE, cb, arg);
    ServiceNodeConfigure *d = xmalloc(sizeof(*d));
    *d = *req;
    operation_set_data(op, d, NULL);
    operation_lock_node(op, req->node_id, TENANT_LOCK_EXCLUSIVE);
    operation_start(op, configure_run);
}
