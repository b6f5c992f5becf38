/*
 * test_http_server.c: unit tests for shared/http_server.c.
 *
 * Each test runs the server on an event loop in the main thread and drives it from a client
 * thread that speaks HTTP/1.1 over plain sockets. The client thread only records what it saw;
 * the main thread asserts after joining it (cmocka's failure handling is not thread-safe).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "shared/auth.h"
#include "shared/err.h"
#include "shared/http_server.h"
#include "shared/id.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"

#define T1 "1f359dd625e519a1a4e8d7509690f6fc"
#define T2 "aaaabbbbccccddddeeeeffff00001111"

/* ---- the application under test ---- */

typedef struct App {
    struct event_base *base;
    atomic_int slow_replied;
    atomic_int slow_saw_gone;
    atomic_int handler_calls;
    atomic_int phase;
    HttpRequest *held; /* a request the app never answers (server-free test) */
} App;

typedef struct Deferred {
    struct event *ev;
    HttpRequest *req;
    App *app;
    bool slow;
} Deferred;

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    Deferred *d = arg;
    if (d->slow) {
        if (http_request_is_gone(d->req))
            atomic_fetch_add(&d->app->slow_saw_gone, 1);
        atomic_fetch_add(&d->app->slow_replied, 1);
    }
    json_t *body = json_pack("{s:b,s:s}", "deferred", 1, "id", http_request_id(d->req));
    http_reply_json(d->req, 200, body);
    event_free(d->ev);
    free(d);
}

static void defer_reply(HttpRequest *req, App *app, int ms, bool slow)
{
    Deferred *d = calloc(1, sizeof(*d));
    d->req = req;
    d->app = app;
    d->slow = slow;
    d->ev = evtimer_new(app->base, on_deferred, d);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(d->ev, &tv);
}

static void h_echo(HttpRequest *req, void *arg)
{
    App *app = arg;
    atomic_fetch_add(&app->handler_calls, 1);
    const char *q = http_request_query(req, "q");
    const char *hdr = http_request_header(req, "X-Test");
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s?,s:s?,s:b}", "route", "echo", "method",
                  http_method_name(http_request_method(req)), "a", http_request_param(req, "a"),
                  "b", http_request_param(req, "b"), "path", http_request_path(req), "q", q, "hdr",
                  hdr, "has_claims", http_request_claims(req) != NULL);
    http_reply_json(req, 200, o);
}

static void h_tenant_list(HttpRequest *req, void *arg)
{
    http_reply_json(req, 200, json_pack("{s:s}", "route", "list"));
}

static void h_tenant(HttpRequest *req, void *arg)
{
    const char *t = http_request_param(req, "tenant_id");
    if (t == NULL)
        t = http_request_param(req, "tenant_shard_id");
    const AuthClaims *c = http_request_claims(req);
    http_reply_json(req, 200,
                    json_pack("{s:s,s:s,s:s}", "route", "tenant", "tenant", t, "scope",
                              c ? auth_scope_name(c->scope) : "off"));
}

static void h_json(HttpRequest *req, void *arg)
{
    json_t *j = NULL;
    Err err = {0};
    if (!http_request_json(req, &j, &err)) {
        http_reply_error(req, &err);
        return;
    }
    http_reply_json(req, 201, json_pack("{s:o}", "got", j));
}

static void h_raw(HttpRequest *req, void *arg)
{
    http_reply_raw(req, 200, "text/plain", "hello", 5);
}

static void h_deferred(HttpRequest *req, void *arg)
{
    App *app = arg;
    const char *ms = http_request_query(req, "ms");
    uint64_t v = 100;
    if (ms != NULL && !parse_u64(ms, 0, 10000, &v)) {
        Err err = {0};
        err_set(&err, ERR_BAD_REQUEST, "bad ms");
        http_reply_error(req, &err);
        return;
    }
    defer_reply(req, app, (int)v, false);
}

static void h_slow(HttpRequest *req, void *arg)
{
    defer_reply(req, arg, 300, true);
}

static void h_hold(HttpRequest *req, void *arg)
{
    App *app = arg;
    app->held = req;
}

static void h_fail(HttpRequest *req, void *arg)
{
    Err err = {0};
    err_set(&err, ERR_CONFLICT, "tenant %s is busy", "x");
    http_reply_error(req, &err);
}

static void h_status(HttpRequest *req, void *arg)
{
    http_reply_json(req, 200, NULL);
}

static const HttpRoute ROUTES[] = {
    {HTTP_GET, "/status", AUTH_SCOPE_NONE, h_status},
    {HTTP_GET, "/v1/echo/{a}/x/{b}", AUTH_SCOPE_ADMIN, h_echo},
    {HTTP_PUT, "/v1/echo/{a}/x/{b}", AUTH_SCOPE_ADMIN, h_echo},
    {HTTP_GET, "/v1/tenant/{tenant_id}", AUTH_SCOPE_PAGESERVERAPI, h_tenant},
    {HTTP_GET, "/v1/tenant/list", AUTH_SCOPE_ADMIN, h_tenant_list},
    {HTTP_GET, "/v1/shard/{tenant_shard_id}/timeline", AUTH_SCOPE_PAGESERVERAPI, h_tenant},
    {HTTP_POST, "/v1/json", AUTH_SCOPE_ADMIN, h_json},
    {HTTP_GET, "/v1/json-get", AUTH_SCOPE_ADMIN, h_json},
    {HTTP_GET, "/v1/raw", AUTH_SCOPE_ADMIN, h_raw},
    {HTTP_GET, "/v1/deferred", AUTH_SCOPE_ADMIN, h_deferred},
    {HTTP_GET, "/v1/slow", AUTH_SCOPE_ADMIN, h_slow},
    {HTTP_POST, "/v1/slow", AUTH_SCOPE_ADMIN, h_slow},
    {HTTP_GET, "/v1/hold", AUTH_SCOPE_ADMIN, h_hold},
    {HTTP_GET, "/v1/fail", AUTH_SCOPE_ADMIN, h_fail},
    {HTTP_GET, "/v1/infra", AUTH_SCOPE_INFRA, h_status},
    {HTTP_DELETE, "/", AUTH_SCOPE_ADMIN, h_status},
};
#define N_ROUTES (sizeof(ROUTES) / sizeof(ROUTES[0]))

/* ---- a tiny HTTP/1.1 client (client threads only) ---- */

typedef struct Resp {
    int status;
    char headers[4096];
    char body[16384];
    size_t body_len;
} Resp;

typedef struct Conn {
    int fd;
    char buf[65536];
    size_t len;
} Conn;

static bool conn_open(Conn *c, uint16_t port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return false;
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(c->fd);
        return false;
    }
    return true;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

static bool conn_send_request(Conn *c, const char *method, const char *target, const char *hdrs,
                              const char *body, size_t body_len)
{
    char head[4096];
    if (!str_printf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, target,
                    hdrs ? hdrs : ""))
        return false;
    StrBuf b = STRBUF_INIT;
    strbuf_append_str(&b, head);
    if (body != NULL)
        strbuf_printf(&b, "Content-Length: %zu\r\n", body_len);
    strbuf_append_str(&b, "\r\n");
    if (body != NULL)
        strbuf_append(&b, body, body_len);
    bool ok = send_all(c->fd, b.data, b.len);
    strbuf_finish(&b);
    return ok;
}

