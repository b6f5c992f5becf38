/*
 * service_drain.c: node operations: drain, fill and graceful delete (spec storcon.md "Drain",
 * docs/operations.md).
 *
 * Each is an Operation (storcon/operation.h) of its own kind holding the node's exclusive lock, and
 * at most one of them runs at a time (NodeOps.run). None of them talks to a pageserver: a move
 * changes the shard's intent and the reconciler carries it out (today a cut-over, a live
 * migration once the reconciler does those); the operation only waits for the shard to converge.
 * So the steps read:
 *
 *   drain   policy Draining (persisted) -> for every shard attached on the node: attach it to its
 *           best secondary on a schedulable node (the origin stays as a warm secondary), or, with
 *           none, add a secondary on the best node first, wait for it, then attach there ->
 *           policy PauseForRestart
 *   fill    policy Filling -> shards with a secondary on the node are attached there again, home
 *           AZ first, then from the most loaded nodes, until the node holds its fair share
 *           (attached shards / schedulable nodes, rounded down) -> policy Active
 *   delete  policy Deleting -> every attached shard moves off (as a drain, without leaving a
 *           secondary behind) -> every secondary on the node moves to another node -> tombstone
 *           (lifecycle deleted, persisted) -> the node is forgotten in memory
 *
 * A cut-over waits until the target's pageserver reports the secondary (observed Secondary): one
 * that is not there yet is reconciled first (MOVE_WARMING).
 *
 * Moves run in parallel, at most NODE_OP_MAX_IN_FLIGHT at a time, driven by a timer
 * (NODE_OP_TICK_MS): each tick checks the moves in flight and starts new ones. A move that does
 * not converge within NODE_OP_MOVE_TIMEOUT_MS is counted as failed and left to the background
 * reconcile; the operation still ends (the runbook says what to do about failures).
 *
 * Progress survives a restart through the node's persisted policy: a controller starting with a
 * Draining or Deleting node starts that operation again (it finds what is left to move), a
 * Filling node becomes Active, a PauseForRestart node stays so (service_node_ops_resume).
 * Cancelling (DELETE on the route) stops starting moves, lets the node's policy go back to Active
 * (persisted) and answers; moves already made stay.
 *
 * Failpoint node-op-before-move (sleep(ms)): each move waits that long before it starts (tests
 * slow a drain down with it to cancel or kill it half-way).
 */
#include "storcon/service_internal.h"

#include "shared/failpoint.h"

#define NODE_OP_MAX_IN_FLIGHT   64
#define NODE_OP_TICK_MS         100
#define NODE_OP_MOVE_TIMEOUT_MS 120000
#define NODE_OP_FAILPOINT       "node-op-before-move"

typedef enum MovePhase {
    MOVE_WARMING,   /* a new secondary on the target must be reconciled first */
    MOVE_CUTOVER,   /* the intent attaches the target; waiting for the reconcile to converge */
    MOVE_SECONDARY, /* delete: the node's secondary was replaced; waiting for convergence */
} MovePhase;

typedef struct Move {
    TenantShardId tsid;
    NodeId origin; /* attached node when the move started */
    NodeId target;
    MovePhase phase;
    int64_t started_ms;
} Move;

/* The phases of a run (delete walks them all; drain and fill only the first). */
typedef enum RunPhase { PHASE_ATTACHED, PHASE_SECONDARIES, PHASE_TOMBSTONE } RunPhase;

typedef struct NodeOpRun {
    Service *svc;
    Operation *op;
    OperationKind kind;
    NodeId node;
    RunPhase phase;
    ServiceJsonFn reply; /* the start request, answered once the policy is persisted */
    void *reply_arg;
    ServiceJsonFn cancel_reply; /* a cancel waiting for the end */
    void *cancel_arg;
    bool resumed;   /* started by a restart: nobody to answer */
    bool cancel;    /* a cancel was asked */
    bool finishing; /* the final policy / tombstone is being stored */
    struct event *tick;
    TenantShardId *todo; /* candidates of the phase, in order */
    size_t n_todo, i_todo;
    bool rescanned; /* the phase's candidates were listed again once at its end */
    Move moves[NODE_OP_MAX_IN_FLIGHT];
    size_t n_moves;
    size_t total, done, failed;
    uint32_t fair_share; /* fill */
    int64_t next_move_ms;
    bool delay_served;
    Err err; /* why the run failed */
} NodeOpRun;

struct NodeOps {
    NodeOpRun *run;
    MetricGauge *m_running[3]; /* drain, fill, delete */
    MetricGauge *m_done, *m_total, *m_in_flight, *m_failed;
    MetricCounter *m_moves;
};

static const char *kind_word(OperationKind kind)
{
    switch (kind) {
    case OPERATION_NODE_DRAIN:
        return "drain";
    case OPERATION_NODE_FILL:
        return "fill";
    case OPERATION_NODE_DELETE:
        return "delete";
    default:
        return "?";
    }
}

static int kind_index(OperationKind kind)
{
    return kind == OPERATION_NODE_DRAIN ? 0 : kind == OPERATION_NODE_FILL ? 1 : 2;
}

/* run_policy: the policy the node has while the run is going. */
static NodeSchedulingPolicy run_policy(OperationKind kind)
{
    return kind == OPERATION_NODE_DRAIN  ? NODE_SCHEDULING_DRAINING
           : kind == OPERATION_NODE_FILL ? NODE_SCHEDULING_FILLING
                                         : NODE_SCHEDULING_DELETING;
}

