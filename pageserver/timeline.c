/*
 * timeline.c: timeline metadata, the ordered upload queue, creation and deletion.
 *
 * Creation (POST /v1/tenant/{tsid}/timeline) is a small state machine on a LOADING timeline:
 *   Bootstrap: worker job (bootstrap.c: initdb or the shared archive, conversion into local image
 *              layers) -> layers added and their uploads queued -> index upload queued -> on the
 *              index upload's completion: ACTIVE, 201.
 *   Branch:    metadata from the ancestor -> index upload queued -> ACTIVE, 201.
 * The caller's callback waits in the timeline (create_cb) until the index is durable; a repeat
 * meanwhile gets 429. A failure removes the LOADING timeline again (its local files are removed by
 * the next attach, its uploaded layers if any are unreferenced objects: they leak, which is safe).
 *
 * Deletion (DELETE ...): STOPPING at once (202), queued uploads dropped; once no upload runs a
 * worker writes an index with deleted_at in our generation and lists every object of the
 * timeline; they go to the deletion queue in one list with our own index last (the queue
 * executes a list in push order, after validation), and once the queue has executed it the local
 * directory is removed and the timeline forgotten (404). A restart in the middle finds deleted_at
 * in the index and resumes.
 */
#include "pageserver/timeline.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "shared/failpoint.h"
#include "shared/fsm.h"
#include "shared/fsutil.h"
#include "shared/http_client.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/bootstrap.h"
#include "pageserver/defaults.h"
#include "pageserver/deletion_queue.h"
#include "pageserver/remote_layout.h"
#include "pageserver/tenant.h"

static PageserverApp *tl_app(const Timeline *tl)
{
    return tl->slot->mgr->app;
}

static const char *const TIMELINE_STATE_NAMES[TIMELINE_STATE_COUNT] = {
    [TIMELINE_LOADING] = "Loading",     [TIMELINE_ACTIVE] = "Active",
    [TIMELINE_STOPPING] = "Stopping",   [TIMELINE_BROKEN] = "Broken",
    [TIMELINE_IMPORTING] = "Importing",
};

static const FsmTransition TIMELINE_TRANSITIONS[] = {
    {TIMELINE_LOADING, TIMELINE_ACTIVE, "created, or index loaded"},
    {TIMELINE_LOADING, TIMELINE_BROKEN, "index not loadable"},
    {TIMELINE_LOADING, TIMELINE_STOPPING, "index has deleted_at, or slot stopping"},
    {TIMELINE_ACTIVE, TIMELINE_BROKEN, "ancestor not found"},
    {TIMELINE_ACTIVE, TIMELINE_STOPPING, "deleted, or slot stopping"},
    {TIMELINE_BROKEN, TIMELINE_STOPPING, "slot stopping"},
    {TIMELINE_LOADING, TIMELINE_IMPORTING, "created, or index loaded, with an import in progress"},
    {TIMELINE_IMPORTING, TIMELINE_ACTIVE, "activate_post_import"},
    {TIMELINE_IMPORTING, TIMELINE_STOPPING, "deleted, or slot stopping"},
};

static const int TIMELINE_TERMINAL[] = {TIMELINE_STOPPING};

static const FsmDef TIMELINE_FSM = {
    .name = "timeline",
    .doc = "docs/pageserver.md",
    .state_names = TIMELINE_STATE_NAMES,
    .n_states = TIMELINE_STATE_COUNT,
    .initial = TIMELINE_LOADING,
    .terminal = TIMELINE_TERMINAL,
    .n_terminal = FSM_COUNT(TIMELINE_TERMINAL),
    .transitions = TIMELINE_TRANSITIONS,
    .n_transitions = FSM_COUNT(TIMELINE_TRANSITIONS),
};
FSM_REGISTER(TIMELINE_FSM)

const char *timeline_state_name(TimelineState s)
{
    return fsm_state_name(&TIMELINE_FSM, (int)s);
}

bool timeline_set_state(Timeline *tl, TimelineState to)
{
    if (tl->state == to)
        return true;
    if (!fsm_set_state(&TIMELINE_FSM, &tl->state, to, tl->id_str))
        return false;
    tenant_manager_reads_changed(tl->slot->mgr);
    return true;
}

static void on_uq_timer(evutil_socket_t fd, short what, void *arg);

Timeline *timeline_new(struct TenantSlot *slot, const TimelineId *id)
{
    Timeline *tl = xcalloc(1, sizeof(*tl));
    tl->slot = slot;
    tl->id = *id;
    timeline_id_format(id, tl->id_str);
    tl->state = TIMELINE_LOADING;
    tl->index = index_part_new();
    atomic_init(&tl->uq_cancel, false);
    slot_timeline_dir(slot, id, tl->dir, sizeof(tl->dir));
    tl->uq_timer = evtimer_new(slot->mgr->app->base, on_uq_timer, tl);
    return tl;
}

static void upload_op_free(UploadOp *op)
{
    layer_obj_unref(op->layer);
    free(op->index_text);
    free(op);
}

void timeline_uploads_drop(Timeline *tl)
{
    /* the running operation (the head, when uq_running) is told to stop and ends as a failed
     * attempt (no retry: the slot is stopping or the timeline is going) */
    if (tl->uq_running)
        atomic_store(&tl->uq_cancel, true);
    UploadOp **p = tl->uq_running ? &tl->uq_head->next : &tl->uq_head;
    UploadOp *dropped = *p;
    *p = NULL;
    tl->uq_tail = tl->uq_running ? tl->uq_head : NULL;
    if (tl->uq_timer != NULL)
        evtimer_del(tl->uq_timer);
    while (dropped != NULL) {
        UploadOp *op = dropped;
        dropped = op->next;
        if (op->done != NULL)
            op->done(op->done_arg, false);
        upload_op_free(op);
    }
}

void timeline_free(Timeline *tl)
{
    if (tl == NULL)
        return;
    import_task_cancel(tl);
    timeline_uploads_drop(tl);
    if (tl->uq_running) {
        /* only at process exit: the worker pool is gone, nothing will complete it */
        UploadOp *op = tl->uq_head;
        tl->uq_head = NULL;
        upload_op_free(op);
    }
    if (tl->uq_timer != NULL)
        event_free(tl->uq_timer);
    for (size_t i = 0; i < tl->n_layers; i++)
        layer_obj_unref(tl->layers[i]);
    free(tl->layers);
    index_part_free(tl->index);
    free(tl);
}

