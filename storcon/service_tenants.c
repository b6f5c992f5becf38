/*
 * service_tenants.c: tenant operations: create, loading a tenant that is not in memory, delete,
 * config, policy, and the reads (describe, list, locate).
 */
#include "storcon/service_internal.h"

/* ---- shared by the tenant operations ---- */

Tenant *service_tenant_or_404(Service *svc, const TenantId *id, Err *err)
{
    Tenant *t = shard_map_tenant_get(svc->map, id);
    if (t == NULL) {
        char hex[ID_STR_SIZE];
        tenant_id_format(id, hex);
        err_set(err, ERR_NOT_FOUND, "tenant %s not found", hex);
    }
    return t;
}

/* service_shards_json: [{"shard_id", "node_id", "generation"}] of the tenant's current shards
 * that have an attached node: Neon's TenantCreateResponseShard and TenantShardLocation require
 * node_id, so a shard attached nowhere (Secondary, Detached) is left out. */
json_t *service_shards_json(const Tenant *t, bool with_generation)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < t->n_shards; i++) {
        const TenantShard *s = t->shards[i];
        if (s->intent.attached == NODE_ID_NONE)
            continue;
        json_t *e = json_object();
        json_set_new(e, "shard_id", json_from_tsid(&s->tsid));
        json_set_new(e, "node_id", json_integer((json_int_t)s->intent.attached));
        if (with_generation)
            json_set_new(e, "generation", json_from_generation(s->generation));
        json_array_append_new(arr, e);
    }
    return arr;
}

/* service_location_json: see service_internal.h. */
json_t *service_location_json(const Tenant *t)
{
    return json_pack("{s:o, s:o}", "shards", service_shards_json(t, false), "stripe_size",
                     t->n_shards > 1 ? json_integer((json_int_t)t->stripe_size) : json_null());
}

/* ---- the operation on one tenant ---- */

static void tenant_op_free(void *p)
{
    TenantOp *d = p;
    free(d->reserved); /* released by on_tenant_inserted, or by a stopping service's shutdown */
    json_decref(d->body);
    free(d->config_text);
    free(d);
}

Operation *service_tenant_op_new(Service *svc, OperationKind kind, const TenantId *tenant,
                                 ServiceJsonFn cb, void *arg)
{
    Operation *op = operation_new(svc->ops, kind, cb, arg);
    TenantOp *d = xcalloc(1, sizeof(*d));
    d->tenant = *tenant;
    operation_set_data(op, d, tenant_op_free);
    operation_lock_tenant(op, tenant, TENANT_LOCK_EXCLUSIVE);
    return op;
}

bool service_tenant_op_ready(Operation *op)
{
    Err err;
    err_clear(&err);
    if (!service_check_ready(operation_host(op), &err)) {
        operation_finish(op, &err, NULL);
        return false;
    }
    return true;
}

/* tenant_op_or_404: the operation's tenant, or NULL after finishing the operation with 404. */
static Tenant *tenant_op_or_404(Operation *op)
{
    Err err;
    err_clear(&err);
    TenantOp *d = operation_data(op);
    Tenant *t = service_tenant_or_404(operation_host(op), &d->tenant, &err);
    if (t == NULL)
        operation_finish(op, &err, NULL);
    return t;
}

/* ---- loading a tenant that is not in memory (detached tenants are not loaded at startup) ---- */

static void on_tenant_rows(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    Operation *op = arg;
    Service *svc = operation_host(op);
    for (size_t i = 0; err == NULL && i < n; i++) {
        Err e;
        err_clear(&e);
        if (shard_map_get(svc->map, &rows[i].tsid) == NULL &&
            !service_load_shard_row(svc, &rows[i], NULL, &e))
            log_err(&e, "loading a tenant");
    }
    if (err != NULL && err->code != ERR_NOT_FOUND)
        log_err(err, "loading a tenant");
    operation_continue(NULL, op);
}

void service_tenant_load(Operation *op, OperationNextFn then)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    operation_set_step(op, "loading the tenant");
    operation_set_next(op, then);
    db_tenants_get(svc->opts.db, &d->tenant, on_tenant_rows, op);
}

/* ---- tenant create ---- */

