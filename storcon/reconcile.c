/*
 * reconcile.c: the per-shard reconciler (state machine in reconcile.h).
 *
 * One Reconcile object exists per queued or running reconcile (shard->reconciler points at it), so
 * idle shards cost nothing here. reconciler_spawn queues; a "kick" (a shared/defer.h item, so
 * several kicks coalesce) drains the queue on a later loop iteration up to the concurrency bound,
 * so nothing ever starts (or finishes) inside the caller of reconciler_spawn. reconcile_step runs
 * PLAN: it asks reconcile_plan for the next action on the shard's LIVE state and starts exactly one
 * call (pageserver or database); the call's completion records the outcome in the shard's observed
 * state and returns to PLAN.
 *
 * Sequence numbers: a reconcile remembers the shard's sequence when it starts (and after its own
 * generation bump). When it ends, a shard whose sequence moved on (a newer intent, a config change)
 * or that was spawned again meanwhile is reconciled again at once; FORCE_DIRTY is cleared only when
 * nothing newer happened.
 */
#include "storcon/reconcile.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/defer.h"
#include "shared/failpoint.h"
#include "shared/fsm.h"
#include "shared/json.h"
#include "shared/log.h"
#include "storcon/db_tenants.h"
#include "storcon/defaults.h"
#include "storcon/reconcile_internal.h"
#include "storcon/reconcile_migrate.h"

/* ---- transition table ---- */

static const FsmTransition TRANSITIONS[] = {
    {RECONCILE_QUEUED, RECONCILE_PLAN, "slot free"},
    {RECONCILE_PLAN, RECONCILE_REFRESH, "observed unknown"},
    {RECONCILE_PLAN, RECONCILE_BUMP_GENERATION, "attach needs a generation"},
    {RECONCILE_PLAN, RECONCILE_ATTACH, "generation held, config differs"},
    {RECONCILE_PLAN, RECONCILE_SECONDARY, "secondary missing"},
    {RECONCILE_PLAN, RECONCILE_DETACH, "location outside intent"},
    {RECONCILE_PLAN, RECONCILE_NOTIFY, "attachment changed or notify pending"},
    {RECONCILE_PLAN, RECONCILE_DONE, "nothing to do"},
    {RECONCILE_REFRESH, RECONCILE_PLAN, "learnt"},
    {RECONCILE_REFRESH, RECONCILE_FAILED, "call failed"},
    {RECONCILE_BUMP_GENERATION, RECONCILE_ATTACH, "generation issued"},
    {RECONCILE_BUMP_GENERATION, RECONCILE_FAILED, "database error"},
    {RECONCILE_ATTACH, RECONCILE_PLAN, "attached"},
    {RECONCILE_ATTACH, RECONCILE_FAILED, "call failed"},
    {RECONCILE_SECONDARY, RECONCILE_PLAN, "secondary written"},
    {RECONCILE_SECONDARY, RECONCILE_FAILED, "call failed"},
    {RECONCILE_DETACH, RECONCILE_PLAN, "detached"},
    {RECONCILE_DETACH, RECONCILE_FAILED, "call failed"},
    {RECONCILE_NOTIFY, RECONCILE_DONE, "handed to compute hook"},
    RECONCILE_MIGRATE_TRANSITIONS /* storcon/reconcile_migrate.h */
};

static const char *const STATE_NAMES[RECONCILE_STATE_COUNT] = {
    [RECONCILE_QUEUED] = "Queued",   [RECONCILE_PLAN] = "Plan",
    [RECONCILE_REFRESH] = "Refresh", [RECONCILE_BUMP_GENERATION] = "BumpGeneration",
    [RECONCILE_ATTACH] = "Attach",   [RECONCILE_SECONDARY] = "Secondary",
    [RECONCILE_DETACH] = "Detach",   [RECONCILE_NOTIFY] = "Notify",
    [RECONCILE_DONE] = "Done",       [RECONCILE_FAILED] = "Failed",
    RECONCILE_MIGRATE_STATE_NAMES /* storcon/reconcile_migrate.h */
};

static const int TERMINAL[] = {RECONCILE_DONE, RECONCILE_FAILED};

