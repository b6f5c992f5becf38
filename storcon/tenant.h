/*
 * tenant.h: Tenant, what every shard of one tenant shares, stored once: stripe size, placement
 * policy, preferred AZ, the tenant config (JSON text), and the tenant's shards as an array of
 * pointers sorted in TenantShardId order (shard number, then count: during a split parents and
 * children interleave as 0/2, 0/4, 1/2, 1/4, 2/4, 3/4).
 *
 * The ShardMap (shard_map.h) owns every Tenant: it creates them, adds and removes their shards and
 * frees them. Loop thread only.
 */
#ifndef STORCON_TENANT_H
#define STORCON_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/node.h"
#include "storcon/placement.h"
#include "storcon/tenant_shard.h"

typedef struct Tenant {
    TenantId id;
    uint32_t stripe_size;            /* pages; != 0 */
    PlacementPolicy policy;          /* for every shard of the tenant */
    char preferred_az[NODE_AZ_SIZE]; /* "" = none */
    char *config_json;               /* tenant config overrides as JSON text; owned, never NULL */
    TenantShard **shards;            /* sorted by (number, count); pointers into the map's slabs */
    size_t n_shards;
    size_t cap_shards;
    void *notify; /* compute-notification state; owned by the notifier module; NULL = none */
} Tenant;

/* tenant_new: a tenant without shards. config_json: JSON text, copied (NULL means "{}"; it is not
 * parsed here). Never NULL; freed with tenant_free (by the ShardMap). */
Tenant *tenant_new(const TenantId *id, uint32_t stripe_size, PlacementPolicy policy,
                   const char *config_json);
void tenant_free(Tenant *tenant);

/* tenant_set_config: replace the config text (copied; NULL means "{}"). Marks every shard dirty
 * (the new config must be pushed). */
void tenant_set_config(Tenant *tenant, const char *config_json);

/* tenant_set_preferred_az: "" or NULL clears. 400 when longer than NODE_AZ_SIZE - 1. */
bool tenant_set_preferred_az(Tenant *tenant, const char *az, Err *err) MUST_CHECK;

/* tenant_shards_with_count: how many of the tenant's shards have this shard count (the "current"
 * count outside a split is the only count present). */
size_t tenant_shards_with_count(const Tenant *tenant, ShardCount count);

/* tenant_current_count: the shard count the tenant's map is made of: the parents' (smallest) count
 * while a split runs, the only one otherwise; 0 for a tenant without shards. */
ShardCount tenant_current_count(const Tenant *tenant);

#endif