static bool header_value(const char *headers, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = headers; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

/* conn_read_response: one response (Content-Length framed, or to EOF without one). */
static bool conn_read_response(Conn *c, Resp *r, bool head)
{
    memset(r, 0, sizeof(*r));
    char *end = NULL;
    while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (n <= 0)
            return false;
        c->len += (size_t)n;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &r->status) != 1)
        return false;
    size_t copy = hlen < sizeof(r->headers) ? hlen : sizeof(r->headers) - 1;
    memcpy(r->headers, c->buf, copy);
    r->headers[copy] = '\0';
    char cl[32];
    long want = -1;
    if (!head && header_value(r->headers, "Content-Length", cl, sizeof(cl)))
        want = strtol(cl, NULL, 10);
    if (head)
        want = 0;
    memmove(c->buf, c->buf + hlen, c->len - hlen);
    c->len -= hlen;
    while (want < 0 || c->len < (size_t)want) {
        if (c->len == sizeof(c->buf))
            return false;
        ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (n < 0)
            return false;
        if (n == 0) {
            if (want < 0)
                break;
            return false;
        }
        c->len += (size_t)n;
    }
    size_t blen = want < 0 ? c->len : (size_t)want;
    size_t keep = blen < sizeof(r->body) ? blen : sizeof(r->body) - 1;
    memcpy(r->body, c->buf, keep);
    r->body[keep] = '\0';
    r->body_len = blen;
    memmove(c->buf, c->buf + blen, c->len - blen);
    c->len -= blen;
    return true;
}

/* http_call: one request on a fresh connection; status -1 when the exchange failed. */
static void http_call(uint16_t port, const char *method, const char *target, const char *hdrs,
                      const char *body, size_t body_len, Resp *r)
{
    Conn *c = malloc(sizeof(*c));
    memset(r, 0, sizeof(*r));
    r->status = -1;
    if (conn_open(c, port)) {
        if (!conn_send_request(c, method, target, hdrs, body, body_len) ||
            !conn_read_response(c, r, strcmp(method, "HEAD") == 0))
            r->status = -1;
        close(c->fd);
    }
    free(c);
}

static void http_get(uint16_t port, const char *target, const char *hdrs, Resp *r)
{
    http_call(port, "GET", target, hdrs, NULL, 0, r);
}

/* ---- harness: server on the main loop, client in a thread ---- */

typedef struct Harness {
    struct event_base *base;
    HttpServer *srv;
    App app;
    uint16_t port;
    atomic_bool client_done;
    void (*client)(struct Harness *h, void *arg);
    void *arg;
    void (*tick_hook)(struct Harness *h);
} Harness;

/* per-test server settings (0: defaults); reset by harness_stop */
static size_t g_max_connections;
static long g_header_timeout_ms;

static void harness_start(Harness *h, size_t max_body, const Auth *auth, AuthPolicy policy,
                          MetricsRegistry *metrics)
{
    memset(h, 0, sizeof(*h));
    h->base = event_base_new();
    assert_non_null(h->base);
    h->app.base = h->base;
    HttpServerConfig cfg = {
        .routes = ROUTES,
        .n_routes = N_ROUTES,
        .app = &h->app,
        .max_body_bytes = max_body,
        .auth = auth,
        .auth_policy = policy,
        .metrics = metrics,
        .name = "test api",
        .max_connections = g_max_connections,
        .header_timeout_ms = g_header_timeout_ms,
    };
    str_copy(cfg.listen.host, sizeof(cfg.listen.host), "127.0.0.1");
    Err err = {0};
    if (!http_server_start(h->base, &cfg, &h->srv, &err))
        fail_msg("http_server_start: %s", err.msg);
    h->port = http_server_port(h->srv);
    assert_true(h->port != 0);
}

static void harness_stop(Harness *h)
{
    g_max_connections = 0;
    g_header_timeout_ms = 0;
    http_server_free(h->srv);
    event_base_free(h->base);
}

static void *client_thread(void *arg)
{
    Harness *h = arg;
    h->client(h, h->arg);
    atomic_store(&h->client_done, true);
    return NULL;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    Harness *h = arg;
    if (h->tick_hook)
        h->tick_hook(h);
    if (atomic_load(&h->client_done))
        event_base_loopbreak(h->base);
}

/* harness_run: run the loop until the client function returns (then one more tick). */
static void harness_run(Harness *h, void (*client)(Harness *, void *), void *arg)
{
    h->client = client;
    h->arg = arg;
    atomic_store(&h->client_done, false);
    struct event *tick = event_new(h->base, -1, EV_PERSIST, on_tick, h);
    struct timeval tv = {0, 5000};
    event_add(tick, &tv);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_thread, h), 0);
    event_base_dispatch(h->base);
    pthread_join(t, NULL);
    event_free(tick);
    /* let reaper events and pending writes settle */
    event_base_loop(h->base, EVLOOP_NONBLOCK);
}

