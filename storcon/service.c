/*
 * service.c: the storage controller's service core (see service.h).
 *
 * Everything here runs on the loop thread and owns the in-memory state: the NodeSet, the ShardMap,
 * the Scheduler over them, the Reconciler, the Heartbeater and the ComputeHook. Mutations follow
 * one rule: write the database first, then memory, in the database call's completion. Operations
 * that span several asynchronous steps keep their state in a small heap context ("Op") that carries
 * the caller's callback; the context is freed when the callback has run.
 *
 * Startup is a fixed sequence of steps (StartupStep), each started by the previous one's
 * completion: load nodes -> load shards (aborting half-done splits, then loading again) -> ask
 * every node for its locations -> rebuild intents -> schedule -> start heartbeats, the background
 * pass and the reconciles -> ready.
 *
 * Waiters: tenant create and delete wait for the tenant's reconciles. A Waiter names the tenant (by
 * id, never by pointer), is re-checked whenever a reconcile of that tenant ends, and has a deadline
 * timer.
 */
#include "storcon/service.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"
#include "pageserver/tenant_config.h"
#include "storcon/compute_hook.h"
#include "storcon/db_nodes.h"
#include "storcon/db_tenants.h"
#include "storcon/defaults.h"
#include "storcon/heartbeat.h"
#include "storcon/reconcile.h"
#include "storcon/scheduler.h"
#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

typedef enum WaiterKind { WAITER_CREATE, WAITER_DELETE } WaiterKind;

typedef struct Waiter Waiter;
typedef void (*WaiterFn)(Service *svc, Waiter *w, bool timed_out);

struct Waiter {
    Service *svc;
    TenantId tenant;
    WaiterFn fn; /* runs once: when the tenant has no reconcile running, or at the
                    deadline */
    void *ctx;
    struct event *deadline;
    Waiter *next;
};

typedef enum StartupStep {
    STARTUP_IDLE,
    STARTUP_LOAD_NODES,
    STARTUP_LOAD_SHARDS,
    STARTUP_ABORT_SPLITS,
    STARTUP_LOCATIONS,
    STARTUP_RECONCILE,
    STARTUP_READY,
    STARTUP_FAILED
} StartupStep;

struct Service {
    ServiceOptions opts;
    char *cp_url;
    char *cp_token;
    char *ps_token; /* bearer for pageserver calls; NULL = none */
    HttpClient *http;
    PageserverClient *pc;
    ComputeHook *hook;
    NodeSet nodes;
    ShardMap *map;
    Scheduler sched;
    Reconciler *rec;
    Heartbeater *hb;
    struct event *bg_timer;
    bool loaded; /* nodes and shards in memory: upcalls may be served */
    bool ready;
    bool stopping;
    StartupStep step;
    ServiceDoneFn start_done;
    void *start_arg;
    size_t startup_pending; /* location_config lists in flight */
    Waiter *waiters;
    struct event *waiter_kick; /* check every waiter from the loop */
    struct event *hb_soon;     /* one heartbeat round shortly after a re-attach or registration */
    MetricGauge *m_nodes[NODE_AVAILABILITY_COUNT];
};

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void err_not_ready(Err *err)
{
    err_set(err, ERR_UNAVAILABLE, "not ready: the storage controller is starting");
}

/* check_loaded: upcalls (re-attach, validate, node registration) are served once the state is
 * loaded from the database, before the startup reconciles that /ready waits for. */
static bool check_loaded(const Service *svc, Err *err)
{
    if (!svc->loaded || svc->stopping) {
        err_not_ready(err);
        return false;
    }
    return true;
}

static bool check_ready(const Service *svc, Err *err)
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

static void node_url(const Node *n, char *buf, size_t size)
{
    if (!str_printf(buf, size, "http://%s:%u", n->listen_http_addr, (unsigned)n->listen_http_port))
        buf[0] = '\0';
}

static bool target_for(Service *svc, NodeId node, PageserverTarget *t, char *buf, size_t size)
{
    Node *n = node_set_get(&svc->nodes, node);
    if (n == NULL)
        return false;
    node_url(n, buf, size);
    t->base_url = buf;
    t->token = svc->ps_token;
    return buf[0] != '\0';
}

static bool hook_target(void *host, NodeId node, PageserverTarget *t, char *buf, size_t size)
{
    return target_for(host, node, t, buf, size);
}

/* Deferred callbacks: a ServiceJsonFn must never run inside the call that started it. */
typedef struct Deferred {
    ServiceJsonFn cb;
    void *arg;
    json_t *result;
    Err err;
    bool failed;
    struct event *ev;
} Deferred;

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    Deferred *d = arg;
    event_free(d->ev);
    if (d->failed)
        d->cb(&d->err, NULL, d->arg);
    else
        d->cb(NULL, d->result, d->arg);
    free(d);
}

static void defer_json(Service *svc, ServiceJsonFn cb, void *arg, const Err *err, json_t *result)
{
    Deferred *d = xcalloc(1, sizeof(*d));
    d->cb = cb;
    d->arg = arg;
    d->result = result;
    if (err != NULL) {
        d->err = *err;
        d->failed = true;
        json_decref(result);
        d->result = NULL;
    }
    d->ev = event_new(svc->opts.base, -1, 0, deferred_cb, d);
    event_active(d->ev, 0, 0);
}

static void defer_err(Service *svc, ServiceJsonFn cb, void *arg, const Err *err)
{
    defer_json(svc, cb, arg, err, NULL);
}

typedef struct DeferredDone {
    ServiceDoneFn cb;
    void *arg;
    Err err;
    bool failed;
    struct event *ev;
} DeferredDone;

static void deferred_done_cb(evutil_socket_t fd, short what, void *arg)
{
    DeferredDone *d = arg;
    event_free(d->ev);
    d->cb(d->failed ? &d->err : NULL, d->arg);
    free(d);
}

static void defer_done(Service *svc, ServiceDoneFn cb, void *arg, const Err *err)
{
    DeferredDone *d = xcalloc(1, sizeof(*d));
    d->cb = cb;
    d->arg = arg;
    if (err != NULL) {
        d->err = *err;
        d->failed = true;
    }
    d->ev = event_new(svc->opts.base, -1, 0, deferred_done_cb, d);
    event_active(d->ev, 0, 0);
}

