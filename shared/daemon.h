/*
 * daemon.h: what both daemons share about their life: one event loop, signals as libevent
 * events (SIGTERM/SIGINT: graceful stop; SIGHUP: reopen logs; SIGPIPE ignored), a graceful stop
 * that closes the listeners, lets in-flight requests finish (bounded), then leaves the loop, and
 * the categorised exit codes.
 */
#ifndef SHARED_DAEMON_H
#define SHARED_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "shared/err.h"
#include "shared/http_server.h"

struct event_base;
struct event;

/* Exit codes (sysexits.h values, so shells and supervisors read them alike). */
enum {
    EXIT_CODE_OK = 0,
    EXIT_CODE_BAD_ARGS = 64,    /* bad flag or config value */
    EXIT_CODE_UNAVAILABLE = 69, /* a dependency (database) cannot be reached */
    EXIT_CODE_INTERNAL = 70,    /* bug or unexpected failure */
    EXIT_CODE_OS = 71,          /* cannot bind a port, create a directory, ... */
    EXIT_CODE_SCHEMA = 76,      /* database schema newer than this binary */
    EXIT_CODE_CONFIG = 78,      /* inconsistent configuration */
};

typedef struct Daemon Daemon;

/* Called once when a stop signal arrives, before the listeners close: the daemon cancels its own
 * background work here (timers, reconciles). */
typedef void (*DaemonStopFn)(void *arg);

#define DAEMON_MAX_SERVERS 4

/* daemon_new: create the event base and the signal events, and raise the open-file limit
 * (daemon_raise_fd_limit). The caller frees with daemon_free. */
bool daemon_new(const char *program, Daemon **out, Err *err) MUST_CHECK;
void daemon_free(Daemon *d);
/* daemon_raise_fd_limit: raise the soft RLIMIT_NOFILE to the hard limit (each client connection
 * is a descriptor); returns the soft limit now in force (LONG_MAX: unlimited), -1 if unknown. */
long daemon_raise_fd_limit(void);
struct event_base *daemon_base(Daemon *d);

/* daemon_add_server: servers the graceful stop closes and drains (at most DAEMON_MAX_SERVERS).
 * The daemon owns them from then on: it frees them when the loop ends (or in daemon_free). */
void daemon_add_server(Daemon *d, HttpServer *srv);
void daemon_on_stop(Daemon *d, DaemonStopFn fn, void *arg);
/* daemon_set_drain_timeout_ms: how long in-flight requests may take after a stop (default 10 s;
 * the rest are answered 503 when the servers are freed). */
void daemon_set_drain_timeout_ms(Daemon *d, long ms);

/* daemon_run: run the loop until stopped; returns the exit code (0 after a graceful stop). */
int daemon_run(Daemon *d);
/* daemon_stop: start the graceful stop, as a SIGTERM would. */
void daemon_stop(Daemon *d);
/* daemon_fail: stop at once with a non-zero exit code (fatal error found on the loop). */
void daemon_fail(Daemon *d, int exit_code);
bool daemon_stopping(const Daemon *d);

/* daemon_die: print "<program>: <msg>" as one line to stderr and exit(code); for startup errors. */
void daemon_die(const char *program, int code, const Err *err) __attribute__((noreturn));

#endif
