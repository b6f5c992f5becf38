/*
 * node.c: the node enums' wire names, Node state and the NodeSet registry (sorted array of
 * individually allocated Nodes).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/fsm.h"
#include "shared/str.h"

#include "storcon/node.h"

static const char *const NODE_AVAILABILITY_NAMES[NODE_AVAILABILITY_COUNT] = {
    [NODE_AVAILABILITY_ACTIVE] = "Active",
    [NODE_AVAILABILITY_WARMING_UP] = "WarmingUp",
    [NODE_AVAILABILITY_OFFLINE] = "Offline",
};
static const NameTable NODE_AVAILABILITY_TABLE = {"node availability", NODE_AVAILABILITY_NAMES,
                                                  NODE_AVAILABILITY_COUNT};

static const char *const NODE_SCHEDULING_NAMES[NODE_SCHEDULING_COUNT] = {
    [NODE_SCHEDULING_ACTIVE] = "Active",
    [NODE_SCHEDULING_FILLING] = "Filling",
    [NODE_SCHEDULING_PAUSE] = "Pause",
    [NODE_SCHEDULING_PAUSE_FOR_RESTART] = "PauseForRestart",
    [NODE_SCHEDULING_DRAINING] = "Draining",
    [NODE_SCHEDULING_DELETING] = "Deleting",
};
static const NameTable NODE_SCHEDULING_TABLE = {"node scheduling policy", NODE_SCHEDULING_NAMES,
                                                NODE_SCHEDULING_COUNT};

/* NODE_SCHEDULING_FSM: how a node's scheduling policy may change. Drain, fill and delete
 * (service_drain.c) own Draining, Filling and Deleting; the operator's PUT .../config moves
 * between Active, Pause and PauseForRestart only. Restart rule (service_drain_resume): Draining
 * and Deleting resume their operation, Filling becomes Active, PauseForRestart stays. */
static const FsmTransition NODE_SCHEDULING_TRANSITIONS[] = {
    {NODE_SCHEDULING_ACTIVE, NODE_SCHEDULING_DRAINING, "drain"},
    {NODE_SCHEDULING_DRAINING, NODE_SCHEDULING_PAUSE_FOR_RESTART, "drained"},
    {NODE_SCHEDULING_DRAINING, NODE_SCHEDULING_ACTIVE, "drain cancelled / failed"},
    {NODE_SCHEDULING_ACTIVE, NODE_SCHEDULING_FILLING, "fill"},
    {NODE_SCHEDULING_PAUSE_FOR_RESTART, NODE_SCHEDULING_FILLING, "fill"},
    {NODE_SCHEDULING_FILLING, NODE_SCHEDULING_ACTIVE, "filled / cancelled / restart"},
    {NODE_SCHEDULING_ACTIVE, NODE_SCHEDULING_DELETING, "delete"},
    {NODE_SCHEDULING_PAUSE, NODE_SCHEDULING_DELETING, "delete"},
    {NODE_SCHEDULING_PAUSE_FOR_RESTART, NODE_SCHEDULING_DELETING, "delete"},
    {NODE_SCHEDULING_DELETING, NODE_SCHEDULING_ACTIVE, "delete cancelled / failed"},
    {NODE_SCHEDULING_ACTIVE, NODE_SCHEDULING_PAUSE, "config"},
    {NODE_SCHEDULING_PAUSE, NODE_SCHEDULING_ACTIVE, "config"},
    {NODE_SCHEDULING_PAUSE_FOR_RESTART, NODE_SCHEDULING_ACTIVE, "config"},
    {NODE_SCHEDULING_PAUSE_FOR_RESTART, NODE_SCHEDULING_PAUSE, "config"},
    {NODE_SCHEDULING_ACTIVE, NODE_SCHEDULING_PAUSE_FOR_RESTART, "config"},
    {NODE_SCHEDULING_PAUSE, NODE_SCHEDULING_PAUSE_FOR_RESTART, "config"},
};

