/* test_daemon.c: unit tests for shared/daemon.c (signals, graceful stop, fail, die). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "shared/daemon.h"
#include "shared/err.h"
#include "shared/http_server.h"
#include "shared/log.h"
#include "shared/str.h"

typedef struct TestCtx {
    Daemon *d;
    int stop_calls;
    bool stopping_seen_in_hook;
    int action; /* what the timer does */
    int ticks;
} TestCtx;

enum { ACT_SIGTERM, ACT_SIGINT, ACT_STOP_TWICE, ACT_FAIL, ACT_STOP_THEN_FAIL, ACT_HUP_THEN_TERM };

static void on_stop(void *arg)
{
    TestCtx *t = arg;
    t->stop_calls++;
    t->stopping_seen_in_hook = daemon_stopping(t->d);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    TestCtx *t = arg;
    t->ticks++;
    /* act once (on the first tick, or the second for SIGHUP-then-SIGTERM); a loaded machine may
     * run more ticks before the stop completes, and those do nothing */
    if (t->ticks > 2 || (t->ticks == 2 && t->action != ACT_HUP_THEN_TERM))
        return;
    switch (t->action) {
    case ACT_SIGTERM:
        raise(SIGTERM);
        break;
    case ACT_SIGINT:
        raise(SIGINT);
        break;
    case ACT_STOP_TWICE:
        daemon_stop(t->d);
        daemon_stop(t->d);
        break;
    case ACT_FAIL:
        daemon_fail(t->d, EXIT_CODE_UNAVAILABLE);
        assert_true(daemon_stopping(t->d));
        daemon_fail(t->d, EXIT_CODE_INTERNAL); /* a consequence: the first code counts */
        break;
    case ACT_STOP_THEN_FAIL:
        daemon_stop(t->d);
        daemon_fail(t->d, EXIT_CODE_SCHEMA);
        break;
    case ACT_HUP_THEN_TERM:
        raise(t->ticks == 1 ? SIGHUP : SIGTERM);
        break;
    }
}

/* run_with: a daemon whose 10 ms persistent timer performs action; returns the exit code. */
static int run_with(TestCtx *t, int action)
{
    Err err = {0};
    memset(t, 0, sizeof(*t));
    t->action = action;
    assert_true(daemon_new("testd", &t->d, &err));
    daemon_on_stop(t->d, on_stop, t);
    assert_false(daemon_stopping(t->d));
    struct event *timer = event_new(daemon_base(t->d), -1, EV_PERSIST, on_timer, t);
    struct timeval tv = {0, 10000};
    event_add(timer, &tv);
    int code = daemon_run(t->d);
    assert_true(daemon_stopping(t->d));
    event_free(timer);
    daemon_free(t->d);
    return code;
}

static void test_sigterm_graceful(void **state)
{
    TestCtx t;
    assert_int_equal(run_with(&t, ACT_SIGTERM), 0);
    assert_int_equal(t.stop_calls, 1);
    assert_true(t.stopping_seen_in_hook);
}

static void test_sigint_graceful(void **state)
{
    TestCtx t;
    assert_int_equal(run_with(&t, ACT_SIGINT), 0);
    assert_int_equal(t.stop_calls, 1);
}

static void test_stop_is_idempotent(void **state)
{
    TestCtx t;
    assert_int_equal(run_with(&t, ACT_STOP_TWICE), 0);
    assert_int_equal(t.stop_calls, 1);
}

static void test_fail_returns_code(void **state)
{
    TestCtx t;
    assert_int_equal(run_with(&t, ACT_FAIL), EXIT_CODE_UNAVAILABLE);
    assert_int_equal(t.stop_calls, 1);
    assert_int_equal(run_with(&t, ACT_STOP_THEN_FAIL), EXIT_CODE_SCHEMA);
    assert_int_equal(t.stop_calls, 1);
}

static void test_stop_before_run(void **state)
{
    Err err = {0};
    Daemon *d = NULL;
    TestCtx t = {0};
    assert_true(daemon_new("testd", &d, &err));
    t.d = d;
    daemon_on_stop(d, on_stop, &t);
    daemon_stop(d);
    assert_true(daemon_stopping(d));
    assert_int_equal(daemon_run(d), 0);
    assert_int_equal(daemon_run(d), 0); /* already stopped: returns at once */
    assert_int_equal(t.stop_calls, 1);
    daemon_free(d);

    assert_true(daemon_new("testd", &d, &err));
    daemon_fail(d, EXIT_CODE_OS);
    assert_int_equal(daemon_run(d), EXIT_CODE_OS);
    daemon_free(d);
}

