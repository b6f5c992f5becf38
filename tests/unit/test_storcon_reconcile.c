/*
 * test_storcon_reconcile.c: the pure parts of the reconciler: the transition table (its diagram
 * in docs/storcon.md is checked by test_fsm_diagrams.c) and the planner that decides the next
 * action from a shard's intent, observed state, node availability and progress.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/str.h"
#include "storcon/node.h"
#include "storcon/reconcile.h"
#include "storcon/reconcile_migrate.h"
#include "storcon/scheduler.h"
#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

/* ---- transition table ---- */

static void test_table_shape(void **state)
{
    (void)state;
    for (int s = 0; s < RECONCILE_STATE_COUNT; s++) {
        bool out = false, in = false;
        for (size_t i = 0; i < RECONCILE_FSM.n_transitions; i++) {
            out = out || RECONCILE_FSM.transitions[i].from == s;
            in = in || RECONCILE_FSM.transitions[i].to == s;
        }
        bool terminal = s == RECONCILE_DONE || s == RECONCILE_FAILED;
        /* every non-terminal state has a way out, terminal ones none */
        assert_int_equal(out, !terminal);
        /* every state but the initial one is reachable */
        if (s != RECONCILE_QUEUED)
            assert_true(in);
        assert_string_not_equal(reconcile_state_name((ReconcileState)s), "?");
    }
    assert_string_equal(reconcile_state_name(RECONCILE_STATE_COUNT), "?");
    /* no duplicate rows */
    for (size_t i = 0; i < RECONCILE_FSM.n_transitions; i++)
        for (size_t k = i + 1; k < RECONCILE_FSM.n_transitions; k++)
            assert_false(RECONCILE_FSM.transitions[i].from == RECONCILE_FSM.transitions[k].from &&
                         RECONCILE_FSM.transitions[i].to == RECONCILE_FSM.transitions[k].to);
}

