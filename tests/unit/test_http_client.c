/*
 * test_http_client.c: unit tests for shared/http_client.c against a small evhttp test server
 * that runs in the same event loop as the client (port 0 on 127.0.0.1).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "tests/unit/loop_util.h"
#include "shared/err.h"
#include "shared/http_client.h"
#include "shared/metrics.h"
#include "shared/str.h"

/* ---- test server ---- */

#define MAX_SLOW 64
#define MAX_LIVE 1024

typedef struct Server Server;

typedef struct SlowReply {
    Server *srv;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *ev;
} SlowReply;

struct Server {
    struct event_base *base;
    struct evhttp *http;
    int port;
    char url[64]; /* "http://127.0.0.1:<port>" */
    int requests;
    int flaky_503_left; /* /flaky answers 503 while this is > 0 */
    long slow_ms;       /* /slow replies after this long */
    SlowReply *slow[MAX_SLOW];
    struct evhttp_connection *live[MAX_LIVE];
    int nlive, max_live;
    int accepted; /* connections seen in all */
};

static void slow_forget(Server *srv, int i)
{
    event_free(srv->slow[i]->ev);
    free(srv->slow[i]);
    srv->slow[i] = NULL;
}

/* conn_closed: the connection (and its requests) goes away; a delayed reply must not fire. */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    Server *srv = arg;
    for (int i = 0; i < MAX_SLOW; i++) {
        if (srv->slow[i] != NULL && srv->slow[i]->evcon == evcon)
            slow_forget(srv, i);
    }
    for (int i = 0; i < srv->nlive; i++) {
        if (srv->live[i] == evcon) {
            srv->live[i] = srv->live[--srv->nlive];
            break;
        }
    }
}

static void track_conn(Server *srv, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    for (int i = 0; i < srv->nlive; i++) {
        if (srv->live[i] == evcon)
            return;
    }
    assert_true(srv->nlive < MAX_LIVE);
    srv->live[srv->nlive++] = evcon;
    srv->accepted++;
    if (srv->nlive > srv->max_live)
        srv->max_live = srv->nlive;
    evhttp_connection_set_closecb(evcon, conn_closed, srv);
}

static void reply(struct evhttp_request *req, int code, const char *body)
{
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, "x", buf);
    evbuffer_free(buf);
}

static void reply_json(struct evhttp_request *req, int code, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    reply(req, code, s);
    free(s);
    json_decref(j);
}

static void slow_fire(evutil_socket_t fd, short what, void *arg)
{
    SlowReply *s = arg;
    Server *srv = s->srv;
    for (int i = 0; i < MAX_SLOW; i++) {
        if (srv->slow[i] == s) {
            struct evhttp_request *req = s->req;
            slow_forget(srv, i);
            reply(req, 200, "{\"slow\":true}");
            return;
        }
    }
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

static json_t *header_or_null(struct evhttp_request *req, const char *name)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    return v ? json_string(v) : json_null();
}

