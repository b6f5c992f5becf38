/* secondary.c: download passes of warm secondary locations (secondary.h). */
#include "pageserver/secondary.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "shared/failpoint.h"
#include "shared/fsutil.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/str.h"
#include "shared/throttle.h"
#include "shared/worker_pool.h"

#include "pageserver/defaults.h"
#include "pageserver/heatmap.h"
#include "pageserver/index_part.h"
#include "pageserver/layer_map.h"
#include "pageserver/remote_layout.h"
#include "pageserver/slot.h"
#include "pageserver/tenant.h"

typedef struct SecondaryState SecondaryState;

typedef struct SecondaryScheduler {
    SecondaryState *head, *tail; /* passes waiting for a free place, FIFO */
    int running;
    Throttle *throttle;   /* --secondary-download-bandwidth, shared by every pass; NULL: none */
    uint64_t reported_ms; /* of throttle_slept_us, already added to the metric */
} SecondaryScheduler;

typedef struct Waiter {
    SecondaryState *st;
    SecondaryDownloadFn cb;
    void *arg;
    struct event *timer; /* wait_ms, or NULL */
    struct Waiter *next;
} Waiter;

typedef struct PassJob PassJob;

struct SecondaryState {
    TenantSlot *slot;
    bool active;  /* a warm secondary: passes run */
    bool queued;  /* in the scheduler's queue */
    bool running; /* a pass job is in flight (st->job) */
    bool again;   /* one more pass after the running one */
    atomic_bool cancel;
    struct event *timer; /* the next periodic pass */
    Heatmap heatmap;     /* the last one downloaded (empty: none yet) */
    bool have_heatmap;
    char etag[REMOTE_ETAG_SIZE];
    SecondaryProgress progress;
    uint64_t behind; /* bytes_total - bytes_downloaded, as added to the gauge */
    PassJob *job;
    Waiter *waiting;      /* callers of the running pass */
    Waiter *next_waiting; /* callers of the pass after it */
    SecondaryState *qnext;
};

struct PassJob {
    SecondaryState *st;
    RemoteStorage *rs;
    Throttle *throttle; /* the scheduler's (borrowed) or NULL */
    TenantShardId tsid;
    char dir[PATH_MAX];
    char etag[REMOTE_ETAG_SIZE];
    const Heatmap *prev; /* the state's heatmap, read only during the job (or NULL) */
    atomic_bool *cancel;
    /* results */
    Heatmap fresh;
    bool have_fresh; /* a new heatmap was downloaded */
    bool absent;     /* there is no heatmap object */
    char new_etag[REMOTE_ETAG_SIZE];
    int64_t mtime_ms;
    atomic_ullong layers_done, bytes_done;
    uint64_t layers_total, bytes_total;
    bool counted; /* the totals above are the heatmap's */
    uint64_t fetched, fetched_bytes, removed;
    bool ok;
    Err err;
};

json_t *secondary_progress_to_json(const SecondaryProgress *p)
{
    json_t *mtime = json_null();
    if (p->heatmap_mtime_ms > 0) {
        char ts[INDEX_TIMESTAMP_SIZE];
        index_timestamp_format(p->heatmap_mtime_ms, ts);
        mtime = json_string(ts);
    }
    return json_pack("{s:o,s:I,s:I,s:I,s:I}", "heatmap_mtime", mtime, "layers_downloaded",
                     (json_int_t)p->layers_downloaded, "layers_total", (json_int_t)p->layers_total,
                     "bytes_downloaded", (json_int_t)p->bytes_downloaded, "bytes_total",
                     (json_int_t)p->bytes_total);
}

/* ---- the pass (worker) ---- */

/* local_layer_ok: path holds a complete copy (size as listed). */
static bool local_layer_ok(const char *path, uint64_t size)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;
}