uint64_t timeline_physical_size(const Timeline *tl)
{
    uint64_t n = 0;
    for (size_t i = 0; i < tl->n_layers; i++)
        n += tl->layers[i]->file_size;
    return n;
}

static void index_set_metadata(Timeline *tl)
{
    IndexMetadata *m = &tl->index->metadata;
    tl->index->disk_consistent_lsn = tl->disk_consistent_lsn;
    m->disk_consistent_lsn = tl->disk_consistent_lsn;
    m->prev_record_lsn = tl->prev_record_lsn;
    m->has_ancestor = tl->has_ancestor;
    if (tl->has_ancestor)
        m->ancestor_timeline = tl->ancestor_id;
    m->ancestor_lsn = tl->has_ancestor ? tl->ancestor_lsn : LSN_INVALID;
    m->latest_gc_cutoff_lsn = tl->gc_cutoff_lsn;
    m->initdb_lsn = tl->initdb_lsn;
    m->pg_version = tl->pg_version;
}

static bool timeline_push_layer(Timeline *tl, Layer *layer)
{
    if (tl->n_layers == tl->cap_layers) {
        tl->cap_layers = tl->cap_layers ? tl->cap_layers * 2 : 8;
        tl->layers = xrealloc(tl->layers, tl->cap_layers * sizeof(Layer *));
    }
    tl->layers[tl->n_layers++] = layer;
    return true;
}

bool timeline_load_index(Timeline *tl, IndexPart *index, const bool *resident, Err *err)
{
    index_part_free(tl->index);
    tl->index = index;
    const IndexMetadata *m = &index->metadata;
    tl->has_ancestor = m->has_ancestor;
    tl->ancestor_id = m->ancestor_timeline;
    tl->ancestor_lsn = m->ancestor_lsn;
    tl->disk_consistent_lsn =
        index->disk_consistent_lsn ? index->disk_consistent_lsn : m->disk_consistent_lsn;
    tl->last_record_lsn = tl->disk_consistent_lsn;
    tl->prev_record_lsn = m->prev_record_lsn;
    tl->remote_consistent_lsn = tl->disk_consistent_lsn;
    tl->remote_consistent_lsn_visible = LSN_INVALID;
    tl->initdb_lsn = m->initdb_lsn;
    tl->gc_cutoff_lsn = m->latest_gc_cutoff_lsn;
    tl->pg_version = m->pg_version;
    (void)timeline_set_state(tl, index->has_deleted_at ? TIMELINE_STOPPING
                                 : import_index_state(index, NULL) == IMPORT_INDEX_IN_PROGRESS
                                     ? TIMELINE_IMPORTING
                                     : TIMELINE_ACTIVE);
    tl->deleting = index->has_deleted_at;
    for (size_t i = 0; i < index->n_layers; i++) {
        Layer *l = NULL;
        if (!layer_obj_new(&index->layers[i], &tl->slot->tsid.tenant_id, &tl->id, tl->dir,
                           resident != NULL && resident[i], &l, err))
            return false;
        timeline_push_layer(tl, l);
    }
    return true;
}

bool timeline_add_layer(Timeline *tl, Layer *layer, Err *err)
{
    IndexLayer e = layer_obj_to_index(layer);
    if (!index_part_add_layer(tl->index, &e, err))
        return false;
    return timeline_push_layer(tl, layer);
}

/* ---- upload queue ---- */

typedef struct UploadJob {
    Timeline *tl;
    UploadOp *op;
    RemoteStorage *rs;
    bool ok;
    Err err;
} UploadJob;

static void uq_step(Timeline *tl);

static void upload_work(WorkerJob *job, void *arg)
{
    UploadJob *j = arg;
    UploadOp *op = j->op;
    /* the timeline outlives the job (its slot waits for it); a drop stops the upload early */
    RemoteOpts opts = {.cancel = &j->tl->uq_cancel};
    if (op->kind == UPLOAD_LAYER) {
        j->ok = failpoint_check("upload-layer", &j->err) &&
                remote_put_file_ex(j->rs, op->key, op->layer->local_path, &opts, &j->err);
    } else {
        j->ok =
            failpoint_check("upload-index", &j->err) &&
            remote_put_ex(j->rs, op->key, op->index_text, strlen(op->index_text), &opts, &j->err);
    }
}

static void upload_done(void *arg, WorkerOutcome outcome)
{
    UploadJob *j = arg;
    if (!worker_outcome_err(outcome, "upload", &j->err))
        j->ok = false; /* only shutdown cancels: handled as a failed attempt, the op stays */
    Timeline *tl = j->tl;
    struct TenantSlot *slot = tl->slot;
    PageserverApp *app = tl_app(tl);
    UploadOp *op = j->op;
    tl->uq_running = false;
    if (j->ok) {
        tl->uq_head = op->next;
        if (tl->uq_head == NULL)
            tl->uq_tail = NULL;
        tl->uq_attempt = 0;
        if (op->kind == UPLOAD_LAYER) {
            metric_counter_add(app->m.layers_uploaded, 1);
            metric_counter_add(app->m.layer_bytes_uploaded, op->layer->file_size);
        } else {
            metric_counter_add(app->m.index_uploads, 1);
            if (op->index_lsn > tl->remote_consistent_lsn)
                tl->remote_consistent_lsn = op->index_lsn;
            deletion_queue_push_lsn(app->deletion, &slot->tsid, slot_generation(slot), &tl->id,
                                    op->index_lsn);
        }
        log_debug("uploaded %s", op->key);
        if (op->done != NULL)
            op->done(op->done_arg, true);
        upload_op_free(op);
    } else if (tl->deleting) {
        /* the timeline is being deleted: never retry (a late index upload would bring back an
         * index naming deleted layers); the deletion waits for !uq_running */
        tl->uq_head = op->next;
        if (tl->uq_head == NULL)
            tl->uq_tail = NULL;
        if (op->done != NULL)
            op->done(op->done_arg, false);
        upload_op_free(op);
    } else {
        tl->uq_attempt++;
        long delay = backoff_delay_ms(tl->uq_attempt, PAGESERVER_UPLOAD_BACKOFF_BASE_MS,
                                      PAGESERVER_UPLOAD_BACKOFF_MAX_MS);
        if (tl->uq_attempt == 1 || tl->uq_attempt % 10 == 0)
            log_warn("upload of %s failed (attempt %d): %s; retrying in %ld ms", op->key,
                     tl->uq_attempt, j->err.msg, delay);
        metric_counter_add(app->m.upload_retries, 1);
        struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
        evtimer_add(tl->uq_timer, &tv);
    }
    free(j);
    uq_step(tl);
    slot_job_end(slot); /* last: a stopping slot may free the timeline now */
}