static void server_cb(struct evhttp_request *req, void *arg)
{
    Server *srv = arg;
    srv->requests++;
    track_conn(srv, req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (strcmp(path, "/echo") == 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        json_t *j = json_object();
        json_object_set_new(j, "method", json_string(method_name(evhttp_request_get_command(req))));
        json_object_set_new(j, "authorization", header_or_null(req, "Authorization"));
        json_object_set_new(j, "content_type", header_or_null(req, "Content-Type"));
        json_object_set_new(j, "accept", header_or_null(req, "Accept"));
        json_object_set_new(j, "expect", header_or_null(req, "Expect"));
        json_object_set_new(j, "body_len", json_integer((json_int_t)n));
        if (n < 65536)
            json_object_set_new(j, "body", json_stringn((const char *)evbuffer_pullup(in, -1), n));
        reply_json(req, 200, j);
    } else if (strcmp(path, "/notfound") == 0) {
        reply(req, 404, "{\"msg\":\"tenant 1f35 not found\"}");
    } else if (strcmp(path, "/text500") == 0) {
        char body[301];
        memset(body, 'x', 300);
        memcpy(body, "oops\n", 5);
        body[300] = '\0';
        reply(req, 500, body);
    } else if (strcmp(path, "/flaky") == 0) {
        if (srv->flaky_503_left > 0) {
            srv->flaky_503_left--;
            reply(req, 503, "{\"msg\":\"not ready\"}");
        } else {
            reply(req, 200, "{\"ok\":true}");
        }
    } else if (strcmp(path, "/always503") == 0) {
        reply(req, 503, "{\"msg\":\"shutting down\"}");
    } else if (strcmp(path, "/slow") == 0) {
        for (int i = 0; i < MAX_SLOW; i++) {
            if (srv->slow[i] == NULL) {
                SlowReply *s = calloc(1, sizeof(*s));
                s->srv = srv;
                s->req = req;
                s->evcon = evhttp_request_get_connection(req);
                s->ev = evtimer_new(srv->base, slow_fire, s);
                struct timeval tv = {srv->slow_ms / 1000, (srv->slow_ms % 1000) * 1000};
                evtimer_add(s->ev, &tv);
                srv->slow[i] = s;
                return;
            }
        }
        reply(req, 500, "{\"msg\":\"too many slow requests\"}");
    } else {
        reply(req, 404, "{\"msg\":\"no route\"}");
    }
}

static void server_start(Server *srv, struct event_base *base)
{
    memset(srv, 0, sizeof(*srv));
    srv->base = base;
    srv->http = evhttp_new(base);
    assert_non_null(srv->http);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                              EVHTTP_REQ_HEAD);
    evhttp_set_max_body_size(srv->http, 16 << 20);
    evhttp_set_gencb(srv->http, server_cb, srv);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(srv->http, "127.0.0.1", 0);
    assert_non_null(h);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&sa, &len), 0);
    srv->port = ntohs(sa.sin_port);
    assert_true(str_printf(srv->url, sizeof(srv->url), "http://127.0.0.1:%d", srv->port));
}

static void server_stop(Server *srv)
{
    for (int i = 0; i < MAX_SLOW; i++) {
        if (srv->slow[i] != NULL)
            slow_forget(srv, i);
    }
    evhttp_free(srv->http);
}

/* closed_port: a port nothing listens on (bound once, then released). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* ---- client side ---- */

typedef struct Fixture {
    struct event_base *base;
    Server srv;
    HttpClient *client;
    char url[256];
} Fixture;

typedef struct Result {
    int calls;
    int status;
    int attempts;
    Err err;         /* resp->err */
    Err derived;     /* http_response_err */
    char body[4096]; /* first bytes */
    size_t body_len;
    int64_t done_ms;
    Fixture *free_client_of; /* when set, the callback frees this fixture's client */
} Result;

static int g_done;      /* callbacks run so far in this test */
static bool g_in_start; /* set around http_client_start: callbacks must never run inside */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_done(const HttpClientResponse *resp, void *arg)
{
    Result *r = arg;
    assert_false(g_in_start);
    r->calls++;
    r->status = resp->status;
    r->attempts = resp->attempts;
    r->err = resp->err;
    r->body_len = resp->body_len;
    assert_non_null(resp->body);
    assert_int_equal(resp->body[resp->body_len], '\0');
    str_copy(r->body, sizeof(r->body), resp->body);
    http_response_err(resp, &r->derived);
    r->done_ms = now_ms();
    g_done++;
    if (r->free_client_of != NULL) {
        http_client_free(r->free_client_of->client);
        r->free_client_of->client = NULL;
    }
}

static bool run_until(Fixture *f, int target, long timeout_ms)
{
    return loop_run_until(f->base, &g_done, target, timeout_ms);
}

static void run_for(Fixture *f, long ms)
{
    loop_run_for(f->base, ms);
}

static HttpCall *start(Fixture *f, const HttpClientRequest *req, Result *r)
{
    g_in_start = true;
    HttpCall *call = http_client_start(f->client, req, on_done, r);
    g_in_start = false;
    assert_non_null(call);
    return call;
}

static const char *url(Fixture *f, const char *path)
{
    assert_true(str_printf(f->url, sizeof(f->url), "%s%s", f->srv.url, path));
    return f->url;
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    server_start(&f->srv, f->base);
    Err err;
    assert_true(http_client_new(f->base, &f->client, &err));
    g_done = 0;
    g_in_start = false;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    http_client_free(f->client);
    server_stop(&f->srv);
    event_base_free(f->base);
    free(f);
    return 0;
}

