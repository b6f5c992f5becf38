/*
 * tenant.c: the TenantManager: slot tables (hash by TenantShardId and by tenant id),
 * location_config decisions, re-attach and startup, tenant delete, tenant config and the
 * read-only views. The slots' own state machine and changes are slot.c's.
 */
#include "pageserver/tenant.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "shared/failpoint.h"
#include "shared/fsutil.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/remote_storage.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"
#include "pageserver/remote_layout.h"
#include "pageserver/storcon_client.h"

/* ---- manager and its tables ---- */

#define TENANT_MANAGER_MIN_BUCKETS 64

static uint32_t hash_tenant(const TenantId *t)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < sizeof(t->b); i++)
        h = (h ^ t->b[i]) * 16777619u;
    return h;
}

static uint32_t hash_tsid(const TenantShardId *tsid)
{
    return shard_hash_combine(hash_tenant(&tsid->tenant_id),
                              ((uint32_t)tsid->number << 8) | tsid->count);
}

TenantManager *tenant_manager_new(PageserverApp *app)
{
    TenantManager *mgr = xcalloc(1, sizeof(*mgr));
    mgr->app = app;
    mgr->n_buckets = TENANT_MANAGER_MIN_BUCKETS;
    mgr->by_tsid = xcalloc(mgr->n_buckets, sizeof(*mgr->by_tsid));
    mgr->by_tenant = xcalloc(mgr->n_buckets, sizeof(*mgr->by_tenant));
    char dir[PATH_MAX];
    str_printf(dir, sizeof(dir), "%s/%s", app->cfg.workdir, PAGESERVER_TENANTS_DIR);
    fsync_group_init(&mgr->tenants_dir_sync, dir, NULL, NULL);
    return mgr;
}

void tenant_manager_reads_changed(TenantManager *mgr)
{
    atomic_fetch_add_explicit(&mgr->read_epoch, 1, memory_order_release);
}

TenantSlot *tenant_manager_find(const TenantManager *mgr, const TenantShardId *tsid)
{
    for (TenantSlot *s = mgr->by_tsid[hash_tsid(tsid) & (mgr->n_buckets - 1)]; s != NULL;
         s = s->hash_next) {
        if (tsid_eq(&s->tsid, tsid))
            return s;
    }
    return NULL;
}

static TenantShards **tenant_bucket(TenantShards **buckets, size_t n_buckets, const TenantId *t)
{
    return &buckets[hash_tenant(t) & (n_buckets - 1)];
}

const TenantShards *tenant_manager_tenant_shards(const TenantManager *mgr, const TenantId *tenant)
{
    for (TenantShards *e = *tenant_bucket(mgr->by_tenant, mgr->n_buckets, tenant); e != NULL;
         e = e->next) {
        if (tenant_id_eq(&e->tenant_id, tenant))
            return e;
    }
    return NULL;
}

/* grow: double the bucket count and rehash both tables. */
static void grow(TenantManager *mgr)
{
    size_t n = mgr->n_buckets * 2;
    TenantSlot **by_tsid = xcalloc(n, sizeof(*by_tsid));
    TenantShards **by_tenant = xcalloc(n, sizeof(*by_tenant));
    for (size_t i = 0; i < mgr->n_buckets; i++) {
        TenantSlot *s = mgr->by_tsid[i];
        while (s != NULL) {
            TenantSlot *next = s->hash_next;
            TenantSlot **b = &by_tsid[hash_tsid(&s->tsid) & (n - 1)];
            s->hash_next = *b;
            *b = s;
            s = next;
        }
        TenantShards *e = mgr->by_tenant[i];
        while (e != NULL) {
            TenantShards *next = e->next;
            TenantShards **b = tenant_bucket(by_tenant, n, &e->tenant_id);
            e->next = *b;
            *b = e;
            e = next;
        }
    }
    free(mgr->by_tsid);
    free(mgr->by_tenant);
    mgr->by_tsid = by_tsid;
    mgr->by_tenant = by_tenant;
    mgr->n_buckets = n;
}

void tenant_manager_link(TenantManager *mgr, TenantSlot *slot)
{
    if (mgr->n_slots == mgr->cap_slots) {
        mgr->cap_slots = mgr->cap_slots ? mgr->cap_slots * 2 : 16;
        mgr->slots = xrealloc(mgr->slots, mgr->cap_slots * sizeof(*mgr->slots));
    }
    mgr->slots[mgr->n_slots++] = slot;
    if (mgr->n_slots > mgr->n_buckets)
        grow(mgr);
    TenantSlot **b = &mgr->by_tsid[hash_tsid(&slot->tsid) & (mgr->n_buckets - 1)];
    slot->hash_next = *b;
    *b = slot;
    TenantShards *e = (TenantShards *)tenant_manager_tenant_shards(mgr, &slot->tsid.tenant_id);
    if (e == NULL) {
        e = xcalloc(1, sizeof(*e));
        e->tenant_id = slot->tsid.tenant_id;
        TenantShards **tb = tenant_bucket(mgr->by_tenant, mgr->n_buckets, &e->tenant_id);
        e->next = *tb;
        *tb = e;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 4;
        e->slots = xrealloc(e->slots, e->cap * sizeof(*e->slots));
    }
    e->slots[e->n++] = slot;
}

