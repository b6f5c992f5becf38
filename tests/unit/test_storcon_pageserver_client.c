/*
 * test_storcon_pageserver_client.c: unit tests for storcon/pageserver_client.c against a fake
 * pageserver: a small evhttp server in the test's own event loop that records the last request
 * and answers what the test set (status and body), optionally after a delay or with a number of
 * 503s first.
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
#include "shared/id.h"
#include "shared/log.h"
#include "shared/str.h"
#include "storcon/pageserver_client.h"

#define TENANT "1f359dd625e519a1a4e8d7509690f6fc"
#define TSID   TENANT "-0104"
#define TL     "0badc0de0badc0de0badc0de0badc0de"

/* ---- fake pageserver ---- */

typedef struct Ps Ps;

typedef struct Pending {
    Ps *ps;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *ev;
} Pending;

struct Ps {
    struct event_base *base;
    struct evhttp *http;
    char url[64];
    int requests;
    /* the reply */
    int status;
    char body[4096];
    int flaky_503_left;
    long delay_ms;
    Pending *pending[16];
    /* the last request */
    char method[16];
    char path[512];
    char query[512];
    char auth[256];
    char req_body[4096];
};

static void ps_reply(Ps *ps, struct evhttp_request *req)
{
    struct evbuffer *buf = evbuffer_new();
    int status = ps->status;
    const char *body = ps->body;
    if (ps->flaky_503_left > 0) {
        ps->flaky_503_left--;
        status = 503;
        body = "{\"msg\":\"shutting down\"}";
    }
    evbuffer_add(buf, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, status, "x", buf);
    evbuffer_free(buf);
}

static void pending_forget(Ps *ps, int i)
{
    event_free(ps->pending[i]->ev);
    free(ps->pending[i]);
    ps->pending[i] = NULL;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    Ps *ps = arg;
    for (int i = 0; i < 16; i++) {
        if (ps->pending[i] != NULL && ps->pending[i]->evcon == evcon)
            pending_forget(ps, i);
    }
}

static void pending_fire(evutil_socket_t fd, short what, void *arg)
{
    Pending *p = arg;
    Ps *ps = p->ps;
    for (int i = 0; i < 16; i++) {
        if (ps->pending[i] == p) {
            struct evhttp_request *req = p->req;
            pending_forget(ps, i);
            ps_reply(ps, req);
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
    default:
        return "OTHER";
    }
}

static void ps_cb(struct evhttp_request *req, void *arg)
{
    Ps *ps = arg;
    ps->requests++;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    str_copy(ps->method, sizeof(ps->method), method_name(evhttp_request_get_command(req)));
    str_copy(ps->path, sizeof(ps->path), evhttp_uri_get_path(uri));
    const char *q = evhttp_uri_get_query(uri);
    str_copy(ps->query, sizeof(ps->query), q ? q : "");
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    str_copy(ps->auth, sizeof(ps->auth), auth ? auth : "");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    assert_true(n < sizeof(ps->req_body));
    evbuffer_copyout(in, ps->req_body, n);
    ps->req_body[n] = '\0';
    if (ps->delay_ms == 0) {
        ps_reply(ps, req);
        return;
    }
    for (int i = 0; i < 16; i++) {
        if (ps->pending[i] == NULL) {
            Pending *p = calloc(1, sizeof(*p));
            p->ps = ps;
            p->req = req;
            p->evcon = evhttp_request_get_connection(req);
            evhttp_connection_set_closecb(p->evcon, conn_closed, ps);
            p->ev = evtimer_new(ps->base, pending_fire, p);
            struct timeval tv = {ps->delay_ms / 1000, (ps->delay_ms % 1000) * 1000};
            evtimer_add(p->ev, &tv);
            ps->pending[i] = p;
            return;
        }
    }
    fail_msg("too many delayed replies");
}

static void ps_start(Ps *ps, struct event_base *base)
{
    memset(ps, 0, sizeof(*ps));
    ps->base = base;
    ps->status = 200;
    str_copy(ps->body, sizeof(ps->body), "{}");
    ps->http = evhttp_new(base);
    assert_non_null(ps->http);
    evhttp_set_allowed_methods(ps->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
                                             EVHTTP_REQ_DELETE);
    evhttp_set_gencb(ps->http, ps_cb, ps);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(ps->http, "127.0.0.1", 0);
    assert_non_null(h);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&sa, &len), 0);
    assert_true(str_printf(ps->url, sizeof(ps->url), "http://127.0.0.1:%d", ntohs(sa.sin_port)));
}

static void ps_stop(Ps *ps)
{
    for (int i = 0; i < 16; i++) {
        if (ps->pending[i] != NULL)
            pending_forget(ps, i);
    }
    evhttp_free(ps->http);
}

static void ps_set(Ps *ps, int status, const char *body)
{
    ps->status = status;
    assert_true(str_copy(ps->body, sizeof(ps->body), body));
}

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

/* ---- fixture and capture ---- */

typedef struct Fixture {
    struct event_base *base;
    Ps ps;
    HttpClient *http;
    PageserverClient *pc;
    PageserverTarget t;
    char base_url[80];
} Fixture;

/* Cap: what a callback saw, copied (results are borrowed). */
typedef struct Cap {
    int calls;
    int seq; /* g_done when it ran: the order of the callbacks */
    PageserverOp op;
    bool ok;
    int status;
    int attempts;
    Err err;
    char tsid[TSID_STR_SIZE];
    /* typed parts, rendered as text for easy comparison */
    char text[4096];
    size_t n;
    PageserverTimelineDelete del;
    PageserverUtilization util;
    bool flag; /* location_get.absent, secondary complete, wait_lsn reached, has_stripe_size */
    PageserverSecondaryProgress progress;
    uint32_t stripe;
} Cap;

static int g_done;
static bool g_in_start;

