/*
 * slot.c: one tenant shard slot: its state machine table, its changes (UPSERT, SWAP, DETACH,
 * DELETE; slot.h) and the worker jobs they run (config write, attach from remote storage, local
 * removal).
 */
#include "pageserver/slot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "shared/failpoint.h"
#include "shared/fsm.h"
#include "shared/fsutil.h"
#include "shared/fsync_group.h"
#include "shared/json.h"
#include "shared/log.h"
#include "shared/metrics.h"
#include "shared/remote_storage.h"
#include "shared/worker_pool.h"

#include "pageserver/app.h"
#include "pageserver/defaults.h"
#include "pageserver/deletion_queue.h"
#include "pageserver/heatmap.h"
#include "pageserver/remote_layout.h"
#include "pageserver/secondary.h"
#include "pageserver/tenant.h"

/* ---- the state machine table ---- */

static const char *const SLOT_STATE_NAMES[SLOT_STATE_COUNT] = {
    [SLOT_INIT] = "Init",         [SLOT_PERSISTING] = "Persisting", [SLOT_ATTACHING] = "Attaching",
    [SLOT_ACTIVE] = "Active",     [SLOT_SECONDARY] = "Secondary",   [SLOT_BROKEN] = "Broken",
    [SLOT_STOPPING] = "Stopping", [SLOT_REMOVING] = "Removing",     [SLOT_GONE] = "Gone",
};

static const FsmTransition SLOT_TRANSITIONS[] = {
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
    {SLOT_STOPPING, SLOT_GONE, "ignore: in-flight work done, local data kept"},
    {SLOT_REMOVING, SLOT_GONE, "local data removed"},
    {SLOT_REMOVING, SLOT_BROKEN, "removal failed"},
};

static const int SLOT_TERMINAL[] = {SLOT_GONE};

const FsmDef SLOT_FSM = {
    .name = "slot",
    .doc = "docs/pageserver.md",
    .state_names = SLOT_STATE_NAMES,
    .n_states = SLOT_STATE_COUNT,
    .initial = SLOT_INIT,
    .terminal = SLOT_TERMINAL,
    .n_terminal = FSM_COUNT(SLOT_TERMINAL),
    .transitions = SLOT_TRANSITIONS,
    .n_transitions = FSM_COUNT(SLOT_TRANSITIONS),
    .log_info = true,
};
FSM_REGISTER(SLOT_FSM)

const char *slot_state_name(SlotState s)
{
    return fsm_state_name(&SLOT_FSM, (int)s);
}

/* ---- changes ---- */

typedef enum ChangeKind {
    CHANGE_UPSERT,
    CHANGE_SWAP,
    CHANGE_DETACH,
    CHANGE_DELETE,
    CHANGE_IGNORE
} ChangeKind;

struct SlotChange {
    TenantSlot *slot;
    ChangeKind kind;
    LocationConfig cfg;  /* UPSERT / SWAP: the new config */
    PageserverJsonFn cb; /* NULL once answered */
    void *cb_arg;
    long flush_ms; /* < 0: none */
    bool lazy;
    struct event *timer;
    int64_t deadline_ms;
    bool waiting_flush;
    struct AttachJob *attach; /* UPSERT: the attach its config write began (slot_persist) */
};

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void slot_continue_change(TenantSlot *slot);

typedef struct AttachJob AttachJob;
static AttachJob *attach_job_new(TenantSlot *slot, Generation gen);
static void attach_begin(AttachJob *j);
static void attach_job_free(AttachJob *j);

/* ---- lifecycle ---- */

static void gauge_slot_state(TenantManager *mgr, SlotState s, double delta)
{
    MetricGauge *g = mgr->app->m.slots_by_state[s];
    if (g != NULL)
        metric_gauge_add(g, delta);
}

TenantSlot *slot_new(TenantManager *mgr, const TenantShardId *tsid)
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
    tenant_manager_link(mgr, slot);
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

static void change_free(SlotChange *c)
{
    if (c->timer != NULL)
        event_free(c->timer);
    if (c->attach != NULL)
        attach_job_free(c->attach);
    location_config_finish(&c->cfg);
    free(c);
}

