/*
 * db_tenants.h: the `tenant_shards` table: tenants, their shards and generations, one function
 * per statement or atomic operation, all asynchronous on the DbPool.
 *
 * The atomic operations of spec/storcon.md are each one transaction: generation increments are
 * batched into one UPDATE per batch (a one-statement transaction, retried after a deadlock); the
 * multi-statement ones (tenant insert, re-attach, split begin/complete/abort,
 * tenant delete) are serializable transactions that the pool runs again after a serialization
 * failure or deadlock. The database is written before memory: call these first, update the
 * in-memory state in the callback.
 *
 * The JSON columns (placement_policy, config, scheduling_policy) are passed in and handed back as
 * text; only the tenant-insert comparison looks at them (as jsonb, so formatting does not matter).
 *
 * Every callback runs once, on the loop thread, never inside the call that started it, with
 * err == NULL on success or an Err: ERR_NOT_FOUND (no such tenant, shard or node), ERR_CONFLICT
 * (exists with other parameters, split in a state that forbids the operation), ERR_UNAVAILABLE
 * (database unreachable or transaction retries exhausted: retry later), ERR_INTERNAL (anything
 * else). Rows handed to a callback are borrowed, including the strings they point to: valid only
 * during the callback; copy what you keep. Functions returning bool fail (false, no callback,
 * nothing sent) only for invalid arguments (ERR_BAD_REQUEST).
 */
#ifndef STORCON_DB_TENANTS_H
#define STORCON_DB_TENANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/db.h"

struct event_base;

#define DB_NODE_ID_NONE UINT64_MAX /* generation_pageserver IS NULL */

/* DbTenantShard: one row. */
typedef struct DbTenantShard {
    TenantShardId tsid;
    uint32_t stripe_size;
    Generation generation;         /* latest issued; GENERATION_NONE when NULL */
    NodeId generation_pageserver;  /* node it was issued to; DB_NODE_ID_NONE when NULL */
    bool splitting;                /* a split of this tenant has begun and not ended */
    const char *placement_policy;  /* JSON text */
    const char *config;            /* JSON text */
    const char *scheduling_policy; /* JSON text */
    const char *preferred_az_id;   /* NULL: none */
} DbTenantShard;

/* DbTenantCreate: a new tenant; every shard gets the same values. */
typedef struct DbTenantCreate {
    TenantId tenant_id;
    ShardCount shard_count;        /* 0 (unsharded) .. 255 */
    uint32_t stripe_size;          /* > 0, <= INT32_MAX */
    Generation generation;         /* initial generation, usually 0; GENERATION_NONE = NULL */
    NodeId generation_pageserver;  /* usually DB_NODE_ID_NONE */
    const char *placement_policy;  /* JSON text, required */
    const char *config;            /* JSON text; NULL = "{}" */
    const char *scheduling_policy; /* JSON text; NULL = "\"Active\"" */
    const char *preferred_az_id;   /* NULL: none */
    /* NULL, or one node per shard (shard_count, 1 when unsharded): shard n's generation_pageserver
     * instead of generation_pageserver (needs a generation). A create names the nodes it picked,
     * so that its insert issues each shard's first generation and no second commit is needed. */
    const NodeId *shard_pageservers;
} DbTenantCreate;

/* DbShardGeneration: one shard's latest generation (validate). */
typedef struct DbShardGeneration {
    TenantShardId tsid;
    Generation generation;        /* GENERATION_NONE when NULL */
    NodeId generation_pageserver; /* DB_NODE_ID_NONE when NULL */
} DbShardGeneration;

/* DbShardsFn: shards[0..n) (NULL when n == 0). */
typedef void (*DbShardsFn)(const Err *err, const DbTenantShard *shards, size_t n, void *arg);
/* DbTenantCreateFn: the tenant's rows now in the database; created false for an identical
 * repeat. */
typedef void (*DbTenantCreateFn)(const Err *err, const DbTenantShard *shards, size_t n,
                                 bool created, void *arg);
