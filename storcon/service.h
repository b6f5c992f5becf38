/*
 * service.h: the storage controller's service core: the one owner of the in-memory state (nodes,
 * tenants, shards, intents, observed state, generations) and the only code that changes it. It
 * ties together persistence (db_*.h: database first, then memory), scheduling (scheduler.h),
 * reconciliation (reconcile.h), heartbeats (heartbeat.h) and compute notifications
 * (compute_hook.h). The HTTP routes (http_api.c) decode and validate requests, call one function
 * here, and render what it hands back; they never touch Node / TenantShard structs themselves.
 *
 * Conventions:
 *  - Loop thread only.
 *  - Asynchronous operations end in exactly one callback on the loop thread, never from inside
 *    the call that started it. ServiceJsonFn hands over `result`, a NEW reference the callback
 *    owns (pass it to http_reply_json, which steals it, or json_decref it); result is NULL
 *    exactly when err != NULL. Errors carry the spec's codes: 400 bad input, 404 unknown tenant /
 *    node / shard, 409 conflict, 412 precondition, 503 not ready / database down / retry.
 *  - Synchronous reads of memory return a new json_t reference the caller owns, or false + Err.
 *  - Request structs passed in are copied; nothing is borrowed after the call returns.
 *  - Before startup has finished (service_is_ready false) every operation except readiness,
 *    metrics and the upcalls fails with 503 "not ready".
 *  - Multi-step operations are Operation objects (storcon/operation.h) that take their own
 *    per-tenant locks (spec "exclusive for create, delete, location_config, config, policy;
 *    shared for timeline operations") before they run: the entry points below lock, callers do
 *    not. GET /debug/v1/operations lists those in flight (service_operations_json).
 *  - service_free abandons operations still running: their callbacks never run.
 */
#ifndef STORCON_SERVICE_H
#define STORCON_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/auth.h"
#include "shared/err.h"
#include "shared/http_client.h"
#include "shared/id.h"
#include "shared/metrics.h"
#include "shared/str.h"
#include "storcon/db.h"
#include "storcon/node.h"
#include "storcon/operation.h"
#include "storcon/pageserver_client.h"
#include "storcon/placement.h"

struct event_base;

typedef struct Service Service;

/* ServiceJsonFn: see the file comment (result owned by the callback; NULL iff err). */
typedef void (*ServiceJsonFn)(const Err *err, json_t *result, void *arg);
/* ServiceDoneFn: err NULL on success. */
typedef void (*ServiceDoneFn)(const Err *err, void *arg);

/* ---- lifecycle ---- */

typedef struct ServiceOptions {
    struct event_base *base;
    DbPool *db;                      /* borrowed; must outlive the service */
    MetricsRegistry *metrics;        /* borrowed; NULL = no metrics */
    AuthSigner *signer;              /* borrowed; NULL = no tokens on calls to pageservers */
    const char *control_plane_url;   /* NULL or "" = compute notifications off; copied */
    const char *control_plane_token; /* bearer for notify-attach; NULL = none; copied */
    /* Tunables; 0 = the defaults of storcon/defaults.h (tests shorten them). */
    long heartbeat_interval_ms;
    long heartbeat_timeout_ms;   /* per GET /v1/utilization */
    long offline_after_ms;       /* no good heartbeat this long -> Offline */
    long background_interval_ms; /* background reconcile pass */
    size_t max_concurrent_reconciles;
    long create_wait_ms;            /* tenant create waits this long for the first reconciles */
    unsigned max_shards_per_tenant; /* the highest shard count a tenant may have */
} ServiceOptions;

/* service_new: an empty, not yet ready service (creates its own HTTP client, pageserver client,
 * compute hook, scheduler, reconciler and heartbeat timer objects). Never NULL; the caller frees
 * with service_free (before the DbPool and the event base). */
Service *service_new(const ServiceOptions *opts);
void service_free(Service *svc);

/* service_start: the startup sequence (spec "Startup"): load nodes and non-detached shards, abort
 * half-done splits, GET /v1/location_config on every node (an unreachable node: observed unknown,
 * Offline until a heartbeat succeeds), rebuild intents (the highest-generation attached location
 * stays attached), schedule what is missing, start reconciles and heartbeats. done runs once,
 * when the service is ready (err NULL: /ready may answer 200) or startup failed (database
 * unreachable: ERR_UNAVAILABLE; anything else ERR_INTERNAL). */
void service_start(Service *svc, ServiceDoneFn done, void *arg);

/* service_is_ready: startup finished. *reason (may be NULL) is a static string saying what
 * startup is doing while not ready. */