void slot_free(TenantSlot *slot)
{
    heatmap_slot_free(slot);
    secondary_slot_free(slot);
    if (slot->change != NULL)
        change_free(slot->change);
    slot_drop_timelines(slot);
    free(slot->timelines);
    location_config_finish(&slot->config);
    gauge_slot_state(slot->mgr, slot->state, -1);
    free(slot);
}

/* ---- slots ---- */

bool slot_set_state(TenantSlot *slot, SlotState to)
{
    SlotState from = slot->state;
    if (from == to)
        return true;
    if (!fsm_set_state(&SLOT_FSM, &slot->state, to, slot->tsid_str))
        return false;
    tenant_manager_reads_changed(slot->mgr);
    gauge_slot_state(slot->mgr, from, -1);
    gauge_slot_state(slot->mgr, to, 1);
    /* background work that belongs to a state starts and stops with it */
    if (from == SLOT_ACTIVE)
        heatmap_slot_stop(slot);
    if (from == SLOT_SECONDARY)
        secondary_slot_stop(slot);
    if (to == SLOT_ACTIVE)
        heatmap_slot_refresh(slot);
    if (to == SLOT_SECONDARY)
        secondary_slot_refresh(slot);
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

void slot_apply_config(TenantSlot *slot, const LocationConfig *cfg)
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
    tenant_manager_reads_changed(slot->mgr);
    heatmap_slot_refresh(slot);   /* mode, heatmap_period */
    secondary_slot_refresh(slot); /* secondary_conf.warm */
}

/* ---- worker jobs: config write, attach, local removal ---- */

typedef struct PersistJob {
    TenantSlot *slot;
    FsyncGroup *parent_sync; /* the tenants directory's, for a new shard directory */
    char dir[PATH_MAX];
    char path[PATH_MAX];
    char *text;
    bool new_file; /* the file did not exist before: a failed write removes what it left */
    bool ok;
    Err err;
    AttachJob *attach; /* begun once the write succeeded, or NULL (slot_persist) */
    void (*then)(TenantSlot *slot, bool ok, const Err *err);
} PersistJob;

static void persist_work(WorkerJob *job, void *arg)
{
    PersistJob *j = arg;
    /* For a new shard: its directory, made durable by an fsync of the tenants directory shared
     * with the other new shards of the moment (FsyncGroup), then the file: its fsync, and the
     * shard directory's for the rename. The timelines directory is not created here: the first
     * timeline directory made in it (bootstrap, import, a layer download, a secondary's
     * download, a split's links: all fs_mkdir_p) creates it, and everything that reads it takes
     * a missing one as empty. A shard that never gets a timeline (most of a burst of creates)
     * costs one inode allocation less, the most expensive part of a new shard here. */
    bool created = false;
    j->ok = failpoint_check("location-config-persist", &j->err) &&
            fs_mkdir(j->dir, PAGESERVER_DIR_MODE, &created, &j->err) &&
            (!created || fsync_group_sync(j->parent_sync, &j->err)) &&
            fs_write_atomic(j->path, j->text, strlen(j->text), &j->err) &&
            failpoint_check("tenant-file-written", &j->err); /* as a failed final fsync */
    if (j->ok && j->attach != NULL)
        attach_begin(j->attach);
    /* fs_write_atomic can fail after its rename (the directory fsync): a new file must not stay
     * behind, half durable, to be found at the next start (an ignore marker would hide the
     * tenant whose ignore was refused). Best effort: the write's error is what is reported. */
    Err undo;
    if (!j->ok && j->new_file && unlink(j->path) == 0 && !fs_fsync_dir(j->dir, &undo))
        log_err(&undo, "removing a file whose write failed");
}

