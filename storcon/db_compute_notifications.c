/*
 * db_compute_notifications.c: the compute_notifications table (see the header). Hashes are
 * stored as 64 lowercase hex characters; a batch of writes travels as two text arrays
 * (tenant ids, hashes with NULL for "remove") unnested by one statement.
 */
#include "storcon/db_compute_notifications.h"

#include <stdlib.h>
#include <string.h>

#include "shared/str.h"

typedef struct LoadOp {
    DbComputeNotificationsFn cb;
    void *arg;
} LoadOp;

static const char SQL_CN_CLEAN[] =
    "DELETE FROM compute_notifications c WHERE NOT EXISTS (SELECT 1 FROM tenant_shards t "
    "WHERE t.tenant_id = c.tenant_id AND t.placement_policy::jsonb <> '\"Detached\"'::jsonb)";
static const char SQL_CN_LOAD[] = "SELECT tenant_id, body_sha256 FROM compute_notifications";

static bool hash_parse(const char *hex, uint8_t out[DB_BODY_HASH_SIZE])
{
    if (hex == NULL || strlen(hex) != 2 * DB_BODY_HASH_SIZE)
        return false;
    for (size_t i = 0; i < DB_BODY_HASH_SIZE; i++) {
        int hi = str_hex_digit((unsigned char)hex[2 * i]);
        int lo = str_hex_digit((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void hash_format(const uint8_t h[DB_BODY_HASH_SIZE], char out[2 * DB_BODY_HASH_SIZE + 1])
{
    static const char HEX[] = "0123456789abcdef";
    for (size_t i = 0; i < DB_BODY_HASH_SIZE; i++) {
        out[2 * i] = HEX[h[i] >> 4];
        out[2 * i + 1] = HEX[h[i] & 15];
    }
    out[2 * DB_BODY_HASH_SIZE] = '\0';
}

static void load_done(const DbResult *res, void *arg)
{
    LoadOp *op = arg;
    Err e;
    bool ok = res->ok;
    DbComputeNotification *rows = NULL;
    size_t n = 0;
    if (!ok) {
        e = res->err;
    } else {
        int count = db_result_rows(res, 1);
        rows = count > 0 ? xcalloc((size_t)count, sizeof(*rows)) : NULL;
        for (int i = 0; i < count && ok; i++) {
            const char *id = db_result_value(res, 1, i, 0);
            const char *hash = db_result_value(res, 1, i, 1);
            DbComputeNotification *r = &rows[n++];
            if (id == NULL || !tenant_id_parse(id, &r->tenant_id, &e) ||
                !hash_parse(hash, r->body_sha256)) {
                err_set(&e, ERR_INTERNAL, "compute_notifications: bad row %d", i);
                ok = false;
            }
        }
    }
    op->cb(ok ? NULL : &e, ok ? rows : NULL, ok ? n : 0, op->arg);
    free(rows);
    free(op);
}

void db_compute_notifications_load(DbPool *pool, DbComputeNotificationsFn cb, void *arg)
{
    LoadOp *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->arg = arg;
    const DbStatement stmts[] = {
        {.sql = SQL_CN_CLEAN},
        {.sql = SQL_CN_LOAD},
    };
    db_txn(pool, stmts, 2, load_done, op);
}

typedef struct WriteOp {
    DbComputeNotificationsDoneFn cb;
    void *arg;
} WriteOp;

static const char SQL_CN_WRITE[] =
    "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[]) AS v(tenant_id, body_sha256)), "
    "d AS (DELETE FROM compute_notifications c USING v "
    "WHERE c.tenant_id = v.tenant_id AND v.body_sha256 IS NULL) "
    "INSERT INTO compute_notifications (tenant_id, body_sha256) "
    "SELECT tenant_id, body_sha256 FROM v WHERE body_sha256 IS NOT NULL "
    "ON CONFLICT (tenant_id) DO UPDATE SET body_sha256 = excluded.body_sha256";

static void write_done(const DbResult *res, void *arg)
{
    WriteOp *op = arg;
    op->cb(res->ok ? NULL : &res->err, op->arg);
    free(op);
}

DbRequest *db_compute_notifications_write(DbPool *pool, const DbComputeNotificationWrite *writes,
                                          size_t n, DbComputeNotificationsDoneFn cb, void *arg)
{
    WriteOp *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->arg = arg;
    /* arrays of hex text: nothing in them needs quoting */
    StrBuf ids = STRBUF_INIT, hashes = STRBUF_INIT;
    strbuf_append_str(&ids, "{");
    strbuf_append_str(&hashes, "{");
    for (size_t i = 0; i < n; i++) {
        char id[ID_STR_SIZE], h[2 * DB_BODY_HASH_SIZE + 1];
        tenant_id_format(&writes[i].tenant_id, id);
        strbuf_printf(&ids, "%s%s", i ? "," : "", id);
        if (writes[i].has_hash)
            hash_format(writes[i].body_sha256, h);
        strbuf_printf(&hashes, "%s%s", i ? "," : "", writes[i].has_hash ? h : "NULL");
    }
    strbuf_append_str(&ids, "}");
    strbuf_append_str(&hashes, "}");
    const char *params[2] = {ids.data, hashes.data};
    DbRequest *req = db_exec(pool, SQL_CN_WRITE, 2, params, write_done, op);
    strbuf_finish(&ids);
    strbuf_finish(&hashes);
    return req;
}