static void uq_step(Timeline *tl)
{
    if (tl->uq_running || tl->deleting || tl->uq_head == NULL || !slot_may_upload(tl->slot) ||
        evtimer_pending(tl->uq_timer, NULL) || tl_app(tl)->http_client == NULL)
        return;
    UploadJob *j = xcalloc(1, sizeof(*j));
    j->tl = tl;
    j->op = tl->uq_head;
    j->rs = tl_app(tl)->remote;
    tl->uq_running = true;
    atomic_store(&tl->uq_cancel, false);
    slot_job_begin(tl->slot);
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO}; /* no deadline: retried until it succeeds */
    worker_pool_start(tl_app(tl)->workers, &spec, upload_work, upload_done, j);
}

static void on_uq_timer(evutil_socket_t fd, short what, void *arg)
{
    uq_step(arg);
}

static void uq_push(Timeline *tl, UploadOp *op)
{
    op->next = NULL;
    if (tl->uq_tail != NULL)
        tl->uq_tail->next = op;
    else
        tl->uq_head = op;
    tl->uq_tail = op;
    uq_step(tl);
}

void timeline_schedule_layer_upload(Timeline *tl, Layer *layer, UploadDoneFn done, void *arg)
{
    UploadOp *op = xcalloc(1, sizeof(*op));
    op->kind = UPLOAD_LAYER;
    op->layer = layer_obj_ref(layer);
    str_copy(op->key, sizeof(op->key), layer->remote_key);
    op->done = done;
    op->done_arg = arg;
    uq_push(tl, op);
}

void timeline_schedule_index_upload(Timeline *tl, UploadDoneFn done, void *arg)
{
    index_set_metadata(tl);
    UploadOp *op = xcalloc(1, sizeof(*op));
    op->kind = UPLOAD_INDEX;
    op->index_text = index_part_serialize(tl->index);
    op->index_lsn = tl->disk_consistent_lsn;
    remote_layout_index_key(&tl->slot->tsid, &tl->id, slot_generation(tl->slot), op->key);
    op->done = done;
    op->done_arg = arg;
    uq_push(tl, op);
}

bool timeline_uploads_idle(const Timeline *tl)
{
    return tl->uq_head == NULL && !tl->uq_running;
}

void timeline_uploads_kick(Timeline *tl)
{
    uq_step(tl);
}

/* ---- sizes ---- */

typedef struct SizesJob {
    TenantSlot *slot; /* kept alive by the read job's slot job */
    uint64_t incarnation;
    TimelineId id;
    Lsn lsn;
} SizesJob;

static void on_sizes(const Err *err, const TimelineSizes *sizes, void *arg)
{
    SizesJob *sj = arg;
    Timeline *tl =
        sj->slot->incarnation == sj->incarnation ? slot_find_timeline(sj->slot, &sj->id) : NULL;
    if (tl != NULL && tl->sizes_running) {
        tl->sizes_running = false;
        if (err != NULL) {
            log_warn("timeline %s/%s: cannot compute the logical size: %s", tl->slot->tsid_str,
                     tl->id_str, err->msg);
        } else if (tl->last_record_lsn == sj->lsn) {
            tl->logical_size = sizes->logical_size;
            tl->logical_size_accurate = true;
            memcpy(tl->dir_counts, sizes->dir_counts, sizeof(tl->dir_counts));
            tl->dir_counts_known = true;
        }
    }
    free(sj);
}

void timeline_compute_sizes(Timeline *tl)
{
    if (tl->state != TIMELINE_ACTIVE || tl->sizes_running ||
        (tl->logical_size_accurate && tl->dir_counts_known))
        return;
    SizesJob *sj = xcalloc(1, sizeof(*sj));
    sj->slot = tl->slot;
    sj->incarnation = tl->slot->incarnation;
    sj->id = tl->id;
    sj->lsn = tl->last_record_lsn;
    tl->sizes_running = true;
    read_path_timeline_sizes(tl, on_sizes, sj);
}

/* ---- TimelineInfo ---- */

static json_t *lsn_or_zero(Lsn lsn)
{
    if (lsn == LSN_INVALID)
        return json_string("0/0");
    return json_from_lsn(lsn);
}

