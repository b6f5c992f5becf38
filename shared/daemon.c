/*
 * daemon.c: the life of a daemon around its one event loop.
 *
 * Signals arrive as libevent events, so their handlers run on the loop like everything else.
 * The stop is a small state machine:
 *
 *   RUNNING --SIGTERM/SIGINT/daemon_stop--> DRAINING --in-flight 0 or timeout--> STOPPED
 *   RUNNING/DRAINING --daemon_fail or a second SIGTERM/SIGINT--> STOPPED (at once)
 *
 * Entering DRAINING calls the stop hook once, then closes every server's listener; a persistent
 * 20 ms timer polls the servers' in-flight counts until they reach zero or the drain deadline
 * passes. A request stops counting as in flight when its reply is queued, not when the bytes have
 * left, so after the count reaches zero the loop keeps running for a short flush grace
 * (DAEMON_FLUSH_GRACE_MS, within the deadline) before the servers are freed; without it the last
 * replies of a drain could be cut off. Entering STOPPED frees the servers (answering what is still
 * in flight with 503) and breaks the loop. STOPPED is always entered from an event callback of its
 * own, never inside the caller of daemon_fail, because that caller may be a request handler of a
 * server about to be freed.
 */
#include "shared/daemon.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>

#include "shared/defer.h"
#include "shared/fsm.h"
#include "shared/log.h"
#include "shared/str.h"

#define DAEMON_DRAIN_POLL_MS            20
#define DAEMON_FLUSH_GRACE_MS           100
#define DAEMON_DEFAULT_DRAIN_TIMEOUT_MS 10000

typedef enum DaemonState {
    DAEMON_RUNNING,
    DAEMON_DRAINING,
    DAEMON_STOPPED,
    DAEMON_STATE_COUNT
} DaemonState;

static const char *const DAEMON_STATE_NAMES[DAEMON_STATE_COUNT] = {
    [DAEMON_RUNNING] = "Running",
    [DAEMON_DRAINING] = "Draining",
    [DAEMON_STOPPED] = "Stopped",
};

static const FsmTransition DAEMON_TRANSITIONS[] = {
    {DAEMON_RUNNING, DAEMON_DRAINING, "SIGTERM / SIGINT, daemon_stop or daemon_fail"},
    {DAEMON_DRAINING, DAEMON_STOPPED, "drained, drain timeout, second signal or fatal error"},
    {DAEMON_RUNNING, DAEMON_STOPPED, "event loop ended unexpectedly"},
};

static const int DAEMON_TERMINAL[] = {DAEMON_STOPPED};

static const FsmDef DAEMON_FSM = {
    .name = "daemon",
    .doc = "docs/state-machines.md",
    .state_names = DAEMON_STATE_NAMES,
    .n_states = DAEMON_STATE_COUNT,
    .initial = DAEMON_RUNNING,
    .terminal = DAEMON_TERMINAL,
    .n_terminal = FSM_COUNT(DAEMON_TERMINAL),
    .transitions = DAEMON_TRANSITIONS,
    .n_transitions = FSM_COUNT(DAEMON_TRANSITIONS),
    .log_info = true,
};
FSM_REGISTER(DAEMON_FSM)

struct Daemon {
    char program[64];
    struct event_base *base;
    struct event *sig_term, *sig_int, *sig_hup;
    struct event *drain_timer; /* persistent, DAEMON_DRAIN_POLL_MS */
    LoopDefer *defer;          /* the daemon's "soon" (loop thread) */
    LoopDeferItem first_look;  /* the drain check right after daemon_stop, not in 20 ms */
    LoopDeferItem finish;      /* enter STOPPED from the loop */
    HttpServer *servers[DAEMON_MAX_SERVERS];
    size_t n_servers;
    DaemonStopFn stop_fn;
    void *stop_arg;
    bool stop_hook_called;
    long drain_timeout_ms;
    struct timespec drain_deadline; /* CLOCK_MONOTONIC */
    struct timespec flush_deadline; /* set when the in-flight count first reads zero */
    bool flushing;
    DaemonState state;
    int exit_code;
};

/* daemon_set_state: checked against DAEMON_FSM; the same state is a no-op. */
static void daemon_set_state(Daemon *d, DaemonState to)
{
    if (d->state != to)
        (void)fsm_set_state(&DAEMON_FSM, &d->state, to, d->program);
}

