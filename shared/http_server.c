/*
 * http_server.c: the route-table HTTP server on libevent's evhttp (contract in http_server.h).
 *
 * Life of a request (all on the event-loop thread):
 *   1. evhttp has read the whole request and calls on_request(). We pause reading on the
 *      connection, arm a watcher that notices the client going away, and take copies of what the
 *      handler needs (decoded path, parameters, query, body), so those stay valid even if
 *      libevent's objects go away first.
 *   2. Pre-handler checks, in this order: shutting down (503), route (404 / 405), path and query
 *      decoding (400), auth (401 / 403), body size (413). Then the handler runs with the log
 *      context (request id, tenant) set.
 *   3. Exactly one reply (request_finish) sends the response, logs one line and counts it. A reply
 *      made during dispatch frees the request when dispatch ends; a deferred reply puts it on a
 *      graveyard emptied on a later loop iteration (a LoopDeferItem, shared/defer.h), so a buggy
 * second reply in the same callback is still detected (assert in debug builds, log_error in
 * release) instead of touching freed memory.
 *
 * Client disconnect before a deferred reply: the watcher (EV_READ|EV_CLOSED on the socket, with a
 * MSG_PEEK to tell a close from pipelined bytes) marks the request gone; libevent's objects are
 * kept until the reply call, which then frees the connection instead of writing to it. The
 * connection close callback is the safety net if libevent drops the connection itself.
 *
 * Body and head limits: the framing scanner (see "connections") answers a declared or chunked
 * body over the limit and a head over 64 KiB with JSON before evhttp reads them; evhttp's own
 * limits are set above ours (a body of twice the limit plus 64 KiB, a head of 128 KiB) as a
 * backstop, and the size check in on_request stays as a last guard.
 *
 * Choices: when a {tenant_id} / {tenant_shard_id} parameter does not parse, auth runs as if the
 * route named no tenant (a tenant-scoped token is then refused, any other token is checked
 * normally) and the handler reports the bad id as 400. A client-supplied X-Request-Id (1-36
 * characters of [A-Za-z0-9_.-]) is kept, so ids follow a request across daemons; otherwise the id
 * is 12 random hex digits. After http_server_stop_accepting, requests arriving on kept-alive
 * connections get 503 with Connection: close, so a graceful stop drains.
 */
#include "shared/http_server.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <pthread.h>

#include "shared/defer.h"
#include "shared/hash.h"
#include "shared/http_framing.h"
#include "shared/id.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"

#define HTTP_MAX_SEGMENTS      16
#define HTTP_MAX_PARAMS        8
#define HTTP_TIMEOUT_SECS      60
#define HTTP_REQUEST_ID_SIZE   37
#define HTTP_RANDOM_ID_HEX     12
#define HTTP_LOG_PATH_MAX      200
#define HTTP_ACCEPT_PAUSE_MS   250  /* accept() failed (no fds): retry after this */
#define HTTP_LINGER_MS         2000 /* after a rejection, discard input this long before closing */
#define HTTP_LOG_INTERVAL_SECS 10   /* rate limit of the connection-level warnings */

typedef struct HttpConn HttpConn;

/* LogLimiter: at most one line per HTTP_LOG_INTERVAL_SECS; the others are counted. */
typedef struct LogLimiter {
    time_t last;
    unsigned suppressed;
} LogLimiter;

typedef struct CompiledRoute {
    const HttpRoute *route;
    size_t n_segs;
    char *seg[HTTP_MAX_SEGMENTS]; /* literal text, or the parameter name */
    bool is_param[HTTP_MAX_SEGMENTS];
    size_t n_params;
    size_t param_seg[HTTP_MAX_PARAMS]; /* which segment holds parameter k */
    uint32_t specificity;              /* bit 31-i set when segment i is literal */
    char *label;                       /* the pattern, escaped for a metrics label */
    bool health;                       /* logged at DEBUG when successful */
} CompiledRoute;

struct HttpServer {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    HttpServerConfig cfg;
    char name[64];
    CompiledRoute *routes;
    size_t max_body;
    uint16_t port;
    size_t inflight;
    bool stopping;
    bool freeing;
    HttpRequest *pending;   /* received, not yet replied */
    HttpRequest *graveyard; /* replied outside dispatch; freed by `reap` */
    LoopDefer *defer;
    LoopDeferItem reap; /* empties the graveyard on a later iteration */
    uint64_t rng;
    /* connections (see "connections" below) */
    HttpConn *conns;       /* every connection evhttp has made a bufferevent for */
    HttpConn **conn_by_fd; /* set-up connections by socket */
    size_t conn_by_fd_cap;
    size_t n_conns;
    size_t max_conns;
    long header_timeout_ms;
    struct event *accept_timer; /* resumes accepting after an accept() failure */
    LogLimiter accept_log, refuse_log, reject_log;
    struct MetricGauge *m_open;
    struct MetricCounter *m_refused, *m_accept_errors, *m_accepted;
    HttpServer *next_registered;
};

struct HttpRequest {
    HttpServer *srv;
    struct evhttp_request *evreq;    /* NULL once libevent freed it */
    struct evhttp_connection *evcon; /* NULL once libevent freed it */
    struct event *watch;             /* disconnect watcher while pending */
    HttpConn *conn;                  /* NULL once the connection is gone */
    const CompiledRoute *route;      /* NULL: no route matched */
    HttpMethod method;
    bool method_known;
    const char *method_name;
    char *raw_path; /* as received (percent-encoded), for logs */
    char *path;     /* decoded */
    char *params[HTTP_MAX_PARAMS];
    struct evkeyvalq query;
    char *raw_query; /* as received (percent-encoded, no '?'); NULL = none */
    char *body;
    size_t body_len;
    char id[HTTP_REQUEST_ID_SIZE];
    AuthClaims claims;
    bool has_claims;
    uint16_t allow; /* methods allowed on the path, for 405 */
    void *data;
    struct timespec start;
    bool gone;
    bool replied;
    bool in_dispatch;
    HttpRequest *prev, *next; /* pending list, then graveyard (next only) */
};

/* HttpConn: one client connection, from evhttp's bufferevent callback to evhttp's close callback.
 */