static void update_node_gauges(Service *svc)
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

static void schedule_all(Service *svc)
{
    Err err;
    err_clear(&err);
    ScheduleStats stats = {0};
    if (!scheduler_schedule_all(&svc->sched, svc->map, &stats, &err))
        log_warn("scheduling: %zu of %zu shards could not be placed: %s", stats.failed,
                 stats.scheduled, err.msg);
}

static size_t reconcile_tenant(Service *svc, Tenant *t)
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
    free(c);
}

/* notify_tenant: send the tenant's whole map (the compute hook refuses half maps). A shard counts
 * as attached when its intent's attached node is observed holding its generation. */
static void notify_tenant(Service *svc, Tenant *t)
{
    ShardCount count = tenant_current_count(t);
    ComputeHookTenant snap;
    compute_hook_tenant_init(&snap, &t->id, count, t->stripe_size, t->preferred_az);
    for (size_t i = 0; i < t->n_shards; i++) {
        TenantShard *s = t->shards[i];
        if (s->tsid.count != count)
            continue;
        NodeId a = s->intent.attached;
        ObservedState o;
        if (a != NODE_ID_NONE && tenant_shard_observed_get(s, a, &o) && o.known &&
            shard_location_mode_is_attached(o.mode) && o.generation == s->generation)
            snap.attached[s->tsid.number] = a;
    }
    NotifyCtx *c = xcalloc(1, sizeof(*c));
    c->svc = svc;
    c->tenant = t->id;
    compute_hook_notify(svc->hook, &snap, on_notified, c);
}

static void hook_notify(void *host, TenantShard *shard)
{
    if (shard->tenant != NULL)
        notify_tenant(host, shard->tenant);
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

static void waiter_check_cb(evutil_socket_t fd, short what, void *arg);

/* waiter_add: fn runs when the tenant has no reconcile running (checked after every reconcile end
 * and once right away, asynchronously) or after timeout_ms.
 */
static void waiter_add(Service *svc, const TenantId *tenant, long timeout_ms, WaiterFn fn,
                       void *ctx)
{
    Waiter *w = xcalloc(1, sizeof(*w));
    w->svc = svc;
    w->tenant = *tenant;
    w->fn = fn;
    w->ctx = ctx;
    w->deadline = event_new(svc->opts.base, -1, 0, waiter_deadline_cb, w);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    event_add(w->deadline, &tv);
    w->next = svc->waiters;
    svc->waiters = w;
    /* a first check from the loop, in case nothing needed reconciling */
    event_active(svc->waiter_kick, 0, 0);
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

static void waiter_check_cb(evutil_socket_t fd, short what, void *arg)
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

static void background_cb(evutil_socket_t fd, short what, void *arg)
{
    Service *svc = arg;
    if (svc->stopping)
        return;
    schedule_all(svc);
    size_t n = service_reconcile_all(svc);
    if (n > 0)
        log_info("background pass: %zu reconciles started", n);
    update_node_gauges(svc);
}

/* heartbeat_soon: a round shortly (STORCON_HEARTBEAT_SOON_MS) after a node registered or
 * re-attached, so that it does not stay Offline / WarmingUp (unschedulable) for a whole
 * interval. */
static void hb_soon_cb(evutil_socket_t fd, short what, void *arg)
{
    Service *svc = arg;
    if (svc->ready && !svc->stopping)
        heartbeat_round(svc->hb);
}

static void heartbeat_soon(Service *svc)
{
    struct timeval tv = {.tv_sec = STORCON_HEARTBEAT_SOON_MS / 1000,
                         .tv_usec = (STORCON_HEARTBEAT_SOON_MS % 1000) * 1000};
    event_add(svc->hb_soon, &tv);
}

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
    schedule_all(svc);
    reconciler_node_offline(svc->rec, n->id);
    (void)service_reconcile_all(svc);
    update_node_gauges(svc);
}

static void hb_result(void *host, NodeId node, const PageserverUtilization *util, const Err *err)
{
    Service *svc = host;
    Node *n = node_set_get(&svc->nodes, node);
    if (n == NULL || svc->stopping)
        return;
    int64_t now = now_ms();
    if (util != NULL) {
        NodeAvailability before = node_record_heartbeat(n, util->utilization_score, now);
        if (before != NODE_AVAILABILITY_ACTIVE) {
            log_info("node %llu is active (was %s)", (unsigned long long)node,
                     node_availability_name(before));
            schedule_all(svc);
            (void)service_reconcile_all(svc);
            update_node_gauges(svc);
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
    if (!http_client_new(opts->base, &svc->http, &err)) {
        log_err(&err, "creating the HTTP client");
        abort();
    }
    svc->pc = pageserver_client_new(opts->base, svc->http);
    ComputeHookOptions ho = {
        .control_plane_url = svc->cp_url,
        .bearer_token = svc->cp_token,
    };
    svc->hook = compute_hook_new(opts->base, svc->http, opts->metrics, &ho);
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
                  .finished = hook_finished},
    };
    svc->rec = reconciler_new(&ro);
    HeartbeatOptions hbo = {
        .base = opts->base,
        .pc = svc->pc,
        .nodes = &svc->nodes,
        .interval_ms = svc->opts.heartbeat_interval_ms,
        .timeout_ms = svc->opts.heartbeat_timeout_ms,
        .hooks = {.host = svc, .target = hook_target, .result = hb_result},
    };
    svc->hb = heartbeat_new(&hbo);
    svc->waiter_kick = event_new(opts->base, -1, 0, waiter_check_cb, svc);
    svc->hb_soon = event_new(opts->base, -1, 0, hb_soon_cb, svc);
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
        free(w->ctx);
        free(w);
    }
    event_free(svc->waiter_kick);
    event_free(svc->hb_soon);
    heartbeat_free(svc->hb);
    reconciler_free(svc->rec);
    compute_hook_free(svc->hook);
    pageserver_client_free(svc->pc);
    http_client_free(svc->http);
    /* intents are dropped with the map; node counters go with the nodes */
    shard_map_free(svc->map);
    node_set_finish(&svc->nodes);
    free(svc->cp_url);
    free(svc->cp_token);
    free(svc->ps_token);
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
    if (!target_for(svc, node, t, url_buf, SERVICE_URL_SIZE)) {
        err_set(err, ERR_NOT_FOUND, "node %llu is not registered", (unsigned long long)node);
        return false;
    }
    t->timeout_ms = timeout_ms;
    if (retry != NULL)
        t->retry = *retry;
    return true;
}

