/*
 * service_migrate.c: the shard migrate and migrate_secondary operations (service_migrate.h).
 */
#include "storcon/service_migrate.h"

#include "storcon/reconcile_migrate.h"
#include "storcon/service_internal.h"

/* TenantOp.body carries the request: {"tsid", "node", "origin", "secondary"}. */

static TenantShard *find_shard(Service *svc, const TenantShardId *tsid, Err *err)
{
    TenantShard *s = shard_map_get(svc->map, tsid);
    if (s == NULL) {
        char id[TSID_STR_SIZE];
        tsid_format(tsid, id);
        err_set(err, ERR_NOT_FOUND, "tenant shard %s not found", id);
    }
    return s;
}

static Node *usable_node(Service *svc, NodeId id, Err *err)
{
    Node *n = node_set_get(&svc->nodes, id);
    if (n == NULL) {
        err_set(err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)id);
        return NULL;
    }
    if (!node_is_available(n) || !node_is_schedulable(n)) {
        err_set(err, ERR_PRECONDITION_FAILED, "node %llu is not available or not schedulable",
                (unsigned long long)id);
        return NULL;
    }
    return n;
}

static bool migrate_attached(Service *svc, TenantShard *s, const ServiceShardMigrate *req, Err *err)
{
    NodeId old = s->intent.attached;
    if (req->origin != NODE_ID_NONE && req->origin != old) {
        err_set(err, ERR_PRECONDITION_FAILED, "the shard is attached to node %llu, not %llu",
                (unsigned long long)old, (unsigned long long)req->origin);
        return false;
    }
    if (!placement_policy_wants_attached(tenant_shard_policy(s))) {
        err_set(err, ERR_PRECONDITION_FAILED, "the tenant's placement policy attaches nothing");
        return false;
    }
    if (old == req->node)
        return true;
    if (!scheduler_intent_set_attached(&svc->sched, s, req->node, err))
        return false;
    /* the origin becomes the secondary the destination was (a move back is warm) */
    unsigned want = placement_policy_wanted_secondaries(tenant_shard_policy(s));
    if (old != NODE_ID_NONE && s->intent.n_secondaries < want) {
        Err e;
        err_clear(&e);
        if (!scheduler_intent_add_secondary(&svc->sched, s, old, &e))
            log_err(&e, "migrate: keeping the origin as a secondary");
    }
    return true;
}

static bool migrate_secondary(Service *svc, TenantShard *s, const ServiceShardMigrate *req,
                              Err *err)
{
    if (s->intent.attached == req->node) {
        err_set(err, ERR_CONFLICT, "node %llu holds the attached location",
                (unsigned long long)req->node);
        return false;
    }
    if (tenant_shard_intent_role(s, req->node) == INTENT_ROLE_SECONDARY)
        return true;
    if (placement_policy_wanted_secondaries(tenant_shard_policy(s)) == 0) {
        err_set(err, ERR_PRECONDITION_FAILED, "the tenant's placement policy keeps no secondary");
        return false;
    }
    if (s->intent.n_secondaries > 0)
        (void)scheduler_intent_remove_node(&svc->sched, s, s->intent.secondaries[0]);
    return scheduler_intent_add_secondary(&svc->sched, s, req->node, err);
}

static void migrate_run(Operation *op)
{
    if (!service_tenant_op_ready(op))
        return;
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    ServiceShardMigrate req;
    memset(&req, 0, sizeof(req));
    json_t *b = d->body;
    req.tsid = d->tsid;
    req.node = (NodeId)json_integer_value(json_object_get(b, "node"));
    req.origin = (NodeId)json_integer_value(json_object_get(b, "origin"));
    req.secondary = json_is_true(json_object_get(b, "secondary"));
    req.prewarm = json_is_true(json_object_get(b, "prewarm"));
    req.warmup_set = json_is_integer(json_object_get(b, "warmup_ms"));
    req.warmup_ms = (uint64_t)json_integer_value(json_object_get(b, "warmup_ms"));
    Err err;
    err_clear(&err);
    TenantShard *s = find_shard(svc, &req.tsid, &err);
    if (s == NULL || usable_node(svc, req.node, &err) == NULL) {
        operation_finish(op, &err, NULL);
        return;
    }
    if (s->splitting) {
        err_set(&err, ERR_CONFLICT, "the tenant is splitting");
        operation_finish(op, &err, NULL);
        return;
    }
    bool dest_was_secondary = tenant_shard_intent_role(s, req.node) == INTENT_ROLE_SECONDARY;
    bool ok = req.secondary ? migrate_secondary(svc, s, &req, &err)
                            : migrate_attached(svc, s, &req, &err);
    if (!ok) {
        operation_finish(op, &err, NULL);
        return;
    }
    char id[TSID_STR_SIZE];
    tsid_format(&req.tsid, id);
    log_info("%s %s: intent now attached %llu, %u secondaries",
             req.secondary ? "migrate_secondary" : "migrate", id,
             (unsigned long long)s->intent.attached, (unsigned)s->intent.n_secondaries);
    (void)reconciler_spawn(svc->rec, s);
    if (req.warmup_set)
        reconcile_migrate_set_warmup(s, (long)req.warmup_ms);
    else if (!req.secondary && !req.prewarm && !dest_was_secondary)
        reconcile_migrate_set_warmup(s, 0); /* no prewarm: one download request, no wait */
    service_update_node_gauges(svc);
    operation_finish(op, NULL, json_object());
}

void service_shard_migrate(Service *svc, const ServiceShardMigrate *req, ServiceJsonFn cb,
                           void *arg)
{
    Operation *op =
        service_tenant_op_new(svc, OPERATION_SHARD_MIGRATE, &req->tsid.tenant_id, cb, arg);
    TenantOp *d = operation_data(op);
    d->tsid = req->tsid;
    d->body = json_pack("{s:I, s:I, s:b, s:b}", "node", (json_int_t)req->node, "origin",
                        (json_int_t)req->origin, "secondary", req->secondary ? 1 : 0, "prewarm",
                        req->prewarm ? 1 : 0);
    if (req->warmup_set)
        json_object_set_new(d->body, "warmup_ms", json_integer((json_int_t)req->warmup_ms));
    operation_start(op, migrate_run);
}
