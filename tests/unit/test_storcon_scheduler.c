/* test_storcon_scheduler.c: unit tests for storcon/scheduler.c and storcon/node.c: placement
 * scoring (spread, AZ, affinity, tie-breaks), excluded nodes, failover with promotion, policy
 * changes, scheduling-policy contract, and node counters under random intent changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/node.h"
#include "storcon/scheduler.h"
#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef struct Fx {
    NodeSet nodes;
    ShardMap *map;
    Scheduler sched;
} Fx;

static int fx_setup(void **state)
{
    Fx *fx = calloc(1, sizeof(*fx));
    node_set_init(&fx->nodes);
    fx->map = shard_map_new();
    scheduler_init(&fx->sched, &fx->nodes);
    *state = fx;
    return 0;
}

/* fx_teardown: every test must leave the counters consistent. */
static int fx_teardown(void **state)
{
    Fx *fx = *state;
    Err err;
    err_clear(&err);
    int rc = 0;
    if (!scheduler_check_consistency(&fx->sched, fx->map, &err)) {
        fprintf(stderr, "teardown: %s\n", err.msg);
        rc = -1;
    }
    shard_map_free(fx->map);
    node_set_finish(&fx->nodes);
    free(fx);
    return rc;
}

static Node *fx_node(Fx *fx, NodeId id, const char *az)
{
    Node n;
    node_init(&n, id);
    Err err;
    err_clear(&err);
    if (!node_set_registration(&n, "127.0.0.1", (uint16_t)(9000 + id), "127.0.0.1",
                               (uint16_t)(6000 + id), 0, az, &err))
        fail_msg("registration: %s", err.msg);
    (void)node_record_heartbeat(&n, 0, 0, 1000);
    Node *out = NULL;
    if (!node_set_add(&fx->nodes, &n, &out, &err))
        fail_msg("node_set_add: %s", err.msg);
    return out;
}

static TenantId make_tid(uint32_t n)
{
    TenantId id;
    memset(&id, 0, sizeof(id));
    id.b[0] = (uint8_t)(n >> 24);
    id.b[1] = (uint8_t)(n >> 16);
    id.b[2] = (uint8_t)(n >> 8);
    id.b[3] = (uint8_t)n;
    return id;
}

/* fx_tenant: a tenant with `shards` shards (count = shards) and policy. */
static Tenant *fx_tenant(Fx *fx, uint32_t n, PlacementPolicy policy, unsigned shards)
{
    TenantId id = make_tid(n);
    Tenant *t = NULL;
    Err err;
    err_clear(&err);
    if (!shard_map_tenant_add(fx->map, &id, 2048, policy, NULL, &t, &err))
        fail_msg("tenant_add: %s", err.msg);
    for (unsigned k = 0; k < shards; k++) {
        if (!shard_map_shard_add(fx->map, t, (ShardNumber)k, (ShardCount)shards, NULL, &err))
            fail_msg("shard_add: %s", err.msg);
    }
    return t;
}

static void schedule_tenant_ok(Fx *fx, Tenant *t)
{
    Err err;
    err_clear(&err);
    if (!scheduler_schedule_tenant(&fx->sched, t, NULL, &err))
        fail_msg("schedule_tenant: %s", err.msg);
}

static void assert_consistent(Fx *fx)
{
    Err err;
    err_clear(&err);
    if (!scheduler_check_consistency(&fx->sched, fx->map, &err))
        fail_msg("%s", err.msg);
}

/* assert_intent_matches_policy: one attached + n secondaries etc., on distinct nodes. */
static void assert_intent_matches_policy(const TenantShard *s)
{
    PlacementPolicy p = tenant_shard_policy(s);
    assert_int_equal(s->intent.attached != NODE_ID_NONE, placement_policy_wants_attached(p));
    assert_int_equal(s->intent.n_secondaries, placement_policy_wanted_secondaries(p));
    for (unsigned i = 0; i < s->intent.n_secondaries; i++) {
        assert_true(s->intent.secondaries[i] != s->intent.attached);
        for (unsigned j = 0; j < i; j++)
            assert_true(s->intent.secondaries[i] != s->intent.secondaries[j]);
    }
}

/* ---- spread ---- */

typedef struct SpreadCase {
    unsigned nodes;
    unsigned shards;
    uint8_t secondaries;
    unsigned max_attached; /* per node */
    unsigned max_locations;
} SpreadCase;

static const SpreadCase SPREAD_CASES[] = {
    {3, 8, 0, 3, 3}, /* the test: 8 shards on 3 pageservers */
    {3, 8, 1, 3, 6}, {4, 16, 1, 4, 8}, {5, 4, 0, 1, 1},
    {2, 7, 1, 4, 7}, {8, 8, 2, 1, 3},  {3, 1, 2, 1, 1},
};

static void test_spread_one_tenant(void **state)
{
    for (size_t c = 0; c < COUNT_OF(SPREAD_CASES); c++) {
        const SpreadCase *sc = &SPREAD_CASES[c];
        Fx *fx;
        fx_setup((void **)&fx);
        for (unsigned i = 1; i <= sc->nodes; i++)
            fx_node(fx, i, "az-1");
        Tenant *t =
            fx_tenant(fx, 1, (PlacementPolicy){PLACEMENT_ATTACHED, sc->secondaries}, sc->shards);
        schedule_tenant_ok(fx, t);
        unsigned attached = 0;
        for (unsigned i = 0; i < sc->nodes; i++) {
            const Node *n = node_set_at(&fx->nodes, i);
            if (n->attached_count > sc->max_attached || n->shard_count > sc->max_locations)
                fail_msg("case %zu: node %llu holds %u attached / %u locations", c,
                         (unsigned long long)n->id, n->attached_count, n->shard_count);
            attached += n->attached_count;
        }
        assert_int_equal(attached, sc->shards);
        for (size_t k = 0; k < t->n_shards; k++)
            assert_intent_matches_policy(t->shards[k]);
        assert_consistent(fx);
        assert_int_equal(fx_teardown((void **)&fx), 0);
    }
}

static void test_spread_across_tenants(void **state)
{
    Fx *fx = *state;
    for (NodeId i = 1; i <= 3; i++)
        fx_node(fx, i, "az-1");
    for (uint32_t k = 0; k < 30; k++)
        schedule_tenant_ok(fx, fx_tenant(fx, k, (PlacementPolicy){PLACEMENT_ATTACHED, 1}, 1));
    for (size_t i = 0; i < 3; i++) {
        const Node *n = node_set_at(&fx->nodes, i);
        assert_int_equal(n->attached_count, 10);
        assert_int_equal(n->shard_count, 20);
    }
}

