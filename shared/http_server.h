/*
 * http_server.h: the HTTP server both daemons serve their APIs with (libevent evhttp).
 *
 * A route is a row {method, pattern, required scope, handler}. Patterns are literal segments and
 * {name} parameters ("/v1/tenant/{tenant_shard_id}/timeline/{timeline_id}"); a parameter matches
 * exactly one non-empty segment. Unknown path -> 404, known path with another method -> 405, both
 * with a {"msg"} body. Before the handler runs the server checks auth (when configured: bearer
 * token verified, scope checked with the route tenant taken from a {tenant_id} or
 * {tenant_shard_id} parameter), the body size limit (413), and sets the log context request id.
 *
 * The handler parses and validates, starts the work, and exactly one reply is sent: either before
 * the handler returns or later from a completion (a deferred reply). After the reply the
 * HttpRequest is freed and must not be touched. If the client disconnects before a deferred reply,
 * the request stays valid (http_request_is_gone() turns true) and the reply call just frees it.
 * Every reply is logged with method, path, status and latency, and counted in the metrics
 * (http_requests_total{route,method,status}, http_request_duration_seconds{route,method}).
 *
 * Hostile clients (see http_framing.h): the raw request stream of each connection is scanned
 * before evhttp parses it, so framing errors get a JSON {"msg"} reply with the right status (400,
 * 413 as soon as a declared length is over the body limit, 417, 431 for a head over 64 KiB, 501,
 * 505) and Connection: close; a request head must arrive within header_timeout_ms (else 408).
 * Connections over max_connections get 503 and are closed (counted in
 * http_connections_refused_total; http_open_connections is the gauge,
 * http_connections_accepted_total counts every connection accepted). When accept() fails (out of
 * file descriptors: EMFILE/ENFILE) the listener pauses for 250 ms instead of spinning, and the
 * error is logged at most once per 10 s (with the count of the ones not logged).
 *
 * Details: a {tenant_id} / {tenant_shard_id} value that does not parse does not stop auth, which
 * then runs as if the route named no tenant (a tenant token is refused) and leaves the 400 to the
 * handler. Bodies over max_body_bytes get a JSON 413. A sane client X-Request-Id is kept, otherwise
 * a random one is made; it is echoed on every reply. After http_server_stop_accepting, requests on
 * kept-alive connections get 503 with Connection: close. Replies are made on the event-loop thread
 * only; requests still held by the app when http_server_free runs have been answered and freed by
 * it.
 */
#ifndef SHARED_HTTP_SERVER_H
#define SHARED_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/auth.h"
#include "shared/err.h"
#include "shared/str.h"

struct event_base;
struct MetricsRegistry;

typedef enum HttpMethod {
    HTTP_GET,
    HTTP_PUT,
    HTTP_POST,
    HTTP_DELETE,
    HTTP_PATCH,
    HTTP_METHOD_COUNT
} HttpMethod;

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;

/* A handler: `app` is HttpServerConfig.app. */
typedef void (*HttpHandler)(HttpRequest *req, void *app);

typedef struct HttpRoute {
    HttpMethod method;
    const char *pattern;
    AuthScope scope; /* AUTH_SCOPE_NONE: no token needed */
    HttpHandler handler;
} HttpRoute;

#define HTTP_DEFAULT_MAX_BODY          (16u * 1024 * 1024)
#define HTTP_DEFAULT_MAX_CONNECTIONS   1000
#define HTTP_DEFAULT_HEADER_TIMEOUT_MS 10000
#define HTTP_MAX_CONNECTIONS_LIMIT     1000000

typedef struct HttpServerConfig {
    HostPort listen;         /* port 0 = any free port; see http_server_port() */
    const HttpRoute *routes; /* borrowed; must outlive the server */
    size_t n_routes;
    void *app;             /* passed to every handler */
    size_t max_body_bytes; /* 0 = HTTP_DEFAULT_MAX_BODY */
    const Auth *auth;      /* NULL = auth off: every route open */
    AuthPolicy auth_policy;
    struct MetricsRegistry *metrics; /* NULL = no metrics */
    const char *name;                /* for logs: "storcon api" */
    size_t max_connections; /* open connections at once; 0 = HTTP_DEFAULT_MAX_CONNECTIONS */
    long header_timeout_ms; /* whole request head within; 0 = HTTP_DEFAULT_HEADER_TIMEOUT_MS */
} HttpServerConfig;

/* http_server_start: bind and listen. Port in use etc. -> false with a clear message. */
bool http_server_start(struct event_base *base, const HttpServerConfig *cfg, HttpServer **out,
                       Err *err) MUST_CHECK;
uint16_t http_server_port(const HttpServer *srv);
/* http_server_stop_accepting: close the listening socket; in-flight requests continue. */
void http_server_stop_accepting(HttpServer *srv);
/* http_server_inflight: requests received but not yet replied to. */
size_t http_server_inflight(const HttpServer *srv);
/* http_server_free: free the server; requests still in flight are answered 503 first. */
void http_server_free(HttpServer *srv);

const char *http_method_name(HttpMethod m);

/* Request accessors. Strings are owned by the request and valid until the reply. */
HttpMethod http_request_method(const HttpRequest *req);
const char *http_request_path(const HttpRequest *req); /* decoded path, no query */
const char *http_request_param(const HttpRequest *req, const char *name); /* NULL if absent */
const char *http_request_query(const HttpRequest *req, const char *name); /* NULL if absent */
/* http_request_query_string: the whole query as received (percent-encoded, without the '?'), ""
 * when there is none; for proxies that forward it unchanged. */
const char *http_request_query_string(const HttpRequest *req);
const char *http_request_header(const HttpRequest *req, const char *name);
const char *http_request_body(const HttpRequest *req, size_t *len); /* NUL-terminated */
const char *http_request_id(const HttpRequest *req);
const AuthClaims *http_request_claims(const HttpRequest *req); /* NULL when auth is off */
bool http_request_is_gone(const HttpRequest *req);
/* http_request_json: parse the body as JSON (any type); empty or malformed -> ERR_BAD_REQUEST
 * with the parser's message. The caller owns *out (json_decref). */
bool http_request_json(const HttpRequest *req, json_t **out, Err *err) MUST_CHECK;
/* Per-request user data for deferred work, e.g. a pointer to the job it waits for. */
void http_request_set_data(HttpRequest *req, void *data);
void *http_request_get_data(const HttpRequest *req);

/* Replies: exactly one per request; each frees the request. */
/* http_reply_json: steals body. NULL is a reply without content, which is JSON null (as Neon
 * answers). */
void http_reply_json(HttpRequest *req, int status, json_t *body);
void http_reply_raw(HttpRequest *req, int status, const char *content_type, const void *body,
                    size_t len);
/* http_reply_error: logs the error once (with its raise site) and replies {"msg"} with its status.
 */
void http_reply_error(HttpRequest *req, const Err *err);

#endif