/* tsid_text: a shard id for log lines. */
typedef struct TsidText {
    char s[TSID_STR_SIZE];
} TsidText;

static TsidText tsid_text(const TenantShardId *id)
{
    TsidText t;
    tsid_format(id, t.s);
    return t;
}

/* ---- metrics ---- */

static void update_metrics(Service *svc)
{
    struct NodeOps *no = svc->node_ops;
    if (no == NULL || no->m_done == NULL)
        return;
    NodeOpRun *r = no->run;
    for (int i = 0; i < 3; i++)
        metric_gauge_set(no->m_running[i], r != NULL && kind_index(r->kind) == i ? 1.0 : 0.0);
    if (r == NULL) {
        metric_gauge_set(no->m_in_flight, 0);
        return;
    }
    metric_gauge_set(no->m_done, (double)r->done);
    metric_gauge_set(no->m_total, (double)r->total);
    metric_gauge_set(no->m_in_flight, (double)r->n_moves);
    metric_gauge_set(no->m_failed, (double)r->failed);
}

void service_node_ops_init(Service *svc)
{
    struct NodeOps *no = xcalloc(1, sizeof(*no));
    svc->node_ops = no;
    MetricsRegistry *m = svc->opts.metrics;
    if (m == NULL)
        return;
    static const char *const kinds[3] = {"drain", "fill", "delete"};
    for (int i = 0; i < 3; i++) {
        char labels[32];
        (void)str_printf(labels, sizeof(labels), "kind=\"%s\"", kinds[i]);
        no->m_running[i] = metrics_gauge(m, "storcon_node_operation_running",
                                         "1 while a node operation of this kind runs", labels);
    }
    const char *help = "Shards of the current (or last) node operation";
    no->m_done = metrics_gauge(m, "storcon_node_operation_shards", help, "state=\"done\"");
    no->m_total = metrics_gauge(m, "storcon_node_operation_shards", help, "state=\"total\"");
    no->m_in_flight =
        metrics_gauge(m, "storcon_node_operation_shards", help, "state=\"in_flight\"");
    no->m_failed = metrics_gauge(m, "storcon_node_operation_shards", help, "state=\"failed\"");
    no->m_moves = metrics_counter(m, "storcon_node_operation_moves_total",
                                  "Shard moves started by drains, fills and deletes", NULL);
}

/* ---- helpers shared with the optimiser ---- */

uint32_t service_tenant_attached_on(const Tenant *t, NodeId node)
{
    uint32_t n = 0;
    for (size_t i = 0; i < t->n_shards; i++)
        n += t->shards[i]->intent.attached == node;
    return n;
}

bool service_cutover(Service *svc, TenantShard *s, NodeId target, bool keep_origin, Err *err)
{
    if (keep_origin && s->intent.attached != NODE_ID_NONE &&
        tenant_shard_intent_role(s, target) == INTENT_ROLE_SECONDARY)
        (void)scheduler_intent_demote_attached(&svc->sched, s); /* no room: dropped instead */
    if (!scheduler_intent_set_attached(&svc->sched, s, target, err))
        return false;
    (void)reconciler_spawn(svc->rec, s);
    return true;
}

/* settled: the shard's reconcile converged (none running, nothing left to do). */
static bool settled(Service *svc, const TenantShard *s)
{
    return !tenant_shard_is_reconciling(s) && !tenant_shard_is_dirty(s, &svc->nodes);
}

/* ---- candidates ---- */

static void todo_push(NodeOpRun *r, const TenantShardId *tsid, size_t *cap)
{
    if (r->n_todo == *cap) {
        *cap = *cap == 0 ? 64 : *cap * 2;
        r->todo = xrealloc(r->todo, *cap * sizeof(*r->todo));
    }
    r->todo[r->n_todo++] = *tsid;
}

/* movable: a drain or delete may move the shard (Pause and Stop shards stay frozen; a split in
 * progress owns its shards). */
static bool movable(const TenantShard *s)
{
    return tenant_shard_may_schedule(s) && !tenant_shard_is_splitting(s);
}

typedef struct FillCandidate {
    TenantShardId tsid;
    unsigned away;   /* 0: the node is in the shard's preferred AZ and the attached node is not */
    uint32_t source; /* the attached node's attached count */
} FillCandidate;

static int fill_cmp(const void *pa, const void *pb)
{
    const FillCandidate *a = pa, *b = pb;
    if (a->away != b->away)
        return a->away < b->away ? -1 : 1;
    if (a->source != b->source)
        return a->source > b->source ? -1 : 1;
    return tsid_cmp(&a->tsid, &b->tsid);
}

