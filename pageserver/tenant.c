/*
 * tenant.c: tenant shard slots, their state machine, location_config, re-attach, tenant delete
 * and tenant config.
 *
 * Overview. A slot changes through at most one SlotChange at a time (slot->change):
 *
 *   UPSERT (new slot, or restart): [STOPPING: wait for in-flight work, drop timelines] ->
 *          PERSISTING (config written) -> ATTACHING -> ACTIVE | BROKEN, or -> SECONDARY
 *   SWAP   (same generation / secondary update): config written, then applied in place
 *   DETACH: STOPPING -> REMOVING (local data) -> GONE
 *   DELETE: like DETACH; the tenant delete operation then deletes the remote prefix
 *
 * The change owns the HTTP request it answers (or a callback for internal callers: re-attach,
 * tenant config). A location_config reply for an attach waits until the slot is ACTIVE or
 * BROKEN (bounded by PAGESERVER_ATTACH_WAIT_MS; `lazy` answers once the config is durable), then
 * for `flush_ms` until the upload queues are idle.
 *
 * Work that a stopping slot must wait for is counted in slot->inflight (worker jobs, running
 * uploads, timeline deletions); the change continues from slot_job_end when it drops to zero.
 */
#include "pageserver/tenant.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "shared/failpoint.h"
#include "shared/fsutil.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"
#include "pageserver/deletion_queue.h"
#include "pageserver/http_api.h"
#include "pageserver/remote_layout.h"
#include "pageserver/storcon_client.h"

/* ---- the state machine table ---- */

static const char *const SLOT_STATE_NAMES[SLOT_STATE_COUNT] = {
    [SLOT_INIT] = "Init",         [SLOT_PERSISTING] = "Persisting", [SLOT_ATTACHING] = "Attaching",
    [SLOT_ACTIVE] = "Active",     [SLOT_SECONDARY] = "Secondary",   [SLOT_BROKEN] = "Broken",
    [SLOT_STOPPING] = "Stopping", [SLOT_REMOVING] = "Removing",     [SLOT_GONE] = "Gone",
};

const SlotTransition SLOT_TRANSITIONS[] = {
    {SLOT_INIT, SLOT_PERSISTING, "new config"},
    {SLOT_INIT, SLOT_ATTACHING, "startup, config as persisted"},
    {SLOT_INIT, SLOT_SECONDARY, "startup, config as persisted"},
    {SLOT_INIT, SLOT_REMOVING, "not in re-attach answer"},
    {SLOT_PERSISTING, SLOT_ATTACHING, "attached config durable"},
    {SLOT_PERSISTING, SLOT_SECONDARY, "secondary config durable"},
    {SLOT_PERSISTING, SLOT_BROKEN, "config write failed"},
    {SLOT_ATTACHING, SLOT_ACTIVE, "timelines loaded"},
    {SLOT_ATTACHING, SLOT_BROKEN, "attach failed"},
    {SLOT_ATTACHING, SLOT_STOPPING, "restart, detach, delete during a startup attach"},
    {SLOT_ACTIVE, SLOT_STOPPING, "restart, detach, delete"},
    {SLOT_SECONDARY, SLOT_STOPPING, "restart, detach, delete"},
    {SLOT_BROKEN, SLOT_STOPPING, "restart, detach, delete"},
    {SLOT_STOPPING, SLOT_PERSISTING, "restart: in-flight work done"},
    {SLOT_STOPPING, SLOT_REMOVING, "detach or delete: in-flight work done"},
    {SLOT_REMOVING, SLOT_GONE, "local data removed"},
    {SLOT_REMOVING, SLOT_BROKEN, "removal failed"},
};
const size_t SLOT_TRANSITIONS_COUNT = sizeof(SLOT_TRANSITIONS) / sizeof(SLOT_TRANSITIONS[0]);

const char *slot_state_name(SlotState s)
{
    return (s >= 0 && s < SLOT_STATE_COUNT) ? SLOT_STATE_NAMES[s] : "Unknown";
}

bool slot_transition_allowed(SlotState from, SlotState to)
{
    for (size_t i = 0; i < SLOT_TRANSITIONS_COUNT; i++) {
        if (SLOT_TRANSITIONS[i].from == from && SLOT_TRANSITIONS[i].to == to)
            return true;
    }
    return false;
}

void slot_fsm_mermaid(StrBuf *out)
{
    strbuf_append_str(out, "stateDiagram-v2\n");
    strbuf_printf(out, "    [*] --> %s\n", slot_state_name(SLOT_INIT));
    for (size_t i = 0; i < SLOT_TRANSITIONS_COUNT; i++) {
        const SlotTransition *t = &SLOT_TRANSITIONS[i];
        strbuf_printf(out, "    %s --> %s: %s\n", slot_state_name(t->from), slot_state_name(t->to),
                      t->why);
    }
    strbuf_printf(out, "    %s --> [*]\n", slot_state_name(SLOT_GONE));
}

/* ---- changes ---- */

typedef enum ChangeKind { CHANGE_UPSERT, CHANGE_SWAP, CHANGE_DETACH, CHANGE_DELETE } ChangeKind;

/* ChangeDoneFn: for internal callers; ok false with err on failure. */
typedef void (*ChangeDoneFn)(void *arg, TenantSlot *slot, bool ok, const Err *err);

struct SlotChange {
    TenantSlot *slot;
    ChangeKind kind;
    LocationConfig cfg; /* UPSERT / SWAP: the new config */
    HttpRequest *req;   /* answered by the change; NULL once answered or for internal callers */
    ChangeDoneFn done;
    void *done_arg;
    long flush_ms; /* < 0: none */
    bool lazy;
    struct event *timer;
    int64_t deadline_ms;
    bool waiting_flush;
};

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void change_finish(SlotChange *c, bool ok, const Err *err);
static void slot_continue_change(TenantSlot *slot);
static void slot_free(TenantSlot *slot);

/* ---- manager ---- */

TenantManager *tenant_manager_new(PageserverApp *app)
{
    TenantManager *mgr = xcalloc(1, sizeof(*mgr));
    mgr->app = app;
    return mgr;
}