struct HttpConn {
    HttpServer *srv;
    struct bufferevent *bev;         /* we hold a reference until conn_free */
    struct evhttp_connection *evcon; /* NULL until set up */
    evutil_socket_t fd;              /* -1 until set up */
    /* one-shot, right after evhttp has set the socket; event_active and not a LoopDefer, which
     * runs on a later iteration: setup must come before the connection's first read */
    struct event *setup_ev;
    struct event *timer; /* header deadline; after a rejection, the linger deadline */
    HttpRequest *req;    /* the pending request, if any */
    uint64_t answered;   /* requests replied to */
    uint64_t timed_head; /* the request whose head the timer runs for */
    uint64_t received;   /* bytes added to the input since the connection opened */
    HttpFraming framing;
    bool in_input_cb;
    bool rejected;  /* framing error or refused: closes after what is in flight */
    bool lingering; /* rejection sent: input is discarded until the client closes or time is up */
    HttpConn *prev, *next;
};

static const char *const METHOD_NAMES[HTTP_METHOD_COUNT] = {
    [HTTP_GET] = "GET",       [HTTP_PUT] = "PUT",     [HTTP_POST] = "POST",
    [HTTP_DELETE] = "DELETE", [HTTP_PATCH] = "PATCH",
};

static const char *const HEALTH_PATTERNS[] = {"/status", "/ready", "/live", "/metrics",
                                              "/v1/status"};

const char *http_method_name(HttpMethod m)
{
    if ((int)m < 0 || m >= HTTP_METHOD_COUNT)
        return "UNKNOWN";
    return METHOD_NAMES[m];
}

/* method_from_evhttp: our method for a libevent command; false for HEAD, OPTIONS and the rest,
 * which no route serves (they get 405 or 404). */
static bool method_from_evhttp(enum evhttp_cmd_type cmd, HttpMethod *out, const char **name)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        *out = HTTP_GET;
        break;
    case EVHTTP_REQ_PUT:
        *out = HTTP_PUT;
        break;
    case EVHTTP_REQ_POST:
        *out = HTTP_POST;
        break;
    case EVHTTP_REQ_DELETE:
        *out = HTTP_DELETE;
        break;
    case EVHTTP_REQ_PATCH:
        *out = HTTP_PATCH;
        break;
    case EVHTTP_REQ_HEAD:
        *name = "HEAD";
        return false;
    case EVHTTP_REQ_OPTIONS:
        *name = "OPTIONS";
        return false;
    case EVHTTP_REQ_TRACE:
        *name = "TRACE";
        return false;
    case EVHTTP_REQ_CONNECT:
        *name = "CONNECT";
        return false;
    default:
        *name = "UNKNOWN";
        return false;
    }
    *name = METHOD_NAMES[*out];
    return true;
}

/* ---- route table ---- */

static bool param_name_valid(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static void route_finish(CompiledRoute *r)
{
    for (size_t i = 0; i < r->n_segs; i++)
        free(r->seg[i]);
    free(r->label);
}

/* route_compile: split a pattern into literal and {param} segments, rejecting what could never
 * match or would be ambiguous (empty segments, braces inside literals, repeated parameter names),
 * so a typo in a route table fails at startup rather than as a mysterious 404. */
static bool route_compile(const HttpRoute *route, CompiledRoute *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    out->route = route;
    const char *p = route->pattern;
    if (p == NULL || p[0] != '/' || route->handler == NULL || (int)route->method < 0 ||
        route->method >= HTTP_METHOD_COUNT) {
        err_set(err, ERR_INTERNAL, "route '%s': pattern must start with '/' and have a handler",
                p ? p : "(null)");
        return false;
    }
    if (strcmp(p, "/") != 0) {
        p++;
        while (true) {
            const char *slash = strchr(p, '/');
            size_t len = slash ? (size_t)(slash - p) : strlen(p);
            if (len == 0 || out->n_segs >= HTTP_MAX_SEGMENTS) {
                err_set(err, ERR_INTERNAL, "route '%s': empty segment or more than %d segments",
                        route->pattern, HTTP_MAX_SEGMENTS);
                goto fail;
            }
            size_t i = out->n_segs;
            if (p[0] == '{') {
                if (len < 3 || p[len - 1] != '}' || !param_name_valid(p + 1, len - 2) ||
                    out->n_params >= HTTP_MAX_PARAMS) {
                    err_set(err, ERR_INTERNAL, "route '%s': bad parameter segment '%.*s'",
                            route->pattern, (int)len, p);
                    goto fail;
                }
                out->seg[i] = xstrndup(p + 1, len - 2);
                out->is_param[i] = true;
                for (size_t k = 0; k < out->n_params; k++) {
                    if (strcmp(out->seg[out->param_seg[k]], out->seg[i]) == 0) {
                        out->n_segs++;
                        err_set(err, ERR_INTERNAL, "route '%s': parameter {%s} appears twice",
                                route->pattern, out->seg[i]);
                        goto fail;
                    }
                }
                out->param_seg[out->n_params++] = i;
            } else {
                if (memchr(p, '{', len) || memchr(p, '}', len)) {
                    err_set(err, ERR_INTERNAL, "route '%s': brace inside literal segment",
                            route->pattern);
                    goto fail;
                }
                out->seg[i] = xstrndup(p, len);
                out->specificity |= 1u << (31 - i);
            }
            out->n_segs++;
            if (slash == NULL)
                break;
            p = slash + 1;
        }
    }
    char label[512];
    metrics_label_escape(route->pattern, label, sizeof(label));
    out->label = xstrdup(label);
    for (size_t i = 0; i < sizeof(HEALTH_PATTERNS) / sizeof(HEALTH_PATTERNS[0]); i++) {
        if (strcmp(route->pattern, HEALTH_PATTERNS[i]) == 0)
            out->health = true;
    }
    return true;
fail:
    route_finish(out);
    memset(out, 0, sizeof(*out));
    return false;
}

/* routes_same_shape: two patterns that match exactly the same paths. */
static bool routes_same_shape(const CompiledRoute *a, const CompiledRoute *b)
{
    if (a->n_segs != b->n_segs)
        return false;
    for (size_t i = 0; i < a->n_segs; i++) {
        if (a->is_param[i] != b->is_param[i])
            return false;
        if (!a->is_param[i] && strcmp(a->seg[i], b->seg[i]) != 0)
            return false;
    }
    return true;
}

/* ---- request ids ---- */

static uint64_t splitmix64(uint64_t *state)
{
    return hash_mix64(*state += HASH_GOLDEN64);
}

static bool request_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= HTTP_REQUEST_ID_SIZE)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* ---- request lifecycle ---- */

