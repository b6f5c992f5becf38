/*
 * reconcile.h: the per-shard reconciler: drives the pageservers until what they hold (the shard's
 * observed state) matches the shard's intent (spec/storcon.md "Reconciliation").
 *
 * State machine (one Reconcile object per queued or running reconcile; at most one per shard,
 * reachable as shard->reconciler):
 *
 *   QUEUED -> PLAN                      a concurrency slot is free
 *   PLAN   -> REFRESH | BUMP_GENERATION | ATTACH | SECONDARY | DETACH | NOTIFY | DONE
 *   REFRESH, ATTACH, SECONDARY, DETACH -> PLAN (call finished) | FAILED (call failed)
 *   BUMP_GENERATION -> ATTACH (database issued a generation) | FAILED
 *   NOTIFY -> DONE
 *   PLAN -> MIGRATE_* (a live migration's steps, storcon/reconcile_migrate.h) -> PLAN | FAILED
 *   PLAN -> MIGRATE_PARKED (waiting for a migration slot, off the running list) -> PLAN
 *
 * PLAN decides the next action from the shard's live state with reconcile_plan (a pure function of
 * the intent, the observed state, node availability and this reconcile's progress), so an intent
 * that changes while a call is in flight is simply planned for at the next step: the newer intent
 * supersedes the older one (the sequence number tells; see reconcile.c). The order of the actions
 * is: learn unknown observed state (GET location_config/{tsid}); attach (a generation bumped in the
 * database first unless the node already holds this generation attached; PUT AttachedSingle with
 * the tenant config); secondaries (PUT Secondary {"warm": true}); detach nodes outside the intent
 * (PUT Detached); then the compute notification when the attachment changed or one is pending.
 *
 * Every pageserver call marks the node's observed state unknown first and records the written
 * config on success; transport errors, timeouts and 503 are retried with capped backoff by the HTTP
 * client; a final failure records shard->last_error and leaves the shard dirty for the background
 * pass. When a node goes Offline, the owner cancels every call to it
 * (pageserver_client_cancel_node): a reconcile waiting on one fails at once like any failed call,
 * and one whose shard moved starts over (the sequence number tells). Concurrency is bounded
 * (max_concurrent); further reconciles wait in a FIFO queue. Shards with scheduling policy Stop
 * are never reconciled.
 *
 * The transition table RECONCILE_FSM (shared/fsm.h) is the single source of the allowed
 * transitions: reconcile_set_state checks against it and the diagram in docs/storcon.md is its
 * fsm_mermaid rendering (tests/unit/test_fsm_diagrams.c compares them).
 */
#ifndef STORCON_RECONCILE_H
#define STORCON_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/fsm.h"
#include "shared/id.h"
#include "shared/metrics.h"
#include "shared/str.h"
#include "storcon/db.h"
#include "storcon/node.h"
#include "storcon/pageserver_client.h"
#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

struct event_base;

typedef enum ReconcileState {
    RECONCILE_QUEUED,          /* waiting for a concurrency slot */
    RECONCILE_PLAN,            /* deciding the next action */
    RECONCILE_REFRESH,         /* GET /v1/location_config/{tsid} on a node with unknown
                                  state */
    RECONCILE_BUMP_GENERATION, /* database: generation + 1 for the node to attach
                                */
    RECONCILE_ATTACH,          /* PUT location_config AttachedSingle */
    RECONCILE_SECONDARY,       /* PUT location_config Secondary warm */
    RECONCILE_DETACH,          /* PUT location_config Detached on a node outside the intent
                                */
    RECONCILE_NOTIFY,          /* compute notification handed to the compute hook */
    RECONCILE_DONE,            /* terminal: observed matches the intent */
    RECONCILE_FAILED,          /* terminal: a call failed for good; the shard stays dirty
                                */
    /* live migration steps (storcon/reconcile_migrate.h) */
    RECONCILE_MIGRATE_ORIGIN_STALE,     /* origin -> AttachedStale, heatmap flushed */
    RECONCILE_MIGRATE_ORIGIN_LSNS,      /* record the origin's timeline LSNs */
    RECONCILE_MIGRATE_DEST_SECONDARY,   /* destination -> Secondary warm */
    RECONCILE_MIGRATE_WARM_UP,          /* secondary/download on the destination, bounded */
    RECONCILE_MIGRATE_BUMP_GENERATION,  /* database: generation + 1 for the destination */
    RECONCILE_MIGRATE_ATTACH_MULTI,     /* destination -> AttachedMulti, new generation */
    RECONCILE_MIGRATE_WAIT_LSN,         /* wait_lsn on the destination, bounded */
    RECONCILE_MIGRATE_NOTIFY,           /* compute notification with the new map */
    RECONCILE_MIGRATE_ORIGIN_SECONDARY, /* origin -> Secondary warm, or Detached */
    RECONCILE_MIGRATE_CUTOVER,          /* destination -> AttachedSingle */
    RECONCILE_MIGRATE_PARKED,           /* waiting for a migration slot, off the running list */
    RECONCILE_STATE_COUNT
} ReconcileState;

