/*
 * scheduler.h: where tenant shards should live (spec/storcon.md "Scheduling"). Pure loop-thread
 * code: it changes intents and node counters in memory and never calls anything remote.
 *
 * Node state the scheduler uses: each Node's shard_count / attached_count (reference counts of
 * intents, maintained here and nowhere else), its AZ, utilization score and node_is_schedulable
 * (storcon/node.h). Every intent change goes through the functions below, which keep the counts
 * exact; scheduler_check_consistency recomputes them from the shard map and compares.
 *
 * Choosing a node (lower wins, compared in this order):
 *   attached:  AZ (0 when the node is in the tenant's preferred AZ or there is none, else 1),
 *              affinity (locations of the tenant's shards already on the node, from the
 *              ScheduleContext), utilization score, attached count, node id
 *   secondary: AZ (0 when the node's AZ differs from the attached node's; with no attached
 *              node, the preferred-AZ rule above), affinity, utilization score, shard count,
 *              node id. (Shard count rather than attached count: placing a secondary never
 *              changes attached counts, so ranking by them would stack secondaries.)
 * Only schedulable nodes are candidates, and never a node the shard already uses.
 *
 * scheduler_schedule_shard makes a shard's intent satisfy its tenant's placement policy with as
 * few moves as possible:
 *   Attached(n)  keep the attached node while it is registered, not deleted and not Offline
 *                (Pause, Draining etc. keep their shards: moving away from them is the job of
 *                drain / delete); otherwise promote the best schedulable secondary, or else
 *                pick a new node (the old attached is dropped only once a replacement is
 *                found). Then drop secondaries above n (those on missing / deleted nodes first,
 *                then unschedulable ones) and add secondaries up to n. Secondaries on Offline
 *                nodes are kept (the node usually comes back; the dirty rule ignores it meanwhile).
 *   Secondary    no attached (a usable attached node becomes the secondary), exactly one
 *                secondary.
 *   Detached     nothing.
 * Shards whose scheduling policy is Pause or Stop are left unchanged (tenant_shard.h contract).
 * When no schedulable node is available for a location that is needed, the function still makes
 * every other change and fails with ERR_UNAVAILABLE "no schedulable nodes"; call it again later.
 *
 * ScheduleContext: the affinity of one tenant while its shards are scheduled one after another,
 * so that a tenant's shards spread across nodes. Fill it with every shard of the tenant
 * (schedule_context_add_shard, or use scheduler_schedule_tenant which does it all), then call
 * scheduler_schedule_shard per shard with it: each call applies that shard's intent changes to
 * the context.
 */
#ifndef STORCON_SCHEDULER_H
#define STORCON_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/node.h"
#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

typedef struct Scheduler {
    NodeSet *nodes; /* borrowed: the controller's node registry */
} Scheduler;

/* scheduler_init: a scheduler over nodes (which must outlive it). Node counters are taken as they
 * are: all zero for a fresh start, or use scheduler_recount after loading intents some other
 * way. */
void scheduler_init(Scheduler *sched, NodeSet *nodes);

/* ---- per-tenant affinity ---- */

typedef struct ScheduleAffinity {
    NodeId node;
    uint32_t locations; /* the tenant's locations (attached + secondary) on the node */
    uint32_t attached;  /* of which attached */
} ScheduleAffinity;

typedef struct ScheduleContext {
    ScheduleAffinity *entries; /* heap; freed by schedule_context_finish */
    size_t n;
    size_t cap;
} ScheduleContext;

void schedule_context_init(ScheduleContext *ctx);
void schedule_context_finish(ScheduleContext *ctx);
/* schedule_context_add_shard: count the shard's current intent locations. */
void schedule_context_add_shard(ScheduleContext *ctx, const TenantShard *shard);
/* schedule_context_locations / _attached: the counts on node (0 when none). */
uint32_t schedule_context_locations(const ScheduleContext *ctx, NodeId node);
uint32_t schedule_context_attached(const ScheduleContext *ctx, NodeId node);

/* ---- scheduling ---- */

/* scheduler_schedule_shard: see the file comment. ctx may be NULL (no affinity). *changed (may be
 * NULL) says whether the intent changed (also on failure, which may be partial). */
bool scheduler_schedule_shard(Scheduler *sched, TenantShard *shard, ScheduleContext *ctx,
                              bool *changed, Err *err) MUST_CHECK;

typedef struct ScheduleStats {
    size_t scheduled; /* shards looked at (Pause/Stop ones included) */
    size_t changed;   /* shards whose intent changed */
    size_t failed;    /* shards for which scheduling failed */
} ScheduleStats;

/* scheduler_schedule_tenant: every shard of tenant in shard order, with one context. Continues
 * after a failure; false with the first failure in err when any failed. stats (may be NULL) are
 * added to, not reset. */
bool scheduler_schedule_tenant(Scheduler *sched, Tenant *tenant, ScheduleStats *stats,
                               Err *err) MUST_CHECK;

/* scheduler_schedule_all: scheduler_schedule_tenant for every tenant of map (e.g. after a node
 * went Offline, or at startup after intents were rebuilt). Same failure rule. */