bool service_is_ready(const Service *svc, const char **reason);

/* service_stop: stop timers, background work and new reconciles (graceful shutdown starting);
 * running calls are abandoned at service_free. */
void service_stop(Service *svc);

/* ---- nodes ---- */

typedef struct ServiceNodeRegistration {
    NodeId node_id;
    char listen_http_addr[HOST_MAX];
    uint16_t listen_http_port;
    char listen_pg_addr[HOST_MAX];
    uint16_t listen_pg_port;
    uint16_t listen_https_port; /* 0 = none */
    char availability_zone_id[NODE_AZ_SIZE];
} ServiceNodeRegistration;

/* service_node_registration_from_json: strict decode of the NodeRegisterRequest body (POST
 * /control/v1/node, and "register" in re-attach): {"node_id", "listen_http_addr",
 * "listen_http_port", "listen_pg_addr", "listen_pg_port", "availability_zone_id",
 * "listen_https_port"?}. 400 naming the field (unknown fields too). */
bool service_node_registration_from_json(const json_t *body, ServiceNodeRegistration *out,
                                         Err *err) MUST_CHECK;

/* service_node_register: persist, then add to memory (Offline until its first good heartbeat).
 * The same id with the same addresses: no-op success; different addresses or a deleted node:
 * 409. result: {} */
void service_node_register(Service *svc, const ServiceNodeRegistration *reg, ServiceJsonFn cb,
                           void *arg);

/* service_node_list: [NodeDescribe, ...] in id order. New reference. */
json_t *service_node_list(Service *svc);

/* service_node_describe: NodeDescribe of one node; 404 when unknown. */
bool service_node_describe(Service *svc, NodeId node, json_t **out, Err *err) MUST_CHECK;

/* service_node_shards: GET /control/v1/node/{id}/shards, Neon's NodeShardResponse {"node_id",
 * "shards": [{"tenant_shard_id", "is_intended_secondary", "is_observed_secondary"}]}: every shard
 * in memory that the intent places on the node or that is observed there; each flag is null when
 * the shard has nothing on the node by that measure. 404 when the node is unknown. */
bool service_node_shards(Service *svc, NodeId node, json_t **out, Err *err) MUST_CHECK;

typedef struct ServiceNodeConfigure {
    NodeId node_id;
    bool has_availability;
    NodeAvailability availability; /* Offline: as if heartbeats stopped (shards move) */
    bool has_scheduling;
    NodeSchedulingPolicy scheduling; /* persisted first */
} ServiceNodeConfigure;

/* service_node_configure: PUT /control/v1/node/{id}/config, under the node's exclusive lock. 404
 * unknown node. result: {} */
void service_node_configure(Service *svc, const ServiceNodeConfigure *req, ServiceJsonFn cb,
                            void *arg);

/* ---- node operations: drain, fill, graceful delete (service_drain.c; docs/operations.md) ----
 * kind is OPERATION_NODE_DRAIN, OPERATION_NODE_FILL or OPERATION_NODE_DELETE. One node operation
 * runs at a time. */

/* service_node_op_start: PUT /control/v1/node/{id}/drain | fill | delete. Checks the
 * preconditions (404 unknown node; 409 the same operation already runs on it; 412 another node
 * operation runs, the node is not in a policy / availability the operation starts from, or no
 * other schedulable node exists), persists the node's new policy, then answers (null) while the
 * operation goes on in the background. */
void service_node_op_start(Service *svc, NodeId node, OperationKind kind, ServiceJsonFn cb,
                           void *arg);

/* service_node_op_cancel: DELETE /control/v1/node/{id}/drain | fill | delete: 412 when that
 * operation is not running on the node; else answers (null) once it stopped and the node's
 * policy is back to Active (persisted). Shards already moved stay where they are. */
void service_node_op_cancel(Service *svc, NodeId node, OperationKind kind, ServiceJsonFn cb,
                            void *arg);

/* service_tombstone_list: GET /debug/v1/tombstone: NodeDescribe of every deleted node.
 * service_tombstone_delete: DELETE /debug/v1/tombstone/{id}: forget the tombstone (404 none). */
void service_tombstone_list(Service *svc, ServiceJsonFn cb, void *arg);
void service_tombstone_delete(Service *svc, NodeId node, ServiceJsonFn cb, void *arg);

/* ---- upcalls (pageservers) ---- */

