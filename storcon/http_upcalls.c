/*
 * http_upcalls.c: /upcall/v1 routes the pageservers call (scope generations_api): re-attach at
 * startup, validate before executing deletions (storcon.md "Generations"), and the timeline
 * import status GET / POST (docs/import.md). Bodies are strict.
 * Both are allowed before the controller is ready: a pageserver restarting together with the
 * controller must not wait for the controller's own startup to finish.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "shared/err.h"
#include "shared/json.h"
#include "storcon/http_api.h"
#include "storcon/service.h"

/* The most entries one validate request may carry (pageservers send at most 128). */
#define VALIDATE_MAX_TENANTS 10000

typedef struct ReattachBody {
    NodeId node_id;
    json_t *reg;           /* borrowed from the document; NULL when absent or null */
    bool empty_local_disk; /* Neon's Option<bool>: absent or null = false */
} ReattachBody;

static const JsonField REATTACH_FIELDS[] = {
    JSON_FIELD(ReattachBody, node_id, "node_id", JSON_FIELD_NODE_ID, JSON_REQUIRED),
    JSON_FIELD(ReattachBody, reg, "register", JSON_FIELD_OBJECT, JSON_NULLABLE),
    JSON_FIELD(ReattachBody, empty_local_disk, "empty_local_disk", JSON_FIELD_BOOL, JSON_NULLABLE),
};
static const JsonSpec REATTACH_SPEC = JSON_SPEC("re-attach", REATTACH_FIELDS, JSON_UNKNOWN_REJECT);

/* http_upcalls_reattach: a "register" block must name the same node as the request. */
void http_upcalls_reattach(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    json_t *doc = NULL;
    ReattachBody body = {0};
    ServiceNodeRegistration reg;
    memset(&reg, 0, sizeof(reg));
    if (!http_api_body(req, &REATTACH_SPEC, &body, &doc, &err))
        goto fail;
    if (body.reg != NULL) {
        if (!service_node_registration_from_json(body.reg, &reg, &err)) {
            err_prefix(&err, "register: ");
            goto fail;
        }
        if (reg.node_id != body.node_id) {
            err_set(&err, ERR_BAD_REQUEST,
                    "register: node_id %llu does not match the request's node_id %llu",
                    (unsigned long long)reg.node_id, (unsigned long long)body.node_id);
            goto fail;
        }
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL) {
        json_decref(doc);
        return;
    }
    ApiOp *op = http_api_op_new(req, app, svc, 200);
    service_reattach(svc, body.node_id, body.reg != NULL ? &reg : NULL, body.empty_local_disk,
                     http_api_op_json_done, op);
    json_decref(doc);
    return;
fail:
    json_decref(doc);
    http_reply_error(req, &err);
}

typedef struct ValidateBody {
    json_t *tenants;
} ValidateBody;

static const JsonField VALIDATE_FIELDS[] = {
    JSON_FIELD(ValidateBody, tenants, "tenants", JSON_FIELD_ARRAY, JSON_REQUIRED),
};
static const JsonSpec VALIDATE_SPEC = JSON_SPEC("validate", VALIDATE_FIELDS, JSON_UNKNOWN_REJECT);

static const JsonField VALIDATE_ITEM_FIELDS[] = {
    JSON_FIELD(ServiceValidateItem, tsid, "id", JSON_FIELD_TSID, JSON_REQUIRED),
    JSON_FIELD(ServiceValidateItem, gen, "gen", JSON_FIELD_GENERATION, JSON_REQUIRED),
};
static const JsonSpec VALIDATE_ITEM_SPEC =
    JSON_SPEC("validate entry", VALIDATE_ITEM_FIELDS, JSON_UNKNOWN_REJECT);

