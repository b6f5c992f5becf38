/*
 * app.h: the pageserver's process-wide state, one instance created by main() and handed to every
 * HTTP handler as its `app` argument. Later subsystems (locations, timelines, the deletion queue,
 * the page service) hang their state off this struct.
 *
 * Threads: everything here belongs to the event loop thread, except `workers` (its jobs run on
 * worker threads) and `metrics` (updates are atomic).
 */
#ifndef PAGESERVER_APP_H
#define PAGESERVER_APP_H

#include <stdint.h>
#include <time.h>

#include "shared/auth.h"
#include "shared/daemon.h"
#include "shared/http_client.h"
#include "shared/http_server.h"
#include "shared/metrics.h"
#include "shared/worker_pool.h"

#include "pageserver/config.h"
#include "pageserver/node_metadata.h"

struct event_base;

typedef struct PageserverApp {
    PageserverConfig cfg;    /* validated settings */
    NodeMetadata metadata;   /* what metadata.json says (actual bound HTTP port) */
    Daemon *daemon;          /* loop, signals, graceful stop */
    struct event_base *base; /* daemon_base(daemon) */
    HttpServer *http;        /* management API; owned by the daemon once added */
    HttpClient *http_client; /* outgoing calls (control plane upcalls) */
    WorkerPool *workers;     /* blocking disk and CPU work, --worker-threads */
    MetricsRegistry *metrics;
    Auth *auth;  /* NULL: auth off */
    int lock_fd; /* flock on <workdir>/pageserver.lock, held for the life of the process */
    time_t started_at;
} PageserverApp;

#endif
