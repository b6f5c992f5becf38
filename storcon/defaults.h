/*
 * defaults.h: every default value, limit and timeout of the storage controller in one place.
 *
 * Flag defaults are kept in text form (they feed the option table in storcon/config.c, which
 * parses them like user input); internal tunables are plain numbers. When a later module needs a
 * timeout or a limit, it belongs here, not as a literal next to the code that uses it.
 */
#ifndef STORCON_DEFAULTS_H
#define STORCON_DEFAULTS_H

/* ---- flag defaults (text, parsed by the option table) ---- */
#define STORCON_DEFAULT_LISTEN             "127.0.0.1:1234"
#define STORCON_DEFAULT_LOG_LEVEL          "info"
#define STORCON_DEFAULT_DB_POOL_SIZE       "4"
#define STORCON_DEFAULT_DB_CONNECT_TIMEOUT "10s"
#define STORCON_DEFAULT_MAX_SHARDS         "64"
#define STORCON_MAX_SHARDS                 64    /* the same, for code given 0 */
#define STORCON_DB_CONNECT_TIMEOUT_MS      10000 /* the same, for code given 0 */

/* the background pass (reconcile, then optimise): the text of STORCON_BACKGROUND_INTERVAL_MS */
#define STORCON_DEFAULT_BACKGROUND_INTERVAL "20s"

/* ---- flag limits ---- */
#define STORCON_DB_POOL_SIZE_MIN 1
#define STORCON_DB_POOL_SIZE_MAX 64
#define STORCON_URL_MAX          1024 /* --database-url, --control-plane-url */
#define STORCON_PATH_MAX         4096 /* key files, log file */
#define STORCON_FAILPOINTS_MAX   1024 /* --failpoints spec */

/* ---- HTTP server ---- */
#define STORCON_HTTP_MAX_BODY_BYTES (16u * 1024 * 1024)
/* After SIGTERM, in-flight requests may take this long before they are answered 503. */
#define STORCON_DRAIN_TIMEOUT_MS 10000

/* ---- database pool (storcon/db.c) ---- */
/* Reconnect backoff after a pool connection breaks or fails to connect: doubles up to the max. */
#define STORCON_DB_RECONNECT_BACKOFF_MIN_MS 100
#define STORCON_DB_RECONNECT_BACKOFF_MAX_MS 5000
/* A request waiting for a free connection longer than this fails with 503 (database down). */
#define STORCON_DB_QUEUE_TIMEOUT_MS 30000
/* Server-side statement_timeout set on every pool connection (not on the migration connection,
 * which may wait for another controller's advisory lock and run long DDL). */
#define STORCON_DB_STATEMENT_TIMEOUT_MS 30000
/* Transactions that fail with a serialization failure or deadlock (SQLSTATE 40001 / 40P01), or
 * lose their connection before COMMIT was sent, run again, at most this many times in all, with
 * a backoff doubling from the base (plus jitter) up to the max. */
#define STORCON_DB_TXN_MAX_ATTEMPTS  5
#define STORCON_DB_TXN_RETRY_BASE_MS 20
#define STORCON_DB_TXN_RETRY_MAX_MS  1000
/* Tenant creates are inserted in shared transactions (group commit, db_tenants.h): at most this
 * many tenants per transaction, and this many transactions committing at once; creates arriving
 * meanwhile wait and go together in the next one. */
#define STORCON_DB_INSERT_BATCH_MAX 64
#define STORCON_DB_INSERT_IN_FLIGHT 1
/* TCP keepalives on database connections, so that a vanished server is noticed in about 1 min
 * (used unless the database URL sets its own). */
#define STORCON_DB_KEEPALIVES_IDLE_S     30
#define STORCON_DB_KEEPALIVES_INTERVAL_S 10
#define STORCON_DB_KEEPALIVES_COUNT      3
#define STORCON_DB_APPLICATION_NAME      "storcon"

/* ---- migrations (storcon/schema_migrate.c) ---- */
/* pg_advisory_lock key held while migrating, so that two controllers never migrate at once
 * ("storcon1" in ASCII). */
#define STORCON_MIGRATE_LOCK_KEY "8319396948745350705"
/* Retry backoff while the database cannot be reached at startup (bounded by
 * --db-connect-timeout). */
#define STORCON_MIGRATE_CONNECT_RETRY_MIN_MS 100
#define STORCON_MIGRATE_CONNECT_RETRY_MAX_MS 2000

/* ---- service, reconciler, heartbeats (storcon/service.c, reconcile.c, heartbeat.c) ---- */
/* Reconciles running at once; more wait in a FIFO queue. */
#define STORCON_RECONCILE_MAX_CONCURRENT 128
/* Calls the reconciler makes to pageservers: per-attempt timeout and retry policy (transport
 * errors, timeouts and 503 are retried with capped backoff). */
