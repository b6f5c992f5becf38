/*
 * log.h: leveled logging with timestamps and per-thread context.
 *
 * Lines look like
 *   2026-11-21T22:40:01.123456Z  INFO storcon req=7f3a tenant=1f35...-0104: message
 * The context (request id, tenant or tenant shard id) is thread-local: the HTTP server sets the
 * request id around a handler, code working on a tenant sets the tenant. Output goes to stderr or
 * to a file that log_reopen() reopens (SIGHUP, for log rotation).
 */
#ifndef SHARED_LOG_H
#define SHARED_LOG_H

#include <stdbool.h>

#include "shared/err.h"

typedef enum LogLevel { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_LEVEL_COUNT } LogLevel;

/* log_init: set the program name, minimum level and destination (path NULL = stderr). */
bool log_init(const char *program, LogLevel min_level, const char *path, Err *err) MUST_CHECK;

/* log_reopen: reopen the log file (no-op for stderr); called from the SIGHUP handler's event. */
bool log_reopen(Err *err) MUST_CHECK;

void log_set_level(LogLevel level);
LogLevel log_get_level(void);
bool log_level_parse(const char *s, LogLevel *out);

void log_write(LogLevel level, const char *file, int line, const char *fmt, ...) PRINTF_LIKE(4, 5);

#define log_debug(...) log_write(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)

/* log_err: log an error once with where it was raised: "<what>: <msg> (at file:line func)".
 * Server errors (5xx) log at ERROR, client errors (4xx) at INFO. */
void log_err(const Err *e, const char *what);

/* Thread-local context, shown on every line the thread writes until changed. NULL or "" clears. */
void log_ctx_set_request(const char *request_id);
void log_ctx_set_tenant(const char *tenant_or_tsid);
void log_ctx_clear(void);

#endif
