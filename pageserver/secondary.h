/*
 * secondary.h: warm secondary locations (pageserver.md "Secondary locations and heatmaps").
 *
 * A slot in Secondary mode with `secondary_conf.warm = true` keeps a local copy of the layers the
 * attached location's heatmap lists (heatmap.h), in the very paths an attached location uses
 * (<workdir>/tenants/<tsid>/timelines/<tl>/<name>-<gen>), so that when it is attached later the
 * attach finds them resident and downloads nothing it already has.
 *
 * A download pass (one IO worker job):
 *   1. downloads the heatmap, conditionally (If-None-Match with the etag of the last one; "not
 *      modified" keeps the last one; absent: nothing to do, heatmap_mtime null);
 *   2. removes local timeline directories the heatmap does not list and, in listed ones, every
 *      file that is not a listed layer with its size (old layers, partial leftovers);
 *   3. downloads the missing layers that are not cold, in the heatmap's order, each atomically
 *      (temporary file, fsync, rename), counting progress as it goes.
 * Passes repeat every upload_period_ms of the heatmap (PAGESERVER_SECONDARY_PERIOD_MS when it has
 * none), and POST secondary/download asks for one now. Fairness across tenants: at most
 * PAGESERVER_SECONDARY_CONCURRENCY passes run at once; the others wait in one FIFO queue (a
 * tenant's pass is queued once however often it is asked for), whose length is the gauge
 * pageserver_secondary_download_passes_waiting; pageserver_secondary_bytes_behind sums what the
 * warm secondaries' last heatmaps list that they do not hold yet. A pass stops at the next layer
 * (or chunk) when its slot stops (restart, detach, delete, shutdown): the slot waits for it.
 *
 * Everything here runs on the event loop thread except the pass itself.
 */
#ifndef PAGESERVER_SECONDARY_H
#define PAGESERVER_SECONDARY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

#include "pageserver/app.h"

struct TenantSlot;
struct TenantManager;

/* SecondaryProgress: Neon's {"heatmap_mtime", "layers_downloaded", "layers_total",
 * "bytes_downloaded", "bytes_total"} over the layers of the last heatmap that are not cold. */
typedef struct SecondaryProgress {
    int64_t heatmap_mtime_ms; /* 0: no heatmap seen (null) */
    uint64_t layers_downloaded, layers_total;
    uint64_t bytes_downloaded, bytes_total;
} SecondaryProgress;

json_t *secondary_progress_to_json(const SecondaryProgress *p);

/* secondary_slot_refresh: start (or keep) the periodic passes when the slot is a warm Secondary,
 * stop them otherwise. secondary_slot_stop: no new passes; a running one is cancelled (the slot
 * waits for it through its in-flight count); waiting callers get 503. secondary_slot_free: the
 * slot's state (slot_free; callers still waiting are dropped without a callback, as a slot's
 * unfinished change is). */
void secondary_slot_refresh(struct TenantSlot *slot);
void secondary_slot_stop(struct TenantSlot *slot);
void secondary_slot_free(struct TenantSlot *slot);

/* SecondaryDownloadFn: progress (a new reference, NULL exactly when err is set) and whether the
 * download is complete (every layer that is not cold is local). */
typedef void (*SecondaryDownloadFn)(const Err *err, json_t *progress, bool complete, void *arg);

/* secondary_download: POST /v1/tenant/{tsid}/secondary/download?wait_ms=: run a pass now (or
 * after the running one) and answer when it ended or after wait_ms (< 0: wait for the end),
 * whichever comes first. 404 when tsid is not a secondary here, 409 when it is a cold one (warm
 * false: it keeps nothing), 503 not ready or being changed. */
void secondary_download(struct TenantManager *mgr, const TenantShardId *tsid, long wait_ms,
                        SecondaryDownloadFn cb, void *arg);

/* secondary_status: GET /v1/tenant/{tsid}/secondary/status: the progress (404 as above). */
bool secondary_status(struct TenantManager *mgr, const TenantShardId *tsid, json_t **out,
                      Err *err) MUST_CHECK;

/* secondary_scheduler_free: the queue of passes (app teardown). */
void secondary_scheduler_free(PageserverApp *app);

#endif
