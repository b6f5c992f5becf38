/*
 * service_migrate.h: operator moves of one tenant shard (docs/api.md "Shard migration"):
 * PUT /control/v1/tenant/{tsid}/migrate and .../migrate_secondary. Each is an operation holding
 * the tenant's lock (storcon/operation.h) that changes the shard's intent and spawns its
 * reconcile; the reconciler moves the shard (live when the origin is healthy,
 * storcon/reconcile_migrate.h). Answers {} once the intent is changed and the reconcile queued.
 */
#ifndef STORCON_SERVICE_MIGRATE_H
#define STORCON_SERVICE_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/id.h"
#include "storcon/service.h"

typedef struct ServiceShardMigrate {
    TenantShardId tsid;
    NodeId node;        /* the destination */
    NodeId origin;      /* migrate: the expected attached node; NODE_ID_NONE: any */
    bool secondary;     /* migrate_secondary */
    bool prewarm;       /* migration_config.prewarm (default true); false: a destination
                         * without a secondary is attached at once, without a warm-up wait */
    bool warmup_set;    /* migration_config.secondary_warmup_timeout given ("0s": no wait) */
    uint64_t warmup_ms; /* ... its value */
} ServiceShardMigrate;

/* service_shard_migrate: 404 unknown shard or node; 412 node not available or not schedulable,
 * or origin given and not the attached node, or (secondary) a placement without secondaries;
 * 409 migrate_secondary to the attached node. A move to where the shard already is: {} and
 * nothing changes. */
void service_shard_migrate(Service *svc, const ServiceShardMigrate *req, ServiceJsonFn cb,
                           void *arg);

#endif
