/* test_pageserver_page_service.c: the page service's connection handling and its basebackup
 * streaming, in process over real loopback sockets: a client thread speaks the wire protocol
 * (shared/pgwire.h) while the test's loop runs the page service. basebackup_build is a stub
 * given through the page service's configuration (the real builder is pageserver/basebackup.c):
 * it writes a known pattern, more than the output high-water mark, into the file it is given.
 * Checked: the CopyOut stream is the file's bytes in order, then CopyDone, CommandComplete and
 * ReadyForQuery, also for a client that reads slowly; a failed build is an ErrorResponse and the
 * connection stays usable; no builder answers "basebackup is not available"; the arguments reach
 * the builder (LSN, --gzip); a tenant without shard 0 here, a malformed LSN, SSLRequest, and a
 * malformed message (08P01, closed). The connection threads: many pipelining pagestream
 * connections spread over the threads, each answered completely and in order (requests refused on
 * the connection's thread, by the routing on the main loop, and by the read path, mixed);
 * --pg-max-connections counted across the threads; stop and free with connections streaming and
 * reads in flight; a connection closed while its basebackup is being built. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "shared/key.h"
#include "shared/metrics.h"
#include "shared/pgwire.h"

#include "pageserver/page_service.h"

#include "loop_util.h"
#include "pageserver_fixture.h"

#define BB_BYTES (3u * 1024 * 1024 + 123) /* more than the 1 MiB output high-water mark */

/* ---- the stub builder ---- */

typedef struct Stub {
    PageserverApp *app;
    int calls;
    bool fail;
    bool hold; /* the test completes the build itself (stub_complete) */
    Lsn lsn;
    bool gzip;
    TenantShardId tsid;
    /* the pending completion */
    BasebackupDoneFn done;
    void *arg;
} Stub;

static Stub g_stub;

static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)(i * 31 + i / 4096);
}

static void stub_complete(void *unused)
{
    Err err = {0};
    if (g_stub.fail)
        err_set(&err, ERR_INTERNAL, "stub: the build failed");
    g_stub.done(g_stub.fail ? &err : NULL, 0x16B3748, g_stub.arg);
}

static void stub_build(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *tl,
                       Lsn lsn, bool gzip, int out_fd, BasebackupDoneFn done, void *arg)
{
    g_stub.calls++;
    g_stub.lsn = lsn;
    g_stub.gzip = gzip;
    g_stub.tsid = *tsid;
    if (!g_stub.fail) { /* a test stub: the file is written right here */
        uint8_t *buf = malloc(BB_BYTES);
        for (size_t i = 0; i < BB_BYTES; i++)
            buf[i] = pattern_byte(i);
        assert_int_equal(pwrite(out_fd, buf, BB_BYTES, 0), BB_BYTES);
        free(buf);
    }
    g_stub.done = done;
    g_stub.arg = arg;
    if (!g_stub.hold)
        pageserver_defer(g_stub.app, stub_complete, NULL); /* never from inside the call */
}

/* ---- the client thread ---- */

typedef struct Client {
    uint16_t port;
    const char *queries[4]; /* run one after the other on one connection */
    size_t n_queries;
    bool slow;                     /* sleep after the first CopyData: the server must wait for us */
    bool ssl_first;                /* send an SSLRequest before the startup message */
    const char *raw_after_startup; /* instead of queries: these bytes (a protocol violation) */
    size_t raw_len;
    /* results, per query */
    char types[4][64]; /* the message types received until ReadyForQuery (or the close) */
    char error[4][256];
    uint8_t *copy; /* the CopyData bytes of the last query */
    size_t copy_len;
    bool closed; /* the server closed the connection */
    int done;    /* set when the thread ends (the loop waits for it) */
} Client;

typedef struct Reader {
    int fd;
    PgwireParser p;
} Reader;

static bool reader_next(Reader *r, PgwireMsg *m)
{
    for (;;) {
        Err err = {0};
        PgwireFrameResult res = pgwire_parser_next(&r->p, m, &err);
        if (res == PGWIRE_MSG)
            return true;
        if (res == PGWIRE_ERROR)
            return false;
        char buf[16384];
        ssize_t n = read(r->fd, buf, sizeof(buf));
        if (n <= 0)
            return false;
        pgwire_parser_feed(&r->p, buf, (size_t)n);
    }
}