/* Affinity spreads a tenant even when other tenants loaded the nodes unevenly: attached counts
 * alone would put all of its shards on the emptiest node. */
static void test_affinity_beats_load(void **state)
{
    Fx *fx = *state;
    for (NodeId i = 1; i <= 3; i++)
        fx_node(fx, i, "az");
    Tenant *other = fx_tenant(fx, 1, PLACEMENT_POLICY_DEFAULT, 6);
    Err err;
    err_clear(&err);
    for (size_t k = 0; k < 6; k++)
        assert_true(scheduler_intent_set_attached(&fx->sched, other->shards[k], 2 + k % 2, &err));
    Tenant *t = fx_tenant(fx, 2, PLACEMENT_POLICY_DEFAULT, 4);
    schedule_tenant_ok(fx, t);
    unsigned per_node[4] = {0};
    for (size_t k = 0; k < t->n_shards; k++)
        per_node[t->shards[k]->intent.attached]++;
    assert_int_equal(per_node[1], 2);
    assert_int_equal(per_node[2], 1);
    assert_int_equal(per_node[3], 1);
}

/* ---- AZ ---- */

typedef struct AzCase {
    const char *preferred;
    NodeId allowed_a, allowed_b; /* the attached node must be one of these (0: any) */
} AzCase;

static void test_az_preference(void **state)
{
    static const AzCase cases[] = {{"az-b", 3, 4}, {"az-a", 1, 2}, {"az-c", 0, 0}, {"", 0, 0}};
    for (size_t c = 0; c < COUNT_OF(cases); c++) {
        Fx *fx;
        fx_setup((void **)&fx);
        fx_node(fx, 1, "az-a");
        fx_node(fx, 2, "az-a");
        fx_node(fx, 3, "az-b");
        fx_node(fx, 4, "az-b");
        Tenant *t = fx_tenant(fx, 1, PLACEMENT_POLICY_DEFAULT, 4);
        Err err;
        err_clear(&err);
        assert_true(tenant_set_preferred_az(t, cases[c].preferred, &err));
        schedule_tenant_ok(fx, t);
        unsigned per_node[5] = {0};
        for (size_t k = 0; k < t->n_shards; k++) {
            NodeId a = t->shards[k]->intent.attached;
            assert_true(a >= 1 && a <= 4);
            per_node[a]++;
            if (cases[c].allowed_a != 0 && a != cases[c].allowed_a && a != cases[c].allowed_b)
                fail_msg("case %zu: shard %zu attached to node %llu", c, k, (unsigned long long)a);
        }
        /* within the allowed nodes the shards still spread */
        for (NodeId a = 1; a <= 4; a++) {
            unsigned want_max = cases[c].allowed_a != 0 ? 2 : 1;
            assert_true(per_node[a] <= want_max);
        }
        assert_int_equal(fx_teardown((void **)&fx), 0);
    }
}

static void test_secondaries_other_az(void **state)
{
    Fx *fx = *state;
    fx_node(fx, 1, "az-a");
    fx_node(fx, 2, "az-a");
    fx_node(fx, 3, "az-b");
    Tenant *t = fx_tenant(fx, 1, (PlacementPolicy){PLACEMENT_ATTACHED, 1}, 4);
    Err err;
    err_clear(&err);
    assert_true(tenant_set_preferred_az(t, "az-a", &err));
    schedule_tenant_ok(fx, t);
    for (size_t k = 0; k < t->n_shards; k++) {
        const TenantShard *s = t->shards[k];
        const Node *att = node_set_get(&fx->nodes, s->intent.attached);
        const Node *sec = node_set_get(&fx->nodes, s->intent.secondaries[0]);
        assert_string_equal(att->az, "az-a");
        /* the other AZ wins over affinity: every secondary goes to node 3 */
        assert_string_equal(sec->az, "az-b");
    }
    assert_int_equal(node_set_get(&fx->nodes, 3)->shard_count, 4);
    assert_int_equal(node_set_get(&fx->nodes, 3)->attached_count, 0);

    /* with a single AZ the secondary falls back to the same AZ */
    Fx *fx2;
    fx_setup((void **)&fx2);
    fx_node(fx2, 1, "az-a");
    fx_node(fx2, 2, "az-a");
    Tenant *t2 = fx_tenant(fx2, 1, (PlacementPolicy){PLACEMENT_ATTACHED, 1}, 1);
    schedule_tenant_ok(fx2, t2);
    assert_int_equal(t2->shards[0]->intent.attached, 1);
    assert_int_equal(t2->shards[0]->intent.secondaries[0], 2);
    assert_int_equal(fx_teardown((void **)&fx2), 0);
}

/* ---- excluded nodes ---- */

typedef struct ExcludeCase {
    const char *name;
    NodeAvailability availability;
    NodeSchedulingPolicy policy;
    NodeLifecycle lifecycle;
    bool schedulable;
} ExcludeCase;

static const ExcludeCase EXCLUDE_CASES[] = {
    {"active", NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_ACTIVE, NODE_LIFECYCLE_ACTIVE, true},
    {"filling", NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_FILLING, NODE_LIFECYCLE_ACTIVE, true},
    {"pause", NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_PAUSE, NODE_LIFECYCLE_ACTIVE, false},
    {"pause for restart", NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_PAUSE_FOR_RESTART,
     NODE_LIFECYCLE_ACTIVE, false},
    {"draining", NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_DRAINING, NODE_LIFECYCLE_ACTIVE, false},
    {"deleting", NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_DELETING, NODE_LIFECYCLE_ACTIVE, false},
    {"warming up", NODE_AVAILABILITY_WARMING_UP, NODE_SCHEDULING_ACTIVE, NODE_LIFECYCLE_ACTIVE,
     false},
    {"offline", NODE_AVAILABILITY_OFFLINE, NODE_SCHEDULING_ACTIVE, NODE_LIFECYCLE_ACTIVE, false},
    {"deleted", NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_ACTIVE, NODE_LIFECYCLE_DELETED, false},
};

static void test_excluded_nodes(void **state)
{
    for (size_t c = 0; c < COUNT_OF(EXCLUDE_CASES); c++) {
        const ExcludeCase *ec = &EXCLUDE_CASES[c];
        Fx *fx;
        fx_setup((void **)&fx);
        Node *n1 = fx_node(fx, 1, "az");
        Node *n2 = fx_node(fx, 2, "az");
        n2->utilization_score = 1000; /* node 1 would win if it may be used */
        n1->availability = ec->availability;
        n1->scheduling = ec->policy;
        n1->lifecycle = ec->lifecycle;
        assert_int_equal(node_is_schedulable(n1), ec->schedulable);
        Tenant *t = fx_tenant(fx, 1, (PlacementPolicy){PLACEMENT_ATTACHED, 1}, 1);
        Err err;
        err_clear(&err);
        bool ok = scheduler_schedule_tenant(&fx->sched, t, NULL, &err);
        const TenantShard *s = t->shards[0];
        if (ec->schedulable) {
            assert_true(ok);
            assert_int_equal(s->intent.attached, 1);
            assert_int_equal(s->intent.secondaries[0], 2);
        } else {
            /* the attached location goes to node 2; nothing is left for the secondary */
            assert_false(ok);
            assert_int_equal(err.code, ERR_UNAVAILABLE);
            assert_int_equal(s->intent.attached, 2);
            assert_int_equal(s->intent.n_secondaries, 0);
        }
        assert_int_equal(fx_teardown((void **)&fx), 0);
    }
}

