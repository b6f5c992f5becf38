/*
 * service.c: the storage controller's service core (see service.h): its lifecycle, and the
 * helpers the other service_*.c files share (readiness checks, deferred callbacks, scheduling and
 * reconciling a tenant, compute notifications, waiters, the background pass).
 *
 * Everything here runs on the loop thread and owns the in-memory state: the NodeSet, the ShardMap,
 * the Scheduler over them, the Reconciler, the Heartbeater and the ComputeHook. Mutations follow
 * one rule: write the database first, then memory, in the database call's completion.
 *
 * The core is split by concern behind storcon/service_internal.h: service_startup.c (the startup
 * sequence), service_nodes.c (registration, configuration, heartbeat results),
 * service_upcalls.c (re-attach, validate, the attach hook), service_tenants.c (create, delete,
 * config, policy, reads), service_location_config.c (onboarding), service_timelines.c (shard map
 * snapshots for fan-outs), service_debug.c (the consistency check).
 *
 * Deferral: every "call back later, never from inside the caller" of the service (deferred
 * completions, the waiter check, an operation's lock-free start, lock grants) goes through one
 * LoopDefer (shared/defer.h) the Service owns.
 *
 * Waiters: tenant create and delete wait for the tenant's reconciles. A Waiter names the tenant (by
 * id, never by pointer), is re-checked whenever a reconcile of that tenant ends, and has a deadline
 * timer.
 */
#include "storcon/service_internal.h"

/* ---- small helpers ---- */

int64_t service_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void err_not_ready(Err *err)
{
    err_set(err, ERR_UNAVAILABLE, "not ready: the storage controller is starting");
}

/* service_check_loaded: upcalls (re-attach, validate, node registration) are served once the state
 * is loaded from the database, before the startup reconciles that /ready waits for. */
bool service_check_loaded(const Service *svc, Err *err)
{
    if (!svc->loaded || svc->stopping) {
        err_not_ready(err);
        return false;
    }
    return true;
}

bool service_check_ready(const Service *svc, Err *err)
{
    if (svc->stopping) {
        err_set(err, ERR_UNAVAILABLE, "shutting down");
        return false;
    }
    if (!svc->ready) {
        err_not_ready(err);
        return false;
    }
    return true;
}

void service_node_url(const Node *n, char *buf, size_t size)
{
    if (!str_printf(buf, size, "http://%s:%u", n->listen_http_addr, (unsigned)n->listen_http_port))
        buf[0] = '\0';
}

bool service_target_for(Service *svc, NodeId node, PageserverTarget *t, char *buf, size_t size)
{
    Node *n = node_set_get(&svc->nodes, node);
    if (n == NULL)
        return false;
    service_node_url(n, buf, size);
    t->node = node;
    t->base_url = buf;
    t->token = svc->ps_token;
    return buf[0] != '\0';
}

void service_node_offline_err(NodeId node, Err *err)
{
    err_set(err, ERR_UNAVAILABLE, "pageserver node %llu is offline, retry",
            (unsigned long long)node);
}

static bool hook_target(void *host, NodeId node, PageserverTarget *t, char *buf, size_t size)
{
    return service_target_for(host, node, t, buf, size);
}

/* Deferred completions: a ServiceJsonFn / ServiceDoneFn never runs inside the call that started
 * it; both go through the service's LoopDefer. */
void service_defer_json(Service *svc, ServiceJsonFn cb, void *arg, const Err *err, json_t *result)
{
    loop_defer_json(svc->defer, cb, arg, err, result);
}

void service_defer_err(Service *svc, ServiceJsonFn cb, void *arg, const Err *err)
{
    loop_defer_json(svc->defer, cb, arg, err, NULL);
}

static bool enter(Service *svc, bool (*check)(const Service *, Err *), ServiceJsonFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    if (check(svc, &err))
        return true;
    service_defer_err(svc, cb, arg, &err);
    return false;
}

bool service_enter_loaded(Service *svc, ServiceJsonFn cb, void *arg)
{
    return enter(svc, service_check_loaded, cb, arg);
}

bool service_enter_ready(Service *svc, ServiceJsonFn cb, void *arg)
{
    return enter(svc, service_check_ready, cb, arg);
}

void service_defer_done(Service *svc, ServiceDoneFn cb, void *arg, const Err *err)
{
    loop_defer_done(svc->defer, cb, arg, err);
}