static void layer_local_path(const PassJob *j, const HeatmapTimeline *t, const HeatmapLayer *l,
                             char *out, size_t cap)
{
    char tl[ID_STR_SIZE], name[LAYER_NAME_SIZE + GENERATION_SUFFIX_SIZE];
    timeline_id_format(&t->id, tl);
    layer_obj_local_name(l->meta.name, l->meta.generation, name, sizeof(name));
    str_printf(out, cap, "%s/%s/%s/%s", j->dir, PAGESERVER_TIMELINES_DIR, tl, name);
}

typedef struct CleanCtx {
    PassJob *j;
    const Heatmap *hm;
    const HeatmapTimeline *t; /* the timeline whose directory is walked, or NULL: timelines/ */
} CleanCtx;

/* clean_entry: remove what the heatmap does not list (a timeline directory, or a file that is not
 * a listed layer with its size: an old layer, a partial download). */
static bool clean_entry(const char *path, const char *name, void *arg)
{
    CleanCtx *c = arg;
    bool keep = false;
    if (c->t == NULL) {
        TimelineId id;
        Err ignore;
        err_clear(&ignore);
        if (timeline_id_parse(name, &id, &ignore)) {
            for (size_t i = 0; i < c->hm->n_timelines && !keep; i++)
                keep = timeline_id_eq(&c->hm->timelines[i].id, &id);
        }
    } else {
        for (size_t k = 0; k < c->t->n_layers && !keep; k++) {
            const HeatmapLayer *l = &c->t->layers[k];
            char local[LAYER_NAME_SIZE + GENERATION_SUFFIX_SIZE];
            layer_obj_local_name(l->meta.name, l->meta.generation, local, sizeof(local));
            keep = strcmp(local, name) == 0 && local_layer_ok(path, l->meta.file_size);
        }
    }
    if (!keep) {
        Err err;
        err_clear(&err);
        if (fs_remove_tree(path, &err))
            c->j->removed++;
        else
            log_err(&err, "secondary: removing a local file the heatmap does not list");
    }
    return true;
}

/* fetch_heatmap: the heatmap to follow: a new one, the last one (not modified), or none. */
static const Heatmap *fetch_heatmap(PassJob *j)
{
    char key[REMOTE_KEY_SIZE];
    remote_layout_heatmap_key(&j->tsid, key);
    RemoteGetReq req = {.if_none_match = j->etag[0] != '\0' && j->prev != NULL ? j->etag : NULL};
    RemoteGetResult res;
    memset(&res, 0, sizeof(res));
    RemoteOpts opts = {.cancel = j->cancel};
    char *text = NULL;
    size_t len = 0;
    if (!remote_get_ex(j->rs, key, &req, &text, &len, &res, &opts, &j->err)) {
        if (j->err.code == ERR_NOT_FOUND) {
            err_clear(&j->err);
            j->absent = true;
            return NULL;
        }
        j->ok = false;
        return NULL;
    }
    j->mtime_ms = res.info.mtime_ms;
    str_copy(j->new_etag, sizeof(j->new_etag), res.info.etag);
    if (res.not_modified)
        return j->prev;
    bool parsed = heatmap_parse(text, len, &j->fresh, &j->err);
    free(text);
    if (!parsed) { /* the stored object is damaged: not the caller's fault */
        err_prefix(&j->err, "%s: ", key);
        j->err.code = ERR_INTERNAL;
        j->ok = false;
        return NULL;
    }
    j->have_fresh = true;
    return &j->fresh;
}