static json_t *body_json(const Resp *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);
    if (j == NULL)
        fail_msg("response body is not JSON: '%s'", r->body);
    return j;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void assert_msg_contains(const Resp *r, const char *needle)
{
    char ct[128] = "";
    assert_true(header_value(r->headers, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_t *j = body_json(r);
    const char *msg = jstr(j, "msg");
    if (msg == NULL || strstr(msg, needle) == NULL)
        fail_msg("status %d body '%s' lacks '%s'", r->status, r->body, needle);
    json_decref(j);
}

/* ---- tests: routing ---- */

typedef struct Calls {
    Resp r[16];
} Calls;

static void client_params(Harness *h, void *arg)
{
    Calls *c = arg;
    http_get(h->port, "/v1/echo/hello%20world/x/b%2Fc?q=a%26b+c&z=1", "X-Test: yes\r\n", &c->r[0]);
    http_get(h->port, "/v1/echo/a/x/b", "X-Request-Id: trace-42_x\r\n", &c->r[1]);
    http_get(h->port, "/v1/echo//x/b", NULL, &c->r[2]);
    http_get(h->port, "/v1/echo/a/x/b/", NULL, &c->r[3]);
    http_get(h->port, "/v1/tenant/list", NULL, &c->r[4]);
    http_get(h->port, "/v1/tenant/" T1, NULL, &c->r[5]);
    http_get(h->port, "/v1/echo/a%00b/x/c", NULL, &c->r[6]);
    http_get(h->port, "/v1/echo/a/x/b?flag", NULL, &c->r[7]);
    http_call(h->port, "PUT", "/v1/echo/p/x/q", NULL, "", 0, &c->r[8]);
    http_get(h->port, "/v1/raw", NULL, &c->r[9]);
    http_get(h->port, "/v1/fail", NULL, &c->r[10]);
    http_get(h->port, "/v1/echo/a/x/b", "X-Request-Id: bad id with spaces\r\n", &c->r[11]);
    http_call(h->port, "DELETE", "/", NULL, NULL, 0, &c->r[12]);
}

static void test_params_and_query(void **state)
{
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    Calls *c = calloc(1, sizeof(*c));
    harness_run(&h, client_params, c);

    assert_int_equal(c->r[0].status, 200);
    json_t *j = body_json(&c->r[0]);
    assert_string_equal(jstr(j, "a"), "hello world");
    assert_string_equal(jstr(j, "b"), "b/c");
    assert_string_equal(jstr(j, "q"), "a&b c");
    assert_string_equal(jstr(j, "hdr"), "yes");
    assert_string_equal(jstr(j, "path"), "/v1/echo/hello world/x/b/c");
    assert_string_equal(jstr(j, "method"), "GET");
    assert_false(json_is_true(json_object_get(j, "has_claims")));
    json_decref(j);
    char v[128];
    assert_true(header_value(c->r[0].headers, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "application/json");
    assert_true(header_value(c->r[0].headers, "X-Request-Id", v, sizeof(v)));
    assert_int_equal(strlen(v), 12);
    assert_int_equal(strspn(v, "0123456789abcdef"), 12);

    assert_int_equal(c->r[1].status, 200);
    assert_true(header_value(c->r[1].headers, "X-Request-Id", v, sizeof(v)));
    assert_string_equal(v, "trace-42_x");
    j = body_json(&c->r[1]);
    assert_null(jstr(j, "q"));
    assert_null(jstr(j, "hdr"));
    json_decref(j);

    /* empty segment and trailing slash never match a parameter */
    assert_int_equal(c->r[2].status, 404);
    assert_int_equal(c->r[3].status, 404);
    /* a literal segment wins over a parameter, whatever the table order */
    assert_int_equal(c->r[4].status, 200);
    j = body_json(&c->r[4]);
    assert_string_equal(jstr(j, "route"), "list");
    json_decref(j);
    assert_int_equal(c->r[5].status, 200);
    j = body_json(&c->r[5]);
    assert_string_equal(jstr(j, "tenant"), T1);
    assert_string_equal(jstr(j, "scope"), "off");
    json_decref(j);
    /* an encoded NUL and a query without '=' are refused */
    assert_int_equal(c->r[6].status, 400);
    assert_msg_contains(&c->r[6], "percent-encoding");
    assert_int_equal(c->r[7].status, 400);
    assert_msg_contains(&c->r[7], "query");
    /* the same pattern serves another method */
    assert_int_equal(c->r[8].status, 200);
    j = body_json(&c->r[8]);
    assert_string_equal(jstr(j, "method"), "PUT");
    assert_string_equal(jstr(j, "a"), "p");
    json_decref(j);
    /* raw replies keep their content type */
    assert_int_equal(c->r[9].status, 200);
    assert_true(header_value(c->r[9].headers, "Content-Type", v, sizeof(v)));
    assert_string_equal(v, "text/plain");
    assert_string_equal(c->r[9].body, "hello");
    /* an Err renders as its status and {"msg"} */
    assert_int_equal(c->r[10].status, 409);
    assert_msg_contains(&c->r[10], "tenant x is busy");
    /* an unusable X-Request-Id is replaced */
    assert_true(header_value(c->r[11].headers, "X-Request-Id", v, sizeof(v)));
    assert_int_equal(strlen(v), 12);
    /* the root pattern */
    assert_int_equal(c->r[12].status, 200);
    assert_string_equal(c->r[12].body, "null");

    assert_int_equal(http_server_inflight(h.srv), 0);
    free(c);
    harness_stop(&h);
}

static void client_404_405(Harness *h, void *arg)
{
    Calls *c = arg;
    http_get(h->port, "/v1/nothing", NULL, &c->r[0]);
    http_call(h->port, "POST", "/v1/echo/a/x/b", NULL, "{}", 2, &c->r[1]);
    http_call(h->port, "DELETE", "/v1/json", NULL, NULL, 0, &c->r[2]);
    http_call(h->port, "OPTIONS", "/v1/nothing", NULL, NULL, 0, &c->r[3]);
    http_call(h->port, "HEAD", "/v1/raw", NULL, NULL, 0, &c->r[4]);
    http_call(h->port, "PATCH", "/v1/raw", NULL, "{}", 2, &c->r[5]);
    http_get(h->port, "/", NULL, &c->r[6]);
}

static void test_404_vs_405(void **state)
{
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    Calls *c = calloc(1, sizeof(*c));
    harness_run(&h, client_404_405, c);
    char v[128];

    assert_int_equal(c->r[0].status, 404);
    assert_msg_contains(&c->r[0], "no route for GET /v1/nothing");
    assert_int_equal(c->r[1].status, 405);
    assert_msg_contains(&c->r[1], "method POST not allowed");
    assert_true(header_value(c->r[1].headers, "Allow", v, sizeof(v)));
    assert_string_equal(v, "GET, PUT");
    assert_int_equal(c->r[2].status, 405);
    assert_true(header_value(c->r[2].headers, "Allow", v, sizeof(v)));
    assert_string_equal(v, "POST");
    assert_int_equal(c->r[3].status, 404);
    assert_int_equal(c->r[4].status, 405);
    assert_int_equal(c->r[5].status, 405);
    assert_int_equal(c->r[6].status, 405); /* "/" exists for DELETE only */
    assert_int_equal(http_server_inflight(h.srv), 0);
    free(c);
    harness_stop(&h);
}

/* ---- tests: bodies ---- */

static void client_bodies(Harness *h, void *arg)
{
    Calls *c = arg;
    char *big = malloc(300000);
    memset(big, ' ', 300000);
    big[0] = '[';
    big[1998] = ']';
    http_call(h->port, "POST", "/v1/json", NULL, big, 2000, &c->r[0]);
    /* under the limit */
    http_call(h->port, "POST", "/v1/json", NULL, "{\"k\": [1, 2]}", 13, &c->r[1]);
    /* far over: beyond evhttp's own cap */
    http_call(h->port, "POST", "/v1/json", NULL, big, 300000, &c->r[2]);
    http_call(h->port, "POST", "/v1/json", NULL, "{bad", 4, &c->r[3]);
    http_call(h->port, "POST", "/v1/json", NULL, "{\"a\":1,\"a\":2}", 13, &c->r[4]);
    http_call(h->port, "POST", "/v1/json", NULL, "", 0, &c->r[5]);
    http_call(h->port, "POST", "/v1/json", NULL, "[1,2]", 5, &c->r[6]);
    http_call(h->port, "POST", "/v1/json", NULL, "{\"a\":1}\n{\"b\":2}", 15, &c->r[7]);
    /* exactly at the limit is allowed */
    memset(big, ' ', 1024);
    big[0] = '1';
    http_call(h->port, "POST", "/v1/json", NULL, big, 1024, &c->r[8]);
    free(big);
}

static void test_body_limit_and_json(void **state)
{
    Harness h;
    harness_start(&h, 1024, NULL, AUTH_POLICY_STORCON, NULL);
    Calls *c = calloc(1, sizeof(*c));
    harness_run(&h, client_bodies, c);

    assert_int_equal(c->r[0].status, 413);
    assert_msg_contains(&c->r[0], "over the limit of 1024 bytes");
    assert_int_equal(c->r[1].status, 201);
    json_t *j = body_json(&c->r[1]);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "got"), "k")), 2);
    json_decref(j);
    /* evhttp answers this one itself; the status must still be 413 (or the connection is cut
     * while the client is still sending) */
    assert_true(c->r[2].status == 413 || c->r[2].status == -1);
    assert_int_equal(c->r[3].status, 400);
    assert_msg_contains(&c->r[3], "malformed JSON body");
    assert_msg_contains(&c->r[3], "line 1");
    assert_int_equal(c->r[4].status, 400);
    assert_msg_contains(&c->r[4], "duplicate");
    assert_int_equal(c->r[5].status, 400);
    assert_msg_contains(&c->r[5], "empty");
    assert_int_equal(c->r[6].status, 201);
    assert_int_equal(c->r[7].status, 400);
    assert_int_equal(c->r[8].status, 201);
    assert_int_equal(http_server_inflight(h.srv), 0);
    free(c);
    harness_stop(&h);
}

