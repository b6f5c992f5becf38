/*
 * migrate.h: the schema migration runner, an asynchronous state machine on its own connection.
 *
 * CONNECTING (retried with backoff until the connect timeout) -> LOCKING (pg_advisory_lock, so
 * two controllers never migrate at once) -> CREATE_TABLE (storcon_schema_version if absent) ->
 * READ_VERSION (refuse a schema newer than this binary) -> for each migration to apply:
 * BEGIN -> APPLY (the up or down script) -> RECORD (insert or delete its version row) -> COMMIT ->
 * [DROP_TABLE when migrating to 0] -> UNLOCK -> DONE. Any failure -> FAILED; closing the
 * connection rolls back the open transaction and releases the lock.
 *
 * The failpoint "storcon-migrate-before-commit" fires before each COMMIT (fault tests).
 */
#ifndef STORCON_MIGRATE_H
#define STORCON_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"
#include "storcon/migrations.h"

struct event_base;
struct MetricsRegistry;

typedef enum MigrateState {
    MIGRATE_CONNECTING,
    MIGRATE_CONNECT_BACKOFF,
    MIGRATE_LOCKING,
    MIGRATE_CREATE_TABLE,
    MIGRATE_READ_VERSION,
    MIGRATE_BEGIN,
    MIGRATE_APPLY,
    MIGRATE_RECORD,
    MIGRATE_COMMIT_DELAY, /* failpoint sleep before COMMIT */
    MIGRATE_COMMIT,
    MIGRATE_DROP_TABLE,
    MIGRATE_UNLOCK,
    MIGRATE_DONE,
    MIGRATE_FAILED,
    MIGRATE_STATE_COUNT
} MigrateState;

#define MIGRATE_TARGET_LATEST (-1)

typedef struct MigrateOptions {
    const char *database_url;
    uint64_t connect_timeout_ms; /* give up connecting after this long (exit 69) */
    int target_version;          /* 0..n_migrations, or MIGRATE_TARGET_LATEST */
    const Migration *migrations; /* NULL = the embedded MIGRATIONS */
    int n_migrations;
    struct MetricsRegistry *metrics; /* NULL = none */
} MigrateOptions;

typedef struct MigrateOutcome {
    bool ok;
    Err err;
    /* !ok: EXIT_CODE_UNAVAILABLE (database unreachable or lost), EXIT_CODE_SCHEMA (schema newer
     * than this binary), EXIT_CODE_INTERNAL (a statement failed) */
    int exit_code;
    int from_version; /* found in the database; -1 if never read */
    int to_version;   /* reached (== from_version when nothing was applied) */
} MigrateOutcome;

typedef void (*MigrateDoneFn)(const MigrateOutcome *outcome, void *arg);

typedef struct Migrator Migrator;

/* migrate_start: validate the table and the target, then start. cb runs once, from the event
 * loop, after the connection is closed; the Migrator may be freed inside it. The caller frees with
 * migrate_free. */
bool migrate_start(struct event_base *base, const MigrateOptions *opts, MigrateDoneFn cb, void *arg,
                   Migrator **out, Err *err) MUST_CHECK;
/* migrate_free: stop (closing the connection: the server rolls back a half-applied migration and
 * releases the lock) and free; the callback does not run afterwards. */
void migrate_free(Migrator *m);
MigrateState migrate_state(const Migrator *m);
const char *migrate_state_name(MigrateState s);

/* migrations_validate: numbered 1..n in order, names and both scripts non-empty. */
bool migrations_validate(const Migration *migrations, int n, Err *err) MUST_CHECK;

/* migrate_plan_next: the next migration on the way from `current` to `target`: *version and
 * *up. false when there is nothing left to do. Going up applies current+1's up; going down
 * applies current's down. */
bool migrate_plan_next(int current, int target, int *version, bool *up);

#endif