json_t *timeline_info_json(const Timeline *tl)
{
    json_t *state;
    if (tl->state == TIMELINE_BROKEN)
        state = json_pack("{s:{s:s,s:s}}", "Broken", "reason", tl->broken_reason, "backtrace", "");
    else if (tl->state == TIMELINE_IMPORTING)
        state = json_string(timeline_state_name(TIMELINE_LOADING)); /* Neon's enum has no more */
    else
        state = json_string(timeline_state_name(tl->state));
    Lsn min_readable = tl->gc_cutoff_lsn > tl->initdb_lsn ? tl->gc_cutoff_lsn : tl->initdb_lsn;
    json_t *o = json_object();
    json_object_set_new(o, "tenant_id", json_from_tsid(&tl->slot->tsid));
    json_object_set_new(o, "timeline_id", json_from_timeline_id(&tl->id));
    json_object_set_new(o, "ancestor_timeline_id",
                        tl->has_ancestor ? json_from_timeline_id(&tl->ancestor_id) : json_null());
    json_object_set_new(o, "ancestor_lsn",
                        tl->has_ancestor ? json_from_lsn(tl->ancestor_lsn) : json_null());
    json_object_set_new(o, "last_record_lsn", lsn_or_zero(tl->last_record_lsn));
    json_object_set_new(o, "prev_record_lsn", json_from_lsn(tl->prev_record_lsn));
    json_object_set_new(o, "disk_consistent_lsn", lsn_or_zero(tl->disk_consistent_lsn));
    json_object_set_new(o, "remote_consistent_lsn", lsn_or_zero(tl->remote_consistent_lsn));
    json_object_set_new(o, "remote_consistent_lsn_visible",
                        lsn_or_zero(tl->remote_consistent_lsn_visible));
    json_object_set_new(o, "initdb_lsn", lsn_or_zero(tl->initdb_lsn));
    json_object_set_new(o, "min_readable_lsn", lsn_or_zero(min_readable));
    json_object_set_new(o, "applied_gc_cutoff_lsn", lsn_or_zero(tl->gc_cutoff_lsn));
    json_object_set_new(o, "latest_gc_cutoff_lsn", lsn_or_zero(tl->gc_cutoff_lsn));
    json_object_set_new(o, "current_logical_size", json_integer((json_int_t)tl->logical_size));
    json_object_set_new(o, "current_logical_size_is_accurate",
                        json_boolean(tl->logical_size_accurate));
    json_t *counts = json_array();
    for (size_t i = 0; tl->dir_counts_known && i < DIRKIND_COUNT; i++)
        json_array_append_new(counts, json_integer((json_int_t)tl->dir_counts[i]));
    json_object_set_new(o, "directory_entries_counts", counts);
    json_object_set_new(o, "current_physical_size",
                        json_integer((json_int_t)timeline_physical_size(tl)));
    /* no WAL is ingested: the history is what lies between the horizon (GC cutoff, or the branch
     * point when later) and last_record_lsn */
    Lsn horizon = tl->gc_cutoff_lsn;
    if (tl->has_ancestor && tl->ancestor_lsn > horizon)
        horizon = tl->ancestor_lsn;
    json_object_set_new(
        o, "pitr_history_size",
        json_integer(
            (json_int_t)(tl->last_record_lsn > horizon ? tl->last_record_lsn - horizon : 0)));
    json_object_set_new(o, "within_ancestor_pitr",
                        json_boolean(tl->has_ancestor && tl->ancestor != NULL &&
                                     tl->ancestor_lsn >= tl->ancestor->gc_cutoff_lsn));
    json_object_set_new(o, "pg_version", json_integer(tl->pg_version));
    json_object_set_new(o, "state", state);
    json_object_set_new(o, "walreceiver_status", json_string("Not active"));
    return o;
}

/* ---- create: request ---- */

typedef struct CreateWire {
    TimelineId new_timeline_id;
    uint32_t pg_version;
    JsonPresence pg_version_p;
    TimelineId existing_initdb;
    JsonPresence existing_initdb_p;
    TimelineId ancestor;
    JsonPresence ancestor_p;
    Lsn start_lsn;
    JsonPresence start_lsn_p;
    json_t *import_pgdata;
    JsonPresence import_pgdata_p;
} CreateWire;

static const JsonField CREATE_FIELDS[] = {
    JSON_FIELD(CreateWire, new_timeline_id, "new_timeline_id", JSON_FIELD_TIMELINE_ID,
               JSON_REQUIRED),
    JSON_FIELD_P(CreateWire, pg_version, pg_version_p, "pg_version", JSON_FIELD_U32,
                 JSON_NULLABLE | JSON_NONZERO),
    JSON_FIELD_P(CreateWire, existing_initdb, existing_initdb_p, "existing_initdb_timeline_id",
                 JSON_FIELD_TIMELINE_ID, JSON_NULLABLE),
    JSON_FIELD_P(CreateWire, ancestor, ancestor_p, "ancestor_timeline_id", JSON_FIELD_TIMELINE_ID,
                 JSON_NULLABLE),
    JSON_FIELD_P(CreateWire, start_lsn, start_lsn_p, "ancestor_start_lsn", JSON_FIELD_LSN,
                 JSON_NULLABLE),
    JSON_FIELD_P(CreateWire, import_pgdata, import_pgdata_p, "import_pgdata", JSON_FIELD_ANY, 0),
};
static const JsonSpec CREATE_SPEC =
    JSON_SPEC("timeline create request", CREATE_FIELDS, JSON_UNKNOWN_REJECT);

bool timeline_create_params_decode(const json_t *body, TimelineCreateParams *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    CreateWire w;
    memset(&w, 0, sizeof(w));
    if (!json_is_object(body)) {
        err_set(err, ERR_BAD_REQUEST, "timeline create request: expected a JSON object");
        return false;
    }
    if (!json_decode(body, &CREATE_SPEC, &w, err))
        return false;
    if (w.import_pgdata_p == JSON_PRESENCE_SET) {
        if (w.pg_version_p != JSON_PRESENCE_ABSENT || w.existing_initdb_p != JSON_PRESENCE_ABSENT ||
            w.ancestor_p != JSON_PRESENCE_ABSENT || w.start_lsn_p != JSON_PRESENCE_ABSENT) {
            err_set(err, ERR_BAD_REQUEST,
                    "import_pgdata excludes pg_version, existing_initdb_timeline_id, "
                    "ancestor_timeline_id and ancestor_start_lsn");
            return false;
        }
        if (!import_pgdata_spec_decode(w.import_pgdata, &out->import_spec, err))
            return false;
        out->new_timeline_id = w.new_timeline_id;
        out->import = true;
        return true;
    }
    bool branch = w.ancestor_p == JSON_PRESENCE_SET;
    if (branch && w.existing_initdb_p == JSON_PRESENCE_SET) {
        err_set(err, ERR_BAD_REQUEST,
                "ancestor_timeline_id and existing_initdb_timeline_id exclude each other");
        return false;
    }
    if (!branch && w.start_lsn_p == JSON_PRESENCE_SET) {
        err_set(err, ERR_BAD_REQUEST, "ancestor_start_lsn needs ancestor_timeline_id");
        return false;
    }
    if (branch && timeline_id_eq(&w.ancestor, &w.new_timeline_id)) {
        err_set(err, ERR_BAD_REQUEST, "a timeline cannot be its own ancestor");
        return false;
    }
    out->new_timeline_id = w.new_timeline_id;
    out->branch = branch;
    out->has_pg_version = w.pg_version_p == JSON_PRESENCE_SET;
    out->pg_version = w.pg_version;
    out->has_existing_initdb = w.existing_initdb_p == JSON_PRESENCE_SET;
    out->existing_initdb = w.existing_initdb;
    out->ancestor = w.ancestor;
    out->has_ancestor_start_lsn = w.start_lsn_p == JSON_PRESENCE_SET;
    out->ancestor_start_lsn = w.start_lsn;
    return true;
}