static void pass_work(WorkerJob *job, void *arg)
{
    (void)job;
    PassJob *j = arg;
    j->ok = failpoint_check("secondary-download", &j->err);
    const Heatmap *hm = j->ok ? fetch_heatmap(j) : NULL;
    if (hm == NULL)
        return; /* failed, or nothing to follow */
    for (size_t i = 0; i < hm->n_timelines; i++) {
        const HeatmapTimeline *t = &hm->timelines[i];
        for (size_t k = 0; k < t->n_layers; k++) {
            if (!t->layers[k].cold) {
                j->layers_total++;
                j->bytes_total += t->layers[k].meta.file_size;
            }
        }
    }
    j->counted = true;
    char tls_dir[PATH_MAX];
    str_printf(tls_dir, sizeof(tls_dir), "%s/%s", j->dir, PAGESERVER_TIMELINES_DIR);
    CleanCtx c = {.j = j, .hm = hm, .t = NULL};
    Err err;
    err_clear(&err);
    if (!fs_dir_each(tls_dir, true, clean_entry, &c, &err))
        log_err(&err, "secondary: scanning local timelines");
    RemoteOpts opts = {.cancel = j->cancel, .throttle = j->throttle};
    for (size_t i = 0; i < hm->n_timelines && j->ok; i++) {
        const HeatmapTimeline *t = &hm->timelines[i];
        char tl[ID_STR_SIZE], tl_dir[PATH_MAX];
        timeline_id_format(&t->id, tl);
        str_printf(tl_dir, sizeof(tl_dir), "%s/%s", tls_dir, tl);
        c.t = t;
        if (!fs_mkdir_p(tl_dir, PAGESERVER_DIR_MODE, &j->err) ||
            !fs_dir_each(tl_dir, true, clean_entry, &c, &j->err)) {
            j->ok = false;
            break;
        }
        for (size_t k = 0; k < t->n_layers && j->ok; k++) {
            const HeatmapLayer *l = &t->layers[k];
            if (l->cold)
                continue;
            char path[PATH_MAX], key[REMOTE_KEY_SIZE];
            layer_local_path(j, t, l, path, sizeof(path));
            if (!local_layer_ok(path, l->meta.file_size)) {
                if (!remote_opts_check(&opts, "secondary download", &j->err) ||
                    !remote_layout_layer_key(&j->tsid.tenant_id, l->meta.shard, &t->id,
                                             l->meta.name, l->meta.generation, key, &j->err)) {
                    j->ok = false;
                    break;
                }
                if (!remote_get_to_file_ex(j->rs, key, path, &opts, &j->err)) {
                    if (j->err.code != ERR_NOT_FOUND) {
                        j->ok = false;
                        break;
                    }
                    /* gone since the heatmap was written (compaction, GC): not needed */
                    log_info("secondary: layer %s is no longer in remote storage", key);
                    err_clear(&j->err);
                    continue;
                }
                j->fetched++;
                j->fetched_bytes += l->meta.file_size;
            }
            atomic_fetch_add(&j->layers_done, 1);
            atomic_fetch_add(&j->bytes_done, l->meta.file_size);
        }
    }
}

/* ---- scheduling (loop) ---- */

static SecondaryScheduler *sched_of(PageserverApp *app)
{
    if (app->secondary_sched == NULL) {
        SecondaryScheduler *s = xcalloc(1, sizeof(*s));
        if (app->cfg.secondary_download_bandwidth > 0)
            s->throttle = throttle_new(app->cfg.secondary_download_bandwidth, 0);
        app->secondary_sched = s;
    }
    return app->secondary_sched;
}

static void pass_start(SecondaryState *st);

static void sched_pump(PageserverApp *app)
{
    SecondaryScheduler *s = sched_of(app);
    while (s->running < PAGESERVER_SECONDARY_CONCURRENCY && s->head != NULL && !app->stopping) {
        SecondaryState *st = s->head;
        s->head = st->qnext;
        if (s->head == NULL)
            s->tail = NULL;
        st->qnext = NULL;
        st->queued = false;
        metric_gauge_add(app->m.secondary_passes_waiting, -1);
        pass_start(st);
    }
}

/* sched_enqueue: a pass of st soon (once; after the running one when it runs). */
static void sched_enqueue(SecondaryState *st)
{
    PageserverApp *app = st->slot->mgr->app;
    if (!st->active)
        return;
    if (st->running) {
        st->again = true;
        return;
    }
    if (st->queued)
        return;
    SecondaryScheduler *s = sched_of(app);
    st->queued = true;
    if (s->tail != NULL)
        s->tail->qnext = st;
    else
        s->head = st;
    s->tail = st;
    metric_gauge_add(app->m.secondary_passes_waiting, 1);
    sched_pump(app);
}