/* A GET with a JSON body (Neon's timeline_import_status upcall is one) on a kept-alive
 * connection: evhttp reads the body, so the framing scanner must too, or the body is taken for
 * the next request (which then fails with 501) and a declared length escapes the limit. */
static void client_get_body(Harness *h, void *arg)
{
    Calls *c = arg;
    for (size_t i = 0; i < 4; i++)
        c->r[i].status = -1;
    Conn *conn = malloc(sizeof(*conn));
    if (conn_open(conn, h->port)) {
        if (conn_send_request(conn, "GET", "/v1/json-get", NULL, "{\"k\": 1}", 8))
            conn_read_response(conn, &c->r[0], false);
        if (conn_send_request(conn, "POST", "/v1/json", NULL, "{\"k\": 2}", 8))
            conn_read_response(conn, &c->r[1], false);
        if (conn_send_request(conn, "GET", "/v1/raw", NULL, NULL, 0))
            conn_read_response(conn, &c->r[2], false);
        close(conn->fd);
    }
    free(conn);
    http_call(h->port, "GET", "/v1/json-get", "Content-Length: 20000000\r\n", NULL, 0, &c->r[3]);
}

static void test_get_with_body_keep_alive(void **state)
{
    Harness h;
    harness_start(&h, 1024, NULL, AUTH_POLICY_STORCON, NULL);
    Calls *c = calloc(1, sizeof(*c));
    harness_run(&h, client_get_body, c);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c->r[i].status, 201);
        json_t *j = body_json(&c->r[i]);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "got"), "k")),
                         i + 1);
        json_decref(j);
    }
    assert_int_equal(c->r[2].status, 200);
    assert_string_equal(c->r[2].body, "hello");
    assert_int_equal(c->r[3].status, 413);
    assert_msg_contains(&c->r[3], "over the limit of 1024 bytes");
    assert_int_equal(http_server_inflight(h.srv), 0);
    free(c);
    harness_stop(&h);
}

/* ---- tests: deferred replies, disconnects, keep-alive ---- */

typedef struct Timed {
    Resp r[4];
    double ms[4];
} Timed;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void client_deferred(Harness *h, void *arg)
{
    Timed *t = arg;
    double t0 = now_ms();
    http_get(h->port, "/v1/deferred?ms=150", NULL, &t->r[0]);
    t->ms[0] = now_ms() - t0;
    /* keep-alive: two deferred requests on one connection, then a pipelined pair */
    Conn *c = malloc(sizeof(*c));
    if (conn_open(c, h->port)) {
        if (conn_send_request(c, "GET", "/v1/deferred?ms=20", NULL, NULL, 0))
            conn_read_response(c, &t->r[1], false);
        if (conn_send_request(c, "GET", "/v1/deferred?ms=10", NULL, NULL, 0))
            conn_read_response(c, &t->r[2], false);
        const char *two = "GET /v1/deferred?ms=30 HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /v1/raw HTTP/1.1\r\nHost: x\r\n\r\n";
        if (send_all(c->fd, two, strlen(two)) && conn_read_response(c, &t->r[3], false)) {
            Resp second;
            if (conn_read_response(c, &second, false) && strcmp(second.body, "hello") == 0)
                t->ms[3] = 1; /* marker: the pipelined second request was answered */
        }
        close(c->fd);
    }
    free(c);
}

static void test_deferred_reply(void **state)
{
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    Timed *t = calloc(1, sizeof(*t));
    harness_run(&h, client_deferred, t);
    assert_int_equal(t->r[0].status, 200);
    assert_true(t->ms[0] >= 140);
    json_t *j = body_json(&t->r[0]);
    assert_true(json_is_true(json_object_get(j, "deferred")));
    char id[64];
    assert_true(header_value(t->r[0].headers, "X-Request-Id", id, sizeof(id)));
    assert_string_equal(jstr(j, "id"), id);
    json_decref(j);
    assert_int_equal(t->r[1].status, 200);
    assert_int_equal(t->r[2].status, 200);
    assert_int_equal(t->r[3].status, 200);
    assert_true(t->ms[3] == 1);
    assert_int_equal(http_server_inflight(h.srv), 0);
    free(t);
    harness_stop(&h);
}

typedef struct Disconnect {
    const char *method;
    Resp after;
} Disconnect;

static void client_disconnect(Harness *h, void *arg)
{
    Disconnect *d = arg;
    Conn *c = malloc(sizeof(*c));
    if (conn_open(c, h->port)) {
        if (strcmp(d->method, "POST") == 0)
            conn_send_request(c, "POST", "/v1/slow", NULL, "{\"x\":1}", 7);
        else
            conn_send_request(c, "GET", "/v1/slow", NULL, NULL, 0);
        usleep(50 * 1000);
        close(c->fd);
    }
    free(c);
    usleep(500 * 1000); /* the server replies at 300 ms, to nobody */
    http_get(h->port, "/v1/raw", NULL, &d->after);
}

static void test_client_disconnect_before_deferred_reply(void **state)
{
    const char *methods[] = {"GET", "POST"};
    for (size_t i = 0; i < 2; i++) {
        Harness h;
        harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
        Disconnect d = {.method = methods[i]};
        harness_run(&h, client_disconnect, &d);
        assert_int_equal(atomic_load(&h.app.slow_replied), 1);
        assert_int_equal(atomic_load(&h.app.slow_saw_gone), 1);
        assert_int_equal(http_server_inflight(h.srv), 0);
        assert_int_equal(d.after.status, 200);
        harness_stop(&h);
    }
}

static void client_hold(Harness *h, void *arg)
{
    Resp *r = arg;
    http_get(h->port, "/v1/hold", NULL, r);
}

static void free_when_held(Harness *h)
{
    if (h->srv != NULL && http_server_inflight(h->srv) == 1 && h->app.held != NULL) {
        http_server_free(h->srv);
        h->srv = NULL;
        h->app.held = NULL; /* answered and freed by the server */
    }
}

static void test_free_answers_pending_503(void **state)
{
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    h.tick_hook = free_when_held;
    Resp *r = calloc(1, sizeof(*r));
    harness_run(&h, client_hold, r);
    assert_null(h.srv);
    assert_int_equal(r->status, 503);
    assert_msg_contains(r, "shutting down");
    free(r);
    event_base_free(h.base);
}

static void client_after_stop(Harness *h, void *arg)
{
    Calls *c = arg;
    Conn *conn = malloc(sizeof(*conn));
    if (conn_open(conn, h->port)) {
        conn_send_request(conn, "GET", "/v1/raw", NULL, NULL, 0);
        conn_read_response(conn, &c->r[0], false);
        atomic_store(&h->app.phase, 1); /* main thread: stop accepting */
        while (atomic_load(&h->app.phase) != 2)
            usleep(1000);
        conn_send_request(conn, "GET", "/v1/raw", NULL, NULL, 0);
        conn_read_response(conn, &c->r[1], false);
        close(conn->fd);
    }
    free(conn);
    http_get(h->port, "/v1/raw", NULL, &c->r[2]);
}

static void stop_when_asked(Harness *h)
{
    if (atomic_load(&h->app.phase) == 1) {
        http_server_stop_accepting(h->srv);
        atomic_store(&h->app.phase, 2);
    }
}