static void test_no_schedulable_nodes(void **state)
{
    Fx *fx = *state;
    Node *n = fx_node(fx, 1, "az");
    n->availability = NODE_AVAILABILITY_OFFLINE;
    Tenant *t = fx_tenant(fx, 1, PLACEMENT_POLICY_DEFAULT, 2);
    Err err;
    err_clear(&err);
    bool changed = true;
    assert_false(scheduler_schedule_shard(&fx->sched, t->shards[0], NULL, &changed, &err));
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_string_equal(err.msg, "no schedulable nodes");
    assert_false(changed);
    assert_true(tenant_shard_intent_is_empty(t->shards[0]));

    ScheduleStats stats = {0};
    err_clear(&err);
    assert_false(scheduler_schedule_all(&fx->sched, fx->map, &stats, &err));
    assert_int_equal(err.code, ERR_UNAVAILABLE);
    assert_int_equal(stats.scheduled, 2);
    assert_int_equal(stats.failed, 2);
    assert_int_equal(stats.changed, 0);

    /* the node comes back: everything schedules */
    (void)node_record_heartbeat(n, 0, 0, 2000);
    memset(&stats, 0, sizeof(stats));
    assert_true(scheduler_schedule_all(&fx->sched, fx->map, &stats, &err));
    assert_int_equal(stats.changed, 2);
    assert_int_equal(stats.failed, 0);
    assert_int_equal(n->attached_count, 2);
}

/* scheduler_reserve_new_tenant: a tenant not created yet spreads its shards like
 * scheduler_schedule_tenant would, the reservations steer the next create elsewhere until they are
 * released, and the picks stay where the real scheduling puts them once the intents are set. */
static void test_reserve_new_tenant(void **state)
{
    Fx *fx = *state;
    Node *n1 = fx_node(fx, 1, "az-a");
    Node *n2 = fx_node(fx, 2, "az-a");
    Node *n3 = fx_node(fx, 3, "az-b");
    NodeId four[4], one[1], again[1];
    assert_true(scheduler_reserve_new_tenant(&fx->sched, NULL, 4, four));
    /* spread: 2 on one node, one on each other, in node order */
    assert_int_equal(four[0], 1);
    assert_int_equal(four[1], 2);
    assert_int_equal(four[2], 3);
    assert_int_equal(four[3], 1);
    assert_int_equal(n1->attached_reserved, 2);
    assert_int_equal(n2->attached_reserved + n3->attached_reserved, 2);
    /* a concurrent create goes to the least loaded node, counting the reservations */
    assert_true(scheduler_reserve_new_tenant(&fx->sched, NULL, 1, one));
    assert_int_equal(one[0], 2);
    /* a preferred AZ wins over the load */
    assert_true(scheduler_reserve_new_tenant(&fx->sched, "az-b", 1, again));
    assert_int_equal(again[0], 3);
    scheduler_release_reserved(&fx->sched, again, 1);
    scheduler_release_reserved(&fx->sched, one, 1);
    scheduler_release_reserved(&fx->sched, four, 4);
    assert_int_equal(n1->attached_reserved + n2->attached_reserved + n3->attached_reserved, 0);
    /* releasing more than was reserved (or a node since removed) changes nothing */
    NodeId gone[2] = {1, 99};
    scheduler_release_reserved(&fx->sched, gone, 2);
    assert_int_equal(n1->attached_reserved, 0);

    /* the picked nodes set as intents are kept by the real scheduling (counted as attached, no
     * longer reserved) */
    Tenant *t = fx_tenant(fx, 1, PLACEMENT_POLICY_DEFAULT, 4);
    assert_true(scheduler_reserve_new_tenant(&fx->sched, NULL, 4, four));
    scheduler_release_reserved(&fx->sched, four, 4);
    Err err;
    err_clear(&err);
    for (size_t i = 0; i < 4; i++)
        assert_true(scheduler_intent_set_attached(&fx->sched, t->shards[i], four[i], &err));
    schedule_tenant_ok(fx, t);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(t->shards[i]->intent.attached, four[i]);
    assert_int_equal(n1->attached_count + n2->attached_count + n3->attached_count, 4);
    assert_consistent(fx);

    /* no schedulable node for every shard: false, nothing reserved */
    n1->availability = NODE_AVAILABILITY_OFFLINE;
    n2->availability = NODE_AVAILABILITY_OFFLINE;
    n3->availability = NODE_AVAILABILITY_OFFLINE;
    assert_false(scheduler_reserve_new_tenant(&fx->sched, NULL, 2, four));
    assert_int_equal(n1->attached_reserved + n2->attached_reserved + n3->attached_reserved, 0);
}

/* ---- failover ---- */

static void test_offline_node_promotes_secondary(void **state)
{
    Fx *fx = *state;
    for (NodeId i = 1; i <= 4; i++)
        fx_node(fx, i, "az");
    Tenant *ha = fx_tenant(fx, 1, (PlacementPolicy){PLACEMENT_ATTACHED, 1}, 4);
    Tenant *single = fx_tenant(fx, 2, PLACEMENT_POLICY_DEFAULT, 4);
    schedule_tenant_ok(fx, ha);
    schedule_tenant_ok(fx, single);

    const NodeId dead = ha->shards[0]->intent.attached;
    NodeId old_secondary[4];
    NodeId old_attached_single[4];
    for (size_t k = 0; k < 4; k++) {
        old_secondary[k] = ha->shards[k]->intent.secondaries[0];
        old_attached_single[k] = single->shards[k]->intent.attached;
    }
    Node *d = node_set_get(&fx->nodes, dead);
    d->availability = NODE_AVAILABILITY_OFFLINE;

    ScheduleStats stats = {0};
    Err err;
    err_clear(&err);
    assert_true(scheduler_schedule_all(&fx->sched, fx->map, &stats, &err));
    assert_true(stats.changed >= 1);
    for (size_t k = 0; k < 4; k++) {
        const TenantShard *s = ha->shards[k];
        assert_intent_matches_policy(s);
        assert_true(s->intent.attached != dead);
        if (old_secondary[k] == dead) {
            /* its secondary is kept on the Offline node */
            assert_int_equal(s->intent.secondaries[0], dead);
        }
    }
    /* shard 0 was attached on the dead node: its secondary was promoted */
    assert_int_equal(ha->shards[0]->intent.attached, old_secondary[0]);
    assert_true(ha->shards[0]->intent.secondaries[0] != dead);
    assert_true(
        node_is_schedulable(node_set_get(&fx->nodes, ha->shards[0]->intent.secondaries[0])));
    for (size_t k = 0; k < 4; k++) {
        const TenantShard *s = single->shards[k];
        assert_true(s->intent.attached != dead);
        if (old_attached_single[k] != dead)
            assert_int_equal(s->intent.attached, old_attached_single[k]); /* stability */
    }
    assert_int_equal(d->attached_count, 0);
    assert_consistent(fx);
}

