/*
 * tenant.h: the TenantManager: the tenant shard slots of this pageserver (slot.h), looked up by
 * hash (TenantShardId -> slot, tenant id -> its shards here), and the operations on them that
 * callers (the HTTP API, later the page service, import jobs and shard splits) start:
 * location_config, tenant delete, tenant config, the read-only views, and which local shard owns a
 * key.
 *
 * Conventions (app.h): arguments are copied; asynchronous operations end in exactly one callback,
 * never from inside the call that started it; synchronous views return a new json_t reference or
 * false + Err. Errors carry HTTP-like codes (400 bad input, 404 unknown, 409 being changed, 412,
 * 500 broken, 503 not ready / shutting down / retry).
 *
 * Startup: with --control-plane-api the manager sends re-attach and applies the answer before it is
 * ready (every operation fails with 503 until then); without, the persisted configs are loaded as
 * they are (development mode).
 *
 * Everything here runs on the event loop thread.
 */
#ifndef PAGESERVER_TENANT_H
#define PAGESERVER_TENANT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/fsync_group.h"
#include "shared/id.h"
#include "shared/key.h"

#include "pageserver/app.h"
#include "pageserver/location_config.h"
#include "pageserver/slot.h"
#include "shared/tenant_config.h"

/* TenantShards: the slots of one tenant on this node (any shard counts: during a split both the
 * parents and the children are here). */
typedef struct TenantShards {
    TenantId tenant_id;
    TenantSlot **slots;
    size_t n, cap;
    struct TenantShards *next; /* hash chain */
} TenantShards;

/* TenantPlaceholder: a shard an operation works on without a slot (TenantManager.pending). */
typedef struct TenantPlaceholder {
    TenantShardId tsid;
    const char *what; /* static: "its local directory is being removed" */
} TenantPlaceholder;

typedef struct TenantManager {
    struct PageserverApp *app;
    TenantSlot **slots; /* every slot, in creation order (listings) */
    size_t n_slots, cap_slots;
    TenantSlot **by_tsid;     /* n_buckets chains through TenantSlot.hash_next */
    TenantShards **by_tenant; /* n_buckets chains */
    size_t n_buckets;         /* a power of two; grows with the slot count */
    bool ready;               /* re-attach applied */
    bool stopping;
    /* placeholders: shards with no slot that an operation is working on without one: a Detached
     * location_config (or detach of an ignored tenant) removing a leftover local directory, a
     * load reading the local config. Any change for them is refused until the operation ends
     * (an attach must not persist its config into a directory being removed). */
    TenantPlaceholder *pending;
    size_t n_pending, cap_pending;
    /* ignored shards (POST /v1/tenant/{id}/ignore): no slot, local files kept with the marker
     * <dir>/PAGESERVER_TENANT_IGNORED_FILE, not loaded at startup until load or detach */
    TenantShardId *ignored;
    size_t n_ignored, cap_ignored;
    /* read_epoch: bumped (main loop) whenever a slot's state or shard identity, or a timeline's
     * state changes: what a ReadView (read_path.h) copied is current while the epoch it was built
     * at is still the manager's; read by the page service threads */
    _Atomic uint64_t read_epoch;
    /* the fsyncs of <workdir>/tenants/ that make new shard directories durable, coalesced over
     * the location config writes running at once (slot.c persist_work) */
    FsyncGroup tenants_dir_sync;
} TenantManager;

/* ---- manager ---- */

TenantManager *tenant_manager_new(struct PageserverApp *app);
/* tenant_manager_reads_changed: main loop: what the read path routes and checks by changed
 * (read_epoch above); every ReadView built before is stale from now on. */
void tenant_manager_reads_changed(TenantManager *mgr);
/* tenant_manager_load_local: read every <workdir>/tenants/<tsid>/config (blocking: at startup,
 * before the loop). Unreadable configs are logged and treated as absent. */
bool tenant_manager_load_local(TenantManager *mgr, Err *err) MUST_CHECK;
/* tenant_manager_start: re-attach (or development mode), then ready. */
void tenant_manager_start(TenantManager *mgr);
/* tenant_manager_stop: SIGTERM: no new work; waiting operations fail with 503. */
void tenant_manager_stop(TenantManager *mgr);
void tenant_manager_free(TenantManager *mgr);

/* tenant_manager_check_ready: 503 "not ready" before re-attach, 503 when stopping. */
bool tenant_manager_check_ready(const TenantManager *mgr, Err *err) MUST_CHECK;
/* tenant_manager_find: the slot of tsid or NULL (hash lookup). */
TenantSlot *tenant_manager_find(const TenantManager *mgr, const TenantShardId *tsid);
/* tenant_manager_tenant_shards: the slots of tenant here, or NULL when it has none. */
const TenantShards *tenant_manager_tenant_shards(const TenantManager *mgr, const TenantId *tenant);
/* tenant_manager_readable_slot: ready, and tsid's slot is readable (slot_check_readable). */
bool tenant_manager_readable_slot(const TenantManager *mgr, const TenantShardId *tsid,
                                  TenantSlot **out, Err *err) MUST_CHECK;
