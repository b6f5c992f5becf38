/*
 * import.c: timeline import from a PGDATA directory (docs/import.md): the create request's
 * import_pgdata, the index's import_pgdata, the import task of an IMPORTING timeline and
 * activate_post_import.
 *
 * The task is a state machine on the loop thread; every blocking step is one worker job:
 *
 *   STATUS      --(GET timeline_import_status: InProgress null = fresh, InProgress V1 = resume
 *                  after its `completed` jobs, Done = nothing to do, Error = failed)-->
 *   WAIT_SOURCE --(status/pgdata says done; polled every --import-poll-interval, IO class)-->
 *   PLAN        --(pg_control + listings -> the plan of this shard, BULK)-->
 *   JOBS        --(one BULK job per plan job, up to --import-parallelism at once, committed in
 *                  job order: one image layer each; its upload queued;
 *                  every --import-checkpoint-jobs jobs an index upload, then once it is durable
 *                  the progress upcall)-->
 *   FINISH      --(the timeline's LSNs set, the final index uploaded, then "Done")--> DONE
 *   any step    --(source error)--> FAILED (message kept, {"Error": msg} sent; activate 409)
 *
 * Status upcalls go out one at a time in order; a newer progress replaces one not sent yet.
 * Resuming checks that the rebuilt plan has the recorded job count and plan hash (the first 63
 * bits of the SHA-256 plan hash: Neon's field is a u64 and JSON integers here are signed).
 *
 * A worker job works on copies and the plan; the task outlives its running job (a cancel only
 * detaches the task from its timeline, the job's completion frees it). Transient failures of our
 * own (503 from the pool) retry after PAGESERVER_IMPORT_RETRY_MS; failures of the source
 * (ERR_BAD_REQUEST, ERR_NOT_FOUND of a file the plan named) end the import.
 */
#include "pageserver/import.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "shared/failpoint.h"
#include "shared/fsutil.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/bootstrap.h"
#include "pageserver/defaults.h"
#include "pageserver/layer_map.h"
#include "pageserver/pgdata.h"
#include "pageserver/slot.h"
#include "pageserver/storcon_client.h"
#include "pageserver/tenant.h"
#include "pageserver/timeline.h"

/* ---- the request's import_pgdata ---- */

typedef struct LocalFsWire {
    char path[PATH_MAX];
} LocalFsWire;

