/*
 * service_internal.h: what the files of the service core share (service.c, service_startup.c,
 * service_nodes.c, service_upcalls.c, service_tenants.c, service_location_config.c,
 * service_timelines.c, service_debug.c): the Service struct and the helpers more than one of them
 * uses. Private to those files; everyone else includes storcon/service.h.
 */
#ifndef STORCON_SERVICE_INTERNAL_H
#define STORCON_SERVICE_INTERNAL_H

#include "storcon/service.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "shared/defer.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"
#include "shared/tenant_config.h"
#include "shared/worker_pool.h"
#include "storcon/compute_hook.h"
#include "storcon/db_compute_notifications.h"
#include "storcon/db_nodes.h"
#include "storcon/db_tenants.h"
#include "storcon/defaults.h"
#include "storcon/heartbeat.h"
#include "storcon/import.h"
#include "storcon/notifier.h"
#include "storcon/operation.h"
#include "storcon/reconcile.h"
#include "storcon/scheduler.h"
#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

typedef enum WaiterKind { WAITER_CREATE, WAITER_DELETE } WaiterKind;

typedef struct Operation Operation;
typedef struct Waiter Waiter;
typedef void (*WaiterFn)(Service *svc, Waiter *w, bool timed_out);

struct Waiter {
    Service *svc;
    TenantId tenant;
    WaiterFn fn;   /* runs once: when the tenant has no reconcile running, or at the
                      deadline */
    Operation *op; /* the operation waiting (owned by the registry) */
    struct event *deadline;
    Waiter *next;
};

typedef enum StartupStep {
    STARTUP_IDLE,
    STARTUP_LOAD_NODES,
    STARTUP_LOAD_SHARDS,
    STARTUP_ABORT_SPLITS,
    STARTUP_LOCATIONS,
    STARTUP_RECONCILE,
    STARTUP_READY,
    STARTUP_FAILED
} StartupStep;

struct Service {
    ServiceOptions opts;
    char *cp_url;
    char *cp_token;
    char *ps_token; /* bearer for pageserver calls; NULL = none */
    HttpClient *http;
    PageserverClient *pc;
    WorkerPool *workers; /* CPU work off the loop (the startup location listings) */
    ComputeHook *hook;
    NodeSet nodes;
    ShardMap *map;
    Scheduler sched;
    Reconciler *rec;
    Heartbeater *hb;
    struct event *bg_timer;
    bool loaded; /* nodes and shards in memory: upcalls may be served */
    bool ready;
    bool stopping;
    StartupStep step;
    ServiceDoneFn start_done;
    void *start_arg;
    size_t startup_pending;     /* location_config lists in flight */
    Operations *ops;            /* operations in flight and their tenant / node locks */
    DbTenantInserter *inserter; /* tenant inserts, batched (group commit) */
    Waiter *waiters;
    LoopDefer *defer;          /* every deferred call of the service (shared/defer.h) */
    LoopDeferItem waiter_kick; /* check every waiter from the loop */
    struct event *hb_soon;     /* one heartbeat round shortly after a re-attach or registration */
    MetricGauge *m_nodes[NODE_AVAILABILITY_COUNT];
    ImportSet imports;               /* timelines being imported (service_imports.c) */
    struct FinalizeRun *import_runs; /* finalisation attempts in flight */
    Notifier *import_notifier;       /* PUT <control plane>/import_complete */
    bool imports_loaded;             /* the rows were listed after startup */
    bool imports_listed;             /* that listing answered: every row since is tracked */
    struct NodeOps *node_ops;        /* drain / fill / delete (service_drain.c) */
    struct Optimizer *optimizer;     /* service_optimize.c; NULL until its first pass */
};

/* RegisterOp: node registration, also the first step of a re-attach that carries "register". */
typedef struct RegisterOp {
    Service *svc;
    Node node;
    void (*then)(struct RegisterOp *op, const Err *err);
    ServiceJsonFn cb;
    void *arg;
    NodeId reattach_node;  /* re-attach continuation */
    bool empty_local_disk; /* re-attach: the node lost its local disk */
} RegisterOp;

/* TenantOp: the data of the operations on one tenant (create, delete, config, policy,
 * location_config); each uses the fields of its own steps. */