/* list_candidates: the shards the current phase must look at, in order. */
static void list_candidates(NodeOpRun *r)
{
    Service *svc = r->svc;
    const Node *node = node_set_get(&svc->nodes, r->node);
    free(r->todo);
    r->todo = NULL;
    r->n_todo = r->i_todo = 0;
    size_t cap = 0;
    FillCandidate *fc = NULL;
    size_t n_fc = 0, cap_fc = 0;
    ShardMapIter it;
    shard_map_iter_init(&it, svc->map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        IntentRole role = tenant_shard_intent_role(s, r->node);
        if (r->kind == OPERATION_NODE_FILL) {
            if (role != INTENT_ROLE_SECONDARY || !tenant_shard_may_optimize(s) ||
                tenant_shard_is_splitting(s) || s->intent.attached == NODE_ID_NONE)
                continue;
            const Node *src = node_set_get(&svc->nodes, s->intent.attached);
            if (src == NULL || !node_is_available(src))
                continue;
            if (n_fc == cap_fc) {
                cap_fc = cap_fc == 0 ? 64 : cap_fc * 2;
                fc = xrealloc(fc, cap_fc * sizeof(*fc));
            }
            const char *pref = tenant_shard_preferred_az(s);
            bool home = node != NULL && pref[0] != '\0' && strcmp(pref, node->az) == 0 &&
                        strcmp(pref, src->az) != 0;
            fc[n_fc].tsid = s->tsid;
            fc[n_fc].away = home ? 0u : 1u;
            fc[n_fc].source = src->attached_count;
            n_fc++;
            continue;
        }
        if (r->phase == PHASE_ATTACHED && role == INTENT_ROLE_ATTACHED && movable(s))
            todo_push(r, &s->tsid, &cap);
        else if (r->phase == PHASE_SECONDARIES && role == INTENT_ROLE_SECONDARY)
            todo_push(r, &s->tsid, &cap);
    }
    if (fc != NULL) {
        qsort(fc, n_fc, sizeof(*fc), fill_cmp);
        for (size_t i = 0; i < n_fc; i++)
            todo_push(r, &fc[i].tsid, &cap);
        free(fc);
    }
}

/* fill_fair_share: attached locations per schedulable node (the filling node counts), rounded
 * down. */
static uint32_t fill_fair_share(Service *svc)
{
    uint64_t attached = 0;
    uint64_t nodes = 0;
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        const Node *n = node_set_at(&svc->nodes, i);
        attached += n->attached_count;
        nodes += node_is_schedulable(n);
    }
    return nodes == 0 ? 0 : (uint32_t)(attached / nodes);
}

/* ---- moves ---- */

/* held_as_secondary: the pageserver on node reports the shard as a Secondary (known state). */
static bool held_as_secondary(const TenantShard *s, NodeId node)
{
    ObservedState o;
    return tenant_shard_observed_get(s, node, &o) && o.known && o.mode == SHARD_LOCATION_SECONDARY;
}

/* cut_over_now: the intent attaches s on m->target (a drain and a fill keep the origin as a
 * secondary, a delete does not and asks the scheduler for a replacement elsewhere). */
static bool cut_over_now(NodeOpRun *r, TenantShard *s, Move *m, Err *err)
{
    Service *svc = r->svc;
    if (!service_cutover(svc, s, m->target, r->kind != OPERATION_NODE_DELETE, err))
        return false;
    m->phase = MOVE_CUTOVER;
    if (r->kind == OPERATION_NODE_DELETE) {
        Err e;
        err_clear(&e);
        if (!scheduler_schedule_shard(&svc->sched, s, NULL, NULL, &e))
            log_warn("delete of node %llu: no new secondary for %s yet: %s",
                     (unsigned long long)r->node, tsid_text(&s->tsid).s, e.msg);
        (void)reconciler_spawn(svc->rec, s);
    }
    return true;
}

/* begin_cutover: cut over at once when the target's pageserver holds the secondary, else wait
 * for it first (MOVE_WARMING: a reader never lands on a location that is not there yet). */
static bool begin_cutover(NodeOpRun *r, TenantShard *s, Move *m, Err *err)
{
    if (held_as_secondary(s, m->target))
        return cut_over_now(r, s, m, err);
    m->phase = MOVE_WARMING;
    (void)reconciler_spawn(r->svc->rec, s);
    return true;
}

/* start_move: the next move for shard s, or false when s needs none (or none is possible: then
 * it counts as failed). */
static bool start_move(NodeOpRun *r, TenantShard *s)
{
    Service *svc = r->svc;
    Err err;
    err_clear(&err);
    Move *m = &r->moves[r->n_moves];
    memset(m, 0, sizeof(*m));
    m->tsid = s->tsid;
    m->started_ms = service_now_ms();
    ScheduleContext ctx;
    schedule_context_init(&ctx);
    for (size_t i = 0; i < s->tenant->n_shards; i++)
        schedule_context_add_shard(&ctx, s->tenant->shards[i]);
    bool ok = false;
    m->origin = s->intent.attached;
    if (r->kind == OPERATION_NODE_FILL) {
        m->target = r->node;
        ok = begin_cutover(r, s, m, &err);
    } else if (r->phase == PHASE_ATTACHED) {
        NodeId target = scheduler_pick_promotable_secondary(&svc->sched, s, &ctx);
        if (target != NODE_ID_NONE && !held_as_secondary(s, target)) {
            /* a secondary its pageserver already holds beats a better-scored one that is not */
            for (unsigned i = 0; i < s->intent.n_secondaries; i++) {
                const Node *n = node_set_get(&svc->nodes, s->intent.secondaries[i]);
                if (n != NULL && node_is_schedulable(n) && held_as_secondary(s, n->id)) {
                    target = n->id;
                    break;
                }
            }
        }
        if (target != NODE_ID_NONE) {
            m->target = target;
            ok = begin_cutover(r, s, m, &err);
        } else {
            /* no usable secondary: a new one on the best node first */
            target = scheduler_pick_attached(&svc->sched, s, &ctx);
            m->target = target;
            m->phase = MOVE_WARMING;
            if (target == NODE_ID_NONE)
                err_set(&err, ERR_UNAVAILABLE, "no schedulable node for %s", tsid_text(&s->tsid).s);
            else
                ok = scheduler_intent_add_secondary(&svc->sched, s, target, &err);
            if (ok)
                (void)reconciler_spawn(svc->rec, s);
        }
    } else {
        /* delete, secondaries: drop the node's secondary, let the scheduler add a replacement */
        (void)scheduler_intent_remove_node(&svc->sched, s, r->node);
        m->target = NODE_ID_NONE;
        m->phase = MOVE_SECONDARY;
        bool changed = false;
        if (!scheduler_schedule_shard(&svc->sched, s, &ctx, &changed, &err))
            log_warn("%s of node %llu: no replacement secondary for %s yet: %s", kind_word(r->kind),
                     (unsigned long long)r->node, tsid_text(&s->tsid).s, err.msg);
        (void)reconciler_spawn(svc->rec, s);
        ok = true;
    }
    schedule_context_finish(&ctx);
    if (!ok) {
        log_warn("%s of node %llu: cannot move %s: %s", kind_word(r->kind),
                 (unsigned long long)r->node, tsid_text(&s->tsid).s, err.msg);
        tenant_shard_set_last_error(s, err.msg);
        r->failed++;
        return false;
    }
    if (svc->node_ops->m_moves != NULL)
        metric_counter_add(svc->node_ops->m_moves, 1);
    r->n_moves++;
    return true;
}