/* create_params_match: does an existing timeline satisfy the request (idempotent repeat)? Only
 * what the index records can be compared: a timeline loaded from remote storage does not know
 * which existing_initdb it came from. */
static bool create_params_match(const Timeline *tl, const TimelineCreateParams *p)
{
    char key[IMPORT_IDEMPOTENCY_KEY_SIZE];
    ImportIndexState imp = import_index_state(tl->index, key);
    if (p->import)
        return imp != IMPORT_INDEX_NONE && strcmp(key, p->import_spec.idempotency_key) == 0;
    if (imp != IMPORT_INDEX_NONE)
        return false;
    if (p->branch) {
        return tl->has_ancestor && timeline_id_eq(&tl->ancestor_id, &p->ancestor) &&
               (!p->has_ancestor_start_lsn || p->ancestor_start_lsn == tl->ancestor_lsn);
    }
    return !tl->has_ancestor && (!p->has_pg_version || p->pg_version == tl->pg_version);
}

/* ---- create: completion ---- */

static void create_answer_error(Timeline *tl, const Err *err)
{
    PageserverJsonFn cb = tl->create_cb;
    tl->create_cb = NULL;
    if (cb != NULL)
        cb(err, NULL, tl->create_arg);
}

/* create_discard: a LOADING timeline whose creation failed is forgotten. */
static void create_discard(Timeline *tl, const Err *err)
{
    create_answer_error(tl, err);
    struct TenantSlot *slot = tl->slot;
    if (tl->state == TIMELINE_LOADING) {
        slot_remove_timeline(slot, tl);
        timeline_free(tl);
    }
}

static void on_create_index_uploaded(void *arg, bool ok)
{
    Timeline *tl = arg;
    if (!ok) {
        Err err = {0};
        err_set(&err, ERR_UNAVAILABLE,
                "timeline %s: creation interrupted (tenant shard shutting down or changing); "
                "retry",
                tl->id_str);
        if (tl->state == TIMELINE_LOADING && tl->slot->state == SLOT_ACTIVE &&
            !tl->slot->mgr->stopping)
            create_discard(tl, &err);
        else
            create_answer_error(tl, &err);
        return;
    }
    (void)timeline_set_state(tl, tl->create_params.import ? TIMELINE_IMPORTING : TIMELINE_ACTIVE);
    timeline_compute_sizes(tl);
    metric_counter_add(tl_app(tl)->m.timelines_created, 1);
    log_info("timeline %s/%s created (%s, %zu layers, last_record_lsn %" PRIX64 ")",
             tl->slot->tsid_str, tl->id_str,
             tl->create_params.import ? "import"
             : tl->has_ancestor       ? "branch"
                                      : "bootstrap",
             tl->n_layers, tl->last_record_lsn);
    if (tl->create_params.import)
        import_task_start(tl);
    PageserverJsonFn cb = tl->create_cb;
    tl->create_cb = NULL;
    if (cb != NULL)
        cb(NULL, timeline_info_json(tl), tl->create_arg);
}

typedef struct BootstrapJob {
    Timeline *tl;
    BootstrapParams params;
    BootstrapResult result;
    bool ok;
    Err err;
} BootstrapJob;

static void bootstrap_work(WorkerJob *job, void *arg)
{
    BootstrapJob *j = arg;
    j->ok = bootstrap_run(&j->params, &j->result, &j->err);
}

static void bootstrap_done(void *arg, WorkerOutcome outcome)
{
    BootstrapJob *j = arg;
    if (!worker_outcome_err(outcome, "bootstrap", &j->err))
        j->ok = false;
    Timeline *tl = j->tl;
    struct TenantSlot *slot = tl->slot;
    if (tl->state != TIMELINE_LOADING || slot->state != SLOT_ACTIVE || !slot_may_upload(slot)) {
        Err err = {0};
        err_set(&err, ERR_UNAVAILABLE,
                "timeline %s: tenant shard %s changed during the bootstrap; retry", tl->id_str,
                slot->tsid_str);
        if (slot->state == SLOT_ACTIVE && !slot->mgr->stopping)
            create_discard(tl, &err); /* e.g. became AttachedStale: forget the attempt */
        else
            create_answer_error(tl, &err); /* the stopping slot drops the timeline */
    } else if (!j->ok) {
        create_discard(tl, &j->err);
    } else {
        Err err = {0};
        bool ok = true;
        for (size_t i = 0; i < j->result.n_layers && ok; i++) {
            Layer *l = NULL;
            ok = layer_obj_new(&j->result.layers[i], &slot->tsid.tenant_id, &tl->id, tl->dir, true,
                               &l, &err) &&
                 timeline_add_layer(tl, l, &err);
            if (!ok)
                layer_obj_unref(l);
        }
        /* uploads start only once every layer is in: a failure above discards (frees) the
         * timeline, which must not happen while one of its uploads runs on a worker */
        for (size_t i = 0; i < tl->n_layers && ok; i++)
            timeline_schedule_layer_upload(tl, tl->layers[i], NULL, NULL);
        if (!ok) {
            create_discard(tl, &err);
        } else {
            tl->initdb_lsn = j->result.initdb_lsn;
            tl->gc_cutoff_lsn = j->result.initdb_lsn;
            tl->disk_consistent_lsn = j->result.initdb_lsn + 8;
            tl->last_record_lsn = tl->disk_consistent_lsn;
            tl->prev_record_lsn = LSN_INVALID;
            tl->pg_version = j->result.pg_version;
            tl->logical_size = j->result.logical_size;
            tl->logical_size_accurate = true; /* summed while converting */
            timeline_schedule_index_upload(tl, on_create_index_uploaded, tl);
        }
    }
    bootstrap_result_finish(&j->result);
    free(j);
    slot_job_end(slot);
}