static void sched_remove(SecondaryState *st)
{
    if (!st->queued)
        return;
    PageserverApp *app = st->slot->mgr->app;
    SecondaryScheduler *s = sched_of(app);
    SecondaryState **pp = &s->head, *prev = NULL;
    while (*pp != NULL && *pp != st) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (*pp == st) {
        *pp = st->qnext;
        if (s->tail == st)
            s->tail = prev;
    }
    st->qnext = NULL;
    st->queued = false;
    metric_gauge_add(app->m.secondary_passes_waiting, -1);
}

static void on_period(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sched_enqueue(arg);
}

static void arm_period(SecondaryState *st)
{
    if (st->timer == NULL)
        st->timer = evtimer_new(st->slot->mgr->app->base, on_period, st);
    long ms = st->have_heatmap && st->heatmap.upload_period_ms > 0
                  ? (long)st->heatmap.upload_period_ms
                  : PAGESERVER_SECONDARY_PERIOD_MS;
    if (ms < 1000)
        ms = 1000;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(st->timer, &tv);
}

static SecondaryProgress progress_now(const SecondaryState *st)
{
    SecondaryProgress p = st->progress;
    if (st->job != NULL) { /* a pass runs: its counters so far */
        p.layers_downloaded = atomic_load(&st->job->layers_done);
        p.bytes_downloaded = atomic_load(&st->job->bytes_done);
    }
    return p;
}

static bool progress_complete(const SecondaryProgress *p)
{
    return p->layers_downloaded >= p->layers_total;
}

static void waiter_answer(Waiter *w, const Err *err)
{
    if (w->timer != NULL)
        event_free(w->timer);
    SecondaryProgress p = progress_now(w->st);
    if (err != NULL)
        w->cb(err, NULL, false, w->arg);
    else
        w->cb(NULL, secondary_progress_to_json(&p), progress_complete(&p), w->arg);
    free(w);
}

static void waiters_answer(Waiter *list, const Err *err)
{
    while (list != NULL) {
        Waiter *next = list->next;
        waiter_answer(list, err);
        list = next;
    }
}

static void waiters_drop(Waiter *list)
{
    while (list != NULL) {
        Waiter *next = list->next;
        if (list->timer != NULL)
            event_free(list->timer);
        free(list);
        list = next;
    }
}