/* remove_ptr: remove p from the array (order kept); true if it was there. */
static bool remove_ptr(TenantSlot **arr, size_t *n, const TenantSlot *p)
{
    for (size_t i = 0; i < *n; i++) {
        if (arr[i] == p) {
            memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(*arr));
            (*n)--;
            return true;
        }
    }
    return false;
}

void tenant_manager_unlink(TenantManager *mgr, TenantSlot *slot)
{
    (void)remove_ptr(mgr->slots, &mgr->n_slots, slot);
    for (TenantSlot **p = &mgr->by_tsid[hash_tsid(&slot->tsid) & (mgr->n_buckets - 1)]; *p != NULL;
         p = &(*p)->hash_next) {
        if (*p == slot) {
            *p = slot->hash_next;
            break;
        }
    }
    slot->hash_next = NULL;
    for (TenantShards **p = tenant_bucket(mgr->by_tenant, mgr->n_buckets, &slot->tsid.tenant_id);
         *p != NULL; p = &(*p)->next) {
        TenantShards *e = *p;
        if (!tenant_id_eq(&e->tenant_id, &slot->tsid.tenant_id))
            continue;
        (void)remove_ptr(e->slots, &e->n, slot);
        if (e->n == 0) {
            *p = e->next;
            free(e->slots);
            free(e);
        }
        break;
    }
}

bool tenant_manager_check_ready(const TenantManager *mgr, Err *err)
{
    if (mgr->stopping) {
        err_set(err, ERR_UNAVAILABLE, "the pageserver is shutting down");
        return false;
    }
    if (!mgr->ready) {
        err_set(err, ERR_UNAVAILABLE,
                "not ready: waiting for the storage controller to answer re-attach");
        return false;
    }
    return true;
}

void tenant_manager_free(TenantManager *mgr)
{
    if (mgr == NULL)
        return;
    while (mgr->n_slots > 0) {
        TenantSlot *slot = mgr->slots[mgr->n_slots - 1];
        tenant_manager_unlink(mgr, slot);
        slot_free(slot);
    }
    free(mgr->slots);
    free(mgr->by_tsid);
    free(mgr->by_tenant);
    fsync_group_destroy(&mgr->tenants_dir_sync);
    free(mgr->pending);
    free(mgr->ignored);
    free(mgr);
}

/* ---- location_config ---- */

/* ---- placeholders and the ignored set ---- */

const char *tenant_manager_pending(const TenantManager *mgr, const TenantShardId *tsid)
{
    for (size_t i = 0; i < mgr->n_pending; i++)
        if (tsid_eq(&mgr->pending[i].tsid, tsid))
            return mgr->pending[i].what;
    return NULL;
}

void tenant_manager_pending_add(TenantManager *mgr, const TenantShardId *tsid, const char *what)
{
    if (mgr->n_pending == mgr->cap_pending) {
        mgr->cap_pending = mgr->cap_pending ? mgr->cap_pending * 2 : 4;
        mgr->pending = xrealloc(mgr->pending, mgr->cap_pending * sizeof(*mgr->pending));
    }
    mgr->pending[mgr->n_pending++] = (TenantPlaceholder){*tsid, what};
}

void tenant_manager_pending_remove(TenantManager *mgr, const TenantShardId *tsid)
{
    for (size_t i = 0; i < mgr->n_pending; i++) {
        if (tsid_eq(&mgr->pending[i].tsid, tsid)) {
            mgr->pending[i] = mgr->pending[--mgr->n_pending];
            return;
        }
    }
}

bool tenant_manager_busy_err(const TenantManager *mgr, const TenantShardId *tsid, bool conflict,
                             Err *err)
{
    ErrCode code = conflict ? ERR_CONFLICT : ERR_UNAVAILABLE;
    const TenantSlot *slot = tenant_manager_find(mgr, tsid);
    if (slot != NULL && slot->change != NULL) {
        err_set(err, code, "tenant shard %s is being changed (%s); retry", slot->tsid_str,
                slot_state_name(slot->state));
        return true;
    }
    const char *what = slot == NULL ? tenant_manager_pending(mgr, tsid) : NULL;
    if (what != NULL) {
        char id[TSID_STR_SIZE];
        tsid_format(tsid, id);
        err_set(err, code, "tenant shard %s: %s; retry", id, what);
        return true;
    }
    return false;
}

bool tenant_manager_is_ignored(const TenantManager *mgr, const TenantShardId *tsid)
{
    for (size_t i = 0; i < mgr->n_ignored; i++)
        if (tsid_eq(&mgr->ignored[i], tsid))
            return true;
    return false;
}

void tenant_manager_set_ignored(TenantManager *mgr, const TenantShardId *tsid, bool ignored)
{
    for (size_t i = 0; i < mgr->n_ignored; i++) {
        if (tsid_eq(&mgr->ignored[i], tsid)) {
            if (!ignored)
                mgr->ignored[i] = mgr->ignored[--mgr->n_ignored];
            return;
        }
    }
    if (!ignored)
        return;
    if (mgr->n_ignored == mgr->cap_ignored) {
        mgr->cap_ignored = mgr->cap_ignored ? mgr->cap_ignored * 2 : 4;
        mgr->ignored = xrealloc(mgr->ignored, mgr->cap_ignored * sizeof(*mgr->ignored));
    }
    mgr->ignored[mgr->n_ignored++] = *tsid;
}

/* ---- location_config ---- */

typedef struct AbsentDetach {
    TenantManager *mgr;
    TenantShardId tsid;
    PageserverJsonFn cb;
    void *arg;
} AbsentDetach;

