/*
 * timeline.h: timelines of an attached tenant shard: their metadata and layers, the ordered upload
 * queue, creation (Bootstrap, Branch), deletion, and TimelineInfo.
 *
 * A Timeline belongs to its TenantSlot and to the event loop thread. Worker jobs never see a
 * Timeline: they get references on its Layers and plain copies of what they need.
 *
 * Upload ordering: each timeline has a FIFO upload queue run one operation at a time. Creating
 * layers schedules their uploads, then the index that names them; an index operation therefore
 * runs only after every layer it names is durable, and the index text is serialised when it is
 * scheduled (it describes exactly the layers scheduled before it). A failed operation is retried
 * with capped backoff, never skipped. Uploads run only while the slot's mode allows them
 * (AttachedSingle and AttachedMulti); AttachedStale holds the queue until the mode changes.
 * Every object goes to this attachment's generation.
 *
 * LSN conventions (also docs/pageserver.md): a bootstrapped timeline's images are at
 * initdb_lsn = the initdb checkpoint location aligned up to 8; disk_consistent_lsn =
 * last_record_lsn = initdb_lsn + 8 (as for an import, import.md); prev_record_lsn unknown (null);
 * min_readable_lsn = latest_gc_cutoff_lsn = initdb_lsn. A branch at L has ancestor_lsn = L,
 * disk_consistent_lsn = last_record_lsn = L, and inherits initdb_lsn, the GC cutoff and pg_version.
 */
#ifndef PAGESERVER_TIMELINE_H
#define PAGESERVER_TIMELINE_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

#include "pageserver/app.h"
#include "pageserver/import.h"
#include "pageserver/index_part.h"
#include "pageserver/layer_map.h"
#include "pageserver/read_path.h"

struct TenantSlot;
struct TenantManager;
struct event;

typedef enum TimelineState {
    TIMELINE_LOADING,  /* being created: not listed, not readable */
    TIMELINE_ACTIVE,   /* listed and readable */
    TIMELINE_STOPPING, /* being deleted (or its slot shutting down) */
    TIMELINE_BROKEN,
    TIMELINE_IMPORTING, /* its import runs or waits for activate_post_import: not listed, not
                         * readable, deletable (import.h) */
    TIMELINE_STATE_COUNT
} TimelineState;

/* UploadDoneFn: an upload operation finished (ok) or was cancelled (!ok: queue dropped). */
typedef void (*UploadDoneFn)(void *arg, bool ok);

typedef enum UploadKind { UPLOAD_LAYER, UPLOAD_INDEX } UploadKind;

typedef struct UploadOp {
    UploadKind kind;
    Layer *layer;     /* UPLOAD_LAYER: a reference */
    char *index_text; /* UPLOAD_INDEX */
    Lsn index_lsn;    /* UPLOAD_INDEX: the index's disk_consistent_lsn */
    char key[512];    /* remote key */
    UploadDoneFn done;
    void *done_arg;
    struct UploadOp *next;
} UploadOp;

/* What a create request asked for (idempotency: identical repeat 201, different 409). */
typedef struct TimelineCreateParams {
    TimelineId new_timeline_id;
    bool branch;
    bool has_pg_version;
    uint32_t pg_version;
    bool has_existing_initdb;
    TimelineId existing_initdb;
    TimelineId ancestor;
    bool has_ancestor_start_lsn;
    Lsn ancestor_start_lsn;
    bool import; /* ImportPgdata mode */
    ImportPgdataSpec import_spec;
} TimelineCreateParams;

typedef struct Timeline {
    struct TenantSlot *slot;
    TimelineId id;
    char id_str[ID_STR_SIZE];
    TimelineState state;
    char broken_reason[ERR_MSG_SIZE];

    bool has_ancestor;
    TimelineId ancestor_id;
    struct Timeline *ancestor; /* resolved within the slot; a child keeps its ancestor alive */
    Lsn ancestor_lsn;
    Lsn last_record_lsn;
    Lsn prev_record_lsn;
    Lsn disk_consistent_lsn;
    Lsn remote_consistent_lsn;         /* of the last index uploaded */
    Lsn remote_consistent_lsn_visible; /* advanced only after the generation validated */
    Lsn initdb_lsn;
    Lsn gc_cutoff_lsn;
    uint32_t pg_version;
    uint64_t logical_size;
    bool logical_size_accurate; /* logical_size is exact at last_record_lsn */
    bool dir_counts_known;      /* dir_counts computed at last_record_lsn */
    bool sizes_running;         /* a read_path_timeline_sizes job runs */
    uint64_t dir_counts[DIRKIND_COUNT];

    Layer **layers; /* owned references */
    size_t n_layers, cap_layers;
    IndexPart *index; /* what the next index upload writes */
    char dir[PATH_MAX];

    UploadOp *uq_head, *uq_tail;
    bool uq_running;
    atomic_bool uq_cancel; /* raised by timeline_uploads_drop: the running upload stops early */
    int uq_attempt;
    struct event *uq_timer;

    /* creation (state LOADING) */
    TimelineCreateParams create_params;
    PageserverJsonFn create_cb; /* answered once the index is durable; NULL once answered */
    void *create_arg;
    /* import (state IMPORTING) */
    struct ImportTask *import; /* owned; NULL when no task runs */
    /* deletion */
    bool deleting;       /* deleted_at set or deletion requested: not served */
    bool delete_running; /* the background deletion is in progress */
} Timeline;

