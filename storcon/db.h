/*
 * db.h: asynchronous Postgres access for the storage controller (libpq, on the event loop).
 *
 * Nothing here blocks the loop: connections are made with PQconnectStartParams/PQconnectPoll and
 * queries sent with PQsendQueryParams or, prepared once per session, PQsendQueryPrepared
 * (PQsendQuery only for multi-statement migration scripts),
 * with results collected by PQconsumeInput/PQisBusy/PQgetResult when an event on PQsocket fires.
 * (libpq resolves host names inside PQconnectPoll; use numeric hosts or "localhost" to keep that
 * fast.)
 *
 * Two layers:
 *  - DbConn: one connection, one query at a time. Used directly only by the migration runner,
 *    which needs a session of its own for its advisory lock.
 *  - DbPool: a fixed number of DbConns that reconnect with backoff (logging once per outage), a
 *    FIFO of requests waiting for a free connection, and two kinds of request:
 *      db_exec: one parameterised statement, autocommit;
 *      db_txn:  a fixed list of statements in one BEGIN ISOLATION LEVEL SERIALIZABLE ... COMMIT
 *               on one connection, run again as a whole (with backoff) after a serialization
 *               failure or deadlock (SQLSTATE 40001 / 40P01) or a connection lost before COMMIT.
 *               db_txn_first: the same, ahead of the queue, pipelined in one round trip.
 *
 * Rules for callers: every statement is a `static const char SQL_...[]` next to the one C
 * function that runs it, with $n parameters passed as text (NULL = SQL NULL); never build SQL by
 * concatenation. Callbacks run on the loop thread, exactly once per request, and never from
 * inside the call that started the request. Metrics (when a registry is given):
 * db_query_duration_seconds (every statement round trip), db_errors_total (failed statements and
 * failed connection attempts), db_txn_retries_total, db_pool_connections_ready,
 * db_pool_queue_length.
 */
#ifndef STORCON_DB_H
#define STORCON_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "shared/err.h"

struct event_base;
struct MetricsRegistry;

/* ---- results ---- */

typedef struct DbResult {
    bool ok;
    /* !ok: ERR_UNAVAILABLE (database unreachable, connection lost, statement timeout,
     * serialization retries exhausted: retry later), ERR_CONFLICT (unique violation, 23505),
     * ERR_INTERNAL (any other SQL error), or what a DbCheckFn returned. */
    Err err;
    char sqlstate[6]; /* the server's SQLSTATE when it reported the error, else "" */
    /* ok: one result per statement (db_exec and DbConn queries: 1; db_txn: one per statement, not
     * counting BEGIN/COMMIT). Borrowed: valid only during the callback; copy what you keep. */
    PGresult *const *results;
    size_t n_results;
    int attempts; /* db_txn: how many times the transaction ran (1 = no retry) */
} DbResult;

/* DbDoneFn: a request finished (ok or not). Runs on the loop thread. */
typedef void (*DbDoneFn)(const DbResult *res, void *arg);

/* db_result_rows: rows returned by statement `stmt` (0 when out of range). */
int db_result_rows(const DbResult *res, size_t stmt);
/* db_result_value: the text of (row, col) of statement `stmt`; NULL for SQL NULL or out of range.
 * Points into the result: valid during the callback. */
const char *db_result_value(const DbResult *res, size_t stmt, int row, int col);
/* db_result_i64: (row, col) as an integer; NULL, out of range or not a number -> ERR_INTERNAL. */
bool db_result_i64(const DbResult *res, size_t stmt, int row, int col, int64_t *out,
                   Err *err) MUST_CHECK;
/* db_result_affected: rows affected by an INSERT/UPDATE/DELETE (PQcmdTuples), 0 if none. */
uint64_t db_result_affected(const DbResult *res, size_t stmt);

/* db_sqlstate_err_code: the ErrCode a server error with this SQLSTATE maps to (see DbResult). */
ErrCode db_sqlstate_err_code(const char *sqlstate);
/* db_sqlstate_retryable: serialization failure (40001) or deadlock (40P01). */
bool db_sqlstate_retryable(const char *sqlstate);

