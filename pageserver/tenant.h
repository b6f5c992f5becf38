/*
 * tenant.h: tenant shard slots ("locations") and the manager that owns them.
 *
 * A slot is one tenant shard on this pageserver with its LocationConfig. It is an explicit state
 * machine (SLOT_TRANSITIONS below is the table; slot_set_state checks and logs every transition;
 * docs/pageserver.md's diagram is generated from the table by `pageserver --print-slot-fsm`, and a
 * unit test compares the two):
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
 * Startup: with --control-plane-api the manager sends re-attach and applies the answer before it is
 * ready (tenant routes answer 503 until then); without, the persisted configs are loaded as they
 * are (development mode).
 *
 * Everything here runs on the event loop thread.
 */
#ifndef PAGESERVER_TENANT_H
#define PAGESERVER_TENANT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/http_server.h"
#include "shared/id.h"
#include "shared/key.h"
#include "shared/str.h"

#include "pageserver/location_config.h"
#include "pageserver/timeline.h"

struct PageserverApp;
struct event;

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

typedef struct SlotTransition {
    SlotState from;
    SlotState to;
    const char *why; /* label in the diagram */
} SlotTransition;

extern const SlotTransition SLOT_TRANSITIONS[];
extern const size_t SLOT_TRANSITIONS_COUNT;

/* slot_state_name: "Init", "Persisting", ...; static storage. */
const char *slot_state_name(SlotState s);
/* slot_transition_allowed: is from -> to a row of SLOT_TRANSITIONS? */
bool slot_transition_allowed(SlotState from, SlotState to);
/* slot_fsm_mermaid: the diagram ("stateDiagram-v2" and one line per row) appended to out. */
void slot_fsm_mermaid(StrBuf *out);

typedef struct SlotChange SlotChange; /* the location_config / delete in progress (tenant.c) */

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

    int inflight;         /* worker jobs and background operations that use the slot */
    SlotChange *change;   /* at most one; non-NULL = upserts get 409 */
    uint64_t incarnation; /* bumped whenever the slot restarts */
} TenantSlot;

typedef struct TenantManager {
    struct PageserverApp *app;
    TenantSlot **slots;
    size_t n_slots, cap_slots;
    bool ready; /* re-attach applied */
    bool stopping;
} TenantManager;

/* ---- manager ---- */

TenantManager *tenant_manager_new(struct PageserverApp *app);
/* tenant_manager_load_local: read every <workdir>/tenants/<tsid>/config (blocking: at startup,
 * before the loop). Unreadable configs are logged and treated as absent. */
bool tenant_manager_load_local(TenantManager *mgr, Err *err) MUST_CHECK;
/* tenant_manager_start: re-attach (or development mode), then ready. */
void tenant_manager_start(TenantManager *mgr);
/* tenant_manager_stop: SIGTERM: no new work; waiting requests will get 503. */
void tenant_manager_stop(TenantManager *mgr);
void tenant_manager_free(TenantManager *mgr);

/* tenant_manager_check_ready: 503 "not ready" before re-attach, 503 when stopping. */
bool tenant_manager_check_ready(const TenantManager *mgr, Err *err) MUST_CHECK;
TenantSlot *tenant_manager_find(const TenantManager *mgr, const TenantShardId *tsid);

/* tenant_manager_on_visible_lsn: the deletion queue's LSN callback. */
void tenant_manager_on_visible_lsn(void *arg, const TenantShardId *tsid, const TimelineId *tl,
                                   Lsn lsn);

/* ---- slots ---- */

/* slot_set_state: checked against SLOT_TRANSITIONS (an unlisted transition is a bug: logged at
 * error and refused); logs the transition and updates the per-state gauge. */
bool slot_set_state(TenantSlot *slot, SlotState to);
/* slot_is_busy: PERSISTING, ATTACHING, STOPPING, REMOVING. */
bool slot_is_busy(const TenantSlot *slot);
/* slot_get_readable: 404 absent or secondary, 503 being changed, 500 broken (with the reason). */
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
/* slot_timelines_dir: "<dir>/timelines/<tl>". */
void slot_timeline_dir(const TenantSlot *slot, const TimelineId *tl, char *out, size_t cap);

/* ---- operations started by HTTP handlers (each replies to req exactly once) ---- */

/* tenant_location_config_put: the upsert rules; cfg is taken over (finished here). flush_ms < 0:
 * no flush. */
void tenant_location_config_put(TenantManager *mgr, HttpRequest *req, const TenantShardId *tsid,
                                LocationConfig *cfg, long flush_ms, bool lazy);
/* tenant_location_config_list_json: {"tenant_shards": [[tsid, cfg or null], ...]}. */
json_t *tenant_location_config_list_json(const TenantManager *mgr);
/* tenant_info_json: TenantInfo (details adds "timelines"). */
json_t *tenant_info_json(const TenantSlot *slot, bool details);
/* tenant_delete: DELETE /v1/tenant/{tsid}. */
void tenant_delete(TenantManager *mgr, HttpRequest *req, const TenantShardId *tsid);
/* tenant_config_set: PUT (patch false: replace) or PATCH /v1/tenant/config. */
void tenant_config_set(TenantManager *mgr, HttpRequest *req, const TenantConfigRequest *r,
                       bool patch);

#endif