void service_update_node_gauges(Service *svc)
{
    size_t counts[NODE_AVAILABILITY_COUNT] = {0};
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        Node *n = node_set_at(&svc->nodes, i);
        if ((unsigned)n->availability < NODE_AVAILABILITY_COUNT)
            counts[n->availability]++;
    }
    for (int a = 0; a < NODE_AVAILABILITY_COUNT; a++) {
        if (svc->m_nodes[a] != NULL)
            metric_gauge_set(svc->m_nodes[a], (double)counts[a]);
    }
}

/* ---- scheduling and reconciling helpers ---- */

void service_schedule_all(Service *svc)
{
    Err err;
    err_clear(&err);
    ScheduleStats stats = {0};
    if (!scheduler_schedule_all(&svc->sched, svc->map, &stats, &err))
        log_warn("scheduling: %zu of %zu shards could not be placed: %s", stats.failed,
                 stats.scheduled, err.msg);
}

size_t service_reconcile_tenant(Service *svc, Tenant *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_shards; i++) {
        if (reconciler_spawn(svc->rec, t->shards[i]))
            n++;
    }
    return n;
}

size_t service_reconcile_all(Service *svc)
{
    if (svc->stopping || svc->rec == NULL)
        return 0;
    size_t n = 0;
    ShardMapIter it;
    shard_map_iter_init(&it, svc->map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        if (s->reconciler != NULL || !tenant_shard_may_reconcile(s))
            continue;
        if (!tenant_shard_is_dirty(s, &svc->nodes))
            continue;
        if (reconciler_spawn(svc->rec, s))
            n++;
    }
    return n;
}

/* ---- compute notifications ---- */

typedef struct NotifyCtx {
    Service *svc;
    TenantId tenant;
    void (*done)(void *arg, ReconcileNotifyResult r, const char *msg); /* NULL: none */
    void *done_arg;
} NotifyCtx;

static void on_notified(const ComputeNotifyResult *res, void *arg)
{
    NotifyCtx *c = arg;
    Service *svc = c->svc;
    if (compute_notify_outcome_ok(res->outcome)) {
        Tenant *t = shard_map_tenant_get(svc->map, &c->tenant);
        if (t != NULL) {
            for (size_t i = 0; i < t->n_shards; i++)
                tenant_shard_set_pending_notify(t->shards[i], false);
        }
    } else if (res->outcome != COMPUTE_NOTIFY_NOT_READY &&
               res->outcome != COMPUTE_NOTIFY_SUPERSEDED) {
        char id[ID_STR_SIZE];
        tenant_id_format(&c->tenant, id);
        log_warn("compute notification for tenant %s: %s: %s", id,
                 compute_notify_outcome_name(res->outcome), res->err.msg);
    }
    if (c->done != NULL)
        c->done(c->done_arg,
                compute_notify_outcome_ok(res->outcome) ? RECONCILE_NOTIFY_ACCEPTED
                : res->outcome == COMPUTE_NOTIFY_SUPERSEDED ||
                        res->outcome == COMPUTE_NOTIFY_NOT_READY
                    ? RECONCILE_NOTIFY_RETRY
                    : RECONCILE_NOTIFY_FAILED,
                compute_notify_outcome_name(res->outcome));
    free(c);
}

/* service_compute_map: the tenant's map as the compute hook takes it. A shard counts as
 * attached when its intent's attached node is observed holding its generation. */
bool service_compute_map(const Tenant *t, ComputeHookTenant *snap)
{
    bool attached_anywhere = false;
    for (size_t i = 0; i < t->n_shards; i++)
        attached_anywhere |= t->shards[i]->intent.attached != NODE_ID_NONE;
    ShardCount count = tenant_current_count(t);
    compute_hook_tenant_init(snap, &t->id, count, t->stripe_size, t->preferred_az);
    for (size_t i = 0; i < t->n_shards; i++) {
        const TenantShard *s = t->shards[i];
        if (s->tsid.count != count)
            continue;
        NodeId a = s->intent.attached;
        ObservedState o;
        if (a != NODE_ID_NONE && tenant_shard_observed_get(s, a, &o) && o.known &&
            shard_location_mode_is_attached(o.mode) && o.generation == s->generation) {
            snap->attached[s->tsid.number] = a;
            continue;
        }
        /* a shard on its way (a live migration before its destination attached): the node
         * that still serves it, so that the other shards' moves can be told */
        if (a == NODE_ID_NONE)
            continue;
        Generation best = GENERATION_NONE;
        for (size_t k = 0; k < tenant_shard_observed_count(s); k++) {
            NodeId node;
            tenant_shard_observed_at(s, k, &node, &o);
            if (o.known && shard_location_mode_is_attached(o.mode) &&
                o.generation != GENERATION_NONE &&
                (best == GENERATION_NONE || o.generation > best)) {
                best = o.generation;
                snap->attached[s->tsid.number] = node;
            }
        }
    }
    return attached_anywhere;
}

