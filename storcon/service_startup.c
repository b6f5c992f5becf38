/*
 * service_startup.c: the startup sequence (service_start). A fixed sequence of steps
 * (StartupStep), each started by the previous one's completion: load nodes -> load shards
 * (aborting half-done splits, then loading again) -> ask every node for its locations -> rebuild
 * intents -> schedule -> start heartbeats, the background pass and the reconciles -> ready.
 */
#include "storcon/service_internal.h"
#include "storcon/service_split.h"

#include "shared/fsm.h"

/* ---- startup ---- */

static const char *const STARTUP_STEP_NAMES[] = {
    [STARTUP_IDLE] = "Idle",
    [STARTUP_LOAD_NODES] = "LoadNodes",
    [STARTUP_LOAD_SHARDS] = "LoadShards",
    [STARTUP_ABORT_SPLITS] = "AbortSplits",
    [STARTUP_LOCATIONS] = "Locations",
    [STARTUP_RECONCILE] = "Reconcile",
    [STARTUP_READY] = "Ready",
    [STARTUP_FAILED] = "Failed",
};

static const FsmTransition STARTUP_TRANSITIONS[] = {
    {STARTUP_IDLE, STARTUP_LOAD_NODES, "service_start"},
    {STARTUP_LOAD_NODES, STARTUP_LOAD_SHARDS, "nodes loaded"},
    {STARTUP_LOAD_NODES, STARTUP_FAILED, "database error"},
    {STARTUP_LOAD_SHARDS, STARTUP_ABORT_SPLITS, "half-done splits found"},
    {STARTUP_ABORT_SPLITS, STARTUP_LOAD_SHARDS, "splits aborted: load again"},
    {STARTUP_LOAD_SHARDS, STARTUP_LOCATIONS, "shards loaded"},
    {STARTUP_LOAD_SHARDS, STARTUP_FAILED, "database error or bad row"},
    {STARTUP_LOCATIONS, STARTUP_RECONCILE, "every node answered or gave up"},
    {STARTUP_RECONCILE, STARTUP_READY, "intents rebuilt, reconciles started"},
};

static const int STARTUP_TERMINAL[] = {STARTUP_READY, STARTUP_FAILED};

static const FsmDef STARTUP_FSM = {
    .name = "storcon_startup",
    .doc = "docs/storcon.md",
    .state_names = STARTUP_STEP_NAMES,
    .n_states = FSM_COUNT(STARTUP_STEP_NAMES),
    .initial = STARTUP_IDLE,
    .terminal = STARTUP_TERMINAL,
    .n_terminal = FSM_COUNT(STARTUP_TERMINAL),
    .transitions = STARTUP_TRANSITIONS,
    .n_transitions = FSM_COUNT(STARTUP_TRANSITIONS),
    .log_info = true,
};
FSM_REGISTER(STARTUP_FSM)

static void startup_set_step(Service *svc, StartupStep to)
{
    (void)fsm_set_state(&STARTUP_FSM, &svc->step, to, NULL);
}

static void startup_finish(Service *svc, const Err *err)
{
    startup_set_step(svc, err == NULL ? STARTUP_READY : STARTUP_FAILED);
    if (err == NULL) {
        svc->ready = true;
        service_imports_resume(svc); /* finalise complete imports again (at least once) */
        /* drain / delete resume, a fill does not (docs/operations.md, restart rule) */
        service_node_ops_resume(svc);
    }
    ServiceDoneFn done = svc->start_done;
    svc->start_done = NULL;
    if (done != NULL)
        done(err, svc->start_arg);
}

static void startup_load_shards(Service *svc);

/* service_load_shard_row: one tenant_shards row into memory (tenant created on its first row). */
bool service_load_shard_row(Service *svc, const DbTenantShard *row, TenantShard **out, Err *err)
{
    Tenant *t = shard_map_tenant_get(svc->map, &row->tsid.tenant_id);
    if (t == NULL) {
        PlacementPolicy policy;
        if (!placement_policy_parse_text(row->placement_policy, &policy, err))
            return false;
        uint32_t stripe = row->stripe_size != 0 ? row->stripe_size : STRIPE_SIZE_LEGACY;
        if (!shard_map_tenant_add(svc->map, &row->tsid.tenant_id, stripe, policy, row->config, &t,
                                  err))
            return false;
        if (row->preferred_az_id != NULL && !tenant_set_preferred_az(t, row->preferred_az_id, err))
            return false;
    }
    TenantShard *s = shard_map_get(svc->map, &row->tsid);
    if (s == NULL && !shard_map_shard_add(svc->map, t, row->tsid.number, row->tsid.count, &s, err))
        return false;
    ShardSchedulingPolicy sp = SHARD_SCHEDULING_ACTIVE;
    if (row->scheduling_policy != NULL &&
        !shard_scheduling_policy_parse_text(row->scheduling_policy, &sp, err))
        return false;
    s->scheduling = (uint8_t)sp;
    s->splitting = row->splitting ? 1 : 0;
    tenant_shard_set_generation(
        s, row->generation,
        row->generation_pageserver == DB_NODE_ID_NONE ? NODE_ID_NONE : row->generation_pageserver);
    if (out != NULL)
        *out = s;
    return true;
}