static void test_transition_allowed(void **state)
{
    (void)state;
    static const struct {
        ReconcileState from, to;
        bool allowed;
    } cases[] = {
        {RECONCILE_QUEUED, RECONCILE_PLAN, true},
        {RECONCILE_PLAN, RECONCILE_BUMP_GENERATION, true},
        {RECONCILE_BUMP_GENERATION, RECONCILE_ATTACH, true},
        {RECONCILE_ATTACH, RECONCILE_PLAN, true},
        {RECONCILE_DETACH, RECONCILE_FAILED, true},
        {RECONCILE_NOTIFY, RECONCILE_DONE, true},
        {RECONCILE_QUEUED, RECONCILE_ATTACH, false},
        {RECONCILE_DONE, RECONCILE_PLAN, false},
        {RECONCILE_FAILED, RECONCILE_PLAN, false},
        {RECONCILE_BUMP_GENERATION, RECONCILE_PLAN,
         false}, /* a bump is always followed by attach */
        {RECONCILE_PLAN, RECONCILE_FAILED, false},
        {RECONCILE_REFRESH, RECONCILE_ATTACH, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (fsm_allowed(&RECONCILE_FSM, (int)cases[i].from, (int)cases[i].to) != cases[i].allowed)
            fail_msg("case %zu: %s -> %s", i, reconcile_state_name(cases[i].from),
                     reconcile_state_name(cases[i].to));
    }
}

/* ---- planner ---- */

typedef struct Fixture {
    NodeSet nodes;
    ShardMap *map;
    Scheduler sched;
    TenantShard *shard;
} Fixture;

static void fixture_init(Fixture *f, unsigned secondaries)
{
    Err err;
    err_clear(&err);
    node_set_init(&f->nodes);
    for (NodeId id = 1; id <= 3; id++) {
        Node n;
        node_init(&n, id);
        assert_true(node_set_registration(&n, "127.0.0.1", (uint16_t)(9000 + id), "127.0.0.1",
                                          (uint16_t)(6400 + id), 0, "az", &err));
        n.availability = NODE_AVAILABILITY_ACTIVE;
        assert_true(node_set_add(&f->nodes, &n, NULL, &err));
    }
    f->map = shard_map_new();
    scheduler_init(&f->sched, &f->nodes);
    TenantId tid;
    memset(&tid, 0x11, sizeof(tid));
    Tenant *t;
    assert_true(shard_map_tenant_add(f->map, &tid, 2048,
                                     (PlacementPolicy){PLACEMENT_ATTACHED, (uint8_t)secondaries},
                                     "{}", &t, &err));
    assert_true(shard_map_shard_add(f->map, t, 0, 1, &f->shard, &err));
    assert_true(scheduler_intent_set_attached(&f->sched, f->shard, 1, &err));
    if (secondaries > 0)
        assert_true(scheduler_intent_add_secondary(&f->sched, f->shard, 2, &err));
    tenant_shard_set_generation(f->shard, 5, 1);
}

static void fixture_finish(Fixture *f)
{
    scheduler_intent_clear(&f->sched, f->shard);
    shard_map_free(f->map);
    node_set_finish(&f->nodes);
}

static void observe(TenantShard *s, NodeId node, ShardLocationMode mode, Generation gen, bool warm)
{
    ObservedState o = {.known = true, .mode = mode, .generation = gen, .secondary_warm = warm};
    tenant_shard_observed_set(s, node, &o);
}

typedef enum Setup {
    SETUP_NONE,
    SETUP_ATTACHED_OK,      /* node 1 AttachedSingle gen 5 */
    SETUP_ATTACHED_UNKNOWN, /* node 1 unknown */
    SETUP_ATTACHED_OLD_GEN, /* node 1 AttachedSingle gen 4 */
    SETUP_ATTACHED_MULTI,   /* node 1 AttachedMulti gen 5 */
    SETUP_ALL_OK,           /* node 1 ok, node 2 Secondary warm */
    SETUP_SECONDARY_COLD,   /* node 1 ok, node 2 Secondary not warm */
    SETUP_STRAY_ON_3,       /* all ok + node 3 AttachedSingle gen 4 */
    SETUP_DETACHED_ON_3,    /* all ok + node 3 known Detached */
    SETUP_UNKNOWN_ON_3,     /* all ok + node 3 unknown */
} Setup;

typedef struct PlanCase {
    const char *name;
    unsigned secondaries;
    Setup setup;
    NodeId offline; /* 0: none */
    bool refreshed_1;
    bool fresh_1; /* this reconcile issued gen 5 to node 1 */
    bool push_config;
    uint8_t pushed; /* bit 0: node 1, bit 1: node 2 */
    ReconcileActionKind want;
    NodeId want_node;
} PlanCase;

static const PlanCase PLAN_CASES[] = {
    {"nothing observed: bump then attach", 0, SETUP_NONE, 0, false, false, false, 0,
     RECONCILE_ACTION_BUMP_GENERATION, 1},
    {"attached with the generation: done", 0, SETUP_ATTACHED_OK, 0, false, false, false, 0,
     RECONCILE_ACTION_NONE, 0},
    {"unknown: refresh first", 0, SETUP_ATTACHED_UNKNOWN, 0, false, false, false, 0,
     RECONCILE_ACTION_REFRESH, 1},
    {"still unknown after refresh: bump", 0, SETUP_ATTACHED_UNKNOWN, 0, true, false, false, 0,
     RECONCILE_ACTION_BUMP_GENERATION, 1},
    {"generation just issued: attach without another bump", 0, SETUP_NONE, 0, false, true, false, 0,
     RECONCILE_ACTION_ATTACH, 1},
    {"older generation there: bump", 0, SETUP_ATTACHED_OLD_GEN, 0, false, false, false, 0,
     RECONCILE_ACTION_BUMP_GENERATION, 1},
    {"same generation, other attached mode: attach, no bump", 0, SETUP_ATTACHED_MULTI, 0, false,
     false, false, 0, RECONCILE_ACTION_ATTACH, 1},
    {"secondary missing", 1, SETUP_ATTACHED_OK, 0, false, false, false, 0,
     RECONCILE_ACTION_SECONDARY, 2},
    {"secondary cold", 1, SETUP_SECONDARY_COLD, 0, false, false, false, 0,
     RECONCILE_ACTION_SECONDARY, 2},
    {"all in place", 1, SETUP_ALL_OK, 0, false, false, false, 0, RECONCILE_ACTION_NONE, 0},
    {"stray attached location: detach", 1, SETUP_STRAY_ON_3, 0, false, false, false, 0,
     RECONCILE_ACTION_DETACH, 3},
    {"stray on an offline node: left alone", 1, SETUP_STRAY_ON_3, 3, false, false, false, 0,
     RECONCILE_ACTION_NONE, 0},
    {"known detached: nothing", 1, SETUP_DETACHED_ON_3, 0, false, false, false, 0,
     RECONCILE_ACTION_NONE, 0},
    {"unknown outside the intent: refresh", 1, SETUP_UNKNOWN_ON_3, 0, false, false, false, 0,
     RECONCILE_ACTION_REFRESH, 3},
    {"attached node offline: go on with secondaries", 1, SETUP_NONE, 1, false, false, false, 0,
     RECONCILE_ACTION_SECONDARY, 2},
    {"config push: attached first", 1, SETUP_ALL_OK, 0, false, false, true, 0,
     RECONCILE_ACTION_ATTACH, 1},
    {"config push: then the secondary", 1, SETUP_ALL_OK, 0, false, false, true, 1,
     RECONCILE_ACTION_SECONDARY, 2},
    {"config push: everything written", 1, SETUP_ALL_OK, 0, false, false, true, 3,
     RECONCILE_ACTION_NONE, 0},
};

static void apply_setup(Fixture *f, Setup setup)
{
    TenantShard *s = f->shard;
    switch (setup) {
    case SETUP_NONE:
        break;
    case SETUP_ATTACHED_OK:
        observe(s, 1, SHARD_LOCATION_ATTACHED_SINGLE, 5, false);
        break;
    case SETUP_ATTACHED_UNKNOWN:
        tenant_shard_observed_set_unknown(s, 1);
        break;
    case SETUP_ATTACHED_OLD_GEN:
        observe(s, 1, SHARD_LOCATION_ATTACHED_SINGLE, 4, false);
        break;
    case SETUP_ATTACHED_MULTI:
        observe(s, 1, SHARD_LOCATION_ATTACHED_MULTI, 5, false);
        break;
    case SETUP_SECONDARY_COLD:
        observe(s, 1, SHARD_LOCATION_ATTACHED_SINGLE, 5, false);
        observe(s, 2, SHARD_LOCATION_SECONDARY, GENERATION_NONE, false);
        break;
    case SETUP_ALL_OK:
    case SETUP_STRAY_ON_3:
    case SETUP_DETACHED_ON_3:
    case SETUP_UNKNOWN_ON_3:
        observe(s, 1, SHARD_LOCATION_ATTACHED_SINGLE, 5, false);
        observe(s, 2, SHARD_LOCATION_SECONDARY, GENERATION_NONE, true);
        if (setup == SETUP_STRAY_ON_3)
            observe(s, 3, SHARD_LOCATION_ATTACHED_SINGLE, 4, false);
        else if (setup == SETUP_DETACHED_ON_3)
            observe(s, 3, SHARD_LOCATION_DETACHED, GENERATION_NONE, false);
        else if (setup == SETUP_UNKNOWN_ON_3)
            tenant_shard_observed_set_unknown(s, 3);
        break;
    }
}

static void test_plan_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(PLAN_CASES) / sizeof(PLAN_CASES[0]); i++) {
        const PlanCase *c = &PLAN_CASES[i];
        Fixture f;
        fixture_init(&f, c->secondaries);
        apply_setup(&f, c->setup);
        if (c->offline != 0)
            node_set_get(&f.nodes, c->offline)->availability = NODE_AVAILABILITY_OFFLINE;
        ReconcileProgress p;
        reconcile_progress_init(&p, f.shard);
        if (c->refreshed_1)
            p.refreshed[p.n_refreshed++] = 1;
        if (c->fresh_1) {
            p.fresh_node = 1;
            p.fresh_generation = 5;
        }
        p.push_config = c->push_config;
        if (c->pushed & 1)
            p.pushed[p.n_pushed++] = 1;
        if (c->pushed & 2)
            p.pushed[p.n_pushed++] = 2;
        ReconcileAction a;
        reconcile_plan(f.shard, &f.nodes, &p, &a);
        if (a.kind != c->want || (c->want != RECONCILE_ACTION_NONE && a.node != c->want_node))
            fail_msg("case \"%s\": got %s on %llu, want %s on %llu", c->name,
                     reconcile_action_name(a.kind), (unsigned long long)a.node,
                     reconcile_action_name(c->want), (unsigned long long)c->want_node);
        /* the planner's "nothing to do" agrees with the dirty rule */
        if (!c->push_config && !c->refreshed_1 && !c->fresh_1)
            assert_int_equal(a.kind == RECONCILE_ACTION_NONE,
                             !tenant_shard_is_dirty(f.shard, &f.nodes));
        fixture_finish(&f);
    }
}