static void send_all(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void *client_main(void *arg)
{
    Client *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(c->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        c->closed = true;
        __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    Reader r = {.fd = fd};
    pgwire_parser_init(&r.p, false, 1u << 20);
    StrBuf b = STRBUF_INIT;
    if (c->ssl_first) {
        pgwire_put_ssl_request(&b);
        send_all(fd, b.data, b.len);
        strbuf_reset(&b);
        char n = 0;
        assert_int_equal(read(fd, &n, 1), 1);
        assert_int_equal(n, 'N');
    }
    const char *names[] = {"user"};
    const char *values[] = {"test"};
    pgwire_put_startup(&b, 1, names, values);
    send_all(fd, b.data, b.len);
    strbuf_reset(&b);
    PgwireMsg m;
    while (reader_next(&r, &m) && m.type != 'Z') /* AuthenticationOk, ParameterStatus... */
        ;
    if (c->raw_after_startup != NULL) {
        send_all(fd, c->raw_after_startup, c->raw_len);
        size_t k = 0;
        while (reader_next(&r, &m) && k + 1 < sizeof(c->types[0])) {
            c->types[0][k++] = (char)m.type;
            PgwireError e;
            Err err = {0};
            if (m.type == 'E' && pgwire_decode_error(&m, &e, &err))
                str_printf(c->error[0], sizeof(c->error[0]), "%s %s", e.code, e.message);
        }
        c->closed = true;
    }
    for (size_t q = 0; q < c->n_queries && !c->closed; q++) {
        pgwire_put_query(&b, c->queries[q]);
        send_all(fd, b.data, b.len);
        strbuf_reset(&b);
        free(c->copy);
        c->copy = NULL;
        c->copy_len = 0;
        size_t k = 0;
        for (;;) {
            if (!reader_next(&r, &m)) {
                c->closed = true;
                break;
            }
            if (k + 1 < sizeof(c->types[q]) &&
                (k == 0 || m.type != 'd' || c->types[q][k - 1] != 'd'))
                c->types[q][k++] = (char)m.type; /* runs of CopyData recorded once */
            if (m.type == 'E') {
                PgwireError e;
                Err err = {0};
                if (pgwire_decode_error(&m, &e, &err))
                    str_printf(c->error[q], sizeof(c->error[q]), "%s %s", e.code, e.message);
            } else if (m.type == 'd') {
                c->copy = realloc(c->copy, c->copy_len + m.len);
                memcpy(c->copy + c->copy_len, m.payload, m.len);
                if (c->slow && c->copy_len == 0)
                    usleep(500 * 1000);
                c->copy_len += m.len;
            } else if (m.type == 'Z') {
                break;
            }
        }
    }
    strbuf_finish(&b);
    pgwire_parser_finish(&r.p);
    close(fd);
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* run_client: the client on its own thread while this thread runs the loop. */
static void run_client(PageserverApp *app, Client *c)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_main, c), 0);
    const long deadline_ms = 30000;
    for (long waited = 0; !__atomic_load_n(&c->done, __ATOMIC_SEQ_CST) && waited < deadline_ms;
         waited += 5)
        loop_run_for(app->base, 5);
    assert_true(__atomic_load_n(&c->done, __ATOMIC_SEQ_CST));
    pthread_join(t, NULL);
}

/* ---- setup ---- */

typedef struct Env {
    Fixture *f;
    PageService *ps;
    TenantShardId shard0;
    char tenant[ID_STR_SIZE], other[ID_STR_SIZE];
    char tl[ID_STR_SIZE];
} Env;

static void env_start_threads(void **state, Env *e, BasebackupBuildFn build, size_t threads,
                              uint64_t max_connections)
{
    e->f = *state;
    PageserverApp *app = &e->f->app;
    memset(&g_stub, 0, sizeof(g_stub));
    g_stub.app = app;
    /* shard 0 of a 2-shard tenant is here; of another tenant only shard 1 */
    e->shard0 = make_tsid(3, 0, 2);
    TenantShardId other1 = make_tsid(4, 1, 2);
    (void)active_slot(app->tenants, &e->shard0, 8);
    (void)active_slot(app->tenants, &other1, 8);
    tenant_id_format(&e->shard0.tenant_id, e->tenant);
    tenant_id_format(&other1.tenant_id, e->other);
    TimelineId tl;
    memset(&tl, 0x5a, sizeof(tl));
    timeline_id_format(&tl, e->tl);
    PageServiceConfig cfg = {.max_connections = max_connections,
                             .handshake_timeout_ms = 10000,
                             .idle_timeout_ms = 10000,
                             .threads = threads,
                             .basebackup_build = build};
    str_copy(cfg.listen.host, sizeof(cfg.listen.host), "127.0.0.1");
    Err err = {0};
    if (!page_service_start(app, &cfg, &e->ps, &err))
        fail_msg("page_service_start: %s", err.msg);
}

