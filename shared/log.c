/* log.c: leveled, timestamped logging with thread-local context; reopenable file output. */
#include "shared/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "shared/str.h"

static const char *LEVEL_NAMES[LOG_LEVEL_COUNT] = {"DEBUG", "INFO", "WARN", "ERROR"};

static struct {
    pthread_mutex_t lock;
    char program[32];
    char path[4096];
    FILE *out; /* NULL = stderr */
    LogLevel min_level;
} g_log = {.lock = PTHREAD_MUTEX_INITIALIZER, .program = "", .min_level = LOG_INFO};

static _Thread_local char t_request[40];
static _Thread_local char t_tenant[48];

bool log_init(const char *program, LogLevel min_level, const char *path, Err *err)
{
    pthread_mutex_lock(&g_log.lock);
    str_copy(g_log.program, sizeof(g_log.program), program ? program : "");
    g_log.min_level = min_level;
    g_log.path[0] = '\0';
    bool ok = true;
    if (path != NULL && path[0] != '\0') {
        if (!str_copy(g_log.path, sizeof(g_log.path), path)) {
            err_set(err, ERR_BAD_REQUEST, "log file path too long");
            ok = false;
        } else {
            FILE *f = fopen(path, "a");
            if (f == NULL) {
                err_set(err, ERR_INTERNAL, "cannot open log file %s: %m", path);
                ok = false;
            } else {
                setvbuf(f, NULL, _IOLBF, 0);
                if (g_log.out != NULL)
                    fclose(g_log.out);
                g_log.out = f;
            }
        }
    }
    pthread_mutex_unlock(&g_log.lock);
    return ok;
}

bool log_reopen(Err *err)
{
    pthread_mutex_lock(&g_log.lock);
    bool ok = true;
    if (g_log.path[0] != '\0') {
        FILE *f = fopen(g_log.path, "a");
        if (f == NULL) {
            err_set(err, ERR_INTERNAL, "cannot reopen log file %s: %m", g_log.path);
            ok = false;
        } else {
            setvbuf(f, NULL, _IOLBF, 0);
            if (g_log.out != NULL)
                fclose(g_log.out);
            g_log.out = f;
        }
    }
    pthread_mutex_unlock(&g_log.lock);
    return ok;
}

void log_set_level(LogLevel level)
{
    g_log.min_level = level;
}

LogLevel log_get_level(void)
{
    return g_log.min_level;
}

bool log_level_parse(const char *s, LogLevel *out)
{
    for (int l = 0; l < LOG_LEVEL_COUNT; l++) {
        if (strcasecmp(s, LEVEL_NAMES[l]) == 0) {
            *out = (LogLevel)l;
            return true;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return true;
    }
    return false;
}

void log_write(LogLevel level, const char *file, int line, const char *fmt, ...)
{
    if (level < g_log.min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[40];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    char ctx[128] = "";
    size_t n = 0;
    if (t_request[0] != '\0')
        n += (size_t)snprintf(ctx + n, sizeof(ctx) - n, " req=%s", t_request);
    if (t_tenant[0] != '\0' && n < sizeof(ctx))
        snprintf(ctx + n, sizeof(ctx) - n, " tenant=%s", t_tenant);

    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    pthread_mutex_lock(&g_log.lock);
    FILE *out = g_log.out ? g_log.out : stderr;
    if (level >= LOG_WARN || g_log.min_level == LOG_DEBUG)
        fprintf(out, "%s.%06ldZ %5s %s%s: %s (%s:%d)\n", stamp, ts.tv_nsec / 1000,
                LEVEL_NAMES[level], g_log.program, ctx, msg, base, line);
    else
        fprintf(out, "%s.%06ldZ %5s %s%s: %s\n", stamp, ts.tv_nsec / 1000, LEVEL_NAMES[level],
                g_log.program, ctx, msg);
    fflush(out);
    pthread_mutex_unlock(&g_log.lock);
}

void log_err(const Err *e, const char *what)
{
    if (e == NULL)
        return;
    int status = err_http_status(e->code);
    LogLevel level = status >= 500 ? LOG_ERROR : LOG_INFO;
    const char *file = e->file ? e->file : "?";
    log_write(level, file, e->line, "%s: %s [%s in %s]", what ? what : "error", e->msg,
              err_code_name(e->code), e->func ? e->func : "?");
}

void log_ctx_set_request(const char *request_id)
{
    str_copy(t_request, sizeof(t_request), request_id ? request_id : "");
}

void log_ctx_set_tenant(const char *tenant_or_tsid)
{
    str_copy(t_tenant, sizeof(t_tenant), tenant_or_tsid ? tenant_or_tsid : "");
}

void log_ctx_clear(void)
{
    t_request[0] = '\0';
    t_tenant[0] = '\0';
}
