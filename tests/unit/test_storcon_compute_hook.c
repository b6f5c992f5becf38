/*
 * test_storcon_compute_hook.c: unit tests for storcon/compute_hook.c against a fake control
 * plane: a small evhttp server in the test's own event loop that records every notify-attach
 * and answers from a per-tenant script (statuses in order, optional delay, or 423 until another
 * tenant has been heard from). The last tests use the keyed notifier underneath directly
 * (storcon/notifier.h) as a second instance, shaped like the tenant import_complete notification.
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
#include <openssl/sha.h>

#include "tests/unit/loop_util.h"
#include "shared/err.h"
#include "shared/http_client.h"
#include "shared/id.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/str.h"
#include "storcon/compute_hook.h"
#include "storcon/notifier.h"

#define T1 "1f359dd625e519a1a4e8d7509690f6fc"
#define T2 "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a"
#define T3 "3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b3b"

/* ---- fake control plane ---- */

#define MAX_REQS    512
#define MAX_SCRIPTS 8
#define MAX_DELAYED 32

typedef struct Recorded {
    char method[16];
    char path[128];
    char auth[128];
    char tenant[ID_STR_SIZE];
    char body[4096];
} Recorded;

typedef struct Script {
    char tenant[ID_STR_SIZE];
    int statuses[64]; /* answered in order; afterwards `then` */
    int n, pos;
    int then;                       /* 0 = 200 */
    long delay_ms;                  /* reply after this long */
    char locked_until[ID_STR_SIZE]; /* 423 until a request for this tenant arrived */
    const char *unavailable_if;     /* 503 for bodies containing this */
} Script;

typedef struct Cp Cp;

typedef struct Delayed {
    Cp *cp;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *ev;
    int status;
} Delayed;

struct Cp {
    struct event_base *base;
    struct evhttp *http;
    char url[64];
    Recorded reqs[MAX_REQS];
    int nreqs;
    Script scripts[MAX_SCRIPTS];
    int nscripts;
    Delayed *delayed[MAX_DELAYED];
    int live, max_live; /* requests received and not yet answered */
};

static void reply(struct evhttp_request *req, int status)
{
    struct evbuffer *buf = evbuffer_new();
    const char *body = status >= 200 && status < 300 ? "{}" : "{\"msg\":\"scripted\"}";
    evbuffer_add(buf, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, status, "x", buf);
    evbuffer_free(buf);
}

static void delayed_forget(Cp *cp, int i)
{
    event_free(cp->delayed[i]->ev);
    free(cp->delayed[i]);
    cp->delayed[i] = NULL;
    cp->live--;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    Cp *cp = arg;
    for (int i = 0; i < MAX_DELAYED; i++) {
        if (cp->delayed[i] != NULL && cp->delayed[i]->evcon == evcon)
            delayed_forget(cp, i);
    }
}

static void delayed_fire(evutil_socket_t fd, short what, void *arg)
{
    Delayed *d = arg;
    Cp *cp = d->cp;
    for (int i = 0; i < MAX_DELAYED; i++) {
        if (cp->delayed[i] == d) {
            struct evhttp_request *req = d->req;
            int status = d->status;
            delayed_forget(cp, i);
            reply(req, status);
            return;
        }
    }
}

static Script *script_for(Cp *cp, const char *tenant)
{
    for (int i = 0; i < cp->nscripts; i++) {
        if (strcmp(cp->scripts[i].tenant, tenant) == 0)
            return &cp->scripts[i];
    }
    return NULL;
}

static bool seen_tenant(const Cp *cp, const char *tenant)
{
    for (int i = 0; i < cp->nreqs; i++) {
        if (strcmp(cp->reqs[i].tenant, tenant) == 0)
            return true;
    }
    return false;
}

static int count_for(const Cp *cp, const char *tenant)
{
    int n = 0;
    for (int i = 0; i < cp->nreqs; i++)
        n += strcmp(cp->reqs[i].tenant, tenant) == 0;
    return n;
}

static void cp_cb(struct evhttp_request *req, void *arg)
{
    Cp *cp = arg;
    assert_true(cp->nreqs < MAX_REQS);
    Recorded *r = &cp->reqs[cp->nreqs];
    memset(r, 0, sizeof(*r));
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    str_copy(r->method, sizeof(r->method), cmd == EVHTTP_REQ_PUT ? "PUT" : "OTHER");
    str_copy(r->path, sizeof(r->path), evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)));
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    str_copy(r->auth, sizeof(r->auth), auth ? auth : "");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    assert_true(n < sizeof(r->body));
    evbuffer_copyout(in, r->body, n);
    r->body[n] = '\0';
    json_t *j = json_loads(r->body, 0, NULL);
    if (j != NULL && json_is_string(json_object_get(j, "tenant_id")))
        str_copy(r->tenant, sizeof(r->tenant), json_string_value(json_object_get(j, "tenant_id")));
    json_decref(j);

    int status = 200;
    long delay = 0;
    Script *s = script_for(cp, r->tenant);
    if (s != NULL) {
        delay = s->delay_ms;
        if (s->locked_until[0] && !seen_tenant(cp, s->locked_until))
            status = 423;
        else if (s->unavailable_if != NULL && strstr(r->body, s->unavailable_if) != NULL)
            status = 503;
        else if (s->pos < s->n)
            status = s->statuses[s->pos++];
        else if (s->then != 0)
            status = s->then;
    }
    cp->nreqs++; /* after the locked_until check: this request does not count as seen */
    cp->live++;
    if (cp->live > cp->max_live)
        cp->max_live = cp->live;
    if (delay == 0) {
        cp->live--;
        reply(req, status);
        return;
    }
    for (int i = 0; i < MAX_DELAYED; i++) {
        if (cp->delayed[i] == NULL) {
            Delayed *d = calloc(1, sizeof(*d));
            d->cp = cp;
            d->req = req;
            d->status = status;
            d->evcon = evhttp_request_get_connection(req);
            evhttp_connection_set_closecb(d->evcon, conn_closed, cp);
            d->ev = evtimer_new(cp->base, delayed_fire, d);
            struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
            evtimer_add(d->ev, &tv);
            cp->delayed[i] = d;
            return;
        }
    }
    fail_msg("too many delayed replies");
}

static void cp_start(Cp *cp, struct event_base *base)
{
    memset(cp, 0, sizeof(*cp));
    cp->base = base;
    cp->http = evhttp_new(base);
    assert_non_null(cp->http);
    evhttp_set_allowed_methods(cp->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST);
    evhttp_set_gencb(cp->http, cp_cb, cp);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(cp->http, "127.0.0.1", 0);
    assert_non_null(h);
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&sa, &len), 0);
    assert_true(str_printf(cp->url, sizeof(cp->url), "http://127.0.0.1:%d/", ntohs(sa.sin_port)));
}

