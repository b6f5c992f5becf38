/*
 * err.h: the error struct every fallible function fills.
 *
 * A fallible function returns bool (true = success), is marked MUST_CHECK, and on failure fills an
 * Err with a code (mapped to an HTTP status by err_http_status), a message, and the file, line and
 * function where the error was raised. Errors are logged once, at the request or task boundary,
 * not at every level they pass through.
 */
#ifndef SHARED_ERR_H
#define SHARED_ERR_H

#include <stdbool.h>
#include <stddef.h>

#define MUST_CHECK             __attribute__((warn_unused_result))
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))

typedef enum ErrCode {
    ERR_NONE = 0,
    ERR_BAD_REQUEST,         /* 400 malformed input, unknown field, invalid id */
    ERR_UNAUTHORIZED,        /* 401 missing or malformed credentials */
    ERR_FORBIDDEN,           /* 403 valid token, wrong scope or tenant */
    ERR_NOT_FOUND,           /* 404 */
    ERR_METHOD_NOT_ALLOWED,  /* 405 route exists, method does not */
    ERR_NOT_ACCEPTABLE,      /* 406 e.g. ancestor LSN below what can be served */
    ERR_TIMEOUT,             /* 408 */
    ERR_CONFLICT,            /* 409 exists with other parameters, operation in progress */
    ERR_PRECONDITION_FAILED, /* 412 */
    ERR_PAYLOAD_TOO_LARGE,   /* 413 request body over the limit */
    ERR_LOCKED,              /* 423 stored but not applied yet (control plane) */
    ERR_TOO_MANY_REQUESTS,   /* 429 */
    ERR_INTERNAL,            /* 500 */
    ERR_UNAVAILABLE,         /* 503 retry later: not ready, shutting down, transient */
    ERR_CODE_COUNT
} ErrCode;

#define ERR_MSG_SIZE 512

typedef struct Err {
    ErrCode code;
    char msg[ERR_MSG_SIZE];
    const char *file; /* static strings from __FILE__ / __func__ */
    int line;
    const char *func;
} Err;

/* err_set: fill *e (which may be NULL) with code and a printf-style message, recording where. */
#define err_set(e, code, ...) err_set_at((e), (code), __FILE__, __LINE__, __func__, __VA_ARGS__)

void err_set_at(Err *e, ErrCode code, const char *file, int line, const char *func, const char *fmt,
                ...) PRINTF_LIKE(6, 7);

/* err_prefix: prepend context ("loading config: ") to an already set message, keeping code/site. */
void err_prefix(Err *e, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* err_clear: reset to ERR_NONE with an empty message. */
void err_clear(Err *e);

/* err_is_set: true when e holds an error. */
bool err_is_set(const Err *e);

/* err_http_status: the HTTP status for a code (wire.md table); ERR_NONE maps to 200. */
int err_http_status(ErrCode code);

/* err_code_from_http_status: the code for an HTTP status >= 400 (unknown 4xx -> BAD_REQUEST,
 * unknown 5xx -> INTERNAL). */
ErrCode err_code_from_http_status(int status);

/* err_code_name: a stable short name ("bad_request"), for logs and metrics labels. */
const char *err_code_name(ErrCode code);

/* err_to_json_body: render {"msg": "..."} into a heap string the caller frees with free(). */
char *err_to_json_body(const Err *e);

#endif