static void persist_done(void *arg, WorkerOutcome outcome)
{
    PersistJob *j = arg;
    if (!worker_outcome_err(outcome, "writing the location config", &j->err))
        j->ok = false;
    TenantSlot *slot = j->slot;
    free(j->text);
    if (j->attach != NULL && j->ok && slot->change != NULL)
        slot->change->attach = j->attach; /* slot_start_attach takes it */
    else if (j->attach != NULL)
        attach_job_free(j->attach);
    void (*then)(TenantSlot *, bool, const Err *) = j->then;
    bool ok = j->ok;
    Err err = j->err;
    free(j);
    slot->inflight--; /* not slot_job_end: the continuation decides what comes next */
    then(slot, ok, &err);
}

/* slot_write_file: write text (taken over) as <dir>/<name> (temp name, fsync, rename, fsync dir)
 * on a worker, then call then on the loop. new_file: name does not exist yet, and a failed write
 * removes it again. attach (taken over, or NULL): begun on the same worker after the write, and
 * handed to the slot's change (SlotChange.attach). */
static void slot_write_file(TenantSlot *slot, const char *name, char *text, bool new_file,
                            AttachJob *attach,
                            void (*then)(TenantSlot *slot, bool ok, const Err *err))
{
    PersistJob *j = xcalloc(1, sizeof(*j));
    j->new_file = new_file;
    j->slot = slot;
    j->parent_sync = &slot->mgr->tenants_dir_sync;
    str_copy(j->dir, sizeof(j->dir), slot->dir);
    str_printf(j->path, sizeof(j->path), "%s/%s", slot->dir, name);
    j->text = text;
    j->attach = attach;
    j->then = then;
    slot->inflight++;
    /* SYNC: on the pool's sync threads, many at once (group commit in the filesystem's journal),
     * never behind uploads or attaches; no deadline: see PAGESERVER_*_DEADLINE_MS */
    WorkerJobSpec spec = {.cls = WORKER_CLASS_SYNC};
    worker_pool_start(slot->mgr->app->workers, &spec, persist_work, persist_done, j);
}

/* slot_persist: write cfg as <dir>/config. attach: an attached cfg is attached next (then is
 * after_persist), and the same worker job begins that attach once the config is durable
 * (attach_begin: the remote listing, and for a shard without timelines, such as every new one,
 * the whole attach): one thread handoff and back less per location_config. */
static void slot_persist(TenantSlot *slot, const LocationConfig *cfg, bool attach,
                         void (*then)(TenantSlot *slot, bool ok, const Err *err))
{
    json_t *json = location_config_to_json(cfg);
    char *text = json_dumps_compact(json);
    json_decref(json);
    AttachJob *a =
        attach && location_config_is_attached(cfg) ? attach_job_new(slot, cfg->generation) : NULL;
    slot_write_file(slot, PAGESERVER_TENANT_CONFIG_FILE, text, false, a, then);
}

typedef struct AttachTimeline {
    TimelineId id;
    IndexPart *index;
    Generation picked;
    bool *resident;
} AttachTimeline;

struct AttachJob {
    TenantSlot *slot;
    uint64_t incarnation;
    TenantShardId tsid;
    Generation gen;
    char dir[PATH_MAX];
    RemoteStorage *rs;
    struct GenList *lists; /* the remote listing: index generations per timeline */
    size_t n_lists, cap_lists;
    bool listed; /* attach_list ran */
    bool loaded; /* attach_load ran too: the attach only waits for attach_done */
    AttachTimeline *tls;
    size_t n_tls;
    bool ok;
    Err err;
};

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

/* attach_keep_local: one entry of a timeline directory: kept when the index names it with this
 * size, else removed. */