json_t *service_scheduler_json(Service *svc)
{
    return scheduler_to_json(&svc->sched);
}

void service_metrics_refresh(Service *svc)
{
    update_node_gauges(svc);
}

/* ---- startup ---- */

static void startup_finish(Service *svc, const Err *err)
{
    svc->step = err == NULL ? STARTUP_READY : STARTUP_FAILED;
    if (err == NULL)
        svc->ready = true;
    ServiceDoneFn done = svc->start_done;
    svc->start_done = NULL;
    if (done != NULL)
        done(err, svc->start_arg);
}

static void startup_load_shards(Service *svc);

/* load_shard_row: one tenant_shards row into memory (tenant created on its first row). */
static bool load_shard_row(Service *svc, const DbTenantShard *row, TenantShard **out, Err *err)
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
        svc->step = STARTUP_ABORT_SPLITS;
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
        if (!load_shard_row(svc, &rows[i], &shard, &e)) {
            char tsid[TSID_STR_SIZE];
            tsid_format(&rows[i].tsid, tsid);
            err_prefix(&e, "loading shard %s: ", tsid);
            startup_finish(svc, &e);
            return;
        }
        /* A restarted controller does not know which map the control plane last accepted
         * (attachments may also have completed while it was down): notify every tenant once
         * more (at least once; the control plane treats a repeat as a no-op). */
        if (shard != NULL)
            tenant_shard_set_pending_notify(shard, true);
        loaded++;
    }
    log_info("startup: %zu tenants, %zu shards loaded", shard_map_tenant_count(svc->map), loaded);
    svc->loaded = true;
    startup_locations(svc);
}

static void startup_load_shards(Service *svc)
{
    svc->step = STARTUP_LOAD_SHARDS;
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
        (void)node_record_heartbeat(n, 0, now_ms());
        size_t known = 0;
        for (size_t i = 0; i < res->location_list.n_locations; i++) {
            const PageserverLocation *loc = &res->location_list.locations[i];
            TenantShard *s = shard_map_get(svc->map, &loc->tsid);
            if (s == NULL)
                continue;
            ObservedState o;
            Err e;
            err_clear(&e);
            if (loc->config == NULL || json_is_null(loc->config) ||
                !tenant_shard_observed_from_json(loc->config, &o, &e))
                tenant_shard_observed_set_unknown(s, n->id);
            else
                tenant_shard_observed_set(s, n->id, &o);
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

static void startup_locations(Service *svc)
{
    svc->step = STARTUP_LOCATIONS;
    svc->startup_pending = 1; /* guard while starting calls */
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        Node *n = node_set_at(&svc->nodes, i);
        PageserverTarget t;
        char url[SERVICE_URL_SIZE];
        memset(&t, 0, sizeof(t));
        if (!target_for(svc, n->id, &t, url, sizeof(url)))
            continue;
        t.timeout_ms = STORCON_STARTUP_LOCATIONS_TIMEOUT_MS;
        t.retry.max_attempts = STORCON_STARTUP_LOCATIONS_ATTEMPTS;
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

static void startup_rebuild(Service *svc)
{
    svc->step = STARTUP_RECONCILE;
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
    schedule_all(svc);
    heartbeat_start(svc->hb);
    svc->bg_timer = event_new(svc->opts.base, -1, EV_PERSIST, background_cb, svc);
    long ms = svc->opts.background_interval_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_add(svc->bg_timer, &tv);
    size_t started = service_reconcile_all(svc);
    update_node_gauges(svc);
    log_info("startup: intents rebuilt, %zu reconciles started", started);
    startup_finish(svc, NULL);
}

void service_start(Service *svc, ServiceDoneFn done, void *arg)
{
    svc->start_done = done;
    svc->start_arg = arg;
    svc->step = STARTUP_LOAD_NODES;
    db_nodes_list(svc->opts.db, on_startup_nodes, svc);
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

/* RegisterOp: node registration, also the first step of a re-attach that carries "register". */
typedef struct RegisterOp {
    Service *svc;
    Node node;
    void (*then)(struct RegisterOp *op, const Err *err);
    ServiceJsonFn cb;
    void *arg;
    NodeId reattach_node; /* re-attach continuation */
} RegisterOp;

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
        update_node_gauges(svc);
        heartbeat_soon(svc);
    }
    op->then(op, NULL);
}

/* register_fail_cb: a registration refused before the database was asked, delivered from the loop.
 */
static void register_fail_cb(evutil_socket_t fd, short what, void *arg);

typedef struct RegisterFail {
    RegisterOp *op;
    Err err;
    struct event *ev;
} RegisterFail;

static void register_fail_cb(evutil_socket_t fd, short what, void *arg)
{
    RegisterFail *f = arg;
    event_free(f->ev);
    f->op->then(f->op, &f->err);
    free(f);
}

static void register_fail(Service *svc, RegisterOp *op, const Err *err)
{
    RegisterFail *f = xcalloc(1, sizeof(*f));
    f->op = op;
    f->err = *err;
    f->ev = event_new(svc->opts.base, -1, 0, register_fail_cb, f);
    event_active(f->ev, 0, 0);
}

/* register_start: the in-memory check (same registration: done; other addresses: 409), then the
 * database insert, then memory. */
static void register_start(Service *svc, RegisterOp *op, const ServiceNodeRegistration *reg)
{
    Err err;
    err_clear(&err);
    if (!node_from_registration(reg, &op->node, &err)) {
        register_fail(svc, op, &err);
        return;
    }
    Node *existing = node_set_get(&svc->nodes, reg->node_id);
    if (existing != NULL && !node_same_registration(existing, &op->node)) {
        err_set(&err, ERR_CONFLICT, "node %llu is registered with other addresses",
                (unsigned long long)reg->node_id);
        register_fail(svc, op, &err);
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
        register_fail(svc, op, &err);
}

void service_node_register(Service *svc, const ServiceNodeRegistration *reg, ServiceJsonFn cb,
                           void *arg)
{
    Err err;
    err_clear(&err);
    if (!check_loaded(svc, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    RegisterOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->then = register_then_reply;
    op->cb = cb;
    op->arg = arg;
    register_start(svc, op, reg);
}

json_t *service_node_list(Service *svc)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++)
        json_array_append_new(arr, node_to_json(node_set_at(&svc->nodes, i)));
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
    n->last_heartbeat_ms = now_ms();
    if (before == NODE_AVAILABILITY_OFFLINE) {
        schedule_all(svc);
        (void)service_reconcile_all(svc);
    }
    update_node_gauges(svc);
}

typedef struct ConfigureOp {
    Service *svc;
    ServiceNodeConfigure req;
    ServiceJsonFn cb;
    void *arg;
} ConfigureOp;

static void configure_apply(ConfigureOp *op)
{
    Service *svc = op->svc;
    Node *n = node_set_get(&svc->nodes, op->req.node_id);
    if (n == NULL) {
        Err err;
        err_set(&err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)op->req.node_id);
        op->cb(&err, NULL, op->arg);
        free(op);
        return;
    }
    if (op->req.has_scheduling) {
        n->scheduling = op->req.scheduling;
        schedule_all(svc);
        (void)service_reconcile_all(svc);
    }
    if (op->req.has_availability)
        apply_node_availability(svc, n, op->req.availability);
    op->cb(NULL, json_object(), op->arg);
    free(op);
}

static void on_node_policy_set(const Err *err, void *arg)
{
    ConfigureOp *op = arg;
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        free(op);
        return;
    }
    configure_apply(op);
}

static void configure_deferred(const Err *err, void *arg)
{
    ConfigureOp *op = arg;
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        free(op);
        return;
    }
    configure_apply(op);
}