const FsmDef RECONCILE_FSM = {
    .name = "reconcile",
    .doc = "docs/storcon.md",
    .state_names = STATE_NAMES,
    .n_states = RECONCILE_STATE_COUNT,
    .initial = RECONCILE_QUEUED,
    .terminal = TERMINAL,
    .n_terminal = FSM_COUNT(TERMINAL),
    .transitions = TRANSITIONS,
    .n_transitions = FSM_COUNT(TRANSITIONS),
};
FSM_REGISTER(RECONCILE_FSM)

const char *reconcile_state_name(ReconcileState s)
{
    return fsm_state_name(&RECONCILE_FSM, (int)s);
}

/* ---- planning ---- */

static const char *const ACTION_NAMES[RECONCILE_ACTION_COUNT] = {
    [RECONCILE_ACTION_NONE] = "none",
    [RECONCILE_ACTION_REFRESH] = "refresh",
    [RECONCILE_ACTION_BUMP_GENERATION] = "bump_generation",
    [RECONCILE_ACTION_ATTACH] = "attach",
    [RECONCILE_ACTION_SECONDARY] = "secondary",
    [RECONCILE_ACTION_DETACH] = "detach",
    RECONCILE_MIGRATE_ACTION_NAMES /* storcon/reconcile_migrate.h */
};

const char *reconcile_action_name(ReconcileActionKind k)
{
    if ((unsigned)k >= RECONCILE_ACTION_COUNT)
        return "?";
    return ACTION_NAMES[k];
}

void reconcile_progress_init(ReconcileProgress *p, TenantShard *s)
{
    memset(p, 0, sizeof(*p));
    p->fresh_generation = GENERATION_NONE;
    p->fresh_node = NODE_ID_NONE;
    if (tenant_shard_take_unused_generation(s)) {
        p->fresh_generation = s->generation;
        p->fresh_node = s->generation_pageserver;
    }
    p->push_config = (s->flags & TENANT_SHARD_FORCE_DIRTY) != 0;
    p->mig_origin = NODE_ID_NONE;
    p->mig_dest = NODE_ID_NONE;
}

static bool progress_has(const NodeId *list, uint8_t n, NodeId node)
{
    for (uint8_t i = 0; i < n; i++) {
        if (list[i] == node)
            return true;
    }
    return false;
}

/* needs_push: the location on node was marked for a config push and not yet written. */
static bool needs_push(const ReconcileProgress *p, NodeId node)
{
    return p->push_config && !progress_has(p->pushed, p->n_pushed, node);
}

/* reconcile_plan: the order is the spec's: refresh, attach, secondaries, detach. */
void reconcile_plan(const TenantShard *s, const NodeSet *nodes, const ReconcileProgress *p,
                    ReconcileAction *out)
{
    out->kind = RECONCILE_ACTION_NONE;
    out->node = NODE_ID_NONE;
    out->peer = NODE_ID_NONE;
    size_t n_obs = tenant_shard_observed_count(s);

    for (size_t i = 0; i < n_obs; i++) {
        NodeId node;
        ObservedState o;
        tenant_shard_observed_at(s, i, &node, &o);
        if (!o.known && node_set_is_available(nodes, node) &&
            !progress_has(p->refreshed, p->n_refreshed, node)) {
            out->kind = RECONCILE_ACTION_REFRESH;
            out->node = node;
            return;
        }
    }

    if (reconcile_migrate_plan(s, nodes, p, out))
        return;

    NodeId a = s->intent.attached;
    if (a != NODE_ID_NONE && node_set_is_available(nodes, a)) {
        ObservedState o;
        bool has = tenant_shard_observed_get(s, a, &o);
        bool holds = has && o.known && shard_location_mode_is_attached(o.mode) &&
                     s->generation != GENERATION_NONE && o.generation == s->generation;
        if (!holds) {
            bool fresh = p->fresh_node == a && p->fresh_generation == s->generation &&
                         s->generation_pageserver == a && s->generation != GENERATION_NONE;
            out->kind = fresh ? RECONCILE_ACTION_ATTACH : RECONCILE_ACTION_BUMP_GENERATION;
            out->node = a;
            return;
        }
        if (o.mode != SHARD_LOCATION_ATTACHED_SINGLE || needs_push(p, a)) {
            out->kind = RECONCILE_ACTION_ATTACH;
            out->node = a;
            return;
        }
    }

    for (unsigned k = 0; k < s->intent.n_secondaries; k++) {
        NodeId node = s->intent.secondaries[k];
        if (!node_set_is_available(nodes, node))
            continue;
        ObservedState o;
        bool has = tenant_shard_observed_get(s, node, &o);
        bool ok = has && o.known && o.mode == SHARD_LOCATION_SECONDARY && o.secondary_warm;
        if (!ok || needs_push(p, node)) {
            out->kind = RECONCILE_ACTION_SECONDARY;
            out->node = node;
            return;
        }
    }

    for (size_t i = 0; i < n_obs; i++) {
        NodeId node;
        ObservedState o;
        tenant_shard_observed_at(s, i, &node, &o);
        if (tenant_shard_intent_role(s, node) != INTENT_ROLE_NONE)
            continue;
        if (o.known && o.mode == SHARD_LOCATION_DETACHED)
            continue;
        if (!node_set_is_available(nodes, node))
            continue;
        out->kind = RECONCILE_ACTION_DETACH;
        out->node = node;
        return;
    }
}