static bool attach_keep_local(const char *path, const char *name, void *arg)
{
    AttachTimeline *t = arg;
    struct stat st;
    bool keep = false;
    for (size_t i = 0; i < t->index->n_layers && !keep; i++) {
        const IndexLayer *l = &t->index->layers[i];
        char local[LAYER_NAME_SIZE + GENERATION_SUFFIX_SIZE];
        layer_obj_local_name(l->name, l->generation, local, sizeof(local));
        if (strcmp(local, name) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
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
    return true;
}

/* attach_scan_local: keep the local layer files the index names (with the right size) and remove
 * everything else in the timeline directory (partial downloads, layers of other generations). */
static void attach_scan_local(const char *tl_dir, AttachTimeline *t)
{
    t->resident = xcalloc(t->index->n_layers ? t->index->n_layers : 1, sizeof(bool));
    Err err = {0};
    if (!fs_dir_each(tl_dir, true, attach_keep_local, t, &err))
        log_err(&err, "attach: scanning local layer files");
}

/* attach_drop_unknown_timeline: a local timeline directory that remote storage does not know is
 * a leftover. */
static bool attach_drop_unknown_timeline(const char *path, const char *name, void *arg)
{
    const AttachJob *j = arg;
    if (name[0] == '.')
        return true;
    TimelineId id;
    Err ignore = {0};
    bool known = false;
    if (timeline_id_parse(name, &id, &ignore)) {
        for (size_t i = 0; i < j->n_tls && !known; i++)
            known = timeline_id_eq(&j->tls[i].id, &id);
    }
    if (!known) {
        log_info("attach: removing local timeline directory %s (not in remote storage)", path);
        if (!fs_remove_tree(path, &ignore))
            log_err(&ignore, "attach: removing a stale timeline directory");
    }
    return true;
}

/* attach_list: list the shard's remote timelines and the index generations of each. */
static void attach_list(AttachJob *j)
{
    RemoteListing listing = {0};
    char prefix[REMOTE_KEY_SIZE];
    remote_layout_timelines_prefix(&j->tsid, prefix);
    j->listed = true;
    j->ok = failpoint_check("attach-before-load", &j->err) &&
            remote_list(j->rs, prefix, &listing, &j->err);
    size_t plen = strlen(prefix);
    for (size_t i = 0; j->ok && i < listing.n; i++) {
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
        GenList *gl = genlist_get(&j->lists, &j->n_lists, &j->cap_lists, &id);
        if (gl->n == gl->cap) {
            gl->cap = gl->cap ? gl->cap * 2 : 4;
            gl->gens = xrealloc(gl->gens, gl->cap * sizeof(Generation));
        }
        gl->gens[gl->n++] = g;
    }
    remote_listing_free(&listing);
}

/* attach_load: after attach_list: download each timeline's index, keep the local layer files it
 * names, remove local leftovers. */
static void attach_load(AttachJob *j)
{
    j->loaded = true;
    j->tls = xcalloc(j->n_lists ? j->n_lists : 1, sizeof(*j->tls));
    for (size_t i = 0; i < j->n_lists && j->ok; i++) {
        const GenList *gl = &j->lists[i];
        Generation picked = GENERATION_NONE;
        bool found = false;
        remote_layout_pick_index_generation(gl->gens, gl->n, j->gen, &picked, &found);
        char tl_str[ID_STR_SIZE];
        timeline_id_format(&gl->id, tl_str);
        if (!found) {
            log_warn("attach %s: timeline %s has only indexes of newer generations than %" PRId64
                     "; skipped",
                     j->dir, tl_str, j->gen);
            continue;
        }
        char key[REMOTE_KEY_SIZE];
        remote_layout_index_key(&j->tsid, &gl->id, picked, key);
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
        t->id = gl->id;
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
        Err err = {0};
        if (!fs_dir_each(tls_dir, true, attach_drop_unknown_timeline, j, &err))
            log_err(&err, "attach: scanning local timeline directories");
    }
}

/* attach_begin: on the config write's worker, right after the write: the listing, and when it
 * shows no timeline (nothing to download: a new shard) the rest, which then costs no more than
 * a directory scan. A shard with timelines is loaded by an IO job (slot_start_attach): index
 * downloads do not hold the sync threads that location config writes wait for. */
static void attach_begin(AttachJob *j)
{
    attach_list(j);
    if (j->ok && j->n_lists == 0)
        attach_load(j);
}

static void attach_work(WorkerJob *job, void *arg)
{
    (void)job;
    AttachJob *j = arg;
    if (!j->listed)
        attach_list(j);
    if (j->ok && !j->loaded)
        attach_load(j);
}

static void attach_job_free(AttachJob *j)
{
    for (size_t i = 0; i < j->n_lists; i++)
        free(j->lists[i].gens);
    free(j->lists);
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
        if (tl->state == TIMELINE_IMPORTING && slot_may_upload(slot))
            import_task_start(tl); /* resume an import interrupted by a restart or a move */
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

static void attach_done(void *arg, WorkerOutcome outcome)
{
    AttachJob *j = arg;
    if (!worker_outcome_err(outcome, "attach", &j->err))
        j->ok = false;
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
            (void)timeline_set_state(tl, TIMELINE_BROKEN);
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
            (void)timeline_set_state(tl, TIMELINE_BROKEN);
            str_printf(tl->broken_reason, sizeof(tl->broken_reason),
                       "ancestor timeline %s not found", anc);
        }
    }
    log_info("tenant shard %s attached in generation %" PRId64 ": %zu timelines", slot->tsid_str,
             slot_generation(slot), slot->n_timelines);
    (void)slot_set_state(slot, SLOT_ACTIVE);
    for (size_t i = 0; i < slot->n_timelines; i++)
        timeline_compute_sizes(slot->timelines[i]); /* logical size at load (read_path.h) */
    slot_on_active(slot, j);
    attach_job_free(j);
    slot_continue_change(slot);
}

static AttachJob *attach_job_new(TenantSlot *slot, Generation gen)
{
    AttachJob *j = xcalloc(1, sizeof(*j));
    j->slot = slot;
    j->tsid = slot->tsid;
    j->gen = gen;
    j->rs = slot->mgr->app->remote;
    str_copy(j->dir, sizeof(j->dir), slot->dir);
    return j;
}

/* slot_start_attach: the attach the change's config write began (SlotChange.attach) when it is
 * for this generation, else a new one. One whose work is all done completes here, before this
 * returns (the change may be finished and freed by then); the rest goes to an IO job. */
void slot_start_attach(TenantSlot *slot)
{
    if (!slot_set_state(slot, SLOT_ATTACHING))
        return;
    slot->incarnation++;
    slot->broken_reason[0] = '\0';
    AttachJob *j = NULL;
    if (slot->change != NULL && slot->change->attach != NULL) {
        j = slot->change->attach;
        slot->change->attach = NULL;
        if (j->gen != slot_generation(slot)) {
            attach_job_free(j);
            j = NULL;
        }
    }
    if (j == NULL)
        j = attach_job_new(slot, slot_generation(slot));
    j->incarnation = slot->incarnation;
    slot->inflight++;
    if (j->loaded) {
        attach_done(j, WORKER_RAN);
        return;
    }
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO}; /* no deadline: see PAGESERVER_*_DEADLINE_MS */
    worker_pool_start(slot->mgr->app->workers, &spec, attach_work, attach_done, j);
}

