/* config.c: the pageserver's option table and the validation of its settings. */
#include "pageserver/config.h"

#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "shared/daemon.h"
#include "shared/fsutil.h"
#include "shared/str.h"

#include "pageserver/defaults.h"

/* A row with a range or the required bit, which CONFIG_OPT leaves at 0/false. */
#define PS_OPT_EX(type_, member, name, def, metavar, help, min_, max_, required_)                  \
    {                                                                                              \
        (name), (type_), offsetof(PageserverConfig, member),                                       \
            sizeof(((PageserverConfig *)0)->member), (def), (metavar), (help), (min_), (max_),     \
            (required_)                                                                            \
    }

static const ConfigOption PAGESERVER_OPTIONS[] = {
    PS_OPT_EX(CONFIG_STRING, workdir, "workdir", NULL, "DIR",
              "local work directory (created if missing; locked while running)", 0, 0, true),
    PS_OPT_EX(CONFIG_U64, id, "id", NULL, "N", "node id of this pageserver (>= 1)", 1, INT64_MAX,
              true),
    CONFIG_OPT(CONFIG_HOSTPORT, PageserverConfig, listen_http, "listen-http",
               PAGESERVER_DEFAULT_LISTEN_HTTP, "HOST:PORT",
               "management API address (port 0: any free port)"),
    CONFIG_OPT(CONFIG_HOSTPORT, PageserverConfig, listen_pg, "listen-pg",
               PAGESERVER_DEFAULT_LISTEN_PG, "HOST:PORT",
               "page service address (Postgres wire protocol; port 0: any free port)"),
    CONFIG_OPT(
        CONFIG_STRING, PageserverConfig, remote_storage, "remote-storage", NULL, "URL",
        "remote storage: file:///abs/path (default file://<workdir>/" PAGESERVER_REMOTE_STORAGE_DIR
        ") or s3://bucket/prefix?region=R&endpoint=URL (docs/operations.md)"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, remote_storage_credentials,
               "remote-storage-credentials", NULL, "FILE",
               "S3 credentials in the AWS credentials file format, profile [default] (default: "
               "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, control_plane_api, "control-plane-api", NULL, "URL",
               "storage controller upcall base, e.g. http://127.0.0.1:1234/upcall/v1/"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, availability_zone, "availability-zone",
               PAGESERVER_DEFAULT_AZ, "AZ", "availability zone id of this node"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, pg_bin_dir, "pg-bin-dir",
               PAGESERVER_DEFAULT_PG_BIN_DIR, "DIR", "Postgres binaries (must contain initdb)"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, public_key, "public-key", NULL, "PATH",
               "Ed25519 public key file or directory for JWT auth (absent: auth off)"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, log_level, "log-level",
               PAGESERVER_DEFAULT_LOG_LEVEL, "LEVEL", "debug, info, warn or error"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, log_file, "log-file", NULL, "PATH",
               "log to this file (reopened on SIGHUP) instead of stderr"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, failpoints, "failpoints", NULL, "SPEC",
               "arm failpoints at startup: name=action;name2=action"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, control_plane_token_file,
               "control-plane-token-file", NULL, "PATH",
               "file holding the JWT (scope generations_api) sent with control plane upcalls"),
    CONFIG_OPT(CONFIG_STRING, PageserverConfig, initdb_user, "initdb-user",
               PAGESERVER_DEFAULT_INITDB_USER, "USER",
               "user initdb runs as when the pageserver runs as root (bootstrap timelines)"),
    PS_OPT_EX(CONFIG_U64, worker_threads, "worker-threads", PAGESERVER_DEFAULT_WORKER_THREADS_STR,
              "N", "threads for disk and CPU work", 1, PAGESERVER_MAX_WORKER_THREADS, false),
    PS_OPT_EX(CONFIG_U64, worker_latency_reserved, "worker-latency-reserved", "0", "N",
              "worker threads IO and BULK jobs never take, kept for page reads (0: threads / 4, "
              "at least 1)",
              0, PAGESERVER_MAX_WORKER_THREADS, false),
    PS_OPT_EX(CONFIG_U64, worker_max_io, "worker-max-io", "0", "N",
              "IO jobs (uploads, downloads, config writes, deletions) running at once (0: every "
              "thread not reserved)",
              0, PAGESERVER_MAX_WORKER_THREADS, false),
    PS_OPT_EX(CONFIG_U64, worker_max_bulk, "worker-max-bulk", "0", "N",
              "BULK jobs (initdb) running at once (0: half the threads not reserved, at least 1)",
              0, PAGESERVER_MAX_WORKER_THREADS, false),
    PS_OPT_EX(CONFIG_U64, worker_sync_threads, "worker-sync-threads",
              PAGESERVER_DEFAULT_WORKER_SYNC_THREADS_STR, "N",
              "more threads, only for location config writes (fsync-bound, run many at once so "
              "that the filesystem commits them together; 0: they run as IO jobs)",
              0, PAGESERVER_MAX_WORKER_THREADS, false),
    CONFIG_OPT(CONFIG_DURATION_MS, PageserverConfig, wait_lsn_timeout_ms, "wait-lsn-timeout",
               "300s", "DURATION",
               "how long a read at an LSN beyond last_record_lsn waits for it (then 408)"),
    CONFIG_OPT(CONFIG_DURATION_MS, PageserverConfig, import_poll_ms, "import-poll-interval",
               PAGESERVER_DEFAULT_IMPORT_POLL, "DURATION",
               "how often an import checks its source for status/pgdata (docs/import.md)"),
    PS_OPT_EX(CONFIG_U64, import_job_size, "import-job-size",
              PAGESERVER_DEFAULT_IMPORT_JOB_SIZE_STR, "BYTES",
              "soft limit of shard-local page bytes per import job (one image layer each)", 8192,
              INT64_MAX, false),
    PS_OPT_EX(CONFIG_U64, import_parallelism, "import-parallelism",
              PAGESERVER_DEFAULT_IMPORT_PARALLELISM_STR, "N",
              "import jobs of one timeline running at once (BULK worker class)", 1, 16, false),
    PS_OPT_EX(CONFIG_U64, import_checkpoint_jobs, "import-checkpoint-jobs",
              PAGESERVER_DEFAULT_IMPORT_CHECKPOINT_JOBS_STR, "N",
              "import jobs between index uploads and progress upcalls", 1, 1000000, false),
    PS_OPT_EX(CONFIG_U64, secondary_download_bandwidth, "secondary-download-bandwidth", "0",
              "BYTES",
              "bytes per second all warm secondary downloads together may read (0: no "
              "limit)",
              0, 0, false),
    PS_OPT_EX(CONFIG_U64, page_cache_bytes, "page-cache-bytes",
              PAGESERVER_DEFAULT_PAGE_CACHE_BYTES_STR, "BYTES",
              "memory for decoded layer values (pages) read before, so reads of them skip the "
              "disk read, checksum and decompression (0: no cache)",
              0, 0, false),
    PS_OPT_EX(CONFIG_U64, http_max_connections, "http-max-connections", "1000", "N",
              "open API connections at once; more are answered 503 and closed", 1,
              HTTP_MAX_CONNECTIONS_LIMIT, false),
    PS_OPT_EX(CONFIG_U64, pg_max_connections, "pg-max-connections",
              PAGE_SERVICE_DEFAULT_MAX_CONNECTIONS, "N",
              "open page service connections at once; more are refused (SQLSTATE 53300)", 1,
              1000000, false),
    PS_OPT_EX(CONFIG_U64, pg_threads, "page-service-threads", "0", "N",
              "page service threads, each an event loop serving its share of the connections (0: "
              "the online CPUs, at most 4)",
              0, PAGE_SERVICE_MAX_THREADS, false),
    CONFIG_OPT(CONFIG_DURATION_MS, PageserverConfig, pg_handshake_timeout_ms,
               "pg-handshake-timeout", PAGE_SERVICE_DEFAULT_HANDSHAKE, "DURATION",
               "page service: time from connect to the command (startup, password, query)"),
    CONFIG_OPT(CONFIG_DURATION_MS, PageserverConfig, pg_idle_timeout_ms, "pg-idle-timeout",
               PAGE_SERVICE_DEFAULT_IDLE, "DURATION",
               "page service: a connection without a request, or whose client reads nothing of "
               "its answers, for this long is closed"),
};