/* ---- the reconciler ---- */

static void update_pending_gauge(Reconciler *r)
{
    if (r->m_pending != NULL)
        metric_gauge_set(r->m_pending, (double)(r->queued + r->running));
}

/* reconcile_set_state: the one place a reconcile changes state (checked against RECONCILE_FSM; an
 * illegal transition is refused and logged). */
void reconcile_set_state(Reconcile *rc, ReconcileState to)
{
    char tsid[TSID_STR_SIZE];
    tsid_format(&rc->shard->tsid, tsid);
    (void)fsm_set_state(&RECONCILE_FSM, &rc->state, to, tsid);
}

void reconcile_running_add(Reconciler *r, Reconcile *rc)
{
    rc->prev_running = NULL;
    rc->next_running = r->running_list;
    if (r->running_list != NULL)
        r->running_list->prev_running = rc;
    r->running_list = rc;
    r->running++;
}

void reconcile_running_remove(Reconciler *r, Reconcile *rc)
{
    if (rc->prev_running != NULL)
        rc->prev_running->next_running = rc->next_running;
    else
        r->running_list = rc->next_running;
    if (rc->next_running != NULL)
        rc->next_running->prev_running = rc->prev_running;
    r->running--;
}

static void kick_cb(void *arg)
{
    Reconciler *r = arg;
    reconcile_migrate_resume(r); /* parked migrations first: they were running */
    while (!r->stopped && r->queue_head != NULL && r->running < r->opts.max_concurrent) {
        Reconcile *rc = r->queue_head;
        r->queue_head = rc->next;
        if (r->queue_head == NULL)
            r->queue_tail = NULL;
        r->queued--;
        rc->next = NULL;
        reconcile_running_add(r, rc);
        rc->sequence = rc->shard->sequence;
        reconcile_progress_init(&rc->progress, rc->shard);
        if (r->m_started != NULL)
            metric_counter_add(r->m_started, 1);
        reconcile_set_state(rc, RECONCILE_PLAN);
        reconcile_step(rc);
    }
    update_pending_gauge(r);
}

void reconcile_kick(Reconciler *r)
{
    (void)loop_defer_item(r->defer, &r->kick);
}

Reconciler *reconciler_new(const ReconcilerOptions *opts)
{
    Reconciler *r = xcalloc(1, sizeof(*r));
    r->opts = *opts;
    if (r->opts.max_concurrent == 0)
        r->opts.max_concurrent = STORCON_RECONCILE_MAX_CONCURRENT;
    r->defer = loop_defer_new(opts->base);
    loop_defer_item_init(&r->kick, kick_cb, r);
    if (opts->metrics != NULL) {
        r->m_started = metrics_counter(opts->metrics, "storcon_reconciles_started_total",
                                       "Reconciles started", NULL);
        r->m_succeeded = metrics_counter(opts->metrics, "storcon_reconciles_succeeded_total",
                                         "Reconciles that reached the intent", NULL);
        r->m_failed = metrics_counter(opts->metrics, "storcon_reconciles_failed_total",
                                      "Reconciles that ended with an error", NULL);
        r->m_pending = metrics_gauge(opts->metrics, "storcon_reconciles_pending",
                                     "Reconciles queued or running", NULL);
        reconcile_migrate_metrics(r, opts->metrics);
    }
    return r;
}