typedef struct RemoveJob {
    char dir[PATH_MAX];
    bool ok;
    Err err;
    void (*then)(void *arg, bool ok, const Err *err);
    void *arg;
} RemoveJob;

static void remove_work(WorkerJob *job, void *arg)
{
    RemoveJob *j = arg;
    j->ok = failpoint_check("tenant-remove-local", &j->err) && fs_remove_tree(j->dir, &j->err);
}

static void remove_done(void *arg, WorkerOutcome outcome)
{
    RemoveJob *j = arg;
    if (!worker_outcome_err(outcome, "removing local data", &j->err))
        j->ok = false;
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
    WorkerJobSpec spec = {.cls = WORKER_CLASS_IO}; /* no deadline: see PAGESERVER_*_DEADLINE_MS */
    worker_pool_start(app->workers, &spec, remove_work, remove_done, j);
}

/* ---- change machinery ---- */

static json_t *upsert_result(const TenantSlot *slot, const LocationConfig *cfg)
{
    json_t *shard = json_pack("{s:o,s:I}", "shard_id", json_from_tsid(&slot->tsid), "node_id",
                              (json_int_t)slot->mgr->app->cfg.id);
    json_t *stripe = cfg->shard_count > 0 ? json_integer(cfg->shard_stripe_size) : json_null();
    return json_pack("{s:[o],s:o}", "shards", shard, "stripe_size", stripe);
}

