/*
 * main.c: the storage controller daemon: configuration, the startup sequence and the stop.
 *
 * Startup, with everything after daemon_new on the event loop:
 *   flags/config -> log_init -> failpoints -> keys -> daemon_new -> HTTP server bound (/status
 *   answers, /ready says 503) -> migrations on their own connection (connecting is retried until
 *   --db-connect-timeout) -> database pool -> service startup (STARTING: load nodes and shards,
 *   ask every pageserver for its locations, rebuild intents, start reconciles) -> READY.
 * With --migrate-to N only the migrations run (no HTTP server), a summary goes to stdout and the
 * process exits.
 *
 * Exit codes (shared/daemon.h): 0 after SIGTERM/SIGINT or a finished --migrate-to; 64 bad flag;
 * 69 database unreachable; 70 internal; 71 cannot bind or open the log file; 76 database schema
 * newer than this binary; 78 inconsistent configuration (no --public-key without --dev, unusable
 * key file). A fatal error found on the loop is printed as one line "storcon: <message>" to
 * stderr, after everything else the process logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/auth.h"
#include "shared/daemon.h"
#include "shared/failpoint.h"
#include "shared/http_server.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"
#include "storcon/app.h"
#include "storcon/config.h"
#include "storcon/db.h"
#include "storcon/defaults.h"
#include "storcon/http_api.h"
#include "storcon/schema_migrate.h"
#include "storcon/migrations.h"
#include "storcon/service.h"

#define PROGRAM "storcon"

/* What main keeps beside the app: the outcome to report after the loop ends. */
typedef struct StorconMain {
    StorconApp app;
    bool migrations_finished;
    char fatal[ERR_MSG_SIZE]; /* printed as "storcon: <fatal>" when the loop has ended */
} StorconMain;

/* startup_fail: a fatal error found on the loop: remember the line, stop with `code`. */
static void startup_fail(StorconMain *sm, int code, const Err *err)
{
    str_copy(sm->fatal, sizeof(sm->fatal), err->msg);
    if (sm->app.cfg.log_file[0] != '\0')
        log_error("%s", err->msg); /* the log file gets it too; stderr gets it once, at the end */
    daemon_fail(sm->app.daemon, code);
}

/* on_stop: SIGTERM/SIGINT or daemon_fail: abandon startup work. A migration in progress is
 * rolled back by the server when its connection closes. */
static void on_stop(void *arg)
{
    StorconMain *sm = arg;
    storcon_app_set_phase(&sm->app, STORCON_PHASE_STOPPING);
    service_stop(sm->app.service);
    if (sm->app.migrator != NULL) {
        log_info("stopping: abandoning the database migration (it rolls back)");
        schema_migrate_free(sm->app.migrator);
        sm->app.migrator = NULL;
    }
}

/* print_migration_summary: for --migrate-to, what was done, on stdout. */
static void print_migration_summary(const SchemaMigrateOutcome *o)
{
    if (o->from_version == o->to_version) {
        printf("database schema already at version %d\n", o->to_version);
    } else if (o->to_version > o->from_version) {
        for (int v = o->from_version + 1; v <= o->to_version; v++)
            printf("applied migration %04d_%s up\n", v, MIGRATIONS[v - 1].name);
    } else {
        for (int v = o->from_version; v > o->to_version; v--)
            printf("applied migration %04d_%s down\n", v, MIGRATIONS[v - 1].name);
    }
    if (o->from_version != o->to_version)
        printf("database schema version %d -> %d\n", o->from_version, o->to_version);
    fflush(stdout);
}

/* on_service_started: the service finished its startup sequence: ready, or a fatal error
 * (database unreachable: 69; anything else: 70). */
static void on_service_started(const Err *err, void *arg)
{
    StorconMain *sm = arg;
    if (err != NULL) {
        startup_fail(sm, err->code == ERR_UNAVAILABLE ? EXIT_CODE_UNAVAILABLE : EXIT_CODE_INTERNAL,
                     err);
        return;
    }
    if (daemon_stopping(sm->app.daemon))
        return;
    storcon_app_set_phase(&sm->app, STORCON_PHASE_READY);
    log_info("ready");
}

