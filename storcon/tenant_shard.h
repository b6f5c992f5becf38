/*
 * tenant_shard.h: the in-memory state of one tenant shard (spec/storcon.md "Reconciliation").
 *
 * Per shard: its id, scheduling policy, the latest generation issued and the node it was issued
 * to, the intent (where it should be: one attached node, up to PLACEMENT_MAX_SECONDARIES
 * secondaries), the observed state (what each pageserver is believed to hold: a summary of the
 * LocationConfig last known to be there, or "unknown"), a sequence number, the handle of at most
 * one running reconcile, flags and the last reconcile error. What all shards of a tenant share
 * (stripe size, placement policy, preferred AZ, config) lives once in the Tenant
 * (storcon/shard_map.h), reached through shard->tenant.
 *
 * Sized for 100,000 shards per controller: a TenantShard is a fixed ~190-byte struct with node ids
 * (not strings) in fixed arrays; up to TENANT_SHARD_OBSERVED_INLINE observed locations are kept
 * inline, more spill into a heap array only when needed; the last error is the one string, and
 * it is allocated only while an error is recorded. TenantShards live in the ShardMap's slabs:
 * create and destroy them through shard_map.h, not on your own.
 *
 * Ownership rules (the struct is public for speed; respect these):
 *  - intent: written ONLY through scheduler_intent_* / scheduler_schedule_shard
 *    (storcon/scheduler.h), which keep the nodes' reference counts right. Read it freely.
 *  - observed: through tenant_shard_observed_*.
 *  - reconciler: set and cleared by the reconciler module (opaque here; at most one at a time).
 *  - generation: written after the database increment returned it (write the database first).
 *
 * Observed semantics: no entry for a node = the node is believed to hold nothing; an entry with
 * known = false = we do not know (a call is in flight, failed, or the node was offline); a known
 * entry = the mode / generation / warm last written to or read from that node.
 *
 * Dirty (tenant_shard_is_dirty): the shard needs a reconcile when, on any AVAILABLE node (Active
 * or WarmingUp: observed state on an Offline node is not acted upon),
 *   - the intent's attached node is not observed AttachedSingle with the shard's generation,
 *   - an intent secondary node is not observed Secondary with warm = true,
 *   - a node outside the intent has an observed entry other than known Detached (it must be
 *     detached, or its unknown state learnt),
 * or when a compute notification is pending, or the shard was marked dirty explicitly (a change
 * the observed summary cannot show, e.g. a new tenant config to push).
 *
 * Scheduling-policy contract (callers honour it; the predicates below encode it):
 *   Active     scheduled, reconciled, optimised
 *   Essential  scheduled (failover and filling missing locations) and reconciled; never optimised
 *   Pause      intent frozen: scheduler_schedule_shard leaves it as it is, even on a dead node;
 *              the reconciler may still drive pageservers to the frozen intent
 *   Stop       intent frozen and no pageserver calls at all: the reconciler must not start
 * Explicit operator actions (migrate, node delete) use scheduler_intent_* directly and are not
 * subject to the scheduling policy.
 */
#ifndef STORCON_TENANT_SHARD_H
#define STORCON_TENANT_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/node.h"
#include "storcon/placement.h"

struct Tenant; /* storcon/tenant.h */

#define TENANT_SHARD_MAX_SECONDARIES PLACEMENT_MAX_SECONDARIES
#define TENANT_SHARD_OBSERVED_INLINE 4
#define TENANT_SHARD_LAST_ERROR_MAX  512  /* longer messages are cut */
#define TENANT_SHARD_MAX_OBSERVED    1024 /* more observed locations than this: a bug */

/* Flags (TenantShard.flags). */
#define TENANT_SHARD_PENDING_NOTIFY 0x01u /* a compute notification must still be sent */
#define TENANT_SHARD_FORCE_DIRTY    0x02u /* reconcile even if observed matches the intent */
#define TENANT_SHARD_IMPORTING      0x04u /* a timeline import runs (describe "is_importing") */
/* The generation was issued to generation_pageserver by the insert that created the shard (tenant
 * create) and no reconcile has used it yet: the first one attaches there without a bump. */
#define TENANT_SHARD_GENERATION_UNUSED 0x08u

/* Where the shard should be. secondaries[0..n_secondaries) are distinct and never equal to
 * attached. */
typedef struct ShardIntent {
    NodeId attached; /* NODE_ID_NONE: none */
    NodeId secondaries[TENANT_SHARD_MAX_SECONDARIES];
    uint8_t n_secondaries;
} ShardIntent;