static double elapsed_seconds(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void request_destroy(HttpRequest *req)
{
    free(req->raw_path);
    free(req->path);
    for (size_t i = 0; i < HTTP_MAX_PARAMS; i++)
        free(req->params[i]);
    evhttp_clear_headers(&req->query);
    free(req->raw_query);
    free(req->body);
    free(req);
}

static void pending_unlink(HttpServer *srv, HttpRequest *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else
        srv->pending = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

static void on_reap(void *arg)
{
    HttpServer *srv = arg;
    HttpRequest *req = srv->graveyard;
    srv->graveyard = NULL;
    while (req != NULL) {
        HttpRequest *next = req->next;
        request_destroy(req);
        req = next;
    }
}

/* request_mark_gone: the client is no longer there; stop watching its socket. */
static void request_mark_gone(HttpRequest *req, const char *why)
{
    if (req->watch != NULL) {
        event_free(req->watch);
        req->watch = NULL;
    }
    if (!req->gone) {
        req->gone = true;
        log_info("%s %.*s req=%s: client went away before the reply (%s)", req->method_name,
                 HTTP_LOG_PATH_MAX, req->raw_path ? req->raw_path : "?", req->id, why);
    }
}

/* on_watch: the socket of a pending request became readable or the peer hung up. A peek tells
 * an orderly close or reset (gone) from bytes of a pipelined next request, which stay in the
 * socket for evhttp; then only a hang-up (EV_CLOSED) can still tell us the client left. */
static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    HttpRequest *req = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) {
        request_mark_gone(req, "connection closed");
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        request_mark_gone(req, strerror(errno));
        return;
    }
    if (what & EV_CLOSED) {
        request_mark_gone(req, "peer hung up");
        return;
    }
    event_del(req->watch);
    bool early_close = (event_base_get_features(req->srv->base) & EV_FEATURE_EARLY_CLOSE) != 0;
    if (early_close && event_assign(req->watch, req->srv->base, fd, EV_CLOSED, on_watch, req) == 0)
        event_add(req->watch, NULL);
}

/* request_conn_closed: libevent is freeing the connection of a pending request (a safety net;
 * with reading paused it normally does not). If libevent detached the request it is ours to free,
 * otherwise libevent frees it with the connection and we must forget it. */
static void request_conn_closed(HttpRequest *req)
{
    req->conn = NULL;
    request_mark_gone(req, "connection freed");
    if (req->evreq != NULL && evhttp_request_get_connection(req->evreq) != NULL)
        req->evreq = NULL;
    req->evcon = NULL;
}

static void count_metrics(HttpRequest *req, int status, double secs)
{
    MetricsRegistry *reg = req->srv->cfg.metrics;
    if (reg == NULL)
        return;
    const char *route = req->route ? req->route->label : "unknown";
    char labels[700];
    str_printf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%d\"", route,
               req->method_name, status); /* bounded labels; truncation cannot happen */
    MetricCounter *c =
        metrics_counter(reg, "http_requests_total", "HTTP requests answered", labels);
    metric_counter_add(c, 1);
    str_printf(labels, sizeof(labels), "route=\"%s\",method=\"%s\"", route, req->method_name);
    MetricHistogram *h =
        metrics_histogram(reg, "http_request_duration_seconds",
                          "Time from request received to reply sent", labels, NULL, 0);
    metric_histogram_observe(h, secs);
}

/* request_finish: the single exit of every request: send (unless the client is gone), log,
 * count, and schedule the free. */
static void request_finish(HttpRequest *req, int status, const char *content_type, const void *body,
                           size_t len)
{
    if (req->replied) {
        log_error("second reply (status %d) to request %s %s req=%s; ignored", status,
                  req->method_name, req->raw_path ? req->raw_path : "?", req->id);
        assert(!"exactly one reply per HTTP request");
        return;
    }
    req->replied = true;
    HttpServer *srv = req->srv;
    double secs = elapsed_seconds(&req->start);
    if (req->watch != NULL) {
        event_free(req->watch);
        req->watch = NULL;
    }
    bool close_after = srv->stopping;
    if (req->conn != NULL) {
        req->conn->req = NULL;
        req->conn->answered++;
        close_after = close_after || req->conn->rejected;
        req->conn = NULL;
    }

    if (!req->gone && req->evreq != NULL) {
        struct evkeyvalq *out = evhttp_request_get_output_headers(req->evreq);
        evhttp_add_header(out, "Content-Type", content_type);
        evhttp_add_header(out, "X-Request-Id", req->id);
        if (status == 401)
            evhttp_add_header(out, "WWW-Authenticate", "Bearer");
        if (status == 405 && req->allow != 0) {
            char allow[64] = "";
            size_t n = 0;
            for (int m = 0; m < HTTP_METHOD_COUNT; m++) {
                if (req->allow & (1u << m))
                    n += (size_t)snprintf(allow + n, sizeof(allow) - n, "%s%s", n ? ", " : "",
                                          METHOD_NAMES[m]);
            }
            evhttp_add_header(out, "Allow", allow);
        }
        if (close_after)
            evhttp_add_header(out, "Connection", "close");
        struct evbuffer *buf = evbuffer_new();
        if (buf != NULL && len > 0)
            evbuffer_add(buf, body, len);
        struct evhttp_connection *evcon = req->evcon;
        evhttp_send_reply(req->evreq, status, NULL, buf);
        evbuffer_free(buf);
        if (srv->freeing && evcon != NULL) {
            /* the loop will not run again for this connection: push the bytes out now
             * (non-blocking socket; best effort) */
            struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
            if (bev != NULL)
                evbuffer_write(bufferevent_get_output(bev), bufferevent_getfd(bev));
        }
    } else if (req->evcon != NULL) {
        evhttp_connection_free(req->evcon); /* frees req->evreq with it */
    } else if (req->evreq != NULL) {
        evhttp_request_free(req->evreq); /* detached by libevent: ours */
    }
    req->evreq = NULL;
    req->evcon = NULL;

    pending_unlink(srv, req);
    srv->inflight--;

    bool quiet = req->route && req->route->health && status < 400;
    LogLevel level = quiet ? LOG_DEBUG : LOG_INFO;
    if (level >= log_get_level()) {
        /* during dispatch the log context already carries the request id */
        if (req->in_dispatch)
            log_write(level, __FILE__, __LINE__, "%s %.*s %d %.1f ms", req->method_name,
                      HTTP_LOG_PATH_MAX, req->raw_path ? req->raw_path : "?", status, secs * 1e3);
        else
            log_write(level, __FILE__, __LINE__, "%s %.*s %d %.1f ms req=%s%s", req->method_name,
                      HTTP_LOG_PATH_MAX, req->raw_path ? req->raw_path : "?", status, secs * 1e3,
                      req->id, req->gone ? " (client gone)" : "");
    }
    count_metrics(req, status, secs);

    if (!req->in_dispatch) {
        req->next = srv->graveyard;
        srv->graveyard = req;
        (void)loop_defer_item(srv->defer, &srv->reap);
    }
}