void timeline_create(TenantManager *mgr, const TenantShardId *tsid, const TimelineCreateParams *p,
                     PageserverJsonFn cb, void *arg)
{
    PageserverApp *app = mgr->app;
    Err err = {0};
    char s3_url[IMPORT_S3_URL_SIZE];
    TenantSlot *slot = NULL;
    if (!tenant_manager_readable_slot(mgr, tsid, &slot, &err)) {
        pageserver_defer_json(app, cb, arg, &err, NULL);
        return;
    }
    if (!slot_may_upload(slot)) {
        err_set(&err, ERR_UNAVAILABLE,
                "tenant shard %s is %s here: it does not upload, so it cannot create timelines",
                slot->tsid_str, location_config_mode_name(slot->config.mode));
        pageserver_defer_json(app, cb, arg, &err, NULL);
        return;
    }
    char id[ID_STR_SIZE];
    timeline_id_format(&p->new_timeline_id, id);
    Timeline *existing = slot_find_timeline(slot, &p->new_timeline_id);
    if (existing != NULL) {
        if (existing->state == TIMELINE_LOADING) {
            err_set(&err, ERR_TOO_MANY_REQUESTS, "timeline %s: creation is still running", id);
        } else if (existing->deleting || existing->state == TIMELINE_STOPPING) {
            err_set(&err, ERR_CONFLICT, "timeline %s is being deleted", id);
        } else if (!create_params_match(existing, p)) {
            err_set(&err, ERR_CONFLICT, "timeline %s already exists with other parameters", id);
        } else {
            pageserver_defer_json(app, cb, arg, NULL, timeline_info_json(existing));
            return;
        }
        pageserver_defer_json(app, cb, arg, &err, NULL);
        return;
    }
    Timeline *ancestor = NULL;
    Lsn start_lsn = LSN_INVALID;
    if (p->branch) {
        char anc[ID_STR_SIZE];
        timeline_id_format(&p->ancestor, anc);
        ancestor = slot_find_timeline(slot, &p->ancestor);
        if (ancestor == NULL || ancestor->state == TIMELINE_LOADING) {
            err_set(&err, ERR_NOT_FOUND, "ancestor timeline %s not found", anc);
            pageserver_defer_json(app, cb, arg, &err, NULL);
            return;
        }
        if (ancestor->state != TIMELINE_ACTIVE) {
            err_set(&err, ERR_UNAVAILABLE, "ancestor timeline %s is %s", anc,
                    timeline_state_name(ancestor->state));
            pageserver_defer_json(app, cb, arg, &err, NULL);
            return;
        }
        start_lsn = p->has_ancestor_start_lsn ? p->ancestor_start_lsn : ancestor->last_record_lsn;
        Lsn min_readable = ancestor->gc_cutoff_lsn > ancestor->initdb_lsn ? ancestor->gc_cutoff_lsn
                                                                          : ancestor->initdb_lsn;
        char want[LSN_STR_SIZE], have[LSN_STR_SIZE];
        lsn_format(start_lsn, want);
        if (start_lsn < min_readable ||
            (ancestor->has_ancestor && start_lsn < ancestor->ancestor_lsn)) {
            lsn_format(min_readable, have);
            err_set(&err, ERR_NOT_ACCEPTABLE,
                    "ancestor_start_lsn %s is below what ancestor %s can serve (min_readable_lsn "
                    "%s)",
                    want, anc, have);
            pageserver_defer_json(app, cb, arg, &err, NULL);
            return;
        }
        if (start_lsn > ancestor->last_record_lsn) {
            lsn_format(ancestor->last_record_lsn, have);
            err_set(&err, ERR_NOT_ACCEPTABLE,
                    "ancestor_start_lsn %s is beyond ancestor %s's last_record_lsn %s", want, anc,
                    have);
            pageserver_defer_json(app, cb, arg, &err, NULL);
            return;
        }
    } else if (p->import && p->import_spec.location.kind == IMPORT_LOCATION_AWS_S3 &&
               !import_s3_url(app, &p->import_spec.location, s3_url, sizeof(s3_url), &err)) {
        pageserver_defer_json(app, cb, arg, &err, NULL);
        return;
    } else if (p->has_pg_version && p->pg_version != PAGESERVER_PG_VERSION) {
        err_set(&err, ERR_BAD_REQUEST,
                "pg_version %u is not supported: this pageserver bootstraps PostgreSQL %u",
                p->pg_version, PAGESERVER_PG_VERSION);
        pageserver_defer_json(app, cb, arg, &err, NULL);
        return;
    }

    Timeline *tl = timeline_new(slot, &p->new_timeline_id);
    tl->create_params = *p;
    tl->create_cb = cb;
    tl->create_arg = arg;
    slot_add_timeline(slot, tl);
    if (p->import) {
        /* an empty timeline whose index records the import; the task starts once it is durable */
        json_t *imp = import_index_in_progress(&p->import_spec, (int64_t)time(NULL) * 1000);
        index_part_set_import_pgdata(tl->index, imp);
        json_decref(imp);
        tl->pg_version = PAGESERVER_PG_VERSION;
        timeline_schedule_index_upload(tl, on_create_index_uploaded, tl);
        return;
    }
    if (p->branch) {
        tl->has_ancestor = true;
        tl->ancestor_id = ancestor->id;
        tl->ancestor = ancestor;
        tl->ancestor_lsn = start_lsn;
        tl->disk_consistent_lsn = start_lsn;
        tl->last_record_lsn = start_lsn;
        tl->prev_record_lsn =
            start_lsn == ancestor->last_record_lsn ? ancestor->prev_record_lsn : LSN_INVALID;
        tl->initdb_lsn = ancestor->initdb_lsn;
        tl->gc_cutoff_lsn = ancestor->gc_cutoff_lsn;
        tl->pg_version = ancestor->pg_version;
        tl->logical_size = ancestor->logical_size;
        timeline_schedule_index_upload(tl, on_create_index_uploaded, tl);
        return;
    }
    BootstrapJob *j = xcalloc(1, sizeof(*j));
    j->tl = tl;
    BootstrapParams *bp = &j->params;
    str_copy(bp->workdir, sizeof(bp->workdir), app->cfg.workdir);
    str_copy(bp->pg_bin_dir, sizeof(bp->pg_bin_dir), app->cfg.pg_bin_dir);
    str_copy(bp->initdb_user, sizeof(bp->initdb_user), app->cfg.initdb_user);
    bp->rs = app->remote;
    bp->tsid = slot->tsid;
    bp->tl = tl->id;
    bp->shard = slot->shard;
    bp->gen = slot_generation(slot);
    bp->has_existing_initdb = p->has_existing_initdb;
    bp->existing_initdb = p->existing_initdb;
    str_copy(bp->timeline_dir, sizeof(bp->timeline_dir), tl->dir);
    bp->layer_opts =
        layer_writer_options(tenant_config_image_compression(&slot->config.tenant_conf));
    slot_job_begin(slot);
    WorkerJobSpec spec = {.cls = WORKER_CLASS_BULK,
                          .deadline_ms = PAGESERVER_BOOTSTRAP_DEADLINE_MS};
    worker_pool_start(app->workers, &spec, bootstrap_work, bootstrap_done, j);
}

