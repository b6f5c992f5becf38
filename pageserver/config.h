/*
 * config.h: the pageserver's settings: the option table (flags and --config JSON keys, through
 * shared/config.h), the PageserverConfig struct it fills, and the checks and derived values that
 * turn raw text into something the daemon can use (absolute work directory, parsed remote storage
 * URL, normalised control plane URL, log level).
 *
 * Exit codes: a malformed value is EXIT_CODE_BAD_ARGS (64); a well-formed but unusable setting
 * (an unreadable S3 credentials file, Postgres binaries without initdb) is EXIT_CODE_CONFIG (78).
 */
#ifndef PAGESERVER_CONFIG_H
#define PAGESERVER_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/config.h"
#include "shared/err.h"
#include "shared/remote_storage.h"
#include "shared/log.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/defaults.h"

typedef struct PageserverConfig {
    /* Filled by the option table. */
    char workdir[PATH_MAX];
    uint64_t id;
    HostPort listen_http;
    HostPort listen_pg;
    char remote_storage[PAGESERVER_URL_MAX];
    char remote_storage_credentials[PATH_MAX]; /* S3 credentials file, "" = the environment */
    char control_plane_api[PAGESERVER_URL_MAX];
    char availability_zone[PAGESERVER_AZ_MAX];
    char pg_bin_dir[PATH_MAX];
    char public_key[PATH_MAX];
    char log_level[16];
    char log_file[PATH_MAX];
    char failpoints[4096];
    uint64_t worker_threads;
    uint64_t worker_latency_reserved; /* 0: the worker pool's default (threads / 4, >= 1) */
    uint64_t worker_max_io;           /* 0: threads - latency_reserved */
    uint64_t worker_max_bulk;         /* 0: half of threads - latency_reserved, >= 1 */
    uint64_t worker_sync_threads;     /* threads for location config writes only (0: IO jobs) */
    uint64_t http_max_connections;
    uint64_t pg_max_connections;             /* page service connections at once */
    uint64_t pg_threads;                     /* page service threads; 0: online CPUs, <= 4 */
    uint64_t pg_handshake_timeout_ms;        /* page service: accept to command */
    uint64_t pg_idle_timeout_ms;             /* page service: no request / no write progress */
    uint64_t import_poll_ms;                 /* import.c: status/pgdata poll period */
    uint64_t import_job_size;                /* import.c: job_soft_size_limit */
    uint64_t import_parallelism;             /* import.c: jobs of one import at once */
    uint64_t import_checkpoint_jobs;         /* import.c: jobs per index upload + progress */
    uint64_t wait_lsn_timeout_ms;            /* read_path.h: bounded wait for a future LSN */
    uint64_t secondary_download_bandwidth;   /* secondary.c: bytes/s of all passes, 0: no limit */
    uint64_t page_cache_bytes;               /* page_cache.h: decoded values kept, 0: off */
    char control_plane_token_file[PATH_MAX]; /* bearer token (generations_api) for upcalls */
    char initdb_user[PAGESERVER_INITDB_USER_MAX];

    /* Derived by pageserver_config_finish. */
    LogLevel log_level_value;
    RemoteStorageUrl remote;
    WorkerPoolConfig workers; /* the worker_* values, defaults resolved */
} PageserverConfig;

/* pageserver_config_spec: the option table (static storage; also generates --help). */
const ConfigSpec *pageserver_config_spec(void);

/* pageserver_config_load: defaults, --config file, flags (shared/config.h), then
 * pageserver_config_finish. CONFIG_ERROR sets *exit_code (64 or 78) and err. */
ConfigResult pageserver_config_load(int argc, char **argv, PageserverConfig *out, int *exit_code,
                                    Err *err);

/* pageserver_config_finish: validate the raw values and fill the derived ones. Relative workdir
 * is made absolute against the current directory; an empty remote storage becomes
 * "file://<workdir>/remote_storage". On failure *exit_code is 64 (malformed) or 78 (unusable). */
bool pageserver_config_finish(PageserverConfig *cfg, int *exit_code, Err *err) MUST_CHECK;

/* pageserver_config_check_pg_bin_dir: <pg_bin_dir>/initdb exists and is executable (the
 * bootstrap of a timeline runs it). Touches the file system: called at startup, not by finish. */
bool pageserver_config_check_pg_bin_dir(const PageserverConfig *cfg, Err *err) MUST_CHECK;

/* pageserver_control_plane_api_normalize: an http:// or https:// base URL, made to end with '/'
 * so that upcall names can be appended ("re-attach"). Empty stays empty (no control plane). */
bool pageserver_control_plane_api_normalize(const char *in, char *out, size_t cap,
                                            Err *err) MUST_CHECK;

#endif