/* test_plan_converges: applying each planned action's effect as the reconciler would reaches
 * "nothing to do" within a few steps, from every starting point. */
/* A generation the shard's insert issued to its attached node (tenant create): the first reconcile
 * attaches without a bump, exactly once; later reconciles, and any other node, bump. */
static void test_plan_unused_generation(void **state)
{
    (void)state;
    Fixture f;
    fixture_init(&f, 0);
    tenant_shard_set_generation(f.shard, 1, 1);
    f.shard->flags |= TENANT_SHARD_GENERATION_UNUSED;
    ReconcileProgress p;
    ReconcileAction a;
    reconcile_progress_init(&p, f.shard);
    assert_false(f.shard->flags & TENANT_SHARD_GENERATION_UNUSED); /* taken */
    reconcile_plan(f.shard, &f.nodes, &p, &a);
    assert_int_equal(a.kind, RECONCILE_ACTION_ATTACH);
    assert_int_equal(a.node, 1);
    /* the attach failed: the next reconcile bumps */
    reconcile_progress_init(&p, f.shard);
    reconcile_plan(f.shard, &f.nodes, &p, &a);
    assert_int_equal(a.kind, RECONCILE_ACTION_BUMP_GENERATION);

    /* issued to node 1, but the intent moved to node 2 before the first reconcile: bump */
    tenant_shard_set_generation(f.shard, 1, 1);
    f.shard->flags |= TENANT_SHARD_GENERATION_UNUSED;
    Err err;
    err_clear(&err);
    assert_true(scheduler_intent_set_attached(&f.sched, f.shard, 2, &err));
    reconcile_progress_init(&p, f.shard);
    reconcile_plan(f.shard, &f.nodes, &p, &a);
    assert_int_equal(a.kind, RECONCILE_ACTION_BUMP_GENERATION);
    assert_int_equal(a.node, 2);

    /* a newer generation (a re-attach bumped it) clears the mark */
    f.shard->flags |= TENANT_SHARD_GENERATION_UNUSED;
    tenant_shard_set_generation(f.shard, 2, 2);
    assert_false(tenant_shard_take_unused_generation(f.shard));
    fixture_finish(&f);
}