static void create_reply(Service *svc, Waiter *w, bool timed_out)
{
    Operation *op = w->op;
    TenantOp *d = operation_data(op);
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t == NULL) {
        Err err;
        err_clear(&err);
        err_set(&err, ERR_UNAVAILABLE, "tenant was deleted while being created");
        operation_finish(op, &err, NULL);
    } else if (d->location_reply) {
        operation_finish(op, NULL, service_location_json(t));
    } else {
        if (timed_out)
            log_info("tenant create: answering before every reconcile finished");
        operation_finish(op, NULL, json_pack("{s:o}", "shards", service_shards_json(t, true)));
    }
}

static void on_tenant_inserted(const Err *err, const DbTenantShard *rows, size_t n, bool created,
                               void *arg)
{
    Operation *op = arg;
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    scheduler_release_reserved(&svc->sched, d->reserved, d->n_reserved);
    d->n_reserved = 0;
    if (err != NULL) {
        operation_finish(op, err, NULL);
        return;
    }
    Err e;
    err_clear(&e);
    for (size_t i = 0; i < n; i++) {
        if (shard_map_get(svc->map, &rows[i].tsid) != NULL)
            continue;
        TenantShard *s = NULL;
        if (!service_load_shard_row(svc, &rows[i], &s, &e)) {
            operation_finish(op, &e, NULL);
            return;
        }
        /* A shard this insert created in the generation it issued to the node picked for it:
         * attached there in the intent (kept by the scheduler while the node is available) and
         * attached by its first reconcile without a second commit. A node no longer schedulable
         * (gone, Offline, draining since the pick) is left to the scheduling below, and the
         * reconcile bumps as usual. */
        const Node *picked = s->generation_pageserver != NODE_ID_NONE
                                 ? node_set_get(&svc->nodes, s->generation_pageserver)
                                 : NULL;
        if (created && d->reserved != NULL && picked != NULL && node_is_schedulable(picked) &&
            s->generation != GENERATION_NONE) {
            if (scheduler_intent_set_attached(&svc->sched, s, s->generation_pageserver, &e))
                s->flags |= TENANT_SHARD_GENERATION_UNUSED;
            else
                err_clear(&e);
        }
    }
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t == NULL) {
        err_set(&e, ERR_INTERNAL, "tenant rows inserted but not loaded");
        operation_finish(op, &e, NULL);
        return;
    }
    operation_set_step(op, "scheduling");
    ScheduleStats stats = {0};
    if (!scheduler_schedule_tenant(&svc->sched, t, &stats, &e)) {
        log_err(&e, "tenant create: scheduling");
        if (placement_policy_wants_attached(t->policy)) {
            bool any_attached = false;
            for (size_t i = 0; i < t->n_shards; i++)
                any_attached = any_attached || t->shards[i]->intent.attached != NODE_ID_NONE;
            if (!any_attached) {
                err_prefix(&e, "tenant stored, but not placed: ");
                e.code = ERR_UNAVAILABLE;
                operation_finish(op, &e, NULL);
                return;
            }
        }
    }
    (void)service_reconcile_tenant(svc, t);
    log_info("tenant create: %zu shards %s, scheduled", t->n_shards,
             created ? "inserted" : "already stored");
    operation_set_step(op, "waiting for reconciles");
    service_waiter_add(svc, &d->tenant, svc->opts.create_wait_ms, create_reply, op);
}

char *service_config_text(const json_t *config)
{
    if (config == NULL || !json_is_object(config))
        return xstrdup("{}");
    char *s = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
    if (s == NULL)
        abort();
    return s;
}

bool service_shard_params_check(const Service *svc, ShardCount count, ShardNumber number,
                                uint32_t stripe, Err *err)
{
    unsigned max =
        svc->opts.max_shards_per_tenant != 0 ? svc->opts.max_shards_per_tenant : STORCON_MAX_SHARDS;
    if (count > max) {
        err_set(err, ERR_BAD_REQUEST,
                "shard count %u is above this controller's maximum of %u shards per tenant",
                (unsigned)count, max);
        return false;
    }
    if (number >= (count > 1 ? count : 1)) {
        err_set(err, ERR_BAD_REQUEST, "shard number %u is not below the shard count %u",
                (unsigned)number, (unsigned)count);
        return false;
    }
    if (stripe == 0) {
        err_set(err, ERR_BAD_REQUEST, "stripe size must be more than 0");
        return false;
    }
    return true;
}

