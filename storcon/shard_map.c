/*
 * shard_map.c: tenants in an open-addressing hash table (linear probing, backward-shift
 * deletion), tenant shards in fixed-size slabs with a free-slot stack.
 */
#include <stdlib.h>
#include <string.h>

#include "shared/hash.h"
#include "shared/str.h"

#include "storcon/shard_map.h"

typedef struct Slab {
    TenantShard slots[SHARD_MAP_SLAB_SHARDS];
} Slab;

struct ShardMap {
    /* tenants: table[table_cap], NULL = empty; table_cap a power of two, load <= 1/2 */
    Tenant **table;
    size_t table_cap;
    size_t n_tenants;
    /* shards */
    Slab **slabs;
    size_t n_slabs;
    size_t cap_slabs;
    size_t last_slab_used; /* slots of slabs[n_slabs - 1] ever handed out */
    TenantShard **free_slots;
    size_t n_free;
    size_t cap_free;
    size_t n_shards;
};

#define TABLE_MIN_CAP 64

/* tenant_hash: tenant ids are random, but ids from tests and tools may not be; every byte counts
 * through two rounds of mixing (a plain xor of the halves would cancel out related halves). */
static uint64_t tenant_hash(const TenantId *id)
{
    uint64_t a;
    uint64_t b;
    memcpy(&a, id->b, 8);
    memcpy(&b, id->b + 8, 8);
    return hash_mix64(a + hash_mix64(b ^ HASH_GOLDEN64));
}

ShardMap *shard_map_new(void)
{
    ShardMap *map = xcalloc(1, sizeof(*map));
    map->table_cap = TABLE_MIN_CAP;
    map->table = xcalloc(map->table_cap, sizeof(*map->table));
    return map;
}

void shard_map_free(ShardMap *map)
{
    if (map == NULL)
        return;
    ShardMapIter it;
    shard_map_iter_init(&it, map);
    TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL)
        tenant_shard_finish(s);
    for (size_t i = 0; i < map->n_slabs; i++)
        free(map->slabs[i]);
    free(map->slabs);
    free(map->free_slots);
    for (size_t i = 0; i < map->table_cap; i++) {
        if (map->table[i] != NULL)
            tenant_free(map->table[i]);
    }
    free(map->table);
    free(map);
}

size_t shard_map_tenant_count(const ShardMap *map)
{
    return map->n_tenants;
}

size_t shard_map_shard_count(const ShardMap *map)
{
    return map->n_shards;
}

/* ---- tenant table ---- */

/* table_find: the slot holding id, or the empty slot where it would go. */
static size_t table_find(const ShardMap *map, const TenantId *id)
{
    size_t mask = map->table_cap - 1;
    size_t i = (size_t)tenant_hash(id) & mask;
    while (map->table[i] != NULL && !tenant_id_eq(&map->table[i]->id, id))
        i = (i + 1) & mask;
    return i;
}

static void table_grow(ShardMap *map)
{
    Tenant **old = map->table;
    size_t old_cap = map->table_cap;
    map->table_cap = old_cap * 2;
    map->table = xcalloc(map->table_cap, sizeof(*map->table));
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] != NULL)
            map->table[table_find(map, &old[i]->id)] = old[i];
    }
    free(old);
}

/* table_delete: remove slot i and shift later members of its probe run back, so lookups never
 * need tombstones. */
static void table_delete(ShardMap *map, size_t i)
{
    size_t mask = map->table_cap - 1;
    map->table[i] = NULL;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        Tenant *t = map->table[j];
        if (t == NULL)
            break;
        size_t home = (size_t)tenant_hash(&t->id) & mask;
        /* t may move to i when its home is not in the (cyclic) interval (i, j]. */
        bool home_in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!home_in_range) {
            map->table[i] = t;
            map->table[j] = NULL;
            i = j;
        }
    }
}

bool shard_map_tenant_add(ShardMap *map, const TenantId *id, uint32_t stripe_size,
                          PlacementPolicy policy, const char *config_json, Tenant **out, Err *err)
{
    if (stripe_size == 0) {
        err_set(err, ERR_BAD_REQUEST, "stripe size must not be 0");
        return false;
    }
    if ((unsigned)policy.kind >= PLACEMENT_KIND_COUNT ||
        policy.secondaries > PLACEMENT_MAX_SECONDARIES) {
        err_set(err, ERR_BAD_REQUEST, "invalid placement policy");
        return false;
    }
    size_t i = table_find(map, id);
    if (map->table[i] != NULL) {
        char hex[ID_STR_SIZE];
        tenant_id_format(id, hex);
        err_set(err, ERR_CONFLICT, "tenant %s already exists", hex);
        return false;
    }
    if ((map->n_tenants + 1) * 2 > map->table_cap) {
        table_grow(map);
        i = table_find(map, id);
    }
    Tenant *t = tenant_new(id, stripe_size, policy, config_json);
    map->table[i] = t;
    map->n_tenants++;
    if (out != NULL)
        *out = t;
    return true;
}