static json_t *body_json(const Result *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_get_with_bearer_token(void **state)
{
    Fixture *f = *state;
    Result r = {0};
    HttpClientRequest req = {.method = "GET", .url = url(f, "/echo"), .bearer_token = "tok123"};
    start(f, &req, &r);
    assert_int_equal(r.calls, 0);
    assert_int_equal(http_client_inflight(f->client), 1);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.derived.code, ERR_NONE);
    assert_int_equal(http_client_inflight(f->client), 0);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "authorization")), "Bearer tok123");
    assert_string_equal(json_string_value(json_object_get(j, "accept")), "application/json");
    assert_true(json_is_null(json_object_get(j, "expect")));
    assert_true(json_is_null(json_object_get(j, "content_type")));
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), 0);
    json_decref(j);
}

static void put_json_done(const HttpClientResponse *resp, void *arg)
{
    Result *r = arg;
    json_t *j = NULL;
    Err err;
    assert_true(http_response_json(resp, &j, &err));
    json_t *sent = json_loads(json_string_value(json_object_get(j, "body")), 0, NULL);
    assert_non_null(sent);
    assert_int_equal(json_integer_value(json_object_get(sent, "a")), 1);
    assert_string_equal(json_string_value(json_object_get(sent, "b")), "x");
    json_decref(sent);
    json_decref(j);
    on_done(resp, r);
}

static void test_put_json_body(void **state)
{
    Fixture *f = *state;
    Result r = {0};
    json_t *body = json_pack("{s:i, s:s}", "a", 1, "b", "x");
    char u[256];
    str_copy(u, sizeof(u), url(f, "/echo"));
    HttpRetryPolicy retry = {0};
    g_in_start = true;
    HttpCall *call =
        http_client_start_json(f->client, "PUT", u, body, "secret", 0, retry, put_json_done, &r);
    g_in_start = false;
    /* everything was copied: the caller's buffers may go away right after the start */
    json_decref(body);
    memset(u, 'z', sizeof(u) - 1);
    assert_non_null(call);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "PUT");
    assert_string_equal(json_string_value(json_object_get(j, "authorization")), "Bearer secret");
    assert_string_equal(json_string_value(json_object_get(j, "content_type")), "application/json");
    json_decref(j);
}

/* test_get_json_body: a GET with a JSON body (storcon's timeline_import_status upcall) stays a
 * GET and carries its body. */
static void test_get_json_body(void **state)
{
    Fixture *f = *state;
    Result r = {0};
    json_t *body = json_pack("{s:s}", "timeline_id", "x");
    HttpRetryPolicy retry = {0};
    HttpCall *call = http_client_start_json(f->client, "GET", url(f, "/echo"), body, NULL, 0, retry,
                                            on_done, &r);
    json_decref(body);
    assert_non_null(call);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "body")), "{\"timeline_id\":\"x\"}");
    json_decref(j);
}

static void test_large_body_without_expect(void **state)
{
    Fixture *f = *state;
    Result r = {0};
    size_t n = 2 << 20; /* curl would add "Expect: 100-continue" above 1 MiB */
    char *big = malloc(n);
    memset(big, 'a', n);
    HttpClientRequest req = {.method = "POST",
                             .url = url(f, "/echo"),
                             .body = big,
                             .body_len = n,
                             .content_type = "application/octet-stream"};
    start(f, &req, &r);
    free(big);
    assert_true(run_until(f, 1, 10000));
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_true(json_is_null(json_object_get(j, "expect")));
    assert_true(json_is_null(json_object_get(j, "authorization")));
    assert_string_equal(json_string_value(json_object_get(j, "content_type")),
                        "application/octet-stream");
    assert_int_equal(json_integer_value(json_object_get(j, "body_len")), (json_int_t)n);
    json_decref(j);
}

