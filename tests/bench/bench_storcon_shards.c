/*
 * bench_storcon_shards.c: the storage controller's in-memory scale target (issue 4): 100,000
 * shards (25,000 tenants x 4) over 10 nodes in 3 AZs, placement {"Attached": 1}.
 *
 * Prints figures, asserts nothing:
 *   - sizes of the structs;
 *   - heap bytes per shard (mallinfo2: in-use arena bytes + mmapped bytes, before and after
 *     building tenants, shards, intents and observed state), against the 2 KiB budget;
 *   - time to schedule every shard (scheduler_schedule_all);
 *   - time of a full idle "is this shard dirty?" pass (best of BENCH_RUNS), with every shard
 *     clean, and of a pass with one node Offline;
 *   - a baseline measured in the same run: a plain loop over the same shards reading the same
 *     fields the dirty rule starts from, and the ratios against it.
 *
 * Usage: bench_storcon_shards [tenants]   (default 25000; 4 shards each)
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/str.h"
#include "storcon/node.h"
#include "storcon/scheduler.h"
#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

#define BENCH_NODES             10
#define BENCH_SHARDS_PER_TENANT 4
#define BENCH_RUNS              5
#define BENCH_BUDGET_BYTES      2048

/* A realistic tenant config override set (shared per tenant, not per shard). */
static const char TENANT_CONFIG[] =
    "{\"checkpoint_distance\":268435456,\"gc_period\":\"1h\",\"pitr_interval\":\"7 days\","
    "\"compaction_threshold\":10,\"image_creation_threshold\":3}";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* heap_bytes: bytes the allocator has handed out (arena in use + mmapped chunks). */
static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* A sink the optimiser cannot see through, so timed loops are not removed. */
static volatile uint64_t sink;

/* baseline_pass: a plain loop over every shard touching what the dirty rule starts from (flags,
 * intent, first observed slot): the cost of merely walking the memory. */
static size_t baseline_pass(const ShardMap *map)
{
    uint64_t acc = 0;
    size_t n = 0;
    ShardMapIter it;
    shard_map_iter_init(&it, map);
    const TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        acc += s->flags + s->intent.attached + s->observed[0].node + s->n_observed;
        n++;
    }
    sink = acc;
    return n;
}

static void die(const char *what, const Err *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err->msg);
    exit(1);
}