typedef enum MoveOutcome { MOVE_PENDING, MOVE_DONE, MOVE_FAILED } MoveOutcome;

/* check_move: advance one move. */
static MoveOutcome check_move(NodeOpRun *r, Move *m)
{
    Service *svc = r->svc;
    TenantShard *s = shard_map_get(svc->map, &m->tsid);
    if (s == NULL)
        return MOVE_DONE; /* deleted or split meanwhile: nothing left to move */
    if (service_now_ms() - m->started_ms > NODE_OP_MOVE_TIMEOUT_MS) {
        log_warn("%s of node %llu: %s did not converge in %d ms (%s); left to the background "
                 "reconcile",
                 kind_word(r->kind), (unsigned long long)r->node, tsid_text(&m->tsid).s,
                 NODE_OP_MOVE_TIMEOUT_MS, tenant_shard_last_error(s));
        return MOVE_FAILED;
    }
    Err err;
    err_clear(&err);
    switch (m->phase) {
    case MOVE_WARMING: {
        if (s->intent.attached != m->origin)
            return MOVE_DONE; /* moved by someone else (failover, operator) */
        if (tenant_shard_intent_role(s, m->target) == INTENT_ROLE_NONE) {
            /* trimmed by a scheduling pass (the policy wants fewer): add it again */
            if (!scheduler_intent_add_secondary(&svc->sched, s, m->target, &err))
                return MOVE_FAILED;
            (void)reconciler_spawn(svc->rec, s);
            return MOVE_PENDING;
        }
        if (!held_as_secondary(s, m->target)) {
            if (!tenant_shard_is_reconciling(s))
                (void)reconciler_spawn(svc->rec, s);
            return MOVE_PENDING;
        }
        if (!cut_over_now(r, s, m, &err)) {
            tenant_shard_set_last_error(s, err.msg);
            return MOVE_FAILED;
        }
        return MOVE_PENDING;
    }
    case MOVE_CUTOVER:
        if (s->intent.attached != m->target)
            return s->intent.attached == r->node && r->kind != OPERATION_NODE_FILL ? MOVE_FAILED
                                                                                   : MOVE_DONE;
        break;
    case MOVE_SECONDARY:
        if (tenant_shard_intent_role(s, r->node) != INTENT_ROLE_NONE)
            (void)scheduler_intent_remove_node(&svc->sched, s, r->node);
        break;
    }
    if (settled(svc, s))
        return MOVE_DONE;
    if (!tenant_shard_is_reconciling(s))
        (void)reconciler_spawn(svc->rec, s); /* a failed reconcile: try again */
    return MOVE_PENDING;
}

/* next_candidate: the next shard to move in the current phase, or NULL when the list is done. */
static TenantShard *next_candidate(NodeOpRun *r)
{
    Service *svc = r->svc;
    while (r->i_todo < r->n_todo) {
        const TenantShardId *tsid = &r->todo[r->i_todo++];
        TenantShard *s = shard_map_get(svc->map, tsid);
        if (s == NULL)
            continue;
        bool busy = false;
        for (size_t i = 0; i < r->n_moves && !busy; i++)
            busy = tsid_eq(&r->moves[i].tsid, tsid);
        if (busy)
            continue;
        IntentRole role = tenant_shard_intent_role(s, r->node);
        if (r->kind == OPERATION_NODE_FILL) {
            if (role != INTENT_ROLE_SECONDARY || s->intent.attached == NODE_ID_NONE)
                continue;
            const Node *src = node_set_get(&svc->nodes, s->intent.attached);
            if (src == NULL || src->attached_count <= r->fair_share)
                continue; /* not taken from a node that is not above its share */
            if (service_tenant_attached_on(s->tenant, r->node) >=
                service_tenant_attached_on(s->tenant, s->intent.attached))
                continue; /* would crowd the tenant on this node (the optimiser would undo it) */
            return s;
        }
        if (r->phase == PHASE_ATTACHED && role == INTENT_ROLE_ATTACHED && movable(s))
            return s;
        if (r->phase == PHASE_SECONDARIES && role == INTENT_ROLE_SECONDARY)
            return s;
    }
    return NULL;
}