/* One node's observed state, as callers see it. */
typedef struct ObservedState {
    bool known;             /* false: unknown; the other fields are then meaningless */
    ShardLocationMode mode; /* known only */
    Generation generation;  /* attached modes: the generation there; GENERATION_NONE otherwise */
    bool secondary_warm;    /* Secondary only */
} ObservedState;

/* Compact storage of one observed entry (16 bytes). Use tenant_shard_observed_* to read it. */
typedef struct ObservedSlot {
    NodeId node;
    uint32_t generation; /* unless flags & OBSERVED_SLOT_GEN_NONE */
    uint8_t mode;        /* ShardLocationMode, or OBSERVED_SLOT_UNKNOWN */
    uint8_t flags;       /* OBSERVED_SLOT_* */
} ObservedSlot;

#define OBSERVED_SLOT_UNKNOWN  0xffu
#define OBSERVED_SLOT_GEN_NONE 0x01u
#define OBSERVED_SLOT_WARM     0x02u

typedef enum IntentRole {
    INTENT_ROLE_NONE,      /* the intent has nothing on the node */
    INTENT_ROLE_ATTACHED,  /* the attached location */
    INTENT_ROLE_SECONDARY, /* a secondary location */
    INTENT_ROLE_COUNT
} IntentRole;

typedef struct TenantShard {
    TenantShardId tsid;
    uint8_t scheduling;  /* ShardSchedulingPolicy */
    uint8_t flags;       /* TENANT_SHARD_* */
    uint8_t splitting;   /* 0 idle, 1 splitting (tenant_shards.splitting) */
    uint16_t n_observed; /* observed entries: inline first, then observed_more */
    uint16_t observed_more_cap;
    struct Tenant *tenant;        /* shared per-tenant data; NULL only for a free slab slot */
    Generation generation;        /* latest issued (database first); GENERATION_NONE: none yet */
    NodeId generation_pageserver; /* node it was issued to; NODE_ID_NONE: none */
    uint64_t sequence;            /* bumped by every intent or generation change, and by
                                     tenant_shard_mark_dirty: a reconcile started at sequence s is
                                     stale once the shard's sequence is > s */
    ShardIntent intent;
    ObservedSlot observed[TENANT_SHARD_OBSERVED_INLINE];
    ObservedSlot *observed_more; /* entries beyond the inline ones; NULL when none */
    void *reconciler;            /* the running reconcile, owned by the reconciler; NULL: none */
    char *last_error;            /* NULL: none; owned by the shard */
} TenantShard;

/* tenant_shard_init: a shard with no intent, no observed state, scheduling Active, no generation.
 * shard_map.h calls it; other code gets shards from the map. */
void tenant_shard_init(TenantShard *s, const TenantShardId *tsid, struct Tenant *tenant);

/* tenant_shard_finish: free the observed overflow and the last error. Does NOT touch the node
 * counters: clear the intent with scheduler_intent_clear first when the scheduler still counts
 * it. */
void tenant_shard_finish(TenantShard *s);

/* ---- per-tenant data, through shard->tenant ---- */

uint32_t tenant_shard_stripe_size(const TenantShard *s);
PlacementPolicy tenant_shard_policy(const TenantShard *s);
const char *tenant_shard_preferred_az(const TenantShard *s); /* "" = none; borrowed */
const char *tenant_shard_config_json(const TenantShard *s);  /* borrowed from the Tenant */

/* ---- intent (read only here; write through storcon/scheduler.h) ---- */

static inline NodeId tenant_shard_attached(const TenantShard *s)
{
    return s->intent.attached;
}

/* tenant_shard_intent_role: what the intent places on node. */
IntentRole tenant_shard_intent_role(const TenantShard *s, NodeId node);

/* tenant_shard_intent_is_empty: nothing attached, no secondaries. */
bool tenant_shard_intent_is_empty(const TenantShard *s);

/* tenant_shard_wanted: the state the intent wants on node: attached -> known AttachedSingle with
 * the shard's generation; secondary -> known Secondary, warm; otherwise known Detached. */
void tenant_shard_wanted(const TenantShard *s, NodeId node, ObservedState *out);

/* ---- observed state ---- */

/* tenant_shard_observed_get: true and *out filled when there is an entry for node (known or
 * unknown); false when there is none. out may be NULL. */
bool tenant_shard_observed_get(const TenantShard *s, NodeId node, ObservedState *out);

/* tenant_shard_observed_set: record state (known or not) for node, adding the entry if needed.
 * A generation outside u32 (other than GENERATION_NONE) is a programming error (aborts). */
void tenant_shard_observed_set(TenantShard *s, NodeId node, const ObservedState *state);

/* tenant_shard_observed_set_unknown: the entry for node becomes unknown (added if missing); the
 * reconciler calls it before every pageserver call. */
void tenant_shard_observed_set_unknown(TenantShard *s, NodeId node);

