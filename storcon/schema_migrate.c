/*
 * schema_migrate.c: the schema migration runner (state machine overview in schema_migrate.h).
 *
 * Every state but the terminal ones owns exactly one action: a statement on the migration
 * connection, a connection attempt, or a timer. schema_migrate_step() is called when that action
 * completes, picks the next state, and schema_migrate_set_state() checks the transition against the
 * table below (SCHEMA_MIGRATE_FSM, shared/fsm.h; its diagram is in docs/state-machines.md) and
 * logs it. The migration scripts are sent with db_conn_script (simple query
 * protocol): they hold several statements, which a parameterised statement cannot. That is the
 * one exception to the parameterised-statement rule, and it applies only to the SQL files
 * embedded at build time.
 */
#include "storcon/schema_migrate.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "shared/daemon.h"
#include "shared/failpoint.h"
#include "shared/fsm.h"
#include "shared/log.h"
#include "shared/str.h"
#include "storcon/db.h"
#include "storcon/defaults.h"

#define FAILPOINT_BEFORE_COMMIT "storcon-migrate-before-commit"

struct SchemaMigrator {
    struct event_base *base;
    char *url;
    char url_desc[256];
    DbConn *conn;
    SchemaMigrateState state;
    struct event *timer; /* connect backoff, failpoint delay, delivery of the outcome */

    uint64_t connect_timeout_ms;
    double connect_deadline; /* monotonic seconds */
    uint64_t backoff_ms;
    bool logged_waiting;
    Err last_connect_err;

    const Migration *migrations;
    int n;
    int target;
    int current; /* schema version in the database, once read */
    int step_version;
    bool step_up;

    SchemaMigrateDoneFn cb;
    void *arg;
    SchemaMigrateOutcome outcome;
};

static const char *const STATE_NAMES[SCHEMA_MIGRATE_STATE_COUNT] = {
    [SCHEMA_MIGRATE_CONNECTING] = "CONNECTING",
    [SCHEMA_MIGRATE_CONNECT_BACKOFF] = "CONNECT_BACKOFF",
    [SCHEMA_MIGRATE_LOCKING] = "LOCKING",
    [SCHEMA_MIGRATE_CREATE_TABLE] = "CREATE_TABLE",
    [SCHEMA_MIGRATE_READ_VERSION] = "READ_VERSION",
    [SCHEMA_MIGRATE_BEGIN] = "BEGIN",
    [SCHEMA_MIGRATE_APPLY] = "APPLY",
    [SCHEMA_MIGRATE_RECORD] = "RECORD",
    [SCHEMA_MIGRATE_COMMIT_DELAY] = "COMMIT_DELAY",
    [SCHEMA_MIGRATE_COMMIT] = "COMMIT",
    [SCHEMA_MIGRATE_DROP_TABLE] = "DROP_TABLE",
    [SCHEMA_MIGRATE_UNLOCK] = "UNLOCK",
    [SCHEMA_MIGRATE_DONE] = "DONE",
    [SCHEMA_MIGRATE_FAILED] = "FAILED",
};

#define SM(x)            SCHEMA_MIGRATE_##x
#define STATEMENT_FAILED "statement failed or connection lost"