/* notify_tenant: send the tenant's whole map (the compute hook refuses half maps). A tenant
 * attached nowhere by intent (Secondary, Detached) has no compute to tell: whatever was pending
 * is dropped, and the hook forgets the tenant so that its next attachment is sent in full. */
static void notify_tenant(Service *svc, Tenant *t,
                          void (*done)(void *arg, ReconcileNotifyResult r, const char *msg),
                          void *done_arg)
{
    ComputeHookTenant snap;
    if (!service_compute_map(t, &snap)) {
        for (size_t i = 0; i < t->n_shards; i++)
            tenant_shard_set_pending_notify(t->shards[i], false);
        compute_hook_forget(svc->hook, &t->id);
        if (done != NULL)
            done(done_arg, RECONCILE_NOTIFY_ACCEPTED, "attached nowhere");
        return;
    }
    NotifyCtx *c = xcalloc(1, sizeof(*c));
    c->svc = svc;
    c->tenant = t->id;
    c->done = done;
    c->done_arg = done_arg;
    compute_hook_notify(svc->hook, &snap, on_notified, c);
}

static void hook_notify(void *host, TenantShard *shard)
{
    if (shard->tenant != NULL)
        notify_tenant(host, shard->tenant, NULL, NULL);
}

/* hook_notify_wait: a live migration's NOTIFY step (storcon/reconcile_migrate.c). */
static void hook_notify_wait(void *host, TenantShard *shard,
                             void (*done)(void *arg, ReconcileNotifyResult r, const char *msg),
                             void *arg)
{
    if (shard->tenant != NULL)
        notify_tenant(host, shard->tenant, done, arg);
    else
        done(arg, RECONCILE_NOTIFY_ACCEPTED, "no tenant");
}

/* ---- waiters ---- */

static void waiter_remove(Service *svc, Waiter *w)
{
    for (Waiter **p = &svc->waiters; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    if (w->deadline != NULL)
        event_free(w->deadline);
}

static void waiter_fire(Service *svc, Waiter *w, bool timed_out)
{
    waiter_remove(svc, w);
    w->fn(svc, w, timed_out);
    free(w);
}

static void waiter_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    Waiter *w = arg;
    waiter_fire(w->svc, w, true);
}

static bool tenant_settled(Service *svc, const TenantId *id)
{
    Tenant *t = shard_map_tenant_get(svc->map, id);
    if (t == NULL)
        return true;
    for (size_t i = 0; i < t->n_shards; i++) {
        if (t->shards[i]->reconciler != NULL)
            return false;
    }
    return true;
}

/* service_waiter_add: fn runs when the tenant has no reconcile running (checked after every
 * reconcile end and once right away, asynchronously) or after timeout_ms.
 */
void service_waiter_add(Service *svc, const TenantId *tenant, long timeout_ms, WaiterFn fn,
                        Operation *op)
{
    Waiter *w = xcalloc(1, sizeof(*w));
    w->svc = svc;
    w->tenant = *tenant;
    w->fn = fn;
    w->op = op;
    w->deadline = event_new(svc->opts.base, -1, 0, waiter_deadline_cb, w);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    event_add(w->deadline, &tv);
    w->next = svc->waiters;
    svc->waiters = w;
    /* a first check from the loop, in case nothing needed reconciling */
    (void)loop_defer_item(svc->defer, &svc->waiter_kick);
}

static void check_waiters(Service *svc, const TenantId *tenant)
{
    Waiter *w = svc->waiters;
    while (w != NULL) {
        Waiter *next = w->next;
        if ((tenant == NULL || tenant_id_eq(&w->tenant, tenant)) &&
            tenant_settled(svc, &w->tenant)) {
            waiter_fire(svc, w, false);
            next = svc->waiters; /* the list may have changed: restart */
        }
        w = next;
    }
}

static void waiter_check_cb(void *arg)
{
    check_waiters(arg, NULL);
}

static void hook_finished(void *host, TenantShard *shard, bool ok)
{
    Service *svc = host;
    if (shard->tenant != NULL && svc->waiters != NULL) {
        TenantId id = shard->tenant->id;
        check_waiters(svc, &id);
    }
}

/* ---- background pass ---- */

void service_background_cb(evutil_socket_t fd, short what, void *arg)
{
    Service *svc = arg;
    if (svc->stopping)
        return;
    service_schedule_all(svc);
    size_t n = service_reconcile_all(svc);
    if (n > 0)
        log_info("background pass: %zu reconciles started", n);
    service_imports_resume(svc); /* when listing them at startup failed */
    (void)service_optimize_pass(svc);
    service_update_node_gauges(svc);
}