/* DbGenerationFn: the generation just issued. */
typedef void (*DbGenerationFn)(const Err *err, Generation generation, void *arg);
/* DbGenerationsFn: the shards that were found, in tenant, count, number order. */
typedef void (*DbGenerationsFn)(const Err *err, const DbShardGeneration *found, size_t n,
                                void *arg);
/* DbTenantsDoneFn: an update or delete finished. */
typedef void (*DbTenantsDoneFn)(const Err *err, void *arg);

/* ---- tenant inserts, with group commit ----
 *
 * A DbTenantInserter batches the inserts of concurrent creates into shared transactions: the
 * creates submitted during one loop pass, and those arriving while max_in_flight batches are
 * committing, go together (at most max_batch tenants) in one serializable transaction of one
 * statement, queued ahead of other database work (db_txn_first). Each create still gets its own
 * outcome:
 *  - a new tenant: all its rows inserted (created true);
 *  - rows that exist with the same shard count, stripe size, placement policy and config: success
 *    with created false (generations and nodes as stored now);
 *  - any other existing rows: ERR_CONFLICT, nothing written for it; its batch-mates go on;
 *  - a row the database refuses (e.g. config that is not JSON): the batch is rolled back and its
 *    creates run again one per transaction, so only the bad one fails (ERR_INTERNAL);
 *  - a database failure (unreachable, lost connection, outcome unknown, statement timeout,
 *    serialization retries exhausted): every create of that batch fails with ERR_UNAVAILABLE and
 *    none of them is acknowledged; creates in other batches are not affected. A serialization
 *    failure (a concurrent insert of the same tenant) runs the whole batch again.
 * A callback runs only after the transaction holding its rows committed. */
typedef struct DbTenantInserter DbTenantInserter;

/* DbTenantInserterStats: what the inserter has done (tests, benchmarks). */
typedef struct DbTenantInserterStats {
    uint64_t batches; /* transactions started (a retried one counts once) */
    uint64_t creates; /* creates in them */
    uint64_t largest; /* the most creates in one transaction */
    uint64_t split;   /* batches rolled back for a bad row and run again one by one */
} DbTenantInserterStats;

/* db_tenants_inserter_new: an inserter on pool; max_batch 0 = STORCON_DB_INSERT_BATCH_MAX
 * tenants per transaction, max_in_flight 0 = STORCON_DB_INSERT_IN_FLIGHT transactions at once.
 * The caller frees it with db_tenants_inserter_free, before the pool. */
DbTenantInserter *db_tenants_inserter_new(struct event_base *base, DbPool *pool, size_t max_batch,
                                          size_t max_in_flight);
/* db_tenants_inserter_free: drop every create not answered yet WITHOUT calling it back (a batch
 * in flight commits or not on the server). */
void db_tenants_inserter_free(DbTenantInserter *ins);
DbTenantInserterStats db_tenants_inserter_stats(const DbTenantInserter *ins);

/* db_tenants_insert: insert every shard of a new tenant (max(count, 1) rows), batched as above.
 * false (ERR_BAD_REQUEST, no callback): stripe size 0 or above INT32_MAX, generation out of
 * range, no placement policy. */
bool db_tenants_insert(DbTenantInserter *ins, const DbTenantCreate *create, DbTenantCreateFn cb,
                       void *arg, Err *err) MUST_CHECK;

/* db_tenants_load: every shard row (startup), ordered by tenant, count, number; with
 * include_detached false, rows whose placement policy is "Detached" are left out. */
void db_tenants_load(DbPool *pool, bool include_detached, DbShardsFn cb, void *arg);

/* db_tenants_get: one tenant's rows (parents and children during a split), ordered by count and
 * number; ERR_NOT_FOUND when there are none. */
void db_tenants_get(DbPool *pool, const TenantId *tenant, DbShardsFn cb, void *arg);

/* db_tenants_increment_generation: generation + 1 (NULL counts as 0) and record `node`
 * (DB_NODE_ID_NONE: none), committed before the callback; concurrent calls get distinct,
 * increasing values. Calls are coalesced per pool: the ones waiting while a batch is in flight go
 * out together as one UPDATE ... FROM unnest(...) of up to 1000 shards (see db_tenants.c); a
 * failed batch fails exactly its own callers. ERR_NOT_FOUND for an unknown shard. */