void reconciler_free(Reconciler *r)
{
    if (r == NULL)
        return;
    while (r->queue_head != NULL) {
        Reconcile *rc = r->queue_head;
        r->queue_head = rc->next;
        rc->shard->reconciler = NULL;
        free(rc);
    }
    reconcile_migrate_free_parked(r);
    while (r->running_list != NULL) {
        Reconcile *rc = r->running_list;
        r->running_list = rc->next_running;
        pageserver_call_cancel(rc->call);
        if (rc->delay != NULL)
            event_free(rc->delay);
        rc->shard->reconciler = NULL;
        reconcile_migrate_end(rc, false);
        free(rc);
    }
    loop_defer_free(r->defer);
    free(r);
}

void reconciler_stop(Reconciler *r)
{
    r->stopped = true;
}

size_t reconciler_running(const Reconciler *r)
{
    return r->running;
}

size_t reconciler_queued(const Reconciler *r)
{
    return r->queued;
}

ReconcileState reconciler_shard_state(const TenantShard *shard)
{
    const Reconcile *rc = shard->reconciler;
    return rc == NULL ? RECONCILE_DONE : rc->state;
}

bool reconciler_spawn(Reconciler *r, TenantShard *shard)
{
    if (r->stopped || !tenant_shard_may_reconcile(shard))
        return false;
    if (shard->reconciler != NULL) {
        Reconcile *running = shard->reconciler;
        if (running->state != RECONCILE_QUEUED) /* a queued one will see the newer state anyway */
            running->again = true;
        return false;
    }
    Reconcile *rc = xcalloc(1, sizeof(*rc));
    rc->owner = r;
    rc->shard = shard;
    rc->state = RECONCILE_QUEUED;
    shard->reconciler = rc;
    if (r->queue_tail != NULL)
        r->queue_tail->next = rc;
    else
        r->queue_head = rc;
    r->queue_tail = rc;
    r->queued++;
    update_pending_gauge(r);
    reconcile_kick(r);
    return true;
}

/* reconcile_finish: the terminal state was reached: detach from the shard, count, tell the owner,
 * respawn when something newer arrived, and let the next queued reconcile run. */
static void reconcile_finish(Reconcile *rc)
{
    Reconciler *r = rc->owner;
    TenantShard *s = rc->shard;
    bool ok = rc->state == RECONCILE_DONE;
    bool newer = rc->again || s->sequence != rc->sequence;
    reconcile_running_remove(r, rc);
    s->reconciler = NULL;
    if (ok) {
        if (!newer)
            tenant_shard_clear_dirty(s);
        tenant_shard_set_last_error(s, NULL);
        if (r->m_succeeded != NULL)
            metric_counter_add(r->m_succeeded, 1);
    } else if (r->m_failed != NULL) {
        metric_counter_add(r->m_failed, 1);
    }
    reconcile_migrate_end(rc, ok);
    free(rc);
    /* the newer reconcile is queued before the owner hears of the end, so that a waiter for "no
     * reconcile running" does not take this moment for a settled shard */
    if (newer && s->reconciler == NULL)
        (void)reconciler_spawn(r, s);
    if (r->opts.hooks.finished != NULL)
        r->opts.hooks.finished(r->opts.hooks.host, s, ok);
    update_pending_gauge(r);
    reconcile_kick(r);
}

void reconcile_fail(Reconcile *rc, const char *what, const Err *err)
{
    char tsid[TSID_STR_SIZE];
    tsid_format(&rc->shard->tsid, tsid);
    char msg[TENANT_SHARD_LAST_ERROR_MAX];
    str_printf(msg, sizeof(msg), "%s on node %llu: %s", what, (unsigned long long)rc->action.node,
               err != NULL ? err->msg : "failed");
    log_warn("reconcile %s: %s", tsid, msg);
    tenant_shard_set_last_error(rc->shard, msg);
    reconcile_set_state(rc, RECONCILE_FAILED);
    reconcile_finish(rc);
}

/* reconcile_location_config_json: the LocationConfig the intent wants on a node in mode. New
 * reference. */