static const ConfigSpec PAGESERVER_SPEC = {
    .program = "pageserver",
    .summary = "hosts tenant shards: timelines of layer files, backed by remote storage",
    .options = PAGESERVER_OPTIONS,
    .n_options = sizeof(PAGESERVER_OPTIONS) / sizeof(PAGESERVER_OPTIONS[0]),
};

const ConfigSpec *pageserver_config_spec(void)
{
    return &PAGESERVER_SPEC;
}

ConfigResult pageserver_config_load(int argc, char **argv, PageserverConfig *out, int *exit_code,
                                    Err *err)
{
    memset(out, 0, sizeof(*out));
    ConfigResult r = config_load(&PAGESERVER_SPEC, argc, argv, out, err);
    if (r == CONFIG_ERROR) {
        *exit_code = EXIT_CODE_BAD_ARGS;
        return r;
    }
    if (r == CONFIG_HELP) {
        *exit_code = EXIT_CODE_OK;
        return r;
    }
    if (!pageserver_config_finish(out, exit_code, err))
        return CONFIG_ERROR;
    *exit_code = EXIT_CODE_OK;
    return CONFIG_OK;
}

/* make_absolute: the work directory is written into the default remote storage URL and the logs,
 * where a relative path would mean nothing to a reader in another directory. */