/* on_migrated: the migration runner finished: start the pool and become ready (or, for
 * --migrate-to, report and stop). */
static void on_migrated(const SchemaMigrateOutcome *o, void *arg)
{
    StorconMain *sm = arg;
    StorconApp *app = &sm->app;
    SchemaMigrateOutcome outcome = *o; /* o belongs to the migrator, freed next */
    schema_migrate_free(app->migrator);
    app->migrator = NULL;
    if (!outcome.ok) {
        startup_fail(sm, outcome.exit_code, &outcome.err);
        return;
    }
    sm->migrations_finished = true;
    if (app->cfg.migrate_only) {
        print_migration_summary(&outcome);
        daemon_stop(app->daemon);
        return;
    }
    if (daemon_stopping(app->daemon))
        return;
    DbPoolConfig pool_cfg = {
        .url = app->cfg.database_url,
        .size = (size_t)app->cfg.db_pool_size,
        .connect_timeout_ms = app->cfg.db_connect_timeout_ms,
        .metrics = app->metrics,
    };
    app->db = db_pool_new(app->base, &pool_cfg);
    log_info("schema version %d, database pool of %zu connections", outcome.to_version,
             pool_cfg.size);
    ServiceOptions sopts = {
        .base = app->base,
        .db = app->db,
        .metrics = app->metrics,
        .signer = app->signer,
        .control_plane_url = app->cfg.control_plane_url,
        .max_shards_per_tenant = (unsigned)app->cfg.max_shards_per_tenant,
        .background_interval_ms = (long)app->cfg.background_interval_ms,
    };
    app->service = service_new(&sopts);
    storcon_app_set_phase(app, STORCON_PHASE_STARTING);
    service_start(app->service, on_service_started, sm);
}

/* load_keys: the public key(s) verifying incoming tokens and the private key signing our own
 * calls. Without --public-key (allowed only with --dev) auth is off. */
static bool load_keys(StorconApp *app, Err *err)
{
    if (app->cfg.public_key[0] != '\0') {
        if (!auth_new_from_file(app->cfg.public_key, &app->auth, err)) {
            err_prefix(err, "--public-key %s: ", app->cfg.public_key);
            return false;
        }
        if (app->cfg.dev)
            log_warn("--dev given with --public-key: auth stays on");
    } else {
        log_warn("*** DEVELOPMENT MODE (--dev): authentication is OFF; every API route, including "
                 "admin ones, is open to anyone who can connect. Never use --dev in production. "
                 "***");
    }
    if (app->cfg.private_key[0] != '\0' &&
        !auth_signer_new_from_file(app->cfg.private_key, &app->signer, err)) {
        err_prefix(err, "--private-key %s: ", app->cfg.private_key);
        return false;
    }
    return true;
}

/* start_http: bind the API; /status answers from here on. */
static bool start_http(StorconApp *app, Err *err)
{
    HttpServerConfig http_cfg = {
        .listen = app->cfg.listen,
        .routes = STORCON_HTTP_ROUTES,
        .n_routes = STORCON_HTTP_ROUTES_COUNT,
        .app = app,
        .max_body_bytes = STORCON_HTTP_MAX_BODY_BYTES,
        .auth = app->auth,
        .auth_policy = AUTH_POLICY_STORCON,
        .metrics = app->metrics,
        .name = "storcon api",
        .max_connections = (size_t)app->cfg.http_max_connections,
    };
    if (!http_server_start(app->base, &http_cfg, &app->http, err))
        return false;
    daemon_add_server(app->daemon, app->http);
    char addr[HOST_MAX + 8];
    HostPort bound = app->cfg.listen;
    bound.port = http_server_port(app->http);
    host_port_format(&bound, addr, sizeof(addr));
    log_info("listening on http://%s", addr);
    return true;
}