/* db_url_describe: check a connection string or URL (PQconninfoParse) and describe it without its
 * password, e.g. "postgres@127.0.0.1:55432/storcon", into out[cap]. Malformed -> ERR_BAD_REQUEST
 * with libpq's message. */
bool db_url_describe(const char *url, char *out, size_t cap, Err *err) MUST_CHECK;

/* ---- DbConn: one asynchronous connection ---- */

typedef struct DbConn DbConn;

/* DbConnectFn: a connection attempt ended (err NULL: connected), or, for a callback given to
 * db_conn_on_lost, an idle connection was found broken. */
typedef void (*DbConnectFn)(DbConn *conn, const Err *err, void *arg);

/* db_conn_new: an unconnected connection to `url` (copied). metrics may be NULL. The caller frees
 * with db_conn_free. */
DbConn *db_conn_new(struct event_base *base, const char *url, struct MetricsRegistry *metrics);
/* db_conn_free: close and free. Safe from inside the connection's own callbacks (the free then
 * happens when the callback returns). No callback runs after it. */
void db_conn_free(DbConn *conn);

/* db_conn_connect: start connecting (closing any previous connection); cb runs once when
 * connected, failed, or timeout_ms passed (ERR_UNAVAILABLE with libpq's message, one line).
 * false (no callback) when the attempt cannot even start: malformed URL, out of memory. */
bool db_conn_connect(DbConn *conn, uint64_t timeout_ms, DbConnectFn cb, void *arg,
                     Err *err) MUST_CHECK;
/* db_conn_on_lost: cb runs when an idle connection breaks (server gone); NULL to stop. A broken
 * connection found during a query is reported to that query's callback instead. */
void db_conn_on_lost(DbConn *conn, DbConnectFn cb, void *arg);
bool db_conn_is_connected(const DbConn *conn);
/* db_conn_is_idle: connected and no query running. */
bool db_conn_is_idle(const DbConn *conn);

/* db_conn_query: send one parameterised statement (params are copied by libpq at once). false
 * (no callback) when it cannot be sent: not idle, or the connection broke (then it is closed). */
bool db_conn_query(DbConn *conn, const char *sql, int nparams, const char *const *params,
                   DbDoneFn cb, void *arg, Err *err) MUST_CHECK;
/* db_conn_prepare_statements: on = keep the statements this connection runs prepared on its
 * session (named, at most 96 of them; the rest run unnamed): the first
 * execution of a text goes out behind its prepare in the same round trip, later ones run by name,
 * so the server parses and plans each statement once per session. Entries are forgotten when the
 * connection closes or a statement fails with SQLSTATE 0A000 (a cached plan whose result type a
 * schema change altered). A statement missing from the session (SQLSTATE 26000: a pooler that
 * gives each transaction another server session) fails once and turns preparing off for the
 * connection. The pool's connections prepare; the migration runner's does not. */
void db_conn_prepare_statements(DbConn *conn, bool on);
/* db_conn_script: send a multi-statement script with the simple query protocol. ONLY for the
 * embedded migration files (a parameterised statement cannot hold several statements); never for
 * anything built at run time. The result is the last statement's, or the first error. */
bool db_conn_script(DbConn *conn, const char *sql, DbDoneFn cb, void *arg, Err *err) MUST_CHECK;

/* ---- DbPool: connections, queue, transactions ---- */

typedef struct DbPool DbPool;
typedef struct DbRequest DbRequest;

typedef struct DbPoolConfig {
    const char *url;                 /* copied */
    size_t size;                     /* connections, >= 1 */
    uint64_t connect_timeout_ms;     /* per attempt; 0 = STORCON_DB_CONNECT_TIMEOUT_MS */
    uint64_t queue_timeout_ms;       /* 0 = STORCON_DB_QUEUE_TIMEOUT_MS */
    uint64_t statement_timeout_ms;   /* server statement_timeout; 0 = STORCON_DB_STATEMENT_... */
    struct MetricsRegistry *metrics; /* NULL = no metrics */
} DbPoolConfig;