static bool make_absolute(char *path, size_t cap, Err *err)
{
    if (path[0] != '/') {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            err_set(err, ERR_INTERNAL, "--workdir: cannot get the current directory: %m");
            return false;
        }
        char joined[PATH_MAX];
        if (!str_printf(joined, sizeof(joined), "%s/%s", cwd, path) ||
            !str_copy(path, cap, joined)) {
            err_set(err, ERR_BAD_REQUEST, "--workdir: path too long");
            return false;
        }
    }
    fs_strip_trailing_slashes(path);
    return true;
}

/* az_valid: availability zone ids are written into metadata.json and metrics labels. */
static bool az_valid(const char *az)
{
    if (az[0] == '\0')
        return false;
    for (const char *p = az; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    }
    return true;
}

bool pageserver_config_finish(PageserverConfig *cfg, int *exit_code, Err *err)
{
    *exit_code = EXIT_CODE_BAD_ARGS;
    if (cfg->workdir[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "--workdir is required");
        return false;
    }
    if (cfg->id < 1 || cfg->id > INT64_MAX) {
        err_set(err, ERR_BAD_REQUEST, "--id is required and must be >= 1");
        return false;
    }
    if (cfg->worker_threads < 1 || cfg->worker_threads > PAGESERVER_MAX_WORKER_THREADS) {
        err_set(err, ERR_BAD_REQUEST, "--worker-threads must be in 1..%d",
                PAGESERVER_MAX_WORKER_THREADS);
        return false;
    }
    WorkerPoolConfig workers = {
        .threads = (int)cfg->worker_threads,
        .latency_reserved = (int)cfg->worker_latency_reserved,
        .max_io = (int)cfg->worker_max_io,
        .max_bulk = (int)cfg->worker_max_bulk,
        .sync_threads = (int)cfg->worker_sync_threads,
    };
    if (!worker_pool_config_resolve(&workers, &cfg->workers, err)) {
        err_prefix(err, "--worker-*: ");
        return false;
    }
    if (!make_absolute(cfg->workdir, sizeof(cfg->workdir), err))
        return false;
    if (!log_level_parse(cfg->log_level, &cfg->log_level_value)) {
        err_set(err, ERR_BAD_REQUEST,
                "--log-level: unknown level \"%s\" (debug, info, warn, error)", cfg->log_level);
        return false;
    }
    if (!az_valid(cfg->availability_zone)) {
        err_set(
            err, ERR_BAD_REQUEST,
            "--availability-zone: \"%s\" is not a valid zone id (letters, digits, '-', '_', '.')",
            cfg->availability_zone);
        return false;
    }
    if (cfg->initdb_user[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "--initdb-user must not be empty");
        return false;
    }
    if (cfg->pg_bin_dir[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "--pg-bin-dir must not be empty");
        return false;
    }
    char normalized[PAGESERVER_URL_MAX];
    if (!pageserver_control_plane_api_normalize(cfg->control_plane_api, normalized,
                                                sizeof(normalized), err)) {
        err_prefix(err, "--control-plane-api: ");
        return false;
    }
    str_copy(cfg->control_plane_api, sizeof(cfg->control_plane_api), normalized);

    if (cfg->remote_storage[0] == '\0' &&
        !str_printf(cfg->remote_storage, sizeof(cfg->remote_storage), "file://%s/%s", cfg->workdir,
                    PAGESERVER_REMOTE_STORAGE_DIR)) {
        err_set(err, ERR_BAD_REQUEST, "--workdir: path too long for the default remote storage");
        return false;
    }
    if (!remote_storage_url_parse(cfg->remote_storage, &cfg->remote, err)) {
        err_prefix(err, "--remote-storage: ");
        return false;
    }
    if (!remote_storage_url_check_supported(&cfg->remote, err)) {
        err_prefix(err, "--remote-storage: ");
        *exit_code = EXIT_CODE_CONFIG;
        return false;
    }
    if (cfg->remote_storage_credentials[0] != '\0' &&
        !remote_storage_set_credentials_file(cfg->remote_storage_credentials, err)) {
        err_prefix(err, "--remote-storage-credentials: ");
        *exit_code = EXIT_CODE_CONFIG;
        return false;
    }
    *exit_code = EXIT_CODE_OK;
    return true;
}