TenantSlot *tenant_manager_find(const TenantManager *mgr, const TenantShardId *tsid)
{
    for (size_t i = 0; i < mgr->n_slots; i++) {
        if (tsid_eq(&mgr->slots[i]->tsid, tsid))
            return mgr->slots[i];
    }
    return NULL;
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

static void gauge_slot_state(TenantManager *mgr, SlotState s, double delta)
{
    MetricGauge *g = mgr->app->m.slots_by_state[s];
    if (g != NULL)
        metric_gauge_add(g, delta);
}

static TenantSlot *slot_new(TenantManager *mgr, const TenantShardId *tsid)
{
    TenantSlot *slot = xcalloc(1, sizeof(*slot));
    slot->mgr = mgr;
    slot->tsid = *tsid;
    tsid_format(tsid, slot->tsid_str);
    slot->state = SLOT_INIT;
    location_config_init(&slot->config);
    slot->shard = shard_identity_unsharded();
    str_printf(slot->dir, sizeof(slot->dir), "%s/%s/%s", mgr->app->cfg.workdir,
               PAGESERVER_TENANTS_DIR, slot->tsid_str);
    if (mgr->n_slots == mgr->cap_slots) {
        mgr->cap_slots = mgr->cap_slots ? mgr->cap_slots * 2 : 16;
        mgr->slots = xrealloc(mgr->slots, mgr->cap_slots * sizeof(*mgr->slots));
    }
    mgr->slots[mgr->n_slots++] = slot;
    gauge_slot_state(mgr, SLOT_INIT, 1);
    return slot;
}

static void slot_drop_timelines(TenantSlot *slot)
{
    /* children first is not needed: ancestors are plain pointers and all go together */
    for (size_t i = 0; i < slot->n_timelines; i++) {
        metric_gauge_add(slot->mgr->app->m.timelines, -1);
        timeline_free(slot->timelines[i]);
    }
    slot->n_timelines = 0;
}

static void slot_unlink(TenantSlot *slot)
{
    TenantManager *mgr = slot->mgr;
    for (size_t i = 0; i < mgr->n_slots; i++) {
        if (mgr->slots[i] == slot) {
            memmove(&mgr->slots[i], &mgr->slots[i + 1],
                    (mgr->n_slots - i - 1) * sizeof(*mgr->slots));
            mgr->n_slots--;
            return;
        }
    }
}

static void slot_free(TenantSlot *slot)
{
    slot_drop_timelines(slot);
    free(slot->timelines);
    location_config_finish(&slot->config);
    gauge_slot_state(slot->mgr, slot->state, -1);
    free(slot);
}

void tenant_manager_free(TenantManager *mgr)
{
    if (mgr == NULL)
        return;
    for (size_t i = 0; i < mgr->n_slots; i++) {
        TenantSlot *slot = mgr->slots[i];
        if (slot->change != NULL) {
            SlotChange *c = slot->change;
            slot->change = NULL;
            if (c->timer != NULL)
                event_free(c->timer);
            location_config_finish(&c->cfg);
            free(c);
        }
        slot_free(slot);
    }
    free(mgr->slots);
    free(mgr);
}

/* ---- slots ---- */

bool slot_set_state(TenantSlot *slot, SlotState to)
{
    SlotState from = slot->state;
    if (from == to)
        return true;
    if (!slot_transition_allowed(from, to)) {
        log_error("tenant shard %s: refused slot transition %s -> %s (not in the table)",
                  slot->tsid_str, slot_state_name(from), slot_state_name(to));
        return false;
    }
    log_info("tenant shard %s: %s -> %s", slot->tsid_str, slot_state_name(from),
             slot_state_name(to));
    gauge_slot_state(slot->mgr, from, -1);
    gauge_slot_state(slot->mgr, to, 1);
    slot->state = to;
    return true;
}

bool slot_is_busy(const TenantSlot *slot)
{
    return slot->state == SLOT_PERSISTING || slot->state == SLOT_ATTACHING ||
           slot->state == SLOT_STOPPING || slot->state == SLOT_REMOVING || slot->state == SLOT_INIT;
}

bool slot_check_readable(const TenantSlot *slot, Err *err)
{
    if (slot == NULL) {
        err_set(err, ERR_NOT_FOUND, "tenant shard not found on this pageserver");
        return false;
    }
    switch (slot->state) {
    case SLOT_ACTIVE:
        return true;
    case SLOT_SECONDARY:
        err_set(err, ERR_NOT_FOUND, "tenant shard %s is a secondary location here (not readable)",
                slot->tsid_str);
        return false;
    case SLOT_BROKEN:
        err_set(err, ERR_INTERNAL, "tenant shard %s is broken: %s", slot->tsid_str,
                slot->broken_reason);
        return false;
    default:
        err_set(err, ERR_UNAVAILABLE, "tenant shard %s is %s; retry", slot->tsid_str,
                slot_state_name(slot->state));
        return false;
    }
}

static bool config_uploads(const LocationConfig *cfg)
{
    return cfg->mode == LOCATION_MODE_ATTACHED_SINGLE || cfg->mode == LOCATION_MODE_ATTACHED_MULTI;
}

bool slot_may_upload(const TenantSlot *slot)
{
    return slot->has_config && config_uploads(&slot->config) &&
           (slot->state == SLOT_ACTIVE || slot->state == SLOT_ATTACHING) && !slot->mgr->stopping;
}

bool slot_may_delete(const TenantSlot *slot)
{
    return slot->has_config && slot->config.mode == LOCATION_MODE_ATTACHED_SINGLE &&
           slot->state == SLOT_ACTIVE && !slot->mgr->stopping;
}

Generation slot_generation(const TenantSlot *slot)
{
    return slot->has_config ? slot->config.generation : GENERATION_NONE;
}

Timeline *slot_find_timeline(const TenantSlot *slot, const TimelineId *id)
{
    for (size_t i = 0; i < slot->n_timelines; i++) {
        if (timeline_id_eq(&slot->timelines[i]->id, id))
            return slot->timelines[i];
    }
    return NULL;
}

void slot_add_timeline(TenantSlot *slot, Timeline *tl)
{
    if (slot->n_timelines == slot->cap_timelines) {
        slot->cap_timelines = slot->cap_timelines ? slot->cap_timelines * 2 : 8;
        slot->timelines = xrealloc(slot->timelines, slot->cap_timelines * sizeof(Timeline *));
    }
    slot->timelines[slot->n_timelines++] = tl;
    metric_gauge_add(slot->mgr->app->m.timelines, 1);
}

void slot_remove_timeline(TenantSlot *slot, Timeline *tl)
{
    for (size_t i = 0; i < slot->n_timelines; i++) {
        if (slot->timelines[i] == tl) {
            memmove(&slot->timelines[i], &slot->timelines[i + 1],
                    (slot->n_timelines - i - 1) * sizeof(Timeline *));
            slot->n_timelines--;
            metric_gauge_add(slot->mgr->app->m.timelines, -1);
            return;
        }
    }
}

void slot_timeline_dir(const TenantSlot *slot, const TimelineId *tl, char *out, size_t cap)
{
    char id[ID_STR_SIZE];
    timeline_id_format(tl, id);
    str_printf(out, cap, "%s/%s/%s", slot->dir, PAGESERVER_TIMELINES_DIR, id);
}

void slot_job_begin(TenantSlot *slot)
{
    slot->inflight++;
}

void slot_job_end(TenantSlot *slot)
{
    slot->inflight--;
    if (slot->inflight == 0 && slot->state == SLOT_STOPPING)
        slot_continue_change(slot);
}

/* slot_apply_config: take cfg (copied) as the slot's persisted config. */
static void slot_apply_config(TenantSlot *slot, const LocationConfig *cfg)
{
    location_config_finish(&slot->config);
    location_config_copy(&slot->config, cfg);
    slot->has_config = true;
    ShardIdentity id;
    Err err = {0};
    if (cfg->shard_count == 0 ||
        !shard_identity_new(cfg->shard_number, cfg->shard_count, cfg->shard_stripe_size, &id, &err))
        id = shard_identity_unsharded();
    slot->shard = id;
}

/* ---- worker jobs: config write, attach, local removal ---- */

typedef struct PersistJob {
    TenantSlot *slot;
    char dir[PATH_MAX];
    char path[PATH_MAX];
    char *text;
    bool ok;
    Err err;
    void (*then)(TenantSlot *slot, bool ok, const Err *err);
} PersistJob;

static void persist_work(void *arg)
{
    PersistJob *j = arg;
    char tl_dir[PATH_MAX];
    str_printf(tl_dir, sizeof(tl_dir), "%s/%s", j->dir, PAGESERVER_TIMELINES_DIR);
    j->ok = failpoint_check("location-config-persist", &j->err) &&
            fs_mkdir_p(tl_dir, PAGESERVER_DIR_MODE, &j->err) &&
            fs_write_atomic(j->path, j->text, strlen(j->text), &j->err);
}

static void persist_done(void *arg)
{
    PersistJob *j = arg;
    TenantSlot *slot = j->slot;
    free(j->text);
    void (*then)(TenantSlot *, bool, const Err *) = j->then;
    bool ok = j->ok;
    Err err = j->err;
    free(j);
    slot->inflight--; /* not slot_job_end: the continuation decides what comes next */
    then(slot, ok, &err);
}

/* slot_persist: write cfg as <dir>/config (temp name, fsync, rename, fsync dir) on a worker. */
static void slot_persist(TenantSlot *slot, const LocationConfig *cfg,
                         void (*then)(TenantSlot *slot, bool ok, const Err *err))
{
    PersistJob *j = xcalloc(1, sizeof(*j));
    j->slot = slot;
    str_copy(j->dir, sizeof(j->dir), slot->dir);
    str_printf(j->path, sizeof(j->path), "%s/%s", slot->dir, PAGESERVER_TENANT_CONFIG_FILE);
    json_t *json = location_config_to_json(cfg);
    j->text = json_dumps_compact(json);
    json_decref(json);
    j->then = then;
    slot->inflight++;
    worker_pool_submit(slot->mgr->app->workers, persist_work, persist_done, j);
}

typedef struct AttachTimeline {
    TimelineId id;
    IndexPart *index;
    Generation picked;
    bool *resident;
} AttachTimeline;

typedef struct AttachJob {
    TenantSlot *slot;
    uint64_t incarnation;
    TenantShardId tsid;
    Generation gen;
    char dir[PATH_MAX];
    RemoteStorage *rs;
    AttachTimeline *tls;
    size_t n_tls;
    bool ok;
    Err err;
} AttachJob;

typedef struct GenList {
    TimelineId id;
    Generation *gens;
    size_t n, cap;
} GenList;

static GenList *genlist_get(GenList **lists, size_t *n, size_t *cap, const TimelineId *id)
{
    for (size_t i = 0; i < *n; i++) {
        if (timeline_id_eq(&(*lists)[i].id, id))
            return &(*lists)[i];
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *lists = xrealloc(*lists, *cap * sizeof(**lists));
    }
    GenList *g = &(*lists)[(*n)++];
    memset(g, 0, sizeof(*g));
    g->id = *id;
    return g;
}

/* attach_scan_local: keep the local layer files the index names (with the right size) and remove
 * everything else in the timeline directory (partial downloads, layers of other generations). */
static void attach_scan_local(const char *tl_dir, AttachTimeline *t)
{
    t->resident = xcalloc(t->index->n_layers ? t->index->n_layers : 1, sizeof(bool));
    DIR *d = opendir(tl_dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[PATH_MAX];
        if (!str_printf(path, sizeof(path), "%s/%s", tl_dir, de->d_name))
            continue;
        bool keep = false;
        struct stat st;
        for (size_t i = 0; i < t->index->n_layers && !keep; i++) {
            const IndexLayer *l = &t->index->layers[i];
            char name[LAYER_NAME_SIZE + GENERATION_SUFFIX_SIZE];
            layer_obj_local_name(l->name, l->generation, name, sizeof(name));
            if (strcmp(name, de->d_name) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                (uint64_t)st.st_size == l->file_size) {
                keep = true;
                t->resident[i] = true;
            }
        }
        if (!keep) {
            Err err = {0};
            log_info("attach: removing local file %s (not in the index)", path);
            if (!fs_remove_tree(path, &err))
                log_err(&err, "attach: removing a stale local file");
        }
    }
    closedir(d);
}

static void attach_work(void *arg)
{
    AttachJob *j = arg;
    GenList *lists = NULL;
    size_t n_lists = 0, cap_lists = 0;
    RemoteListing listing = {0};
    char prefix[REMOTE_KEY_SIZE];
    remote_layout_timelines_prefix(&j->tsid, prefix);
    j->ok = failpoint_check("attach-before-load", &j->err) &&
            remote_list(j->rs, prefix, &listing, &j->err);
    if (!j->ok)
        goto done;
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < listing.n; i++) {
        const char *rest = listing.items[i].key + plen;
        char idhex[ID_STR_SIZE];
        const char *slash = strchr(rest, '/');
        if (slash == NULL || slash - rest != ID_HEX_LEN)
            continue;
        memcpy(idhex, rest, ID_HEX_LEN);
        idhex[ID_HEX_LEN] = '\0';
        TimelineId id;
        Err ignore = {0};
        Generation g;
        if (!timeline_id_parse(idhex, &id, &ignore) ||
            !str_has_prefix(slash + 1, REMOTE_LAYOUT_INDEX_NAME) ||
            !remote_layout_parse_index_key(slash + 1, &g, &ignore))
            continue;
        GenList *gl = genlist_get(&lists, &n_lists, &cap_lists, &id);
        if (gl->n == gl->cap) {
            gl->cap = gl->cap ? gl->cap * 2 : 4;
            gl->gens = xrealloc(gl->gens, gl->cap * sizeof(Generation));
        }
        gl->gens[gl->n++] = g;
    }
    j->tls = xcalloc(n_lists ? n_lists : 1, sizeof(*j->tls));
    for (size_t i = 0; i < n_lists && j->ok; i++) {
        Generation picked = GENERATION_NONE;
        bool found = false;
        remote_layout_pick_index_generation(lists[i].gens, lists[i].n, j->gen, &picked, &found);
        char tl_str[ID_STR_SIZE];
        timeline_id_format(&lists[i].id, tl_str);
        if (!found) {
            log_warn("attach %s: timeline %s has only indexes of newer generations than %" PRId64
                     "; skipped",
                     j->dir, tl_str, j->gen);
            continue;
        }
        char key[REMOTE_KEY_SIZE];
        remote_layout_index_key(&j->tsid, &lists[i].id, picked, key);
        char *text = NULL;
        size_t len = 0;
        IndexPart *index = NULL;
        if (!remote_get(j->rs, key, &text, &len, &j->err) ||
            !index_part_parse(text, len, &index, &j->err)) {
            err_prefix(&j->err, "timeline %s: index %s: ", tl_str, key);
            if (j->err.code == ERR_BAD_REQUEST)
                j->err.code = ERR_INTERNAL;
            free(text);
            j->ok = false;
            break;
        }
        free(text);
        AttachTimeline *t = &j->tls[j->n_tls++];
        t->id = lists[i].id;
        t->index = index;
        t->picked = picked;
        char tl_dir[PATH_MAX];
        str_printf(tl_dir, sizeof(tl_dir), "%s/%s/%s", j->dir, PAGESERVER_TIMELINES_DIR, tl_str);
        attach_scan_local(tl_dir, t);
    }
    /* local timeline directories that remote storage does not know: leftovers */
    if (j->ok) {
        char tls_dir[PATH_MAX];
        str_printf(tls_dir, sizeof(tls_dir), "%s/%s", j->dir, PAGESERVER_TIMELINES_DIR);
        DIR *d = opendir(tls_dir);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            TimelineId id;
            Err ignore = {0};
            bool known = false;
            if (timeline_id_parse(de->d_name, &id, &ignore)) {
                for (size_t i = 0; i < j->n_tls && !known; i++)
                    known = timeline_id_eq(&j->tls[i].id, &id);
            }
            if (!known) {
                char path[PATH_MAX];
                if (str_printf(path, sizeof(path), "%s/%s", tls_dir, de->d_name)) {
                    log_info("attach: removing local timeline directory %s (not in remote "
                             "storage)",
                             path);
                    if (!fs_remove_tree(path, &ignore))
                        log_err(&ignore, "attach: removing a stale timeline directory");
                }
            }
        }
        if (d != NULL)
            closedir(d);
    }
