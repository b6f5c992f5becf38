/*
 * storcon_client.h: the pageserver's upcalls to the storage controller (pageserver.md
 * "Generations on the pageserver", storcon.md "/upcall/v1"):
 *
 *   POST <control-plane-api>re-attach  {"node_id", "register": NodeRegisterRequest}
 *        -> {"tenants": [{"id": tsid, "gen": n or null, "mode": ..., "stripe_size": n}]}
 *   POST <control-plane-api>validate   {"tenants": [{"id": tsid, "gen": n}]}   (<= 128 each)
 *        -> {"tenants": [{"id": tsid, "valid": bool}]}
 *   GET  <control-plane-api>timeline_import_status  {"tenant_shard_id", "timeline_id",
 *        "generation"} -> ShardImportStatus: {"InProgress": null or {"V1": {"jobs", "completed",
 *        "import_plan_hash", "job_soft_size_limit"}}}, "Done" or {"Error": "<msg>"}
 *   POST <control-plane-api>timeline_import_status  the same plus "status": ShardImportStatus
 *   (both end without a retry on 404 -- no such import -- and 412 -- stale generation)
 *
 * Every upcall is retried, one attempt at a time with capped jittered backoff, until it gets a
 * 2xx answer that parses, or until storcon_client_stop (shutdown): then its callback is never
 * called. Calls carry "Authorization: Bearer <token>" when --control-plane-token-file is set.
 * Everything runs on the event loop (curl multi through shared/http_client.h). The upcalls are
 * rows of one table in storcon_client.c (path, body builder, answer parser, batch size): a new
 * upcall is a row plus a typed start function here.
 */
#ifndef PAGESERVER_STORCON_CLIENT_H
#define PAGESERVER_STORCON_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"

#include "pageserver/location_config.h"

struct PageserverApp;

typedef struct StorconClient StorconClient;

typedef struct ReattachTenant {
    TenantShardId tsid;
    Generation gen;    /* GENERATION_NONE for secondaries */
    LocationMode mode; /* ATTACHED_SINGLE or SECONDARY */
    bool has_stripe_size;
    uint32_t stripe_size;
} ReattachTenant;

typedef struct ValidateItem {
    TenantShardId tsid;
    Generation gen;
    bool valid; /* filled by the answer; absent from the answer = invalid */
} ValidateItem;

/* Callbacks on the loop thread. The arrays are only valid during the call. */
typedef void (*ReattachDoneFn)(void *arg, const ReattachTenant *tenants, size_t n);
typedef void (*ValidateDoneFn)(void *arg, const ValidateItem *items, size_t n);

/* storcon_client_new: the caller frees it with storcon_client_free (after the loop ended). */
StorconClient *storcon_client_new(struct PageserverApp *app);
/* storcon_client_stop: cancel every running upcall; their callbacks are not invoked. */
void storcon_client_stop(StorconClient *c);
void storcon_client_free(StorconClient *c);

/* storcon_reattach_start: the re-attach upcall with this node's registration. */
void storcon_reattach_start(StorconClient *c, ReattachDoneFn done, void *arg);

/* storcon_validate_start: validate items[0..n) (copied), in requests of at most
 * PAGESERVER_DELETION_VALIDATE_BATCH tenants, one after another; done gets every item with its
 * answer. n == 0 calls done from a zero-delay timer. */
void storcon_validate_start(StorconClient *c, const ValidateItem *items, size_t n,
                            ValidateDoneFn done, void *arg);

/* ImportStatusDoneFn: err NULL and the answer (borrowed), or the 404 / 412 that ended it. */
typedef void (*ImportStatusDoneFn)(void *arg, const Err *err, const json_t *answer);

/* A running import upcall, for storcon_call_cancel (valid until its done function runs). */
typedef struct StorconCall StorconCall;

/* storcon_import_status_start / storcon_import_progress_start: the import upcalls (import.md);
 * NULL after stop (done is then never called). */
StorconCall *storcon_import_status_start(StorconClient *c, const TenantShardId *tsid,
                                         const TimelineId *tl, Generation gen,
                                         ImportStatusDoneFn done, void *arg);
StorconCall *storcon_import_progress_start(StorconClient *c, const TenantShardId *tsid,
                                           const TimelineId *tl, Generation gen,
                                           const json_t *status, ImportStatusDoneFn done,
                                           void *arg);
/* storcon_call_cancel: drop a running call; its done function is never called. */
void storcon_call_cancel(StorconClient *c, StorconCall *call);

/* storcon_reattach_parse: the re-attach response. Unknown fields are ignored; "mode" absent means
 * AttachedSingle when gen is a number, Secondary when null. The caller frees *out. 400 for
 * malformed input. */
bool storcon_reattach_parse(const json_t *body, ReattachTenant **out, size_t *n,
                            Err *err) MUST_CHECK;

/* storcon_validate_apply: mark items valid per a validate response {"tenants": [{"id", "valid"}]}
 * (items not named stay invalid). 400 for malformed input. */
bool storcon_validate_apply(const json_t *body, ValidateItem *items, size_t n, Err *err) MUST_CHECK;

#endif
