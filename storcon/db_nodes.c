/*
 * db_nodes.c: statements on the `nodes` table (see db_nodes.h).
 *
 * Each operation allocates a small context holding the caller's callback, hands one statement
 * (or, for registration, one serializable transaction) to the pool, and in the pool's completion
 * decodes the rows into DbNode structs, calls back and frees the context.
 */
#include "storcon/db_nodes.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "shared/str.h"

/* The column list every SELECT/RETURNING decodes with node_from_row (order matters). */
#define NODE_COLUMNS                                                                               \
    "node_id, scheduling_policy, listen_http_addr, listen_http_port, listen_https_port, "          \
    "listen_pg_addr, listen_pg_port, availability_zone_id, lifecycle"

enum {
    COL_NODE_ID,
    COL_SCHEDULING_POLICY,
    COL_HTTP_ADDR,
    COL_HTTP_PORT,
    COL_HTTPS_PORT,
    COL_PG_ADDR,
    COL_PG_PORT,
    COL_AZ,
    COL_LIFECYCLE,
};

#define NODE_ID_TEXT_SIZE 24
#define PORT_TEXT_SIZE    8

/* ---- decoding ---- */

/* text_at: copy a non-NULL text column into dst[cap]; a NULL or a value that does not fit is a
 * corrupt row (ERR_INTERNAL). */
static bool text_at(const DbResult *res, size_t stmt, int row, int col, char *dst, size_t cap,
                    Err *err)
{
    const char *v = db_result_value(res, stmt, row, col);
    if (v == NULL) {
        err_set(err, ERR_INTERNAL, "nodes row %d: column %d is NULL", row, col);
        return false;
    }
    if (!str_copy(dst, cap, v)) {
        err_set(err, ERR_INTERNAL, "nodes row %d: column %d longer than %zu bytes", row, col,
                cap - 1);
        return false;
    }
    return true;
}

/* port_at: a port column; NULL allowed only when nullable (-> 0). */
static bool port_at(const DbResult *res, size_t stmt, int row, int col, bool nullable,
                    uint16_t *out, Err *err)
{
    const char *v = db_result_value(res, stmt, row, col);
    uint64_t port = 0;
    if (v == NULL && nullable) {
        *out = 0;
        return true;
    }
    if (v == NULL || !parse_u64(v, 1, UINT16_MAX, &port)) {
        err_set(err, ERR_INTERNAL, "nodes row %d: bad port \"%s\"", row, v != NULL ? v : "NULL");
        return false;
    }
    *out = (uint16_t)port;
    return true;
}

/* node_from_row: decode one row selected with NODE_COLUMNS. */
static bool node_from_row(const DbResult *res, size_t stmt, int row, DbNode *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    int64_t id = 0;
    if (!db_result_i64(res, stmt, row, COL_NODE_ID, &id, err))
        return false;
    if (id < 0) {
        err_set(err, ERR_INTERNAL, "nodes row %d: negative node id %" PRId64, row, id);
        return false;
    }
    out->node_id = (NodeId)id;
    char lifecycle[16];
    if (!text_at(res, stmt, row, COL_SCHEDULING_POLICY, out->scheduling_policy,
                 sizeof(out->scheduling_policy), err) ||
        !text_at(res, stmt, row, COL_HTTP_ADDR, out->listen_http_addr,
                 sizeof(out->listen_http_addr), err) ||
        !port_at(res, stmt, row, COL_HTTP_PORT, false, &out->listen_http_port, err) ||
        !port_at(res, stmt, row, COL_HTTPS_PORT, true, &out->listen_https_port, err) ||
        !text_at(res, stmt, row, COL_PG_ADDR, out->listen_pg_addr, sizeof(out->listen_pg_addr),
                 err) ||
        !port_at(res, stmt, row, COL_PG_PORT, false, &out->listen_pg_port, err) ||
        !text_at(res, stmt, row, COL_AZ, out->availability_zone_id,
                 sizeof(out->availability_zone_id), err) ||
        !text_at(res, stmt, row, COL_LIFECYCLE, lifecycle, sizeof(lifecycle), err))
        return false;
    if (strcmp(lifecycle, "active") == 0) {
        out->deleted = false;
    } else if (strcmp(lifecycle, "deleted") == 0) {
        out->deleted = true;
    } else {
        err_set(err, ERR_INTERNAL, "node %" PRIu64 ": unknown lifecycle \"%s\"", out->node_id,
                lifecycle);
        return false;
    }
    return true;
}

bool db_nodes_matches(const DbNode *a, const DbNode *b)
{
    return a->node_id == b->node_id && strcmp(a->listen_http_addr, b->listen_http_addr) == 0 &&
           a->listen_http_port == b->listen_http_port &&
           a->listen_https_port == b->listen_https_port &&
           strcmp(a->listen_pg_addr, b->listen_pg_addr) == 0 &&
           a->listen_pg_port == b->listen_pg_port &&
           strcmp(a->availability_zone_id, b->availability_zone_id) == 0;
}