done:
    for (size_t i = 0; i < n_lists; i++)
        free(lists[i].gens);
    free(lists);
    remote_listing_free(&listing);
}

static void attach_job_free(AttachJob *j)
{
    for (size_t i = 0; i < j->n_tls; i++) {
        index_part_free(j->tls[i].index);
        free(j->tls[i].resident);
    }
    free(j->tls);
    free(j);
}

static void slot_set_broken(TenantSlot *slot, const Err *err)
{
    str_copy(slot->broken_reason, sizeof(slot->broken_reason), err->msg);
    log_err(err, "tenant shard is broken");
    slot_drop_timelines(slot);
    (void)slot_set_state(slot, SLOT_BROKEN);
}

/* slot_on_active: after attach: resume interrupted deletions, and make sure this generation has
 * its own index for every timeline (so a newer attachment never depends on ours and we never
 * overwrite an older one). */
static void slot_on_active(TenantSlot *slot, const AttachJob *j)
{
    PageserverApp *app = slot->mgr->app;
    for (size_t i = 0; i < slot->n_timelines; i++) {
        Timeline *tl = slot->timelines[i];
        if (tl->index->has_deleted_at) {
            timeline_resume_deletion(tl);
            continue;
        }
        Generation picked = GENERATION_NONE;
        for (size_t k = 0; k < j->n_tls; k++) {
            if (timeline_id_eq(&j->tls[k].id, &tl->id))
                picked = j->tls[k].picked;
        }
        if (picked != slot_generation(slot) && slot_may_upload(slot)) {
            timeline_schedule_index_upload(tl, NULL, NULL);
        } else if (picked == slot_generation(slot)) {
            deletion_queue_push_lsn(app->deletion, &slot->tsid, slot_generation(slot), &tl->id,
                                    tl->remote_consistent_lsn);
        }
    }
}