void http_upcalls_validate(HttpRequest *req, void *app)
{
    Err err;
    err_clear(&err);
    json_t *doc = NULL;
    ValidateBody body = {0};
    ServiceValidateItem *items = NULL;
    if (!http_api_body(req, &VALIDATE_SPEC, &body, &doc, &err))
        goto fail;
    size_t n = json_array_size(body.tenants);
    if (n > VALIDATE_MAX_TENANTS) {
        err_set(&err, ERR_BAD_REQUEST, "tenants: %zu entries, at most %d per request", n,
                VALIDATE_MAX_TENANTS);
        goto fail;
    }
    items = xcalloc(n ? n : 1, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(body.tenants, i);
        if (!json_is_object(it)) {
            err_set(&err, ERR_BAD_REQUEST, "tenants[%zu]: must be an object", i);
            goto fail;
        }
        if (!json_decode(it, &VALIDATE_ITEM_SPEC, &items[i], &err)) {
            err_prefix(&err, "tenants[%zu]: ", i);
            goto fail;
        }
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL) {
        free(items);
        json_decref(doc);
        return;
    }
    ApiOp *op = http_api_op_new(req, app, svc, 200);
    service_validate(svc, items, n, http_api_op_json_done, op);
    free(items);
    json_decref(doc);
    return;
fail:
    free(items);
    json_decref(doc);
    http_reply_error(req, &err);
}

/* ---- timeline import status (import.md) ---- */

/* Neon's TimelineImportStatusRequest (GET, the body carries the request) and
 * PutTimelineImportStatusRequest (POST, plus "status"). */
typedef struct ImportStatusBody {
    TenantShardId tsid;
    TimelineId timeline;
    Generation gen;
    json_t *status; /* borrowed from the document; POST only */
} ImportStatusBody;

static const JsonField IMPORT_GET_FIELDS[] = {
    JSON_FIELD(ImportStatusBody, tsid, "tenant_shard_id", JSON_FIELD_TSID, JSON_REQUIRED),
    JSON_FIELD(ImportStatusBody, timeline, "timeline_id", JSON_FIELD_TIMELINE_ID, JSON_REQUIRED),
    JSON_FIELD(ImportStatusBody, gen, "generation", JSON_FIELD_GENERATION, JSON_REQUIRED),
};
static const JsonSpec IMPORT_GET_SPEC =
    JSON_SPEC("timeline import status request", IMPORT_GET_FIELDS, JSON_UNKNOWN_REJECT);

static const JsonField IMPORT_PUT_FIELDS[] = {
    JSON_FIELD(ImportStatusBody, tsid, "tenant_shard_id", JSON_FIELD_TSID, JSON_REQUIRED),
    JSON_FIELD(ImportStatusBody, timeline, "timeline_id", JSON_FIELD_TIMELINE_ID, JSON_REQUIRED),
    JSON_FIELD(ImportStatusBody, gen, "generation", JSON_FIELD_GENERATION, JSON_REQUIRED),
    JSON_FIELD(ImportStatusBody, status, "status", JSON_FIELD_ANY, JSON_REQUIRED),
};
static const JsonSpec IMPORT_PUT_SPEC =
    JSON_SPEC("timeline import status update", IMPORT_PUT_FIELDS, JSON_UNKNOWN_REJECT);

/* import_status_handle: both routes; the status (POST) is checked by the service. */
static void import_status_handle(HttpRequest *req, void *app, bool put)
{
    Err err;
    err_clear(&err);
    json_t *doc = NULL;
    ImportStatusBody body;
    memset(&body, 0, sizeof(body));
    if (!http_api_body(req, put ? &IMPORT_PUT_SPEC : &IMPORT_GET_SPEC, &body, &doc, &err)) {
        http_reply_error(req, &err);
        return;
    }
    if (body.gen == GENERATION_NONE) {
        err_set(&err, ERR_BAD_REQUEST, "generation: must be a valid generation");
        json_decref(doc);
        http_reply_error(req, &err);
        return;
    }
    Service *svc = http_api_service(req, app);
    if (svc == NULL) {
        json_decref(doc);
        return;
    }
    ApiOp *op = http_api_op_new(req, app, svc, 200);
    if (put)
        service_import_status_put(svc, &body.tsid, &body.timeline, body.gen, body.status,
                                  http_api_op_json_done, op);
    else
        service_import_status_get(svc, &body.tsid, &body.timeline, body.gen, http_api_op_json_done,
                                  op);
    json_decref(doc);
}

void http_upcalls_import_status_get(HttpRequest *req, void *app)
{
    import_status_handle(req, app, false);
}

void http_upcalls_import_status_put(HttpRequest *req, void *app)
{
    import_status_handle(req, app, true);
}