static void test_plan_converges(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(PLAN_CASES) / sizeof(PLAN_CASES[0]); i++) {
        const PlanCase *c = &PLAN_CASES[i];
        Fixture f;
        fixture_init(&f, c->secondaries);
        apply_setup(&f, c->setup);
        if (c->offline != 0)
            node_set_get(&f.nodes, c->offline)->availability = NODE_AVAILABILITY_OFFLINE;
        ReconcileProgress p;
        reconcile_progress_init(&p, f.shard);
        p.push_config = c->push_config;
        int steps = 0;
        for (;; steps++) {
            assert_true(steps < 10);
            ReconcileAction a;
            reconcile_plan(f.shard, &f.nodes, &p, &a);
            if (a.kind == RECONCILE_ACTION_NONE)
                break;
            switch (a.kind) {
            case RECONCILE_ACTION_REFRESH: /* the pageserver says: nothing here */
                p.refreshed[p.n_refreshed++] = a.node;
                (void)tenant_shard_observed_remove(f.shard, a.node);
                break;
            case RECONCILE_ACTION_BUMP_GENERATION:
                tenant_shard_set_generation(f.shard, f.shard->generation + 1, a.node);
                p.fresh_node = a.node;
                p.fresh_generation = f.shard->generation;
                break;
            case RECONCILE_ACTION_ATTACH:
                observe(f.shard, a.node, SHARD_LOCATION_ATTACHED_SINGLE, f.shard->generation,
                        false);
                p.pushed[p.n_pushed++] = a.node;
                break;
            case RECONCILE_ACTION_SECONDARY:
                observe(f.shard, a.node, SHARD_LOCATION_SECONDARY, GENERATION_NONE, true);
                p.pushed[p.n_pushed++] = a.node;
                break;
            case RECONCILE_ACTION_DETACH:
                (void)tenant_shard_observed_remove(f.shard, a.node);
                break;
            case RECONCILE_ACTION_NONE:
            case RECONCILE_ACTION_COUNT:
            default:
                fail();
            }
        }
        assert_false(tenant_shard_is_dirty(f.shard, &f.nodes));
        fixture_finish(&f);
    }
}