/* reply_simple_error: a reply from the server itself. Refusals during shutdown are expected, so
 * they are not logged as errors (the request line still records them). */
static void reply_simple_error(HttpRequest *req, ErrCode code, const char *msg)
{
    Err err;
    err_clear(&err);
    err_set(&err, code, "%s", msg);
    if (code != ERR_UNAVAILABLE) {
        http_reply_error(req, &err);
        return;
    }
    char *body = err_to_json_body(&err);
    request_finish(req, err_http_status(code), "application/json", body, body ? strlen(body) : 0);
    free(body);
}

/* route_lookup: match the decoded segments of the path against the table. Returns the
 * best route for the method (most literal segments earliest, then table order) or NULL, filling
 * req->allow with the methods that would match the path. */
static const CompiledRoute *route_lookup(HttpServer *srv, HttpRequest *req, char **segs,
                                         size_t n_segs)
{
    const CompiledRoute *best = NULL;
    for (size_t r = 0; r < srv->cfg.n_routes; r++) {
        const CompiledRoute *cr = &srv->routes[r];
        if (cr->n_segs != n_segs)
            continue;
        bool match = true;
        for (size_t i = 0; i < n_segs && match; i++) {
            if (!cr->is_param[i] && strcmp(cr->seg[i], segs[i]) != 0)
                match = false;
        }
        if (!match)
            continue;
        req->allow |= (uint16_t)(1u << cr->route->method);
        if (req->method_known && cr->route->method == req->method &&
            (best == NULL || cr->specificity > best->specificity))
            best = cr;
    }
    return best;
}

/* request_route: decode the path into segments and pick the route; replies 400/404/405 itself
 * and returns false when there is none. */
static bool request_route(HttpServer *srv, HttpRequest *req, const char *raw)
{
    char *segs[HTTP_MAX_SEGMENTS + 1] = {0};
    size_t n = 0;
    bool too_many = false, empty = false, bad = false;
    if (strcmp(raw, "/") != 0) {
        const char *p = raw + 1;
        while (true) {
            const char *slash = strchr(p, '/');
            size_t len = slash ? (size_t)(slash - p) : strlen(p);
            if (n >= HTTP_MAX_SEGMENTS) {
                too_many = true;
                break;
            }
            if (len == 0)
                empty = true;
            char *enc = xstrndup(p, len);
            size_t dec_len = 0;
            char *dec = evhttp_uridecode(enc, 0, &dec_len);
            free(enc);
            if (dec == NULL || strlen(dec) != dec_len)
                bad = true;
            segs[n++] = dec;
            if (slash == NULL)
                break;
            p = slash + 1;
        }
    }
    bool ok = false;
    if (bad) {
        reply_simple_error(req, ERR_BAD_REQUEST, "invalid percent-encoding in the request path");
    } else if (too_many || empty || (req->route = route_lookup(srv, req, segs, n)) == NULL) {
        if (!too_many && !empty && req->allow != 0) {
            Err err;
            err_clear(&err);
            err_set(&err, ERR_METHOD_NOT_ALLOWED, "method %s not allowed on %.200s",
                    req->method_name, req->raw_path);
            http_reply_error(req, &err);
        } else {
            Err err;
            err_clear(&err);
            err_set(&err, ERR_NOT_FOUND, "no route for %s %.200s", req->method_name, req->raw_path);
            http_reply_error(req, &err);
        }
    } else {
        for (size_t k = 0; k < req->route->n_params; k++) {
            size_t i = req->route->param_seg[k];
            req->params[k] = segs[i];
            segs[i] = NULL;
        }
        ok = true;
    }
    for (size_t i = 0; i < n; i++)
        free(segs[i]);
    return ok;
}

/* route_tenant: the tenant named by a {tenant_id} or {tenant_shard_id} parameter, formatted for
 * the log context into ctx; false when there is none or it does not parse. */
static bool route_tenant(const HttpRequest *req, TenantId *out, char ctx[TSID_STR_SIZE])
{
    Err err;
    const char *t = http_request_param(req, "tenant_id");
    if (t != NULL) {
        if (!tenant_id_parse(t, out, &err))
            return false;
        tenant_id_format(out, ctx);
        return true;
    }
    const char *ts = http_request_param(req, "tenant_shard_id");
    if (ts != NULL) {
        TenantShardId tsid;
        if (!tsid_parse(ts, &tsid, &err))
            return false;
        *out = tsid.tenant_id;
        tsid_format(&tsid, ctx);
        return true;
    }
    return false;
}

/* request_authorize: when auth is on and the route needs a token: bearer token, signature and
 * claims, then the policy's scope rule with the route's tenant. */
static bool request_authorize(HttpServer *srv, HttpRequest *req, const TenantId *tenant, Err *err)
{
    if (srv->cfg.auth == NULL || req->route->route->scope == AUTH_SCOPE_NONE)
        return true;
    const char *token = NULL;
    if (!auth_bearer_token(http_request_header(req, "Authorization"), &token, err))
        return false;
    if (!auth_verify(srv->cfg.auth, token, &req->claims, err))
        return false;
    req->has_claims = true;
    return auth_check(srv->cfg.auth_policy, req->route->route->scope, &req->claims, tenant, err);
}

/* ---- connections ----
 *
 * evhttp 2.1 has no hook per connection, no error-page hook and no accept-error handling, so:
 *   - evhttp_set_bevcb: we create each connection's socket bufferevent (HttpConn, counted), and
 *     one loop turn later (when evhttp has given it the socket and its callbacks, whose argument
 *     is the evhttp_connection) install the connection close callback, which ends the HttpConn.
 *   - an evbuffer callback on the input buffer sees every byte before evhttp parses it and feeds
 *     the framing scanner (http_framing.h). A rejection drops the unparsed input; with nothing in
 *     flight it is answered at once on the socket (JSON, Connection: close), the write side is
 *     shut, input is discarded for HTTP_LINGER_MS (so the client reads the reply instead of a
 *     reset) and the connection is freed. With a request in flight (pipelining), its reply carries
 *     Connection: close instead.
 *   - the listener's error callback pauses accepting (EMFILE/ENFILE would otherwise make the loop
 *     spin on a readable listening socket) and a timer resumes it.
 */