static void after_absent_detach(const Err *err, void *arg)
{
    AbsentDetach *a = arg;
    tenant_manager_pending_remove(a->mgr, &a->tsid);
    if (err == NULL)
        tenant_manager_set_ignored(a->mgr, &a->tsid, false); /* the marker went with the dir */
    a->cb(err, err == NULL ? slot_detach_result() : NULL, a->arg);
    free(a);
}

void tenant_manager_remove_absent(TenantManager *mgr, const TenantShardId *tsid,
                                  PageserverJsonFn cb, void *arg)
{
    AbsentDetach *a = xcalloc(1, sizeof(*a));
    a->mgr = mgr;
    a->tsid = *tsid;
    a->cb = cb;
    a->arg = arg;
    tenant_manager_pending_add(mgr, tsid, "its local directory is being removed");
    char tsid_str[TSID_STR_SIZE];
    tsid_format(tsid, tsid_str);
    char dir[PATH_MAX];
    str_printf(dir, sizeof(dir), "%s/%s/%s", mgr->app->cfg.workdir, PAGESERVER_TENANTS_DIR,
               tsid_str);
    slot_remove_local_dir(mgr->app, dir, after_absent_detach, a);
}

void tenant_location_config_put(TenantManager *mgr, const TenantShardId *tsid, LocationConfig *cfg,
                                long flush_ms, bool lazy, PageserverJsonFn cb, void *arg)
{
    Err err = {0};
    if (!tenant_manager_check_ready(mgr, &err)) {
        location_config_finish(cfg);
        pageserver_defer_json(mgr->app, cb, arg, &err, NULL);
        return;
    }
    TenantSlot *slot = tenant_manager_find(mgr, tsid);
    if (tenant_manager_busy_err(mgr, tsid, true, &err)) {
        location_config_finish(cfg);
        pageserver_defer_json(mgr->app, cb, arg, &err, NULL);
        return;
    }
    if (slot == NULL && cfg->mode != LOCATION_MODE_DETACHED &&
        tenant_manager_is_ignored(mgr, tsid)) {
        char id[TSID_STR_SIZE];
        tsid_format(tsid, id);
        err_set(&err, ERR_CONFLICT,
                "tenant shard %s is ignored on this pageserver: load it, or detach it with "
                "detach_ignored=true, first",
                id);
        location_config_finish(cfg);
        pageserver_defer_json(mgr->app, cb, arg, &err, NULL);
        return;
    }
    LocationChange change = location_config_classify_change(
        slot != NULL && slot->has_config ? &slot->config : NULL, cfg);
    if (slot != NULL && change == LOCATION_CHANGE_NEW)
        change = LOCATION_CHANGE_RESTART;
    if (slot != NULL && slot->state == SLOT_BROKEN &&
        (change == LOCATION_CHANGE_SAME_GENERATION_SWAP ||
         change == LOCATION_CHANGE_SECONDARY_UPDATE))
        change = LOCATION_CHANGE_RESTART; /* a repeated PUT retries a failed attach */
    char tsid_str[TSID_STR_SIZE];
    tsid_format(tsid, tsid_str);
    log_info("location_config %s: %s %s gen %" PRId64 " (%s)", tsid_str,
             location_config_mode_name(cfg->mode), slot ? slot_state_name(slot->state) : "absent",
             cfg->generation, location_change_name(change));
    switch (change) {
    case LOCATION_CHANGE_DETACH:
        if (slot == NULL) {
            /* idempotent; still remove leftovers of a shard this node no longer knows (or an
             * ignored shard's files) */
            tenant_manager_remove_absent(mgr, tsid, cb, arg);
        } else {
            slot_change_remove(slot, false, cb, arg);
        }
        break;
    case LOCATION_CHANGE_LOWER_GENERATION:
        err_set(&err, ERR_BAD_REQUEST,
                "generation %" PRId64 " is lower than the attached generation %" PRId64
                " of tenant shard %s",
                cfg->generation, slot->config.generation, tsid_str);
        pageserver_defer_json(mgr->app, cb, arg, &err, NULL);
        break;
    case LOCATION_CHANGE_SAME_GENERATION_SWAP:
    case LOCATION_CHANGE_SECONDARY_UPDATE:
        slot_change_swap(slot, cfg, flush_ms, cb, arg);
        break;
    case LOCATION_CHANGE_NEW:
        slot = slot_new(mgr, tsid);
        slot_change_upsert(slot, cfg, flush_ms, lazy, cb, arg);
        break;
    case LOCATION_CHANGE_RESTART:
        slot_change_upsert(slot, cfg, flush_ms, lazy, cb, arg);
        break;
    case LOCATION_CHANGE_COUNT:
        break;
    }
    location_config_finish(cfg);
}

bool tenant_location_config_list(const TenantManager *mgr, json_t **out, Err *err)
{
    if (!tenant_manager_check_ready(mgr, err))
        return false;
    json_t *arr = json_array();
    for (size_t i = 0; i < mgr->n_slots; i++) {
        const TenantSlot *slot = mgr->slots[i];
        json_t *cfg = slot->has_config ? location_config_to_json(&slot->config) : json_null();
        json_array_append_new(arr, json_pack("[o,o]", json_from_tsid(&slot->tsid), cfg));
    }
    *out = json_pack("{s:o}", "tenant_shards", arr);
    return true;
}