/* ---- the run ---- */

static void run_tick_arm(NodeOpRun *r)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = NODE_OP_TICK_MS * 1000};
    event_add(r->tick, &tv);
}

static void run_free(void *data)
{
    NodeOpRun *r = data;
    if (r->tick != NULL)
        event_free(r->tick);
    free(r->todo);
    free(r);
}

/* run_done: the operation's completion. It has no HTTP caller of its own: the start request was
 * answered when the policy was stored, a cancel is answered by run_end. */
static void run_done(const Err *err, json_t *result, void *arg)
{
    (void)err;
    (void)arg;
    json_decref(result);
}

/* run_end: detach the run from the service, answer the callers, finish the operation. */
static void run_end(NodeOpRun *r, const Err *err)
{
    Service *svc = r->svc;
    if (svc->node_ops->run == r)
        svc->node_ops->run = NULL;
    update_metrics(svc);
    if (err != NULL)
        log_warn("%s of node %llu ended: %s (%zu of %zu shards moved, %zu failed)",
                 kind_word(r->kind), (unsigned long long)r->node, err->msg, r->done, r->total,
                 r->failed);
    else
        log_info("%s of node %llu finished: %zu of %zu shards moved, %zu failed",
                 kind_word(r->kind), (unsigned long long)r->node, r->done, r->total, r->failed);
    if (r->reply != NULL) {
        ServiceJsonFn cb = r->reply;
        r->reply = NULL;
        if (err != NULL)
            cb(err, NULL, r->reply_arg);
        else
            cb(NULL, json_null(), r->reply_arg);
    }
    if (r->cancel_reply != NULL) {
        ServiceJsonFn cb = r->cancel_reply;
        r->cancel_reply = NULL;
        cb(NULL, json_null(), r->cancel_arg);
    }
    if (r->tick != NULL)
        event_del(r->tick);
    operation_finish(r->op, err, err == NULL ? json_null() : NULL);
}

static void on_final_policy(const Err *err, void *arg)
{
    NodeOpRun *r = arg;
    Service *svc = r->svc;
    if (err != NULL) {
        /* the database refused: keep trying (the node's policy in memory is already the final
         * one; a restart before this succeeds resumes the operation) */
        log_err(err, "storing a node's policy after its operation");
        r->finishing = false;
        run_tick_arm(r);
        return;
    }
    Err e;
    err_clear(&e);
    if (r->cancel)
        err_set(&e, ERR_CONFLICT, "%s of node %llu cancelled", kind_word(r->kind),
                (unsigned long long)r->node);
    else if (r->err.code != ERR_NONE)
        e = r->err;
    service_schedule_all(svc);
    (void)service_reconcile_all(svc);
    run_end(r, e.code != ERR_NONE ? &e : NULL);
}

/* store_final_policy: the node's policy at the end (memory first: the scheduler sees it at
 * once), then persisted, then the run ends. */
static void store_final_policy(NodeOpRun *r, NodeSchedulingPolicy to)
{
    Service *svc = r->svc;
    r->finishing = true;
    Node *n = node_set_get(&svc->nodes, r->node);
    if (n == NULL) {
        on_final_policy(NULL, r);
        return;
    }
    (void)node_set_scheduling(n, to);
    Err err;
    err_clear(&err);
    if (!db_nodes_set_scheduling_policy(svc->opts.db, r->node, node_scheduling_policy_name(to),
                                        on_final_policy, r, &err))
        on_final_policy(&err, r);
}

/* on_tombstoned: the node is a tombstone in the database: forget it in memory. */
static void on_tombstoned(const Err *err, void *arg)
{
    NodeOpRun *r = arg;
    Service *svc = r->svc;
    if (err != NULL) {
        log_err(err, "tombstoning a deleted node");
        r->finishing = false;
        run_tick_arm(r); /* tried again at the next tick */
        return;
    }
    ShardMapIter it;
    shard_map_iter_init(&it, svc->map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL)
        (void)tenant_shard_observed_remove(s, r->node);
    Err e;
    err_clear(&e);
    service_node_offline_err(r->node, &e);
    (void)pageserver_client_cancel_node(svc->pc, r->node, &e);
    err_clear(&e);
    if (!node_set_remove(&svc->nodes, r->node, &e))
        log_err(&e, "forgetting a deleted node");
    else
        log_info("node %llu deleted (tombstone)", (unsigned long long)r->node);
    service_schedule_all(svc);
    (void)service_reconcile_all(svc);
    service_update_node_gauges(svc);
    run_end(r, NULL);
}