static void waiter_unlink(Waiter **list, Waiter *w)
{
    for (Waiter **pp = list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

/* on_wait_timeout: wait_ms passed before the pass ended: answer with the progress so far. */
static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    Waiter *w = arg;
    waiter_unlink(&w->st->waiting, w);
    waiter_unlink(&w->st->next_waiting, w);
    waiter_answer(w, NULL);
}

static void pass_done(void *arg, WorkerOutcome outcome)
{
    PassJob *j = arg;
    SecondaryState *st = j->st;
    TenantSlot *slot = st->slot;
    PageserverApp *app = slot->mgr->app;
    if (!worker_outcome_err(outcome, "secondary download", &j->err))
        j->ok = false;
    st->running = false;
    st->job = NULL;
    SecondaryScheduler *sched = sched_of(app);
    sched->running--;
    if (sched->throttle != NULL) {
        uint64_t ms = throttle_slept_us(sched->throttle) / 1000;
        metric_counter_add(app->m.secondary_throttled_ms, ms - sched->reported_ms);
        sched->reported_ms = ms;
    }
    if (j->have_fresh) {
        heatmap_free(&st->heatmap);
        st->heatmap = j->fresh;
        st->have_heatmap = true;
    }
    if (j->absent) {
        heatmap_free(&st->heatmap);
        st->have_heatmap = false;
        st->etag[0] = '\0';
        memset(&st->progress, 0, sizeof(st->progress));
    } else if (j->new_etag[0] != '\0') {
        str_copy(st->etag, sizeof(st->etag), j->new_etag);
        st->progress.heatmap_mtime_ms = j->mtime_ms;
    }
    if (j->counted) {
        st->progress.layers_total = j->layers_total;
        st->progress.bytes_total = j->bytes_total;
        st->progress.layers_downloaded = atomic_load(&j->layers_done);
        st->progress.bytes_downloaded = atomic_load(&j->bytes_done);
    }
    uint64_t behind = st->progress.bytes_total > st->progress.bytes_downloaded
                          ? st->progress.bytes_total - st->progress.bytes_downloaded
                          : 0;
    metric_gauge_add(app->m.secondary_bytes_behind, (int64_t)behind - (int64_t)st->behind);
    st->behind = behind;
    metric_counter_add(app->m.secondary_passes, 1);
    metric_counter_add(app->m.secondary_layers_downloaded, j->fetched);
    metric_counter_add(app->m.secondary_bytes_downloaded, j->fetched_bytes);
    metric_counter_add(app->m.secondary_layers_removed, j->removed);
    if (!j->ok)
        log_err(&j->err, "secondary download pass");
    else if (j->fetched > 0 || j->removed > 0)
        log_info("tenant shard %s: secondary pass downloaded %" PRIu64 " layers (%" PRIu64
                 " bytes), removed %" PRIu64 " files; %" PRIu64 "/%" PRIu64 " layers local",
                 slot->tsid_str, j->fetched, j->fetched_bytes, j->removed,
                 st->progress.layers_downloaded, st->progress.layers_total);
    Waiter *w = st->waiting;
    st->waiting = NULL;
    waiters_answer(w, j->ok ? NULL : &j->err);
    free(j);
    if (st->active) {
        if (st->again) {
            st->again = false;
            st->waiting = st->next_waiting;
            st->next_waiting = NULL;
            sched_enqueue(st);
        } else {
            arm_period(st);
        }
    }
    sched_pump(app);
    slot_job_end(slot); /* last: a stopping slot may be freed from here */
}

static void pass_start(SecondaryState *st)
{
    TenantSlot *slot = st->slot;
    PageserverApp *app = slot->mgr->app;
    PassJob *j = xcalloc(1, sizeof(*j));
    j->st = st;
    j->rs = app->remote;
    j->throttle = sched_of(app)->throttle;
    j->tsid = slot->tsid;
    str_copy(j->dir, sizeof(j->dir), slot->dir);
    str_copy(j->etag, sizeof(j->etag), st->etag);
    j->prev = st->have_heatmap ? &st->heatmap : NULL;
    j->cancel = &st->cancel;
    atomic_init(&j->layers_done, 0);
    atomic_init(&j->bytes_done, 0);
    st->running = true;
    st->job = j;
    if (st->timer != NULL)
        evtimer_del(st->timer);
    sched_of(app)->running++;
    slot_job_begin(slot);
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO};
    worker_pool_start(app->workers, &spec, pass_work, pass_done, j);
}

/* ---- the slot's side ---- */

void secondary_slot_refresh(TenantSlot *slot)
{
    bool wanted = slot->state == SLOT_SECONDARY && slot->config.secondary_warm;
    if (!wanted) {
        secondary_slot_stop(slot);
        return;
    }
    SecondaryState *st = slot->secondary;
    if (st == NULL) {
        st = xcalloc(1, sizeof(*st));
        st->slot = slot;
        atomic_init(&st->cancel, false);
        slot->secondary = st;
    }
    if (st->active)
        return;
    st->active = true;
    atomic_store(&st->cancel, false);
    sched_enqueue(st); /* the first pass at once */
}