void service_tenant_create_step(Operation *op)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    const ServiceTenantCreate *req = &d->create;
    Err err;
    err_clear(&err);
    char policy[PLACEMENT_POLICY_TEXT_SIZE];
    placement_policy_format_text(req->placement, policy);
    char sched[SHARD_SCHEDULING_POLICY_TEXT_SIZE];
    shard_scheduling_policy_format_text(
        req->has_scheduling ? req->scheduling : SHARD_SCHEDULING_ACTIVE, sched);
    char *conf = service_config_text(req->config);
    DbTenantCreate c = {
        .tenant_id = req->tenant_id,
        .shard_count = req->shard_count,
        .stripe_size = req->stripe_size,
        .generation = req->has_generation ? req->generation : GENERATION_NONE,
        .generation_pageserver = DB_NODE_ID_NONE,
        .placement_policy = policy,
        .config = conf,
        .scheduling_policy = sched,
    };
    /* A new attached tenant (no generation asked for, scheduled normally): its attached nodes are
     * picked now and its insert issues each shard's first generation to its node, so that the
     * reconciles attach without a generation commit of their own. */
    size_t n_shards = req->shard_count > 0 ? req->shard_count : 1u;
    bool schedulable = !req->has_scheduling || req->scheduling == SHARD_SCHEDULING_ACTIVE ||
                       req->scheduling == SHARD_SCHEDULING_ESSENTIAL;
    if (!req->has_generation && !d->location_reply && schedulable &&
        placement_policy_wants_attached(req->placement) && d->reserved == NULL) {
        d->reserved = xcalloc(n_shards, sizeof(NodeId));
        if (scheduler_reserve_new_tenant(&svc->sched, NULL, n_shards, d->reserved)) {
            d->n_reserved = n_shards;
            c.generation = 1;
            c.shard_pageservers = d->reserved;
        } else {
            free(d->reserved);
            d->reserved = NULL;
        }
    }
    operation_set_step(op, "storing the shards");
    bool ok = db_tenants_insert(svc->inserter, &c, on_tenant_inserted, op, &err);
    free(conf);
    if (!ok) {
        scheduler_release_reserved(&svc->sched, d->reserved, d->n_reserved);
        d->n_reserved = 0;
        operation_finish(op, &err, NULL);
    }
}

static void create_run(Operation *op)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    Err err;
    err_clear(&err);
    if (!service_shard_params_check(svc, d->create.shard_count, 0, d->create.stripe_size, &err)) {
        operation_finish(op, &err, NULL);
        return;
    }
    if (service_tenant_op_ready(op))
        service_tenant_create_step(op);
}

void service_tenant_create(Service *svc, const ServiceTenantCreate *req, ServiceJsonFn cb,
                           void *arg)
{
    Operation *op = service_tenant_op_new(svc, OPERATION_TENANT_CREATE, &req->tenant_id, cb, arg);
    TenantOp *d = operation_data(op);
    d->create = *req;
    d->body = req->config != NULL ? json_deep_copy(req->config) : NULL;
    d->create.config = d->body;
    operation_start(op, create_run);
}

/* ---- tenant delete ---- */

static void delete_fail(Operation *op, const Err *err)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t != NULL) { /* put the tenant back as it was */
        t->policy = d->saved_policy;
        Err e;
        err_clear(&e);
        if (!scheduler_schedule_tenant(&svc->sched, t, NULL, &e))
            log_err(&e, "tenant delete failed; rescheduling");
        (void)service_reconcile_tenant(svc, t);
    }
    operation_finish(op, err, NULL);
}