static void env_start(void **state, Env *e, BasebackupBuildFn build)
{
    env_start_threads(state, e, build, 0, 10);
}

static void env_stop(Env *e)
{
    page_service_free(e->ps);
}

/* ---- tests ---- */

static void check_pattern(const Client *c)
{
    assert_int_equal(c->copy_len, BB_BYTES);
    for (size_t i = 0; i < BB_BYTES; i++)
        if (c->copy[i] != pattern_byte(i))
            fail_msg("basebackup byte %zu differs", i);
}

static void test_basebackup_streams_the_built_file(void **state)
{
    Env e;
    env_start(state, &e, stub_build);
    char q1[256], q2[256];
    str_printf(q1, sizeof(q1), "basebackup %s %s%s", e.tenant, e.tl, "");
    str_printf(q2, sizeof(q2), "basebackup %s %s%s", e.tenant, e.tl, " 0/16B3748 --gzip");
    for (int slow = 0; slow <= 1; slow++) {
        Client c = {.port = page_service_port(e.ps),
                    .queries = {q1, q2},
                    .n_queries = 2,
                    .slow = slow == 1,
                    .ssl_first = slow == 1};
        run_client(&e.f->app, &c);
        assert_false(c.closed);
        /* CopyOutResponse, CopyData..., CopyDone, CommandComplete, ReadyForQuery, twice */
        assert_string_equal(c.types[0], "HdcCZ");
        assert_string_equal(c.types[1], "HdcCZ");
        check_pattern(&c);
        free(c.copy);
    }
    assert_int_equal(g_stub.calls, 4);
    assert_true(g_stub.lsn == 0x16B3748);
    assert_true(g_stub.gzip);
    assert_true(tsid_eq(&g_stub.tsid, &e.shard0));
    env_stop(&e);
}

static void test_basebackup_errors_keep_the_connection(void **state)
{
    Env e;
    env_start(state, &e, stub_build);
    g_stub.fail = true;
    char failing[256], other[256], bad_lsn[256], extra[256];
    str_printf(failing, sizeof(failing), "basebackup %s %s%s", e.tenant, e.tl, " latest");
    str_printf(other, sizeof(other), "basebackup %s %s%s", e.other, e.tl,
               ""); /* shard 0 not here */
    str_printf(bad_lsn, sizeof(bad_lsn), "basebackup %s %s%s", e.tenant, e.tl, " 0/zz");
    str_printf(extra, sizeof(extra), "basebackup %s %s%s", e.tenant, e.tl, " latest --fast");
    Client c = {.port = page_service_port(e.ps),
                .queries = {failing, other, bad_lsn, extra},
                .n_queries = 4};
    run_client(&e.f->app, &c);
    assert_false(c.closed);
    for (int i = 0; i < 4; i++)
        assert_string_equal(c.types[i], "EZ");
    assert_non_null(strstr(c.error[0], "stub: the build failed"));
    assert_non_null(strstr(c.error[1], "shard number 0"));
    assert_non_null(strstr(c.error[2], "42601"));
    assert_non_null(strstr(c.error[3], "--fast"));
    assert_int_equal(g_stub.calls, 1); /* only the first reached the builder */
    assert_true(g_stub.lsn == LSN_INVALID);
    free(c.copy);
    env_stop(&e);
}

static void test_basebackup_not_available(void **state)
{
    Env e;
    env_start(state, &e, NULL);
    char q[256];
    str_printf(q, sizeof(q), "basebackup %s %s%s", e.tenant, e.tl, "");
    Client c = {
        .port = page_service_port(e.ps), .queries = {q, "", "no_such_command"}, .n_queries = 3};
    run_client(&e.f->app, &c);
    assert_string_equal(c.types[0], "EZ");
    assert_non_null(strstr(c.error[0], "basebackup is not available"));
    assert_string_equal(c.types[1], "IZ"); /* an empty query */
    assert_string_equal(c.types[2], "EZ");
    assert_non_null(strstr(c.error[2], "unsupported command"));
    free(c.copy);
    env_stop(&e);
}