void secondary_slot_stop(TenantSlot *slot)
{
    SecondaryState *st = slot->secondary;
    if (st == NULL || !st->active)
        return;
    st->active = false;
    st->again = false;
    atomic_store(&st->cancel, true);
    sched_remove(st);
    if (st->timer != NULL)
        evtimer_del(st->timer);
    Err err;
    err_clear(&err);
    err_set(&err, ERR_UNAVAILABLE, "tenant shard %s is no longer a warm secondary here",
            slot->tsid_str);
    Waiter *w = st->next_waiting;
    st->next_waiting = NULL;
    waiters_answer(w, &err);
    if (!st->running) {
        w = st->waiting;
        st->waiting = NULL;
        waiters_answer(w, &err);
    }
}

void secondary_slot_free(TenantSlot *slot)
{
    SecondaryState *st = slot->secondary;
    if (st == NULL)
        return;
    PageserverApp *app = slot->mgr->app;
    sched_remove(st);
    if (st->timer != NULL)
        event_free(st->timer);
    waiters_drop(st->waiting);
    waiters_drop(st->next_waiting);
    metric_gauge_add(app->m.secondary_bytes_behind, -(int64_t)st->behind);
    heatmap_free(&st->heatmap);
    free(st);
    slot->secondary = NULL;
}

void secondary_scheduler_free(PageserverApp *app)
{
    if (app->secondary_sched != NULL)
        throttle_free(app->secondary_sched->throttle);
    free(app->secondary_sched);
    app->secondary_sched = NULL;
}

/* warm_secondary: the state of tsid's warm secondary slot, or NULL with err set. */
static SecondaryState *warm_secondary(TenantManager *mgr, const TenantShardId *tsid, Err *err)
{
    TenantSlot *slot = tenant_manager_find(mgr, tsid);
    char id[TSID_STR_SIZE];
    tsid_format(tsid, id);
    if (!tenant_manager_check_ready(mgr, err))
        return NULL;
    if (slot != NULL && slot_is_busy(slot)) {
        err_set(err, ERR_UNAVAILABLE, "tenant shard %s is being changed, retry", id);
        return NULL;
    }
    if (slot == NULL || slot->state != SLOT_SECONDARY) {
        err_set(err, ERR_NOT_FOUND, "tenant shard %s is not a secondary location here", id);
        return NULL;
    }
    if (slot->secondary == NULL || !slot->secondary->active) {
        err_set(err, ERR_CONFLICT,
                "tenant shard %s is a cold secondary here (secondary_conf.warm false): it keeps "
                "no layers",
                id);
        return NULL;
    }
    return slot->secondary;
}

typedef struct DeferredErr {
    SecondaryDownloadFn cb;
    void *arg;
    Err err;
} DeferredErr;

static void deferred_err(void *arg)
{
    DeferredErr *d = arg;
    d->cb(&d->err, NULL, false, d->arg);
    free(d);
}

void secondary_download(TenantManager *mgr, const TenantShardId *tsid, long wait_ms,
                        SecondaryDownloadFn cb, void *arg)
{
    Err err;
    err_clear(&err);
    SecondaryState *st = warm_secondary(mgr, tsid, &err);
    if (st == NULL) {
        DeferredErr *d = xcalloc(1, sizeof(*d));
        d->cb = cb;
        d->arg = arg;
        d->err = err;
        pageserver_defer(mgr->app, deferred_err, d);
        return;
    }
    Waiter *w = xcalloc(1, sizeof(*w));
    w->st = st;
    w->cb = cb;
    w->arg = arg;
    if (wait_ms >= 0) {
        w->timer = evtimer_new(mgr->app->base, on_wait_timeout, w);
        struct timeval tv = {wait_ms / 1000, (wait_ms % 1000) * 1000};
        evtimer_add(w->timer, &tv);
    }
    Waiter **list = st->running ? &st->next_waiting : &st->waiting;
    w->next = *list;
    *list = w;
    sched_enqueue(st);
}

bool secondary_status(TenantManager *mgr, const TenantShardId *tsid, json_t **out, Err *err)
{
    SecondaryState *st = warm_secondary(mgr, tsid, err);
    if (st == NULL)
        return false;
    SecondaryProgress p = progress_now(st);
    *out = secondary_progress_to_json(&p);
    return true;
}