static void test_stop_accepting(void **state)
{
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    h.tick_hook = stop_when_asked;
    Calls *c = calloc(1, sizeof(*c));
    harness_run(&h, client_after_stop, c);
    assert_int_equal(c->r[0].status, 200);
    /* a kept-alive connection gets 503 and is closed; new connections are refused */
    assert_int_equal(c->r[1].status, 503);
    char v[64];
    assert_true(header_value(c->r[1].headers, "Connection", v, sizeof(v)));
    assert_string_equal(v, "close");
    assert_int_equal(c->r[2].status, -1);
    free(c);
    harness_stop(&h);
}

/* ---- tests: concurrency ---- */

#define CONC_THREADS 8
#define CONC_PER     25

typedef struct Conc {
    Harness *h;
    int ok[CONC_THREADS];
} Conc;

static void *conc_worker(void *arg)
{
    Conc *c = ((Conc **)arg)[0];
    int idx = (int)(intptr_t)((void **)arg)[1];
    Resp *r = malloc(sizeof(*r));
    for (int i = 0; i < CONC_PER; i++) {
        char target[64];
        if (i % 2 == 0)
            str_printf(target, sizeof(target), "/v1/deferred?ms=%d", (idx * 7 + i) % 20);
        else
            str_printf(target, sizeof(target), "/v1/echo/t%d/x/%d", idx, i);
        http_get(c->h->port, target, NULL, r);
        if (r->status == 200)
            c->ok[idx]++;
    }
    free(r);
    return NULL;
}

static void client_concurrent(Harness *h, void *arg)
{
    Conc *c = arg;
    c->h = h;
    pthread_t t[CONC_THREADS];
    void *args[CONC_THREADS][2];
    for (int i = 0; i < CONC_THREADS; i++) {
        args[i][0] = c;
        args[i][1] = (void *)(intptr_t)i;
        pthread_create(&t[i], NULL, conc_worker, args[i]);
    }
    for (int i = 0; i < CONC_THREADS; i++)
        pthread_join(t[i], NULL);
}

static void test_many_concurrent_requests(void **state)
{
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    Conc *c = calloc(1, sizeof(*c));
    harness_run(&h, client_concurrent, c);
    int total = 0;
    for (int i = 0; i < CONC_THREADS; i++)
        total += c->ok[i];
    assert_int_equal(total, CONC_THREADS * CONC_PER);
    assert_int_equal(http_server_inflight(h.srv), 0);
    free(c);
    harness_stop(&h);
}

/* ---- tests: auth ---- */

typedef struct Keys {
    char dir[64];
    Auth *auth;
    AuthSigner *good;
    AuthSigner *other; /* a key the server does not trust */
} Keys;

static AuthSigner *write_key(const char *dir, const char *name, bool trusted)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
    EVP_PKEY_CTX_free(ctx);
    char path[128];
    str_printf(path, sizeof(path), "%s/%s.key", dir, name);
    FILE *f = fopen(path, "w");
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    if (trusted) {
        char pub[128];
        str_printf(pub, sizeof(pub), "%s/pub/%s.pem", dir, name);
        f = fopen(pub, "w");
        assert_int_equal(PEM_write_PUBKEY(f, k), 1);
        fclose(f);
    }
    EVP_PKEY_free(k);
    AuthSigner *s = NULL;
    Err err = {0};
    assert_true(auth_signer_new_from_file(path, &s, &err));
    return s;
}

static void keys_init(Keys *k)
{
    str_copy(k->dir, sizeof(k->dir), "/tmp/test_http_auth.XXXXXX");
    assert_non_null(mkdtemp(k->dir));
    char pub[96];
    str_printf(pub, sizeof(pub), "%s/pub", k->dir);
    assert_int_equal(mkdir(pub, 0700), 0);
    k->good = write_key(k->dir, "good", true);
    k->other = write_key(k->dir, "other", false);
    Err err = {0};
    if (!auth_new_from_file(pub, &k->auth, &err))
        fail_msg("auth_new_from_file: %s", err.msg);
}

static void keys_finish(Keys *k)
{
    auth_free(k->auth);
    auth_signer_free(k->good);
    auth_signer_free(k->other);
    char cmd[128];
    str_printf(cmd, sizeof(cmd), "rm -rf '%s'", k->dir);
    assert_int_equal(system(cmd), 0);
}

static char *bearer(AuthSigner *s, AuthScope scope, const char *tenant, int64_t exp)
{
    TenantId t;
    Err err = {0};
    if (tenant)
        assert_true(tenant_id_parse(tenant, &t, &err));
    char *jwt = NULL;
    assert_true(auth_sign(s, scope, tenant ? &t : NULL, exp, &jwt, &err));
    char *h = str_dup_printf("Authorization: Bearer %s\r\n", jwt);
    free(jwt);
    return h;
}

typedef struct AuthCase {
    const char *target;
    char *hdr; /* owned */
    int want;
    const char *msg; /* substring of {"msg"} for errors; for 200, expected "scope" or NULL */
} AuthCase;

typedef struct AuthRun {
    AuthCase cases[32];
    size_t n;
    Resp *resp;
} AuthRun;

static void auth_add(AuthRun *a, const char *target, char *hdr, int want, const char *msg)
{
    assert_true(a->n < 32);
    a->cases[a->n++] = (AuthCase){target, hdr, want, msg};
}

static void client_auth(Harness *h, void *arg)
{
    AuthRun *a = arg;
    for (size_t i = 0; i < a->n; i++)
        http_get(h->port, a->cases[i].target, a->cases[i].hdr, &a->resp[i]);
}

static void auth_run_and_check(Harness *h, AuthRun *a)
{
    a->resp = calloc(a->n, sizeof(Resp));
    harness_run(h, client_auth, a);
    for (size_t i = 0; i < a->n; i++) {
        const Resp *r = &a->resp[i];
        if (r->status != a->cases[i].want)
            fail_msg("case %zu %s: status %d want %d (%s)", i, a->cases[i].target, r->status,
                     a->cases[i].want, r->body);
        if (a->cases[i].msg != NULL && r->status >= 400)
            assert_msg_contains(r, a->cases[i].msg);
        if (a->cases[i].msg != NULL && r->status == 200) {
            json_t *j = body_json(r);
            assert_string_equal(jstr(j, "scope"), a->cases[i].msg);
            json_decref(j);
        }
        if (r->status == 401) {
            char v[32];
            assert_true(header_value(r->headers, "WWW-Authenticate", v, sizeof(v)));
        }
        free(a->cases[i].hdr);
    }
    free(a->resp);
    assert_int_equal(http_server_inflight(h->srv), 0);
}

static void test_auth_off(void **state)
{
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    AuthRun *a = calloc(1, sizeof(*a));
    auth_add(a, "/v1/infra", NULL, 200, NULL);
    auth_add(a, "/v1/tenant/" T1, NULL, 200, "off");
    auth_add(a, "/v1/tenant/" T2, xstrdup("Authorization: Bearer garbage\r\n"), 200, "off");
    auth_run_and_check(&h, a);
    free(a);
    harness_stop(&h);
}