static void test_sighup_reopens_log(void **state)
{
    char dir[] = "/tmp/test_daemon.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], rotated[128];
    snprintf(path, sizeof(path), "%s/d.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/d.log.1", dir);
    Err err = {0};
    assert_true(log_init("testd", LOG_INFO, path, &err));
    assert_int_equal(rename(path, rotated), 0); /* logrotate moved the file away */

    TestCtx t;
    assert_int_equal(run_with(&t, ACT_HUP_THEN_TERM), 0);
    assert_true(t.ticks >= 2); /* SIGHUP did not stop the daemon */
    assert_int_equal(t.stop_calls, 1);
    assert_true(log_init("testd", LOG_WARN, NULL, &err)); /* back to stderr */

    /* SIGHUP reopened the path: the new file has the lines written after it */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(buf, "SIGHUP"));
    assert_non_null(strstr(buf, "stopping"));
    f = fopen(rotated, "r");
    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_null(strstr(buf, "stopping"));
    unlink(path);
    unlink(rotated);
    rmdir(dir);
}

static void test_sigpipe_ignored(void **state)
{
    Err err = {0};
    Daemon *d = NULL;
    signal(SIGPIPE, SIG_DFL);
    assert_true(daemon_new("testd", &d, &err));
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    /* a write to a closed pipe is an error, not death */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    assert_int_equal(write(fds[1], "x", 1), -1);
    close(fds[1]);
    daemon_free(d);
}

/* run_die: call daemon_die in a child; return its exit status and stderr text. */
static int run_die(const char *program, int code, const Err *e, char *out, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        daemon_die(program, code, e);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void test_die(void **state)
{
    static const struct {
        const char *msg;
        int code;
        const char *expect;
    } cases[] = {
        {"cannot bind 127.0.0.1:1234: Address in use", EXIT_CODE_OS,
         "storcon: cannot bind 127.0.0.1:1234: Address in use\n"},
        {"two\nlines\r\n", EXIT_CODE_BAD_ARGS, "storcon: two lines  \n"},
        {"", EXIT_CODE_CONFIG, "storcon: fatal error\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Err e = {0};
        err_set(&e, ERR_BAD_REQUEST, "%s", cases[i].msg);
        char out[1024];
        int status = run_die("storcon", cases[i].code, &e, out, sizeof(out));
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), cases[i].code);
        assert_string_equal(out, cases[i].expect);
    }
    char out[1024];
    int status = run_die("pageserver", EXIT_CODE_INTERNAL, NULL, out, sizeof(out));
    assert_int_equal(WEXITSTATUS(status), EXIT_CODE_INTERNAL);
    assert_string_equal(out, "pageserver: fatal error\n");
}

/* ---- with a real HTTP server: the drain waits for in-flight requests, within a bound ---- */

typedef struct ServerCtx {
    Daemon *d;
    HttpRequest *held;         /* the request the handler did not answer yet */
    long reply_after_ms;       /* < 0: never reply (only the drain timeout ends it) */
    long second_signal_ms;     /* > 0: raise SIGTERM again this long after the first */
    struct event *reply_timer; /* replies to held */
    struct event *signal_timer;
    int stop_calls;
    bool replied;
    bool stopping_when_replied;
} ServerCtx;

static void on_server_stop(void *arg)
{
    ServerCtx *c = arg;
    c->stop_calls++;
}

static void on_reply_timer(evutil_socket_t fd, short what, void *arg)
{
    ServerCtx *c = arg;
    c->stopping_when_replied = daemon_stopping(c->d);
    c->replied = true;
    http_reply_json(c->held, 200, json_pack("{s:b}", "ok", 1));
    c->held = NULL;
}

static void on_signal_timer(evutil_socket_t fd, short what, void *arg)
{
    raise(SIGTERM);
}

/* handle_slow: hold the request and ask the daemon to stop while it is in flight. */
static void handle_slow(HttpRequest *req, void *app)
{
    ServerCtx *c = app;
    c->held = req;
    if (c->reply_after_ms >= 0) {
        struct timeval tv = {c->reply_after_ms / 1000, (c->reply_after_ms % 1000) * 1000};
        event_add(c->reply_timer, &tv);
    }
    if (c->second_signal_ms > 0) {
        struct timeval tv = {0, c->second_signal_ms * 1000};
        event_add(c->signal_timer, &tv);
    }
    raise(SIGTERM);
}

static const HttpRoute SLOW_ROUTES[] = {
    {HTTP_GET, "/slow", AUTH_SCOPE_NONE, handle_slow},
};

typedef struct Client {
    uint16_t port;
    char response[4096];
} Client;

/* client_main: one blocking HTTP/1.1 request from another thread; the response until EOF. */
static void *client_main(void *arg)
{
    Client *cl = arg;
    cl->response[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(cl->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        static const char REQ[] = "GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        if (write(fd, REQ, sizeof(REQ) - 1) == (ssize_t)(sizeof(REQ) - 1)) {
            size_t n = 0;
            ssize_t r;
            while (n + 1 < sizeof(cl->response) &&
                   (r = read(fd, cl->response + n, sizeof(cl->response) - 1 - n)) > 0)
                n += (size_t)r;
            cl->response[n] = '\0';
        }
    }
    close(fd);
    return NULL;
}

