/*
 * defaults.h: every default, limit and timeout of the pageserver in one place, so an operator (or
 * a newcomer) finds them without reading the code that uses them.
 */
#ifndef PAGESERVER_DEFAULTS_H
#define PAGESERVER_DEFAULTS_H

/* Listeners: the management API (--listen-http) and the page service (--listen-pg). */
#define PAGESERVER_DEFAULT_LISTEN_HTTP "127.0.0.1:9898"
#define PAGESERVER_DEFAULT_LISTEN_PG   "127.0.0.1:6400"

#define PAGESERVER_DEFAULT_AZ                 "local"
#define PAGESERVER_DEFAULT_PG_BIN_DIR         "/usr/lib/postgresql/15/bin"
#define PAGESERVER_DEFAULT_LOG_LEVEL          "info"
#define PAGESERVER_DEFAULT_WORKER_THREADS_STR "4"
#define PAGESERVER_MAX_WORKER_THREADS         256
/* location config writes at once (WORKER_CLASS_SYNC): enough for a burst of creates to share
 * journal commits; the threads sleep in fsync, they cost no CPU */
#define PAGESERVER_DEFAULT_WORKER_SYNC_THREADS_STR "8"
/* Worker pool job deadlines: how long a job whose caller waits for it may wait for a free worker
 * before the caller gets 503 (retry). Uploads, the deletion queue, attach, location config writes,
 * local removals and timeline deletions have none: they are retried, or a spurious failure would
 * break the tenant shard; only shutdown cancels them. */
#define PAGESERVER_READ_DEADLINE_MS          30000u /* LATENCY: get_page, rel_size, ... */
#define PAGESERVER_UTILIZATION_DEADLINE_MS   10000u
#define PAGESERVER_TENANT_DELETE_DEADLINE_MS 30000u /* deleting a tenant's remote data */
#define PAGESERVER_BOOTSTRAP_DEADLINE_MS     60000u /* BULK: initdb of a timeline creation */

/* Import (docs/import.md): status/pgdata poll period, bytes of shard-local pages per job (256
 * MiB, pgdata.h), jobs between index uploads and progress upcalls, jobs of one import at once, the
 * largest status/pgdata accepted, the retry delay after a failure of our own. */
#define PAGESERVER_DEFAULT_IMPORT_POLL                "10s"
#define PAGESERVER_DEFAULT_IMPORT_JOB_SIZE_STR        "268435456"
#define PAGESERVER_DEFAULT_IMPORT_CHECKPOINT_JOBS_STR "32"
#define PAGESERVER_DEFAULT_IMPORT_PARALLELISM_STR     "2"
#define PAGESERVER_IMPORT_STATUS_MAX_BYTES            4096u
#define PAGESERVER_IMPORT_RETRY_MS                    1000u
/* a status upcall answered 404 (no row at storcon yet) is asked again this many times, first
 * after PAGESERVER_IMPORT_STATUS_FIRST_RETRY_MS, doubling up to PAGESERVER_IMPORT_RETRY_MS apart
 * (about 10 minutes in all), then the import fails */
#define PAGESERVER_IMPORT_STATUS_UNKNOWN_MAX    600u
#define PAGESERVER_IMPORT_STATUS_FIRST_RETRY_MS 20u

/* Remote storage: default "file://<workdir>/" PAGESERVER_REMOTE_STORAGE_DIR. */
#define PAGESERVER_REMOTE_STORAGE_DIR "remote_storage"

/* Local work directory layout (pageserver.md "Local work directory"). */
#define PAGESERVER_TENANTS_DIR   "tenants"
#define PAGESERVER_DELETION_DIR  "deletion"
#define PAGESERVER_LOCK_FILE     "pageserver.lock"
#define PAGESERVER_METADATA_FILE "metadata.json"
/* metadata.json is tiny; anything larger is corrupt. */
#define PAGESERVER_METADATA_MAX_BYTES (64u * 1024)

/* Directory permissions for everything created under the work directory. */
#define PAGESERVER_DIR_MODE 0755

/* Page service (docs/page-service.md). Per connection: requests decoded and not yet answered,
 * requests per read batch (one worker round trip), the output buffer size above which the
 * connection is not read (backpressure), the CopyData size of a basebackup stream, the largest
 * message accepted after the startup packet. */
#define PAGE_SERVICE_MAX_IN_FLIGHT 256
#define PAGE_SERVICE_MAX_BATCH     32
/* read batches of one connection being read at once; later requests wait and join the next */
#define PAGE_SERVICE_MAX_BATCHES_IN_FLIGHT 2
/* GetSlruSegment requests decoded and not yet answered: each answer is up to 256 KiB, so the
 * per-connection bound is in bytes too (4 x 256 KiB), not only in requests */
#define PAGE_SERVICE_MAX_SLRU_IN_FLIGHT 4
#define PAGE_SERVICE_OUTPUT_HIGH_WATER  (1u << 20)
/* bytes one writev / readv of a connection's socket may move (libevent's default, 16 KiB, is two
 * pages: a syscall, a TCP segment and a wakeup of the client for every other page) */