static void on_startup_nodes(const Err *err, const DbNode *rows, size_t n, void *arg)
{
    Service *svc = arg;
    if (err != NULL) {
        startup_finish(svc, err);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].deleted)
            continue;
        Node node;
        Err e;
        err_clear(&e);
        node_init(&node, rows[i].node_id);
        if (!node_set_registration(&node, rows[i].listen_http_addr, rows[i].listen_http_port,
                                   rows[i].listen_pg_addr, rows[i].listen_pg_port,
                                   rows[i].listen_https_port, rows[i].availability_zone_id, &e) ||
            !node_scheduling_policy_parse(rows[i].scheduling_policy, &node.scheduling, &e) ||
            !node_set_add(&svc->nodes, &node, NULL, &e)) {
            log_err(&e, "loading a node");
            continue;
        }
    }
    log_info("startup: %zu nodes loaded", node_set_count(&svc->nodes));
    startup_load_shards(svc);
}

/* Splits found half-done: aborted one after another, then the shards are loaded again. */
typedef struct SplitAbort {
    TenantId tenant;
    ShardCount old_count, new_count;
} SplitAbort;

typedef struct AbortCtx {
    Service *svc;
    SplitAbort *list;
    size_t n, next;
} AbortCtx;

static void abort_next(AbortCtx *c);

static void on_split_aborted(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    AbortCtx *c = arg;
    char id[ID_STR_SIZE];
    tenant_id_format(&c->list[c->next].tenant, id);
    if (err != NULL)
        log_err(err, "aborting a half-done split");
    else
        log_info("startup: aborted the half-done split of tenant %s", id);
    c->next++;
    abort_next(c);
}

static void abort_next(AbortCtx *c)
{
    Service *svc = c->svc;
    while (c->next < c->n) {
        SplitAbort *a = &c->list[c->next];
        Err err;
        err_clear(&err);
        if (db_tenants_split_abort(svc->opts.db, &a->tenant, a->old_count, a->new_count,
                                   on_split_aborted, c, &err))
            return;
        log_err(&err, "aborting a half-done split");
        c->next++;
    }
    free(c->list);
    free(c);
    /* load again, from scratch */
    shard_map_free(svc->map);
    svc->map = shard_map_new();
    startup_load_shards(svc);
}

static void startup_locations(Service *svc);

static void on_startup_shards(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    Service *svc = arg;
    if (err != NULL) {
        startup_finish(svc, err);
        return;
    }
    /* half-done splits first */
    SplitAbort *aborts = NULL;
    size_t n_aborts = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].splitting)
            continue;
        SplitAbort *a = NULL;
        for (size_t k = 0; k < n_aborts; k++) {
            if (tenant_id_eq(&aborts[k].tenant, &rows[i].tsid.tenant_id))
                a = &aborts[k];
        }
        if (a == NULL) {
            aborts = xrealloc(aborts, (n_aborts + 1) * sizeof(*aborts));
            a = &aborts[n_aborts++];
            a->tenant = rows[i].tsid.tenant_id;
            a->old_count = 255;
            a->new_count = 0;
        }
        /* the tenant's counts: smallest = parents, largest = children */
        for (size_t k = 0; k < n; k++) {
            if (!tenant_id_eq(&rows[k].tsid.tenant_id, &a->tenant))
                continue;
            if (rows[k].tsid.count < a->old_count)
                a->old_count = rows[k].tsid.count;
            if (rows[k].tsid.count > a->new_count)
                a->new_count = rows[k].tsid.count;
        }
    }
    if (n_aborts > 0) {
        startup_set_step(svc, STARTUP_ABORT_SPLITS);
        AbortCtx *c = xcalloc(1, sizeof(*c));
        c->svc = svc;
        c->list = aborts;
        c->n = n_aborts;
        abort_next(c);
        return;
    }
    size_t loaded = 0;
    for (size_t i = 0; i < n; i++) {
        Err e;
        err_clear(&e);
        TenantShard *shard = NULL;
        if (!service_load_shard_row(svc, &rows[i], &shard, &e)) {
            char tsid[TSID_STR_SIZE];
            tsid_format(&rows[i].tsid, tsid);
            err_prefix(&e, "loading shard %s: ", tsid);
            startup_finish(svc, &e);
            return;
        }
        loaded++;
    }
    log_info("startup: %zu tenants, %zu shards loaded", shard_map_tenant_count(svc->map), loaded);
    svc->loaded = true;
    startup_locations(svc);
}

