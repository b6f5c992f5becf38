/*
 * main.c: the pageserver daemon's startup and shutdown.
 *
 * Startup, all before the event loop runs (blocking file I/O is fine here; afterwards disk work
 * goes to the worker pool): parse the config; arm --failpoints; check the Postgres binaries;
 * create the work directory; take an exclusive flock on <workdir>/pageserver.lock so two
 * pageservers never share a work directory; refuse a work directory whose metadata.json names
 * another node; create tenants/, deletion/ and the file:// remote storage root; load the auth key;
 * bind the management API; write metadata.json with the bound port; then run the loop until
 * SIGTERM/SIGINT (graceful stop, exit 0). SIGHUP reopens the log file (shared/daemon.h).
 *
 * Then the tenant side (before the loop, blocking reads are fine): open remote storage, empty
 * <workdir>/tmp, load the deletion queue and every persisted location config; once the loop runs
 * the tenant manager sends re-attach (or, without --control-plane-api, loads the configs as they
 * are) and opens the tenant routes when that is applied. SIGTERM: no new background work, the
 * upcalls are cancelled, in-flight requests and worker jobs finish (bounded by the drain timeout),
 * exit 0.
 *
 * The page service (pageserver/page_service.h) listens on --listen-pg once the tenant side is
 * loaded; metadata.json records the port it bound. SIGTERM closes its listener and connections
 * first; its reads in flight complete while the worker pool drains, then it is freed.
 *
 * Exit codes: 64 bad flag or value, 70 internal, 71 OS (cannot create, lock, bind), 78 unusable
 * configuration (unreadable S3 credentials, no initdb, bad public key, work directory of another
 * node).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shared/auth.h"
#include "shared/daemon.h"
#include "shared/err.h"
#include "shared/failpoint.h"
#include "shared/fsutil.h"
#include "shared/http_client.h"
#include "shared/http_server.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/basebackup.h"
#include "pageserver/config.h"
#include "pageserver/defaults.h"
#include "pageserver/deletion_queue.h"
#include "pageserver/http_api.h"
#include "pageserver/node_metadata.h"
#include "pageserver/page_cache.h"
#include "pageserver/page_service.h"
#include "pageserver/secondary.h"
#include "pageserver/storcon_client.h"
#include "pageserver/tenant.h"

#define PROGRAM "pageserver"

/* workdir_path: "<workdir>/<name>" or die: the work directory was length-checked at config time,
 * so only an absurd name could overflow. */
static void workdir_path(const PageserverApp *app, const char *name, char *out, size_t cap)
{
    if (!str_printf(out, cap, "%s/%s", app->cfg.workdir, name)) {
        Err err = {0};
        err_set(&err, ERR_BAD_REQUEST, "path %s/%s is too long", app->cfg.workdir, name);
        daemon_die(PROGRAM, EXIT_CODE_BAD_ARGS, &err);
    }
}

static void create_workdir(PageserverApp *app)
{
    Err err = {0};
    if (!fs_mkdir_p(app->cfg.workdir, PAGESERVER_DIR_MODE, &err)) {
        err_prefix(&err, "cannot create workdir: ");
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    }
}

/* create_subdirs: the directories every later subsystem assumes exist; created only once the
 * lock is held, so a refused second pageserver changes nothing. */
static void create_subdirs(PageserverApp *app)
{
    static const char *const SUBDIRS[] = {PAGESERVER_TENANTS_DIR, PAGESERVER_DELETION_DIR};
    Err err = {0};
    for (size_t i = 0; i < sizeof(SUBDIRS) / sizeof(SUBDIRS[0]); i++) {
        char path[PATH_MAX];
        workdir_path(app, SUBDIRS[i], path, sizeof(path));
        if (!fs_mkdir_p(path, PAGESERVER_DIR_MODE, &err))
            daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    }
}

/* lock_workdir: the lock is held by the open file description for the life of the process
 * (closed on exit or crash, so no stale lock survives a kill -9). The pid written into the file
 * is only a hint for operators. */
static void lock_workdir(PageserverApp *app)
{
    char path[PATH_MAX];
    workdir_path(app, PAGESERVER_LOCK_FILE, path, sizeof(path));
    Err err = {0};
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_set(&err, ERR_INTERNAL, "cannot open %s: %m", path);
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            err_set(&err, ERR_CONFLICT, "workdir %s is in use by another pageserver",
                    app->cfg.workdir);
        else
            err_set(&err, ERR_INTERNAL, "cannot lock %s: %m", path);
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || write(fd, pid, (size_t)n) != n)
        log_warn("cannot write the pid into %s: %m", path);
    app->lock_fd = fd;
}