/* configured_slot: ready, and tsid has a location here (404 otherwise). */
static const TenantSlot *configured_slot(const TenantManager *mgr, const TenantShardId *tsid,
                                         Err *err)
{
    if (!tenant_manager_check_ready(mgr, err))
        return NULL;
    const TenantSlot *slot = tenant_manager_find(mgr, tsid);
    if (slot == NULL || !slot->has_config) {
        char s[TSID_STR_SIZE];
        tsid_format(tsid, s);
        err_set(err, ERR_NOT_FOUND, "tenant shard %s has no location here", s);
        return NULL;
    }
    return slot;
}

bool tenant_location_config_get(const TenantManager *mgr, const TenantShardId *tsid, json_t **out,
                                Err *err)
{
    const TenantSlot *slot = configured_slot(mgr, tsid, err);
    if (slot == NULL)
        return false;
    *out = location_config_to_json(&slot->config);
    return true;
}

bool tenant_config_get(const TenantManager *mgr, const TenantShardId *tsid, json_t **out, Err *err)
{
    const TenantSlot *slot = configured_slot(mgr, tsid, err);
    if (slot == NULL)
        return false;
    const TenantConfig *tc = &slot->config.tenant_conf;
    *out = json_pack("{s:o,s:o}", "tenant_specific_overrides", tenant_config_to_json(tc),
                     "effective_config", tenant_config_effective_json(tc));
    return true;
}

bool tenant_manager_readable_slot(const TenantManager *mgr, const TenantShardId *tsid,
                                  TenantSlot **out, Err *err)
{
    if (!tenant_manager_check_ready(mgr, err))
        return false;
    *out = tenant_manager_find(mgr, tsid);
    return slot_check_readable(*out, err);
}

bool tenant_manager_shard_for_key(const TenantManager *mgr, const TenantId *tenant, const Key *key,
                                  TenantShardId *out, Err *err)
{
    if (!tenant_manager_check_ready(mgr, err))
        return false;
    char id[ID_STR_SIZE];
    tenant_id_format(tenant, id);
    const TenantShards *e = tenant_manager_tenant_shards(mgr, tenant);
    const TenantSlot *best = NULL, *any = NULL;
    for (size_t i = 0; e != NULL && i < e->n; i++) {
        const TenantSlot *s = e->slots[i];
        if (s->state != SLOT_ACTIVE)
            continue;
        if (any == NULL || s->shard.count > any->shard.count)
            any = s;
        if (key_to_shard_number(s->shard.count, s->shard.stripe_size, key) == s->shard.number &&
            (best == NULL || s->shard.count > best->shard.count))
            best = s;
    }
    if (best != NULL) {
        *out = best->tsid;
        return true;
    }
    if (any == NULL) {
        err_set(err, ERR_NOT_FOUND, "tenant %s has no attached shard on this pageserver", id);
        return false;
    }
    char k[KEY_STR_SIZE];
    key_format(key, k);
    err_set(err, ERR_NOT_FOUND,
            "key %s of tenant %s belongs to shard number %u (of %u), which is not attached here", k,
            id, (unsigned)key_to_shard_number(any->shard.count, any->shard.stripe_size, key),
            (unsigned)any->shard.count);
    return false;
}

/* ---- tenant info ---- */

static json_t *tenant_state_json(const TenantSlot *slot)
{
    const char *slug;
    switch (slot->state) {
    case SLOT_ACTIVE:
        slug = "Active";
        break;
    case SLOT_BROKEN:
        return json_pack("{s:s,s:{s:s,s:s}}", "slug", "Broken", "data", "reason",
                         slot->broken_reason, "backtrace", "");
    case SLOT_STOPPING:
    case SLOT_REMOVING:
    case SLOT_GONE:
        slug = "Stopping";
        break;
    default:
        slug = "Attaching";
        break;
    }
    return json_pack("{s:s}", "slug", slug);
}

static json_t *attachment_status_json(const TenantSlot *slot)
{
    if (slot->state == SLOT_ACTIVE)
        return json_pack("{s:s}", "slug", "attached");
    if (slot->state == SLOT_BROKEN)
        return json_pack("{s:s,s:{s:s}}", "slug", "failed", "data", "reason", slot->broken_reason);
    return json_pack("{s:s}", "slug", "maybe");
}

static json_t *tenant_info_json(const TenantSlot *slot, bool details)
{
    uint64_t size = 0;
    for (size_t i = 0; i < slot->n_timelines; i++)
        size += timeline_physical_size(slot->timelines[i]);
    json_t *o = json_pack(
        "{s:o,s:o,s:o,s:o,s:I}", "id", json_from_tsid(&slot->tsid), "state",
        tenant_state_json(slot), "attachment_status", attachment_status_json(slot), "generation",
        json_from_generation(slot_generation(slot)), "current_physical_size", (json_int_t)size);
    if (details) {
        json_t *tls = json_array();
        for (size_t i = 0; i < slot->n_timelines; i++) {
            if (timeline_is_served(slot->timelines[i]))
                json_array_append_new(tls, json_from_timeline_id(&slot->timelines[i]->id));
        }
        json_object_set_new(o, "timelines", tls);
    }
    return o;
}

static bool slot_listed(const TenantSlot *slot)
{
    return slot->state != SLOT_SECONDARY && slot->state != SLOT_GONE && slot->has_config &&
           location_config_is_attached(&slot->config);
}