void service_node_configure(Service *svc, const ServiceNodeConfigure *req, ServiceJsonFn cb,
                            void *arg)
{
    Err err;
    err_clear(&err);
    if (!check_ready(svc, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    if (node_set_get(&svc->nodes, req->node_id) == NULL) {
        err_set(&err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)req->node_id);
        defer_err(svc, cb, arg, &err);
        return;
    }
    ConfigureOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->req = *req;
    op->cb = cb;
    op->arg = arg;
    if (!req->has_scheduling) {
        defer_done(svc, configure_deferred, op, NULL);
        return;
    }
    if (!db_nodes_set_scheduling_policy(svc->opts.db, req->node_id,
                                        node_scheduling_policy_name(req->scheduling),
                                        on_node_policy_set, op, &err))
        defer_done(svc, configure_deferred, op, &err);
}

/* ---- upcalls ---- */

static void reattach_db(RegisterOp *op, const Err *err);

void service_reattach(Service *svc, NodeId node, const ServiceNodeRegistration *reg,
                      ServiceJsonFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    if (!check_loaded(svc, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    RegisterOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->cb = cb;
    op->arg = arg;
    op->reattach_node = node;
    op->then = reattach_db;
    if (reg != NULL) {
        if (reg->node_id != node) {
            err_set(&err, ERR_BAD_REQUEST, "register.node_id %llu differs from node_id %llu",
                    (unsigned long long)reg->node_id, (unsigned long long)node);
            register_fail(svc, op, &err);
            return;
        }
        register_start(svc, op, reg);
        return;
    }
    if (node_set_get(&svc->nodes, node) == NULL) {
        err_set(&err, ERR_NOT_FOUND, "node %llu is not registered", (unsigned long long)node);
        register_fail(svc, op, &err);
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
 * the new generation there; the node keeps its intent secondaries (state unknown until a reconcile
 * learns it); everything else the node had is gone (it deletes what it is not told). */
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
        nd->last_heartbeat_ms = now_ms();
    }
    log_info("node %llu re-attached: %zu attached shards (generations bumped), "
             "%zu in all",
             (unsigned long long)node, n, json_array_size(tenants));
    if (svc->ready) {
        schedule_all(svc);
        (void)service_reconcile_all(svc);
    }
    update_node_gauges(svc);
    heartbeat_soon(svc);
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
    Err err;
    err_clear(&err);
    if (!check_loaded(svc, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
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
        /* the test attaches the pageserver itself: record it as done */
        ObservedState o = {
            .known = true, .mode = SHARD_LOCATION_ATTACHED_SINGLE, .generation = gen};
        tenant_shard_observed_set(s, op->node, &o);
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
            !load_shard_row(svc, &rows[i], NULL, &e))
            log_err(&e, "attach-hook");
    }
    attach_hook_continue(op);
}

void service_attach_hook(Service *svc, const TenantShardId *tsid, bool has_node, NodeId node,
                         ServiceJsonFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    if (!check_ready(svc, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    if (has_node && node_set_get(&svc->nodes, node) == NULL) {
        err_set(&err, ERR_NOT_FOUND, "node %llu is not registered", (unsigned long long)node);
        defer_err(svc, cb, arg, &err);
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
    if (!db_tenants_insert(svc->opts.db, &c, on_attach_hook_inserted, op, &err)) {
        free(op);
        defer_err(svc, cb, arg, &err);
    }
}

/* ---- tenants ---- */

static Tenant *tenant_or_404(Service *svc, const TenantId *id, Err *err)
{
    Tenant *t = shard_map_tenant_get(svc->map, id);
    if (t == NULL) {
        char hex[ID_STR_SIZE];
        tenant_id_format(id, hex);
        err_set(err, ERR_NOT_FOUND, "tenant %s not found", hex);
    }
    return t;
}

/* shards_json: [{"shard_id", "node_id", "generation"}] of the tenant's current shards. */
static json_t *shards_json(const Tenant *t, bool with_generation)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < t->n_shards; i++) {
        const TenantShard *s = t->shards[i];
        json_t *e = json_object();
        json_set_new(e, "shard_id", json_from_tsid(&s->tsid));
        json_set_new(e, "node_id",
                     s->intent.attached == NODE_ID_NONE
                         ? json_null()
                         : json_integer((json_int_t)s->intent.attached));
        if (with_generation)
            json_set_new(e, "generation", json_from_generation(s->generation));
        json_array_append_new(arr, e);
    }
    return arr;
}

typedef struct CreateOp {
    Service *svc;
    TenantId tenant;
    ShardSchedulingPolicy scheduling;
    ServiceJsonFn cb;
    void *arg;
    bool location_reply; /* answer in the location_config form */
} CreateOp;

static void create_reply(Service *svc, Waiter *w, bool timed_out)
{
    CreateOp *op = w->ctx;
    Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
    if (t == NULL) {
        Err err;
        err_set(&err, ERR_UNAVAILABLE, "tenant was deleted while being created");
        op->cb(&err, NULL, op->arg);
    } else if (op->location_reply) {
        op->cb(NULL,
               json_pack("{s:o, s:o}", "shards", shards_json(t, false), "stripe_size",
                         t->n_shards > 1 ? json_integer((json_int_t)t->stripe_size) : json_null()),
               op->arg);
    } else {
        if (timed_out)
            log_info("tenant create: answering before every reconcile finished");
        op->cb(NULL, json_pack("{s:o}", "shards", shards_json(t, true)), op->arg);
    }
    free(op);
}

static void on_tenant_inserted(const Err *err, const DbTenantShard *rows, size_t n, bool created,
                               void *arg)
{
    CreateOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        free(op);
        return;
    }
    Err e;
    err_clear(&e);
    for (size_t i = 0; i < n; i++) {
        if (shard_map_get(svc->map, &rows[i].tsid) != NULL)
            continue;
        if (!load_shard_row(svc, &rows[i], NULL, &e)) {
            op->cb(&e, NULL, op->arg);
            free(op);
            return;
        }
    }
    Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
    if (t == NULL) {
        err_set(&e, ERR_INTERNAL, "tenant rows inserted but not loaded");
        op->cb(&e, NULL, op->arg);
        free(op);
        return;
    }
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
                op->cb(&e, NULL, op->arg);
                free(op);
                return;
            }
        }
    }
    (void)reconcile_tenant(svc, t);
    log_info("tenant create: %zu shards %s, scheduled", t->n_shards,
             created ? "inserted" : "already stored");
    waiter_add(svc, &op->tenant, svc->opts.create_wait_ms, create_reply, op);
}