static void test_auth_storcon_policy(void **state)
{
    Keys k;
    keys_init(&k);
    Harness h;
    harness_start(&h, 0, k.auth, AUTH_POLICY_STORCON, NULL);
    int64_t future = (int64_t)time(NULL) + 3600;
    AuthRun *a = calloc(1, sizeof(*a));
    auth_add(a, "/v1/infra", NULL, 401, "missing authorization header");
    auth_add(a, "/v1/infra", xstrdup("Authorization: Basic eDp5\r\n"), 401, "Bearer");
    auth_add(a, "/v1/infra", xstrdup("Authorization: Bearer not.a.jwt\r\n"), 401, "malformed");
    auth_add(a, "/v1/infra", bearer(k.other, AUTH_SCOPE_INFRA, NULL, 0), 403,
             "token signature invalid");
    auth_add(a, "/v1/infra", bearer(k.good, AUTH_SCOPE_INFRA, NULL, (int64_t)time(NULL) - 5), 403,
             "token expired");
    auth_add(a, "/v1/infra", bearer(k.good, AUTH_SCOPE_TENANT, T1, 0), 403,
             "scope 'tenant' may not call this route");
    auth_add(a, "/v1/infra", bearer(k.good, AUTH_SCOPE_SCRUBBER, NULL, 0), 403, "scrubber");
    auth_add(a, "/v1/infra", bearer(k.good, AUTH_SCOPE_INFRA, NULL, future), 200, NULL);
    auth_add(a, "/v1/infra", bearer(k.good, AUTH_SCOPE_ADMIN, NULL, 0), 200, NULL);
    auth_add(a, "/v1/tenant/" T1, bearer(k.good, AUTH_SCOPE_ADMIN, NULL, 0), 200, "admin");
    auth_add(a, "/v1/tenant/" T1, bearer(k.good, AUTH_SCOPE_PAGESERVERAPI, NULL, 0), 200,
             "pageserverapi");
    auth_add(a, "/v1/tenant/" T1, bearer(k.good, AUTH_SCOPE_INFRA, NULL, 0), 403, "infra");
    /* health needs no token; unknown routes are 404 before auth */
    auth_add(a, "/status", NULL, 200, NULL);
    auth_add(a, "/v1/nothing", NULL, 404, "no route");
    auth_run_and_check(&h, a);
    free(a);
    harness_stop(&h);
    keys_finish(&k);
}

static void test_auth_pageserver_policy(void **state)
{
    Keys k;
    keys_init(&k);
    Harness h;
    harness_start(&h, 0, k.auth, AUTH_POLICY_PAGESERVER, NULL);
    AuthRun *a = calloc(1, sizeof(*a));
    auth_add(a, "/v1/tenant/" T1, NULL, 401, "missing authorization header");
    auth_add(a, "/v1/tenant/" T1, bearer(k.good, AUTH_SCOPE_TENANT, T1, 0), 200, "tenant");
    auth_add(a, "/v1/tenant/1F359DD625E519A1A4E8D7509690F6FC",
             bearer(k.good, AUTH_SCOPE_TENANT, T1, 0), 200, "tenant");
    auth_add(a, "/v1/tenant/" T2, bearer(k.good, AUTH_SCOPE_TENANT, T1, 0), 403,
             "not valid for tenant " T2);
    auth_add(a, "/v1/shard/" T1 "-0104/timeline", bearer(k.good, AUTH_SCOPE_TENANT, T1, 0), 200,
             "tenant");
    auth_add(a, "/v1/shard/" T2 "-0104/timeline", bearer(k.good, AUTH_SCOPE_TENANT, T1, 0), 403,
             "not valid for tenant");
    /* a tenant token on a route without a tenant, or with an unparsable one */
    auth_add(a, "/v1/echo/a/x/b", bearer(k.good, AUTH_SCOPE_TENANT, T1, 0), 403,
             "scope 'tenant' may not call this route");
    auth_add(a, "/v1/tenant/nothex", bearer(k.good, AUTH_SCOPE_TENANT, T1, 0), 403, "tenant");
    /* pageserverapi passes everything, even an unparsable tenant (the handler judges it) */
    auth_add(a, "/v1/tenant/" T2, bearer(k.good, AUTH_SCOPE_PAGESERVERAPI, NULL, 0), 200,
             "pageserverapi");
    auth_add(a, "/v1/tenant/nothex", bearer(k.good, AUTH_SCOPE_PAGESERVERAPI, NULL, 0), 200,
             "pageserverapi");
    auth_add(a, "/v1/echo/a/x/b", bearer(k.good, AUTH_SCOPE_PAGESERVERAPI, NULL, 0), 200, NULL);
    /* other scopes, admin included, are not for the pageserver */
    auth_add(a, "/v1/tenant/" T1, bearer(k.good, AUTH_SCOPE_ADMIN, NULL, 0), 403,
             "scope 'admin' may not call this route");
    auth_add(a, "/v1/tenant/" T1, bearer(k.good, AUTH_SCOPE_GENERATIONS_API, NULL, 0), 403,
             "generations_api");
    auth_add(a, "/v1/tenant/" T1, bearer(k.other, AUTH_SCOPE_PAGESERVERAPI, NULL, 0), 403,
             "token signature invalid");
    auth_run_and_check(&h, a);
    free(a);
    harness_stop(&h);
    keys_finish(&k);
}

/* ---- tests: metrics, startup errors ---- */

static void client_metrics(Harness *h, void *arg)
{
    Calls *c = arg;
    http_get(h->port, "/v1/echo/a/x/b", NULL, &c->r[0]);
    http_get(h->port, "/v1/echo/c/x/d", NULL, &c->r[1]);
    http_get(h->port, "/v1/nothing/at/all", NULL, &c->r[2]);
    http_call(h->port, "POST", "/v1/json", NULL, "{", 1, &c->r[3]);
}

static void test_metrics(void **state)
{
    MetricsRegistry *m = metrics_registry_new();
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, m);
    Calls *c = calloc(1, sizeof(*c));
    harness_run(&h, client_metrics, c);
    char *text = metrics_render(m);
    const char *want[] = {
        "http_requests_total{route=\"/v1/echo/{a}/x/{b}\",method=\"GET\",status=\"200\"} 2",
        "http_requests_total{route=\"unknown\",method=\"GET\",status=\"404\"} 1",
        "http_requests_total{route=\"/v1/json\",method=\"POST\",status=\"400\"} 1",
        "http_request_duration_seconds_count{route=\"/v1/echo/{a}/x/{b}\",method=\"GET\"} 2",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(text, want[i]) == NULL)
            fail_msg("metrics lack '%s':\n%s", want[i], text);
    }
    free(text);
    free(c);
    harness_stop(&h);
    metrics_registry_free(m);
}