bool tenant_list(const TenantManager *mgr, json_t **out, Err *err)
{
    if (!tenant_manager_check_ready(mgr, err))
        return false;
    json_t *arr = json_array();
    for (size_t i = 0; i < mgr->n_slots; i++) {
        const TenantSlot *slot = mgr->slots[i];
        if (slot_listed(slot))
            json_array_append_new(arr, tenant_info_json(slot, false));
    }
    *out = arr;
    return true;
}

bool tenant_get(const TenantManager *mgr, const TenantShardId *tsid, json_t **out, Err *err)
{
    if (!tenant_manager_check_ready(mgr, err))
        return false;
    const TenantSlot *slot = tenant_manager_find(mgr, tsid);
    if (slot == NULL || !slot_listed(slot)) {
        char s[TSID_STR_SIZE];
        tsid_format(tsid, s);
        err_set(err, ERR_NOT_FOUND, "tenant shard %s is not attached here%s", s,
                slot != NULL && slot->state == SLOT_SECONDARY ? " (it is a secondary location)"
                                                              : "");
        return false;
    }
    *out = tenant_info_json(slot, true);
    return true;
}

/* ---- tenant delete ---- */

typedef struct TenantDeleteOp {
    TenantManager *mgr;
    PageserverDoneFn cb;
    void *arg;
    TenantShardId tsid;
    int pending; /* slots still being removed */
    bool failed;
    Err err;
    /* remote job */
    RemoteStorage *rs;
    char prefix[REMOTE_KEY_SIZE];
    bool all_shards;
    size_t deleted;
    bool ok;
} TenantDeleteOp;

static void tenant_delete_remote_work(WorkerJob *job, void *arg)
{
    TenantDeleteOp *op = arg;
    RemoteListing l = {0};
    op->ok = failpoint_check("tenant-delete-remote", &op->err) &&
             remote_list(op->rs, op->prefix, &l, &op->err);
    size_t plen = strlen(op->prefix);
    const char **batch = xcalloc(REMOTE_DELETE_MAX_KEYS, sizeof(char *));
    size_t n = 0;
    for (size_t i = 0; op->ok && i <= l.n; i++) {
        if (i < l.n) {
            const char *key = l.items[i].key;
            if (op->all_shards && key[plen] != '/' && key[plen] != '-')
                continue;
            batch[n++] = key;
        }
        if (n == REMOTE_DELETE_MAX_KEYS || (i == l.n && n > 0)) {
            op->ok = remote_delete_many(op->rs, batch, n, NULL, NULL, &op->err);
            if (op->ok)
                op->deleted += n;
            n = 0;
        }
    }
    free(batch);
    remote_listing_free(&l);
    if (op->ok && !op->all_shards)
        op->ok = remote_delete_prefix(op->rs, op->prefix, &op->err);
}

static void tenant_delete_remote_done(void *arg, WorkerOutcome outcome)
{
    TenantDeleteOp *op = arg;
    if (!worker_outcome_err(outcome, "tenant delete", &op->err))
        op->ok = false;
    char tsid[TSID_STR_SIZE];
    tsid_format(&op->tsid, tsid);
    if (op->ok) {
        log_info("tenant %s deleted: %zu remote objects under %s", tsid, op->deleted, op->prefix);
        op->cb(NULL, op->arg);
    } else {
        err_prefix(&op->err, "deleting remote data of %s: ", tsid);
        op->cb(&op->err, op->arg);
    }
    free(op);
}

static void tenant_delete_local_done(TenantDeleteOp *op)
{
    if (op->pending > 0)
        return;
    if (op->failed) {
        op->cb(&op->err, op->arg);
        free(op);
        return;
    }
    tenant_manager_set_ignored(op->mgr, &op->tsid, false); /* its directory is gone */
    op->rs = op->mgr->app->remote;
    op->all_shards = op->tsid.count == 0;
    if (op->all_shards)
        remote_layout_tenant_all_shards_prefix(&op->tsid.tenant_id, op->prefix);
    else
        remote_layout_tenant_shard_prefix(&op->tsid, op->prefix);
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO,
                          .deadline_ms = PAGESERVER_TENANT_DELETE_DEADLINE_MS};
    worker_pool_start(op->mgr->app->workers, &spec, tenant_delete_remote_work,
                      tenant_delete_remote_done, op);
}

static void on_local_removed(const Err *err, void *arg)
{
    TenantDeleteOp *op = arg;
    if (err != NULL && !op->failed) {
        op->failed = true;
        op->err = *err;
    }
    op->pending--;
    tenant_delete_local_done(op);
}

static void on_slot_deleted(const Err *err, json_t *result, void *arg)
{
    json_decref(result);
    on_local_removed(err, arg);
}

/* tenant_delete_targets: the slots a delete or config change of tenant (tsid NULL: every shard)
 * concerns, into a new array; *n their count. */
static TenantSlot **tenant_targets(const TenantManager *mgr, const TenantId *tenant,
                                   const TenantShardId *tsid, size_t *n)
{
    *n = 0;
    const TenantShards *e = tenant_manager_tenant_shards(mgr, tenant);
    TenantSlot **out = xcalloc(e != NULL && e->n > 0 ? e->n : 1, sizeof(*out));
    for (size_t i = 0; e != NULL && i < e->n; i++) {
        if (tsid == NULL || tsid_eq(&e->slots[i]->tsid, tsid))
            out[(*n)++] = e->slots[i];
    }
    return out;
}

