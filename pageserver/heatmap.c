/* heatmap.c: the heatmap format and the uploads of attached locations (heatmap.h). */
#include "pageserver/heatmap.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "shared/crc32c.h"
#include "shared/failpoint.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/str.h"
#include "shared/tenant_config.h"
#include "shared/worker_pool.h"

#include "pageserver/remote_layout.h"
#include "pageserver/slot.h"
#include "pageserver/tenant.h"
#include "pageserver/timeline.h"

/* ---- the format ---- */

void heatmap_free(Heatmap *h)
{
    for (size_t i = 0; i < h->n_timelines; i++)
        free(h->timelines[i].layers);
    free(h->timelines);
    memset(h, 0, sizeof(*h));
}

json_t *heatmap_to_json(const Heatmap *h, bool with_access_times)
{
    json_t *tls = json_must(json_array());
    for (size_t i = 0; i < h->n_timelines; i++) {
        const HeatmapTimeline *t = &h->timelines[i];
        char id[ID_STR_SIZE];
        timeline_id_format(&t->id, id);
        json_t *layers = json_must(json_array());
        for (size_t k = 0; k < t->n_layers; k++) {
            const HeatmapLayer *l = &t->layers[k];
            json_t *o = json_must(json_object());
            json_set_new(o, "name", json_must(json_string(l->meta.name)));
            json_set_new(o, "metadata", index_layer_to_json(&l->meta));
            json_set_new(o, "access_time",
                         json_must(json_integer(with_access_times ? l->access_time_s : 0)));
            json_set_new(o, "cold", json_must(json_boolean(l->cold)));
            if (json_array_append_new(layers, o) != 0)
                abort();
        }
        json_t *tl = json_must(json_object());
        json_set_new(tl, "timeline_id", json_must(json_string(id)));
        json_set_new(tl, "layers", layers);
        if (json_array_append_new(tls, tl) != 0)
            abort();
    }
    json_t *o = json_must(json_object());
    json_set_new(o, "generation", json_from_generation(h->generation));
    json_set_new(o, "timelines", tls);
    json_set_new(o, "upload_period_ms",
                 h->upload_period_ms != 0 ? json_must(json_integer((json_int_t)h->upload_period_ms))
                                          : json_null());
    return o;
}

static bool parse_layer(const json_t *v, HeatmapLayer *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    char name[INDEX_LAYER_NAME_SIZE];
    bool cold_present = false;
    const json_t *meta = json_is_object(v) ? json_object_get(v, "metadata") : NULL;
    if (!json_is_object(v)) {
        err_set(err, ERR_BAD_REQUEST, "a layer must be an object");
        return false;
    }
    if (!json_get_string(v, "name", name, sizeof(name), true, NULL, err))
        return false;
    if (meta == NULL) {
        err_set(err, ERR_BAD_REQUEST, "layer \"%s\": missing field \"metadata\"", name);
        return false;
    }
    if (!index_layer_from_json(name, meta, &out->meta, err) ||
        !json_get_i64(v, "access_time", &out->access_time_s, true, NULL, err) ||
        !json_get_bool(v, "cold", &out->cold, false, &cold_present, err)) {
        err_prefix(err, "layer \"%s\": ", name);
        return false;
    }
    return true;
}

static bool parse_timeline(const json_t *v, HeatmapTimeline *out, size_t *n_layers_total, Err *err)
{
    const json_t *layers = json_is_object(v) ? json_object_get(v, "layers") : NULL;
    if (!json_is_object(v) || !json_get(v, "timeline_id", JSON_FIELD_TIMELINE_ID, JSON_REQUIRED,
                                        &out->id, sizeof(out->id), NULL, err)) {
        if (!err_is_set(err))
            err_set(err, ERR_BAD_REQUEST, "a timeline must be an object");
        return false;
    }
    if (!json_is_array(layers)) {
        err_set(err, ERR_BAD_REQUEST, "\"layers\" must be an array");
        return false;
    }
    size_t n = json_array_size(layers);
    if (n > HEATMAP_MAX_LAYERS - *n_layers_total) {
        err_set(err, ERR_PAYLOAD_TOO_LARGE, "more than %u layers", (unsigned)HEATMAP_MAX_LAYERS);
        return false;
    }
    *n_layers_total += n;
    out->layers = xcalloc(n ? n : 1, sizeof(*out->layers));
    for (size_t k = 0; k < n; k++) {
        if (!parse_layer(json_array_get(layers, k), &out->layers[k], err))
            return false;
        out->n_layers++;
    }
    return true;
}