static void test_protocol_violation_closes(void **state)
{
    Env e;
    env_start(state, &e, NULL);
    static const char OVERSIZED[] = "Q\x7f\xff\xff\xff";
    static const char WRONG_TYPE[] = "d\x00\x00\x00\x05x";
    const struct {
        const char *bytes;
        size_t len;
    } CASES[] = {{OVERSIZED, 5}, {WRONG_TYPE, 6}};
    for (size_t i = 0; i < 2; i++) {
        Client c = {.port = page_service_port(e.ps),
                    .raw_after_startup = CASES[i].bytes,
                    .raw_len = CASES[i].len};
        run_client(&e.f->app, &c);
        assert_true(c.closed);
        assert_string_equal(c.types[0], "E");
        assert_non_null(strstr(c.error[0], "08P01"));
    }
    env_stop(&e);
}

/* ---- pagestream over the connection threads ---- */

#define STRIPE 8 /* active_slot's stripe in env_start */

typedef struct StreamClient {
    uint16_t port;
    const char *tenant, *tl;
    int n_requests;    /* GetPage v3, reqid 1..n */
    int depth;         /* requests in flight */
    bool until_closed; /* the server is stopped meanwhile: read until it closes */
    /* results */
    int answered; /* responses in order with the expected answer */
    int wrong;
    bool closed;
    int done;
} StreamClient;

static void stream_request(PagestreamRequest *q, int i)
{
    memset(q, 0, sizeof(*q));
    q->tag = PAGESTREAM_GET_PAGE;
    q->reqid = (uint64_t)i + 1;
    q->request_lsn = i % 7 == 3 ? LSN_INVALID : 0x1000000; /* refused on the thread */
    q->rel = (RelTag){.spc = 1663, .db = 5, .rel = 16384 + (uint32_t)(i % 3), .fork = 0};
    q->blkno = (uint32_t)(i % 64);
}

/* stream_expected: what request i is answered (every answer is an error: the tenant has no
 * timeline): refused on the connection's thread, by the routing (a block of shard 1, not here),
 * or by the read path (shard 0's block: the timeline is not found). */
static const char *stream_expected(int i)
{
    PagestreamRequest q;
    stream_request(&q, i);
    if (q.request_lsn == LSN_INVALID)
        return "invalid request LSN 0";
    Key k = key_rel_block(q.rel.spc, q.rel.db, q.rel.rel, q.rel.fork, q.blkno);
    return key_to_shard_number(2, STRIPE, &k) == 0 ? "not found" : "belongs to shard number 1";
}