/* log_limited: whether to log now (true at most once per interval); *suppressed is the number of
 * lines dropped since the last one. */
static void conn_on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

static bool log_limited(LogLimiter *l, unsigned *suppressed)
{
    time_t now = time(NULL);
    if (l->last != 0 && now - l->last < HTTP_LOG_INTERVAL_SECS) {
        l->suppressed++;
        return false;
    }
    *suppressed = l->suppressed;
    l->suppressed = 0;
    l->last = now;
    return true;
}

static void conns_gauge(HttpServer *srv)
{
    if (srv->m_open != NULL)
        metric_gauge_set(srv->m_open, (double)srv->n_conns);
}

static void conn_free(HttpConn *c)
{
    HttpServer *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    conns_gauge(srv);
    if (c->fd >= 0 && (size_t)c->fd < srv->conn_by_fd_cap && srv->conn_by_fd[c->fd] == c)
        srv->conn_by_fd[c->fd] = NULL;
    if (c->req != NULL)
        request_conn_closed(c->req);
    event_free(c->setup_ev);
    event_free(c->timer);
    evbuffer_remove_cb(bufferevent_get_input(c->bev), conn_on_input, c);
    bufferevent_decref(c->bev);
    http_framing_finish(&c->framing);
    free(c);
}

/* conn_on_close: evhttp is freeing the connection. */
static void conn_on_close(struct evhttp_connection *evcon, void *arg)
{
    conn_free(arg);
}

/* buffer_keep: drop everything after the first keep bytes of buf. */
static void buffer_keep(struct evbuffer *buf, size_t keep)
{
    size_t len = evbuffer_get_length(buf);
    if (keep >= len)
        return;
    if (keep == 0) {
        evbuffer_drain(buf, len);
        return;
    }
    struct evbuffer *head = evbuffer_new();
    if (head == NULL) {
        evbuffer_drain(buf, len);
        return;
    }
    evbuffer_remove_buffer(buf, head, keep);
    evbuffer_drain(buf, evbuffer_get_length(buf));
    evbuffer_prepend_buffer(buf, head);
    evbuffer_free(head);
}

/* conn_reject: answer status {"msg"} and close, as the file comment of this section says. The
 * caller has dropped the unparsed input. */
static void conn_reject(HttpConn *c, int status, const char *msg)
{
    HttpServer *srv = c->srv;
    c->rejected = true;
    unsigned dropped = 0;
    if (log_limited(&srv->reject_log, &dropped))
        log_info("%s: %d on a connection: %s (%u similar not logged)", srv->name, status, msg,
                 dropped);
    if (srv->cfg.metrics != NULL) {
        char labels[64];
        str_printf(labels, sizeof(labels), "route=\"unknown\",method=\"-\",status=\"%d\"", status);
        metric_counter_add(metrics_counter(srv->cfg.metrics, "http_requests_total",
                                           "HTTP requests answered", labels),
                           1);
    }
    if (c->req != NULL || c->answered < c->framing.requests)
        return; /* requests in flight: the last reply closes the connection */
    Err err;
    err_clear(&err);
    err_set(&err, ERR_BAD_REQUEST, "%s", msg);
    char *body = err_to_json_body(&err);
    char *text = str_dup_printf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                                "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                status, http_framing_reason(status), body ? strlen(body) : 0,
                                body ? body : "");
    /* best effort: the socket's send buffer is empty (nothing in flight) and the reply small */
    ssize_t n = send(c->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
    free(text);
    free(body);
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    struct timeval tv = {HTTP_LINGER_MS / 1000, (HTTP_LINGER_MS % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* conn_on_input: bytes were added to the connection's input buffer and evhttp has not seen them
 * yet. */
static void conn_on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    HttpConn *c = arg;
    if (info->n_added == 0 || c->in_input_cb)
        return;
    c->in_input_cb = true;
    size_t len = evbuffer_get_length(buf);
    c->received += info->n_added;
    if (c->rejected) {
        /* lingering: discard; rejected with requests in flight: keep what evhttp has not read of
         * them (nothing arrives while reading is paused, so this is only ever new bytes) */
        buffer_keep(buf, len - info->n_added);
        c->in_input_cb = false;
        return;
    }
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(buf, &pos, len - info->n_added, EVBUFFER_PTR_SET);
    bool ok = true;
    while (ok) {
        struct evbuffer_iovec vec[8];
        int n = evbuffer_peek(buf, -1, &pos, vec, 8);
        if (n <= 0)
            break;
        int used = n < 8 ? n : 8;
        size_t scanned = 0;
        for (int i = 0; i < used && ok; i++) {
            ok = http_framing_feed(&c->framing, vec[i].iov_base, vec[i].iov_len);
            scanned += vec[i].iov_len;
        }
        if (n <= 8 || !ok)
            break;
        evbuffer_ptr_set(buf, &pos, scanned, EVBUFFER_PTR_ADD);
    }
    if (!ok) {
        /* keep the complete requests before the rejected one for evhttp; drop the rest */
        uint64_t front = c->received - (uint64_t)len; /* stream offset of buf[0] */
        uint64_t start = c->framing.request_start;
        size_t keep = start > front ? (size_t)(start - front) : 0;
        if (keep > len)
            keep = len;
        buffer_keep(buf, keep);
        evtimer_del(c->timer);
        conn_reject(c, c->framing.status, c->framing.msg);
    } else if (!http_framing_in_head(&c->framing)) {
        evtimer_del(c->timer);
    } else if (!evtimer_pending(c->timer, NULL) || c->timed_head != c->framing.requests) {
        /* a new head started: it has header_timeout_ms from its first byte */
        long ms = c->srv->header_timeout_ms;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(c->timer, &tv);
        c->timed_head = c->framing.requests;
    }
    c->in_input_cb = false;
}

/* conn_on_timer: a head did not arrive in time (408), or the linger after a rejection is over. */
static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
    HttpConn *c = arg;
    if (c->lingering || c->evcon == NULL) {
        if (c->evcon != NULL)
            evhttp_connection_free(c->evcon); /* calls conn_on_close */
        return;
    }
    if (!http_framing_in_head(&c->framing))
        return;
    char msg[96];
    str_printf(msg, sizeof(msg), "request head not received within %ld ms",
               c->srv->header_timeout_ms);
    buffer_keep(bufferevent_get_input(c->bev), 0);
    c->framing.state = HTTP_FRAME_ERROR;
    conn_reject(c, 408, msg);
}

static void conn_register(HttpServer *srv, HttpConn *c)
{
    size_t fd = (size_t)c->fd;
    if (fd >= srv->conn_by_fd_cap) {
        size_t cap = srv->conn_by_fd_cap ? srv->conn_by_fd_cap : 64;
        while (cap <= fd)
            cap *= 2;
        srv->conn_by_fd = xrealloc(srv->conn_by_fd, cap * sizeof(*srv->conn_by_fd));
        memset(srv->conn_by_fd + srv->conn_by_fd_cap, 0,
               (cap - srv->conn_by_fd_cap) * sizeof(*srv->conn_by_fd));
        srv->conn_by_fd_cap = cap;
    }
    srv->conn_by_fd[fd] = c;
}

/* conn_on_setup: evhttp has set the socket and its callbacks (argument: the connection). */
static void conn_on_setup(evutil_socket_t unused, short what, void *arg)
{
    HttpConn *c = arg;
    HttpServer *srv = c->srv;
    void *cbarg = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
    c->fd = bufferevent_getfd(c->bev);
    if (cbarg == NULL || c->fd < 0) { /* evhttp gave up on it already */
        c->fd = -1;
        conn_free(c);
        return;
    }
    c->evcon = cbarg;
    evhttp_connection_set_closecb(c->evcon, conn_on_close, c);
    conn_register(srv, c);
    if (srv->m_accepted != NULL)
        metric_counter_add(srv->m_accepted, 1);
    if (srv->n_conns > srv->max_conns) {
        if (srv->m_refused != NULL)
            metric_counter_add(srv->m_refused, 1);
        unsigned dropped = 0;
        if (log_limited(&srv->refuse_log, &dropped))
            log_warn("%s: %zu connections open, over the limit of %zu: refusing new ones with 503 "
                     "(%u similar not logged)",
                     srv->name, srv->n_conns - 1, srv->max_conns, dropped);
        char msg[96];
        str_printf(msg, sizeof(msg), "too many open connections (limit %zu)", srv->max_conns);
        c->framing.state = HTTP_FRAME_ERROR;
        conn_reject(c, 503, msg);
    }
}

/* on_new_bev: evhttp accepted a connection and asks for its bufferevent. */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
    HttpServer *srv = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        return NULL; /* evhttp makes its own; the connection goes uncounted */
    HttpConn *c = xcalloc(1, sizeof(*c));
    c->srv = srv;
    c->bev = bev;
    c->fd = -1;
    c->setup_ev = event_new(base, -1, 0, conn_on_setup, c);
    c->timer = evtimer_new(base, conn_on_timer, c);
    if (c->setup_ev == NULL || c->timer == NULL) {
        if (c->setup_ev)
            event_free(c->setup_ev);
        if (c->timer)
            event_free(c->timer);
        free(c);
        return bev;
    }
    bufferevent_incref(bev);
    http_framing_init(&c->framing, srv->max_body, HTTP_MAX_HEAD_BYTES);
    evbuffer_add_cb(bufferevent_get_input(bev), conn_on_input, c);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    conns_gauge(srv);
    event_active(c->setup_ev, EV_TIMEOUT, 0);
    return bev;
}

