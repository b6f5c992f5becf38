/*
 * node.h: the controller's view of one pageserver (Node) and the registry of all of them
 * (NodeSet). Loop-thread data, no locks.
 *
 * A Node holds what registration gave (id, addresses, AZ), what the operator set (scheduling
 * policy, lifecycle), what heartbeats report (availability, utilization score, time of the last
 * good heartbeat), and two counters that ONLY the scheduler changes (storcon/scheduler.h): how
 * many shard locations the intent places on the node (attached + secondary) and how many of those
 * are attached. Everything else may be written directly by its owner (heartbeats, node config API).
 *
 * The node enums (availability, scheduling policy, lifecycle) and their wire names live here too:
 *   NodeAvailability      "Active" | "WarmingUp" | "Offline"  (not persisted)
 *   NodeSchedulingPolicy  "Active" | "Filling" | "Pause" | "PauseForRestart" | "Draining" |
 *                         "Deleting"  (nodes.scheduling_policy, as the bare name)
 *   NodeLifecycle         "active" | "deleted"  (nodes.lifecycle)
 * Parsers take the exact spelling only and fail with 400 naming the bad value (placement.h's name
 * tables).
 *
 * Predicates used by scheduling and reconciliation:
 *   available   availability Active or WarmingUp (the node answers; observed state on it counts)
 *   schedulable available Active, policy Active or Filling, lifecycle active (may receive new
 *               locations)
 *
 * NodeSet keeps Nodes sorted by id, each Node in its own allocation so that Node pointers stay
 * valid until that node is removed. Lookup by id is a binary search (node counts are small).
 */
#ifndef STORCON_NODE_H
#define STORCON_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/fsm.h"
#include "shared/id.h"
#include "shared/str.h"
#include "storcon/placement.h"

/* ---- node availability (from heartbeats; not persisted) ---- */

typedef enum NodeAvailability {
    NODE_AVAILABILITY_ACTIVE,     /* answering heartbeats */
    NODE_AVAILABILITY_WARMING_UP, /* re-attached, waiting for its next good heartbeat */
    NODE_AVAILABILITY_OFFLINE,    /* no good heartbeat for the offline timeout (or never) */
    NODE_AVAILABILITY_COUNT
} NodeAvailability;

const char *node_availability_name(NodeAvailability a);
bool node_availability_parse(const char *s, NodeAvailability *out, Err *err) MUST_CHECK;
bool node_availability_from_json(const json_t *v, NodeAvailability *out, Err *err) MUST_CHECK;
json_t *node_availability_to_json(NodeAvailability a); /* new reference */

/* ---- node scheduling policy (operator controlled; persisted) ---- */

typedef enum NodeSchedulingPolicy {
    NODE_SCHEDULING_ACTIVE,            /* takes new shards */
    NODE_SCHEDULING_FILLING,           /* a fill is moving shards onto it; takes new shards */
    NODE_SCHEDULING_PAUSE,             /* keeps its shards, takes no new ones */
    NODE_SCHEDULING_PAUSE_FOR_RESTART, /* drained, waiting for a restart */
    NODE_SCHEDULING_DRAINING,          /* a drain is moving its shards away */
    NODE_SCHEDULING_DELETING,          /* graceful delete in progress */
    NODE_SCHEDULING_COUNT
} NodeSchedulingPolicy;

const char *node_scheduling_policy_name(NodeSchedulingPolicy p);
bool node_scheduling_policy_parse(const char *s, NodeSchedulingPolicy *out, Err *err) MUST_CHECK;
bool node_scheduling_policy_from_json(const json_t *v, NodeSchedulingPolicy *out,
                                      Err *err) MUST_CHECK;
json_t *node_scheduling_policy_to_json(NodeSchedulingPolicy p); /* new reference */

/* NODE_SCHEDULING_FSM: the allowed policy changes (shared/fsm.h; table in node.c, diagram in
 * docs/operations.md). node_set_scheduling: change n->scheduling through it (same policy: no-op,
 * true); false (logged, unchanged) for a change the table does not allow. */
extern const FsmDef NODE_SCHEDULING_FSM;
struct Node;
bool node_set_scheduling(struct Node *n, NodeSchedulingPolicy to);

/* ---- node lifecycle (persisted; a deleted node is a tombstone that may not register again) ----
 */

typedef enum NodeLifecycle {
    NODE_LIFECYCLE_ACTIVE,
    NODE_LIFECYCLE_DELETED,
    NODE_LIFECYCLE_COUNT
} NodeLifecycle;

const char *node_lifecycle_name(NodeLifecycle l);
bool node_lifecycle_parse(const char *s, NodeLifecycle *out, Err *err) MUST_CHECK;

/* ---- nodes ---- */

/* "No node" in intents and generation_pageserver. Never a valid id: ids arrive as JSON integers,
 * which top out at INT64_MAX. */
#define NODE_ID_NONE UINT64_MAX

/* Capacity of an availability zone id, NUL included. */
#define NODE_AZ_SIZE 64