static const JsonField LOCAL_FS_FIELDS[] = {
    JSON_FIELD(LocalFsWire, path, "path", JSON_FIELD_STRING, JSON_REQUIRED),
};
static const JsonSpec LOCAL_FS_SPEC =
    JSON_SPEC("LocalFs location", LOCAL_FS_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct AwsS3Wire {
    char region[IMPORT_S3_FIELD_SIZE];
    char bucket[IMPORT_S3_FIELD_SIZE];
    char key[IMPORT_S3_FIELD_SIZE * 4];
} AwsS3Wire;

static const JsonField AWS_S3_FIELDS[] = {
    JSON_FIELD(AwsS3Wire, region, "region", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD(AwsS3Wire, bucket, "bucket", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_FIELD(AwsS3Wire, key, "key", JSON_FIELD_STRING, JSON_REQUIRED),
};
static const JsonSpec AWS_S3_SPEC = JSON_SPEC("AwsS3 location", AWS_S3_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct LocationWire {
    LocalFsWire local;
    JsonPresence local_p;
    AwsS3Wire s3;
    JsonPresence s3_p;
} LocationWire;

static const JsonField LOCATION_FIELDS[] = {
    JSON_NESTED_P(LocationWire, local, local_p, "LocalFs", &LOCAL_FS_SPEC, 0),
    JSON_NESTED_P(LocationWire, s3, s3_p, "AwsS3", &AWS_S3_SPEC, 0),
};
static const JsonSpec LOCATION_SPEC = JSON_SPEC("location", LOCATION_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct ImportWire {
    char idempotency_key[IMPORT_IDEMPOTENCY_KEY_SIZE];
    LocationWire location;
} ImportWire;

static const JsonField IMPORT_FIELDS[] = {
    JSON_FIELD(ImportWire, idempotency_key, "idempotency_key", JSON_FIELD_STRING, JSON_REQUIRED),
    JSON_NESTED(ImportWire, location, "location", &LOCATION_SPEC, JSON_REQUIRED),
};
static const JsonSpec IMPORT_SPEC = JSON_SPEC("import_pgdata", IMPORT_FIELDS, JSON_UNKNOWN_REJECT);

bool import_pgdata_spec_decode(const json_t *obj, ImportPgdataSpec *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    ImportWire *w = xcalloc(1, sizeof(*w));
    bool ok = false;
    if (!json_is_object(obj)) {
        err_set(err, ERR_BAD_REQUEST, "import_pgdata: expected an object");
        goto cleanup;
    }
    if (!json_decode(obj, &IMPORT_SPEC, w, err)) {
        err_prefix(err, "import_pgdata: ");
        goto cleanup;
    }
    bool local = w->location.local_p == JSON_PRESENCE_SET;
    bool s3 = w->location.s3_p == JSON_PRESENCE_SET;
    if (local == s3) {
        err_set(err, ERR_BAD_REQUEST,
                "import_pgdata: location: expected exactly one of \"LocalFs\" and \"AwsS3\"");
        goto cleanup;
    }
    if (w->idempotency_key[0] == '\0') {
        err_set(err, ERR_BAD_REQUEST, "import_pgdata: idempotency_key must not be empty");
        goto cleanup;
    }
    str_copy(out->idempotency_key, sizeof(out->idempotency_key), w->idempotency_key);
    if (local) {
        if (w->location.local.path[0] != '/') {
            err_set(err, ERR_BAD_REQUEST,
                    "import_pgdata: location: LocalFs path must be absolute, got \"%.200s\"",
                    w->location.local.path);
            goto cleanup;
        }
        out->location.kind = IMPORT_LOCATION_LOCAL_FS;
        str_copy(out->location.path, sizeof(out->location.path), w->location.local.path);
    } else {
        out->location.kind = IMPORT_LOCATION_AWS_S3;
        str_copy(out->location.region, sizeof(out->location.region), w->location.s3.region);
        str_copy(out->location.bucket, sizeof(out->location.bucket), w->location.s3.bucket);
        str_copy(out->location.key, sizeof(out->location.key), w->location.s3.key);
    }
    ok = true;
cleanup:
    free(w);
    return ok;
}

json_t *import_location_json(const ImportLocation *loc)
{
    if (loc->kind == IMPORT_LOCATION_LOCAL_FS)
        return json_must(json_pack("{s:{s:s}}", "LocalFs", "path", loc->path));
    return json_must(json_pack("{s:{s:s,s:s,s:s}}", "AwsS3", "region", loc->region, "bucket",
                               loc->bucket, "key", loc->key));
}

/* url_safe: s only has characters that need no escaping in an s3:// URL's path or query. */
static bool url_safe(const char *s, const char *extra)
{
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(extra, *s) != NULL))
            return false;
    }
    return true;
}

bool import_s3_url(const PageserverApp *app, const ImportLocation *loc, char *out, size_t cap,
                   Err *err)
{
    if (!remote_storage_s3_credentials(err)) {
        err_prefix(err,
                   "import_pgdata: an AwsS3 location needs S3 credentials on this pageserver: ");
        err->code = ERR_PRECONDITION_FAILED;
        return false;
    }
    const char *key = loc->key;
    while (*key == '/')
        key++;
    size_t klen = strlen(key);
    while (klen > 0 && key[klen - 1] == '/')
        klen--;
    if (!url_safe(loc->region, "-") || !url_safe(loc->bucket, ".-") ||
        !url_safe(loc->key, "/._-") || strstr(loc->key, "//") != NULL) {
        err_set(err, ERR_BAD_REQUEST,
                "import_pgdata: AwsS3 location: region [a-z0-9-], bucket [a-z0-9.-] and key "
                "[A-Za-z0-9/._-] only");
        return false;
    }
    char endpoint[REMOTE_STORAGE_URL_MAX] = "";
    RemoteStorageUrl own;
    Err ignore;
    err_clear(&ignore);
    if (remote_storage_url_parse(app->cfg.remote_storage, &own, &ignore) &&
        own.kind == REMOTE_STORAGE_S3)
        str_copy(endpoint, sizeof(endpoint), own.endpoint);
    RemoteStorageUrl u;
    if (!str_printf(out, cap, "s3://%s%s%.*s?region=%s%s%s", loc->bucket, klen ? "/" : "",
                    (int)klen, key, loc->region, endpoint[0] ? "&endpoint=" : "", endpoint) ||
        !remote_storage_url_parse(out, &u, err)) {
        if (!err_is_set(err))
            err_set(err, ERR_BAD_REQUEST, "import_pgdata: AwsS3 location too long");
        err_prefix(err, "import_pgdata: AwsS3 location: ");
        err->code = ERR_BAD_REQUEST;
        return false;
    }
    return true;
}

/* ---- the index's import_pgdata ---- */

json_t *import_index_in_progress(const ImportPgdataSpec *spec, int64_t unix_ms)
{
    char started[INDEX_TIMESTAMP_SIZE];
    index_timestamp_format(unix_ms, started);
    return json_must(json_pack("{s:{s:{s:s,s:o,s:s}}}", "V1", "InProgress", "idempotency_key",
                               spec->idempotency_key, "location",
                               import_location_json(&spec->location), "started_at", started));
}

/* v1_variant: the object under {"V1": {"<variant>": {...}}}, or NULL. */
static json_t *v1_variant(const json_t *v, const char *variant)
{
    json_t *v1 = json_is_object(v) ? json_object_get(v, "V1") : NULL;
    json_t *o = json_is_object(v1) ? json_object_get(v1, variant) : NULL;
    return json_is_object(o) ? o : NULL;
}

json_t *import_index_done(const json_t *in_progress, int64_t unix_ms)
{
    json_t *ip = v1_variant(in_progress, "InProgress");
    if (ip == NULL)
        return NULL;
    const char *key = json_string_value(json_object_get(ip, "idempotency_key"));
    const char *started = json_string_value(json_object_get(ip, "started_at"));
    char finished[INDEX_TIMESTAMP_SIZE];
    index_timestamp_format(unix_ms, finished);
    return json_must(json_pack("{s:{s:{s:s,s:s,s:s}}}", "V1", "Done", "idempotency_key",
                               key ? key : "", "started_at", started ? started : finished,
                               "finished_at", finished));
}

ImportIndexState import_index_state(const IndexPart *index, char key[IMPORT_IDEMPOTENCY_KEY_SIZE])
{
    if (key != NULL)
        key[0] = '\0';
    if (index->import_pgdata == NULL)
        return IMPORT_INDEX_NONE;
    json_t *done = v1_variant(index->import_pgdata, "Done");
    json_t *o = done ? done : v1_variant(index->import_pgdata, "InProgress");
    const char *k = o ? json_string_value(json_object_get(o, "idempotency_key")) : NULL;
    if (key != NULL && k != NULL)
        str_copy(key, IMPORT_IDEMPOTENCY_KEY_SIZE, k);
    return done != NULL ? IMPORT_INDEX_DONE : IMPORT_INDEX_IN_PROGRESS;
}

bool import_index_spec(const IndexPart *index, ImportPgdataSpec *out, Err *err)
{
    json_t *ip = v1_variant(index->import_pgdata, "InProgress");
    if (ip == NULL) {
        err_set(err, ERR_INTERNAL, "index: import_pgdata is not an InProgress V1 value");
        return false;
    }
    json_t *copy =
        json_must(json_pack("{s:O,s:O}", "idempotency_key", json_object_get(ip, "idempotency_key"),
                            "location", json_object_get(ip, "location")));
    bool ok = import_pgdata_spec_decode(copy, out, err);
    json_decref(copy);
    if (!ok) {
        err->code = ERR_INTERNAL;
        err_prefix(err, "index: ");
    }
    return ok;
}

/* ---- the task ---- */

typedef enum ImportStep {
    IMPORT_STATUS,
    IMPORT_WAIT_SOURCE,
    IMPORT_PLAN,
    IMPORT_JOBS,
    IMPORT_FINISH,
    IMPORT_DONE,
    IMPORT_FAILED,
} ImportStep;

static const char *const IMPORT_STEP_NAMES[] = {
    [IMPORT_STATUS] = "Status", [IMPORT_WAIT_SOURCE] = "WaitSource", [IMPORT_PLAN] = "Plan",
    [IMPORT_JOBS] = "Jobs",     [IMPORT_FINISH] = "Finish",          [IMPORT_DONE] = "Done",
    [IMPORT_FAILED] = "Failed",
};

#define IMPORT_PAR_MAX 16

struct ImportTask {
    Timeline *tl;     /* NULL once cancelled: the running job's completion frees the task */
    TenantSlot *slot; /* kept alive by slot_job_begin while a job runs */
    PageserverApp *app;
    ImportPgdataSpec spec;
    char s3_url[IMPORT_S3_URL_SIZE]; /* AwsS3 locations: import_s3_url, else "" */
    ImportStep step;
    struct event *timer;
    size_t running;                          /* worker jobs running */
    size_t par;                              /* JOBS: at most this many at once */
    bool inflight[IMPORT_PAR_MAX];           /* JOBS: job next_job + i runs */
    struct ImportJob *ready[IMPORT_PAR_MAX]; /* JOBS: job next_job + i finished, not committed */
    bool activating;                         /* the activation's index upload runs */
    PgdataSource *src;
    PgdataPlan *plan;
    size_t next_job, n_jobs;
    uint64_t logical_size;
    char msg[ERR_MSG_SIZE];
    /* resumption: what storcon recorded */
    bool resume;
    size_t resume_jobs, resume_completed;
    uint64_t resume_hash;
    unsigned status_unknown; /* STATUS: 404 answers so far (storcon has no row yet) */
    /* status upcalls: one at a time; the next one waits in pending (a newer one replaces it) */
    StorconCall *call;
    json_t *pending;
    /* checkpoints: the completed-job count of each queued index upload, in queue order */
    size_t ckpt[64];
    size_t ckpt_head, ckpt_n;
};

typedef struct ImportJob {
    ImportTask *t;
    /* inputs */
    char root[PATH_MAX];          /* LocalFs: the location's directory */
    char url[IMPORT_S3_URL_SIZE]; /* AwsS3: import_s3_url; "" for LocalFs */
    ShardIdentity shard;
    PgdataPlanParams params;
    TenantShardId tsid;
    Generation gen;
    char dir[PATH_MAX];
    LayerWriterOptions layer_opts;
    size_t job_index;
    /* outputs */
    bool ok;
    bool source_ready; /* WAIT_SOURCE: status/pgdata says done */
    PgdataSource *src;
    PgdataPlan *plan;
    IndexLayer layer;
    uint64_t logical_size;
    Err err;
} ImportJob;

static void import_step(ImportTask *t);

static void import_set_step(ImportTask *t, ImportStep to)
{
    if (t->step != to && t->tl != NULL)
        log_info("import %s/%s: %s -> %s", t->slot->tsid_str, t->tl->id_str,
                 IMPORT_STEP_NAMES[t->step], IMPORT_STEP_NAMES[to]);
    t->step = to;
}

static void import_task_free(ImportTask *t)
{
    for (size_t i = 0; i < IMPORT_PAR_MAX; i++)
        free(t->ready[i]);
    if (t->call != NULL)
        storcon_call_cancel(t->app->storcon, t->call);
    json_decref(t->pending);
    if (t->timer != NULL)
        event_free(t->timer);
    pgdata_plan_free(t->plan);
    pgdata_source_free(t->src);
    free(t);
}

static void import_send(ImportTask *t, json_t *status);

static void import_fail(ImportTask *t, const Err *err)
{
    str_copy(t->msg, sizeof(t->msg), err->msg);
    log_err(err, "import failed");
    import_set_step(t, IMPORT_FAILED);
    import_send(t, json_pack("{s:s}", "Error", t->msg));
}

/* plan_hash_u64: the plan hash as the progress records it (see the file comment). */
static uint64_t plan_hash_u64(const PgdataPlan *plan)
{
    const char *h = pgdata_plan_hash(plan);
    uint64_t v = 0;
    for (int i = 0; i < 16 && h[i] != '\0'; i++) {
        char c = h[i];
        v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return v & (uint64_t)INT64_MAX;
}

static json_t *progress_json(const ImportTask *t, size_t completed)
{
    return json_pack("{s:{s:{s:I,s:I,s:I,s:I}}}", "InProgress", "V1", "jobs", (json_int_t)t->n_jobs,
                     "completed", (json_int_t)completed, "import_plan_hash",
                     (json_int_t)plan_hash_u64(t->plan), "job_soft_size_limit",
                     (json_int_t)t->app->cfg.import_job_size);
}

static void on_sent(void *arg, const Err *err, const json_t *answer)
{
    (void)answer;
    ImportTask *t = arg;
    t->call = NULL;
    if (err != NULL && t->tl != NULL)
        log_warn("import %s/%s: status upcall refused: %s", t->slot->tsid_str, t->tl->id_str,
                 err->msg);
    if (t->pending != NULL) {
        json_t *next = t->pending;
        t->pending = NULL;
        import_send(t, next);
    }
}

/* import_send: POST status (reference taken) after the upcalls before it. */
static void import_send(ImportTask *t, json_t *status)
{
    if (t->call != NULL) {
        json_decref(t->pending);
        t->pending = status;
        return;
    }
    t->call = storcon_import_progress_start(t->app->storcon, &t->slot->tsid, &t->tl->id,
                                            slot_generation(t->slot), status, on_sent, t);
    json_decref(status);
}

static void on_import_timer(evutil_socket_t fd, short what, void *arg)
{
    import_step(arg);
}

static void import_retry_after(ImportTask *t, uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(t->timer, &tv);
}

bool import_source_status_parse(const void *buf, size_t len, bool *done, Err *err)
{
    *done = false;
    json_t *v = NULL;
    if (len > PAGESERVER_IMPORT_STATUS_MAX_BYTES) {
        err_set(err, ERR_BAD_REQUEST, "status/pgdata: %zu bytes (at most %u)", len,
                PAGESERVER_IMPORT_STATUS_MAX_BYTES);
        return false;
    }
    if (!json_parse_text(buf, len, &v, err)) {
        err_prefix(err, "status/pgdata: ");
        return false;
    }
    json_t *d = json_is_object(v) ? json_object_get(v, "done") : NULL;
    bool ok = json_is_boolean(d);
    if (ok)
        *done = json_is_true(d);
    else
        err_set(err, ERR_BAD_REQUEST, "status/pgdata: expected {\"done\": true or false}");
    json_decref(v);
    return ok;
}

/* source_open: the location's directory sub ("" = the location itself) as a PGDATA source. */
static bool source_open(const ImportJob *j, const char *sub, PgdataSource **out, Err *err)
{
    if (j->url[0] != '\0')
        return pgdata_source_remote_new(j->url, sub, out, err);
    char path[PATH_MAX];
    if (!str_printf(path, sizeof(path), "%s%s%s", j->root, sub[0] ? "/" : "", sub)) {
        err_set(err, ERR_BAD_REQUEST, "location path too long");
        return false;
    }
    return pgdata_source_local_new(path, out, err);
}

/* read_status: does the location's status/pgdata say {"done": true}? Absent: not yet (no error). */
static bool read_status(const ImportJob *j, bool *ready, Err *err)
{
    *ready = false;
    PgdataSource *src = NULL;
    PgdataListing l = {0};
    bool ok = false;
    if (!source_open(j, "", &src, err)) {
        if (err->code == ERR_NOT_FOUND) {
            err_clear(err); /* the location is not there yet */
            return true;
        }
        return false;
    }
    if (!pgdata_source_list(src, "status", 64, &l, err)) {
        if (err->code == ERR_NOT_FOUND) {
            err_clear(err);
            ok = true;
        }
        goto cleanup;
    }
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.entries[i].name, "pgdata") != 0 || l.entries[i].is_dir)
            continue;
        if (l.entries[i].size > PAGESERVER_IMPORT_STATUS_MAX_BYTES) {
            err_set(err, ERR_BAD_REQUEST, "status/pgdata: %" PRIu64 " bytes (at most %u)",
                    l.entries[i].size, PAGESERVER_IMPORT_STATUS_MAX_BYTES);
            goto cleanup;
        }
        char buf[PAGESERVER_IMPORT_STATUS_MAX_BYTES];
        PgdataRange r = {0, (size_t)l.entries[i].size};
        if (!pgdata_source_read(src, "status/pgdata", &r, 1, buf, err) ||
            !import_source_status_parse(buf, r.len, ready, err))
            goto cleanup;
    }
    ok = true;
cleanup:
    pgdata_listing_free(&l);
    pgdata_source_free(src);
    return ok;
}