/* prepare_remote_storage: the local-fs "object store" root must exist before anything uploads. */
static void prepare_remote_storage(PageserverApp *app)
{
    Err err = {0};
    if (app->cfg.remote.kind != REMOTE_STORAGE_LOCAL_FS)
        return;
    if (!fs_mkdir_p(app->cfg.remote.path, PAGESERVER_DIR_MODE, &err)) {
        err_prefix(&err, "cannot create remote storage root: ");
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    }
}

/* setup_auth: without a key every route is open, which is only acceptable in development, so
 * say so loudly. A key that cannot be loaded is a configuration error, never "auth off". */
static void setup_auth(PageserverApp *app)
{
    Err err = {0};
    if (app->cfg.public_key[0] == '\0')
        return; /* warned about once the API is up (startup errors stay one line) */
    if (!auth_new_from_file(app->cfg.public_key, &app->auth, &err)) {
        err_prefix(&err, "--public-key: ");
        daemon_die(PROGRAM, EXIT_CODE_CONFIG, &err);
    }
    log_info("auth on: tokens verified with %s", app->cfg.public_key);
}

static void on_stop(void *arg)
{
    PageserverApp *app = arg;
    log_info("stopping: node %" PRIu64 " shutting down", app->cfg.id);
    app->stopping = true;
    page_service_stop(app->page_service);
    tenant_manager_stop(app->tenants);
    deletion_queue_stop(app->deletion);
    storcon_client_stop(app->storcon);
}

/* open_remote_storage: the object store every tenant's layers and indexes live in. */
static void open_remote_storage(PageserverApp *app)
{
    Err err = {0};
    if (!remote_storage_open(app->cfg.remote_storage, &app->remote, &err)) {
        err_prefix(&err, "--remote-storage: ");
        daemon_die(PROGRAM, EXIT_CODE_CONFIG, &err);
    }
}

/* clean_tmp: scratch space of interrupted bootstraps; nothing in it survives a restart. */
static void clean_tmp(PageserverApp *app)
{
    char path[PATH_MAX];
    workdir_path(app, PAGESERVER_TMP_DIR, path, sizeof(path));
    Err err = {0};
    if (!fs_remove_tree(path, &err) || !fs_mkdir_p(path, PAGESERVER_DIR_MODE, &err))
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
}

/* load_token: the bearer token for upcalls (one line; surrounding whitespace dropped). */
static void load_token(PageserverApp *app)
{
    if (app->cfg.control_plane_token_file[0] == '\0')
        return;
    Err err = {0};
    char *text = NULL;
    size_t len = 0;
    if (!fs_read_file(app->cfg.control_plane_token_file, PAGESERVER_TOKEN_FILE_MAX_BYTES, &text,
                      &len, &err)) {
        err_prefix(&err, "--control-plane-token-file: ");
        daemon_die(PROGRAM, EXIT_CODE_CONFIG, &err);
    }
    size_t start = 0;
    while (start < len && (text[start] == ' ' || text[start] == '\n' || text[start] == '\r' ||
                           text[start] == '\t'))
        start++;
    while (len > start && (text[len - 1] == ' ' || text[len - 1] == '\n' || text[len - 1] == '\r' ||
                           text[len - 1] == '\t'))
        len--;
    if (len == start || memchr(text + start, '\n', len - start) != NULL) {
        free(text);
        err_set(&err, ERR_BAD_REQUEST, "--control-plane-token-file: expected one non-empty line");
        daemon_die(PROGRAM, EXIT_CODE_CONFIG, &err);
    }
    app->control_plane_token = xstrndup(text + start, len - start);
    free(text);
}

/* start_tenants: deletion queue and persisted slots (blocking reads: before the loop runs). */
static void start_tenants(PageserverApp *app)
{
    Err err = {0};
    app->storcon = storcon_client_new(app);
    app->tenants = tenant_manager_new(app);
    app->deletion = deletion_queue_new(app, tenant_manager_on_visible_lsn, app->tenants);
    if (!deletion_queue_load(app->deletion, &err) || !tenant_manager_load_local(app->tenants, &err))
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    deletion_queue_start(app->deletion);
    tenant_manager_start(app->tenants);
}

