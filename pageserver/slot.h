/*
 * slot.h: one tenant shard slot ("location") on this pageserver: its LocationConfig, timelines,
 * and the state machine that changes it. The TenantManager (tenant.h) owns the slots and decides
 * which change a request means; this module runs the change.
 *
 * The slot is a state machine defined through shared/fsm.h (SLOT_FSM; its table is in slot.c;
 * slot_set_state checks and logs every transition; tests/unit/test_fsm_diagrams.c checks the
 * diagram in docs/pageserver.md against the table):
 *
 *   INIT        created, nothing started (startup, or a new location_config)
 *   PERSISTING  writing the new config to <workdir>/tenants/<tsid>/config (worker)
 *   ATTACHING   loading the timelines from remote storage (worker)
 *   ACTIVE      attached: readable, uploads per mode
 *   SECONDARY   holds its config, not readable
 *   BROKEN      the attach failed; reason kept; only a new location_config or delete helps
 *   STOPPING    waiting for in-flight work before a restart, detach or delete
 *   REMOVING    deleting local (and for tenant delete, remote) data (worker)
 *   GONE        removed from the manager; freed
 *
 * A slot in PERSISTING, ATTACHING, STOPPING or REMOVING is "being changed": another upsert gets
 * 409, reads get 503. A same-generation change of an attached slot is applied in place (no state
 * change, only a config write), during which upserts also get 409.
 *
 * Changes (at most one per slot, slot->change):
 *   UPSERT (new slot, or restart): [STOPPING: wait for in-flight work, drop timelines] ->
 *          PERSISTING (config written) -> ATTACHING -> ACTIVE | BROKEN, or -> SECONDARY
 *   SWAP   (same generation / secondary update): config written, then applied in place
 *   DETACH: STOPPING -> REMOVING (local data) -> GONE
 *   DELETE: like DETACH (the tenant delete operation then deletes the remote prefix)
 *   IGNORE: the marker <dir>/ignored written durably, then STOPPING -> GONE: the slot is
 *           forgotten, its local files stay (tenant_lifecycle.h)
 * Each change answers its one callback exactly once (never from inside the call that started
 * it). An attach is answered once the slot is ACTIVE or BROKEN (bounded by
 * PAGESERVER_ATTACH_WAIT_MS; `lazy` answers once the config is durable), then after waiting up
 * to flush_ms for the upload queues to be idle; the change itself may go on after its answer.
 *
 * Work that a stopping slot must wait for is counted in slot->inflight (slot_job_begin/end: worker
 * jobs, running uploads, timeline deletions); the change continues when it drops to zero.
 *
 * Everything here runs on the event loop thread.
 */
#ifndef PAGESERVER_SLOT_H
#define PAGESERVER_SLOT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/fsm.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/str.h"

#include "pageserver/app.h"
#include "pageserver/location_config.h"
#include "pageserver/timeline.h"

struct TenantManager;

typedef enum SlotState {
    SLOT_INIT,
    SLOT_PERSISTING,
    SLOT_ATTACHING,
    SLOT_ACTIVE,
    SLOT_SECONDARY,
    SLOT_BROKEN,
    SLOT_STOPPING,
    SLOT_REMOVING,
    SLOT_GONE,
    SLOT_STATE_COUNT
} SlotState;

/* SLOT_FSM: the slot's transitions (shared/fsm.h; the table is in slot.c); its diagram is in
 * docs/pageserver.md. */
extern const FsmDef SLOT_FSM;

/* slot_state_name: "Init", "Persisting", ...; static storage. */
const char *slot_state_name(SlotState s);

typedef struct SlotChange SlotChange; /* the change in progress (slot.c) */

typedef struct TenantSlot {
    struct TenantManager *mgr;
    TenantShardId tsid;
    char tsid_str[TSID_STR_SIZE];
    SlotState state;
    bool has_config;       /* config holds the last persisted LocationConfig */
    LocationConfig config; /* echoed by GET location_config */
    ShardIdentity shard;
    char broken_reason[ERR_MSG_SIZE];
    char dir[PATH_MAX]; /* <workdir>/tenants/<tsid> */

    Timeline **timelines;
    size_t n_timelines, cap_timelines;

    int inflight;                     /* worker jobs and background operations that use the slot */
    SlotChange *change;               /* at most one; non-NULL = upserts get 409 */
    uint64_t incarnation;             /* bumped whenever the slot restarts */
    struct HeatmapUploader *heatmap;  /* heatmap.c: uploads of an attached slot, or NULL */
    struct SecondaryState *secondary; /* secondary.c: downloads of a warm secondary, or NULL */

    struct TenantSlot *hash_next; /* the manager's TenantShardId hash chain */
} TenantSlot;