static void import_work(WorkerJob *job, void *arg)
{
    (void)job;
    ImportJob *j = arg;
    ImportTask *t = j->t;
    switch (t->step) {
    case IMPORT_WAIT_SOURCE:
        j->ok = failpoint_check("import-wait-source", &j->err) &&
                read_status(j, &j->source_ready, &j->err);
        break;
    case IMPORT_PLAN:
        j->ok = source_open(j, "pgdata", &j->src, &j->err) &&
                pgdata_plan_new(j->src, &j->shard, &j->params, &j->plan, &j->err) &&
                fs_mkdir_p(j->dir, PAGESERVER_DIR_MODE, &j->err);
        break;
    case IMPORT_JOBS:
        j->ok = failpoint_check("import-before-job", &j->err) &&
                bootstrap_job_to_layer(t->plan, j->job_index, j->dir, j->gen,
                                       tsid_shard_index(&j->tsid), &j->layer_opts, &j->layer,
                                       &j->logical_size, &j->err);
        break;
    default:
        err_set(&j->err, ERR_INTERNAL, "import: no work in step %s", IMPORT_STEP_NAMES[t->step]);
        break;
    }
}

/* source_error: does err end the import (the source is at fault), or is it ours to retry? */
static bool source_error(const Err *err)
{
    return err->code == ERR_BAD_REQUEST || err->code == ERR_NOT_FOUND || err->code == ERR_INTERNAL;
}