bool heatmap_parse(const char *text, size_t len, Heatmap *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (len > HEATMAP_MAX_BYTES) {
        err_set(err, ERR_PAYLOAD_TOO_LARGE, "heatmap: %zu bytes is more than the limit", len);
        return false;
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        err_set(err, ERR_BAD_REQUEST, "heatmap: malformed JSON: %s", jerr.text);
        return false;
    }
    const json_t *tls = json_is_object(root) ? json_object_get(root, "timelines") : NULL;
    bool ok = json_is_object(root) && json_is_array(tls);
    if (!ok)
        err_set(err, ERR_BAD_REQUEST, "heatmap: expected an object with a \"timelines\" array");
    ok = ok &&
         json_get(root, "generation", JSON_FIELD_GENERATION, JSON_REQUIRED, &out->generation,
                  sizeof(out->generation), NULL, err) &&
         json_get_u64(root, "upload_period_ms", &out->upload_period_ms, false, NULL, err);
    size_t n = ok ? json_array_size(tls) : 0;
    if (ok && n > HEATMAP_MAX_TIMELINES) {
        err_set(err, ERR_PAYLOAD_TOO_LARGE, "heatmap: more than %u timelines",
                (unsigned)HEATMAP_MAX_TIMELINES);
        ok = false;
    }
    if (ok)
        out->timelines = xcalloc(n ? n : 1, sizeof(*out->timelines));
    size_t n_layers = 0;
    for (size_t i = 0; ok && i < n; i++) {
        ok = parse_timeline(json_array_get(tls, i), &out->timelines[i], &n_layers, err);
        out->n_timelines++; /* freed by heatmap_free also when half filled */
        if (!ok)
            err_prefix(err, "heatmap: timeline %zu: ", i);
    }
    json_decref(root);
    if (!ok) {
        if (err->code != ERR_PAYLOAD_TOO_LARGE)
            err->code = ERR_BAD_REQUEST;
        heatmap_free(out);
    }
    return ok;
}

/* ---- the heatmap of a slot ---- */

/* layer_queued: the layer's upload is still in the timeline's queue (not in remote storage). */
static bool layer_queued(const Timeline *tl, const Layer *l)
{
    for (const UploadOp *op = tl->uq_head; op != NULL; op = op->next) {
        if (op->kind == UPLOAD_LAYER && op->layer == l)
            return true;
    }
    return false;
}

static int layer_priority(const void *pa, const void *pb)
{
    const HeatmapLayer *a = pa, *b = pb;
    if (a->cold != b->cold)
        return a->cold ? 1 : -1; /* hot first */
    if (a->access_time_s != b->access_time_s)
        return a->access_time_s > b->access_time_s ? -1 : 1; /* most recently read first */
    return strcmp(a->meta.name, b->meta.name);
}

void heatmap_of_slot(const TenantSlot *slot, Heatmap *out)
{
    memset(out, 0, sizeof(*out));
    out->generation = slot_generation(slot);
    TenantConfig eff;
    tenant_config_effective(&slot->config.tenant_conf, &eff);
    out->upload_period_ms = eff.heatmap_period_ms;
    out->timelines = xcalloc(slot->n_timelines ? slot->n_timelines : 1, sizeof(*out->timelines));
    for (size_t i = 0; i < slot->n_timelines; i++) {
        Timeline *tl = slot->timelines[i];
        if (!timeline_is_served(tl))
            continue;
        HeatmapTimeline *t = &out->timelines[out->n_timelines++];
        t->id = tl->id;
        t->layers = xcalloc(tl->n_layers ? tl->n_layers : 1, sizeof(*t->layers));
        for (size_t k = 0; k < tl->n_layers; k++) {
            Layer *l = tl->layers[k];
            if (layer_queued(tl, l))
                continue;
            HeatmapLayer *h = &t->layers[t->n_layers++];
            h->meta = layer_obj_to_index(l);
            h->access_time_s = (int64_t)atomic_load(&l->access_time_s);
            h->cold = !layer_obj_is_resident(l);
        }
        qsort(t->layers, t->n_layers, sizeof(*t->layers), layer_priority);
    }
}