Tenant *shard_map_tenant_get(const ShardMap *map, const TenantId *id)
{
    return map->table[table_find(map, id)];
}

bool shard_map_tenant_remove(ShardMap *map, Tenant *tenant, Err *err)
{
    char hex[ID_STR_SIZE];
    tenant_id_format(&tenant->id, hex);
    if (tenant->n_shards != 0) {
        err_set(err, ERR_CONFLICT, "tenant %s still has %zu shards", hex, tenant->n_shards);
        return false;
    }
    if (tenant->notify != NULL) {
        err_set(err, ERR_CONFLICT, "tenant %s still has notification state", hex);
        return false;
    }
    size_t i = table_find(map, &tenant->id);
    if (map->table[i] != tenant) {
        err_set(err, ERR_NOT_FOUND, "tenant %s not found", hex);
        return false;
    }
    table_delete(map, i);
    map->n_tenants--;
    tenant_free(tenant);
    return true;
}

/* ---- shards ---- */

/* shard_order: (number, count) order within one tenant, as tsid_cmp. */
static int shard_order(ShardNumber an, ShardCount ac, ShardNumber bn, ShardCount bc)
{
    if (an != bn)
        return an < bn ? -1 : 1;
    if (ac != bc)
        return ac < bc ? -1 : 1;
    return 0;
}

