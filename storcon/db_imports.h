/*
 * db_imports.h: the `timeline_imports` table (spec/import.md): one row per timeline import in
 * progress, holding every shard's status as a JSON object keyed by shard index ("NNCC"), e.g.
 * {"0002": {"InProgress": null}, "0102": "Done"}. Only the row shape lives here; the import logic
 * (when to insert, finalise, notify) belongs to the import module.
 *
 * The only JSON these statements look into is one shard's status, to tell a terminal one ("Done"
 * or {"Error": ...}) from the others. Callbacks run once, on the loop thread, never inside the call
 * that started them, with err == NULL on success or an Err: ERR_NOT_FOUND (no such import or
 * shard), ERR_CONFLICT (a terminal status would change), ERR_UNAVAILABLE (database unreachable:
 * retry later), ERR_INTERNAL (anything else, including text that is not JSON). Rows handed to a
 * callback are borrowed, including their strings: valid only during the callback.
 */
#ifndef STORCON_DB_IMPORTS_H
#define STORCON_DB_IMPORTS_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"
#include "shared/id.h"
#include "storcon/db.h"

typedef struct DbImport {
    TenantId tenant_id;
    TimelineId timeline_id;
    const char *shard_statuses; /* JSON object text, as Postgres renders jsonb */
} DbImport;

/* DbImportFn: the row as stored after the operation. `changed`: db_imports_insert created the
 * row / db_imports_set_shard_status changed the shard's status; false for db_imports_get. */
typedef void (*DbImportFn)(const Err *err, const DbImport *row, bool changed, void *arg);
/* DbImportListFn: rows[0..n) ordered by tenant and timeline (NULL when n == 0). */
typedef void (*DbImportListFn)(const Err *err, const DbImport *rows, size_t n, void *arg);
typedef void (*DbImportDoneFn)(const Err *err, void *arg);

/* db_imports_insert: create the row with the given statuses; if it exists already, keep it as it
 * is (idempotent: changed false, the stored row). false (ERR_BAD_REQUEST) for NULL or empty
 * shard_statuses. */
bool db_imports_insert(DbPool *pool, const TenantId *tenant, const TimelineId *timeline,
                       const char *shard_statuses, DbImportFn cb, void *arg, Err *err) MUST_CHECK;

/* db_imports_get: ERR_NOT_FOUND when there is no row. */
void db_imports_get(DbPool *pool, const TenantId *tenant, const TimelineId *timeline, DbImportFn cb,
                    void *arg);

/* db_imports_list: every row (a restarting controller finalises the complete ones). */
void db_imports_list(DbPool *pool, DbImportListFn cb, void *arg);

/* db_imports_set_shard_status: merge one shard's status into the row, in one transaction: no row
 * or a shard not in it -> ERR_NOT_FOUND; the same status again -> success, changed false; a
 * terminal status replaced by a different one -> ERR_CONFLICT. false (ERR_BAD_REQUEST) for NULL
 * or empty status. */
bool db_imports_set_shard_status(DbPool *pool, const TenantId *tenant, const TimelineId *timeline,
                                 ShardIndex shard, const char *status, DbImportFn cb, void *arg,
                                 Err *err) MUST_CHECK;

/* db_imports_delete: ERR_NOT_FOUND when there is no row. */
void db_imports_delete(DbPool *pool, const TenantId *tenant, const TimelineId *timeline,
                       DbImportDoneFn cb, void *arg);

#endif