/* RECONCILE_FSM: the transition table (shared/fsm.h); its diagram is in docs/storcon.md. */
extern const FsmDef RECONCILE_FSM;

const char *reconcile_state_name(ReconcileState s);

/* ---- planning (pure) ---- */

typedef enum ReconcileActionKind {
    RECONCILE_ACTION_NONE,            /* nothing left: observed matches the intent */
    RECONCILE_ACTION_REFRESH,         /* learn the state on node */
    RECONCILE_ACTION_BUMP_GENERATION, /* issue a new generation for node, then
                                         attach */
    RECONCILE_ACTION_ATTACH,          /* PUT AttachedSingle with the current generation */
    RECONCILE_ACTION_SECONDARY,       /* PUT Secondary warm */
    RECONCILE_ACTION_DETACH,          /* PUT Detached */
    /* live migration steps, in order (storcon/reconcile_migrate.h) */
    RECONCILE_ACTION_MIGRATE_ORIGIN_STALE,
    RECONCILE_ACTION_MIGRATE_ORIGIN_LSNS,
    RECONCILE_ACTION_MIGRATE_DEST_SECONDARY,
    RECONCILE_ACTION_MIGRATE_WARM_UP,
    RECONCILE_ACTION_MIGRATE_BUMP_GENERATION,
    RECONCILE_ACTION_MIGRATE_ATTACH_MULTI,
    RECONCILE_ACTION_MIGRATE_WAIT_LSN,
    RECONCILE_ACTION_MIGRATE_NOTIFY,
    RECONCILE_ACTION_MIGRATE_ORIGIN_SECONDARY, /* node kept as a secondary: Secondary warm */
    RECONCILE_ACTION_MIGRATE_ORIGIN_DETACH,    /* node outside the intent: Detached */
    RECONCILE_ACTION_MIGRATE_CUTOVER,
    RECONCILE_ACTION_COUNT
} ReconcileActionKind;

typedef struct ReconcileAction {
    ReconcileActionKind kind;
    NodeId node;
    NodeId peer; /* migration steps: the other end (origin or destination); else NODE_ID_NONE */
} ReconcileAction;

/* What one reconcile has done so far (input of the planner). */
typedef struct ReconcileProgress {
    Generation fresh_generation; /* generation this reconcile had issued
                                    (GENERATION_NONE) */
    NodeId fresh_node;           /* ... to this node */
    bool push_config;            /* the shard was marked dirty: every intent location gets a
                                    PUT */
    NodeId pushed[1 + TENANT_SHARD_MAX_SECONDARIES]; /* locations PUT by this
                                                        reconcile */
    uint8_t n_pushed;
    NodeId refreshed[8]; /* nodes refreshed (a refresh is tried once per node) */
    uint8_t n_refreshed;
    /* live migration (storcon/reconcile_migrate.h): the steps this reconcile has done that the
     * observed state does not show */
    NodeId mig_origin;   /* the origin of the migration in progress; NODE_ID_NONE: none */
    NodeId mig_dest;     /* ... and its destination; the flags below are about this pair */
    bool mig_lsns;       /* origin LSNs recorded */
    bool mig_warmed;     /* destination warm (or its warm-up timed out: a cold cut-over) */
    bool mig_lsn_waited; /* destination caught up (or the wait timed out) */
    bool mig_notified;   /* compute notified of the new map */
} ReconcileProgress;

