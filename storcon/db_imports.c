/*
 * db_imports.c: statements on the `timeline_imports` table (see db_imports.h).
 *
 * Each operation allocates an ImportOp with the caller's callback and the row's key, runs one
 * statement or one serializable transaction on the pool, decodes the rows in the completion,
 * calls back and frees the ImportOp.
 */
#include "storcon/db_imports.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "shared/str.h"

#define IMPORT_COLUMNS "tenant_id, timeline_id, shard_statuses"

typedef struct ImportOp {
    DbImportFn row_cb;
    DbImportListFn list_cb;
    DbImportDoneFn done_cb;
    void *arg;
    TenantId tenant;
    TimelineId timeline;
    char shard[SHARD_INDEX_STR_SIZE]; /* set_shard_status */
    size_t rows_stmt;                 /* the statement whose rows are the result */
} ImportOp;

typedef struct KeyParams {
    char tenant[ID_STR_SIZE];
    char timeline[ID_STR_SIZE];
} KeyParams;

static ImportOp *op_new(const TenantId *tenant, const TimelineId *timeline, KeyParams *key,
                        void *arg)
{
    ImportOp *op = xcalloc(1, sizeof(*op));
    op->arg = arg;
    if (tenant != NULL) {
        op->tenant = *tenant;
        tenant_id_format(tenant, key->tenant);
    }
    if (timeline != NULL) {
        op->timeline = *timeline;
        timeline_id_format(timeline, key->timeline);
    }
    return op;
}

/* op_not_found: ERR_NOT_FOUND naming the import. */
static void op_not_found(const ImportOp *op, Err *err)
{
    char tenant[ID_STR_SIZE], timeline[ID_STR_SIZE];
    tenant_id_format(&op->tenant, tenant);
    timeline_id_format(&op->timeline, timeline);
    err_set(err, ERR_NOT_FOUND, "no import of timeline %s of tenant %s", timeline, tenant);
}

/* import_from_row: decode one row selected with IMPORT_COLUMNS; the text points into the
 * result. */
static bool import_from_row(const DbResult *res, size_t stmt, int row, DbImport *out, Err *err)
{
    const char *tenant = db_result_value(res, stmt, row, 0);
    const char *timeline = db_result_value(res, stmt, row, 1);
    out->shard_statuses = db_result_value(res, stmt, row, 2);
    if (tenant == NULL || timeline == NULL || out->shard_statuses == NULL ||
        !tenant_id_parse(tenant, &out->tenant_id, err) ||
        !timeline_id_parse(timeline, &out->timeline_id, err)) {
        err_set(err, ERR_INTERNAL, "timeline_imports row %d is malformed", row);
        return false;
    }
    return true;
}

/* row_deliver: hand row 0 of op->rows_stmt to row_cb (none: ERR_NOT_FOUND). */
static void row_deliver(ImportOp *op, const DbResult *res, bool changed)
{
    Err e;
    DbImport row;
    bool ok = false;
    if (!res->ok)
        e = res->err;
    else if (db_result_rows(res, op->rows_stmt) == 0)
        op_not_found(op, &e);
    else
        ok = import_from_row(res, op->rows_stmt, 0, &row, &e);
    op->row_cb(ok ? NULL : &e, ok ? &row : NULL, ok && changed, op->arg);
    free(op);
}

/* ---- insert ---- */

static const char SQL_IMPORT_INSERT[] =
    "INSERT INTO timeline_imports (tenant_id, timeline_id, shard_statuses) "
    "VALUES ($1, $2, $3::jsonb) ON CONFLICT (tenant_id, timeline_id) DO NOTHING "
    "RETURNING tenant_id";
static const char SQL_IMPORT_INSERT_READ[] =
    "SELECT " IMPORT_COLUMNS " FROM timeline_imports WHERE tenant_id = $1 AND timeline_id = $2";

static void insert_done(const DbResult *res, void *arg)
{
    row_deliver(arg, res, db_result_rows(res, 0) > 0);
}

bool db_imports_insert(DbPool *pool, const TenantId *tenant, const TimelineId *timeline,
                       const char *shard_statuses, DbImportFn cb, void *arg, Err *err)
{
    if (shard_statuses == NULL || shard_statuses[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "shard_statuses: JSON text required");
        return false;
    }
    KeyParams key;
    ImportOp *op = op_new(tenant, timeline, &key, arg);
    op->row_cb = cb;
    op->rows_stmt = 1;
    const char *const insert_params[] = {key.tenant, key.timeline, shard_statuses};
    const char *const read_params[] = {key.tenant, key.timeline};
    const DbStatement stmts[] = {
        {.sql = SQL_IMPORT_INSERT, .nparams = 3, .params = insert_params},
        {.sql = SQL_IMPORT_INSERT_READ, .nparams = 2, .params = read_params},
    };
    db_txn(pool, stmts, 2, insert_done, op);
    return true;
}

/* ---- get and list ---- */

static const char SQL_IMPORT_GET[] =
    "SELECT " IMPORT_COLUMNS " FROM timeline_imports WHERE tenant_id = $1 AND timeline_id = $2";

static void get_done(const DbResult *res, void *arg)
{
    row_deliver(arg, res, false);
}

void db_imports_get(DbPool *pool, const TenantId *tenant, const TimelineId *timeline, DbImportFn cb,
                    void *arg)
{
    KeyParams key;
    ImportOp *op = op_new(tenant, timeline, &key, arg);
    op->row_cb = cb;
    const char *const params[] = {key.tenant, key.timeline};
    db_exec(pool, SQL_IMPORT_GET, 2, params, get_done, op);
}