/* ---- delete ---- */

typedef struct DeleteJob {
    Timeline *tl;
    RemoteStorage *rs;
    TenantShardId tsid;
    TimelineId id;
    Generation gen;
    char *index_text;
    char own_index_key[REMOTE_KEY_SIZE];
    char **keys; /* everything but own_index_key */
    size_t n_keys;
    char dir[PATH_MAX];
    bool ok;
    Err err;
} DeleteJob;

static void delete_job_free(DeleteJob *j)
{
    j->tl->delete_running = false;
    for (size_t i = 0; i < j->n_keys; i++)
        free(j->keys[i]);
    free(j->keys);
    free(j->index_text);
    free(j);
}

static void delete_list_work(WorkerJob *job, void *arg)
{
    DeleteJob *j = arg;
    RemoteListing l = {0};
    char prefix[REMOTE_KEY_SIZE];
    remote_layout_timeline_prefix(&j->tsid, &j->id, prefix);
    j->ok = failpoint_check("timeline-delete-before-index", &j->err) &&
            remote_put(j->rs, j->own_index_key, j->index_text, strlen(j->index_text), &j->err) &&
            remote_list(j->rs, prefix, &l, &j->err);
    if (j->ok) {
        j->keys = xcalloc(l.n + 1, sizeof(char *));
        for (size_t i = 0; i < l.n; i++) {
            if (strcmp(l.items[i].key, j->own_index_key) != 0)
                j->keys[j->n_keys++] = xstrdup(l.items[i].key);
        }
        /* the initdb archive of a sharded tenant lives on the unsharded path: shard 0 owns it */
        if (j->tsid.count > 0 && j->tsid.number == 0) {
            char key[REMOTE_KEY_SIZE];
            remote_layout_initdb_key(&j->tsid.tenant_id, &j->id, key);
            RemoteObjectInfo info;
            Err ignore = {0};
            if (remote_head(j->rs, key, &info, &ignore))
                j->keys[j->n_keys++] = xstrdup(key);
        }
    }
    remote_listing_free(&l);
}

static void delete_local_work(WorkerJob *job, void *arg)
{
    DeleteJob *j = arg;
    j->ok = fs_remove_tree(j->dir, &j->err);
}

static void delete_finish(DeleteJob *j)
{
    Timeline *tl = j->tl;
    struct TenantSlot *slot = tl->slot;
    log_info("timeline %s/%s deleted", slot->tsid_str, tl->id_str);
    delete_job_free(j);
    slot_remove_timeline(slot, tl);
    timeline_free(tl);
    slot_job_end(slot);
}

static void delete_local_done(void *arg, WorkerOutcome outcome)
{
    DeleteJob *j = arg;
    if (!worker_outcome_err(outcome, "timeline delete", &j->err))
        j->ok = false; /* shutdown: the next attach removes the local leftovers */
    if (!j->ok)
        log_err(&j->err, "timeline delete: removing the local directory");
    delete_finish(j);
}

static void on_delete_flushed(void *arg, const Err *err)
{
    DeleteJob *j = arg;
    if (err != NULL) {
        /* shutting down: the index says deleted_at, the next attach resumes */
        log_err(err, "timeline delete: waiting for the deletion queue");
        Timeline *tl = j->tl;
        struct TenantSlot *slot = tl->slot;
        delete_job_free(j);
        slot_job_end(slot);
        return;
    }
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO}; /* no deadline: must finish; resumed on attach */
    worker_pool_start(tl_app(j->tl)->workers, &spec, delete_local_work, delete_local_done, j);
}

static void delete_step(DeleteJob *j);

static void on_delete_retry(evutil_socket_t fd, short what, void *arg)
{
    delete_step(arg);
}

static void delete_list_done(void *arg, WorkerOutcome outcome)
{
    DeleteJob *j = arg;
    if (!worker_outcome_err(outcome, "timeline delete", &j->err))
        j->ok = false;
    Timeline *tl = j->tl;
    struct TenantSlot *slot = tl->slot;
    PageserverApp *app = tl_app(tl);
    if (!j->ok) {
        if (slot->state != SLOT_ACTIVE || slot->mgr->stopping) {
            log_err(&j->err, "timeline delete interrupted");
            delete_job_free(j);
            slot_job_end(slot);
            return;
        }
        log_err(&j->err, "timeline delete: listing objects (will retry)");
        struct timeval tv = {1, 0};
        event_base_once(app->base, -1, EV_TIMEOUT, on_delete_retry, j, &tv);
        return;
    }
    /* one list, one (tsid, gen) item, keys in this order: our own index last */
    const char **keys = xcalloc(j->n_keys + 1, sizeof(char *));
    for (size_t i = 0; i < j->n_keys; i++)
        keys[i] = j->keys[i];
    keys[j->n_keys] = j->own_index_key;
    deletion_queue_push(app->deletion, &j->tsid, j->gen, keys, j->n_keys + 1);
    free(keys);
    deletion_queue_flush(app->deletion, true, on_delete_flushed, j);
}