static void daemon_on_signal(evutil_socket_t sig, short what, void *arg);
static void daemon_on_drain_timer(evutil_socket_t fd, short what, void *arg);
static void daemon_on_first_look(void *arg);
static void daemon_on_finish(void *arg);

long daemon_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t before = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("cannot raise the open-file limit from %llu to %llu: %s",
                     (unsigned long long)before, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = before;
        }
    }
    return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}

bool daemon_new(const char *program, Daemon **out, Err *err)
{
    Daemon *d = xcalloc(1, sizeof(*d));
    str_copy(d->program, sizeof(d->program), program ? program : "daemon");
    d->drain_timeout_ms = DAEMON_DEFAULT_DRAIN_TIMEOUT_MS;
    d->state = DAEMON_RUNNING;
    d->base = event_base_new();
    if (d->base == NULL) {
        err_set(err, ERR_INTERNAL, "cannot create the event loop");
        goto fail;
    }
    d->sig_term = evsignal_new(d->base, SIGTERM, daemon_on_signal, d);
    d->sig_int = evsignal_new(d->base, SIGINT, daemon_on_signal, d);
    d->sig_hup = evsignal_new(d->base, SIGHUP, daemon_on_signal, d);
    d->drain_timer = event_new(d->base, -1, EV_PERSIST, daemon_on_drain_timer, d);
    d->defer = loop_defer_new(d->base);
    loop_defer_item_init(&d->first_look, daemon_on_first_look, d);
    loop_defer_item_init(&d->finish, daemon_on_finish, d);
    if (d->sig_term == NULL || d->sig_int == NULL || d->sig_hup == NULL || d->drain_timer == NULL) {
        err_set(err, ERR_INTERNAL, "cannot create the daemon's events");
        goto fail;
    }
    if (event_add(d->sig_term, NULL) != 0 || event_add(d->sig_int, NULL) != 0 ||
        event_add(d->sig_hup, NULL) != 0) {
        err_set(err, ERR_INTERNAL, "cannot install signal handlers");
        goto fail;
    }
    /* a peer closing a socket must be an EPIPE on write, not the end of the process */
    signal(SIGPIPE, SIG_IGN);
    long fds = daemon_raise_fd_limit();
    log_info("open-file limit: %ld", fds);
    *out = d;
    return true;
fail:
    daemon_free(d);
    return false;
}

static void daemon_free_servers(Daemon *d)
{
    for (size_t i = 0; i < d->n_servers; i++)
        http_server_free(d->servers[i]);
    d->n_servers = 0;
}

void daemon_free(Daemon *d)
{
    if (d == NULL)
        return;
    daemon_free_servers(d);
    struct event *events[] = {d->sig_term, d->sig_int, d->sig_hup, d->drain_timer};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        if (events[i] != NULL)
            event_free(events[i]);
    }
    loop_defer_free(d->defer);
    if (d->base != NULL)
        event_base_free(d->base);
    free(d);
}

struct event_base *daemon_base(Daemon *d)
{
    return d->base;
}

void daemon_add_server(Daemon *d, HttpServer *srv)
{
    if (d->n_servers >= DAEMON_MAX_SERVERS) {
        log_error("daemon: more than %d servers; this one will not be drained", DAEMON_MAX_SERVERS);
        return;
    }
    d->servers[d->n_servers++] = srv;
}

void daemon_on_stop(Daemon *d, DaemonStopFn fn, void *arg)
{
    d->stop_fn = fn;
    d->stop_arg = arg;
}

void daemon_set_drain_timeout_ms(Daemon *d, long ms)
{
    d->drain_timeout_ms = ms < 0 ? 0 : ms;
}

bool daemon_stopping(const Daemon *d)
{
    return d->state != DAEMON_RUNNING;
}

static void daemon_call_stop_hook(Daemon *d)
{
    if (d->stop_hook_called)
        return;
    d->stop_hook_called = true;
    if (d->stop_fn != NULL)
        d->stop_fn(d->stop_arg);
}

/* daemon_finish_soon: enter STOPPED on the next loop iteration. */
static void daemon_finish_soon(Daemon *d)
{
    (void)loop_defer_item(d->defer, &d->finish);
}

/* daemon_on_finish: STOPPED. Freeing the servers answers their remaining requests with 503. */
static void daemon_on_finish(void *arg)
{
    Daemon *d = arg;
    if (d->state == DAEMON_STOPPED)
        return;
    daemon_set_state(d, DAEMON_STOPPED);
    event_del(d->drain_timer);
    daemon_free_servers(d);
    if (d->exit_code == 0)
        log_info("stopped");
    else
        log_error("stopped with exit code %d", d->exit_code);
    event_base_loopbreak(d->base);
}