int main(int argc, char **argv)
{
    uint64_t tenants_u64 = 25000;
    if (argc > 1 && !parse_u64(argv[1], 1, 1000000, &tenants_u64)) {
        fprintf(stderr, "usage: %s [tenants 1..1000000]\n", argv[0]);
        return 2;
    }
    const size_t n_tenants = (size_t)tenants_u64;
    const size_t n_shards = n_tenants * BENCH_SHARDS_PER_TENANT;
    Err err;
    err_clear(&err);

    printf("struct sizes: TenantShard %zu, ShardIntent %zu, ObservedSlot %zu, Tenant %zu, "
           "Node %zu bytes\n",
           sizeof(TenantShard), sizeof(ShardIntent), sizeof(ObservedSlot), sizeof(Tenant),
           sizeof(Node));

    NodeSet nodes;
    node_set_init(&nodes);
    for (NodeId id = 1; id <= BENCH_NODES; id++) {
        Node n;
        node_init(&n, id);
        char az[NODE_AZ_SIZE];
        str_printf(az, sizeof(az), "az-%u", (unsigned)(id % 3));
        if (!node_set_registration(&n, "10.0.0.1", (uint16_t)(9000 + id), "10.0.0.1",
                                   (uint16_t)(6400 + id), 0, az, &err))
            die("node registration", &err);
        (void)node_record_heartbeat(&n, 0, 0, 1);
        if (!node_set_add(&nodes, &n, NULL, &err))
            die("node add", &err);
    }
    Scheduler sched;
    scheduler_init(&sched, &nodes);

    /* ---- build ---- */
    size_t heap_before = heap_bytes();
    double t0 = now_ms();
    ShardMap *map = shard_map_new();
    for (size_t i = 0; i < n_tenants; i++) {
        TenantId id;
        memset(&id, 0, sizeof(id));
        uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
        memcpy(id.b, &x, sizeof(x));
        memcpy(id.b + 8, &i, sizeof(i) < 8 ? sizeof(i) : 8);
        Tenant *t;
        if (!shard_map_tenant_add(map, &id, STRIPE_SIZE_DEFAULT,
                                  (PlacementPolicy){PLACEMENT_ATTACHED, 1}, TENANT_CONFIG, &t,
                                  &err))
            die("tenant add", &err);
        char az[NODE_AZ_SIZE];
        str_printf(az, sizeof(az), "az-%u", (unsigned)(i % 3));
        if (!tenant_set_preferred_az(t, az, &err))
            die("preferred az", &err);
        for (unsigned k = 0; k < BENCH_SHARDS_PER_TENANT; k++) {
            if (!shard_map_shard_add(map, t, (ShardNumber)k, BENCH_SHARDS_PER_TENANT, NULL, &err))
                die("shard add", &err);
        }
    }
    double t_build = now_ms() - t0;

    /* ---- schedule ---- */
    ScheduleStats stats = {0};
    t0 = now_ms();
    if (!scheduler_schedule_all(&sched, map, &stats, &err))
        die("schedule", &err);
    double t_schedule = now_ms() - t0;

    /* ---- observed = intent (the steady state after reconciling), generation 1 ---- */
    ShardMapIter it;
    shard_map_iter_init(&it, map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        tenant_shard_set_generation(s, 1, s->intent.attached);
        ObservedState want;
        tenant_shard_wanted(s, s->intent.attached, &want);
        tenant_shard_observed_set(s, s->intent.attached, &want);
        for (unsigned k = 0; k < s->intent.n_secondaries; k++) {
            tenant_shard_wanted(s, s->intent.secondaries[k], &want);
            tenant_shard_observed_set(s, s->intent.secondaries[k], &want);
        }
    }
    size_t heap_after = heap_bytes();
    double per_shard = (double)(heap_after - heap_before) / (double)n_shards;

    if (!scheduler_check_consistency(&sched, map, &err))
        die("consistency", &err);

    /* ---- timed passes, interleaved so that both see the same cache and frequency state ---- */
    double best_dirty = 1e30;
    double best_base = 1e30;
    size_t dirty = 0;
    size_t walked = 0;
    for (int r = 0; r < BENCH_RUNS; r++) {
        t0 = now_ms();
        walked = baseline_pass(map);
        double b = now_ms() - t0;
        if (b < best_base)
            best_base = b;
        t0 = now_ms();
        dirty = shard_map_count_dirty(map, &nodes);
        double d = now_ms() - t0;
        if (d < best_dirty)
            best_dirty = d;
    }

    /* one node Offline: its shards' observed state is ignored, nothing else changes */
    node_set_get(&nodes, 1)->availability = NODE_AVAILABILITY_OFFLINE;
    double best_offline = 1e30;
    size_t dirty_offline = 0;
    for (int r = 0; r < BENCH_RUNS; r++) {
        t0 = now_ms();
        dirty_offline = shard_map_count_dirty(map, &nodes);
        double d = now_ms() - t0;
        if (d < best_offline)
            best_offline = d;
    }
    /* and rescheduling after that failure */
    memset(&stats, 0, sizeof(stats));
    t0 = now_ms();
    if (!scheduler_schedule_all(&sched, map, &stats, &err))
        die("reschedule", &err);
    double t_reschedule = now_ms() - t0;
    size_t moved = stats.changed;
    size_t dirty_after_failover = shard_map_count_dirty(map, &nodes);

    printf("shards: %zu (%zu tenants x %d) on %d nodes, placement {\"Attached\": 1}\n", n_shards,
           n_tenants, BENCH_SHARDS_PER_TENANT, BENCH_NODES);
    printf("memory: %.0f bytes per shard (heap %zu -> %zu bytes); budget %d: %.1f%% of it\n",
           per_shard, heap_before, heap_after, BENCH_BUDGET_BYTES,
           100.0 * per_shard / BENCH_BUDGET_BYTES);
    printf("build (tenants + shards): %.1f ms\n", t_build);
    printf("schedule all: %.1f ms (%.2f us per shard; %.0fx the baseline walk)\n", t_schedule,
           1e3 * t_schedule / (double)n_shards, t_schedule / best_base);
    printf("baseline walk (plain loop over the same shards): %.2f ms best of %d (%zu shards)\n",
           best_base, BENCH_RUNS, walked);
    printf("dirty pass, all clean: %.2f ms best of %d (%zu dirty); %.1fx the baseline\n",
           best_dirty, BENCH_RUNS, dirty, best_dirty / best_base);
    printf("dirty pass, node 1 Offline: %.2f ms best of %d (%zu dirty)\n", best_offline, BENCH_RUNS,
           dirty_offline);
    printf("reschedule after node 1 Offline: %.1f ms, %zu shards changed, %zu dirty after\n",
           t_reschedule, moved, dirty_after_failover);

    /* ---- teardown ---- */
    shard_map_iter_init(&it, map);
    while ((s = shard_map_iter_next(&it)) != NULL)
        scheduler_intent_clear(&sched, s);
    shard_map_free(map);
    node_set_finish(&nodes);
    return 0;
}
