/*
 * app.h: the pageserver's process-wide state, one instance created by main() and handed to every
 * HTTP handler as its `app` argument. Later subsystems (locations, timelines, the deletion queue,
 * the page service) hang their state off this struct.
 *
 * Threads: everything here belongs to the event loop thread, except `workers` (its jobs run on
 * worker threads), `remote` (thread-safe, used only from workers) and `metrics` / `m` (updates
 * are atomic). After the loop has ended main() sets `http` and `http_client` to NULL: completions
 * that still run during the worker pool's drain must not reply or call out then.
 */
#ifndef PAGESERVER_APP_H
#define PAGESERVER_APP_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "shared/auth.h"
#include "shared/daemon.h"
#include "shared/defer.h"
#include "shared/err.h"
#include "shared/http_client.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/worker_pool.h"

#include "pageserver/config.h"
#include "pageserver/node_metadata.h"

struct event_base;
struct HttpServer;
struct TenantManager;
struct DeletionQueue;
struct StorconClient;
struct PageService;
struct PageCache;

/* PageserverMetrics: the series the domain modules update (looked up once at startup; the
 * registry owns them). */
typedef struct PageserverMetrics {
    MetricGauge *slots_by_state[16]; /* pageserver_tenant_slots{state}, indexed by SlotState */
    MetricGauge *timelines;
    MetricCounter *layers_uploaded;
    MetricCounter *layer_bytes_uploaded;
    MetricCounter *layers_downloaded;
    MetricCounter *layer_bytes_downloaded;
    MetricCounter *index_uploads;
    MetricCounter *upload_retries;
    MetricCounter *temp_files_removed;
    MetricCounter *layer_refetches;
    MetricCounter *heatmap_uploads;         /* stored */
    MetricCounter *heatmap_uploads_skipped; /* periodic, unchanged */
    MetricCounter *secondary_passes;
    MetricCounter *secondary_layers_downloaded;
    MetricCounter *secondary_bytes_downloaded;
    MetricCounter *secondary_layers_removed;
    MetricGauge *secondary_passes_waiting; /* queued behind the concurrency limit */
    MetricGauge *secondary_bytes_behind;   /* heatmap bytes warm secondaries still lack */
    MetricCounter *secondary_throttled_ms; /* time downloads slept for the bandwidth limit */
    MetricGauge *deletion_queue_depth;
    MetricCounter *deletion_objects_executed;
    MetricCounter *deletion_objects_dropped;
    MetricCounter *deletion_validations;
    MetricHistogram *getpage_seconds;
    MetricCounter *getpage_errors;
    MetricCounter *timelines_created;
    MetricCounter *upcall_retries;
    MetricCounter *page_cache_hits;
    MetricCounter *page_cache_misses;
    MetricCounter *page_cache_evictions;
    MetricGauge *page_cache_bytes;
} PageserverMetrics;

typedef struct PageserverApp {
    PageserverConfig cfg;    /* validated settings */
    NodeMetadata metadata;   /* what metadata.json says (actual bound HTTP port) */
    Daemon *daemon;          /* loop, signals, graceful stop */
    struct event_base *base; /* daemon_base(daemon) */
    LoopDefer *defer;        /* every "run soon" of the pageserver (pageserver_defer, kicks) */
    struct HttpServer *http; /* management API; owned by the daemon once added */
    HttpClient *http_client; /* outgoing calls (control plane upcalls) */
    WorkerPool *workers;     /* blocking disk and CPU work, --worker-threads */
    MetricsRegistry *metrics;
    Auth *auth;  /* NULL: auth off */
    int lock_fd; /* flock on <workdir>/pageserver.lock, held for the life of the process */
    time_t started_at;

    RemoteStorage *remote;          /* --remote-storage; blocking: only used on workers */
    char *control_plane_token;      /* from --control-plane-token-file, or NULL */
    struct TenantManager *tenants;  /* slots, timelines (pageserver/tenant.h) */
    struct DeletionQueue *deletion; /* persistent remote deletions (deletion_queue.h) */
    struct SecondaryScheduler *secondary_sched; /* queue of warm secondaries' passes */
    struct StorconClient *storcon;    /* re-attach and validate upcalls (storcon_client.h) */
    struct PageService *page_service; /* --listen-pg (page_service.h) */
    struct PageCache *page_cache;     /* --page-cache-bytes (page_cache.h; NULL: off); any thread */
    PageserverMetrics m;
    bool stopping; /* SIGTERM seen: start no new background work */
} PageserverApp;

/* pageserver_metrics_register: look up app->m in app->metrics. */
void pageserver_metrics_register(PageserverApp *app);

/* Completions of the domain operations (tenant.h, timeline.h, read_path.h, utilization.h). The
 * conventions are storcon/service.h's: an asynchronous operation ends in exactly one callback on
 * the loop thread, never from inside the call that started it; err is NULL on success.
 * PageserverJsonFn hands over `result`, a new reference the callback owns (NULL exactly when err
 * != NULL). */
typedef void (*PageserverJsonFn)(const Err *err, json_t *result, void *arg);
typedef void (*PageserverDoneFn)(const Err *err, void *arg);

/* pageserver_defer: run fn(arg) from the loop soon (not from inside this call): loop_defer on
 * app->defer. */
void pageserver_defer(PageserverApp *app, void (*fn)(void *arg), void *arg);
/* pageserver_defer_json / pageserver_defer_done: call cb later with err (copied) or result (taken
 * over; dropped when err is set). */
void pageserver_defer_json(PageserverApp *app, PageserverJsonFn cb, void *arg, const Err *err,
                           json_t *result);
void pageserver_defer_done(PageserverApp *app, PageserverDoneFn cb, void *arg, const Err *err);

#endif