/* test_config_change_pushes: a config change (tenant_shard_mark_dirty) makes the next reconcile
 * rewrite every location even though the observed state matches; the planner says so from the
 * progress it starts with. */
static void test_config_change_pushes(void **state)
{
    (void)state;
    Fixture f;
    fixture_init(&f, 1);
    apply_setup(&f, SETUP_ALL_OK);
    ReconcileProgress p;
    ReconcileAction a;
    reconcile_progress_init(&p, f.shard);
    assert_false(p.push_config);
    reconcile_plan(f.shard, &f.nodes, &p, &a);
    assert_int_equal(a.kind, RECONCILE_ACTION_NONE);

    tenant_shard_mark_dirty(f.shard);
    assert_true(tenant_shard_is_dirty(f.shard, &f.nodes));
    reconcile_progress_init(&p, f.shard);
    assert_true(p.push_config);
    assert_int_equal(p.fresh_generation, GENERATION_NONE);
    assert_int_equal(p.fresh_node, NODE_ID_NONE);
    reconcile_plan(f.shard, &f.nodes, &p, &a);
    assert_int_equal(a.kind, RECONCILE_ACTION_ATTACH); /* no generation bump for a config push */
    assert_int_equal(a.node, 1);
    fixture_finish(&f);
}

/* ---- live migration (storcon/reconcile_migrate.h) ---- */

/* run_migration: plan and apply each step's effect as the reconciler would, recording the
 * actions (kind and node) until nothing is left; returns how many. */
static size_t run_migration(Fixture *f, ReconcileProgress *p, ReconcileAction *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        assert_true(n < cap);
        ReconcileAction a;
        reconcile_plan(f->shard, &f->nodes, p, &a);
        out[n++] = a;
        if (a.kind == RECONCILE_ACTION_NONE)
            return n;
        if (reconcile_action_is_migrate(a.kind))
            (void)reconcile_migrate_track(p, &a);
        ObservedState o;
        switch (a.kind) {
        case RECONCILE_ACTION_MIGRATE_ORIGIN_STALE:
            assert_true(tenant_shard_observed_get(f->shard, a.node, &o));
            observe(f->shard, a.node, SHARD_LOCATION_ATTACHED_STALE, o.generation, false);
            break;
        case RECONCILE_ACTION_MIGRATE_ORIGIN_LSNS:
            p->mig_lsns = true;
            break;
        case RECONCILE_ACTION_MIGRATE_DEST_SECONDARY:
        case RECONCILE_ACTION_MIGRATE_ORIGIN_SECONDARY:
        case RECONCILE_ACTION_SECONDARY:
            observe(f->shard, a.node, SHARD_LOCATION_SECONDARY, GENERATION_NONE, true);
            break;
        case RECONCILE_ACTION_MIGRATE_WARM_UP:
            p->mig_warmed = true;
            break;
        case RECONCILE_ACTION_MIGRATE_BUMP_GENERATION:
        case RECONCILE_ACTION_BUMP_GENERATION:
            tenant_shard_set_generation(f->shard, f->shard->generation + 1, a.node);
            p->fresh_node = a.node;
            p->fresh_generation = f->shard->generation;
            break;
        case RECONCILE_ACTION_MIGRATE_ATTACH_MULTI:
            observe(f->shard, a.node, SHARD_LOCATION_ATTACHED_MULTI, f->shard->generation, false);
            break;
        case RECONCILE_ACTION_MIGRATE_WAIT_LSN:
            p->mig_lsn_waited = true;
            break;
        case RECONCILE_ACTION_MIGRATE_NOTIFY:
            p->mig_notified = true;
            break;
        case RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH:
        case RECONCILE_ACTION_DETACH:
            (void)tenant_shard_observed_remove(f->shard, a.node);
            break;
        case RECONCILE_ACTION_MIGRATE_CUTOVER:
        case RECONCILE_ACTION_ATTACH:
            observe(f->shard, a.node, SHARD_LOCATION_ATTACHED_SINGLE, f->shard->generation, false);
            break;
        default:
            fail_msg("unexpected action %s", reconcile_action_name(a.kind));
        }
    }
}

