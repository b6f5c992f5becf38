/*
 * service_upcalls.c: the pageservers' upcalls (re-attach, validate) and the debug attach hook,
 * which issue and check generations.
 */
#include "storcon/service_internal.h"

/* ---- upcalls ---- */

static void reattach_db(RegisterOp *op, const Err *err);

void service_reattach(Service *svc, NodeId node, const ServiceNodeRegistration *reg,
                      bool empty_local_disk, ServiceJsonFn cb, void *arg)
{
    if (!service_enter_loaded(svc, cb, arg))
        return;
    Err err;
    err_clear(&err);
    RegisterOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->cb = cb;
    op->arg = arg;
    op->reattach_node = node;
    op->empty_local_disk = empty_local_disk;
    op->then = reattach_db;
    if (reg != NULL) {
        if (reg->node_id != node) {
            err_set(&err, ERR_BAD_REQUEST, "register.node_id %llu differs from node_id %llu",
                    (unsigned long long)reg->node_id, (unsigned long long)node);
            service_register_fail(svc, op, &err);
            return;
        }
        service_register_start(svc, op, reg);
        return;
    }
    if (node_set_get(&svc->nodes, node) == NULL) {
        err_set(&err, ERR_NOT_FOUND, "node %llu is not registered", (unsigned long long)node);
        service_register_fail(svc, op, &err);
        return;
    }
    reattach_db(op, NULL);
}

static json_t *reattach_entry(const TenantShardId *tsid, Generation gen, const char *mode,
                              uint32_t stripe)
{
    json_t *e = json_object();
    json_set_new(e, "id", json_from_tsid(tsid));
    json_set_new(e, "gen", json_from_generation(gen));
    json_set_new(e, "mode", json_string(mode));
    json_set_new(e, "stripe_size", json_integer((json_int_t)stripe));
    return e;
}

/* on_reattached: the database bumped every shard issued to the node. Memory: those shards now hold
 * the new generation there (unknown instead when the node lost its disk: a reconcile checks and
 * re-pushes the attachment); the node keeps its intent secondaries (state unknown until a
 * reconcile learns it); everything else the node had is gone (it deletes what it is not told). */
static void on_reattached(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    RegisterOp *op = arg;
    Service *svc = op->svc;
    NodeId node = op->reattach_node;
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        free(op);
        return;
    }
    json_t *tenants = json_array();
    Node *nd = node_set_get(&svc->nodes, node);
    /* 1. forget what the node held: it deletes everything it is not told */
    ShardMapIter it;
    shard_map_iter_init(&it, svc->map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL)
        (void)tenant_shard_observed_remove(s, node);
    /* 2. the attached ones, with their new generations */
    for (size_t i = 0; i < n; i++) {
        uint32_t stripe = rows[i].stripe_size != 0 ? rows[i].stripe_size : STRIPE_SIZE_LEGACY;
        json_array_append_new(
            tenants, reattach_entry(&rows[i].tsid, rows[i].generation, "AttachedSingle", stripe));
        s = shard_map_get(svc->map, &rows[i].tsid);
        if (s == NULL)
            continue;
        if (rows[i].generation > s->generation || s->generation == GENERATION_NONE)
            tenant_shard_set_generation(s, rows[i].generation, node);
        if (op->empty_local_disk) {
            tenant_shard_observed_set_unknown(s, node);
            continue;
        }
        ObservedState o = {.known = true,
                           .mode = SHARD_LOCATION_ATTACHED_SINGLE,
                           .generation = rows[i].generation};
        tenant_shard_observed_set(s, node, &o);
    }
    /* 3. secondaries the intent keeps there */
    shard_map_iter_init(&it, svc->map);
    while ((s = shard_map_iter_next(&it)) != NULL) {
        if (tenant_shard_intent_role(s, node) != INTENT_ROLE_SECONDARY)
            continue;
        if (tenant_shard_observed_get(s, node, NULL))
            continue; /* also attached above: the attach wins on the pageserver */
        json_array_append_new(tenants, reattach_entry(&s->tsid, GENERATION_NONE, "Secondary",
                                                      tenant_shard_stripe_size(s)));
        tenant_shard_observed_set_unknown(s, node);
    }
    if (nd != NULL) {
        nd->availability = NODE_AVAILABILITY_WARMING_UP;
        nd->last_heartbeat_ms = service_now_ms();
    }
    log_info("node %llu re-attached%s: %zu attached shards (generations bumped), "
             "%zu in all",
             (unsigned long long)node, op->empty_local_disk ? " with an empty local disk" : "", n,
             json_array_size(tenants));
    if (svc->ready) {
        service_schedule_all(svc);
        (void)service_reconcile_all(svc);
    }
    service_update_node_gauges(svc);
    service_heartbeat_soon(svc);
    op->cb(NULL, json_pack("{s:o}", "tenants", tenants), op->arg);
    free(op);
}

static void reattach_db(RegisterOp *op, const Err *err)
{
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        free(op);
        return;
    }
    db_tenants_reattach(op->svc->opts.db, op->reattach_node, on_reattached, op);
}

typedef struct ValidateOp {
    Service *svc;
    ServiceValidateItem *items;
    size_t n;
    TenantShardId *ask; /* items that memory says are valid */
    size_t n_ask;
    ServiceJsonFn cb;
    void *arg;
} ValidateOp;

static void validate_free(ValidateOp *op)
{
    free(op->items);
    free(op->ask);
    free(op);
}

