/*
 * tenant_lifecycle.c: create, attach, detach, ignore and load (tenant_lifecycle.h) as thin layers
 * over the TenantManager's location machinery (tenant.c) and the slot changes (slot.c).
 */
#include "pageserver/tenant_lifecycle.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/fsutil.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/defaults.h"
#include "pageserver/location_config.h"
#include "pageserver/slot.h"

/* ---- bodies ---- */

typedef struct ShardParamsWire {
    uint8_t count;
    uint32_t stripe_size;
} ShardParamsWire;

static const JsonField SHARD_PARAMS_FIELDS[] = {
    JSON_FIELD(ShardParamsWire, count, "count", JSON_FIELD_U8, JSON_REQUIRED),
    JSON_FIELD(ShardParamsWire, stripe_size, "stripe_size", JSON_FIELD_U32, JSON_REQUIRED),
};
static const JsonSpec SHARD_PARAMS_SPEC =
    JSON_SPEC("shard_parameters", SHARD_PARAMS_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct CreateWire {
    TenantShardId tsid;
    Generation generation;
    JsonPresence generation_p;
    ShardParamsWire shard;
    JsonPresence shard_p;
    json_t *placement; /* accepted and unused: only a storage controller places shards */
    TenantConfig config;
} CreateWire;

static const JsonField CREATE_FIELDS[] = {
    JSON_FIELD(CreateWire, tsid, "new_tenant_id", JSON_FIELD_TSID, JSON_REQUIRED),
    JSON_FIELD_P(CreateWire, generation, generation_p, "generation", JSON_FIELD_GENERATION,
                 JSON_NULLABLE),
    JSON_NESTED_P(CreateWire, shard, shard_p, "shard_parameters", &SHARD_PARAMS_SPEC, 0),
    JSON_FIELD(CreateWire, placement, "placement_policy", JSON_FIELD_ANY, JSON_NULLABLE),
    JSON_FLATTEN(CreateWire, config, &TENANT_CONFIG_SPEC),
};
static const JsonSpec CREATE_SPEC = JSON_SPEC("tenant create", CREATE_FIELDS, JSON_UNKNOWN_REJECT);

typedef struct AttachWire {
    Generation generation;
    JsonPresence generation_p;
    TenantConfig config;
} AttachWire;

static const JsonField ATTACH_FIELDS[] = {
    JSON_FIELD_P(AttachWire, generation, generation_p, "generation", JSON_FIELD_GENERATION,
                 JSON_NULLABLE),
    JSON_NESTED(AttachWire, config, "config", &TENANT_CONFIG_SPEC, 0),
};
/* Neon's TenantAttachRequest denies unknown fields only inside "config" */
static const JsonSpec ATTACH_SPEC =
    JSON_SPEC("tenant attach", ATTACH_FIELDS, JSON_UNKNOWN_IGNORE_LOG);

typedef struct LoadWire {
    Generation generation;
    JsonPresence generation_p;
} LoadWire;

static const JsonField LOAD_FIELDS[] = {
    JSON_FIELD_P(LoadWire, generation, generation_p, "generation", JSON_FIELD_GENERATION,
                 JSON_NULLABLE),
};
static const JsonSpec LOAD_SPEC = JSON_SPEC("tenant load", LOAD_FIELDS, JSON_UNKNOWN_REJECT);

/* wire_generation: a decoded optional generation; 0 is refused (generations start at 1). */
static bool wire_generation(Generation g, JsonPresence p, Generation *out, Err *err)
{
    *out = p == JSON_PRESENCE_SET ? g : GENERATION_NONE;
    if (p == JSON_PRESENCE_SET && g == 0) {
        err_set(err, ERR_BAD_REQUEST, "field \"generation\": generations start at 1, got 0");
        return false;
    }
    return true;
}

bool tenant_create_request_decode(const json_t *obj, TenantCreateRequest *out, Err *err)
{
    CreateWire w;
    memset(&w, 0, sizeof(w));
    tenant_config_init(&w.config);
    if (!json_decode(obj, &CREATE_SPEC, &w, err) || !tenant_config_validate(&w.config, err))
        return false;
    TenantCreateRequest r;
    memset(&r, 0, sizeof(r));
    r.tsid = w.tsid;
    r.config = w.config;
    if (!wire_generation(w.generation, w.generation_p, &r.generation, err))
        return false;
    if (w.shard_p == JSON_PRESENCE_SET) {
        if (w.shard.count != w.tsid.count) {
            err_set(err, ERR_BAD_REQUEST,
                    "field \"shard_parameters\": count %u does not match new_tenant_id (count %u)",
                    (unsigned)w.shard.count, (unsigned)w.tsid.count);
            return false;
        }
        r.stripe_size = w.shard.stripe_size;
    } else if (w.tsid.count > 0) {
        r.stripe_size = STRIPE_SIZE_LEGACY; /* Neon's default ShardParameters */
    }
    if (w.tsid.count > 0 &&
        !shard_params_validate(w.tsid.number, w.tsid.count, r.stripe_size, err)) {
        err_prefix(err, "field \"shard_parameters\": ");
        return false;
    }
    *out = r;
    return true;
}

bool tenant_attach_request_decode(const json_t *obj, TenantAttachRequest *out, Err *err)
{
    AttachWire w;
    memset(&w, 0, sizeof(w));
    tenant_config_init(&w.config);
    if (obj != NULL && !json_is_null(obj)) {
        if (!json_decode(obj, &ATTACH_SPEC, &w, err))
            return false;
        if (!tenant_config_validate(&w.config, err)) {
            err_prefix(err, "field \"config\": ");
            return false;
        }
    }
    TenantAttachRequest r;
    r.config = w.config;
    if (!wire_generation(w.generation, w.generation_p, &r.generation, err))
        return false;
    *out = r;
    return true;
}

bool tenant_load_request_decode(const json_t *obj, Generation *generation, Err *err)
{
    LoadWire w;
    memset(&w, 0, sizeof(w));
    if (obj != NULL && !json_is_null(obj) && !json_decode(obj, &LOAD_SPEC, &w, err))
        return false;
    return wire_generation(w.generation, w.generation_p, generation, err);
}

/* ---- shared steps ---- */

/* LifecycleOp: the caller's completion while a location change runs. */
typedef struct LifecycleOp {
    TenantManager *mgr;
    TenantShardId tsid;
    PageserverDoneFn done;
    PageserverJsonFn json;
    void *arg;
} LifecycleOp;

static LifecycleOp *op_new(TenantManager *mgr, const TenantShardId *tsid, PageserverDoneFn done,
                           PageserverJsonFn json, void *arg)
{
    LifecycleOp *op = xcalloc(1, sizeof(*op));
    op->mgr = mgr;
    op->tsid = *tsid;
    op->done = done;
    op->json = json;
    op->arg = arg;
    return op;
}

/* on_change_done: a location change answered: the caller's done (the result is not used). */
static void on_change_done(const Err *err, json_t *result, void *arg)
{
    LifecycleOp *op = arg;
    json_decref(result);
    op->done(err, op->arg);
    free(op);
}

static bool has_control_plane(const TenantManager *mgr)
{
    return mgr->app->cfg.control_plane_api[0] != '\0';
}

/* request_generation: a control plane makes the generation mandatory (Neon's
 * get_request_generation); without one, a missing generation is `dev_default`. */
static bool request_generation(const TenantManager *mgr, Generation requested,
                               Generation dev_default, Generation *out, Err *err)
{
    if (requested != GENERATION_NONE) {
        *out = requested;
        return true;
    }
    if (has_control_plane(mgr)) {
        err_set(err, ERR_BAD_REQUEST, "generation attribute missing");
        return false;
    }
    *out = dev_default;
    return true;
}

/* attached_single: an AttachedSingle config of tsid in gen with conf (cfg initialised here). */
static void attached_single(LocationConfig *cfg, const TenantShardId *tsid, Generation gen,
                            uint32_t stripe_size, const TenantConfig *conf)
{
    location_config_init(cfg);
    cfg->mode = LOCATION_MODE_ATTACHED_SINGLE;
    cfg->generation = gen;
    cfg->shard_number = tsid->number;
    cfg->shard_count = tsid->count;
    cfg->shard_stripe_size = stripe_size;
    location_config_set_tenant_conf(cfg, conf);
}

static bool not_found(const TenantShardId *tsid, Err *err)
{
    char id[TSID_STR_SIZE];
    tsid_format(tsid, id);
    err_set(err, ERR_NOT_FOUND, "tenant %s not found on this pageserver", id);
    return false;
}

/* ---- create ---- */

static void after_create(const Err *err, json_t *result, void *arg)
{
    LifecycleOp *op = arg;
    json_decref(result);
    Err e = {0};
    char id[TSID_STR_SIZE];
    tsid_format(&op->tsid, id);
    const TenantSlot *slot = err == NULL ? tenant_manager_find(op->mgr, &op->tsid) : NULL;
    if (err != NULL) {
        e = *err;
    } else if (slot == NULL) {
        err_set(&e, ERR_UNAVAILABLE, "tenant %s went away while it was created; retry", id);
    } else if (slot->state == SLOT_ACTIVE) {
        op->json(NULL, json_from_tenant_id(&op->tsid.tenant_id), op->arg);
        free(op);
        return;
    } else if (slot->state == SLOT_BROKEN) {
        err_set(&e, ERR_CONFLICT, "tenant %s will not become active: Broken: %s", id,
                slot->broken_reason);
    } else {
        err_set(&e, ERR_UNAVAILABLE, "tenant %s is not active yet (%s); poll its status", id,
                slot_state_name(slot->state));
    }
    op->json(&e, NULL, op->arg);
    free(op);
}

void tenant_create(TenantManager *mgr, const TenantCreateRequest *r, PageserverJsonFn cb, void *arg)
{
    Err err = {0};
    Generation gen = GENERATION_NONE;
    if (!tenant_manager_check_ready(mgr, &err) ||
        !request_generation(mgr, r->generation, 1, &gen, &err)) {
        pageserver_defer_json(mgr->app, cb, arg, &err, NULL);
        return;
    }
    if (tenant_manager_find(mgr, &r->tsid) != NULL || tenant_manager_is_ignored(mgr, &r->tsid) ||
        tenant_manager_pending(mgr, &r->tsid) != NULL) {
        char id[TSID_STR_SIZE];
        tsid_format(&r->tsid, id);
        err_set(&err, ERR_CONFLICT, "tenant %s already exists on this pageserver%s", id,
                tenant_manager_is_ignored(mgr, &r->tsid) ? " (ignored)" : "");
        pageserver_defer_json(mgr->app, cb, arg, &err, NULL);
        return;
    }
    LocationConfig cfg;
    attached_single(&cfg, &r->tsid, gen, r->stripe_size, &r->config);
    char id[TSID_STR_SIZE];
    tsid_format(&r->tsid, id);
    log_info("tenant create %s in generation %" PRId64, id, gen);
    TenantSlot *slot = slot_new(mgr, &r->tsid);
    slot_change_upsert(slot, &cfg, -1, false, after_create, op_new(mgr, &r->tsid, NULL, cb, arg));
    location_config_finish(&cfg);
}

/* ---- attach ---- */

void tenant_attach(TenantManager *mgr, const TenantId *tenant, const TenantAttachRequest *r,
                   PageserverDoneFn cb, void *arg)
{
    Err err = {0};
    TenantShardId tsid = {.tenant_id = *tenant};
    const TenantSlot *slot = tenant_manager_find(mgr, &tsid);
    Generation here = slot != NULL && slot->has_config && location_config_is_attached(&slot->config)
                          ? slot->config.generation
                          : 1;
    Generation gen = GENERATION_NONE;
    if (!tenant_manager_check_ready(mgr, &err) ||
        !request_generation(mgr, r->generation, here, &gen, &err)) {
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    LocationConfig cfg;
    attached_single(&cfg, &tsid, gen, 0, &r->config);
    /* answered once the config is durable: the caller polls the tenant's status */
    tenant_location_config_put(mgr, &tsid, &cfg, -1, true, on_change_done,
                               op_new(mgr, &tsid, cb, NULL, arg));
}

/* ---- detach ---- */

void tenant_detach(TenantManager *mgr, const TenantId *tenant, bool detach_ignored,
                   PageserverDoneFn cb, void *arg)
{
    Err err = {0};
    TenantShardId tsid = {.tenant_id = *tenant};
    if (!tenant_manager_check_ready(mgr, &err) ||
        tenant_manager_busy_err(mgr, &tsid, false, &err)) {
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    TenantSlot *slot = tenant_manager_find(mgr, &tsid);
    LifecycleOp *op = op_new(mgr, &tsid, cb, NULL, arg);
    if (slot != NULL) {
        slot_change_remove(slot, false, on_change_done, op);
    } else if (tenant_manager_is_ignored(mgr, &tsid) && detach_ignored) {
        tenant_manager_remove_absent(mgr, &tsid, on_change_done, op);
    } else {
        free(op);
        if (tenant_manager_is_ignored(mgr, &tsid)) {
            char id[TSID_STR_SIZE];
            tsid_format(&tsid, id);
            err_set(&err, ERR_NOT_FOUND,
                    "tenant %s is ignored on this pageserver: detach it with detach_ignored=true",
                    id);
        } else {
            (void)not_found(&tsid, &err);
        }
        pageserver_defer_done(mgr->app, cb, arg, &err);
    }
}

/* ---- ignore ---- */

static void after_ignore(const Err *err, json_t *result, void *arg)
{
    LifecycleOp *op = arg;
    if (err == NULL) {
        char id[TSID_STR_SIZE];
        tsid_format(&op->tsid, id);
        log_info("tenant %s is ignored: local files kept, not loaded at startup", id);
        tenant_manager_set_ignored(op->mgr, &op->tsid, true);
    }
    on_change_done(err, result, op);
}

void tenant_ignore(TenantManager *mgr, const TenantId *tenant, PageserverDoneFn cb, void *arg)
{
    Err err = {0};
    TenantShardId tsid = {.tenant_id = *tenant};
    TenantSlot *slot = tenant_manager_find(mgr, &tsid);
    if (!tenant_manager_check_ready(mgr, &err) ||
        tenant_manager_busy_err(mgr, &tsid, false, &err) ||
        (slot == NULL && !not_found(&tsid, &err))) {
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    slot_change_ignore(slot, after_ignore, op_new(mgr, &tsid, cb, NULL, arg));
}

/* ---- load ---- */

typedef struct LoadJob {
    LifecycleOp *op;
    char dir[PATH_MAX];
    Generation generation; /* GENERATION_NONE: keep the persisted config */
    LocationConfig cfg;
    bool marker_removed;
    bool ok;
    Err err;
} LoadJob;

/* load_work: read the local config, apply the generation (never lower than the persisted
 * attached one), then remove the ignore marker durably; nothing changes on a refusal. */
static void load_work(WorkerJob *job, void *arg)
{
    (void)job;
    LoadJob *j = arg;
    j->ok = tenant_local_config_read(j->dir, &j->op->tsid, &j->cfg, &j->err);
    if (!j->ok)
        return;
    if (j->generation != GENERATION_NONE) {
        if (location_config_is_attached(&j->cfg) && j->generation < j->cfg.generation) {
            err_set(&j->err, ERR_BAD_REQUEST,
                    "generation %" PRId64 " is lower than the persisted generation %" PRId64,
                    j->generation, j->cfg.generation);
            j->ok = false;
            return;
        }
        j->cfg.mode = LOCATION_MODE_ATTACHED_SINGLE;
        j->cfg.generation = j->generation;
        j->cfg.has_secondary_conf = false;
        j->cfg.secondary_warm = false;
    }
    char marker[PATH_MAX];
    str_printf(marker, sizeof(marker), "%s/%s", j->dir, PAGESERVER_TENANT_IGNORED_FILE);
    if (unlink(marker) == 0) {
        j->marker_removed = true;
        j->ok = fs_fsync_dir(j->dir, &j->err);
    } else if (errno != ENOENT) {
        err_set(&j->err, ERR_INTERNAL, "removing %s: %m", marker);
        j->ok = false;
    }
}

static void load_done(void *arg, WorkerOutcome outcome)
{
    LoadJob *j = arg;
    LifecycleOp *op = j->op;
    TenantManager *mgr = op->mgr;
    if (!worker_outcome_err(outcome, "loading the tenant", &j->err))
        j->ok = false;
    tenant_manager_pending_remove(mgr, &op->tsid);
    if (j->ok && mgr->stopping) {
        /* too late to put the marker back (no more worker jobs): say what the next start does */
        err_set(&j->err, ERR_UNAVAILABLE, "the pageserver is shutting down%s",
                j->marker_removed ? "; the ignore marker is already removed, so the tenant is "
                                    "loaded at the next start with its persisted configuration"
                                  : "");
        j->ok = false;
    }
    if (!j->ok) {
        if (j->err.code == ERR_NOT_FOUND)
            (void)not_found(&op->tsid, &j->err);
        location_config_finish(&j->cfg);
        op->done(&j->err, op->arg);
        free(op);
        free(j);
        return;
    }
    tenant_manager_set_ignored(mgr, &op->tsid, false);
    TenantSlot *slot = slot_new(mgr, &op->tsid);
    slot_change_upsert(slot, &j->cfg, -1, true, on_change_done, op);
    location_config_finish(&j->cfg);
    free(j);
}

void tenant_load(TenantManager *mgr, const TenantId *tenant, Generation generation,
                 PageserverDoneFn cb, void *arg)
{
    Err err = {0};
    TenantShardId tsid = {.tenant_id = *tenant};
    char id[TSID_STR_SIZE];
    tsid_format(&tsid, id);
    if (!tenant_manager_check_ready(mgr, &err) ||
        !request_generation(mgr, generation, GENERATION_NONE, &generation, &err) ||
        tenant_manager_busy_err(mgr, &tsid, true, &err)) {
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    if (tenant_manager_find(mgr, &tsid) != NULL) {
        err_set(&err, ERR_CONFLICT, "tenant %s is already loaded on this pageserver", id);
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    LoadJob *j = xcalloc(1, sizeof(*j));
    j->op = op_new(mgr, &tsid, cb, NULL, arg);
    j->generation = generation;
    location_config_init(&j->cfg);
    str_printf(j->dir, sizeof(j->dir), "%s/%s/%s", mgr->app->cfg.workdir, PAGESERVER_TENANTS_DIR,
               id);
    tenant_manager_pending_add(mgr, &tsid, "it is being loaded");
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO};
    worker_pool_start(mgr->app->workers, &spec, load_work, load_done, j);
}