static void startup_load_shards(Service *svc)
{
    startup_set_step(svc, STARTUP_LOAD_SHARDS);
    db_tenants_load(svc->opts.db, false, on_startup_shards, svc);
}

typedef struct LocationsCtx {
    Service *svc;
    NodeId node;
} LocationsCtx;

static void startup_rebuild(Service *svc);

static void on_startup_locations(const PageserverResult *res, void *arg)
{
    LocationsCtx *c = arg;
    Service *svc = c->svc;
    Node *n = node_set_get(&svc->nodes, c->node);
    if (n != NULL && res->ok) {
        (void)node_record_heartbeat(n, 0, 0, service_now_ms());
        size_t known = 0;
        for (size_t i = 0; i < res->location_list.n_locations; i++) {
            const PageserverLocation *loc = &res->location_list.locations[i];
            TenantShard *s = shard_map_get(svc->map, &loc->tsid);
            if (s == NULL) {
                (void)service_split_leftover(svc, n->id, &loc->tsid);
                continue;
            }
            if (loc->observed.known)
                tenant_shard_observed_set(s, n->id, &loc->observed);
            else
                tenant_shard_observed_set_unknown(s, n->id);
            known++;
        }
        log_info("startup: node %llu holds %zu known shards", (unsigned long long)c->node, known);
    } else if (n != NULL) {
        log_warn("startup: node %llu unreachable (%s): Offline until a heartbeat "
                 "succeeds",
                 (unsigned long long)c->node, res->err.msg);
    }
    free(c);
    if (--svc->startup_pending == 0)
        startup_rebuild(svc);
}

/* on_startup_notified: what the control plane last accepted per tenant (rows of unloaded tenants
 * were removed by the same transaction). Without them every tenant is notified once more. */
static void on_startup_notified(const Err *err, const DbComputeNotification *rows, size_t n,
                                void *arg)
{
    Service *svc = arg;
    if (err != NULL) {
        log_warn("startup: reading what the control plane accepted failed (%s): every tenant "
                 "is notified again",
                 err->msg);
        compute_hook_records_unknown(svc->hook);
    } else {
        size_t seeded = 0;
        for (size_t i = 0; i < n; i++) {
            if (shard_map_tenant_get(svc->map, &rows[i].tenant_id) == NULL)
                continue;
            compute_hook_seed(svc->hook, &rows[i].tenant_id, rows[i].body_sha256);
            seeded++;
        }
        log_info("startup: %zu tenants have an accepted compute notification on record", seeded);
    }
    if (--svc->startup_pending == 0)
        startup_rebuild(svc);
}

static void startup_locations(Service *svc)
{
    startup_set_step(svc, STARTUP_LOCATIONS);
    svc->startup_pending = 1; /* guard while starting calls */
    if (compute_hook_enabled(svc->hook)) {
        svc->startup_pending++;
        db_compute_notifications_load(svc->opts.db, on_startup_notified, svc);
    }
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        Node *n = node_set_at(&svc->nodes, i);
        PageserverTarget t;
        char url[SERVICE_URL_SIZE];
        memset(&t, 0, sizeof(t));
        if (!service_target_for(svc, n->id, &t, url, sizeof(url)))
            continue;
        t.timeout_ms = STORCON_STARTUP_LOCATIONS_TIMEOUT_MS;
        t.retry = (HttpRetryPolicy){.max_attempts = STORCON_STARTUP_LOCATIONS_ATTEMPTS,
                                    .base_ms = STORCON_STARTUP_LOCATIONS_BACKOFF_MS,
                                    .max_ms = STORCON_STARTUP_LOCATIONS_BACKOFF_MAX_MS,
                                    .deadline_ms = STORCON_STARTUP_LOCATIONS_BUDGET_MS};
        LocationsCtx *c = xcalloc(1, sizeof(*c));
        c->svc = svc;
        c->node = n->id;
        svc->startup_pending++;
        (void)pageserver_client_location_config_list(svc->pc, &t, on_startup_locations, c);
    }
    if (--svc->startup_pending == 0)
        startup_rebuild(svc);
}