static void *stream_main(void *arg)
{
    StreamClient *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(c->port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    Reader r = {.fd = fd};
    pgwire_parser_init(&r.p, false, 1u << 20);
    StrBuf b = STRBUF_INIT;
    PgwireMsg m;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    const char *names[] = {"user"};
    const char *values[] = {"test"};
    pgwire_put_startup(&b, 1, names, values);
    char q[256];
    str_printf(q, sizeof(q), "pagestream_v3 %s %s", c->tenant, c->tl);
    pgwire_put_query(&b, q);
    send_all(fd, b.data, b.len);
    strbuf_reset(&b);
    while (reader_next(&r, &m) && m.type != 'W') /* until CopyBothResponse */
        ;
    int sent = 0, got = 0; /* request k is stream_request(k % n_requests) */
    while (c->until_closed || got < c->n_requests) {
        while ((c->until_closed || sent < c->n_requests) && sent - got < c->depth) {
            PagestreamRequest req;
            stream_request(&req, sent++ % c->n_requests);
            pagestream_put_request(&b, PAGESTREAM_V3, &req);
        }
        if (b.len > 0 && send(fd, b.data, b.len, MSG_NOSIGNAL) != (ssize_t)b.len)
            break;
        strbuf_reset(&b);
        if (!reader_next(&r, &m) || m.type != 'd')
            break;
        int i = got++ % c->n_requests;
        PagestreamResponse resp;
        Err err = {0};
        if (pagestream_response_decode(PAGESTREAM_V3, m.payload, m.len, &resp, &err) &&
            resp.tag == PAGESTREAM_RESP_ERROR && resp.req.reqid == (uint64_t)i + 1 &&
            strstr(resp.message, stream_expected(i)) != NULL)
            __atomic_fetch_add(&c->answered, 1, __ATOMIC_SEQ_CST);
        else
            c->wrong++;
    }
    if (c->until_closed) { /* the rest until the server closes (EOF or reset; not a timeout) */
        struct timeval tv = {10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char buf[16384];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            ;
        c->closed = n == 0 || errno == ECONNRESET;
    }
out:
    strbuf_finish(&b);
    pgwire_parser_finish(&r.p);
    close(fd);
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* clients_run: start n stream clients; run the loop until they are done or for_ms passed (then
 * return with them running; clients_join waits). */
static void clients_start(StreamClient *cs, pthread_t *ts, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&ts[i], NULL, stream_main, &cs[i]), 0);
}

static void clients_join(PageserverApp *app, StreamClient *cs, pthread_t *ts, int n)
{
    for (int i = 0; i < n; i++) {
        for (long waited = 0; !__atomic_load_n(&cs[i].done, __ATOMIC_SEQ_CST) && waited < 30000;
             waited += 5)
            loop_run_for(app->base, 5);
        assert_true(__atomic_load_n(&cs[i].done, __ATOMIC_SEQ_CST));
        pthread_join(ts[i], NULL);
    }
}

static double gauge(PageserverApp *app, const char *name)
{
    return metric_gauge_get(metrics_gauge(app->metrics, name, "", NULL));
}

static uint64_t counter(PageserverApp *app, const char *name)
{
    return metric_counter_get(metrics_counter(app->metrics, name, "", NULL));
}

/* wait_gauge: run the loop until the gauge is v (the threads update it on their own). */
static void wait_gauge(PageserverApp *app, const char *name, double v)
{
    for (long waited = 0; gauge(app, name) != v && waited < 10000; waited += 5)
        loop_run_for(app->base, 5);
    assert_true(gauge(app, name) == v);
}

#define N_STREAMS 12

static void test_pagestream_connections_over_threads(void **state)
{
    Env e;
    env_start_threads(state, &e, NULL, 3, 100);
    PageserverApp *app = &e.f->app;
    StreamClient cs[N_STREAMS];
    pthread_t ts[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++)
        cs[i] = (StreamClient){.port = page_service_port(e.ps),
                               .tenant = e.tenant,
                               .tl = e.tl,
                               .n_requests = 700,
                               .depth = i % 2 ? 64 : 1};
    clients_start(cs, ts, N_STREAMS);
    clients_join(app, cs, ts, N_STREAMS);
    for (int i = 0; i < N_STREAMS; i++) {
        assert_int_equal(cs[i].wrong, 0);
        assert_int_equal(cs[i].answered, 700);
    }
    assert_int_equal(counter(app, "pageserver_page_service_connections_accepted_total"), N_STREAMS);
    wait_gauge(app, "pageserver_page_service_connections", 0); /* every close counted out */
    env_stop(&e);
}

/* connect_raw: a connected socket (the page service accepts it when the loop runs). */
static int connect_raw(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* startup_answer: send a startup packet, return the first message type answered (0: none). */
static char startup_answer(int fd)
{
    StrBuf b = STRBUF_INIT;
    const char *names[] = {"user"};
    const char *values[] = {"test"};
    pgwire_put_startup(&b, 1, names, values);
    send_all(fd, b.data, b.len);
    strbuf_finish(&b);
    char type = 0;
    return recv(fd, &type, 1, 0) == 1 ? type : 0;
}

static void test_max_connections_across_threads(void **state)
{
    Env e;
    env_start_threads(state, &e, NULL, 3, 4);
    PageserverApp *app = &e.f->app;
    uint16_t port = page_service_port(e.ps);
    int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = connect_raw(port);
    loop_run_for(app->base, 50); /* accepted, spread over the threads */
    wait_gauge(app, "pageserver_page_service_connections", 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(startup_answer(fds[i]), 'R'); /* AuthenticationOk from its thread */
    int extra = connect_raw(port);
    loop_run_for(app->base, 50);
    char buf[256];
    ssize_t n = recv(extra, buf, sizeof(buf) - 1, 0);
    assert_true(n > 0 && buf[0] == 'E');
    buf[n] = '\0';
    assert_non_null(memmem(buf, (size_t)n, "53300", 5));
    assert_int_equal(recv(extra, buf, sizeof(buf), 0), 0); /* then closed */
    close(extra);
    assert_int_equal(counter(app, "pageserver_page_service_connections_refused_total"), 1);
    close(fds[1]); /* its thread sees the EOF and counts it out */
    wait_gauge(app, "pageserver_page_service_connections", 3);
    fds[1] = connect_raw(port);
    loop_run_for(app->base, 50);
    assert_int_equal(startup_answer(fds[1]), 'R');
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    wait_gauge(app, "pageserver_page_service_connections", 0);
    env_stop(&e);
}

static void test_stop_with_reads_in_flight(void **state)
{
    Env e;
    env_start_threads(state, &e, NULL, 2, 100);
    PageserverApp *app = &e.f->app;
    StreamClient cs[6];
    pthread_t ts[6];
    for (int i = 0; i < 6; i++)
        cs[i] = (StreamClient){.port = page_service_port(e.ps),
                               .tenant = e.tenant,
                               .tl = e.tl,
                               .n_requests = 256,
                               .depth = 200,
                               .until_closed = true};
    clients_start(cs, ts, 6);
    for (long waited = 0; waited < 10000; waited += 5) { /* every client is streaming */
        int streaming = 0;
        for (int i = 0; i < 6; i++)
            streaming += __atomic_load_n(&cs[i].answered, __ATOMIC_SEQ_CST) > 100;
        if (streaming == 6)
            break;
        loop_run_for(app->base, 5);
    }
    page_service_stop(e.ps); /* batches on the main loop, in the threads' mailboxes, in flight */
    clients_join(app, cs, ts, 6); /* the loop runs: reads complete into closed connections */
    for (int i = 0; i < 6; i++) {
        assert_true(cs[i].closed);
        assert_true(cs[i].answered > 100);
        assert_int_equal(cs[i].wrong, 0);
    }
    wait_gauge(app, "pageserver_page_service_connections", 0);
    env_stop(&e); /* joins the threads; ASan: nothing leaked or freed twice */
}

/* open_fds: the descriptors this process has open. */
static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

/* A connection closed (by the stop) while its basebackup is being built on the main loop: its
 * thread frees the socket at once, the struct and the temporary file when the build's answer
 * comes back. */
static void test_close_during_basebackup(void **state)
{
    Env e;
    env_start_threads(state, &e, stub_build, 2, 10);
    PageserverApp *app = &e.f->app;
    g_stub.hold = true;
    int fds_before = open_fds();
    int fd = connect_raw(page_service_port(e.ps));
    loop_run_for(app->base, 20);
    assert_int_equal(startup_answer(fd), 'R');
    char q[256];
    str_printf(q, sizeof(q), "basebackup %s %s", e.tenant, e.tl);
    StrBuf b = STRBUF_INIT;
    pgwire_put_query(&b, q);
    send_all(fd, b.data, b.len);
    strbuf_finish(&b);
    for (long waited = 0; g_stub.calls == 0 && waited < 10000; waited += 5)
        loop_run_for(app->base, 5);
    assert_int_equal(g_stub.calls, 1); /* the build is running, the temporary file open */
    /* a building connection does not read (a client's close is seen after the build): the stop
     * closes it, on its thread */
    page_service_stop(e.ps);
    wait_gauge(app, "pageserver_page_service_connections", 0);
    close(fd);
    stub_complete(NULL); /* the build ends into the closed connection */
    loop_run_for(app->base, 50);
    /* the socket and the temporary file closed, and the listener (by the stop) */
    assert_int_equal(open_fds(), fds_before - 1);
    env_stop(&e); /* ASan: the connection freed once */
}

static int setup(void **state)
{
    int rc = fixture_setup(state);
    if (rc == 0) {
        Fixture *f = *state; /* basebackup's temporary files go to <workdir>/tmp */
        char tmp[PATH_MAX + 8];
        str_printf(tmp, sizeof(tmp), "%s/tmp", f->app.cfg.workdir);
        Err err = {0};
        if (!fs_mkdir_p(tmp, 0700, &err))
            return -1;
    }
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basebackup_streams_the_built_file, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_basebackup_errors_keep_the_connection, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_basebackup_not_available, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_protocol_violation_closes, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pagestream_connections_over_threads, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_max_connections_across_threads, setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_reads_in_flight, setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_close_during_basebackup, setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