/* phase_complete: every move of the phase converged. */
static void phase_complete(NodeOpRun *r)
{
    Service *svc = r->svc;
    switch (r->kind) {
    case OPERATION_NODE_DRAIN:
        if (r->failed != 0) /* before the store: its completion may end (free) the run */
            err_set(&r->err, ERR_INTERNAL, "drain of node %llu: %zu shards could not be moved",
                    (unsigned long long)r->node, r->failed);
        store_final_policy(r, r->failed == 0 ? NODE_SCHEDULING_PAUSE_FOR_RESTART
                                             : NODE_SCHEDULING_ACTIVE);
        return;
    case OPERATION_NODE_FILL:
        store_final_policy(r, NODE_SCHEDULING_ACTIVE);
        return;
    default:
        break;
    }
    if (r->phase == PHASE_ATTACHED) {
        r->phase = PHASE_SECONDARIES;
        r->rescanned = false;
        operation_set_step(r->op, "moving secondaries");
        list_candidates(r);
        r->total += r->n_todo;
        run_tick_arm(r);
        return;
    }
    Node *n = node_set_get(&svc->nodes, r->node);
    if (r->failed != 0 || (n != NULL && n->shard_count != 0)) {
        err_set(&r->err, ERR_INTERNAL,
                "delete of node %llu: %zu shards could not be moved; the node stays",
                (unsigned long long)r->node, r->failed);
        store_final_policy(r, NODE_SCHEDULING_ACTIVE);
        return;
    }
    r->phase = PHASE_TOMBSTONE;
    r->finishing = true;
    operation_set_step(r->op, "tombstone");
    if (n != NULL)
        n->lifecycle = NODE_LIFECYCLE_DELETED; /* unschedulable from now on */
    db_nodes_tombstone(svc->opts.db, r->node, on_tombstoned, r);
}

static void run_tick(evutil_socket_t fd, short what, void *arg)
{
    NodeOpRun *r = arg;
    Service *svc = r->svc;
    if (r->finishing || svc->stopping)
        return;
    if (r->phase == PHASE_TOMBSTONE) { /* a tombstone write failed: again */
        r->finishing = true;
        db_nodes_tombstone(svc->opts.db, r->node, on_tombstoned, r);
        return;
    }
    if (r->cancel || operation_cancelled(r->op)) {
        r->cancel = true;
        store_final_policy(r, NODE_SCHEDULING_ACTIVE);
        return;
    }
    if (node_set_get(&svc->nodes, r->node) == NULL) {
        err_set(&r->err, ERR_NOT_FOUND, "node %llu is gone", (unsigned long long)r->node);
        run_end(r, &r->err);
        return;
    }
    /* moves in flight */
    for (size_t i = 0; i < r->n_moves;) {
        MoveOutcome o = check_move(r, &r->moves[i]);
        if (o == MOVE_PENDING) {
            i++;
            continue;
        }
        if (o == MOVE_DONE)
            r->done++;
        else
            r->failed++;
        r->moves[i] = r->moves[--r->n_moves];
    }
    /* new ones */
    bool exhausted = false;
    if (r->kind == OPERATION_NODE_FILL) {
        const Node *n = node_set_get(&svc->nodes, r->node);
        if (n->attached_count >= r->fair_share)
            exhausted = true; /* its share (intents counted: moves in flight included) */
    }
    int64_t now = service_now_ms();
    while (!exhausted && r->n_moves < NODE_OP_MAX_IN_FLIGHT && now >= r->next_move_ms) {
        if (!r->delay_served) {
            Err fe;
            err_clear(&fe);
            long delay = failpoint_delay_ms(NODE_OP_FAILPOINT, &fe);
            if (delay > 0) {
                r->next_move_ms = now + delay;
                r->delay_served = true;
                break;
            }
        }
        TenantShard *s = next_candidate(r);
        if (s == NULL) {
            exhausted = true;
            break;
        }
        r->delay_served = false;
        (void)start_move(r, s);
        if (r->kind == OPERATION_NODE_FILL &&
            node_set_get(&svc->nodes, r->node)->attached_count >= r->fair_share)
            exhausted = true;
    }
    operation_set_progress(r->op, r->done, r->total);
    update_metrics(svc);
    if (exhausted && r->n_moves == 0) {
        if (!r->rescanned && r->kind != OPERATION_NODE_FILL) {
            /* shards that arrived on the node meanwhile (a restart's rebuild, a failover) */
            r->rescanned = true;
            list_candidates(r);
            if (r->n_todo > 0) {
                r->total += r->n_todo;
                run_tick_arm(r);
                return;
            }
        }
        phase_complete(r);
        return;
    }
    run_tick_arm(r);
}

/* run_begin: the policy is stored: answer the start request, list what to move, tick. */
static void run_begin(NodeOpRun *r)
{
    Service *svc = r->svc;
    if (r->reply != NULL) {
        ServiceJsonFn cb = r->reply;
        r->reply = NULL;
        cb(NULL, json_null(), r->reply_arg);
    }
    if (r->kind == OPERATION_NODE_FILL)
        r->fair_share = fill_fair_share(svc);
    operation_set_step(r->op, r->kind == OPERATION_NODE_FILL ? "filling" : "moving attached");
    list_candidates(r);
    r->total = r->n_todo;
    log_info("%s of node %llu: %zu shards to look at%s", kind_word(r->kind),
             (unsigned long long)r->node, r->n_todo,
             r->resumed ? " (resumed after a restart)" : "");
    r->tick = event_new(svc->opts.base, -1, 0, run_tick, r);
    run_tick_arm(r);
}

static void on_policy_stored(Operation *op, const Err *err)
{
    NodeOpRun *r = operation_data(op);
    Service *svc = r->svc;
    if (err != NULL) {
        Node *n = node_set_get(&svc->nodes, r->node);
        if (n != NULL && !r->resumed)
            (void)node_set_scheduling(n, NODE_SCHEDULING_ACTIVE);
        run_end(r, err);
        return;
    }
    run_begin(r);
}