static void test_error_status_messages(void **state)
{
    Fixture *f = *state;
    static const struct {
        const char *path;
        int status;
        ErrCode code;
    } cases[] = {
        {"/notfound", 404, ERR_NOT_FOUND},
        {"/text500", 500, ERR_INTERNAL},
        {"/always503", 503, ERR_UNAVAILABLE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        g_done = 0;
        Result r = {0};
        char u[256];
        str_copy(u, sizeof(u), url(f, cases[i].path));
        HttpClientRequest req = {.method = "GET", .url = u}; /* a single attempt */
        start(f, &req, &r);
        assert_true(run_until(f, 1, 5000));
        assert_int_equal(r.status, cases[i].status);
        assert_int_equal(r.attempts, 1);
        assert_int_equal(r.err.code, ERR_NONE);
        assert_int_equal(r.derived.code, cases[i].code);
        char want[ERR_MSG_SIZE];
        if (cases[i].status == 404) {
            str_printf(want, sizeof(want), "GET %s: 404 tenant 1f35 not found", u);
        } else if (cases[i].status == 500) {
            /* no {"msg"}: the first 200 characters, newline flattened */
            char text[201];
            memset(text, 'x', 200);
            memcpy(text, "oops ", 5);
            text[200] = '\0';
            str_printf(want, sizeof(want), "GET %s: 500 %s", u, text);
        } else {
            str_printf(want, sizeof(want), "GET %s: 503 shutting down", u);
        }
        assert_string_equal(r.derived.msg, want);
    }
}

static void test_client_errors_not_retried(void **state)
{
    Fixture *f = *state;
    Result r = {0};
    HttpClientRequest req = {
        .method = "DELETE", .url = url(f, "/notfound"), .retry = {.max_attempts = 5, .base_ms = 1}};
    start(f, &req, &r);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.status, 404);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(f->srv.requests, 1);
}

static void test_per_attempt_timeout(void **state)
{
    Fixture *f = *state;
    f->srv.slow_ms = 3000;
    static const int attempts[] = {1, 2};
    for (size_t i = 0; i < 2; i++) {
        g_done = 0;
        f->srv.requests = 0;
        Result r = {0};
        HttpClientRequest req = {.method = "GET",
                                 .url = url(f, "/slow"),
                                 .timeout_ms = 100,
                                 .retry = {.max_attempts = attempts[i], .base_ms = 10}};
        int64_t t0 = now_ms();
        start(f, &req, &r);
        assert_true(run_until(f, 1, 5000));
        assert_int_equal(r.status, 0);
        assert_int_equal(r.attempts, attempts[i]);
        assert_int_equal(f->srv.requests, attempts[i]);
        assert_int_equal(r.err.code, ERR_TIMEOUT);
        assert_int_equal(r.derived.code, ERR_TIMEOUT);
        assert_non_null(strstr(r.err.msg, f->url));
        assert_true(r.done_ms - t0 >= 100L * attempts[i]);
        assert_true(r.done_ms - t0 < 1500);
    }
    /* a reply within the timeout is fine */
    g_done = 0;
    f->srv.slow_ms = 50;
    Result r = {0};
    HttpClientRequest req = {.method = "GET", .url = url(f, "/slow"), .timeout_ms = 2000};
    start(f, &req, &r);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"slow\":true}");
}

static void test_503_twice_then_success(void **state)
{
    Fixture *f = *state;
    f->srv.flaky_503_left = 2;
    Result r = {0};
    HttpClientRequest req = {.method = "PUT",
                             .url = url(f, "/flaky"),
                             .body = "{}",
                             .body_len = 2,
                             .retry = {.max_attempts = 5, .base_ms = 10, .max_ms = 20}};
    start(f, &req, &r);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(f->srv.requests, 3);
    assert_string_equal(r.body, "{\"ok\":true}");
}

static void test_503_until_attempts_run_out(void **state)
{
    Fixture *f = *state;
    Result r = {0};
    HttpClientRequest req = {.method = "GET",
                             .url = url(f, "/always503"),
                             .retry = {.max_attempts = 3, .base_ms = 5, .max_ms = 10}};
    start(f, &req, &r);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(f->srv.requests, 3);
    assert_int_equal(r.derived.code, ERR_UNAVAILABLE);
}

static void test_connection_refused(void **state)
{
    Fixture *f = *state;
    char u[128];
    assert_true(str_printf(u, sizeof(u), "http://127.0.0.1:%d/x", closed_port()));
    Result r = {0};
    HttpClientRequest req = {
        .method = "GET", .url = u, .retry = {.max_attempts = 3, .base_ms = 10, .max_ms = 50}};
    start(f, &req, &r);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(r.err.msg, u));
    assert_non_null(strstr(r.err.msg, "after 3 attempts"));
    assert_int_equal(r.derived.code, ERR_UNAVAILABLE);
    assert_string_equal(r.derived.msg, r.err.msg);
}