static const char SQL_IMPORT_LIST[] =
    "SELECT " IMPORT_COLUMNS " FROM timeline_imports ORDER BY tenant_id, timeline_id";

/* list_done: decode every row; one bad row fails the whole list (a corrupt table). */
static void list_done(const DbResult *res, void *arg)
{
    ImportOp *op = arg;
    Err e;
    bool ok = res->ok;
    DbImport *rows = NULL;
    size_t n = 0;
    if (!ok) {
        e = res->err;
    } else {
        int count = db_result_rows(res, 0);
        rows = count > 0 ? xcalloc((size_t)count, sizeof(*rows)) : NULL;
        for (int i = 0; i < count && ok; i++)
            ok = import_from_row(res, 0, i, &rows[n++], &e);
    }
    op->list_cb(ok ? NULL : &e, ok ? rows : NULL, ok ? n : 0, op->arg);
    free(rows);
    free(op);
}

void db_imports_list(DbPool *pool, DbImportListFn cb, void *arg)
{
    KeyParams key;
    ImportOp *op = op_new(NULL, NULL, &key, arg);
    op->list_cb = cb;
    db_exec(pool, SQL_IMPORT_LIST, 0, NULL, list_done, op);
}

/* ---- merge one shard's status ---- */

/* Whether the shard is part of the import, whether its status is terminal ("Done" or an object
 * with an "Error" key), and whether the new status equals the stored one (as jsonb). */
static const char SQL_IMPORT_SHARD_READ[] =
    "SELECT shard_statuses ? $3::text, "
    "COALESCE(shard_statuses -> $3::text = '\"Done\"'::jsonb OR "
    "(jsonb_typeof(shard_statuses -> $3::text) = 'object' AND (shard_statuses -> $3::text) ? "
    "'Error'), "
    "false), "
    "COALESCE(shard_statuses -> $3::text = $4::jsonb, false) "
    "FROM timeline_imports WHERE tenant_id = $1 AND timeline_id = $2";

static const char SQL_IMPORT_SHARD_WRITE[] =
    "UPDATE timeline_imports SET shard_statuses = jsonb_set(shard_statuses, ARRAY[$3::text], "
    "$4::jsonb) "
    "WHERE tenant_id = $1 AND timeline_id = $2 RETURNING " IMPORT_COLUMNS;

static bool flag_at(const PGresult *r, int col)
{
    return !PQgetisnull(r, 0, col) && strcmp(PQgetvalue(r, 0, col), "t") == 0;
}

/* shard_check: refuse an unknown import or shard and a change of a terminal status (the
 * transaction rolls back, nothing is written). */
static bool shard_check(const PGresult *r, void *arg, Err *err)
{
    ImportOp *op = arg;
    if (PQntuples(r) == 0) {
        op_not_found(op, err);
        return false;
    }
    bool known = flag_at(r, 0), terminal = flag_at(r, 1), same = flag_at(r, 2);
    if (!known) {
        err_set(err, ERR_NOT_FOUND, "shard %s is not part of this import", op->shard);
        return false;
    }
    if (terminal && !same) {
        err_set(err, ERR_CONFLICT, "shard %s already has a final import status", op->shard);
        return false;
    }
    return true;
}

static void shard_done(const DbResult *res, void *arg)
{
    bool same = false;
    if (res->ok) {
        const char *v = db_result_value(res, 0, 0, 2);
        same = v != NULL && strcmp(v, "t") == 0;
    }
    row_deliver(arg, res, !same);
}

bool db_imports_set_shard_status(DbPool *pool, const TenantId *tenant, const TimelineId *timeline,
                                 ShardIndex shard, const char *status, DbImportFn cb, void *arg,
                                 Err *err)
{
    if (status == NULL || status[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "import status: JSON text required");
        return false;
    }
    KeyParams key;
    ImportOp *op = op_new(tenant, timeline, &key, arg);
    op->row_cb = cb;
    op->rows_stmt = 1;
    shard_index_format(shard, op->shard);
    const char *const params[] = {key.tenant, key.timeline, op->shard, status};
    const DbStatement stmts[] = {
        {.sql = SQL_IMPORT_SHARD_READ, .nparams = 4, .params = params, .check = shard_check},
        {.sql = SQL_IMPORT_SHARD_WRITE, .nparams = 4, .params = params},
    };
    db_txn(pool, stmts, 2, shard_done, op);
    return true;
}

/* ---- delete ---- */

static const char SQL_IMPORT_DELETE[] =
    "DELETE FROM timeline_imports WHERE tenant_id = $1 AND timeline_id = $2";

static void delete_done(const DbResult *res, void *arg)
{
    ImportOp *op = arg;
    Err e;
    bool ok = false;
    if (!res->ok)
        e = res->err;
    else if (db_result_affected(res, 0) == 0)
        op_not_found(op, &e);
    else
        ok = true;
    op->done_cb(ok ? NULL : &e, op->arg);
    free(op);
}

void db_imports_delete(DbPool *pool, const TenantId *tenant, const TimelineId *timeline,
                       DbImportDoneFn cb, void *arg)
{
    KeyParams key;
    ImportOp *op = op_new(tenant, timeline, &key, arg);
    op->done_cb = cb;
    const char *const params[] = {key.tenant, key.timeline};
    db_exec(pool, SQL_IMPORT_DELETE, 2, params, delete_done, op);
}