void tenant_delete(TenantManager *mgr, const TenantShardId *tsid, PageserverDoneFn cb, void *arg)
{
    Err err = {0};
    if (!tenant_manager_check_ready(mgr, &err)) {
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    if (tenant_manager_find(mgr, tsid) == NULL && tenant_manager_busy_err(mgr, tsid, false, &err)) {
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    size_t n = 0;
    TenantSlot **targets =
        tenant_targets(mgr, &tsid->tenant_id, tsid->count == 0 ? NULL : tsid, &n);
    for (size_t i = 0; i < n; i++) {
        TenantSlot *s = targets[i];
        if (s->change != NULL) {
            err_set(&err, ERR_UNAVAILABLE, "tenant shard %s is being changed (%s); retry",
                    s->tsid_str, slot_state_name(s->state));
            free(targets);
            pageserver_defer_done(mgr->app, cb, arg, &err);
            return;
        }
    }
    bool exact_slot = false;
    for (size_t i = 0; i < n; i++)
        exact_slot = exact_slot || tsid_eq(&targets[i]->tsid, tsid);
    TenantDeleteOp *op = xcalloc(1, sizeof(*op));
    op->mgr = mgr;
    op->cb = cb;
    op->arg = arg;
    op->tsid = *tsid;
    op->pending = (int)n + 1;
    for (size_t i = 0; i < n; i++)
        slot_change_remove(targets[i], true, on_slot_deleted, op);
    free(targets);
    /* the exact id's directory may exist without a slot (leftovers): remove it too. With a slot
     * of that id, the slot's own removal does it once its jobs have ended; removing it here too
     * would race with them. */
    if (exact_slot) {
        op->pending--; /* n > 0: the slots' removals answer later */
        return;
    }
    char dir[PATH_MAX];
    char tsid_str[TSID_STR_SIZE];
    tsid_format(tsid, tsid_str);
    str_printf(dir, sizeof(dir), "%s/%s/%s", mgr->app->cfg.workdir, PAGESERVER_TENANTS_DIR,
               tsid_str);
    slot_remove_local_dir(mgr->app, dir, on_local_removed, op);
}

/* ---- tenant config ---- */

typedef struct ConfigOp {
    PageserverDoneFn cb;
    void *arg;
    int pending;
    bool failed;
    Err err;
} ConfigOp;

static void on_config_swapped(const Err *err, json_t *result, void *arg)
{
    ConfigOp *op = arg;
    json_decref(result);
    if (err != NULL && !op->failed) {
        op->failed = true;
        op->err = *err;
    }
    if (--op->pending > 0)
        return;
    op->cb(op->failed ? &op->err : NULL, op->arg);
    free(op);
}

void tenant_config_set(TenantManager *mgr, const TenantConfigRequest *r, bool patch,
                       PageserverDoneFn cb, void *arg)
{
    Err err = {0};
    if (!tenant_manager_check_ready(mgr, &err)) {
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    size_t n_all = 0, n = 0;
    TenantSlot **targets = tenant_targets(mgr, &r->tenant_id, NULL, &n_all);
    for (size_t i = 0; i < n_all; i++) {
        TenantSlot *s = targets[i];
        if (!s->has_config)
            continue;
        if (s->change != NULL) {
            err_set(&err, ERR_CONFLICT, "tenant shard %s is being changed (%s); retry", s->tsid_str,
                    slot_state_name(s->state));
            free(targets);
            pageserver_defer_done(mgr->app, cb, arg, &err);
            return;
        }
        targets[n++] = s;
    }
    if (n == 0) {
        char id[ID_STR_SIZE];
        tenant_id_format(&r->tenant_id, id);
        err_set(&err, ERR_NOT_FOUND, "tenant %s not found on this pageserver", id);
        free(targets);
        pageserver_defer_done(mgr->app, cb, arg, &err);
        return;
    }
    ConfigOp *op = xcalloc(1, sizeof(*op));
    op->cb = cb;
    op->arg = arg;
    op->pending = (int)n;
    for (size_t i = 0; i < n; i++) {
        TenantSlot *s = targets[i];
        TenantConfig conf;
        if (patch) {
            conf = s->config.tenant_conf;
        } else {
            tenant_config_init(&conf);
        }
        tenant_config_apply_patch(&conf, &r->config);
        LocationConfig cfg;
        location_config_init(&cfg);
        location_config_copy(&cfg, &s->config);
        location_config_set_tenant_conf(&cfg, &conf);
        slot_change_swap(s, &cfg, -1, on_config_swapped, op);
        location_config_finish(&cfg);
    }
    free(targets);
}

/* ---- visible LSN ---- */

void tenant_manager_on_visible_lsn(void *arg, const TenantShardId *tsid, const TimelineId *tl,
                                   Lsn lsn)
{
    TenantManager *mgr = arg;
    TenantSlot *slot = tenant_manager_find(mgr, tsid);
    Timeline *t = slot != NULL ? slot_find_timeline(slot, tl) : NULL;
    if (t != NULL && lsn > t->remote_consistent_lsn_visible && lsn <= t->remote_consistent_lsn)
        t->remote_consistent_lsn_visible = lsn;
}

/* ---- startup ---- */

/* Temporary files ("<name>.tmp.<n>.<n>") a crash left behind are hidden from listings but take
 * space: at startup a worker removes those older than this (a live writer, e.g. another
 * pageserver putting into the same file remote storage, finishes well within it). */
#define TEMP_FILE_GRACE_S 600

typedef struct TempSweepJob {
    PageserverApp *app;
    char roots[2][PATH_MAX]; /* the tenants directory; the file remote storage root or "" */
    uint64_t removed;
    bool ok;
    Err err;
} TempSweepJob;

static void temp_sweep_work(WorkerJob *job, void *arg)
{
    (void)job;
    TempSweepJob *j = arg;
    j->ok = true;
    for (size_t i = 0; i < 2 && j->ok; i++) {
        if (j->roots[i][0] != '\0')
            j->ok = remote_fs_sweep_temps(j->roots[i], TEMP_FILE_GRACE_S, &j->removed, &j->err);
    }
}

static void temp_sweep_done(void *arg, WorkerOutcome outcome)
{
    TempSweepJob *j = arg;
    if (!worker_outcome_err(outcome, "the temporary file sweep", &j->err))
        j->ok = false;
    metric_counter_add(j->app->m.temp_files_removed, j->removed);
    if (!j->ok)
        log_err(&j->err, "startup temporary file cleanup stopped");
    if (j->removed > 0)
        log_info("removed %" PRIu64 " temporary files left by a crash (older than %d s)",
                 j->removed, TEMP_FILE_GRACE_S);
    free(j);
}

/* start_temp_sweep: one worker job over the tenants directory and a file remote storage. */
static void start_temp_sweep(TenantManager *mgr, const char *tenants_dir)
{
    PageserverApp *app = mgr->app;
    TempSweepJob *j = xcalloc(1, sizeof(*j));
    j->app = app;
    str_copy(j->roots[0], sizeof(j->roots[0]), tenants_dir);
    RemoteStorageUrl url;
    Err e = {0};
    if (app->remote != NULL &&
        remote_storage_url_parse(remote_storage_url(app->remote), &url, &e) &&
        url.kind == REMOTE_STORAGE_LOCAL_FS)
        str_copy(j->roots[1], sizeof(j->roots[1]), url.path);
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO};
    worker_pool_start(app->workers, &spec, temp_sweep_work, temp_sweep_done, j);
}

bool tenant_local_config_read(const char *tenant_dir, const TenantShardId *tsid,
                              LocationConfig *out, Err *err)
{
    location_config_init(out);
    char path[PATH_MAX];
    str_printf(path, sizeof(path), "%s/%s", tenant_dir, PAGESERVER_TENANT_CONFIG_FILE);
    if (!fs_exists(path)) {
        char id[TSID_STR_SIZE];
        tsid_format(tsid, id);
        err_set(err, ERR_NOT_FOUND, "tenant shard %s has no local location config (%s)", id, path);
        return false;
    }
    char *text = NULL;
    size_t len = 0;
    json_t *json = NULL;
    bool ok = fs_read_file(path, PAGESERVER_LOCATION_CONFIG_MAX_BYTES, &text, &len, err) &&
              json_parse_text(text, len, &json, err) && location_config_decode(json, out, err) &&
              location_config_check_tsid(out, tsid, err);
    if (!ok) {
        location_config_finish(out);
        err->code = ERR_INTERNAL;
        err_prefix(err, "%s: ", path);
    }
    json_decref(json);
    free(text);
    return ok;
}

bool tenant_manager_load_local(TenantManager *mgr, Err *err)
{
    char dir[PATH_MAX];
    str_printf(dir, sizeof(dir), "%s/%s", mgr->app->cfg.workdir, PAGESERVER_TENANTS_DIR);
    DIR *d = opendir(dir);
    if (d == NULL) {
        err_set(err, ERR_INTERNAL, "cannot open %s: %m", dir);
        return false;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        TenantShardId tsid;
        Err e = {0};
        if (!tsid_parse(de->d_name, &tsid, &e)) {
            log_warn("%s/%s: not a tenant shard id; ignored", dir, de->d_name);
            continue;
        }
        char marker[PATH_MAX];
        str_printf(marker, sizeof(marker), "%s/%s/%s", dir, de->d_name,
                   PAGESERVER_TENANT_IGNORED_FILE);
        if (fs_exists(marker)) {
            /* neither loaded nor removed (whatever re-attach says) until load or detach */
            log_info("tenant shard %s is ignored (%s): not loaded", de->d_name, marker);
            tenant_manager_set_ignored(mgr, &tsid, true);
            continue;
        }
        TenantSlot *slot = slot_new(mgr, &tsid);
        LocationConfig cfg;
        if (!tenant_local_config_read(slot->dir, &tsid, &cfg, &e)) {
            log_err(&e, "local location config unusable (the shard counts as unknown)");
        } else {
            slot_apply_config(slot, &cfg);
            location_config_finish(&cfg);
        }
    }
    closedir(d);
    log_info("%zu tenant shards found in the work directory (%zu ignored)", mgr->n_slots,
             mgr->n_ignored);
    start_temp_sweep(mgr, dir);
    return true;
}

static void on_startup_change_done(const Err *err, json_t *result, void *arg)
{
    json_decref(result);
    if (err != NULL)
        log_err(err, "startup: applying the re-attach answer");
}

static void startup_remove(TenantSlot *slot)
{
    log_info("tenant shard %s: not attached here any more; removing local data", slot->tsid_str);
    slot_change_remove(slot, false, on_startup_change_done, NULL);
}

static void startup_upsert(TenantSlot *slot, const LocationConfig *cfg)
{
    slot_change_upsert(slot, cfg, -1, false, on_startup_change_done, NULL);
}

static void on_reattach(void *arg, const ReattachTenant *ts, size_t n)
{
    TenantManager *mgr = arg;
    if (mgr->stopping)
        return;
    size_t n_local = mgr->n_slots;
    TenantSlot **local = xcalloc(n_local ? n_local : 1, sizeof(*local));
    if (n_local > 0)
        memcpy(local, mgr->slots, n_local * sizeof(*local));
    for (size_t i = 0; i < n_local; i++) {
        TenantSlot *slot = local[i];
        const ReattachTenant *r = NULL;
        for (size_t k = 0; k < n && r == NULL; k++) {
            if (tsid_eq(&ts[k].tsid, &slot->tsid))
                r = &ts[k];
        }
        if (r == NULL || r->mode == LOCATION_MODE_DETACHED) {
            startup_remove(slot);
            continue;
        }
        LocationConfig cfg;
        location_config_init(&cfg);
        if (slot->has_config) {
            location_config_copy(&cfg, &slot->config);
        } else {
            TenantConfig empty;
            tenant_config_init(&empty);
            cfg.shard_number = slot->tsid.number;
            cfg.shard_count = slot->tsid.count;
            location_config_set_tenant_conf(&cfg, &empty);
        }
        if (r->has_stripe_size && cfg.shard_count > 0)
            cfg.shard_stripe_size = r->stripe_size;
        if (cfg.shard_count > 0 && cfg.shard_stripe_size == 0)
            cfg.shard_stripe_size = STRIPE_SIZE_LEGACY;
        bool demote = r->mode != LOCATION_MODE_SECONDARY && slot->has_config &&
                      location_config_is_attached(&slot->config) &&
                      slot->config.generation > r->gen;
        if (r->mode == LOCATION_MODE_SECONDARY || demote) {
            if (demote)
                log_warn("tenant shard %s: re-attach generation %" PRId64
                         " is lower than the local %" PRId64 "; demoting to secondary",
                         slot->tsid_str, r->gen, slot->config.generation);
            bool warm = slot->has_config && slot->config.mode == LOCATION_MODE_SECONDARY &&
                        slot->config.secondary_warm;
            cfg.mode = LOCATION_MODE_SECONDARY;
            cfg.generation = GENERATION_NONE;
            cfg.has_secondary_conf = true;
            cfg.secondary_warm = warm;
        } else {
            cfg.mode = LOCATION_MODE_ATTACHED_SINGLE;
            cfg.generation = r->gen;
            cfg.has_secondary_conf = false;
            cfg.secondary_warm = false;
        }
        startup_upsert(slot, &cfg);
        location_config_finish(&cfg);
    }
    for (size_t k = 0; k < n; k++) {
        const ReattachTenant *r = &ts[k];
        if (r->mode == LOCATION_MODE_DETACHED || tenant_manager_find(mgr, &r->tsid) != NULL)
            continue;
        if (tenant_manager_is_ignored(mgr, &r->tsid)) {
            char id[TSID_STR_SIZE];
            tsid_format(&r->tsid, id);
            log_info("tenant shard %s: in the re-attach answer but ignored here; left ignored", id);
            continue;
        }
        TenantSlot *slot = slot_new(mgr, &r->tsid);
        LocationConfig cfg;
        location_config_init(&cfg);
        TenantConfig empty;
        tenant_config_init(&empty);
        location_config_set_tenant_conf(&cfg, &empty);
        cfg.shard_number = r->tsid.number;
        cfg.shard_count = r->tsid.count;
        if (cfg.shard_count > 0)
            cfg.shard_stripe_size = r->has_stripe_size ? r->stripe_size : STRIPE_SIZE_LEGACY;
        if (r->mode == LOCATION_MODE_SECONDARY) {
            cfg.mode = LOCATION_MODE_SECONDARY;
            cfg.has_secondary_conf = true;
        } else {
            cfg.mode = LOCATION_MODE_ATTACHED_SINGLE;
            cfg.generation = r->gen;
        }
        log_info("tenant shard %s: in the re-attach answer but not local; creating it",
                 slot->tsid_str);
        startup_upsert(slot, &cfg);
        location_config_finish(&cfg);
    }
    free(local);
    mgr->ready = true;
    log_info("re-attach applied: %zu tenant shards; tenant routes are open", mgr->n_slots);
}

void tenant_manager_start(TenantManager *mgr)
{
    PageserverApp *app = mgr->app;
    if (app->cfg.control_plane_api[0] != '\0') {
        storcon_reattach_start(app->storcon, on_reattach, mgr);
        return;
    }
    /* development mode: the persisted configs are the truth */
    size_t n = mgr->n_slots;
    TenantSlot **local = xcalloc(n ? n : 1, sizeof(*local));
    if (n > 0)
        memcpy(local, mgr->slots, n * sizeof(*local));
    for (size_t i = 0; i < n; i++) {
        TenantSlot *slot = local[i];
        if (!slot->has_config) {
            startup_remove(slot);
        } else if (location_config_is_attached(&slot->config)) {
            slot_start_attach(slot);
        } else {
            (void)slot_set_state(slot, SLOT_SECONDARY);
        }
    }
    free(local);
    mgr->ready = true;
}

void tenant_manager_stop(TenantManager *mgr)
{
    mgr->stopping = true;
    for (size_t i = 0; i < mgr->n_slots; i++) {
        TenantSlot *slot = mgr->slots[i];
        for (size_t k = 0; k < slot->n_timelines; k++)
            timeline_uploads_drop(slot->timelines[k]);
    }
}