static void test_deadline_caps_retries(void **state)
{
    Fixture *f = *state;
    /* a per-attempt timeout longer than the deadline is cut to the deadline */
    f->srv.slow_ms = 5000;
    Result r = {0};
    HttpClientRequest req = {
        .method = "GET",
        .url = url(f, "/slow"),
        .timeout_ms = 10000,
        .retry = {.max_attempts = 10, .base_ms = 10, .deadline_ms = 300},
    };
    int64_t t0 = now_ms();
    start(f, &req, &r);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.err.code, ERR_TIMEOUT);
    assert_int_equal(r.attempts, 1);
    assert_true(r.done_ms - t0 >= 250);
    assert_true(r.done_ms - t0 < 1000);

    /* fast failures stop retrying once the next backoff would end after the deadline */
    g_done = 0;
    char u[128];
    assert_true(str_printf(u, sizeof(u), "http://127.0.0.1:%d/x", closed_port()));
    Result r2 = {0};
    HttpClientRequest req2 = {
        .method = "GET",
        .url = u,
        .retry = {.max_attempts = 1000, .base_ms = 40, .max_ms = 40, .deadline_ms = 300},
    };
    t0 = now_ms();
    start(f, &req2, &r2);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(r2.status, 0);
    assert_int_equal(r2.err.code, ERR_UNAVAILABLE);
    assert_true(r2.attempts > 1);
    assert_true(r2.attempts < 1000);
    assert_true(r2.done_ms - t0 <= 400);
}

static void test_cancel_before_completion(void **state)
{
    Fixture *f = *state;
    f->srv.slow_ms = 100;
    Result r1 = {0}, r2 = {0}, r3 = {0};
    HttpClientRequest slow = {.method = "GET", .url = url(f, "/slow")};
    HttpCall *c1 = start(f, &slow, &r1);
    HttpClientRequest flaky = {.method = "GET",
                               .url = url(f, "/always503"),
                               .retry = {.max_attempts = 5, .base_ms = 2000, .max_ms = 2000}};
    HttpCall *c2 = start(f, &flaky, &r2);
    HttpClientRequest bad = {.method = "GET", .url = "ftp://127.0.0.1/x"};
    HttpCall *c3 = start(f, &bad, &r3); /* fails; the failure is waiting to be delivered */
    assert_int_equal(http_client_inflight(f->client), 3);
    http_call_cancel(c1);
    http_call_cancel(c3);
    assert_int_equal(http_client_inflight(f->client), 1);
    /* let the 503 call reach its backoff wait, then cancel it there */
    for (int i = 0; i < 100 && f->srv.requests < 1; i++)
        run_for(f, 10);
    run_for(f, 50);
    assert_int_equal(http_client_inflight(f->client), 1);
    http_call_cancel(c2);
    assert_int_equal(http_client_inflight(f->client), 0);
    run_for(f, 300);
    assert_int_equal(g_done, 0);
    assert_int_equal(r1.calls + r2.calls + r3.calls, 0);
}

static void test_free_with_calls_in_flight(void **state)
{
    Fixture *f = *state;
    f->srv.slow_ms = 200;
    static Result rs[30];
    memset(rs, 0, sizeof(rs));
    char refused[128];
    assert_true(str_printf(refused, sizeof(refused), "http://127.0.0.1:%d/", closed_port()));
    for (int i = 0; i < 20; i++) {
        HttpClientRequest req = {.method = "GET", .url = url(f, "/slow")};
        if (i % 2 == 1) {
            req.url = refused;
            req.retry.max_attempts = 10;
            req.retry.base_ms = 20;
        }
        start(f, &req, &rs[i]);
    }
    run_for(f, 30); /* slow calls are waiting for replies, refused ones in backoff */
    assert_true(f->srv.requests > 0);
    for (int i = 20; i < 30; i++) { /* failed, waiting to be delivered */
        HttpClientRequest req = {.method = "GET", .url = "", .bearer_token = "t"};
        start(f, &req, &rs[i]);
    }
    assert_int_equal(http_client_inflight(f->client), 30);
    http_client_free(f->client);
    f->client = NULL;
    run_for(f, 400);
    assert_int_equal(g_done, 0);
}