bool pageserver_config_check_pg_bin_dir(const PageserverConfig *cfg, Err *err)
{
    char initdb[PATH_MAX];
    if (!str_printf(initdb, sizeof(initdb), "%s/initdb", cfg->pg_bin_dir)) {
        err_set(err, ERR_BAD_REQUEST, "--pg-bin-dir: path too long");
        return false;
    }
    if (access(initdb, X_OK) != 0) {
        err_set(err, ERR_PRECONDITION_FAILED,
                "--pg-bin-dir: %s is missing or not executable (%m); point --pg-bin-dir at the "
                "Postgres bin directory",
                initdb);
        return false;
    }
    return true;
}

bool pageserver_control_plane_api_normalize(const char *in, char *out, size_t cap, Err *err)
{
    if (in[0] == '\0') {
        str_copy(out, cap, "");
        return true;
    }
    const char *host;
    if (str_has_prefix(in, "http://"))
        host = in + strlen("http://");
    else if (str_has_prefix(in, "https://"))
        host = in + strlen("https://");
    else {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": expected an http:// or https:// URL", in);
        return false;
    }
    if (host[0] == '\0' || host[0] == '/') {
        err_set(err, ERR_BAD_REQUEST, "\"%s\": no host", in);
        return false;
    }
    for (const char *p = in; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            err_set(err, ERR_BAD_REQUEST, "\"%s\": spaces or control characters in the URL", in);
            return false;
        }
    }
    bool slash = str_has_suffix(in, "/");
    if (!str_printf(out, cap, "%s%s", in, slash ? "" : "/")) {
        err_set(err, ERR_BAD_REQUEST, "URL too long");
        return false;
    }
    return true;
}