static bool port_accepts(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* run_server_case: a daemon with one server; a client thread sends GET /slow, whose handler
 * raises SIGTERM with the request still in flight. Returns the exit code and the elapsed ms. */
static int run_server_case(ServerCtx *c, long drain_timeout_ms, Client *cl, long *elapsed_ms)
{
    Err err = {0};
    assert_true(daemon_new("testd", &c->d, &err));
    daemon_on_stop(c->d, on_server_stop, c);
    daemon_set_drain_timeout_ms(c->d, drain_timeout_ms);
    c->reply_timer = event_new(daemon_base(c->d), -1, 0, on_reply_timer, c);
    c->signal_timer = event_new(daemon_base(c->d), -1, 0, on_signal_timer, c);
    HttpServerConfig hc = {
        .routes = SLOW_ROUTES,
        .n_routes = 1,
        .app = c,
        .name = "test api",
    };
    assert_true(host_port_parse("127.0.0.1:0", &hc.listen, &err));
    HttpServer *srv = NULL;
    if (!http_server_start(daemon_base(c->d), &hc, &srv, &err))
        fail_msg("http_server_start: %s", err.msg);
    daemon_add_server(c->d, srv);
    cl->port = http_server_port(srv);
    assert_int_not_equal(cl->port, 0);

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, cl), 0);
    int code = daemon_run(c->d);
    clock_gettime(CLOCK_MONOTONIC, &end);
    pthread_join(th, NULL);
    *elapsed_ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;

    assert_false(port_accepts(cl->port)); /* the listener is gone */
    event_free(c->reply_timer);
    event_free(c->signal_timer);
    daemon_free(c->d);
    return code;
}

static void test_drain_waits_for_inflight(void **state)
{
    ServerCtx c = {.reply_after_ms = 300};
    Client cl;
    long ms = 0;
    assert_int_equal(run_server_case(&c, 10000, &cl, &ms), 0);
    assert_int_equal(c.stop_calls, 1);
    assert_true(c.replied);
    assert_true(c.stopping_when_replied); /* the reply came during the drain */
    assert_true(ms >= 250); /* libevent timers use a coarse clock: a few ms early is fine */
    assert_true(ms < 5000); /* ended when the request finished, not at the drain timeout */
    if (strncmp(cl.response, "HTTP/1.1 200", 12) != 0)
        fail_msg("response: [%s] after %ld ms", cl.response, ms);
    assert_non_null(strstr(cl.response, "\"ok\""));
}

static void test_drain_timeout_answers_503(void **state)
{
    ServerCtx c = {.reply_after_ms = -1};
    Client cl;
    long ms = 0;
    assert_int_equal(run_server_case(&c, 300, &cl, &ms), 0);
    assert_int_equal(c.stop_calls, 1);
    assert_false(c.replied);
    assert_true(ms >= 250); /* libevent timers use a coarse clock: a few ms early is fine */
    assert_true(ms < 5000);
    assert_true(strncmp(cl.response, "HTTP/1.1 503", 12) == 0);
}

static void test_second_sigterm_stops_at_once(void **state)
{
    ServerCtx c = {.reply_after_ms = -1, .second_signal_ms = 100};
    Client cl;
    long ms = 0;
    assert_int_equal(run_server_case(&c, 30000, &cl, &ms), 0);
    assert_int_equal(c.stop_calls, 1);
    assert_true(ms >= 50);
    assert_true(ms < 10000); /* far below the 30 s drain timeout */
    assert_true(strncmp(cl.response, "HTTP/1.1 503", 12) == 0);
}

/* daemon_new raises the soft open-file limit to the hard one (a lowered soft limit is restored). */
static void test_raises_fd_limit(void **state)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max < 128)
        skip();
    struct rlimit low = {64, rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    Daemon *d = NULL;
    Err err = {0};
    assert_true(daemon_new("test", &d, &err));
    struct rlimit now;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
    assert_true(now.rlim_cur == rl.rlim_max);
    daemon_free(d);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

int main(void)
{
    log_set_level(LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_graceful),
        cmocka_unit_test(test_sigint_graceful),
        cmocka_unit_test(test_stop_is_idempotent),
        cmocka_unit_test(test_fail_returns_code),
        cmocka_unit_test(test_stop_before_run),
        cmocka_unit_test(test_sighup_reopens_log),
        cmocka_unit_test(test_sigpipe_ignored),
        cmocka_unit_test(test_die),
        cmocka_unit_test(test_drain_waits_for_inflight),
        cmocka_unit_test(test_drain_timeout_answers_503),
        cmocka_unit_test(test_second_sigterm_stops_at_once),
        cmocka_unit_test(test_raises_fd_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