void db_tenants_increment_generation(DbPool *pool, const TenantShardId *shard, NodeId node,
                                     DbGenerationFn cb, void *arg);

/* db_tenants_reattach: one transaction: bump the generation of every shard whose generation was
 * issued to `node`, and return those rows (new generations). ERR_NOT_FOUND when the node is not
 * registered (or is a tombstone). */
void db_tenants_reattach(DbPool *pool, NodeId node, DbShardsFn cb, void *arg);

/* db_tenants_generations: the latest generation of each of shards[0..n) that exists (unknown
 * shards are omitted). */
void db_tenants_generations(DbPool *pool, const TenantShardId *shards, size_t n, DbGenerationsFn cb,
                            void *arg);

/* Setters: `shard` NULL means every row of the tenant, else the rows with that number and count.
 * ERR_NOT_FOUND when no row matched. The JSON setters return false (ERR_BAD_REQUEST) for NULL
 * or empty JSON text; the database refuses text that is not JSON (ERR_INTERNAL). */
bool db_tenants_set_placement_policy(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                                     const char *json, DbTenantsDoneFn cb, void *arg,
                                     Err *err) MUST_CHECK;
bool db_tenants_set_config(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                           const char *json, DbTenantsDoneFn cb, void *arg, Err *err) MUST_CHECK;
bool db_tenants_set_scheduling_policy(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                                      const char *json, DbTenantsDoneFn cb, void *arg,
                                      Err *err) MUST_CHECK;
/* db_tenants_set_preferred_az: az NULL clears it. */
void db_tenants_set_preferred_az(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                                 const char *az, DbTenantsDoneFn cb, void *arg);

/* db_tenants_detach: generation_pageserver = NULL (the generation stays); shard NULL = every
 * row of the tenant. ERR_NOT_FOUND when no row matched. */
void db_tenants_detach(DbPool *pool, const TenantId *tenant, const ShardIndex *shard,
                       DbTenantsDoneFn cb, void *arg);

/* db_tenants_delete: delete all the tenant's rows (and its timeline_imports rows) in one
 * transaction; ERR_NOT_FOUND when it has none. */
void db_tenants_delete(DbPool *pool, const TenantId *tenant, DbTenantsDoneFn cb, void *arg);

/* Shard split (spec "Shard split"): parents have shard_count old_count (0 = unsharded, one
 * shard), children new_count; child n inherits from parent n % max(old_count, 1): its generation,
 * node, policies, config and AZ. Each is one transaction. All three give ERR_NOT_FOUND for a
 * tenant without rows, ERR_CONFLICT when rows with a third shard count exist, and false
 * (ERR_BAD_REQUEST) unless new_count > max(old_count, 1) and new_count is a multiple of it.
 *
 * db_tenants_split_begin: requires exactly the parent rows, none splitting (else ERR_CONFLICT);
 * marks them splitting and inserts the children (splitting too). new_stripe_size 0 keeps the
 * parents'. Callback: the children. */
bool db_tenants_split_begin(DbPool *pool, const TenantId *tenant, ShardCount old_count,
                            ShardCount new_count, uint32_t new_stripe_size, DbShardsFn cb,
                            void *arg, Err *err) MUST_CHECK;
/* db_tenants_split_complete: requires all new_count children (else ERR_CONFLICT); deletes the
 * parents and clears splitting. Repeating it after success succeeds. Callback: the children. */
bool db_tenants_split_complete(DbPool *pool, const TenantId *tenant, ShardCount old_count,
                               ShardCount new_count, DbShardsFn cb, void *arg, Err *err) MUST_CHECK;
/* db_tenants_split_abort: requires all the parents (else ERR_CONFLICT: the split completed);
 * deletes the children and clears splitting. Repeating it after success succeeds. Callback: the
 * parents. */
bool db_tenants_split_abort(DbPool *pool, const TenantId *tenant, ShardCount old_count,
                            ShardCount new_count, DbShardsFn cb, void *arg, Err *err) MUST_CHECK;

#endif
