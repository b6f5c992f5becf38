/*
 * service_optimize.c: the optimiser (spec storcon.md "Scheduling": later spreading by the
 * optimiser). One pass runs after every background reconcile pass (--background-interval) and
 * proposes small intent changes that make placement better without ever hurting a reader:
 *
 *   - preferred AZ: a shard attached outside its tenant's preferred AZ moves back to a secondary
 *     in that AZ;
 *   - spreading: a shard whose node holds at least two more of its tenant's attached shards than
 *     the node of one of its secondaries moves there;
 *   - when no secondary is such a better place but another node would be, the secondary moves
 *     there first (the cut-over follows in a later pass, once the pageserver holds it warm);
 *   - extra secondaries (more than the placement policy wants, e.g. the origin a migration left
 *     behind) are trimmed by the scheduler's own rule (scheduler_schedule_shard), which the
 *     background pass runs just before.
 *
 * A move is only ever a cut-over to a secondary the pageserver reports as a warm Secondary (a
 * reader never lands on a cold location), and it is an intent change like a drain's
 * (service_cutover): the reconciler executes it. At most OPTIMIZE_MAX_IN_FLIGHT moves are
 * unsettled at a time; nothing is optimised while a drain, fill or delete runs (they own
 * placement then) or for shards that are not Active (Essential, Pause, Stop), splitting,
 * reconciling or dirty. The spreading rule is strict (two more) and fills refuse moves that
 * would crowd a tenant, so the optimiser never undoes a fill and never moves a shard back and
 * forth.
 */
#include "storcon/service_internal.h"

#define OPTIMIZE_MAX_IN_FLIGHT 8

struct Optimizer {
    TenantShardId moving[OPTIMIZE_MAX_IN_FLIGHT];
    size_t n_moving;
    MetricCounter *m_started;
};

void service_optimize_free(Service *svc)
{
    free(svc->optimizer);
    svc->optimizer = NULL;
}

static struct Optimizer *optimizer(Service *svc)
{
    if (svc->optimizer == NULL) {
        svc->optimizer = xcalloc(1, sizeof(*svc->optimizer));
        if (svc->opts.metrics != NULL)
            svc->optimizer->m_started =
                metrics_counter(svc->opts.metrics, "storcon_optimizations_total",
                                "Shard moves started by the optimiser", NULL);
    }
    return svc->optimizer;
}

/* warm_secondary: node holds the shard as a Secondary (observed, known) and may receive it. */
static bool warm_secondary(Service *svc, const TenantShard *s, NodeId node)
{
    const Node *n = node_set_get(&svc->nodes, node);
    ObservedState o;
    return n != NULL && node_is_schedulable(n) && tenant_shard_observed_get(s, node, &o) &&
           o.known && o.mode == SHARD_LOCATION_SECONDARY && o.secondary_warm;
}

/* better_location: a secondary of s to cut over to, or NODE_ID_NONE. */
static NodeId better_location(Service *svc, const TenantShard *s)
{
    const Node *att = node_set_get(&svc->nodes, s->intent.attached);
    if (att == NULL)
        return NODE_ID_NONE;
    const char *pref = tenant_shard_preferred_az(s);
    bool att_home = pref[0] == '\0' || strcmp(pref, att->az) == 0;
    uint32_t here = service_tenant_attached_on(s->tenant, att->id);
    for (unsigned i = 0; i < s->intent.n_secondaries; i++) {
        NodeId cand = s->intent.secondaries[i];
        if (!warm_secondary(svc, s, cand))
            continue;
        const Node *n = node_set_get(&svc->nodes, cand);
        bool cand_home = pref[0] == '\0' || strcmp(pref, n->az) == 0;
        if (!att_home && cand_home)
            return cand; /* back to the preferred AZ */
        if (att_home && !cand_home)
            continue; /* never away from it */
        if (service_tenant_attached_on(s->tenant, cand) + 2 <= here)
            return cand; /* spread the tenant */
    }
    return NODE_ID_NONE;
}

/* secondary_move: when no secondary of s is a better attached location, a schedulable node that
 * would be one (inside the preferred AZ when the attached node is not; else holding at least two
 * fewer of the tenant's attached shards) gets the secondary of the node least worth keeping;
 * the cut-over follows in a later pass, once it is warm. False when there is nothing to do. */
