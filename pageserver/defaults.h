/*
 * defaults.h: every default, limit and timeout of the pageserver in one place, so an operator (or
 * a newcomer) finds them without reading the code that uses them.
 */
#ifndef PAGESERVER_DEFAULTS_H
#define PAGESERVER_DEFAULTS_H

/* Listeners. The page service (--listen-pg) is parsed and recorded in metadata.json, but nothing
 * listens on it until the page service exists. */
#define PAGESERVER_DEFAULT_LISTEN_HTTP "127.0.0.1:9898"
#define PAGESERVER_DEFAULT_LISTEN_PG   "127.0.0.1:6400"

#define PAGESERVER_DEFAULT_AZ                 "local"
#define PAGESERVER_DEFAULT_PG_BIN_DIR         "/usr/lib/postgresql/15/bin"
#define PAGESERVER_DEFAULT_LOG_LEVEL          "info"
#define PAGESERVER_DEFAULT_WORKER_THREADS_STR "4"
#define PAGESERVER_MAX_WORKER_THREADS         256

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

/* HTTP API. */
#define PAGESERVER_HTTP_MAX_BODY_BYTES (16u * 1024 * 1024)
/* How long in-flight requests may run after SIGTERM before they are answered 503. */
#define PAGESERVER_DRAIN_TIMEOUT_MS 10000L

/* Bounded identifiers kept in fixed arrays. */
#define PAGESERVER_AZ_MAX  64   /* availability zone id, including NUL */
#define PAGESERVER_URL_MAX 1024 /* remote storage and control plane URLs, including NUL */

#endif
