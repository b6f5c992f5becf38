/*
 * operation.h: the storage controller's multi-step operations (tenant create and delete,
 * location_config onboarding, tenant config and policy, timeline create and delete fan-outs, node
 * configuration, import finalisation; shard split, live migration, drain / fill to come) as one
 * kind of object: what it is (kind, subject), the locks it holds, where it is (state, step,
 * progress), its deadline and cancellation, and the one completion callback that answers its
 * caller.
 *
 * Life of an operation (OPERATION_FSM is the whole table; every change goes through one checked
 * set-state, fsm_set_state, which refuses and logs a transition not in it):
 *
 *   LOCKING --> RUNNING --> DONE | FAILED
 *      |           |
 *      |           +--> CANCELLING --> DONE | FAILED
 *      +--> FAILED                      (cancelled or past its deadline while waiting for a lock)
 *
 *  - LOCKING: the locks named with operation_lock_tenant / operation_lock_node are taken one at a
 *    time in a fixed global order (nodes by id, then tenants by id), so two operations never wait
 *    for each other in a cycle. Each lock is a FIFO shared / exclusive lock (tenant_lock.h).
 *  - RUNNING: once every lock is held, the first step runs (from the event loop). Steps are the
 *    operation's own functions; each names itself with operation_set_step (and may report
 *    operation_set_progress) so GET /debug/v1/operations shows where it is. A step that waits for
 *    a callback of the form (const Err *, void *arg) passes operation_continue with the operation
 *    as arg after operation_set_next(op, fn): fn(op, err) runs when the callback comes.
 *  - CANCELLING: operation_cancel was called, or the deadline passed, while a step was in flight.
 *    Steps check operation_cancelled at their boundaries and end the operation with
 *    operation_cancel_reason. An operation is never interrupted in the middle of a step.
 *  - DONE / FAILED: operation_finish releases the locks (the next waiter may start at once), then
 *    calls the completion callback exactly once and frees the operation.
 *
 * Progress: in memory (step name, step count, done / total) now; operation_set_persist installs a
 * hook called on every step or progress change, where an operation that must survive a restart
 * (split, migration, drain, import) writes it to the database.
 *
 * Conventions: loop thread only. The completion never runs inside the call that started the
 * operation (operation_start) nor inside operation_cancel of an operation that is running.
 * operations_free abandons what is in flight: completions never run.
 */
#ifndef STORCON_OPERATION_H
#define STORCON_OPERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/defer.h"
#include "shared/err.h"
#include "shared/fsm.h"
#include "shared/id.h"
#include "storcon/tenant_lock.h"

struct event_base;

typedef enum OperationKind {
    OPERATION_TENANT_CREATE,
    OPERATION_TENANT_DELETE,
    OPERATION_TENANT_CONFIG,
    OPERATION_TENANT_POLICY,
    OPERATION_LOCATION_CONFIG,
    OPERATION_TIMELINE_CREATE,
    OPERATION_TIMELINE_DELETE,
    OPERATION_NODE_CONFIGURE,
    OPERATION_IMPORT_FINALIZE,
    OPERATION_TENANT_SHARD_SPLIT,
    OPERATION_NODE_DRAIN,    /* storcon/service_drain.c */
    OPERATION_NODE_FILL,     /* storcon/service_drain.c */
    OPERATION_NODE_DELETE,   /* storcon/service_drain.c */
    OPERATION_SHARD_MIGRATE, /* migrate, migrate_secondary (service_migrate.c) */
    OPERATION_KIND_COUNT
} OperationKind;

typedef enum OperationState {
    OPERATION_LOCKING,    /* waiting for its locks, one at a time */
    OPERATION_RUNNING,    /* every lock held; its steps run */
    OPERATION_CANCELLING, /* cancelled (or past its deadline) while a step is in flight */
    OPERATION_DONE,       /* finished with a result */
    OPERATION_FAILED,     /* finished with an error (cancellation included) */
    OPERATION_STATE_COUNT
} OperationState;

/* OPERATION_FSM: the state machine (shared/fsm.h; its table of allowed (from, to) rows is in
 * operation.c and is the only definition; docs/storcon.md carries its diagram). */
extern const FsmDef OPERATION_FSM;

#define OPERATION_MAX_LOCKS 8

typedef struct Operations Operations;
typedef struct Operation Operation;

/* OperationDoneFn: the completion: result is a NEW reference the callback owns, NULL exactly when
 * err != NULL (the same contract as ServiceJsonFn). */
typedef void (*OperationDoneFn)(const Err *err, json_t *result, void *arg);
/* OperationStepFn: the first step, run once every lock is held. */
typedef void (*OperationStepFn)(Operation *op);
/* OperationNextFn: the continuation set by operation_set_next; err is the awaited call's. */
typedef void (*OperationNextFn)(Operation *op, const Err *err);
/* OperationPersistFn: called after every step or progress change (the persistence hook). */
typedef void (*OperationPersistFn)(const Operation *op, void *arg);

