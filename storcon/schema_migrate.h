/*
 * schema_migrate.h: the schema migration runner, an asynchronous state machine on its own
 * connection.
 *
 * CONNECTING (retried with backoff until the connect timeout) -> LOCKING (pg_advisory_lock, so
 * two controllers never migrate at once) -> CREATE_TABLE (storcon_schema_version if absent) ->
 * READ_VERSION (refuse a schema newer than this binary) -> for each migration to apply:
 * BEGIN -> APPLY (the up or down script) -> RECORD (insert or delete its version row) -> COMMIT ->
 * [DROP_TABLE when migrating to 0] -> UNLOCK -> DONE. A failure (connect timeout, or of the
 * statement of the current state) -> FAILED; closing the connection rolls back the open
 * transaction and releases the lock. SCHEMA_MIGRATE_FSM below is the exact table.
 *
 * The failpoint "storcon-migrate-before-commit" fires before each COMMIT (fault tests).
 */
#ifndef STORCON_SCHEMA_MIGRATE_H
#define STORCON_SCHEMA_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"
#include "shared/fsm.h"
#include "storcon/migrations.h"

struct event_base;
struct MetricsRegistry;

typedef enum SchemaMigrateState {
    SCHEMA_MIGRATE_CONNECTING,
    SCHEMA_MIGRATE_CONNECT_BACKOFF,
    SCHEMA_MIGRATE_LOCKING,
    SCHEMA_MIGRATE_CREATE_TABLE,
    SCHEMA_MIGRATE_READ_VERSION,
    SCHEMA_MIGRATE_BEGIN,
    SCHEMA_MIGRATE_APPLY,
    SCHEMA_MIGRATE_RECORD,
    SCHEMA_MIGRATE_COMMIT_DELAY, /* failpoint sleep before COMMIT */
    SCHEMA_MIGRATE_COMMIT,
    SCHEMA_MIGRATE_DROP_TABLE,
    SCHEMA_MIGRATE_UNLOCK,
    SCHEMA_MIGRATE_DONE,
    SCHEMA_MIGRATE_FAILED,
    SCHEMA_MIGRATE_STATE_COUNT
} SchemaMigrateState;

/* SCHEMA_MIGRATE_FSM: the runner's transitions (shared/fsm.h; the table is in schema_migrate.c,
 * the diagram in docs/state-machines.md). */
extern const FsmDef SCHEMA_MIGRATE_FSM;

#define SCHEMA_MIGRATE_TARGET_LATEST (-1)

typedef struct SchemaMigrateOptions {
    const char *database_url;
    uint64_t connect_timeout_ms; /* give up connecting after this long (exit 69) */
    int target_version;          /* 0..n_migrations, or SCHEMA_MIGRATE_TARGET_LATEST */
    const Migration *migrations; /* NULL = the embedded MIGRATIONS */
    int n_migrations;
    struct MetricsRegistry *metrics; /* NULL = none */
} SchemaMigrateOptions;

typedef struct SchemaMigrateOutcome {
    bool ok;
    Err err;
    /* !ok: EXIT_CODE_UNAVAILABLE (database unreachable or lost), EXIT_CODE_SCHEMA (schema newer
     * than this binary), EXIT_CODE_INTERNAL (a statement failed) */
    int exit_code;
    int from_version; /* found in the database; -1 if never read */
    int to_version;   /* reached (== from_version when nothing was applied) */
} SchemaMigrateOutcome;

typedef void (*SchemaMigrateDoneFn)(const SchemaMigrateOutcome *outcome, void *arg);

typedef struct SchemaMigrator SchemaMigrator;

/* schema_migrate_start: validate the table and the target, then start. cb runs once, from the event
 * loop, after the connection is closed; the SchemaMigrator may be freed inside it. The caller frees
 * with schema_migrate_free. */
bool schema_migrate_start(struct event_base *base, const SchemaMigrateOptions *opts,
                          SchemaMigrateDoneFn cb, void *arg, SchemaMigrator **out,
                          Err *err) MUST_CHECK;
/* schema_migrate_free: stop (closing the connection: the server rolls back a half-applied migration
 * and releases the lock) and free; the callback does not run afterwards. */
void schema_migrate_free(SchemaMigrator *m);
SchemaMigrateState schema_migrate_state(const SchemaMigrator *m);
const char *schema_migrate_state_name(SchemaMigrateState s);

/* migrations_validate: numbered 1..n in order, names and both scripts non-empty. */
bool migrations_validate(const Migration *migrations, int n, Err *err) MUST_CHECK;

/* schema_migrate_plan_next: the next migration on the way from `current` to `target`: *version and
 * *up. false when there is nothing left to do. Going up applies current+1's up; going down
 * applies current's down. */
bool schema_migrate_plan_next(int current, int target, int *version, bool *up);

#endif