static void test_stability(void **state)
{
    Fx *fx = *state;
    for (NodeId i = 1; i <= 3; i++)
        fx_node(fx, i, "az");
    Tenant *t = fx_tenant(fx, 1, (PlacementPolicy){PLACEMENT_ATTACHED, 1}, 6);
    schedule_tenant_ok(fx, t);
    ShardIntent before[6];
    for (size_t k = 0; k < 6; k++)
        before[k] = t->shards[k]->intent;

    /* a node that is paused, draining or warming up keeps what it has */
    static const struct {
        NodeAvailability a;
        NodeSchedulingPolicy p;
    } keep[] = {
        {NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_ACTIVE},
        {NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_PAUSE},
        {NODE_AVAILABILITY_ACTIVE, NODE_SCHEDULING_DRAINING},
        {NODE_AVAILABILITY_WARMING_UP, NODE_SCHEDULING_ACTIVE},
    };
    Node *n1 = node_set_get(&fx->nodes, 1);
    for (size_t c = 0; c < COUNT_OF(keep); c++) {
        n1->availability = keep[c].a;
        n1->scheduling = keep[c].p;
        ScheduleStats stats = {0};
        Err err;
        err_clear(&err);
        assert_true(scheduler_schedule_all(&fx->sched, fx->map, &stats, &err));
        assert_int_equal(stats.changed, 0);
        for (size_t k = 0; k < 6; k++)
            assert_memory_equal(&t->shards[k]->intent, &before[k], sizeof(ShardIntent));
    }
}

/* ---- scheduling policies ---- */

typedef struct PolicyCase {
    ShardSchedulingPolicy policy;
    bool moves;
} PolicyCase;

static void test_shard_scheduling_policies(void **state)
{
    static const PolicyCase cases[] = {
        {SHARD_SCHEDULING_ACTIVE, true},
        {SHARD_SCHEDULING_ESSENTIAL, true},
        {SHARD_SCHEDULING_PAUSE, false},
        {SHARD_SCHEDULING_STOP, false},
    };
    for (size_t c = 0; c < COUNT_OF(cases); c++) {
        Fx *fx;
        fx_setup((void **)&fx);
        fx_node(fx, 1, "az");
        fx_node(fx, 2, "az");
        Tenant *t = fx_tenant(fx, 1, PLACEMENT_POLICY_DEFAULT, 1);
        TenantShard *s = t->shards[0];
        Err err;
        err_clear(&err);
        assert_true(scheduler_intent_set_attached(&fx->sched, s, 1, &err));
        s->scheduling = (uint8_t)cases[c].policy;
        node_set_get(&fx->nodes, 1)->availability = NODE_AVAILABILITY_OFFLINE;
        uint64_t seq = s->sequence;
        bool changed = false;
        assert_true(scheduler_schedule_shard(&fx->sched, s, NULL, &changed, &err));
        assert_int_equal(changed, cases[c].moves);
        assert_int_equal(s->intent.attached, cases[c].moves ? 2 : 1);
        assert_int_equal(s->sequence > seq, cases[c].moves);

        /* a paused / stopped shard with no intent is not scheduled either */
        Tenant *t2 = fx_tenant(fx, 2, PLACEMENT_POLICY_DEFAULT, 1);
        t2->shards[0]->scheduling = (uint8_t)cases[c].policy;
        assert_true(scheduler_schedule_tenant(&fx->sched, t2, NULL, &err));
        assert_int_equal(t2->shards[0]->intent.attached != NODE_ID_NONE, cases[c].moves);
        assert_int_equal(fx_teardown((void **)&fx), 0);
    }
}

/* ---- placement policy changes ---- */

static void set_policy_and_schedule(Fx *fx, Tenant *t, PlacementPolicy p)
{
    t->policy = p;
    schedule_tenant_ok(fx, t);
    for (size_t k = 0; k < t->n_shards; k++)
        assert_intent_matches_policy(t->shards[k]);
    assert_consistent(fx);
}

static void test_policy_transitions(void **state)
{
    Fx *fx = *state;
    for (NodeId i = 1; i <= 4; i++)
        fx_node(fx, i, "az");
    Tenant *t = fx_tenant(fx, 1, (PlacementPolicy){PLACEMENT_ATTACHED, 2}, 2);
    schedule_tenant_ok(fx, t);
    TenantShard *s = t->shards[0];
    NodeId attached = s->intent.attached;
    NodeId sec0 = s->intent.secondaries[0];
    NodeId sec1 = s->intent.secondaries[1];

    /* Attached(2) -> Attached(1) with one secondary's node paused: that one is dropped */
    node_set_get(&fx->nodes, sec0)->scheduling = NODE_SCHEDULING_PAUSE;
    set_policy_and_schedule(fx, t, (PlacementPolicy){PLACEMENT_ATTACHED, 1});
    assert_int_equal(s->intent.attached, attached);
    assert_int_equal(s->intent.secondaries[0], sec1);
    node_set_get(&fx->nodes, sec0)->scheduling = NODE_SCHEDULING_ACTIVE;

    /* Attached(1) -> Secondary: keeps one secondary, the attached location goes */
    set_policy_and_schedule(fx, t, (PlacementPolicy){PLACEMENT_SECONDARY, 0});
    assert_int_equal(s->intent.attached, NODE_ID_NONE);
    assert_int_equal(s->intent.secondaries[0], sec1);

    /* Secondary -> Detached: nothing */
    set_policy_and_schedule(fx, t, (PlacementPolicy){PLACEMENT_DETACHED, 0});
    for (NodeId i = 1; i <= 4; i++)
        assert_int_equal(node_set_get(&fx->nodes, i)->shard_count, 0);

    /* Detached -> Attached(0) -> Secondary: the attached location becomes the secondary */
    set_policy_and_schedule(fx, t, PLACEMENT_POLICY_DEFAULT);
    NodeId a = s->intent.attached;
    set_policy_and_schedule(fx, t, (PlacementPolicy){PLACEMENT_SECONDARY, 0});
    assert_int_equal(s->intent.secondaries[0], a);

    /* Secondary -> Attached(1): the secondary is promoted, a new secondary added */
    set_policy_and_schedule(fx, t, (PlacementPolicy){PLACEMENT_ATTACHED, 1});
    assert_int_equal(s->intent.attached, a);
}

