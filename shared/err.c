/* err.c: error struct, HTTP status mapping and the {"msg"} body. */
#include "shared/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "shared/str.h"

static const struct {
    int status;
    const char *name;
} ERR_TABLE[ERR_CODE_COUNT] = {
    [ERR_NONE] = {200, "none"},
    [ERR_BAD_REQUEST] = {400, "bad_request"},
    [ERR_UNAUTHORIZED] = {401, "unauthorized"},
    [ERR_FORBIDDEN] = {403, "forbidden"},
    [ERR_NOT_FOUND] = {404, "not_found"},
    [ERR_METHOD_NOT_ALLOWED] = {405, "method_not_allowed"},
    [ERR_NOT_ACCEPTABLE] = {406, "not_acceptable"},
    [ERR_TIMEOUT] = {408, "timeout"},
    [ERR_CONFLICT] = {409, "conflict"},
    [ERR_PRECONDITION_FAILED] = {412, "precondition_failed"},
    [ERR_PAYLOAD_TOO_LARGE] = {413, "payload_too_large"},
    [ERR_LOCKED] = {423, "locked"},
    [ERR_TOO_MANY_REQUESTS] = {429, "too_many_requests"},
    [ERR_INTERNAL] = {500, "internal"},
    [ERR_UNAVAILABLE] = {503, "unavailable"},
};

void err_set_at(Err *e, ErrCode code, const char *file, int line, const char *func, const char *fmt,
                ...)
{
    if (e == NULL)
        return;
    e->code = code;
    e->file = file;
    e->line = line;
    e->func = func;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap); /* truncation of a message is acceptable */
    va_end(ap);
}

void err_prefix(Err *e, const char *fmt, ...)
{
    if (e == NULL)
        return;
    char prefix[ERR_MSG_SIZE];
    char joined[ERR_MSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    str_printf(joined, sizeof(joined), "%s%s", prefix, e->msg); /* truncation acceptable */
    memcpy(e->msg, joined, sizeof(e->msg));
}

void err_clear(Err *e)
{
    if (e == NULL)
        return;
    memset(e, 0, sizeof(*e));
}

bool err_is_set(const Err *e)
{
    return e != NULL && e->code != ERR_NONE;
}

int err_http_status(ErrCode code)
{
    if ((int)code < 0 || code >= ERR_CODE_COUNT)
        return 500;
    return ERR_TABLE[code].status;
}

ErrCode err_code_from_http_status(int status)
{
    for (int c = ERR_BAD_REQUEST; c < ERR_CODE_COUNT; c++) {
        if (ERR_TABLE[c].status == status)
            return (ErrCode)c;
    }
    if (status >= 500)
        return ERR_INTERNAL;
    if (status >= 400)
        return ERR_BAD_REQUEST;
    return ERR_NONE;
}

const char *err_code_name(ErrCode code)
{
    if ((int)code < 0 || code >= ERR_CODE_COUNT)
        return "unknown";
    return ERR_TABLE[code].name;
}

char *err_to_json_body(const Err *e)
{
    const char *msg = (e != NULL && e->msg[0] != '\0') ? e->msg : "error";
    json_t *o = json_pack("{s:s}", "msg", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (s == NULL) /* a message that is not valid UTF-8 cannot be encoded */
        s = strdup("{\"msg\":\"error (message not encodable)\"}");
    return s;
}