#define STORCON_RECONCILE_CALL_TIMEOUT_MS  30000
#define STORCON_RECONCILE_CALL_ATTEMPTS    5
#define STORCON_RECONCILE_CALL_BACKOFF_MS  250
#define STORCON_RECONCILE_CALL_BACKOFF_MAX 4000
#define STORCON_RECONCILE_CALL_DEADLINE_MS 90000
/* Shard split (storcon/service_split.c): how long the split waits for the tenant's running
 * reconciles, and the pageserver's shard_split call (per attempt; 503 "uploads in flight" and
 * transport errors are retried: the pageserver's split is idempotent). */
#define STORCON_SPLIT_SETTLE_TIMEOUT_MS 30000
#define STORCON_SPLIT_CALL_TIMEOUT_MS   120000
#define STORCON_SPLIT_CALL_ATTEMPTS     4
#define STORCON_SPLIT_CALL_BACKOFF_MS   500
/* Outgoing HTTP (pageservers, control plane): persistent connections per host (calls beyond wait
 * in the client's queue: 128 reconciles spread over a few nodes keep every one busy) and idle
 * connections kept over all hosts, so that a burst (a failover's 20,000 PUTs) reuses them. */
#define STORCON_HTTP_HOST_CONNECTIONS   16
#define STORCON_HTTP_CACHED_CONNECTIONS 1024
/* heatmap_period the controller sets on shards that have secondaries (pageserver.md). */
#define STORCON_HEATMAP_PERIOD_WITH_SECONDARIES "60s"
/* Background pass: reconcile every dirty shard, retry pending compute notifications. */
#define STORCON_BACKGROUND_INTERVAL_MS 20000
/* Heartbeats: GET /v1/utilization on every node this often, with this timeout; a node without a
 * good heartbeat for STORCON_OFFLINE_AFTER_MS goes Offline and its attached shards move. */
#define STORCON_HEARTBEAT_INTERVAL_MS 5000
#define STORCON_HEARTBEAT_TIMEOUT_MS  2000
#define STORCON_OFFLINE_AFTER_MS      30000
/* An extra round this soon after a node registered or re-attached (it is unschedulable until
 * its next good heartbeat). */
#define STORCON_HEARTBEAT_SOON_MS 200
/* Startup: GET /v1/location_config on every node: per-attempt timeout, then retries (503 from a
 * pageserver still re-attaching, transport errors) with backoff until the attempts or the total
 * budget run out. The budget outlasts a pageserver's upcall backoff (at most 5 s), so a node
 * that re-attaches meanwhile answers before it is declared unreachable. */
#define STORCON_STARTUP_LOCATIONS_TIMEOUT_MS     5000
#define STORCON_STARTUP_LOCATIONS_ATTEMPTS       20
#define STORCON_STARTUP_LOCATIONS_BACKOFF_MS     200
#define STORCON_STARTUP_LOCATIONS_BACKOFF_MAX_MS 1000
#define STORCON_STARTUP_LOCATIONS_BUDGET_MS      12000
/* Worker threads (shared/worker_pool.h) for CPU work kept off the loop: scanning the location
 * listings at startup (megabytes each), several at once. */
#define STORCON_WORKER_THREADS 2
/* Tenant create waits this long for the first reconciles before answering. */
#define STORCON_TENANT_CREATE_WAIT_MS 30000
/* Tenant delete: the detach reconciles must finish within this. */
#define STORCON_TENANT_DELETE_WAIT_MS 60000
/* Default and maximum page size of GET /control/v1/tenant. */
#define STORCON_TENANT_LIST_DEFAULT_LIMIT 1000
#define STORCON_TENANT_LIST_MAX_LIMIT     10000

/* Timeline import finalisation (docs/import.md): one attempt holds the tenant's shared lock for
 * at most the deadline; a failed attempt is retried after base << failures, capped. */
#define STORCON_IMPORT_FINALIZE_DEADLINE_MS 120000
#define STORCON_IMPORT_RETRY_BASE_MS        1000
#define STORCON_IMPORT_RETRY_MAX_MS         10000
#define STORCON_IMPORT_ACTIVATE_TIMEOUT_MS  10000 /* per activate_post_import attempt */
#define STORCON_IMPORT_ACTIVATE_ATTEMPTS    5     /* 503 = a task still running: retried */
#define STORCON_IMPORT_ACTIVATE_BACKOFF_MS  500
#define STORCON_IMPORT_ACTIVATE_BACKOFF_MAX 4000
#define STORCON_IMPORT_NOTIFY_TIMEOUT_MS    10000 /* per import_complete request */
#define STORCON_IMPORT_NOTIFY_ATTEMPTS      3     /* per attempt; attempts repeat until 2xx */

#endif
