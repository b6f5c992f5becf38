/*
 * service_location_config.c: PUT /v1/tenant/{tsid}/location_config onboarding: decode the
 * pageserver's LocationConfig, map its mode to a placement policy, then create the tenant or
 * change its config and policy.
 */
#include "storcon/service_internal.h"

/* ---- location_config onboarding ---- */

typedef struct LocJson {
    char mode[32];
    Generation generation;
    json_t *secondary_conf;
    uint8_t shard_number;
    uint8_t shard_count;
    uint32_t shard_stripe_size;
    json_t *tenant_conf;
} LocJson;

static const JsonField LOC_FIELDS[] = {
    JSON_FIELD(LocJson, mode, "mode", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD(LocJson, generation, "generation", JSON_FIELD_GENERATION, JSON_NULLABLE),
    JSON_FIELD(LocJson, secondary_conf, "secondary_conf", JSON_FIELD_OBJECT, JSON_NULLABLE),
    JSON_FIELD(LocJson, shard_number, "shard_number", JSON_FIELD_U8, 0),
    JSON_FIELD(LocJson, shard_count, "shard_count", JSON_FIELD_U8, 0),
    JSON_FIELD(LocJson, shard_stripe_size, "shard_stripe_size", JSON_FIELD_U32, 0),
    JSON_FIELD(LocJson, tenant_conf, "tenant_conf", JSON_FIELD_OBJECT, JSON_NULLABLE),
};
static const JsonSpec LOC_SPEC = {"location config", LOC_FIELDS,
                                  sizeof(LOC_FIELDS) / sizeof(LOC_FIELDS[0]), JSON_UNKNOWN_REJECT};

static size_t schedulable_nodes(Service *svc)
{
    size_t n = 0;
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++)
        n += node_is_schedulable(node_set_at(&svc->nodes, i)) ? 1 : 0;
    return n;
}

static void location_reply(Operation *op)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t == NULL) {
        Err e;
        err_clear(&e);
        err_set(&e, ERR_NOT_FOUND, "tenant vanished");
        operation_finish(op, &e, NULL);
        return;
    }
    operation_finish(op, NULL, service_location_json(t));
}

/* location_policy: the last step for a known tenant: its new placement policy. */
static void location_policy(Operation *op)
{
    TenantOp *d = operation_data(op);
    d->policy = (ServiceTenantPolicy){.has_placement = true, .placement = d->create.placement};
    service_tenant_policy_store(op, location_reply);
}

/* location_loaded: the tenant is in memory if it exists; decode, then create it or change it
 * (the steps of create, config and policy, never the service's public entry points: the
 * operation already holds the tenant's lock). */
static void location_loaded(Operation *op, const Err *ignored)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    Err err;
    err_clear(&err);
    if (d->tsid.count > 1) {
        err_set(&err, ERR_BAD_REQUEST, "location_config takes an unsharded tenant id");
        operation_finish(op, &err, NULL);
        return;
    }
    LocJson lj;
    memset(&lj, 0, sizeof(lj));
    lj.generation = GENERATION_NONE;
    lj.shard_stripe_size = STRIPE_SIZE_DEFAULT; /* when absent */
    ShardLocationMode mode;
    if (!json_decode(d->body, &LOC_SPEC, &lj, &err) ||
        !shard_location_mode_parse(lj.mode, &mode, &err) ||
        !service_shard_params_check(svc, lj.shard_count, lj.shard_number, lj.shard_stripe_size,
                                    &err)) {
        operation_finish(op, &err, NULL);
        return;
    }
    PlacementPolicy policy;
    if (shard_location_mode_is_attached(mode))
        policy = (PlacementPolicy){PLACEMENT_ATTACHED, schedulable_nodes(svc) > 1 ? 1 : 0};
    else if (mode == SHARD_LOCATION_SECONDARY)
        policy = (PlacementPolicy){PLACEMENT_SECONDARY, 0};
    else
        policy = (PlacementPolicy){PLACEMENT_DETACHED, 0};
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t != NULL && (lj.shard_count > 1 ? lj.shard_count : 1) !=
                         (tenant_current_count(t) > 1 ? tenant_current_count(t) : 1)) {
        err_set(&err, ERR_BAD_REQUEST, "shard_count %u does not match the tenant's %u shards",
                (unsigned)lj.shard_count, (unsigned)tenant_current_count(t));
        operation_finish(op, &err, NULL);
        return;
    }
    if (t == NULL && policy.kind == PLACEMENT_DETACHED) {
        /* nothing to detach: answer as a detach does, and create nothing */
        operation_finish(op, NULL, json_pack("{s:[],s:n}", "shards", "stripe_size"));
        return;
    }
    d->create = (ServiceTenantCreate){
        .tenant_id = d->tenant,
        .has_generation = lj.generation != GENERATION_NONE,
        .generation = lj.generation,
        .shard_count = lj.shard_count,
        .stripe_size = lj.shard_stripe_size,
        .placement = policy,
        .config = lj.tenant_conf, /* borrowed from d->body */
    };
    if (t == NULL) {
        d->location_reply = true;
        service_tenant_create_step(op);
        return;
    }
    /* known tenant: the controller alone issues generations from here on; the config (when it
     * changed) is persisted first, then the policy */
    if (lj.tenant_conf != NULL) {
        char *text = service_config_text(lj.tenant_conf);
        bool changed = strcmp(text, t->config_json) != 0;
        free(text);
        if (changed) {
            service_tenant_config_store(op, lj.tenant_conf, false, location_policy);
            return;
        }
    }
    location_policy(op);
}

static void location_run(Operation *op)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    if (!service_tenant_op_ready(op))
        return;
    if (shard_map_tenant_get(svc->map, &d->tenant) == NULL)
        service_tenant_load(op, location_loaded);
    else
        location_loaded(op, NULL);
}

void service_tenant_location_config(Service *svc, const TenantShardId *tsid, const json_t *config,
                                    ServiceJsonFn cb, void *arg)
{
    Operation *op =
        service_tenant_op_new(svc, OPERATION_LOCATION_CONFIG, &tsid->tenant_id, cb, arg);
    TenantOp *d = operation_data(op);
    d->tsid = *tsid;
    d->body = json_deep_copy(config);
    operation_start(op, location_run);
}