static void app_free(StorconApp *app)
{
    service_free(app->service); /* before the pool: its calls are cancelled or abandoned */
    schema_migrate_free(app->migrator);
    db_pool_free(app->db);
    daemon_free(app->daemon); /* frees the HTTP server too */
    auth_free(app->auth);
    auth_signer_free(app->signer);
    metrics_registry_free(app->metrics);
}

/* die: a startup error before the loop runs: free what exists, one line, exit. */
static void die(StorconApp *app, int code, const Err *err) __attribute__((noreturn));
static void die(StorconApp *app, int code, const Err *err)
{
    app_free(app);
    daemon_die(PROGRAM, code, err);
}

int main(int argc, char **argv)
{
    static StorconMain sm; /* large (paths); zeroed */
    StorconApp *app = &sm.app;
    Err err;
    err_clear(&err);
    int code = EXIT_CODE_OK;

    ConfigResult cr = storcon_config_load(argc, argv, &app->cfg, &code, &err);
    if (cr == CONFIG_HELP)
        return EXIT_CODE_OK;
    if (cr != CONFIG_OK)
        daemon_die(PROGRAM, code, &err);
    if (!log_init(PROGRAM, app->cfg.log_level, app->cfg.log_file[0] ? app->cfg.log_file : NULL,
                  &err))
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    if (app->cfg.failpoints[0] != '\0' && !failpoint_configure(app->cfg.failpoints, &err)) {
        err_prefix(&err, "--failpoints: ");
        daemon_die(PROGRAM, EXIT_CODE_BAD_ARGS, &err);
    }
    if (!db_url_describe(app->cfg.database_url, app->db_desc, sizeof(app->db_desc), &err)) {
        err_prefix(&err, "--database-url: ");
        daemon_die(PROGRAM, EXIT_CODE_BAD_ARGS, &err);
    }
    if (!app->cfg.migrate_only && !load_keys(app, &err))
        die(app, EXIT_CODE_CONFIG, &err);
    if (!daemon_new(PROGRAM, &app->daemon, &err))
        die(app, EXIT_CODE_INTERNAL, &err);
    app->base = daemon_base(app->daemon);
    app->metrics = metrics_registry_new();
    app->phase = STORCON_PHASE_MIGRATING;
    daemon_on_stop(app->daemon, on_stop, &sm);
    daemon_set_drain_timeout_ms(app->daemon, STORCON_DRAIN_TIMEOUT_MS);

    if (!app->cfg.migrate_only) {
        if (!start_http(app, &err))
            die(app, EXIT_CODE_OS, &err);
        if (app->cfg.control_plane_url[0] == '\0')
            log_info("no --control-plane-url: compute notifications are off");
    }

    SchemaMigrateOptions mopts = {
        .database_url = app->cfg.database_url,
        .connect_timeout_ms = app->cfg.db_connect_timeout_ms,
        .target_version =
            app->cfg.migrate_only ? app->cfg.migrate_to : SCHEMA_MIGRATE_TARGET_LATEST,
        .metrics = app->metrics,
    };
    log_info("database %s: checking the schema (%d migrations known)", app->db_desc,
             MIGRATIONS_COUNT);
    if (!schema_migrate_start(app->base, &mopts, on_migrated, &sm, &app->migrator, &err))
        die(app, EXIT_CODE_INTERNAL, &err);

    code = daemon_run(app->daemon);
    if (code == EXIT_CODE_OK && app->cfg.migrate_only && !sm.migrations_finished) {
        str_copy(sm.fatal, sizeof(sm.fatal), "interrupted before the migrations finished");
        code = EXIT_CODE_INTERNAL;
    }
    app_free(app);
    if (sm.fatal[0] != '\0') {
        fflush(stdout);
        fprintf(stderr, "%s: %s\n", PROGRAM, sm.fatal);
    }
    return code;
}