/* The listener's error callback gets evhttp's argument (the struct evhttp), so servers are found
 * by their evhttp in this registry. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static HttpServer *registry;

static void registry_add(HttpServer *srv)
{
    pthread_mutex_lock(&registry_lock);
    srv->next_registered = registry;
    registry = srv;
    pthread_mutex_unlock(&registry_lock);
}

static void registry_remove(HttpServer *srv)
{
    pthread_mutex_lock(&registry_lock);
    for (HttpServer **p = &registry; *p != NULL; p = &(*p)->next_registered) {
        if (*p == srv) {
            *p = srv->next_registered;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

static HttpServer *registry_find(const struct evhttp *http)
{
    pthread_mutex_lock(&registry_lock);
    HttpServer *srv = registry;
    while (srv != NULL && srv->http != http)
        srv = srv->next_registered;
    pthread_mutex_unlock(&registry_lock);
    return srv;
}

/* on_accept_error: accept() failed with a non-retriable error, typically EMFILE/ENFILE. The
 * listening socket stays readable, so pause it and retry after HTTP_ACCEPT_PAUSE_MS. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int e = errno;
    HttpServer *srv = registry_find(arg);
    evconnlistener_disable(lev);
    if (srv == NULL)
        return;
    if (srv->m_accept_errors != NULL)
        metric_counter_add(srv->m_accept_errors, 1);
    unsigned dropped = 0;
    if (log_limited(&srv->accept_log, &dropped))
        log_warn("%s: cannot accept connections: %s (%zu open); pausing accepts for %d ms (%u "
                 "similar not logged)",
                 srv->name, strerror(e), srv->n_conns, HTTP_ACCEPT_PAUSE_MS, dropped);
    struct timeval tv = {0, HTTP_ACCEPT_PAUSE_MS * 1000};
    evtimer_add(srv->accept_timer, &tv);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    HttpServer *srv = arg;
    if (srv->sock != NULL)
        evconnlistener_enable(evhttp_bound_socket_get_listener(srv->sock));
}

/* on_request: evhttp's callback for every complete request; see the file comment. */
static void on_request(struct evhttp_request *evreq, void *arg)
{
    HttpServer *srv = arg;
    HttpRequest *req = xcalloc(1, sizeof(*req));
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    req->srv = srv;
    req->evreq = evreq;
    req->evcon = evhttp_request_get_connection(evreq);
    req->in_dispatch = true;
    TAILQ_INIT(&req->query);
    req->method_known =
        method_from_evhttp(evhttp_request_get_command(evreq), &req->method, &req->method_name);

    struct evkeyvalq *in = evhttp_request_get_input_headers(evreq);
    const char *rid = evhttp_find_header(in, "X-Request-Id");
    if (rid != NULL && request_id_valid(rid)) {
        str_copy(req->id, sizeof(req->id), rid);
    } else {
        uint64_t r = splitmix64(&srv->rng);
        str_printf(req->id, sizeof(req->id), "%012llx",
                   (unsigned long long)(r & 0xffffffffffffULL));
    }

    req->next = srv->pending;
    if (srv->pending)
        srv->pending->prev = req;
    srv->pending = req;
    srv->inflight++;

    /* Pause reading until the reply (evhttp resumes after sending it) and watch for the client
     * going away in the meantime. */
    if (req->evcon != NULL) {
        struct bufferevent *bev = evhttp_connection_get_bufferevent(req->evcon);
        evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
        if (bev != NULL)
            bufferevent_disable(bev, EV_READ);
        if (fd >= 0) {
            req->watch = event_new(srv->base, fd, EV_READ | EV_CLOSED | EV_PERSIST, on_watch, req);
            if (req->watch != NULL)
                event_add(req->watch, NULL);
        }
        HttpConn *conn = fd >= 0 && (size_t)fd < srv->conn_by_fd_cap ? srv->conn_by_fd[fd] : NULL;
        if (conn != NULL) {
            conn->req = req;
            req->conn = conn;
        }
    }

    log_ctx_set_request(req->id);

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(evreq);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    if (raw == NULL || raw[0] == '\0')
        raw = "/";
    req->raw_path = xstrdup(raw);
    size_t dec_len = 0;
    req->path = evhttp_uridecode(raw, 0, &dec_len);
    if (req->path == NULL)
        req->path = xstrdup(raw);

    TenantId tenant;
    char tenant_ctx[TSID_STR_SIZE] = "";
    bool has_tenant = false;
    Err err;
    err_clear(&err);

    if (srv->stopping) {
        reply_simple_error(req, ERR_UNAVAILABLE, "server is shutting down");
        goto done;
    }
    if (raw[0] != '/') {
        reply_simple_error(req, ERR_BAD_REQUEST, "request target must be an absolute path");
        goto done;
    }
    if (strlen(req->path) != dec_len) {
        reply_simple_error(req, ERR_BAD_REQUEST, "invalid percent-encoding in the request path");
        goto done;
    }
    if (!request_route(srv, req, raw))
        goto done;
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    if (q != NULL && q[0] != '\0' && evhttp_parse_query_str(q, &req->query) != 0) {
        evhttp_clear_headers(&req->query);
        reply_simple_error(req, ERR_BAD_REQUEST, "malformed query string");
        goto done;
    }
    if (q != NULL && q[0] != '\0')
        req->raw_query = xstrdup(q);
    has_tenant = route_tenant(req, &tenant, tenant_ctx);
    if (has_tenant)
        log_ctx_set_tenant(tenant_ctx);
    if (!request_authorize(srv, req, has_tenant ? &tenant : NULL, &err)) {
        http_reply_error(req, &err);
        goto done;
    }
    struct evbuffer *inbuf = evhttp_request_get_input_buffer(evreq);
    size_t len = inbuf ? evbuffer_get_length(inbuf) : 0;
    if (len > srv->max_body) {
        err_set(&err, ERR_PAYLOAD_TOO_LARGE,
                "request body of %zu bytes is over the limit of %zu bytes", len, srv->max_body);
        http_reply_error(req, &err);
        goto done;
    }
    req->body = xmalloc(len + 1);
    if (len > 0)
        evbuffer_copyout(inbuf, req->body, len);
    req->body[len] = '\0';
    req->body_len = len;

    req->route->route->handler(req, srv->cfg.app);

done:
    log_ctx_clear();
    req->in_dispatch = false;
    if (req->replied)
        request_destroy(req);
}