static void on_rows_deleted(const Err *err, void *arg)
{
    Operation *op = arg;
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    if (err != NULL && err->code != ERR_NOT_FOUND) {
        delete_fail(op, err);
        return;
    }
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t != NULL) {
        while (t->n_shards > 0) {
            TenantShard *s = t->shards[t->n_shards - 1];
            Err e;
            err_clear(&e);
            scheduler_intent_clear(&svc->sched, s);
            if (!shard_map_shard_remove(svc->map, s, &e)) {
                log_err(&e, "tenant delete: forgetting a shard");
                break;
            }
        }
        Err e;
        err_clear(&e);
        if (t->n_shards == 0 && !shard_map_tenant_remove(svc->map, t, &e))
            log_err(&e, "tenant delete: forgetting the tenant");
    }
    compute_hook_forget(svc->hook, &d->tenant);
    service_imports_tenant_deleted(svc, &d->tenant); /* its import rows went with it */
    char hex[ID_STR_SIZE];
    tenant_id_format(&d->tenant, hex);
    log_info("tenant %s deleted", hex);
    operation_finish(op, NULL, json_null()); /* Neon: null */
}

static void on_remote_deleted(const PageserverResult *res, void *arg)
{
    Operation *op = arg;
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    if (!res->ok) {
        Err e = pageserver_client_translate_error(res->status, &res->err);
        err_prefix(&e, "deleting remote data: ");
        delete_fail(op, &e);
        return;
    }
    operation_set_step(op, "deleting the rows");
    db_tenants_delete(svc->opts.db, &d->tenant, on_rows_deleted, op);
}

/* any_available_node: a node to run remote deletions on. */
static NodeId any_available_node(Service *svc)
{
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        Node *n = node_set_at(&svc->nodes, i);
        if (node_is_available(n))
            return n->id;
    }
    return NODE_ID_NONE;
}

/* delete_detached: the detach reconciles ended (or the deadline passed). */
static void delete_detached(Service *svc, Waiter *w, bool timed_out)
{
    Operation *op = w->op;
    TenantOp *d = operation_data(op);
    Err err;
    err_clear(&err);
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t == NULL) {
        operation_finish(op, NULL, json_null()); /* Neon: null */
        return;
    }
    for (size_t i = 0; i < t->n_shards; i++) {
        TenantShard *s = t->shards[i];
        if (timed_out || tenant_shard_is_dirty(s, &svc->nodes)) {
            err_set(&err, ERR_UNAVAILABLE, "tenant delete: detaching shards did not finish%s%s",
                    tenant_shard_last_error(s)[0] ? ": " : "", tenant_shard_last_error(s));
            delete_fail(op, &err);
            return;
        }
    }
    NodeId node = any_available_node(svc);
    if (node == NODE_ID_NONE) {
        err_set(&err, ERR_UNAVAILABLE, "tenant delete: no pageserver available to delete data");
        delete_fail(op, &err);
        return;
    }
    PageserverTarget tgt;
    char url[SERVICE_URL_SIZE];
    memset(&tgt, 0, sizeof(tgt));
    (void)service_target_for(svc, node, &tgt, url, sizeof(url));
    tgt.timeout_ms = STORCON_RECONCILE_CALL_TIMEOUT_MS;
    tgt.retry.max_attempts = STORCON_RECONCILE_CALL_ATTEMPTS;
    tgt.retry.base_ms = STORCON_RECONCILE_CALL_BACKOFF_MS;
    tgt.retry.max_ms = STORCON_RECONCILE_CALL_BACKOFF_MAX;
    /* One DELETE with the bare tenant id: the pageserver then removes every shard's prefix and
     * the unsharded path shared by all shards (initdb.tar.zst), whatever the shard count was. */
    TenantShardId all = tsid_unsharded(&d->tenant);
    operation_set_step(op, "deleting remote data");
    (void)pageserver_client_tenant_delete(svc->pc, &tgt, &all, on_remote_deleted, op);
}

/* delete_loaded: detach everywhere (an empty intent, kept empty by the Detached policy while
 * deleting), then wait for the detaches. */
static void delete_loaded(Operation *op, const Err *err)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    Tenant *t = tenant_op_or_404(op);
    if (t == NULL)
        return;
    d->saved_policy = t->policy;
    t->policy = (PlacementPolicy){PLACEMENT_DETACHED, 0};
    for (size_t i = 0; i < t->n_shards; i++) {
        scheduler_intent_clear(&svc->sched, t->shards[i]);
        (void)reconciler_spawn(svc->rec, t->shards[i]);
    }
    operation_set_step(op, "detaching");
    service_waiter_add(svc, &d->tenant, STORCON_TENANT_DELETE_WAIT_MS, delete_detached, op);
}