typedef struct TenantOp {
    TenantId tenant;
    json_t *body;                 /* the request's JSON (config, location_config body); owned */
    ServiceTenantCreate create;   /* create (also location_config onboarding); config borrowed */
    bool patch;                   /* config: PATCH semantics */
    char *config_text;            /* config: the text being stored; owned */
    ServiceTenantPolicy policy;   /* policy (also location_config's last step) */
    bool placement_stored;        /* policy: the placement is persisted, the scheduling is next */
    OperationStepFn then;         /* after the config or policy is stored and applied */
    PlacementPolicy saved_policy; /* delete: put back when it fails */
    TenantShardId tsid;           /* location_config */
    bool location_reply;          /* create answers in the location_config form */
    NodeId *reserved;             /* create: the attached nodes picked before the insert, one per
                                     shard, reserved until the rows are loaded; NULL: none */
    size_t n_reserved;
} TenantOp;

/* ---- shared helpers ---- */

int64_t service_now_ms(void);
bool service_check_loaded(const Service *svc, Err *err);
bool service_check_ready(const Service *svc, Err *err);
/* service_enter_loaded / service_enter_ready: the entry check of a JSON-answering service call:
 * false when the check fails, after deferring the error to cb (the caller just returns). */
bool service_enter_loaded(Service *svc, ServiceJsonFn cb, void *arg);
bool service_enter_ready(Service *svc, ServiceJsonFn cb, void *arg);
void service_node_url(const Node *n, char *buf, size_t size);
/* service_target_for: node's base URL (into buf), the service's token and the node itself (so that
 * the call is cancelled when the node goes Offline); false: unknown node. Availability is the
 * caller's to check: heartbeats and the startup listing call Offline nodes on purpose. */
bool service_target_for(Service *svc, NodeId node, PageserverTarget *t, char *buf, size_t size);
/* service_node_offline_err: the 503 of a call to a node that is (or went) Offline. */
void service_node_offline_err(NodeId node, Err *err);
void service_defer_json(Service *svc, ServiceJsonFn cb, void *arg, const Err *err, json_t *result);
void service_defer_err(Service *svc, ServiceJsonFn cb, void *arg, const Err *err);
void service_defer_done(Service *svc, ServiceDoneFn cb, void *arg, const Err *err);
void service_update_node_gauges(Service *svc);
void service_schedule_all(Service *svc);
size_t service_reconcile_tenant(Service *svc, Tenant *t);
void service_waiter_add(Service *svc, const TenantId *tenant, long timeout_ms, WaiterFn fn,
                        Operation *op);
void service_background_cb(evutil_socket_t fd, short what, void *arg);
void service_heartbeat_soon(Service *svc);
void service_hb_result(void *host, NodeId node, const PageserverUtilization *util, const Err *err);
void service_register_fail(Service *svc, RegisterOp *op, const Err *err);
void service_register_start(Service *svc, RegisterOp *op, const ServiceNodeRegistration *reg);
/* service_compute_map: the tenant's map for the compute hook (attached = intent's node
 * observed holding the generation); false when its intent attaches no shard anywhere. */
bool service_compute_map(const Tenant *t, ComputeHookTenant *snap);
bool service_load_shard_row(Service *svc, const DbTenantShard *row, TenantShard **out, Err *err);
Tenant *service_tenant_or_404(Service *svc, const TenantId *id, Err *err);
json_t *service_shards_json(const Tenant *t, bool with_generation);
char *service_config_text(const json_t *config);

/* service_shard_params_check: the shard fields every route takes (POST /v1/tenant's
 * shard_parameters, location_config's shard_number / shard_count / shard_stripe_size) are valid:
 * count at most the configured max_shards_per_tenant (0 and 1 both mean unsharded), number below
 * max(count, 1), stripe size not 0. 400 naming the field otherwise. */
bool service_shard_params_check(const Service *svc, ShardCount count, ShardNumber number,
                                uint32_t stripe, Err *err);

/* ---- timeline import (service_imports.c) ---- */

/* service_import_kick: a row changed (shard_statuses: its text now): when every shard is
 * terminal, finalise it (once per import at a time; retried until it succeeds). */
void service_import_kick(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                         const char *shard_statuses);
/* service_import_create_run: the step of a timeline create with import_pgdata (spec: borrowed
 * for the call): 409 while a shard split runs; the fan-out (shard 0 first); then the row with
 * every current shard {"InProgress": null} (an existing row is kept: a repeated create) and the
 * tenant marked importing. Finishes op with shard 0's TimelineInfo. */
struct TimelineCreateSpec;
void service_import_create_run(Operation *op, const TenantId *tenant,
                               const struct TimelineCreateSpec *spec);