static bool secondary_move(Service *svc, const TenantShard *s, NodeId *from, NodeId *to)
{
    const Node *att = node_set_get(&svc->nodes, s->intent.attached);
    if (att == NULL || s->intent.n_secondaries == 0)
        return false;
    const char *pref = tenant_shard_preferred_az(s);
    bool att_home = pref[0] == '\0' || strcmp(pref, att->az) == 0;
    uint32_t here = service_tenant_attached_on(s->tenant, att->id);
    NodeId best = NODE_ID_NONE;
    uint32_t best_count = 0;
    for (size_t i = 0; i < node_set_count(&svc->nodes); i++) {
        const Node *n = node_set_at(&svc->nodes, i);
        if (!node_is_schedulable(n) || tenant_shard_intent_role(s, n->id) != INTENT_ROLE_NONE)
            continue;
        bool home = pref[0] == '\0' || strcmp(pref, n->az) == 0;
        uint32_t count = service_tenant_attached_on(s->tenant, n->id);
        bool better = (!att_home && home) || (home == att_home && count + 2 <= here);
        if (better && (best == NODE_ID_NONE || count < best_count)) {
            best = n->id;
            best_count = count;
        }
    }
    if (best == NODE_ID_NONE)
        return false;
    /* give up the secondary whose node has the most of the tenant's attached shards */
    NodeId worst = s->intent.secondaries[0];
    uint32_t worst_count = service_tenant_attached_on(s->tenant, worst);
    for (unsigned i = 1; i < s->intent.n_secondaries; i++) {
        uint32_t c = service_tenant_attached_on(s->tenant, s->intent.secondaries[i]);
        if (c > worst_count) {
            worst = s->intent.secondaries[i];
            worst_count = c;
        }
    }
    *from = worst;
    *to = best;
    return true;
}

static bool in_flight(const struct Optimizer *o, const TenantShardId *tsid)
{
    for (size_t i = 0; i < o->n_moving; i++) {
        if (tsid_eq(&o->moving[i], tsid))
            return true;
    }
    return false;
}

size_t service_optimize_pass(Service *svc)
{
    if (!svc->ready || svc->stopping || service_node_op_busy(svc, NULL))
        return 0;
    struct Optimizer *o = optimizer(svc);
    /* forget the moves that converged (or whose shard is gone) */
    for (size_t i = 0; i < o->n_moving;) {
        const TenantShard *s = shard_map_get(svc->map, &o->moving[i]);
        if (s == NULL ||
            (!tenant_shard_is_reconciling(s) && !tenant_shard_is_dirty(s, &svc->nodes)))
            o->moving[i] = o->moving[--o->n_moving];
        else
            i++;
    }
    size_t started = 0;
    TenantIter it;
    shard_map_tenant_iter_init(&it, svc->map);
    Tenant *t;
    while ((t = shard_map_tenant_iter_next(&it)) != NULL && o->n_moving < OPTIMIZE_MAX_IN_FLIGHT) {
        for (size_t i = 0; i < t->n_shards && o->n_moving < OPTIMIZE_MAX_IN_FLIGHT; i++) {
            TenantShard *s = t->shards[i];
            if (!tenant_shard_may_optimize(s) || tenant_shard_is_splitting(s) ||
                tenant_shard_is_reconciling(s) || s->intent.attached == NODE_ID_NONE ||
                in_flight(o, &s->tsid) || tenant_shard_is_dirty(s, &svc->nodes))
                continue;
            Err err;
            err_clear(&err);
            char id[TSID_STR_SIZE];
            tsid_format(&s->tsid, id);
            NodeId target = better_location(svc, s);
            NodeId from = s->intent.attached;
            if (target != NODE_ID_NONE) {
                if (!service_cutover(svc, s, target, true, &err)) {
                    log_err(&err, "optimiser: a cut-over");
                    continue;
                }
                log_info("optimiser: %s from node %llu to its warm secondary on node %llu", id,
                         (unsigned long long)from, (unsigned long long)target);
            } else if (secondary_move(svc, s, &from, &target)) {
                (void)scheduler_intent_remove_node(&svc->sched, s, from);
                if (!scheduler_intent_add_secondary(&svc->sched, s, target, &err)) {
                    log_err(&err, "optimiser: a secondary move");
                    if (!scheduler_intent_add_secondary(&svc->sched, s, from, &err))
                        log_err(&err, "optimiser: restoring a secondary");
                    continue;
                }
                (void)reconciler_spawn(svc->rec, s);
                log_info("optimiser: %s secondary from node %llu to node %llu (a cut-over "
                         "there may follow once it is warm)",
                         id, (unsigned long long)from, (unsigned long long)target);
            } else {
                continue;
            }
            o->moving[o->n_moving++] = s->tsid;
            if (o->m_started != NULL)
                metric_counter_add(o->m_started, 1);
            started++;
        }
    }
    return started;
}