json_t *reconcile_location_config_json(const TenantShard *s, ShardLocationMode mode, Generation gen)
{
    json_t *conf = NULL;
    if (mode != SHARD_LOCATION_DETACHED) {
        const char *text = tenant_shard_config_json(s);
        conf = json_loads(text != NULL ? text : "{}", 0, NULL);
    }
    if (!json_is_object(conf)) {
        json_decref(conf);
        conf = json_object();
    }
    if (s->intent.n_secondaries > 0 && json_object_get(conf, "heatmap_period") == NULL)
        json_set_new(conf, "heatmap_period", json_string(STORCON_HEATMAP_PERIOD_WITH_SECONDARIES));
    json_t *j = json_object();
    json_set_new(j, "mode", json_string(shard_location_mode_name(mode)));
    json_set_new(j, "generation",
                 shard_location_mode_is_attached(mode) ? json_from_generation(gen) : json_null());
    json_set_new(j, "secondary_conf",
                 mode == SHARD_LOCATION_SECONDARY ? json_pack("{s:b}", "warm", 1) : json_null());
    json_set_new(j, "shard_number", json_integer(s->tsid.number));
    json_set_new(j, "shard_count", json_integer(s->tsid.count));
    json_set_new(j, "shard_stripe_size", json_integer((json_int_t)tenant_shard_stripe_size(s)));
    json_set_new(j, "tenant_conf", conf);
    return j;
}

bool reconcile_make_target(Reconcile *rc, NodeId node, PageserverTarget *t, char *buf, size_t size)
{
    Reconciler *r = rc->owner;
    memset(t, 0, sizeof(*t));
    if (r->opts.hooks.target == NULL ||
        !r->opts.hooks.target(r->opts.hooks.host, node, t, buf, size))
        return false;
    t->timeout_ms = STORCON_RECONCILE_CALL_TIMEOUT_MS;
    t->retry.max_attempts = STORCON_RECONCILE_CALL_ATTEMPTS;
    t->retry.base_ms = STORCON_RECONCILE_CALL_BACKOFF_MS;
    t->retry.max_ms = STORCON_RECONCILE_CALL_BACKOFF_MAX;
    t->retry.deadline_ms = STORCON_RECONCILE_CALL_DEADLINE_MS;
    return true;
}

static void mark_pushed(Reconcile *rc, NodeId node)
{
    ReconcileProgress *p = &rc->progress;
    if (!progress_has(p->pushed, p->n_pushed, node) &&
        p->n_pushed < sizeof(p->pushed) / sizeof(p->pushed[0]))
        p->pushed[p->n_pushed++] = node;
}

/* Failpoints (shared/failpoint.h), for fault tests:
 *   reconcile-before-attach  after the database issued a generation, before the attach PUT
 *   reconcile-after-attach   after a successful attach PUT, before the next step
 * "exit" crashes there (a restart must recover), "return" fails the reconcile, "sleep(ms)"
 * delays it without blocking the loop. */
static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
    Reconcile *rc = arg;
    event_free(rc->delay);
    rc->delay = NULL;
    rc->after_delay(rc);
}

/* reconcile_failpoint_gate: true: go on now; false: the failpoint failed the reconcile or will call
 * cont after its delay. */
bool reconcile_failpoint_gate(Reconcile *rc, const char *name, void (*cont)(Reconcile *rc))
{
    Err err;
    err_clear(&err);
    long ms = failpoint_delay_ms(name, &err);
    if (ms < 0) {
        reconcile_fail(rc, name, &err);
        return false;
    }
    if (ms == 0)
        return true;
    rc->after_delay = cont;
    rc->delay = event_new(rc->owner->opts.base, -1, 0, delay_cb, rc);
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    event_add(rc->delay, &tv);
    return false;
}

static void continue_plan(Reconcile *rc)
{
    reconcile_set_state(rc, RECONCILE_PLAN);
    reconcile_step(rc);
}

bool reconcile_put_answered(Reconcile *rc, const PageserverResult *res)
{
    rc->call = NULL;
    if (!res->ok && (res->status < 200 || res->status > 299)) {
        reconcile_fail(rc, reconcile_action_name(rc->action.kind), &res->err);
        return false;
    }
    return true;
}