static const int NODE_SCHEDULING_TERMINAL[] = {NODE_SCHEDULING_DELETING}; /* -> tombstone */

const FsmDef NODE_SCHEDULING_FSM = {
    .name = "node_scheduling",
    .doc = "docs/operations.md",
    .state_names = NODE_SCHEDULING_NAMES,
    .n_states = NODE_SCHEDULING_COUNT,
    .initial = NODE_SCHEDULING_ACTIVE,
    .terminal = NODE_SCHEDULING_TERMINAL,
    .n_terminal = FSM_COUNT(NODE_SCHEDULING_TERMINAL),
    .transitions = NODE_SCHEDULING_TRANSITIONS,
    .n_transitions = FSM_COUNT(NODE_SCHEDULING_TRANSITIONS),
    .log_info = true,
};
FSM_REGISTER(NODE_SCHEDULING_FSM)

bool node_set_scheduling(Node *n, NodeSchedulingPolicy to)
{
    if (n->scheduling == to)
        return true;
    char ctx[32];
    (void)str_printf(ctx, sizeof(ctx), "node %llu", (unsigned long long)n->id);
    return fsm_set_state(&NODE_SCHEDULING_FSM, &n->scheduling, to, ctx);
}

static const char *const NODE_LIFECYCLE_NAMES[NODE_LIFECYCLE_COUNT] = {
    [NODE_LIFECYCLE_ACTIVE] = "active",
    [NODE_LIFECYCLE_DELETED] = "deleted",
};
static const NameTable NODE_LIFECYCLE_TABLE = {"node lifecycle", NODE_LIFECYCLE_NAMES,
                                               NODE_LIFECYCLE_COUNT};

/* ---- node availability, scheduling policy, lifecycle ---- */

const char *node_availability_name(NodeAvailability a)
{
    return name_table_name(&NODE_AVAILABILITY_TABLE, (int)a);
}

bool node_availability_parse(const char *s, NodeAvailability *out, Err *err)
{
    int v = 0;
    if (!name_table_parse(&NODE_AVAILABILITY_TABLE, s, &v, err))
        return false;
    *out = (NodeAvailability)v;
    return true;
}

bool node_availability_from_json(const json_t *v, NodeAvailability *out, Err *err)
{
    int x = 0;
    if (!name_table_from_json(&NODE_AVAILABILITY_TABLE, v, &x, err))
        return false;
    *out = (NodeAvailability)x;
    return true;
}

json_t *node_availability_to_json(NodeAvailability a)
{
    return name_table_to_json(&NODE_AVAILABILITY_TABLE, (int)a);
}

const char *node_scheduling_policy_name(NodeSchedulingPolicy p)
{
    return name_table_name(&NODE_SCHEDULING_TABLE, (int)p);
}

bool node_scheduling_policy_parse(const char *s, NodeSchedulingPolicy *out, Err *err)
{
    int v = 0;
    if (!name_table_parse(&NODE_SCHEDULING_TABLE, s, &v, err))
        return false;
    *out = (NodeSchedulingPolicy)v;
    return true;
}

bool node_scheduling_policy_from_json(const json_t *v, NodeSchedulingPolicy *out, Err *err)
{
    int x = 0;
    if (!name_table_from_json(&NODE_SCHEDULING_TABLE, v, &x, err))
        return false;
    *out = (NodeSchedulingPolicy)x;
    return true;
}

json_t *node_scheduling_policy_to_json(NodeSchedulingPolicy p)
{
    return name_table_to_json(&NODE_SCHEDULING_TABLE, (int)p);
}

const char *node_lifecycle_name(NodeLifecycle l)
{
    return name_table_name(&NODE_LIFECYCLE_TABLE, (int)l);
}

