/*
 * shard_split.c: the pageserver's shard split (shard_split.h, docs/split.md).
 */
#include "pageserver/shard_split.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "shared/failpoint.h"
#include "shared/fsutil.h"
#include "shared/key.h"
#include "shared/log.h"
#include "shared/str.h"
#include "shared/worker_pool.h"

#include "pageserver/defaults.h"
#include "pageserver/index_part.h"
#include "pageserver/layer_map.h"
#include "pageserver/remote_layout.h"
#include "pageserver/slot.h"
#include "pageserver/tenant.h"
#include "pageserver/timeline.h"

#define SPLIT_PLACEHOLDER "a shard split is creating it"

typedef struct SplitTimeline {
    TimelineId id;
    char parent_dir[PATH_MAX]; /* the parent's local timeline directory */
    IndexPart *index;          /* a copy of the parent's index (idle queue: = the remote one) */
} SplitTimeline;

typedef struct SplitChild {
    TenantShardId tsid;
    char dir[PATH_MAX]; /* <workdir>/tenants/<child> */
    bool placeholder;   /* a placeholder was added for it (no slot at the start) */
} SplitChild;

typedef struct ShardSplit {
    TenantManager *mgr;
    TenantShardId parent;
    uint64_t incarnation; /* of the parent slot at the start */
    Generation gen;
    ShardCount new_count;
    uint32_t stripe;
    LocationConfig parent_cfg; /* the children's template */
    RemoteStorage *rs;
    SplitTimeline *tls;
    size_t n_tls;
    SplitChild children[SHARD_SPLIT_MAX_CHILDREN];
    size_t n_children;
    size_t answered; /* child attaches answered */
    bool ok;
    Err err;
    PageserverJsonFn cb;
    void *arg;
} ShardSplit;

static void split_free(ShardSplit *s)
{
    for (size_t i = 0; i < s->n_tls; i++)
        index_part_free(s->tls[i].index);
    free(s->tls);
    location_config_finish(&s->parent_cfg);
    free(s);
}

static json_t *children_json(const ShardSplit *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < s->n_children; i++) {
        char id[TSID_STR_SIZE];
        tsid_format(&s->children[i].tsid, id);
        json_array_append_new(arr, json_string(id));
    }
    json_t *out = json_object();
    json_object_set_new(out, "new_shards", arr);
    return out;
}

/* split_finish: answer the caller (err NULL: the children) and free the split. */
static void split_finish(ShardSplit *s, const Err *err)
{
    char id[TSID_STR_SIZE];
    tsid_format(&s->parent, id);
    if (err != NULL) {
        log_warn("shard split of %s into %u shards failed: %s", id, (unsigned)s->new_count,
                 err->msg);
        s->cb(err, NULL, s->arg);
    } else {
        log_info("shard split of %s into %u shards done (%zu children)", id, (unsigned)s->new_count,
                 s->n_children);
        s->cb(NULL, children_json(s), s->arg);
    }
    split_free(s);
}

/* ---- step 2: children's files and indexes (worker) ---- */

/* link_layers: hard-link the parent's local layer files of one timeline into dst_dir (missing
 * sources are fine: they are downloaded on demand; an existing destination is from an earlier
 * attempt and is checked by the attach). */
static bool link_layers(const SplitTimeline *t, const char *dst_dir, Err *err)
{
    if (!fs_mkdir_p(dst_dir, 0755, err))
        return false;
    for (size_t i = 0; i < t->index->n_layers; i++) {
        const IndexLayer *l = &t->index->layers[i];
        char local[LAYER_NAME_SIZE + GENERATION_SUFFIX_SIZE];
        char src[PATH_MAX], dst[PATH_MAX];
        layer_obj_local_name(l->name, l->generation, local, sizeof(local));
        if (!str_printf(src, sizeof(src), "%s/%s", t->parent_dir, local) ||
            !str_printf(dst, sizeof(dst), "%s/%s", dst_dir, local)) {
            err_set(err, ERR_INTERNAL, "shard split: layer path too long");
            return false;
        }
        if (link(src, dst) != 0 && errno != ENOENT && errno != EEXIST) {
            err_set(err, ERR_INTERNAL, "shard split: link %s -> %s: %s", src, dst, strerror(errno));
            return false;
        }
    }
    return true;
}

static void children_work(WorkerJob *job, void *arg)
{
    ShardSplit *s = arg;
    s->ok = failpoint_check("shard-split-before-children", &s->err);
    for (size_t c = 0; s->ok && c < s->n_children; c++) {
        const SplitChild *ch = &s->children[c];
        for (size_t t = 0; s->ok && t < s->n_tls; t++) {
            if (worker_job_cancelled(job)) {
                err_set(&s->err, ERR_UNAVAILABLE, "shard split: shutting down");
                s->ok = false;
                break;
            }
            char tl[ID_STR_SIZE], dir[PATH_MAX], key[REMOTE_KEY_SIZE];
            timeline_id_format(&s->tls[t].id, tl);
            if (!str_printf(dir, sizeof(dir), "%s/%s/%s", ch->dir, PAGESERVER_TIMELINES_DIR, tl)) {
                err_set(&s->err, ERR_INTERNAL, "shard split: timeline path too long");
                s->ok = false;
                break;
            }
            remote_layout_index_key(&ch->tsid, &s->tls[t].id, s->gen, key);
            char *text = index_part_serialize(s->tls[t].index);
            s->ok = link_layers(&s->tls[t], dir, &s->err) &&
                    remote_put(s->rs, key, text, strlen(text), &s->err);
            free(text);
        }
    }
}