/* tenant_shard_observed_mark_unknown_if_present: an existing entry becomes unknown; no entry is
 * added (a node going Offline: what it held is no longer known). True if there was an entry. */
bool tenant_shard_observed_mark_unknown_if_present(TenantShard *s, NodeId node);

/* tenant_shard_observed_remove: drop the entry (the node was detached). True if there was one. */
bool tenant_shard_observed_remove(TenantShard *s, NodeId node);

/* tenant_shard_observed_clear: drop every entry (and the overflow storage). */
void tenant_shard_observed_clear(TenantShard *s);

static inline size_t tenant_shard_observed_count(const TenantShard *s)
{
    return s->n_observed;
}

/* tenant_shard_observed_at: the i-th entry (i < count, order unspecified and changed by
 * removals): its node and state. */
void tenant_shard_observed_at(const TenantShard *s, size_t i, NodeId *node, ObservedState *out);

/* tenant_shard_observed_from_json: the summary of a LocationConfig object as a pageserver
 * reports or accepts it ({"mode", "generation", "secondary_conf": {"warm"}, ...}; other keys are
 * ignored): known, mode, generation (null or absent -> GENERATION_NONE), warm (secondary_conf
 * null or absent -> false). 400 naming the field when malformed. */
bool tenant_shard_observed_from_json(const json_t *config, ObservedState *out, Err *err) MUST_CHECK;

/* ---- generation, flags, sequence, error ---- */

/* tenant_shard_set_generation: record a generation the database just issued to node (or
 * NODE_ID_NONE). Bumps the sequence. */
void tenant_shard_set_generation(TenantShard *s, Generation gen, NodeId node);
/* tenant_shard_take_unused_generation: true, once, when the shard's generation was issued by its
 * insert and is still unused (TENANT_SHARD_GENERATION_UNUSED, cleared here and by every
 * tenant_shard_set_generation). */
bool tenant_shard_take_unused_generation(TenantShard *s);

static inline bool tenant_shard_pending_notify(const TenantShard *s)
{
    return (s->flags & TENANT_SHARD_PENDING_NOTIFY) != 0;
}
void tenant_shard_set_pending_notify(TenantShard *s, bool pending);

/* tenant_shard_mark_dirty: force a reconcile even if observed state matches (something the
 * summary does not show changed, e.g. the tenant config). Bumps the sequence. The reconciler
 * clears it with tenant_shard_clear_dirty after a successful reconcile that started after the
 * mark (compare sequences). */
void tenant_shard_mark_dirty(TenantShard *s);
void tenant_shard_clear_dirty(TenantShard *s);

static inline bool tenant_shard_is_splitting(const TenantShard *s)
{
    return s->splitting != 0;
}
static inline bool tenant_shard_is_reconciling(const TenantShard *s)
{
    return s->reconciler != NULL;
}

/* tenant_shard_bump_sequence: a new sequence number (returned), e.g. when spawning a reconcile. */
uint64_t tenant_shard_bump_sequence(TenantShard *s);

/* tenant_shard_set_last_error: record msg (copied, cut at TENANT_SHARD_LAST_ERROR_MAX); NULL or ""
 * clears it. */
void tenant_shard_set_last_error(TenantShard *s, const char *msg);
/* tenant_shard_last_error: the last error, "" when none; borrowed until the next change. */
const char *tenant_shard_last_error(const TenantShard *s);

/* ---- scheduling-policy contract (see the file comment) ---- */

static inline ShardSchedulingPolicy tenant_shard_scheduling(const TenantShard *s)
{
    return (ShardSchedulingPolicy)s->scheduling;
}
/* may_schedule: Active, Essential. may_reconcile: everything but Stop. may_optimize: Active.
 * All three are false while the shard is splitting (the split operation owns it). */
bool tenant_shard_may_schedule(const TenantShard *s);
bool tenant_shard_may_reconcile(const TenantShard *s);
bool tenant_shard_may_optimize(const TenantShard *s);

/* ---- dirty ---- */

/* tenant_shard_is_dirty: the rule in the file comment. nodes gives availability; a node missing
 * from it counts as unavailable. Read-only and allocation-free: meant for a pass over every
 * shard. */
bool tenant_shard_is_dirty(const TenantShard *s, const NodeSet *nodes);

/* tenant_shard_to_json: one entry of TenantDescribe "shards": {"tenant_shard_id",
 * "node_attached" (null when none), "node_secondary", "last_error", "is_reconciling",
 * "is_pending_compute_notification", "is_splitting", "is_importing", "scheduling_policy",
 * "preferred_az_id" (null when none)}. A new reference the caller owns. */
json_t *tenant_shard_to_json(const TenantShard *s);

#endif
