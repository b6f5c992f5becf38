/* app.c: the domain metrics and deferred completions (app.h; through app->defer). */
#include "pageserver/app.h"

#include <stdlib.h>

#include "shared/metrics.h"
#include "shared/str.h"

#include "pageserver/slot.h"

void pageserver_defer(PageserverApp *app, void (*fn)(void *arg), void *arg)
{
    loop_defer(app->defer, fn, arg);
}

void pageserver_defer_json(PageserverApp *app, PageserverJsonFn cb, void *arg, const Err *err,
                           json_t *result)
{
    loop_defer_json(app->defer, cb, arg, err, result);
}

void pageserver_defer_done(PageserverApp *app, PageserverDoneFn cb, void *arg, const Err *err)
{
    loop_defer_done(app->defer, cb, arg, err);
}

void pageserver_metrics_register(PageserverApp *app)
{
    MetricsRegistry *r = app->metrics;
    PageserverMetrics *m = &app->m;
    for (int s = 0; s < SLOT_STATE_COUNT; s++) {
        char labels[64];
        str_printf(labels, sizeof(labels), "state=\"%s\"", slot_state_name((SlotState)s));
        m->slots_by_state[s] =
            metrics_gauge(r, "pageserver_tenant_slots", "Tenant shard slots by state", labels);
    }
    m->timelines = metrics_gauge(r, "pageserver_timelines", "Timelines loaded", NULL);
    m->layers_uploaded =
        metrics_counter(r, "pageserver_layers_uploaded_total", "Layer files uploaded", NULL);
    m->layer_bytes_uploaded = metrics_counter(r, "pageserver_layer_bytes_uploaded_total",
                                              "Bytes of layer files uploaded", NULL);
    m->layers_downloaded = metrics_counter(r, "pageserver_layers_downloaded_total",
                                           "Reads that downloaded a layer file", NULL);
    m->layer_bytes_downloaded = metrics_counter(r, "pageserver_layer_bytes_downloaded_total",
                                                "Bytes of layer files downloaded", NULL);
    m->index_uploads =
        metrics_counter(r, "pageserver_index_uploads_total", "index_part.json uploads", NULL);
    m->upload_retries =
        metrics_counter(r, "pageserver_upload_retries_total", "Failed upload attempts", NULL);
    m->layer_refetches =
        metrics_counter(r, "pageserver_layer_refetches_total",
                        "Damaged local layer copies evicted and downloaded again", NULL);
    m->heatmap_uploads =
        metrics_counter(r, "pageserver_heatmap_uploads_total", "Heatmaps uploaded", NULL);
    m->heatmap_uploads_skipped =
        metrics_counter(r, "pageserver_heatmap_uploads_skipped_total",
                        "Periodic heatmap uploads skipped because nothing changed", NULL);
    m->secondary_passes = metrics_counter(r, "pageserver_secondary_download_passes_total",
                                          "Download passes of warm secondary locations", NULL);
    m->secondary_layers_downloaded =
        metrics_counter(r, "pageserver_secondary_layers_downloaded_total",
                        "Layer files downloaded by warm secondary locations", NULL);
    m->secondary_bytes_downloaded =
        metrics_counter(r, "pageserver_secondary_bytes_downloaded_total",
                        "Bytes of layer files downloaded by warm secondary locations", NULL);
    m->secondary_layers_removed = metrics_counter(
        r, "pageserver_secondary_layers_removed_total",
        "Local layer files removed by secondaries (no longer in the heatmap)", NULL);
    m->secondary_passes_waiting =
        metrics_gauge(r, "pageserver_secondary_download_passes_waiting",
                      "Secondary download passes queued behind the concurrency limit", NULL);
    m->secondary_bytes_behind =
        metrics_gauge(r, "pageserver_secondary_bytes_behind",
                      "Bytes the warm secondaries' heatmaps list that they do not hold yet", NULL);
    m->secondary_throttled_ms = metrics_counter(
        r, "pageserver_secondary_download_throttled_ms_total",
        "Milliseconds warm secondary downloads slept to keep --secondary-download-bandwidth", NULL);
    m->temp_files_removed =
        metrics_counter(r, "pageserver_temp_files_removed_total",
                        "Temporary files left by a crash removed at startup", NULL);
    m->deletion_queue_depth = metrics_gauge(r, "pageserver_deletion_queue_depth",
                                            "Remote objects queued for deletion", NULL);
    m->deletion_objects_executed =
        metrics_counter(r, "pageserver_deletion_executed_total", "Remote objects deleted", NULL);
    m->deletion_objects_dropped =
        metrics_counter(r, "pageserver_deletion_dropped_total",
                        "Remote deletions dropped because the generation was stale", NULL);
    m->deletion_validations = metrics_counter(r, "pageserver_deletion_validations_total",
                                              "validate upcalls answered", NULL);
    m->getpage_seconds = metrics_histogram(r, "pageserver_getpage_seconds",
                                           "Latency of getpage reads", NULL, NULL, 0);
    m->getpage_errors =
        metrics_counter(r, "pageserver_getpage_errors_total", "getpage reads that failed", NULL);
    m->timelines_created =
        metrics_counter(r, "pageserver_timelines_created_total", "Timelines created", NULL);
    m->upcall_retries = metrics_counter(r, "pageserver_upcall_retries_total",
                                        "Failed control plane upcall attempts", NULL);
    m->page_cache_hits = metrics_counter(
        r, "pageserver_page_cache_hits_total",
        "Layer value reads answered from the page cache (--page-cache-bytes)", NULL);
    m->page_cache_misses = metrics_counter(r, "pageserver_page_cache_misses_total",
                                           "Layer value reads the page cache did not hold", NULL);
    m->page_cache_evictions = metrics_counter(r, "pageserver_page_cache_evictions_total",
                                              "Values evicted from the full page cache", NULL);
    m->page_cache_bytes =
        metrics_gauge(r, "pageserver_page_cache_bytes", "Bytes of values in the page cache", NULL);
}