/* on_checkpoint: an index naming the first ckpt[head] jobs' layers is durable: report it. The
 * argument is the timeline (it outlives its queued uploads; the task may not). */
static void on_checkpoint(void *arg, bool ok)
{
    Timeline *tl = arg;
    ImportTask *t = tl->import;
    if (t == NULL || t->ckpt_n == 0)
        return;
    size_t completed = t->ckpt[t->ckpt_head];
    t->ckpt_head = (t->ckpt_head + 1) % 64;
    t->ckpt_n--;
    if (ok && t->plan != NULL)
        import_send(t, progress_json(t, completed));
}

static void add_job_layer(ImportTask *t, ImportJob *j)
{
    Timeline *tl = t->tl;
    Err err = {0};
    Layer *l = NULL;
    /* a redone job (after a restart) replaces its layer: same name, our generation */
    for (size_t i = 0; i < tl->n_layers; i++) {
        if (strcmp(tl->layers[i]->name, j->layer.name) == 0) {
            layer_obj_unref(tl->layers[i]);
            tl->layers[i] = tl->layers[--tl->n_layers];
            break;
        }
    }
    if (!layer_obj_new(&j->layer, &t->slot->tsid.tenant_id, &tl->id, tl->dir, true, &l, &err) ||
        !timeline_add_layer(tl, l, &err)) {
        layer_obj_unref(l);
        import_fail(t, &err);
        return;
    }
    timeline_schedule_layer_upload(tl, l, NULL, NULL);
    t->logical_size += j->logical_size;
    t->next_job++;
    if (t->next_job % t->app->cfg.import_checkpoint_jobs == 0 && t->next_job < t->n_jobs &&
        t->ckpt_n < sizeof(t->ckpt) / sizeof(t->ckpt[0])) {
        t->ckpt[(t->ckpt_head + t->ckpt_n++) % 64] = t->next_job;
        timeline_schedule_index_upload(tl, on_checkpoint, tl);
    }
}