static const FsmTransition TRANSITIONS[] = {
    {SM(CONNECTING), SM(LOCKING), "connected"},
    {SM(CONNECTING), SM(CONNECT_BACKOFF), "connect failed, time left"},
    {SM(CONNECTING), SM(FAILED), "connect timeout"},
    {SM(CONNECT_BACKOFF), SM(CONNECTING), "timer"},
    {SM(LOCKING), SM(CREATE_TABLE), "advisory lock held"},
    {SM(LOCKING), SM(FAILED), STATEMENT_FAILED},
    {SM(CREATE_TABLE), SM(READ_VERSION), "version table exists"},
    {SM(CREATE_TABLE), SM(FAILED), STATEMENT_FAILED},
    {SM(READ_VERSION), SM(BEGIN), "a migration to apply"},
    {SM(READ_VERSION), SM(DROP_TABLE), "target 0 reached"},
    {SM(READ_VERSION), SM(UNLOCK), "at the target"},
    {SM(READ_VERSION), SM(FAILED), "failed, or schema newer than this binary"},
    {SM(BEGIN), SM(APPLY), "transaction open"},
    {SM(BEGIN), SM(FAILED), STATEMENT_FAILED},
    {SM(APPLY), SM(RECORD), "script applied"},
    {SM(APPLY), SM(FAILED), STATEMENT_FAILED},
    {SM(RECORD), SM(COMMIT), "version row written"},
    {SM(RECORD), SM(COMMIT_DELAY), "failpoint sleep"},
    {SM(RECORD), SM(FAILED), "failed, no row, or failpoint return"},
    {SM(COMMIT_DELAY), SM(COMMIT), "timer"},
    {SM(COMMIT), SM(BEGIN), "next migration"},
    {SM(COMMIT), SM(DROP_TABLE), "target 0 reached"},
    {SM(COMMIT), SM(UNLOCK), "at the target"},
    {SM(COMMIT), SM(FAILED), STATEMENT_FAILED},
    {SM(DROP_TABLE), SM(UNLOCK), "version table dropped"},
    {SM(DROP_TABLE), SM(FAILED), STATEMENT_FAILED},
    {SM(UNLOCK), SM(DONE), "lock released"},
    {SM(UNLOCK), SM(FAILED), STATEMENT_FAILED},
};

static const int TERMINAL[] = {SM(DONE), SM(FAILED)};

const FsmDef SCHEMA_MIGRATE_FSM = {
    .name = "schema_migrate",
    .doc = "docs/state-machines.md",
    .state_names = STATE_NAMES,
    .n_states = SCHEMA_MIGRATE_STATE_COUNT,
    .initial = SM(CONNECTING),
    .terminal = TERMINAL,
    .n_terminal = FSM_COUNT(TERMINAL),
    .transitions = TRANSITIONS,
    .n_transitions = FSM_COUNT(TRANSITIONS),
};
FSM_REGISTER(SCHEMA_MIGRATE_FSM)

const char *schema_migrate_state_name(SchemaMigrateState s)
{
    return fsm_state_name(&SCHEMA_MIGRATE_FSM, (int)s);
}

SchemaMigrateState schema_migrate_state(const SchemaMigrator *m)
{
    return m->state;
}

bool migrations_validate(const Migration *migrations, int n, Err *err)
{
    if (n < 0) {
        err_set(err, ERR_INTERNAL, "negative migration count %d", n);
        return false;
    }
    for (int i = 0; i < n; i++) {
        const Migration *mig = &migrations[i];
        if (mig->version != i + 1) {
            err_set(err, ERR_INTERNAL, "migration #%d has version %d: expected %d (1..N in order)",
                    i, mig->version, i + 1);
            return false;
        }
        if (mig->name == NULL || mig->name[0] == '\0') {
            err_set(err, ERR_INTERNAL, "migration %d has no name", mig->version);
            return false;
        }
        if (mig->up == NULL || mig->up[strspn(mig->up, " \t\r\n")] == '\0') {
            err_set(err, ERR_INTERNAL, "migration %04d_%s: empty up script", mig->version,
                    mig->name);
            return false;
        }
        if (mig->down == NULL || mig->down[strspn(mig->down, " \t\r\n")] == '\0') {
            err_set(err, ERR_INTERNAL, "migration %04d_%s: empty down script", mig->version,
                    mig->name);
            return false;
        }
    }
    return true;
}

