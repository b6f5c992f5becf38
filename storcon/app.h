/*
 * app.h: StorconApp, the storage controller's one top-level object, tying together the config,
 * the event loop (Daemon), metrics, auth, the HTTP server, the migration runner and the database
 * pool. main.c owns and drives it; route handlers receive it as their `app` argument.
 *
 * Startup phases (main.c drives them, storcon_app_set_phase checks them: table in app.c, diagram
 * in docs/state-machines.md): MIGRATING (listening: /status answers, /ready says 503) -> STARTING
 * (the service loads nodes and tenants, asks the pageservers what they hold, rebuilds intents and
 * starts the reconciles: storcon/service.h) -> READY; any phase -> STOPPING on SIGTERM/SIGINT or
 * a fatal error.
 */
#ifndef STORCON_APP_H
#define STORCON_APP_H

#include <stdbool.h>

#include "shared/auth.h"
#include "shared/daemon.h"
#include "shared/http_server.h"
#include "shared/metrics.h"
#include "storcon/config.h"
#include "storcon/db.h"
#include "storcon/schema_migrate.h"

struct Service; /* storcon/service.h */

typedef enum StorconPhase {
    STORCON_PHASE_MIGRATING, /* connecting to the database and applying migrations */
    STORCON_PHASE_STARTING,  /* service startup: load, learn observed state, reconcile */
    STORCON_PHASE_READY,     /* startup done: /ready answers 200 */
    STORCON_PHASE_STOPPING,  /* graceful stop or fatal error */
    STORCON_PHASE_COUNT
} StorconPhase;

typedef struct StorconApp {
    StorconConfig cfg;
    Daemon *daemon;
    struct event_base *base; /* daemon_base(daemon) */
    MetricsRegistry *metrics;
    Auth *auth;               /* NULL: auth off (--dev without --public-key) */
    AuthSigner *signer;       /* NULL: no --private-key; signs calls to pageservers */
    HttpServer *http;         /* owned by the Daemon once added (it frees it when stopping) */
    SchemaMigrator *migrator; /* while migrating */
    DbPool *db;               /* from the end of migrations on */
    struct Service *service;  /* from the end of migrations on: all domain state */
    StorconPhase phase;
    char db_desc[256]; /* the database URL without password, for messages */
} StorconApp;

/* storcon_phase_name: "MIGRATING", ... for logs; "?" out of range. */
const char *storcon_phase_name(StorconPhase p);
/* storcon_app_set_phase: checked against the phase table in app.c (shared/fsm.h) and logged; the
 * same phase is a no-op. */
void storcon_app_set_phase(StorconApp *app, StorconPhase phase);

#endif