static void on_final_index(void *arg, bool ok)
{
    Timeline *tl = arg;
    ImportTask *t = tl->import;
    if (t == NULL || t->step != IMPORT_FINISH)
        return;
    if (!ok) {
        /* the queue was dropped (slot changing): the next attach redoes the import */
        return;
    }
    import_set_step(t, IMPORT_DONE);
    import_send(t, json_string("Done"));
    log_info("import %s/%s: %zu jobs done; waiting for activate_post_import", t->slot->tsid_str,
             t->tl->id_str, t->n_jobs);
}

static void import_finish(ImportTask *t)
{
    Timeline *tl = t->tl;
    Lsn base = pgdata_plan_base_lsn(t->plan);
    tl->initdb_lsn = base;
    tl->gc_cutoff_lsn = base;
    tl->disk_consistent_lsn = base + 8;
    tl->last_record_lsn = base + 8;
    tl->prev_record_lsn = LSN_INVALID;
    tl->pg_version = pgdata_plan_pg_version(t->plan);
    tl->logical_size = t->logical_size;
    tl->logical_size_accurate = !t->resume; /* a resumed import did not see every job */
    pgdata_plan_free(t->plan);
    t->plan = NULL;
    pgdata_source_free(t->src);
    t->src = NULL;
    import_set_step(t, IMPORT_FINISH);
    timeline_schedule_index_upload(tl, on_final_index, tl);
}

/* commit_ready: add the layers of the finished jobs at the head of the window, in job order. */
static void commit_ready(ImportTask *t)
{
    while (t->step == IMPORT_JOBS && t->ready[0] != NULL) {
        ImportJob *j = t->ready[0];
        memmove(t->ready, t->ready + 1, (IMPORT_PAR_MAX - 1) * sizeof(t->ready[0]));
        memmove(t->inflight, t->inflight + 1, (IMPORT_PAR_MAX - 1) * sizeof(t->inflight[0]));
        t->ready[IMPORT_PAR_MAX - 1] = NULL;
        t->inflight[IMPORT_PAR_MAX - 1] = false;
        add_job_layer(t, j); /* next_job++ */
        free(j);
    }
}