/* ---- server ---- */

static uint64_t seed_rng(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
    }
    return seed;
}

bool http_server_start(struct event_base *base, const HttpServerConfig *cfg, HttpServer **out,
                       Err *err)
{
    HttpServer *srv = xcalloc(1, sizeof(*srv));
    srv->base = base;
    srv->cfg = *cfg;
    str_copy(srv->name, sizeof(srv->name), cfg->name ? cfg->name : "http");
    srv->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : HTTP_DEFAULT_MAX_BODY;
    srv->rng = seed_rng();
    char where[HOST_MAX + 16];
    host_port_format(&cfg->listen, where, sizeof(where));

    srv->routes = xcalloc(cfg->n_routes ? cfg->n_routes : 1, sizeof(CompiledRoute));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (!route_compile(&cfg->routes[i], &srv->routes[i], err)) {
            srv->cfg.n_routes = i;
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (srv->routes[j].route->method == cfg->routes[i].method &&
                routes_same_shape(&srv->routes[j], &srv->routes[i])) {
                err_set(err, ERR_INTERNAL, "routes %s %s and %s match the same requests",
                        http_method_name(cfg->routes[i].method), srv->routes[j].route->pattern,
                        cfg->routes[i].pattern);
                srv->cfg.n_routes = i + 1;
                goto fail;
            }
        }
    }

    srv->max_conns = cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;
    srv->header_timeout_ms =
        cfg->header_timeout_ms > 0 ? cfg->header_timeout_ms : HTTP_DEFAULT_HEADER_TIMEOUT_MS;
    if (cfg->metrics != NULL) {
        char esc[128], labels[160];
        metrics_label_escape(srv->name, esc, sizeof(esc));
        str_printf(labels, sizeof(labels), "server=\"%s\"", esc);
        srv->m_open = metrics_gauge(cfg->metrics, "http_open_connections",
                                    "Client connections open now", labels);
        srv->m_refused =
            metrics_counter(cfg->metrics, "http_connections_refused_total",
                            "Connections answered 503 because max connections were open", labels);
        srv->m_accept_errors =
            metrics_counter(cfg->metrics, "http_accept_errors_total",
                            "accept() failures (e.g. out of file descriptors)", labels);
        srv->m_accepted = metrics_counter(cfg->metrics, "http_connections_accepted_total",
                                          "Client connections accepted", labels);
    }
    srv->defer = loop_defer_new(base);
    loop_defer_item_init(&srv->reap, on_reap, srv);
    srv->accept_timer = evtimer_new(base, on_accept_resume, srv);
    srv->http = evhttp_new(base);
    if (srv->accept_timer == NULL || srv->http == NULL) {
        err_set(err, ERR_INTERNAL, "%s: cannot create the HTTP server", srv->name);
        goto fail;
    }
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                              EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    size_t hard_cap =
        srv->max_body > (SIZE_MAX - 65536) / 2 ? SIZE_MAX / 2 : srv->max_body * 2 + 65536;
    if (hard_cap > (size_t)INT64_MAX)
        hard_cap = (size_t)INT64_MAX;
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)hard_cap);
    /* the framing scanner enforces HTTP_MAX_HEAD_BYTES first; evhttp's limit is a backstop */
    evhttp_set_max_headers_size(srv->http, (ev_ssize_t)HTTP_MAX_HEAD_BYTES * 2);
    evhttp_set_bevcb(srv->http, on_new_bev, srv);
    evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_timeout(srv->http, HTTP_TIMEOUT_SECS);
    evhttp_set_gencb(srv->http, on_request, srv);

    errno = 0;
    srv->sock = evhttp_bind_socket_with_handle(srv->http, cfg->listen.host, cfg->listen.port);
    if (srv->sock == NULL) {
        int e = errno;
        err_set(err, ERR_INTERNAL, "cannot listen on %s: %s", where,
                e ? strerror(e) : "bind failed");
        goto fail;
    }
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(srv->sock), on_accept_error);
    registry_add(srv);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(srv->sock);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    log_info("%s listening on %s port %u", srv->name, cfg->listen.host, (unsigned)srv->port);
    if (cfg->auth == NULL)
        log_warn("%s: auth is off, every route is open (development only)", srv->name);
    *out = srv;
    return true;