/* ---- uploads ---- */

typedef struct Waiter {
    PageserverDoneFn cb;
    void *arg;
    struct Waiter *next;
} Waiter;

typedef struct HeatmapUploader {
    struct event *timer;  /* periodic uploads, or NULL */
    uint64_t period_ms;   /* of the armed timer */
    bool running;         /* an upload job is in flight */
    bool again, force;    /* one more upload after it (forced) */
    Waiter *waiting;      /* callers of the upload in flight */
    Waiter *next_waiting; /* callers of the upload after it */
    bool have_digest;
    uint32_t digest; /* of the last stored heatmap without access times */
} HeatmapUploader;

typedef struct HeatmapJob {
    TenantSlot *slot;
    RemoteStorage *rs;
    char key[REMOTE_KEY_SIZE];
    char *body;
    uint32_t digest;
    bool ok;
    Err err;
} HeatmapJob;

static HeatmapUploader *uploader_of(TenantSlot *slot)
{
    if (slot->heatmap == NULL)
        slot->heatmap = xcalloc(1, sizeof(HeatmapUploader));
    return slot->heatmap;
}

static void waiters_finish(PageserverApp *app, Waiter *w, const Err *err)
{
    while (w != NULL) {
        Waiter *next = w->next;
        pageserver_defer_done(app, w->cb, w->arg, err);
        free(w);
        w = next;
    }
}

static void waiters_drop(Waiter *w)
{
    while (w != NULL) {
        Waiter *next = w->next;
        free(w);
        w = next;
    }
}

static void waiter_push(Waiter **list, PageserverDoneFn cb, void *arg)
{
    if (cb == NULL)
        return;
    Waiter *w = xcalloc(1, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    w->next = *list;
    *list = w;
}

static void upload_work(WorkerJob *job, void *arg)
{
    (void)job;
    HeatmapJob *j = arg;
    j->ok = failpoint_check("heatmap-upload", &j->err) &&
            remote_put(j->rs, j->key, j->body, strlen(j->body), &j->err);
}

static void upload_start(TenantSlot *slot, bool force);

static void upload_done(void *arg, WorkerOutcome outcome)
{
    HeatmapJob *j = arg;
    TenantSlot *slot = j->slot;
    PageserverApp *app = slot->mgr->app;
    HeatmapUploader *up = slot->heatmap;
    if (!worker_outcome_err(outcome, "uploading the heatmap", &j->err))
        j->ok = false;
    if (j->ok) {
        up->have_digest = true;
        up->digest = j->digest;
        metric_counter_add(app->m.heatmap_uploads, 1);
    } else {
        err_prefix(&j->err, "heatmap upload: ");
        log_err(&j->err, "tenant shard heatmap");
    }
    up->running = false;
    Waiter *w = up->waiting;
    up->waiting = NULL;
    waiters_finish(app, w, j->ok ? NULL : &j->err);
    free(j->body);
    free(j);
    if (up->again) {
        up->again = false;
        up->waiting = up->next_waiting;
        up->next_waiting = NULL;
        if (slot->state == SLOT_ACTIVE && slot_may_upload(slot)) {
            upload_start(slot, up->force);
        } else {
            Err e;
            err_clear(&e);
            err_set(&e, ERR_CONFLICT, "tenant shard %s no longer uploads (%s)", slot->tsid_str,
                    slot_state_name(slot->state));
            w = up->waiting;
            up->waiting = NULL;
            waiters_finish(app, w, &e);
        }
    }
    slot_job_end(slot); /* last: a stopping slot may be freed from here */
}

/* upload_start: serialize now and store on a worker (up->waiting already set). */
static void upload_start(TenantSlot *slot, bool force)
{
    PageserverApp *app = slot->mgr->app;
    HeatmapUploader *up = uploader_of(slot);
    Heatmap h;
    heatmap_of_slot(slot, &h);
    json_t *stripped = heatmap_to_json(&h, false);
    char *stripped_text = json_dumps_compact(stripped);
    json_decref(stripped);
    uint32_t digest = crc32c(stripped_text, strlen(stripped_text));
    free(stripped_text);
    if (!force && up->have_digest && digest == up->digest) {
        heatmap_free(&h);
        metric_counter_add(app->m.heatmap_uploads_skipped, 1);
        Waiter *w = up->waiting;
        up->waiting = NULL;
        waiters_finish(app, w, NULL);
        return;
    }
    json_t *full = heatmap_to_json(&h, true);
    heatmap_free(&h);
    HeatmapJob *j = xcalloc(1, sizeof(*j));
    j->slot = slot;
    j->rs = app->remote;
    j->digest = digest;
    j->body = json_dumps_compact(full);
    json_decref(full);
    remote_layout_heatmap_key(&slot->tsid, j->key);
    up->running = true;
    up->force = false;
    slot_job_begin(slot);
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO};
    worker_pool_start(app->workers, &spec, upload_work, upload_done, j);
}