static void test_callback_may_free_client(void **state)
{
    Fixture *f = *state;
    f->srv.slow_ms = 100;
    Result first = {.free_client_of = f};
    Result others[5] = {0};
    HttpClientRequest fast = {.method = "GET", .url = url(f, "/echo")};
    start(f, &fast, &first);
    for (int i = 0; i < 5; i++) {
        HttpClientRequest slow = {.method = "GET", .url = url(f, "/slow")};
        start(f, &slow, &others[i]);
    }
    assert_true(run_until(f, 1, 5000));
    assert_null(f->client);
    run_for(f, 300);
    assert_int_equal(g_done, 1);
    assert_int_equal(first.status, 200);
}

static void test_failures_are_asynchronous(void **state)
{
    Fixture *f = *state;
    static const struct {
        const char *url;
        const char *token;
        ErrCode code;
        int attempts;
    } cases[] = {
        {"ftp://127.0.0.1/x", NULL, ERR_UNAVAILABLE, 1}, /* protocol not allowed, not retried */
        {"", NULL, ERR_INTERNAL, 0},                     /* no URL: nothing attempted */
        {NULL, "a\r\nInjected: yes", ERR_INTERNAL, 0},   /* header injection refused */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        g_done = 0;
        Result r = {0};
        HttpClientRequest req = {.method = "GET",
                                 .url = cases[i].url ? cases[i].url : url(f, "/echo"),
                                 .bearer_token = cases[i].token,
                                 .retry = {.max_attempts = 3, .base_ms = 1}};
        start(f, &req, &r);
        assert_int_equal(r.calls, 0);
        assert_true(run_until(f, 1, 5000));
        assert_int_equal(r.calls, 1);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.attempts, cases[i].attempts);
        assert_int_equal(r.err.code, cases[i].code);
    }
    assert_int_equal(f->srv.requests, 0);
}

static void test_many_concurrent_calls(void **state)
{
    Fixture *f = *state;
    enum { N = 500 };
    static Result rs[N];
    memset(rs, 0, sizeof(rs));
    for (int i = 0; i < N; i++) {
        HttpClientRequest req = {.method = "GET", .url = url(f, "/echo")};
        start(f, &req, &rs[i]);
    }
    assert_int_equal(http_client_inflight(f->client), N);
    assert_true(run_until(f, N, 30000));
    for (int i = 0; i < N; i++) {
        assert_int_equal(rs[i].calls, 1);
        assert_int_equal(rs[i].status, 200);
    }
    assert_int_equal(http_client_inflight(f->client), 0);
    assert_int_equal(f->srv.requests, N);
    /* calls to one host queue behind a bounded number of reused connections */
    assert_true(f->srv.max_live >= 1);
    assert_true(f->srv.max_live <= 16);
}

/* Connection reuse: sequential calls, then bursts of concurrent ones with idle time between them,
 * to one server open at most the pool size of connections, counted by the client
 * (http_client_connections_opened and its metric) as by the server. */
static void test_connections_reused(void **state)
{
    Fixture *f = *state;
    enum { POOL = 4, N = 200, WAVES = 3 };
    http_client_free(f->client);
    MetricsRegistry *reg = metrics_registry_new();
    HttpClientOptions opts = {.max_host_connections = POOL, .metrics = reg, .metric_prefix = "t"};
    Err err;
    assert_true(http_client_new_with(f->base, &opts, &f->client, &err));
    static Result rs[N];
    int done = 0;
    for (int i = 0; i < N; i++) { /* one after the other */
        memset(&rs[0], 0, sizeof(rs[0]));
        HttpClientRequest req = {.method = "GET", .url = url(f, "/echo")};
        start(f, &req, &rs[0]);
        assert_true(run_until(f, ++done, 10000));
        assert_int_equal(rs[0].status, 200);
    }
    assert_int_equal(http_client_connections_opened(f->client), 1);
    for (int w = 0; w < WAVES; w++) { /* bursts, idle in between */
        memset(rs, 0, sizeof(rs));
        for (int i = 0; i < N; i++) {
            HttpClientRequest req = {
                .method = "PUT", .url = url(f, "/echo"), .body = "{}", .body_len = 2};
            start(f, &req, &rs[i]);
        }
        done += N;
        assert_true(run_until(f, done, 30000));
        for (int i = 0; i < N; i++)
            assert_int_equal(rs[i].status, 200);
        run_for(f, 50);
    }
    uint64_t opened = http_client_connections_opened(f->client);
    assert_true(opened >= 1 && opened <= POOL);
    assert_true(f->srv.accepted <= POOL);
    assert_int_equal((uint64_t)f->srv.accepted, opened);
    assert_int_equal(metric_counter_get(
                         metrics_counter(reg, "t_http_client_connections_opened_total", "", NULL)),
                     opened);
    http_client_free(f->client);
    f->client = NULL;
    metrics_registry_free(reg);
}