static void append(Cap *c, const char *s)
{
    size_t len = strlen(c->text);
    assert_true(str_copy(c->text + len, sizeof(c->text) - len, s));
}

static void dump_into(Cap *c, const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    append(c, s);
    free(s);
}

static void on_done(const PageserverResult *r, void *arg)
{
    Cap *c = arg;
    assert_false(g_in_start);
    c->calls++;
    c->op = r->op;
    c->ok = r->ok;
    c->status = r->status;
    c->attempts = r->attempts;
    c->err = r->err;
    tsid_format(&r->tsid, c->tsid);
    c->text[0] = '\0';
    g_done++;
    c->seq = g_done;
    if (!r->ok)
        return;
    char buf[128];
    switch (r->op) {
    case PAGESERVER_OP_LOCATION_CONFIG_PUT:
        c->n = r->location_put.n_shards;
        c->flag = r->location_put.has_stripe_size;
        c->stripe = r->location_put.stripe_size;
        for (size_t i = 0; i < c->n; i++) {
            char id[TSID_STR_SIZE];
            tsid_format(&r->location_put.shards[i].shard_id, id);
            assert_true(str_printf(buf, sizeof(buf), "%s@%llu;", id,
                                   (unsigned long long)r->location_put.shards[i].node_id));
            append(c, buf);
        }
        break;
    case PAGESERVER_OP_LOCATION_CONFIG_GET:
        c->flag = r->location_get.absent;
        if (!c->flag)
            dump_into(c, r->location_get.config);
        else
            assert_null(r->location_get.config);
        break;
    case PAGESERVER_OP_LOCATION_CONFIG_LIST:
        c->n = r->location_list.n_locations;
        for (size_t i = 0; i < c->n; i++) {
            char id[TSID_STR_SIZE];
            tsid_format(&r->location_list.locations[i].tsid, id);
            append(c, id);
            append(c, "=");
            const ObservedState *o = &r->location_list.locations[i].observed;
            if (o->known) {
                assert_true(str_printf(buf, sizeof(buf), "%s:%lld",
                                       shard_location_mode_name(o->mode),
                                       (long long)o->generation));
                append(c, buf);
            } else {
                append(c, "unknown");
            }
            append(c, ";");
        }
        break;
    case PAGESERVER_OP_TIMELINE_CREATE:
    case PAGESERVER_OP_ACTIVATE_POST_IMPORT:
        dump_into(c, r->timeline_info);
        break;
    case PAGESERVER_OP_TIMELINE_DELETE:
        c->del = r->timeline_delete;
        break;
    case PAGESERVER_OP_UTILIZATION:
        c->util = r->utilization;
        break;
    case PAGESERVER_OP_SECONDARY_DOWNLOAD:
        c->flag = r->secondary_download.complete;
        c->progress = r->secondary_download.progress;
        break;
    case PAGESERVER_OP_WAIT_LSN:
        c->flag = r->wait_lsn.reached;
        break;
    case PAGESERVER_OP_SHARD_SPLIT:
        c->n = r->split.n_children;
        for (size_t i = 0; i < c->n; i++) {
            char id[TSID_STR_SIZE];
            tsid_format(&r->split.children[i], id);
            append(c, id);
            append(c, ";");
        }
        break;
    case PAGESERVER_OP_PASSTHROUGH_GET:
        assert_int_equal(r->passthrough.body[r->passthrough.body_len], '\0');
        append(c, r->passthrough.body);
        c->n = r->passthrough.body_len;
        break;
    case PAGESERVER_OP_TENANT_DELETE:
    case PAGESERVER_OP_COUNT:
        break;
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

/* wait1: run until one more callback ran. */
static void wait1(Fixture *f)
{
    int target = g_done + 1;
    assert_true(run_until(f, target, 5000));
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    ps_start(&f->ps, f->base);
    Err err;
    assert_true(http_client_new(f->base, &f->http, &err));
    f->pc = pageserver_client_new(f->base, f->http);
    assert_true(str_printf(f->base_url, sizeof(f->base_url), "%s/", f->ps.url));
    f->t = (PageserverTarget){.base_url = f->base_url, .token = "tok", .timeout_ms = 2000};
    g_done = 0;
    g_in_start = false;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    pageserver_client_free(f->pc);
    http_client_free(f->http);
    ps_stop(&f->ps);
    event_base_free(f->base);
    free(f);
    return 0;
}

static TenantShardId tsid_of(const char *s)
{
    TenantShardId id;
    Err err;
    assert_true(tsid_parse(s, &id, &err));
    return id;
}

static TimelineId tl_of(const char *s)
{
    TimelineId id;
    Err err;
    assert_true(timeline_id_parse(s, &id, &err));
    return id;
}

#define START(expr)                                                                                \
    do {                                                                                           \
        g_in_start = true;                                                                         \
        assert_non_null(expr);                                                                     \
        g_in_start = false;                                                                        \
    } while (0)

/* ---- tests ---- */

static void test_location_config_put(void **state)
{
    Fixture *f = *state;
    TenantShardId id = tsid_of(TSID);
    json_t *cfg = json_pack("{s:s,s:i,s:n,s:i,s:i,s:i,s:{}}", "mode", "AttachedSingle",
                            "generation", 5, "secondary_conf", "shard_number", 1, "shard_count", 4,
                            "shard_stripe_size", 2048, "tenant_conf");
    char *cfg_text = json_dumps(cfg, JSON_COMPACT);

    static const struct {
        long flush_ms;
        bool lazy;
        const char *query;
        const char *reply;
        bool has_stripe;
    } cases[] = {
        {5000, true, "flush_ms=5000&lazy=true",
         "{\"shards\":[{\"shard_id\":\"" TSID "\",\"node_id\":3}],\"stripe_size\":2048}", true},
        {0, false, "",
         "{\"shards\":[{\"shard_id\":\"" TSID "\",\"node_id\":3}],\"stripe_size\":null}", false},
        {0, true, "lazy=true", "{\"shards\":[{\"shard_id\":\"" TSID "\",\"node_id\":3}]}", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ps_set(&f->ps, 200, cases[i].reply);
        Cap c = {0};
        START(pageserver_client_location_config_put(f->pc, &f->t, &id, cfg, cases[i].flush_ms,
                                                    cases[i].lazy, on_done, &c));
        assert_int_equal(c.calls, 0);
        wait1(f);
        assert_true(c.ok);
        assert_int_equal(c.op, PAGESERVER_OP_LOCATION_CONFIG_PUT);
        assert_string_equal(c.tsid, TSID);
        assert_int_equal(c.status, 200);
        assert_string_equal(f->ps.method, "PUT");
        assert_string_equal(f->ps.path, "/v1/tenant/" TSID "/location_config");
        assert_string_equal(f->ps.query, cases[i].query);
        assert_string_equal(f->ps.auth, "Bearer tok");
        assert_string_equal(f->ps.req_body, cfg_text);
        assert_int_equal(c.n, 1);
        assert_string_equal(c.text, TSID "@3;");
        assert_int_equal(c.flag, cases[i].has_stripe);
        if (cases[i].has_stripe)
            assert_int_equal(c.stripe, 2048);
    }

    /* errors: the pageserver's status and message; an undecodable 200 is internal */
    static const struct {
        int status;
        const char *reply;
        ErrCode code;
        const char *msg_part;
    } errs[] = {
        {409, "{\"msg\":\"slot busy\"}", ERR_CONFLICT, "409 slot busy"},
        {400, "{\"msg\":\"generation 4 is lower than 5\"}", ERR_BAD_REQUEST, "lower than 5"},
        {200, "{\"shards\":\"x\"}", ERR_INTERNAL, "\"shards\" is not an array"},
        {200, "{\"shards\":[{\"shard_id\":\"zz\",\"node_id\":3}]}", ERR_INTERNAL, "shards[0]: "},
        {200, "[1]", ERR_INTERNAL, "not a JSON object"},
        {200, "{\"shards\":[],\"stripe_size\":\"x\"}", ERR_INTERNAL, "stripe_size"},
    };
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        ps_set(&f->ps, errs[i].status, errs[i].reply);
        Cap c = {0};
        START(pageserver_client_location_config_put(f->pc, &f->t, &id, cfg, 0, false, on_done, &c));
        wait1(f);
        assert_false(c.ok);
        assert_int_equal(c.status, errs[i].status);
        assert_int_equal(c.err.code, errs[i].code);
        assert_non_null(strstr(c.err.msg, errs[i].msg_part));
        assert_non_null(strstr(c.err.msg, "/location_config"));
    }
    free(cfg_text);
    json_decref(cfg);
}

static void test_location_config_get(void **state)
{
    Fixture *f = *state;
    TenantShardId id = tsid_of(TENANT); /* unsharded: the bare tenant id */
    ps_set(&f->ps, 200, "{\"mode\":\"Secondary\",\"generation\":null}");
    Cap c = {0};
    START(pageserver_client_location_config_get(f->pc, &f->t, &id, on_done, &c));
    wait1(f);
    assert_true(c.ok);
    assert_false(c.flag);
    assert_string_equal(c.text, "{\"mode\":\"Secondary\",\"generation\":null}");
    assert_string_equal(f->ps.method, "GET");
    assert_string_equal(f->ps.path, "/v1/location_config/" TENANT);

    /* 404 is a result: absent */
    ps_set(&f->ps, 404, "{\"msg\":\"not found\"}");
    Cap c2 = {0};
    START(pageserver_client_location_config_get(f->pc, &f->t, &id, on_done, &c2));
    wait1(f);
    assert_true(c2.ok);
    assert_true(c2.flag);
    assert_int_equal(c2.status, 404);
    assert_int_equal(c2.err.code, ERR_NONE);

    ps_set(&f->ps, 500, "{\"msg\":\"boom\"}");
    Cap c3 = {0};
    START(pageserver_client_location_config_get(f->pc, &f->t, &id, on_done, &c3));
    wait1(f);
    assert_false(c3.ok);
    assert_int_equal(c3.err.code, ERR_INTERNAL);
    assert_non_null(strstr(c3.err.msg, "500 boom"));
}

static void location_config_list_checks(Fixture *f)
{
    ps_set(&f->ps, 200,
           "{\"tenant_shards\":[[\"" TSID "\",{\"mode\":\"AttachedSingle\",\"generation\":3}],"
           "[\"" TENANT "\",null]]}");
    Cap c = {0};
    START(pageserver_client_location_config_list(f->pc, &f->t, on_done, &c));
    wait1(f);
    assert_true(c.ok);
    assert_string_equal(f->ps.path, "/v1/location_config");
    assert_int_equal(c.n, 2);
    assert_string_equal(c.text, TSID "=AttachedSingle:3;" TENANT "=unknown;");

    static const char *const bad[] = {
        "{\"tenant_shards\":{}}",
        "{\"tenant_shards\":[[\"" TSID "\"]]}",
        "{\"tenant_shards\":[[\"" TSID "\",3]]}",
        "{\"tenant_shards\":[[\"nope\",null]]}",
        "{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ps_set(&f->ps, 200, bad[i]);
        Cap e = {0};
        START(pageserver_client_location_config_list(f->pc, &f->t, on_done, &e));
        wait1(f);
        assert_false(e.ok);
        assert_int_equal(e.err.code, ERR_INTERNAL);
    }

    ps_set(&f->ps, 200, "{\"tenant_shards\":[]}");
    Cap c3 = {0};
    START(pageserver_client_location_config_list(f->pc, &f->t, on_done, &c3));
    wait1(f);
    assert_true(c3.ok);
    assert_int_equal(c3.n, 0);
}

static void test_location_config_list(void **state)
{
    location_config_list_checks(*state);
}

/* The same answers scanned on a worker pool (storcon's startup path); a call cancelled while its
 * answer is scanned never calls back, and its scan ends with the pool. */
static void test_location_config_list_workers(void **state)
{
    Fixture *f = *state;
    WorkerPool *pool = NULL;
    Err err;
    WorkerPoolConfig wc = {.threads = 2};
    assert_true(worker_pool_new_config(f->base, &wc, &pool, &err));
    pageserver_client_set_workers(f->pc, pool);
    location_config_list_checks(f);

    ps_set(&f->ps, 200, "{\"tenant_shards\":[[\"" TSID "\",null]]}");
    Cap c = {0};
    int before = f->ps.requests;
    PageserverCall *call = pageserver_client_location_config_list(f->pc, &f->t, on_done, &c);
    assert_non_null(call);
    /* run the loop until the request was answered (the scan may or may not have started) */
    for (int i = 0; i < 200 && f->ps.requests == before; i++)
        event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    pageserver_call_cancel(call);
    pageserver_client_set_workers(f->pc, NULL);
    worker_pool_free(pool);
    assert_int_equal(c.calls, 0);
}

static void test_timeline_delete_outcomes(void **state)
{
    Fixture *f = *state;
    static const struct {
        int status;
        bool ok;
        PageserverTimelineDelete outcome;
        ErrCode code;
    } cases[] = {
        {202, true, PAGESERVER_TIMELINE_DELETE_STARTED, ERR_NONE},
        {200, true, PAGESERVER_TIMELINE_DELETE_STARTED, ERR_NONE},
        {404, true, PAGESERVER_TIMELINE_DELETE_GONE, ERR_NONE},
        {409, true, PAGESERVER_TIMELINE_DELETE_IN_PROGRESS, ERR_NONE},
        {412, true, PAGESERVER_TIMELINE_DELETE_PRECONDITION, ERR_NONE},
        {500, false, 0, ERR_INTERNAL},
        {503, false, 0, ERR_UNAVAILABLE},
        {400, false, 0, ERR_BAD_REQUEST},
    };
    TenantShardId id = tsid_of(TSID);
    TimelineId tl = tl_of(TL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ps_set(&f->ps, cases[i].status, "{\"msg\":\"x\"}");
        Cap c = {0};
        START(pageserver_client_timeline_delete(f->pc, &f->t, &id, &tl, on_done, &c));
        wait1(f);
        assert_string_equal(f->ps.method, "DELETE");
        assert_string_equal(f->ps.path, "/v1/tenant/" TSID "/timeline/" TL);
        assert_int_equal(c.status, cases[i].status);
        assert_int_equal(c.ok, cases[i].ok);
        if (cases[i].ok)
            assert_int_equal(c.del, cases[i].outcome);
        else
            assert_int_equal(c.err.code, cases[i].code);
    }
    assert_string_equal(pageserver_timeline_delete_name(PAGESERVER_TIMELINE_DELETE_GONE), "gone");
}

static void test_timeline_create_and_activate(void **state)
{
    Fixture *f = *state;
    TenantShardId id = tsid_of(TSID);
    json_t *body = json_pack("{s:s,s:i}", "new_timeline_id", TL, "pg_version", 16);
    ps_set(&f->ps, 201, "{\"tenant_id\":\"" TSID "\",\"timeline_id\":\"" TL "\"}");
    Cap c = {0};
    START(pageserver_client_timeline_create(f->pc, &f->t, &id, body, on_done, &c));
    wait1(f);
    assert_true(c.ok);
    assert_int_equal(c.status, 201);
    assert_string_equal(f->ps.method, "POST");
    assert_string_equal(f->ps.path, "/v1/tenant/" TSID "/timeline");
    assert_string_equal(f->ps.req_body, "{\"new_timeline_id\":\"" TL "\",\"pg_version\":16}");
    assert_string_equal(c.text, "{\"tenant_id\":\"" TSID "\",\"timeline_id\":\"" TL "\"}");

    ps_set(&f->ps, 409, "{\"msg\":\"exists with other parameters\"}");
    Cap c2 = {0};
    START(pageserver_client_timeline_create(f->pc, &f->t, &id, body, on_done, &c2));
    wait1(f);
    assert_false(c2.ok);
    assert_int_equal(c2.err.code, ERR_CONFLICT);

    ps_set(&f->ps, 201, "\"not an object\"");
    Cap c3 = {0};
    START(pageserver_client_timeline_create(f->pc, &f->t, &id, body, on_done, &c3));
    wait1(f);
    assert_false(c3.ok);
    assert_int_equal(c3.err.code, ERR_INTERNAL);
    json_decref(body);

    TimelineId tl = tl_of(TL);
    ps_set(&f->ps, 200, "{\"timeline_id\":\"" TL "\"}");
    Cap c4 = {0};
    START(pageserver_client_activate_post_import(f->pc, &f->t, &id, &tl, 30000, on_done, &c4));
    wait1(f);
    assert_true(c4.ok);
    assert_int_equal(c4.op, PAGESERVER_OP_ACTIVATE_POST_IMPORT);
    assert_string_equal(f->ps.method, "PUT");
    assert_string_equal(f->ps.path, "/v1/tenant/" TSID "/timeline/" TL "/activate_post_import");
    assert_string_equal(f->ps.query, "timeline_activate_timeout_ms=30000");
    assert_string_equal(c4.text, "{\"timeline_id\":\"" TL "\"}");

    ps_set(&f->ps, 408, "{\"msg\":\"activation timed out\"}");
    Cap c5 = {0};
    START(pageserver_client_activate_post_import(f->pc, &f->t, &id, &tl, 0, on_done, &c5));
    wait1(f);
    assert_false(c5.ok);
    assert_string_equal(f->ps.query, "");
    assert_int_equal(c5.err.code, ERR_TIMEOUT);
}

static void test_tenant_delete(void **state)
{
    Fixture *f = *state;
    TenantShardId id = tsid_of(TENANT);
    static const struct {
        int status;
        bool ok;
        ErrCode code;
    } cases[] = {{200, true, ERR_NONE},
                 {202, true, ERR_NONE},
                 {404, false, ERR_NOT_FOUND},
                 {503, false, ERR_UNAVAILABLE}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ps_set(&f->ps, cases[i].status, "{}");
        Cap c = {0};
        START(pageserver_client_tenant_delete(f->pc, &f->t, &id, on_done, &c));
        wait1(f);
        assert_string_equal(f->ps.method, "DELETE");
        assert_string_equal(f->ps.path, "/v1/tenant/" TENANT);
        assert_int_equal(c.ok, cases[i].ok);
        assert_int_equal(c.err.code, cases[i].code);
    }
}

static void test_utilization(void **state)
{
    Fixture *f = *state;
    ps_set(&f->ps, 200,
           "{\"disk_usage_bytes\":100,\"free_space_bytes\":200,\"disk_wanted_bytes\":300,"
           "\"disk_usable_pct\":95,\"shard_count\":12,\"max_shard_count\":20000,"
           "\"utilization_score\":600,\"captured_at\":\"2026-11-21T22:40:01.123Z\"}");
    Cap c = {0};
    START(pageserver_client_utilization(f->pc, &f->t, on_done, &c));
    wait1(f);
    assert_true(c.ok);
    assert_string_equal(f->ps.method, "GET");
    assert_string_equal(f->ps.path, "/v1/utilization");
    assert_int_equal(c.util.disk_usage_bytes, 100);
    assert_int_equal(c.util.free_space_bytes, 200);
    assert_int_equal(c.util.disk_wanted_bytes, 300);
    assert_int_equal(c.util.disk_usable_pct, 95);
    assert_int_equal(c.util.shard_count, 12);
    assert_int_equal(c.util.max_shard_count, 20000);
    assert_int_equal(c.util.utilization_score, 600);
    assert_string_equal(c.util.captured_at, "2026-11-21T22:40:01.123Z");

    static const char *const bad[] = {
        "{\"shard_count\":1}",                             /* score missing */
        "{\"utilization_score\":-1}",                      /* negative */
        "{\"utilization_score\":1,\"shard_count\":\"x\"}", /* wrong type */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ps_set(&f->ps, 200, bad[i]);
        Cap e = {0};
        START(pageserver_client_utilization(f->pc, &f->t, on_done, &e));
        wait1(f);
        assert_false(e.ok);
        assert_int_equal(e.err.code, ERR_INTERNAL);
    }
}

static void test_secondary_download_and_wait_lsn(void **state)
{
    Fixture *f = *state;
    TenantShardId id = tsid_of(TSID);
    static const struct {
        int status;
        bool complete;
    } dl[] = {{200, true}, {202, false}};
    for (size_t i = 0; i < 2; i++) {
        ps_set(&f->ps, dl[i].status,
               "{\"heatmap_mtime\":\"2026-01-01T00:00:00Z\",\"layers_downloaded\":3,"
               "\"layers_total\":5,\"bytes_downloaded\":30,\"bytes_total\":50}");
        Cap c = {0};
        START(pageserver_client_secondary_download(f->pc, &f->t, &id, 250, on_done, &c));
        wait1(f);
        assert_true(c.ok);
        assert_string_equal(f->ps.method, "POST");
        assert_string_equal(f->ps.path, "/v1/tenant/" TSID "/secondary/download");
        assert_string_equal(f->ps.query, "wait_ms=250");
        assert_int_equal(c.flag, dl[i].complete);
        assert_string_equal(c.progress.heatmap_mtime, "2026-01-01T00:00:00Z");
        assert_int_equal(c.progress.layers_downloaded, 3);
        assert_int_equal(c.progress.layers_total, 5);
        assert_int_equal(c.progress.bytes_downloaded, 30);
        assert_int_equal(c.progress.bytes_total, 50);
    }
    ps_set(&f->ps, 200, "{\"heatmap_mtime\":null}");
    Cap c2 = {0};
    START(pageserver_client_secondary_download(f->pc, &f->t, &id, 0, on_done, &c2));
    wait1(f);
    assert_true(c2.ok);
    assert_string_equal(c2.progress.heatmap_mtime, "");
    ps_set(&f->ps, 404, "{\"msg\":\"not a secondary\"}");
    Cap c3 = {0};
    START(pageserver_client_secondary_download(f->pc, &f->t, &id, 0, on_done, &c3));
    wait1(f);
    assert_false(c3.ok);
    assert_int_equal(c3.err.code, ERR_NOT_FOUND);

    PageserverTimelineLsn lsns[] = {{tl_of(TL), 0x16960E8}};
    static const struct {
        int status;
        bool ok, reached;
    } wl[] = {{200, true, true}, {202, true, false}, {404, false, false}};
    for (size_t i = 0; i < 3; i++) {
        ps_set(&f->ps, wl[i].status, "{}");
        Cap c = {0};
        START(pageserver_client_wait_lsn(f->pc, &f->t, &id, lsns, 1, 1000, on_done, &c));
        wait1(f);
        assert_string_equal(f->ps.method, "POST");
        assert_string_equal(f->ps.path, "/v1/tenant/" TSID "/wait_lsn");
        assert_string_equal(f->ps.req_body, "{\"" TL "\":\"0/16960E8\",\"timeout\":1000}");
        assert_int_equal(c.ok, wl[i].ok);
        if (c.ok)
            assert_int_equal(c.flag, wl[i].reached);
    }
}

static void test_shard_split(void **state)
{
    Fixture *f = *state;
    TenantShardId parent = tsid_of(TENANT "-0102");
    static const struct {
        uint32_t stripe;
        const char *want_body;
        const char *reply;
        bool ok;
        const char *text_or_err;
    } cases[] = {
        {0, "{\"new_shard_count\":4,\"new_stripe_size\":null}",
         "{\"new_shards\":[\"" TENANT "-0104\",\"" TENANT "-0304\"]}", true,
         TENANT "-0104;" TENANT "-0304;"},
        {4096, "{\"new_shard_count\":4,\"new_stripe_size\":4096}",
         "{\"new_shards\":[\"" TENANT "-0108\"]}", false, "is not a child of the split to 4"},
        {0, "{\"new_shard_count\":4,\"new_stripe_size\":null}",
         "{\"new_shards\":[\"2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a-0104\"]}", false, "is not a child"},
        {0, "{\"new_shard_count\":4,\"new_stripe_size\":null}", "{\"new_shards\":[]}", false,
         "non-empty array"},
        {0, "{\"new_shard_count\":4,\"new_stripe_size\":null}", "{\"new_shards\":[7]}", false,
         "new_shards[0] is not a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ps_set(&f->ps, 200, cases[i].reply);
        Cap c = {0};
        START(pageserver_client_tenant_shard_split(f->pc, &f->t, &parent, 4, cases[i].stripe,
                                                   on_done, &c));
        wait1(f);
        assert_string_equal(f->ps.method, "PUT");
        assert_string_equal(f->ps.path, "/v1/tenant/" TENANT "-0102/shard_split");
        assert_string_equal(f->ps.req_body, cases[i].want_body);
        assert_int_equal(c.ok, cases[i].ok);
        if (c.ok) {
            assert_string_equal(c.text, cases[i].text_or_err);
        } else {
            assert_int_equal(c.err.code, ERR_INTERNAL);
            assert_non_null(strstr(c.err.msg, cases[i].text_or_err));
        }
    }
}

static void test_passthrough_get(void **state)
{
    Fixture *f = *state;
    static const struct {
        int status;
        const char *body;
    } cases[] = {{200, "[{\"timeline_id\":\"" TL "\"}]"},
                 {404, "{\"msg\":\"tenant not found\"}"},
                 {500, "plain text"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ps_set(&f->ps, cases[i].status, cases[i].body);
        Cap c = {0};
        START(pageserver_client_get(f->pc, &f->t, "/v1/tenant/" TSID "/timeline?include=x", on_done,
                                    &c));
        wait1(f);
        assert_true(c.ok); /* every status is a result */
        assert_int_equal(c.status, cases[i].status);
        assert_string_equal(c.text, cases[i].body);
        assert_int_equal(c.n, strlen(cases[i].body));
        assert_string_equal(f->ps.method, "GET");
        assert_string_equal(f->ps.path, "/v1/tenant/" TSID "/timeline");
        assert_string_equal(f->ps.query, "include=x");
        assert_string_equal(f->ps.auth, "Bearer tok");
    }

    /* malformed paths never reach the pageserver; the failure is still asynchronous */
    static const char *const bad[] = {"",        "v1/tenant",     "//evil.example/x",
                                      "/v1/a b", "/v1/a\r\nX: y", "/v1/x#frag"};
    int before = f->ps.requests;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Cap c = {0};
        START(pageserver_client_get(f->pc, &f->t, bad[i], on_done, &c));
        assert_int_equal(c.calls, 0);
        wait1(f);
        assert_false(c.ok);
        assert_int_equal(c.status, 0);
        assert_int_equal(c.err.code, ERR_BAD_REQUEST);
    }
    Cap cn = {0};
    START(pageserver_client_get(f->pc, &f->t, NULL, on_done, &cn));
    wait1(f);
    assert_int_equal(cn.err.code, ERR_BAD_REQUEST);
    assert_int_equal(f->ps.requests, before);
}

static void test_retries_where_asked(void **state)
{
    Fixture *f = *state;
    ps_set(&f->ps, 200, "{\"utilization_score\":5}");

    /* no retry policy: the 503 is the answer */
    f->ps.flaky_503_left = 2;
    Cap c1 = {0};
    START(pageserver_client_utilization(f->pc, &f->t, on_done, &c1));
    wait1(f);
    assert_false(c1.ok);
    assert_int_equal(c1.status, 503);
    assert_int_equal(c1.attempts, 1);
    assert_int_equal(c1.err.code, ERR_UNAVAILABLE);

    /* with one: retried until it succeeds */
    f->ps.flaky_503_left = 2;
    PageserverTarget t = f->t;
    t.retry = (HttpRetryPolicy){.max_attempts = 5, .base_ms = 5, .max_ms = 10};
    Cap c2 = {0};
    START(pageserver_client_utilization(f->pc, &t, on_done, &c2));
    wait1(f);
    assert_true(c2.ok);
    assert_int_equal(c2.attempts, 3);
    assert_int_equal(c2.util.utilization_score, 5);

    /* connection refused, retried, then translated to 503 */
    char url[64];
    assert_true(str_printf(url, sizeof(url), "http://127.0.0.1:%d", closed_port()));
    t.base_url = url;
    t.retry.max_attempts = 3;
    Cap c3 = {0};
    START(pageserver_client_utilization(f->pc, &t, on_done, &c3));
    wait1(f);
    assert_false(c3.ok);
    assert_int_equal(c3.status, 0);
    assert_int_equal(c3.attempts, 3);
    assert_int_equal(c3.err.code, ERR_UNAVAILABLE);
    Err tr = pageserver_client_translate_error(c3.status, &c3.err);
    assert_int_equal(err_http_status(tr.code), 503);

    /* a timeout, translated to 408 */
    f->ps.delay_ms = 1000;
    t = f->t;
    t.timeout_ms = 100;
    Cap c4 = {0};
    START(pageserver_client_utilization(f->pc, &t, on_done, &c4));
    wait1(f);
    assert_false(c4.ok);
    assert_int_equal(c4.status, 0);
    assert_int_equal(c4.err.code, ERR_TIMEOUT);
    tr = pageserver_client_translate_error(c4.status, &c4.err);
    assert_int_equal(err_http_status(tr.code), 408);
}

static void test_translate_error_table(void **state)
{
    static const struct {
        int status;
        ErrCode in_code; /* of the Err given (ERR_NONE: NULL is passed) */
        int want_http;
        const char *want_msg;
    } cases[] = {
        {0, ERR_UNAVAILABLE, 503, "connection refused"},
        {0, ERR_TIMEOUT, 408, "connection refused"},
        {0, ERR_INTERNAL, 503, "connection refused"}, /* any other transport failure */
        {0, ERR_NONE, 503, "pageserver unreachable"},
        {503, ERR_UNAVAILABLE, 503, "connection refused"},
        {404, ERR_NOT_FOUND, 404, "connection refused"},
        {408, ERR_TIMEOUT, 408, "connection refused"},
        {401, ERR_UNAUTHORIZED, 500,
         "pageserver refused the controller's credentials: connection refused"},
        {403, ERR_FORBIDDEN, 500,
         "pageserver refused the controller's credentials: connection refused"},
        {429, ERR_TOO_MANY_REQUESTS, 409, "connection refused"},
        {400, ERR_BAD_REQUEST, 409, "connection refused"},
        {409, ERR_CONFLICT, 409, "connection refused"},
        {412, ERR_PRECONDITION_FAILED, 409, "connection refused"},
        {500, ERR_INTERNAL, 409, "connection refused"},
        {502, ERR_INTERNAL, 409, "connection refused"},
        {504, ERR_INTERNAL, 409, "connection refused"},
        {500, ERR_NONE, 409, "pageserver answered 500"},
        {200, ERR_NONE, 200, ""},
        {200, ERR_INTERNAL, 500, "connection refused"}, /* undecodable 2xx body stays internal */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Err in;
        err_clear(&in);
        if (cases[i].in_code != ERR_NONE)
            err_set(&in, cases[i].in_code, "connection refused");
        Err out = pageserver_client_translate_error(cases[i].status,
                                                    cases[i].in_code != ERR_NONE ? &in : NULL);
        assert_int_equal(err_http_status(out.code), cases[i].want_http);
        assert_string_equal(out.msg, cases[i].want_msg);
        if (cases[i].in_code != ERR_NONE && cases[i].want_http != 200) {
            assert_ptr_equal(out.file, in.file); /* where it was first seen is kept */
            assert_int_equal(out.line, in.line);
        }
    }
}

static void test_cancel_and_free(void **state)
{
    Fixture *f = *state;
    f->ps.delay_ms = 100;
    TenantShardId id = tsid_of(TSID);
    Cap c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0};
    PageserverCall *k1 = pageserver_client_location_config_get(f->pc, &f->t, &id, on_done, &c1);
    PageserverCall *k2 = pageserver_client_get(f->pc, &f->t, "bad", on_done, &c2);
    START(pageserver_client_utilization(f->pc, &f->t, on_done, &c3));
    assert_int_equal(pageserver_client_inflight(f->pc), 3);
    pageserver_call_cancel(k1);
    pageserver_call_cancel(k2);
    pageserver_call_cancel(NULL);
    assert_int_equal(pageserver_client_inflight(f->pc), 1);
    wait1(f);
    assert_int_equal(c3.calls, 1);
    assert_true(c3.ok || c3.err.code != ERR_NONE);
    run_for(f, 150);
    assert_int_equal(c1.calls + c2.calls, 0);
    assert_int_equal(pageserver_client_inflight(f->pc), 0);

    /* freeing the client with calls in flight: no callbacks */
    START(pageserver_client_utilization(f->pc, &f->t, on_done, &c4));
    START(pageserver_client_get(f->pc, &f->t, "", on_done, &c4));
    pageserver_client_free(f->pc);
    f->pc = NULL;
    run_for(f, 200);
    assert_int_equal(c4.calls, 0);
    assert_int_equal(g_done, 1);
}

/* test_cancel_node: a pageserver that never answers (the fake server holds every request for a
 * minute, like a SIGSTOPped process whose kernel still accepts connections): cancelling its node
 * fails every call to it in flight with the given error, through the normal callback, on a later
 * loop iteration, in the order they started, whatever phase the call was in (request sent, retry
 * backoff); calls to other nodes, calls with no node and a local failure already on its way keep
 * going; a call cancelled in between stays silent; the node is callable again afterwards. */
static void test_cancel_node(void **state)
{
    Fixture *f = *state;
    f->ps.delay_ms = 60000;
    ps_set(&f->ps, 200, "{\"utilization_score\":7}");
    TenantShardId id = tsid_of(TSID);
    TimelineId tl = tl_of(TL);
    PageserverTarget t1 = f->t, t2 = f->t, tnone = f->t;
    t1.node = 1;
    t1.timeout_ms = 30000;
    t1.retry = (HttpRetryPolicy){.max_attempts = 3, .base_ms = 100, .max_ms = 1000};
    t2.node = 2;
    t2.timeout_ms = 30000;
    tnone.node = NODE_ID_NONE;
    tnone.timeout_ms = 30000;
    /* node 1 also on a closed port, retrying with long backoffs: cancelled between attempts */
    char closed[64];
    assert_true(str_printf(closed, sizeof(closed), "http://127.0.0.1:%d", closed_port()));
    PageserverTarget t1_backoff = t1;
    t1_backoff.base_url = closed;
    t1_backoff.retry = (HttpRetryPolicy){.max_attempts = 5, .base_ms = 10000, .max_ms = 10000};

    json_t *body = json_pack("{s:s}", "new_timeline_id", TL);
    Cap create = {0}, get = {0}, backoff = {0}, del = {0}, other = {0}, none = {0}, bad = {0};
    START(pageserver_client_timeline_create(f->pc, &t1, &id, body, on_done, &create));
    START(pageserver_client_location_config_get(f->pc, &t1, &id, on_done, &get));
    START(pageserver_client_utilization(f->pc, &t1_backoff, on_done, &backoff));
    PageserverCall *del_call = NULL;
    START(del_call = pageserver_client_timeline_delete(f->pc, &t1, &id, &tl, on_done, &del));
    START(pageserver_client_utilization(f->pc, &t2, on_done, &other));
    START(pageserver_client_utilization(f->pc, &tnone, on_done, &none));
    json_decref(body);
    run_for(f, 300); /* the requests reach the server, which sits on them */
    assert_int_equal(f->ps.requests, 5);
    assert_int_equal(g_done, 0);
    /* a local failure of node 1 whose callback is already queued keeps its own error */
    START(pageserver_client_get(f->pc, &t1, "no-slash", on_done, &bad));
    assert_int_equal(pageserver_client_inflight(f->pc), 7);

    Err off;
    err_set(&off, ERR_UNAVAILABLE, "pageserver node 1 is offline, retry");
    g_in_start = true; /* on_done asserts that no callback runs inside the cancellation */
    assert_int_equal(pageserver_client_cancel_node(f->pc, 1, &off), 4);
    assert_int_equal(pageserver_client_cancel_node(f->pc, 1, &off), 0); /* already on their way */
    assert_int_equal(pageserver_client_cancel_node(f->pc, 3, &off), 0); /* no calls there */
    assert_int_equal(pageserver_client_cancel_node(f->pc, NODE_ID_NONE, &off), 0);
    g_in_start = false;
    assert_int_equal(g_done, 0);
    pageserver_call_cancel(del_call); /* cancelled before its failure was delivered: silent */

    assert_true(run_until(f, 4, 2000)); /* long before any timeout or backoff */
    run_for(f, 100);
    assert_int_equal(g_done, 4);
    const Cap *cancelled[] = {&create, &get, &backoff};
    const PageserverOp ops[] = {PAGESERVER_OP_TIMELINE_CREATE, PAGESERVER_OP_LOCATION_CONFIG_GET,
                                PAGESERVER_OP_UTILIZATION};
    for (size_t i = 0; i < 3; i++) {
        const Cap *c = cancelled[i];
        assert_int_equal(c->calls, 1);
        assert_int_equal(c->op, ops[i]);
        assert_false(c->ok);
        assert_int_equal(c->status, 0);
        assert_int_equal(c->err.code, ERR_UNAVAILABLE);
        assert_string_equal(c->err.msg, "pageserver node 1 is offline, retry");
        Err tr = pageserver_client_translate_error(c->status, &c->err);
        assert_int_equal(err_http_status(tr.code), 503);
        assert_string_equal(tr.msg, "pageserver node 1 is offline, retry");
        if (i > 0)
            assert_true(c->seq > cancelled[i - 1]->seq); /* in the order they started */
    }
    assert_string_equal(create.tsid, TSID);
    assert_int_equal(bad.calls, 1);
    assert_int_equal(bad.err.code, ERR_BAD_REQUEST);
    assert_int_equal(del.calls, 0);
    assert_int_equal(other.calls + none.calls, 0);
    assert_int_equal(pageserver_client_inflight(f->pc), 2);

    /* node 2's call is cancelled on its own; the call without a node is never matched */
    Err off2;
    err_set(&off2, ERR_UNAVAILABLE, "pageserver node 2 is offline, retry");
    assert_int_equal(pageserver_client_cancel_node(f->pc, 2, &off2), 1);
    wait1(f);
    assert_int_equal(other.calls, 1);
    assert_int_equal(other.err.code, ERR_UNAVAILABLE);
    assert_string_equal(other.err.msg, "pageserver node 2 is offline, retry");
    assert_int_equal(none.calls, 0);
    assert_int_equal(pageserver_client_inflight(f->pc), 1);

    /* the node answers again: new calls to it are not affected by the earlier cancellation */
    f->ps.delay_ms = 0;
    Cap again = {0};
    START(pageserver_client_utilization(f->pc, &t1, on_done, &again));
    wait1(f);
    assert_true(again.ok);
    assert_int_equal(again.util.utilization_score, 7);
}

static void test_names(void **state)
{
    assert_string_equal(pageserver_op_name(PAGESERVER_OP_LOCATION_CONFIG_PUT),
                        "location_config_put");
    assert_string_equal(pageserver_op_name(PAGESERVER_OP_PASSTHROUGH_GET), "passthrough_get");
    assert_string_equal(pageserver_op_name(PAGESERVER_OP_COUNT), "?");
    for (int i = 0; i < PAGESERVER_OP_COUNT; i++)
        assert_string_not_equal(pageserver_op_name((PageserverOp)i), "?");
}

int main(void)
{
    Err err;
    if (!log_init("test", LOG_WARN, NULL, &err))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_location_config_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_location_config_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_location_config_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_location_config_list_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeline_delete_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeline_create_and_activate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utilization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secondary_download_and_wait_lsn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shard_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passthrough_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_where_asked, setup, teardown),
        cmocka_unit_test(test_translate_error_table),
        cmocka_unit_test_setup_teardown(test_cancel_and_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_node, setup, teardown),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