bool schema_migrate_plan_next(int current, int target, int *version, bool *up)
{
    if (current < target) {
        *version = current + 1;
        *up = true;
        return true;
    }
    if (current > target) {
        *version = current;
        *up = false;
        return true;
    }
    return false;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void timer_in_ms(struct event *ev, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* schema_migrate_set_state: every transition goes through here; an illegal one is a bug in this
 * file (logged and refused by fsm_set_state). */
static void schema_migrate_set_state(SchemaMigrator *m, SchemaMigrateState next)
{
    (void)fsm_set_state(&SCHEMA_MIGRATE_FSM, &m->state, next, m->url_desc);
}

/* schema_migrate_finish: close the connection (releasing the lock) and deliver the outcome from a
 * timer, so that the owner may free the SchemaMigrator in its callback. */
static void schema_migrate_finish(SchemaMigrator *m)
{
    if (m->conn != NULL) {
        db_conn_free(m->conn);
        m->conn = NULL;
    }
    m->outcome.to_version = m->current;
    timer_in_ms(m->timer, 0);
}

static void schema_migrate_fail(SchemaMigrator *m, int exit_code, const Err *e)
{
    schema_migrate_set_state(m, SCHEMA_MIGRATE_FAILED);
    m->outcome.ok = false;
    m->outcome.exit_code = exit_code;
    m->outcome.err = *e;
    schema_migrate_finish(m);
}

static void schema_migrate_step(SchemaMigrator *m, const DbResult *res);
static void schema_migrate_act(SchemaMigrator *m);

/* schema_migrate_query_done: the completion of every statement the runner sends. */
static void schema_migrate_query_done(const DbResult *res, void *arg)
{
    SchemaMigrator *m = arg;
    if (!res->ok) {
        Err e = res->err;
        bool lost = m->conn == NULL || !db_conn_is_connected(m->conn);
        if (m->state == SCHEMA_MIGRATE_APPLY)
            err_prefix(&e, "migration %04d_%s %s: ", m->step_version,
                       m->migrations[m->step_version - 1].name, m->step_up ? "up" : "down");
        else
            err_prefix(&e, "migrating (%s): ", schema_migrate_state_name(m->state));
        schema_migrate_fail(m, lost ? EXIT_CODE_UNAVAILABLE : EXIT_CODE_INTERNAL, &e);
        return;
    }
    schema_migrate_step(m, res);
}

/* schema_migrate_sent: after handing a statement to the connection; a send failure ends the run. */
static void schema_migrate_sent(SchemaMigrator *m, bool ok, Err *e)
{
    if (ok)
        return;
    err_prefix(e, "migrating (%s): ", schema_migrate_state_name(m->state));
    bool lost = m->conn == NULL || !db_conn_is_connected(m->conn);
    schema_migrate_fail(m, lost ? EXIT_CODE_UNAVAILABLE : EXIT_CODE_INTERNAL, e);
}

/* ---- the statements, one function each ---- */

static const char SQL_LOCK[] = "SELECT pg_advisory_lock($1::bigint)";

static void schema_migrate_send_lock(SchemaMigrator *m)
{
    const char *params[] = {STORCON_MIGRATE_LOCK_KEY};
    Err e;
    schema_migrate_sent(
        m, db_conn_query(m->conn, SQL_LOCK, 1, params, schema_migrate_query_done, m, &e), &e);
}

static const char SQL_CREATE_VERSION_TABLE[] = "CREATE TABLE IF NOT EXISTS storcon_schema_version ("
                                               "version integer PRIMARY KEY CHECK (version > 0), "
                                               "name text NOT NULL, "
                                               "applied_at timestamptz NOT NULL DEFAULT now())";

static void schema_migrate_send_create_table(SchemaMigrator *m)
{
    Err e;
    schema_migrate_sent(
        m,
        db_conn_query(m->conn, SQL_CREATE_VERSION_TABLE, 0, NULL, schema_migrate_query_done, m, &e),
        &e);
}

static const char SQL_READ_VERSION[] =
    "SELECT coalesce(max(version), 0) FROM storcon_schema_version";

static void schema_migrate_send_read_version(SchemaMigrator *m)
{
    Err e;
    schema_migrate_sent(
        m, db_conn_query(m->conn, SQL_READ_VERSION, 0, NULL, schema_migrate_query_done, m, &e), &e);
}

static const char SQL_BEGIN[] = "BEGIN";

static void schema_migrate_send_begin(SchemaMigrator *m)
{
    Err e;
    schema_migrate_sent(
        m, db_conn_query(m->conn, SQL_BEGIN, 0, NULL, schema_migrate_query_done, m, &e), &e);
}

/* schema_migrate_send_apply: the embedded script (several statements: simple query protocol). */
static void schema_migrate_send_apply(SchemaMigrator *m)
{
    const Migration *mig = &m->migrations[m->step_version - 1];
    log_info("applying migration %04d_%s (%s)", mig->version, mig->name,
             m->step_up ? "up" : "down");
    Err e;
    schema_migrate_sent(
        m,
        db_conn_script(m->conn, m->step_up ? mig->up : mig->down, schema_migrate_query_done, m, &e),
        &e);
}

static const char SQL_RECORD_UP[] =
    "INSERT INTO storcon_schema_version (version, name) VALUES ($1, $2)";
static const char SQL_RECORD_DOWN[] = "DELETE FROM storcon_schema_version WHERE version = $1";

static void schema_migrate_send_record(SchemaMigrator *m)
{
    const Migration *mig = &m->migrations[m->step_version - 1];
    char version[16];
    str_printf(version, sizeof(version), "%d", mig->version);
    const char *params[] = {version, mig->name};
    Err e;
    bool ok =
        m->step_up
            ? db_conn_query(m->conn, SQL_RECORD_UP, 2, params, schema_migrate_query_done, m, &e)
            : db_conn_query(m->conn, SQL_RECORD_DOWN, 1, params, schema_migrate_query_done, m, &e);
    schema_migrate_sent(m, ok, &e);
}

static const char SQL_COMMIT[] = "COMMIT";

static void schema_migrate_send_commit(SchemaMigrator *m)
{
    Err e;
    schema_migrate_sent(
        m, db_conn_query(m->conn, SQL_COMMIT, 0, NULL, schema_migrate_query_done, m, &e), &e);
}

static const char SQL_DROP_VERSION_TABLE[] = "DROP TABLE storcon_schema_version";

static void schema_migrate_send_drop_table(SchemaMigrator *m)
{
    Err e;
    schema_migrate_sent(
        m,
        db_conn_query(m->conn, SQL_DROP_VERSION_TABLE, 0, NULL, schema_migrate_query_done, m, &e),
        &e);
}

static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock($1::bigint)";

static void schema_migrate_send_unlock(SchemaMigrator *m)
{
    const char *params[] = {STORCON_MIGRATE_LOCK_KEY};
    Err e;
    schema_migrate_sent(
        m, db_conn_query(m->conn, SQL_UNLOCK, 1, params, schema_migrate_query_done, m, &e), &e);
}

/* ---- connecting ---- */

static void schema_migrate_connected(DbConn *conn, const Err *err, void *arg);

/* schema_migrate_connect_failed: retry with backoff while the connect timeout allows, then give up
 * with the last libpq message. */
static void schema_migrate_connect_failed(SchemaMigrator *m, const Err *err)
{
    m->last_connect_err = *err;
    double remaining_ms = (m->connect_deadline - now_seconds()) * 1000.0;
    if (remaining_ms <= 1.0) {
        Err e;
        err_set(&e, ERR_UNAVAILABLE, "cannot connect to database %s: %s", m->url_desc, err->msg);
        schema_migrate_fail(m, EXIT_CODE_UNAVAILABLE, &e);
        return;
    }
    if (!m->logged_waiting) {
        log_info("database %s not reachable yet (%s); retrying for up to %" PRIu64 " ms",
                 m->url_desc, err->msg, m->connect_timeout_ms);
        m->logged_waiting = true;
    }
    uint64_t delay = m->backoff_ms;
    if ((double)delay > remaining_ms)
        delay = (uint64_t)remaining_ms;
    m->backoff_ms *= 2;
    if (m->backoff_ms > STORCON_MIGRATE_CONNECT_RETRY_MAX_MS)
        m->backoff_ms = STORCON_MIGRATE_CONNECT_RETRY_MAX_MS;
    schema_migrate_set_state(m, SCHEMA_MIGRATE_CONNECT_BACKOFF);
    timer_in_ms(m->timer, delay);
}

static void schema_migrate_connect(SchemaMigrator *m)
{
    double remaining_ms = (m->connect_deadline - now_seconds()) * 1000.0;
    uint64_t timeout = remaining_ms > 1.0 ? (uint64_t)remaining_ms : 1;
    Err e;
    if (!db_conn_connect(m->conn, timeout, schema_migrate_connected, m, &e))
        schema_migrate_connect_failed(m, &e);
}

static void schema_migrate_connected(DbConn *conn, const Err *err, void *arg)
{
    SchemaMigrator *m = arg;
    if (err != NULL) {
        schema_migrate_connect_failed(m, err);
        return;
    }
    log_info("connected to database %s; taking the migration lock", m->url_desc);
    schema_migrate_step(m, NULL);
}

/* schema_migrate_before_commit: the failpoint: "return" fails the run, "sleep(ms)" delays the
 * COMMIT without blocking the loop, "exit"/"abort" end the process with the transaction open. */
static void schema_migrate_before_commit(SchemaMigrator *m)
{
    Err e;
    err_clear(&e);
    long delay = failpoint_delay_ms(FAILPOINT_BEFORE_COMMIT, &e);
    if (delay < 0) {
        err_prefix(&e, "migration %04d_%s %s, before COMMIT: ", m->step_version,
                   m->migrations[m->step_version - 1].name, m->step_up ? "up" : "down");
        schema_migrate_fail(m, EXIT_CODE_INTERNAL, &e);
        return;
    }
    if (delay > 0) {
        schema_migrate_set_state(m, SCHEMA_MIGRATE_COMMIT_DELAY);
        timer_in_ms(m->timer, (uint64_t)delay);
        return;
    }
    schema_migrate_set_state(m, SCHEMA_MIGRATE_COMMIT);
    schema_migrate_act(m);
}

/* schema_migrate_after_version: with the version known (read, or just changed), go on to the next
 * migration, or finish: dropping the version table too when migrating to 0. */
static void schema_migrate_after_version(SchemaMigrator *m)
{
    if (schema_migrate_plan_next(m->current, m->target, &m->step_version, &m->step_up)) {
        schema_migrate_set_state(m, SCHEMA_MIGRATE_BEGIN);
    } else if (m->target == 0) {
        schema_migrate_set_state(m, SCHEMA_MIGRATE_DROP_TABLE);
    } else {
        schema_migrate_set_state(m, SCHEMA_MIGRATE_UNLOCK);
    }
    schema_migrate_act(m);
}

/* schema_migrate_act: perform the action of the state just entered. */
static void schema_migrate_act(SchemaMigrator *m)
{
    switch (m->state) {
    case SCHEMA_MIGRATE_CONNECTING:
        schema_migrate_connect(m);
        break;
    case SCHEMA_MIGRATE_LOCKING:
        schema_migrate_send_lock(m);
        break;
    case SCHEMA_MIGRATE_CREATE_TABLE:
        schema_migrate_send_create_table(m);
        break;
    case SCHEMA_MIGRATE_READ_VERSION:
        schema_migrate_send_read_version(m);
        break;
    case SCHEMA_MIGRATE_BEGIN:
        schema_migrate_send_begin(m);
        break;
    case SCHEMA_MIGRATE_APPLY:
        schema_migrate_send_apply(m);
        break;
    case SCHEMA_MIGRATE_RECORD:
        schema_migrate_send_record(m);
        break;
    case SCHEMA_MIGRATE_COMMIT:
        schema_migrate_send_commit(m);
        break;
    case SCHEMA_MIGRATE_DROP_TABLE:
        schema_migrate_send_drop_table(m);
        break;
    case SCHEMA_MIGRATE_UNLOCK:
        schema_migrate_send_unlock(m);
        break;
    case SCHEMA_MIGRATE_DONE:
        m->outcome.ok = true;
        m->outcome.exit_code = EXIT_CODE_OK;
        schema_migrate_finish(m);
        break;
    case SCHEMA_MIGRATE_CONNECT_BACKOFF:
    case SCHEMA_MIGRATE_COMMIT_DELAY:
    case SCHEMA_MIGRATE_FAILED:
    case SCHEMA_MIGRATE_STATE_COUNT:
    default:
        break; /* entered with their timer already set, or terminal */
    }
}

/* schema_migrate_step: the action of the current state completed (res: its statement's result, NULL
 * for connects and timers); move on. */
static void schema_migrate_step(SchemaMigrator *m, const DbResult *res)
{
    Err e;
    switch (m->state) {
    case SCHEMA_MIGRATE_CONNECTING:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_LOCKING);
        break;
    case SCHEMA_MIGRATE_CONNECT_BACKOFF:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_CONNECTING);
        break;
    case SCHEMA_MIGRATE_LOCKING:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_CREATE_TABLE);
        break;
    case SCHEMA_MIGRATE_CREATE_TABLE:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_READ_VERSION);
        break;
    case SCHEMA_MIGRATE_READ_VERSION: {
        int64_t v = 0;
        if (!db_result_i64(res, 0, 0, 0, &v, &e)) {
            schema_migrate_fail(m, EXIT_CODE_INTERNAL, &e);
            return;
        }
        m->current = (int)v;
        m->outcome.from_version = m->current;
        if (v > m->n) {
            err_set(&e, ERR_INTERNAL,
                    "database schema version %" PRId64 " is newer than this storcon knows (%d)", v,
                    m->n);
            schema_migrate_fail(m, EXIT_CODE_SCHEMA, &e);
            return;
        }
        if (m->current == m->target)
            log_info("database schema at version %d: up to date", m->current);
        else
            log_info("database schema at version %d: migrating to %d", m->current, m->target);
        schema_migrate_after_version(m);
        return;
    }
    case SCHEMA_MIGRATE_BEGIN:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_APPLY);
        break;
    case SCHEMA_MIGRATE_APPLY:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_RECORD);
        break;
    case SCHEMA_MIGRATE_RECORD:
        if (!m->step_up && db_result_affected(res, 0) != 1) {
            err_set(&e, ERR_INTERNAL, "schema version table has no row for version %d",
                    m->step_version);
            schema_migrate_fail(m, EXIT_CODE_INTERNAL, &e);
            return;
        }
        schema_migrate_before_commit(m);
        return;
    case SCHEMA_MIGRATE_COMMIT_DELAY:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_COMMIT);
        break;
    case SCHEMA_MIGRATE_COMMIT:
        m->current = m->step_up ? m->step_version : m->step_version - 1;
        log_info("database schema now at version %d", m->current);
        schema_migrate_after_version(m);
        return;
    case SCHEMA_MIGRATE_DROP_TABLE:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_UNLOCK);
        break;
    case SCHEMA_MIGRATE_UNLOCK:
        schema_migrate_set_state(m, SCHEMA_MIGRATE_DONE);
        break;
    case SCHEMA_MIGRATE_DONE:
    case SCHEMA_MIGRATE_FAILED:
    case SCHEMA_MIGRATE_STATE_COUNT:
    default:
        return;
    }
    schema_migrate_act(m);
}

