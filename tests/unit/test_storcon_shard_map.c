/* test_storcon_shard_map.c: unit tests for storcon/shard_map.c and storcon/tenant_shard.c: tenant
 * and shard insert / lookup / remove / iteration, observed state storage, and the dirty rule. */
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

/* make_tid: a deterministic, non-random tenant id (sequential ids stress the hash). */
static TenantId make_tid(uint32_t n)
{
    TenantId id;
    memset(&id, 0, sizeof(id));
    id.b[0] = (uint8_t)(n >> 24);
    id.b[1] = (uint8_t)(n >> 16);
    id.b[2] = (uint8_t)(n >> 8);
    id.b[3] = (uint8_t)n;
    id.b[15] = 0x5a;
    return id;
}

static Tenant *add_tenant(ShardMap *map, uint32_t n)
{
    TenantId id = make_tid(n);
    Tenant *t = NULL;
    Err err;
    err_clear(&err);
    if (!shard_map_tenant_add(map, &id, 2048, PLACEMENT_POLICY_DEFAULT, NULL, &t, &err))
        fail_msg("tenant_add %u: %s", n, err.msg);
    return t;
}

static TenantShard *add_shard(ShardMap *map, Tenant *t, unsigned number, unsigned count)
{
    TenantShard *s = NULL;
    Err err;
    err_clear(&err);
    if (!shard_map_shard_add(map, t, (ShardNumber)number, (ShardCount)count, &s, &err))
        fail_msg("shard_add %u/%u: %s", number, count, err.msg);
    return s;
}

/* ---- tenants ---- */