/* ---- step 3 and 4: attach the children, detach the parent (loop) ---- */

static void on_parent_detached(const Err *err, json_t *result, void *arg)
{
    ShardSplit *s = arg;
    json_decref(result);
    if (err != NULL) {
        Err e = *err;
        err_prefix(&e, "shard split: detaching the parent: ");
        split_finish(s, &e);
        return;
    }
    split_finish(s, NULL);
}

static void detach_parent(ShardSplit *s)
{
    Err err = {0};
    if (!failpoint_check("shard-split-before-parent-detach", &err)) {
        split_finish(s, &err);
        return;
    }
    LocationConfig cfg;
    location_config_init(&cfg);
    cfg.mode = LOCATION_MODE_DETACHED;
    tenant_location_config_put(s->mgr, &s->parent, &cfg, -1, false, on_parent_detached, s);
}

static void on_child_attached(const Err *err, json_t *result, void *arg)
{
    ShardSplit *s = arg;
    json_decref(result);
    if (err != NULL && s->ok) {
        s->ok = false;
        s->err = *err;
        err_prefix(&s->err, "shard split: attaching a child: ");
    }
    if (++s->answered < s->n_children)
        return;
    for (size_t i = 0; s->ok && i < s->n_children; i++) {
        const TenantSlot *c = tenant_manager_find(s->mgr, &s->children[i].tsid);
        if (c == NULL || c->state != SLOT_ACTIVE) {
            char id[TSID_STR_SIZE];
            tsid_format(&s->children[i].tsid, id);
            err_set(&s->err, ERR_INTERNAL, "shard split: child %s is %s after its attach", id,
                    c == NULL ? "gone" : slot_state_name(c->state));
            if (c != NULL && c->state == SLOT_BROKEN)
                err_prefix(&s->err, "%s: ", c->broken_reason);
            s->ok = false;
        }
    }
    if (!s->ok) {
        split_finish(s, &s->err);
        return;
    }
    detach_parent(s);
}

static void attach_children(ShardSplit *s)
{
    for (size_t i = 0; i < s->n_children; i++) {
        LocationConfig cfg;
        location_config_copy(&cfg, &s->parent_cfg);
        cfg.mode = LOCATION_MODE_ATTACHED_SINGLE;
        cfg.generation = s->gen;
        cfg.has_secondary_conf = false;
        cfg.secondary_warm = false;
        cfg.shard_number = s->children[i].tsid.number;
        cfg.shard_count = s->new_count;
        cfg.shard_stripe_size = s->stripe;
        tenant_location_config_put(s->mgr, &s->children[i].tsid, &cfg, -1, false, on_child_attached,
                                   s);
    }
}

static void children_done(void *arg, WorkerOutcome outcome)
{
    ShardSplit *s = arg;
    if (!worker_outcome_err(outcome, "shard split", &s->err))
        s->ok = false;
    for (size_t i = 0; i < s->n_children; i++) {
        if (s->children[i].placeholder)
            tenant_manager_pending_remove(s->mgr, &s->children[i].tsid);
    }
    TenantSlot *parent = tenant_manager_find(s->mgr, &s->parent);
    if (s->ok && (parent == NULL || parent->incarnation != s->incarnation ||
                  parent->state != SLOT_ACTIVE || s->mgr->stopping)) {
        err_set(&s->err, ERR_UNAVAILABLE, "shard split: the parent changed meanwhile; retry");
        s->ok = false;
    }
    if (parent != NULL)
        slot_job_end(parent); /* may continue a stopping parent's change */
    if (!s->ok) {
        split_finish(s, &s->err);
        return;
    }
    attach_children(s);
}

/* ---- step 1: validation ---- */

/* already_split: the parent is gone and every child is attached here with the new count (a
 * repeat after a split that finished, e.g. when the first answer was lost). */
static bool already_split(const ShardSplit *s)
{
    for (size_t i = 0; i < s->n_children; i++) {
        const TenantSlot *c = tenant_manager_find(s->mgr, &s->children[i].tsid);
        if (c == NULL || c->state != SLOT_ACTIVE || !location_config_is_attached(&c->config))
            return false;
    }
    return s->n_children > 0;
}