static void expect_steps(const ReconcileAction *got, size_t n, const ReconcileActionKind *kinds,
                         const NodeId *nodes, size_t want)
{
    for (size_t i = 0; i < n && i < want; i++) {
        if (got[i].kind != kinds[i] ||
            (kinds[i] != RECONCILE_ACTION_NONE && got[i].node != nodes[i]))
            fail_msg("step %zu: got %s on %llu, want %s on %llu", i,
                     reconcile_action_name(got[i].kind), (unsigned long long)got[i].node,
                     reconcile_action_name(kinds[i]), (unsigned long long)nodes[i]);
    }
    assert_int_equal(n, want);
}

/* the whole sequence onto the warm secondary; the origin becomes the secondary */
static void test_migration_sequence(void **state)
{
    (void)state;
    Err err;
    err_clear(&err);
    Fixture f;
    fixture_init(&f, 1);
    apply_setup(&f, SETUP_ALL_OK); /* node 1 attached gen 5, node 2 warm secondary */
    assert_true(scheduler_intent_set_attached(&f.sched, f.shard, 2, &err));
    assert_true(scheduler_intent_add_secondary(&f.sched, f.shard, 1, &err));
    ReconcileProgress p;
    reconcile_progress_init(&p, f.shard);
    ReconcileAction got[16];
    size_t n = run_migration(&f, &p, got, 16);
    static const ReconcileActionKind kinds[] = {
        RECONCILE_ACTION_MIGRATE_ORIGIN_STALE, RECONCILE_ACTION_MIGRATE_ORIGIN_LSNS,
        RECONCILE_ACTION_MIGRATE_WARM_UP,      RECONCILE_ACTION_MIGRATE_BUMP_GENERATION,
        RECONCILE_ACTION_MIGRATE_ATTACH_MULTI, RECONCILE_ACTION_MIGRATE_WAIT_LSN,
        RECONCILE_ACTION_MIGRATE_NOTIFY,       RECONCILE_ACTION_MIGRATE_ORIGIN_SECONDARY,
        RECONCILE_ACTION_MIGRATE_CUTOVER,      RECONCILE_ACTION_NONE};
    static const NodeId nodes[] = {1, 1, 2, 2, 2, 2, 2, 1, 2, 0};
    expect_steps(got, n, kinds, nodes, sizeof(kinds) / sizeof(kinds[0]));
    assert_int_equal(f.shard->generation, 6); /* exactly one bump */
    assert_false(tenant_shard_is_dirty(f.shard, &f.nodes));
    fixture_finish(&f);
}

/* a reconcile started after a restart in the middle (destination AttachedMulti in the newest
 * generation, origin stale, the origin no longer in the intent) resumes: no second bump */
static void test_migration_resumes_from_observed(void **state)
{
    (void)state;
    Err err;
    err_clear(&err);
    Fixture f;
    fixture_init(&f, 0);
    observe(f.shard, 1, SHARD_LOCATION_ATTACHED_STALE, 5, false);
    tenant_shard_set_generation(f.shard, 6, 2);
    observe(f.shard, 2, SHARD_LOCATION_ATTACHED_MULTI, 6, false);
    assert_true(scheduler_intent_set_attached(&f.sched, f.shard, 2, &err));
    ReconcileProgress p;
    reconcile_progress_init(&p, f.shard);
    ReconcileAction got[16];
    size_t n = run_migration(&f, &p, got, 16);
    static const ReconcileActionKind kinds[] = {
        RECONCILE_ACTION_MIGRATE_ORIGIN_LSNS, RECONCILE_ACTION_MIGRATE_WAIT_LSN,
        RECONCILE_ACTION_MIGRATE_NOTIFY,      RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH,
        RECONCILE_ACTION_MIGRATE_CUTOVER,     RECONCILE_ACTION_NONE};
    static const NodeId nodes[] = {1, 2, 2, 1, 2, 0};
    expect_steps(got, n, kinds, nodes, sizeof(kinds) / sizeof(kinds[0]));
    assert_int_equal(f.shard->generation, 6);
    fixture_finish(&f);
}