static void import_done(void *arg, WorkerOutcome outcome)
{
    ImportJob *j = arg;
    ImportTask *t = j->t;
    TenantSlot *slot = t->slot;
    bool keep = false; /* j went to the ready window */
    t->running--;
    if (!worker_outcome_err(outcome, "import", &j->err))
        j->ok = false;
    bool window = t->step == IMPORT_JOBS && j->job_index >= t->next_job &&
                  j->job_index - t->next_job < IMPORT_PAR_MAX;
    if (window)
        t->inflight[j->job_index - t->next_job] = false;
    if (t->tl == NULL) {
        pgdata_plan_free(j->plan);
        pgdata_source_free(j->src);
        if (t->running == 0)
            import_task_free(t);
    } else if (t->step == IMPORT_FAILED) {
        /* a job that was running when another one failed: nothing to do */
    } else if (!j->ok && (outcome != WORKER_RAN || !source_error(&j->err))) {
        log_warn("import %s/%s: %s; retrying", slot->tsid_str, t->tl->id_str, j->err.msg);
        if (!evtimer_pending(t->timer, NULL))
            import_retry_after(t, PAGESERVER_IMPORT_RETRY_MS);
    } else if (!j->ok) {
        pgdata_plan_free(j->plan);
        pgdata_source_free(j->src);
        import_fail(t, &j->err);
    } else {
        switch (t->step) {
        case IMPORT_WAIT_SOURCE:
            if (j->source_ready)
                import_set_step(t, IMPORT_PLAN);
            import_retry_after(t, j->source_ready ? 0 : t->app->cfg.import_poll_ms);
            break;
        case IMPORT_PLAN:
            t->src = j->src;
            t->plan = j->plan;
            t->n_jobs = pgdata_plan_job_count(t->plan);
            t->next_job = 0;
            if (t->resume) {
                if (t->resume_jobs != t->n_jobs || t->resume_hash != plan_hash_u64(t->plan) ||
                    t->resume_completed > t->n_jobs) {
                    Err err = {0};
                    err_set(&err, ERR_BAD_REQUEST,
                            "cannot resume: the source's plan changed (%zu jobs, hash %" PRIu64
                            "; the recorded progress says %zu jobs, hash %" PRIu64 ")",
                            t->n_jobs, plan_hash_u64(t->plan), t->resume_jobs, t->resume_hash);
                    import_fail(t, &err);
                    break;
                }
                t->next_job = t->resume_completed;
                log_info("import %s/%s: resuming after job %zu of %zu", slot->tsid_str,
                         t->tl->id_str, t->next_job, t->n_jobs);
            }
            log_info("import %s/%s: plan %s, %zu jobs, %" PRIu64 " bytes", slot->tsid_str,
                     t->tl->id_str, pgdata_plan_hash(t->plan), t->n_jobs,
                     pgdata_plan_total_size(t->plan));
            import_set_step(t, IMPORT_JOBS);
            import_step(t);
            break;
        case IMPORT_JOBS:
            if (window && t->ready[j->job_index - t->next_job] == NULL) {
                t->ready[j->job_index - t->next_job] = j;
                keep = true;
            }
            commit_ready(t);
            import_step(t);
            break;
        default:
            break;
        }
    }
    if (!keep)
        free(j);
    slot_job_end(slot); /* last: a stopping slot may free the timeline now */
}

bool import_shard_status_parse(const json_t *a, ImportShardStatus *out, Err *err)
{
    memset(out, 0, sizeof(*out));
    if (json_is_string(a) && strcmp(json_string_value(a), "Done") == 0) {
        out->kind = IMPORT_SHARD_DONE;
        return true;
    }
    json_t *e = json_is_object(a) && json_object_size(a) == 1 ? json_object_get(a, "Error") : NULL;
    if (json_is_string(e)) {
        out->kind = IMPORT_SHARD_ERROR;
        str_copy(out->error, sizeof(out->error), json_string_value(e));
        return true;
    }
    json_t *ip =
        json_is_object(a) && json_object_size(a) == 1 ? json_object_get(a, "InProgress") : NULL;
    out->kind = IMPORT_SHARD_IN_PROGRESS;
    if (ip != NULL && json_is_null(ip))
        return true;
    json_t *v1 = json_is_object(ip) ? json_object_get(ip, "V1") : NULL;
    if (!json_is_object(v1)) {
        err_set(err, ERR_BAD_REQUEST,
                "shard import status: expected {\"InProgress\": null or {\"V1\": {...}}}, "
                "\"Done\" or {\"Error\": msg}");
        return false;
    }
    out->has_progress = true;
    if (!json_get_u64(v1, "jobs", &out->jobs, true, NULL, err) ||
        !json_get_u64(v1, "completed", &out->completed, true, NULL, err) ||
        !json_get_u64(v1, "import_plan_hash", &out->plan_hash, true, NULL, err) ||
        !json_get_u64(v1, "job_soft_size_limit", &out->job_soft_size_limit, false, NULL, err)) {
        err_prefix(err, "shard import status: InProgress.V1: ");
        return false;
    }
    if (out->completed > out->jobs) {
        err_set(err, ERR_BAD_REQUEST,
                "shard import status: completed %" PRIu64 " is more than jobs %" PRIu64,
                out->completed, out->jobs);
        return false;
    }
    return true;
}