/* start_http: bind the management API; metadata.json records the port actually bound (port 0
 * picks a free one, which tests use). */
static void start_http(PageserverApp *app)
{
    Err err = {0};
    size_t n_routes = 0;
    const HttpRoute *routes = pageserver_http_routes(&n_routes);
    HttpServerConfig hc = {
        .listen = app->cfg.listen_http,
        .routes = routes,
        .n_routes = n_routes,
        .app = app,
        .max_body_bytes = PAGESERVER_HTTP_MAX_BODY_BYTES,
        .auth = app->auth,
        .auth_policy = AUTH_POLICY_PAGESERVER,
        .metrics = app->metrics,
        .name = "pageserver api",
        .max_connections = (size_t)app->cfg.http_max_connections,
    };
    if (!http_server_start(app->base, &hc, &app->http, &err))
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    daemon_add_server(app->daemon, app->http);
}

/* start_page_service: bind --listen-pg (the bound port goes into metadata.json). */
static void start_page_service(PageserverApp *app)
{
    Err err = {0};
    PageServiceConfig pc = {
        .listen = app->cfg.listen_pg,
        .max_connections = app->cfg.pg_max_connections,
        .threads = (size_t)app->cfg.pg_threads,
        .handshake_timeout_ms = app->cfg.pg_handshake_timeout_ms,
        .idle_timeout_ms = app->cfg.pg_idle_timeout_ms,
        .basebackup_build = basebackup_build,
    };
    if (!page_service_start(app, &pc, &app->page_service, &err))
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
}

/* write_metadata: record this node's identity and addresses; a later start with another --id
 * refuses this work directory (node_metadata_check_identity). */
static void write_metadata(PageserverApp *app)
{
    Err err = {0};
    NodeMetadata *md = &app->metadata;
    md->node_id = app->cfg.id;
    str_copy(md->listen_http_addr, sizeof(md->listen_http_addr), app->cfg.listen_http.host);
    md->listen_http_port = http_server_port(app->http);
    str_copy(md->listen_pg_addr, sizeof(md->listen_pg_addr), app->cfg.listen_pg.host);
    md->listen_pg_port = page_service_port(app->page_service);
    str_copy(md->availability_zone_id, sizeof(md->availability_zone_id),
             app->cfg.availability_zone);
    char path[PATH_MAX];
    workdir_path(app, PAGESERVER_METADATA_FILE, path, sizeof(path));
    if (!node_metadata_store(path, md, &err))
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
}

/* register_metrics: series that exist from the start, so a scrape shows the node's identity. */
static void register_metrics(PageserverApp *app)
{
    char az[PAGESERVER_AZ_MAX * 2];
    metrics_label_escape(app->cfg.availability_zone, az, sizeof(az));
    char labels[256];
    str_printf(labels, sizeof(labels), "node_id=\"%" PRIu64 "\",availability_zone=\"%s\"",
               app->cfg.id, az); /* both bounded: cannot truncate */
    metric_gauge_set(metrics_gauge(app->metrics, "pageserver_info",
                                   "Constant 1, labelled with the node's identity", labels),
                     1);
    metric_gauge_set(metrics_gauge(app->metrics, "pageserver_start_time_seconds",
                                   "Unix time the process started", NULL),
                     (double)app->started_at);
}