/* on_put: a location_config PUT finished; record the written config on success. */
static void on_put(const PageserverResult *res, void *arg)
{
    Reconcile *rc = arg;
    if (!reconcile_put_answered(rc, res))
        return;
    TenantShard *s = rc->shard;
    NodeId node = rc->action.node;
    ObservedState o = {.known = true, .generation = GENERATION_NONE};
    switch (rc->state) {
    case RECONCILE_ATTACH:
        o.mode = SHARD_LOCATION_ATTACHED_SINGLE;
        o.generation =
            rc->progress.fresh_node == node ? rc->progress.fresh_generation : s->generation;
        tenant_shard_observed_set(s, node, &o);
        mark_pushed(rc, node);
        rc->attached_changed = true;
        if (!reconcile_failpoint_gate(rc, "reconcile-after-attach", continue_plan))
            return;
        break;
    case RECONCILE_SECONDARY:
        o.mode = SHARD_LOCATION_SECONDARY;
        o.secondary_warm = true;
        tenant_shard_observed_set(s, node, &o);
        mark_pushed(rc, node);
        break;
    case RECONCILE_DETACH:
    default:
        (void)tenant_shard_observed_remove(s, node);
        break;
    }
    reconcile_set_state(rc, RECONCILE_PLAN);
    reconcile_step(rc);
}

/* on_refresh: GET location_config/{tsid} finished: 404 = nothing there. */
static void on_refresh(const PageserverResult *res, void *arg)
{
    Reconcile *rc = arg;
    rc->call = NULL;
    TenantShard *s = rc->shard;
    NodeId node = rc->action.node;
    if (!res->ok) {
        reconcile_fail(rc, "refresh", &res->err);
        return;
    }
    if (res->location_get.absent) {
        (void)tenant_shard_observed_remove(s, node);
    } else {
        ObservedState o;
        Err err;
        err_clear(&err);
        if (!tenant_shard_observed_from_json(res->location_get.config, &o, &err)) {
            reconcile_fail(rc, "refresh (bad location_config)", &err);
            return;
        }
        tenant_shard_observed_set(s, node, &o);
    }
    reconcile_set_state(rc, RECONCILE_PLAN);
    reconcile_step(rc);
}

static void start_put(Reconcile *rc, ShardLocationMode mode, Generation gen)
{
    TenantShard *s = rc->shard;
    NodeId node = rc->action.node;
    PageserverTarget t;
    char url[HOST_MAX + 32];
    if (!node_set_is_available(rc->owner->opts.nodes, node)) {
        Err err;
        err_set(&err, ERR_UNAVAILABLE, "node %llu is not available", (unsigned long long)node);
        reconcile_fail(rc, reconcile_action_name(rc->action.kind), &err);
        return;
    }
    if (!reconcile_make_target(rc, node, &t, url, sizeof(url))) {
        Err err;
        err_set(&err, ERR_NOT_FOUND, "node %llu is not registered", (unsigned long long)node);
        reconcile_fail(rc, reconcile_action_name(rc->action.kind), &err);
        return;
    }
    json_t *conf = reconcile_location_config_json(s, mode, gen);
    tenant_shard_observed_set_unknown(s, node);
    rc->call = pageserver_client_location_config_put(rc->owner->opts.pc, &t, &s->tsid, conf, 0,
                                                     false, on_put, rc);
    json_decref(conf);
}

static void start_fresh_attach(Reconcile *rc)
{
    start_put(rc, SHARD_LOCATION_ATTACHED_SINGLE, rc->progress.fresh_generation);
}

bool reconcile_take_generation(Reconcile *rc, const Err *err, Generation gen)
{
    TenantShard *s = rc->shard;
    if (err != NULL) {
        reconcile_fail(rc, "generation increment", err);
        return false;
    }
    bool only_ours = s->sequence == rc->sequence;
    tenant_shard_set_generation(s, gen, rc->action.node);
    if (only_ours)
        rc->sequence = s->sequence;
    rc->progress.fresh_generation = gen;
    rc->progress.fresh_node = rc->action.node;
    return true;
}

/* on_generation: the database issued a new generation for the node to attach.
 */