bool node_lifecycle_parse(const char *s, NodeLifecycle *out, Err *err)
{
    int v = 0;
    if (!name_table_parse(&NODE_LIFECYCLE_TABLE, s, &v, err))
        return false;
    *out = (NodeLifecycle)v;
    return true;
}

/* ---- nodes ---- */

void node_init(Node *n, NodeId id)
{
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->scheduling = NODE_SCHEDULING_ACTIVE;
    n->lifecycle = NODE_LIFECYCLE_ACTIVE;
    n->availability = NODE_AVAILABILITY_OFFLINE;
}

/* check_text: a registration string that is non-empty (unless allow_empty) and fits in cap. */
static bool check_text(const char *field, const char *s, size_t cap, bool allow_empty, Err *err)
{
    if (s == NULL || (!allow_empty && s[0] == '\0')) {
        err_set(err, ERR_BAD_REQUEST, "field \"%s\": must not be empty", field);
        return false;
    }
    if (strlen(s) >= cap) {
        err_set(err, ERR_BAD_REQUEST, "field \"%s\": longer than %zu characters", field, cap - 1);
        return false;
    }
    return true;
}

bool node_set_registration(Node *n, const char *http_addr, uint16_t http_port, const char *pg_addr,
                           uint16_t pg_port, uint16_t https_port, const char *az, Err *err)
{
    if (!check_text("listen_http_addr", http_addr, HOST_MAX, false, err) ||
        !check_text("listen_pg_addr", pg_addr, HOST_MAX, false, err) ||
        !check_text("availability_zone_id", az, NODE_AZ_SIZE, true, err))
        return false;
    if (http_port == 0 || pg_port == 0) {
        err_set(err, ERR_BAD_REQUEST, "field \"%s\": must not be 0",
                http_port == 0 ? "listen_http_port" : "listen_pg_port");
        return false;
    }
    str_copy(n->listen_http_addr, sizeof(n->listen_http_addr), http_addr);
    str_copy(n->listen_pg_addr, sizeof(n->listen_pg_addr), pg_addr);
    str_copy(n->az, sizeof(n->az), az);
    n->listen_http_port = http_port;
    n->listen_pg_port = pg_port;
    n->listen_https_port = https_port;
    return true;
}

bool node_same_registration(const Node *a, const Node *b)
{
    return a->id == b->id && strcmp(a->listen_http_addr, b->listen_http_addr) == 0 &&
           strcmp(a->listen_pg_addr, b->listen_pg_addr) == 0 &&
           a->listen_http_port == b->listen_http_port && a->listen_pg_port == b->listen_pg_port &&
           a->listen_https_port == b->listen_https_port && strcmp(a->az, b->az) == 0;
}

bool node_is_available(const Node *n)
{
    return n->availability == NODE_AVAILABILITY_ACTIVE ||
           n->availability == NODE_AVAILABILITY_WARMING_UP;
}

bool node_is_schedulable(const Node *n)
{
    return n->availability == NODE_AVAILABILITY_ACTIVE && n->lifecycle == NODE_LIFECYCLE_ACTIVE &&
           (n->scheduling == NODE_SCHEDULING_ACTIVE || n->scheduling == NODE_SCHEDULING_FILLING);
}

NodeAvailability node_record_heartbeat(Node *n, uint64_t utilization_score,
                                       uint64_t max_shard_count, int64_t now_ms)
{
    NodeAvailability before = n->availability;
    n->availability = NODE_AVAILABILITY_ACTIVE;
    n->utilization_score = utilization_score;
    n->max_shard_count = max_shard_count;
    n->last_heartbeat_ms = now_ms;
    return before;
}

uint64_t node_utilization_score(const Node *n)
{
    if (n->max_shard_count == 0)
        return n->utilization_score;
    uint64_t known = (uint64_t)n->shard_count + n->attached_reserved;
    uint64_t shard_score = known * 1000000u / n->max_shard_count;
    return shard_score > n->utilization_score ? shard_score : n->utilization_score;
}