/* run_first: the operation holds the node's lock: set and persist the policy. */
static void run_first(Operation *op)
{
    NodeOpRun *r = operation_data(op);
    Service *svc = r->svc;
    Node *n = node_set_get(&svc->nodes, r->node);
    Err err;
    err_clear(&err);
    if (n == NULL) {
        err_set(&err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)r->node);
        run_end(r, &err);
        return;
    }
    NodeSchedulingPolicy to = run_policy(r->kind);
    if (n->scheduling == to) { /* resumed: already stored */
        run_begin(r);
        return;
    }
    if (!node_set_scheduling(n, to)) {
        err_set(&err, ERR_PRECONDITION_FAILED, "node %llu is %s: cannot %s it",
                (unsigned long long)r->node, node_scheduling_policy_name(n->scheduling),
                kind_word(r->kind));
        run_end(r, &err);
        return;
    }
    /* the node stops being schedulable now (drain, delete): nothing new lands on it */
    operation_set_step(op, "storing the node policy");
    operation_set_next(op, on_policy_stored);
    if (!db_nodes_set_scheduling_policy(svc->opts.db, r->node, node_scheduling_policy_name(to),
                                        operation_continue, op, &err))
        on_policy_stored(op, &err);
}

/* run_start: a new run of kind on node (preconditions checked by the caller). */
static NodeOpRun *run_start(Service *svc, NodeId node, OperationKind kind, ServiceJsonFn cb,
                            void *arg)
{
    NodeOpRun *r = xcalloc(1, sizeof(*r));
    r->svc = svc;
    r->kind = kind;
    r->node = node;
    r->reply = cb;
    r->reply_arg = arg;
    r->resumed = cb == NULL;
    err_clear(&r->err);
    r->op = operation_new(svc->ops, kind, run_done, svc);
    operation_set_data(r->op, r, run_free);
    operation_lock_node(r->op, node, TENANT_LOCK_EXCLUSIVE);
    svc->node_ops->run = r;
    update_metrics(svc);
    operation_start(r->op, run_first);
    return r;
}

/* ---- preconditions and the service calls ---- */

static bool other_schedulable(const Service *svc, NodeId node)
{
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        const Node *n = node_set_at(&svc->nodes, i);
        if (n->id != node && node_is_schedulable(n))
            return true;
    }
    return false;
}

static bool check_start(Service *svc, NodeId node, OperationKind kind, Err *err)
{
    if (!service_check_ready(svc, err))
        return false;
    const Node *n = node_set_get(&svc->nodes, node);
    if (n == NULL) {
        err_set(err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)node);
        return false;
    }
    NodeOpRun *r = svc->node_ops->run;
    if (n->scheduling == run_policy(kind) || (r != NULL && r->node == node && r->kind == kind)) {
        err_set(err, ERR_CONFLICT, "node %llu is already %s", (unsigned long long)node,
                kind == OPERATION_NODE_DRAIN  ? "draining"
                : kind == OPERATION_NODE_FILL ? "filling"
                                              : "being deleted");
        return false;
    }
    if (r != NULL) {
        err_set(err, ERR_PRECONDITION_FAILED,
                "another node operation is running (%s of node %llu): one at a time",
                kind_word(r->kind), (unsigned long long)r->node);
        return false;
    }
    if (!fsm_allowed(&NODE_SCHEDULING_FSM, (int)n->scheduling, (int)run_policy(kind))) {
        err_set(err, ERR_PRECONDITION_FAILED, "node %llu is %s: cannot %s it",
                (unsigned long long)node, node_scheduling_policy_name(n->scheduling),
                kind_word(kind));
        return false;
    }
    if (kind != OPERATION_NODE_DELETE && n->availability != NODE_AVAILABILITY_ACTIVE) {
        err_set(err, ERR_PRECONDITION_FAILED, "node %llu is %s: only an available node can be %s",
                (unsigned long long)node, node_availability_name(n->availability),
                kind == OPERATION_NODE_DRAIN ? "drained" : "filled");
        return false;
    }
    if (kind != OPERATION_NODE_FILL && n->shard_count > 0 && !other_schedulable(svc, node)) {
        err_set(err, ERR_PRECONDITION_FAILED,
                "no other schedulable node to move node %llu's shards to",
                (unsigned long long)node);
        return false;
    }
    return true;
}