static void on_generation(const Err *err, Generation gen, void *arg)
{
    Reconcile *rc = arg;
    if (!reconcile_take_generation(rc, err, gen))
        return;
    reconcile_set_state(rc, RECONCILE_ATTACH);
    if (reconcile_failpoint_gate(rc, "reconcile-before-attach", start_fresh_attach))
        start_fresh_attach(rc);
}

/* reconcile_step: PLAN: pick the next action on the live state and start it. */
void reconcile_step(Reconcile *rc)
{
    Reconciler *r = rc->owner;
    TenantShard *s = rc->shard;
    if (rc->state != RECONCILE_PLAN)
        return;
    if (s->sequence != rc->sequence && !rc->progress.push_config &&
        (s->flags & TENANT_SHARD_FORCE_DIRTY)) {
        /* a config change arrived: push it to every location from here on */
        rc->progress.push_config = true;
        rc->progress.n_pushed = 0;
    }
    if (!tenant_shard_may_reconcile(s)) {
        Err err;
        err_set(&err, ERR_CONFLICT, "%s",
                tenant_shard_is_splitting(s) ? "shard split in progress"
                                             : "scheduling policy Stop");
        reconcile_fail(rc, "policy", &err);
        return;
    }
    reconcile_plan(s, r->opts.nodes, &rc->progress, &rc->action);
    if (reconcile_action_is_migrate(rc->action.kind)) {
        reconcile_migrate_start(rc);
        return;
    }
    PageserverTarget t;
    char url[HOST_MAX + 32];
    switch (rc->action.kind) {
    case RECONCILE_ACTION_REFRESH:
        reconcile_set_state(rc, RECONCILE_REFRESH);
        if (rc->progress.n_refreshed < sizeof(rc->progress.refreshed) / sizeof(NodeId))
            rc->progress.refreshed[rc->progress.n_refreshed++] = rc->action.node;
        if (!reconcile_make_target(rc, rc->action.node, &t, url, sizeof(url))) {
            (void)tenant_shard_observed_remove(s, rc->action.node);
            reconcile_set_state(rc, RECONCILE_PLAN);
            reconcile_step(rc);
            return;
        }
        t.retry.max_attempts = 2;
        rc->call = pageserver_client_location_config_get(r->opts.pc, &t, &s->tsid, on_refresh, rc);
        return;
    case RECONCILE_ACTION_BUMP_GENERATION:
        reconcile_set_state(rc, RECONCILE_BUMP_GENERATION);
        db_tenants_increment_generation(r->opts.db, &s->tsid, rc->action.node, on_generation, rc);
        return;
    case RECONCILE_ACTION_ATTACH:
        reconcile_set_state(rc, RECONCILE_ATTACH);
        if (rc->progress.fresh_node == rc->action.node &&
            rc->progress.fresh_generation == s->generation) {
            /* the generation the tenant's insert issued (reconcile_progress_init): like one
             * issued by a bump, it passes the failpoint between the issue and the attach */
            if (reconcile_failpoint_gate(rc, "reconcile-before-attach", start_fresh_attach))
                start_fresh_attach(rc);
            return;
        }
        start_put(rc, SHARD_LOCATION_ATTACHED_SINGLE, s->generation);
        return;
    case RECONCILE_ACTION_SECONDARY:
        reconcile_set_state(rc, RECONCILE_SECONDARY);
        start_put(rc, SHARD_LOCATION_SECONDARY, GENERATION_NONE);
        return;
    case RECONCILE_ACTION_DETACH:
        reconcile_set_state(rc, RECONCILE_DETACH);
        start_put(rc, SHARD_LOCATION_DETACHED, GENERATION_NONE);
        return;
    case RECONCILE_ACTION_NONE:
    case RECONCILE_ACTION_COUNT:
    default:
        break;
    }
    if (rc->attached_changed || tenant_shard_pending_notify(s)) {
        reconcile_set_state(rc, RECONCILE_NOTIFY);
        tenant_shard_set_pending_notify(s, true);
        if (r->opts.hooks.notify != NULL)
            r->opts.hooks.notify(r->opts.hooks.host, s);
        reconcile_set_state(rc, RECONCILE_DONE);
    } else {
        reconcile_set_state(rc, RECONCILE_DONE);
    }
    reconcile_finish(rc);
}