/* bounded_nonempty: s is NUL-terminated within cap and not empty. */
static bool bounded_nonempty(const char *s, size_t cap)
{
    return s[0] != '\0' && memchr(s, '\0', cap) != NULL;
}

/* node_validate: what the table's CHECKs would refuse, as a 400 naming the field. */
static bool node_validate(const DbNode *n, Err *err)
{
    if (n->node_id > (NodeId)INT64_MAX) {
        err_set(err, ERR_BAD_REQUEST, "node_id %" PRIu64 " out of range", n->node_id);
        return false;
    }
    if (!bounded_nonempty(n->listen_http_addr, sizeof(n->listen_http_addr))) {
        err_set(err, ERR_BAD_REQUEST, "listen_http_addr must not be empty");
        return false;
    }
    if (!bounded_nonempty(n->listen_pg_addr, sizeof(n->listen_pg_addr))) {
        err_set(err, ERR_BAD_REQUEST, "listen_pg_addr must not be empty");
        return false;
    }
    if (n->listen_http_port == 0 || n->listen_pg_port == 0) {
        err_set(err, ERR_BAD_REQUEST, "listen_http_port and listen_pg_port must be 1..65535");
        return false;
    }
    if (!bounded_nonempty(n->scheduling_policy, sizeof(n->scheduling_policy))) {
        err_set(err, ERR_BAD_REQUEST, "scheduling policy must not be empty");
        return false;
    }
    if (memchr(n->availability_zone_id, '\0', sizeof(n->availability_zone_id)) == NULL) {
        err_set(err, ERR_BAD_REQUEST, "availability_zone_id not terminated");
        return false;
    }
    return true;
}

/* ---- register ---- */

typedef struct RegisterOp {
    DbNodeRegisterFn cb;
    void *arg;
    DbNode want;
} RegisterOp;

/* ON CONFLICT DO NOTHING, then read whatever row holds the id: either ours or the one that was
 * there. Both in one serializable transaction, so a concurrent registration of the same id makes
 * one of the two retry instead of seeing no row. */
static const char SQL_NODE_INSERT[] =
    "INSERT INTO nodes (node_id, scheduling_policy, listen_http_addr, listen_http_port, "
    "listen_https_port, listen_pg_addr, listen_pg_port, availability_zone_id, lifecycle) "
    "VALUES ($1::bigint, $2, $3, $4::integer, $5::integer, $6, $7::integer, $8, 'active') "
    "ON CONFLICT (node_id) DO NOTHING RETURNING node_id";
static const char SQL_NODE_SELECT_ONE[] = "SELECT " NODE_COLUMNS " FROM nodes WHERE node_id = $1";

/* register_done: decode the stored row and compare it with what was asked for. */
static void register_done(const DbResult *res, void *arg)
{
    RegisterOp *op = arg;
    Err e;
    DbNode stored;
    bool ok = false, created = false;
    if (!res->ok) {
        e = res->err;
    } else if (db_result_rows(res, 1) != 1) {
        err_set(&e, ERR_INTERNAL, "node %" PRIu64 ": no row after insert", op->want.node_id);
    } else if (node_from_row(res, 1, 0, &stored, &e)) {
        created = db_result_rows(res, 0) == 1;
        if (stored.deleted) {
            err_set(&e, ERR_CONFLICT, "node %" PRIu64 " was deleted and may not register again",
                    stored.node_id);
        } else if (!db_nodes_matches(&stored, &op->want)) {
            err_set(&e, ERR_CONFLICT,
                    "node %" PRIu64 " is already registered with other addresses "
                    "(http %s:%u, pg %s:%u, az \"%s\")",
                    stored.node_id, stored.listen_http_addr, stored.listen_http_port,
                    stored.listen_pg_addr, stored.listen_pg_port, stored.availability_zone_id);
        } else {
            ok = true;
        }
    }
    op->cb(ok ? NULL : &e, ok ? &stored : NULL, created, op->arg);
    free(op);
}

bool db_nodes_insert(DbPool *pool, const DbNode *node, DbNodeRegisterFn cb, void *arg, Err *err)
{
    if (!node_validate(node, err))
        return false;
    char id[NODE_ID_TEXT_SIZE], http_port[PORT_TEXT_SIZE], https_port[PORT_TEXT_SIZE],
        pg_port[PORT_TEXT_SIZE];
    snprintf(id, sizeof(id), "%" PRIu64, node->node_id);
    snprintf(http_port, sizeof(http_port), "%u", node->listen_http_port);
    snprintf(https_port, sizeof(https_port), "%u", node->listen_https_port);
    snprintf(pg_port, sizeof(pg_port), "%u", node->listen_pg_port);
    const char *const insert_params[] = {id,
                                         node->scheduling_policy,
                                         node->listen_http_addr,
                                         http_port,
                                         node->listen_https_port != 0 ? https_port : NULL,
                                         node->listen_pg_addr,
                                         pg_port,
                                         node->availability_zone_id};
    const char *const select_params[] = {id};
    const DbStatement stmts[] = {
        {.sql = SQL_NODE_INSERT, .nparams = 8, .params = insert_params},
        {.sql = SQL_NODE_SELECT_ONE, .nparams = 1, .params = select_params},
    };
    RegisterOp *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->arg = arg;
    op->want = *node;
    op->want.deleted = false;
    db_txn(pool, stmts, 2, register_done, op);
    return true;
}