/* slot_detach_result: a Detached location_config answers in the same shape as an attach, with no
 * shard held here, so a controller decodes every location_config reply the same way. */
json_t *slot_detach_result(void)
{
    return json_pack("{s:[],s:n}", "shards", "stripe_size");
}

/* change_answer: call the change's callback now (once); the change may go on without it. */
static void change_answer(SlotChange *c, const Err *err)
{
    PageserverJsonFn cb = c->cb;
    if (cb == NULL)
        return;
    c->cb = NULL;
    if (err != NULL) {
        cb(err, NULL, c->cb_arg);
    } else if (c->kind == CHANGE_UPSERT || c->kind == CHANGE_SWAP) {
        cb(NULL, upsert_result(c->slot, &c->cfg), c->cb_arg);
    } else if (c->kind == CHANGE_DETACH) {
        cb(NULL, slot_detach_result(), c->cb_arg);
    } else {
        cb(NULL, json_object(), c->cb_arg);
    }
}

static void change_finish(SlotChange *c, const Err *err)
{
    c->slot->change = NULL;
    change_answer(c, err);
    change_free(c);
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

static void after_flush_heatmap(const Err *err, void *arg)
{
    SlotChange *c = arg;
    if (err != NULL)
        log_err(err, "location_config flush: heatmap upload");
    change_finish(c, NULL);
}

/* change_after_settled: the slot reached ACTIVE, BROKEN or SECONDARY: flush if asked (the upload
 * queues, then a heatmap), answer. */
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
    if (c->flush_ms >= 0 && slot->state == SLOT_ACTIVE && slot_may_upload(slot)) {
        c->waiting_flush = false; /* the heatmap's callback answers, not the timer */
        heatmap_upload_now(slot, true, after_flush_heatmap, c);
        return;
    }
    change_finish(c, NULL);
}

static void on_change_timer(evutil_socket_t fd, short what, void *arg)
{
    SlotChange *c = arg;
    TenantSlot *slot = c->slot;
    if (c->waiting_flush) {
        change_after_settled(c);
        return;
    }
    if (slot->state == SLOT_ATTACHING && c->cb != NULL) {
        log_warn("tenant shard %s: attach still running after %ld ms; answering now",
                 slot->tsid_str, PAGESERVER_ATTACH_WAIT_MS);
        change_answer(c, NULL);
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
        import_task_cancel(slot->timelines[i]);
        (void)timeline_set_state(slot->timelines[i], TIMELINE_STOPPING);
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
        if (c->kind == CHANGE_IGNORE) {
            /* local files stay, with the marker: forget the slot */
            if (!slot_set_state(slot, SLOT_GONE))
                return;
            tenant_manager_unlink(slot->mgr, slot);
            change_finish(c, NULL);
            slot_free(slot);
        } else if (c->kind == CHANGE_UPSERT) {
            if (!slot_set_state(slot, SLOT_PERSISTING))
                return;
            slot_persist(slot, &c->cfg, true, after_persist);
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
            change_finish(c, &e);
            return;
        }
        slot_set_broken(slot, &e);
        change_finish(c, &e);
        return;
    }
    slot_apply_config(slot, &c->cfg);
    if (slot->mgr->stopping) {
        change_finish(c, NULL);
        return;
    }
    if (location_config_is_attached(&slot->config)) {
        /* before the attach: one its config write already did ends right away, with c */
        if (c->lazy)
            change_answer(c, NULL);
        else
            change_arm_timer(c, PAGESERVER_ATTACH_WAIT_MS);
        slot_start_attach(slot);
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
        change_finish(c, &e);
        return;
    }
    LocationMode old_mode = slot->config.mode;
    slot_apply_config(slot, &c->cfg);
    if (old_mode != slot->config.mode)
        log_info("tenant shard %s: mode %s -> %s in place (generation %" PRId64 ")", slot->tsid_str,
                 location_config_mode_name(old_mode), location_config_mode_name(slot->config.mode),
                 slot_generation(slot));
    for (size_t i = 0; i < slot->n_timelines; i++) {
        timeline_uploads_kick(slot->timelines[i]);
        if (slot->timelines[i]->state == TIMELINE_IMPORTING && slot_may_upload(slot))
            import_task_start(slot->timelines[i]); /* e.g. AttachedStale -> AttachedSingle */
    }
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
        change_finish(c, &e);
        return;
    }
    (void)slot_set_state(slot, SLOT_GONE);
    tenant_manager_unlink(slot->mgr, slot);
    change_finish(c, NULL);
    slot_free(slot);
}

