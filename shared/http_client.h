/*
 * http_client.h: outgoing HTTP on the event loop (curl multi driven by libevent through
 * CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION; nothing blocks the loop).
 *
 * A call is started with everything copied (the caller's buffers may go away), runs with a
 * per-attempt timeout, and is retried with capped exponential backoff and full jitter on
 * transport errors, timeouts and 503 while attempts and the overall deadline allow. The done
 * callback runs exactly once on the loop thread, never from inside http_client_start, unless the
 * call was cancelled first.
 */
#ifndef SHARED_HTTP_CLIENT_H
#define SHARED_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"

struct event_base;
struct MetricsRegistry;

typedef struct HttpClient HttpClient;
typedef struct HttpCall HttpCall;

typedef struct HttpRetryPolicy {
    int max_attempts; /* 0 or 1: a single attempt */
    long base_ms;     /* first backoff; 0 = 100 */
    long max_ms;      /* backoff cap; 0 = 10000 */
    long deadline_ms; /* total time budget over all attempts; 0 = none */
} HttpRetryPolicy;

typedef struct HttpClientRequest {
    const char *method; /* "GET", "PUT", ... */
    const char *url;
    const char *body; /* NULL = no body */
    size_t body_len;
    const char *content_type; /* NULL = "application/json" when there is a body */
    const char *bearer_token; /* NULL = no Authorization header */
    long timeout_ms;          /* per attempt; 0 = 30000 */
    HttpRetryPolicy retry;
} HttpClientRequest;

typedef struct HttpClientResponse {
    const char *method; /* of the request, for messages; valid only during the callback */
    const char *url;
    int status;       /* HTTP status of the last attempt; 0 = transport error or timeout */
    const char *body; /* NUL-terminated; valid only during the callback */
    size_t body_len;
    int attempts;
    Err err; /* set when status == 0: ERR_UNAVAILABLE (transport) or ERR_TIMEOUT */
} HttpClientResponse;

typedef void (*HttpClientDone)(const HttpClientResponse *resp, void *arg);

/* HttpClientOptions: the connection pool (0 = defaults) and the connections-opened metric. */
typedef struct HttpClientOptions {
    long max_host_connections;   /* open connections per host; 0 = 16. More calls wait in curl. */
    long max_cached_connections; /* idle connections kept over all hosts; 0 = 64 hosts' worth */
    struct MetricsRegistry *metrics; /* NULL = no metric */
    const char *metric_prefix;       /* "<prefix>_http_client_connections_opened_total" */
} HttpClientOptions;

/* http_client_new: the defaults, no metric. */
bool http_client_new(struct event_base *base, HttpClient **out, Err *err) MUST_CHECK;
/* http_client_new_with: opts may be NULL (the defaults); opts is not kept. */
bool http_client_new_with(struct event_base *base, const HttpClientOptions *opts, HttpClient **out,
                          Err *err) MUST_CHECK;
/* http_client_free: cancel every call still running (their callbacks are not invoked). */
void http_client_free(HttpClient *client);

/* http_client_start: never NULL. The returned handle is valid until the callback has run or the
 * call is cancelled. */
HttpCall *http_client_start(HttpClient *client, const HttpClientRequest *req, HttpClientDone done,
                            void *arg);
/* http_client_start_json: the same with a JSON body (borrowed; serialised now) or NULL. */
HttpCall *http_client_start_json(HttpClient *client, const char *method, const char *url,
                                 const json_t *body, const char *bearer_token, long timeout_ms,
                                 HttpRetryPolicy retry, HttpClientDone done, void *arg);
void http_call_cancel(HttpCall *call);
size_t http_client_inflight(const HttpClient *client);
/* http_client_connections_opened: TCP connections opened so far (a reused one is not counted). */
uint64_t http_client_connections_opened(const HttpClient *client);

/* http_response_json: parse a response body as JSON; the caller owns *out. */
bool http_response_json(const HttpClientResponse *resp, json_t **out, Err *err) MUST_CHECK;

/* http_response_err: turn a non-2xx response into an Err carrying the peer's {"msg"} (or body
 * text) and the code for its status; transport errors keep resp->err. */
void http_response_err(const HttpClientResponse *resp, Err *err);

/* http_curl_global_init: curl_global_init, once per process (thread-safe); every user of libcurl
 * (this client, the S3 remote storage backend) calls it before its first handle. */
bool http_curl_global_init(Err *err) MUST_CHECK;

/* backoff_delay_ms: the capped exponential backoff with full jitter before attempt n (n >= 1 is
 * the first retry). Exposed for the reconciler and upcall loops, which retry on their own. */
long backoff_delay_ms(int attempt, long base_ms, long max_ms);

#endif
