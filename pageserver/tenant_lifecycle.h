/*
 * tenant_lifecycle.h: the older tenant lifecycle API of the pageserver, which control planes
 * written before location_config use: create, attach, detach, ignore and load of an unsharded
 * tenant (create also takes a tenant shard id). Each call is a thin layer over the location
 * machinery of the TenantManager (tenant.h, slot.h): the same config persistence, the same
 * generation rules (a generation lower than the one attached here: 400; generation 0: 400), the
 * same busy rules. docs/pageserver.md "The older lifecycle API" describes the behaviour.
 *
 *   create  a new AttachedSingle location in `generation` with the given tenant config; answers
 *           the tenant id once the tenant is Active (409 when the shard is known here, ignored
 *           included; 409 when it will not become active (Broken); 503 still attaching)
 *   attach  location_config AttachedSingle in `generation` with the given config (shard 0 of 0);
 *           answers once the config is durable (the caller polls the tenant's status)
 *   detach  Detached: the slot and its local directory go (remote untouched); an ignored tenant
 *           only with detach_ignored (404 otherwise); 404 unknown; 503 being changed
 *   ignore  the marker <dir>/ignored is written (fsynced), the slot stops and is forgotten, its
 *           local files stay; at startup an ignored shard is neither loaded nor removed
 *           (re-attach answer or not); 404 unknown; 503 being changed
 *   load    an ignored or unknown-but-on-disk tenant: its local config is read and (with a
 *           generation) made AttachedSingle in that generation, the marker removed, the slot
 *           created and attached; answers once the config is durable. 409 when loaded already,
 *           404 when nothing is on disk
 *
 * Generations: with a control-plane API configured, create, attach and load need one (400
 * "generation attribute missing" otherwise). Without (development mode) a missing generation
 * means the generation the shard has here (attach: its attached slot's; load: its persisted
 * config's, unchanged), else 1.
 *
 * Conventions of app.h: arguments are copied; each call ends in exactly one callback, never from
 * inside the call. Everything runs on the event loop thread.
 */
#ifndef PAGESERVER_TENANT_LIFECYCLE_H
#define PAGESERVER_TENANT_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/id.h"
#include "shared/tenant_config.h"

#include "pageserver/app.h"
#include "pageserver/tenant.h"

/* TenantCreateRequest: Neon's TenantCreateRequest: {"new_tenant_id" (tenant shard id),
 * "generation", "shard_parameters": {"count", "stripe_size"}, "placement_policy" (accepted,
 * meaningful only to a storage controller), <TenantConfig fields>}; unknown fields -> 400. */
typedef struct TenantCreateRequest {
    TenantShardId tsid;
    Generation generation; /* GENERATION_NONE: absent */
    uint32_t stripe_size;  /* 0: absent */
    TenantConfig config;
} TenantCreateRequest;

/* TenantAttachRequest: Neon's TenantAttachRequest: {"generation", "config": {<TenantConfig
 * fields>, unknown -> 400}}; both optional; other top-level keys are ignored (logged), as Neon's
 * type does not deny them. */
typedef struct TenantAttachRequest {
    Generation generation; /* GENERATION_NONE: absent */
    TenantConfig config;
} TenantAttachRequest;

/* tenant_create_request_decode / tenant_attach_request_decode / tenant_load_request_decode: the
 * bodies (400 naming the field). obj NULL (empty body) or JSON null: every field absent, where the
 * body is optional (attach, load). load's body is {"generation"} (unknown -> 400). */
bool tenant_create_request_decode(const json_t *obj, TenantCreateRequest *out, Err *err) MUST_CHECK;
bool tenant_attach_request_decode(const json_t *obj, TenantAttachRequest *out, Err *err) MUST_CHECK;
bool tenant_load_request_decode(const json_t *obj, Generation *generation, Err *err) MUST_CHECK;

/* tenant_create: result the tenant id (a JSON string). */
void tenant_create(TenantManager *mgr, const TenantCreateRequest *r, PageserverJsonFn cb,
                   void *arg);
/* tenant_attach / tenant_detach / tenant_ignore / tenant_load: done (see above). */
void tenant_attach(TenantManager *mgr, const TenantId *tenant, const TenantAttachRequest *r,
                   PageserverDoneFn cb, void *arg);
void tenant_detach(TenantManager *mgr, const TenantId *tenant, bool detach_ignored,
                   PageserverDoneFn cb, void *arg);
void tenant_ignore(TenantManager *mgr, const TenantId *tenant, PageserverDoneFn cb, void *arg);
void tenant_load(TenantManager *mgr, const TenantId *tenant, Generation generation,
                 PageserverDoneFn cb, void *arg);

#endif