static void delete_run(Operation *op)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    if (!service_tenant_op_ready(op))
        return;
    if (shard_map_tenant_get(svc->map, &d->tenant) == NULL)
        service_tenant_load(op, delete_loaded);
    else
        delete_loaded(op, NULL);
}

void service_tenant_delete(Service *svc, const TenantId *tenant, ServiceJsonFn cb, void *arg)
{
    Operation *op = service_tenant_op_new(svc, OPERATION_TENANT_DELETE, tenant, cb, arg);
    service_imports_cancel(svc, tenant, NULL); /* a finalisation would hold back the lock */
    operation_start(op, delete_run);
}

/* ---- tenant config ---- */

bool service_tenant_config_get(Service *svc, const TenantId *tenant, json_t **out, Err *err)
{
    Tenant *t = service_tenant_or_404(svc, tenant, err);
    if (t == NULL)
        return false;
    json_t *conf = json_loads(t->config_json, 0, NULL);
    if (!json_is_object(conf)) {
        json_decref(conf);
        conf = json_object();
    }
    /* the stored config passed strict validation when it was set; decode it again leniently
     * only to overlay the pageserver defaults for effective_config */
    TenantConfig parsed;
    json_t *effective = NULL;
    Err ignored;
    if (tenant_config_decode(conf, false, &parsed, &ignored))
        effective = tenant_config_effective_json(&parsed);
    else
        effective = json_incref(conf);
    *out =
        json_pack("{s:o, s:o}", "tenant_specific_overrides", conf, "effective_config", effective);
    return true;
}

static void config_stored(Operation *op, const Err *err)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    if (err != NULL) {
        operation_finish(op, err, NULL);
        return;
    }
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t != NULL) {
        tenant_set_config(t, d->config_text);
        (void)service_reconcile_tenant(svc, t);
    }
    d->then(op);
}

void service_tenant_config_store(Operation *op, const json_t *config, bool patch,
                                 OperationStepFn then)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    json_t *merged;
    if (patch) {
        merged = json_loads(t->config_json, 0, NULL);
        if (!json_is_object(merged)) {
            json_decref(merged);
            merged = json_object();
        }
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)config, key, v)
        {
            if (strcmp(key, "tenant_id") == 0)
                continue;
            if (json_is_null(v))
                json_object_del(merged, key);
            else
                json_object_set(merged, key, v);
        }
    } else {
        merged = json_deep_copy(config);
        if (!json_is_object(merged)) {
            json_decref(merged);
            merged = json_object();
        }
        json_object_del(merged, "tenant_id");
    }
    free(d->config_text);
    d->config_text = service_config_text(merged);
    json_decref(merged);
    d->then = then;
    Err err;
    err_clear(&err);
    operation_set_step(op, "storing the config");
    operation_set_next(op, config_stored);
    if (!db_tenants_set_config(svc->opts.db, &d->tenant, NULL, d->config_text, operation_continue,
                               op, &err))
        operation_finish(op, &err, NULL);
}

static void answer_empty(Operation *op)
{
    operation_finish(op, NULL, json_null()); /* Neon: null */
}

static void config_run(Operation *op)
{
    TenantOp *d = operation_data(op);
    if (service_tenant_op_ready(op) && tenant_op_or_404(op) != NULL)
        service_tenant_config_store(op, d->body, d->patch, answer_empty);
}

void service_tenant_config_set(Service *svc, const TenantId *tenant, const json_t *config,
                               bool patch, ServiceJsonFn cb, void *arg)
{
    Operation *op = service_tenant_op_new(svc, OPERATION_TENANT_CONFIG, tenant, cb, arg);
    TenantOp *d = operation_data(op);
    d->body = json_deep_copy(config);
    d->patch = patch;
    operation_start(op, config_run);
}

/* ---- tenant policy ---- */