/* ---- the registry of operations in flight ---- */

/* operations_new: an empty registry with its own lock table; host is handed to every operation's
 * steps (operation_host: the Service). Lock-free starts and lock grants are deferred through defer
 * (borrowed: it must outlive the registry). Never NULL; free with operations_free. */
Operations *operations_new(struct event_base *base, LoopDefer *defer, void *host);

/* operations_free: free the registry, every operation in flight (their data too; completions
 * never run) and the lock table. NULL ok. */
void operations_free(Operations *ops);

/* operations_locks: the lock table (borrowed; owned by the registry). */
TenantLocks *operations_locks(Operations *ops);

/* operations_count: how many operations are in flight (not yet finished). */
size_t operations_count(const Operations *ops);

/* operations_to_json: [{"id", "kind", "state", "step", "steps", "progress": {"done", "total"},
 * "age_ms", "deadline_in_ms" (null: none), "cancelled", "locks": [{"tenant_id" | "node_id",
 * "mode", "held"}]}] in start order. New reference. */
json_t *operations_to_json(const Operations *ops);

/* ---- one operation ---- */

/* operation_new: an operation of kind, not started, in state LOCKING with no locks. done / arg:
 * the completion. Never NULL; owned by the registry until it finishes. */
Operation *operation_new(Operations *ops, OperationKind kind, OperationDoneFn done, void *arg);

/* operation_lock_tenant / operation_lock_node: a lock the operation must hold before it runs
 * (before operation_start; at most OPERATION_MAX_LOCKS in all, else abort: a programming error). */
void operation_lock_tenant(Operation *op, const TenantId *tenant, TenantLockMode mode);
void operation_lock_node(Operation *op, NodeId node, TenantLockMode mode);

/* operation_set_deadline: cancel the operation (503 "<kind>: deadline passed") if it has not
 * finished timeout_ms from now. Before or after operation_start. */
void operation_set_deadline(Operation *op, long timeout_ms);

/* operation_set_data: the kind's own state, freed with free_data (NULL: free) when the operation
 * ends. operation_data: it (borrowed). */
void operation_set_data(Operation *op, void *data, void (*free_data)(void *));
void *operation_data(const Operation *op);

/* operation_host: the registry's host (the Service). */
void *operation_host(const Operation *op);

/* operation_start: take the locks, then run first(op) from the event loop. */
void operation_start(Operation *op, OperationStepFn first);

/* operation_set_step: the step now running (a static string), counted; calls the persist hook. */
void operation_set_step(Operation *op, const char *step);

/* operation_set_progress: done of total units (shards, nodes) of the current step; calls the
 * persist hook. */
void operation_set_progress(Operation *op, size_t done, size_t total);

/* operation_set_persist: the persistence hook (NULL: none). */
void operation_set_persist(Operation *op, OperationPersistFn fn, void *arg);

/* operation_set_next / operation_continue: operation_continue has the shape of a ServiceDoneFn
 * with the operation as arg; it runs the continuation set last with operation_set_next. */
void operation_set_next(Operation *op, OperationNextFn next);
void operation_continue(const Err *err, void *arg);

/* operation_json_done: a completion of the shape of an OperationDoneFn with the operation as arg:
 * finishes the operation with (err, result). For steps whose last call answers the caller. */
void operation_json_done(const Err *err, json_t *result, void *arg);

/* operation_cancel: ask the operation to stop. LOCKING: it fails with reason now (its locks
 * released; the completion runs inside this call). RUNNING: it moves to CANCELLING; its step in
 * flight ends it (operation_cancelled). Finished or already cancelling: no effect. */
void operation_cancel(Operation *op, const Err *reason);

/* operation_cancelled: cancel was asked (state CANCELLING). operation_cancel_reason: why (valid
 * while cancelled). */
bool operation_cancelled(const Operation *op);
const Err *operation_cancel_reason(const Operation *op);

/* operation_finish: end the operation: DONE (err NULL; result stolen) or FAILED (err; result
 * dropped). Releases every lock, then runs the completion, then frees the operation. */
void operation_finish(Operation *op, const Err *err, json_t *result);

/* Accessors, for steps, tests and the debug listing. */
uint64_t operation_id(const Operation *op);
OperationKind operation_kind(const Operation *op);
OperationState operation_state(const Operation *op);
const char *operation_step(const Operation *op); /* "" before the first step */
size_t operation_steps(const Operation *op);     /* how many steps began */

const char *operation_kind_name(OperationKind kind);
const char *operation_state_name(OperationState state);

#endif