/* rebuild_shard_intent: the highest-generation attached location stays attached; known secondaries
 * stay (up to the policy); a shard nobody reported keeps the node its generation was issued to (the
 * scheduler moves it if that node is offline). */
static void rebuild_shard_intent(Service *svc, TenantShard *s)
{
    Err err;
    err_clear(&err);
    NodeId best = NODE_ID_NONE;
    Generation best_gen = GENERATION_NONE;
    size_t n_obs = tenant_shard_observed_count(s);
    for (size_t i = 0; i < n_obs; i++) {
        NodeId node;
        ObservedState o;
        tenant_shard_observed_at(s, i, &node, &o);
        if (!o.known || !shard_location_mode_is_attached(o.mode))
            continue;
        if (best == NODE_ID_NONE || o.generation > best_gen) {
            best = node;
            best_gen = o.generation;
        }
    }
    if (best == NODE_ID_NONE && s->generation_pageserver != NODE_ID_NONE &&
        node_set_get(&svc->nodes, s->generation_pageserver) != NULL)
        best = s->generation_pageserver;
    PlacementPolicy policy = tenant_shard_policy(s);
    if (placement_policy_wants_attached(policy) && best != NODE_ID_NONE &&
        !scheduler_intent_set_attached(&svc->sched, s, best, &err))
        log_err(&err, "startup: restoring an attached location");
    unsigned want = placement_policy_wanted_secondaries(policy);
    for (size_t i = 0; i < n_obs && s->intent.n_secondaries < want; i++) {
        NodeId node;
        ObservedState o;
        tenant_shard_observed_at(s, i, &node, &o);
        if (!o.known || o.mode != SHARD_LOCATION_SECONDARY ||
            tenant_shard_intent_role(s, node) != INTENT_ROLE_NONE)
            continue;
        err_clear(&err);
        if (!scheduler_intent_add_secondary(&svc->sched, s, node, &err))
            log_err(&err, "startup: restoring a secondary location");
    }
}

/* startup_mark_notifications: a tenant whose map (as rebuilt) is not the one the control plane
 * last accepted, or whose last notification was not confirmed, is marked pending: its reconcile
 * notifies it. The others are not (a restart with unchanged maps sends nothing). */
static void startup_mark_notifications(Service *svc)
{
    if (!compute_hook_enabled(svc->hook))
        return;
    size_t pending = 0;
    TenantIter it;
    shard_map_tenant_iter_init(&it, svc->map);
    Tenant *t;
    while ((t = shard_map_tenant_iter_next(&it)) != NULL) {
        ComputeHookTenant snap;
        (void)service_compute_map(t, &snap);
        if (compute_hook_is_current(svc->hook, &snap))
            continue;
        for (size_t i = 0; i < t->n_shards; i++)
            tenant_shard_set_pending_notify(t->shards[i], true);
        pending++;
    }
    log_info("startup: %zu of %zu tenants to notify", pending, shard_map_tenant_count(svc->map));
}

static void startup_rebuild(Service *svc)
{
    startup_set_step(svc, STARTUP_RECONCILE);
    /* shards on nodes that did not answer: their state there is unknown */
    ShardMapIter it;
    shard_map_iter_init(&it, svc->map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        NodeId gp = s->generation_pageserver;
        if (gp != NODE_ID_NONE && !node_set_is_available(&svc->nodes, gp) &&
            node_set_get(&svc->nodes, gp) != NULL)
            tenant_shard_observed_set_unknown(s, gp);
        rebuild_shard_intent(svc, s);
    }
    service_schedule_all(svc);
    startup_mark_notifications(svc);
    heartbeat_start(svc->hb);
    svc->bg_timer = event_new(svc->opts.base, -1, EV_PERSIST, service_background_cb, svc);
    long ms = svc->opts.background_interval_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_add(svc->bg_timer, &tv);
    size_t started = service_reconcile_all(svc);
    service_update_node_gauges(svc);
    log_info("startup: intents rebuilt, %zu reconciles started", started);
    startup_finish(svc, NULL);
}

void service_start(Service *svc, ServiceDoneFn done, void *arg)
{
    svc->start_done = done;
    svc->start_arg = arg;
    startup_set_step(svc, STARTUP_LOAD_NODES);
    db_nodes_list(svc->opts.db, on_startup_nodes, svc);
}
