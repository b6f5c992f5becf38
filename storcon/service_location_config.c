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

typedef struct LocPolicyCtx {
    Service *svc;
    TenantId tenant;
    PlacementPolicy policy;
    ServiceJsonFn cb;
    void *arg;
} LocPolicyCtx;

static void loc_policy_done(const Err *err, json_t *result, void *arg)
{
    LocPolicyCtx *c = arg;
    Service *svc = c->svc;
    json_decref(result);
    Tenant *t;
    if (err != NULL) {
        c->cb(err, NULL, c->arg);
    } else if ((t = shard_map_tenant_get(svc->map, &c->tenant)) == NULL) {
        Err e;
        err_set(&e, ERR_NOT_FOUND, "tenant vanished");
        c->cb(&e, NULL, c->arg);
    } else {
        c->cb(NULL,
              json_pack("{s:o, s:o}", "shards", service_shards_json(t, false), "stripe_size",
                        t->n_shards > 1 ? json_integer((json_int_t)t->stripe_size) : json_null()),
              c->arg);
    }
    free(c);
}

static void loc_config_done(const Err *err, json_t *result, void *arg)
{
    LocPolicyCtx *c = arg;
    json_decref(result);
    if (err != NULL) {
        c->cb(err, NULL, c->arg);
        free(c);
        return;
    }
    ServiceTenantPolicy p = {.has_placement = true, .placement = c->policy};
    service_tenant_policy(c->svc, &c->tenant, &p, loc_policy_done, c);
}

static void location_config_run(Service *svc, const TenantShardId *tsid, const json_t *config,
                                ServiceJsonFn cb, void *arg, bool may_load);

static void location_config_after_load(Service *svc, void *ctx)
{
    RetryCtx *c = ctx;
    location_config_run(svc, &c->tsid, c->body, c->cb, c->arg, false);
    json_decref(c->body);
    free(c);
}

void service_tenant_location_config(Service *svc, const TenantShardId *tsid, const json_t *config,
                                    ServiceJsonFn cb, void *arg)
{
    location_config_run(svc, tsid, config, cb, arg, true);
}

static void location_config_run(Service *svc, const TenantShardId *tsid, const json_t *config,
                                ServiceJsonFn cb, void *arg, bool may_load)
{
    Err err;
    err_clear(&err);
    if (!service_check_ready(svc, &err)) {
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    if (may_load && shard_map_tenant_get(svc->map, &tsid->tenant_id) == NULL) {
        RetryCtx *c = xcalloc(1, sizeof(*c));
        c->tsid = *tsid;
        c->body = json_deep_copy(config);
        c->cb = cb;
        c->arg = arg;
        service_load_tenant_then(svc, &tsid->tenant_id, location_config_after_load, c);
        return;
    }
    if (tsid->count > 1) {
        err_set(&err, ERR_BAD_REQUEST, "location_config takes an unsharded tenant id");
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    LocJson lj;
    memset(&lj, 0, sizeof(lj));
    lj.generation = GENERATION_NONE;
    if (!json_decode(config, &LOC_SPEC, &lj, &err)) {
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    ShardLocationMode mode;
    if (!shard_location_mode_parse(lj.mode, &mode, &err)) {
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    PlacementPolicy policy;
    if (shard_location_mode_is_attached(mode))
        policy = (PlacementPolicy){PLACEMENT_ATTACHED, schedulable_nodes(svc) > 1 ? 1 : 0};
    else if (mode == SHARD_LOCATION_SECONDARY)
        policy = (PlacementPolicy){PLACEMENT_SECONDARY, 0};
    else
        policy = (PlacementPolicy){PLACEMENT_DETACHED, 0};
    Tenant *t = shard_map_tenant_get(svc->map, &tsid->tenant_id);
    if (t == NULL && policy.kind == PLACEMENT_DETACHED) {
        /* nothing to detach: answer as a detach does, and create nothing */
        service_defer_json(svc, cb, arg, NULL, json_pack("{s:[],s:n}", "shards", "stripe_size"));
        return;
    }
    if (t == NULL) {
        ServiceTenantCreate req = {
            .tenant_id = tsid->tenant_id,
            .has_generation = lj.generation != GENERATION_NONE,
            .generation = lj.generation,
            .shard_count = lj.shard_count,
            .stripe_size = lj.shard_stripe_size,
            .placement = policy,
            .config = lj.tenant_conf,
        };
        CreateOp *op = xcalloc(1, sizeof(*op));
        op->cb = cb;
        op->arg = arg;
        op->location_reply = true;
        service_create_start(svc, &req, op);
        return;
    }
    /* known tenant: the controller alone issues generations from here on; the config (when it
     * changed) is persisted first, then the policy */
    LocPolicyCtx *c = xcalloc(1, sizeof(*c));
    c->svc = svc;
    c->tenant = tsid->tenant_id;
    c->policy = policy;
    c->cb = cb;
    c->arg = arg;
    if (lj.tenant_conf != NULL) {
        char *text = service_config_text(lj.tenant_conf);
        bool changed = strcmp(text, t->config_json) != 0;
        free(text);
        if (changed) {
            service_tenant_config_set(svc, &tsid->tenant_id, lj.tenant_conf, false, loc_config_done,
                                      c);
            return;
        }
    }
    ServiceTenantPolicy p = {.has_placement = true, .placement = policy};
    service_tenant_policy(svc, &tsid->tenant_id, &p, loc_policy_done, c);
}