bool scheduler_schedule_all(Scheduler *sched, ShardMap *map, ScheduleStats *stats,
                            Err *err) MUST_CHECK;

/* scheduler_pick_az: an AZ for a new tenant: of the AZs that have schedulable nodes, the one
 * with the fewest attached locations per schedulable node (ties: the smaller name), into out.
 * False (out = "") when no node is schedulable. */
bool scheduler_pick_az(const Scheduler *sched, char out[NODE_AZ_SIZE]);

/* scheduler_pick_attached: the schedulable node, not used by shard yet, that scores best for an
 * attached location (the order in the file comment; ctx may be NULL); NODE_ID_NONE when none.
 * scheduler_pick_promotable_secondary: the shard's secondary on a schedulable node that scores
 * best as attached; NODE_ID_NONE when none. Neither changes anything (drain, fill, optimiser). */
NodeId scheduler_pick_attached(const Scheduler *sched, const TenantShard *shard,
                               const ScheduleContext *ctx);
NodeId scheduler_pick_promotable_secondary(const Scheduler *sched, const TenantShard *shard,
                                           const ScheduleContext *ctx);

/* scheduler_reserve_new_tenant: the attached nodes of the n_shards shards of a tenant whose rows
 * are not inserted yet (preferred_az NULL or "": none), into out[0..n_shards): picked in shard
 * order with one context, by the order of scheduler_pick_attached, so that the shards spread. Each
 * pick is reserved (counted as attached load by later picks, Node.attached_reserved) until
 * scheduler_release_reserved: the creates of one loop pass spread over the nodes instead of all
 * taking the least loaded one. False (nothing reserved) when a shard finds no schedulable node. */
bool scheduler_reserve_new_tenant(Scheduler *sched, const char *preferred_az, size_t n_shards,
                                  NodeId *out) MUST_CHECK;
/* scheduler_release_reserved: end the reservations of nodes[0..n) (nodes since removed are
 * skipped). */
void scheduler_release_reserved(Scheduler *sched, const NodeId *nodes, size_t n);

/* ---- explicit intent changes (operator actions, startup rebuild, migrations) ----
 * These ignore scheduling policies and schedulability: the caller decided. Each keeps node
 * counters exact and bumps the shard's sequence when something changed. */

/* scheduler_intent_set_attached: attach to node (404 when not registered). A secondary on that
 * node is promoted (removed from the secondaries). The previous attached node is dropped.
 * NODE_ID_NONE clears the attached location. */
bool scheduler_intent_set_attached(Scheduler *sched, TenantShard *shard, NodeId node,
                                   Err *err) MUST_CHECK;

/* scheduler_intent_add_secondary: add a secondary on node. 404 unknown node, 409 when the shard
 * already uses the node or has TENANT_SHARD_MAX_SECONDARIES secondaries. */
bool scheduler_intent_add_secondary(Scheduler *sched, TenantShard *shard, NodeId node,
                                    Err *err) MUST_CHECK;

/* scheduler_intent_demote_attached: the attached location becomes a secondary on the same node
 * (a live migration's origin). False when there is no attached location or no room. */
bool scheduler_intent_demote_attached(Scheduler *sched, TenantShard *shard);

/* scheduler_intent_remove_node: drop whatever the intent has on node; true if it had something. */
bool scheduler_intent_remove_node(Scheduler *sched, TenantShard *shard, NodeId node);

/* scheduler_intent_clear: drop the whole intent (before removing the shard, or detaching it). */
void scheduler_intent_clear(Scheduler *sched, TenantShard *shard);

/* ---- introspection ---- */

typedef struct SchedulerNodeCounts {
    NodeId node;
    uint32_t shard_count;
    uint32_t attached_count;
    bool schedulable;
    const char *az; /* borrowed from the Node */
} SchedulerNodeCounts;

/* scheduler_node_shard_counts: one entry per node in id order, at most cap of them into out;
 * returns the number of nodes (which may exceed cap). */
size_t scheduler_node_shard_counts(const Scheduler *sched, SchedulerNodeCounts *out, size_t cap);

/* scheduler_to_json: {"nodes": [{"node_id", "shard_count", "attached_count", "schedulable",
 * "availability_zone_id", "utilization_score"}]} for GET /debug/v1/scheduler. New reference, the
 * caller owns it. */
json_t *scheduler_to_json(const Scheduler *sched);

/* scheduler_check_consistency: recompute every node's counts from the intents in map and compare
 * them with the nodes' counters; also check that intents reference only registered nodes and
 * hold no duplicates. ERR_INTERNAL describing the first few mismatches otherwise. */
bool scheduler_check_consistency(const Scheduler *sched, const ShardMap *map, Err *err) MUST_CHECK;

/* scheduler_recount: set every node's counters from the intents in map (recovery; the consistency
 * check is the way to find out whether it is needed). Intents on unregistered nodes are not
 * counted. */
void scheduler_recount(Scheduler *sched, const ShardMap *map);

#endif
