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

#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"
#include "pageserver/tenant_config.h"
#include "storcon/compute_hook.h"
#include "storcon/db_nodes.h"
#include "storcon/db_tenants.h"
#include "storcon/defaults.h"
#include "storcon/heartbeat.h"
#include "storcon/reconcile.h"
#include "storcon/scheduler.h"
#include "storcon/shard_map.h"
#include "storcon/tenant_shard.h"

typedef enum WaiterKind { WAITER_CREATE, WAITER_DELETE } WaiterKind;

typedef struct Waiter Waiter;
typedef void (*WaiterFn)(Service *svc, Waiter *w, bool timed_out);

struct Waiter {
    Service *svc;
    TenantId tenant;
    WaiterFn fn; /* runs once: when the tenant has no reconcile running, or at the
                    deadline */
    void *ctx;
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
    size_t startup_pending; /* location_config lists in flight */
    Waiter *waiters;
    struct event *waiter_kick; /* check every waiter from the loop */
    struct event *hb_soon;     /* one heartbeat round shortly after a re-attach or registration */
    MetricGauge *m_nodes[NODE_AVAILABILITY_COUNT];
};

/* RegisterOp: node registration, also the first step of a re-attach that carries "register". */
typedef struct RegisterOp {
    Service *svc;
    Node node;
    void (*then)(struct RegisterOp *op, const Err *err);
    ServiceJsonFn cb;
    void *arg;
    NodeId reattach_node; /* re-attach continuation */
} RegisterOp;

typedef struct CreateOp {
    Service *svc;
    TenantId tenant;
    ShardSchedulingPolicy scheduling;
    ServiceJsonFn cb;
    void *arg;
    bool location_reply; /* answer in the location_config form */
} CreateOp;

typedef struct RetryCtx {
    TenantId tenant;
    TenantShardId tsid;
    json_t *body; /* owned */
    ServiceJsonFn cb;
    void *arg;
} RetryCtx;

/* ---- shared helpers ---- */

typedef void (*LoadedFn)(Service *svc, void *ctx);

int64_t service_now_ms(void);
bool service_check_loaded(const Service *svc, Err *err);
bool service_check_ready(const Service *svc, Err *err);
void service_node_url(const Node *n, char *buf, size_t size);
bool service_target_for(Service *svc, NodeId node, PageserverTarget *t, char *buf, size_t size);
void service_defer_json(Service *svc, ServiceJsonFn cb, void *arg, const Err *err, json_t *result);
void service_defer_err(Service *svc, ServiceJsonFn cb, void *arg, const Err *err);
void service_defer_done(Service *svc, ServiceDoneFn cb, void *arg, const Err *err);
void service_update_node_gauges(Service *svc);
void service_schedule_all(Service *svc);
size_t service_reconcile_tenant(Service *svc, Tenant *t);
void service_waiter_add(Service *svc, const TenantId *tenant, long timeout_ms, WaiterFn fn,
                        void *ctx);
void service_background_cb(evutil_socket_t fd, short what, void *arg);
void service_heartbeat_soon(Service *svc);
void service_hb_result(void *host, NodeId node, const PageserverUtilization *util, const Err *err);
void service_register_fail(Service *svc, RegisterOp *op, const Err *err);
void service_register_start(Service *svc, RegisterOp *op, const ServiceNodeRegistration *reg);
bool service_load_shard_row(Service *svc, const DbTenantShard *row, TenantShard **out, Err *err);
Tenant *service_tenant_or_404(Service *svc, const TenantId *id, Err *err);
json_t *service_shards_json(const Tenant *t, bool with_generation);
char *service_config_text(const json_t *config);
void service_create_start(Service *svc, const ServiceTenantCreate *req, CreateOp *op);
void service_load_tenant_then(Service *svc, const TenantId *tenant, LoadedFn then, void *ctx);

#endif