static void attach_done(void *arg)
{
    AttachJob *j = arg;
    TenantSlot *slot = j->slot;
    slot->inflight--;
    if (slot->incarnation != j->incarnation || slot->state != SLOT_ATTACHING) {
        attach_job_free(j);
        slot_continue_change(slot);
        return;
    }
    if (!j->ok) {
        slot_set_broken(slot, &j->err);
        attach_job_free(j);
        slot_continue_change(slot);
        return;
    }
    for (size_t i = 0; i < j->n_tls; i++) {
        Timeline *tl = timeline_new(slot, &j->tls[i].id);
        Err err = {0};
        IndexPart *index = j->tls[i].index;
        j->tls[i].index = NULL;
        if (!timeline_load_index(tl, index, j->tls[i].resident, &err)) {
            tl->state = TIMELINE_BROKEN;
            str_copy(tl->broken_reason, sizeof(tl->broken_reason), err.msg);
            log_err(&err, "attach: timeline is broken");
        }
        slot_add_timeline(slot, tl);
    }
    for (size_t i = 0; i < slot->n_timelines; i++) {
        Timeline *tl = slot->timelines[i];
        if (!tl->has_ancestor)
            continue;
        tl->ancestor = slot_find_timeline(slot, &tl->ancestor_id);
        if (tl->ancestor == NULL && tl->state == TIMELINE_ACTIVE) {
            char anc[ID_STR_SIZE];
            timeline_id_format(&tl->ancestor_id, anc);
            tl->state = TIMELINE_BROKEN;
            str_printf(tl->broken_reason, sizeof(tl->broken_reason),
                       "ancestor timeline %s not found", anc);
        }
    }
    log_info("tenant shard %s attached in generation %" PRId64 ": %zu timelines", slot->tsid_str,
             slot_generation(slot), slot->n_timelines);
    (void)slot_set_state(slot, SLOT_ACTIVE);
    slot_on_active(slot, j);
    attach_job_free(j);
    slot_continue_change(slot);
}