static char *config_text(const json_t *config)
{
    if (config == NULL || !json_is_object(config))
        return xstrdup("{}");
    char *s = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
    if (s == NULL)
        abort();
    return s;
}

static void create_start(Service *svc, const ServiceTenantCreate *req, CreateOp *op)
{
    Err err;
    err_clear(&err);
    char policy[PLACEMENT_POLICY_TEXT_SIZE];
    placement_policy_format_text(req->placement, policy);
    char sched[SHARD_SCHEDULING_POLICY_TEXT_SIZE];
    shard_scheduling_policy_format_text(
        req->has_scheduling ? req->scheduling : SHARD_SCHEDULING_ACTIVE, sched);
    char *conf = config_text(req->config);
    DbTenantCreate c = {
        .tenant_id = req->tenant_id,
        .shard_count = req->shard_count,
        .stripe_size = req->stripe_size != 0 ? req->stripe_size : STRIPE_SIZE_DEFAULT,
        .generation = req->has_generation ? req->generation : GENERATION_NONE,
        .generation_pageserver = DB_NODE_ID_NONE,
        .placement_policy = policy,
        .config = conf,
        .scheduling_policy = sched,
    };
    op->svc = svc;
    op->tenant = req->tenant_id;
    bool ok = db_tenants_insert(svc->opts.db, &c, on_tenant_inserted, op, &err);
    free(conf);
    if (!ok) {
        ServiceJsonFn cb = op->cb;
        void *arg = op->arg;
        free(op);
        defer_err(svc, cb, arg, &err);
    }
}

