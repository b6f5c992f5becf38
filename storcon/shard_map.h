/*
 * shard_map.h: every tenant and tenant shard the controller manages, in memory (loop thread).
 *
 * Layout, for 100,000 shards:
 *  - Tenant (tenant.h): what all shards of a tenant share, stored once, with its shards as an
 *    array of pointers sorted in TenantShardId order. Tenants sit in an open-addressing hash table
 *    by TenantId.
 *  - TenantShard: allocated from slabs of SHARD_MAP_SLAB_SHARDS contiguous slots (free slots
 *    reused), so a pass over all shards walks memory in order and a shard's address never changes
 *    while it exists.
 * Lookup by tsid: hash on the tenant, then binary search in its (small) shard array.
 *
 * Pointers: Tenant and TenantShard pointers stay valid until that tenant / shard is removed.
 * Everything is owned by the map; nothing returned here is freed by the caller.
 *
 * Removal rules: a shard can be removed only when its intent is empty (scheduler_intent_clear
 * first, so node counters stay right) and no reconcile runs on it; a tenant only when it has no
 * shards and its notify slot is NULL (its owner releases it).
 *
 * Iteration: shard_map_iter_* visits every shard in slab order (not sorted); removing shards
 * (any of them) during it is safe, shards added during it may or may not be visited.
 * shard_map_tenant_iter_* visits tenants in hash order; do not add or remove tenants during it.
 * For sorted, paged listings use shard_map_list_tenants.
 */
#ifndef STORCON_SHARD_MAP_H
#define STORCON_SHARD_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/node.h"
#include "storcon/placement.h"
#include "storcon/tenant.h"
#include "storcon/tenant_shard.h"

#define SHARD_MAP_SLAB_SHARDS 1024

typedef struct ShardMap ShardMap;

/* shard_map_new / shard_map_free: an empty map; free releases every tenant and shard (without
 * looking at intents or the notify slots: for shutdown). */
ShardMap *shard_map_new(void);
void shard_map_free(ShardMap *map);

size_t shard_map_tenant_count(const ShardMap *map);
size_t shard_map_shard_count(const ShardMap *map);

/* ---- tenants ---- */

/* shard_map_tenant_add: a new tenant with no shards. config_json: JSON text, copied (NULL means
 * "{}"; it is not parsed here). 400 for stripe size 0, 409 when the tenant exists. *out (may be
 * NULL) points at the stored Tenant. */
bool shard_map_tenant_add(ShardMap *map, const TenantId *id, uint32_t stripe_size,
                          PlacementPolicy policy, const char *config_json, Tenant **out,
                          Err *err) MUST_CHECK;

/* shard_map_tenant_get: the tenant, or NULL. */
Tenant *shard_map_tenant_get(const ShardMap *map, const TenantId *id);

/* shard_map_tenant_remove: forget a tenant without shards. 409 while it has shards or its notify
 * slot is set. */
bool shard_map_tenant_remove(ShardMap *map, Tenant *tenant, Err *err) MUST_CHECK;

/* ---- shards ---- */

/* shard_map_shard_add: a new shard (number, count) of tenant, initialised by tenant_shard_init.
 * 400 when invalid (count >= 1 needs number < count; count 0 needs number 0), 409 when it exists.
 * *out (may be NULL) points at the stored shard. */
bool shard_map_shard_add(ShardMap *map, Tenant *tenant, ShardNumber number, ShardCount count,
                         TenantShard **out, Err *err) MUST_CHECK;

/* shard_map_get: the shard, or NULL. */
TenantShard *shard_map_get(const ShardMap *map, const TenantShardId *tsid);

/* shard_map_shard_remove: forget a shard (tenant_shard_finish + slot freed). 409 while its intent
 * is not empty or a reconcile runs. The tenant stays (remove it separately). */
bool shard_map_shard_remove(ShardMap *map, TenantShard *shard, Err *err) MUST_CHECK;

/* ---- iteration ---- */

typedef struct ShardMapIter {
    const ShardMap *map;
    size_t slab;
    size_t slot;
} ShardMapIter;

void shard_map_iter_init(ShardMapIter *it, const ShardMap *map);
/* shard_map_iter_next: the next shard, NULL at the end. */
TenantShard *shard_map_iter_next(ShardMapIter *it);

typedef struct TenantIter {
    const ShardMap *map;
    size_t pos;
} TenantIter;

void shard_map_tenant_iter_init(TenantIter *it, const ShardMap *map);
Tenant *shard_map_tenant_iter_next(TenantIter *it);

/* shard_map_list_tenants: up to limit tenants with id > *start_after (NULL: from the first), in
 * TenantId order, into out[limit]. Returns how many were written. O(tenants) per call. */
size_t shard_map_list_tenants(const ShardMap *map, const TenantId *start_after, size_t limit,
                              Tenant **out);

/* shard_map_count_dirty: how many shards tenant_shard_is_dirty calls dirty (a full pass). */
size_t shard_map_count_dirty(const ShardMap *map, const NodeSet *nodes);

#endif