static void delete_step(DeleteJob *j)
{
    Timeline *tl = j->tl;
    struct TenantSlot *slot = tl->slot;
    if (tl->uq_running) {
        /* wait for the running upload: it must not land after our deletions */
        struct timeval tv = {0, 20000};
        event_base_once(tl_app(tl)->base, -1, EV_TIMEOUT, on_delete_retry, j, &tv);
        return;
    }
    if (slot->state != SLOT_ACTIVE || slot->mgr->stopping) {
        delete_job_free(j);
        slot_job_end(slot);
        return;
    }
    index_part_set_deleted_at(tl->index, (int64_t)time(NULL) * 1000);
    index_set_metadata(tl);
    free(j->index_text);
    j->index_text = index_part_serialize(tl->index);
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO}; /* no deadline: must finish; resumed on attach */
    worker_pool_start(tl_app(tl)->workers, &spec, delete_list_work, delete_list_done, j);
}

static void timeline_start_deletion(Timeline *tl)
{
    struct TenantSlot *slot = tl->slot;
    tl->deleting = true;
    tl->delete_running = true;
    import_task_cancel(tl);
    (void)timeline_set_state(tl, TIMELINE_STOPPING);
    timeline_uploads_drop(tl);
    DeleteJob *j = xcalloc(1, sizeof(*j));
    j->tl = tl;
    j->rs = tl_app(tl)->remote;
    j->tsid = slot->tsid;
    j->id = tl->id;
    j->gen = slot_generation(slot);
    str_copy(j->dir, sizeof(j->dir), tl->dir);
    remote_layout_index_key(&slot->tsid, &tl->id, j->gen, j->own_index_key);
    slot_job_begin(slot);
    log_info("timeline %s/%s: deletion started", slot->tsid_str, tl->id_str);
    delete_step(j);
}

void timeline_resume_deletion(Timeline *tl)
{
    if (!slot_may_delete(tl->slot)) {
        log_info("timeline %s/%s: deleted_at set; deletion resumes when AttachedSingle",
                 tl->slot->tsid_str, tl->id_str);
        tl->deleting = true;
        (void)timeline_set_state(tl, TIMELINE_STOPPING);
        return;
    }
    timeline_start_deletion(tl);
}

void timeline_delete(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *id,
                     PageserverDoneFn cb, void *arg)
{
    PageserverApp *app = mgr->app;
    Err err = {0};
    char idstr[ID_STR_SIZE];
    timeline_id_format(id, idstr);
    if (!tenant_manager_check_ready(mgr, &err)) {
        pageserver_defer_done(app, cb, arg, &err);
        return;
    }
    TenantSlot *slot = tenant_manager_find(mgr, tsid);
    if (slot == NULL) {
        char s[TSID_STR_SIZE];
        tsid_format(tsid, s);
        err_set(&err, ERR_PRECONDITION_FAILED, "tenant shard %s not found", s);
        pageserver_defer_done(app, cb, arg, &err);
        return;
    }
    if (!slot_check_readable(slot, &err)) {
        if (err.code == ERR_NOT_FOUND)
            err.code = ERR_PRECONDITION_FAILED;
        pageserver_defer_done(app, cb, arg, &err);
        return;
    }
    Timeline *tl = slot_find_timeline(slot, id);
    if (tl == NULL) {
        err_set(&err, ERR_NOT_FOUND, "timeline %s not found (or already deleted)", idstr);
    } else if (tl->state == TIMELINE_LOADING) {
        err_set(&err, ERR_CONFLICT, "timeline %s is being created", idstr);
    } else if (tl->delete_running) {
        err_set(&err, ERR_CONFLICT, "timeline %s is already being deleted", idstr);
    } else {
        for (size_t i = 0; i < slot->n_timelines; i++) {
            Timeline *c = slot->timelines[i];
            if (c != tl && c->has_ancestor && timeline_id_eq(&c->ancestor_id, id)) {
                err_set(&err, ERR_PRECONDITION_FAILED,
                        "timeline %s has child timelines (e.g. %s); delete them first", idstr,
                        c->id_str);
                break;
            }
        }
        if (!err_is_set(&err) && !slot_may_delete(slot))
            err_set(&err, ERR_UNAVAILABLE,
                    "tenant shard %s is %s here: remote deletions need AttachedSingle; retry",
                    slot->tsid_str, location_config_mode_name(slot->config.mode));
    }
    if (err_is_set(&err)) {
        pageserver_defer_done(app, cb, arg, &err);
        return;
    }
    timeline_start_deletion(tl);
    pageserver_defer_done(app, cb, arg, NULL);
}

bool timeline_is_served(const Timeline *tl)
{
    return tl->state != TIMELINE_LOADING && tl->state != TIMELINE_IMPORTING;
}

bool timeline_list(const TenantManager *mgr, const TenantShardId *tsid, json_t **out, Err *err)
{
    TenantSlot *slot = NULL;
    if (!tenant_manager_readable_slot(mgr, tsid, &slot, err))
        return false;
    json_t *arr = json_array();
    for (size_t i = 0; i < slot->n_timelines; i++) {
        if (timeline_is_served(slot->timelines[i])) {
            timeline_compute_sizes(slot->timelines[i]);
            json_array_append_new(arr, timeline_info_json(slot->timelines[i]));
        }
    }
    *out = arr;
    return true;
}

bool timeline_get(const TenantManager *mgr, const TenantShardId *tsid, const TimelineId *id,
                  json_t **out, Err *err)
{
    TenantSlot *slot = NULL;
    if (!tenant_manager_readable_slot(mgr, tsid, &slot, err))
        return false;
    Timeline *tl = slot_find_timeline(slot, id);
    if (tl == NULL || !timeline_is_served(tl)) {
        char s[ID_STR_SIZE];
        timeline_id_format(id, s);
        err_set(err, ERR_NOT_FOUND, "timeline %s not found", s);
        return false;
    }
    timeline_compute_sizes(tl);
    *out = timeline_info_json(tl);
    return true;
}