#define PAGE_SERVICE_MAX_SINGLE_WRITE (256u * 1024)
#define PAGE_SERVICE_MAX_SINGLE_READ  (64u * 1024)
/* connection threads (--page-service-threads): the default is the online CPUs, at most this */
#define PAGE_SERVICE_DEFAULT_THREADS_MAX 4
#define PAGE_SERVICE_MAX_THREADS         64
/* answers (pages, SLRU segments) of at least this many bytes go to the output by reference to the
 * read batch, not copied */
#define PAGE_SERVICE_REFERENCE_MIN 4096
/* free read batches (about 280 KiB each) a page service thread keeps for reuse */
#define PAGE_SERVICE_BATCH_POOL 16
/* how often a page service thread drops its connections' stale read views (their layer
 * references) */
#define PAGE_SERVICE_VIEW_SWEEP_MS           1000
#define PAGE_SERVICE_COPY_CHUNK              (256u * 1024)
#define PAGE_SERVICE_MAX_MESSAGE             (64u * 1024)
#define PAGE_SERVICE_LISTEN_BACKLOG          1024
#define PAGE_SERVICE_DEFAULT_MAX_CONNECTIONS "1000"
#define PAGE_SERVICE_DEFAULT_HANDSHAKE       "10s"
#define PAGE_SERVICE_DEFAULT_IDLE            "10m"

/* Page cache (page_cache.h): bytes of decoded layer values kept in memory (64 MiB: 8192 pages,
 * Neon's default page cache size). */
#define PAGESERVER_DEFAULT_PAGE_CACHE_BYTES_STR "67108864"

/* HTTP API. */
#define PAGESERVER_HTTP_MAX_BODY_BYTES (16u * 1024 * 1024)
/* How long in-flight requests may run after SIGTERM before they are answered 503. */
#define PAGESERVER_DRAIN_TIMEOUT_MS 10000L

/* Control plane upcalls (re-attach, validate): retried with capped backoff until they succeed or
 * the pageserver stops. */
#define PAGESERVER_UPCALL_TIMEOUT_MS      10000L
#define PAGESERVER_UPCALL_BACKOFF_BASE_MS 200L
#define PAGESERVER_UPCALL_BACKOFF_MAX_MS  5000L
/* A control plane token file is one line; anything larger is not a token. */
#define PAGESERVER_TOKEN_FILE_MAX_BYTES (64u * 1024)

/* Bootstrap: the user initdb runs as when the pageserver runs as root (initdb refuses root). */
#define PAGESERVER_DEFAULT_INITDB_USER "postgres"
#define PAGESERVER_INITDB_USER_MAX     64
/* initdb normally takes a few seconds; past this it is killed and the creation fails. */
#define PAGESERVER_INITDB_TIMEOUT_MS 300000L
/* Bytes of initdb's stderr kept for the error message. */
#define PAGESERVER_INITDB_STDERR_MAX 2048
/* The one Postgres major version this build bootstraps and imports (pg_control.h). */
#define PAGESERVER_PG_VERSION 15u
/* Scratch space for initdb and conversions: <workdir>/tmp (emptied at startup). */
#define PAGESERVER_TMP_DIR "tmp"
/* Per tenant shard: <workdir>/tenants/<tsid>/config and .../timelines/<tl>/. */
#define PAGESERVER_TENANT_CONFIG_FILE "config"
/* The marker of an ignored tenant shard (POST /v1/tenant/{id}/ignore): <dir>/ignored, empty. */
#define PAGESERVER_TENANT_IGNORED_FILE       "ignored"
#define PAGESERVER_TIMELINES_DIR             "timelines"
#define PAGESERVER_LOCATION_CONFIG_MAX_BYTES (1u * 1024 * 1024)

/* location_config: how long an attach may take before the PUT answers anyway (the tenant then
 * shows "Attaching"); flush_ms is capped at this too. */
#define PAGESERVER_ATTACH_WAIT_MS 30000L

/* Warm secondaries (secondary.h): download passes running at once across every tenant, and the
 * period of a tenant's passes when its heatmap names none. */
#define PAGESERVER_SECONDARY_CONCURRENCY 2
#define PAGESERVER_SECONDARY_PERIOD_MS   60000L
#define PAGESERVER_FLUSH_MAX_MS          60000L

/* Upload queue: a failed upload is retried with capped backoff (never skipped: an index may only
 * follow the layers it names). */
#define PAGESERVER_UPLOAD_BACKOFF_BASE_MS 100L
#define PAGESERVER_UPLOAD_BACKOFF_MAX_MS  10000L

/* Deletion queue: pushed objects are persisted and processed at least this often. */
#define PAGESERVER_DELETION_TICK_MS        500L
#define PAGESERVER_DELETION_LIST_MAX_KEYS  4096 /* objects per persisted list */
#define PAGESERVER_DELETION_VALIDATE_BATCH 128  /* tenants per validate request */
#define PAGESERVER_DELETION_FILE_MAX_BYTES (64u * 1024 * 1024)

/* Utilization (pageserver.md): score = max(wanted * 1e6 / usable, shards * 1e6 / max_shards). */
#define PAGESERVER_DISK_USABLE_PCT 100u
#define PAGESERVER_MAX_SHARD_COUNT 2500u

/* Bounded identifiers kept in fixed arrays. */
#define PAGESERVER_AZ_MAX  64   /* availability zone id, including NUL */
#define PAGESERVER_URL_MAX 1024 /* remote storage and control plane URLs, including NUL */

#endif