/* tenant_lower_bound: the first position in tenant->shards not ordered before (number, count). */
static size_t tenant_lower_bound(const Tenant *t, ShardNumber number, ShardCount count)
{
    size_t lo = 0;
    size_t hi = t->n_shards;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const TenantShard *s = t->shards[mid];
        if (shard_order(s->tsid.number, s->tsid.count, number, count) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* slot_alloc: a free slot (reused, or the next one of the last slab, or a new slab). */
static TenantShard *slot_alloc(ShardMap *map)
{
    if (map->n_free > 0)
        return map->free_slots[--map->n_free];
    if (map->n_slabs == 0 || map->last_slab_used == SHARD_MAP_SLAB_SHARDS) {
        if (map->n_slabs == map->cap_slabs) {
            map->cap_slabs = map->cap_slabs == 0 ? 8 : map->cap_slabs * 2;
            map->slabs = xrealloc(map->slabs, map->cap_slabs * sizeof(*map->slabs));
        }
        map->slabs[map->n_slabs++] = xcalloc(1, sizeof(Slab));
        map->last_slab_used = 0;
    }
    return &map->slabs[map->n_slabs - 1]->slots[map->last_slab_used++];
}

static void slot_free(ShardMap *map, TenantShard *s)
{
    memset(s, 0, sizeof(*s)); /* tenant == NULL marks the slot free for iteration */
    if (map->n_free == map->cap_free) {
        map->cap_free = map->cap_free == 0 ? 64 : map->cap_free * 2;
        map->free_slots = xrealloc(map->free_slots, map->cap_free * sizeof(*map->free_slots));
    }
    map->free_slots[map->n_free++] = s;
}

bool shard_map_shard_add(ShardMap *map, Tenant *tenant, ShardNumber number, ShardCount count,
                         TenantShard **out, Err *err)
{
    if ((count == 0 && number != 0) || (count != 0 && number >= count)) {
        err_set(err, ERR_BAD_REQUEST, "invalid shard %u of %u", (unsigned)number, (unsigned)count);
        return false;
    }
    size_t pos = tenant_lower_bound(tenant, number, count);
    if (pos < tenant->n_shards && tenant->shards[pos]->tsid.number == number &&
        tenant->shards[pos]->tsid.count == count) {
        char tsid[TSID_STR_SIZE];
        tsid_format(&tenant->shards[pos]->tsid, tsid);
        err_set(err, ERR_CONFLICT, "tenant shard %s already exists", tsid);
        return false;
    }
    if (tenant->n_shards == tenant->cap_shards) {
        tenant->cap_shards = tenant->cap_shards == 0 ? 4 : tenant->cap_shards * 2;
        tenant->shards = xrealloc(tenant->shards, tenant->cap_shards * sizeof(*tenant->shards));
    }
    TenantShardId tsid = {.tenant_id = tenant->id, .number = number, .count = count};
    TenantShard *s = slot_alloc(map);
    tenant_shard_init(s, &tsid, tenant);
    memmove(&tenant->shards[pos + 1], &tenant->shards[pos],
            (tenant->n_shards - pos) * sizeof(*tenant->shards));
    tenant->shards[pos] = s;
    tenant->n_shards++;
    map->n_shards++;
    if (out != NULL)
        *out = s;
    return true;
}

TenantShard *shard_map_get(const ShardMap *map, const TenantShardId *tsid)
{
    const Tenant *t = shard_map_tenant_get(map, &tsid->tenant_id);
    if (t == NULL)
        return NULL;
    size_t pos = tenant_lower_bound(t, tsid->number, tsid->count);
    if (pos < t->n_shards && t->shards[pos]->tsid.number == tsid->number &&
        t->shards[pos]->tsid.count == tsid->count)
        return t->shards[pos];
    return NULL;
}

bool shard_map_shard_remove(ShardMap *map, TenantShard *shard, Err *err)
{
    char tsid[TSID_STR_SIZE];
    tsid_format(&shard->tsid, tsid);
    if (!tenant_shard_intent_is_empty(shard)) {
        err_set(err, ERR_CONFLICT, "tenant shard %s still has an intent", tsid);
        return false;
    }
    if (shard->reconciler != NULL) {
        err_set(err, ERR_CONFLICT, "tenant shard %s is reconciling", tsid);
        return false;
    }
    Tenant *t = shard->tenant;
    size_t pos = tenant_lower_bound(t, shard->tsid.number, shard->tsid.count);
    if (pos >= t->n_shards || t->shards[pos] != shard) {
        err_set(err, ERR_NOT_FOUND, "tenant shard %s not found", tsid);
        return false;
    }
    memmove(&t->shards[pos], &t->shards[pos + 1], (t->n_shards - pos - 1) * sizeof(*t->shards));
    t->n_shards--;
    tenant_shard_finish(shard);
    slot_free(map, shard);
    map->n_shards--;
    return true;
}

/* ---- iteration ---- */

void shard_map_iter_init(ShardMapIter *it, const ShardMap *map)
{
    it->map = map;
    it->slab = 0;
    it->slot = 0;
}

TenantShard *shard_map_iter_next(ShardMapIter *it)
{
    const ShardMap *map = it->map;
    while (it->slab < map->n_slabs) {
        size_t used =
            it->slab + 1 == map->n_slabs ? map->last_slab_used : (size_t)SHARD_MAP_SLAB_SHARDS;
        Slab *slab = map->slabs[it->slab];
        while (it->slot < used) {
            TenantShard *s = &slab->slots[it->slot++];
            if (s->tenant != NULL)
                return s;
        }
        it->slab++;
        it->slot = 0;
    }
    return NULL;
}

void shard_map_tenant_iter_init(TenantIter *it, const ShardMap *map)
{
    it->map = map;
    it->pos = 0;
}

Tenant *shard_map_tenant_iter_next(TenantIter *it)
{
    while (it->pos < it->map->table_cap) {
        Tenant *t = it->map->table[it->pos++];
        if (t != NULL)
            return t;
    }
    return NULL;
}

static int tenant_ptr_cmp(const void *a, const void *b)
{
    const Tenant *ta = *(const Tenant *const *)a;
    const Tenant *tb = *(const Tenant *const *)b;
    return tenant_id_cmp(&ta->id, &tb->id);
}

size_t shard_map_list_tenants(const ShardMap *map, const TenantId *start_after, size_t limit,
                              Tenant **out)
{
    if (limit == 0 || map->n_tenants == 0)
        return 0;
    Tenant **all = xmalloc(map->n_tenants * sizeof(*all));
    size_t n = 0;
    for (size_t i = 0; i < map->table_cap; i++) {
        Tenant *t = map->table[i];
        if (t != NULL && (start_after == NULL || tenant_id_cmp(&t->id, start_after) > 0))
            all[n++] = t;
    }
    qsort(all, n, sizeof(*all), tenant_ptr_cmp);
    size_t k = n < limit ? n : limit;
    memcpy(out, all, k * sizeof(*out));
    free(all);
    return k;
}

size_t shard_map_count_dirty(const ShardMap *map, const NodeSet *nodes)
{
    size_t n = 0;
    ShardMapIter it;
    shard_map_iter_init(&it, map);
    const TenantShard *s;
    while ((s = shard_map_iter_next(&it)) != NULL) {
        if (tenant_shard_is_dirty(s, nodes))
            n++;
    }
    return n;
}