int main(int argc, char **argv)
{
    static PageserverApp app; /* large (paths); static keeps it off the stack */
    app.lock_fd = -1;
    app.started_at = time(NULL);
    Err err = {0};

    if (!log_init(PROGRAM, LOG_INFO, NULL, &err))
        daemon_die(PROGRAM, EXIT_CODE_INTERNAL, &err);
    int code = EXIT_CODE_OK;
    ConfigResult r = pageserver_config_load(argc, argv, &app.cfg, &code, &err);
    if (r == CONFIG_HELP)
        return EXIT_CODE_OK;
    if (r == CONFIG_ERROR)
        daemon_die(PROGRAM, code, &err);
    PageserverConfig *cfg = &app.cfg;
    if (!log_init(PROGRAM, cfg->log_level_value, cfg->log_file[0] ? cfg->log_file : NULL, &err))
        daemon_die(PROGRAM, EXIT_CODE_OS, &err);
    if (cfg->failpoints[0] != '\0' && !failpoint_configure(cfg->failpoints, &err)) {
        err_prefix(&err, "--failpoints: ");
        daemon_die(PROGRAM, EXIT_CODE_BAD_ARGS, &err);
    }
    if (!pageserver_config_check_pg_bin_dir(cfg, &err))
        daemon_die(PROGRAM, EXIT_CODE_CONFIG, &err);

    create_workdir(&app);
    lock_workdir(&app);
    char md_path[PATH_MAX];
    workdir_path(&app, PAGESERVER_METADATA_FILE, md_path, sizeof(md_path));
    if (!node_metadata_check_identity(md_path, cfg->id, &err))
        daemon_die(PROGRAM, EXIT_CODE_CONFIG, &err);
    create_subdirs(&app);
    prepare_remote_storage(&app);
    open_remote_storage(&app);
    clean_tmp(&app);
    load_token(&app);
    setup_auth(&app);

    app.metrics = metrics_registry_new();
    register_metrics(&app);
    pageserver_metrics_register(&app);
    remote_storage_set_metrics(app.metrics); /* before the workers make any S3 request */
    if (!daemon_new(PROGRAM, &app.daemon, &err))
        daemon_die(PROGRAM, EXIT_CODE_INTERNAL, &err);
    app.base = daemon_base(app.daemon);
    app.defer = loop_defer_new(app.base);
    PageCacheMetrics pcm = {.hits = app.m.page_cache_hits,
                            .misses = app.m.page_cache_misses,
                            .evictions = app.m.page_cache_evictions,
                            .bytes = app.m.page_cache_bytes};
    app.page_cache = page_cache_new(cfg->page_cache_bytes, &pcm);
    if (!worker_pool_new_config(app.base, &cfg->workers, &app.workers, &err) ||
        !http_client_new(app.base, &app.http_client, &err))
        daemon_die(PROGRAM, EXIT_CODE_INTERNAL, &err);
    start_http(&app);
    start_page_service(&app);
    write_metadata(&app);
    daemon_set_drain_timeout_ms(app.daemon, PAGESERVER_DRAIN_TIMEOUT_MS);
    daemon_on_stop(app.daemon, on_stop, &app);
    start_tenants(&app);

    log_info("node %" PRIu64 " (az %s) serving the management API on %s:%u; workdir %s; remote "
             "storage %s",
             cfg->id, cfg->availability_zone, cfg->listen_http.host,
             (unsigned)app.metadata.listen_http_port, cfg->workdir, cfg->remote_storage);
    log_info("page service listening on %s:%u", cfg->listen_pg.host,
             (unsigned)app.metadata.listen_pg_port);
    if (app.auth == NULL)
        log_warn("AUTH IS OFF: no --public-key given, every API route is open to anyone who can "
                 "reach %s:%u (development only)",
                 cfg->listen_http.host, (unsigned)app.metadata.listen_http_port);
    if (cfg->control_plane_api[0] == '\0')
        log_warn("no --control-plane-api: running without a storage controller (development "
                 "mode: locally persisted location configs are loaded as they are, every "
                 "generation is taken as valid for deletions)");

    int rc = daemon_run(app.daemon);

    /* The daemon freed the HTTP server when it stopped (daemon_add_server hands it over), which
     * answered whatever was still waiting. Completions that run while the worker pool drains
     * see http == NULL and http_client == NULL and neither reply nor call out. */
    app.http = NULL;
    app.stopping = true;
    storcon_client_stop(app.storcon);
    http_client_free(app.http_client);
    app.http_client = NULL;
    worker_pool_free(app.workers);
    app.workers = NULL;
    page_service_free(app.page_service); /* after the drain: its reads have completed */
    app.page_service = NULL;
    tenant_manager_free(app.tenants);
    page_cache_free(app.page_cache); /* after the workers: nothing reads through it any more */
    deletion_queue_free(app.deletion);
    secondary_scheduler_free(&app);
    storcon_client_free(app.storcon);
    remote_storage_free(app.remote);
    free(app.control_plane_token);
    loop_defer_free(app.defer);
    daemon_free(app.daemon);
    if (app.auth != NULL)
        auth_free(app.auth);
    metrics_registry_free(app.metrics);
    if (app.lock_fd >= 0)
        close(app.lock_fd);
    log_info("stopped (exit %d)", rc);
    return rc;
}