/* reconcile_progress_init: the progress of a reconcile starting on s. A generation s's insert
 * issued and nobody used yet (tenant_shard_take_unused_generation) is taken as if this reconcile
 * had just bumped it: it attaches on that node without a bump; every later reconcile bumps. */
void reconcile_progress_init(ReconcileProgress *p, TenantShard *s);

/* reconcile_plan: the next action for shard s given node availability (nodes) and progress. Nodes
 * that are not available are never called (their observed state is not acted upon). */
void reconcile_plan(const TenantShard *s, const NodeSet *nodes, const ReconcileProgress *p,
                    ReconcileAction *out);

const char *reconcile_action_name(ReconcileActionKind k);

/* ---- the reconciler ---- */

typedef struct Reconciler Reconciler;

/* The outcome of a compute notification the reconciler waited for. */
typedef enum ReconcileNotifyResult {
    RECONCILE_NOTIFY_ACCEPTED, /* the control plane has this map (or needs none) */
    RECONCILE_NOTIFY_RETRY,    /* not sent yet: superseded by a newer map of the tenant, or
                                  not ready (a shard's location is being written) */
    RECONCILE_NOTIFY_FAILED,   /* not sent or refused; the tenant stays pending */
} ReconcileNotifyResult;

/* Hooks into the owner (the service). */
typedef struct ReconcilerHooks {
    void *host;
    /* target: fill a PageserverTarget for node (url into buf[size], t->node = node); false = node
     * unknown. */
    bool (*target)(void *host, NodeId node, PageserverTarget *t, char *buf, size_t size);
    /* notify: the shard's tenant should be notified to compute (the shard's attached location
     * changed or a notification is pending). */
    void (*notify)(void *host, TenantShard *shard);
    /* notify_wait (may be NULL: notify is used without waiting): the same, then done(arg, r, msg)
     * once the compute hook has an outcome for this map (a live migration's NOTIFY step waits for
     * it before the origin stops serving). */
    void (*notify_wait)(void *host, TenantShard *shard,
                        void (*done)(void *arg, ReconcileNotifyResult r, const char *msg),
                        void *arg);
    /* finished: a reconcile of shard ended (ok = DONE). May spawn a new one. */
    void (*finished)(void *host, TenantShard *shard, bool ok);
} ReconcilerHooks;

typedef struct ReconcilerOptions {
    struct event_base *base;
    DbPool *db;
    PageserverClient *pc;
    NodeSet *nodes;
    ShardMap *map;
    MetricsRegistry *metrics; /* NULL = none */
    size_t max_concurrent;    /* 0 = STORCON_RECONCILE_MAX_CONCURRENT */
    ReconcilerHooks hooks;
} ReconcilerOptions;

/* reconciler_new: never NULL; free with reconciler_free, with the loop no longer running (it
 * cancels pageserver calls; a database call still in flight must never call back afterwards, which
 * holds once the loop has stopped or the pool has been freed). */
Reconciler *reconciler_new(const ReconcilerOptions *opts);
void reconciler_free(Reconciler *r);

/* reconciler_spawn: queue a reconcile for shard unless one is queued or running (then it is marked
 * to run again when it ends: the newer intent supersedes) or the shard's scheduling policy is Stop.
 * True when a new reconcile was queued.
 */
bool reconciler_spawn(Reconciler *r, TenantShard *shard);

/* reconciler_stop: no more reconciles start (shutdown). */
void reconciler_stop(Reconciler *r);

size_t reconciler_running(const Reconciler *r);
size_t reconciler_queued(const Reconciler *r);

/* reconciler_shard_state: the state of the shard's reconcile, or RECONCILE_DONE when none. */
ReconcileState reconciler_shard_state(const TenantShard *shard);

#endif