/* ---- list ---- */

typedef struct ListOp {
    DbNodeListFn cb;
    void *arg;
} ListOp;

static const char SQL_NODE_LIST[] =
    "SELECT " NODE_COLUMNS " FROM nodes WHERE lifecycle = 'active' ORDER BY node_id";

/* list_done: decode every row; one bad row fails the whole list (a corrupt table). */
static void list_done(const DbResult *res, void *arg)
{
    ListOp *op = arg;
    Err e;
    bool ok = res->ok;
    DbNode *nodes = NULL;
    size_t n = 0;
    if (!ok) {
        e = res->err;
    } else {
        int rows = db_result_rows(res, 0);
        nodes = rows > 0 ? xcalloc((size_t)rows, sizeof(*nodes)) : NULL;
        for (int i = 0; i < rows && ok; i++)
            ok = node_from_row(res, 0, i, &nodes[n++], &e);
    }
    op->cb(ok ? NULL : &e, ok ? nodes : NULL, ok ? n : 0, op->arg);
    free(nodes);
    free(op);
}

static void list_start(DbPool *pool, const char *sql, DbNodeListFn cb, void *arg)
{
    ListOp *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->arg = arg;
    db_exec(pool, sql, 0, NULL, list_done, op);
}

void db_nodes_list(DbPool *pool, DbNodeListFn cb, void *arg)
{
    list_start(pool, SQL_NODE_LIST, cb, arg);
}

static const char SQL_NODE_LIST_TOMBSTONES[] =
    "SELECT " NODE_COLUMNS " FROM nodes WHERE lifecycle = 'deleted' ORDER BY node_id";

void db_nodes_list_tombstones(DbPool *pool, DbNodeListFn cb, void *arg)
{
    list_start(pool, SQL_NODE_LIST_TOMBSTONES, cb, arg);
}

/* ---- updates ---- */

typedef struct UpdateOp {
    DbNodeDoneFn cb;
    void *arg;
    NodeId node_id;
} UpdateOp;

/* update_done: one UPDATE that must hit exactly one row. */
static void update_done(const DbResult *res, void *arg)
{
    UpdateOp *op = arg;
    Err e;
    bool ok = false;
    if (!res->ok)
        e = res->err;
    else if (db_result_affected(res, 0) == 0)
        err_set(&e, ERR_NOT_FOUND, "node %" PRIu64 " not found", op->node_id);
    else
        ok = true;
    op->cb(ok ? NULL : &e, op->arg);
    free(op);
}

/* update_start: run an UPDATE keyed by node id ($1), with $2 = value unless value is NULL. */
static void update_start(DbPool *pool, const char *sql, NodeId node_id, const char *value,
                         DbNodeDoneFn cb, void *arg)
{
    char id[NODE_ID_TEXT_SIZE];
    snprintf(id, sizeof(id), "%" PRIu64, node_id);
    const char *const params[] = {id, value};
    UpdateOp *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->arg = arg;
    op->node_id = node_id;
    db_exec(pool, sql, value != NULL ? 2 : 1, params, update_done, op);
}

static const char SQL_NODE_SET_POLICY[] =
    "UPDATE nodes SET scheduling_policy = $2 WHERE node_id = $1 AND lifecycle = 'active'";

bool db_nodes_set_scheduling_policy(DbPool *pool, NodeId node_id, const char *policy,
                                    DbNodeDoneFn cb, void *arg, Err *err)
{
    if (policy == NULL || policy[0] == '\0' || strlen(policy) >= DB_NODE_POLICY_MAX) {
        err_set(err, ERR_BAD_REQUEST, "scheduling policy must be 1..%d bytes",
                DB_NODE_POLICY_MAX - 1);
        return false;
    }
    update_start(pool, SQL_NODE_SET_POLICY, node_id, policy, cb, arg);
    return true;
}

static const char SQL_NODE_TOMBSTONE[] =
    "UPDATE nodes SET lifecycle = 'deleted' WHERE node_id = $1";

void db_nodes_tombstone(DbPool *pool, NodeId node_id, DbNodeDoneFn cb, void *arg)
{
    update_start(pool, SQL_NODE_TOMBSTONE, node_id, NULL, cb, arg);
}

static const char SQL_NODE_DELETE_TOMBSTONE[] =
    "DELETE FROM nodes WHERE node_id = $1 AND lifecycle = 'deleted'";

void db_nodes_delete_tombstone(DbPool *pool, NodeId node_id, DbNodeDoneFn cb, void *arg)
{
    update_start(pool, SQL_NODE_DELETE_TOMBSTONE, node_id, NULL, cb, arg);
}