static void slot_start_attach(TenantSlot *slot)
{
    if (!slot_set_state(slot, SLOT_ATTACHING))
        return;
    slot->incarnation++;
    slot->broken_reason[0] = '\0';
    AttachJob *j = xcalloc(1, sizeof(*j));
    j->slot = slot;
    j->incarnation = slot->incarnation;
    j->tsid = slot->tsid;
    j->gen = slot_generation(slot);
    j->rs = slot->mgr->app->remote;
    str_copy(j->dir, sizeof(j->dir), slot->dir);
    slot->inflight++;
    worker_pool_submit(slot->mgr->app->workers, attach_work, attach_done, j);
}

typedef struct RemoveJob {
    TenantSlot *slot; /* NULL: no slot (detach of an absent shard) */
    char dir[PATH_MAX];
    bool ok;
    Err err;
    void (*then)(void *arg, bool ok, const Err *err);
    void *arg;
} RemoveJob;

static void remove_work(void *arg)
{
    RemoveJob *j = arg;
    j->ok = failpoint_check("tenant-remove-local", &j->err) && fs_remove_tree(j->dir, &j->err);
}

static void remove_done(void *arg)
{
    RemoveJob *j = arg;
    j->then(j->arg, j->ok, &j->err);
    free(j);
}

static void submit_remove(PageserverApp *app, const char *dir,
                          void (*then)(void *arg, bool ok, const Err *err), void *arg)
{
    RemoveJob *j = xcalloc(1, sizeof(*j));
    str_copy(j->dir, sizeof(j->dir), dir);
    j->then = then;
    j->arg = arg;
    worker_pool_submit(app->workers, remove_work, remove_done, j);
}

/* ---- change machinery ---- */

static json_t *upsert_reply_body(const TenantSlot *slot, const LocationConfig *cfg)
{
    json_t *shard = json_pack("{s:o,s:I}", "shard_id", json_from_tsid(&slot->tsid), "node_id",
                              (json_int_t)slot->mgr->app->cfg.id);
    json_t *stripe = cfg->shard_count > 0 ? json_integer(cfg->shard_stripe_size) : json_null();
    return json_pack("{s:[o],s:o}", "shards", shard, "stripe_size", stripe);
}

/* detach_reply_body: a Detached location_config answers in the same shape as an attach, with no
 * shard held here, so a controller decodes every location_config reply the same way. */
static json_t *detach_reply_body(void)
{
    return json_pack("{s:[],s:n}", "shards", "stripe_size");
}

/* change_reply: answer the request now (once); the change may go on without it. */
static void change_reply(SlotChange *c, bool ok, const Err *err)
{
    if (c->req == NULL)
        return;
    PageserverApp *app = c->slot->mgr->app;
    if (!ok) {
        pageserver_reply_error(app, c->req, err);
    } else if (c->kind == CHANGE_UPSERT || c->kind == CHANGE_SWAP) {
        pageserver_reply_json(app, c->req, 200, upsert_reply_body(c->slot, &c->cfg));
    } else if (c->kind == CHANGE_DETACH) {
        pageserver_reply_json(app, c->req, 200, detach_reply_body());
    } else {
        pageserver_reply_json(app, c->req, 200, NULL);
    }
    c->req = NULL;
}

static void change_finish(SlotChange *c, bool ok, const Err *err)
{
    TenantSlot *slot = c->slot;
    change_reply(c, ok, err);
    if (c->timer != NULL)
        event_free(c->timer);
    slot->change = NULL;
    ChangeDoneFn done = c->done;
    void *done_arg = c->done_arg;
    location_config_finish(&c->cfg);
    free(c);
    if (done != NULL)
        done(done_arg, slot, ok, err);
}

static bool slot_all_uploads_idle(const TenantSlot *slot)
{
    for (size_t i = 0; i < slot->n_timelines; i++) {
        if (!timeline_uploads_idle(slot->timelines[i]))
            return false;
    }
    return true;
}

static void on_change_timer(evutil_socket_t fd, short what, void *arg);