/* a destination with nothing becomes a secondary first; an offline origin means a cold move */
static void test_migration_cold_cases(void **state)
{
    (void)state;
    Err err;
    err_clear(&err);
    Fixture f;
    fixture_init(&f, 1);
    apply_setup(&f, SETUP_ALL_OK);
    assert_true(scheduler_intent_set_attached(&f.sched, f.shard, 3, &err));
    ReconcileProgress p;
    reconcile_progress_init(&p, f.shard);
    p.mig_lsns = true;
    p.mig_origin = 1;
    p.mig_dest = 3;
    observe(f.shard, 1, SHARD_LOCATION_ATTACHED_STALE, 5, false);
    ReconcileAction a;
    reconcile_plan(f.shard, &f.nodes, &p, &a);
    assert_int_equal(a.kind, RECONCILE_ACTION_MIGRATE_DEST_SECONDARY);
    assert_int_equal(a.node, 3);
    assert_int_equal(a.peer, 1);
    /* the origin goes offline: no live step, the ordinary bump and attach */
    node_set_get(&f.nodes, 1)->availability = NODE_AVAILABILITY_OFFLINE;
    reconcile_plan(f.shard, &f.nodes, &p, &a);
    assert_int_equal(a.kind, RECONCILE_ACTION_BUMP_GENERATION);
    assert_int_equal(a.node, 3);
    fixture_finish(&f);
}

/* the intent moves on while a migration is half-way (destination 2 AttachedMulti in the newest
 * generation): 2 becomes the origin of the move to 3, which is warmed (the flags of the old pair
 * do not count), and everything ends with 3 the only attached location */
static void test_migration_intent_moves_on(void **state)
{
    (void)state;
    Err err;
    err_clear(&err);
    Fixture f;
    fixture_init(&f, 1);
    apply_setup(&f, SETUP_ALL_OK);
    assert_true(scheduler_intent_set_attached(&f.sched, f.shard, 2, &err));
    ReconcileProgress p;
    reconcile_progress_init(&p, f.shard);
    /* the first move up to its AttachedMulti */
    observe(f.shard, 1, SHARD_LOCATION_ATTACHED_STALE, 5, false);
    p.mig_origin = 1;
    p.mig_dest = 2;
    p.mig_lsns = p.mig_warmed = true;
    tenant_shard_set_generation(f.shard, 6, 2);
    observe(f.shard, 2, SHARD_LOCATION_ATTACHED_MULTI, 6, false);
    /* now to 3 */
    assert_true(scheduler_intent_set_attached(&f.sched, f.shard, 3, &err));
    ReconcileAction got[32];
    size_t n = run_migration(&f, &p, got, 32);
    bool warmed_3 = false;
    for (size_t i = 0; i < n; i++)
        warmed_3 |= got[i].kind == RECONCILE_ACTION_MIGRATE_WARM_UP && got[i].node == 3;
    assert_true(warmed_3);
    assert_int_equal(got[0].kind, RECONCILE_ACTION_MIGRATE_ORIGIN_STALE);
    assert_int_equal(got[0].node, 2); /* the newest generation is the origin */
    assert_int_equal(got[n - 2].kind, RECONCILE_ACTION_MIGRATE_CUTOVER);
    assert_int_equal(f.shard->generation, 7);
    size_t attached = 0;
    for (size_t i = 0; i < tenant_shard_observed_count(f.shard); i++) {
        NodeId node;
        ObservedState o;
        tenant_shard_observed_at(f.shard, i, &node, &o);
        if (o.known && shard_location_mode_is_attached(o.mode)) {
            attached++;
            assert_int_equal(node, 3);
            assert_int_equal(o.mode, SHARD_LOCATION_ATTACHED_SINGLE);
        }
    }
    assert_int_equal(attached, 1);
    assert_false(tenant_shard_is_dirty(f.shard, &f.nodes));
    fixture_finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_shape),
        cmocka_unit_test(test_transition_allowed),
        cmocka_unit_test(test_plan_table),
        cmocka_unit_test(test_plan_unused_generation),
        cmocka_unit_test(test_plan_converges),
        cmocka_unit_test(test_config_change_pushes),
        cmocka_unit_test(test_migration_sequence),
        cmocka_unit_test(test_migration_resumes_from_observed),
        cmocka_unit_test(test_migration_cold_cases),
        cmocka_unit_test(test_migration_intent_moves_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