void heatmap_upload_now(TenantSlot *slot, bool force, PageserverDoneFn cb, void *arg)
{
    HeatmapUploader *up = uploader_of(slot);
    if (up->running) {
        waiter_push(&up->next_waiting, cb, arg);
        up->again = true;
        up->force = up->force || force;
        return;
    }
    waiter_push(&up->waiting, cb, arg);
    upload_start(slot, force);
}

static void on_heatmap_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    TenantSlot *slot = arg;
    if (slot->state == SLOT_ACTIVE && slot_may_upload(slot) && !slot->mgr->app->stopping)
        heatmap_upload_now(slot, false, NULL, NULL);
}

static void timer_disarm(HeatmapUploader *up)
{
    if (up->timer != NULL) {
        event_free(up->timer);
        up->timer = NULL;
    }
    up->period_ms = 0;
}

void heatmap_slot_refresh(TenantSlot *slot)
{
    TenantConfig eff;
    tenant_config_effective(&slot->config.tenant_conf, &eff);
    bool wanted = slot->state == SLOT_ACTIVE && slot_may_upload(slot) && eff.heatmap_period_ms > 0;
    if (!wanted) {
        if (slot->heatmap != NULL)
            timer_disarm(slot->heatmap);
        return;
    }
    HeatmapUploader *up = uploader_of(slot);
    if (up->timer != NULL && up->period_ms == eff.heatmap_period_ms)
        return;
    timer_disarm(up);
    up->timer = event_new(slot->mgr->app->base, -1, EV_PERSIST, on_heatmap_timer, slot);
    up->period_ms = eff.heatmap_period_ms;
    struct timeval tv = {(time_t)(up->period_ms / 1000),
                         (suseconds_t)(up->period_ms % 1000) * 1000};
    evtimer_add(up->timer, &tv);
}

void heatmap_slot_stop(TenantSlot *slot)
{
    HeatmapUploader *up = slot->heatmap;
    if (up == NULL)
        return;
    timer_disarm(up);
    up->again = false;
    Waiter *w = up->next_waiting;
    up->next_waiting = NULL;
    Err err;
    err_clear(&err);
    err_set(&err, ERR_UNAVAILABLE, "tenant shard %s is shutting down", slot->tsid_str);
    waiters_finish(slot->mgr->app, w, &err);
}

void heatmap_slot_free(TenantSlot *slot)
{
    HeatmapUploader *up = slot->heatmap;
    if (up == NULL)
        return;
    timer_disarm(up);
    /* callers still waiting are dropped without a callback, as the slot's unfinished change is */
    waiters_drop(up->waiting);
    waiters_drop(up->next_waiting);
    free(up);
    slot->heatmap = NULL;
}

void tenant_heatmap_upload(TenantManager *mgr, const TenantShardId *tsid, PageserverDoneFn cb,
                           void *arg)
{
    Err err;
    err_clear(&err);
    TenantSlot *slot = tenant_manager_find(mgr, tsid);
    char id[TSID_STR_SIZE];
    tsid_format(tsid, id);
    if (!tenant_manager_check_ready(mgr, &err) || !slot_check_readable(slot, &err)) {
        if (err.code == ERR_NOT_FOUND)
            err_set(&err, ERR_NOT_FOUND, "tenant shard %s is not attached on this pageserver", id);
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    if (!slot_may_upload(slot)) {
        err_set(&err, ERR_CONFLICT, "tenant shard %s is AttachedStale here: it uploads nothing",
                id);
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    heatmap_upload_now(slot, true, cb, arg);
}