/* timeline_new: an empty timeline of slot (no layers, state LOADING). Freed by timeline_free. */
Timeline *timeline_new(struct TenantSlot *slot, const TimelineId *id);
/* timeline_free: drops queued uploads (their callbacks get !ok), unrefs layers. */
void timeline_free(Timeline *tl);

/* timeline_state_name: "Loading", "Active", "Stopping", "Broken", "Importing". */
const char *timeline_state_name(TimelineState s);
/* timeline_set_state: the one way to change tl->state (shared/fsm.h table "timeline" in
 * timeline.c, diagram in docs/pageserver.md): a transition not in the table is logged and refused
 * (false); the same state is a no-op. */
bool timeline_set_state(Timeline *tl, TimelineState to);

/* timeline_load_index: fill a new timeline's metadata and layers from its remote index (picked in
 * generation index_gen; resident[i] says whether layer i of the index is local). */
bool timeline_load_index(Timeline *tl, IndexPart *index, const bool *resident, Err *err) MUST_CHECK;

/* timeline_add_layer: add a layer (reference taken over) and record it in the index. */
bool timeline_add_layer(Timeline *tl, Layer *layer, Err *err) MUST_CHECK;

/* timeline_schedule_layer_upload / timeline_schedule_index_upload: append to the upload queue.
 * The index text is serialised now from tl->index. done may be NULL. */
void timeline_schedule_layer_upload(Timeline *tl, Layer *layer, UploadDoneFn done, void *arg);
void timeline_schedule_index_upload(Timeline *tl, UploadDoneFn done, void *arg);
/* timeline_uploads_idle: nothing queued and nothing running. */
bool timeline_uploads_idle(const Timeline *tl);
/* timeline_uploads_kick: start the next operation if allowed (after a mode change). */
void timeline_uploads_kick(Timeline *tl);
/* timeline_uploads_drop: cancel queued operations (the running one finishes). */
void timeline_uploads_drop(Timeline *tl);

/* timeline_info_json: TimelineInfo (pageserver.md). New reference. */
json_t *timeline_info_json(const Timeline *tl);

/* timeline_create_params_decode: the TimelineCreateRequest body (strict; import_pgdata with
 * import_pgdata_spec_decode, and excluding the other modes' fields). */
bool timeline_create_params_decode(const json_t *body, TimelineCreateParams *out,
                                   Err *err) MUST_CHECK;

/* ---- operations (conventions: app.h, tenant.h) ---- */

/* timeline_create: the create protocol (pageserver.md "Timeline create") on tsid's slot (ready,
 * readable, uploading): result TimelineInfo once the index is durable (an identical repeat of a
 * finished create: at once); 429 while the same creation runs, 409 other parameters or being
 * deleted, 404 unknown ancestor, 406 bad ancestor_start_lsn, 400 unsupported pg_version, 503 when
 * the slot changes meanwhile. */
void timeline_create(struct TenantManager *mgr, const TenantShardId *tsid,
                     const TimelineCreateParams *params, PageserverJsonFn cb, void *arg);

/* timeline_delete: start deleting (202 in HTTP terms: cb gets no error once the deletion has
 * started); 412 unknown tenant shard, 404 unknown timeline, 409 being created or deleted, 412
 * child timelines, 503 not AttachedSingle. */
void timeline_delete(struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *id,
                     PageserverDoneFn cb, void *arg);

/* timeline_is_served: listed and readable (not being created, not importing). */
bool timeline_is_served(const Timeline *tl);

/* timeline_list: [TimelineInfo, ...] of tsid's readable slot. */
bool timeline_list(const struct TenantManager *mgr, const TenantShardId *tsid, json_t **out,
                   Err *err) MUST_CHECK;
/* timeline_get: TimelineInfo; 404 unknown (or still being created). */
bool timeline_get(const struct TenantManager *mgr, const TenantShardId *tsid, const TimelineId *id,
                  json_t **out, Err *err) MUST_CHECK;

/* timeline_resume_deletion: continue the deletion of a timeline whose index has deleted_at. */
void timeline_resume_deletion(Timeline *tl);

/* timeline_compute_sizes: start computing the logical size and directory entry counts of an
 * ACTIVE timeline whose ancestors are resolved (read_path_timeline_sizes, on a worker), unless they
 * are known or being computed. Called when a timeline is loaded or created, and retried by
 * timeline_get/timeline_list after a failure. */
void timeline_compute_sizes(Timeline *tl);

/* timeline_physical_size: the sum of the layer file sizes. */
uint64_t timeline_physical_size(const Timeline *tl);

#endif
