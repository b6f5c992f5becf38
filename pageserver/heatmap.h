/*
 * heatmap.h: heatmaps (pageserver.md "Secondary locations and heatmaps"): what an attached
 * location tells its warm secondaries to keep local, and its uploads.
 *
 * tenants/<tsid>/heatmap-v1.json (no generation suffix):
 *   {"generation": n,
 *    "timelines": [{"timeline_id": "<hex>",
 *                   "layers": [{"name": "<layer name>",
 *                               "metadata": {"file_size": n, "generation": n, "shard": "NNCC"},
 *                               "access_time": <unix seconds>, "cold": bool}, ...]}, ...],
 *    "upload_period_ms": n or null}
 * Layers come in download priority order: the most recently read first (then by name). A layer
 * is "cold" when the attached location does not hold it locally either (it was never read since
 * the attach): a secondary lists it but does not download it, so it ends up as warm as the
 * attached location, no warmer. Only layers already in remote storage are listed (a layer whose
 * upload is still queued is left out until the next heatmap), and only timelines that are served
 * (Active, not being deleted or imported).
 *
 * Uploads (on the IO worker class, counted in the slot's in-flight work so a stopping slot waits
 * for them): every `heatmap_period` of the tenant config while the location may upload
 * (AttachedSingle, AttachedMulti; never AttachedStale), skipped when nothing but access times
 * changed since this process last uploaded; at once, unconditionally, on
 * POST /v1/tenant/{tsid}/heatmap_upload; and after a location_config with flush_ms (slot.c).
 *
 * The parser treats its input as untrusted (it comes from remote storage): strict types, layer
 * names checked as the index checks them, capped counts. Everything else runs on the loop thread.
 */
#ifndef PAGESERVER_HEATMAP_H
#define PAGESERVER_HEATMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

#include "pageserver/app.h"
#include "pageserver/index_part.h"

struct TenantSlot;

/* Limits of a parsed heatmap (a larger one is refused with 413). */
#define HEATMAP_MAX_TIMELINES 100000
#define HEATMAP_MAX_LAYERS    2000000
#define HEATMAP_MAX_BYTES     (512u * 1024 * 1024)

typedef struct HeatmapLayer {
    IndexLayer meta; /* name, file_size, generation, shard: as in the index */
    int64_t access_time_s;
    bool cold;
} HeatmapLayer;

typedef struct HeatmapTimeline {
    TimelineId id;
    HeatmapLayer *layers;
    size_t n_layers;
} HeatmapTimeline;

typedef struct Heatmap {
    Generation generation;
    uint64_t upload_period_ms; /* 0: null */
    HeatmapTimeline *timelines;
    size_t n_timelines;
} Heatmap;

/* heatmap_free: what h owns (h itself is the caller's); h is then empty. */
void heatmap_free(Heatmap *h);

/* heatmap_to_json: the wire object (new reference). with_access_times false writes every
 * access_time as 0: the form compared to decide whether an upload is needed. */
json_t *heatmap_to_json(const Heatmap *h, bool with_access_times);

/* heatmap_parse: the text of a heatmap object into *out (freed with heatmap_free). 400 for
 * malformed input, 413 above the limits. Unknown fields are ignored (forward compatibility). */
bool heatmap_parse(const char *text, size_t len, Heatmap *out, Err *err) MUST_CHECK;

/* heatmap_of_slot: the heatmap of an attached slot now (loop thread). */
void heatmap_of_slot(const struct TenantSlot *slot, Heatmap *out);

/* ---- uploads by an attached slot ---- */

/* heatmap_slot_refresh: (re)arm or disarm the slot's periodic upload after its state, mode or
 * tenant config changed. heatmap_slot_stop: disarm, and fail the callers waiting for an upload
 * (503); an upload in flight finishes (the slot waits for it). Both are idempotent. */
void heatmap_slot_refresh(struct TenantSlot *slot);
void heatmap_slot_stop(struct TenantSlot *slot);
/* heatmap_slot_free: the slot's uploader state (slot_free). */
void heatmap_slot_free(struct TenantSlot *slot);

/* heatmap_upload_now: upload the slot's heatmap now (force: even when unchanged) and call cb
 * once it is stored (or failed). An upload already running is followed by one more, which this
 * caller waits for (the first may predate what the caller wants published). */
void heatmap_upload_now(struct TenantSlot *slot, bool force, PageserverDoneFn cb, void *arg);

/* tenant_heatmap_upload: POST /v1/tenant/{tsid}/heatmap_upload: 404 when tsid is not attached
 * here (absent, secondary), 409 while AttachedStale (no uploads), 503 while being changed. */
void tenant_heatmap_upload(struct TenantManager *mgr, const TenantShardId *tsid,
                           PageserverDoneFn cb, void *arg);

#endif