void service_tenant_create(Service *svc, const ServiceTenantCreate *req, ServiceJsonFn cb,
                           void *arg)
{
    Err err;
    err_clear(&err);
    if (!check_ready(svc, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    CreateOp *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->arg = arg;
    create_start(svc, req, op);
}

/* ---- loading a tenant that is not in memory (detached tenants are not loaded at startup) ---- */

typedef void (*LoadedFn)(Service *svc, void *ctx);

typedef struct LoadOp {
    Service *svc;
    LoadedFn then;
    void *ctx;
} LoadOp;

static void on_tenant_rows(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    LoadOp *op = arg;
    Service *svc = op->svc;
    for (size_t i = 0; err == NULL && i < n; i++) {
        Err e;
        err_clear(&e);
        if (shard_map_get(svc->map, &rows[i].tsid) == NULL &&
            !load_shard_row(svc, &rows[i], NULL, &e))
            log_err(&e, "loading a tenant");
    }
    if (err != NULL && err->code != ERR_NOT_FOUND)
        log_err(err, "loading a tenant");
    op->then(svc, op->ctx);
    free(op);
}

/* load_tenant_then: read the tenant's rows into memory (when it has any), then call then; then
 * looks the tenant up again (still missing: it does not exist). */
static void load_tenant_then(Service *svc, const TenantId *tenant, LoadedFn then, void *ctx)
{
    LoadOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->then = then;
    op->ctx = ctx;
    db_tenants_get(svc->opts.db, tenant, on_tenant_rows, op);
}

typedef struct RetryCtx {
    TenantId tenant;
    TenantShardId tsid;
    json_t *body; /* owned */
    ServiceJsonFn cb;
    void *arg;
} RetryCtx;

/* ---- tenant delete ---- */

typedef struct DeleteOp {
    Service *svc;
    TenantId tenant;
    PlacementPolicy saved_policy;
    size_t pending; /* remote deletions in flight */
    Err first_err;
    bool failed;
    ServiceJsonFn cb;
    void *arg;
} DeleteOp;

static void delete_fail(DeleteOp *op, const Err *err)
{
    Service *svc = op->svc;
    Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
    if (t != NULL) { /* put the tenant back as it was */
        t->policy = op->saved_policy;
        Err e;
        err_clear(&e);
        if (!scheduler_schedule_tenant(&svc->sched, t, NULL, &e))
            log_err(&e, "tenant delete failed; rescheduling");
        (void)reconcile_tenant(svc, t);
    }
    op->cb(err, NULL, op->arg);
    free(op);
}

static void on_rows_deleted(const Err *err, void *arg)
{
    DeleteOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL && err->code != ERR_NOT_FOUND) {
        delete_fail(op, err);
        return;
    }
    Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
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
    compute_hook_forget(svc->hook, &op->tenant);
    char hex[ID_STR_SIZE];
    tenant_id_format(&op->tenant, hex);
    log_info("tenant %s deleted", hex);
    op->cb(NULL, json_object(), op->arg);
    free(op);
}

static void on_remote_deleted(const PageserverResult *res, void *arg)
{
    DeleteOp *op = arg;
    if (!res->ok && !op->failed) {
        op->failed = true;
        op->first_err = pageserver_client_translate_error(res->status, &res->err);
        err_prefix(&op->first_err, "deleting remote data: ");
    }
    if (--op->pending > 0)
        return;
    if (op->failed) {
        Err e = op->first_err;
        delete_fail(op, &e);
        return;
    }
    db_tenants_delete(op->svc->opts.db, &op->tenant, on_rows_deleted, op);
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
    DeleteOp *op = w->ctx;
    Err err;
    err_clear(&err);
    Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
    if (t == NULL) {
        op->cb(NULL, json_object(), op->arg);
        free(op);
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
    (void)target_for(svc, node, &tgt, url, sizeof(url));
    tgt.timeout_ms = STORCON_RECONCILE_CALL_TIMEOUT_MS;
    tgt.retry.max_attempts = STORCON_RECONCILE_CALL_ATTEMPTS;
    tgt.retry.base_ms = STORCON_RECONCILE_CALL_BACKOFF_MS;
    tgt.retry.max_ms = STORCON_RECONCILE_CALL_BACKOFF_MAX;
    /* One DELETE with the bare tenant id: the pageserver then removes every shard's prefix and
     * the unsharded path shared by all shards (initdb.tar.zst), whatever the shard count was. */
    TenantShardId all = tsid_unsharded(&op->tenant);
    op->pending = 1;
    (void)pageserver_client_tenant_delete(svc->pc, &tgt, &all, on_remote_deleted, op);
}

static void tenant_delete_run(Service *svc, const TenantId *tenant, ServiceJsonFn cb, void *arg,
                              bool may_load);

static void delete_after_load(Service *svc, void *ctx)
{
    RetryCtx *c = ctx;
    tenant_delete_run(svc, &c->tenant, c->cb, c->arg, false);
    free(c);
}

void service_tenant_delete(Service *svc, const TenantId *tenant, ServiceJsonFn cb, void *arg)
{
    tenant_delete_run(svc, tenant, cb, arg, true);
}

static void tenant_delete_run(Service *svc, const TenantId *tenant, ServiceJsonFn cb, void *arg,
                              bool may_load)
{
    Err err;
    err_clear(&err);
    Tenant *t;
    if (!check_ready(svc, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    if (may_load && shard_map_tenant_get(svc->map, tenant) == NULL) {
        RetryCtx *c = xcalloc(1, sizeof(*c));
        c->tenant = *tenant;
        c->cb = cb;
        c->arg = arg;
        load_tenant_then(svc, tenant, delete_after_load, c);
        return;
    }
    if ((t = tenant_or_404(svc, tenant, &err)) == NULL) {
        if (may_load)
            defer_err(svc, cb, arg, &err);
        else
            cb(&err, NULL, arg);
        return;
    }
    DeleteOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->tenant = *tenant;
    op->cb = cb;
    op->arg = arg;
    op->saved_policy = t->policy;
    /* detach everywhere: an empty intent, kept empty by the Detached policy while deleting */
    t->policy = (PlacementPolicy){PLACEMENT_DETACHED, 0};
    for (size_t i = 0; i < t->n_shards; i++) {
        scheduler_intent_clear(&svc->sched, t->shards[i]);
        (void)reconciler_spawn(svc->rec, t->shards[i]);
    }
    waiter_add(svc, tenant, STORCON_TENANT_DELETE_WAIT_MS, delete_detached, op);
}

/* ---- tenant config ---- */

bool service_tenant_config_get(Service *svc, const TenantId *tenant, json_t **out, Err *err)
{
    Tenant *t = tenant_or_404(svc, tenant, err);
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

typedef struct ConfigOp {
    Service *svc;
    TenantId tenant;
    char *text;
    ServiceJsonFn cb;
    void *arg;
} ConfigOp;

static void on_config_stored(const Err *err, void *arg)
{
    ConfigOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
    } else {
        Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
        if (t != NULL) {
            tenant_set_config(t, op->text);
            (void)reconcile_tenant(svc, t);
        }
        op->cb(NULL, json_object(), op->arg);
    }
    free(op->text);
    free(op);
}

void service_tenant_config_set(Service *svc, const TenantId *tenant, const json_t *config,
                               bool patch, ServiceJsonFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    Tenant *t;
    if (!check_ready(svc, &err) || (t = tenant_or_404(svc, tenant, &err)) == NULL) {
        defer_err(svc, cb, arg, &err);
        return;
    }
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
    ConfigOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->tenant = *tenant;
    op->text = config_text(merged);
    op->cb = cb;
    op->arg = arg;
    json_decref(merged);
    if (!db_tenants_set_config(svc->opts.db, tenant, NULL, op->text, on_config_stored, op, &err)) {
        free(op->text);
        free(op);
        defer_err(svc, cb, arg, &err);
    }
}

/* ---- tenant policy ---- */

typedef struct PolicyOp {
    Service *svc;
    TenantId tenant;
    ServiceTenantPolicy req;
    bool placement_done;
    ServiceJsonFn cb;
    void *arg;
} PolicyOp;

static void policy_step(PolicyOp *op, const Err *err);

static void on_policy_stored(const Err *err, void *arg)
{
    policy_step(arg, err);
}

/* policy_step: placement persisted, then scheduling persisted, then memory and reconciles. */
static void policy_step(PolicyOp *op, const Err *err)
{
    Service *svc = op->svc;
    Err e;
    err_clear(&e);
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        free(op);
        return;
    }
    if (op->req.has_placement && !op->placement_done) {
        op->placement_done = true;
        char text[PLACEMENT_POLICY_TEXT_SIZE];
        placement_policy_format_text(op->req.placement, text);
        if (!db_tenants_set_placement_policy(svc->opts.db, &op->tenant, NULL, text,
                                             on_policy_stored, op, &e))
            policy_step(op, &e);
        return;
    }
    if (op->req.has_scheduling) {
        op->req.has_scheduling = false;
        char text[SHARD_SCHEDULING_POLICY_TEXT_SIZE];
        shard_scheduling_policy_format_text(op->req.scheduling, text);
        Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
        if (t != NULL) {
            for (size_t i = 0; i < t->n_shards; i++)
                t->shards[i]->scheduling = (uint8_t)op->req.scheduling;
        }
        if (!db_tenants_set_scheduling_policy(svc->opts.db, &op->tenant, NULL, text,
                                              on_policy_stored, op, &e)) {
            policy_step(op, &e);
        }
        return;
    }
    Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
    if (t != NULL) {
        if (op->req.has_placement)
            t->policy = op->req.placement;
        if (!scheduler_schedule_tenant(&svc->sched, t, NULL, &e))
            log_err(&e, "tenant policy: scheduling");
        (void)reconcile_tenant(svc, t);
    }
    op->cb(NULL, json_object(), op->arg);
    free(op);
}

static void policy_start_deferred(const Err *err, void *arg)
{
    policy_step(arg, err);
}

void service_tenant_policy(Service *svc, const TenantId *tenant, const ServiceTenantPolicy *req,
                           ServiceJsonFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    if (!check_ready(svc, &err) || tenant_or_404(svc, tenant, &err) == NULL) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    PolicyOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->tenant = *tenant;
    op->req = *req;
    op->cb = cb;
    op->arg = arg;
    defer_done(svc, policy_start_deferred, op, NULL);
}

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
              json_pack("{s:o, s:o}", "shards", shards_json(t, false), "stripe_size",
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
    if (!check_ready(svc, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    if (may_load && shard_map_tenant_get(svc->map, &tsid->tenant_id) == NULL) {
        RetryCtx *c = xcalloc(1, sizeof(*c));
        c->tsid = *tsid;
        c->body = json_deep_copy(config);
        c->cb = cb;
        c->arg = arg;
        load_tenant_then(svc, &tsid->tenant_id, location_config_after_load, c);
        return;
    }
    if (tsid->count > 1) {
        err_set(&err, ERR_BAD_REQUEST, "location_config takes an unsharded tenant id");
        defer_err(svc, cb, arg, &err);
        return;
    }
    LocJson lj;
    memset(&lj, 0, sizeof(lj));
    lj.generation = GENERATION_NONE;
    if (!json_decode(config, &LOC_SPEC, &lj, &err)) {
        defer_err(svc, cb, arg, &err);
        return;
    }
    ShardLocationMode mode;
    if (!shard_location_mode_parse(lj.mode, &mode, &err)) {
        defer_err(svc, cb, arg, &err);
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
        defer_json(svc, cb, arg, NULL, json_pack("{s:[],s:n}", "shards", "stripe_size"));
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
        create_start(svc, &req, op);
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
        char *text = config_text(lj.tenant_conf);
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
    Tenant *t = tenant_or_404(svc, tenant, err);
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
    Tenant *t = tenant_or_404(svc, tenant, err);
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

/* ---- snapshots for fan-out ---- */

void service_snapshot_finish(ServiceShardMapSnapshot *snap)
{
    free(snap->shards);
    snap->shards = NULL;
    snap->n = 0;
}

static void snapshot_init(ServiceShardMapSnapshot *out, const Tenant *t, ShardCount count)
{
    memset(out, 0, sizeof(*out));
    out->tenant_id = t->id;
    out->shard_count = count;
    out->stripe_size = t->stripe_size;
    out->n = count == 0 ? 1 : count;
    out->shards = xcalloc(out->n, sizeof(*out->shards));
    for (size_t i = 0; i < out->n; i++) {
        out->shards[i].tsid.tenant_id = t->id;
        out->shards[i].tsid.number = (ShardNumber)i;
        out->shards[i].tsid.count = count;
        out->shards[i].node = NODE_ID_NONE;
        out->shards[i].generation = GENERATION_NONE;
    }
}

static void snapshot_set(Service *svc, ServiceShardMapSnapshot *out, ShardNumber number,
                         NodeId node, Generation gen)
{
    if (number >= out->n)
        return;
    ServiceShardLocation *l = &out->shards[number];
    l->node = node;
    l->generation = gen;
    Node *n = node == NODE_ID_NONE ? NULL : node_set_get(&svc->nodes, node);
    if (n != NULL)
        node_url(n, l->base_url, sizeof(l->base_url));
}

static bool snapshot_complete(const ServiceShardMapSnapshot *snap, Err *err)
{
    for (size_t i = 0; i < snap->n; i++) {
        if (snap->shards[i].node == NODE_ID_NONE || snap->shards[i].base_url[0] == '\0') {
            char tsid[TSID_STR_SIZE];
            tsid_format(&snap->shards[i].tsid, tsid);
            err_set(err, ERR_UNAVAILABLE, "shard %s is not attached, retry", tsid);
            return false;
        }
    }
    return true;
}

bool service_tenant_snapshot(Service *svc, const TenantId *tenant, ServiceShardMapSnapshot *out,
                             Err *err)
{
    memset(out, 0, sizeof(*out));
    if (!check_ready(svc, err))
        return false;
    Tenant *t = tenant_or_404(svc, tenant, err);
    if (t == NULL)
        return false;
    ShardCount count = tenant_current_count(t);
    snapshot_init(out, t, count);
    for (size_t i = 0; i < t->n_shards; i++) {
        const TenantShard *s = t->shards[i];
        if (s->tsid.count == count)
            snapshot_set(svc, out, s->tsid.number, s->intent.attached, s->generation);
    }
    if (!snapshot_complete(out, err)) {
        service_snapshot_finish(out);
        return false;
    }
    return true;
}

typedef struct SnapDbOp {
    Service *svc;
    TenantId tenant;
    ServiceSnapshotFn cb;
    void *arg;
} SnapDbOp;

static void on_snapshot_rows(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    SnapDbOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        op->cb(err, NULL, op->arg);
        free(op);
        return;
    }
    Tenant *t = shard_map_tenant_get(svc->map, &op->tenant);
    Err e;
    err_clear(&e);
    if (t == NULL || n == 0) {
        tenant_or_404(svc, &op->tenant, &e);
        if (!err_is_set(&e))
            err_set(&e, ERR_NOT_FOUND, "tenant not found");
        op->cb(&e, NULL, op->arg);
        free(op);
        return;
    }
    ShardCount count = rows[0].tsid.count;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].tsid.count < count)
            count = rows[i].tsid.count;
    }
    ServiceShardMapSnapshot snap;
    snapshot_init(&snap, t, count);
    if (rows[0].stripe_size != 0)
        snap.stripe_size = rows[0].stripe_size;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].tsid.count != count)
            continue;
        snapshot_set(svc, &snap, rows[i].tsid.number,
                     rows[i].generation_pageserver == DB_NODE_ID_NONE
                         ? NODE_ID_NONE
                         : rows[i].generation_pageserver,
                     rows[i].generation);
    }
    if (!snapshot_complete(&snap, &e))
        op->cb(&e, NULL, op->arg);
    else
        op->cb(NULL, &snap, op->arg);
    service_snapshot_finish(&snap);
    free(op);
}