/* ---- explicit intent operations ---- */

static void test_explicit_intent_ops(void **state)
{
    Fx *fx = *state;
    for (NodeId i = 1; i <= 5; i++)
        fx_node(fx, i, "az");
    Tenant *t = fx_tenant(fx, 1, PLACEMENT_POLICY_DEFAULT, 1);
    TenantShard *s = t->shards[0];
    Err err;
    err_clear(&err);

    assert_false(scheduler_intent_set_attached(&fx->sched, s, 42, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);
    err_clear(&err);
    assert_false(scheduler_intent_add_secondary(&fx->sched, s, 42, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);

    uint64_t seq = s->sequence;
    assert_true(scheduler_intent_set_attached(&fx->sched, s, 1, &err));
    assert_true(s->sequence > seq);
    seq = s->sequence;
    assert_true(scheduler_intent_set_attached(&fx->sched, s, 1, &err)); /* no-op */
    assert_int_equal(s->sequence, seq);

    err_clear(&err);
    assert_false(scheduler_intent_add_secondary(&fx->sched, s, 1, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    for (NodeId i = 2; i <= 4; i++)
        assert_true(scheduler_intent_add_secondary(&fx->sched, s, i, &err));
    err_clear(&err);
    assert_false(scheduler_intent_add_secondary(&fx->sched, s, 5, &err)); /* full */
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_false(scheduler_intent_demote_attached(&fx->sched, s)); /* no room */

    /* attaching to a secondary's node promotes it */
    assert_true(scheduler_intent_set_attached(&fx->sched, s, 3, &err));
    assert_int_equal(s->intent.attached, 3);
    assert_int_equal(s->intent.n_secondaries, 2);
    assert_int_equal(tenant_shard_intent_role(s, 1), INTENT_ROLE_NONE);
    assert_int_equal(tenant_shard_intent_role(s, 2), INTENT_ROLE_SECONDARY);
    assert_int_equal(tenant_shard_intent_role(s, 3), INTENT_ROLE_ATTACHED);
    assert_int_equal(node_set_get(&fx->nodes, 3)->attached_count, 1);
    assert_int_equal(node_set_get(&fx->nodes, 3)->shard_count, 1);
    assert_int_equal(node_set_get(&fx->nodes, 1)->shard_count, 0);
    assert_consistent(fx);

    /* a node holding intents cannot be removed */
    err_clear(&err);
    assert_false(node_set_remove(&fx->nodes, 3, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_true(node_set_remove(&fx->nodes, 5, &err));
    err_clear(&err);
    assert_false(node_set_remove(&fx->nodes, 5, &err));
    assert_int_equal(err.code, ERR_NOT_FOUND);

    /* demote (a migration's origin) */
    assert_true(scheduler_intent_demote_attached(&fx->sched, s));
    assert_int_equal(s->intent.attached, NODE_ID_NONE);
    assert_int_equal(tenant_shard_intent_role(s, 3), INTENT_ROLE_SECONDARY);
    assert_int_equal(node_set_get(&fx->nodes, 3)->attached_count, 0);
    assert_int_equal(node_set_get(&fx->nodes, 3)->shard_count, 1);

    assert_true(scheduler_intent_remove_node(&fx->sched, s, 2));
    assert_false(scheduler_intent_remove_node(&fx->sched, s, 2));
    assert_true(scheduler_intent_set_attached(&fx->sched, s, 4, &err)); /* promote 4 */
    assert_true(scheduler_intent_set_attached(&fx->sched, s, NODE_ID_NONE, &err));
    assert_int_equal(s->intent.attached, NODE_ID_NONE);
    assert_consistent(fx);
    scheduler_intent_clear(&fx->sched, s);
    assert_true(tenant_shard_intent_is_empty(s));
    for (NodeId i = 1; i <= 4; i++)
        assert_int_equal(node_set_get(&fx->nodes, i)->shard_count, 0);
}

/* test_drain_picks: what a drain asks the scheduler (without changing anything): the best
 * promotable secondary on a schedulable node, else the best new node; a Draining node is
 * neither. */
static void test_drain_picks(void **state)
{
    Fx *fx = *state;
    for (NodeId i = 1; i <= 3; i++)
        fx_node(fx, i, "az");
    Tenant *t = fx_tenant(fx, 1, PLACEMENT_POLICY_DEFAULT, 1);
    TenantShard *s = t->shards[0];
    Err err;
    err_clear(&err);
    assert_true(scheduler_intent_set_attached(&fx->sched, s, 1, &err));
    assert_int_equal(scheduler_pick_promotable_secondary(&fx->sched, s, NULL), NODE_ID_NONE);
    NodeId fresh = scheduler_pick_attached(&fx->sched, s, NULL);
    assert_true(fresh == 2 || fresh == 3);
    assert_true(scheduler_intent_add_secondary(&fx->sched, s, 3, &err));
    uint64_t seq = s->sequence;
    assert_int_equal(scheduler_pick_promotable_secondary(&fx->sched, s, NULL), 3);
    assert_int_equal(scheduler_pick_attached(&fx->sched, s, NULL), 2); /* unused nodes only */
    assert_int_equal(s->sequence, seq);                                /* nothing changed */
    Node *n3 = node_set_get(&fx->nodes, 3);
    assert_true(node_set_scheduling(n3, NODE_SCHEDULING_DRAINING));
    assert_int_equal(scheduler_pick_promotable_secondary(&fx->sched, s, NULL), NODE_ID_NONE);
    Node *n2 = node_set_get(&fx->nodes, 2);
    assert_true(node_set_scheduling(n2, NODE_SCHEDULING_PAUSE));
    assert_int_equal(scheduler_pick_attached(&fx->sched, s, NULL), NODE_ID_NONE);
    assert_consistent(fx);
}

/* test_node_scheduling_fsm: the policy changes the table allows and refuses. */
static void test_node_scheduling_fsm(void **state)
{
    (void)state;
    static const struct {
        NodeSchedulingPolicy from, to;
        bool ok;
    } cases[] = {
        {NODE_SCHEDULING_ACTIVE, NODE_SCHEDULING_DRAINING, true},
        {NODE_SCHEDULING_DRAINING, NODE_SCHEDULING_PAUSE_FOR_RESTART, true},
        {NODE_SCHEDULING_DRAINING, NODE_SCHEDULING_ACTIVE, true},
        {NODE_SCHEDULING_PAUSE_FOR_RESTART, NODE_SCHEDULING_FILLING, true},
        {NODE_SCHEDULING_FILLING, NODE_SCHEDULING_ACTIVE, true},
        {NODE_SCHEDULING_PAUSE, NODE_SCHEDULING_DELETING, true},
        {NODE_SCHEDULING_DELETING, NODE_SCHEDULING_ACTIVE, true},
        {NODE_SCHEDULING_ACTIVE, NODE_SCHEDULING_ACTIVE, true}, /* no-op */
        {NODE_SCHEDULING_PAUSE, NODE_SCHEDULING_DRAINING, false},
        {NODE_SCHEDULING_DRAINING, NODE_SCHEDULING_FILLING, false},
        {NODE_SCHEDULING_FILLING, NODE_SCHEDULING_PAUSE_FOR_RESTART, false},
        {NODE_SCHEDULING_DRAINING, NODE_SCHEDULING_DELETING, false},
        {NODE_SCHEDULING_FILLING, NODE_SCHEDULING_DELETING, false},
        {NODE_SCHEDULING_DELETING, NODE_SCHEDULING_PAUSE, false},
    };
    for (size_t i = 0; i < COUNT_OF(cases); i++) {
        Node n;
        node_init(&n, 7);
        n.scheduling = cases[i].from;
        bool ok = node_set_scheduling(&n, cases[i].to);
        if (ok != cases[i].ok)
            fail_msg("case %zu: %s -> %s: %d", i, node_scheduling_policy_name(cases[i].from),
                     node_scheduling_policy_name(cases[i].to), ok);
        assert_int_equal(n.scheduling, ok ? cases[i].to : cases[i].from);
    }
}

/* ---- tie-breaks and context ---- */

static void test_score_order(void **state)
{
    Fx *fx = *state;
    Node *n1 = fx_node(fx, 1, "az");
    Node *n2 = fx_node(fx, 2, "az");
    Node *n3 = fx_node(fx, 3, "az");
    Tenant *t = fx_tenant(fx, 1, PLACEMENT_POLICY_DEFAULT, 1);
    TenantShard *s = t->shards[0];
    Err err;
    err_clear(&err);

    /* utilization before attached count: node 2 has more attached but is emptier */
    n1->utilization_score = 50;
    n2->utilization_score = 10;
    n3->utilization_score = 50;
    n2->attached_count = 5; /* pretend (restored before teardown) */
    n2->shard_count = 5;
    assert_true(scheduler_schedule_shard(&fx->sched, s, NULL, NULL, &err));
    assert_int_equal(s->intent.attached, 2);
    scheduler_intent_clear(&fx->sched, s);

    /* equal utilization: attached count decides, then node id */
    n2->utilization_score = 50;
    assert_true(scheduler_schedule_shard(&fx->sched, s, NULL, NULL, &err));
    assert_int_equal(s->intent.attached, 1);
    scheduler_intent_clear(&fx->sched, s);

    /* affinity before utilization: the tenant already has a location on node 1 */
    n1->utilization_score = 0;
    ScheduleContext ctx;
    schedule_context_init(&ctx);
    Tenant *other = fx_tenant(fx, 2, PLACEMENT_POLICY_DEFAULT, 1);
    assert_true(scheduler_intent_set_attached(&fx->sched, other->shards[0], 1, &err));
    schedule_context_add_shard(&ctx, other->shards[0]);
    assert_int_equal(schedule_context_locations(&ctx, 1), 1);
    assert_int_equal(schedule_context_attached(&ctx, 1), 1);
    assert_int_equal(schedule_context_locations(&ctx, 3), 0);
    assert_true(scheduler_schedule_shard(&fx->sched, s, &ctx, NULL, &err));
    assert_int_equal(s->intent.attached, 3); /* node 1 has affinity, node 2 more attached */
    /* the context learnt the new location */
    assert_int_equal(schedule_context_locations(&ctx, 3), 1);
    /* and forgets it when the shard moves */
    node_set_get(&fx->nodes, 3)->availability = NODE_AVAILABILITY_OFFLINE;
    assert_true(scheduler_schedule_shard(&fx->sched, s, &ctx, NULL, &err));
    assert_int_equal(schedule_context_locations(&ctx, 3), 0);
    schedule_context_finish(&ctx);
    scheduler_intent_clear(&fx->sched, s);
    scheduler_intent_clear(&fx->sched, other->shards[0]);
    n2->attached_count = 0;
    n2->shard_count = 0;
}

/* Between two heartbeats the scheduler counts what it placed itself: a burst of creates spreads
 * instead of all going to the node that was emptiest at the last heartbeat. */
static void test_utilization_counts_scheduled_shards(void **state)
{
    Fx *fx = *state;
    Node *n[3];
    static const uint64_t reported[3] = {400, 800, 0}; /* 1, 2 and 0 shards of 2500 */
    for (NodeId i = 1; i <= 3; i++) {
        n[i - 1] = fx_node(fx, i, "az");
        (void)node_record_heartbeat(n[i - 1], reported[i - 1], 2500, 2000);
    }
    assert_int_equal(node_utilization_score(n[0]), 400);
    assert_int_equal(node_utilization_score(n[2]), 0);
    for (uint32_t k = 0; k < 30; k++)
        schedule_tenant_ok(fx, fx_tenant(fx, k, PLACEMENT_POLICY_DEFAULT, 1));
    for (size_t i = 0; i < 3; i++) {
        assert_in_range(n[i]->attached_count, 9, 11);
        /* the score follows the scheduler's own count, never below the heartbeat's */
        uint64_t own = (uint64_t)n[i]->shard_count * 1000000u / 2500u;
        assert_int_equal(node_utilization_score(n[i]), own > reported[i] ? own : reported[i]);
    }
    /* a node that reports no max_shard_count is ranked by its reported score alone */
    (void)node_record_heartbeat(n[2], 7, 0, 3000);
    assert_int_equal(node_utilization_score(n[2]), 7);
}

static void test_pick_az(void **state)
{
    Fx *fx = *state;
    char az[NODE_AZ_SIZE];
    assert_false(scheduler_pick_az(&fx->sched, az));
    assert_string_equal(az, "");
    Node *a1 = fx_node(fx, 1, "az-a");
    Node *a2 = fx_node(fx, 2, "az-a");
    Node *b1 = fx_node(fx, 3, "az-b");
    /* empty: tie, smaller name */
    assert_true(scheduler_pick_az(&fx->sched, az));
    assert_string_equal(az, "az-a");
    /* az-a: 3 attached over 2 nodes (1.5 each) vs az-b: 1 over 1 */
    a1->attached_count = 2;
    a2->attached_count = 1;
    b1->attached_count = 1;
    assert_true(scheduler_pick_az(&fx->sched, az));
    assert_string_equal(az, "az-b");
    /* unschedulable nodes do not count: az-b has none left */
    b1->availability = NODE_AVAILABILITY_OFFLINE;
    assert_true(scheduler_pick_az(&fx->sched, az));
    assert_string_equal(az, "az-a");
    a1->attached_count = 0;
    a2->attached_count = 0;
    b1->attached_count = 0;
}

static void test_debug_counts(void **state)
{
    Fx *fx = *state;
    fx_node(fx, 1, "az-a");
    Node *n2 = fx_node(fx, 2, "az-b");
    n2->scheduling = NODE_SCHEDULING_PAUSE;
    Tenant *t = fx_tenant(fx, 1, (PlacementPolicy){PLACEMENT_ATTACHED, 0}, 3);
    schedule_tenant_ok(fx, t);
    SchedulerNodeCounts counts[4];
    assert_int_equal(scheduler_node_shard_counts(&fx->sched, counts, 1), 2); /* cap respected */
    assert_int_equal(scheduler_node_shard_counts(&fx->sched, counts, 4), 2);
    assert_int_equal(counts[0].node, 1);
    assert_int_equal(counts[0].shard_count, 3);
    assert_int_equal(counts[0].attached_count, 3);
    assert_true(counts[0].schedulable);
    assert_string_equal(counts[0].az, "az-a");
    assert_int_equal(counts[1].node, 2);
    assert_int_equal(counts[1].shard_count, 0);
    assert_false(counts[1].schedulable);

    json_t *j = scheduler_to_json(&fx->sched);
    json_t *nodes = json_object_get(j, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    json_t *first = json_array_get(nodes, 0);
    assert_int_equal(json_integer_value(json_object_get(first, "node_id")), 1);
    assert_int_equal(json_integer_value(json_object_get(first, "shard_count")), 3);
    assert_int_equal(json_integer_value(json_object_get(first, "attached_count")), 3);
    assert_true(json_is_true(json_object_get(first, "schedulable")));
    assert_string_equal(json_string_value(json_object_get(first, "availability_zone_id")), "az-a");
    json_decref(j);
}

/* ---- consistency under random changes ---- */

static void test_random_changes_stay_consistent(void **state)
{
    Fx *fx = *state;
    enum { NODES = 6, TENANTS = 20, OPS = 4000 };
    for (NodeId i = 1; i <= NODES; i++)
        fx_node(fx, i, i % 2 ? "az-a" : "az-b");
    Tenant *tenants[TENANTS];
    for (uint32_t k = 0; k < TENANTS; k++)
        tenants[k] =
            fx_tenant(fx, k, (PlacementPolicy){PLACEMENT_ATTACHED, (uint8_t)(k % 3)}, 1 + k % 4);
    srand(1234);
    Err err;
    size_t failures = 0; /* expected now and then: no room, Offline nodes, duplicates */
    for (int op = 0; op < OPS; op++) {
        Tenant *t = tenants[rand() % TENANTS];
        TenantShard *s = t->shards[(size_t)rand() % t->n_shards];
        NodeId node = 1 + (NodeId)(rand() % NODES);
        err_clear(&err);
        switch (rand() % 10) {
        case 0:
            failures += !scheduler_intent_set_attached(&fx->sched, s, node, &err);
            break;
        case 1:
            failures += !scheduler_intent_add_secondary(&fx->sched, s, node, &err);
            break;
        case 2:
            (void)scheduler_intent_remove_node(&fx->sched, s, node);
            break;
        case 3:
            (void)scheduler_intent_demote_attached(&fx->sched, s);
            break;
        case 4:
            if (rand() % 4 == 0)
                scheduler_intent_clear(&fx->sched, s);
            break;
        case 5: {
            Node *n = node_set_get(&fx->nodes, node);
            n->availability = (NodeAvailability)(rand() % NODE_AVAILABILITY_COUNT);
            n->scheduling = (NodeSchedulingPolicy)(rand() % NODE_SCHEDULING_COUNT);
            break;
        }
        case 6: {
            static const PlacementPolicy policies[] = {
                {PLACEMENT_ATTACHED, 0},  {PLACEMENT_ATTACHED, 1}, {PLACEMENT_ATTACHED, 2},
                {PLACEMENT_SECONDARY, 0}, {PLACEMENT_DETACHED, 0},
            };
            t->policy = policies[rand() % (int)COUNT_OF(policies)];
            break;
        }
        case 7:
            s->scheduling = (uint8_t)(rand() % SHARD_SCHEDULING_COUNT);
            break;
        case 8:
            failures += !scheduler_schedule_tenant(&fx->sched, t, NULL, &err);
            break;
        default: {
            bool changed;
            failures += !scheduler_schedule_shard(&fx->sched, s, NULL, &changed, &err);
            break;
        }
        }
        /* intents always hold distinct registered nodes within bounds */
        assert_true(s->intent.n_secondaries <= TENANT_SHARD_MAX_SECONDARIES);
        for (unsigned i = 0; i < s->intent.n_secondaries; i++)
            assert_true(s->intent.secondaries[i] != s->intent.attached);
        if (op % 50 == 0)
            assert_consistent(fx);
    }
    assert_consistent(fx);
    assert_true(failures > 0 && failures < OPS);

    /* with every node usable and every shard Active, one pass satisfies every policy */
    for (size_t i = 0; i < NODES; i++) {
        Node *n = node_set_at(&fx->nodes, i);
        n->availability = NODE_AVAILABILITY_ACTIVE;
        n->scheduling = NODE_SCHEDULING_ACTIVE;
    }
    for (uint32_t k = 0; k < TENANTS; k++) {
        for (size_t j = 0; j < tenants[k]->n_shards; j++)
            tenants[k]->shards[j]->scheduling = SHARD_SCHEDULING_ACTIVE;
    }
    err_clear(&err);
    if (!scheduler_schedule_all(&fx->sched, fx->map, NULL, &err))
        fail_msg("%s", err.msg);
    for (uint32_t k = 0; k < TENANTS; k++) {
        for (size_t j = 0; j < tenants[k]->n_shards; j++)
            assert_intent_matches_policy(tenants[k]->shards[j]);
    }
    assert_consistent(fx);

    /* the check catches a wrong counter, and names the node */
    Node *n3 = node_set_get(&fx->nodes, 3);
    n3->attached_count++;
    err_clear(&err);
    assert_false(scheduler_check_consistency(&fx->sched, fx->map, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "node 3"));
    /* and an intent naming an unregistered node */
    n3->attached_count--;
    TenantShard *s0 = tenants[0]->shards[0];
    NodeId saved = s0->intent.attached;
    s0->intent.attached = 77;
    err_clear(&err);
    assert_false(scheduler_check_consistency(&fx->sched, fx->map, &err));
    assert_non_null(strstr(err.msg, "unknown node 77"));
    s0->intent.attached = saved;
    /* recount repairs counters */
    n3->shard_count += 5;
    assert_false(scheduler_check_consistency(&fx->sched, fx->map, &err));
    scheduler_recount(&fx->sched, fx->map);
    assert_consistent(fx);

    for (uint32_t k = 0; k < TENANTS; k++) {
        for (size_t j = 0; j < tenants[k]->n_shards; j++)
            scheduler_intent_clear(&fx->sched, tenants[k]->shards[j]);
    }
    for (size_t i = 0; i < NODES; i++) {
        assert_int_equal(node_set_at(&fx->nodes, i)->shard_count, 0);
        assert_int_equal(node_set_at(&fx->nodes, i)->attached_count, 0);
    }
}

/* ---- nodes ---- */

static void test_node_basics(void **state)
{
    Node a;
    node_init(&a, 5);
    assert_int_equal(a.availability, NODE_AVAILABILITY_OFFLINE);
    assert_false(node_is_available(&a));
    assert_false(node_is_schedulable(&a));
    Err err;
    err_clear(&err);
    assert_true(node_set_registration(&a, "ps-5.local", 9898, "ps-5.local", 6400, 0, "az-1", &err));
    Node b = a;
    assert_true(node_same_registration(&a, &b));
    b.listen_pg_port = 6401;
    assert_false(node_same_registration(&a, &b));

    static const struct {
        const char *http, *pg, *az;
        uint16_t hp, pp;
        const char *field;
    } bad[] = {
        {"", "h", "az", 1, 1, "listen_http_addr"},
        {"h", "", "az", 1, 1, "listen_pg_addr"},
        {"h", "h", "az", 0, 1, "listen_http_port"},
        {"h", "h", "az", 1, 0, "listen_pg_port"},
        {"h", "h", "0123456789012345678901234567890123456789012345678901234567890123456789", 1, 1,
         "availability_zone_id"},
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        Node c = a;
        err_clear(&err);
        assert_false(node_set_registration(&c, bad[i].http, bad[i].hp, bad[i].pg, bad[i].pp, 0,
                                           bad[i].az, &err));
        assert_int_equal(err.code, ERR_BAD_REQUEST);
        assert_non_null(strstr(err.msg, bad[i].field));
        assert_true(node_same_registration(&c, &a)); /* unchanged */
    }

    /* heartbeats */
    assert_true(node_heartbeat_overdue(&a, 100000, 30000)); /* never answered */
    assert_int_equal(node_record_heartbeat(&a, 77, 0, 100000), NODE_AVAILABILITY_OFFLINE);
    assert_int_equal(a.availability, NODE_AVAILABILITY_ACTIVE);
    assert_int_equal(a.utilization_score, 77);
    assert_true(node_is_schedulable(&a));
    assert_false(node_heartbeat_overdue(&a, 129999, 30000));
    assert_true(node_heartbeat_overdue(&a, 130000, 30000));
    a.availability = NODE_AVAILABILITY_WARMING_UP;
    assert_true(node_is_available(&a));
    assert_false(node_is_schedulable(&a));
    assert_int_equal(node_record_heartbeat(&a, 1, 0, 130000), NODE_AVAILABILITY_WARMING_UP);

    json_t *j = node_to_json(&a);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 5);
    assert_string_equal(json_string_value(json_object_get(j, "availability")), "Active");
    assert_string_equal(json_string_value(json_object_get(j, "scheduling")), "Active");
    assert_string_equal(json_string_value(json_object_get(j, "availability_zone_id")), "az-1");
    assert_string_equal(json_string_value(json_object_get(j, "listen_http_addr")), "ps-5.local");
    assert_int_equal(json_integer_value(json_object_get(j, "listen_http_port")), 9898);
    assert_int_equal(json_integer_value(json_object_get(j, "listen_pg_port")), 6400);
    assert_null(json_object_get(j, "listen_https_port"));
    json_decref(j);

    /* NodeSet: sorted by id, conflicts, NODE_ID_NONE rejected */
    NodeSet set;
    node_set_init(&set);
    static const NodeId ids[] = {30, 10, 20, 40, 5};
    for (size_t i = 0; i < COUNT_OF(ids); i++) {
        Node n;
        node_init(&n, ids[i]);
        assert_true(node_set_add(&set, &n, NULL, &err));
    }
    for (size_t i = 1; i < node_set_count(&set); i++)
        assert_true(node_set_at(&set, i - 1)->id < node_set_at(&set, i)->id);
    assert_int_equal(node_set_index(&set, 20), 2);
    assert_int_equal(node_set_index(&set, 21), -1);
    Node dup;
    node_init(&dup, 20);
    err_clear(&err);
    assert_false(node_set_add(&set, &dup, NULL, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    Node none;
    node_init(&none, NODE_ID_NONE);
    err_clear(&err);
    assert_false(node_set_add(&set, &none, NULL, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_false(node_set_is_available(&set, 10)); /* Offline */
    assert_false(node_set_is_available(&set, 11)); /* unknown */
    node_set_get(&set, 10)->availability = NODE_AVAILABILITY_ACTIVE;
    assert_true(node_set_is_available(&set, 10));
    node_set_finish(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_one_tenant),
        cmocka_unit_test_setup_teardown(test_spread_across_tenants, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_affinity_beats_load, fx_setup, fx_teardown),
        cmocka_unit_test(test_az_preference),
        cmocka_unit_test_setup_teardown(test_secondaries_other_az, fx_setup, fx_teardown),
        cmocka_unit_test(test_excluded_nodes),
        cmocka_unit_test_setup_teardown(test_no_schedulable_nodes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reserve_new_tenant, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_offline_node_promotes_secondary, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_stability, fx_setup, fx_teardown),
        cmocka_unit_test(test_shard_scheduling_policies),
        cmocka_unit_test_setup_teardown(test_policy_transitions, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_explicit_intent_ops, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_score_order, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_pick_az, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_utilization_counts_scheduled_shards, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_debug_counts, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_random_changes_stay_consistent, fx_setup, fx_teardown),
        cmocka_unit_test(test_node_basics),
        cmocka_unit_test_setup_teardown(test_drain_picks, fx_setup, fx_teardown),
        cmocka_unit_test(test_node_scheduling_fsm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