/* db_pool_new: create the pool and start connecting every connection. Never fails for an
 * unreachable database: requests wait in the queue (bounded by queue_timeout_ms) while the
 * connections retry. The caller frees with db_pool_free. */
DbPool *db_pool_new(struct event_base *base, const DbPoolConfig *cfg);
/* db_pool_free: close every connection and drop every pending request WITHOUT calling it back
 * (owners stop their own work first). Not from inside a DbDoneFn. */
void db_pool_free(DbPool *pool);
size_t db_pool_ready_count(const DbPool *pool); /* connected connections (idle or busy) */
size_t db_pool_queue_length(const DbPool *pool);

/* Attachments: a module above the pool (db_tenants' generation batcher) hangs one object of its
 * own on the pool, found again by a key (the address of a static in that module), so that every
 * caller sharing the pool shares it too. db_pool_free calls free_fn on each attachment first,
 * while the pool's requests are still linked (free_fn may db_cancel its own). */
#define DB_POOL_ATTACHMENTS_MAX 4
typedef struct DbPoolAttachment {
    const void *key;
    void *obj;
    void (*free_fn)(void *obj);
} DbPoolAttachment;
struct event_base *db_pool_base(const DbPool *pool);
/* db_pool_attached: the object attached under key, or NULL. */
void *db_pool_attached(const DbPool *pool, const void *key);
/* db_pool_attach: attach obj under key (not attached yet); the pool owns it from now on. */
void db_pool_attach(DbPool *pool, const void *key, void *obj, void (*free_fn)(void *obj));

/* db_exec: run one parameterised statement in autocommit mode. sql and params are copied.
 * A connection lost after the statement was sent fails the request with ERR_UNAVAILABLE (its
 * outcome is unknown) and is not retried. The returned handle is valid until the callback runs
 * or db_cancel; callers that never cancel may ignore it. */
DbRequest *db_exec(DbPool *pool, const char *sql, int nparams, const char *const *params,
                   DbDoneFn cb, void *arg);

/* DbCheckFn: optional check of one statement's result inside the transaction (e.g. "exactly one
 * row updated"). false rolls the transaction back and fails it with *err (not retried). arg is the
 * db_txn arg. */
typedef bool (*DbCheckFn)(const PGresult *res, void *arg, Err *err);

typedef struct DbStatement {
    const char *sql;
    int nparams;
    const char *const *params; /* nparams text values; NULL entries are SQL NULL */
    DbCheckFn check;           /* NULL = none */
} DbStatement;

/* db_txn: run stmts[0..n) in one serializable transaction on one connection. Everything is
 * copied. The callback gets all n results on success. Retried as a whole (at most
 * STORCON_DB_TXN_MAX_ATTEMPTS runs) on 40001/40P01 or a connection lost before COMMIT was sent;
 * a connection lost after COMMIT was sent fails with ERR_UNAVAILABLE "outcome unknown". */
DbRequest *db_txn(DbPool *pool, const DbStatement *stmts, size_t n, DbDoneFn cb, void *arg);
/* db_txn_first: db_txn for work a client is waiting on (tenant create batches): queued ahead of
 * every request waiting for a connection, and, when no statement has a check, pipelined: BEGIN,
 * the statements and COMMIT go to the server at once (libpq pipeline mode) and come back in one
 * round trip. A server error rolls back (and a serialization failure retries) as with db_txn; a
 * connection lost after sending fails with ERR_UNAVAILABLE "outcome unknown" (COMMIT was sent). */
DbRequest *db_txn_first(DbPool *pool, const DbStatement *stmts, size_t n, DbDoneFn cb, void *arg);

/* db_cancel: the callback of req will not run. A queued request is dropped; a running one
 * finishes on the server (a transaction commits or not) with its result discarded. */
void db_cancel(DbPool *pool, DbRequest *req);

#endif