static void test_bind_in_use_and_bad_routes(void **state)
{
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    HttpServerConfig cfg = {.routes = ROUTES, .n_routes = N_ROUTES, .name = "second"};
    str_copy(cfg.listen.host, sizeof(cfg.listen.host), "127.0.0.1");
    cfg.listen.port = h.port;
    HttpServer *second = NULL;
    Err err = {0};
    assert_false(http_server_start(h.base, &cfg, &second, &err));
    assert_null(second);
    char want[64];
    str_printf(want, sizeof(want), "cannot listen on 127.0.0.1:%u: Address already in use",
               (unsigned)h.port);
    assert_string_equal(err.msg, want);

    static const HttpRoute bad[][2] = {
        {{HTTP_GET, "v1/x", AUTH_SCOPE_NONE, h_status},
         {HTTP_GET, "/ok", AUTH_SCOPE_NONE, h_status}},
        {{HTTP_GET, "/v1//x", AUTH_SCOPE_NONE, h_status},
         {HTTP_GET, "/ok", AUTH_SCOPE_NONE, h_status}},
        {{HTTP_GET, "/v1/{", AUTH_SCOPE_NONE, h_status},
         {HTTP_GET, "/ok", AUTH_SCOPE_NONE, h_status}},
        {{HTTP_GET, "/v1/{}", AUTH_SCOPE_NONE, h_status},
         {HTTP_GET, "/ok", AUTH_SCOPE_NONE, h_status}},
        {{HTTP_GET, "/v1/a{b}", AUTH_SCOPE_NONE, h_status},
         {HTTP_GET, "/ok", AUTH_SCOPE_NONE, h_status}},
        {{HTTP_GET, "/{a}/{a}", AUTH_SCOPE_NONE, h_status},
         {HTTP_GET, "/ok", AUTH_SCOPE_NONE, h_status}},
        {{HTTP_GET, "/v1/x/", AUTH_SCOPE_NONE, h_status},
         {HTTP_GET, "/ok", AUTH_SCOPE_NONE, h_status}},
        {{HTTP_GET, "/ok", AUTH_SCOPE_NONE, NULL}, {HTTP_GET, "/ok2", AUTH_SCOPE_NONE, h_status}},
        {{HTTP_GET, "/v/{a}", AUTH_SCOPE_NONE, h_status},
         {HTTP_GET, "/v/{b}", AUTH_SCOPE_NONE, h_status}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        HttpServerConfig bc = {.routes = bad[i], .n_routes = 2, .name = "bad"};
        str_copy(bc.listen.host, sizeof(bc.listen.host), "127.0.0.1");
        err_clear(&err);
        if (http_server_start(h.base, &bc, &second, &err))
            fail_msg("route table %zu accepted", i);
        assert_int_equal(err.code, ERR_INTERNAL);
    }
    /* the same pattern with two methods is fine */
    static const HttpRoute fine[] = {{HTTP_GET, "/v/{a}", AUTH_SCOPE_NONE, h_status},
                                     {HTTP_PUT, "/v/{b}", AUTH_SCOPE_NONE, h_status}};
    HttpServerConfig fc = {.routes = fine, .n_routes = 2, .name = "fine"};
    str_copy(fc.listen.host, sizeof(fc.listen.host), "127.0.0.1");
    assert_true(http_server_start(h.base, &fc, &second, &err));
    assert_true(http_server_port(second) != 0);
    assert_true(http_server_port(second) != h.port);
    http_server_free(second);
    harness_stop(&h);
}

static void test_method_names(void **state)
{
    const char *want[HTTP_METHOD_COUNT] = {"GET", "PUT", "POST", "DELETE", "PATCH"};
    for (int m = 0; m < HTTP_METHOD_COUNT; m++)
        assert_string_equal(http_method_name((HttpMethod)m), want[m]);
    assert_string_equal(http_method_name(HTTP_METHOD_COUNT), "UNKNOWN");
}

/* ---- tests: hostile clients (raw bytes on real sockets) ---- */

/* raw_exchange: send bytes as they are on a fresh connection and read one response. */
static void raw_exchange(uint16_t port, const char *bytes, size_t len, Resp *r)
{
    Conn *c = malloc(sizeof(*c));
    memset(r, 0, sizeof(*r));
    r->status = -1;
    if (conn_open(c, port)) {
        if (!send_all(c->fd, bytes, len) || !conn_read_response(c, r, false))
            r->status = -1;
        close(c->fd);
    }
    free(c);
}

typedef struct RawCase {
    const char *head; /* after "POST /v1/json HTTP/1.1\r\nHost: x\r\n" */
    const char *rest; /* after the head's empty line */
    int status;
    const char *msg;
} RawCase;

static const RawCase RAW_CASES[] = {
    {"Content-Length: 18446744073709551616\r\n", "{}", 413, "over the limit of 1024 bytes"},
    {"Content-Length: 9223372036854775807\r\n", "{}", 413, "over the limit of 1024 bytes"},
    {"Content-Length: 20000000\r\n", "{}", 413, "over the limit of 1024 bytes"},
    {"Content-Length: +5\r\n", "[1,2]", 400, "invalid Content-Length"},
    {"Content-Length: -1\r\n", "", 400, "invalid Content-Length"},
    {"Content-Length: abc\r\n", "", 400, "invalid Content-Length"},
    {"Content-Length: 1, 2\r\n", "1", 400, "invalid Content-Length"},
    {"Transfer-Encoding: chunked\r\n", "zz\r\n", 400, "invalid chunk size"},
    {"Transfer-Encoding: chunked\r\n", "2\r\n[1,2]\r\n0\r\n\r\n", 400, "longer than"},
    {"Transfer-Encoding: gzip\r\n", "", 400, "Transfer-Encoding"},
    {"Expect: magic\r\nContent-Length: 2\r\n", "{}", 417, "Expect"},
    {"No colon here\r\n", "", 400, "malformed header line"},
};
#define N_RAW (sizeof(RAW_CASES) / sizeof(RAW_CASES[0]))

typedef struct Hostile {
    Resp r[N_RAW];
    Resp method, version, chunked_ok, big_head, keepalive;
} Hostile;

static void client_hostile(Harness *h, void *arg)
{
    Hostile *x = arg;
    for (size_t i = 0; i < N_RAW; i++) {
        char *req = str_dup_printf("POST /v1/json HTTP/1.1\r\nHost: x\r\n%s\r\n%s",
                                   RAW_CASES[i].head, RAW_CASES[i].rest);
        raw_exchange(h->port, req, strlen(req), &x->r[i]);
        free(req);
    }
    const char *brew = "BREW /v1/json HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_exchange(h->port, brew, strlen(brew), &x->method);
    const char *v2 = "GET /v1/echo/a/x/b HTTP/2.0\r\nHost: x\r\n\r\n";
    raw_exchange(h->port, v2, strlen(v2), &x->version);
    const char *chunked = "POST /v1/json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "4\r\n[1,2\r\n1\r\n]\r\n0\r\n\r\n";
    raw_exchange(h->port, chunked, strlen(chunked), &x->chunked_ok);
    /* a 70 KiB header: 431 as soon as the head passes 64 KiB */
    StrBuf b = STRBUF_INIT;
    strbuf_append_str(&b, "GET /v1/echo/a/x/b HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 70 * 1024; i++)
        strbuf_append(&b, "a", 1);
    strbuf_append_str(&b, "\r\n\r\n");
    raw_exchange(h->port, b.data, b.len, &x->big_head);
    strbuf_finish(&b);
    /* a good request, then a bad one pipelined on the same connection: the good one is answered
     * with Connection: close, the bad one is dropped */
    const char *two = "GET /v1/echo/a/x/b HTTP/1.1\r\nHost: x\r\n\r\n"
                      "POST /v1/json HTTP/1.1\r\nContent-Length: abc\r\n\r\n";
    raw_exchange(h->port, two, strlen(two), &x->keepalive);
}

static void assert_json_error(const Resp *r, int status, const char *msg)
{
    if (r->status != status)
        fail_msg("status %d, want %d (%s): '%s'", r->status, status, msg, r->body);
    assert_msg_contains(r, msg);
    char conn[32] = "";
    assert_true(header_value(r->headers, "Connection", conn, sizeof(conn)));
    assert_string_equal(conn, "close");
}

static void test_hostile_framing(void **state)
{
    MetricsRegistry *m = metrics_registry_new();
    Harness h;
    harness_start(&h, 1024, NULL, AUTH_POLICY_STORCON, m);
    Hostile *x = calloc(1, sizeof(*x));
    harness_run(&h, client_hostile, x);
    for (size_t i = 0; i < N_RAW; i++)
        assert_json_error(&x->r[i], RAW_CASES[i].status, RAW_CASES[i].msg);
    assert_json_error(&x->method, 501, "not implemented");
    assert_json_error(&x->version, 505, "not supported");
    assert_json_error(&x->big_head, 431, "over the limit of 65536 bytes");
    assert_int_equal(x->chunked_ok.status, 201);
    json_t *j = body_json(&x->chunked_ok);
    assert_int_equal(json_array_size(json_object_get(j, "got")), 2);
    json_decref(j);
    assert_int_equal(x->keepalive.status, 200);
    char conn[32] = "";
    assert_true(header_value(x->keepalive.headers, "Connection", conn, sizeof(conn)));
    assert_string_equal(conn, "close");
    char *text = metrics_render(m);
    if (strstr(text, "http_requests_total{route=\"unknown\",method=\"-\",status=\"413\"} 3") ==
        NULL)
        fail_msg("metrics lack the rejected requests:\n%s", text);
    free(text);
    assert_int_equal(http_server_inflight(h.srv), 0);
    free(x);
    harness_stop(&h);
    metrics_registry_free(m);
}

typedef struct Slow {
    Resp partial, trickle;
    double partial_ms, trickle_ms;
} Slow;

static void client_slow_headers(Harness *h, void *arg)
{
    Slow *s = arg;
    double t0 = now_ms();
    const char *part = "GET /v1/echo/a/x/b HTTP/1.1\r\nHost: x\r\n";
    raw_exchange(h->port, part, strlen(part), &s->partial);
    s->partial_ms = now_ms() - t0;
    /* one header line every 50 ms: each read is quick, the head never ends */
    Conn *c = malloc(sizeof(*c));
    s->trickle.status = -1;
    t0 = now_ms();
    if (conn_open(c, h->port)) {
        send_all(c->fd, part, strlen(part));
        for (int i = 0; i < 40; i++) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            if (send(c->fd, "X-A: b\r\n", 8, MSG_NOSIGNAL) <= 0)
                break;
            char peek;
            if (recv(c->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
                break; /* the answer is there */
        }
        if (!conn_read_response(c, &s->trickle, false))
            s->trickle.status = -1;
        close(c->fd);
    }
    s->trickle_ms = now_ms() - t0;
    free(c);
}

static void test_header_timeout(void **state)
{
    g_header_timeout_ms = 300;
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, NULL);
    Slow *s = calloc(1, sizeof(*s));
    harness_run(&h, client_slow_headers, s);
    assert_json_error(&s->partial, 408, "not received within 300 ms");
    assert_json_error(&s->trickle, 408, "not received within 300 ms");
    assert_true(s->partial_ms >= 250 && s->partial_ms < 1500);
    assert_true(s->trickle_ms >= 250 && s->trickle_ms < 1500);
    free(s);
    harness_stop(&h);
}

typedef struct Limit {
    Resp refused, after;
} Limit;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void client_limit(Harness *h, void *arg)
{
    Limit *l = arg;
    Conn *idle = calloc(3, sizeof(Conn));
    for (int i = 0; i < 3; i++)
        assert_true(conn_open(&idle[i], h->port));
    sleep_ms(200);
    raw_exchange(h->port, "GET /v1/echo/a/x/b HTTP/1.1\r\n\r\n", 31, &l->refused);
    close(idle[0].fd);
    sleep_ms(200);
    http_get(h->port, "/v1/echo/a/x/b", NULL, &l->after);
    close(idle[1].fd);
    close(idle[2].fd);
    free(idle);
    sleep_ms(100);
}

static void test_connection_limit(void **state)
{
    g_max_connections = 3;
    MetricsRegistry *m = metrics_registry_new();
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, m);
    Limit *l = calloc(1, sizeof(*l));
    harness_run(&h, client_limit, l);
    assert_json_error(&l->refused, 503, "too many open connections (limit 3)");
    assert_int_equal(l->after.status, 200);
    char *text = metrics_render(m);
    const char *want[] = {"http_connections_refused_total{server=\"test api\"} 1",
                          "http_open_connections{server=\"test api\"} 0"};
    for (size_t i = 0; i < 2; i++) {
        if (strstr(text, want[i]) == NULL)
            fail_msg("metrics lack '%s':\n%s", want[i], text);
    }
    free(text);
    free(l);
    harness_stop(&h);
    metrics_registry_free(m);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void client_one_get(Harness *h, void *arg)
{
    http_get(h->port, "/v1/echo/a/x/b", NULL, arg);
}

/* Out of file descriptors: accept() fails with EMFILE while clients wait in the backlog. The loop
 * must not spin (it used to: the listening socket stays readable), and serves again afterwards. */
static void test_accept_paused_when_out_of_fds(void **state)
{
    MetricsRegistry *m = metrics_registry_new();
    Harness h;
    harness_start(&h, 0, NULL, AUTH_POLICY_STORCON, m);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) { /* 40 idle clients for 2 s */
        int fds[40];
        for (int i = 0; i < 40; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(h.port)};
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0)
                _exit(1);
        }
        sleep_ms(2000);
        _exit(0);
    }
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0);
    assert_true(probe >= 0);
    close(probe);
    low.rlim_cur = (rlim_t)probe + 8; /* room for a few connections only */
    low.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    double cpu0 = cpu_seconds();
    struct timeval run = {1, 500000};
    event_base_loopexit(h.base, &run);
    event_base_dispatch(h.base);
    double cpu = cpu_seconds() - cpu0;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    int st = 0;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (cpu > 0.5)
        fail_msg("the loop used %.2f s of CPU in 1.5 s while out of file descriptors", cpu);
    Resp *r = calloc(1, sizeof(*r));
    harness_run(&h, client_one_get, r);
    assert_int_equal(r->status, 200);
    char *text = metrics_render(m);
    if (strstr(text, "http_accept_errors_total{server=\"test api\"} 0") != NULL)
        fail_msg("no accept error counted:\n%s", text);
    free(text);
    free(r);
    harness_stop(&h);
    metrics_registry_free(m);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Err err = {0};
    if (!log_init("test_http_server", LOG_WARN, NULL, &err))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_names),
        cmocka_unit_test(test_params_and_query),
        cmocka_unit_test(test_404_vs_405),
        cmocka_unit_test(test_body_limit_and_json),
        cmocka_unit_test(test_get_with_body_keep_alive),
        cmocka_unit_test(test_deferred_reply),
        cmocka_unit_test(test_client_disconnect_before_deferred_reply),
        cmocka_unit_test(test_free_answers_pending_503),
        cmocka_unit_test(test_stop_accepting),
        cmocka_unit_test(test_many_concurrent_requests),
        cmocka_unit_test(test_auth_off),
        cmocka_unit_test(test_auth_storcon_policy),
        cmocka_unit_test(test_auth_pageserver_policy),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_bind_in_use_and_bad_routes),
        cmocka_unit_test(test_hostile_framing),
        cmocka_unit_test(test_header_timeout),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_accept_paused_when_out_of_fds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