/* service_heartbeat_soon: a round shortly (STORCON_HEARTBEAT_SOON_MS) after a node registered or
 * re-attached, so that it does not stay Offline / WarmingUp (unschedulable) for a whole
 * interval. */
static void hb_soon_cb(evutil_socket_t fd, short what, void *arg)
{
    Service *svc = arg;
    if (svc->ready && !svc->stopping)
        heartbeat_round(svc->hb);
}

void service_heartbeat_soon(Service *svc)
{
    struct timeval tv = {.tv_sec = STORCON_HEARTBEAT_SOON_MS / 1000,
                         .tv_usec = (STORCON_HEARTBEAT_SOON_MS % 1000) * 1000};
    event_add(svc->hb_soon, &tv);
}

/* ---- lifecycle ---- */

Service *service_new(const ServiceOptions *opts)
{
    Service *svc = xcalloc(1, sizeof(*svc));
    svc->opts = *opts;
    if (svc->opts.heartbeat_interval_ms <= 0)
        svc->opts.heartbeat_interval_ms = STORCON_HEARTBEAT_INTERVAL_MS;
    if (svc->opts.heartbeat_timeout_ms <= 0)
        svc->opts.heartbeat_timeout_ms = STORCON_HEARTBEAT_TIMEOUT_MS;
    if (svc->opts.offline_after_ms <= 0)
        svc->opts.offline_after_ms = STORCON_OFFLINE_AFTER_MS;
    if (svc->opts.background_interval_ms <= 0)
        svc->opts.background_interval_ms = STORCON_BACKGROUND_INTERVAL_MS;
    if (svc->opts.max_concurrent_reconciles == 0)
        svc->opts.max_concurrent_reconciles = STORCON_RECONCILE_MAX_CONCURRENT;
    if (svc->opts.create_wait_ms <= 0)
        svc->opts.create_wait_ms = STORCON_TENANT_CREATE_WAIT_MS;
    svc->cp_url = xstrdup(opts->control_plane_url != NULL ? opts->control_plane_url : "");
    svc->cp_token = opts->control_plane_token != NULL ? xstrdup(opts->control_plane_token) : NULL;
    svc->opts.control_plane_url = svc->cp_url;
    svc->opts.control_plane_token = svc->cp_token;

    Err err;
    err_clear(&err);
    if (opts->signer != NULL &&
        !auth_sign(opts->signer, AUTH_SCOPE_PAGESERVERAPI, NULL, 0, &svc->ps_token, &err)) {
        log_err(&err, "signing the pageserver token");
        svc->ps_token = NULL;
    }
    HttpClientOptions http_opts = {
        .max_host_connections = STORCON_HTTP_HOST_CONNECTIONS,
        .max_cached_connections = STORCON_HTTP_CACHED_CONNECTIONS,
        .metrics = opts->metrics,
        .metric_prefix = "storcon",
    };
    if (!http_client_new_with(opts->base, &http_opts, &svc->http, &err)) {
        log_err(&err, "creating the HTTP client");
        abort();
    }
    svc->pc = pageserver_client_new(opts->base, svc->http);
    WorkerPoolConfig wc = {.threads = STORCON_WORKER_THREADS};
    if (!worker_pool_new_config(opts->base, &wc, &svc->workers, &err)) {
        log_err(&err, "creating the worker pool");
        abort();
    }
    pageserver_client_set_workers(svc->pc, svc->workers);
    ComputeHookOptions ho = {
        .control_plane_url = svc->cp_url,
        .bearer_token = svc->cp_token,
        .db = opts->db,
        .drop_arg = free, /* a NotifyCtx whose notification a stop cut short */
    };
    svc->hook = compute_hook_new(opts->base, svc->http, opts->metrics, &ho);
    service_imports_init(svc);
    node_set_init(&svc->nodes);
    svc->map = shard_map_new();
    scheduler_init(&svc->sched, &svc->nodes);
    ReconcilerOptions ro = {
        .base = opts->base,
        .db = opts->db,
        .pc = svc->pc,
        .nodes = &svc->nodes,
        .map = svc->map,
        .metrics = opts->metrics,
        .max_concurrent = svc->opts.max_concurrent_reconciles,
        .hooks = {.host = svc,
                  .target = hook_target,
                  .notify = hook_notify,
                  .notify_wait = hook_notify_wait,
                  .finished = hook_finished},
    };
    svc->rec = reconciler_new(&ro);
    HeartbeatOptions hbo = {
        .base = opts->base,
        .pc = svc->pc,
        .nodes = &svc->nodes,
        .interval_ms = svc->opts.heartbeat_interval_ms,
        .timeout_ms = svc->opts.heartbeat_timeout_ms,
        .hooks = {.host = svc, .target = hook_target, .result = service_hb_result},
    };
    svc->hb = heartbeat_new(&hbo);
    svc->defer = loop_defer_new(opts->base);
    svc->inserter = db_tenants_inserter_new(opts->base, opts->db, 0, 0);
    loop_defer_item_init(&svc->waiter_kick, waiter_check_cb, svc);
    svc->ops = operations_new(opts->base, svc->defer, svc);
    svc->hb_soon = event_new(opts->base, -1, 0, hb_soon_cb, svc);
    service_node_ops_init(svc);
    if (opts->metrics != NULL) {
        for (int a = 0; a < NODE_AVAILABILITY_COUNT; a++) {
            char labels[64];
            str_printf(labels, sizeof(labels), "availability=\"%s\"",
                       node_availability_name((NodeAvailability)a));
            svc->m_nodes[a] = metrics_gauge(opts->metrics, "storcon_nodes",
                                            "Registered pageservers by availability", labels);
        }
    }
    return svc;
}