static void test_backoff_bounds(void **state)
{
    static const struct {
        long base, max;
        long caps[6]; /* upper bound for attempts 1..6 */
    } cases[] = {
        {100, 10000, {100, 200, 400, 800, 1600, 3200}},
        {0, 0, {100, 200, 400, 800, 1600, 3200}}, /* defaults */
        {50, 120, {50, 100, 120, 120, 120, 120}},
        {500, 100, {100, 100, 100, 100, 100, 100}}, /* base above the cap */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double prev_mean = -1;
        for (int a = 1; a <= 6; a++) {
            long hi = 0;
            double sum = 0;
            for (int k = 0; k < 2000; k++) {
                long d = backoff_delay_ms(a, cases[c].base, cases[c].max);
                assert_true(d >= 0);
                assert_true(d <= cases[c].caps[a - 1]);
                hi = d > hi ? d : hi;
                sum += (double)d;
            }
            double mean = sum / 2000;
            /* full jitter: samples spread over the whole range */
            assert_true(hi >= cases[c].caps[a - 1] * 9 / 10);
            assert_true(mean > cases[c].caps[a - 1] * 0.4 && mean < cases[c].caps[a - 1] * 0.6);
            if (a > 1 && cases[c].caps[a - 1] > cases[c].caps[a - 2])
                assert_true(mean > prev_mean);
            prev_mean = mean;
        }
    }
    /* huge attempt numbers neither overflow nor exceed the cap */
    static const int big[] = {31, 64, 1000, 2147483647};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        long d = backoff_delay_ms(big[i], 100, 10000);
        assert_true(d >= 0 && d <= 10000);
    }
    assert_true(backoff_delay_ms(0, 100, 1000) <= 100);
}

static void test_response_helpers_without_context(void **state)
{
    /* a hand-built response (as a fake in another module's test would make) */
    HttpClientResponse resp = {.status = 409, .body = "{\"msg\":\"busy\"}", .body_len = 14};
    Err err;
    http_response_err(&resp, &err);
    assert_int_equal(err.code, ERR_CONFLICT);
    assert_string_equal(err.msg, "409 busy");

    resp.status = 429;
    resp.body = "";
    resp.body_len = 0;
    http_response_err(&resp, &err);
    assert_int_equal(err.code, ERR_TOO_MANY_REQUESTS);
    assert_string_equal(err.msg, "429");

    resp.status = 204;
    http_response_err(&resp, &err);
    assert_int_equal(err.code, ERR_NONE);

    resp.status = 0;
    http_response_err(&resp, &err);
    assert_int_equal(err.code, ERR_UNAVAILABLE);

    json_t *j = (json_t *)&j;
    assert_false(http_response_json(&resp, &j, &err)); /* transport error */
    assert_null(j);
    resp.status = 200;
    resp.body = "{\"a\":";
    resp.body_len = 5;
    assert_false(http_response_json(&resp, &j, &err));
    assert_int_equal(err.code, ERR_INTERNAL);
    resp.body = "[1,2]";
    assert_true(http_response_json(&resp, &j, &err));
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_with_bearer_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_json_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_json_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_body_without_expect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_status_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_errors_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_attempt_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_twice_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_until_attempts_run_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_caps_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_calls_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_may_free_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_are_asynchronous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections_reused, setup, teardown),
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_response_helpers_without_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