typedef struct Node {
    NodeId id;
    /* registration */
    char listen_http_addr[HOST_MAX];
    char listen_pg_addr[HOST_MAX];
    uint16_t listen_http_port;
    uint16_t listen_pg_port;
    uint16_t listen_https_port; /* 0 = none */
    char az[NODE_AZ_SIZE];      /* availability_zone_id */
    /* operator state (persisted) */
    NodeSchedulingPolicy scheduling;
    NodeLifecycle lifecycle;
    /* heartbeat state (memory only) */
    NodeAvailability availability;
    uint64_t utilization_score; /* from GET /v1/utilization; lower = emptier */
    uint64_t max_shard_count;   /* from the same answer; 0 = not reported */
    int64_t last_heartbeat_ms;  /* monotonic ms of the last good heartbeat; 0 = never */
    /* maintained by the scheduler only (intent reference counts) */
    uint32_t shard_count;       /* locations in intents: attached + secondary */
    uint32_t attached_count;    /* of which attached */
    uint32_t attached_reserved; /* attached locations picked for tenants being created, not yet
                                   in an intent (scheduler_reserve_new_tenant) */
} Node;

/* node_init: a fresh node `id` with empty addresses: Offline (until a heartbeat succeeds, spec
 * "New nodes start Offline"), scheduling Active, lifecycle active, counters 0. */
void node_init(Node *n, NodeId id);

/* node_set_registration: copy and check the registration fields: addresses non-empty and shorter
 * than HOST_MAX, ports non-zero (https_port may be 0), az shorter than NODE_AZ_SIZE. 400 naming
 * the field otherwise; *n is unchanged on failure. */
bool node_set_registration(Node *n, const char *http_addr, uint16_t http_port, const char *pg_addr,
                           uint16_t pg_port, uint16_t https_port, const char *az,
                           Err *err) MUST_CHECK;

/* node_same_registration: equal id, addresses, ports and AZ (a repeated registration is a no-op;
 * a different one is a 409). */
bool node_same_registration(const Node *a, const Node *b);

/* node_is_available: Active or WarmingUp. */
bool node_is_available(const Node *n);

/* node_is_schedulable: may receive new shard locations (see the file comment). */
bool node_is_schedulable(const Node *n);

/* node_record_heartbeat: a good heartbeat at now_ms with this utilization score and the node's
 * max_shard_count (0 when it reports none): the node becomes Active (from Offline or WarmingUp).
 * Returns the availability it had before, so that the caller can react to a node coming back. */
NodeAvailability node_record_heartbeat(Node *n, uint64_t utilization_score,
                                       uint64_t max_shard_count, int64_t now_ms);

/* node_utilization_score: the score the scheduler ranks the node by: the last heartbeat's score,
 * raised to the shard-count score (locations in intents and reserved ones, per max_shard_count,
 * 1,000,000 = full) when the scheduler knows of more shards there than that heartbeat counted.
 * Heartbeats come every few seconds; without this, every create between two of them would go to
 * the node that was emptiest at the last one. */
uint64_t node_utilization_score(const Node *n);

/* node_heartbeat_overdue: no good heartbeat in the timeout_ms before now_ms (a node that never
 * answered is overdue). The heartbeat loop marks such a node Offline. */
bool node_heartbeat_overdue(const Node *n, int64_t now_ms, int64_t timeout_ms);

/* node_to_json: NodeDescribe {"id", "availability", "scheduling", "availability_zone_id",
 * "listen_http_addr", "listen_http_port", "listen_pg_addr", "listen_pg_port"} plus
 * "listen_https_port" when set. A new reference the caller owns. */
json_t *node_to_json(const Node *n);

/* ---- NodeSet ---- */

typedef struct NodeSet {
    Node **nodes; /* sorted by id; each element owned by the set */
    size_t n;
    size_t cap;
} NodeSet;

void node_set_init(NodeSet *set);
/* node_set_finish: free every Node (pointers into the set become invalid). */
void node_set_finish(NodeSet *set);

/* node_set_add: insert a copy of *node. 409 when the id exists (compare registrations with
 * node_set_get + node_same_registration first for the idempotent case); 400 for NODE_ID_NONE.
 * *out (may be NULL) points at the stored Node, owned by the set. */
bool node_set_add(NodeSet *set, const Node *node, Node **out, Err *err) MUST_CHECK;

/* node_set_get: the node with this id, or NULL. The pointer is valid until the node is removed. */
Node *node_set_get(const NodeSet *set, NodeId id);

/* node_set_index: position of id in id order, or -1. For arrays indexed like the set. */
ptrdiff_t node_set_index(const NodeSet *set, NodeId id);

/* node_set_remove: forget a node and free it. 404 when unknown; 409 while any intent still
 * references it (shard_count > 0): reschedule its shards first. */
bool node_set_remove(NodeSet *set, NodeId id, Err *err) MUST_CHECK;

static inline size_t node_set_count(const NodeSet *set)
{
    return set->n;
}

/* node_set_at: the i-th node in id order (i < node_set_count). */
static inline Node *node_set_at(const NodeSet *set, size_t i)
{
    return set->nodes[i];
}

/* node_set_is_available: the node exists and is available. Unknown nodes are not available. */
bool node_set_is_available(const NodeSet *set, NodeId id);

#endif