static void change_arm_timer(SlotChange *c, long ms)
{
    if (c->timer == NULL)
        c->timer = evtimer_new(c->slot->mgr->app->base, on_change_timer, c);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* change_after_settled: the slot reached ACTIVE, BROKEN or SECONDARY: flush if asked, answer. */
static void change_after_settled(SlotChange *c)
{
    TenantSlot *slot = c->slot;
    if (c->flush_ms >= 0 && slot->state == SLOT_ACTIVE && !slot_all_uploads_idle(slot)) {
        if (!c->waiting_flush) {
            c->waiting_flush = true;
            c->deadline_ms = now_ms() + c->flush_ms;
        }
        if (now_ms() < c->deadline_ms) {
            change_arm_timer(c, 20);
            return;
        }
        log_warn("tenant shard %s: flush_ms %ld passed with uploads still queued", slot->tsid_str,
                 c->flush_ms);
    }
    change_finish(c, true, NULL);
}

static void on_change_timer(evutil_socket_t fd, short what, void *arg)
{
    SlotChange *c = arg;
    TenantSlot *slot = c->slot;
    if (c->waiting_flush) {
        change_after_settled(c);
        return;
    }
    if (slot->state == SLOT_ATTACHING && c->req != NULL) {
        log_warn("tenant shard %s: attach still running after %ld ms; answering now",
                 slot->tsid_str, PAGESERVER_ATTACH_WAIT_MS);
        change_reply(c, true, NULL);
    }
}

static void after_persist(TenantSlot *slot, bool ok, const Err *err);
static void after_swap_persist(TenantSlot *slot, bool ok, const Err *err);
static void after_remove(void *arg, bool ok, const Err *err);

/* slot_begin_stop: shut the slot's timelines down; slot_continue_change runs once nothing is in
 * flight. */
static void slot_begin_stop(TenantSlot *slot)
{
    if (!slot_set_state(slot, SLOT_STOPPING))
        return;
    slot->incarnation++;
    for (size_t i = 0; i < slot->n_timelines; i++) {
        slot->timelines[i]->state = TIMELINE_STOPPING;
        timeline_uploads_drop(slot->timelines[i]);
    }
    if (slot->inflight == 0)
        slot_continue_change(slot);
}

/* slot_continue_change: advance the slot's change after a step finished. */
static void slot_continue_change(TenantSlot *slot)
{
    SlotChange *c = slot->change;
    if (c == NULL)
        return;
    switch (slot->state) {
    case SLOT_STOPPING:
        if (slot->inflight > 0)
            return;
        slot_drop_timelines(slot);
        if (c->kind == CHANGE_UPSERT) {
            if (!slot_set_state(slot, SLOT_PERSISTING))
                return;
            slot_persist(slot, &c->cfg, after_persist);
        } else {
            if (!slot_set_state(slot, SLOT_REMOVING))
                return;
            submit_remove(slot->mgr->app, slot->dir, after_remove, slot);
        }
        return;
    case SLOT_ACTIVE:
    case SLOT_BROKEN:
    case SLOT_SECONDARY:
        if (c->kind == CHANGE_UPSERT)
            change_after_settled(c);
        return;
    default:
        return;
    }
}

static void after_persist(TenantSlot *slot, bool ok, const Err *err)
{
    SlotChange *c = slot->change;
    if (!ok) {
        Err e = *err;
        err_prefix(&e, "persisting the location config: ");
        if (!slot->has_config) {
            /* a brand-new slot whose config is not durable does not exist */
            (void)slot_set_state(slot, SLOT_BROKEN);
            str_copy(slot->broken_reason, sizeof(slot->broken_reason), e.msg);
            change_finish(c, false, &e);
            return;
        }
        slot_set_broken(slot, &e);
        change_finish(c, false, &e);
        return;
    }
    slot_apply_config(slot, &c->cfg);
    if (slot->mgr->stopping) {
        change_finish(c, true, NULL);
        return;
    }
    if (location_config_is_attached(&slot->config)) {
        slot_start_attach(slot);
        if (c->lazy)
            change_reply(c, true, NULL);
        else
            change_arm_timer(c, PAGESERVER_ATTACH_WAIT_MS);
    } else {
        (void)slot_set_state(slot, SLOT_SECONDARY);
        slot_continue_change(slot);
    }
}

static void after_swap_persist(TenantSlot *slot, bool ok, const Err *err)
{
    SlotChange *c = slot->change;
    if (!ok) {
        Err e = *err;
        err_prefix(&e, "persisting the location config: ");
        change_finish(c, false, &e);
        return;
    }
    LocationMode old_mode = slot->config.mode;
    slot_apply_config(slot, &c->cfg);
    if (old_mode != slot->config.mode)
        log_info("tenant shard %s: mode %s -> %s in place (generation %" PRId64 ")", slot->tsid_str,
                 location_config_mode_name(old_mode), location_config_mode_name(slot->config.mode),
                 slot_generation(slot));
    for (size_t i = 0; i < slot->n_timelines; i++)
        timeline_uploads_kick(slot->timelines[i]);
    change_after_settled(c);
}

static void after_remove(void *arg, bool ok, const Err *err)
{
    TenantSlot *slot = arg;
    SlotChange *c = slot->change;
    if (!ok) {
        Err e = *err;
        err_prefix(&e, "removing local data: ");
        (void)slot_set_state(slot, SLOT_BROKEN);
        str_copy(slot->broken_reason, sizeof(slot->broken_reason), e.msg);
        change_finish(c, false, &e);
        return;
    }
    (void)slot_set_state(slot, SLOT_GONE);
    slot_unlink(slot);
    change_finish(c, true, NULL);
    slot_free(slot);
}

static SlotChange *change_new(TenantSlot *slot, ChangeKind kind, HttpRequest *req)
{
    SlotChange *c = xcalloc(1, sizeof(*c));
    c->slot = slot;
    c->kind = kind;
    c->req = req;
    c->flush_ms = -1;
    location_config_init(&c->cfg);
    slot->change = c;
    return c;
}

/* slot_start_upsert: a new slot (INIT) or a restart. cfg is copied. */
static SlotChange *slot_start_upsert(TenantSlot *slot, HttpRequest *req, const LocationConfig *cfg)
{
    SlotChange *c = change_new(slot, CHANGE_UPSERT, req);
    location_config_copy(&c->cfg, cfg);
    if (slot->state == SLOT_INIT) {
        if (slot_set_state(slot, SLOT_PERSISTING))
            slot_persist(slot, &c->cfg, after_persist);
    } else {
        slot_begin_stop(slot);
    }
    return c;
}

static SlotChange *slot_start_remove(TenantSlot *slot, ChangeKind kind, HttpRequest *req)
{
    SlotChange *c = change_new(slot, kind, req);
    if (slot->state == SLOT_INIT) {
        if (slot_set_state(slot, SLOT_REMOVING))
            submit_remove(slot->mgr->app, slot->dir, after_remove, slot);
    } else {
        slot_begin_stop(slot);
    }
    return c;
}

/* ---- location_config ---- */

typedef struct AbsentDetach {
    PageserverApp *app;
    HttpRequest *req;
} AbsentDetach;

static void after_absent_detach(void *arg, bool ok, const Err *err)
{
    AbsentDetach *a = arg;
    if (ok)
        pageserver_reply_json(a->app, a->req, 200, detach_reply_body());
    else
        pageserver_reply_error(a->app, a->req, err);
    free(a);
}

void tenant_location_config_put(TenantManager *mgr, HttpRequest *req, const TenantShardId *tsid,
                                LocationConfig *cfg, long flush_ms, bool lazy)
{
    Err err = {0};
    if (!tenant_manager_check_ready(mgr, &err)) {
        location_config_finish(cfg);
        pageserver_reply_error(mgr->app, req, &err);
        return;
    }
    TenantSlot *slot = tenant_manager_find(mgr, tsid);
    if (slot != NULL && slot->change != NULL) {
        err_set(&err, ERR_CONFLICT, "tenant shard %s is being changed (%s); retry", slot->tsid_str,
                slot_state_name(slot->state));
        location_config_finish(cfg);
        pageserver_reply_error(mgr->app, req, &err);
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
    SlotChange *c = NULL;
    switch (change) {
    case LOCATION_CHANGE_DETACH:
        if (slot == NULL) {
            /* idempotent; still remove leftovers of a shard this node no longer knows */
            AbsentDetach *a = xcalloc(1, sizeof(*a));
            a->app = mgr->app;
            a->req = req;
            char dir[PATH_MAX];
            str_printf(dir, sizeof(dir), "%s/%s/%s", mgr->app->cfg.workdir, PAGESERVER_TENANTS_DIR,
                       tsid_str);
            submit_remove(mgr->app, dir, after_absent_detach, a);
        } else {
            slot_start_remove(slot, CHANGE_DETACH, req);
        }
        break;
    case LOCATION_CHANGE_LOWER_GENERATION:
        err_set(&err, ERR_BAD_REQUEST,
                "generation %" PRId64 " is lower than the attached generation %" PRId64
                " of tenant shard %s",
                cfg->generation, slot->config.generation, tsid_str);
        pageserver_reply_error(mgr->app, req, &err);
        break;
    case LOCATION_CHANGE_SAME_GENERATION_SWAP:
    case LOCATION_CHANGE_SECONDARY_UPDATE:
        c = change_new(slot, CHANGE_SWAP, req);
        location_config_copy(&c->cfg, cfg);
        c->flush_ms = flush_ms;
        slot_persist(slot, &c->cfg, after_swap_persist);
        break;
    case LOCATION_CHANGE_NEW:
        slot = slot_new(mgr, tsid);
        c = slot_start_upsert(slot, req, cfg);
        c->flush_ms = flush_ms;
        c->lazy = lazy;
        break;
    case LOCATION_CHANGE_RESTART:
        c = slot_start_upsert(slot, req, cfg);
        c->flush_ms = flush_ms;
        c->lazy = lazy;
        break;
    case LOCATION_CHANGE_COUNT:
        break;
    }
    location_config_finish(cfg);
}

json_t *tenant_location_config_list_json(const TenantManager *mgr)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < mgr->n_slots; i++) {
        const TenantSlot *slot = mgr->slots[i];
        json_t *cfg = slot->has_config ? location_config_to_json(&slot->config) : json_null();
        json_array_append_new(arr, json_pack("[o,o]", json_from_tsid(&slot->tsid), cfg));
    }
    return json_pack("{s:o}", "tenant_shards", arr);
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

json_t *tenant_info_json(const TenantSlot *slot, bool details)
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
            if (slot->timelines[i]->state != TIMELINE_LOADING)
                json_array_append_new(tls, json_from_timeline_id(&slot->timelines[i]->id));
        }
        json_object_set_new(o, "timelines", tls);
    }
    return o;
}