/* apply_status: the status storcon recorded for this shard, into the task. */
static bool apply_status(ImportTask *t, const json_t *a, Err *err)
{
    ImportShardStatus st;
    if (!import_shard_status_parse(a, &st, err))
        return false;
    switch (st.kind) {
    case IMPORT_SHARD_DONE:
        if (t->tl->last_record_lsn == LSN_INVALID) {
            err_set(err, ERR_INTERNAL, "storcon says the import is done, but the index is not");
            return false;
        }
        import_set_step(t, IMPORT_DONE);
        return true;
    case IMPORT_SHARD_ERROR:
        str_copy(t->msg, sizeof(t->msg), st.error);
        import_set_step(t, IMPORT_FAILED);
        return true;
    default:
        break;
    }
    if (st.has_progress) {
        t->resume = true;
        t->resume_jobs = (size_t)st.jobs;
        t->resume_completed = (size_t)st.completed;
        t->resume_hash = st.plan_hash;
    }
    import_set_step(t, IMPORT_WAIT_SOURCE);
    return true;
}

static void on_status(void *arg, const Err *err, const json_t *answer)
{
    ImportTask *t = arg;
    t->call = NULL;
    Err perr = {0};
    if (err != NULL && err->code == ERR_NOT_FOUND &&
        t->status_unknown < PAGESERVER_IMPORT_STATUS_UNKNOWN_MAX) {
        /* storcon records the import once every shard accepted the create, so a shard that was
         * quick asks before the row exists; a delete of the row comes with a timeline delete that
         * cancels this task. Ask again, for a while: a create never completed at storcon leaves
         * no row, and the import then fails like any other without a status. */
        /* The row usually appears within milliseconds (the other shards' creates): ask again
         * soon, then back off to PAGESERVER_IMPORT_RETRY_MS. */
        unsigned n = t->status_unknown++;
        uint64_t ms = n < 6 ? (uint64_t)PAGESERVER_IMPORT_STATUS_FIRST_RETRY_MS << n
                            : PAGESERVER_IMPORT_RETRY_MS;
        if (ms > PAGESERVER_IMPORT_RETRY_MS)
            ms = PAGESERVER_IMPORT_RETRY_MS;
        if (n == 6 || (n > 6 && n % 30 == 0))
            log_info("import: storcon has no record of this import yet (%s); asking again every "
                     "%u ms",
                     err->msg, PAGESERVER_IMPORT_RETRY_MS);
        import_retry_after(t, ms);
        return;
    }
    if (err != NULL) {
        /* 412: stale generation, or still no row (404) */
        str_copy(t->msg, sizeof(t->msg), err->msg);
        log_err(err, "import: timeline_import_status");
        import_set_step(t, IMPORT_FAILED);
        return;
    }
    if (!apply_status(t, answer, &perr)) {
        import_fail(t, &perr);
        return;
    }
    import_step(t);
}

/* start_job: one worker job of the current step (job_index: IMPORT_JOBS only). */
static void start_job(ImportTask *t, size_t job_index)
{
    ImportJob *j = xcalloc(1, sizeof(*j));
    j->t = t;
    str_copy(j->root, sizeof(j->root), t->spec.location.path);
    str_copy(j->url, sizeof(j->url), t->s3_url);
    j->shard = t->slot->shard;
    j->params.job_soft_size_limit = t->app->cfg.import_job_size;
    j->tsid = t->slot->tsid;
    j->gen = slot_generation(t->slot);
    str_copy(j->dir, sizeof(j->dir), t->tl->dir);
    j->layer_opts =
        layer_writer_options(tenant_config_image_compression(&t->slot->config.tenant_conf));
    j->job_index = job_index;
    t->running++;
    slot_job_begin(t->slot);
    WorkerJobSpec spec = {.cls =
                              t->step == IMPORT_WAIT_SOURCE ? WORKER_CLASS_IO : WORKER_CLASS_BULK};
    worker_pool_start(t->app->workers, &spec, import_work, import_done, j);
}

/* import_step: start what the current step needs: the status upcall, the one job of WAIT_SOURCE
 * or PLAN, or the jobs of the window [next_job, next_job + par) not running or finished yet. */
static void import_step(ImportTask *t)
{
    Timeline *tl = t->tl;
    if (tl == NULL || evtimer_pending(t->timer, NULL) || t->step == IMPORT_FAILED ||
        t->step == IMPORT_DONE || t->step == IMPORT_FINISH)
        return;
    if (t->step == IMPORT_STATUS) {
        if (t->call == NULL)
            t->call = storcon_import_status_start(t->app->storcon, &t->slot->tsid, &tl->id,
                                                  slot_generation(t->slot), on_status, t);
        return;
    }
    if (t->step != IMPORT_JOBS) {
        if (t->running == 0)
            start_job(t, 0);
        return;
    }
    if (t->next_job == t->n_jobs) {
        if (t->running == 0)
            import_finish(t);
        return;
    }
    for (size_t w = 0; w < t->par && t->next_job + w < t->n_jobs && t->running < t->par; w++) {
        if (!t->inflight[w] && t->ready[w] == NULL) {
            t->inflight[w] = true;
            start_job(t, t->next_job + w);
        }
    }
}