bool node_heartbeat_overdue(const Node *n, int64_t now_ms, int64_t timeout_ms)
{
    if (n->last_heartbeat_ms == 0)
        return true;
    return now_ms - n->last_heartbeat_ms >= timeout_ms;
}

json_t *node_to_json(const Node *n)
{
    json_t *j = json_pack("{s:I, s:o, s:o, s:s, s:s, s:i, s:s, s:i}", "id", (json_int_t)n->id,
                          "availability", node_availability_to_json(n->availability), "scheduling",
                          node_scheduling_policy_to_json(n->scheduling), "availability_zone_id",
                          n->az, "listen_http_addr", n->listen_http_addr, "listen_http_port",
                          (int)n->listen_http_port, "listen_pg_addr", n->listen_pg_addr,
                          "listen_pg_port", (int)n->listen_pg_port);
    if (j == NULL)
        abort();
    if (n->listen_https_port != 0)
        json_object_set_new(j, "listen_https_port", json_integer(n->listen_https_port));
    return j;
}

/* ---- NodeSet ---- */

void node_set_init(NodeSet *set)
{
    set->nodes = NULL;
    set->n = 0;
    set->cap = 0;
}

void node_set_finish(NodeSet *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->nodes[i]);
    free(set->nodes);
    node_set_init(set);
}

/* lower_bound: the first position whose id is >= id. */
static size_t lower_bound(const NodeSet *set, NodeId id)
{
    size_t lo = 0;
    size_t hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->nodes[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool node_set_add(NodeSet *set, const Node *node, Node **out, Err *err)
{
    if (node->id == NODE_ID_NONE) {
        err_set(err, ERR_BAD_REQUEST, "invalid node id");
        return false;
    }
    size_t pos = lower_bound(set, node->id);
    if (pos < set->n && set->nodes[pos]->id == node->id) {
        err_set(err, ERR_CONFLICT, "node %llu already exists", (unsigned long long)node->id);
        return false;
    }
    if (set->n == set->cap) {
        set->cap = set->cap == 0 ? 8 : set->cap * 2;
        set->nodes = xrealloc(set->nodes, set->cap * sizeof(*set->nodes));
    }
    Node *copy = xmalloc(sizeof(*copy));
    *copy = *node;
    memmove(&set->nodes[pos + 1], &set->nodes[pos], (set->n - pos) * sizeof(*set->nodes));
    set->nodes[pos] = copy;
    set->n++;
    if (out != NULL)
        *out = copy;
    return true;
}

Node *node_set_get(const NodeSet *set, NodeId id)
{
    size_t pos = lower_bound(set, id);
    if (pos < set->n && set->nodes[pos]->id == id)
        return set->nodes[pos];
    return NULL;
}

ptrdiff_t node_set_index(const NodeSet *set, NodeId id)
{
    size_t pos = lower_bound(set, id);
    if (pos < set->n && set->nodes[pos]->id == id)
        return (ptrdiff_t)pos;
    return -1;
}

bool node_set_remove(NodeSet *set, NodeId id, Err *err)
{
    ptrdiff_t pos = node_set_index(set, id);
    if (pos < 0) {
        err_set(err, ERR_NOT_FOUND, "node %llu not found", (unsigned long long)id);
        return false;
    }
    Node *n = set->nodes[pos];
    if (n->shard_count != 0) {
        err_set(err, ERR_CONFLICT, "node %llu still holds %u shard locations",
                (unsigned long long)id, n->shard_count);
        return false;
    }
    free(n);
    size_t p = (size_t)pos;
    memmove(&set->nodes[p], &set->nodes[p + 1], (set->n - p - 1) * sizeof(*set->nodes));
    set->n--;
    return true;
}

bool node_set_is_available(const NodeSet *set, NodeId id)
{
    const Node *n = node_set_get(set, id);
    return n != NULL && node_is_available(n);
}