/* ---- lifecycle ---- */

/* slot_new: a slot in INIT, added to mgr (tenant_manager_link). */
TenantSlot *slot_new(struct TenantManager *mgr, const TenantShardId *tsid);
/* slot_free: drops timelines and an unfinished change (its callback never runs). The slot must
 * already be unlinked from its manager. */
void slot_free(TenantSlot *slot);
/* slot_apply_config: take cfg (copied) as the slot's persisted config. */
void slot_apply_config(TenantSlot *slot, const LocationConfig *cfg);

/* ---- state ---- */

/* slot_set_state: fsm_set_state on SLOT_FSM (an unlisted transition is a bug: logged at error and
 * refused; the same state is a no-op); logs the transition at INFO ("slot <tsid>: From -> To")
 * and updates the per-state gauge. */
bool slot_set_state(TenantSlot *slot, SlotState to);
/* slot_is_busy: INIT, PERSISTING, ATTACHING, STOPPING, REMOVING. */
bool slot_is_busy(const TenantSlot *slot);
/* slot_check_readable: 404 absent (NULL) or secondary, 503 being changed, 500 broken (with the
 * reason). */
bool slot_check_readable(const TenantSlot *slot, Err *err) MUST_CHECK;
/* slot_may_upload / slot_may_delete: mode AttachedSingle/Multi, resp. AttachedSingle, active. */
bool slot_may_upload(const TenantSlot *slot);
bool slot_may_delete(const TenantSlot *slot);
Generation slot_generation(const TenantSlot *slot);
Timeline *slot_find_timeline(const TenantSlot *slot, const TimelineId *id);
void slot_add_timeline(TenantSlot *slot, Timeline *tl);
void slot_remove_timeline(TenantSlot *slot, Timeline *tl); /* does not free */
/* slot_job_begin / slot_job_end: count work that a STOPPING slot must wait for. */
void slot_job_begin(TenantSlot *slot);
void slot_job_end(TenantSlot *slot);
/* slot_timeline_dir: "<dir>/timelines/<tl>". */
void slot_timeline_dir(const TenantSlot *slot, const TimelineId *tl, char *out, size_t cap);

/* ---- changes (each answers cb exactly once; see the file comment) ---- */

/* slot_change_upsert: a new slot (INIT) or a restart with cfg (copied). flush_ms < 0: no flush.
 * result: the location_config answer {"shards": [{"shard_id", "node_id"}], "stripe_size"}. */
void slot_change_upsert(TenantSlot *slot, const LocationConfig *cfg, long flush_ms, bool lazy,
                        PageserverJsonFn cb, void *arg);
/* slot_change_swap: write cfg (copied), then apply it in place. result as for an upsert. */
void slot_change_swap(TenantSlot *slot, const LocationConfig *cfg, long flush_ms,
                      PageserverJsonFn cb, void *arg);
/* slot_change_remove: detach (delete false) or delete: stop, remove the local data, free the
 * slot. result: the detach answer {"shards": [], "stripe_size": null} (delete: {}). */
void slot_change_remove(TenantSlot *slot, bool delete, PageserverJsonFn cb, void *arg);
/* slot_change_ignore: write the ignore marker (fsynced), then stop the slot and free it, keeping
 * its local files. result: {} (the caller answers its own way). A failed marker write leaves the
 * slot as it was. */
void slot_change_ignore(TenantSlot *slot, PageserverJsonFn cb, void *arg);
/* slot_start_attach: development-mode startup of a slot with an attached persisted config. */
void slot_start_attach(TenantSlot *slot);
/* slot_remove_local_dir: remove a directory tree on a worker (leftovers of a shard without a
 * slot); cb gets the result. */
void slot_remove_local_dir(PageserverApp *app, const char *dir, PageserverDoneFn cb, void *arg);
/* slot_detach_result: the detach answer (new reference). */
json_t *slot_detach_result(void);

#endif