static void test_tenant_add_get(void **state)
{
    ShardMap *map = shard_map_new();
    TenantId id = make_tid(7);
    Tenant *t = NULL;
    Err err;
    err_clear(&err);
    PlacementPolicy pol = {PLACEMENT_ATTACHED, 1};
    assert_true(
        shard_map_tenant_add(map, &id, 32768, pol, "{\"pitr_interval\":\"7 days\"}", &t, &err));
    assert_non_null(t);
    assert_ptr_equal(shard_map_tenant_get(map, &id), t);
    assert_int_equal(t->stripe_size, 32768);
    assert_true(placement_policy_eq(t->policy, pol));
    assert_string_equal(t->config_json, "{\"pitr_interval\":\"7 days\"}");
    assert_string_equal(t->preferred_az, "");
    assert_int_equal(shard_map_tenant_count(map), 1);

    /* duplicate: 409, the first one untouched */
    err_clear(&err);
    assert_false(shard_map_tenant_add(map, &id, 2048, PLACEMENT_POLICY_DEFAULT, NULL, NULL, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_int_equal(t->stripe_size, 32768);

    /* stripe size 0: 400 */
    TenantId id2 = make_tid(8);
    err_clear(&err);
    assert_false(shard_map_tenant_add(map, &id2, 0, PLACEMENT_POLICY_DEFAULT, NULL, NULL, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_null(shard_map_tenant_get(map, &id2));

    /* NULL config means {} */
    Tenant *t2 = NULL;
    assert_true(shard_map_tenant_add(map, &id2, 1, PLACEMENT_POLICY_DEFAULT, NULL, &t2, &err));
    assert_string_equal(t2->config_json, "{}");

    /* preferred AZ */
    assert_true(tenant_set_preferred_az(t2, "eu-west-1b", &err));
    assert_string_equal(t2->preferred_az, "eu-west-1b");
    char longaz[NODE_AZ_SIZE + 4];
    memset(longaz, 'a', sizeof(longaz) - 1);
    longaz[sizeof(longaz) - 1] = '\0';
    err_clear(&err);
    assert_false(tenant_set_preferred_az(t2, longaz, &err));
    assert_int_equal(err.code, ERR_BAD_REQUEST);
    assert_true(tenant_set_preferred_az(t2, NULL, &err));
    assert_string_equal(t2->preferred_az, "");

    /* remove */
    assert_true(shard_map_tenant_remove(map, t2, &err));
    assert_null(shard_map_tenant_get(map, &id2));
    assert_int_equal(shard_map_tenant_count(map), 1);
    shard_map_free(map);
}

/* ---- shards: order, lookup, validation ---- */

static void test_shards_in_shard_order(void **state)
{
    ShardMap *map = shard_map_new();
    Tenant *t = add_tenant(map, 1);
    /* a tenant in the middle of a split: parents 0002 and children 0004, added scrambled */
    static const unsigned add[][2] = {{3, 4}, {1, 2}, {0, 4}, {2, 4}, {0, 2}, {1, 4}};
    for (size_t i = 0; i < COUNT_OF(add); i++)
        add_shard(map, t, add[i][0], add[i][1]);
    static const unsigned want[][2] = {{0, 2}, {0, 4}, {1, 2}, {1, 4}, {2, 4}, {3, 4}};
    assert_int_equal(t->n_shards, COUNT_OF(want));
    for (size_t i = 0; i < COUNT_OF(want); i++) {
        assert_int_equal(t->shards[i]->tsid.number, want[i][0]);
        assert_int_equal(t->shards[i]->tsid.count, want[i][1]);
        assert_true(tenant_id_eq(&t->shards[i]->tsid.tenant_id, &t->id));
        assert_ptr_equal(t->shards[i]->tenant, t);
        if (i > 0)
            assert_true(tsid_cmp(&t->shards[i - 1]->tsid, &t->shards[i]->tsid) < 0);
        /* lookup by tsid */
        TenantShardId tsid = {t->id, (ShardNumber)want[i][0], (ShardCount)want[i][1]};
        assert_ptr_equal(shard_map_get(map, &tsid), t->shards[i]);
    }
    assert_int_equal(tenant_shards_with_count(t, 2), 2);
    assert_int_equal(tenant_shards_with_count(t, 4), 4);
    assert_int_equal(tenant_shards_with_count(t, 8), 0);
    assert_int_equal(shard_map_shard_count(map), 6);

    /* absent shards and tenants */
    TenantShardId missing = {t->id, 5, 8};
    assert_null(shard_map_get(map, &missing));
    TenantShardId other = {make_tid(2), 0, 2};
    assert_null(shard_map_get(map, &other));

    /* validation */
    static const struct {
        unsigned number, count;
        ErrCode code;
    } bad[] = {
        {4, 4, ERR_BAD_REQUEST}, {1, 0, ERR_BAD_REQUEST}, {9, 8, ERR_BAD_REQUEST},
        {0, 4, ERR_CONFLICT},    {3, 4, ERR_CONFLICT},
    };
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        Err err;
        err_clear(&err);
        TenantShard *s = NULL;
        assert_false(shard_map_shard_add(map, t, (ShardNumber)bad[i].number,
                                         (ShardCount)bad[i].count, &s, &err));
        assert_int_equal(err.code, bad[i].code);
        assert_null(s);
    }
    assert_int_equal(t->n_shards, 6);

    /* an unsharded (count 0) tenant */
    Tenant *u = add_tenant(map, 2);
    TenantShard *s0 = add_shard(map, u, 0, 0);
    TenantShardId bare = tsid_unsharded(&u->id);
    assert_ptr_equal(shard_map_get(map, &bare), s0);
    TenantShardId one = {u->id, 0, 1};
    assert_null(shard_map_get(map, &one)); /* count 1 is a distinct id */
    shard_map_free(map);
}

static void test_shard_remove_rules(void **state)
{
    ShardMap *map = shard_map_new();
    NodeSet nodes;
    node_set_init(&nodes);
    Node n;
    node_init(&n, 1);
    Err err;
    err_clear(&err);
    assert_true(node_set_add(&nodes, &n, NULL, &err));
    Scheduler sched;
    scheduler_init(&sched, &nodes);

    Tenant *t = add_tenant(map, 3);
    TenantShard *s0 = add_shard(map, t, 0, 2);
    TenantShard *s1 = add_shard(map, t, 1, 2);
    assert_true(scheduler_intent_set_attached(&sched, s1, 1, &err));

    /* a shard with an intent cannot go (node counters would be left behind) */
    err_clear(&err);
    assert_false(shard_map_shard_remove(map, s1, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    /* nor one that is reconciling */
    int token;
    s0->reconciler = &token;
    err_clear(&err);
    assert_false(shard_map_shard_remove(map, s0, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    s0->reconciler = NULL;
    /* a tenant with shards cannot go */
    err_clear(&err);
    assert_false(shard_map_tenant_remove(map, t, &err));
    assert_int_equal(err.code, ERR_CONFLICT);

    assert_true(shard_map_shard_remove(map, s0, &err));
    scheduler_intent_clear(&sched, s1);
    assert_int_equal(node_set_get(&nodes, 1)->shard_count, 0);
    assert_true(shard_map_shard_remove(map, s1, &err));
    assert_int_equal(t->n_shards, 0);
    assert_int_equal(shard_map_shard_count(map), 0);

    /* the notify slot must be released by its owner first */
    t->notify = &token;
    err_clear(&err);
    assert_false(shard_map_tenant_remove(map, t, &err));
    assert_int_equal(err.code, ERR_CONFLICT);
    t->notify = NULL;
    TenantId id = t->id;
    assert_true(shard_map_tenant_remove(map, t, &err));
    assert_null(shard_map_tenant_get(map, &id));

    node_set_finish(&nodes);
    shard_map_free(map);
}

/* Many tenants with sequential ids; remove a third of them (backward-shift deletion must keep
 * every other probe chain intact); check every lookup and both iterators. */
static void test_many_tenants(void **state)
{
    enum { N = 20000 };
    ShardMap *map = shard_map_new();
    size_t shards = 0;
    for (uint32_t i = 0; i < N; i++) {
        Tenant *t = add_tenant(map, i);
        unsigned count = 1u + i % 4u;
        for (unsigned k = count; k-- > 0;)
            add_shard(map, t, k, count);
        shards += count;
    }
    assert_int_equal(shard_map_tenant_count(map), N);
    assert_int_equal(shard_map_shard_count(map), shards);

    Err err;
    err_clear(&err);
    for (uint32_t i = 0; i < N; i += 3) {
        TenantId id = make_tid(i);
        Tenant *t = shard_map_tenant_get(map, &id);
        assert_non_null(t);
        while (t->n_shards > 0) {
            assert_true(shard_map_shard_remove(map, t->shards[t->n_shards - 1], &err));
            shards--;
        }
        assert_true(shard_map_tenant_remove(map, t, &err));
    }
    size_t tenants = 0;
    for (uint32_t i = 0; i < N; i++) {
        TenantId id = make_tid(i);
        Tenant *t = shard_map_tenant_get(map, &id);
        if (i % 3 == 0) {
            assert_null(t);
            continue;
        }
        tenants++;
        assert_non_null(t);
        assert_true(tenant_id_eq(&t->id, &id));
        unsigned count = 1u + i % 4u;
        assert_int_equal(t->n_shards, count);
        for (unsigned k = 0; k < count; k++) {
            TenantShardId tsid = {id, (ShardNumber)k, (ShardCount)count};
            TenantShard *s = shard_map_get(map, &tsid);
            assert_ptr_equal(s, t->shards[k]);
        }
    }
    assert_int_equal(shard_map_tenant_count(map), tenants);
    assert_int_equal(shard_map_shard_count(map), shards);

    size_t seen = 0;
    ShardMapIter it;
    shard_map_iter_init(&it, map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        assert_non_null(s->tenant);
        seen++;
    }
    assert_int_equal(seen, shards);

    size_t seen_tenants = 0;
    TenantIter ti;
    shard_map_tenant_iter_init(&ti, map);
    while (shard_map_tenant_iter_next(&ti) != NULL)
        seen_tenants++;
    assert_int_equal(seen_tenants, tenants);

    /* freed slots are reused: adding back does not grow past the high-water mark */
    Tenant *again = add_tenant(map, N + 1);
    add_shard(map, again, 0, 1);
    assert_int_equal(shard_map_shard_count(map), shards + 1);
    shard_map_free(map);
}

static void test_iter_remove_during(void **state)
{
    ShardMap *map = shard_map_new();
    for (uint32_t i = 0; i < 3000; i++) {
        Tenant *t = add_tenant(map, i);
        add_shard(map, t, 0, 2);
        add_shard(map, t, 1, 2);
    }
    Err err;
    err_clear(&err);
    /* remove every shard while iterating, including ones not visited yet (the sibling) */
    ShardMapIter it;
    shard_map_iter_init(&it, map);
    TenantShard *s;
    size_t visited = 0;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        visited++;
        Tenant *t = s->tenant;
        while (t->n_shards > 0)
            assert_true(shard_map_shard_remove(map, t->shards[0], &err));
    }
    assert_int_equal(visited, 3000);
    assert_int_equal(shard_map_shard_count(map), 0);
    shard_map_iter_init(&it, map);
    assert_null(shard_map_iter_next(&it));
    shard_map_free(map);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void test_list_tenants_paged(void **state)
{
    ShardMap *map = shard_map_new();
    enum { N = 53 };
    uint32_t ids[N];
    srand(42);
    for (size_t i = 0; i < N; i++) {
        ids[i] = (uint32_t)rand() * 2654435761u;
        for (size_t j = 0; j < i; j++) {
            if (ids[j] == ids[i]) {
                ids[i]++;
                j = (size_t)-1;
            }
        }
        add_tenant(map, ids[i]);
    }
    qsort(ids, N, sizeof(ids[0]), cmp_u32);
    Tenant *page[7];
    size_t total = 0;
    TenantId after;
    bool have_after = false;
    for (;;) {
        size_t n = shard_map_list_tenants(map, have_after ? &after : NULL, COUNT_OF(page), page);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            TenantId want = make_tid(ids[total + i]);
            assert_true(tenant_id_eq(&page[i]->id, &want));
        }
        total += n;
        after = page[n - 1]->id;
        have_after = true;
    }
    assert_int_equal(total, N);
    assert_int_equal(shard_map_list_tenants(map, NULL, 0, page), 0);
    shard_map_free(map);
}

static void test_set_config_marks_dirty(void **state)
{
    ShardMap *map = shard_map_new();
    NodeSet nodes;
    node_set_init(&nodes);
    Tenant *t = add_tenant(map, 9);
    TenantShard *a = add_shard(map, t, 0, 2);
    TenantShard *b = add_shard(map, t, 1, 2);
    /* Detached-like: empty intent, nothing observed: clean */
    assert_false(tenant_shard_is_dirty(a, &nodes));
    uint64_t seq = a->sequence;
    tenant_set_config(t, "{\"gc_period\":\"1h\"}");
    assert_string_equal(t->config_json, "{\"gc_period\":\"1h\"}");
    assert_string_equal(tenant_shard_config_json(b), "{\"gc_period\":\"1h\"}");
    assert_true(tenant_shard_is_dirty(a, &nodes));
    assert_true(tenant_shard_is_dirty(b, &nodes));
    assert_true(a->sequence > seq);
    assert_int_equal(shard_map_count_dirty(map, &nodes), 2);
    tenant_shard_clear_dirty(a);
    assert_false(tenant_shard_is_dirty(a, &nodes));
    assert_int_equal(shard_map_count_dirty(map, &nodes), 1);
    node_set_finish(&nodes);
    shard_map_free(map);
}

/* ---- observed state ---- */

static void test_observed_storage(void **state)
{
    ShardMap *map = shard_map_new();
    Tenant *t = add_tenant(map, 1);
    TenantShard *s = add_shard(map, t, 0, 1);
    enum { N = 11 };
    for (NodeId n = 1; n <= N; n++) {
        ObservedState st = {true, SHARD_LOCATION_ATTACHED_STALE, (Generation)(100 + n), false};
        if (n % 3 == 0)
            st = (ObservedState){true, SHARD_LOCATION_SECONDARY, GENERATION_NONE, n % 2 == 0};
        tenant_shard_observed_set(s, n, &st);
    }
    assert_int_equal(tenant_shard_observed_count(s), N);
    assert_non_null(s->observed_more); /* spilled past the inline slots */
    /* overwrite one, mark one unknown */
    ObservedState single = {true, SHARD_LOCATION_ATTACHED_SINGLE, GENERATION_MAX, false};
    tenant_shard_observed_set(s, 2, &single);
    tenant_shard_observed_set_unknown(s, 7);
    assert_int_equal(tenant_shard_observed_count(s), N);

    for (NodeId n = 1; n <= N; n++) {
        ObservedState st;
        assert_true(tenant_shard_observed_get(s, n, &st));
        if (n == 7) {
            assert_false(st.known);
        } else if (n == 2) {
            assert_true(st.known);
            assert_int_equal(st.mode, SHARD_LOCATION_ATTACHED_SINGLE);
            assert_int_equal(st.generation, GENERATION_MAX);
        } else if (n % 3 == 0) {
            assert_int_equal(st.mode, SHARD_LOCATION_SECONDARY);
            assert_int_equal(st.generation, GENERATION_NONE);
            assert_int_equal(st.secondary_warm, n % 2 == 0);
        } else {
            assert_int_equal(st.mode, SHARD_LOCATION_ATTACHED_STALE);
            assert_int_equal(st.generation, 100 + (Generation)n);
            assert_false(st.secondary_warm);
        }
    }
    assert_false(tenant_shard_observed_get(s, 99, NULL));
    assert_false(tenant_shard_observed_mark_unknown_if_present(s, 99));
    assert_false(tenant_shard_observed_get(s, 99, NULL)); /* not added */
    assert_true(tenant_shard_observed_mark_unknown_if_present(s, 1));

    /* iterate by index: every node exactly once */
    unsigned seen = 0;
    for (size_t i = 0; i < tenant_shard_observed_count(s); i++) {
        NodeId n;
        tenant_shard_observed_at(s, i, &n, NULL);
        assert_true(n >= 1 && n <= N);
        assert_false(seen & (1u << n));
        seen |= 1u << n;
    }

    /* remove down to the inline capacity: overflow storage released */
    for (NodeId n = N; n > TENANT_SHARD_OBSERVED_INLINE; n--)
        assert_true(tenant_shard_observed_remove(s, n));
    assert_false(tenant_shard_observed_remove(s, N));
    assert_int_equal(tenant_shard_observed_count(s), TENANT_SHARD_OBSERVED_INLINE);
    assert_null(s->observed_more);
    for (NodeId n = 1; n <= TENANT_SHARD_OBSERVED_INLINE; n++)
        assert_true(tenant_shard_observed_get(s, n, NULL));
    tenant_shard_observed_clear(s);
    assert_int_equal(tenant_shard_observed_count(s), 0);
    shard_map_free(map);
}

typedef struct FromJsonCase {
    const char *json;
    bool ok;
    ShardLocationMode mode;
    Generation gen;
    bool warm;
} FromJsonCase;

static const FromJsonCase FROM_JSON_CASES[] = {
    {"{\"mode\":\"AttachedSingle\",\"generation\":7,\"secondary_conf\":null,\"shard_number\":0,"
     "\"shard_count\":0,\"shard_stripe_size\":0,\"tenant_conf\":{}}",
     true, SHARD_LOCATION_ATTACHED_SINGLE, 7, false},
    {"{\"mode\":\"AttachedStale\",\"generation\":4294967295}", true, SHARD_LOCATION_ATTACHED_STALE,
     GENERATION_MAX, false},
    {"{\"mode\":\"Secondary\",\"generation\":null,\"secondary_conf\":{\"warm\":true}}", true,
     SHARD_LOCATION_SECONDARY, GENERATION_NONE, true},
    {"{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":false}}", true, SHARD_LOCATION_SECONDARY,
     GENERATION_NONE, false},
    {"{\"mode\":\"Detached\"}", true, SHARD_LOCATION_DETACHED, GENERATION_NONE, false},
    {"{\"mode\":\"attachedsingle\",\"generation\":1}", false, 0, 0, false},
    {"{\"generation\":1}", false, 0, 0, false},
    {"{\"mode\":\"AttachedSingle\",\"generation\":-1}", false, 0, 0, false},
    {"{\"mode\":\"AttachedSingle\",\"generation\":4294967296}", false, 0, 0, false},
    {"{\"mode\":\"AttachedSingle\",\"generation\":\"1\"}", false, 0, 0, false},
    {"{\"mode\":\"Secondary\",\"secondary_conf\":{\"warm\":1}}", false, 0, 0, false},
    {"{\"mode\":\"Secondary\",\"secondary_conf\":true}", false, 0, 0, false},
    {"[]", false, 0, 0, false},
    {"null", false, 0, 0, false},
};

static void test_observed_from_json(void **state)
{
    for (size_t i = 0; i < COUNT_OF(FROM_JSON_CASES); i++) {
        const FromJsonCase *c = &FROM_JSON_CASES[i];
        json_error_t jerr;
        json_t *j = json_loads(c->json, JSON_DECODE_ANY, &jerr);
        assert_non_null(j);
        ObservedState st = {false, SHARD_LOCATION_COUNT, 99, true};
        Err err;
        err_clear(&err);
        bool ok = tenant_shard_observed_from_json(j, &st, &err);
        json_decref(j);
        if (ok != c->ok)
            fail_msg("case %zu (%s): %s", i, c->json, ok ? "accepted" : err.msg);
        if (!ok) {
            assert_int_equal(err.code, ERR_BAD_REQUEST);
            assert_non_null(strstr(err.msg, "location config"));
            continue;
        }
        assert_true(st.known);
        assert_int_equal(st.mode, c->mode);
        assert_int_equal(st.generation, c->gen);
        assert_int_equal(st.secondary_warm, c->warm);
    }
}

/* ---- the dirty rule ---- */

#define UNKNOWN_MODE (-1)

typedef struct ObsSpec {
    NodeId node; /* 0 ends the list */
    int mode;    /* ShardLocationMode or UNKNOWN_MODE */
    Generation gen;
    bool warm;
} ObsSpec;

typedef struct DirtyCase {
    const char *name;
    NodeId attached;  /* 0: none */
    NodeId secondary; /* 0: none */
    Generation gen;
    ObsSpec obs[4];
    NodeAvailability avail[4]; /* nodes 1..3 (index 0 unused); default Active */
    uint8_t flags;
    bool dirty;
} DirtyCase;

#define AS   SHARD_LOCATION_ATTACHED_SINGLE
#define AM   SHARD_LOCATION_ATTACHED_MULTI
#define AST  SHARD_LOCATION_ATTACHED_STALE
#define SEC  SHARD_LOCATION_SECONDARY
#define DET  SHARD_LOCATION_DETACHED
#define OFF  NODE_AVAILABILITY_OFFLINE
#define WARM NODE_AVAILABILITY_WARMING_UP
#define GN   GENERATION_NONE

static const DirtyCase DIRTY_CASES[] = {
    {"nothing wanted, nothing there", 0, 0, GN, {{0}}, {0}, 0, false},
    {"attached as wanted", 1, 0, 5, {{1, AS, 5, false}}, {0}, 0, false},
    {"attached, nothing observed", 1, 0, 5, {{0}}, {0}, 0, true},
    {"attached, observed unknown", 1, 0, 5, {{1, UNKNOWN_MODE, GN, false}}, {0}, 0, true},
    {"attached, older generation", 1, 0, 5, {{1, AS, 4, false}}, {0}, 0, true},
    {"attached, AttachedMulti", 1, 0, 5, {{1, AM, 5, false}}, {0}, 0, true},
    {"attached, observed Secondary", 1, 0, 5, {{1, SEC, GN, true}}, {0}, 0, true},
    {"attached, no generation yet", 1, 0, GN, {{1, AS, GN, false}}, {0}, 0, true},
    {"attached on an Offline node: ignored", 1, 0, 5, {{0}}, {0, OFF}, 0, false},
    {"attached on a WarmingUp node counts", 1, 0, 5, {{0}}, {0, WARM}, 0, true},
    {"attached + secondary as wanted",
     1,
     2,
     5,
     {{1, AS, 5, false}, {2, SEC, GN, true}},
     {0},
     0,
     false},
    {"secondary not warm", 1, 2, 5, {{1, AS, 5, false}, {2, SEC, GN, false}}, {0}, 0, true},
    {"secondary missing", 1, 2, 5, {{1, AS, 5, false}}, {0}, 0, true},
    {"secondary observed attached", 1, 2, 5, {{1, AS, 5, false}, {2, AST, 4, false}}, {0}, 0, true},
    {"secondary missing on Offline node", 1, 2, 5, {{1, AS, 5, false}}, {0, 0, OFF}, 0, false},
    {"stray attachment elsewhere", 1, 0, 5, {{1, AS, 5, false}, {3, AST, 4, false}}, {0}, 0, true},
    {"stray unknown elsewhere",
     1,
     0,
     5,
     {{1, AS, 5, false}, {3, UNKNOWN_MODE, GN, false}},
     {0},
     0,
     true},
    {"stray known Detached elsewhere",
     1,
     0,
     5,
     {{1, AS, 5, false}, {3, DET, GN, false}},
     {0},
     0,
     false},
    {"stray on an Offline node",
     1,
     0,
     5,
     {{1, AS, 5, false}, {3, AS, 4, false}},
     {0, 0, 0, OFF},
     0,
     false},
    {"stray on an unregistered node",
     1,
     0,
     5,
     {{1, AS, 5, false}, {9, AS, 4, false}},
     {0},
     0,
     false},
    {"detached tenant still has a secondary", 0, 0, GN, {{2, SEC, GN, true}}, {0}, 0, true},
    {"pending compute notification",
     1,
     0,
     5,
     {{1, AS, 5, false}},
     {0},
     TENANT_SHARD_PENDING_NOTIFY,
     true},
    {"forced dirty", 1, 0, 5, {{1, AS, 5, false}}, {0}, TENANT_SHARD_FORCE_DIRTY, true},
    {"importing alone is not dirty",
     1,
     0,
     5,
     {{1, AS, 5, false}},
     {0},
     TENANT_SHARD_IMPORTING,
     false},
};

static void test_dirty_rules(void **state)
{
    for (size_t i = 0; i < COUNT_OF(DIRTY_CASES); i++) {
        const DirtyCase *c = &DIRTY_CASES[i];
        NodeSet nodes;
        node_set_init(&nodes);
        Err err;
        err_clear(&err);
        for (NodeId id = 1; id <= 3; id++) {
            Node n;
            node_init(&n, id);
            n.availability = c->avail[id];
            assert_true(node_set_add(&nodes, &n, NULL, &err));
        }
        Scheduler sched;
        scheduler_init(&sched, &nodes);
        ShardMap *map = shard_map_new();
        Tenant *t = add_tenant(map, 1);
        TenantShard *s = add_shard(map, t, 0, 1);
        if (c->attached != 0)
            assert_true(scheduler_intent_set_attached(&sched, s, c->attached, &err));
        if (c->secondary != 0)
            assert_true(scheduler_intent_add_secondary(&sched, s, c->secondary, &err));
        s->generation = c->gen;
        for (size_t k = 0; k < COUNT_OF(c->obs) && c->obs[k].node != 0; k++) {
            ObservedState st = {c->obs[k].mode != UNKNOWN_MODE, (ShardLocationMode)0, c->obs[k].gen,
                                c->obs[k].warm};
            if (st.known)
                st.mode = (ShardLocationMode)c->obs[k].mode;
            tenant_shard_observed_set(s, c->obs[k].node, &st);
        }
        s->flags = c->flags;
        if (tenant_shard_is_dirty(s, &nodes) != c->dirty)
            fail_msg("case \"%s\": expected %s", c->name, c->dirty ? "dirty" : "clean");
        scheduler_intent_clear(&sched, s);
        shard_map_free(map);
        node_set_finish(&nodes);
    }
}

/* What the intent wants on each node agrees with the dirty rule: setting observed to wanted
 * everywhere makes a shard clean. */
static void test_wanted_makes_clean(void **state)
{
    NodeSet nodes;
    node_set_init(&nodes);
    Err err;
    err_clear(&err);
    for (NodeId id = 1; id <= 4; id++) {
        Node n;
        node_init(&n, id);
        n.availability = NODE_AVAILABILITY_ACTIVE;
        assert_true(node_set_add(&nodes, &n, NULL, &err));
    }
    Scheduler sched;
    scheduler_init(&sched, &nodes);
    ShardMap *map = shard_map_new();
    Tenant *t = add_tenant(map, 1);
    TenantShard *s = add_shard(map, t, 0, 1);
    assert_true(scheduler_intent_set_attached(&sched, s, 2, &err));
    assert_true(scheduler_intent_add_secondary(&sched, s, 3, &err));
    tenant_shard_set_generation(s, 12, 2);
    assert_int_equal(s->generation_pageserver, 2);
    tenant_shard_observed_set_unknown(s, 4); /* a leftover on node 4 */
    assert_true(tenant_shard_is_dirty(s, &nodes));
    for (NodeId id = 1; id <= 4; id++) {
        ObservedState want;
        tenant_shard_wanted(s, id, &want);
        if (tenant_shard_observed_get(s, id, NULL) || want.mode != SHARD_LOCATION_DETACHED)
            tenant_shard_observed_set(s, id, &want);
    }
    ObservedState st;
    assert_true(tenant_shard_observed_get(s, 2, &st));
    assert_int_equal(st.mode, SHARD_LOCATION_ATTACHED_SINGLE);
    assert_int_equal(st.generation, 12);
    assert_true(tenant_shard_observed_get(s, 4, &st));
    assert_int_equal(st.mode, SHARD_LOCATION_DETACHED);
    assert_false(tenant_shard_observed_get(s, 1, NULL));
    assert_false(tenant_shard_is_dirty(s, &nodes));
    /* a newer generation makes it dirty again */
    tenant_shard_set_generation(s, 13, 2);
    assert_true(tenant_shard_is_dirty(s, &nodes));
    scheduler_intent_clear(&sched, s);
    shard_map_free(map);
    node_set_finish(&nodes);
}

/* ---- misc shard state ---- */

static void test_last_error_and_flags(void **state)
{
    ShardMap *map = shard_map_new();
    Tenant *t = add_tenant(map, 1);
    TenantShard *s = add_shard(map, t, 0, 1);
    assert_string_equal(tenant_shard_last_error(s), "");
    tenant_shard_set_last_error(s, "pageserver 3: timeout");
    assert_string_equal(tenant_shard_last_error(s), "pageserver 3: timeout");
    char big[TENANT_SHARD_LAST_ERROR_MAX * 2];
    memset(big, 'e', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tenant_shard_set_last_error(s, big);
    assert_int_equal(strlen(tenant_shard_last_error(s)), TENANT_SHARD_LAST_ERROR_MAX);
    tenant_shard_set_last_error(s, "");
    assert_null(s->last_error);
    tenant_shard_set_last_error(s, "again"); /* freed by shard_map_free */

    assert_false(tenant_shard_pending_notify(s));
    tenant_shard_set_pending_notify(s, true);
    assert_true(tenant_shard_pending_notify(s));
    tenant_shard_set_pending_notify(s, false);
    assert_false(tenant_shard_pending_notify(s));

    uint64_t seq = s->sequence;
    assert_int_equal(tenant_shard_bump_sequence(s), seq + 1);

    static const struct {
        ShardSchedulingPolicy p;
        bool schedule, reconcile, optimize;
    } contract[] = {
        {SHARD_SCHEDULING_ACTIVE, true, true, true},
        {SHARD_SCHEDULING_ESSENTIAL, true, true, false},
        {SHARD_SCHEDULING_PAUSE, false, true, false},
        {SHARD_SCHEDULING_STOP, false, false, false},
    };
    for (size_t i = 0; i < COUNT_OF(contract); i++) {
        s->scheduling = (uint8_t)contract[i].p;
        assert_int_equal(tenant_shard_may_schedule(s), contract[i].schedule);
        assert_int_equal(tenant_shard_may_reconcile(s), contract[i].reconcile);
        assert_int_equal(tenant_shard_may_optimize(s), contract[i].optimize);
    }
    shard_map_free(map);
}

static void test_shard_to_json(void **state)
{
    NodeSet nodes;
    node_set_init(&nodes);
    Err err;
    err_clear(&err);
    for (NodeId id = 4; id <= 5; id++) {
        Node n;
        node_init(&n, id);
        assert_true(node_set_add(&nodes, &n, NULL, &err));
    }
    Scheduler sched;
    scheduler_init(&sched, &nodes);
    ShardMap *map = shard_map_new();
    Tenant *t = add_tenant(map, 0x1f359dd6);
    TenantShard *s = add_shard(map, t, 7, 10);
    json_t *j = tenant_shard_to_json(s);
    char tsid[TSID_STR_SIZE];
    tsid_format(&s->tsid, tsid);
    assert_string_equal(json_string_value(json_object_get(j, "tenant_shard_id")), tsid);
    assert_true(json_is_null(json_object_get(j, "node_attached")));
    assert_true(json_is_null(json_object_get(j, "preferred_az_id")));
    assert_int_equal(json_array_size(json_object_get(j, "node_secondary")), 0);
    assert_string_equal(json_string_value(json_object_get(j, "scheduling_policy")), "Active");
    json_decref(j);

    assert_true(scheduler_intent_set_attached(&sched, s, 4, &err));
    assert_true(scheduler_intent_add_secondary(&sched, s, 5, &err));
    assert_true(tenant_set_preferred_az(t, "az-1", &err));
    tenant_shard_set_last_error(s, "boom");
    tenant_shard_set_pending_notify(s, true);
    s->splitting = 1;
    s->scheduling = SHARD_SCHEDULING_PAUSE;
    j = tenant_shard_to_json(s);
    assert_int_equal(json_integer_value(json_object_get(j, "node_attached")), 4);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "node_secondary"), 0)),
                     5);
    assert_string_equal(json_string_value(json_object_get(j, "last_error")), "boom");
    assert_true(json_is_true(json_object_get(j, "is_pending_compute_notification")));
    assert_true(json_is_true(json_object_get(j, "is_splitting")));
    assert_true(json_is_false(json_object_get(j, "is_reconciling")));
    assert_true(json_is_false(json_object_get(j, "is_importing")));
    assert_string_equal(json_string_value(json_object_get(j, "scheduling_policy")), "Pause");
    assert_string_equal(json_string_value(json_object_get(j, "preferred_az_id")), "az-1");
    assert_int_equal(json_object_size(j), 10);
    json_decref(j);
    scheduler_intent_clear(&sched, s);
    shard_map_free(map);
    node_set_finish(&nodes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenant_add_get),         cmocka_unit_test(test_shards_in_shard_order),
        cmocka_unit_test(test_shard_remove_rules),     cmocka_unit_test(test_many_tenants),
        cmocka_unit_test(test_iter_remove_during),     cmocka_unit_test(test_list_tenants_paged),
        cmocka_unit_test(test_set_config_marks_dirty), cmocka_unit_test(test_observed_storage),
        cmocka_unit_test(test_observed_from_json),     cmocka_unit_test(test_dirty_rules),
        cmocka_unit_test(test_wanted_makes_clean),     cmocka_unit_test(test_last_error_and_flags),
        cmocka_unit_test(test_shard_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