static size_t daemon_inflight(const Daemon *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_servers; i++)
        n += http_server_inflight(d->servers[i]);
    return n;
}

static struct timespec deadline_in_ms(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static bool deadline_passed(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* daemon_on_drain_timer: DRAINING -> STOPPED when nothing is in flight and the flush grace has
 * passed (no grace without servers: nothing to flush), or when the drain deadline passes. */
static void daemon_on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    Daemon *d = arg;
    if (d->state != DAEMON_DRAINING)
        return;
    size_t inflight = daemon_inflight(d);
    if (inflight == 0 && d->n_servers > 0 && !deadline_passed(&d->drain_deadline)) {
        if (!d->flushing) {
            d->flushing = true;
            d->flush_deadline = deadline_in_ms(DAEMON_FLUSH_GRACE_MS);
            return;
        }
        if (!deadline_passed(&d->flush_deadline))
            return;
    }
    if (inflight == 0) {
        log_info("all requests finished");
    } else if (deadline_passed(&d->drain_deadline)) {
        log_warn("drain timeout after %ld ms: %zu requests still in flight get 503",
                 d->drain_timeout_ms, inflight);
    } else {
        return;
    }
    daemon_on_finish(d);
}

static void daemon_on_first_look(void *arg)
{
    daemon_on_drain_timer(-1, 0, arg);
}

void daemon_stop(Daemon *d)
{
    if (d->state != DAEMON_RUNNING)
        return;
    daemon_set_state(d, DAEMON_DRAINING);
    log_info("stopping (in-flight requests may take up to %ld ms)", d->drain_timeout_ms);
    daemon_call_stop_hook(d);
    for (size_t i = 0; i < d->n_servers; i++)
        http_server_stop_accepting(d->servers[i]);
    d->drain_deadline = deadline_in_ms(d->drain_timeout_ms);
    struct timeval poll = {0, DAEMON_DRAIN_POLL_MS * 1000};
    event_add(d->drain_timer, &poll);
    (void)loop_defer_item(d->defer, &d->first_look);
}

void daemon_fail(Daemon *d, int exit_code)
{
    if (d->state == DAEMON_STOPPED)
        return;
    log_error("fatal error: stopping with exit code %d", exit_code);
    if (d->exit_code == 0) /* the first failure is the cause; later ones are consequences */
        d->exit_code = exit_code;
    daemon_set_state(d, DAEMON_DRAINING); /* daemon_stopping() is true from now on */
    daemon_call_stop_hook(d);
    daemon_finish_soon(d);
}

static void daemon_on_signal(evutil_socket_t sig, short what, void *arg)
{
    Daemon *d = arg;
    if (sig == SIGHUP) {
        Err err = {0};
        if (log_reopen(&err))
            log_info("received SIGHUP: log file reopened");
        else
            log_err(&err, "received SIGHUP");
        return;
    }
    const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    if (d->state == DAEMON_RUNNING) {
        log_info("received %s", name);
        daemon_stop(d);
    } else if (d->state == DAEMON_DRAINING) {
        log_warn("received %s again: stopping now without waiting for requests", name);
        daemon_finish_soon(d);
    }
}

int daemon_run(Daemon *d)
{
    if (d->state == DAEMON_STOPPED)
        return d->exit_code;
    int rc = event_base_dispatch(d->base);
    if (d->state != DAEMON_STOPPED) {
        /* the loop ended without a stop: an error inside libevent, or nothing left to wait for */
        log_error("event loop ended unexpectedly (%d)", rc);
        daemon_set_state(d, DAEMON_STOPPED);
        daemon_free_servers(d);
        if (d->exit_code == 0)
            d->exit_code = EXIT_CODE_INTERNAL;
    }
    return d->exit_code;
}

void daemon_die(const char *program, int code, const Err *err)
{
    char msg[ERR_MSG_SIZE];
    str_copy(msg, sizeof(msg), err != NULL && err->msg[0] != '\0' ? err->msg : "fatal error");
    for (char *p = msg; *p; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' '; /* one line, whatever the message holds */
    }
    fflush(stdout);
    fprintf(stderr, "%s: %s\n", program ? program : "daemon", msg);
    exit(code);
}