static SlotChange *change_new(TenantSlot *slot, ChangeKind kind, PageserverJsonFn cb, void *arg)
{
    SlotChange *c = xcalloc(1, sizeof(*c));
    c->slot = slot;
    c->kind = kind;
    c->cb = cb;
    c->cb_arg = arg;
    c->flush_ms = -1;
    location_config_init(&c->cfg);
    slot->change = c;
    return c;
}

void slot_change_upsert(TenantSlot *slot, const LocationConfig *cfg, long flush_ms, bool lazy,
                        PageserverJsonFn cb, void *arg)
{
    SlotChange *c = change_new(slot, CHANGE_UPSERT, cb, arg);
    location_config_copy(&c->cfg, cfg);
    c->flush_ms = flush_ms;
    c->lazy = lazy;
    if (slot->state == SLOT_INIT) {
        if (slot_set_state(slot, SLOT_PERSISTING))
            slot_persist(slot, &c->cfg, true, after_persist);
    } else {
        slot_begin_stop(slot);
    }
}

void slot_change_swap(TenantSlot *slot, const LocationConfig *cfg, long flush_ms,
                      PageserverJsonFn cb, void *arg)
{
    SlotChange *c = change_new(slot, CHANGE_SWAP, cb, arg);
    location_config_copy(&c->cfg, cfg);
    c->flush_ms = flush_ms;
    slot_persist(slot, &c->cfg, false, after_swap_persist);
}

void slot_change_remove(TenantSlot *slot, bool delete, PageserverJsonFn cb, void *arg)
{
    (void)change_new(slot, delete ? CHANGE_DELETE : CHANGE_DETACH, cb, arg);
    if (slot->state == SLOT_INIT) {
        if (slot_set_state(slot, SLOT_REMOVING))
            submit_remove(slot->mgr->app, slot->dir, after_remove, slot);
    } else {
        slot_begin_stop(slot);
    }
}

static void after_ignore_marker(TenantSlot *slot, bool ok, const Err *err)
{
    SlotChange *c = slot->change;
    if (!ok) {
        Err e = *err;
        err_prefix(&e, "writing the ignore marker: ");
        change_finish(c, &e); /* the slot runs on as it was */
        return;
    }
    log_info("tenant shard %s: ignore marker durable; stopping and forgetting the slot",
             slot->tsid_str);
    slot_begin_stop(slot);
}

void slot_change_ignore(TenantSlot *slot, PageserverJsonFn cb, void *arg)
{
    (void)change_new(slot, CHANGE_IGNORE, cb, arg);
    slot_write_file(slot, PAGESERVER_TENANT_IGNORED_FILE, xstrdup(""), true, NULL,
                    after_ignore_marker);
}

typedef struct LocalDirRemoval {
    PageserverDoneFn cb;
    void *arg;
} LocalDirRemoval;

static void after_local_dir_removed(void *arg, bool ok, const Err *err)
{
    LocalDirRemoval *r = arg;
    r->cb(ok ? NULL : err, r->arg);
    free(r);
}

void slot_remove_local_dir(PageserverApp *app, const char *dir, PageserverDoneFn cb, void *arg)
{
    LocalDirRemoval *r = xcalloc(1, sizeof(*r));
    r->cb = cb;
    r->arg = arg;
    submit_remove(app, dir, after_local_dir_removed, r);
}