static bool split_prepare(ShardSplit *s, const ShardSplitRequest *req, Err *err)
{
    TenantManager *mgr = s->mgr;
    char id[TSID_STR_SIZE];
    tsid_format(&s->parent, id);
    if (!tenant_manager_check_ready(mgr, err) ||
        !shard_split_validate(s->parent.count, req->new_shard_count, err))
        return false;
    s->new_count = (ShardCount)req->new_shard_count;
    ShardNumber numbers[SHARD_SPLIT_MAX_CHILDREN];
    if (!shard_split_children(s->parent.number, s->parent.count, s->new_count, numbers,
                              &s->n_children, err))
        return false;
    if (req->new_stripe_size != 0 && s->parent.count > 1) {
        err_set(err, ERR_BAD_REQUEST,
                "new_stripe_size may only be given when splitting an unsharded tenant (%s has "
                "%u shards)",
                id, (unsigned)s->parent.count);
        return false;
    }
    for (size_t i = 0; i < s->n_children; i++) {
        SplitChild *c = &s->children[i];
        c->tsid = (TenantShardId){s->parent.tenant_id, numbers[i], s->new_count};
        char cid[TSID_STR_SIZE];
        tsid_format(&c->tsid, cid);
        str_printf(c->dir, sizeof(c->dir), "%s/%s/%s", mgr->app->cfg.workdir,
                   PAGESERVER_TENANTS_DIR, cid);
        if (tenant_manager_busy_err(mgr, &c->tsid, true, err))
            return false;
    }
    TenantSlot *slot = tenant_manager_find(mgr, &s->parent);
    if (slot == NULL) {
        if (already_split(s))
            return true;
        err_set(err, ERR_NOT_FOUND, "tenant shard %s is not attached here", id);
        return false;
    }
    if (tenant_manager_busy_err(mgr, &s->parent, true, err))
        return false;
    if (!slot_check_readable(slot, err))
        return false;
    if (slot->config.mode != LOCATION_MODE_ATTACHED_SINGLE) {
        err_set(err, ERR_CONFLICT, "tenant shard %s is %s, not AttachedSingle", id,
                location_config_mode_name(slot->config.mode));
        return false;
    }
    for (size_t i = 0; i < slot->n_timelines; i++) {
        const Timeline *tl = slot->timelines[i];
        if (tl->state == TIMELINE_IMPORTING || tl->import != NULL) {
            err_set(err, ERR_CONFLICT, "tenant shard %s: timeline %s is being imported", id,
                    tl->id_str);
            return false;
        }
        if (tl->state != TIMELINE_ACTIVE || tl->deleting) {
            err_set(err, ERR_CONFLICT, "tenant shard %s: timeline %s is %s", id, tl->id_str,
                    tl->deleting ? "being deleted" : timeline_state_name(tl->state));
            return false;
        }
        if (!timeline_uploads_idle(tl)) {
            err_set(err, ERR_UNAVAILABLE,
                    "tenant shard %s: timeline %s has uploads in flight; retry", id, tl->id_str);
            return false;
        }
    }
    s->incarnation = slot->incarnation;
    s->gen = slot_generation(slot);
    s->stripe = req->new_stripe_size != 0 ? req->new_stripe_size : slot->shard.stripe_size;
    location_config_copy(&s->parent_cfg, &slot->config);
    s->rs = mgr->app->remote;
    s->n_tls = slot->n_timelines;
    s->tls = xcalloc(s->n_tls ? s->n_tls : 1, sizeof(*s->tls));
    for (size_t i = 0; i < s->n_tls; i++) {
        const Timeline *tl = slot->timelines[i];
        s->tls[i].id = tl->id;
        str_copy(s->tls[i].parent_dir, sizeof(s->tls[i].parent_dir), tl->dir);
        s->tls[i].index = index_part_clone(tl->index);
    }
    return true;
}

void tenant_shard_split(TenantManager *mgr, const TenantShardId *parent,
                        const ShardSplitRequest *req, PageserverJsonFn cb, void *arg)
{
    ShardSplit *s = xcalloc(1, sizeof(*s));
    s->mgr = mgr;
    s->parent = *parent;
    s->cb = cb;
    s->arg = arg;
    s->ok = true;
    location_config_init(&s->parent_cfg);
    Err err = {0};
    if (!split_prepare(s, req, &err)) {
        pageserver_defer_json(mgr->app, cb, arg, &err, NULL);
        split_free(s);
        return;
    }
    TenantSlot *slot = tenant_manager_find(mgr, parent);
    if (slot == NULL) { /* already split: answer the children */
        pageserver_defer_json(mgr->app, cb, arg, NULL, children_json(s));
        split_free(s);
        return;
    }
    char id[TSID_STR_SIZE];
    tsid_format(parent, id);
    log_info("shard split of %s into %u shards (stripe %u, generation %" PRId64 "): %zu children",
             id, (unsigned)s->new_count, s->stripe, (int64_t)s->gen, s->n_children);
    for (size_t i = 0; i < s->n_children; i++) {
        if (tenant_manager_find(mgr, &s->children[i].tsid) == NULL) {
            tenant_manager_pending_add(mgr, &s->children[i].tsid, SPLIT_PLACEHOLDER);
            s->children[i].placeholder = true;
        }
    }
    slot_job_begin(slot);
    WorkerJobSpec spec = {.cls = WORKER_CLASS_BULK};
    worker_pool_start(mgr->app->workers, &spec, children_work, children_done, s);
}