void service_tenant_snapshot_db(Service *svc, const TenantId *tenant, ServiceSnapshotFn cb,
                                void *arg)
{
    SnapDbOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->tenant = *tenant;
    op->cb = cb;
    op->arg = arg;
    db_tenants_get(svc->opts.db, tenant, on_snapshot_rows, op);
}

bool service_snapshot_same_attachment(const ServiceShardMapSnapshot *a,
                                      const ServiceShardMapSnapshot *b)
{
    if (a->n != b->n || a->shard_count != b->shard_count ||
        !tenant_id_eq(&a->tenant_id, &b->tenant_id))
        return false;
    for (size_t i = 0; i < a->n; i++) {
        if (a->shards[i].node != b->shards[i].node ||
            a->shards[i].generation != b->shards[i].generation)
            return false;
    }
    return true;
}

/* ---- consistency check ---- */

typedef struct CheckOp {
    Service *svc;
    ServiceDoneFn cb;
    void *arg;
} CheckOp;

/* same_json_text: two JSON texts equal as values (formatting ignored). */
static bool same_json_text(const char *a, const char *b)
{
    json_t *ja = json_loads(a != NULL ? a : "null", JSON_DECODE_ANY, NULL);
    json_t *jb = json_loads(b != NULL ? b : "null", JSON_DECODE_ANY, NULL);
    bool eq = ja != NULL && jb != NULL && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static void on_check_rows(const Err *err, const DbTenantShard *rows, size_t n, void *arg)
{
    CheckOp *op = arg;
    Service *svc = op->svc;
    if (err != NULL) {
        op->cb(err, op->arg);
        free(op);
        return;
    }
    StrBuf msg;
    strbuf_init(&msg);
    size_t problems = 0;
    size_t matched = 0; /* memory shards found in the database */
    for (size_t i = 0; i < n; i++) {
        const DbTenantShard *r = &rows[i];
        char tsid[TSID_STR_SIZE];
        tsid_format(&r->tsid, tsid);
        TenantShard *s = shard_map_get(svc->map, &r->tsid);
        const char *what = NULL;
        PlacementPolicy row_policy;
        Err pe;
        err_clear(&pe);
        if (s == NULL && placement_policy_parse_text(r->placement_policy, &row_policy, &pe) &&
            row_policy.kind == PLACEMENT_DETACHED)
            continue; /* detached tenants are not loaded at startup */
        if (s == NULL) {
            what = "in the database, not in memory";
        } else {
            matched++;
            NodeId gp = r->generation_pageserver == DB_NODE_ID_NONE ? NODE_ID_NONE
                                                                    : r->generation_pageserver;
            char pol[PLACEMENT_POLICY_TEXT_SIZE];
            placement_policy_format_text(tenant_shard_policy(s), pol);
            char sch[SHARD_SCHEDULING_POLICY_TEXT_SIZE];
            shard_scheduling_policy_format_text(tenant_shard_scheduling(s), sch);
            if (s->generation != r->generation)
                what = "generation differs";
            else if (s->generation_pageserver != gp)
                what = "generation_pageserver differs";
            else if (!same_json_text(pol, r->placement_policy))
                what = "placement policy differs";
            else if (!same_json_text(sch, r->scheduling_policy))
                what = "scheduling policy differs";
            else if (!same_json_text(tenant_shard_config_json(s), r->config))
                what = "config differs";
            else if (tenant_shard_stripe_size(s) != r->stripe_size && r->stripe_size != 0)
                what = "stripe size differs";
        }
        if (what != NULL) {
            if (problems < 8) {
                if (s != NULL)
                    strbuf_printf(&msg,
                                  "%s%s: %s (memory gen %lld node %lld, database gen %lld "
                                  "node %lld)",
                                  problems ? "; " : "", tsid, what, (long long)s->generation,
                                  (long long)s->generation_pageserver, (long long)r->generation,
                                  (long long)r->generation_pageserver);
                else
                    strbuf_printf(&msg, "%s%s: %s", problems ? "; " : "", tsid, what);
            }
            problems++;
        }
    }
    if (shard_map_shard_count(svc->map) != matched) {
        strbuf_printf(&msg, "%sshards: %zu in memory, %zu of them in the database",
                      problems ? "; " : "", shard_map_shard_count(svc->map), matched);
        problems++;
    }
    Err e;
    err_clear(&e);
    if (!scheduler_check_consistency(&svc->sched, svc->map, &e)) {
        strbuf_printf(&msg, "%sscheduler: %s", problems ? "; " : "", e.msg);
        problems++;
    }
    if (problems > 0) {
        err_set(&e, ERR_INTERNAL, "consistency check: %zu problems: %s", problems, msg.data);
        op->cb(&e, op->arg);
    } else {
        op->cb(NULL, op->arg);
    }
    strbuf_finish(&msg);
    free(op);
}

void service_consistency_check(Service *svc, ServiceDoneFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    if (!check_ready(svc, &err)) {
        defer_done(svc, cb, arg, &err);
        return;
    }
    CheckOp *op = xcalloc(1, sizeof(*op));
    op->svc = svc;
    op->cb = cb;
    op->arg = arg;
    db_tenants_load(svc->opts.db, true, on_check_rows, op);
}