/* policy_step: placement persisted, then scheduling persisted, then memory and reconciles. */
static void policy_step(Operation *op, const Err *err)
{
    Service *svc = operation_host(op);
    TenantOp *d = operation_data(op);
    Err e;
    err_clear(&e);
    if (err != NULL) {
        operation_finish(op, err, NULL);
        return;
    }
    operation_set_next(op, policy_step);
    if (d->policy.has_placement && !d->placement_stored) {
        d->placement_stored = true;
        char text[PLACEMENT_POLICY_TEXT_SIZE];
        placement_policy_format_text(d->policy.placement, text);
        operation_set_step(op, "storing the placement policy");
        if (!db_tenants_set_placement_policy(svc->opts.db, &d->tenant, NULL, text,
                                             operation_continue, op, &e))
            policy_step(op, &e);
        return;
    }
    if (d->policy.has_scheduling) {
        d->policy.has_scheduling = false;
        char text[SHARD_SCHEDULING_POLICY_TEXT_SIZE];
        shard_scheduling_policy_format_text(d->policy.scheduling, text);
        Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
        if (t != NULL) {
            for (size_t i = 0; i < t->n_shards; i++)
                t->shards[i]->scheduling = (uint8_t)d->policy.scheduling;
        }
        operation_set_step(op, "storing the scheduling policy");
        if (!db_tenants_set_scheduling_policy(svc->opts.db, &d->tenant, NULL, text,
                                              operation_continue, op, &e))
            policy_step(op, &e);
        return;
    }
    operation_set_step(op, "applying the policy");
    Tenant *t = shard_map_tenant_get(svc->map, &d->tenant);
    if (t != NULL) {
        if (d->policy.has_placement)
            t->policy = d->policy.placement;
        if (!scheduler_schedule_tenant(&svc->sched, t, NULL, &e))
            log_err(&e, "tenant policy: scheduling");
        (void)service_reconcile_tenant(svc, t);
    }
    d->then(op);
}

void service_tenant_policy_store(Operation *op, OperationStepFn then)
{
    TenantOp *d = operation_data(op);
    d->then = then;
    d->placement_stored = false;
    policy_step(op, NULL);
}

static void policy_run(Operation *op)
{
    if (service_tenant_op_ready(op) && tenant_op_or_404(op) != NULL)
        service_tenant_policy_store(op, answer_empty);
}

void service_tenant_policy(Service *svc, const TenantId *tenant, const ServiceTenantPolicy *req,
                           ServiceJsonFn cb, void *arg)
{
    Operation *op = service_tenant_op_new(svc, OPERATION_TENANT_POLICY, tenant, cb, arg);
    TenantOp *d = operation_data(op);
    d->policy = *req;
    operation_start(op, policy_run);
}

/* ---- describe, list, locate ---- */

static json_t *tenant_describe_json(const Tenant *t)
{
    json_t *shards = json_array();
    for (size_t i = 0; i < t->n_shards; i++)
        json_array_append_new(shards, tenant_shard_to_json(t->shards[i]));
    json_t *conf = json_loads(t->config_json, 0, NULL);
    if (!json_is_object(conf)) {
        json_decref(conf);
        conf = json_object();
    }
    return json_pack("{s:o, s:o, s:I, s:o, s:o}", "tenant_id", json_from_tenant_id(&t->id),
                     "shards", shards, "stripe_size", (json_int_t)t->stripe_size, "policy",
                     placement_policy_to_json(t->policy), "config", conf);
}

bool service_tenant_describe(Service *svc, const TenantId *tenant, json_t **out, Err *err)
{
    Tenant *t = service_tenant_or_404(svc, tenant, err);
    if (t == NULL)
        return false;
    *out = tenant_describe_json(t);
    return true;
}

json_t *service_tenant_list(Service *svc, const TenantId *start_after, size_t limit)
{
    if (limit == 0)
        limit = STORCON_TENANT_LIST_DEFAULT_LIMIT;
    if (limit > STORCON_TENANT_LIST_MAX_LIMIT)
        limit = STORCON_TENANT_LIST_MAX_LIMIT;
    Tenant **page = xcalloc(limit, sizeof(*page));
    size_t n = shard_map_list_tenants(svc->map, start_after, limit, page);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, tenant_describe_json(page[i]));
    free(page);
    return arr;
}