/* service_import_forget: a timeline delete's first step: delete the timeline's import row (none
 * is fine), so later upcalls get 404 and nothing finalises it, then done(NULL). */
void service_import_forget(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                           ServiceDoneFn done, void *arg);
/* service_imports_tenant_deleted: the tenant's rows are gone (db_tenants_delete deletes its import
 * rows in the same transaction): forget its imports in memory. */
void service_imports_tenant_deleted(Service *svc, const TenantId *tenant);
/* service_imports_init: the import_complete notifier (service_new). */
void service_imports_init(Service *svc);
/* service_imports_resume: once ready: list every import row, remember them, finalise the complete
 * ones (a restart finalises again: at least once). */
void service_imports_resume(Service *svc);
/* service_imports_cancel: a delete of the tenant (timeline NULL) or of one timeline starts: a
 * finalisation attempt running for it stops at its next step (its notification is dropped); the
 * delete removes the row, so the next attempt finds nothing to do. */
void service_imports_cancel(Service *svc, const TenantId *tenant, const TimelineId *timeline);
/* service_imports_free: drop the in-memory import state (service_free). */
void service_imports_free(Service *svc);

/* ---- node operations (service_drain.c) and the optimiser (service_optimize.c) ---- */

/* service_node_ops_init / _free: their state (service_new / service_free); _stop: no new
 * steps (service_stop). */
void service_node_ops_init(Service *svc);
void service_node_ops_stop(Service *svc);
void service_node_ops_free(Service *svc);
/* service_node_ops_resume: once ready, the restart rule: a Draining / Deleting node's operation
 * starts again, a Filling node becomes Active (persisted), PauseForRestart stays. */
void service_node_ops_resume(Service *svc);
/* service_node_op_busy: a drain / fill / delete runs (on any node); *node (may be NULL) gets its
 * node. */
bool service_node_op_busy(const Service *svc, NodeId *node);
/* service_node_op_json: the progress of the operation running on node, or null. New reference. */
json_t *service_node_op_json(const Service *svc, NodeId node);
/* service_cutover: the intent attaches shard s on target (promoting its secondary there, if any;
 * the old attached location stays as a secondary when keep_origin and there is room) and a
 * reconcile carries it out. Never talks to a pageserver itself. */
bool service_cutover(Service *svc, TenantShard *s, NodeId target, bool keep_origin,
                     Err *err) MUST_CHECK;
/* service_tenant_attached_on: how many of the tenant's shards the intent attaches on node. */
uint32_t service_tenant_attached_on(const Tenant *t, NodeId node);
/* service_optimize_free: the optimiser's state (service_node_ops_free). */
void service_optimize_free(Service *svc);
/* service_optimize_pass: one optimiser pass (after the background reconcile pass). Returns the
 * optimisations started. */
size_t service_optimize_pass(Service *svc);

/* ---- tenant operation steps (service_tenants.c), shared with location_config ---- */

/* service_tenant_op_new: an operation on tenant with the tenant's exclusive lock and a TenantOp
 * (operation_data) naming it; the caller fills the rest and starts it. */
Operation *service_tenant_op_new(Service *svc, OperationKind kind, const TenantId *tenant,
                                 ServiceJsonFn cb, void *arg);

/* service_tenant_op_ready: the service is ready; else the operation is finished with 503. */
bool service_tenant_op_ready(Operation *op);

/* service_tenant_load: read the tenant's rows into memory (detached tenants are not loaded at
 * startup) when it has any, then then(op, NULL); then looks the tenant up again (still missing: it
 * does not exist). */
void service_tenant_load(Operation *op, OperationNextFn then);

/* service_tenant_create_step: store the shards of TenantOp.create, schedule, reconcile, wait up to
 * create_wait_ms; finishes the operation (the location_config form when location_reply). */
void service_tenant_create_step(Operation *op);

/* service_tenant_config_store: store config (replacing the overrides, or patch), apply it in
 * memory, then then(op). The tenant is in memory. Failures finish the operation. */
void service_tenant_config_store(Operation *op, const json_t *config, bool patch,
                                 OperationStepFn then);

/* service_tenant_policy_store: store TenantOp.policy (placement, then scheduling), apply it
 * (reschedule, reconcile), then then(op). Failures finish the operation. */
void service_tenant_policy_store(Operation *op, OperationStepFn then);

/* service_location_json: the location_config answer {"shards": [{"shard_id", "node_id"}],
 * "stripe_size"}. New reference. */
json_t *service_location_json(const Tenant *t);

#endif