/* service_reattach: POST /upcall/v1/re-attach. reg (may be NULL) registers the node first
 * (idempotent; 409 for other addresses). Bumps, in one transaction, the generation of every
 * shard whose generation was issued to the node and answers {"tenants": [{"id", "gen", "mode",
 * "stripe_size"}]}: those shards (AttachedSingle, the new generation) plus every shard whose
 * intent has a secondary on the node (Secondary, gen null). The node becomes WarmingUp until its
 * next good heartbeat. 404 when the node is not registered and reg is NULL. Allowed before
 * ready. empty_local_disk (Neon's ReAttachRequest field): the node lost its disk, so nothing it
 * is told is assumed to be in place: its attached shards are observed unknown too (like its
 * secondaries on every re-attach), so the next reconcile reads the node and re-pushes what is
 * missing (attachments load from remote storage). */
void service_reattach(Service *svc, NodeId node, const ServiceNodeRegistration *reg,
                      bool empty_local_disk, ServiceJsonFn cb, void *arg);

typedef struct ServiceValidateItem {
    TenantShardId tsid;
    Generation gen;
} ServiceValidateItem;

/* service_validate: POST /upcall/v1/validate. items[0..n) copied. Valid only when gen equals the
 * latest generation in memory AND in the database; unknown shards are omitted. result:
 * {"tenants": [{"id", "valid"}]}. Allowed before ready (answers from the database + memory). */
void service_validate(Service *svc, const ServiceValidateItem *items, size_t n, ServiceJsonFn cb,
                      void *arg);

/* service_attach_hook: POST /debug/v1/attach-hook. has_node: issue a new generation to node
 * (creating an unsharded-style record for an unknown shard with policy {"Attached": 0}) and make
 * it the attached intent; !has_node: detach (generation_pageserver cleared). result: {"gen": n
 * or null}. */
void service_attach_hook(Service *svc, const TenantShardId *tsid, bool has_node, NodeId node,
                         ServiceJsonFn cb, void *arg);

/* ---- tenants ---- */

typedef struct ServiceTenantCreate {
    TenantId tenant_id;
    bool has_generation;
    Generation generation; /* has_generation: the initial generation (onboarding) */
    ShardCount shard_count;
    uint32_t stripe_size; /* 0 = STRIPE_SIZE_DEFAULT */
    PlacementPolicy placement;
    bool has_scheduling;
    ShardSchedulingPolicy scheduling;
    const json_t *config; /* TenantConfig object, already validated by the route; NULL = {} */
} ServiceTenantCreate;

/* service_tenant_create: POST /v1/tenant. Persists every shard (an identical repeat succeeds,
 * other parameters 409), schedules (one tenant's shards spread across nodes), starts reconciles,
 * waits up to create_wait_ms for them, and answers {"shards": [{"shard_id", "node_id",
 * "generation"}]} (the route answers 201) even when they have not finished. 503 when no node is
 * schedulable. */
void service_tenant_create(Service *svc, const ServiceTenantCreate *req, ServiceJsonFn cb,
                           void *arg);

/* service_tenant_delete: detach every shard everywhere, DELETE /v1/tenant/{tsid} on a pageserver
 * to remove remote data, delete the rows, forget the tenant (memory, compute hook). 404 unknown.
 * result: {} */
void service_tenant_delete(Service *svc, const TenantId *tenant, ServiceJsonFn cb, void *arg);

/* service_tenant_config_get: {"tenant_specific_overrides", "effective_config"}; 404 unknown. */
bool service_tenant_config_get(Service *svc, const TenantId *tenant, json_t **out,
                               Err *err) MUST_CHECK;

/* service_tenant_config_set: PUT (patch false: config replaces the overrides) or PATCH (patch
 * true: per field, null removes, a value sets, absent keeps) /v1/tenant/config. config is the
 * request body without "tenant_id", validated by the route. Persisted, then pushed to every
 * shard by reconciles. 404 unknown. result: {} */
void service_tenant_config_set(Service *svc, const TenantId *tenant, const json_t *config,
                               bool patch, ServiceJsonFn cb, void *arg);

/* service_tenant_location_config: PUT /v1/tenant/{tsid}/location_config (tsid unsharded or
 * count 1; else 400). config: the LocationConfig body. Attached* -> policy {"Attached": 1}
 * ({"Attached": 0} with a single node), Secondary -> "Secondary", Detached -> "Detached"; creates
 * the tenant when unknown (adopting the request's generation), else changes its policy and config.
 * result:
 * {"shards": [{"shard_id", "node_id"}], "stripe_size"}. */
void service_tenant_location_config(Service *svc, const TenantShardId *tsid, const json_t *config,
                                    ServiceJsonFn cb, void *arg);