void service_node_op_start(Service *svc, NodeId node, OperationKind kind, ServiceJsonFn cb,
                           void *arg)
{
    Err err;
    err_clear(&err);
    if (!check_start(svc, node, kind, &err)) {
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    log_info("%s of node %llu requested", kind_word(kind), (unsigned long long)node);
    (void)run_start(svc, node, kind, cb, arg);
}

void service_node_op_cancel(Service *svc, NodeId node, OperationKind kind, ServiceJsonFn cb,
                            void *arg)
{
    Err err;
    err_clear(&err);
    if (!service_check_ready(svc, &err)) {
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    if (node_set_get(&svc->nodes, node) == NULL) {
        err_set(&err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)node);
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    NodeOpRun *r = svc->node_ops->run;
    const char *why = NULL;
    if (r == NULL || r->node != node || r->kind != kind)
        why = "";
    else if (r->phase == PHASE_TOMBSTONE)
        why = " (the tombstone is being written)";
    else if (r->cancel_reply != NULL)
        why = " (a cancel is already waiting for it to stop)";
    else if (r->finishing)
        why = " (it has finished and is storing the node's final policy)";
    if (why != NULL) {
        err_set(&err, ERR_PRECONDITION_FAILED, "no %s of node %llu to cancel%s", kind_word(kind),
                (unsigned long long)node, why);
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    log_info("%s of node %llu: cancel requested", kind_word(kind), (unsigned long long)node);
    r->cancel = true;
    r->cancel_reply = cb;
    r->cancel_arg = arg;
}

bool service_node_op_busy(const Service *svc, NodeId *node)
{
    const NodeOpRun *r = svc->node_ops != NULL ? svc->node_ops->run : NULL;
    if (r != NULL && node != NULL)
        *node = r->node;
    return r != NULL;
}

json_t *service_node_op_json(const Service *svc, NodeId node)
{
    const NodeOpRun *r = svc->node_ops != NULL ? svc->node_ops->run : NULL;
    if (r == NULL || r->node != node)
        return json_null();
    return json_must(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "kind", kind_word(r->kind),
                               "step", operation_step(r->op), "done", (json_int_t)r->done, "total",
                               (json_int_t)r->total, "in_flight", (json_int_t)r->n_moves, "failed",
                               (json_int_t)r->failed, "cancelling", r->cancel));
}

static void on_resume_stored(const Err *err, void *arg)
{
    (void)arg;
    if (err != NULL)
        log_err(err, "storing a Filling node's policy (Active) after a restart");
}

void service_node_ops_resume(Service *svc)
{
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        Node *n = node_set_at(&svc->nodes, i);
        switch (n->scheduling) {
        case NODE_SCHEDULING_DRAINING:
        case NODE_SCHEDULING_DELETING:
            if (svc->node_ops->run != NULL) {
                log_warn("node %llu is %s but another node operation runs: set it back to "
                         "Active",
                         (unsigned long long)n->id, node_scheduling_policy_name(n->scheduling));
                break;
            }
            log_info("node %llu is %s: resuming its operation", (unsigned long long)n->id,
                     node_scheduling_policy_name(n->scheduling));
            (void)run_start(svc, n->id,
                            n->scheduling == NODE_SCHEDULING_DRAINING ? OPERATION_NODE_DRAIN
                                                                      : OPERATION_NODE_DELETE,
                            NULL, NULL);
            break;
        case NODE_SCHEDULING_FILLING: {
            log_info("node %llu was Filling at the restart: Active (start the fill again to "
                     "go on)",
                     (unsigned long long)n->id);
            (void)node_set_scheduling(n, NODE_SCHEDULING_ACTIVE);
            Err err;
            err_clear(&err);
            if (!db_nodes_set_scheduling_policy(svc->opts.db, n->id,
                                                node_scheduling_policy_name(n->scheduling),
                                                on_resume_stored, NULL, &err))
                log_err(&err, "storing a node's policy");
            break;
        }
        default:
            break;
        }
    }
}

void service_node_ops_stop(Service *svc)
{
    NodeOpRun *r = svc->node_ops != NULL ? svc->node_ops->run : NULL;
    if (r != NULL && r->tick != NULL)
        event_del(r->tick);
}

void service_node_ops_free(Service *svc)
{
    if (svc->node_ops == NULL)
        return;
    service_optimize_free(svc);
    free(svc->node_ops); /* the run itself is the operation's data: operations_free frees it */
    svc->node_ops = NULL;
}

/* ---- tombstones ---- */

typedef struct TombstoneCall {
    ServiceJsonFn cb;
    void *arg;
} TombstoneCall;

static void on_tombstones(const Err *err, const DbNode *rows, size_t n, void *arg)
{
    TombstoneCall *c = arg;
    if (err != NULL) {
        c->cb(err, NULL, c->arg);
        free(c);
        return;
    }
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        Node node;
        Err e;
        err_clear(&e);
        node_init(&node, rows[i].node_id);
        if (!node_set_registration(&node, rows[i].listen_http_addr, rows[i].listen_http_port,
                                   rows[i].listen_pg_addr, rows[i].listen_pg_port,
                                   rows[i].listen_https_port, rows[i].availability_zone_id, &e))
            log_err(&e, "a tombstone row");
        if (!node_scheduling_policy_parse(rows[i].scheduling_policy, &node.scheduling, &e))
            log_err(&e, "a tombstone row");
        node.lifecycle = NODE_LIFECYCLE_DELETED;
        json_array_append_new(out, node_to_json(&node));
    }
    c->cb(NULL, out, c->arg);
    free(c);
}

void service_tombstone_list(Service *svc, ServiceJsonFn cb, void *arg)
{
    if (!service_enter_loaded(svc, cb, arg))
        return;
    TombstoneCall *c = xcalloc(1, sizeof(*c));
    c->cb = cb;
    c->arg = arg;
    db_nodes_list_tombstones(svc->opts.db, on_tombstones, c);
}

static void on_tombstone_deleted(const Err *err, void *arg)
{
    TombstoneCall *c = arg;
    if (err != NULL)
        c->cb(err, NULL, c->arg);
    else
        c->cb(NULL, json_null(), c->arg);
    free(c);
}

void service_tombstone_delete(Service *svc, NodeId node, ServiceJsonFn cb, void *arg)
{
    if (!service_enter_loaded(svc, cb, arg))
        return;
    if (node_set_get(&svc->nodes, node) != NULL) {
        Err err;
        err_clear(&err);
        err_set(&err, ERR_NOT_FOUND, "node %llu is not a tombstone (it is registered)",
                (unsigned long long)node);
        service_defer_err(svc, cb, arg, &err);
        return;
    }
    TombstoneCall *c = xcalloc(1, sizeof(*c));
    c->cb = cb;
    c->arg = arg;
    db_nodes_delete_tombstone(svc->opts.db, node, on_tombstone_deleted, c);
}