/* on_validate_db: valid = memory agreed (checked before) and the database agrees now. */
static void on_validate_db(const Err *err, const DbShardGeneration *found, size_t n, void *arg)
{
    ValidateOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        validate_free(op);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < op->n; i++) {
        const ServiceValidateItem *it = &op->items[i];
        TenantShard *s = shard_map_get(svc->map, &it->tsid);
        const DbShardGeneration *row = NULL;
        for (size_t k = 0; k < n; k++) {
            if (tsid_eq(&found[k].tsid, &it->tsid))
                row = &found[k];
        }
        if (s == NULL && row == NULL)
            continue; /* unknown: omitted */
        bool valid = s != NULL && row != NULL && s->generation == it->gen &&
                     row->generation == it->gen && it->gen != GENERATION_NONE;
        json_array_append_new(
            arr, json_pack("{s:o, s:b}", "id", json_from_tsid(&it->tsid), "valid", (int)valid));
    }
    op->cb(NULL, json_pack("{s:o}", "tenants", arr), op->arg);
    validate_free(op);
}

void service_validate(Service *svc, const ServiceValidateItem *items, size_t n, ServiceJsonFn cb,
                      void *arg)
{
    if (!service_enter_loaded(svc, cb, arg))
        return;
    ValidateOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->cb = cb;
    op->arg = arg;
    op->n = n;
    op->items = xcalloc(n > 0 ? n : 1, sizeof(*items));
    if (n > 0)
        memcpy(op->items, items, n * sizeof(*items));
    op->ask = xcalloc(n > 0 ? n : 1, sizeof(TenantShardId));
    for (size_t i = 0; i < n; i++)
        op->ask[op->n_ask++] = items[i].tsid;
    db_tenants_generations(svc->opts.db, op->ask, op->n_ask, on_validate_db, op);
}

/* ---- attach hook (debug) ---- */

typedef struct AttachHookOp {
    Service *svc;
    TenantShardId tsid;
    bool has_node;
    NodeId node;
    ServiceJsonFn cb;
    void *arg;
} AttachHookOp;

static void attach_hook_reply(AttachHookOp *op, const Err *err, Generation gen)
{
    if (err != NULL)
        op->cb(err, NULL, op->arg);
    else
        op->cb(NULL, json_pack("{s:o}", "gen", json_from_generation(gen)), op->arg);
    free(op);
}

static void on_attach_hook_gen(const Err *err, Generation gen, void *arg)
{
    AttachHookOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        attach_hook_reply(op, err, GENERATION_NONE);
        return;
    }
    TenantShard *s = shard_map_get(svc->map, &op->tsid);
    if (s != NULL) {
        Err e;
        err_clear(&e);
        tenant_shard_set_generation(s, gen, op->node);
        if (!scheduler_intent_set_attached(&svc->sched, s, op->node, &e))
            log_err(&e, "attach-hook");
        /* the caller may attach the pageserver itself, or not: what the node holds is
         * unknown, so the next reconcile reads it and attaches when needed (claiming the node
         * holds gen would let that reconcile detach the old location only) */
        tenant_shard_observed_set_unknown(s, op->node);
    }
    attach_hook_reply(op, NULL, gen);
}

static void on_attach_hook_detached(const Err *err, void *arg)
{
    AttachHookOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        attach_hook_reply(op, err, GENERATION_NONE);
        return;
    }
    TenantShard *s = shard_map_get(svc->map, &op->tsid);
    if (s != NULL) {
        tenant_shard_set_generation(s, s->generation, NODE_ID_NONE);
        scheduler_intent_clear(&svc->sched, s);
        tenant_shard_observed_clear(s);
    }
    attach_hook_reply(op, NULL, GENERATION_NONE);
}

static void attach_hook_continue(AttachHookOp *op)
{
    Service *svc = op->svc;
    if (op->has_node) {
        db_tenants_increment_generation(svc->opts.db, &op->tsid, op->node, on_attach_hook_gen, op);
    } else {
        ShardIndex idx = tsid_shard_index(&op->tsid);
        db_tenants_detach(svc->opts.db, &op->tsid.tenant_id, &idx, on_attach_hook_detached, op);
    }
}

static void on_attach_hook_inserted(const Err *err, const DbTenantShard *rows, size_t n,
                                    bool created, void *arg)
{
    AttachHookOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        attach_hook_reply(op, err, GENERATION_NONE);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Err e;
        err_clear(&e);
        if (shard_map_get(svc->map, &rows[i].tsid) == NULL &&
            !service_load_shard_row(svc, &rows[i], NULL, &e))
            log_err(&e, "attach-hook");
    }
    attach_hook_continue(op);
}

void service_attach_hook(Service *svc, const TenantShardId *tsid, bool has_node, NodeId node,
                         ServiceJsonFn cb, void *arg)
{
    if (!service_enter_ready(svc, cb, arg))
        return;
    Err err;
    err_clear(&err);
    if (has_node && node_set_get(&svc->nodes, node) == NULL) {
        err_set(&err, ERR_NOT_FOUND, "node %llu is not registered", (unsigned long long)node);
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    AttachHookOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->tsid = *tsid;
    op->has_node = has_node;
    op->node = node;
    op->cb = cb;
    op->arg = arg;
    if (shard_map_get(svc->map, tsid) != NULL || !has_node) {
        attach_hook_continue(op);
        return;
    }
    char policy[PLACEMENT_POLICY_TEXT_SIZE];
    placement_policy_format_text(PLACEMENT_POLICY_DEFAULT, policy);
    DbTenantCreate c = {
        .tenant_id = tsid->tenant_id,
        .shard_count = tsid->count,
        .stripe_size = STRIPE_SIZE_DEFAULT,
        .generation = GENERATION_NONE,
        .generation_pageserver = DB_NODE_ID_NONE,
        .placement_policy = policy,
    };
    if (!db_tenants_insert(svc->inserter, &c, on_attach_hook_inserted, op, &err)) {
        free(op);
        service_defer_err(svc, cb, arg, &err);
    }
}