fail:
    if (srv->http)
        evhttp_free(srv->http);
    loop_defer_free(srv->defer);
    if (srv->accept_timer)
        event_free(srv->accept_timer);
    for (size_t i = 0; i < srv->cfg.n_routes; i++)
        route_finish(&srv->routes[i]);
    free(srv->routes);
    free(srv);
    return false;
}

uint16_t http_server_port(const HttpServer *srv)
{
    return srv->port;
}

void http_server_stop_accepting(HttpServer *srv)
{
    if (srv == NULL)
        return;
    srv->stopping = true;
    if (srv->sock != NULL) {
        evhttp_del_accept_socket(srv->http, srv->sock);
        srv->sock = NULL;
        event_del(srv->accept_timer);
        log_info("%s stopped accepting connections", srv->name);
    }
}

size_t http_server_inflight(const HttpServer *srv)
{
    return srv->inflight;
}

void http_server_free(HttpServer *srv)
{
    if (srv == NULL)
        return;
    srv->stopping = true;
    srv->freeing = true;
    /* each reply unlinks its request (one being dispatched right now is destroyed when its
     * dispatch ends, the others go to the graveyard reaped below) */
    while (srv->pending != NULL)
        reply_simple_error(srv->pending, ERR_UNAVAILABLE, "server is shutting down");
    registry_remove(srv);
    evhttp_free(srv->http); /* each connection's close callback frees its HttpConn */
    while (srv->conns != NULL)
        conn_free(srv->conns); /* made but never set up */
    free(srv->conn_by_fd);
    loop_defer_free(srv->defer); /* the reap is done right here */
    on_reap(srv);
    event_free(srv->accept_timer);
    for (size_t i = 0; i < srv->cfg.n_routes; i++)
        route_finish(&srv->routes[i]);
    free(srv->routes);
    free(srv);
}

/* ---- request accessors ---- */

HttpMethod http_request_method(const HttpRequest *req)
{
    return req->method;
}

const char *http_request_path(const HttpRequest *req)
{
    return req->path;
}

const char *http_request_param(const HttpRequest *req, const char *name)
{
    if (req->route == NULL)
        return NULL;
    for (size_t k = 0; k < req->route->n_params; k++) {
        if (strcmp(req->route->seg[req->route->param_seg[k]], name) == 0)
            return req->params[k];
    }
    return NULL;
}

const char *http_request_query(const HttpRequest *req, const char *name)
{
    return evhttp_find_header(&req->query, name);
}

const char *http_request_query_string(const HttpRequest *req)
{
    return req->raw_query != NULL ? req->raw_query : "";
}

const char *http_request_header(const HttpRequest *req, const char *name)
{
    if (req->evreq == NULL)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(req->evreq), name);
}

const char *http_request_body(const HttpRequest *req, size_t *len)
{
    if (len != NULL)
        *len = req->body_len;
    return req->body ? req->body : "";
}

const char *http_request_id(const HttpRequest *req)
{
    return req->id;
}

const AuthClaims *http_request_claims(const HttpRequest *req)
{
    return req->has_claims ? &req->claims : NULL;
}

bool http_request_is_gone(const HttpRequest *req)
{
    return req->gone;
}

bool http_request_json(const HttpRequest *req, json_t **out, Err *err)
{
    if (req->body_len == 0) {
        err_set(err, ERR_BAD_REQUEST, "request body is empty, expected JSON");
        return false;
    }
    json_error_t jerr;
    json_t *j =
        json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (j == NULL) {
        err_set(err, ERR_BAD_REQUEST, "malformed JSON body: %s (line %d, column %d, byte %d)",
                jerr.text, jerr.line, jerr.column, jerr.position);
        return false;
    }
    *out = j;
    return true;
}

void http_request_set_data(HttpRequest *req, void *data)
{
    req->data = data;
}

void *http_request_get_data(const HttpRequest *req)
{
    return req->data;
}

/* ---- replies ---- */

void http_reply_json(HttpRequest *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (body != NULL && text == NULL) {
        Err err;
        err_clear(&err);
        err_set(&err, ERR_INTERNAL, "cannot encode the JSON response");
        http_reply_error(req, &err);
        return;
    }
    if (text == NULL)
        request_finish(req, status, "application/json", "null", 4);
    else
        request_finish(req, status, "application/json", text, strlen(text));
    free(text);
}

void http_reply_raw(HttpRequest *req, int status, const char *content_type, const void *body,
                    size_t len)
{
    request_finish(req, status, content_type ? content_type : "application/octet-stream", body,
                   len);
}

void http_reply_error(HttpRequest *req, const Err *err)
{
    Err fallback;
    if (err == NULL || err->code == ERR_NONE) {
        err_clear(&fallback);
        err_set(&fallback, ERR_INTERNAL, "internal error (reply without an error code)");
        err = &fallback;
    }
    if (!req->replied) {
        char what[HTTP_LOG_PATH_MAX + 80];
        if (req->in_dispatch)
            str_printf(what, sizeof(what), "%s %.*s", req->method_name, HTTP_LOG_PATH_MAX,
                       req->raw_path ? req->raw_path : "?");
        else
            str_printf(what, sizeof(what), "%s %.*s req=%s", req->method_name, HTTP_LOG_PATH_MAX,
                       req->raw_path ? req->raw_path : "?", req->id);
        log_err(err, what);
    }
    char *body = err_to_json_body(err);
    request_finish(req, err_http_status(err->code), "application/json", body,
                   body ? strlen(body) : 0);
    free(body);
}