bool service_tenant_locate(Service *svc, const TenantId *tenant, json_t **out, Err *err)
{
    Tenant *t = service_tenant_or_404(svc, tenant, err);
    if (t == NULL)
        return false;
    ShardCount count = tenant_current_count(t);
    json_t *arr = json_array();
    for (size_t i = 0; i < t->n_shards; i++) {
        const TenantShard *s = t->shards[i];
        if (s->tsid.count != count)
            continue;
        Node *n = s->intent.attached == NODE_ID_NONE
                      ? NULL
                      : node_set_get(&svc->nodes, s->intent.attached);
        if (n == NULL) {
            char tsid[TSID_STR_SIZE];
            tsid_format(&s->tsid, tsid);
            err_set(err, ERR_UNAVAILABLE, "shard %s has no attached node, retry", tsid);
            json_decref(arr);
            return false;
        }
        json_array_append_new(
            arr, json_pack("{s:o, s:I, s:s, s:i, s:s, s:i}", "shard_id", json_from_tsid(&s->tsid),
                           "node_id", (json_int_t)n->id, "listen_pg_addr", n->listen_pg_addr,
                           "listen_pg_port", (int)n->listen_pg_port, "listen_http_addr",
                           n->listen_http_addr, "listen_http_port", (int)n->listen_http_port));
    }
    *out = json_pack("{s:o, s:{s:i, s:I}}", "shards", arr, "shard_params", "count", (int)count,
                     "stripe_size", (json_int_t)t->stripe_size);
    return true;
}

/* ---- preferred AZs ---- */

typedef struct PreferredAzOp {
    Service *svc;
    ServicePreferredAz *items;
    size_t n;
    size_t next;     /* the item being stored */
    json_t *updated; /* owned */
    ServiceJsonFn cb;
    void *arg;
} PreferredAzOp;

static void preferred_az_next(PreferredAzOp *op);

static void preferred_az_finish(PreferredAzOp *op, const Err *err)
{
    if (err != NULL) {
        json_decref(op->updated);
        service_defer_err(op->svc, op->cb, op->arg, err);
    } else {
        service_defer_json(op->svc, op->cb, op->arg, NULL,
                           json_must(json_pack("{s:o}", "updated", op->updated)));
    }
    free(op->items);
    free(op);
}

static void on_preferred_az_stored(const Err *err, void *arg)
{
    PreferredAzOp *op = arg;
    const ServicePreferredAz *it = &op->items[op->next];
    if (err != NULL) {
        preferred_az_finish(op, err);
        return;
    }
    Tenant *t = shard_map_tenant_get(op->svc->map, &it->tsid.tenant_id);
    Err e;
    err_clear(&e);
    if (t != NULL && !tenant_set_preferred_az(t, it->az, &e)) {
        preferred_az_finish(op, &e);
        return;
    }
    json_array_append_new(op->updated, json_from_tsid(&it->tsid));
    op->next++;
    preferred_az_next(op);
}

static void preferred_az_next(PreferredAzOp *op)
{
    for (; op->next < op->n; op->next++) {
        const ServicePreferredAz *it = &op->items[op->next];
        Tenant *t = shard_map_get(op->svc->map, &it->tsid) != NULL
                        ? shard_map_tenant_get(op->svc->map, &it->tsid.tenant_id)
                        : NULL;
        if (t == NULL || strcmp(t->preferred_az, it->az) == 0)
            continue;
        db_tenants_set_preferred_az(op->svc->opts.db, &it->tsid.tenant_id, NULL,
                                    it->az[0] != '\0' ? it->az : NULL, on_preferred_az_stored, op);
        return;
    }
    preferred_az_finish(op, NULL);
}

void service_preferred_azs(Service *svc, const ServicePreferredAz *items, size_t n,
                           ServiceJsonFn cb, void *arg)
{
    if (!service_enter_ready(svc, cb, arg))
        return;
    PreferredAzOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->items = xcalloc(n > 0 ? n : 1, sizeof(*items));
    if (n > 0)
        memcpy(op->items, items, n * sizeof(*items));
    op->n = n;
    op->updated = json_array();
    op->cb = cb;
    op->arg = arg;
    preferred_az_next(op);
}