/* tenant_manager_shard_for_key: which attached shard of tenant on this node owns key (by the
 * shards' count and stripe size, shared/key.h; a global or shard-0 key: shard 0). While a split
 * runs the shard of the highest count that owns the key wins. 503 not ready, 404 when the tenant
 * has no readable shard here or the owner is not here (the message names the owner number). */
bool tenant_manager_shard_for_key(const TenantManager *mgr, const TenantId *tenant, const Key *key,
                                  TenantShardId *out, Err *err) MUST_CHECK;

/* tenant_manager_link / tenant_manager_unlink: add a new slot to / remove it from the tables
 * (slot_new and the slot's removal call these). */
void tenant_manager_link(TenantManager *mgr, TenantSlot *slot);
void tenant_manager_unlink(TenantManager *mgr, TenantSlot *slot);

/* tenant_manager_pending: what an operation without a slot is doing to tsid (a static string),
 * or NULL. tenant_manager_pending_add / _remove: mark / unmark it (at most once per tsid). */
const char *tenant_manager_pending(const TenantManager *mgr, const TenantShardId *tsid);
void tenant_manager_pending_add(TenantManager *mgr, const TenantShardId *tsid, const char *what);
void tenant_manager_pending_remove(TenantManager *mgr, const TenantShardId *tsid);
/* tenant_manager_busy_err: the 409 (conflict true) or 503 a change of tsid gets while a slot
 * change or a placeholder operation runs on it; false (nothing set) when neither does. */
bool tenant_manager_busy_err(const TenantManager *mgr, const TenantShardId *tsid, bool conflict,
                             Err *err);

/* tenant_manager_is_ignored / tenant_manager_set_ignored: the ignored set (in memory; the marker
 * file on disk is written and removed by the operations that change it). */
bool tenant_manager_is_ignored(const TenantManager *mgr, const TenantShardId *tsid);
void tenant_manager_set_ignored(TenantManager *mgr, const TenantShardId *tsid, bool ignored);

/* tenant_manager_remove_absent: remove the local directory of tsid, which has no slot (leftovers,
 * or an ignored shard, which stops being ignored), under a placeholder; cb gets the detach answer
 * ({"shards": [], "stripe_size": null}) or the error. */
void tenant_manager_remove_absent(TenantManager *mgr, const TenantShardId *tsid,
                                  PageserverJsonFn cb, void *arg);

/* tenant_local_config_read: <workdir>/tenants/<tsid>/config as a LocationConfig of tsid (*out
 * initialised here; finish it on success). Blocking: at startup or on a worker (thread-safe).
 * ERR_NOT_FOUND when the file does not exist; 500 when it is unreadable or invalid. */
bool tenant_local_config_read(const char *tenant_dir, const TenantShardId *tsid,
                              LocationConfig *out, Err *err) MUST_CHECK;

/* tenant_manager_on_visible_lsn: the deletion queue's LSN callback. */
void tenant_manager_on_visible_lsn(void *arg, const TenantShardId *tsid, const TimelineId *tl,
                                   Lsn lsn);

/* ---- operations ---- */

/* tenant_location_config_put: the upsert rules (pageserver.md "location_config"); cfg is taken
 * over (finished here). flush_ms < 0: no flush. result: {"shards": [{"shard_id", "node_id"}],
 * "stripe_size"} ({"shards": [], "stripe_size": null} for a detach). */
void tenant_location_config_put(TenantManager *mgr, const TenantShardId *tsid, LocationConfig *cfg,
                                long flush_ms, bool lazy, PageserverJsonFn cb, void *arg);
/* tenant_location_config_list: {"tenant_shards": [[tsid, cfg or null], ...]}. */
bool tenant_location_config_list(const TenantManager *mgr, json_t **out, Err *err) MUST_CHECK;
/* tenant_location_config_get: the LocationConfig of tsid; 404 when it has no location here. */
bool tenant_location_config_get(const TenantManager *mgr, const TenantShardId *tsid, json_t **out,
                                Err *err) MUST_CHECK;
/* tenant_list: [TenantInfo, ...] of the attached shards. */
bool tenant_list(const TenantManager *mgr, json_t **out, Err *err) MUST_CHECK;
/* tenant_get: TenantInfo with "timelines"; 404 when not attached here. */
bool tenant_get(const TenantManager *mgr, const TenantShardId *tsid, json_t **out,
                Err *err) MUST_CHECK;
/* tenant_config_get: {"tenant_specific_overrides", "effective_config"}; 404 without a location. */
bool tenant_config_get(const TenantManager *mgr, const TenantShardId *tsid, json_t **out,
                       Err *err) MUST_CHECK;
/* tenant_delete: tsid's slot (a shard count of 0: every shard of the tenant here), its local data
 * and its remote prefix. */
void tenant_delete(TenantManager *mgr, const TenantShardId *tsid, PageserverDoneFn cb, void *arg);
/* tenant_config_set: replace (patch false) or patch the tenant config of every shard here. */
void tenant_config_set(TenantManager *mgr, const TenantConfigRequest *r, bool patch,
                       PageserverDoneFn cb, void *arg);

#endif