static void schema_migrate_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    SchemaMigrator *m = arg;
    if (m->state == SCHEMA_MIGRATE_DONE || m->state == SCHEMA_MIGRATE_FAILED) {
        SchemaMigrateDoneFn cb = m->cb;
        m->cb = NULL;
        if (cb != NULL)
            cb(&m->outcome, m->arg); /* may free m: nothing after this */
        return;
    }
    schema_migrate_step(m, NULL);
}

bool schema_migrate_start(struct event_base *base, const SchemaMigrateOptions *opts,
                          SchemaMigrateDoneFn cb, void *arg, SchemaMigrator **out, Err *err)
{
    const Migration *migrations = opts->migrations != NULL ? opts->migrations : MIGRATIONS;
    int n = opts->migrations != NULL ? opts->n_migrations : MIGRATIONS_COUNT;
    if (!migrations_validate(migrations, n, err))
        return false;
    int target = opts->target_version == SCHEMA_MIGRATE_TARGET_LATEST ? n : opts->target_version;
    if (target < 0 || target > n) {
        err_set(err, ERR_BAD_REQUEST,
                "cannot migrate to schema version %d: this storcon knows 0 to %d",
                opts->target_version, n);
        return false;
    }
    SchemaMigrator *m = xcalloc(1, sizeof(*m));
    if (!db_url_describe(opts->database_url, m->url_desc, sizeof(m->url_desc), err)) {
        free(m);
        return false;
    }
    m->base = base;
    m->url = xstrdup(opts->database_url);
    m->conn = db_conn_new(base, m->url, opts->metrics);
    m->timer = evtimer_new(base, schema_migrate_timer_cb, m);
    m->state = SCHEMA_MIGRATE_CONNECTING;
    m->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : STORCON_DB_CONNECT_TIMEOUT_MS;
    m->connect_deadline = now_seconds() + (double)m->connect_timeout_ms / 1000.0;
    m->backoff_ms = STORCON_MIGRATE_CONNECT_RETRY_MIN_MS;
    m->migrations = migrations;
    m->n = n;
    m->target = target;
    m->current = -1;
    m->outcome.from_version = -1;
    m->outcome.to_version = -1;
    m->cb = cb;
    m->arg = arg;
    *out = m;
    log_debug("migrate: start, target version %d of %d", target, n);
    schema_migrate_act(m);
    return true;
}

void schema_migrate_free(SchemaMigrator *m)
{
    if (m == NULL)
        return;
    if (m->conn != NULL)
        db_conn_free(m->conn);
    event_free(m->timer);
    free(m->url);
    free(m);
}