void service_stop(Service *svc)
{
    if (svc == NULL)
        return;
    svc->stopping = true;
    heartbeat_stop(svc->hb);
    reconciler_stop(svc->rec);
    service_node_ops_stop(svc);
    if (svc->bg_timer != NULL) {
        event_free(svc->bg_timer);
        svc->bg_timer = NULL;
    }
}

void service_free(Service *svc)
{
    if (svc == NULL)
        return;
    service_stop(svc);
    while (svc->waiters != NULL) {
        Waiter *w = svc->waiters;
        waiter_remove(svc, w);
        free(w); /* its operation goes with the registry */
    }
    operations_free(svc->ops);
    service_node_ops_free(svc);
    db_tenants_inserter_free(svc->inserter); /* queued creates are dropped unanswered at shutdown */
    service_imports_free(svc);
    event_free(svc->hb_soon);
    heartbeat_free(svc->hb);
    reconciler_free(svc->rec);
    compute_hook_free(svc->hook);
    pageserver_client_free(svc->pc);
    worker_pool_free(svc->workers); /* after the client: scans of its cancelled calls end here */
    http_client_free(svc->http);
    /* intents are dropped with the map; node counters go with the nodes */
    shard_map_free(svc->map);
    node_set_finish(&svc->nodes);
    free(svc->cp_url);
    free(svc->cp_token);
    free(svc->ps_token);
    loop_defer_free(svc->defer); /* completions not run yet never run */
    free(svc);
}

bool service_is_ready(const Service *svc, const char **reason)
{
    if (reason != NULL) {
        switch (svc->step) {
        case STARTUP_IDLE:
            *reason = "starting";
            break;
        case STARTUP_LOAD_NODES:
        case STARTUP_LOAD_SHARDS:
        case STARTUP_ABORT_SPLITS:
            *reason = "loading nodes and tenants from the database";
            break;
        case STARTUP_LOCATIONS:
            *reason = "asking pageservers for their locations";
            break;
        case STARTUP_RECONCILE:
            *reason = "starting reconciles";
            break;
        case STARTUP_FAILED:
            *reason = "startup failed";
            break;
        case STARTUP_READY:
        default:
            *reason = svc->stopping ? "shutting down" : "ready";
            break;
        }
    }
    return svc->ready && !svc->stopping;
}

PageserverClient *service_pageserver_client(Service *svc)
{
    return svc->pc;
}

bool service_pageserver_target(Service *svc, NodeId node, long timeout_ms,
                               const HttpRetryPolicy *retry, PageserverTarget *t,
                               char url_buf[SERVICE_URL_SIZE], Err *err)
{
    memset(t, 0, sizeof(*t));
    if (!service_target_for(svc, node, t, url_buf, SERVICE_URL_SIZE)) {
        err_set(err, ERR_UNAVAILABLE, "pageserver node %llu is gone, retry",
                (unsigned long long)node);
        return false;
    }
    if (!node_set_is_available(&svc->nodes, node)) {
        service_node_offline_err(node, err); /* fail fast instead of waiting out the timeouts */
        return false;
    }
    t->timeout_ms = timeout_ms;
    if (retry != NULL)
        t->retry = *retry;
    return true;
}

json_t *service_operations_json(Service *svc)
{
    return operations_to_json(svc->ops);
}

json_t *service_scheduler_json(Service *svc)
{
    return scheduler_to_json(&svc->sched);
}

void service_metrics_refresh(Service *svc)
{
    service_update_node_gauges(svc);
}