void import_task_start(Timeline *tl)
{
    if (tl->import != NULL || tl->state != TIMELINE_IMPORTING)
        return;
    ImportTask *t = xcalloc(1, sizeof(*t));
    t->tl = tl;
    t->slot = tl->slot;
    t->app = tl->slot->mgr->app;
    t->timer = evtimer_new(t->app->base, on_import_timer, t);
    t->par = (size_t)t->app->cfg.import_parallelism;
    if (t->par < 1 || t->par > IMPORT_PAR_MAX)
        t->par = t->par < 1 ? 1 : IMPORT_PAR_MAX;
    tl->import = t;
    Err err = {0};
    if (!import_index_spec(tl->index, &t->spec, &err)) {
        import_fail(t, &err);
        return;
    }
    if (t->spec.location.kind == IMPORT_LOCATION_AWS_S3 &&
        !import_s3_url(t->app, &t->spec.location, t->s3_url, sizeof(t->s3_url), &err)) {
        import_fail(t, &err);
        return;
    }
    log_info("import %s/%s: started (source %s)", t->slot->tsid_str, tl->id_str,
             t->s3_url[0] ? t->s3_url : t->spec.location.path);
    t->step = IMPORT_STATUS;
    import_step(t);
}

void import_task_cancel(Timeline *tl)
{
    ImportTask *t = tl->import;
    if (t == NULL)
        return;
    tl->import = NULL;
    t->tl = NULL;
    evtimer_del(t->timer);
    if (t->call != NULL) {
        storcon_call_cancel(t->app->storcon, t->call);
        t->call = NULL;
    }
    json_decref(t->pending);
    t->pending = NULL;
    if (t->running == 0)
        import_task_free(t);
}

bool import_task_finished(const Timeline *tl, bool *failed, char msg[ERR_MSG_SIZE])
{
    const ImportTask *t = tl->import;
    *failed = false;
    msg[0] = '\0';
    if (t == NULL || (t->step != IMPORT_DONE && t->step != IMPORT_FAILED))
        return false;
    *failed = t->step == IMPORT_FAILED;
    str_copy(msg, ERR_MSG_SIZE, t->msg);
    return true;
}

/* ---- activate_post_import ---- */

typedef struct ActivateCtx {
    Timeline *tl;
    PageserverJsonFn cb;
    void *arg;
} ActivateCtx;

static void on_activated(void *arg, bool ok)
{
    ActivateCtx *a = arg;
    Timeline *tl = a->tl;
    Err err = {0};
    if (tl->import != NULL)
        tl->import->activating = false;
    if (!ok || tl->state != TIMELINE_IMPORTING) {
        err_set(&err, ERR_UNAVAILABLE, "timeline %s: activation interrupted; retry", tl->id_str);
        a->cb(&err, NULL, a->arg);
        free(a);
        return;
    }
    import_task_cancel(tl); /* DONE: nothing runs; frees the task */
    (void)timeline_set_state(tl, TIMELINE_ACTIVE);
    timeline_compute_sizes(tl);
    log_info("timeline %s/%s: import activated", tl->slot->tsid_str, tl->id_str);
    a->cb(NULL, timeline_info_json(tl), a->arg);
    free(a);
}

void import_activate(TenantManager *mgr, const TenantShardId *tsid, const TimelineId *id,
                     PageserverJsonFn cb, void *arg)
{
    PageserverApp *app = mgr->app;
    Err err = {0};
    TenantSlot *slot = NULL;
    if (!tenant_manager_readable_slot(mgr, tsid, &slot, &err)) {
        pageserver_defer_json(app, cb, arg, &err, NULL);
        return;
    }
    char ids[ID_STR_SIZE];
    timeline_id_format(id, ids);
    Timeline *tl = slot_find_timeline(slot, id);
    bool failed = false;
    char msg[ERR_MSG_SIZE];
    if (tl == NULL || tl->state == TIMELINE_LOADING || tl->state == TIMELINE_STOPPING) {
        err_set(&err, ERR_NOT_FOUND, "timeline %s not found", ids);
    } else if (tl->state == TIMELINE_ACTIVE &&
               import_index_state(tl->index, NULL) != IMPORT_INDEX_IN_PROGRESS) {
        pageserver_defer_json(app, cb, arg, NULL, timeline_info_json(tl)); /* a repeat */
        return;
    } else if (tl->state != TIMELINE_IMPORTING) {
        err_set(&err, ERR_CONFLICT, "timeline %s is %s", ids, timeline_state_name(tl->state));
    } else if (!import_task_finished(tl, &failed, msg) || tl->import->activating) {
        err_set(&err, ERR_UNAVAILABLE, "timeline %s: import still running", ids);
    } else if (failed) {
        err_set(&err, ERR_CONFLICT, "timeline %s: import failed: %s", ids, msg);
    } else if (!slot_may_upload(slot)) {
        err_set(&err, ERR_UNAVAILABLE, "tenant shard %s does not upload here; retry",
                slot->tsid_str);
    }
    if (err_is_set(&err)) {
        pageserver_defer_json(app, cb, arg, &err, NULL);
        return;
    }
    if (import_index_state(tl->index, NULL) == IMPORT_INDEX_IN_PROGRESS) {
        /* a retry after an interrupted activation finds Done already */
        json_t *done = import_index_done(tl->index->import_pgdata, (int64_t)time(NULL) * 1000);
        if (done != NULL)
            index_part_set_import_pgdata(tl->index, done);
        json_decref(done);
    }
    tl->import->activating = true;
    ActivateCtx *a = xcalloc(1, sizeof(*a));
    a->tl = tl;
    a->cb = cb;
    a->arg = arg;
    timeline_schedule_index_upload(tl, on_activated, a);
}