typedef struct ServiceTenantPolicy {
    bool has_placement;
    PlacementPolicy placement;
    bool has_scheduling;
    ShardSchedulingPolicy scheduling;
} ServiceTenantPolicy;

/* service_tenant_policy: PUT /control/v1/tenant/{id}/policy. Persisted, then applied
 * (reschedule + reconcile). 404 unknown. result: {} */
void service_tenant_policy(Service *svc, const TenantId *tenant, const ServiceTenantPolicy *req,
                           ServiceJsonFn cb, void *arg);

/* service_tenant_describe: TenantDescribe {"tenant_id", "shards": [...], "stripe_size",
 * "policy", "config"}; 404 unknown. */
bool service_tenant_describe(Service *svc, const TenantId *tenant, json_t **out,
                             Err *err) MUST_CHECK;

/* service_tenant_list: up to limit TenantDescribe objects with id > start_after (NULL: from the
 * first), in id order, as a JSON array. New reference. */
json_t *service_tenant_list(Service *svc, const TenantId *start_after, size_t limit);

/* service_tenant_locate: GET /debug/v1/tenant/{id}/locate: {"shards": [{"shard_id", "node_id",
 * "listen_pg_addr", "listen_pg_port", "listen_http_addr", "listen_http_port"}], "shard_params":
 * {"count", "stripe_size"}}; 404 unknown; 503 when a shard has no attached node. */
bool service_tenant_locate(Service *svc, const TenantId *tenant, json_t **out, Err *err) MUST_CHECK;

/* ---- shard map snapshots for fan-out (timeline create/delete, passthrough) ---- */

#define SERVICE_URL_SIZE (HOST_MAX + 16) /* "http://" host ":" port */

typedef struct ServiceShardLocation {
    TenantShardId tsid;
    NodeId node;                     /* attached node; NODE_ID_NONE: none */
    Generation generation;           /* GENERATION_NONE: none */
    char base_url[SERVICE_URL_SIZE]; /* "http://addr:port" of node; "" when none */
} ServiceShardLocation;

typedef struct ServiceShardMapSnapshot {
    TenantId tenant_id;
    ShardCount shard_count;
    uint32_t stripe_size;
    size_t n;                     /* max(shard_count, 1) */
    ServiceShardLocation *shards; /* by shard number; heap, freed by service_snapshot_finish */
} ServiceShardMapSnapshot;

/* service_tenant_snapshot: the tenant's current shards (the parents while a split runs) with
 * their ATTACHED INTENT node and generation, from memory. 404 unknown tenant; 503 when a shard
 * has no attached node ("not attached, retry"). On success the caller finishes *out. */
bool service_tenant_snapshot(Service *svc, const TenantId *tenant, ServiceShardMapSnapshot *out,
                             Err *err) MUST_CHECK;

/* ServiceSnapshotFn: snap is borrowed (valid during the callback; copy it to keep it). */
typedef void (*ServiceSnapshotFn)(const Err *err, const ServiceShardMapSnapshot *snap, void *arg);

/* service_tenant_snapshot_db: the same read from the DATABASE (generation and
 * generation_pageserver of every current shard; addresses from memory), for the fan-out's
 * "read, call, read again" generation re-check. 404 unknown tenant, 503 database down. */
void service_tenant_snapshot_db(Service *svc, const TenantId *tenant, ServiceSnapshotFn cb,
                                void *arg);

/* service_snapshot_same_attachment: same shards, nodes and generations (else the caller answers
 * 503 "attachment changed, retry"). */
bool service_snapshot_same_attachment(const ServiceShardMapSnapshot *a,
                                      const ServiceShardMapSnapshot *b);

void service_snapshot_finish(ServiceShardMapSnapshot *snap);

/* service_pageserver_client: the client to call pageservers with (borrowed, owned by the
 * service). service_pageserver_target: a target for node's base URL with the service's token
 * (t->base_url points into url_buf[SERVICE_URL_SIZE]; t->token is owned by the service), the
 * given per-attempt timeout and retry policy; the call is cancelled (503) if the node goes Offline
 * while it runs. 503 for an unknown node or one that is Offline already (a request fails fast
 * instead of waiting out timeouts against a node heartbeats found down). */
PageserverClient *service_pageserver_client(Service *svc);
bool service_pageserver_target(Service *svc, NodeId node, long timeout_ms,
                               const HttpRetryPolicy *retry, PageserverTarget *t,
                               char url_buf[SERVICE_URL_SIZE], Err *err) MUST_CHECK;