/* ---- tenant delete ---- */

typedef struct TenantDeleteOp {
    TenantManager *mgr;
    HttpRequest *req;
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

static void tenant_delete_remote_work(void *arg)
{
    TenantDeleteOp *op = arg;
    RemoteListing l = {0};
    op->ok = failpoint_check("tenant-delete-remote", &op->err) &&
             remote_list(op->rs, op->prefix, &l, &op->err);
    size_t plen = strlen(op->prefix);
    for (size_t i = 0; op->ok && i < l.n; i++) {
        const char *key = l.items[i].key;
        if (op->all_shards && key[plen] != '/' && key[plen] != '-')
            continue;
        op->ok = remote_delete(op->rs, key, &op->err);
        if (op->ok)
            op->deleted++;
    }
    remote_listing_free(&l);
    if (op->ok && !op->all_shards)
        op->ok = remote_delete_prefix(op->rs, op->prefix, &op->err);
}

static void tenant_delete_remote_done(void *arg)
{
    TenantDeleteOp *op = arg;
    char tsid[TSID_STR_SIZE];
    tsid_format(&op->tsid, tsid);
    if (op->ok) {
        log_info("tenant %s deleted: %zu remote objects under %s", tsid, op->deleted, op->prefix);
        pageserver_reply_json(op->mgr->app, op->req, 200, NULL);
    } else {
        err_prefix(&op->err, "deleting remote data of %s: ", tsid);
        pageserver_reply_error(op->mgr->app, op->req, &op->err);
    }
    free(op);
}

static void tenant_delete_local_done(TenantDeleteOp *op)
{
    if (op->pending > 0)
        return;
    if (op->failed) {
        pageserver_reply_error(op->mgr->app, op->req, &op->err);
        free(op);
        return;
    }
    op->rs = op->mgr->app->remote;
    op->all_shards = op->tsid.count == 0;
    if (op->all_shards)
        remote_layout_tenant_all_shards_prefix(&op->tsid.tenant_id, op->prefix);
    else
        remote_layout_tenant_shard_prefix(&op->tsid, op->prefix);
    worker_pool_submit(op->mgr->app->workers, tenant_delete_remote_work, tenant_delete_remote_done,
                       op);
}

static void on_slot_deleted(void *arg, TenantSlot *slot, bool ok, const Err *err)
{
    TenantDeleteOp *op = arg;
    if (!ok && !op->failed) {
        op->failed = true;
        op->err = *err;
    }
    op->pending--;
    tenant_delete_local_done(op);
}

static void on_absent_removed(void *arg, bool ok, const Err *err)
{
    on_slot_deleted(arg, NULL, ok, err);
}

void tenant_delete(TenantManager *mgr, HttpRequest *req, const TenantShardId *tsid)
{
    Err err = {0};
    if (!tenant_manager_check_ready(mgr, &err)) {
        pageserver_reply_error(mgr->app, req, &err);
        return;
    }
    TenantSlot *targets[256];
    size_t n = 0;
    for (size_t i = 0; i < mgr->n_slots && n < 256; i++) {
        TenantSlot *s = mgr->slots[i];
        bool match = tsid->count == 0 ? tenant_id_eq(&s->tsid.tenant_id, &tsid->tenant_id)
                                      : tsid_eq(&s->tsid, tsid);
        if (!match)
            continue;
        if (s->change != NULL) {
            err_set(&err, ERR_UNAVAILABLE, "tenant shard %s is being changed (%s); retry",
                    s->tsid_str, slot_state_name(s->state));
            pageserver_reply_error(mgr->app, req, &err);
            return;
        }
        targets[n++] = s;
    }
    bool exact_slot = false;
    for (size_t i = 0; i < n; i++)
        exact_slot = exact_slot || tsid_eq(&targets[i]->tsid, tsid);
    TenantDeleteOp *op = xcalloc(1, sizeof(*op));
    op->mgr = mgr;
    op->req = req;
    op->tsid = *tsid;
    op->pending = (int)n + 1;
    for (size_t i = 0; i < n; i++) {
        SlotChange *c = slot_start_remove(targets[i], CHANGE_DELETE, NULL);
        c->done = on_slot_deleted;
        c->done_arg = op;
    }
    /* the exact id's directory may exist without a slot (leftovers): remove it too. With a slot
     * of that id, the slot's own removal does it once its jobs have ended; removing it here too
     * would race with them. */
    if (exact_slot) {
        on_absent_removed(op, true, NULL);
        return;
    }
    char dir[PATH_MAX];
    char tsid_str[TSID_STR_SIZE];
    tsid_format(tsid, tsid_str);
    str_printf(dir, sizeof(dir), "%s/%s/%s", mgr->app->cfg.workdir, PAGESERVER_TENANTS_DIR,
               tsid_str);
    submit_remove(mgr->app, dir, on_absent_removed, op);
}

/* ---- tenant config ---- */

typedef struct ConfigOp {
    TenantManager *mgr;
    HttpRequest *req;
    int pending;
    bool failed;
    Err err;
} ConfigOp;

static void on_config_swapped(void *arg, TenantSlot *slot, bool ok, const Err *err)
{
    ConfigOp *op = arg;
    if (!ok && !op->failed) {
        op->failed = true;
        op->err = *err;
    }
    if (--op->pending > 0)
        return;
    if (op->failed)
        pageserver_reply_error(op->mgr->app, op->req, &op->err);
    else
        pageserver_reply_json(op->mgr->app, op->req, 200, NULL);
    free(op);
}

void tenant_config_set(TenantManager *mgr, HttpRequest *req, const TenantConfigRequest *r,
                       bool patch)
{
    Err err = {0};
    if (!tenant_manager_check_ready(mgr, &err)) {
        pageserver_reply_error(mgr->app, req, &err);
        return;
    }
    TenantSlot *targets[256];
    size_t n = 0;
    for (size_t i = 0; i < mgr->n_slots && n < 256; i++) {
        TenantSlot *s = mgr->slots[i];
        if (!tenant_id_eq(&s->tsid.tenant_id, &r->tenant_id))
            continue;
        if (!s->has_config) {
            continue;
        }
        if (s->change != NULL) {
            err_set(&err, ERR_CONFLICT, "tenant shard %s is being changed (%s); retry", s->tsid_str,
                    slot_state_name(s->state));
            pageserver_reply_error(mgr->app, req, &err);
            return;
        }
        targets[n++] = s;
    }
    if (n == 0) {
        char id[ID_STR_SIZE];
        tenant_id_format(&r->tenant_id, id);
        err_set(&err, ERR_NOT_FOUND, "tenant %s not found on this pageserver", id);
        pageserver_reply_error(mgr->app, req, &err);
        return;
    }
    ConfigOp *op = xcalloc(1, sizeof(*op));
    op->mgr = mgr;
    op->req = req;
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
        SlotChange *c = change_new(s, CHANGE_SWAP, NULL);
        location_config_copy(&c->cfg, &s->config);
        location_config_set_tenant_conf(&c->cfg, &conf);
        c->done = on_config_swapped;
        c->done_arg = op;
        slot_persist(s, &c->cfg, after_swap_persist);
    }
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
        TenantSlot *slot = slot_new(mgr, &tsid);
        char path[PATH_MAX];
        str_printf(path, sizeof(path), "%s/%s", slot->dir, PAGESERVER_TENANT_CONFIG_FILE);
        char *text = NULL;
        size_t len = 0;
        json_t *json = NULL;
        LocationConfig cfg;
        location_config_init(&cfg);
        if (!fs_read_file(path, PAGESERVER_LOCATION_CONFIG_MAX_BYTES, &text, &len, &e) ||
            !json_parse_text(text, len, &json, &e) || !location_config_decode(json, &cfg, &e) ||
            !location_config_check_tsid(&cfg, &tsid, &e)) {
            log_err(&e, "local location config unusable (the shard counts as unknown)");
        } else {
            slot_apply_config(slot, &cfg);
        }
        location_config_finish(&cfg);
        json_decref(json);
        free(text);
    }
    closedir(d);
    log_info("%zu tenant shards found in the work directory", mgr->n_slots);
    return true;
}

static void on_startup_change_done(void *arg, TenantSlot *slot, bool ok, const Err *err)
{
    if (!ok)
        log_err(err, "startup: applying the re-attach answer");
}

static void startup_remove(TenantSlot *slot)
{
    log_info("tenant shard %s: not attached here any more; removing local data", slot->tsid_str);
    SlotChange *c = slot_start_remove(slot, CHANGE_DETACH, NULL);
    c->done = on_startup_change_done;
}

static void startup_upsert(TenantSlot *slot, const LocationConfig *cfg)
{
    SlotChange *c = slot_start_upsert(slot, NULL, cfg);
    c->done = on_startup_change_done;
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