static void cp_stop(Cp *cp)
{
    for (int i = 0; i < MAX_DELAYED; i++) {
        if (cp->delayed[i] != NULL)
            delayed_forget(cp, i);
    }
    evhttp_free(cp->http);
}

static Script *cp_script(Cp *cp, const char *tenant)
{
    Script *s = script_for(cp, tenant);
    if (s == NULL) {
        assert_true(cp->nscripts < MAX_SCRIPTS);
        s = &cp->scripts[cp->nscripts++];
        memset(s, 0, sizeof(*s));
        str_copy(s->tenant, sizeof(s->tenant), tenant);
    }
    return s;
}

static void script_statuses(Cp *cp, const char *tenant, const int *statuses, int n, int then)
{
    Script *s = cp_script(cp, tenant);
    assert_true(n <= 64);
    if (n > 0)
        memcpy(s->statuses, statuses, sizeof(int) * (size_t)n);
    s->n = n;
    s->pos = 0;
    s->then = then;
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

/* ---- fixture ---- */

typedef struct Fixture {
    struct event_base *base;
    Cp cp;
    HttpClient *http;
    MetricsRegistry *metrics;
    ComputeHook *hook;
} Fixture;

typedef struct Outcome {
    int calls;
    int seq; /* completion order over the test */
    ComputeNotifyResult res;
    /* for the "other tenant completes meanwhile" test: checked inside the callback */
    ComputeHook *hook;
    const TenantId *watch;
    bool watch_pending; /* compute_hook_is_pending(watch) when this callback ran */
} Outcome;

static int g_done;
static int g_seq;
static bool g_in_notify;

static void on_done(const ComputeNotifyResult *res, void *arg)
{
    Outcome *o = arg;
    assert_false(g_in_notify);
    o->calls++;
    o->res = *res;
    o->seq = ++g_seq;
    if (o->watch != NULL)
        o->watch_pending = compute_hook_is_pending(o->hook, o->watch);
    g_done++;
}

static bool run_until(Fixture *f, int target, long timeout_ms)
{
    return loop_run_until(f->base, &g_done, target, timeout_ms);
}

static void run_for(Fixture *f, long ms)
{
    loop_run_for(f->base, ms);
}

/* run_until_requests: until the control plane has seen n requests. */
static bool run_until_requests(Fixture *f, int n, long timeout_ms)
{
    for (long waited = 0; f->cp.nreqs < n && waited < timeout_ms; waited += 5)
        run_for(f, 5);
    return f->cp.nreqs >= n;
}

static const ComputeHookOptions TEST_OPTS = {
    .bearer_token = "cptoken",
    .timeout_ms = 2000,
    .max_attempts = 3,
    .locked_max_attempts = 4,
    .backoff_base_ms = 2,
    .backoff_max_ms = 10,
};

static void hook_new_with(Fixture *f, ComputeHookOptions opts)
{
    compute_hook_free(f->hook);
    f->hook = compute_hook_new(f->base, f->http, f->metrics, &opts);
}

static int setup(void **state)
{
    Fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    cp_start(&f->cp, f->base);
    Err err;
    assert_true(http_client_new(f->base, &f->http, &err));
    f->metrics = metrics_registry_new();
    ComputeHookOptions opts = TEST_OPTS;
    opts.control_plane_url = f->cp.url;
    f->hook = compute_hook_new(f->base, f->http, f->metrics, &opts);
    g_done = 0;
    g_seq = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    Fixture *f = *state;
    compute_hook_free(f->hook);
    http_client_free(f->http);
    cp_stop(&f->cp);
    metrics_registry_free(f->metrics);
    event_base_free(f->base);
    free(f);
    return 0;
}

static TenantId tid(const char *hex)
{
    TenantId t;
    Err err;
    assert_true(tenant_id_parse(hex, &t, &err));
    return t;
}

/* snap: a snapshot of `count` shards on the given nodes (nodes[i] for shard i). */
static ComputeHookTenant snap(const char *tenant, ShardCount count, uint32_t stripe, const char *az,
                              const NodeId *nodes, size_t n_nodes)
{
    ComputeHookTenant s;
    TenantId t = tid(tenant);
    compute_hook_tenant_init(&s, &t, count, stripe, az);
    for (size_t i = 0; i < n_nodes; i++)
        s.attached[i] = nodes[i];
    return s;
}

static void notify(Fixture *f, const ComputeHookTenant *s, Outcome *o)
{
    g_in_notify = true;
    compute_hook_notify(f->hook, s, on_done, o);
    g_in_notify = false;
    assert_int_equal(o->calls, 0); /* never synchronous */
}

static uint64_t counter(Fixture *f, const char *name)
{
    return metric_counter_get(metrics_counter(f->metrics, name, "x", NULL));
}

/* ---- tests ---- */

static void test_body_one_shard(void **state)
{
    Fixture *f = *state;
    static const struct {
        ShardCount count;
        uint32_t stripe;
        const char *az;
        const char *tenant;
        const char *want;
    } cases[] = {
        {0, 2048, NULL, T1,
         "{\"tenant_id\":\"" T1 "\",\"preferred_az\":null,\"stripe_size\":null,"
         "\"shards\":[{\"node_id\":7,\"shard_number\":0}]}"},
        {1, 2048, "az-1", T2,
         "{\"tenant_id\":\"" T2 "\",\"preferred_az\":\"az-1\",\"stripe_size\":null,"
         "\"shards\":[{\"node_id\":7,\"shard_number\":0}]}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        NodeId nodes[] = {7};
        ComputeHookTenant s =
            snap(cases[i].tenant, cases[i].count, cases[i].stripe, cases[i].az, nodes, 1);
        Outcome o = {0};
        notify(f, &s, &o);
        assert_true(compute_hook_is_pending(f->hook, &s.tenant_id)); /* in flight */
        assert_true(run_until(f, (int)i + 1, 5000));
        assert_int_equal(o.res.outcome, COMPUTE_NOTIFY_SENT);
        assert_int_equal(o.res.status, 200);
        assert_int_equal(o.res.attempts, 1);
        assert_false(compute_hook_is_pending(f->hook, &s.tenant_id));
        assert_int_equal(f->cp.nreqs, (int)i + 1);
        const Recorded *r = &f->cp.reqs[i];
        assert_string_equal(r->method, "PUT");
        assert_string_equal(r->path, "/notify-attach");
        assert_string_equal(r->auth, "Bearer cptoken");
        assert_string_equal(r->body, cases[i].want);
    }
    assert_int_equal(counter(f, "compute_notifications_sent_total"), 2);
}

static void test_body_eight_shards(void **state)
{
    Fixture *f = *state;
    NodeId nodes[] = {1, 2, 3, 1, 2, 3, 1, 2};
    ComputeHookTenant s = snap(T1, 8, 2048, "us-east-2a", nodes, 8);
    Outcome o = {0};
    notify(f, &s, &o);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(o.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(f->cp.nreqs, 1);
    assert_string_equal(f->cp.reqs[0].body,
                        "{\"tenant_id\":\"" T1 "\",\"preferred_az\":\"us-east-2a\","
                        "\"stripe_size\":2048,\"shards\":["
                        "{\"node_id\":1,\"shard_number\":0},{\"node_id\":2,\"shard_number\":1},"
                        "{\"node_id\":3,\"shard_number\":2},{\"node_id\":1,\"shard_number\":3},"
                        "{\"node_id\":2,\"shard_number\":4},{\"node_id\":3,\"shard_number\":5},"
                        "{\"node_id\":1,\"shard_number\":6},{\"node_id\":2,\"shard_number\":7}]}");
}

static void test_render_body_table(void **state)
{
    static const NodeId ok4[] = {10, 11, 12, 13};
    static const NodeId hole4[] = {10, 11, COMPUTE_HOOK_NODE_UNKNOWN, 13};
    static const NodeId big[] = {(NodeId)INT64_MAX + 1};
    static const NodeId max_ok[] = {(NodeId)INT64_MAX};
    static const struct {
        ShardCount count;
        uint32_t stripe;
        const NodeId *nodes;
        size_t n;
        ErrCode code;     /* ERR_NONE = renders */
        const char *want; /* body or error message */
    } cases[] = {
        {4, 32768, ok4, 4, ERR_NONE,
         "{\"tenant_id\":\"" T3 "\",\"preferred_az\":null,\"stripe_size\":32768,\"shards\":["
         "{\"node_id\":10,\"shard_number\":0},{\"node_id\":11,\"shard_number\":1},"
         "{\"node_id\":12,\"shard_number\":2},{\"node_id\":13,\"shard_number\":3}]}"},
        {4, 2048, hole4, 4, ERR_UNAVAILABLE, "not ready: shard 2 of 4 has no attached node"},
        {4, 2048, ok4, 3, ERR_UNAVAILABLE, "not ready: shard 3 of 4 has no attached node"},
        {0, 2048, hole4 + 2, 1, ERR_UNAVAILABLE, "not ready: shard 0 of 1 has no attached node"},
        {2, 0, ok4, 2, ERR_BAD_REQUEST, "stripe size 0 for 2 shards"},
        {1, 0, ok4, 1, ERR_NONE, /* one shard: the stripe size is not used */
         "{\"tenant_id\":\"" T3 "\",\"preferred_az\":null,\"stripe_size\":null,"
         "\"shards\":[{\"node_id\":10,\"shard_number\":0}]}"},
        {0, 2048, big, 1, ERR_BAD_REQUEST, "shard 0: node id 9223372036854775808 out of range"},
        {0, 2048, max_ok, 1, ERR_NONE,
         "{\"tenant_id\":\"" T3 "\",\"preferred_az\":null,\"stripe_size\":null,"
         "\"shards\":[{\"node_id\":9223372036854775807,\"shard_number\":0}]}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ComputeHookTenant s =
            snap(T3, cases[i].count, cases[i].stripe, "", cases[i].nodes, cases[i].n);
        char *body = (char *)&s;
        Err err;
        err_clear(&err);
        bool ok = compute_hook_render_body(&s, &body, &err);
        if (cases[i].code == ERR_NONE) {
            assert_true(ok);
            assert_string_equal(body, cases[i].want);
            char *again = NULL;
            assert_true(compute_hook_render_body(&s, &again, &err));
            assert_string_equal(again, body); /* stable: dedup compares strings */
            free(again);
            free(body);
        } else {
            assert_false(ok);
            assert_null(body);
            assert_int_equal(err.code, cases[i].code);
            assert_string_equal(err.msg, cases[i].want);
        }
    }
}

static void test_dedup(void **state)
{
    Fixture *f = *state;
    NodeId a[] = {1, 2};
    NodeId b[] = {1, 3};
    ComputeHookTenant sa = snap(T1, 2, 2048, NULL, a, 2);
    ComputeHookTenant sb = snap(T1, 2, 2048, NULL, b, 2);

    Outcome o1 = {0}, o2 = {0}, o3 = {0}, o4 = {0}, o5 = {0}, o6 = {0};
    notify(f, &sa, &o1);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(o1.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(f->cp.nreqs, 1);

    /* identical: not sent */
    notify(f, &sa, &o2);
    assert_true(run_until(f, 2, 5000));
    assert_int_equal(o2.res.outcome, COMPUTE_NOTIFY_DEDUPLICATED);
    assert_int_equal(o2.res.attempts, 0);
    assert_int_equal(f->cp.nreqs, 1);
    assert_false(compute_hook_is_pending(f->hook, &sa.tenant_id));
    assert_int_equal(counter(f, "compute_notifications_deduplicated_total"), 1);

    /* a changed map: sent */
    notify(f, &sb, &o3);
    assert_true(run_until(f, 3, 5000));
    assert_int_equal(o3.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(f->cp.nreqs, 2);
    assert_non_null(strstr(f->cp.reqs[1].body, "{\"node_id\":3,\"shard_number\":1}"));

    /* back to a, but the control plane fails it: the control plane's state is now unknown */
    static const int fail500[] = {500};
    script_statuses(&f->cp, T1, fail500, 1, 0);
    notify(f, &sa, &o4);
    assert_true(run_until(f, 4, 5000));
    assert_int_equal(o4.res.outcome, COMPUTE_NOTIFY_FAILED);
    assert_int_equal(f->cp.nreqs, 3);
    assert_true(compute_hook_is_pending(f->hook, &sa.tenant_id));

    /* b was the last accepted map, but after a failure the same b IS sent */
    notify(f, &sb, &o5);
    assert_true(run_until(f, 5, 5000));
    assert_int_equal(o5.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(f->cp.nreqs, 4);
    assert_string_equal(f->cp.reqs[3].body, f->cp.reqs[1].body);
    assert_false(compute_hook_is_pending(f->hook, &sa.tenant_id));

    /* and once accepted again, deduplicated again */
    notify(f, &sb, &o6);
    assert_true(run_until(f, 6, 5000));
    assert_int_equal(o6.res.outcome, COMPUTE_NOTIFY_DEDUPLICATED);
    assert_int_equal(f->cp.nreqs, 4);
    assert_int_equal(counter(f, "compute_notifications_deduplicated_total"), 2);
    assert_int_equal(counter(f, "compute_notifications_sent_total"), 3);
    assert_int_equal(counter(f, "compute_notifications_failed_total"), 1);
}

static void test_half_map_refused(void **state)
{
    Fixture *f = *state;
    NodeId half[] = {1, 2, 3, COMPUTE_HOOK_NODE_UNKNOWN};
    ComputeHookTenant s = snap(T1, 4, 2048, NULL, half, 4);
    Outcome o = {0};
    notify(f, &s, &o);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(o.res.outcome, COMPUTE_NOTIFY_NOT_READY);
    assert_int_equal(o.res.err.code, ERR_UNAVAILABLE);
    assert_non_null(strstr(o.res.err.msg, "not ready: shard 3 of 4"));
    assert_false(compute_notify_outcome_ok(o.res.outcome));
    run_for(f, 50);
    assert_int_equal(f->cp.nreqs, 0);
    assert_false(compute_hook_is_pending(f->hook, &s.tenant_id));

    /* a tenant already pending stays pending after a half map */
    static const int fail[] = {500};
    script_statuses(&f->cp, T1, fail, 1, 0);
    NodeId full[] = {1, 2, 3, 4};
    ComputeHookTenant sf = snap(T1, 4, 2048, NULL, full, 4);
    Outcome o2 = {0}, o3 = {0};
    notify(f, &sf, &o2);
    assert_true(run_until(f, 2, 5000));
    assert_int_equal(o2.res.outcome, COMPUTE_NOTIFY_FAILED);
    notify(f, &s, &o3);
    assert_true(run_until(f, 3, 5000));
    assert_int_equal(o3.res.outcome, COMPUTE_NOTIFY_NOT_READY);
    assert_true(compute_hook_is_pending(f->hook, &s.tenant_id));
    assert_int_equal(f->cp.nreqs, 1);
}

static void test_locked_then_accepted_while_other_tenant_completes(void **state)
{
    Fixture *f = *state;
    ComputeHookOptions opts = TEST_OPTS;
    opts.control_plane_url = f->cp.url;
    opts.locked_max_attempts = 10000; /* bounded by the test, not the budget */
    opts.backoff_base_ms = 5;
    opts.backoff_max_ms = 20;
    hook_new_with(f, opts);
    /* T1 is answered 423 until the control plane has heard about T2 */
    Script *s1 = cp_script(&f->cp, T1);
    str_copy(s1->locked_until, sizeof(s1->locked_until), T2);

    NodeId n1[] = {4};
    NodeId n2[] = {5};
    ComputeHookTenant a = snap(T1, 0, 2048, NULL, n1, 1);
    ComputeHookTenant b = snap(T2, 0, 2048, NULL, n2, 1);
    TenantId t1 = a.tenant_id;
    Outcome oa = {0};
    Outcome ob = {.hook = f->hook, .watch = &t1};
    notify(f, &a, &oa);
    assert_true(run_until_requests(f, 1, 5000)); /* T1's first attempt: 423 */
    run_for(f, 30);                              /* a few more 423s */
    assert_int_equal(oa.calls, 0);
    assert_true(compute_hook_is_pending(f->hook, &t1));
    int before = count_for(&f->cp, T1);
    assert_true(before >= 1);

    notify(f, &b, &ob);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(ob.calls, 1);
    assert_int_equal(ob.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(ob.res.attempts, 1);
    assert_true(ob.watch_pending); /* T1 was still retrying while T2 completed */
    assert_int_equal(oa.calls, 0);

    assert_true(run_until(f, 2, 5000));
    assert_int_equal(oa.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(oa.res.status, 200);
    assert_true(oa.res.attempts >= 2);
    assert_int_equal(oa.res.attempts, count_for(&f->cp, T1));
    assert_true(ob.seq < oa.seq);
    assert_false(compute_hook_is_pending(f->hook, &t1));
    assert_int_equal(f->cp.max_live, 1);
}

static void test_locked_budget_exhausted(void **state)
{
    Fixture *f = *state;
    script_statuses(&f->cp, T1, NULL, 0, 423);
    NodeId n[] = {4};
    ComputeHookTenant s = snap(T1, 0, 2048, NULL, n, 1);
    Outcome o = {0};
    notify(f, &s, &o);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(o.res.outcome, COMPUTE_NOTIFY_LOCKED);
    assert_int_equal(o.res.status, 423);
    assert_int_equal(o.res.err.code, ERR_LOCKED);
    assert_int_equal(o.res.attempts, TEST_OPTS.locked_max_attempts);
    assert_int_equal(f->cp.nreqs, TEST_OPTS.locked_max_attempts);
    assert_true(compute_hook_is_pending(f->hook, &s.tenant_id));
    assert_int_equal(compute_hook_pending_count(f->hook), 1);
    assert_int_equal(counter(f, "compute_notifications_failed_total"), 1);
}

static void test_failures_leave_tenant_pending(void **state)
{
    Fixture *f = *state;
    static const struct {
        int statuses[4];
        int n;
        int then;
        ComputeNotifyOutcome outcome;
        int attempts; /* requests made */
        int status;
        ErrCode code;
    } cases[] = {
        /* 500 is not retried: the tenant is left pending at once */
        {{500}, 1, 0, COMPUTE_NOTIFY_FAILED, 1, 500, ERR_INTERNAL},
        {{400}, 1, 0, COMPUTE_NOTIFY_FAILED, 1, 400, ERR_BAD_REQUEST},
        /* 502-504 and 429 are retried until the budget (3) is exhausted */
        {{503, 502, 504}, 3, 0, COMPUTE_NOTIFY_FAILED, 3, 504, ERR_INTERNAL},
        {{429, 429, 429}, 3, 0, COMPUTE_NOTIFY_FAILED, 3, 429, ERR_TOO_MANY_REQUESTS},
        /* ... and succeed when the control plane recovers within it */
        {{503, 429}, 2, 0, COMPUTE_NOTIFY_SENT, 3, 200, ERR_NONE},
    };
    NodeId nodes[][1] = {{1}, {2}, {3}, {4}, {5}};
    int total = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        script_statuses(&f->cp, T1, cases[i].statuses, cases[i].n, cases[i].then);
        ComputeHookTenant s = snap(T1, 0, 2048, NULL, nodes[i], 1);
        Outcome o = {0};
        int before = f->cp.nreqs;
        notify(f, &s, &o);
        assert_true(run_until(f, (int)i + 1, 5000));
        assert_int_equal(o.res.outcome, cases[i].outcome);
        assert_int_equal(o.res.attempts, cases[i].attempts);
        assert_int_equal(f->cp.nreqs - before, cases[i].attempts);
        assert_int_equal(o.res.status, cases[i].status);
        if (cases[i].code == ERR_NONE) {
            assert_false(compute_hook_is_pending(f->hook, &s.tenant_id));
        } else {
            assert_int_equal(o.res.err.code, cases[i].code);
            assert_non_null(strstr(o.res.err.msg, T1));
            assert_true(compute_hook_is_pending(f->hook, &s.tenant_id));
            total++;
        }
    }
    assert_int_equal(counter(f, "compute_notifications_failed_total"), (uint64_t)total);
    assert_int_equal(counter(f, "compute_notifications_sent_total"), 1);
}

static void test_transport_errors_retried_then_pending(void **state)
{
    Fixture *f = *state;
    char url[64];
    assert_true(str_printf(url, sizeof(url), "http://127.0.0.1:%d", closed_port()));
    ComputeHookOptions opts = TEST_OPTS;
    opts.control_plane_url = url;
    hook_new_with(f, opts);
    NodeId n[] = {9};
    ComputeHookTenant s = snap(T2, 0, 2048, NULL, n, 1);
    Outcome o = {0};
    notify(f, &s, &o);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(o.res.outcome, COMPUTE_NOTIFY_FAILED);
    assert_int_equal(o.res.status, 0);
    assert_int_equal(o.res.attempts, TEST_OPTS.max_attempts);
    assert_int_equal(o.res.err.code, ERR_UNAVAILABLE);
    assert_true(compute_hook_is_pending(f->hook, &s.tenant_id));
}

/* A hook freed while a notification still waits (here: its retries against a closed port, with a
 * long backoff): its callback never runs, and its arg goes to the options' drop_arg, once. */
static int g_dropped;
static void drop_outcome(void *arg)
{
    Outcome *o = arg;
    o->calls += 100; /* marks it as dropped, not answered */
    g_dropped++;
}

static void test_free_drops_the_args_of_callbacks_that_never_run(void **state)
{
    Fixture *f = *state;
    char url[64];
    assert_true(str_printf(url, sizeof(url), "http://127.0.0.1:%d", closed_port()));
    ComputeHookOptions opts = TEST_OPTS;
    opts.control_plane_url = url;
    opts.max_attempts = 50;
    opts.backoff_base_ms = 60000;
    opts.backoff_max_ms = 60000;
    opts.drop_arg = drop_outcome;
    hook_new_with(f, opts);
    NodeId n[] = {9};
    ComputeHookTenant s = snap(T2, 0, 2048, NULL, n, 1);
    Outcome o = {0};
    notify(f, &s, &o);
    run_for(f, 50); /* the first attempt fails; the retry waits a minute */
    assert_int_equal(o.calls, 0);
    assert_true(compute_hook_is_pending(f->hook, &s.tenant_id));
    g_dropped = 0;
    compute_hook_free(f->hook);
    f->hook = NULL;
    assert_int_equal(g_dropped, 1);
    assert_int_equal(o.calls, 100); /* dropped, never answered */
}

static void test_disabled(void **state)
{
    Fixture *f = *state;
    hook_new_with(f, (ComputeHookOptions){.control_plane_url = ""});
    assert_false(compute_hook_enabled(f->hook));
    NodeId n[] = {1};
    ComputeHookTenant s = snap(T1, 0, 2048, NULL, n, 1);
    NodeId half[] = {1, COMPUTE_HOOK_NODE_UNKNOWN};
    ComputeHookTenant h = snap(T1, 2, 2048, NULL, half, 2);
    Outcome o1 = {0}, o2 = {0};
    notify(f, &s, &o1);
    notify(f, &h, &o2);
    assert_true(run_until(f, 2, 5000));
    assert_int_equal(o1.res.outcome, COMPUTE_NOTIFY_DISABLED);
    assert_int_equal(o2.res.outcome, COMPUTE_NOTIFY_DISABLED);
    assert_true(compute_notify_outcome_ok(o1.res.outcome));
    assert_false(compute_hook_is_pending(f->hook, &s.tenant_id));
    run_for(f, 30);
    assert_int_equal(f->cp.nreqs, 0);
}

static void test_newer_map_supersedes_queued(void **state)
{
    Fixture *f = *state;
    cp_script(&f->cp, T1)->delay_ms = 150;
    NodeId m1[] = {1}, m2[] = {2}, m3[] = {3};
    ComputeHookTenant s1 = snap(T1, 0, 2048, NULL, m1, 1);
    ComputeHookTenant s2 = snap(T1, 0, 2048, NULL, m2, 1);
    ComputeHookTenant s3 = snap(T1, 0, 2048, NULL, m3, 1);
    Outcome o1 = {0}, o1b = {0}, o2 = {0}, o2b = {0}, o3 = {0};
    notify(f, &s1, &o1);
    assert_true(run_until_requests(f, 1, 5000)); /* m1 in flight */
    notify(f, &s2, &o2);                         /* queued */
    notify(f, &s2, &o2b);                        /* joins the queued m2 */
    notify(f, &s1, &o1b); /* joins m1 in flight; m2 is older than it now: superseded */
    assert_true(run_until(f, 2, 5000));
    assert_int_equal(o2.res.outcome, COMPUTE_NOTIFY_SUPERSEDED);
    assert_int_equal(o2b.res.outcome, COMPUTE_NOTIFY_SUPERSEDED);
    assert_int_equal(o2.res.attempts, 0);
    notify(f, &s3, &o3); /* queued behind m1 */
    assert_true(run_until(f, 5, 5000));
    assert_int_equal(o1.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(o1b.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(o3.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_true(o1.seq < o3.seq);
    assert_int_equal(f->cp.nreqs, 2); /* m1 and m3 only, never m2 */
    assert_non_null(strstr(f->cp.reqs[0].body, "\"node_id\":1,"));
    assert_non_null(strstr(f->cp.reqs[1].body, "\"node_id\":3,"));
    assert_int_equal(f->cp.max_live, 1); /* one request per tenant at a time */
    assert_false(compute_hook_is_pending(f->hook, &s1.tenant_id));
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_newer_map_supersedes_retry_wait(void **state)
{
    Fixture *f = *state;
    ComputeHookOptions opts = TEST_OPTS;
    opts.control_plane_url = f->cp.url;
    opts.backoff_base_ms = 10000; /* a long wait (full jitter: 0-10 s) before each retry */
    opts.backoff_max_ms = 10000;
    opts.max_attempts = 5;
    hook_new_with(f, opts);
    /* m1 (node 1) always gets 503; m2 (node 2) is accepted */
    cp_script(&f->cp, T1)->unavailable_if = "\"node_id\":1,";
    NodeId m1[] = {1}, m2[] = {2};
    ComputeHookTenant s1 = snap(T1, 0, 2048, NULL, m1, 1);
    ComputeHookTenant s2 = snap(T1, 0, 2048, NULL, m2, 1);
    Outcome o1 = {0}, o2 = {0};
    notify(f, &s1, &o1);
    assert_true(run_until_requests(f, 1, 5000));
    run_for(f, 20); /* m1 got its 503 and (almost surely) waits to retry */
    assert_int_equal(o1.calls, 0);
    int64_t t0 = mono_ms();
    notify(f, &s2, &o2);
    assert_true(run_until(f, 2, 15000));
    /* m2 did not wait for m1's retry: superseded at once */
    assert_true(mono_ms() - t0 < 500);
    assert_int_equal(o1.res.outcome, COMPUTE_NOTIFY_SUPERSEDED);
    assert_true(o1.res.attempts >= 1);
    assert_int_equal(o2.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(o2.res.attempts, 1);
    assert_int_equal(f->cp.nreqs, o1.res.attempts + 1);
    assert_non_null(strstr(f->cp.reqs[f->cp.nreqs - 1].body, "\"node_id\":2,"));
}

static void test_forget_cancels(void **state)
{
    Fixture *f = *state;
    cp_script(&f->cp, T1)->delay_ms = 200;
    NodeId m1[] = {1}, m2[] = {2};
    ComputeHookTenant s1 = snap(T1, 0, 2048, NULL, m1, 1);
    ComputeHookTenant s2 = snap(T1, 0, 2048, NULL, m2, 1);
    Outcome o1 = {0}, o2 = {0}, o3 = {0};
    notify(f, &s1, &o1);
    notify(f, &s2, &o2);
    assert_true(run_until_requests(f, 1, 5000));
    compute_hook_forget(f->hook, &s1.tenant_id);
    assert_false(compute_hook_is_pending(f->hook, &s1.tenant_id));
    assert_true(run_until(f, 2, 5000));
    assert_int_equal(o1.res.outcome, COMPUTE_NOTIFY_CANCELLED);
    assert_int_equal(o2.res.outcome, COMPUTE_NOTIFY_CANCELLED);
    run_for(f, 300);
    assert_int_equal(g_done, 2);
    assert_int_equal(f->cp.nreqs, 1);
    compute_hook_forget(f->hook, &s1.tenant_id); /* unknown now: no-op */

    /* nothing remembered: the same map is sent again */
    f->cp.scripts[0].delay_ms = 0;
    notify(f, &s1, &o3);
    assert_true(run_until(f, 3, 5000));
    assert_int_equal(o3.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(f->cp.nreqs, 2);
}

static void test_many_tenants(void **state)
{
    Fixture *f = *state;
    enum { N = 300 }; /* beyond the initial hash table size: exercises growth */
    static Outcome os[N];
    memset(os, 0, sizeof(os));
    for (int i = 0; i < N; i++) {
        char hex[ID_STR_SIZE];
        assert_true(str_printf(hex, sizeof(hex), "%032x", i + 1));
        NodeId n[] = {(NodeId)(i % 7)};
        ComputeHookTenant s = snap(hex, 0, 2048, NULL, n, 1);
        notify(f, &s, &os[i]);
    }
    assert_int_equal(compute_hook_pending_count(f->hook), N);
    assert_true(run_until(f, N, 20000));
    for (int i = 0; i < N; i++)
        assert_int_equal(os[i].res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(compute_hook_pending_count(f->hook), 0);
    assert_int_equal(f->cp.nreqs, N);
}

/* At most max_inflight requests run over all tenants; the others wait their turn (FIFO). */
static void test_request_slots(void **state)
{
    Fixture *f = *state;
    ComputeHookOptions opts = TEST_OPTS;
    opts.control_plane_url = f->cp.url;
    opts.max_inflight = 2;
    hook_new_with(f, opts);
    enum { N = 8 };
    static Outcome os[N];
    memset(os, 0, sizeof(os));
    for (int i = 0; i < N; i++) {
        char hex[ID_STR_SIZE];
        assert_true(str_printf(hex, sizeof(hex), "%032x", i + 1));
        cp_script(&f->cp, hex)->delay_ms = 30;
        NodeId n[] = {1};
        ComputeHookTenant s = snap(hex, 0, 2048, NULL, n, 1);
        notify(f, &s, &os[i]);
    }
    assert_int_equal(compute_hook_pending_count(f->hook), N);
    assert_true(run_until(f, N, 20000));
    for (int i = 0; i < N; i++)
        assert_int_equal(os[i].res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(f->cp.nreqs, N);
    assert_true(f->cp.max_live <= 2);
    assert_true(f->cp.max_live >= 1);
}

/* ---- a second instance of the notifier: a tenant-scoped import_complete ---- */

typedef struct ImportDone {
    const char *tenant; /* hex */
    const char *status;
} ImportDone;

static bool render_import(const void *input, char **body, Err *err)
{
    const ImportDone *d = input;
    if (d->status == NULL) {
        err_set(err, ERR_UNAVAILABLE, "import still running");
        return false;
    }
    *body = str_dup_printf("{\"tenant_id\":\"%s\",\"status\":\"%s\"}", d->tenant, d->status);
    return true;
}

typedef struct NOutcome {
    int calls;
    NotifierResult res;
    uint8_t key[NOTIFIER_KEY_MAX];
} NOutcome;

static void on_notified(const NotifierResult *res, void *arg)
{
    NOutcome *o = arg;
    assert_false(g_in_notify);
    o->calls++;
    o->res = *res;
    memcpy(o->key, res->key, res->key_len);
    g_done++;
}

static int g_dropped;
static void count_drop(void *arg)
{
    g_dropped++;
}

static void import_notify(Notifier *n, const ImportDone *d, NOutcome *o)
{
    TenantId t = tid(d->tenant);
    g_in_notify = true;
    notifier_notify(n, t.b, sizeof(t.b), d->tenant, d, on_notified, o);
    g_in_notify = false;
    assert_int_equal(o->calls, 0);
}

/* The same mechanism with another body renderer, URL and metric prefix: coalescing, dedup against
 * the accepted body, NOT_READY from the renderer, retries, and free dropping waiting callbacks. */
static void test_second_notifier_instance(void **state)
{
    Fixture *f = *state;
    char url[128];
    assert_true(str_printf(url, sizeof(url), "%simport-complete", f->cp.url)); /* url ends in / */
    NotifierOptions no = {
        .what = "import notification",
        .url = url,
        .method = "PUT",
        .render = render_import,
        .drop_arg = count_drop,
        .metric_prefix = "import_notifications",
        .timeout_ms = 2000,
        .max_attempts = 3,
        .backoff_base_ms = 2,
        .backoff_max_ms = 10,
    };
    Notifier *n = notifier_new(f->base, f->http, f->metrics, &no);
    assert_true(notifier_enabled(n));
    int retry[] = {503};
    script_statuses(&f->cp, T2, retry, 1, 200);
    ImportDone running = {T2, NULL}, done = {T2, "done"};
    NOutcome o1 = {0}, o2 = {0}, o3 = {0}, o4 = {0};
    import_notify(n, &running, &o1);
    import_notify(n, &done, &o2);
    import_notify(n, &done, &o3); /* joins the job in flight */
    assert_true(run_until(f, 3, 5000));
    assert_int_equal(o1.res.outcome, NOTIFIER_NOT_READY);
    assert_int_equal(o2.res.outcome, NOTIFIER_SENT);
    assert_int_equal(o2.res.attempts, 2); /* the 503 was retried */
    assert_int_equal(o3.res.outcome, NOTIFIER_SENT);
    TenantId t2 = tid(T2);
    assert_memory_equal(o2.key, t2.b, sizeof(t2.b));
    assert_int_equal(f->cp.nreqs, 2);
    assert_string_equal(f->cp.reqs[1].path, "/import-complete");
    assert_string_equal(f->cp.reqs[1].body, "{\"tenant_id\":\"" T2 "\",\"status\":\"done\"}");
    assert_false(notifier_is_pending(n, t2.b, sizeof(t2.b)));
    import_notify(n, &done, &o4);
    assert_true(run_until(f, 4, 5000));
    assert_int_equal(o4.res.outcome, NOTIFIER_DEDUPLICATED);
    assert_int_equal(counter(f, "import_notifications_sent_total"), 1);
    assert_int_equal(counter(f, "import_notifications_deduplicated_total"), 1);
    assert_int_equal(counter(f, "compute_notifications_sent_total"), 0);

    /* freed with a request in flight and a delivery queued: both callbacks are dropped */
    cp_script(&f->cp, T3)->delay_ms = 200;
    ImportDone other = {T3, "done"};
    NOutcome o5 = {0}, o6 = {0};
    import_notify(n, &other, &o5);
    import_notify(n, &running, &o6); /* NOT_READY, queued for delivery */
    g_dropped = 0;
    notifier_free(n);
    assert_int_equal(g_dropped, 2);
    run_for(f, 300);
    assert_int_equal(o5.calls + o6.calls, 0);
}

/* ---- a durable store of accepted hashes (notifier.h "store"), faked ---- */

#define MAX_WRITES 64

typedef struct FakeStore {
    struct event_base *base;
    Cp *cp;
    int writes;                /* write calls */
    char log[MAX_WRITES][160]; /* per write: "T1=<hash>|none,..." */
    int nreqs_at[MAX_WRITES];  /* requests the control plane had seen when the write came */
    bool hold;                 /* do not complete until fake_store_release */
    int fail_next;             /* writes to fail */
    bool pending;
    NotifierStoreDoneFn done;
    void *done_arg;
    struct event *ev;
} FakeStore;

static void hex32(const uint8_t *h, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static void fake_store_fire(evutil_socket_t fd, short what, void *arg)
{
    FakeStore *fs = arg;
    fs->pending = false;
    if (fs->fail_next > 0) {
        fs->fail_next--;
        Err e;
        err_set(&e, ERR_UNAVAILABLE, "database down");
        fs->done(&e, fs->done_arg);
        return;
    }
    fs->done(NULL, fs->done_arg);
}

static void fake_store_write(void *ctx, const NotifierStoreEntry *entries, size_t n,
                             NotifierStoreDoneFn done, void *done_arg)
{
    FakeStore *fs = ctx;
    assert_false(fs->pending); /* one write at a time */
    assert_true(fs->writes < MAX_WRITES);
    char *line = fs->log[fs->writes];
    line[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        TenantId t;
        memcpy(t.b, entries[i].key, sizeof(t.b));
        char id[ID_STR_SIZE], h[65];
        tenant_id_format(&t, id);
        if (entries[i].has_hash)
            hex32(entries[i].hash, h);
        size_t len = strlen(line);
        snprintf(line + len, sizeof(fs->log[0]) - len, "%s%.4s=%s", i ? "," : "", id,
                 entries[i].has_hash ? h : "none");
    }
    fs->nreqs_at[fs->writes++] = fs->cp->nreqs;
    fs->done = done;
    fs->done_arg = done_arg;
    fs->pending = true;
    if (!fs->hold)
        event_active(fs->ev, 0, 0);
}

static void fake_store_release(FakeStore *fs)
{
    fs->hold = false;
    if (fs->pending)
        event_active(fs->ev, 0, 0);
}

static void hook_with_store(Fixture *f, FakeStore *fs)
{
    memset(fs, 0, sizeof(*fs));
    fs->base = f->base;
    fs->cp = &f->cp;
    fs->ev = event_new(f->base, -1, 0, fake_store_fire, fs);
    ComputeHookOptions opts = TEST_OPTS;
    opts.control_plane_url = f->cp.url;
    opts.store = (NotifierStore){.write = fake_store_write, .ctx = fs};
    hook_new_with(f, opts);
}

static void store_idle(Fixture *f)
{
    for (int i = 0; i < 400 && !compute_hook_store_idle(f->hook); i++)
        run_for(f, 5);
    assert_true(compute_hook_store_idle(f->hook));
}

/* body_hash_hex: the SHA-256 of a body the control plane received, as the store logs it. */
static void body_hash_hex(const char *body, char out[65])
{
    uint8_t h[32];
    SHA256((const unsigned char *)body, strlen(body), h);
    hex32(h, out);
}

/* The record is written after the 2xx and removed, durably, before a different body is sent. */
static void test_store_record_after_accept_removed_before_send(void **state)
{
    Fixture *f = *state;
    FakeStore fs;
    hook_with_store(f, &fs);
    NodeId a[] = {1, 2}, b[] = {1, 3};
    ComputeHookTenant sa = snap(T1, 2, 2048, NULL, a, 2);
    ComputeHookTenant sb = snap(T1, 2, 2048, NULL, b, 2);

    /* a new tenant has no record: sent at once, recorded after the answer */
    Outcome o1 = {0};
    notify(f, &sa, &o1);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(o1.res.outcome, COMPUTE_NOTIFY_SENT);
    store_idle(f);
    assert_int_equal(fs.writes, 1);
    assert_int_equal(fs.nreqs_at[0], 1);
    char h[65], want[160];
    body_hash_hex(f->cp.reqs[0].body, h);
    snprintf(want, sizeof(want), "1f35=%s", h);
    assert_string_equal(fs.log[0], want);
    assert_true(compute_hook_is_current(f->hook, &sa));
    assert_false(compute_hook_is_current(f->hook, &sb));

    /* a changed map: the record goes first; nothing is sent while that write is held */
    fs.hold = true;
    Outcome o2 = {0};
    notify(f, &sb, &o2);
    run_for(f, 50);
    assert_int_equal(fs.writes, 2);
    assert_string_equal(fs.log[1], "1f35=none");
    assert_int_equal(f->cp.nreqs, 1);
    assert_true(compute_hook_is_pending(f->hook, &sb.tenant_id));
    fake_store_release(&fs);
    assert_true(run_until(f, 2, 5000));
    assert_int_equal(o2.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_int_equal(f->cp.nreqs, 2);
    store_idle(f);
    assert_int_equal(fs.writes, 3);
    body_hash_hex(f->cp.reqs[1].body, h);
    snprintf(want, sizeof(want), "1f35=%s", h);
    assert_string_equal(fs.log[2], want);

    /* the same map again: deduplicated, no write */
    Outcome o3 = {0};
    notify(f, &sb, &o3);
    assert_true(run_until(f, 3, 5000));
    assert_int_equal(o3.res.outcome, COMPUTE_NOTIFY_DEDUPLICATED);
    assert_int_equal(fs.writes, 3);

    /* a failed removal is retried; the body waits for it */
    fs.fail_next = 1;
    Outcome o4 = {0};
    notify(f, &sa, &o4);
    run_for(f, 200);
    assert_int_equal(fs.writes, 4);
    assert_int_equal(f->cp.nreqs, 2);
    assert_true(run_until(f, 4, 5000));
    assert_int_equal(o4.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_true(fs.writes >= 5);
    assert_string_equal(fs.log[4], "1f35=none");
    assert_int_equal(fs.nreqs_at[4], 2);
    store_idle(f);

    /* forget: the record goes too */
    int before = fs.writes;
    compute_hook_forget(f->hook, &sa.tenant_id);
    store_idle(f);
    assert_int_equal(fs.writes, before + 1);
    assert_string_equal(fs.log[before], "1f35=none");
    event_free(fs.ev);
}

/* After a restart: seeded records deduplicate; a failed notification leaves no record, so the
 * tenant is not current. */
static void test_store_seed_after_restart(void **state)
{
    Fixture *f = *state;
    FakeStore fs;
    hook_with_store(f, &fs);
    NodeId a[] = {1, 2}, b[] = {1, 3};
    ComputeHookTenant sa = snap(T1, 2, 2048, NULL, a, 2);
    ComputeHookTenant sb = snap(T1, 2, 2048, NULL, b, 2);
    ComputeHookTenant s2 = snap(T2, 2, 2048, NULL, a, 2);
    char *body = NULL;
    Err err;
    assert_true(compute_hook_render_body(&sa, &body, &err));
    uint8_t h[32];
    SHA256((const unsigned char *)body, strlen(body), h);
    free(body);
    compute_hook_seed(f->hook, &sa.tenant_id, h);
    assert_true(compute_hook_is_current(f->hook, &sa));
    assert_false(compute_hook_is_current(f->hook, &sb));
    assert_false(compute_hook_is_current(f->hook, &s2)); /* no record */

    Outcome o1 = {0};
    notify(f, &sa, &o1);
    assert_true(run_until(f, 1, 5000));
    assert_int_equal(o1.res.outcome, COMPUTE_NOTIFY_DEDUPLICATED);
    assert_int_equal(f->cp.nreqs, 0);
    assert_int_equal(fs.writes, 0);

    /* the control plane fails T2's first notification: no record, still not current */
    static const int fail500[] = {500};
    script_statuses(&f->cp, T2, fail500, 1, 0);
    Outcome o2 = {0};
    notify(f, &s2, &o2);
    assert_true(run_until(f, 2, 5000));
    assert_int_equal(o2.res.outcome, COMPUTE_NOTIFY_FAILED);
    assert_int_equal(fs.writes, 0);
    assert_false(compute_hook_is_current(f->hook, &s2));

    /* the seeded tenant's map changes: its record is removed before the send */
    Outcome o3 = {0};
    notify(f, &sb, &o3);
    assert_true(run_until(f, 3, 5000));
    assert_int_equal(o3.res.outcome, COMPUTE_NOTIFY_SENT);
    assert_string_equal(fs.log[0], "1f35=none");
    assert_int_equal(fs.nreqs_at[0], 1);
    store_idle(f);
    event_free(fs.ev);
}

static void test_outcome_names(void **state)
{
    static const char *const names[COMPUTE_NOTIFY_COUNT] = {"sent",      "deduplicated", "disabled",
                                                            "not_ready", "superseded",   "locked",
                                                            "failed",    "cancelled"};
    for (int i = 0; i < COMPUTE_NOTIFY_COUNT; i++)
        assert_string_equal(compute_notify_outcome_name((ComputeNotifyOutcome)i), names[i]);
    assert_string_equal(compute_notify_outcome_name(COMPUTE_NOTIFY_COUNT), "?");
}

int main(void)
{
    Err err;
    if (!log_init("test", LOG_WARN, NULL, &err))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_body_one_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_eight_shards, setup, teardown),
        cmocka_unit_test(test_render_body_table),
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_map_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_then_accepted_while_other_tenant_completes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_budget_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_leave_tenant_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_errors_retried_then_pending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_drops_the_args_of_callbacks_that_never_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_newer_map_supersedes_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_map_supersedes_retry_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_notifier_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_record_after_accept_removed_before_send, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_seed_after_restart, setup, teardown),
        cmocka_unit_test(test_outcome_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