/* ---- debug and health ---- */

/* service_reconcile_all: start a reconcile for every dirty shard that may be reconciled and has
 * none running; returns how many were started or queued (tests loop until 0). */
size_t service_reconcile_all(Service *svc);

/* service_consistency_check: memory vs database (every shard's generation, node, policies,
 * config; no extra or missing rows) vs scheduler counts. err 500 with details on mismatch. */
void service_consistency_check(Service *svc, ServiceDoneFn cb, void *arg);

/* service_operations_json: GET /debug/v1/operations: the operations in flight (see
 * operations_to_json in storcon/operation.h). New reference. */
json_t *service_operations_json(Service *svc);

/* ---- timelines (fanned out to every shard: storcon/timeline_fanout.h) ---- */

struct TimelineCreateSpec;

/* service_timeline_create / service_timeline_delete: under the tenant's shared lock, the fan-outs
 * of timeline_fanout_create / timeline_fanout_delete (result: shard 0's TimelineInfo / {}). spec
 * is copied. */
void service_timeline_create(Service *svc, const TenantId *tenant,
                             const struct TimelineCreateSpec *spec, ServiceJsonFn cb, void *arg);
void service_timeline_delete(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                             ServiceJsonFn cb, void *arg);

typedef struct ServicePreferredAz {
    TenantShardId tsid;
    char az[NODE_AZ_SIZE]; /* "" = none (null) */
} ServicePreferredAz;

/* service_preferred_azs: PUT /control/v1/preferred_azs (Neon's ShardsPreferredAzsRequest). The
 * preferred AZ is kept per tenant here (every shard of a tenant shares it), so each named shard
 * sets its tenant's: persisted on every row of the tenant, then in memory. Shards not in memory
 * and AZs already set are skipped. items[0..n) copied. result: {"updated": [tsid, ...]} (Neon's
 * ShardsPreferredAzsResponse), the shards whose tenant's AZ changed. Takes no tenant lock. */
void service_preferred_azs(Service *svc, const ServicePreferredAz *items, size_t n,
                           ServiceJsonFn cb, void *arg);

/* ---- timeline import (storcon/service_imports.c, docs/import.md) ---- */

/* service_import_status_get: GET /upcall/v1/timeline_import_status: the shard's status in the
 * import row (a ShardImportStatus). 404 unknown shard, import, or shard not in the import; 400
 * when gen is not the shard's current generation. Allowed once the state is loaded. */
void service_import_status_get(Service *svc, const TenantShardId *tsid, const TimelineId *timeline,
                               Generation gen, ServiceJsonFn cb, void *arg);

/* service_import_status_put: POST /upcall/v1/timeline_import_status: merge the shard's status
 * (checked: 400 when it is not a ShardImportStatus) into the row in one transaction; an identical
 * repeat is a no-op, a terminal status never changes (409), 404 as for the GET, 412 for a stale
 * generation. Once every shard is terminal, finalisation starts. result: null. */
void service_import_status_put(Service *svc, const TenantShardId *tsid, const TimelineId *timeline,
                               Generation gen, const json_t *status, ServiceJsonFn cb, void *arg);

/* service_import_describe: GET /control/v1/tenant/{id}/timeline/{tl}/import: per-shard status and
 * progress (import_progress_json); 404 when there is no import. */
void service_import_describe(Service *svc, const TenantId *tenant, const TimelineId *timeline,
                             ServiceJsonFn cb, void *arg);

/* service_tenant_check_not_importing: the guard a shard split runs first: 409 while a timeline of
 * the tenant is being imported. */
bool service_tenant_check_not_importing(Service *svc, const TenantId *tenant, Err *err) MUST_CHECK;

/* service_scheduler_json: GET /debug/v1/scheduler. New reference. */
json_t *service_scheduler_json(Service *svc);

/* service_inspect_json: POST /debug/v1/inspect, Neon's InspectResponse {"attachment":
 * [generation, node_id]} for a shard attached (by intent) in a known generation, else
 * {"attachment": null} (also for an unknown shard). New reference. */
json_t *service_inspect_json(Service *svc, const TenantShardId *tsid);

/* service_shards_dump_json: GET /debug/v1/tenant: every shard in memory, in TenantDescribe's
 * shard form plus "generation" and the tenant's "policy". New reference. */
json_t *service_shards_dump_json(Service *svc);

/* service_metrics_refresh: update the gauges (pending reconciles, node availability) before
 * GET /metrics renders the registry. */
void service_metrics_refresh(Service *svc);

#endif
